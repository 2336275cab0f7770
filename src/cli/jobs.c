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
#include "core/log.h"
#include "core/text.h"
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

static void fail(const char *verb, const char *msg) {
  fprintf(stderr, "grove jobs %s: ", verb);
  text_fputs(msg, stderr);
  fputc('\n', stderr);
}

int cmd_jobs(int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    jobs_help(argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  const char *verb = argv[0];
  const char *arg = argc > 1 && strncmp(argv[1], "--", 2) != 0 ? argv[1] : NULL;
  int skip = arg ? 2 : 1;
  struct jobs_cli_cfg c;
  memset(&c, 0, sizeof c);
  struct cfg_section secs[] = {
      {"store", store_cfg_opts, store_cfg_nopts, &c.store},
      {"jobs", jobs_cli_opts, ARRAY_LEN(jobs_cli_opts), &c},
  };
  char err[512];
  int rc = 2;
  struct store *st = NULL;
  struct jobs *j = NULL;
  log_setup(LOG_WARN, false, 2);
  bool needs_id = strcmp(verb, "retry") == 0 || strcmp(verb, "cancel") == 0 ||
                  strcmp(verb, "show") == 0;
  if (!needs_id && strcmp(verb, "queues") != 0 && strcmp(verb, "dead") != 0) {
    fprintf(stderr, "grove jobs: unknown command '%s'\n\n", verb);
    jobs_help(stderr);
    return 2;
  }
  if (cfg_load(secs, ARRAY_LEN(secs), argc - skip, argv + skip, err, sizeof err)) {
    fail(verb, err);
    goto out;
  }
  if (needs_id && !arg) {
    fprintf(stderr, "grove jobs %s: missing ID\n", verb);
    goto out;
  }
  if (c.limit < 1 || c.limit > 1000) {
    fprintf(stderr, "grove jobs dead: --limit must be 1 to 1000\n");
    goto out;
  }
  rc = 1;
  struct jobs_cfg jc = {.lease_ms = 30000, .poll_ms = 200, .backoff_base_ms = 1000,
                        .backoff_max_ms = 600000, .max_attempts = 5, .concurrency = "",
                        .batch = 1, .workers = false};
  if (store_open(&st, &c.store, err, sizeof err) ||
      store_migrate(st, "jobs", jobs_migrations, jobs_nmigrations, NULL, err, sizeof err) ||
      jobs_create(&j, &jc, st, NULL, NULL, err, sizeof err)) {
    fail(verb, err);
    goto out;
  }
  fprintf(stderr, "grove jobs: using %s database '%s'\n", store_driver_name(st),
          store_display_name(st));
  json_t *list = NULL;
  int e = 0;
  enum jobs_state state;
  if (strcmp(verb, "queues") == 0) {
    if (!(e = jobs_queues(j, &list))) {
      static const char *const cols[] = {"queue", "priority", "depth", "oldest_age_s",
                                         "running", "dead", NULL};
      cli_print_list(list, cols);
    }
  } else if (strcmp(verb, "dead") == 0) {
    if (!(e = jobs_dead(j, c.limit, &list))) {
      static const char *const cols[] = {"task_id", "type", "queue", "owner", "attempts",
                                         "finished_at", "error", NULL};
      cli_print_list(list, cols);
    }
  } else if (strcmp(verb, "retry") == 0) {
    e = jobs_retry(j, arg);
    if (e == GROVE_EEXIST) {
      fail(verb, "only dead or cancelled jobs are retried");
      goto out;
    }
  } else if (strcmp(verb, "cancel") == 0) {
    e = jobs_cancel(j, arg, NULL, &state);
    if (e == GROVE_EEXIST) {
      fprintf(stderr, "grove jobs cancel: the job has finished already (%s)\n",
              jobs_state_name(state));
      goto out;
    }
    if (!e)
      printf("%s\n", state == JOBS_RUNNING ? "cancel requested: the handler stops at its "
                                             "next check"
                                           : "cancelled");
  } else {
    if (!(e = jobs_get(j, arg, &list))) {
      char *text = jsonout_dumps(list, JSON_INDENT(2) | JSON_ENSURE_ASCII);
      if (text)
        printf("%s\n", text);
      free(text);
    }
  }
  json_decref(list);
  if (e == GROVE_ENOENT) {
    fail(verb, "no such job");
    goto out;
  }
  if (e) {
    fail(verb, grove_strerror(e));
    goto out;
  }
  rc = 0;
out:
  jobs_destroy(j);
  store_close(st);
  cfg_release(secs, ARRAY_LEN(secs));
  return rc;
}
