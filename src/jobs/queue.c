/* queue.c — the store side of the job queue: the jobs_jobs table, group
 * commit of enqueues, claims under leases with fencing tokens, retries,
 * dead letters, cancellation and the admin reads.
 *
 * Every statement that ends or extends an attempt is guarded by
 * "id = $id AND token = $token AND state = 'running'": that guard is the
 * fence. Claims on PostgreSQL take the row with FOR UPDATE SKIP LOCKED,
 * so instances sharing a database never wait on each other's claims;
 * SQLite serialises writers anyway. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "broker/broker.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/gate.h"
#include "hub/hub.h"
#include "jobs/internal.h"

const struct cfg_opt jobs_cfg_opts[] = {
    CFG_OPT(struct jobs_cfg, "jobs-lease", CFG_MS, lease_ms, "30s", "lease of a claimed job; renewed every third of it while its handler runs"),
    CFG_OPT(struct jobs_cfg, "jobs-poll", CFG_MS, poll_ms, "200ms", "how often idle workers look for runnable jobs (enqueues here wake them at once)"),
    CFG_OPT(struct jobs_cfg, "jobs-backoff-base", CFG_MS, backoff_base_ms, "1s", "retry delay cap after the first failure (doubles per attempt, full jitter)"),
    CFG_OPT(struct jobs_cfg, "jobs-backoff-max", CFG_MS, backoff_max_ms, "10m", "largest retry delay"),
    CFG_OPT(struct jobs_cfg, "jobs-max-attempts", CFG_INT, max_attempts, "5", "attempts of a job whose type sets none, then it is dead"),
    CFG_OPT(struct jobs_cfg, "jobs-concurrency", CFG_STR, concurrency, "ocr=2,ai=2,generation=4,default=4", "running jobs per queue in this process: queue=N,…"),
    CFG_OPT(struct jobs_cfg, "jobs-batch", CFG_INT, batch, "1024", "jobs and writes committed in one transaction at most (group commit)"),
    CFG_OPT(struct jobs_cfg, "jobs-retention", CFG_MS, retention_ms, "7d", "succeeded and cancelled jobs are deleted this long after they finished (0: kept; dead jobs are kept)"),
    CFG_OPT(struct jobs_cfg, "jobs-workers", CFG_BOOL, workers, "true", "run job handlers in this process"),
};
const size_t jobs_cfg_nopts = ARRAY_LEN(jobs_cfg_opts);

static const char JOBS_V1[] =
    "CREATE TABLE jobs_jobs ("
    " id TEXT PRIMARY KEY,"
    " queue TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " owner TEXT NOT NULL,"
    " idem_key TEXT,"
    " payload TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL,"
    " token BIGINT NOT NULL DEFAULT 0,"
    " run_at BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " started_at BIGINT,"
    " finished_at BIGINT,"
    " lease_until BIGINT,"
    " worker TEXT,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " progress INTEGER NOT NULL DEFAULT 0,"
    " message TEXT,"
    " result TEXT,"
    " error TEXT);"
    "CREATE UNIQUE INDEX jobs_jobs_idem ON jobs_jobs (owner, idem_key);"
    "CREATE INDEX jobs_jobs_ready ON jobs_jobs (queue, state, run_at);"
    "CREATE INDEX jobs_jobs_lease ON jobs_jobs (state, lease_until)";

/* Claims read runnable jobs of a queue in run_at order and stop at their
 * LIMIT: an index over exactly those rows, in that order, keeps a claim's
 * cost flat however many jobs have finished or wait. */
static const char JOBS_V2[] =
    "DROP INDEX jobs_jobs_ready;"
    "CREATE INDEX jobs_jobs_runnable ON jobs_jobs (queue, run_at, created_at, id) "
    "WHERE state IN ('queued', 'failed');"
    "CREATE INDEX jobs_jobs_state ON jobs_jobs (state, queue)";

/* The key that binds task ids to their owners (jobs_owns), shared by
 * every instance on the database. */
static const char JOBS_V3[] = "CREATE TABLE jobs_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)";

/* Retention deletes finished jobs oldest first: an index over exactly
 * those it may delete. */
static const char JOBS_V4[] = "CREATE INDEX jobs_jobs_finished ON jobs_jobs (finished_at) "
                              "WHERE state IN ('succeeded', 'cancelled')";

const struct store_migration jobs_migrations[] = {
    {1, "jobs_jobs", JOBS_V1, NULL},
    {2, "jobs_jobs_runnable", JOBS_V2, NULL},
    {3, "jobs_meta", JOBS_V3, NULL},
    {4, "jobs_jobs_finished", JOBS_V4, NULL},
};
const size_t jobs_nmigrations = ARRAY_LEN(jobs_migrations);

static const char *const state_names[] = {"queued", "running", "succeeded",
                                          "failed", "dead",    "cancelled"};

const char *jobs_state_name(enum jobs_state s) {
  return (unsigned)s < ARRAY_LEN(state_names) ? state_names[s] : "unknown";
}

static enum jobs_state state_parse(const char *s) {
  for (size_t i = 0; s && i < ARRAY_LEN(state_names); i++)
    if (strcmp(s, state_names[i]) == 0)
      return (enum jobs_state)i;
  return JOBS_QUEUED;
}

int jobs_queue_priority(const char *queue) {
  if (strcmp(queue, "ocr") == 0)
    return 0;
  if (strcmp(queue, "generation") == 0)
    return 2;
  return 1;
}

/* ---- clock and helpers -------------------------------------------------- */

static int64_t wall_now(void *arg) {
  (void)arg;
  return (int64_t)clock_wall_ms();
}

