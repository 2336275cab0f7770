/* store_fixture.h — a fresh platform store for a unit test: PostgreSQL
 * when GROVE_TEST_STORE names one (tests/e2e/with_service.py postgres), else
 * SQLite in a new folder made from `pattern` ("/tmp/grove-x-XXXXXX",
 * written into dir, n bytes). pool: connections. Fails the test when the
 * store cannot open; the caller drops its own tables for a clean slate. */
#ifndef GROVE_TEST_STORE_FIXTURE_H
#define GROVE_TEST_STORE_FIXTURE_H

#include <stdlib.h>

#include "store/store.h"
#include "test.h"

static inline struct store *fixture_store_open(char *dir, size_t n, const char *pattern, int pool) {
  const char *url = getenv("GROVE_TEST_STORE");
  snprintf(dir, n, "%s", pattern);
  CHECK(mkdtemp(dir));
  struct store_cfg cfg = {.url = (char *)(url ? url : "sqlite"), .data_dir = dir, .pool = pool,
                          .busy_timeout_ms = 5000};
  struct store *s;
  char err[256];
  int rc = store_open(&s, &cfg, err, sizeof err);
  if (rc)
    fprintf(stderr, "store_open: %s\n", err);
  CHECK(rc == 0);
  return s;
}

#endif
