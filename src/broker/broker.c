/* broker.c — the broker's life, its one reconnect policy, blocking
 * connections and their pool, and the one place Redis is reported: the
 * "broker" readiness check and the grove_broker_* metrics. The threads
 * are in pubsub.c, the loops' connections in loop.c, leases in lease.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/internal.h"
#include "core/error.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

#define O(name, type, field, def, help) {name, type, offsetof(struct broker_cfg, field), def, help}
const struct cfg_opt broker_cfg_opts[] = {
    O("broker", CFG_STR, url, "", "redis://[:password@]host[:port] shared by instances: live topics, control messages, rate limits, the cache's second tier, leases (empty: in-process)"),
};
#undef O
const size_t broker_cfg_nopts = ARRAY_LEN(broker_cfg_opts);

bool broker_configured(const struct broker_cfg *cfg) { return cfg && cfg->url && *cfg->url; }

uint64_t now_ms(void) { return clock_mono_ns() / 1000000; }

/* ---- the reconnect policy ---------------------------------------------------- */

/* A per-thread xorshift generator: jitter needs no secrecy. */
static uint64_t jitter_rand(void) {
  static _Thread_local uint64_t s;
  if (!s)
    s = clock_mono_ns() ^ ((uint64_t)(uintptr_t)&s << 17) ^ 0x9e3779b97f4a7c15ULL;
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

void link_init(struct link *l, const char *role, int index) {
  memset(l, 0, sizeof *l);
  l->role = role;
  l->index = index;
  l->delay_ms = BROKER_RETRY_MIN_MS;
}

uint64_t link_wait(const struct link *l, uint64_t now) {
  return l->next_try_ms > now ? l->next_try_ms - now : 0;
}

void link_up(struct broker *b, struct link *l) {
  bool again = l->ever_up;
  l->ever_up = true;
  l->said_down = false;
  l->delay_ms = BROKER_RETRY_MIN_MS;
  l->next_try_ms = 0;
  atomic_store(&l->up, true);
  if (again)
    metric_add(b->reconnects, 1);
  if (l->index >= 0)
    log_info(NULL, "broker connected", "host=%s port=%d role=%s loop=%d", b->host, b->port,
             l->role, l->index);
  else
    log_info(NULL, "broker connected", "host=%s port=%d role=%s", b->host, b->port, l->role);
  update_up(b);
}

void link_down(struct broker *b, struct link *l, const char *why) {
  bool was_up = atomic_exchange(&l->up, false);
  set_error(b, "%s: %s", l->role, why);
  metric_add(b->connect_errors, 1);
  if (was_up || !l->said_down) {
    l->said_down = true;
    if (was_up)
      log_warn(NULL, "broker connection lost", "role=%s loop=%d error=\"%s\"", l->role, l->index,
               why);
    else
      log_warn(NULL, "cannot reach the broker; retrying", "role=%s loop=%d host=%s port=%d error=\"%s\"",
               l->role, l->index, b->host, b->port, why);
  }
  /* between half and all of the delay, then double it up to the cap */
  uint64_t d = l->delay_ms;
  uint64_t wait = d / 2 + (d / 2 ? jitter_rand() % (d / 2 + 1) : 0);
  l->next_try_ms = now_ms() + wait;
  l->delay_ms = d * 2 > BROKER_RETRY_MAX_MS ? BROKER_RETRY_MAX_MS : d * 2;
  update_up(b);
}

void update_up(struct broker *b) {
  bool up = (!b->started || (atomic_load(&b->pub_link.up) && atomic_load(&b->sub_link.up))) &&
            broker_loops_up(b);
  metric_set(b->up, up ? 1 : 0);
}

void set_error(struct broker *b, const char *fmt, ...) {
  char msg[sizeof b->last_error];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&b->lock);
  memcpy(b->last_error, msg, sizeof msg);
  pthread_mutex_unlock(&b->lock);
}

void count_command_error(struct broker *b) { metric_add(b->command_errors, 1); }

/* ---- blocking connections ---------------------------------------------------- */

