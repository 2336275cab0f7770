/* test_net.c — the request reader, the router and the WebSocket codec,
 * without sockets. */
#include <wslay/wslay.h>
#include <zlib.h>

#include "../test.h"
#include "core/error.h"
#include "core/metrics.h"
#include "net/conn.h"
#include "net/http_parse.h"
#include "net/router.h"

static struct http_cfg cfg = {
    .max_url = 64, .max_header = 256, .max_headers = 4, .max_body = 100,
};

/* Feeds the whole input; returns the final state and fills r. */
static enum http_in_state feed_all(struct http_in *in, const char *s, size_t *used) {
  enum http_in_state st;
  *used = http_in_feed(in, s, strlen(s), &st);
  return st;
}

TEST(parse_simple_request) {
  struct http_in in;
  http_in_init(&in, &cfg);
  size_t used;
  const char *req = "GET /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: h\r\nX-Two: 2\r\n\r\n";
  CHECK_EQ_INT(feed_all(&in, req, &used), HTTP_IN_REQUEST);
  CHECK_EQ_INT(used, strlen(req));
  struct http_req r = {0};
  CHECK_EQ_INT(http_in_request(&in, &r), 0);
  CHECK_EQ_STR(r.method, "GET");
  CHECK_EQ_STR(r.path, "/a b/c");
  CHECK_EQ_STR(r.query, "x=1&y=%41");
  CHECK_EQ_STR(http_header_get(&r, "x-two"), "2");
  CHECK_EQ_STR(http_header_get(&r, "HOST"), "h");
  char v[8];
  CHECK_EQ_INT(http_query_get(&r, "y", 0, v, sizeof v), 1);
  CHECK_EQ_STR(v, "A");
  CHECK_EQ_INT(http_query_get(&r, "z", 0, v, sizeof v), -1);
  CHECK(http_in_keep_alive(&in));
  http_in_release(&in);
}

TEST(query_long_reads_a_whole_number_in_range_or_says_no) {
  struct http_req r = {0};
  long n = 7;
  r.query = "limit=25&neg=-3&empty=&bare&word=2x&big=1001&long=00000000000000000000000000000000005"
            "&huge=99999999999999999999&esc=%31%30";
  CHECK(http_query_long(&r, "limit", 1, 1000, &n) && n == 25);
  CHECK(http_query_long(&r, "neg", -5, 5, &n) && n == -3);
  CHECK(http_query_long(&r, "esc", 1, 1000, &n) && n == 10);
  n = 7;
  CHECK(http_query_long(&r, "absent", 1, 1000, &n) && n == 7); /* absent: kept */
  CHECK(!http_query_long(&r, "empty", 1, 1000, &n));
  CHECK(!http_query_long(&r, "bare", 1, 1000, &n));
  CHECK(!http_query_long(&r, "word", 1, 1000, &n));
  CHECK(!http_query_long(&r, "big", 1, 1000, &n));
  CHECK(!http_query_long(&r, "long", 1, 1000, &n)); /* too long to read is not absent */
  CHECK(!http_query_long(&r, "huge", 1, 1000, &n));
  CHECK(!http_query_long(&r, "neg", 1, 1000, &n));
  CHECK(n == 7);
}

/* Absent, there, and there but unusable are three answers: a value that
 * is badly escaped or longer than the buffer is never taken for absent. */
