/* test_jobs.c — the job queue on the store named by GROVE_TEST_STORE (a
 * postgres:// URL from the test run) or a fresh SQLite file: group commit,
 * idempotency keys, leases and fencing under an injected clock, backoff,
 * dead letters, cancellation, and the workers with test-only handlers.
 * No test waits for time to pass: the lease tests move the clock by hand,
 * the worker tests wait for conditions. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../test.h"
#include "../store_fixture.h"
#include "core/error.h"
#include "core/util.h"
#include "jobs/jobs.h"
#include "store/store.h"

static char dir[64];
static _Atomic int64_t now_ms = 1700000000000LL;
static _Atomic uint64_t rnd = UINT64_MAX; /* the jitter's draw: the cap itself */

static int64_t fake_now(void *arg) {
  (void)arg;
  return atomic_load(&now_ms);
}
static uint64_t fake_random(void *arg) {
  (void)arg;
  return atomic_load(&rnd);
}

static struct store *open_store(void) {
  struct store *s = fixture_store_open(dir, sizeof dir, "/tmp/grove-jobs-XXXXXX", 8);
  char err[256];
  /* a clean slate on a shared server */
  store_query(s, "DROP TABLE IF EXISTS jobs_jobs", NULL, 0, NULL, err, sizeof err);
  store_query(s, "DROP TABLE IF EXISTS jobs_meta", NULL, 0, NULL, err, sizeof err);
  store_query(s, "DELETE FROM grove_migrations WHERE module = 'jobs'", NULL, 0, NULL, err,
              sizeof err);
  int rc = store_migrate(s, "jobs", jobs_migrations, jobs_nmigrations, NULL, err, sizeof err);
  if (rc)
    fprintf(stderr, "migrate: %s\n", err);
  CHECK(rc == 0);
  return s;
}

/* ---- test-only handlers ------------------------------------------------- */

static _Atomic int runs;

static enum jobs_outcome h_ok(struct jobs_run *run, void *arg) {
  (void)arg;
  atomic_fetch_add(&runs, 1);
  jobs_result(run, "{\"pages\":3}");
  return JOBS_DONE;
}

static enum jobs_outcome h_fail(struct jobs_run *run, void *arg) {
  (void)arg;
  jobs_error(run, "boom");
  return JOBS_RETRY;
}

/* Works until told to stop, reporting progress. */
static enum jobs_outcome h_long(struct jobs_run *run, void *arg) {
  (void)arg;
  atomic_fetch_add(&runs, 1);
  for (int i = 0; !jobs_check(run); i = (i + 1) % 100) {
    if (jobs_progress(run, i, "working"))
      break;
    usleep(2000);
  }
  jobs_error(run, "stopped");
  return JOBS_RETRY;
}

static const struct jobs_type types[] = {
    {"t.ok", "ocr", h_ok, 3},
    {"t.fail", "ai", h_fail, 3},
    {"t.long", "generation", h_long, 3},
};

static uint64_t retention_ms; /* --jobs-retention of the next open_jobs */

static struct jobs *open_jobs(struct store *s, bool workers, bool fake_clock) {
  struct jobs_cfg cfg = {.lease_ms = 30000, .poll_ms = 20, .backoff_base_ms = 1000,
                         .backoff_max_ms = 60000, .max_attempts = 5,
                         .concurrency = "ocr=2,ai=2,generation=2,default=2", .batch = 64,
                         .retention_ms = retention_ms, .workers = workers};
  struct jobs *j;
  char err[256];
  int rc = jobs_create(&j, &cfg, s, NULL, NULL, err, sizeof err);
  if (rc)
    fprintf(stderr, "jobs_create: %s\n", err);
  CHECK(rc == 0);
  if (fake_clock)
    jobs_set_clock(j, &(struct jobs_clock){fake_now, fake_random, NULL});
  CHECK(jobs_register(j, types, sizeof types / sizeof types[0], NULL, err, sizeof err) == 0);
  return j;
}

static void enqueue(struct jobs *j, const char *type, const char *owner, const char *key,
                    char id[JOBS_ID_LEN], bool *existed) {
  char err[256];
  struct jobs_new nj = {type, "{\"file\":\"a.pdf\"}", owner, key, 0};
  int rc = jobs_enqueue(j, &nj, id, existed, err, sizeof err);
  if (rc)
    fprintf(stderr, "enqueue: %s\n", err);
  CHECK(rc == 0);
}

