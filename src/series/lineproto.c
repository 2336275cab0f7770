/* lineproto.c — InfluxDB line protocol parser. */
#include "series/lineproto.h"

#include "core/buf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "core/util.h"

int lp_precision_parse(const char *s, enum lp_precision *out) {
  if (!s || !*s || !strcmp(s, "ns") || !strcmp(s, "n"))
    *out = LP_NS;
  else if (!strcmp(s, "us") || !strcmp(s, "u") || !strcmp(s, "\xc2\xb5s"))
    *out = LP_US;
  else if (!strcmp(s, "ms"))
    *out = LP_MS;
  else if (!strcmp(s, "s"))
    *out = LP_S;
  else if (!strcmp(s, "m"))
    *out = LP_M;
  else if (!strcmp(s, "h"))
    *out = LP_H;
  else
    return -1;
  return 0;
}

/* A cursor over one line. */
struct cur {
  const char *s, *end;
  char *out; /* scratch write position */
};

static int fail(char *err, size_t n, const char *why) {
  if (err && n)
    snprintf(err, n, "%s", why);
  return -1;
}

bool lp_utf8_valid(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* ASCII (names, tags, JSON bodies: nearly always) eight bytes at a time */
    for (uint64_t w; i + 8 <= n; i += 8) {
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ULL)
        break;
    }
    if (i >= n)
      break;
    size_t len = (unsigned char)s[i] < 0x80 ? 1 : utf8_seq_len(s + i, n - i);
    if (!len)
      return false;
    i += len;
  }
  return true;
}

/* InfluxDB's scanner (models/points.go): a byte is escaped when the byte
 * before it is a backslash, whatever that backslash is. */
static bool escaped(const struct cur *c, const char *line) {
  return c->s > line && c->s[-1] == '\\';
}

/* Copies [from, to) into the scratch, a backslash followed by a byte of
 * `unescape` giving that byte alone; other backslashes stay (InfluxDB's
 * escape.Unescape and unescapeTag). */
static struct lp_str unescape(struct cur *c, const char *from, const char *to,
                              const char *unescape_set) {
  struct lp_str r = {c->out, 0};
  for (const char *q = from; q < to; q++) {
    if (*q == '\\' && q + 1 < to && strchr(unescape_set, q[1]))
      q++;
    *c->out++ = *q;
    r.n++;
  }
  return r;
}

#define MEASUREMENT_UNESCAPE ",\" ="
#define TAG_UNESCAPE ", ="

static bool at(const struct cur *c, char ch) { return c->s < c->end && *c->s == ch; }

static void skip_blanks(struct cur *c) {
  while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\0'))
    c->s++;
}

