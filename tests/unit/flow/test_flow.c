/* test_flow.c — the AQI against the EPA's worked examples and tables,
 * its invariants swept densely, and the engine's live state (categories,
 * what its topics end with, staleness) under an injected clock. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>

#include "../test.h"
#include "apps/flow/aqi.h"
#include "apps/flow/engine.h"

TEST(epa_worked_example) {
  /* Technical Assistance Document: ozone 0.078 ppm (8-h), PM2.5 35.9 µg/m³,
   * CO 8.4 ppm: indexes 126, 102 and 90; the AQI is 126, ozone. */
  CHECK_EQ_INT(aqi_of(AQI_O3_8H, 0.07853).index, 126);
  CHECK_EQ_INT(aqi_of(AQI_PM25, 35.9).index, 102);
  CHECK_EQ_INT(aqi_of(AQI_CO, 8.4).index, 90);
  double c[AQI_NPOLLUTANTS];
  for (int i = 0; i < AQI_NPOLLUTANTS; i++)
    c[i] = NAN;
  c[AQI_O3_8H] = 0.07853;
  c[AQI_PM25] = 35.9;
  c[AQI_CO] = 8.4;
  enum aqi_pollutant dom;
  struct aqi_result r = aqi_overall(c, &dom);
  CHECK_EQ_INT(r.index, 126);
  CHECK(dom == AQI_O3_8H);
  CHECK_EQ_STR(aqi_category_name(r.category), "Unhealthy for Sensitive Groups");
  CHECK_EQ_STR(aqi_category_color(r.category), "#FF7E00");
}

TEST(pm25_2024_breakpoints) {
  /* every breakpoint of the 2024 table maps to its index */
  const double conc[] = {0.0, 9.0, 9.1, 35.4, 35.5, 55.4, 55.5, 125.4, 125.5, 225.4, 225.5, 325.4};
  const int idx[] = {0, 50, 51, 100, 101, 150, 151, 200, 201, 300, 301, 500};
  for (size_t i = 0; i < sizeof conc / sizeof conc[0]; i++)
    CHECK_EQ_INT(aqi_of(AQI_PM25, conc[i]).index, idx[i]);
  CHECK_EQ_INT(aqi_of(AQI_PM25, 9.05).index, 50);   /* truncated to 9.0 */
  CHECK_EQ_INT(aqi_of(AQI_PM25, 12.0).index, 56);
  struct aqi_result r = aqi_of(AQI_PM25, 400);
  CHECK(r.index == 500 && r.beyond && r.category == AQI_HAZARDOUS);
  CHECK_EQ_INT(aqi_of(AQI_PM25, -1).index, -1);
  CHECK_EQ_INT(aqi_of(AQI_PM25, NAN).index, -1);
}

TEST(other_pollutants_and_truncation) {
  CHECK_EQ_INT(aqi_of(AQI_PM10, 54.9).index, 50);   /* integer truncation */
  CHECK_EQ_INT(aqi_of(AQI_PM10, 155).index, 101);
  CHECK_EQ_INT(aqi_of(AQI_NO2, 100).index, 100);
  CHECK_EQ_INT(aqi_of(AQI_NO2, 101).index, 101);
  CHECK_EQ_INT(aqi_of(AQI_SO2, 35.9).index, 50);
  CHECK_EQ_INT(aqi_of(AQI_SO2, 400).index, 232);     /* 24-hour table: 99/299*95+201 */
  CHECK_EQ_INT(aqi_of(AQI_CO, 4.49).index, 50);
  CHECK_EQ_INT(aqi_of(AQI_O3_8H, 0.0549).index, 50);
  CHECK_EQ_INT(aqi_of(AQI_O3_8H, 0.070).index, 100);
  CHECK_EQ_INT(aqi_of(AQI_O3_8H, 0.21).index, 300);  /* 8-hour values stop at 300 */
  CHECK_EQ_INT(aqi_of(AQI_O3_1H, 0.1).index, -1);    /* below the 1-hour table */
  CHECK_EQ_INT(aqi_of(AQI_O3_1H, 0.125).index, 101);
  CHECK_EQ_INT(aqi_of(AQI_O3_1H, 0.604).index, 500);
  CHECK(aqi_truncate(AQI_O3_8H, 0.07853) == 0.078);
  CHECK(aqi_truncate(AQI_PM25, 35.99) == 35.9);
}

