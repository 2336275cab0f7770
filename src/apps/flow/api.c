/* api.c — reading flow's data (read scope unless said):
 *   GET  /api/v1/flow/snapshot                 every station and region now
 *   GET  /api/v1/flow/stations                 the same, stations only
 *   POST /api/v1/flow/stations                 register or update one (write)
 *   GET  /api/v1/flow/stations/{id}
 *   GET  /api/v1/flow/stations/{id}/range      ?pollutant&from&to&step&agg
 *   GET  /api/v1/flow/regions, /api/v1/flow/regions/{name}
 *   GET  /api/v1/flow/alerts                   ?kind&subject&region&since&limit
 * Times are Unix nanoseconds or RFC 3339; steps are durations (10s, 1m).
 * (Any series reads through telemetry's GET /api/v1/series/points and
 * /range; a station's range answers as they do.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/flow/flow.h"
#include "core/config.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/util.h"
#include "gate/gate.h"
#include "net/http.h"
#include "store/store.h"

bool flow_int64_param(struct http_req *r, const char *name, int64_t *out) {
  return telemetry_param_int64(r, name, false, out);
}

/* A zeroed job, or NULL after answering 503. */
static void *job_new(struct http_req *r, size_t size) {
  void *j = calloc(1, size);
  if (!j)
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
  return j;
}

/* Runs a job on the store pool; frees it when it cannot (503 answered). */
static void job_start(struct http_req *r, http_work_fn work, http_done_fn done, void *j) {
  if (http_req_defer(r, HTTP_POOL_STORE, work, done, j))
    free(j);
}

/* ---- live state --------------------------------------------------------------------- */

void flow_handle_snapshot(struct http_req *r) {
  struct flow *f = r->app;
  http_reply_data(r, 200,
                  json_pack("{s:I,s:o,s:o}", "time", (json_int_t)clock_wall_ms() * 1000000,
                            "stations", flow_engine_stations_json(f->engine, NULL), "regions",
                            flow_engine_regions_json(f->engine, NULL)),
                  NULL);
}

/* The stations or regions (`region`): all, or only the one named. */
static void reply_entities(struct http_req *r, struct flow *f, bool region, const char *only) {
  json_t *list = region ? flow_engine_regions_json(f->engine, only)
                        : flow_engine_stations_json(f->engine, only);
  if (!only) {
    http_reply_data(r, 200, list,
                    json_pack("{s:I}", "count", (json_int_t)json_array_size(list)));
  } else if (!json_array_size(list)) {
    json_decref(list);
    http_reply_error(r, 404, "NOT_FOUND", region ? "no such region" : "no such station", NULL);
  } else {
    json_t *one = json_incref(json_array_get(list, 0));
    json_decref(list);
    http_reply_data(r, 200, one, NULL);
  }
}

static void handle_entities(struct http_req *r, bool region, const char *param) {
  reply_entities(r, r->app, region, param ? http_param(r, param) : NULL);
}

void flow_handle_stations(struct http_req *r) { handle_entities(r, false, NULL); }
void flow_handle_station(struct http_req *r) { handle_entities(r, false, "id"); }
void flow_handle_regions(struct http_req *r) { handle_entities(r, true, NULL); }
void flow_handle_region(struct http_req *r) { handle_entities(r, true, "name"); }

/* ---- POST /api/v1/flow/stations ----------------------------------------------------- */

struct station_job {
  struct flow *f;
  struct flow_station st;
  int rc;
};

static void station_work(void *arg) {
  struct station_job *j = arg;
  j->rc = flow_station_save(j->f, &j->st, true);
  if (!j->rc)
    j->rc = flow_engine_station_put(j->f->engine, &j->st);
  if (!j->rc)
    flow_station_announce(j->f, &j->st, true);
}

static void station_done(struct http_req *r, void *arg) {
  struct station_job *j = arg;
  if (r->conn) {
    if (j->rc)
      http_reply_error(r, 503, "STORE_UNAVAILABLE", "the station was not saved; retry", NULL);
    else
      reply_entities(r, j->f, false, j->st.id);
  }
  free(j);
}

