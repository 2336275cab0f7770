/* fuzz_lineproto.c — libFuzzer driver for the InfluxDB line protocol
 * parser: whole bodies, every precision, reading every value parsed; every
 * point's series keys (series/key.h) must be valid UTF-8 and decode back
 * to the parts they were made of. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "series/key.h"
#include "series/lineproto.h"

static bool same(struct lp_str a, struct lp_str b) {
  return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static void check_key(const struct lp_point *p, const struct lp_str *field) {
  static char scratch[SERIES_KEY_MAX + LP_MAX_LINE];
  struct series_key k = {.measurement = p->measurement, .field = *field, .ntags = p->ntags};
  memcpy(k.tag_keys, p->tag_keys, (size_t)p->ntags * sizeof *k.tag_keys);
  memcpy(k.tag_values, p->tag_values, (size_t)p->ntags * sizeof *k.tag_values);
  struct buf b;
  buf_init(&b, 0);
  if (series_key_encode(&b, &k) == 0) {
    struct series_key d;
    if (!lp_utf8_valid(b.data, b.len) || b.len > sizeof scratch ||
        series_key_decode(b.data, b.len, scratch, &d) || !same(d.measurement, k.measurement) ||
        !same(d.field, k.field) || d.ntags != k.ntags)
      abort();
  }
  buf_release(&b);
}

static int on_point(const struct lp_point *p, void *arg) {
  volatile size_t sum = 0;
  (void)arg;
  sum += p->measurement.n;
  for (int i = 0; i < p->ntags; i++)
    sum += p->tag_keys[i].p[p->tag_keys[i].n - 1] + p->tag_values[i].n;
  for (int i = 0; i < p->nfields; i++) {
    sum += p->fields[i].key.n;
    check_key(p, &p->fields[i].key);
    if (p->fields[i].type == LP_STRING && p->fields[i].v.s.n)
      sum += (size_t)p->fields[i].v.s.p[p->fields[i].v.s.n - 1];
  }
  (void)sum;
  return 0;
}

static void on_error(int line, const char *text, size_t len, const char *why, void *arg) {
  volatile size_t sum = (size_t)line + len + strlen(why);
  (void)arg;
  if (len)
    sum += (size_t)text[len - 1];
  (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  enum lp_precision prec = (enum lp_precision)(data[0] % (LP_H + 1));
  struct lp_stats st;
  lp_parse((const char *)data + 1, size - 1, prec, 1, on_point, on_error, NULL, &st);
  return 0;
}
