/* test_finops.c — matrix's cost, energy and carbon arithmetic (finops.h)
 * against cases computed by hand: integration over a period (step and
 * trapezoid, boundaries, gaps, a series that starts mid-period),
 * OpenCost's split of a host's price, a process's share, the idle
 * remainder, modelled power, the efficiency grade. */
#include <math.h>

#include "../test.h"
#include "apps/matrix/finops.h"

#define S 1000000000LL

static int near(double a, double b, double rel) {
  return fabs(a - b) <= rel * fabs(b) + 1e-15;
}

static const struct mx_integrate_cfg STEP = {MX_INTEGRATE_STEP, 300 * S, 5 * S};
static const struct mx_integrate_cfg TRAP = {MX_INTEGRATE_TRAPEZOID, 300 * S, 5 * S};

/* samples every 10 s at t = 10 … 60 s of value v */
static size_t every10(struct series_sample *s, int first, int last, double v) {
  size_t n = 0;
  for (int t = first; t <= last; t += 10) s[n++] = (struct series_sample){t * S, v};
  return n;
}

TEST(step_counts_each_sample_over_the_interval_that_ends_at_it) {
  struct series_sample s[16];
  size_t n = every10(s, 0, 70, 500);
  struct mx_integral in;
  mx_integrate(s, n, 0, 60 * S, &STEP, &in, NULL);
  /* the sample at 0 covers (−10, 0] and the one at 70 (60, 70]: outside
   * [0, 60); the six between cover 60 s: 500 W × 60 s = 30,000 J */
  CHECK(near(in.area, 30000, 1e-12));
  CHECK(near(in.covered_s, 60, 1e-12));
  CHECK_EQ_INT(in.samples, 6);
  CHECK_EQ_INT(in.gaps, 0);
  CHECK(in.first_ns == 0 && in.last_ns == 60 * S);
}

TEST(step_cuts_intervals_at_the_period_boundaries) {
  struct series_sample s[16];
  size_t n = every10(s, 10, 60, 300);
  struct mx_integral in;
  mx_integrate(s, n, 15 * S, 45 * S, &STEP, &in, NULL);
  /* (10, 20] gives 5 s, (20, 30] and (30, 40] 10 s each, (40, 50] 5 s:
   * 30 s × 300 W = 9,000 J */
  CHECK(near(in.area, 9000, 1e-12));
  CHECK(near(in.covered_s, 30, 1e-12));
  CHECK(in.first_ns == 15 * S && in.last_ns == 45 * S);
  /* an empty or reversed period counts nothing */
  mx_integrate(s, n, 45 * S, 45 * S, &STEP, &in, NULL);
  CHECK(in.area == 0 && in.samples == 0 && in.first_ns == INT64_MIN);
}

TEST(a_series_that_starts_mid_period_covers_one_interval_before_its_first_sample) {
  struct series_sample s[16];
  size_t n = every10(s, 40, 60, 50);
  struct mx_integral in;
  mx_integrate(s, n, 0, 60 * S, &STEP, &in, NULL);
  /* its own spacing is 10 s: (30, 40] + (40, 50] + (50, 60] = 30 s × 50 W */
  CHECK(near(in.area, 1500, 1e-12));
  CHECK(in.first_ns == 30 * S);
  /* one sample alone: the configured interval, 5 s: (35, 40] */
  mx_integrate(s, 1, 0, 60 * S, &STEP, &in, NULL);
  CHECK(near(in.area, 250, 1e-12) && in.first_ns == 35 * S);
}

