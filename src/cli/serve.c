/* serve.c — `grove serve`: loads the configuration, opens the store,
 * applies migrations, starts the hub and every app, serves HTTP until
 * SIGTERM or SIGINT, then shuts down in reverse order. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/roles.h"
#include "blobs/blobs.h"
#include "blobs/tus.h"
#include "broker/broker.h"
#include "cli/cli.h"
#include "core/error.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/gate.h"
#include "hub/hub.h"
#include "jobs/jobs.h"
#include "llm/llm.h"
#include "net/http.h"
#include "net/static.h"
#include "store/store.h"
#include "telemetry/telemetry.h"

struct core_cfg {
  char *log_level;
  char *log_format;
  char *role;
};

static const struct cfg_opt core_opts[] = {
    CFG_OPT(struct core_cfg, "log-level", CFG_STR, log_level, "info", "debug, info, warn, error or off"),
    CFG_OPT(struct core_cfg, "log-format", CFG_STR, log_format, "text", "text or json (one object a line)"),
    CFG_OPT(struct core_cfg, "role", CFG_STR, role, "all", "what this process runs: all, or a comma list of api (HTTP routes, live hub), worker (background work: retention, flushes), stream (flow's windows and alerts); see docs/operations.md"),
};

struct serve_cfg {
  struct core_cfg core;
  struct http_cfg http;
  struct store_cfg store;
  struct broker_cfg broker;
  struct hub_cfg hub;
  struct gate_cfg gate;
  struct llm_cfg llm;
  struct telemetry_cfg telemetry;
  struct jobs_cfg jobs;
  struct blobs_cfg blobs;
  struct tus_cfg tus;
};

#define MAX_SECTIONS 16

#define MAX_APPS 32

/* Every app's table against the contract, and their number. */
static int check_apps(char *err, size_t errlen) {
  if (grove_napps > MAX_APPS) {
    snprintf(err, errlen, "too many apps (at most %d): '%s' comes after '%s'", MAX_APPS,
             grove_apps[MAX_APPS]->name, grove_apps[MAX_APPS - 1]->name);
    return GROVE_ETOOBIG;
  }
  for (size_t i = 0; i < grove_napps; i++)
    if (app_check(grove_apps[i], err, errlen))
      return GROVE_EINVAL;
  return 0;
}

/* The option sections: the platform's, then each app's. OUT: *n. Returns
 * 0, or GROVE_ETOOBIG (err says which did not fit; none is dropped). */
static int sections(struct serve_cfg *c, struct cfg_section *s, size_t *n, char *err,
                    size_t errlen) {
  const struct cfg_section platform[] = {
      {"core", core_opts, ARRAY_LEN(core_opts), &c->core},
      {"http", http_cfg_opts, http_cfg_nopts, &c->http},
      {"store", store_cfg_opts, store_cfg_nopts, &c->store},
      {"broker", broker_cfg_opts, broker_cfg_nopts, &c->broker},
      {"live", hub_cfg_opts, hub_cfg_nopts, &c->hub},
      {"gate", gate_cfg_opts, gate_cfg_nopts, &c->gate},
      {"llm", llm_cfg_opts, llm_cfg_nopts, &c->llm},
      {"telemetry", telemetry_cfg_opts, telemetry_cfg_nopts, &c->telemetry},
      {"jobs", jobs_cfg_opts, jobs_cfg_nopts, &c->jobs},
      {"blobs", blobs_cfg_opts, blobs_cfg_nopts, &c->blobs},
      {"uploads", tus_cfg_opts, tus_cfg_nopts, &c->tus},
  };
  *n = 0;
  for (size_t i = 0; i < ARRAY_LEN(platform); i++)
    if (cfg_section_add(s, n, MAX_SECTIONS, platform[i], err, errlen))
      return GROVE_ETOOBIG;
  for (size_t i = 0; i < grove_napps; i++) {
    const struct grove_app *a = grove_apps[i];
    if (a->nopts && cfg_section_add(s, n, MAX_SECTIONS,
                                    (struct cfg_section){a->name, a->opts, a->nopts, a->cfg},
                                    err, errlen))
      return GROVE_ETOOBIG;
  }
  return 0;
}

