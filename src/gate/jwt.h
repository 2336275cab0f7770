/* jwt.h — JSON Web Tokens signed with HMAC-SHA256 (gate-internal).
 *
 * Only "HS256" is accepted: a token naming another algorithm ("none"
 * included) fails, whatever its signature. Signatures are compared in
 * constant time. */
#ifndef GROVE_JWT_H
#define GROVE_JWT_H

#include <stddef.h>
#include <stdint.h>

struct jwt_claims {
  char sub[40];   /* user id */
  char role[16];  /* admin | member */
  char sid[40];   /* session (refresh family) id */
  int64_t iat, exp; /* seconds since the epoch */
};

enum jwt_error {
  JWT_OK = 0,
  JWT_MALFORMED = -1,
  JWT_BAD_ALG = -2,
  JWT_BAD_SIGNATURE = -3,
  JWT_EXPIRED = -4,
};

/* Writes the token into out (NUL-terminated). Returns its length or -1
 * when out is too small. */
int jwt_sign(const unsigned char *key, size_t keylen, const struct jwt_claims *c, char *out,
             size_t outlen);
/* Checks the token at time `now`; fills *out on success. */
enum jwt_error jwt_verify(const unsigned char *key, size_t keylen, const char *token,
                          int64_t now, struct jwt_claims *out);
const char *jwt_strerror(enum jwt_error e);

/* base64url without padding; returns the length written (out needs
 * 4*((n+2)/3)+1), or for decode the bytes decoded or -1. */
size_t b64url_encode(const unsigned char *in, size_t n, char *out);
long b64url_decode(const char *in, size_t n, unsigned char *out, size_t outlen);

#endif
