/* matrix.c — GreenMatrix (seed 003) as a Grove app: its option, its
 * catalogues, the fit of the performance model's factors, `grove matrix
 * calibrate`, and its table. The routes are in api.c; the model in
 * simulate.c (docs/matrix.md). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/matrix/matrix.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"
#include "gate/gate.h"

/* Where the catalogues are when --matrix-data is "auto", from CMake as for
 * the console (serve.c): installed beside the binary, the source tree's
 * src/apps/matrix/data, the install prefix's. */
#ifndef GROVE_MATRIX_FROM_BINDIR
#define GROVE_MATRIX_FROM_BINDIR "../share/grove/matrix"
#endif
#ifndef GROVE_MATRIX_SOURCE_DIR
#define GROVE_MATRIX_SOURCE_DIR "src/apps/matrix/data"
#endif
#ifndef GROVE_MATRIX_INSTALL_DIR
#define GROVE_MATRIX_INSTALL_DIR "/usr/local/share/grove/matrix"
#endif

static struct matrix_cfg matrix_cfg;

static const struct cfg_opt matrix_opts[] = {
    CFG_OPT(struct matrix_cfg, "matrix-data", CFG_STR, data, "auto", "folder of matrix's catalogues and calibration (hardware.tsv, models.tsv, instances.tsv, regions.tsv, calibration.tsv); auto: installed beside grove, else ./src/apps/matrix/data (a checkout), else the source tree's"),
    CFG_OPT(struct matrix_cfg, "matrix-max-processes-per-host", CFG_INT, metrics.max_processes, "4096", "live processes a host or VM may have in matrix's current state; a push past it stores the rest and answers 422 TOO_MANY_PROCESSES; 0: no cap"),
    CFG_OPT(struct matrix_cfg, "matrix-process-expiry", CFG_MS, metrics.expiry_ms, "5m", "a process (or GPU) not seen in a sample for this long is gone from matrix's current state"),
    CFG_OPT(struct matrix_cfg, "matrix-idempotency-keep", CFG_MS, metrics.idem_keep_ms, "24h", "how long a push's Idempotency-Key and its answer are remembered"),
    CFG_OPT(struct matrix_cfg, "matrix-idempotency-max", CFG_INT, metrics.idem_max, "1000000", "idempotency keys remembered at most (the oldest go first); 0: no bound but time"),
    CFG_OPT(struct matrix_cfg, "matrix-max-ahead", CFG_MS, metrics.max_ahead_ms, "5m", "a pushed sample whose timestamp is later than the server's clock by more than this is refused"),
    CFG_OPT(struct matrix_cfg, "matrix-state-flush", CFG_MS, metrics.state_flush_ms, "1s", "matrix's current state (latest per host, process, GPU) is written to the store this often, and before every read of it; a crash loses at most this much of it (the series are durable before a push is answered)"),
    CFG_OPT(struct matrix_cfg, "matrix-publish-interval", CFG_MS, metrics.publish_ms, "1s", "at most one live update per matrix/hosts/{id} or matrix/vms/{id} topic this often"),
};

static int has_catalogue(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/hardware.tsv", dir);
  return access(path, R_OK) == 0;
}

