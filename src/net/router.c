/* router.c — method + path routing with {param} segments. */
#include "net/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "core/metrics.h"

struct router {
  struct route **routes;
  size_t n, cap;
  struct route unmatched, fallback;
  struct metrics *metrics;
  struct metric_family *requests, *latency;
  http_before before;
  void *before_arg;
  const char *before_owner;
  http_authorize authorize;
  void *authorize_arg;
  const char *authorize_owner;
};

static void param_name(const char *pat, int idx, char *out, size_t outlen);

static void route_free(struct route *r) {
  for (int i = 0; i < r->nparams; i++)
    free(r->param_names[i]);
  free(r->method);
  free(r->pattern);
  free(r);
}

static void route_init_metrics(struct router *rt, struct route *r) {
  if (rt->latency)
    r->latency = metric_get(rt->latency, r->pattern);
}

int router_create(struct router **out, struct metrics *metrics) {
  struct router *rt = calloc(1, sizeof *rt);
  if (!rt)
    return GROVE_ENOMEM;
  rt->metrics = metrics;
  if (metrics) {
    rt->requests = metrics_family(metrics, "grove_http_requests_total",
                                  "HTTP requests answered, by route, method and status.",
                                  METRIC_COUNTER, "route,method,status");
    rt->latency = metrics_histogram(metrics, "grove_http_request_duration_seconds",
                                    "Time from a request's last byte to its response, by route.",
                                    "route", NULL, 0);
  }
  rt->unmatched.method = strdup("*");
  rt->unmatched.pattern = strdup("unmatched");
  rt->fallback.method = strdup("GET");
  rt->fallback.pattern = strdup("static");
  if (!rt->unmatched.method || !rt->unmatched.pattern || !rt->fallback.method ||
      !rt->fallback.pattern) {
    router_destroy(rt);
    return GROVE_ENOMEM;
  }
  route_init_metrics(rt, &rt->unmatched);
  route_init_metrics(rt, &rt->fallback);
  *out = rt;
  return 0;
}

void router_destroy(struct router *rt) {
  if (!rt)
    return;
  for (size_t i = 0; i < rt->n; i++)
    route_free(rt->routes[i]);
  free(rt->routes);
  free(rt->unmatched.method);
  free(rt->unmatched.pattern);
  free(rt->fallback.method);
  free(rt->fallback.pattern);
  free(rt);
}

/* Whether two patterns route the same requests: equal but for the names
 * of their parameters ("/things/{id}" and "/things/{name}"). */
static bool same_pattern(const char *a, const char *b) {
  while (*a && *b) {
    if (*a == '{' && *b == '{') {
      const char *ea = strchr(a, '}'), *eb = strchr(b, '}');
      if (!ea || !eb)
        return false;
      bool ra = ea - a > 4 && strncmp(ea - 3, "...", 3) == 0;
      bool rb = eb - b > 4 && strncmp(eb - 3, "...", 3) == 0;
      if (ra != rb)
        return false;
      a = ea + 1;
      b = eb + 1;
      continue;
    }
    if (*a++ != *b++)
      return false;
  }
  return *a == *b;
}

