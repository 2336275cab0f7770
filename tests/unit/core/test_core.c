/* test_core.c — buffers, config, map, metrics, logging, helpers. */
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <unistd.h>

#include "../test.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"
#include "core/health.h"
#include "core/jsonout.h"
#include "core/real.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/text.h"
#include "core/util.h"

TEST(buf_grows_and_stays_terminated) {
  struct buf b;
  buf_init(&b, 0);
  for (int i = 0; i < 1000; i++)
    CHECK(buf_printf(&b, "%d,", i) == 0);
  CHECK(b.len > 3000);
  CHECK(b.data[b.len] == '\0');
  CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
  buf_consume(&b, 2);
  CHECK(strncmp(b.data, "1,2,", 4) == 0);
  buf_release(&b);
}

TEST(buf_refuses_past_its_maximum_and_keeps_contents) {
  struct buf b;
  buf_init(&b, 10);
  CHECK(buf_puts(&b, "12345") == 0);
  CHECK_EQ_INT(buf_puts(&b, "678901"), GROVE_ETOOBIG);
  CHECK_EQ_STR(b.data, "12345");
  CHECK(buf_puts(&b, "67890") == 0);
  CHECK_EQ_INT(buf_putc(&b, 'x'), GROVE_ETOOBIG);
  size_t n;
  char *p = buf_detach(&b, &n);
  CHECK_EQ_INT(n, 10);
  CHECK(b.data == NULL && b.len == 0);
  free(p);
}

TEST(buf_json_escape_escapes_controls) {
  struct buf b;
  buf_init(&b, 0);
  buf_json_escape(&b, "a\"b\\c\n\x01", 7);
  CHECK_EQ_STR(b.data, "a\\\"b\\\\c\\n\\u0001");
  buf_release(&b);
}

struct cfg_t {
  char *name;
  int n;
  bool flag;
  uint64_t size, ms;
};
static const struct cfg_opt opts[] = {
    CFG_OPT(struct cfg_t, "name", CFG_STR, name, "def", "a name"),
    CFG_OPT(struct cfg_t, "count", CFG_INT, n, "1", "a count"),
    CFG_OPT(struct cfg_t, "flag", CFG_BOOL, flag, "false", "a flag"),
    CFG_OPT(struct cfg_t, "size", CFG_SIZE, size, "1k", "a size"),
    CFG_OPT(struct cfg_t, "wait", CFG_MS, ms, "2s", "a duration"),
};

TEST(config_defaults_file_env_flags_in_order) {
  struct cfg_t c = {0};
  struct cfg_section s = {"test", opts, 5, &c};
  char path[] = "/tmp/grove-cfg-XXXXXX";
  int fd = mkstemp(path);
  const char *text = "# comment\nname = \"from file\"\ncount = 5\nsize = 2m\n";
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
  setenv("GROVE_CONFIG", path, 1);
  setenv("GROVE_COUNT", "7", 1);
  char *argv[] = {"--flag", "--wait=250ms", "--count", "9"};
  char err[128];
  CHECK_EQ_INT(cfg_load(&s, 1, 4, argv, err, sizeof err), 0);
  CHECK_EQ_STR(c.name, "from file"); /* file over default */
  CHECK_EQ_INT(c.n, 9);              /* flag over env over file */
  CHECK(c.flag);
  CHECK_EQ_INT(c.size, 2 * 1024 * 1024);
  CHECK_EQ_INT(c.ms, 250);
  char *argv2[] = {};
  CHECK_EQ_INT(cfg_load(&s, 1, 0, argv2, err, sizeof err), 0);
  CHECK_EQ_INT(c.n, 7); /* env over file */
  cfg_release(&s, 1);
  unsetenv("GROVE_CONFIG");
  unsetenv("GROVE_COUNT");
  unlink(path);
}

TEST(config_rejects_unknown_and_bad_values) {
  struct cfg_t c = {0};
  struct cfg_section s = {"test", opts, 5, &c};
  char err[128];
  char *a1[] = {"--nope", "1"};
  CHECK_EQ_INT(cfg_load(&s, 1, 2, a1, err, sizeof err), GROVE_ECONFIG);
  CHECK_EQ_STR(err, "unknown option '--nope'");
  char *a2[] = {"--count", "many"};
  CHECK_EQ_INT(cfg_load(&s, 1, 2, a2, err, sizeof err), GROVE_ECONFIG);
  CHECK(strstr(err, "bad value 'many'"));
  char *a3[] = {"--size", "-5"};
  CHECK_EQ_INT(cfg_load(&s, 1, 2, a3, err, sizeof err), GROVE_ECONFIG);
  char *a4[] = {"--wait"};
  CHECK_EQ_INT(cfg_load(&s, 1, 1, a4, err, sizeof err), GROVE_ECONFIG);
  CHECK(strstr(err, "missing value"));
  cfg_release(&s, 1);
}

/* An option named twice, in two sections or one, would leave one of them
 * silently unset: refused at load, naming both sections. */
