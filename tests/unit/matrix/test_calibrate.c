/* test_calibrate.c — matrix's catalogues and the fit of its factors. */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../test.h"
#include "apps/matrix/calibrate.h"
#include "apps/matrix/catalog.h"
#include "core/error.h"

#define DATA GROVE_SOURCE_DIR "/src/apps/matrix/data"

TEST(shipped_catalogues_load_and_names_match_loosely) {
  char err[256] = "";
  struct mx_catalog *c = NULL;
  CHECK(mx_catalog_load(&c, DATA, err, sizeof err) == 0);
  static const char *const gpus[] = {"A100-SXM4-40GB", "A100-80GB", "h100 sxm", "H100-PCIe",
                                     "H200", "L4", "L40S", "T4", "A10G", "V100", "RTX 4090",
                                     "MI300X"};
  for (size_t i = 0; i < sizeof(gpus) / sizeof(gpus[0]); i++) {
    const struct mx_hw *h = mx_catalog_hw(c, gpus[i]);
    CHECK(h != NULL);
    CHECK(h->source && *h->source && h->year >= 2019);
  }
  static const char *const models[] = {"Llama-2-7B", "llama 2 13b", "Llama-2-70B",
                                       "Llama-3.1-8B-Instruct", "Llama-3.3-70B-Instruct",
                                       "Llama-3.1-405B", "Mistral-7B", "Mixtral-8x7B",
                                       "Qwen2.5-7B", "Qwen2.5-72B", "Falcon-7B", "GPT-J-6B",
                                       "BERT-Large"};
  for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
    const struct mx_model *m = mx_catalog_model(c, models[i]);
    CHECK(m != NULL);
    CHECK(m->layers > 0 && m->active_params_b <= m->params_b);
  }
  const struct mx_model *moe = mx_catalog_model(c, "Mixtral-8x7B");
  CHECK(!strcmp(moe->architecture, "moe") && moe->active_params_b < moe->params_b / 3);
  CHECK(mx_catalog_hw(c, "H100-SXM") == mx_catalog_hw(c, "H100-80GB"));
  CHECK(mx_catalog_hw(c, "H100 NVL") == NULL);
  CHECK(isnan(mx_catalog_hw(c, "A100-80GB")->fp8_tflops));
  const struct mx_instance *in = mx_catalog_instance(c, "L4", NULL, NULL);
  CHECK(in && in->gpu_count == 1);
  CHECK(mx_catalog_region(c, "gcp", "us-central1") != NULL);
  CHECK(mx_catalog_region(c, "aws", "mars-1") == NULL);
  mx_catalog_free(c);
  mx_catalog_free(NULL);
}

/* Copies the shipped catalogue into a temporary folder with one file
 * replaced by text. */
static char *catalogue_with(const char *file, const char *text) {
  char *dir = strdup("/tmp/grove-matrix-XXXXXX");
  CHECK(dir && mkdtemp(dir) != NULL);
  static const char *const files[] = {"hardware.tsv", "models.tsv", "instances.tsv",
                                      "regions.tsv"};
  char cmd[512];
  for (size_t i = 0; i < 4; i++) {
    snprintf(cmd, sizeof cmd, "cp '%s/%s' '%s/'", DATA, files[i], dir);
    CHECK(system(cmd) == 0);
  }
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fputs(text, f);
  fclose(f);
  return dir;
}

static void remove_dir(char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  free(dir);
}

