/* fuzz_lineproto.c — libFuzzer driver for the InfluxDB line protocol
 * parser: whole bodies, every precision, reading every value parsed. */
#include <stdint.h>
#include <string.h>

#include "series/lineproto.h"

static int on_point(const struct lp_point *p, void *arg) {
  volatile size_t sum = 0;
  (void)arg;
  sum += p->measurement.n;
  for (int i = 0; i < p->ntags; i++)
    sum += p->tag_keys[i].p[p->tag_keys[i].n - 1] + p->tag_values[i].n;
  for (int i = 0; i < p->nfields; i++) {
    sum += p->fields[i].key.n;
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
  enum lp_precision prec = (enum lp_precision)(data[0] % 4);
  struct lp_stats st;
  lp_parse((const char *)data + 1, size - 1, prec, 1, on_point, on_error, NULL, &st);
  return 0;
}
