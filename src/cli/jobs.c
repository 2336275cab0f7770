/* jobs.c — `grove jobs`: the job queue as an operator sees it, on the
 * database a server uses (the same --store and --data-dir), with or
 * without a server running: queues (depth, oldest, running, dead), the
 * dead-letter list, retrying a dead job, cancelling a job, showing one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/util.h"
#include "jobs/jobs.h"
#include "store/store.h"

struct jobs_cli_cfg {
  struct store_cfg store;
  int limit;
};

static const struct cfg_opt jobs_cli_opts[] = {
    CFG_OPT(struct jobs_cli_cfg, "limit", CFG_INT, limit, "100", "dead: how many, newest first (1 to 1000)"),
};

void jobs_help(FILE *f) {
  fprintf(f,
          "usage: grove jobs queues\n"
          "       grove jobs dead [--limit N]\n"
          "       grove jobs retry ID\n"
          "       grove jobs cancel ID\n"
          "       grove jobs show ID\n\n"
          "Looks after the durable job queue in the database that grove serve uses:\n"
          "pass the same --store and --data-dir (or GROVE_STORE, GROVE_DATA_DIR,\n"
          "--config). A server may keep running.\n"
          "  queues   per queue: priority, depth (queued and waiting to retry), age of\n"
          "           the oldest runnable job in seconds, running, dead\n"
          "  dead     the dead-letter list with each job's last error\n"
          "  retry    queues a dead or cancelled job again, its attempts reset\n"
          "  cancel   cancels a queued job now; a running one stops at its\n"
          "           handler's next check\n"
          "  show     one job as JSON\n"
          "Lists are tab-separated; text that users wrote is shown escaped.\n\n"
          "options:\n"
          "  --limit N              dead: jobs, newest first (default: 100)\n"
          "  --store, --data-dir, --config   as for grove serve\n");
}

static int jobs_open(struct store *st, void *cfg, void **state, char *err, size_t errlen) {
  (void)cfg;
  struct jobs_cfg jc = {.lease_ms = 30000, .poll_ms = 200, .backoff_base_ms = 1000,
                        .backoff_max_ms = 600000, .max_attempts = 5, .concurrency = "",
                        .batch = 1, .workers = false};
  struct jobs *j = NULL;
  int rc = store_migrate(st, "jobs", jobs_migrations, jobs_nmigrations, NULL, err, errlen);
  if (!rc)
    rc = jobs_create(&j, &jc, st, NULL, NULL, err, errlen);
  *state = j;
  return rc;
}

static void jobs_close(void *state) { jobs_destroy(state); }

/* The exit status of a jobs_* error: "no such job" and the rest. */
static int failed(const struct cli_verb_ctx *x, int e) {
  cli_fail(x->noun, x->verb, e == GROVE_ENOENT ? "no such job" : grove_strerror(e));
  return 1;
}

static int v_queues(const struct cli_verb_ctx *x, void *cfg) {
  (void)cfg;
  json_t *list = NULL;
  int e = jobs_queues(x->state, &list);
  if (e)
    return failed(x, e);
  static const char *const cols[] = {"queue", "priority", "depth", "oldest_age_s",
                                     "running", "dead", NULL};
  cli_print_list(list, cols);
  json_decref(list);
  return 0;
}

static int v_dead(const struct cli_verb_ctx *x, void *cfg) {
  const struct jobs_cli_cfg *c = cfg;
  if (c->limit < 1 || c->limit > 1000) {
    fprintf(stderr, "grove jobs dead: --limit must be 1 to 1000\n");
    return 2;
  }
  json_t *list = NULL;
  int e = jobs_dead(x->state, c->limit, &list);
  if (e)
    return failed(x, e);
  static const char *const cols[] = {"task_id", "type", "queue", "owner", "attempts",
                                     "finished_at", "error", NULL};
  cli_print_list(list, cols);
  json_decref(list);
  return 0;
}

static int v_retry(const struct cli_verb_ctx *x, void *cfg) {
  (void)cfg;
  int e = jobs_retry(x->state, x->arg);
  if (e == GROVE_EEXIST) {
    cli_fail(x->noun, x->verb, "only dead or cancelled jobs are retried");
    return 1;
  }
  return e ? failed(x, e) : 0;
}

static int v_cancel(const struct cli_verb_ctx *x, void *cfg) {
  (void)cfg;
  enum jobs_state state;
  int e = jobs_cancel(x->state, x->arg, NULL, &state);
  if (e == GROVE_EEXIST) {
    fprintf(stderr, "grove jobs cancel: the job has finished already (%s)\n",
            jobs_state_name(state));
    return 1;
  }
  if (e)
    return failed(x, e);
  printf("%s\n", state == JOBS_RUNNING ? "cancel requested: the handler stops at its next check"
                                       : "cancelled");
  return 0;
}

static int v_show(const struct cli_verb_ctx *x, void *cfg) {
  (void)cfg;
  json_t *o = NULL;
  int e = jobs_get(x->state, x->arg, &o);
  if (e)
    return failed(x, e);
  char *text = jsonout_dumps(o, JSON_INDENT(2) | JSON_ENSURE_ASCII);
  if (text)
    printf("%s\n", text);
  free(text);
  json_decref(o);
  return text ? 0 : 1;
}

static const struct cli_verb jobs_verbs[] = {
    {"queues", NULL, v_queues}, {"dead", NULL, v_dead},   {"retry", "ID", v_retry},
    {"cancel", "ID", v_cancel}, {"show", "ID", v_show},   {NULL, NULL, NULL},
};

int cmd_jobs(int argc, char **argv) {
  static const struct cli_noun noun = {"jobs", jobs_verbs, jobs_help, jobs_open, jobs_close};
  struct jobs_cli_cfg c;
  memset(&c, 0, sizeof c);
  struct cfg_section secs[] = {
      {"store", store_cfg_opts, store_cfg_nopts, &c.store},
      {"jobs", jobs_cli_opts, ARRAY_LEN(jobs_cli_opts), &c},
  };
  return cli_verbs_run(&noun, secs, ARRAY_LEN(secs), &c.store, &c, argc, argv);
}
