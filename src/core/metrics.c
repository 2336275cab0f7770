/* metrics.c — Prometheus metrics registry, and the process_* metrics
 * every Prometheus client library exports. */
#include "core/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/error.h"
#include "core/jsonout.h"

#define MAX_LABELS 6
#define MAX_BUCKETS 24

static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                         5,      10};

struct metric {
  struct metric *next;
  struct metric_family *fam;
  char *values[MAX_LABELS];
  _Atomic uint64_t bits;    /* counter/gauge value as double bits; hist sum */
  _Atomic uint64_t count;   /* histogram */
  _Atomic uint64_t buckets[]; /* histogram: non-cumulative counts */
};

struct metric_family {
  struct metric_family *next;
  char *name, *help;
  enum metric_type type;
  char *labels[MAX_LABELS];
  int nlabels;
  double bounds[MAX_BUCKETS];
  size_t nbounds;
  pthread_mutex_t lock;
  struct metric *children;
};

#define MAX_COLLECTORS 8

struct metrics {
  pthread_mutex_t lock;
  struct metric_family *families, **tail;
  struct {
    metrics_collect_fn fn;
    void *arg;
  } collectors[MAX_COLLECTORS];
  int ncollectors;
  struct process_metrics *process;
};

int metrics_create(struct metrics **out) {
  struct metrics *m = calloc(1, sizeof *m);
  if (!m)
    return GROVE_ENOMEM;
  pthread_mutex_init(&m->lock, NULL);
  m->tail = &m->families;
  *out = m;
  return 0;
}

