/* matrix.h — GreenMatrix (seed 003) as a Grove app: the catalogues and the
 * performance model behind its routes (internal to src/apps/matrix/).
 *
 * State: the catalogues, loaded at start and read-only after; the fitted
 * factors, computed once, off the event loop, by the first request that
 * needs them (the fit takes about a second), under `mu`. */
#ifndef GROVE_MATRIX_H
#define GROVE_MATRIX_H

#include <pthread.h>

#include "app/app.h"
#include "apps/matrix/calibrate.h"
#include "apps/matrix/catalog.h"

struct matrix_cfg {
  char *data;          /* --matrix-data: the catalogue folder, or "auto" */
};

struct matrix {
  struct grove_ctx ctx;
  char data_dir[4096];
  struct mx_catalog *cat;
  pthread_mutex_t mu;
  int fitted;          /* under mu: 0 not yet, 1 done, <0 the fit's error */
  char fit_err[256];
  struct mx_factors factors;
  double loo_inference, loo_training; /* leave-one-out MAPE, % */
};

/* The fitted factors (fitting them first if no one has): blocks for the
 * fit, so never call it on the loop. Returns 0, or the fit's error with
 * err filled. Thread-safe. */
int matrix_factors(struct matrix *m, struct mx_factors *out, double *loo_inference,
                   double *loo_training, char *err, size_t errlen);

/* Finds the catalogue folder for `want` ("auto": installed beside the
 * binary, ./data/matrix, the source tree's, the install prefix's). Returns
 * 0 with out filled, or GROVE_ENOENT. */
int matrix_find_data(const char *want, char *out, size_t n);

/* The routes (api.c). */
void matrix_handle_simulate(struct http_req *r);
void matrix_handle_hardware_list(struct http_req *r);
void matrix_handle_hardware(struct http_req *r);
void matrix_handle_models(struct http_req *r);
void matrix_handle_cost_models(struct http_req *r);
void matrix_handle_regions(struct http_req *r);

#endif
