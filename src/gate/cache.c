/* cache.c — three-tier read-through caches. */
#include "gate/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/internal.h"
#include "broker/broker.h"

#define KEY_MAX 200
#define INVALIDATE_WAIT_MS 1000 /* a write waits this long for Redis to drop the key */

struct entry {
  struct entry *prev, *next; /* LRU: head is the most recent */
  uint64_t expires_ms;
  size_t len;
  char *key;                 /* after the value, in the same allocation */
  char val[];
};

struct cache {
  struct cache *next;
  struct gate *g;
  char name[32];
  pthread_mutex_t lock;
  struct map index;
  struct entry *head, *tail;
  size_t n;
  _Atomic uint64_t generation;
  _Atomic uint64_t hits, lookups;
  struct metric *hit_local, *hit_redis, *miss, *ratio;
};


/* ---- the local tier ------------------------------------------------------ */

static void unlink_entry(struct cache *c, struct entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    c->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    c->tail = e->prev;
  e->prev = e->next = NULL;
}

static void push_front(struct cache *c, struct entry *e) {
  e->next = c->head;
  if (c->head)
    c->head->prev = e;
  c->head = e;
  if (!c->tail)
    c->tail = e;
}

static void drop(struct cache *c, struct entry *e) {
  unlink_entry(c, e);
  map_del(&c->index, e->key);
  c->n--;
  free(e);
}

/* The local tier is trusted only while other instances' invalidations can
 * reach this one (no broker, or subscribed): one sent while this instance
 * was not listening is lost to it. */
static bool local_trusted(const struct cache *c) {
  return !c->g->broker || broker_control_live(c->g->broker);
}

/* Copies the live value of key into out; false when absent or expired. */
static bool local_get(struct cache *c, const char *key, struct buf *out) {
  if (!local_trusted(c))
    return false;
  pthread_mutex_lock(&c->lock);
  struct entry *e = map_get(&c->index, key);
  bool hit = false;
  if (e && e->expires_ms <= clock_wall_ms()) {
    drop(c, e);
  } else if (e) {
    unlink_entry(c, e);
    push_front(c, e);
    hit = buf_append(out, e->val, e->len) == 0;
  }
  pthread_mutex_unlock(&c->lock);
  return hit;
}

static void local_put(struct cache *c, const char *key, const char *val, size_t len,
                      uint64_t generation) {
  const struct gate_cfg *cfg = &c->g->cfg;
  if (!cfg->cache_ttl_ms || cfg->cache_entries <= 0 || !local_trusted(c))
    return;
  size_t kl = strlen(key) + 1;
  struct entry *e = malloc(sizeof *e + len + kl);
  if (!e)
    return;
  memcpy(e->val, val, len);
  e->len = len;
  e->key = e->val + len; /* the entry keeps its own copy of the key */
  memcpy(e->key, key, kl);
  e->prev = e->next = NULL;
  e->expires_ms = clock_wall_ms() + cfg->cache_ttl_ms;
  pthread_mutex_lock(&c->lock);
  if (atomic_load(&c->generation) != generation) { /* written meanwhile: keep nothing */
    pthread_mutex_unlock(&c->lock);
    free(e);
    return;
  }
  struct entry *old = map_get(&c->index, key);
  if (old)
    drop(c, old);
  if (map_put(&c->index, key, e, NULL)) {
    pthread_mutex_unlock(&c->lock);
    free(e);
    return;
  }
  push_front(c, e);
  c->n++;
  while (c->n > (size_t)cfg->cache_entries && c->tail)
    drop(c, c->tail);
  pthread_mutex_unlock(&c->lock);
}

/* Drops key (every key when NULL) and moves the generation on, so that no
 * load begun before this fills the tier afterwards. */
static void local_forget(struct cache *c, const char *key) {
  pthread_mutex_lock(&c->lock);
  atomic_fetch_add(&c->generation, 1);
  if (key) {
    struct entry *e = map_get(&c->index, key);
    if (e)
      drop(c, e);
  } else {
    while (c->head)
      drop(c, c->head);
  }
  pthread_mutex_unlock(&c->lock);
}

