/* monitor.c — matrix's monitoring reads (seed 003 §4.2.3): the current
 * state (metrics.h's tables) and the series over time.
 *
 *   GET /api/v1/metrics/vm-snapshot                  every VM's latest sample
 *   GET /api/host-process-metrics/hosts              hosts and their latest figures
 *   GET /api/host-process-metrics/latest?host=       live processes (latest of each)
 *   GET /api/host-process-metrics/top?by=&limit=&host=   top-N by cpu|memory|gpu|power
 *   GET /api/host-process-metrics/range?host=&process=&pid=&metric=&from=&to=&step=&agg=
 *   GET /api/vm-process-metrics/…                    the same for VMs (vms, latest, top, range; vm_name=);
 *        a VM's own range reads the series of the host that pushed its latest sample
 *   GET /api/dashboard/overview                      hosts, VMs, processes, GPUs, power now
 *
 * Reads run on the store pool; each answers the seed's success envelope.
 * A process or GPU not seen for --matrix-process-expiry is left out; a
 * host or VM is listed with `stale` true once its last sample is that old. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/matrix/matrix.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "net/http.h"
#include "telemetry/telemetry.h"

#define MAX_PARAMS 6
#define TOP_MAX 1000

/* ---- a read job: SQL, parameters, and how rows become the answer -------------- */

struct read_job;
typedef json_t *(*shape_fn)(struct read_job *j);

struct read_job {
  struct matrix *m;
  const char *sql[4];        /* statements run in order (NULL-ended) */
  int np[4];                 /* the parameters each uses (the first np); -1: all */
  char *params[MAX_PARAMS];
  int nparams;
  struct store_rows *rows[4];
  shape_fn shape;
  const char *kind;          /* "host" or "vm" */
  int rc;
  char err[256];
};

static void job_free(struct read_job *j) {
  for (int i = 0; i < j->nparams; i++) free(j->params[i]);
  for (int i = 0; i < 4; i++) store_rows_free(j->rows[i]);
  free(j);
}

static void read_work(void *arg) {
  struct read_job *j = arg;
  j->rc = matrix_state_sync(j->m, j->err, sizeof j->err); /* every push answered before */
  for (int i = 0; i < 4 && j->sql[i] && !j->rc; i++)
    j->rc = store_query(j->m->ctx.store, j->sql[i], (const char *const *)j->params,
                        j->np[i] < 0 ? j->nparams : j->np[i], &j->rows[i], j->err, sizeof j->err);
}

/* A read the store failed: logged, answered 503. */
static void store_failed(struct http_req *r, const char *err) {
  log_error(r->id, "cannot read matrix's state", "error=\"%s\"", err);
  http_reply_error(r, 503, "STORE_UNAVAILABLE", "the store did not answer; retry", NULL);
}

static void read_done(struct http_req *r, void *arg) {
  struct read_job *j = arg;
  if (r->conn) {
    if (j->rc) {
      store_failed(r, j->err);
    } else {
      json_t *data = j->shape(j);
      json_t *meta = json_pack("{s:I}", "process_expiry_ms", (json_int_t)j->m->mcfg.expiry_ms);
      if (json_is_array(data)) json_object_set_new(meta, "count", json_integer((json_int_t)json_array_size(data)));
      http_reply_data(r, 200, data, meta);
    }
  }
  job_free(j);
}

static struct read_job *job_new(struct http_req *r, shape_fn shape, const char *kind) {
  struct read_job *j = calloc(1, sizeof *j);
  if (!j) http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
  else {
    j->m = r->app, j->shape = shape, j->kind = kind;
    for (int i = 0; i < 4; i++) j->np[i] = -1;
  }
  return j;
}

static bool param(struct read_job *j, const char *v) {
  if (j->nparams >= MAX_PARAMS || !(j->params[j->nparams] = strdup(v ? v : ""))) return false;
  j->nparams++;
  return true;
}

static void run(struct http_req *r, struct read_job *j) {
  if (http_req_defer(r, HTTP_POOL_STORE, read_work, read_done, j)) job_free(j);
}

/* ---- rows as JSON ----------------------------------------------------------------- */

