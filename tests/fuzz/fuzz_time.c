/* fuzz_time.c — RFC 3339 times (JSON readings, range queries): any bytes
 * give a time or a refusal, never a read past the string; a time given
 * back formatted parses to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  int64_t ns;
  if (rfc3339_parse(s, &ns)) {
    time_t t = (time_t)(ns / 1000000000 - (ns % 1000000000 < 0));
    struct tm tm;
    if (gmtime_r(&t, &tm) && tm.tm_year >= -1900 + 1 && tm.tm_year < 8000) {
      char back[64];
      long frac = (long)(ns - (int64_t)t * 1000000000);
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
