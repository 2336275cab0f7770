/* simulate.h — matrix's analytical performance model of LLM inference and
 * training on catalogue hardware (catalog.h). No learned black box: every
 * figure comes from a formula below, scaled by a handful of efficiency
 * factors fitted on published measurements (calibrate.h).
 *
 * Inference (Pope et al. 2022, "Efficiently Scaling Transformer
 * Inference"; the roofline of Williams et al. 2009):
 *   prefill  FLOPs = B·(2·N_active·S_in + c_att·L·d_att·S_in²)   c_att = 2 causal, 4 encoder
 *            (Kaplan et al. 2020: 2N per token plus 2·L·n_ctx·d_att)
 *            time  = max(FLOPs / (tp·peak·e_prefill), W_read / (tp·BW·e_bw))
 *                    + TP all-reduces + PP transfers + overhead
 *   decode   per step at context c: FLOPs = B·(2·N_active + 4·L·d_att·c)
 *            bytes = W_read + B·c·KV_token    (KV_token = 2·L·kv_heads·head_dim·bytes_kv)
 *            time  = max(FLOPs / (tp·peak·e), bytes / (tp·BW·e_bw)) + comm + overhead
 *            integrated over the output in MX_DECODE_SEGMENTS pieces.
 *   TP       Megatron-LM layout (Shoeybi et al. 2019): two all-reduces per layer
 *            per forward, each a ring all-reduce of M = B·tokens·hidden·bytes_act:
 *            2·(tp−1)/tp · M / (link_bw/2 · e_comm) + t_latency  (Patarasuk & Yuan 2009;
 *            the α–β cost model of Thakur et al. 2005)
 *   PP       layers split over pp stages: latency is the sum of the stages plus
 *            (pp−1) activation transfers; pp batches in flight multiply throughput.
 *   MoE      FLOPs use the active parameters; a step reads the shared weights and
 *            the expected share of experts touched by its tokens, 1−(1−k/E)^tokens.
 *   memory   weights/(tp·pp) + KV for B·(S_in+S_out) tokens + one chunk's activations
 *            (≤ MX_PREFILL_CHUNK tokens) + last-token logits.
 *
 * Training (Kaplan et al. 2020, 6·N·D; Narayanan et al. 2021 for attention
 * FLOPs 12·L·d·S per token and the pipeline bubble (pp−1)/m; llm-foundry's
 * MFU convention):
 *   FLOPs/token = 6·N + 12·L·d_att·S; full recomputation adds a forward pass (×4/3),
 *   selective recomputation adds the attention forward (4·L·d_att·S).
 *   time = D · FLOPs/token / (GPUs · peak · e_train) · (1 + (pp−1)/m) + TP all-reduces
 *   memory (Rajbhandari et al. 2020, ZeRO): Ψ = N/(tp·pp) per GPU;
 *     2Ψ weights + 2Ψ gradients + 12Ψ Adam states (fp32 copy, m, v),
 *     stage 1 shards the states, stage 2 also the gradients, stage 3 also the
 *     weights, over the data-parallel degree;
 *   activations (Korthikanti et al. 2022, 16-bit, TP with sequence parallelism):
 *     per layer s·b·h·(34 + 5·a·s/h)/t; FlashAttention (Dao et al. 2022) or
 *     selective recomputation drop the 5·a·s/h score term; full recomputation
 *     keeps 2·s·b·h/t per layer plus one layer's working set. The first pipeline
 *     stage holds pp micro-batches of L/pp layers: L layers' worth.
 *
 * Energy: each GPU draws idle + (TDP − idle)·u, u the achieved fraction of the
 * binding peak; where the catalogue has no idle figure the GPU draws its TDP
 * while busy (an upper bound). Facility energy = IT energy × PUE.
 *
 * All functions are pure: any thread, no allocation. Errors are GROVE_EINVAL
 * (bad or inconsistent input) or GROVE_ERANGE (hardware without the figure
 * the case needs, e.g. no FP8 peak), with a message in err. */
#ifndef GROVE_MATRIX_SIMULATE_H
#define GROVE_MATRIX_SIMULATE_H

#include "apps/matrix/catalog.h"

#include <stddef.h>

/* Fraction of the memory left after weights that holds the KV cache when
 * the batch is chosen from memory (TensorRT-LLM's KvCacheConfig
 * free_gpu_memory_fraction and vLLM's gpu_memory_utilization: 0.9). */
#define MX_KV_FREE_FRACTION 0.9
/* Largest batch chosen from memory (trtllm-build's default max_batch_size). */
#define MX_AUTO_BATCH_MAX 2048
/* Prefill chunk that bounds activation memory (trtllm-build's default
 * max_num_tokens). */
#define MX_PREFILL_CHUNK 8192
#define MX_DECODE_SEGMENTS 8
/* Input limits: larger values are refused. */
#define MX_BATCH_MAX 1000000
#define MX_LEN_MAX 10000000
#define MX_GPUS_MAX 100000

enum mx_precision { MX_FP32, MX_FP16, MX_BF16, MX_FP8, MX_INT8, MX_INT4, MX_PRECISION_N };

/* Parses "FP16", "bf16", "FP8 (weights+KV)", "INT4", "amp_bf16"... (the
 * first precision word wins). Returns 0 or GROVE_EINVAL. */
int mx_precision_parse(const char *s, enum mx_precision *out);
const char *mx_precision_name(enum mx_precision p);
/* Bytes per weight (FP32 4, FP16/BF16 2, FP8/INT8 1, INT4 0.5). */
double mx_precision_bytes(enum mx_precision p);
/* The dense peak that precision runs at on hw, in FLOP/s (INT4 weights
 * are dequantised and run at the FP16 peak); NAN when unpublished. */