int router_add(struct router *rt, const char *owner, const struct route_def *def, void *app,
               char *err, size_t errlen) {
  char none[1];
  if (!err || !errlen) {
    err = none;
    errlen = sizeof none;
  }
  if (!owner)
    owner = "?";
  if (!def->method || !def->fn || !def->pattern || def->pattern[0] != '/' ||
      (def->anonymous && def->scopes)) {
    snprintf(err, errlen, "route '%s %s' of '%s' is malformed: %s", def->method ? def->method : "",
             def->pattern ? def->pattern : "", owner,
             def->anonymous && def->scopes ? "an anonymous route needs no scopes"
                                           : "it needs a method, a handler and a path from /");
    return GROVE_EINVAL;
  }
  for (size_t i = 0; i < rt->n; i++)
    if (strcmp(rt->routes[i]->method, def->method) == 0 &&
        same_pattern(rt->routes[i]->pattern, def->pattern)) {
      snprintf(err, errlen, "route '%s %s' is declared twice: by '%s' ('%s') and by '%s'",
               def->method, def->pattern, rt->routes[i]->owner, rt->routes[i]->pattern, owner);
      return GROVE_EEXIST;
    }
  if (ARRAY_GROW(rt->routes, rt->cap, rt->n + 1, 16, ARRAY_NOMAX))
    goto nomem;
  struct route *r = calloc(1, sizeof *r);
  if (!r)
    goto nomem;
  r->method = strdup(def->method);
  r->pattern = strdup(def->pattern);
  if (!r->method || !r->pattern) {
    route_free(r);
    goto nomem;
  }
  r->fn = def->fn;
  r->app = app;
  r->owner = owner;
  r->scopes = def->scopes;
  r->anonymous = def->anonymous;
  r->refuse = def->refuse;
  r->stream_body = def->stream_body;
  r->max_body = def->max_body;
  for (const char *p = r->pattern; (p = strchr(p, '{')) && r->nparams < HTTP_MAX_PARAMS; p++) {
    char name[64];
    param_name(r->pattern, r->nparams, name, sizeof name);
    if (!(r->param_names[r->nparams++] = strdup(name))) {
      route_free(r);
      goto nomem;
    }
  }
  route_init_metrics(rt, r);
  rt->routes[rt->n++] = r;
  return 0;
nomem:
  snprintf(err, errlen, "out of memory adding route '%s %s'", def->method, def->pattern);
  return GROVE_ENOMEM;
}

int router_add_all(struct router *rt, const char *owner, const struct route_def *defs, size_t n,
                   void *app, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    int rc = router_add(rt, owner, &defs[i], app, err, errlen);
    if (rc)
      return rc;
  }
  return 0;
}

/* A hook installed once: a second is refused, naming both. */
static int install_once(const char *what, const char **have, const char *owner, char *err,
                        size_t errlen) {
  if (*have) {
    if (err && errlen)
      snprintf(err, errlen, "a second %s: '%s' has one, '%s' asked for another", what, *have,
               owner ? owner : "?");
    return GROVE_EEXIST;
  }
  *have = owner ? owner : "?";
  return 0;
}

int router_before(struct router *rt, const char *owner, http_before fn, void *arg, char *err,
                  size_t errlen) {
  int rc = install_once("before-hook", &rt->before_owner, owner, err, errlen);
  if (!rc) {
    rt->before = fn;
    rt->before_arg = arg;
  }
  return rc;
}

int router_authorizer(struct router *rt, const char *owner, http_authorize fn, void *arg,
                      char *err, size_t errlen) {
  int rc = install_once("authorizer", &rt->authorize_owner, owner, err, errlen);
  if (!rc) {
    rt->authorize = fn;
    rt->authorize_arg = arg;
  }
  return rc;
}

bool router_authorize(struct router *rt, const struct route *route, struct http_req *r) {
  if (route->anonymous)
    return true;
  struct http_refusal why = {0};
  if (!rt->authorize) {
    http_reply_error(r, 500, "NO_AUTHORIZER",
                     "this route needs a credential and nothing here can check one", NULL);
    return false;
  }
  if (rt->authorize(r, route->scopes, &why, rt->authorize_arg))
    return true;
  if (route->refuse) {
    route->refuse(r, &why);
    return false;
  }
  if (why.status == 401 && why.challenge)
    http_res_header(r, "WWW-Authenticate", why.challenge);
  http_reply_error(r, why.status ? why.status : 403, why.code ? why.code : "FORBIDDEN",
                   why.message ? why.message : "not allowed",
                   why.needs[0] ? json_pack("{s:s}", "needs", why.needs) : NULL);
  return false;
}

enum http_next router_run_before(struct router *rt, struct http_req *r) {
  return rt->before ? rt->before(r, rt->before_arg) : HTTP_CONTINUE;
}

void router_fallback(struct router *rt, http_handler fn, void *app) {
  rt->fallback.fn = fn;
  rt->fallback.app = app;
}

void router_each(const struct router *rt,
                 void (*fn)(const char *owner, const struct route_def *def, void *arg),
                 void *arg) {
  for (size_t i = 0; i < rt->n; i++) {
    const struct route *r = rt->routes[i];
    struct route_def d = {r->method, r->pattern, r->fn, r->scopes, r->anonymous, r->refuse,
                          r->stream_body, r->max_body};
    fn(r->owner, &d, arg);
  }
}

