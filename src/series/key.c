/* key.c — the series key codec (see key.h). */
#include "series/key.h"

#include <string.h>

#include "core/error.h"

/* Which bytes get a backslash: bit 1 in measurements, bit 2 in tag keys,
 * tag values and field keys; bit 4 marks NUL (refused). */
static const unsigned char escapes[256] = {
    [0] = 4, ['\\'] = 3, [','] = 3, [' '] = 3, ['='] = 2,
};

static int put_escaped(struct buf *out, const char *p, size_t n, unsigned char kind) {
  if (n == 0)
    return GROVE_EINVAL;
  size_t run = 0; /* bytes kept as they are, appended in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = escapes[(unsigned char)p[i]];
    if (!c)
      continue;
    if (c & 4)
      return GROVE_EINVAL;
    if (!(c & kind))
      continue;
    int rc = buf_append(out, p + run, i - run);
    if (!rc)
      rc = buf_putc(out, '\\');
    if (rc)
      return rc;
    run = i;
  }
  return buf_append(out, p + run, n - run);
}

#define MEASUREMENT_SPECIAL "\\, "
#define NAME_SPECIAL "\\,= "
#define IN_MEASUREMENT 1
#define IN_NAME 2

static int cmp_str(const struct lp_str *a, const struct lp_str *b) {
  size_t m = a->n < b->n ? a->n : b->n;
  int c = memcmp(a->p, b->p, m);
  return c ? c : (a->n > b->n) - (a->n < b->n);
}

int series_key_put_series(struct buf *out, const struct series_key *k) {
  if (k->ntags < 0 || k->ntags > SERIES_KEY_MAX_TAGS)
    return GROVE_EINVAL;
  int order[SERIES_KEY_MAX_TAGS];
  for (int i = 0; i < k->ntags; i++)
    order[i] = i;
  for (int i = 1; i < k->ntags; i++) /* insertion sort: a few tags, often in order */
    for (int j = i; j > 0; j--) {
      int c = cmp_str(&k->tag_keys[order[j - 1]], &k->tag_keys[order[j]]);
      if (c == 0)
        return GROVE_EINVAL;
      if (c < 0)
        break;
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  int rc = put_escaped(out, k->measurement.p, k->measurement.n, IN_MEASUREMENT);
  for (int i = 0; i < k->ntags && !rc; i++) {
    const struct lp_str *tk = &k->tag_keys[order[i]], *tv = &k->tag_values[order[i]];
    if (!(rc = buf_putc(out, ',')) && !(rc = put_escaped(out, tk->p, tk->n, IN_NAME)) &&
        !(rc = buf_putc(out, '=')))
      rc = put_escaped(out, tv->p, tv->n, IN_NAME);
  }
  return rc ? rc : buf_putc(out, ' ');
}

int series_key_put_field(struct buf *out, const char *field, size_t n) {
  return put_escaped(out, field, n, IN_NAME);
}

int series_key_encode(struct buf *out, const struct series_key *k) {
  buf_reset(out);
  int rc = series_key_put_series(out, k);
  if (!rc)
    rc = series_key_put_field(out, k->field.p, k->field.n);
  if (!rc && out->len > SERIES_KEY_MAX)
    rc = GROVE_ETOOBIG;
  return rc;
}

/* ---- decoding ------------------------------------------------------------------------ */

struct rd {
  const char *s, *end;
  char *out;
};

/* Reads up to an unescaped byte of `stops` (or the end), unescaping into
 * the scratch. A backslash must come before a byte of `special`; a byte
 * of `special` must come after a backslash unless it is a stop. */
static int part(struct rd *r, const char *stops, const char *special, struct lp_str *out) {
  out->p = r->out;
  out->n = 0;
  while (r->s < r->end && !strchr(stops, *r->s)) {
    char c = *r->s++;
    if (c == '\\') {
      if (r->s == r->end || !strchr(special, *r->s))
        return GROVE_EINVAL;
      c = *r->s++;
    } else if (strchr(special, c) || c == '\0') {
      return GROVE_EINVAL;
    }
    *r->out++ = c;
    out->n++;
  }
  return out->n ? 0 : GROVE_EINVAL;
}

int series_key_decode(const char *key, size_t len, char *scratch, struct series_key *k) {
  struct rd r = {key, key + len, scratch};
  k->ntags = 0;
  if (part(&r, ", ", MEASUREMENT_SPECIAL, &k->measurement))
    return GROVE_EINVAL;
  while (r.s < r.end && *r.s == ',') {
    r.s++;
    if (k->ntags == SERIES_KEY_MAX_TAGS)
      return GROVE_EINVAL;
    struct lp_str *tk = &k->tag_keys[k->ntags], *tv = &k->tag_values[k->ntags];
    if (part(&r, "=", NAME_SPECIAL, tk) || r.s == r.end || *r.s++ != '=' ||
        part(&r, ", ", NAME_SPECIAL, tv))
      return GROVE_EINVAL;
    if (k->ntags && cmp_str(&k->tag_keys[k->ntags - 1], tk) >= 0)
      return GROVE_EINVAL; /* not in the one order encoding gives */
    k->ntags++;
  }
  if (r.s == r.end || *r.s++ != ' ')
    return GROVE_EINVAL;
  return part(&r, "", NAME_SPECIAL, &k->field);
}

const struct lp_str *series_key_tag(const struct series_key *k, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < k->ntags; i++)
    if (k->tag_keys[i].n == n && memcmp(k->tag_keys[i].p, name, n) == 0)
      return &k->tag_values[i];
  return NULL;
}

