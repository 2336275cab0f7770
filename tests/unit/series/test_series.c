/* test_series.c — the line protocol parser. */
#include "../test.h"
#include <math.h>

#include "core/error.h"
#include "core/util.h"
#include "series/chunk.h"
#include "series/lineproto.h"
#include "series/series.h"
#include "store.h"

#include <pthread.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
      {"m v=inf", "invalid boolean"},
      {"m v=NaN", "invalid number"},
      {"m v=1.2.3.4e", "invalid number"},
      {"m v=abci", "invalid boolean"},
      {"m v=-3u", "invalid number: an unsigned integer is not negative"},
      {"m v=99999999999999999999i", "integer out of range"},
      {"m v=\"open", "unbalanced quotes"},
      {"m v=1 12x", "bad timestamp"},
      {"m v=1 1 2", "point is invalid: more after the timestamp"},
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
  CHECK(lp_precision_parse("m", &p) == 0 && p == LP_M); /* InfluxDB v1's minutes and hours */
  CHECK(lp_precision_parse("h", &p) == 0 && p == LP_H);
  CHECK(lp_precision_parse("d", &p) != 0);
  CHECK(lp_parse_line("m v=1 1700000000", 16, LP_S, 0, scratch, &pt, err, 64) == 0);
  CHECK(pt.ts_ns == 1700000000000000000LL);
  CHECK(lp_parse_line("m v=1 28333333", 14, LP_M, 0, scratch, &pt, err, 64) == 0);
  CHECK(pt.ts_ns == 28333333 * 60000000000LL);
  CHECK(lp_parse_line("m v=1 -472222", 13, LP_H, 0, scratch, &pt, err, 64) == 0);
  CHECK(pt.ts_ns == -472222 * 3600000000000LL);
  CHECK(lp_parse_line("m v=1 9223372036854775", 22, LP_S, 0, scratch, &pt, err, 64) != 0);
  CHECK_EQ_STR(err, "timestamp out of range at precision s: 1677-09-21..2262-04-11");
  CHECK(lp_parse_line("m v=1 +5", 8, LP_S, 0, scratch, &pt, err, 64) != 0); /* as InfluxDB */
  CHECK_EQ_STR(err, "bad timestamp");
  CHECK(lp_parse_line("m v=1 -", 7, LP_S, 0, scratch, &pt, err, 64) != 0);
  CHECK_EQ_STR(err, "bad timestamp");
}

/* Each precision's edges: the largest and smallest timestamps that scale
 * into [TIME_MIN_NS, TIME_MAX_NS] are kept exactly; one more (or int64's
 * ends, or past them) is a bad line saying which precision. */
TEST(timestamps_out_of_range_are_refused_at_every_precision) {
  static const struct {
    enum lp_precision p;
    const char *name;
    int64_t scale;
  } precs[] = {{LP_NS, "ns", 1},          {LP_US, "us", 1000},        {LP_MS, "ms", 1000000},
               {LP_S, "s", 1000000000},   {LP_M, "m", 60000000000LL}, {LP_H, "h", 3600000000000LL}};
  char err[64], line[96], want[80];
  for (size_t i = 0; i < sizeof precs / sizeof precs[0]; i++) {
    int64_t hi = TIME_MAX_NS / precs[i].scale, lo = TIME_MIN_NS / precs[i].scale;
    const struct {
      const char *text;
      int64_t v;
      bool ok;
    } cases[] = {
        {NULL, hi, true},  {NULL, lo, true},   {NULL, 0, true},
        {NULL, -1, true},  {NULL, 1, true},    {NULL, INT64_MAX, false},
        {NULL, INT64_MIN, false}, {"9223372036854775808", 0, false},
        {"-9223372036854775809", 0, false}, {"99999999999999999999999", 0, false},
        {NULL, hi + 1, false},
        {NULL, lo - 1, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      int n = cases[c].text ? snprintf(line, sizeof line, "m v=1 %s", cases[c].text)
                            : snprintf(line, sizeof line, "m v=1 %lld", (long long)cases[c].v);
      int rc = lp_parse_line(line, (size_t)n, precs[i].p, 0, scratch, &pt, err, sizeof err);
      if (cases[c].ok) {
        CHECK_EQ_INT(rc, 0);
        CHECK(pt.ts_ns == cases[c].v * precs[i].scale);
        CHECK(time_valid(pt.ts_ns));
      } else {
        CHECK(rc != 0);
        snprintf(want, sizeof want, "timestamp out of range at precision %s: 1677-09-21..2262-04-11",
                 precs[i].name);
        CHECK_EQ_STR(err, want);
      }
    }
  }
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

/* The lines in one body: each extreme is a per-line error saying
 * why; the good line is kept. */
TEST(extreme_timestamps_are_per_line_errors) {
  struct seen s = {0, 0, 0, ""};
  struct lp_stats st;
  const char *body = "air_quality,station=max-1,region=rmax pm25=10 9223372036854775807\n"
                     "air_quality,station=ok,region=r pm25=10 1700000000000000000\n"
                     "air_quality,station=min-1,region=rmin pm25=10 -9223372036854775808\n";
  CHECK(lp_parse(body, strlen(body), LP_NS, 0, on_point, on_error, &s, &st) == 0);
  CHECK_EQ_INT(st.lines, 3);
  CHECK_EQ_INT(st.points, 1);
  CHECK_EQ_INT(st.errors, 2);
  CHECK_EQ_INT(s.first_bad, 1);
  CHECK_EQ_STR(s.why, "timestamp out of range at precision ns: 1677-09-21..2262-04-11");
}

/* ---- chunks ---- */

static struct series_sample in[CHUNK_MAX], back[CHUNK_MAX];

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
    in[i] = (struct series_sample){t, round(v * 10) / 10};
  }
  size_t bytes = round_trip(720);
  fprintf(stderr, "  sensor chunk: %.2f bytes/point\n", (double)bytes / 720);
  CHECK((double)bytes / 720 <= 2.0);
  /* a perfectly regular gauge: two bits a point (one for time, one for value) */
  for (int i = 0; i < 1000; i++)
    in[i] = (struct series_sample){(int64_t)i * 60000000000LL, 50};
  CHECK(round_trip(1000) <= 1000 / 4 + 32);
}

