/* shared.c — rate limits shared by every instance through Redis.
 *
 * Each event loop keeps one asynchronous Redis connection. A decision is
 * one EVAL of a Lua script that refills and takes from the caller's bucket
 * on Redis's clock: one round trip, and N instances enforce one limit
 * (EVALSHA: the script is loaded first on every new connection). The
 * request is held meanwhile. The instance's own bucket (--rate-global) is
 * never in Redis: it protects one instance and is taken locally after the
 * caller's (gate.c).
 *
 * Without Redis (never connected, gone, a connect that never completes, or
 * slower than WATCHDOG_MS) the decision is made with the local buckets,
 * counted in grove_rate_limit_fallbacks_total. The connection is retried
 * by itself from any of those states, with backoff from RETRY_MIN_MS to
 * RETRY_MAX_MS. A connection that is up is pinged every PING_MS; no answer
 * within PING_TIMEOUT_MS (a hung Redis: stopped, or a network that drops
 * packets) counts as gone, so /ready notices within about
 * PING_MS + PING_TIMEOUT_MS. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/internal.h"
#include <hiredis/adapters/libuv.h>

#define WATCHDOG_MS 300      /* a decision pending this long: Redis is too slow */
#define CONNECT_TIMEOUT_MS 1000 /* a connect not done by then is given up */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 2000
#define PING_MS 500
#define PING_TIMEOUT_MS 1000

/* KEYS: buckets; ARGV: per bucket rate per ms, burst, ttl ms.
 * Returns {denied (1-based, 0 = none), then per bucket remaining,
 * seconds to full, seconds to the next token}. */
