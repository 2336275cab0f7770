/* api.c — reading flow's data (read scope unless said):
 *   GET  /api/v1/flow/snapshot                 every station and region now
 *   GET  /api/v1/flow/stations                 the same, stations only
 *   POST /api/v1/flow/stations                 register or update one (write)
 *   GET  /api/v1/flow/stations/{id}
 *   GET  /api/v1/flow/stations/{id}/range      ?pollutant&from&to&step&agg
 *   GET  /api/v1/flow/regions, /api/v1/flow/regions/{name}
 *   GET  /api/v1/flow/alerts                   ?kind&subject&region&since&limit
 *   GET  /api/v1/series/points                 raw points of any series, a page at a time
 *   GET  /api/v1/series/range                  buckets of any series
 * Times are Unix nanoseconds or RFC 3339; steps are durations (10s, 1m). */
#include <math.h>
#include <errno.h>
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
#include "series/key.h"
#include "series/lineproto.h"
#include "store/store.h"

#define MAX_BUCKETS 100000

/* Whether the query names `name` at all (a value too long to copy is
 * there, and wrong). */
static bool query_has(const struct http_req *r, const char *name) {
  size_t n = strlen(name);
  for (const char *q = r->query; q && *q;) {
    if (strncmp(q, name, n) == 0 && (q[n] == '=' || q[n] == '&' || !q[n]))
      return true;
    q = strchr(q, '&');
    q = q ? q + 1 : NULL;
  }
  return false;
}

/* A query parameter as a Unix time in ns, or (rfc3339) RFC 3339 too. True
 * when absent (out kept) or valid. */
static bool number_param(struct http_req *r, const char *name, bool rfc3339, int64_t *out) {
  char v[64];
  if (!query_has(r, name))
    return true;
  if (http_query_get(r, name, 0, v, sizeof v) <= 0)
    return false;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (!*end)
    return errno != ERANGE && ((*out = x), true); /* past int64: refused, not clamped */
  return rfc3339 && rfc3339_parse(v, out);
}

bool flow_int64_param(struct http_req *r, const char *name, int64_t *out) {
  return number_param(r, name, false, out);
}

/* Unix nanoseconds or RFC 3339. */
static bool time_param(struct http_req *r, const char *name, int64_t *out) {
  return number_param(r, name, true, out);
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
  http_query_get(r, "kind", 0, j->kind, sizeof j->kind);
  http_query_get(r, "subject", 0, j->subject, sizeof j->subject);
  http_query_get(r, "region", 0, j->region, sizeof j->region);
  int64_t since = -1, limit = 100;
  const char *bad = NULL;
  if (j->kind[0] && strcmp(j->kind, "station") && strcmp(j->kind, "region"))
    bad = "kind is station or region";
  else if (!flow_int64_param(r, "since", &since))
    bad = "since is Unix milliseconds";
  else if (!flow_int64_param(r, "limit", &limit) || limit < 1 || limit > 1000)
    bad = "limit is 1 to 1000";
  if (bad) {
    free(j);
    http_reply_error(r, 400, "INVALID_QUERY", bad, NULL);
    return;
  }
  if (since >= 0)
    snprintf(j->since, sizeof j->since, "%lld", (long long)since);
  snprintf(j->limit, sizeof j->limit, "%lld", (long long)limit);
  job_start(r, alerts_work, alerts_done, j);
}

/* ---- series: raw points and buckets ------------------------------------------------- */

struct read_job {
  struct flow *f;
  char key[SERIES_KEY_MAX + 1];
  char station[72];
  int species;             /* -1: a series by key */
  int64_t from, to, step;  /* step 0: raw points */
  int agg;
  int rc;
  size_t limit;            /* raw points: at most this many */
  bool more;               /* raw points: more remain, from `next` on */
  int64_t next;
  struct chunk_point *pts;
  struct series_bucket *buckets;
  size_t n;
  const char *source;      /* buckets: "raw", "1m" or "1h" */
};

