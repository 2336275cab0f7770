/* test_state.c — matrix's current state written behind (state.h): rows
 * merged in memory as the tables' upserts would apply them one after
 * another (the newest timestamp wins; hosts and GPUs keep what the newer
 * leaves out; processes are replaced whole), a flush the store refuses
 * keeps its rows, pending processes count as live. Run on SQLite, and on
 * PostgreSQL when GROVE_TEST_STORE names one (store_fixture.h). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "../store_fixture.h"
#include "../test.h"
#include "apps/matrix/metrics.h"
#include "apps/matrix/state.h"
#include "core/error.h"
#include "core/map.h"

static char dir[64];

static struct store *open_store(void) {
  struct store *s = fixture_store_open(dir, sizeof dir, "/tmp/grove-mxstate-XXXXXX", 4);
  char err[256];
  static const char *const drop[] = {"matrix_hosts", "matrix_processes", "matrix_gpus",
                                     "matrix_push_keys"};
  for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
    char sql[80];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", drop[i]);
    store_query(s, sql, NULL, 0, NULL, err, sizeof err);
  }
  store_query(s, "DELETE FROM grove_migrations WHERE module = 'mxstate_test'", NULL, 0, NULL, err,
              sizeof err);
  const struct store_migration m[] = {{1, "matrix state", matrix_metrics_sql, NULL}};
  int rc = store_migrate(s, "mxstate_test", m, 1, NULL, err, sizeof err);
  if (rc) fprintf(stderr, "migrate: %s\n", err);
  CHECK(rc == 0);
  return s;
}

/* One host sample at ts (s) with a process (pid 1, "a") and a GPU 0. */
struct fixture {
  struct mx_sample s;
  struct mx_proc p[2];
  struct mx_gpu g[1];
};

static void sample(struct fixture *f, int64_t ts_s, const char *cpu_model) {
  memset(f, 0, sizeof *f);
  f->s.ts_ns = ts_s * 1000000000LL;
  f->s.host = "h1";
  f->s.cpu_model = cpu_model;
  f->p[0] = (struct mx_proc){.pid = 1, .ppid = -1, .name = "a"};
  f->p[1] = (struct mx_proc){.pid = 2, .ppid = -1, .name = "b"};
  f->g[0] = (struct mx_gpu){.index = 0};
  f->s.procs = f->p;
  f->s.nprocs = 1;
  f->s.gpus = f->g;
  f->s.ngpus = 1;
}

static void set_h(struct mx_sample *s, int i, double v) {
  s->h[i] = v;
  s->hhave |= 1u << i;
}
static void set_p(struct mx_proc *p, int i, double v) {
  p->v[i] = v;
  p->have |= 1u << i;
}
static void set_g(struct mx_gpu *g, int i, double v) {
  g->v[i] = v;
  g->have |= 1u << i;
}

static void put(struct mx_state *st, struct fixture *f) {
  char err[256];
  CHECK(mx_state_put(st, &f->s, NULL, 1000, err, sizeof err) == 0);
}

static void flush(struct mx_state *st) {
  char err[256];
  int rc = mx_state_flush(st, err, sizeof err);
  if (rc) fprintf(stderr, "flush: %s\n", err);
  CHECK(rc == 0);
}

/* The one value of a query, or NULL (SQL NULL or no row): static. */
static const char *one(struct store *s, const char *sql) {
  static char out[128];
  struct store_rows *r = NULL;
  char err[256];
  CHECK(store_query(s, sql, NULL, 0, &r, err, sizeof err) == 0);
  const char *v = r->nrows ? r->values[0] : NULL;
  if (v) snprintf(out, sizeof out, "%s", v);
  store_rows_free(r);
  return v ? out : NULL;
}

static double num(struct store *s, const char *sql) {
  const char *v = one(s, sql);
  CHECK(v != NULL);
  return strtod(v, NULL);
}

/* Pushes in order; `flush_between`: each reaches the table before the
 * next (the tables' upserts merge), else all merge in memory first. */