static const char script[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local tk, denied = {}, 0\n"
    "for i = 1, #KEYS do\n"
    "  local per, burst = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1])\n"
    "  local b = redis.call('HMGET', KEYS[i], 't', 'ts')\n"
    "  local x, ts = tonumber(b[1]), tonumber(b[2])\n"
    "  if x == nil or ts == nil then x, ts = burst, now end\n"
    "  x = math.min(burst, x + math.max(0, now - ts) * per)\n"
    "  tk[i] = x\n"
    "  if x < 1 and denied == 0 then denied = i end\n"
    "end\n"
    "local out = {denied}\n"
    "for i = 1, #KEYS do\n"
    "  local per, burst = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1])\n"
    "  if denied == 0 then tk[i] = tk[i] - 1 end\n"
    "  redis.call('HSET', KEYS[i], 't', tostring(tk[i]), 'ts', now)\n"
    "  redis.call('PEXPIRE', KEYS[i], ARGV[3*i])\n"
    "  out[#out+1] = math.floor(tk[i])\n"
    "  out[#out+1] = math.ceil((burst - tk[i]) / per / 1000)\n"
    "  out[#out+1] = math.max(0, math.ceil((1 - tk[i]) / per / 1000))\n"
    "end\n"
    "return out\n";

static const char refund_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBYFLOAT', KEYS[1], 't', 1) end";

static char script_sha[41]; /* SHA-1 of the script, for EVALSHA */

struct shared_loop {
  struct gate *g;
  uv_loop_t *loop;
  redisAsyncContext *ac;  /* connecting or connected; NULL: none */
  bool up, stopping;
  uv_timer_t timer;
  int pending;
  uint64_t progress_ms, last_try_ms, retry_ms;
  uint64_t ping_sent_ms;  /* 0: no PING outstanding */
  uint64_t last_ping_ms;
  uint64_t epoch;         /* bumped on every new context: stale PONGs are ignored */
};

struct decision {
  struct shared_loop *sl;
  struct http_req *r;
  struct bucket_ref own;
};

static uint64_t now_ms(void) { return clock_mono_ns() / 1000000; }

static void count_up(struct gate *g) {
  int up = 0;
  for (int i = 0; i < g->nshared; i++)
    up += g->shared[i].up;
  atomic_store(&g->shared_up, up);
  metric_set(g->shared_gauge, up == g->nshared ? 1 : 0);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  struct shared_loop *sl = ac->data;
  if (sl->ac != ac)
    return; /* a context this loop already gave up on */
  if (status != REDIS_OK) {
    sl->ac = NULL; /* hiredis frees it */
    sl->up = false;
    count_up(sl->g);
  }
  /* connected is not up yet: a stopped Redis still completes TCP
   * handshakes; on_loaded decides */
}

/* The script is loaded: Redis itself answered on this connection. */
static void on_loaded(redisAsyncContext *ac, void *reply, void *arg) {
  struct shared_loop *sl = ac->data;
  redisReply *rep = reply;
  if (!rep || sl->ac != ac || (uint64_t)(uintptr_t)arg != sl->epoch)
    return;
  if (rep->type == REDIS_REPLY_ERROR) {
    log_warn(NULL, "cannot load the rate limit script", "error=\"%s\"", rep->str);
    return; /* not up: the connect deadline gives up on it and retries */
  }
  sl->up = true;
  sl->retry_ms = RETRY_MIN_MS;
  sl->ping_sent_ms = 0;
  sl->last_ping_ms = now_ms();
  sl->progress_ms = now_ms();
  log_info(NULL, "rate limits shared through redis", "loop=%d", (int)(sl - sl->g->shared));
  count_up(sl->g);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct shared_loop *sl = ac->data;
  (void)status;
  if (sl->ac != ac)
    return;
  sl->ac = NULL;
  if (sl->up && !sl->stopping)
    log_warn(NULL, "redis for rate limits is gone; limiting locally", "loop=%d",
             (int)(sl - sl->g->shared));
  sl->up = false;
  count_up(sl->g);
}

/* Gives up on the current context (hung, slow or never connected): its
 * pending callbacks run with no reply and fall back to local decisions. */
static void drop_context(struct shared_loop *sl, const char *why) {
  redisAsyncContext *ac = sl->ac;
  if (!ac)
    return;
  if (sl->up && why)
    log_warn(NULL, "redis for rate limits is not answering; limiting locally",
             "loop=%d reason=%s pending=%d", (int)(sl - sl->g->shared), why, sl->pending);
  sl->ac = NULL;
  sl->up = false;
  sl->ping_sent_ms = 0;
  count_up(sl->g);
  redisAsyncFree(ac);
}

static void try_connect(struct shared_loop *sl) {
  struct gate *g = sl->g;
  sl->last_try_ms = now_ms();
  sl->epoch++;
  redisAsyncContext *ac = redisAsyncConnect(g->redis_host, g->redis_port);
  if (!ac)
    return;
  if (ac->err) {
    redisAsyncFree(ac);
    return;
  }
  ac->data = sl;
  if (redisLibuvAttach(ac, sl->loop) != REDIS_OK) {
    redisAsyncFree(ac);
    return;
  }
  sl->ac = ac;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  if (g->redis_password[0])
    redisAsyncCommand(ac, NULL, NULL, "AUTH %s", g->redis_password);
  /* commands on one connection run in order: every EVALSHA after this
   * finds the script, so a decision stays one short round trip */
  redisAsyncCommand(ac, on_loaded, (void *)(uintptr_t)sl->epoch, "SCRIPT LOAD %s", script);
}

static void on_pong(redisAsyncContext *ac, void *reply, void *arg) {
  struct shared_loop *sl = ac->data;
  redisReply *rep = reply;
  if (!rep || sl->ac != ac || (uint64_t)(uintptr_t)arg != sl->epoch)
    return;
  sl->ping_sent_ms = 0;
  sl->progress_ms = now_ms();
}

static void on_tick(uv_timer_t *t) {
  struct shared_loop *sl = t->data;
  uint64_t now = now_ms();
  if (sl->stopping)
    return;
  if (sl->ac && !sl->up && now - sl->last_try_ms >= CONNECT_TIMEOUT_MS)
    /* hiredis's libuv adapter drops a failed connect's error on the floor:
     * without this the context would wait for ever */
    drop_context(sl, NULL);
  else if (sl->ac && sl->pending > 0 && now - sl->progress_ms > WATCHDOG_MS)
    drop_context(sl, "slow");
  else if (sl->ac && sl->up && sl->ping_sent_ms && now - sl->ping_sent_ms > PING_TIMEOUT_MS)
    drop_context(sl, "ping");
  else if (sl->ac && sl->up && !sl->ping_sent_ms && now - sl->last_ping_ms >= PING_MS) {
    sl->last_ping_ms = now;
    if (redisAsyncCommand(sl->ac, on_pong, (void *)(uintptr_t)sl->epoch, "PING") == REDIS_OK)
      sl->ping_sent_ms = now;
  }
  if (!sl->ac && now - sl->last_try_ms >= sl->retry_ms) {
    sl->retry_ms = sl->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : sl->retry_ms * 2;
    try_connect(sl);
  }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *arg) {
  struct decision *d = arg;
  struct shared_loop *sl = d->sl;
  redisReply *rep = reply;
  (void)ac;
  sl->pending--;
  sl->progress_ms = now_ms();
  struct http_req *r = d->r;
  if (!http_req_release(r)) { /* the client left */
    free(d);
    return;
  }
  enum http_next next;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
    if (rep && rep->type == REDIS_REPLY_ERROR) {
      log_warn(r->id, "rate limit script failed; limiting locally", "error=\"%s\"", rep->str);
      if (strncmp(rep->str, "NOSCRIPT", 8) == 0 && sl->ac) /* flushed: load it again */
        redisAsyncCommand(sl->ac, NULL, NULL, "SCRIPT LOAD %s", script);
    }
    metric_add(sl->g->shared_fallbacks, 1);
    next = gate_local_take(sl->g, r, &d->own);
  } else {
    struct limit_result res;
    res.allowed = rep->element[0]->integer == 0;
    res.remaining = (long)rep->element[1]->integer;
    res.reset_s = (long)rep->element[2]->integer;
    res.retry_after_s = (long)rep->element[3]->integer;
    next = res.allowed ? gate_take_global(sl->g, r, &d->own, &res, true)
                       : gate_refuse(r, &d->own, &res);
  }
  free(d);
  if (next == HTTP_CONTINUE)
    http_req_continue(r);
}

