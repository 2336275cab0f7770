/* report.h — one sample as the push payload of seed 003 §6.1.2:
 *
 *   {"timestamp": RFC 3339, "source_type": "host" | "vm",
 *    "metrics": {"cpu_usage", "memory_usage", "gpu_utilization",
 *                "power_consumption", "processes": [...], …}}
 *
 * with the seed's names kept as they are (percent, percent, percent,
 * watts) and the further fields of its §5.1.1 tables: host_overall_metrics
 * (total_cpu_usage, total_memory_usage, total_gpu_usage,
 * total_power_consumption, system_load_average), and per process
 * host_process_metrics / vm_process_metrics (process_name,
 * cpu_usage_percent, memory_usage_mb, gpu_utilization_percent,
 * power_consumption_watts, io_operations); vm_name for a VM. The rest
 * (agent_id, seq, hostname, per-core CPU, steal, disks, networks, GPUs,
 * power split) are extra keys a reader may ignore. Units are in the key
 * names or documented in docs/agent.md. */
#ifndef GROVE_AGENT_REPORT_H
#define GROVE_AGENT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "agent/gpu.h"
#include "agent/host.h"
#include "agent/power.h"
#include "agent/proc.h"
#include "core/buf.h"

struct report_in {
  const char *agent_id;
  uint64_t seq;
  int64_t time_ms;                  /* Unix milliseconds */
  const struct host_identity *id;
  const struct host_snap *prev, *cur;
  const struct host_rates *rates;
  double elapsed_s;                 /* between prev and cur */
  const struct proc_table *procs;
  const size_t *idx;                /* the processes to list, in order */
  size_t nidx;
  const struct gpu_dev *gpus;
  size_t ngpus;
  const struct power_result *power;
};

/* Appends the sample's JSON to b. Returns 0 or GROVE_ENOMEM/GROVE_ETOOBIG
 * (b's maximum). */
int report_json(struct buf *b, const struct report_in *in);

#endif
