/* cv.c — bench/matrix's fit report: fits the simulator on
 * src/apps/matrix/data/calibration.tsv and prints the leave-one-out cross-validated
 * error beside the seed's thresholds (< 10 % inference, < 15 % training),
 * one `name value unit peer_value ratio` line each; with -v, each row's
 * measured, fitted and held-out figures first.
 * Usage: cv [-v] [data-dir]   (default src/apps/matrix/data) */
#include "apps/matrix/calibrate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  int verbose = argc > 1 && !strcmp(argv[1], "-v");
  const char *dir = argc > 1 + verbose ? argv[1 + verbose] : "src/apps/matrix/data";
  char err[512] = "", path[4096];
  struct mx_catalog *c = NULL;
  struct mx_calib cal = {0};
  struct mx_fit fit = {0};
  if (mx_catalog_load(&c, dir, err, sizeof(err))) goto fail;
  snprintf(path, sizeof(path), "%s/calibration.tsv", dir);
  if (mx_calib_load(&cal, path, err, sizeof(err))) goto fail;
  if (mx_calibrate(c, &cal, &fit, err, sizeof(err))) goto fail;
  if (verbose) {
    for (size_t i = 0; i < cal.n; i++) {
      const struct mx_calib_row *r = &cal.rows[i];
      printf("# line %-3d %-24s %-16s x%-3d %-5s b=%-4d %5d/%-5d %-28s measured %9.1f fit %9.1f "
             "(%+5.1f%%) held-out %9.1f (%+5.1f%%)\n",
             r->line, r->model, r->gpu, r->count, mx_precision_name(r->precision), r->batch,
             r->input_len, r->output_len, r->metric_name, r->value, fit.pred[i],
             (fit.pred[i] / r->value - 1) * 100, fit.loo_pred[i],
             (fit.loo_pred[i] / r->value - 1) * 100);
    }
    const struct mx_factors *f = &fit.factors;
    printf("# factors: prefill_eff %.4f prefill_eff_8bit %.4f decode_bw_eff %.4f comm_eff %.4f "
           "overhead_ms %.4f comm_latency_us %.2f train_eff %.4f train_hopper %.4f train_8bit %.4f sigma_inference "
           "%.4f sigma_training %.4f\n",
           f->prefill_eff, f->prefill_eff_8bit, f->decode_bw_eff, f->comm_eff,
           f->overhead_s * 1000, f->comm_latency_s * 1e6, f->train_eff, f->train_hopper, f->train_8bit,
           f->sigma_inference, f->sigma_training);
  }
  printf("name value unit peer_value ratio\n");
  printf("matrix_inference_loo_mape %.2f %% 10 %.2f (peer: the seed's threshold, < 10 %%; %zu rows; "
         "in-sample %.2f %%)\n",
         fit.loo_mape_inference, fit.loo_mape_inference / 10, fit.n_inference,
         fit.mape_inference);
  printf("matrix_training_loo_mape %.2f %% 15 %.2f (peer: the seed's threshold, < 15 %%; %zu rows; "
         "in-sample %.2f %%)\n",
         fit.loo_mape_training, fit.loo_mape_training / 15, fit.n_training, fit.mape_training);
  mx_fit_release(&fit);
  mx_calib_release(&cal);
  mx_catalog_free(c);
  return 0;
fail:
  fprintf(stderr, "cv: %s\n", err);
  mx_fit_release(&fit);
  mx_calib_release(&cal);
  mx_catalog_free(c);
  return 1;
}