TEST(query_get_tells_absent_from_malformed_and_too_long) {
  struct http_req r = {0};
  r.query = "a=abc&empty=&bare&pct=%zz&cut=ab%4&nul=x%00y&long=abcdefgh&esc=%41%42%43%44%45%46%47"
            "&plus=a+b&t=1&t=2&%62y=cpu";
  char v[8];
  CHECK_EQ_INT(http_query_get(&r, "a", 0, v, sizeof v), 3);
  CHECK_EQ_STR(v, "abc");
  CHECK_EQ_INT(http_query_get(&r, "empty", 0, v, sizeof v), 0);
  CHECK_EQ_INT(http_query_get(&r, "bare", 0, v, sizeof v), 0);
  CHECK_EQ_STR(v, "");
  strcpy(v, "keep");
  CHECK_EQ_INT(http_query_get(&r, "none", 0, v, sizeof v), HTTP_QUERY_ABSENT);
  CHECK_EQ_STR(v, "keep"); /* absent: the caller's default stays */
  CHECK_EQ_INT(http_query_get(&r, "pct", 0, v, sizeof v), HTTP_QUERY_MALFORMED);
  CHECK_EQ_STR(v, "");
  CHECK_EQ_INT(http_query_get(&r, "cut", 0, v, sizeof v), HTTP_QUERY_MALFORMED);
  CHECK_EQ_INT(http_query_get(&r, "nul", 0, v, sizeof v), HTTP_QUERY_MALFORMED);
  CHECK_EQ_INT(http_query_get(&r, "long", 0, v, sizeof v), HTTP_QUERY_TOO_LONG);
  CHECK_EQ_STR(v, "");
  char v9[9];
  CHECK_EQ_INT(http_query_get(&r, "long", 0, v9, sizeof v9), 8); /* exactly fits */
  CHECK_EQ_STR(v9, "abcdefgh");
  /* the limit is on the decoded value: 21 bytes escaped, 7 decoded */
  CHECK_EQ_INT(http_query_get(&r, "esc", 0, v, sizeof v), 7);
  CHECK_EQ_STR(v, "ABCDEFG");
  CHECK_EQ_INT(http_query_get(&r, "esc", 0, v, 7), HTTP_QUERY_TOO_LONG);
  CHECK_EQ_INT(http_query_get(&r, "plus", 0, v, sizeof v), 3);
  CHECK_EQ_STR(v, "a b");
  CHECK_EQ_INT(http_query_get(&r, "t", 1, v, sizeof v), 1);
  CHECK_EQ_STR(v, "2");
  CHECK_EQ_INT(http_query_get(&r, "t", 2, v, sizeof v), HTTP_QUERY_ABSENT);
  CHECK_EQ_INT(http_query_get(&r, "by", 0, v, sizeof v), 3); /* names are decoded too */
  CHECK_EQ_INT(http_query_get(&r, "a", 0, v, 0), HTTP_QUERY_TOO_LONG);
  /* the handler's form: 1 there, 0 absent, -1 refused (answered 400) */
  strcpy(v, "dflt");
  CHECK_EQ_INT(http_query_str(&r, "none", v, sizeof v, NULL), 0);
  CHECK_EQ_STR(v, "dflt");
  CHECK_EQ_INT(http_query_str(&r, "a", v, sizeof v, NULL), 1);
  CHECK_EQ_INT(http_query_str(&r, "empty", v, sizeof v, NULL), 1);
  CHECK_EQ_INT(http_query_str(&r, "pct", v, sizeof v, "INVALID_QUERY"), -1);
  CHECK_EQ_INT(http_query_str(&r, "long", v, sizeof v, NULL), -1);
  char msg[160];
  http_query_why(HTTP_QUERY_TOO_LONG, "by", 16, msg, sizeof msg);
  CHECK_EQ_STR(msg, "query parameter 'by' is longer than 15 bytes");
  http_query_why(HTTP_QUERY_MALFORMED, "by", 16, msg, sizeof msg);
  CHECK_EQ_STR(msg, "query parameter 'by' is not valid percent-encoding");
}

TEST(parse_stops_after_each_pipelined_request) {
  struct http_in in;
  http_in_init(&in, &cfg);
  const char *two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  enum http_in_state st;
  size_t used = http_in_feed(&in, two, strlen(two), &st);
  CHECK_EQ_INT(st, HTTP_IN_REQUEST);
  CHECK_EQ_INT(used, 28);
  struct http_req r = {0};
  http_in_request(&in, &r);
  CHECK_EQ_STR(r.path, "/1");
  http_in_next(&in);
  size_t used2 = http_in_feed(&in, two + used, strlen(two) - used, &st);
  CHECK_EQ_INT(st, HTTP_IN_REQUEST);
  CHECK_EQ_INT(used + used2, strlen(two));
  http_in_request(&in, &r);
  CHECK_EQ_STR(r.method, "POST");
  CHECK_EQ_INT(r.body_len, 3);
  CHECK_EQ_STR(r.body, "abc");
  http_in_release(&in);
}

TEST(parse_headers_split_across_reads) {
  struct http_in in;
  http_in_init(&in, &cfg);
  const char *req = "GET / HTTP/1.1\r\nHost: h\r\nLong-Name: some value\r\nB: 2\r\n\r\n";
  enum http_in_state st = HTTP_IN_MORE;
  for (size_t i = 0; i < strlen(req); i++) {
    size_t u = http_in_feed(&in, req + i, 1, &st);
    CHECK_EQ_INT(u, 1);
  }
  CHECK_EQ_INT(st, HTTP_IN_REQUEST);
  struct http_req r = {0};
  http_in_request(&in, &r);
  CHECK_EQ_STR(http_header_get(&r, "long-name"), "some value");
  CHECK_EQ_STR(http_header_get(&r, "b"), "2");
  http_in_release(&in);
}

TEST(parse_chunked_body) {
  struct http_in in;
  http_in_init(&in, &cfg);
  size_t used;
  const char *req = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  CHECK_EQ_INT(feed_all(&in, req, &used), HTTP_IN_REQUEST);
  struct http_req r = {0};
  http_in_request(&in, &r);
  CHECK_EQ_STR(r.body, "abcde");
  http_in_release(&in);
}

