/* test_store.c — the store interface, run against the driver named by
 * GROVE_TEST_STORE (a postgres:// URL from the test run), or a fresh
 * SQLite file when unset. Each test gets its own tables. */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../test.h"
#include "../store_fixture.h"
#include "core/error.h"
#include "core/util.h"
#include "store/store.h"

static char dir[64];

static struct store *open_store(void) {
  struct store *s = fixture_store_open(dir, sizeof dir, "/tmp/grove-store-XXXXXX", 4);
  char err[256];
  /* a clean slate for every test on a shared server */
  store_query(s, "DROP TABLE IF EXISTS t_items", NULL, 0, NULL, err, sizeof err);
  store_query(s, "DROP TABLE IF EXISTS t_other", NULL, 0, NULL, err, sizeof err);
  store_query(s, "DROP TABLE IF EXISTS grove_migrations", NULL, 0, NULL, err, sizeof err);
  return s;
}

TEST(exec_params_and_rows) {
  struct store *s = open_store();
  char err[256];
  CHECK(store_query(s, "CREATE TABLE t_items (id INTEGER PRIMARY KEY, name TEXT, note TEXT)", NULL,
                    0, NULL, err, sizeof err) == 0);
  const char *p1[] = {"1", "alpha", NULL};
  const char *p2[] = {"2", "b'eta; DROP TABLE t_items", "x"};
  struct store_rows *rows;
  CHECK(store_query(s, "INSERT INTO t_items (id, name, note) VALUES ($1, $2, $3)", p1, 3, &rows,
                    err, sizeof err) == 0);
  CHECK_EQ_INT(rows->changes, 1);
  store_rows_free(rows);
  CHECK(store_query(s, "INSERT INTO t_items (id, name, note) VALUES ($1, $2, $3)", p2, 3, NULL,
                    err, sizeof err) == 0);
  const char *q[] = {"0"};
  CHECK(store_query(s, "SELECT id, name, note FROM t_items WHERE id > $1 ORDER BY id", q, 1,
                    &rows, err, sizeof err) == 0);
  CHECK_EQ_INT(rows->nrows, 2);
  CHECK_EQ_STR(store_rows_get(rows, 0, "name"), "alpha");
  CHECK(store_rows_get(rows, 0, "note") == NULL); /* SQL NULL */
  CHECK_EQ_STR(store_rows_get(rows, 1, "name"), "b'eta; DROP TABLE t_items");
  CHECK(store_rows_get(rows, 2, "name") == NULL);
  store_rows_free(rows);
  /* parameters out of order */
  const char *q2[] = {"alpha", "1"};
  CHECK(store_query(s, "SELECT name FROM t_items WHERE id = $2 AND name = $1", q2, 2, &rows, err,
                    sizeof err) == 0);
  CHECK_EQ_INT(rows->nrows, 1);
  store_rows_free(rows);
  store_close(s);
}

/* A parameter used again in every row of a multi-row statement, others
 * out of order, and '$N' and '?' inside literals (text, not
 * placeholders). */
TEST(parameters_reused_across_rows) {
  struct store *s = open_store();
  char err[256];
  CHECK(store_query(s, "CREATE TABLE t_items (id INTEGER PRIMARY KEY, name TEXT, note TEXT)", NULL,
                    0, NULL, err, sizeof err) == 0);
  enum { ROWS = 300 };
  char sql[ROWS * 40 + 128];
  const char *params[1 + ROWS];
  char ids[ROWS][12];
  size_t len = (size_t)snprintf(sql, sizeof sql, "INSERT INTO t_items (id, name, note) VALUES ");
  params[0] = "shared";
  for (int i = 0; i < ROWS; i++) {
    snprintf(ids[i], sizeof ids[i], "%d", i + 1);
    params[1 + i] = ids[i];
    len += (size_t)snprintf(sql + len, sizeof sql - len, "%s($%d, $1, '$%d ?')", i ? ", " : "",
                            i + 2, i + 2);
  }
  CHECK(store_query(s, sql, params, 1 + ROWS, NULL, err, sizeof err) == 0);
  struct store_rows *rows;
  const char *q[] = {"shared", "$300 ?"};
  CHECK(store_query(s, "SELECT COUNT(*) AS n, MAX(id) AS top FROM t_items WHERE name = $1", q, 1,
                    &rows, err, sizeof err) == 0);
  CHECK_EQ_STR(store_rows_get(rows, 0, "n"), "300");
  CHECK_EQ_STR(store_rows_get(rows, 0, "top"), "300");
  store_rows_free(rows);
  CHECK(store_query(s, "SELECT id FROM t_items WHERE note = $2 AND name = $1", q, 2, &rows, err,
                    sizeof err) == 0);
  CHECK_EQ_INT(rows->nrows, 1);
  CHECK_EQ_STR(store_rows_get(rows, 0, "id"), "299");
  store_rows_free(rows);
  store_close(s);
}