static char *state_of(struct jobs *j, const char *id) {
  static char buf[32];
  json_t *o = NULL;
  CHECK(jobs_get(j, id, &o) == 0);
  snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(o, "state")));
  json_decref(o);
  return buf;
}

static long long field_int(struct jobs *j, const char *id, const char *name) {
  json_t *o = NULL;
  CHECK(jobs_get(j, id, &o) == 0);
  long long v = json_integer_value(json_object_get(o, name));
  json_decref(o);
  return v;
}

/* ---- enqueue ------------------------------------------------------------ */

TEST(enqueue_then_get) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  bool existed = true;
  enqueue(j, "t.ok", "u1", NULL, id, &existed);
  CHECK(!existed);
  CHECK_EQ_INT(strlen(id), 32);
  /* the id carries its owner: known without a lookup */
  CHECK(jobs_owns(j, "u1", id));
  CHECK(!jobs_owns(j, "u2", id));
  CHECK(!jobs_owns(j, "u1", "0123456789abcdef0123456789abcdef"));
  json_t *o = NULL;
  CHECK(jobs_get(j, id, &o) == 0);
  CHECK_EQ_STR(json_string_value(json_object_get(o, "state")), "queued");
  CHECK_EQ_STR(json_string_value(json_object_get(o, "queue")), "ocr");
  CHECK_EQ_STR(json_string_value(json_object_get(o, "owner")), "u1");
  CHECK_EQ_INT(json_integer_value(json_object_get(o, "max_attempts")), 3);
  json_decref(o);
  CHECK(jobs_get(j, "0123456789abcdef0123456789abcdef", &o) == GROVE_ENOENT);
  jobs_destroy(j);
  store_close(s);
}

TEST(enqueue_refuses_bad_input) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN], err[256];
  struct jobs_new unknown = {"t.nope", NULL, "u1", NULL, 0};
  CHECK(jobs_enqueue(j, &unknown, id, NULL, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "t.nope"));
  struct jobs_new bad = {"t.ok", "{nope", "u1", NULL, 0};
  CHECK(jobs_enqueue(j, &bad, id, NULL, err, sizeof err) == GROVE_EINVAL);
  struct jobs_new noowner = {"t.ok", NULL, "", NULL, 0};
  CHECK(jobs_enqueue(j, &noowner, id, NULL, err, sizeof err) == GROVE_EINVAL);
  jobs_destroy(j);
  store_close(s);
}

TEST(idempotency_key_gives_the_same_job) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char a[JOBS_ID_LEN], b[JOBS_ID_LEN], c[JOBS_ID_LEN];
  bool existed;
  enqueue(j, "t.ok", "u1", "lecture-7", a, &existed);
  CHECK(!existed);
  enqueue(j, "t.ok", "u1", "lecture-7", b, &existed);
  CHECK(existed);
  CHECK_EQ_STR(a, b);
  /* keys are per owner */
  enqueue(j, "t.ok", "u2", "lecture-7", c, &existed);
  CHECK(!existed);
  CHECK(strcmp(a, c) != 0);
  jobs_destroy(j);
  store_close(s);
}

struct burst {
  struct jobs *j;
  int t;
  char ids[50][JOBS_ID_LEN];
};

static void *burst_thread(void *arg) {
  struct burst *b = arg;
  for (int i = 0; i < 50; i++) {
    char key[32];
    snprintf(key, sizeof key, "k-%d-%d", b->t, i % 25); /* each key twice */
    enqueue(b->j, "t.ok", "u1", key, b->ids[i], NULL);
  }
  return NULL;
}

TEST(concurrent_enqueues_commit_together_and_all_land) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  struct burst b[8];
  pthread_t th[8];
  for (int t = 0; t < 8; t++) {
    b[t].j = j;
    b[t].t = t;
    pthread_create(&th[t], NULL, burst_thread, &b[t]);
  }
  for (int t = 0; t < 8; t++)
    pthread_join(th[t], NULL);
  for (int t = 0; t < 8; t++)
    for (int i = 0; i < 25; i++)
      CHECK_EQ_STR(b[t].ids[i], b[t].ids[i + 25]);
  struct store_rows *r;
  char err[256];
  CHECK(store_query(s, "SELECT COUNT(*) AS n FROM jobs_jobs", NULL, 0, &r, err, sizeof err) == 0);
  CHECK_EQ_STR(store_rows_get(r, 0, "n"), "200");
  store_rows_free(r);
  jobs_destroy(j);
  store_close(s);
}

