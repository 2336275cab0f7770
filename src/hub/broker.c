/* broker.c — Redis pub/sub between Grove instances.
 *
 * Two threads, each with its own blocking connection, neither on an event
 * loop: the publisher drains two bounded queues into PUBLISH, control
 * messages (cache invalidations) before live ones, and pings when idle;
 * the subscriber reads messages on two channels and delivers those of
 * other instances, pinging when nothing comes. Both reconnect by
 * themselves with backoff (100 ms to 2 s) from any state: never connected,
 * connect failed, dropped, or hung. Every command and every silence has a
 * deadline (IO_TIMEOUT_MS, SILENCE_MS), so a Redis that stops answering
 * (SIGSTOP, a black-holed network) is seen as down within about 2.5 s and
 * /ready says so. While Redis is away, local delivery goes on; live
 * messages for other instances are dropped and counted, control messages
 * wait. Each time the subscription comes up, listeners get a
 * HUB_CONTROL_RESYNC message: what was published while this instance was
 * not subscribed is lost to it, so caches drop what they hold. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "hub/internal.h"

#define CHANNEL "grove:live"
#define CONTROL "grove:control"
#define QUEUE_MAX 10000     /* per queue */
#define IO_TIMEOUT_MS 1000  /* connect, and each command of the publisher */
#define PING_MS 500         /* the subscriber pings after this much silence */
#define SILENCE_MS 2000     /* no byte from Redis for this long: hung */

struct waiter {
  bool done; /* under the broker's lock */
};

struct out_msg {
  struct out_msg *next;
  bool control;          /* on grove:control, not grove:live */
  const char *del_key;   /* a Redis key to delete before publishing, or NULL */
  struct waiter *waiter; /* broker_control_sync's caller, or NULL (under lock) */
  size_t len;
  char data[]; /* "instance\ttopic\tjson" */
};

struct queue {
  struct out_msg *head, *tail;
  size_t n;
};

struct broker {
  struct hub *hub;
  char host[256];
  int port;
  char password[128];
  char instance[17];
  pthread_t pub_thread, sub_thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_cond_t done_cond; /* a synchronous control message went out */
  struct queue ctl, live;   /* control first */
  bool stop;
  _Atomic bool pub_up, sub_up;
  redisContext *sub_ctx; /* under lock: stop shuts its socket */
  char last_error[200];
  struct metric *up, *errors, *dropped, *received;
};

static void set_error(struct broker *b, const char *what, redisContext *c) {
  pthread_mutex_lock(&b->lock);
  snprintf(b->last_error, sizeof b->last_error, "%s: %s", what,
           c && c->err ? c->errstr : "no connection");
  pthread_mutex_unlock(&b->lock);
  metric_add(b->errors, 1);
}

static void update_up(struct broker *b) {
  metric_set(b->up, atomic_load(&b->pub_up) && atomic_load(&b->sub_up) ? 1 : 0);
}

static redisContext *connect_redis(struct broker *b) {
  struct timeval tv = {IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout(b->host, b->port, tv);
  if (!c || c->err) {
    set_error(b, "cannot connect", c);
    redisFree(c);
    return NULL;
  }
  /* every command has a deadline: a hung Redis is an error, not a hang */
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    set_error(b, "cannot set timeout", c);
    redisFree(c);
    return NULL;
  }
  if (b->password[0]) {
    redisReply *r = redisCommand(c, "AUTH %s", b->password);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (!ok) {
      set_error(b, "authentication failed", c);
      redisFree(c);
      return NULL;
    }
  }
  /* a stopped Redis still completes TCP handshakes (the kernel does): a
   * connection counts only once Redis itself has answered */
  redisReply *r = redisCommand(c, "PING");
  bool ok = r && !c->err && r->type != REDIS_REPLY_ERROR;
  freeReplyObject(r);
  if (!ok) {
    set_error(b, "no answer to ping", c);
    redisFree(c);
    return NULL;
  }
  return c;
}

