/* advise.h — matrix's recommendations as pure decisions (seed 003 §4.2,
 * §7.1.3): which catalogue configurations meet a workload's requirements
 * and in what order (recommend-hardware), what to do with a deployment
 * from its measured utilisation (post-deployment-optimization: the seed's
 * label sets), and which compression method and precision to use
 * (optimization-recommendation). The routes (recommend.c) feed these with
 * the simulator's figures (simulate.h); nothing here does I/O, allocates
 * beyond the JSON it returns, or keeps state: any thread.
 *
 * The rules and their thresholds, with their sources, are in
 * docs/matrix.md ("Recommendations"). */
#ifndef GROVE_MATRIX_ADVISE_H
#define GROVE_MATRIX_ADVISE_H

#include <jansson.h>
#include <stddef.h>

#include "apps/matrix/catalog.h"
#include "apps/matrix/simulate.h"

/* ---- recommend-hardware ---------------------------------------------------- */

enum mx_rank_by { MX_RANK_COST, MX_RANK_LATENCY, MX_RANK_THROUGHPUT, MX_RANK_ENERGY,
                  MX_RANK_CARBON, MX_RANK_N };
/* "cost", "latency", "throughput", "energy", "carbon"; returns 0 or -1. */
int mx_rank_by_parse(const char *s, enum mx_rank_by *out);
const char *mx_rank_by_name(enum mx_rank_by by);

/* The requirements of seed §6.1.2's performance_requirements; NAN: none.
 * budget is USD per month (730 h of one replica) for inference, USD per
 * run for training. Latency and throughput apply to inference only. */
struct mx_requirements {
  double max_latency_ms, min_qps, budget;
  int training;
};

/* Splits simulated configurations into a ranking and the excluded.
 * configs: simulate's `configurations` (objects with hardware, gpu_count,
 * performance_metrics, memory, cost_analysis); refused: simulate's
 * `excluded` (objects with hardware, gpu_count, reason), may be NULL.
 * *ranking (new array): the configurations meeting every requirement,
 * best first by `by` (for cost, configurations priced by an instance rank
 * before those costed at the electricity price only, whose cost leaves the
 * hardware out; unknown figures last; ties by fewer GPUs), each a copy
 * with `rank` (1-based) and `monthly` (cost, energy and carbon of 730 h
 * at the simulated throughput, inference only) added.
 * *excluded (new array): every other configuration as {hardware,
 * gpu_count, reasons: [{code, message}]}, codes DOES_NOT_FIT, TOO_SLOW,
 * TOO_LITTLE_THROUGHPUT, OVER_BUDGET, COST_UNKNOWN, NOT_SIMULABLE.
 * Returns 0, or GROVE_ENOMEM (nothing returned). configs is not changed. */
int mx_rank_configurations(json_t *configs, json_t *refused, const struct mx_requirements *req,
                           enum mx_rank_by by, json_t **ranking, json_t **excluded);

/* ---- post-deployment-optimization ------------------------------------------ */

/* Target utilisation: 100 % less AWS Compute Optimizer's default headroom
 * of 20 % (CPU and memory), applied to GPU utilisation and GPU memory as
 * well; and the Kubernetes HPA's default tolerance (0.1) around it. */
#define MX_TARGET_UTIL 80.0
#define MX_TOLERANCE 0.1

/* Measured utilisation in percent (0..100); NAN when not measured. */
struct mx_usage {
  double gpu_util, gpu_mem, cpu_util, cpu_mem;
};

enum mx_action { MX_MAINTAIN, MX_UPGRADE, MX_DOWNGRADE, MX_SCALE_IN, MX_SCALE_OUT };

/* Of the usage: the ratio of each measured figure to MX_TARGET_UTIL, the
 * largest (the binding resource, *which names it: "gpu_utilization",
 * "gpu_memory_usage", "cpu_utilization", "cpu_memory_usage"); considering
 * only GPU figures when gpu_only. NAN when nothing is measured. */
double mx_usage_ratio(const struct mx_usage *u, int gpu_only, const char **which);

/* VMs: the HPA's rule, desired = ceil(instances × ratio) (ratio from
 * mx_usage_ratio over every measured figure), unchanged while
 * |ratio − 1| ≤ MX_TOLERANCE; at least 1. *action is MX_MAINTAIN,
 * MX_SCALE_OUT or MX_SCALE_IN. Returns 0, or -1 when nothing is measured. */
