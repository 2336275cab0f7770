/* finops.h — matrix's cost, energy and carbon arithmetic (seed 003's
 * "FinOps"), internal to src/apps/matrix/: integrating measured series
 * over a period, splitting a host's hourly price into CPU, GPU and memory
 * as OpenCost does, a process's share of it, the host's idle remainder
 * ("__idle__"), and an hour of a workload in a region. The routes that use
 * it are costs.c's; docs/matrix.md "Cost, energy and carbon" gives every
 * formula with its source.
 *
 * Units: times in int64 Unix nanoseconds, durations in seconds (double),
 * power in W, energy in J or kWh as named, prices in USD, carbon in
 * gCO2e. A figure nobody gave is NAN and stays NAN through the arithmetic
 * (a cost with an unknown price is unknown, not 0).
 *
 * Pure functions, no allocation but where stated: any thread. */
#ifndef GROVE_MATRIX_FINOPS_H
#define GROVE_MATRIX_FINOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "series/series.h"

/* OpenCost's default resource prices (opencost/opencost configs/default.json,
 * "Default prices based on GCP us-central1"): USD per vCPU-hour, per
 * GiB-hour of memory, per GPU-hour. Only their ratio is used: a host's
 * price is split in these proportions (OpenCost specification, Appendix A). */
#define MX_OPENCOST_CPU_HOURLY 0.031611
#define MX_OPENCOST_RAM_GIB_HOURLY 0.004237
#define MX_OPENCOST_GPU_HOURLY 0.95

/* Cloud Carbon Footprint's AWS per-vCPU power coefficients (W at 0 % and
 * 100 % utilisation), as grove-agent uses them without RAPL. */
#define MX_CCF_VCPU_MIN_W 0.74
#define MX_CCF_VCPU_MAX_W 3.5

/* ---- integrating samples over a period ----------------------------------------
 * step: a sample is the mean over the interval that ends at it (what
 *   grove-agent sends: CPU time and RAPL energy deltas over its interval),
 *   so sample i covers (t[i-1], t[i]]; the first sample of a series, and
 *   the first after a gap, cover (t[i] - nominal, t[i]].
 * trapezoid: samples are instantaneous readings (an nvidia-smi power
 *   draw); the series is linear between two samples, and nothing is
 *   counted outside the first and last or across a gap.
 * A gap is two consecutive samples further apart than max_gap_ns: the
 *   time between is not covered (the process or the agent was not there).
 * nominal: the median spacing of the series' samples that are not gaps;
 *   a series with no such spacing uses interval_ns. It is at most
 *   max_gap_ns.
 * Only what lies inside [from, to) counts; a trapezoid cut by a boundary
 *   is cut at the value interpolated there. */
enum mx_integration { MX_INTEGRATE_STEP, MX_INTEGRATE_TRAPEZOID };

struct mx_integrate_cfg {
  enum mx_integration method;
  int64_t max_gap_ns;      /* > 0 */
  int64_t interval_ns;     /* > 0: the nominal interval of a series that shows none */
};

struct mx_integral {
  double area;             /* ∫ value dt over what is covered, value × seconds */
  double covered_s;        /* seconds of [from, to) the samples cover */
  int64_t first_ns, last_ns; /* the first and last instant covered; INT64_MIN when none */
  size_t samples;          /* samples that covered any of the period */
  size_t gaps;             /* gaps that overlap the period */
};

/* The period cut into n buckets [from + k·step, from + (k+1)·step) (the
 * last one ends at `to`): what falls in bucket k is added to area[k] and
 * covered[k] (n doubles each, the caller's, not zeroed here). */
struct mx_buckets {
  int64_t step_ns;         /* > 0 */
  size_t n;                /* ceil((to - from) / step_ns) */
  double *area, *covered;
};

/* Integrates s[0..n) (by time, strictly increasing: as series_read gives
 * them) over [from, to), and into bk's buckets when bk is not NULL.
 * Samples outside the period may be given (read [from - max_gap,
 * to + max_gap) so that the samples covering its edges are there).
 * OUT: *out. Never fails. */
void mx_integrate(const struct series_sample *s, size_t n, int64_t from, int64_t to,
                  const struct mx_integrate_cfg *cfg, struct mx_integral *out,
                  const struct mx_buckets *bk);

/* The median spacing of s's consecutive samples at most max_gap_ns apart,
 * or 0 when there is none. */
int64_t mx_nominal_interval(const struct series_sample *s, size_t n, int64_t max_gap_ns);

/* ---- a host's price --------------------------------------------------------------
 * OpenCost specification, Appendix A: when a provider prices a node as a
 * whole, its price is split into CPU, GPU and RAM in the ratio of the
 * default resource prices, scaled so that the parts add up to the node's
 * price: part_r = price × amount_r × base_r / Σ amount × base. A resource
 * whose amount is unknown (NAN) or 0 gets nothing. */