static uint64_t splitmix(void *arg) {
  (void)arg;
  static _Thread_local uint64_t state;
  if (!state) {
    char hex[17];
    id_hex(hex, sizeof hex);
    state = strtoull(hex, NULL, 16) | 1;
  }
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int64_t jobs_now(struct jobs *j) { return j->clock.now_ms(j->clock.arg); }

void jobs_set_clock(struct jobs *j, const struct jobs_clock *c) {
  j->clock.now_ms = c->now_ms ? c->now_ms : wall_now;
  j->clock.random = c->random ? c->random : splitmix;
  j->clock.arg = c->arg;
}

uint64_t jobs_backoff_ms(uint64_t base_ms, uint64_t max_ms, int attempt, uint64_t rnd) {
  uint64_t cap = base_ms;
  for (int i = 1; i < attempt && cap < max_ms; i++)
    cap = cap > UINT64_MAX / 2 ? UINT64_MAX : cap * 2;
  if (cap > max_ms)
    cap = max_ms;
  return cap == UINT64_MAX ? rnd : rnd % (cap + 1);
}

#define I64(buf, v) snprintf((buf), sizeof(buf), "%" PRId64, (int64_t)(v))

static long long row_ll(const struct store_rows *r, int row, const char *col) {
  const char *v = store_rows_get(r, row, col);
  return v ? strtoll(v, NULL, 10) : 0;
}

static void copy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

/* Runs sql with params on a pooled connection; *changes (may be NULL) the
 * rows it changed. */
static int submit_write(struct jobs *j, const char *sql, const char *const *params, int n,
                        struct store_rows **rows, long long *changed);

/* Runs sql on a pooled connection now. */
static int exec_direct(struct jobs *j, const char *sql, const char *const *p, int n,
                       struct store_rows **rows, long long *changes) {
  char err[256];
  struct store_rows *r = NULL;
  int rc = store_query(j->st, sql, p, n, &r, err, sizeof err);
  if (rc) {
    log_error(NULL, "jobs: database error", "error=\"%s\"", err);
    return rc;
  }
  if (changes)
    *changes = r->changes;
  if (rows)
    *rows = r;
  else
    store_rows_free(r);
  return 0;
}

/* Runs sql with params. Reads go straight to a pooled connection; so do
 * writes on PostgreSQL. On SQLite writes go through the committer, so
 * that in this process one thread writes (no lock waits between the
 * queue's own writers) and concurrent writes share a commit. *changes
 * (may be NULL) the rows it changed. */
static int exec(struct jobs *j, const char *sql, const char *const *p, int n,
                struct store_rows **rows, long long *changes) {
  if (strncmp(sql, "SELECT", 6) != 0)
    return submit_write(j, sql, p, n, rows, changes);
  return exec_direct(j, sql, p, n, rows, changes);
}

/* ---- queues and types --------------------------------------------------- */

struct jobs_queue_stat *jobs_queue_stat(struct jobs *j, const char *queue) {
  for (int i = 0; i < j->nqueues; i++)
    if (strcmp(j->queues[i].name, queue) == 0)
      return &j->queues[i];
  if (j->nqueues == JOBS_MAX_QUEUES || strlen(queue) >= sizeof j->queues[0].name)
    return NULL;
  struct jobs_queue_stat *q = &j->queues[j->nqueues++];
  memset(q, 0, sizeof *q);
  copy(q->name, sizeof q->name, queue);
  q->priority = jobs_queue_priority(queue);
  q->limit = j->default_limit;
  if (j->m) {
    struct metric_family *f;
#define CNT(field, name, help)                                                           \
  f = metrics_family(j->m, name, help, METRIC_COUNTER, "queue");                         \
  q->field = f ? metric_get(f, queue) : NULL;
    CNT(enqueued, "grove_jobs_enqueued_total", "jobs enqueued (committed)")
    CNT(started, "grove_jobs_started_total", "attempts started")
    CNT(succeeded, "grove_jobs_succeeded_total", "jobs recorded succeeded")
    CNT(failed, "grove_jobs_failed_total", "attempts failed (retried or dead)")
    CNT(dead, "grove_jobs_dead_total", "jobs moved to the dead-letter list")
#undef CNT
    f = metrics_family(j->m, "grove_jobs_queue_depth", "runnable or waiting jobs (queued, failed)",
                       METRIC_GAUGE, "queue");
    q->depth = f ? metric_get(f, queue) : NULL;
    static const double waits[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                   0.5,   1,      2.5,   5,    10,    30,   60,  300};
    f = metrics_histogram(j->m, "grove_jobs_wait_seconds",
                          "from runnable (enqueued or retry time) to an attempt's start",
                          "queue", waits, ARRAY_LEN(waits));
    q->wait = f ? metric_get(f, queue) : NULL;
    static const double runs[] = {0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600};
    f = metrics_histogram(j->m, "grove_jobs_run_seconds", "an attempt's run time", "queue",
                          runs, ARRAY_LEN(runs));
    q->run = f ? metric_get(f, queue) : NULL;
  }
  return q;
}

static void count(struct metric *c) {
  if (c)
    metric_add(c, 1);
}

const struct jobs_type_entry *jobs_type_find(const struct jobs *j, const char *type) {
  for (size_t i = 0; i < j->ntypes; i++)
    if (strcmp(j->types[i].t.type, type) == 0)
      return &j->types[i];
  return NULL;
}

int jobs_register(struct jobs *j, const struct jobs_type *types, size_t n, void *arg,
                  char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    const struct jobs_type *t = &types[i];
    if (!t->type || !*t->type || strlen(t->type) >= 64 || !t->queue || !*t->queue ||
        strlen(t->queue) >= 32 || !t->handler) {
      snprintf(err, errlen, "bad job type '%s': a type (< 64 bytes), a queue (< 32) and a handler",
               t->type ? t->type : "");
      return GROVE_EINVAL;
    }
    if (jobs_type_find(j, t->type)) {
      snprintf(err, errlen, "job type '%s' registered twice", t->type);
      return GROVE_EEXIST;
    }
    struct jobs_queue_stat *q = jobs_queue_stat(j, t->queue);
    if (!q) {
      snprintf(err, errlen, "too many job queues (at most %d)", JOBS_MAX_QUEUES);
      return GROVE_EINVAL;
    }
    if (j->ntypes == j->captypes) {
      size_t cap = j->captypes ? j->captypes * 2 : 8;
      struct jobs_type_entry *nt = realloc(j->types, cap * sizeof *nt);
      if (!nt)
        return GROVE_ENOMEM;
      j->types = nt;
      j->captypes = cap;
    }
    q->handled = true;
    j->types[j->ntypes++] = (struct jobs_type_entry){
        *t, arg, t->max_attempts > 0 ? t->max_attempts : j->cfg.max_attempts};
  }
  return 0;
}

/* "ocr=2,ai=2,default=4" */
static int parse_concurrency(struct jobs *j, const char *spec, char *err, size_t errlen) {
  j->default_limit = 4;
  char buf[512];
  copy(buf, sizeof buf, spec);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ')
      tok++;
    char *eq = strchr(tok, '=');
    char *end = NULL;
    long n = eq ? strtol(eq + 1, &end, 10) : 0;
    if (!eq || eq == tok || !end || *end || n < 1 || n > 256) {
      snprintf(err, errlen, "bad --jobs-concurrency '%s': use queue=N,… with N 1 to 256", spec);
      return GROVE_EINVAL;
    }
    *eq = '\0';
    if (strcmp(tok, "default") == 0) {
      j->default_limit = (int)n;
      for (int i = 0; i < j->nqueues; i++)
        j->queues[i].limit = (int)n;
      continue;
    }
    struct jobs_queue_stat *q = jobs_queue_stat(j, tok);
    if (!q) {
      snprintf(err, errlen, "bad --jobs-concurrency: too many queues or a name too long");
      return GROVE_EINVAL;
    }
    q->limit = (int)n;
  }
  return 0;
}

static void observe_run(struct jobs *j, const struct jobs_claim *c, struct metric *counter) {
  struct jobs_queue_stat *q = jobs_queue_stat(j, c->queue);
  if (!q)
    return;
  count(counter);
  int64_t started = c->lease_until_ms - (int64_t)j->cfg.lease_ms;
  int64_t now = jobs_now(j);
  if (q->run)
    metric_observe(q->run, (double)(now > started ? now - started : 0) / 1000.0);
}

/* What a recorded success does besides its row: counts, the run-time
 * histogram and the live event. */
static void succeeded(struct jobs *j, const struct jobs_claim *c) {
  struct jobs_queue_stat *q = jobs_queue_stat(j, c->queue);
  observe_run(j, c, q ? q->succeeded : NULL);
  jobs_publish(j, c->id, "succeeded", 100, NULL);
}

/* ---- group commit ------------------------------------------------------- */

/* A write waiting for the next group commit, of one of three kinds:
 * - P_ENQUEUE: n new jobs (inserted many rows to a statement);
 * - P_SUCCEED: a fenced completion (many to one UPDATE … FROM VALUES);
 * - P_WRITE: any other statement (claims, renewals, failures), alone.
 * A synchronous one lives on its caller's stack and the caller waits on
 * its cv until done; an async one (a worker's completion) is on the heap
 * and the committer finishes and frees it. */
enum pending_kind { P_ENQUEUE, P_SUCCEED, P_WRITE };

struct jobs_pending {
  struct jobs_pending *next;
  enum pending_kind kind;
  bool async;
  pthread_cond_t cv;
  /* P_WRITE */
  const char *sql;
  const char *const *params;
  int nparams;
  bool want_rows;
  struct store_rows *rows;
  long long changed; /* P_WRITE and P_SUCCEED */
  /* P_ENQUEUE */
  const struct jobs_new *nj;
  const struct jobs_type_entry **te;
  size_t n;
  char (*ids)[JOBS_ID_LEN];
  bool *existed;
  /* P_SUCCEED: the attempt (payload NULL) and its result (owned when async) */
  struct jobs_claim c;
  char *result;
  struct jobs_pending *later; /* a second completion of an id in one batch */
  bool done;
  int rc;
  char err[256];
};

