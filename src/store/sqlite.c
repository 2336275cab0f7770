/* sqlite.c — the embedded store driver: one SQLite file in WAL mode.
 * Readers run beside one writer; a writer waits up to the busy timeout
 * for the lock. synchronous=FULL: a committed transaction survives a
 * crash of the process or of the machine.
 *
 * Several processes may open the same file at once (`grove serve` and
 * `grove key add` started together on an empty data dir): every
 * connection has the busy timeout, switching a new file to WAL retries
 * until the same deadline (SQLite answers that pragma SQLITE_BUSY without
 * calling the busy handler), and transactions begin IMMEDIATE so that a
 * read followed by a write waits for the lock instead of failing with
 * SQLITE_BUSY (a deferred transaction cannot wait when it upgrades:
 * https://www.sqlite.org/lang_transaction.html). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/map.h"
#include "core/real.h"
#include "core/util.h"
#include "store/driver.h"

/* A connection: the database and its statement cache. A statement is
 * kept prepared by its SQL text, so a write of the same shape (the same
 * multi-row INSERT at the same row count) is parsed and planned once per
 * connection, not once per call. The least recently used goes first;
 * texts past CACHE_MAX_SQL bytes are not kept (their programs are large
 * and rarely repeat). */
#define CACHE_SLOTS 32
#define CACHE_MAX_SQL (256 * 1024)

struct cached {
  char *sql;           /* the caller's text, NULL: a free slot */
  size_t len;
  uint64_t hash;
  uint64_t used;       /* the tick of its last use */
  sqlite3_stmt *st;
  int *from;           /* positional()'s map, NULL: bound by position */
  int nfrom;
};

struct conn {
  sqlite3 *db;
  uint64_t tick;
  struct cached cache[CACHE_SLOTS];
};

static void cached_free(struct cached *c) {
  sqlite3_finalize(c->st);
  free(c->sql);
  free(c->from);
  memset(c, 0, sizeof *c);
}

/* PRAGMA journal_mode=WAL takes an exclusive lock on a file still in
 * rollback mode and fails at once when another connection holds any lock:
 * retried every 5 ms until timeout_ms. WAL is persistent, so a file
 * already in WAL mode answers at once. */
static int set_wal(sqlite3 *db, unsigned long long timeout_ms, char **msg) {
  uint64_t deadline = clock_mono_ns() + timeout_ms * 1000000ull;
  for (;;) {
    int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, msg);
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || clock_mono_ns() >= deadline)
      return rc;
    sqlite3_free(*msg);
    *msg = NULL;
    sqlite3_sleep(5);
  }
}

/* The busy handler: waits for another connection's write lock in short
 * naps (50 µs doubling to 2 ms) until the busy timeout. SQLite's own
 * (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25 … ms, so under
 * many short write transactions of a few fsyncs a waiter sleeps far past
 * the moment the lock is free. ctx: the timeout in ms. The episode's start
 * is the thread's: a connection is used by one thread at a time and a
 * wait never leaves its call. */
static _Thread_local uint64_t busy_since_ns;

static int busy_wait(void *ctx, int n) {
  uint64_t now = clock_mono_ns(), timeout_ns = (uint64_t)(uintptr_t)ctx * 1000000ull;
  if (n == 0)
    busy_since_ns = now;
  if (now - busy_since_ns >= timeout_ns)
    return 0; /* SQLITE_BUSY to the caller */
  unsigned us = n < 6 ? 50u << n : 2000u;
  struct timespec ts = {0, (long)us * 1000};
  nanosleep(&ts, NULL);
  return 1;
}

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
  unsigned long long timeout = cfg->busy_timeout_ms > 0x7fffffff ? 0x7fffffff
                                                                  : cfg->busy_timeout_ms;
  sqlite3_busy_handler(db, busy_wait, (void *)(uintptr_t)timeout);
  char *msg = NULL;
  rc = set_wal(db, timeout, &msg);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
      snprintf(err, errlen,
               "cannot set up database '%s': another process held its lock for more than the "
               "busy timeout (%llu ms, --store-busy-timeout)",
               target, timeout);
    else
      snprintf(err, errlen, "cannot set up database '%s': %s", target, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    return GROVE_ESTORE;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errlen, "out of memory");
    sqlite3_close(db);
    return GROVE_ENOMEM;
  }
  c->db = db;
  *out = c;
  return 0;
}

