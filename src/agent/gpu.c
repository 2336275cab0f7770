/* gpu.c — NVML through dlopen (see gpu.h). The types below mirror nvml.h's
 * (the ABI NVIDIA keeps stable for these versioned entry points). */
#include "agent/gpu.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef int nvml_ret;
typedef void *nvml_dev;
#define NVML_SUCCESS 0
#define NVML_ERROR_INSUFFICIENT_SIZE 7

struct nvml_util { unsigned int gpu, memory; };
struct nvml_mem { unsigned long long total, free, used; };
struct nvml_proc_sample {
  unsigned int pid;
  unsigned long long ts;
  unsigned int sm, mem, enc, dec;
};
struct nvml_proc_v1 { unsigned int pid; unsigned long long used; };
struct nvml_proc_v2 { unsigned int pid; unsigned long long used; unsigned int gi, ci; };

struct gpu {
  void *lib;
  nvml_ret (*init)(void);
  nvml_ret (*shutdown)(void);
  nvml_ret (*count)(unsigned int *);
  nvml_ret (*handle)(unsigned int, nvml_dev *);
  nvml_ret (*name)(nvml_dev, char *, unsigned int);
  nvml_ret (*util)(nvml_dev, struct nvml_util *);
  nvml_ret (*mem)(nvml_dev, struct nvml_mem *);
  nvml_ret (*power)(nvml_dev, unsigned int *);
  nvml_ret (*energy)(nvml_dev, unsigned long long *);
  nvml_ret (*proc_util)(nvml_dev, struct nvml_proc_sample *, unsigned int *, unsigned long long);
  nvml_ret (*procs_v2)(nvml_dev, unsigned int *, struct nvml_proc_v2 *);
  nvml_ret (*procs_v1)(nvml_dev, unsigned int *, struct nvml_proc_v1 *);
  unsigned long long last_ts[GPU_MAX_DEVS];
};

#define SYM(g, field, name) (*(void **)&(g)->field = dlsym((g)->lib, name))

int gpu_open(struct gpu **out, const char *libpath) {
  *out = NULL;
  struct gpu *g = calloc(1, sizeof(*g));
  if (!g) return GROVE_ENOMEM;
  g->lib = dlopen(libpath ? libpath : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!g->lib) goto absent;
  if (!SYM(g, init, "nvmlInit_v2") && !SYM(g, init, "nvmlInit")) goto absent;
  SYM(g, shutdown, "nvmlShutdown");
  if (!SYM(g, count, "nvmlDeviceGetCount_v2") && !SYM(g, count, "nvmlDeviceGetCount")) goto absent;
  if (!SYM(g, handle, "nvmlDeviceGetHandleByIndex_v2") &&
      !SYM(g, handle, "nvmlDeviceGetHandleByIndex"))
    goto absent;
  SYM(g, name, "nvmlDeviceGetName");
  SYM(g, util, "nvmlDeviceGetUtilizationRates");
  SYM(g, mem, "nvmlDeviceGetMemoryInfo");
  SYM(g, power, "nvmlDeviceGetPowerUsage");
  SYM(g, energy, "nvmlDeviceGetTotalEnergyConsumption");
  SYM(g, proc_util, "nvmlDeviceGetProcessUtilization");
  if (!SYM(g, procs_v2, "nvmlDeviceGetComputeRunningProcesses_v3"))
    SYM(g, procs_v2, "nvmlDeviceGetComputeRunningProcesses_v2");
  if (!g->procs_v2) SYM(g, procs_v1, "nvmlDeviceGetComputeRunningProcesses");
  if (g->init() != NVML_SUCCESS) {
    g->shutdown = NULL; /* not initialised: nothing to shut down */
    goto absent;
  }
  *out = g;
  return 0;
absent:
  gpu_close(g);
  return GROVE_ENOENT;
}

void gpu_close(struct gpu *g) {
  if (!g) return;
  if (g->lib) {
    if (g->shutdown) g->shutdown();
    dlclose(g->lib);
  }
  free(g);
}