static void expect_error(const char *req, int status) {
  struct http_in in;
  http_in_init(&in, &cfg);
  size_t used;
  enum http_in_state st = feed_all(&in, req, &used);
  if (st != HTTP_IN_ERROR || in.err_status != status)
    fprintf(stderr, "request %.40s: state %d status %d, want %d\n", req, st, in.err_status, status);
  CHECK(st == HTTP_IN_ERROR);
  CHECK_EQ_INT(in.err_status, status);
  CHECK(in.err_code && in.err_msg);
  http_in_release(&in);
}

TEST(parse_limits_have_statuses) {
  char big[600];
  snprintf(big, sizeof big, "GET /%0100d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
  expect_error(big, 414);
  snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\nX: %0300d\r\n\r\n", 0);
  expect_error(big, 431);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", 431);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", 413);
  char chunked[300];
  snprintf(chunked, sizeof chunked, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           "65\r\n%0101d\r\n", 0);
  expect_error(chunked, 413);
}

TEST(parse_malformed_requests) {
  expect_error("BLAH\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nExpect: x\r\nContent-Length: 1\r\n\r\n", 417);
}

/* RFC 9112 §2.2, §3, §3.2, §5, §6 and RFC 9110 §9.1 (the e2e table in
 * tests/e2e/test_http.py has the same cases over sockets). */
