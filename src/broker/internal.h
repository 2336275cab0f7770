/* internal.h — broker-internal state shared by broker.c (life, the
 * reconnect policy, blocking connections, the pool, health and metrics),
 * pubsub.c (the publisher and subscriber threads), loop.c (one
 * asynchronous connection per event loop), lease.c and streams.c. */
#ifndef GROVE_BROKER_INTERNAL_H
#define GROVE_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "broker/broker.h"

#define IO_TIMEOUT_MS 1000 /* connect, and each command on a blocking connection */
#define MAX_CHANNELS 8
#define MAX_LISTENERS 8
#define POOL_MAX 8         /* blocking connections for worker threads */

/* ---- one reconnect policy --------------------------------------------------
 * Every connection (publisher, subscriber, each loop's, the pool's) keeps
 * a link: whether Redis answers on it now, and when the next connect may
 * be tried. A failure schedules the next try after a delay that doubles
 * from BROKER_RETRY_MIN_MS to BROKER_RETRY_MAX_MS, jittered to between
 * half and all of it so that instances restarted together do not knock
 * in step. A link is owned by one thread (its thread, its loop, or the
 * pool's lock); `up` is read by any. */
struct link {
  const char *role;     /* "publish", "subscribe", "loop", "pool" */
  int index;            /* the loop's, else -1 */
  _Atomic bool up;      /* Redis answered on the current connection */
  _Atomic bool used;    /* counts in broker_ok (a started loop, not stopped) */
  bool ever_up;         /* the next up is a reconnect */
  bool said_down;       /* the loss was logged already */
  uint64_t delay_ms;    /* the next failure waits about this long */
  uint64_t next_try_ms; /* monotonic; 0: now */
};

struct loop_conn; /* loop.c */

struct out_msg {
  struct out_msg *next;
  bool control;          /* on the control channel, not a subscriber's */
  const char *channel;   /* for publishes: a channel name the broker holds */
  const char *del_key;   /* a key to delete before publishing, or NULL */
  struct waiter *waiter; /* broker_control_send's waiting caller, or NULL (under lock) */
  size_t len;
  char data[]; /* "instance\tkind\tpayload" or "instance\tmsg" */
};

struct queue {
  struct out_msg *head, *tail;
  size_t n;
};

struct pooled {
  struct pooled *next;
  redisContext *c;
};

struct broker {
  char host[256];
  int port;
  char password[128];
  char instance[17];
  struct health *health;
  /* channels, before start */
  struct {
    char name[64];
    broker_message_fn fn;
    void *arg;
  } channels[MAX_CHANNELS];
  int nchannels;
  _Atomic bool started;
  /* control listeners: added under lock, only ever appended */
  struct {
    broker_control_fn fn;
    void *arg;
    const char *owner;
  } listeners[MAX_LISTENERS];
  _Atomic int nlisteners;
  /* pubsub.c */
  pthread_t pub_thread, sub_thread;
  pthread_mutex_t lock; /* queues, stop, sub_ctx, last_error, listeners */
  pthread_cond_t cond;
  pthread_cond_t done_cond;
  struct queue ctl, live;
  bool stop;
  redisContext *sub_ctx; /* under lock: stop shuts its socket */
  struct link pub_link, sub_link;
  char last_error[200];
  /* scripts loaded on every new loop connection: appended under lock */
  struct broker_script *scripts[16];
  _Atomic int scripts_n;
  /* loop.c */
  struct loop_conn *loops;
  int nloops;
  /* the pool (broker.c) */
  pthread_mutex_t pool_lock;
  pthread_cond_t pool_cond;
  struct pooled *idle;
  int npooled; /* idle and lent */
  struct link pool_link;
  /* metrics */
  struct metric *up, *reconnects, *connect_errors, *command_errors, *dropped, *received;
};

uint64_t now_ms(void);
void link_init(struct link *l, const char *role, int index);
/* ms until the link may try to connect (0: now). */
uint64_t link_wait(const struct link *l, uint64_t now);
/* Redis answered on a new connection: resets the delay, logs, counts a
 * reconnect when the link was up before. */
void link_up(struct broker *b, struct link *l);
/* The connection failed or was lost: notes why (last error, counted),
 * logs once per loss, schedules the next try. */
void link_down(struct broker *b, struct link *l, const char *why);
/* Sets grove_broker_up from every used link. */
void update_up(struct broker *b);
void set_error(struct broker *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void count_command_error(struct broker *b);

/* A blocking connection on which Redis has answered (AUTH, PING), every
 * command with a deadline; NULL and *why on failure. */
redisContext *connect_blocking(struct broker *b, char *why, size_t n);

/* One command on a pooled blocking connection (worker threads): argv
 * may be rewritten (EVALSHA to EVAL after NOSCRIPT when s is given).
 * wait_ms: how long the command itself may block in Redis (XREADGROUP
 * BLOCK), added to the deadline. Returns broker_eval_sync's codes. */
int pool_call(struct broker *b, int argc, const char **argv, size_t *lens,
              const struct broker_script *s, unsigned wait_ms, redisReply **out);

/* pubsub.c */
int pubsub_start(struct broker *b);
void pubsub_stop(struct broker *b);
/* Hands a control message to every listener (subscriber thread). */
void control_dispatch(struct broker *b, const char *kind, const char *payload, size_t len);

/* loop.c */
int loops_create(struct broker *b, int nloops);
void loops_destroy(struct broker *b);

/* Loads s's SHA-1 the first time (thread-safe: every thread writes the
 * same bytes). */
void script_prepare(struct broker_script *s);

#endif
