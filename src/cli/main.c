/* main.c — the grove command: picks the verb and hands it the rest. */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <wslay/wslayver.h>
#include <zlib.h>

#include "cli/cli.h"

/* Apps' verbs come from the app table (app.h); grove serve --help lists
 * the apps with their summaries. */
static void usage(FILE *f) {
  fprintf(f,
          "usage: grove <verb> [options]\n\n"
          "Grove: several apps in one program, on one HTTP API with a live hub\n"
          "(grove serve --help lists them).\n\n"
          "verbs:\n"
          "  serve      run the server (grove serve --help lists every option)\n"
          "  user       add, list, disable users and set passwords (grove user --help)\n"
          "  key        add, list and revoke API keys for machines (grove key --help)\n"
          "  audit      read the audit log: grove audit list (grove audit --help)\n"
          "  jobs       queues, dead letters, retry and cancel jobs (grove jobs --help)\n");
  for (size_t i = 0; i < grove_napps; i++)
    if (grove_apps[i]->command)
      fprintf(f, "  %-10s %s (grove %s --help)\n", grove_apps[i]->name,
              grove_apps[i]->verbs ? grove_apps[i]->verbs : "the app's own verbs",
              grove_apps[i]->name);
  fprintf(f, "  version    print the version and the libraries in use\n"
             "  help       show this help; grove help VERB shows a verb's own\n\n"
             "Every verb takes --help. Options also come from GROVE_* variables and a\n"
             "config file (--config FILE); grove serve --help lists them all.\n");
}

/* The app whose name is `verb` and that has verbs of its own. */
static const struct grove_app *app_verb(const char *verb) {
  for (size_t i = 0; i < grove_napps; i++)
    if (grove_apps[i]->command && strcmp(grove_apps[i]->name, verb) == 0)
      return grove_apps[i];
  return NULL;
}

static void version_help(FILE *f) {
  fprintf(f, "usage: grove version\n\n"
             "Prints Grove's version, the source revision it was built from and the\n"
             "versions of its libraries.\n");
}

static int cmd_version(void) {
  printf("grove %s (revision %s)\n", GROVE_VERSION, grove_revision());
  printf("libuv %s, sqlite %s, libpq %d, hiredis %d.%d.%d, jansson %s, wslay %s, zlib %s\n",
         uv_version_string(), sqlite3_libversion(), PQlibVersion(), HIREDIS_MAJOR,
         HIREDIS_MINOR, HIREDIS_PATCH, JANSSON_VERSION, WSLAY_VERSION, zlibVersion());
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *verb = argv[1];
  if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "help") == 0) {
    if (argc > 2 && strcmp(argv[2], "serve") == 0)
      serve_help(stdout);
    else if (argc > 2 && (strcmp(argv[2], "user") == 0 || strcmp(argv[2], "key") == 0 ||
                         strcmp(argv[2], "audit") == 0))
      admin_help(stdout);
    else if (argc > 2 && strcmp(argv[2], "jobs") == 0)
      jobs_help(stdout);
    else if (argc > 2 && app_verb(argv[2]))
      app_verb(argv[2])->command_help(stdout);
    else if (argc > 2 && strcmp(argv[2], "version") == 0)
      version_help(stdout);
    else if (argc > 2 && strcmp(argv[2], "help") != 0) {
      fprintf(stderr, "grove: unknown verb '%s'\n\n", argv[2]);
      usage(stderr);
      return 2;
    } else
      usage(stdout);
    return 0;
  }
  if (strcmp(verb, "serve") == 0)
    return cmd_serve(argc - 2, argv + 2);
  if (strcmp(verb, "user") == 0 || strcmp(verb, "key") == 0 || strcmp(verb, "audit") == 0)
    return cmd_admin(verb, argc - 2, argv + 2);
  if (strcmp(verb, "jobs") == 0)
    return cmd_jobs(argc - 2, argv + 2);
  if (app_verb(verb))
    return app_verb(verb)->command(argc - 2, argv + 2);
  if (strcmp(verb, "version") == 0 || strcmp(verb, "--version") == 0) {
    if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
      version_help(stdout);
      return 0;
    }
    return cmd_version();
  }
  fprintf(stderr, "grove: unknown verb '%s'\n\n", verb);
  usage(stderr);
  return 2;
}