redisContext *connect_blocking(struct broker *b, char *why, size_t n) {
  struct timeval tv = {IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout(b->host, b->port, tv);
  const char *step = "cannot connect";
  if (!c || c->err)
    goto fail;
  /* every command has a deadline: a hung Redis is an error, not a hang */
  step = "cannot set timeout";
  if (redisSetTimeout(c, tv) != REDIS_OK)
    goto fail;
  redisReply *r;
  if (b->password[0]) {
    step = "authentication failed";
    r = redisCommand(c, "AUTH %s", b->password);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (!ok)
      goto fail;
  }
  /* a stopped Redis still completes TCP handshakes (the kernel does): a
   * connection counts only once Redis itself has answered */
  step = "no answer to ping";
  r = redisCommand(c, "PING");
  bool ok = r && !c->err && r->type != REDIS_REPLY_ERROR;
  freeReplyObject(r);
  if (!ok)
    goto fail;
  return c;
fail:
  snprintf(why, n, "%s: %s", step, c && c->err ? c->errstr : "no connection");
  redisFree(c);
  return NULL;
}

/* ---- the pool ---------------------------------------------------------------- */

/* A connection for one blocking call: an idle one, a new one (unless the
 * pool is backing off after a failure), or one given back within the
 * deadline. */
static int pool_take(struct broker *b, redisContext **out, bool *reused) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += IO_TIMEOUT_MS / 1000 + 1;
  pthread_mutex_lock(&b->pool_lock);
  for (;;) {
    if (b->idle) {
      struct pooled *p = b->idle;
      b->idle = p->next;
      pthread_mutex_unlock(&b->pool_lock);
      *out = p->c;
      *reused = true;
      free(p);
      return 0;
    }
    if (b->npooled < POOL_MAX) {
      if (link_wait(&b->pool_link, now_ms()) > 0) {
        pthread_mutex_unlock(&b->pool_lock);
        return GROVE_EUNAVAIL;
      }
      b->npooled++;
      pthread_mutex_unlock(&b->pool_lock);
      char why[200];
      redisContext *c = connect_blocking(b, why, sizeof why);
      pthread_mutex_lock(&b->pool_lock);
      if (!c) {
        b->npooled--;
        link_down(b, &b->pool_link, why);
        pthread_cond_signal(&b->pool_cond);
        pthread_mutex_unlock(&b->pool_lock);
        return GROVE_EUNAVAIL;
      }
      if (!atomic_load(&b->pool_link.up))
        link_up(b, &b->pool_link);
      pthread_mutex_unlock(&b->pool_lock);
      *out = c;
      *reused = false;
      return 0;
    }
    if (pthread_cond_timedwait(&b->pool_cond, &b->pool_lock, &ts)) {
      pthread_mutex_unlock(&b->pool_lock);
      return GROVE_ETIMEOUT;
    }
  }
}

/* Gives c back, or drops it when it failed (then the pool backs off). */
static void pool_give(struct broker *b, redisContext *c) {
  struct pooled *p = c->err ? NULL : malloc(sizeof *p);
  pthread_mutex_lock(&b->pool_lock);
  if (p) {
    p->c = c;
    p->next = b->idle;
    b->idle = p;
  } else {
    if (c->err)
      link_down(b, &b->pool_link, c->errstr);
    b->npooled--;
    redisFree(c);
  }
  pthread_cond_signal(&b->pool_cond);
  pthread_mutex_unlock(&b->pool_lock);
}

