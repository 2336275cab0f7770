/* cache.h — read-through caches in three tiers (seed 001 §9): this
 * process's memory (LRU with a TTL, --cache-ttl), Redis (--cache-redis-ttl,
 * when there is a broker), then the database through the caller's loader.
 * A write calls cache_invalidate: the entry leaves this process, Redis and,
 * through the broker's control messages, every other instance. Values are
 * bytes (JSON text as a rule). Read endpoints opt in by answering through
 * cache_get. Hit ratios per cache are in /metrics. Thread-safe.
 *
 * A load that started before an invalidation of the same cache does not
 * fill the cache with what it read (a generation check in memory, a
 * version check in Redis), so a stale value is never promoted into a tier
 * after a write. The instance that writes answers only after its own
 * memory and Redis dropped the entry (read-your-writes); other instances
 * drop theirs when the control message arrives. The memory tier is not
 * used while this instance is not subscribed to the broker, and is emptied
 * each time it subscribes again, since invalidations sent meanwhile never
 * reached it. */
#ifndef GROVE_CACHE_H
#define GROVE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "net/http.h"

struct cache;
struct gate;
struct store;

/* Runs on the store pool: fills out with the value of key. Returns 0,
 * GROVE_ENOENT (nothing cached) or another error. */
typedef int (*cache_load_fn)(struct store *st, const char *key, void *arg, struct buf *out);
/* Runs on the request's loop with the outcome (val is NULL unless rc is 0).
 * GROVE_ECLOSED: r is gone or already answered (503 BUSY when the store
 * pool was full): answer nothing, only free arg. */
typedef void (*cache_reply_fn)(struct http_req *r, int rc, const char *val, size_t len,
                               void *arg);

/* A named cache ("devices"); the gate owns it and frees it. NULL on error. */
struct cache *cache_create(struct gate *g, const char *name);
void cache_get(struct cache *c, struct http_req *r, const char *key, cache_load_fn load,
               cache_reply_fn reply, void *arg);
/* After a write to key's source (blocking: worker threads). The entry
 * leaves this process at once; with a broker, Redis drops it and moves
 * its version on before this returns (waiting up to a second: if Redis
 * does not answer by then the deletion stays queued and goes out when it
 * does), and a control message makes every other instance drop it. */
void cache_invalidate(struct cache *c, const char *key);

#endif