/* A task id: 16 random hex characters, then 16 of HMAC-SHA256(id_key,
 * random ":" owner), so that whether a caller owns a task is known from
 * the id alone, on any instance, with no lookup (the hub's topic rule for
 * jobs/{id} answers from memory). */
static void owner_tag(const struct jobs *j, const char *rnd, const char *owner, char out[17]) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  char msg[160];
  int n = snprintf(msg, sizeof msg, "%.16s:%s", rnd, owner);
  HMAC(EVP_sha256(), j->id_key, sizeof j->id_key, (const unsigned char *)msg,
       (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1), mac, &len);
  for (int i = 0; i < 8; i++)
    snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static void make_id(const struct jobs *j, const char *owner, char id[JOBS_ID_LEN]) {
  id_hex(id, 17);
  owner_tag(j, id, owner, id + 16);
}

bool jobs_owns(const struct jobs *j, const char *owner, const char *id) {
  if (!owner || !id || strlen(id) != JOBS_ID_LEN - 1)
    return false;
  char tag[17];
  owner_tag(j, id, owner, tag);
  return ct_equal(tag, 16, id + 16, 16);
}

/* Loads the id key, made once per database. */
static int load_id_key(struct jobs *j, char *err, size_t errlen) {
  char fresh[65];
  rand_hex(fresh, sizeof fresh);
  const char *p[] = {"id_key", fresh};
  struct store_rows *r = NULL;
  int rc = store_query(j->st, "INSERT INTO jobs_meta (key, value) VALUES ($1, $2) "
                              "ON CONFLICT (key) DO NOTHING", p, 2, NULL, err, errlen);
  if (!rc)
    rc = store_query(j->st, "SELECT value FROM jobs_meta WHERE key = $1", p, 1, &r, err, errlen);
  if (!rc) {
    const char *v = r->nrows ? r->values[0] : NULL;
    if (!v || strlen(v) != 64) {
      snprintf(err, errlen, "jobs_meta holds no usable id key");
      rc = GROVE_ESTORE;
    } else {
      for (int i = 0; i < 32; i++) {
        char byte[3] = {v[2 * i], v[2 * i + 1], 0};
        j->id_key[i] = (unsigned char)strtoul(byte, NULL, 16);
      }
    }
  }
  store_rows_free(r);
  return rc;
}

/* Rows of one multi-row statement at most: 64 enqueues are 449 bound
 * values, under both SQLite's and PostgreSQL's limits. */
#define MULTI_ROWS 64

struct enq_row {
  struct jobs_pending *p;
  size_t i;
};

/* Inserts job i of p alone, with its idempotency key, in the open
 * transaction of c: the same owner and key give the row already there. */
static int insert_keyed(struct jobs *j, struct store_conn *c, struct jobs_pending *p, size_t i) {
  const struct jobs_new *nj = &p->nj[i];
  const struct jobs_type_entry *te = p->te[i];
  char *out = p->ids[i];
  struct store_rows *rows = NULL;
  const char *q[] = {nj->owner, nj->idem_key};
  int rc = store_exec(c, "SELECT id FROM jobs_jobs WHERE owner = $1 AND idem_key = $2", q, 2,
                      &rows, p->err, sizeof p->err);
  if (rc)
    return rc;
  if (rows->nrows) {
    copy(out, JOBS_ID_LEN, rows->values[0]);
    p->existed[i] = true;
    store_rows_free(rows);
    return 0;
  }
  store_rows_free(rows);
  char id[JOBS_ID_LEN], max[16], run_at[24], now[24];
  make_id(j, nj->owner, id);
  int64_t t = jobs_now(j);
  I64(now, t);
  I64(run_at, nj->run_at_ms > 0 ? nj->run_at_ms : t);
  I64(max, te->max_attempts);
  const char *v[] = {id, te->t.queue, nj->type, nj->owner, nj->idem_key,
                     nj->payload ? nj->payload : "{}", max, run_at, now};
  rc = store_exec(c,
                  "INSERT INTO jobs_jobs (id, queue, type, owner, idem_key, payload, state, "
                  "max_attempts, run_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', "
                  "$7, $8, $9) ON CONFLICT (owner, idem_key) DO NOTHING",
                  v, 9, &rows, p->err, sizeof p->err);
  if (rc)
    return rc;
  long long changed = rows->changes;
  store_rows_free(rows);
  if (changed == 1) {
    copy(out, JOBS_ID_LEN, id);
    return 0;
  }
  /* another instance committed the same key meanwhile */
  rc = store_exec(c, "SELECT id FROM jobs_jobs WHERE owner = $1 AND idem_key = $2", q, 2, &rows,
                  p->err, sizeof p->err);
  if (rc)
    return rc;
  rc = rows->nrows ? 0 : GROVE_ESTORE;
  if (!rc) {
    copy(out, JOBS_ID_LEN, rows->values[0]);
    p->existed[i] = true;
  } else
    snprintf(p->err, sizeof p->err, "job neither inserted nor found");
  store_rows_free(rows);
  return rc;
}

/* Inserts jobs without idempotency keys, n (≤ MULTI_ROWS) in one INSERT. */
static int insert_rows(struct jobs *j, struct store_conn *c, const struct enq_row *rows, int n) {
  char sql[160 + MULTI_ROWS * 64];
  const char *params[1 + MULTI_ROWS * 7];
  char nums[MULTI_ROWS][2][24], now[24];
  int64_t t = jobs_now(j);
  I64(now, t);
  params[0] = now;
  size_t len = (size_t)snprintf(sql, sizeof sql,
                                "INSERT INTO jobs_jobs (id, queue, type, owner, payload, state, "
                                "max_attempts, run_at, created_at) VALUES ");
  for (int k = 0; k < n; k++) {
    struct jobs_pending *p = rows[k].p;
    size_t i = rows[k].i;
    const struct jobs_new *nj = &p->nj[i];
    make_id(j, nj->owner, p->ids[i]);
    I64(nums[k][0], p->te[i]->max_attempts);
    I64(nums[k][1], nj->run_at_ms > 0 ? nj->run_at_ms : t);
    const char **v = &params[1 + k * 7];
    v[0] = p->ids[i];
    v[1] = p->te[i]->t.queue;
    v[2] = nj->type;
    v[3] = nj->owner;
    v[4] = nj->payload ? nj->payload : "{}";
    v[5] = nums[k][0];
    v[6] = nums[k][1];
    int b = 2 + k * 7;
    len += (size_t)snprintf(sql + len, sizeof sql - len,
                            "%s($%d, $%d, $%d, $%d, $%d, 'queued', $%d, $%d, $1)", k ? ", " : "",
                            b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6);
  }
  struct jobs_pending *first = rows[0].p;
  return store_exec(c, sql, params, 1 + n * 7, NULL, first->err, sizeof first->err);
}

/* Records n (≤ MULTI_ROWS) attempts succeeded in one fenced UPDATE, each
 * with its own id and token; sets each one's `changed` (0: fenced). The
 * ids are distinct (the caller makes sure). */
