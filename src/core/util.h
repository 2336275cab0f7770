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
/* RFC 3339 time ("2026-11-23T10:00:00Z", optional fraction, Z or ±hh:mm)
 * to Unix nanoseconds. */
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

/* "http://host[:port][/prefix]" into its parts (port "80" when absent,
 * prefix without a trailing slash, maybe ""). Returns 0 or GROVE_EINVAL. */
int http_url_parse(const char *url, char host[256], char port[8], char prefix[128]);
/* A blocking TCP connection with send and receive timeouts (0: none).
 * Returns the fd, or -1 with err saying why. */
int tcp_dial(const char *host, const char *port, uint64_t timeout_ms, char *err, size_t errlen);
/* Writes all n bytes (no SIGPIPE). Returns 0 or -1. */
int send_all(int fd, const void *p, size_t n);
/* Constant-time comparison of two byte strings. */
bool ct_equal(const void *a, size_t an, const void *b, size_t bn);

#endif
