/* power.c — power attribution (see power.h for the method and sources). */
#include "agent/power.h"

#include <string.h>

static struct proc_info *find(struct proc_table *t, int pid) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t->procs[mid].pid == pid) return &t->procs[mid];
    if (t->procs[mid].pid < pid) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

static double idle_of(double cfg_idle, bool *seen, double *min, double measured) {
  if (cfg_idle >= 0) return cfg_idle < measured ? cfg_idle : measured;
  if (!*seen || measured < *min) *min = measured;
  *seen = true;
  return *min;
}

void power_attribute(const struct power_cfg *cfg, struct power_state *st, double elapsed_s,
                     double cpu_energy_j, double busy, size_t ncpus, struct proc_table *t,
                     const struct gpu_dev *gpus, size_t ngpus, struct power_result *r) {
  memset(r, 0, sizeof(*r));
  for (size_t i = 0; i < t->n; i++) {
    t->procs[i].power_w = 0;
    t->procs[i].gpu_util_pct = 0;
    t->procs[i].gpu_mem_bytes = 0;
  }
  if (busy < 0) busy = 0;
  if (busy > 1) busy = 1;
  /* ---- CPU */
  if (cpu_energy_j >= 0 && elapsed_s > 0) {
    r->cpu_w = cpu_energy_j / elapsed_s;
    r->cpu_idle_w = idle_of(cfg->cpu_idle_w, &st->cpu_seen, &st->cpu_min_w, r->cpu_w);
  } else {
    r->cpu_estimated = true;
    double pmax = cfg->cpu_tdp_w > 0 ? cfg->cpu_tdp_w : POWER_CCF_MAX_W * (double)ncpus;
    double pmin = pmax * (POWER_CCF_MIN_W / POWER_CCF_MAX_W);
    r->cpu_idle_w = pmin;
    r->cpu_w = pmin + busy * (pmax - pmin);
  }
  r->cpu_active_w = r->cpu_w - r->cpu_idle_w;
  uint64_t ticks = 0;
  for (size_t i = 0; i < t->n; i++) ticks += t->procs[i].delta_ticks;
  if (ticks) {
    for (size_t i = 0; i < t->n; i++)
      t->procs[i].power_w = r->cpu_active_w * (double)t->procs[i].delta_ticks / (double)ticks;
  } else {
    r->unattributed_w += r->cpu_active_w;
  }
  /* ---- GPUs */
  for (size_t g = 0; g < ngpus; g++) {
    const struct gpu_dev *d = &gpus[g];
    double active = 0;
    if (d->power_known) {
      r->gpu_w += d->power_w;
      double idle = g < GPU_MAX_DEVS
                        ? idle_of(cfg->gpu_idle_w, &st->gpu_seen[g], &st->gpu_min_w[g], d->power_w)
                        : 0;
      r->gpu_idle_w += idle;
      active = d->power_w - idle;
      r->gpu_active_w += active;
    }
    double util = 0, mem = 0;
    for (size_t k = 0; k < d->nprocs; k++) {
      struct proc_info *p = find(t, (int)d->procs[k].pid);
      if (!p) continue;
      util += d->procs[k].util_pct;
      mem += (double)d->procs[k].mem_bytes;
      p->gpu_util_pct += d->procs[k].util_pct;
      p->gpu_mem_bytes += d->procs[k].mem_bytes;
    }
    double given = 0;
    for (size_t k = 0; k < d->nprocs && (util > 0 || mem > 0); k++) {
      struct proc_info *p = find(t, (int)d->procs[k].pid);
      if (!p) continue;
      double share = util > 0 ? d->procs[k].util_pct / util : (double)d->procs[k].mem_bytes / mem;
      p->power_w += active * share;
      given += active * share;
    }
    r->unattributed_w += active - given;
  }
  r->total_w = r->cpu_w + r->gpu_w;
}