TEST(noisy_sensor_chunks_take_under_two_bytes_a_point) {
  /* a level with 8% noise on every reading, two decimals: the simulator's PM2.5 */
  int64_t t = 1700000000LL * 1000000000LL;
  for (int i = 0; i < 2000; i++) {
    double u = ((double)(rnd() % 10000) + 0.5) / 10000, w = ((double)(rnd() % 10000) + 0.5) / 10000;
    double noise = sqrt(-2 * log(u)) * cos(2 * M_PI * w);
    in[i] = (struct series_sample){t + (int64_t)i * 10000000000LL,
                                 round(15 * (1 + 0.08 * noise) * 100) / 100};
  }
  size_t bytes = round_trip(2000);
  fprintf(stderr, "  noisy chunk: %.2f bytes/point\n", (double)bytes / 2000);
  CHECK((double)bytes / 2000 <= 2.0);
}

TEST(chunks_of_the_first_version_still_decode) {
  /* written by version 1 (delta-of-delta values in fixed widths) */
  static const unsigned char v1[] = {0x12, 0x80, 0x08, 0x00, 0x00, 0x00, 0x00, 0x77, 0x35,
                                     0x94, 0x01, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                     0x01, 0x38, 0xb0, 0x09, 0x7b, 0xed, 0x4d, 0xdc, 0x10};
  size_t n;
  CHECK(chunk_decode(v1, sizeof v1, back, &n) == 0);
  CHECK(n == 4);
  const double want[] = {12.5, 13.25, 11.0, -2.75};
  for (size_t i = 0; i < 4; i++) {
    CHECK(back[i].ts_ns == 1000000000000000000LL + (int64_t)i * 10000000000LL);
    CHECK(back[i].value == want[i]);
  }
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
      in[i] = (struct series_sample){t, v};
    }
    round_trip(n);
  }
  in[0] = (struct series_sample){INT64_MIN, 1};
  in[1] = (struct series_sample){INT64_MAX, 2};
  round_trip(2);
}

TEST(chunk_refuses_bad_input) {
  struct buf b;
  buf_init(&b, 0);
  in[0] = (struct series_sample){2, 1};
  in[1] = (struct series_sample){1, 1};
  CHECK_EQ_INT(chunk_encode(in, 2, &b), GROVE_EINVAL); /* unsorted */
  CHECK_EQ_INT(chunk_encode(in, 0, &b), GROVE_EINVAL);
  for (int i = 0; i < 100; i++)
    in[i] = (struct series_sample){(int64_t)i * 1000, i * 0.5};
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

/* ---- the store ---- */

static void expect(struct series *s, uint32_t id, const int64_t *ts, const double *v, size_t n) {
  struct series_sample *pts;
  size_t got;
  CHECK(series_range(s, id, INT64_MIN, INT64_MAX, &pts, &got) == 0);
  if (got != n)
    fprintf(stderr, "series %u: %zu points, want %zu\n", id, got, n);
  CHECK_EQ_INT(got, n);
  for (size_t i = 0; i < n; i++) {
    CHECK(pts[i].ts_ns == ts[i]);
    CHECK(pts[i].value == v[i]);
  }
  free(pts);
}

TEST(store_keeps_order_last_write_wins_and_replays) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a, b, again;
  CHECK(series_id(s, "air,station=s1 pm25", &a) == 0);
  CHECK(series_id(s, "air,station=s2 pm25", &b) == 0);
  CHECK(series_id(s, "air,station=s1 pm25", &again) == 0 && again == a && a != b);
  struct series_point p1[] = {{a, 30, 3}, {a, 10, 1}, {b, 10, 100}, {a, 20, 2}};
  CHECK(series_append_sync(s, p1, 4) == 0);
  struct series_point p2[] = {{a, 20, 22}, {a, 20, 23}}; /* duplicates: the last wins */
  CHECK(series_append_sync(s, p2, 2) == 0);
  int64_t ts[] = {10, 20, 30};
  double v[] = {1, 23, 3};
  expect(s, a, ts, v, 3);
  struct series_point bad = {999, 1, 1};
  CHECK_EQ_INT(series_append_sync(s, &bad, 1), GROVE_EINVAL);
  series_close(s);
  s = open_store(dir); /* the log is replayed */
  CHECK(series_id(s, "air,station=s1 pm25", &again) == 0 && again == a);
  expect(s, a, ts, v, 3);
  CHECK_EQ_INT(series_head_points(s), 4);
  /* into chunks; a later write still wins over a chunk */
  CHECK(series_flush(s) == 0);
  CHECK_EQ_INT(series_head_points(s), 0);
  expect(s, a, ts, v, 3);
  struct series_point p3[] = {{a, 30, 33}, {a, 40, 4}};
  CHECK(series_append_sync(s, p3, 2) == 0);
  series_close(s);
  s = open_store(dir);
  int64_t ts2[] = {10, 20, 30, 40};
  double v2[] = {1, 23, 33, 4};
  expect(s, a, ts2, v2, 4);
  int64_t tsb[] = {10};
  double vb[] = {100};
  expect(s, b, tsb, vb, 1);
  struct series_sample *pts;
  size_t n;
  CHECK(series_range(s, a, 20, 40, &pts, &n) == 0 && n == 2 && pts[0].ts_ns == 20);
  free(pts);
  series_close(s);
}

