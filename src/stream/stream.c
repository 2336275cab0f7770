/* stream.c — pane-based keyed windows with a watermark.
 *
 * Time arithmetic: points can carry any int64 time, so every sum and
 * product of times is checked (__builtin_*_overflow). A point whose panes
 * and windows fit is taken; the bounds that follow from it (window ends,
 * the watermark it makes) are computed saturating, which only ever keeps a
 * window open or a watermark lower, never wrong. */
#include "stream/stream.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/map.h"

/* A pane's count and sum (16 bytes); min, max and last (32 more) are
 * kept apart, only when asked for. The pane number is kept modulo 2^32:
 * it only tells a slot's lap of the ring from another. */
struct pane {
  uint32_t no;
  uint32_t count;  /* 0: empty */
  double sum;
};

struct pane_ext {
  double min, max, last;
  int64_t last_ns;
};

struct key_state {
  int64_t next_start; /* start of the next window to emit */
  int64_t newest_ns;  /* newest event time seen for this key */
  struct pane panes[];
};

struct stream {
  struct stream_cfg cfg;
  int64_t pane_ns;
  int npanes;        /* ring size */
  int per_window;    /* panes in a window */
  stream_emit_fn emit;
  void *arg;
  struct map keys;   /* key -> struct key_state */
  int64_t max_ts;
  int64_t watermark;
  uint64_t late, ahead;
};

/* a + b, stuck at the int64 ends instead of wrapping */
static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

static int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* floor division for negative times too */
static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

int stream_create(struct stream **out, const struct stream_cfg *cfg, stream_emit_fn emit,
                  void *arg) {
  if (cfg->window_ns <= 0 || cfg->slide_ns <= 0 || cfg->slide_ns > cfg->window_ns ||
      cfg->lateness_ns < 0 || cfg->ahead_ns < 0)
    return GROVE_EINVAL;
  int64_t pane = gcd64(cfg->window_ns, cfg->slide_ns);
  int64_t per_window = cfg->window_ns / pane;
  /* panes from the oldest open window to the newest point accepted: the
   * watermark moves before a point goes in (stream_add_at), so that is a
   * window, a slide, the lateness and how far ahead a point may be */
  int64_t span = 0;
  if (__builtin_add_overflow(cfg->lateness_ns, cfg->slide_ns, &span) ||
      __builtin_add_overflow(span, cfg->ahead_ns, &span))
    return GROVE_EINVAL;
  int64_t ring = per_window + span / pane + 2;
  if (per_window > 4096 || ring > 8192)
    return GROVE_EINVAL;
  struct stream *s = calloc(1, sizeof *s);
  if (!s)
    return GROVE_ENOMEM;
  s->cfg = *cfg;
  s->pane_ns = pane;
  s->per_window = (int)per_window;
  s->npanes = (int)ring;
  s->emit = emit;
  s->arg = arg;
  map_init(&s->keys);
  s->max_ts = INT64_MIN;
  s->watermark = INT64_MIN;
  *out = s;
  return 0;
}

void stream_destroy(struct stream *s) {
  if (!s)
    return;
  const char *k;
  void *v;
  for (size_t it = 0; map_next(&s->keys, &it, &k, &v);)
    free(v);
  map_release(&s->keys);
  free(s);
}

size_t stream_key_bytes(const struct stream *s) {
  return sizeof(struct key_state) +
         (size_t)s->npanes * (sizeof(struct pane) + (s->cfg.sum_only ? 0 : sizeof(struct pane_ext)));
}

static int64_t slot_of(struct stream *s, int64_t no) {
  int64_t i = no % s->npanes;
  return i < 0 ? i + s->npanes : i;
}

static struct pane_ext *ext_at(struct stream *s, struct key_state *k, int64_t slot) {
  return (struct pane_ext *)(k->panes + s->npanes) + slot;
}

/* The first window start whose window holds the pane starting at
 * pane_start: windows start at multiples of slide, and the earliest that
 * still covers pane_start starts after pane_start - window. GROVE_ERANGE
 * when that start is not an int64. */
static int first_window_with(struct stream *s, int64_t pane_start, int64_t *out) {
  int64_t w = s->cfg.window_ns, sl = s->cfg.slide_ns, t, q;
  if (__builtin_sub_overflow(pane_start, w, &t))
    return GROVE_ERANGE;
  q = floor_div(t, sl) + 1; /* |q| <= |t| / sl + 1: no overflow */
  return __builtin_mul_overflow(q, sl, out) ? GROVE_ERANGE : 0;
}

/* Emits the key's windows that end at or before the watermark. Returns
 * false when the key holds nothing newer (it may be dropped). */
static bool emit_closed(struct stream *s, const char *name, struct key_state *k) {
  int64_t w = s->cfg.window_ns, sl = s->cfg.slide_ns;
  int64_t end;
  while (k->next_start != INT64_MIN && !__builtin_add_overflow(k->next_start, w, &end) &&
         end <= s->watermark) {
    struct window_result r = {name, k->next_start, end, 0, 0, INFINITY, -INFINITY, 0, 0,
                              INT64_MIN};
    int64_t first = floor_div(k->next_start, s->pane_ns);
    for (int i = 0; i < s->per_window; i++) {
      int64_t slot = slot_of(s, first + i);
      struct pane *p = &k->panes[slot];
      if (p->no != (uint32_t)(first + i) || !p->count)
        continue;
      r.count += p->count;
      r.sum += p->sum;
      if (s->cfg.sum_only)
        continue;
      struct pane_ext *x = ext_at(s, k, slot);
      r.min = fmin(r.min, x->min);
      r.max = fmax(r.max, x->max);
      if (x->last_ns >= r.last_ns) {
        r.last_ns = x->last_ns;
        r.last = x->last;
      }
    }
    if (s->cfg.sum_only)
      r.min = r.max = r.last = NAN;
    if (r.count) {
      r.mean = r.sum / (double)r.count;
      s->emit(&r, s->arg);
    }
    /* skip ahead over windows with no data at all (and past the last
     * representable one) */
    if (__builtin_add_overflow(k->next_start, sl, &k->next_start) ||
        k->newest_ns < k->next_start) {
      k->next_start = INT64_MIN;
      return false;
    }
  }
  return true;
}

