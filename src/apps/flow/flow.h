/* flow.h — what the flow app's files share: its state and options.
 * ingest.c takes station readings from telemetry (a consumer of the
 * points written with a `station` tag) and JSON readings in, api.c
 * answers questions about them, ask.c answers in words, writer.c writes
 * stations and alerts to the database in the background, flow.c wires
 * the app into serve. */
#ifndef GROVE_FLOW_H
#define GROVE_FLOW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "apps/flow/engine.h"
#include "app/app.h"
#include "app/roles.h"
#include "series/series.h"
#include "telemetry/telemetry.h"

struct buf;
struct http_req;
struct metric;

struct flow_cfg {
  uint64_t window_ms, slide_ms, lateness_ms, publish_ms, stale_ms;
  uint64_t ahead_ms;      /* --flow-max-ahead; 0: no bound */
  int hysteresis;
  int partitions;
  bool public_topics;        /* --flow-public: anyone reads flow's live topics */
};

struct flow {
  struct grove_ctx ctx;
  struct flow_cfg cfg;
  struct telemetry *telemetry; /* the platform's: points in, series reads */
  struct series *series;       /* telemetry's store, for flow's reads */
  struct flow_engine *engine;
  struct flow_writer *writer;  /* stations first seen and alerts, to the database */
  struct metric *late, *alerts, *stations;
  struct metric *ahead;   /* readings ahead of the wall clock */
};

/* Route handlers, declared with their access in flow.c's app table
 * (r->app is the struct flow). ingest.c: */
void flow_handle_readings(struct http_req *r);
/* api.c: */
void flow_handle_snapshot(struct http_req *r);
void flow_handle_stations(struct http_req *r);
void flow_handle_station_put(struct http_req *r);
void flow_handle_station(struct http_req *r);
void flow_handle_station_range(struct http_req *r);
void flow_handle_regions(struct http_req *r);
void flow_handle_region(struct http_req *r);
void flow_handle_alerts(struct http_req *r);
/* ask.c: */
void flow_handle_ask(struct http_req *r);

/* `grove flow simulate` (simulate.c). */
int flow_simulate(int argc, char **argv);
void flow_simulate_help(FILE *f);

/* Station ids and region names: 1–64 of [A-Za-z0-9._~-] (they are parts
 * of topic paths). */
bool flow_name_valid(const char *s, size_t n);

/* Registers or updates a station in the store (on a worker thread).
 * `ahead`: from the API (updates), else first sight (keeps what is there). */
int flow_station_save(struct flow *f, const struct flow_station *st, bool ahead);
/* The same on a connection the caller holds (in its transaction); err
 * (n bytes) says why it failed. */
int flow_station_exec(struct store_conn *c, const struct flow_station *st, bool ahead, char *err,
                      size_t n);

/* ---- the background writer (writer.c) ---------------------------------------------
 * Station and alert rows queued here are written by one thread, a batch a
 * transaction; at most FLOW_WRITER_MAX wait (more are dropped, counted in
 * grove_flow_writes_dropped_total). Thread-safe. */
#define FLOW_WRITER_MAX 65536
struct flow_writer;
/* max: rows that may wait (FLOW_WRITER_MAX in serve). */
int flow_writer_start(struct flow_writer **out, struct store *store, struct metrics *metrics,
                      size_t max);
/* Queue a first-seen station (kept as is if known) or an alert (copied). */
void flow_writer_station(struct flow_writer *w, const struct flow_station *st);
void flow_writer_alert(struct flow_writer *w, const struct flow_alert *a);
/* Waits until every row queued before the call is written (or failed):
 * on a worker thread, before reading the tables. */
void flow_writer_sync(struct flow_writer *w);
/* Writes what is queued, then stops. NULL is fine. */
void flow_writer_stop(struct flow_writer *w);

/* The consumer of station readings ingest.c registers with telemetry:
 * lines with a `station` tag, each pollutant field stored in its
 * station's series (flow_station_key) and fed to the windows. */
int flow_consume(struct flow *f);

/* Tells other instances (through the broker) about a station. */
void flow_station_announce(struct flow *f, const struct flow_station *st, bool ahead);

/* The series of a station's readings of pollutant sp,
 * "air_quality,station=ID pollutant", whatever route, measurement or
 * other tags brought them (ingest.c): a station's readings are one
 * history. Resets key. GROVE_EINVAL for a station id that is not one. */
int flow_station_key(struct buf *key, const char *station, size_t n, enum flow_species sp);

/* Parses an int64 query parameter; true when absent (default kept) or
 * valid (telemetry_param_int64). */
bool flow_int64_param(struct http_req *r, const char *name, int64_t *out);

#endif