static bool coordinate(json_t *o, const char *name, double lim, double *out) {
  json_t *v = json_object_get(o, name);
  if (!v || json_is_null(v)) {
    *out = NAN;
    return true;
  }
  if (!json_is_number(v))
    return false;
  *out = json_number_value(v);
  return *out >= -lim && *out <= lim;
}

void flow_handle_station_put(struct http_req *r) {
  struct flow *f = r->app;
  json_t *o = http_req_json(r);
  if (!o)
    return;
  struct station_job *j = job_new(r, sizeof *j);
  if (!j) {
    json_decref(o);
    return;
  }
  const char *id = json_string_value(json_object_get(o, "id"));
  const char *name = json_string_value(json_object_get(o, "name"));
  const char *region = json_string_value(json_object_get(o, "region"));
  const char *bad = NULL;
  if (!id || !flow_name_valid(id, strlen(id)))
    bad = "id must be 1-64 of A-Z a-z 0-9 . _ ~ -";
  else if (json_object_get(o, "name") && (!name || strlen(name) > 128))
    bad = "name must be a string of at most 128 bytes";
  else if (json_object_get(o, "region") && (!region || !flow_name_valid(region, strlen(region))))
    bad = "region must be 1-64 of A-Z a-z 0-9 . _ ~ -";
  else if (!coordinate(o, "lat", 90, &j->st.lat) || !coordinate(o, "lon", 180, &j->st.lon))
    bad = "lat must be in [-90, 90] and lon in [-180, 180]";
  if (bad) {
    json_decref(o);
    free(j);
    http_reply_error(r, 400, "INVALID_STATION", bad, NULL);
    return;
  }
  j->f = f;
  snprintf(j->st.id, sizeof j->st.id, "%s", id);
  snprintf(j->st.name, sizeof j->st.name, "%s", name ? name : id);
  snprintf(j->st.region, sizeof j->st.region, "%s", region ? region : "unassigned");
  json_decref(o);
  job_start(r, station_work, station_done, j);
}

/* ---- alerts --------------------------------------------------------------------------- */

struct alerts_job {
  struct flow *f;
  char kind[16], subject[72], region[72], since[24], limit[8];
  int rc;
  char err[200];
  struct store_rows *rows;
};

static void alerts_work(void *arg) {
  struct alerts_job *j = arg;
  flow_writer_sync(j->f->writer); /* every alert raised before this request */
  char sql[512];
  const char *params[5];
  int n = 0;
  size_t at = (size_t)snprintf(sql, sizeof sql,
                               "SELECT id, kind, subject, region, from_category, to_category, "
                               "aqi, dominant, window_end, at FROM flow_alerts WHERE 1=1");
  static const char *const cols[] = {"kind", "subject", "region"};
  const char *vals[] = {j->kind, j->subject, j->region};
  for (int i = 0; i < 3; i++)
    if (vals[i][0]) {
      params[n++] = vals[i];
      at += (size_t)snprintf(sql + at, sizeof sql - at, " AND %s = $%d", cols[i], n);
    }
  if (j->since[0]) {
    params[n++] = j->since;
    at += (size_t)snprintf(sql + at, sizeof sql - at, " AND at >= CAST($%d AS BIGINT)", n);
  }
  params[n++] = j->limit;
  snprintf(sql + at, sizeof sql - at, " ORDER BY at DESC, id LIMIT CAST($%d AS INTEGER)", n);
  j->rc = store_query(j->f->ctx.store, sql, params, n, &j->rows, j->err, sizeof j->err);
}

static json_t *category_or_null(const char *v) {
  return flow_category_json(v ? atoi(v) : -1);
}

