/* test_broker.c — the Redis client against a real redis-server.
 *
 * The redis_* tests need GROVE_TEST_REDIS (a redis:// URL of a server the
 * test run started: tests/e2e/with_service.py redis, ctest's unit.broker.redis);
 * without it they pass without running. The reconnect test starts and
 * kills a redis-server of its own on a free loopback port. Nothing here
 * sleeps to make a point: every wait is for a condition, with a deadline. */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../test.h"
#include "broker/broker.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/metrics.h"
#include "core/util.h"

#define WAIT_MS 15000 /* a condition not met by then fails the test */

static uint64_t ms_now(void) { return clock_mono_ns() / 1000000; }

static void pause_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* Polls cond(arg) until true or WAIT_MS passed; true when it came. */
static bool wait_for(bool (*cond)(void *), void *arg) {
  uint64_t end = ms_now() + WAIT_MS;
  while (ms_now() < end) {
    if (cond(arg))
      return true;
    pause_ms(5);
  }
  return cond(arg);
}

/* The same while running a loop. */
static bool spin_for(uv_loop_t *loop, bool (*cond)(void *), void *arg) {
  uint64_t end = ms_now() + WAIT_MS;
  while (ms_now() < end) {
    uv_run(loop, UV_RUN_NOWAIT);
    if (cond(arg))
      return true;
    pause_ms(1);
  }
  return cond(arg);
}

static struct broker *make(const char *url, int nloops, struct metrics *m) {
  struct broker_cfg cfg = {.url = (char *)url};
  struct broker *b;
  char err[256];
  int rc = broker_create(&b, &cfg, nloops, m, NULL, err, sizeof err);
  if (rc)
    fprintf(stderr, "broker_create: %s\n", err);
  CHECK(rc == 0);
  return b;
}

static bool is_ok(void *b) { return broker_ok(b, NULL, 0); }
static bool is_down(void *b) { return !broker_ok(b, NULL, 0); }

static void unique(char *out, size_t n, const char *prefix) {
  char r[13];
  rand_hex(r, sizeof r);
  snprintf(out, n, "%s-%s", prefix, r);
}

/* A plain hiredis connection, for what the broker does not offer (SCRIPT
 * FLUSH, looking at keys). */
static redisContext *raw(const char *url) {
  char host[256], pw[128];
  int port;
  CHECK(redis_url_parse(url, host, sizeof host, &port, pw, sizeof pw) == 0);
  redisContext *c = redisConnect(host, port);
  CHECK(c && !c->err);
  return c;
}

