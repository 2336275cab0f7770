/* push.c — the push-metrics payload parser and the series of a sample
 * (push.h). The body is parsed with jansson, checked whole, then read into
 * struct mx_sample: numbers by a table of the keys each object may hold
 * (the seed's names and grove-agent's, with their aliases), strings kept
 * in the document or copied when they must be cut or cleaned. */
#include "apps/matrix/push.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/util.h"

const char *const mx_hfield_names[MX_H_N] = {
    "total_cpu_usage", "total_memory_usage", "total_gpu_usage", "total_power_consumption",
    "system_load_average", "load_average_5m", "load_average_15m", "cpu_steal_percent",
    "cpu_iowait_percent", "memory_total_bytes", "memory_available_bytes", "swap_total_bytes",
    "swap_free_bytes", "network_usage_mbps", "process_count", "cpu_power_watts",
    "cpu_idle_power_watts", "cpu_active_power_watts", "gpu_power_watts", "gpu_idle_power_watts",
    "gpu_active_power_watts", "unattributed_power_watts", "cpu_power_estimated"};
const char *const mx_pfield_names[MX_P_N] = {
    "cpu_usage_percent", "memory_usage_mb", "gpu_utilization_percent", "power_consumption_watts",
    "io_operations", "network_usage_mbps", "rss_bytes", "threads", "gpu_memory_bytes",
    "io_read_bytes", "io_write_bytes", "cost_per_hour"};
const char *const mx_gfield_names[MX_G_N] = {
    "utilization_percent", "memory_utilization_percent", "memory_total_bytes",
    "memory_used_bytes", "power_watts", "energy_millijoules", "temperature_celsius"};
const char *const mx_disk_field_names[MX_D_N] = {"reads_per_s", "writes_per_s",
                                                 "read_bytes_per_s", "write_bytes_per_s"};
const char *const mx_net_field_names[MX_D_N] = {"rx_bytes_per_s", "tx_bytes_per_s",
                                                "rx_packets_per_s", "tx_packets_per_s"};

/* A key an object may hold: its slot, and whether it is an alias (the
 * canonical key wins when both are given: grove-agent sends both). */
struct fkey {
  const char *key;
  int slot;
  bool alias;
};

static const struct fkey host_keys[] = {
    {"total_cpu_usage", MX_H_CPU, false},        {"cpu_usage", MX_H_CPU, true},
    {"total_memory_usage", MX_H_MEM, false},     {"memory_usage", MX_H_MEM, true},
    {"total_gpu_usage", MX_H_GPU, false},        {"gpu_utilization", MX_H_GPU, true},
    {"total_power_consumption", MX_H_POWER, false}, {"power_consumption", MX_H_POWER, true},
    {"system_load_average", MX_H_LOAD1, false},  {"cpu_steal_percent", MX_H_STEAL, false},
    {"cpu_iowait_percent", MX_H_IOWAIT, false},  {"memory_total_bytes", MX_H_MEM_TOTAL, false},
    {"memory_available_bytes", MX_H_MEM_AVAIL, false},
    {"swap_total_bytes", MX_H_SWAP_TOTAL, false}, {"swap_free_bytes", MX_H_SWAP_FREE, false},
    {"network_usage_mbps", MX_H_NET, false},     {"process_count", MX_H_PROC_COUNT, false},
};
static const struct fkey power_keys[] = {
    {"cpu_watts", MX_H_CPU_W, false},         {"cpu_idle_watts", MX_H_CPU_IDLE_W, false},
    {"cpu_active_watts", MX_H_CPU_ACTIVE_W, false}, {"gpu_watts", MX_H_GPU_W, false},
    {"gpu_idle_watts", MX_H_GPU_IDLE_W, false}, {"gpu_active_watts", MX_H_GPU_ACTIVE_W, false},
    {"unattributed_watts", MX_H_UNATTR_W, false},
};
static const struct fkey proc_keys[] = {
    {"cpu_usage_percent", MX_P_CPU, false},     {"cpu_usage", MX_P_CPU, true},
    {"cpu_percent", MX_P_CPU, true},            {"memory_usage_mb", MX_P_MEM_MB, false},
    {"gpu_utilization_percent", MX_P_GPU, false}, {"gpu_utilization", MX_P_GPU, true},
    {"power_consumption_watts", MX_P_POWER, false}, {"power_consumption", MX_P_POWER, true},
    {"power_watts", MX_P_POWER, true},          {"io_operations", MX_P_IO_OPS, false},
    {"network_usage_mbps", MX_P_NET, false},    {"rss_bytes", MX_P_RSS, false},
    {"threads", MX_P_THREADS, false},           {"gpu_memory_bytes", MX_P_GPU_MEM, false},
    {"io_read_bytes", MX_P_IO_READ, false},     {"io_write_bytes", MX_P_IO_WRITE, false},
    {"cost_per_hour", MX_P_COST, false},
};
static const struct fkey gpu_keys[] = {
    {"utilization_percent", MX_G_UTIL, false},  {"utilization", MX_G_UTIL, true},
    {"memory_utilization_percent", MX_G_MEM_UTIL, false},
    {"memory_total_bytes", MX_G_MEM_TOTAL, false}, {"memory_used_bytes", MX_G_MEM_USED, false},
    {"power_watts", MX_G_POWER, false},         {"energy_millijoules", MX_G_ENERGY, false},
    {"temperature_celsius", MX_G_TEMP, false},
};
static const struct fkey disk_keys[] = {
    {"reads_per_s", MX_D_A, false}, {"writes_per_s", MX_D_B, false},
    {"read_bytes_per_s", MX_D_C, false}, {"write_bytes_per_s", MX_D_D, false},
};
static const struct fkey net_keys[] = {
    {"rx_bytes_per_s", MX_D_A, false}, {"tx_bytes_per_s", MX_D_B, false},
    {"rx_packets_per_s", MX_D_C, false}, {"tx_packets_per_s", MX_D_D, false},
};

