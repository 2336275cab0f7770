/* advise.c — matrix's recommendations as pure decisions (advise.h): the
 * ranking of simulated configurations against requirements, the seed's
 * post-deployment labels from measured utilisation, and the choice of
 * compression method and precision. docs/matrix.md ("Recommendations")
 * gives the rules with their sources. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/matrix/advise.h"
#include "core/error.h"
#include "core/util.h"

/* Hours in a month (365 × 24 / 12), as for budget_limit. */
#define HOURS_PER_MONTH 730.0

static const char *const rank_names[MX_RANK_N] = {"cost", "latency", "throughput", "energy",
                                                  "carbon"};

int mx_rank_by_parse(const char *s, enum mx_rank_by *out) {
  for (int i = 0; i < MX_RANK_N; i++)
    if (s && !strcasecmp(s, rank_names[i])) {
      *out = (enum mx_rank_by)i;
      return 0;
    }
  return -1;
}

const char *mx_rank_by_name(enum mx_rank_by by) {
  return by < MX_RANK_N ? rank_names[by] : "?";
}

/* A number at a two-level path ("memory", "fits" → object.memory.fits);
 * NAN when absent or not a number. */
static double jnum(json_t *o, const char *a, const char *b) {
  json_t *v = json_object_get(o, a);
  if (b) v = json_object_get(v, b);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int add_reason(json_t *reasons, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int add_reason(json_t *reasons, const char *code, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return json_array_append_new(reasons, json_pack("{s:s,s:s}", "code", code, "message", msg));
}

/* The configuration's cost: per 1,000 inferences, or per training run. */
static double cost_of(json_t *c, int training) {
  return jnum(c, "cost_analysis", training ? "cost_per_run" : "cost_per_1000_inferences");
}

/* The figure ranked by `by`, smaller is better; NAN: unknown. */
static double rank_value(json_t *c, enum mx_rank_by by, int training) {
  switch (by) {
  case MX_RANK_COST: return cost_of(c, training);
  case MX_RANK_LATENCY:
    return training ? jnum(c, "performance_metrics", "training_time_hours")
                    : jnum(c, "performance_metrics", "latency_ms");
  case MX_RANK_THROUGHPUT:
    return training ? -jnum(c, "performance_metrics", "tokens_per_s_per_gpu") *
                          jnum(c, "gpu_count", NULL)
                    : -jnum(c, "performance_metrics", "throughput_qps");
  case MX_RANK_ENERGY:
    return jnum(c, "cost_analysis", training ? "energy_kwh" : "energy_kwh_per_1000_inferences");
  case MX_RANK_CARBON:
    return jnum(c, "cost_analysis", training ? "carbon_kg" : "carbon_g_per_1000_inferences");
  default: return NAN;
  }
}

struct ranked {
  json_t *c;
  int tier;       /* cost: 0 priced by an instance, 1 electricity only; 2 unknown value */
  double value, gpus;
};

static int ranked_cmp(const void *a, const void *b) {
  const struct ranked *x = a, *y = b;
  if (x->tier != y->tier) return x->tier < y->tier ? -1 : 1;
  if (x->value != y->value) return x->value < y->value ? -1 : 1;
  if (x->gpus != y->gpus) return x->gpus < y->gpus ? -1 : 1;
  return 0;
}

/* Why configuration c misses req (reasons appended); 0 when it meets all. */
static int unmet_reasons(json_t *c, const struct mx_requirements *req, json_t *reasons) {
  size_t before = json_array_size(reasons);
  if (!json_is_true(json_object_get(json_object_get(c, "memory"), "fits")))
    add_reason(reasons, "DOES_NOT_FIT", "needs %.1f GB per GPU, has %.0f GB",
               jnum(c, "memory", "per_gpu_gb"), jnum(c, "memory", "available_per_gpu_gb"));
  if (!req->training) {
    double lat = jnum(c, "performance_metrics", "latency_ms");
    double qps = jnum(c, "performance_metrics", "throughput_qps");
    if (isfinite(req->max_latency_ms) && !(lat <= req->max_latency_ms))
      add_reason(reasons, "TOO_SLOW", "latency %.1f ms is above max_latency_ms %g", lat,
                 req->max_latency_ms);
    if (isfinite(req->min_qps) && !(qps >= req->min_qps))
      add_reason(reasons, "TOO_LITTLE_THROUGHPUT",
                 "throughput %.2f requests/s is below min_throughput_qps %g", qps, req->min_qps);
  }
  if (isfinite(req->budget)) {
    double cost = req->training ? cost_of(c, 1)
                                : jnum(c, "cost_analysis", "cost_per_hour") * HOURS_PER_MONTH;
    const char *per = req->training ? "run" : "month";
    if (!isfinite(cost))
      add_reason(reasons, "COST_UNKNOWN", "no price is catalogued for it, so budget_limit "
                                          "cannot be checked");
    else if (cost > req->budget)
      add_reason(reasons, "OVER_BUDGET", "costs %.2f USD per %s, above budget_limit %g", cost,
                 per, req->budget);
  }
  return json_array_size(reasons) > before;
}

/* 730 h of the configuration at its simulated throughput. */
static json_t *monthly(json_t *c) {
  double qps = jnum(c, "performance_metrics", "throughput_qps");
  double per_month = qps * 3600 * HOURS_PER_MONTH / 1000; /* blocks of 1,000 requests */
  return json_pack("{s:f,s:o,s:o,s:o,s:o}", "hours", HOURS_PER_MONTH, "requests",
                   num(per_month * 1000), "cost_usd",
                   num(jnum(c, "cost_analysis", "cost_per_hour") * HOURS_PER_MONTH),
                   "energy_kwh",
                   num(jnum(c, "cost_analysis", "energy_kwh_per_1000_inferences") * per_month),
                   "carbon_kg",
                   num(jnum(c, "cost_analysis", "carbon_g_per_1000_inferences") * per_month /
                       1000));
}

int mx_rank_configurations(json_t *configs, json_t *refused, const struct mx_requirements *req,
                           enum mx_rank_by by, json_t **ranking, json_t **excluded) {
  size_t n = json_array_size(configs);
  struct ranked *r = calloc(n ? n : 1, sizeof *r);
  json_t *rank = json_array(), *excl = json_array();
  size_t nr = 0;
  if (!r || !rank || !excl) goto oom;
  for (size_t i = 0; i < n; i++) {
    json_t *c = json_array_get(configs, i);
    json_t *reasons = json_array();
    if (!reasons) goto oom;
    if (unmet_reasons(c, req, reasons)) {
      json_array_append_new(excl, json_pack("{s:O,s:O,s:o}", "hardware",
                                            json_object_get(c, "hardware"), "gpu_count",
                                            json_object_get(c, "gpu_count"), "reasons", reasons));
      continue;
    }
    json_decref(reasons);
    double v = rank_value(c, by, req->training);
    int tier = !isfinite(v) ? 2 : 0;
    if (by == MX_RANK_COST && tier == 0) {
      json_t *inst = json_object_get(json_object_get(c, "cost_analysis"), "instance");
      tier = json_is_string(inst) ? 0 : 1;
    }
    r[nr++] = (struct ranked){c, tier, isfinite(v) ? v : 0, jnum(c, "gpu_count", NULL)};
  }
  qsort(r, nr, sizeof *r, ranked_cmp);
  for (size_t i = 0; i < nr; i++) {
    json_t *o = json_deep_copy(r[i].c);
    if (!o) goto oom;
    json_object_set_new(o, "rank", json_integer((json_int_t)i + 1));
    json_object_del(o, "meets_requirements");
    json_object_del(o, "unmet");
    if (!req->training) json_object_set_new(o, "monthly", monthly(r[i].c));
    json_array_append_new(rank, o);
  }
  for (size_t i = 0; i < json_array_size(refused); i++) {
    json_t *x = json_array_get(refused, i);
    json_t *reasons = json_array();
    json_t *why = json_object_get(x, "reason");
    add_reason(reasons, "NOT_SIMULABLE", "%s", json_is_string(why) ? json_string_value(why) : "");
    json_array_append_new(excl, json_pack("{s:O,s:O,s:o}", "hardware",
                                          json_object_get(x, "hardware"), "gpu_count",
                                          json_object_get(x, "gpu_count"), "reasons", reasons));
  }
  free(r);
  *ranking = rank;
  *excluded = excl;
  return 0;
oom:
  free(r);
  json_decref(rank);
  json_decref(excl);
  return GROVE_ENOMEM;
}

/* ---- post-deployment ------------------------------------------------------- */

double mx_usage_ratio(const struct mx_usage *u, int gpu_only, const char **which) {
  const double v[] = {u->gpu_util, u->gpu_mem, u->cpu_util, u->cpu_mem};
  static const char *const names[] = {"gpu_utilization", "gpu_memory_usage", "cpu_utilization",
                                      "cpu_memory_usage"};
  double best = NAN;
  *which = NULL;
  for (size_t i = 0; i < (gpu_only ? 2u : 4u); i++) {
    if (!isfinite(v[i])) continue;
    double r = v[i] / MX_TARGET_UTIL;
    if (!isfinite(best) || r > best) {
      best = r;
      *which = names[i];
    }
  }
  return best;
}

int mx_vm_decide(const struct mx_usage *u, int instances, enum mx_action *action, int *desired,
                 double *ratio, const char **driver) {
  double r = mx_usage_ratio(u, 0, driver);
  if (!isfinite(r)) return -1;
  *ratio = r;
  *desired = instances;
  *action = MX_MAINTAIN;
  if (fabs(r - 1) <= MX_TOLERANCE) return 0;
  double want = ceil(instances * r - 1e-9);
  int d = want < 1 ? 1 : want > 1e6 ? 1000000 : (int)want;
  if (d > instances) *action = MX_SCALE_OUT;
  else if (d < instances) *action = MX_SCALE_IN;
  *desired = d;
  return 0;
}

/* Does option o keep both projected GPU figures at or under the target? */
static int within(const struct mx_gpu_option *o) {
  return o->fits && o->allowed && !(o->projected_gpu_util > MX_TARGET_UTIL) &&
         !(o->projected_gpu_mem > MX_TARGET_UTIL);
}

/* Is a better than b to move to: priced before unpriced, cheaper, then
 * the tighter fit (higher projected utilisation). */
static int better(const struct mx_gpu_option *a, const struct mx_gpu_option *b) {
  int pa = isfinite(a->usd_per_gpu_hour), pb = isfinite(b->usd_per_gpu_hour);
  if (pa != pb) return pa;
  if (pa && a->usd_per_gpu_hour != b->usd_per_gpu_hour)
    return a->usd_per_gpu_hour < b->usd_per_gpu_hour;
  double ua = isfinite(a->projected_gpu_util) ? a->projected_gpu_util : a->projected_gpu_mem;
  double ub = isfinite(b->projected_gpu_util) ? b->projected_gpu_util : b->projected_gpu_mem;
  return ua > ub;
}

int mx_bm_decide(const struct mx_usage *u, struct mx_gpu_option *opts, size_t n, size_t cur,
                 enum mx_action *action, size_t *chosen, int *short_of) {
  const char *which;
  double gr = mx_usage_ratio(u, 1, &which);
  if (!isfinite(gr) || cur >= n) return -1;
  const struct mx_gpu_option *c = &opts[cur];
  for (size_t i = 0; i < n; i++) {
    struct mx_gpu_option *o = &opts[i];
    o->projected_gpu_util = isfinite(u->gpu_util) ? u->gpu_util / o->speed : NAN;
    o->projected_gpu_mem = isfinite(u->gpu_mem) ? u->gpu_mem * c->memory_gb / o->memory_gb : NAN;
  }
  *action = MX_MAINTAIN;
  *chosen = cur;
  *short_of = 0;
  long pick = -1;
  if (gr > 1 + MX_TOLERANCE) {
    for (size_t i = 0; i < n; i++)
      if (i != cur && within(&opts[i]) && (pick < 0 || better(&opts[i], &opts[pick])))
        pick = (long)i;
    if (pick < 0) { /* nothing is enough: the fastest that fits */
      for (size_t i = 0; i < n; i++)
        if (i != cur && opts[i].fits && opts[i].allowed && opts[i].speed > 1 &&
            !(opts[i].projected_gpu_mem > 100) &&
            (pick < 0 || opts[i].speed > opts[pick].speed))
          pick = (long)i;
      *short_of = pick >= 0;
    }
  } else {
    double cr = mx_usage_ratio(&(struct mx_usage){.gpu_util = NAN, .gpu_mem = NAN,
                                                  .cpu_util = u->cpu_util,
                                                  .cpu_mem = u->cpu_mem},
                               0, &which);
    if (isfinite(cr) && cr > 1 + MX_TOLERANCE) return 0; /* CPU-bound: a GPU will not help */
    if (!isfinite(c->usd_per_gpu_hour)) return 0;        /* no saving can be shown */
    for (size_t i = 0; i < n; i++)
      if (i != cur && within(&opts[i]) && isfinite(opts[i].usd_per_gpu_hour) &&
          opts[i].usd_per_gpu_hour < c->usd_per_gpu_hour &&
          (pick < 0 || better(&opts[i], &opts[pick])))
        pick = (long)i;
  }
  if (pick < 0) return 0;
  *chosen = (size_t)pick;
  *action = opts[pick].speed > 1 ? MX_UPGRADE : MX_DOWNGRADE;
  return 0;
}

/* ---- optimization ---------------------------------------------------------- */

const char *mx_method_name(enum mx_method m) {
  return m == MX_QUANTIZATION ? "quantization" : m == MX_PRUNING ? "pruning" : "distillation";
}

const char *mx_opt_precision_name(enum mx_opt_precision p) {
  static const char *const n[MX_OPT_N] = {"FP32", "FP16", "INT8", "INT4"};
  return p < MX_OPT_N ? n[p] : "?";
}

enum mx_precision mx_opt_precision_sim(enum mx_opt_precision p) {
  static const enum mx_precision s[MX_OPT_N] = {MX_FP32, MX_FP16, MX_INT8, MX_INT4};
  return s[p];
}

int mx_opt_decide(const struct mx_opt_eval ev[MX_OPT_N], enum mx_opt_precision current,
                  enum mx_tolerance tol, int sparse_ok, enum mx_opt_precision *precision,
                  enum mx_method *method, int *change) {
  int floor = tol == MX_TOL_NONE       ? MX_OPT_FP32
              : tol == MX_TOL_STRICT   ? MX_OPT_FP16
              : tol == MX_TOL_MODERATE ? MX_OPT_INT8
                                       : MX_OPT_INT4;
  int best = -1, least = -1;
  for (int p = 0; p <= floor; p++) {
    if (!ev[p].simulated) continue;
    least = p;
    if (!ev[p].meets) continue;
    double cp = isfinite(ev[p].cost) ? ev[p].cost : INFINITY;
    double cb = best < 0 ? INFINITY : isfinite(ev[best].cost) ? ev[best].cost : INFINITY;
    if (best < 0 || cp < cb) best = p;
  }
  if (least < 0) return -1;
  *change = 1;
  if (best < 0) {
    *precision = (enum mx_opt_precision)least;
    *method = MX_DISTILLATION;
  } else if (best != (int)current) {
    *precision = (enum mx_opt_precision)best;
    *method = MX_QUANTIZATION;
  } else {
    *precision = current;
    *method = sparse_ok ? MX_PRUNING : MX_QUANTIZATION;
    *change = sparse_ok;
  }
  return 0;
}