static long long raw_int(redisContext *c, const char *cmd, const char *arg) {
  redisReply *r = redisCommand(c, cmd, arg);
  CHECK(r && r->type == REDIS_REPLY_INTEGER);
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

/* The value of an unlabelled metric as /metrics shows it (-1: absent). */
static double metric_of(struct metrics *m, const char *name) {
  struct buf out;
  char line[128];
  buf_init(&out, 0);
  CHECK(metrics_render(m, &out) == 0);
  CHECK(buf_append(&out, "", 1) == 0);
  snprintf(line, sizeof line, "\n%s ", name);
  const char *at = strstr(out.data, line);
  double v = at ? atof(at + strlen(line)) : -1;
  buf_release(&out);
  return v;
}

/* ---- without Redis ------------------------------------------------------------ */

TEST(bad_url_is_refused) {
  struct broker *b = (struct broker *)1;
  char err[256] = "";
  struct broker_cfg cfg = {.url = "http://nope"};
  CHECK_EQ_INT(broker_create(&b, &cfg, 1, NULL, NULL, err, sizeof err), GROVE_ECONFIG);
  CHECK(b == NULL && strstr(err, "http://nope"));
  cfg.url = "";
  CHECK(!broker_configured(&cfg));
  CHECK_EQ_INT(broker_create(&b, &cfg, 1, NULL, NULL, err, sizeof err), GROVE_ECONFIG);
  cfg.url = "redis://h:99999";
  CHECK_EQ_INT(broker_create(&b, &cfg, 1, NULL, NULL, err, sizeof err), GROVE_ECONFIG);
  broker_destroy(NULL);
}

static void never(const char *channel, const char *msg, size_t len, void *arg) {
  (void)channel, (void)msg, (void)len, (void)arg;
}

TEST(down_is_reported_not_fatal) {
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  struct broker *b = make("redis://127.0.0.1:1", 1, m);
  CHECK(broker_subscribe(b, "t", never, NULL) == 0);
  CHECK_EQ_INT(broker_subscribe(b, "t", never, NULL), GROVE_EBUSY);
  CHECK_EQ_INT(broker_subscribe(b, "grove:control", never, NULL), GROVE_EINVAL);
  CHECK(broker_start(b) == 0);
  CHECK_EQ_INT(broker_subscribe(b, "u", never, NULL), GROVE_EBUSY);
  char err[200] = "";
  CHECK(!broker_ok(b, err, sizeof err));
  CHECK(err[0]);
  CHECK(!broker_control_live(b));
  CHECK_EQ_INT(broker_publish(b, "t", "x", 1), GROVE_EUNAVAIL); /* dropped, counted */
  CHECK_EQ_INT(broker_control_send(b, "k", "p", 1, NULL, 0), 0); /* kept for later */
  CHECK_EQ_INT(broker_control_send(b, "k", "p", 1, NULL, 50), GROVE_EUNAVAIL);
  CHECK_EQ_INT(broker_control_send(b, "bad\tkind", "p", 1, NULL, 0), GROVE_EINVAL);
  struct broker_lease l;
  CHECK_EQ_INT(broker_lease_acquire(b, "x", 1000, &l), GROVE_EUNAVAIL);
  CHECK_EQ_INT(broker_lease_acquire(b, "x", 0, &l), GROVE_EINVAL);
  /* the pool backs off: the next call fails at once, not after a connect */
  uint64_t t0 = ms_now();
  CHECK_EQ_INT(broker_lease_acquire(b, "x", 1000, &l), GROVE_EUNAVAIL);
  CHECK(ms_now() - t0 < 50);
  broker_destroy(b);
  metrics_destroy(m);
}

/* Control listeners past the fixed cap are refused, naming both, not
 * dropped. */
static void quiet(const char *kind, const char *payload, size_t len, void *arg) {
  (void)kind, (void)payload, (void)len, (void)arg;
}

TEST(control_listeners_past_the_cap_are_refused) {
  struct broker *b = make("redis://127.0.0.1:1", 0, NULL);
  char err[200] = "";
  static const char *names[] = {"l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7"};
  for (int i = 0; i < 8; i++)
    CHECK_EQ_INT(broker_control_listen(b, names[i], quiet, NULL, err, sizeof err), 0);
  CHECK_EQ_INT(broker_control_listen(b, "ninth", quiet, NULL, err, sizeof err), GROVE_ETOOBIG);
  CHECK(strstr(err, "'ninth'") && strstr(err, "'l7'") && strstr(err, "at most 8"));
  broker_destroy(b);
}

/* ---- leases ------------------------------------------------------------------------ */

TEST(redis_lease_has_one_holder_and_growing_tokens) {
  const char *url = getenv("GROVE_TEST_REDIS");
  if (!url)
    return;
  struct broker *b = make(url, 0, NULL);
  char name[64];
  unique(name, sizeof name, "lease");
  struct broker_lease a, c, d;
  CHECK(broker_lease_acquire(b, name, 60000, &a) == 0);
  CHECK(a.token >= 1);
  CHECK_EQ_INT(broker_lease_acquire(b, name, 60000, &c), GROVE_EBUSY); /* one holder */
  CHECK(broker_lease_renew(b, &a, 60000) == 0);
  CHECK(broker_lease_release(b, &a) == 0);
  CHECK_EQ_INT(broker_lease_release(b, &a), GROVE_EPERM); /* not twice */
  CHECK(broker_lease_acquire(b, name, 60000, &c) == 0);
  CHECK(c.token > a.token);
  /* the old holder can neither renew nor release the new holder's lease */
  CHECK_EQ_INT(broker_lease_renew(b, &a, 60000), GROVE_EPERM);
  CHECK_EQ_INT(broker_lease_release(b, &a), GROVE_EPERM);
  CHECK_EQ_INT(broker_lease_acquire(b, name, 60000, &d), GROVE_EBUSY);
  CHECK(broker_lease_release(b, &c) == 0);
  char bad[200];
  memset(bad, 'n', sizeof bad - 1);
  bad[sizeof bad - 1] = '\0';
  CHECK_EQ_INT(broker_lease_acquire(b, bad, 1000, &d), GROVE_EINVAL);
  broker_destroy(b);
}

struct expiry {
  struct broker *b;
  const char *name;
  struct broker_lease got;
};

static bool taken(void *arg) {
  struct expiry *e = arg;
  return broker_lease_acquire(e->b, e->name, 60000, &e->got) == 0;
}

TEST(redis_lease_expiry_lets_another_in_with_a_larger_token) {
  const char *url = getenv("GROVE_TEST_REDIS");
  if (!url)
    return;
  struct broker *b = make(url, 0, NULL);
  char name[64];
  unique(name, sizeof name, "lease");
  struct broker_lease stale;
  CHECK(broker_lease_acquire(b, name, 100, &stale) == 0);
  /* the holder stops renewing: once the TTL runs out, another takes it */
  struct expiry e = {b, name, {.token = 0}};
  CHECK(wait_for(taken, &e));
  CHECK(e.got.token > stale.token);
  /* the stale holder is refused, and its token is the smaller one, so a
   * store that checks tokens refuses its writes too */
  CHECK_EQ_INT(broker_lease_renew(b, &stale, 60000), GROVE_EPERM);
  CHECK_EQ_INT(broker_lease_release(b, &stale), GROVE_EPERM);
  CHECK(broker_lease_renew(b, &e.got, 60000) == 0);
  CHECK(broker_lease_release(b, &e.got) == 0);
  broker_destroy(b);
}

/* ---- pub/sub and control messages --------------------------------------------------- */

struct inbox {
  pthread_mutex_t lock;
  char last[256];
  char kind[64];
  int n, resyncs;
};

static void on_msg(const char *channel, const char *msg, size_t len, void *arg) {
  struct inbox *in = arg;
  (void)channel;
  pthread_mutex_lock(&in->lock);
  snprintf(in->last, sizeof in->last, "%.*s", (int)len, msg);
  in->n++;
  pthread_mutex_unlock(&in->lock);
}

static void on_control(const char *kind, const char *payload, size_t len, void *arg) {
  struct inbox *in = arg;
  pthread_mutex_lock(&in->lock);
  if (strcmp(kind, BROKER_RESYNC) == 0) {
    in->resyncs++;
  } else if (strncmp(kind, "test.", 5) == 0) {
    snprintf(in->kind, sizeof in->kind, "%s", kind);
    snprintf(in->last, sizeof in->last, "%.*s", (int)len, payload);
    in->n++;
  }
  pthread_mutex_unlock(&in->lock);
}

static int count_of(struct inbox *in) {
  pthread_mutex_lock(&in->lock);
  int n = in->n;
  pthread_mutex_unlock(&in->lock);
  return n;
}

static bool got_one(void *arg) { return count_of(arg) >= 1; }

static bool resynced(void *arg) {
  struct inbox *in = arg;
  pthread_mutex_lock(&in->lock);
  int n = in->resyncs;
  pthread_mutex_unlock(&in->lock);
  return n >= 1;
}

#define INBOX {PTHREAD_MUTEX_INITIALIZER, "", "", 0, 0}

TEST(redis_pubsub_reaches_other_instances_only) {
  const char *url = getenv("GROVE_TEST_REDIS");
  if (!url)
    return;
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  char chan[64];
  unique(chan, sizeof chan, "test:chan");
  struct inbox ia = INBOX, ib = INBOX;
  struct broker *a = make(url, 0, NULL), *b = make(url, 0, m);
  CHECK(broker_subscribe(a, chan, on_msg, &ia) == 0);
  CHECK(broker_subscribe(b, chan, on_msg, &ib) == 0);
  CHECK(broker_start(a) == 0 && broker_start(b) == 0);
  CHECK(wait_for(is_ok, a) && wait_for(is_ok, b));
  CHECK(strcmp(broker_instance(a), broker_instance(b)) != 0);
  CHECK(broker_publish(a, chan, "hello\tworld", 11) == 0);
  CHECK(wait_for(got_one, &ib));
  CHECK_EQ_STR(ib.last, "hello\tworld");
  /* a's own message came back to a's subscription and was left out: b's
   * answer, published after, arrives at a, and a has seen only that */
  CHECK(broker_publish(b, chan, "back", 4) == 0);
  CHECK(wait_for(got_one, &ia));
  CHECK_EQ_INT(count_of(&ia), 1);
  CHECK_EQ_STR(ia.last, "back");
  CHECK_EQ_INT(count_of(&ib), 1);
  CHECK(metric_of(m, "grove_broker_received_total") == 1);
  CHECK(metric_of(m, "grove_broker_up") == 1);
  broker_destroy(a);
  broker_destroy(b);
  metrics_destroy(m);
}

TEST(redis_control_messages_carry_kind_payload_and_deletions) {
  const char *url = getenv("GROVE_TEST_REDIS");
  if (!url)
    return;
  struct inbox ia = INBOX, ib = INBOX;
  struct broker *a = make(url, 0, NULL), *b = make(url, 0, NULL);
  CHECK(broker_control_listen(a, "test", on_control, &ia, NULL, 0) == 0);
  CHECK(broker_control_listen(b, "test", on_control, &ib, NULL, 0) == 0);
  /* sent before anything is connected: kept, and sent once it is */
  CHECK(broker_control_send(a, "test.early", "e", 1, NULL, 0) == 0);
  CHECK(broker_start(a) == 0 && broker_start(b) == 0);
  CHECK(wait_for(resynced, &ia) && wait_for(resynced, &ib)); /* subscribed */
  CHECK(wait_for(is_ok, a) && wait_for(is_ok, b));
  /* a value kept for the cache tier, and its version */
  char key[64];
  unique(key, sizeof key, "grove:test:val");
  redisContext *c = raw(url);
  freeReplyObject(redisCommand(c, "SET %s old", key));
  CHECK(broker_control_send(a, "test.cache", "name\tkey", 8, key, 5000) == 0);
  /* the deletion was done before the send returned */
  CHECK_EQ_INT(raw_int(c, "EXISTS %s", key), 0);
  char vkey[80];
  snprintf(vkey, sizeof vkey, "%s:v", key);
  redisReply *r = redisCommand(c, "GET %s", vkey);
  CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "1") == 0);
  freeReplyObject(r);
  CHECK(wait_for(got_one, &ib));
  /* test.early may have reached b before b subscribed; test.cache is the last */
  uint64_t end = ms_now() + WAIT_MS;
  for (;;) {
    pthread_mutex_lock(&ib.lock);
    bool seen = strcmp(ib.kind, "test.cache") == 0;
    pthread_mutex_unlock(&ib.lock);
    if (seen || ms_now() > end)
      break;
    pause_ms(5);
  }
  CHECK_EQ_STR(ib.kind, "test.cache");
  CHECK_EQ_STR(ib.last, "name\tkey");
  CHECK_EQ_INT(count_of(&ia), 0); /* never its own */
  CHECK(broker_control_live(a));
  redisFree(c);
  broker_destroy(a);
  broker_destroy(b);
}

