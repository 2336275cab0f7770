/* jobs.h — durable background jobs: named queues with priorities, leases
 * with fencing tokens, retries with exponential backoff and full jitter,
 * dead letters, cancellation and progress (docs/jobs.md).
 *
 * Jobs live in the platform store (store/store.h, tables jobs_*): SQLite
 * by default, PostgreSQL with --store postgres://…, where several
 * instances share the queue and claim with FOR UPDATE SKIP LOCKED. One
 * interface for both.
 *
 * Invariants:
 * - An enqueue that returned 0 is committed (group commit: concurrent
 *   enqueues, and the writes that end attempts, share one transaction,
 *   and each caller returns only after it committed; SQLite runs with
 *   synchronous=FULL), so it survives kill -9.
 * - A job is held by at most one attempt at a time: a claim takes a lease
 *   (until lease_until, Unix ms) and a fencing token, which grows by one
 *   with every claim of that job. Renewal, progress, completion and
 *   failure are accepted only with the current token while the job is
 *   running; a stale attempt (its lease expired, the job re-queued or
 *   claimed again) is refused with GROVE_EPERM. So a job is recorded
 *   succeeded at most once, while execution is at least once.
 * - A lease is re-queued (or dead-lettered, when its attempts are spent)
 *   only after it expired, never while its holder renews it.
 *
 * States: queued → running → succeeded | failed (waiting for a retry at
 * run_at; claimed again like queued) | dead (attempts spent, or a
 * permanent error) | cancelled. Times are Unix milliseconds (int64).
 *
 * Thread-safety: every call may be made from any thread; the calls below
 * marked "blocking" use the store and must not run on an event loop. */
#ifndef GROVE_JOBS_H
#define GROVE_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "store/store.h"

struct jobs;
struct jobs_run;
struct broker;
struct hub;
struct metrics;
struct router;

#define JOBS_ID_LEN 33 /* 32 lowercase hex characters and a NUL */

enum jobs_state {
  JOBS_QUEUED,
  JOBS_RUNNING,
  JOBS_SUCCEEDED,
  JOBS_FAILED,    /* an attempt failed; queued again for run_at */
  JOBS_DEAD,      /* in the dead-letter list with its last error */
  JOBS_CANCELLED,
};
/* "queued", "running", … (static). */
const char *jobs_state_name(enum jobs_state s);

struct jobs_cfg {
  uint64_t lease_ms;        /* --jobs-lease: a claim's lease (renewed at a third) */
  uint64_t poll_ms;         /* --jobs-poll: how often idle workers look for work */
  uint64_t backoff_base_ms; /* --jobs-backoff-base: first retry's cap */
  uint64_t backoff_max_ms;  /* --jobs-backoff-max: cap of every retry */
  int max_attempts;         /* --jobs-max-attempts: for types that give none */
  char *concurrency;        /* --jobs-concurrency: "queue=N,…" (running jobs per
                             * queue in this process; "default" for the rest) */
  int batch;                /* --jobs-batch: jobs and writes committed together at most */
  uint64_t retention_ms;    /* --jobs-retention: succeeded and cancelled jobs
                             * are deleted this long after they finished
                             * (0: kept); dead ones are kept */
  bool workers;             /* --jobs-workers: run handlers in this process */
};

extern const struct cfg_opt jobs_cfg_opts[];
extern const size_t jobs_cfg_nopts;

/* The jobs_* tables: apply with store_migrate(st, "jobs", …) before
 * jobs_create. */
extern const struct store_migration jobs_migrations[];
extern const size_t jobs_nmigrations;

/* ---- job types (apps declare them in their table, app/app.h) ------------ */

enum jobs_outcome {
  JOBS_DONE = 0,      /* succeeded: the result set with jobs_result, if any */
  JOBS_RETRY = 1,     /* failed (jobs_error says why); retried after a backoff
                       * while attempts remain, else dead */
  JOBS_PERMANENT = 2, /* failed for good: dead at once */
};
/* Runs one attempt on a worker thread. `arg` is the app's state. The
 * handler may block; it calls jobs_check() or jobs_progress() now and then
 * and returns soon after either says stop (cancelled, lease lost, or the
 * process stopping). */
