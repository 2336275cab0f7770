/* ratelimit.h — token buckets, exact within one process (gate-internal).
 *
 * A bucket holds up to `burst` tokens and gains `rate` a second; a request
 * takes one. Buckets live in striped maps, each stripe under its own lock,
 * so N concurrent takes on one bucket with k tokens let exactly k through.
 * A bucket that has refilled completely carries no information and is
 * dropped by limiter_sweep, so memory follows the active callers. */
#ifndef GROVE_RATELIMIT_H
#define GROVE_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct limiter;

struct rate {
  double per_s;   /* 0: no limit */
  double burst;
  unsigned window_s; /* the window the policy is stated in (RateLimit-Policy w=) */
  double quota;      /* requests per window, as configured */
};

struct limit_result {
  bool allowed;
  long remaining;      /* whole tokens left */
  long reset_s;        /* seconds until the bucket is full again */
  long retry_after_s;  /* when denied: seconds until one token */
};

/* Parses "1000/s", "50/m", "3600/h" (burst: one window's quota, at least
 * one second's worth) or "0" (no limit). Returns 0 or GROVE_EINVAL. */
int rate_parse(const char *s, struct rate *out);

int limiter_create(struct limiter **out);
void limiter_destroy(struct limiter *l);
/* Takes one token from the bucket named key at time now_ns. */
void limiter_take(struct limiter *l, const char *key, const struct rate *r, uint64_t now_ns,
                  struct limit_result *out);
/* Gives one token back to the bucket named key (a request it let through
 * was refused by a later bucket), never above its burst. A bucket that is
 * gone (swept: full) stays gone. */
void limiter_refund(struct limiter *l, const char *key, const struct rate *r);
/* One bucket shared by every thread without a lock (GCRA: the bucket is
 * the "theoretical arrival time" of the next request, moved with one CAS),
 * for the instance-wide limit every request takes from. */
struct fast_bucket {
  _Atomic uint64_t tat_ns;
};
void fast_bucket_take(struct fast_bucket *b, const struct rate *r, uint64_t now_ns,
                      struct limit_result *out);

/* Drops buckets that are full again. Returns how many remain. */
size_t limiter_sweep(struct limiter *l, uint64_t now_ns);

#endif