static void merges_like_the_upserts(bool flush_between) {
  struct store *s = open_store();
  struct mx_state *st;
  CHECK(mx_state_open(&st, s, 0, 0) == 0);
  struct fixture f;
  /* ts 2: everything given */
  sample(&f, 2, "X");
  set_h(&f.s, MX_H_CPU, 50);
  set_p(&f.p[0], MX_P_CPU, 10);
  set_p(&f.p[0], MX_P_MEM_MB, 100);
  f.g[0].name = "NVIDIA L4";
  set_g(&f.g[0], MX_G_UTIL, 5);
  put(st, &f);
  if (flush_between) flush(st);
  /* ts 1, arriving later: older, changes nothing */
  sample(&f, 1, "Y");
  set_h(&f.s, MX_H_CPU, 99);
  set_p(&f.p[0], MX_P_CPU, 99);
  set_g(&f.g[0], MX_G_UTIL, 99);
  put(st, &f);
  if (flush_between) flush(st);
  /* ts 3: leaves the model, the host's CPU, the process's CPU and the
   * GPU's name and utilisation out; a second process appears */
  sample(&f, 3, NULL);
  set_h(&f.s, MX_H_MEM, 70);
  set_p(&f.p[0], MX_P_MEM_MB, 200);
  set_g(&f.g[0], MX_G_TEMP, 40);
  f.s.nprocs = 2;
  set_p(&f.p[1], MX_P_CPU, 1);
  put(st, &f);
  flush(st);

  CHECK_EQ_STR(one(s, "SELECT cpu_model FROM matrix_hosts WHERE name = 'h1'"), "X");
  CHECK(num(s, "SELECT total_cpu_usage FROM matrix_hosts WHERE name = 'h1'") == 50);
  CHECK(num(s, "SELECT total_memory_usage FROM matrix_hosts WHERE name = 'h1'") == 70);
  CHECK(num(s, "SELECT ts FROM matrix_hosts WHERE name = 'h1'") == 3e9);
  /* the process is replaced whole: its CPU is gone with the newer sample */
  CHECK(one(s, "SELECT cpu_usage_percent FROM matrix_processes WHERE pid = 1") == NULL);
  CHECK(num(s, "SELECT memory_usage_mb FROM matrix_processes WHERE pid = 1") == 200);
  CHECK(num(s, "SELECT cpu_usage_percent FROM matrix_processes WHERE pid = 2") == 1);
  CHECK_EQ_STR(one(s, "SELECT name FROM matrix_gpus WHERE gpu = 0"), "NVIDIA L4");
  CHECK(num(s, "SELECT utilization_percent FROM matrix_gpus WHERE gpu = 0") == 5);
  CHECK(num(s, "SELECT temperature_celsius FROM matrix_gpus WHERE gpu = 0") == 40);
  CHECK(num(s, "SELECT count(*) FROM matrix_processes") == 2);
  mx_state_close(st);
  store_close(s);
}

TEST(pending_rows_merge_like_the_upserts) { merges_like_the_upserts(false); }
TEST(flushed_rows_merge_by_the_upserts) { merges_like_the_upserts(true); }

TEST(a_refused_flush_keeps_its_rows_under_newer_ones) {
  struct store *s = open_store();
  struct mx_state *st;
  CHECK(mx_state_open(&st, s, 0, 0) == 0);
  struct fixture f;
  sample(&f, 5, "first");
  set_h(&f.s, MX_H_CPU, 10);
  put(st, &f);
  char err[256];
  CHECK(store_query(s, "ALTER TABLE matrix_gpus RENAME TO matrix_gpus_away", NULL, 0, NULL, err,
                    sizeof err) == 0);
  CHECK(mx_state_flush(st, err, sizeof err) != 0);
  CHECK(err[0]);
  CHECK(one(s, "SELECT name FROM matrix_hosts") == NULL); /* rolled back */
  /* a newer push while the rows wait */
  sample(&f, 6, NULL);
  set_h(&f.s, MX_H_MEM, 20);
  put(st, &f);
  CHECK(store_query(s, "ALTER TABLE matrix_gpus_away RENAME TO matrix_gpus", NULL, 0, NULL, err,
                    sizeof err) == 0);
  flush(st);
  CHECK_EQ_STR(one(s, "SELECT cpu_model FROM matrix_hosts WHERE name = 'h1'"), "first");
  CHECK(num(s, "SELECT total_cpu_usage FROM matrix_hosts WHERE name = 'h1'") == 10);
  CHECK(num(s, "SELECT total_memory_usage FROM matrix_hosts WHERE name = 'h1'") == 20);
  CHECK(num(s, "SELECT ts FROM matrix_hosts WHERE name = 'h1'") == 6e9);
  mx_state_close(st);
  store_close(s);
}

