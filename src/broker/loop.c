/* loop.c — one asynchronous Redis connection per event loop (hiredis's
 * libuv adapter), for commands a request waits on without blocking its
 * loop: scripts (rate limits) and the values of the cache's Redis tier.
 *
 * A connection is up once Redis has answered a PING on it. A timer on the
 * loop (every TICK_MS) keeps it honest: a connect not done within
 * IO_TIMEOUT_MS is given up (the libuv adapter loses a failed connect's
 * error), a command pending BROKER_LOOP_DEADLINE_MS with no answer gives
 * the connection up (hung or too slow: callers fall back at once rather
 * than hold requests), unless the answer already waits in the socket (the
 * loop itself was held up: libuv runs timers before it reads, so a loop
 * that stalls past the deadline must not blame Redis), an idle connection is pinged every PING_MS and
 * given up when the answer takes PING_TIMEOUT_MS. Given up, its pending
 * commands' callbacks get GROVE_EUNAVAIL, and the broker's reconnect
 * policy says when to try again. */
#include <hiredis/async.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "core/error.h"
#include "core/log.h"
#include <hiredis/adapters/libuv.h>

#define TICK_MS 100
#define PING_MS 500
#define PING_TIMEOUT_MS 1000

struct loop_conn {
  struct broker *b;
  uv_loop_t *loop;
  redisAsyncContext *ac; /* connecting or connected; NULL: none */
  struct link link;
  bool stopping;
  uv_timer_t timer;
  int pending;           /* commands sent, not answered */
  uint64_t progress_ms;  /* the last answer, or the first command after none pending */
  uint64_t connect_ms;   /* when the current connect began */
  uint64_t ping_sent_ms; /* 0: no PING outstanding */
  uint64_t last_ping_ms;
  uint64_t epoch;        /* moves on with every new context: stale answers are ignored */
  bool excused;          /* a deadline passed with an answer unread: once, until progress */
};

/* A command in flight. Scripts keep their arguments for a second try
 * after NOSCRIPT. */
struct req {
  struct loop_conn *lc;
  broker_reply_fn cb;
  broker_value_fn vcb; /* broker_get's, instead of cb */
  void *arg;
  struct broker_script *script;
  bool retried;
  int argc;
  const char **argv;
  size_t *lens;
};

/* A value and its version, in one round trip. */
static struct broker_script get_script =
    BROKER_SCRIPT("return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}");
/* Store the value only if the version is the one seen before loading. */
static struct broker_script set_script =
    BROKER_SCRIPT("local v = redis.call('GET', KEYS[2]) or ''\n"
                  "if v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end\n"
                  "return 0\n");

int broker_script_load(struct broker *b, struct broker_script *s) {
  script_prepare(s);
  pthread_mutex_lock(&b->lock);
  int n = atomic_load(&b->scripts_n), rc = 0;
  for (int i = 0; i < n; i++)
    if (b->scripts[i] == s)
      goto out;
  if (n >= (int)(sizeof b->scripts / sizeof b->scripts[0])) {
    rc = GROVE_ETOOBIG;
    goto out;
  }
  b->scripts[n] = s;
  atomic_store(&b->scripts_n, n + 1);
out:
  pthread_mutex_unlock(&b->lock);
  return rc;
}

int loops_create(struct broker *b, int nloops) {
  if (nloops < 0)
    return GROVE_EINVAL;
  /* the cache tier's scripts are on request paths too */
  broker_script_load(b, &get_script);
  broker_script_load(b, &set_script);
  b->loops = calloc(nloops ? (size_t)nloops : 1, sizeof *b->loops);
  if (!b->loops)
    return GROVE_ENOMEM;
  b->nloops = nloops;
  for (int i = 0; i < nloops; i++) {
    b->loops[i].b = b;
    link_init(&b->loops[i].link, "loop", i);
  }
  return 0;
}

void loops_destroy(struct broker *b) {
  free(b->loops);
  b->loops = NULL;
}

bool broker_loops_up(struct broker *b) {
  for (int i = 0; i < b->nloops; i++)
    if (atomic_load(&b->loops[i].link.used) && !atomic_load(&b->loops[i].link.up))
      return false;
  return true;
}

/* ---- the connection ------------------------------------------------------------ */

