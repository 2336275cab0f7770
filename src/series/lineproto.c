/* lineproto.c — InfluxDB line protocol parser. */
#include "series/lineproto.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lp_precision_parse(const char *s, enum lp_precision *out) {
  if (!s || !*s || !strcmp(s, "ns") || !strcmp(s, "n"))
    *out = LP_NS;
  else if (!strcmp(s, "us") || !strcmp(s, "u") || !strcmp(s, "\xc2\xb5s"))
    *out = LP_US;
  else if (!strcmp(s, "ms"))
    *out = LP_MS;
  else if (!strcmp(s, "s"))
    *out = LP_S;
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

/* Reads a name up to an unescaped stop character, unescaping into the
 * scratch. `escapable` lists the characters a backslash escapes. */
static struct lp_str name(struct cur *c, const char *stops, const char *escapable) {
  struct lp_str r = {c->out, 0};
  while (c->s < c->end && !strchr(stops, *c->s)) {
    if (*c->s == '\\' && c->s + 1 < c->end && strchr(escapable, c->s[1])) {
      c->s++;
    }
    *c->out++ = *c->s++;
    r.n++;
  }
  return r;
}

static bool at(const struct cur *c, char ch) { return c->s < c->end && *c->s == ch; }

static int parse_value(struct cur *c, struct lp_field *f, char *err, size_t errlen) {
  if (at(c, '"')) {
    c->s++;
    f->type = LP_STRING;
    f->v.s.p = c->out;
    f->v.s.n = 0;
    while (c->s < c->end && *c->s != '"') {
      if (*c->s == '\\' && c->s + 1 < c->end && (c->s[1] == '"' || c->s[1] == '\\'))
        c->s++;
      *c->out++ = *c->s++;
      f->v.s.n++;
    }
    if (!at(c, '"'))
      return fail(err, errlen, "unbalanced quotes");
    c->s++;
    return 0;
  }
  const char *start = c->s;
  while (c->s < c->end && *c->s != ',' && *c->s != ' ')
    c->s++;
  size_t n = (size_t)(c->s - start);
  char tmp[64];
  if (n == 0)
    return fail(err, errlen, "missing field value");
  if (n >= sizeof tmp)
    return fail(err, errlen, "field value is too long");
  memcpy(tmp, start, n);
  tmp[n] = '\0';
  static const char *const trues[] = {"t", "T", "true", "True", "TRUE"};
  static const char *const falses[] = {"f", "F", "false", "False", "FALSE"};
  for (int i = 0; i < 5; i++) {
    if (!strcmp(tmp, trues[i]) || !strcmp(tmp, falses[i])) {
      f->type = LP_BOOL;
      f->v.b = !strcmp(tmp, trues[i]);
      return 0;
    }
  }
  char *e;
  errno = 0;
  if (tmp[n - 1] == 'i' || tmp[n - 1] == 'u') {
    bool u = tmp[n - 1] == 'u';
    tmp[n - 1] = '\0';
    if (n < 2 || (tmp[0] != '-' && (tmp[0] < '0' || tmp[0] > '9')))
      return fail(err, errlen, "invalid integer");
    if (u) {
      if (tmp[0] == '-')
        return fail(err, errlen, "unsigned integer is negative");
      f->v.u = strtoull(tmp, &e, 10);
      f->type = LP_UINT;
    } else {
      f->v.i = strtoll(tmp, &e, 10);
      f->type = LP_INT;
    }
    if (*e || errno == ERANGE)
      return fail(err, errlen, errno == ERANGE ? "integer out of range" : "invalid integer");
    return 0;
  }
  /* floats: digits, sign, point, exponent; no inf/nan, no hex */
  for (size_t i = 0; i < n; i++)
    if (!strchr("0123456789+-.eE", tmp[i]))
      return fail(err, errlen, "invalid number");
  f->v.f = strtod(tmp, &e);
  if (*e || e == tmp || errno == ERANGE || !isfinite(f->v.f))
    return fail(err, errlen, "invalid number");
  f->type = LP_FLOAT;
  return 0;
}

int lp_parse_line(const char *line, size_t len, enum lp_precision prec, int64_t now_ns,
                  char *scratch, struct lp_point *p, char *err, size_t errlen) {
  struct cur c = {line, line + len, scratch};
  while (c.end > c.s && (c.end[-1] == '\r' || c.end[-1] == ' '))
    c.end--;
  p->ntags = p->nfields = 0;
  if (len > LP_MAX_LINE)
    return fail(err, errlen, "line is too long");
  p->measurement = name(&c, ", ", ", \\");
  if (!p->measurement.n)
    return fail(err, errlen, "missing measurement");
  while (at(&c, ',')) {
    c.s++;
    if (p->ntags == LP_MAX_TAGS)
      return fail(err, errlen, "too many tags");
    struct lp_str k = name(&c, "=, ", ",= \\");
    if (!at(&c, '=') || !k.n)
      return fail(err, errlen, "missing tag key");
    c.s++;
    struct lp_str v = name(&c, ", ", ",= \\");
    if (!v.n)
      return fail(err, errlen, "missing tag value");
    p->tag_keys[p->ntags] = k;
    p->tag_values[p->ntags++] = v;
  }
  if (!at(&c, ' '))
    return fail(err, errlen, "missing fields");
  c.s++;
  for (;;) {
    if (p->nfields == LP_MAX_FIELDS)
      return fail(err, errlen, "too many fields");
    struct lp_field *f = &p->fields[p->nfields];
    f->key = name(&c, "=, ", ",= \\");
    if (!at(&c, '=') || !f->key.n)
      return fail(err, errlen, "invalid field format");
    c.s++;
    if (parse_value(&c, f, err, errlen))
      return -1;
    p->nfields++;
    if (!at(&c, ','))
      break;
    c.s++;
  }
  if (c.s == c.end) {
    p->ts_ns = now_ns;
    return 0;
  }
  if (!at(&c, ' '))
    return fail(err, errlen, "invalid field format");
  c.s++;
  const char *ts = c.s;
  size_t tn = (size_t)(c.end - ts);
  char tmp[32];
  if (tn == 0 || tn >= sizeof tmp)
    return fail(err, errlen, "invalid timestamp");
  memcpy(tmp, ts, tn);
  tmp[tn] = '\0';
  char *e;
  errno = 0;
  long long v = strtoll(tmp, &e, 10);
  if (*e || errno == ERANGE)
    return fail(err, errlen, "invalid timestamp");
  static const int64_t scale[] = {1, 1000, 1000000, 1000000000};
  int64_t m = scale[prec];
  if (v > INT64_MAX / m || v < INT64_MIN / m)
    return fail(err, errlen, "timestamp out of range");
  p->ts_ns = (int64_t)v * m;
  return 0;
}

int lp_parse(const char *body, size_t len, enum lp_precision prec, int64_t now_ns,
             lp_point_fn on_point, lp_error_fn on_error, void *arg, struct lp_stats *stats) {
  struct lp_stats st = {0};
  struct lp_point *pt = malloc(sizeof *pt);
  char *scratch = malloc(LP_MAX_LINE + 1);
  int rc = 0, lineno = 0;
  if (!pt || !scratch) {
    free(pt);
    free(scratch);
    return -1;
  }
  const char *p = body, *end = body + len;
  while (p < end && !rc) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    size_t n = (size_t)(le - p);
    lineno++;
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
