/* figures.c — significant digits of matrix's model answers (figures.h). */
#include "apps/matrix/figures.h"

#include <math.h>

#include "apps/matrix/matrix.h"

/* Exact powers of ten as doubles: 10^0 … 10^22 (10^22 < 2^53 · 2^22). */
static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                             1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                             1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

double mx_round_sig(double v, int digits) {
  if (v == 0 || !isfinite(v) || digits < 1 || digits > 15)
    return v;
  double a = fabs(v);
  if (a >= 1e22 || a < 1e-16)
    return v;
  int e = (int)floor(log10(a)); /* a is d.ddd × 10^e */
  int k = digits - 1 - e;       /* decimals to keep */
  double r;
  if (k >= 0) {
    if (k > 22)
      return v;
    /* an integer of `digits` digits over an exact power of ten: the
     * quotient of two exact doubles is the nearest double to the decimal */
    r = round(a * p10[k]) / p10[k];
  } else {
    r = round(a / p10[-k]) * p10[-k]; /* exact: below 2^53 */
  }
  return v < 0 ? -r : r;
}

void mx_round_figures(json_t *j, int digits) {
  if (json_is_real(j)) {
    json_real_set(j, mx_round_sig(json_real_value(j), digits));
  } else if (json_is_array(j)) {
    for (size_t i = 0, n = json_array_size(j); i < n; i++)
      mx_round_figures(json_array_get(j, i), digits);
  } else if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) mx_round_figures(v, digits);
  }
}

void mx_reply_figures(struct http_req *r, json_t **data, json_t **meta, struct mx_error *e) {
  if (r->conn && *data) mx_round_figures(*data, MX_FIGURE_DIGITS);
  mx_reply(r, data, meta, e);
}
