/* test_stream.c — windows against a brute-force reference on random
 * streams with out-of-order, late and duplicate points. */
#include <math.h>
#include <stdbool.h>

#include "../test.h"
#include "core/error.h"
#include "core/map.h"
#include "stream/stream.h"

#define S 1000000000LL /* one second in ns */

struct got {
  int n;
  struct window_result r[20000];
  char keys[20000][16];
};

static void collect(const struct window_result *r, void *arg) {
  struct got *g = arg;
  CHECK(g->n < 20000);
  g->r[g->n] = *r;
  snprintf(g->keys[g->n], sizeof g->keys[0], "%s", r->key);
  g->r[g->n].key = g->keys[g->n];
  g->n++;
}

TEST(tumbling_windows_basic) {
  static struct got g;
  g.n = 0;
  struct stream *s;
  struct stream_cfg cfg = {60 * S, 60 * S, 30 * S, false, 0};
  CHECK(stream_create(&s, &cfg, collect, &g) == 0);
  CHECK_EQ_INT(stream_add(s, "a", 10 * S, 1), 0);
  CHECK_EQ_INT(stream_add(s, "a", 50 * S, 3), 0); /* watermark 20 s */
  CHECK_EQ_INT(stream_add(s, "a", 30 * S, 2), 0); /* out of order, in time */
  CHECK_EQ_INT(stream_add(s, "b", 20 * S, 10), 0);
  CHECK_EQ_INT(stream_add(s, "b", 19 * S, 10), 1); /* behind the watermark: late */
  CHECK_EQ_INT(g.n, 0);
  stream_add(s, "a", 95 * S, 7);  /* watermark 65 s: [0, 60) closes */
  CHECK_EQ_INT(g.n, 2);
  for (int i = 0; i < 2; i++) {
    struct window_result *r = &g.r[i];
    if (strcmp(r->key, "a") == 0) {
      CHECK(r->start_ns == 0 && r->end_ns == 60 * S && r->count == 3);
      CHECK(r->sum == 6 && r->min == 1 && r->max == 3 && r->mean == 2);
      CHECK(r->last == 3 && r->last_ns == 50 * S); /* latest event time, not arrival */
    } else {
      CHECK(r->count == 1 && r->last == 10);
    }
  }
  CHECK_EQ_INT(stream_add(s, "a", 59 * S, 100), 1); /* its window is final */
  CHECK_EQ_INT(stream_late(s), 2);
  stream_flush(s);
  CHECK_EQ_INT(g.n, 3);
  CHECK(g.r[2].start_ns == 60 * S && g.r[2].count == 1 && g.r[2].sum == 7);
  stream_destroy(s);
}

TEST(sliding_windows_and_idle_keys) {
  static struct got g;
  g.n = 0;
  struct stream *s;
  struct stream_cfg cfg = {10 * S, 5 * S, 0, false, 0};
  CHECK(stream_create(&s, &cfg, collect, &g) == 0);
  stream_add(s, "k", 7 * S, 1);  /* in [0,10) and [5,15) */
  stream_add(s, "k", 12 * S, 2); /* in [5,15) and [10,20) */
  stream_advance(s, 100 * S);
  CHECK_EQ_INT(g.n, 3);
  CHECK(g.r[0].start_ns == 0 && g.r[0].count == 1);
  CHECK(g.r[1].start_ns == 5 * S && g.r[1].count == 2 && g.r[1].sum == 3);
  CHECK(g.r[2].start_ns == 10 * S && g.r[2].count == 1 && g.r[2].sum == 2);
  CHECK_EQ_INT(stream_keys(s), 0); /* idle for a window: dropped */
  CHECK(stream_key_bytes(s) < 1024);
  stream_destroy(s);
  /* the 10-minute AQI window sliding each minute, a minute of lateness:
   * a key (with its map slot and name) stays under a kilobyte */
  struct stream_cfg aqi = {600 * S, 60 * S, 60 * S, false, 0};
  CHECK(stream_create(&s, &aqi, collect, &g) == 0);
  CHECK(stream_key_bytes(s) + sizeof(struct map_slot) + 32 <= 1024);
  stream_destroy(s);
  struct stream_cfg bad = {10 * S, 20 * S, 0, false, 0};
  CHECK(stream_create(&s, &bad, collect, &g) != 0);
}

/* ---- the reference: every window from the accepted points, by brute force */