/* ---- scripts and values on a loop ---------------------------------------------------- */

struct answer {
  bool done;
  int rc;
  long long integer;
  char val[64];
  char version[32];
};

static void on_reply(int rc, const redisReply *r, void *arg) {
  struct answer *a = arg;
  a->done = true;
  a->rc = rc;
  if (!rc && r->type == REDIS_REPLY_INTEGER)
    a->integer = r->integer;
}

static void on_value(int rc, const char *val, size_t len, const char *version, void *arg) {
  struct answer *a = arg;
  a->done = true;
  a->rc = rc;
  snprintf(a->val, sizeof a->val, "%.*s", val ? (int)len : 0, val ? val : "");
  snprintf(a->version, sizeof a->version, "%s", version);
}

static bool answered(void *arg) { return ((struct answer *)arg)->done; }

struct loop_broker {
  uv_loop_t *loop;
  struct broker *b;
};

static bool loop_up(void *arg) { return broker_loops_up(arg); }
static bool loop_down(void *arg) { return !broker_loops_up(arg); }

static struct broker_script add_script = BROKER_SCRIPT("return tonumber(ARGV[1]) + tonumber(ARGV[2])");

static long long add_on_loop(uv_loop_t *loop, struct broker *b, const char *x, const char *y) {
  struct answer a = {0};
  const char *args[] = {x, y};
  CHECK(broker_eval(b, loop, &add_script, 0, NULL, 2, args, on_reply, &a) == 0);
  CHECK(spin_for(loop, answered, &a));
  CHECK_EQ_INT(a.rc, 0);
  return a.integer;
}

