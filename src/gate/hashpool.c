/* hashpool.c — the password-hashing pool: argon2id work (registration,
 * sign-in) runs on threads of its own with a bounded queue, apart from the
 * worker pool that serves database reads.
 *
 * Why: an argon2id hash takes tens of milliseconds of CPU and 19 MiB. On
 * the shared worker pool a flood of wrong-password logins (each within its
 * address's rate) filled every worker and the queue behind them, so /ready,
 * database reads and static files waited seconds, and the hashes queued
 * for clients long gone kept running after the flood stopped. Here:
 *   - at most --auth-hash-threads hashes run at once, and at most
 *     --auth-hash-queue wait; a request past that is refused at once (the
 *     caller answers 503 AUTH_BUSY with Retry-After) rather than queued;
 *   - a queued job whose client went away (closed or reset its connection)
 *     is dropped without hashing: each loop sweeps its jobs every
 *     SWEEP_MS while it has any, and a worker checks again before it runs
 *     one.
 *
 * Threads: submit, the sweep and completions run on the request's event
 * loop; work runs on a pool thread. The pool's queue is under `mu`; each
 * loop's list of finished jobs under its own `mu`, handed over with a
 * uv_async_t. A job holds its request (http_req_hold), so the connection
 * outlives it; a loop therefore stops only once all its jobs are done. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gate/internal.h"

#define SWEEP_MS 100
#define HOLD_POLL_MS 10

struct hp_loop;

struct hp_job {
  struct hp_job *qprev, *qnext; /* the pool's queue, under pool->mu */
  struct hp_job *wprev, *wnext; /* the loop's jobs not yet finished (loop thread) */
  struct hp_job *dnext;         /* the loop's finished list, under lp->mu */
  struct hp_loop *lp;
  struct http_req *r;
  hash_work_fn work;
  hash_done_fn done;
  void *arg;
  bool queued;        /* under pool->mu */
  _Atomic bool gone;  /* the client went away: do not start the work */
  bool ran;
};

struct hp_loop {
  struct hash_pool *pool;
  uv_loop_t *loop;
  int index;
  uv_async_t async;
  uv_timer_t sweep;
  bool started;
  pthread_mutex_t mu;
  struct hp_job *finished;  /* under mu */
  struct hp_job *jobs;      /* loop thread only */
  struct hp_loop *next;
};

struct hash_pool {
  pthread_mutex_t mu;
  pthread_cond_t more;
  struct hp_job *head, *tail;
  int queued, running, max_queue, nthreads;
  bool stop;
  pthread_t *threads;
  char *hold_path;
  struct hp_loop *loops; /* under mu (added by loop starts) */
  struct metric *m_running, *m_queued, *m_refused, *m_dropped;
};

static void gauges(struct hash_pool *p) {
  metric_set(p->m_running, p->running);
  metric_set(p->m_queued, p->queued);
}

/* Tests fill the pool deterministically: while the hold file exists, a
 * job about to run waits (it counts as running), unless its client goes or
 * the pool stops. */
