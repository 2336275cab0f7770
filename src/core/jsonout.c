/* jsonout.c — JSON text with reals in shortest round-trip form (see
 * jsonout.h). jansson writes the text (its escaping and key order stay
 * exactly as they are), then each real it wrote with 17 digits is
 * rewritten: a copy that only shortens numbers outside strings. */
#include "core/jsonout.h"
#include "core/real.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t jsonout_double(char out[JSONOUT_DOUBLE_MAX], double v) {
  if (!isfinite(v)) {
    memcpy(out, "null", 5);
    return 4;
  }
  return real_shortest(out, v);
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