static void family_free(struct metric_family *f) {
  struct metric *c = f->children;
  while (c) {
    struct metric *n = c->next;
    for (int i = 0; i < f->nlabels; i++)
      free(c->values[i]);
    free(c);
    c = n;
  }
  for (int i = 0; i < f->nlabels; i++)
    free(f->labels[i]);
  free(f->name);
  free(f->help);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

void metrics_destroy(struct metrics *m) {
  if (!m)
    return;
  free(m->process);
  struct metric_family *f = m->families;
  while (f) {
    struct metric_family *n = f->next;
    family_free(f);
    f = n;
  }
  pthread_mutex_destroy(&m->lock);
  free(m);
}

static struct metric_family *family_new(const char *name, const char *help,
                                        enum metric_type type, const char *labels) {
  struct metric_family *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->name = strdup(name);
  f->help = strdup(help);
  f->type = type;
  pthread_mutex_init(&f->lock, NULL);
  if (!f->name || !f->help)
    goto fail;
  const char *p = labels;
  while (p && *p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (f->nlabels == MAX_LABELS)
      goto fail;
    f->labels[f->nlabels] = strndup(p, n);
    if (!f->labels[f->nlabels++])
      goto fail;
    p = e ? e + 1 : p + n;
  }
  return f;
fail:
  family_free(f);
  return NULL;
}

static struct metric_family *register_family(struct metrics *m, struct metric_family *f) {
  pthread_mutex_lock(&m->lock);
  for (struct metric_family *o = m->families; o; o = o->next)
    if (strcmp(o->name, f->name) == 0) {
      pthread_mutex_unlock(&m->lock);
      int same = o->type == f->type && o->nlabels == f->nlabels;
      family_free(f);
      return same ? o : NULL;
    }
  *m->tail = f;
  m->tail = &f->next;
  pthread_mutex_unlock(&m->lock);
  return f;
}

struct metric_family *metrics_family(struct metrics *m, const char *name,
                                     const char *help, enum metric_type type,
                                     const char *labels) {
  if (type == METRIC_HISTOGRAM)
    return metrics_histogram(m, name, help, labels, NULL, 0);
  struct metric_family *f = family_new(name, help, type, labels);
  return f ? register_family(m, f) : NULL;
}

struct metric_family *metrics_histogram(struct metrics *m, const char *name,
                                        const char *help, const char *labels,
                                        const double *buckets, size_t nbuckets) {
  struct metric_family *f = family_new(name, help, METRIC_HISTOGRAM, labels);
  if (!f)
    return NULL;
  if (!buckets) {
    buckets = default_buckets;
    nbuckets = sizeof default_buckets / sizeof default_buckets[0];
  }
  for (size_t i = 0; i < nbuckets && i < MAX_BUCKETS; i++) {
    if (i && buckets[i] <= buckets[i - 1])
      break;
    f->bounds[f->nbounds++] = buckets[i];
  }
  return register_family(m, f);
}

struct metric *metric_getv(struct metric_family *f, const char *const *values) {
  pthread_mutex_lock(&f->lock);
  struct metric *c;
  for (c = f->children; c; c = c->next) {
    int i = 0;
    while (i < f->nlabels && strcmp(c->values[i], values[i]) == 0)
      i++;
    if (i == f->nlabels)
      goto out;
  }
  size_t nb = f->type == METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
  c = calloc(1, sizeof *c + nb * sizeof(c->buckets[0]));
  if (!c)
    goto out;
  c->fam = f;
  for (int i = 0; i < f->nlabels; i++)
    if (!(c->values[i] = strdup(values[i]))) {
      while (i--)
        free(c->values[i]);
      free(c);
      c = NULL;
      goto out;
    }
  c->next = f->children;
  f->children = c;
out:
  pthread_mutex_unlock(&f->lock);
  return c;
}

struct metric *metric_get(struct metric_family *f, ...) {
  const char *v[MAX_LABELS];
  va_list ap;
  va_start(ap, f);
  for (int i = 0; i < f->nlabels; i++)
    v[i] = va_arg(ap, const char *);
  va_end(ap);
  return metric_getv(f, v);
}

static double from_bits(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

static uint64_t to_bits(double d) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

void metric_add(struct metric *c, double v) {
  if (!c)
    return;
  uint64_t old = atomic_load_explicit(&c->bits, memory_order_relaxed);
  while (!atomic_compare_exchange_weak(&c->bits, &old, to_bits(from_bits(old) + v)))
    ;
}

void metric_set(struct metric *c, double v) {
  if (c)
    atomic_store(&c->bits, to_bits(v));
}

void metric_observe(struct metric *c, double v) {
  if (!c)
    return;
  struct metric_family *f = c->fam;
  size_t i = 0;
  while (i < f->nbounds && v > f->bounds[i])
    i++;
  atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
  metric_add(c, v);
}

double metric_value(const struct metric *c) { return c ? from_bits(atomic_load(&c->bits)) : 0; }

uint64_t metric_count(const struct metric *c) { return c ? atomic_load(&c->count) : 0; }

/* Values in shortest round-trip form, as Prometheus' own clients write
 * them (Go's strconv 'g', -1): a start time in seconds keeps its
 * fraction, a large counter all its digits. */
static void put_num(struct buf *b, double v) {
  if (isinf(v))
    buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  else if (isnan(v))
    buf_puts(b, "NaN");
  else if (v == floor(v) && fabs(v) < 1e15)
    buf_printf(b, "%.0f", v);
  else {
    char num[JSONOUT_DOUBLE_MAX];
    buf_append(b, num, jsonout_double(num, v));
  }
}

static void put_escaped(struct buf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      buf_putc(b, '\\');
    if (*s == '\n') {
      buf_puts(b, "\\n");
      continue;
    }
    buf_putc(b, *s);
  }
}

/* {a="x",b="y"[,le="..."]} or nothing */
static void put_labels(struct buf *b, const struct metric *c, const char *le) {
  const struct metric_family *f = c->fam;
  if (!f->nlabels && !le)
    return;
  buf_putc(b, '{');
  for (int i = 0; i < f->nlabels; i++) {
    buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
    put_escaped(b, c->values[i]);
    buf_putc(b, '"');
  }
  if (le)
    buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
  buf_putc(b, '}');
}

int metrics_on_render(struct metrics *m, metrics_collect_fn fn, void *arg) {
  pthread_mutex_lock(&m->lock);
  int rc = m->ncollectors < MAX_COLLECTORS ? 0 : GROVE_ETOOBIG;
  if (!rc) {
    m->collectors[m->ncollectors].fn = fn;
    m->collectors[m->ncollectors++].arg = arg;
  }
  pthread_mutex_unlock(&m->lock);
  return rc;
}

int metrics_render(struct metrics *m, struct buf *out) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  pthread_mutex_lock(&m->lock);
  int nc = m->ncollectors;
  pthread_mutex_unlock(&m->lock);
  for (int i = 0; i < nc; i++) /* set once, before any render: read without the lock */
    m->collectors[i].fn(m->collectors[i].arg);
  pthread_mutex_lock(&m->lock);
  for (struct metric_family *f = m->families; f; f = f->next) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->type]);
    pthread_mutex_lock(&f->lock);
    for (struct metric *c = f->children; c; c = c->next) {
      if (f->type != METRIC_HISTOGRAM) {
        buf_puts(out, f->name);
        put_labels(out, c, NULL);
        buf_putc(out, ' ');
        put_num(out, metric_value(c));
        buf_putc(out, '\n');
        continue;
      }
      uint64_t cum = 0;
      for (size_t i = 0; i <= f->nbounds; i++) {
        char le[32];
        cum += atomic_load(&c->buckets[i]);
        if (i < f->nbounds)
          snprintf(le, sizeof le, "%g", f->bounds[i]);
        else
          strcpy(le, "+Inf");
        buf_printf(out, "%s_bucket", f->name);
        put_labels(out, c, le);
        buf_printf(out, " %llu\n", (unsigned long long)cum);
      }
      buf_printf(out, "%s_sum", f->name);
      put_labels(out, c, NULL);
      buf_putc(out, ' ');
      put_num(out, metric_value(c));
      buf_printf(out, "\n%s_count", f->name);
      put_labels(out, c, NULL);
      buf_printf(out, " %llu\n", (unsigned long long)metric_count(c));
    }
    pthread_mutex_unlock(&f->lock);
  }
  pthread_mutex_unlock(&m->lock);
  return out->len && out->max && out->len >= out->max ? GROVE_ETOOBIG : 0;
}

