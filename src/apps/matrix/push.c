/* push.c — the push-metrics payload parser and the series of a sample
 * (push.h). The body is read as a stream of events (yajl) straight into
 * struct mx_sample, checked whole: numbers by a table of the keys each
 * object may hold (the seed's names and grove-agent's, with their
 * aliases), strings copied into blocks the batch owns. */
#include "apps/matrix/push.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "core/array.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/map.h"
#include "core/util.h"
#include "series/lineproto.h"

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

/* ---- the body's keys ------------------------------------------------------------ */

/* What a key of an object is: a figure (slot >= 0, an alias yielding to
 * its canonical key when both are given: grove-agent sends both), or one
 * of the keys below (slot -1). */
enum special {
  K_NONE, K_TIMESTAMP, K_SOURCE_TYPE, K_HOSTNAME, K_HOST_ALT, K_VM_NAME, K_AGENT_ID,
  K_HYPERVISOR, K_INSTANCE_TYPE, K_CPU_MODEL, K_SEQ, K_METRICS, K_PROCESSES, K_LOAD_AVERAGE,
  K_CORES, K_GPUS, K_DISKS, K_NETWORKS, K_POWER, K_CPU_ESTIMATED, K_PID, K_PPID,
  K_PROCESS_NAME, K_NAME, K_COMMAND, K_USER, K_CGROUP, K_CONTAINER_ID, K_INDEX
};

struct fkey {
  const char *key;
  size_t len;
  int slot;
  bool alias;
  enum special special;
};
#define FIG(k, s) {k, sizeof k - 1, s, false, K_NONE}
#define ALIAS(k, s) {k, sizeof k - 1, s, true, K_NONE}
#define KEY(k, sp) {k, sizeof k - 1, -1, false, sp}
#define MAX_KEYS 32 /* keys a table holds at most */

static const struct fkey sample_keys[] = {
    KEY("timestamp", K_TIMESTAMP),   KEY("source_type", K_SOURCE_TYPE),
    KEY("hostname", K_HOSTNAME),     KEY("host", K_HOST_ALT),
    KEY("host_name", K_HOST_ALT),    KEY("vm_name", K_VM_NAME),
    KEY("agent_id", K_AGENT_ID),     KEY("hypervisor", K_HYPERVISOR),
    KEY("instance_type", K_INSTANCE_TYPE), KEY("cpu_model", K_CPU_MODEL),
    KEY("seq", K_SEQ),               KEY("metrics", K_METRICS),
    KEY("processes", K_PROCESSES),
};
static const struct fkey host_keys[] = {
    FIG("total_cpu_usage", MX_H_CPU),        ALIAS("cpu_usage", MX_H_CPU),
    FIG("total_memory_usage", MX_H_MEM),     ALIAS("memory_usage", MX_H_MEM),
    FIG("total_gpu_usage", MX_H_GPU),        ALIAS("gpu_utilization", MX_H_GPU),
    FIG("total_power_consumption", MX_H_POWER), ALIAS("power_consumption", MX_H_POWER),
    FIG("system_load_average", MX_H_LOAD1),  FIG("cpu_steal_percent", MX_H_STEAL),
    FIG("cpu_iowait_percent", MX_H_IOWAIT),  FIG("memory_total_bytes", MX_H_MEM_TOTAL),
    FIG("memory_available_bytes", MX_H_MEM_AVAIL),
    FIG("swap_total_bytes", MX_H_SWAP_TOTAL), FIG("swap_free_bytes", MX_H_SWAP_FREE),
    FIG("network_usage_mbps", MX_H_NET),     FIG("process_count", MX_H_PROC_COUNT),
    KEY("processes", K_PROCESSES),           KEY("load_average", K_LOAD_AVERAGE),
    KEY("cpu_cores_percent", K_CORES),       KEY("gpus", K_GPUS),
    KEY("disks", K_DISKS),                   KEY("networks", K_NETWORKS),
    KEY("power", K_POWER),
};
static const struct fkey power_keys[] = {
    FIG("cpu_watts", MX_H_CPU_W),         FIG("cpu_idle_watts", MX_H_CPU_IDLE_W),
    FIG("cpu_active_watts", MX_H_CPU_ACTIVE_W), FIG("gpu_watts", MX_H_GPU_W),
    FIG("gpu_idle_watts", MX_H_GPU_IDLE_W), FIG("gpu_active_watts", MX_H_GPU_ACTIVE_W),
    FIG("unattributed_watts", MX_H_UNATTR_W), KEY("cpu_estimated", K_CPU_ESTIMATED),
};
static const struct fkey proc_keys[] = {
    FIG("cpu_usage_percent", MX_P_CPU),     ALIAS("cpu_usage", MX_P_CPU),
    ALIAS("cpu_percent", MX_P_CPU),         FIG("memory_usage_mb", MX_P_MEM_MB),
    FIG("gpu_utilization_percent", MX_P_GPU), ALIAS("gpu_utilization", MX_P_GPU),
    FIG("power_consumption_watts", MX_P_POWER), ALIAS("power_consumption", MX_P_POWER),
    ALIAS("power_watts", MX_P_POWER),       FIG("io_operations", MX_P_IO_OPS),
    FIG("network_usage_mbps", MX_P_NET),    FIG("rss_bytes", MX_P_RSS),
    FIG("threads", MX_P_THREADS),           FIG("gpu_memory_bytes", MX_P_GPU_MEM),
    FIG("io_read_bytes", MX_P_IO_READ),     FIG("io_write_bytes", MX_P_IO_WRITE),
    FIG("cost_per_hour", MX_P_COST),        KEY("pid", K_PID),
    KEY("ppid", K_PPID),                    KEY("process_name", K_PROCESS_NAME),
    KEY("name", K_NAME),                    KEY("command", K_COMMAND),
    KEY("user", K_USER),                    KEY("cgroup", K_CGROUP),
    KEY("container_id", K_CONTAINER_ID),
};
static const struct fkey gpu_keys[] = {
    FIG("utilization_percent", MX_G_UTIL),  ALIAS("utilization", MX_G_UTIL),
    FIG("memory_utilization_percent", MX_G_MEM_UTIL),
    FIG("memory_total_bytes", MX_G_MEM_TOTAL), FIG("memory_used_bytes", MX_G_MEM_USED),
    FIG("power_watts", MX_G_POWER),         FIG("energy_millijoules", MX_G_ENERGY),
    FIG("temperature_celsius", MX_G_TEMP),  KEY("index", K_INDEX),
    KEY("name", K_NAME),
};
static const struct fkey disk_keys[] = {
    FIG("reads_per_s", MX_D_A), FIG("writes_per_s", MX_D_B),
    FIG("read_bytes_per_s", MX_D_C), FIG("write_bytes_per_s", MX_D_D), KEY("name", K_NAME),
};
static const struct fkey net_keys[] = {
    FIG("rx_bytes_per_s", MX_D_A), FIG("tx_bytes_per_s", MX_D_B),
    FIG("rx_packets_per_s", MX_D_C), FIG("tx_packets_per_s", MX_D_D), KEY("name", K_NAME),
};

