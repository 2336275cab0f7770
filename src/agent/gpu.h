/* gpu.h — NVIDIA GPUs through NVML, loaded at run time.
 *
 * The library is opened with dlopen() ("libnvidia-ml.so.1" unless a path
 * is given: tests load a fake with the same symbols) and never linked, so
 * the agent runs on machines without a GPU or driver: gpu_open then
 * returns GROVE_ENOENT and the agent reports no GPU metrics.
 *
 * Per device (NVML API reference, docs.nvidia.com/deploy/nvml-api):
 * nvmlDeviceGetUtilizationRates (percent over the driver's last sample
 * period), nvmlDeviceGetMemoryInfo (bytes), nvmlDeviceGetPowerUsage
 * (milliwatts), nvmlDeviceGetTotalEnergyConsumption (millijoules since
 * the driver loaded; Volta and later, else NOT_SUPPORTED and
 * energy_known false). Per process: nvmlDeviceGetProcessUtilization
 * (SM percent of samples newer than the previous call's) and
 * nvmlDeviceGetComputeRunningProcesses (_v3, _v2 or the first version,
 * whichever the driver has; used memory in bytes).
 *
 * Not thread-safe: one collector owns a struct gpu. */
#ifndef GROVE_AGENT_GPU_H
#define GROVE_AGENT_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GPU_MAX_DEVS 16
#define GPU_MAX_PROCS 256

struct gpu_proc {
  uint32_t pid;
  double util_pct;    /* SM utilisation, 0–100 */
  uint64_t mem_bytes; /* 0 when NVML does not say */
};

struct gpu_dev {
  char name[96];
  double util_pct, mem_util_pct;
  uint64_t mem_total_bytes, mem_used_bytes;
  bool power_known;
  double power_w;           /* from milliwatts */
  bool energy_known;
  uint64_t energy_mj;       /* counter, millijoules */
  struct gpu_proc procs[GPU_MAX_PROCS];
  size_t nprocs;
};

struct gpu;

/* Opens NVML from libpath (NULL: "libnvidia-ml.so.1") and initialises it.
 * OUT: *out (gpu_close frees it). Returns 0, GROVE_ENOENT when the library
 * is absent or lacks the symbols or nvmlInit fails (no GPU: not an error
 * to log), or GROVE_ENOMEM. */
int gpu_open(struct gpu **out, const char *libpath);
void gpu_close(struct gpu *g); /* NULL is fine; calls nvmlShutdown */
/* Reads every device, at most max. OUT: devs[0..*n). Returns 0; a device
 * whose handle cannot be had is skipped. */
int gpu_read(struct gpu *g, struct gpu_dev *devs, size_t max, size_t *n);

#endif
