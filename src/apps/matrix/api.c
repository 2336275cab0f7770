/* api.c — matrix's routes: the performance simulation (seed 003 §6.1.2,
 * POST /api/model/simulate-performance) and the catalogue reads
 * (GET /api/hardware-specs, /api/model/get-model-data,
 * /api/cost-models/regions; /api/cost-models itself is costs.c's).
 *
 * A simulation is parsed on the loop and computed on the worker pool: the
 * first one also fits the model's factors (matrix_factors), which takes
 * about a second. Every default a request leaves out is named in the
 * answer's data.assumptions (docs/matrix.md lists them). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/matrix/figures.h"
#include "apps/matrix/matrix.h"
#include "apps/matrix/simulate.h"
#include "core/error.h"
#include "core/util.h"
#include "net/http.h"

/* Hours in a month, for a monthly budget (365 × 24 / 12). */
#define HOURS_PER_MONTH 730.0
/* Tokens per parameter when a training request names none (Hoffmann et
 * al. 2022, "Training Compute-Optimal Large Language Models"). */
#define CHINCHILLA_TOKENS_PER_PARAM 20.0
/* Default region when no instance of the hardware is catalogued. */
#define DEFAULT_PROVIDER "onprem"
#define DEFAULT_REGION "us-virginia"

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }
static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

/* ---- catalogue rows as JSON ------------------------------------------------ */

static json_t *aliases_json(const char *aliases) {
  json_t *a = json_array();
  for (const char *p = aliases ? aliases : ""; *p;) {
    size_t n = strcspn(p, ",");
    if (n) json_array_append_new(a, json_stringn(p, n));
    p += n;
    if (*p == ',') p++;
  }
  return a;
}

static json_t *instance_json(const struct mx_instance *in, size_t id) {
  return json_pack("{s:I,s:s,s:s,s:s,s:s,s:i,s:o,s:o,s:o,s:o,s:i,s:s}", "id", (json_int_t)id,
                   "hardware_type", in->hardware, "provider", in->provider, "region", in->region,
                   "instance", in->instance, "gpu_count", in->gpu_count, "vcpus", num(in->vcpus),
                   "memory_gib", num(in->memory_gib), "cost_per_hour", num(in->usd_per_hour),
                   "cost_per_gpu_hour", num(in->usd_per_hour / in->gpu_count), "year", in->year,
                   "source", in->source);
}

static json_t *region_json(const struct mx_region *g) {
  return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "provider", g->provider,
                   "region", g->region, "location", g->location, "electricity_usd_per_kwh",
                   num(g->electricity_usd_per_kwh), "electricity_year",
                   g->electricity_year ? json_integer(g->electricity_year) : json_null(),
                   "electricity_source", str_or_null(g->electricity_source), "carbon_g_per_kwh",
                   num(g->carbon_g_per_kwh), "carbon_year",
                   g->carbon_year ? json_integer(g->carbon_year) : json_null(), "carbon_source",
                   str_or_null(g->carbon_source), "pue", num(g->pue), "pue_year",
                   g->pue_year ? json_integer(g->pue_year) : json_null(), "pue_source",
                   str_or_null(g->pue_source));
}

json_t *matrix_instance_json(const struct mx_instance *in, size_t id) {
  return instance_json(in, id);
}

json_t *matrix_region_json(const struct mx_region *g) { return region_json(g); }

/* hardware_specs of seed §5.1.1: specifications, performance_metrics,
 * cost_data. */
static json_t *hardware_json(const struct mx_catalog *c, const struct mx_hw *h) {
  json_t *inst = json_array();
  for (size_t i = 0; i < c->n_instances; i++)
    if (mx_catalog_hw(c, c->instances[i].hardware) == h)
      json_array_append_new(inst, instance_json(&c->instances[i], i + 1));
  json_t *spec = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "memory_gb", num(h->memory_gb),
                           "memory_bandwidth_gbs", num(h->memory_bw_gbs), "interconnect",
                           str_or_null(h->link), "interconnect_gbs", num(h->link_gbs), "pcie_gbs",
                           num(h->pcie_gbs), "tdp_w", num(h->tdp_w), "idle_w", num(h->idle_w),
                           "cpu_cores", num(h->cpu_cores));
  json_t *perf = json_pack("{s:o,s:o,s:o,s:o,s:o,s:b}", "fp32_tflops", num(h->fp32_tflops),
                           "fp16_tflops", num(h->fp16_tflops), "bf16_tflops", num(h->bf16_tflops),
                           "fp8_tflops", num(h->fp8_tflops), "int8_tops", num(h->int8_tops),
                           "dense", 1);
  return json_pack("{s:I,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:{s:o},s:i,s:s}", "id",
                   (json_int_t)(h - c->hw + 1), "hardware_name", h->name, "kind", h->kind,
                   "vendor", h->vendor, "family", h->family, "aliases", aliases_json(h->aliases),
                   "specifications", spec, "performance_metrics", perf, "cost_data", "instances",
                   inst, "year", h->year, "source", h->source);
}

/* model_info of seed §5.1.1, with the shapes the model uses. */
static json_t *model_json(const struct mx_model *m, long id) {
  int enc = !strcmp(m->architecture, "encoder");
  json_t *arch = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "num_layers", m->layers,
                           "hidden_size", m->hidden, "num_attention_heads", m->heads,
                           "num_key_value_heads", m->kv_heads, "head_dim", m->head_dim,
                           "intermediate_size", m->intermediate, "vocab_size", m->vocab,
                           "num_experts", m->experts, "experts_per_token", m->experts_per_token,
                           "max_context", m->max_context);
  /* every catalogued model is published as a PyTorch checkpoint (Hugging
   * Face transformers; a model given by its shapes: unknown);
   * parameters_millions is the seed's ER name of total_parameters_millions */
  return json_pack("{s:o,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:s,s:s,s:o,s:o,s:o}", "id",
                   id > 0 ? json_integer(id) : json_null(), "model_name", m->name, "family",
                   m->family, "framework", id > 0 ? json_string("PyTorch") : json_null(), "parameters_millions",
                   num(m->params_b * 1e3), "total_parameters_millions", num(m->params_b * 1e3),
                   "active_parameters_millions", num(m->active_params_b * 1e3),
                   /* 16-bit weights, decimal MB */
                   "model_size_mb", num(m->params_b * 1e9 * 2 / 1e6), "precision", "FP16",
                   "architecture_type", m->architecture, "task_type",
                   enc ? "encoding" : "text-generation", "architecture", arch, "year",
                   m->year ? json_integer(m->year) : json_null(), "source",
                   str_or_null(m->source));
}

