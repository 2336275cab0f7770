/* test_figures.c — significant digits of matrix's model answers
 * (figures.h): mx_round_sig against printf's %.6g over many magnitudes,
 * and the walk over an answer. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "apps/matrix/figures.h"
#include "core/jsonout.h"
#include "core/real.h"

TEST(round_sig_is_printfs_rounding) {
  static const struct { double v; const char *text; } cases[] = {
      {1.0 / 3, "0.333333"},         {2.0 / 3 * 1e-3, "0.000666667"},
      {123456789, "123457000"},      {-2.5e-7, "-2.5e-07"},
      {1013.25, "1013.25"},          {0.1 + 0.2, "0.3"},
      {999999.5, "1000000"},         {7.0 / 9 * 1e12, "777778000000"},
  };
  char out[REAL_SHORTEST_MAX];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    real_shortest(out, mx_round_sig(cases[i].v, 6));
    CHECK_EQ_STR(out, cases[i].text);
  }
  CHECK(mx_round_sig(0, 6) == 0);
  CHECK(isnan(mx_round_sig(NAN, 6)));
  CHECK(mx_round_sig(1e300, 6) == 1e300); /* beyond exact powers: as it is */
  CHECK(mx_round_sig(1.0 / 3, 16) == 1.0 / 3);
  /* log-uniform magnitudes from 1e-12 to 1e20: printf's %.6g but for
   * halves (away from zero here, to even on the exact binary there) */
  uint64_t x = 0x2545f4914f6cdd1dull;
  for (int i = 0; i < 100000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double v = pow(10, -12 + (double)(x % 32000000) / 1e6) * ((x >> 40) & 1 ? -1 : 1);
    double r = mx_round_sig(v, 6);
    char g[40];
    snprintf(g, sizeof g, "%.6g", v);
    double want = strtod(g, NULL);
    if (r != want) {
      double unit = pow(10, floor(log10(fabs(v))) - 5);
      CHECK(fabs(fabs(v) - (fabs(r) + fabs(want)) / 2) < unit * 1e-6); /* a half */
    }
  }
}

TEST(round_figures_walks_the_answer) {
  json_t *a = json_pack("{s:f,s:[f,{s:f}],s:i,s:s}", "latency_ms", 12.345678901, "list", 1.0 / 7,
                        "deep", 2e-3 / 3, "count", 7, "name", "H100");
  mx_round_figures(a, MX_FIGURE_DIGITS);
  char *text = jsonout_dumps(a, JSON_COMPACT);
  CHECK_EQ_STR(text, "{\"latency_ms\":12.3457,\"list\":[0.142857,{\"deep\":0.000666667}],"
                     "\"count\":7,\"name\":\"H100\"}");
  free(text);
  json_decref(a);
  mx_round_figures(NULL, 6);
}

static const struct test tests[] = {
    T(round_sig_is_printfs_rounding),
    T(round_figures_walks_the_answer),
};
TEST_MAIN(tests)