typedef enum jobs_outcome (*jobs_handler)(struct jobs_run *run, void *arg);

struct jobs_type {
  const char *type;    /* "notes.extract": unique in the process */
  const char *queue;   /* "ocr", "ai", "generation" or another name */
  jobs_handler handler;
  int max_attempts;    /* 0: --jobs-max-attempts */
};

/* Queue priorities (seed 004): ocr high (0), ai medium (1), generation
 * low (2); any other queue medium. Workers fill higher priorities first. */
int jobs_queue_priority(const char *queue);

/* ---- life --------------------------------------------------------------- */

/* Opens the queue on st (migrated). hub (may be NULL) receives progress
 * on "jobs/{id}"; m (may be NULL) the jobs metrics. Starts the group
 * commit thread; workers start with jobs_start. With a hub, adds the rule
 * of the topics jobs/{id}: read by the task's owner (jobs_owns) or an
 * admin, published by the server only. On error, *out is NULL, err says
 * why: GROVE_EINVAL (a bad --jobs-concurrency), GROVE_ENOMEM, the store's
 * error (reading the task id key), or the hub's (a second rule for jobs/). */
int jobs_create(struct jobs **out, const struct jobs_cfg *cfg, struct store *st,
                struct hub *hub, struct metrics *m, char *err, size_t errlen);
/* Wakes the workers of every instance when jobs land, not only this
 * one's: after each group commit that added jobs, a message on the
 * broker channel "grove:jobs" (at most once: an instance that misses it
 * finds the jobs at its next --jobs-poll), and a message from another
 * instance wakes this one's dispatcher. Before broker_start and
 * jobs_start. Returns 0 or broker_subscribe's error. */
int jobs_attach_broker(struct jobs *j, struct broker *b);
/* Stops workers (jobs_stop with no wait) and frees. NULL is fine. */
void jobs_destroy(struct jobs *j);

/* The clock (Unix ms) and the random source of the backoff's jitter:
 * tests set them; NULL fields keep the defaults. Before jobs_start. */
struct jobs_clock {
  int64_t (*now_ms)(void *arg);
  uint64_t (*random)(void *arg);
  void *arg;
};
void jobs_set_clock(struct jobs *j, const struct jobs_clock *c);

/* Registers job types with the handlers' argument. Before jobs_start.
 * Returns 0, or GROVE_EEXIST (a type already registered: err names it),
 * GROVE_EINVAL (an empty type or queue, no handler), GROVE_ENOMEM. */
int jobs_register(struct jobs *j, const struct jobs_type *types, size_t n, void *arg,
                  char *err, size_t errlen);

/* ---- enqueue (blocking) ------------------------------------------------- */

struct jobs_new {
  const char *type;     /* a registered type */
  const char *payload;  /* a JSON value's text; NULL: {} */
  const char *owner;    /* the user or key id that owns it (reads, cancel) */
  const char *idem_key; /* NULL or a key: the same owner and key give the
                         * same job, whatever the rest says */
  int64_t run_at_ms;    /* 0: now */
};
/* Adds a job and returns once it is committed. OUT: id, *existed (may be
 * NULL) true when idem_key named an existing job (id is that job's).
 * Returns 0, GROVE_EINVAL (unknown type, payload not JSON, bad field: err
 * says which), GROVE_ECLOSED (shutting down), or the store's error. */
int jobs_enqueue(struct jobs *j, const struct jobs_new *nj, char id[JOBS_ID_LEN],
                 bool *existed, char *err, size_t errlen);
#define JOBS_BATCH_MAX 4096
/* Adds nj[0..n-1] (n 1 to JOBS_BATCH_MAX) in one transaction and returns
 * once it is committed: all of them or none (a bad job fails the batch
 * before anything is written; err names its index). OUT: ids[i],
 * existed[i] (existed may be NULL) as jobs_enqueue's. Returns as
 * jobs_enqueue. The caller keeps nj. */
