/* read.c — reading any series (read scope):
 *   GET /api/v1/series/points   raw points of a series, a page at a time
 *   GET /api/v1/series/range    buckets of a series (step, agg)
 * and the same answer for an app's own read routes (telemetry_read_reply:
 * flow's station range). Times are Unix nanoseconds or RFC 3339; steps
 * are durations (10s, 1m). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/util.h"
#include "net/http.h"
#include "series/key.h"
#include "series/series.h"
#include "telemetry/internal.h"

#define MAX_BUCKETS 100000

bool telemetry_param_int64(struct http_req *r, const char *name, bool rfc3339, int64_t *out) {
  char v[64];
  long n = http_query_get(r, name, 0, v, sizeof v);
  if (n == HTTP_QUERY_ABSENT)
    return true;
  if (n <= 0) /* empty, badly escaped, or longer than any time */
    return false;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (!*end)
    return errno != ERANGE && ((*out = x), true); /* past int64: refused, not clamped */
  return rfc3339 && rfc3339_parse(v, out);
}

struct read_job {
  struct telemetry *t;
  char key[SERIES_KEY_MAX + 1];
  char *head;              /* JSON members put first (owned), or NULL */
  bool missing_null;
  int64_t from, to, step;  /* step 0: raw points */
  int agg;
  int rc;
  size_t limit;            /* raw points: at most this many */
  bool more;               /* raw points: more remain, from `next` on */
  int64_t next;
  struct series_sample *pts;
  struct series_bucket *buckets;
  size_t n;
  const char *source;      /* buckets: "raw", "1m" or "1h" */
};

static void read_job_free(struct read_job *j) {
  free(j->pts);
  free(j->buckets);
  free(j->head);
  free(j);
}

static void read_work(void *arg) {
  struct read_job *j = arg;
  uint32_t id;
  /* an unknown key reads as empty, without making it */
  j->rc = series_find(j->t->series, j->key, &id);
  if (j->rc)
    return;
  if (j->step)
    j->rc = series_aggregate(j->t->series, id, j->from, j->to, j->step, MAX_BUCKETS, &j->buckets,
                             &j->n, &j->source);
  else
    j->rc = series_read(j->t->series, id, j->from, j->to, j->limit, &j->pts, &j->n, &j->more,
                        &j->next);
}

/* [ts,value] (after a comma unless first): the hot loop of a read, a
 * page of up to --series-read-max points, so no printf; the value in its
 * shortest round-trip form, as every JSON answer. */
static void put_point(struct buf *b, size_t i, int64_t ts, double v) {
  char p[2 + 1 + 20 + 1 + JSONOUT_DOUBLE_MAX + 1];
  size_t n = 0;
  if (i)
    p[n++] = ',';
  p[n++] = '[';
  if (ts < 0)
    p[n++] = '-';
  n += u64_to_dec(ts < 0 ? 0 - (uint64_t)ts : (uint64_t)ts, p + n);
  p[n++] = ',';
  n += jsonout_double(p + n, v);
  p[n++] = ']';
  buf_append(b, p, n);
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
    if (j->head)
      buf_puts(&b, j->head);
    buf_puts(&b, "\"series\":");
    if (j->rc == GROVE_ENOENT && j->missing_null) {
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
    buf_reserve(&b, n * 32); /* a point is about 25 bytes: one allocation, mostly */
    for (size_t i = 0; i < n; i++) {
      if (j->step)
        put_point(&b, i, j->buckets[i].start_ns,
                  series_bucket_value(&j->buckets[i], (enum series_agg)j->agg));
      else
        put_point(&b, i, j->pts[i].ts_ns, j->pts[i].value);
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
  read_job_free(j);
}

/* from, to, limit, and with how->buckets step and agg: false with *bad
 * set for the caller to answer, or with *bad NULL once answered. */
static bool read_params(struct http_req *r, struct read_job *j, const struct telemetry_read *how,
                        const char **bad) {
  j->from = INT64_MIN;
  j->to = INT64_MAX;
  if (how->last_hour) { /* the last hour unless told */
    j->to = (int64_t)clock_wall_ms() * 1000000 + 1;
    j->from = j->to - 3600LL * 1000000000;
  }
  if (!telemetry_param_int64(r, "from", true, &j->from) ||
      !telemetry_param_int64(r, "to", true, &j->to)) {
    *bad = "from and to are Unix nanoseconds (int64) or RFC 3339 times from 1677-09-21 to "
           "2262-04-11";
    return false;
  }
  /* raw points: a page of `limit` (the store's default, at most its max) */
  long limit = j->t->cfg.read_points;
  if (!http_query_long(r, "limit", 1, j->t->cfg.read_max, &limit)) {
    static _Thread_local char msg[96];
    snprintf(msg, sizeof msg, "limit is a number of points, 1 to %d", j->t->cfg.read_max);
    *bad = msg;
    return false;
  }
  j->limit = (size_t)limit;
  if (!how->buckets)
    return true;
  char v[32];
  int has = http_query_str(r, "step", v, sizeof v, "INVALID_QUERY");
  if (has < 0)
    return false; /* answered */
  if (has) {
    uint64_t ms;
    if (cfg_parse_ms(v, &ms) || !ms || ms > 366ULL * 86400000) {
      *bad = "step is a duration: 10s, 1m, 1h";
      return false;
    }
    j->step = (int64_t)ms * 1000000;
  }
  j->agg = SERIES_MEAN;
  if ((has = http_query_str(r, "agg", v, sizeof v, "INVALID_QUERY")) < 0)
    return false;
  if (has && (j->agg = series_agg_parse(v)) < 0) {
    *bad = "agg is mean, min, max, sum, count, first or last";
    return false;
  }
  if (j->to <= j->from) {
    *bad = "to must be after from";
    return false;
  }
  if (how->need_step && !j->step) {
    *bad = "give step";
    return false;
  }
  return true;
}

/* Answers with a job the caller filled the key of; frees it on error. */
static void read_start(struct telemetry *t, struct http_req *r, struct read_job *j,
                       const struct telemetry_read *how) {
  const char *bad = NULL;
  j->t = t;
  j->missing_null = how->missing_null;
  if (!read_params(r, j, how, &bad)) {
    read_job_free(j);
    if (bad)
      http_reply_error(r, 400, "INVALID_QUERY", bad, NULL);
    return;
  }
  if (how->head && !(j->head = strdup(how->head))) {
    read_job_free(j);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  if (http_req_defer(r, HTTP_POOL_STORE, read_work, read_done, j))
    read_job_free(j); /* 503 answered */
}

void telemetry_read_reply(struct telemetry *t, struct http_req *r, const char *key,
                          const struct telemetry_read *how) {
  struct read_job *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  snprintf(j->key, sizeof j->key, "%s", key);
  read_start(t, r, j, how);
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
  struct telemetry *t = r->app;
  struct read_job *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  const char *bad = "give series=KEY: \"measurement,tag=value field\" in line protocol escaping";
  char why[96] = "";
  int has = http_query_str(r, "series", j->key, sizeof j->key, "INVALID_QUERY");
  if (has <= 0 || !j->key[0] ||
      (!series_param(j->key, sizeof j->key, why, sizeof why) && (bad = why))) {
    read_job_free(j);
    if (has >= 0)
      http_reply_error(r, 400, "INVALID_QUERY", bad, NULL);
    return;
  }
  struct telemetry_read how = {.buckets = bucketed, .need_step = bucketed};
  read_start(t, r, j, &how);
}

void telemetry_handle_points(struct http_req *r) { handle_series(r, false); }
void telemetry_handle_range(struct http_req *r) { handle_series(r, true); }
