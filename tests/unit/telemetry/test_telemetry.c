/* test_telemetry.c — the shared write path: which lines a consumer
 * wants, what each consumer is handed after a write (and what not), the
 * series_key hook, verdicts, and apps' lines through telemetry_write. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "core/error.h"
#include "core/util.h"
#include "series/series.h"
#include "telemetry/internal.h"

static struct telemetry *open_with(uint64_t keep_raw_ms) {
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/grove-telemetry-XXXXXX");
  CHECK(mkdtemp(dir));
  struct telemetry_cfg cfg = {.flush_ms = 600000, .flush_points = 0, .keep_raw_ms = keep_raw_ms,
                              .read_points = 10, .read_max = 100};
  struct telemetry_env env = {.data_dir = dir};
  struct telemetry *t;
  char err[256];
  int rc = telemetry_open(&t, &cfg, &env, err, sizeof err);
  if (rc)
    fprintf(stderr, "telemetry_open: %s\n", err);
  CHECK(rc == 0);
  return t;
}

/* What a consumer was handed: points copied out (their strings too). */
struct seen {
  int calls;
  size_t n, total;
  char meas[16][64], field[16][64], tags[16][128];
  double value[16];
  uint32_t series[16];
  size_t late; /* told back in the verdict */
};

static void copy_str(char *out, size_t size, struct telemetry_str s) {
  CHECK(s.p[s.n] == '\0'); /* NUL-ended in a batch */
  CHECK(s.n < size);
  memcpy(out, s.p, s.n + 1);
}

static void on_batch(const struct telemetry_point *pts, size_t n, struct telemetry_verdict *v,
                     void *arg) {
  struct seen *s = arg;
  s->calls++;
  CHECK(n >= 1 && n <= TELEMETRY_BATCH_MAX);
  s->total += n;
  for (size_t i = 0; i < n && s->n < 16; i++, s->n++) {
    copy_str(s->meas[s->n], sizeof s->meas[0], pts[i].measurement);
    copy_str(s->field[s->n], sizeof s->field[0], pts[i].field);
    char *o = s->tags[s->n];
    o[0] = '\0';
    for (int k = 0; k < pts[i].ntags; k++) {
      CHECK(pts[i].tags[k].value.p[pts[i].tags[k].value.n] == '\0');
      snprintf(o + strlen(o), 128 - strlen(o), "%s%.*s=%.*s", k ? "," : "",
               (int)pts[i].tags[k].key.n, pts[i].tags[k].key.p, (int)pts[i].tags[k].value.n,
               pts[i].tags[k].value.p);
    }
    s->value[s->n] = pts[i].value;
    s->series[s->n] = pts[i].series;
  }
  v->late = s->late;
}

static void key_is(struct telemetry *t, uint32_t id, const char *want) {
  char key[256];
  CHECK(series_key_of(telemetry_series(t), id, key, sizeof key) == 0);
  CHECK_EQ_STR(key, want);
}

