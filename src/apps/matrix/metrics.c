/* metrics.c — POST /api/monitoring/push-metrics and the write of a batch
 * of samples (metrics.h): the cap of processes per host, the series
 * through telemetry's write path, the current state in the store, the
 * idempotency keys and the live topics.
 *
 * One push, on a store-pool thread:
 *   claim the Idempotency-Key (if given) → parse the whole body (push.c;
 *   any error refuses it all) → per sample, the host's live processes
 *   (the cap) → telemetry_write of the lines (durable) → the current
 *   state, written behind (state.h) → live topics → the answer, recorded
 *   under the key. */
#include "apps/matrix/metrics.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apps/matrix/matrix.h"
#include "apps/matrix/state.h"
#include "core/array.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/map.h"
#include "core/periodic.h"
#include "core/util.h"
#include "gate/gate.h"
#include "hub/hub.h"
#include "net/http.h"
#include "telemetry/telemetry.h"

#define MAX_INFLATED (64u * 1024 * 1024) /* a push body, decoded */
#define MAX_IDEM_KEY 255
#define CLAIM_STALE_MS 60000 /* a claimed key with no answer after this: its push died */

/* ---- tables -------------------------------------------------------------------- */

#define NUM " DOUBLE PRECISION"
const char matrix_metrics_sql[] =
     "CREATE TABLE matrix_hosts (kind TEXT NOT NULL, name TEXT NOT NULL, host TEXT NOT NULL,"
     " ts BIGINT NOT NULL, seen BIGINT NOT NULL, agent_id TEXT, seq BIGINT, hypervisor TEXT,"
     " instance_type TEXT, cpu_model TEXT, total_cpu_usage" NUM ", total_memory_usage" NUM ","
     " total_gpu_usage" NUM ", total_power_consumption" NUM ", system_load_average" NUM ","
     " metrics TEXT, PRIMARY KEY (kind, name));"
     "CREATE TABLE matrix_processes (kind TEXT NOT NULL, host TEXT NOT NULL, pid BIGINT NOT NULL,"
     " process TEXT NOT NULL, ts BIGINT NOT NULL, seen BIGINT NOT NULL, ppid BIGINT,"
     " command TEXT, user_name TEXT, cgroup TEXT, container_id TEXT, cpu_usage_percent" NUM ","
     " memory_usage_mb" NUM ", gpu_utilization_percent" NUM ", power_consumption_watts" NUM ","
     " io_operations" NUM ", network_usage_mbps" NUM ", rss_bytes" NUM ", threads" NUM ","
     " gpu_memory_bytes" NUM ", io_read_bytes" NUM ", io_write_bytes" NUM ","
     " cost_per_hour" NUM ", PRIMARY KEY (kind, host, pid, process));"
     "CREATE INDEX matrix_processes_seen ON matrix_processes (seen);"
     "CREATE TABLE matrix_gpus (kind TEXT NOT NULL, host TEXT NOT NULL, gpu INTEGER NOT NULL,"
     " name TEXT, ts BIGINT NOT NULL, seen BIGINT NOT NULL, utilization_percent" NUM ","
     " memory_utilization_percent" NUM ", memory_total_bytes" NUM ", memory_used_bytes" NUM ","
     " power_watts" NUM ", energy_millijoules" NUM ", temperature_celsius" NUM ","
     " PRIMARY KEY (kind, host, gpu));"
     "CREATE INDEX matrix_gpus_seen ON matrix_gpus (seen);"
     "CREATE TABLE matrix_push_keys (key TEXT PRIMARY KEY, body_sha256 TEXT NOT NULL,"
     " at BIGINT NOT NULL, status INTEGER NOT NULL, answer TEXT);"
     "CREATE INDEX matrix_push_keys_at ON matrix_push_keys (at)";

uint64_t matrix_now_ms(void) { return clock_wall_ms(); }

/* ---- the cap -------------------------------------------------------------------- */

/* The processes each host's last push kept, all seen then and so live
 * until --matrix-process-expiry after it: a push naming exactly those again
 * adds no process, so the cap needs no look-up of the host's live
 * processes (a SELECT of them all, each push). An entry is read and
 * written under its host's stripe (one push of a host at a time); the
 * map of hosts under its own lock. At most LAST_PUSH_PROCS processes over
 * all hosts, and LAST_PUSH_HOSTS hosts, are kept (past them a push goes
 * the long way). */
#define LAST_PUSH_PROCS 262144
#define LAST_PUSH_HOSTS 65536