TEST(pending_processes_count_as_live_until_flushed) {
  struct store *s = open_store();
  struct mx_state *st;
  CHECK(mx_state_open(&st, s, 0, 0) == 0);
  struct fixture f;
  sample(&f, 1, NULL);
  f.s.nprocs = 2;
  bool keep[2] = {true, false}; /* the cap refused b */
  char err[256];
  CHECK(mx_state_put(st, &f.s, keep, 1000, err, sizeof err) == 0);
  struct map live;
  map_init(&live);
  CHECK(mx_state_live(st, false, "h1", 1000, &live) == 0);
  CHECK(map_get(&live, "1\ta") != NULL);
  CHECK(map_get(&live, "2\tb") == NULL);
  CHECK_EQ_INT(live.len, 1);
  map_release(&live);
  map_init(&live);
  CHECK(mx_state_live(st, false, "h1", 1001, &live) == 0); /* seen before the cut */
  CHECK(mx_state_live(st, true, "h1", 0, &live) == 0);     /* a VM of that name: none */
  CHECK_EQ_INT(live.len, 0);
  flush(st);
  CHECK(mx_state_live(st, false, "h1", 0, &live) == 0); /* in the table now */
  CHECK_EQ_INT(live.len, 0);
  map_release(&live);
  CHECK(num(s, "SELECT count(*) FROM matrix_processes") == 1);
  mx_state_close(st);
  store_close(s);
}

struct flusher {
  struct mx_state *st;
  atomic_bool started;
  int rc;
};

static void *flush_thread(void *arg) {
  struct flusher *f = arg;
  char err[256];
  atomic_store(&f->started, true);
  f->rc = mx_state_flush(f->st, err, sizeof err);
  return NULL;
}

/* While a flush writes (here held at its BEGIN by another writer), the
 * rows it took are still live to the cap: in neither the waiting map nor
 * the store's committed rows, they are counted from the flush's own. */
TEST(rows_being_flushed_stay_live) {
  struct store *s = open_store();
  struct mx_state *st;
  CHECK(mx_state_open(&st, s, 0, 0) == 0);
  struct fixture f;
  sample(&f, 1, NULL);
  put(st, &f);
  struct store_conn *c;
  CHECK(store_acquire(s, &c) == 0);
  CHECK(store_begin(c) == 0); /* holds the write lock: the flush waits for it */
  char err[256];
  const char *p[] = {"0"};
  CHECK(store_exec(c, "UPDATE matrix_hosts SET seen = CAST($1 AS BIGINT)", p, 1, NULL, err,
                   sizeof err) == 0);
  struct flusher fl = {st, false, -1};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, flush_thread, &fl) == 0);
  while (!atomic_load(&fl.started))
    sched_yield();
  for (int i = 0; i < 3000; i++) { /* before, while and after it takes the rows */
    struct map live;
    map_init(&live);
    CHECK(mx_state_live(st, false, "h1", 0, &live) == 0);
    CHECK_EQ_INT(live.len, 1);
    map_release(&live);
  }
  CHECK(store_commit(c) == 0);
  store_release(s, c);
  pthread_join(t, NULL);
  CHECK(fl.rc == 0);
  CHECK(num(s, "SELECT count(*) FROM matrix_processes") == 1);
  mx_state_close(st);
  store_close(s);
}