/* ---- format 0 ------------------------------------------------------------------------ */

static int legacy_fallback(struct buf *out, const char *old, size_t len) {
  struct series_key k = {.measurement = {old, len}, .field = {"legacy key", 10}};
  return series_key_encode(out, &k);
}

int series_key_from_legacy(struct buf *out, const char *old, size_t len) {
  struct series_key k;
  memset(&k, 0, sizeof k);
  const char *sp = NULL;
  for (size_t i = len; i > 0; i--)
    if (old[i - 1] == ' ') {
      sp = old + i - 1;
      break;
    }
  if (!sp || sp == old || (size_t)(sp - old) + 1 == len || memchr(old, '\0', len))
    return legacy_fallback(out, old, len);
  k.field = (struct lp_str){sp + 1, len - (size_t)(sp - old) - 1};
  const char *p = old, *end = sp;
  const char *comma = memchr(p, ',', (size_t)(end - p));
  k.measurement = (struct lp_str){p, (size_t)((comma ? comma : end) - p)};
  /* the part a piece without '=' is glued to: the measurement, then each
   * tag value in turn */
  struct lp_str *last = &k.measurement;
  for (p = comma; p && p < end;) {
    const char *seg = p + 1;
    const char *next = memchr(seg, ',', (size_t)(end - seg));
    const char *segend = next ? next : end;
    const char *eq = memchr(seg, '=', (size_t)(segend - seg));
    if (eq && eq > seg && eq + 1 < segend) {
      if (k.ntags == SERIES_KEY_MAX_TAGS)
        return legacy_fallback(out, old, len);
      k.tag_keys[k.ntags] = (struct lp_str){seg, (size_t)(eq - seg)};
      k.tag_values[k.ntags] = (struct lp_str){eq + 1, (size_t)(segend - eq - 1)};
      last = &k.tag_values[k.ntags++];
    } else {
      last->n = (size_t)(segend - last->p); /* the comma and this piece belong to it */
    }
    p = next;
  }
  if (k.measurement.n == 0)
    return legacy_fallback(out, old, len);
  /* format 0 sorted its tags: tags read out of order were not tags (and
   * reordering them could give two old keys one new one) */
  for (int i = 1; i < k.ntags; i++)
    if (cmp_str(&k.tag_keys[i - 1], &k.tag_keys[i]) >= 0)
      return legacy_fallback(out, old, len);
  int rc = series_key_encode(out, &k);
  if (rc == GROVE_EINVAL)
    rc = legacy_fallback(out, old, len);
  return rc;
}
