/* test_error.c — a matrix request job's error (struct mx_error, error.c):
 * setting it twice keeps the last and releases the first's details (a
 * leak before: ASan's leak check proves it), moving hands the details
 * over, releasing zeroes it. */
#include <string.h>

#include "../test.h"
#include "apps/matrix/matrix.h"

TEST(set_twice_keeps_the_last_and_releases_the_first_details) {
  struct mx_error e = {0};
  json_t *first = json_pack("{s:s}", "field", "a");
  json_incref(first); /* one reference kept here to watch it */
  CHECK_EQ_INT(mx_error_set(&e, 400, "VALIDATION_ERROR", first, "field '%s' is wrong", "a"), -1);
  CHECK_EQ_INT((int)first->refcount, 2);
  json_t *second = json_pack("{s:i}", "n", 3);
  CHECK_EQ_INT(mx_error_set(&e, 422, "NO_CONFIGURATION", second, "none of %d", 3), -1);
  CHECK_EQ_INT((int)first->refcount, 1); /* the error's reference went */
  json_decref(first);
  CHECK_EQ_INT(e.status, 422);
  CHECK_EQ_STR(e.code, "NO_CONFIGURATION");
  CHECK_EQ_STR(e.message, "none of 3");
  CHECK_EQ_INT((int)json_integer_value(json_object_get(e.details, "n")), 3);
  mx_error_release(&e);
  CHECK(e.details == NULL && e.status == 0 && e.code == NULL);
}

TEST(the_message_is_cut_not_overrun) {
  struct mx_error e = {0};
  char longer[1000];
  memset(longer, 'x', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  mx_error_set(&e, 400, "VALIDATION_ERROR", NULL, "%s", longer);
  CHECK_EQ_INT((int)strlen(e.message), (int)sizeof e.message - 1);
  mx_error_release(&e);
}

TEST(move_hands_the_details_over_and_releases_the_old_ones) {
  struct mx_error a = {0}, b = {0};
  mx_error_set(&a, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", "x"), "x");
  mx_error_set(&b, 503, "OUT_OF_MEMORY", json_pack("{s:s}", "field", "y"), "y");
  json_t *d = b.details;
  mx_error_move(&a, &b); /* a's details released: the leak check says so */
  CHECK(a.details == d && a.status == 503);
  CHECK_EQ_STR(a.message, "y");
  CHECK(b.details == NULL && b.status == 0);
  mx_error_move(&a, &a); /* onto itself: nothing changes */
  CHECK(a.details == d);
  mx_error_release(&a);
  mx_error_release(&b);
}

static const struct test tests[] = {
    T(set_twice_keeps_the_last_and_releases_the_first_details),
    T(the_message_is_cut_not_overrun),
    T(move_hands_the_details_over_and_releases_the_old_ones),
};
TEST_MAIN(tests)
