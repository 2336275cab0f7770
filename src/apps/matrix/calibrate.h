/* calibrate.h — fits the simulator's efficiency factors (simulate.h) on
 * published measurements (src/apps/matrix/data/calibration.tsv) and reports the
 * leave-one-out cross-validated error.
 *
 * The fit: least squares on log(predicted / measured) over the rows of a
 * kind (inference rows fit prefill_eff, prefill_eff_8bit, decode_bw_eff,
 * comm_eff, overhead_s and comm_latency_s; training rows fit train_eff,
 * train_hopper and train_8bit), by Levenberg–Marquardt on the logs of the
 * factors, the efficiencies kept ≤ 1, from fixed starting values: the same file gives
 * the same factors, bit for bit, on the same build. Each row is predicted
 * once by the fit on all rows and once by a fit on the others (leave one
 * out); the mean absolute percentage errors of both are reported, and the
 * RMS of the leave-one-out log residuals becomes the factors' sigma (the
 * uncertainty band).
 *
 * How a row reads (docs/matrix.md): count GPUs in tensor parallelism for
 * inference and in data parallelism (fully sharded) for training; batch
 * "max-load" means the largest batch memory holds; FP8 rows keep an FP8 KV
 * cache; "act. ckpt" in the notes (but not "no act. ckpt") means full
 * recomputation. Metrics: output_throughput_per_gpu (tokens/s/GPU),
 * output_throughput and total_output_throughput (tokens/s), TTFT (ms),
 * training_throughput_per_gpu (tokens/s/GPU).
 *
 * Not thread-safe per object; distinct objects may be used from distinct
 * threads. */
#ifndef GROVE_MATRIX_CALIBRATE_H
#define GROVE_MATRIX_CALIBRATE_H

#include "apps/matrix/catalog.h"
#include "apps/matrix/simulate.h"

#include <stddef.h>

enum mx_metric {
  MX_M_THROUGHPUT_PER_GPU,   /* output tokens/s per GPU */
  MX_M_THROUGHPUT,           /* output tokens/s, all GPUs */
  MX_M_TTFT,                 /* ms */
  MX_M_TRAIN_PER_GPU,        /* training tokens/s per GPU */
};

struct mx_calib_row {
  int line;                  /* in the file, for messages */
  char model[MX_NAME_MAX], gpu[MX_NAME_MAX], metric_name[48];
  int count;
  enum mx_precision precision;
  int batch;                 /* 0: max-load (or a training row) */
  int input_len, output_len;
  enum mx_metric metric;
  double value;
  int training, recompute;
};

struct mx_calib {
  struct mx_calib_row *rows;
  size_t n;
};

/* Reads a calibration file. Returns 0, GROVE_ENOMEM, GROVE_EIO or
 * GROVE_EINVAL (a malformed row: err says which line and why). */
int mx_calib_load(struct mx_calib *out, const char *path, char *err, size_t errlen);
void mx_calib_release(struct mx_calib *cal);

/* The simulator's prediction of row r's metric, in the row's unit. Returns
 * 0, or the simulator's error (GROVE_EINVAL for a row naming an unknown
 * model or GPU). */
int mx_calib_predict(const struct mx_catalog *c, const struct mx_calib_row *r,
                     const struct mx_factors *f, double *pred, char *err, size_t errlen);

struct mx_fit {
  struct mx_factors factors;       /* fitted on all rows, sigmas from LOO */
  size_t n_inference, n_training;
  double mape_inference, mape_training;          /* in-sample, % */
  double loo_mape_inference, loo_mape_training;  /* leave-one-out, % */
  double *pred, *loo_pred;         /* per row of the calibration, owned */
};

/* Fits and cross-validates. Returns 0, GROVE_ENOMEM, or GROVE_EINVAL
 * (a row the simulator refuses, or a kind with fewer rows than factors).
 * Release with mx_fit_release. */
int mx_calibrate(const struct mx_catalog *c, const struct mx_calib *cal, struct mx_fit *out,
                 char *err, size_t errlen);
void mx_fit_release(struct mx_fit *fit);

#endif