static void on_connect(const redisAsyncContext *ac, int status) {
  struct loop_conn *lc = ac->data;
  if (lc->ac != ac)
    return; /* a context this loop already gave up on */
  if (status != REDIS_OK) {
    lc->ac = NULL; /* hiredis frees it */
    link_down(lc->b, &lc->link, ac->errstr[0] ? ac->errstr : "cannot connect");
  }
  /* connected is not up yet: a stopped Redis still completes TCP
   * handshakes; on_ready decides */
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct loop_conn *lc = ac->data;
  (void)status;
  if (lc->ac != ac)
    return;
  lc->ac = NULL;
  lc->ping_sent_ms = 0;
  if (!lc->stopping)
    link_down(lc->b, &lc->link, ac->errstr[0] ? ac->errstr : "connection closed");
}

/* Redis answered the first PING: the connection is up. */
static void on_ready(redisAsyncContext *ac, void *reply, void *arg) {
  struct loop_conn *lc = ac->data;
  redisReply *rep = reply;
  if (!rep || lc->ac != ac || (uint64_t)(uintptr_t)arg != lc->epoch)
    return;
  if (rep->type == REDIS_REPLY_ERROR) {
    /* AUTH refused, say: not up; the connect deadline gives it up */
    log_warn(NULL, "redis refused the broker's first command", "loop=%d error=\"%s\"",
             lc->link.index, rep->str);
    return;
  }
  uint64_t now = now_ms();
  lc->ping_sent_ms = 0;
  lc->last_ping_ms = now;
  lc->progress_ms = now;
  link_up(lc->b, &lc->link);
}

/* Gives up on the current context (hung, slow or never connected): its
 * pending callbacks run with no reply. */
static void drop_context(struct loop_conn *lc, const char *why) {
  redisAsyncContext *ac = lc->ac;
  if (!ac)
    return;
  if (lc->pending && atomic_load(&lc->link.up))
    log_warn(NULL, "redis is not answering on a loop's connection", "loop=%d reason=\"%s\" pending=%d",
             lc->link.index, why, lc->pending);
  lc->ac = NULL;
  lc->ping_sent_ms = 0;
  link_down(lc->b, &lc->link, why);
  redisAsyncFree(ac);
}

static void try_connect(struct loop_conn *lc) {
  struct broker *b = lc->b;
  lc->connect_ms = now_ms();
  lc->epoch++;
  lc->excused = false;
  redisAsyncContext *ac = redisAsyncConnect(b->host, b->port);
  if (!ac || ac->err) {
    link_down(b, &lc->link, ac ? ac->errstr : "out of memory");
    if (ac)
      redisAsyncFree(ac);
    return;
  }
  ac->data = lc;
  if (redisLibuvAttach(ac, lc->loop) != REDIS_OK) {
    link_down(b, &lc->link, "cannot attach to the loop");
    redisAsyncFree(ac);
    return;
  }
  lc->ac = ac;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  if (b->password[0])
    redisAsyncCommand(ac, NULL, NULL, "AUTH %s", b->password);
  /* commands on one connection run in order: every EVALSHA after the
   * PING's answer finds these scripts */
  int n = atomic_load(&b->scripts_n);
  for (int i = 0; i < n; i++)
    redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", b->scripts[i]->source);
  redisAsyncCommand(ac, on_ready, (void *)(uintptr_t)lc->epoch, "PING");
}

static void on_pong(redisAsyncContext *ac, void *reply, void *arg) {
  struct loop_conn *lc = ac->data;
  if (!reply || lc->ac != ac || (uint64_t)(uintptr_t)arg != lc->epoch)
    return;
  lc->ping_sent_ms = 0;
  lc->progress_ms = now_ms();
  lc->excused = false;
}

/* True when the connection's socket has bytes waiting, and no error: an
 * answer this loop has not read yet, because the loop was busy or not
 * scheduled; its read comes after this tick. Once only until an answer
 * is read (progress): bytes that the read does not turn into an answer
 * do not hold the deadline off again. An error or a hang-up is no excuse
 * (the libuv adapter stops reading on one: only the deadline ends it). */
static bool answer_waiting(struct loop_conn *lc) {
  if (lc->excused)
    return false;
  struct pollfd p = {.fd = lc->ac->c.fd, .events = POLLIN};
  if (p.fd < 0 || poll(&p, 1, 0) != 1 || p.revents != POLLIN)
    return false;
  lc->excused = true;
  return true;
}

