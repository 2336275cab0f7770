/* sample.c — the sampler (see sample.h). */
#include "agent/sample.h"

#include <stdlib.h>
#include <string.h>

#include "agent/expo.h"
#include "agent/gpu.h"
#include "agent/host.h"
#include "agent/report.h"
#include "core/error.h"

struct sampler {
  struct sampler_cfg cfg;
  struct host_identity id;
  struct host_snap snaps[2];
  int cur; /* index of the latest reading in snaps */
  struct proc_table procs;
  struct gpu *gpu;
  struct gpu_dev gpus[GPU_MAX_DEVS];
  size_t ngpus;
  struct power_state pstate;
  size_t *idx;
};

int sampler_create(struct sampler **out, const struct sampler_cfg *cfg) {
  *out = NULL;
  struct sampler *s = calloc(1, sizeof(*s));
  if (!s) return GROVE_ENOMEM;
  s->cfg = *cfg;
  host_snap_init(&s->snaps[0]);
  host_snap_init(&s->snaps[1]);
  proc_table_init(&s->procs);
  host_identify(cfg->root, &s->id);
  int rc = host_read(cfg->root, &s->snaps[0]);
  if (rc < 0) goto fail;
  rc = proc_scan(cfg->root, &s->procs, 0);
  if (rc < 0) goto fail;
  if (!cfg->no_gpu && gpu_open(&s->gpu, cfg->nvml_path) == GROVE_ENOMEM) {
    rc = GROVE_ENOMEM;
    goto fail;
  }
  if (s->gpu) gpu_read(s->gpu, s->gpus, GPU_MAX_DEVS, &s->ngpus);
  *out = s;
  return 0;
fail:
  sampler_destroy(s);
  return rc;
}

void sampler_destroy(struct sampler *s) {
  if (!s) return;
  host_snap_release(&s->snaps[0]);
  host_snap_release(&s->snaps[1]);
  proc_table_release(&s->procs);
  gpu_close(s->gpu);
  free(s->idx);
  free(s);
}

bool sampler_rapl_denied(const struct sampler *s) { return s->snaps[s->cur].rapl_denied; }
bool sampler_has_gpu(const struct sampler *s) { return s->gpu && s->ngpus > 0; }

int sampler_take(struct sampler *s, double elapsed_s, int64_t time_ms, uint64_t seq, struct buf *out,
                 struct buf *expo) {
  struct host_snap *prev = &s->snaps[s->cur], *cur = &s->snaps[!s->cur];
  int rc = host_read(s->cfg.root, cur);
  if (rc < 0) return rc;
  s->cur = !s->cur;
  struct host_rates r;
  rc = host_rates(prev, cur, &r);
  if (rc < 0) return rc;
  size_t ncpus = cur->ncores ? cur->ncores : 1;
  rc = proc_scan(s->cfg.root, &s->procs, r.all_ticks / ncpus);
  if (rc < 0) goto out;
  s->ngpus = 0;
  if (s->gpu) gpu_read(s->gpu, s->gpus, GPU_MAX_DEVS, &s->ngpus);
  struct power_result pw;
  power_attribute(&s->cfg.power, &s->pstate, elapsed_s, r.cpu_energy_j, r.cpu_pct / 100.0, ncpus,
                  &s->procs, s->gpus, s->ngpus, &pw);
  free(s->idx);
  s->idx = malloc((s->procs.n ? s->procs.n : 1) * sizeof(*s->idx));
  if (!s->idx) {
    rc = GROVE_ENOMEM;
    goto out;
  }
  size_t k = proc_top(&s->procs, s->cfg.order, s->cfg.top, s->idx);
  struct report_in in = {
      .agent_id = s->cfg.agent_id, .seq = seq, .time_ms = time_ms, .id = &s->id,
      .prev = prev, .cur = cur, .rates = &r, .elapsed_s = elapsed_s, .procs = &s->procs,
      .idx = s->idx, .nidx = k, .gpus = s->gpus, .ngpus = s->ngpus, .power = &pw,
  };
  rc = report_json(out, &in);
  if (rc == 0 && expo) rc = expo_sample(expo, &in);
out:
  free(r.core_pct);
  return rc;
}