static void close_windows(struct stream *s) {
  const char *name;
  void *v;
  for (size_t it = 0; map_next(&s->keys, &it, &name, &v);) {
    struct key_state *k = v;
    if (!emit_closed(s, name, k) && sat_add(k->newest_ns, s->cfg.window_ns) <= s->watermark) {
      map_del(&s->keys, name); /* idle for a whole window: nothing left to say */
      free(k);
    }
  }
}

static void set_watermark(struct stream *s, int64_t wm) {
  if (wm <= s->watermark)
    return;
  int64_t old = s->watermark;
  s->watermark = wm;
  /* windows end on slide boundaries: only crossing one can close any */
  if (old == INT64_MIN || floor_div(wm, s->cfg.slide_ns) != floor_div(old, s->cfg.slide_ns))
    close_windows(s);
}

/* The point's pane number and its first window start; GROVE_ERANGE when
 * its pane or one of its windows is not representable. */
static int place(struct stream *s, int64_t ts, int64_t *no, int64_t *first) {
  int64_t start, last_end;
  *no = floor_div(ts, s->pane_ns);
  if (__builtin_mul_overflow(*no, s->pane_ns, &start) || first_window_with(s, start, first))
    return GROVE_ERANGE;
  /* the last window holding it starts at floor(ts, slide) <= ts and ends a
   * window later */
  int64_t last_start;
  if (__builtin_mul_overflow(floor_div(ts, s->cfg.slide_ns), s->cfg.slide_ns, &last_start) ||
      __builtin_add_overflow(last_start, s->cfg.window_ns, &last_end))
    return GROVE_ERANGE;
  return 0;
}

static int add(struct stream *s, const char *key, int64_t ts, double value, int64_t now,
               bool bounded) {
  if (bounded && ts > sat_add(now, s->cfg.ahead_ns)) {
    s->ahead++;
    return STREAM_AHEAD;
  }
  if (s->watermark != INT64_MIN && ts < s->watermark) {
    s->late++;
    return STREAM_LATE;
  }
  int64_t no, first;
  if (place(s, ts, &no, &first))
    return GROVE_ERANGE;
  /* the watermark first: windows it closes go out before this point's pane
   * may reuse a slot of theirs; the point is never behind it */
  if (ts > s->max_ts)
    s->max_ts = ts;
  /* with a bound, every point moves it on as the wall clock goes, even one
   * older than the newest (which may be ahead of the clock) */
  int64_t moved = bounded && now < ts ? now : ts;
  if (!__builtin_sub_overflow(moved, s->cfg.lateness_ns, &moved))
    set_watermark(s, moved);
  struct key_state *k = map_get(&s->keys, key);
  if (!k) {
    k = malloc(stream_key_bytes(s));
    if (!k)
      return GROVE_ENOMEM;
    k->next_start = INT64_MIN;
    k->newest_ns = INT64_MIN;
    for (int i = 0; i < s->npanes; i++)
      k->panes[i] = (struct pane){0, 0, 0};
    if (map_put(&s->keys, key, k, NULL)) {
      free(k);
      return GROVE_ENOMEM;
    }
  }
  int64_t slot = slot_of(s, no);
  struct pane *p = &k->panes[slot];
  struct pane_ext *x = s->cfg.sum_only ? NULL : ext_at(s, k, slot);
  if (p->no != (uint32_t)no || !p->count) { /* empty, or from an older lap of the ring */
    *p = (struct pane){(uint32_t)no, 0, 0};
    if (x)
      *x = (struct pane_ext){INFINITY, -INFINITY, 0, INT64_MIN};
  }
  p->count++;
  p->sum += value;
  if (x) {
    x->min = fmin(x->min, value);
    x->max = fmax(x->max, value);
    if (ts >= x->last_ns) {
      x->last_ns = ts;
      x->last = value;
    }
  }
  if (k->next_start == INT64_MIN || first < k->next_start)
    k->next_start = first;
  if (ts > k->newest_ns)
    k->newest_ns = ts;
  return STREAM_ADDED;
}

int stream_add(struct stream *s, const char *key, int64_t ts, double value) {
  return add(s, key, ts, value, ts, false);
}

int stream_add_at(struct stream *s, const char *key, int64_t ts, double value, int64_t now) {
  return add(s, key, ts, value, now, s->cfg.ahead_ns > 0);
}

void stream_advance(struct stream *s, int64_t wm) { set_watermark(s, wm); }

void stream_flush(struct stream *s) {
  if (s->max_ts == INT64_MIN)
    return;
  int64_t end = sat_add(sat_add(s->max_ts, s->cfg.window_ns), 1);
  int64_t old = s->watermark;
  s->watermark = end;
  close_windows(s);
  s->watermark = old > end ? old : end;
}

int64_t stream_watermark(const struct stream *s) { return s->watermark; }
uint64_t stream_late(const struct stream *s) { return s->late; }
uint64_t stream_ahead(const struct stream *s) { return s->ahead; }
size_t stream_keys(const struct stream *s) { return s->keys.len; }

unsigned stream_partition(const char *key, unsigned n) {
  return n ? (unsigned)(hash_bytes(key, strlen(key)) % n) : 0;
}