int matrix_find_data(const char *want, char *out, size_t n) {
  if (want && strcmp(want, "auto") != 0) {
    if ((size_t)snprintf(out, n, "%s", want) >= n) return GROVE_EINVAL;
    return has_catalogue(out) ? 0 : GROVE_ENOENT;
  }
  char exe[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  char *slash = len > 0 ? (exe[len] = '\0', strrchr(exe, '/')) : NULL;
  if (slash) {
    *slash = '\0';
    char cand[PATH_MAX + 64], real[PATH_MAX];
    snprintf(cand, sizeof cand, "%s/%s", exe, GROVE_MATRIX_FROM_BINDIR);
    if (has_catalogue(cand) && realpath(cand, real) && strlen(real) < n) {
      strcpy(out, real);
      return 0;
    }
  }
  static const char *const others[] = {"src/apps/matrix/data", GROVE_MATRIX_SOURCE_DIR,
                                       GROVE_MATRIX_INSTALL_DIR};
  for (size_t i = 0; i < ARRAY_LEN(others); i++)
    if (has_catalogue(others[i]) && strlen(others[i]) < n) {
      strcpy(out, others[i]);
      return 0;
    }
  return GROVE_ENOENT;
}

/* Fits on dir's calibration.tsv with catalogue c. */
static int fit_on(const struct mx_catalog *c, const char *dir, struct mx_fit *fit,
                  struct mx_calib *cal, char *err, size_t errlen) {
  char path[4200];
  snprintf(path, sizeof path, "%s/calibration.tsv", dir);
  int rc = mx_calib_load(cal, path, err, errlen);
  if (rc) return rc;
  rc = mx_calibrate(c, cal, fit, err, errlen);
  if (rc) mx_calib_release(cal);
  return rc;
}

int matrix_factors(struct matrix_cat *c, struct mx_factors *out, double *loo_inference,
                   double *loo_training, char *err, size_t errlen) {
  pthread_mutex_lock(&c->fit_mu);
  if (!c->fitted) {
    struct mx_calib cal = {0};
    struct mx_fit fit;
    uint64_t t0 = clock_mono_ns();
    int rc = fit_on(c->cat, c->data_dir, &fit, &cal, c->fit_err, sizeof c->fit_err);
    if (rc) {
      c->fitted = rc;
      log_error(NULL, "cannot fit matrix's performance model", "dir=\"%s\" error=\"%s\"",
                c->data_dir, c->fit_err);
    } else {
      c->fitted = 1;
      c->factors = fit.factors;
      c->loo_inference = fit.loo_mape_inference;
      c->loo_training = fit.loo_mape_training;
      log_info(NULL, "matrix's performance model fitted",
               "rows=%zu loo_mape_inference=%.2f loo_mape_training=%.2f ms=%llu", cal.n,
               fit.loo_mape_inference, fit.loo_mape_training,
               (unsigned long long)((clock_mono_ns() - t0) / 1000000));
      mx_fit_release(&fit);
      mx_calib_release(&cal);
    }
  }
  int rc = c->fitted < 0 ? c->fitted : 0;
  if (rc) {
    snprintf(err, errlen, "%s", c->fit_err);
  } else {
    *out = c->factors;
    *loo_inference = c->loo_inference;
    *loo_training = c->loo_training;
  }
  pthread_mutex_unlock(&c->fit_mu);
  return rc;
}

/* ---- catalogue versions ---------------------------------------------------- */

static struct matrix_cat *cat_new(struct matrix *m, struct mx_catalog *cat) {
  struct matrix_cat *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->cat = cat;
  c->data_dir = m->data_dir;
  c->refs = 1;
  pthread_mutex_init(&c->fit_mu, NULL);
  return c;
}

static void cat_free(struct matrix_cat *c) {
  mx_catalog_free(c->cat);
  pthread_mutex_destroy(&c->fit_mu);
  free(c);
}

struct matrix_cat *matrix_cat_get(struct matrix *m) {
  pthread_mutex_lock(&m->mu);
  struct matrix_cat *c = m->cur;
  if (c) c->refs++;
  pthread_mutex_unlock(&m->mu);
  return c;
}

void matrix_cat_put(struct matrix *m, struct matrix_cat *c) {
  if (!c) return;
  pthread_mutex_lock(&m->mu);
  int last = --c->refs == 0;
  pthread_mutex_unlock(&m->mu);
  if (last) cat_free(c);
}

/* Makes cat the current version (taking it). */
static int cat_install(struct matrix *m, struct mx_catalog *cat) {
  struct matrix_cat *c = cat_new(m, cat);
  if (!c) {
    mx_catalog_free(cat);
    return GROVE_ENOMEM;
  }
  pthread_mutex_lock(&m->mu);
  struct matrix_cat *old = m->cur;
  m->cur = c;
  pthread_mutex_unlock(&m->mu);
  matrix_cat_put(m, old);
  return 0;
}

/* ---- admins' edits --------------------------------------------------------- */

/* Every edit an admin made, newest last per row; line NULL: deleted. */
static const struct store_migration matrix_migrations[] = {
    {1, "catalogue edits",
     "CREATE TABLE matrix_catalogue_edits (tbl TEXT NOT NULL, key TEXT NOT NULL, line TEXT,"
     " at BIGINT NOT NULL, PRIMARY KEY (tbl, key))",
     NULL},
    MATRIX_METRICS_MIGRATIONS,
};

static const char *const edit_upsert =
    "INSERT INTO matrix_catalogue_edits (tbl, key, line, at)"
    " VALUES ($1, $2, $3, CAST($4 AS BIGINT))"
    " ON CONFLICT (tbl, key) DO UPDATE SET line = excluded.line, at = excluded.at";

int matrix_edit(struct matrix *m, enum mx_table t, const char *key, const char *line, char *err,
                size_t errlen) {
  pthread_mutex_lock(&m->edit_mu);
  char *old = NULL;
  int had = 0, rc;
  struct mx_catalog *cat = NULL;
  if (!line && !mx_edits_has(&m->edits, t, key)) {
    snprintf(err, errlen, "no row '%s' in %s", key, mx_table_file(t));
    rc = GROVE_ENOENT;
    goto out;
  }
  rc = mx_edits_set(&m->edits, t, key, line, &old, &had);
  if (rc) goto out;
  rc = mx_edits_build(&m->edits, &cat, err, errlen);
  if (!rc) {
    char now[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
    const char *params[] = {mx_table_file(t), key, line, now};
    rc = store_query(m->ctx.store, edit_upsert, params, 4, NULL, err, errlen);
  }
  if (rc) {
    mx_catalog_free(cat);
    mx_edits_undo(&m->edits, t, key, old, had);
    goto out;
  }
  free(old);
  rc = cat_install(m, cat);
  if (!rc)
    log_info(NULL, "matrix catalogue edited", "table=\"%s\" key=\"%s\" deleted=%s",
             mx_table_file(t), key, line ? "false" : "true");
out:
  pthread_mutex_unlock(&m->edit_mu);
  return rc;
}

/* Applies the edits kept in the store over the shipped files; an edit
 * that no longer fits the shipped files (after an upgrade, say) is
 * skipped with an error in the log. */
static int load_edits(struct matrix *m) {
  struct store_rows *rows = NULL;
  char err[512] = "";
  int rc = store_query(m->ctx.store,
                       "SELECT tbl, key, line FROM matrix_catalogue_edits ORDER BY at, tbl, key",
                       NULL, 0, &rows, err, sizeof err);
  if (rc) {
    log_error(NULL, "cannot read matrix's catalogue edits", "error=\"%s\"", err);
    return rc;
  }
  for (int i = 0; i < rows->nrows; i++) {
    const char *tbl = store_rows_get(rows, i, "tbl"), *key = store_rows_get(rows, i, "key");
    const char *line = store_rows_get(rows, i, "line");
    int t;
    for (t = 0; t < MX_T_N; t++)
      if (tbl && !strcmp(tbl, mx_table_file((enum mx_table)t))) break;
    if (t == MX_T_N || !key) continue;
    char *old = NULL;
    int had = 0;
    struct mx_catalog *cat = NULL;
    if (mx_edits_set(&m->edits, (enum mx_table)t, key, line, &old, &had)) continue;
    if (mx_edits_build(&m->edits, &cat, err, sizeof err)) {
      log_error(NULL, "matrix catalogue edit skipped", "table=\"%s\" key=\"%s\" error=\"%s\"",
                tbl, key, err);
      mx_edits_undo(&m->edits, (enum mx_table)t, key, old, had);
      continue;
    }
    mx_catalog_free(cat);
    free(old);
  }
  store_rows_free(rows);
  return 0;
}

static int matrix_start(struct grove_ctx *ctx, void **state) {
  struct matrix *m = calloc(1, sizeof *m);
  if (!m) return GROVE_ENOMEM;
  m->ctx = *ctx;
  m->mcfg = matrix_cfg.metrics;
  pthread_mutex_init(&m->mu, NULL);
  pthread_mutex_init(&m->edit_mu, NULL);
  char err[512] = "";
  int rc = matrix_metrics_start(m);
  if (rc) {
    log_error(NULL, "cannot start matrix's monitoring", "error=\"%s\"", grove_strerror(rc));
    goto fail;
  }
  const char *want = matrix_cfg.data ? matrix_cfg.data : "auto";
  rc = matrix_find_data(want, m->data_dir, sizeof m->data_dir);
  if (rc && !strcmp(want, "auto")) {
    /* a binary away from its data still serves everything else; matrix's
     * routes answer 503 CATALOGUE_UNAVAILABLE */
    log_warn(NULL, "matrix's catalogues not found: its routes answer 503",
             "matrix-data=\"auto\" source=\"%s\"", GROVE_MATRIX_SOURCE_DIR);
    *state = m;
    return 0;
  }
  if (rc) {
    log_error(NULL, "cannot find matrix's catalogues", "matrix-data=\"%s\"", want);
    goto fail;
  }
  struct mx_catalog *cat = NULL;
  rc = mx_edits_init(&m->edits, m->data_dir, err, sizeof err);
  if (!rc) rc = load_edits(m);
  if (!rc) rc = mx_edits_build(&m->edits, &cat, err, sizeof err);
  if (!rc) rc = cat_install(m, cat);
  if (rc) {
    log_error(NULL, "cannot load matrix's catalogues", "error=\"%s\"", err);
    goto fail;
  }
  log_info(NULL, "matrix catalogues loaded",
           "dir=\"%s\" hardware=%zu models=%zu instances=%zu regions=%zu edits=%zu",
           m->data_dir, m->cur->cat->n_hw, m->cur->cat->n_models, m->cur->cat->n_instances,
           m->cur->cat->n_regions, m->edits.n);
  *state = m;
  return 0;
fail:
  matrix_metrics_stop(m);
  mx_edits_release(&m->edits);
  matrix_cat_put(m, m->cur);
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->edit_mu);
  free(m);
  return rc;
}

static void matrix_stop(void *state) {
  struct matrix *m = state;
  if (!m) return;
  matrix_metrics_stop(m);
  matrix_cat_put(m, m->cur);
  mx_edits_release(&m->edits);
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->edit_mu);
  free(m);
}