static void alerts_done(struct http_req *r, void *arg) {
  struct alerts_job *j = arg;
  if (r->conn) {
    if (j->rc) {
      log_error(r->id, "cannot list alerts", "error=\"%s\"", j->err);
      http_reply_error(r, 503, "STORE_UNAVAILABLE", "cannot read alerts now; try again", NULL);
    } else {
      json_t *list = json_array();
      for (int i = 0; i < j->rows->nrows; i++) {
        const struct store_rows *w = j->rows;
        json_array_append_new(
            list,
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:I,s:s,s:I,s:I}", "type", "alert", "id",
                      store_rows_get(w, i, "id"),
                      "kind", store_rows_get(w, i, "kind"), "subject",
                      store_rows_get(w, i, "subject"), "region", store_rows_get(w, i, "region"),
                      "from", category_or_null(store_rows_get(w, i, "from_category")), "to",
                      category_or_null(store_rows_get(w, i, "to_category")), "aqi",
                      (json_int_t)atoll(store_rows_get(w, i, "aqi")), "dominant",
                      store_rows_get(w, i, "dominant"), "window_end",
                      (json_int_t)atoll(store_rows_get(w, i, "window_end")), "at",
                      (json_int_t)atoll(store_rows_get(w, i, "at"))));
      }
      json_t *meta = json_pack("{s:I}", "count", (json_int_t)json_array_size(list));
      http_reply_data(r, 200, list, meta);
    }
  }
  store_rows_free(j->rows);
  free(j);
}

void flow_handle_alerts(struct http_req *r) {
  struct flow *f = r->app;
  struct alerts_job *j = job_new(r, sizeof *j);
  if (!j)
    return;
  j->f = f;
  if (http_query_str(r, "kind", j->kind, sizeof j->kind, "INVALID_QUERY") < 0 ||
      http_query_str(r, "subject", j->subject, sizeof j->subject, "INVALID_QUERY") < 0 ||
      http_query_str(r, "region", j->region, sizeof j->region, "INVALID_QUERY") < 0) {
    free(j);
    return;
  }
  int64_t since = -1;
  long limit = 100;
  const char *bad = NULL;
  if (j->kind[0] && strcmp(j->kind, "station") && strcmp(j->kind, "region"))
    bad = "kind is station or region";
  else if (!flow_int64_param(r, "since", &since))
    bad = "since is Unix milliseconds";
  else if (!http_query_long(r, "limit", 1, 1000, &limit))
    bad = "limit is 1 to 1000";
  if (bad) {
    free(j);
    http_reply_error(r, 400, "INVALID_QUERY", bad, NULL);
    return;
  }
  if (since >= 0)
    snprintf(j->since, sizeof j->since, "%lld", (long long)since);
  snprintf(j->limit, sizeof j->limit, "%ld", limit);
  job_start(r, alerts_work, alerts_done, j);
}

/* ---- a station's readings ------------------------------------------------------------ */

void flow_handle_station_range(struct http_req *r) {
  struct flow *f = r->app;
  struct flow_station st;
  const char *id = http_param(r, "id");
  if (!flow_engine_station_get(f->engine, id, &st)) {
    http_reply_error(r, 404, "NOT_FOUND", "no such station", NULL);
    return;
  }
  char pol[16] = "pm25";
  if (http_query_str(r, "pollutant", pol, sizeof pol, "INVALID_QUERY") < 0)
    return;
  int species = flow_species_of(pol, strlen(pol));
  if (species < 0) {
    http_reply_error(r, 400, "INVALID_QUERY", "pollutant is pm25, pm10, o3, no2, co or so2", NULL);
    return;
  }
  /* the station's one series (flow_station_key); "series": null when it
   * has none yet */
  struct buf key, head;
  buf_init(&key, 0);
  buf_init(&head, 0);
  int rc = flow_station_key(&key, id, strlen(id), (enum flow_species)species);
  if (!rc && (buf_puts(&head, "\"station\":\"") || buf_json_escape(&head, id, strlen(id)) ||
              buf_printf(&head, "\",\"pollutant\":\"%s\",",
                         flow_species_name((enum flow_species)species))))
    rc = GROVE_ENOMEM;
  if (rc) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
  } else {
    struct telemetry_read how = {.buckets = true, .last_hour = true, .missing_null = true,
                                 .head = head.data};
    telemetry_read_reply(f->telemetry, r, key.data, &how);
  }
  buf_release(&key);
  buf_release(&head);
}