static struct gpu_proc *proc_slot(struct gpu_dev *d, unsigned int pid) {
  for (size_t i = 0; i < d->nprocs; i++)
    if (d->procs[i].pid == pid) return &d->procs[i];
  if (d->nprocs == GPU_MAX_PROCS) return NULL;
  struct gpu_proc *p = &d->procs[d->nprocs++];
  memset(p, 0, sizeof(*p));
  p->pid = pid;
  return p;
}

static void read_procs(struct gpu *g, unsigned int idx, nvml_dev h, struct gpu_dev *d) {
  unsigned int n = 0;
  if (g->procs_v2 && g->procs_v2(h, &n, NULL) == NVML_ERROR_INSUFFICIENT_SIZE && n) {
    n += 8; /* room for processes that start meanwhile */
    struct nvml_proc_v2 *v = calloc(n, sizeof(*v));
    if (v && g->procs_v2(h, &n, v) == NVML_SUCCESS)
      for (unsigned int i = 0; i < n; i++) {
        struct gpu_proc *p = proc_slot(d, v[i].pid);
        if (p) p->mem_bytes = v[i].used;
      }
    free(v);
  } else if (g->procs_v1 && g->procs_v1(h, &n, NULL) == NVML_ERROR_INSUFFICIENT_SIZE && n) {
    n += 8;
    struct nvml_proc_v1 *v = calloc(n, sizeof(*v));
    if (v && g->procs_v1(h, &n, v) == NVML_SUCCESS)
      for (unsigned int i = 0; i < n; i++) {
        struct gpu_proc *p = proc_slot(d, v[i].pid);
        if (p) p->mem_bytes = v[i].used;
      }
    free(v);
  }
  n = 0;
  if (!g->proc_util) return;
  unsigned long long since = idx < GPU_MAX_DEVS ? g->last_ts[idx] : 0;
  if (g->proc_util(h, NULL, &n, since) != NVML_ERROR_INSUFFICIENT_SIZE || n == 0) return;
  struct nvml_proc_sample *s = calloc(n, sizeof(*s));
  if (s && g->proc_util(h, s, &n, since) == NVML_SUCCESS) {
    /* samples cover several periods: a process's figure is its mean */
    unsigned int counts[GPU_MAX_PROCS] = {0};
    double sums[GPU_MAX_PROCS] = {0};
    for (unsigned int i = 0; i < n; i++) {
      struct gpu_proc *p = proc_slot(d, s[i].pid);
      if (!p) continue;
      size_t k = (size_t)(p - d->procs);
      sums[k] += s[i].sm;
      counts[k]++;
      if (idx < GPU_MAX_DEVS && s[i].ts > g->last_ts[idx]) g->last_ts[idx] = s[i].ts;
    }
    for (size_t k = 0; k < d->nprocs; k++)
      if (counts[k]) d->procs[k].util_pct = sums[k] / counts[k];
  }
  free(s);
}

int gpu_read(struct gpu *g, struct gpu_dev *devs, size_t max, size_t *n) {
  *n = 0;
  unsigned int count = 0;
  if (g->count(&count) != NVML_SUCCESS) return 0;
  for (unsigned int i = 0; i < count && *n < max; i++) {
    nvml_dev h;
    if (g->handle(i, &h) != NVML_SUCCESS) continue;
    struct gpu_dev *d = &devs[(*n)++];
    memset(d, 0, sizeof(*d));
    if (!g->name || g->name(h, d->name, sizeof(d->name)) != NVML_SUCCESS)
      snprintf(d->name, sizeof(d->name), "gpu%u", i);
    d->name[sizeof(d->name) - 1] = '\0';
    struct nvml_util u;
    if (g->util && g->util(h, &u) == NVML_SUCCESS) d->util_pct = u.gpu, d->mem_util_pct = u.memory;
    struct nvml_mem m;
    if (g->mem && g->mem(h, &m) == NVML_SUCCESS) d->mem_total_bytes = m.total, d->mem_used_bytes = m.used;
    unsigned int mw;
    if (g->power && g->power(h, &mw) == NVML_SUCCESS) d->power_known = true, d->power_w = mw / 1000.0;
    unsigned long long mj;
    if (g->energy && g->energy(h, &mj) == NVML_SUCCESS) d->energy_known = true, d->energy_mj = mj;
    read_procs(g, i, h, d);
  }
  return 0;
}
