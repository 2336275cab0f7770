/* fuzz_wal.c — libFuzzer driver for the series log replay: whatever bytes
 * a damaged disk leaves in series.wal, opening the store either replays
 * them or cuts them, and never reads out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "series/series.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char dir[64];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/grove-fuzz-wal-XXXXXX");
    if (!mkdtemp(dir))
      abort();
    log_setup(LOG_OFF, false, 2);
  }
  char wal[128], db[128];
  snprintf(wal, sizeof wal, "%s/series.wal", dir);
  snprintf(db, sizeof db, "%s/series.db", dir);
  FILE *f = fopen(wal, "wb");
  if (!f)
    abort();
  fwrite(data, 1, size, f);
  fclose(f);
  struct series *s;
  char err[256];
  if (series_open(&s, dir, err, sizeof err) == 0) {
    struct series_sample *pts;
    size_t n;
    if (series_range(s, 0, INT64_MIN, INT64_MAX, &pts, &n) == 0)
      free(pts);
    series_close(s);
  }
  unlink(wal);
  return 0;
}