/* ---- lookups --------------------------------------------------------------- */

struct lookup {
  struct cache *c;
  struct http_req *r;
  char key[KEY_MAX + 1];
  char redis_key[KEY_MAX + 64];
  char version[32];  /* Redis version seen before loading; "" none */
  bool redis_seen;   /* the Redis tier answered (so a fill may go there) */
  cache_load_fn load;
  cache_reply_fn reply;
  void *arg;
  uint64_t generation;
  struct buf val;
  int rc;
};

static void count(struct cache *c, struct metric *tier) {
  uint64_t look = atomic_fetch_add(&c->lookups, 1) + 1;
  uint64_t hits = tier != c->miss ? atomic_fetch_add(&c->hits, 1) + 1 : atomic_load(&c->hits);
  metric_add(tier, 1);
  metric_set(c->ratio, (double)hits / (double)look);
}

static void finish(struct lookup *lk) {
  lk->reply(lk->r, lk->rc, lk->rc ? NULL : lk->val.data ? lk->val.data : "", lk->val.len,
            lk->arg);
  buf_release(&lk->val);
  free(lk);
}

static void load_work(void *arg) {
  struct lookup *lk = arg;
  lk->rc = lk->load(lk->c->g->store, lk->key, lk->arg, &lk->val);
}

static void load_done(struct http_req *r, void *arg) {
  struct lookup *lk = arg;
  struct cache *c = lk->c;
  if (!r->conn) { /* the client left; the loader's argument is the caller's to free */
    lk->r = r;
    lk->rc = GROVE_ECLOSED;
    finish(lk);
    return;
  }
  if (lk->rc == 0) {
    local_put(c, lk->key, lk->val.data ? lk->val.data : "", lk->val.len, lk->generation);
    if (lk->redis_seen) /* fills only if no write came since the version was read */
      broker_set(c->g->broker, http_req_loop(r), lk->redis_key, lk->val.data ? lk->val.data : "",
                 lk->val.len, c->g->cfg.cache_redis_ttl_ms, lk->version);
  }
  count(c, c->miss);
  finish(lk);
}

static void from_database(struct lookup *lk) {
  if (http_req_defer(lk->r, HTTP_POOL_STORE, load_work, load_done, lk)) {
    struct http_req gone = {0}; /* answered 503: the reply has nothing to say */
    lk->r = &gone;
    lk->rc = GROVE_ECLOSED;
    finish(lk);
  }
}

static void on_redis_get(int rc, const char *val, size_t len, const char *version, void *arg) {
  struct lookup *lk = arg;
  if (!http_req_release(lk->r)) {
    lk->rc = GROVE_ECLOSED;
    struct http_req gone = {0};
    lk->r = &gone;
    finish(lk);
    return;
  }
  if (rc == 0 || rc == GROVE_ENOENT) {
    lk->redis_seen = true;
    snprintf(lk->version, sizeof lk->version, "%s", version);
    if (rc == 0 && buf_append(&lk->val, val, len) == 0) {
      local_put(lk->c, lk->key, val, len, lk->generation);
      count(lk->c, lk->c->hit_redis);
      lk->rc = 0;
      finish(lk);
      return;
    }
  }
  from_database(lk);
}

void cache_get(struct cache *c, struct http_req *r, const char *key, cache_load_fn load,
               cache_reply_fn reply, void *arg) {
  struct lookup *lk = calloc(1, sizeof *lk);
  if (!lk || strlen(key) > KEY_MAX) {
    free(lk);
    reply(r, lk ? GROVE_EINVAL : GROVE_ENOMEM, NULL, 0, arg);
    return;
  }
  lk->c = c;
  lk->r = r;
  lk->load = load;
  lk->reply = reply;
  lk->arg = arg;
  snprintf(lk->key, sizeof lk->key, "%s", key);
  buf_init(&lk->val, 0);
  lk->generation = atomic_load(&c->generation);
  if (local_get(c, key, &lk->val)) {
    count(c, c->hit_local);
    finish(lk);
    return;
  }
  snprintf(lk->redis_key, sizeof lk->redis_key, "grove:cache:%s:%s", c->name, key);
  if (c->g->broker && c->g->cfg.cache_redis_ttl_ms) {
    http_req_hold(r);
    if (broker_get(c->g->broker, http_req_loop(r), lk->redis_key, on_redis_get, lk) == 0)
      return;
    http_req_release(r);
  }
  from_database(lk);
}

