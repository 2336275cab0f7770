/* sqlite_rollup.c — the SQLite backend's 1-minute and 1-hour rollups of
 * every series, kept as points move into chunks.
 *
 * Points newer than a series' chunks (the common case) extend its rollups:
 * fresh minutes are summed from the points alone, and the minute the
 * chunks ended in is merged with its row. A point at or before the end of
 * the chunks may replace a value already counted (the last write wins), so
 * its minute is computed again from the chunks, which by then hold it.
 * Hours are summed from their minutes. Every update runs in the flush's
 * transaction, so rollups and chunks never disagree. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "core/util.h"
#include "series/internal.h"

struct rollups {
  sqlite3 *db;
  int64_t width; /* of the widest chunk (read_chunks) */
  sqlite3_stmt *put, *get, *minutes;
  struct rollup_cache *cache; /* NULL: none */
};

void rollup_cache_clear(struct rollup_cache *c) {
  if (c->by_id)
    memset(c->by_id, 0, c->cap * sizeof *c->by_id);
}

void rollup_cache_expire(struct rollup_cache *c, int64_t res, int64_t before) {
  for (size_t i = 0; i < c->cap; i++) {
    struct rollup_open *o = &c->by_id[i];
    if (res == MINUTE_NS && o->has_minute && o->minute.start_ns < before)
      o->has_minute = false;
    if (res == HOUR_NS && o->has_hour && o->hour.start_ns < before)
      o->has_hour = false;
  }
}

void rollup_cache_release(struct rollup_cache *c) {
  free(c->by_id);
  c->by_id = NULL;
  c->cap = 0;
}

/* The bucket of (id, res) the cache holds, or NULL. */
static struct series_bucket *cached(struct rollups *r, uint32_t id, int64_t res) {
  if (!r->cache || id >= r->cache->cap)
    return NULL;
  struct rollup_open *o = &r->cache->by_id[id];
  return res == MINUTE_NS ? (o->has_minute ? &o->minute : NULL) : (o->has_hour ? &o->hour : NULL);
}

/* Notes what (id, res) holds now (forgotten when there is no room). */
static void remember(struct rollups *r, uint32_t id, int64_t res, const struct series_bucket *b) {
  struct rollup_cache *c = r->cache;
  if (!c)
    return;
  if (id >= c->cap) {
    size_t was = c->cap;
    if (ARRAY_GROW(c->by_id, c->cap, (size_t)id + 1, 1024, ARRAY_NOMAX))
      return;
    memset(c->by_id + was, 0, (c->cap - was) * sizeof *c->by_id);
  }
  struct rollup_open *o = &c->by_id[id];
  if (res == MINUTE_NS) {
    o->minute = *b;
    o->has_minute = true;
  } else {
    o->hour = *b;
    o->has_hour = true;
  }
}


int rollups_prepare(sqlite3 *db, int64_t width, struct rollup_cache *cache, struct rollups **out) {
  struct rollups *r = calloc(1, sizeof *r);
  if (!r)
    return GROVE_ENOMEM;
  r->db = db;
  r->width = width;
  r->cache = cache;
  /* an upsert: a bucket already there is updated in place (REPLACE would
   * delete its row and insert another) */
  if (sqlite3_prepare_v2(db, "INSERT INTO rollups (series, res, bucket, count, sum, min, max, "
                             "first, last) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (series, "
                             "res, bucket) DO UPDATE SET count = excluded.count, sum = excluded.sum, "
                             "min = excluded.min, max = excluded.max, first = excluded.first, "
                             "last = excluded.last",
                         -1, &r->put, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT count, sum, min, max, first, last FROM rollups WHERE "
                             "series = ? AND res = ? AND bucket = ?", -1, &r->get,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT bucket, count, sum, min, max, first, last FROM rollups "
                             "WHERE series = ? AND res = ? AND bucket >= ? AND bucket < ? "
                             "ORDER BY bucket", -1, &r->minutes, NULL) != SQLITE_OK) {
    rollups_finish(r);
    return GROVE_ESTORE;
  }
  *out = r;
  return 0;
}

void rollups_finish(struct rollups *r) {
  if (!r)
    return;
  sqlite3_finalize(r->put);
  sqlite3_finalize(r->get);
  sqlite3_finalize(r->minutes);
  free(r);
}

static void add_point(struct series_bucket *b, double v) {
  if (!b->count)
    b->first = b->min = b->max = v;
  b->count++;
  b->sum += v;
  b->min = fmin(b->min, v);
  b->max = fmax(b->max, v);
  b->last = v;
}

/* Folds a later bucket into b (b's points all come first). */
static void add_bucket(struct series_bucket *b, const struct series_bucket *x) {
  if (!x->count)
    return;
  if (!b->count) {
    int64_t start = b->start_ns;
    *b = *x;
    b->start_ns = start;
    return;
  }
  b->count += x->count;
  b->sum += x->sum;
  b->min = fmin(b->min, x->min);
  b->max = fmax(b->max, x->max);
  b->last = x->last;
}