static void close_loop(uv_loop_t *loop, struct broker *b) {
  broker_loop_stop(b, 0);
  uv_run(loop, UV_RUN_DEFAULT); /* the closed handles' callbacks */
  CHECK(uv_loop_close(loop) == 0);
}

TEST(redis_scripts_survive_script_flush) {
  const char *url = getenv("GROVE_TEST_REDIS");
  if (!url)
    return;
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  struct broker *b = make(url, 1, m);
  redisContext *c = raw(url);
  freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
  CHECK(broker_script_load(b, &add_script) == 0);
  CHECK(broker_script_load(b, &add_script) == 0); /* once is enough */
  uv_loop_t loop;
  CHECK(uv_loop_init(&loop) == 0);
  broker_loop_start(b, &loop, 0);
  CHECK(spin_for(&loop, loop_up, b));
  /* loaded by the time the connection counts as up */
  redisReply *e = redisCommand(c, "SCRIPT EXISTS %s", add_script.sha);
  CHECK(e && e->type == REDIS_REPLY_ARRAY && e->elements == 1 && e->element[0]->integer == 1);
  freeReplyObject(e);
  for (int round = 0; round < 2; round++) {
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    CHECK_EQ_INT(add_on_loop(&loop, b, "40", "2"), 42); /* NOSCRIPT, then EVAL */
    CHECK_EQ_INT(add_on_loop(&loop, b, "1", "2"), 3);   /* EVALSHA finds it */
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    redisReply *r = NULL;
    const char *args[] = {"5", "6"};
    CHECK(broker_eval_sync(b, &add_script, 0, NULL, 2, args, &r) == 0);
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == 11);
    freeReplyObject(r);
  }
  /* an error from Redis is the caller's, and counted */
  static struct broker_script bad = BROKER_SCRIPT("return redis.call('NOSUCHCOMMAND')");
  struct answer a = {0};
  CHECK(broker_eval(b, &loop, &bad, 0, NULL, 0, NULL, on_reply, &a) == 0);
  CHECK(spin_for(&loop, answered, &a));
  CHECK_EQ_INT(a.rc, GROVE_EIO);
  redisReply *r = NULL;
  CHECK_EQ_INT(broker_eval_sync(b, &bad, 0, NULL, 0, NULL, &r), GROVE_EIO);
  CHECK(r && r->type == REDIS_REPLY_ERROR);
  freeReplyObject(r);
  CHECK(metric_of(m, "grove_broker_command_errors_total") == 2);
  /* a loop the broker was not given has no connection */
  uv_loop_t other;
  CHECK(uv_loop_init(&other) == 0);
  CHECK_EQ_INT(broker_eval(b, &other, &add_script, 0, NULL, 0, NULL, NULL, NULL), GROVE_EUNAVAIL);
  uv_loop_close(&other);
  redisFree(c);
  close_loop(&loop, b);
  broker_destroy(b);
  metrics_destroy(m);
}