TEST(a_consumer_wants_its_measurements_and_its_tag) {
  static const char *const ms[] = {"cpu", "mem", NULL};
  struct telemetry_consumer any = {.name = "any", .batch = on_batch};
  struct telemetry_consumer by_m = {.name = "m", .measurements = ms, .batch = on_batch};
  struct telemetry_consumer by_tag = {.name = "t", .tag = "station", .batch = on_batch};
  struct telemetry_consumer both = {.name = "b", .measurements = ms, .tag = "host",
                                    .batch = on_batch};
  struct telemetry_tag host[] = {{{"host", 4}, {"a", 1}}};
  struct telemetry_tag station[] = {{{"region", 6}, {"n", 1}}, {{"station", 7}, {"s1", 2}}};
  struct telemetry_tag near[] = {{{"stations", 8}, {"x", 1}}, {{"statio", 6}, {"y", 1}}};
  CHECK(telemetry_consumer_wants(&any, "disk", 4, NULL, 0));
  CHECK(telemetry_consumer_wants(&by_m, "cpu", 3, NULL, 0));
  CHECK(telemetry_consumer_wants(&by_m, "mem", 3, host, 1));
  CHECK(!telemetry_consumer_wants(&by_m, "cpu2", 4, NULL, 0));
  CHECK(!telemetry_consumer_wants(&by_m, "cp", 2, NULL, 0));   /* a prefix is not the name */
  CHECK(telemetry_consumer_wants(&by_m, "cpu,x", 3, NULL, 0)); /* n bytes count, not the NUL */
  CHECK(telemetry_consumer_wants(&by_tag, "air", 3, station, 2));
  CHECK(!telemetry_consumer_wants(&by_tag, "air", 3, host, 1));
  CHECK(!telemetry_consumer_wants(&by_tag, "air", 3, near, 2)); /* whole key names only */
  CHECK(telemetry_consumer_wants(&both, "cpu", 3, host, 1));
  CHECK(!telemetry_consumer_wants(&both, "cpu", 3, station, 2));
  CHECK(!telemetry_consumer_wants(&both, "disk", 4, host, 1));
  CHECK(telemetry_tag_get(station, 2, "station")->n == 2);
  CHECK(!telemetry_tag_get(station, 2, "host"));
}

TEST(consumers_are_refused_when_unnamed_twice_or_too_many) {
  struct telemetry *t = open_with(0);
  struct seen s = {0};
  struct telemetry_consumer c = {.name = "flow", .batch = on_batch, .arg = &s};
  CHECK_EQ_INT(telemetry_consume(t, &c), 0);
  CHECK_EQ_INT(telemetry_consume(t, &c), GROVE_EEXIST);
  struct telemetry_consumer none = {.name = "x"};
  CHECK_EQ_INT(telemetry_consume(t, &none), GROVE_EINVAL);
  static char names[TELEMETRY_MAX_CONSUMERS][8];
  int rc = 0;
  for (int i = 1; i <= TELEMETRY_MAX_CONSUMERS && !rc; i++) {
    snprintf(names[i - 1], sizeof names[0], "c%d", i);
    c.name = names[i - 1];
    rc = telemetry_consume(t, &c);
  }
  CHECK_EQ_INT(rc, GROVE_ETOOBIG);
  telemetry_close(t);
}

TEST(each_consumer_gets_only_the_points_it_wants_once_stored) {
  struct telemetry *t = open_with(0);
  static const char *const cpu[] = {"cpu", NULL};
  struct seen flow = {0}, matrix = {0};
  struct telemetry_consumer a = {.name = "flow", .tag = "station", .batch = on_batch,
                                 .arg = &flow};
  struct telemetry_consumer b = {.name = "matrix", .measurements = cpu, .batch = on_batch,
                                 .arg = &matrix};
  CHECK(telemetry_consume(t, &a) == 0 && telemetry_consume(t, &b) == 0);
  const char body[] = "air,station=s1,region=n pm25=12.5,note=\"x\",n=3i 1000\n"
                      "cpu,host=h1 usage=0.5 1000\n"
                      "disk,host=h1 free=7 1000\n"
                      "cpu,station=s2 temp=40 2000\n";
  struct telemetry_result res;
  int failed = -1;
  CHECK_EQ_INT(telemetry_write_lp(t, body, strlen(body), LP_NS, &res, &failed), 0);
  CHECK_EQ_INT(failed, 0);
  CHECK_EQ_INT(res.points, 5); /* pm25, n, usage, free, temp: not the string */
  /* flow: lines with a station tag, numeric fields only, in order */
  CHECK_EQ_INT(flow.calls, 1);
  CHECK_EQ_INT(flow.n, 3);
  CHECK_EQ_STR(flow.meas[0], "air");
  CHECK_EQ_STR(flow.field[0], "pm25");
  CHECK_EQ_STR(flow.tags[0], "station=s1,region=n"); /* as the writer gave them */
  CHECK(flow.value[0] == 12.5);
  CHECK_EQ_STR(flow.field[1], "n");
  CHECK(flow.value[1] == 3);
  CHECK_EQ_STR(flow.meas[2], "cpu");
  CHECK_EQ_STR(flow.field[2], "temp");
  key_is(t, flow.series[0], "air,region=n,station=s1 pm25");
  /* matrix: the cpu lines, whatever their tags */
  CHECK_EQ_INT(matrix.calls, 1);
  CHECK_EQ_INT(matrix.n, 2);
  CHECK_EQ_STR(matrix.field[0], "usage");
  CHECK_EQ_STR(matrix.tags[0], "host=h1");
  CHECK_EQ_STR(matrix.field[1], "temp");
  key_is(t, matrix.series[0], "cpu,host=h1 usage");
  CHECK(matrix.series[1] == flow.series[2]);
  /* a point no one consumes is stored all the same */
  uint32_t id;
  CHECK_EQ_INT(series_find(telemetry_series(t), "disk,host=h1 free", &id), 0);
  struct series_sample *pts;
  size_t n;
  CHECK_EQ_INT(series_range(telemetry_series(t), id, INT64_MIN, INT64_MAX, &pts, &n), 0);
  CHECK(n == 1 && pts[0].ts_ns == 1000 && pts[0].value == 7);
  free(pts);
  telemetry_close(t);
}