/* ---- parse state --------------------------------------------------------------- */

struct parse {
  struct mx_batch *b;
  const struct mx_push_limits *lim;
  struct mx_push_error *err;
  char at[96];               /* the current object's path, "[2].metrics" */
  int rc;
};

static int fail(struct parse *p, int status, const char *code, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(struct parse *p, int status, const char *code, const char *key,
                const char *fmt, ...) {
  p->err->status = status;
  p->err->code = code;
  snprintf(p->err->path, sizeof p->err->path, "%s%s%s", p->at, p->at[0] && key ? "." : "",
           key ? key : "");
  va_list ap;
  va_start(ap, fmt);
  char why[120];
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  snprintf(p->err->message, sizeof p->err->message, "%.128s%s%s", p->err->path,
           p->err->path[0] ? ": " : "", why);
  return p->rc = GROVE_EINVAL;
}

/* Pushes ".name" (or "[i]") onto the path; pop by restoring the length. */
static size_t path_push(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(struct parse *p, const char *fmt, ...) {
  size_t was = strlen(p->at);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->at + was, sizeof p->at - was, fmt, ap);
  va_end(ap);
  return was;
}

static void ignored(struct parse *p, const char *key) {
  struct mx_batch *b = p->b;
  b->ignored++;
  for (size_t i = 0; i < b->nignored_names; i++)
    if (!strcmp(b->ignored_names[i], key)) return;
  if (b->nignored_names < MX_MAX_IGNORED_NAMES) b->ignored_names[b->nignored_names++] = key;
}

const char *mx_batch_strdup(struct mx_batch *b, const char *s, size_t n) {
  if (ARRAY_GROW(b->own, b->capown, b->nown + 1, 16, ARRAY_NOMAX)) return NULL;
  char *c = malloc(n + 1);
  if (!c) return NULL;
  memcpy(c, s, n);
  c[n] = '\0';
  b->own[b->nown++] = c;
  return c;
}

/* A number of a known key: finite (JSON has no NaN), null as absent (0). */
static int number(struct parse *p, const char *key, json_t *v, double *out) {
  if (json_is_null(v)) return 0;
  if (json_is_boolean(v)) {
    *out = json_is_true(v) ? 1 : 0;
    return 1;
  }
  if (!json_is_number(v)) return fail(p, 400, "INVALID_PAYLOAD", key, "must be a number");
  *out = json_number_value(v);
  if (!isfinite(*out)) return fail(p, 400, "INVALID_PAYLOAD", key, "must be a finite number");
  return 1;
}

/* Looks key up in table; sets the slot (an alias only when the canonical
 * key has not set it). Returns 1 (taken), 0 (not a key of the table), or
 * an error. */
static int take(struct parse *p, const struct fkey *t, size_t nt, const char *key, json_t *v,
                double *vals, uint32_t *have, uint32_t *canon) {
  for (size_t i = 0; i < nt; i++) {
    if (t[i].key[0] != key[0] || strcmp(t[i].key, key)) continue;
    double x = 0;
    int rc = number(p, key, v, &x);
    if (rc <= 0) return rc < 0 ? rc : 1;
    uint32_t bit = 1u << t[i].slot;
    if (t[i].alias && (*canon & bit)) return 1;
    if (!t[i].alias) *canon |= bit;
    vals[t[i].slot] = x;
    *have |= bit;
    return 1;
  }
  return 0;
}

/* A name (host, VM, device): 1 to MX_MAX_NAME bytes, no control
 * characters. */
static int name_of(struct parse *p, const char *key, json_t *v, const char **out) {
  if (json_is_null(v)) return 0;
  if (!json_is_string(v)) return fail(p, 400, "INVALID_PAYLOAD", key, "must be a string");
  size_t n = json_string_length(v);
  const char *s = json_string_value(v);
  if (n == 0 || n > MX_MAX_NAME)
    return fail(p, 400, "INVALID_PAYLOAD", key, "must be 1 to %d bytes", MX_MAX_NAME);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return fail(p, 400, "INVALID_PAYLOAD", key, "must hold no control characters");
  *out = s;
  return 1;
}

/* A free text (command line, cgroup, user): kept up to MX_MAX_TEXT bytes
 * (cut on a character boundary); control characters become '?'. */
static int text_of(struct parse *p, const char *key, json_t *v, size_t max, const char **out) {
  if (json_is_null(v)) return 0;
  if (!json_is_string(v)) return fail(p, 400, "INVALID_PAYLOAD", key, "must be a string");
  const char *s = json_string_value(v);
  size_t n = json_string_length(v), keep = 0;
  bool clean = true;
  while (keep < n) {
    size_t l = utf8_seq_len(s + keep, n - keep);
    if (!l) l = 1; /* jansson hands valid UTF-8 only; NUL is refused at parse */
    if (keep + l > max) break;
    if ((unsigned char)s[keep] < 0x20 || s[keep] == 0x7f) clean = false;
    keep += l;
  }
  if (keep == n && clean) {
    *out = s;
    return 1;
  }
  const char *c = mx_batch_strdup(p->b, s, keep);
  if (!c) return p->rc = GROVE_ENOMEM;
  for (char *q = (char *)c; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
  *out = c;
  return 1;
}

static int integer_of(struct parse *p, const char *key, json_t *v, int64_t lo, int64_t hi,
                      int64_t *out) {
  if (json_is_null(v)) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return fail(p, 400, "INVALID_PAYLOAD", key, "must be an integer from %" PRId64 " to %" PRId64,
                lo, hi);
  *out = json_integer_value(v);
  return 1;
}

static int array_of(struct parse *p, const char *key, json_t *v, size_t max, size_t *n) {
  *n = 0;
  if (!json_is_array(v)) return fail(p, 400, "INVALID_PAYLOAD", key, "must be an array");
  *n = json_array_size(v);
  if (*n > max)
    return fail(p, 413, key && !strcmp(key, "processes") ? "TOO_MANY_PROCESSES" : "TOO_MANY_ITEMS",
                key, "at most %zu items", max);
  return 0;
}

/* ---- objects -------------------------------------------------------------------- */

static int parse_proc(struct parse *p, json_t *o, struct mx_proc *pr) {
  if (!json_is_object(o)) return fail(p, 400, "INVALID_PAYLOAD", NULL, "must be an object");
  *pr = (struct mx_proc){.pid = -1, .ppid = -1};
  uint32_t canon = 0;
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    int rc = take(p, proc_keys, ARRAY_LEN(proc_keys), key, v, pr->v, &pr->have, &canon);
    if (rc) {
      if (rc < 0) return rc;
      continue;
    }
    if (!strcmp(key, "pid")) rc = integer_of(p, key, v, 0, INT32_MAX, &pr->pid);
    else if (!strcmp(key, "ppid")) rc = integer_of(p, key, v, 0, INT32_MAX, &pr->ppid);
    else if (!strcmp(key, "process_name") || (!strcmp(key, "name") && !pr->name))
      rc = text_of(p, key, v, MX_MAX_NAME, &pr->name);
    else if (!strcmp(key, "command")) rc = text_of(p, key, v, MX_MAX_TEXT, &pr->command);
    else if (!strcmp(key, "user")) rc = text_of(p, key, v, MX_MAX_NAME, &pr->user);
    else if (!strcmp(key, "cgroup")) rc = text_of(p, key, v, MX_MAX_TEXT, &pr->cgroup);
    else if (!strcmp(key, "container_id")) rc = text_of(p, key, v, MX_MAX_NAME, &pr->container_id);
    else if (strcmp(key, "name")) ignored(p, key);
    if (rc < 0) return rc;
  }
  if (pr->name && !pr->name[0]) pr->name = NULL;
  if (pr->pid < 0 && !pr->name)
    return fail(p, 400, "INVALID_PAYLOAD", NULL, "a process needs a pid or a process_name");
  if (!pr->name) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "pid-%" PRId64, pr->pid);
    if (!(pr->name = mx_batch_strdup(p->b, tmp, (size_t)n))) return p->rc = GROVE_ENOMEM;
  }
  if (!(pr->have & (1u << MX_P_MEM_MB)) && (pr->have & (1u << MX_P_RSS))) {
    pr->v[MX_P_MEM_MB] = pr->v[MX_P_RSS] / (1024.0 * 1024.0);
    pr->have |= 1u << MX_P_MEM_MB;
  }
  return 0;
}

