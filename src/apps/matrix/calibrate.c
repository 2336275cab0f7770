/* calibrate.c — fitting the simulator's factors on published measurements
 * (calibrate.h): rows, predictions, Levenberg–Marquardt, leave-one-out. */
#include "apps/matrix/calibrate.h"

#include "apps/matrix/tsv.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- reading the file ------------------------------------------------------ */

struct raw {
  char model[MX_NAME_MAX], gpu[MX_NAME_MAX], precision[48], batch[48], metric[48], unit[24];
  char notes[256];
  int count, input_len, output_len;
  double value;
};

static const struct mx_col raw_cols[] = {
  S(raw, model, 1), S(raw, gpu, 1), I(raw, count, 1), S(raw, precision, 1), S(raw, batch, 1),
  I(raw, input_len, 1), I(raw, output_len, 0), S(raw, metric, 1), N(raw, value, 1),
  S(raw, unit, 1), S(raw, notes, 0),
};

static int row_of(const struct raw *w, int line, struct mx_calib_row *r, char *err,
                  size_t errlen) {
  memset(r, 0, sizeof(*r));
  r->line = line;
  strcpy(r->model, w->model);
  strcpy(r->gpu, w->gpu);
  strcpy(r->metric_name, w->metric);
  r->count = w->count;
  r->input_len = w->input_len;
  r->output_len = w->output_len;
  r->value = w->value;
  if (mx_precision_parse(w->precision, &r->precision)) {
    mx_seterr(err, errlen, "calibration line %d: unknown precision '%s'", line, w->precision);
    return GROVE_EINVAL;
  }
  static const struct { const char *name, *unit; enum mx_metric m; } metrics[] = {
    {"output_throughput_per_gpu", "tokens/s/GPU", MX_M_THROUGHPUT_PER_GPU},
    {"output_throughput", "tokens/s", MX_M_THROUGHPUT},
    {"total_output_throughput", "tokens/s", MX_M_THROUGHPUT},
    {"TTFT", "ms", MX_M_TTFT},
    {"training_throughput_per_gpu", "tokens/s/GPU", MX_M_TRAIN_PER_GPU},
  };
  size_t k;
  for (k = 0; k < ARRAY_N(metrics); k++)
    if (!strcmp(w->metric, metrics[k].name)) break;
  if (k == ARRAY_N(metrics) || strcmp(w->unit, metrics[k].unit)) {
    mx_seterr(err, errlen, "calibration line %d: unknown metric '%s' in '%s'", line, w->metric,
              w->unit);
    return GROVE_EINVAL;
  }
  r->metric = metrics[k].m;
  r->training = r->metric == MX_M_TRAIN_PER_GPU;
  if (r->training) {
    r->recompute = strstr(w->notes, "act. ckpt") && !strstr(w->notes, "no act. ckpt");
  } else if (!strcmp(w->batch, "max-load")) {
    r->batch = 0;
  } else {
    char *end;
    long b = strtol(w->batch, &end, 10);
    if (*end || b < 1 || b > MX_BATCH_MAX) {
      mx_seterr(err, errlen, "calibration line %d: bad batch '%s'", line, w->batch);
      return GROVE_EINVAL;
    }
    r->batch = (int)b;
  }
  if (r->count < 1 || !(r->value > 0) || r->input_len < 1) {
    mx_seterr(err, errlen, "calibration line %d: count, value and input_len must be positive",
              line);
    return GROVE_EINVAL;
  }
  return 0;
}

int mx_calib_load(struct mx_calib *out, const char *path, char *err, size_t errlen) {
  void *p = NULL;
  size_t n = 0;
  int rc = mx_tsv_load(NULL, path, raw_cols, ARRAY_N(raw_cols), sizeof(struct raw), &p, &n, err,
                       errlen);
  if (rc) return rc;
  struct raw *raw = p;
  struct mx_calib_row *rows = calloc(n ? n : 1, sizeof(*rows));
  if (!rows) {
    free(raw);
    return GROVE_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    rc = row_of(&raw[i], (int)i + 2, &rows[i], err, errlen);
    if (rc) {
      free(raw);
      free(rows);
      return rc;
    }
  }
  free(raw);
  out->rows = rows;
  out->n = n;
  return 0;
}

void mx_calib_release(struct mx_calib *cal) {
  free(cal->rows);
  cal->rows = NULL;
  cal->n = 0;
}

