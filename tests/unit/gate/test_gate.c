/* test_gate.c — tokens and scopes without a server (flows over HTTP are
 * in tests/e2e/test_gate.py). */
#include "../test.h"
#include "core/error.h"
#include "gate/gate.h"
#include "gate/jwt.h"
#include "gate/proxy.h"
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

static void prepared_as(const char *in, const char *want) {
  char out[256], why[200];
  int rc = gate_email_prepare(in, out, sizeof out, why, sizeof why);
  if (rc)
    fprintf(stderr, "'%s' refused: %s\n", in, why);
  CHECK(rc == 0);
  CHECK_EQ_STR(out, want);
}

static void refused(const char *in, const char *why_has) {
  char out[256], why[200], skel[1024];
  int rc = gate_email_prepare(in, out, sizeof out, why, sizeof why);
  if (!rc)
    rc = gate_email_skeleton(out, skel, sizeof skel, why, sizeof why);
  CHECK_EQ_INT(rc, GROVE_EINVAL);
  CHECK(strstr(why, why_has));
}

static void looks_like(const char *a, const char *b) {
  char pa[256], pb[256], sa[1024], sb[1024], why[200];
  CHECK(gate_email_prepare(a, pa, sizeof pa, why, sizeof why) == 0);
  CHECK(gate_email_prepare(b, pb, sizeof pb, why, sizeof why) == 0);
  CHECK(gate_email_skeleton(pa, sa, sizeof sa, why, sizeof why) == 0);
  CHECK(gate_email_skeleton(pb, sb, sizeof sb, why, sizeof why) == 0);
  CHECK_EQ_STR(sa, sb);
}

TEST(emails_fold_case_width_and_normalisation_form) {
  prepared_as("\xc3\x89LODIE@example.com", "\xc3\xa9lodie@example.com");     /* ÉLODIE */
  prepared_as("e\xcc\x81lodie@example.com", "\xc3\xa9lodie@example.com");     /* NFD é */
  prepared_as("\xef\xbc\xa1\xef\xbc\xa4\xef\xbc\xad\xef\xbc\xa9\xef\xbc\xae@example.com",
              "admin@example.com");                                         /* ＡＤＭＩＮ */
  prepared_as("\xe2\x84\xaa" "evin@example.com", "kevin@example.com");      /* Kelvin sign */
  prepared_as("a\xef\xbc\xa0" "b.com", "a@b.com");                              /* full-width @ */
  prepared_as("Stra\xc3\x9f" "e@Example.COM", "strasse@example.com");       /* ß: full fold */
  prepared_as("a+b.c_d-e@example.com", "a+b.c_d-e@example.com");
  prepared_as("\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd@example.com",
              "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd@example.com");             /* Иван */
}

TEST(emails_with_invisible_control_or_bidi_characters_are_refused) {
  refused("ad\xe2\x80\x8bmin@example.com", "U+200B");  /* zero-width space */
  refused("ad\xc2\xadmin@example.com", "U+00AD");       /* soft hyphen */
  refused("\xe2\x80\xaemoc.elpmaxe@nimda", "U+202E");   /* right-to-left override */
  refused("a\xe2\x81\xa6" "b@example.com", "U+2066");   /* left-to-right isolate */
  refused("a\xd8\x9c" "b@example.com", "U+061C");        /* Arabic letter mark */
  refused("ad\xc2\x85min@example.com", "U+0085");       /* C1 control */
  refused("ad\tmin@example.com", "U+0009");
  refused("\xef\xbb\xbf" "admin@example.com", "U+FEFF");  /* BOM */
  refused("ad\xee\x80\x80min@example.com", "U+E000");   /* private use */
  refused("snow\xe2\x98\x83@example.com", "U+2603");    /* a symbol */
  refused("ad\xffmin@example.com", "UTF-8");
  refused("a@b@example.com", "one '@'");
  refused("@example.com", "one '@'");
  refused("p\xd0\xb0ypal@example.com", "mixes scripts"); /* Cyrillic а in Latin */
}

TEST(look_alike_emails_share_a_skeleton) {
  looks_like("adm\xc4\xb1n@example.com", "admin@example.com");  /* dotless ı */
  looks_like("bi1ling@example.com", "billing@example.com");
  looks_like("rnary@example.com", "mary@example.com");
}

/* ---- trusted proxies ------------------------------------------------------ */

static struct cidr *cidrs(const char *s, int *n) {
  struct cidr *c;
  char err[128];
  CHECK_EQ_INT(proxy_cidrs_parse(s, &c, n, err, sizeof err), 0);
  return c;
}

