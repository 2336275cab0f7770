/* test_periodic.c — core/periodic.h (runs, wakes, stops) and core/array.h
 * (doubling with a maximum). Conditions are waited for, not slept on. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "../test.h"
#include "core/array.h"
#include "core/error.h"
#include "core/periodic.h"

static _Atomic int runs;

static uint64_t count_run(void *arg) {
  (void)arg;
  atomic_fetch_add(&runs, 1);
  return 0;
}

static void wait_runs(int n) {
  while (atomic_load(&runs) < n)
    usleep(1000);
}

TEST(periodic_runs_at_its_interval_until_stopped) {
  struct periodic *p;
  atomic_store(&runs, 0);
  CHECK(periodic_start(&p, 5, count_run, NULL) == 0);
  wait_runs(3);
  periodic_stop(p);
  int after = atomic_load(&runs);
  usleep(30000);
  CHECK_EQ_INT(atomic_load(&runs), after); /* stopped means never again */
}

TEST(periodic_wake_runs_before_a_long_interval) {
  struct periodic *p;
  atomic_store(&runs, 0);
  CHECK(periodic_start(&p, 3600 * 1000, count_run, NULL) == 0); /* an hour */
  periodic_wake(p);
  wait_runs(1);
  periodic_wake(p);
  wait_runs(2);
  periodic_stop(p); /* does not wait for the hour */
  CHECK_EQ_INT(atomic_load(&runs), 2);
}

/* The function chooses its next wait: soon after a first run, then an hour. */
static uint64_t soon_then_slow(void *arg) {
  (void)arg;
  return atomic_fetch_add(&runs, 1) < 2 ? 1 : 3600 * 1000;
}

TEST(periodic_function_sets_the_next_wait) {
  struct periodic *p;
  atomic_store(&runs, 0);
  CHECK(periodic_start(&p, 1, soon_then_slow, NULL) == 0);
  wait_runs(3);
  periodic_stop(p);
  CHECK_EQ_INT(atomic_load(&runs), 3);
}

/* A wake that comes while the function runs is not lost. */
static struct periodic *self;
static uint64_t wake_self_once(void *arg) {
  (void)arg;
  if (atomic_fetch_add(&runs, 1) == 0)
    periodic_wake(self);
  return 0;
}

TEST(periodic_wake_during_a_run_is_kept) {
  atomic_store(&runs, 0);
  CHECK(periodic_start(&self, 3600 * 1000, wake_self_once, NULL) == 0);
  periodic_wake(self);
  wait_runs(2);
  periodic_stop(self);
  periodic_stop(NULL);
  CHECK(periodic_start(&self, 0, count_run, NULL) == GROVE_EINVAL);
}

TEST(array_grows_by_doubling_up_to_its_maximum) {
  int *a = NULL;
  size_t cap = 0;
  CHECK(ARRAY_GROW(a, cap, 1, 4, 100) == 0);
  CHECK_EQ_INT(cap, 4);
  CHECK(ARRAY_GROW(a, cap, 4, 4, 100) == 0); /* room already */
  CHECK_EQ_INT(cap, 4);
  CHECK(ARRAY_GROW(a, cap, 5, 4, 100) == 0);
  CHECK_EQ_INT(cap, 8);
  CHECK(ARRAY_GROW(a, cap, 33, 4, 100) == 0);
  CHECK_EQ_INT(cap, 64);
  for (int i = 0; i < 33; i++)
    a[i] = i;
  CHECK(ARRAY_GROW(a, cap, 70, 4, 100) == 0); /* capped at the maximum */
  CHECK_EQ_INT(cap, 100);
  int *before = a;
  CHECK(ARRAY_GROW(a, cap, 101, 4, 100) == GROVE_ETOOBIG);
  CHECK(a == before && cap == 100); /* unaltered */
  CHECK_EQ_INT(a[32], 32);
  free(a);
}

TEST(array_refuses_sizes_that_overflow) {
  struct big {
    char b[1 << 20];
  } *a = NULL;
  size_t cap = 0;
  CHECK(ARRAY_GROW(a, cap, SIZE_MAX / 2, 1, ARRAY_NOMAX) == GROVE_ENOMEM);
  CHECK(a == NULL && cap == 0);
}

TEST(array_grows_elements_sized_at_run_time) {
  char *rows = NULL;
  size_t cap = 0, rowsize = 24;
  CHECK(ARRAY_GROW_SIZED(rows, cap, 3, rowsize, 2, 10) == 0);
  CHECK_EQ_INT(cap, 4);
  memset(rows, 7, 4 * rowsize); /* all of it is there */
  CHECK(ARRAY_GROW_SIZED(rows, cap, 11, rowsize, 2, 10) == GROVE_ETOOBIG);
  CHECK_EQ_INT(cap, 4);
  free(rows);
}

static const struct test tests[] = {
    T(periodic_runs_at_its_interval_until_stopped), T(periodic_wake_runs_before_a_long_interval),
    T(periodic_function_sets_the_next_wait), T(periodic_wake_during_a_run_is_kept),
    T(array_grows_by_doubling_up_to_its_maximum), T(array_refuses_sizes_that_overflow),
    T(array_grows_elements_sized_at_run_time),
};
TEST_MAIN(tests)