/* ---- predictions ----------------------------------------------------------- */

int mx_calib_predict(const struct mx_catalog *c, const struct mx_calib_row *r,
                     const struct mx_factors *f, double *pred, char *err, size_t errlen) {
  const struct mx_model *m = mx_catalog_model(c, r->model);
  const struct mx_hw *hw = mx_catalog_hw(c, r->gpu);
  if (!m || !hw) {
    mx_seterr(err, errlen, "calibration line %d: unknown %s '%s'", r->line, m ? "GPU" : "model",
              m ? r->gpu : r->model);
    return GROVE_EINVAL;
  }
  int rc;
  if (r->training) {
    struct mx_train_in in = {
      .model = m, .hw = hw, .gpus = r->count, .tp = 1, .pp = 1, .precision = r->precision,
      .seq_len = r->input_len, .micro_batch = 1, .global_batch = r->count, .tokens = 1e9,
      .zero_stage = 3, .recompute = r->recompute ? MX_RECOMPUTE_FULL : MX_RECOMPUTE_NONE,
      .flash_attention = 1,
    };
    struct mx_train_out o;
    rc = mx_simulate_training(&in, f, &o, err, errlen);
    if (!rc) *pred = o.tokens_per_s_per_gpu;
    return rc;
  }
  struct mx_infer_in in = {
    .model = m, .hw = hw, .tp = r->count, .pp = 1, .batch = r->batch,
    .input_len = r->input_len, .output_len = r->output_len > 0 ? r->output_len : 1,
    .precision = r->precision, .kv_precision = r->precision == MX_FP8 ? MX_FP8 : MX_FP16,
  };
  if (r->precision == MX_FP32) in.kv_precision = MX_FP32;
  struct mx_infer_out o;
  rc = mx_simulate_inference(&in, f, &o, err, errlen);
  if (rc) return rc;
  switch (r->metric) {
  case MX_M_THROUGHPUT_PER_GPU: *pred = o.tokens_per_s / r->count; break;
  case MX_M_THROUGHPUT: *pred = o.tokens_per_s; break;
  case MX_M_TTFT: *pred = o.ttft_s * 1000; break;
  default: return GROVE_EINVAL;
  }
  return 0;
}

/* ---- the fit --------------------------------------------------------------- */

#define P_MAX 6
#define LM_ITERS 100
#define RIDGE 1e-4   /* pulls each log factor weakly toward its start */

struct problem {
  const struct mx_catalog *c;
  const struct mx_calib *cal;
  int training;          /* which kind of rows */
  long skip;             /* row left out, or −1 */
  int np;
  double start[P_MAX];
  int capped[P_MAX];     /* an efficiency: log ≤ 0 */
};

static void factors_of(const struct problem *pb, const double *th, struct mx_factors *f) {
  mx_factors_ideal(f);
  f->overhead_s = 0;
  if (pb->training) {
    f->train_eff = exp(th[0]);
    f->train_hopper = exp(th[1]);
    f->train_8bit = exp(th[2]);
  } else {
    f->prefill_eff = exp(th[0]);
    f->prefill_eff_8bit = exp(th[1]);
    f->decode_bw_eff = exp(th[2]);
    f->comm_eff = exp(th[3]);
    f->overhead_s = exp(th[4]);
    f->comm_latency_s = exp(th[5]);
  }
}

static void setup(struct problem *pb, int training) {
  pb->training = training;
  if (training) {
    const double s[] = {log(0.5), 0, 0};
    static const int cap[] = {1, 0, 0};
    pb->np = 3;
    memcpy(pb->start, s, sizeof(s));
    memcpy(pb->capped, cap, sizeof(cap));
  } else {
    const double s[] = {log(0.5), log(0.5), log(0.8), log(0.5), log(1e-3), log(1e-5)};
    static const int cap[] = {1, 1, 1, 1, 0, 0};
    pb->np = 6;
    memcpy(pb->start, s, sizeof(s));
    memcpy(pb->capped, cap, sizeof(cap));
  }
}

static int in_kind(const struct problem *pb, size_t i) {
  return pb->cal->rows[i].training == pb->training && (long)i != pb->skip;
}

/* Residuals log(pred/measured) of the rows, then the ridge terms; returns
 * the count, or −1 on a simulator error. */
