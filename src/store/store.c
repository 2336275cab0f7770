/* store.c — the connection pool, transactions and migrations, common to
 * every driver. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "store/driver.h"

const struct cfg_opt store_cfg_opts[] = {
    CFG_OPT(struct store_cfg, "store", CFG_STR, url, "sqlite", "database: sqlite, sqlite:PATH or postgres://user@host:port/db"),
    CFG_OPT(struct store_cfg, "data-dir", CFG_STR, data_dir, "data", "folder for the SQLite file and other local data"),
    CFG_OPT(struct store_cfg, "store-pool", CFG_INT, pool, "8", "database connections at most"),
    CFG_OPT(struct store_cfg, "store-busy-timeout", CFG_MS, busy_timeout_ms, "5s", "SQLite: how long a writer waits for the lock"),
};
const size_t store_cfg_nopts = ARRAY_LEN(store_cfg_opts);

struct store_conn {
  struct store_conn *next;
  const struct store_driver *drv;
  void *db;
  unsigned long long busy_timeout_ms; /* for the message when it ran out */
};

struct store {
  const struct store_driver *drv;
  struct store_cfg cfg;
  char *target;
  char *display;  /* target for people: an absolute path, a URL without password */
  bool created;   /* SQLite: the file did not exist before store_open */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct store_conn *idle;
  int total;
};

static int new_conn(struct store *s, struct store_conn **out, char *err, size_t errlen) {
  struct store_conn *c = calloc(1, sizeof *c);
  if (!c)
    return GROVE_ENOMEM;
  c->drv = s->drv;
  c->busy_timeout_ms = s->cfg.busy_timeout_ms;
  int rc = s->drv->connect(s->target, &s->cfg, &c->db, err, errlen);
  if (rc) {
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* What people are shown: SQLite's file as an absolute path (the default
 * one is relative to the working directory); PostgreSQL's URL with the
 * password cut out ("postgres://user@host/db"). */
static char *display_name(const struct store_driver *drv, const char *target) {
  char *out = NULL;
  if (drv == &store_sqlite_driver) {
    if (target[0] == '/')
      return strdup(target);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
      return strdup(target);
    return asprintf(&out, "%s/%s", cwd, target[0] == '.' && target[1] == '/' ? target + 2 : target) < 0
               ? NULL
               : out;
  }
  const char *scheme = strstr(target, "://");
  const char *at = strrchr(target, '@');
  const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
  if (!scheme || !at || !colon || colon > at)
    return strdup(target);
  return asprintf(&out, "%.*s@%s", (int)(colon - target), target, at + 1) < 0 ? NULL : out;
}

int store_open(struct store **out, const struct store_cfg *cfg, char *err, size_t errlen) {
  *out = NULL;
  struct store *s = calloc(1, sizeof *s);
  if (!s)
    return GROVE_ENOMEM;
  s->cfg = *cfg;
  s->cfg.url = NULL;
  s->cfg.data_dir = NULL;
  if (s->cfg.pool < 1)
    s->cfg.pool = 1;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  const char *url = cfg->url && *cfg->url ? cfg->url : "sqlite";
  int rc = 0;
  if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
    s->drv = &store_postgres_driver;
    s->target = strdup(url);
  } else if (strcmp(url, "sqlite") == 0 || strncmp(url, "sqlite:", 7) == 0) {
    s->drv = &store_sqlite_driver;
    if (url[6] == ':' && url[7]) {
      s->target = strdup(url + 7);
    } else {
      const char *dir = cfg->data_dir && *cfg->data_dir ? cfg->data_dir : ".";
      mkdir_p(dir, 0750); /* an error shows when the file cannot be opened */
      size_t n = strlen(dir) + 16;
      s->target = malloc(n);
      if (s->target)
        snprintf(s->target, n, "%s/grove.db", dir);
    }
  } else {
    snprintf(err, errlen, "unknown store '%s': use sqlite, sqlite:PATH or postgres://…", url);
    rc = GROVE_ECONFIG;
    goto fail;
  }
  if (!s->target || !(s->display = display_name(s->drv, s->target))) {
    rc = GROVE_ENOMEM;
    goto fail;
  }
  struct stat sb;
  s->created = s->drv == &store_sqlite_driver && stat(s->target, &sb) != 0;
  struct store_conn *c;
  if ((rc = new_conn(s, &c, err, errlen)))
    goto fail;
  c->next = NULL;
  s->idle = c;
  s->total = 1;
  *out = s;
  return 0;
fail:
  free(s->target);
  free(s->display);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->cond);
  free(s);
  return rc;
}

