/* aqi.h — the US EPA Air Quality Index (Technical Assistance Document,
 * May 2024 revision: the 2024 PM2.5 breakpoints, one Hazardous category
 * for 301–500).
 *
 * A concentration is first truncated to the precision of its breakpoint
 * table (PM2.5 and CO to 0.1, PM10, SO2 and NO2 to whole numbers, ozone to
 * 0.001 ppm), then placed in its segment and interpolated linearly,
 * rounding to the nearest integer. Units: µg/m³ for PM, ppm for O3 and CO,
 * ppb for SO2 and NO2. Ozone has two tables (TAD table 5 and its
 * footnotes): 8-hour averages up to 0.200 ppm, 1-hour values from 0.125
 * ppm; when both are known the higher index counts. 8-hour values do not
 * define indexes of 301 and above, so an 8-hour value above 0.200 ppm
 * gives 300 (the top of its table) and the 1-hour table gives the rest.
 * SO2 at 305 ppb and above uses the 24-hour table. Concentrations past the
 * top of a table give 500 with `beyond` set ("Beyond the AQI").
 *
 * Invariants (tests/unit/flow): for every pollutant the index never falls
 * as the concentration rises, and a result's category is always
 * aqi_category_of(its index). Pure functions; thread-safe. */
#ifndef GROVE_AQI_H
#define GROVE_AQI_H

#include <stdbool.h>
#include <stddef.h>

enum aqi_pollutant { AQI_PM25, AQI_PM10, AQI_O3_8H, AQI_O3_1H, AQI_CO, AQI_SO2, AQI_NO2,
                     AQI_NPOLLUTANTS };

enum aqi_category { AQI_GOOD, AQI_MODERATE, AQI_USG, AQI_UNHEALTHY, AQI_VERY_UNHEALTHY,
                    AQI_HAZARDOUS };

struct aqi_result {
  int index;            /* 0..500; -1 when the concentration has no index */
  bool beyond;          /* above the table: "Beyond the AQI" */
  enum aqi_category category;
};

/* The index of one pollutant. Negative or NaN concentrations, and 1-hour
 * ozone below 0.125 ppm, give index -1. */
struct aqi_result aqi_of(enum aqi_pollutant p, double concentration);

/* The index of an ozone average (ppm) whose length is neither known to be
 * 8 hours nor 1 hour (a rolling window): the higher of the two tables, as
 * the TAD does where both are calculated. Never falls as ppm rises. */
struct aqi_result aqi_ozone(double ppm);

/* Overall AQI of several readings: the highest index, and which pollutant
 * set it. conc[p] is NaN for pollutants not measured. OUT: *dominant
 * (may be NULL). Returns index -1 when nothing was measured. */
struct aqi_result aqi_overall(const double conc[AQI_NPOLLUTANTS], enum aqi_pollutant *dominant);

enum aqi_category aqi_category_of(int index);
const char *aqi_category_name(enum aqi_category c);   /* "Unhealthy for Sensitive Groups" */
const char *aqi_category_color(enum aqi_category c);  /* "#FF7E00" */
const char *aqi_pollutant_name(enum aqi_pollutant p); /* "pm25", "o3_8h", … */
/* Truncates a concentration to its table's precision. */
double aqi_truncate(enum aqi_pollutant p, double c);

/* EPA NowCast for PM2.5 or PM10: hourly averages, most recent first
 * (hourly[0] is the last hour), NaN for missing hours, up to 12. Needs 2 of
 * the 3 most recent hours; returns NaN otherwise. The weight factor is the
 * range's min/max, at least 0.5. */
double aqi_nowcast(enum aqi_pollutant p, const double *hourly, size_t n);

#endif
