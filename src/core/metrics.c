/* metrics.c — Prometheus metrics registry. */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

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

struct metrics {
  pthread_mutex_t lock;
  struct metric_family *families, **tail;
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

static void put_num(struct buf *b, double v) {
  if (isinf(v))
    buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 1e15)
    buf_printf(b, "%.0f", v);
  else
    buf_printf(b, "%.9g", v);
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

int metrics_render(struct metrics *m, struct buf *out) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
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