static int succeed_rows(struct jobs *j, struct store_conn *c, struct jobs_pending **ps, int n) {
  char sql[320 + MULTI_ROWS * 48];
  const char *params[1 + MULTI_ROWS * 3];
  char toks[MULTI_ROWS][24], now[24];
  I64(now, jobs_now(j));
  params[0] = now;
  size_t len = (size_t)snprintf(sql, sizeof sql,
                                "UPDATE jobs_jobs SET state = 'succeeded', result = v.column3, "
                                "finished_at = $1, lease_until = NULL, progress = 100, "
                                "error = NULL FROM (VALUES ");
  for (int k = 0; k < n; k++) {
    I64(toks[k], ps[k]->c.token);
    params[1 + k * 3] = ps[k]->c.id;
    params[2 + k * 3] = toks[k];
    params[3 + k * 3] = ps[k]->result;
    ps[k]->changed = 0;
    int b = 2 + k * 3;
    len += (size_t)snprintf(sql + len, sizeof sql - len, "%s($%d, CAST($%d AS BIGINT), $%d)",
                            k ? ", " : "", b, b + 1, b + 2);
  }
  snprintf(sql + len, sizeof sql - len,
           ") AS v WHERE id = v.column1 AND token = v.column2 AND state = 'running' "
           "RETURNING id");
  struct store_rows *r = NULL;
  int rc = store_exec(c, sql, params, 1 + n * 3, &r, ps[0]->err, sizeof ps[0]->err);
  if (rc)
    return rc;
  for (int i = 0; i < r->nrows; i++)
    for (int k = 0; k < n; k++)
      if (strcmp(ps[k]->c.id, r->values[i]) == 0)
        ps[k]->changed = 1;
  store_rows_free(r);
  return 0;
}

static int apply_write(struct store_conn *c, struct jobs_pending *p) {
  struct store_rows *r = NULL;
  int rc = store_exec(c, p->sql, p->params, p->nparams, &r, p->err, sizeof p->err);
  if (!rc) {
    p->changed = r->changes;
    if (p->want_rows)
      p->rows = r;
    else
      store_rows_free(r);
  }
  return rc;
}

/* The rows of the next statement when n wait: 64, 16, 4 or 1, so that
 * statements come in four shapes whose texts repeat and the store
 * prepares each once per connection (docs/platform.md, "Store"). */
static int shape(int n) { return n >= MULTI_ROWS ? MULTI_ROWS : n >= 16 ? 16 : n >= 4 ? 4 : 1; }

static int insert_shaped(struct jobs *j, struct store_conn *c, const struct enq_row *rows, int n) {
  int rc = 0;
  for (int at = 0, k; !rc && at < n; at += k)
    rc = insert_rows(j, c, rows + at, k = shape(n - at));
  return rc;
}

static int succeed_shaped(struct jobs *j, struct store_conn *c, struct jobs_pending **ps, int n) {
  int rc = 0;
  for (int at = 0, k; !rc && at < n; at += k)
    rc = succeed_rows(j, c, ps + at, k = shape(n - at));
  return rc;
}

/* Applies a list of writes in the open transaction of c: new jobs first
 * (those without a key many to a statement, then the keyed ones one by
 * one, in order), then completions many to a statement, then the other
 * writes in the order they came. */
static int apply_all(struct jobs *j, struct store_conn *c, struct jobs_pending *list) {
  struct enq_row rows[MULTI_ROWS];
  struct jobs_pending *done[MULTI_ROWS];
  int n = 0, rc = 0;
  for (struct jobs_pending *p = list; !rc && p; p = p->next)
    for (size_t i = 0; p->kind == P_ENQUEUE && !rc && i < p->n; i++) {
      if (p->nj[i].idem_key)
        continue;
      rows[n++] = (struct enq_row){p, i};
      if (n == MULTI_ROWS) {
        rc = insert_rows(j, c, rows, n);
        n = 0;
      }
    }
  if (!rc && n)
    rc = insert_shaped(j, c, rows, n);
  for (struct jobs_pending *p = list; !rc && p; p = p->next)
    for (size_t i = 0; p->kind == P_ENQUEUE && !rc && i < p->n; i++)
      if (p->nj[i].idem_key)
        rc = insert_keyed(j, c, p, i);
  /* completions: a second completion of the same id in one statement
   * would read as changed too, so it waits for the next statement */
  struct jobs_pending *rest = NULL, **rest_tail = &rest;
  n = 0;
  for (struct jobs_pending *p = list; !rc && p; p = p->next) {
    if (p->kind != P_SUCCEED)
      continue;
    bool dup = false;
    for (int k = 0; k < n && !dup; k++)
      dup = strcmp(done[k]->c.id, p->c.id) == 0;
    if (dup) {
      *rest_tail = p;
      rest_tail = &p->later;
      continue;
    }
    done[n++] = p;
    if (n == MULTI_ROWS) {
      rc = succeed_rows(j, c, done, n);
      n = 0;
    }
  }
  if (!rc && n)
    rc = succeed_shaped(j, c, done, n);
  *rest_tail = NULL;
  for (struct jobs_pending *p = rest; !rc && p; p = p->later)
    rc = succeed_rows(j, c, &p, 1);
  for (struct jobs_pending *p = list; !rc && p; p = p->next)
    if (p->kind == P_WRITE)
      rc = apply_write(c, p);
  return rc;
}

/* One transaction over list: 0 when it committed. */
static int run_tx(struct jobs *j, struct store_conn *c, struct jobs_pending *list) {
  for (struct jobs_pending *p = list; p; p = p->next) {
    p->err[0] = '\0';
    p->changed = 0;
    if (p->kind == P_WRITE) {
      store_rows_free(p->rows);
      p->rows = NULL;
    }
    for (size_t i = 0; p->kind == P_ENQUEUE && i < p->n; i++)
      p->existed[i] = false;
  }
  int rc = store_begin(c);
  if (rc)
    return rc;
  rc = apply_all(j, c, list);
  if (!rc)
    rc = store_commit(c);
  else
    store_rollback(c);
  return rc;
}

/* Commits a batch in one transaction; when that fails, each write alone,
 * so that one bad write fails only its own caller. A fenced UPDATE that
 * changes no row is not a failure: its caller reads `changed`. */
static void commit_batch(struct jobs *j, struct jobs_pending *batch) {
  struct store_conn *c = NULL;
  int rc = store_acquire(j->st, &c);
  bool together = batch->next != NULL;
  if (!rc && together) {
    rc = run_tx(j, c, batch);
    if (!rc)
      for (struct jobs_pending *p = batch; p; p = p->next)
        p->rc = 0;
  }
  if (rc || !together) {
    for (struct jobs_pending *p = batch; p; p = p->next) {
      if (!c) {
        p->rc = rc;
        snprintf(p->err, sizeof p->err, "no database connection: %s", grove_strerror(rc));
        continue;
      }
      struct jobs_pending *next = p->next;
      p->next = NULL;
      p->rc = run_tx(j, c, p);
      p->next = next;
    }
  }
  if (c)
    store_release(j->st, c);
}

/* After the commit: counts new jobs, and finishes async completions (the
 * metrics and live event of a success, a log line for a fenced one). */
static void finish(struct jobs *j, struct jobs_pending *p) {
  if (p->rc == 0 && p->kind == P_ENQUEUE) {
    for (size_t i = 0; i < p->n; i++) {
      if (p->existed[i])
        continue;
      const struct jobs_queue_stat *q = jobs_queue_stat(j, p->te[i]->t.queue);
      if (q)
        count(q->enqueued);
    }
  }
  if (!p->async)
    return;
  if (p->rc)
    log_error(NULL, "cannot record a job's outcome; its lease will expire",
              "id=%s error=\"%s\"", p->c.id, p->err[0] ? p->err : grove_strerror(p->rc));
  else if (p->changed != 1)
    log_warn(NULL, "job outcome refused: the lease was lost to another attempt",
             "id=%s type=%s attempt=%d token=%lld outcome=\"succeeded\"", p->c.id, p->c.type,
             p->c.attempt, (long long)p->c.token);
  else
    succeeded(j, &p->c);
}

