/* worker.c — the workers: one dispatcher (a core/periodic.h thread, woken
 * at once by an enqueue here or elsewhere, a slot that frees or a prefetch
 * running low, else every --jobs-poll) claims runnable jobs, highest
 * priority queue first, as many as have room in one statement, and hands
 * them to worker threads (a net/pool.h pool with one thread per slot),
 * where the type's handler runs; each queue runs at most its concurrency
 * limit at once. It claims up to that limit again ahead (the prefetch), so
 * a slot that finishes takes its next job from memory at once while the
 * dispatcher claims more: no commit and no thread switch between two jobs
 * of a busy queue. A success is recorded in the next group commit without
 * holding the slot (jobs_complete_async), so the completions of many slots
 * share one statement and one commit. The dispatcher also
 * renews the leases of running jobs (every third of --jobs-lease: the
 * heartbeat, so a handler never has to), passes on cancels it learns of
 * while renewing, and settles expired leases of any instance (the
 * reaper). Handlers learn of cancels, lost leases and shutdown through
 * jobs_check() and jobs_progress(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/periodic.h"
#include "core/util.h"
#include "jobs/internal.h"
#include "net/pool.h"

struct jobs_run {
  struct jobs *j;
  struct jobs_claim c;
  const struct jobs_type_entry *te;
  atomic_bool cancel; /* a cancel was asked */
  atomic_bool lost;   /* the lease is no longer ours: nothing will be recorded */
  char *result;
  char error[512];
};

/* Slots the dispatcher starts per queue and pass at most (the rest at the
 * next pass, which a started slot's end brings). */
#define JOBS_MAX_SLOTS_START 256

/* A claim waiting in a queue's prefetch: its lease is renewed like a
 * running one's; a cancel learnt meanwhile ends it without a run. */
struct jobs_ready {
  struct jobs_claim c;
  int64_t next_renew;
  bool cancel;
};

struct jobs_slot {
  struct pool_job pj;
  struct jobs *j;
  struct jobs_queue_stat *q;
  bool busy;          /* under wlock */
  int64_t next_renew; /* dispatcher's */
  int64_t started_ms;
  struct jobs_run run;
};

void jobs_wake(struct jobs *j) {
  pthread_mutex_lock(&j->wlock);
  if (j->dispatcher)
    periodic_wake(j->dispatcher);
  pthread_mutex_unlock(&j->wlock);
}

/* ---- inside a handler --------------------------------------------------- */

const char *jobs_run_id(const struct jobs_run *run) { return run->c.id; }
const char *jobs_run_type(const struct jobs_run *run) { return run->c.type; }
const char *jobs_run_owner(const struct jobs_run *run) { return run->c.owner; }
const char *jobs_run_payload(const struct jobs_run *run) { return run->c.payload; }
int jobs_run_attempt(const struct jobs_run *run) { return run->c.attempt; }

bool jobs_check(struct jobs_run *run) {
  return atomic_load(&run->cancel) || atomic_load(&run->lost) || atomic_load(&run->j->stopping);
}

int jobs_progress(struct jobs_run *run, int pct, const char *msg) {
  bool cancel = false;
  int rc = jobs_report(run->j, run->c.id, run->c.token, pct, msg, &cancel);
  if (rc == GROVE_EPERM)
    atomic_store(&run->lost, true);
  if (cancel)
    atomic_store(&run->cancel, true);
  return jobs_check(run) ? GROVE_ECLOSED : 0;
}

int jobs_result(struct jobs_run *run, const char *json) {
  char *copy = json ? strdup(json) : NULL;
  if (json && !copy)
    return GROVE_ENOMEM;
  free(run->result);
  run->result = copy;
  return 0;
}

void jobs_error(struct jobs_run *run, const char *msg) {
  snprintf(run->error, sizeof run->error, "%s", msg ? msg : "");
}

/* ---- a worker thread ---------------------------------------------------- */

