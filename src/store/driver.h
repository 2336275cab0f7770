/* driver.h — what a store backend implements (store-internal), like
 * curl's vtls: one ops table per backend, chosen at open. */
#ifndef GROVE_STORE_DRIVER_H
#define GROVE_STORE_DRIVER_H

#include "store/store.h"

struct store_driver {
  const char *name;
  /* Opens one connection. `target` is the path or URL. */
  int (*connect)(const char *target, const struct store_cfg *cfg, void **out, char *err,
                 size_t errlen);
  void (*disconnect)(void *conn);
  int (*exec)(void *conn, const char *sql, const char *const *params, int nparams,
              struct store_rows **rows, char *err, size_t errlen);
  int (*script)(void *conn, const char *sql, char *err, size_t errlen);
  /* true when the connection is broken and must be replaced */
  bool (*broken)(void *conn);
  /* Starts a transaction that will write (store_begin). */
  const char *begin_sql;
  /* Starts a transaction that holds the schema lock until it ends: only
   * one connection of any process may hold it at a time; others wait. */
  const char *migrate_sql;
};

extern const struct store_driver store_sqlite_driver;
extern const struct store_driver store_postgres_driver;

/* rows.c: builds a result row by row */
struct store_rows *rows_new(int ncols);
int rows_set_name(struct store_rows *r, int col, const char *name);
int rows_add(struct store_rows *r, const char *const *vals, const int *lens);

#endif