/* ---- invalidation ------------------------------------------------------------ */

void cache_invalidate(struct cache *c, const char *key) {
  local_forget(c, key);
  if (!c->g->broker)
    return;
  char msg[KEY_MAX + 40], rkey[KEY_MAX + 64];
  int n = snprintf(msg, sizeof msg, "%s\t%s", c->name, key);
  snprintf(rkey, sizeof rkey, "grove:cache:%s:%s", c->name, key);
  /* Redis drops the key (and moves its version on) before the write is
   * answered, ahead of any live messages queued for the broker */
  int rc = broker_control_send(c->g->broker, "cache", msg, (size_t)n, rkey, INVALIDATE_WAIT_MS);
  if (rc)
    log_warn(NULL, "cache invalidation not in redis yet; it goes out when redis answers",
             "cache=%s error=\"%s\"", c->name, grove_strerror(rc));
  /* a read of this instance that found the old value in Redis before it
   * was dropped must not keep it */
  local_forget(c, key);
}

/* Control messages from other instances (on the broker's thread): a write
 * elsewhere ("cache", "name\tkey"), a change to credentials
 * (GATE_VIEW_CHANGED), or a new subscription after which anything missed
 * meanwhile must be forgotten (BROKER_RESYNC). */
void cache_on_control(const char *kind, const char *payload, size_t len, void *arg) {
  struct gate *g = arg;
  if (strcmp(kind, BROKER_RESYNC) == 0) {
    for (struct cache *c = g->caches; c; c = c->next)
      local_forget(c, NULL);
    gate_changed(g);
    return;
  }
  if (strcmp(kind, GATE_VIEW_CHANGED) == 0) {
    gate_changed(g);
    return;
  }
  if (strcmp(kind, "cache") != 0)
    return;
  const char *tab = memchr(payload, '\t', len);
  if (!tab)
    return;
  char name[32], key[KEY_MAX + 1];
  size_t nl = (size_t)(tab - payload), kl = len - nl - 1;
  if (nl >= sizeof name || kl >= sizeof key)
    return;
  memcpy(name, payload, nl);
  name[nl] = '\0';
  memcpy(key, tab + 1, kl);
  key[kl] = '\0';
  for (struct cache *c = g->caches; c; c = c->next)
    if (strcmp(c->name, name) == 0)
      local_forget(c, key);
}

/* ---- life ---------------------------------------------------------------- */

struct cache *cache_create(struct gate *g, const char *name) {
  struct cache *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->g = g;
  snprintf(c->name, sizeof c->name, "%s", name);
  pthread_mutex_init(&c->lock, NULL);
  map_init(&c->index);
  if (g->metrics) {
    struct metric_family *f = metrics_family(
        g->metrics, "grove_cache_requests_total",
        "Cache lookups by cache and where they were answered (local, redis, database).",
        METRIC_COUNTER, "cache,tier");
    c->hit_local = metric_get(f, name, "local");
    c->hit_redis = metric_get(f, name, "redis");
    c->miss = metric_get(f, name, "database");
    c->ratio = metric_get(metrics_family(g->metrics, "grove_cache_hit_ratio",
                                         "Share of lookups answered from memory or Redis.",
                                         METRIC_GAUGE, "cache"),
                          name);
  }
  c->next = g->caches;
  g->caches = c;
  return c;
}

void cache_destroy_all(struct gate *g) {
  struct cache *c = g->caches;
  while (c) {
    struct cache *next = c->next;
    while (c->head)
      drop(c, c->head);
    map_release(&c->index);
    pthread_mutex_destroy(&c->lock);
    free(c);
    c = next;
  }
  g->caches = NULL;
}