TEST(config_refuses_an_option_declared_twice) {
  struct cfg_t a = {0}, b = {0};
  static const struct cfg_opt other[] = {
      CFG_OPT(struct cfg_t, "other", CFG_INT, n, "1", "another"),
      CFG_OPT(struct cfg_t, "count", CFG_INT, n, "2", "a count again"),
  };
  struct cfg_section secs[] = {{"alpha", opts, 5, &a}, {"beta", other, 2, &b}};
  char err[160] = "";
  CHECK_EQ_INT(cfg_check(secs, 1, err, sizeof err), 0);
  CHECK_EQ_INT(cfg_check(secs, 2, err, sizeof err), GROVE_EEXIST);
  CHECK_EQ_STR(err, "option '--count' is declared twice: by 'alpha' and by 'beta'");
  char *none[] = {};
  CHECK_EQ_INT(cfg_load(secs, 2, 0, none, err, sizeof err), GROVE_ECONFIG);
  CHECK(strstr(err, "'--count'"));
  struct cfg_section one = {"gamma", other, 1, &b}, same[] = {one, one};
  CHECK_EQ_INT(cfg_check(same, 2, err, sizeof err), GROVE_EEXIST);
}

/* Sections past the table's room are refused, not dropped. */
TEST(config_refuses_a_section_past_its_cap) {
  struct cfg_t a = {0};
  struct cfg_section secs[2];
  size_t n = 0;
  char err[160] = "";
  CHECK_EQ_INT(cfg_section_add(secs, &n, 2, (struct cfg_section){"one", opts, 5, &a}, err, sizeof err), 0);
  CHECK_EQ_INT(cfg_section_add(secs, &n, 2, (struct cfg_section){"two", opts, 5, &a}, err, sizeof err), 0);
  CHECK_EQ_INT(cfg_section_add(secs, &n, 2, (struct cfg_section){"three", opts, 5, &a}, err, sizeof err),
               GROVE_ETOOBIG);
  CHECK_EQ_INT(n, 2);
  CHECK(strstr(err, "'three'") && strstr(err, "'two'") && strstr(err, "at most 2"));
}

TEST(config_parsers) {
  uint64_t v;
  CHECK(cfg_parse_size("64k", &v) == 0 && v == 65536);
  CHECK(cfg_parse_size("1.5m", &v) == 0 && v == 1572864);
  CHECK(cfg_parse_size("12", &v) == 0 && v == 12);
  CHECK(cfg_parse_size("12q", &v) != 0);
  CHECK(cfg_parse_ms("1.5s", &v) == 0 && v == 1500);
  CHECK(cfg_parse_ms("2m", &v) == 0 && v == 120000);
  CHECK(cfg_parse_ms("30d", &v) == 0 && v == 2592000000ULL);
  bool b;
  CHECK(cfg_parse_bool("on", &b) == 0 && b);
  CHECK(cfg_parse_bool("No", &b) == 0 && !b);
  CHECK(cfg_parse_bool("maybe", &b) != 0);
}

TEST(map_put_get_delete_and_grow) {
  struct map m;
  map_init(&m);
  char k[32];
  for (long i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "key-%ld", i);
    CHECK(map_put(&m, k, (void *)(i + 1), NULL) == 0);
  }
  CHECK_EQ_INT(m.len, 5000);
  for (long i = 0; i < 5000; i += 2) {
    snprintf(k, sizeof k, "key-%ld", i);
    CHECK(map_del(&m, k) == (void *)(i + 1));
  }
  for (long i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "key-%ld", i);
    CHECK(map_get(&m, k) == (i % 2 ? (void *)(i + 1) : NULL));
  }
  void *old;
  CHECK(map_put(&m, "key-1", (void *)99, &old) == 0 && old == (void *)2);
  size_t n = 0;
  for (size_t it = 0; map_next(&m, &it, NULL, NULL);)
    n++;
  CHECK_EQ_INT(n, 2500);
  map_release(&m);
}

TEST(metrics_render_prometheus_text) {
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  struct metric_family *c = metrics_family(m, "t_total", "Things.", METRIC_COUNTER, "kind");
  metric_add(metric_get(c, "a\"b"), 2);
  metric_add(metric_get(c, "a\"b"), 1);
  double bounds[] = {1, 5};
  struct metric_family *h = metrics_histogram(m, "t_seconds", "Time.", "", bounds, 2);
  struct metric *hc = metric_get(h);
  metric_observe(hc, 0.5);
  metric_observe(hc, 3);
  metric_observe(hc, 10);
  CHECK(metrics_family(m, "t_total", "x", METRIC_GAUGE, "kind") == NULL); /* type clash */
  struct buf b;
  buf_init(&b, 0);
  metrics_render(m, &b);
  CHECK(strstr(b.data, "# TYPE t_total counter\nt_total{kind=\"a\\\"b\"} 3\n"));
  CHECK(strstr(b.data, "t_seconds_bucket{le=\"1\"} 1\n"));
  CHECK(strstr(b.data, "t_seconds_bucket{le=\"5\"} 2\n"));
  CHECK(strstr(b.data, "t_seconds_bucket{le=\"+Inf\"} 3\n"));
  CHECK(strstr(b.data, "t_seconds_sum 13.5\n"));
  CHECK(strstr(b.data, "t_seconds_count 3\n"));
  buf_release(&b);
  metrics_destroy(m);
}

