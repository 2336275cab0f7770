/* bench_jobs.c — durable jobs per second through src/jobs/: producer
 * threads enqueue `jobs.noop` jobs (each jobs_enqueue returns after its
 * group commit: SQLite synchronous=FULL, or PostgreSQL's commit with its
 * default fsync), the workers of the same process claim, run and record
 * them, and the clock stops when the last is recorded succeeded.
 * Prints one line per figure (`name value unit`):
 *   <label>_enqueue_rps   acknowledged enqueues per second
 *   <label>_jobs_per_s    jobs enqueued, run and recorded per second
 *   <label>_start_p50_ms, <label>_start_p99_ms   enqueue→start latency
 *                         (started_at − created_at, ms resolution) of a
 *                         second, unsaturated phase: one producer enqueueing
 *                         2,000 jobs one after another while workers idle
 * Producers enqueue BATCH jobs per call (jobs_enqueue_batch: one commit,
 * acknowledged after it), as a broker client publishes in batches and
 * waits for their confirms.
 * usage: bench_jobs LABEL STORE_URL DATA_DIR JOBS PRODUCERS SLOTS [BATCH] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "jobs/jobs.h"
#include "store/store.h"

struct producer {
  struct jobs *j;
  const char *owner;
  int n;
  int batch; /* jobs per jobs_enqueue_batch call */
  int failed;
};

static void *produce(void *arg) {
  struct producer *p = arg;
  char err[256];
  struct jobs_new *nj = calloc((size_t)p->batch, sizeof *nj);
  char(*ids)[JOBS_ID_LEN] = calloc((size_t)p->batch, sizeof *ids);
  for (int i = 0; nj && ids && i < p->batch; i++)
    nj[i] = (struct jobs_new){"jobs.noop", "{}", p->owner, NULL, 0};
  for (int i = 0; nj && ids && i < p->n; i += p->batch) {
    int n = p->n - i < p->batch ? p->n - i : p->batch;
    if (jobs_enqueue_batch(p->j, nj, (size_t)n, ids, NULL, err, sizeof err)) {
      fprintf(stderr, "enqueue: %s\n", err);
      p->failed += n;
    }
  }
  free(nj);
  free(ids);
  return NULL;
}

static double now_s(void) { return (double)clock_mono_ns() / 1e9; }

static long long count_succeeded(struct store *st) {
  struct store_rows *r = NULL;
  char err[256];
  long long n = -1;
  if (!store_query(st, "SELECT COUNT(*) AS n FROM jobs_jobs WHERE state = 'succeeded'", NULL, 0,
                   &r, err, sizeof err))
    n = strtoll(store_rows_get(r, 0, "n"), NULL, 10);
  store_rows_free(r);
  return n;
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 7 && argc != 8) {
    fprintf(stderr, "usage: bench_jobs LABEL STORE_URL DATA_DIR JOBS PRODUCERS SLOTS [BATCH]\n");
    return 2;
  }
  const char *label = argv[1];
  int total = atoi(argv[4]), np = atoi(argv[5]), slots = atoi(argv[6]);
  int batch = argc == 8 ? atoi(argv[7]) : 1;
  if (batch < 1 || batch > JOBS_BATCH_MAX)
    batch = 1;
  log_setup(LOG_WARN, false, 2);
  struct store_cfg sc = {.url = argv[2], .data_dir = argv[3], .pool = np + slots + 4,
                         .busy_timeout_ms = 30000};
  char err[512], conc[64];
  struct store *st;
  if (store_open(&st, &sc, err, sizeof err) ||
      store_migrate(st, "jobs", jobs_migrations, jobs_nmigrations, NULL, err, sizeof err)) {
    fprintf(stderr, "bench_jobs: %s\n", err);
    return 1;
  }
  snprintf(conc, sizeof conc, "default=%d", slots);
  struct jobs_cfg cfg = {.lease_ms = 30000, .poll_ms = 50, .backoff_base_ms = 1000,
                         .backoff_max_ms = 60000, .max_attempts = 5, .concurrency = conc,
                         .batch = 1024, .workers = true};
  struct jobs *j;
  if (jobs_create(&j, &cfg, st, NULL, NULL, err, sizeof err) || jobs_start(j)) {
    fprintf(stderr, "bench_jobs: %s\n", err);
    return 1;
  }
  long long before = count_succeeded(st);
  struct producer *ps = calloc((size_t)np, sizeof *ps);
  pthread_t *th = calloc((size_t)np, sizeof *th);
  double t0 = now_s();
  for (int i = 0; i < np; i++) {
    ps[i].j = j;
    ps[i].owner = "bench";
    ps[i].n = total / np + (i < total % np);
    ps[i].batch = batch;
    pthread_create(&th[i], NULL, produce, &ps[i]);
  }
  int failed = 0;
  for (int i = 0; i < np; i++) {
    pthread_join(th[i], NULL);
    failed += ps[i].failed;
  }
  double t_acked = now_s();
  while (count_succeeded(st) < before + total - failed)
    usleep(50000);
  double t_done = now_s();
  /* latency: unsaturated, one enqueue at a time */
  struct producer one = {j, "bench-lat", 2000, 1, 0};
  produce(&one);
  while (count_succeeded(st) < before + total - failed + one.n - one.failed)
    usleep(50000);
  jobs_stop(j, 5000);
  jobs_destroy(j);

  struct store_rows *r = NULL;
  long long *lat = NULL;
  int n = 0;
  if (!store_query(st, "SELECT started_at - created_at AS d FROM jobs_jobs WHERE "
                       "state = 'succeeded' AND owner = 'bench-lat'",
                   NULL, 0, &r, err, sizeof err) &&
      (lat = calloc((size_t)r->nrows + 1, sizeof *lat))) {
    for (int i = 0; i < r->nrows; i++)
      lat[n++] = strtoll(store_rows_get(r, i, "d"), NULL, 10);
    qsort(lat, (size_t)n, sizeof *lat, cmp_ll);
  }
  store_rows_free(r);
  printf("%s_enqueue_rps %.0f jobs/s\n", label, (total - failed) / (t_acked - t0));
  printf("%s_jobs_per_s %.0f jobs/s\n", label, (total - failed) / (t_done - t0));
  if (n) {
    printf("%s_start_p50_ms %lld ms\n", label, lat[n / 2]);
    printf("%s_start_p99_ms %lld ms\n", label, lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
  }
  free(lat);
  free(ps);
  free(th);
  store_close(st);
  return failed ? 1 : 0;
}