struct last_push {
  struct map procs;          /* mx_proc_key -> (uintptr_t) the push that last named it */
  uintptr_t gen;             /* pushes checked against it */
  bool valid;                /* procs is a push's, taken at at_ms */
  int64_t at_ms;             /* when it was taken (wall clock) */
};

struct matrix_last_pushes {
  pthread_mutex_t lock;
  struct map hosts;          /* "h\t<host>" or "v\t<vm>" -> struct last_push */
  size_t procs;              /* over all hosts */
};

static void last_push_free(struct last_push *lp) {
  if (!lp)
    return;
  map_release(&lp->procs);
  free(lp);
}

static struct last_push *last_push_of(struct matrix *m, const struct mx_sample *s, bool make) {
  struct matrix_last_pushes *lps = m->last;
  if (!lps)
    return NULL;
  char k[MX_MAX_NAME + 4];
  snprintf(k, sizeof k, "%c\t%s", s->vm ? 'v' : 'h', s->vm ? s->vm_name : s->host);
  pthread_mutex_lock(&lps->lock);
  struct last_push *lp = map_get(&lps->hosts, k);
  if (!lp && make && lps->hosts.len < LAST_PUSH_HOSTS && (lp = calloc(1, sizeof *lp))) {
    map_init(&lp->procs);
    if (map_put(&lps->hosts, k, lp, NULL)) {
      free(lp);
      lp = NULL;
    }
  }
  pthread_mutex_unlock(&lps->lock);
  return lp;
}

/* Whether s names exactly the processes of its host's last push (within
 * expiry): then keep[] and *a are filled (the last of duplicates kept). */
static bool same_as_last(struct matrix *m, struct last_push *lp, const struct mx_sample *s,
                         bool *keep, struct mx_applied *a) {
  int64_t now = (int64_t)matrix_now_ms();
  if (!lp->valid || !lp->procs.len || now < lp->at_ms ||
      (uint64_t)(now - lp->at_ms) >= m->mcfg.expiry_ms)
    return false;
  uintptr_t gen = ++lp->gen;
  size_t named = 0;
  char k[MX_MAX_NAME + 32];
  for (size_t i = s->nprocs; i-- > 0;) {
    const struct mx_proc *p = &s->procs[i];
    mx_proc_key(k, sizeof k, p->pid, p->name);
    void **v = map_ref(&lp->procs, k);
    if (!v)
      return false; /* a process the last push did not keep */
    keep[i] = (uintptr_t)*v != gen; /* else a later duplicate is kept */
    named += keep[i];
    *v = (void *)gen;
  }
  if (named != lp->procs.len)
    return false; /* fewer: some of the last may expire meanwhile */
  a->accepted_procs += named;
  lp->at_ms = now;
  return true;
}

/* Takes what the long way kept as the host's last push. */
static void last_push_set(struct matrix *m, struct last_push *lp, const struct mx_sample *s,
                          const bool *keep) {
  struct matrix_last_pushes *lps = m->last;
  size_t kept = 0;
  for (size_t i = 0; i < s->nprocs; i++)
    kept += keep[i];
  pthread_mutex_lock(&lps->lock);
  lps->procs -= lp->procs.len;
  bool room = lps->procs + kept <= LAST_PUSH_PROCS;
  if (room)
    lps->procs += kept;
  pthread_mutex_unlock(&lps->lock);
  map_release(&lp->procs);
  lp->gen = 1;
  lp->valid = false; /* unless filled whole */
  char k[MX_MAX_NAME + 32];
  for (size_t i = 0; room && i < s->nprocs; i++) {
    if (!keep[i])
      continue;
    mx_proc_key(k, sizeof k, s->procs[i].pid, s->procs[i].name);
    if (map_put(&lp->procs, k, (void *)(uintptr_t)1, NULL)) {
      map_release(&lp->procs);
      pthread_mutex_lock(&lps->lock);
      lps->procs -= kept;
      pthread_mutex_unlock(&lps->lock);
      return;
    }
  }
  if (room) {
    lp->at_ms = (int64_t)matrix_now_ms();
    lp->valid = true;
  }
}

/* A push refused after its cap was checked: its processes may not be in
 * the state, so the host's next push goes the long way. */
static void last_push_forget(struct matrix *m, const struct mx_sample *s) {
  struct last_push *lp = last_push_of(m, s, false);
  if (lp)
    lp->valid = false;
}

/* The processes kept by a batch's samples so far, by host ("h\t<host>"
 * or "v\t<vm>" -> struct map of mx_proc_key): live once the batch is in,
 * though neither in the state nor in the store while it is checked. */