#define JOBS_CHANNEL "grove:jobs"

static void on_jobs_landed(const char *channel, const char *msg, size_t len, void *arg) {
  (void)channel;
  (void)msg;
  (void)len;
  jobs_wake(arg);
}

int jobs_attach_broker(struct jobs *j, struct broker *b) {
  int rc = broker_subscribe(b, JOBS_CHANNEL, on_jobs_landed, j);
  if (!rc)
    j->broker = b;
  return rc;
}

static void *committer(void *arg) {
  struct jobs *j = arg;
  pthread_mutex_lock(&j->glock);
  for (;;) {
    while (!j->ghead && !j->gclosing)
      pthread_cond_wait(&j->gwake, &j->glock);
    if (!j->ghead)
      break;
    /* up to --jobs-batch jobs and writes */
    struct jobs_pending *batch = j->ghead, *last = batch;
    size_t weight = batch->kind == P_ENQUEUE ? batch->n : 1;
    while (last->next && weight < (size_t)j->cfg.batch) {
      last = last->next;
      weight += last->kind == P_ENQUEUE ? last->n : 1;
    }
    j->ghead = last->next;
    if (!j->ghead)
      j->gtail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&j->glock);
    commit_batch(j, batch);
    int nasync = 0;
    bool added = false;
    for (struct jobs_pending *p = batch; p; p = p->next) {
      finish(j, p);
      nasync += p->async;
      added |= p->kind == P_ENQUEUE && p->rc == 0;
    }
    if (added && j->broker) /* the other instances' workers */
      broker_publish(j->broker, JOBS_CHANNEL, "1", 1);
    pthread_mutex_lock(&j->glock);
    for (struct jobs_pending *p = batch, *next; p; p = next) {
      next = p->next;
      if (p->async) {
        free(p->result);
        free(p);
      } else {
        p->done = true;
        pthread_cond_signal(&p->cv);
      }
    }
    if (nasync) {
      j->gasync -= nasync;
      if (!j->gasync)
        pthread_cond_broadcast(&j->gdone);
    }
  }
  pthread_mutex_unlock(&j->glock);
  return NULL;
}

/* Queues p for the committer; a synchronous p is waited for. Returns
 * p->rc (0 for an async p: queued), or GROVE_ECLOSED when the queue is
 * stopping (nothing written; an async p stays the caller's). */
static int submit(struct jobs *j, struct jobs_pending *p) {
  pthread_mutex_lock(&j->glock);
  if (j->gclosing) {
    pthread_mutex_unlock(&j->glock);
    snprintf(p->err, sizeof p->err, "the job queue is stopping");
    return p->rc = GROVE_ECLOSED;
  }
  p->next = NULL;
  if (j->gtail)
    j->gtail->next = p;
  else
    j->ghead = p;
  j->gtail = p;
  pthread_cond_signal(&j->gwake);
  if (p->async) {
    j->gasync++;
    pthread_mutex_unlock(&j->glock);
    return 0;
  }
  pthread_cond_init(&p->cv, NULL);
  while (!p->done)
    pthread_cond_wait(&p->cv, &j->glock);
  pthread_mutex_unlock(&j->glock);
  pthread_cond_destroy(&p->cv);
  return p->rc;
}

void jobs_drain(struct jobs *j) {
  pthread_mutex_lock(&j->glock);
  while (j->gasync > 0)
    pthread_cond_wait(&j->gdone, &j->glock);
  pthread_mutex_unlock(&j->glock);
}

/* A write committed with others. OUT: *rows (may be NULL: not wanted;
 * RETURNING's rows), *changed (may be NULL) the rows it changed. */
static int submit_write(struct jobs *j, const char *sql, const char *const *params, int n,
                        struct store_rows **rows, long long *changed) {
  if (j->pg) { /* PostgreSQL takes concurrent writers without lock waits */
    return exec_direct(j, sql, params, n, rows, changed);
  }
  struct jobs_pending p = {.kind = P_WRITE, .sql = sql, .params = params, .nparams = n,
                           .want_rows = rows != NULL};
  int rc = submit(j, &p);
  if (rc) {
    log_error(NULL, "jobs: database error", "error=\"%s\"", p.err);
    store_rows_free(p.rows);
    return rc;
  }
  if (changed)
    *changed = p.changed;
  if (rows)
    *rows = p.rows;
  return 0;
}

static int write_grouped(struct jobs *j, const char *sql, const char *const *params, int n,
                         long long *changed) {
  return submit_write(j, sql, params, n, NULL, changed);
}

int jobs_enqueue_batch(struct jobs *j, const struct jobs_new *nj, size_t n,
                       char (*ids)[JOBS_ID_LEN], bool *existed, char *err, size_t errlen) {
  if (n < 1 || n > JOBS_BATCH_MAX) {
    snprintf(err, errlen, "a batch holds 1 to %d jobs", JOBS_BATCH_MAX);
    return GROVE_EINVAL;
  }
  const struct jobs_type_entry **te = malloc(n * sizeof *te);
  bool *ex = existed ? existed : calloc(n, sizeof *ex);
  if (!te || !ex) {
    free(te);
    if (!existed)
      free(ex);
    snprintf(err, errlen, "out of memory");
    return GROVE_ENOMEM;
  }
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    char where[32] = ""; /* which job of a batch */
    if (n > 1)
      snprintf(where, sizeof where, " (job %zu)", i);
    te[i] = nj[i].type ? jobs_type_find(j, nj[i].type) : NULL;
    rc = GROVE_EINVAL;
    if (!te[i])
      snprintf(err, errlen, "unknown job type '%s'%s", nj[i].type ? nj[i].type : "", where);
    else if (!nj[i].owner || !*nj[i].owner || strlen(nj[i].owner) >= 64)
      snprintf(err, errlen, "a job needs an owner (< 64 bytes)%s", where);
    else if (nj[i].idem_key && (!*nj[i].idem_key || strlen(nj[i].idem_key) > 255))
      snprintf(err, errlen, "an idempotency key is 1 to 255 bytes%s", where);
    else
      rc = 0;
    if (!rc && nj[i].payload) {
      json_error_t je;
      json_t *v = json_loads(nj[i].payload, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
      if (!v) {
        snprintf(err, errlen, "payload is not JSON%s: %s", where, je.text);
        rc = GROVE_EINVAL;
      }
      json_decref(v);
    }
  }
  if (!rc) {
    struct jobs_pending p = {.kind = P_ENQUEUE, .nj = nj, .te = te, .n = n, .ids = ids,
                             .existed = ex};
    if ((rc = submit(j, &p)))
      snprintf(err, errlen, "%s", p.err[0] ? p.err : grove_strerror(p.rc));
  }
  free(te);
  if (!existed)
    free(ex);
  if (!rc)
    jobs_wake(j);
  return rc;
}

int jobs_enqueue(struct jobs *j, const struct jobs_new *nj, char id[JOBS_ID_LEN],
                 bool *existed, char *err, size_t errlen) {
  bool ex = false;
  int rc = jobs_enqueue_batch(j, nj, 1, (char (*)[JOBS_ID_LEN])id, &ex, err, errlen);
  if (!rc && existed)
    *existed = ex;
  return rc;
}

static bool topic_owns(void *state, const struct gate_principal *who, const char *id) {
  return jobs_owns(state, who->id, id);
}

static enum jobs_outcome noop_handler(struct jobs_run *run, void *arg) {
  (void)run;
  (void)arg;
  return JOBS_DONE;
}

/* ---- life --------------------------------------------------------------- */

