/* jsonout.c — JSON text with reals in shortest round-trip form (see
 * jsonout.h). jansson writes the text (its escaping and key order stay
 * exactly as they are), then each real it wrote with 17 digits is
 * rewritten: a copy that only shortens numbers outside strings. */
#include "core/jsonout.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shortest of %.15g, %.16g, %.17g that reads back as v. A normal
 * double has 53 bits (more than 15.9 decimal digits), so when a decimal of
 * k <= 15 digits reads back as v, rounding v to 15 digits gives that
 * decimal followed by zeros, which %g drops: 15 gives the shortest form
 * whenever one of 15 digits or fewer exists; 17 always round-trips
 * (IEEE 754-2008 §5.12.2). Subnormals are searched from one digit up. */
size_t jsonout_double(char out[JSONOUT_DOUBLE_MAX], double v) {
  if (!isfinite(v)) {
    memcpy(out, "null", 5);
    return 4;
  }
  int n = 0;
  /* subnormals carry fewer than 53 bits: their shortest form may be
   * shorter than 15 digits without %.15g showing it (5e-324) */
  int first = v != 0 && fabs(v) < DBL_MIN ? 1 : 15;
  for (int prec = first; prec <= 17; prec++) {
    n = snprintf(out, JSONOUT_DOUBLE_MAX, "%.*g", prec, v);
    if (prec == 17 || strtod(out, NULL) == v)
      break;
  }
  return (size_t)n;
}

/* A number token of jansson's output that is a real: it has a fraction
 * or an exponent (jansson adds ".0" to integral reals). */
static int is_real(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
      return 1;
  return 0;
}

char *jsonout_dumps(const json_t *j, size_t flags) {
  char *text = json_dumps(j, flags & ~(size_t)JSON_REAL_PRECISION(31));
  if (!text)
    return NULL;
  /* shortening never makes the text longer: rewrite it in place */
  char *r = text, *w = text;
  while (*r) {
    char c = *r;
    if (c == '"') { /* copy a string whole, escapes included */
      *w++ = *r++;
      while (*r && *r != '"') {
        if (*r == '\\' && r[1])
          *w++ = *r++;
        *w++ = *r++;
      }
      if (*r)
        *w++ = *r++;
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t n = strspn(r, "-+.0123456789eE");
      if (is_real(r, n)) {
        char num[JSONOUT_DOUBLE_MAX];
        size_t len = jsonout_double(num, strtod(r, NULL));
        if (!strpbrk(num, ".eEn")) /* keep it a real: 17 -> 17.0 */
          memcpy(num + len, ".0", 3), len += 2;
        if (len <= n) {
          memcpy(w, num, len);
          w += len;
          r += n;
          continue;
        }
      }
      memmove(w, r, n);
      w += n;
      r += n;
      continue;
    }
    *w++ = *r++;
  }
  *w = '\0';
  return text;
}
