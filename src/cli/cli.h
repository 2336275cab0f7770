/* cli.h — the verbs of the grove command. Each returns the exit status. */
#ifndef GROVE_CLI_H
#define GROVE_CLI_H

#include <stdio.h>

#include "app/app.h"

int cmd_serve(int argc, char **argv);
void serve_help(FILE *f);
/* `grove user …`, `grove key …` and `grove audit …` (what is "user",
 * "key" or "audit"). */
int cmd_admin(const char *what, int argc, char **argv);
void admin_help(FILE *f);

#endif
