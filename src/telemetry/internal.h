/* internal.h — what telemetry's files share (not for apps): the module's
 * state, the write path's entry points for the HTTP routes and the
 * InfluxDB-shaped answers. telemetry.c opens and closes, write.c takes
 * points in, influx.c speaks InfluxDB's write API, read.c answers reads. */
#ifndef GROVE_TELEMETRY_INTERNAL_H
#define GROVE_TELEMETRY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <jansson.h>

#include "core/map.h"

#include "series/lineproto.h"
#include "telemetry/telemetry.h"

struct metric;
struct http_refusal;

struct telemetry {
  struct telemetry_cfg cfg;
  struct telemetry_env env;
  struct series *series;
  struct metric *points_written, *lines_failed;
  struct telemetry_consumer consumers[TELEMETRY_MAX_CONSUMERS];
  _Atomic size_t nconsumers; /* consumers[0..n) are set */
  /* The series of a line's fields, by the line's "measurement,tags "
   * (write.c): a line seen before costs one look-up, not one a field.
   * Entries never change (ids and recorded types are for good) and stay
   * until close; at most TELEMETRY_LINES_BYTES in all. */
  pthread_mutex_t lines_lock;
  struct map lines;          /* prefix -> struct line_ids (write.c) */
  size_t lines_bytes;
};

/* Frees the line cache (telemetry_close). */
void telemetry_lines_release(struct telemetry *t);

/* Which API a line protocol write came through, so that it answers as
 * that API's clients read answers: Grove's envelope alone, or with
 * InfluxDB's fields beside it ("error" as 1.x writes it, "code" and
 * "message" as 2.x does; influx.c). */
enum telemetry_api { TELEMETRY_API_GROVE, TELEMETRY_API_INFLUX };

/* Writes r's line protocol body (gzip or not) in precision prec, the
 * credential checked already: answers 204 once the points are durable
 * and the consumers have seen them, or an error in the API's shape
 * (write.c). */
void telemetry_write_start(struct http_req *r, struct telemetry *t, enum lp_precision prec,
                           enum telemetry_api api);

/* An error answer in the API's shape: Grove's envelope (code, message,
 * details; steals details), and for InfluxDB clients also "error" and
 * "code" (InfluxDB 2.x's code for the status: "invalid", "unauthorized",
 * …) and the X-Influxdb-Error header (influx.c). */
void telemetry_reply_error(struct http_req *r, enum telemetry_api api, int status,
                           const char *code, const char *message, json_t *details);

/* Route handlers, declared with their access in telemetry.c's table
 * (r->app is the struct telemetry). write.c: */
void telemetry_handle_write(struct http_req *r);
/* influx.c (and refusals in InfluxDB's shape): */
void telemetry_handle_write_v1(struct http_req *r);
void telemetry_handle_write_v2(struct http_req *r);
void telemetry_handle_ping(struct http_req *r);
void telemetry_influx_refuse(struct http_req *r, const struct http_refusal *why);
/* read.c: */
void telemetry_handle_points(struct http_req *r);
void telemetry_handle_range(struct http_req *r);

/* Parses a line protocol body through the write path without HTTP (for
 * tests and the fuzz driver): as POST /api/v1/write, with the failed
 * lines counted in *failed. */
int telemetry_write_lp(struct telemetry *t, const char *body, size_t len, enum lp_precision prec,
                       struct telemetry_result *res, int *failed);

#endif