void serve_help(FILE *f) {
  struct serve_cfg c;
  struct cfg_section s[MAX_SECTIONS];
  size_t n;
  char err[256];
  memset(&c, 0, sizeof c);
  if (sections(&c, s, &n, err, sizeof err) || cfg_check(s, n, err, sizeof err)) {
    fprintf(stderr, "grove serve: %s\n", err);
    return;
  }
  fprintf(f,
          "usage: grove serve [options]\n\n"
          "Runs Grove: the HTTP API, the live hub and every app, on the embedded\n"
          "defaults unless told otherwise. Options come from a file (--config FILE or\n"
          "GROVE_CONFIG; lines of \"name = value\"), GROVE_* variables and flags; flags\n"
          "win. SIGTERM or SIGINT finishes in-flight requests and exits.\n\n"
          "  --config FILE          GROVE_CONFIG             read options from FILE\n"
          "  --help                                          show this help\n");
  cfg_print_help(f, s, n);
  fprintf(f, "\napps:\n");
  for (size_t i = 0; i < grove_napps; i++)
    fprintf(f, "  %-10s %s\n", grove_apps[i]->name, grove_apps[i]->summary);
}

struct signal_ctx {
  sigset_t set;
  struct http_server *srv;
  struct jobs *jobs;
  uint64_t timeout_ms;
};

static void *signal_thread(void *arg) {
  struct signal_ctx *sc = arg;
  int sig;
  if (sigwait(&sc->set, &sig) == 0) {
    if (sig == SIGUSR2)
      return NULL; /* serve is ending on its own */
    log_info(NULL, "shutting down", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
    http_server_stop(sc->srv);
    jobs_stop(sc->jobs, sc->timeout_ms); /* beside the HTTP side's own wait */
  }
  return NULL;
}

struct hooks_arg {
  struct hub *hub;
  struct broker *broker; /* NULL: none */
};

static void on_loop_start(uv_loop_t *loop, int index, void *arg) {
  struct hooks_arg *h = arg;
  if (h->broker)
    broker_loop_start(h->broker, loop, index);
  hub_loop_start(h->hub, loop, index);
}

static void on_loop_stop(uv_loop_t *loop, int index, void *arg) {
  struct hooks_arg *h = arg;
  (void)loop;
  hub_loop_stop(h->hub, index);
  if (h->broker)
    broker_loop_stop(h->broker, index);
}

/* Where the web console is when --web-root is "auto" (its default). These
 * come from CMake: GROVE_WEB_FROM_BINDIR, the installed console relative
 * to the installed binary ("../share/grove/web" with GNUInstallDirs'
 * defaults); GROVE_WEB_INSTALL_DIR, the same as an absolute path under the
 * prefix; GROVE_WEB_SOURCE_DIR, the checkout's web/ the binary was built
 * from. */
#ifndef GROVE_WEB_FROM_BINDIR
#define GROVE_WEB_FROM_BINDIR "../share/grove/web"
#endif
#ifndef GROVE_WEB_INSTALL_DIR
#define GROVE_WEB_INSTALL_DIR "/usr/local/share/grove/web"
#endif
#ifndef GROVE_WEB_SOURCE_DIR
#define GROVE_WEB_SOURCE_DIR "web"
#endif

static bool has_console(const char *dir) {
  char index[4200];
  snprintf(index, sizeof index, "%s/index.html", dir);
  return access(index, R_OK) == 0;
}

/* The first folder holding the console's index.html, in this order:
 * 1. beside an installed binary: <dir of /proc/self/exe>/GROVE_WEB_FROM_BINDIR
 *    (so a tree installed under any prefix or DESTDIR, or unpacked from the
 *    .deb, serves its own console);
 * 2. ./web in the working directory (a checkout, as before);
 * 3. the source tree's web/ (a build-tree binary started elsewhere);
 * 4. GROVE_WEB_INSTALL_DIR (a binary copied away from its prefix).
 * Returns out (an absolute or ./ path), or NULL when none has it. */
static const char *find_web_root(char *out, size_t n) {
  char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      int w = snprintf(out, n, "%s/%s", exe, GROVE_WEB_FROM_BINDIR);
      char real[PATH_MAX];
      if (w > 0 && (size_t)w < n && has_console(out) && realpath(out, real)) {
        snprintf(out, n, "%s", real);
        return out;
      }
    }
  }
  static const char *const others[] = {"web", GROVE_WEB_SOURCE_DIR, GROVE_WEB_INSTALL_DIR};
  for (size_t i = 0; i < ARRAY_LEN(others); i++)
    if (has_console(others[i])) {
      snprintf(out, n, "%s", others[i]);
      return out;
    }
  return NULL;
}