TEST(malformed_catalogues_are_refused_with_the_place) {
  char err[256] = "";
  struct mx_catalog *c = NULL;
  CHECK(mx_catalog_load(&c, "/nonexistent", err, sizeof err) == GROVE_EIO);
  char *dir = catalogue_with("models.tsv", "name\tfamily\nX\tY\n");
  CHECK(mx_catalog_load(&c, dir, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "missing column"));
  remove_dir(dir);
  dir = catalogue_with("instances.tsv", "provider\tregion\tinstance\thardware\tgpu_count\t"
                                        "usd_per_hour\tyear\tsource\n"
                                        "aws\tx\ty\tH100\t8\t-3\t2024\ts\n");
  CHECK(mx_catalog_load(&c, dir, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "bad number") && strstr(err, "line=2"));
  remove_dir(dir);
  dir = catalogue_with("instances.tsv", "provider\tregion\tinstance\thardware\tgpu_count\t"
                                        "usd_per_hour\tyear\tsource\n"
                                        "aws\tx\ty\tTPU-v9\t8\t3\t2024\ts\n");
  CHECK(mx_catalog_load(&c, dir, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "unknown hardware"));
  remove_dir(dir);
  CHECK(c == NULL);
}

TEST(the_fit_is_reproducible_and_beats_the_roofline) {
  char err[256] = "";
  struct mx_catalog *c = NULL;
  struct mx_calib cal = {0};
  CHECK(mx_catalog_load(&c, DATA, err, sizeof err) == 0);
  CHECK(mx_calib_load(&cal, DATA "/calibration.tsv", err, sizeof err) == 0);
  CHECK(cal.n >= 35);
  struct mx_fit a, b;
  CHECK(mx_calibrate(c, &cal, &a, err, sizeof err) == 0);
  CHECK(mx_calibrate(c, &cal, &b, err, sizeof err) == 0);
  CHECK(memcmp(&a.factors, &b.factors, sizeof(a.factors)) == 0);
  CHECK(a.loo_mape_inference == b.loo_mape_inference);
  CHECK(a.loo_mape_training == b.loo_mape_training);
  CHECK(a.n_inference + a.n_training == cal.n);
  /* efficiencies are fractions; held-out error is at least in-sample error */
  CHECK(a.factors.prefill_eff > 0 && a.factors.prefill_eff <= 1);
  CHECK(a.factors.decode_bw_eff > 0 && a.factors.decode_bw_eff <= 1);
  CHECK(a.factors.comm_eff > 0 && a.factors.comm_eff <= 1);
  CHECK(a.factors.train_eff > 0 && a.factors.train_eff <= 1);
  CHECK(a.loo_mape_inference >= a.mape_inference);
  CHECK(a.factors.sigma_inference > 0 && a.factors.sigma_training > 0);
  /* the fitted factors predict far better than the bare roofline */
  struct mx_factors ideal;
  mx_factors_ideal(&ideal);
  double e_ideal = 0, e_fit = 0;
  for (size_t i = 0; i < cal.n; i++) {
    double p;
    CHECK(mx_calib_predict(c, &cal.rows[i], &ideal, &p, err, sizeof err) == 0);
    e_ideal += fabs(log(p / cal.rows[i].value));
    e_fit += fabs(log(a.pred[i] / cal.rows[i].value));
  }
  CHECK(e_fit < e_ideal / 2);
  mx_fit_release(&a);
  mx_fit_release(&b);
  mx_calib_release(&cal);
  mx_catalog_free(c);
}

TEST(bad_calibration_rows_are_refused) {
  char err[256] = "";
  struct mx_calib cal = {0};
  char path[] = "/tmp/grove-calib-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  const char *text = "model\tgpu\tcount\tprecision\tbatch\tinput_len\toutput_len\tmetric\tvalue\t"
                     "unit\tnotes\n"
                     "Llama-2-7B\tA100\t1\tFP16\t8\t128\t128\tvibes\t3\tok\t\n";
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
  CHECK(mx_calib_load(&cal, path, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "line 2") && strstr(err, "metric"));
  unlink(path);
}

static const struct test tests[] = {
  T(shipped_catalogues_load_and_names_match_loosely),
  T(malformed_catalogues_are_refused_with_the_place),
  T(the_fit_is_reproducible_and_beats_the_roofline),
  T(bad_calibration_rows_are_refused),
};
TEST_MAIN(tests)
