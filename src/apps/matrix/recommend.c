/* recommend.c — matrix's recommendation routes (seed 003 §4.2.3, §6.1.2):
 *   POST /api/model/recommend-hardware            every catalogue configuration
 *        simulated and ranked against performance_requirements, with why
 *        each other one is excluded;
 *   POST /api/deployment/post-deployment-optimization   the seed's labels
 *        (Upgrade to …/MAINTAIN/Downgrade to … for bare metal, MAINTAIN/
 *        SCALE_IN/SCALE_OUT for VMs) from measured utilisation;
 *   POST /api/model/optimization-recommendation   compression method and
 *        precision with their simulated effects and accuracy risk.
 * Each request is read on the loop and computed on the CPU pool (the
 * first one after start also fits the model's factors). The decisions are
 * advise.c's; the figures the simulator's (api.c, simulate.c). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/matrix/advise.h"
#include "apps/matrix/matrix.h"
#include "core/error.h"
#include "core/util.h"
#include "net/http.h"

struct rec_job {
  struct matrix *m;
  struct matrix_cat *mc;         /* a reference, given back in rec_free */
  json_t *body;                  /* the request (owned) */
  json_t *data, *meta;           /* the answer, or: */
  struct matrix_fail fail;
};

static void fail(struct rec_job *j, int status, const char *code, json_t *details,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail(struct rec_job *j, int status, const char *code, json_t *details,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->fail.message, sizeof j->fail.message, fmt, ap);
  va_end(ap);
  j->fail.status = status;
  j->fail.code = code;
  json_decref(j->fail.details);
  j->fail.details = details;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void rec_free(struct rec_job *j) {
  matrix_cat_put(j->m, j->mc);
  json_decref(j->body);
  json_decref(j->data);
  json_decref(j->meta);
  json_decref(j->fail.details);
  free(j);
}

static void rec_done(struct http_req *r, void *arg) {
  struct rec_job *j = arg;
  if (r->conn) {
    if (j->data) {
      http_reply_data(r, 200, j->data, j->meta);
      j->data = j->meta = NULL;
    } else {
      http_reply_error(r, j->fail.status ? j->fail.status : 500,
                       j->fail.code ? j->fail.code : "INTERNAL", j->fail.message,
                       j->fail.details);
      j->fail.details = NULL;
    }
  }
  rec_free(j);
}

/* Takes the body and the catalogue, then runs work on the CPU pool. */
static void rec_start(struct http_req *r, void (*work)(void *)) {
  json_t *body = http_req_json(r);
  if (!body) return;
  struct matrix_cat *mc = matrix_cat_get(r->app);
  if (!mc) {
    json_decref(body);
    http_reply_error(r, 503, "CATALOGUE_UNAVAILABLE",
                     "matrix's catalogues were not found at start (see --matrix-data)", NULL);
    return;
  }
  struct rec_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_decref(body);
    matrix_cat_put(r->app, mc);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->m = r->app;
  j->mc = mc;
  j->body = body;
  if (http_req_defer(r, HTTP_POOL_CPU, work, rec_done, j)) rec_free(j);
}

/* The requirements as simulate read them (it checked them). */
static void requirements(json_t *body, int training, struct mx_requirements *req) {
  json_t *pr = json_object_get(body, "performance_requirements");
  json_t *l = json_object_get(pr, "max_latency_ms"), *q = json_object_get(pr, "min_throughput_qps"),
         *b = json_object_get(pr, "budget_limit");
  req->max_latency_ms = json_is_number(l) ? json_number_value(l) : NAN;
  req->min_qps = json_is_number(q) ? json_number_value(q) : NAN;
  req->budget = json_is_number(b) ? json_number_value(b) : NAN;
  req->training = training;
}

/* ---- recommend-hardware ---------------------------------------------------- */

static void recommend_work(void *arg) {
  struct rec_job *j = arg;
  enum mx_rank_by by = MX_RANK_COST;
  json_t *rb = json_object_get(j->body, "rank_by");
  if (rb && !json_is_null(rb) &&
      (!json_is_string(rb) || mx_rank_by_parse(json_string_value(rb), &by))) {
    fail(j, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", "rank_by"),
         "rank_by must be cost, latency, throughput, energy or carbon");
    return;
  }
  json_t *sim = NULL, *meta = NULL;
  if (matrix_simulate_json(j->m, j->mc, j->body, 1, &sim, &meta, &j->fail)) return;
  int training = !strcmp(json_string_value(json_object_get(sim, "task_type")), "Training");
  struct mx_requirements req;
  requirements(j->body, training, &req);
  json_t *ranking = NULL, *excluded = NULL;
  if (mx_rank_configurations(json_object_get(sim, "configurations"),
                             json_object_get(sim, "excluded"), &req, by, &ranking, &excluded)) {
    json_decref(sim);
    json_decref(meta);
    fail(j, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
    return;
  }
  json_t *first = json_array_get(ranking, 0);
  json_t *assumptions = json_object_get(sim, "assumptions");
  if (!rb || json_is_null(rb)) json_array_append_new(assumptions, json_string("rank_by = cost"));
  json_array_append_new(
      assumptions,
      json_string(training ? "budget_limit: USD per training run"
                           : "budget_limit: USD per month (730 h) of one replica; "
                             "max_latency_ms: one request end to end in a batch of batch_size"));
  size_t considered = json_array_size(json_object_get(sim, "configurations")) +
                      json_array_size(json_object_get(sim, "excluded"));
  j->data = json_pack(
      "{s:O,s:O,s:O,s:{s:o,s:o,s:o,s:s},s:s,s:I,s:I,s:o,s:o,s:o,s:o,s:O}", "task_type",
      json_object_get(sim, "task_type"), "model", json_object_get(sim, "model"), "workload",
      json_object_get(sim, "workload"), "performance_requirements", "max_latency_ms",
      num(req.max_latency_ms), "min_throughput_qps", num(req.min_qps), "budget_limit",
      num(req.budget), "budget_period", training ? "run" : "month", "rank_by",
      mx_rank_by_name(by), "considered", (json_int_t)considered, "recommended",
      (json_int_t)json_array_size(ranking), "recommendations", ranking, "excluded", excluded,
      "performance_metrics",
      first ? json_incref(json_object_get(first, "performance_metrics")) : json_null(),
      "cost_analysis", first ? json_incref(json_object_get(first, "cost_analysis")) : json_null(),
      "assumptions", assumptions);
  json_decref(sim);
  j->meta = meta;
  if (!j->data) fail(j, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
}

void matrix_handle_recommend_hardware(struct http_req *r) { rec_start(r, recommend_work); }