static int put(struct rollups *r, uint32_t id, int64_t res, const struct series_bucket *b) {
  sqlite3_bind_int64(r->put, 1, id);
  sqlite3_bind_int64(r->put, 2, res / 1000000000);
  sqlite3_bind_int64(r->put, 3, b->start_ns);
  sqlite3_bind_int64(r->put, 4, (sqlite3_int64)b->count);
  sqlite3_bind_double(r->put, 5, b->sum);
  sqlite3_bind_double(r->put, 6, b->min);
  sqlite3_bind_double(r->put, 7, b->max);
  sqlite3_bind_double(r->put, 8, b->first);
  sqlite3_bind_double(r->put, 9, b->last);
  int rc = sqlite3_step(r->put) == SQLITE_DONE ? 0 : GROVE_ESTORE;
  sqlite3_reset(r->put);
  if (!rc)
    remember(r, id, res, b);
  return rc;
}

static void row_bucket(sqlite3_stmt *st, int col, struct series_bucket *b) {
  b->count = (uint64_t)sqlite3_column_int64(st, col);
  b->sum = sqlite3_column_double(st, col + 1);
  b->min = sqlite3_column_double(st, col + 2);
  b->max = sqlite3_column_double(st, col + 3);
  b->first = sqlite3_column_double(st, col + 4);
  b->last = sqlite3_column_double(st, col + 5);
}

/* A minute computed again from the chunks. */
static int recompute_minute(struct rollups *r, uint32_t id, int64_t minute) {
  struct head acc = {0};
  int rc = read_chunks(r->db, id, minute, minute + MINUTE_NS, r->width, &acc);
  struct series_bucket b = {minute, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; !rc && i < acc.n; i++)
    add_point(&b, acc.pts[i].value);
  free(acc.pts);
  return rc ? rc : b.count ? put(r, id, MINUTE_NS, &b) : 0;
}

/* An hour summed from its minutes. */
static int recompute_hour(struct rollups *r, uint32_t id, int64_t hour) {
  struct series_bucket b = {hour, 0, 0, 0, 0, 0, 0}, m;
  sqlite3_bind_int64(r->minutes, 1, id);
  sqlite3_bind_int64(r->minutes, 2, MINUTE_NS / 1000000000);
  sqlite3_bind_int64(r->minutes, 3, hour);
  sqlite3_bind_int64(r->minutes, 4, hour + HOUR_NS);
  int step;
  while ((step = sqlite3_step(r->minutes)) == SQLITE_ROW) {
    row_bucket(r->minutes, 1, &m);
    add_bucket(&b, &m);
  }
  sqlite3_reset(r->minutes);
  if (step != SQLITE_DONE)
    return GROVE_ESTORE;
  return b.count ? put(r, id, HOUR_NS, &b) : 0;
}

/* A rollup row (series id, res, bucket) read into b, if there is one
 * (b is left as it is otherwise). */
static int get_row(struct rollups *r, uint32_t id, int64_t res, int64_t bucket,
                   struct series_bucket *b) {
  const struct series_bucket *c = cached(r, id, res);
  if (c && c->start_ns == bucket) {
    *b = *c;
    return 0;
  }
  sqlite3_bind_int64(r->get, 1, id);
  sqlite3_bind_int64(r->get, 2, res / 1000000000);
  sqlite3_bind_int64(r->get, 3, bucket);
  int step = sqlite3_step(r->get);
  if (step == SQLITE_ROW)
    row_bucket(r->get, 0, b);
  sqlite3_reset(r->get);
  return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : GROVE_ESTORE;
}

/* Hours touched by one update, to write once each at its end: summed
 * again from their minutes where a minute was computed again (points at
 * or before the chunks' end), else the stored hour extended by the new
 * points alone (all later than anything stored: one read, not sixty). */
struct hours {
  struct hour {
    int64_t start;
    bool whole;                /* sum it again from its minutes */
    struct series_bucket added; /* the new points in it, in order */
  } *h;
  size_t n, cap;
};

static struct hour *touch_hour(struct hours *t, int64_t minute, bool whole) {
  int64_t h = floor_to(minute, HOUR_NS);
  if (!t->n || t->h[t->n - 1].start != h) {
    if (ARRAY_GROW(t->h, t->cap, t->n + 1, 8, ARRAY_NOMAX))
      return NULL;
    t->h[t->n++] = (struct hour){h, false, {h, 0, 0, 0, 0, 0, 0}};
  }
  t->h[t->n - 1].whole |= whole;
  return &t->h[t->n - 1];
}

