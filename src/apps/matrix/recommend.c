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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/matrix/advise.h"
#include "apps/matrix/figures.h"
#include "apps/matrix/matrix.h"
#include "core/error.h"
#include "core/util.h"
#include "net/http.h"

struct rec_job {
  struct matrix *m;
  struct matrix_cat *mc;         /* a reference, given back in rec_free */
  json_t *body;                  /* the request (owned) */
  json_t *data, *meta;           /* the answer, or: */
  struct mx_error err;
};

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void rec_free(struct rec_job *j) {
  matrix_cat_put(j->m, j->mc);
  json_decref(j->body);
  json_decref(j->data);
  json_decref(j->meta);
  mx_error_release(&j->err);
  free(j);
}

static void rec_done(struct http_req *r, void *arg) {
  struct rec_job *j = arg;
  mx_reply_figures(r, &j->data, &j->meta, &j->err);
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
    mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", "rank_by"),
                 "rank_by must be cost, latency, throughput, energy or carbon");
    return;
  }
  json_t *sim = NULL, *meta = NULL;
  if (matrix_simulate_json(j->m, j->mc, j->body, 1, &sim, &meta, &j->err)) return;
  int training = !strcmp(json_string_value(json_object_get(sim, "task_type")), "Training");
  struct mx_requirements req;
  requirements(j->body, training, &req);
  json_t *ranking = NULL, *excluded = NULL;
  if (mx_rank_configurations(json_object_get(sim, "configurations"),
                             json_object_get(sim, "excluded"), &req, by, &ranking, &excluded)) {
    json_decref(sim);
    json_decref(meta);
    mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
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
  if (!j->data) mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
}

void matrix_handle_recommend_hardware(struct http_req *r) { rec_start(r, recommend_work); }

/* ---- reading the advice payloads ------------------------------------------- */

/* A number field in [lo, hi]: 0 absent (or null), 1 present, -1 bad
 * (answered as VALIDATION_ERROR with details.field). */
static int num_field(struct rec_job *j, json_t *o, const char *name, double lo, double hi,
                     double *out) {
  json_t *v = json_object_get(o, name);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi)) {
    mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", name),
                 "field '%s' must be a number in %g..%g", name, lo, hi);
    return -1;
  }
  *out = json_number_value(v);
  return 1;
}

static int str_field(struct rec_job *j, json_t *o, const char *name, const char **out) {
  json_t *v = json_object_get(o, name);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v) || json_string_length(v) > 200) {
    mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", name),
                 "field '%s' must be a string of at most 200 bytes", name);
    return -1;
  }
  *out = json_string_value(v);
  return 1;
}

/* The catalogue GPU a hardware id names ("L4 + Intel(R) Xeon": the L4);
 * NULL after answering UNKNOWN_HARDWARE. */
static const struct mx_hw *gpu_named(struct rec_job *j, const char *field, const char *id) {
  char name[256];
  snprintf(name, sizeof name, "%s", id);
  char *plus = strchr(name, '+');
  if (plus) *plus = 0;
  const struct mx_catalog *c = j->mc->cat;
  const struct mx_hw *h = mx_catalog_hw(c, name);
  if (h && !strcmp(h->kind, "gpu")) return h;
  json_t *known = json_array();
  for (size_t i = 0; i < c->n_hw; i++)
    if (!strcmp(c->hw[i].kind, "gpu")) json_array_append_new(known, json_string(c->hw[i].name));
  mx_error_set(&j->err, 400, "UNKNOWN_HARDWARE",
               json_pack("{s:s,s:o}", "field", field, "known", known),
               "hardware '%s' is not a catalogue GPU", id);
  return NULL;
}

/* The cheapest catalogued price per GPU-hour of hw (in provider/region
 * when given); NAN when none. */
static double gpu_hour_price(const struct mx_catalog *c, const struct mx_hw *hw,
                             const char *provider, const char *region) {
  const struct mx_instance *in = mx_catalog_instance(c, hw->name, provider, region);
  return in ? in->usd_per_hour / in->gpu_count : NAN;
}

static const char *pct_names[] = {"gpu_utilization", "gpu_memory_usage", "cpu_utilization",
                                  "cpu_memory_usage"};

static json_t *usage_json(const struct mx_usage *u) {
  return json_pack("{s:o,s:o,s:o,s:o}", pct_names[0], num(u->gpu_util), pct_names[1],
                   num(u->gpu_mem), pct_names[2], num(u->cpu_util), pct_names[3],
                   num(u->cpu_mem));
}

/* ---- post-deployment-optimization ------------------------------------------ */

struct pd_req {
  int vm;
  const char *model_name;
  const struct mx_hw *hw;        /* current GPU; NULL (VM without one) */
  struct mx_usage u;
  double gpus, instances;        /* GPUs per host (bare metal), VMs */
  double latency_ms, cost_per_1000;   /* current_performance; NAN */
  double max_latency_ms;         /* performance_requirements: a ceiling; NAN */
  const char *provider, *region;
  json_t *assumptions;
};

