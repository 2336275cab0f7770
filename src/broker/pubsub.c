/* pubsub.c — publishing and subscribing between instances.
 *
 * Two threads, each with its own blocking connection, neither on an event
 * loop: the publisher drains two bounded queues into PUBLISH, control
 * messages (and the deletions they carry) before publishes, and pings
 * when idle; the subscriber reads the control channel and the subscribed
 * channels and hands other instances' messages to their listeners,
 * pinging when nothing comes. Both reconnect through the broker's one
 * policy (link_down / link_wait). Every command and every silence has a
 * deadline (IO_TIMEOUT_MS, SILENCE_MS), so a Redis that stops answering
 * (SIGSTOP, a black-holed network) is seen as down within about 2.5 s.
 * While Redis is away, publishes are dropped and counted, control
 * messages wait. Each time the subscription comes up, control listeners
 * get BROKER_RESYNC. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "broker/internal.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

#define CONTROL "grove:control"
#define QUEUE_MAX 10000 /* per queue */
#define PING_MS 500     /* the subscriber pings after this much silence */
#define SILENCE_MS 2000 /* no byte from Redis for this long: hung */

struct waiter {
  bool done; /* under the broker's lock */
};

/* Sleeps up to ms unless stopping; returns true when stopping. */
static bool nap(struct broker *b, uint64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&b->lock);
  if (!b->stop)
    pthread_cond_timedwait(&b->cond, &b->lock, &ts);
  bool stop = b->stop;
  pthread_mutex_unlock(&b->lock);
  return stop;
}

static bool stopping(struct broker *b) {
  pthread_mutex_lock(&b->lock);
  bool stop = b->stop;
  pthread_mutex_unlock(&b->lock);
  return stop;
}

static struct out_msg *queue_pop(struct queue *q) {
  struct out_msg *m = q->head;
  if (m) {
    q->head = m->next;
    if (!q->head)
      q->tail = NULL;
    q->n--;
    m->next = NULL;
  }
  return m;
}

static void queue_push(struct queue *q, struct out_msg *m) {
  m->next = NULL;
  if (q->tail)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  q->n++;
}

static void queue_free(struct queue *q) {
  struct out_msg *m;
  while ((m = queue_pop(q)))
    free(m);
}

/* Under the lock: a waiting sender learns its message went out. */
static void signal_done(struct broker *b, struct out_msg *m) {
  if (m->waiter) {
    m->waiter->done = true;
    m->waiter = NULL;
    pthread_cond_broadcast(&b->done_cond);
  }
}

/* ---- the publisher ------------------------------------------------------------ */

/* Sends m (or a PING when m is NULL). False when the connection failed. */
static bool send_one(redisContext *c, struct out_msg *m) {
  redisReply *r = NULL;
  if (m && m->del_key) {
    /* the key goes, and its version moves on, so a writer that read the
     * old version before cannot put the old value back */
    r = redisCommand(c, "EVAL %s 2 %s %s:v",
                     "redis.call('INCR', KEYS[2]) return redis.call('DEL', KEYS[1])", m->del_key,
                     m->del_key);
    if (!r || c->err) {
      freeReplyObject(r);
      return false;
    }
    freeReplyObject(r);
  }
  r = m ? redisCommand(c, "PUBLISH %s %b", m->control ? CONTROL : m->channel, m->data, m->len)
        : redisCommand(c, "PING");
  bool ok = r && !c->err;
  freeReplyObject(r);
  return ok;
}

static void *pub_main(void *arg) {
  struct broker *b = arg;
  redisContext *c = NULL;
  for (;;) {
    if (!c) {
      uint64_t wait = link_wait(&b->pub_link, now_ms());
      if (wait) {
        if (nap(b, wait))
          break;
        continue;
      }
      char why[200];
      c = connect_blocking(b, why, sizeof why);
      if (!c) {
        link_down(b, &b->pub_link, why);
        continue;
      }
      link_up(b, &b->pub_link);
    }
    pthread_mutex_lock(&b->lock);
    if (!b->ctl.head && !b->live.head && !b->stop) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1;
      pthread_cond_timedwait(&b->cond, &b->lock, &ts);
    }
    if (b->stop) {
      pthread_mutex_unlock(&b->lock);
      break;
    }
    /* control messages first: a write may wait on them, publishes do not */
    struct out_msg *m = queue_pop(&b->ctl);
    if (!m)
      m = queue_pop(&b->live);
    pthread_mutex_unlock(&b->lock);
    bool ok = send_one(c, m);
    pthread_mutex_lock(&b->lock);
    if (m && ok) {
      signal_done(b, m);
    } else if (m && m->control) {
      /* a control message must not be lost: put it back for the next connection */
      m->next = b->ctl.head;
      b->ctl.head = m;
      if (!b->ctl.tail)
        b->ctl.tail = m;
      b->ctl.n++;
      m = NULL;
    } else if (m) {
      metric_add(b->dropped, 1);
    }
    pthread_mutex_unlock(&b->lock);
    free(m);
    if (!ok) {
      link_down(b, &b->pub_link, c->err ? c->errstr : "publish failed");
      redisFree(c);
      c = NULL;
    }
  }
  redisFree(c);
  return NULL;
}

