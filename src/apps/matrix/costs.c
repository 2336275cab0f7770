/* costs.c — matrix's cost, energy and carbon routes (seed 003's FinOps):
 *   POST /api/costs/process-summary   each process's cost, energy and
 *        carbon over a period on a host or VM, from the series the agents
 *        push (host_overall_metrics, host_process_metrics,
 *        vm_process_metrics), with the host's idle remainder as "__idle__"
 *   GET /api/recommendations/cross-region   the same workload's cost and
 *        carbon in every catalogue region, ranked, with the saving against
 *        the current region
 * The arithmetic is finops.c's; docs/matrix.md "Cost, energy and carbon"
 * states it. A summary reads the series store on the store pool. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/matrix/finops.h"
#include "apps/matrix/matrix.h"
#include "apps/matrix/simulate.h"
#include "core/array.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/util.h"
#include "net/http.h"
#include "series/key.h"
#include "series/series.h"
#include "telemetry/telemetry.h"

/* The seed's tables (003 §5.1.1) as series measurements, and their fields. */
#define M_HOST "host_overall_metrics"
#define M_HOST_PROC "host_process_metrics"
#define M_VM_PROC "vm_process_metrics"

/* Points one summary reads at most, over all its series (16 bytes each). */
#define MAX_POINTS 4000000
/* Series (process × field) one summary reads at most. */
#define MAX_SERIES 200000
/* Buckets a summary's timeline has at most. */
#define MAX_BUCKETS 10000
/* The longest period a summary covers: 400 days. */
#define MAX_PERIOD_NS (400LL * 86400 * 1000000000LL)

#define NS 1000000000LL

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* RFC 3339 in UTC, with nanoseconds when there are any. */
static json_t *time_json(int64_t ns) {
  if (ns == INT64_MIN) return json_null();
  time_t sec = (time_t)time_floor_div(ns, NS);
  long frac = (long)(ns - (int64_t)sec * NS);
  struct tm tm;
  char s[64];
  if (!gmtime_r(&sec, &tm)) return json_null();
  size_t n = strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(s + n, sizeof s - n, frac ? ".%09ldZ" : "Z", frac);
  return json_string(s);
}

/* The current catalogue with a reference, or NULL once r is answered 503. */
static struct matrix_cat *cat_or_503(struct http_req *r) {
  struct matrix_cat *mc = matrix_cat_get(r->app);
  if (!mc)
    http_reply_error(r, 503, "CATALOGUE_UNAVAILABLE",
                     "matrix's catalogues were not found at start (see --matrix-data)", NULL);
  return mc;
}

/* ---- the request ------------------------------------------------------------------ */

struct ps_job {
  struct matrix *m;
  struct matrix_cat *mc;         /* a reference */
  struct series *series;
  json_t *body;                  /* owned */
  /* what was asked */
  int64_t from, to;
  int vm;                        /* scope: a VM (vm_process_metrics), else a host */
  const char *scope;             /* the host's or VM's name (in body) */
  const char *process;           /* only this process name; NULL: all (in body) */
  const struct mx_region *region;
  const struct mx_instance *inst;
  const struct mx_hw *gpu, *cpu; /* the host's GPU and CPU in the catalogue, or NULL */
  double cpu_min_w, cpu_max_w;   /* per vCPU, for modelled power */
  struct mx_host_price price;
  const char *price_source;
  struct mx_energy_rate rate;
  struct mx_integrate_cfg icfg;
  int64_t step_ns;               /* > 0: a timeline of buckets of this length */
  size_t nbuckets;
  json_t *assumptions;
  /* the answer, or an error */
  json_t *data;
  struct mx_error err;
};

static void assume(struct ps_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void assume(struct ps_job *j, const char *fmt, ...) {
  char s[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s, sizeof s, fmt, ap);
  va_end(ap);
  json_array_append_new(j->assumptions, json_string(s));
}

static int invalid(struct ps_job *j, const char *name, const char *what) {
  return mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:s}", "field", name),
                      "field '%s' must be %s", name, what);
}

/* A string field: 0 absent, 1 present (*out set), −1 bad. */
static int get_str(struct ps_job *j, const char *name, const char **out) {
  json_t *v = json_object_get(j->body, name);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 200)
    return invalid(j, name, "a string of 1 to 200 bytes");
  *out = json_string_value(v);
  return 1;
}

/* A number field in [lo, hi]: 0 absent, 1 present, −1 bad. */
static int get_num(struct ps_job *j, const char *name, double lo, double hi, double *out) {
  json_t *v = json_object_get(j->body, name);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi)) {
    char what[96];
    snprintf(what, sizeof what, "a number in %g..%g", lo, hi);
    return invalid(j, name, what);
  }
  *out = json_number_value(v);
  return 1;
}

/* A time: RFC 3339, or an integer of Unix nanoseconds. */
static int get_time(struct ps_job *j, const char *name, int64_t *out) {
  json_t *v = json_object_get(j->body, name);
  if (!v || json_is_null(v))
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR",
                        json_pack("{s:[s]}", "missing_fields", name),
                        "field '%s' is required (RFC 3339 or Unix nanoseconds)", name);
  if (json_is_string(v) && rfc3339_parse(json_string_value(v), out)) return 1;
  if (json_is_integer(v) && time_valid((int64_t)json_integer_value(v))) {
    *out = (int64_t)json_integer_value(v);
    return 1;
  }
  return invalid(j, name, "an RFC 3339 time or an integer of Unix nanoseconds");
}

/* The catalogue rows the request names: instance_type (with provider and
 * region to tell its rows apart), region, hardware, cpu. */
static int resolve_host(struct ps_job *j) {
  const struct mx_catalog *cat = j->mc->cat;
  const char *prov = NULL, *reg = NULL, *itype = NULL, *hw = NULL, *cpu = NULL;
  if (get_str(j, "provider", &prov) < 0 || get_str(j, "region", &reg) < 0 ||
      get_str(j, "instance_type", &itype) < 0 || get_str(j, "hardware", &hw) < 0 ||
      get_str(j, "cpu", &cpu) < 0)
    return -1;
  if (itype) {
    json_t *regions = json_array();
    for (size_t i = 0; i < cat->n_instances; i++) {
      const struct mx_instance *in = &cat->instances[i];
      if (!mx_name_eq(in->instance, itype) || (prov && !mx_name_eq(in->provider, prov)) ||
          (reg && !mx_name_eq(in->region, reg)))
        continue;
      if (!j->inst) j->inst = in;
      json_array_append_new(regions, json_sprintf("%s/%s", in->provider, in->region));
    }
    size_t n = json_array_size(regions);
    if (n != 1) {
      if (n == 0) {
        json_decref(regions);
        json_t *known = json_array();
        for (size_t i = 0; i < cat->n_instances; i++)
          json_array_append_new(known, json_sprintf("%s/%s/%s", cat->instances[i].provider,
                                                    cat->instances[i].region,
                                                    cat->instances[i].instance));
        return mx_error_set(&j->err, 400, "UNKNOWN_INSTANCE", json_pack("{s:o}", "known", known),
                            "instance type '%s' is not in the catalogue%s%s", itype,
                            prov || reg ? " in " : "", reg ? reg : prov ? prov : "");
      }
      return mx_error_set(&j->err, 400, "VALIDATION_ERROR", json_pack("{s:o}", "regions", regions),
                          "instance type '%s' is catalogued in several regions: name the region",
                          itype);
    }
    json_decref(regions);
  }
  if (reg) {
    j->region = mx_catalog_region(cat, prov, reg);
    if (!j->region) return mx_error_set(&j->err, 400, "UNKNOWN_REGION", NULL,
                                        "region '%s' is not in the catalogue", reg);
  } else if (j->inst) {
    j->region = mx_catalog_region(cat, j->inst->provider, j->inst->region);
  }
  if (!j->region)
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR",
                        json_pack("{s:[s]}", "missing_fields", "region"),
                        "name the region (with provider), or an instance_type the catalogue "
                        "places");
  if (hw) {
    j->gpu = mx_catalog_hw(cat, hw);
    if (!j->gpu || strcmp(j->gpu->kind, "gpu"))
      return mx_error_set(&j->err, 400, "UNKNOWN_HARDWARE", NULL,
                          "hardware '%s' is not a catalogue GPU", hw);
  } else if (j->inst) {
    j->gpu = mx_catalog_hw(cat, j->inst->hardware);
  }
  if (cpu) {
    j->cpu = mx_catalog_hw(cat, cpu);
    if (!j->cpu || strcmp(j->cpu->kind, "cpu") || !(j->cpu->tdp_w > 0) || !(j->cpu->cpu_cores > 0))
      return mx_error_set(&j->err, 400, "UNKNOWN_HARDWARE", NULL,
                          "cpu '%s' is not a catalogue CPU with a TDP and a core count", cpu);
  }
  return 0;
}