struct pt {
  int key;
  int64_t ts;
  double v;
  int seq;
};

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void check_against_reference(int64_t window, int64_t slide, int64_t lateness, bool sum_only) {
  enum { N = 3000, KEYS = 5 };
  static struct pt pts[N];
  static bool accepted[N];
  static struct got g;
  g.n = 0;
  /* a drifting clock with jitter, late stragglers and duplicates */
  int64_t clock = 1000 * S;
  for (int i = 0; i < N; i++) {
    clock += (int64_t)(next_rand() % (2 * S));
    int64_t jitter = (int64_t)(next_rand() % (uint64_t)(lateness + 3 * S));
    pts[i] = (struct pt){(int)(next_rand() % KEYS), clock - jitter,
                         (double)(next_rand() % 1000) / 10.0, i};
    if (i && next_rand() % 20 == 0) /* a duplicate of the previous point */
      pts[i] = pts[i - 1], pts[i].seq = i;
  }
  struct stream *s;
  struct stream_cfg cfg = {window, slide, lateness, sum_only, 0};
  CHECK(stream_create(&s, &cfg, collect, &g) == 0);
  int64_t max_ts = INT64_MIN, late = 0;
  for (int i = 0; i < N; i++) {
    int64_t wm = max_ts == INT64_MIN ? INT64_MIN : max_ts - lateness;
    accepted[i] = !(max_ts != INT64_MIN && pts[i].ts < wm);
    late += !accepted[i];
    if (accepted[i] && pts[i].ts > max_ts)
      max_ts = pts[i].ts;
    char key[8];
    snprintf(key, sizeof key, "k%d", pts[i].key);
    CHECK_EQ_INT(stream_add(s, key, pts[i].ts, pts[i].v), accepted[i] ? 0 : 1);
  }
  stream_flush(s);
  CHECK_EQ_INT(stream_late(s), late);
  CHECK(late > 0); /* the stream did exercise lateness */
  /* every emitted window equals the brute-force aggregate, and every
   * non-empty window was emitted exactly once */
  int expected = 0;
  for (int key = 0; key < KEYS; key++) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int i = 0; i < N; i++)
      if (accepted[i] && pts[i].key == key) {
        lo = pts[i].ts < lo ? pts[i].ts : lo;
        hi = pts[i].ts > hi ? pts[i].ts : hi;
      }
    if (lo == INT64_MAX)
      continue;
    int64_t start = ((lo - window) / slide) * slide;
    for (int64_t a = start; a <= hi; a += slide) {
      uint64_t count = 0;
      double sum = 0, mn = INFINITY, mx = -INFINITY, last = 0;
      int64_t last_ts = INT64_MIN;
      for (int i = 0; i < N; i++) {
        if (!accepted[i] || pts[i].key != key || pts[i].ts < a || pts[i].ts >= a + window)
          continue;
        count++;
        sum += pts[i].v;
        mn = fmin(mn, pts[i].v);
        mx = fmax(mx, pts[i].v);
        if (pts[i].ts >= last_ts) { /* ties: the later arrival */
          last_ts = pts[i].ts;
          last = pts[i].v;
        }
      }
      if (!count)
        continue;
      expected++;
      char name[8];
      snprintf(name, sizeof name, "k%d", key);
      int found = 0;
      for (int j = 0; j < g.n; j++) {
        if (strcmp(g.r[j].key, name) || g.r[j].start_ns != a)
          continue;
        found++;
        CHECK(g.r[j].end_ns == a + window);
        CHECK(g.r[j].count == count);
        CHECK(fabs(g.r[j].sum - sum) < 1e-6);
        CHECK(fabs(g.r[j].mean - sum / (double)count) < 1e-9);
        if (sum_only) {
          CHECK(isnan(g.r[j].min) && isnan(g.r[j].max) && isnan(g.r[j].last));
          continue;
        }
        CHECK(g.r[j].min == mn && g.r[j].max == mx);
        CHECK(g.r[j].last == last && g.r[j].last_ns == last_ts);
      }
      if (found != 1)
        fprintf(stderr, "key %s window %lld: emitted %d times\n", name, (long long)a, found);
      CHECK_EQ_INT(found, 1);
    }
  }
  CHECK_EQ_INT(g.n, expected);
  stream_destroy(s);
}

TEST(tumbling_matches_reference) { check_against_reference(60 * S, 60 * S, 10 * S, false); }
TEST(sliding_matches_reference) { check_against_reference(600 * S, 60 * S, 30 * S, false); }
TEST(sliding_no_lateness_matches_reference) { check_against_reference(20 * S, 5 * S, 0, false); }
TEST(sums_only_match_reference_in_a_third_of_the_memory) {
  check_against_reference(600 * S, 60 * S, 30 * S, true);
  struct stream *full, *lean;
  struct stream_cfg a = {600 * S, 60 * S, 60 * S, false, 0}, b = a;
  b.sum_only = true;
  CHECK(stream_create(&full, &a, collect, NULL) == 0 && stream_create(&lean, &b, collect, NULL) == 0);
  CHECK(stream_key_bytes(lean) * 5 / 2 < stream_key_bytes(full));
  stream_destroy(full);
  stream_destroy(lean);
}