/* Sleeps up to ms unless stopping; returns true when stopping. */
static bool nap(struct broker *b, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
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

/* Under the lock: a synchronous sender learns its message went out. */
static void signal_done(struct broker *b, struct out_msg *m) {
  if (m->waiter) {
    m->waiter->done = true;
    m->waiter = NULL;
    pthread_cond_broadcast(&b->done_cond);
  }
}

static void *pub_main(void *arg) {
  struct broker *b = arg;
  redisContext *c = NULL;
  int backoff = 100;
  for (;;) {
    if (!c) {
      c = connect_redis(b);
      if (!c) {
        atomic_store(&b->pub_up, false);
        update_up(b);
        if (nap(b, backoff))
          break;
        backoff = backoff < 2000 ? backoff * 2 : 2000;
        continue;
      }
      backoff = 100;
      atomic_store(&b->pub_up, true);
      update_up(b);
      log_info(NULL, "broker connected", "host=%s port=%d role=publish", b->host, b->port);
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
    /* invalidations first: a write waits on them, live messages do not */
    struct out_msg *m = queue_pop(&b->ctl);
    if (!m)
      m = queue_pop(&b->live);
    pthread_mutex_unlock(&b->lock);
    redisReply *r = NULL;
    if (m && m->del_key) {
      /* the key goes, and its version moves on, so a writer that read the
       * old version before cannot put the old value back */
      r = redisCommand(c, "EVAL %s 2 %s %s:v", "redis.call('INCR', KEYS[2]) "
                       "return redis.call('DEL', KEYS[1])", m->del_key, m->del_key);
      if (r && !c->err) {
        freeReplyObject(r);
        r = NULL;
      }
    }
    if (!c->err)
      r = m ? redisCommand(c, "PUBLISH %s %b", m->control ? CONTROL : CHANNEL, m->data, m->len)
            : redisCommand(c, "PING");
    bool failed = !r || c->err;
    pthread_mutex_lock(&b->lock);
    if (m && !failed) {
      signal_done(b, m);
    } else if (m && m->control) {
      /* an invalidation must not be lost: put it back for the next connection */
      m->next = b->ctl.head;
      b->ctl.head = m;
      if (!b->ctl.tail)
        b->ctl.tail = m;
      b->ctl.n++;
      m = NULL;
    }
    pthread_mutex_unlock(&b->lock);
    free(m);
    if (failed) {
      set_error(b, "publish failed", c);
      log_warn(NULL, "broker connection lost", "role=publish error=\"%s\"",
               c->err ? c->errstr : "?");
      freeReplyObject(r);
      redisFree(c);
      c = NULL;
      atomic_store(&b->pub_up, false);
      update_up(b);
      continue;
    }
    freeReplyObject(r);
  }
  redisFree(c);
  return NULL;
}

static void handle_message(struct broker *b, bool control, const char *data, size_t len) {
  const char *t1 = memchr(data, '\t', len);
  if (!t1)
    return;
  const char *t2 = memchr(t1 + 1, '\t', len - (size_t)(t1 + 1 - data));
  if (!t2)
    return;
  if ((size_t)(t1 - data) == strlen(b->instance) && memcmp(data, b->instance, (size_t)(t1 - data)) == 0)
    return; /* our own, already delivered here */
  char topic[300];
  size_t tl = (size_t)(t2 - t1 - 1);
  if (tl >= sizeof topic)
    return;
  memcpy(topic, t1 + 1, tl);
  topic[tl] = '\0';
  if (control) {
    hub_control_dispatch(b->hub, topic, t2 + 1, len - (size_t)(t2 + 1 - data));
    return;
  }
  if (!hub_topic_valid(topic))
    return;
  metric_add(b->received, 1);
  hub_deliver(b->hub, topic, t2 + 1, len - (size_t)(t2 + 1 - data), NULL);
}

/* Reads what the subscription sends until it breaks, goes silent for
 * SILENCE_MS (pinging after PING_MS of silence) or the broker stops.
 * Returns why it ended (NULL: stopping). */
static const char *read_subscription(struct broker *b, redisContext *c) {
  uint64_t heard = clock_mono_ns() / 1000000, pinged = 0;
  for (;;) {
    void *reply = NULL;
    if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
      return c->errstr;
    if (reply) {
      redisReply *r = reply;
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "message") == 0 &&
          r->element[1]->type == REDIS_REPLY_STRING && r->element[2]->type == REDIS_REPLY_STRING)
        handle_message(b, strcmp(r->element[1]->str, CONTROL) == 0, r->element[2]->str,
                       r->element[2]->len);
      freeReplyObject(r);
      continue;
    }
    pthread_mutex_lock(&b->lock);
    bool stop = b->stop;
    pthread_mutex_unlock(&b->lock);
    if (stop)
      return NULL;
    uint64_t now = clock_mono_ns() / 1000000;
    if (now - heard >= SILENCE_MS)
      return "no answer to ping";
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
      heard = clock_mono_ns() / 1000000;
    }
  }
}