struct route *router_unmatched(struct router *rt) { return &rt->unmatched; }

struct route *router_fallback_route(struct router *rt) {
  return rt->fallback.fn ? &rt->fallback : NULL;
}

/* Matches path against pattern; on success records parameters as
 * (offset, length) pairs into the path. */
static bool match(const char *pat, const char *path, int *np, size_t offs[][2]) {
  const char *p = pat, *s = path;
  int n = 0;
  while (*p && *s) {
    if (*p == '{') {
      const char *close = strchr(p, '}');
      if (!close || n == HTTP_MAX_PARAMS)
        return false;
      bool rest = close - p > 4 && strncmp(close - 3, "...", 3) == 0;
      const char *end = rest ? s + strlen(s) : strchrnul(s, '/');
      if (end == s)
        return false; /* empty parameter */
      offs[n][0] = (size_t)(s - path);
      offs[n][1] = (size_t)(end - s);
      n++;
      s = end;
      p = close + 1;
      continue;
    }
    if (*p != *s)
      return false;
    p++;
    s++;
  }
  if (*p || *s)
    return false;
  *np = n;
  return true;
}

static void param_name(const char *pat, int idx, char *out, size_t outlen) {
  const char *p = pat;
  for (int i = 0; (p = strchr(p, '{')); i++, p++) {
    if (i != idx)
      continue;
    const char *close = strchr(p, '}');
    size_t n = (size_t)(close - p - 1);
    if (n >= 3 && strncmp(close - 3, "...", 3) == 0)
      n -= 3;
    if (n >= outlen)
      n = outlen - 1;
    memcpy(out, p + 1, n);
    out[n] = '\0';
    return;
  }
  out[0] = '\0';
}

enum route_match router_match(struct router *rt, const char *method, char *path,
                              struct http_req *req, struct route **out,
                              char *allow, size_t allowlen) {
  size_t offs[HTTP_MAX_PARAMS][2];
  int n = 0;
  bool path_known = false;
  if (allow && allowlen)
    allow[0] = '\0';
  for (size_t i = 0; i < rt->n; i++) {
    struct route *r = rt->routes[i];
    if (!match(r->pattern, path, &n, offs))
      continue;
    bool same = strcmp(r->method, method) == 0 ||
                (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
    if (!same) {
      path_known = true;
      if (allow && !strstr(allow, r->method)) {
        size_t l = strlen(allow);
        snprintf(allow + l, allowlen - l, "%s%s", l ? ", " : "", r->method);
        if (strcmp(r->method, "GET") == 0 && !strstr(allow, "HEAD")) {
          l = strlen(allow);
          snprintf(allow + l, allowlen - l, ", HEAD");
        }
      }
      continue;
    }
    for (int k = 0; k < n; k++)
      req->param_names[k] = r->param_names[k];
    /* cut from the end so earlier offsets stay valid */
    for (int k = n - 1; k >= 0; k--) {
      path[offs[k][0] + offs[k][1]] = '\0';
      req->param_values[k] = path + offs[k][0];
    }
    req->nparams = n;
    *out = r;
    return ROUTE_FOUND;
  }
  return path_known ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}

bool router_streams(struct router *rt, const char *method, char *path, uint64_t *max) {
  struct http_req scratch;
  struct route *route = NULL;
  if (router_match(rt, method, path, &scratch, &route, NULL, 0) != ROUTE_FOUND ||
      !route->stream_body)
    return false;
  *max = route->max_body;
  return true;
}

void route_count(struct router *rt, struct route *r, int status, double seconds) {
  if (!rt->requests || status < 100 || status > 599)
    return;
  struct metric *m = atomic_load_explicit(&r->by_status[status], memory_order_acquire);
  if (!m) {
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    m = metric_get(rt->requests, r->pattern, r->method, st);
    atomic_store_explicit(&r->by_status[status], m, memory_order_release);
  }
  metric_add(m, 1);
  metric_observe(r->latency, seconds);
}
