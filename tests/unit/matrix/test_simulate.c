/* test_simulate.c — matrix's analytical model: hand-computed cases,
 * monotonicity, refusals. */
#include <math.h>

#include "../test.h"
#include "apps/matrix/catalog.h"
#include "apps/matrix/simulate.h"
#include "core/error.h"

#define DATA GROVE_SOURCE_DIR "/src/apps/matrix/data"

static struct mx_catalog *cat(void) {
  char err[256];
  struct mx_catalog *c = NULL;
  if (mx_catalog_load(&c, DATA, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    abort();
  }
  return c;
}

static int near(double a, double b, double rel) { return fabs(a - b) <= rel * fabs(b); }

/* A made-up GPU with round figures for hand computation. */
static struct mx_hw round_gpu(void) {
  struct mx_hw h = {.name = "round", .kind = "gpu", .family = "test"};
  h.memory_gb = 80;
  h.memory_bw_gbs = 1000;
  h.fp32_tflops = 100;
  h.fp16_tflops = h.bf16_tflops = 1000;
  h.fp8_tflops = h.int8_tops = 2000;
  strcpy(h.link, "nvlink");
  h.link_gbs = 600;
  h.pcie_gbs = 64;
  h.tdp_w = 500;
  h.idle_w = NAN;
  return h;
}

static struct mx_factors ideal(void) {
  struct mx_factors f;
  mx_factors_ideal(&f);
  return f;
}

TEST(decode_step_of_7b_at_batch_1_reads_the_weights_once) {
  struct mx_catalog *c = cat();
  struct mx_hw h = round_gpu();
  struct mx_factors f = ideal();
  struct mx_infer_in in = {.model = mx_catalog_model(c, "Llama-2-7B"), .hw = &h, .tp = 1, .pp = 1,
                           .batch = 1, .input_len = 1, .output_len = 2,
                           .precision = MX_FP16, .kv_precision = MX_FP16};
  struct mx_infer_out o;
  CHECK(mx_simulate_inference(&in, &f, &o, NULL, 0) == 0);
  /* one decode step at context 2: 6.74e9 weights × 2 bytes + 2 tokens of
   * KV (2·32 layers·32 heads·128·2 bytes = 524,288 bytes) over 1 TB/s */
  double bytes = 6.74e9 * 2 + 2 * 524288.0;
  CHECK(near(o.tpot_s, bytes / 1e12, 1e-9));
  CHECK(!strcmp(o.decode_bound, "memory"));
  /* the prefill of one token: the same weights, also memory-bound, then
   * its attention (2·32 layers·4096·1², compute) */
  CHECK(near(o.ttft_s, 6.74e9 * 2 / 1e12 + 2.0 * 32 * 4096 / 1e15, 1e-9));
  CHECK(near(o.e2e_s, o.ttft_s + o.tpot_s, 1e-12));
  CHECK(o.fits);
  mx_catalog_free(c);
}

TEST(prefill_is_compute_bound_and_counts_attention) {
  struct mx_catalog *c = cat();
  struct mx_hw h = round_gpu();
  struct mx_factors f = ideal();
  const struct mx_model *m = mx_catalog_model(c, "Llama-2-7B");
  struct mx_infer_in in = {.model = m, .hw = &h, .tp = 1, .pp = 1, .batch = 4, .input_len = 2048,
                           .output_len = 1, .precision = MX_FP16, .kv_precision = MX_FP16};
  struct mx_infer_out o;
  CHECK(mx_simulate_inference(&in, &f, &o, NULL, 0) == 0);
  double flops = 4 * (2 * 6.74e9 * 2048 + 2.0 * 32 * 4096 * 2048.0 * 2048);
  CHECK(near(o.prefill_flops, flops, 1e-9));
  CHECK(near(o.ttft_s, flops / 1e15, 1e-9));
  CHECK(!strcmp(o.prefill_bound, "compute"));
  mx_catalog_free(c);
}

TEST(tensor_parallel_all_reduce_is_two_per_layer_over_half_the_link) {
  struct mx_catalog *c = cat();
  struct mx_hw h = round_gpu();
  struct mx_factors f = ideal();
  struct mx_infer_in in = {.model = mx_catalog_model(c, "Llama-2-7B"), .hw = &h, .tp = 2, .pp = 1,
                           .batch = 1, .input_len = 1000, .output_len = 1,
                           .precision = MX_FP16, .kv_precision = MX_FP16};
  struct mx_infer_out o;
  CHECK(mx_simulate_inference(&in, &f, &o, NULL, 0) == 0);
  /* message 1000 tokens × 4096 × 2 bytes; ring factor 2·(2−1)/2 = 1;
   * one direction of 600 GB/s; 2 all-reduces × 32 layers */
  double msg = 1000 * 4096 * 2.0;
  CHECK(near(o.comm_s, 2 * 32 * msg / 300e9, 1e-9));
  mx_catalog_free(c);
}

TEST(training_time_is_6nd_plus_attention_over_achieved_flops) {
  struct mx_catalog *c = cat();
  struct mx_hw h = round_gpu();
  struct mx_factors f = ideal();
  struct mx_train_in in = {.model = mx_catalog_model(c, "Llama-2-7B"), .hw = &h, .gpus = 8,
                           .tp = 1, .pp = 1, .precision = MX_BF16, .seq_len = 2048,
                           .micro_batch = 1, .global_batch = 8, .tokens = 1e12, .zero_stage = 3,
                           .flash_attention = 1};
  struct mx_train_out o;
  CHECK(mx_simulate_training(&in, &f, &o, NULL, 0) == 0);
  double fpt = 6 * 6.74e9 + 12.0 * 32 * 4096 * 2048;
  CHECK(near(o.model_flops_per_token, fpt, 1e-12));
  CHECK(near(o.time_s, 1e12 * fpt / (8 * 1e15), 1e-9));
  CHECK(near(o.mfu, 1, 1e-9));
  /* full recomputation: one more forward pass */
  in.recompute = MX_RECOMPUTE_FULL;
  CHECK(mx_simulate_training(&in, &f, &o, NULL, 0) == 0);
  CHECK(near(o.time_s, 1e12 * fpt * 4 / 3 / (8 * 1e15), 1e-9));
  mx_catalog_free(c);
}

TEST(zero_stages_shard_states_then_gradients_then_weights) {
  struct mx_catalog *c = cat();
  struct mx_hw h = round_gpu();
  struct mx_factors f = ideal();
  struct mx_train_in in = {.model = mx_catalog_model(c, "Llama-2-7B"), .hw = &h, .gpus = 8,
                           .tp = 1, .pp = 1, .precision = MX_BF16, .seq_len = 2048,
                           .micro_batch = 1, .global_batch = 8, .tokens = 1e9,
                           .flash_attention = 1};
  double psi = 6.74e9 / 1e9; /* GB per byte per parameter */
  double want[4][3] = {{2, 2, 12}, {2, 2, 1.5}, {2, 0.25, 1.5}, {0.25, 0.25, 1.5}};
  double prev = INFINITY;
  for (int z = 0; z < 4; z++) {
    struct mx_train_out o;
    in.zero_stage = z;
    CHECK(mx_simulate_training(&in, &f, &o, NULL, 0) == 0);
    CHECK(near(o.mem_weights_gb, want[z][0] * psi, 1e-12));
    CHECK(near(o.mem_gradients_gb, want[z][1] * psi, 1e-12));
    CHECK(near(o.mem_optimizer_gb, want[z][2] * psi, 1e-12));
    /* activations (Korthikanti et al.): 32 layers × s·b·h·34 bytes */
    CHECK(near(o.mem_activations_gb, 32 * 2048 * 4096 * 34.0 / 1e9, 1e-12));
    CHECK(o.mem_per_gpu_gb < prev);
    prev = o.mem_per_gpu_gb;
  }
  mx_catalog_free(c);
}

TEST(more_gpus_never_need_more_memory_per_gpu) {
  struct mx_catalog *c = cat();
  struct mx_factors f = ideal();
  const struct mx_hw *h = mx_catalog_hw(c, "H100-SXM5-80GB");
  double prev = INFINITY;
  for (int tp = 1; tp <= 8; tp *= 2) {
    struct mx_infer_in in = {.model = mx_catalog_model(c, "Llama-2-70B"), .hw = h, .tp = tp,
                             .pp = 1, .batch = 16, .input_len = 1024, .output_len = 256,
                             .precision = MX_FP16, .kv_precision = MX_FP16};
    struct mx_infer_out o;
    CHECK(mx_simulate_inference(&in, &f, &o, NULL, 0) == 0);
    CHECK(o.mem_per_gpu_gb <= prev);
    prev = o.mem_per_gpu_gb;
  }
  prev = INFINITY;
  for (int pp = 1; pp <= 8; pp *= 2) {
    struct mx_train_in in = {.model = mx_catalog_model(c, "Llama-2-70B"), .hw = h, .gpus = 64,
                             .tp = 2, .pp = pp, .precision = MX_BF16, .seq_len = 4096,
                             .micro_batch = 1, .global_batch = 512, .tokens = 1e9,
                             .zero_stage = 1, .flash_attention = 1};
    struct mx_train_out o;
    CHECK(mx_simulate_training(&in, &f, &o, NULL, 0) == 0);
    CHECK(o.mem_per_gpu_gb <= prev);
    prev = o.mem_per_gpu_gb;
  }
  mx_catalog_free(c);
}

TEST(longer_outputs_never_take_less_time) {
  struct mx_catalog *c = cat();
  struct mx_factors f = ideal();
  f.prefill_eff = 0.6;
  f.decode_bw_eff = 0.8;
  f.overhead_s = 0.002;
  struct mx_infer_in in = {.model = mx_catalog_model(c, "Mixtral-8x7B"),
                           .hw = mx_catalog_hw(c, "A100-80GB"), .tp = 2, .pp = 1, .batch = 8,
                           .input_len = 512, .precision = MX_FP16, .kv_precision = MX_FP16};
  double prev = 0;
  for (int out_len = 1; out_len <= 4096; out_len = out_len * 3 / 2 + 1) {
    struct mx_infer_out o;
    in.output_len = out_len;
    CHECK(mx_simulate_inference(&in, &f, &o, NULL, 0) == 0);
    CHECK(o.e2e_s >= prev);
    prev = o.e2e_s;
  }
  mx_catalog_free(c);
}

TEST(more_bandwidth_or_flops_is_never_slower) {
  struct mx_catalog *c = cat();
  struct mx_factors f = ideal();
  struct mx_hw h = round_gpu();
  struct mx_infer_in in = {.model = mx_catalog_model(c, "Llama-3.1-8B"), .hw = &h, .tp = 1,
                           .pp = 1, .batch = 32, .input_len = 1024, .output_len = 256,
                           .precision = MX_BF16, .kv_precision = MX_BF16};
  struct mx_infer_out a, b;
  CHECK(mx_simulate_inference(&in, &f, &a, NULL, 0) == 0);
  h.memory_bw_gbs *= 2;
  CHECK(mx_simulate_inference(&in, &f, &b, NULL, 0) == 0);
  CHECK(b.tpot_s <= a.tpot_s);
  h = round_gpu();
  h.bf16_tflops *= 2;
  CHECK(mx_simulate_inference(&in, &f, &b, NULL, 0) == 0);
  CHECK(b.ttft_s <= a.ttft_s);
  mx_catalog_free(c);
}

TEST(tensor_parallelism_over_pcie_is_slower_than_over_nvlink) {
  struct mx_catalog *c = cat();
  struct mx_factors f = ideal();
  struct mx_hw nv = *mx_catalog_hw(c, "H100-SXM"), pcie = nv;
  pcie.link_gbs = NAN; /* PCIe only */
  struct mx_infer_in in = {.model = mx_catalog_model(c, "Llama-2-70B"), .hw = &nv, .tp = 8,
                           .pp = 1, .batch = 8, .input_len = 2048, .output_len = 128,
                           .precision = MX_FP16, .kv_precision = MX_FP16};
  struct mx_infer_out a, b;
  CHECK(mx_simulate_inference(&in, &f, &a, NULL, 0) == 0);
  in.hw = &pcie;
  CHECK(mx_simulate_inference(&in, &f, &b, NULL, 0) == 0);
  CHECK(b.comm_s > a.comm_s * 5);
  CHECK(b.e2e_s > a.e2e_s);
  mx_catalog_free(c);
}

TEST(a_model_that_does_not_fit_says_so) {
  struct mx_catalog *c = cat();
  struct mx_factors f = ideal();
  struct mx_infer_in in = {.model = mx_catalog_model(c, "Llama-3.1-405B"),
                           .hw = mx_catalog_hw(c, "L4"), .tp = 1, .pp = 1, .batch = 1,
                           .input_len = 128, .output_len = 128, .precision = MX_FP16,
                           .kv_precision = MX_FP16};
  struct mx_infer_out o;
  CHECK(mx_simulate_inference(&in, &f, &o, NULL, 0) == 0);
  CHECK(!o.fits);
  CHECK(o.mem_per_gpu_gb > 800);
  /* chosen from memory: the largest batch whose KV cache fits */
  in.model = mx_catalog_model(c, "Llama-3.1-8B");
  in.hw = mx_catalog_hw(c, "H100-SXM");
  in.batch = 0;
  in.precision = in.kv_precision = MX_FP8;
  CHECK(mx_simulate_inference(&in, &f, &o, NULL, 0) == 0);
  CHECK(o.batch == MX_AUTO_BATCH_MAX);
  in.input_len = in.output_len = 8192;
  CHECK(mx_simulate_inference(&in, &f, &o, NULL, 0) == 0);
  CHECK(o.batch > 1 && o.batch < MX_AUTO_BATCH_MAX && o.fits);
  mx_catalog_free(c);
}

TEST(bad_inputs_are_refused) {
  struct mx_catalog *c = cat();
  struct mx_factors f = ideal();
  char err[256];
  struct mx_infer_out o;
  const struct mx_infer_in ok = {.model = mx_catalog_model(c, "Llama-2-7B"),
                                 .hw = mx_catalog_hw(c, "A100-80GB"), .tp = 1, .pp = 1,
                                 .batch = 1, .input_len = 128, .output_len = 128,
                                 .precision = MX_FP16, .kv_precision = MX_FP16};
  struct mx_infer_in in = ok;
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == 0);
  in.tp = 3; /* 32 heads */
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "does not divide"));
  in = ok;
  in.batch = -1;
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == GROVE_EINVAL);
  in = ok;
  in.input_len = 0;
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == GROVE_EINVAL);
  in = ok;
  in.input_len = 4000; /* 4,096-token context */
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "context"));
  in = ok;
  in.precision = MX_FP8; /* Ampere publishes no FP8 peak */
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == GROVE_ERANGE);
  in = ok;
  in.hw = mx_catalog_hw(c, "A10G"); /* no published peak at all */
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == GROVE_ERANGE);
  in = ok;
  in.hw = mx_catalog_hw(c, "EPYC-9654");
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == GROVE_ERANGE);
  in = ok;
  in.model = NULL;
  CHECK(mx_simulate_inference(&in, &f, &o, err, sizeof err) == GROVE_EINVAL);

  struct mx_train_in t = {.model = mx_catalog_model(c, "Llama-2-7B"),
                          .hw = mx_catalog_hw(c, "A100-80GB"), .gpus = 8, .tp = 1, .pp = 1,
                          .precision = MX_BF16, .seq_len = 2048, .micro_batch = 1,
                          .global_batch = 8, .tokens = 1e9};
  struct mx_train_out to;
  CHECK(mx_simulate_training(&t, &f, &to, err, sizeof err) == 0);
  t.zero_stage = 4;
  CHECK(mx_simulate_training(&t, &f, &to, err, sizeof err) == GROVE_EINVAL);
  t.zero_stage = 0;
  t.global_batch = 12; /* not a multiple of 8 */
  CHECK(mx_simulate_training(&t, &f, &to, err, sizeof err) == GROVE_EINVAL);
  t.global_batch = 8;
  t.gpus = 6;
  t.tp = 4;
  CHECK(mx_simulate_training(&t, &f, &to, err, sizeof err) == GROVE_EINVAL);
  t.gpus = 8;
  t.tp = 1;
  t.tokens = 0;
  CHECK(mx_simulate_training(&t, &f, &to, err, sizeof err) == GROVE_EINVAL);
  t.tokens = 1e9;
  t.precision = MX_INT4;
  CHECK(mx_simulate_training(&t, &f, &to, err, sizeof err) == GROVE_EINVAL);
  mx_catalog_free(c);
}