static void hold(struct hash_pool *p, struct hp_job *j) {
  struct stat st;
  while (!atomic_load(&j->gone) && stat(p->hold_path, &st) == 0) {
    pthread_mutex_lock(&p->mu);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    if (stop)
      return;
    struct timespec ts = {0, HOLD_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
  }
}

static void *worker(void *arg) {
  struct hash_pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->stop)
      pthread_cond_wait(&p->more, &p->mu);
    if (p->stop)
      break;
    struct hp_job *j = p->head;
    p->head = j->qnext;
    if (p->head)
      p->head->qprev = NULL;
    else
      p->tail = NULL;
    j->queued = false;
    p->queued--;
    p->running++;
    gauges(p);
    pthread_mutex_unlock(&p->mu);
    if (p->hold_path)
      hold(p, j);
    if (!atomic_load(&j->gone)) {
      j->work(j->arg);
      j->ran = true;
    }
    struct hp_loop *lp = j->lp;
    /* sent under lp->mu: once the loop can see j it may finish j's
     * request and stop; nothing here touches lp after */
    pthread_mutex_lock(&lp->mu);
    j->dnext = lp->finished;
    lp->finished = j;
    uv_async_send(&lp->async);
    pthread_mutex_unlock(&lp->mu);
    pthread_mutex_lock(&p->mu);
    p->running--;
    gauges(p);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* On the loop: hands a finished (or dropped) job back to its request. */
static void complete(struct hp_job *j) {
  struct hp_loop *lp = j->lp;
  if (j->wprev)
    j->wprev->wnext = j->wnext;
  else
    lp->jobs = j->wnext;
  if (j->wnext)
    j->wnext->wprev = j->wprev;
  if (!j->ran)
    metric_add(lp->pool->m_dropped, 1);
  if (http_req_release(j->r)) {
    j->done(j->r, j->arg, j->ran);
  } else {
    struct http_req gone = {0}; /* the client went away: the answer is dropped */
    j->done(&gone, j->arg, j->ran);
  }
  free(j);
  if (!lp->jobs)
    uv_timer_stop(&lp->sweep);
}

static void on_finished(uv_async_t *a) {
  struct hp_loop *lp = a->data;
  pthread_mutex_lock(&lp->mu);
  struct hp_job *list = lp->finished;
  lp->finished = NULL;
  pthread_mutex_unlock(&lp->mu);
  while (list) {
    struct hp_job *next = list->dnext;
    complete(list);
    list = next;
  }
}

/* Drops the jobs of clients that went away: a queued one leaves the queue
 * and is completed now; a running one (held) is told not to start. */
static void on_sweep(uv_timer_t *t) {
  struct hp_loop *lp = t->data;
  struct hash_pool *p = lp->pool;
  struct hp_job *j = lp->jobs, *drop = NULL;
  pthread_mutex_lock(&p->mu);
  while (j) {
    struct hp_job *next = j->wnext;
    if (!atomic_load(&j->gone) && http_req_gone(j->r)) {
      atomic_store(&j->gone, true);
      if (j->queued) {
        if (j->qprev)
          j->qprev->qnext = j->qnext;
        else
          p->head = j->qnext;
        if (j->qnext)
          j->qnext->qprev = j->qprev;
        else
          p->tail = j->qprev;
        j->queued = false;
        p->queued--;
        j->dnext = drop;
        drop = j;
      }
    }
    j = next;
  }
  gauges(p);
  pthread_mutex_unlock(&p->mu);
  while (drop) {
    struct hp_job *next = drop->dnext;
    complete(drop);
    drop = next;
  }
}

int hash_pool_create(struct hash_pool **out, int threads, int queue, const char *hold_path,
                     struct metrics *m) {
  if (threads < 1 || threads > 256 || queue < 0 || queue > 1000000)
    return GROVE_EINVAL;
  struct hash_pool *p = calloc(1, sizeof *p);
  if (!p)
    return GROVE_ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->more, NULL);
  p->max_queue = queue;
  p->hold_path = hold_path && *hold_path ? strdup(hold_path) : NULL;
  p->threads = calloc((size_t)threads, sizeof *p->threads);
  if (!p->threads || (hold_path && *hold_path && !p->hold_path)) {
    hash_pool_destroy(p);
    return GROVE_ENOMEM;
  }
  if (m) {
    p->m_running = metric_get(metrics_family(m, "grove_auth_hash_running",
                                             "Password hashes running now.", METRIC_GAUGE, ""));
    p->m_queued = metric_get(metrics_family(m, "grove_auth_hash_queued",
                                            "Password hashes waiting for a thread.",
                                            METRIC_GAUGE, ""));
    p->m_refused = metric_get(metrics_family(
        m, "grove_auth_hash_refused_total",
        "Sign-ins and registrations refused with 503 because the hash queue was full.",
        METRIC_COUNTER, ""));
    p->m_dropped = metric_get(metrics_family(
        m, "grove_auth_hash_dropped_total",
        "Queued password hashes dropped because their client went away.", METRIC_COUNTER, ""));
  }
  for (int i = 0; i < threads; i++) {
    if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
      hash_pool_destroy(p);
      return GROVE_ENOMEM;
    }
    p->nthreads++;
  }
  *out = p;
  return 0;
}