int jobs_enqueue_batch(struct jobs *j, const struct jobs_new *nj, size_t n,
                       char (*ids)[JOBS_ID_LEN], bool *existed, char *err, size_t errlen);

/* ---- leases (blocking; the workers use these, and so may other runtimes) */

struct jobs_claim {
  char id[JOBS_ID_LEN];
  char type[64];
  char queue[32];
  char owner[64];
  char *payload;        /* owned; jobs_claim_release frees it */
  int attempt;          /* 1 for the first */
  int max_attempts;
  int64_t token;        /* the fencing token of this attempt */
  int64_t ready_ms;     /* when it became runnable (run_at) */
  int64_t lease_until_ms;
};
void jobs_claim_release(struct jobs_claim *c);

/* Claims the next runnable job of `queue` (oldest run_at first) for
 * `worker` (a name for people). Returns 0 with *out filled, GROVE_ENOENT
 * when none is runnable, or the store's error. */
int jobs_claim(struct jobs *j, const char *queue, const char *worker, struct jobs_claim *out);
/* Claims up to max (≥ 1) runnable jobs of `queue` in one statement (one
 * transaction). OUT: out[0..*n-1] (each released by the caller). Returns
 * 0 (*n may be less than asked, and 0 when memory ran out: those leases
 * expire and are retried), GROVE_ENOENT when none is runnable,
 * GROVE_EINVAL, or the store's error. */
int jobs_claim_batch(struct jobs *j, const char *queue, const char *worker, int max,
                     struct jobs_claim *out, int *n);
/* Extends the lease to now + --jobs-lease. OUT: *cancel (may be NULL)
 * true when a cancel was asked. Returns 0, GROVE_EPERM (the token is not
 * the job's current running attempt: stop), or the store's error. */
int jobs_renew(struct jobs *j, const char *id, int64_t token, bool *cancel);
/* Stores progress (pct clamped to 0–100, msg may be NULL), renews the
 * lease and publishes {"id","state","progress","message"} on jobs/{id}.
 * Returns as jobs_renew. */
int jobs_report(struct jobs *j, const char *id, int64_t token, int pct, const char *msg,
                bool *cancel);
/* Ends the attempt c: succeeded with result (JSON text or NULL), or
 * failed with error (retried after jobs_backoff_ms while attempts remain
 * and !permanent; else dead), or cancelled (after a cancel was asked), or
 * handed back (queued again now, the attempt not counted: a stopping
 * worker). Each returns 0, GROVE_EPERM (fenced: a stale attempt; nothing
 * changed), or the store's error. OUT (fail): *state_out (may be NULL). */
int jobs_complete(struct jobs *j, const struct jobs_claim *c, const char *result);
int jobs_fail(struct jobs *j, const struct jobs_claim *c, const char *error, bool permanent,
              enum jobs_state *state_out);
int jobs_finish_cancelled(struct jobs *j, const struct jobs_claim *c);
int jobs_hand_back(struct jobs *j, const struct jobs_claim *c);
/* Settles running jobs whose lease expired: cancelled if a cancel was
 * asked, dead when their attempts are spent, else failed with a backoff
 * (error "lease expired"). OUT: *n (may be NULL) how many. */
int jobs_reap(struct jobs *j, int *n);

/* The retry delay after `attempt` failed attempts (1, 2, …): full jitter,
 * uniform in [0, min(max, base * 2^(attempt-1))] from rnd. Pure. */
uint64_t jobs_backoff_ms(uint64_t base_ms, uint64_t max_ms, int attempt, uint64_t rnd);

/* ---- reading and managing (blocking) ------------------------------------ */

/* Retention: deletes succeeded and cancelled jobs that finished more than
 * --jobs-retention ago (by the jobs clock), at most 1,000 per statement
 * until none is left; dead, queued, failed and running jobs stay. Runs
 * every minute after jobs_start (any role), and may be called directly.
 * OUT: *n (may be NULL) how many were deleted. Returns 0 (nothing to do
 * when retention is 0), or the store's error. */
