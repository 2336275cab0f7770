/* router.h — route table internals shared by the server (net-internal). */
#ifndef GROVE_ROUTER_H
#define GROVE_ROUTER_H

#include <stdatomic.h>

#include "net/http.h"

struct route {
  char *method;
  char *pattern;
  http_handler fn;
  void *app;
  const char *owner;     /* who added it (static) */
  unsigned scopes;       /* access, as declared (struct route_def) */
  bool anonymous;
  http_refuse refuse;
  bool stream_body;      /* the body goes to the handler as it comes */
  uint64_t max_body;     /* its limit; 0: --max-upload */
  char *param_names[HTTP_MAX_PARAMS];
  int nparams;
  struct metric *_Atomic by_status[600]; /* request counters, made on first use */
  struct metric *latency;
};

enum route_match { ROUTE_FOUND, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD };

/* Finds the route for method and path and fills r->param_*; on
 * ROUTE_BAD_METHOD, `allow` receives the methods the path accepts.
 * `path` is a scratch copy: parameters are cut out of it in place and
 * r->param_values point into it. */
enum route_match router_match(struct router *rt, const char *method, char *path,
                              struct http_req *r, struct route **out,
                              char *allow, size_t allowlen);
/* Whether method and path go to a route whose body is streamed. OUT:
 * *max its limit (0: --max-upload). `path` is a scratch copy, cut in
 * place. */
bool router_streams(struct router *rt, const char *method, char *path, uint64_t *max);
/* Checks r's caller against route's declared access through the
 * authorizer: true to run the handler; false once r is answered (401, 403,
 * or 500 when the route needs a credential and there is no authorizer). */
bool router_authorize(struct router *rt, const struct route *route, struct http_req *r);
/* Runs the before-hook. */
enum http_next router_run_before(struct router *rt, struct http_req *r);
/* The pseudo-routes used for metrics of unmatched and fallback requests. */
struct route *router_unmatched(struct router *rt);
struct route *router_fallback_route(struct router *rt);
/* Counts a finished request on its route. */
void route_count(struct router *rt, struct route *route, int status, double seconds);

#endif