double mx_peak_flops(const struct mx_hw *hw, enum mx_precision p);

/* The fitted efficiency factors (calibrate.h fits them). */
struct mx_factors {
  double prefill_eff;      /* achieved fraction of the FP32/FP16/BF16 peak */
  double prefill_eff_8bit; /* achieved fraction of the FP8/INT8 peak */
  double decode_bw_eff;    /* achieved fraction of memory bandwidth */
  double comm_eff;         /* achieved fraction of one direction of the link */
  double comm_latency_s;   /* fixed seconds per all-reduce (launch, synchronisation) */
  double overhead_s;       /* fixed seconds per forward pass (launch, sampling) */
  double train_eff;        /* hardware FLOPs utilisation in training */
  double train_hopper;     /* multiplier on train_eff on Hopper GPUs */
  double train_8bit;       /* multiplier on train_eff for FP8 training */
  /* Uncertainty: RMS of the leave-one-out log residuals; the band is
   * [x·e^−σ, x·e^σ] (about 68 % of the held-out measurements). */
  double sigma_inference, sigma_training;
};

/* Factors of 1 and no overhead: the pure roofline (used by tests and as
 * the fit's start). */
void mx_factors_ideal(struct mx_factors *f);

struct mx_infer_in {
  const struct mx_model *model;
  const struct mx_hw *hw;
  int tp, pp;                   /* ≥ 1; the replica uses tp·pp GPUs */
  int batch;                    /* ≥ 1, or 0: the largest batch memory holds */
  int input_len, output_len;    /* tokens; encoders produce no output */
  enum mx_precision precision;  /* weights and arithmetic */
  enum mx_precision kv_precision;
};

struct mx_infer_out {
  int batch;                    /* the batch simulated */
  double ttft_s;                /* time to first token: the prefill */
  double tpot_s;                /* mean time per further output token */
  double e2e_s;                 /* one request, end to end */
  double tokens_per_s;          /* output tokens/s of the replica (input tokens for encoders) */
  double requests_per_s;        /* of the replica */
  double prefill_flops, decode_flops;       /* whole batch */
  const char *prefill_bound, *decode_bound; /* "compute" or "memory" */
  double comm_s;                /* interconnect time in e2e */
  double utilisation;           /* u of the energy model, 0..1 */
  double mem_weights_gb, mem_kv_gb, mem_activations_gb, mem_per_gpu_gb;
  double mem_available_gb;      /* the GPU's memory */
  int fits;                     /* mem_per_gpu_gb ≤ mem_available_gb */
};

/* Simulates one replica serving batches of in->batch requests. Returns 0,
 * GROVE_EINVAL or GROVE_ERANGE (see above); *out is filled on 0. A case
 * that does not fit in memory still returns 0 with fits = 0. */
int mx_simulate_inference(const struct mx_infer_in *in, const struct mx_factors *f,
                          struct mx_infer_out *out, char *err, size_t errlen);

enum mx_recompute { MX_RECOMPUTE_NONE, MX_RECOMPUTE_SELECTIVE, MX_RECOMPUTE_FULL };

struct mx_train_in {
  const struct mx_model *model;
  const struct mx_hw *hw;
  int gpus, tp, pp;             /* gpus a multiple of tp·pp; dp = gpus/(tp·pp) */
  enum mx_precision precision;  /* FP32, FP16, BF16 or FP8 */
  int seq_len;                  /* tokens per sequence */
  int micro_batch;              /* sequences per GPU per micro-step */
  int global_batch;             /* sequences per optimizer step: a multiple of micro_batch·dp */
  double tokens;                /* D: training tokens */
  int zero_stage;               /* 0..3 */
  enum mx_recompute recompute;
  int flash_attention;          /* attention scores not stored */
};

struct mx_train_out {
  double model_flops_per_token;    /* 6N + 12·L·d·S */
  double hw_flops_per_token;       /* with recomputation */
  double time_s;                   /* the whole run */
  double steps;                    /* optimizer steps */
  double tokens_per_s_per_gpu;
  double mfu;                      /* model FLOPs utilisation achieved */
  double bubble;                   /* pipeline bubble fraction (pp−1)/m */
  double comm_s;                   /* TP all-reduce time in time_s */
  double mem_weights_gb, mem_gradients_gb, mem_optimizer_gb, mem_activations_gb;
  double mem_per_gpu_gb, mem_available_gb;
  int fits;
  double utilisation;
};

int mx_simulate_training(const struct mx_train_in *in, const struct mx_factors *f,
                         struct mx_train_out *out, char *err, size_t errlen);

/* What running gpus of hw for an hour costs and emits in a region, at
 * utilisation u. With an instance, the price is its hourly price times the
 * instances needed (ceil(gpus / its GPU count)); without, the price is the
 * facility energy at the region's electricity price (hardware not
 * counted). Figures the catalogue lacks come out NAN. */
struct mx_rate {
  double gpu_power_w;            /* one GPU */
  double it_kw, facility_kw;     /* all GPUs; facility = IT × PUE (PUE 1 when unknown) */
  int pue_known;
  double usd_per_hour;           /* NAN when neither instance nor electricity price */
  int instances;                 /* 0 without instance */
  double energy_usd_per_hour;    /* facility energy at the electricity price */
  double gco2_per_hour;
};
void mx_rate(const struct mx_hw *hw, int gpus, double u, const struct mx_region *region,
             const struct mx_instance *instance, struct mx_rate *out);

#endif
