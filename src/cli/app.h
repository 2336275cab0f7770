/* app.h — how an app plugs into `grove serve`: one table per app, like
 * nginx's module table. serve walks grove_apps[]: it loads each app's
 * options, applies its migrations, then calls start, which adds routes
 * and topics. Adding an app touches no other app. */
#ifndef GROVE_APP_H
#define GROVE_APP_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"
#include "store/store.h"

struct router;
struct hub;
struct gate;
struct metrics;
struct llm_cfg;
struct health;

/* What the platform hands every app. Owned by serve; valid from start to
 * stop. */
struct grove_ctx {
  struct store *store;
  struct hub *hub;
  struct gate *gate;       /* gate_require(ctx->gate, r, scopes, &who) */
  struct metrics *metrics;
  struct router *router;
  const char *version;
  const char *data_dir;    /* where apps keep local files */
  const struct llm_cfg *llm; /* a model backend, if llm_enabled() */
  const char *store_url;   /* --store as given ("sqlite", "postgres://…") */
  struct health *health;   /* readiness checks /ready runs (core/health.h) */
};

struct grove_app {
  const char *name;
  const char *summary;                 /* one line for --help */
  const struct cfg_opt *opts;          /* may be NULL */
  size_t nopts;
  void *cfg;                           /* the struct opts point into */
  const struct store_migration *migrations;
  size_t nmigrations;
  /* Registers routes and starts background work. Returns 0 or an error
   * (serve then stops). The app keeps its state where it likes; `state`
   * is handed back to stop. */
  int (*start)(struct grove_ctx *ctx, void **state);
  void (*stop)(void *state);
  /* `grove <name> …`: the app's own verbs (may be NULL), and their help. */
  int (*command)(int argc, char **argv);
  void (*command_help)(FILE *f);
};

extern const struct grove_app *const grove_apps[];
extern const size_t grove_napps;

/* The release; CMakeLists.txt reads it from here for packages. */
#define GROVE_VERSION "0.1.0"
/* The source revision built from: a git commit ("1a2b3c4d5e6f", with
 * "-dirty" when the tree had changes), the REVISION given to cmake, or
 * "unknown". A static string. */
const char *grove_revision(void);

#endif
