/* fuzz_time.c — RFC 3339 times (JSON readings, range queries): any bytes
 * give a time in [TIME_MIN_NS, TIME_MAX_NS] or a refusal (not a time, or
 * one out of range), never a read past the string or an overflow (UBSan is
 * fatal in the fuzz build); a time given back formatted parses to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  int64_t ns;
  int rc = time_parse_rfc3339(s, &ns);
  if (rc != 0 && rc != GROVE_EINVAL && rc != GROVE_ERANGE)
    abort();
  if (rc == 0 && !time_valid(ns)) /* a time is in InfluxDB's range, or refused */
    abort();
  if (rc == 0) {
    /* seconds and fraction without multiplying back (t * 1e9 leaves int64
     * at the start of the range) */
    time_t t = (time_t)time_floor_div(ns, 1000000000);
    long frac = (long)(ns % 1000000000);
    if (frac < 0)
      frac += 1000000000;
    struct tm tm;
    if (gmtime_r(&t, &tm) && tm.tm_year >= -1900 + 1 && tm.tm_year < 8000) {
      char back[64];
      snprintf(back, sizeof back, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
      int64_t again;
      if (!rfc3339_parse(back, &again) || again != ns)
        abort();
    }
  }
  free(s);
  return 0;
}