TEST(store_cuts_a_torn_log_tail) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "m f", &a) == 0);
  struct series_point p = {a, 1, 1.5};
  CHECK(series_append_sync(s, &p, 1) == 0);
  series_close(s);
  char path[128];
  snprintf(path, sizeof path, "%s/series.wal", dir);
  FILE *f = fopen(path, "ab");
  fwrite("\x30\x00\x00\x00garbage", 1, 11, f); /* a record cut short by a crash */
  fclose(f);
  s = open_store(dir);
  int64_t ts[] = {1};
  double v[] = {1.5};
  expect(s, a, ts, v, 1);
  struct series_point q = {a, 2, 2.5}; /* appends after the cut still replay */
  CHECK(series_append_sync(s, &q, 1) == 0);
  series_close(s);
  s = open_store(dir);
  int64_t ts2[] = {1, 2};
  double v2[] = {1.5, 2.5};
  expect(s, a, ts2, v2, 2);
  series_close(s);
}

TEST(acknowledged_points_survive_kill_9) {
  char *dir = store_dir();
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    struct series *s = open_store(dir);
    uint32_t ids[4];
    for (int k = 0; k < 4; k++) {
      char key[32];
      snprintf(key, sizeof key, "m,k=%d v", k);
      series_id(s, key, &ids[k]);
    }
    for (int i = 0;; i++) { /* batches until killed; each ack is reported */
      struct series_point b[8];
      for (int j = 0; j < 8; j++)
        b[j] = (struct series_point){ids[j % 4], (int64_t)i * 8 + j, i + j / 10.0};
      if (series_append_sync(s, b, 8))
        _exit(1);
      if (write(fds[1], &i, sizeof i) != sizeof i)
        _exit(1);
    }
  }
  close(fds[1]);
  int last = -1, i;
  while (last < 300 && read(fds[0], &i, sizeof i) == sizeof i)
    last = i;
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  close(fds[0]);
  CHECK(last >= 300);
  struct series *s = open_store(dir);
  for (int k = 0; k < 4; k++) {
    char key[32];
    uint32_t id;
    snprintf(key, sizeof key, "m,k=%d v", k);
    CHECK(series_id(s, key, &id) == 0);
    struct series_sample *pts;
    size_t n;
    CHECK(series_range(s, id, INT64_MIN, INT64_MAX, &pts, &n) == 0);
    /* every acknowledged batch is there, each point once */
    CHECK(n >= (size_t)(last + 1) * 2);
    for (size_t j = 0; j < n; j++) {
      int batch = (int)(pts[j].ts_ns / 8), slot = (int)(pts[j].ts_ns % 8);
      CHECK(slot % 4 == k);
      CHECK(pts[j].value == batch + slot / 10.0);
      if (j)
        CHECK(pts[j].ts_ns > pts[j - 1].ts_ns);
    }
    free(pts);
  }
  series_close(s);
}

struct appender {
  struct series *s;
  uint32_t id;
  int fails;
};

static void *append_many(void *arg) {
  struct appender *a = arg;
  for (int i = 0; i < 100; i++) {
    struct series_point p = {a->id, i, i * 0.5};
    a->fails += series_append_sync(a->s, &p, 1) != 0;
  }
  return NULL;
}

/* n threads appending 100 points each to series "<prefix><i> v". */
static void start_appenders(struct series *s, const char *prefix, int n, pthread_t *th,
                            struct appender *ap) {
  for (int t = 0; t < n; t++) {
    char key[16];
    snprintf(key, sizeof key, "%s%d v", prefix, t);
    ap[t] = (struct appender){s, 0, 0};
    CHECK(series_id(s, key, &ap[t].id) == 0);
    pthread_create(&th[t], NULL, append_many, &ap[t]);
  }
}

static void join_appenders(int n, pthread_t *th, struct appender *ap) {
  for (int t = 0; t < n; t++) {
    pthread_join(th[t], NULL);
    CHECK_EQ_INT(ap[t].fails, 0);
  }
}