static void on_tick(uv_timer_t *t) {
  struct loop_conn *lc = t->data;
  uint64_t now = now_ms();
  bool up = atomic_load(&lc->link.up);
  if (lc->stopping)
    return;
  if (lc->ac && !up && now - lc->connect_ms >= IO_TIMEOUT_MS)
    drop_context(lc, "connect timed out");
  else if (lc->ac && lc->pending > 0 && now - lc->progress_ms > BROKER_LOOP_DEADLINE_MS) {
    if (!answer_waiting(lc))
      drop_context(lc, "no answer in time");
  } else if (lc->ac && up && lc->ping_sent_ms && now - lc->ping_sent_ms > PING_TIMEOUT_MS) {
    if (!answer_waiting(lc))
      drop_context(lc, "no answer to ping");
  }
  else if (lc->ac && up && !lc->ping_sent_ms && now - lc->last_ping_ms >= PING_MS) {
    lc->last_ping_ms = now;
    if (redisAsyncCommand(lc->ac, on_pong, (void *)(uintptr_t)lc->epoch, "PING") == REDIS_OK)
      lc->ping_sent_ms = now;
  }
  if (!lc->ac && link_wait(&lc->link, now) == 0)
    try_connect(lc);
}

void broker_loop_start(struct broker *b, uv_loop_t *loop, int index) {
  if (index < 0 || index >= b->nloops)
    return;
  struct loop_conn *lc = &b->loops[index];
  lc->loop = loop;
  lc->stopping = false;
  atomic_store(&lc->link.used, true);
  update_up(b);
  uv_timer_init(loop, &lc->timer);
  lc->timer.data = lc;
  uv_timer_start(&lc->timer, on_tick, TICK_MS, TICK_MS);
  try_connect(lc);
}

void broker_loop_stop(struct broker *b, int index) {
  if (index < 0 || index >= b->nloops)
    return;
  struct loop_conn *lc = &b->loops[index];
  if (!lc->loop)
    return;
  lc->stopping = true;
  uv_close((uv_handle_t *)&lc->timer, NULL);
  redisAsyncContext *ac = lc->ac;
  lc->ac = NULL;
  atomic_store(&lc->link.used, false);
  atomic_store(&lc->link.up, false);
  if (ac)
    redisAsyncFree(ac); /* runs pending callbacks, closes its poll handle */
  lc->loop = NULL;
  update_up(b);
}

/* ---- commands ------------------------------------------------------------------ */

static struct loop_conn *conn_of(struct broker *b, uv_loop_t *loop) {
  for (int i = 0; i < b->nloops; i++)
    if (b->loops[i].loop == loop)
      return &b->loops[i];
  return NULL;
}

static void finish(struct req *q, int rc, const redisReply *rep) {
  if (q->vcb) {
    const char *version = "";
    char vbuf[32];
    if (rc == 0) {
      if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        rc = GROVE_EIO;
      } else {
        const redisReply *v = rep->element[0], *ver = rep->element[1];
        if (ver->type == REDIS_REPLY_STRING) {
          snprintf(vbuf, sizeof vbuf, "%.*s", (int)ver->len, ver->str);
          version = vbuf;
        }
        if (v->type == REDIS_REPLY_STRING) {
          q->vcb(0, v->str, v->len, version, q->arg);
          return;
        }
        rc = GROVE_ENOENT;
      }
    }
    q->vcb(rc, NULL, 0, version, q->arg);
  } else if (q->cb) {
    q->cb(rc, rc == GROVE_EUNAVAIL ? NULL : rep, q->arg);
  }
}

static int send_req(struct loop_conn *lc, struct req *q);

static void on_reply(redisAsyncContext *ac, void *reply, void *arg) {
  struct req *q = arg;
  struct loop_conn *lc = q->lc;
  redisReply *rep = reply;
  lc->pending--;
  lc->progress_ms = now_ms();
  lc->excused = false;
  if (rep && rep->type == REDIS_REPLY_ERROR && q->script && !q->retried &&
      strncmp(rep->str, "NOSCRIPT", 8) == 0 && lc->ac == ac) {
    /* flushed, or a restarted Redis: EVAL runs it and loads it again */
    q->retried = true;
    q->argv[0] = "EVAL";
    q->lens[0] = 4;
    q->argv[1] = q->script->source;
    q->lens[1] = strlen(q->script->source);
    if (send_req(lc, q) == 0)
      return;
    rep = NULL;
  }
  int rc = 0;
  if (!rep) {
    rc = GROVE_EUNAVAIL;
  } else if (rep->type == REDIS_REPLY_ERROR) {
    count_command_error(lc->b);
    log_warn(NULL, "redis refused a command", "loop=%d error=\"%s\"", lc->link.index, rep->str);
    rc = GROVE_EIO;
  }
  finish(q, rc, rep);
  free(q);
}