static int parse(struct ps_job *j) {
  const char *host = NULL, *vm = NULL;
  if (get_time(j, "from", &j->from) < 0 || get_time(j, "to", &j->to) < 0) return -1;
  int64_t span;
  if (j->to <= j->from || time_sub(j->to, j->from, &span) || span > MAX_PERIOD_NS)
    return mx_error_set(&j->err, 400, "INVALID_PERIOD", NULL,
                        "'to' must be after 'from', at most 400 days later");
  if (get_str(j, "host", &host) < 0 || get_str(j, "vm", &vm) < 0 ||
      get_str(j, "process", &j->process) < 0)
    return -1;
  if (!host == !vm)
    return mx_error_set(&j->err, 400, "VALIDATION_ERROR",
                        json_pack("{s:[s,s]}", "one_of", "host", "vm"),
                        "name exactly one of 'host' and 'vm'");
  j->vm = vm != NULL;
  j->scope = vm ? vm : host;
  if (resolve_host(j) < 0) return -1;

  /* the host's shape and price */
  struct mx_host_price *p = &j->price;
  double gpus = j->inst ? j->inst->gpu_count : j->gpu ? 1 : 0;
  p->vcpus = j->inst ? j->inst->vcpus : NAN;
  p->memory_gib = j->inst ? j->inst->memory_gib : NAN;
  p->usd_per_hour = j->inst ? j->inst->usd_per_hour : NAN;
  j->price_source = j->inst ? "catalogue instance" : "none";
  if (get_num(j, "gpu_count", 0, 1024, &gpus) < 0 || get_num(j, "vcpus", 1, 100000, &p->vcpus) < 0 ||
      get_num(j, "memory_gib", 0.001, 1e8, &p->memory_gib) < 0)
    return -1;
  int given = get_num(j, "cost_per_hour", 0, 1e6, &p->usd_per_hour);
  if (given < 0) return -1;
  if (given) j->price_source = "request";
  if (gpus != floor(gpus)) return invalid(j, "gpu_count", "a whole number");
  p->gpus = (int)gpus;
  if (p->gpus && !j->gpu && !j->inst)
    assume(j, "GPU power unknown (no 'hardware'): modelled energy counts no GPU");
  mx_host_price_split(p);
  if (isnan(p->usd_per_hour))
    assume(j, "no host price (own hardware, no 'cost_per_hour'): cost is electricity only");
  if (isfinite(p->usd_per_hour) && !(p->vcpus > 0))
    assume(j, "vCPUs unknown: no share of the host's price is allocated by CPU time");

  /* energy where it runs */
  const struct mx_region *g = j->region;
  j->rate.usd_per_kwh = g->electricity_usd_per_kwh;
  j->rate.pue = g->pue;
  j->rate.g_per_kwh = g->carbon_g_per_kwh;
  j->rate.billed = j->inst == NULL;
  json_t *billed = json_object_get(j->body, "electricity_billed");
  if (billed && !json_is_null(billed)) {
    if (!json_is_boolean(billed)) return invalid(j, "electricity_billed", "true or false");
    j->rate.billed = json_is_true(billed);
  }
  if (!isfinite(g->pue)) assume(j, "region has no PUE: facility energy is IT energy (PUE 1)");
  if (j->rate.billed && !isfinite(g->electricity_usd_per_kwh))
    assume(j, "region has no electricity price: electricity cost unknown");

  /* modelled power's per-vCPU figures */
  j->cpu_max_w = j->cpu ? j->cpu->tdp_w / j->cpu->cpu_cores : MX_CCF_VCPU_MAX_W;
  j->cpu_min_w = j->cpu_max_w * MX_CCF_VCPU_MIN_W / MX_CCF_VCPU_MAX_W;

  /* integration */
  const char *method = "step";
  double gap_s = 300, interval_s = 5;
  if (get_str(j, "integration", &method) < 0 || get_num(j, "max_gap_s", 0.001, 86400, &gap_s) < 0 ||
      get_num(j, "sample_interval_s", 0.001, 86400, &interval_s) < 0)
    return -1;
  if (!strcmp(method, "step")) j->icfg.method = MX_INTEGRATE_STEP;
  else if (!strcmp(method, "trapezoid")) j->icfg.method = MX_INTEGRATE_TRAPEZOID;
  else return invalid(j, "integration", "'step' or 'trapezoid'");
  double step_s = 0;
  if (get_num(j, "step_s", 1, (double)MAX_PERIOD_NS / 1e9, &step_s) < 0) return -1;
  if (step_s > 0) {
    j->step_ns = (int64_t)(step_s * 1e9);
    j->nbuckets = (size_t)((span + j->step_ns - 1) / j->step_ns);
    if (j->nbuckets > MAX_BUCKETS)
      return mx_error_set(&j->err, 400, "TOO_MANY_BUCKETS",
                          json_pack("{s:i}", "max_buckets", MAX_BUCKETS),
                          "the period holds more than %d steps: ask for a longer step_s",
                          MAX_BUCKETS);
  }
  j->icfg.max_gap_ns = (int64_t)(gap_s * 1e9);
  j->icfg.interval_ns = (int64_t)(interval_s * 1e9);
  if (j->icfg.interval_ns > j->icfg.max_gap_ns) j->icfg.interval_ns = j->icfg.max_gap_ns;
  return 0;
}

/* ---- the series ------------------------------------------------------------------- */

/* One series of the scope: a measurement, tags and a field. */
struct ps_series {
  uint32_t id;
  char *key;
  char *group;       /* "measurement,tags " (the process), owned */
  const char *field; /* into key's scratch copy */
  char *scratch;
  int overall;       /* host_overall_metrics */
};

struct ps_walk {
  struct ps_series *s;
  size_t n, cap;
  const char *proc_measurement;
  char needle[SERIES_KEY_MAX]; /* ",host=<scope>" (or vm) as keys escape it */
  int rc;
};

/* The scope's tag as it appears in a key (series/key.h's escaping of tag
 * values: '\\', ',', '=' and ' ' take a backslash): a cheap test, under the
 * store's lock, that keeps other hosts' series out before decoding. */
static void walk_needle(struct ps_walk *w, const char *tag, const char *value) {
  size_t n = (size_t)snprintf(w->needle, sizeof w->needle, ",%s=", tag);
  for (const char *p = value; *p && n + 3 < sizeof w->needle; p++) {
    if (*p == '\\' || *p == ',' || *p == '=' || *p == ' ') w->needle[n++] = '\\';
    w->needle[n++] = *p;
  }
  w->needle[n] = '\0';
}

static int has_tag(const char *key, const char *needle) {
  size_t n = strlen(needle);
  for (const char *p = strstr(key, needle); p; p = strstr(p + 1, needle))
    if (p[n] == ',' || p[n] == ' ') return 1;
  return 0;
}

static int has_prefix(const char *key, const char *m) {
  size_t n = strlen(m);
  return !strncmp(key, m, n) && key[n] == ',';
}

/* Under the store's lock: copies the keys of the two measurements. */
static void walk_key(uint32_t id, const char *key, void *arg) {
  struct ps_walk *w = arg;
  if (w->rc) return;
  int overall = has_prefix(key, M_HOST);
  if (!overall && !has_prefix(key, w->proc_measurement)) return;
  if (!has_tag(key, w->needle)) return;
  if ((w->rc = ARRAY_GROW(w->s, w->cap, w->n + 1, 64, MAX_SERIES))) return;
  char *k = strdup(key);
  if (!k) {
    w->rc = GROVE_ENOMEM;
    return;
  }
  w->s[w->n++] = (struct ps_series){.id = id, .key = k, .overall = overall};
}