/* Records the outcome of the attempt through the fence. */
static void record(struct jobs *j, struct jobs_run *run, enum jobs_outcome o) {
  const struct jobs_claim *c = &run->c;
  int rc;
  const char *what;
  if (atomic_load(&run->cancel) && o != JOBS_DONE) {
    what = "cancelled";
    rc = jobs_finish_cancelled(j, c);
  } else if (atomic_load(&j->stopping) && o != JOBS_DONE) {
    what = "handed back";
    rc = jobs_hand_back(j, c);
  } else if (o == JOBS_DONE) {
    /* recorded by the committer, which logs a refusal; the slot is free */
    rc = jobs_complete_async(j, c, run->result);
    run->result = NULL;
    if (rc)
      log_error(NULL, "cannot record a job's outcome; its lease will expire",
                "id=%s error=\"%s\"", c->id, grove_strerror(rc));
    return;
  } else {
    what = o == JOBS_PERMANENT ? "failed permanently" : "failed";
    rc = jobs_fail(j, c, run->error[0] ? run->error : "the handler failed",
                   o == JOBS_PERMANENT, NULL);
  }
  if (rc == GROVE_EPERM)
    log_warn(NULL, "job outcome refused: the lease was lost to another attempt",
             "id=%s type=%s attempt=%d token=%lld outcome=\"%s\"", c->id, c->type, c->attempt,
             (long long)c->token, what);
  else if (rc)
    log_error(NULL, "cannot record a job's outcome; its lease will expire",
              "id=%s error=\"%s\"", c->id, grove_strerror(rc));
}

/* Moves the oldest prefetched claim of q into slot s (under wlock). */
static void take_ready(struct jobs *j, struct jobs_slot *s, struct jobs_queue_stat *q,
                       int64_t now) {
  struct jobs_ready *r = &q->ready[q->rhead];
  q->rhead = (q->rhead + 1) % q->rcap;
  q->nready--;
  memset(&s->run, 0, sizeof s->run);
  s->run.j = j;
  s->run.c = r->c;
  s->run.te = jobs_type_find(j, r->c.type);
  atomic_store(&s->run.cancel, r->cancel);
  s->q = q;
  s->started_ms = now;
  s->next_renew = r->next_renew;
}

/* Runs the slot's job, then the next prefetched ones of its queue while
 * there are any, then frees the slot. */
static void slot_run(struct pool_job *pj, bool cancelled) {
  struct jobs_slot *s = (struct jobs_slot *)pj;
  struct jobs *j = s->j;
  struct jobs_run *run = &s->run;
  (void)cancelled; /* slots are never cancelled in the pool */
  for (;;) {
    if (!run->te) {
      jobs_fail(j, &run->c, "no handler for this job type in this process", true, NULL);
    } else if (atomic_load(&run->cancel)) {
      record(j, run, JOBS_RETRY); /* cancelled while it waited: recorded, not run */
    } else {
      enum jobs_outcome o = run->te->t.handler(run, run->te->arg);
      if (o != JOBS_DONE && o != JOBS_RETRY && o != JOBS_PERMANENT)
        o = JOBS_RETRY;
      record(j, run, o);
    }
    free(run->result);
    run->result = NULL;
    jobs_claim_release(&run->c);
    pthread_mutex_lock(&j->wlock);
    struct jobs_queue_stat *q = s->q;
    if (q->nready > 0 && !atomic_load(&j->stopping)) {
      take_ready(j, s, q, jobs_now(j));
      if (q->nready <= q->rcap / 4 && j->dispatcher) /* claim more meanwhile */
        periodic_wake(j->dispatcher);
      pthread_mutex_unlock(&j->wlock);
      continue;
    }
    s->busy = false;
    q->running--;
    if (j->dispatcher)
      periodic_wake(j->dispatcher);
    pthread_cond_broadcast(&j->wwake); /* jobs_stop waits for slots */
    pthread_mutex_unlock(&j->wlock);
    return;
  }
}

/* ---- the dispatcher ----------------------------------------------------- */

static int by_priority(const void *a, const void *b) {
  const struct jobs_queue_stat *x = *(struct jobs_queue_stat *const *)a;
  const struct jobs_queue_stat *y = *(struct jobs_queue_stat *const *)b;
  return x->priority - y->priority;
}

static struct jobs_slot *free_slot(struct jobs *j) {
  for (int i = 0; i < j->nslots; i++)
    if (!j->slots[i].busy)
      return &j->slots[i];
  return NULL;
}

/* Renews the leases that are due, of running and prefetched claims: a
 * refused renewal marks a run lost and drops a prefetched claim (the
 * reaper took it); a cancel learnt is passed on. */
