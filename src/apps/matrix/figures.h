/* figures.h — how many digits matrix's model answers carry (internal to
 * src/apps/matrix/).
 *
 * The simulator's figures (latencies, throughputs, memory, energy, cost,
 * carbon) come from an analytical model whose calibration error is
 * several percent (docs/matrix.md); their 16th digit is noise. Answers of
 * simulate-performance and recommend-hardware give every real to
 * MX_FIGURE_DIGITS significant digits, which also lets core/jsonout write
 * each without printf. Thread-safe; no state. */
#ifndef GROVE_MATRIX_FIGURES_H
#define GROVE_MATRIX_FIGURES_H

#include <jansson.h>

#define MX_FIGURE_DIGITS 6

/* v to `digits` (1–15) significant digits: the double nearest that
 * decimal (round half away from zero). Zero, non-finite values and those
 * whose rounding cannot be made exactly (beyond 1e22 or below 1e-16 in
 * magnitude) come back as they are. */
double mx_round_sig(double v, int digits);

/* Every real in j (walked whole, objects and arrays) to `digits`
 * significant digits, in place. j may be NULL. */
void mx_round_figures(json_t *j, int digits);

struct http_req;
struct mx_error;

/* mx_reply (matrix.h) with the answer's figures first rounded to
 * MX_FIGURE_DIGITS: the answer of a model route. Same ownership. */
void mx_reply_figures(struct http_req *r, json_t **data, json_t **meta, struct mx_error *e);

#endif