TEST(partitions_spread_keys) {
  int counts[4] = {0};
  for (int i = 0; i < 4000; i++) {
    char k[16];
    snprintf(k, sizeof k, "station-%d", i);
    unsigned p = stream_partition(k, 4);
    CHECK(p < 4);
    CHECK(p == stream_partition(k, 4));
    counts[p]++;
  }
  for (int i = 0; i < 4; i++)
    CHECK(counts[i] > 800);
}


/* ---- event time against the wall clock -------------------------------------- */

/* The scenario on one stream: window 10 s, slide 2 s, lateness 1 s,
 * eight stations a second, and one line a day ahead of the clock. */
TEST(a_reading_from_the_future_moves_no_watermark) {
  static struct got g;
  g.n = 0;
  struct stream *s;
  struct stream_cfg cfg = {10 * S, 2 * S, 1 * S, true, 5 * 60 * S};
  CHECK(stream_create(&s, &cfg, collect, &g) == 0);
  int64_t now = 1800000000 * S; /* the injected wall clock */
  char key[16];
  for (int sec = 0; sec < 30; sec++, now += S) {
    for (int st = 0; st < 8; st++) {
      snprintf(key, sizeof key, "st-%d", st);
      CHECK_EQ_INT(stream_add_at(s, key, now, st, now), STREAM_ADDED);
    }
    if (sec == 10) {
      int64_t wm = stream_watermark(s);
      CHECK_EQ_INT(stream_add_at(s, "clockbug", now + 86400 * S, 20, now), STREAM_AHEAD);
      CHECK_EQ_INT(stream_watermark(s), wm); /* moved nothing */
      CHECK_EQ_INT(stream_keys(s), 8);       /* and is in no window */
    }
  }
  CHECK_EQ_INT(stream_late(s), 0); /* no honest reading late */
  CHECK_EQ_INT(stream_ahead(s), 1);
  CHECK(stream_watermark(s) == now - S - 1 * S); /* the last reading's time - lateness */
  /* windows kept closing for every station: [0, 10) … ending by now - 1 s */
  int per_station[8] = {0};
  for (int i = 0; i < g.n; i++) {
    CHECK(strncmp(g.r[i].key, "st-", 3) == 0);
    per_station[g.r[i].key[3] - '0']++;
  }
  for (int st = 0; st < 8; st++)
    CHECK(per_station[st] >= 10);
  /* a brand-new station is not late either */
  CHECK_EQ_INT(stream_add_at(s, "new", now, 1, now), STREAM_ADDED);
  stream_destroy(s);
}

/* A clock ahead by less than the bound: its points count, but the
 * watermark follows the wall clock, so nobody else is made late. */
TEST(a_fast_clock_delays_only_its_own_windows) {
  static struct got g;
  g.n = 0;
  struct stream *s;
  struct stream_cfg cfg = {10 * S, 2 * S, 1 * S, false, 5 * 60 * S};
  CHECK(stream_create(&s, &cfg, collect, &g) == 0);
  int64_t now = 1000 * S;
  CHECK_EQ_INT(stream_add_at(s, "fast", now + 4 * 60 * S, 5, now), STREAM_ADDED);
  CHECK(stream_watermark(s) == now - S);
  for (int sec = 0; sec < 20; sec++, now += S)
    CHECK_EQ_INT(stream_add_at(s, "honest", now, 1, now), STREAM_ADDED);
  CHECK_EQ_INT(stream_late(s), 0);
  for (int i = 0; i < g.n; i++)
    CHECK_EQ_STR(g.r[i].key, "honest"); /* fast's window is not due yet */
  CHECK(g.n >= 5);
  /* when the wall clock gets there, its window closes with its point */
  now += 5 * 60 * S;
  stream_advance(s, now - S);
  bool seen = false;
  for (int i = 0; i < g.n; i++)
    if (strcmp(g.r[i].key, "fast") == 0 && g.r[i].count == 1 && g.r[i].last == 5)
      seen = true;
  CHECK(seen);
  /* the bound is part of the ring: it must fit in it */
  struct stream_cfg huge = {10 * S, 2 * S, 1 * S, false, 86400 * S};
  struct stream *t;
  CHECK(stream_create(&t, &huge, collect, &g) == GROVE_EINVAL);
  stream_destroy(s);
}

/* Without a bound (stream_add, or ahead_ns 0) event time alone moves the
 * watermark, as a replay of recorded data needs. */