/* Issue 9.17: 17.4 was written "17.399999999999999". */
TEST(jsonout_double_is_shortest_round_trip) {
  static const struct {
    double v;
    const char *text;
  } cases[] = {
      {17.4, "17.4"},
      {0.1 + 0.2, "0.30000000000000004"},
      {100, "100"},
      {-0.0, "-0"},
      {1e-7, "1e-07"},
      {123456789012345678.0, "1.2345678901234568e+17"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {4.9406564584124654e-324, "5e-324"}, /* the smallest subnormal */
      {2.2250738585072014e-308, "2.2250738585072014e-308"},
      {2.5e-8, "2.5e-08"},
  };
  char out[JSONOUT_DOUBLE_MAX];
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    size_t n = jsonout_double(out, cases[i].v);
    CHECK_EQ_STR(out, cases[i].text);
    CHECK_EQ_INT(n, strlen(cases[i].text));
  }
  jsonout_double(out, NAN);
  CHECK_EQ_STR(out, "null");
  jsonout_double(out, -INFINITY);
  CHECK_EQ_STR(out, "null");
  /* the same writer outside JSON spells the non-finite values out */
  char r[REAL_SHORTEST_MAX];
  CHECK_EQ_INT(real_shortest(r, 17.4), 4);
  CHECK_EQ_STR(r, "17.4");
  real_shortest(r, NAN);
  CHECK_EQ_STR(r, "NaN");
  real_shortest(r, INFINITY);
  CHECK_EQ_STR(r, "+Inf");
  real_shortest(r, -INFINITY);
  CHECK_EQ_STR(r, "-Inf");
}

/* The reference: %.15g, %.16g or %.17g, the first that reads back
 * (subnormals from one digit up), as real_shortest wrote every number
 * before it printed short decimals itself. */
static void shortest_by_printf(char *out, double v) {
  int first = v != 0 && fabs(v) < DBL_MIN ? 1 : 15;
  for (int prec = first; prec <= 17; prec++) {
    snprintf(out, REAL_SHORTEST_MAX, "%.*g", prec, v);
    if (prec == 17 || strtod(out, NULL) == v)
      break;
  }
}

static void check_as_printf(double v) {
  char got[REAL_SHORTEST_MAX], want[REAL_SHORTEST_MAX];
  size_t n = real_shortest(got, v);
  shortest_by_printf(want, v);
  CHECK_EQ_STR(got, want);
  CHECK_EQ_INT(n, strlen(want));
}

/* Readings with a few decimals are written without printf: the same text
 * as printf's, byte for byte, on decimals of every length and at the
 * edges of that path (1e-4, 1e15, 15 and 16 digits, nine decimals). */
TEST(real_shortest_writes_decimals_as_printf_does) {
  static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11};
  for (int k = 0; k < (int)ARRAY_LEN(p10); k++)
    for (long long i = -2000; i <= 2000; i++) {
      check_as_printf((double)i / p10[k]);
      check_as_printf((double)(i * 7919 + 123456789) / p10[k]);
    }
  static const double edges[] = {1e-4, 1e15, 999999999999999.0, 99999999999999.9,
                                 123456789012345.0, 1234567890123456.0, 0.123456789,
                                 0.1234567891, 12345.6789012345, 0.1 + 0.2, 1.0 / 3,
                                 9.999999999e-5, 1e-5, 0.5, 2.5, 1e14, 4503599627370496.5,
                                 0.0001234, 17.4, 23.45, 1013.25, 0, 9007199254740993.0};
  for (size_t i = 0; i < ARRAY_LEN(edges); i++)
    for (int sign = -1; sign <= 1; sign += 2) {
      double v = sign * edges[i];
      check_as_printf(v);
      check_as_printf(nextafter(v, INFINITY));
      check_as_printf(nextafter(v, -INFINITY));
    }
  uint64_t x = 0x2545f4914f6cdd1dull; /* random decimals of 1 to 17 digits */
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int digits = 1 + (int)(x % 17), exp10 = (int)(x >> 8 & 31) - 12;
    unsigned long long m = (x >> 16) % 100000000000000000ull, cut = 1;
    for (int d = 0; d < digits; d++)
      cut *= 10;
    char text[48];
    snprintf(text, sizeof text, "%llue%d", m % cut, exp10);
    check_as_printf(strtod(text, NULL));
  }
}

/* A random tree (objects, arrays, strings with every control character
 * and UTF-8, integers, reals of random bits and short decimals, the
 * literals), depth at most `depth`. */
