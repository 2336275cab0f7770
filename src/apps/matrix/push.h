/* push.h — matrix's metrics samples: the push-metrics payload parser
 * (seed 003 §6.1.2, and the richer payload grove-agent sends, docs/agent.md)
 * and the series a sample becomes.
 *
 * A body is one sample (a JSON object) or a JSON array of samples (at most
 * MX_MAX_SAMPLES). A sample:
 *
 *   {"timestamp": RFC 3339 or Unix seconds (absent: now),
 *    "source_type": "host" | "vm" (absent: host),
 *    "hostname" | "host" | "host_name", "vm_name", "agent_id", "seq",
 *    "hypervisor", "instance_type", "cpu_model",
 *    "metrics": {"cpu_usage", "memory_usage", "gpu_utilization",
 *                "power_consumption", "total_*", "system_load_average",
 *                "load_average": [1, 5, 15 min], …, "gpus": [...],
 *                "disks": [...], "networks": [...], "power": {...},
 *                "cpu_cores_percent": [...], "processes": [...]}}
 *
 * ("processes" may also sit beside "metrics"). Every key grove-agent sends
 * has a place (a series field, or a column of the current state); other
 * keys are counted in `ignored` (their first names kept for the answer).
 *
 * The series (telemetry's write path; docs/matrix.md lists every field):
 *   host_overall_metrics,host=H[,vm=V]      the sample's host-level figures
 *   host_process_metrics,host=H,pid=P,process=N   (source_type host)
 *   vm_process_metrics,vm=V,pid=P,process=N        (source_type vm)
 *   host_gpu_metrics,host=H[,vm=V],gpu=I     per GPU
 *   host_disk_metrics,host=H[,vm=V],disk=D   per disk
 *   host_network_metrics,host=H[,vm=V],interface=F
 *   host_cpu_core_metrics,host=H[,vm=V],core=C
 * A VM sample's V is its vm_name (else its host name); H its host name
 * (else V).
 *
 * Pure computation; the functions are thread-safe on distinct batches. */
#ifndef GROVE_MATRIX_PUSH_H
#define GROVE_MATRIX_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemetry/telemetry.h"

#define MX_MAX_SAMPLES 1000      /* samples a body holds at most */
#define MX_MAX_PROCESSES 100000  /* processes a sample lists at most */
#define MX_MAX_DEVICES 1024      /* GPUs, disks, networks or cores a sample lists at most */
#define MX_MAX_NAME 253          /* bytes of a host, VM, device or process name */
#define MX_MAX_TEXT 4096         /* bytes kept of a command line or cgroup (longer: cut) */
#define MX_MAX_IGNORED_NAMES 8   /* unknown keys named in an answer */

/* The host-level figures (host_overall_metrics' fields, in this order). */
enum mx_hfield {
  MX_H_CPU, MX_H_MEM, MX_H_GPU, MX_H_POWER, MX_H_LOAD1, MX_H_LOAD5, MX_H_LOAD15,
  MX_H_STEAL, MX_H_IOWAIT, MX_H_MEM_TOTAL, MX_H_MEM_AVAIL, MX_H_SWAP_TOTAL, MX_H_SWAP_FREE,
  MX_H_NET, MX_H_PROC_COUNT, MX_H_CPU_W, MX_H_CPU_IDLE_W, MX_H_CPU_ACTIVE_W, MX_H_GPU_W,
  MX_H_GPU_IDLE_W, MX_H_GPU_ACTIVE_W, MX_H_UNATTR_W, MX_H_CPU_ESTIMATED, MX_H_N
};
/* A process's figures (host_process_metrics' and vm_process_metrics'). */
enum mx_pfield {
  MX_P_CPU, MX_P_MEM_MB, MX_P_GPU, MX_P_POWER, MX_P_IO_OPS, MX_P_NET, MX_P_RSS, MX_P_THREADS,
  MX_P_GPU_MEM, MX_P_IO_READ, MX_P_IO_WRITE, MX_P_COST, MX_P_N
};
/* A GPU's figures (host_gpu_metrics). */
enum mx_gfield {
  MX_G_UTIL, MX_G_MEM_UTIL, MX_G_MEM_TOTAL, MX_G_MEM_USED, MX_G_POWER, MX_G_ENERGY,
  MX_G_TEMP, MX_G_N
};
/* A disk's (host_disk_metrics) or a network interface's (host_network_metrics). */
enum mx_dfield { MX_D_A, MX_D_B, MX_D_C, MX_D_D, MX_D_N };

/* Field names, indexed by the enums above (static strings). */
extern const char *const mx_hfield_names[MX_H_N];
extern const char *const mx_pfield_names[MX_P_N];
extern const char *const mx_gfield_names[MX_G_N];
extern const char *const mx_disk_field_names[MX_D_N];
extern const char *const mx_net_field_names[MX_D_N];

/* Strings of a sample point into the batch (copies it owns): NUL-ended,
 * valid UTF-8, owned by the batch. */