/* ---- grove matrix calibrate ------------------------------------------------ */

static void matrix_command_help(FILE *f) {
  fprintf(f, "usage: grove matrix calibrate [--data DIR] [--rows]\n\n"
             "matrix's tools:\n"
             "  calibrate  fit the performance model's efficiency factors on DIR/calibration.tsv\n"
             "             and print them with the leave-one-out cross-validated error\n"
             "             (docs/matrix.md); the same file gives the same figures\n\n"
             "  --data DIR  the catalogue folder (default: as --matrix-data auto)\n"
             "  --rows      also print each row: measured, fitted, held out\n");
}

static int calibrate_verb(int argc, char **argv) {
  const char *want = "auto";
  int rows = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--data") && i + 1 < argc) want = argv[++i];
    else if (!strcmp(argv[i], "--rows")) rows = 1;
    else {
      fprintf(stderr, "grove matrix calibrate: unknown argument '%s'\n", argv[i]);
      matrix_command_help(stderr);
      return 2;
    }
  }
  char dir[4096], err[512] = "";
  if (matrix_find_data(want, dir, sizeof dir)) {
    fprintf(stderr, "grove matrix calibrate: no catalogue in '%s'\n", want);
    return 1;
  }
  struct mx_catalog *c = NULL;
  struct mx_calib cal = {0};
  struct mx_fit fit;
  if (mx_catalog_load(&c, dir, err, sizeof err) || fit_on(c, dir, &fit, &cal, err, sizeof err)) {
    fprintf(stderr, "grove matrix calibrate: %s\n", err);
    mx_catalog_free(c);
    return 1;
  }
  const struct mx_factors *f = &fit.factors;
  printf("calibration   %s/calibration.tsv (%zu inference rows, %zu training rows)\n", dir,
         fit.n_inference, fit.n_training);
  printf("factors       prefill_eff %.4f  prefill_eff_8bit %.4f  decode_bw_eff %.4f  comm_eff "
         "%.4f\n              overhead_ms %.3f  comm_latency_us %.2f\n              train_eff "
         "%.4f  train_hopper %.4f  train_8bit %.4f\n",
         f->prefill_eff, f->prefill_eff_8bit, f->decode_bw_eff, f->comm_eff, f->overhead_s * 1e3,
         f->comm_latency_s * 1e6, f->train_eff, f->train_hopper, f->train_8bit);
  printf("inference     MAPE %.2f %% in sample, %.2f %% leave-one-out (seed: < 10 %%); "
         "sigma %.4f\n",
         fit.mape_inference, fit.loo_mape_inference, f->sigma_inference);
  printf("training      MAPE %.2f %% in sample, %.2f %% leave-one-out (seed: < 15 %%); "
         "sigma %.4f\n",
         fit.mape_training, fit.loo_mape_training, f->sigma_training);
  for (size_t i = 0; rows && i < cal.n; i++) {
    const struct mx_calib_row *r = &cal.rows[i];
    printf("line %-3d %-24s %-15s x%-3d %-5s %-28s measured %10.1f  fitted %10.1f (%+6.1f %%)  "
           "held out %10.1f (%+6.1f %%)\n",
           r->line, r->model, r->gpu, r->count, mx_precision_name(r->precision), r->metric_name,
           r->value, fit.pred[i], (fit.pred[i] / r->value - 1) * 100, fit.loo_pred[i],
           (fit.loo_pred[i] / r->value - 1) * 100);
  }
  mx_fit_release(&fit);
  mx_calib_release(&cal);
  mx_catalog_free(c);
  return 0;
}

