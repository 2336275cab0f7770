/* test_advise.c — matrix's recommendation decisions (advise.h): the
 * ranking against requirements and its reasons, the seed's
 * post-deployment labels (each one reached), the method and precision. */
#include <math.h>
#include <string.h>

#include "../test.h"
#include "apps/matrix/advise.h"

/* A configuration as simulate writes it, with the figures ranking reads. */
static json_t *config(const char *hw, int gpus, double latency_ms, double qps, double per_hour,
                      double per_1000, int fits, int priced) {
  return json_pack("{s:s,s:i,s:{s:f,s:f},s:{s:b,s:f,s:f},s:{s:o,s:f,s:f,s:f,s:f}}", "hardware",
                   hw, "gpu_count", gpus, "performance_metrics", "latency_ms", latency_ms,
                   "throughput_qps", qps, "memory", "fits", fits, "per_gpu_gb", 30.0,
                   "available_per_gpu_gb", 24.0, "cost_analysis", "instance",
                   priced ? json_string("x.large") : json_null(), "cost_per_hour", per_hour,
                   "cost_per_1000_inferences", per_1000, "energy_kwh_per_1000_inferences", 0.1,
                   "carbon_g_per_1000_inferences", 36.6);
}

static json_t *configs(void) {
  json_t *a = json_array();
  json_array_append_new(a, config("fast", 1, 10, 100, 2.0, 0.0056, 1, 1));
  json_array_append_new(a, config("cheap", 1, 80, 20, 0.5, 0.0069, 1, 1));
  json_array_append_new(a, config("own", 1, 30, 50, 0.05, 0.0003, 1, 0));
  json_array_append_new(a, config("small", 1, 20, 50, 0.3, 0.0017, 0, 1));
  json_array_append_new(a, config("dear", 8, 5, 400, 40.0, 0.0278, 1, 1));
  return a;
}

static int has_code(json_t *excluded, const char *hw, const char *code) {
  for (size_t i = 0; i < json_array_size(excluded); i++) {
    json_t *x = json_array_get(excluded, i);
    if (strcmp(json_string_value(json_object_get(x, "hardware")), hw)) continue;
    json_t *rs = json_object_get(x, "reasons");
    for (size_t k = 0; k < json_array_size(rs); k++)
      if (!strcmp(json_string_value(json_object_get(json_array_get(rs, k), "code")), code))
        return 1;
  }
  return 0;
}

static const char *nth(json_t *ranking, size_t i) {
  return json_string_value(json_object_get(json_array_get(ranking, i), "hardware"));
}

TEST(ranking_keeps_what_meets_every_requirement_priced_first_then_cheapest) {
  json_t *c = configs(), *rank, *excl;
  struct mx_requirements req = {.max_latency_ms = 50, .min_qps = 30, .budget = 2000};
  CHECK(mx_rank_configurations(c, NULL, &req, MX_RANK_COST, &rank, &excl) == 0);
  /* cheap is too slow in throughput; small does not fit; dear is over budget
   * (40 × 730 USD a month against 2,000) */
  CHECK_EQ_INT(json_array_size(rank), 2);
  CHECK_EQ_STR(nth(rank, 0), "fast");   /* priced by an instance ranks first */
  CHECK_EQ_STR(nth(rank, 1), "own");    /* electricity only, though cheaper */
  CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(rank, 1), "rank")), 2);
  CHECK(has_code(excl, "cheap", "TOO_LITTLE_THROUGHPUT"));
  CHECK(has_code(excl, "cheap", "TOO_SLOW"));
  CHECK(has_code(excl, "small", "DOES_NOT_FIT"));
  CHECK(has_code(excl, "dear", "OVER_BUDGET"));
  CHECK_EQ_INT(json_array_size(excl), 3);
  /* monthly figures of 730 h at the simulated throughput */
  json_t *m = json_object_get(json_array_get(rank, 0), "monthly");
  CHECK(fabs(json_real_value(json_object_get(m, "cost_usd")) - 2.0 * 730) < 1e-9);
  CHECK(fabs(json_real_value(json_object_get(m, "requests")) - 100.0 * 3600 * 730) < 1e-3);
  json_decref(rank);
  json_decref(excl);
  json_decref(c);
}

TEST(a_requirement_nothing_meets_leaves_an_empty_ranking_with_reasons) {
  json_t *c = configs(), *rank, *excl;
  json_t *refused = json_pack("[{s:s,s:i,s:s}]", "hardware", "nopeak", "gpu_count", 1, "reason",
                              "no published FP16 peak");
  struct mx_requirements req = {.max_latency_ms = 1, .min_qps = NAN, .budget = NAN};
  CHECK(mx_rank_configurations(c, refused, &req, MX_RANK_COST, &rank, &excl) == 0);
  CHECK_EQ_INT(json_array_size(rank), 0);
  CHECK_EQ_INT(json_array_size(excl), 6);
  CHECK(has_code(excl, "nopeak", "NOT_SIMULABLE"));
  CHECK(has_code(excl, "fast", "TOO_SLOW"));
  json_decref(rank);
  json_decref(excl);
  json_decref(refused);
  json_decref(c);
}

