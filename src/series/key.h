/* key.h — series keys: the one codec every reader and writer of a series
 * key uses (ingest, the series routes, flow's station lookups, both
 * stores' migrations).
 *
 * A series is a measurement, a set of tags and one field. Its key is a
 * string in line protocol's own escaping, made unambiguous:
 *
 *   measurement[,tagkey=tagvalue…] fieldkey
 *
 * - tags sorted by key (bytewise, a shorter key first when one is a
 *   prefix of the other), so the order a writer lists them in does not
 *   matter; tag keys are unique;
 * - in the measurement, '\\', ',' and ' ' are written with a backslash
 *   before them; in tag keys, tag values and the field key, '\\', ',',
 *   '=' and ' ' are; nothing else is escaped (newlines, quotes and
 *   non-ASCII bytes are kept as they are);
 * - every part is non-empty and holds no NUL byte.
 *
 * Because the backslash itself is always escaped, every key decodes to
 * exactly one (measurement, tags, field) and every such triple encodes to
 * exactly one key: `collide\,a=x v` (measurement "collide,a=x") and
 * `collide,a=x v` (tag a=x) are different series.
 *
 * Keys written before this format (format 0: the parts joined without
 * escaping) are converted once when a store opens; see
 * series_key_from_legacy. No allocation except into the caller's buf;
 * no state: thread-safe. */
#ifndef GROVE_SERIES_KEY_H
#define GROVE_SERIES_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "series/lineproto.h"

/* Longest key a store keeps, in bytes (a format-0 key of 1 KiB escapes
 * to at most twice that). */
#define SERIES_KEY_MAX 4096
#define SERIES_KEY_MAX_TAGS LP_MAX_TAGS

/* The parts of a key, unescaped. Tags in any order for encoding; sorted
 * after decoding. */
struct series_key {
  struct lp_str measurement, field;
  struct lp_str tag_keys[SERIES_KEY_MAX_TAGS], tag_values[SERIES_KEY_MAX_TAGS];
  int ntags;
};

/* Appends "measurement,tags " (the part shared by every field of a line,
 * ending with the space) to out. Returns 0; GROVE_EINVAL for an empty
 * part, a NUL byte or a tag key given twice; GROVE_ETOOBIG past out's
 * maximum; GROVE_ENOMEM. On error out may hold part of the key. */
int series_key_put_series(struct buf *out, const struct series_key *k);

/* Appends an escaped field key to a series part made by
 * series_key_put_series. Errors as there. */
int series_key_put_field(struct buf *out, const char *field, size_t n);

/* Resets out and writes the whole key of k. Errors as above, and
 * GROVE_ETOOBIG for a key over SERIES_KEY_MAX. */
int series_key_encode(struct buf *out, const struct series_key *k);

/* Reads a key made by series_key_encode (strictly: a key in any other
 * form is GROVE_EINVAL). `scratch` needs len bytes and holds the unescaped
 * parts, which *out points into. */
int series_key_decode(const char *key, size_t len, char *scratch, struct series_key *out);

/* The value of tag `name` in a decoded key, or NULL. */
const struct lp_str *series_key_tag(const struct series_key *k, const char *name);

/* Converts a format-0 key (measurement, ",k=v" per tag and " field"
 * joined without escaping) to this format. Such a key may be read several
 * ways; it is read as: the field after the last space; the measurement up
 * to the first comma; tags split at commas and each at its first '=', a
 * piece with no '=' inside it (or none before its end) belonging to the
 * previous part. A key that cannot be read so (no space, an empty part,
 * a tag twice) becomes the measurement "<the whole old key>" with the
 * field "legacy key". Distinct old keys always give distinct keys; one
 * written with no ',', '=', ' ' or '\\' inside its parts stays as it
 * was. Resets out. GROVE_ENOMEM or GROVE_ETOOBIG on error. */
int series_key_from_legacy(struct buf *out, const char *old, size_t len);

#endif