/* A loop held up past the deadline while Redis answers: the answer waits
 * in the socket, and it is the answer the caller gets (libuv runs the
 * deadline's timer before it reads; an unread answer is not a hung Redis,
 * and a rate limit decided locally instead would admit twice). */
static struct broker_script mark_script =
    BROKER_SCRIPT("redis.call('SET', KEYS[1], ARGV[1]) return 7");

struct stall {
  redisContext *c;
  const char *key;
  bool done;
};

static bool key_set(void *arg) {
  struct stall *st = arg;
  return raw_int(st->c, "EXISTS %s", st->key) == 1;
}

/* Runs once, right after the poll phase that sent the script: the loop
 * stops until Redis ran it, then past the deadline and a tick. */
static void stall_loop(uv_check_t *h) {
  struct stall *st = h->data;
  CHECK(wait_for(key_set, st));
  pause_ms(BROKER_LOOP_DEADLINE_MS + 300);
  st->done = true;
  uv_check_stop(h);
}

TEST(redis_answer_read_late_is_not_a_timeout) {
  const char *url = getenv("GROVE_TEST_REDIS");
  if (!url)
    return;
  struct broker *b = make(url, 1, NULL);
  CHECK(broker_script_load(b, &mark_script) == 0); /* no NOSCRIPT round first */
  uv_loop_t loop;
  CHECK(uv_loop_init(&loop) == 0);
  broker_loop_start(b, &loop, 0);
  CHECK(spin_for(&loop, loop_up, b));
  char key[64];
  unique(key, sizeof key, "grove:test:late");
  struct stall st = {raw(url), key, false};
  uv_check_t check;
  CHECK(uv_check_init(&loop, &check) == 0);
  check.data = &st;
  struct answer a = {0};
  const char *keys[] = {key}, *args[] = {"1"};
  CHECK(broker_eval(b, &loop, &mark_script, 1, keys, 1, args, on_reply, &a) == 0);
  CHECK(uv_check_start(&check, stall_loop) == 0);
  CHECK(spin_for(&loop, answered, &a));
  CHECK(st.done);
  CHECK_EQ_INT(a.rc, 0);
  CHECK_EQ_INT(a.integer, 7);
  CHECK(broker_loops_up(b));
  raw_int(st.c, "DEL %s", key);
  redisFree(st.c);
  uv_close((uv_handle_t *)&check, NULL);
  close_loop(&loop, b);
  broker_destroy(b);
}