int mx_vm_decide(const struct mx_usage *u, int instances, enum mx_action *action, int *desired,
                 double *ratio, const char **driver);

/* Bare metal: one catalogue GPU the deployment could move to (the current
 * one among them), as the route found it with the simulator. */
struct mx_gpu_option {
  const struct mx_hw *hw;
  double speed;            /* work per second relative to the current GPU (current: 1) */
  double memory_gb;        /* per GPU */
  double usd_per_gpu_hour; /* cheapest catalogued instance, per GPU; NAN: none */
  int fits;                /* the model fits (the simulator), or 1 when not known */
  int allowed;             /* 0: ruled out by the caller (e.g. too slow for its latency ceiling) */
  /* filled by mx_bm_decide: */
  double projected_gpu_util, projected_gpu_mem;
};

/* Decides Upgrade/MAINTAIN/Downgrade from GPU utilisation and memory:
 * Only options with `allowed` set are moved to.
 *  - GPU ratio > 1 + MX_TOLERANCE (overloaded): the cheapest option that
 *    brings both projected figures to ≤ MX_TARGET_UTIL (unpriced options
 *    after priced ones, then the tightest fit); none does: the fastest that
 *    fits, with *short_of set;
 *  - CPU overloaded and the GPU not: MAINTAIN (a GPU will not help);
 *  - otherwise the cheapest option cheaper than the current one that keeps
 *    both projected figures ≤ MX_TARGET_UTIL; none: MAINTAIN.
 * projected util = gpu_util / speed; projected memory = gpu_mem × current
 * memory / option memory. The move is an Upgrade when the option is
 * faster than the current GPU (speed > 1), else a Downgrade. opts[cur] is
 * the current GPU. *chosen: the option moved to, or cur. Returns 0, or -1
 * when no GPU figure is measured. */
int mx_bm_decide(const struct mx_usage *u, struct mx_gpu_option *opts, size_t n, size_t cur,
                 enum mx_action *action, size_t *chosen, int *short_of);

/* ---- optimization-recommendation ------------------------------------------- */

/* The seed's precision labels, in order of decreasing accuracy. */
enum mx_opt_precision { MX_OPT_FP32, MX_OPT_FP16, MX_OPT_INT8, MX_OPT_INT4, MX_OPT_N };
enum mx_method { MX_QUANTIZATION, MX_PRUNING, MX_DISTILLATION };
const char *mx_method_name(enum mx_method m);
const char *mx_opt_precision_name(enum mx_opt_precision p);
/* The simulator's precision for a label. */
enum mx_precision mx_opt_precision_sim(enum mx_opt_precision p);

/* How much accuracy the caller may give up: none keeps FP32, strict
 * 16-bit or more, moderate allows INT8, relaxed INT4. */
enum mx_tolerance { MX_TOL_NONE, MX_TOL_STRICT, MX_TOL_MODERATE, MX_TOL_RELAXED };

/* One precision as simulated on the deployment's hardware. */
struct mx_opt_eval {
  int simulated;           /* 0: the hardware cannot run it (no published peak) */
  int fits, meets;         /* fits in memory; meets every requirement (incl. fit) */
  double cost;             /* USD per 1,000 inferences; NAN unknown */
};

/* Chooses the precision and method:
 *  - precision: of those the tolerance allows that the hardware runs, the
 *    one meeting every requirement at the lowest cost (ties: the more
 *    precise); none meets: the least precise allowed;
 *  - method: none meets → distillation (a smaller model is needed); the
 *    precision differs from the current one → quantization (to it, from
 *    the original checkpoint when it is the more precise);
 *    otherwise → pruning when sparse_ok (the workload is compute-bound on
 *    a GPU with 2:4 sparse tensor cores), else quantization at the current
 *    precision with *change = 0 (nothing to change).
 * Returns 0, or -1 when the hardware runs no allowed precision. */
int mx_opt_decide(const struct mx_opt_eval ev[MX_OPT_N], enum mx_opt_precision current,
                  enum mx_tolerance tol, int sparse_ok, enum mx_opt_precision *precision,
                  enum mx_method *method, int *change);

#endif