TEST(concurrent_writers_share_commits) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  pthread_t th[8];
  struct appender ap[8];
  start_appenders(s, "w", 8, th, ap);
  join_appenders(8, th, ap);
  CHECK_EQ_INT(series_head_points(s), 800);
  series_close(s);
  s = open_store(dir);
  CHECK_EQ_INT(series_head_points(s), 800);
  series_close(s);
}

/* A flusher that counts its passes, and appenders that wait for a pass to
 * end after each of their quarters: so flushes and appends interleave
 * however the threads are scheduled (no "it ran often enough"). */
struct flusher_arg {
  struct series *s;
  pthread_mutex_t lock;
  pthread_cond_t passed;
  bool stop;
  int flushes, fails;
};

static void *flush_often(void *arg) {
  struct flusher_arg *f = arg;
  pthread_mutex_lock(&f->lock);
  while (!f->stop) {
    pthread_mutex_unlock(&f->lock);
    int rc = series_flush(f->s);
    pthread_mutex_lock(&f->lock);
    f->fails += rc != 0;
    f->flushes++;
    pthread_cond_broadcast(&f->passed);
  }
  pthread_mutex_unlock(&f->lock);
  return NULL;
}

struct paced_appender {
  struct appender a;
  struct flusher_arg *f;
};

static void *append_paced(void *arg) {
  struct paced_appender *p = arg;
  for (int i = 0; i < 100; i++) {
    struct series_point one = {p->a.id, i, i * 0.5};
    p->a.fails += series_append_sync(p->a.s, &one, 1) != 0;
    if (i % 25 != 24)
      continue;
    /* a whole flush pass begun after this append: wait for two to end */
    pthread_mutex_lock(&p->f->lock);
    for (int until = p->f->flushes + 2; p->f->flushes < until;)
      pthread_cond_wait(&p->f->passed, &p->f->lock);
    pthread_mutex_unlock(&p->f->lock);
  }
  return NULL;
}

TEST(writes_go_on_while_points_move_into_chunks) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  struct flusher_arg f = {.s = s};
  pthread_mutex_init(&f.lock, NULL);
  pthread_cond_init(&f.passed, NULL);
  pthread_t flusher, th[4];
  struct paced_appender ap[4];
  pthread_create(&flusher, NULL, flush_often, &f);
  for (int t = 0; t < 4; t++) {
    char key[16];
    snprintf(key, sizeof key, "f%d v", t);
    ap[t] = (struct paced_appender){{s, 0, 0}, &f};
    CHECK(series_id(s, key, &ap[t].a.id) == 0);
    pthread_create(&th[t], NULL, append_paced, &ap[t]);
  }
  for (int t = 0; t < 4; t++) {
    pthread_join(th[t], NULL);
    CHECK_EQ_INT(ap[t].a.fails, 0);
  }
  pthread_mutex_lock(&f.lock);
  f.stop = true;
  pthread_mutex_unlock(&f.lock);
  pthread_join(flusher, NULL);
  CHECK_EQ_INT(f.fails, 0);
  /* each appender saw at least two passes end after each of its quarters */
  CHECK(f.flushes >= 8);
  /* every point readable at every moment: chunks, set aside or head */
  int64_t ts[100];
  double v[100];
  for (int i = 0; i < 100; i++) {
    ts[i] = i;
    v[i] = i * 0.5;
  }
  for (int t = 0; t < 4; t++)
    expect(s, ap[t].a.id, ts, v, 100);
  series_close(s);
  s = open_store(dir);
  for (int t = 0; t < 4; t++)
    expect(s, ap[t].a.id, ts, v, 100);
  series_close(s);
}

TEST(a_flush_cut_short_is_finished_at_open) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "cut a", &a) == 0);
  struct series_point p1[] = {{a, 10, 1}, {a, 20, 2}};
  CHECK(series_append_sync(s, p1, 2) == 0);
  series_close(s);
  /* as if a flush set the log aside and the process died before its chunks committed */
  char wal[128], old[128];
  snprintf(wal, sizeof wal, "%s/series.wal", dir);
  snprintf(old, sizeof old, "%s/series.wal.old", dir);
  CHECK(rename(wal, old) == 0);
  s = open_store(dir);
  struct series_point p2[] = {{a, 20, 22}, {a, 30, 3}};
  CHECK(series_append_sync(s, p2, 2) == 0);
  series_close(s);
  CHECK(access(old, F_OK) != 0); /* finished at the open before */
  s = open_store(dir);
  int64_t ts[] = {10, 20, 30};
  double v[] = {1, 22, 3};
  expect(s, a, ts, v, 3);
  CHECK_EQ_INT(series_head_points(s), 2); /* the later ones, still in the log */
  series_close(s);
}

static long count_rows(const char *dir, const char *sql) {
  char path[128];
  snprintf(path, sizeof path, "%s/series.db", dir);
  sqlite3 *db;
  sqlite3_stmt *st;
  long n = -1;
  if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return n;
}