TEST(errors_are_reported) {
  struct store *s = open_store();
  char err[256] = "";
  CHECK(store_query(s, "SELEC nonsense", NULL, 0, NULL, err, sizeof err) != 0);
  CHECK(err[0]);
  store_query(s, "CREATE TABLE t_items (id INTEGER PRIMARY KEY)", NULL, 0, NULL, err, sizeof err);
  const char *p[] = {"1"};
  CHECK(store_query(s, "INSERT INTO t_items (id) VALUES ($1)", p, 1, NULL, err, sizeof err) == 0);
  CHECK_EQ_INT(store_query(s, "INSERT INTO t_items (id) VALUES ($1)", p, 1, NULL, err, sizeof err),
               GROVE_EEXIST);
  /* the pool still works after errors */
  CHECK(store_ping(s, err, sizeof err) == 0);
  store_close(s);
}

static const struct store_migration good[] = {
    {1, "items", "CREATE TABLE t_items (id INTEGER PRIMARY KEY, name TEXT)", NULL},
    {2, "other", "CREATE TABLE t_other (id INTEGER); INSERT INTO t_other VALUES (7)", NULL},
};

TEST(migrations_apply_once_in_order) {
  struct store *s = open_store();
  char err[256];
  int applied;
  CHECK(store_migrate(s, "test", good, 1, &applied, err, sizeof err) == 0);
  CHECK_EQ_INT(applied, 1);
  CHECK(store_migrate(s, "test", good, 2, &applied, err, sizeof err) == 0);
  CHECK_EQ_INT(applied, 1);
  CHECK(store_migrate(s, "test", good, 2, &applied, err, sizeof err) == 0);
  CHECK_EQ_INT(applied, 0);
  struct store_rows *rows;
  CHECK(store_query(s, "SELECT version, name FROM grove_migrations WHERE module = 'test' "
                       "ORDER BY version", NULL, 0, &rows, err, sizeof err) == 0);
  CHECK_EQ_INT(rows->nrows, 2);
  CHECK_EQ_STR(store_rows_get(rows, 1, "name"), "other");
  store_rows_free(rows);
  store_close(s);
}

TEST(failed_migration_rolls_back_entirely) {
  struct store *s = open_store();
  char err[256];
  static const struct store_migration bad[] = {
      {1, "items", "CREATE TABLE t_items (id INTEGER PRIMARY KEY, name TEXT)", NULL},
      {2, "half", "CREATE TABLE t_other (id INTEGER); INSERT INTO nowhere VALUES (1)", NULL},
  };
  int applied;
  CHECK(store_migrate(s, "test", bad, 2, &applied, err, sizeof err) != 0);
  CHECK_EQ_INT(applied, 1);
  CHECK(strstr(err, "migration test/2 'half' failed"));
  /* t_other was rolled back with the failed step; version 2 not recorded */
  CHECK(store_query(s, "SELECT * FROM t_other", NULL, 0, NULL, err, sizeof err) != 0);
  struct store_rows *rows;
  CHECK(store_query(s, "SELECT MAX(version) AS v FROM grove_migrations WHERE module = 'test'",
                    NULL, 0, &rows, err, sizeof err) == 0);
  CHECK_EQ_STR(store_rows_get(rows, 0, "v"), "1");
  store_rows_free(rows);
  /* fixed, it applies */
  CHECK(store_migrate(s, "test", good, 2, &applied, err, sizeof err) == 0);
  CHECK_EQ_INT(applied, 1);
  store_close(s);
}