static void log_route(const char *owner, const struct route_def *d, void *arg) {
  (void)arg;
  char scopes[32] = "";
  gate_scopes_format(d->scopes, scopes, sizeof scopes);
  log_debug(NULL, "route", "method=%s pattern=%s owner=%s access=%s", d->method, d->pattern,
            owner, d->anonymous ? "anonymous" : *scopes ? scopes : "signed-in");
}

int cmd_serve(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      serve_help(stdout);
      return 0;
    }
  struct serve_cfg c;
  struct cfg_section secs[MAX_SECTIONS];
  memset(&c, 0, sizeof c);
  size_t nsec = 0;
  char err[512];
  int rc = 1, lvl;
  if (sections(&c, secs, &nsec, err, sizeof err) || check_apps(err, sizeof err) ||
      cfg_load(secs, nsec, argc, argv, err, sizeof err)) {
    fprintf(stderr, "grove serve: %s (see grove serve --help)\n", err);
    cfg_release(secs, nsec);
    return 2;
  }
  if ((lvl = log_level_parse(c.core.log_level)) < 0 ||
      (strcmp(c.core.log_format, "text") && strcmp(c.core.log_format, "json"))) {
    fprintf(stderr, "grove serve: bad --log-level or --log-format\n");
    cfg_release(secs, nsec);
    return 2;
  }
  log_setup((enum log_level)lvl, strcmp(c.core.log_format, "json") == 0, 2);
  unsigned roles;
  if (role_parse(c.core.role, &roles, err, sizeof err) ||
      role_check(roles, c.store.url && strncmp(c.store.url, "postgres", 8) == 0,
                 broker_configured(&c.broker), err, sizeof err)) {
    fprintf(stderr, "grove serve: %s\n", err);
    cfg_release(secs, nsec);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  /* Every thread made from here on inherits the blocked signals; one
   * thread waits for them. */
  struct signal_ctx sc;
  sigemptyset(&sc.set);
  sigaddset(&sc.set, SIGINT);
  sigaddset(&sc.set, SIGTERM);
  sigaddset(&sc.set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &sc.set, NULL);

  struct metrics *metrics = NULL;
  struct router *router = NULL;
  struct store *store = NULL;
  struct hub *hub = NULL;
  struct gate *gate = NULL;
  struct broker *broker = NULL;
  struct http_server *srv = NULL;
  struct static_root *web = NULL;
  struct health *health = NULL;
  struct telemetry *telemetry = NULL;
  struct jobs *jobs = NULL;
  struct blobs *blobs = NULL;
  struct tus *tus = NULL;
  struct tus_api *tus_api = NULL;
  void *states[MAX_APPS] = {0};
  size_t started = 0;
  pthread_t sig_thread;
  bool sig_started = false;

  if (metrics_create(&metrics) || metrics_add_process(metrics) ||
      metrics_add_build_info(metrics, "grove", GROVE_VERSION, grove_revision()) ||
      router_create(&router, metrics) || health_create(&health))
    goto out;
  if (store_open(&store, &c.store, err, sizeof err)) {
    log_error(NULL, "cannot open store", "error=\"%s\"", err);
    goto out;
  }
  /* the platform's tables first (the store's own, the gate's, the job
   * queue's), so that an app's may reference users or devices */
  if (store_prepare(store, GROVE_VERSION, err, sizeof err)) {
    log_error(NULL, "cannot migrate database", "module=store error=\"%s\"", err);
    goto out;
  }
  if (store_migrate(store, "gate", gate_migrations, gate_nmigrations, NULL, err, sizeof err)) {
    log_error(NULL, "cannot migrate database", "module=gate error=\"%s\"", err);
    goto out;
  }
  if (store_migrate(store, "jobs", jobs_migrations, jobs_nmigrations, NULL, err, sizeof err)) {
    log_error(NULL, "cannot migrate database", "module=jobs error=\"%s\"", err);
    goto out;
  }
  if (store_migrate(store, "blobs", blobs_migrations, blobs_nmigrations, NULL, err, sizeof err)) {
    log_error(NULL, "cannot migrate database", "module=blobs error=\"%s\"", err);
    goto out;
  }
  if (store_migrate(store, "tus", tus_migrations, tus_nmigrations, NULL, err, sizeof err)) {
    log_error(NULL, "cannot migrate database", "module=tus error=\"%s\"", err);
    goto out;
  }
  for (size_t i = 0; i < grove_napps; i++) {
    const struct grove_app *a = grove_apps[i];
    if (a->nmigrations &&
        store_migrate(store, a->name, a->migrations, a->nmigrations, NULL, err, sizeof err)) {
      log_error(NULL, "cannot migrate database", "app=%s error=\"%s\"", a->name, err);
      goto out;
    }
  }
  if (gate_create(&gate, &c.gate, store, metrics, err, sizeof err)) {
    log_error(NULL, "cannot start the gate", "error=\"%s\"", err);
    goto out;
  }
  if ((roles & ROLE_API) && gate_routes(gate, router, err, sizeof err)) {
    log_error(NULL, "cannot start the gate", "error=\"%s\"", err);
    goto out;
  }
  struct hooks_arg ha = {0};
  struct http_server_hooks hooks = {on_loop_start, on_loop_stop, &ha};
  if ((rc = http_server_create(&srv, &c.http, router, metrics, &hooks))) {
    rc = 1;
    goto out;
  }
  rc = 1;
  if (hub_create(&hub, &c.hub, http_server_threads(srv), metrics))
    goto out;
  if ((roles & ROLE_API) && hub_routes(hub, router, err, sizeof err)) {
    log_error(NULL, "cannot start the live hub", "error=\"%s\"", err);
    goto out;
  }
  c.jobs.workers = c.jobs.workers && (roles & ROLE_WORKER);
  if (jobs_create(&jobs, &c.jobs, store, hub, metrics, err, sizeof err) ||
      ((roles & ROLE_API) && jobs_routes(jobs, router, err, sizeof err))) {
    log_error(NULL, "cannot start the job queue", "error=\"%s\"", err);
    goto out;
  }
  ha.hub = hub;
  hub_attach_gate(hub, gate);
  /* the gate and the hub reach other instances through the broker; neither
   * knows the other */
  if (broker_configured(&c.broker)) {
    int e = broker_create(&broker, &c.broker, http_server_threads(srv), metrics, health, err,
                          sizeof err);
    if (!e && (e = hub_attach_broker(hub, broker)))
      snprintf(err, sizeof err, "cannot share live topics: %s", grove_strerror(e));
    else if (!e)
      e = gate_attach_broker(gate, broker, err, sizeof err);
    if (!e && (e = jobs_attach_broker(jobs, broker)))
      snprintf(err, sizeof err, "cannot wake other instances' job workers: %s",
               grove_strerror(e));
    if (e) {
      log_error(NULL, "cannot start the broker", "error=\"%s\"", err);
      goto out;
    }
    ha.broker = broker;
  }
  char web_dir[4096];
  const char *web_root = c.http.web_root;
  if (web_root && strcmp(web_root, "auto") == 0) {
    web_root = find_web_root(web_dir, sizeof web_dir);
    if (web_root)
      log_info(NULL, "web console", "root=\"%s\"", web_root);
    else
      log_warn(NULL, "no web console found: / answers 404",
               "looked_in=\"%s, ./web, %s\" hint=\"pass --web-root DIR\"",
               GROVE_WEB_INSTALL_DIR, GROVE_WEB_SOURCE_DIR);
  }
  if (static_create(&web, router, roles & ROLE_API ? web_root : NULL))
    goto out;
  const char *data_dir = c.store.data_dir && *c.store.data_dir ? c.store.data_dir : ".";
  struct telemetry_env tenv = {store, c.store.url, data_dir, metrics, health,
                               !(roles & ROLE_WORKER)};
  if (telemetry_open(&telemetry, &c.telemetry, &tenv, err, sizeof err) ||
      ((roles & ROLE_API) && telemetry_routes(telemetry, router, err, sizeof err))) {
    log_error(NULL, "cannot start telemetry", "error=\"%s\"", err);
    goto out;
  }
  struct blobs_env benv = {store, data_dir, c.http.max_upload, metrics};
  if (blobs_open(&blobs, &c.blobs, &benv, err, sizeof err) ||
      ((roles & ROLE_API) && blobs_routes(blobs, router, err, sizeof err))) {
    log_error(NULL, "cannot start the blob store", "error=\"%s\"", err);
    goto out;
  }
  /* resumable uploads keep their partial files in the blob store's spool
   * directory, so a finished one moves into the store without a copy */
  c.tus.max_size = blobs_max_size(blobs);
  if ((roles & ROLE_API) &&
      (tus_open(&tus, &c.tus, store, blobs_spool_dir(blobs), blobs_instance(blobs), err,
                sizeof err) ||
       tus_routes(&tus_api, tus, blobs, router, err, sizeof err))) {
    log_error(NULL, "cannot start resumable uploads", "error=\"%s\"", err);
    goto out;
  }
  struct grove_ctx ctx = {store,  hub,           gate,
                          metrics, router, GROVE_VERSION,
                          data_dir, &c.llm,
                          c.store.url,   health, roles, telemetry, jobs, broker, blobs};
  for (; started < grove_napps; started++) {
    const struct grove_app *a = grove_apps[started];
    int e = a->start(&ctx, &states[started]);
    if (e) {
      log_error(NULL, "cannot start app", "app=%s error=\"%s\"", a->name, grove_strerror(e));
      goto out;
    }
    if (((roles & (a->route_roles ? a->route_roles : ROLE_API)) &&
         router_add_all(router, a->name, a->routes, a->nroutes, states[started], err,
                        sizeof err)) ||
        hub_topics_add(hub, a->name, a->topics, a->ntopics, states[started], err,
                       sizeof err)) {
      started++; /* stopped below with the others */
      log_error(NULL, "cannot start app", "app=%s error=\"%s\"", a->name, err);
      goto out;
    }
    if (a->njobs && jobs_register(jobs, a->jobs, a->njobs, states[started], err, sizeof err)) {
      started++;
      log_error(NULL, "cannot start app", "app=%s error=\"%s\"", a->name, err);
      goto out;
    }
  }
  int be = broker ? broker_start(broker) : 0; /* after the apps subscribed their channels */
  if (be) {
    log_error(NULL, "cannot start the broker", "error=\"%s\"", grove_strerror(be));
    goto out;
  }
  if (jobs_start(jobs))
    goto out;
  router_each(router, log_route, NULL);
  sc.srv = srv;
  sc.jobs = jobs;
  sc.timeout_ms = c.http.shutdown_timeout_ms;
  pthread_create(&sig_thread, NULL, signal_thread, &sc);
  sig_started = true;
  char role_set[32];
  role_format(roles, role_set, sizeof role_set);
  log_info(NULL, "listening", "addr=%s port=%d threads=%d store=%s broker=%s role=%s",
           c.http.listen, http_server_port(srv), http_server_threads(srv),
           store_driver_name(store), broker ? "redis" : "none", role_set);
  http_server_run(srv);
  log_info(NULL, "stopped", NULL);
  rc = 0;
out:
  if (sig_started) {
    pthread_kill(sig_thread, SIGUSR2);
    pthread_join(sig_thread, NULL);
  }
  if (jobs) /* handlers use the apps' state: they stop first */
    jobs_stop(jobs, c.http.shutdown_timeout_ms);
  while (started > 0) {
    started--;
    if (grove_apps[started]->stop)
      grove_apps[started]->stop(states[started]);
  }
  http_server_destroy(srv);
  broker_stop(broker); /* its threads deliver into the hub and the gate */
  telemetry_close(telemetry);
  jobs_destroy(jobs);
  tus_api_free(tus_api); /* after the server: its writes are done */
  tus_close(tus);
  blobs_close(blobs);  /* after the server: no request uses it any more */
  hub_destroy(hub);    /* its coalescer publishes through the broker */
  gate_destroy(gate);
  broker_destroy(broker);
  static_destroy(web);
  store_close(store);
  router_destroy(router);
  metrics_destroy(metrics);
  health_destroy(health);
  cfg_release(secs, nsec);
  return rc;
}
