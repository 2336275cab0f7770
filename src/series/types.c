/* types.c — the field type each series was first written with, kept by
 * key (series.h, "field types"): a map in memory, loaded at open, over a
 * table that only grows (series_types), so a type once recorded never
 * changes. A claim for keys this process does not know asks the table,
 * which settles races between writers (and instances): the first insert
 * wins, and every writer reads back what it was. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/map.h"
#include "series/internal.h"

struct stypes {
  pthread_mutex_t lock; /* the map */
  struct map types;     /* key -> type (as uintptr_t) */
  sqlite3 *db;          /* SQLite: its own connection, writes under db_lock */
  pthread_mutex_t db_lock;
  struct pgseries *pg;  /* or PostgreSQL */
};

static const char *const names[] = {"none", "float", "integer", "unsigned", "boolean", "string"};

const char *series_type_name(enum series_type t) {
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static int remember(const char *key, uint8_t type, void *arg) {
  struct stypes *t = arg;
  if (type == SERIES_TYPE_NONE || type > SERIES_TYPE_STRING)
    return 0;
  return map_put(&t->types, key, (void *)(uintptr_t)type, NULL);
}

static struct stypes *stypes_new(void) {
  struct stypes *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  pthread_mutex_init(&t->lock, NULL);
  pthread_mutex_init(&t->db_lock, NULL);
  map_init(&t->types);
  return t;
}

void stypes_close(struct stypes *t) {
  if (!t)
    return;
  sqlite3_close(t->db);
  map_release(&t->types);
  pthread_mutex_destroy(&t->lock);
  pthread_mutex_destroy(&t->db_lock);
  free(t);
}

int stypes_open_sqlite(struct stypes **out, const char *path, char *err, size_t errlen) {
  struct stypes *t = stypes_new();
  if (!t)
    return GROVE_ENOMEM;
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_open(path, &t->db) != SQLITE_OK ||
      sqlite3_exec(t->db,
                   "PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;"
                   "CREATE TABLE IF NOT EXISTS series_types (key TEXT PRIMARY KEY,"
                   " type INTEGER NOT NULL) WITHOUT ROWID",
                   NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(t->db, "SELECT key, type FROM series_types", -1, &st, NULL) !=
          SQLITE_OK) {
    snprintf(err, errlen, "cannot read series types from '%s': %s", path,
             t->db ? sqlite3_errmsg(t->db) : "out of memory");
    rc = GROVE_ESTORE;
  }
  while (!rc && st && sqlite3_step(st) == SQLITE_ROW)
    rc = remember((const char *)sqlite3_column_text(st, 0), (uint8_t)sqlite3_column_int(st, 1), t);
  sqlite3_finalize(st);
  if (rc) {
    stypes_close(t);
    return rc;
  }
  *out = t;
  return 0;
}

int stypes_open_pg(struct stypes **out, struct pgseries *pg, char *err, size_t errlen) {
  struct stypes *t = stypes_new();
  if (!t)
    return GROVE_ENOMEM;
  t->pg = pg;
  int rc = pgs_types_load(pg, remember, t);
  if (rc) {
    snprintf(err, errlen, "cannot read series types from PostgreSQL");
    stypes_close(t);
    return rc;
  }
  *out = t;
  return 0;
}

uint8_t stypes_cached(struct stypes *t, const char *key) {
  pthread_mutex_lock(&t->lock);
  uint8_t type = (uint8_t)(uintptr_t)map_get(&t->types, key);
  pthread_mutex_unlock(&t->lock);
  return type;
}

struct claim {
  struct stypes *t;
  const char *const *keys;
  size_t n;
  uint8_t *got;
  struct map *seen; /* key -> type, as read back */
};

static int read_back(const char *key, uint8_t type, void *arg) {
  struct claim *c = arg;
  return map_put(c->seen, key, (void *)(uintptr_t)type, NULL);
}

/* The SQLite side of a claim: one transaction, insert where missing,
 * read back. */
static int claim_sqlite(struct stypes *t, const char *const *keys, const uint8_t *types,
                        size_t n, struct claim *c) {
  sqlite3_stmt *ins = NULL, *sel = NULL;
  pthread_mutex_lock(&t->db_lock);
  int rc = sqlite3_exec(t->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
                   sqlite3_prepare_v2(t->db,
                                      "INSERT OR IGNORE INTO series_types (key, type) VALUES (?, ?)",
                                      -1, &ins, NULL) == SQLITE_OK &&
                   sqlite3_prepare_v2(t->db, "SELECT type FROM series_types WHERE key = ?", -1,
                                      &sel, NULL) == SQLITE_OK
               ? 0
               : GROVE_ESTORE;
  for (size_t i = 0; i < n && !rc; i++) {
    sqlite3_bind_text(ins, 1, keys[i], -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 2, types[i]);
    if (sqlite3_step(ins) != SQLITE_DONE)
      rc = GROVE_ESTORE;
    sqlite3_reset(ins);
    sqlite3_bind_text(sel, 1, keys[i], -1, SQLITE_STATIC);
    if (!rc && sqlite3_step(sel) == SQLITE_ROW)
      rc = read_back(keys[i], (uint8_t)sqlite3_column_int(sel, 0), c);
    else if (!rc)
      rc = GROVE_ESTORE;
    sqlite3_reset(sel);
  }
  sqlite3_finalize(ins);
  sqlite3_finalize(sel);
  if (!rc && sqlite3_exec(t->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    rc = GROVE_ESTORE;
  if (rc)
    sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
  pthread_mutex_unlock(&t->db_lock);
  return rc;
}

int stypes_claim(struct stypes *t, const char *const *keys, const uint8_t *types, size_t n,
                 uint8_t *got) {
  /* the keys this process knows need no database */
  const char **ask = malloc((n ? n : 1) * sizeof *ask);
  uint8_t *ask_types = malloc(n ? n : 1);
  size_t na = 0;
  int rc = ask && ask_types ? 0 : GROVE_ENOMEM;
  pthread_mutex_lock(&t->lock);
  for (size_t i = 0; !rc && i < n; i++) {
    got[i] = (uint8_t)(uintptr_t)map_get(&t->types, keys[i]);
    if (!got[i]) {
      ask[na] = keys[i];
      ask_types[na++] = types[i];
    }
  }
  pthread_mutex_unlock(&t->lock);
  struct map seen;
  map_init(&seen);
  struct claim c = {t, keys, n, got, &seen};
  if (!rc && na)
    rc = t->pg ? pgs_types_claim(t->pg, ask, ask_types, na, read_back, &c)
               : claim_sqlite(t, ask, ask_types, na, &c);
  if (!rc && na) {
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; !rc && i < n; i++) {
      if (got[i])
        continue;
      uint8_t type = (uint8_t)(uintptr_t)map_get(&seen, keys[i]);
      if (!type) {
        rc = GROVE_ESTORE; /* the table did not answer for it */
        break;
      }
      got[i] = type;
      rc = map_put(&t->types, keys[i], (void *)(uintptr_t)type, NULL);
    }
    pthread_mutex_unlock(&t->lock);
  }
  map_release(&seen);
  free(ask);
  free(ask_types);
  return rc;
}
