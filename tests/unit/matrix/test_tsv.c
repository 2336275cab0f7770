/* test_tsv.c — the catalogue files' cells: numbers are plain decimals in
 * 0..MX_TSV_MAX, so nothing computed from a row overflows. */
#include <math.h>
#include <stddef.h>

#include "../test.h"
#include "apps/matrix/tsv.h"
#include "core/error.h"

struct row {
  char name[16];
  double x;
  int n;
};

static const struct mx_col cols[] = {S(row, name, 1), N(row, x, 0), I(row, n, 0)};

static int parse(const char *text, struct row **rows, size_t *nrows, char *err, size_t errlen) {
  return mx_tsv_parse("t.tsv", text, cols, sizeof cols / sizeof cols[0], sizeof(struct row),
                      (void **)rows, nrows, err, errlen);
}

TEST(plain_decimals_in_range_are_read) {
  struct row *rows = NULL;
  size_t n = 0;
  char err[256] = "";
  CHECK(parse("name\tx\tn\na\t1.5e3\t7\nb\t\t\nc\t.5\t100000000\n", &rows, &n, err, sizeof err) ==
        0);
  CHECK(n == 3);
  CHECK(rows[0].x == 1500 && rows[0].n == 7);
  CHECK(isnan(rows[1].x) && rows[1].n == 0);
  CHECK(rows[2].x == 0.5 && rows[2].n == 100000000);
  free(rows);
}

TEST(huge_signed_spaced_hex_or_infinite_numbers_are_refused) {
  const char *bad[] = {"1e308", "100000001", "-1", "+5", " 80", "0x50", "inf", "nan",
                       "1e999", "80abc", "1e"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[128], err[256] = "";
    struct row *rows = NULL;
    size_t n = 0;
    snprintf(text, sizeof text, "name\tx\tn\na\t%s\t\n", bad[i]);
    CHECK(parse(text, &rows, &n, err, sizeof err) == GROVE_EINVAL);
    CHECK(strstr(err, "bad number"));
    CHECK(rows == NULL);
    snprintf(text, sizeof text, "name\tx\tn\na\t\t%s\n", bad[i]);
    CHECK(parse(text, &rows, &n, err, sizeof err) == GROVE_EINVAL);
    CHECK(strstr(err, "bad integer"));
  }
}

static const struct test tests[] = {
  T(plain_decimals_in_range_are_read),
  T(huge_signed_spaced_hex_or_infinite_numbers_are_refused),
};
TEST_MAIN(tests)