TEST(a_few_points_a_flush_still_fill_whole_chunks) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "slow a", &a) == 0);
  int64_t ts[30];
  double v[30];
  for (int f = 0; f < 3; f++) {
    for (int i = 0; i < 10; i++) {
      int k = f * 10 + i;
      ts[k] = k * 10;
      v[k] = k;
      struct series_point p = {a, ts[k], v[k]};
      CHECK(series_append_sync(s, &p, 1) == 0);
    }
    CHECK(series_flush(s) == 0);
  }
  CHECK_EQ_INT(count_rows(dir, "SELECT count(*) FROM chunks"), 1);
  CHECK_EQ_INT(count_rows(dir, "SELECT points FROM chunks"), 30);
  expect(s, a, ts, v, 30);
  /* a point older than the chunk's end goes into a chunk of its own; both are read */
  struct series_point old = {a, 5, 0.5};
  CHECK(series_append_sync(s, &old, 1) == 0);
  CHECK(series_flush(s) == 0);
  CHECK_EQ_INT(count_rows(dir, "SELECT count(*) FROM chunks"), 2);
  struct series_sample *pts;
  size_t n;
  CHECK(series_range(s, a, 0, 20, &pts, &n) == 0);
  CHECK(n == 3 && pts[1].ts_ns == 5 && pts[1].value == 0.5);
  free(pts);
  series_close(s);
}

/* The buckets of raw points, as the reference. */
static size_t reference_buckets(struct series *s, uint32_t id, int64_t from, int64_t to,
                                int64_t step, struct series_bucket *out, size_t max) {
  struct series_sample *pts;
  size_t np, nb = 0;
  CHECK(series_range(s, id, from, to, &pts, &np) == 0);
  for (size_t i = 0; i < np; i++) {
    int64_t bs = pts[i].ts_ns / step * step;
    double v = pts[i].value;
    if (!nb || out[nb - 1].start_ns != bs) {
      CHECK(nb < max);
      out[nb++] = (struct series_bucket){bs, 0, 0, v, v, v, v};
    }
    struct series_bucket *b = &out[nb - 1];
    b->count++;
    b->sum += v;
    b->min = fmin(b->min, v);
    b->max = fmax(b->max, v);
    b->last = v;
  }
  free(pts);
  return nb;
}

/* n points about 10 s apart from *t on, one in ten late (into a minute
 * already summed, or onto a point: a rewrite) back to t0. */
static void append_round_late(struct series *s, uint32_t id, int64_t t0, int64_t *t, int n,
                              bool late) {
  struct series_point p[400];
  CHECK(n <= 400);
  for (int i = 0; i < n; i++) {
    *t += (int64_t)(rnd() % 20) * 1000000000LL;
    int64_t ts = *t;
    if (late && rnd() % 10 == 0)
      ts = t0 + (int64_t)(rnd() % (uint64_t)(*t - t0 + 1)) / 1000000000LL * 1000000000LL;
    p[i] = (struct series_point){id, ts, (double)(rnd() % 1000) / 10};
  }
  CHECK(series_append_sync(s, p, (size_t)n) == 0);
}

static void append_round(struct series *s, uint32_t id, int64_t t0, int64_t *t, int n) {
  append_round_late(s, id, t0, t, n, true);
}

static void rollups_match_points(struct series *s, uint32_t id, int64_t from, int64_t to) {
  static struct series_bucket want[2000];
  const int64_t steps[] = {60 * 1000000000LL, 300 * 1000000000LL, 3600 * 1000000000LL};
  for (int k = 0; k < 3; k++) {
    struct series_bucket *got;
    size_t n;
    const char *source;
    CHECK(series_aggregate(s, id, from, to, steps[k], 100000, &got, &n, &source) == 0);
    CHECK(strcmp(source, k == 2 ? "1h" : "1m") == 0);
    size_t nw = reference_buckets(s, id, from, to, steps[k], want, 2000);
    if (n != nw)
      fprintf(stderr, "step %lld: %zu buckets, want %zu\n", (long long)steps[k], n, nw);
    CHECK_EQ_INT(n, nw);
    for (size_t i = 0; i < n; i++) {
      CHECK(got[i].start_ns == want[i].start_ns && got[i].count == want[i].count);
      CHECK(fabs(got[i].sum - want[i].sum) < 1e-6);
      CHECK(got[i].min == want[i].min && got[i].max == want[i].max);
      CHECK(got[i].first == want[i].first && got[i].last == want[i].last);
    }
    free(got);
  }
}

TEST(rollups_agree_with_the_points_through_late_and_rewritten_ones) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "roll a", &a) == 0);
  int64_t t0 = 1800000000LL * 1000000000LL, t = t0;
  for (int round = 0; round < 6; round++) {
    append_round(s, a, t0, &t, 400);
    if (round < 5)
      CHECK(series_flush(s) == 0); /* the last round stays in memory */
    rollups_match_points(s, a, t0 - 3600000000000LL, t + 3600000000000LL);
  }
  series_close(s);
  s = open_store(dir);
  rollups_match_points(s, a, t0, t + 1);
  series_close(s);
  /* chunks from before rollups existed get theirs at open */
  CHECK(count_rows(dir, "SELECT count(*) FROM rollups") > 0);
  char path[128];
  snprintf(path, sizeof path, "%s/series.db", dir);
  sqlite3 *db;
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "DELETE FROM rollups", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  s = open_store(dir);
  rollups_match_points(s, a, t0, t + 1);
  series_close(s);
}