TEST(redis_values_keep_no_stale_fill) {
  const char *url = getenv("GROVE_TEST_REDIS");
  if (!url)
    return;
  struct broker *b = make(url, 1, NULL);
  CHECK(broker_start(b) == 0);
  uv_loop_t loop;
  CHECK(uv_loop_init(&loop) == 0);
  broker_loop_start(b, &loop, 0);
  CHECK(spin_for(&loop, loop_up, b));
  char key[64];
  unique(key, sizeof key, "grove:test:val");
  struct answer a = {0};
  CHECK(broker_get(b, &loop, key, on_value, &a) == 0);
  CHECK(spin_for(&loop, answered, &a));
  CHECK_EQ_INT(a.rc, GROVE_ENOENT);
  CHECK_EQ_STR(a.version, "");
  /* a reader loads the value elsewhere, meanwhile a write deletes it */
  CHECK(wait_for(is_ok, b));
  CHECK(broker_control_send(b, "test.write", "", 0, key, 5000) == 0);
  CHECK(broker_set(b, &loop, key, "stale", 5, 60000, a.version) == 0);
  memset(&a, 0, sizeof a);
  CHECK(broker_get(b, &loop, key, on_value, &a) == 0);
  CHECK(spin_for(&loop, answered, &a));
  CHECK_EQ_INT(a.rc, GROVE_ENOENT); /* the stale fill did not land */
  CHECK_EQ_STR(a.version, "1");
  CHECK(broker_set(b, &loop, key, "fresh", 5, 60000, a.version) == 0);
  memset(&a, 0, sizeof a);
  CHECK(broker_get(b, &loop, key, on_value, &a) == 0);
  CHECK(spin_for(&loop, answered, &a));
  CHECK_EQ_INT(a.rc, 0);
  CHECK_EQ_STR(a.val, "fresh");
  redisContext *c = raw(url);
  redisReply *r = redisCommand(c, "PTTL %s", key);
  CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer > 0 && r->integer <= 60000);
  freeReplyObject(r);
  redisFree(c);
  close_loop(&loop, b);
  broker_destroy(b);
}

/* ---- streams --------------------------------------------------------------------------- */

struct got {
  int n;
  char ids[8][BROKER_ID_MAX];
  char data[8][32];
};

static void on_entry(const char *id, const char *data, size_t len, void *arg) {
  struct got *g = arg;
  if (g->n < 8) {
    snprintf(g->ids[g->n], BROKER_ID_MAX, "%s", id);
    snprintf(g->data[g->n], sizeof g->data[0], "%.*s", (int)len, data);
  }
  g->n++;
}

struct claim {
  struct broker *b;
  const char *stream;
  struct got got;
};

