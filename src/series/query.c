/* query.c — reads: a page of a series' points (series_read), and
 * aggregates in buckets of any step (series_aggregate) answered from the
 * backend's rollups where the step allows, with the buckets that the
 * rollups cannot answer yet (points not rolled up, points outside the
 * rollups' range) computed from the points themselves. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "core/util.h"
#include "series/internal.h"

int series_read(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
                struct series_sample **out, size_t *n, bool *more, int64_t *next) {
  if (!limit)
    return GROVE_EINVAL;
  struct head acc = {0};
  bool m = false;
  int64_t nx = 0;
  int rc = s->ops->read(s, id, from, to, limit, &acc, &m, &nx);
  if (rc) {
    free(acc.pts);
    return rc;
  }
  *out = acc.pts;
  *n = acc.n;
  if (more)
    *more = m;
  if (next)
    *next = m ? nx : 0;
  return 0;
}

int series_range(struct series *s, uint32_t id, int64_t from, int64_t to,
                 struct series_sample **out, size_t *n) {
  return series_read(s, id, from, to, SIZE_MAX, out, n, NULL, NULL);
}

uint64_t series_read_work(struct series *s) {
  return __atomic_load_n(&s->read_work, __ATOMIC_RELAXED);
}

/* ---- aggregates ------------------------------------------------------------------ */

int series_agg_parse(const char *name) {
  static const char *const names[] = {"mean", "min", "max", "sum", "count", "first", "last"};
  if (strcmp(name, "avg") == 0)
    return SERIES_MEAN;
  for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
    if (strcmp(name, names[i]) == 0)
      return i;
  return -1;
}

double series_bucket_value(const struct series_bucket *b, enum series_agg agg) {
  switch (agg) {
  case SERIES_MEAN: return b->sum / (double)b->count;
  case SERIES_MIN: return b->min;
  case SERIES_MAX: return b->max;
  case SERIES_SUM: return b->sum;
  case SERIES_COUNT: return (double)b->count;
  case SERIES_FIRST: return b->first;
  case SERIES_LAST: return b->last;
  }
  return 0;
}

