/* shared.c — rate limits shared by every instance through Redis.
 *
 * Each event loop keeps one asynchronous Redis connection. A decision is
 * one EVAL of a Lua script that refills and takes from all of a request's
 * buckets atomically, on Redis's clock: one round trip, and N instances
 * enforce one limit (EVALSHA: the script is loaded first on every new
 * connection). The request is held meanwhile. Without Redis (not
 * connected, gone, or slower than WATCHDOG_MS) the decision is made with
 * the local buckets, counted in grove_rate_limit_fallbacks_total; the
 * connection is retried every second. */
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

#define WATCHDOG_MS 300
#define RETRY_MS 1000

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
    "  if x == nil then x, ts = burst, now end\n"
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

static char script_sha[41]; /* SHA-1 of the script, for EVALSHA */

struct shared_loop {
  struct gate *g;
  uv_loop_t *loop;
  redisAsyncContext *ac;
  bool up, stopping;
  uv_timer_t timer;
  int pending;
  uint64_t progress_ms, last_try_ms;
};

struct decision {
  struct shared_loop *sl;
  struct http_req *r;
  struct bucket_ref b[2];
  int n;
};

static void count_up(struct gate *g) {
  int up = 0;
  for (int i = 0; i < g->nshared; i++)
    up += g->shared[i].up;
  atomic_store(&g->shared_up, up);
  metric_set(g->shared_gauge, up == g->nshared ? 1 : 0);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  struct shared_loop *sl = ac->data;
  if (status != REDIS_OK) {
    sl->ac = NULL; /* hiredis frees it */
    sl->up = false;
  } else {
    sl->up = true;
    log_info(NULL, "rate limits shared through redis", "loop=%d",
             (int)(sl - sl->g->shared));
  }
  count_up(sl->g);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct shared_loop *sl = ac->data;
  (void)status;
  sl->ac = NULL;
  if (sl->up && !sl->stopping)
    log_warn(NULL, "redis for rate limits is gone; limiting locally", "loop=%d",
             (int)(sl - sl->g->shared));
  sl->up = false;
  count_up(sl->g);
}

static void try_connect(struct shared_loop *sl) {
  struct gate *g = sl->g;
  sl->last_try_ms = clock_wall_ms();
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
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  if (g->redis_password[0])
    redisAsyncCommand(ac, NULL, NULL, "AUTH %s", g->redis_password);
  /* commands on one connection run in order: every EVALSHA after this
   * finds the script, so a decision stays one short round trip */
  redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", script);
  sl->ac = ac;
}

static void on_tick(uv_timer_t *t) {
  struct shared_loop *sl = t->data;
  uint64_t now = clock_wall_ms();
  if (!sl->ac && !sl->stopping && now - sl->last_try_ms >= RETRY_MS)
    try_connect(sl);
  else if (sl->ac && sl->pending > 0 && now - sl->progress_ms > WATCHDOG_MS) {
    log_warn(NULL, "redis for rate limits is not answering; limiting locally", "pending=%d",
             sl->pending);
    redisAsyncFree(sl->ac); /* pending decisions fall back to local; retried later */
    sl->ac = NULL;
    sl->up = false;
    count_up(sl->g);
  }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *arg) {
  struct decision *d = arg;
  struct shared_loop *sl = d->sl;
  redisReply *rep = reply;
  (void)ac;
  sl->pending--;
  sl->progress_ms = clock_wall_ms();
  struct http_req *r = d->r;
  if (!http_req_release(r)) { /* the client left */
    free(d);
    return;
  }
  enum http_next next;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 + 3 * (size_t)d->n) {
    if (rep && rep->type == REDIS_REPLY_ERROR) {
      log_warn(r->id, "rate limit script failed; limiting locally", "error=\"%s\"", rep->str);
      if (strncmp(rep->str, "NOSCRIPT", 8) == 0 && sl->ac) /* flushed: load it again */
        redisAsyncCommand(sl->ac, NULL, NULL, "SCRIPT LOAD %s", script);
    }
    metric_add(sl->g->shared_fallbacks, 1);
    next = gate_local_take(sl->g, r, d->b, d->n);
  } else {
    struct limit_result res[2];
    int denied = (int)rep->element[0]->integer - 1;
    for (int i = 0; i < d->n; i++) {
      res[i].remaining = (long)rep->element[1 + 3 * i]->integer;
      res[i].reset_s = (long)rep->element[2 + 3 * i]->integer;
      res[i].retry_after_s = (long)rep->element[3 + 3 * i]->integer;
      res[i].allowed = denied < 0;
    }
    next = gate_decide(r, d->b, d->n, denied, res);
  }
  free(d);
  if (next == HTTP_CONTINUE)
    http_req_continue(r);
}