static bool claimed_two(void *arg) {
  struct claim *c = arg;
  memset(&c->got, 0, sizeof c->got);
  return broker_stream_claim(c->b, c->stream, "workers", "c2", 50, 10, on_entry, &c->got) == 2;
}

struct late_add {
  struct broker *b;
  const char *stream;
};

static void *add_later(void *arg) {
  struct late_add *l = arg;
  CHECK(broker_stream_add(l->b, l->stream, "late", 4, 0, NULL) == 0);
  return NULL;
}

TEST(redis_streams_deliver_once_per_group_and_claim_the_abandoned) {
  const char *url = getenv("GROVE_TEST_REDIS");
  if (!url)
    return;
  struct broker *b = make(url, 0, NULL);
  char stream[64];
  unique(stream, sizeof stream, "jobs");
  CHECK(broker_stream_group(b, stream, "workers") == 0);
  CHECK(broker_stream_group(b, stream, "workers") == 0); /* made before: fine */
  char ids[3][BROKER_ID_MAX];
  const char *payloads[] = {"one", "two", "three"};
  for (int i = 0; i < 3; i++)
    CHECK(broker_stream_add(b, stream, payloads[i], strlen(payloads[i]), 1000, ids[i]) == 0);
  CHECK(strcmp(ids[0], ids[1]) != 0);
  /* each entry goes to one consumer of the group */
  struct got c1 = {0}, c2 = {0};
  CHECK_EQ_INT(broker_stream_read(b, stream, "workers", "c1", 2, 0, on_entry, &c1), 2);
  CHECK_EQ_INT(broker_stream_read(b, stream, "workers", "c2", 10, 0, on_entry, &c2), 1);
  CHECK_EQ_STR(c1.data[0], "one");
  CHECK_EQ_STR(c1.data[1], "two");
  CHECK_EQ_STR(c1.ids[0], ids[0]);
  CHECK_EQ_STR(c2.data[0], "three");
  CHECK_EQ_INT(broker_stream_read(b, stream, "workers", "c2", 10, 0, on_entry, &c2), 0);
  CHECK(broker_stream_ack(b, stream, "workers", c2.ids[0]) == 0);
  CHECK_EQ_INT(broker_stream_ack(b, stream, "workers", c2.ids[0]), GROVE_ENOENT);
  /* c1 stops without acknowledging: its entries are claimed once they
   * have been pending long enough, not before */
  struct got none = {0};
  CHECK_EQ_INT(broker_stream_claim(b, stream, "workers", "c2", 3600000, 10, on_entry, &none), 0);
  struct claim cl = {b, stream, {0}};
  CHECK(wait_for(claimed_two, &cl));
  CHECK_EQ_STR(cl.got.data[0], "one");
  CHECK(broker_stream_ack(b, stream, "workers", cl.got.ids[0]) == 0);
  CHECK(broker_stream_ack(b, stream, "workers", cl.got.ids[1]) == 0);
  /* a blocking read gets an entry added while (or before) it waits */
  struct late_add la = {b, stream};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, add_later, &la) == 0);
  struct got c3 = {0};
  CHECK_EQ_INT(broker_stream_read(b, stream, "workers", "c3", 1, 10000, on_entry, &c3), 1);
  pthread_join(t, NULL);
  CHECK_EQ_STR(c3.data[0], "late");
  CHECK_EQ_INT(broker_stream_read(b, stream, "nobody", "c1", 1, 0, on_entry, &c3), GROVE_ENOENT);
  CHECK_EQ_INT(broker_stream_read(b, stream, "workers", "c1", 0, 0, on_entry, &c3), GROVE_EINVAL);
  broker_destroy(b);
}

/* ---- reconnecting --------------------------------------------------------------------- */

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
  socklen_t n = sizeof a;
  CHECK(getsockname(s, (struct sockaddr *)&a, &n) == 0);
  close(s);
  return ntohs(a.sin_port);
}

static bool answers_ping(void *arg) {
  redisContext *c = redisConnect("127.0.0.1", *(int *)arg);
  bool ok = false;
  if (c && !c->err) {
    redisReply *r = redisCommand(c, "PING");
    ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
  }
  redisFree(c);
  return ok;
}

static pid_t redis_start(int port, const char *dir) {
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    /* dies with the test, whatever ends it; says nothing */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", dir, "--loglevel", "warning", (char *)NULL);
    _exit(127);
  }
  CHECK(wait_for(answers_ping, &port));
  return pid;
}

