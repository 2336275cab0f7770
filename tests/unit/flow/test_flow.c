/* test_flow.c — the AQI against the EPA's worked examples and tables. */
#include <math.h>

#include "../test.h"
#include "apps/flow/aqi.h"

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
  CHECK_EQ_INT(aqi_of(AQI_O3_8H, 0.21).index, -1);   /* 1-hour table's range */
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

static const struct test tests[] = {
    T(epa_worked_example), T(pm25_2024_breakpoints), T(other_pollutants_and_truncation),
    T(categories), T(nowcast),
};
TEST_MAIN(tests)
