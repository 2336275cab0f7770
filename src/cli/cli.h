/* cli.h — the verbs of the grove command. Each returns the exit status. */
#ifndef GROVE_CLI_H
#define GROVE_CLI_H

#include <jansson.h>
#include <stdio.h>

#include "app/app.h"

int cmd_serve(int argc, char **argv);
void serve_help(FILE *f);
/* `grove user …`, `grove key …` and `grove audit …` (what is "user",
 * "key" or "audit"). */
int cmd_admin(const char *what, int argc, char **argv);
void admin_help(FILE *f);
/* `grove jobs …`: queues, dead letters, retry, cancel, show. */
int cmd_jobs(int argc, char **argv);
void jobs_help(FILE *f);
/* ---- commands of verbs on the server's database (verbs.c) ----------------
 * `grove NOUN VERB [ARG] [--options]`: admin.c and jobs.c are tables of
 * these; cli_verbs_run does the rest. */
struct store;
struct store_cfg;
struct cfg_section;

struct cli_verb_ctx {
  const char *noun, *verb;
  const char *arg;    /* the verb's argument (NULL when none was given) */
  struct store *st;   /* open, migrated by the noun's open */
  void *state;        /* what the noun's open made */
};

struct cli_verb {
  const char *name;   /* NULL ends a table */
  const char *arg;    /* what it needs named in "missing ID" ("ID", "EMAIL"); NULL: none */
  /* Runs the verb; prints its output on stdout and its errors on stderr.
   * Returns the exit status: 0, 1 (failed), 2 (bad usage). */
  int (*run)(const struct cli_verb_ctx *x, void *cfg);
};

struct cli_noun {
  const char *noun;              /* "jobs" */
  const struct cli_verb *verbs;
  void (*usage)(FILE *f);
  /* After the store opened (may be NULL): migrations, the module's state.
   * Returns 0, or an error with err saying why. */
  int (*open)(struct store *st, void *cfg, void **state, char *err, size_t errlen);
  void (*close)(void *state);    /* may be NULL; gets NULL when open did not run */
};

/* Runs `grove NOUN argv…`: --help, the verb looked up (unknown: usage and
 * 2), options loaded into secs (which hold the store's section, `store`),
 * the argument checked (2 when missing), the store opened (1 when it
 * fails), its name printed on stderr, the verb run. Frees what it made;
 * cfg_release(secs) included. Returns the exit status. */
int cli_verbs_run(const struct cli_noun *n, struct cfg_section *secs, size_t nsecs,
                  const struct store_cfg *store, void *cfg, int argc, char **argv);
/* "grove NOUN[ VERB]: MSG" on stderr, MSG escaped (it may quote input). */
void cli_fail(const char *noun, const char *verb, const char *msg);

/* Prints a JSON array of objects as a tab-separated table of cols (a NULL-
 * ended list), a header line first; strings escaped (core/text.h),
 * integers, reals, yes/no, '-' for the rest. */
void cli_print_list(json_t *list, const char *const *cols);

#endif
