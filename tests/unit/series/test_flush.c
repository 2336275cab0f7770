/* test_flush.c — the autoflush: points move into chunks once the head
 * holds max_points, or after the interval, and stay readable throughout;
 * closing stops it whatever it is doing. */
#include "../test.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"
#include "series/series.h"
#include "store.h"

/* Waits (for a condition, not a time) until the head is empty. */
static void wait_flushed(struct series *s) {
  for (int i = 0; i < 20000 && series_head_points(s); i++)
    usleep(1000);
  CHECK_EQ_INT(series_head_points(s), 0);
}

static void append(struct series *s, uint32_t id, int from, int n) {
  struct series_point pts[64];
  CHECK(n <= 64);
  for (int i = 0; i < n; i++)
    pts[i] = (struct series_point){id, (int64_t)(from + i) * 1000000000LL, from + i};
  CHECK_EQ_INT(series_append_sync(s, pts, (size_t)n), 0);
}

static void check_all(struct series *s, uint32_t id, int n) {
  struct series_sample *pts;
  size_t got;
  CHECK_EQ_INT(series_range(s, id, INT64_MIN, INT64_MAX, &pts, &got), 0);
  CHECK_EQ_INT(got, n);
  for (int i = 0; i < n; i++)
    CHECK(pts[i].ts_ns == (int64_t)i * 1000000000LL && pts[i].value == i);
  free(pts);
}

TEST(autoflush_moves_a_full_head_into_chunks) {
  struct series *s = open_store(store_dir());
  uint32_t id;
  CHECK_EQ_INT(series_id(s, "m,host=a v", &id), 0);
  CHECK_EQ_INT(series_autoflush(s, 3600000, 50), 0); /* an hour: only the count can do it */
  CHECK_EQ_INT(series_autoflush(s, 1000, 10), GROVE_EEXIST);
  append(s, id, 0, 49);
  CHECK_EQ_INT(series_head_points(s), 49); /* not full yet */
  append(s, id, 49, 1);
  wait_flushed(s);
  check_all(s, id, 50);
  append(s, id, 50, 60); /* and again */
  wait_flushed(s);
  check_all(s, id, 110);
  series_close(s);
}

/* Many sparse series: a flush writes a chunk and rollups per series, so a
 * head at max_points waits until its series hold 32 points each on
 * average, or until it holds 4 x max_points whatever they hold. */
TEST(a_head_of_sparse_series_waits_for_fuller_chunks) {
  struct series *s = open_store(store_dir());
  uint32_t ids[20];
  for (int i = 0; i < 20; i++) {
    char key[32];
    snprintf(key, sizeof key, "m,host=h%d v", i);
    CHECK_EQ_INT(series_id(s, key, &ids[i]), 0);
  }
  CHECK_EQ_INT(series_autoflush(s, 3600000, 50), 0);
  for (int round = 0; round < 9; round++) /* 20 series x 9 points: 180 < 4 x 50 */
    for (int i = 0; i < 20; i++)
      append(s, ids[i], round, 1);
  CHECK_EQ_INT(series_head_points(s), 180); /* 9 a series on average: not yet */
  for (int i = 0; i < 20; i++)
    append(s, ids[i], 9, 1);
  wait_flushed(s); /* 200 = 4 x max_points */
  for (int i = 0; i < 20; i++)
    check_all(s, ids[i], 10);
  /* two series of 32 points each: full at 64 */
  append(s, ids[0], 10, 32);
  append(s, ids[1], 10, 31);
  CHECK_EQ_INT(series_head_points(s), 63);
  append(s, ids[1], 41, 1);
  wait_flushed(s);
  series_close(s);
}

TEST(autoflush_runs_on_its_interval) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t id;
  CHECK_EQ_INT(series_id(s, "m,host=a v", &id), 0);
  CHECK_EQ_INT(series_autoflush(s, 20, 1000000), 0);
  append(s, id, 0, 3);
  wait_flushed(s);
  series_close(s);
  s = open_store(dir); /* in chunks: nothing to replay */
  CHECK_EQ_INT(series_head_points(s), 0);
  check_all(s, id, 3);
  series_close(s);
}

TEST(close_stops_a_busy_autoflush) {
  struct series *s = open_store(store_dir());
  uint32_t id;
  CHECK_EQ_INT(series_id(s, "m,host=a v", &id), 0);
  CHECK_EQ_INT(series_autoflush(s, 1, 1), 0);
  for (int i = 0; i < 20; i++)
    append(s, id, i * 5, 5);
  series_close(s);
}

static const struct test tests[] = {
    T(autoflush_moves_a_full_head_into_chunks),
    T(a_head_of_sparse_series_waits_for_fuller_chunks),
    T(autoflush_runs_on_its_interval),
    T(close_stops_a_busy_autoflush),
};

TEST_MAIN(tests)