TEST(tighter_latency_never_adds_options_and_rank_by_orders) {
  json_t *c = configs();
  size_t prev = 99;
  for (double lat = 100; lat >= 1; lat /= 2) {
    json_t *rank, *excl;
    struct mx_requirements req = {.max_latency_ms = lat, .min_qps = NAN, .budget = NAN};
    CHECK(mx_rank_configurations(c, NULL, &req, MX_RANK_LATENCY, &rank, &excl) == 0);
    CHECK(json_array_size(rank) <= prev);
    prev = json_array_size(rank);
    for (size_t i = 1; i < json_array_size(rank); i++)
      CHECK(json_real_value(json_object_get(json_object_get(json_array_get(rank, i - 1),
                                                            "performance_metrics"),
                                            "latency_ms")) <=
            json_real_value(json_object_get(
                json_object_get(json_array_get(rank, i), "performance_metrics"), "latency_ms")));
    json_decref(rank);
    json_decref(excl);
  }
  CHECK_EQ_INT(prev, 0);
  enum mx_rank_by by;
  CHECK(mx_rank_by_parse("Carbon", &by) == 0 && by == MX_RANK_CARBON);
  CHECK(mx_rank_by_parse("speed", &by) == -1);
  json_decref(c);
}

TEST(vm_labels_follow_the_hpa_rule) {
  enum mx_action a;
  int want;
  double ratio;
  const char *driver;
  /* 96 % CPU on 2 VMs against 80 %: ceil(2 × 1.2) = 3 */
  struct mx_usage hot = {.gpu_util = NAN, .gpu_mem = NAN, .cpu_util = 96, .cpu_mem = 40};
  CHECK(mx_vm_decide(&hot, 2, &a, &want, &ratio, &driver) == 0);
  CHECK(a == MX_SCALE_OUT && want == 3 && !strcmp(driver, "cpu_utilization"));
  /* 30 % of everything on 4 VMs: ceil(4 × 0.375) = 2 */
  struct mx_usage cold = {.gpu_util = 30, .gpu_mem = 20, .cpu_util = 25, .cpu_mem = 30};
  CHECK(mx_vm_decide(&cold, 4, &a, &want, &ratio, &driver) == 0);
  CHECK(a == MX_SCALE_IN && want == 2);
  /* within the 10 % tolerance of the target: unchanged */
  struct mx_usage ok = {.gpu_util = 85, .gpu_mem = NAN, .cpu_util = 50, .cpu_mem = NAN};
  CHECK(mx_vm_decide(&ok, 3, &a, &want, &ratio, &driver) == 0);
  CHECK(a == MX_MAINTAIN && want == 3);
  /* one VM never scales in below one */
  CHECK(mx_vm_decide(&cold, 1, &a, &want, &ratio, &driver) == 0);
  CHECK(a == MX_MAINTAIN && want == 1);
  struct mx_usage none = {NAN, NAN, NAN, NAN};
  CHECK(mx_vm_decide(&none, 1, &a, &want, &ratio, &driver) == -1);
}

/* current: a 24 GB GPU at 0.8 USD/h; a faster 80 GB one at 4; a slower,
 * cheaper 16 GB one at 0.5; an unpriced fast one */
static void gpus(struct mx_gpu_option o[4]) {
  static const struct mx_hw h[4] = {{.name = "cur"}, {.name = "big"}, {.name = "small"},
                                    {.name = "free"}};
  o[0] = (struct mx_gpu_option){&h[0], 1.0, 24, 0.8, 1, 1, 0, 0};
  o[1] = (struct mx_gpu_option){&h[1], 6.0, 80, 4.0, 1, 1, 0, 0};
  o[2] = (struct mx_gpu_option){&h[2], 0.9, 16, 0.5, 1, 1, 0, 0};
  o[3] = (struct mx_gpu_option){&h[3], 8.0, 192, NAN, 1, 1, 0, 0};
}

