/* telegraf.c — Telegraf's host, process, GPU and power measurements, as
 * they arrive on POST /api/v1/write (or InfluxDB's /write), fed into the
 * same series and current state as a push (metrics.h).
 *
 * A telemetry consumer takes the lines of Telegraf's `cpu`, `mem`,
 * `system`, `procstat`, `nvidia_smi` and `powerstat_package`
 * (intel_powerstat) measurements that carry a `host` tag (Telegraf adds it
 * unless omit_hostname is set). The lines themselves are stored as written
 * (they are durable before the consumer runs); the consumer copies what
 * it maps into a bounded queue, because it must not block on I/O. A
 * background thread then groups the queue by host and timestamp into
 * samples — Telegraf stamps every metric of one collection with the same
 * rounded time — and writes them as a push would: host_overall_metrics,
 * host_process_metrics, host_gpu_metrics, host_cpu_core_metrics and the
 * current state (docs/matrix.md, "Telegraf" lists the mapping). So a
 * reader sees them a moment after the write is acknowledged, not before.
 *
 * Field names are Telegraf's plugin READMEs': cpu (usage_idle, usage_iowait,
 * usage_steal; cpu=cpu-total, or cpuN for a core), mem (used_percent,
 * total, available, swap_total, swap_free), system (load1, load5, load15),
 * procstat (cpu_usage, memory_rss, num_threads, ppid, the cumulative
 * read_bytes, write_bytes, disk_read_bytes, disk_write_bytes, read_count,
 * write_count and created_at; tags process_name, pid (pid_tag = true) or
 * the pid field, user),
 * nvidia_smi (utilization_gpu, utilization_memory, memory_total and
 * memory_used in MiB, power_draw, temperature_gpu; tags index, name),
 * powerstat_package (current_power_consumption_watts,
 * current_dram_power_consumption_watts; tag package_id).
 *
 * procstat's counters are cumulative since the process started. The bytes
 * stay cumulative (io_read_bytes and io_write_bytes are, in a push too);
 * read_count + write_count become io_operations, the calls of the interval
 * since the process's previous sample, as grove-agent counts them: the
 * thread keeps each (host, pid)'s last counters in memory (counters(),
 * below), so this instance must have seen the previous sample. */
#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/matrix/matrix.h"
#include "core/array.h"
#include "core/error.h"
#include "core/log.h"
#include "core/map.h"
#include "core/periodic.h"
#include "core/util.h"
#include "telemetry/telemetry.h"

#define QUEUE_MAX 1000000 /* lines waiting at most; more are left out (logged) */
#define SWEEP_MS 60000    /* how often the thread forgets the counters of processes gone */

enum kind { K_CPU_TOTAL, K_CPU_CORE, K_MEM, K_SYSTEM, K_PROC, K_GPU, K_POWER };
/* procstat's cumulative fields a line may carry (tg_line.c). */
enum counter { C_READ_BYTES, C_WRITE_BYTES, C_DISK_READ, C_DISK_WRITE, C_READS, C_WRITES,
               C_CREATED, C_N };

/* One Telegraf line as matrix keeps it until the thread writes it. */
struct tg_line {
  enum kind kind;
  int64_t ts;
  int64_t pid;               /* procstat: -1 when neither tag nor field */
  int index;                 /* GPU index, core number */
  char host[MX_MAX_NAME + 1];
  char name[MX_MAX_NAME + 1]; /* process or GPU name, or "" */
  char user[64];
  int64_t ppid;              /* procstat: -1 when not given */
  double v[(int)MX_P_N > (int)MX_H_N ? (int)MX_P_N : (int)MX_H_N];
  uint32_t have;
  double c[C_N];             /* procstat's counters as sent */
  uint32_t chave;            /* bit i: c[i] given */
};

/* What the thread remembers of a process (key "host\tpid") or of a host's
 * procstat collections (key "host"). */
struct prev {
  int64_t ts;                /* a process: its last sample; a host: its last collection */
  int64_t ts_before;         /* a host: the collection before ts (0: none) */
  double ops;                /* read_count + write_count at ts */
  double created;            /* created_at at ts (ns) */
  uint32_t chave;            /* which of them were given (1 << C_*) */
  uint64_t seen_ms;          /* wall clock of the last update */
};