/* ---- leases and fencing ------------------------------------------------- */

TEST(claim_takes_a_lease_and_a_growing_token) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.ok", "u1", NULL, id, NULL);
  struct jobs_claim c;
  CHECK(jobs_claim(j, "ai", "w1", &c) == GROVE_ENOENT); /* another queue */
  CHECK(jobs_claim(j, "ocr", "w1", &c) == 0);
  CHECK_EQ_STR(c.id, id);
  CHECK_EQ_INT(c.token, 1);
  CHECK_EQ_INT(c.attempt, 1);
  CHECK_EQ_STR(c.payload, "{\"file\":\"a.pdf\"}");
  CHECK_EQ_INT(c.lease_until_ms, atomic_load(&now_ms) + 30000);
  struct jobs_claim d;
  CHECK(jobs_claim(j, "ocr", "w2", &d) == GROVE_ENOENT); /* held */
  CHECK_EQ_STR(state_of(j, id), "running");
  CHECK(jobs_complete(j, &c, "{\"ok\":true}") == 0);
  CHECK_EQ_STR(state_of(j, id), "succeeded");
  CHECK(jobs_complete(j, &c, "{}") == GROVE_EPERM); /* recorded once */
  jobs_claim_release(&c);
  jobs_destroy(j);
  store_close(s);
}

TEST(a_batch_claim_takes_the_oldest_runnable_jobs_once) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char ids[5][JOBS_ID_LEN];
  for (int i = 0; i < 5; i++) {
    enqueue(j, "t.ok", "u1", NULL, ids[i], NULL);
    atomic_fetch_add(&now_ms, 1); /* distinct run_at: a known order */
  }
  struct jobs_claim c[8];
  int n = 0;
  CHECK(jobs_claim_batch(j, "ocr", "w", 3, c, &n) == 0);
  CHECK_EQ_INT(n, 3);
  bool seen[5] = {0};
  for (int i = 0; i < n; i++) {
    CHECK_EQ_INT(c[i].token, 1);
    for (int k = 0; k < 5; k++)
      if (strcmp(c[i].id, ids[k]) == 0)
        seen[k] = true;
  }
  CHECK(seen[0] && seen[1] && seen[2] && !seen[3] && !seen[4]);
  int m = 0;
  CHECK(jobs_claim_batch(j, "ocr", "w", 8, c + 3, &m) == 0);
  CHECK_EQ_INT(m, 2);
  CHECK(jobs_claim_batch(j, "ocr", "w", 8, c + 5, &m) == GROVE_ENOENT);
  for (int i = 0; i < 5; i++)
    jobs_claim_release(&c[i]);
  jobs_destroy(j);
  store_close(s);
}

/* Celery's failure: a job outliving its visibility timeout runs twice.
 * Here a worker that keeps renewing keeps the job however long it runs. */
TEST(a_renewing_worker_keeps_its_job_past_many_lease_lengths) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.ok", "u1", NULL, id, NULL);
  struct jobs_claim a, b;
  CHECK(jobs_claim(j, "ocr", "w1", &a) == 0);
  for (int i = 0; i < 20; i++) { /* 20 × 20 s = 400 s of a 30 s lease */
    atomic_fetch_add(&now_ms, 20000);
    bool cancel = true;
    CHECK(jobs_renew(j, id, a.token, &cancel) == 0);
    CHECK(!cancel);
    int n = -1;
    CHECK(jobs_reap(j, &n) == 0);
    CHECK_EQ_INT(n, 0);
    CHECK(jobs_claim(j, "ocr", "w2", &b) == GROVE_ENOENT);
  }
  CHECK(jobs_complete(j, &a, NULL) == 0);
  CHECK_EQ_INT(field_int(j, id, "attempts"), 1);
  jobs_claim_release(&a);
  jobs_destroy(j);
  store_close(s);
}

