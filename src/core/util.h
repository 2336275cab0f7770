/* util.h — small helpers every module uses: clocks, random ids, base64,
 * SHA-1 (WebSocket handshake), percent-decoding and strings. */
#ifndef GROVE_UTIL_H
#define GROVE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

uint64_t clock_mono_ns(void);
uint64_t clock_wall_ms(void);

/* ---- times ---------------------------------------------------------------
 * A time is int64 Unix nanoseconds in [TIME_MIN_NS, TIME_MAX_NS]: InfluxDB's
 * range (models.MinNanoTime and MaxNanoTime in influxdb/models/time.go),
 * 1677-09-21T00:12:43.145224194Z to 2262-04-11T23:47:16.854775806Z. The
 * two lowest int64 values are left for "none" sentinels and INT64_MAX for
 * an exclusive end ("to" of a range reaching the last time).
 * Arithmetic on times that input can reach goes through the checked
 * helpers below (they use __builtin_*_overflow): each returns 0, or
 * GROVE_ERANGE when the exact result is not an int64 (then *out is left
 * unchanged). Pure functions: any thread. */
#define TIME_MIN_NS (INT64_MIN + 2)
#define TIME_MAX_NS (INT64_MAX - 1)
/* Is t a time (inside [TIME_MIN_NS, TIME_MAX_NS])? */
static inline bool time_valid(int64_t t) { return t >= TIME_MIN_NS && t <= TIME_MAX_NS; }
int time_add(int64_t a, int64_t b, int64_t *out);
int time_sub(int64_t a, int64_t b, int64_t *out);
int time_mul(int64_t a, int64_t b, int64_t *out);
/* a / b rounded toward minus infinity (b > 0): never overflows. */
int64_t time_floor_div(int64_t a, int64_t b);
/* t rounded down (up) to a multiple of step (step > 0): GROVE_ERANGE when
 * that multiple is not an int64. */
int time_floor(int64_t t, int64_t step, int64_t *out);
int time_ceil(int64_t t, int64_t step, int64_t *out);
/* t moved toward the range's edge it passed: TIME_MIN_NS or TIME_MAX_NS. */
static inline int64_t time_clamp(int64_t t) {
  return t < TIME_MIN_NS ? TIME_MIN_NS : t > TIME_MAX_NS ? TIME_MAX_NS : t;
}
/* RFC 3339 time ("2026-11-23T10:00:00Z": exactly these digits, 'T', 't'
 * or a space between date and time, an optional fraction of any length
 * (digits past the ninth are dropped), 'Z', 'z' or ±hh:mm; second 60, a
 * leap second, is the next minute's first, as POSIX time counts it) to
 * Unix nanoseconds. Returns 0, GROVE_EINVAL when s is not such a time
 * (February 30th is not), or GROVE_ERANGE when it is one outside
 * [TIME_MIN_NS, TIME_MAX_NS]. */
int time_parse_rfc3339(const char *s, int64_t *ns);
/* The same as a predicate: true when s is a time in the range. */
bool rfc3339_parse(const char *s, int64_t *ns);
/* Writes n-1 random lowercase hex characters and a NUL, from the
 * cryptographic generator: for secrets. */
void rand_hex(char *out, size_t n);
/* The same from a per-thread generator seeded once from the cryptographic
 * one: unique ids (request ids), not secrets. No system call. */
void id_hex(char *out, size_t n);
/* Writes v in decimal; returns the length (no NUL). out needs 20 bytes. */
size_t u64_to_dec(uint64_t v, char *out);
/* Base64 of in (standard alphabet, padded). out needs 4*((n+2)/3)+1. */
void b64_encode(const unsigned char *in, size_t n, char *out);
void sha1(const void *data, size_t n, unsigned char out[20]);
/* Decodes %XX and (when plus_is_space) '+' in place. Returns the new
 * length, or -1 on a bad escape or a decoded NUL. */
long pct_decode(char *s, size_t n, bool plus_is_space);
/* The same from n bytes of in into out (outlen bytes, NUL-ended; out may
 * be in). Returns the decoded length; -1 on a bad escape (`%zz`, a cut
 * `%4`) or a decoded NUL; -2 when the decoded text does not fit in
 * outlen-1 bytes. On error out is "" (when outlen > 0). */
long pct_decode_to(const char *in, size_t n, char *out, size_t outlen, bool plus_is_space);
/* Case-insensitive: does the comma-separated header value list contain
 * token (e.g. "gzip" in "deflate, gzip;q=1")? A token with q=0 does not
 * count. */
bool header_has_token(const char *value, const char *token);
/* Splits redis://[:password@]host[:port][/db]. Returns 0, or -1 when the
 * URL is not of that form or a part does not fit. */
int redis_url_parse(const char *url, char *host, size_t hostlen, int *port, char *password,
                    size_t pwlen);
/* Makes a folder and its missing parents. Returns 0 or -1 (errno set). */
int mkdir_p(const char *path, unsigned mode);

/* Constant-time comparison of two byte strings. */
bool ct_equal(const void *a, size_t an, const void *b, size_t bn);

#endif