static void series_free(struct ps_series *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(s[i].key);
    free(s[i].group);
    free(s[i].scratch);
  }
  free(s);
}

static int tag_is(const struct series_key *k, const char *name, const char *want) {
  const struct lp_str *v = series_key_tag(k, name);
  return v && strlen(want) == v->n && !memcmp(v->p, want, v->n);
}

/* Keeps the series of the scope (and process), each with its group. */
static int select_series(struct ps_job *j, struct ps_series *s, size_t *n) {
  struct buf b;
  buf_init(&b, SERIES_KEY_MAX);
  size_t kept = 0;
  int rc = 0;
  for (size_t i = 0; i < *n; i++) {
    struct ps_series *e = &s[i];
    size_t len = strlen(e->key);
    struct series_key k;
    int keep = 0;
    if (!(e->scratch = malloc(len + 1))) {
      rc = GROVE_ENOMEM;
      break;
    }
    if (!series_key_decode(e->key, len, e->scratch, &k)) {
      /* a host's series carry no vm tag; a VM's are found by it */
      keep = j->vm ? tag_is(&k, "vm", j->scope)
                   : tag_is(&k, "host", j->scope) && !series_key_tag(&k, "vm");
      if (keep && !e->overall && j->process) keep = tag_is(&k, "process", j->process);
    }
    if (keep) {
      buf_reset(&b);
      keep = !series_key_put_series(&b, &k) && (e->group = strndup(b.data, b.len)) != NULL;
      e->field = k.field.p; /* NUL-ended in scratch: the key's last part */
      ((char *)k.field.p)[k.field.n] = '\0';
    }
    struct ps_series t = *e;
    *e = (struct ps_series){0};
    if (keep) {
      s[kept++] = t;
    } else {
      free(t.key);
      free(t.group);
      free(t.scratch);
    }
  }
  for (size_t i = kept; rc && i < *n; i++) { /* stopped early: free the rest */
    free(s[i].key);
    s[i].key = NULL;
  }
  buf_release(&b);
  *n = kept;
  return rc;
}

static int cmp_series(const void *a, const void *b) {
  const struct ps_series *x = a, *y = b;
  if (x->overall != y->overall) return y->overall - x->overall; /* the host's first */
  int c = strcmp(x->group, y->group);
  return c ? c : strcmp(x->field, y->field);
}

/* Reads one series over the period with the integration's margins. */
static int read_series(struct ps_job *j, uint32_t id, size_t *budget, struct series_sample **pts,
                       size_t *n) {
  int64_t from, to;
  if (time_sub(j->from, j->icfg.max_gap_ns, &from)) from = TIME_MIN_NS;
  if (time_add(j->to, j->icfg.max_gap_ns, &to)) to = TIME_MAX_NS;
  bool more = false;
  int rc = series_read(j->series, id, from, to, *budget + 1, pts, n, &more, NULL);
  if (rc) return rc;
  if (more || *n > *budget) {
    free(*pts);
    *pts = NULL;
    return GROVE_ETOOBIG;
  }
  *budget -= *n;
  return 0;
}

/* ---- one summary -------------------------------------------------------------------- */

/* What one group (a process, or the host) measured over the period. */
struct ps_group {
  struct mx_usage u;
  int has_cpu, has_gpu, has_mem, has_power;
  double covered_s;
  int64_t first, last;
  size_t samples, gaps;
  /* the host's: percent of the whole host */
  double host_cpu_pct_s, host_gpu_pct_s;
  int has_host_cpu, has_host_gpu;
};

/* Adds one series' integral to g by its field. */
static void add_field(struct ps_group *g, const char *field, const struct mx_integral *in,
                      int overall) {
  if (!in->samples) return;
  if (overall) {
    if (!strcmp(field, "total_power_consumption")) {
      g->u.energy_j += in->area;
      g->has_power = 1;
    } else if (!strcmp(field, "total_cpu_usage")) {
      g->host_cpu_pct_s += in->area;
      g->has_host_cpu = 1;
    } else if (!strcmp(field, "total_gpu_usage")) {
      g->host_gpu_pct_s += in->area;
      g->has_host_gpu = 1;
    } else {
      goto coverage;
    }
  } else if (!strcmp(field, "cpu_usage_percent")) {
    g->u.cpu_core_s += in->area / 100;
    g->has_cpu = 1;
  } else if (!strcmp(field, "gpu_utilization_percent")) {
    g->u.gpu_s += in->area / 100;
    g->has_gpu = 1;
  } else if (!strcmp(field, "memory_usage_mb")) {
    g->u.mem_gib_s += in->area / 1024; /* grove-agent's MB are MiB */
    g->has_mem = 1;
  } else if (!strcmp(field, "power_consumption_watts")) {
    g->u.energy_j += in->area;
    g->has_power = 1;
  }
coverage:
  if (in->covered_s > g->covered_s) g->covered_s = in->covered_s;
  if (g->first == INT64_MIN || in->first_ns < g->first) g->first = in->first_ns;
  if (g->last == INT64_MIN || in->last_ns > g->last) g->last = in->last_ns;
  if (in->samples > g->samples) g->samples = in->samples;
  if (in->gaps > g->gaps) g->gaps = in->gaps;
}

static json_t *cost_json(const struct mx_cost *c) {
  return json_pack("{s:o,s:o,s:o,s:o,s:o}", "cpu", num(c->cpu), "gpu", num(c->gpu), "ram",
                   num(c->ram), "electricity", num(c->electricity), "total", num(c->total));
}

static json_t *tags_json(const char *group) {
  json_t *o = json_object();
  size_t len = strlen(group);
  char *scratch = malloc(len + 4);
  struct series_key k;
  /* the group is "measurement,tags ": decode it with a field put back */
  char *key = malloc(len + 2);
  if (scratch && key) {
    memcpy(key, group, len);
    key[len] = 'f';
    key[len + 1] = '\0';
    if (!series_key_decode(key, len + 1, scratch, &k))
      for (int i = 0; i < k.ntags; i++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)k.tag_keys[i].n, k.tag_keys[i].p);
        json_object_set_new(o, name, json_stringn(k.tag_values[i].p, k.tag_values[i].n));
      }
  }
  free(scratch);
  free(key);
  return o;
}

static json_t *process_json(struct ps_job *j, const char *group, const struct ps_group *g,
                            const struct mx_cost *c) {
  json_t *tags = tags_json(group);
  json_t *name = json_object_get(tags, "process"), *pid = json_object_get(tags, "pid");
  return json_pack(
      "{s:O,s:O,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:b,s:o,s:o,s:o,s:o,s:o,s:I,s:I}", "process_name",
      name ? name : json_null(), "pid", pid ? pid : json_null(), "tags", tags, "first_seen",
      time_json(g->first), "last_seen", time_json(g->last), "hours", num(g->covered_s / 3600),
      "cpu_core_hours", num(g->u.cpu_core_s / 3600), "gpu_hours", num(g->u.gpu_s / 3600),
      "memory_gib_hours", num(g->u.mem_gib_s / 3600), "power_source",
      g->has_power ? "measured" : "modelled", "estimated", !g->has_power, "energy_kwh",
      num(c->facility_kwh), "it_energy_kwh", num(c->it_kwh), "carbon_gco2e", num(c->gco2e),
      "electricity_value", num(c->electricity_value), "cost", cost_json(c), "samples",
      (json_int_t)g->samples, "gaps", (json_int_t)g->gaps);
}

static int cmp_cost_desc(const void *a, const void *b) {
  double x = json_number_value(json_object_get(json_object_get(*(json_t *const *)a, "cost"), "total"));
  double y = json_number_value(json_object_get(json_object_get(*(json_t *const *)b, "cost"), "total"));
  return (x < y) - (x > y);
}

static int cmp_time(const void *a, const void *b) {
  int64_t x = ((const struct series_sample *)a)->ts_ns, y = ((const struct series_sample *)b)->ts_ns;
  return (x > y) - (x < y);
}