TEST(a_stale_worker_is_fenced_off_after_its_lease_expired) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.ok", "u1", NULL, id, NULL);
  struct jobs_claim a, b;
  CHECK(jobs_claim(j, "ocr", "w1", &a) == 0);
  /* w1 stalls (GC pause, partition): no renewal for longer than the lease */
  atomic_fetch_add(&now_ms, 30001);
  int n = 0;
  CHECK(jobs_reap(j, &n) == 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_STR(state_of(j, id), "failed"); /* retried after a backoff */
  atomic_fetch_add(&now_ms, 1000);          /* the first backoff's cap */
  CHECK(jobs_claim(j, "ocr", "w2", &b) == 0);
  CHECK_EQ_INT(b.token, 2);
  CHECK_EQ_INT(b.attempt, 2);
  /* w1 wakes up: every write of its stale attempt is refused */
  bool cancel;
  CHECK(jobs_renew(j, id, a.token, &cancel) == GROVE_EPERM);
  CHECK(jobs_report(j, id, a.token, 50, "late", &cancel) == GROVE_EPERM);
  CHECK(jobs_complete(j, &a, "{\"from\":\"w1\"}") == GROVE_EPERM);
  CHECK(jobs_fail(j, &a, "late", false, NULL) == GROVE_EPERM);
  CHECK(jobs_hand_back(j, &a) == GROVE_EPERM);
  CHECK_EQ_STR(state_of(j, id), "running");
  CHECK(jobs_complete(j, &b, "{\"from\":\"w2\"}") == 0);
  json_t *o = NULL;
  CHECK(jobs_get(j, id, &o) == 0);
  CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(o, "result"), "from")), "w2");
  json_decref(o);
  jobs_claim_release(&a);
  jobs_claim_release(&b);
  jobs_destroy(j);
  store_close(s);
}

TEST(an_expired_lease_nobody_took_can_still_be_renewed) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.ok", "u1", NULL, id, NULL);
  struct jobs_claim a;
  CHECK(jobs_claim(j, "ocr", "w1", &a) == 0);
  atomic_fetch_add(&now_ms, 30001);
  /* nobody took it yet: the holder may still renew and finish */
  CHECK(jobs_renew(j, id, a.token, NULL) == 0);
  int n = -1;
  CHECK(jobs_reap(j, &n) == 0);
  CHECK_EQ_INT(n, 0);
  CHECK(jobs_complete(j, &a, NULL) == 0);
  jobs_claim_release(&a);
  jobs_destroy(j);
  store_close(s);
}

/* ---- retries and dead letters ------------------------------------------- */

TEST(backoff_is_exponential_with_full_jitter) {
  CHECK_EQ_INT(jobs_backoff_ms(1000, 60000, 1, 1000), 1000);
  CHECK_EQ_INT(jobs_backoff_ms(1000, 60000, 1, 1001), 0);
  CHECK_EQ_INT(jobs_backoff_ms(1000, 60000, 2, 2000), 2000);
  CHECK_EQ_INT(jobs_backoff_ms(1000, 60000, 3, 4000), 4000);
  CHECK_EQ_INT(jobs_backoff_ms(1000, 60000, 3, 4001), 0);
  CHECK_EQ_INT(jobs_backoff_ms(1000, 60000, 30, 60000), 60000); /* capped */
  CHECK_EQ_INT(jobs_backoff_ms(1000, 60000, 1000000, 60000), 60000);
  for (uint64_t r = 0; r < 5000; r += 7)
    CHECK(jobs_backoff_ms(1000, 60000, 3, r) <= 4000);
  CHECK_EQ_INT(jobs_backoff_ms(1000, 60000, 1, 0), 0);
}