struct matrix_telegraf {
  struct matrix *m;
  struct periodic *thread;
  pthread_mutex_t mu;
  struct tg_line *q;         /* under mu */
  size_t n, cap;
  uint64_t dropped;          /* under mu */
  struct map prev;           /* struct prev *: the thread's alone */
  uint64_t swept_ms;         /* the thread's */
};

static const char *const measurements[] = {"cpu", "mem", "system", "procstat", "nvidia_smi",
                                           "powerstat_package", NULL};

/* ---- the consumer (the writer's thread: copies, never blocks on I/O) ------------- */

static bool is(const struct telemetry_str *s, const char *lit) {
  size_t n = strlen(lit);
  return s->n == n && !memcmp(s->p, lit, n);
}

static void copy_str(char *out, size_t n, const struct telemetry_str *s) {
  size_t k = s->n < n - 1 ? s->n : n - 1;
  memcpy(out, s->p, k);
  out[k] = '\0';
  for (size_t i = 0; i < k; i++)
    if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) out[i] = '?';
}

/* Starts a line from its first point; false: not one matrix maps. */
static bool line_start(struct tg_line *l, const struct telemetry_point *p) {
  memset(l, 0, offsetof(struct tg_line, v));
  l->have = l->chave = 0;
  memset(l->c, 0, sizeof l->c);
  l->pid = l->ppid = -1;
  l->ts = p->ts_ns;
  const struct telemetry_str *host = telemetry_tag_get(p->tags, p->ntags, "host");
  if (!host || !host->n || host->n > MX_MAX_NAME) return false;
  copy_str(l->host, sizeof l->host, host);
  const struct telemetry_str *m = &p->measurement, *t;
  if (is(m, "cpu")) {
    t = telemetry_tag_get(p->tags, p->ntags, "cpu");
    if (!t) return false;
    if (is(t, "cpu-total")) {
      l->kind = K_CPU_TOTAL;
      return true;
    }
    if (t->n < 4 || t->n > 8 || memcmp(t->p, "cpu", 3)) return false;
    int core = 0;
    for (size_t i = 3; i < t->n; i++) {
      if (t->p[i] < '0' || t->p[i] > '9') return false;
      core = core * 10 + (t->p[i] - '0');
    }
    if (core >= MX_MAX_DEVICES) return false;
    l->kind = K_CPU_CORE;
    l->index = core;
    return true;
  }
  if (is(m, "mem")) return l->kind = K_MEM, true;
  if (is(m, "system")) return l->kind = K_SYSTEM, true;
  if (is(m, "powerstat_package")) return l->kind = K_POWER, true;
  if (is(m, "procstat")) {
    l->kind = K_PROC;
    if ((t = telemetry_tag_get(p->tags, p->ntags, "process_name")) && t->n)
      copy_str(l->name, sizeof l->name, t);
    if ((t = telemetry_tag_get(p->tags, p->ntags, "user"))) copy_str(l->user, sizeof l->user, t);
    if ((t = telemetry_tag_get(p->tags, p->ntags, "pid")) && t->n && t->n < 11) {
      int64_t pid = 0;
      for (size_t i = 0; i < t->n && pid >= 0; i++)
        pid = t->p[i] >= '0' && t->p[i] <= '9' ? pid * 10 + (t->p[i] - '0') : -1;
      l->pid = pid <= INT32_MAX ? pid : -1;
    }
    return true;
  }
  if (is(m, "nvidia_smi")) {
    l->kind = K_GPU;
    t = telemetry_tag_get(p->tags, p->ntags, "index");
    int idx = 0;
    if (!t || !t->n || t->n > 4) return false;
    for (size_t i = 0; i < t->n; i++) {
      if (t->p[i] < '0' || t->p[i] > '9') return false;
      idx = idx * 10 + (t->p[i] - '0');
    }
    if (idx >= MX_MAX_DEVICES) return false;
    l->index = idx;
    if ((t = telemetry_tag_get(p->tags, p->ntags, "name"))) copy_str(l->name, sizeof l->name, t);
    return true;
  }
  return false;
}

static void set(struct tg_line *l, int slot, double v) {
  l->v[slot] = v;
  l->have |= 1u << slot;
}