int jobs_create(struct jobs **out, const struct jobs_cfg *cfg, struct store *st,
                struct hub *hub, struct metrics *m, char *err, size_t errlen) {
  *out = NULL;
  struct jobs *j = calloc(1, sizeof *j);
  if (!j)
    return GROVE_ENOMEM;
  j->cfg = *cfg;
  if (j->cfg.lease_ms < 100)
    j->cfg.lease_ms = 100;
  if (j->cfg.poll_ms < 1)
    j->cfg.poll_ms = 1;
  if (j->cfg.max_attempts < 1)
    j->cfg.max_attempts = 1;
  if (j->cfg.batch < 1)
    j->cfg.batch = 1;
  if (j->cfg.backoff_max_ms < j->cfg.backoff_base_ms)
    j->cfg.backoff_max_ms = j->cfg.backoff_base_ms;
  j->cfg.concurrency = NULL; /* parsed below; not kept */
  j->st = st;
  j->hub = hub;
  j->m = m;
  j->pg = strcmp(store_driver_name(st), "postgres") == 0;
  jobs_set_clock(j, &(struct jobs_clock){0});
  int rc = parse_concurrency(j, cfg->concurrency ? cfg->concurrency : "", err, errlen);
  if (!rc)
    rc = load_id_key(j, err, errlen);
  if (!rc && hub) {
    /* jobs/{id}: its owner (or an admin) reads it; only the server publishes */
    static const struct hub_topic_rule rule = {"jobs/", HUB_OWNER, HUB_NOBODY, GATE_READ, 0,
                                               topic_owns, NULL};
    rc = hub_topics_add(hub, "jobs", &rule, 1, j, err, errlen);
  }
  if (rc) {
    free(j);
    return rc;
  }
  /* jobs.noop: succeeds at once with no result. What the queue costs by
   * itself (bench/jobs) and a check that workers run, with no app. */
  static const struct jobs_type noop = {"jobs.noop", "default", noop_handler, 0};
  jobs_register(j, &noop, 1, NULL, err, errlen);
  /* the seed's queues always show, even before an app uses them */
  jobs_queue_stat(j, "ocr");
  jobs_queue_stat(j, "ai");
  jobs_queue_stat(j, "generation");
  pthread_mutex_init(&j->glock, NULL);
  pthread_cond_init(&j->gwake, NULL);
  pthread_cond_init(&j->gdone, NULL);
  pthread_mutex_init(&j->wlock, NULL);
  pthread_cond_init(&j->wwake, NULL);
  if (pthread_create(&j->committer, NULL, committer, j)) {
    snprintf(err, errlen, "cannot start the job queue's commit thread");
    jobs_destroy(j);
    return GROVE_ENOMEM;
  }
  j->committer_started = true;
  *out = j;
  return 0;
}

void jobs_destroy(struct jobs *j) {
  if (!j)
    return;
  jobs_stop(j, 0);
  pthread_mutex_lock(&j->glock);
  j->gclosing = true;
  pthread_cond_broadcast(&j->gwake);
  pthread_mutex_unlock(&j->glock);
  if (j->committer_started)
    pthread_join(j->committer, NULL);
  if (j->workers_left)
    return; /* handler threads still use j: the process's exit frees it */
  pthread_mutex_destroy(&j->glock);
  pthread_cond_destroy(&j->gwake);
  pthread_cond_destroy(&j->gdone);
  pthread_mutex_destroy(&j->wlock);
  pthread_cond_destroy(&j->wwake);
  free(j->types);
  free(j);
}

/* ---- leases ------------------------------------------------------------- */

void jobs_claim_release(struct jobs_claim *c) {
  if (c) {
    free(c->payload);
    c->payload = NULL;
  }
}

int jobs_claim_batch(struct jobs *j, const char *queue, const char *worker, int max,
                     struct jobs_claim *out, int *n) {
  *n = 0;
  if (max < 1)
    return GROVE_EINVAL;
  char now[24], until[24];
  int64_t t = jobs_now(j);
  I64(now, t);
  I64(until, t + (int64_t)j->cfg.lease_ms);
  char sql[768];
  snprintf(sql, sizeof sql,
           "UPDATE jobs_jobs SET state = 'running', attempts = attempts + 1, token = token + 1, "
           "lease_until = $3, worker = $4, started_at = $2 WHERE id IN (SELECT id FROM jobs_jobs "
           "WHERE queue = $1 AND state IN ('queued', 'failed') AND run_at <= $2 "
           "ORDER BY run_at, created_at, id LIMIT CAST($5 AS INTEGER)%s) "
           "RETURNING id, type, queue, owner, payload, attempts, max_attempts, token, run_at",
           j->pg ? " FOR UPDATE SKIP LOCKED" : "");
  char lim[16];
  snprintf(lim, sizeof lim, "%d", max);
  const char *p[] = {queue, now, until, worker, lim};
  struct store_rows *r = NULL;
  int rc = exec(j, sql, p, 5, &r, NULL);
  if (rc)
    return rc;
  for (int i = 0; i < r->nrows && *n < max; i++) {
    struct jobs_claim *c = &out[*n];
    memset(c, 0, sizeof *c);
    const char *payload = store_rows_get(r, i, "payload");
    if (!(c->payload = strdup(payload ? payload : "{}")))
      continue; /* out of memory: its lease expires and it is retried */
    copy(c->id, sizeof c->id, store_rows_get(r, i, "id"));
    copy(c->type, sizeof c->type, store_rows_get(r, i, "type"));
    copy(c->queue, sizeof c->queue, store_rows_get(r, i, "queue"));
    copy(c->owner, sizeof c->owner, store_rows_get(r, i, "owner"));
    c->attempt = (int)row_ll(r, i, "attempts");
    c->max_attempts = (int)row_ll(r, i, "max_attempts");
    c->token = row_ll(r, i, "token");
    c->ready_ms = row_ll(r, i, "run_at");
    c->lease_until_ms = t + (int64_t)j->cfg.lease_ms;
    struct jobs_queue_stat *q = jobs_queue_stat(j, c->queue);
    if (q) {
      count(q->started);
      if (q->wait)
        metric_observe(q->wait, (double)(t > c->ready_ms ? t - c->ready_ms : 0) / 1000.0);
    }
    (*n)++;
  }
  rc = r->nrows ? 0 : GROVE_ENOENT;
  store_rows_free(r);
  return rc;
}

int jobs_claim(struct jobs *j, const char *queue, const char *worker, struct jobs_claim *out) {
  int n = 0;
  int rc = jobs_claim_batch(j, queue, worker, 1, out, &n);
  return rc ? rc : n ? 0 : GROVE_ENOMEM;
}

static int renew(struct jobs *j, const char *id, int64_t token, const int *pct, const char *msg,
                 bool *cancel) {
  char tok[24], until[24], pc[8];
  I64(tok, token);
  I64(until, jobs_now(j) + (int64_t)j->cfg.lease_ms);
  struct store_rows *r = NULL;
  int rc;
  if (pct) {
    snprintf(pc, sizeof pc, "%d", *pct);
    const char *p[] = {id, tok, until, pc, msg};
    rc = exec(j,
              "UPDATE jobs_jobs SET lease_until = $3, progress = $4, message = $5 WHERE id = $1 "
              "AND token = $2 AND state = 'running' RETURNING cancel_requested",
              p, 5, &r, NULL);
  } else {
    const char *p[] = {id, tok, until};
    rc = exec(j,
              "UPDATE jobs_jobs SET lease_until = $3 WHERE id = $1 AND token = $2 AND "
              "state = 'running' RETURNING cancel_requested",
              p, 3, &r, NULL);
  }
  if (rc)
    return rc;
  rc = r->nrows ? 0 : GROVE_EPERM;
  if (cancel)
    *cancel = r->nrows && row_ll(r, 0, "cancel_requested") != 0;
  store_rows_free(r);
  return rc;
}