TEST(without_a_bound_event_time_alone_moves_the_watermark) {
  static struct got g;
  g.n = 0;
  struct stream *s;
  struct stream_cfg cfg = {10 * S, 2 * S, 1 * S, true, 0};
  CHECK(stream_create(&s, &cfg, collect, &g) == 0);
  CHECK_EQ_INT(stream_add_at(s, "a", 86400 * S, 1, 0), STREAM_ADDED);
  CHECK(stream_watermark(s) == 86399 * S);
  CHECK_EQ_INT(stream_add_at(s, "b", 100 * S, 1, 0), STREAM_LATE);
  stream_destroy(s);
}

/* ---- extreme times: no overflow, no window ending before it starts -------- */

static void check_windows_sane(const struct got *g) {
  for (int i = 0; i < g->n; i++) {
    CHECK(g->r[i].start_ns < g->r[i].end_ns);
    CHECK(g->r[i].count > 0);
  }
}

TEST(extreme_times_are_refused_or_windowed_never_wrapped) {
  static const int64_t extremes[] = {INT64_MIN,      INT64_MIN + 1,  INT64_MIN + 2,
                                     INT64_MIN + S,  -S,             -1,
                                     0,              1,              S,
                                     INT64_MAX - S,  INT64_MAX - 2,  INT64_MAX - 1,
                                     INT64_MAX};
  static const int64_t shapes[][4] = {
      {10 * S, 2 * S, 1 * S, 0},        {60 * S, 60 * S, 0, 0},
      {600 * S, 60 * S, 60 * S, 300 * S}, {3, 2, 0, 1},
      {INT64_MAX / 4096, INT64_MAX / 4096, 0, 0},
  };
  static struct got g;
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
    for (size_t i = 0; i < sizeof extremes / sizeof extremes[0]; i++)
      for (size_t j = 0; j < sizeof extremes / sizeof extremes[0]; j++) {
        g.n = 0;
        struct stream *s;
        struct stream_cfg cfg = {shapes[c][0], shapes[c][1], shapes[c][2], false, shapes[c][3]};
        CHECK(stream_create(&s, &cfg, collect, &g) == 0);
        int a = stream_add(s, "k", extremes[i], 1);
        int b = stream_add_at(s, "k", extremes[j], 2, extremes[i]);
        CHECK(a == STREAM_ADDED || a == GROVE_ERANGE);
        CHECK(b == STREAM_ADDED || b == STREAM_LATE || b == STREAM_AHEAD || b == GROVE_ERANGE);
        stream_advance(s, extremes[j]);
        stream_advance(s, INT64_MAX);
        stream_flush(s);
        check_windows_sane(&g);
        int in = (a == STREAM_ADDED) + (b == STREAM_ADDED);
        uint64_t counted = 0;
        for (int k = 0; k < g.n; k++)
          counted = counted > g.r[k].count ? counted : g.r[k].count;
        CHECK(in == 0 ? g.n == 0 : counted >= 1);
        stream_destroy(s);
      }
}

/* The point: INT64_MAX as a time used to make a window that ended
 * before it started and spin over every window in between. */
TEST(int64_max_as_a_time_is_out_of_range) {
  static struct got g;
  g.n = 0;
  struct stream *s;
  struct stream_cfg cfg = {10 * S, 2 * S, 1 * S, true, 0};
  CHECK(stream_create(&s, &cfg, collect, &g) == 0);
  CHECK_EQ_INT(stream_add(s, "max-1", 1700000000 * S, 10), STREAM_ADDED);
  CHECK_EQ_INT(stream_add(s, "max-1", INT64_MAX, 10), GROVE_ERANGE);
  CHECK_EQ_INT(stream_add(s, "max-1", INT64_MIN, 10), STREAM_LATE);
  CHECK(stream_watermark(s) == 1699999999 * S);
  stream_flush(s);
  check_windows_sane(&g);
  CHECK_EQ_INT(g.n, 5); /* the five 10 s windows holding the one point */
  stream_destroy(s);
}

static const struct test tests[] = {
    T(tumbling_windows_basic),      T(sliding_windows_and_idle_keys),
    T(tumbling_matches_reference),  T(sliding_matches_reference),
    T(sliding_no_lateness_matches_reference), T(sums_only_match_reference_in_a_third_of_the_memory),
    T(partitions_spread_keys),
    T(a_reading_from_the_future_moves_no_watermark), T(a_fast_clock_delays_only_its_own_windows),
    T(without_a_bound_event_time_alone_moves_the_watermark),
    T(extreme_times_are_refused_or_windowed_never_wrapped), T(int64_max_as_a_time_is_out_of_range),
};
TEST_MAIN(tests)