static void renew_due(struct jobs *j, int64_t now) {
  int64_t every = (int64_t)j->cfg.lease_ms / 3;
  for (;;) {
    char id[JOBS_ID_LEN];
    int64_t token = 0;
    bool due = false;
    pthread_mutex_lock(&j->wlock);
    for (int i = 0; i < j->nslots && !due; i++) {
      struct jobs_slot *s = &j->slots[i];
      if ((due = s->busy && now >= s->next_renew)) {
        memcpy(id, s->run.c.id, sizeof id);
        token = s->run.c.token;
        s->next_renew = now + every;
      }
    }
    for (int k = 0; k < j->nqueues && !due; k++) {
      struct jobs_queue_stat *q = &j->queues[k];
      for (int i = 0; i < q->nready && !due; i++) {
        struct jobs_ready *r = &q->ready[(q->rhead + i) % q->rcap];
        if ((due = now >= r->next_renew)) {
          memcpy(id, r->c.id, sizeof id);
          token = r->c.token;
          r->next_renew = now + every;
        }
      }
    }
    pthread_mutex_unlock(&j->wlock);
    if (!due)
      return;
    bool cancel = false;
    int rc = jobs_renew(j, id, token, &cancel);
    pthread_mutex_lock(&j->wlock);
    for (int i = 0; i < j->nslots; i++) {
      struct jobs_slot *s = &j->slots[i];
      if (s->busy && s->run.c.token == token && strcmp(s->run.c.id, id) == 0) {
        if (rc == GROVE_EPERM)
          atomic_store(&s->run.lost, true);
        if (cancel)
          atomic_store(&s->run.cancel, true);
      }
    }
    for (int k = 0; k < j->nqueues; k++) {
      struct jobs_queue_stat *q = &j->queues[k];
      for (int i = 0; i < q->nready; i++) {
        struct jobs_ready *r = &q->ready[(q->rhead + i) % q->rcap];
        if (r->c.token != token || strcmp(r->c.id, id) != 0)
          continue;
        r->cancel |= cancel;
        if (rc == GROVE_EPERM) { /* lost: out of the ring, the rest moved up */
          jobs_claim_release(&r->c);
          for (int m = i; m + 1 < q->nready; m++)
            q->ready[(q->rhead + m) % q->rcap] = q->ready[(q->rhead + m + 1) % q->rcap];
          q->nready--;
        }
        break;
      }
    }
    pthread_mutex_unlock(&j->wlock);
  }
}

/* Claims for every queue with room and a handler here, highest priority
 * first, as many as it has room for in one statement. */
static void claim_all(struct jobs *j, int64_t now) {
  struct jobs_queue_stat *order[JOBS_MAX_QUEUES];
  int n = 0;
  for (int i = 0; i < j->nqueues; i++)
    if (j->queues[i].handled)
      order[n++] = &j->queues[i];
  qsort(order, (size_t)n, sizeof order[0], by_priority);
  int64_t renew_at = now + (int64_t)j->cfg.lease_ms / 3;
  for (int i = 0; i < n && !atomic_load(&j->stopping); i++) {
    struct jobs_queue_stat *q = order[i];
    /* room: a running slot and a prefetched job for each of the limit */
    pthread_mutex_lock(&j->wlock);
    int room = q->limit + q->rcap / 2 - q->running - q->nready;
    pthread_mutex_unlock(&j->wlock);
    int got = 0;
    if (room > 0 && jobs_claim_batch(j, q->name, j->worker_name, room, j->claims, &got))
      got = 0; /* none runnable (or the store failed: the next pass tries again) */
    /* into the ring, then into every slot the queue may still fill */
    struct jobs_slot *start[JOBS_MAX_SLOTS_START];
    int nstart = 0;
    pthread_mutex_lock(&j->wlock);
    for (int c = 0; c < got; c++) {
      struct jobs_ready *r = &q->ready[(q->rhead + q->nready) % q->rcap];
      *r = (struct jobs_ready){j->claims[c], renew_at, false};
      q->nready++; /* room kept it within rcap: only this thread adds */
    }
    while (q->nready > 0 && q->running < q->limit && nstart < JOBS_MAX_SLOTS_START) {
      struct jobs_slot *s = free_slot(j); /* there is one: Σ limits slots */
      if (!s)
        break;
      s->busy = true;
      q->running++;
      take_ready(j, s, q, now);
      s->pj.run = slot_run;
      start[nstart++] = s;
    }
    pthread_mutex_unlock(&j->wlock);
    for (int k = 0; k < nstart; k++)
      pool_submit(j->pool, &start[k]->pj); /* a thread per slot: never full */
  }
}