static void *sub_main(void *arg) {
  struct broker *b = arg;
  int backoff = 100;
  for (;;) {
    pthread_mutex_lock(&b->lock);
    bool stop = b->stop;
    pthread_mutex_unlock(&b->lock);
    if (stop)
      break;
    redisContext *c = connect_redis(b);
    if (c) {
      redisReply *r = redisCommand(c, "SUBSCRIBE %s %s", CHANNEL, CONTROL);
      bool ok = r && !c->err;
      /* SUBSCRIBE answers once per channel: read the second answer too */
      if (ok) {
        freeReplyObject(r);
        r = NULL;
        ok = redisGetReply(c, (void **)&r) == REDIS_OK;
      }
      freeReplyObject(r);
      if (!ok) {
        set_error(b, "subscribe failed", c);
        redisFree(c);
        c = NULL;
      }
    }
    if (!c) {
      atomic_store(&b->sub_up, false);
      update_up(b);
      if (nap(b, backoff))
        break;
      backoff = backoff < 2000 ? backoff * 2 : 2000;
      continue;
    }
    backoff = 100;
    pthread_mutex_lock(&b->lock);
    b->sub_ctx = c;
    stop = b->stop;
    pthread_mutex_unlock(&b->lock);
    if (stop) {
      /* broker_stop ran before sub_ctx was set: its shutdown missed us */
      pthread_mutex_lock(&b->lock);
      b->sub_ctx = NULL;
      pthread_mutex_unlock(&b->lock);
      redisFree(c);
      break;
    }
    atomic_store(&b->sub_up, true);
    update_up(b);
    log_info(NULL, "broker connected", "host=%s port=%d role=subscribe", b->host, b->port);
    /* messages sent while this instance was not subscribed never came:
     * whoever keeps copies of shared state drops them now */
    hub_control_dispatch(b->hub, HUB_CONTROL_RESYNC, "", 0);
    const char *why = read_subscription(b, c);
    atomic_store(&b->sub_up, false);
    update_up(b);
    pthread_mutex_lock(&b->lock);
    b->sub_ctx = NULL;
    stop = b->stop;
    if (!stop)
      snprintf(b->last_error, sizeof b->last_error, "subscription lost: %s", why ? why : "?");
    pthread_mutex_unlock(&b->lock);
    if (!stop) {
      metric_add(b->errors, 1);
      log_warn(NULL, "broker connection lost", "role=subscribe error=\"%s\"", why ? why : "?");
    }
    redisFree(c);
  }
  return NULL;
}

int broker_start(struct broker **out, const char *url, struct hub *h, struct metrics *m,
                 char *err, size_t errlen) {
  struct broker *b = calloc(1, sizeof *b);
  if (!b)
    return GROVE_ENOMEM;
  if (redis_url_parse(url, b->host, sizeof b->host, &b->port, b->password, sizeof b->password)) {
    snprintf(err, errlen, "bad broker url '%s': use redis://host:port", url);
    free(b);
    return GROVE_ECONFIG;
  }
  b->hub = h;
  rand_hex(b->instance, sizeof b->instance);
  pthread_mutex_init(&b->lock, NULL);
  pthread_cond_init(&b->cond, NULL);
  pthread_cond_init(&b->done_cond, NULL);
  if (m) {
    b->up = metric_get(metrics_family(m, "grove_broker_up", "1 when the Redis broker is connected.",
                                      METRIC_GAUGE, ""));
    b->errors = metric_get(metrics_family(m, "grove_broker_errors_total",
                                          "Broker connection failures.", METRIC_COUNTER, ""));
    b->dropped = metric_get(metrics_family(
        m, "grove_broker_dropped_total",
        "Messages not sent to other instances because the broker was away or behind.",
        METRIC_COUNTER, ""));
    b->received = metric_get(metrics_family(m, "grove_broker_received_total",
                                            "Messages received from other instances.",
                                            METRIC_COUNTER, ""));
  }
  snprintf(b->last_error, sizeof b->last_error, "not connected yet");
  pthread_create(&b->pub_thread, NULL, pub_main, b);
  pthread_create(&b->sub_thread, NULL, sub_main, b);
  *out = b;
  return 0;
}

