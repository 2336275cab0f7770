/* aqi.c — EPA AQI breakpoints, truncation and NowCast. */
#include "apps/flow/aqi.h"

#include <math.h>

struct segment {
  double clo, chi;
  int ilo, ihi;
};

/* Each table ends with a zero segment. */
static const struct segment pm25[] = {
    {0.0, 9.0, 0, 50},       {9.1, 35.4, 51, 100},    {35.5, 55.4, 101, 150},
    {55.5, 125.4, 151, 200}, {125.5, 225.4, 201, 300}, {225.5, 325.4, 301, 500}, {0, 0, 0, 0}};
static const struct segment pm10[] = {
    {0, 54, 0, 50},      {55, 154, 51, 100},  {155, 254, 101, 150},
    {255, 354, 151, 200}, {355, 424, 201, 300}, {425, 604, 301, 500}, {0, 0, 0, 0}};
static const struct segment o3_8h[] = {
    {0.000, 0.054, 0, 50},    {0.055, 0.070, 51, 100},  {0.071, 0.085, 101, 150},
    {0.086, 0.105, 151, 200}, {0.106, 0.200, 201, 300}, {0, 0, 0, 0}};
static const struct segment o3_1h[] = {
    {0.125, 0.164, 101, 150}, {0.165, 0.204, 151, 200}, {0.205, 0.404, 201, 300},
    {0.405, 0.604, 301, 500}, {0, 0, 0, 0}};
static const struct segment co[] = {
    {0.0, 4.4, 0, 50},      {4.5, 9.4, 51, 100},    {9.5, 12.4, 101, 150},
    {12.5, 15.4, 151, 200}, {15.5, 30.4, 201, 300}, {30.5, 50.4, 301, 500}, {0, 0, 0, 0}};
static const struct segment so2[] = {
    {0, 35, 0, 50},       {36, 75, 51, 100},    {76, 185, 101, 150},
    {186, 304, 151, 200}, {305, 604, 201, 300}, {605, 1004, 301, 500}, {0, 0, 0, 0}};
static const struct segment no2[] = {
    {0, 53, 0, 50},        {54, 100, 51, 100},     {101, 360, 101, 150},
    {361, 649, 151, 200},  {650, 1249, 201, 300},  {1250, 2049, 301, 500}, {0, 0, 0, 0}};

static const struct segment *const tables[AQI_NPOLLUTANTS] = {pm25, pm10, o3_8h, o3_1h,
                                                              co,   so2,  no2};
/* decimal places kept by truncation */
static const int places[AQI_NPOLLUTANTS] = {1, 0, 3, 3, 1, 0, 0};

double aqi_truncate(enum aqi_pollutant p, double c) {
  double scale = pow(10, places[p]);
  /* a tiny nudge so that 0.07 stored as 0.06999… truncates to 0.070 */
  return floor(c * scale + 1e-9) / scale;
}

enum aqi_category aqi_category_of(int i) {
  return i <= 50 ? AQI_GOOD : i <= 100 ? AQI_MODERATE : i <= 150 ? AQI_USG
       : i <= 200 ? AQI_UNHEALTHY : i <= 300 ? AQI_VERY_UNHEALTHY : AQI_HAZARDOUS;
}

struct aqi_result aqi_of(enum aqi_pollutant p, double c) {
  struct aqi_result r = {-1, false, AQI_GOOD};
  if ((unsigned)p >= AQI_NPOLLUTANTS || isnan(c) || c < 0)
    return r;
  double t = aqi_truncate(p, c);
  const struct segment *s = tables[p];
  if (t < s[0].clo)
    return r; /* only 1-hour ozone starts above zero */
  const struct segment *last = s;
  for (; s->ihi; s++) {
    last = s;
    if (t <= s->chi + 1e-9) {
      double i = (double)(s->ihi - s->ilo) / (s->chi - s->clo) * (t - s->clo) + s->ilo;
      r.index = (int)floor(i + 0.5);
      if (r.index < s->ilo) /* a value inside a truncation gap */
        r.index = s->ilo;
      r.category = aqi_category_of(r.index);
      return r;
    }
  }
  if (p == AQI_O3_8H) {
    /* TAD table 5, footnote 2: 8-hour values do not define indexes of 301
     * and above (those come from 1-hour values). Above 0.200 ppm the
     * 8-hour index stays at its table's top, 300, so that it never falls
     * as the concentration rises; aqi_ozone() takes the 1-hour table too. */
    r.index = last->ihi;
    r.category = aqi_category_of(r.index);
    return r;
  }
  r.index = last->ihi;
  r.beyond = true;
  r.category = AQI_HAZARDOUS;
  return r;
}

struct aqi_result aqi_ozone(double ppm) {
  struct aqi_result a = aqi_of(AQI_O3_8H, ppm), b = aqi_of(AQI_O3_1H, ppm);
  return b.index > a.index ? b : a;
}

struct aqi_result aqi_overall(const double conc[AQI_NPOLLUTANTS], enum aqi_pollutant *dominant) {
  struct aqi_result best = {-1, false, AQI_GOOD};
  for (int p = 0; p < AQI_NPOLLUTANTS; p++) {
    struct aqi_result r = aqi_of((enum aqi_pollutant)p, conc[p]);
    if (r.index > best.index) {
      best = r;
      if (dominant)
        *dominant = (enum aqi_pollutant)p;
    }
  }
  return best;
}

const char *aqi_category_name(enum aqi_category c) {
  static const char *const names[] = {"Good", "Moderate", "Unhealthy for Sensitive Groups",
                                      "Unhealthy", "Very Unhealthy", "Hazardous"};
  return (unsigned)c <= AQI_HAZARDOUS ? names[c] : "Unknown";
}

const char *aqi_category_color(enum aqi_category c) {
  static const char *const colors[] = {"#00E400", "#FFFF00", "#FF7E00",
                                       "#FF0000", "#8F3F97", "#7E0023"};
  return (unsigned)c <= AQI_HAZARDOUS ? colors[c] : "#999999";
}

const char *aqi_pollutant_name(enum aqi_pollutant p) {
  static const char *const names[] = {"pm25", "pm10", "o3_8h", "o3_1h", "co", "so2", "no2"};
  return (unsigned)p < AQI_NPOLLUTANTS ? names[p] : "unknown";
}

double aqi_nowcast(enum aqi_pollutant p, const double *hourly, size_t n) {
  if (n > 12)
    n = 12;
  int recent = 0;
  for (size_t i = 0; i < n && i < 3; i++)
    recent += !isnan(hourly[i]);
  if (recent < 2)
    return NAN;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++)
    if (!isnan(hourly[i])) {
      lo = fmin(lo, hourly[i]);
      hi = fmax(hi, hourly[i]);
    }
  double w = hi > 0 ? lo / hi : 1;
  if (w < 0.5)
    w = 0.5;
  double num = 0, den = 0, wi = 1;
  for (size_t i = 0; i < n; i++, wi *= w)
    if (!isnan(hourly[i])) {
      num += wi * hourly[i];
      den += wi;
    }
  return aqi_truncate(p, num / den);
}