/* ---- the subscriber ------------------------------------------------------------ */

void control_dispatch(struct broker *b, const char *kind, const char *payload, size_t len) {
  int n = atomic_load(&b->nlisteners); /* only ever appended, each filled before counted */
  for (int i = 0; i < n; i++)
    b->listeners[i].fn(kind, payload, len, b->listeners[i].arg);
}

static void handle_message(struct broker *b, const char *channel, const char *data, size_t len) {
  const char *tab = memchr(data, '\t', len);
  if (!tab)
    return;
  if ((size_t)(tab - data) == strlen(b->instance) &&
      memcmp(data, b->instance, (size_t)(tab - data)) == 0)
    return; /* our own, already delivered here */
  const char *msg = tab + 1;
  size_t ml = len - (size_t)(msg - data);
  if (strcmp(channel, CONTROL) == 0) {
    const char *t2 = memchr(msg, '\t', ml);
    char kind[256];
    size_t kl = t2 ? (size_t)(t2 - msg) : 0;
    if (!t2 || kl >= sizeof kind)
      return;
    memcpy(kind, msg, kl);
    kind[kl] = '\0';
    control_dispatch(b, kind, t2 + 1, ml - kl - 1);
    return;
  }
  for (int i = 0; i < b->nchannels; i++)
    if (strcmp(b->channels[i].name, channel) == 0) {
      metric_add(b->received, 1);
      b->channels[i].fn(channel, msg, ml, b->channels[i].arg);
      return;
    }
}

/* Reads what the subscription sends until it breaks, goes silent for
 * SILENCE_MS (pinging after PING_MS of silence) or the broker stops.
 * Returns why it ended (NULL: stopping). */
static const char *read_subscription(struct broker *b, redisContext *c) {
  uint64_t heard = now_ms(), pinged = 0;
  for (;;) {
    void *reply = NULL;
    if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
      return c->errstr;
    if (reply) {
      redisReply *r = reply;
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "message") == 0 &&
          r->element[1]->type == REDIS_REPLY_STRING && r->element[2]->type == REDIS_REPLY_STRING)
        handle_message(b, r->element[1]->str, r->element[2]->str, r->element[2]->len);
      freeReplyObject(r);
      continue;
    }
    if (stopping(b))
      return NULL;
    uint64_t now = now_ms();
    if (now - heard >= SILENCE_MS) {
      /* an answer that came while this thread was not looking counts */
      struct pollfd last = {.fd = c->fd, .events = POLLIN};
      if (poll(&last, 1, 0) <= 0)
        return "no answer to ping";
      if (redisBufferRead(c) != REDIS_OK)
        return c->errstr;
      heard = now;
      continue;
    }
    if (now - heard >= PING_MS && now - pinged >= PING_MS) {
      /* allowed while subscribed; answered ["pong", ""] */
      int done = 0;
      if (redisAppendCommand(c, "PING") != REDIS_OK)
        return c->errstr;
      while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
          return c->errstr;
      pinged = now;
    }
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int n = poll(&pfd, 1, 100);
    if (n < 0 && errno != EINTR)
      return strerror(errno);
    if (n > 0) {
      if (redisBufferRead(c) != REDIS_OK)
        return c->errstr;
      heard = now_ms();
    }
  }
}

/* SUBSCRIBE to the control channel and every listened one; each is
 * answered separately. */