struct mx_proc {
  int64_t pid;               /* -1: not given */
  int64_t ppid;              /* -1: not given */
  const char *name;          /* never NULL (given, or "pid-<pid>") */
  const char *command, *user, *cgroup, *container_id; /* NULL: not given */
  double v[MX_P_N];
  uint32_t have;             /* bit i: v[i] given */
};
struct mx_gpu {
  int index;
  const char *name;          /* NULL: not given */
  double v[MX_G_N];
  uint32_t have;
};
struct mx_dev {
  const char *name;
  double v[MX_D_N];
  uint32_t have;
};

struct mx_sample {
  int64_t ts_ns;
  bool vm;                   /* source_type "vm" */
  const char *host;          /* never NULL */
  const char *vm_name;       /* VMs: never NULL; hosts: NULL */
  const char *agent_id, *hypervisor, *instance_type, *cpu_model; /* NULL: not given */
  bool has_seq;
  uint64_t seq;
  double h[MX_H_N];
  uint32_t hhave;            /* bit i: h[i] given */
  struct mx_gpu *gpus;
  size_t ngpus;
  struct mx_dev *disks, *nets;
  size_t ndisks, nnets;
  double *cores;
  size_t ncores;
  struct mx_proc *procs;
  size_t nprocs;
};

struct mx_batch {
  struct mx_sample *s;
  size_t n;
  size_t processes;          /* summed over samples */
  size_t ignored;            /* unknown keys seen */
  const char *ignored_names[MX_MAX_IGNORED_NAMES]; /* the first distinct ones */
  size_t nignored_names;
  char **own;                /* blocks of the strings the batch copied */
  size_t nown, capown;
  char *arena;               /* the free end of the last block */
  size_t arena_left;
};

/* What a parse refuses: 400 INVALID_JSON / INVALID_PAYLOAD, 413
 * TOO_MANY_SAMPLES / TOO_MANY_PROCESSES; `path` names the place
 * ("[0].metrics.processes[3].pid", "" for the whole body). */
struct mx_push_error {
  int status;
  const char *code;          /* static */
  char message[256];
  char path[128];
};

struct mx_push_limits {
  int64_t now_ns;            /* a sample without a timestamp gets this */
  int64_t max_ahead_ns;      /* later than now_ns + this: refused */
  int64_t oldest_ns;         /* earlier: refused (past raw retention); INT64_MIN: none */
  const char *default_host;  /* the name of a sample that gives none (hostname,
                              * host, host_name, vm_name): the caller's device or
                              * key; NULL: such a sample is refused */
};

/* Parses body (len bytes) into out (zeroed first), as a stream (yajl: no
 * document tree; JSON as jansson takes it: no duplicate keys, no \u0000,
 * integers in 64 bits, nesting at most 2048). Checks the whole body:
 * on any error nothing is returned (out released, *err filled) so that a
 * refused body stores nothing. Returns 0, GROVE_EINVAL (bad input: *err)
 * or GROVE_ENOMEM. */
int mx_push_parse(const char *body, size_t len, const struct mx_push_limits *lim,
                  struct mx_batch *out, struct mx_push_error *err);
/* Frees what out holds and zeroes it. NULL is fine. */
void mx_batch_release(struct mx_batch *b);
/* Copies s (n bytes) into b (owned by it until released); NULL on ENOMEM. */
const char *mx_batch_strdup(struct mx_batch *b, const char *s, size_t n);
/* Starts an empty batch of n samples (zeroed) for a producer that is not
 * the parser (the Telegraf consumer). Returns 0 or GROVE_ENOMEM. */
int mx_batch_init(struct mx_batch *b, size_t n);

/* ---- samples as series ------------------------------------------------------------ */

/* The telemetry lines of a batch, with their tags and fields in arrays it
 * owns; the strings point into the batch (keep it alive as long). The
 * lines' tags and fields pointers are set by mx_lines_finish (the arrays
 * may move while lines are added). */
struct mx_lines {
  struct telemetry_line *lines;
  size_t n, cap;
  struct mx_line_at { size_t tag, field; } *at; /* where each line's tags and fields start */
  size_t capat;
  struct telemetry_tag *tags;
  size_t ntags, captags;
  struct telemetry_field *fields;
  size_t nfields, capfields;
  char *nums;                /* decimal texts of pids, GPU and core numbers */
  size_t nnums, capnums;
  size_t *num_at;            /* for each tag: its value's offset in nums, or SIZE_MAX */
  size_t capnum_at;
};

/* Appends sample s's lines to out: its host line, its devices, and its
 * processes for which keep (may be NULL: all) is true. Returns 0 or
 * GROVE_ENOMEM (out then holds what it held before). */
int mx_lines_add(struct mx_lines *out, const struct mx_sample *s, const bool *keep);
/* Points every line at its tags and fields: call once all are added. */
void mx_lines_finish(struct mx_lines *l);
void mx_lines_release(struct mx_lines *l);

/* A process's identity in a map, "pid\tname" (pid -1: not given), into
 * out (n bytes, NUL-ended; MX_PROC_KEY holds any). */
#define MX_PROC_KEY (MX_MAX_NAME + 32)
void mx_proc_key(char *out, size_t n, int64_t pid, const char *name);
/* v in decimal into out (24 bytes at least); returns its length. */
size_t mx_i64_dec(int64_t v, char *out);

/* The measurement of s's processes. */
static inline const char *mx_proc_measurement(const struct mx_sample *s) {
  return s->vm ? "vm_process_metrics" : "host_process_metrics";
}

#endif