TEST(a_gap_is_not_covered) {
  /* 0, 10, 20, then 400, 410: 380 s apart is over the 300 s maximum */
  struct series_sample s[] = {{0, 1}, {10 * S, 1}, {20 * S, 1}, {400 * S, 1}, {410 * S, 1}};
  struct mx_integral in;
  mx_integrate(s, 5, 0, 500 * S, &STEP, &in, NULL);
  /* (0, 10] + (10, 20] + (390, 400] (one median spacing, 10 s) + (400, 410] */
  CHECK(near(in.covered_s, 40, 1e-12));
  CHECK_EQ_INT(in.gaps, 1);
  mx_integrate(s, 5, 0, 500 * S, &TRAP, &in, NULL);
  /* trapezoid: [0, 20] and [400, 410], nothing across the gap */
  CHECK(near(in.covered_s, 30, 1e-12));
  CHECK_EQ_INT(in.gaps, 1);
}

TEST(trapezoid_interpolates_at_the_boundaries) {
  struct series_sample s[] = {{0, 0}, {10 * S, 100}, {20 * S, 100}};
  struct mx_integral in;
  mx_integrate(s, 3, 5 * S, 25 * S, &TRAP, &in, NULL);
  /* [5, 10]: from 50 (interpolated) to 100, 75 × 5 = 375; [10, 20]: 1,000;
   * nothing after the last sample */
  CHECK(near(in.area, 1375, 1e-12));
  CHECK(near(in.covered_s, 15, 1e-12));
}

TEST(buckets_split_each_interval_at_their_boundaries) {
  struct series_sample s[16];
  size_t n = every10(s, 10, 60, 300);
  double area[3] = {0}, cov[3] = {0};
  struct mx_buckets bk = {25 * S, 3, area, cov};
  struct mx_integral in;
  mx_integrate(s, n, 0, 60 * S, &STEP, &in, &bk);
  /* [0, 25), [25, 50), [50, 60): 25, 25 and 10 s of 300 W */
  CHECK(near(area[0], 7500, 1e-12) && near(area[1], 7500, 1e-12) && near(area[2], 3000, 1e-12));
  CHECK(near(cov[0], 25, 1e-12) && near(cov[1], 25, 1e-12) && near(cov[2], 10, 1e-12));
  CHECK(near(in.area, 18000, 1e-12));
  /* trapezoid, 0 → 100 over [0, 10] then flat, in 5 s buckets: 0 → 50 is
   * 125, 50 → 100 is 375, then 500 and 500 */
  struct series_sample t[] = {{0, 0}, {10 * S, 100}, {20 * S, 100}};
  double a4[4] = {0}, c4[4] = {0};
  struct mx_buckets b4 = {5 * S, 4, a4, c4};
  mx_integrate(t, 3, 0, 20 * S, &TRAP, &in, &b4);
  CHECK(near(a4[0], 125, 1e-12) && near(a4[1], 375, 1e-12) && near(a4[2], 500, 1e-12) &&
        near(a4[3], 500, 1e-12));
}

TEST(nominal_interval_is_the_median_spacing) {
  struct series_sample s[] = {{0, 0}, {5 * S, 0}, {15 * S, 0}, {25 * S, 0}, {1000 * S, 0}};
  /* spacings 5, 10, 10 (975 is a gap): median 10 */
  CHECK(mx_nominal_interval(s, 5, 300 * S) == 10 * S);
  CHECK(mx_nominal_interval(s, 1, 300 * S) == 0);
}

static struct mx_host_price own(void) {
  struct mx_host_price p = {.usd_per_hour = 10, .vcpus = 32, .memory_gib = 256, .gpus = 2};
  mx_host_price_split(&p);
  return p;
}