static bool subscribe_all(struct broker *b, redisContext *c) {
  const char *argv[MAX_CHANNELS + 2];
  int argc = 0;
  argv[argc++] = "SUBSCRIBE";
  argv[argc++] = CONTROL;
  for (int i = 0; i < b->nchannels; i++)
    argv[argc++] = b->channels[i].name;
  redisReply *r = redisCommandArgv(c, argc, argv, NULL);
  bool ok = r && !c->err;
  freeReplyObject(r);
  for (int i = 2; ok && i < argc; i++) {
    r = NULL;
    ok = redisGetReply(c, (void **)&r) == REDIS_OK;
    freeReplyObject(r);
  }
  return ok;
}

static void *sub_main(void *arg) {
  struct broker *b = arg;
  while (!stopping(b)) {
    uint64_t wait = link_wait(&b->sub_link, now_ms());
    if (wait) {
      if (nap(b, wait))
        break;
      continue;
    }
    char why[200];
    redisContext *c = connect_blocking(b, why, sizeof why);
    if (c && !subscribe_all(b, c)) {
      snprintf(why, sizeof why, "subscribe failed: %s", c->err ? c->errstr : "?");
      redisFree(c);
      c = NULL;
    }
    if (!c) {
      link_down(b, &b->sub_link, why);
      continue;
    }
    pthread_mutex_lock(&b->lock);
    b->sub_ctx = c;
    bool stop = b->stop;
    if (stop)
      b->sub_ctx = NULL; /* broker_destroy ran before sub_ctx was set: its shutdown missed us */
    pthread_mutex_unlock(&b->lock);
    if (stop) {
      redisFree(c);
      break;
    }
    link_up(b, &b->sub_link);
    /* messages sent while this instance was not subscribed never came:
     * whoever keeps copies of shared state drops them now */
    control_dispatch(b, BROKER_RESYNC, "", 0);
    const char *lost = read_subscription(b, c);
    pthread_mutex_lock(&b->lock);
    b->sub_ctx = NULL;
    pthread_mutex_unlock(&b->lock);
    if (lost)
      link_down(b, &b->sub_link, lost);
    else
      atomic_store(&b->sub_link.up, false);
    redisFree(c);
  }
  return NULL;
}

int pubsub_start(struct broker *b) {
  if (pthread_create(&b->pub_thread, NULL, pub_main, b))
    return GROVE_ENOMEM;
  if (pthread_create(&b->sub_thread, NULL, sub_main, b)) {
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->pub_thread, NULL);
    atomic_store(&b->started, false);
    return GROVE_ENOMEM;
  }
  return 0;
}

void pubsub_stop(struct broker *b) {
  pthread_mutex_lock(&b->lock);
  bool joined = b->stop;
  b->stop = true;
  if (b->sub_ctx)
    shutdown(b->sub_ctx->fd, SHUT_RDWR); /* wakes the blocked read */
  pthread_cond_broadcast(&b->cond);
  pthread_cond_broadcast(&b->done_cond);
  pthread_mutex_unlock(&b->lock);
  if (!joined && atomic_load(&b->started)) {
    pthread_join(b->pub_thread, NULL);
    pthread_join(b->sub_thread, NULL);
  }
  /* sends from now on are refused (publishes) or freed unsent (control) */
  atomic_store(&b->pub_link.up, false);
  atomic_store(&b->sub_link.up, false);
  pthread_mutex_lock(&b->lock);
  queue_free(&b->ctl);
  queue_free(&b->live);
  pthread_mutex_unlock(&b->lock);
}

/* ---- the public side ------------------------------------------------------------ */

int broker_subscribe(struct broker *b, const char *channel, broker_message_fn fn, void *arg) {
  if (!channel || !*channel || strlen(channel) >= sizeof b->channels[0].name ||
      strcmp(channel, CONTROL) == 0 || !fn)
    return GROVE_EINVAL;
  if (atomic_load(&b->started))
    return GROVE_EBUSY;
  for (int i = 0; i < b->nchannels; i++)
    if (strcmp(b->channels[i].name, channel) == 0)
      return GROVE_EBUSY;
  if (b->nchannels >= MAX_CHANNELS)
    return GROVE_ETOOBIG;
  snprintf(b->channels[b->nchannels].name, sizeof b->channels[0].name, "%s", channel);
  b->channels[b->nchannels].fn = fn;
  b->channels[b->nchannels].arg = arg;
  b->nchannels++;
  return 0;
}