int jobs_renew(struct jobs *j, const char *id, int64_t token, bool *cancel) {
  return renew(j, id, token, NULL, NULL, cancel);
}

int jobs_report(struct jobs *j, const char *id, int64_t token, int pct, const char *msg,
                bool *cancel) {
  pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
  int rc = renew(j, id, token, &pct, msg, cancel);
  if (!rc)
    jobs_publish(j, id, "running", pct, msg);
  return rc;
}

int jobs_complete(struct jobs *j, const struct jobs_claim *c, const char *result) {
  struct jobs_pending p = {.kind = P_SUCCEED, .c = *c, .result = (char *)result};
  p.c.payload = NULL;
  int rc = submit(j, &p);
  if (rc) {
    log_error(NULL, "jobs: database error", "error=\"%s\"", p.err);
    return rc;
  }
  if (p.changed != 1)
    return GROVE_EPERM;
  succeeded(j, c);
  return 0;
}

int jobs_complete_async(struct jobs *j, const struct jobs_claim *c, char *result) {
  struct jobs_pending *p = calloc(1, sizeof *p);
  if (!p) {
    free(result);
    return GROVE_ENOMEM;
  }
  p->kind = P_SUCCEED;
  p->async = true;
  p->c = *c;
  p->c.payload = NULL;
  p->result = result;
  int rc = submit(j, p);
  if (rc) {
    free(result);
    free(p);
  }
  return rc;
}

/* Ends a running attempt as failed/dead/cancelled. `expired` adds the
 * guard that the lease has run out (the reaper, racing a renewal). */
static int settle(struct jobs *j, const char *id, const char *queue, int64_t token, int attempt,
                  int max_attempts, const char *error, bool permanent, bool cancelled,
                  bool expired, enum jobs_state *state_out) {
  int64_t t = jobs_now(j);
  enum jobs_state st = cancelled ? JOBS_CANCELLED
                       : permanent || attempt >= max_attempts ? JOBS_DEAD
                                                               : JOBS_FAILED;
  int64_t run_at = t;
  if (st == JOBS_FAILED)
    run_at = t + (int64_t)jobs_backoff_ms(j->cfg.backoff_base_ms, j->cfg.backoff_max_ms, attempt,
                                          j->clock.random(j->clock.arg));
  char tok[24], now[24], ra[24];
  I64(tok, token);
  I64(now, t);
  I64(ra, run_at);
  const char *p[] = {id, tok, jobs_state_name(st), error, ra, st == JOBS_FAILED ? NULL : now,
                     now};
  char sql[512];
  snprintf(sql, sizeof sql,
           "UPDATE jobs_jobs SET state = $3, error = COALESCE($4, error), run_at = $5, "
           "finished_at = $6, lease_until = NULL WHERE id = $1 AND token = $2 AND "
           "state = 'running'%s",
           expired ? " AND lease_until < $7" : "");
  long long changed = 0;
  int rc = write_grouped(j, sql, p, expired ? 7 : 6, &changed);
  if (rc)
    return rc;
  if (changed != 1)
    return GROVE_EPERM;
  struct jobs_queue_stat *q = jobs_queue_stat(j, queue);
  if (q && st != JOBS_CANCELLED)
    count(q->failed);
  if (q && st == JOBS_DEAD)
    count(q->dead);
  if (state_out)
    *state_out = st;
  jobs_publish(j, id, jobs_state_name(st), -1, error);
  return 0;
}

int jobs_fail(struct jobs *j, const struct jobs_claim *c, const char *error, bool permanent,
              enum jobs_state *state_out) {
  int rc = settle(j, c->id, c->queue, c->token, c->attempt, c->max_attempts,
                  error ? error : "failed", permanent, false, false, state_out);
  if (!rc)
    observe_run(j, c, NULL);
  return rc;
}

int jobs_finish_cancelled(struct jobs *j, const struct jobs_claim *c) {
  int rc = settle(j, c->id, c->queue, c->token, c->attempt, c->max_attempts, NULL, false, true,
                  false, NULL);
  if (!rc)
    observe_run(j, c, NULL);
  return rc;
}

int jobs_hand_back(struct jobs *j, const struct jobs_claim *c) {
  char tok[24], now[24];
  I64(tok, c->token);
  I64(now, jobs_now(j));
  const char *p[] = {c->id, tok, now};
  long long changed = 0;
  int rc = write_grouped(j,
                         "UPDATE jobs_jobs SET state = 'queued', attempts = attempts - 1, "
                         "run_at = $3, lease_until = NULL, worker = NULL WHERE id = $1 AND "
                         "token = $2 AND state = 'running'",
                         p, 3, &changed);
  if (rc)
    return rc;
  if (changed != 1)
    return GROVE_EPERM;
  jobs_publish(j, c->id, "queued", -1, NULL);
  return 0;
}

int jobs_reap(struct jobs *j, int *n) {
  char now[24];
  I64(now, jobs_now(j));
  const char *p[] = {now};
  struct store_rows *r = NULL;
  int done = 0;
  int rc = exec(j,
                "SELECT id, queue, token, attempts, max_attempts, cancel_requested FROM jobs_jobs "
                "WHERE state = 'running' AND lease_until < $1 LIMIT 256",
                p, 1, &r, NULL);
  if (rc)
    return rc;
  for (int i = 0; i < r->nrows; i++) {
    bool cancel = row_ll(r, i, "cancel_requested") != 0;
    int e = settle(j, store_rows_get(r, i, "id"), store_rows_get(r, i, "queue"),
                   row_ll(r, i, "token"), (int)row_ll(r, i, "attempts"),
                   (int)row_ll(r, i, "max_attempts"), "lease expired", false, cancel, true, NULL);
    if (!e) {
      done++;
      log_warn(NULL, "job lease expired", "id=%s queue=%s attempt=%lld",
               store_rows_get(r, i, "id"), store_rows_get(r, i, "queue"),
               row_ll(r, i, "attempts"));
    }
  }
  store_rows_free(r);
  if (n)
    *n = done;
  return 0;
}

/* ---- reading and managing ----------------------------------------------- */

int jobs_sweep(struct jobs *j, long long *n) {
  if (n)
    *n = 0;
  if (!j->cfg.retention_ms)
    return 0;
  char cut[24];
  I64(cut, jobs_now(j) - (int64_t)j->cfg.retention_ms);
  const char *p[] = {cut};
  for (;;) {
    long long changed = 0;
    int rc = exec(j,
                  "DELETE FROM jobs_jobs WHERE id IN (SELECT id FROM jobs_jobs WHERE state IN "
                  "('succeeded', 'cancelled') AND finished_at < $1 LIMIT 1000)",
                  p, 1, NULL, &changed);
    if (rc)
      return rc;
    if (n)
      *n += changed;
    if (changed < 1000)
      return 0;
  }
}

static json_t *time_json(const char *ms) {
  if (!ms)
    return json_null();
  long long v = strtoll(ms, NULL, 10);
  time_t s = (time_t)(v / 1000);
  struct tm tm;
  char buf[40];
  if (!gmtime_r(&s, &tm))
    return json_null();
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(v % 1000));
  return json_string(buf);
}

static json_t *maybe_json(const char *text) {
  if (!text)
    return json_null();
  json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
  return v ? v : json_string(text);
}

#define JOB_COLS                                                                           \
  "id, type, queue, owner, state, attempts, max_attempts, run_at, created_at, started_at, " \
  "finished_at, progress, message, result, error, cancel_requested"

