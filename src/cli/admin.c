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

static int admin_open(struct store *st, void *cfg, void **state, char *err, size_t errlen) {
  (void)cfg;
  (void)state;
  int rc = store_prepare(st, GROVE_VERSION, err, errlen);
  if (!rc)
    rc = store_migrate(st, "gate", gate_migrations, gate_nmigrations, NULL, err, errlen);
  if (!rc)
    gate_identifiers_upgrade(st);
  return rc;
}

/* ---- user --------------------------------------------------------------- */

static int user_add(const struct cli_verb_ctx *x, void *cfg) {
  struct admin_cfg *c = cfg;
  char pw[1100], id[40], err[512];
  if (read_password(pw, sizeof pw)) {
    fprintf(stderr, "grove user add: no password on standard input\n");
    return 1;
  }
  int e = gate_user_create(x->st, &c->gate, x->arg, c->name, pw, c->role, id, err, sizeof err);
  explicit_bzero(pw, sizeof pw);
  if (e) {
    cli_fail("user", "add", err);
    return 1;
  }
  gate_audit(x->st, "cli", "user.create", id, "ok", "local", "-");
  printf("%s\n", id);
  return 0;
}

static int user_passwd(const struct cli_verb_ctx *x, void *cfg) {
  struct admin_cfg *c = cfg;
  char pw[1100], err[512];
  if (read_password(pw, sizeof pw)) {
    fprintf(stderr, "grove user passwd: no password on standard input\n");
    return 1;
  }
  int e = gate_user_set_password(x->st, &c->gate, x->arg, pw, err, sizeof err);
  explicit_bzero(pw, sizeof pw);
  if (e) {
    cli_fail("user", "passwd", err);
    return 1;
  }
  gate_audit(x->st, "cli", "user.passwd", x->arg, "ok", "local", "-");
  return 0;
}

static int user_set_disabled(const struct cli_verb_ctx *x, void *cfg) {
  (void)cfg;
  char err[512];
  bool off = strcmp(x->verb, "disable") == 0;
  if (gate_user_set_disabled(x->st, x->arg, off, err, sizeof err)) {
    cli_fail("user", x->verb, err);
    return 1;
  }
  gate_audit(x->st, "cli", off ? "user.disable" : "user.enable", x->arg, "ok", "local", "-");
  return 0;
}

static int user_list(const struct cli_verb_ctx *x, void *cfg) {
  (void)cfg;
  char err[512];
  json_t *list = NULL;
  if (gate_user_list(x->st, &list, err, sizeof err)) {
    cli_fail("user", "list", err);
    return 1;
  }
  static const char *const cols[] = {"id", "email", "name", "role", "disabled", NULL};
  cli_print_list(list, cols);
  json_decref(list);
  return 0;
}

/* ---- key ---------------------------------------------------------------- */

static int key_add(const struct cli_verb_ctx *x, void *cfg) {
  struct admin_cfg *c = cfg;
  char key[48], id[24], err[512];
  unsigned scopes = gate_scopes_parse(c->scopes);
  if (!scopes) {
    fprintf(stderr, "grove key add: bad --scopes '%s': use read, write, admin\n", c->scopes);
    return 1;
  }
  if (gate_key_create(x->st, x->arg, scopes, "cli", key, id, err, sizeof err)) {
    cli_fail("key", "add", err);
    return 1;
  }
  gate_audit(x->st, "cli", "key.create", id, "ok", "local", "-");
  printf("%s %s\n", id, key);
  fprintf(stderr, "the key is shown once; keep it now\n");
  explicit_bzero(key, sizeof key);
  return 0;
}

static int key_list(const struct cli_verb_ctx *x, void *cfg) {
  (void)cfg;
  char err[512];
  json_t *list = NULL;
  if (gate_key_list(x->st, &list, err, sizeof err)) {
    cli_fail("key", "list", err);
    return 1;
  }
  static const char *const cols[] = {"id", "name", "prefix", "scopes", "last_used_at",
                                     "revoked_at", NULL};
  cli_print_list(list, cols);
  json_decref(list);
  return 0;
}

static int key_revoke(const struct cli_verb_ctx *x, void *cfg) {
  (void)cfg;
  char err[512];
  if (gate_key_revoke(x->st, x->arg, err, sizeof err)) {
    cli_fail("key", "revoke", err);
    return 1;
  }
  gate_audit(x->st, "cli", "key.revoke", x->arg, "ok", "local", "-");
  return 0;
}

/* ---- audit -------------------------------------------------------------- */

static int audit_list(const struct cli_verb_ctx *x, void *cfg) {
  struct admin_cfg *c = cfg;
  char err[512];
  json_t *list = NULL;
  if (c->limit < 1 || c->limit > 1000) {
    fprintf(stderr, "grove audit list: --limit must be 1 to 1000\n");
    return 1;
  }
  if (gate_audit_list(x->st, c->limit, 0, &list, err, sizeof err)) {
    cli_fail("audit", "list", err);
    return 1;
  }
  static const char *const cols[] = {"id", "at", "actor", "action", "target", "outcome",
                                     "ip", "request_id", NULL};
  cli_print_list(list, cols);
  json_decref(list);
  return 0;
}

static const struct cli_verb user_verbs[] = {
    {"add", "EMAIL", user_add},
    {"list", NULL, user_list},
    {"passwd", "EMAIL", user_passwd},
    {"disable", "EMAIL", user_set_disabled},
    {"enable", "EMAIL", user_set_disabled},
    {NULL, NULL, NULL},
};
static const struct cli_verb key_verbs[] = {
    {"add", "NAME", key_add},
    {"list", NULL, key_list},
    {"revoke", "ID", key_revoke},
    {NULL, NULL, NULL},
};
static const struct cli_verb audit_verbs[] = {
    {"list", NULL, audit_list},
    {NULL, NULL, NULL},
};

int cmd_admin(const char *what, int argc, char **argv) {
  static const struct cli_noun nouns[] = {
      {"user", user_verbs, usage, admin_open, NULL},
      {"key", key_verbs, usage, admin_open, NULL},
      {"audit", audit_verbs, usage, admin_open, NULL},
  };
  const struct cli_noun *n = &nouns[0];
  while (n < nouns + ARRAY_LEN(nouns) - 1 && strcmp(n->noun, what) != 0)
    n++;
  struct admin_cfg c;
  memset(&c, 0, sizeof c);
  struct cfg_section secs[] = {
      {"store", store_cfg_opts, store_cfg_nopts, &c.store},
      {"gate", gate_cfg_opts, gate_cfg_nopts, &c.gate},
      {"admin", admin_opts, ARRAY_LEN(admin_opts), &c},
  };
  return cli_verbs_run(n, secs, ARRAY_LEN(secs), &c.store, &c, argc, argv);
}
