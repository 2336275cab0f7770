/* test_roles.c — parsing --role and the combinations refused at start. */
#include "../test.h"
#include "app/roles.h"
#include "core/error.h"

TEST(roles_parse_names_lists_and_all) {
  unsigned r;
  char err[256];
  CHECK(role_parse("all", &r, err, sizeof err) == 0 && r == ROLE_ALL);
  CHECK(role_parse("api", &r, err, sizeof err) == 0 && r == ROLE_API);
  CHECK(role_parse("api, worker", &r, err, sizeof err) == 0 && r == (ROLE_API | ROLE_WORKER));
  CHECK(role_parse("stream,api,stream", &r, err, sizeof err) == 0 && r == (ROLE_API | ROLE_STREAM));
  CHECK(role_parse("api,all", &r, err, sizeof err) == 0 && r == ROLE_ALL);
  CHECK_EQ_INT(role_parse("", &r, err, sizeof err), GROVE_EINVAL);
  CHECK_EQ_INT(role_parse("api,", &r, err, sizeof err), GROVE_EINVAL);
  CHECK_EQ_INT(role_parse("API", &r, err, sizeof err), GROVE_EINVAL);
  CHECK_EQ_INT(role_parse("workers", &r, err, sizeof err), GROVE_EINVAL);
  CHECK(strstr(err, "unknown role 'workers'"));
  char s[32];
  role_format(ROLE_ALL, s, sizeof s);
  CHECK_EQ_STR(s, "all");
  role_format(ROLE_API | ROLE_STREAM, s, sizeof s);
  CHECK_EQ_STR(s, "api,stream");
}

TEST(roles_refuse_what_cannot_work) {
  char err[256];
  /* the embedded store: api and worker together */
  CHECK(role_check(ROLE_ALL, false, false, err, sizeof err) == 0);
  CHECK(role_check(ROLE_API | ROLE_WORKER, false, false, err, sizeof err) == 0);
  CHECK_EQ_INT(role_check(ROLE_API | ROLE_STREAM, false, true, err, sizeof err), GROVE_ECONFIG);
  CHECK_EQ_INT(role_check(ROLE_WORKER, false, true, err, sizeof err), GROVE_ECONFIG);
  /* stream goes with api, wherever */
  CHECK_EQ_INT(role_check(ROLE_STREAM, true, true, err, sizeof err), GROVE_ECONFIG);
  CHECK_EQ_INT(role_check(ROLE_STREAM | ROLE_WORKER, true, true, err, sizeof err), GROVE_ECONFIG);
  CHECK(strstr(err, "stream without api"));
  /* PostgreSQL: split sets need the broker */
  CHECK(role_check(ROLE_ALL, true, false, err, sizeof err) == 0);
  CHECK_EQ_INT(role_check(ROLE_API, true, false, err, sizeof err), GROVE_ECONFIG);
  CHECK(strstr(err, "--broker"));
  CHECK(role_check(ROLE_API, true, true, err, sizeof err) == 0);
  CHECK(role_check(ROLE_WORKER, true, true, err, sizeof err) == 0);
  CHECK(role_check(ROLE_API | ROLE_STREAM, true, true, err, sizeof err) == 0);
}

static const struct test tests[] = {
    T(roles_parse_names_lists_and_all),
    T(roles_refuse_what_cannot_work),
};
TEST_MAIN(tests)