/* One field of a line, by Telegraf's name, into matrix's slot. */
static void line_field(struct tg_line *l, const struct telemetry_point *p) {
  const struct telemetry_str *f = &p->field;
  double v = p->value;
  switch (l->kind) {
  case K_CPU_TOTAL:
    if (is(f, "usage_idle")) set(l, MX_H_CPU, 100 - v);
    else if (is(f, "usage_iowait")) set(l, MX_H_IOWAIT, v);
    else if (is(f, "usage_steal")) set(l, MX_H_STEAL, v);
    break;
  case K_CPU_CORE:
    if (is(f, "usage_idle")) set(l, 0, 100 - v);
    break;
  case K_MEM:
    if (is(f, "used_percent")) set(l, MX_H_MEM, v);
    else if (is(f, "total")) set(l, MX_H_MEM_TOTAL, v);
    else if (is(f, "available")) set(l, MX_H_MEM_AVAIL, v);
    else if (is(f, "swap_total")) set(l, MX_H_SWAP_TOTAL, v);
    else if (is(f, "swap_free")) set(l, MX_H_SWAP_FREE, v);
    break;
  case K_SYSTEM:
    if (is(f, "load1")) set(l, MX_H_LOAD1, v);
    else if (is(f, "load5")) set(l, MX_H_LOAD5, v);
    else if (is(f, "load15")) set(l, MX_H_LOAD15, v);
    break;
  case K_POWER:
    if (is(f, "current_power_consumption_watts") || is(f, "current_dram_power_consumption_watts"))
      set(l, MX_H_CPU_W, (l->have & (1u << MX_H_CPU_W) ? l->v[MX_H_CPU_W] : 0) + v);
    break;
  case K_PROC:
    if (is(f, "cpu_usage")) set(l, MX_P_CPU, v);
    else if (is(f, "memory_rss")) {
      set(l, MX_P_RSS, v);
      set(l, MX_P_MEM_MB, v / (1024.0 * 1024.0));
    } else if (is(f, "num_threads")) set(l, MX_P_THREADS, v);
    else if (is(f, "pid") && l->pid < 0 && v >= 0 && v <= INT32_MAX) l->pid = (int64_t)v;
    else if (is(f, "ppid") && v >= 0 && v <= INT32_MAX) l->ppid = (int64_t)v;
    else {
      static const char *const names[C_N] = {"read_bytes", "write_bytes", "disk_read_bytes",
                                             "disk_write_bytes", "read_count", "write_count",
                                             "created_at"};
      for (int c = 0; c < C_N; c++)
        if (is(f, names[c]) && v >= 0) {
          l->c[c] = v;
          l->chave |= 1u << c;
          break;
        }
    }
    break;
  case K_GPU:
    if (is(f, "utilization_gpu")) set(l, MX_G_UTIL, v);
    else if (is(f, "utilization_memory")) set(l, MX_G_MEM_UTIL, v);
    else if (is(f, "memory_total")) set(l, MX_G_MEM_TOTAL, v * 1048576.0);
    else if (is(f, "memory_used")) set(l, MX_G_MEM_USED, v * 1048576.0);
    else if (is(f, "power_draw")) set(l, MX_G_POWER, v);
    else if (is(f, "temperature_gpu")) set(l, MX_G_TEMP, v);
    break;
  }
}

static void on_points(const struct telemetry_point *pts, size_t n, struct telemetry_verdict *v,
                      void *arg) {
  (void)v;
  struct matrix_telegraf *tg = arg;
  struct tg_line *lines = malloc(n * sizeof *lines); /* at most one line a point */
  if (!lines) {
    log_error(NULL, "cannot take Telegraf lines into matrix", "points=%zu error=\"%s\"", n,
              grove_strerror(GROVE_ENOMEM));
    return;
  }
  size_t nl = 0;
  const struct telemetry_tag *cur = NULL;
  bool want = false;
  for (size_t i = 0; i < n; i++) {
    const struct telemetry_point *p = &pts[i];
    if (!cur || p->tags != cur) {
      cur = p->tags;
      want = line_start(&lines[nl], p);
      if (want) nl++;
    }
    if (want) line_field(&lines[nl - 1], p);
  }
  /* a process line needs a name or a pid */
  size_t k = 0;
  for (size_t i = 0; i < nl; i++)
    if ((lines[i].have || lines[i].chave) &&
        (lines[i].kind != K_PROC || lines[i].name[0] || lines[i].pid >= 0))
      lines[k++] = lines[i];
  nl = k;
  if (nl) {
    pthread_mutex_lock(&tg->mu);
    size_t room = tg->n < QUEUE_MAX ? QUEUE_MAX - tg->n : 0;
    size_t take = nl < room ? nl : room;
    if (take && ARRAY_GROW(tg->q, tg->cap, tg->n + take, 256, QUEUE_MAX)) take = 0;
    if (take) memcpy(tg->q + tg->n, lines, take * sizeof *lines);
    tg->n += take;
    bool warn = take < nl && tg->dropped == 0;
    tg->dropped += nl - take;
    pthread_mutex_unlock(&tg->mu);
    if (warn)
      log_warn(NULL, "matrix's Telegraf queue is full: lines left out of its views",
               "queued=%d", QUEUE_MAX);
    periodic_wake(tg->thread);
  }
  free(lines);
}