static int parse_gpu(struct parse *p, json_t *o, struct mx_gpu *g, size_t i) {
  if (!json_is_object(o)) return fail(p, 400, "INVALID_PAYLOAD", NULL, "must be an object");
  *g = (struct mx_gpu){.index = (int)i};
  uint32_t canon = 0;
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    int rc = take(p, gpu_keys, ARRAY_LEN(gpu_keys), key, v, g->v, &g->have, &canon);
    if (rc) {
      if (rc < 0) return rc;
      continue;
    }
    int64_t idx = 0;
    if (!strcmp(key, "index")) {
      if ((rc = integer_of(p, key, v, 0, MX_MAX_DEVICES - 1, &idx)) > 0) g->index = (int)idx;
    } else if (!strcmp(key, "name")) rc = text_of(p, key, v, MX_MAX_NAME, &g->name);
    else ignored(p, key);
    if (rc < 0) return rc;
  }
  return 0;
}

static int parse_dev(struct parse *p, json_t *o, struct mx_dev *d, const struct fkey *t,
                     size_t nt) {
  if (!json_is_object(o)) return fail(p, 400, "INVALID_PAYLOAD", NULL, "must be an object");
  *d = (struct mx_dev){0};
  uint32_t canon = 0;
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    int rc = take(p, t, nt, key, v, d->v, &d->have, &canon);
    if (rc) {
      if (rc < 0) return rc;
      continue;
    }
    if (!strcmp(key, "name")) rc = name_of(p, key, v, &d->name);
    else ignored(p, key);
    if (rc < 0) return rc;
  }
  if (!d->name) return fail(p, 400, "INVALID_PAYLOAD", "name", "is required");
  return 0;
}

