/* jwt.c — HS256 JSON Web Tokens. */
#include "gate/jwt.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "core/jsonout.h"
#include "core/util.h"

size_t b64url_encode(const unsigned char *in, size_t n, char *out) {
  b64_encode(in, n, out);
  size_t len = 0;
  for (char *p = out; *p; p++) {
    if (*p == '=')
      break;
    out[len++] = *p == '+' ? '-' : *p == '/' ? '_' : *p;
  }
  out[len] = '\0';
  return len;
}

static int b64val(int c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

long b64url_decode(const char *in, size_t n, unsigned char *out, size_t outlen) {
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  if (n % 4 == 1)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int v = b64val((unsigned char)in[i]);
    if (v < 0)
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o == outlen)
        return -1;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  return (long)o;
}

static const char header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; /* {"alg":"HS256","typ":"JWT"} */

static void mac(const unsigned char *key, size_t keylen, const char *data, size_t n,
                unsigned char out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, n, out, &len);
}

int jwt_sign(const unsigned char *key, size_t keylen, const struct jwt_claims *c, char *out,
             size_t outlen) {
  json_t *p = json_pack("{s:s,s:s,s:s,s:I,s:I}", "sub", c->sub, "role", c->role, "sid", c->sid,
                        "iat", (json_int_t)c->iat, "exp", (json_int_t)c->exp);
  char *ps = p ? jsonout_dumps(p, JSON_COMPACT) : NULL;
  json_decref(p);
  if (!ps)
    return -1;
  size_t pl = strlen(ps);
  char body[1024];
  size_t hl = sizeof header_b64 - 1;
  if (hl + 1 + 4 * ((pl + 2) / 3) + 1 > sizeof body) {
    free(ps);
    return -1;
  }
  memcpy(body, header_b64, hl);
  body[hl] = '.';
  size_t bl = hl + 1 + b64url_encode((unsigned char *)ps, pl, body + hl + 1);
  free(ps);
  unsigned char sig[32];
  mac(key, keylen, body, bl, sig);
  char sigb[48];
  size_t sl = b64url_encode(sig, 32, sigb);
  if (bl + 1 + sl + 1 > outlen)
    return -1;
  memcpy(out, body, bl);
  out[bl] = '.';
  memcpy(out + bl + 1, sigb, sl + 1);
  return (int)(bl + 1 + sl);
}

static void copy_str(json_t *o, const char *k, char *dst, size_t n) {
  const char *v = json_string_value(json_object_get(o, k));
  snprintf(dst, n, "%s", v ? v : "");
}

enum jwt_error jwt_verify(const unsigned char *key, size_t keylen, const char *token,
                          int64_t now, struct jwt_claims *out) {
  size_t n = strlen(token);
  if (n > 2048)
    return JWT_MALFORMED;
  const char *d1 = memchr(token, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token)) : NULL;
  if (!d1 || !d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token)))
    return JWT_MALFORMED;
  unsigned char buf[1536];
  long hl = b64url_decode(token, (size_t)(d1 - token), buf, sizeof buf - 1);
  if (hl < 0)
    return JWT_MALFORMED;
  json_t *h = json_loadb((const char *)buf, (size_t)hl, 0, NULL);
  const char *alg = h ? json_string_value(json_object_get(h, "alg")) : NULL;
  bool hs256 = alg && strcmp(alg, "HS256") == 0;
  json_decref(h);
  if (!h)
    return JWT_MALFORMED;
  if (!hs256)
    return JWT_BAD_ALG;
  unsigned char want[32], got[64];
  mac(key, keylen, token, (size_t)(d2 - token), want);
  long gl = b64url_decode(d2 + 1, strlen(d2 + 1), got, sizeof got);
  if (gl != 32 || !ct_equal(want, 32, got, 32))
    return JWT_BAD_SIGNATURE;
  long pl = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof buf - 1);
  if (pl < 0)
    return JWT_MALFORMED;
  json_t *p = json_loadb((const char *)buf, (size_t)pl, 0, NULL);
  if (!p || !json_is_integer(json_object_get(p, "exp"))) {
    json_decref(p);
    return JWT_MALFORMED;
  }
  memset(out, 0, sizeof *out);
  copy_str(p, "sub", out->sub, sizeof out->sub);
  copy_str(p, "role", out->role, sizeof out->role);
  copy_str(p, "sid", out->sid, sizeof out->sid);
  out->iat = json_integer_value(json_object_get(p, "iat"));
  out->exp = json_integer_value(json_object_get(p, "exp"));
  json_decref(p);
  if (now >= out->exp)
    return JWT_EXPIRED;
  if (!out->sub[0])
    return JWT_MALFORMED;
  return JWT_OK;
}

const char *jwt_strerror(enum jwt_error e) {
  switch (e) {
  case JWT_OK: return "valid";
  case JWT_MALFORMED: return "token is malformed";
  case JWT_BAD_ALG: return "token algorithm is not accepted";
  case JWT_BAD_SIGNATURE: return "token signature is not valid";
  case JWT_EXPIRED: return "token has expired";
  }
  return "token is not valid";
}