static void read_work(void *arg) {
  struct read_job *j = arg;
  uint32_t id;
  if (j->species >= 0) { /* the station's one series (flow_station_key) */
    struct buf key;
    buf_init(&key, sizeof j->key - 1);
    j->rc = flow_station_key(&key, j->station, strlen(j->station), (enum flow_species)j->species);
    if (!j->rc)
      memcpy(j->key, key.data, key.len + 1);
    buf_release(&key);
    if (j->rc)
      return;
  }
  /* an unknown key reads as empty, without making it */
  j->rc = series_find(j->f->series, j->key, &id);
  if (j->rc)
    return;
  if (j->step)
    j->rc = series_aggregate(j->f->series, id, j->from, j->to, j->step, MAX_BUCKETS,
                             &j->buckets, &j->n, &j->source);
  else
    j->rc = series_read(j->f->series, id, j->from, j->to, j->limit, &j->pts, &j->n, &j->more,
                        &j->next);
}

static void read_done(struct http_req *r, void *arg) {
  struct read_job *j = arg;
  if (!r->conn) {
  } else if (j->rc == GROVE_ETOOBIG) {
    http_reply_error(r, 400, "TOO_MANY_BUCKETS", "from, to and step ask for over 100000 buckets",
                     NULL);
  } else if (j->rc && j->rc != GROVE_ENOENT) {
    http_reply_error(r, 503, "STORE_UNAVAILABLE", "cannot read points now; try again", NULL);
  } else {
    size_t n = j->n;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "{");
    if (j->species >= 0) {
      buf_puts(&b, "\"station\":\"");
      buf_json_escape(&b, j->station, strlen(j->station));
      buf_printf(&b, "\",\"pollutant\":\"%s\",", flow_species_name((enum flow_species)j->species));
    }
    buf_puts(&b, "\"series\":");
    if (j->rc == GROVE_ENOENT && j->species >= 0) {
      buf_puts(&b, "null");
    } else {
      buf_putc(&b, '"');
      buf_json_escape(&b, j->key, strlen(j->key));
      buf_putc(&b, '"');
    }
    if (j->step) {
      static const char *const aggs[] = {"mean", "min", "max", "sum", "count", "first", "last"};
      buf_printf(&b, ",\"step_ns\":%lld,\"agg\":\"%s\",\"source\":\"%s\"", (long long)j->step,
                 aggs[j->agg], j->source ? j->source : "raw");
    }
    buf_puts(&b, ",\"points\":[");
    for (size_t i = 0; i < n; i++) {
      char num[JSONOUT_DOUBLE_MAX]; /* shortest round-trip form, as every JSON answer */
      if (j->step) {
        jsonout_double(num, series_bucket_value(&j->buckets[i], (enum series_agg)j->agg));
        buf_printf(&b, "%s[%lld,%s]", i ? "," : "", (long long)j->buckets[i].start_ns, num);
      } else {
        jsonout_double(num, j->pts[i].value);
        buf_printf(&b, "%s[%lld,%s]", i ? "," : "", (long long)j->pts[i].ts_ns, num);
      }
    }
    buf_printf(&b, "],\"truncated\":%s}", j->more ? "true" : "false");
    /* raw points come a page at a time: `next` is the `from` of the next */
    char meta[96] = "";
    if (!j->step && j->more)
      snprintf(meta, sizeof meta, "{\"count\":%zu,\"limit\":%zu,\"next\":%lld}", n, j->limit,
               (long long)j->next);
    else if (!j->step)
      snprintf(meta, sizeof meta, "{\"count\":%zu,\"limit\":%zu}", n, j->limit);
    http_reply_raw(r, 200, b.data, b.len, meta[0] ? meta : NULL);
    buf_release(&b);
  }
  free(j->pts);
  free(j->buckets);
  free(j);
}

/* from, to, step and agg; `bucketed`: step and agg allowed (range). */
static bool read_params(struct http_req *r, struct read_job *j, bool bucketed, bool recent,
                        const char **bad) {
  j->from = INT64_MIN;
  j->to = INT64_MAX;
  if (recent) { /* the last hour unless told */
    j->to = (int64_t)clock_wall_ms() * 1000000 + 1;
    j->from = j->to - 3600LL * 1000000000;
  }
  if (!time_param(r, "from", &j->from) || !time_param(r, "to", &j->to)) {
    *bad = "from and to are Unix nanoseconds (int64) or RFC 3339 times from 1677-09-21 to "
           "2262-04-11";
    return false;
  }
  /* raw points: a page of `limit` (the store's default, at most its max) */
  int64_t limit = j->f->cfg.read_points;
  if (!flow_int64_param(r, "limit", &limit) || limit < 1 || limit > j->f->cfg.read_max) {
    static _Thread_local char msg[96];
    snprintf(msg, sizeof msg, "limit is a number of points, 1 to %d", j->f->cfg.read_max);
    *bad = msg;
    return false;
  }
  j->limit = (size_t)limit;
  if (!bucketed)
    return true;
  char v[32];
  if (http_query_get(r, "step", 0, v, sizeof v) >= 0) {
    uint64_t ms;
    if (cfg_parse_ms(v, &ms) || !ms || ms > 366ULL * 86400000) {
      *bad = "step is a duration: 10s, 1m, 1h";
      return false;
    }
    j->step = (int64_t)ms * 1000000;
  }
  j->agg = SERIES_MEAN;
  if (http_query_get(r, "agg", 0, v, sizeof v) >= 0 && (j->agg = series_agg_parse(v)) < 0) {
    *bad = "agg is mean, min, max, sum, count, first or last";
    return false;
  }
  if (j->to <= j->from) {
    *bad = "to must be after from";
    return false;
  }
  return true;
}

