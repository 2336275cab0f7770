/* test_stream.c — windows against a brute-force reference on random
 * streams with out-of-order, late and duplicate points. */
#include <math.h>
#include <stdbool.h>

#include "../test.h"
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
  struct stream_cfg cfg = {60 * S, 60 * S, 30 * S, false};
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
  struct stream_cfg cfg = {10 * S, 5 * S, 0, false};
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
  struct stream_cfg aqi = {600 * S, 60 * S, 60 * S, false};
  CHECK(stream_create(&s, &aqi, collect, &g) == 0);
  CHECK(stream_key_bytes(s) + sizeof(struct map_slot) + 32 <= 1024);
  stream_destroy(s);
  struct stream_cfg bad = {10 * S, 20 * S, 0, false};
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
  struct stream_cfg cfg = {window, slide, lateness, sum_only};
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
  struct stream_cfg a = {600 * S, 60 * S, 60 * S, false}, b = a;
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

static const struct test tests[] = {
    T(tumbling_windows_basic),      T(sliding_windows_and_idle_keys),
    T(tumbling_matches_reference),  T(sliding_matches_reference),
    T(sliding_no_lateness_matches_reference), T(sums_only_match_reference_in_a_third_of_the_memory),
    T(partitions_spread_keys),
};
TEST_MAIN(tests)