TEST(failures_retry_with_backoff_then_go_dead_and_never_loop) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.fail", "u1", NULL, id, NULL);
  atomic_store(&rnd, 0xffffffffffULL);
  struct jobs_claim c;
  for (int attempt = 1; attempt <= 3; attempt++) {
    CHECK(jobs_claim(j, "ai", "w1", &c) == 0);
    CHECK_EQ_INT(c.attempt, attempt);
    char err[32];
    snprintf(err, sizeof err, "boom %d", attempt);
    enum jobs_state st;
    CHECK(jobs_fail(j, &c, err, false, &st) == 0);
    jobs_claim_release(&c);
    if (attempt < 3) {
      CHECK(st == JOBS_FAILED);
      uint64_t wait = jobs_backoff_ms(1000, 60000, attempt, 0xffffffffffULL);
      CHECK(wait <= (1000ULL << (attempt - 1)));
      if (wait > 0) { /* not runnable before its time */
        atomic_fetch_add(&now_ms, (int64_t)wait - 1);
        CHECK(jobs_claim(j, "ai", "w1", &c) == GROVE_ENOENT);
        atomic_fetch_add(&now_ms, 1);
      }
    } else {
      CHECK(st == JOBS_DEAD);
    }
  }
  CHECK_EQ_STR(state_of(j, id), "dead");
  atomic_fetch_add(&now_ms, 3600 * 1000);
  CHECK(jobs_claim(j, "ai", "w1", &c) == GROVE_ENOENT); /* never again by itself */
  json_t *dead = NULL;
  CHECK(jobs_dead(j, 10, &dead) == 0);
  CHECK_EQ_INT(json_array_size(dead), 1);
  CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(dead, 0), "error")), "boom 3");
  json_decref(dead);
  /* an admin queues it again, with its attempts reset */
  CHECK(jobs_retry(j, id) == 0);
  CHECK_EQ_STR(state_of(j, id), "queued");
  CHECK(jobs_retry(j, id) == GROVE_EEXIST);
  CHECK(jobs_claim(j, "ai", "w1", &c) == 0);
  CHECK_EQ_INT(c.attempt, 1);
  jobs_claim_release(&c);
  jobs_destroy(j);
  store_close(s);
}

TEST(a_permanent_error_goes_dead_at_once) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.fail", "u1", NULL, id, NULL);
  struct jobs_claim c;
  CHECK(jobs_claim(j, "ai", "w1", &c) == 0);
  enum jobs_state st;
  CHECK(jobs_fail(j, &c, "not a PDF", true, &st) == 0);
  CHECK(st == JOBS_DEAD);
  CHECK_EQ_STR(state_of(j, id), "dead");
  jobs_claim_release(&c);
  jobs_destroy(j);
  store_close(s);
}

/* A job that kills its worker every time (a poison job) ends dead too:
 * each expired lease counts as an attempt. */
TEST(a_job_whose_workers_keep_dying_goes_dead) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.ok", "u1", NULL, id, NULL);
  for (int attempt = 1; attempt <= 3; attempt++) {
    struct jobs_claim c;
    CHECK(jobs_claim(j, "ocr", "w", &c) == 0);
    jobs_claim_release(&c);
    atomic_fetch_add(&now_ms, 30001 + 60000);
    CHECK(jobs_reap(j, NULL) == 0);
    atomic_fetch_add(&now_ms, 60000);
  }
  CHECK_EQ_STR(state_of(j, id), "dead");
  json_t *o = NULL;
  CHECK(jobs_get(j, id, &o) == 0);
  CHECK_EQ_STR(json_string_value(json_object_get(o, "error")), "lease expired");
  json_decref(o);
  jobs_destroy(j);
  store_close(s);
}

/* ---- cancellation ------------------------------------------------------- */

TEST(cancel_a_queued_job_at_once_and_a_running_one_at_its_next_check) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char a[JOBS_ID_LEN], b[JOBS_ID_LEN];
  enqueue(j, "t.ok", "u1", NULL, a, NULL);
  enum jobs_state st;
  CHECK(jobs_cancel(j, a, "u2", &st) == GROVE_ENOENT); /* not u2's */
  CHECK(jobs_cancel(j, a, "u1", &st) == 0);
  CHECK(st == JOBS_CANCELLED);
  CHECK(jobs_cancel(j, a, "u1", &st) == GROVE_EEXIST);
  CHECK(st == JOBS_CANCELLED);
  struct jobs_claim c;
  CHECK(jobs_claim(j, "ocr", "w", &c) == GROVE_ENOENT);

  enqueue(j, "t.ok", "u1", NULL, b, NULL);
  CHECK(jobs_claim(j, "ocr", "w", &c) == 0);
  CHECK(jobs_cancel(j, b, NULL, &st) == 0); /* an admin */
  CHECK(st == JOBS_RUNNING);
  bool cancel = false;
  CHECK(jobs_renew(j, b, c.token, &cancel) == 0);
  CHECK(cancel);
  CHECK(jobs_finish_cancelled(j, &c) == 0);
  CHECK_EQ_STR(state_of(j, b), "cancelled");
  jobs_claim_release(&c);
  CHECK(jobs_cancel(j, "0123456789abcdef0123456789abcdef", NULL, &st) == GROVE_ENOENT);
  jobs_destroy(j);
  store_close(s);
}