/* An array of objects under key: allocated (count elements of size),
 * each read by fn. */
typedef int (*elem_fn)(struct parse *p, json_t *o, void *elem, size_t i, const void *arg);

static int parse_list(struct parse *p, const char *key, json_t *v, size_t max, size_t size,
                      void **out, size_t *n, elem_fn fn, const void *arg) {
  if (json_is_null(v)) return 0;
  if (array_of(p, key, v, max, n)) return p->rc;
  if (!*n) return 0;
  if (!(*out = calloc(*n, size))) return p->rc = GROVE_ENOMEM;
  size_t was = path_push(p, "%s%s", p->at[0] ? "." : "", key);
  for (size_t i = 0; i < *n; i++) {
    size_t w2 = path_push(p, "[%zu]", i);
    if (fn(p, json_array_get(v, i), (char *)*out + i * size, i, arg)) return p->rc;
    p->at[w2] = '\0';
  }
  p->at[was] = '\0';
  return 0;
}

static int proc_elem(struct parse *p, json_t *o, void *e, size_t i, const void *arg) {
  (void)i, (void)arg;
  return parse_proc(p, o, e);
}
static int gpu_elem(struct parse *p, json_t *o, void *e, size_t i, const void *arg) {
  (void)arg;
  return parse_gpu(p, o, e, i);
}
static int disk_elem(struct parse *p, json_t *o, void *e, size_t i, const void *arg) {
  (void)i, (void)arg;
  return parse_dev(p, o, e, disk_keys, ARRAY_LEN(disk_keys));
}
static int net_elem(struct parse *p, json_t *o, void *e, size_t i, const void *arg) {
  (void)i, (void)arg;
  return parse_dev(p, o, e, net_keys, ARRAY_LEN(net_keys));
}

static int parse_numbers(struct parse *p, const char *key, json_t *v, size_t max, double *out,
                         size_t *n) {
  if (array_of(p, key, v, max, n)) return p->rc;
  for (size_t i = 0; i < *n; i++) {
    json_t *x = json_array_get(v, i);
    if (!json_is_number(x)) return fail(p, 400, "INVALID_PAYLOAD", key, "must hold numbers");
    out[i] = json_number_value(x);
  }
  return 0;
}

