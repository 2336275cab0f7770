/* test_edits.c — admins' edits over the shipped catalogues. */
#include <math.h>

#include "../test.h"
#include "apps/matrix/edits.h"
#include "core/error.h"

#define DATA GROVE_SOURCE_DIR "/src/apps/matrix/data"

static void init(struct mx_edits *e) {
  char err[256] = "";
  if (mx_edits_init(e, DATA, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    abort();
  }
}

TEST(keys_take_the_matching_form_of_their_parts) {
  char key[MX_KEY_MAX];
  const char *hw[] = {"H100 SXM5_80GB"};
  CHECK(mx_edits_key(MX_T_HARDWARE, hw, key) == 0);
  CHECK_EQ_STR(key, "h100sxm580gb");
  const char *in[] = {"AWS", "us-east-1", "p5.48xlarge"};
  CHECK(mx_edits_key(MX_T_INSTANCES, in, key) == 0);
  CHECK_EQ_STR(key, "aws/useast1/p5.48xlarge");
  const char *empty[] = {"aws", "--"};
  CHECK(mx_edits_key(MX_T_REGIONS, empty, key) == GROVE_EINVAL);
}

TEST(an_edit_replaces_adds_deletes_and_undoes) {
  struct mx_edits e;
  init(&e);
  struct mx_catalog *c = NULL;
  char err[256] = "", key[MX_KEY_MAX], *line = NULL, *old = NULL;
  CHECK(mx_edits_build(&e, &c, err, sizeof err) == 0);
  size_t n_hw = c->n_hw;
  double l4_bw = mx_catalog_hw(c, "L4")->memory_bw_gbs;
  mx_catalog_free(c);

  /* replace the L4's bandwidth */
  const char *l4[] = {"L4"};
  json_t *row = json_pack("{s:s,s:s,s:s,s:f,s:f,s:f,s:f,s:i,s:s}", "kind", "gpu", "vendor",
                          "NVIDIA", "family", "ada", "memory_gb", 24.0, "memory_bw_gbs", 301.5,
                          "fp16_tflops", 121.0, "tdp_w", 72.0, "year", 2023, "source", "test");
  CHECK(mx_edits_line(&e, MX_T_HARDWARE, l4, row, &line, err, sizeof err) == 0);
  CHECK(strstr(line, "L4\t") == line && strstr(line, "\t301.5\t"));
  CHECK(mx_edits_key(MX_T_HARDWARE, l4, key) == 0);
  int had;
  CHECK(mx_edits_set(&e, MX_T_HARDWARE, key, line, &old, &had) == 0 && !had && !old);
  CHECK(mx_edits_build(&e, &c, err, sizeof err) == 0);
  CHECK(c->n_hw == n_hw);
  CHECK(mx_catalog_hw(c, "L4")->memory_bw_gbs == 301.5);
  CHECK(isnan(mx_catalog_hw(c, "L4")->bf16_tflops)); /* what the row leaves out is empty */
  mx_catalog_free(c);

  /* delete it: the instances naming it make the catalogue inconsistent */
  CHECK(mx_edits_set(&e, MX_T_HARDWARE, key, NULL, &old, &had) == 0 && had && old);
  CHECK(!mx_edits_has(&e, MX_T_HARDWARE, key));
  CHECK(mx_edits_build(&e, &c, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "unknown hardware"));
  mx_edits_undo(&e, MX_T_HARDWARE, key, old, had);
  CHECK(mx_edits_has(&e, MX_T_HARDWARE, key));
  CHECK(mx_edits_build(&e, &c, err, sizeof err) == 0);
  CHECK(mx_catalog_hw(c, "L4")->memory_bw_gbs == 301.5);
  mx_catalog_free(c);

  /* undoing the first edit brings the shipped row back */
  CHECK(mx_edits_set(&e, MX_T_HARDWARE, key, line, &old, &had) == 0 && had);
  free(old);
  mx_edits_undo(&e, MX_T_HARDWARE, key, NULL, 0);
  CHECK(e.n == 0);
  CHECK(mx_edits_build(&e, &c, err, sizeof err) == 0);
  CHECK(mx_catalog_hw(c, "L4")->memory_bw_gbs == l4_bw);
  mx_catalog_free(c);
  free(line);
  json_decref(row);
  mx_edits_release(&e);
}

TEST(rows_with_unknown_columns_or_bad_cells_are_refused) {
  struct mx_edits e;
  init(&e);
  char err[256] = "", *line = NULL;
  const char *k[] = {"X"};
  json_t *row = json_pack("{s:s}", "flops", "many");
  CHECK(mx_edits_line(&e, MX_T_HARDWARE, k, row, &line, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "unknown column 'flops'"));
  json_decref(row);
  row = json_pack("{s:s}", "source", "a\nb");
  CHECK(mx_edits_line(&e, MX_T_HARDWARE, k, row, &line, err, sizeof err) == GROVE_EINVAL);
  json_decref(row);
  row = json_pack("{s:[]}", "source");
  CHECK(mx_edits_line(&e, MX_T_HARDWARE, k, row, &line, err, sizeof err) == GROVE_EINVAL);
  json_decref(row);
  CHECK(line == NULL);
  mx_edits_release(&e);
}

static const struct test tests[] = {
  T(keys_take_the_matching_form_of_their_parts),
  T(an_edit_replaces_adds_deletes_and_undoes),
  T(rows_with_unknown_columns_or_bad_cells_are_refused),
};
TEST_MAIN(tests)