TEST(queue_stats_count_depth_running_and_dead) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char id[JOBS_ID_LEN];
  for (int i = 0; i < 3; i++)
    enqueue(j, "t.ok", "u1", NULL, id, NULL);
  enqueue(j, "t.fail", "u1", NULL, id, NULL);
  struct jobs_claim c;
  CHECK(jobs_claim(j, "ocr", "w", &c) == 0);
  jobs_claim_release(&c);
  CHECK(jobs_claim(j, "ai", "w", &c) == 0);
  CHECK(jobs_fail(j, &c, "x", true, NULL) == 0);
  jobs_claim_release(&c);
  atomic_fetch_add(&now_ms, 5000);
  json_t *qs = NULL;
  CHECK(jobs_queues(j, &qs) == 0);
  bool seen_ocr = false, seen_ai = false;
  size_t i;
  json_t *q;
  json_array_foreach(qs, i, q) {
    const char *name = json_string_value(json_object_get(q, "queue"));
    if (strcmp(name, "ocr") == 0) {
      seen_ocr = true;
      CHECK_EQ_INT(json_integer_value(json_object_get(q, "depth")), 2);
      CHECK_EQ_INT(json_integer_value(json_object_get(q, "running")), 1);
      CHECK_EQ_INT(json_integer_value(json_object_get(q, "priority")), 0);
      CHECK(json_real_value(json_object_get(q, "oldest_age_s")) >= 5.0);
    } else if (strcmp(name, "ai") == 0) {
      seen_ai = true;
      CHECK_EQ_INT(json_integer_value(json_object_get(q, "dead")), 1);
    }
  }
  CHECK(seen_ocr && seen_ai);
  json_decref(qs);
  jobs_destroy(j);
  store_close(s);
}

/* ---- workers (real time; waits for conditions) -------------------------- */

static long long count_state(struct store *s, const char *state) {
  struct store_rows *r = NULL;
  char err[256];
  const char *p[] = {state};
  CHECK(store_query(s, "SELECT COUNT(*) AS n FROM jobs_jobs WHERE state = $1", p, 1, &r, err,
                    sizeof err) == 0);
  long long n = strtoll(store_rows_get(r, 0, "n"), NULL, 10);
  store_rows_free(r);
  return n;
}

static void wait_state(struct jobs *j, const char *id, const char *want) {
  for (int i = 0; i < 5000; i++) {
    if (strcmp(state_of(j, id), want) == 0)
      return;
    usleep(2000);
  }
  fprintf(stderr, "job %s stayed %s, wanted %s\n", id, state_of(j, id), want);
  abort();
}

TEST(workers_run_handlers_and_record_results) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, true, false);
  CHECK(jobs_start(j) == 0);
  char ids[10][JOBS_ID_LEN];
  for (int i = 0; i < 10; i++)
    enqueue(j, "t.ok", "u1", NULL, ids[i], NULL);
  for (int i = 0; i < 10; i++)
    wait_state(j, ids[i], "succeeded");
  CHECK_EQ_INT(atomic_load(&runs), 10);
  json_t *o = NULL;
  CHECK(jobs_get(j, ids[0], &o) == 0);
  CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(o, "result"), "pages")), 3);
  CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(o, "progress"), "percent")),
               100);
  json_decref(o);
  jobs_stop(j, 5000);
  jobs_destroy(j);
  store_close(s);
}

TEST(cancel_reaches_a_running_handler) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, true, false);
  CHECK(jobs_start(j) == 0);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.long", "u1", NULL, id, NULL);
  wait_state(j, id, "running");
  enum jobs_state st;
  CHECK(jobs_cancel(j, id, "u1", &st) == 0);
  wait_state(j, id, "cancelled");
  jobs_stop(j, 5000);
  jobs_destroy(j);
  store_close(s);
}

TEST(stop_hands_running_jobs_back_without_counting_the_attempt) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, true, false);
  CHECK(jobs_start(j) == 0);
  char id[JOBS_ID_LEN];
  enqueue(j, "t.long", "u1", NULL, id, NULL);
  wait_state(j, id, "running");
  jobs_stop(j, 5000); /* h_long sees jobs_check() and returns */
  CHECK_EQ_STR(state_of(j, id), "queued");
  CHECK_EQ_INT(field_int(j, id, "attempts"), 0);
  jobs_destroy(j);
  store_close(s);
}

