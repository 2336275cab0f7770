/* test_lineproto.c — line protocol as InfluxDB reads it (one table of
 * lines and what becomes of each), and series keys: the codec's round
 * trip, the series parameter's escaping, and stores written with the
 * first key format opening with their series. */
#include "../test.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>
#include <zlib.h>

#include "core/buf.h"
#include "core/error.h"
#include "series/key.h"
#include "series/lineproto.h"
#include "series/series.h"

static char scratch[LP_MAX_LINE + 1];
static struct lp_point pt;

/* What a parsed line is, written out: each field as its series key
 * (key.h) "=" a type letter and value, then "@" the time. */
static void describe(const struct lp_point *p, struct buf *out) {
  struct series_key k = {.measurement = p->measurement, .ntags = p->ntags};
  memcpy(k.tag_keys, p->tag_keys, sizeof k.tag_keys);
  memcpy(k.tag_values, p->tag_values, sizeof k.tag_values);
  struct buf key;
  buf_init(&key, 0);
  buf_reset(out);
  for (int i = 0; i < p->nfields; i++) {
    const struct lp_field *f = &p->fields[i];
    k.field = f->key;
    CHECK(series_key_encode(&key, &k) == 0);
    buf_printf(out, "%s%s=", i ? " | " : "", key.data);
    switch (f->type) {
    case LP_FLOAT: buf_printf(out, "f%.17g", f->v.f); break;
    case LP_INT: buf_printf(out, "i%lld", (long long)f->v.i); break;
    case LP_UINT: buf_printf(out, "u%llu", (unsigned long long)f->v.u); break;
    case LP_BOOL: buf_printf(out, "b%d", f->v.b); break;
    case LP_STRING:
      buf_putc(out, 's');
      buf_append(out, f->v.s.p, f->v.s.n);
      break;
    }
  }
  buf_printf(out, " @%lld", (long long)p->ts_ns);
  buf_release(&key);
}

/* Each line and what InfluxDB makes of it: the points (as describe()
 * writes them; no timestamp reads as 42) or "!" and the error. */
