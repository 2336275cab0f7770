/* simulate.c — the analytical inference and training model (simulate.h
 * has the formulas and their sources). */
#include "apps/matrix/simulate.h"

#include "apps/matrix/tsv.h"
#include "core/error.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* Sets err and yields code. */
#define fail(err, errlen, code, ...) (mx_seterr(err, errlen, __VA_ARGS__), (code))

/* ---- precisions ----------------------------------------------------------- */

static const char *const prec_names[MX_PRECISION_N] = {"FP32", "FP16", "BF16", "FP8", "INT8",
                                                       "INT4"};

int mx_precision_parse(const char *s, enum mx_precision *out) {
  if (!s) return GROVE_EINVAL;
  /* the first word made of letters and digits that names a precision */
  for (const char *p = s; *p;) {
    while (*p && !isalnum((unsigned char)*p)) p++;
    const char *w = p;
    while (isalnum((unsigned char)*p)) p++;
    size_t n = (size_t)(p - w);
    if (n == 3 && !strncasecmp(w, "amp", 3)) continue; /* "amp_bf16": the next word */
    for (int i = 0; i < MX_PRECISION_N; i++)
      if (n == strlen(prec_names[i]) && !strncasecmp(w, prec_names[i], n)) {
        *out = (enum mx_precision)i;
        return 0;
      }
    if (n == 4 && !strncasecmp(w, "FP64", 4)) return GROVE_EINVAL;
    if (n) return GROVE_EINVAL;
  }
  return GROVE_EINVAL;
}

const char *mx_precision_name(enum mx_precision p) {
  return (unsigned)p < MX_PRECISION_N ? prec_names[p] : "?";
}

double mx_precision_bytes(enum mx_precision p) {
  switch (p) {
  case MX_FP32: return 4;
  case MX_FP16: case MX_BF16: return 2;
  case MX_FP8: case MX_INT8: return 1;
  case MX_INT4: return 0.5;
  default: return NAN;
  }
}

double mx_peak_flops(const struct mx_hw *hw, enum mx_precision p) {
  double t;
  switch (p) {
  case MX_FP32: t = hw->fp32_tflops; break;
  case MX_FP16: case MX_INT4: t = hw->fp16_tflops; break;
  case MX_BF16: t = hw->bf16_tflops; break;
  case MX_FP8: t = hw->fp8_tflops; break;
  case MX_INT8: t = hw->int8_tops; break;
  default: return NAN;
  }
  return t > 0 ? t * 1e12 : NAN;
}

static int is_8bit(enum mx_precision p) { return p == MX_FP8 || p == MX_INT8; }

/* Activations and all-reduce messages: FP32 stays FP32, the rest run in
 * 16-bit. */
static double act_bytes(enum mx_precision p) { return p == MX_FP32 ? 4 : 2; }

void mx_factors_ideal(struct mx_factors *f) {
  memset(f, 0, sizeof(*f));
  f->prefill_eff = f->prefill_eff_8bit = f->decode_bw_eff = f->comm_eff = 1;
  f->train_eff = f->train_hopper = f->train_8bit = 1;
}

/* One direction of the link tensor parallelism uses, bytes/s: NVLink or
 * Infinity Fabric when the GPU has it, else PCIe. */
static double link_bw(const struct mx_hw *hw) {
  double gbs = hw->link_gbs > 0 ? hw->link_gbs : hw->pcie_gbs;
  return gbs > 0 ? gbs / 2 * 1e9 : NAN;
}

/* Ring all-reduce of msg bytes over n GPUs. */
static double allreduce_s(double msg, int n, double bw, double eff, double latency) {
  if (n <= 1) return 0;
  return 2.0 * (n - 1) / n * msg / (bw * eff) + latency;
}

/* ---- inference ------------------------------------------------------------ */

struct shape {
  double n_active, n_total;      /* parameters */
  double n_shared, n_experts;    /* MoE: parameters outside / inside the experts */
  int experts, k;
  double d_att;                  /* heads·head_dim */
  double kv_token;               /* KV bytes per token, all layers, one TP shard */
  double w_bytes;                /* all weights */
  int encoder;
};