/* ---- the thread: lines → samples → matrix_metrics_write --------------------------- */

/* The thread's record under key, made (zeroed) when new: *fresh says so.
 * NULL when out of memory. */
static struct prev *remember(struct matrix_telegraf *tg, const char *key, bool *fresh) {
  struct prev *p = map_get(&tg->prev, key);
  *fresh = !p;
  if (!p && (!(p = calloc(1, sizeof *p)) || map_put(&tg->prev, key, p, NULL))) {
    free(p);
    return NULL;
  }
  return p;
}

#define OPS_BITS ((1u << C_READS) | (1u << C_WRITES))
#define HAS(bits, c) (((bits) & (1u << (c))) != 0)

/* A process line's figures from procstat's cumulative counters:
 *  - io_read_bytes, io_write_bytes: disk_read_bytes / disk_write_bytes
 *    (bytes that reached storage, /proc/PID/io read_bytes) when the line
 *    has them; else read_bytes / write_bytes (Telegraf before it sent the
 *    disk_* fields, when those were the storage bytes). Cumulative.
 *  - io_operations: read_count + write_count (syscalls) since the previous
 *    sample of the same (host, pid) this thread saw. A restart under the
 *    same pid (created_at changed, or the count went down) counts the new
 *    process's calls; so does a process first seen that started after the
 *    host's previous collection. Otherwise (first sample, late line) the
 *    figure is not given. */
static void counters(struct matrix_telegraf *tg, struct tg_line *l, uint64_t now_ms) {
  int rd = HAS(l->chave, C_DISK_READ) ? C_DISK_READ : C_READ_BYTES;
  int wr = HAS(l->chave, C_DISK_WRITE) ? C_DISK_WRITE : C_WRITE_BYTES;
  if (HAS(l->chave, rd)) set(l, MX_P_IO_READ, l->c[rd]);
  if (HAS(l->chave, wr)) set(l, MX_P_IO_WRITE, l->c[wr]);
  if (l->pid < 0) return;
  bool fresh;
  struct prev *h = remember(tg, l->host, &fresh);
  if (!h) return;
  if (l->ts > h->ts) h->ts_before = h->ts, h->ts = l->ts;
  int64_t before = l->ts == h->ts ? h->ts_before : 0; /* the host's previous collection */
  h->seen_ms = now_ms;
  char key[MX_MAX_NAME + 24];
  snprintf(key, sizeof key, "%s\t%" PRId64, l->host, l->pid);
  struct prev *p = remember(tg, key, &fresh);
  if (!p || (!fresh && l->ts <= p->ts)) return; /* late or repeated: neither figure nor record */
  bool have_ops = (l->chave & OPS_BITS) == OPS_BITS, have_created = HAS(l->chave, C_CREATED);
  double ops = l->c[C_READS] + l->c[C_WRITES], n = -1;
  if (have_ops && !fresh) {
    bool same = !have_created || !HAS(p->chave, C_CREATED) || l->c[C_CREATED] == p->created;
    bool known = (p->chave & OPS_BITS) == OPS_BITS;
    if (same && known && ops >= p->ops) n = ops - p->ops;
    else if ((!same || (known && ops < p->ops)) &&
             (!have_created || l->c[C_CREATED] >= (double)p->ts))
      n = ops; /* restarted under the same pid since the previous sample */
  } else if (have_ops && before > 0 && have_created && l->c[C_CREATED] >= (double)before) {
    n = ops; /* new since the host's previous collection */
  }
  if (n >= 0) set(l, MX_P_IO_OPS, n);
  p->ts = l->ts;
  p->ops = ops;
  p->created = l->c[C_CREATED];
  p->chave = l->chave;
  p->seen_ms = now_ms;
}

/* Forgets what the thread kept of processes and hosts not heard of for the
 * process expiry (at least a minute). */