static const struct {
  const char *line, *want;
} lines[] = {
    /* the basics */
    {"cpu value=1", "cpu value=f1 @42"},
    {"cpu,host=a value=1 1000", "cpu,host=a value=f1 @1000"},
    {"cpu,zone=b,host=a v=1i,w=2u,x=true,y=\"s\" 5",
     "cpu,host=a,zone=b v=i1 | cpu,host=a,zone=b w=u2 | cpu,host=a,zone=b x=b1 | "
     "cpu,host=a,zone=b y=ss @5"},
    {"cpu v=-1 -5", "cpu v=f-1 @-5"},
    /* whitespace */
    {"   cpu v=1", "cpu v=f1 @42"},
    {"\tcpu v=1", "cpu v=f1 @42"},
    {"cpu  v=1   7  ", "cpu v=f1 @7"},
    {"cpu v=1 7\r", "cpu v=f1 @7"},
    /* escapes in the measurement: , space = " */
    {"collide\\,a=x v=1 1000", "collide\\,a=x v=f1 @1000"},
    {"my\\ cpu v=1", "my\\ cpu v=f1 @42"},
    {"a\\=b v=1", "a=b v=f1 @42"},
    {"a\\\"b v=1", "a\"b v=f1 @42"},
    {"back\\slash v=1", "back\\\\slash v=f1 @42"},
    {"two\\\\ v=1", "!missing fields"}, /* the space after a backslash is escaped */
    /* escapes in tags */
    {"coll,a=x\\,b\\=y v=1", "coll,a=x\\,b\\=y v=f1 @42"},
    {"coll,a=x,b=y v=1", "coll,a=x,b=y v=f1 @42"},
    {"cpu,host=web\\ 1 usage=3", "cpu,host=web\\ 1 usage=f3 @42"},
    {"cpu,path=C:\\ v=1", "!invalid tag format"}, /* the space is escaped */
    {"cpu,path=C:\\\\ v=1", "!invalid tag format"},
    {"cpu,instance=C:\\,host=srv v=1", "!invalid tag format"},
    {"cpu,path=C:\\dir v=1", "cpu,path=C:\\\\dir v=f1 @42"},
    {"cpu,k\\=x=v v=1", "cpu,k\\=x=v v=f1 @42"},
    {"cpu,b=1,a=2 v=1", "cpu,a=2,b=1 v=f1 @42"},
    /* escapes in field keys and strings */
    {"cpu f\\=k=1,g\\ h=2,i\\,j=3", "cpu f\\=k=f1 | cpu g\\ h=f2 | cpu i\\,j=f3 @42"},
    {"cpu s=\"say \\\"hi\\\" \\\\ there\"", "cpu s=ssay \"hi\" \\ there @42"},
    {"cpu s=\"a\\nb\"", "cpu s=sa\\nb @42"},
    {"cpu s=\"a,b c=d\"", "cpu s=sa,b c=d @42"},
    {"cpu s=\"\"", "cpu s=s @42"},
    /* tags and measurement */
    {",t=1 v=1", "!missing measurement"},
    {"cpu,=1 v=1", "!missing tag key"},
    {"cpu, v=1", "!missing tag key"},
    {"cpu,t v=1", "!missing tag value"},
    {"cpu,t= v=1", "!missing tag value"},
    {"cpu,t=1", "!missing fields"},
    {"cpu,t=a=b v=1", "!invalid tag format"},
    {"cpu,t=1,t=2 v=1", "!duplicate tags"},
    {"cpu,time=1 v=1", "!invalid tag key: time, _measurement and _field are reserved"},
    {"cpu,_field=1 v=1", "!invalid tag key: time, _measurement and _field are reserved"},
    /* fields */
    {"cpu", "!missing fields"},
    {"cpu ", "!missing fields"},
    {"cpu v", "!invalid field format"},
    {"cpu =1", "!missing field key"},
    {"cpu v=1,=2", "!missing field key"},
    {"cpu v=", "!missing field value"},
    {"cpu v=,w=1", "!missing field value"},
    {"cpu v=1,", "!invalid field format"},
    {"cpu v=1,w", "!invalid field format"},
    {"cpu time=1", "!invalid field name: time is reserved"},
    {"cpu v=\"open", "!unbalanced quotes"},
    {"cpu v=\"a\"b", "!invalid field format"},
    /* numbers */
    {"cpu v=1.", "cpu v=f1 @42"},
    {"cpu v=.5", "cpu v=f0.5 @42"},
    {"cpu v=-.5", "cpu v=f-0.5 @42"},
    {"cpu v=1e3,w=1E-2,x=2e+2", "cpu v=f1000 | cpu w=f0.01 | cpu x=f200 @42"},
    {"cpu v=007", "cpu v=f7 @42"},
    {"cpu v=-0i", "cpu v=i0 @42"},
    {"cpu v=9223372036854775807i", "cpu v=i9223372036854775807 @42"},
    {"cpu v=-9223372036854775808i", "cpu v=i-9223372036854775808 @42"},
    {"cpu v=18446744073709551615u", "cpu v=u18446744073709551615 @42"},
    {"cpu v=9223372036854775808i", "!integer out of range"},
    {"cpu v=18446744073709551616u", "!integer out of range"},
    {"cpu v=-1u", "!invalid number: an unsigned integer is not negative"},
    {"cpu v=1.5i", "!invalid number"},
    {"cpu v=1e3i", "!invalid number"},
    {"cpu v=9i10", "!invalid number"},
    {"cpu v=i", "!invalid boolean"},
    {"cpu v=1x", "!invalid number"},
    {"cpu v=1.2.3", "!invalid number"},
    {"cpu v=-", "!invalid number"},
    {"cpu v=.", "!invalid number"},
    {"cpu v=1e", "!invalid number"},
    {"cpu v=0x10", "!invalid number"},
    {"cpu v=NaN", "!invalid number"},
    {"cpu v=nan", "!invalid number"},
    {"cpu v=inf", "!invalid boolean"},
    {"cpu v=-inf", "!invalid number"},
    {"cpu v=+1", "!invalid boolean"},
    {"cpu v=1e400", "!invalid float"},
    /* booleans */
    {"cpu a=t,b=T,c=true,d=True,e=TRUE", "cpu a=b1 | cpu b=b1 | cpu c=b1 | cpu d=b1 | cpu e=b1 @42"},
    {"cpu a=f,b=F,c=false,d=False,e=FALSE", "cpu a=b0 | cpu b=b0 | cpu c=b0 | cpu d=b0 | cpu e=b0 @42"},
    {"cpu v=tRUE", "!invalid boolean"},
    {"cpu v=yes", "!invalid boolean"},
    /* timestamps */
    {"cpu v=1 12x", "!bad timestamp"},
    {"cpu v=1 -", "!bad timestamp"},
    {"cpu v=1 1.5", "!bad timestamp"},
    {"cpu v=1 1 2", "!point is invalid: more after the timestamp"},
    {"cpu v=1 99999999999999999999", "!timestamp out of range at precision ns: 1677-09-21..2262-04-11"},
    {"cpu v=1 9223372036854775807", "!timestamp out of range at precision ns: 1677-09-21..2262-04-11"},
    {"cpu v=1 -9223372036854775806", "cpu v=f1 @-9223372036854775806"},
    /* UTF-8: names and strings are Unicode */
    {"caf\xc3\xa9,city=Z\xc3\xbcrich \xe2\x82\xac=1", "caf\xc3\xa9,city=Z\xc3\xbcrich \xe2\x82\xac=f1 @42"},
    {"ok\xff v=1", "!invalid UTF-8 in the measurement"},
    {"cpu,host=a\xc0\xaf v=1", "!invalid UTF-8 in a tag"},
    {"cpu,h\xed\xa0\x80=a v=1", "!invalid UTF-8 in a tag"},
    {"cpu v\xf8=1", "!invalid UTF-8 in a field key"},
    {"cpu,h=\xf4\x90\x80\x80 v=1", "!invalid UTF-8 in a tag"}, /* past U+10FFFF */
    {"cpu,h=\xf4\x8f\xbf\xbf v=1", "cpu,h=\xf4\x8f\xbf\xbf v=f1 @42"}, /* U+10FFFF itself */
    {"cpu v=\"\xe2\x82\"", "!invalid UTF-8 in a string field"},
};