TEST(categories) {
  const int at[] = {0, 50, 51, 100, 101, 150, 151, 200, 201, 300, 301, 500};
  const enum aqi_category want[] = {AQI_GOOD, AQI_GOOD, AQI_MODERATE, AQI_MODERATE, AQI_USG,
                                    AQI_USG, AQI_UNHEALTHY, AQI_UNHEALTHY, AQI_VERY_UNHEALTHY,
                                    AQI_VERY_UNHEALTHY, AQI_HAZARDOUS, AQI_HAZARDOUS};
  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
    CHECK(aqi_category_of(at[i]) == want[i]);
  CHECK_EQ_STR(aqi_category_name(AQI_HAZARDOUS), "Hazardous");
  CHECK_EQ_STR(aqi_category_color(AQI_GOOD), "#00E400");
  CHECK_EQ_STR(aqi_pollutant_name(AQI_PM25), "pm25");
}

TEST(nowcast) {
  /* steady air: the NowCast is the level itself */
  double flat[12];
  for (int i = 0; i < 12; i++)
    flat[i] = 20.0;
  CHECK(fabs(aqi_nowcast(AQI_PM25, flat, 12) - 20.0) < 1e-9);
  /* rising fast (min/max < 0.5): weight 0.5, recent hours dominate.
   * 40, 20, 10 (most recent first): (40 + 0.5*20 + 0.25*10) / 1.75 = 30.0 */
  double rising[] = {40, 20, 10};
  CHECK(fabs(aqi_nowcast(AQI_PM25, rising, 3) - 30.0) < 1e-9);
  /* gentle change: w = 18/20 = 0.9: (20 + 0.9*18) / 1.9 = 19.05… → 19.0 */
  double gentle[] = {20, 18};
  CHECK(fabs(aqi_nowcast(AQI_PM25, gentle, 2) - 19.0) < 1e-9);
  /* a missing hour keeps its place in the weights */
  double gap[] = {40, NAN, 10};
  CHECK(fabs(aqi_nowcast(AQI_PM25, gap, 3) - 34.0) < 1e-9); /* (40 + .25*10)/1.25 */
  /* two of the three most recent hours are needed */
  double sparse[] = {NAN, NAN, 10, 10};
  CHECK(isnan(aqi_nowcast(AQI_PM25, sparse, 4)));
  /* PM10 truncates to whole numbers */
  double pm10[] = {60, 50};
  CHECK(aqi_nowcast(AQI_PM10, pm10, 2) == 55.0); /* (60 + 0.8333*50)/1.8333 = 55.45 */
}

/* ---- invariants: every pollutant, densely, across all breakpoints ---------- */

struct sweep {
  enum aqi_pollutant p;
  double unit;   /* the table's precision */
  double top;    /* its last breakpoint */
};

static const struct sweep sweeps[] = {
    {AQI_PM25, 0.1, 325.4}, {AQI_PM10, 1, 604},  {AQI_O3_8H, 0.001, 0.200},
    {AQI_O3_1H, 0.001, 0.604}, {AQI_CO, 0.1, 50.4}, {AQI_SO2, 1, 1004}, {AQI_NO2, 1, 2049},
};

/* Index of one pollutant, or of ozone through both tables (p == -1). */
static struct aqi_result index_of(int p, double c) {
  return p < 0 ? aqi_ozone(c) : aqi_of((enum aqi_pollutant)p, c);
}

/* Every multiple of the table's unit, the doubles on either side of it,
 * and seven points between, up to a quarter past the top: the index never
 * falls, its category is its own, and truncation is applied first. */
static void sweep_one(int p, double unit, double top) {
  int prev = -1;
  bool seen = false;
  long steps = (long)(top * 1.25 / unit) + 2;
  for (long m = 0; m <= steps; m++) {
    double at = (double)m * unit;
    double pts[10] = {nextafter(at, -INFINITY), at, nextafter(at, INFINITY)};
    for (int j = 1; j < 8; j++)
      pts[2 + j] = at + unit * j / 8;
    for (int k = 0; k < 10; k++) {
      if (pts[k] < 0)
        continue;
      struct aqi_result r = index_of(p, pts[k]);
      if (r.index < 0) { /* only 1-hour ozone has no index, and only below its table */
        CHECK(!seen);
        continue;
      }
      if (r.index < prev) {
        fprintf(stderr, "pollutant %d: %.17g gives %d after %d\n", p, pts[k], r.index, prev);
        CHECK(r.index >= prev);
      }
      CHECK(r.index <= 500);
      CHECK(r.category == aqi_category_of(r.index));
      if (p >= 0)
        CHECK_EQ_INT(aqi_of((enum aqi_pollutant)p, aqi_truncate((enum aqi_pollutant)p, pts[k])).index,
                     r.index);
      prev = r.index;
      seen = true;
    }
  }
  CHECK(seen && prev >= 300); /* the sweep went past the top */
}

