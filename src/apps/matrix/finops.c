/* finops.c — matrix's cost, energy and carbon arithmetic (finops.h):
 * integration of samples over a period, OpenCost's split of a host's price
 * and allocation by usage, the idle remainder, modelled power. */
#include "apps/matrix/finops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1e9

/* ---- integration --------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int64_t mx_nominal_interval(const struct series_sample *s, size_t n, int64_t max_gap_ns) {
  if (n < 2) return 0;
  /* small series (a period of samples) on the stack; a long one sorted in
   * a heap copy */
  int64_t local[256], *d = n - 1 <= 256 ? local : malloc((n - 1) * sizeof *d);
  if (!d) return 0;
  size_t k = 0;
  for (size_t i = 1; i < n; i++) {
    int64_t gap = s[i].ts_ns - s[i - 1].ts_ns; /* both valid times: cannot overflow */
    if (gap > 0 && gap <= max_gap_ns) d[k++] = gap;
  }
  int64_t med = 0;
  if (k) {
    qsort(d, k, sizeof *d, cmp_i64);
    med = k % 2 ? d[k / 2] : d[k / 2 - 1] + (d[k / 2] - d[k / 2 - 1]) / 2;
  }
  if (d != local) free(d);
  return med;
}

/* Counts the piece [a, b) of the period, where the value runs linearly
 * from va to vb, as covered by one more sample: into out, and split at the
 * bucket boundaries into bk (may be NULL). */
static void piece(struct mx_integral *out, const struct mx_buckets *bk, int64_t from, int64_t a,
                  int64_t b, double va, double vb) {
  if (out->first_ns == INT64_MIN || a < out->first_ns) out->first_ns = a;
  if (out->last_ns == INT64_MIN || b > out->last_ns) out->last_ns = b;
  out->covered_s += (double)(b - a) / NS_PER_S;
  out->area += (va + vb) / 2 * (double)(b - a) / NS_PER_S;
  out->samples++;
  if (!bk) return;
  double span = (double)(b - a);
  for (size_t k = (size_t)((a - from) / bk->step_ns); k < bk->n; k++) {
    int64_t lo = from + (int64_t)k * bk->step_ns, hi; /* lo <= a piece's end: a time */
    if (lo >= b) break;
    if (__builtin_add_overflow(lo, bk->step_ns, &hi)) hi = INT64_MAX;
    int64_t x = a > lo ? a : lo, y = b < hi ? b : hi;
    double vx = va + (vb - va) * (double)(x - a) / span;
    double vy = va + (vb - va) * (double)(y - a) / span;
    bk->area[k] += (vx + vy) / 2 * (double)(y - x) / NS_PER_S;
    bk->covered[k] += (double)(y - x) / NS_PER_S;
  }
}

void mx_integrate(const struct series_sample *s, size_t n, int64_t from, int64_t to,
                  const struct mx_integrate_cfg *cfg, struct mx_integral *out,
                  const struct mx_buckets *bk) {
  memset(out, 0, sizeof *out);
  out->first_ns = out->last_ns = INT64_MIN;
  if (to <= from) return;
  int64_t gmax = cfg->max_gap_ns;
  int64_t nominal = mx_nominal_interval(s, n, gmax);
  if (!nominal) nominal = cfg->interval_ns;
  if (nominal > gmax) nominal = gmax;
  for (size_t i = 0; i < n; i++) {
    int64_t t = s[i].ts_ns;
    int gap_before = i > 0 && t - s[i - 1].ts_ns > gmax;
    if (gap_before && s[i - 1].ts_ns < to && t > from) out->gaps++;
    if (cfg->method == MX_INTEGRATE_STEP) {
      /* (start, t]: from the previous sample, or one nominal interval */
      int64_t start;
      if (i > 0 && !gap_before) start = s[i - 1].ts_ns;
      else if (__builtin_sub_overflow(t, nominal, &start)) start = INT64_MIN;
      int64_t a = start > from ? start : from, b = t < to ? t : to;
      if (b > a) piece(out, bk, from, a, b, s[i].value, s[i].value);
    } else {
      if (i == 0 || gap_before) continue;
      int64_t t0 = s[i - 1].ts_ns;
      double v0 = s[i - 1].value, v1 = s[i].value;
      int64_t a = t0 > from ? t0 : from, b = t < to ? t : to;
      if (b <= a) continue;
      /* the line through the two samples, at the cut points */
      double span = (double)(t - t0);
      piece(out, bk, from, a, b, v0 + (v1 - v0) * (double)(a - t0) / span,
            v0 + (v1 - v0) * (double)(b - t0) / span);
    }
  }
}

/* ---- prices ---------------------------------------------------------------------- */

static double known(double v) { return isfinite(v) && v > 0 ? v : 0; }