static void batch_kept_release(struct map *kept) {
  const char *k;
  void *v;
  for (size_t it = 0; map_next(kept, &it, &k, &v);) {
    map_release(v);
    free(v);
  }
  map_release(kept);
}

/* Which of s's processes to keep: the ones the host has live already
 * (kept by an earlier sample of the batch included: *batch), and new
 * ones while the host stays within the cap. Duplicates in s (same pid
 * and name) keep the last. Fills keep[], counts into *a. */
static int check_cap(struct matrix *m, struct store_conn *c, const struct mx_sample *s,
                     bool cap, struct map *batch, bool *keep, struct mx_applied *a, char *err,
                     size_t errlen) {
  struct map seen, *kept = NULL;
  map_init(&seen);
  char k[MX_MAX_NAME + 32];
  int rc = 0;
  size_t live = 0;
  int max = m->mcfg.max_processes;
  struct last_push *lp = cap && max > 0 ? last_push_of(m, s, true) : NULL;
  if (lp && same_as_last(m, lp, s, keep, a))
    return 0;
  if (cap && max > 0) {
    char since[24];
    int64_t cut = (int64_t)(matrix_now_ms() - m->mcfg.expiry_ms);
    snprintf(since, sizeof since, "%" PRId64, cut);
    const char *p[] = {s->vm ? "vm" : "host", s->vm ? s->vm_name : s->host, since};
    /* the rows a flush has not committed yet, then the store's: in that
     * order a row being flushed meanwhile is in one or the other */
    rc = mx_state_live(m->state, s->vm, s->vm ? s->vm_name : s->host, cut, &seen);
    if (rc) goto out;
    struct store_rows *rows = NULL;
    rc = store_exec(c,
                    "SELECT pid, process FROM matrix_processes WHERE kind = $1 AND host = $2 AND"
                    " seen >= CAST($3 AS BIGINT)",
                    p, 3, &rows, err, errlen);
    if (rc) goto out;
    for (int i = 0; i < rows->nrows && !rc; i++) {
      const char *pid = rows->values[i * rows->ncols], *name = rows->values[i * rows->ncols + 1];
      snprintf(k, sizeof k, "%s\t%s", pid ? pid : "-1", name ? name : "");
      rc = map_put(&seen, k, (void *)1, NULL);
    }
    store_rows_free(rows);
    char hk[MX_MAX_NAME + 4];
    snprintf(hk, sizeof hk, "%c\t%s", s->vm ? 'v' : 'h', s->vm ? s->vm_name : s->host);
    if (!rc && !(kept = map_get(batch, hk))) {
      if (!(kept = malloc(sizeof *kept)))
        rc = GROVE_ENOMEM;
      else if (map_init(kept), (rc = map_put(batch, hk, kept, NULL)))
        free(kept), kept = NULL;
    }
    const char *kk;
    void *kv;
    for (size_t it = 0; !rc && map_next(kept, &it, &kk, &kv);)
      if (!map_get(&seen, kk))
        rc = map_put(&seen, kk, (void *)1, NULL);
    live = seen.len;
    if (rc) goto out;
  }
  /* the last of duplicates wins: walk backwards */
  for (size_t i = s->nprocs; i-- > 0;) {
    const struct mx_proc *p = &s->procs[i];
    mx_proc_key(k, sizeof k, p->pid, p->name);
    void *v = map_get(&seen, k);
    if (v == (void *)2) { /* a later duplicate is kept */
      keep[i] = false;
      continue;
    }
    if (!v && cap && max > 0 && live >= (size_t)max) {
      keep[i] = false;
      if (!a->cap_host) {
        a->cap_host = s->vm ? s->vm_name : s->host;
        a->cap_live = live;
      }
      if (a->nrefused_listed < MX_REFUSED_LISTED) {
        a->refused_pid[a->nrefused_listed] = p->pid;
        a->refused_name[a->nrefused_listed++] = p->name;
      }
      a->refused_procs++;
      continue;
    }
    if (!v) live++;
    keep[i] = true;
    a->accepted_procs++;
    if ((rc = map_put(&seen, k, (void *)2, NULL)) ||
        (kept && (rc = map_put(kept, k, (void *)1, NULL))))
      goto out;
  }
  if (lp)
    last_push_set(m, lp, s, keep);
out:
  map_release(&seen);
  return rc;
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* ---- live topics ---------------------------------------------------------------- */

static void publish(struct matrix *m, const struct mx_sample *s, const bool *keep) {
  const char *id = s->vm ? s->vm_name : s->host;
  char topic[300];
  snprintf(topic, sizeof topic, "matrix/%s/%s", s->vm ? "vms" : "hosts", id);
  if (!hub_topic_valid(topic)) return; /* a name a topic cannot hold: no live view */
  json_t *mt = json_object();
  for (int i = 0; i < MX_H_N; i++)
    if (s->hhave & (1u << i)) json_object_set_new(mt, mx_hfield_names[i], jnum(s->h[i]));
  /* the five busiest processes by CPU */
  size_t top[5], ntop = 0;
  for (size_t i = 0; i < s->nprocs; i++) {
    if (keep && !keep[i]) continue;
    double v = s->procs[i].v[MX_P_CPU];
    size_t at = ntop < 5 ? ntop++ : 5;
    while (at > 0 && s->procs[top[at - 1]].v[MX_P_CPU] < v) {
      if (at < 5) top[at] = top[at - 1];
      at--;
    }
    if (at < 5) top[at] = i;
  }
  json_t *tp = json_array();
  for (size_t i = 0; i < ntop; i++) {
    const struct mx_proc *p = &s->procs[top[i]];
    json_t *e = json_pack("{s:s,s:o}", "process_name", p->name, "pid",
                          p->pid >= 0 ? json_integer(p->pid) : json_null());
    for (int f = 0; f < 4; f++)
      if (p->have & (1u << f)) json_object_set_new(e, mx_pfield_names[f], jnum(p->v[f]));
    json_array_append_new(tp, e);
  }
  char ts[40];
  time_t secs = (time_t)time_floor_div(s->ts_ns, 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:o}", "source_type", s->vm ? "vm" : "host",
                        "id", id, "timestamp", ts, "metrics", mt, "processes",
                        (json_int_t)s->nprocs, "gpus", (json_int_t)s->ngpus, "top_processes", tp);
  char *text = o ? jsonout_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (text) hub_publish_coalesced(m->ctx.hub, topic, text, strlen(text), m->mcfg.publish_ms);
  free(text);
}