/* ---- the timeline (step_s) ------------------------------------------------------------
 * The same figures per bucket of the period. Costs and energy are linear
 * in usage, so a bucket's allocated cost is that of the processes' summed
 * usage in it; its idle is its host's less that (never below 0 in each
 * bucket, so the buckets' idle may add up to more than the period's when
 * processes claim more than the host somewhere). */
enum { TL_AREA, TL_COVERED, TL_CPU, TL_GPU, TL_MEM, TL_ENERGY, TL_HOST_COV, TL_HOST_J,
       TL_HOST_CPU, TL_HOST_GPU, TL_PROC_COV, TL_G_CPU, TL_G_GPU, TL_G_POWER, TL_N };

struct ps_timeline {
  size_t n;
  double *v[TL_N];               /* n doubles each, in one allocation (v[0]) */
  struct mx_buckets bk;          /* into v[TL_AREA], v[TL_COVERED] */
};

static int tl_init(struct ps_timeline *tl, const struct ps_job *j) {
  memset(tl, 0, sizeof *tl);
  if (!j->step_ns) return 0;
  tl->n = j->nbuckets;
  double *all = calloc(tl->n * TL_N, sizeof *all);
  if (!all) return GROVE_ENOMEM;
  for (int k = 0; k < TL_N; k++) tl->v[k] = all + (size_t)k * tl->n;
  tl->bk = (struct mx_buckets){j->step_ns, tl->n, tl->v[TL_AREA], tl->v[TL_COVERED]};
  return 0;
}

static void tl_zero(struct ps_timeline *tl, int a, int b) {
  for (int k = a; tl->n && k <= b; k++) memset(tl->v[k], 0, tl->n * sizeof(double));
}

/* Adds the buckets of one series (in TL_AREA, TL_COVERED) by its field. */
static void tl_add(struct ps_timeline *tl, const char *field, int overall) {
  const double *a = tl->v[TL_AREA], *c = tl->v[TL_COVERED];
  int to = -1;
  double scale = 1;
  if (overall) {
    to = !strcmp(field, "total_power_consumption") ? TL_HOST_J
         : !strcmp(field, "total_cpu_usage")       ? TL_HOST_CPU
         : !strcmp(field, "total_gpu_usage")       ? TL_HOST_GPU : -1;
    for (size_t k = 0; k < tl->n; k++)
      if (c[k] > tl->v[TL_HOST_COV][k]) tl->v[TL_HOST_COV][k] = c[k];
  } else if (!strcmp(field, "cpu_usage_percent")) {
    to = TL_G_CPU, scale = 0.01;
  } else if (!strcmp(field, "gpu_utilization_percent")) {
    to = TL_G_GPU, scale = 0.01;
  } else if (!strcmp(field, "memory_usage_mb")) {
    to = TL_MEM, scale = 1.0 / 1024;
  } else if (!strcmp(field, "power_consumption_watts")) {
    to = TL_G_POWER;
  }
  for (size_t k = 0; to >= 0 && k < tl->n; k++) tl->v[to][k] += a[k] * scale;
}

/* A process's buckets done: its usage and energy into the totals. */
static void tl_process(struct ps_timeline *tl, const struct ps_job *j, int measured) {
  for (size_t k = 0; k < tl->n; k++) {
    struct mx_usage u = {.cpu_core_s = tl->v[TL_G_CPU][k], .gpu_s = tl->v[TL_G_GPU][k]};
    tl->v[TL_CPU][k] += u.cpu_core_s;
    tl->v[TL_GPU][k] += u.gpu_s;
    tl->v[TL_ENERGY][k] += measured ? tl->v[TL_G_POWER][k]
                                    : mx_model_energy_j(&u, j->cpu_min_w, j->cpu_max_w,
                                                        j->gpu ? j->gpu->tdp_w : NAN);
  }
}

/* The timeline's buckets as JSON. host: whether the host's own series
 * gave its time; power: "measured", "modelled" or "unknown". */
static json_t *tl_json(const struct ps_timeline *tl, const struct ps_job *j, int host,
                       const char *power) {
  json_t *list = json_array();
  for (size_t k = 0; list && k < tl->n; k++) {
    int64_t from = j->from + (int64_t)k * j->step_ns;
    int64_t to = k + 1 == tl->n ? j->to : from + j->step_ns;
    double host_s = host ? tl->v[TL_HOST_COV][k] : tl->v[TL_PROC_COV][k], host_j = NAN;
    if (!strcmp(power, "measured")) {
      host_j = tl->v[TL_HOST_J][k];
    } else if (!strcmp(power, "modelled")) {
      struct mx_usage hu = {.cpu_core_s = tl->v[TL_HOST_CPU][k] / 100 * j->price.vcpus,
                            .gpu_s = tl->v[TL_HOST_GPU][k] / 100 * j->price.gpus};
      host_j = j->price.vcpus * j->cpu_min_w * host_s +
               mx_model_energy_j(&hu, j->cpu_min_w, j->cpu_max_w, j->gpu ? j->gpu->tdp_w : NAN);
    }
    struct mx_usage u = {tl->v[TL_CPU][k], tl->v[TL_GPU][k], tl->v[TL_MEM][k],
                         tl->v[TL_ENERGY][k]};
    struct mx_cost alloc, idle, total;
    mx_cost_of(&u, &j->price, &j->rate, &alloc);
    mx_idle_of(host_s, host_j, &alloc, &j->price, &j->rate, &idle);
    total = alloc;
    mx_cost_add(&total, &idle);
    json_array_append_new(
        list, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "from", time_json(from), "to",
                        time_json(to), "host_hours", num(host_s / 3600), "energy_kwh",
                        num(total.facility_kwh), "carbon_gco2e", num(total.gco2e), "cost",
                        cost_json(&total), "allocated_cost", num(alloc.total), "idle_cost",
                        num(idle.total)));
  }
  return list;
}

