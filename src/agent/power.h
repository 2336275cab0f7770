/* power.h — power per process from the host's measured power.
 *
 * Measured (RAPL, NVML): the power of an interval is split into idle and
 * active. Idle is --cpu-idle-watts / --gpu-idle-watts when given, else
 * the lowest power seen so far (Kepler's idle power, github.com/
 * sustainable-computing-io/kepler, "idle power is the minimum observed");
 * active = measured − idle. Active CPU power is split between processes
 * by their share of the CPU ticks the processes ran in the interval (as
 * Scaphandre's process power, hubblo-org/scaphandre, "host power × process
 * CPU time / total CPU time", and Kepler's ratio model), active GPU power
 * of each device by the processes' share of its SM utilisation (their
 * used memory when NVML reports no utilisation). Idle power is kept apart
 * and given to no process. The per-process figures add up to the active
 * power exactly, except what no process can take (no process ran, or a
 * GPU process this scan did not see), which is reported as unattributed.
 *
 * Without counters (no RAPL, or RAPL unreadable) the CPU's power is
 * estimated with Cloud Carbon Footprint's linear model
 * (cloudcarbonfootprint.org/docs/methodology, "Energy Estimate"):
 * P = vCPUs × (Pmin + u × (Pmax − Pmin)), u the busy fraction, Pmin 0.74 W
 * and Pmax 3.5 W per vCPU (its AWS averages); with --cpu-tdp-watts T the
 * package is Pmax = T, Pmin = T × 0.74 / 3.5. Such results carry
 * estimated = true; idle is the Pmin part and active the rest.
 *
 * Pure computation; not thread-safe for one power_state. */
#ifndef GROVE_AGENT_POWER_H
#define GROVE_AGENT_POWER_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/gpu.h"
#include "agent/proc.h"

#define POWER_CCF_MIN_W 0.74
#define POWER_CCF_MAX_W 3.5

struct power_cfg {
  double cpu_idle_w; /* < 0: learn (lowest seen) */
  double gpu_idle_w; /* per device; < 0: learn */
  double cpu_tdp_w;  /* 0: the per-vCPU model */
};

struct power_state {
  bool cpu_seen;
  double cpu_min_w;
  bool gpu_seen[GPU_MAX_DEVS];
  double gpu_min_w[GPU_MAX_DEVS];
};

struct power_result {
  bool cpu_estimated;
  double cpu_w, cpu_idle_w, cpu_active_w; /* watts */
  double gpu_w, gpu_idle_w, gpu_active_w;
  double total_w;        /* cpu_w + gpu_w */
  double unattributed_w; /* active power no process took */
};

/* cpu_energy_j: RAPL energy of the interval (< 0: none, estimate);
 * elapsed_s: the interval (> 0); busy: CPU busy fraction 0–1; ncpus the
 * vCPUs. Sets every t->procs[i].power_w, gpu_util_pct and gpu_mem_bytes
 * (GPU processes matched by pid). OUT: r. */
void power_attribute(const struct power_cfg *cfg, struct power_state *st, double elapsed_s,
                     double cpu_energy_j, double busy, size_t ncpus, struct proc_table *t,
                     const struct gpu_dev *gpus, size_t ngpus, struct power_result *r);

#endif