/* Now + ms on CLOCK_REALTIME (pthread_cond_timedwait's clock). */
static struct timespec deadline(uint64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

/* The reap period: about a second, at most a quarter of a lease. */
static uint64_t reap_period(const struct jobs *j) {
  uint64_t every = j->cfg.lease_ms / 4;
  return every > 1000 ? 1000 : every ? every : 1;
}

/* One pass of the dispatcher: renew due leases, claim. Returns the wait
 * until the next pass unless woken: --jobs-poll, at most a third of a
 * lease. Reaping and the depth gauges are the keeper's (below): a scan
 * of the table never stands between an enqueue and its start. */
static uint64_t dispatch(void *arg) {
  struct jobs *j = arg;
  uint64_t wait_ms = j->cfg.poll_ms;
  if (j->cfg.lease_ms / 3 < wait_ms)
    wait_ms = j->cfg.lease_ms / 3;
  if (atomic_load(&j->stopping))
    return wait_ms;
  int64_t now = jobs_now(j);
  renew_due(j, now);
  claim_all(j, now);
  return wait_ms ? wait_ms : 1;
}

/* The keeper, every reap period: expired leases back to their queues (a
 * job freed wakes the dispatcher), and the depth gauges refreshed. */
static uint64_t keep(void *arg) {
  struct jobs *j = arg;
  if (atomic_load(&j->stopping))
    return 0;
  int n = 0;
  if (!jobs_reap(j, &n) && n > 0)
    jobs_wake(j);
  jobs_update_depth(j);
  return 0;
}

/* Retention, every minute. */
static uint64_t sweep(void *arg) {
  struct jobs *j = arg;
  long long n = 0;
  int rc = jobs_sweep(j, &n);
  if (rc)
    log_warn(NULL, "jobs retention sweep failed", "error=\"%s\"", grove_strerror(rc));
  else if (n)
    log_info(NULL, "finished jobs past retention deleted", "jobs=%lld", n);
  return 0;
}

static int start_workers(struct jobs *j);

static void free_rings(struct jobs *j) {
  for (int i = 0; i < j->nqueues; i++) {
    free(j->queues[i].ready);
    j->queues[i].ready = NULL;
    j->queues[i].rcap = j->queues[i].nready = 0;
  }
}

/* Hands every prefetched claim back (queued again, the attempt not
 * counted): stopping. */
static void hand_back_ready(struct jobs *j) {
  for (int k = 0; k < j->nqueues; k++) {
    struct jobs_queue_stat *q = &j->queues[k];
    for (;;) {
      pthread_mutex_lock(&j->wlock);
      if (!q->nready) {
        pthread_mutex_unlock(&j->wlock);
        break;
      }
      struct jobs_claim c = q->ready[q->rhead].c;
      q->rhead = (q->rhead + 1) % q->rcap;
      q->nready--;
      pthread_mutex_unlock(&j->wlock);
      if (jobs_hand_back(j, &c))
        log_warn(NULL, "cannot hand a prefetched job back; its lease will expire", "id=%s",
                 c.id);
      jobs_claim_release(&c);
    }
  }
}

int jobs_start(struct jobs *j) {
  if (j->wstarted)
    return 0;
  if (j->cfg.retention_ms && !j->sweeper) {
    int rc = periodic_start(&j->sweeper, 60000, sweep, j);
    if (rc)
      return rc;
  }
  return j->cfg.workers ? start_workers(j) : 0;
}

static int start_workers(struct jobs *j) {
  int n = 0;
  for (int i = 0; i < j->nqueues; i++)
    n += j->queues[i].handled ? j->queues[i].limit : 0;
  if (n == 0)
    return 0; /* no job type here */
  j->slots = calloc((size_t)n, sizeof *j->slots);
  j->claims = calloc((size_t)n * 2, sizeof *j->claims);
  bool ok = j->slots && j->claims;
  for (int i = 0; ok && i < j->nqueues; i++) {
    struct jobs_queue_stat *q = &j->queues[i];
    if (!q->handled)
      continue;
    q->rcap = 2 * q->limit;
    q->rhead = q->nready = 0;
    ok = (q->ready = calloc((size_t)q->rcap, sizeof *q->ready)) != NULL;
  }
  if (!ok) {
    free_rings(j);
    free(j->slots);
    free(j->claims);
    j->slots = NULL;
    j->claims = NULL;
    return GROVE_ENOMEM;
  }
  j->nslots = n;
  for (int i = 0; i < n; i++)
    j->slots[i].j = j;
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  snprintf(j->worker_name, sizeof j->worker_name, "%s:%d", host, (int)getpid());
  struct pool_cfg pc = {.name = "jobs", .threads = n, .queue = n};
  int rc = pool_create(&j->pool, &pc, j->m);
  struct periodic *d = NULL;
  if (!rc && (rc = periodic_start(&d, 1, dispatch, j)))
    pool_destroy(j->pool);
  if (!rc && (rc = periodic_start(&j->keeper, reap_period(j), keep, j))) {
    periodic_stop(d);
    d = NULL;
    pool_destroy(j->pool);
  }
  if (!rc)
    periodic_wake(j->keeper); /* leases a crash left behind: reaped at once */
  pthread_mutex_lock(&j->wlock);
  j->dispatcher = d;
  pthread_mutex_unlock(&j->wlock);
  if (rc) {
    j->pool = NULL;
    free_rings(j);
    free(j->slots);
    free(j->claims);
    j->slots = NULL;
    j->claims = NULL;
    j->nslots = 0;
    return rc;
  }
  j->wstarted = true;
  log_info(NULL, "job workers started", "worker=%s slots=%d", j->worker_name, n);
  return 0;
}

static int busy_count(struct jobs *j) {
  int n = 0;
  for (int i = 0; i < j->nslots; i++)
    n += j->slots[i].busy;
  return n;
}

void jobs_stop(struct jobs *j, uint64_t timeout_ms) {
  periodic_stop(j->sweeper);
  j->sweeper = NULL;
  if (!j->wstarted || j->wstopped)
    return;
  j->wstopped = true;
  atomic_store(&j->stopping, true);
  pthread_mutex_lock(&j->wlock);
  struct periodic *d = j->dispatcher;
  j->dispatcher = NULL;
  pthread_mutex_unlock(&j->wlock);
  periodic_stop(d);
  periodic_stop(j->keeper);
  j->keeper = NULL;
  struct timespec ts = deadline(timeout_ms);
  pthread_mutex_lock(&j->wlock);
  while (busy_count(j) > 0)
    if (pthread_cond_timedwait(&j->wwake, &j->wlock, &ts) == ETIMEDOUT)
      break;
  int left = busy_count(j);
  pthread_mutex_unlock(&j->wlock);
  hand_back_ready(j); /* slots take no more: stopping */
  jobs_drain(j);      /* the successes already returned are committed */
  if (left == 0) {
    pool_destroy(j->pool);
    j->pool = NULL;
    free_rings(j);
    free(j->slots);
    free(j->claims);
    j->slots = NULL;
    j->claims = NULL;
    j->nslots = 0;
    return;
  }
  /* Handlers that did not return in time: their jobs go back to the queue
   * now (another worker may take them at once; the fence refuses these
   * attempts' late outcomes). Their threads and slots are left to the
   * process's exit. */
  for (int i = 0; i < j->nslots; i++) {
    struct jobs_slot *s = &j->slots[i];
    pthread_mutex_lock(&j->wlock);
    bool busy = s->busy;
    struct jobs_claim c = s->run.c;
    pthread_mutex_unlock(&j->wlock);
    if (!busy)
      continue;
    atomic_store(&s->run.lost, true);
    c.payload = NULL;
    int rc = jobs_hand_back(j, &c);
    log_warn(NULL, "job handler did not stop in time; its job is handed back",
             "id=%s type=%s handed_back=%s", c.id, c.type, rc ? "no" : "yes");
  }
  j->workers_left = true;
}