static void shape_of(const struct mx_infer_in *in, struct shape *s) {
  const struct mx_model *m = in->model;
  memset(s, 0, sizeof(*s));
  s->n_total = m->params_b * 1e9;
  s->n_active = m->active_params_b * 1e9;
  s->encoder = !strcmp(m->architecture, "encoder");
  if (m->experts > 1 && m->active_params_b < m->params_b) {
    /* active = shared + k·per_expert, total = shared + E·per_expert */
    double per = (s->n_total - s->n_active) / (m->experts - m->experts_per_token);
    s->n_experts = per * m->experts;
    s->n_shared = s->n_total - s->n_experts;
    s->experts = m->experts;
    s->k = m->experts_per_token;
  } else {
    s->n_shared = s->n_total;
  }
  s->d_att = (double)m->heads * m->head_dim;
  int kvh = (m->kv_heads + in->tp - 1) / in->tp; /* replicated when fewer heads than tp */
  s->kv_token = 2.0 * m->layers * kvh * m->head_dim * mx_precision_bytes(in->kv_precision);
  s->w_bytes = s->n_total * mx_precision_bytes(in->precision);
}

/* Weight bytes a forward pass over `tokens` tokens reads. */
static double weights_read(const struct shape *s, double tokens, enum mx_precision p) {
  double touched = 1;
  if (s->experts) touched = 1 - pow(1 - (double)s->k / s->experts, tokens);
  return (s->n_shared + s->n_experts * touched) * mx_precision_bytes(p);
}

struct env {
  const struct mx_infer_in *in;
  const struct mx_factors *f;
  struct shape s;
  double peak, eff_c, bw, link;
};

/* One forward pass of `tokens` new tokens for each of B sequences:
 * the linear layers (weights) and attention (flops_att over kv_read bytes
 * of KV cache) each take the longer of their compute and memory times,
 * one after the other (Pope et al. 2022 treat them apart: attention in
 * decode stays memory-bound at any batch). Returns seconds; adds FLOPs,
 * comm time and utilisation-weighted time. */
static double forward(const struct env *e, double B, double tokens, double flops_att,
                      double kv_read, double *flops, double *comm, double *u_time,
                      int *compute_bound) {
  const struct mx_infer_in *in = e->in;
  const struct mx_model *m = in->model;
  double c_rate = in->tp * e->peak * e->eff_c, m_rate = in->tp * e->bw * e->f->decode_bw_eff;
  double fl = B * (2 * e->s.n_active * tokens);
  double tc = fl / c_rate, tm = weights_read(&e->s, B * tokens, in->precision) / m_rate;
  double ta_c = flops_att / c_rate, ta_m = kv_read / m_rate;
  double t_lin = tc > tm ? tc : tm, t_att = ta_c > ta_m ? ta_c : ta_m;
  double msg = B * tokens * m->hidden * act_bytes(in->precision);
  double tcomm = 2.0 * m->layers *
                 allreduce_s(msg, in->tp, e->link, e->f->comm_eff, e->f->comm_latency_s);
  if (in->pp > 1) tcomm += (in->pp - 1) * msg / (e->link * e->f->comm_eff);
  *flops += fl + flops_att;
  *comm += tcomm;
  *u_time += t_lin * (tc > tm ? e->eff_c : e->f->decode_bw_eff) +
             t_att * (ta_c > ta_m ? e->eff_c : e->f->decode_bw_eff);
  *compute_bound = tc + ta_c >= tm + ta_m;
  return t_lin + t_att + tcomm + e->f->overhead_s;
}

/* What inference and training both need of the model, hardware and
 * layout (tp, pp ≥ 1 checked by the callers). */
static int check_layout(const struct mx_model *m, const struct mx_hw *hw, int tp, int pp,
                        char *err, size_t errlen) {
  if (m->heads % tp)
    return fail(err, errlen, GROVE_EINVAL,
                "tensor parallelism %d does not divide the %d attention heads of '%s'", tp,
                m->heads, m->name);
  if (pp > m->layers)
    return fail(err, errlen, GROVE_EINVAL, "pipeline parallelism %d exceeds the %d layers of '%s'",
                pp, m->layers, m->name);
  if (strcmp(hw->kind, "gpu"))
    return fail(err, errlen, GROVE_ERANGE, "'%s' is a CPU: the model covers GPUs", hw->name);
  return 0;
}