TEST(a_write_no_consumer_wants_calls_no_one) {
  struct telemetry *t = open_with(0);
  struct seen s = {0};
  struct telemetry_consumer c = {.name = "flow", .tag = "station", .batch = on_batch, .arg = &s};
  CHECK(telemetry_consume(t, &c) == 0);
  const char body[] = "weather,city=x temp=3 1\n";
  struct telemetry_result res;
  CHECK_EQ_INT(telemetry_write_lp(t, body, strlen(body), LP_NS, &res, NULL), 0);
  CHECK_EQ_INT(res.points, 1);
  CHECK_EQ_INT(s.calls, 0);
  telemetry_close(t);
}

/* flow's rule, in small: a station's fields go to "st,station=ID field" */
static int station_key(const struct telemetry_point *p, struct buf *key, void *arg) {
  int *calls = arg;
  (*calls)++;
  CHECK(p->series == 0);
  const struct telemetry_str *st = telemetry_tag_get(p->tags, p->ntags, "station");
  if (!st || (p->field.n == 4 && memcmp(p->field.p, "skip", 4) == 0))
    return 0;
  if (p->field.n == 3 && memcmp(p->field.p, "bad", 3) == 0)
    return GROVE_EINVAL;
  struct telemetry_key k = {.measurement = {"st", 2}, .field = p->field, .ntags = 1};
  k.tags[0] = (struct telemetry_tag){{"station", 7}, *st};
  int rc = telemetry_key_encode(key, &k);
  return rc ? rc : 1;
}

static void ignore_batch(const struct telemetry_point *pts, size_t n, struct telemetry_verdict *v,
                         void *arg) {
  (void)pts, (void)n, (void)v, (void)arg;
}

