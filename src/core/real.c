/* real.c — shortest round-trip doubles (see real.h). */
#include "core/real.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes u (< 10^15) / 10^k in fixed notation, without trailing zeros
 * after the point. */
static size_t put_decimal(char *out, bool neg, uint64_t u, int k) {
  char d[24];
  int n = 0;
  do { /* the digits, last first */
    d[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  while (n <= k) /* at least one digit before the point */
    d[n++] = '0';
  int low = 0; /* fraction digits that are zeros at the end are dropped */
  while (low < k && d[low] == '0')
    low++;
  size_t w = 0;
  if (neg)
    out[w++] = '-';
  for (int i = n - 1; i >= k; i--)
    out[w++] = d[i];
  if (low < k) {
    out[w++] = '.';
    for (int i = k - 1; i >= low; i--)
      out[w++] = d[i];
  }
  out[w] = '\0';
  return w;
}

/* The common case without printf: v is m / 10^k for an integer m below
 * 10^15 and k <= 9 (readings with a few decimals), the quotient reading
 * back as v. The division of two exact doubles is correctly rounded, as
 * strtod is, so it tells whether the decimal reads back; one of 15 digits
 * or fewer that reads back is the only one (two would be closer than 15
 * digits allow), and it is what %.15g writes, in fixed notation for
 * magnitudes from 1e-4 to below 1e15. Returns 0 where this does not hold
 * (the caller prints). */
static size_t shortest_fast(char *out, double v) {
  static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
  double a = fabs(v);
  if (!(a >= 1e-4 && a < 1e15))
    return 0;
  for (int k = 0; k < (int)(sizeof p10 / sizeof *p10); k++) {
    double m = a * p10[k];
    if (m >= 1e15)
      return 0;
    if (m == (double)(uint64_t)m && m / p10[k] == a)
      return put_decimal(out, v < 0, (uint64_t)m, k);
  }
  return 0;
}

/* %.15g round-trips whenever one of 15 digits or fewer exists; 17 always
 * round-trips (IEEE 754-2008 §5.12.2). Subnormals are searched from one
 * digit up. */
size_t real_shortest(char out[REAL_SHORTEST_MAX], double v) {
  size_t fast = shortest_fast(out, v);
  if (fast)
    return fast;
  if (isnan(v)) {
    memcpy(out, "NaN", 4);
    return 3;
  }
  if (isinf(v)) {
    memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
    return 4;
  }
  int n = 0;
  /* subnormals carry fewer than 53 bits: their shortest form may be
   * shorter than 15 digits without %.15g showing it (5e-324) */
  int first = v != 0 && fabs(v) < DBL_MIN ? 1 : 15;
  for (int prec = first; prec <= 17; prec++) {
    n = snprintf(out, REAL_SHORTEST_MAX, "%.*g", prec, v);
    if (prec == 17 || strtod(out, NULL) == v)
      break;
  }
  return (size_t)n;
}
