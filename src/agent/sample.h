/* sample.h — grove-agent's sampler: the collectors (host, proc, gpu),
 * power attribution and the payload, tied together. One reading per call;
 * rates are between a call and the one before (sampler_create takes the
 * first reading, so the first sample already has rates).
 *
 * Not thread-safe; one sampler per agent. */
#ifndef GROVE_AGENT_SAMPLE_H
#define GROVE_AGENT_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/power.h"
#include "agent/proc.h"
#include "core/buf.h"

struct sampler_cfg {
  const char *root;        /* procfs/sysfs root, "/" in production; borrowed */
  const char *nvml_path;   /* NULL: libnvidia-ml.so.1; borrowed */
  bool no_gpu;             /* do not load NVML */
  size_t top;              /* processes listed: 0 all, else the top N */
  enum proc_order order;   /* the measure top N is taken by */
  struct power_cfg power;
  const char *agent_id;    /* borrowed */
};

struct sampler;

/* Takes the first reading. OUT: *out. Returns 0, GROVE_EIO (root/proc
 * unreadable) or GROVE_ENOMEM. A missing NVML is not an error. */
int sampler_create(struct sampler **out, const struct sampler_cfg *cfg);
void sampler_destroy(struct sampler *s); /* NULL is fine */
/* Reads again and appends one payload (report.h) to out and, when expo
 * is not NULL, the same sample's Prometheus exposition (expo.h) to expo.
 * elapsed_s: seconds since the previous reading (> 0; the caller's
 * monotonic clock, or a test's); time_ms: the sample's wall time. Returns
 * 0 or a GROVE_E* code (out and expo then hold partial text: reset them). */
int sampler_take(struct sampler *s, double elapsed_s, int64_t time_ms, uint64_t seq, struct buf *out,
                 struct buf *expo);
/* Did a RAPL zone exist but refuse to be read (no root)? */
bool sampler_rapl_denied(const struct sampler *s);
/* Were GPUs found through NVML? */
bool sampler_has_gpu(const struct sampler *s);

#endif