TEST(aqi_never_falls_as_concentration_rises) {
  for (size_t i = 0; i < sizeof sweeps / sizeof sweeps[0]; i++)
    sweep_one((int)sweeps[i].p, sweeps[i].unit, sweeps[i].top);
  sweep_one(-1, 0.001, 0.604); /* ozone through both tables, as the engine reads it */
  /* the reported case: 0.200 ppm gave 300 and 0.201 gave 196 */
  CHECK_EQ_INT(aqi_ozone(0.200).index, 300);
  CHECK(aqi_ozone(0.201).index >= 300);
  CHECK_EQ_INT(aqi_ozone(0.405).index, 301); /* 1-hour table above 300 */
  CHECK(aqi_ozone(0.7).beyond && aqi_ozone(0.7).index == 500);
  CHECK_EQ_INT(aqi_ozone(0.078).index, 126); /* below 0.125 only the 8-hour table */
  CHECK_EQ_INT(aqi_ozone(0.1).index, 187);   /* 8-hour 187 beats 1-hour -1 */
}

TEST(breakpoints_give_their_indexes) {
  /* each table's breakpoints, both ends, for every pollutant */
  static const struct {
    enum aqi_pollutant p;
    double c;
    int want;
  } at[] = {
      {AQI_PM10, 54, 50},      {AQI_PM10, 55, 51},      {AQI_PM10, 424, 300},   {AQI_PM10, 425, 301},
      {AQI_PM10, 604, 500},    {AQI_O3_8H, 0.054, 50},  {AQI_O3_8H, 0.055, 51}, {AQI_O3_8H, 0.105, 200},
      {AQI_O3_8H, 0.106, 201}, {AQI_O3_8H, 0.200, 300}, {AQI_O3_1H, 0.164, 150}, {AQI_O3_1H, 0.165, 151},
      {AQI_O3_1H, 0.404, 300}, {AQI_O3_1H, 0.405, 301}, {AQI_CO, 4.4, 50},      {AQI_CO, 4.5, 51},
      {AQI_CO, 30.4, 300},     {AQI_CO, 30.5, 301},     {AQI_CO, 50.4, 500},    {AQI_SO2, 75, 100},
      {AQI_SO2, 76, 101},      {AQI_SO2, 304, 200},     {AQI_SO2, 305, 201},    {AQI_SO2, 1004, 500},
      {AQI_NO2, 53, 50},       {AQI_NO2, 54, 51},       {AQI_NO2, 649, 200},    {AQI_NO2, 650, 201},
      {AQI_NO2, 2049, 500},    {AQI_PM25, 325.4, 500},
  };
  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
    struct aqi_result r = aqi_of(at[i].p, at[i].c);
    if (r.index != at[i].want)
      fprintf(stderr, "%s %.4g\n", aqi_pollutant_name(at[i].p), at[i].c);
    CHECK_EQ_INT(r.index, at[i].want);
    CHECK(!r.beyond);
  }
  CHECK(aqi_of(AQI_NO2, 2050).beyond);
  CHECK(!aqi_of(AQI_O3_8H, 0.3).beyond); /* not beyond: the 1-hour table goes on */
}

/* ---- the engine, with an injected clock --------------------------------------- */

static uint64_t fake_now = 1700000000000ULL; /* ms, both clocks */

static uint64_t fake_clock(void *arg) {
  (void)arg;
  return fake_now;
}

/* The last message published on each topic. */
static struct {
  char topic[96];
  json_t *last;
} pubs[64];
static int npubs, nalerts;

static void on_publish(const char *topic, const char *json, size_t len, void *arg) {
  (void)arg;
  int i = 0;
  while (i < npubs && strcmp(pubs[i].topic, topic) != 0)
    i++;
  CHECK(i < 64);
  if (i == npubs) {
    snprintf(pubs[i].topic, sizeof pubs[i].topic, "%s", topic);
    npubs++;
  }
  json_decref(pubs[i].last);
  pubs[i].last = json_loadb(json, len, 0, NULL);
  CHECK(pubs[i].last);
}

static void on_alert(const struct flow_alert *a, void *arg) {
  (void)a;
  (void)arg;
  nalerts++;
}