/* The current catalogue, with a reference the handler gives back with
 * matrix_cat_put; or NULL after answering 503 when no catalogue was found
 * at start (--matrix-data auto found none). */
static struct matrix_cat *cat_of(struct http_req *r) {
  struct matrix_cat *c = matrix_cat_get(r->app);
  if (!c)
    http_reply_error(r, 503, "CATALOGUE_UNAVAILABLE",
                     "matrix's catalogues were not found at start (see --matrix-data)", NULL);
  return c;
}

static void reply_list(struct http_req *r, json_t *list) {
  if (!list) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  http_reply_data(r, 200, list, json_pack("{s:I}", "count", (json_int_t)json_array_size(list)));
}

void matrix_handle_hardware_list(struct http_req *r) {
  struct matrix_cat *mc = cat_of(r);
  if (!mc) return;
  const struct mx_catalog *cat = mc->cat;
  json_t *list = json_array();
  for (size_t i = 0; list && i < cat->n_hw; i++)
    json_array_append_new(list, hardware_json(cat, &cat->hw[i]));
  reply_list(r, list);
  matrix_cat_put(r->app, mc);
}

void matrix_handle_hardware(struct http_req *r) {
  struct matrix_cat *mc = cat_of(r);
  if (!mc) return;
  const struct mx_catalog *cat = mc->cat;
  const struct mx_hw *h = mx_catalog_hw(cat, http_param(r, "name"));
  if (!h) {
    http_reply_error(r, 404, "NOT_FOUND", "no such hardware in the catalogue", NULL);
    matrix_cat_put(r->app, mc);
    return;
  }
  http_reply_data(r, 200, hardware_json(cat, h), NULL);
  matrix_cat_put(r->app, mc);
}

void matrix_handle_models(struct http_req *r) {
  struct matrix_cat *mc = cat_of(r);
  if (!mc) return;
  const struct mx_catalog *cat = mc->cat;
  char name[MX_NAME_MAX * 2];
  int has = http_query_str(r, "model_name", name, sizeof name, "INVALID_QUERY");
  if (has < 0) {
    matrix_cat_put(r->app, mc);
    return;
  }
  if (has) {
    const struct mx_model *md = mx_catalog_model(cat, name);
    if (!md) {
      http_reply_error(r, 404, "NOT_FOUND", "no such model in the catalogue", NULL);
      matrix_cat_put(r->app, mc);
      return;
    }
    http_reply_data(r, 200, model_json(md, md - cat->models + 1), NULL);
    matrix_cat_put(r->app, mc);
    return;
  }
  json_t *list = json_array();
  for (size_t i = 0; list && i < cat->n_models; i++)
    json_array_append_new(list, model_json(&cat->models[i], (long)i + 1));
  reply_list(r, list);
  matrix_cat_put(r->app, mc);
}

void matrix_handle_regions(struct http_req *r) {
  struct matrix_cat *mc = cat_of(r);
  if (!mc) return;
  const struct mx_catalog *cat = mc->cat;
  json_t *list = json_array();
  for (size_t i = 0; list && i < cat->n_regions; i++)
    json_array_append_new(list, region_json(&cat->regions[i]));
  reply_list(r, list);
  matrix_cat_put(r->app, mc);
}

/* ---- the simulation request ------------------------------------------------ */

struct sim_req {
  int training;
  const struct mx_model *model;
  struct mx_model custom;        /* a model given by its shapes */
  enum mx_precision precision, kv_precision;
  const struct mx_hw *hw;        /* NULL: every catalogue GPU */
  const struct mx_region *region;/* NULL: the instance's, else the default */
  char provider[16];
  long gpu_count, tp, pp;        /* 0: not given */
  long batch, input_len, output_len;
  int batch_given, output_given, input_given;
  double tokens;
  long seq_len, global_batch, micro_batch, zero_stage;
  enum mx_recompute recompute;
  int flash;
  double max_latency_ms, min_qps, budget;  /* NAN: no requirement */
  int every;                     /* every catalogue configuration (recommend.c) */
  json_t *assumptions;
};

struct sim_job {
  struct matrix *m;
  struct matrix_cat *mc;         /* the catalogue version used (a reference) */
  const struct mx_catalog *cat;  /* mc->cat */
  json_t *body;                  /* the request (owned) */
  struct sim_req q;
  json_t *data, *meta;           /* the answer, or: */
  struct mx_error err;
};

/* The first of the names present in o, or NULL. */
static json_t *field(json_t *o, const char *a, const char *b, const char **name) {
  json_t *v = json_object_get(o, a);
  *name = a;
  if (!v && b) {
    v = json_object_get(o, b);
    *name = b;
  }
  return json_is_null(v) ? NULL : v;
}

/* An integer field in [lo, hi]: 0 absent, 1 present (*out set), −1 bad. */
static int get_int(struct sim_job *j, json_t *o, const char *a, const char *b, long lo, long hi,
                   long *out) {
  const char *name;
  json_t *v = field(o, a, b, &name);
  if (!v) return 0;
  double d = json_is_integer(v) ? (double)json_integer_value(v)
             : json_is_real(v)  ? json_real_value(v)
                                : NAN;
  if (!(d == floor(d)) || d < lo || d > hi)
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", name),
                        "field '%s' must be an integer in %ld..%ld", name, lo, hi);
  *out = (long)d;
  return 1;
}

static int get_num(struct sim_job *j, json_t *o, const char *a, double lo, double hi,
                   double *out) {
  const char *name;
  json_t *v = field(o, a, NULL, &name);
  if (!v) return 0;
  if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi))
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", name),
                        "field '%s' must be a number in %g..%g", name, lo, hi);
  *out = json_number_value(v);
  return 1;
}

static int get_str(struct sim_job *j, json_t *o, const char *a, const char *b, const char **out) {
  const char *name;
  json_t *v = field(o, a, b, &name);
  if (!v) return 0;
  if (!json_is_string(v) || json_string_length(v) > 200)
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", name),
                        "field '%s' must be a string of at most 200 bytes", name);
  *out = json_string_value(v);
  return 1;
}