static bool same(const struct lp_str *a, const struct lp_str *b) {
  return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

static bool is_name(const struct lp_str *s, const char *name) {
  return s->n == strlen(name) && memcmp(s->p, name, s->n) == 0;
}

/* measurement[,tag=value…] up to the space before the fields (c->s left
 * on it). `line` is where the line starts (for escapes). */
static int parse_series(struct cur *c, const char *line, struct lp_point *p, char *err,
                        size_t errlen) {
  p->ntags = 0;
  if (c->s == c->end || *c->s == ',')
    return fail(err, errlen, "missing measurement");
  const char *from = c->s;
  while (c->s < c->end && !((*c->s == ',' || *c->s == ' ') && !escaped(c, line)))
    c->s++;
  if (c->s == c->end)
    return fail(err, errlen, "missing fields");
  p->measurement = unescape(c, from, c->s, MEASUREMENT_UNESCAPE);
  if (!lp_utf8_valid(p->measurement.p, p->measurement.n))
    return fail(err, errlen, "invalid UTF-8 in the measurement");
  while (at(c, ',') && !escaped(c, line)) {
    c->s++;
    if (c->s == c->end || *c->s == ' ' || *c->s == ',' || *c->s == '=')
      return fail(err, errlen, "missing tag key");
    from = c->s;
    for (c->s++;; c->s++) {
      if (c->s == c->end || ((*c->s == ' ' || *c->s == ',') && !escaped(c, line)))
        return fail(err, errlen, "missing tag value");
      if (*c->s == '=' && !escaped(c, line))
        break;
    }
    if (p->ntags == LP_MAX_TAGS)
      return fail(err, errlen, "too many tags");
    struct lp_str k = unescape(c, from, c->s, TAG_UNESCAPE);
    c->s++;
    if (c->s == c->end || *c->s == ',' || *c->s == ' ')
      return fail(err, errlen, "missing tag value");
    from = c->s;
    for (c->s++;; c->s++) {
      if (c->s == c->end)
        return fail(err, errlen, "missing fields");
      if (!escaped(c, line)) {
        if (*c->s == '=')
          return fail(err, errlen, "invalid tag format");
        if (*c->s == ',' || *c->s == ' ')
          break;
      }
    }
    struct lp_str v = unescape(c, from, c->s, TAG_UNESCAPE);
    if (!lp_utf8_valid(k.p, k.n) || !lp_utf8_valid(v.p, v.n))
      return fail(err, errlen, "invalid UTF-8 in a tag");
    if (is_name(&k, "time") || is_name(&k, "_measurement") || is_name(&k, "_field"))
      return fail(err, errlen, "invalid tag key: time, _measurement and _field are reserved");
    for (int i = 0; i < p->ntags; i++)
      if (same(&p->tag_keys[i], &k))
        return fail(err, errlen, "duplicate tags");
    p->tag_keys[p->ntags] = k;
    p->tag_values[p->ntags++] = v;
  }
  return 0;
}

/* A field key: up to an unescaped '=' (c->s left on it). */
static int parse_field_key(struct cur *c, const char *line, struct lp_str *key, char *err,
                           size_t errlen) {
  const char *from = c->s;
  while (c->s < c->end && !(*c->s == '=' && !escaped(c, line))) {
    if ((*c->s == ',' || *c->s == ' ') && !escaped(c, line))
      return fail(err, errlen, "invalid field format");
    c->s++;
  }
  if (c->s == from)
    return fail(err, errlen, "missing field key");
  if (c->s == c->end)
    return fail(err, errlen, "invalid field format");
  *key = unescape(c, from, c->s, TAG_UNESCAPE);
  if (!lp_utf8_valid(key->p, key->n))
    return fail(err, errlen, "invalid UTF-8 in a field key");
  if (is_name(key, "time"))
    return fail(err, errlen, "invalid field name: time is reserved");
  return 0;
}

/* A number as InfluxDB's scanNumber takes it: [-]digits[.digits][e[+-]digits],
 * with a trailing i (integer) or u (unsigned) and then no point or
 * exponent. */
static int parse_number(const char *s, size_t n, struct lp_field *f, char *err, size_t errlen) {
  char tmp[64];
  if (n >= sizeof tmp)
    return fail(err, errlen, "invalid number");
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char last = tmp[n - 1];
  bool integer = last == 'i' || last == 'u';
  size_t digits = 0, body = integer ? n - 1 : n;
  bool point = false, exp = false;
  for (size_t i = tmp[0] == '-' ? 1 : 0; i < body; i++) {
    char ch = tmp[i];
    if (ch >= '0' && ch <= '9') {
      digits++;
    } else if (ch == '.' && !point && !exp) {
      point = true;
    } else if ((ch == 'e' || ch == 'E') && digits && !exp) {
      exp = true;
      if (i + 1 < body && (tmp[i + 1] == '+' || tmp[i + 1] == '-'))
        i++;
      if (i + 1 >= body)
        return fail(err, errlen, "invalid number");
    } else {
      return fail(err, errlen, "invalid number");
    }
  }
  if (!digits || (integer && (point || exp)))
    return fail(err, errlen, "invalid number");
  char *e;
  errno = 0;
  if (last == 'u') {
    if (tmp[0] == '-')
      return fail(err, errlen, "invalid number: an unsigned integer is not negative");
    tmp[n - 1] = '\0';
    f->v.u = strtoull(tmp, &e, 10);
    f->type = LP_UINT;
  } else if (last == 'i') {
    tmp[n - 1] = '\0';
    f->v.i = strtoll(tmp, &e, 10);
    f->type = LP_INT;
  } else {
    f->v.f = strtod(tmp, &e);
    f->type = LP_FLOAT;
    if (*e || !isfinite(f->v.f) || errno == ERANGE)
      return fail(err, errlen, "invalid float");
    return 0;
  }
  if (*e || errno == ERANGE)
    return fail(err, errlen, "integer out of range");
  return 0;
}

static int parse_value(struct cur *c, const char *line, struct lp_field *f, char *err,
                       size_t errlen) {
  if (c->s == c->end || *c->s == ',' || *c->s == ' ')
    return fail(err, errlen, "missing field value");
  if (*c->s == '"') {
    c->s++;
    f->type = LP_STRING;
    f->v.s.p = c->out;
    f->v.s.n = 0;
    while (c->s < c->end && *c->s != '"') {
      if (*c->s == '\\' && c->s + 1 < c->end && (c->s[1] == '"' || c->s[1] == '\\'))
        c->s++;
      else if (*c->s == '\\' && c->s + 1 < c->end) /* kept, with what it escapes */
        *c->out++ = *c->s++, f->v.s.n++;
      *c->out++ = *c->s++;
      f->v.s.n++;
    }
    if (!at(c, '"'))
      return fail(err, errlen, "unbalanced quotes");
    c->s++;
    if (c->s < c->end && *c->s != ',' && *c->s != ' ')
      return fail(err, errlen, "invalid field format");
    if (!lp_utf8_valid(f->v.s.p, f->v.s.n))
      return fail(err, errlen, "invalid UTF-8 in a string field");
    return 0;
  }
  (void)line;
  const char *start = c->s;
  while (c->s < c->end && *c->s != ',' && *c->s != ' ')
    c->s++;
  size_t n = (size_t)(c->s - start);
  char first = *start;
  if ((first >= '0' && first <= '9') || first == '.' || first == '-' || first == 'N' ||
      first == 'n')
    return parse_number(start, n, f, err, errlen);
  static const char *const trues[] = {"t", "T", "true", "True", "TRUE"};
  static const char *const falses[] = {"f", "F", "false", "False", "FALSE"};
  for (int i = 0; i < 5; i++) {
    size_t tn = strlen(trues[i]), fn = strlen(falses[i]);
    if ((n == tn && !memcmp(start, trues[i], n)) || (n == fn && !memcmp(start, falses[i], n))) {
      f->type = LP_BOOL;
      f->v.b = n == tn && !memcmp(start, trues[i], n);
      return 0;
    }
  }
  return fail(err, errlen, "invalid boolean");
}

int lp_parse_key(const char *text, size_t len, char *scratch, struct lp_point *p, char *err,
                 size_t errlen) {
  struct cur c = {text, text + len, scratch};
  p->nfields = 0;
  if (parse_series(&c, text, p, err, errlen))
    return -1;
  c.s++; /* the space */
  if (c.s == c.end)
    return fail(err, errlen, "missing field key");
  struct lp_str *key = &p->fields[0].key;
  const char *from = c.s;
  for (; c.s < c.end; c.s++)
    if ((*c.s == ',' || *c.s == ' ' || *c.s == '=') && !escaped(&c, text))
      return fail(err, errlen, "invalid field key: escape , = and space with a backslash");
  *key = unescape(&c, from, c.end, TAG_UNESCAPE);
  if (!lp_utf8_valid(key->p, key->n))
    return fail(err, errlen, "invalid UTF-8 in a field key");
  p->fields[0].type = LP_FLOAT;
  p->nfields = 1;
  return 0;
}

/* The timestamp [s, end): an optional '-' and decimal digits (InfluxDB's
 * scanTime), in units of prec, scaled to nanoseconds with checked
 * arithmetic. Out of range (InfluxDB's SafeCalcTime): the value, scaled,
 * is not in [TIME_MIN_NS, TIME_MAX_NS]. */
static int parse_time(const char *s, const char *end, enum lp_precision prec, int64_t *out,
                      char *err, size_t errlen) {
  static const int64_t scale[] = {1, 1000, 1000000, 1000000000, 60000000000, 3600000000000};
  static const char *const unit[] = {"ns", "us", "ms", "s", "m", "h"};
  bool neg = s < end && *s == '-';
  s += neg;
  if (s == end)
    return fail(err, errlen, "bad timestamp");
  int64_t v = 0;
  bool over = false;
  for (; s < end; s++) {
    if (*s < '0' || *s > '9')
      return fail(err, errlen, "bad timestamp");
    /* built negative: INT64_MIN has no positive twin */
    over = over || __builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, *s - '0', &v);
  }
  if (!over && !neg)
    over = __builtin_mul_overflow(v, -1, &v);
  if (over || __builtin_mul_overflow(v, scale[prec], &v) || !time_valid(v)) {
    char why[80];
    snprintf(why, sizeof why, "timestamp out of range at precision %s: 1677-09-21..2262-04-11",
             unit[prec]);
    return fail(err, errlen, why);
  }
  *out = v;
  return 0;
}