/* A queue runs at most its limit at once (generation=2) and claims as
 * many again ahead; on stop the running and the prefetched jobs all go
 * back, none of their attempts counted. */
TEST(workers_run_the_limit_prefetch_as_many_and_hand_all_back_on_stop) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, true, false);
  atomic_store(&runs, 0);
  CHECK(jobs_start(j) == 0);
  char ids[7][JOBS_ID_LEN];
  for (int i = 0; i < 7; i++)
    enqueue(j, "t.long", "u1", NULL, ids[i], NULL);
  for (int k = 0; k < 5000 && count_state(s, "running") < 4; k++)
    usleep(2000);
  CHECK_EQ_INT(count_state(s, "running"), 4); /* 2 running, 2 claimed ahead */
  CHECK_EQ_INT(count_state(s, "queued"), 3);
  CHECK(atomic_load(&runs) <= 2);
  jobs_stop(j, 5000);
  CHECK_EQ_INT(count_state(s, "queued"), 7);
  for (int i = 0; i < 7; i++)
    CHECK_EQ_INT(field_int(j, ids[i], "attempts"), 0);
  jobs_destroy(j);
  store_close(s);
}

/* ---- batches and retention ---------------------------------------------- */

static long long count_jobs(struct store *s) {
  struct store_rows *r = NULL;
  char err[256];
  CHECK(store_query(s, "SELECT COUNT(*) AS n FROM jobs_jobs", NULL, 0, &r, err, sizeof err) == 0);
  long long n = strtoll(store_rows_get(r, 0, "n"), NULL, 10);
  store_rows_free(r);
  return n;
}

TEST(a_batch_enqueue_commits_all_or_none) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  char ids[3][JOBS_ID_LEN], err[256];
  bool existed[3];
  struct jobs_new ok[3] = {{"t.ok", "{\"n\":1}", "u1", NULL, 0},
                           {"t.fail", NULL, "u1", "k1", 0},
                           {"t.ok", "{\"n\":3}", "u1", "k1", 0}};
  CHECK(jobs_enqueue_batch(j, ok, 3, ids, existed, err, sizeof err) == 0);
  CHECK(!existed[0] && !existed[1] && existed[2]); /* the same key twice: one job */
  CHECK_EQ_STR(ids[1], ids[2]);
  CHECK(strcmp(ids[0], ids[1]) != 0);
  CHECK_EQ_STR(state_of(j, ids[0]), "queued");
  CHECK_EQ_INT(count_jobs(s), 2);
  struct jobs_new bad[2] = {{"t.ok", NULL, "u1", NULL, 0}, {"t.nope", NULL, "u1", NULL, 0}};
  CHECK(jobs_enqueue_batch(j, bad, 2, ids, NULL, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "job 1") != NULL);
  CHECK_EQ_INT(count_jobs(s), 2); /* nothing of it written */
  CHECK(jobs_enqueue_batch(j, bad, 0, ids, NULL, err, sizeof err) == GROVE_EINVAL);
  jobs_destroy(j);
  store_close(s);
}

struct completer {
  struct jobs *j;
  struct jobs_claim *c;
  int rc;
};

static void *complete_one(void *arg) {
  struct completer *k = arg;
  k->rc = jobs_complete(k->j, k->c, "{}");
  return NULL;
}

/* Completions arriving together share a statement; the fence still holds
 * for each: a stale attempt among them is refused, the others land. */
TEST(concurrent_completions_are_fenced_one_by_one) {
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  enum { N = 24 };
  struct jobs_claim c[N + 1];
  struct completer k[N + 1];
  pthread_t th[N + 1];
  char id[JOBS_ID_LEN];
  for (int i = 0; i < N; i++)
    enqueue(j, "t.ok", "u1", NULL, id, NULL);
  int n = 0;
  CHECK(jobs_claim_batch(j, "ocr", "w1", N, c, &n) == 0);
  CHECK_EQ_INT(n, N);
  CHECK(jobs_complete(j, &c[0], NULL) == 0);
  c[N] = c[0]; /* the same attempt again: stale now */
  c[N].payload = NULL;
  for (int i = 1; i <= N; i++) {
    k[i] = (struct completer){j, &c[i], -1};
    pthread_create(&th[i], NULL, complete_one, &k[i]);
  }
  for (int i = 1; i <= N; i++)
    pthread_join(th[i], NULL);
  for (int i = 1; i < N; i++) {
    CHECK_EQ_INT(k[i].rc, 0);
    CHECK_EQ_STR(state_of(j, c[i].id), "succeeded");
  }
  CHECK_EQ_INT(k[N].rc, GROVE_EPERM);
  for (int i = 0; i < N; i++)
    jobs_claim_release(&c[i]);
  jobs_destroy(j);
  store_close(s);
}

