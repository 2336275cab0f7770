/* test_clock.c — flow's windows against the wall clock, with an injected
 * clock: a reading from the future (issue 9.1) moves no watermark and
 * hurts no other station; extreme times (9.2) are refused, not wrapped. */
#include <jansson.h>
#include <stdatomic.h>

#include "../test.h"
#include "apps/flow/engine.h"
#include "core/util.h"

#define S 1000000000LL

static _Atomic int64_t fake_now; /* Unix ns; the engine sees it in ms, both clocks */
static uint64_t clock_ms(void *arg) {
  (void)arg;
  return (uint64_t)(atomic_load(&fake_now) / 1000000);
}

static struct flow_engine *engine(int64_t ahead_ns, unsigned partitions) {
  struct flow_engine_cfg cfg = {
      .window_ns = 10 * S, .slide_ns = 2 * S, .lateness_ns = 1 * S, .ahead_ns = ahead_ns,
      .hysteresis = 5, .partitions = partitions, .publish_ms = 1000,
      .env = {.mono_ms = clock_ms, .wall_ms = clock_ms, .no_ticker = true},
  };
  struct flow_engine *e;
  CHECK(flow_engine_create(&e, &cfg, NULL, NULL, NULL, NULL) == 0);
  return e;
}

/* A station's newest window end (INT64_MIN: none yet) and its AQI. */
static int64_t window_end(struct flow_engine *e, const char *id, int *aqi) {
  json_t *arr = flow_engine_stations_json(e, id);
  json_t *o = json_array_get(arr, 0);
  json_t *w = json_object_get(o, "window");
  int64_t end = json_is_object(w) ? (int64_t)json_integer_value(json_object_get(w, "end")) : INT64_MIN;
  if (aqi)
    *aqi = json_is_integer(json_object_get(o, "aqi")) ? (int)json_integer_value(json_object_get(o, "aqi")) : -1;
  json_decref(arr);
  return end;
}

static size_t add(struct flow_engine *e, const char *station, const char *region, int64_t ts,
                  double pm25, size_t *ahead) {
  struct flow_reading r = {station, region, SP_PM25, ts, pm25, 0};
  return flow_engine_add(e, &r, 1, ahead);
}

/* The run: --flow-window 10s --flow-slide 2s --flow-lateness 1s,
 * eight stations writing every second, and one line at now + 24 h. With
 * one partition every station shares the clockbug's watermark: the
 * harshest case. */
TEST(one_reading_from_the_future_freezes_no_station) {
  for (unsigned parts = 1; parts <= 4; parts += 3) {
    atomic_store(&fake_now, 1800000000 * S);
    struct flow_engine *e = engine(5 * 60 * S, parts);
    char id[16];
    size_t late = 0, ahead = 0, a;
    for (int sec = 0; sec < 20; sec++) {
      int64_t now = atomic_load(&fake_now);
      for (int st = 0; st < 8; st++) {
        snprintf(id, sizeof id, "st-%d", st);
        late += add(e, id, st % 2 ? "north" : "south", now, 10 + st, &a);
        ahead += a;
      }
      if (sec == 5) {
        late += add(e, "clockbug", "elsewhere", now + 86400 * S, 20, &a);
        CHECK_EQ_INT(a, 1); /* reported to the writer */
        ahead += a;
      }
      atomic_store(&fake_now, now + S);
    }
    CHECK_EQ_INT(late, 0);
    CHECK_EQ_INT(ahead, 1);
    struct flow_engine_stats stats;
    flow_engine_stats(e, &stats);
    CHECK_EQ_INT(stats.ahead, 1);
    /* every honest station's AQI kept up: its newest window ends within a
     * slide and the lateness of the clock */
    int64_t now = atomic_load(&fake_now);
    for (int st = 0; st < 8; st++) {
      snprintf(id, sizeof id, "st-%d", st);
      int aqi;
      int64_t end = window_end(e, id, &aqi);
      CHECK(end != INT64_MIN && end >= now - 4 * S);
      CHECK(aqi >= 0);
    }
    /* the clockbug's reading is in no window; a brand-new station is on time */
    CHECK(window_end(e, "clockbug", NULL) == INT64_MIN);
    CHECK_EQ_INT(add(e, "newcomer", "elsewhere", now, 5, &a), 0);
    CHECK_EQ_INT(a, 0);
    flow_engine_destroy(e);
  }
}