TEST(series_key_stores_a_field_where_the_consumer_says_without_type_checks) {
  struct telemetry *t = open_with(0);
  struct seen s = {0};
  int calls = 0;
  struct telemetry_consumer c = {.name = "flow", .tag = "station", .batch = on_batch, .arg = &s};
  struct telemetry_consumer k = {.name = "keys", .tag = "station", .series_key = station_key,
                                 .batch = ignore_batch, .arg = &calls};
  /* the first consumer has no hook, the second names the series */
  CHECK(telemetry_consume(t, &c) == 0);
  CHECK(telemetry_consume(t, &k) == 0);
  const char body[] = "a,station=s1,x=1 pm25=1,skip=2,label=\"s\" 10\n"
                      "b,station=s1 pm25=3i 20\n"     /* an integer into the same series */
                      "c,station=s1 bad=1 30\n";      /* the hook cannot make a key */
  struct telemetry_result res;
  int failed = 0;
  CHECK_EQ_INT(telemetry_write_lp(t, body, strlen(body), LP_NS, &res, &failed), 0);
  CHECK_EQ_INT(failed, 1);
  CHECK_EQ_INT(res.points, 3);
  CHECK_EQ_INT(calls, 4); /* numeric fields of matched lines: pm25, skip, pm25, bad */
  CHECK_EQ_INT(s.n, 3);
  key_is(t, s.series[0], "st,station=s1 pm25");
  key_is(t, s.series[1], "a,station=s1,x=1 skip");
  CHECK(s.series[2] == s.series[0]);
  CHECK_EQ_STR(s.meas[2], "b"); /* consumers see the line as written */
  /* the consumer's series recorded no type: a float after an integer is fine */
  const char more[] = "d,station=s1 pm25=4.5 40\n";
  CHECK_EQ_INT(telemetry_write_lp(t, more, strlen(more), LP_NS, &res, &failed), 0);
  CHECK_EQ_INT(failed, 0);
  CHECK_EQ_INT(res.points, 1);
  telemetry_close(t);
}

TEST(refused_lines_reach_no_consumer_and_verdicts_add_up) {
  struct telemetry *t = open_with(0);
  struct seen a = {.late = 2}, b = {.late = 3};
  struct telemetry_consumer ca = {.name = "a", .batch = on_batch, .arg = &a};
  struct telemetry_consumer cb = {.name = "b", .tag = "k", .batch = on_batch, .arg = &b};
  CHECK(telemetry_consume(t, &ca) == 0 && telemetry_consume(t, &cb) == 0);
  const char body[] = "m,k=1 f=1 1\n"
                      "m,k=1 f=1i 2\n"   /* field type conflict: refused whole */
                      "m,k=1 f=2,g=oops 3\n" /* a bad line the parser refuses */
                      "m f=3 4\n";
  struct telemetry_result res;
  int failed = 0;
  CHECK_EQ_INT(telemetry_write_lp(t, body, strlen(body), LP_NS, &res, &failed), 0);
  CHECK_EQ_INT(failed, 2);
  CHECK_EQ_INT(res.points, 2);
  CHECK_EQ_INT(a.n, 2);
  CHECK(a.value[0] == 1 && a.value[1] == 3);
  CHECK_EQ_INT(b.n, 1); /* a subset of the write: only its own points */
  CHECK(b.value[0] == 1);
  CHECK_EQ_INT(res.verdict.late, 5);
  telemetry_close(t);
}

TEST(a_large_write_comes_in_calls_of_at_most_the_batch_max) {
  struct telemetry *t = open_with(0);
  struct seen s = {.late = 1};
  struct telemetry_consumer c = {.name = "flow", .tag = "station", .batch = on_batch, .arg = &s};
  CHECK(telemetry_consume(t, &c) == 0);
  struct buf body;
  buf_init(&body, 0);
  for (int i = 0; i < 1500; i++) /* 3,000 matching points among 1,500 others */
    buf_printf(&body, "air,station=s%d a=%d,b=2 %d\nother,x=1 v=1 %d\n", i % 10, i, i + 1, i + 1);
  struct telemetry_result res;
  CHECK_EQ_INT(telemetry_write_lp(t, body.data, body.len, LP_NS, &res, NULL), 0);
  CHECK_EQ_INT(res.points, 4500);
  CHECK_EQ_INT(s.total, 3000);
  CHECK_EQ_INT(s.calls, 3); /* 1024 + 1024 + 952 */
  CHECK_EQ_INT(res.verdict.late, 3); /* one a call, summed */
  buf_release(&body);
  telemetry_close(t);
}

struct refusals {
  size_t n, index[8];
  char why[8][160];
};