static json_t *last_on(const char *topic) {
  for (int i = 0; i < npubs; i++)
    if (strcmp(pubs[i].topic, topic) == 0)
      return pubs[i].last;
  return NULL;
}

#define SEC 1000000000LL
static const int64_t T0 = 1800000000LL * SEC; /* a whole minute */

static struct flow_engine *engine(uint64_t stale_ms) {
  struct flow_engine_cfg c = {.window_ns = 60 * SEC, .slide_ns = 60 * SEC, .lateness_ns = 0,
                              .hysteresis = 5, .partitions = 1, .publish_ms = 1000,
                              .stale_ms = stale_ms,
                              .env = {fake_clock, fake_clock, on_publish, NULL, true}};
  struct flow_engine *e;
  CHECK(flow_engine_create(&e, &c, NULL, on_alert, NULL, NULL) == 0);
  return e;
}

static void add(struct flow_engine *e, const char *station, const char *region, int64_t ts,
                double pm25) {
  struct flow_reading r = {station, region, SP_PM25, ts, pm25, 7};
  flow_engine_add(e, &r, 1, NULL);
}

/* Lets the throttle's slots come and every partition settle. */
static void settle_all(struct flow_engine *e) {
  for (int i = 0; i < 3; i++) {
    fake_now += 1500;
    flow_engine_tick(e);
  }
}

static json_t *rest(struct flow_engine *e, bool region, const char *name) {
  json_t *list = region ? flow_engine_regions_json(e, name) : flow_engine_stations_json(e, name);
  json_t *one = json_incref(json_array_get(list, 0));
  json_decref(list);
  CHECK(one);
  return one;
}

/* The topic's last message is what the API answers now. */
static void check_agree(struct flow_engine *e, bool region, const char *name) {
  char topic[96];
  snprintf(topic, sizeof topic, "flow/%s/%s", region ? "regions" : "stations", name);
  json_t *api = rest(e, region, name), *live = last_on(topic);
  if (!live || !json_equal(api, live)) {
    char *a = json_dumps(api, JSON_COMPACT), *l = live ? json_dumps(live, JSON_COMPACT) : NULL;
    fprintf(stderr, "%s\n  api:  %s\n  live: %s\n", topic, a, l ? l : "(nothing)");
    free(a);
    free(l);
    CHECK(!"the live topic and the API disagree");
  }
  json_decref(api);
}

TEST(shown_category_is_the_numbers_own) {
  struct flow_engine *e = engine(0);
  add(e, "hover", "hills", T0 + SEC, 9.1);           /* 51, Moderate */
  add(e, "hover", "hills", T0 + 61 * SEC, 8.9);      /* closes minute 0; 49 */
  add(e, "hover", "hills", T0 + 121 * SEC, 8.9);     /* closes minute 1 */
  json_t *s = rest(e, false, "hover");
  CHECK_EQ_INT(json_integer_value(json_object_get(s, "aqi")), 49);
  CHECK_EQ_STR(json_string_value(json_object_get(s, "category")), "Good");
  CHECK_EQ_INT(json_integer_value(json_object_get(s, "level")), 0);
  CHECK_EQ_STR(json_string_value(json_object_get(s, "color")), "#00E400");
  CHECK_EQ_INT(nalerts, 0); /* hysteresis: the alert does not say "Good" yet */
  json_decref(s);
  settle_all(e);
  check_agree(e, false, "hover");
  flow_engine_destroy(e);
}

TEST(topics_end_with_the_last_window_of_a_quiet_station) {
  struct flow_engine *e = engine(0);
  for (int i = 0; i < 5; i++) { /* readings a second apart, each publishable */
    add(e, "quiet", "r1", T0 + (1 + i) * SEC, 40);
    add(e, "busy", "r1", T0 + (1 + i) * SEC, 10);
    fake_now += 1500;
  }
  /* quiet says nothing more; busy's next reading closes the window */
  add(e, "busy", "r1", T0 + 61 * SEC, 10);
  json_t *q = rest(e, false, "quiet");
  CHECK_EQ_INT(json_integer_value(json_object_get(q, "aqi")), 112);
  json_decref(q);
  settle_all(e);
  check_agree(e, false, "quiet");
  check_agree(e, false, "busy");
  check_agree(e, true, "r1");
  /* and after the idle ticker closes busy's window too */
  fake_now += 120000;
  settle_all(e);
  check_agree(e, false, "busy");
  check_agree(e, true, "r1");
  flow_engine_destroy(e);
}