TEST(precisions_parse_as_the_calibration_writes_them) {
  enum mx_precision p;
  CHECK(mx_precision_parse("FP8 (weights+KV)", &p) == 0 && p == MX_FP8);
  CHECK(mx_precision_parse("BF16 (amp_bf16)", &p) == 0 && p == MX_BF16);
  CHECK(mx_precision_parse("amp_fp8", &p) == 0 && p == MX_FP8);
  CHECK(mx_precision_parse("int4", &p) == 0 && p == MX_INT4);
  CHECK(mx_precision_parse("FP64", &p) == GROVE_EINVAL);
  CHECK(mx_precision_parse("", &p) == GROVE_EINVAL);
  CHECK(mx_precision_parse("quarter", &p) == GROVE_EINVAL);
  CHECK(mx_precision_bytes(MX_INT4) == 0.5);
}

TEST(energy_follows_power_pue_and_the_region) {
  struct mx_catalog *c = cat();
  const struct mx_hw *h = mx_catalog_hw(c, "H100-SXM");
  const struct mx_region *r = mx_catalog_region(c, "aws", "us-east-1");
  const struct mx_instance *i = mx_catalog_instance(c, "H100-SXM", "aws", "us-east-1");
  CHECK(r && i && i->gpu_count == 8);
  struct mx_rate rt;
  mx_rate(h, 16, 0.5, r, i, &rt);
  /* no published idle figure: TDP while busy */
  CHECK(near(rt.gpu_power_w, 700, 1e-12));
  CHECK(near(rt.facility_kw, 16 * 0.7 * r->pue, 1e-12));
  CHECK(rt.instances == 2 && near(rt.usd_per_hour, 2 * i->usd_per_hour, 1e-12));
  CHECK(near(rt.gco2_per_hour, rt.facility_kw * r->carbon_g_per_kwh, 1e-12));
  struct mx_hw idle = *h;
  idle.idle_w = 100;
  mx_rate(&idle, 1, 0.5, r, NULL, &rt);
  CHECK(near(rt.gpu_power_w, 400, 1e-12));
  CHECK(near(rt.usd_per_hour, 0.4 * r->pue * r->electricity_usd_per_kwh, 1e-12));
  mx_catalog_free(c);
}

static const struct test tests[] = {
  T(decode_step_of_7b_at_batch_1_reads_the_weights_once),
  T(prefill_is_compute_bound_and_counts_attention),
  T(tensor_parallel_all_reduce_is_two_per_layer_over_half_the_link),
  T(training_time_is_6nd_plus_attention_over_achieved_flops),
  T(zero_stages_shard_states_then_gradients_then_weights),
  T(more_gpus_never_need_more_memory_per_gpu),
  T(longer_outputs_never_take_less_time),
  T(more_bandwidth_or_flops_is_never_slower),
  T(tensor_parallelism_over_pcie_is_slower_than_over_nvlink),
  T(a_model_that_does_not_fit_says_so),
  T(bad_inputs_are_refused),
  T(precisions_parse_as_the_calibration_writes_them),
  T(energy_follows_power_pue_and_the_region),
};
TEST_MAIN(tests)