TEST(parse_rfc9112_rules) {
  expect_error("GET / HTTP/1.1\r\n\r\n", 400);                        /* no Host */
  expect_error("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);  /* two */
  expect_error("GET / HTTP/1.1\r\nHost: a b@c\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);           /* space before ':' */
  expect_error("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400); /* obs-fold */
  expect_error("GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 400);      /* bare CR */
  expect_error("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_error("GET /#f HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_error("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
  expect_error("FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
  expect_error("CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n", 501);
  expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
  expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               "Content-Length: 1\r\n\r\n", 400);
  expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  struct http_in in;
  size_t used;
  http_in_init(&in, &cfg); /* HTTP/1.0 needs no Host; its Expect is ignored */
  CHECK_EQ_INT(feed_all(&in, "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
                        &used), HTTP_IN_MORE);
  CHECK(!in.want_continue);
  http_in_release(&in);
  http_in_init(&in, &cfg); /* empty lines before the request line are skipped */
  CHECK_EQ_INT(feed_all(&in, "\r\n\r\nGET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", &used), HTTP_IN_REQUEST);
  http_in_release(&in);
}

TEST(header_values_lose_trailing_whitespace) {
  /* RFC 9112 §5: OWS around a field value is not part of it */
  struct http_in in;
  http_in_init(&in, &cfg);
  size_t used;
  const char *req = "GET / HTTP/1.1\r\nHost: x \r\nX-API-Key: k\t \r\nX-Empty:  \r\nX-Last: v\t\r\n\r\n";
  CHECK_EQ_INT(feed_all(&in, req, &used), HTTP_IN_REQUEST);
  struct http_req r = {0};
  CHECK_EQ_INT(http_in_request(&in, &r), 0);
  CHECK_EQ_STR(http_header_get(&r, "host"), "x");
  CHECK_EQ_STR(http_header_get(&r, "x-api-key"), "k");
  CHECK_EQ_STR(http_header_get(&r, "x-empty"), "");
  CHECK_EQ_STR(http_header_get(&r, "x-last"), "v");
  http_in_release(&in);
}

TEST(parse_expect_continue_flag) {
  struct http_in in;
  http_in_init(&in, &cfg);
  size_t used;
  CHECK_EQ_INT(feed_all(&in, "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", &used),
               HTTP_IN_MORE);
  CHECK(in.want_continue);
  http_in_release(&in);
}

TEST(parse_bad_target) {
  struct http_in in;
  http_in_init(&in, &cfg);
  size_t used;
  CHECK_EQ_INT(feed_all(&in, "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", &used), HTTP_IN_REQUEST);
  struct http_req r = {0};
  CHECK_EQ_INT(http_in_request(&in, &r), 400);
  http_in_release(&in);
}

/* ---- Content-Encoding ---- */

/* text compressed as one gzip member (window 15+16), zlib (15) or raw
 * deflate (-15), appended to out */
static void squeeze(struct buf *out, const char *text, int window) {
  z_stream z;
  memset(&z, 0, sizeof z);
  deflateInit2(&z, 6, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY);
  size_t bound = deflateBound(&z, strlen(text));
  buf_reserve(out, bound + 1);
  z.next_in = (Bytef *)text;
  z.avail_in = (uInt)strlen(text);
  z.next_out = (Bytef *)out->data + out->len;
  z.avail_out = (uInt)bound;
  deflate(&z, Z_FINISH);
  out->len += z.total_out;
  deflateEnd(&z);
}

static int decode(const char *enc, const struct buf *in, size_t max, struct buf *out,
                  struct http_body_error *err) {
  struct buf scratch;
  buf_init(&scratch, 0);
  int rc = http_body_decode(enc, in->data, in->len, max, out, &scratch, err);
  buf_release(&scratch);
  return rc;
}

TEST(body_gzip_members_all_decoded) {
  struct buf in, out;
  struct http_body_error err;
  buf_init(&in, 0);
  buf_init(&out, 0);
  squeeze(&in, "multi,k=a v=1 1000\n", 15 + 16);
  squeeze(&in, "multi,k=a v=2 2000\n", 15 + 16);
  CHECK_EQ_INT(decode("gzip", &in, 1000, &out, &err), 0);
  CHECK_EQ_STR(out.data, "multi,k=a v=1 1000\nmulti,k=a v=2 2000\n");
  CHECK_EQ_INT(decode("x-gzip", &in, 1000, &out, &err), 0);
  /* garbage after a member, and a member cut short, are errors */
  size_t whole = in.len;
  buf_append(&in, "garbage", 7);
  CHECK(decode("gzip", &in, 1000, &out, &err) != 0);
  CHECK_EQ_INT(err.status, 400);
  CHECK_EQ_STR(err.code, "BAD_GZIP");
  in.len = whole - 3;
  CHECK(decode("gzip", &in, 1000, &out, &err) != 0);
  CHECK_EQ_INT(err.status, 400);
  in.len = whole;
  /* over the limit once decoded */
  CHECK(decode("gzip", &in, 20, &out, &err) != 0);
  CHECK_EQ_INT(err.status, 413);
  CHECK_EQ_INT(decode("gzip", &in, 40, &out, &err), 0); /* exactly the size */
  buf_release(&in);
  buf_release(&out);
}

TEST(body_codings_deflate_chains_and_unknown) {
  struct buf in, out, twice;
  struct http_body_error err;
  buf_init(&in, 0);
  buf_init(&out, 0);
  buf_init(&twice, 0);
  squeeze(&in, "{\"a\":1}", 15); /* zlib, as RFC 9110 §8.4.1.2 has it */
  CHECK_EQ_INT(decode("deflate", &in, 100, &out, &err), 0);
  CHECK_EQ_STR(out.data, "{\"a\":1}");
  buf_reset(&in);
  squeeze(&in, "{\"a\":2}", -15); /* raw deflate, as some clients send */
  CHECK_EQ_INT(decode("Deflate", &in, 100, &out, &err), 0);
  CHECK_EQ_STR(out.data, "{\"a\":2}");
  /* "gzip, deflate": deflated last, so inflated first */
  buf_reset(&in);
  squeeze(&in, "chained", 15 + 16);
  char *gz = malloc(in.len + 1);
  memcpy(gz, in.data, in.len);
  gz[in.len] = '\0';
  size_t gzlen = in.len;
  z_stream z;
  memset(&z, 0, sizeof z);
  deflateInit2(&z, 6, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY);
  buf_reserve(&twice, deflateBound(&z, gzlen) + 1);
  z.next_in = (Bytef *)gz;
  z.avail_in = (uInt)gzlen;
  z.next_out = (Bytef *)twice.data;
  z.avail_out = (uInt)twice.cap;
  deflate(&z, Z_FINISH);
  twice.len = z.total_out;
  deflateEnd(&z);
  free(gz);
  CHECK_EQ_INT(decode("gzip, deflate", &twice, 100, &out, &err), 0);
  CHECK_EQ_STR(out.data, "chained");
  CHECK_EQ_INT(decode("identity", &twice, 1000, &out, &err), 0);
  CHECK_EQ_INT(out.len, twice.len);
  CHECK(decode("br", &twice, 1000, &out, &err) != 0);
  CHECK_EQ_INT(err.status, 415);
  CHECK_EQ_STR(err.code, "UNSUPPORTED_ENCODING");
  CHECK(decode("gzip, compress", &twice, 1000, &out, &err) != 0);
  CHECK_EQ_INT(err.status, 415);
  buf_release(&in);
  buf_release(&out);
  buf_release(&twice);
}

static void h1(struct http_req *r) { (void)r; }
static void h2(struct http_req *r) { (void)r; }
static void collect(const char *owner, const struct route_def *d, void *arg) {
  (void)owner;
  (void)d;
  (*(int *)arg)++;
}

static int add(struct router *rt, const char *method, const char *pattern, http_handler fn) {
  struct route_def d = {method, pattern, fn, .anonymous = true};
  return router_add(rt, "test", &d, NULL, NULL, 0);
}

TEST(router_params_methods_and_rest) {
  struct router *rt;
  CHECK(router_create(&rt, NULL) == 0);
  CHECK(add(rt, "GET", "/things/{id}", h1) == 0);
  CHECK(add(rt, "DELETE", "/things/{id}", h2) == 0);
  CHECK(add(rt, "GET", "/a/{x}/b/{y}", h2) == 0);
  CHECK(add(rt, "POST", "/files/{path...}", h1) == 0);
  CHECK(add(rt, "GET", "bad", h1) == GROVE_EINVAL);
  struct http_req r = {0};
  struct route *route;
  char allow[64], path[64];
  strcpy(path, "/things/42");
  CHECK_EQ_INT(router_match(rt, "GET", path, &r, &route, allow, sizeof allow), ROUTE_FOUND);
  CHECK(route->fn == h1);
  CHECK_EQ_STR(http_param(&r, "id"), "42");
  strcpy(path, "/a/1/b/two");
  CHECK_EQ_INT(router_match(rt, "HEAD", path, &r, &route, allow, sizeof allow), ROUTE_FOUND);
  CHECK_EQ_STR(http_param(&r, "x"), "1");
  CHECK_EQ_STR(http_param(&r, "y"), "two");
  strcpy(path, "/things/42");
  CHECK_EQ_INT(router_match(rt, "PUT", path, &r, &route, allow, sizeof allow), ROUTE_BAD_METHOD);
  CHECK_EQ_STR(allow, "GET, HEAD, DELETE");
  strcpy(path, "/files/x/y/z.txt");
  CHECK_EQ_INT(router_match(rt, "POST", path, &r, &route, allow, sizeof allow), ROUTE_FOUND);
  CHECK_EQ_STR(http_param(&r, "path"), "x/y/z.txt");
  strcpy(path, "/things/");
  CHECK_EQ_INT(router_match(rt, "GET", path, &r, &route, allow, sizeof allow), ROUTE_NOT_FOUND);
  strcpy(path, "/things/1/2");
  CHECK_EQ_INT(router_match(rt, "GET", path, &r, &route, allow, sizeof allow), ROUTE_NOT_FOUND);
  int n = 0;
  router_each(rt, collect, &n);
  CHECK_EQ_INT(n, 4);
  router_destroy(rt);
}

/* A route declared twice (same method, same pattern but for parameter
 * names) is refused, naming both owners; other methods and patterns are not
 * the same route. */
TEST(router_refuses_a_route_declared_twice) {
  struct router *rt;
  char err[256] = "";
  CHECK(router_create(&rt, NULL) == 0);
  struct route_def a = {"GET", "/things/{id}", h1, .scopes = 1};
  struct route_def b = {"GET", "/things/{name}", h2, .scopes = 2};
  struct route_def c = {"POST", "/things/{id}", h2, .scopes = 2};
  struct route_def d = {"GET", "/things/{id...}", h2, .scopes = 2};
  CHECK_EQ_INT(router_add(rt, "alpha", &a, NULL, err, sizeof err), 0);
  CHECK_EQ_INT(router_add(rt, "beta", &b, NULL, err, sizeof err), GROVE_EEXIST);
  CHECK(strstr(err, "'alpha'") && strstr(err, "'beta'") && strstr(err, "GET /things/{name}"));
  CHECK_EQ_INT(router_add(rt, "beta", &c, NULL, err, sizeof err), 0);
  CHECK_EQ_INT(router_add(rt, "beta", &d, NULL, err, sizeof err), 0);
  /* an anonymous route with scopes says two things at once */
  struct route_def e = {"GET", "/open", h1, .scopes = 1, .anonymous = true};
  CHECK_EQ_INT(router_add(rt, "gamma", &e, NULL, err, sizeof err), GROVE_EINVAL);
  router_destroy(rt);
}

static enum http_next before_a(struct http_req *r, void *arg) {
  (void)r;
  (void)arg;
  return HTTP_CONTINUE;
}

static bool allow_all(struct http_req *r, unsigned scopes, struct http_refusal *why, void *arg) {
  (void)r;
  (void)scopes;
  (void)why;
  (void)arg;
  return true;
}

/* A second before-hook or authorizer would silently replace the first:
 * refused, naming both. */
TEST(router_refuses_a_second_hook) {
  struct router *rt;
  char err[256] = "";
  CHECK(router_create(&rt, NULL) == 0);
  CHECK_EQ_INT(router_before(rt, "gate", before_a, NULL, err, sizeof err), 0);
  CHECK_EQ_INT(router_before(rt, "other", before_a, NULL, err, sizeof err), GROVE_EEXIST);
  CHECK(strstr(err, "before-hook") && strstr(err, "'gate'") && strstr(err, "'other'"));
  CHECK_EQ_INT(router_authorizer(rt, "gate", allow_all, NULL, err, sizeof err), 0);
  CHECK_EQ_INT(router_authorizer(rt, "other", allow_all, NULL, err, sizeof err), GROVE_EEXIST);
  CHECK(strstr(err, "authorizer") && strstr(err, "'gate'") && strstr(err, "'other'"));
  router_destroy(rt);
}

/* ---- WebSocket codec ---- */

struct got {
  int messages;
  char last[256];
};

static void on_msg(struct ws *ws, bool text, const uint8_t *d, size_t n) {
  struct got *g = ws_user(ws);
  (void)text;
  g->messages++;
  snprintf(g->last, sizeof g->last, "%.*s", (int)n, d);
}

static size_t client_frame(uint8_t *out, int fin, int op, const char *payload, size_t n) {
  static const uint8_t key[4] = {1, 2, 3, 4};
  size_t o = 0;
  out[o++] = (uint8_t)((fin ? 0x80 : 0) | op);
  out[o++] = (uint8_t)(0x80 | n); /* n < 126 */
  memcpy(out + o, key, 4);
  o += 4;
  for (size_t i = 0; i < n; i++)
    out[o++] = (uint8_t)payload[i] ^ key[i % 4];
  return o;
}

static struct ws *codec(struct got *g, struct buf *out, uint64_t max) {
  struct ws_cfg wc = {max, 1 << 20, 1000};
  struct ws_cbs cbs = {on_msg, NULL};
  buf_init(out, 0);
  return ws_codec_create(&wc, &cbs, g, out);
}

TEST(ws_fragments_ping_and_close) {
  struct got g = {0};
  struct buf out;
  struct ws *ws = codec(&g, &out, 1000);
  uint8_t f[512];
  size_t n = client_frame(f, 0, 1, "hel", 3);
  n += client_frame(f + n, 1, 9, "p", 1);
  n += client_frame(f + n, 1, 0, "lo", 2);
  /* one byte at a time: frames cross reads */
  for (size_t i = 0; i < n; i++)
    CHECK(ws_codec_feed(ws, f + i, 1));
  CHECK_EQ_INT(g.messages, 1);
  CHECK_EQ_STR(g.last, "hello");
  CHECK(ws_codec_idle(ws)); /* at a frame boundary: the wslay context is gone */
  CHECK(out.len == 3 && (uint8_t)out.data[0] == 0x8a && out.data[2] == 'p'); /* pong "p" */
  buf_reset(&out);
  uint8_t close[16];
  size_t cn = client_frame(close, 1, 8, "\x03\xe8", 2);
  CHECK(!ws_codec_feed(ws, close, cn));
  CHECK_EQ_INT(ws_codec_close_code(ws), 1000);
  CHECK((uint8_t)out.data[0] == 0x88); /* close echoed */
  ws_codec_destroy(ws);
  buf_release(&out);
}

static uint16_t close_sent(const struct buf *out) {
  /* the last frame in out is a close: 0x88 len code */
  for (size_t i = 0; i + 3 < out->len; i++)
    if ((uint8_t)out->data[i] == 0x88)
      return (uint16_t)(((uint8_t)out->data[i + 2] << 8) | (uint8_t)out->data[i + 3]);
  return 0;
}

TEST(ws_rejects_oversize_unmasked_and_bad_utf8) {
  struct got g = {0};
  struct buf out;
  uint8_t f[512];
  struct ws *ws = codec(&g, &out, 10);
  size_t n = client_frame(f, 1, 1, "01234567890123", 14);
  ws_codec_feed(ws, f, n);
  CHECK_EQ_INT(close_sent(&out), 1009);
  CHECK_EQ_INT(g.messages, 0);
  ws_codec_destroy(ws);
  buf_release(&out);

  ws = codec(&g, &out, 100);
  uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
  ws_codec_feed(ws, unmasked, sizeof unmasked);
  CHECK_EQ_INT(close_sent(&out), 1002);
  ws_codec_destroy(ws);
  buf_release(&out);

  ws = codec(&g, &out, 100);
  n = client_frame(f, 1, 1, "\xc3\x28", 2);
  ws_codec_feed(ws, f, n);
  CHECK_EQ_INT(close_sent(&out), 1007);
  CHECK_EQ_INT(g.messages, 0);
  ws_codec_destroy(ws);
  buf_release(&out);
}

/* RFC 6455 §5.5.1, §7.4: the answer to a client's close frame, by its
 * payload (Autobahn 7.3.x, 7.7.x, 7.9.x, 7.13.x); 0 expects no code. */
TEST(ws_close_codes_are_checked) {
  static const struct {
    const char *payload;
    size_t len;
    uint16_t answer, seen;
  } cases[] = {
      {"", 0, 1000, 1005},             /* no code: a normal close back */
      {"\x03", 1, 1002, 1002},         /* one byte cannot hold a code */
      {"\x03\xe8", 2, 1000, 1000},     {"\x03\xf4", 2, 1012, 1012}, /* 1012-1014 registered */
      {"\x03\xf6", 2, 1014, 1014},     {"\x0f\xa0", 2, 4000, 4000},
      {"\x03\xed", 2, 1002, 1002},     /* 1005 must not be sent */
      {"\x03\xf7", 2, 1002, 1002},     /* 1015 neither */
      {"\x07\xd0", 2, 1002, 1002},     /* 2000 reserved */
      {"\x13\x88", 2, 1002, 1002},     /* 5000 out of range */
      {"\x03\xe8\xff", 3, 1007, 1007}, /* a reason that is not UTF-8 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct got g = {0};
    struct buf out;
    struct ws *ws = codec(&g, &out, 100);
    uint8_t f[64];
    size_t n = client_frame(f, 1, 8, cases[i].payload, cases[i].len);
    CHECK(!ws_codec_feed(ws, f, n));
    CHECK_EQ_INT(close_sent(&out), cases[i].answer);
    CHECK_EQ_INT(ws_codec_close_code(ws), cases[i].seen);
    ws_codec_destroy(ws);
    buf_release(&out);
  }
  /* a control frame over 125 bytes fails the connection with 1002 */
  struct got g = {0};
  struct buf out;
  struct ws *ws = codec(&g, &out, 1000);
  uint8_t big[] = {0x88, 0xfe, 0x00, 0x7e, 0, 0, 0, 0};
  CHECK(!ws_codec_feed(ws, big, sizeof big));
  CHECK_EQ_INT(close_sent(&out), 1002);
  ws_codec_destroy(ws);
  buf_release(&out);
}

TEST(utf8_validation) {
  CHECK(utf8_valid((const uint8_t *)"plain", 5));
  CHECK(utf8_valid((const uint8_t *)"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
  CHECK(!utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
  CHECK(!utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
  CHECK(!utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  CHECK(!utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
}

TEST(ws_frame_header_lengths) {
  uint8_t h[10];
  CHECK_EQ_INT(ws_frame_header(h, 5), 2);
  CHECK(h[0] == 0x81 && h[1] == 5);
  CHECK_EQ_INT(ws_frame_header(h, 300), 4);
  CHECK(h[1] == 126 && h[2] == 1 && h[3] == 44);
  CHECK_EQ_INT(ws_frame_header(h, 70000), 10);
  CHECK(h[1] == 127 && h[7] == 1 && h[8] == 0x11 && h[9] == 0x70);
}

TEST(ws_context_is_kept_inside_frames_and_messages) {
  struct got g = {0};
  struct buf out;
  struct ws *ws = codec(&g, &out, 1000);
  uint8_t f[512];
  size_t n = client_frame(f, 1, 1, "abcdef", 6);
  CHECK(ws_codec_feed(ws, f, 3)); /* mid-header/payload */
  CHECK(!ws_codec_idle(ws));
  CHECK(ws_codec_feed(ws, f + 3, n - 3));
  CHECK(ws_codec_idle(ws));
  CHECK_EQ_STR(g.last, "abcdef");
  n = client_frame(f, 0, 1, "ab", 2); /* a fragmented message stays open */
  CHECK(ws_codec_feed(ws, f, n));
  CHECK(!ws_codec_idle(ws));
  n = client_frame(f, 1, 0, "cd", 2);
  CHECK(ws_codec_feed(ws, f, n));
  CHECK(ws_codec_idle(ws));
  CHECK_EQ_STR(g.last, "abcd");
  CHECK_EQ_INT(g.messages, 2);
  /* a 16-bit length frame split after its extended length */
  char big[300];
  memset(big, 'x', sizeof big);
  uint8_t bf[400];
  static const uint8_t key[4] = {9, 9, 9, 9};
  size_t o = 0;
  bf[o++] = 0x81;
  bf[o++] = 0x80 | 126;
  bf[o++] = 300 >> 8;
  bf[o++] = 300 & 0xff;
  memcpy(bf + o, key, 4);
  o += 4;
  for (int i = 0; i < 300; i++)
    bf[o++] = (uint8_t)big[i] ^ key[i % 4];
  CHECK(ws_codec_feed(ws, bf, 4));
  CHECK(!ws_codec_idle(ws));
  CHECK(ws_codec_feed(ws, bf + 4, o - 4));
  CHECK(ws_codec_idle(ws));
  CHECK_EQ_INT(g.messages, 3);
  ws_codec_destroy(ws);
  buf_release(&out);
}

/* A streamed body: the parser stops at the headers, then hands each piece
 * to the sink, pausing where the sink asks; the bytes after a pause are
 * fed again and nothing is lost or repeated, in plain and chunked bodies,
 * whatever the read sizes. */
struct sink_rec {
  char got[64];
  size_t n;
  int calls, pause_every;
};

static int rec_sink(void *arg, const char *at, size_t len) {
  struct sink_rec *s = arg;
  memcpy(s->got + s->n, at, len);
  s->n += len;
  return s->pause_every && ++s->calls % s->pause_every == 0;
}

static void stream_through(const char *req, const char *body, size_t step) {
  struct http_in in;
  http_in_init(&in, &cfg);
  in.stop_at_headers = true;
  struct sink_rec rec = {.pause_every = 1};
  size_t off = 0, len = strlen(req);
  enum http_in_state st = HTTP_IN_MORE;
  bool headers = false;
  int guard = 0;
  while (st != HTTP_IN_REQUEST && st != HTTP_IN_ERROR && guard++ < 1000) {
    size_t n = len - off < step ? len - off : step;
    size_t used = http_in_feed(&in, req + off, n, &st);
    off += used;
    if (st == HTTP_IN_HEADERS) {
      CHECK(!headers);
      headers = true;
      char path[32];
      CHECK_EQ_INT(http_in_peek_path(&in, path, sizeof path), 0);
      CHECK_EQ_STR(path, "/up load");
      CHECK_EQ_STR(http_in_method(&in), "PUT");
      CHECK_EQ_INT(rec.n, 0);
      http_in_body(&in, 1000, rec_sink, &rec);
    }
    http_in_resume(&in); /* a pause by the sink, or the headers' */
  }
  CHECK(headers);
  CHECK_EQ_INT(st, HTTP_IN_REQUEST);
  CHECK_EQ_INT(off, len);
  CHECK_EQ_INT(rec.n, strlen(body));
  CHECK(memcmp(rec.got, body, rec.n) == 0);
  struct http_req r = {0};
  CHECK_EQ_INT(http_in_request(&in, &r), 0);
  CHECK_EQ_STR(r.path, "/up load");
  CHECK_EQ_INT(r.body_len, 0); /* nothing was held */
  http_in_release(&in);
}

TEST(parse_streamed_body_stops_at_headers_and_pauses) {
  const char *plain = "PUT /up%20load?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789";
  const char *chunked = "PUT /up%20load HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
  for (size_t step = 1; step < 80; step += 3) {
    stream_through(plain, "0123456789", step);
    stream_through(chunked, "abcdefg", step);
  }
  /* a body over the buffered limit is fine when streamed: the server
   * applies its own limit; buffered, it is 413 as before */
  struct http_in in;
  http_in_init(&in, &cfg);
  in.stop_at_headers = true;
  enum http_in_state st;
  const char *big = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 500\r\n\r\n";
  http_in_feed(&in, big, strlen(big), &st);
  CHECK_EQ_INT(st, HTTP_IN_HEADERS);
  http_in_body(&in, 100, NULL, NULL);
  http_in_resume(&in);
  char body[200];
  memset(body, 'x', sizeof body);
  http_in_feed(&in, body, sizeof body, &st);
  CHECK_EQ_INT(st, HTTP_IN_ERROR);
  CHECK_EQ_INT(in.err_status, 413);
  http_in_release(&in);
}

static const struct test tests[] = {
    T(parse_streamed_body_stops_at_headers_and_pauses),
    T(ws_context_is_kept_inside_frames_and_messages),
    T(parse_simple_request), T(parse_stops_after_each_pipelined_request),
    T(query_long_reads_a_whole_number_in_range_or_says_no),
    T(query_get_tells_absent_from_malformed_and_too_long),
    T(parse_headers_split_across_reads), T(parse_chunked_body), T(parse_limits_have_statuses),
    T(parse_malformed_requests), T(parse_rfc9112_rules), T(header_values_lose_trailing_whitespace), T(parse_expect_continue_flag), T(parse_bad_target),
    T(router_params_methods_and_rest), T(router_refuses_a_route_declared_twice),
    T(router_refuses_a_second_hook), T(ws_fragments_ping_and_close),
    T(ws_rejects_oversize_unmasked_and_bad_utf8), T(ws_close_codes_are_checked), T(utf8_validation), T(body_gzip_members_all_decoded),
    T(body_codings_deflate_chains_and_unknown), T(ws_frame_header_lengths),
};
TEST_MAIN(tests)
