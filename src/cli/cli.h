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
/* Prints a JSON array of objects as a tab-separated table of cols (a NULL-
 * ended list), a header line first; strings escaped (core/text.h),
 * integers, reals, yes/no, '-' for the rest. */
void cli_print_list(json_t *list, const char *const *cols);

#endif
