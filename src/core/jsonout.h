/* jsonout.h — how Grove writes JSON text: one writer for every answer,
 * live message and stored document, so that numbers read the same
 * everywhere.
 *
 * Reals are written in their shortest round-trip form: the fewest
 * significant digits (at most 17) that strtod() reads back as the same
 * double, so 17.4 is "17.4" and not jansson's default "%.17g"
 * "17.399999999999999". Jansson 2.14 (Debian 12) has no such mode: its
 * JSON_REAL_PRECISION(n) only fixes the digit count, which either loses
 * bits (n < 17) or prints noise (n = 17). A real keeps a '.' or exponent
 * ("1.0", not "1") so it reads back as a real. NaN and infinities, which
 * JSON cannot hold, are written as null (jansson refuses to make them).
 * Thread-safe; no state. */
#ifndef GROVE_JSONOUT_H
#define GROVE_JSONOUT_H

#include <jansson.h>
#include <stddef.h>

/* Room for any number jsonout_double writes, with its NUL. */
#define JSONOUT_DOUBLE_MAX 32 /* = REAL_SHORTEST_MAX (core/real.h) */

/* Writes v in shortest round-trip form into out (JSONOUT_DOUBLE_MAX bytes)
 * and returns its length. Integral values print without a fraction
 * ("3", "-0", "1e+300") — callers that need a real's ".0" use
 * jsonout_dumps. */
size_t jsonout_double(char out[JSONOUT_DOUBLE_MAX], double v);

/* json_dumps(j, flags) with every real in shortest round-trip form. Any
 * JSON_REAL_PRECISION in flags is ignored. Compact text (JSON_COMPACT,
 * with or without JSON_ENCODE_ANY: every answer and message) is written
 * here directly, keys in insertion order and strings escaped as jansson
 * escapes them, with no printf or strtod per real; other flags go through
 * json_dumps with its reals rewritten. Returns a string the caller frees
 * with free(), or NULL on allocation failure (or when jansson would refuse
 * j: a string that is not UTF-8, a root that is not an object or array
 * without JSON_ENCODE_ANY). */
char *jsonout_dumps(const json_t *j, size_t flags);

#endif