static void redis_kill(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

struct both {
  uv_loop_t *loop;
  struct broker *b;
  bool want;
};

static bool state_is(void *arg) {
  struct both *x = arg;
  return broker_ok(x->b, NULL, 0) == x->want;
}

TEST(redis_everything_reconnects_after_a_restart) {
  if (!getenv("GROVE_TEST_REDIS"))
    return; /* needs redis-server, as the run with a server has */
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/grove-redis-XXXXXX");
  CHECK(mkdtemp(dir));
  int port = free_port();
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  pid_t pid = redis_start(port, dir);
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  struct inbox ib = INBOX;
  char chan[64];
  unique(chan, sizeof chan, "test:chan");
  struct broker *a = make(url, 0, NULL), *b = make(url, 1, m);
  CHECK(broker_subscribe(b, chan, on_msg, &ib) == 0);
  CHECK(broker_control_listen(b, "test", on_control, &ib, NULL, 0) == 0);
  CHECK(broker_start(a) == 0 && broker_start(b) == 0);
  uv_loop_t loop;
  CHECK(uv_loop_init(&loop) == 0);
  broker_loop_start(b, &loop, 0);
  struct both up = {&loop, b, true}, down = {&loop, b, false};
  CHECK(spin_for(&loop, state_is, &up));
  CHECK(wait_for(is_ok, a));
  struct broker_lease l;
  CHECK_EQ_INT(broker_lease_acquire(b, "r", 60000, &l), 0); /* the pool is connected too */

  for (int round = 0; round < 2; round++) {
    redis_kill(pid);
    CHECK(spin_for(&loop, state_is, &down));
    CHECK(wait_for(is_down, a));
    char err[200];
    CHECK(!broker_ok(b, err, sizeof err) && err[0]);
    CHECK(spin_for(&loop, loop_down, b));
    CHECK_EQ_INT(broker_eval(b, &loop, &add_script, 0, NULL, 0, NULL, NULL, NULL), GROVE_EUNAVAIL);
    pid = redis_start(port, dir);
    CHECK(spin_for(&loop, state_is, &up));
    CHECK(wait_for(is_ok, a));
    /* every kind of connection works again */
    CHECK_EQ_INT(add_on_loop(&loop, b, "2", "2"), 4);
    struct expiry e = {b, "r2", {.token = 0}};
    CHECK(wait_for(taken, &e)); /* the pool may still be backing off */
    CHECK(broker_lease_release(b, &e.got) == 0);
    /* publishes are at most once: one sent on a connection that died
     * unnoticed is lost, so this publishes until one arrives */
    int before = count_of(&ib);
    uint64_t end = ms_now() + WAIT_MS;
    while (count_of(&ib) == before && ms_now() < end) {
      broker_publish(a, chan, "again", 5);
      pause_ms(20);
    }
    CHECK_EQ_STR(ib.last, "again");
  }
  pthread_mutex_lock(&ib.lock);
  CHECK(ib.resyncs >= 3); /* the first subscription and one per restart */
  pthread_mutex_unlock(&ib.lock);
  CHECK(metric_of(m, "grove_broker_reconnects_total") >= 6); /* 3 links, twice */
  CHECK(metric_of(m, "grove_broker_up") == 1);
  close_loop(&loop, b);
  broker_destroy(a);
  broker_destroy(b);
  metrics_destroy(m);
  redis_kill(pid);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

static const struct test tests[] = {
    T(bad_url_is_refused),
    T(down_is_reported_not_fatal),
    T(control_listeners_past_the_cap_are_refused),
    T(redis_lease_has_one_holder_and_growing_tokens),
    T(redis_lease_expiry_lets_another_in_with_a_larger_token),
    T(redis_pubsub_reaches_other_instances_only),
    T(redis_control_messages_carry_kind_payload_and_deletions),
    T(redis_scripts_survive_script_flush),
    T(redis_answer_read_late_is_not_a_timeout),
    T(redis_values_keep_no_stale_fill),
    T(redis_streams_deliver_once_per_group_and_claim_the_abandoned),
    T(redis_everything_reconnects_after_a_restart),
};

TEST_MAIN(tests)
