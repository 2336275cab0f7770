/* expo.c — the Prometheus text exposition of a sample (see expo.h). */
#include "agent/expo.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/real.h"

int expo_label_value(struct buf *b, const char *s, size_t n) {
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0;) {
    unsigned char c = (unsigned char)s[i];
    size_t len = utf8_seq_len(s + i, n - i);
    if (c == '\\')
      rc = buf_puts(b, "\\\\");
    else if (c == '"')
      rc = buf_puts(b, "\\\"");
    else if (c == '\n')
      rc = buf_puts(b, "\\n");
    else if (len == 0 || c < 0x20 || c == 0x7f)
      rc = buf_puts(b, "\xef\xbf\xbd"); /* U+FFFD */
    else
      rc = buf_append(b, s + i, len);
    i += len ? len : 1;
  }
  return rc;
}

/* One family's header. */
static int family(struct buf *b, const char *name, const char *type, const char *help) {
  return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample line: name{labels} value. labels: NULL-terminated pairs of
 * label name and value, or NULL. */
static int line(struct buf *b, const char *name, const char *const *labels, double v) {
  int rc = buf_puts(b, name);
  if (rc == 0 && labels && labels[0]) {
    rc = buf_putc(b, '{');
    for (size_t i = 0; rc == 0 && labels[i]; i += 2) {
      rc = buf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
      if (rc == 0) rc = expo_label_value(b, labels[i + 1], strlen(labels[i + 1]));
      if (rc == 0) rc = buf_putc(b, '"');
    }
    if (rc == 0) rc = buf_putc(b, '}');
  }
  if (rc) return rc;
  char num[REAL_SHORTEST_MAX];
  real_shortest(num, v);
  return buf_printf(b, " %s\n", num);
}

static int one(struct buf *b, const char *name, const char *type, const char *help, double v) {
  int rc = family(b, name, type, help);
  return rc ? rc : line(b, name, NULL, v);
}

#define P(x) do { if ((rc = (x)) != 0) return rc; } while (0)

static int cpu(struct buf *b, const struct report_in *in) {
  int rc;
  double hz = in->procs->hz ? (double)in->procs->hz : 100.0;
  const struct host_cpu *t = &in->cur->total;
  const struct { const char *mode; uint64_t ticks; } modes[] = {
      {"user", t->user},     {"nice", t->nice}, {"system", t->system},   {"idle", t->idle},
      {"iowait", t->iowait}, {"irq", t->irq},   {"softirq", t->softirq}, {"steal", t->steal},
  };
  P(family(b, "grove_agent_cpu_seconds_total", "counter",
           "Seconds all CPUs spent in each mode (/proc/stat)."));
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    const char *l[] = {"mode", modes[i].mode, NULL};
    P(line(b, "grove_agent_cpu_seconds_total", l, (double)modes[i].ticks / hz));
  }
  P(one(b, "grove_agent_cpu_usage_ratio", "gauge",
        "Busy share of all CPUs over the last interval (0-1).", in->rates->cpu_pct / 100));
  P(family(b, "grove_agent_cpu_core_usage_ratio", "gauge",
           "Busy share of each core over the last interval (0-1)."));
  for (size_t i = 0; i < in->rates->ncores; i++) {
    char core[24];
    snprintf(core, sizeof core, "%zu", i);
    const char *l[] = {"core", core, NULL};
    P(line(b, "grove_agent_cpu_core_usage_ratio", l, in->rates->core_pct[i] / 100));
  }
  return 0;
}

static int memory(struct buf *b, const struct report_in *in) {
  int rc;
  const struct host_snap *c = in->cur;
  P(one(b, "grove_agent_memory_total_bytes", "gauge", "MemTotal (/proc/meminfo).",
        (double)c->mem_total_kb * 1024));
  P(one(b, "grove_agent_memory_available_bytes", "gauge", "MemAvailable (/proc/meminfo).",
        (double)c->mem_available_kb * 1024));
  P(one(b, "grove_agent_swap_total_bytes", "gauge", "SwapTotal (/proc/meminfo).",
        (double)c->swap_total_kb * 1024));
  P(one(b, "grove_agent_swap_free_bytes", "gauge", "SwapFree (/proc/meminfo).",
        (double)c->swap_free_kb * 1024));
  P(one(b, "grove_agent_load1", "gauge", "1-minute load average.", c->load[0]));
  P(one(b, "grove_agent_load5", "gauge", "5-minute load average.", c->load[1]));
  P(one(b, "grove_agent_load15", "gauge", "15-minute load average.", c->load[2]));
  return 0;
}