_Static_assert(ARRAY_LEN(sample_keys) <= MAX_KEYS && ARRAY_LEN(host_keys) <= MAX_KEYS &&
                   ARRAY_LEN(power_keys) <= MAX_KEYS && ARRAY_LEN(proc_keys) <= MAX_KEYS &&
                   ARRAY_LEN(gpu_keys) <= MAX_KEYS && ARRAY_LEN(disk_keys) <= MAX_KEYS &&
                   ARRAY_LEN(net_keys) <= MAX_KEYS,
               "a key table holds at most MAX_KEYS keys (frame.seen, parse.next)");

/* ---- the streaming reader ------------------------------------------------------------
 *
 * yajl hands the body over as events (a key, a number, the start of an
 * object, …); no tree is built. A stack of frames says where each event
 * lands: the samples, a sample, its metrics, its processes, one process,
 * and so on. A value under a key nobody reads (and all it holds) is
 * skipped by counting its depth. The first bad value records the refusal;
 * parsing goes on to the end only to tell a body that is not JSON at all
 * (INVALID_JSON wins, as when the whole document was parsed first). */

enum frame_kind {
  FR_SAMPLES, FR_SAMPLE, FR_METRICS, FR_POWER, FR_PROCS, FR_PROC, FR_GPUS, FR_GPU, FR_DISKS,
  FR_NETS, FR_DEV, FR_LOADS, FR_CORES
};

/* An object's or an array's place in the body. */
struct frame {
  enum frame_kind kind;
  size_t at_len;             /* the path's length when it was entered */
  const struct fkey *keys;   /* objects: the keys it may hold */
  size_t nkeys;
  uint64_t seen;             /* objects: known keys given (by index), for duplicates */
  size_t depth;              /* objects: the document's nesting inside it (struct keyset) */
  int key;                   /* objects: the current key's index in keys, -1 unknown */
  int prev;                  /* objects: the last known key's index, MAX_KEYS at first */
  uint32_t canon;            /* processes, GPUs, devices: canonical keys given */
  size_t count;              /* arrays: elements so far */
  void *obj;                 /* the struct it fills (mx_sample, mx_proc, …) */
};

#define MAX_FRAMES 8         /* samples > sample > metrics > processes > process */
#define MAX_DEPTH 2048       /* nesting at most (jansson's JSON_PARSER_MAX_DEPTH) */
#define ARENA_BLOCK 65536    /* bytes of a block of the batch's strings */

/* The keys given so far in each object open in the document, for
 * duplicates wherever they stand (read, skipped, or after a refusal),
 * compared by their bytes: a stack (an object's keys are the last ones
 * while it is open, dropped at its end) chained from buckets by hash.
 * The known keys of the objects read are in their frame's seen instead,
 * until a refusal moves them here. */
struct key_entry {
  uint64_t hash;             /* of the bytes and the depth */
  uint32_t next;             /* the entry before it in its bucket, or UINT32_MAX */
  uint32_t depth;            /* the object's: one open object a depth */
  size_t at, len;            /* the key's bytes in bytes */
};
struct keyset {
  struct key_entry *e;
  size_t n, cap;
  uint32_t *bucket;          /* the last entry of each chain, or UINT32_MAX */
  size_t nbucket;            /* a power of two, 0 at first */
  char *bytes;
  size_t nbytes, capbytes;
  uint32_t mark[MAX_DEPTH + 2]; /* entries when each open container began, by depth */
};

struct parse {
  struct mx_batch *b;
  const struct mx_push_limits *lim;
  struct mx_push_error *err;
  char at[96];               /* the current place, "[2].metrics" */
  char key[96];              /* the current key (cut), for messages */
  int rc;                    /* 0, or the first refusal's code */
  bool json_error;           /* the refusal is the body not being JSON */
  bool list;                 /* the body is an array of samples */
  bool top;                  /* the top value has begun */
  size_t skip;               /* depth inside a value being skipped */
  size_t depth;              /* nesting of the whole document */
  size_t capsamples;
  size_t capprocs, capcores, capgpus, capdisks, capnets; /* the current sample's arrays */
  /* the current sample's state between its keys */
  uint32_t canon;            /* canonical host keys given (aliases yield) */
  const char *host, *host_alt;
  bool metrics, procs_metrics, procs_top;
  int nframes;
  struct frame f[MAX_FRAMES];
  /* per kind of object, the key that followed each key last time (and
   * the first, at MAX_KEYS): objects of a kind list theirs in one order,
   * so the guess is mostly right */
  int8_t next[FR_CORES + 1][MAX_KEYS + 1];
  struct keyset keys;
  yajl_handle h;
  size_t end;                /* the byte after the top value, once it ended */
};