/* ---- a batch -------------------------------------------------------------------- */

static void line_refused(size_t index, const char *why, void *arg) {
  struct mx_applied *a = arg;
  (void)index;
  if (!a->refused_lines++) snprintf(a->refused_why, sizeof a->refused_why, "%s", why);
}

static int metrics_write_locked(struct matrix *m, struct mx_batch *b, bool cap,
                                struct mx_applied *a, char *err, size_t errlen);

/* Pushes of one host are applied one at a time from the cap's count to
 * the state's put, so two at once cannot both take the host's last free
 * places (within this instance; across instances the cap is counted from
 * the store and may be passed by what they push at the same moment). */
#define HOST_STRIPES 64
static pthread_mutex_t host_stripes[HOST_STRIPES] = {[0 ... HOST_STRIPES - 1] =
                                                         PTHREAD_MUTEX_INITIALIZER};

/* Marks in `use` the stripes of b's hosts; locks them in order. */
static void stripes_lock(const struct mx_batch *b, bool *use) {
  memset(use, 0, HOST_STRIPES * sizeof *use);
  for (size_t i = 0; i < b->n; i++) {
    const char *h = b->s[i].vm ? b->s[i].vm_name : b->s[i].host;
    use[hash_bytes(h, strlen(h)) % HOST_STRIPES] = true;
  }
  for (int i = 0; i < HOST_STRIPES; i++)
    if (use[i]) pthread_mutex_lock(&host_stripes[i]);
}

static void stripes_unlock(const bool *use) {
  for (int i = HOST_STRIPES; i-- > 0;)
    if (use[i]) pthread_mutex_unlock(&host_stripes[i]);
}

int matrix_metrics_write(struct matrix *m, struct mx_batch *b, bool cap, struct mx_applied *a,
                         char *err, size_t errlen) {
  bool stripes[HOST_STRIPES];
  stripes_lock(b, stripes);
  int rc = metrics_write_locked(m, b, cap, a, err, errlen);
  stripes_unlock(stripes);
  return rc;
}