/* Four counters per device (host_dev's a, b, c, d), each its own family. */
static int devices(struct buf *b, const struct host_dev *devs, size_t n, const char *const names[4],
                   const char *const helps[4], const double scale[4]) {
  int rc;
  for (int k = 0; k < 4; k++) {
    P(family(b, names[k], "counter", helps[k]));
    for (size_t i = 0; i < n; i++) {
      const uint64_t v[4] = {devs[i].a, devs[i].b, devs[i].c, devs[i].d};
      const char *l[] = {"device", devs[i].name, NULL};
      P(line(b, names[k], l, (double)v[k] * scale[k]));
    }
  }
  return 0;
}

static int io(struct buf *b, const struct report_in *in) {
  static const char *const disk[4] = {
      "grove_agent_disk_reads_completed_total", "grove_agent_disk_writes_completed_total",
      "grove_agent_disk_read_bytes_total", "grove_agent_disk_written_bytes_total"};
  static const char *const disk_help[4] = {
      "Reads completed (/proc/diskstats).", "Writes completed (/proc/diskstats).",
      "Bytes read (sectors of 512 bytes, /proc/diskstats).",
      "Bytes written (sectors of 512 bytes, /proc/diskstats)."};
  static const double disk_scale[4] = {1, 1, 512, 512};
  static const char *const net[4] = {
      "grove_agent_network_receive_bytes_total", "grove_agent_network_transmit_bytes_total",
      "grove_agent_network_receive_packets_total", "grove_agent_network_transmit_packets_total"};
  static const char *const net_help[4] = {"Bytes received (/proc/net/dev).",
                                          "Bytes sent (/proc/net/dev).",
                                          "Packets received (/proc/net/dev).",
                                          "Packets sent (/proc/net/dev)."};
  static const double net_scale[4] = {1, 1, 1, 1};
  int rc;
  P(devices(b, in->cur->disks, in->cur->ndisks, disk, disk_help, disk_scale));
  return devices(b, in->cur->nets, in->cur->nnets, net, net_help, net_scale);
}

static int power(struct buf *b, const struct report_in *in) {
  int rc;
  const struct power_result *pw = in->power;
  P(family(b, "grove_agent_rapl_energy_joules_total", "counter",
           "RAPL energy counter of each zone (powercap energy_uj; resets when it wraps)."));
  for (size_t i = 0; i < in->cur->nrapl; i++) {
    const char *l[] = {"zone", in->cur->rapl[i].name, NULL};
    P(line(b, "grove_agent_rapl_energy_joules_total", l, (double)in->cur->rapl[i].energy_uj / 1e6));
  }
  P(family(b, "grove_agent_power_watts", "gauge",
           "Mean power over the last interval, idle and active parts (docs/agent.md)."));
  const struct { const char *component, *part; double w; } parts[] = {
      {"cpu", "idle", pw->cpu_idle_w}, {"cpu", "active", pw->cpu_active_w},
      {"gpu", "idle", pw->gpu_idle_w}, {"gpu", "active", pw->gpu_active_w},
  };
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    const char *l[] = {"component", parts[i].component, "part", parts[i].part, NULL};
    P(line(b, "grove_agent_power_watts", l, parts[i].w));
  }
  P(family(b, "grove_agent_power_estimated", "gauge",
           "1 when the CPU's power is a model (no readable RAPL counter), else 0."));
  const char *cpu_l[] = {"component", "cpu", NULL};
  P(line(b, "grove_agent_power_estimated", cpu_l, pw->cpu_estimated ? 1 : 0));
  return one(b, "grove_agent_power_unattributed_watts", "gauge",
             "Active power no listed process was given.", pw->unattributed_w);
}

static int gpus(struct buf *b, const struct report_in *in) {
  static const char *const names[] = {"grove_agent_gpu_utilization_ratio",
                                      "grove_agent_gpu_memory_used_bytes",
                                      "grove_agent_gpu_memory_total_bytes",
                                      "grove_agent_gpu_power_watts",
                                      "grove_agent_gpu_energy_joules_total"};
  static const char *const helps[] = {"GPU busy share (NVML utilization.gpu, 0-1).",
                                      "GPU memory in use (NVML).", "GPU memory (NVML).",
                                      "GPU power draw (NVML, from milliwatts).",
                                      "GPU energy counter (NVML, from millijoules)."};
  int rc;
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    P(family(b, names[k], k == 4 ? "counter" : "gauge", helps[k]));
    for (size_t g = 0; g < in->ngpus; g++) {
      const struct gpu_dev *d = &in->gpus[g];
      if ((k == 3 && !d->power_known) || (k == 4 && !d->energy_known))
        continue;
      const double v[] = {d->util_pct / 100, (double)d->mem_used_bytes,
                          (double)d->mem_total_bytes, d->power_w, (double)d->energy_mj / 1e3};
      char idx[24];
      snprintf(idx, sizeof idx, "%zu", g);
      const char *l[] = {"gpu", idx, "name", d->name, NULL};
      P(line(b, names[k], l, v[k]));
    }
  }
  return 0;
}