/* Points in order, flushed a few minutes at a time: each flush extends
 * the minute and the hour the last one ended in (the hour read once and
 * extended, not summed again), and a late round then sums them whole. */
TEST(rollups_extend_hours_across_flushes) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "roll b", &a) == 0);
  int64_t t0 = 1800000000LL * 1000000000LL + 1234567890LL, t = t0;
  for (int round = 0; round < 12; round++) {
    append_round_late(s, a, t0, &t, 40, round == 9);
    CHECK(series_flush(s) == 0);
    rollups_match_points(s, a, t0 - 3600000000000LL, t + 3600000000000LL);
  }
  series_close(s);
  s = open_store(dir);
  rollups_match_points(s, a, t0, t + 1);
  series_close(s);
}

TEST(retention_drops_points_before_their_rollups) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "kept a", &a) == 0);
  int64_t hour = 3600000000000LL, sec = 1000000000LL;
  int64_t now = (int64_t)(time(NULL)) * sec, base = now / (2 * hour) * (2 * hour);
  /* a point in each of four 2-hour chunk spans, the last one now's */
  for (int k = 3; k >= 0; k--) {
    struct series_point p = {a, base - k * 2 * hour + sec, k};
    CHECK(series_append_sync(s, &p, 1) == 0);
  }
  uint64_t ago = (uint64_t)(now - base) / 1000000; /* ms since base */
  /* raw: back to base - 3h; minutes: to base - 5h; hours: for ever */
  series_retention(s, ago + 3 * 3600 * 1000, ago + 5 * 3600 * 1000, 0);
  CHECK(series_flush(s) == 0);
  struct series_sample *pts;
  size_t n;
  CHECK(series_range(s, a, 0, INT64_MAX, &pts, &n) == 0);
  CHECK_EQ_INT(n, 2);
  CHECK(pts[0].ts_ns == base - 2 * hour + sec);
  free(pts);
  struct series_bucket *b;
  const char *src;
  CHECK(series_aggregate(s, a, base - 8 * hour, now + 1, 60 * sec, 100000, &b, &n, &src) == 0);
  CHECK_EQ_INT(n, 3);
  CHECK(b[0].start_ns == base - 4 * hour);
  free(b);
  CHECK(series_aggregate(s, a, base - 8 * hour, now + 1, hour, 100000, &b, &n, &src) == 0);
  CHECK_EQ_INT(n, 4);
  free(b);
  series_close(s);
}

/* ---- the same store on PostgreSQL (GROVE_TEST_STORE=postgres://…) ---------- */

static struct series *open_pg(bool fresh) {
  const char *url = getenv("GROVE_TEST_STORE");
  if (!url) {
    fprintf(stderr, "  (skipped: GROVE_TEST_STORE is not set)\n");
    exit(0);
  }
  if (fresh) {
    PGconn *c = PQconnectdb(url);
    CHECK(PQstatus(c) == CONNECTION_OK);
    PQclear(PQexec(c, "DROP TABLE IF EXISTS series_points, series_keys, series_rollups, series_meta, series_types CASCADE;"
                      "DROP SEQUENCE IF EXISTS series_groups"));
    PQfinish(c);
  }
  struct series *s;
  char err[256];
  int rc = series_open_pg(&s, url, err, sizeof err);
  if (rc)
    fprintf(stderr, "series_open_pg: %s\n", err);
  CHECK(rc == 0);
  return s;
}

TEST(pg_points_are_shared_and_the_last_write_wins) {
  struct series *s = open_pg(true), *other = open_pg(false);
  uint32_t a, b, again;
  CHECK(series_id(s, "air,station=s1 pm25", &a) == 0);
  CHECK(series_id(s, "air,station=s2 pm25", &b) == 0);
  CHECK(series_id(s, "air,station=s1 pm25", &again) == 0 && again == a && a != b);
  struct series_point p1[] = {{a, 30, 3}, {a, 10, 1}, {b, 10, 100}, {a, 20, 2}, {a, 20, 21}};
  CHECK(series_append_sync(s, p1, 5) == 0);
  struct series_point p2[] = {{a, 20, 22}, {a, 40, 4}}; /* a later group wins too */
  CHECK(series_append_sync(s, p2, 2) == 0);
  int64_t ts[] = {10, 20, 30, 40};
  double v[] = {1, 22, 3, 4};
  expect(s, a, ts, v, 4);
  CHECK_EQ_INT(series_head_points(s), 0); /* nothing waits in memory */
  /* another instance: the same ids, the points at once */
  CHECK(series_find(other, "air,station=s1 pm25", &again) == 0 && again == a);
  CHECK(series_id(other, "air,station=s2 pm25", &again) == 0 && again == b);
  expect(other, a, ts, v, 4);
  CHECK_EQ_INT(series_find(other, "nobody x", &again), GROVE_ENOENT);
  series_close(other);
  series_close(s);
  s = open_pg(false);
  char key[64];
  CHECK(series_key_of(s, b, key, sizeof key) == 0 && strcmp(key, "air,station=s2 pm25") == 0);
  expect(s, a, ts, v, 4);
  series_close(s);
}