static int summarise(struct ps_job *j) {
  struct ps_walk w = {.proc_measurement = j->vm ? M_VM_PROC : M_HOST_PROC};
  walk_needle(&w, j->vm ? "vm" : "host", j->scope);
  series_each_key(j->series, walk_key, &w);
  size_t n = w.n;
  struct ps_series *s = w.s;
  struct series_sample *all = NULL; /* every process sample's time, for the host's fallback */
  size_t nall = 0, capall = 0;
  json_t *procs = json_array();
  struct ps_timeline tl;
  int rc = w.rc;
  if (tl_init(&tl, j)) {
    rc = mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
    goto out;
  }
  if (rc == GROVE_ETOOBIG) {
    rc = mx_error_set(&j->err, 422, "TOO_MANY_SERIES", NULL,
                      "more than %d series to read: name a process", MAX_SERIES);
    goto out;
  }
  if (rc || (rc = select_series(j, s, &n))) {
    rc = mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
    goto out;
  }
  if (n) qsort(s, n, sizeof *s, cmp_series);

  size_t budget = MAX_POINTS;
  struct ps_group host = {.first = INT64_MIN, .last = INT64_MIN};
  int host_groups = 0;
  struct mx_cost allocated = {0};
  for (size_t i = 0; i < n;) {
    size_t end = i;
    while (end < n && s[end].overall == s[i].overall && !strcmp(s[end].group, s[i].group)) end++;
    struct ps_group g = {.first = INT64_MIN, .last = INT64_MIN};
    struct ps_group *into = s[i].overall ? &host : &g;
    if (s[i].overall) host_groups++;
    else tl_zero(&tl, TL_G_CPU, TL_G_POWER);
    for (size_t k = i; k < end; k++) {
      struct series_sample *pts = NULL;
      size_t np = 0;
      rc = read_series(j, s[k].id, &budget, &pts, &np);
      if (rc == GROVE_ETOOBIG) {
        rc = mx_error_set(&j->err, 422, "TOO_MANY_POINTS",
                          json_pack("{s:i}", "max_points", MAX_POINTS),
                          "the period holds more than %d points: ask for a shorter one, or one "
                          "process",
                          MAX_POINTS);
        goto out;
      }
      if (rc) {
        rc = mx_error_set(&j->err, 503, "STORE_UNAVAILABLE", NULL, "cannot read the series store");
        goto out;
      }
      struct mx_integral in;
      tl_zero(&tl, TL_AREA, TL_COVERED);
      mx_integrate(pts, np, j->from, j->to, &j->icfg, &in, tl.n ? &tl.bk : NULL);
      add_field(into, s[k].field, &in, s[k].overall);
      tl_add(&tl, s[k].field, s[k].overall);
      if (!s[k].overall && !strcmp(s[k].field, "cpu_usage_percent") && np) {
        if (ARRAY_GROW(all, capall, nall + np, 1024, MAX_POINTS)) {
          free(pts);
          rc = mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
          goto out;
        }
        memcpy(all + nall, pts, np * sizeof *pts);
        nall += np;
      }
      free(pts);
    }
    if (!s[i].overall && g.samples) {
      if (!g.has_power) {
        g.u.energy_j = mx_model_energy_j(&g.u, j->cpu_min_w, j->cpu_max_w,
                                         j->gpu ? j->gpu->tdp_w : NAN);
      }
      tl_process(&tl, j, g.has_power);
      struct mx_cost c;
      mx_cost_of(&g.u, &j->price, &j->rate, &c);
      mx_cost_add(&allocated, &c);
      json_array_append_new(procs, process_json(j, s[i].group, &g, &c));
    }
    i = end;
  }

  if (!host.samples && !json_array_size(procs)) {
    rc = mx_error_set(&j->err, 404, "NO_DATA",
                      json_pack("{s:s,s:s,s:[s,s]}", j->vm ? "vm" : "host", j->scope,
                                "source_type", j->vm ? "vm" : "host", "measurements", M_HOST,
                                j->vm ? M_VM_PROC : M_HOST_PROC),
                      "no samples of %s '%s' in the period", j->vm ? "vm" : "host", j->scope);
    goto out;
  }

  /* the host's time and energy: its own series, else the processes' */
  double host_s = host.covered_s;
  const char *host_basis = "host_overall_metrics";
  if (!host.samples) {
    qsort(all, nall, sizeof *all, cmp_time);
    size_t u = 0;
    for (size_t k = 0; k < nall; k++)
      if (!u || all[u - 1].ts_ns != all[k].ts_ns) all[u++] = (struct series_sample){all[k].ts_ns, 1};
    struct mx_integral in;
    tl_zero(&tl, TL_AREA, TL_COVERED);
    mx_integrate(all, u, j->from, j->to, &j->icfg, &in, tl.n ? &tl.bk : NULL);
    for (size_t k = 0; k < tl.n; k++) tl.v[TL_PROC_COV][k] = tl.v[TL_COVERED][k];
    host_s = in.covered_s;
    host_basis = "processes' samples (no host_overall_metrics)";
  }
  if (host_groups > 1)
    assume(j, "the host has %d host_overall_metrics tag sets: their figures are summed",
           host_groups);
  double host_j = NAN;
  const char *host_power = "measured";
  if (host.has_power) {
    host_j = host.u.energy_j;
  } else if (j->price.vcpus > 0 && host.has_host_cpu) {
    struct mx_usage hu = {.cpu_core_s = host.host_cpu_pct_s / 100 * j->price.vcpus,
                          .gpu_s = host.host_gpu_pct_s / 100 * j->price.gpus};
    host_j = j->price.vcpus * j->cpu_min_w * host_s +
             mx_model_energy_j(&hu, j->cpu_min_w, j->cpu_max_w, j->gpu ? j->gpu->tdp_w : NAN);
    host_power = "modelled";
  } else {
    host_power = "unknown";
    assume(j, "no host power and no host CPU usage with known vCPUs: idle energy unknown");
  }

  struct mx_cost idle, total = allocated;
  mx_idle_of(host_s, host_j, &allocated, &j->price, &j->rate, &idle);
  mx_cost_add(&total, &idle);
  {
    /* processes by cost, most first */
    size_t np = json_array_size(procs);
    json_t **v = calloc(np ? np : 1, sizeof *v);
    if (!v) {
      rc = mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
      goto out;
    }
    for (size_t k = 0; k < np; k++) v[k] = json_incref(json_array_get(procs, k));
    qsort(v, np, sizeof *v, cmp_cost_desc);
    json_array_clear(procs);
    for (size_t k = 0; k < np; k++) json_array_append_new(procs, v[k]);
    free(v);
  }
  for (size_t k = 0; k < json_array_size(procs); k++) {
    json_t *p = json_array_get(procs, k);
    double t = json_number_value(json_object_get(json_object_get(p, "cost"), "total"));
    json_object_set_new(p, "cost_share_percent",
                        num(total.total > 0 ? 100 * t / total.total : NAN));
  }

  const struct mx_host_price *p = &j->price;
  const struct mx_region *g = j->region;
  json_t *pricing = json_pack(
      "{s:s,s:s,s:o,s:o,s:i,s:o,s:o,s:o,s:s,s:{s:o,s:o,s:o,s:s},s:o,s:b,s:o,s:o}", "provider",
      g->provider, "region", g->region, "instance_type",
      j->inst ? json_string(j->inst->instance) : json_null(), "hardware",
      j->gpu ? json_string(j->gpu->name) : json_null(), "gpu_count", p->gpus, "vcpus",
      num(p->vcpus), "memory_gib", num(p->memory_gib), "cost_per_hour", num(p->usd_per_hour),
      "cost_per_hour_source", j->price_source, "split", "cpu_per_hour", num(p->cpu_per_hour),
      "gpu_per_hour", num(p->gpu_per_hour), "ram_per_hour", num(p->ram_per_hour), "method",
      "OpenCost: the price in the ratio of 0.031611 USD/vCPU-h, 0.004237 USD/GiB-h, 0.95 USD/GPU-h",
      "electricity_usd_per_kwh", num(g->electricity_usd_per_kwh), "electricity_billed",
      j->rate.billed, "pue", num(g->pue), "carbon_g_per_kwh", num(g->carbon_g_per_kwh));
  json_t *idle_j = json_pack("{s:s,s:o,s:o,s:o,s:o,s:o}", "name", "__idle__", "energy_kwh",
                             num(idle.facility_kwh), "it_energy_kwh", num(idle.it_kwh),
                             "carbon_gco2e", num(idle.gco2e), "electricity_value",
                             num(idle.electricity_value), "cost", cost_json(&idle));
  double period_h = (double)(j->to - j->from) / 1e9 / 3600;
  json_t *totals = json_pack(
      "{s:o,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "host_hours", num(host_s / 3600),
      "host_hours_basis", host_basis, "host_power", host_power, "energy_kwh",
      num(total.facility_kwh), "it_energy_kwh", num(total.it_kwh), "carbon_gco2e",
      num(total.gco2e), "cost", cost_json(&total), "allocated_cost", num(allocated.total),
      "idle_cost", num(idle.total), "idle_percent",
      num(total.total > 0 ? 100 * idle.total / total.total : NAN));
  json_t *integ = json_pack("{s:s,s:o,s:o}", "method",
                            j->icfg.method == MX_INTEGRATE_STEP ? "step" : "trapezoid",
                            "max_gap_s", num((double)j->icfg.max_gap_ns / 1e9),
                            "sample_interval_s", num((double)j->icfg.interval_ns / 1e9));
  json_t *timeline = tl.n ? tl_json(&tl, j, host.samples > 0, host_power) : json_null();
  j->data = json_pack("{s:{s:o,s:o,s:o},s:{s:s,s:s},s:o,s:o,s:o,s:o,s:o,s:o,s:O}", "period", "from",
                      time_json(j->from), "to", time_json(j->to), "hours", num(period_h),
                      "scope", "source_type", j->vm ? "vm" : "host", j->vm ? "vm" : "host",
                      j->scope, "pricing", pricing, "integration", integ, "processes",
                      json_incref(procs), "idle", idle_j, "totals", totals, "timeline",
                      timeline, "assumptions", j->assumptions);
  rc = j->data ? 0 : mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
out:
  json_decref(procs);
  free(tl.v[0]);
  free(all);
  series_free(s, n);
  return rc;
}

static void ps_work(void *arg) { summarise(arg); }

static void ps_free(struct ps_job *j) {
  matrix_cat_put(j->m, j->mc);
  json_decref(j->body);
  json_decref(j->assumptions);
  json_decref(j->data);
  mx_error_release(&j->err);
  free(j);
}

