/* admin.c — `grove user`, `grove key` and `grove audit`: manage users and
 * API keys and read the audit log on the database a server uses (the same
 * --store and --data-dir options), with or without a server running.
 * Passwords are read from standard input, never from the command line.
 * Everything printed that a user may have written (names, emails, key
 * names, audit targets, errors quoting them) goes through core/text.h, so
 * it cannot forge a row or drive the terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "core/util.h"
#include "gate/gate.h"
#include "store/store.h"

struct admin_cfg {
  struct store_cfg store;
  struct gate_cfg gate;
  char *name;
  char *role;
  char *scopes;
  int limit;
};

static const struct cfg_opt admin_opts[] = {
    CFG_OPT(struct admin_cfg, "name", CFG_STR, name, "", "user add: the user's display name"),
    CFG_OPT(struct admin_cfg, "role", CFG_STR, role, "member", "user add: admin or member"),
    CFG_OPT(struct admin_cfg, "scopes", CFG_STR, scopes, "read", "key add: read, write, admin (comma-separated)"),
    CFG_OPT(struct admin_cfg, "limit", CFG_INT, limit, "100", "audit list: how many entries, newest first (1 to 1000)"),
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: grove user add EMAIL [--name NAME] [--role admin|member]\n"
          "       grove user list\n"
          "       grove user passwd EMAIL\n"
          "       grove user disable EMAIL | enable EMAIL\n"
          "       grove key add NAME [--scopes read,write,admin]\n"
          "       grove key list\n"
          "       grove key revoke ID\n"
          "       grove audit list [--limit N]\n\n"
          "Manages users and API keys in the database that grove serve uses: pass the\n"
          "same --store and --data-dir (or GROVE_STORE, GROVE_DATA_DIR, --config);\n"
          "without them it is ./data/grove.db. The database used is named on standard\n"
          "error. A server may keep running: these verbs wait for its write lock (up\n"
          "to --store-busy-timeout), and it picks up new users and keys without a\n"
          "restart.\n"
          "Passwords are read from standard input (a prompt without echo on a\n"
          "terminal). A new key is printed once; only its hash is kept. Lists are\n"
          "tab-separated; in them control, bidi and invisible characters that users\n"
          "wrote are shown escaped (\\t, \\n, \\x1b, \\u202e; a backslash as \\\\).\n\n"
          "options:\n"
          "  --name NAME            user add: display name\n"
          "  --role ROLE            user add: admin or member (default: member)\n"
          "  --scopes LIST          key add: read, write, admin (default: read)\n"
          "  --limit N              audit list: entries, newest first (default: 100)\n"
          "  --store, --data-dir, --config   as for grove serve\n");
}

void admin_help(FILE *f) { usage(f); }

static int read_password(char *out, size_t n) {
  bool tty = isatty(0);
  struct termios old, quiet;
  if (tty) {
    fprintf(stderr, "password: ");
    tcgetattr(0, &old);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(0, TCSANOW, &quiet);
  }
  char *got = fgets(out, (int)n, stdin);
  if (tty) {
    tcsetattr(0, TCSANOW, &old);
    fputc('\n', stderr);
  }
  if (!got)
    return GROVE_EINVAL;
  out[strcspn(out, "\r\n")] = '\0';
  return 0;
}

/* A tab-separated table; cells are escaped (a TAB or LF in a name would
 * otherwise make a row of its own). */
void cli_print_list(json_t *list, const char *const *cols) {
  size_t i;
  json_t *row;
  for (int c = 0; cols[c]; c++)
    printf("%s%s", c ? "\t" : "", cols[c]);
  putchar('\n');
  json_array_foreach(list, i, row) {
    for (int c = 0; cols[c]; c++) {
      json_t *v = json_object_get(row, cols[c]);
      if (c)
        putchar('\t');
      if (json_is_string(v))
        text_fputs(json_string_value(v), stdout);
      else if (json_is_integer(v))
        printf("%lld", (long long)json_integer_value(v));
      else if (json_is_real(v))
        printf("%.3f", json_real_value(v));
      else if (json_is_boolean(v))
        fputs(json_is_true(v) ? "yes" : "no", stdout);
      else
        putchar('-');
    }
    putchar('\n');
  }
}

/* "grove VERB: ERR" on stderr, the error escaped (it may quote input). */
static void fail(const char *what, const char *verb, const char *err) {
  fprintf(stderr, "grove %s%s%s: ", what, verb ? " " : "", verb ? verb : "");
  text_fputs(err, stderr);
  fputc('\n', stderr);
}