static int metrics_write_locked(struct matrix *m, struct mx_batch *b, bool cap,
                                struct mx_applied *a, char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  bool **keep = calloc(b->n ? b->n : 1, sizeof *keep);
  struct mx_lines lines = {0};
  struct store_conn *c = NULL;
  struct map batch;
  map_init(&batch);
  int rc = keep ? 0 : GROVE_ENOMEM;
  if (!rc) rc = store_acquire(m->ctx.store, &c);
  for (size_t i = 0; !rc && i < b->n; i++) {
    const struct mx_sample *s = &b->s[i];
    if (!(keep[i] = malloc((s->nprocs ? s->nprocs : 1) * sizeof **keep))) rc = GROVE_ENOMEM;
    else if (s->nprocs) rc = check_cap(m, c, s, cap, &batch, keep[i], a, err, errlen);
    if (!rc) rc = mx_lines_add(&lines, s, keep[i]);
  }
  if (c) store_release(m->ctx.store, c), c = NULL;
  batch_kept_release(&batch);
  if (rc) {
    if (rc == GROVE_ENOMEM) snprintf(err, errlen, "out of memory");
    goto out;
  }
  mx_lines_finish(&lines);
  struct telemetry_result res = {0};
  if (lines.n) {
    rc = telemetry_write(m->ctx.telemetry, lines.lines, lines.n, line_refused, a, &res);
    if (rc) {
      snprintf(err, errlen, "cannot write the series: %s", grove_strerror(rc));
      goto out;
    }
  }
  a->points = res.points;
  /* the current state, written behind (state.h) */
  int64_t seen = (int64_t)matrix_now_ms();
  for (size_t i = 0; !rc && i < b->n; i++)
    if ((rc = mx_state_put(m->state, &b->s[i], keep[i], seen, err, errlen)) == GROVE_ENOMEM)
      snprintf(err, errlen, "out of memory");
    /* GROVE_EBUSY: the store refuses the state and its bound is reached; the
     * series are in (a retry rewrites the same points) */
  if (rc) goto out;
  for (size_t i = 0; i < b->n; i++) publish(m, &b->s[i], keep[i]);
out:
  if (c) store_release(m->ctx.store, c);
  for (size_t i = 0; rc && i < b->n; i++) last_push_forget(m, &b->s[i]);
  for (size_t i = 0; keep && i < b->n; i++) free(keep[i]);
  free(keep);
  mx_lines_release(&lines);
  return rc;
}

/* ---- idempotency keys ----------------------------------------------------------- */

enum claim { CLAIM_OURS, CLAIM_DONE, CLAIM_BUSY, CLAIM_REUSED };

/* Claims key for a body hashed `hash`: ours (go on), done (its answer in
 * *status and *answer, malloc'ed), busy (another push holds it), reused
 * (the key came with another body). */
static int claim_key(struct store *st, const char *key, const char *hash, enum claim *out,
                     int *status, char **answer, char *err, size_t errlen) {
  char now[24], stale[24];
  uint64_t t = matrix_now_ms();
  snprintf(now, sizeof now, "%" PRIu64, t);
  snprintf(stale, sizeof stale, "%" PRIu64, t - CLAIM_STALE_MS);
  struct store_rows *rows = NULL;
  const char *p1[] = {key, hash, now};
  int rc = store_query(st,
                       "INSERT INTO matrix_push_keys (key, body_sha256, at, status)"
                       " VALUES ($1, $2, CAST($3 AS BIGINT), 0) ON CONFLICT (key) DO NOTHING",
                       p1, 3, &rows, err, errlen);
  if (rc) return rc;
  long long changed = rows->changes;
  store_rows_free(rows);
  if (changed > 0) {
    *out = CLAIM_OURS;
    return 0;
  }
  const char *p2[] = {key};
  rows = NULL;
  rc = store_query(st, "SELECT body_sha256, status, answer, at FROM matrix_push_keys WHERE key = $1",
                   p2, 1, &rows, err, errlen);
  if (rc) return rc;
  if (rows->nrows == 0) { /* pruned meanwhile: try once more */
    store_rows_free(rows);
    return claim_key(st, key, hash, out, status, answer, err, errlen);
  }
  const char *h = store_rows_get(rows, 0, "body_sha256"), *s = store_rows_get(rows, 0, "status");
  const char *ans = store_rows_get(rows, 0, "answer"), *at = store_rows_get(rows, 0, "at");
  if (!h || strcmp(h, hash)) {
    *out = CLAIM_REUSED;
  } else if (s && atoi(s) > 0 && ans) {
    *out = CLAIM_DONE;
    *status = atoi(s);
    *answer = strdup(ans);
    if (!*answer) rc = GROVE_ENOMEM;
  } else if (at && strtoll(at, NULL, 10) < (long long)(t - CLAIM_STALE_MS)) {
    /* a claim whose push died (a crash): take it over */
    const char *p3[] = {key, now, at};
    struct store_rows *r3 = NULL;
    rc = store_query(st,
                     "UPDATE matrix_push_keys SET at = CAST($2 AS BIGINT) WHERE key = $1"
                     " AND status = 0 AND at = CAST($3 AS BIGINT)",
                     p3, 3, &r3, err, errlen);
    *out = !rc && r3 && r3->changes > 0 ? CLAIM_OURS : CLAIM_BUSY;
    store_rows_free(r3);
  } else {
    *out = CLAIM_BUSY;
  }
  store_rows_free(rows);
  return rc;
}