TEST(moving_a_station_republishes_it_and_both_regions) {
  struct flow_engine *e = engine(0);
  add(e, "mover", "old", T0 + SEC, 5);
  add(e, "stay", "new", T0 + SEC, 5);
  settle_all(e);
  struct flow_station st = {.id = "mover", .name = "The Mover", .region = "new", .lat = 1, .lon = 2};
  CHECK(flow_engine_station_put(e, &st) == 0);
  settle_all(e);
  check_agree(e, false, "mover");
  check_agree(e, true, "old");
  check_agree(e, true, "new");
  json_t *r = rest(e, true, "new");
  CHECK_EQ_INT(json_integer_value(json_object_get(r, "stations")), 2);
  json_decref(r);
  r = rest(e, true, "old");
  CHECK_EQ_INT(json_integer_value(json_object_get(r, "stations")), 0);
  json_decref(r);
  flow_engine_destroy(e);
}

static bool is_stale(json_t *o) { return json_is_true(json_object_get(o, "stale")); }

static json_int_t int_of(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

TEST(silent_stations_turn_stale_and_back) {
  struct flow_engine *e = engine(5000);
  uint64_t t = fake_now;
  add(e, "a", "sky", T0 + SEC, 5);
  add(e, "b", "sky", T0 + SEC, 5);
  fake_now = t + 4000;
  add(e, "b", "sky", T0 + 2 * SEC, 5); /* b keeps talking, a goes quiet */
  fake_now = t + 4999;
  flow_engine_tick(e);
  json_t *a = rest(e, false, "a");
  CHECK(!is_stale(a));
  CHECK_EQ_INT(int_of(a, "last_seen"), (json_int_t)t * 1000000);
  json_decref(a);
  fake_now = t + 5000; /* five seconds of silence */
  flow_engine_tick(e);
  a = rest(e, false, "a");
  CHECK(is_stale(a));
  CHECK_EQ_INT(int_of(a, "last_seen"), (json_int_t)t * 1000000);
  json_decref(a);
  json_t *b = rest(e, false, "b"), *sky = rest(e, true, "sky");
  CHECK(!is_stale(b) && !is_stale(sky));
  CHECK_EQ_INT(int_of(sky, "stations"), 2);
  CHECK_EQ_INT(int_of(sky, "stale_stations"), 1);
  json_decref(b);
  json_decref(sky);
  fake_now += 1000;
  flow_engine_tick(e);
  fake_now += 1000;
  flow_engine_tick(e); /* the region's topic follows its count */
  CHECK(is_stale(last_on("flow/stations/a")));
  check_agree(e, false, "a");
  check_agree(e, true, "sky");
  /* everyone silent: the region is stale too */
  fake_now = t + 4000 + 5000;
  settle_all(e);
  sky = rest(e, true, "sky");
  CHECK(is_stale(sky) && int_of(sky, "stale_stations") == 2);
  json_decref(sky);
  check_agree(e, true, "sky");
  check_agree(e, false, "b");
  /* a reading brings a station back at once */
  add(e, "a", "sky", T0 + 3 * SEC, 5);
  a = rest(e, false, "a");
  CHECK(!is_stale(a));
  CHECK_EQ_INT(int_of(a, "last_seen"), (json_int_t)fake_now * 1000000);
  json_decref(a);
  sky = rest(e, true, "sky");
  CHECK(!is_stale(sky) && int_of(sky, "stale_stations") == 1);
  json_decref(sky);
  settle_all(e);
  check_agree(e, false, "a");
  check_agree(e, true, "sky");
  flow_engine_destroy(e);
}

TEST(never_stale_when_turned_off) {
  struct flow_engine *e = engine(0);
  add(e, "a", "sky", T0 + SEC, 5);
  fake_now += 86400000;
  settle_all(e);
  json_t *a = rest(e, false, "a");
  CHECK(!is_stale(a));
  json_decref(a);
  flow_engine_destroy(e);
}

static const struct test tests[] = {
    T(epa_worked_example), T(pm25_2024_breakpoints), T(other_pollutants_and_truncation),
    T(categories), T(nowcast), T(aqi_never_falls_as_concentration_rises),
    T(breakpoints_give_their_indexes), T(shown_category_is_the_numbers_own),
    T(topics_end_with_the_last_window_of_a_quiet_station),
    T(moving_a_station_republishes_it_and_both_regions), T(silent_stations_turn_stale_and_back),
    T(never_stale_when_turned_off),
};
TEST_MAIN(tests)
