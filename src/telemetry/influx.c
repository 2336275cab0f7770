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

/* Query parameter `name` into out (n bytes), answering in Influx's format:
 * 1 there (out set), 0 absent, -1 there but unusable (400 `code` answered). */
static int influx_query(struct http_req *r, const char *name, char *out, size_t n,
                        const char *code) {
  long rc = http_query_get(r, name, 0, out, n);
  if (rc >= 0 || rc == HTTP_QUERY_ABSENT)
    return rc >= 0;
  char msg[160];
  http_query_why(rc, name, n, msg, sizeof msg);
  telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, code, msg,
                        json_pack("{s:s}", "parameter", name));
  return -1;
}

/* Precision as each API names it: 1.x as the parser reads it
 * (lp_precision_parse: n, u, ms, s, m, h, ns, us, µs); 2.x ns, us, ms, s.
 * 1 known (absent: nanoseconds), 0 not a precision, -1 answered. */
static int influx_precision(struct http_req *r, bool v2, enum lp_precision *prec) {
  char p[64] = "";
  if (influx_query(r, "precision", p, sizeof p, "INVALID_PRECISION") < 0)
    return -1;
  if (v2 && p[0] && strcmp(p, "ns") && strcmp(p, "us") && strcmp(p, "ms") && strcmp(p, "s"))
    return 0;
  return lp_precision_parse(p, prec) == 0;
}

/* 1 when `name` is there and not empty, 0 when not, -1 answered. */
static int has_param(struct http_req *r, const char *name) {
  char v[256];
  int rc = influx_query(r, name, v, sizeof v, "INVALID_QUERY");
  return rc > 0 ? v[0] != '\0' : rc;
}

void telemetry_handle_write_v1(struct http_req *r) {
  struct telemetry *t = r->app;
  influx_headers(r);
  enum lp_precision prec;
  int rc = has_param(r, "db");
  if (rc < 0)
    return;
  if (!rc) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_QUERY", "database is required", NULL);
    return;
  }
  if ((rc = influx_precision(r, false, &prec)) < 0)
    return;
  if (!rc) {
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
  int rc = has_param(r, "bucket");
  if (rc < 0)
    return;
  if (!rc) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_QUERY", "bucket is required", NULL);
    return;
  }
  int org = has_param(r, "org");
  if (!org)
    org = has_param(r, "orgID");
  if (org < 0)
    return;
  if (!org) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_QUERY", "organization is required",
                     NULL);
    return;
  }
  if ((rc = influx_precision(r, true, &prec)) < 0)
    return;
  if (!rc) {
    telemetry_reply_error(r, TELEMETRY_API_INFLUX, 400, "INVALID_PRECISION",
                     "invalid precision: ns, us, ms or s", NULL);
    return;
  }
  telemetry_write_start(r, t, prec, TELEMETRY_API_INFLUX);
}

/* Clients call it first to see the server is there (no credential). */
void telemetry_handle_ping(struct http_req *r) {
  influx_headers(r);
  char verbose[8] = "";
  if (influx_query(r, "verbose", verbose, sizeof verbose, "INVALID_QUERY") < 0)
    return;
  if (strcmp(verbose, "true") == 0) {
    static const char body[] = "{\"version\":\"" INFLUX_VERSION "\"}";
    http_reply(r, 200, "application/json", body, sizeof body - 1);
    return;
  }
  http_reply(r, 204, NULL, NULL, 0);
}