static int parse_metrics(struct parse *p, json_t *m, struct mx_sample *s, uint32_t *canon,
                         json_t **procs) {
  if (!json_is_object(m)) return fail(p, 400, "INVALID_PAYLOAD", "metrics", "must be an object");
  size_t was = path_push(p, "%smetrics", p->at[0] ? "." : "");
  const char *key;
  json_t *v;
  json_object_foreach(m, key, v) {
    int rc = take(p, host_keys, ARRAY_LEN(host_keys), key, v, s->h, &s->hhave, canon);
    if (rc) {
      if (rc < 0) return rc;
      continue;
    }
    if (!strcmp(key, "processes")) {
      *procs = v;
    } else if (!strcmp(key, "load_average")) {
      double la[3];
      size_t n = 0;
      if (parse_numbers(p, key, v, 3, la, &n)) return p->rc;
      static const int slot[3] = {MX_H_LOAD1, MX_H_LOAD5, MX_H_LOAD15};
      for (size_t i = 0; i < n; i++) {
        uint32_t bit = 1u << slot[i];
        if (i == 0 && (*canon & bit)) continue; /* system_load_average given */
        s->h[slot[i]] = la[i];
        s->hhave |= bit;
      }
    } else if (!strcmp(key, "cpu_cores_percent")) {
      if (json_is_null(v)) continue;
      size_t n = 0;
      if (array_of(p, key, v, MX_MAX_DEVICES, &n)) return p->rc;
      if (n && !(s->cores = malloc(n * sizeof *s->cores))) return p->rc = GROVE_ENOMEM;
      if (parse_numbers(p, key, v, MX_MAX_DEVICES, s->cores, &s->ncores)) return p->rc;
    } else if (!strcmp(key, "gpus")) {
      if (parse_list(p, key, v, MX_MAX_DEVICES, sizeof *s->gpus, (void **)&s->gpus, &s->ngpus,
                     gpu_elem, NULL))
        return p->rc;
    } else if (!strcmp(key, "disks")) {
      if (parse_list(p, key, v, MX_MAX_DEVICES, sizeof *s->disks, (void **)&s->disks,
                     &s->ndisks, disk_elem, NULL))
        return p->rc;
    } else if (!strcmp(key, "networks")) {
      if (parse_list(p, key, v, MX_MAX_DEVICES, sizeof *s->nets, (void **)&s->nets, &s->nnets,
                     net_elem, NULL))
        return p->rc;
    } else if (!strcmp(key, "power")) {
      if (json_is_null(v)) continue;
      if (!json_is_object(v)) return fail(p, 400, "INVALID_PAYLOAD", key, "must be an object");
      size_t w2 = path_push(p, ".power");
      const char *k2;
      json_t *v2;
      json_object_foreach(v, k2, v2) {
        if (!strcmp(k2, "cpu_estimated")) {
          if (json_is_null(v2)) continue;
          if (!json_is_boolean(v2)) return fail(p, 400, "INVALID_PAYLOAD", k2, "must be a boolean");
          s->h[MX_H_CPU_ESTIMATED] = json_is_true(v2);
          s->hhave |= 1u << MX_H_CPU_ESTIMATED;
          continue;
        }
        int r2 = take(p, power_keys, ARRAY_LEN(power_keys), k2, v2, s->h, &s->hhave, canon);
        if (r2 < 0) return r2;
        if (!r2) ignored(p, k2);
      }
      p->at[w2] = '\0';
    } else {
      ignored(p, key);
    }
  }
  p->at[was] = '\0';
  return 0;
}

static int parse_time(struct parse *p, json_t *v, int64_t *ts) {
  if (json_is_string(v)) {
    int rc = time_parse_rfc3339(json_string_value(v), ts);
    if (rc == GROVE_ERANGE)
      return fail(p, 400, "INVALID_PAYLOAD", "timestamp", "is outside 1677-09-21..2262-04-11");
    if (rc)
      return fail(p, 400, "INVALID_PAYLOAD", "timestamp",
                  "must be RFC 3339 (2024-01-15T10:30:00Z) or Unix seconds");
  } else if (json_is_number(v)) {
    double ns = json_number_value(v) * 1e9;
    if (!(fabs(ns) < 9223372036854775807.0) || !time_valid(*ts = (int64_t)llround(ns)))
      return fail(p, 400, "INVALID_PAYLOAD", "timestamp", "is outside 1677-09-21..2262-04-11");
  } else if (!json_is_null(v)) {
    return fail(p, 400, "INVALID_PAYLOAD", "timestamp",
                "must be RFC 3339 (2024-01-15T10:30:00Z) or Unix seconds");
  }
  int64_t limit;
  if (!time_add(p->lim->now_ns, p->lim->max_ahead_ns, &limit) && *ts > limit)
    return fail(p, 400, "INVALID_PAYLOAD", "timestamp",
                "is more than %" PRId64 " s ahead of the server's clock",
                p->lim->max_ahead_ns / 1000000000);
  if (*ts < p->lim->oldest_ns)
    return fail(p, 400, "INVALID_PAYLOAD", "timestamp",
                "is older than the raw retention (--series-retention): it would not be kept");
  return 0;
}