/* ---- process metrics ------------------------------------------------------ */

/* The families Prometheus client libraries export for the process
 * (client_golang's process_collector, prometheus_client's
 * ProcessCollector), read from procfs(5) at each render. */
struct process_metrics {
  struct metric *cpu, *rss, *vsize, *open_fds, *max_fds, *start;
};

/* /proc/self/stat fields 14-15 (utime, stime, in clock ticks), 22
 * (starttime, ticks after boot), 23 (vsize, bytes), 24 (rss, pages).
 * The command name (field 2) may hold spaces and parentheses: fields are
 * counted after its last ')'. */
struct proc_stat {
  unsigned long long utime, stime, starttime, vsize, rss;
};

static int read_proc_stat(struct proc_stat *ps) {
  char text[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f)
    return GROVE_EIO;
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  char *p = strrchr(text, ')');
  if (!p)
    return GROVE_EIO;
  unsigned long long v[22] = {0}; /* fields 3 … 24 */
  int k = 0;
  for (p++; k < 22; k++) {
    while (*p == ' ')
      p++;
    if (!*p)
      return GROVE_EIO;
    if (k == 0) /* field 3, the state: a letter */
      p++;
    else
      v[k] = strtoull(p, &p, 10);
  }
  ps->utime = v[11];
  ps->stime = v[12];
  ps->starttime = v[19];
  ps->vsize = v[20];
  ps->rss = v[21];
  return 0;
}

/* Seconds since the epoch when the machine booted ("btime" in /proc/stat). */
static double boot_time(void) {
  FILE *f = fopen("/proc/stat", "r");
  char line[256];
  double t = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "btime ", 6) == 0) {
      t = strtod(line + 6, NULL);
      break;
    }
  if (f)
    fclose(f);
  return t;
}

static void collect_process(void *arg) {
  struct process_metrics *pm = arg;
  struct proc_stat ps;
  double ticks = (double)sysconf(_SC_CLK_TCK);
  if (read_proc_stat(&ps) == 0 && ticks > 0) {
    metric_set(pm->cpu, (double)(ps.utime + ps.stime) / ticks);
    metric_set(pm->vsize, (double)ps.vsize);
    metric_set(pm->rss, (double)ps.rss * (double)sysconf(_SC_PAGESIZE));
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
      if (e->d_name[0] != '.')
        n++;
    closedir(d);
    metric_set(pm->open_fds, (double)(n - 1)); /* less the one opendir holds */
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    metric_set(pm->max_fds, rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
}

static struct metric *process_gauge(struct metrics *m, const char *name, const char *help,
                                    enum metric_type type) {
  struct metric_family *f = metrics_family(m, name, help, type, "");
  return f ? metric_get(f) : NULL;
}

int metrics_add_process(struct metrics *m) {
  if (m->process)
    return 0;
  struct process_metrics *pm = calloc(1, sizeof *pm);
  if (!pm)
    return GROVE_ENOMEM;
  pm->cpu = process_gauge(m, "process_cpu_seconds_total",
                          "Total user and system CPU time spent in seconds.", METRIC_COUNTER);
  pm->open_fds = process_gauge(m, "process_open_fds", "Number of open file descriptors.",
                               METRIC_GAUGE);
  pm->max_fds = process_gauge(m, "process_max_fds", "Maximum number of open file descriptors.",
                              METRIC_GAUGE);
  pm->vsize = process_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                            METRIC_GAUGE);
  pm->rss = process_gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.",
                          METRIC_GAUGE);
  pm->start = process_gauge(m, "process_start_time_seconds",
                            "Start time of the process since unix epoch in seconds.",
                            METRIC_GAUGE);
  if (!pm->cpu || !pm->open_fds || !pm->max_fds || !pm->vsize || !pm->rss || !pm->start) {
    free(pm);
    return GROVE_ENOMEM;
  }
  struct proc_stat ps;
  double ticks = (double)sysconf(_SC_CLK_TCK);
  if (read_proc_stat(&ps) == 0 && ticks > 0)
    metric_set(pm->start, boot_time() + (double)ps.starttime / ticks);
  int rc = metrics_on_render(m, collect_process, pm);
  if (rc) {
    free(pm);
    return rc;
  }
  m->process = pm;
  return 0;
}

int metrics_add_build_info(struct metrics *m, const char *prefix, const char *version,
                           const char *revision) {
  char name[128];
  snprintf(name, sizeof name, "%s_build_info", prefix);
  struct metric_family *f = metrics_family(
      m, name, "A metric with a constant '1' value labeled by the version and source revision.",
      METRIC_GAUGE, "version,revision");
  struct metric *c = f ? metric_get(f, version, revision) : NULL;
  if (!c)
    return GROVE_ENOMEM;
  metric_set(c, 1);
  return 0;
}
