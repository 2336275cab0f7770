/* proc.h — grove-agent's process collector: every process under
 * root/proc with CPU use, resident memory, IO bytes, threads, command,
 * user and cgroup/container (seed 003 §5.1.1 host_process_metrics and
 * vm_process_metrics).
 *
 * Sources (proc(5)): /proc/PID/stat (comm field 2 in parentheses and may
 * itself hold ") "; utime 14, stime 15 in USER_HZ ticks; num_threads 20;
 * starttime 22 in ticks after boot; rss 24 in pages), /proc/PID/status
 * (Uid), /proc/PID/io (read_bytes, write_bytes, syscr, syscw: readable
 * only for one's own processes without root, then left 0 and io_known
 * false), /proc/PID/cmdline, /proc/PID/cgroup.
 *
 * CPU % is the process's ticks between two scans over the elapsed ticks
 * of one core (the host's all-core ticks / cores), as top(1) shows it: a
 * process busy on two cores reads 200 %. A process is the pair (pid,
 * starttime): a pid that reappears with another start time is a new
 * process (PID reuse) and its ticks are not subtracted from the old one's.
 * A process that vanishes while being read (its files gone or ESRCH) is
 * left out of the scan, never half-filled.
 *
 * Not thread-safe: one collector owns a struct proc_table. */
#ifndef GROVE_AGENT_PROC_H
#define GROVE_AGENT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proc_info {
  int pid;
  int ppid;
  uint64_t start_ticks;   /* stat field 22 */
  uint64_t cpu_ticks;     /* utime + stime, cumulative */
  uint64_t delta_ticks;   /* since the previous scan (0 in the first) */
  double cpu_pct;         /* percent of one core */
  uint64_t rss_bytes;
  uint32_t threads;
  bool io_known;
  uint64_t io_read_bytes, io_write_bytes; /* cumulative */
  uint64_t io_ops;        /* syscr + syscw, cumulative */
  uint64_t io_ops_delta;  /* since the previous scan */
  uint32_t uid;
  char user[32];          /* from root/etc/passwd, or the uid in decimal */
  char name[64];          /* comm */
  char command[256];      /* cmdline, arguments joined with spaces (truncated) */
  char cgroup[256];       /* the unified (v2) cgroup path, else the first one */
  char container_id[65];  /* a 64-hex id found in the cgroup path, else "" */
  /* filled by power attribution (power.h): */
  double power_w;
  double gpu_util_pct;
  uint64_t gpu_mem_bytes;
};

struct proc_table {
  struct proc_info *procs; /* n entries, sorted by pid; owned */
  size_t n, cap;
  uint64_t page_size;
  /* users from root/etc/passwd, loaded once */
  struct proc_user { uint32_t uid; char name[32]; } *users;
  size_t nusers;
  bool users_loaded;
  bool scanned;            /* a previous scan exists */
  uint64_t uptime_ticks;   /* /proc/uptime at the previous scan, in ticks */
  uint64_t hz;             /* USER_HZ (sysconf(_SC_CLK_TCK)) */
};

void proc_table_init(struct proc_table *t);
void proc_table_release(struct proc_table *t);
/* Scans root/proc, replacing t's processes; deltas are taken against the
 * previous scan's (pid, start_ticks) entries. elapsed_core_ticks: ticks
 * one core ran between the scans (0 in the first scan: every cpu_pct 0).
 * Returns 0, GROVE_EIO when root/proc cannot be listed, or GROVE_ENOMEM
 * (then t keeps its previous scan). */
int proc_scan(const char *root, struct proc_table *t, uint64_t elapsed_core_ticks);

enum proc_order { PROC_BY_CPU, PROC_BY_MEMORY, PROC_BY_POWER, PROC_BY_IO };
/* Parses "cpu", "memory", "power", "io". Returns 0 or GROVE_EINVAL. */
int proc_order_parse(const char *s, enum proc_order *out);
/* Fills idx[0..k) with the indexes of the k largest processes by order
 * (ties by pid), k = min(top, t->n) or t->n when top == 0. idx has t->n
 * entries. Returns k. */
size_t proc_top(const struct proc_table *t, enum proc_order order, size_t top, size_t *idx);

#endif