static void assume(struct sim_req *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void assume(struct sim_req *q, const char *fmt, ...) {
  char line[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  json_array_append_new(q->assumptions, json_string(line));
}

/* The model's own fields of the payload. Each is checked whether or not
 * it is used (a catalogue model ignores them): a wrong one is refused,
 * never passed over. */
struct specs {
  double params, size_mb;
  long layers, hidden, heads, kvh, hd, inter, vocab, ctx;
  const char *arch, *framework;
};

static int model_specs(struct sim_job *j, struct specs *p) {
  json_t *o = j->body;
  *p = (struct specs){.params = NAN, .size_mb = NAN, .arch = "decoder"};
  if (get_num(j, o, "parameters_millions", 0.001, 1e8, &p->params) < 0 ||
      get_num(j, o, "model_size_mb", 0.001, 1e12, &p->size_mb) < 0 ||
      get_int(j, o, "num_layers", NULL, 1, 100000, &p->layers) < 0 ||
      get_int(j, o, "hidden_size", NULL, 1, 10000000, &p->hidden) < 0 ||
      get_int(j, o, "num_attention_heads", NULL, 1, 100000, &p->heads) < 0 ||
      get_int(j, o, "num_key_value_heads", NULL, 1, 100000, &p->kvh) < 0 ||
      get_int(j, o, "head_dim", NULL, 1, 100000, &p->hd) < 0 ||
      get_int(j, o, "intermediate_size", NULL, 1, 100000000, &p->inter) < 0 ||
      get_int(j, o, "vocab_size", NULL, 1, 100000000, &p->vocab) < 0 ||
      get_int(j, o, "max_context", NULL, 1, MX_LEN_MAX, &p->ctx) < 0 ||
      get_str(j, o, "architecture_type", NULL, &p->arch) < 0 ||
      get_str(j, o, "framework", NULL, &p->framework) < 0)
    return -1;
  return 0;
}

/* A model not in the catalogue, from the shapes the request gives. */
static int custom_model(struct sim_job *j, const char *name, const struct specs *p) {
  struct sim_req *q = &j->q;
  struct mx_model *m = &q->custom;
  double params = p->params;
  long layers = p->layers, hidden = p->hidden, heads = p->heads, kvh = p->kvh, hd = p->hd,
       inter = p->inter, vocab = p->vocab, ctx = p->ctx;
  json_t *missing = json_array();
  if (!isfinite(params)) json_array_append_new(missing, json_string("parameters_millions"));
  if (!layers) json_array_append_new(missing, json_string("num_layers"));
  if (!hidden) json_array_append_new(missing, json_string("hidden_size"));
  if (!heads) json_array_append_new(missing, json_string("num_attention_heads"));
  if (json_array_size(missing)) {
    /* the seed's INVALID_MODEL_SPECS: what is missing, and the catalogue
     * model nearest in size as a suggestion */
    const struct mx_model *near = NULL;
    for (size_t i = 0; isfinite(params) && i < j->cat->n_models; i++) {
      const struct mx_model *c = &j->cat->models[i];
      if (!near || fabs(log(c->params_b * 1e3 / params)) < fabs(log(near->params_b * 1e3 / params)))
        near = c;
    }
    json_t *names = json_array();
    for (size_t i = 0; i < j->cat->n_models; i++)
      json_array_append_new(names, json_string(j->cat->models[i].name));
    json_t *sugg = near ? json_pack("{s:s,s:o}", "model_name", near->name, "catalogue", names)
                        : json_pack("{s:o}", "catalogue", names);
    return mx_error_set(&j->err, 422, "INVALID_MODEL_SPECS",
                        json_pack("{s:o,s:o}", "missing_fields", missing, "suggested_values", sugg),
                        "model '%s' is not in the catalogue and its specifications are incomplete",
                        name ? name : "");
  }
  json_decref(missing);
  memset(m, 0, sizeof *m);
  snprintf(m->name, sizeof m->name, "%s", name ? name : "custom");
  const char *arch = p->arch;
  snprintf(m->architecture, sizeof m->architecture, "%s",
           !strcasecmp(arch, "encoder") ? "encoder" : "decoder");
  snprintf(m->family, sizeof m->family, "custom");
  m->params_b = m->active_params_b = params / 1e3;
  m->layers = (int)layers;
  m->hidden = (int)hidden;
  m->heads = (int)heads;
  m->kv_heads = (int)(kvh ? kvh : heads);
  m->head_dim = (int)(hd ? hd : hidden / heads);
  m->intermediate = (int)(inter ? inter : 4 * hidden);
  m->vocab = (int)vocab;
  m->max_context = (int)(ctx ? ctx : MX_LEN_MAX);
  if (m->kv_heads > m->heads || m->heads % m->kv_heads || m->head_dim < 1)
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR", NULL,
                        "num_key_value_heads must divide num_attention_heads");
  if (!hd) assume(q, "head_dim = hidden_size / num_attention_heads = %d", m->head_dim);
  if (!inter) assume(q, "intermediate_size = 4 × hidden_size = %d", m->intermediate);
  q->model = m;
  return 0;
}

static int parse(struct sim_job *j) {
  struct sim_req *q = &j->q;
  json_t *o = j->body;
  const struct mx_catalog *c = j->cat;
  q->assumptions = json_array();
  q->max_latency_ms = q->min_qps = q->budget = NAN;

  const char *s = NULL;
  if (get_str(j, o, "task_type", NULL, &s) < 0) return -1;
  if (s && strcasecmp(s, "inference") && strcasecmp(s, "training"))
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", "task_type"),
                        "task_type must be Inference or Training");
  q->training = s && !strcasecmp(s, "training");
  if (!s) assume(q, "task_type = Inference");

  const char *name = NULL;
  if (get_str(j, o, "model_name", "model", &name) < 0) return -1;
  struct specs specs;
  if (model_specs(j, &specs) < 0) return -1;
  q->model = name ? mx_catalog_model(c, name) : NULL;
  if (!q->model && custom_model(j, name, &specs) < 0) return -1;

  s = NULL;
  if (get_str(j, o, "precision", NULL, &s) < 0) return -1;
  q->precision = q->training ? MX_BF16 : MX_FP16;
  if (s && mx_precision_parse(s, &q->precision))
    return mx_error_set(&j->err, 400, "INVALID_PRECISION", json_pack("{s:s}", "field", "precision"),
                        "precision must be FP32, FP16, BF16, FP8, INT8 or INT4");
  if (!s) assume(q, "precision = %s", mx_precision_name(q->precision));
  q->kv_precision = q->precision == MX_FP8 ? MX_FP8 : q->precision == MX_FP32 ? MX_FP32 : MX_FP16;
  s = NULL;
  if (get_str(j, o, "kv_precision", NULL, &s) < 0) return -1;
  if (s && (mx_precision_parse(s, &q->kv_precision) || q->kv_precision == MX_INT4))
    return mx_error_set(&j->err, 400, "INVALID_PRECISION",
                        json_pack("{s:s}", "field", "kv_precision"),
                        "kv_precision must be FP32, FP16, BF16, FP8 or INT8");

  s = NULL;
  if (get_str(j, o, "hardware", "hardware_name", &s) < 0) return -1;
  if (q->every) {
    static const char *const fixed[] = {"hardware", "hardware_name", "gpu_count",
                                        "tensor_parallel", "pipeline_parallel"};
    for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
      if (json_object_get(o, fixed[i]))
        return mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", fixed[i]),
                            "field '%s' does not apply: every catalogue configuration is ranked",
                            fixed[i]);
  }
  if (s) {
    char hw[256];
    snprintf(hw, sizeof hw, "%s", s);
    char *plus = strchr(hw, '+'); /* "L4 + Intel(R) Xeon": the GPU */
    if (plus) *plus = 0;
    q->hw = mx_catalog_hw(c, hw);
    if (!q->hw) {
      json_t *known = json_array();
      for (size_t i = 0; i < c->n_hw; i++) json_array_append_new(known, json_string(c->hw[i].name));
      return mx_error_set(&j->err, 400, "UNKNOWN_HARDWARE", json_pack("{s:o}", "known", known),
                          "hardware '%s' is not in the catalogue", s);
    }
  }
  const char *prov = NULL, *reg = NULL;
  if (get_str(j, o, "provider", NULL, &prov) < 0 || get_str(j, o, "region", NULL, &reg) < 0)
    return -1;
  snprintf(q->provider, sizeof q->provider, "%s", prov ? prov : "");
  if (reg) {
    q->region = mx_catalog_region(c, prov, reg);
    if (!q->region)
      return mx_error_set(&j->err, 400, "UNKNOWN_REGION", NULL,
                          "region '%s' is not in the catalogue", reg);
  }

  if (get_int(j, o, "gpu_count", NULL, 1, MX_GPUS_MAX, &q->gpu_count) < 0 ||
      get_int(j, o, "tensor_parallel", NULL, 1, MX_GPUS_MAX, &q->tp) < 0 ||
      get_int(j, o, "pipeline_parallel", NULL, 1, MX_GPUS_MAX, &q->pp) < 0)
    return -1;
  if (q->gpu_count && q->tp && q->pp && q->tp * q->pp != q->gpu_count && !q->training)
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR", NULL,
                        "gpu_count must be tensor_parallel × pipeline_parallel for inference");

  int enc = !strcmp(q->model->architecture, "encoder");
  int rc;
  if ((rc = get_int(j, o, "batch_size", NULL, 0, MX_BATCH_MAX, &q->batch)) < 0) return -1;
  q->batch_given = rc;
  if ((rc = get_int(j, o, "input_length", "input_len", 1, MX_LEN_MAX, &q->input_len)) < 0)
    return -1;
  q->input_given = rc;
  if ((rc = get_int(j, o, "output_length", "output_len", 0, MX_LEN_MAX, &q->output_len)) < 0)
    return -1;
  q->output_given = rc;
  if (!q->training) {
    if (!q->batch_given) {
      q->batch = 1;
      assume(q, "batch_size = 1");
    }
    if (!q->output_given) {
      q->output_len = enc ? 0 : q->model->max_context >= 256 ? 128 : q->model->max_context / 2;
      assume(q, "output_length = %ld", q->output_len);
    }
    if (!q->input_given) {
      long room = q->model->max_context - q->output_len;
      q->input_len = room < 512 ? room : 512;
      if (q->input_len < 1)
        return mx_error_set(&j->err, 400, "VALIDATION_ERROR", NULL,
                            "output_length leaves no room for input");
      assume(q, "input_length = %ld", q->input_len);
    }
  }

  double tokens = NAN;
  if (get_num(j, o, "training_tokens", 1, 1e16, &tokens) < 0 ||
      get_int(j, o, "sequence_length", NULL, 1, MX_LEN_MAX, &q->seq_len) < 0 ||
      get_int(j, o, "global_batch_size", NULL, 1, MX_BATCH_MAX, &q->global_batch) < 0 ||
      get_int(j, o, "micro_batch_size", NULL, 1, MX_BATCH_MAX, &q->micro_batch) < 0 ||
      get_int(j, o, "zero_stage", NULL, 0, 3, &q->zero_stage) < 0)
    return -1;
  if (q->training) {
    if (!isfinite(tokens)) {
      tokens = CHINCHILLA_TOKENS_PER_PARAM * q->model->params_b * 1e9;
      assume(q, "training_tokens = 20 × parameters = %.4g (Hoffmann et al. 2022)", tokens);
    }
    if (!q->seq_len) {
      q->seq_len = 2048;
      assume(q, "sequence_length = 2048");
    }
    if (!q->micro_batch) {
      q->micro_batch = 1;
      assume(q, "micro_batch_size = 1");
    }
    if (!json_object_get(o, "zero_stage")) {
      q->zero_stage = 3;
      assume(q, "zero_stage = 3 (fully sharded)");
    }
  }
  q->tokens = tokens;
  s = NULL;
  if (get_str(j, o, "recompute", NULL, &s) < 0) return -1;
  q->recompute = MX_RECOMPUTE_NONE;
  if (s) {
    if (!strcasecmp(s, "full")) q->recompute = MX_RECOMPUTE_FULL;
    else if (!strcasecmp(s, "selective")) q->recompute = MX_RECOMPUTE_SELECTIVE;
    else if (strcasecmp(s, "none"))
      return mx_error_set(&j->err, 400, "VALIDATION_ERROR",
                          json_pack("{s:s}", "field", "recompute"),
                          "recompute must be none, selective or full");
  }
  json_t *fa = json_object_get(o, "flash_attention");
  if (fa && !json_is_boolean(fa))
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR",
                        json_pack("{s:s}", "field", "flash_attention"),
                        "flash_attention must be true or false");
  q->flash = !fa || json_is_true(fa);

  json_t *pr = json_object_get(o, "performance_requirements");
  if (pr && !json_is_object(pr) && !json_is_null(pr))
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR",
                        json_pack("{s:s}", "field", "performance_requirements"),
                        "performance_requirements must be an object");
  if (json_is_object(pr) &&
      (get_num(j, pr, "max_latency_ms", 0, 1e12, &q->max_latency_ms) < 0 ||
       get_num(j, pr, "min_throughput_qps", 0, 1e12, &q->min_qps) < 0 ||
       get_num(j, pr, "budget_limit", 0, 1e15, &q->budget) < 0))
    return -1;
  return 0;
}