static void count_key(uint32_t id, const char *key, void *arg) {
  (void)id;
  (void)key;
  (*(int *)arg)++;
}

/* An instance open before another made keys walks them: series_each_key
 * reads what it does not know, again after more come, and a number the
 * sequence gave to an insert that did not stay (a conflict) is no hole
 * the walk trips on. */
TEST(pg_each_key_walks_the_keys_other_instances_made) {
  struct series *s = open_pg(true), *other = open_pg(false);
  int n = 0;
  series_each_key(other, count_key, &n);
  CHECK_EQ_INT(n, 0);
  uint32_t id;
  CHECK(series_id(s, "air,station=s1 pm25", &id) == 0);
  CHECK(series_id(s, "air,station=s2 pm25", &id) == 0);
  series_each_key(other, count_key, &n);
  CHECK_EQ_INT(n, 2);
  const char *keys[] = {"air,station=s1 pm25", "air,station=s3 pm25", "air,station=s4 pm25"};
  uint32_t ids[3];
  CHECK(series_ids(s, keys, 3, ids) == 0); /* s1 again: its insert is a conflict */
  n = 0;
  series_each_key(other, count_key, &n);
  CHECK_EQ_INT(n, 4);
  char key[64];
  CHECK(series_key_of(other, ids[2], key, sizeof key) == 0);
  CHECK_EQ_STR(key, "air,station=s4 pm25");
  series_close(other);
  series_close(s);
}

TEST(pg_rollups_agree_with_the_points) {
  struct series *s = open_pg(true);
  uint32_t a;
  CHECK(series_id(s, "roll a", &a) == 0);
  int64_t t0 = 1800000000LL * 1000000000LL, t = t0;
  for (int round = 0; round < 4; round++) {
    append_round(s, a, t0, &t, 300);
    if (round < 3)
      CHECK(series_flush(s) == 0); /* the last round is not rolled up yet */
    rollups_match_points(s, a, t0 - 3600000000000LL, t + 3600000000000LL);
  }
  series_close(s);
}

TEST(pg_retention_drops_whole_days) {
  struct series *s = open_pg(true);
  uint32_t a;
  CHECK(series_id(s, "old a", &a) == 0);
  int64_t day = 86400000000000LL, now = (int64_t)time(NULL) * 1000000000LL;
  struct series_point p[] = {{a, now - 3 * day, 1}, {a, now - day, 2}, {a, now, 3}};
  CHECK(series_append_sync(s, p, 3) == 0);
  series_retention(s, 2 * 86400 * 1000, 0, 0);
  CHECK(series_flush(s) == 0);
  int64_t ts[] = {now - day, now};
  double v[] = {2, 3};
  expect(s, a, ts, v, 2);
  struct series_point old = {a, now - 5 * day, 9}; /* past retention: not kept */
  CHECK(series_append_sync(s, &old, 1) == 0);
  expect(s, a, ts, v, 2);
  series_close(s);
}


/* ---- extreme times ------------------------------------------------------------- */

#define MIN_NS 60000000000LL
#define HOUR 3600000000000LL

/* Points at the ends of the time range, the rollups' edges and 0. */
static const int64_t extreme_ts[] = {
    TIME_MIN_NS,       TIME_MIN_NS + 1,         -9223369200000000001LL, -9223369200000000000LL,
    -MIN_NS,           -1,                      0,                      1,
    MIN_NS,            9223369199999999999LL,   9223369200000000000LL,  TIME_MAX_NS - 1,
    TIME_MAX_NS,
};
#define NEXTREME (sizeof extreme_ts / sizeof extreme_ts[0])

/* What series_aggregate must give: each point whose step bucket (a
 * multiple of step) starts and ends inside int64 and inside the asked
 * range rounded out, counted in it. By 128-bit arithmetic. */
static void aggregate_matches(struct series *s, uint32_t id, int64_t from, int64_t to,
                              int64_t step) {
  struct series_bucket *b = NULL;
  size_t nb = 0;
  int rc = series_aggregate(s, id, from, to, step, 1000000, &b, &nb, NULL);
  if (rc == GROVE_ETOOBIG)
    return; /* the range is legitimately too fine for one answer */
  CHECK_EQ_INT(rc, 0);
  __int128 lo = from < TIME_MIN_NS ? TIME_MIN_NS : from, st = step;
  __int128 flo = (lo >= 0 ? lo / st : -((-lo + st - 1) / st)) * st; /* floor */
  if (flo < INT64_MIN)
    flo += st;
  __int128 hi = to, fhi = (hi >= 0 ? (hi + st - 1) / st : -((-hi) / st)) * st; /* ceil */
  if (fhi > INT64_MAX)
    fhi -= st;
  size_t want = 0;
  for (size_t i = 0; i < NEXTREME; i++) {
    __int128 t = extreme_ts[i];
    __int128 bs = (t >= 0 ? t / st : -((-t + st - 1) / st)) * st;
    if (bs < flo || bs + st > fhi) /* from and to are rounded out to the step */
      continue;
    bool found = false;
    for (size_t k = 0; k < nb; k++)
      if (b[k].start_ns == (int64_t)bs) {
        found = true;
        CHECK(b[k].count >= 1);
      }
    if (!found)
      fprintf(stderr, "step %lld: no bucket for %lld\n", (long long)step, (long long)t);
    CHECK(found);
    want++;
  }
  uint64_t total = 0;
  for (size_t k = 0; k < nb; k++) {
    CHECK(k == 0 || b[k].start_ns > b[k - 1].start_ns);
    CHECK((__int128)b[k].start_ns + step <= INT64_MAX);
    total += b[k].count;
  }
  if (total != want)
    fprintf(stderr, "from %lld to %lld step %lld: %llu points in buckets, want %zu\n",
            (long long)from, (long long)to, (long long)step, (unsigned long long)total, want);
  CHECK_EQ_INT(total, want);
  free(b);
}