int mx_simulate_inference(const struct mx_infer_in *in, const struct mx_factors *f,
                          struct mx_infer_out *out, char *err, size_t errlen) {
  const struct mx_model *m = in->model;
  const struct mx_hw *hw = in->hw;
  if (!m || !hw) return fail(err, errlen, GROVE_EINVAL, "model and hardware are required");
  if (in->tp < 1 || in->pp < 1 || (long)in->tp * in->pp > MX_GPUS_MAX)
    return fail(err, errlen, GROVE_EINVAL, "tensor and pipeline parallelism must be 1..%d GPUs",
                MX_GPUS_MAX);
  int rc = check_layout(m, hw, in->tp, in->pp, err, errlen);
  if (rc) return rc;
  if (in->batch < 0 || in->batch > MX_BATCH_MAX)
    return fail(err, errlen, GROVE_EINVAL, "batch must be 1..%d (0: chosen from memory)",
                MX_BATCH_MAX);
  int encoder = !strcmp(m->architecture, "encoder");
  int out_len = encoder ? 0 : in->output_len;
  if (in->input_len < 1 || in->input_len > MX_LEN_MAX || out_len < 0 || out_len > MX_LEN_MAX ||
      (!encoder && out_len < 1))
    return fail(err, errlen, GROVE_EINVAL,
                "input_len must be 1..%d and output_len 1..%d (0 for encoders)", MX_LEN_MAX,
                MX_LEN_MAX);
  if ((long)in->input_len + out_len > m->max_context)
    return fail(err, errlen, GROVE_EINVAL,
                "input_len + output_len = %ld exceeds the %d-token context of '%s'",
                (long)in->input_len + out_len, m->max_context, m->name);
  if ((unsigned)in->precision >= MX_PRECISION_N || (unsigned)in->kv_precision >= MX_PRECISION_N ||
      in->kv_precision == MX_INT4)
    return fail(err, errlen, GROVE_EINVAL, "unknown precision");

  struct env e = {.in = in, .f = f};
  shape_of(in, &e.s);
  e.peak = mx_peak_flops(hw, in->precision);
  e.bw = hw->memory_bw_gbs * 1e9;
  e.link = link_bw(hw);
  e.eff_c = is_8bit(in->precision) ? f->prefill_eff_8bit : f->prefill_eff;
  if (!(e.peak > 0))
    return fail(err, errlen, GROVE_ERANGE, "'%s' has no published dense %s peak", hw->name,
                mx_precision_name(in->precision));
  if (!(e.bw > 0) || !(hw->memory_gb > 0))
    return fail(err, errlen, GROVE_ERANGE, "'%s' has no published memory size or bandwidth",
                hw->name);
  if (in->tp * in->pp > 1 && !(e.link > 0))
    return fail(err, errlen, GROVE_ERANGE, "'%s' has no published interconnect bandwidth",
                hw->name);
  if (!(f->prefill_eff > 0 && f->prefill_eff_8bit > 0 && f->decode_bw_eff > 0 && f->comm_eff > 0 &&
        f->overhead_s >= 0))
    return fail(err, errlen, GROVE_EINVAL, "efficiency factors must be positive");

  memset(out, 0, sizeof(*out));
  int gpus_rep = in->tp * in->pp;
  double S = in->input_len, O = out_len;
  double mem = hw->memory_gb * 1e9;
  double w_gpu = e.s.w_bytes / gpus_rep;
  /* one layer's live activations for a chunk: Q, K, V, output, and the MLP */
  double act_per_token = (4.0 * m->hidden + 2.0 * m->intermediate) / in->tp *
                         act_bytes(in->precision);
  double kv_seq_gpu = (S + O) * e.s.kv_token / in->pp;
  double logits_seq = (double)m->vocab * 4 / in->tp;

  int B = in->batch;
  if (!B) {
    double act = fmin(MX_PREFILL_CHUNK, S * MX_AUTO_BATCH_MAX) * act_per_token;
    double free_mem = MX_KV_FREE_FRACTION * (mem - w_gpu - act);
    double per_seq = kv_seq_gpu + logits_seq;
    double b = per_seq > 0 ? floor(free_mem / per_seq) : MX_AUTO_BATCH_MAX;
    B = b < 1 ? 1 : b > MX_AUTO_BATCH_MAX ? MX_AUTO_BATCH_MAX : (int)b;
  }
  out->batch = B;

  /* prefill */
  double u_time = 0, flops = 0, comm = 0;
  int bound;
  double c_att = encoder ? 4 : 2;
  double att = (double)B * c_att * m->layers * e.s.d_att * S * S;
  double ttft = forward(&e, B, S, att, 0, &flops, &comm, &u_time, &bound);
  out->prefill_flops = flops;
  out->prefill_bound = bound ? "compute" : "memory";

  /* decode: steps 1..O−1 at contexts S+1..S+O−1, in segments */
  double tdec = 0, dflops = 0;
  int dbound = 0, nsteps = out_len > 1 ? out_len - 1 : 0;
  for (int k = 0; k < MX_DECODE_SEGMENTS && nsteps; k++) {
    long a = (long)nsteps * k / MX_DECODE_SEGMENTS, b = (long)nsteps * (k + 1) / MX_DECODE_SEGMENTS;
    if (b <= a) continue;
    double ctx = S + (a + b + 1) / 2.0;
    double att_d = (double)B * 4 * m->layers * e.s.d_att * ctx;
    double kv = (double)B * ctx * e.s.kv_token;
    double fl = 0, c = 0, u = 0, n = (double)(b - a);
    double t = forward(&e, B, 1, att_d, kv, &fl, &c, &u, &bound);
    tdec += t * n;
    dflops += fl * n;
    comm += c * n;
    u_time += u * n;
    if (bound) dbound += (int)n;
  }
  out->decode_flops = dflops;
  out->decode_bound = !nsteps ? "none" : dbound * 2 >= nsteps ? "compute" : "memory";

  out->ttft_s = ttft;
  out->tpot_s = nsteps ? tdec / nsteps : 0;
  out->e2e_s = ttft + tdec;
  out->comm_s = comm;
  double tokens = encoder ? B * S : B * O;
  out->tokens_per_s = in->pp * tokens / out->e2e_s;
  out->requests_per_s = in->pp * B / out->e2e_s;
  out->utilisation = fmin(1, u_time / out->e2e_s);

  out->mem_weights_gb = w_gpu / 1e9;
  out->mem_kv_gb = B * kv_seq_gpu / 1e9;
  out->mem_activations_gb = (fmin((double)B * S, MX_PREFILL_CHUNK) * act_per_token +
                             B * logits_seq) / 1e9;
  out->mem_per_gpu_gb = out->mem_weights_gb + out->mem_kv_gb + out->mem_activations_gb;
  out->mem_available_gb = hw->memory_gb;
  out->fits = out->mem_per_gpu_gb <= hw->memory_gb;
  return 0;
}