bool gate_shared_take(struct gate *g, struct http_req *r, const struct bucket_ref *b, int n) {
  if (!g->nshared)
    return false;
  uv_loop_t *loop = http_req_loop(r);
  struct shared_loop *sl = NULL;
  for (int i = 0; i < g->nshared; i++)
    if (g->shared[i].loop == loop)
      sl = &g->shared[i];
  if (!sl || !sl->up || !sl->ac) {
    metric_add(g->shared_fallbacks, 1);
    return false;
  }
  struct decision *d = malloc(sizeof *d);
  if (!d)
    return false;
  d->sl = sl;
  d->r = r;
  d->n = n;
  memcpy(d->b, b, (size_t)n * sizeof *b);
  /* EVAL script numkeys key… (rate burst ttl)… */
  const char *argv[3 + 2 + 6];
  size_t lens[3 + 2 + 6];
  char keys[2][112], args[6][32], nk[4];
  int argc = 0;
  argv[argc++] = "EVALSHA";
  argv[argc++] = script_sha;
  snprintf(nk, sizeof nk, "%d", n);
  argv[argc++] = nk;
  for (int i = 0; i < n; i++) {
    snprintf(keys[i], sizeof keys[i], "grove:rl:%s", b[i].name);
    argv[argc++] = keys[i];
  }
  for (int i = 0; i < n; i++) {
    double ttl = b[i].rate->burst / b[i].rate->per_s * 1000 + 1000;
    snprintf(args[3 * i], sizeof args[0], "%.9g", b[i].rate->per_s / 1000);
    snprintf(args[3 * i + 1], sizeof args[0], "%.9g", b[i].rate->burst);
    snprintf(args[3 * i + 2], sizeof args[0], "%.0f", ttl);
    for (int k = 0; k < 3; k++)
      argv[argc++] = args[3 * i + k];
  }
  for (int i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  http_req_hold(r);
  if (redisAsyncCommandArgv(sl->ac, on_reply, d, argc, argv, lens) != REDIS_OK) {
    http_req_release(r);
    free(d);
    metric_add(g->shared_fallbacks, 1);
    return false;
  }
  if (sl->pending++ == 0)
    sl->progress_ms = clock_wall_ms();
  return true;
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
  hash_pool_loop_start(g->hashing, loop, index);
  if (index >= g->nshared)
    return;
  struct shared_loop *sl = &g->shared[index];
  sl->loop = loop;
  uv_timer_init(loop, &sl->timer);
  sl->timer.data = sl;
  uv_timer_start(&sl->timer, on_tick, 100, 100);
  try_connect(sl);
}

void gate_loop_stop(struct gate *g, int index) {
  hash_pool_loop_stop(g->hashing, index);
  if (index >= g->nshared)
    return;
  struct shared_loop *sl = &g->shared[index];
  sl->stopping = true;
  uv_close((uv_handle_t *)&sl->timer, NULL);
  if (sl->ac)
    redisAsyncFree(sl->ac); /* runs the disconnect callback, closes its poll handle */
  sl->ac = NULL;
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