static void ps_done(struct http_req *r, void *arg) {
  struct ps_job *j = arg;
  json_t *meta = j->data ? json_pack("{s:s}", "model_version", "matrix-finops-1") : NULL;
  mx_reply(r, &j->data, &meta, &j->err);
  json_decref(meta);
  ps_free(j);
}

void matrix_handle_process_summary(struct http_req *r) {
  struct matrix *m = r->app;
  json_t *body = http_req_json(r);
  if (!body) return;
  struct matrix_cat *mc = cat_or_503(r);
  if (!mc) {
    json_decref(body);
    return;
  }
  struct ps_job *j = calloc(1, sizeof *j);
  if (!j || !(j->assumptions = json_array())) {
    free(j);
    json_decref(body);
    matrix_cat_put(m, mc);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->m = m;
  j->mc = mc;
  j->body = body;
  j->series = m->ctx.telemetry ? telemetry_series(m->ctx.telemetry) : NULL;
  if (!j->series) {
    mx_error_set(&j->err, 503, "SERIES_UNAVAILABLE", NULL, "this instance has no series store");
    ps_done(r, j);
    return;
  }
  if (parse(j) < 0) {
    ps_done(r, j);
    return;
  }
  if (http_req_defer(r, HTTP_POOL_STORE, ps_work, ps_done, j)) ps_free(j);
}

/* ---- GET /api/recommendations/cross-region ----------------------------------------- */

/* Hours when a request names none: a month (365 × 24 / 12). */
#define CR_DEFAULT_HOURS 730.0

/* A query parameter as a number in [lo, hi]: 0 absent, 1 present, −1 bad
 * (answered). */
static int query_num(struct http_req *r, const char *name, double lo, double hi, double *out) {
  char v[64];
  long n = http_query_get(r, name, 0, v, sizeof v);
  if (n == HTTP_QUERY_ABSENT) return 0;
  char *end;
  double x = strtod(v, &end);
  if (n <= 0 || *end || !(x >= lo && x <= hi)) {
    char msg[160];
    snprintf(msg, sizeof msg, "query parameter '%s' must be a number in %g..%g", name, lo, hi);
    http_reply_error(r, 400, "VALIDATION_ERROR", msg, json_pack("{s:s}", "field", name));
    return -1;
  }
  *out = x;
  return 1;
}

/* One region's figures for the workload. */
struct cr_row {
  const struct mx_region *g;
  const struct mx_instance *inst;  /* instance basis: the region's cheapest per GPU */
  int instances;
  double it_kw, facility_kwh, energy_usd, gco2e, cost;
  const char *why;                 /* not ranked by cost: why */
};

static int cmp_rows_cost(const void *a, const void *b) {
  const struct cr_row *x = *(const struct cr_row *const *)a, *y = *(const struct cr_row *const *)b;
  return (x->cost > y->cost) - (x->cost < y->cost);
}

static int cmp_rows_carbon(const void *a, const void *b) {
  const struct cr_row *x = *(const struct cr_row *const *)a, *y = *(const struct cr_row *const *)b;
  return (x->gco2e > y->gco2e) - (x->gco2e < y->gco2e);
}

static json_t *cr_saving(double cur, double v) {
  return json_pack("{s:o,s:o}", "absolute", num(cur - v),
                   "percent", num(cur > 0 ? 100 * (cur - v) / cur : NAN));
}

void matrix_handle_cross_region(struct http_req *r) {
  struct matrix *m = r->app;
  struct matrix_cat *mc = cat_or_503(r);
  if (!mc) return;
  const struct mx_catalog *cat = mc->cat;
  char hwname[MX_NAME_MAX * 2] = "", itype[MX_NAME_MAX * 2] = "", prov[32] = "", reg[64] = "",
       basis_s[16] = "";
  double gpus = 0, hours = CR_DEFAULT_HOURS, power_w = NAN, util = 1;
  int has_gpus, has_power;
  struct cr_row *rows = NULL, **by = NULL;
  json_t *data = NULL;
  const struct { const char *name; char *v; size_t n; } text[] = {
      {"hardware", hwname, sizeof hwname}, {"instance_type", itype, sizeof itype},
      {"provider", prov, sizeof prov}, {"region", reg, sizeof reg},
      {"basis", basis_s, sizeof basis_s}};
  for (size_t i = 0; i < sizeof text / sizeof *text; i++)
    if (http_query_str(r, text[i].name, text[i].v, text[i].n, "VALIDATION_ERROR") < 0) goto out;
  /* an empty value is none given */
  int has_hw = hwname[0] != '\0', has_it = itype[0] != '\0', has_p = prov[0] != '\0',
      has_r = reg[0] != '\0', has_b = basis_s[0] != '\0';
  if ((has_gpus = query_num(r, "gpu_count", 1, MX_GPUS_MAX, &gpus)) < 0 ||
      query_num(r, "hours", 1e-6, 876000, &hours) < 0 ||
      (has_power = query_num(r, "power_w", 1e-6, 1e9, &power_w)) < 0 ||
      query_num(r, "utilization", 0, 1, &util) < 0)
    goto out;
  const struct mx_hw *hw = NULL;
  const struct mx_instance *cur_inst = NULL;
  const struct mx_region *cur = NULL;
  if (has_it) {
    for (size_t i = 0; i < cat->n_instances && !cur_inst; i++) {
      const struct mx_instance *in = &cat->instances[i];
      if (mx_name_eq(in->instance, itype) && (!has_p || mx_name_eq(in->provider, prov)) &&
          (!has_r || mx_name_eq(in->region, reg)))
        cur_inst = in;
    }
    if (!cur_inst) {
      http_reply_error(r, 400, "UNKNOWN_INSTANCE", "instance type is not in the catalogue",
                       json_pack("{s:s}", "instance_type", itype));
      goto out;
    }
    hw = mx_catalog_hw(cat, cur_inst->hardware);
    if (!has_gpus) gpus = cur_inst->gpu_count;
    cur = mx_catalog_region(cat, cur_inst->provider, cur_inst->region);
  }
  if (has_hw) {
    hw = mx_catalog_hw(cat, hwname);
    if (!hw) {
      http_reply_error(r, 400, "UNKNOWN_HARDWARE", "hardware is not in the catalogue",
                       json_pack("{s:s}", "hardware", hwname));
      goto out;
    }
  }
  if (!hw && !has_power) {
    http_reply_error(r, 400, "VALIDATION_ERROR",
                     "name the workload: hardware (and gpu_count), instance_type, or power_w",
                     json_pack("{s:[s,s,s]}", "one_of", "hardware", "instance_type", "power_w"));
    goto out;
  }
  if (!gpus) gpus = 1;
  if (gpus != floor(gpus)) {
    http_reply_error(r, 400, "VALIDATION_ERROR", "gpu_count must be a whole number",
                     json_pack("{s:s}", "field", "gpu_count"));
    goto out;
  }
  if (has_r && !cur_inst) {
    cur = mx_catalog_region(cat, has_p ? prov : NULL, reg);
    if (!cur) {
      http_reply_error(r, 400, "UNKNOWN_REGION", "region is not in the catalogue",
                       json_pack("{s:s}", "region", reg));
      goto out;
    }
  }
  /* the basis: instance prices where the hardware is rented, else energy */
  int instance_basis = hw && !has_power;
  if (instance_basis) {
    int any = 0;
    for (size_t i = 0; i < cat->n_instances && !any; i++)
      any = mx_catalog_hw(cat, cat->instances[i].hardware) == hw;
    instance_basis = any;
  }
  if (has_b) {
    if (!strcmp(basis_s, "instance") && hw) instance_basis = 1;
    else if (!strcmp(basis_s, "electricity")) instance_basis = 0;
    else {
      http_reply_error(r, 400, "VALIDATION_ERROR",
                       "basis must be 'instance' (with hardware) or 'electricity'",
                       json_pack("{s:s}", "field", "basis"));
      goto out;
    }
  }
  /* the workload's IT power: given, or its GPUs at TDP scaled as the
   * simulator's energy model does (mx_rate) */
  double it_kw = NAN;
  if (has_power) {
    it_kw = power_w / 1000;
  } else {
    struct mx_rate rt;
    mx_rate(hw, (int)gpus, util, NULL, NULL, &rt);
    it_kw = rt.it_kw;
  }
  size_t n = cat->n_regions;
  rows = calloc(n ? n : 1, sizeof *rows);
  by = calloc(n ? n : 1, sizeof *by);
  if (!rows || !by) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    goto out;
  }
  struct cr_row *cur_row = NULL;
  for (size_t i = 0; i < n; i++) {
    struct cr_row *w = &rows[i];
    const struct mx_region *g = &cat->regions[i];
    w->g = g;
    double pue = isfinite(g->pue) && g->pue >= 1 ? g->pue : 1;
    w->it_kw = it_kw;
    w->facility_kwh = it_kw * pue * hours;
    w->energy_usd = w->facility_kwh * g->electricity_usd_per_kwh;
    w->gco2e = w->facility_kwh * g->carbon_g_per_kwh;
    w->cost = NAN;
    if (instance_basis) {
      w->inst = mx_catalog_instance(cat, hw->name, g->provider, g->region);
      if (w->inst) {
        w->instances = ((int)gpus + w->inst->gpu_count - 1) / w->inst->gpu_count;
        w->cost = w->instances * w->inst->usd_per_hour * hours;
      } else {
        w->why = "no catalogued instance of the hardware in the region";
      }
    } else {
      w->cost = w->energy_usd;
      if (!isfinite(w->cost)) w->why = "no electricity price for the region";
    }
    if (g == cur) cur_row = w;
  }
  double cur_cost = cur_row ? cur_row->cost : NAN, cur_g = cur_row ? cur_row->gco2e : NAN;
  json_t *regions = json_array(), *by_cost = json_array(), *by_carbon = json_array(),
         *unranked = json_array();
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(rows[i].cost)) by[k++] = &rows[i];
  qsort(by, k, sizeof *by, cmp_rows_cost);
  for (size_t i = 0; i < k; i++)
    json_array_append_new(by_cost, json_pack("{s:i,s:s,s:s,s:o,s:o,s:b}", "rank", (int)i + 1,
                                             "provider", by[i]->g->provider, "region",
                                             by[i]->g->region, "cost", num(by[i]->cost),
                                             "saving", cr_saving(cur_cost, by[i]->cost),
                                             "current", by[i] == cur_row));
  k = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(rows[i].gco2e)) by[k++] = &rows[i];
  qsort(by, k, sizeof *by, cmp_rows_carbon);
  for (size_t i = 0; i < k; i++)
    json_array_append_new(by_carbon, json_pack("{s:i,s:s,s:s,s:o,s:o,s:b}", "rank", (int)i + 1,
                                               "provider", by[i]->g->provider, "region",
                                               by[i]->g->region, "carbon_gco2e",
                                               num(by[i]->gco2e), "saving",
                                               cr_saving(cur_g, by[i]->gco2e), "current",
                                               by[i] == cur_row));
  for (size_t i = 0; i < n; i++) {
    const struct cr_row *w = &rows[i];
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:b,s:o,s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "provider",
        w->g->provider, "region", w->g->region, "location", w->g->location, "current",
        w == cur_row, "instance", w->inst ? json_string(w->inst->instance) : json_null(),
        "instances", w->instances, "cost_per_hour",
        num(w->inst ? w->instances * w->inst->usd_per_hour : w->cost / hours), "cost",
        num(w->cost), "energy_kwh", num(w->facility_kwh), "energy_cost", num(w->energy_usd),
        "carbon_gco2e", num(w->gco2e), "electricity_usd_per_kwh",
        num(w->g->electricity_usd_per_kwh), "carbon_g_per_kwh", num(w->g->carbon_g_per_kwh),
        "pue", num(w->g->pue), "cost_saving", cr_saving(cur_cost, w->cost), "carbon_saving",
        cr_saving(cur_g, w->gco2e));
    json_array_append_new(regions, o);
    if (w->why)
      json_array_append_new(unranked, json_pack("{s:s,s:s,s:s}", "provider", w->g->provider,
                                                "region", w->g->region, "reason", w->why));
  }
  json_t *workload = json_pack(
      "{s:o,s:o,s:i,s:o,s:o,s:o,s:s}", "hardware", hw ? json_string(hw->name) : json_null(),
      "instance_type", cur_inst ? json_string(cur_inst->instance) : json_null(), "gpu_count",
      (int)gpus, "utilization", has_power ? json_null() : num(util), "it_power_w",
      num(it_kw * 1000), "hours", num(hours), "basis",
      instance_basis ? "instance" : "electricity");
  json_t *current = cur_row ? json_pack("{s:s,s:s,s:o,s:o}", "provider", cur_row->g->provider,
                                        "region", cur_row->g->region, "cost", num(cur_cost),
                                        "carbon_gco2e", num(cur_g))
                            : json_null();
  data = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "workload", workload, "current", current,
                   "ranked_by_cost", by_cost, "ranked_by_carbon", by_carbon, "regions", regions,
                   "not_ranked_by_cost", unranked);
  if (!data)
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
  else
    http_reply_data(r, 200, data, json_pack("{s:I}", "count", (json_int_t)n));