TEST(many_hosts_flush_in_chunks_of_every_size) {
  struct store *s = open_store();
  struct mx_state *st;
  CHECK(mx_state_open(&st, s, 0, 0) == 0);
  /* 3 hosts × 137 processes: chunks of 100, 10 and 1 across hosts */
  struct mx_proc procs[137];
  char names[137][16];
  for (int i = 0; i < 137; i++) {
    snprintf(names[i], sizeof names[i], "p%d", i);
    procs[i] = (struct mx_proc){.pid = i, .ppid = 1, .name = names[i], .command = "/bin/x"};
    set_p(&procs[i], MX_P_CPU, i);
  }
  const char *hosts[] = {"h-a", "h-b", "h-c"};
  for (int h = 0; h < 3; h++) {
    struct mx_sample smp = {.ts_ns = 1, .host = hosts[h], .procs = procs, .nprocs = 137};
    char err[256];
    CHECK(mx_state_put(st, &smp, NULL, 5, err, sizeof err) == 0);
  }
  flush(st);
  CHECK(num(s, "SELECT count(*) FROM matrix_processes") == 411);
  CHECK(num(s, "SELECT count(*) FROM matrix_hosts") == 3);
  CHECK(num(s, "SELECT sum(cpu_usage_percent) FROM matrix_processes") == 3 * (136 * 137 / 2));
  CHECK_EQ_STR(one(s, "SELECT command FROM matrix_processes WHERE host = 'h-c' AND pid = 136"),
               "/bin/x");
  mx_state_close(st);
  store_close(s);
}

TEST(a_put_past_the_bound_is_refused_while_the_store_refuses) {
  struct store *s = open_store();
  struct mx_state *st;
  CHECK(mx_state_open(&st, s, 0, 6000) == 0); /* bytes: two or three hosts' rows */
  char err[256];
  CHECK(store_query(s, "ALTER TABLE matrix_gpus RENAME TO matrix_gpus_away", NULL, 0, NULL, err,
                    sizeof err) == 0);
  struct fixture f;
  int taken = 0, refused = 0;
  char names[20][8];
  for (int i = 0; i < 20; i++) {
    sample(&f, 1, "model");
    snprintf(names[i], sizeof names[i], "h%d", i);
    f.s.host = names[i];
    int rc = mx_state_put(st, &f.s, NULL, 1000, err, sizeof err);
    CHECK(rc == 0 || rc == GROVE_EBUSY);
    if (rc) {
      refused++;
      CHECK(strstr(err, "bound") != NULL);
    } else {
      taken++;
    }
  }
  CHECK(taken >= 1 && refused >= 1);
  CHECK(store_query(s, "ALTER TABLE matrix_gpus_away RENAME TO matrix_gpus", NULL, 0, NULL, err,
                    sizeof err) == 0);
  /* the store answers again: what was taken is written, and puts go on */
  sample(&f, 2, NULL);
  f.s.host = "late";
  CHECK(mx_state_put(st, &f.s, NULL, 1000, err, sizeof err) == 0);
  flush(st);
  CHECK(num(s, "SELECT count(*) FROM matrix_hosts") == taken + 1);
  mx_state_close(st);
  store_close(s);
}

TEST(close_flushes_what_waits) {
  struct store *s = open_store();
  struct mx_state *st;
  CHECK(mx_state_open(&st, s, 3600000, 0) == 0); /* the periodic flush never comes first */
  struct fixture f;
  sample(&f, 1, "Z");
  put(st, &f);
  mx_state_close(st);
  CHECK_EQ_STR(one(s, "SELECT cpu_model FROM matrix_hosts WHERE name = 'h1'"), "Z");
  store_close(s);
}

static const struct test tests[] = {
    T(pending_rows_merge_like_the_upserts),
    T(flushed_rows_merge_by_the_upserts),
    T(a_refused_flush_keeps_its_rows_under_newer_ones),
    T(pending_processes_count_as_live_until_flushed),
    T(rows_being_flushed_stay_live),
    T(many_hosts_flush_in_chunks_of_every_size),
    T(a_put_past_the_bound_is_refused_while_the_store_refuses),
    T(close_flushes_what_waits),
};
TEST_MAIN(tests)