int bucketer_add(struct bucketer *k, const struct series_bucket *b) {
  if (ARRAY_GROW(k->b, k->cap, k->n + 1, 64, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  k->b[k->n++] = *b;
  return 0;
}

int bucketer_point(int64_t ts, double v, void *arg) {
  struct bucketer *k = arg;
  int64_t bs = floor_to(ts, k->step);
  if (!k->n || k->b[k->n - 1].start_ns != bs) {
    int rc = bucketer_add(k, &(struct series_bucket){bs, 0, 0, v, v, v, v});
    if (rc)
      return rc;
  }
  struct series_bucket *x = &k->b[k->n - 1];
  x->count++;
  x->sum += v;
  if (v < x->min)
    x->min = v;
  if (v > x->max)
    x->max = v;
  x->last = v;
  return 0;
}

int starts_add(struct starts *l, int64_t bs) {
  if (ARRAY_GROW(l->v, l->cap, l->n + 1, 16, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  l->v[l->n++] = bs;
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sorts l and keeps each start once. */
static void starts_unique(struct starts *l) {
  if (!l->n)
    return;
  qsort(l->v, l->n, sizeof *l->v, cmp_i64);
  size_t u = 1;
  for (size_t i = 1; i < l->n; i++)
    if (l->v[i] != l->v[u - 1])
      l->v[u++] = l->v[i];
  l->n = u;
}

/* The rollups' buckets with those in `fix` (sorted) computed again from
 * the points: one raw read per run of consecutive buckets, then one merge
 * of the two sorted lists. */
static int fix_buckets(struct series *s, uint32_t id, int64_t step, const struct starts *fix,
                       struct series_bucket **b, size_t *nb) {
  struct bucketer raw = {NULL, 0, 0, step};
  int rc = 0;
  for (size_t i = 0; !rc && i < fix->n;) {
    size_t j = i + 1;
    int64_t next; /* (buckets far apart: their difference may not be an int64) */
    while (j < fix->n && !__builtin_add_overflow(fix->v[j - 1], step, &next) &&
           next == fix->v[j])
      j++;
    int64_t end;
    if (__builtin_add_overflow(fix->v[j - 1], step, &end))
      end = INT64_MAX;
    rc = s->ops->buckets(s, id, fix->v[i], end, &raw);
    i = j;
  }
  struct series_bucket *out = rc ? NULL : malloc((*nb + raw.n + 1) * sizeof *out);
  if (!rc && !out)
    rc = GROVE_ENOMEM;
  if (rc) {
    free(raw.b);
    return rc;
  }
  size_t i = 0, j = 0, n = 0;
  while (i < *nb || j < raw.n) {
    if (j == raw.n || (i < *nb && (*b)[i].start_ns < raw.b[j].start_ns)) {
      out[n++] = (*b)[i++];
    } else {
      if (i < *nb && (*b)[i].start_ns == raw.b[j].start_ns)
        i++; /* the points' bucket replaces the rollups' */
      out[n++] = raw.b[j++];
    }
  }
  free(raw.b);
  free(*b);
  *b = out;
  *nb = n;
  return 0;
}

/* Adds to `fix` the buckets that points outside the rollups' range fall
 * in: read raw (almost always none: the first and last hours of the time
 * range). */
static int edge_buckets(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                        struct starts *fix) {
  const int64_t edges[2][2] = {{from, to < ROLLUP_MIN_NS ? to : ROLLUP_MIN_NS},
                               {from > ROLLUP_END_NS ? from : ROLLUP_END_NS, to}};
  int rc = 0;
  for (int e = 0; e < 2 && !rc; e++) {
    if (edges[e][0] >= edges[e][1])
      continue;
    struct series_sample *pts;
    size_t np;
    if ((rc = series_range(s, id, edges[e][0], edges[e][1], &pts, &np)))
      break;
    for (size_t i = 0; i < np && !rc; i++)
      rc = starts_add(fix, floor_to(pts[i].ts_ns, step));
    free(pts);
  }
  return rc;
}

int series_aggregate(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                     size_t max_buckets, struct series_bucket **out, size_t *n,
                     const char **source) {
  if (step <= 0 || to <= from)
    return GROVE_EINVAL;
  /* buckets are the multiples of step whose whole span lies in
   * [TIME_MIN_NS, INT64_MAX]: from rounds down (up when down is not an
   * int64), to up (down likewise); points outside are in no bucket */
  if (from < TIME_MIN_NS)
    from = TIME_MIN_NS;
  if (time_floor(from, step, &from) && time_ceil(from, step, &from))
    from = INT64_MAX;
  if (time_ceil(to, step, &to) && time_floor(to, step, &to))
    to = INT64_MIN;
  if (to <= from) {
    if (source)
      *source = "raw";
    *out = NULL;
    *n = 0;
    return 0;
  }
  if (((uint64_t)to - (uint64_t)from) / (uint64_t)step > max_buckets)
    return GROVE_ETOOBIG;
  if (step % MINUTE_NS) { /* finer than the rollups: the points themselves */
    if (source)
      *source = "raw";
    struct bucketer k = {NULL, 0, 0, step};
    int rc = s->ops->buckets(s, id, from, to, &k);
    if (rc) {
      free(k.b);
      return rc;
    }
    *out = k.b;
    *n = k.n;
    return 0;
  }
  int64_t res = step % HOUR_NS ? MINUTE_NS : HOUR_NS;
  if (source)
    *source = res == HOUR_NS ? "1h" : "1m";
  struct series_bucket *b = NULL;
  size_t nb = 0;
  int rc = s->ops->rollups_read(s, id, res, from, to, step, &b, &nb);
  if (rc)
    return rc;
  struct starts fix = {0};
  pthread_mutex_lock(&s->lock);
  rc = s->ops->unrolled(s, id, from, to, step, &fix);
  pthread_mutex_unlock(&s->lock);
  if (!rc)
    rc = edge_buckets(s, id, from, to, step, &fix);
  starts_unique(&fix);
  if (!rc && fix.n)
    rc = fix_buckets(s, id, step, &fix, &b, &nb);
  free(fix.v);
  if (rc) {
    free(b);
    return rc;
  }
  *out = b;
  *n = nb;
  return 0;
}