static void extremes_round_trip(struct series *s) {
  uint32_t id;
  CHECK(series_id(s, "extreme v", &id) == 0);
  struct series_point p[NEXTREME];
  double v[NEXTREME];
  for (size_t i = 0; i < NEXTREME; i++) {
    p[i] = (struct series_point){id, extreme_ts[i], (double)i};
    v[i] = (double)i;
  }
  CHECK(series_append_sync(s, p, NEXTREME) == 0);
  static const int64_t steps[] = {1000000000LL, 7000000000LL, MIN_NS, HOUR, 86400000000000LL,
                                  1000000 * HOUR, INT64_MAX / 3, INT64_MAX - 1, INT64_MAX};
  for (int pass = 0; pass < 2; pass++) { /* in memory, then in chunks and rollups */
    expect(s, id, extreme_ts, v, NEXTREME);
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
      aggregate_matches(s, id, INT64_MIN, INT64_MAX, steps[k]);
      for (size_t i = 0; i < NEXTREME; i++) { /* around each extreme */
        int64_t t = extreme_ts[i], a, z;
        if (time_sub(t, 5 * MIN_NS, &a))
          a = INT64_MIN;
        if (time_add(t, 5 * MIN_NS, &z))
          z = INT64_MAX;
        aggregate_matches(s, id, a, z, steps[k]);
        aggregate_matches(s, id, t, t + (t < INT64_MAX), steps[k]);
      }
    }
    CHECK(series_flush(s) == 0);
  }
  /* retention of ~292 years and more: the cut-off (now - 292 y, in 1734)
   * is computed without wrapping; what is after it stays */
  series_retention(s, UINT64_MAX, UINT64_MAX / 2, 9223372036853ULL);
  CHECK(series_flush(s) == 0);
  struct series_sample *pts;
  size_t got;
  CHECK(series_range(s, id, 0, INT64_MAX, &pts, &got) == 0);
  CHECK_EQ_INT(got, 7); /* 0 and every time after it */
  free(pts);
  series_retention(s, 0, 0, 0);
}

TEST(extreme_times_are_stored_read_and_bucketed_without_overflow) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  extremes_round_trip(s);
  series_close(s);
  s = open_store(dir); /* and again from the chunks */
  uint32_t id;
  CHECK(series_find(s, "extreme v", &id) == 0);
  struct series_sample *pts;
  size_t got;
  CHECK(series_range(s, id, 0, INT64_MAX, &pts, &got) == 0);
  CHECK_EQ_INT(got, 7);
  CHECK(pts[6].ts_ns == TIME_MAX_NS);
  free(pts);
  series_close(s);
}

TEST(pg_extreme_times_are_stored_read_and_bucketed_without_overflow) {
  struct series *s = open_pg(true);
  extremes_round_trip(s);
  series_close(s);
}

static const struct test tests[] = {
    T(pg_points_are_shared_and_the_last_write_wins),
    T(pg_each_key_walks_the_keys_other_instances_made), T(pg_rollups_agree_with_the_points),
    T(pg_retention_drops_whole_days), T(pg_extreme_times_are_stored_read_and_bucketed_without_overflow),
    T(extreme_times_are_stored_read_and_bucketed_without_overflow),
    T(rollups_agree_with_the_points_through_late_and_rewritten_ones),
    T(rollups_extend_hours_across_flushes),
    T(retention_drops_points_before_their_rollups),
    T(writes_go_on_while_points_move_into_chunks), T(a_few_points_a_flush_still_fill_whole_chunks), T(a_flush_cut_short_is_finished_at_open),
    T(store_keeps_order_last_write_wins_and_replays), T(concurrent_writers_share_commits), T(store_cuts_a_torn_log_tail),
    T(acknowledged_points_survive_kill_9),
    T(chunks_of_sensor_data_take_under_two_bytes_a_point),
    T(noisy_sensor_chunks_take_under_two_bytes_a_point),
    T(chunks_of_the_first_version_still_decode),
    T(chunks_round_trip_any_doubles_and_times), T(chunk_refuses_bad_input),
    T(parses_tags_fields_and_timestamp), T(escapes_in_names_and_strings),
    T(numbers_and_booleans), T(malformed_lines_say_why), T(precision_scales_timestamps), T(timestamps_out_of_range_are_refused_at_every_precision),
    T(extreme_timestamps_are_per_line_errors),
    T(body_keeps_good_lines_and_reports_bad_ones),
};
TEST_MAIN(tests)
