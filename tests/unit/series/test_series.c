/* test_series.c — the line protocol parser. */
#include "../test.h"
#include <math.h>

#include "core/error.h"
#include "series/chunk.h"
#include "series/lineproto.h"

static char scratch[LP_MAX_LINE + 1];
static struct lp_point pt;

static int parse(const char *line, char *err) {
  return lp_parse_line(line, strlen(line), LP_NS, 42, scratch, &pt, err, 64);
}

static bool is(struct lp_str s, const char *want) {
  return s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

TEST(parses_tags_fields_and_timestamp) {
  char err[64];
  CHECK(parse("air,station=s1,region=north pm25=12.5,ok=true,count=3i,big=7u,note=\"a b\" "
              "1700000000000000000",
              err) == 0);
  CHECK(is(pt.measurement, "air"));
  CHECK_EQ_INT(pt.ntags, 2);
  CHECK(is(pt.tag_keys[1], "region") && is(pt.tag_values[1], "north"));
  CHECK_EQ_INT(pt.nfields, 5);
  CHECK(pt.fields[0].type == LP_FLOAT && pt.fields[0].v.f == 12.5);
  CHECK(pt.fields[1].type == LP_BOOL && pt.fields[1].v.b);
  CHECK(pt.fields[2].type == LP_INT && pt.fields[2].v.i == 3);
  CHECK(pt.fields[3].type == LP_UINT && pt.fields[3].v.u == 7);
  CHECK(pt.fields[4].type == LP_STRING && is(pt.fields[4].v.s, "a b"));
  CHECK(pt.ts_ns == 1700000000000000000LL);
}

TEST(escapes_in_names_and_strings) {
  char err[64];
  CHECK(parse("my\\ meas\\,x,tag\\ k=v\\,1\\ 2 f\\=k=\"say \\\"hi\\\" \\\\ there\"", err) == 0);
  CHECK(is(pt.measurement, "my meas,x"));
  CHECK(is(pt.tag_keys[0], "tag k") && is(pt.tag_values[0], "v,1 2"));
  CHECK(is(pt.fields[0].key, "f=k"));
  CHECK(is(pt.fields[0].v.s, "say \"hi\" \\ there"));
  CHECK(pt.ts_ns == 42); /* no timestamp: now */
  CHECK(parse("m v=\"a,b c=d\"", err) == 0 && is(pt.fields[0].v.s, "a,b c=d"));
}

TEST(numbers_and_booleans) {
  char err[64];
  CHECK(parse("m a=-1.5e3,b=-4i,c=1,d=F,e=TRUE,f=0.0", err) == 0);
  CHECK(pt.fields[0].v.f == -1500 && pt.fields[1].v.i == -4);
  CHECK(pt.fields[2].type == LP_FLOAT && pt.fields[2].v.f == 1);
  CHECK(pt.fields[3].type == LP_BOOL && !pt.fields[3].v.b && pt.fields[4].v.b);
}

TEST(malformed_lines_say_why) {
  char err[64];
  struct {
    const char *line, *why;
  } bad[] = {
      {"m", "missing fields"},
      {"m ", "missing fields"},
      {"m,t=1", "missing fields"},
      {"m,=1 v=1", "missing tag key"},
      {"m,t= v=1", "missing tag value"},
      {"m v=", "missing field value"},
      {"m v=1x", "invalid number"},
      {"m v=inf", "invalid number"},
      {"m v=NaN", "invalid number"},
      {"m v=1.2.3.4e", "invalid number"},
      {"m v=abci", "invalid integer"},
      {"m v=-3u", "unsigned integer is negative"},
      {"m v=99999999999999999999i", "integer out of range"},
      {"m v=\"open", "unbalanced quotes"},
      {"m v=1 12x", "invalid timestamp"},
      {"m v=1 1 2", "invalid timestamp"},
      {",t=1 v=1", "missing measurement"},
      {"m v=1,", "invalid field format"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    int rc = parse(bad[i].line, err);
    if (rc == 0 || strcmp(err, bad[i].why) != 0)
      fprintf(stderr, "line '%s': rc %d why '%s', want '%s'\n", bad[i].line, rc, err, bad[i].why);
    CHECK(rc != 0);
    CHECK_EQ_STR(err, bad[i].why);
  }
}

TEST(precision_scales_timestamps) {
  char err[64];
  enum lp_precision p;
  CHECK(lp_precision_parse("ms", &p) == 0 && p == LP_MS);
  CHECK(lp_precision_parse("s", &p) == 0 && p == LP_S);
  CHECK(lp_precision_parse("h", &p) != 0);
  CHECK(lp_parse_line("m v=1 1700000000", 16, LP_S, 0, scratch, &pt, err, 64) == 0);
  CHECK(pt.ts_ns == 1700000000000000000LL);
  CHECK(lp_parse_line("m v=1 9223372036854775", 22, LP_S, 0, scratch, &pt, err, 64) != 0);
  CHECK_EQ_STR(err, "timestamp out of range");
}

struct seen {
  int points, errors, first_bad;
  char why[64];
};

static int on_point(const struct lp_point *p, void *arg) {
  (void)p;
  ((struct seen *)arg)->points++;
  return 0;
}

static void on_error(int line, const char *text, size_t len, const char *why, void *arg) {
  struct seen *s = arg;
  (void)text;
  (void)len;
  if (!s->errors++) {
    s->first_bad = line;
    snprintf(s->why, sizeof s->why, "%s", why);
  }
}

TEST(body_keeps_good_lines_and_reports_bad_ones) {
  const char *body = "# telegraf\n"
                     "cpu,host=a usage_idle=98.2,usage_user=1.1 1700000000000000000\n"
                     "\n"
                     "cpu,host=a usage_idle= 1700000000000000000\r\n"
                     "mem,host=a used_percent=41.5,available=8123456i 1700000000000000000\r\n"
                     "   \n"
                     "disk,host=a,path=/ used=1u";
  struct seen s = {0};
  struct lp_stats st;
  CHECK(lp_parse(body, strlen(body), LP_NS, 0, on_point, on_error, &s, &st) == 0);
  CHECK_EQ_INT(st.lines, 4);
  CHECK_EQ_INT(st.points, 3);
  CHECK_EQ_INT(st.errors, 1);
  CHECK_EQ_INT(s.first_bad, 4);
  CHECK_EQ_STR(s.why, "missing field value");
}

/* ---- chunks ---- */

static struct chunk_point in[CHUNK_MAX], back[CHUNK_MAX];

static uint64_t rs = 2463534242ULL;
static uint64_t rnd(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return rs;
}

/* Encodes, decodes and compares bit for bit; returns the encoded size. */
static size_t round_trip(size_t n) {
  struct buf b;
  buf_init(&b, 0);
  CHECK(chunk_encode(in, n, &b) == 0);
  size_t got = 0;
  CHECK(chunk_decode(b.data, b.len, back, &got) == 0);
  CHECK_EQ_INT(got, n);
  for (size_t i = 0; i < n; i++) {
    CHECK(back[i].ts_ns == in[i].ts_ns);
    CHECK(memcmp(&back[i].value, &in[i].value, 8) == 0 ||
          (isnan(back[i].value) && isnan(in[i].value)));
  }
  size_t len = b.len;
  buf_release(&b);
  return len;
}

TEST(chunks_of_sensor_data_take_under_two_bytes_a_point) {
  /* PM2.5 every 10 s, one decimal, drifting slowly, a missed reading now and then */
  int64_t t = 1700000000LL * 1000000000LL;
  double v = 12.3;
  for (int i = 0; i < 720; i++) {
    t += (rnd() % 50 == 0 ? 20 : 10) * 1000000000LL;
    v += ((int)(rnd() % 5) - 2) / 10.0;
    if (v < 0)
      v = 0;
    in[i] = (struct chunk_point){t, round(v * 10) / 10};
  }
  size_t bytes = round_trip(720);
  fprintf(stderr, "  sensor chunk: %.2f bytes/point\n", (double)bytes / 720);
  CHECK((double)bytes / 720 <= 2.0);
  /* a perfectly regular gauge: two bits a point (one for time, one for value) */
  for (int i = 0; i < 1000; i++)
    in[i] = (struct chunk_point){(int64_t)i * 60000000000LL, 50};
  CHECK(round_trip(1000) <= 1000 / 4 + 32);
}

TEST(chunks_round_trip_any_doubles_and_times) {
  for (int round = 0; round < 50; round++) {
    size_t n = 1 + rnd() % CHUNK_MAX;
    int64_t t = (int64_t)(rnd() % 2000000000000000000ULL) - 1000000000000000000LL;
    for (size_t i = 0; i < n; i++) {
      t += (int64_t)(rnd() % 3000000000ULL); /* ns jitter */
      uint64_t bits = rnd();
      double v;
      memcpy(&v, &bits, 8);
      if (round % 3 == 0)
        v = (double)(int64_t)(rnd() % 100000) / 100.0; /* decimals */
      if (round % 5 == 1 && i % 7 == 0)
        v = i % 2 ? INFINITY : -0.0;
      in[i] = (struct chunk_point){t, v};
    }
    round_trip(n);
  }
  in[0] = (struct chunk_point){INT64_MIN, 1};
  in[1] = (struct chunk_point){INT64_MAX, 2};
  round_trip(2);
}

TEST(chunk_refuses_bad_input) {
  struct buf b;
  buf_init(&b, 0);
  in[0] = (struct chunk_point){2, 1};
  in[1] = (struct chunk_point){1, 1};
  CHECK_EQ_INT(chunk_encode(in, 2, &b), GROVE_EINVAL); /* unsorted */
  CHECK_EQ_INT(chunk_encode(in, 0, &b), GROVE_EINVAL);
  for (int i = 0; i < 100; i++)
    in[i] = (struct chunk_point){(int64_t)i * 1000, i * 0.5};
  CHECK(chunk_encode(in, 100, &b) == 0);
  size_t n;
  for (size_t cut = 0; cut < b.len; cut++) /* every truncation is refused */
    CHECK_EQ_INT(chunk_decode(b.data, cut, back, &n), GROVE_EINVAL);
  unsigned char junk[64];
  for (int i = 0; i < 2000; i++) { /* random bytes: an error or points, never a crash */
    for (size_t k = 0; k < sizeof junk; k++)
      junk[k] = (unsigned char)rnd();
    chunk_decode(junk, sizeof junk, back, &n);
  }
  buf_release(&b);
}

static const struct test tests[] = {
    T(chunks_of_sensor_data_take_under_two_bytes_a_point),
    T(chunks_round_trip_any_doubles_and_times), T(chunk_refuses_bad_input),
    T(parses_tags_fields_and_timestamp), T(escapes_in_names_and_strings),
    T(numbers_and_booleans), T(malformed_lines_say_why), T(precision_scales_timestamps),
    T(body_keeps_good_lines_and_reports_bad_ones),
};
TEST_MAIN(tests)