static int fail(struct parse *p, int status, const char *code, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(struct parse *p, int status, const char *code, const char *key,
                const char *fmt, ...) {
  if (p->rc)
    return p->rc;
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

static int no_memory(struct parse *p) {
  p->err->status = 503;
  p->err->code = "OUT_OF_MEMORY";
  p->err->path[0] = '\0';
  snprintf(p->err->message, sizeof p->err->message, "server is out of memory");
  return p->rc = GROVE_ENOMEM;
}

/* The body is not JSON: this refusal replaces any other. */
static void not_json(struct parse *p, const char *why) {
  p->json_error = true;
  p->err->status = 400;
  p->err->code = "INVALID_JSON";
  p->err->path[0] = '\0';
  snprintf(p->err->message, sizeof p->err->message, "the body is not JSON: %s", why);
  p->rc = GROVE_EINVAL;
}

/* Appends ".name" (or "[i]") to the path; pop by restoring the length. */
static size_t path_push(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(struct parse *p, const char *fmt, ...) {
  size_t was = strlen(p->at);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->at + was, sizeof p->at - was, fmt, ap);
  va_end(ap);
  return was;
}

/* The batch's strings live in blocks it owns (one allocation for many). */
static char *arena_alloc(struct mx_batch *b, size_t n) {
  if (n > ARENA_BLOCK / 4) { /* a long one gets its own */
    if (ARRAY_GROW(b->own, b->capown, b->nown + 1, 16, ARRAY_NOMAX))
      return NULL;
    char *c = malloc(n);
    if (c)
      b->own[b->nown++] = c;
    return c;
  }
  if (n > b->arena_left) {
    if (ARRAY_GROW(b->own, b->capown, b->nown + 1, 16, ARRAY_NOMAX))
      return NULL;
    char *blk = malloc(ARENA_BLOCK);
    if (!blk)
      return NULL;
    b->own[b->nown++] = blk;
    b->arena = blk;
    b->arena_left = ARENA_BLOCK;
  }
  char *c = b->arena;
  b->arena += n;
  b->arena_left -= n;
  return c;
}

const char *mx_batch_strdup(struct mx_batch *b, const char *s, size_t n) {
  char *c = arena_alloc(b, n + 1);
  if (!c)
    return NULL;
  memcpy(c, s, n);
  c[n] = '\0';
  return c;
}

/* An unknown key: counted; the first distinct ones named in the answer,
 * cut to MX_MAX_NAME bytes (at a character: the key is UTF-8), so a long
 * key does not come back whole. */
static void ignored(struct parse *p, const char *key, size_t n) {
  struct mx_batch *b = p->b;
  b->ignored++;
  if (n > MX_MAX_NAME) {
    n = MX_MAX_NAME;
    while (n && ((unsigned char)key[n] & 0xc0) == 0x80)
      n--;
  }
  for (size_t i = 0; i < b->nignored_names; i++)
    if (strlen(b->ignored_names[i]) == n && !memcmp(b->ignored_names[i], key, n))
      return;
  if (b->nignored_names < MX_MAX_IGNORED_NAMES) {
    const char *c = mx_batch_strdup(b, key, n);
    if (c)
      b->ignored_names[b->nignored_names++] = c;
    else
      no_memory(p);
  }
}

/* A value as an event gives it. */
enum vtype { V_NULL, V_BOOL, V_NUM, V_STR, V_MAP, V_ARR };
struct val {
  enum vtype t;
  bool b;                    /* V_BOOL */
  bool integer;              /* V_NUM written without fraction or exponent */
  int64_t i;                 /* V_NUM integer */
  double d;                  /* V_NUM (integers too) */
  const char *s;             /* V_STR: valid UTF-8, not NUL-ended, gone after the event */
  size_t n;
};

/* A figure of a known key: finite, null as absent (0), true/false as 1/0. */
static int number(struct parse *p, const struct val *v, double *out) {
  if (v->t == V_NULL)
    return 0;
  if (v->t == V_BOOL) {
    *out = v->b;
    return 1;
  }
  if (v->t != V_NUM)
    return fail(p, 400, "INVALID_PAYLOAD", p->key, "must be a number");
  *out = v->d;
  return 1;
}

/* A figure key k of object f: sets its slot (an alias only when the
 * canonical key has not). */
static int figure(struct parse *p, const struct fkey *k, const struct val *v, double *vals,
                  uint32_t *have, uint32_t *canon) {
  double x = 0;
  int rc = number(p, v, &x);
  if (rc <= 0)
    return rc;
  uint32_t bit = 1u << k->slot;
  if (k->alias && (*canon & bit))
    return 0;
  if (!k->alias)
    *canon |= bit;
  vals[k->slot] = x;
  *have |= bit;
  return 0;
}

/* A name (host, VM, device): 1 to MX_MAX_NAME bytes, no control
 * characters; copied into the batch. */
static int name_of(struct parse *p, const struct val *v, const char **out) {
  if (v->t == V_NULL)
    return 0;
  if (v->t != V_STR)
    return fail(p, 400, "INVALID_PAYLOAD", p->key, "must be a string");
  if (v->n == 0 || v->n > MX_MAX_NAME)
    return fail(p, 400, "INVALID_PAYLOAD", p->key, "must be 1 to %d bytes", MX_MAX_NAME);
  for (size_t i = 0; i < v->n; i++)
    if ((unsigned char)v->s[i] < 0x20 || v->s[i] == 0x7f)
      return fail(p, 400, "INVALID_PAYLOAD", p->key, "must hold no control characters");
  if (!(*out = mx_batch_strdup(p->b, v->s, v->n)))
    return no_memory(p);
  return 0;
}

/* A free text (command line, cgroup, user): kept up to max bytes (cut on
 * a character boundary); control characters become '?'. */
static int text_of(struct parse *p, const struct val *v, size_t max, const char **out) {
  if (v->t == V_NULL)
    return 0;
  if (v->t != V_STR)
    return fail(p, 400, "INVALID_PAYLOAD", p->key, "must be a string");
  size_t keep = 0;
  while (keep < v->n) {
    size_t l = utf8_seq_len(v->s + keep, v->n - keep);
    if (!l)
      l = 1; /* yajl hands valid UTF-8 only */
    if (keep + l > max)
      break;
    keep += l;
  }
  char *c = (char *)mx_batch_strdup(p->b, v->s, keep);
  if (!c)
    return no_memory(p);
  for (char *q = c; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == 0x7f)
      *q = '?';
  *out = c;
  return 0;
}

static int integer_of(struct parse *p, const struct val *v, int64_t lo, int64_t hi, int64_t *out) {
  if (v->t == V_NULL)
    return 0;
  if (v->t != V_NUM || !v->integer || v->i < lo || v->i > hi)
    return fail(p, 400, "INVALID_PAYLOAD", p->key,
                "must be an integer from %" PRId64 " to %" PRId64, lo, hi);
  *out = v->i;
  return 1;
}

static int parse_time(struct parse *p, const struct val *v, int64_t *ts) {
  if (v->t == V_STR) {
    char t[64];
    int rc = GROVE_EINVAL;
    if (v->n < sizeof t) {
      memcpy(t, v->s, v->n);
      t[v->n] = '\0';
      rc = time_parse_rfc3339(t, ts);
    }
    if (rc == GROVE_ERANGE)
      return fail(p, 400, "INVALID_PAYLOAD", "timestamp", "is outside 1677-09-21..2262-04-11");
    if (rc)
      return fail(p, 400, "INVALID_PAYLOAD", "timestamp",
                  "must be RFC 3339 (2024-01-15T10:30:00Z) or Unix seconds");
  } else if (v->t == V_NUM) {
    double ns = v->d * 1e9;
    if (!(fabs(ns) < 9223372036854775807.0) || !time_valid(*ts = (int64_t)llround(ns)))
      return fail(p, 400, "INVALID_PAYLOAD", "timestamp", "is outside 1677-09-21..2262-04-11");
  } else if (v->t != V_NULL) {
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

/* ---- frames -------------------------------------------------------------------------- */

static struct frame *push_frame(struct parse *p, enum frame_kind kind, void *obj,
                                const struct fkey *keys, size_t nkeys, size_t at_len) {
  struct frame *f = &p->f[p->nframes++]; /* the grammar nests at most MAX_FRAMES */
  *f = (struct frame){.kind = kind, .at_len = at_len, .keys = keys, .nkeys = nkeys,
                      .depth = p->depth, .key = -1, .prev = MAX_KEYS, .obj = obj};
  return f;
}

/* Enters key's value, a container: the path gains ".key". */
static size_t enter_key(struct parse *p) {
  return path_push(p, "%s%s", p->at[0] ? "." : "", p->key);
}

/* An array of processes, GPUs, disks or networks under the current key. */
static int enter_list(struct parse *p, const struct val *v, enum frame_kind kind, bool null_ok) {
  if (v->t == V_NULL && null_ok)
    return 0;
  if (v->t != V_ARR)
    return fail(p, 400, "INVALID_PAYLOAD", p->key, "must be an array");
  push_frame(p, kind, NULL, NULL, 0, enter_key(p));
  return 0;
}

/* A value under key k of the current sample. */
static int sample_value(struct parse *p, struct mx_sample *s, const struct fkey *k,
                        const struct val *v) {
  int64_t seq = 0;
  switch (k->special) {
  case K_TIMESTAMP: return parse_time(p, v, &s->ts_ns);
  case K_SOURCE_TYPE:
    if (v->t != V_STR || !((v->n == 4 && !memcmp(v->s, "host", 4)) ||
                           (v->n == 2 && !memcmp(v->s, "vm", 2))))
      return fail(p, 400, "INVALID_PAYLOAD", p->key, "must be \"host\" or \"vm\"");
    s->vm = v->s[0] == 'v';
    return 0;
  case K_HOSTNAME: return name_of(p, v, &p->host);
  case K_HOST_ALT: return name_of(p, v, &p->host_alt);
  case K_VM_NAME: return name_of(p, v, &s->vm_name);
  case K_AGENT_ID: return name_of(p, v, &s->agent_id);
  case K_HYPERVISOR: return text_of(p, v, MX_MAX_NAME, &s->hypervisor);
  case K_INSTANCE_TYPE: return text_of(p, v, MX_MAX_NAME, &s->instance_type);
  case K_CPU_MODEL: return text_of(p, v, MX_MAX_NAME, &s->cpu_model);
  case K_SEQ:
    if (integer_of(p, v, 0, INT64_MAX, &seq) > 0) {
      s->seq = (uint64_t)seq;
      s->has_seq = true;
    }
    return p->rc;
  case K_METRICS:
    p->metrics = true;
    if (v->t != V_MAP)
      return fail(p, 400, "INVALID_PAYLOAD", "metrics", "must be an object");
    push_frame(p, FR_METRICS, s, host_keys, ARRAY_LEN(host_keys), enter_key(p));
    return 0;
  case K_PROCESSES:
    p->procs_top |= v->t != V_NULL;
    return enter_list(p, v, FR_PROCS, true);
  default: return 0;
  }
}

static int metrics_value(struct parse *p, struct mx_sample *s, const struct fkey *k,
                         const struct val *v) {
  if (k->slot >= 0)
    return figure(p, k, v, s->h, &s->hhave, &p->canon);
  switch (k->special) {
  case K_PROCESSES:
    p->procs_metrics |= v->t != V_NULL;
    return enter_list(p, v, FR_PROCS, true);
  case K_LOAD_AVERAGE: return enter_list(p, v, FR_LOADS, false);
  case K_CORES: return enter_list(p, v, FR_CORES, true);
  case K_GPUS: return enter_list(p, v, FR_GPUS, true);
  case K_DISKS: return enter_list(p, v, FR_DISKS, true);
  case K_NETWORKS: return enter_list(p, v, FR_NETS, true);
  case K_POWER:
    if (v->t == V_NULL)
      return 0;
    if (v->t != V_MAP)
      return fail(p, 400, "INVALID_PAYLOAD", p->key, "must be an object");
    push_frame(p, FR_POWER, s, power_keys, ARRAY_LEN(power_keys), enter_key(p));
    return 0;
  default: return 0;
  }
}

static int power_value(struct parse *p, struct mx_sample *s, const struct fkey *k,
                       const struct val *v) {
  if (k->slot >= 0)
    return figure(p, k, v, s->h, &s->hhave, &p->canon);
  if (v->t == V_NULL)
    return 0;
  if (v->t != V_BOOL)
    return fail(p, 400, "INVALID_PAYLOAD", p->key, "must be a boolean");
  s->h[MX_H_CPU_ESTIMATED] = v->b;
  s->hhave |= 1u << MX_H_CPU_ESTIMATED;
  return 0;
}

static int proc_value(struct parse *p, struct mx_proc *pr, uint32_t *canon, const struct fkey *k,
                      const struct val *v) {
  if (k->slot >= 0)
    return figure(p, k, v, pr->v, &pr->have, canon);
  switch (k->special) {
  case K_PID: return integer_of(p, v, 0, INT32_MAX, &pr->pid) < 0 ? p->rc : 0;
  case K_PPID: return integer_of(p, v, 0, INT32_MAX, &pr->ppid) < 0 ? p->rc : 0;
  case K_PROCESS_NAME: return text_of(p, v, MX_MAX_NAME, &pr->name);
  case K_NAME: return pr->name ? 0 : text_of(p, v, MX_MAX_NAME, &pr->name);
  case K_COMMAND: return text_of(p, v, MX_MAX_TEXT, &pr->command);
  case K_USER: return text_of(p, v, MX_MAX_NAME, &pr->user);
  case K_CGROUP: return text_of(p, v, MX_MAX_TEXT, &pr->cgroup);
  case K_CONTAINER_ID: return text_of(p, v, MX_MAX_NAME, &pr->container_id);
  default: return 0;
  }
}

static int gpu_value(struct parse *p, struct mx_gpu *g, uint32_t *canon, const struct fkey *k,
                     const struct val *v) {
  if (k->slot >= 0)
    return figure(p, k, v, g->v, &g->have, canon);
  int64_t idx = 0;
  if (k->special == K_INDEX) {
    if (integer_of(p, v, 0, MX_MAX_DEVICES - 1, &idx) > 0)
      g->index = (int)idx;
    return p->rc;
  }
  return text_of(p, v, MX_MAX_NAME, &g->name);
}

/* Makes room for one more element of *arr (cap in *cap); NULL on ENOMEM. */
static void *grow(struct parse *p, void **arr, size_t *cap, size_t n, size_t size) {
  if (n >= *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    void *a = realloc(*arr, c * size);
    if (!a) {
      no_memory(p);
      return NULL;
    }
    *arr = a;
    *cap = c;
  }
  return (char *)*arr + n * size;
}

/* The current sample: the last frame of kind FR_SAMPLE's object. */
static struct mx_sample *cur_sample(struct parse *p) { return &p->b->s[p->b->n - 1]; }

/* An element of the array frame f. */
static int element(struct parse *p, struct frame *f, const struct val *v) {
  size_t i = f->count++;
  struct mx_sample *s = f->kind == FR_SAMPLES ? NULL : cur_sample(p);
  size_t at = 0;
  switch (f->kind) {
  case FR_SAMPLES: {
    if (i >= MX_MAX_SAMPLES) {
      p->at[0] = '\0';
      return fail(p, 413, "TOO_MANY_SAMPLES", NULL, "at most %d samples a request",
                  MX_MAX_SAMPLES);
    }
    at = p->list ? path_push(p, "[%zu]", i) : 0; /* one sample: its place is "" */
    if (v->t != V_MAP)
      return fail(p, 400, "INVALID_PAYLOAD", NULL, "a sample must be an object");
    struct mx_sample *ns = grow(p, (void **)&p->b->s, &p->capsamples, p->b->n, sizeof *ns);
    if (!ns)
      return p->rc;
    memset(ns, 0, sizeof *ns);
    p->b->n++;
    break;
  }
  case FR_PROCS: {
    if (s->nprocs >= MX_MAX_PROCESSES)
      return fail(p, 413, "TOO_MANY_PROCESSES", NULL, "at most %d items", MX_MAX_PROCESSES);
    if (p->b->processes + s->nprocs >= MX_MAX_PROCESSES) {
      p->at[0] = '\0';
      return fail(p, 413, "TOO_MANY_PROCESSES", NULL, "at most %d processes a request",
                  MX_MAX_PROCESSES);
    }
    at = path_push(p, "[%zu]", i);
    if (v->t != V_MAP)
      return fail(p, 400, "INVALID_PAYLOAD", NULL, "must be an object");
    struct mx_proc *pr = grow(p, (void **)&s->procs, &p->capprocs, s->nprocs, sizeof *pr);
    if (!pr)
      return p->rc;
    *pr = (struct mx_proc){.pid = -1, .ppid = -1};
    push_frame(p, FR_PROC, pr, proc_keys, ARRAY_LEN(proc_keys), at);
    s->nprocs++;
    return 0;
  }
  case FR_GPUS:
  case FR_DISKS:
  case FR_NETS: {
    size_t *n = f->kind == FR_GPUS ? &s->ngpus : f->kind == FR_DISKS ? &s->ndisks : &s->nnets;
    if (*n >= MX_MAX_DEVICES)
      return fail(p, 413, "TOO_MANY_ITEMS", NULL, "at most %d items", MX_MAX_DEVICES);
    at = path_push(p, "[%zu]", i);
    if (v->t != V_MAP)
      return fail(p, 400, "INVALID_PAYLOAD", NULL, "must be an object");
    void **arr = f->kind == FR_GPUS ? (void **)&s->gpus
                 : f->kind == FR_DISKS ? (void **)&s->disks : (void **)&s->nets;
    size_t *cap = f->kind == FR_GPUS ? &p->capgpus : f->kind == FR_DISKS ? &p->capdisks
                                                                           : &p->capnets;
    void *e = grow(p, arr, cap, *n, f->kind == FR_GPUS ? sizeof *s->gpus : sizeof *s->disks);
    if (!e)
      return p->rc;
    if (f->kind == FR_GPUS) {
      *(struct mx_gpu *)e = (struct mx_gpu){.index = (int)i};
      push_frame(p, FR_GPU, e, gpu_keys, ARRAY_LEN(gpu_keys), at);
    } else {
      *(struct mx_dev *)e = (struct mx_dev){0};
      push_frame(p, FR_DEV, e, f->kind == FR_DISKS ? disk_keys : net_keys,
                 f->kind == FR_DISKS ? ARRAY_LEN(disk_keys) : ARRAY_LEN(net_keys), at);
    }
    (*n)++;
    return 0;
  }
  case FR_LOADS:
  case FR_CORES: {
    size_t max = f->kind == FR_LOADS ? 3 : MX_MAX_DEVICES;
    if (i >= max)
      return fail(p, 413, "TOO_MANY_ITEMS", NULL, "at most %zu items", max);
    if (v->t != V_NUM)
      return fail(p, 400, "INVALID_PAYLOAD", NULL, "must hold numbers");
    if (f->kind == FR_CORES) {
      double *c = grow(p, (void **)&s->cores, &p->capcores, s->ncores, sizeof *c);
      if (!c)
        return p->rc;
      *c = v->d;
      s->ncores++;
      return 0;
    }
    static const int slot[3] = {MX_H_LOAD1, MX_H_LOAD5, MX_H_LOAD15};
    uint32_t bit = 1u << slot[i];
    if (i == 0 && (p->canon & bit))
      return 0; /* system_load_average given */
    s->h[slot[i]] = v->d;
    s->hhave |= bit;
    return 0;
  }
  default: return 0;
  }
  /* a sample */
  p->canon = 0;
  p->host = p->host_alt = NULL;
  p->metrics = p->procs_metrics = p->procs_top = false;
  p->capprocs = p->capcores = p->capgpus = p->capdisks = p->capnets = 0;
  cur_sample(p)->ts_ns = p->lim->now_ns;
  push_frame(p, FR_SAMPLE, cur_sample(p), sample_keys, ARRAY_LEN(sample_keys), at);
  return 0;
}

/* A value of the current key of object frame f. */
static int member(struct parse *p, struct frame *f, const struct val *v) {
  if (f->key < 0) { /* unknown: skipped, whatever it holds */
    if (v->t == V_MAP || v->t == V_ARR)
      p->skip = 1;
    return 0;
  }
  const struct fkey *k = &f->keys[f->key];
  int rc = 0;
  switch (f->kind) {
  case FR_SAMPLE: rc = sample_value(p, f->obj, k, v); break;
  case FR_METRICS: rc = metrics_value(p, f->obj, k, v); break;
  case FR_POWER: rc = power_value(p, f->obj, k, v); break;
  case FR_PROC: rc = proc_value(p, f->obj, &f->canon, k, v); break;
  case FR_GPU: rc = gpu_value(p, f->obj, &f->canon, k, v); break;
  case FR_DEV:
    if (k->slot >= 0) {
      struct mx_dev *d = f->obj;
      rc = figure(p, k, v, d->v, &d->have, &f->canon);
    } else {
      rc = name_of(p, v, &((struct mx_dev *)f->obj)->name);
    }
    break;
  default: break;
  }
  if (rc)
    return rc;
  /* a container the key's reader did not enter: skipped */
  if ((v->t == V_MAP || v->t == V_ARR) && &p->f[p->nframes - 1] == f)
    p->skip = 1;
  return 0;
}

/* The end of the object on top. */
static int end_object(struct parse *p, struct frame *f) {
  switch (f->kind) {
  case FR_PROC: {
    struct mx_proc *pr = f->obj;
    if (pr->name && !pr->name[0])
      pr->name = NULL;
    if (pr->pid < 0 && !pr->name)
      return fail(p, 400, "INVALID_PAYLOAD", NULL, "a process needs a pid or a process_name");
    if (!pr->name) {
      char tmp[32];
      int n = snprintf(tmp, sizeof tmp, "pid-%" PRId64, pr->pid);
      if (!(pr->name = mx_batch_strdup(p->b, tmp, (size_t)n)))
        return no_memory(p);
    }
    if (!(pr->have & (1u << MX_P_MEM_MB)) && (pr->have & (1u << MX_P_RSS))) {
      pr->v[MX_P_MEM_MB] = pr->v[MX_P_RSS] / (1024.0 * 1024.0);
      pr->have |= 1u << MX_P_MEM_MB;
    }
    return 0;
  }
  case FR_DEV:
    if (!((struct mx_dev *)f->obj)->name)
      return fail(p, 400, "INVALID_PAYLOAD", "name", "is required");
    return 0;
  case FR_SAMPLE: {
    struct mx_sample *s = f->obj;
    if (!p->metrics && !p->procs_top)
      return fail(p, 400, "INVALID_PAYLOAD", "metrics", "is required");
    if (p->procs_metrics && p->procs_top)
      return fail(p, 400, "INVALID_PAYLOAD", "processes", "give processes once (in metrics)");
    const char *host = p->host ? p->host : p->host_alt;
    if (s->vm) {
      if (!s->vm_name)
        s->vm_name = host ? host : p->lim->default_host;
      if (!host)
        host = s->vm_name;
    } else if (!host) {
      host = s->vm_name ? s->vm_name : p->lim->default_host;
    }
    if (!host || (s->vm && !s->vm_name))
      return fail(p, 400, "INVALID_PAYLOAD", "hostname",
                  "is required (the credential names no device to stand for it)");
    s->host = host;
    if (!s->vm)
      s->vm_name = NULL;
    p->b->processes += s->nprocs;
    return 0;
  }
  default: return 0;
  }
}

/* ---- yajl's events ---------------------------------------------------------------- */

/* A value event: an element of the array on top, the value of the
 * object's current key, or the top value. */
static int on_value(struct parse *p, const struct val *v) {
  if (p->rc)
    return 1; /* refused already: yajl goes on only to check the syntax */
  if (p->skip) {
    if (v->t == V_MAP || v->t == V_ARR)
      p->skip++;
    return 1;
  }
  if (!p->top) {
    p->top = true;
    if (v->t == V_ARR) {
      p->list = true;
      push_frame(p, FR_SAMPLES, NULL, NULL, 0, 0);
    } else if (v->t == V_MAP) {
      struct frame root = {.kind = FR_SAMPLES};
      element(p, &root, v);
    } else {
      not_json(p, "'[' or '{' expected");
      return 0;
    }
    return p->rc != GROVE_ENOMEM;
  }
  struct frame *f = &p->f[p->nframes - 1];
  bool array = f->kind == FR_SAMPLES || f->kind == FR_PROCS || f->kind == FR_GPUS ||
               f->kind == FR_DISKS || f->kind == FR_NETS || f->kind == FR_LOADS ||
               f->kind == FR_CORES;
  if (array) {
    int frames = p->nframes;
    if (!element(p, f, v) && (v->t == V_MAP || v->t == V_ARR) && p->nframes == frames)
      p->skip = 1;
  } else {
    member(p, f, v);
  }
  return p->rc != GROVE_ENOMEM;
}

/* Adds key (n bytes) to the object open at depth: 1, or 0 when that
 * object holds it already (not JSON) or memory ran out. */
static int keyset_add(struct parse *p, size_t depth, const void *key, size_t n) {
  struct keyset *ks = &p->keys;
  uint64_t h = hash_bytes(key, n) ^ (uint64_t)depth * 0x9e3779b97f4a7c15ull;
  for (uint32_t i = ks->nbucket ? ks->bucket[h & (ks->nbucket - 1)] : UINT32_MAX; i != UINT32_MAX;
       i = ks->e[i].next) {
    const struct key_entry *e = &ks->e[i];
    if (e->hash == h && e->depth == depth && e->len == n && !memcmp(ks->bytes + e->at, key, n)) {
      not_json(p, "duplicate object key");
      return 0;
    }
  }
  if (ks->n >= UINT32_MAX / 4 || ARRAY_GROW(ks->e, ks->cap, ks->n + 1, 64, ARRAY_NOMAX) ||
      ARRAY_GROW(ks->bytes, ks->capbytes, ks->nbytes + n + 1, 4096, ARRAY_NOMAX)) {
    no_memory(p);
    return 0;
  }
  if (ks->n + 1 > ks->nbucket / 2) { /* rechained in order: the last entry heads its chain */
    size_t nb = ks->nbucket ? ks->nbucket * 2 : 128;
    uint32_t *b = malloc(nb * sizeof *b);
    if (!b) {
      no_memory(p);
      return 0;
    }
    memset(b, 0xff, nb * sizeof *b);
    for (size_t i = 0; i < ks->n; i++) {
      size_t at = ks->e[i].hash & (nb - 1);
      ks->e[i].next = b[at];
      b[at] = (uint32_t)i;
    }
    free(ks->bucket);
    ks->bucket = b;
    ks->nbucket = nb;
  }
  size_t at = h & (ks->nbucket - 1);
  ks->e[ks->n] = (struct key_entry){h, ks->bucket[at], (uint32_t)depth, ks->nbytes, n};
  ks->bucket[at] = (uint32_t)ks->n++;
  memcpy(ks->bytes + ks->nbytes, key, n);
  ks->nbytes += n;
  return 1;
}

/* Drops the entries from the nth on (the keys of objects that ended). */
static void keyset_pop(struct keyset *ks, size_t n) {
  while (ks->n > n) {
    const struct key_entry *e = &ks->e[--ks->n];
    ks->bucket[e->hash & (ks->nbucket - 1)] = e->next;
    ks->nbytes = e->at;
  }
}

static int depth_in(struct parse *p) {
  if (++p->depth > MAX_DEPTH) {
    not_json(p, "too deeply nested");
    return 0;
  }
  p->keys.mark[p->depth] = (uint32_t)p->keys.n;
  return 1;
}

static int ev_null(void *ctx) { return on_value(ctx, &(struct val){.t = V_NULL}); }
static int ev_boolean(void *ctx, int b) { return on_value(ctx, &(struct val){.t = V_BOOL, .b = b}); }

/* A decimal without exponent of at most 15 digits ("12.500"), exactly as
 * strtod reads it: digits and the power of ten are exact doubles, so their
 * quotient is the correctly rounded value (Clinger, "How to read floating
 * point numbers accurately", PLDI 1990, the fast path). false: another
 * form, for strtod. */
static bool plain_decimal(const char *s, size_t n, double *out) {
  static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  size_t i = s[0] == '-', digits = 0, frac = 0;
  bool dot = false;
  int64_t m = 0;
  for (; i < n; i++) {
    if (s[i] == '.') {
      dot = true;
      continue;
    }
    if (s[i] < '0' || s[i] > '9' || ++digits > 15)
      return false;
    m = m * 10 + (s[i] - '0');
    frac += dot;
  }
  double d = (double)m / pow10[frac];
  *out = s[0] == '-' ? -d : d;
  return true;
}

/* Numbers as jansson reads them: an integer (no fraction, no exponent)
 * must fit in 64 bits and a real in a double, or the body is not JSON. */
static int ev_number(void *ctx, const char *s, size_t n) {
  struct parse *p = ctx;
  if (p->json_error)
    return 0;
  char small[64], *t = n < sizeof small ? small : malloc(n + 1);
  if (!t) {
    no_memory(p);
    return 0;
  }
  memcpy(t, s, n);
  t[n] = '\0';
  struct val v = {.t = V_NUM, .integer = true};
  for (size_t i = 0; i < n && v.integer; i++)
    v.integer = s[i] != '.' && s[i] != 'e' && s[i] != 'E';
  errno = 0;
  if (v.integer && n <= 18) { /* at most 18 digits: fits, no overflow to check */
    bool neg = s[0] == '-';
    int64_t x = 0;
    for (size_t i = neg; i < n; i++)
      x = x * 10 + (s[i] - '0');
    v.i = neg ? -x : x;
    v.d = (double)v.i;
  } else if (v.integer) {
    v.i = strtoll(t, NULL, 10);
    v.d = (double)v.i;
    if (errno == ERANGE)
      not_json(p, "too big integer");
  } else if (!plain_decimal(s, n, &v.d)) {
    v.d = strtod(t, NULL);
    if (!isfinite(v.d))
      not_json(p, "real number overflow");
  }
  if (t != small)
    free(t);
  return !p->json_error && on_value(p, &v);
}

static int ev_string(void *ctx, const unsigned char *s, size_t n) {
  struct parse *p = ctx;
  if (memchr(s, 0, n)) { /* as jansson: \u0000 is refused */
    not_json(p, "\\u0000 is not allowed");
    return 0;
  }
  return on_value(p, &(struct val){.t = V_STR, .s = (const char *)s, .n = n});
}

static int ev_start_map(void *ctx) {
  struct parse *p = ctx;
  return depth_in(p) && on_value(p, &(struct val){.t = V_MAP});
}
static int ev_start_array(void *ctx) {
  struct parse *p = ctx;
  return depth_in(p) && on_value(p, &(struct val){.t = V_ARR});
}

static int ev_map_key(void *ctx, const unsigned char *key, size_t n) {
  struct parse *p = ctx;
  if (memchr(key, 0, n)) { /* as jansson: \u0000 is refused */
    not_json(p, "\\u0000 is not allowed");
    return 0;
  }
  /* an object no frame reads (skipped, or after a refusal): its keys
   * checked for duplicates all the same */
  struct frame *f = p->nframes ? &p->f[p->nframes - 1] : NULL;
  if (p->skip || !f || !f->keys || f->depth != p->depth)
    return keyset_add(p, p->depth, key, n);
  size_t cut = n < sizeof p->key ? n : sizeof p->key - 1;
  while (cut < n && cut && ((unsigned char)key[cut] & 0xc0) == 0x80)
    cut--; /* at a character */
  memcpy(p->key, key, cut);
  p->key[cut] = '\0';
  f->key = -1;
  int8_t *guess = &p->next[f->kind][f->prev];
  if (*guess < (int)f->nkeys && f->keys[*guess].len == n && !memcmp(f->keys[*guess].key, key, n)) {
    f->key = *guess;
  } else {
    for (size_t i = 0; i < f->nkeys; i++)
      if (f->keys[i].len == n && !memcmp(f->keys[i].key, key, n)) {
        f->key = (int)i;
        *guess = (int8_t)i;
        break;
      }
  }
  if (f->key >= 0) {
    f->prev = f->key;
    uint64_t bit = (uint64_t)1 << f->key;
    if (f->seen & bit) {
      not_json(p, "duplicate object key");
      return 0;
    }
    f->seen |= bit;
    return 1;
  }
  if (!keyset_add(p, p->depth, key, n))
    return 0;
  if (!p->rc)
    ignored(p, (const char *)key, n);
  return p->rc != GROVE_ENOMEM;
}

/* The end of an object or an array: its frame, if any, goes (after a
 * refusal too: the frames say which objects' keys are in their seen). */
static int ev_end(void *ctx) {
  struct parse *p = ctx;
  int ok = 1;
  if (!p->rc && p->skip) {
    p->skip--;
  } else if (!p->rc) {
    struct frame *f = &p->f[p->nframes - 1];
    bool object = f->kind == FR_SAMPLE || f->kind == FR_METRICS || f->kind == FR_POWER ||
                  f->kind == FR_PROC || f->kind == FR_GPU || f->kind == FR_DEV;
    if (f->kind == FR_SAMPLES && !f->count) {
      p->at[0] = '\0';
      fail(p, 400, "INVALID_PAYLOAD", NULL, "give one sample or an array of samples");
    } else if (!(object && end_object(p, f))) {
      p->at[f->at_len] = '\0';
    }
    ok = p->rc != GROVE_ENOMEM;
  }
  if (p->nframes && p->f[p->nframes - 1].depth == p->depth)
    p->nframes--;
  keyset_pop(&p->keys, p->keys.mark[p->depth]);
  if (!--p->depth)
    p->end = yajl_get_bytes_consumed(p->h);
  return ok;
}

static const yajl_callbacks events = {
    ev_null, ev_boolean, NULL, NULL, ev_number, ev_string,
    ev_start_map, ev_map_key, ev_end, ev_start_array, ev_end,
};

void mx_batch_release(struct mx_batch *b) {
  if (!b)
    return;
  for (size_t i = 0; i < b->n; i++) {
    struct mx_sample *s = &b->s[i];
    free(s->gpus);
    free(s->disks);
    free(s->nets);
    free(s->cores);
    free(s->procs);
  }
  free(b->s);
  for (size_t i = 0; i < b->nown; i++)
    free(b->own[i]);
  free(b->own);
  memset(b, 0, sizeof *b);
}

int mx_batch_init(struct mx_batch *b, size_t n) {
  memset(b, 0, sizeof *b);
  if (n && !(b->s = calloc(n, sizeof *b->s)))
    return GROVE_ENOMEM;
  b->n = n;
  return 0;
}

static int hex4(const char *s) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = (unsigned char)s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0)
      return -1;
    v = v << 4 | d;
  }
  return v;
}

/* Where the body holds a \u escape of half a surrogate pair, unpaired
 * (yajl reads a lone one as '?', or pairs it with whatever escape
 * follows; jansson refuses it), or SIZE_MAX. A backslash stands only in
 * a string in JSON (else the body is not JSON anyway), so the escapes are
 * read from the body's first backslash on. */
static size_t lone_surrogate(const char *s, size_t n) {
  const char *end = s + n;
  for (const char *q = s; (q = memchr(q, '\\', (size_t)(end - q)));) {
    if (end - q < 6 || q[1] != 'u') {
      q += end - q < 2 ? 1 : 2;
      continue;
    }
    int u = hex4(q + 2);
    if (u >= 0xdc00 && u <= 0xdfff)
      return (size_t)(q - s);
    if (u >= 0xd800 && u <= 0xdbff) {
      int lo = end - q >= 12 && q[6] == '\\' && q[7] == 'u' ? hex4(q + 8) : -1;
      if (lo < 0xdc00 || lo > 0xdfff)
        return (size_t)(q - s);
      q += 12;
    } else {
      q += 2;
    }
  }
  return SIZE_MAX;
}

int mx_push_parse(const char *body, size_t len, const struct mx_push_limits *lim,
                  struct mx_batch *out, struct mx_push_error *err) {
  memset(out, 0, sizeof *out);
  memset(err, 0, sizeof *err);
  struct parse p = {.b = out, .lim = lim, .err = err};
  memset(p.next, MAX_KEYS, sizeof p.next); /* no guess yet */
  /* what yajl takes and a document parser does not: bytes that are not
   * UTF-8 (yajl checks only their pattern: overlong forms, surrogates and
   * code points past U+10FFFF pass it), form feeds and vertical tabs as
   * white space (JSON has space, tab, CR, LF; in a string they are
   * control characters), escapes of lone surrogates */
  size_t bad = SIZE_MAX;
  if (!lp_utf8_valid(body, len)) {
    not_json(&p, "invalid UTF-8");
    return p.rc;
  }
  if (memchr(body, '\f', len) || memchr(body, '\v', len)) {
    not_json(&p, "a form feed or vertical tab (not white space in JSON)");
    return p.rc;
  }
  if ((bad = lone_surrogate(body, len)) != SIZE_MAX) {
    char m[64];
    snprintf(m, sizeof m, "invalid Unicode escape (byte %zu)", bad);
    not_json(&p, m);
    return p.rc;
  }
  yajl_handle h = p.h = yajl_alloc(&events, NULL, &p);
  if (!h) {
    no_memory(&p);
    return p.rc;
  }
  /* the whole body is UTF-8 (above), and so every string in it, escapes
   * decoded (lone surrogates refused above): yajl need not check again */
  yajl_config(h, yajl_dont_validate_strings, 1);
  yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
  if (st == yajl_status_ok)
    st = yajl_complete_parse(h);
  if (st == yajl_status_error && !p.json_error && p.rc != GROVE_ENOMEM) {
    unsigned char *why = yajl_get_error(h, 0, (const unsigned char *)body, len);
    size_t at = yajl_get_bytes_consumed(h);
    char m[160];
    snprintf(m, sizeof m, "%s (byte %zu)", why ? (const char *)why : "syntax error", at);
    if (why)
      yajl_free_error(h, why);
    not_json(&p, m);
  } else if (st == yajl_status_ok && !p.top && !p.rc) {
    not_json(&p, "'[' or '{' expected");
  } else if (st == yajl_status_ok && !p.json_error) {
    /* yajl ends a string left open after the top value as if nothing
     * followed: only white space may */
    while (p.end < len && strchr(" \t\r\n", body[p.end]) && body[p.end])
      p.end++;
    if (p.end < len)
      not_json(&p, "trailing garbage");
  }
  yajl_free(h);
  free(p.keys.e);
  free(p.keys.bucket);
  free(p.keys.bytes);
  if (p.rc) {
    mx_batch_release(out);
    return p.rc;
  }
  return 0;
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

size_t mx_i64_dec(int64_t v, char *out) {
  if (v >= 0)
    return u64_to_dec((uint64_t)v, out);
  out[0] = '-';
  return 1 + u64_to_dec((uint64_t)-(v + 1) + 1, out + 1);
}

void mx_proc_key(char *out, size_t n, int64_t pid, const char *name) {
  char num[24];
  size_t k = mx_i64_dec(pid, num), ln = strlen(name);
  if (n < k + 2) {
    if (n)
      out[0] = '\0';
    return;
  }
  if (k + 2 + ln > n)
    ln = n - k - 2; /* names are at most MX_MAX_NAME: not with MX_PROC_KEY */
  memcpy(out, num, k);
  out[k] = '\t';
  memcpy(out + k + 1, name, ln);
  out[k + 1 + ln] = '\0';
}

static void tag_num(struct mx_lines *l, const char *k, int64_t v) {
  size_t n = mx_i64_dec(v, l->nums + l->nnums);
  l->nums[l->nnums + n] = '\0';
  l->num_at[l->ntags] = l->nnums;
  l->tags[l->ntags++] = (struct telemetry_tag){{k, strlen(k)}, {NULL, n}};
  l->nnums += n + 1;
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