static void on_refused(size_t index, const char *why, void *arg) {
  struct refusals *r = arg;
  CHECK(r->n < 8);
  r->index[r->n] = index;
  snprintf(r->why[r->n++], sizeof r->why[0], "%s", why);
}

TEST(app_lines_go_the_same_way_and_bad_ones_are_refused_by_index) {
  struct telemetry *t = open_with(3600000); /* raw points kept an hour */
  struct seen s = {0};
  struct telemetry_consumer c = {.name = "flow", .tag = "station", .batch = on_batch, .arg = &s};
  CHECK(telemetry_consume(t, &c) == 0);
  int64_t now = (int64_t)clock_wall_ms() * 1000000;
  struct telemetry_tag tags[] = {{{"station", 7}, {"s1", 2}}};
  struct telemetry_tag bad_tag[] = {{{"station", 7}, {"\xff", 1}}};
  struct telemetry_field f1[] = {{{"pm25", 4}, 10}, {{"no2", 3}, 20}};
  struct telemetry_field nan[] = {{{"pm25", 4}, NAN}};
  struct telemetry_field f2[] = {{{"pm10", 4}, 5}};
  struct telemetry_line lines[] = {
      {{"air_quality", 11}, tags, 1, f1, 2, now},
      {{"air_quality", 11}, tags, 1, nan, 1, now},
      {{"air_quality", 11}, bad_tag, 1, f2, 1, now},
      {{"air_quality", 11}, tags, 1, f2, 1, 1000}, /* 1970: past the retention */
      {{"", 0}, tags, 1, f2, 1, now},              /* no measurement */
      {{"air_quality", 11}, tags, 1, f2, 0, now},  /* no field */
      {{"weather", 7}, NULL, 0, f2, 1, now},       /* no one's, stored */
  };
  struct refusals r = {0};
  struct telemetry_result res;
  CHECK_EQ_INT(telemetry_write(t, lines, 7, on_refused, &r, &res), 0);
  CHECK_EQ_INT(res.points, 3);
  CHECK_EQ_INT(res.refused, 5);
  CHECK_EQ_INT(r.n, 5);
  CHECK(r.index[0] == 1 && r.index[1] == 2 && r.index[2] == 3 && r.index[3] == 4 &&
        r.index[4] == 5);
  CHECK(strstr(r.why[0], "finite"));
  CHECK(strstr(r.why[1], "UTF-8"));
  CHECK(strstr(r.why[2], "retention"));
  CHECK(strstr(r.why[3], "series key"));
  CHECK(strstr(r.why[4], "fields"));
  CHECK_EQ_INT(s.calls, 1);
  CHECK_EQ_INT(s.n, 2);
  key_is(t, s.series[1], "air_quality,station=s1 no2");
  uint32_t id;
  CHECK_EQ_INT(series_find(telemetry_series(t), "weather pm10", &id), 0);
  telemetry_close(t);
}

/* A line written before finds its fields' series in one look-up (the line
 * cache); whatever differs (field order, a type, a field more or less)
 * goes the long way and is stored or refused as it was. */
static void write_ok(struct telemetry *t, const char *body, size_t points, size_t refused) {
  struct telemetry_result res;
  CHECK_EQ_INT(telemetry_write_lp(t, body, strlen(body), LP_NS, &res, NULL), 0);
  CHECK_EQ_INT(res.points, points);
  CHECK_EQ_INT(res.refused, refused);
}

static double last_value(struct telemetry *t, const char *key, size_t *n) {
  uint32_t id;
  CHECK_EQ_INT(series_find(telemetry_series(t), key, &id), 0);
  struct series_sample *pts;
  CHECK_EQ_INT(series_range(telemetry_series(t), id, INT64_MIN, INT64_MAX, &pts, n), 0);
  double v = *n ? pts[*n - 1].value : NAN;
  free(pts);
  return v;
}