static struct shared_loop *loop_of(struct gate *g, struct http_req *r) {
  uv_loop_t *loop = http_req_loop(r);
  for (int i = 0; i < g->nshared; i++)
    if (g->shared[i].loop == loop)
      return &g->shared[i];
  return NULL;
}

bool gate_shared_take(struct gate *g, struct http_req *r, const struct bucket_ref *own) {
  if (!g->nshared)
    return false;
  struct shared_loop *sl = loop_of(g, r);
  if (!sl || !sl->up || !sl->ac) {
    metric_add(g->shared_fallbacks, 1);
    return false;
  }
  struct decision *d = malloc(sizeof *d);
  if (!d)
    return false;
  d->sl = sl;
  d->r = r;
  d->own = *own;
  /* EVALSHA sha 1 key rate burst ttl */
  char key[112], per[32], burst[32], ttl[32];
  snprintf(key, sizeof key, "grove:rl:%s", own->name);
  snprintf(per, sizeof per, "%.9g", own->rate->per_s / 1000);
  snprintf(burst, sizeof burst, "%.9g", own->rate->burst);
  snprintf(ttl, sizeof ttl, "%.0f", own->rate->burst / own->rate->per_s * 1000 + 1000);
  const char *argv[] = {"EVALSHA", script_sha, "1", key, per, burst, ttl};
  size_t lens[ARRAY_LEN(argv)];
  for (size_t i = 0; i < ARRAY_LEN(argv); i++)
    lens[i] = strlen(argv[i]);
  http_req_hold(r);
  if (redisAsyncCommandArgv(sl->ac, on_reply, d, (int)ARRAY_LEN(argv), argv, lens) != REDIS_OK) {
    http_req_release(r);
    free(d);
    metric_add(g->shared_fallbacks, 1);
    return false;
  }
  if (sl->pending++ == 0)
    sl->progress_ms = now_ms();
  return true;
}

void gate_shared_refund(struct gate *g, struct http_req *r, const struct bucket_ref *own) {
  struct shared_loop *sl = loop_of(g, r);
  if (!sl || !sl->up || !sl->ac)
    return;
  char key[112];
  snprintf(key, sizeof key, "grove:rl:%s", own->name);
  /* a bucket that expired meanwhile is full: nothing to give back; the
   * script caps the bucket at its burst on the next take */
  redisAsyncCommand(sl->ac, NULL, NULL, "EVAL %s 1 %s", refund_script, key);
}

int gate_share(struct gate *g, const char *url, int nloops, char *err, size_t errlen) {
  if (redis_url_parse(url, g->redis_host, sizeof g->redis_host, &g->redis_port,
                      g->redis_password, sizeof g->redis_password)) {
    snprintf(err, errlen, "bad broker url '%s': use redis://host:port", url);
    return GROVE_ECONFIG;
  }
  unsigned char d[20];
  sha1(script, strlen(script), d);
  for (int i = 0; i < 20; i++)
    snprintf(script_sha + 2 * i, 3, "%02x", d[i]);
  g->shared = calloc((size_t)nloops, sizeof *g->shared);
  if (!g->shared)
    return GROVE_ENOMEM;
  g->nshared = nloops;
  for (int i = 0; i < nloops; i++)
    g->shared[i].g = g;
  return 0;
}

void gate_loop_start(struct gate *g, uv_loop_t *loop, int index) {
  if (index >= g->nshared)
    return;
  struct shared_loop *sl = &g->shared[index];
  sl->loop = loop;
  sl->retry_ms = RETRY_MIN_MS;
  uv_timer_init(loop, &sl->timer);
  sl->timer.data = sl;
  uv_timer_start(&sl->timer, on_tick, 100, 100);
  try_connect(sl);
}

void gate_loop_stop(struct gate *g, int index) {
  if (index >= g->nshared)
    return;
  struct shared_loop *sl = &g->shared[index];
  sl->stopping = true;
  uv_close((uv_handle_t *)&sl->timer, NULL);
  redisAsyncContext *ac = sl->ac;
  sl->ac = NULL;
  sl->up = false;
  if (ac)
    redisAsyncFree(ac); /* runs pending callbacks, closes its poll handle */
}

bool gate_limits_shared(struct gate *g, const char **mode) {
  if (!g->nshared) {
    *mode = "local";
    return true;
  }
  bool all = atomic_load(&g->shared_up) == g->nshared;
  *mode = all ? "shared" : "local (redis unavailable)";
  return all;
}

void *gate_redis(struct gate *g, uv_loop_t *loop) {
  for (int i = 0; i < g->nshared; i++)
    if (g->shared[i].loop == loop)
      return g->shared[i].up ? g->shared[i].ac : NULL;
  return NULL;
}
