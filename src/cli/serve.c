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
  struct hub_cfg hub;
  struct gate_cfg gate;
  struct llm_cfg llm;
  struct telemetry_cfg telemetry;
  struct jobs_cfg jobs;
};

#define MAX_SECTIONS 16

static size_t sections(struct serve_cfg *c, struct cfg_section *s) {
  size_t n = 0;
  s[n++] = (struct cfg_section){"core", core_opts, ARRAY_LEN(core_opts), &c->core};
  s[n++] = (struct cfg_section){"http", http_cfg_opts, http_cfg_nopts, &c->http};
  s[n++] = (struct cfg_section){"store", store_cfg_opts, store_cfg_nopts, &c->store};
  s[n++] = (struct cfg_section){"live", hub_cfg_opts, hub_cfg_nopts, &c->hub};
  s[n++] = (struct cfg_section){"gate", gate_cfg_opts, gate_cfg_nopts, &c->gate};
  s[n++] = (struct cfg_section){"llm", llm_cfg_opts, llm_cfg_nopts, &c->llm};
  s[n++] = (struct cfg_section){"telemetry", telemetry_cfg_opts, telemetry_cfg_nopts,
                                &c->telemetry};
  s[n++] = (struct cfg_section){"jobs", jobs_cfg_opts, jobs_cfg_nopts, &c->jobs};
  for (size_t i = 0; i < grove_napps && n < MAX_SECTIONS; i++)
    if (grove_apps[i]->nopts)
      s[n++] = (struct cfg_section){grove_apps[i]->name, grove_apps[i]->opts,
                                    grove_apps[i]->nopts, grove_apps[i]->cfg};
  return n;
}

void serve_help(FILE *f) {
  struct serve_cfg c;
  struct cfg_section s[MAX_SECTIONS];
  memset(&c, 0, sizeof c);
  fprintf(f,
          "usage: grove serve [options]\n\n"
          "Runs Grove: the HTTP API, the live hub and every app, on the embedded\n"
          "defaults unless told otherwise. Options come from a file (--config FILE or\n"
          "GROVE_CONFIG; lines of \"name = value\"), GROVE_* variables and flags; flags\n"
          "win. SIGTERM or SIGINT finishes in-flight requests and exits.\n\n"
          "  --config FILE          GROVE_CONFIG             read options from FILE\n"
          "  --help                                          show this help\n");
  cfg_print_help(f, s, sections(&c, s));
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
  struct gate *gate;
};

static void on_loop_start(uv_loop_t *loop, int index, void *arg) {
  struct hooks_arg *h = arg;
  hub_loop_start(h->hub, loop, index);
  gate_loop_start(h->gate, loop, index);
}

static void on_loop_stop(uv_loop_t *loop, int index, void *arg) {
  struct hooks_arg *h = arg;
  (void)loop;
  gate_loop_stop(h->gate, index);
  hub_loop_stop(h->hub, index);
}

static int record_meta(struct store *st) {
  char err[256], now[32];
  snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
  const char *created[] = {"created_at", now};
  const char *version[] = {"version", GROVE_VERSION};
  int rc = store_query(st, "INSERT INTO grove_meta (key, value) VALUES ($1, $2) "
                           "ON CONFLICT (key) DO NOTHING", created, 2, NULL, err, sizeof err);
  if (!rc)
    rc = store_query(st, "INSERT INTO grove_meta (key, value) VALUES ($1, $2) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     version, 2, NULL, err, sizeof err);
  if (rc)
    log_error(NULL, "cannot record database facts", "error=\"%s\"", err);
  return rc;
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

/* Registers an app's topic rules: each prefix under the app's own name. */
static int app_topics(struct hub *hub, const struct grove_app *a, void *state, char *err,
                      size_t errlen) {
  size_t n = strlen(a->name);
  for (size_t i = 0; i < a->ntopics; i++)
    if (strncmp(a->topics[i].prefix, a->name, n) != 0 || a->topics[i].prefix[n] != '/') {
      snprintf(err, errlen, "topic prefix '%s' of '%s' is outside its namespace '%s/'",
               a->topics[i].prefix, a->name, a->name);
      return GROVE_EINVAL;
    }
  return hub_topics_add(hub, a->name, a->topics, a->ntopics, state, err, errlen);
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
  size_t nsec = sections(&c, secs);
  char err[512];
  int rc = 1, lvl;
  if (cfg_load(secs, nsec, argc, argv, err, sizeof err)) {
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
                 c.hub.broker && *c.hub.broker, err, sizeof err)) {
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
  struct http_server *srv = NULL;
  struct static_root *web = NULL;
  struct health *health = NULL;
  struct telemetry *telemetry = NULL;
  struct jobs *jobs = NULL;
  void *states[32] = {0};
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
  for (size_t i = 0; i < grove_napps; i++) {
    const struct grove_app *a = grove_apps[i];
    if (a->nmigrations &&
        store_migrate(store, a->name, a->migrations, a->nmigrations, NULL, err, sizeof err)) {
      log_error(NULL, "cannot migrate database", "app=%s error=\"%s\"", a->name, err);
      goto out;
    }
  }
  if (store_migrate(store, "gate", gate_migrations, gate_nmigrations, NULL, err, sizeof err)) {
    log_error(NULL, "cannot migrate database", "app=gate error=\"%s\"", err);
    goto out;
  }
  if (store_migrate(store, "jobs", jobs_migrations, jobs_nmigrations, NULL, err, sizeof err)) {
    log_error(NULL, "cannot migrate database", "app=jobs error=\"%s\"", err);
    goto out;
  }
  if (record_meta(store))
    goto out;
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
  ha.gate = gate;
  gate_attach_hub(gate, hub);
  hub_attach_gate(hub, gate);
  if (c.hub.broker && *c.hub.broker &&
      gate_share(gate, c.hub.broker, http_server_threads(srv), err, sizeof err)) {
    log_error(NULL, "cannot share rate limits", "error=\"%s\"", err);
    goto out;
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
  struct grove_ctx ctx = {store,  hub,           gate,
                          metrics, router, GROVE_VERSION,
                          data_dir, &c.llm,
                          c.store.url,   health, roles, telemetry, jobs};
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
        app_topics(hub, a, states[started], err, sizeof err)) {
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
           store_driver_name(store), c.hub.broker && *c.hub.broker ? "redis" : "none", role_set);
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
  telemetry_close(telemetry);
  jobs_destroy(jobs);
  hub_destroy(hub);
  gate_destroy(gate);
  static_destroy(web);
  store_close(store);
  router_destroy(router);
  metrics_destroy(metrics);
  health_destroy(health);
  cfg_release(secs, nsec);
  return rc;
}