TEST(opencost_splits_the_host_price_in_the_default_ratio) {
  struct mx_host_price p = own();
  /* 32 × 0.031611 = 1.011552; 256 × 0.004237 = 1.084672; 2 × 0.95 = 1.9;
   * sum 3.996224 */
  CHECK(near(p.cpu_per_hour, 10 * 1.011552 / 3.996224, 1e-12)); /* 2.53126952 */
  CHECK(near(p.ram_per_hour, 10 * 1.084672 / 3.996224, 1e-12)); /* 2.71424224 */
  CHECK(near(p.gpu_per_hour, 10 * 1.9 / 3.996224, 1e-12));      /* 4.75448824 */
  CHECK(near(p.cpu_per_hour + p.ram_per_hour + p.gpu_per_hour, 10, 1e-12));
  /* unknown memory: its part goes to the others */
  struct mx_host_price q = {.usd_per_hour = 3, .vcpus = 4, .memory_gib = NAN, .gpus = 1};
  mx_host_price_split(&q);
  CHECK(q.ram_per_hour == 0);
  CHECK(near(q.cpu_per_hour, 3 * 0.126444 / 1.076444, 1e-12)); /* 4 × 0.031611 = 0.126444 */
  /* no price: no parts */
  struct mx_host_price r = {.usd_per_hour = NAN, .vcpus = 4, .gpus = 1};
  mx_host_price_split(&r);
  CHECK(isnan(r.cpu_per_hour) && isnan(r.gpu_per_hour));
}

static const struct mx_energy_rate VIRGINIA_OWN = {0.0895, 1.58, 366, true};

TEST(a_process_pays_its_share_and_its_electricity) {
  struct mx_host_price p = own();
  /* 4 cores, one GPU and 16 GiB for 60 s at 300 W */
  struct mx_usage u = {.cpu_core_s = 240, .gpu_s = 60, .mem_gib_s = 960, .energy_j = 18000};
  struct mx_cost c;
  mx_cost_of(&u, &p, &VIRGINIA_OWN, &c);
  CHECK(near(c.cpu, 0.00527347816, 1e-9));  /* 2.53126952 × 240 / (32 × 3600) */
  CHECK(near(c.gpu, 0.03962073531, 1e-9));  /* 4.75448824 × 60 / (2 × 3600) */
  CHECK(near(c.ram, 0.00282733567, 1e-9));  /* 2.71424224 × 960 / (256 × 3600) */
  CHECK(near(c.it_kwh, 0.005, 1e-12));      /* 18,000 J / 3.6e6 */
  CHECK(near(c.facility_kwh, 0.0079, 1e-12)); /* × PUE 1.58 */
  CHECK(near(c.electricity, 0.00070705, 1e-12)); /* × 0.0895 USD/kWh */
  CHECK(near(c.gco2e, 2.8914, 1e-12));      /* × 366 g/kWh */
  CHECK(near(c.total, 0.04842859914, 1e-9));
  /* in a cloud instance the electricity is inside the price */
  struct mx_energy_rate cloud = VIRGINIA_OWN;
  cloud.billed = false;
  mx_cost_of(&u, &p, &cloud, &c);
  CHECK(c.electricity == 0 && near(c.electricity_value, 0.00070705, 1e-12));
  CHECK(near(c.total, 0.04842859914 - 0.00070705, 1e-9));
}

TEST(without_a_host_price_the_cost_is_electricity_only) {
  struct mx_host_price p = {.usd_per_hour = NAN, .vcpus = 32, .memory_gib = NAN, .gpus = 0};
  mx_host_price_split(&p);
  struct mx_usage u = {.cpu_core_s = 240, .energy_j = 3.6e6};
  struct mx_cost c;
  mx_cost_of(&u, &p, &VIRGINIA_OWN, &c);
  CHECK(isnan(c.cpu));
  /* 1 kWh × 1.58 × 0.0895 = 0.14141 */
  CHECK(near(c.total, 0.14141, 1e-12));
  /* unknown PUE: IT energy */
  struct mx_energy_rate nopue = {0.1, NAN, 300, true};
  mx_cost_of(&u, &p, &nopue, &c);
  CHECK(near(c.facility_kwh, 1, 1e-12) && near(c.total, 0.1, 1e-12));
}

