/* app.h — the app contract: how an app plugs into `grove serve`, one
 * table per app, like nginx's module table. Adding an app is one folder
 * under src/apps/ and one line in grove_apps[] (src/app/apps.c); serve,
 * gate, hub and the other apps do not change.
 *
 * What an app declares (docs/writing-an-app.md walks through flow's):
 *   name, summary    its name (first segment of its topics, its section of
 *                    `grove serve --help`) and the line `grove --help` shows
 *   opts, cfg        its options (core/config.h), filled before start
 *   migrations       its tables (store/store.h); applied after the
 *                    platform's, so they may reference users or devices
 *   routes           every HTTP route with its access: the scopes its
 *                    caller needs, or that anonymous callers may use it;
 *                    the platform checks credentials before the handler runs
 *   topics           its live topics (under "<name>/") with who may read
 *                    and who may publish on each prefix: anyone, any
 *                    signed-in caller with scopes, the owner of the
 *                    resource, or nobody (hub/hub.h)
 *   page             the console page that shows it (may be absent)
 *   start, stop      its life; start returns the state handed to its
 *                    handlers (r->app) and to stop
 *   command, verbs   `grove <name> …`: its own verbs and their help line
 *   jobs             its job types (jobs/jobs.h): durable background work run
 *                    by the worker role, each handler getting the app's state
 *
 * serve checks the tables at start: two routes with the same method and
 * pattern, two rules for one topic prefix, two options with the same
 * name, anywhere in the process, or a topic outside the app's namespace,
 * are an error naming both sides. */
#ifndef GROVE_APP_H
#define GROVE_APP_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"
#include "hub/hub.h"
#include "net/http.h"
#include "store/store.h"

struct router;
struct hub;
struct gate;
struct metrics;
struct llm_cfg;
struct health;
struct telemetry;
struct jobs;
struct jobs_type;
struct broker;
struct blobs;

/* What the platform hands every app. Owned by serve; valid from start to
 * stop. */
struct grove_ctx {
  struct store *store;
  struct hub *hub;
  struct gate *gate;       /* handlers: gate_caller(r) is who called */
  struct metrics *metrics;
  struct router *router;
  const char *version;
  const char *data_dir;    /* where apps keep local files */
  const struct llm_cfg *llm; /* a model backend, if llm_enabled() */
  const char *store_url;   /* --store as given ("sqlite", "postgres://…") */
  struct health *health;   /* readiness checks /ready runs (core/health.h) */
  unsigned roles;          /* what this process runs: ROLE_* bits (app/roles.h) */
  struct telemetry *telemetry; /* the series store and the write path: apps add
                                * consumers at start (telemetry/telemetry.h) */
  struct jobs *jobs;       /* the job queue: jobs_enqueue (jobs/jobs.h) */
  struct broker *broker;   /* other instances (broker/broker.h); NULL without --broker */
  struct blobs *blobs;     /* the file store (blobs/blobs.h) */
};

/* The console page of an app: the console's navigation shows it while the
 * instance runs the app (GET /api/v1/apps lists it). */
struct app_page {
  const char *page;   /* the page's name in the console's address: #/<page> */
  const char *title;  /* the navigation link's text */
  const char *script; /* the page's script under web/ ("/flow.js"), or NULL */
};

struct grove_app {
  const char *name;
  const char *summary;                 /* one line for --help and the console */
  const struct cfg_opt *opts;          /* may be NULL */
  size_t nopts;
  void *cfg;                           /* the struct opts point into */
  const struct store_migration *migrations;
  size_t nmigrations;
  /* Routes, added by serve after start returns, each handler getting the
   * app's state as r->app. Access is checked before a handler runs, as
   * declared (net/http.h, struct route_def). */
  const struct route_def *routes;
  size_t nroutes;
  /* The roles (app/roles.h) whose processes serve these routes; 0: api.
   * start runs in every role and reads ctx->roles for the rest. */
  unsigned route_roles;
  /* Live topic rules, registered by serve after start with the app's
   * state (for owns()). Prefixes start with "<name>/". */
  const struct hub_topic_rule *topics;
  size_t ntopics;
  const struct app_page *page;         /* may be NULL: no console page */
  /* Job types, registered after start returns; each handler's argument is
   * the app's state. Workers run them in the worker role. May be NULL. */
  const struct jobs_type *jobs;
  size_t njobs;
  /* Starts background work. Returns 0 or an error (serve then stops).
   * *state is the app's own (its handlers' r->app, and stop's argument). */
  int (*start)(struct grove_ctx *ctx, void **state);
  void (*stop)(void *state);
  /* `grove <name> …`: the app's own verbs (may be NULL), the line
   * `grove --help` shows for them, and their full help. */
  int (*command)(int argc, char **argv);
  const char *verbs;                   /* "flow's tools: grove flow simulate" */
  void (*command_help)(FILE *f);
};

/* Checks a's table against the contract: a name, a start, topic prefixes
 * under "<name>/", and every table its migrations create named
 * "<name>_…". Returns 0, or GROVE_EINVAL with err (may be NULL) naming the
 * app and what is wrong. serve checks every app before it opens anything. */
int app_check(const struct grove_app *a, char *err, size_t errlen);

/* Every app `grove serve` runs, in start order (src/app/apps.c). */
extern const struct grove_app *const grove_apps[];
extern const size_t grove_napps;

/* The release; CMakeLists.txt reads it from here for packages. */
#define GROVE_VERSION "0.1.0"
/* The source revision built from: a git commit ("1a2b3c4d5e6f", with
 * "-dirty" when the tree had changes), the REVISION given to cmake, or
 * "unknown". A static string. */
const char *grove_revision(void);

#endif