/* ---- training ------------------------------------------------------------- */

int mx_simulate_training(const struct mx_train_in *in, const struct mx_factors *f,
                         struct mx_train_out *out, char *err, size_t errlen) {
  const struct mx_model *m = in->model;
  const struct mx_hw *hw = in->hw;
  if (!m || !hw) return fail(err, errlen, GROVE_EINVAL, "model and hardware are required");
  if (in->gpus < 1 || in->gpus > MX_GPUS_MAX || in->tp < 1 || in->pp < 1 ||
      in->gpus % (in->tp * in->pp))
    return fail(err, errlen, GROVE_EINVAL,
                "gpus must be 1..%d and a multiple of tensor × pipeline parallelism", MX_GPUS_MAX);
  int rc = check_layout(m, hw, in->tp, in->pp, err, errlen);
  if (rc) return rc;
  int dp = in->gpus / (in->tp * in->pp);
  /* training sets its own context: seq_len is not held to max_context */
  if (in->seq_len < 1 || in->seq_len > MX_LEN_MAX)
    return fail(err, errlen, GROVE_EINVAL, "seq_len must be 1..%d", MX_LEN_MAX);
  if (in->micro_batch < 1 || in->micro_batch > MX_BATCH_MAX || in->global_batch < 1 ||
      in->global_batch > MX_BATCH_MAX || in->global_batch % ((long)in->micro_batch * dp))
    return fail(err, errlen, GROVE_EINVAL,
                "global_batch must be a multiple of micro_batch × data parallelism (%d)", dp);
  if (!(in->tokens >= 1 && in->tokens <= 1e16))
    return fail(err, errlen, GROVE_EINVAL, "training tokens must be 1..1e16");
  if (in->zero_stage < 0 || in->zero_stage > 3)
    return fail(err, errlen, GROVE_EINVAL, "zero_stage must be 0..3");
  if (in->precision != MX_FP32 && in->precision != MX_FP16 && in->precision != MX_BF16 &&
      in->precision != MX_FP8)
    return fail(err, errlen, GROVE_EINVAL, "training precision must be FP32, FP16, BF16 or FP8");
  if ((unsigned)in->recompute > MX_RECOMPUTE_FULL)
    return fail(err, errlen, GROVE_EINVAL, "unknown recomputation");
  double peak = mx_peak_flops(hw, in->precision);
  if (!(peak > 0))
    return fail(err, errlen, GROVE_ERANGE, "'%s' has no published dense %s peak", hw->name,
                mx_precision_name(in->precision));
  if (!(hw->memory_gb > 0))
    return fail(err, errlen, GROVE_ERANGE, "'%s' has no published memory size", hw->name);
  double link = link_bw(hw);
  if (in->tp > 1 && !(link > 0))
    return fail(err, errlen, GROVE_ERANGE, "'%s' has no published interconnect bandwidth",
                hw->name);
  double eff = f->train_eff * (!strcmp(hw->family, "hopper") ? f->train_hopper : 1) *
               (in->precision == MX_FP8 ? f->train_8bit : 1);
  if (!(eff > 0)) return fail(err, errlen, GROVE_EINVAL, "efficiency factors must be positive");

  memset(out, 0, sizeof(*out));
  double N = m->active_params_b * 1e9, S = in->seq_len, L = m->layers;
  double d = (double)m->heads * m->head_dim, h = m->hidden;
  double att = 12 * L * d * S;
  out->model_flops_per_token = 6 * N + att;
  out->hw_flops_per_token = out->model_flops_per_token;
  if (in->recompute == MX_RECOMPUTE_FULL) out->hw_flops_per_token *= 4.0 / 3.0;
  else if (in->recompute == MX_RECOMPUTE_SELECTIVE) out->hw_flops_per_token += att / 3;

  double m_micro = (double)in->global_batch / ((double)in->micro_batch * dp);
  out->bubble = in->pp > 1 ? (in->pp - 1) / m_micro : 0;
  out->steps = in->tokens / ((double)in->global_batch * S);
  double compute = in->tokens * out->hw_flops_per_token / (in->gpus * peak * eff);
  /* TP: 2 all-reduces per layer forward, 2 backward, per micro-batch;
   * each GPU's share of the layers is L/pp */
  double msg = in->micro_batch * S * h * act_bytes(in->precision);
  double per_micro =
      4 * (L / in->pp) * allreduce_s(msg, in->tp, link, f->comm_eff, f->comm_latency_s);
  out->comm_s = out->steps * m_micro * per_micro;
  out->time_s = compute * (1 + out->bubble) + out->comm_s;
  out->tokens_per_s_per_gpu = in->tokens / out->time_s / in->gpus;
  out->mfu = out->tokens_per_s_per_gpu * out->model_flops_per_token / peak;
  out->utilisation = fmin(1, eff);

  /* memory per GPU */
  double psi = m->params_b * 1e9 / (in->tp * in->pp);
  double wb = in->precision == MX_FP32 ? 4 : 2, gb = wb, ob = in->precision == MX_FP32 ? 8 : 12;
  double w = wb * psi, g = gb * psi, o = ob * psi;
  if (in->zero_stage >= 1) o /= dp;
  if (in->zero_stage >= 2) g /= dp;
  if (in->zero_stage >= 3) w /= dp;
  double sbh = S * in->micro_batch * h;
  double scores = in->flash_attention || in->recompute == MX_RECOMPUTE_SELECTIVE
                      ? 0 : 5.0 * m->heads * S / h;
  double layer_full = sbh * (34 + scores) / in->tp;
  double act = in->recompute == MX_RECOMPUTE_FULL ? L * 2 * sbh / in->tp + layer_full
                                                   : L * layer_full;
  if (in->precision == MX_FP32) act *= 2;
  out->mem_weights_gb = w / 1e9;
  out->mem_gradients_gb = g / 1e9;
  out->mem_optimizer_gb = o / 1e9;
  out->mem_activations_gb = act / 1e9;
  out->mem_per_gpu_gb = (w + g + o + act) / 1e9;
  out->mem_available_gb = hw->memory_gb;
  out->fits = out->mem_per_gpu_gb <= hw->memory_gb;
  return 0;
}