TEST(idle_is_what_the_processes_left) {
  struct mx_host_price p = own();
  struct mx_cost a = {0}, c, idle;
  struct mx_usage t = {.cpu_core_s = 240, .gpu_s = 60, .mem_gib_s = 960, .energy_j = 18000};
  struct mx_usage s = {.cpu_core_s = 30, .mem_gib_s = 30, .energy_j = 1500};
  mx_cost_of(&t, &p, &VIRGINIA_OWN, &c);
  mx_cost_add(&a, &c);
  mx_cost_of(&s, &p, &VIRGINIA_OWN, &c);
  mx_cost_add(&a, &c);
  mx_idle_of(60, 30000, &a, &p, &VIRGINIA_OWN, &idle);
  /* gpu: 4.75448824 / 60 − 0.03962074 = 0.03962074 (half the GPUs idle) */
  CHECK(near(idle.gpu, 0.03962073531, 1e-9));
  /* energy: 30,000 − 18,000 − 1,500 = 10,500 J = 0.00291667 kWh */
  CHECK(near(idle.it_kwh, 10500 / 3.6e6, 1e-12));
  /* allocated + idle = the host: 10 USD/h × 1/60 h + 30,000 J / 3.6e6 ×
   * 1.58 × 0.0895 = 0.16666667 + 0.00117842 = 0.16784508 */
  CHECK(near(a.total + idle.total, 0.1678450833, 1e-9));
  /* processes that claim more than the host never make idle negative */
  mx_idle_of(1, 100, &a, &p, &VIRGINIA_OWN, &idle);
  CHECK(idle.gpu == 0 && idle.it_kwh == 0);
  /* unknown host energy: unknown idle energy */
  mx_idle_of(60, NAN, &a, &p, &VIRGINIA_OWN, &idle);
  CHECK(isnan(idle.it_kwh) && isnan(idle.total));
}

TEST(modelled_power_is_linear_in_utilisation) {
  /* 120 core-s: (3.5 − 0.74) × 120 = 331.2 J; 30 GPU-s of a 400 W GPU: 12,000 J */
  struct mx_usage u = {.cpu_core_s = 120, .gpu_s = 30};
  CHECK(near(mx_model_energy_j(&u, MX_CCF_VCPU_MIN_W, MX_CCF_VCPU_MAX_W, 400), 12331.2, 1e-12));
  CHECK(near(mx_model_energy_j(&u, MX_CCF_VCPU_MIN_W, MX_CCF_VCPU_MAX_W, NAN), 331.2, 1e-12));
}

TEST(efficiency_grades) {
  CHECK_EQ_STR(mx_efficiency_grade(100), "A");
  CHECK_EQ_STR(mx_efficiency_grade(80), "A");
  CHECK_EQ_STR(mx_efficiency_grade(79.9), "B");
  CHECK_EQ_STR(mx_efficiency_grade(40), "C");
  CHECK_EQ_STR(mx_efficiency_grade(20), "D");
  CHECK_EQ_STR(mx_efficiency_grade(1), "E");
  CHECK_EQ_STR(mx_efficiency_grade(NAN), "");
  CHECK_EQ_STR(mx_efficiency_grade(0), "");
}

static const struct test tests[] = {
  T(step_counts_each_sample_over_the_interval_that_ends_at_it),
  T(step_cuts_intervals_at_the_period_boundaries),
  T(a_series_that_starts_mid_period_covers_one_interval_before_its_first_sample),
  T(a_gap_is_not_covered),
  T(trapezoid_interpolates_at_the_boundaries),
  T(buckets_split_each_interval_at_their_boundaries),
  T(nominal_interval_is_the_median_spacing),
  T(opencost_splits_the_host_price_in_the_default_ratio),
  T(a_process_pays_its_share_and_its_electricity),
  T(without_a_host_price_the_cost_is_electricity_only),
  T(idle_is_what_the_processes_left),
  T(modelled_power_is_linear_in_utilisation),
  T(efficiency_grades),

};
TEST_MAIN(tests)