static int matrix_command(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "calibrate") == 0) return calibrate_verb(argc - 1, argv + 1);
  if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "help") == 0)) {
    matrix_command_help(stdout);
    return 0;
  }
  matrix_command_help(stderr);
  return 2;
}

/* Every route matrix serves: the model and catalogue reads need the read
 * scope (they are computations over public figures, but they cost CPU);
 * changing the catalogue needs the admin scope. */
static const struct route_def matrix_routes[] = {
    {"POST", "/api/monitoring/push-metrics", matrix_handle_push, .scopes = GATE_WRITE},
    {"GET", "/api/v1/metrics/vm-snapshot", matrix_handle_vm_snapshot, .scopes = GATE_READ},
    {"GET", "/api/host-process-metrics/hosts", matrix_handle_host_list, .scopes = GATE_READ},
    {"GET", "/api/host-process-metrics/latest", matrix_handle_host_latest, .scopes = GATE_READ},
    {"GET", "/api/host-process-metrics/top", matrix_handle_host_top, .scopes = GATE_READ},
    {"GET", "/api/host-process-metrics/range", matrix_handle_host_range, .scopes = GATE_READ},
    {"GET", "/api/vm-process-metrics/vms", matrix_handle_vm_list, .scopes = GATE_READ},
    {"GET", "/api/vm-process-metrics/latest", matrix_handle_vm_latest, .scopes = GATE_READ},
    {"GET", "/api/vm-process-metrics/top", matrix_handle_vm_top, .scopes = GATE_READ},
    {"GET", "/api/vm-process-metrics/range", matrix_handle_vm_range, .scopes = GATE_READ},
    {"GET", "/api/dashboard/overview", matrix_handle_dashboard, .scopes = GATE_READ},
    {"POST", "/api/model/simulate-performance", matrix_handle_simulate, .scopes = GATE_READ},
    {"GET", "/api/model/get-model-data", matrix_handle_models, .scopes = GATE_READ},
    {"POST", "/api/model/recommend-hardware", matrix_handle_recommend_hardware,
     .scopes = GATE_READ},
    {"POST", "/api/deployment/post-deployment-optimization", matrix_handle_post_deployment,
     .scopes = GATE_READ},
    {"POST", "/api/model/optimization-recommendation", matrix_handle_optimization,
     .scopes = GATE_READ},
    {"GET", "/api/hardware-specs", matrix_handle_hardware_list, .scopes = GATE_READ},
    {"GET", "/api/hardware-specs/{name}", matrix_handle_hardware, .scopes = GATE_READ},
    {"GET", "/api/cost-models", matrix_handle_cost_models, .scopes = GATE_READ},
    {"GET", "/api/cost-models/regions", matrix_handle_regions, .scopes = GATE_READ},
    {"GET", "/api/cost-models/{id}", matrix_handle_cost_model, .scopes = GATE_READ},
    {"POST", "/api/costs/process-summary", matrix_handle_process_summary, .scopes = GATE_READ},
    {"GET", "/api/recommendations/cross-region", matrix_handle_cross_region, .scopes = GATE_READ},
    {"PUT", "/api/v1/matrix/catalogue/hardware/{name}", matrix_handle_put_hardware,
     .scopes = GATE_ADMIN},
    {"DELETE", "/api/v1/matrix/catalogue/hardware/{name}", matrix_handle_delete_hardware,
     .scopes = GATE_ADMIN},
    {"PUT", "/api/v1/matrix/catalogue/models/{name}", matrix_handle_put_model,
     .scopes = GATE_ADMIN},
    {"DELETE", "/api/v1/matrix/catalogue/models/{name}", matrix_handle_delete_model,
     .scopes = GATE_ADMIN},
    {"PUT", "/api/v1/matrix/catalogue/instances/{provider}/{region}/{instance}",
     matrix_handle_put_instance, .scopes = GATE_ADMIN},
    {"DELETE", "/api/v1/matrix/catalogue/instances/{provider}/{region}/{instance}",
     matrix_handle_delete_instance, .scopes = GATE_ADMIN},
    {"PUT", "/api/v1/matrix/catalogue/regions/{provider}/{region}", matrix_handle_put_region,
     .scopes = GATE_ADMIN},
    {"DELETE", "/api/v1/matrix/catalogue/regions/{provider}/{region}",
     matrix_handle_delete_region, .scopes = GATE_ADMIN},
};