TEST(bare_metal_labels_upgrade_maintain_downgrade) {
  struct mx_gpu_option o[4];
  enum mx_action a;
  size_t pick;
  int short_of;
  /* saturated: the cheapest GPU that brings it under 80 % */
  struct mx_usage hot = {.gpu_util = 98, .gpu_mem = 95, .cpu_util = 40, .cpu_mem = 40};
  gpus(o);
  CHECK(mx_bm_decide(&hot, o, 4, 0, &a, &pick, &short_of) == 0);
  CHECK(a == MX_UPGRADE && pick == 1 && !short_of);
  CHECK(fabs(o[1].projected_gpu_util - 98 / 6.0) < 1e-9);
  CHECK(fabs(o[1].projected_gpu_mem - 95 * 24 / 80.0) < 1e-9);
  /* the seed's figures (75 % busy, 80 % memory): within the target */
  struct mx_usage seed = {.gpu_util = 75, .gpu_mem = 80, .cpu_util = 65, .cpu_mem = 70};
  gpus(o);
  CHECK(mx_bm_decide(&seed, o, 4, 0, &a, &pick, &short_of) == 0);
  CHECK(a == MX_MAINTAIN && pick == 0);
  /* idle: a cheaper GPU holds it under 80 % */
  struct mx_usage idle = {.gpu_util = 20, .gpu_mem = 30, .cpu_util = 10, .cpu_mem = 20};
  gpus(o);
  CHECK(mx_bm_decide(&idle, o, 4, 0, &a, &pick, &short_of) == 0);
  CHECK(a == MX_DOWNGRADE && pick == 2);
  /* the caller's latency ceiling rules the slower GPU out */
  gpus(o);
  o[2].allowed = 0;
  CHECK(mx_bm_decide(&idle, o, 4, 0, &a, &pick, &short_of) == 0);
  CHECK(a == MX_MAINTAIN && pick == 0);
  /* CPU-bound: a GPU will not help */
  struct mx_usage cpu = {.gpu_util = 40, .gpu_mem = 60, .cpu_util = 99, .cpu_mem = 50};
  gpus(o);
  CHECK(mx_bm_decide(&cpu, o, 4, 0, &a, &pick, &short_of) == 0);
  CHECK(a == MX_MAINTAIN);
  /* nothing is enough: the fastest that fits, flagged */
  struct mx_usage melt = {.gpu_util = 100, .gpu_mem = 50, .cpu_util = NAN, .cpu_mem = NAN};
  gpus(o);
  o[1].speed = o[3].speed = 1.1;
  o[3].speed = 1.2;
  CHECK(mx_bm_decide(&melt, o, 4, 0, &a, &pick, &short_of) == 0);
  CHECK(a == MX_UPGRADE && pick == 3 && short_of);
  struct mx_usage none = {NAN, NAN, 50, 50};
  CHECK(mx_bm_decide(&none, o, 4, 0, &a, &pick, &short_of) == -1);
}

TEST(optimisation_picks_precision_and_method) {
  enum mx_opt_precision p;
  enum mx_method m;
  int change;
  /* FP32 FP16 INT8 INT4: every one meets, cheaper as it shrinks */
  struct mx_opt_eval all[MX_OPT_N] = {{1, 1, 1, 4}, {1, 1, 1, 2}, {1, 1, 1, 1.2}, {1, 1, 1, 1}};
  CHECK(mx_opt_decide(all, MX_OPT_FP32, MX_TOL_MODERATE, 0, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_INT8 && m == MX_QUANTIZATION && change);
  CHECK(mx_opt_decide(all, MX_OPT_FP32, MX_TOL_RELAXED, 0, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_INT4 && m == MX_QUANTIZATION);
  CHECK(mx_opt_decide(all, MX_OPT_FP32, MX_TOL_STRICT, 0, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_FP16 && m == MX_QUANTIZATION);
  /* already at the best precision allowed: pruning where 2:4 sparsity helps */
  CHECK(mx_opt_decide(all, MX_OPT_FP16, MX_TOL_STRICT, 1, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_FP16 && m == MX_PRUNING && change);
  CHECK(mx_opt_decide(all, MX_OPT_FP16, MX_TOL_STRICT, 0, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_FP16 && m == MX_QUANTIZATION && !change);
  /* nothing meets: distillation, at the least precise allowed */
  struct mx_opt_eval none[MX_OPT_N] = {{1, 0, 0, 4}, {1, 0, 0, 2}, {1, 1, 0, 1}, {1, 1, 0, 0.8}};
  CHECK(mx_opt_decide(none, MX_OPT_FP16, MX_TOL_MODERATE, 1, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_INT8 && m == MX_DISTILLATION);
  /* a GPU without INT8 units skips INT8 */
  struct mx_opt_eval no8[MX_OPT_N] = {{1, 1, 1, 4}, {1, 1, 1, 2}, {0, 0, 0, NAN}, {1, 1, 1, 1}};
  CHECK(mx_opt_decide(no8, MX_OPT_FP32, MX_TOL_MODERATE, 0, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_FP16);
  /* no accuracy to give up: FP32, from a 16-bit deployment too */
  CHECK(mx_opt_decide(all, MX_OPT_FP16, MX_TOL_NONE, 0, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_FP32 && m == MX_QUANTIZATION && change);
  CHECK(mx_opt_decide(none, MX_OPT_FP32, MX_TOL_NONE, 0, &p, &m, &change) == 0);
  CHECK(p == MX_OPT_FP32 && m == MX_DISTILLATION);
  struct mx_opt_eval nothing[MX_OPT_N] = {{0}, {0}, {0}, {0}};
  CHECK(mx_opt_decide(nothing, MX_OPT_FP16, MX_TOL_RELAXED, 0, &p, &m, &change) == -1);
}

static const struct test tests[] = {
  T(ranking_keeps_what_meets_every_requirement_priced_first_then_cheapest),
  T(a_requirement_nothing_meets_leaves_an_empty_ranking_with_reasons),
  T(tighter_latency_never_adds_options_and_rank_by_orders),
  T(vm_labels_follow_the_hpa_rule),
  T(bare_metal_labels_upgrade_maintain_downgrade),
  T(optimisation_picks_precision_and_method),
};
TEST_MAIN(tests)