static void sq_disconnect(void *conn) {
  struct conn *c = conn;
  for (int i = 0; i < CACHE_SLOTS; i++)
    cached_free(&c->cache[i]);
  sqlite3_close_v2(c->db);
  free(c);
}

/* Rewrites sql's $N placeholders (outside quotes) as anonymous `?` and
 * says which parameter each takes: SQLite looks a reused ?N up in a list
 * of the statement's names, linearly, so a statement of many rows that
 * repeats $1 in each costs the square of its length to prepare; an
 * anonymous `?` is numbered without a look-up (sqlite3ExprAssignVarNumber,
 * expr.c). A statement that already holds a `?` keeps ?N (numbered by
 * position alike). OUT: *out, sql itself when it has no '$', else a copy
 * the caller frees; *from, NULL or (with a copy in *out holding no ?N)
 * from[k] = the 0-based parameter of the k-th placeholder, *nfrom of them,
 * malloc'ed for the caller to free. */
static int positional(const char *sql, char **out, int **from, int *nfrom) {
  *out = (char *)sql;
  *from = NULL;
  *nfrom = 0;
  if (!strchr(sql, '$'))
    return 0;
  size_t n = strlen(sql), slots = 0;
  bool anonymous = true;
  char quote = 0;
  for (const char *p = sql; *p; p++) {
    if (quote)
      quote = *p == quote ? 0 : quote;
    else if (*p == '\'' || *p == '"')
      quote = *p;
    else if (*p == '?')
      anonymous = false;
    else if (*p == '$')
      slots++;
  }
  char *c = malloc(n + 1);
  int *f = anonymous ? malloc((slots ? slots : 1) * sizeof *f) : NULL;
  if (!c || (anonymous && !f)) {
    free(c);
    free(f);
    return GROVE_ENOMEM;
  }
  char *w = c;
  int k = 0;
  quote = 0;
  for (const char *p = sql; *p;) {
    if (quote) {
      quote = *p == quote ? 0 : quote;
    } else if (*p == '\'' || *p == '"') {
      quote = *p;
    } else if (*p == '$' && p[1] >= '0' && p[1] <= '9') {
      if (!anonymous) {
        *w++ = '?'; /* ?N: the digits follow as they are */
        p++;
        continue;
      }
      long v = 0;
      for (p++; *p >= '0' && *p <= '9'; p++)
        v = v < 100000 ? v * 10 + (*p - '0') : v;
      *w++ = '?';
      f[k++] = (int)v - 1; /* $0 or out of range: bound NULL */
      continue;
    }
    *w++ = *p++;
  }
  *w = '\0';
  *out = c;
  *from = f;
  *nfrom = k;
  return 0;
}

/* The prepared statement of sql: from the cache, or prepared now (and
 * cached, evicting the least recently used). OUT: *out, the slot (reset
 * and unbound, for this call only). Returns a SQLite code; on failure the
 * message is the database's. */