void hash_pool_destroy(struct hash_pool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->more);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  while (p->loops) {
    struct hp_loop *lp = p->loops;
    p->loops = lp->next;
    pthread_mutex_destroy(&lp->mu);
    free(lp);
  }
  free(p->threads);
  free(p->hold_path);
  pthread_cond_destroy(&p->more);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

void hash_pool_loop_start(struct hash_pool *p, uv_loop_t *loop, int index) {
  struct hp_loop *lp = calloc(1, sizeof *lp);
  if (!lp) {
    log_error(NULL, "cannot start the hash pool on a loop", "error=\"out of memory\"");
    return;
  }
  lp->pool = p;
  lp->loop = loop;
  lp->index = index;
  pthread_mutex_init(&lp->mu, NULL);
  uv_async_init(loop, &lp->async, on_finished);
  lp->async.data = lp;
  uv_timer_init(loop, &lp->sweep);
  lp->sweep.data = lp;
  uv_unref((uv_handle_t *)&lp->sweep);
  lp->started = true;
  pthread_mutex_lock(&p->mu);
  lp->next = p->loops;
  p->loops = lp;
  pthread_mutex_unlock(&p->mu);
}

/* The loop's state; NULL before its start. */
static struct hp_loop *loop_of(struct hash_pool *p, uv_loop_t *loop) {
  pthread_mutex_lock(&p->mu);
  struct hp_loop *lp = p->loops;
  while (lp && lp->loop != loop)
    lp = lp->next;
  pthread_mutex_unlock(&p->mu);
  return lp;
}

void hash_pool_loop_stop(struct hash_pool *p, int index) {
  pthread_mutex_lock(&p->mu);
  struct hp_loop *lp = p->loops;
  while (lp && lp->index != index)
    lp = lp->next;
  pthread_mutex_unlock(&p->mu);
  if (!lp || !lp->started)
    return;
  /* no job of this loop is left: each held a connection, and a loop stops
   * once its connections are gone */
  pthread_mutex_lock(&lp->mu);
  lp->started = false;
  pthread_mutex_unlock(&lp->mu);
  uv_close((uv_handle_t *)&lp->async, NULL);
  uv_close((uv_handle_t *)&lp->sweep, NULL);
}

int hash_pool_submit(struct hash_pool *p, struct http_req *r, hash_work_fn work,
                     hash_done_fn done, void *arg) {
  struct hp_loop *lp = loop_of(p, http_req_loop(r));
  if (!lp || !lp->started)
    return GROVE_ECLOSED;
  struct hp_job *j = calloc(1, sizeof *j);
  if (!j)
    return GROVE_ENOMEM;
  pthread_mutex_lock(&p->mu);
  /* a free thread takes the job at once; otherwise it waits if there is room */
  if (p->queued - (p->nthreads - p->running) >= p->max_queue) {
    pthread_mutex_unlock(&p->mu);
    free(j);
    metric_add(p->m_refused, 1);
    return GROVE_EBUSY;
  }
  j->lp = lp;
  j->r = r;
  j->work = work;
  j->done = done;
  j->arg = arg;
  j->queued = true;
  j->qprev = p->tail;
  if (p->tail)
    p->tail->qnext = j;
  else
    p->head = j;
  p->tail = j;
  p->queued++;
  gauges(p);
  pthread_cond_signal(&p->more);
  pthread_mutex_unlock(&p->mu);
  http_req_hold(r);
  j->wnext = lp->jobs;
  if (lp->jobs)
    lp->jobs->wprev = j;
  lp->jobs = j;
  if (!uv_is_active((uv_handle_t *)&lp->sweep))
    uv_timer_start(&lp->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
  return 0;
}