static int parse_sample(struct parse *p, json_t *o, struct mx_sample *s) {
  if (!json_is_object(o)) return fail(p, 400, "INVALID_PAYLOAD", NULL, "a sample must be an object");
  s->ts_ns = p->lim->now_ns;
  uint32_t canon = 0;
  json_t *procs = NULL, *procs_top = NULL, *metrics = NULL;
  const char *host = NULL, *host_alt = NULL, *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    int rc = 0;
    if (!strcmp(key, "timestamp")) rc = parse_time(p, v, &s->ts_ns);
    else if (!strcmp(key, "source_type")) {
      const char *st = json_string_value(v);
      if (!st || (strcmp(st, "host") && strcmp(st, "vm")))
        rc = fail(p, 400, "INVALID_PAYLOAD", key, "must be \"host\" or \"vm\"");
      else s->vm = st[0] == 'v';
    } else if (!strcmp(key, "hostname")) rc = name_of(p, key, v, &host);
    else if (!strcmp(key, "host") || !strcmp(key, "host_name")) rc = name_of(p, key, v, &host_alt);
    else if (!strcmp(key, "vm_name")) rc = name_of(p, key, v, &s->vm_name);
    else if (!strcmp(key, "agent_id")) rc = name_of(p, key, v, &s->agent_id);
    else if (!strcmp(key, "hypervisor")) rc = text_of(p, key, v, MX_MAX_NAME, &s->hypervisor);
    else if (!strcmp(key, "instance_type")) rc = text_of(p, key, v, MX_MAX_NAME, &s->instance_type);
    else if (!strcmp(key, "cpu_model")) rc = text_of(p, key, v, MX_MAX_NAME, &s->cpu_model);
    else if (!strcmp(key, "seq")) {
      int64_t seq = 0;
      if ((rc = integer_of(p, key, v, 0, INT64_MAX, &seq)) > 0) {
        s->seq = (uint64_t)seq;
        s->has_seq = true;
      }
    } else if (!strcmp(key, "metrics")) metrics = v;
    else if (!strcmp(key, "processes")) procs_top = v;
    else ignored(p, key);
    if (rc < 0) return rc;
  }
  if (!metrics && !procs_top)
    return fail(p, 400, "INVALID_PAYLOAD", "metrics", "is required");
  if (metrics && parse_metrics(p, metrics, s, &canon, &procs)) return p->rc;
  if (procs && procs_top)
    return fail(p, 400, "INVALID_PAYLOAD", "processes", "give processes once (in metrics)");
  if (!procs) procs = procs_top;
  if (procs) {
    size_t was = procs == procs_top ? 0 : path_push(p, "%smetrics", p->at[0] ? "." : "");
    if (parse_list(p, "processes", procs, MX_MAX_PROCESSES, sizeof *s->procs, (void **)&s->procs,
                   &s->nprocs, proc_elem, NULL))
      return p->rc;
    if (procs != procs_top) p->at[was] = '\0';
  }
  if (!host) host = host_alt;
  if (s->vm) {
    if (!s->vm_name) s->vm_name = host ? host : p->lim->default_host;
    if (!host) host = s->vm_name;
  } else if (!host) {
    host = s->vm_name ? s->vm_name : p->lim->default_host;
  }
  if (!host || (s->vm && !s->vm_name))
    return fail(p, 400, "INVALID_PAYLOAD", "hostname",
                "is required (the credential names no device to stand for it)");
  s->host = host;
  if (!s->vm) s->vm_name = NULL;
  return 0;
}

int mx_batch_init(struct mx_batch *b, size_t n) {
  memset(b, 0, sizeof *b);
  if (n && !(b->s = calloc(n, sizeof *b->s))) return GROVE_ENOMEM;
  b->n = n;
  return 0;
}

