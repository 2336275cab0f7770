/* store.h — Grove's database interface: one API, two drivers.
 *
 * "sqlite" (the default: a WAL-mode file under the data directory) and
 * "postgres" (libpq) implement struct store_driver; --store picks one
 * ("sqlite", "sqlite:/path/file.db" or "postgres://…"). Connections come
 * from a pool; every call blocks, so callers on an event loop run them on
 * the store pool (http_req_defer(r, HTTP_POOL_STORE, …)). Thread-safe.
 *
 * SQL uses PostgreSQL's $1, $2 … placeholders for both drivers; values go
 * in and come out as text (NULL for SQL NULL). */
#ifndef GROVE_STORE_H
#define GROVE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

struct store;
struct store_conn;

struct store_cfg {
  char *url;        /* "sqlite", "sqlite:PATH" or "postgres://…" */
  char *data_dir;   /* where the default SQLite file lives */
  int pool;         /* connections at most */
  unsigned long long busy_timeout_ms;
};

extern const struct cfg_opt store_cfg_opts[];
extern const size_t store_cfg_nopts;

/* Rows of a query: values[row * ncols + col], NULL for SQL NULL. */
struct store_rows {
  int nrows, ncols;
  char **names;
  char **values;
  size_t cap;        /* values allocated (grown by doubling) */
  long long changes; /* rows changed by INSERT/UPDATE/DELETE */
};

void store_rows_free(struct store_rows *rows);
const char *store_rows_get(const struct store_rows *rows, int row, const char *col);

/* A schema step. The SQL may hold several statements; `pg` overrides `sql`
 * for PostgreSQL when the dialects differ. */
struct store_migration {
  int version;
  const char *name;
  const char *sql;
  const char *pg;
};

/* Opens the store and checks one connection. On error, *out is NULL and
 * `err` says why ("cannot connect to 'postgres://…': …"). */
int store_open(struct store **out, const struct store_cfg *cfg, char *err, size_t errlen);
void store_close(struct store *s);
const char *store_driver_name(const struct store *s);
/* The database as people should be told of it: SQLite's file as an
 * absolute path, PostgreSQL's URL without its password. Owned by s. */
const char *store_display_name(const struct store *s);
/* True when store_open made a new SQLite file (it did not exist). */
bool store_created(const struct store *s);

/* Takes a connection from the pool (waits for one).
 * Errors of the calls below: GROVE_EBUSY when SQLite's lock stayed taken
 * by another process past the busy timeout (err says so), GROVE_EEXIST on
 * a constraint violation, GROVE_EUNAVAIL when PostgreSQL went away,
 * GROVE_ESTORE otherwise. store_begin starts a write transaction (SQLite:
 * BEGIN IMMEDIATE, so it waits for the lock up front). */
int store_acquire(struct store *s, struct store_conn **out);
void store_release(struct store *s, struct store_conn *c);

/* Runs one statement with params. OUT: *rows (may be NULL when not
 * wanted); the caller frees them with store_rows_free. On error, `err`
 * receives the database's message. */
int store_exec(struct store_conn *c, const char *sql, const char *const *params, int nparams,
               struct store_rows **rows, char *err, size_t errlen);
/* Runs several ';'-separated statements without parameters. */
int store_exec_script(struct store_conn *c, const char *sql, char *err, size_t errlen);
int store_begin(struct store_conn *c);
int store_commit(struct store_conn *c);
int store_rollback(struct store_conn *c);

/* Convenience: acquire, exec, release. */
int store_query(struct store *s, const char *sql, const char *const *params, int nparams,
                struct store_rows **rows, char *err, size_t errlen);

/* Applies the module's migrations not yet applied, in version order, each
 * in its own transaction together with its record in grove_migrations.
 * Safe to run from several processes at once on the same database: each
 * step holds the schema lock (SQLite's write lock; PostgreSQL's advisory
 * lock STORE_PG_SCHEMA_LOCK) and re-reads the version under it, so one
 * process applies a step and the others wait, then skip it.
 * Returns 0, or the error of the first that failed (later ones are not
 * tried; earlier ones stay). OUT: *applied (may be NULL) how many ran. */
int store_migrate(struct store *s, const char *module, const struct store_migration *m,
                  size_t n, int *applied, char *err, size_t errlen);
/* The store's own tables, before any module's: grove_meta, facts about
 * the database itself (key TEXT PRIMARY KEY, value TEXT): when it was made
 * (created_at, Unix ms, kept) and which Grove version last opened it
 * (version, given here). Blocking. Returns 0 or a GROVE_E* code with err. */
int store_prepare(struct store *s, const char *version, char *err, size_t errlen);
/* The PostgreSQL advisory lock (a bigint key, "grove" in ASCII) that every
 * schema change of every Grove instance holds for its transaction
 * (pg_advisory_xact_lock), so instances started together on a fresh
 * database make each table once: store_migrate and the series store's
 * tables and partitions take it. */
#define STORE_PG_SCHEMA_LOCK "444234493541"

/* Checks that the database answers (SELECT 1). */
int store_ping(struct store *s, char *err, size_t errlen);

#endif