static void sweep(struct matrix_telegraf *tg, uint64_t now_ms, bool all) {
  uint64_t keep = tg->m->mcfg.expiry_ms > SWEEP_MS ? tg->m->mcfg.expiry_ms : SWEEP_MS;
  const char *k;
  void *v;
  for (size_t it = 0; map_next(&tg->prev, &it, &k, &v);) {
    struct prev *p = v;
    if (all || now_ms - p->seen_ms > keep) free(map_del(&tg->prev, k));
  }
  tg->swept_ms = now_ms;
}

struct group {
  size_t sample;
  size_t nprocs, ngpus, ncores;
};

static int to_batch(struct tg_line *q, size_t n, struct mx_batch *b) {
  struct map groups;
  map_init(&groups);
  struct group *gs = calloc(n ? n : 1, sizeof *gs);
  size_t *of = malloc((n ? n : 1) * sizeof *of); /* each line's group */
  size_t ng = 0;
  int rc = gs && of ? 0 : GROVE_ENOMEM;
  char key[MX_MAX_NAME + 32];
  for (size_t i = 0; !rc && i < n; i++) {
    snprintf(key, sizeof key, "%s\t%" PRId64, q[i].host, q[i].ts);
    void *v = map_get(&groups, key);
    size_t g = v ? (size_t)(uintptr_t)v - 1 : ng;
    if (!v && (rc = map_put(&groups, key, (void *)(uintptr_t)(++ng), NULL))) break;
    of[i] = g;
    gs[g].nprocs += q[i].kind == K_PROC;
    gs[g].ngpus += q[i].kind == K_GPU;
    if (q[i].kind == K_CPU_CORE && (size_t)q[i].index + 1 > gs[g].ncores)
      gs[g].ncores = (size_t)q[i].index + 1;
  }
  if (!rc) rc = mx_batch_init(b, ng);
  for (size_t g = 0; !rc && g < ng; g++) {
    struct mx_sample *s = &b->s[g];
    if ((gs[g].nprocs && !(s->procs = calloc(gs[g].nprocs, sizeof *s->procs))) ||
        (gs[g].ngpus && !(s->gpus = calloc(gs[g].ngpus, sizeof *s->gpus))) ||
        (gs[g].ncores && !(s->cores = calloc(gs[g].ncores, sizeof *s->cores))))
      rc = GROVE_ENOMEM;
  }
  double gpu_util[64];
  for (size_t i = 0; !rc && i < n; i++) {
    struct tg_line *l = &q[i];
    struct mx_sample *s = &b->s[of[i]];
    if (!s->host) {
      if (!(s->host = mx_batch_strdup(b, l->host, strlen(l->host)))) rc = GROVE_ENOMEM;
      s->ts_ns = l->ts;
    }
    switch (l->kind) {
    case K_CPU_TOTAL:
    case K_MEM:
    case K_SYSTEM:
    case K_POWER:
      for (int f = 0; f < MX_H_N; f++)
        if (l->have & (1u << f)) {
          s->h[f] = f == MX_H_CPU_W && (s->hhave & (1u << f)) ? s->h[f] + l->v[f] : l->v[f];
          s->hhave |= 1u << f;
        }
      break;
    case K_CPU_CORE:
      s->cores[l->index] = l->v[0];
      s->ncores = gs[of[i]].ncores;
      break;
    case K_PROC: {
      struct mx_proc *p = &s->procs[s->nprocs++];
      *p = (struct mx_proc){.pid = l->pid, .ppid = l->ppid};
      memcpy(p->v, l->v, sizeof p->v);
      p->have = l->have;
      char tmp[32];
      const char *name = l->name;
      if (!name[0]) snprintf(tmp, sizeof tmp, "pid-%" PRId64, l->pid), name = tmp;
      if (!(p->name = mx_batch_strdup(b, name, strlen(name))) ||
          (l->user[0] && !(p->user = mx_batch_strdup(b, l->user, strlen(l->user)))))
        rc = GROVE_ENOMEM;
      break;
    }
    case K_GPU: {
      struct mx_gpu *g = &s->gpus[s->ngpus++];
      *g = (struct mx_gpu){.index = l->index};
      memcpy(g->v, l->v, sizeof g->v);
      g->have = l->have;
      if (l->name[0] && !(g->name = mx_batch_strdup(b, l->name, strlen(l->name)))) rc = GROVE_ENOMEM;
      break;
    }
    }
  }
  /* what a sample's parts say of the whole host: GPU mean, power */
  for (size_t g = 0; !rc && g < ng; g++) {
    struct mx_sample *s = &b->s[g];
    size_t nu = 0;
    double gw = 0;
    bool gw_known = false;
    for (size_t i = 0; i < s->ngpus && nu < ARRAY_LEN(gpu_util); i++) {
      if (s->gpus[i].have & (1u << MX_G_UTIL)) gpu_util[nu++] = s->gpus[i].v[MX_G_UTIL];
      if (s->gpus[i].have & (1u << MX_G_POWER)) gw += s->gpus[i].v[MX_G_POWER], gw_known = true;
    }
    if (nu) {
      double sum = 0;
      for (size_t i = 0; i < nu; i++) sum += gpu_util[i];
      s->h[MX_H_GPU] = sum / (double)nu;
      s->hhave |= 1u << MX_H_GPU;
    }
    if (gw_known) {
      s->h[MX_H_GPU_W] = gw;
      s->hhave |= 1u << MX_H_GPU_W;
    }
    if (gw_known || (s->hhave & (1u << MX_H_CPU_W))) {
      s->h[MX_H_POWER] = (s->hhave & (1u << MX_H_CPU_W) ? s->h[MX_H_CPU_W] : 0) + gw;
      s->hhave |= 1u << MX_H_POWER;
    }
    b->processes += s->nprocs;
  }
  map_release(&groups);
  free(gs);
  free(of);
  if (rc) mx_batch_release(b);
  return rc;
}