static void key_answer(struct store *st, const char *key, int status, const char *answer) {
  char s[16], err[256] = "";
  snprintf(s, sizeof s, "%d", status);
  const char *p[] = {key, s, answer};
  int rc = store_query(st, "UPDATE matrix_push_keys SET status = CAST($2 AS INTEGER), answer = $3"
                           " WHERE key = $1",
                       p, 3, NULL, err, sizeof err);
  if (rc) log_error(NULL, "cannot record a push's answer", "error=\"%s\"", err);
}

static void key_forget(struct store *st, const char *key) {
  char err[256] = "";
  const char *p[] = {key};
  if (store_query(st, "DELETE FROM matrix_push_keys WHERE key = $1 AND status = 0", p, 1, NULL,
                  err, sizeof err))
    log_error(NULL, "cannot release an idempotency key", "error=\"%s\"", err);
}

/* ---- the sweep ------------------------------------------------------------------ */

static uint64_t sweep(void *arg) {
  struct matrix *m = arg;
  char cut[24], keys[24], max[24], err[256] = "";
  uint64_t now = matrix_now_ms();
  snprintf(cut, sizeof cut, "%" PRIu64, now - m->mcfg.expiry_ms);
  snprintf(keys, sizeof keys, "%" PRIu64, now - m->mcfg.idem_keep_ms);
  snprintf(max, sizeof max, "%d", m->mcfg.idem_max > 0 ? m->mcfg.idem_max - 1 : 0);
  static const char *const sql[] = {
      "DELETE FROM matrix_processes WHERE seen < CAST($1 AS BIGINT)",
      "DELETE FROM matrix_gpus WHERE seen < CAST($1 AS BIGINT)",
      "DELETE FROM matrix_push_keys WHERE at < CAST($1 AS BIGINT) AND status > 0",
      /* past --matrix-idempotency-max keys, the oldest go */
      ("DELETE FROM matrix_push_keys WHERE status > 0 AND at < (SELECT at FROM matrix_push_keys"
       " ORDER BY at DESC LIMIT 1 OFFSET CAST($1 AS INTEGER))"),
  };
  const char *arg1[] = {cut, cut, keys, max};
  for (size_t i = 0; i < ARRAY_LEN(sql); i++) {
    if (i == 3 && m->mcfg.idem_max <= 0) break;
    const char *p[] = {arg1[i]};
    if (store_query(m->ctx.store, sql[i], p, 1, NULL, err, sizeof err)) {
      log_warn(NULL, "matrix sweep failed", "error=\"%s\"", err);
      break;
    }
  }
  uint64_t every = m->mcfg.expiry_ms / 4;
  return every < 250 ? 250 : every > 60000 ? 60000 : every;
}

int matrix_metrics_start(struct matrix *m) {
  if (!(m->last = calloc(1, sizeof *m->last)))
    return GROVE_ENOMEM;
  pthread_mutex_init(&m->last->lock, NULL);
  map_init(&m->last->hosts);
  int rc = mx_state_open(&m->state, m->ctx.store, m->mcfg.state_flush_ms, 0);
  if (!rc) rc = periodic_start(&m->sweeper, 1000, sweep, m);
  return rc ? rc : matrix_telegraf_start(m);
}

void matrix_metrics_stop(struct matrix *m) {
  matrix_telegraf_stop(m);
  periodic_stop(m->sweeper);
  m->sweeper = NULL;
  mx_state_close(m->state); /* after the last writer: its final flush */
  m->state = NULL;
  if (m->last) {
    const char *k;
    void *v;
    for (size_t it = 0; map_next(&m->last->hosts, &it, &k, &v);)
      last_push_free(v);
    map_release(&m->last->hosts);
    pthread_mutex_destroy(&m->last->lock);
    free(m->last);
    m->last = NULL;
  }
}

int matrix_state_sync(struct matrix *m, char *err, size_t errlen) {
  return m->state ? mx_state_flush(m->state, err, errlen) : 0;
}

/* ---- POST /api/monitoring/push-metrics ----------------------------------------- */