static int pd_parse(struct rec_job *j, struct pd_req *q) {
  json_t *o = j->body;
  json_t *missing = json_array();
  const char *type = NULL, *hwid = NULL;
  *q = (struct pd_req){.u = {NAN, NAN, NAN, NAN}, .gpus = 1, .instances = 1,
                       .latency_ms = NAN, .cost_per_1000 = NAN, .max_latency_ms = NAN,
                       .assumptions = json_array()};
  if (str_field(j, o, "deployment_type", &type) < 0 ||
      str_field(j, o, "model_name", &q->model_name) < 0 ||
      str_field(j, o, "current_hardware_id", &hwid) < 0 ||
      str_field(j, o, "provider", &q->provider) < 0 || str_field(j, o, "region", &q->region) < 0)
    goto bad;
  double *pct[] = {&q->u.gpu_util, &q->u.gpu_mem, &q->u.cpu_util, &q->u.cpu_mem};
  for (size_t i = 0; i < ARRAY_LEN(pct); i++)
    if (num_field(j, o, pct_names[i], 0, 100, pct[i]) < 0) goto bad;
  if (num_field(j, o, "gpu_count", 1, MX_GPUS_MAX, &q->gpus) < 0 ||
      num_field(j, o, "instance_count", 1, 1e6, &q->instances) < 0)
    goto bad;
  if (q->gpus != floor(q->gpus) || q->instances != floor(q->instances)) {
    mx_error_set(&j->err, 400, "VALIDATION_ERROR", NULL,
                 "gpu_count and instance_count must be integers");
    goto bad;
  }
  json_t *cp = json_object_get(o, "current_performance");
  json_t *pr = json_object_get(o, "performance_requirements");
  const char *objs[] = {"current_performance", "performance_requirements"};
  for (size_t i = 0; i < ARRAY_LEN(objs); i++) {
    json_t *v = json_object_get(o, objs[i]);
    if (v && !json_is_null(v) && !json_is_object(v)) {
      mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", objs[i]),
                   "field '%s' must be an object", objs[i]);
      goto bad;
    }
  }
  if (num_field(j, cp, "latency_ms", 0, 1e12, &q->latency_ms) < 0 ||
      num_field(j, cp, "cost_per_1000", 0, 1e12, &q->cost_per_1000) < 0 ||
      num_field(j, pr, "max_latency_ms", 0, 1e12, &q->max_latency_ms) < 0)
    goto bad;
  if (type && !strcasecmp(type, "bare-metal")) q->vm = 0;
  else if (type && !strcasecmp(type, "vm")) q->vm = 1;
  else if (type) {
    mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", "deployment_type"),
                 "deployment_type must be bare-metal or vm");
    goto bad;
  }
  if (!type) json_array_append_new(missing, json_string("deployment_type"));
  if (type && !q->vm) {
    if (!hwid) json_array_append_new(missing, json_string("current_hardware_id"));
    if (!isfinite(q->u.gpu_util) && !isfinite(q->u.gpu_mem)) {
      json_array_append_new(missing, json_string("gpu_utilization"));
      json_array_append_new(missing, json_string("gpu_memory_usage"));
    }
  }
  if (type && q->vm && !isfinite(q->u.gpu_util) && !isfinite(q->u.gpu_mem) &&
      !isfinite(q->u.cpu_util) && !isfinite(q->u.cpu_mem))
    for (size_t i = 0; i < ARRAY_LEN(pct_names); i++)
      json_array_append_new(missing, json_string(pct_names[i]));
  if (json_array_size(missing)) {
    mx_error_set(&j->err, 400, "MISSING_FIELDS", json_pack("{s:O}", "missing_fields", missing),
                 "the deployment is not fully described");
    goto bad;
  }
  json_decref(missing);
  if (hwid && !(q->hw = gpu_named(j, "current_hardware_id", hwid))) return -1;
  if (!json_object_get(o, "gpu_count") && !q->vm)
    json_array_append_new(q->assumptions, json_string("gpu_count = 1"));
  if (!json_object_get(o, "instance_count") && q->vm)
    json_array_append_new(q->assumptions, json_string("instance_count = 1"));
  return 0;
bad:
  json_decref(missing);
  return -1;
}

/* Speed of every catalogue GPU relative to the current one for the
 * model: the simulator's end-to-end time of one request (the simulate
 * defaults: FP16, batch 1, 512 in, 128 out, tensor parallel over the
 * host's GPUs) when the model is in the catalogue; else the ratio of
 * memory bandwidths (decode, which dominates serving, is bound by it:
 * Pope et al. 2022). Fills opts (n of them) and says which basis. */