void mx_batch_release(struct mx_batch *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n; i++) {
    struct mx_sample *s = &b->s[i];
    free(s->gpus);
    free(s->disks);
    free(s->nets);
    free(s->cores);
    free(s->procs);
  }
  free(b->s);
  for (size_t i = 0; i < b->nown; i++) free(b->own[i]);
  free(b->own);
  json_decref(b->doc);
  memset(b, 0, sizeof *b);
}

int mx_push_parse(const char *body, size_t len, const struct mx_push_limits *lim,
                  struct mx_batch *out, struct mx_push_error *err) {
  memset(out, 0, sizeof *out);
  memset(err, 0, sizeof *err);
  struct parse p = {.b = out, .lim = lim, .err = err};
  json_error_t jerr;
  json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!doc) {
    err->status = 400;
    err->code = "INVALID_JSON";
    snprintf(err->message, sizeof err->message, "the body is not JSON: %s (line %d)", jerr.text,
             jerr.line);
    return GROVE_EINVAL;
  }
  out->doc = doc;
  size_t n = 1;
  bool list = json_is_array(doc);
  if (list) {
    n = json_array_size(doc);
    if (n == 0) {
      fail(&p, 400, "INVALID_PAYLOAD", NULL, "give one sample or an array of samples");
      goto fail;
    }
    if (n > MX_MAX_SAMPLES) {
      fail(&p, 413, "TOO_MANY_SAMPLES", NULL, "at most %d samples a request", MX_MAX_SAMPLES);
      goto fail;
    }
  } else if (!json_is_object(doc)) {
    fail(&p, 400, "INVALID_PAYLOAD", NULL, "give one sample (an object) or an array of samples");
    goto fail;
  }
  if (!(out->s = calloc(n, sizeof *out->s))) {
    p.rc = GROVE_ENOMEM;
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    out->n = i + 1; /* what release must free */
    if (list) snprintf(p.at, sizeof p.at, "[%zu]", i);
    if (parse_sample(&p, list ? json_array_get(doc, i) : doc, &out->s[i])) goto fail;
    if (out->s[i].nprocs > MX_MAX_PROCESSES - out->processes) {
      p.at[0] = '\0';
      fail(&p, 413, "TOO_MANY_PROCESSES", NULL, "at most %d processes a request",
           MX_MAX_PROCESSES);
      goto fail;
    }
    out->processes += out->s[i].nprocs;
  }
  return 0;
fail:;
  int rc = p.rc ? p.rc : GROVE_EINVAL;
  if (rc == GROVE_ENOMEM) {
    err->status = 503;
    err->code = "OUT_OF_MEMORY";
    snprintf(err->message, sizeof err->message, "server is out of memory");
  }
  mx_batch_release(out);
  return rc;
}

/* ---- series ----------------------------------------------------------------------- */