/* The series parameter names a series in line protocol's escaping
 * (`cpu,host=web\ 1 usage`: tag host = "web 1", field usage); key (of
 * size n) is rewritten in place as the store's key (series/key.h). */
static bool series_param(char *key, size_t n, char *why, size_t whylen) {
  size_t len = strlen(key);
  struct lp_point *p = malloc(sizeof *p);
  char *scratch = malloc(len + 1);
  struct buf b;
  buf_init(&b, SERIES_KEY_MAX);
  bool ok = p && scratch;
  char err[64] = "";
  if (ok && lp_parse_key(key, len, scratch, p, err, sizeof err)) {
    snprintf(why, whylen, "series: %s", err);
    ok = false;
  } else if (ok) {
    struct series_key k = {.measurement = p->measurement, .field = p->fields[0].key,
                           .ntags = p->ntags};
    memcpy(k.tag_keys, p->tag_keys, (size_t)p->ntags * sizeof *k.tag_keys);
    memcpy(k.tag_values, p->tag_values, (size_t)p->ntags * sizeof *k.tag_values);
    if (series_key_encode(&b, &k) || b.len >= n) {
      snprintf(why, whylen, "series: not a series key");
      ok = false;
    } else {
      memcpy(key, b.data, b.len + 1);
    }
  } else {
    snprintf(why, whylen, "server is out of memory");
  }
  buf_release(&b);
  free(scratch);
  free(p);
  return ok;
}

static void handle_series(struct http_req *r, bool bucketed) {
  struct flow *f = r->app;
  struct read_job *j = job_new(r, sizeof *j);
  if (!j)
    return;
  j->f = f;
  j->species = -1;
  const char *bad = "give series=KEY: \"measurement,tag=value field\" in line protocol escaping";
  char why[96] = "";
  if (http_query_get(r, "series", 0, j->key, sizeof j->key) <= 0 ||
      (!series_param(j->key, sizeof j->key, why, sizeof why) && (bad = why)) ||
      !read_params(r, j, bucketed, false, &bad) || (bucketed && !j->step && (bad = "give step"))) {
    free(j);
    http_reply_error(r, 400, "INVALID_QUERY", bad, NULL);
    return;
  }
  job_start(r, read_work, read_done, j);
}

void flow_handle_points(struct http_req *r) { handle_series(r, false); }
void flow_handle_range(struct http_req *r) { handle_series(r, true); }

void flow_handle_station_range(struct http_req *r) {
  struct flow *f = r->app;
  struct flow_station st;
  const char *id = http_param(r, "id");
  if (!flow_engine_station_get(f->engine, id, &st)) {
    http_reply_error(r, 404, "NOT_FOUND", "no such station", NULL);
    return;
  }
  struct read_job *j = job_new(r, sizeof *j);
  if (!j)
    return;
  j->f = f;
  snprintf(j->station, sizeof j->station, "%s", id);
  char pol[16] = "pm25";
  const char *bad = NULL;
  http_query_get(r, "pollutant", 0, pol, sizeof pol);
  if ((j->species = flow_species_of(pol, strlen(pol))) < 0)
    bad = "pollutant is pm25, pm10, o3, no2, co or so2";
  if (bad || !read_params(r, j, true, true, &bad)) {
    free(j);
    http_reply_error(r, 400, "INVALID_QUERY", bad, NULL);
    return;
  }
  job_start(r, read_work, read_done, j);
}