static size_t pd_options(struct rec_job *j, const struct pd_req *q, const struct mx_factors *f,
                         struct mx_gpu_option *opts, size_t *cur, const char **basis) {
  const struct mx_catalog *c = j->mc->cat;
  const struct mx_model *md = q->model_name ? mx_catalog_model(c, q->model_name) : NULL;
  struct mx_infer_in in = {.model = md, .tp = (int)q->gpus, .pp = 1, .batch = 1,
                           .precision = MX_FP16, .kv_precision = MX_FP16};
  if (md) {
    in.output_len = strcmp(md->architecture, "encoder") ? 128 : 0;
    in.input_len = md->max_context - in.output_len < 512 ? md->max_context - in.output_len : 512;
  }
  struct mx_infer_out o;
  double t_cur = NAN;
  if (md) {
    in.hw = q->hw;
    if (mx_simulate_inference(&in, f, &o, NULL, 0) == 0) t_cur = o.e2e_s;
  }
  *basis = isfinite(t_cur) ? "simulated" : "memory bandwidth";
  size_t n = 0;
  for (size_t i = 0; i < c->n_hw; i++) {
    const struct mx_hw *h = &c->hw[i];
    if (strcmp(h->kind, "gpu") || !isfinite(h->memory_gb) || !isfinite(h->memory_bw_gbs))
      continue;
    struct mx_gpu_option *x = &opts[n];
    *x = (struct mx_gpu_option){.hw = h, .memory_gb = h->memory_gb, .fits = 1, .allowed = 1,
                                .usd_per_gpu_hour = gpu_hour_price(c, h, q->provider, q->region)};
    if (isfinite(t_cur)) {
      in.hw = h;
      if (mx_simulate_inference(&in, f, &o, NULL, 0)) continue; /* no published peak */
      x->speed = t_cur / o.e2e_s;
      x->fits = o.fits;
    } else {
      x->speed = h->memory_bw_gbs / q->hw->memory_bw_gbs;
    }
    if (h == q->hw) {
      *cur = n;
      x->speed = 1;
    }
    /* the caller's latency ceiling, on the current latency scaled by speed */
    if (isfinite(q->max_latency_ms) && isfinite(q->latency_ms) &&
        q->latency_ms / x->speed > q->max_latency_ms)
      x->allowed = 0;
    n++;
  }
  return n;
}

static json_t *option_json(const struct mx_gpu_option *x, double latency_ms) {
  int within = x->fits && !(x->projected_gpu_util > MX_TARGET_UTIL) &&
               !(x->projected_gpu_mem > MX_TARGET_UTIL);
  return json_pack("{s:s,s:f,s:b,s:o,s:o,s:o,s:o,s:o,s:b,s:b}", "hardware", x->hw->name,
                   "speed_ratio", x->speed, "model_fits", x->fits, "projected_gpu_utilization",
                   num(x->projected_gpu_util), "projected_gpu_memory_usage",
                   num(x->projected_gpu_mem), "projected_latency_ms", num(latency_ms / x->speed),
                   "cost_per_gpu_hour", num(x->usd_per_gpu_hour), "memory_gb",
                   num(x->memory_gb), "within_target", within, "within_latency", x->allowed);
}