/* UTF-8 is checked as one character at a time would: random texts of
 * ASCII runs, characters of every length and bad bytes, at every offset. */
TEST(utf8_is_checked_as_character_by_character) {
  static const char *const parts[] = {"abcdefgh", "x", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                      "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xe2\x82",
                                      "0123456789abcdef"};
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  char text[256];
  for (int round = 0; round < 20000; round++) {
    size_t n = 0;
    int parts_n = 1 + (int)(round % 12);
    for (int k = 0; k < parts_n; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      /* mostly good parts, a bad one now and then */
      size_t pick = x % 40 < 38 ? (x >> 8) % 5 : 5 + (x >> 8) % 5;
      if (x % 7 == 0) pick = 10;
      size_t l = strlen(parts[pick]);
      memcpy(text + n, parts[pick], l);
      n += l;
    }
    bool want = true;
    for (size_t i = 0, l; i < n && want; i += l)
      want = (l = utf8_seq_len(text + i, n - i)) != 0;
    CHECK(lp_utf8_valid(text, n) == want);
  }
}

TEST(lines_read_as_influxdb_reads_them) {
  struct buf got;
  buf_init(&got, 0);
  int failures = 0;
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    char err[128] = "";
    int rc = lp_parse_line(lines[i].line, strlen(lines[i].line), LP_NS, 42, scratch, &pt, err,
                           sizeof err);
    if (rc) {
      buf_reset(&got);
      buf_printf(&got, "!%s", err);
    } else {
      describe(&pt, &got);
    }
    if (strcmp(got.data, lines[i].want) != 0) {
      fprintf(stderr, "line '%s':\n  got  '%s'\n  want '%s'\n", lines[i].line, got.data,
              lines[i].want);
      failures++;
    }
  }
  buf_release(&got);
  CHECK_EQ_INT(failures, 0);
}

struct seen {
  int points, errors;
  char first[256];
};

static int count_point(const struct lp_point *p, void *arg) {
  struct seen *s = arg;
  if (!s->points++)
    snprintf(s->first, sizeof s->first, "%.*s", (int)p->fields[0].v.s.n, p->fields[0].v.s.p);
  return 0;
}

static void count_error(int line, const char *text, size_t len, const char *why, void *arg) {
  (void)line, (void)text, (void)len, (void)why;
  ((struct seen *)arg)->errors++;
}