static json_t *row_json(const struct store_rows *r, int i) {
  const char *msg = store_rows_get(r, i, "message");
  const char *error = store_rows_get(r, i, "error");
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:{s:I, s:o}, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:b}",
      "task_id", store_rows_get(r, i, "id"), "type", store_rows_get(r, i, "type"), "queue",
      store_rows_get(r, i, "queue"), "owner", store_rows_get(r, i, "owner"), "state",
      store_rows_get(r, i, "state"), "progress", "percent", (json_int_t)row_ll(r, i, "progress"),
      "message", msg ? json_string(msg) : json_null(), "attempts",
      (json_int_t)row_ll(r, i, "attempts"), "max_attempts",
      (json_int_t)row_ll(r, i, "max_attempts"), "created_at",
      time_json(store_rows_get(r, i, "created_at")), "run_at",
      time_json(store_rows_get(r, i, "run_at")), "started_at",
      time_json(store_rows_get(r, i, "started_at")), "finished_at",
      time_json(store_rows_get(r, i, "finished_at")), "result",
      maybe_json(store_rows_get(r, i, "result")), "error",
      error ? json_string(error) : json_null(), "cancel_requested",
      row_ll(r, i, "cancel_requested") != 0);
}

int jobs_get(struct jobs *j, const char *id, json_t **out) {
  const char *p[] = {id};
  struct store_rows *r = NULL;
  int rc = exec(j, "SELECT " JOB_COLS " FROM jobs_jobs WHERE id = $1", p, 1, &r, NULL);
  if (rc)
    return rc;
  rc = r->nrows ? 0 : GROVE_ENOENT;
  if (!rc && !(*out = row_json(r, 0)))
    rc = GROVE_ENOMEM;
  store_rows_free(r);
  return rc;
}

int jobs_cancel(struct jobs *j, const char *id, const char *owner, enum jobs_state *state) {
  char now[24];
  I64(now, jobs_now(j));
  /* $1 id, $2 now, $3 owner: the owner's guard only when one is given */
  const char *p[] = {id, now, owner};
  int np = owner ? 3 : 2;
  char sql[384];
  long long changed = 0;
  snprintf(sql, sizeof sql,
           "UPDATE jobs_jobs SET state = 'cancelled', finished_at = $2 WHERE id = $1%s AND "
           "state IN ('queued', 'failed')",
           owner ? " AND owner = $3" : "");
  int rc = exec(j, sql, p, np, NULL, &changed);
  if (rc)
    return rc;
  if (changed == 1) {
    *state = JOBS_CANCELLED;
    jobs_publish(j, id, "cancelled", -1, NULL);
    return 0;
  }
  /* $1 id, $2 owner */
  const char *q[] = {id, owner};
  np = owner ? 2 : 1;
  const char *own = owner ? " AND owner = $2" : "";
  snprintf(sql, sizeof sql,
           "UPDATE jobs_jobs SET cancel_requested = 1 WHERE id = $1%s AND state = 'running'", own);
  if ((rc = exec(j, sql, q, np, NULL, &changed)))
    return rc;
  if (changed == 1) {
    *state = JOBS_RUNNING;
    return 0;
  }
  struct store_rows *r = NULL;
  snprintf(sql, sizeof sql, "SELECT state FROM jobs_jobs WHERE id = $1%s", own);
  if ((rc = exec(j, sql, q, np, &r, NULL)))
    return rc;
  rc = r->nrows ? GROVE_EEXIST : GROVE_ENOENT;
  if (r->nrows)
    *state = state_parse(store_rows_get(r, 0, "state"));
  store_rows_free(r);
  return rc;
}

int jobs_retry(struct jobs *j, const char *id) {
  char now[24];
  I64(now, jobs_now(j));
  const char *p[] = {id, now};
  long long changed = 0;
  int rc = exec(j,
                "UPDATE jobs_jobs SET state = 'queued', attempts = 0, run_at = $2, "
                "finished_at = NULL, cancel_requested = 0, progress = 0, message = NULL "
                "WHERE id = $1 AND state IN ('dead', 'cancelled')",
                p, 2, NULL, &changed);
  if (rc)
    return rc;
  if (changed == 1) {
    jobs_wake(j);
    return 0;
  }
  struct store_rows *r = NULL;
  if ((rc = exec(j, "SELECT state FROM jobs_jobs WHERE id = $1", p, 1, &r, NULL)))
    return rc;
  rc = r->nrows ? GROVE_EEXIST : GROVE_ENOENT;
  store_rows_free(r);
  return rc;
}

int jobs_queues(struct jobs *j, json_t **out) {
  char now[24];
  int64_t t = jobs_now(j);
  I64(now, t);
  const char *p[] = {now};
  struct store_rows *r = NULL;
  int rc = exec(j,
                "SELECT queue, "
                "SUM(CASE WHEN state IN ('queued', 'failed') THEN 1 ELSE 0 END) AS depth, "
                "MIN(CASE WHEN state IN ('queued', 'failed') AND run_at <= $1 THEN run_at END) "
                "AS oldest, "
                "SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END) AS running, "
                "SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS dead "
                "FROM jobs_jobs WHERE state IN ('queued', 'failed', 'running', 'dead') "
                "GROUP BY queue",
                p, 1, &r, NULL);
  if (rc)
    return rc;
  for (int i = 0; i < r->nrows; i++)
    jobs_queue_stat(j, store_rows_get(r, i, "queue"));
  json_t *list = json_array();
  for (int k = 0; list && k < j->nqueues; k++) {
    const struct jobs_queue_stat *q = &j->queues[k];
    long long depth = 0, running = 0, dead = 0;
    double age = 0;
    for (int i = 0; i < r->nrows; i++)
      if (strcmp(store_rows_get(r, i, "queue"), q->name) == 0) {
        depth = row_ll(r, i, "depth");
        running = row_ll(r, i, "running");
        dead = row_ll(r, i, "dead");
        const char *o = store_rows_get(r, i, "oldest");
        if (o && t > strtoll(o, NULL, 10))
          age = (double)(t - strtoll(o, NULL, 10)) / 1000.0;
      }
    if (q->depth)
      metric_set(q->depth, (double)depth);
    json_array_append_new(list, json_pack("{s:s, s:i, s:I, s:f, s:I, s:I}", "queue", q->name,
                                          "priority", q->priority, "depth", (json_int_t)depth,
                                          "oldest_age_s", age, "running", (json_int_t)running,
                                          "dead", (json_int_t)dead));
  }
  store_rows_free(r);
  if (!list)
    return GROVE_ENOMEM;
  *out = list;
  return 0;
}

void jobs_update_depth(struct jobs *j) {
  json_t *list = NULL;
  if (!jobs_queues(j, &list))
    json_decref(list);
}

int jobs_dead(struct jobs *j, int limit, json_t **out) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT " JOB_COLS " FROM jobs_jobs WHERE state = 'dead' "
           "ORDER BY finished_at DESC, id LIMIT %d",
           limit < 1 ? 1 : limit > 1000 ? 1000 : limit);
  struct store_rows *r = NULL;
  int rc = exec(j, sql, NULL, 0, &r, NULL);
  if (rc)
    return rc;
  json_t *list = json_array();
  for (int i = 0; list && i < r->nrows; i++)
    json_array_append_new(list, row_json(r, i));
  store_rows_free(r);
  if (!list)
    return GROVE_ENOMEM;
  *out = list;
  return 0;
}

void jobs_publish(struct jobs *j, const char *id, const char *state, int pct, const char *msg) {
  if (!j->hub)
    return;
  char topic[64];
  snprintf(topic, sizeof topic, "jobs/%s", id);
  json_t *o = json_pack("{s:s, s:s}", "id", id, "state", state);
  if (!o)
    return;
  if (pct >= 0)
    json_object_set_new(o, "progress", json_integer(pct));
  if (msg)
    json_object_set_new(o, "message", json_string(msg));
  char *text = jsonout_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (text) {
    hub_publish(j->hub, topic, text, strlen(text), NULL);
    free(text);
  }
}
