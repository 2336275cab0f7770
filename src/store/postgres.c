/* postgres.c — the scale-out store driver on libpq. A connection found
 * broken is dropped from the pool and replaced on the next acquire. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "store/driver.h"

static void quiet(void *arg, const char *msg) {
  (void)arg;
  (void)msg; /* NOTICEs (e.g. "relation already exists, skipping") are not errors */
}

static void copy_err(PGconn *pg, char *err, size_t errlen) {
  if (!err)
    return;
  snprintf(err, errlen, "%s", PQerrorMessage(pg));
  size_t n = strlen(err);
  while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
    err[--n] = '\0';
}

static int pg_connect(const char *target, const struct store_cfg *cfg, void **out, char *err,
                      size_t errlen) {
  (void)cfg;
  PGconn *pg = PQconnectdb(target);
  if (!pg || PQstatus(pg) != CONNECTION_OK) {
    char e[256];
    copy_err(pg, e, sizeof e);
    /* the URL may hold a password: name only its host part */
    const char *at = strrchr(target, '@');
    snprintf(err, errlen, "cannot connect to postgres '%s': %s", at ? at + 1 : target + 11, e);
    PQfinish(pg);
    return GROVE_EUNAVAIL;
  }
  PQsetNoticeProcessor(pg, quiet, NULL);
  *out = pg;
  return 0;
}

static void pg_disconnect(void *conn) { PQfinish(conn); }

static int result_error(PGresult *res) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  if (state && strncmp(state, "23", 2) == 0)
    return GROVE_EEXIST; /* integrity constraint violation */
  if (state && strncmp(state, "08", 2) == 0)
    return GROVE_EUNAVAIL;
  return GROVE_ESTORE;
}

static int pg_exec(void *conn, const char *sql, const char *const *params, int nparams,
                   struct store_rows **rows, char *err, size_t errlen) {
  PGconn *pg = conn;
  PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    int rc = res ? result_error(res) : GROVE_EUNAVAIL;
    copy_err(pg, err, errlen);
    PQclear(res);
    return rc;
  }
  if (rows) {
    int nc = PQnfields(res), nr = PQntuples(res);
    struct store_rows *r = rows_new(nc);
    if (!r)
      goto nomem;
    for (int i = 0; i < nc; i++)
      if (rows_set_name(r, i, PQfname(res, i)))
        goto nomem_rows;
    for (int row = 0; row < nr; row++) {
      const char *vals[nc ? nc : 1];
      int lens[nc ? nc : 1];
      for (int i = 0; i < nc; i++) {
        vals[i] = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);
        lens[i] = PQgetlength(res, row, i);
      }
      if (rows_add(r, vals, lens))
        goto nomem_rows;
    }
    r->changes = atoll(PQcmdTuples(res));
    *rows = r;
    PQclear(res);
    return 0;
  nomem_rows:
    store_rows_free(r);
    goto nomem;
  }
  PQclear(res);
  return 0;
nomem:
  PQclear(res);
  if (err)
    snprintf(err, errlen, "out of memory");
  return GROVE_ENOMEM;
}

static int pg_script(void *conn, const char *sql, char *err, size_t errlen) {
  PGconn *pg = conn;
  PGresult *res = PQexec(pg, sql);
  ExecStatusType st = PQresultStatus(res);
  int rc = 0;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    rc = res ? result_error(res) : GROVE_EUNAVAIL;
    copy_err(pg, err, errlen);
  }
  PQclear(res);
  return rc;
}

static bool pg_broken(void *conn) { return PQstatus(conn) != CONNECTION_OK; }

const struct store_driver store_postgres_driver = {
    .name = "postgres",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .exec = pg_exec,
    .script = pg_script,
    .broken = pg_broken,
    .begin_sql = "BEGIN",
    /* a transaction-level advisory lock: released by COMMIT or ROLLBACK,
     * and by PostgreSQL when the session dies */
    .migrate_sql = "BEGIN; SELECT pg_advisory_xact_lock(" STORE_PG_SCHEMA_LOCK ")",
};