static json_t *random_tree(uint64_t *x, int depth) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  uint64_t r = *x;
  int kind = depth > 0 ? (int)(r % 9) : 2 + (int)(r % 7);
  switch (kind) {
  case 0: case 1: {
    json_t *c = kind ? json_array() : json_object();
    int n = (int)(r >> 8 & 7);
    for (int i = 0; i < n; i++) {
      json_t *v = random_tree(x, depth - 1);
      if (kind) {
        json_array_append_new(c, v);
      } else {
        char k[24];
        snprintf(k, sizeof k, "k\"%d\x01\xc3\xa9/%d", i, (int)(r >> 16 & 3));
        json_object_set_new(c, k, v);
      }
    }
    return c;
  }
  case 2: {
    char t[40];
    size_t n = (size_t)(r >> 8 & 31);
    for (size_t i = 0; i < n; i++) {
      uint64_t b = (r >> (i % 50)) ^ i * 0x9e37;
      t[i] = (char)(b % 3 == 0 ? b % 0x20 : b % 3 == 1 ? 0x20 + b % 0x60 : '\\');
    }
    json_t *s = json_stringn(t, n);
    return s ? s : json_string("\xe2\x82\xac\"\t");
  }
  case 3: return json_integer((json_int_t)r);
  case 4: {
    double v;
    memcpy(&v, &r, sizeof v);
    return json_real(isfinite(v) ? v : 0.5);
  }
  case 5: return json_real((double)(int64_t)(r % 2000001 - 1000000) / 1000.0);
  case 6: return json_true();
  case 7: return json_false();
  default: return json_null();
  }
}

/* The direct writer of compact text writes what jansson's text with its
 * reals rewritten did (JSON_PRESERVE_ORDER, a flag with no effect in
 * jansson 2.14, takes the rewriting path): the same document, byte for
 * byte but for reals of 17 digits or an exponent, always written as
 * jsonout_double writes them ("3e+34", "3.413804297869741e+16") where
 * jansson's text was kept before when shorter ("3e34",
 * "34138042978697408.0"). */
TEST(jsonout_compact_writes_what_the_rewritten_dump_did) {
  uint64_t x = 0x853c49e6748fea9bull;
  for (int i = 0; i < 3000; i++) {
    json_t *t = random_tree(&x, 4);
    for (int any = 0; any < 2; any++) {
      size_t f = JSON_COMPACT | (any ? JSON_ENCODE_ANY : 0);
      char *direct = jsonout_dumps(t, f), *rewritten = jsonout_dumps(t, f | JSON_PRESERVE_ORDER);
      CHECK((direct == NULL) == (rewritten == NULL));
      if (direct) {
        json_t *back = json_loads(direct, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        CHECK(back && json_equal(back, t));
        json_decref(back);
        if (!strpbrk(rewritten, "eE") && !strpbrk(direct, "eE"))
          CHECK_EQ_STR(direct, rewritten);
      }
      free(direct);
      free(rewritten);
    }
    json_decref(t);
  }
  /* text that is not UTF-8 is refused by both */
  json_t *bad = json_pack("{s:o}", "k", json_stringn_nocheck("\xff\xfe", 2));
  CHECK(jsonout_dumps(bad, JSON_COMPACT) == NULL);
  CHECK(jsonout_dumps(bad, JSON_COMPACT | JSON_PRESERVE_ORDER) == NULL);
  json_decref(bad);
  json_t *empty = json_pack("{s:[],s:{}}", "a", "o");
  char *one = jsonout_dumps(empty, JSON_COMPACT);
  CHECK_EQ_STR(one, "{\"a\":[],\"o\":{}}");
  free(one);
  json_decref(empty);
}

/* Property over random bit patterns: what is written reads back as the
 * same double, and one digit fewer would not. */
TEST(jsonout_double_round_trips_random_doubles) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  char out[JSONOUT_DOUBLE_MAX], fewer[400];
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
    double v;
    memcpy(&v, &x, sizeof v);
    if (!isfinite(v))
      continue;
    jsonout_double(out, v);
    CHECK(strtod(out, NULL) == v);
    int digits = 0, zeros = 0; /* significant: first to last digit that is not 0 */
    for (const char *p = out; *p && *p != 'e'; p++) {
      if (*p < '0' || *p > '9')
        continue;
      if (*p == '0') {
        zeros += digits > 0;
      } else {
        digits += zeros + 1;
        zeros = 0;
      }
    }
    if (digits > 1) {
      snprintf(fewer, sizeof fewer, "%.*g", digits - 1, v);
      CHECK(strtod(fewer, NULL) != v);
    }
  }
}

TEST(jsonout_dumps_shortens_reals_and_nothing_else) {
  json_t *j = json_pack("{s:f,s:s,s:i,s:f,s:[f,f],s:f}", "a", 17.4, "s",
                        "1.0000000000000001 \"17.399999999999999\" \\", "i", 3, "r", 2.0, "arr",
                        0.1, -1e-7, "big", 1e300);
  char *text = jsonout_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
  CHECK_EQ_STR(text, "{\"a\":17.4,\"s\":\"1.0000000000000001 \\\"17.399999999999999\\\" "
                     "\\\\\",\"i\":3,\"r\":2.0,\"arr\":[0.1,-1e-07],\"big\":1e+300}");
  free(text);
  json_decref(j);
  text = jsonout_dumps(json_real(0.30000000000000004), JSON_ENCODE_ANY);
  CHECK_EQ_STR(text, "0.30000000000000004");
  free(text);
}

/* Issue 9.17: process_* as Prometheus client libraries define them, and
 * grove_build_info. */