static json_t *cell_num(const char *v) {
  double x = v ? strtod(v, NULL) : NAN;
  return isfinite(x) ? json_real(x) : json_null(); /* a key is never left out */
}
static json_t *cell_int(const char *v) { return v ? json_integer(strtoll(v, NULL, 10)) : json_null(); }
static json_t *cell_str(const char *v) { return v ? json_string(v) : json_null(); }

static json_t *iso(const char *ns_text) {
  if (!ns_text) return json_null();
  int64_t ns = strtoll(ns_text, NULL, 10);
  time_t s = (time_t)time_floor_div(ns, 1000000000);
  struct tm tm;
  char out[40];
  if (!gmtime_r(&s, &tm)) return json_null();
  size_t n = strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, sizeof out - n, ".%03dZ", (int)((ns - (int64_t)s * 1000000000) / 1000000));
  return json_string(out);
}

static json_t *ms_iso(const char *ms_text) {
  if (!ms_text) return json_null();
  char ns[32];
  snprintf(ns, sizeof ns, "%lld000000", strtoll(ms_text, NULL, 10));
  return iso(ns);
}

static const char *cell(const struct store_rows *rows, int i, const char *col) {
  return store_rows_get(rows, i, col);
}

static json_t *host_row(const struct matrix *m, const struct store_rows *rows, int i) {
  bool vm = !strcmp(cell(rows, i, "kind"), "vm");
  long long seen = strtoll(cell(rows, i, "seen"), NULL, 10);
  json_t *o = json_pack("{s:s,s:o,s:o,s:o,s:b}", "source_type", vm ? "vm" : "host",
                        vm ? "vm_name" : "host_name", cell_str(cell(rows, i, "name")), "timestamp",
                        iso(cell(rows, i, "ts")), "last_seen", ms_iso(cell(rows, i, "seen")),
                        "stale", (uint64_t)seen + m->mcfg.expiry_ms < matrix_now_ms());
  if (vm) json_object_set_new(o, "host_name", cell_str(cell(rows, i, "host")));
  static const char *const strs[] = {"agent_id", "hypervisor", "instance_type", "cpu_model"};
  for (size_t k = 0; k < ARRAY_LEN(strs); k++) json_object_set_new(o, strs[k], cell_str(cell(rows, i, strs[k])));
  json_object_set_new(o, "seq", cell_int(cell(rows, i, "seq")));
  for (int f = 0; f < 5; f++)
    json_object_set_new(o, mx_hfield_names[f], cell_num(cell(rows, i, mx_hfield_names[f])));
  const char *js = cell(rows, i, "metrics");
  json_t *more = js ? json_loads(js, 0, NULL) : NULL;
  json_object_set_new(o, "metrics", more ? more : json_object());
  if (store_rows_get(rows, i, "live_processes"))
    json_object_set_new(o, "live_processes", cell_int(cell(rows, i, "live_processes")));
  return o;
}

static json_t *proc_row(const struct store_rows *rows, int i) {
  bool vm = !strcmp(cell(rows, i, "kind"), "vm");
  const char *pid = cell(rows, i, "pid");
  json_t *o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", vm ? "vm_name" : "host_name",
                        cell_str(cell(rows, i, "host")), "process_name",
                        cell_str(cell(rows, i, "process")), "pid",
                        pid && strcmp(pid, "-1") ? cell_int(pid) : json_null(), "ppid",
                        cell_int(cell(rows, i, "ppid")), "timestamp", iso(cell(rows, i, "ts")),
                        "last_seen", ms_iso(cell(rows, i, "seen")));
  static const char *const strs[] = {"command", "cgroup", "container_id"};
  for (size_t k = 0; k < ARRAY_LEN(strs); k++) json_object_set_new(o, strs[k], cell_str(cell(rows, i, strs[k])));
  json_object_set_new(o, "user", cell_str(cell(rows, i, "user_name")));
  for (int f = 0; f < MX_P_N; f++)
    json_object_set_new(o, mx_pfield_names[f], cell_num(cell(rows, i, mx_pfield_names[f])));
  return o;
}

