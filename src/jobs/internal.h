/* internal.h — what the files of src/jobs/ share: the queue's state.
 * queue.c keeps the store side (tables, group commit, leases), worker.c
 * the dispatcher and the worker threads, api.c the HTTP routes. */
#ifndef GROVE_JOBS_INTERNAL_H
#define GROVE_JOBS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "jobs/jobs.h"

#define JOBS_MAX_QUEUES 32

struct jobs_type_entry {
  struct jobs_type t;   /* strings point into the app's static table */
  void *arg;
  int max_attempts;     /* resolved */
};

struct jobs_queue_stat {
  char name[32];
  int priority;
  int limit;            /* running at most in this process */
  int running;          /* under jobs->wlock */
  bool handled;         /* a registered type runs in it: workers claim from it */
  /* prefetch (worker.c, under jobs->wlock): claimed jobs waiting for a
   * slot of this queue, oldest first, a ring of rcap (2 × limit) */
  struct jobs_ready *ready;
  int rhead, nready, rcap;
  struct metric *enqueued, *started, *succeeded, *failed, *dead, *depth, *wait, *run;
};

struct pool;
struct periodic;
struct jobs_pending; /* an enqueue waiting for its commit (queue.c) */
struct jobs_slot;    /* a worker thread's job (worker.c) */
struct jobs_ready;   /* a prefetched claim (worker.c) */

struct jobs {
  struct jobs_cfg cfg;
  struct store *st;
  struct hub *hub;
  struct metrics *m;
  struct broker *broker;         /* NULL: no other instance to wake */
  bool pg;                       /* SKIP LOCKED is spoken */
  unsigned char id_key[32];      /* signs task ids with their owner (jobs_meta) */
  struct jobs_clock clock;

  struct jobs_type_entry *types;
  size_t ntypes, captypes;
  struct jobs_queue_stat queues[JOBS_MAX_QUEUES];
  int nqueues;
  int default_limit;

  /* group commit */
  pthread_mutex_t glock;
  pthread_cond_t gwake, gdone;   /* gdone: gasync fell to 0 */
  struct jobs_pending *ghead, *gtail;
  int gasync;                    /* async completions queued or committing */
  bool gclosing;
  pthread_t committer;
  bool committer_started;

  /* workers (worker.c) */
  pthread_mutex_t wlock;
  pthread_cond_t wwake;          /* a slot freed (jobs_stop waits on it) */
  bool wstarted, wstopped;
  bool workers_left;             /* handlers outlived jobs_stop: j is not freed */
  struct pool *pool;
  atomic_bool stopping;          /* handlers' jobs_check */
  struct periodic *dispatcher;   /* under wlock: jobs_wake reads it */
  struct periodic *sweeper;      /* retention (jobs_sweep) */
  struct periodic *keeper;       /* reaping and depth gauges, every reap period */
  struct jobs_slot *slots;
  struct jobs_claim *claims;     /* the dispatcher's batch (2 × nslots) */
  int nslots;
  char worker_name[96];
};

int64_t jobs_now(struct jobs *j);
/* The queue's stats entry, made on first use (NULL when full). */
struct jobs_queue_stat *jobs_queue_stat(struct jobs *j, const char *queue);
const struct jobs_type_entry *jobs_type_find(const struct jobs *j, const char *type);
/* Records c succeeded with result (owned: freed here) in the next group
 * commit without waiting for it; the committer then counts, publishes,
 * or logs a refusal by the fence. Returns 0 (queued), GROVE_ECLOSED
 * (stopping: nothing recorded) or GROVE_ENOMEM. */
int jobs_complete_async(struct jobs *j, const struct jobs_claim *c, char *result);
/* Waits until every async completion queued so far is committed. */
void jobs_drain(struct jobs *j);
/* Wakes the dispatcher (an enqueue landed, a slot freed). */
void jobs_wake(struct jobs *j);
/* Publishes the job's state on jobs/{id} (no-op without a hub). */
void jobs_publish(struct jobs *j, const char *id, const char *state, int pct, const char *msg);
/* Updates the per-queue depth gauges from the store. */
void jobs_update_depth(struct jobs *j);

#endif
