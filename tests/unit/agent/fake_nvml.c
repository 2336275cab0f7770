/* fake_nvml.c — a stand-in for libnvidia-ml.so.1 with the symbols and
 * types grove-agent's gpu.c looks up, so the dlopen path is tested
 * without a GPU. Two devices:
 *   0 "Fake H100": 70 % busy, 80 GB, 300 W, energy 123456 mJ,
 *     pid 100 at 60 % SM and 1 GiB, pid 200 at 20 % SM and 512 MiB;
 *   1 "Fake T4": 0 %, 16 GB, 70 W, no energy counter (NOT_SUPPORTED),
 *     pid 300 with 2 GiB and no utilisation samples. */
#include <stddef.h>
#include <string.h>

#define OK 0
#define NOT_SUPPORTED 3
#define INVALID 2
#define INSUFFICIENT 7

struct util { unsigned int gpu, memory; };
struct mem { unsigned long long total, free, used; };
struct sample { unsigned int pid; unsigned long long ts; unsigned int sm, mem, enc, dec; };
struct pinfo { unsigned int pid; unsigned long long used; unsigned int gi, ci; };

static int devs[2] = {0, 1};

int nvmlInit_v2(void) { return OK; }
int nvmlShutdown(void) { return OK; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return OK; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) {
  if (i > 1) return INVALID;
  *h = &devs[i];
  return OK;
}
static int idx(void *h) { return *(int *)h; }
int nvmlDeviceGetName(void *h, char *out, unsigned int n) {
  strncpy(out, idx(h) ? "Fake T4" : "Fake H100", n);
  return OK;
}
int nvmlDeviceGetUtilizationRates(void *h, struct util *u) {
  u->gpu = idx(h) ? 0 : 70;
  u->memory = idx(h) ? 0 : 40;
  return OK;
}
int nvmlDeviceGetMemoryInfo(void *h, struct mem *m) {
  m->total = idx(h) ? 16000000000ULL : 80000000000ULL;
  m->used = idx(h) ? 2147483648ULL : 1610612736ULL;
  m->free = m->total - m->used;
  return OK;
}
int nvmlDeviceGetPowerUsage(void *h, unsigned int *mw) {
  *mw = idx(h) ? 70000 : 300000;
  return OK;
}
int nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *mj) {
  if (idx(h)) return NOT_SUPPORTED;
  *mj = 123456;
  return OK;
}
int nvmlDeviceGetProcessUtilization(void *h, struct sample *s, unsigned int *n,
                                    unsigned long long since) {
  if (idx(h)) return NOT_SUPPORTED;
  /* two samples of pid 100 (50 and 70: mean 60), one of pid 200 */
  static const struct sample all[3] = {{100, 10, 50, 0, 0, 0}, {100, 20, 70, 0, 0, 0}, {200, 20, 20, 0, 0, 0}};
  (void)since;
  if (!s || *n < 3) {
    *n = 3;
    return INSUFFICIENT;
  }
  memcpy(s, all, sizeof(all));
  *n = 3;
  return OK;
}
int nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned int *n, struct pinfo *p) {
  unsigned int want = idx(h) ? 1 : 2;
  if (!p || *n < want) {
    *n = want;
    return INSUFFICIENT;
  }
  if (idx(h)) {
    p[0] = (struct pinfo){300, 2147483648ULL, 0, 0};
  } else {
    p[0] = (struct pinfo){100, 1073741824ULL, 0, 0};
    p[1] = (struct pinfo){200, 536870912ULL, 0, 0};
  }
  *n = want;
  return OK;
}
