/* real.h — doubles written in their shortest round-trip form: the fewest
 * significant digits (at most 17) that strtod() reads back as the same
 * double, so 17.4 is "17.4" and not "%.17g"'s "17.399999999999999". The
 * one number formatter every text format Grove writes shares (JSON through
 * core/jsonout, the Prometheus exposition of grove-agent); it has no
 * dependency, so the agent links it without jansson.
 * Thread-safe; no state. */
#ifndef GROVE_REAL_H
#define GROVE_REAL_H

#include <stddef.h>

/* Room for any number real_shortest writes, with its NUL. */
#define REAL_SHORTEST_MAX 32

/* Writes v into out (REAL_SHORTEST_MAX bytes) and returns its length.
 * Integral values print without a fraction ("3", "-0", "1e+300"); NaN and
 * the infinities as "NaN", "+Inf" and "-Inf" (the spelling of Go's
 * strconv and the Prometheus text format; JSON writers map them first). */
size_t real_shortest(char out[REAL_SHORTEST_MAX], double v);

#endif
