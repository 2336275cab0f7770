/* test_series.c — the line protocol parser. */
#include "../test.h"
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

static const struct test tests[] = {
    T(parses_tags_fields_and_timestamp), T(escapes_in_names_and_strings),
    T(numbers_and_booleans), T(malformed_lines_say_why), T(precision_scales_timestamps),
    T(body_keeps_good_lines_and_reports_bad_ones),
};
TEST_MAIN(tests)
