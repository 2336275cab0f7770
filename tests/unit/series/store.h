/* store.h — what the series test files share: a fresh store directory and
 * a store opened on it (a failed open prints why and fails the test). */
#ifndef GROVE_TEST_SERIES_STORE_H
#define GROVE_TEST_SERIES_STORE_H

#include <stdio.h>
#include <stdlib.h>

#include "../test.h"
#include "series/series.h"

/* A new empty directory under /tmp; the string is static (one at a time). */
static char *store_dir(void) {
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/grove-series-XXXXXX");
  CHECK(mkdtemp(dir));
  return dir;
}

static struct series *open_store(const char *dir) {
  struct series *s;
  char err[256];
  int rc = series_open(&s, dir, err, sizeof err);
  if (rc)
    fprintf(stderr, "series_open: %s\n", err);
  CHECK(rc == 0);
  return s;
}

#endif