TEST(a_string_field_may_hold_a_newline) {
  const char *body = "log msg=\"first\nsecond\" 1\n# comment\nlog msg=\"x\" 2\n";
  struct seen s = {0};
  struct lp_stats st;
  CHECK(lp_parse(body, strlen(body), LP_NS, 0, count_point, count_error, &s, &st) == 0);
  CHECK_EQ_INT(st.points, 2);
  CHECK_EQ_INT(st.errors, 0);
  CHECK_EQ_STR(s.first, "first\nsecond");
}

/* ---- the series parameter ------------------------------------------------------------- */

/* The key the series parameter `text` names, or "!error". */
static const char *param_key(const char *text, struct buf *out) {
  char err[96] = "";
  buf_reset(out);
  if (lp_parse_key(text, strlen(text), scratch, &pt, err, sizeof err)) {
    buf_printf(out, "!%s", err);
    return out->data;
  }
  struct series_key k = {.measurement = pt.measurement, .field = pt.fields[0].key,
                         .ntags = pt.ntags};
  memcpy(k.tag_keys, pt.tag_keys, sizeof k.tag_keys);
  memcpy(k.tag_values, pt.tag_values, sizeof k.tag_values);
  CHECK(series_key_encode(out, &k) == 0);
  return out->data;
}

TEST(the_series_parameter_is_line_protocol_escaped) {
  struct buf b;
  buf_init(&b, 0);
  char sc[64];
  struct series_key k;
  /* measurement "collide,a=x", field v: not the tag a=x */
  const char *key = param_key("collide\\,a=x v", &b);
  CHECK(series_key_decode(key, strlen(key), sc, &k) == 0);
  CHECK(k.measurement.n == 11 && memcmp(k.measurement.p, "collide,a=x", 11) == 0);
  CHECK_EQ_INT(k.ntags, 0);
  CHECK(k.field.n == 1 && k.field.p[0] == 'v');
  CHECK(strcmp(param_key("collide,a=x v", &b), "collide\\,a=x v") != 0);
  /* tag host = "web 1", field usage */
  key = param_key("cpu,host=web\\ 1 usage", &b);
  CHECK(series_key_decode(key, strlen(key), sc, &k) == 0);
  CHECK_EQ_INT(k.ntags, 1);
  CHECK(k.tag_values[0].n == 5 && memcmp(k.tag_values[0].p, "web 1", 5) == 0);
  CHECK(k.field.n == 5 && memcmp(k.field.p, "usage", 5) == 0);
  /* tags in any order name the same series */
  CHECK_EQ_STR(param_key("m,b=2,a=1 f", &b), "m,a=1,b=2 f");
  CHECK_EQ_STR(param_key("m,a=x\\,b\\=y f", &b), "m,a=x\\,b\\=y f");
  CHECK(strcmp(param_key("m,a=x,b=y f", &b), "m,a=x\\,b\\=y f") != 0);
  CHECK_EQ_STR(param_key("m", &b), "!missing fields");
  CHECK_EQ_STR(param_key("m ", &b), "!missing field key");
  CHECK_EQ_STR(param_key("m a b", &b), "!invalid field key: escape , = and space with a backslash");
  CHECK_EQ_STR(param_key("m a\\ b", &b), "m a\\ b");
  buf_release(&b);
}

/* ---- the key codec ---------------------------------------------------------------------- */

static uint64_t rs = 88172645463325252ULL;
static uint64_t rnd(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return rs;
}

/* A random name of 1-8 pieces drawn from the bytes that need care. */
static size_t random_name(char *out) {
  static const char *const pieces[] = {",", "=", "\\", " ", "\"", "\n", "a", "Z", "\xc3\xa9",
                                       "\xe4\xb8\xad", "\xf0\x9f\x8c\xb3", "\\,", "\\\\", "'"};
  size_t n = 0, count = 1 + rnd() % 8;
  for (size_t i = 0; i < count; i++) {
    const char *p = pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
    memcpy(out + n, p, strlen(p));
    n += strlen(p);
  }
  return n;
}