void script_prepare(struct broker_script *s) {
  if (s->sha[0])
    return;
  unsigned char d[20];
  char hex[41];
  sha1(s->source, strlen(s->source), d);
  for (int i = 0; i < 20; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  memcpy(s->sha, hex, sizeof hex);
}

int pool_call(struct broker *b, int argc, const char **argv, size_t *lens,
              const struct broker_script *s, unsigned wait_ms, redisReply **out) {
  *out = NULL;
  redisContext *c;
  bool reused;
  redisReply *r;
  int rc;
  struct timeval io = {IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000};
  struct timeval longer = {(IO_TIMEOUT_MS + wait_ms) / 1000, ((IO_TIMEOUT_MS + wait_ms) % 1000) * 1000};
  for (int attempt = 0;; attempt++) {
    if ((rc = pool_take(b, &c, &reused)))
      return rc;
    if (wait_ms)
      redisSetTimeout(c, longer);
    r = redisCommandArgv(c, argc, argv, lens);
    if (s && r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
      /* flushed or restarted: EVAL runs it and loads it again */
      freeReplyObject(r);
      argv[0] = "EVAL";
      argv[1] = s->source;
      lens[0] = 4;
      lens[1] = strlen(s->source);
      r = redisCommandArgv(c, argc, argv, lens);
    }
    if (wait_ms && !c->err)
      redisSetTimeout(c, io);
    if (r && !c->err)
      break;
    bool timed_out = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (!c->err)
      c->err = REDIS_ERR_OTHER;
    freeReplyObject(r);
    pool_give(b, c);
    /* an idle connection may have died with a Redis restarted meanwhile:
     * one more try on a new one (not after a timeout: the command may
     * have run) */
    if (timed_out || !reused || attempt > 0)
      return timed_out ? GROVE_ETIMEOUT : GROVE_EUNAVAIL;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    count_command_error(b);
    rc = GROVE_EIO;
  }
  pool_give(b, c);
  *out = r;
  return rc;
}

int broker_eval_sync(struct broker *b, struct broker_script *s, int nkeys,
                     const char *const *keys, int nargs, const char *const *args,
                     redisReply **out) {
  *out = NULL;
  if (nkeys < 0 || nargs < 0 || nkeys + nargs > 64)
    return GROVE_EINVAL;
  script_prepare(s);
  const char *argv[67];
  size_t lens[67];
  char nk[16];
  snprintf(nk, sizeof nk, "%d", nkeys);
  int argc = 0;
  argv[argc++] = "EVALSHA";
  argv[argc++] = s->sha;
  argv[argc++] = nk;
  for (int i = 0; i < nkeys; i++)
    argv[argc++] = keys[i];
  for (int i = 0; i < nargs; i++)
    argv[argc++] = args[i];
  for (int i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  return pool_call(b, argc, argv, lens, s, 0, out);
}

/* ---- life ---------------------------------------------------------------------- */

static int health_check(void *arg, char *why, size_t n) {
  return broker_ok(arg, why, n) ? 0 : GROVE_EUNAVAIL;
}

int broker_create(struct broker **out, const struct broker_cfg *cfg, int nloops,
                  struct metrics *m, struct health *h, char *err, size_t errlen) {
  *out = NULL;
  struct broker *b = calloc(1, sizeof *b);
  if (!b) {
    snprintf(err, errlen, "cannot make the broker: %s", grove_strerror(GROVE_ENOMEM));
    return GROVE_ENOMEM;
  }
  if (!broker_configured(cfg) ||
      redis_url_parse(cfg->url, b->host, sizeof b->host, &b->port, b->password, sizeof b->password)) {
    snprintf(err, errlen, "bad broker url '%s': use redis://host:port", cfg && cfg->url ? cfg->url : "");
    free(b);
    return GROVE_ECONFIG;
  }
  rand_hex(b->instance, sizeof b->instance);
  pthread_mutex_init(&b->lock, NULL);
  pthread_cond_init(&b->cond, NULL);
  pthread_cond_init(&b->done_cond, NULL);
  pthread_mutex_init(&b->pool_lock, NULL);
  pthread_cond_init(&b->pool_cond, NULL);
  link_init(&b->pub_link, "publish", -1);
  link_init(&b->sub_link, "subscribe", -1);
  link_init(&b->pool_link, "pool", -1);
  snprintf(b->last_error, sizeof b->last_error, "not connected yet");
  if (m) {
    b->up = metric_get(metrics_family(m, "grove_broker_up",
                                      "1 when every connection to the Redis broker is up.",
                                      METRIC_GAUGE, ""));
    b->connect_errors = metric_get(metrics_family(
        m, "grove_broker_errors_total", "Redis connection failures (connects refused or lost).",
        METRIC_COUNTER, ""));
    b->reconnects = metric_get(metrics_family(
        m, "grove_broker_reconnects_total",
        "Connections to Redis made again after they had been up.", METRIC_COUNTER, ""));
    b->command_errors = metric_get(metrics_family(m, "grove_broker_command_errors_total",
                                                  "Commands Redis answered with an error.",
                                                  METRIC_COUNTER, ""));
    b->dropped = metric_get(metrics_family(
        m, "grove_broker_dropped_total",
        "Messages not sent to other instances because the broker was away or behind.",
        METRIC_COUNTER, ""));
    b->received = metric_get(metrics_family(m, "grove_broker_received_total",
                                            "Messages received from other instances.",
                                            METRIC_COUNTER, ""));
  }
  int rc = loops_create(b, nloops);
  if (!rc && h && (rc = health_add(h, "broker", health_check, b)) == 0)
    b->health = h;
  if (rc) {
    snprintf(err, errlen, "cannot make the broker: %s", grove_strerror(rc));
    broker_destroy(b);
    return rc;
  }
  update_up(b);
  *out = b;
  return 0;
}

int broker_start(struct broker *b) {
  if (atomic_exchange(&b->started, true))
    return GROVE_EBUSY;
  update_up(b);
  return pubsub_start(b);
}

void broker_stop(struct broker *b) {
  if (!b)
    return;
  health_remove(b->health, health_check, b);
  b->health = NULL;
  pubsub_stop(b);
}

void broker_destroy(struct broker *b) {
  if (!b)
    return;
  broker_stop(b);
  loops_destroy(b);
  while (b->idle) {
    struct pooled *p = b->idle;
    b->idle = p->next;
    redisFree(p->c);
    free(p);
  }
  pthread_mutex_destroy(&b->pool_lock);
  pthread_cond_destroy(&b->pool_cond);
  pthread_mutex_destroy(&b->lock);
  pthread_cond_destroy(&b->cond);
  pthread_cond_destroy(&b->done_cond);
  free(b);
}

const char *broker_instance(const struct broker *b) { return b->instance; }

bool broker_ok(struct broker *b, char *err, size_t errlen) {
  bool ok = (!b->started || (atomic_load(&b->pub_link.up) && atomic_load(&b->sub_link.up))) &&
            broker_loops_up(b);
  if (!ok && err) {
    pthread_mutex_lock(&b->lock);
    snprintf(err, errlen, "%s", b->last_error);
    pthread_mutex_unlock(&b->lock);
  }
  return ok;
}