void broker_stop(struct broker *b) {
  if (!b)
    return;
  pthread_mutex_lock(&b->lock);
  b->stop = true;
  if (b->sub_ctx)
    shutdown(b->sub_ctx->fd, SHUT_RDWR); /* wakes the blocked read */
  pthread_cond_broadcast(&b->cond);
  pthread_mutex_unlock(&b->lock);
  pthread_join(b->pub_thread, NULL);
  pthread_join(b->sub_thread, NULL);
  queue_free(&b->ctl);
  queue_free(&b->live);
  pthread_mutex_destroy(&b->lock);
  pthread_cond_destroy(&b->cond);
  pthread_cond_destroy(&b->done_cond);
  free(b);
}

static struct out_msg *make_msg(struct broker *b, bool control, const char *topic,
                               const char *json, size_t len, const char *del_key) {
  size_t il = strlen(b->instance), tl = strlen(topic), dl = del_key ? strlen(del_key) + 1 : 0;
  struct out_msg *m = malloc(sizeof *m + il + tl + len + 2 + dl);
  if (!m)
    return NULL;
  m->next = NULL;
  m->control = control;
  m->waiter = NULL;
  m->len = il + tl + len + 2;
  memcpy(m->data, b->instance, il);
  m->data[il] = '\t';
  memcpy(m->data + il + 1, topic, tl);
  m->data[il + 1 + tl] = '\t';
  memcpy(m->data + il + tl + 2, json, len);
  m->del_key = NULL;
  if (del_key) {
    memcpy(m->data + m->len, del_key, dl);
    m->del_key = m->data + m->len;
  }
  return m;
}

/* Queues m (under the lock); false when its queue is full (m not taken). */
static bool enqueue_locked(struct broker *b, struct out_msg *m) {
  struct queue *q = m->control ? &b->ctl : &b->live;
  if (q->n >= QUEUE_MAX)
    return false;
  queue_push(q, m);
  pthread_cond_broadcast(&b->cond); /* the subscriber may be napping on it too */
  return true;
}

void broker_publish(struct broker *b, const char *topic, const char *json, size_t len) {
  if (!atomic_load(&b->pub_up)) {
    metric_add(b->dropped, 1);
    return;
  }
  struct out_msg *m = make_msg(b, false, topic, json, len, NULL);
  pthread_mutex_lock(&b->lock);
  bool ok = m && enqueue_locked(b, m);
  pthread_mutex_unlock(&b->lock);
  if (!ok) {
    free(m);
    metric_add(b->dropped, 1);
  }
}

void broker_control(struct broker *b, const char *kind, const char *payload, size_t len,
                    const char *del_key) {
  broker_control_sync(b, kind, payload, len, del_key, 0); /* kept while Redis is away */
}

int broker_control_sync(struct broker *b, const char *kind, const char *payload, size_t len,
                        const char *del_key, unsigned timeout_ms) {
  struct out_msg *m = make_msg(b, true, kind, payload, len, del_key);
  struct waiter w = {false};
  if (!m) {
    metric_add(b->dropped, 1);
    return GROVE_ENOMEM;
  }
  pthread_mutex_lock(&b->lock);
  bool wait = timeout_ms > 0 && atomic_load(&b->pub_up);
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

bool broker_subscribed(struct broker *b) { return atomic_load(&b->sub_up); }

bool broker_ok(struct broker *b, char *err, size_t errlen) {
  bool ok = atomic_load(&b->pub_up) && atomic_load(&b->sub_up);
  if (!ok && err) {
    pthread_mutex_lock(&b->lock);
    snprintf(err, errlen, "%s", b->last_error);
    pthread_mutex_unlock(&b->lock);
  }
  return ok;
}