static void pd_bare_metal(struct rec_job *j, struct pd_req *q, const struct mx_factors *f) {
  const struct mx_catalog *c = j->mc->cat;
  struct mx_gpu_option *opts = calloc(c->n_hw ? c->n_hw : 1, sizeof *opts);
  if (!opts) {
    mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
    return;
  }
  size_t cur = SIZE_MAX, pick;
  const char *basis;
  size_t n = pd_options(j, q, f, opts, &cur, &basis);
  enum mx_action act;
  int short_of;
  if (cur == SIZE_MAX || mx_bm_decide(&q->u, opts, n, cur, &act, &pick, &short_of)) {
    free(opts);
    mx_error_set(&j->err, 422, "UNSUPPORTED_HARDWARE", NULL,
                 "the current GPU '%s' cannot be compared (no published figures)", q->hw->name);
    return;
  }
  const struct mx_gpu_option *cx = &opts[cur], *px = &opts[pick];
  char label[MX_NAME_MAX + 16];
  if (act == MX_UPGRADE) snprintf(label, sizeof label, "Upgrade to %s", px->hw->name);
  else if (act == MX_DOWNGRADE) snprintf(label, sizeof label, "Downgrade to %s", px->hw->name);
  else snprintf(label, sizeof label, "MAINTAIN");
  /* why, in words, with the figures */
  json_t *reasons = json_array();
  const char *which;
  double gr = mx_usage_ratio(&q->u, 1, &which);
  double cr = mx_usage_ratio(&(struct mx_usage){NAN, NAN, q->u.cpu_util, q->u.cpu_mem}, 0,
                             &(const char *){NULL});
  char line[400];
  snprintf(line, sizeof line,
           "%s is the binding GPU figure at %.0f %% of the %.0f %% target (tolerance %.0f %%)",
           which, gr * 100, MX_TARGET_UTIL, MX_TOLERANCE * 100);
  json_array_append_new(reasons, json_string(line));
  if (act == MX_MAINTAIN && gr > 1 + MX_TOLERANCE)
    json_array_append_new(reasons, json_string("the GPU is over its target and no catalogue GPU "
                                               "that fits the model is faster"));
  else if (act == MX_MAINTAIN && isfinite(cr) && cr > 1 + MX_TOLERANCE)
    json_array_append_new(reasons, json_string("the CPU is over its target while the GPU is not: "
                                               "another GPU would not help"));
  else if (act == MX_MAINTAIN)
    json_array_append_new(reasons,
                          json_string(isfinite(cx->usd_per_gpu_hour)
                                          ? "no cheaper catalogue GPU keeps the load within the "
                                            "target (and the latency ceiling, when given)"
                                          : "no price is catalogued for the current GPU, so no "
                                            "saving can be shown"));
  else {
    snprintf(line, sizeof line,
             "on %s the load projects to %.0f %% utilisation and %.0f %% memory (speed ratio "
             "%.2f, %s basis)",
             px->hw->name, px->projected_gpu_util, px->projected_gpu_mem, px->speed, basis);
    json_array_append_new(reasons, json_string(line));
    if (short_of)
      json_array_append_new(reasons, json_string("no single catalogue GPU brings the load within "
                                                 "the target: this is the fastest that fits; "
                                                 "add GPUs as well"));
  }
  /* expected effect: the same demand on the new GPU */
  double dprice = px->usd_per_gpu_hour - cx->usd_per_gpu_hour;
  json_t *expected = json_pack(
      "{s:o,s:o,s:o,s:o,s:o,s:o}", "latency_ms", num(q->latency_ms / px->speed),
      "cost_per_1000", num(q->cost_per_1000 * px->usd_per_gpu_hour / cx->usd_per_gpu_hour),
      "gpu_utilization", num(px->projected_gpu_util), "gpu_memory_usage",
      num(px->projected_gpu_mem), "monthly_cost_change_usd",
      num(act == MX_MAINTAIN ? 0 : dprice * q->gpus * 730), "monthly_saving_usd",
      num(act == MX_MAINTAIN ? 0 : -dprice * q->gpus * 730));
  json_t *alts = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(alts, option_json(&opts[i], q->latency_ms));
  if (!strcmp(basis, "memory bandwidth"))
    json_array_append_new(q->assumptions,
                          json_string("model not in the catalogue: GPUs compared by memory "
                                      "bandwidth (decode-bound serving)"));
  else
    json_array_append_new(q->assumptions,
                          json_string("GPUs compared by the simulated end-to-end time of one "
                                      "request (FP16, batch 1, 512 in, 128 out)"));
  j->data = json_pack(
      "{s:s,s:s,s:s,s:b,s:{s:s,s:I,s:o,s:o},s:{s:s,s:o,s:o},s:o,s:o,s:s,s:o,s:{s:f,s:f},s:o}",
      "deployment_type", "bare-metal", "recommendation", label, "action",
      act == MX_UPGRADE ? "upgrade" : act == MX_DOWNGRADE ? "downgrade" : "maintain",
      "short_of_target", short_of, "current", "hardware", cx->hw->name, "gpu_count",
      (json_int_t)q->gpus, "usage", usage_json(&q->u), "cost_per_gpu_hour",
      num(cx->usd_per_gpu_hour), "target", "hardware", px->hw->name, "speed_ratio",
      num(px->speed), "cost_per_gpu_hour", num(px->usd_per_gpu_hour), "reasons", reasons,
      "expected", expected, "basis", basis, "alternatives", alts, "thresholds",
      "target_utilization_percent", MX_TARGET_UTIL, "tolerance", MX_TOLERANCE, "assumptions",
      json_incref(q->assumptions));
  free(opts);
}