out:
  free(rows);
  free(by);
  matrix_cat_put(m, mc);
}

/* ---- GET /api/cost-models, /api/cost-models/{id} ------------------------------------
 * Seed 003's cost_models (hardware_type, region, cost_per_hour,
 * cost_per_1000_inferences, energy_efficiency_rating): each catalogue
 * instance with its region's figures and, from the simulator, what 1,000
 * inferences of a reference workload cost, take and emit on it. The
 * simulation needs the fitted factors (the first one fits them, about a
 * second): it runs on the CPU pool. */

#define CM_MODEL "Llama-3.1-8B"

struct cm_job {
  struct matrix *m;
  struct matrix_cat *mc;
  long id;                        /* > 0: only this row (1-based) */
  char prov[32], reg[64], hw[MX_NAME_MAX * 2];
  int has_p, has_r, has_h;
  const struct mx_model *model;
  enum mx_precision precision;
  long batch, input_len, output_len;
  json_t *data, *meta;            /* the answer, or: */
  struct mx_error err;
};

/* One instance serving the workload: the smallest tensor-parallel group
 * of 1, 2, 4, 8 (dividing its GPUs) that holds the model, as many replicas
 * as its GPUs make. */
struct cm_fig {
  int ok;
  char why[200];
  int tp, replicas;
  double qps, latency_s, usd_per_1000, kwh_per_1000, g_per_1000, inf_per_kwh;
};

static void cm_simulate(const struct cm_job *j, const struct mx_factors *f,
                        const struct mx_instance *in, struct cm_fig *out) {
  const struct mx_catalog *cat = j->mc->cat;
  const struct mx_hw *hw = mx_catalog_hw(cat, in->hardware);
  memset(out, 0, sizeof *out);
  static const int tps[] = {1, 2, 4, 8};
  int rc = GROVE_EINVAL;
  struct mx_infer_out o;
  snprintf(out->why, sizeof out->why, "the model does not fit in %d GPUs", in->gpu_count);
  for (size_t k = 0; k < ARRAY_LEN(tps) && tps[k] <= in->gpu_count; k++) {
    if (in->gpu_count % tps[k]) continue;
    struct mx_infer_in q = {.model = j->model, .hw = hw, .tp = tps[k], .pp = 1,
                            .batch = (int)j->batch, .input_len = (int)j->input_len,
                            .output_len = (int)j->output_len, .precision = j->precision,
                            .kv_precision = j->precision == MX_FP8 ? MX_FP8 : MX_FP16};
    rc = mx_simulate_inference(&q, f, &o, out->why, sizeof out->why);
    if (rc) break; /* refused (no published peak): larger groups are refused too */
    if (o.fits) {
      out->tp = tps[k];
      break;
    }
  }
  if (!out->tp) return;
  out->replicas = in->gpu_count / out->tp;
  out->qps = o.requests_per_s * out->replicas;
  out->latency_s = o.e2e_s;
  const struct mx_region *g = mx_catalog_region(cat, in->provider, in->region);
  struct mx_rate rt;
  mx_rate(hw, in->gpu_count, o.utilisation, g, in, &rt);
  double hours = 1000 / out->qps / 3600;
  out->usd_per_1000 = in->usd_per_hour * hours;
  out->kwh_per_1000 = rt.facility_kw * hours;
  out->g_per_1000 = rt.gco2_per_hour * hours;
  out->inf_per_kwh = out->kwh_per_1000 > 0 ? 1000 / out->kwh_per_1000 : NAN;
  out->ok = isfinite(out->usd_per_1000);
  if (!out->ok) snprintf(out->why, sizeof out->why, "no cost figure");
}