/* ---- one configuration ---------------------------------------------------- */

struct costing {
  struct mx_rate rate;
  const struct mx_instance *inst;
  const struct mx_region *region;
};

static void cost_for(const struct sim_job *j, const struct mx_hw *hw, int gpus, double u,
                     struct costing *c) {
  const struct sim_req *q = &j->q;
  const struct mx_catalog *cat = j->cat;
  const char *prov = *q->provider ? q->provider : NULL;
  c->inst = mx_catalog_instance(cat, hw->name, q->region ? q->region->provider : prov,
                                q->region ? q->region->region : NULL);
  c->region = q->region;
  if (!c->region && c->inst) c->region = mx_catalog_region(cat, c->inst->provider, c->inst->region);
  if (!c->region) c->region = mx_catalog_region(cat, DEFAULT_PROVIDER, DEFAULT_REGION);
  mx_rate(hw, gpus, u, c->region, c->inst, &c->rate);
}

/* The cost part of an answer for `hours` of running (per 1,000
 * inferences, or one training run). */
static json_t *cost_json(const struct costing *c, double hours, int training) {
  const struct mx_rate *rt = &c->rate;
  json_t *o = json_pack(
      "{s:o,s:o,s:o,s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:s}", "provider",
      str_or_null(c->region ? c->region->provider : NULL), "region",
      str_or_null(c->region ? c->region->region : NULL), "instance",
      str_or_null(c->inst ? c->inst->instance : NULL), "instances", rt->instances,
      "cost_per_hour", num(rt->usd_per_hour), "gpu_power_w", num(rt->gpu_power_w), "pue",
      rt->pue_known ? num(c->region->pue) : json_null(), "electricity_usd_per_kwh",
      num(c->region ? c->region->electricity_usd_per_kwh : NAN), "carbon_g_per_kwh",
      num(c->region ? c->region->carbon_g_per_kwh : NAN), "energy_cost_per_hour",
      num(rt->energy_usd_per_hour), "basis",
      c->inst ? "instance price" : "electricity only (hardware not counted)");
  if (training) {
    json_object_set_new(o, "cost_per_run", num(rt->usd_per_hour * hours));
    json_object_set_new(o, "energy_kwh", num(rt->facility_kw * hours));
    json_object_set_new(o, "carbon_kg", num(rt->gco2_per_hour * hours / 1000));
  } else {
    json_object_set_new(o, "cost_per_1000_inferences", num(rt->usd_per_hour * hours));
    json_object_set_new(o, "energy_kwh_per_1000_inferences", num(rt->facility_kw * hours));
    json_object_set_new(o, "carbon_g_per_1000_inferences", num(rt->gco2_per_hour * hours));
  }
  return o;
}