TEST(a_line_seen_before_finds_its_series_at_once) {
  struct telemetry *t = open_with(0);
  char body[128];
  for (int i = 1; i <= 5; i++) {
    snprintf(body, sizeof body, "proc,host=a,pid=1 cpu=%d,mem=%d %d000000000\n", i, 10 * i, i);
    write_ok(t, body, 2, 0);
  }
  CHECK_EQ_INT(t->lines.len, 1); /* kept once its series were known and typed */
  write_ok(t, "proc,host=a,pid=1 mem=60,cpu=6 6000000000\n", 2, 0); /* fields swapped */
  size_t n;
  CHECK(last_value(t, "proc,host=a,pid=1 cpu", &n) == 6 && n == 6);
  CHECK(last_value(t, "proc,host=a,pid=1 mem", &n) == 60 && n == 6);
  write_ok(t, "proc,host=a,pid=1 cpu=7i,mem=70 7000000000\n", 0, 1); /* a type conflict */
  write_ok(t, "proc,host=a,pid=1 cpu=8,mem=80,io=1 8000000000\n", 3, 0); /* one more */
  write_ok(t, "proc,host=a,pid=1 cpu=9 9000000000\n", 1, 0);               /* one less */
  write_ok(t, "proc,host=a,pid=1 cpu=10,io=100 10000000000\n", 2, 0);     /* another */
  CHECK(last_value(t, "proc,host=a,pid=1 cpu", &n) == 10 && n == 9);
  CHECK(last_value(t, "proc,host=a,pid=1 mem", &n) == 80 && n == 7);
  CHECK(last_value(t, "proc,host=a,pid=1 io", &n) == 100 && n == 2);
  write_ok(t, "proc,host=b,pid=1 cpu=1,mem=2 1000000000\n", 2, 0); /* another line */
  CHECK(last_value(t, "proc,host=b,pid=1 cpu", &n) == 1 && n == 1);
  telemetry_close(t);
}

TEST(keys_encode_and_decode_in_telemetry_types) {
  struct buf b;
  buf_init(&b, 0);
  struct telemetry_key k = {.measurement = {"m m", 3}, .field = {"f", 1}, .ntags = 2};
  k.tags[0] = (struct telemetry_tag){{"z", 1}, {"1,2", 3}};
  k.tags[1] = (struct telemetry_tag){{"a", 1}, {"x", 1}};
  CHECK_EQ_INT(telemetry_key_encode(&b, &k), 0);
  CHECK_EQ_STR(b.data, "m\\ m,a=x,z=1\\,2 f");
  char scratch[64];
  struct telemetry_key d;
  CHECK_EQ_INT(telemetry_key_decode(b.data, b.len, scratch, &d), 0);
  CHECK(d.ntags == 2 && d.measurement.n == 3 && memcmp(d.measurement.p, "m m", 3) == 0);
  CHECK(telemetry_tag_get(d.tags, d.ntags, "z")->n == 3);
  k.ntags = 3;
  k.tags[2] = k.tags[1]; /* a tag twice */
  CHECK_EQ_INT(telemetry_key_encode(&b, &k), GROVE_EINVAL);
  CHECK_EQ_INT(telemetry_key_decode("nospace", 7, scratch, &d), GROVE_EINVAL);
  buf_release(&b);
}

static const struct test tests[] = {
    T(a_consumer_wants_its_measurements_and_its_tag),
    T(consumers_are_refused_when_unnamed_twice_or_too_many),
    T(each_consumer_gets_only_the_points_it_wants_once_stored),
    T(a_write_no_consumer_wants_calls_no_one),
    T(series_key_stores_a_field_where_the_consumer_says_without_type_checks),
    T(refused_lines_reach_no_consumer_and_verdicts_add_up),
    T(a_large_write_comes_in_calls_of_at_most_the_batch_max),
    T(app_lines_go_the_same_way_and_bad_ones_are_refused_by_index),
    T(a_line_seen_before_finds_its_series_at_once),
    T(keys_encode_and_decode_in_telemetry_types),
};
TEST_MAIN(tests)