void store_close(struct store *s) {
  if (!s)
    return;
  struct store_conn *c = s->idle;
  while (c) {
    struct store_conn *n = c->next;
    s->drv->disconnect(c->db);
    free(c);
    c = n;
  }
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->cond);
  free(s->target);
  free(s->display);
  free(s);
}

const char *store_driver_name(const struct store *s) { return s->drv->name; }
const char *store_display_name(const struct store *s) { return s->display; }
bool store_created(const struct store *s) { return s->created; }

int store_acquire(struct store *s, struct store_conn **out) {
  pthread_mutex_lock(&s->lock);
  for (;;) {
    if (s->idle) {
      *out = s->idle;
      s->idle = s->idle->next;
      pthread_mutex_unlock(&s->lock);
      return 0;
    }
    if (s->total < s->cfg.pool) {
      s->total++;
      pthread_mutex_unlock(&s->lock);
      char err[256];
      int rc = new_conn(s, out, err, sizeof err);
      if (rc) {
        log_error(NULL, "cannot open database connection", "driver=%s error=\"%s\"",
                  s->drv->name, err);
        pthread_mutex_lock(&s->lock);
        s->total--;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
      }
      return rc;
    }
    pthread_cond_wait(&s->cond, &s->lock);
  }
}

void store_release(struct store *s, struct store_conn *c) {
  if (s->drv->broken(c->db)) {
    /* drop it; the next acquire opens a fresh one */
    s->drv->disconnect(c->db);
    free(c);
    pthread_mutex_lock(&s->lock);
    s->total--;
  } else {
    pthread_mutex_lock(&s->lock);
    c->next = s->idle;
    s->idle = c;
  }
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

/* A lock that stayed taken past the busy timeout: says so in words. */
static int busy_message(const struct store_conn *c, int rc, char *err, size_t errlen) {
  if (rc == GROVE_EBUSY && err && errlen)
    snprintf(err, errlen,
             "database is locked: another process held its write lock for more than the busy "
             "timeout (%llu ms, --store-busy-timeout)",
             c->busy_timeout_ms);
  return rc;
}

int store_exec(struct store_conn *c, const char *sql, const char *const *params, int nparams,
               struct store_rows **rows, char *err, size_t errlen) {
  if (rows)
    *rows = NULL;
  return busy_message(c, c->drv->exec(c->db, sql, params, nparams, rows, err, errlen), err,
                      errlen);
}

int store_exec_script(struct store_conn *c, const char *sql, char *err, size_t errlen) {
  return busy_message(c, c->drv->script(c->db, sql, err, errlen), err, errlen);
}

int store_begin(struct store_conn *c) { return store_exec_script(c, c->drv->begin_sql, NULL, 0); }
int store_commit(struct store_conn *c) { return store_exec_script(c, "COMMIT", NULL, 0); }
int store_rollback(struct store_conn *c) { return store_exec_script(c, "ROLLBACK", NULL, 0); }

int store_query(struct store *s, const char *sql, const char *const *params, int nparams,
                struct store_rows **rows, char *err, size_t errlen) {
  struct store_conn *c;
  int rc = store_acquire(s, &c);
  if (rc) {
    if (rows)
      *rows = NULL;
    snprintf(err, errlen, "no database connection");
    return rc;
  }
  rc = store_exec(c, sql, params, nparams, rows, err, errlen);
  store_release(s, c);
  return rc;
}

int store_ping(struct store *s, char *err, size_t errlen) {
  return store_query(s, "SELECT 1", NULL, 0, NULL, err, errlen);
}

/* ---- migrations --------------------------------------------------------- */

static const char migrations_table[] =
    "CREATE TABLE IF NOT EXISTS grove_migrations ("
    " module TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL, PRIMARY KEY (module, version))";

/* The step of m[] that comes next after `current`: the lowest version
 * above it (NULL when none is left). */
static const struct store_migration *next_step(const struct store_migration *m, size_t n,
                                               int current) {
  const struct store_migration *best = NULL;
  for (size_t i = 0; i < n; i++)
    if (m[i].version > current && (!best || m[i].version < best->version))
      best = &m[i];
  return best;
}

/* Each step runs in a transaction that holds the schema lock (SQLite's
 * write lock taken at BEGIN IMMEDIATE; PostgreSQL's advisory lock), and
 * reads the module's version under that lock: another process migrating
 * the same database at the same time makes this one wait, after which it
 * finds the step done and goes on. The migrations table itself is made
 * under the lock too (CREATE TABLE IF NOT EXISTS races in PostgreSQL). */
int store_migrate(struct store *s, const char *module, const struct store_migration *m,
                  size_t n, int *applied, char *err, size_t errlen) {
  struct store_conn *c;
  int done = 0;
  if (applied)
    *applied = 0;
  int rc = store_acquire(s, &c);
  if (rc) {
    snprintf(err, errlen, "no database connection");
    return rc;
  }
  for (;;) {
    char e2[512] = "";
    const char *what = "cannot take the schema lock";
    const struct store_migration *step = NULL;
    struct store_rows *rows = NULL;
    if ((rc = store_exec_script(c, s->drv->migrate_sql, e2, sizeof e2)))
      goto step_failed;
    what = "cannot make the migrations table";
    if ((rc = store_exec_script(c, migrations_table, e2, sizeof e2)))
      goto rollback;
    what = "cannot read the schema version";
    const char *p[] = {module};
    if ((rc = store_exec(c, "SELECT COALESCE(MAX(version), 0) AS v FROM grove_migrations "
                            "WHERE module = $1",
                         p, 1, &rows, e2, sizeof e2)))
      goto rollback;
    const char *v = store_rows_get(rows, 0, "v");
    int current = v ? atoi(v) : 0;
    store_rows_free(rows);
    if (!(step = next_step(m, n, current))) {
      what = "cannot end the schema transaction";
      if ((rc = store_commit(c)))
        goto rollback;
      break;
    }
    const char *sql = strcmp(s->drv->name, "postgres") == 0 && step->pg ? step->pg : step->sql;
    char ver[16], when[32];
    snprintf(ver, sizeof ver, "%d", step->version);
    snprintf(when, sizeof when, "%llu", (unsigned long long)clock_wall_ms());
    const char *rp[] = {module, ver, step->name, when};
    what = "migration failed";
    rc = store_exec_script(c, sql, e2, sizeof e2);
    if (!rc)
      rc = store_exec(c, "INSERT INTO grove_migrations (module, version, name, applied_at) "
                         "VALUES ($1, $2, $3, $4)",
                      rp, 4, NULL, e2, sizeof e2);
    if (!rc)
      rc = store_commit(c);
    if (rc)
      goto rollback;
    log_info(NULL, "migration applied", "module=%s version=%d name=\"%s\"", module,
             step->version, step->name);
    done++;
    continue;
  rollback:
    store_rollback(c);
  step_failed:
    if (step)
      snprintf(err, errlen, "migration %s/%d '%s' failed: %s", module, step->version, step->name,
               e2);
    else
      snprintf(err, errlen, "%s for '%s': %s", what, module, e2);
    break;
  }
  store_release(s, c);
  if (applied)
    *applied = done;
  return rc;
}

/* ---- the store's own tables ---------------------------------------------- */

static const struct store_migration store_migrations[] = {
    {1, "grove_meta",
     "CREATE TABLE IF NOT EXISTS grove_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", NULL},
};

int store_prepare(struct store *s, const char *version, char *err, size_t errlen) {
  int rc = store_migrate(s, "store", store_migrations,
                         sizeof store_migrations / sizeof store_migrations[0], NULL, err, errlen);
  char now[32];
  snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
  const char *created[] = {"created_at", now};
  const char *ver[] = {"version", version};
  if (!rc)
    rc = store_query(s, "INSERT INTO grove_meta (key, value) VALUES ($1, $2) "
                        "ON CONFLICT (key) DO NOTHING", created, 2, NULL, err, errlen);
  if (!rc)
    rc = store_query(s, "INSERT INTO grove_meta (key, value) VALUES ($1, $2) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     ver, 2, NULL, err, errlen);
  return rc;
}
