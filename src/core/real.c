/* real.c — shortest round-trip doubles (see real.h). */
#include "core/real.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* %.15g round-trips whenever one of 15 digits or fewer exists; 17 always
 * round-trips (IEEE 754-2008 §5.12.2). Subnormals are searched from one
 * digit up. */
size_t real_shortest(char out[REAL_SHORTEST_MAX], double v) {
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
