/* influx.c — InfluxDB's write API, so that Telegraf and InfluxDB clients
 * configured for InfluxDB write to Grove unchanged:
 *
 *   POST /write?db=…[&rp=…][&precision=n|u|ms|s|m|h][&u=…&p=KEY]   (1.x)
 *   POST /api/v2/write?org=…&bucket=…[&precision=ns|us|ms|s]        (2.x)
 *   GET|HEAD /ping                                                  (both)
 *
 * A write needs a Grove API key with the write scope, sent as InfluxDB
 * clients send credentials (the gate reads them all): `Authorization:
 * Token KEY` (2.x; "user:KEY" as 1.8's compatibility API), `Authorization:
 * Basic base64(user:KEY)` or `?u=user&p=KEY` (1.x), or Grove's own
 * `Authorization: Bearer KEY` / `X-API-Key`. Databases, retention
 * policies, organisations and buckets are not Grove's: their names are
 * required where InfluxDB requires them and otherwise not used — every
 * write goes to Grove's one series store, through the same path as
 * POST /api/v1/write.
 *
 * Answers are InfluxDB's: 204 on success, and errors with the status
 * codes InfluxDB uses and a JSON body clients read (`error` for 1.x —
 * Telegraf's influxdb output; `code` and `message` for 2.x — Telegraf's
 * influxdb_v2 output and the influxdb-client libraries), Grove's envelope
 * fields beside them. Every answer carries X-Influxdb-Version and
 * X-Influxdb-Build, which clients read to tell what they talk to. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/jsonout.h"
#include "core/util.h"
#include "gate/gate.h"
#include "net/http.h"
#include "telemetry/internal.h"

/* The InfluxDB version Grove answers as: 1.8 is the release that serves
 * both the 1.x API and 2.x's /api/v2/write. */
#define INFLUX_VERSION "1.8.10"

static void influx_headers(struct http_req *r) {
  static const char lines[] = "X-Influxdb-Version: " INFLUX_VERSION "\r\n"
                              "X-Influxdb-Build: OSS\r\n";
  http_res_header_lines(r, lines, sizeof lines - 1);
}

/* InfluxDB 2.x's error codes (influxdb/errors.go) by status. */
static const char *influx_code(int status) {
  switch (status) {
  case 400: return "invalid";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not found";
  case 413: return "request too large";
  case 415: return "unsupported media type";
  case 422: return "unprocessable entity";
  case 429: return "too many requests";
  case 503: return "unavailable";
  default: return status >= 500 ? "internal error" : "invalid";
  }
}

/* (The handlers set the version headers before anything is answered.) */
void telemetry_reply_error(struct http_req *r, enum telemetry_api api, int status, const char *code,
                      const char *message, json_t *details) {
  if (api == TELEMETRY_API_GROVE) {
    http_reply_error(r, status, code, message, details);
    return;
  }
  json_t *env = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "status", "error", "error_code", code,
                          "message", message, "details", details ? details : json_object(),
                          "error", message, "code", influx_code(status));
  char *body = env ? jsonout_dumps(env, JSON_COMPACT) : NULL;
  json_decref(env);
  /* the header holds one line: the message without control bytes */
  char hdr[256];
  size_t n = 0;
  for (const char *m = message; *m && n + 1 < sizeof hdr; m++)
    hdr[n++] = (unsigned char)*m < 0x20 || *m == 0x7f ? ' ' : *m;
  hdr[n] = '\0';
  http_res_header(r, "X-Influxdb-Error", hdr);
  if (!body) {
    http_reply(r, status, "application/json", "{\"error\":\"server is out of memory\"}", 35);
    return;
  }
  http_reply(r, status, "application/json", body, strlen(body));
  free(body);
}

/* Refusals of the write routes' declared write scope, as InfluxDB answers
 * them (its clients read "code" and "message"). */
void telemetry_influx_refuse(struct http_req *r, const struct http_refusal *why) {
  influx_headers(r);
  if (why->status == 401) {
    http_res_header(r, "WWW-Authenticate", "Token");
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 401, "UNAUTHORIZED",
                     "authorization failed: send a Grove API key with the write scope as the "
                     "token (Authorization: Token KEY) or the password",
                     NULL);
  } else {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, why->status, why->code,
                     "insufficient permissions for write: the key lacks the write scope", NULL);
  }
}

/* Precision as each API names it: 1.x as the parser reads it
 * (lp_precision_parse: n, u, ms, s, m, h, ns, us, µs); 2.x ns, us, ms, s. */
static bool influx_precision(struct http_req *r, bool v2, enum lp_precision *prec) {
  char p[64] = "";
  if (http_query_get(r, "precision", 0, p, sizeof p) < 0)
    p[0] = '\0'; /* absent: nanoseconds (a value past 63 bytes is no precision either) */
  if (v2 && p[0] && strcmp(p, "ns") && strcmp(p, "us") && strcmp(p, "ms") && strcmp(p, "s"))
    return false;
  return lp_precision_parse(p, prec) == 0;
}

static bool has_param(struct http_req *r, const char *name) {
  char v[256];
  return http_query_get(r, name, 0, v, sizeof v) > 0;
}

void telemetry_handle_write_v1(struct http_req *r) {
  struct telemetry *t = r->app;
  influx_headers(r);
  enum lp_precision prec;
  if (!has_param(r, "db")) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_QUERY", "database is required", NULL);
    return;
  }
  if (!influx_precision(r, false, &prec)) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_PRECISION",
                     "invalid precision: n, u, ms, s, m or h", NULL);
    return;
  }
  telemetry_write_start(r, t, prec, TELEMETRY_API_INFLUX);
}

void telemetry_handle_write_v2(struct http_req *r) {
  struct telemetry *t = r->app;
  influx_headers(r);
  enum lp_precision prec;
  if (!has_param(r, "bucket")) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_QUERY", "bucket is required", NULL);
    return;
  }
  if (!has_param(r, "org") && !has_param(r, "orgID")) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_QUERY", "organization is required",
                     NULL);
    return;
  }
  if (!influx_precision(r, true, &prec)) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_PRECISION",
                     "invalid precision: ns, us, ms or s", NULL);
    return;
  }
  telemetry_write_start(r, t, prec, TELEMETRY_API_INFLUX);
}

/* Clients call it first to see the server is there (no credential). */
void telemetry_handle_ping(struct http_req *r) {
  influx_headers(r);
  char verbose[8];
  if (http_query_get(r, "verbose", 0, verbose, sizeof verbose) > 0 &&
      strcmp(verbose, "true") == 0) {
    static const char body[] = "{\"version\":\"" INFLUX_VERSION "\"}";
    http_reply(r, 200, "application/json", body, sizeof body - 1);
    return;
  }
  http_reply(r, 204, NULL, NULL, 0);
}