static json_t *band(double x, double sigma) {
  return json_pack("[o,o]", num(x * exp(-sigma)), num(x * exp(sigma)));
}

/* Simulates one inference configuration: a new configuration object, or
 * NULL with *why set (the simulator's refusal). */
static json_t *inference_config(struct sim_job *j, const struct mx_factors *f,
                                const struct mx_hw *hw, int tp, int pp, int *code, char *why,
                                size_t whylen) {
  const struct sim_req *q = &j->q;
  struct mx_infer_in in = {.model = q->model, .hw = hw, .tp = tp, .pp = pp,
                           .batch = (int)q->batch, .input_len = (int)q->input_len,
                           .output_len = (int)q->output_len, .precision = q->precision,
                           .kv_precision = q->kv_precision};
  struct mx_infer_out o;
  *code = mx_simulate_inference(&in, f, &o, why, whylen);
  if (*code) return NULL;
  struct costing c;
  cost_for(j, hw, tp * pp, o.utilisation, &c);
  double hours = 1000 / o.requests_per_s / 3600;
  double sg = f->sigma_inference;
  json_t *unmet = json_array();
  if (!o.fits) json_array_append_new(unmet, json_string("does not fit in memory"));
  if (isfinite(q->max_latency_ms) && o.e2e_s * 1e3 > q->max_latency_ms)
    json_array_append_new(unmet, json_string("latency above max_latency_ms"));
  if (isfinite(q->min_qps) && o.requests_per_s < q->min_qps)
    json_array_append_new(unmet, json_string("throughput below min_throughput_qps"));
  if (isfinite(q->budget) && !(c.rate.usd_per_hour * HOURS_PER_MONTH <= q->budget))
    json_array_append_new(unmet, json_string("monthly cost above budget_limit (or unknown)"));
  json_t *perf = json_pack(
      "{s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:s,s:o}", "time_to_first_token_ms", num(o.ttft_s * 1e3),
      "time_per_output_token_ms", num(o.tpot_s * 1e3), "latency_ms", num(o.e2e_s * 1e3),
      "throughput_tokens_per_s", num(o.tokens_per_s), "throughput_qps", num(o.requests_per_s),
      "utilisation", num(o.utilisation), "prefill_bound", o.prefill_bound, "decode_bound",
      o.decode_bound, "interconnect_ms", num(o.comm_s * 1e3));
  json_t *mem = json_pack("{s:o,s:o,s:b,s:o,s:o,s:o}", "per_gpu_gb", num(o.mem_per_gpu_gb),
                          "available_per_gpu_gb", num(o.mem_available_gb), "fits", o.fits,
                          "weights_gb", num(o.mem_weights_gb), "kv_cache_gb", num(o.mem_kv_gb),
                          "activations_gb", num(o.mem_activations_gb));
  json_t *unc = json_pack("{s:o,s:o,s:o,s:o}", "sigma", num(sg), "time_to_first_token_ms",
                          band(o.ttft_s * 1e3, sg), "latency_ms", band(o.e2e_s * 1e3, sg),
                          "throughput_qps", band(o.requests_per_s, sg));
  return json_pack("{s:s,s:i,s:i,s:i,s:i,s:o,s:o,s:o,s:o,s:b,s:o}", "hardware", hw->name,
                   "gpu_count", tp * pp, "tensor_parallel", tp, "pipeline_parallel", pp,
                   "batch_size", o.batch, "performance_metrics", perf, "memory", mem,
                   "cost_analysis", cost_json(&c, hours, 0), "uncertainty", unc,
                   "meets_requirements", json_array_size(unmet) == 0, "unmet", unmet);
}