struct worker {
  struct store *s;
  int base;
  int failures;
};

static void *insert_many(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 50; i++) {
    char id[16], err[256];
    snprintf(id, sizeof id, "%d", w->base + i);
    const char *p[] = {id};
    struct store_conn *c;
    if (store_acquire(w->s, &c)) {
      w->failures++;
      continue;
    }
    int rc = store_begin(c);
    if (!rc)
      rc = store_exec(c, "INSERT INTO t_items (id, name) VALUES ($1, 'x')", p, 1, NULL, err,
                      sizeof err);
    if (!rc)
      rc = store_commit(c);
    if (rc) {
      store_rollback(c);
      w->failures++;
    }
    store_release(w->s, c);
  }
  return NULL;
}

TEST(pool_serves_concurrent_writers) {
  struct store *s = open_store();
  char err[256];
  CHECK(store_query(s, "CREATE TABLE t_items (id INTEGER PRIMARY KEY, name TEXT)", NULL, 0, NULL,
                    err, sizeof err) == 0);
  pthread_t th[8];
  struct worker w[8];
  for (int i = 0; i < 8; i++) {
    w[i] = (struct worker){s, i * 1000, 0};
    pthread_create(&th[i], NULL, insert_many, &w[i]);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    CHECK_EQ_INT(w[i].failures, 0);
  }
  struct store_rows *rows;
  CHECK(store_query(s, "SELECT COUNT(*) AS n FROM t_items", NULL, 0, &rows, err, sizeof err) == 0);
  CHECK_EQ_STR(store_rows_get(rows, 0, "n"), "400");
  store_rows_free(rows);
  store_close(s);
}

TEST(transactions_roll_back) {
  struct store *s = open_store();
  char err[256];
  store_query(s, "CREATE TABLE t_items (id INTEGER PRIMARY KEY, name TEXT)", NULL, 0, NULL, err,
              sizeof err);
  struct store_conn *c;
  CHECK(store_acquire(s, &c) == 0);
  CHECK(store_begin(c) == 0);
  CHECK(store_exec(c, "INSERT INTO t_items (id, name) VALUES (1, 'gone')", NULL, 0, NULL, err,
                   sizeof err) == 0);
  CHECK(store_rollback(c) == 0);
  store_release(s, c);
  struct store_rows *rows;
  CHECK(store_query(s, "SELECT COUNT(*) AS n FROM t_items", NULL, 0, &rows, err, sizeof err) == 0);
  CHECK_EQ_STR(store_rows_get(rows, 0, "n"), "0");
  store_rows_free(rows);
  store_close(s);
}

TEST(bad_urls_fail_with_a_message) {
  struct store_cfg cfg = {.url = "mysql://x", .data_dir = "/tmp", .pool = 1};
  struct store *s;
  char err[256];
  CHECK_EQ_INT(store_open(&s, &cfg, err, sizeof err), GROVE_ECONFIG);
  CHECK(strstr(err, "unknown store 'mysql://x'"));
  cfg.url = "sqlite:/nonexistent-dir/x/y.db";
  CHECK(store_open(&s, &cfg, err, sizeof err) != 0);
  CHECK(strstr(err, "cannot open database"));
  cfg.url = "postgres://nobody:secret@127.0.0.1:1/none";
  CHECK_EQ_INT(store_open(&s, &cfg, err, sizeof err), GROVE_EUNAVAIL);
  CHECK(!strstr(err, "secret")); /* credentials are not echoed */
}

/* One process of processes_migrate_one_database_at_once: waits on the
 * pipe until the parent lets every process go, then opens the store,
 * migrates and writes. Exits 0, or 1 with the error on stderr. */