/* A host's or VM's latest sample, published on each push (coalesced):
 * any signed-in caller with the read scope may follow it. */
static const struct hub_topic_rule matrix_topics[] = {
    {"matrix/hosts/", HUB_SIGNED_IN, HUB_NOBODY, GATE_READ, 0, NULL, NULL},
    {"matrix/vms/", HUB_SIGNED_IN, HUB_NOBODY, GATE_READ, 0, NULL, NULL},
};

const struct grove_app matrix_app = {
    .name = "matrix",
    .summary = "AI workloads (GreenMatrix): host, VM and process monitoring, hardware and model catalogues, performance simulation",
    .opts = matrix_opts,
    .nopts = ARRAY_LEN(matrix_opts),
    .cfg = &matrix_cfg,
    .migrations = matrix_migrations,
    .nmigrations = ARRAY_LEN(matrix_migrations),
    .routes = matrix_routes,
    .nroutes = ARRAY_LEN(matrix_routes),
    .page = &(const struct app_page){"matrix", "AI workloads", "/matrix.js"},
    .topics = matrix_topics,
    .ntopics = ARRAY_LEN(matrix_topics),
    .start = matrix_start,
    .stop = matrix_stop,
    .command = matrix_command,
    .verbs = "matrix's tools: grove matrix calibrate",
    .command_help = matrix_command_help,
};