void mx_host_price_split(struct mx_host_price *p) {
  double wc = known(p->vcpus) * MX_OPENCOST_CPU_HOURLY;
  double wr = known(p->memory_gib) * MX_OPENCOST_RAM_GIB_HOURLY;
  double wg = (p->gpus > 0 ? p->gpus : 0) * MX_OPENCOST_GPU_HOURLY;
  double w = wc + wr + wg;
  if (!isfinite(p->usd_per_hour)) {
    p->cpu_per_hour = p->gpu_per_hour = p->ram_per_hour = NAN;
    return;
  }
  if (w <= 0) { /* nothing to split by: the whole price stays unallocated (idle) */
    p->cpu_per_hour = p->gpu_per_hour = p->ram_per_hour = 0;
    return;
  }
  p->cpu_per_hour = p->usd_per_hour * wc / w;
  p->ram_per_hour = p->usd_per_hour * wr / w;
  p->gpu_per_hour = p->usd_per_hour * wg / w;
}

/* part_per_hour × used / (amount × 3600): the share of a resource's hourly
 * price that `used` resource-seconds take. */
static double share(double part_per_hour, double used, double amount) {
  if (!(amount > 0) || !(used > 0)) return 0;
  return part_per_hour * used / (amount * 3600);
}

static void energy_part(double energy_j, const struct mx_energy_rate *e, struct mx_cost *out) {
  out->it_kwh = energy_j / 3.6e6;
  out->facility_kwh = out->it_kwh * (isfinite(e->pue) && e->pue >= 1 ? e->pue : 1);
  out->gco2e = out->facility_kwh * e->g_per_kwh;
  out->electricity_value = out->facility_kwh * e->usd_per_kwh;
  out->electricity = e->billed ? out->electricity_value : 0;
}

static void total_of(struct mx_cost *c) {
  /* a host with no price (own hardware, none given) adds nothing for it */
  double host = (isnan(c->cpu) ? 0 : c->cpu) + (isnan(c->gpu) ? 0 : c->gpu) +
                (isnan(c->ram) ? 0 : c->ram);
  c->total = host + c->electricity;
}

void mx_cost_of(const struct mx_usage *u, const struct mx_host_price *p,
                const struct mx_energy_rate *e, struct mx_cost *out) {
  memset(out, 0, sizeof *out);
  out->cpu = share(p->cpu_per_hour, u->cpu_core_s, p->vcpus);
  out->gpu = share(p->gpu_per_hour, u->gpu_s, p->gpus);
  out->ram = share(p->ram_per_hour, u->mem_gib_s, p->memory_gib);
  if (isnan(p->usd_per_hour)) out->cpu = out->gpu = out->ram = NAN;
  energy_part(u->energy_j, e, out);
  total_of(out);
}

static double rest(double whole, double used) {
  double r = whole - (isnan(used) ? 0 : used);
  return r > 0 ? r : 0;
}

void mx_idle_of(double host_s, double host_energy_j, const struct mx_cost *allocated,
                const struct mx_host_price *p, const struct mx_energy_rate *e,
                struct mx_cost *out) {
  memset(out, 0, sizeof *out);
  double h = host_s / 3600;
  if (isnan(p->usd_per_hour)) {
    out->cpu = out->gpu = out->ram = NAN;
  } else {
    out->cpu = rest(p->cpu_per_hour * h, allocated->cpu);
    out->gpu = rest(p->gpu_per_hour * h, allocated->gpu);
    out->ram = rest(p->ram_per_hour * h, allocated->ram);
  }
  double idle_j = isnan(host_energy_j) ? NAN : rest(host_energy_j, allocated->it_kwh * 3.6e6);
  energy_part(idle_j, e, out);
  if (isnan(idle_j)) out->electricity = e->billed ? NAN : 0;
  total_of(out);
  if (isnan(out->electricity)) out->total = NAN;
}

void mx_cost_add(struct mx_cost *a, const struct mx_cost *b) {
  a->cpu += b->cpu;
  a->gpu += b->gpu;
  a->ram += b->ram;
  a->electricity += b->electricity;
  a->total += b->total;
  a->it_kwh += b->it_kwh;
  a->facility_kwh += b->facility_kwh;
  a->gco2e += b->gco2e;
  a->electricity_value += b->electricity_value;
}

/* ---- modelled power ---------------------------------------------------------------- */

double mx_model_energy_j(const struct mx_usage *u, double cpu_min_w, double cpu_max_w,
                         double gpu_tdp_w) {
  double j = (cpu_max_w - cpu_min_w) * u->cpu_core_s;
  if (isfinite(gpu_tdp_w)) j += gpu_tdp_w * u->gpu_s;
  return j;
}

/* ---- efficiency ------------------------------------------------------------------- */

const char *mx_efficiency_grade(double score) {
  if (!(score > 0)) return "";
  return score >= 80 ? "A" : score >= 60 ? "B" : score >= 40 ? "C" : score >= 20 ? "D" : "E";
}