TEST(trusted_proxy_cidrs_parse_and_match) {
  int n;
  struct cidr *c = cidrs("10.0.0.0/8, 192.168.1.7 ,2001:db8::/32,::1", &n);
  CHECK_EQ_INT(n, 4);
  CHECK(proxy_trusted(c, n, "10.200.3.4"));
  CHECK(!proxy_trusted(c, n, "11.0.0.1"));
  CHECK(proxy_trusted(c, n, "192.168.1.7"));
  CHECK(!proxy_trusted(c, n, "192.168.1.8"));
  CHECK(proxy_trusted(c, n, "2001:db8:ffff::1"));
  CHECK(!proxy_trusted(c, n, "2001:db9::1"));
  CHECK(proxy_trusted(c, n, "::1"));
  CHECK(proxy_trusted(c, n, "::ffff:10.1.2.3")); /* IPv4-mapped compares as IPv4 */
  CHECK(!proxy_trusted(c, n, "not an address"));
  free(c);
  c = cidrs("172.16.0.0/12,fe80::/10", &n);
  CHECK(proxy_trusted(c, n, "172.31.255.255") && !proxy_trusted(c, n, "172.32.0.0"));
  CHECK(proxy_trusted(c, n, "febf::1") && !proxy_trusted(c, n, "fec0::1"));
  free(c);
  c = cidrs("0.0.0.0/0", &n);
  CHECK(proxy_trusted(c, n, "8.8.8.8") && !proxy_trusted(c, n, "::2"));
  free(c);
  c = cidrs("", &n);
  CHECK(c == NULL && n == 0);
  char err[128];
  const char *bad[] = {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "host.example", "1.2.3.4/-1",
                       "1.2.3.4/8x", "1.2.3.4/ 8"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK_EQ_INT(proxy_cidrs_parse(bad[i], &c, &n, err, sizeof err), GROVE_EINVAL);
    CHECK(strstr(err, "--trusted-proxies") != NULL);
  }
}

static const char *client_of(const struct cidr *c, int n, const char *peer, const char *xff) {
  static char out[64];
  const char *lines[] = {xff};
  return proxy_client(c, n, peer, lines, xff ? 1 : 0, out, sizeof out) ? out : "(peer)";
}

TEST(forwarded_client_is_the_rightmost_untrusted_address) {
  int n;
  struct cidr *c = cidrs("127.0.0.1,10.0.0.0/8,2001:db8::/32", &n);
  /* the proxy appended its client */
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", "203.0.113.9"), "203.0.113.9");
  /* whatever the client claimed sits to the left and is not believed */
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", "6.6.6.6, 203.0.113.9"), "203.0.113.9");
  /* trusted hops are skipped, recursively */
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", "198.51.100.1, 10.1.1.1,10.2.2.2"), "198.51.100.1");
  /* all trusted: the leftmost */
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", "10.1.1.1, 10.2.2.2"), "10.1.1.1");
  /* a peer that is not trusted has no say */
  CHECK_EQ_STR(client_of(c, n, "203.0.113.9", "1.2.3.4"), "(peer)");
  CHECK_EQ_STR(client_of(c, n, "::ffff:127.0.0.1", "1.2.3.4"), "1.2.3.4");
  /* IPv6, with brackets and ports; canonical text out */
  CHECK_EQ_STR(client_of(c, n, "2001:db8::5", "2001:DB8:0:0:0:0:0:77, [2001:db8::6]:443"), "2001:db8::77");
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", "[2a00:1450::1]:5000"), "2a00:1450::1");
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", "192.0.2.1:1234"), "192.0.2.1");
  /* garbage stops the walk at the trusted hop that passed it on */
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", "1.2.3.4, unknown, 10.0.0.9"), "10.0.0.9");
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", "unknown"), "(peer)");
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", " , ,"), "(peer)");
  CHECK_EQ_STR(client_of(c, n, "127.0.0.1", NULL), "(peer)");
  /* several header lines are one list, in order */
  const char *lines[] = {"6.6.6.6", "198.51.100.4, 10.0.0.1"};
  char out[64];
  CHECK(proxy_client(c, n, "127.0.0.1", lines, 2, out, sizeof out));
  CHECK_EQ_STR(out, "198.51.100.4");
  const char *lines2[] = {"198.51.100.4", "10.0.0.1"};
  CHECK(proxy_client(c, n, "127.0.0.1", lines2, 2, out, sizeof out));
  CHECK_EQ_STR(out, "198.51.100.4");
  free(c);
  /* none trusted: nobody is believed */
  CHECK_EQ_STR(client_of(NULL, 0, "127.0.0.1", "1.2.3.4"), "(peer)");
}

static const struct test tests[] = {
    T(buckets_allow_burst_then_rate),
    T(jwt_round_trip), T(jwt_refuses_expired_wrong_key_and_tampering), T(jwt_refuses_alg_none),
    T(base64url), T(scopes_parse_and_format),
    T(emails_fold_case_width_and_normalisation_form),
    T(emails_with_invisible_control_or_bidi_characters_are_refused),
    T(look_alike_emails_share_a_skeleton),
    T(trusted_proxy_cidrs_parse_and_match), T(forwarded_client_is_the_rightmost_untrusted_address),
};
TEST_MAIN(tests)