static json_t *training_config(struct sim_job *j, const struct mx_factors *f,
                               const struct mx_hw *hw, int gpus, int tp, int pp, int *code,
                               char *why, size_t whylen) {
  const struct sim_req *q = &j->q;
  int dp = gpus / (tp * pp);
  long gb = q->global_batch;
  if (!gb || dp < 1) { /* 1,024 sequences, rounded up to what the layout needs */
    long unit = q->micro_batch * (dp > 0 ? dp : 1);
    gb = (1024 + unit - 1) / unit * unit;
  }
  struct mx_train_in in = {.model = q->model, .hw = hw, .gpus = gpus, .tp = tp, .pp = pp,
                           .precision = q->precision, .seq_len = (int)q->seq_len,
                           .micro_batch = (int)q->micro_batch, .global_batch = (int)gb,
                           .tokens = q->tokens, .zero_stage = (int)q->zero_stage,
                           .recompute = q->recompute, .flash_attention = q->flash};
  struct mx_train_out o;
  *code = mx_simulate_training(&in, f, &o, why, whylen);
  if (*code) return NULL;
  struct costing c;
  cost_for(j, hw, gpus, o.utilisation, &c);
  double hours = o.time_s / 3600, sg = f->sigma_training;
  json_t *unmet = json_array();
  if (!o.fits) json_array_append_new(unmet, json_string("does not fit in memory"));
  if (isfinite(q->budget) && !(c.rate.usd_per_hour * hours <= q->budget))
    json_array_append_new(unmet, json_string("run cost above budget_limit (or unknown)"));
  json_t *perf = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "training_time_hours",
                           num(hours), "tokens_per_s_per_gpu", num(o.tokens_per_s_per_gpu), "mfu",
                           num(o.mfu), "steps", num(o.steps), "model_flops_per_token",
                           num(o.model_flops_per_token), "hardware_flops_per_token",
                           num(o.hw_flops_per_token), "pipeline_bubble", num(o.bubble),
                           "interconnect_hours", num(o.comm_s / 3600));
  json_t *mem = json_pack("{s:o,s:o,s:b,s:o,s:o,s:o,s:o,s:i}", "per_gpu_gb",
                          num(o.mem_per_gpu_gb), "available_per_gpu_gb", num(o.mem_available_gb),
                          "fits", o.fits, "weights_gb", num(o.mem_weights_gb), "gradients_gb",
                          num(o.mem_gradients_gb), "optimizer_gb", num(o.mem_optimizer_gb),
                          "activations_gb", num(o.mem_activations_gb), "zero_stage",
                          (int)q->zero_stage);
  json_t *unc = json_pack("{s:o,s:o}", "sigma", num(sg), "training_time_hours", band(hours, sg));
  return json_pack("{s:s,s:i,s:i,s:i,s:i,s:I,s:o,s:o,s:o,s:o,s:b,s:o}", "hardware", hw->name,
                   "gpu_count", gpus, "tensor_parallel", tp, "pipeline_parallel", pp,
                   "data_parallel", dp, "global_batch_size", (json_int_t)gb,
                   "performance_metrics", perf, "memory", mem, "cost_analysis",
                   cost_json(&c, hours, 1), "uncertainty", unc, "meets_requirements",
                   json_array_size(unmet) == 0, "unmet", unmet);
}

/* Runs the request over its configurations: the named hardware, or every
 * catalogue GPU; the named GPU count, or (inference) 1, 2, 4 and 8. */