static long residuals(const struct problem *pb, const double *th, double *r, char *err,
                      size_t errlen) {
  struct mx_factors f;
  factors_of(pb, th, &f);
  long n = 0;
  for (size_t i = 0; i < pb->cal->n; i++) {
    if (!in_kind(pb, i)) continue;
    double pred;
    if (mx_calib_predict(pb->c, &pb->cal->rows[i], &f, &pred, err, errlen)) return -1;
    r[n++] = log(pred / pb->cal->rows[i].value);
  }
  for (int j = 0; j < pb->np; j++) r[n++] = RIDGE * (th[j] - pb->start[j]);
  return n;
}

static double sumsq(const double *r, long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += r[i] * r[i];
  return s;
}

/* Solves A x = b (p×p, partial pivoting); returns 0 or −1 when singular. */
static int solve(double A[P_MAX][P_MAX], double *b, double *x, int p) {
  for (int k = 0; k < p; k++) {
    int piv = k;
    for (int i = k + 1; i < p; i++)
      if (fabs(A[i][k]) > fabs(A[piv][k])) piv = i;
    if (fabs(A[piv][k]) < 1e-300) return -1;
    if (piv != k) {
      for (int j = 0; j < p; j++) {
        double t = A[k][j];
        A[k][j] = A[piv][j];
        A[piv][j] = t;
      }
      double t = b[k];
      b[k] = b[piv];
      b[piv] = t;
    }
    for (int i = k + 1; i < p; i++) {
      double q = A[i][k] / A[k][k];
      for (int j = k; j < p; j++) A[i][j] -= q * A[k][j];
      b[i] -= q * b[k];
    }
  }
  for (int k = p - 1; k >= 0; k--) {
    double s = b[k];
    for (int j = k + 1; j < p; j++) s -= A[k][j] * x[j];
    x[k] = s / A[k][k];
  }
  return 0;
}

/* Levenberg–Marquardt (Marquardt 1963) with forward-difference Jacobian;
 * th in: start, out: the fit. */
static int lm(const struct problem *pb, double *th, char *err, size_t errlen) {
  size_t cap = pb->cal->n + P_MAX;
  double *r = malloc(cap * sizeof(double)), *rt = malloc(cap * sizeof(double));
  double *J = malloc(cap * P_MAX * sizeof(double));
  int rc = GROVE_ENOMEM;
  if (!r || !rt || !J) goto out;
  rc = GROVE_EINVAL;
  long n = residuals(pb, th, r, err, errlen);
  if (n < 0) goto out;
  double cost = sumsq(r, n), mu = 1e-3;
  for (int it = 0; it < LM_ITERS; it++) {
    for (int j = 0; j < pb->np; j++) {
      double save = th[j], h = 1e-6;
      th[j] += h;
      if (residuals(pb, th, rt, err, errlen) < 0) goto out;
      th[j] = save;
      for (long i = 0; i < n; i++) J[i * P_MAX + j] = (rt[i] - r[i]) / h;
    }
    double A[P_MAX][P_MAX], g[P_MAX];
    for (int a = 0; a < pb->np; a++) {
      g[a] = 0;
      for (long i = 0; i < n; i++) g[a] -= J[i * P_MAX + a] * r[i];
      for (int b = 0; b < pb->np; b++) {
        double s = 0;
        for (long i = 0; i < n; i++) s += J[i * P_MAX + a] * J[i * P_MAX + b];
        A[a][b] = s;
      }
    }
    int improved = 0;
    for (int tries = 0; tries < 30 && !improved; tries++) {
      double M[P_MAX][P_MAX], gg[P_MAX], d[P_MAX], cand[P_MAX];
      memcpy(M, A, sizeof(M));
      memcpy(gg, g, sizeof(gg));
      for (int a = 0; a < pb->np; a++) M[a][a] += mu * (A[a][a] > 1e-12 ? A[a][a] : 1e-12);
      if (solve(M, gg, d, pb->np)) {
        mu *= 10;
        continue;
      }
      for (int a = 0; a < pb->np; a++) {
        cand[a] = th[a] + d[a];
        if (pb->capped[a] && cand[a] > 0) cand[a] = 0;     /* an efficiency ≤ 1 */
        if (cand[a] < -30) cand[a] = -30;
        if (cand[a] > 30) cand[a] = 30;
      }
      long n2 = residuals(pb, cand, rt, err, errlen);
      if (n2 < 0) goto out;
      double c2 = sumsq(rt, n2);
      if (c2 < cost) {
        double gain = cost - c2;
        memcpy(th, cand, sizeof(double) * pb->np);
        memcpy(r, rt, sizeof(double) * n2);
        cost = c2;
        mu = mu / 3 > 1e-12 ? mu / 3 : 1e-12;
        improved = 1;
        if (gain < 1e-9 * cost) it = LM_ITERS; /* converged */
      } else {
        mu *= 4;
      }
    }
    if (!improved) break;
  }
  rc = 0;
out:
  free(r);
  free(rt);
  free(J);
  return rc;
}