static bool eq(struct lp_str a, struct lp_str b) {
  return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

TEST(keys_round_trip_any_names) {
  static char names[2 + 2 * SERIES_KEY_MAX_TAGS][64];
  struct buf key, again;
  buf_init(&key, 0);
  buf_init(&again, 0);
  char sc[SERIES_KEY_MAX];
  for (int round = 0; round < 20000; round++) {
    struct series_key k, back;
    memset(&k, 0, sizeof k);
    k.measurement = (struct lp_str){names[0], random_name(names[0])};
    k.field = (struct lp_str){names[1], random_name(names[1])};
    k.ntags = (int)(rnd() % 5);
    for (int t = 0; t < k.ntags; t++) {
      char *kn = names[2 + 2 * t], *vn = names[3 + 2 * t];
      k.tag_keys[t] = (struct lp_str){kn, random_name(kn)};
      for (int u = 0; u < t; u++) /* unique tag keys */
        if (eq(k.tag_keys[u], k.tag_keys[t]))
          k.tag_keys[t].p = kn, kn[k.tag_keys[t].n] = '0' + (char)t, k.tag_keys[t].n++;
      k.tag_values[t] = (struct lp_str){vn, random_name(vn)};
    }
    CHECK(series_key_encode(&key, &k) == 0);
    CHECK(lp_utf8_valid(key.data, key.len));
    CHECK(series_key_decode(key.data, key.len, sc, &back) == 0);
    CHECK(eq(back.measurement, k.measurement) && eq(back.field, k.field));
    CHECK_EQ_INT(back.ntags, k.ntags);
    for (int t = 0; t < k.ntags; t++) { /* every tag, in the decoded (sorted) order */
      int found = 0;
      for (int u = 0; u < back.ntags; u++)
        found += eq(back.tag_keys[u], k.tag_keys[t]) && eq(back.tag_values[u], k.tag_values[t]);
      CHECK_EQ_INT(found, 1);
    }
    /* encoding the decoded parts gives the same key: one key per series */
    CHECK(series_key_encode(&again, &back) == 0);
    CHECK(again.len == key.len && memcmp(again.data, key.data, key.len) == 0);
  }
  buf_release(&key);
  buf_release(&again);
}

TEST(keys_refuse_what_they_cannot_hold) {
  struct buf b;
  buf_init(&b, 0);
  struct series_key k = {.measurement = {"m", 1}, .field = {"", 0}};
  CHECK_EQ_INT(series_key_encode(&b, &k), GROVE_EINVAL); /* empty field */
  k.field = (struct lp_str){"f", 1};
  k.ntags = 2;
  k.tag_keys[0] = k.tag_keys[1] = (struct lp_str){"t", 1};
  k.tag_values[0] = k.tag_values[1] = (struct lp_str){"v", 1};
  CHECK_EQ_INT(series_key_encode(&b, &k), GROVE_EINVAL); /* a tag twice */
  k.ntags = 0;
  k.measurement = (struct lp_str){"a\0b", 3};
  CHECK_EQ_INT(series_key_encode(&b, &k), GROVE_EINVAL); /* NUL */
  static char big[SERIES_KEY_MAX];
  memset(big, 'x', sizeof big);
  k.measurement = (struct lp_str){big, sizeof big};
  CHECK_EQ_INT(series_key_encode(&b, &k), GROVE_ETOOBIG);
  /* decoding is strict: only what encoding makes */
  char sc[64];
  struct series_key d;
  const char *bad[] = {"m", "m ", " f", "m,a f", "m,a= f", "m,b=1,a=2 f", "m,a=1,a=2 f",
                       "m f=g", "m\\x f", "m,a=b=c f", "m f,g", "m f\\"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (series_key_decode(bad[i], strlen(bad[i]), sc, &d) != GROVE_EINVAL)
      fprintf(stderr, "decoded '%s'\n", bad[i]);
    CHECK_EQ_INT(series_key_decode(bad[i], strlen(bad[i]), sc, &d), GROVE_EINVAL);
  }
  buf_release(&b);
}

/* ---- keys of the first format ----------------------------------------------------------- */

static const char *legacy(const char *old, struct buf *b) {
  CHECK(series_key_from_legacy(b, old, strlen(old)) == 0);
  return b->data;
}

TEST(first_format_keys_convert_as_they_were_meant) {
  struct buf b;
  buf_init(&b, 0);
  CHECK_EQ_STR(legacy("air_quality,station=st-001 pm25", &b), "air_quality,station=st-001 pm25");
  CHECK_EQ_STR(legacy("air_quality,region=north,station=st-001 pm25", &b),
               "air_quality,region=north,station=st-001 pm25");
  CHECK_EQ_STR(legacy("m v", &b), "m v");
  CHECK_EQ_STR(legacy("cpu,host=web 1 usage", &b), "cpu,host=web\\ 1 usage");
  CHECK_EQ_STR(legacy("win,instance=C:\\ v", &b), "win,instance=C:\\\\ v");
  CHECK_EQ_STR(legacy("coll,a=x,b=y v", &b), "coll,a=x,b=y v");
  CHECK_EQ_STR(legacy("m,a=x,y v", &b), "m,a=x\\,y v");          /* a piece with no '=' */
  CHECK_EQ_STR(legacy("m,b=1,a=2 f", &b), "m\\,b=1\\,a=2\\ f legacy\\ key"); /* out of order */
  CHECK_EQ_STR(legacy("nospace", &b), "nospace legacy\\ key");
  buf_release(&b);
}

TEST(first_format_keys_never_merge) {
  /* every key of up to 7 bytes over a small alphabet: all distinct after */
  static const char alphabet[] = "a,= ";
  struct buf b;
  buf_init(&b, 0);
  size_t total = 0;
  for (int len = 1; len <= 7; len++)
    total += (size_t)1 << (2 * len);
  char **seen = calloc(total, sizeof *seen);
  size_t n = 0;
  for (int len = 1; len <= 7; len++)
    for (unsigned code = 0; code < 1u << (2 * len); code++) {
      char old[8];
      for (int i = 0; i < len; i++)
        old[i] = alphabet[(code >> (2 * i)) & 3];
      CHECK(series_key_from_legacy(&b, old, (size_t)len) == 0);
      char sc[64];
      struct series_key k;
      CHECK(series_key_decode(b.data, b.len, sc, &k) == 0);
      seen[n++] = strdup(b.data);
    }
  qsort(seen, n, sizeof *seen, (int (*)(const void *, const void *))strcmp);
  for (size_t i = 1; i < n; i++)
    if (strcmp(seen[i - 1], seen[i]) == 0) {
      fprintf(stderr, "two old keys became '%s'\n", seen[i]);
      CHECK(0);
    }
  for (size_t i = 0; i < n; i++)
    free(seen[i]);
  free(seen);
  buf_release(&b);
}

/* strcmp through pointers, for qsort */
static int cmp_strp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A data dir as the first format left it: series.db's keys rewritten to
 * the old text and user_version 0, plus a key and a point only in the
 * log. Opening converts the keys; ids and points stay with them. */
TEST(a_store_of_the_first_format_keeps_its_series) {
  char dir[] = "/tmp/grove-keys-XXXXXX";
  CHECK(mkdtemp(dir));
  struct series *s;
  char err[256];
  CHECK(series_open(&s, dir, err, sizeof err) == 0);
  uint32_t a, b, c;
  CHECK(series_id(s, "m,host=web\\ 1 usage", &a) == 0);
  CHECK(series_id(s, "air,station=s1 pm25", &b) == 0);
  CHECK(series_id(s, "m,a=x\\,b\\=y v", &c) == 0);
  struct series_point p[] = {{a, 10, 1}, {b, 10, 2}, {c, 10, 3}};
  CHECK(series_append_sync(s, p, 3) == 0);
  CHECK(series_flush(s) == 0);
  series_close(s);
  /* back to the first format: keys joined without escaping */
  char path[128];
  snprintf(path, sizeof path, "%s/series.db", dir);
  sqlite3 *db;
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db,
                     "UPDATE series SET key = 'm,host=web 1 usage' WHERE key = 'm,host=web\\ 1 usage';"
                     "UPDATE series SET key = 'm,a=x,b=y v' WHERE key = 'm,a=x\\,b\\=y v';"
                     "PRAGMA user_version = 0",
                     NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  /* and a key written to the log by the first format (id 3), with a point */
  snprintf(path, sizeof path, "%s/series.wal", dir);
  FILE *wal = fopen(path, "ab");
  CHECK(wal);
  const char old[] = "cpu,path=C:\\ x"; /* tag path = C:\ */
  unsigned char rec[64];
  size_t pl = 1 + 4 + strlen(old);
  rec[8] = 'K';
  rec[9] = 3, rec[10] = rec[11] = rec[12] = 0;
  memcpy(rec + 13, old, strlen(old));
  uint32_t crc = (uint32_t)crc32(0, rec + 8, (uInt)pl);
  for (int i = 0; i < 4; i++) {
    rec[i] = (unsigned char)(pl >> (8 * i));
    rec[4 + i] = (unsigned char)(crc >> (8 * i));
  }
  CHECK(fwrite(rec, 1, 8 + pl, wal) == 8 + pl);
  unsigned char prec[8 + 21];
  prec[8] = 'P';
  uint32_t id = 3;
  int64_t ts = 20;
  double v = 4;
  uint64_t bits;
  memcpy(&bits, &v, 8);
  for (int i = 0; i < 4; i++)
    prec[9 + i] = (unsigned char)(id >> (8 * i));
  for (int i = 0; i < 8; i++) {
    prec[13 + i] = (unsigned char)((uint64_t)ts >> (8 * i));
    prec[21 + i] = (unsigned char)(bits >> (8 * i));
  }
  crc = (uint32_t)crc32(0, prec + 8, 21);
  for (int i = 0; i < 4; i++) {
    prec[i] = (unsigned char)(21u >> (8 * i));
    prec[4 + i] = (unsigned char)(crc >> (8 * i));
  }
  CHECK(fwrite(prec, 1, sizeof prec, wal) == sizeof prec);
  fclose(wal);
  for (int round = 0; round < 2; round++) { /* converted once; the second open finds it so */
    CHECK(series_open(&s, dir, err, sizeof err) == 0);
    uint32_t got;
    CHECK(series_find(s, "m,host=web\\ 1 usage", &got) == 0 && got == a);
    CHECK(series_find(s, "air,station=s1 pm25", &got) == 0 && got == b);
    CHECK(series_find(s, "m,a=x,b=y v", &got) == 0 && got == c); /* as the old key read */
    CHECK(series_find(s, "cpu,path=C:\\\\ x", &got) == 0 && got == 3);
    CHECK_EQ_INT(series_find(s, "m,host=web 1 usage", &got), GROVE_ENOENT);
    struct series_sample *pts;
    size_t n;
    CHECK(series_range(s, a, 0, 100, &pts, &n) == 0 && n == 1 && pts[0].value == 1);
    free(pts);
    CHECK(series_range(s, 3, 0, 100, &pts, &n) == 0 && n == 1 && pts[0].value == 4);
    free(pts);
    /* new keys go on from there */
    uint32_t d;
    CHECK(series_id(s, "new k", &d) == 0 && d == 4);
    series_close(s);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  (void)cmp_strp;
}

/* The same on PostgreSQL (GROVE_TEST_STORE=postgres://…): a key table of
 * the first format, converted by the first instance that opens it. */
TEST(pg_a_store_of_the_first_format_keeps_its_series) {
  const char *url = getenv("GROVE_TEST_STORE");
  if (!url) {
    fprintf(stderr, "  (skipped: GROVE_TEST_STORE is not set)\n");
    return;
  }
  PGconn *c = PQconnectdb(url);
  CHECK(PQstatus(c) == CONNECTION_OK);
  PQclear(PQexec(c, "DROP TABLE IF EXISTS series_points, series_keys, series_rollups, "
                    "series_meta CASCADE; DROP SEQUENCE IF EXISTS series_groups"));
  /* as the first format made it: no series_meta */
  PGresult *r = PQexec(c, "CREATE TABLE series_keys (id integer GENERATED BY DEFAULT AS IDENTITY "
                          "PRIMARY KEY, key text NOT NULL UNIQUE);"
                          "INSERT INTO series_keys (key) VALUES ('m,host=web 1 usage'),"
                          "('air,station=s1 pm25'), ('m,a=x,b=y v')");
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  PQfinish(c);
  for (int round = 0; round < 2; round++) {
    struct series *s;
    char err[256];
    int rc = series_open_pg(&s, url, err, sizeof err);
    if (rc)
      fprintf(stderr, "series_open_pg: %s\n", err);
    CHECK(rc == 0);
    uint32_t got;
    CHECK(series_find(s, "m,host=web\\ 1 usage", &got) == 0 && got == 1);
    CHECK(series_find(s, "air,station=s1 pm25", &got) == 0 && got == 2);
    CHECK(series_find(s, "m,a=x,b=y v", &got) == 0 && got == 3);
    CHECK_EQ_INT(series_find(s, "m,host=web 1 usage", &got), GROVE_ENOENT);
    series_close(s);
  }
}

/* ---- field types ------------------------------------------------------------------------ */

static void types_are_claimed_once(struct series *s, struct series *other, void (*reopen)(struct series **)) {
  const char *keys[] = {"m v", "m s", "m v"};
  uint8_t want[] = {SERIES_TYPE_FLOAT, SERIES_TYPE_STRING, SERIES_TYPE_INT}, got[3];
  CHECK_EQ_INT(series_type_cached(s, "m v"), SERIES_TYPE_NONE);
  CHECK(series_types_claim(s, keys, want, 3, got) == 0);
  /* the first claim of a key wins, even within one call */
  CHECK(got[0] == SERIES_TYPE_FLOAT && got[1] == SERIES_TYPE_STRING && got[2] == SERIES_TYPE_FLOAT);
  CHECK_EQ_INT(series_type_cached(s, "m v"), SERIES_TYPE_FLOAT);
  /* another writer that has not seen it is told */
  if (other) {
    CHECK_EQ_INT(series_type_cached(other, "m v"), SERIES_TYPE_NONE);
    uint8_t b = SERIES_TYPE_BOOL, g;
    CHECK(series_types_claim(other, keys, &b, 1, &g) == 0 && g == SERIES_TYPE_FLOAT);
    CHECK_EQ_INT(series_type_cached(other, "m v"), SERIES_TYPE_FLOAT);
  }
  reopen(&s);
  CHECK_EQ_INT(series_type_cached(s, "m v"), SERIES_TYPE_FLOAT);
  CHECK_EQ_INT(series_type_cached(s, "m s"), SERIES_TYPE_STRING);
  uint8_t i = SERIES_TYPE_INT, g;
  CHECK(series_types_claim(s, keys, &i, 1, &g) == 0 && g == SERIES_TYPE_FLOAT);
  CHECK_EQ_STR(series_type_name(SERIES_TYPE_UINT), "unsigned");
  series_close(s);
}

static char types_dir[32];

static void reopen_sqlite(struct series **s) {
  char err[256];
  series_close(*s);
  CHECK(series_open(s, types_dir, err, sizeof err) == 0);
}

TEST(field_types_are_kept_by_key_across_opens) {
  snprintf(types_dir, sizeof types_dir, "/tmp/grove-types-XXXXXX");
  CHECK(mkdtemp(types_dir));
  struct series *s;
  char err[256];
  CHECK(series_open(&s, types_dir, err, sizeof err) == 0);
  types_are_claimed_once(s, NULL, reopen_sqlite);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", types_dir);
  CHECK(system(cmd) == 0);
}

static void reopen_pg(struct series **s) {
  char err[256];
  series_close(*s);
  CHECK(series_open_pg(s, getenv("GROVE_TEST_STORE"), err, sizeof err) == 0);
}

TEST(pg_field_types_are_shared_by_instances) {
  const char *url = getenv("GROVE_TEST_STORE");
  if (!url) {
    fprintf(stderr, "  (skipped: GROVE_TEST_STORE is not set)\n");
    return;
  }
  PGconn *c = PQconnectdb(url);
  CHECK(PQstatus(c) == CONNECTION_OK);
  PQclear(PQexec(c, "DROP TABLE IF EXISTS series_types"));
  PQfinish(c);
  struct series *a, *b;
  char err[256];
  CHECK(series_open_pg(&a, url, err, sizeof err) == 0);
  CHECK(series_open_pg(&b, url, err, sizeof err) == 0);
  types_are_claimed_once(a, b, reopen_pg);
  series_close(b);
}

static const struct test tests[] = {
    T(field_types_are_kept_by_key_across_opens),
    T(pg_field_types_are_shared_by_instances),
    T(utf8_is_checked_as_character_by_character),
    T(lines_read_as_influxdb_reads_them),
    T(a_string_field_may_hold_a_newline),
    T(the_series_parameter_is_line_protocol_escaped),
    T(keys_round_trip_any_names),
    T(keys_refuse_what_they_cannot_hold),
    T(first_format_keys_convert_as_they_were_meant),
    T(first_format_keys_never_merge),
    T(a_store_of_the_first_format_keeps_its_series),
    T(pg_a_store_of_the_first_format_keeps_its_series),
};
TEST_MAIN(tests)