struct push_job {
  struct matrix *m;
  char *body;
  size_t len;
  char key[MAX_IDEM_KEY + 48]; /* "<caller id>:<Idempotency-Key>", or "" */
  char shown_key[MAX_IDEM_KEY + 1];
  char default_host[48];
  /* the answer */
  int status;
  char *answer;              /* {"data":…,"metadata":…} or {"error_code":…,"message":…,"details":…} */
  bool replayed;
};

static void job_free(struct push_job *j) {
  free(j->body);
  free(j->answer);
  free(j);
}

/* Sets the answer as the error envelope's members. */
static void answer_error(struct push_job *j, int status, const char *code, const char *message,
                         json_t *details) {
  json_t *o = json_pack("{s:s,s:s,s:o}", "error_code", code, "message", message, "details",
                        details ? details : json_object());
  j->status = status;
  free(j->answer);
  j->answer = o ? jsonout_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
}

static json_t *ignored_json(const struct mx_batch *b) {
  json_t *a = json_array();
  for (size_t i = 0; i < b->nignored_names; i++) json_array_append_new(a, json_string(b->ignored_names[i]));
  return a;
}

static void push_work(void *arg) {
  struct push_job *j = arg;
  struct matrix *m = j->m;
  char err[512] = "";
  bool claimed = false;
  if (j->key[0]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char hash[2 * EVP_MAX_MD_SIZE + 1];
    EVP_Digest(j->body, j->len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < mdlen; i++) snprintf(hash + 2 * i, 3, "%02x", md[i]);
    enum claim cl;
    int status = 0;
    char *ans = NULL;
    int rc = claim_key(m->ctx.store, j->key, hash, &cl, &status, &ans, err, sizeof err);
    if (rc) {
      log_error(NULL, "cannot check an idempotency key", "error=\"%s\"", err);
      answer_error(j, 503, "STORE_UNAVAILABLE", "the push was not stored; retry", NULL);
      return;
    }
    if (cl == CLAIM_DONE) {
      j->status = status;
      j->answer = ans;
      j->replayed = true;
      return;
    }
    if (cl == CLAIM_REUSED) {
      answer_error(j, 422, "IDEMPOTENCY_KEY_REUSED",
                   "this Idempotency-Key was used with another body; use a new key", NULL);
      return;
    }
    if (cl == CLAIM_BUSY) {
      answer_error(j, 409, "IDEMPOTENCY_KEY_IN_USE",
                   "a push with this Idempotency-Key is being processed", NULL);
      return;
    }
    claimed = true;
  }
  struct mx_batch b;
  struct mx_push_error pe;
  struct mx_push_limits lim = {
      .now_ns = (int64_t)matrix_now_ms() * 1000000,
      .max_ahead_ns = (int64_t)m->mcfg.max_ahead_ms * 1000000,
      .oldest_ns = telemetry_oldest_kept(m->ctx.telemetry),
      .default_host = j->default_host[0] ? j->default_host : NULL,
  };
  int rc = mx_push_parse(j->body, j->len, &lim, &b, &pe);
  if (rc) {
    json_t *d = pe.path[0] ? json_pack("{s:s}", "path", pe.path) : NULL;
    answer_error(j, pe.status, pe.code, pe.message, d);
    if (claimed && pe.status >= 500) key_forget(m->ctx.store, j->key), claimed = false;
    goto record;
  }
  struct mx_applied a;
  rc = matrix_metrics_write(m, &b, true, &a, err, sizeof err);
  if (rc) {
    log_error(NULL, "cannot store pushed metrics", "error=\"%s\"", err);
    answer_error(j, 503, "STORE_UNAVAILABLE", "the push was not stored; retry", NULL);
    if (claimed) key_forget(m->ctx.store, j->key), claimed = false;
    mx_batch_release(&b);
    return;
  }
  json_t *data = json_pack("{s:I,s:I,s:I,s:I,s:I}", "samples", (json_int_t)b.n, "processes",
                           (json_int_t)b.processes, "accepted_processes",
                           (json_int_t)a.accepted_procs, "refused_processes",
                           (json_int_t)a.refused_procs, "points_written", (json_int_t)a.points);
  if (a.refused_procs) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "host '%.80s' is at its cap of %d live processes (--matrix-max-processes-per-host):"
             " %zu new processes were refused; the rest of the push was stored",
             a.cap_host, m->mcfg.max_processes, a.refused_procs);
    json_t *list = json_array();
    for (size_t i = 0; i < a.nrefused_listed; i++)
      json_array_append_new(list, json_pack("{s:o,s:s}", "pid",
                                            a.refused_pid[i] >= 0 ? json_integer(a.refused_pid[i])
                                                                  : json_null(),
                                            "process_name", a.refused_name[i]));
    json_object_set_new(data, "host", json_string(a.cap_host));
    json_object_set_new(data, "max_processes_per_host", json_integer(m->mcfg.max_processes));
    json_object_set_new(data, "live_processes", json_integer((json_int_t)a.cap_live));
    json_object_set_new(data, "refused", list);
    answer_error(j, 422, "TOO_MANY_PROCESSES", msg, data);
  } else if (a.refused_lines) {
    char msg[256];
    snprintf(msg, sizeof msg, "partial write: %zu series lines were refused (%s); the others were stored",
             a.refused_lines, a.refused_why);
    json_object_set_new(data, "refused_lines", json_integer((json_int_t)a.refused_lines));
    answer_error(j, 400, "PARTIAL_WRITE", msg, data);
  } else {
    json_t *meta = json_pack("{s:I,s:o}", "ignored_fields", (json_int_t)b.ignored,
                             "ignored_field_names", ignored_json(&b));
    if (j->shown_key[0]) json_object_set_new(meta, "idempotency_key", json_string(j->shown_key));
    json_t *o = json_pack("{s:o,s:o}", "data", data, "metadata", meta);
    j->status = 200;
    j->answer = o ? jsonout_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
  }
  mx_batch_release(&b);
