/* report.c — the push payload (see report.h). */
#include "agent/report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

static int num(struct buf *b, const char *key, double v) {
  if (!isfinite(v)) v = 0;
  return buf_printf(b, "\"%s\":%.3f", key, v);
}

static int str(struct buf *b, const char *key, const char *v) {
  int rc = buf_printf(b, "\"%s\":\"", key);
  if (rc == 0) rc = buf_json_escape(b, v, strlen(v));
  if (rc == 0) rc = buf_putc(b, '"');
  return rc;
}

static double rate(uint64_t a, uint64_t b, double s) { return b > a && s > 0 ? (double)(b - a) / s : 0; }

static const struct host_dev *dev_prev(const struct host_dev *devs, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(devs[i].name, name) == 0) return &devs[i];
  return NULL;
}

int report_json(struct buf *b, const struct report_in *in) {
  char ts[40];
  time_t secs = (time_t)(in->time_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(in->time_ms % 1000));
  const struct host_rates *r = in->rates;
  const struct power_result *pw = in->power;
  double gpu_util = 0;
  for (size_t g = 0; g < in->ngpus; g++) gpu_util += in->gpus[g].util_pct;
  if (in->ngpus) gpu_util /= (double)in->ngpus;
  int rc = 0;
#define P(x) do { if ((rc = (x)) < 0) return rc; } while (0)
  P(buf_putc(b, '{'));
  P(str(b, "timestamp", ts));
  P(buf_putc(b, ','));
  P(str(b, "source_type", in->id->vm ? "vm" : "host"));
  P(buf_putc(b, ','));
  P(str(b, "agent_id", in->agent_id));
  P(buf_printf(b, ",\"seq\":%llu,", (unsigned long long)in->seq));
  P(str(b, "hostname", in->id->hostname));
  if (in->id->vm) {
    P(buf_putc(b, ','));
    P(str(b, "vm_name", in->id->hostname));
    P(buf_putc(b, ','));
    P(str(b, "hypervisor", in->id->hypervisor));
    if (in->id->instance_type[0]) {
      P(buf_putc(b, ','));
      P(str(b, "instance_type", in->id->instance_type));
    }
  }
  if (in->id->cpu_model[0]) {
    P(buf_putc(b, ','));
    P(str(b, "cpu_model", in->id->cpu_model));
  }
  P(buf_puts(b, ",\"metrics\":{"));
  P(num(b, "cpu_usage", r->cpu_pct));
  P(buf_putc(b, ','));
  P(num(b, "memory_usage", r->mem_used_pct));
  P(buf_putc(b, ','));
  P(num(b, "gpu_utilization", gpu_util));
  P(buf_putc(b, ','));
  P(num(b, "power_consumption", pw->total_w));
  P(buf_putc(b, ','));
  P(num(b, "total_cpu_usage", r->cpu_pct));
  P(buf_putc(b, ','));
  P(num(b, "total_memory_usage", r->mem_used_pct));
  P(buf_putc(b, ','));
  P(num(b, "total_gpu_usage", gpu_util));
  P(buf_putc(b, ','));
  P(num(b, "total_power_consumption", pw->total_w));
  P(buf_putc(b, ','));
  P(num(b, "system_load_average", in->cur->load[0]));
  P(buf_printf(b, ",\"load_average\":[%.2f,%.2f,%.2f],", in->cur->load[0], in->cur->load[1],
               in->cur->load[2]));
  P(num(b, "cpu_steal_percent", r->steal_pct));
  P(buf_putc(b, ','));
  P(num(b, "cpu_iowait_percent", r->iowait_pct));
  P(buf_puts(b, ",\"cpu_cores_percent\":["));
  for (size_t i = 0; i < r->ncores; i++) P(buf_printf(b, "%s%.3f", i ? "," : "", r->core_pct[i]));
  P(buf_printf(b, "],\"memory_total_bytes\":%llu,\"memory_available_bytes\":%llu,"
                  "\"swap_total_bytes\":%llu,\"swap_free_bytes\":%llu",
               (unsigned long long)in->cur->mem_total_kb * 1024,
               (unsigned long long)in->cur->mem_available_kb * 1024,
               (unsigned long long)in->cur->swap_total_kb * 1024,
               (unsigned long long)in->cur->swap_free_kb * 1024));
  P(buf_puts(b, ",\"disks\":["));
  for (size_t i = 0; i < in->cur->ndisks; i++) {
    const struct host_dev *d = &in->cur->disks[i], *o = dev_prev(in->prev->disks, in->prev->ndisks, d->name);
    if (i) P(buf_putc(b, ','));
    P(buf_putc(b, '{'));
    P(str(b, "name", d->name));
    P(buf_printf(b, ",\"reads_per_s\":%.3f,\"writes_per_s\":%.3f,\"read_bytes_per_s\":%.1f,"
                    "\"write_bytes_per_s\":%.1f}",
                 o ? rate(o->a, d->a, in->elapsed_s) : 0, o ? rate(o->b, d->b, in->elapsed_s) : 0,
                 o ? 512 * rate(o->c, d->c, in->elapsed_s) : 0,
                 o ? 512 * rate(o->d, d->d, in->elapsed_s) : 0));
  }
  P(buf_puts(b, "],\"networks\":["));
  double net_bps = 0;
  for (size_t i = 0; i < in->cur->nnets; i++) {
    const struct host_dev *d = &in->cur->nets[i], *o = dev_prev(in->prev->nets, in->prev->nnets, d->name);
    double rx = o ? rate(o->a, d->a, in->elapsed_s) : 0, tx = o ? rate(o->b, d->b, in->elapsed_s) : 0;
    net_bps += rx + tx;
    if (i) P(buf_putc(b, ','));
    P(buf_putc(b, '{'));
    P(str(b, "name", d->name));
    P(buf_printf(b, ",\"rx_bytes_per_s\":%.1f,\"tx_bytes_per_s\":%.1f,\"rx_packets_per_s\":%.3f,"
                    "\"tx_packets_per_s\":%.3f}",
                 rx, tx, o ? rate(o->c, d->c, in->elapsed_s) : 0, o ? rate(o->d, d->d, in->elapsed_s) : 0));
  }
  P(buf_puts(b, "],"));
  P(num(b, "network_usage_mbps", net_bps * 8 / 1e6));
  P(buf_puts(b, ",\"gpus\":["));
  for (size_t g = 0; g < in->ngpus; g++) {
    const struct gpu_dev *d = &in->gpus[g];
    if (g) P(buf_putc(b, ','));
    P(buf_printf(b, "{\"index\":%zu,", g));
    P(str(b, "name", d->name));
    P(buf_printf(b, ",\"utilization_percent\":%.1f,\"memory_utilization_percent\":%.1f,"
                    "\"memory_total_bytes\":%llu,\"memory_used_bytes\":%llu",
                 d->util_pct, d->mem_util_pct, (unsigned long long)d->mem_total_bytes,
                 (unsigned long long)d->mem_used_bytes));
    if (d->power_known) P(buf_printf(b, ",\"power_watts\":%.3f", d->power_w));
    if (d->energy_known) P(buf_printf(b, ",\"energy_millijoules\":%llu", (unsigned long long)d->energy_mj));
    P(buf_putc(b, '}'));
  }
  P(buf_puts(b, "],\"power\":{"));
  P(buf_printf(b, "\"cpu_estimated\":%s,", pw->cpu_estimated ? "true" : "false"));
  P(num(b, "cpu_watts", pw->cpu_w));
  P(buf_putc(b, ','));
  P(num(b, "cpu_idle_watts", pw->cpu_idle_w));
  P(buf_putc(b, ','));
  P(num(b, "cpu_active_watts", pw->cpu_active_w));
  P(buf_putc(b, ','));
  P(num(b, "gpu_watts", pw->gpu_w));
  P(buf_putc(b, ','));
  P(num(b, "gpu_idle_watts", pw->gpu_idle_w));
  P(buf_putc(b, ','));
  P(num(b, "gpu_active_watts", pw->gpu_active_w));
  P(buf_putc(b, ','));
  P(num(b, "unattributed_watts", pw->unattributed_w));
  P(buf_printf(b, "},\"process_count\":%zu,\"processes\":[", in->procs->n));
  for (size_t k = 0; k < in->nidx; k++) {
    const struct proc_info *p = &in->procs->procs[in->idx[k]];
    if (k) P(buf_putc(b, ','));
    P(buf_printf(b, "{\"pid\":%d,\"ppid\":%d,", p->pid, p->ppid));
    P(str(b, "process_name", p->name));
    P(buf_putc(b, ','));
    P(str(b, "command", p->command));
    P(buf_putc(b, ','));
    P(str(b, "user", p->user));
    P(buf_putc(b, ','));
    P(str(b, "cgroup", p->cgroup));
    if (p->container_id[0]) {
      P(buf_putc(b, ','));
      P(str(b, "container_id", p->container_id));
    }
    P(buf_putc(b, ','));
    P(num(b, "cpu_usage_percent", p->cpu_pct));
    P(buf_putc(b, ','));
    P(num(b, "memory_usage_mb", (double)p->rss_bytes / (1024.0 * 1024.0)));
    P(buf_printf(b, ",\"rss_bytes\":%llu,\"threads\":%u,", (unsigned long long)p->rss_bytes, p->threads));
    P(num(b, "gpu_utilization_percent", p->gpu_util_pct));
    P(buf_printf(b, ",\"gpu_memory_bytes\":%llu,", (unsigned long long)p->gpu_mem_bytes));
    P(num(b, "power_consumption_watts", p->power_w));
    if (p->io_known)
      P(buf_printf(b, ",\"io_operations\":%llu,\"io_read_bytes\":%llu,\"io_write_bytes\":%llu",
                   (unsigned long long)p->io_ops_delta, (unsigned long long)p->io_read_bytes,
                   (unsigned long long)p->io_write_bytes));
    P(buf_putc(b, '}'));
  }
  P(buf_puts(b, "]}}"));
#undef P
  return 0;
}