static void pd_vm(struct rec_job *j, struct pd_req *q) {
  enum mx_action act;
  int want;
  double ratio;
  const char *driver;
  mx_vm_decide(&q->u, (int)q->instances, &act, &want, &ratio, &driver);
  const char *label = act == MX_SCALE_OUT ? "SCALE_OUT" : act == MX_SCALE_IN ? "SCALE_IN"
                                                                              : "MAINTAIN";
  double k = q->instances / want; /* each figure scales with load per VM */
  struct mx_usage pu = {q->u.gpu_util * k, q->u.gpu_mem * k, q->u.cpu_util * k, q->u.cpu_mem * k};
  json_t *reasons = json_array();
  char line[300];
  snprintf(line, sizeof line,
           "%s is the binding figure at %.0f %% of the %.0f %% target; desired VMs = "
           "ceil(%d × %.2f) = %d, unchanged within a tolerance of %.0f %%",
           driver, ratio * 100, MX_TARGET_UTIL, (int)q->instances, ratio,
           (int)ceil(q->instances * ratio - 1e-9) < 1 ? 1 : (int)ceil(q->instances * ratio - 1e-9),
           MX_TOLERANCE * 100);
  json_array_append_new(reasons, json_string(line));
  if (act == MX_MAINTAIN && q->instances == 1 && ratio < 1 - MX_TOLERANCE)
    json_array_append_new(reasons, json_string("one VM cannot scale in; a smaller VM size may fit"));
  double vm_hour = NAN;
  if (q->hw) {
    const struct mx_instance *in =
        mx_catalog_instance(j->mc->cat, q->hw->name, q->provider, q->region);
    if (in) vm_hour = in->usd_per_hour;
  }
  json_t *expected = json_pack("{s:o,s:o,s:o}", "usage", usage_json(&pu), "cost_per_1000",
                               num(q->cost_per_1000 * want / q->instances),
                               "monthly_cost_change_usd",
                               num((want - q->instances) * vm_hour * 730));
  j->data = json_pack("{s:s,s:s,s:I,s:i,s:s,s:f,s:o,s:o,s:o,s:{s:f,s:f},s:o}", "deployment_type",
                      "vm", "recommendation", label, "current_instances",
                      (json_int_t)q->instances, "recommended_instances", want, "driver", driver,
                      "utilization_ratio", ratio, "usage", usage_json(&q->u), "reasons", reasons,
                      "expected", expected, "thresholds", "target_utilization_percent",
                      MX_TARGET_UTIL, "tolerance", MX_TOLERANCE, "assumptions",
                      json_incref(q->assumptions));
}

static void post_deployment_work(void *arg) {
  struct rec_job *j = arg;
  struct pd_req q;
  if (pd_parse(j, &q) == 0) {
    struct mx_factors f;
    double li, lt;
    char err[256] = "";
    if (q.vm) pd_vm(j, &q);
    else if (matrix_factors(j->mc, &f, &li, &lt, err, sizeof err))
      mx_error_set(&j->err, 503, "MODEL_UNAVAILABLE", NULL,
                   "the performance model could not be fitted: %s", err);
    else pd_bare_metal(j, &q, &f);
    if (j->data)
      j->meta = json_pack("{s:s}", "model_version", "matrix-rules-1");
    else if (!j->err.status)
      mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
  }
  json_decref(q.assumptions);
}

void matrix_handle_post_deployment(struct http_req *r) { rec_start(r, post_deployment_work); }

/* ---- optimization-recommendation ------------------------------------------- */

/* What each choice risks in accuracy, with its evidence (docs/matrix.md
 * cites them in full). */
struct risk {
  const char *level, *evidence;
};

static const struct risk precision_risk[MX_OPT_N] = {
    {"none", "the reference: full-precision weights and arithmetic"},
    {"negligible",
     "16-bit weights are the standard serving format; models trained in mixed precision are "
     "evaluated in 16 bit (Micikevicius et al. 2018, 'Mixed Precision Training')"},
    {"low",
     "LLM.int8() (Dettmers et al. 2022) keeps OPT up to 175B at FP16 perplexity and zero-shot "
     "accuracy by keeping outlier features in 16 bit; plain absmax INT8 degrades from about "
     "6.7B parameters, where those outliers emerge. SmoothQuant (Xiao et al. 2023) reaches "
     "FP16 accuracy with INT8 weights and activations on OPT-175B, BLOOM-176B and GLM-130B"},
    {"moderate",
     "GPTQ (Frantar et al. 2023) quantises OPT-175B and BLOOM-176B weights to 4 bits with a "
     "small perplexity increase, the loss growing as models get smaller; AWQ (Lin et al. 2024) "
     "lowers the 4-bit weight-only loss further, also for instruction-tuned models. Check the "
     "task's own metric before deploying"},
};

static const struct risk method_risk[] = {
    [MX_QUANTIZATION] = {"see the precision", "post-training, no retraining (GPTQ, AWQ, "
                                              "LLM.int8(), SmoothQuant)"},
    [MX_PRUNING] = {"moderate",
                    "SparseGPT (Frantar & Alistarh 2023) prunes OPT-175B and BLOOM-176B to 50 % "
                    "unstructured sparsity in one shot with a small perplexity increase, more on "
                    "smaller models; 2:4 structured sparsity, which the tensor cores of Ampere "
                    "and later GPUs run at up to twice the dense rate, keeps accuracy after "
                    "fine-tuning across vision, speech and language networks (Mishra et al. "
                    "2021, 'Accelerating Sparse Deep Neural Networks')"},
    [MX_DISTILLATION] = {"moderate to high; needs training",
                         "DistilBERT (Sanh et al. 2019) has half BERT-base's layers, is 40 % "
                         "smaller and 60 % faster, and keeps 97 % of its GLUE score; the student "
                         "must be trained on the teacher's outputs"},
};

/* The configuration simulate chose for body (its last: the smallest GPU
 * count that fits, or the count asked for); NULL with *code set when it
 * refused. */