int jobs_sweep(struct jobs *j, long long *n);

/* The job as {"task_id","type","queue","state","progress":{"percent",
 * "message"},"attempts","max_attempts","owner","created_at","run_at",
 * "started_at","finished_at","result","error","cancel_requested"} (times
 * RFC 3339, null when not yet). OUT: *out (caller's ref). Returns 0,
 * GROVE_ENOENT, or the store's error. */
int jobs_get(struct jobs *j, const char *id, json_t **out);
/* Whether `owner` (a user or key id) owns task `id`: a task id carries a
 * tag signed with a key kept in the database (jobs_meta), so this needs no
 * lookup and holds on every instance. Pure; any thread. */
bool jobs_owns(const struct jobs *j, const char *owner, const char *id);
/* Asks to cancel: a queued or failed job is cancelled at once; a running
 * one is marked and its handler stops at its next check. `owner` (NULL:
 * any) must own it. OUT: *state the state after. Returns 0, GROVE_ENOENT
 * (none, or not owner's), GROVE_EEXIST (already finished: *state says). */
int jobs_cancel(struct jobs *j, const char *id, const char *owner, enum jobs_state *state);
/* Queues a dead or cancelled job again with its attempts reset. Returns
 * 0, GROVE_ENOENT, GROVE_EEXIST (not dead or cancelled). */
int jobs_retry(struct jobs *j, const char *id);
/* Per queue: [{"queue","priority","depth" (queued and failed),"oldest_age_s"
 * (of the runnable ones, 0 when none),"running","dead"}], every queue of a
 * registered type and every queue with unfinished or dead jobs (finished ones
 * are not counted: the scan covers only the state index's live part). */
int jobs_queues(struct jobs *j, json_t **out);
/* Dead jobs, newest first, at most limit (1–1000), as jobs_get's objects. */
int jobs_dead(struct jobs *j, int limit, json_t **out);

/* ---- workers ------------------------------------------------------------ */

/* Starts the retention sweep, and the dispatcher and the worker threads
 * (one per concurrency slot) when --jobs-workers is on. Returns 0 or a
 * GROVE_E* code. */
int jobs_start(struct jobs *j);
/* Graceful stop: no new claims; running handlers see jobs_check() true
 * and have until timeout_ms to return; those still running then are
 * handed back (queued again, attempt not counted) and their late results
 * are refused by the fence. Waits for the group commit queue to empty.
 * Safe to call twice. */
void jobs_stop(struct jobs *j, uint64_t timeout_ms);

/* ---- inside a handler (the run is valid until the handler returns) ------ */

const char *jobs_run_id(const struct jobs_run *run);
const char *jobs_run_type(const struct jobs_run *run);
const char *jobs_run_owner(const struct jobs_run *run);
const char *jobs_run_payload(const struct jobs_run *run); /* JSON text */
int jobs_run_attempt(const struct jobs_run *run);
/* True when the handler should stop now: the job was cancelled, its lease
 * was lost, or the process is stopping. Reads flags; no I/O. */
bool jobs_check(struct jobs_run *run);
/* Reports progress (jobs_report). Returns 0, or GROVE_ECLOSED when the
 * handler should stop (as jobs_check). Blocking. */
int jobs_progress(struct jobs_run *run, int pct, const char *msg);
/* Sets the result (JSON text, copied) or the error (text, copied) that the
 * attempt records when the handler returns. */
int jobs_result(struct jobs_run *run, const char *json);
void jobs_error(struct jobs_run *run, const char *msg);

/* ---- HTTP --------------------------------------------------------------- */

/* GET and DELETE /tasks/{task_id} (the owner or an admin), GET
 * /api/v1/jobs/queues, GET /api/v1/jobs/dead and POST
 * /api/v1/jobs/{task_id}/retry (admins). Returns 0 or a GROVE_E* code
 * with err saying why. */
int jobs_routes(struct jobs *j, struct router *r, char *err, size_t errlen);

#endif