static int processes(struct buf *b, const struct report_in *in) {
  static const char *const names[] = {
      "grove_agent_process_cpu_seconds_total",   "grove_agent_process_resident_memory_bytes",
      "grove_agent_process_threads",             "grove_agent_process_io_read_bytes_total",
      "grove_agent_process_io_write_bytes_total", "grove_agent_process_power_watts",
      "grove_agent_process_gpu_utilization_ratio", "grove_agent_process_gpu_memory_bytes"};
  static const char *const helps[] = {
      "CPU time of the process (utime + stime).", "Resident set size.", "Threads.",
      "Bytes read from storage (/proc/PID/io read_bytes).",
      "Bytes written to storage (/proc/PID/io write_bytes).",
      "Power attributed to the process over the last interval (docs/agent.md).",
      "Share of the GPUs' SM time the process used (NVML, 0-1).", "GPU memory the process holds."};
  static const char *const types[] = {"counter", "gauge", "gauge", "counter",
                                      "counter", "gauge", "gauge", "gauge"};
  double hz = in->procs->hz ? (double)in->procs->hz : 100.0;
  int rc;
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    P(family(b, names[k], types[k], helps[k]));
    for (size_t j = 0; j < in->nidx; j++) {
      const struct proc_info *p = &in->procs->procs[in->idx[j]];
      if ((k == 3 || k == 4) && !p->io_known)
        continue;
      const double v[] = {(double)p->cpu_ticks / hz, (double)p->rss_bytes, (double)p->threads,
                          (double)p->io_read_bytes, (double)p->io_write_bytes, p->power_w,
                          p->gpu_util_pct / 100, (double)p->gpu_mem_bytes};
      char pid[24];
      snprintf(pid, sizeof pid, "%d", p->pid);
      const char *l[] = {"pid", pid, "name", p->name, "user", p->user, NULL};
      P(line(b, names[k], l, v[k]));
    }
  }
  return one(b, "grove_agent_processes", "gauge", "Processes seen in the last scan.",
             (double)in->procs->n);
}

int expo_sample(struct buf *b, const struct report_in *in) {
  int rc;
  const struct host_identity *id = in->id;
  P(family(b, "grove_agent_info", "gauge", "The machine the agent samples; always 1."));
  const char *l[] = {"hostname",      id->hostname,      "source_type", id->vm ? "vm" : "host",
                     "hypervisor",    id->hypervisor,    "instance_type", id->instance_type,
                     "cpu_model",     id->cpu_model,     NULL};
  P(line(b, "grove_agent_info", l, 1));
  P(cpu(b, in));
  P(memory(b, in));
  P(io(b, in));
  P(power(b, in));
  P(gpus(b, in));
  P(processes(b, in));
  return one(b, "grove_agent_sample_timestamp_seconds", "gauge",
             "Wall time of the sample these figures come from.", (double)in->time_ms / 1e3);
}

int expo_agent(struct buf *b, const struct expo_agent *a) {
  int rc;
  P(one(b, "grove_agent_samples_total", "counter", "Samples taken.", (double)a->samples));
  P(one(b, "grove_agent_sample_errors_total", "counter", "Samples that could not be taken.",
        (double)a->sample_errors));
  if (!a->shipping)
    return 0;
  P(one(b, "grove_agent_batches_sent_total", "counter", "Batches the server accepted.",
        (double)a->sent));
  P(one(b, "grove_agent_batches_rejected_total", "counter",
        "Batches the server refused for good (4xx other than 404, 408, 429).",
        (double)a->rejected));
  P(one(b, "grove_agent_batches_dropped_total", "counter",
        "Batches dropped from a full spool (oldest first).", (double)a->dropped));
  P(one(b, "grove_agent_send_failures_total", "counter",
        "Sends that failed and left the batch in the spool.", (double)a->failures));
  P(one(b, "grove_agent_spool_batches", "gauge", "Batches waiting in the spool.",
        (double)a->spooled_batches));
  return one(b, "grove_agent_spool_bytes", "gauge", "Bytes waiting in the spool.",
             (double)a->spooled_bytes);
}