TEST(metrics_process_and_build_info) {
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  CHECK(metrics_add_process(m) == 0);
  CHECK(metrics_add_process(m) == 0); /* once is enough */
  CHECK(metrics_add_build_info(m, "grove", "0.1.0", "abc123") == 0);
  int fd = open("/dev/null", O_RDONLY); /* one more open descriptor to see */
  CHECK(fd >= 0);
  struct buf b;
  buf_init(&b, 0);
  metrics_render(m, &b);
  CHECK(strstr(b.data, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "));
  CHECK(strstr(b.data, "# TYPE process_resident_memory_bytes gauge\n"));
  CHECK(strstr(b.data, "grove_build_info{version=\"0.1.0\",revision=\"abc123\"} 1\n"));
  const char *p = strstr(b.data, "\nprocess_open_fds ");
  CHECK(p);
  long open_fds = atol(p + 18);
  CHECK(open_fds >= 4); /* stdin, stdout, stderr, /dev/null */
  p = strstr(b.data, "\nprocess_max_fds ");
  CHECK(p && atol(p + 17) >= open_fds);
  p = strstr(b.data, "\nprocess_resident_memory_bytes ");
  CHECK(p && atof(p + 31) > 100000);
  p = strstr(b.data, "\nprocess_virtual_memory_bytes ");
  CHECK(p && atof(p + 30) >= 100000);
  p = strstr(b.data, "\nprocess_start_time_seconds ");
  CHECK(p);
  double start = atof(p + 28), now = (double)clock_wall_ms() / 1000;
  CHECK(start > now - 600 && start <= now + 1); /* this process began moments ago */
  close(fd);
  buf_release(&b);
  metrics_destroy(m);
}

TEST(util_percent_decoding) {
  char s[] = "a%20b+c%2F";
  CHECK_EQ_INT(pct_decode(s, strlen(s), true), 6);
  CHECK_EQ_STR(s, "a b c/");
  char bad[] = "x%4";
  CHECK_EQ_INT(pct_decode(bad, strlen(bad), false), -1);
  char nul[] = "x%00";
  CHECK_EQ_INT(pct_decode(nul, strlen(nul), false), -1);
  char out[4];
  CHECK_EQ_INT(pct_decode_to("%41%42%43", 9, out, sizeof out, false), 3); /* fits decoded */
  CHECK_EQ_STR(out, "ABC");
  CHECK_EQ_INT(pct_decode_to("abcd", 4, out, sizeof out, false), -2);
  CHECK_EQ_STR(out, "");
  CHECK_EQ_INT(pct_decode_to("abcd%zz", 7, out, sizeof out, false), -1); /* bad beats long */
  CHECK_EQ_INT(pct_decode_to("a+b", 3, out, sizeof out, true), 3);
  CHECK_EQ_STR(out, "a b");
  CHECK_EQ_INT(pct_decode_to("", 0, out, 0, false), -2);
}

TEST(util_header_tokens) {
  CHECK(header_has_token("gzip, deflate", "gzip"));
  CHECK(header_has_token("deflate,GZIP;q=0.5", "gzip"));
  CHECK(!header_has_token("gzip;q=0", "gzip"));
  CHECK(!header_has_token("xgzip", "gzip"));
  CHECK(header_has_token("keep-alive, Upgrade", "upgrade"));
}

TEST(util_base64_sha1_websocket_accept) {
  /* RFC 6455 section 1.3's example */
  char src[] = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char d[20];
  char out[32];
  sha1(src, strlen(src), d);
  b64_encode(d, 20, out);
  CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(ct_equal("abc", 3, "abc", 3) && !ct_equal("abc", 3, "abd", 3) && !ct_equal("a", 1, "ab", 2));
}

TEST(redis_urls) {
  char host[64], pw[32];
  int port;
  CHECK(redis_url_parse("redis://cache:6380/0", host, sizeof host, &port, pw, sizeof pw) == 0);
  CHECK_EQ_STR(host, "cache");
  CHECK_EQ_INT(port, 6380);
  CHECK_EQ_STR(pw, "");
  CHECK(redis_url_parse("redis://:s3cret@10.0.0.1", host, sizeof host, &port, pw, sizeof pw) == 0);
  CHECK_EQ_STR(host, "10.0.0.1");
  CHECK_EQ_INT(port, 6379);
  CHECK_EQ_STR(pw, "s3cret");
  CHECK(redis_url_parse("http://x", host, sizeof host, &port, pw, sizeof pw) == -1);
  CHECK(redis_url_parse("redis://:99999", host, sizeof host, &port, pw, sizeof pw) == -1);
  CHECK(redis_url_parse("redis://h:0", host, sizeof host, &port, pw, sizeof pw) == -1);
}

TEST(errors_have_names_and_messages) {
  CHECK_EQ_STR(grove_errname(GROVE_ENOMEM), "NOMEM");
  CHECK_EQ_STR(grove_strerror(GROVE_ETOOBIG), "too big");
  CHECK_EQ_STR(grove_strerror(12345), "unknown error");
  CHECK_EQ_STR(grove_strerror(0), "success");
}

TEST(log_json_lines_carry_fields_and_request_id) {
  int p[2];
  CHECK(pipe(p) == 0);
  log_setup(LOG_INFO, true, p[1]);
  log_info("rid1", "cannot open 'x'", "path=\"a b\" n=%d", 5);
  log_debug(NULL, "hidden", "x=1");
  close(p[1]);
  char buf[1024] = {0};
  CHECK(read(p[0], buf, sizeof buf - 1) > 0);
  CHECK(strstr(buf, "\"level\":\"info\",\"msg\":\"cannot open 'x'\",\"path\":\"a b\",\"n\":\"5\",\"req\":\"rid1\"}\n"));
  CHECK(!strstr(buf, "hidden"));
}

static void check_escape(const char *in, const char *want) {
  struct buf b;
  buf_init(&b, 0);
  CHECK(text_escape(&b, in, strlen(in)) == 0);
  CHECK_EQ_STR(b.len ? b.data : "", want);
  buf_release(&b);
}

TEST(text_escape_spells_out_controls_and_bidi) {
  /* the inputs: a TAB and LF that forge a table row, an ESC
   * sequence, a right-to-left override that reverses an email */
  check_escape("eve\tadmin\nroot", "eve\\tadmin\\nroot");
  check_escape("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07");
  check_escape("\xe2\x80\xaemoc.elpmaxe@nimda", "\\u202emoc.elpmaxe@nimda");
  check_escape("a\rb\x7f\x01", "a\\rb\\x7f\\x01");
  /* every bidi control (UAX #9), zero-width and separator characters */
  check_escape("\xd8\x9c\xe2\x80\x8e\xe2\x80\x8f\xe2\x80\xaa\xe2\x81\xa6\xe2\x81\xa9",
               "\\u061c\\u200e\\u200f\\u202a\\u2066\\u2069");
  check_escape("a\xe2\x80\x8b" "b\xef\xbb\xbf\xe2\x80\xa8\xe2\x80\xa9\xc2\xad",
               "a\\u200bb\\ufeff\\u2028\\u2029\\u00ad");
  check_escape("\xc2\x85\xc2\x9b", "\\u0085\\u009b"); /* C1: NEL, CSI */
  /* a backslash is doubled, so "\\n" typed by a user stays distinct */
  check_escape("a\\nb", "a\\\\nb");
  /* bytes that are not UTF-8: overlong, surrogate, cut, past U+10FFFF */
  check_escape("\xc0\xaf\xed\xa0\x80\xe2\x80", "\\xc0\\xaf\\xed\\xa0\\x80\\xe2\\x80");
  check_escape("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");
  /* letters of every script and printable ASCII pass unchanged */
  check_escape("\xc3\x89lodie \xce\xb1\xce\xb2 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8c\xb3 <a&b>",
               "\xc3\x89lodie \xce\xb1\xce\xb2 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8c\xb3 <a&b>");
  check_escape("", "");
  char small[8];
  CHECK_EQ_STR(text_escape_to(small, sizeof small, "ab\tcdef"), "ab\\tcde");
  CHECK_EQ_STR(text_escape_to(small, sizeof small, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"),
               "\xc3\xa9\xc3\xa9\xc3\xa9"); /* cut between characters */
}

TEST(log_text_lines_escape_user_text_and_json_keeps_it) {
  int p[2];
  CHECK(pipe(p) == 0);
  log_setup(LOG_INFO, false, p[1]);
  log_info("r\n1", "login", "email=\"%s\"", "\xe2\x80\xaemoc.elpmaxe@nimda\n2026 error forged");
  log_setup(LOG_INFO, true, p[1]);
  log_info(NULL, "login", "email=\"%s\"", "\xe2\x80\xaex\ty");
  close(p[1]);
  char buf[2048] = {0};
  size_t got = 0;
  ssize_t n;
  while ((n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)n;
  char *nl = strchr(buf, '\n');
  CHECK(nl && strchr(nl + 1, '\n') && !strchr(strchr(nl + 1, '\n') + 1, '\n')); /* 2 lines */
  CHECK(strstr(buf, " info login email=\"\\u202emoc.elpmaxe@nimda\\n2026 error forged\" req=r\\n1\n"));
  CHECK(strstr(nl + 1, "\"email\":\"\xe2\x80\xaex\\ty\"")); /* JSON: exact, JSON-escaped */
}

/* A value holding quotes (a PostgreSQL error names a relation in quotes)
 * or what looks like another field stays one field in both formats. */
TEST(log_values_may_hold_quotes_and_fields) {
  int p[2];
  CHECK(pipe(p) == 0);
  log_setup(LOG_INFO, true, p[1]);
  log_error(NULL, "cannot read", "error=\"%s\" n=%zu part=%s pct=%d%% w=%.*s|%5.1f", 
            "relation \"x\" does not exist\" admin=\"yes", (size_t)7, "a b\"c", 50, 2, "xyz",
            2.25);
  log_setup(LOG_INFO, false, p[1]);
  log_error(NULL, "cannot read", "error=\"%s\" path=%s n=%lld", "say \"hi\" a\\b", "p q",
            -3LL);
  close(p[1]);
  char buf[2048] = {0};
  size_t got = 0;
  ssize_t n;
  while ((n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)n;
  CHECK(strstr(buf, "\"msg\":\"cannot read\",\"error\":\"relation \\\"x\\\" does not exist\\\" "
                    "admin=\\\"yes\",\"n\":\"7\",\"part\":\"a b\\\"c\",\"pct\":\"50%\","
                    "\"w\":\"xy|  2.2\"}\n"));
  CHECK(!strstr(buf, "\"admin\""));
  CHECK(strstr(buf, " error cannot read error=\"say \\\"hi\\\" a\\\\b\" path=\"p q\" n=-3\n"));
}

static int check_state(void *arg, char *why, size_t n) {
  const char *trouble = arg;
  if (!*trouble)
    return 0;
  snprintf(why, n, "%s", trouble);
  return GROVE_EIO;
}

struct seen {
  char names[4][16];
  int rc[4];
  char why[4][64];
  int n;
};

static void note(const char *name, int rc, const char *why, void *arg) {
  struct seen *s = arg;
  snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
  snprintf(s->why[s->n], sizeof s->why[0], "%s", why);
  s->rc[s->n++] = rc;
}

TEST(health_checks_report_trouble_until_it_clears) {
  struct health *h;
  CHECK(health_create(&h) == 0);
  char disk[64] = "", other[64] = "";
  CHECK(health_add(h, "series", check_state, disk) == 0);
  CHECK(health_add(h, "other", check_state, other) == 0);
  CHECK_EQ_INT(health_add(h, "", check_state, disk), GROVE_EINVAL);
  struct seen s = {0};
  CHECK_EQ_INT(health_run(h, note, &s), 0);
  CHECK_EQ_INT(s.n, 2);
  CHECK_EQ_STR(s.names[0], "series");
  CHECK(s.rc[0] == 0 && s.why[0][0] == '\0');
  snprintf(disk, sizeof disk, "series log: no space");
  memset(&s, 0, sizeof s);
  CHECK_EQ_INT(health_run(h, note, &s), 1);
  CHECK(s.rc[0] == GROVE_EIO);
  CHECK_EQ_STR(s.why[0], "series log: no space");
  disk[0] = '\0'; /* recovered: healthy at the next run, nobody told */
  health_remove(h, check_state, other);
  memset(&s, 0, sizeof s);
  CHECK_EQ_INT(health_run(h, note, &s), 0);
  CHECK_EQ_INT(s.n, 1);
  health_destroy(h);
  health_destroy(NULL);
}

/* ---- times -------------------------------------------------------------------- */

static const int64_t time_extremes[] = {INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, -1000000000,
                                        -1, 0, 1, 1000000000, INT64_MAX - 2, INT64_MAX - 1,
                                        INT64_MAX};

/* Every checked helper agrees with 128-bit arithmetic on the extremes:
 * the exact result when it is an int64, GROVE_ERANGE (out untouched)
 * otherwise. */
TEST(time_arithmetic_is_checked_on_the_extremes) {
  size_t n = sizeof time_extremes / sizeof time_extremes[0];
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      int64_t a = time_extremes[i], b = time_extremes[j], out = 42;
      __int128 sum = (__int128)a + b, dif = (__int128)a - b, prod = (__int128)a * b;
      bool sum_fits = sum >= INT64_MIN && sum <= INT64_MAX;
      CHECK_EQ_INT(time_add(a, b, &out), sum_fits ? 0 : GROVE_ERANGE);
      CHECK(out == (sum_fits ? (int64_t)sum : 42));
      out = 42;
      bool dif_fits = dif >= INT64_MIN && dif <= INT64_MAX;
      CHECK_EQ_INT(time_sub(a, b, &out), dif_fits ? 0 : GROVE_ERANGE);
      CHECK(out == (dif_fits ? (int64_t)dif : 42));
      out = 42;
      bool prod_fits = prod >= INT64_MIN && prod <= INT64_MAX;
      CHECK_EQ_INT(time_mul(a, b, &out), prod_fits ? 0 : GROVE_ERANGE);
      CHECK(out == (prod_fits ? (int64_t)prod : 42));
      if (b <= 0)
        continue;
      /* floor and ceil to a step: the true multiple, or a refusal */
      __int128 q = a / b - (a % b != 0 && a < 0);
      __int128 fl = q * b, ce = fl == a ? fl : fl + b;
      CHECK(time_floor_div(a, b) == (int64_t)q);
      out = 42;
      CHECK_EQ_INT(time_floor(a, b, &out), fl >= INT64_MIN ? 0 : GROVE_ERANGE);
      CHECK(out == (fl >= INT64_MIN ? (int64_t)fl : 42));
      out = 42;
      CHECK_EQ_INT(time_ceil(a, b, &out), ce <= INT64_MAX && ce >= INT64_MIN ? 0 : GROVE_ERANGE);
    }
  CHECK(time_valid(TIME_MIN_NS) && time_valid(TIME_MAX_NS) && time_valid(0));
  CHECK(!time_valid(INT64_MIN) && !time_valid(INT64_MIN + 1) && !time_valid(INT64_MAX));
  CHECK(time_clamp(INT64_MIN) == TIME_MIN_NS && time_clamp(INT64_MAX) == TIME_MAX_NS);
}

TEST(rfc3339_times_in_range_and_out) {
  int64_t t = 0;
  CHECK_EQ_INT(time_parse_rfc3339("2026-11-23T10:00:00Z", &t), 0);
  CHECK(t == 1795428000000000000LL);
  CHECK_EQ_INT(time_parse_rfc3339("2026-11-23t10:00:00.5+01:30", &t), 0);
  CHECK(t == 1795428000000000000LL - 5400000000000LL + 500000000);
  CHECK_EQ_INT(time_parse_rfc3339("1969-12-31 23:59:59.999999999999z", &t), 0);
  CHECK(t == -1);
  /* the edges of InfluxDB's range, and one nanosecond past them */
  CHECK_EQ_INT(time_parse_rfc3339("1677-09-21T00:12:43.145224194Z", &t), 0);
  CHECK(t == TIME_MIN_NS);
  CHECK_EQ_INT(time_parse_rfc3339("2262-04-11T23:47:16.854775806Z", &t), 0);
  CHECK(t == TIME_MAX_NS);
  CHECK_EQ_INT(time_parse_rfc3339("1677-09-21T00:12:43.145224193Z", &t), GROVE_ERANGE);
  CHECK_EQ_INT(time_parse_rfc3339("2262-04-11T23:47:16.854775807Z", &t), GROVE_ERANGE);
  /* the fuzz seed that overflowed, and the far ends of four digits */
  CHECK_EQ_INT(time_parse_rfc3339("5026-11-23T10:00:00z", &t), GROVE_ERANGE);
  CHECK_EQ_INT(time_parse_rfc3339("9999-12-31T23:59:60.999999999-23:59", &t), GROVE_ERANGE);
  CHECK_EQ_INT(time_parse_rfc3339("0000-01-01T00:00:00+23:59", &t), GROVE_ERANGE);
  CHECK(!rfc3339_parse("5026-11-23T10:00:00z", &t));
  /* not RFC 3339 */
  static const char *const bad[] = {
      "",  "2026-11-23",  "2026-11-23T10:00:00",  "2026-02-30T10:00:00Z",
      "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-23T24:00:00Z",
      "+026-11-23T10:00:00Z", " 2026-11-23T10:00:00Z", "2026-11-23T10:00:00.Z",
      "2026-11-23T10:00:00+1:00", "2026-11-23T10:00:00Zjunk", "2026-1-23T10:00:00Z",
      "-2026-11-23T10:00:00Z", "2026-11-23T10:0 :00Z",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (time_parse_rfc3339(bad[i], &t) != GROVE_EINVAL)
      fprintf(stderr, "accepted '%s'\n", bad[i]);
    CHECK_EQ_INT(time_parse_rfc3339(bad[i], &t), GROVE_EINVAL);
  }
  CHECK_EQ_INT(time_parse_rfc3339("2024-02-29T00:00:00Z", &t), 0); /* a leap day */
  CHECK_EQ_INT(time_parse_rfc3339("2016-12-31T23:59:60Z", &t), 0); /* a leap second */
  CHECK(t == 1483228800000000000LL);
}

/* Durations fit an int64 in nanoseconds, so no caller's (int64_t)ms *
 * 1000000 can overflow. */
TEST(config_durations_fit_nanoseconds) {
  uint64_t v;
  CHECK(cfg_parse_ms("292y", &v) != 0);
  CHECK(cfg_parse_ms("106000d", &v) == 0 && (int64_t)v * 1000000 / 1000000 == (int64_t)v);
  CHECK(cfg_parse_ms("107000d", &v) != 0);
  CHECK(cfg_parse_ms("9223372036853", &v) == 0 && v == 9223372036853ULL);
  CHECK(cfg_parse_ms("9223372036855", &v) != 0);
  CHECK(cfg_parse_ms("1e300h", &v) != 0);
  CHECK(cfg_parse_ms("nan", &v) != 0);
  CHECK(cfg_parse_ms("inf", &v) != 0);
  CHECK(cfg_parse_size("16g", &v) == 0 && v == 16ULL << 30); /* sizes keep their range */
}

static const struct test tests[] = {
    T(jsonout_compact_writes_what_the_rewritten_dump_did),
    T(health_checks_report_trouble_until_it_clears),
    T(buf_grows_and_stays_terminated), T(buf_refuses_past_its_maximum_and_keeps_contents),
    T(buf_json_escape_escapes_controls), T(config_defaults_file_env_flags_in_order),
    T(config_rejects_unknown_and_bad_values), T(config_refuses_an_option_declared_twice),
    T(config_refuses_a_section_past_its_cap), T(config_parsers),
    T(map_put_get_delete_and_grow), T(metrics_render_prometheus_text),
    T(jsonout_double_is_shortest_round_trip), T(jsonout_double_round_trips_random_doubles),
    T(real_shortest_writes_decimals_as_printf_does),
    T(jsonout_dumps_shortens_reals_and_nothing_else), T(metrics_process_and_build_info),
    T(util_percent_decoding), T(util_header_tokens), T(util_base64_sha1_websocket_accept),
    T(redis_urls), T(errors_have_names_and_messages), T(log_json_lines_carry_fields_and_request_id),
    T(text_escape_spells_out_controls_and_bidi), T(log_text_lines_escape_user_text_and_json_keeps_it),
    T(log_values_may_hold_quotes_and_fields),
    T(time_arithmetic_is_checked_on_the_extremes), T(rfc3339_times_in_range_and_out),
    T(config_durations_fit_nanoseconds),
};
TEST_MAIN(tests)
