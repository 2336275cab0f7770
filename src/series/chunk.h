/* chunk.h — compressed chunks of one series' points (series-internal).
 *
 * A chunk holds up to CHUNK_MAX points sorted by time, one value each.
 * Timestamps are stored in the coarsest unit that divides them all (s, ms,
 * us or ns) as delta-of-deltas in variable-length bit fields, so a regular
 * interval costs one bit a point. Values are stored, when every one of
 * them is a decimal with at most 6 places (12.5, 41, 0.035), as scaled
 * integers whose successive differences take a few bits; otherwise as the
 * XOR of successive doubles (Gorilla). Decoding gives back the exact
 * doubles and timestamps. Decoding checks every length: hostile bytes give
 * an error, never a read past the end. */
#ifndef GROVE_CHUNK_H
#define GROVE_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "series/series.h" /* struct series_sample */

#define CHUNK_MAX 4096

/* Appends the encoding of n points (sorted by ts, n <= CHUNK_MAX) to out.
 * Returns 0, GROVE_EINVAL (unsorted or too many) or GROVE_ENOMEM. */
int chunk_encode(const struct series_sample *pts, size_t n, struct buf *out);
/* Decodes a chunk into pts (room for CHUNK_MAX). OUT: *n. Returns 0 or
 * GROVE_EINVAL for bytes that are not a chunk. */
int chunk_decode(const void *data, size_t len, struct series_sample *pts, size_t *n);

#endif
