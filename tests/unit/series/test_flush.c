/* test_flush.c — the autoflush: points move into chunks once the head
 * holds max_points, or after the interval, and stay readable throughout;
 * closing stops it whatever it is doing. */
#include "../test.h"

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
    T(autoflush_runs_on_its_interval),
    T(close_stops_a_busy_autoflush),
};

TEST_MAIN(tests)