static int prepare(struct conn *c, const char *sql, struct cached **out) {
  size_t len = strlen(sql);
  uint64_t h = hash_bytes(sql, len);
  struct cached *victim = &c->cache[0];
  for (int i = 0; i < CACHE_SLOTS; i++) {
    struct cached *e = &c->cache[i];
    if (e->sql && e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) {
      e->used = ++c->tick;
      *out = e;
      return SQLITE_OK;
    }
    if (!e->sql ? victim->sql != NULL : (victim->sql && e->used < victim->used))
      victim = e;
  }
  struct cached fresh = {.len = len, .hash = h};
  char *text;
  if (positional(sql, &text, &fresh.from, &fresh.nfrom))
    return SQLITE_NOMEM;
  unsigned flags = len <= CACHE_MAX_SQL ? SQLITE_PREPARE_PERSISTENT : 0;
  int rc = sqlite3_prepare_v3(c->db, text, -1, flags, &fresh.st, NULL);
  if (text != sql)
    free(text);
  if (rc == SQLITE_OK && !fresh.st)
    rc = SQLITE_MISUSE; /* only a comment or white space */
  if (rc == SQLITE_OK && !(fresh.sql = malloc(len + 1)))
    rc = SQLITE_NOMEM;
  if (rc != SQLITE_OK) {
    cached_free(&fresh);
    return rc;
  }
  memcpy(fresh.sql, sql, len + 1);
  fresh.used = ++c->tick;
  cached_free(victim);
  *victim = fresh;
  *out = victim;
  return SQLITE_OK;
}

/* Puts a used statement back: reset (ending its read of the database)
 * and unbound; a statement too large to keep, or one that failed, is
 * dropped. */
static void put_back(struct cached *e, bool failed) {
  if (failed || e->len > CACHE_MAX_SQL) {
    cached_free(e);
    return;
  }
  sqlite3_reset(e->st);
  sqlite3_clear_bindings(e->st);
}

static int sq_exec(void *conn, const char *sql, const char *const *params, int nparams,
                   struct store_rows **rows, char *err, size_t errlen) {
  struct conn *c = conn;
  sqlite3 *db = c->db;
  struct cached *e = NULL;
  struct store_rows *r = NULL;
  int rc = prepare(c, sql, &e);
  if (rc == SQLITE_NOMEM)
    goto nomem;
  if (rc != SQLITE_OK)
    goto fail;
  sqlite3_stmt *st = e->st;
  int nbind = sqlite3_bind_parameter_count(st);
  for (int i = 0; i < nbind; i++) {
    int at = e->from ? (i < e->nfrom ? e->from[i] : -1) : i; /* which parameter */
    if (!e->from && at >= nparams)
      break; /* unbound: NULL */
    const char *v = at >= 0 && at < nparams ? params[at] : NULL;
    rc = v ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
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
    char reals[ncols ? ncols : 1][REAL_SHORTEST_MAX];
    for (int i = 0; i < ncols; i++) {
      if (sqlite3_column_type(st, i) == SQLITE_FLOAT) {
        /* shortest round trip: SQLite's own text keeps 15 digits */
        lens[i] = (int)real_shortest(reals[i], sqlite3_column_double(st, i));
        vals[i] = reals[i];
        continue;
      }
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
  put_back(e, false);
  if (rows)
    *rows = r;
  return 0;
nomem:
  snprintf(err, errlen, "out of memory");
  if (e)
    put_back(e, true);
  store_rows_free(r);
  return GROVE_ENOMEM;
fail:
  if (err)
    snprintf(err, errlen, "%s", sqlite3_errmsg(db));
  if (e) /* a refusal or a busy lock leaves the statement good */
    put_back(e, rc != SQLITE_BUSY && rc != SQLITE_LOCKED && rc != SQLITE_CONSTRAINT);
  store_rows_free(r);
  return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? GROVE_EBUSY
         : rc == SQLITE_CONSTRAINT                ? GROVE_EEXIST
                                                  : GROVE_ESTORE;
}

static int sq_script(void *conn, const char *sql, char *err, size_t errlen) {
  char *msg = NULL;
  int rc = sqlite3_exec(((struct conn *)conn)->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    if (err)
      snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? GROVE_EBUSY : GROVE_ESTORE;
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
    .begin_sql = "BEGIN IMMEDIATE",
    .migrate_sql = "BEGIN IMMEDIATE",
};