int cmd_admin(const char *what, int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    usage(argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  const char *verb = argv[0];
  const char *arg = argc > 1 && strncmp(argv[1], "--", 2) != 0 ? argv[1] : NULL;
  int skip = arg ? 2 : 1;
  struct admin_cfg c;
  memset(&c, 0, sizeof c);
  struct cfg_section secs[] = {
      {"store", store_cfg_opts, store_cfg_nopts, &c.store},
      {"gate", gate_cfg_opts, gate_cfg_nopts, &c.gate},
      {"admin", admin_opts, ARRAY_LEN(admin_opts), &c},
  };
  char err[512];
  int rc = 2;
  struct store *st = NULL;
  log_setup(LOG_WARN, false, 2);
  if (cfg_load(secs, ARRAY_LEN(secs), argc - skip, argv + skip, err, sizeof err)) {
    fail(what, NULL, err);
    goto out;
  }
  bool is_user = strcmp(what, "user") == 0;
  bool is_audit = strcmp(what, "audit") == 0;
  bool needs_arg = !is_audit && strcmp(verb, "list") != 0;
  if (needs_arg && !arg) {
    fprintf(stderr, "grove %s %s: missing %s\n", what, verb,
            is_user ? "EMAIL" : strcmp(verb, "add") == 0 ? "NAME" : "ID");
    goto out;
  }
  if (store_open(&st, &c.store, err, sizeof err) ||
      store_prepare(st, GROVE_VERSION, err, sizeof err) ||
      store_migrate(st, "gate", gate_migrations, gate_nmigrations, NULL, err, sizeof err)) {
    fail(what, NULL, err);
    rc = 1;
    goto out;
  }
  gate_identifiers_upgrade(st);
  /* on stderr: scripts read the key or id from stdout */
  fprintf(stderr, "grove %s: using %s database '%s'%s\n", what, store_driver_name(st),
          store_display_name(st),
          store_created(st) ? " (a new file: pass --data-dir or --store to use another)" : "");
  rc = 1;
  char pw[1100];
  if (is_user && strcmp(verb, "add") == 0) {
    char id[40];
    if (read_password(pw, sizeof pw)) {
      fprintf(stderr, "grove user add: no password on standard input\n");
      goto out;
    }
    int e = gate_user_create(st, &c.gate, arg, c.name, pw, c.role, id, err, sizeof err);
    explicit_bzero(pw, sizeof pw);
    if (e) {
      fail("user", "add", err);
      goto out;
    }
    gate_audit(st, "cli", "user.create", id, "ok", "local", "-");
    printf("%s\n", id);
  } else if (is_user && strcmp(verb, "passwd") == 0) {
    if (read_password(pw, sizeof pw)) {
      fprintf(stderr, "grove user passwd: no password on standard input\n");
      goto out;
    }
    int e = gate_user_set_password(st, &c.gate, arg, pw, err, sizeof err);
    explicit_bzero(pw, sizeof pw);
    if (e) {
      fail("user", "passwd", err);
      goto out;
    }
    gate_audit(st, "cli", "user.passwd", arg, "ok", "local", "-");
  } else if (is_user && (strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0)) {
    bool off = strcmp(verb, "disable") == 0;
    if (gate_user_set_disabled(st, arg, off, err, sizeof err)) {
      fail("user", verb, err);
      goto out;
    }
    gate_audit(st, "cli", off ? "user.disable" : "user.enable", arg, "ok", "local", "-");
  } else if (is_audit && strcmp(verb, "list") == 0) {
    json_t *list = NULL;
    if (c.limit < 1 || c.limit > 1000) {
      fprintf(stderr, "grove audit list: --limit must be 1 to 1000\n");
      goto out;
    }
    if (gate_audit_list(st, c.limit, 0, &list, err, sizeof err)) {
      fail("audit", "list", err);
      goto out;
    }
    static const char *const acols[] = {"id", "at", "actor", "action", "target", "outcome",
                                        "ip", "request_id", NULL};
    cli_print_list(list, acols);
    json_decref(list);
  } else if (is_audit) {
    fprintf(stderr, "grove audit: unknown command '%s'\n\n", verb);
    usage(stderr);
    rc = 2;
    goto out;
  } else if (strcmp(verb, "list") == 0) {
    json_t *list = NULL;
    if ((is_user ? gate_user_list(st, &list, err, sizeof err)
                 : gate_key_list(st, &list, err, sizeof err))) {
      fail(what, "list", err);
      goto out;
    }
    static const char *const ucols[] = {"id", "email", "name", "role", "disabled", NULL};
    static const char *const kcols[] = {"id", "name", "prefix", "scopes", "last_used_at",
                                        "revoked_at", NULL};
    cli_print_list(list, is_user ? ucols : kcols);
    json_decref(list);
  } else if (!is_user && strcmp(verb, "add") == 0) {
    unsigned scopes = gate_scopes_parse(c.scopes);
    char key[48], id[24];
    if (!scopes) {
      fprintf(stderr, "grove key add: bad --scopes '%s': use read, write, admin\n", c.scopes);
      goto out;
    }
    if (gate_key_create(st, arg, scopes, "cli", key, id, err, sizeof err)) {
      fail("key", "add", err);
      goto out;
    }
    gate_audit(st, "cli", "key.create", id, "ok", "local", "-");
    printf("%s %s\n", id, key);
    fprintf(stderr, "the key is shown once; keep it now\n");
    explicit_bzero(key, sizeof key);
  } else if (!is_user && strcmp(verb, "revoke") == 0) {
    if (gate_key_revoke(st, arg, err, sizeof err)) {
      fail("key", "revoke", err);
      goto out;
    }
    gate_audit(st, "cli", "key.revoke", arg, "ok", "local", "-");
  } else {
    fprintf(stderr, "grove %s: unknown command '%s'\n\n", what, verb);
    usage(stderr);
    rc = 2;
    goto out;
  }
  rc = 0;
out:
  store_close(st);
  cfg_release(secs, ARRAY_LEN(secs));
  return rc;
}
