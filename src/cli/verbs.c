/* verbs.c — what the commands that manage the database a server uses
 * share (`grove user|key|audit`, admin.c; `grove jobs`, jobs.c): `grove
 * NOUN VERB [ARG] [--options]` parsed, the options loaded (the store's
 * among them), the verb and its argument checked, the store opened and
 * named on standard error, the verb run, everything closed. Each command
 * is a table of verbs (struct cli_noun). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/text.h"
#include "store/store.h"

void cli_fail(const char *noun, const char *verb, const char *msg) {
  fprintf(stderr, "grove %s%s%s: ", noun, verb ? " " : "", verb ? verb : "");
  text_fputs(msg, stderr);
  fputc('\n', stderr);
}

int cli_verbs_run(const struct cli_noun *n, struct cfg_section *secs, size_t nsecs,
                  const struct store_cfg *store, void *cfg, int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    n->usage(argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  const char *verb = argv[0];
  const char *arg = argc > 1 && strncmp(argv[1], "--", 2) != 0 ? argv[1] : NULL;
  int skip = arg ? 2 : 1;
  const struct cli_verb *v = n->verbs;
  while (v->name && strcmp(v->name, verb) != 0)
    v++;
  log_setup(LOG_WARN, false, 2);
  if (!v->name) {
    fprintf(stderr, "grove %s: unknown command '", n->noun);
    text_fputs(verb, stderr);
    fprintf(stderr, "'\n\n");
    n->usage(stderr);
    return 2;
  }
  char err[512];
  int rc = 2;
  struct store *st = NULL;
  void *state = NULL;
  if (cfg_load(secs, nsecs, argc - skip, argv + skip, err, sizeof err)) {
    cli_fail(n->noun, NULL, err);
    goto out;
  }
  if (v->arg && !arg) {
    fprintf(stderr, "grove %s %s: missing %s\n", n->noun, verb, v->arg);
    goto out;
  }
  rc = 1;
  if (store_open(&st, store, err, sizeof err) ||
      (n->open && n->open(st, cfg, &state, err, sizeof err))) {
    cli_fail(n->noun, NULL, err);
    goto out;
  }
  /* on stderr: scripts read what a verb prints from stdout */
  fprintf(stderr, "grove %s: using %s database '%s'%s\n", n->noun, store_driver_name(st),
          store_display_name(st),
          store_created(st) ? " (a new file: pass --data-dir or --store to use another)" : "");
  struct cli_verb_ctx x = {n->noun, verb, arg, st, state};
  rc = v->run(&x, cfg);
out:
  if (n->close)
    n->close(state);
  store_close(st);
  cfg_release(secs, nsecs);
  return rc;
}
