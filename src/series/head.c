/* head.c — the head: per series, the points written since the last flush,
 * sorted by time, in memory. While a flush moves them into chunks they
 * are set aside (frozen) and a fresh head takes new points; reads see
 * both layers, the frozen one older. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "series/internal.h"

static int head_grow(struct head *h) {
  return ARRAY_GROW(h->pts, h->cap, h->n + 1, 16, ARRAY_NOMAX) ? GROVE_ENOMEM : 0;
}

size_t points_lower_bound(const struct series_sample *pts, size_t lo, size_t n, int64_t ts) {
  size_t hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (pts[mid].ts_ns < ts)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Points that come in order (the common case) are appended without a
 * search. */
int head_put(struct head *h, int64_t ts, double v, bool replace) {
  size_t at = h->n;
  if (h->n && h->pts[h->n - 1].ts_ns >= ts) {
    size_t lo = points_lower_bound(h->pts, 0, h->n, ts);
    if (lo < h->n && h->pts[lo].ts_ns == ts) {
      if (replace)
        h->pts[lo].value = v;
      return 0;
    }
    at = lo;
  }
  if (head_grow(h))
    return GROVE_ENOMEM;
  memmove(h->pts + at + 1, h->pts + at, (h->n - at) * sizeof *h->pts);
  h->pts[at] = (struct series_sample){ts, v};
  h->n++;
  return 0;
}

int heads_apply(struct series *s, const struct series_point *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i].id >= s->nkeys || !s->keys[p[i].id])
      return GROVE_EINVAL;
    struct head *h = &s->heads[p[i].id];
    size_t before = h->n;
    int rc = head_put(h, p[i].ts_ns, p[i].value, true);
    if (rc)
      return rc;
    s->head_points += h->n - before;
    s->head_series += !before && h->n;
  }
  return 0;
}

void heads_free(struct head *h, uint32_t n) {
  for (uint32_t i = 0; h && i < n; i++)
    free(h[i].pts);
  free(h);
}

struct head *heads_new(struct series *s) {
  return calloc(s->capkeys ? s->capkeys : 1, sizeof(struct head));
}

void heads_freeze(struct series *s, struct head *fresh) {
  s->frozen = s->heads;
  s->nfrozen = s->nkeys;
  s->heads = fresh;
  s->head_points = 0;
  s->head_series = 0;
}

void heads_clear(struct series *s) {
  for (uint32_t i = 0; i < s->nkeys; i++) {
    free(s->heads[i].pts);
    s->heads[i] = (struct head){0};
  }
  s->head_points = 0;
  s->head_series = 0;
}

bool heads_pending(struct series *s) { return s->head_points || s->frozen; }

size_t series_head_points(struct series *s) {
  pthread_mutex_lock(&s->lock); /* 0 with PostgreSQL: no points wait in memory */
  size_t n = s->head_points;
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* A series' points in memory, older first: set aside by a flush, then
 * the head (under lock; NULL where there are none). */
static void layers_of(const struct series *s, uint32_t id, const struct head *layers[2]) {
  layers[0] = id < s->nfrozen ? &s->frozen[id] : NULL;
  layers[1] = id < s->nkeys ? &s->heads[id] : NULL;
}

int heads_copy(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
               struct merge_src mem[2]) {
  const struct head *layers[2];
  int rc = 0;
  pthread_mutex_lock(&s->lock);
  layers_of(s, id, layers);
  for (int l = 0; l < 2; l++) {
    mem[l] = (struct merge_src){NULL, 0};
    if (!layers[l] || !layers[l]->n || rc)
      continue;
    const struct series_sample *p = layers[l]->pts;
    size_t n = layers[l]->n, lo = points_lower_bound(p, 0, n, from), end = lo;
    while (end < n && end - lo < limit && p[end].ts_ns < to)
      end++;
    if (end == lo)
      continue;
    struct series_sample *c = malloc((end - lo) * sizeof *c);
    if (!c) {
      rc = GROVE_ENOMEM;
      continue;
    }
    memcpy(c, p + lo, (end - lo) * sizeof *c);
    mem[l] = (struct merge_src){c, end - lo};
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

/* A layer costs a search per bucket, not a look at each point. */
int heads_unrolled(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                   struct starts *l) {
  const struct head *layers[2];
  layers_of(s, id, layers);
  int rc = 0;
  for (int k = 0; k < 2 && !rc; k++) {
    const struct head *h = layers[k];
    size_t i = 0;
    int64_t at = from;
    while (h && !rc) {
      if ((i = points_lower_bound(h->pts, i, h->n, at)) == h->n || h->pts[i].ts_ns >= to)
        break;
      int64_t bs = floor_to(h->pts[i].ts_ns, step);
      rc = starts_add(l, bs);
      if (__builtin_add_overflow(bs, step, &at))
        break;
    }
  }
  return rc;
}