static int write_hour(struct rollups *r, uint32_t id, const struct hour *h) {
  if (h->whole)
    return recompute_hour(r, id, h->start);
  struct series_bucket b = {h->start, 0, 0, 0, 0, 0, 0};
  int rc = get_row(r, id, HOUR_NS, h->start, &b);
  if (rc)
    return rc;
  add_bucket(&b, &h->added);
  return b.count ? put(r, id, HOUR_NS, &b) : 0;
}

int rollups_update(struct rollups *r, uint32_t id, const struct series_sample *pts, size_t n,
                   int64_t prev_end) {
  struct hours touched = {NULL, 0, 0};
  int rc = 0;
  size_t j = 0;
  int64_t last = INT64_MIN;
  /* only points inside the rollups' range (pts come by time) */
  while (j < n && !rollup_covers(pts[j].ts_ns))
    j++;
  while (n > j && !rollup_covers(pts[n - 1].ts_ns))
    n--;
  /* a chunk end past the range: every point in range is at or before it */
  if (prev_end != INT64_MIN && prev_end >= ROLLUP_END_NS)
    prev_end = ROLLUP_END_NS - 1;
  /* points at or before what the chunks had: their minutes again, whole
   * (the chunks hold this flush's points already) */
  for (; !rc && j < n && prev_end != INT64_MIN && pts[j].ts_ns <= prev_end; j++) {
    int64_t m = floor_to(pts[j].ts_ns, MINUTE_NS);
    if (m != last && !(rc = recompute_minute(r, id, m)) && !touch_hour(&touched, m, true))
      rc = GROVE_ENOMEM;
    last = m;
  }
  /* newer points extend the rollups, minute by minute */
  while (!rc && j < n) {
    int64_t m = floor_to(pts[j].ts_ns, MINUTE_NS);
    if (m == last) { /* computed whole just now, these points with it */
      while (j < n && pts[j].ts_ns < m + MINUTE_NS)
        j++;
      continue;
    }
    struct hour *h = touch_hour(&touched, m, false);
    if (!h) {
      rc = GROVE_ENOMEM;
      break;
    }
    struct series_bucket b = {m, 0, 0, 0, 0, 0, 0};
    if (prev_end != INT64_MIN && rollup_covers(prev_end) && m == floor_to(prev_end, MINUTE_NS) &&
        (rc = get_row(r, id, MINUTE_NS, m, &b)))
      break;
    for (; j < n && pts[j].ts_ns < m + MINUTE_NS; j++) {
      add_point(&b, pts[j].value);
      add_point(&h->added, pts[j].value);
    }
    rc = put(r, id, MINUTE_NS, &b);
  }
  for (size_t i = 0; !rc && i < touched.n; i++)
    rc = write_hour(r, id, &touched.h[i]);
  free(touched.h);
  return rc;
}

int rollups_read(sqlite3 *db, uint32_t id, int64_t res, int64_t from, int64_t to, int64_t step,
                 struct series_bucket **out, size_t *n) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT bucket, count, sum, min, max, first, last FROM rollups "
                             "WHERE series = ? AND res = ? AND bucket >= ? AND bucket < ? "
                             "ORDER BY bucket", -1, &st, NULL) != SQLITE_OK)
    return GROVE_ESTORE;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, res / 1000000000);
  sqlite3_bind_int64(st, 3, from);
  sqlite3_bind_int64(st, 4, to);
  struct series_bucket *b = NULL, row;
  size_t nb = 0, cap = 0;
  int rc = 0, step_rc;
  while ((step_rc = sqlite3_step(st)) == SQLITE_ROW) {
    row.start_ns = sqlite3_column_int64(st, 0);
    row_bucket(st, 1, &row);
    int64_t bs = floor_to(row.start_ns, step);
    if (!nb || b[nb - 1].start_ns != bs) {
      if (ARRAY_GROW(b, cap, nb + 1, 64, ARRAY_NOMAX)) {
        rc = GROVE_ENOMEM;
        break;
      }
      b[nb++] = (struct series_bucket){bs, 0, 0, 0, 0, 0, 0};
    }
    add_bucket(&b[nb - 1], &row);
  }
  if (!rc && step_rc != SQLITE_DONE)
    rc = GROVE_ESTORE;
  sqlite3_finalize(st);
  if (rc) {
    free(b);
    return rc;
  }
  *out = b;
  *n = nb;
  return 0;
}

int rollups_expire(sqlite3 *db, int64_t res, int64_t before) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "DELETE FROM rollups WHERE res = ? AND bucket < ?", -1, &st,
                         NULL) != SQLITE_OK)
    return GROVE_ESTORE;
  sqlite3_bind_int64(st, 1, res / 1000000000);
  sqlite3_bind_int64(st, 2, before);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : GROVE_ESTORE;
  sqlite3_finalize(st);
  return rc;
}