int broker_control_listen(struct broker *b, const char *owner, broker_control_fn fn, void *arg,
                          char *err, size_t errlen) {
  pthread_mutex_lock(&b->lock);
  int n = atomic_load(&b->nlisteners);
  if (n >= MAX_LISTENERS) {
    if (err && errlen)
      snprintf(err, errlen, "too many control listeners (at most %d): '%s' comes after '%s'",
               MAX_LISTENERS, owner ? owner : "?",
               b->listeners[n - 1].owner ? b->listeners[n - 1].owner : "?");
    pthread_mutex_unlock(&b->lock);
    return GROVE_ETOOBIG;
  }
  b->listeners[n].fn = fn;
  b->listeners[n].arg = arg;
  b->listeners[n].owner = owner;
  atomic_store(&b->nlisteners, n + 1);
  pthread_mutex_unlock(&b->lock);
  return 0;
}

/* "instance\t[head\t]body", with `tail` (a NUL-terminated channel or
 * key, may be NULL) kept after it. */
static struct out_msg *make_msg(struct broker *b, bool control, const char *head,
                               const void *body, size_t len, const char *tail) {
  size_t il = strlen(b->instance), hl = head ? strlen(head) + 1 : 0;
  size_t tl = tail ? strlen(tail) + 1 : 0;
  struct out_msg *m = malloc(sizeof *m + il + 1 + hl + len + tl);
  if (!m)
    return NULL;
  memset(m, 0, sizeof *m);
  m->control = control;
  char *p = m->data;
  memcpy(p, b->instance, il);
  p += il;
  *p++ = '\t';
  if (head) {
    memcpy(p, head, hl - 1);
    p += hl - 1;
    *p++ = '\t';
  }
  if (len)
    memcpy(p, body, len);
  p += len;
  m->len = (size_t)(p - m->data);
  if (tail) {
    memcpy(p, tail, tl);
    if (control)
      m->del_key = p;
    else
      m->channel = p;
  }
  return m;
}

/* Queues m (under the lock); false when its queue is full (m not taken). */
static bool enqueue_locked(struct broker *b, struct out_msg *m) {
  struct queue *q = m->control ? &b->ctl : &b->live;
  if (q->n >= QUEUE_MAX || b->stop)
    return false;
  queue_push(q, m);
  pthread_cond_broadcast(&b->cond);
  return true;
}

int broker_publish(struct broker *b, const char *channel, const void *msg, size_t len) {
  if (!atomic_load(&b->pub_link.up)) {
    metric_add(b->dropped, 1);
    return GROVE_EUNAVAIL;
  }
  struct out_msg *m = make_msg(b, false, NULL, msg, len, channel);
  pthread_mutex_lock(&b->lock);
  bool ok = m && enqueue_locked(b, m);
  pthread_mutex_unlock(&b->lock);
  if (!ok) {
    free(m);
    metric_add(b->dropped, 1);
    return m ? GROVE_EBUSY : GROVE_ENOMEM;
  }
  return 0;
}

int broker_control_send(struct broker *b, const char *kind, const char *payload, size_t len,
                        const char *del_key, unsigned timeout_ms) {
  if (!kind || !*kind || strlen(kind) > 255 || strchr(kind, '\t'))
    return GROVE_EINVAL;
  struct out_msg *m = make_msg(b, true, kind, payload, len, del_key);
  struct waiter w = {false};
  if (!m) {
    metric_add(b->dropped, 1);
    return GROVE_ENOMEM;
  }
  pthread_mutex_lock(&b->lock);
  bool wait = timeout_ms > 0 && atomic_load(&b->pub_link.up);
  if (wait)
    m->waiter = &w;
  if (!enqueue_locked(b, m)) {
    pthread_mutex_unlock(&b->lock);
    free(m);
    metric_add(b->dropped, 1);
    return GROVE_EBUSY;
  }
  if (!wait) {
    pthread_mutex_unlock(&b->lock);
    return timeout_ms ? GROVE_EUNAVAIL : 0;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(timeout_ms % 1000) * 1000000ULL;
  ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000ULL);
  ts.tv_nsec = (long)(ns % 1000000000ULL);
  while (!w.done && !b->stop)
    if (pthread_cond_timedwait(&b->done_cond, &b->lock, &ts) == ETIMEDOUT)
      break;
  int rc = w.done ? 0 : GROVE_ETIMEOUT;
  if (!w.done) {
    /* still queued or in flight: it goes out later, without us (m lives
     * until the publisher has sent it, which it tells under this lock) */
    m->waiter = NULL;
  }
  pthread_mutex_unlock(&b->lock);
  return rc;
}

bool broker_control_live(struct broker *b) { return atomic_load(&b->sub_link.up); }