static void cm_work(void *arg) {
  struct cm_job *j = arg;
  const struct mx_catalog *cat = j->mc->cat;
  struct mx_factors f;
  double loo_inf, loo_tr;
  char err[256] = "";
  if (matrix_factors(j->mc, &f, &loo_inf, &loo_tr, err, sizeof err)) {
    mx_error_set(&j->err, 503, "MODEL_UNAVAILABLE", NULL,
                 "the performance model could not be fitted: %s", err);
    return;
  }
  size_t n = cat->n_instances;
  struct cm_fig *figs = calloc(n ? n : 1, sizeof *figs);
  if (!figs) goto oom;
  double best = 0;
  for (size_t i = 0; i < n; i++) {
    cm_simulate(j, &f, &cat->instances[i], &figs[i]);
    if (figs[i].ok && figs[i].inf_per_kwh > best) best = figs[i].inf_per_kwh;
  }
  const struct mx_hw *want = j->has_h ? mx_catalog_hw(cat, j->hw) : NULL;
  json_t *list = json_array();
  for (size_t i = 0; list && i < n; i++) {
    const struct mx_instance *in = &cat->instances[i];
    if ((j->id > 0 && (size_t)j->id != i + 1) ||
        (j->has_p && !mx_name_eq(in->provider, j->prov)) ||
        (j->has_r && !mx_name_eq(in->region, j->reg)) ||
        (j->has_h && mx_catalog_hw(cat, in->hardware) != want))
      continue;
    json_t *row = matrix_instance_json(in, i + 1);
    const struct mx_region *g = mx_catalog_region(cat, in->provider, in->region);
    json_object_set_new(row, "region_data", g ? matrix_region_json(g) : json_null());
    const struct cm_fig *x = &figs[i];
    double score = x->ok && best > 0 ? 100 * x->inf_per_kwh / best : NAN;
    json_object_set_new(row, "cost_per_1000_inferences", num(x->ok ? x->usd_per_1000 : NAN));
    json_object_set_new(row, "energy_per_1000_inferences_kwh",
                        num(x->ok ? x->kwh_per_1000 : NAN));
    json_object_set_new(row, "carbon_per_1000_inferences_g", num(x->ok ? x->g_per_1000 : NAN));
    json_object_set_new(
        row, "energy_efficiency_rating",
        x->ok ? json_pack("{s:o,s:s,s:o}", "score", num(score), "grade",
                          mx_efficiency_grade(score), "inferences_per_kwh", num(x->inf_per_kwh))
              : json_null());
    json_object_set_new(
        row, "inference",
        x->ok ? json_pack("{s:i,s:i,s:o,s:o}", "tensor_parallel", x->tp, "replicas", x->replicas,
                          "throughput_qps", num(x->qps), "latency_ms", num(x->latency_s * 1e3))
              : json_pack("{s:s}", "excluded", x->why));
    json_array_append_new(list, row);
  }
  free(figs);
  if (!list) goto oom;
  if (j->id > 0) {
    if (!json_array_size(list)) {
      json_decref(list);
      mx_error_set(&j->err, 404, "NOT_FOUND", NULL, "no cost model %ld", j->id);
      return;
    }
    j->data = json_incref(json_array_get(list, 0));
    json_decref(list);
  } else {
    j->data = list;
  }
  j->meta = json_pack(
      "{s:I,s:{s:s,s:s,s:I,s:I,s:I},s:s,s:s}", "count",
      (json_int_t)(json_is_array(j->data) ? json_array_size(j->data) : 1), "workload",
      "model_name", j->model->name, "precision", mx_precision_name(j->precision), "batch_size",
      (json_int_t)j->batch, "input_length", (json_int_t)j->input_len, "output_length",
      (json_int_t)j->output_len, "model_version", "matrix-analytical-1",
      "energy_efficiency_rating",
      "score = 100 × inferences per facility kWh / the best catalogue instance's for this "
      "workload; grade A ≥ 80, B ≥ 60, C ≥ 40, D ≥ 20, E below");
  return;
oom:
  mx_error_set(&j->err, 503, "OUT_OF_MEMORY", NULL, "server is out of memory");
}

static void cm_free(struct cm_job *j) {
  matrix_cat_put(j->m, j->mc);
  json_decref(j->data);
  json_decref(j->meta);
  mx_error_release(&j->err);
  free(j);
}

static void cm_done(struct http_req *r, void *arg) {
  struct cm_job *j = arg;
  mx_reply(r, &j->data, &j->meta, &j->err);
  cm_free(j);
}

/* Reads an integer query parameter in [lo, hi] into *out: false once r is
 * answered (400). */
static bool query_long(struct http_req *r, const char *name, long lo, long hi, long *out) {
  double v;
  int rc = query_num(r, name, (double)lo, (double)hi, &v);
  if (rc < 0) return false;
  if (rc && v != floor(v)) {
    http_reply_error(r, 400, "VALIDATION_ERROR", "query parameter must be a whole number",
                     json_pack("{s:s}", "field", name));
    return false;
  }
  if (rc) *out = (long)v;
  return true;
}

static void cost_models(struct http_req *r, long id) {
  struct matrix *m = r->app;
  struct matrix_cat *mc = cat_or_503(r);
  if (!mc) return;
  struct cm_job *j = calloc(1, sizeof *j);
  if (!j) {
    matrix_cat_put(m, mc);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->m = m;
  j->mc = mc;
  j->id = id;
  char model[MX_NAME_MAX * 2] = CM_MODEL, prec[32] = "FP16";
  if ((j->has_p = http_query_str(r, "provider", j->prov, sizeof j->prov, "VALIDATION_ERROR")) < 0 ||
      (j->has_r = http_query_str(r, "region", j->reg, sizeof j->reg, "VALIDATION_ERROR")) < 0 ||
      (j->has_h = http_query_str(r, "hardware", j->hw, sizeof j->hw, "VALIDATION_ERROR")) < 0 ||
      http_query_str(r, "model_name", model, sizeof model, "VALIDATION_ERROR") < 0 ||
      http_query_str(r, "precision", prec, sizeof prec, "VALIDATION_ERROR") < 0)
    goto fail;
  j->model = mx_catalog_model(mc->cat, model);
  j->batch = 1;
  j->input_len = 512;
  j->output_len = 128;
  if (!j->model) {
    http_reply_error(r, 400, "UNKNOWN_MODEL", "model_name is not in the model catalogue",
                     json_pack("{s:s}", "model_name", model));
    goto fail;
  }
  if (!strcmp(j->model->architecture, "encoder")) j->output_len = 0;
  if (mx_precision_parse(prec, &j->precision)) {
    http_reply_error(r, 400, "INVALID_PRECISION", "precision must be FP32, FP16, BF16, FP8, INT8 or INT4",
                     json_pack("{s:s}", "precision", prec));
    goto fail;
  }
  if (!query_long(r, "batch_size", 1, MX_BATCH_MAX, &j->batch) ||
      !query_long(r, "input_length", 1, MX_LEN_MAX, &j->input_len) ||
      !query_long(r, "output_length", 0, MX_LEN_MAX, &j->output_len))
    goto fail;
  if (http_req_defer(r, HTTP_POOL_CPU, cm_work, cm_done, j)) cm_free(j);
  return;
fail:
  cm_free(j);
}

void matrix_handle_cost_models(struct http_req *r) { cost_models(r, 0); }

void matrix_handle_cost_model(struct http_req *r) {
  const char *s = http_param(r, "id");
  char *end;
  long id = s ? strtol(s, &end, 10) : 0;
  if (!s || !*s || *end || id < 1 || id > 1000000) {
    http_reply_error(r, 404, "NOT_FOUND", "no such cost model", NULL);
    return;
  }
  cost_models(r, id);
}
