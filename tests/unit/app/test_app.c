/* test_app.c — the app contract's checks (app_check): what an app's table
 * may not do, refused with the app and the item named; and every app of
 * grove_apps[] passes them. */
#include "../test.h"
#include "app/app.h"
#include "core/error.h"
#include "gate/gate.h"

static int start(struct grove_ctx *ctx, void **state) {
  (void)ctx;
  *state = NULL;
  return 0;
}

TEST(every_app_of_the_table_keeps_the_contract) {
  char err[256] = "";
  for (size_t i = 0; i < grove_napps; i++) {
    int rc = app_check(grove_apps[i], err, sizeof err);
    if (rc)
      fprintf(stderr, "%s\n", err);
    CHECK_EQ_INT(rc, 0);
  }
}

TEST(tables_carry_the_apps_prefix) {
  static const struct store_migration ok[] = {
      {1, "a", "CREATE TABLE demo_things (id TEXT); create table if not exists demo_more (x INT)", NULL},
      {2, "b", "CREATE INDEX demo_by ON demo_things (id)", "CREATE TABLE demo_pg (id TEXT)"},
  };
  static const struct store_migration bad[] = {
      {1, "a", "CREATE TABLE demo_things (id TEXT)", NULL},
      {2, "b", "CREATE TABLE  IF NOT EXISTS users2 (id TEXT)", NULL},
  };
  static const struct store_migration bad_pg[] = {
      {1, "a", "CREATE TABLE demo_x (id TEXT)", "CREATE TABLE demox (id TEXT)"},
  };
  struct grove_app a = {.name = "demo", .start = start, .migrations = ok, .nmigrations = 2};
  char err[256] = "";
  CHECK_EQ_INT(app_check(&a, err, sizeof err), 0);
  a.migrations = bad;
  CHECK_EQ_INT(app_check(&a, err, sizeof err), GROVE_EINVAL);
  CHECK_EQ_STR(err, "table 'users2' of app 'demo' (migration 2) lacks its prefix 'demo_'");
  a.migrations = bad_pg;
  a.nmigrations = 1;
  CHECK_EQ_INT(app_check(&a, err, sizeof err), GROVE_EINVAL);
  CHECK(strstr(err, "'demox'"));
}

TEST(topics_live_under_the_apps_name) {
  static const struct hub_topic_rule mine[] = {
      {.prefix = "demo/things/", .read = HUB_ANYONE, .publish = HUB_NOBODY},
  };
  static const struct hub_topic_rule theirs[] = {
      {.prefix = "demo/ok/", .read = HUB_ANYONE, .publish = HUB_NOBODY},
      {.prefix = "demos/x/", .read = HUB_ANYONE, .publish = HUB_NOBODY},
  };
  struct grove_app a = {.name = "demo", .start = start, .topics = mine, .ntopics = 1};
  char err[256] = "";
  CHECK_EQ_INT(app_check(&a, err, sizeof err), 0);
  a.topics = theirs;
  a.ntopics = 2;
  CHECK_EQ_INT(app_check(&a, err, sizeof err), GROVE_EINVAL);
  CHECK(strstr(err, "'demos/x/'") && strstr(err, "'demo'"));
  struct grove_app nameless = {.start = start};
  CHECK_EQ_INT(app_check(&nameless, err, sizeof err), GROVE_EINVAL);
}

static const struct test tests[] = {
    T(every_app_of_the_table_keeps_the_contract),
    T(tables_carry_the_apps_prefix),
    T(topics_live_under_the_apps_name),
};
TEST_MAIN(tests)