TEST(retention_deletes_finished_jobs_after_their_time_and_keeps_dead_ones) {
  retention_ms = 3600000;
  struct store *s = open_store();
  struct jobs *j = open_jobs(s, false, true);
  retention_ms = 0;
  char done[JOBS_ID_LEN], cancelled[JOBS_ID_LEN], dead[JOBS_ID_LEN], queued[JOBS_ID_LEN];
  enqueue(j, "t.ok", "u1", NULL, done, NULL);
  enqueue(j, "t.fail", "u1", NULL, dead, NULL);
  struct jobs_claim c;
  CHECK(jobs_claim(j, "ocr", "w1", &c) == 0);
  CHECK(jobs_complete(j, &c, NULL) == 0);
  jobs_claim_release(&c);
  CHECK(jobs_claim(j, "ai", "w1", &c) == 0);
  CHECK(jobs_fail(j, &c, "broken", true, NULL) == 0);
  jobs_claim_release(&c);
  enqueue(j, "t.ok", "u1", NULL, cancelled, NULL);
  enum jobs_state st;
  CHECK(jobs_cancel(j, cancelled, NULL, &st) == 0);
  enqueue(j, "t.ok", "u1", NULL, queued, NULL);
  long long n = -1;
  atomic_fetch_add(&now_ms, 3600000 - 1); /* not yet */
  CHECK(jobs_sweep(j, &n) == 0);
  CHECK_EQ_INT(n, 0);
  atomic_fetch_add(&now_ms, 2);
  CHECK(jobs_sweep(j, &n) == 0);
  CHECK_EQ_INT(n, 2);
  json_t *o = NULL;
  CHECK(jobs_get(j, done, &o) == GROVE_ENOENT);
  CHECK(jobs_get(j, cancelled, &o) == GROVE_ENOENT);
  CHECK_EQ_STR(state_of(j, dead), "dead");     /* kept for admins */
  CHECK_EQ_STR(state_of(j, queued), "queued"); /* not finished */
  atomic_fetch_add(&now_ms, 365LL * 86400000);
  CHECK(jobs_sweep(j, &n) == 0);
  CHECK_EQ_INT(n, 0);
  CHECK(jobs_retry(j, dead) == 0); /* dead stays until an admin acts */
  jobs_destroy(j);
  store_close(s);
}

static const struct test tests[] = {
    T(enqueue_then_get),
    T(enqueue_refuses_bad_input),
    T(idempotency_key_gives_the_same_job),
    T(concurrent_enqueues_commit_together_and_all_land),
    T(claim_takes_a_lease_and_a_growing_token),
    T(a_batch_claim_takes_the_oldest_runnable_jobs_once),
    T(a_renewing_worker_keeps_its_job_past_many_lease_lengths),
    T(a_stale_worker_is_fenced_off_after_its_lease_expired),
    T(an_expired_lease_nobody_took_can_still_be_renewed),
    T(backoff_is_exponential_with_full_jitter),
    T(failures_retry_with_backoff_then_go_dead_and_never_loop),
    T(a_permanent_error_goes_dead_at_once),
    T(a_job_whose_workers_keep_dying_goes_dead),
    T(cancel_a_queued_job_at_once_and_a_running_one_at_its_next_check),
    T(queue_stats_count_depth_running_and_dead),
    T(workers_run_handlers_and_record_results),
    T(cancel_reaches_a_running_handler),
    T(stop_hands_running_jobs_back_without_counting_the_attempt),
    T(workers_run_the_limit_prefetch_as_many_and_hand_all_back_on_stop),
    T(a_batch_enqueue_commits_all_or_none),
    T(concurrent_completions_are_fenced_one_by_one),
    T(retention_deletes_finished_jobs_after_their_time_and_keeps_dead_ones),
};

TEST_MAIN(tests)
