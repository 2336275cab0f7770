/* test_engine.c — the partitioned stream engine: keys spread over
 * partitions, watermarks bounded by an injected wall clock, the tick that
 * closes quiet windows, and handoffs in staging order. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../test.h"
#include "core/error.h"
#include "stream/stream.h"

#define S 1000000000LL

static _Atomic uint64_t now_ms; /* both clocks */
static uint64_t fake_clock(void *arg) {
  (void)arg;
  return atomic_load(&now_ms);
}

static struct {
  char key[32];
  int64_t end;
  double mean;
  unsigned part;
} closed[256];
static int nclosed, nticks;

static void on_emit(const struct window_result *r, unsigned part, void *arg) {
  (void)arg;
  CHECK(nclosed < 256);
  snprintf(closed[nclosed].key, sizeof closed[nclosed].key, "%s", r->key);
  closed[nclosed].end = r->end_ns;
  closed[nclosed].mean = r->mean;
  closed[nclosed].part = part;
  nclosed++;
}

static void on_tick(struct stream_engine *e, unsigned part, uint64_t now, void *arg) {
  (void)now;
  (void)arg;
  nticks++;
  stream_engine_unlock(e, part);
}

static struct stream_engine *engine(unsigned parts, int64_t ahead_ns) {
  struct stream_engine_cfg c = {
      .window = {10 * S, 10 * S, 1 * S, true, ahead_ns},
      .partitions = parts, .idle_ms = 1000,
      .mono_ms = fake_clock, .wall_ms = fake_clock,
      .emit = on_emit, .tick = on_tick,
  };
  struct stream_engine *e;
  CHECK(stream_engine_create(&e, &c) == 0);
  nclosed = nticks = 0;
  return e;
}

static int add(struct stream_engine *e, const char *key, int64_t ts, double v) {
  unsigned p = stream_engine_partition(e, key);
  stream_engine_lock(e, p);
  int rc = stream_engine_add(e, p, key, ts, v, stream_engine_mono_ms(e), stream_engine_wall_ns(e));
  stream_engine_unlock(e, p);
  return rc;
}

TEST(engine_refuses_bad_partitions) {
  struct stream_engine_cfg c = {.window = {S, S, 0, true, 0}, .partitions = 0, .idle_ms = 1};
  struct stream_engine *e;
  CHECK(stream_engine_create(&e, &c) == GROVE_EINVAL);
  c.partitions = STREAM_MAX_PARTITIONS + 1;
  CHECK(stream_engine_create(&e, &c) == GROVE_EINVAL);
  c.partitions = 2;
  c.idle_ms = 0;
  CHECK(stream_engine_create(&e, &c) == GROVE_EINVAL);
  c.idle_ms = 1;
  c.window.slide_ns = 2 * S; /* the windows' own rules */
  CHECK(stream_engine_create(&e, &c) == GROVE_EINVAL);
  stream_engine_destroy(NULL);
}

TEST(engine_emits_on_the_keys_partition) {
  atomic_store(&now_ms, 1800000000000ULL);
  struct stream_engine *e = engine(4, 0);
  const char *keys[] = {"a", "b", "c", "d", "e", "f"};
  for (int i = 0; i < 6; i++)
    CHECK(add(e, keys[i], 1800000000 * S + i, i) == STREAM_ADDED);
  CHECK_EQ_INT(nclosed, 0);
  stream_engine_tick(e); /* not idle yet: nothing closes */
  CHECK_EQ_INT(nclosed, 0);
  CHECK_EQ_INT(nticks, 4);
  atomic_fetch_add(&now_ms, 12000); /* 12 s of silence */
  stream_engine_tick(e);
  CHECK_EQ_INT(nclosed, 6);
  for (int i = 0; i < nclosed; i++)
    CHECK_EQ_INT(closed[i].part, stream_engine_partition(e, closed[i].key));
  struct stream_engine_stats st;
  stream_engine_stats(e, &st);
  CHECK_EQ_INT(st.windows, 6);
  CHECK_EQ_INT(st.keys, 0); /* closed keys left */
  stream_engine_destroy(e);
}

