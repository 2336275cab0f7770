/* pool.c — worker threads with a bounded queue (see pool.h).
 *
 * One lock per pool guards the queue and the counts; `more` wakes a thread
 * for a job, `idle` wakes pool_drain when nothing is queued or running. */
#include "net/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "core/metrics.h"

#define HOLD_POLL_MS 10

struct pool {
  pthread_mutex_t mu;
  pthread_cond_t more, idle;
  struct pool_job *head, *tail;
  int queued, running, max_queue, nthreads;
  bool stop;           /* threads leave once the queue is empty */
  _Atomic bool ending; /* pool_destroy began: holds let go */
  pthread_t *threads;
  char *name, *hold_path;
  struct metric *m_threads, *m_active, *m_queued, *m_refused, *m_cancelled;
};

static void gauges(struct pool *p) {
  metric_set(p->m_active, p->running);
  metric_set(p->m_queued, p->queued);
}

/* Tests fill a pool without timing: while the hold file exists a job about
 * to run waits here (it counts as running), unless it is cancelled or the
 * pool is being destroyed. A test-only path: polling is fine. */
static void hold(struct pool *p, struct pool_job *j) {
  struct stat st;
  while (!atomic_load(&j->cancelled) && !atomic_load(&p->ending) && stat(p->hold_path, &st) == 0) {
    struct timespec ts = {0, HOLD_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
  }
}

static void unlink_job(struct pool *p, struct pool_job *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    p->head = j->next;
  if (j->next)
    j->next->prev = j->prev;
  else
    p->tail = j->prev;
  j->prev = j->next = NULL;
  j->queued = false;
  p->queued--;
}

static void *worker(void *arg) {
  struct pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->stop)
      pthread_cond_wait(&p->more, &p->mu);
    if (!p->head)
      break; /* stopping, and nothing left */
    struct pool_job *j = p->head;
    unlink_job(p, j);
    p->running++;
    gauges(p);
    pthread_mutex_unlock(&p->mu);
    if (p->hold_path)
      hold(p, j);
    j->run(j, atomic_load(&j->cancelled)); /* j may be gone after this */
    pthread_mutex_lock(&p->mu);
    p->running--;
    gauges(p);
    if (!p->running && !p->queued)
      pthread_cond_broadcast(&p->idle);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int pool_create(struct pool **out, const struct pool_cfg *cfg, struct metrics *m) {
  *out = NULL;
  if (cfg->threads < 1 || cfg->threads > 1024 || cfg->queue < 0 || cfg->queue > 1000000)
    return GROVE_EINVAL;
  struct pool *p = calloc(1, sizeof *p);
  if (!p)
    return GROVE_ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->more, NULL);
  pthread_cond_init(&p->idle, NULL);
  p->max_queue = cfg->queue;
  p->name = strdup(cfg->name ? cfg->name : "pool");
  p->hold_path = cfg->hold_path && *cfg->hold_path ? strdup(cfg->hold_path) : NULL;
  p->threads = calloc((size_t)cfg->threads, sizeof *p->threads);
  if (!p->name || !p->threads || (cfg->hold_path && *cfg->hold_path && !p->hold_path)) {
    pool_destroy(p);
    return GROVE_ENOMEM;
  }
  if (m) {
#define FAMILY(fname, fhelp, ftype) metrics_family(m, fname, fhelp, ftype, "pool"), p->name
    p->m_threads = metric_get(FAMILY("grove_pool_threads", "Threads of a worker pool.", METRIC_GAUGE));
    p->m_active = metric_get(FAMILY("grove_pool_active", "Jobs a worker pool is running now.", METRIC_GAUGE));
    p->m_queued = metric_get(FAMILY("grove_pool_queued", "Jobs waiting for a thread of a worker pool.",
                                    METRIC_GAUGE));
    p->m_refused = metric_get(FAMILY("grove_pool_refused_total",
                                     "Jobs refused (503) because the pool's queue was full.",
                                     METRIC_COUNTER));
    p->m_cancelled = metric_get(FAMILY("grove_pool_cancelled_total",
                                       "Queued jobs dropped before they ran because their client went away.",
                                       METRIC_COUNTER));
#undef FAMILY
    metric_set(p->m_threads, cfg->threads);
  }
  for (int i = 0; i < cfg->threads; i++) {
    if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
      pool_destroy(p);
      return GROVE_ENOMEM;
    }
    p->nthreads++;
  }
  *out = p;
  return 0;
}

void pool_drain(struct pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->running || p->queued)
    pthread_cond_wait(&p->idle, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void pool_destroy(struct pool *p) {
  if (!p)
    return;
  atomic_store(&p->ending, true);
  if (p->nthreads)
    pool_drain(p);
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->more);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  free(p->threads);
  free(p->name);
  free(p->hold_path);
  pthread_cond_destroy(&p->idle);
  pthread_cond_destroy(&p->more);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int pool_submit(struct pool *p, struct pool_job *j) {
  pthread_mutex_lock(&p->mu);
  /* a free thread takes the job at once; otherwise it waits if there is
   * room: jobs queued beyond the idle threads are the ones waiting */
  if (p->stop || p->queued - (p->nthreads - p->running) >= p->max_queue) {
    pthread_mutex_unlock(&p->mu);
    metric_add(p->m_refused, 1);
    return GROVE_EBUSY;
  }
  atomic_store(&j->cancelled, false);
  j->queued = true;
  j->next = NULL;
  j->prev = p->tail;
  if (p->tail)
    p->tail->next = j;
  else
    p->head = j;
  p->tail = j;
  p->queued++;
  gauges(p);
  pthread_cond_signal(&p->more);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

bool pool_cancel(struct pool *p, struct pool_job *j) {
  atomic_store(&j->cancelled, true);
  pthread_mutex_lock(&p->mu);
  bool was_queued = j->queued;
  if (was_queued) {
    unlink_job(p, j);
    gauges(p);
    if (!p->running && !p->queued)
      pthread_cond_broadcast(&p->idle);
  }
  pthread_mutex_unlock(&p->mu);
  if (was_queued)
    metric_add(p->m_cancelled, 1);
  return was_queued;
}

const char *pool_name(const struct pool *p) { return p->name; }