/* A clock a few minutes fast (inside the bound) counts for its own
 * station, later, and makes no one else late. */
TEST(a_fast_station_clock_hurts_only_itself) {
  atomic_store(&fake_now, 1800000000 * S);
  struct flow_engine *e = engine(5 * 60 * S, 1);
  size_t late = 0, a;
  int64_t t0 = atomic_load(&fake_now);
  CHECK_EQ_INT(add(e, "fast", "r", t0 + 4 * 60 * S, 30, &a), 0);
  CHECK_EQ_INT(a, 0);
  for (int sec = 0; sec < 15; sec++) {
    int64_t now = atomic_load(&fake_now);
    late += add(e, "honest", "r", now, 12, &a);
    atomic_store(&fake_now, now + S);
  }
  CHECK_EQ_INT(late, 0);
  CHECK(window_end(e, "honest", NULL) != INT64_MIN);
  CHECK(window_end(e, "fast", NULL) == INT64_MIN); /* not due before the wall clock */
  /* nor does it hold its region's latest reading: the honest one is newer */
  json_t *rg = flow_engine_regions_json(e, "r");
  json_t *pm = json_object_get(json_object_get(json_object_get(json_array_get(rg, 0), "pollutants"), "pm25"), "latest");
  CHECK(json_is_number(pm) && json_number_value(pm) == 12);
  json_decref(rg);
  atomic_store(&fake_now, t0 + 6 * 60 * S);
  flow_engine_tick(e); /* quiet: the watermark follows the wall clock, not past it */
  CHECK(window_end(e, "fast", NULL) != INT64_MIN);
  flow_engine_destroy(e);
}

/* With no bound, event time alone moves the watermark (a replay). */
TEST(no_bound_follows_event_time) {
  atomic_store(&fake_now, 1000 * S);
  struct flow_engine *e = engine(0, 1);
  size_t a;
  CHECK_EQ_INT(add(e, "replay", "r", 1800000000 * S, 12, &a), 0);
  CHECK_EQ_INT(a, 0);
  CHECK_EQ_INT(add(e, "other", "r", 1800000000 * S - 60 * S, 12, &a), 1); /* late */
  flow_engine_destroy(e);
}

/* int64's ends and the range's: refused (late or ahead), never wrapped,
 * and the honest stations go on. */
TEST(extreme_times_are_left_out_not_wrapped) {
  static const int64_t extremes[] = {INT64_MIN, INT64_MIN + 1, TIME_MIN_NS, -1, 0,
                                     1,         TIME_MAX_NS,   INT64_MAX - 1, INT64_MAX};
  for (int bounded = 0; bounded < 2; bounded++) {
    atomic_store(&fake_now, 1800000000 * S);
    struct flow_engine *e = engine(bounded ? 5 * 60 * S : 0, 2);
    size_t a;
    int64_t now = atomic_load(&fake_now);
    CHECK_EQ_INT(add(e, "honest", "r", now, 12, &a), 0);
    for (size_t i = 0; i < sizeof extremes / sizeof extremes[0]; i++) {
      size_t late = add(e, "max-1", "rmax", extremes[i], 10, &a);
      CHECK(late + a <= 1);
    }
    flow_engine_tick(e);
    /* (unbounded too: int64's ends have windows past int64, so they move nothing) */
    for (int sec = 1; sec < 15; sec++)
      CHECK_EQ_INT(add(e, "honest", "r", now + sec * S, 12, &a), 0);
    json_decref(flow_engine_stations_json(e, NULL));
    json_decref(flow_engine_regions_json(e, NULL));
    flow_engine_destroy(e);
  }
}

static const struct test tests[] = {
    T(one_reading_from_the_future_freezes_no_station),
    T(a_fast_station_clock_hurts_only_itself),
    T(no_bound_follows_event_time),
    T(extreme_times_are_left_out_not_wrapped),
};
TEST_MAIN(tests)