/* ---- cost, energy, carbon ------------------------------------------------- */

void mx_rate(const struct mx_hw *hw, int gpus, double u, const struct mx_region *region,
             const struct mx_instance *instance, struct mx_rate *out) {
  memset(out, 0, sizeof(*out));
  if (u < 0) u = 0;
  if (u > 1) u = 1;
  double tdp = hw->tdp_w;
  out->gpu_power_w = !(tdp > 0)          ? NAN
                     : isnan(hw->idle_w) ? tdp
                                         : hw->idle_w + (tdp - hw->idle_w) * u;
  out->it_kw = out->gpu_power_w * gpus / 1000;
  out->pue_known = region && region->pue > 0;
  out->facility_kw = out->it_kw * (out->pue_known ? region->pue : 1);
  double price = region ? region->electricity_usd_per_kwh : NAN;
  out->energy_usd_per_hour = price >= 0 ? out->facility_kw * price : NAN;
  out->gco2_per_hour = region && region->carbon_g_per_kwh >= 0
                           ? out->facility_kw * region->carbon_g_per_kwh : NAN;
  if (instance) {
    out->instances = (gpus + instance->gpu_count - 1) / instance->gpu_count;
    out->usd_per_hour = out->instances * instance->usd_per_hour;
  } else {
    out->usd_per_hour = out->energy_usd_per_hour;
  }
}