static int simulate(struct sim_job *j, const struct mx_factors *f) {
  struct sim_req *q = &j->q;
  const struct mx_catalog *cat = j->cat;
  json_t *configs = json_array(), *excluded = json_array();
  static const int counts[] = {1, 2, 4, 8};
  /* ranking every configuration (recommend.c): training over 8 to 512
   * GPUs, data parallel */
  static const int train_counts[] = {8, 16, 32, 64, 128, 256, 512};
  const int *cnt = q->every && q->training ? train_counts : counts;
  size_t ncnt = q->every && q->training ? ARRAY_LEN(train_counts) : ARRAY_LEN(counts);
  int single = q->hw && (q->gpu_count || q->tp);
  int last_code = 0;
  char why[300] = "";
  if (!q->hw) assume(q, "hardware: every catalogue GPU");
  for (size_t h = 0; h < cat->n_hw; h++) {
    const struct mx_hw *hw = &cat->hw[h];
    if (q->hw ? hw != q->hw : strcmp(hw->kind, "gpu") != 0) continue;
    for (size_t k = 0; k < ncnt; k++) {
      long gpus = q->gpu_count ? q->gpu_count
                  : q->training && !q->every ? 8
                  : q->tp ? q->tp * (q->pp ? q->pp : 1)
                  : cnt[k];
      long pp = q->pp ? q->pp : 1;
      long tp = q->tp ? q->tp : q->training ? 1 : gpus / pp;
      int code;
      json_t *cfg = q->training ? training_config(j, f, hw, (int)gpus, (int)tp, (int)pp, &code,
                                                  why, sizeof why)
                                : tp * pp == gpus
                                    ? inference_config(j, f, hw, (int)tp, (int)pp, &code, why,
                                                       sizeof why)
                                    : (code = GROVE_EINVAL,
                                       snprintf(why, sizeof why,
                                                "gpu_count is not a multiple of pipeline_parallel"),
                                       NULL);
      if (cfg) {
        json_array_append_new(configs, cfg);
        /* with the hardware named and no count: the smallest count that fits */
        if (q->hw && !q->gpu_count && !q->tp && !q->training &&
            json_is_true(json_object_get(json_object_get(cfg, "memory"), "fits")))
          break;
      } else {
        last_code = code;
        json_array_append_new(excluded, json_pack("{s:s,s:i,s:s}", "hardware", hw->name,
                                                  "gpu_count", (int)gpus, "reason", why));
      }
      if (q->gpu_count || (q->training && !q->every) || q->tp) break;
    }
  }
  if (q->hw && !q->gpu_count && !q->tp && !q->training)
    assume(q, "gpu_count: the smallest of 1, 2, 4, 8 that fits (tensor parallel)");
  if (q->training && !q->gpu_count)
    assume(q, q->every ? "gpu_count: 8, 16, 32, 64, 128, 256 and 512 (data parallel)"
                       : "gpu_count = 8 (data parallel)");
  if (!json_array_size(configs)) {
    json_decref(configs);
    json_t *details = json_pack("{s:o}", "excluded", excluded);
    if (single || q->hw)
      return mx_error_set(&j->err, last_code == GROVE_ERANGE ? 422 : 400,
                          last_code == GROVE_ERANGE ? "UNSUPPORTED_HARDWARE" : "INVALID_WORKLOAD",
                          details, "%s", why);
    return mx_error_set(&j->err, 422, "NO_CONFIGURATION", details,
                        "no catalogue configuration can run this workload");
  }
  /* recommendations: the configurations meeting the requirements, cheapest
   * first (per 1,000 inferences or per run), unknown costs last */
  const char *cost_key = q->training ? "cost_per_run" : "cost_per_1000_inferences";
  json_t *recs = json_array();
  size_t n = json_array_size(configs);
  int *used = calloc(n ? n : 1, sizeof(int));
  for (size_t round = 0; used && round < n; round++) {
    long best = -1;
    double best_cost = INFINITY;
    for (size_t i = 0; i < n; i++) {
      json_t *c = json_array_get(configs, i);
      if (used[i] || !json_is_true(json_object_get(c, "meets_requirements"))) continue;
      json_t *cv = json_object_get(json_object_get(c, "cost_analysis"), cost_key);
      double v = json_is_number(cv) ? json_number_value(cv) : INFINITY;
      if (best < 0 || v < best_cost) {
        best = (long)i;
        best_cost = v;
      }
    }
    if (best < 0) break;
    used[best] = 1;
    json_t *c = json_array_get(configs, (size_t)best);
    json_array_append_new(recs, json_pack("{s:O,s:O,s:O}", "hardware",
                                          json_object_get(c, "hardware"), "gpu_count",
                                          json_object_get(c, "gpu_count"), cost_key,
                                          json_object_get(json_object_get(c, "cost_analysis"),
                                                          cost_key)));
  }
  free(used);
  /* the seed's top-level figures: those of the first recommendation, else
   * of the first configuration */
  json_t *top = json_array_get(configs, 0);
  if (json_array_size(recs)) {
    json_t *r0 = json_array_get(recs, 0);
    for (size_t i = 0; i < n; i++) {
      json_t *c = json_array_get(configs, i);
      if (json_equal(json_object_get(c, "hardware"), json_object_get(r0, "hardware")) &&
          json_equal(json_object_get(c, "gpu_count"), json_object_get(r0, "gpu_count"))) {
        top = c;
        break;
      }
    }
  }
  json_t *workload = q->training
      ? json_pack("{s:s,s:o,s:I,s:I,s:I,s:s,s:b}", "precision", mx_precision_name(q->precision),
                  "training_tokens", num(q->tokens), "sequence_length", (json_int_t)q->seq_len,
                  "micro_batch_size", (json_int_t)q->micro_batch, "zero_stage",
                  (json_int_t)q->zero_stage, "recompute",
                  q->recompute == MX_RECOMPUTE_FULL ? "full"
                  : q->recompute == MX_RECOMPUTE_SELECTIVE ? "selective" : "none",
                  "flash_attention", q->flash)
      : json_pack("{s:s,s:s,s:I,s:I,s:I}", "precision", mx_precision_name(q->precision),
                  "kv_precision", mx_precision_name(q->kv_precision), "batch_size",
                  (json_int_t)q->batch, "input_length", (json_int_t)q->input_len,
                  "output_length", (json_int_t)q->output_len);
  long mid = q->model >= cat->models && q->model < cat->models + cat->n_models
                 ? q->model - cat->models + 1 : 0;
  j->data = json_pack("{s:s,s:o,s:o,s:O,s:O,s:o,s:o,s:o,s:O}", "task_type",
                      q->training ? "Training" : "Inference", "model", model_json(q->model, mid),
                      "workload", workload, "performance_metrics",
                      json_object_get(top, "performance_metrics"), "cost_analysis",
                      json_object_get(top, "cost_analysis"), "recommendations", recs,
                      "configurations", configs, "excluded", excluded, "assumptions",
                      q->assumptions);
  return j->data ? 0 : mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
}

static void sim_work(void *arg) {
  struct sim_job *j = arg;
  struct mx_factors f;
  double loo_inf, loo_tr;
  char err[256] = "";
  if (matrix_factors(j->mc, &f, &loo_inf, &loo_tr, err, sizeof err)) {
    mx_error_set(&j->err, 503, "MODEL_UNAVAILABLE", NULL,
                 "the performance model could not be fitted: %s", err);
    return;
  }
  if (simulate(j, &f) == 0) {
    double loo = j->q.training ? loo_tr : loo_inf;
    j->meta = json_pack(
        "{s:s,s:o,s:o,s:{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}}", "model_version",
        "matrix-analytical-1", "confidence_score", num(1 - loo / 100), "loo_mape_percent",
        num(loo), "factors", "prefill_eff", num(f.prefill_eff), "prefill_eff_8bit",
        num(f.prefill_eff_8bit), "decode_bw_eff", num(f.decode_bw_eff), "comm_eff",
        num(f.comm_eff), "overhead_ms", num(f.overhead_s * 1e3), "comm_latency_us",
        num(f.comm_latency_s * 1e6), "train_eff", num(f.train_eff),
        "train_hopper", num(f.train_hopper), "train_8bit", num(f.train_8bit));
  }
}

static void sim_free(struct sim_job *j) {
  matrix_cat_put(j->m, j->mc);
  json_decref(j->body);
  json_decref(j->q.assumptions);
  json_decref(j->data);
  json_decref(j->meta);
  mx_error_release(&j->err);
  free(j);
}

static void sim_done(struct http_req *r, void *arg) {
  struct sim_job *j = arg;
  mx_reply_figures(r, &j->data, &j->meta, &j->err);
  sim_free(j);
}