static json_t *gpu_row(const struct store_rows *rows, int i) {
  json_t *o = json_pack("{s:o,s:o,s:o,s:o}", "index", cell_int(cell(rows, i, "gpu")), "name",
                        cell_str(cell(rows, i, "name")), "timestamp", iso(cell(rows, i, "ts")),
                        "host", cell_str(cell(rows, i, "host")));
  for (int f = 0; f < MX_G_N; f++)
    json_object_set_new(o, mx_gfield_names[f], cell_num(cell(rows, i, mx_gfield_names[f])));
  return o;
}

/* ---- shapes --------------------------------------------------------------------- */

static json_t *shape_hosts(struct read_job *j) {
  json_t *a = json_array();
  const struct store_rows *h = j->rows[0], *g = j->rows[1];
  for (int i = 0; i < h->nrows; i++) {
    json_t *o = host_row(j->m, h, i);
    json_t *gpus = json_array();
    for (int k = 0; g && k < g->nrows; k++)
      if (!strcmp(cell(g, k, "host"), cell(h, i, "name"))) json_array_append_new(gpus, gpu_row(g, k));
    json_object_set_new(o, "gpus", gpus);
    json_array_append_new(a, o);
  }
  return a;
}

static json_t *shape_procs(struct read_job *j) {
  json_t *a = json_array();
  for (int i = 0; i < j->rows[0]->nrows; i++) json_array_append_new(a, proc_row(j->rows[0], i));
  return a;
}

static json_t *shape_dashboard(struct read_job *j) {
  const struct store_rows *h = j->rows[0], *p = j->rows[1], *g = j->rows[2];
  json_t *o = json_object();
  long long hosts = 0, vms = 0, live_hosts = 0, live_vms = 0;
  double power = 0, cpu = 0;
  int ncpu = 0;
  for (int i = 0; i < h->nrows; i++) {
    bool vm = !strcmp(cell(h, i, "kind"), "vm");
    bool live = (uint64_t)strtoll(cell(h, i, "seen"), NULL, 10) + j->m->mcfg.expiry_ms >= matrix_now_ms();
    *(vm ? &vms : &hosts) += 1;
    if (!live) continue;
    *(vm ? &live_vms : &live_hosts) += 1;
    const char *w = cell(h, i, "total_power_consumption"), *c = cell(h, i, "total_cpu_usage");
    if (w) power += strtod(w, NULL);
    if (c) cpu += strtod(c, NULL), ncpu++;
  }
  json_object_set_new(o, "hosts", json_pack("{s:I,s:I}", "total", hosts, "reporting", live_hosts));
  json_object_set_new(o, "vms", json_pack("{s:I,s:I}", "total", vms, "reporting", live_vms));
  json_object_set_new(o, "processes", json_pack("{s:o}", "live", cell_int(p->nrows ? cell(p, 0, "n") : "0")));
  json_object_set_new(o, "gpus",
                      json_pack("{s:o,s:o,s:o,s:o}", "count", cell_int(g->nrows ? cell(g, 0, "n") : "0"),
                                "mean_utilization_percent", cell_num(g->nrows ? cell(g, 0, "util") : NULL),
                                "power_watts", cell_num(g->nrows ? cell(g, 0, "watts") : NULL),
                                "memory_used_bytes", cell_num(g->nrows ? cell(g, 0, "mem") : NULL)));
  json_object_set_new(o, "power", json_pack("{s:f}", "total_watts_now", power));
  json_object_set_new(o, "mean_cpu_usage_percent", ncpu ? json_real(cpu / ncpu) : json_null());
  return o;
}

/* ---- handlers --------------------------------------------------------------------- */

static const char HOSTS_SQL[] =
    "SELECT h.*, (SELECT count(*) FROM matrix_processes p WHERE p.kind = h.kind AND p.host = h.name"
    " AND p.seen >= CAST($2 AS BIGINT)) AS live_processes FROM matrix_hosts h"
    " WHERE h.kind = $1 AND ($3 = '' OR h.name = $3) ORDER BY h.name";