static uint64_t drain(void *arg) {
  struct matrix_telegraf *tg = arg;
  pthread_mutex_lock(&tg->mu);
  struct tg_line *q = tg->q;
  size_t n = tg->n;
  tg->q = NULL;
  tg->n = tg->cap = 0;
  pthread_mutex_unlock(&tg->mu);
  uint64_t now = matrix_now_ms();
  if (now - tg->swept_ms >= SWEEP_MS) sweep(tg, now, false);
  if (!n) return 0;
  for (size_t i = 0; i < n; i++)
    if (q[i].kind == K_PROC) counters(tg, &q[i], now);
  struct mx_batch b;
  char err[512] = "";
  int rc = to_batch(q, n, &b);
  if (!rc) {
    struct mx_applied a;
    rc = matrix_metrics_write(tg->m, &b, true, &a, err, sizeof err);
    if (!rc && a.refused_procs)
      log_warn(NULL, "Telegraf processes past matrix's cap left out",
               "host=\"%s\" refused=%zu max=%d", a.cap_host, a.refused_procs,
               tg->m->mcfg.max_processes);
    mx_batch_release(&b);
  } else {
    snprintf(err, sizeof err, "%s", grove_strerror(rc));
  }
  if (rc)
    log_error(NULL, "cannot write Telegraf lines into matrix's views", "lines=%zu error=\"%s\"", n,
              err);
  free(q);
  return 0;
}

int matrix_telegraf_start(struct matrix *m) {
  if (!m->ctx.telemetry) return 0;
  struct matrix_telegraf *tg = calloc(1, sizeof *tg);
  if (!tg) return GROVE_ENOMEM;
  tg->m = m;
  map_init(&tg->prev);
  tg->swept_ms = matrix_now_ms();
  pthread_mutex_init(&tg->mu, NULL);
  int rc = periodic_start(&tg->thread, 1000, drain, tg);
  if (!rc) {
    struct telemetry_consumer c = {
        .name = "matrix",
        .measurements = measurements,
        .tag = "host",
        .batch = on_points,
        .arg = tg,
    };
    rc = telemetry_consume(m->ctx.telemetry, &c);
    if (rc) periodic_stop(tg->thread);
  }
  if (rc) {
    pthread_mutex_destroy(&tg->mu);
    free(tg);
    return rc;
  }
  m->telegraf = tg;
  return 0;
}

void matrix_telegraf_stop(struct matrix *m) {
  struct matrix_telegraf *tg = m->telegraf;
  if (!tg) return;
  periodic_stop(tg->thread); /* the last run has drained what came before the server stopped */
  drain(tg);
  sweep(tg, matrix_now_ms(), true);
  map_release(&tg->prev);
  pthread_mutex_destroy(&tg->mu);
  free(tg->q);
  free(tg);
  m->telegraf = NULL;
}
