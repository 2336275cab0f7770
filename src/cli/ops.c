/* ops.c — operations endpoints: /health (liveness), /ready (every
 * configured backend answers, and no component reports trouble through
 * core/health.h, such as a full disk under the series store), /metrics
 * (Prometheus text format) and /api/v1/apps (the apps this instance runs,
 * from the app table, for the console's navigation). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/roles.h"
#include "core/error.h"
#include "core/health.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/gate.h"
#include "net/http.h"

struct ops {
  struct grove_ctx ctx;
  uint64_t started_ms;
};

/* Liveness is probed often (load balancers every few seconds, benchmarks
 * far more): its answer is written without building a JSON tree. */
static void handle_health(struct http_req *r) {
  struct ops *o = r->app;
  char body[128], up[24];
  size_t ul = u64_to_dec((clock_wall_ms() - o->started_ms) / 1000, up);
  int n = snprintf(body, sizeof body, "{\"state\":\"alive\",\"version\":\"%s\",\"uptime_s\":%.*s}",
                   o->ctx.version, (int)ul, up);
  http_reply_raw(r, 200, body, (size_t)n, NULL);
}

struct ready_job {
  struct ops *o;
  int store_rc;
  char store_err[256];
  bool limits_ok;
  const char *limits_mode;
  json_t *components; /* {name: {ok, error?}} of the health checks */
  json_t *failing;    /* names of those that fail */
};

static void add_component(const char *name, int rc, const char *why, void *arg) {
  struct ready_job *j = arg;
  json_t *c = json_pack("{s:b}", "ok", rc == 0);
  if (rc) {
    json_object_set_new(c, "error", json_string(why));
    json_array_append_new(j->failing, json_string(name));
  }
  json_object_set_new(j->components, name, c);
}

static void ready_work(void *arg) {
  struct ready_job *j = arg;
  j->store_rc = store_ping(j->o->ctx.store, j->store_err, sizeof j->store_err);
  j->limits_ok = j->o->ctx.gate ? gate_limits_shared(j->o->ctx.gate, &j->limits_mode) : true;
  j->components = json_object();
  j->failing = json_array();
  if (j->o->ctx.health)
    health_run(j->o->ctx.health, add_component, j);
}

/* The roles this process runs, as /ready lists them: ["api","worker"]. */
static json_t *roles_json(unsigned roles) {
  json_t *a = json_array();
  for (unsigned i = 0; i < ROLE_COUNT; i++)
    if (roles & (1u << i))
      json_array_append_new(a, json_string(role_name(i)));
  return a;
}

static void ready_done(struct http_req *r, void *arg) {
  struct ready_job *j = arg;
  if (r->conn) {
    json_t *checks = json_object();
    json_t *st = json_pack("{s:b,s:s}", "ok", j->store_rc == 0, "driver",
                           store_driver_name(j->o->ctx.store));
    if (j->store_rc)
      json_object_set_new(st, "error", json_string(j->store_err));
    json_object_set_new(checks, "store", st);
    if (j->o->ctx.gate)
      json_object_set_new(checks, "rate_limits",
                          json_pack("{s:b,s:s}", "ok", j->limits_ok, "mode", j->limits_mode));
    json_object_update(checks, j->components);
    json_t *downs = json_array();
    if (j->store_rc)
      json_array_append_new(downs, json_string("store"));
    /* components first: the broker's trouble is why limits are local */
    json_array_extend(downs, j->failing);
    if (!j->limits_ok)
      json_array_append_new(downs, json_string("rate_limits"));
    const char *down = json_array_size(downs) ? json_string_value(json_array_get(downs, 0)) : NULL;
    if (down) {
      char msg[512];
      json_t *c = json_object_get(j->components, down);
      if (c)
        snprintf(msg, sizeof msg, "component '%.60s' is in trouble: %.400s", down,
                 json_string_value(json_object_get(c, "error")));
      else
        snprintf(msg, sizeof msg, "backend '%s' is down", down);
      json_t *d = json_pack("{s:o,s:O,s:o}", "checks", checks, "down", downs, "roles",
                            roles_json(j->o->ctx.roles));
      http_res_header(r, "Retry-After", "5");
      http_reply_error(r, 503, "NOT_READY", msg, d);
    } else {
      http_reply_data(r, 200, json_pack("{s:s,s:o,s:o}", "state", "ready", "roles",
                                        roles_json(j->o->ctx.roles), "checks", checks), NULL);
    }
    json_decref(downs);
  }
  json_decref(j->components);
  json_decref(j->failing);
  free(j);
}

static void handle_ready(struct http_req *r) {
  struct ready_job *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->o = r->app;
  if (http_req_defer(r, HTTP_POOL_STORE, ready_work, ready_done, j))
    free(j);
}

static void handle_metrics(struct http_req *r) {
  struct ops *o = r->app;
  struct buf b;
  buf_init(&b, 0);
  metrics_render(o->ctx.metrics, &b);
  http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
  buf_release(&b);
}

/* The apps of grove_apps[] in start order: {"name","summary","page"}
 * each, page being {"page","title","script"} or null (app.h's struct
 * app_page). The table is fixed at build time, so the answer is too. */
static void handle_apps(struct http_req *r) {
  json_t *list = json_array();
  for (size_t i = 0; list && i < grove_napps; i++) {
    const struct grove_app *a = grove_apps[i];
    json_t *page = a->page ? json_pack("{s:s,s:s,s:s?}", "page", a->page->page, "title",
                                       a->page->title, "script", a->page->script)
                           : json_null();
    json_array_append_new(list, json_pack("{s:s,s:s,s:o}", "name", a->name, "summary",
                                          a->summary ? a->summary : "", "page", page));
  }
  if (!list) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  json_t *meta = json_pack("{s:I}", "count", (json_int_t)json_array_size(list));
  http_reply_data(r, 200, list, meta);
}

static int ops_start(struct grove_ctx *ctx, void **state) {
  struct ops *o = calloc(1, sizeof *o);
  if (!o)
    return GROVE_ENOMEM;
  o->ctx = *ctx;
  o->started_ms = clock_wall_ms();
  struct metric_family *f = !ctx->metrics ? NULL : metrics_family(ctx->metrics, "grove_role",
                                           "1 for each role this process runs (--role), 0 for the others.",
                                           METRIC_GAUGE, "role");
  for (unsigned i = 0; f && i < ROLE_COUNT; i++)
    metric_set(metric_get(f, role_name(i)), ctx->roles & (1u << i) ? 1 : 0);
  *state = o;
  return 0;
}

static void ops_stop(void *state) { free(state); }

/* Probes and scrapes must work without a credential, and so must the
 * console's list of apps (it draws the navigation before signing in). */
static const struct route_def ops_routes[] = {
    {"GET", "/health", handle_health, .anonymous = true},
    {"GET", "/ready", handle_ready, .anonymous = true},
    {"GET", "/metrics", handle_metrics, .anonymous = true},
    {"GET", "/api/v1/apps", handle_apps, .anonymous = true},
};

const struct grove_app ops_app = {
    .name = "ops",
    .summary = "health, readiness and Prometheus metrics",
    .routes = ops_routes,
    .nroutes = ARRAY_LEN(ops_routes),
    .route_roles = ROLE_ALL, /* probes and scrapes reach every process */
    .page = &(const struct app_page){"status", "Status", NULL},
    .start = ops_start,
    .stop = ops_stop,
};