static const char GPUS_SQL[] =
    "SELECT * FROM matrix_gpus WHERE kind = $1 AND seen >= CAST($2 AS BIGINT)"
    " AND ($3 = '' OR host = $3) ORDER BY host, gpu";

static bool cutoff(struct read_job *j) {
  char t[24];
  snprintf(t, sizeof t, "%" PRIu64, matrix_now_ms() - j->m->mcfg.expiry_ms);
  return param(j, t);
}

/* A host or VM name from the query (`name`), "" when absent; false after
 * answering 400 (badly escaped, or past n-1 bytes). */
static bool name_query(struct http_req *r, const char *name, char *out, size_t n) {
  out[0] = '\0';
  return http_query_str(r, name, out, n, "INVALID_QUERY") >= 0;
}

static void list_state(struct http_req *r, const char *kind, const char *filter) {
  char name[MX_MAX_NAME + 1];
  if (!name_query(r, filter, name, sizeof name)) return;
  struct read_job *j = job_new(r, shape_hosts, kind);
  if (!j) return;
  j->sql[0] = HOSTS_SQL;
  j->sql[1] = GPUS_SQL;
  if (!param(j, kind) || !cutoff(j) || !param(j, name)) {
    job_free(j);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  run(r, j);
}

void matrix_handle_vm_snapshot(struct http_req *r) { list_state(r, "vm", "vm_name"); }
void matrix_handle_host_list(struct http_req *r) { list_state(r, "host", "host"); }
void matrix_handle_vm_list(struct http_req *r) { list_state(r, "vm", "vm_name"); }

/* by: cpu | memory | gpu | power → the column */
static const char *order_col(const char *by) {
  if (!strcmp(by, "cpu")) return "cpu_usage_percent";
  if (!strcmp(by, "memory")) return "memory_usage_mb";
  if (!strcmp(by, "gpu")) return "gpu_utilization_percent";
  if (!strcmp(by, "power")) return "power_consumption_watts";
  return NULL;
}

static void procs(struct http_req *r, const char *kind, bool top) {
  char host[MX_MAX_NAME + 1], by[16] = "cpu", lim[24];
  const char *hname = !strcmp(kind, "vm") ? "vm_name" : "host";
  if (!name_query(r, hname, host, sizeof host)) return;
  if (top && http_query_str(r, "by", by, sizeof by, "INVALID_QUERY") < 0) return;
  const char *col = order_col(by);
  long limit = top ? 10 : 100000;
  if (!http_query_long(r, "limit", 1, top ? TOP_MAX : 100000, &limit)) {
    http_reply_error(r, 400, "INVALID_QUERY", top ? "limit must be 1 to 1000" : "limit must be 1 to 100000", NULL);
    return;
  }
  if (!col) {
    http_reply_error(r, 400, "INVALID_QUERY", "by must be cpu, memory, gpu or power", NULL);
    return;
  }
  struct read_job *j = job_new(r, shape_procs, kind);
  if (!j) return;
  static char sql_top[4][400];
  int k = !strcmp(col, "cpu_usage_percent") ? 0 : !strcmp(col, "memory_usage_mb") ? 1
          : !strcmp(col, "gpu_utilization_percent") ? 2 : 3;
  if (!sql_top[k][0]) /* the same text for every request: written once, races write the same */
    snprintf(sql_top[k], sizeof sql_top[k],
             "SELECT * FROM matrix_processes WHERE kind = $1 AND seen >= CAST($2 AS BIGINT)"
             " AND ($3 = '' OR host = $3) ORDER BY (%s IS NULL), %s DESC, host, pid"
             " LIMIT CAST($4 AS INTEGER)", col, col);
  j->sql[0] = top ? sql_top[k]
                  : "SELECT * FROM matrix_processes WHERE kind = $1 AND seen >= CAST($2 AS BIGINT)"
                    " AND ($3 = '' OR host = $3) ORDER BY host, (cpu_usage_percent IS NULL),"
                    " cpu_usage_percent DESC, pid LIMIT CAST($4 AS INTEGER)";
  snprintf(lim, sizeof lim, "%ld", limit);
  if (!param(j, kind) || !cutoff(j) || !param(j, host) || !param(j, lim)) {
    job_free(j);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  run(r, j);
}

void matrix_handle_host_latest(struct http_req *r) { procs(r, "host", false); }
void matrix_handle_host_top(struct http_req *r) { procs(r, "host", true); }
void matrix_handle_vm_latest(struct http_req *r) { procs(r, "vm", false); }
void matrix_handle_vm_top(struct http_req *r) { procs(r, "vm", true); }

/* Reads one series and answers r: a process's (tag `who` = host or vm,
 * then pid and process) or the overall one of a host (host=host) or of a
 * VM (host=host, vm=vm: the host that pushed it). */
static void range_reply(struct http_req *r, bool vm, const char *host, const char *vm_name,
                        const char *process, const char *pid, const char *metric) {
  bool proc = process != NULL;
  struct telemetry_key k = {0};
  const char *m = proc ? (vm ? "vm_process_metrics" : "host_process_metrics") : "host_overall_metrics";
  k.measurement = (struct telemetry_str){m, strlen(m)};
  k.field = (struct telemetry_str){metric, strlen(metric)};
  if (proc) {
    const char *who = vm ? vm_name : host;
    k.tags[k.ntags++] = (struct telemetry_tag){{vm ? "vm" : "host", vm ? 2 : 4}, {who, strlen(who)}};
    k.tags[k.ntags++] = (struct telemetry_tag){{"pid", 3}, {pid, strlen(pid)}};
    k.tags[k.ntags++] = (struct telemetry_tag){{"process", 7}, {process, strlen(process)}};
  } else {
    k.tags[k.ntags++] = (struct telemetry_tag){{"host", 4}, {host, strlen(host)}};
    if (vm) k.tags[k.ntags++] = (struct telemetry_tag){{"vm", 2}, {vm_name, strlen(vm_name)}};
  }
  struct buf key;
  buf_init(&key, 8192);
  if (telemetry_key_encode(&key, &k)) {
    buf_release(&key);
    http_reply_error(r, 400, "INVALID_QUERY", "no such series can exist", NULL);
    return;
  }
  struct buf head;
  buf_init(&head, 0);
  buf_puts(&head, "\"metric\":\"");
  buf_json_escape(&head, metric, strlen(metric));
  buf_printf(&head, "\",\"measurement\":\"%s\",", m);
  if (vm && !proc) { /* which host's series of the VM this is */
    buf_puts(&head, "\"host_name\":\"");
    buf_json_escape(&head, host, strlen(host));
    buf_puts(&head, "\",");
  }
  struct telemetry_read how = {.buckets = true, .last_hour = true, .missing_null = false,
                               .head = head.data};
  telemetry_read_reply(r->app ? ((struct matrix *)r->app)->ctx.telemetry : NULL, r, key.data, &how);
  buf_release(&head);
  buf_release(&key);
}

/* A VM's overall series is tagged with the host that pushed it
 * (host=<agent's hostname>,vm=<vm_name>), which need not be the VM's
 * name. The read takes the host of the VM's latest sample (matrix_hosts,
 * as vm-snapshot's host_name): after a VM moves, its chart goes on from
 * the new host's series; the points pushed from an earlier host stay in
 * that host's series (GET /api/v1/series/range with its key). A VM never
 * seen reads as its own name's (empty) series. */
struct vm_range {
  struct matrix *m;
  char vm[MX_MAX_NAME + 1], metric[64];
  char *host;                /* the host of the latest sample, or NULL */
  int rc;
  char err[256];
};

static void vm_host_work(void *arg) {
  struct vm_range *j = arg;
  const char *params[] = {j->vm};
  struct store_rows *rows = NULL;
  j->rc = matrix_state_sync(j->m, j->err, sizeof j->err); /* every push answered before */
  if (!j->rc)
    j->rc = store_query(j->m->ctx.store, "SELECT host FROM matrix_hosts WHERE kind = 'vm' AND name = $1",
                        params, 1, &rows, j->err, sizeof j->err);
  const char *h = !j->rc && rows->nrows ? store_rows_get(rows, 0, "host") : NULL;
  if (h && !(j->host = strdup(h))) j->rc = GROVE_ENOMEM, snprintf(j->err, sizeof j->err, "out of memory");
  store_rows_free(rows);
}

static void vm_host_done(struct http_req *r, void *arg) {
  struct vm_range *j = arg;
  if (r->conn) {
    if (j->rc) {
      store_failed(r, j->err);
    } else {
      range_reply(r, true, j->host ? j->host : j->vm, j->vm, NULL, NULL, j->metric);
    }
  }
  free(j->host);
  free(j);
}

/* A series over time: a process's field (process and/or pid given) or the
 * host's (host_overall_metrics); metric defaults to the CPU one. */
static void range(struct http_req *r, bool vm) {
  char host[MX_MAX_NAME + 1], process[MX_MAX_NAME + 1], pid[16] = "", metric[64] = "";
  const char *hname = vm ? "vm_name" : "host";
  if (!name_query(r, hname, host, sizeof host) || !name_query(r, "process", process, sizeof process))
    return;
  if (!host[0]) {
    char msg[64];
    snprintf(msg, sizeof msg, "give %s", hname);
    http_reply_error(r, 400, "INVALID_QUERY", msg, NULL);
    return;
  }
  long pl = http_query_get(r, "pid", 0, pid, sizeof pid);
  if (pl < HTTP_QUERY_ABSENT) {
    http_query_refuse(r, pl, "pid", sizeof pid, "INVALID_QUERY");
    return;
  }
  if (pl == 0 || (pl > 0 && strspn(pid, "0123456789") != (size_t)pl)) {
    http_reply_error(r, 400, "INVALID_QUERY", "pid must be a number", NULL);
    return;
  }
  bool proc = process[0] || pid[0];
  int has_metric = http_query_str(r, "metric", metric, sizeof metric, "INVALID_QUERY");
  if (has_metric < 0) return;
  if (!has_metric)
    snprintf(metric, sizeof metric, "%s", proc ? "cpu_usage_percent" : "total_cpu_usage");
  const char *const *names = proc ? mx_pfield_names : mx_hfield_names;
  int nn = proc ? MX_P_N : MX_H_N, f;
  for (f = 0; f < nn && strcmp(names[f], metric); f++) {}
  if (f == nn) {
    json_t *known = json_array();
    for (int i = 0; i < nn; i++) json_array_append_new(known, json_string(names[i]));
    http_reply_error(r, 400, "INVALID_QUERY", proc ? "metric must be a process field" : "metric must be a host field",
                     json_pack("{s:o}", "known", known));
    return;
  }
  if (proc && (!process[0] || !pid[0])) {
    http_reply_error(r, 400, "INVALID_QUERY", "a process is named by process and pid", NULL);
    return;
  }
  if (proc || !vm) {
    range_reply(r, vm, host, host, proc ? process : NULL, pid, metric);
    return;
  }
  struct vm_range *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->m = r->app;
  snprintf(j->vm, sizeof j->vm, "%s", host);
  snprintf(j->metric, sizeof j->metric, "%s", metric);
  if (http_req_defer(r, HTTP_POOL_STORE, vm_host_work, vm_host_done, j)) free(j);
}

void matrix_handle_host_range(struct http_req *r) { range(r, false); }
void matrix_handle_vm_range(struct http_req *r) { range(r, true); }

void matrix_handle_dashboard(struct http_req *r) {
  struct read_job *j = job_new(r, shape_dashboard, "host");
  if (!j) return;
  j->sql[0] = "SELECT kind, name, seen, total_power_consumption, total_cpu_usage FROM matrix_hosts";
  j->np[0] = 0;
  j->sql[1] = "SELECT count(*) AS n FROM matrix_processes WHERE seen >= CAST($1 AS BIGINT)";
  j->sql[2] = "SELECT count(*) AS n, avg(utilization_percent) AS util, sum(power_watts) AS watts,"
              " sum(memory_used_bytes) AS mem FROM matrix_gpus WHERE seen >= CAST($1 AS BIGINT)";
  if (!cutoff(j)) {
    job_free(j);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  run(r, j);
}