static json_t *simulate_one(struct rec_job *j, json_t *body, json_t **sim, json_t **meta,
                            struct mx_error *why) {
  if (matrix_simulate_json(j->m, j->mc, body, 0, sim, meta, why)) return NULL;
  json_t *cf = json_object_get(*sim, "configurations");
  return json_array_get(cf, json_array_size(cf) - 1);
}

/* The effect of a configuration against the current one's. */
static json_t *effect_json(json_t *c, json_t *cur) {
  double mem = json_number_value(json_object_get(json_object_get(c, "memory"), "per_gpu_gb")) *
               json_number_value(json_object_get(c, "gpu_count"));
  double mem0 =
      json_number_value(json_object_get(json_object_get(cur, "memory"), "per_gpu_gb")) *
      json_number_value(json_object_get(cur, "gpu_count"));
  double lat = json_number_value(
      json_object_get(json_object_get(c, "performance_metrics"), "latency_ms"));
  double lat0 = json_number_value(
      json_object_get(json_object_get(cur, "performance_metrics"), "latency_ms"));
  json_t *cv = json_object_get(json_object_get(c, "cost_analysis"), "cost_per_1000_inferences");
  json_t *cv0 =
      json_object_get(json_object_get(cur, "cost_analysis"), "cost_per_1000_inferences");
  double cost = json_is_number(cv) ? json_number_value(cv) : NAN;
  double cost0 = json_is_number(cv0) ? json_number_value(cv0) : NAN;
  return json_pack("{s:O,s:o,s:o,s:o,s:o,s:o,s:o,s:O,s:O}", "gpu_count",
                   json_object_get(c, "gpu_count"), "memory_gb", num(mem), "memory_ratio",
                   num(mem / mem0), "latency_ms", num(lat), "latency_ratio", num(lat / lat0),
                   "cost_per_1000_inferences", num(cost), "cost_ratio", num(cost / cost0),
                   "fits", json_object_get(json_object_get(c, "memory"), "fits"), "unmet",
                   json_object_get(c, "unmet"));
}

/* A model variant simulated in place of the original: the original's
 * shapes with `params_scale` of its parameters and `layers_scale` of its
 * layers (a pruned or distilled model). */
static json_t *variant_body(json_t *base, const struct mx_model *m, double params_scale,
                            double layers_scale, const char *suffix, const char *precision) {
  json_t *b = json_deep_copy(base);
  char name[MX_NAME_MAX + 16];
  snprintf(name, sizeof name, "%s-%s", m->name, suffix);
  int layers = (int)(m->layers * layers_scale);
  json_object_set_new(b, "model_name", json_string(name));
  json_object_set_new(b, "parameters_millions", json_real(m->params_b * 1e3 * params_scale));
  json_object_set_new(b, "num_layers", json_integer(layers < 1 ? 1 : layers));
  json_object_set_new(b, "hidden_size", json_integer(m->hidden));
  json_object_set_new(b, "num_attention_heads", json_integer(m->heads));
  json_object_set_new(b, "num_key_value_heads", json_integer(m->kv_heads));
  json_object_set_new(b, "head_dim", json_integer(m->head_dim));
  if (m->intermediate > 0)
    json_object_set_new(b, "intermediate_size", json_integer(m->intermediate));
  if (m->vocab > 0) json_object_set_new(b, "vocab_size", json_integer(m->vocab));
  if (m->max_context > 0) json_object_set_new(b, "max_context", json_integer(m->max_context));
  json_object_set_new(b, "architecture_type",
                      json_string(!strcmp(m->architecture, "encoder") ? "encoder" : "decoder"));
  json_object_set_new(b, "precision", json_string(precision));
  json_object_del(b, "gpu_count");
  json_object_del(b, "tensor_parallel");
  return b;
}

