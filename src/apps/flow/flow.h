/* flow.h — what the flow app's files share: its state and options.
 * ingest.c takes points in (line protocol and JSON readings), api.c
 * answers questions about them, ask.c answers in words, flow.c wires the
 * app into serve. */
#ifndef GROVE_FLOW_H
#define GROVE_FLOW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "apps/flow/engine.h"
#include "app/app.h"
#include "app/roles.h"
#include "series/lineproto.h"
#include "series/series.h"

struct buf;
struct http_req;
struct metric;

struct flow_cfg {
  uint64_t flush_ms;
  int flush_points;
  uint64_t window_ms, slide_ms, lateness_ms, publish_ms, stale_ms;
  uint64_t ahead_ms;      /* --flow-max-ahead; 0: no bound */
  int hysteresis;
  int partitions;
  uint64_t keep_raw_ms, keep_1m_ms, keep_1h_ms;
  int read_points, read_max; /* raw points an answer holds by default, at most */
};

struct flow {
  struct grove_ctx ctx;
  struct flow_cfg cfg;
  struct series *series;
  struct flow_engine *engine;
  struct metric *points_written, *lines_failed, *late, *alerts, *stations;
  struct metric *ahead;   /* readings ahead of the wall clock */
};

/* Route handlers, declared with their access in flow.c's app table
 * (r->app is the struct flow). ingest.c: */
void flow_handle_write(struct http_req *r);
void flow_handle_readings(struct http_req *r);
/* influx.c (and refusals in InfluxDB's shape): */
void flow_handle_write_v1(struct http_req *r);
void flow_handle_write_v2(struct http_req *r);
void flow_handle_ping(struct http_req *r);
struct http_refusal;
void flow_influx_refuse(struct http_req *r, const struct http_refusal *why);
/* api.c: */
void flow_handle_snapshot(struct http_req *r);
void flow_handle_stations(struct http_req *r);
void flow_handle_station_put(struct http_req *r);
void flow_handle_station(struct http_req *r);
void flow_handle_station_range(struct http_req *r);
void flow_handle_regions(struct http_req *r);
void flow_handle_region(struct http_req *r);
void flow_handle_alerts(struct http_req *r);
void flow_handle_points(struct http_req *r);
void flow_handle_range(struct http_req *r);
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

/* Tells other instances (through the broker) about a station. */
void flow_station_announce(struct flow *f, const struct flow_station *st, bool ahead);

/* Which API a line protocol write came through, so that it answers as
 * that API's clients read answers: Grove's envelope alone, or with
 * InfluxDB's fields beside it ("error" as 1.x writes it, "code" and
 * "message" as 2.x does; influx.c). */
enum flow_write_api { FLOW_WRITE_GROVE, FLOW_WRITE_INFLUX };

/* Writes r's line protocol body (gzip or not) in precision prec, the
 * credential checked already: answers 204 once the points are durable,
 * or an error in the API's shape (ingest.c). */
void flow_write_start(struct http_req *r, struct flow *f, enum lp_precision prec,
                      enum flow_write_api api);

/* An error answer in the API's shape: Grove's envelope (code, message,
 * details; steals details), and for InfluxDB clients also "error" and
 * "code" (InfluxDB 2.x's code for the status: "invalid", "unauthorized",
 * …) and the X-Influxdb-Error header (influx.c). */
void flow_reply_error(struct http_req *r, enum flow_write_api api, int status, const char *code,
                      const char *message, json_t *details);

/* The series of a station's readings of pollutant sp,
 * "air_quality,station=ID pollutant", whatever route, measurement or
 * other tags brought them (ingest.c): a station's readings are one
 * history. Resets key. GROVE_EINVAL for a station id that is not one. */
int flow_station_key(struct buf *key, const char *station, size_t n, enum flow_species sp);

/* Parses an int64 query parameter; true when absent (default kept) or
 * valid. */
bool flow_int64_param(struct http_req *r, const char *name, int64_t *out);

#endif
