/* pool.h — a pool of worker threads with a bounded queue, for blocking
 * work that must stay off the event loops.
 *
 * The HTTP server keeps three (http.h, http_req_defer): short store work,
 * CPU-heavy work and long waits, so that one kind of work filling its
 * threads cannot hold up another. Each pool refuses a job at once when its
 * queue is full (the caller answers 503) rather than queueing without
 * bound.
 *
 * A job is a struct pool_job the caller embeds in its own allocation and
 * owns: the pool links it into its queue and calls run on one of its
 * threads; from the moment run starts, the pool touches the job no more,
 * so run may free it or hand it to another thread.
 *
 * Invariant: queued + running jobs never pass threads + queue.
 * Thread-safe: submit, cancel, drain and the gauges from any thread. */
#ifndef GROVE_NET_POOL_H
#define GROVE_NET_POOL_H

#include <stdatomic.h>
#include <stdbool.h>

struct metrics;
struct pool;

struct pool_job {
  struct pool_job *prev, *next; /* the queue (the pool's; under its lock) */
  void (*run)(struct pool_job *j, bool cancelled); /* on a pool thread */
  _Atomic bool cancelled;       /* set by pool_cancel */
  bool queued;                  /* the pool's */
};

struct pool_cfg {
  const char *name;       /* "store", "cpu", "wait": the metrics' pool label */
  int threads;            /* 1 to 1024 */
  int queue;              /* jobs that may wait for a thread: 0 to 1000000 */
  const char *hold_path;  /* tests: while this file exists a job about to run
                             waits (counted as running); NULL or "": off */
};

/* Starts the threads. Gauges and counters go to m (may be NULL):
 * grove_pool_threads, grove_pool_active, grove_pool_queued (gauges),
 * grove_pool_refused_total, grove_pool_cancelled_total (counters), each
 * with the label pool="<name>". Returns 0, GROVE_EINVAL (a size out of
 * range) or GROVE_ENOMEM. */
int pool_create(struct pool **out, const struct pool_cfg *cfg, struct metrics *m);
/* Waits for every queued and running job (pool_drain), then stops the
 * threads and frees the pool. NULL is fine. */
void pool_destroy(struct pool *p);

/* Queues j (j->run set). A free thread takes it at once; else it waits if
 * fewer than `queue` jobs are waiting. Returns 0, or GROVE_EBUSY (the
 * queue is full: j is untouched and run will never be called). */
int pool_submit(struct pool *p, struct pool_job *j);
/* Asks j not to run. Returns true when j was still queued: it has left the
 * queue and run will never be called (the caller finishes it). Returns
 * false when run has started or is about to: run is called with
 * cancelled true if it had not begun the work (a held job), else the work
 * goes on. Call only while j is known not to be freed (before run hands it
 * back). */
bool pool_cancel(struct pool *p, struct pool_job *j);
/* Blocks until no job is queued or running (a condition variable, no
 * polling). Jobs submitted meanwhile are waited for too. */
void pool_drain(struct pool *p);

const char *pool_name(const struct pool *p);

#endif