static void optimization_work(void *arg) {
  struct rec_job *j = arg;
  json_t *o = j->body, *base = NULL, *sims[MX_OPT_N] = {0}, *metas[MX_OPT_N] = {0};
  json_t *cfg[MX_OPT_N] = {0}, *extra_sim = NULL, *extra_meta = NULL;
  const char *s = NULL;
  /* the current precision (the seed's model_info.precision) */
  enum mx_opt_precision cur = MX_OPT_FP16;
  int given = str_field(j, o, "precision", &s);
  if (given < 0) return;
  if (given) {
    int k;
    for (k = 0; k < MX_OPT_N && strcasecmp(s, mx_opt_precision_name(k)); k++) {}
    if (k == MX_OPT_N && !strcasecmp(s, "BF16")) k = MX_OPT_FP16;
    if (k == MX_OPT_N) {
      mx_error_set(&j->err, 400, "INVALID_PRECISION", json_pack("{s:s}", "field", "precision"),
                   "precision must be FP32, FP16 (or BF16), INT8 or INT4");
      return;
    }
    cur = (enum mx_opt_precision)k;
  }
  enum mx_tolerance tol = MX_TOL_MODERATE;
  s = NULL;
  if (str_field(j, o, "accuracy_tolerance", &s) < 0) return;
  if (s && !strcasecmp(s, "none")) tol = MX_TOL_NONE;
  else if (s && !strcasecmp(s, "strict")) tol = MX_TOL_STRICT;
  else if (s && !strcasecmp(s, "relaxed")) tol = MX_TOL_RELAXED;
  else if (s && strcasecmp(s, "moderate")) {
    mx_error_set(&j->err, 400, "VALIDATION_ERROR",
                 json_pack("{s:s}", "field", "accuracy_tolerance"),
                 "accuracy_tolerance must be none, strict, moderate or relaxed");
    return;
  }
  /* the hardware: hardware or current_hardware_id, else the documented default */
  const char *hw = NULL, *hwid = NULL;
  if (str_field(j, o, "hardware", &hw) < 0 || str_field(j, o, "current_hardware_id", &hwid) < 0)
    return;
  json_t *assumptions = json_array();
  if (!s) json_array_append_new(assumptions, json_string("accuracy_tolerance = moderate"));
  if (!given) json_array_append_new(assumptions, json_string("precision (current) = FP16"));
  base = json_deep_copy(o);
  if (!base) goto oom;
  if (!hw && !hwid) {
    json_object_set_new(base, "hardware", json_string("A100-SXM4-80GB"));
    json_array_append_new(assumptions, json_string("hardware = A100-SXM4-80GB"));
  } else if (!hw) {
    json_object_set_new(base, "hardware", json_string(hwid));
  }
  json_object_del(base, "task_type"); /* inference: what quantised models serve */
  /* each precision, as simulate answers it */
  struct mx_opt_eval ev[MX_OPT_N];
  struct mx_error why = {0};
  for (int p = 0; p < MX_OPT_N; p++) {
    json_t *b = json_deep_copy(base);
    if (!b) goto oom;
    json_object_set_new(b, "precision", json_string(mx_opt_precision_name(p)));
    struct mx_error pf = {0};
    cfg[p] = simulate_one(j, b, &sims[p], &metas[p], &pf);
    json_decref(b);
    ev[p] = (struct mx_opt_eval){.simulated = cfg[p] != NULL};
    if (!cfg[p]) {
      if (pf.status != 422 || strcmp(pf.code, "UNSUPPORTED_HARDWARE")) {
        /* the request itself is wrong: say so, once */
        mx_error_move(&why, &pf);
        break;
      }
      mx_error_release(&pf);
      continue;
    }
    json_t *cv = json_object_get(json_object_get(cfg[p], "cost_analysis"),
                                 "cost_per_1000_inferences");
    ev[p].fits = json_is_true(json_object_get(json_object_get(cfg[p], "memory"), "fits"));
    ev[p].meets = json_is_true(json_object_get(cfg[p], "meets_requirements"));
    ev[p].cost = json_is_number(cv) ? json_number_value(cv) : NAN;
  }
  if (why.status) {
    mx_error_move(&j->err, &why);
    goto out;
  }
  if (!cfg[cur]) {
    mx_error_set(&j->err, 422, "UNSUPPORTED_HARDWARE", NULL,
                 "the hardware cannot run the current precision %s (no published peak)",
                 mx_opt_precision_name(cur));
    goto out;
  }
  json_t *curc = cfg[cur];
  const char *hwname = json_string_value(json_object_get(curc, "hardware"));
  const struct mx_hw *h = mx_catalog_hw(j->mc->cat, hwname);
  json_t *pm = json_object_get(curc, "performance_metrics");
  double ttft = json_number_value(json_object_get(pm, "time_to_first_token_ms"));
  double lat = json_number_value(json_object_get(pm, "latency_ms"));
  int compute_bound = !strcmp(json_string_value(json_object_get(pm, "prefill_bound")), "compute") &&
                      ttft >= 0.5 * lat;
  int sparse_hw = h && (!strcmp(h->family, "ampere") || !strcmp(h->family, "hopper") ||
                        !strcmp(h->family, "ada"));
  enum mx_opt_precision prec;
  enum mx_method method;
  int change;
  if (mx_opt_decide(ev, cur, tol, compute_bound && sparse_hw, &prec, &method, &change)) {
    mx_error_set(&j->err, 422, "UNSUPPORTED_HARDWARE", NULL,
                 "the hardware runs none of the precisions the tolerance allows");
    goto out;
  }
  /* every precision with its effect against the current one */
  json_t *precisions = json_array();
  for (int p = 0; p < MX_OPT_N; p++) {
    json_t *e = cfg[p] ? effect_json(cfg[p], curc) : json_null();
    json_array_append_new(
        precisions,
        json_pack("{s:s,s:b,s:b,s:o,s:{s:s,s:s}}", "precision", mx_opt_precision_name(p),
                  "simulated", ev[p].simulated, "meets_requirements", ev[p].meets, "effect", e,
                  "accuracy_risk", "level", precision_risk[p].level, "evidence",
                  precision_risk[p].evidence));
  }
  /* the chosen method's predicted effect: quantization is the chosen
   * precision's; pruning and distillation are simulated as smaller models */
  const struct mx_model *md = NULL;
  json_t *mn = json_object_get(json_object_get(sims[cur], "model"), "model_name");
  if (json_is_string(mn)) md = mx_catalog_model(j->mc->cat, json_string_value(mn));
  struct mx_model custom;
  if (!md) { /* a model given by its shapes: read them back from simulate's answer */
    json_t *mj = json_object_get(sims[cur], "model"), *ar = json_object_get(mj, "architecture");
    memset(&custom, 0, sizeof custom);
    snprintf(custom.name, sizeof custom.name, "%s", json_is_string(mn) ? json_string_value(mn)
                                                                        : "custom");
    snprintf(custom.architecture, sizeof custom.architecture, "%s",
             json_string_value(json_object_get(mj, "architecture_type")));
    custom.params_b = json_number_value(json_object_get(mj, "total_parameters_millions")) / 1e3;
    custom.layers = (int)json_integer_value(json_object_get(ar, "num_layers"));
    custom.hidden = (int)json_integer_value(json_object_get(ar, "hidden_size"));
    custom.heads = (int)json_integer_value(json_object_get(ar, "num_attention_heads"));
    custom.kv_heads = (int)json_integer_value(json_object_get(ar, "num_key_value_heads"));
    custom.head_dim = (int)json_integer_value(json_object_get(ar, "head_dim"));
    custom.intermediate = (int)json_integer_value(json_object_get(ar, "intermediate_size"));
    custom.max_context = (int)json_integer_value(json_object_get(ar, "max_context"));
    md = &custom;
  }
  json_t *effect = NULL;
  const char *how;
  if (method == MX_QUANTIZATION) {
    effect = effect_json(cfg[prec], curc);
    how = change ? "the model served at the recommended precision"
                 : "nothing to change: the current precision is already the best the accuracy "
                   "tolerance allows";
  } else {
    int prune = method == MX_PRUNING;
    json_t *b = variant_body(base, md, 0.5, prune ? 1.0 : 0.5, prune ? "pruned" : "student",
                             mx_opt_precision_name(prec));
    struct mx_error vf = {0};
    json_t *vc = b ? simulate_one(j, b, &extra_sim, &extra_meta, &vf) : NULL;
    json_decref(b);
    mx_error_release(&vf);
    effect = vc ? effect_json(vc, curc) : json_null();
    how = prune ? "an upper bound: half the parameters removed (2:4) with ideal sparse kernels; "
                  "measured speed-ups are lower"
                : "a student with half the layers and half the parameters (DistilBERT's "
                  "recipe), at the recommended precision";
  }
  json_t *smaller = json_array(); /* catalogue models of the family a student could copy */
  for (size_t i = 0; method == MX_DISTILLATION && i < j->mc->cat->n_models; i++) {
    const struct mx_model *x = &j->mc->cat->models[i];
    if (md != &custom && !strcmp(x->family, md->family) && x->params_b < md->params_b)
      json_array_append_new(smaller, json_string(x->name));
  }
  j->data = json_pack(
      "{s:O,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:b,s:o,s:s,s:{s:s,s:s}},s:o,s:o,s:{s:b,s:b},s:o}",
      "model", json_object_get(sims[cur], "model"), "hardware", hwname, "current_precision",
      mx_opt_precision_name(cur), "accuracy_tolerance",
      tol == MX_TOL_NONE       ? "none"
      : tol == MX_TOL_STRICT   ? "strict"
      : tol == MX_TOL_RELAXED  ? "relaxed"
                               : "moderate",
      "method", mx_method_name(method), "precision", mx_opt_precision_name(prec),
      "recommendation", "method", mx_method_name(method), "precision",
      mx_opt_precision_name(prec), "change", change, "predicted_effect", effect, "basis", how,
      "accuracy_risk", "level",
      method == MX_QUANTIZATION ? precision_risk[prec].level : method_risk[method].level,
      "evidence",
      method == MX_QUANTIZATION ? precision_risk[prec].evidence : method_risk[method].evidence,
      "smaller_models_in_family", smaller, "precisions", precisions, "workload",
      "compute_bound", compute_bound, "sparse_tensor_cores", sparse_hw, "assumptions",
      assumptions);
  assumptions = NULL;
  j->meta = json_incref(metas[cur]);
  if (!j->data) mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
out:
  json_decref(assumptions);
  json_decref(base);
  json_decref(extra_sim);
  json_decref(extra_meta);
  for (int p = 0; p < MX_OPT_N; p++) {
    json_decref(sims[p]);
    json_decref(metas[p]);
  }
  return;
oom:
  mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
  goto out;
}

void matrix_handle_optimization(struct http_req *r) { rec_start(r, optimization_work); }