int matrix_simulate_json(struct matrix *m, struct matrix_cat *mc, json_t *body, int every,
                         json_t **data, json_t **meta, struct mx_error *err) {
  struct sim_job *j = calloc(1, sizeof *j);
  *data = *meta = NULL;
  if (!j) return mx_error_set(err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
  j->m = m;
  j->cat = mc->cat;
  j->body = json_incref(body);
  j->q.every = every;
  if (parse(j) == 0) {
    j->mc = mc;
    sim_work(j);
    j->mc = NULL; /* the caller's reference */
  }
  int rc = j->data ? 0 : -1;
  if (rc) {
    if (!j->err.status) j->err.status = 500, j->err.code = "INTERNAL";
    mx_error_move(err, &j->err);
  } else {
    *data = j->data;
    *meta = j->meta;
    j->data = j->meta = NULL;
  }
  sim_free(j);
  return rc;
}

void matrix_handle_simulate(struct http_req *r) {
  json_t *body = http_req_json(r);
  if (!body) return;
  struct matrix_cat *mc = cat_of(r);
  if (!mc) {
    json_decref(body);
    return;
  }
  struct sim_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_decref(body);
    matrix_cat_put(r->app, mc);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->m = r->app;
  j->mc = mc;
  j->cat = mc->cat;
  j->body = body;
  if (parse(j) < 0) {
    sim_done(r, j);
    return;
  }
  /* a CPU-bound computation (the first also fits the model) */
  if (http_req_defer(r, HTTP_POOL_CPU, sim_work, sim_done, j))
    sim_free(j); /* answered already (503) */
}

/* ---- admins' edits of the catalogue ---------------------------------------- */

struct edit_job {
  struct matrix *m;
  enum mx_table table;
  const char *parts[3];          /* the key's parts, from the path */
  char key[MX_KEY_MAX];
  char *line;                    /* NULL: delete */
  int rc;
  char err[512];
};

static void edit_work(void *arg) {
  struct edit_job *j = arg;
  j->rc = matrix_edit(j->m, j->table, j->key, j->line, j->err, sizeof j->err);
}

static void edit_free(struct edit_job *j) {
  for (int i = 0; i < 3; i++) free((char *)j->parts[i]);
  free(j->line);
  free(j);
}

/* The edited row as the read routes show it, from the new catalogue. */
static json_t *edited_row(const struct mx_catalog *c, const struct edit_job *j) {
  switch (j->table) {
  case MX_T_HARDWARE: {
    const struct mx_hw *h = mx_catalog_hw(c, j->parts[0]);
    return h ? hardware_json(c, h) : NULL;
  }
  case MX_T_MODELS: {
    const struct mx_model *md = mx_catalog_model(c, j->parts[0]);
    return md ? model_json(md, md - c->models + 1) : NULL;
  }
  case MX_T_INSTANCES:
    for (size_t i = 0; i < c->n_instances; i++) {
      const struct mx_instance *in = &c->instances[i];
      if (mx_name_eq(in->provider, j->parts[0]) && mx_name_eq(in->region, j->parts[1]) &&
          mx_name_eq(in->instance, j->parts[2]))
        return instance_json(in, i + 1);
    }
    return NULL;
  case MX_T_REGIONS: {
    const struct mx_region *g = mx_catalog_region(c, j->parts[0], j->parts[1]);
    return g ? region_json(g) : NULL;
  }
  default:
    return NULL;
  }
}

static void edit_done(struct http_req *r, void *arg) {
  struct edit_job *j = arg;
  if (!r->conn) { /* the client went away; the edit stands */
    edit_free(j);
    return;
  }
  if (j->rc == GROVE_ENOENT) {
    http_reply_error(r, 404, "NOT_FOUND", j->err, NULL);
  } else if (j->rc == GROVE_EINVAL) {
    http_reply_error(r, 400, "INVALID_CATALOGUE_ROW", j->err,
                     json_pack("{s:s}", "table", mx_table_file(j->table)));
  } else if (j->rc) {
    http_reply_error(r, 503, "STORE_UNAVAILABLE", "the edit could not be recorded", NULL);
  } else if (!j->line) {
    http_reply_data(r, 200, json_pack("{s:s,s:s,s:b}", "table", mx_table_file(j->table), "key",
                                      j->key, "deleted", 1), NULL);
  } else {
    struct matrix_cat *mc = matrix_cat_get(j->m);
    json_t *row = mc ? edited_row(mc->cat, j) : NULL;
    matrix_cat_put(j->m, mc);
    http_reply_data(r, 200, row ? row : json_null(), NULL);
  }
  edit_free(j);
}

/* PUT (a row as a JSON object of the table's columns) or DELETE of one
 * row; the key comes from the path. */
static void handle_edit(struct http_req *r, enum mx_table t, int del) {
  static const char *const params[MX_T_N][3] = {
    {"name"}, {"name"}, {"provider", "region", "instance"}, {"provider", "region"},
  };
  struct matrix *m = r->app;
  struct matrix_cat *mc = cat_of(r);
  if (!mc) return;
  matrix_cat_put(m, mc);
  json_t *body = NULL;
  if (!del && !(body = http_req_json(r))) return;
  struct edit_job *j = calloc(1, sizeof *j);
  int bad_key = !j;
  for (int i = 0; j && i < mx_edits_key_parts(t); i++) {
    const char *v = http_param(r, params[t][i]);
    j->parts[i] = v ? strdup(v) : NULL;
    bad_key |= !j->parts[i];
  }
  if (!j) {
    json_decref(body);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->m = m;
  j->table = t;
  if (bad_key || mx_edits_key(t, j->parts, j->key)) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "the row's name (or provider, region, instance) needs letters or digits, at most "
             "%d of them in all",
             MX_KEY_MAX - 1 - (mx_edits_key_parts(t) - 1));
    http_reply_error(r, 400, "INVALID_KEY", msg, NULL);
    goto fail;
  }
  if (body) {
    /* the shipped headers never change after start: no lock needed */
    int rc = mx_edits_line(&m->edits, t, j->parts, body, &j->line, j->err, sizeof j->err);
    if (rc) {
      if (rc == GROVE_EINVAL)
        http_reply_error(r, 400, "INVALID_CATALOGUE_ROW", j->err,
                         json_pack("{s:s}", "table", mx_table_file(t)));
      else
        http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
      goto fail;
    }
  }
  json_decref(body);
  if (http_req_defer(r, HTTP_POOL_STORE, edit_work, edit_done, j)) edit_free(j);
  return;
fail:
  json_decref(body);
  edit_free(j);
}

void matrix_handle_put_hardware(struct http_req *r) { handle_edit(r, MX_T_HARDWARE, 0); }
void matrix_handle_delete_hardware(struct http_req *r) { handle_edit(r, MX_T_HARDWARE, 1); }
void matrix_handle_put_model(struct http_req *r) { handle_edit(r, MX_T_MODELS, 0); }
void matrix_handle_delete_model(struct http_req *r) { handle_edit(r, MX_T_MODELS, 1); }
void matrix_handle_put_instance(struct http_req *r) { handle_edit(r, MX_T_INSTANCES, 0); }
void matrix_handle_delete_instance(struct http_req *r) { handle_edit(r, MX_T_INSTANCES, 1); }
void matrix_handle_put_region(struct http_req *r) { handle_edit(r, MX_T_REGIONS, 0); }
void matrix_handle_delete_region(struct http_req *r) { handle_edit(r, MX_T_REGIONS, 1); }