int lp_parse_line(const char *line, size_t len, enum lp_precision prec, int64_t now_ns,
                  char *scratch, struct lp_point *p, char *err, size_t errlen) {
  struct cur c = {line, line + len, scratch};
  if (c.end > c.s && c.end[-1] == '\r') /* a CRLF line end: the CR is not part of it */
    c.end--;
  p->ntags = p->nfields = 0;
  if (len > LP_MAX_LINE)
    return fail(err, errlen, "line is too long");
  skip_blanks(&c);
  line = c.s;
  if (parse_series(&c, line, p, err, errlen))
    return -1;
  skip_blanks(&c);
  if (c.s == c.end)
    return fail(err, errlen, "missing fields");
  for (;;) {
    if (p->nfields == LP_MAX_FIELDS)
      return fail(err, errlen, "too many fields");
    struct lp_field *f = &p->fields[p->nfields];
    if (parse_field_key(&c, line, &f->key, err, errlen))
      return -1;
    c.s++;
    if (parse_value(&c, line, f, err, errlen))
      return -1;
    p->nfields++;
    if (!at(&c, ','))
      break;
    c.s++;
    if (c.s == c.end || *c.s == ' ' || *c.s == ',')
      return fail(err, errlen, "invalid field format");
  }
  skip_blanks(&c);
  if (c.s == c.end) {
    p->ts_ns = now_ns;
    return 0;
  }
  const char *ts = c.s;
  while (c.s < c.end && *c.s != ' ')
    c.s++;
  const char *te = c.s;
  while (c.s < c.end && *c.s == ' ')
    c.s++;
  if (c.s != c.end)
    return fail(err, errlen, "point is invalid: more after the timestamp");
  return parse_time(ts, te, prec, &p->ts_ns, err, errlen);
}