static double ape(double pred, double meas) { return fabs(pred - meas) / meas * 100; }

int mx_calibrate(const struct mx_catalog *c, const struct mx_calib *cal, struct mx_fit *out,
                 char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  out->pred = calloc(cal->n ? cal->n : 1, sizeof(double));
  out->loo_pred = calloc(cal->n ? cal->n : 1, sizeof(double));
  if (!out->pred || !out->loo_pred) {
    mx_fit_release(out);
    return GROVE_ENOMEM;
  }
  double th_all[2][P_MAX];
  for (int kind = 0; kind < 2; kind++) {
    struct problem pb = {.c = c, .cal = cal, .skip = -1};
    setup(&pb, kind);
    size_t nk = 0;
    for (size_t i = 0; i < cal->n; i++) nk += cal->rows[i].training == kind;
    if (nk < (size_t)pb.np + 1) {
      mx_seterr(err, errlen, "calibration has %zu %s rows: at least %d are needed", nk,
                kind ? "training" : "inference", pb.np + 1);
      mx_fit_release(out);
      return GROVE_EINVAL;
    }
    if (kind) out->n_training = nk;
    else out->n_inference = nk;

    double *th = th_all[kind];
    memcpy(th, pb.start, sizeof(pb.start));
    int rc = lm(&pb, th, err, errlen);
    if (rc) {
      mx_fit_release(out);
      return rc;
    }
    struct mx_factors f;
    factors_of(&pb, th, &f);
    double sum = 0, sum_loo = 0, ss_loo = 0;
    for (size_t i = 0; i < cal->n; i++) {
      if (cal->rows[i].training != kind) continue;
      rc = mx_calib_predict(c, &cal->rows[i], &f, &out->pred[i], err, errlen);
      if (rc) {
        mx_fit_release(out);
        return rc;
      }
      sum += ape(out->pred[i], cal->rows[i].value);
      /* the same fit without row i */
      struct problem lo = pb;
      lo.skip = (long)i;
      double thl[P_MAX]; /* starts from the full fit: fewer steps, same answer */
      memcpy(thl, th, sizeof(thl));
      rc = lm(&lo, thl, err, errlen);
      struct mx_factors fl;
      factors_of(&lo, thl, &fl);
      if (!rc) rc = mx_calib_predict(c, &cal->rows[i], &fl, &out->loo_pred[i], err, errlen);
      if (rc) {
        mx_fit_release(out);
        return rc;
      }
      sum_loo += ape(out->loo_pred[i], cal->rows[i].value);
      double lr = log(out->loo_pred[i] / cal->rows[i].value);
      ss_loo += lr * lr;
    }
    double sigma = sqrt(ss_loo / nk);
    if (kind) {
      out->mape_training = sum / nk;
      out->loo_mape_training = sum_loo / nk;
      out->factors.train_eff = f.train_eff;
      out->factors.train_hopper = f.train_hopper;
      out->factors.train_8bit = f.train_8bit;
      out->factors.sigma_training = sigma;
    } else {
      out->mape_inference = sum / nk;
      out->loo_mape_inference = sum_loo / nk;
      out->factors.prefill_eff = f.prefill_eff;
      out->factors.prefill_eff_8bit = f.prefill_eff_8bit;
      out->factors.decode_bw_eff = f.decode_bw_eff;
      out->factors.comm_eff = f.comm_eff;
      out->factors.overhead_s = f.overhead_s;
      out->factors.comm_latency_s = f.comm_latency_s;
      out->factors.sigma_inference = sigma;
    }
  }
  return 0;
}

void mx_fit_release(struct mx_fit *fit) {
  free(fit->pred);
  free(fit->loo_pred);
  fit->pred = fit->loo_pred = NULL;
}
