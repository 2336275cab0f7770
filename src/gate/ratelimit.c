/* ratelimit.c — striped token buckets. */
#include "gate/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/map.h"

#define STRIPES 64

struct bucket {
  double tokens;
  uint64_t last_ns;
  double per_s, burst;
};

struct limiter {
  struct {
    pthread_mutex_t lock;
    struct map buckets;
  } stripe[STRIPES];
};

int rate_parse(const char *s, struct rate *out) {
  memset(out, 0, sizeof *out);
  if (!s || strcmp(s, "0") == 0 || !*s)
    return 0;
  char *end;
  double n = strtod(s, &end);
  if (end == s || n <= 0 || *end != '/')
    return GROVE_EINVAL;
  unsigned w;
  if (strcmp(end, "/s") == 0)
    w = 1;
  else if (strcmp(end, "/m") == 0)
    w = 60;
  else if (strcmp(end, "/h") == 0)
    w = 3600;
  else
    return GROVE_EINVAL;
  out->per_s = n / w;
  out->window_s = w;
  out->quota = n;
  out->burst = n; /* a window's quota may come at once */
  if (out->burst < 1)
    out->burst = 1;
  return 0;
}

int limiter_create(struct limiter **out) {
  struct limiter *l = calloc(1, sizeof *l);
  if (!l)
    return GROVE_ENOMEM;
  for (int i = 0; i < STRIPES; i++) {
    pthread_mutex_init(&l->stripe[i].lock, NULL);
    map_init(&l->stripe[i].buckets);
  }
  *out = l;
  return 0;
}

void limiter_destroy(struct limiter *l) {
  if (!l)
    return;
  for (int i = 0; i < STRIPES; i++) {
    const char *k;
    void *v;
    for (size_t it = 0; map_next(&l->stripe[i].buckets, &it, &k, &v);)
      free(v);
    map_release(&l->stripe[i].buckets);
    pthread_mutex_destroy(&l->stripe[i].lock);
  }
  free(l);
}

static void refill(struct bucket *b, uint64_t now_ns) {
  if (now_ns > b->last_ns) {
    b->tokens += (double)(now_ns - b->last_ns) / 1e9 * b->per_s;
    if (b->tokens > b->burst)
      b->tokens = b->burst;
    b->last_ns = now_ns;
  }
}

void limiter_take(struct limiter *l, const char *key, const struct rate *r, uint64_t now_ns,
                  struct limit_result *out) {
  memset(out, 0, sizeof *out);
  if (r->per_s <= 0) {
    out->allowed = true;
    out->remaining = -1;
    return;
  }
  unsigned s = (unsigned)(hash_bytes(key, strlen(key)) % STRIPES);
  pthread_mutex_lock(&l->stripe[s].lock);
  struct bucket *b = map_get(&l->stripe[s].buckets, key);
  if (!b) {
    b = malloc(sizeof *b);
    if (!b || map_put(&l->stripe[s].buckets, key, b, NULL)) {
      free(b);
      pthread_mutex_unlock(&l->stripe[s].lock);
      out->allowed = true; /* out of memory: do not refuse service for it */
      out->remaining = 0;
      return;
    }
    b->tokens = r->burst;
    b->last_ns = now_ns;
  }
  b->per_s = r->per_s;
  b->burst = r->burst;
  refill(b, now_ns);
  if (b->tokens >= 1) {
    b->tokens -= 1;
    out->allowed = true;
  } else {
    out->retry_after_s = (long)ceil((1 - b->tokens) / r->per_s);
  }
  out->remaining = (long)floor(b->tokens);
  out->reset_s = (long)ceil((b->burst - b->tokens) / r->per_s);
  pthread_mutex_unlock(&l->stripe[s].lock);
}

void limiter_refund(struct limiter *l, const char *key, const struct rate *r) {
  if (r->per_s <= 0)
    return;
  unsigned s = (unsigned)(hash_bytes(key, strlen(key)) % STRIPES);
  pthread_mutex_lock(&l->stripe[s].lock);
  struct bucket *b = map_get(&l->stripe[s].buckets, key);
  if (b) {
    b->tokens += 1;
    if (b->tokens > b->burst)
      b->tokens = b->burst;
  }
  pthread_mutex_unlock(&l->stripe[s].lock);
}

size_t limiter_sweep(struct limiter *l, uint64_t now_ns) {
  size_t left = 0;
  for (int i = 0; i < STRIPES; i++) {
    pthread_mutex_lock(&l->stripe[i].lock);
    const char *k;
    void *v;
    for (size_t it = 0; map_next(&l->stripe[i].buckets, &it, &k, &v);) {
      struct bucket *b = v;
      refill(b, now_ns);
      if (b->tokens >= b->burst) {
        map_del(&l->stripe[i].buckets, k); /* k is freed: read nothing after */
        free(b);
      } else {
        left++;
      }
    }
    pthread_mutex_unlock(&l->stripe[i].lock);
  }
  return left;
}

void fast_bucket_take(struct fast_bucket *b, const struct rate *r, uint64_t now_ns,
                      struct limit_result *out) {
  memset(out, 0, sizeof *out);
  if (r->per_s <= 0) {
    out->allowed = true;
    out->remaining = -1;
    return;
  }
  /* each request moves the arrival time on by one interval; up to a
   * burst's worth of intervals may be ahead of now */
  uint64_t interval = (uint64_t)(1e9 / r->per_s);
  uint64_t window = (uint64_t)((r->burst - 1) * 1e9 / r->per_s);
  uint64_t tat = atomic_load_explicit(&b->tat_ns, memory_order_relaxed);
  for (;;) {
    uint64_t base = tat > now_ns ? tat : now_ns;
    if (base - now_ns > window) {
      uint64_t wait = base - now_ns - window;
      out->retry_after_s = (long)((wait + 999999999) / 1000000000);
      out->reset_s = (long)((base - now_ns + 999999999) / 1000000000);
      return;
    }
    if (atomic_compare_exchange_weak_explicit(&b->tat_ns, &tat, base + interval,
                                              memory_order_relaxed, memory_order_relaxed)) {
      uint64_t ahead = base + interval - now_ns;
      out->allowed = true;
      out->remaining = ahead > window + interval ? 0 : (long)((window + interval - ahead) / interval);
      out->reset_s = (long)((ahead + 999999999) / 1000000000);
      return;
    }
  }
}