/* The end of the line that starts at p: the next newline that is not
 * inside a string field (InfluxDB's scanLine: a string field may hold
 * newlines). */
static const char *line_end(const char *p, const char *end) {
  bool fields = false, quoted = false;
  int equals = 0, commas = 0;
  while (p < end) {
    if (*p == '\\' && end - p > 2) {
      p += 2;
      continue;
    }
    if (*p == ' ')
      fields = true;
    if (fields) {
      if (!quoted && *p == '=') {
        equals++, p++;
        continue;
      }
      if (!quoted && *p == ',') {
        commas++, p++;
        continue;
      }
      if (*p == '"' && equals > commas) {
        quoted = !quoted, p++;
        continue;
      }
    }
    if (*p == '\n' && !quoted)
      return p;
    p++;
  }
  return end;
}

int lp_parse(const char *body, size_t len, enum lp_precision prec, int64_t now_ns,
             lp_point_fn on_point, lp_error_fn on_error, void *arg, struct lp_stats *stats) {
  struct lp_stats st = {0};
  struct lp_point *pt = malloc(sizeof *pt);
  char *scratch = malloc(LP_MAX_LINE + 1);
  int rc = 0, lineno = 0, next_lineno = 1;
  if (!pt || !scratch) {
    free(pt);
    free(scratch);
    return -1;
  }
  const char *p = body, *end = body + len;
  while (p < end && !rc) {
    const char *le = line_end(p, end);
    const char *nl = le < end ? le : NULL;
    size_t n = (size_t)(le - p);
    lineno = next_lineno;
    /* a string spanning lines: the next line's number counts them all */
    for (const char *q = memchr(p, '\n', n); q; q = memchr(q + 1, '\n', (size_t)(le - q - 1)))
      next_lineno++;
    next_lineno++;
    const char *q = p;
    while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
      q++;
    if (q < le && *q != '#') {
      char why[64];
      st.lines++;
      if (n > LP_MAX_LINE) {
        st.errors++;
        if (on_error)
          on_error(lineno, p, 200, "line is too long", arg);
      } else if (lp_parse_line(q, (size_t)(le - q), prec, now_ns, scratch, pt, why,
                               sizeof why)) {
        st.errors++;
        if (on_error)
          on_error(lineno, q, (size_t)(le - q), why, arg);
      } else {
        st.points++;
        pt->line = lineno;
        pt->text = q;
        pt->text_len = (size_t)(le - q);
        rc = on_point(pt, arg);
      }
    }
    p = nl ? nl + 1 : end;
  }
  free(pt);
  free(scratch);
  if (stats)
    *stats = st;
  return rc;
}
