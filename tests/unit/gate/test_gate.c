/* test_gate.c — tokens and scopes without a server (flows over HTTP are
 * in tests/e2e/test_gate.py). */
#include "../test.h"
#include "gate/gate.h"
#include "gate/jwt.h"
#include "gate/ratelimit.h"

static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";

static struct jwt_claims claims(int64_t now) {
  struct jwt_claims c = {.iat = now, .exp = now + 60};
  strcpy(c.sub, "usr_1");
  strcpy(c.role, "member");
  strcpy(c.sid, "ses_1");
  return c;
}

TEST(jwt_round_trip) {
  struct jwt_claims c = claims(1000), got;
  char tok[1024];
  CHECK(jwt_sign(key, sizeof key, &c, tok, sizeof tok) > 0);
  CHECK(strncmp(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0);
  CHECK_EQ_INT(jwt_verify(key, sizeof key, tok, 1010, &got), JWT_OK);
  CHECK_EQ_STR(got.sub, "usr_1");
  CHECK_EQ_STR(got.role, "member");
  CHECK_EQ_STR(got.sid, "ses_1");
  CHECK_EQ_INT(got.exp, 1060);
  CHECK(jwt_sign(key, sizeof key, &c, tok, 20) < 0); /* too small */
}

TEST(jwt_refuses_expired_wrong_key_and_tampering) {
  struct jwt_claims c = claims(1000), got;
  char tok[1024];
  jwt_sign(key, sizeof key, &c, tok, sizeof tok);
  CHECK_EQ_INT(jwt_verify(key, sizeof key, tok, 1060, &got), JWT_EXPIRED);
  unsigned char other[32] = {1};
  CHECK_EQ_INT(jwt_verify(other, sizeof other, tok, 1010, &got), JWT_BAD_SIGNATURE);
  /* flip one character of the payload */
  char *dot = strchr(tok, '.');
  dot[5] = dot[5] == 'A' ? 'B' : 'A';
  CHECK_EQ_INT(jwt_verify(key, sizeof key, tok, 1010, &got), JWT_BAD_SIGNATURE);
  CHECK_EQ_INT(jwt_verify(key, sizeof key, "a.b", 1010, &got), JWT_MALFORMED);
  CHECK_EQ_INT(jwt_verify(key, sizeof key, "a.b.c.d", 1010, &got), JWT_MALFORMED);
  CHECK_EQ_INT(jwt_verify(key, sizeof key, "!!.b.c", 1010, &got), JWT_MALFORMED);
}

TEST(jwt_refuses_alg_none) {
  /* {"alg":"none","typ":"JWT"} . {"sub":"usr_1","role":"admin","exp":9999999999} . "" */
  const char *none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
                     "eyJzdWIiOiJ1c3JfMSIsInJvbGUiOiJhZG1pbiIsImV4cCI6OTk5OTk5OTk5OX0.";
  struct jwt_claims got;
  CHECK_EQ_INT(jwt_verify(key, sizeof key, none, 1010, &got), JWT_BAD_ALG);
}

TEST(base64url) {
  char out[16];
  CHECK_EQ_INT(b64url_encode((const unsigned char *)"\xfb\xff", 2, out), 3);
  CHECK_EQ_STR(out, "-_8");
  unsigned char back[4];
  CHECK_EQ_INT(b64url_decode("-_8", 3, back, sizeof back), 2);
  CHECK(back[0] == 0xfb && back[1] == 0xff);
  CHECK_EQ_INT(b64url_decode("a", 1, back, sizeof back), -1);
  CHECK_EQ_INT(b64url_decode("a+b/", 4, back, sizeof back), -1);
}

TEST(scopes_parse_and_format) {
  CHECK_EQ_INT(gate_scopes_parse("read"), GATE_READ);
  CHECK_EQ_INT(gate_scopes_parse("write, admin"), GATE_WRITE | GATE_ADMIN);
  CHECK_EQ_INT(gate_scopes_parse("read,root"), 0);
  char s[32];
  gate_scopes_format(GATE_READ | GATE_ADMIN, s, sizeof s);
  CHECK_EQ_STR(s, "read,admin");
  gate_scopes_format(GATE_READ | GATE_WRITE | GATE_ADMIN, s, sizeof s);
  CHECK_EQ_STR(s, "read,write,admin");
  gate_scopes_format(GATE_WRITE, s, sizeof s);
  CHECK_EQ_STR(s, "write");
}

TEST(buckets_allow_burst_then_rate) {
  struct rate r;
  CHECK(rate_parse("10/s", &r) == 0);
  CHECK(r.per_s == 10 && r.burst == 10 && r.window_s == 1);
  struct limiter *l;
  CHECK(limiter_create(&l) == 0);
  struct fast_bucket fb = {0};
  struct limit_result res, fres;
  uint64_t t = 1000000000ULL;
  for (int i = 0; i < 10; i++) {
    limiter_take(l, "k", &r, t, &res);
    fast_bucket_take(&fb, &r, t, &fres);
    CHECK(res.allowed && fres.allowed);
    CHECK_EQ_INT(res.remaining, 9 - i);
    CHECK_EQ_INT(fres.remaining, 9 - i);
  }
  limiter_take(l, "k", &r, t, &res);
  fast_bucket_take(&fb, &r, t, &fres);
  CHECK(!res.allowed && !fres.allowed);
  CHECK_EQ_INT(res.retry_after_s, 1);
  CHECK_EQ_INT(fres.retry_after_s, 1);
  /* 100 ms later one token is back in both */
  t += 100000000ULL;
  limiter_take(l, "k", &r, t, &res);
  fast_bucket_take(&fb, &r, t, &fres);
  CHECK(res.allowed && fres.allowed);
  limiter_take(l, "other", &r, t, &res);
  CHECK(res.allowed && res.remaining == 9);
  /* a full bucket is swept, a used one stays */
  CHECK_EQ_INT(limiter_sweep(l, t + 2000000000ULL), 0);
  limiter_take(l, "k", &r, t, &res);
  CHECK_EQ_INT(limiter_sweep(l, t), 1);
  limiter_destroy(l);
  CHECK(rate_parse("50/m", &r) == 0 && r.window_s == 60 && r.quota == 50);
  CHECK(rate_parse("0", &r) == 0 && r.per_s == 0);
  CHECK(rate_parse("5/d", &r) != 0 && rate_parse("x/s", &r) != 0 && rate_parse("-1/s", &r) != 0);
}

static const struct test tests[] = {
    T(buckets_allow_burst_then_rate),
    T(jwt_round_trip), T(jwt_refuses_expired_wrong_key_and_tampering), T(jwt_refuses_alg_none),
    T(base64url), T(scopes_parse_and_format),
};
TEST_MAIN(tests)
