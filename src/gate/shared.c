/* shared.c — rate limits shared by every instance through Redis.
 *
 * A decision is one script run on the request loop's broker connection
 * (broker_eval: EVALSHA of a script loaded with every connection, and
 * loaded again by the broker after NOSCRIPT) that
 * refills and takes from the caller's bucket on Redis's clock: one round
 * trip, and N instances enforce one limit. The request is held meanwhile.
 * The instance's own bucket (--rate-global) is never in Redis: it protects
 * one instance and is taken locally after the caller's (gate.c).
 *
 * Without Redis (no connection up on this loop, or one that drops or is
 * given up as hung while a decision waits: the broker answers within
 * BROKER_LOOP_DEADLINE_MS) the decision is made with the local buckets,
 * counted in grove_rate_limit_fallbacks_total. Connections and their
 * reconnects are the broker's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/internal.h"

/* KEYS: buckets; ARGV: per bucket rate per ms, burst, ttl ms.
 * Returns {denied (1-based, 0 = none), then per bucket remaining,
 * seconds to full, seconds to the next token}. */
static struct broker_script take_script = BROKER_SCRIPT(
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
    "return out\n");

static struct broker_script refund_script = BROKER_SCRIPT(
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBYFLOAT', KEYS[1], 't', 1) end");

struct decision {
  struct gate *g;
  struct http_req *r;
  struct bucket_ref own;
};

static void on_decision(int rc, const redisReply *rep, void *arg) {
  struct decision *d = arg;
  struct gate *g = d->g;
  struct http_req *r = d->r;
  if (!http_req_release(r)) { /* the client left */
    free(d);
    return;
  }
  enum http_next next;
  if (rc || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
    if (rc == GROVE_EIO)
      log_warn(r->id, "rate limit script failed; limiting locally", "error=\"%s\"", rep->str);
    metric_add(g->shared_fallbacks, 1);
    next = gate_local_take(g, r, &d->own);
  } else {
    struct limit_result res;
    res.allowed = rep->element[0]->integer == 0;
    res.remaining = (long)rep->element[1]->integer;
    res.reset_s = (long)rep->element[2]->integer;
    res.retry_after_s = (long)rep->element[3]->integer;
    next = res.allowed ? gate_take_global(g, r, &d->own, &res, true)
                       : gate_refuse(r, &d->own, &res);
  }
  free(d);
  if (next == HTTP_CONTINUE)
    http_req_continue(r);
}

bool gate_shared_take(struct gate *g, struct http_req *r, const struct bucket_ref *own) {
  if (!g->broker)
    return false;
  struct decision *d = malloc(sizeof *d);
  if (!d) {
    metric_add(g->shared_fallbacks, 1);
    return false;
  }
  d->g = g;
  d->r = r;
  d->own = *own;
  char key[112], per[32], burst[32], ttl[32];
  snprintf(key, sizeof key, "grove:rl:%s", own->name);
  snprintf(per, sizeof per, "%.9g", own->rate->per_s / 1000);
  snprintf(burst, sizeof burst, "%.9g", own->rate->burst);
  snprintf(ttl, sizeof ttl, "%.0f", own->rate->burst / own->rate->per_s * 1000 + 1000);
  const char *keys[] = {key};
  const char *args[] = {per, burst, ttl};
  http_req_hold(r);
  if (broker_eval(g->broker, http_req_loop(r), &take_script, 1, keys, 3, args, on_decision, d)) {
    http_req_release(r);
    free(d);
    metric_add(g->shared_fallbacks, 1);
    return false;
  }
  return true;
}

void gate_shared_refund(struct gate *g, struct http_req *r, const struct bucket_ref *own) {
  if (!g->broker)
    return;
  char key[112];
  snprintf(key, sizeof key, "grove:rl:%s", own->name);
  const char *keys[] = {key};
  /* a bucket that expired meanwhile is full: nothing to give back; the
   * script caps the bucket at its burst on the next take */
  broker_eval(g->broker, http_req_loop(r), &refund_script, 1, keys, 0, NULL, NULL, NULL);
}

bool gate_limits_shared(struct gate *g, const char **mode) {
  if (!g->broker) {
    *mode = "local";
    return true;
  }
  bool all = broker_loops_up(g->broker);
  *mode = all ? "shared" : "local (redis unavailable)";
  return all;
}

/* /metrics: grove_rate_limit_shared follows the loops' connections. */
static void collect(void *arg) {
  struct gate *g = arg;
  const char *mode;
  metric_set(g->shared_gauge, g->broker && gate_limits_shared(g, &mode) ? 1 : 0);
}

int gate_attach_broker(struct gate *g, struct broker *b, char *err, size_t errlen) {
  g->broker = b;
  /* loaded with every connection: a decision or a refund stays one round
   * trip (a refund that took two could reach Redis after the caller's
   * next request) */
  int rc = broker_script_load(b, &take_script);
  if (!rc)
    rc = broker_script_load(b, &refund_script);
  if (rc) {
    snprintf(err, errlen, "cannot load the rate limit scripts: %s", grove_strerror(rc));
    return rc;
  }
  rc = broker_control_listen(b, "gate", cache_on_control, g, err, errlen);
  if (!rc && g->metrics && (rc = metrics_on_render(g->metrics, collect, g)))
    snprintf(err, errlen, "cannot watch the rate limits' mode: %s", grove_strerror(rc));
  return rc;
}
