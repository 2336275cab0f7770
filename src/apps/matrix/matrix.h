/* matrix.h — GreenMatrix (seed 003) as a Grove app: the catalogues and the
 * performance model behind its routes (internal to src/apps/matrix/).
 *
 * State: the catalogue in versions (struct matrix_cat): the shipped files
 * with the admins' edits (kept in the store) applied, read-only once
 * built; the factors fitted on a version, computed once, off the event
 * loop, by the first request that needs them (about a second). */
#ifndef GROVE_MATRIX_H
#define GROVE_MATRIX_H

#include <pthread.h>

#include "app/app.h"
#include "apps/matrix/calibrate.h"
#include "apps/matrix/catalog.h"
#include "apps/matrix/edits.h"
#include "apps/matrix/metrics.h"

struct matrix_cfg {
  char *data;          /* --matrix-data: the catalogue folder, or "auto" */
  struct matrix_metrics_cfg metrics; /* monitoring's options (metrics.h) */
};

/* One version of the catalogue, with the factors fitted on it: requests
 * hold a reference for as long as they use it; an admin's edit installs a
 * new version (the old one goes with its last reference). */
struct matrix_cat {
  struct mx_catalog *cat;
  const char *data_dir;         /* its calibration.tsv: the app's data_dir */
  int refs;                     /* under matrix.mu */
  pthread_mutex_t fit_mu;       /* held while fitting (about a second) */
  int fitted;                   /* under fit_mu: 0 not yet, 1 done, <0 the fit's error */
  char fit_err[256];
  struct mx_factors factors;
  double loo_inference, loo_training; /* leave-one-out MAPE, % */
};

struct matrix {
  struct grove_ctx ctx;
  char data_dir[4096];
  pthread_mutex_t mu;           /* guards cur and every version's refs */
  struct matrix_cat *cur;       /* NULL: no catalogue was found */
  pthread_mutex_t edit_mu;      /* one edit at a time */
  struct mx_edits edits;        /* under edit_mu */
  struct matrix_metrics_cfg mcfg; /* monitoring (metrics.h) */
  struct periodic *sweeper;     /* expired processes, old idempotency keys */
  struct mx_state *state;       /* the current state, written behind (state.h) */
  struct matrix_last_pushes *last; /* each host's last push's processes (metrics.c) */
  struct matrix_telegraf *telegraf; /* Telegraf's lines into the same views (telegraf.c) */
};

/* The current catalogue with a reference taken, or NULL when there is
 * none; give it back with matrix_cat_put. Thread-safe, never blocks long. */
struct matrix_cat *matrix_cat_get(struct matrix *m);
void matrix_cat_put(struct matrix *m, struct matrix_cat *c);   /* NULL is fine */

/* The factors fitted on c's catalogue (fitting them first if no one has):
 * blocks for the fit, so never call it on the loop. Returns 0, or the
 * fit's error with err filled. Thread-safe. */
int matrix_factors(struct matrix_cat *c, struct mx_factors *out, double *loo_inference,
                   double *loo_training, char *err, size_t errlen);

/* An admin's edit: sets table t's row `key` to `line` (NULL: deletes it),
 * checks the whole catalogue, records the edit in the store, then makes
 * the new catalogue current. Blocks (store): never on the loop. Returns 0;
 * GROVE_ENOENT (deleting a row that is not there); GROVE_EINVAL (the
 * catalogue would be inconsistent: err says why; nothing changed); the
 * store's error (nothing changed). */
int matrix_edit(struct matrix *m, enum mx_table t, const char *key, const char *line, char *err,
                size_t errlen);

/* Finds the catalogue folder for `want` ("auto": installed beside the
 * binary, ./src/apps/matrix/data, the source tree's, the install prefix's). Returns
 * 0 with out filled, or GROVE_ENOENT. */
int matrix_find_data(const char *want, char *out, size_t n);

/* ---- a request job's error (error.c) ---------------------------------------------
 * Why a request was refused: the error envelope's status, error_code,
 * message and details. Embedded in a job and zeroed with it (status 0:
 * none set); used by one thread at a time (the job's). */
struct mx_error {
  int status;                   /* HTTP status; 0 while none is set */
  const char *code;             /* error_code (static) */
  char message[300];
  json_t *details;              /* owned: NULL or a reference */
};

/* Sets e: status, code and the message from fmt (cut at 299 bytes); takes
 * details (may be NULL) and releases the one set before. Returns -1, so
 * that a parser may `return mx_error_set(...)`. */
int mx_error_set(struct mx_error *e, int status, const char *code, json_t *details,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Moves src's error into dst (releasing dst's details first); src is left
 * zeroed. */
void mx_error_move(struct mx_error *dst, struct mx_error *src);
/* Releases e's details and zeroes it. */
void mx_error_release(struct mx_error *e);
/* Answers a job's request, on the loop; nothing when the client went away
 * (r->conn NULL). With *data: 200 with *data and *meta (meta may be NULL),
 * both taken (set to NULL). Otherwise e's error envelope, its details
 * taken; 500 INTERNAL when e was never set. */
void mx_reply(struct http_req *r, json_t **data, json_t **meta, struct mx_error *e);

/* Runs a simulation request (the seed's simulate-performance payload,
 * body not changed) on mc's catalogue with its fitted factors: with
 * `every`, over every catalogue configuration (GPU × 1, 2, 4, 8 tensor
 * parallel; training 8…512 data parallel), refusing hardware, gpu_count,
 * tensor_parallel and pipeline_parallel. Blocks for the first fit: never
 * on the loop. Returns 0 with *data and *meta new (simulate-performance's
 * answer), or -1 with *err set (api.c; err's earlier details released). */
int matrix_simulate_json(struct matrix *m, struct matrix_cat *mc, json_t *body, int every,
                         json_t **data, json_t **meta, struct mx_error *err);

/* The routes (api.c). */
void matrix_handle_simulate(struct http_req *r);
void matrix_handle_hardware_list(struct http_req *r);
void matrix_handle_hardware(struct http_req *r);
void matrix_handle_models(struct http_req *r);
void matrix_handle_regions(struct http_req *r);
void matrix_handle_put_hardware(struct http_req *r);
void matrix_handle_delete_hardware(struct http_req *r);
void matrix_handle_put_model(struct http_req *r);
void matrix_handle_delete_model(struct http_req *r);
void matrix_handle_put_instance(struct http_req *r);
void matrix_handle_delete_instance(struct http_req *r);
void matrix_handle_put_region(struct http_req *r);
void matrix_handle_delete_region(struct http_req *r);
/* The cost, energy and carbon routes (costs.c). */
void matrix_handle_process_summary(struct http_req *r);
void matrix_handle_cross_region(struct http_req *r);
void matrix_handle_cost_models(struct http_req *r);
void matrix_handle_cost_model(struct http_req *r);
/* Catalogue rows as the read routes show them (api.c): new objects. */
json_t *matrix_instance_json(const struct mx_instance *in, size_t id);
json_t *matrix_region_json(const struct mx_region *g);
/* The recommendation routes (recommend.c). */
void matrix_handle_recommend_hardware(struct http_req *r);
void matrix_handle_post_deployment(struct http_req *r);
void matrix_handle_optimization(struct http_req *r);

#endif
