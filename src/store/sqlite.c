/* sqlite.c — the embedded store driver: one SQLite file in WAL mode.
 * Readers run beside one writer; a writer waits up to the busy timeout
 * for the lock. synchronous=FULL: a committed transaction survives a
 * crash of the process or of the machine. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "store/driver.h"

static int sq_connect(const char *target, const struct store_cfg *cfg, void **out, char *err,
                      size_t errlen) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(target, &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "cannot open database '%s': %s", target,
             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return GROVE_ESTORE;
  }
  sqlite3_busy_timeout(db, (int)cfg->busy_timeout_ms);
  char *msg = NULL;
  rc = sqlite3_exec(db,
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                    NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "cannot set up database '%s': %s", target, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    return GROVE_ESTORE;
  }
  *out = db;
  return 0;
}

static void sq_disconnect(void *conn) { sqlite3_close_v2(conn); }

static int sq_exec(void *conn, const char *sql, const char *const *params, int nparams,
                   struct store_rows **rows, char *err, size_t errlen) {
  sqlite3 *db = conn;
  sqlite3_stmt *st = NULL;
  struct store_rows *r = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    goto fail;
  for (int i = 0; i < nparams; i++) {
    char name[16];
    snprintf(name, sizeof name, "$%d", i + 1);
    int idx = sqlite3_bind_parameter_index(st, name);
    if (!idx)
      continue; /* the statement does not use it */
    rc = params[i] ? sqlite3_bind_text(st, idx, params[i], -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, idx);
    if (rc != SQLITE_OK)
      goto fail;
  }
  int ncols = sqlite3_column_count(st);
  if (rows) {
    r = rows_new(ncols);
    if (!r)
      goto nomem;
    for (int i = 0; i < ncols; i++)
      if (rows_set_name(r, i, sqlite3_column_name(st, i)))
        goto nomem;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (!r)
      continue;
    const char *vals[ncols ? ncols : 1];
    int lens[ncols ? ncols : 1];
    for (int i = 0; i < ncols; i++) {
      vals[i] = (const char *)sqlite3_column_text(st, i);
      lens[i] = sqlite3_column_bytes(st, i);
    }
    if (rows_add(r, vals, lens))
      goto nomem;
  }
  if (rc != SQLITE_DONE)
    goto fail;
  if (r)
    r->changes = sqlite3_changes(db);
  sqlite3_finalize(st);
  if (rows)
    *rows = r;
  return 0;
nomem:
  snprintf(err, errlen, "out of memory");
  sqlite3_finalize(st);
  store_rows_free(r);
  return GROVE_ENOMEM;
fail:
  if (err)
    snprintf(err, errlen, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  store_rows_free(r);
  return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? GROVE_EBUSY
         : rc == SQLITE_CONSTRAINT                ? GROVE_EEXIST
                                                  : GROVE_ESTORE;
}

static int sq_script(void *conn, const char *sql, char *err, size_t errlen) {
  char *msg = NULL;
  int rc = sqlite3_exec(conn, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    if (err)
      snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc == SQLITE_BUSY ? GROVE_EBUSY : GROVE_ESTORE;
  }
  return 0;
}

static bool sq_broken(void *conn) {
  (void)conn;
  return false;
}

const struct store_driver store_sqlite_driver = {
    .name = "sqlite",
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .exec = sq_exec,
    .script = sq_script,
    .broken = sq_broken,
};