TEST(engine_bounds_event_time_by_the_wall_clock) {
  int64_t now = 1800000000 * S;
  atomic_store(&now_ms, (uint64_t)(now / 1000000));
  struct stream_engine *e = engine(1, 60 * S);
  CHECK(add(e, "honest", now, 1) == STREAM_ADDED);
  CHECK(add(e, "clockbug", now + 24 * 3600 * S, 1) == STREAM_AHEAD);
  CHECK(add(e, "fast", now + 30 * S, 1) == STREAM_ADDED); /* inside the bound */
  /* neither moved the watermark past the wall clock: honest is not late */
  CHECK(add(e, "honest", now + S / 2, 2) == STREAM_ADDED);
  CHECK(add(e, "ext", INT64_MAX - 1, 1) == STREAM_AHEAD);
  CHECK(add(e, "ext", INT64_MIN + 2, 1) == STREAM_LATE);
  struct stream_engine_stats st;
  stream_engine_stats(e, &st);
  CHECK_EQ_INT(st.ahead, 2);
  CHECK_EQ_INT(st.late, 1);
  /* the idle step never takes the watermark past the wall clock: only
   * honest's window (ending at a multiple of 10 s after now) closes */
  atomic_fetch_add(&now_ms, 12000);
  stream_engine_tick(e);
  CHECK_EQ_INT(nclosed, 1);
  CHECK_EQ_STR(closed[0].key, "honest");
  CHECK(closed[0].mean == 1.5);
  stream_engine_destroy(e);
}

/* Handoffs of one partition leave in the order they were staged. */
static struct stream_engine *shared;
static _Atomic int order[2000], norder;
static void record(void *ctx) { order[atomic_fetch_add(&norder, 1)] = (int)(intptr_t)ctx; }

static void *stager(void *arg) {
  (void)arg;
  static _Atomic int seq;
  for (int i = 0; i < 1000; i++) {
    stream_engine_lock(shared, 0);
    int mine = atomic_fetch_add(&seq, 1);
    stream_engine_handoff(shared, 0, record, (void *)(intptr_t)mine);
  }
  return NULL;
}

TEST(engine_handoffs_keep_staging_order) {
  shared = engine(1, 0);
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, stager, NULL);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  CHECK_EQ_INT(atomic_load(&norder), 2000);
  for (int i = 0; i < 2000; i++)
    CHECK_EQ_INT(order[i], i);
  stream_engine_destroy(shared);
}

/* With a ticker thread, quiet windows close by themselves. */
TEST(engine_ticker_closes_quiet_windows) {
  struct stream_engine_cfg c = {
      .window = {S / 10, S / 10, 0, true, 0}, .partitions = 2, .tick_ms = 5, .idle_ms = 20,
      .emit = on_emit,
  };
  struct stream_engine *e;
  CHECK(stream_engine_create(&e, &c) == 0);
  nclosed = 0;
  unsigned p = stream_engine_partition(e, "k");
  stream_engine_lock(e, p);
  CHECK(stream_engine_add(e, p, "k", stream_engine_wall_ns(e), 3, stream_engine_mono_ms(e),
                          stream_engine_wall_ns(e)) == STREAM_ADDED);
  stream_engine_unlock(e, p);
  for (;;) {
    stream_engine_lock(e, p);
    int n = nclosed;
    stream_engine_unlock(e, p);
    if (n)
      break;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  CHECK_EQ_STR(closed[0].key, "k");
  stream_engine_destroy(e);
}

static const struct test tests[] = {
    T(engine_refuses_bad_partitions), T(engine_emits_on_the_keys_partition),
    T(engine_bounds_event_time_by_the_wall_clock), T(engine_handoffs_keep_staging_order),
    T(engine_ticker_closes_quiet_windows),
};
TEST_MAIN(tests)