record:
  if (claimed) {
    if (j->answer) key_answer(m->ctx.store, j->key, j->status, j->answer);
    else key_forget(m->ctx.store, j->key);
  }
}

static void push_done(struct http_req *r, void *arg) {
  struct push_job *j = arg;
  if (!r->conn) goto out;
  if (j->replayed) http_res_header(r, "Idempotent-Replayed", "true");
  json_t *o = j->answer ? json_loads(j->answer, 0, NULL) : NULL;
  if (!o) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
  } else if (j->status < 300) {
    json_t *meta = json_incref(json_object_get(o, "metadata"));
    if (j->replayed && meta) json_object_set_new(meta, "replayed", json_true());
    http_reply_data(r, j->status, json_incref(json_object_get(o, "data")), meta);
  } else {
    http_reply_error(r, j->status, json_string_value(json_object_get(o, "error_code")),
                     json_string_value(json_object_get(o, "message")),
                     json_incref(json_object_get(o, "details")));
  }
  json_decref(o);
out:
  job_free(j);
}

/* The Idempotency-Key: a token or a quoted string (the IETF draft's
 * sf-string), 1 to 255 visible ASCII characters. */
static bool idem_key(const char *v, char *out, size_t n) {
  size_t len = strlen(v);
  if (len >= 2 && v[0] == '"' && v[len - 1] == '"') v++, len -= 2;
  if (len == 0 || len > MAX_IDEM_KEY || len >= n) return false;
  for (size_t i = 0; i < len; i++)
    if (v[i] < 0x21 || v[i] > 0x7e || v[i] == '"') return false;
  memcpy(out, v, len);
  out[len] = '\0';
  return true;
}

void matrix_handle_push(struct http_req *r) {
  struct matrix *m = r->app;
  const char *ct = http_header_get(r, "content-type");
  if (ct && strncasecmp(ct, "application/json", 16) != 0) {
    http_reply_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", "send application/json", NULL);
    return;
  }
  struct push_job *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  const char *ik = http_header_get(r, "Idempotency-Key");
  if (ik && !idem_key(ik, j->shown_key, sizeof j->shown_key)) {
    free(j);
    http_reply_error(r, 400, "INVALID_IDEMPOTENCY_KEY",
                     "Idempotency-Key must be 1 to 255 visible ASCII characters", NULL);
    return;
  }
  if (!http_req_body(r, MAX_INFLATED)) {
    free(j);
    return;
  }
  const struct gate_principal *who = gate_caller(r);
  if (j->shown_key[0])
    snprintf(j->key, sizeof j->key, "%s:%s", who ? who->id : "-", j->shown_key);
  /* a sample naming no host stands for the caller: its device, else its key or user */
  if (who) snprintf(j->default_host, sizeof j->default_host, "%s", who->device[0] ? who->device : who->id);
  j->m = m;
  j->len = r->body_len;
  if (!(j->body = malloc(r->body_len + 1))) {
    job_free(j);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  memcpy(j->body, r->body, r->body_len);
  j->body[j->len] = '\0';
  if (http_req_defer(r, HTTP_POOL_STORE, push_work, push_done, j)) job_free(j);
}