static int send_req(struct loop_conn *lc, struct req *q) {
  if (!lc->ac || redisAsyncCommandArgv(lc->ac, on_reply, q, q->argc, q->argv, q->lens) != REDIS_OK)
    return GROVE_EUNAVAIL;
  if (lc->pending++ == 0) {
    lc->progress_ms = now_ms();
    lc->excused = false;
  }
  return 0;
}

/* A request for EVALSHA s keys… args…, its arguments copied after it. */
static struct req *make_eval(struct broker_script *s, int nkeys, const char *const *keys,
                             int nargs, const char *const *args, const size_t *arglens) {
  if (nkeys < 0 || nargs < 0 || nkeys + nargs > 64)
    return NULL;
  script_prepare(s);
  int argc = 3 + nkeys + nargs;
  size_t bytes = sizeof(struct req) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + 16;
  for (int i = 0; i < nkeys; i++)
    bytes += strlen(keys[i]) + 1;
  for (int i = 0; i < nargs; i++)
    bytes += (arglens ? arglens[i] : strlen(args[i])) + 1;
  struct req *q = calloc(1, bytes);
  if (!q)
    return NULL;
  q->script = s;
  q->argc = argc;
  q->argv = (const char **)(q + 1);
  q->lens = (size_t *)(q->argv + argc);
  char *p = (char *)(q->lens + argc);
  q->argv[0] = "EVALSHA";
  q->lens[0] = 7;
  q->argv[1] = s->sha;
  q->lens[1] = 40;
  q->lens[2] = (size_t)snprintf(p, 16, "%d", nkeys);
  q->argv[2] = p;
  p += q->lens[2] + 1;
  for (int i = 0; i < nkeys + nargs; i++) {
    const char *src = i < nkeys ? keys[i] : args[i - nkeys];
    size_t n = i < nkeys ? strlen(src) : arglens ? arglens[i - nkeys] : strlen(src);
    memcpy(p, src, n);
    p[n] = '\0';
    q->argv[3 + i] = p;
    q->lens[3 + i] = n;
    p += n + 1;
  }
  return q;
}

static int submit(struct broker *b, uv_loop_t *loop, struct req *q) {
  struct loop_conn *lc = conn_of(b, loop);
  if (!q)
    return GROVE_ENOMEM;
  if (!lc || !atomic_load(&lc->link.up) || !lc->ac) {
    free(q);
    return GROVE_EUNAVAIL;
  }
  q->lc = lc;
  int rc = send_req(lc, q);
  if (rc)
    free(q);
  return rc;
}

int broker_eval(struct broker *b, uv_loop_t *loop, struct broker_script *s, int nkeys,
                const char *const *keys, int nargs, const char *const *args, broker_reply_fn cb,
                void *arg) {
  if (nkeys < 0 || nargs < 0 || nkeys + nargs > 64)
    return GROVE_EINVAL;
  struct req *q = make_eval(s, nkeys, keys, nargs, args, NULL);
  if (q) {
    q->cb = cb;
    q->arg = arg;
  }
  return submit(b, loop, q);
}

#define KEY_MAX 512

int broker_get(struct broker *b, uv_loop_t *loop, const char *key, broker_value_fn cb, void *arg) {
  char vkey[KEY_MAX + 3];
  if (!key || !*key || strlen(key) > KEY_MAX || !cb)
    return GROVE_EINVAL;
  snprintf(vkey, sizeof vkey, "%s:v", key);
  const char *keys[] = {key, vkey};
  struct req *q = make_eval(&get_script, 2, keys, 0, NULL, NULL);
  if (q) {
    q->vcb = cb;
    q->arg = arg;
  }
  return submit(b, loop, q);
}

int broker_set(struct broker *b, uv_loop_t *loop, const char *key, const void *val, size_t len,
               uint64_t ttl_ms, const char *version) {
  char vkey[KEY_MAX + 3], ttl[24];
  if (!key || !*key || strlen(key) > KEY_MAX || !ttl_ms)
    return GROVE_EINVAL;
  snprintf(vkey, sizeof vkey, "%s:v", key);
  snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
  const char *keys[] = {key, vkey};
  const char *args[] = {version ? version : "", val ? val : "", ttl};
  size_t lens[] = {strlen(args[0]), len, strlen(ttl)};
  return submit(b, loop, make_eval(&set_script, 2, keys, 3, args, lens));
}