struct mx_host_price {
  double usd_per_hour;     /* the host's price; NAN: none (own hardware, not given) */
  double vcpus, memory_gib; /* NAN when unknown */
  int gpus;
  double cpu_per_hour, gpu_per_hour, ram_per_hour; /* the split; NAN when the price is */
};
void mx_host_price_split(struct mx_host_price *p);

/* Energy's price and footprint where the host runs. */
struct mx_energy_rate {
  double usd_per_kwh;      /* NAN: unknown */
  double pue;              /* NAN: unknown (then 1: IT energy only) */
  double g_per_kwh;        /* NAN: unknown */
  bool billed;             /* the electricity is paid apart from the host's price
                            * (own hardware), not inside it (a cloud instance) */
};

/* What a process (or the idle remainder) used over the period. */
struct mx_usage {
  double cpu_core_s;       /* ∫ cores busy dt: cpu_usage_percent / 100, top's scale */
  double gpu_s;            /* ∫ GPUs busy dt: gpu_utilization_percent / 100 */
  double mem_gib_s;        /* ∫ resident memory (GiB) dt */
  double energy_j;         /* ∫ power dt (IT: at the machine, before PUE) */
};

struct mx_cost {
  double cpu, gpu, ram;    /* shares of the host's price, USD */
  double electricity;      /* facility energy × price when billed, else 0; USD */
  double total;            /* their sum (NAN when a part is) */
  double it_kwh, facility_kwh; /* facility = IT × PUE */
  double gco2e;            /* facility kWh × intensity */
  double electricity_value; /* facility energy × price, billed or not (what the
                             * energy is worth; inside a cloud price) */
};

/* A process's cost (OpenCost's allocation by usage): cpu = cpu_per_hour ×
 * cpu_core_s / (vcpus × 3600), gpu = gpu_per_hour × gpu_s / (gpus × 3600),
 * ram = ram_per_hour × mem_gib_s / (memory_gib × 3600); a part whose
 * resource the host does not have (or whose amount is unknown) is 0.
 * Energy: it_kwh = energy_j / 3.6e6, facility_kwh = it_kwh × PUE,
 * electricity = facility_kwh × usd_per_kwh when billed. OUT: *out. */
void mx_cost_of(const struct mx_usage *u, const struct mx_host_price *p,
                const struct mx_energy_rate *e, struct mx_cost *out);

/* The host's idle remainder (OpenCost's "__idle__"): the host's price
 * over host_s seconds, less what the processes were allocated (each part
 * at least 0), and the host's energy less the processes' (at least 0),
 * priced as mx_cost_of prices energy. allocated: the processes' costs
 * summed. host_energy_j: NAN when the host's energy is unknown (then the
 * idle energy is NAN too). OUT: *out. */
void mx_idle_of(double host_s, double host_energy_j, const struct mx_cost *allocated,
                const struct mx_host_price *p, const struct mx_energy_rate *e,
                struct mx_cost *out);

/* Sums b into a, part by part (NAN stays NAN). */
void mx_cost_add(struct mx_cost *a, const struct mx_cost *b);

/* ---- modelled power (no power series) ----------------------------------------------
 * A process: cores busy × (max − min) per vCPU + GPUs busy × the GPU's
 * TDP, both linear in utilisation, so its energy is
 *   (cpu_max_w − cpu_min_w) × cpu_core_s + gpu_tdp_w × gpu_s
 * (the per-vCPU floor is the host's idle, not the process's; a GPU's idle
 * power is unpublished, so a busy fraction of a GPU is taken at its TDP).
 * A host: the same plus vcpus × cpu_min_w over its covered time. The
 * per-vCPU figures are Cloud Carbon Footprint's unless a catalogue CPU
 * gives them (TDP / cores as max, max × 0.74 / 3.5 as min, as grove-agent
 * does with --cpu-tdp-watts). gpu_tdp_w NAN: GPU time adds nothing (the
 * caller says so). Joules. */
double mx_model_energy_j(const struct mx_usage *u, double cpu_min_w, double cpu_max_w,
                         double gpu_tdp_w);

/* ---- efficiency --------------------------------------------------------------------
 * energy_efficiency_rating of seed 003's cost_models: how many inferences
 * a configuration serves per kWh of facility energy, against the best
 * configuration of the same workload in the same answer:
 *   score = 100 × inferences_per_kwh / best, grade A (score ≥ 80), B (≥ 60),
 *   C (≥ 40), D (≥ 20), E (below). "" for a NAN or non-positive figure. */
const char *mx_efficiency_grade(double score);

#endif