static int grow_lines(struct mx_lines *l, size_t lines, size_t tags, size_t fields, size_t nums) {
  if (ARRAY_GROW(l->lines, l->cap, l->n + lines, 64, ARRAY_NOMAX) ||
      ARRAY_GROW(l->at, l->capat, l->n + lines, 64, ARRAY_NOMAX) ||
      ARRAY_GROW(l->tags, l->captags, l->ntags + tags, 256, ARRAY_NOMAX) ||
      ARRAY_GROW(l->num_at, l->capnum_at, l->ntags + tags, 256, ARRAY_NOMAX) ||
      ARRAY_GROW(l->fields, l->capfields, l->nfields + fields, 1024, ARRAY_NOMAX) ||
      ARRAY_GROW(l->nums, l->capnums, l->nnums + nums, 1024, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  return 0;
}

static void tag(struct mx_lines *l, const char *k, const char *v) {
  l->num_at[l->ntags] = SIZE_MAX;
  l->tags[l->ntags++] = (struct telemetry_tag){{k, strlen(k)}, {v, strlen(v)}};
}

static void tag_num(struct mx_lines *l, const char *k, int64_t v) {
  int n = snprintf(l->nums + l->nnums, 24, "%" PRId64, v);
  l->num_at[l->ntags] = l->nnums;
  l->tags[l->ntags++] = (struct telemetry_tag){{k, strlen(k)}, {NULL, (size_t)n}};
  l->nnums += (size_t)n + 1;
}

/* The sample's own tags: host=H, and vm=V for a VM. */
static void tags_of(struct mx_lines *l, const struct mx_sample *s) {
  tag(l, "host", s->host);
  if (s->vm) tag(l, "vm", s->vm_name);
}

static void line(struct mx_lines *l, const char *measurement, size_t tag0, size_t field0,
                 int64_t ts) {
  size_t i = l->n++;
  l->lines[i] = (struct telemetry_line){{measurement, strlen(measurement)}, NULL,
                                        (int)(l->ntags - tag0), NULL,
                                        (int)(l->nfields - field0), ts};
  l->at[i] = (struct mx_line_at){tag0, field0};
}

static size_t fields(struct mx_lines *l, const char *const *names, const double *v, size_t n,
                     uint32_t have) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (have & (1u << i)) {
      l->fields[l->nfields++] = (struct telemetry_field){{names[i], strlen(names[i])}, v[i]};
      k++;
    }
  return k;
}

int mx_lines_add(struct mx_lines *l, const struct mx_sample *s, const bool *keep) {
  size_t nl = 1 + s->ngpus + s->ndisks + s->nnets + s->ncores + s->nprocs;
  size_t was_u = l->nnums;
  if (grow_lines(l, nl, 4 * nl, MX_H_N + MX_G_N * s->ngpus + MX_D_N * (s->ndisks + s->nnets) +
                                     s->ncores + MX_P_N * s->nprocs,
                 24 * (s->ngpus + s->ncores + s->nprocs)))
    return GROVE_ENOMEM;
  size_t t0 = l->ntags, f0 = l->nfields;
  tags_of(l, s);
  if (fields(l, mx_hfield_names, s->h, MX_H_N, s->hhave)) line(l, "host_overall_metrics", t0, f0, s->ts_ns);
  else l->ntags = t0;
  for (size_t i = 0; i < s->ngpus; i++) {
    t0 = l->ntags, f0 = l->nfields;
    tags_of(l, s);
    tag_num(l, "gpu", s->gpus[i].index);
    if (fields(l, mx_gfield_names, s->gpus[i].v, MX_G_N, s->gpus[i].have))
      line(l, "host_gpu_metrics", t0, f0, s->ts_ns);
    else l->ntags = t0, l->nnums = was_u; /* nothing else added since */
    was_u = l->nnums;
  }
  for (size_t i = 0; i < s->ndisks + s->nnets; i++) {
    bool disk = i < s->ndisks;
    const struct mx_dev *d = disk ? &s->disks[i] : &s->nets[i - s->ndisks];
    t0 = l->ntags, f0 = l->nfields;
    tags_of(l, s);
    tag(l, disk ? "disk" : "interface", d->name);
    if (fields(l, disk ? mx_disk_field_names : mx_net_field_names, d->v, MX_D_N, d->have))
      line(l, disk ? "host_disk_metrics" : "host_network_metrics", t0, f0, s->ts_ns);
    else l->ntags = t0;
  }
  for (size_t i = 0; i < s->ncores; i++) {
    t0 = l->ntags, f0 = l->nfields;
    tags_of(l, s);
    tag_num(l, "core", (int64_t)i);
    l->fields[l->nfields++] = (struct telemetry_field){{"usage_percent", 13}, s->cores[i]};
    line(l, "host_cpu_core_metrics", t0, f0, s->ts_ns);
  }
  const char *pm = mx_proc_measurement(s);
  for (size_t i = 0; i < s->nprocs; i++) {
    const struct mx_proc *p = &s->procs[i];
    if (keep && !keep[i]) continue;
    t0 = l->ntags, f0 = l->nfields;
    size_t u0 = l->nnums;
    if (s->vm) tag(l, "vm", s->vm_name);
    else tag(l, "host", s->host);
    if (p->pid >= 0) tag_num(l, "pid", p->pid);
    tag(l, "process", p->name);
    if (fields(l, mx_pfield_names, p->v, MX_P_N, p->have)) line(l, pm, t0, f0, s->ts_ns);
    else l->ntags = t0, l->nnums = u0;
  }
  return 0;
}

void mx_lines_finish(struct mx_lines *l) {
  for (size_t i = 0; i < l->ntags; i++)
    if (l->num_at[i] != SIZE_MAX) l->tags[i].value.p = l->nums + l->num_at[i];
  for (size_t i = 0; i < l->n; i++) {
    l->lines[i].tags = l->lines[i].ntags ? l->tags + l->at[i].tag : NULL;
    l->lines[i].fields = l->fields + l->at[i].field;
  }
}

void mx_lines_release(struct mx_lines *l) {
  if (!l) return;
  free(l->lines);
  free(l->at);
  free(l->tags);
  free(l->num_at);
  free(l->fields);
  free(l->nums);
  memset(l, 0, sizeof *l);
}