static void migrate_child(int gate, const char *url, const char *data_dir) {
  static const struct store_migration steps[] = {
      {1, "items", "CREATE TABLE t_items (id INTEGER PRIMARY KEY, name TEXT)", NULL},
      {2, "other", "CREATE TABLE t_other (id INTEGER)", NULL},
      {3, "seed", "INSERT INTO t_other VALUES (1)", NULL},
  };
  char b, err[512] = "";
  if (read(gate, &b, 1) < 0)
    _exit(2);
  struct store_cfg cfg = {.url = (char *)url, .data_dir = (char *)data_dir, .pool = 2,
                          .busy_timeout_ms = 20000};
  struct store *s;
  int rc = store_open(&s, &cfg, err, sizeof err);
  if (!rc) {
    rc = store_migrate(s, "race", steps, ARRAY_LEN(steps), NULL, err, sizeof err);
    char id[16];
    snprintf(id, sizeof id, "%d", (int)getpid());
    const char *p[] = {id};
    if (!rc) /* a first write, right after the others' migrations */
      rc = store_query(s, "INSERT INTO t_items (id, name) VALUES ($1, 'first')", p, 1, NULL, err,
                       sizeof err);
    store_close(s);
  }
  if (rc)
    fprintf(stderr, "child %d: %s\n", (int)getpid(), err);
  _exit(rc ? 1 : 0);
}

/* Issue 9.14 and 10.4: processes started together on a fresh database
 * (serve and `grove key add`, or several instances on PostgreSQL) all
 * migrate it; each step runs once, and none fails with "database is
 * locked" or a duplicate pg_type row. The processes are held at a pipe
 * and let go together; every round must pass, whatever the order. */
TEST(processes_migrate_one_database_at_once) {
  const char *url = getenv("GROVE_TEST_STORE");
  enum { ROUNDS = 8, PROCS = 6 };
  char base[64];
  snprintf(base, sizeof base, "/tmp/grove-race-XXXXXX");
  CHECK(mkdtemp(base));
  for (int round = 0; round < ROUNDS; round++) {
    char data_dir[128], err[256];
    snprintf(data_dir, sizeof data_dir, "%s/r%d", base, round); /* not made yet */
    if (url) { /* one server for all rounds: start each from no tables */
      struct store *s = open_store();
      store_close(s);
    }
    int gate[2];
    CHECK(pipe(gate) == 0);
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
      pids[i] = fork();
      CHECK(pids[i] >= 0);
      if (pids[i] == 0) {
        close(gate[1]);
        migrate_child(gate[0], url ? url : "sqlite", data_dir);
      }
    }
    close(gate[0]);
    close(gate[1]); /* every child's read returns now */
    for (int i = 0; i < PROCS; i++) {
      int status;
      CHECK(waitpid(pids[i], &status, 0) == pids[i]);
      CHECK(WIFEXITED(status));
      CHECK_EQ_INT(WEXITSTATUS(status), 0);
    }
    struct store_cfg cfg = {.url = (char *)(url ? url : "sqlite"), .data_dir = data_dir,
                            .pool = 1, .busy_timeout_ms = 5000};
    struct store *s;
    struct store_rows *rows;
    CHECK(store_open(&s, &cfg, err, sizeof err) == 0);
    CHECK(store_query(s, "SELECT COUNT(*) AS n FROM grove_migrations WHERE module = 'race'", NULL,
                      0, &rows, err, sizeof err) == 0);
    CHECK_EQ_STR(store_rows_get(rows, 0, "n"), "3");
    store_rows_free(rows);
    CHECK(store_query(s, "SELECT COUNT(*) AS n FROM t_other", NULL, 0, &rows, err, sizeof err) ==
          0);
    CHECK_EQ_STR(store_rows_get(rows, 0, "n"), "1"); /* the seed step ran once */
    store_rows_free(rows);
    CHECK(store_query(s, "SELECT COUNT(*) AS n FROM t_items", NULL, 0, &rows, err, sizeof err) ==
          0);
    CHECK_EQ_INT(atoi(store_rows_get(rows, 0, "n")), PROCS);
    store_rows_free(rows);
    store_close(s);
  }
}

static const struct test tests[] = {
    T(parameters_reused_across_rows),
    T(exec_params_and_rows),          T(errors_are_reported),
    T(migrations_apply_once_in_order), T(failed_migration_rolls_back_entirely),
    T(pool_serves_concurrent_writers), T(transactions_roll_back),
    T(bad_urls_fail_with_a_message),   T(processes_migrate_one_database_at_once),
};
TEST_MAIN(tests)
