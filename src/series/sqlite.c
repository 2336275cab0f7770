/* sqlite.c — the SQLite backend (a directory: the embedded default).
 *
 * Points are made durable in the local log (log.c) and kept in the head
 * (head.c) until a flush (flush_local) moves them into compressed chunks
 * in series.db, with their 1-minute and 1-hour rollups (sqlite_rollup.c)
 * in the same transaction; reads merge the head with the chunks
 * (sqlite_read.c). Ids of new keys are made here, dense, and logged with
 * the next group commit. The directory is this process' alone: a flock on
 * dir/LOCK, held from open to close.
 *
 * series.db: series (id, key), chunks (series, start_ns, end_ns, points,
 * data), rollups, series_meta (chunk_width), series_types; user_version
 * says the keys' format. Three connections: reads (db), the flush's writes
 * (wdb), field type claims (tdb). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "series/internal.h"
#include "series/key.h"

struct sqlite_be {
  int lock_fd;             /* dir/LOCK, flock'ed; -1: none */
  sqlite3 *db;             /* reads (serialized: SQLITE_OPEN_FULLMUTEX) */
  sqlite3 *wdb;            /* chunk writes, under flush_lock */
  sqlite3 *tdb;            /* field type claims, under tdb_lock */
  pthread_mutex_t tdb_lock;
  int64_t chunk_width;     /* no chunk spans more (set at open) */
  uint32_t keys_saved;     /* keys [0, keys_saved) are in series.db (flush_lock) */
  struct rollup_cache rollups; /* the buckets last written (flush_lock) */
};

static int exec(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : GROVE_ESTORE;
}

/* ---- chunks ----------------------------------------------------------------------- */

/* Chunks never cross a CHUNK_SPAN boundary of time, so retention, which
 * drops whole chunks, is that fine. */
static int64_t chunk_span(int64_t ts) { return ts / CHUNK_SPAN - (ts % CHUNK_SPAN != 0 && ts < 0); }

/* How many of the points (at most max) go in one chunk. */
static size_t run_length(const struct series_sample *pts, size_t n, size_t max) {
  size_t k = 0;
  int64_t span = chunk_span(pts[0].ts_ns);
  while (k < n && k < max && chunk_span(pts[k].ts_ns) == span)
    k++;
  return k;
}

/* Writes one series' points as chunks. Points that all come after the
 * series' newest chunk first fill that chunk up (read, decoded, written
 * back), so a series written a few points a flush still gets full chunks. */
static int put_series_chunks(sqlite3_stmt *last, sqlite3_stmt *ins, sqlite3_stmt *upd, uint32_t id,
                             const struct series_sample *pts, size_t n, struct buf *enc,
                             int64_t *prev_end) {
  static _Thread_local struct series_sample merged[CHUNK_MAX];
  int rc = 0;
  size_t at = 0;
  *prev_end = INT64_MIN;
  sqlite3_bind_int64(last, 1, id);
  if (sqlite3_step(last) == SQLITE_ROW) {
    sqlite3_int64 seq = sqlite3_column_int64(last, 0);
    int64_t end = sqlite3_column_int64(last, 1);
    *prev_end = end;
    size_t had = (size_t)sqlite3_column_int64(last, 2);
    int64_t start = sqlite3_column_int64(last, 4);
    size_t k;
    if (end < pts[0].ts_ns && had < CHUNK_MAX &&
        chunk_span(start) == chunk_span(pts[0].ts_ns) &&
        chunk_decode(sqlite3_column_blob(last, 3), (size_t)sqlite3_column_bytes(last, 3), merged,
                     &k) == 0 &&
        k == had) {
      size_t take = run_length(pts, n, CHUNK_MAX - k);
      memcpy(merged + k, pts, take * sizeof *pts);
      buf_reset(enc);
      if (!(rc = chunk_encode(merged, k + take, enc))) {
        sqlite3_bind_int64(upd, 1, merged[k + take - 1].ts_ns);
        sqlite3_bind_int64(upd, 2, (sqlite3_int64)(k + take));
        sqlite3_bind_blob(upd, 3, enc->data, (int)enc->len, SQLITE_STATIC);
        sqlite3_bind_int64(upd, 4, seq);
        if (sqlite3_step(upd) != SQLITE_DONE)
          rc = GROVE_ESTORE;
        sqlite3_reset(upd);
        at = take;
      }
    }
  }
  sqlite3_reset(last);
  for (size_t k; !rc && at < n; at += k) {
    k = run_length(pts + at, n - at, CHUNK_MAX);
    buf_reset(enc);
    if ((rc = chunk_encode(pts + at, k, enc)))
      break;
    sqlite3_bind_int64(ins, 1, id);
    sqlite3_bind_int64(ins, 2, pts[at].ts_ns);
    sqlite3_bind_int64(ins, 3, pts[at + k - 1].ts_ns);
    sqlite3_bind_int64(ins, 4, (sqlite3_int64)k);
    sqlite3_bind_blob(ins, 5, enc->data, (int)enc->len, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE)
      rc = GROVE_ESTORE;
    sqlite3_reset(ins);
  }
  return rc;
}

/* Why a write of chunks failed: SQLite's word for it (SQLITE_FULL: "database
 * or disk is full"), or ours. */
static void chunk_error(struct series *s, int rc, char *why, size_t n) {
  struct sqlite_be *be = s->be;
  if (rc == GROVE_ESTORE)
    say(why, n, "cannot write chunks to '%s': %s", sqlite3_db_filename(be->wdb, "main"),
             sqlite3_errmsg(be->wdb));
  else
    say(why, n, "cannot write chunks: %s", grove_strerror(rc));
}

/* series_ops.put_chunks: frozen heads into chunks, with the keys they
 * name, in one transaction on the flush connection. Takes no store lock:
 * appends and reads go on meanwhile. On error, why says what failed and
 * nothing was written. */
static int put_chunks(struct series *s, const struct head *heads, uint32_t n,
                      char *const *keys, char *why, size_t whylen) {
  struct sqlite_be *be = s->be;
  /* a transaction a failed COMMIT left open (SQLite may keep it after
   * SQLITE_FULL) is rolled back first */
  if (!sqlite3_get_autocommit(be->wdb))
    exec(be->wdb, "ROLLBACK");
  int rc = exec(be->wdb, "BEGIN");
  sqlite3_stmt *ins = NULL, *key = NULL, *last = NULL, *upd = NULL;
  if (!rc && (sqlite3_prepare_v2(be->wdb, "INSERT INTO chunks (series, start_ns, end_ns, "
                                         "points, data) VALUES (?, ?, ?, ?, ?)", -1, &ins,
                                 NULL) != SQLITE_OK ||
              sqlite3_prepare_v2(be->wdb, "INSERT OR IGNORE INTO series (id, key) VALUES (?, ?)",
                                 -1, &key, NULL) != SQLITE_OK ||
              sqlite3_prepare_v2(be->wdb, "SELECT seq, end_ns, points, data, start_ns FROM chunks "
                                         "WHERE series = ? ORDER BY end_ns DESC LIMIT 1", -1, &last,
                                 NULL) != SQLITE_OK ||
              sqlite3_prepare_v2(be->wdb, "UPDATE chunks SET end_ns = ?, points = ?, data = ? "
                                         "WHERE seq = ?", -1, &upd, NULL) != SQLITE_OK))
    rc = GROVE_ESTORE;
  struct rollups *roll = NULL;
  if (!rc)
    rc = rollups_prepare(be->wdb, be->chunk_width, &be->rollups, &roll);
  struct buf enc;
  buf_init(&enc, 0);
  for (uint32_t id = 0; !rc && id < n; id++) {
    if (!keys[id])
      continue;
    if (id >= be->keys_saved) {
      sqlite3_bind_int64(key, 1, id);
      sqlite3_bind_text(key, 2, keys[id], -1, SQLITE_STATIC);
      if (sqlite3_step(key) != SQLITE_DONE)
        rc = GROVE_ESTORE;
      sqlite3_reset(key);
    }
    int64_t prev_end;
    if (!rc && heads[id].n &&
        !(rc = put_series_chunks(last, ins, upd, id, heads[id].pts, heads[id].n, &enc, &prev_end)))
      rc = rollups_update(roll, id, heads[id].pts, heads[id].n, prev_end);
  }
  if (rc)
    chunk_error(s, rc, why, whylen);
  buf_release(&enc);
  sqlite3_finalize(ins);
  sqlite3_finalize(key);
  sqlite3_finalize(last);
  sqlite3_finalize(upd);
  rollups_finish(roll);
  if (!rc && (rc = exec(be->wdb, "COMMIT")))
    chunk_error(s, rc, why, whylen);
  if (rc) {
    exec(be->wdb, "ROLLBACK");
    rollup_cache_clear(&be->rollups); /* it saw what is undone */
  } else if (n > be->keys_saved)
    be->keys_saved = n;
  return rc;
}


/* Drops what is past its retention (under flush_lock). */
static int expire(struct series *s, const int64_t before[3], char *why, size_t whylen) {
  struct sqlite_be *be = s->be;
  int rc = 0;
  if (before[0] != INT64_MIN) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(be->wdb, "DELETE FROM chunks WHERE end_ns < ?", -1, &st, NULL) !=
        SQLITE_OK) {
      rc = GROVE_ESTORE;
    } else {
      sqlite3_bind_int64(st, 1, before[0]);
      rc = sqlite3_step(st) == SQLITE_DONE ? 0 : GROVE_ESTORE;
      sqlite3_finalize(st);
    }
  }
  if (before[1] != INT64_MIN)
    rollup_cache_expire(&be->rollups, MINUTE_NS, before[1]);
  if (before[2] != INT64_MIN)
    rollup_cache_expire(&be->rollups, HOUR_NS, before[2]);
  if (!rc && before[1] != INT64_MIN)
    rc = rollups_expire(be->wdb, MINUTE_NS, before[1]);
  if (!rc && before[2] != INT64_MIN)
    rc = rollups_expire(be->wdb, HOUR_NS, before[2]);
  if (rc)
    chunk_error(s, rc, why, whylen);
  return rc;
}

/* ---- open ------------------------------------------------------------------------- */

/* Takes the directory's LOCK file (flock, exclusive, not waiting) and
 * writes this process' id in it. The kernel drops the lock when the file
 * is closed or the process dies (kill -9 too): there is never a stale
 * lock to clean up. The fd is close-on-exec, so children that exec do not
 * hold it. */
static int lock_dir(struct sqlite_be *be, const char *dir, char *err, size_t errlen) {
  char path[4096];
  say(path, sizeof path, "%s/LOCK", dir);
  be->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (be->lock_fd < 0) {
    say(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    return GROVE_EIO;
  }
  if (flock(be->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    if (e != EWOULDBLOCK) {
      say(err, errlen, "cannot lock '%s': %s", path, strerror(e));
      return GROVE_EIO;
    }
    char pid[24] = "";
    ssize_t n = pread(be->lock_fd, pid, sizeof pid - 1, 0);
    long holder = n > 0 ? strtol(pid, NULL, 10) : 0;
    if (holder > 0)
      say(err, errlen, "series directory '%s' is in use by another process (pid %ld)", dir,
          holder);
    else
      say(err, errlen, "series directory '%s' is in use by another process", dir);
    return GROVE_EBUSY;
  }
  char pid[24];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  /* the pid is for the message above only: failing to write it is no error */
  if (ftruncate(be->lock_fd, 0) == 0 && pwrite(be->lock_fd, pid, (size_t)len, 0) < 0)
    log_warn(NULL, "cannot write the series lock's pid", "path=\"%s\"", path);
  return 0;
}

static int load_keys(struct series *s) {
  struct sqlite_be *be = s->be;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(be->db, "SELECT id, key FROM series ORDER BY id", -1, &st, NULL) !=
      SQLITE_OK)
    return GROVE_ESTORE;
  int rc = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW)
    rc = keys_apply(s, (uint32_t)sqlite3_column_int64(st, 0),
                   (const char *)sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
  sqlite3_finalize(st);
  be->keys_saved = s->nkeys; /* ids are dense: every one below is saved */
  return rc;
}

/* How much time the widest chunk spans: CHUNK_SPAN, or for a database
 * with chunks from before chunks kept within spans, their widest, found
 * once (a scan) and kept in series_meta. Reads start that far before. */
static int load_width(struct series *s) {
  struct sqlite_be *be = s->be;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(be->db, "SELECT value FROM series_meta WHERE name = 'chunk_width'", -1,
                         &st, NULL) != SQLITE_OK)
    return GROVE_ESTORE;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW)
    be->chunk_width = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (step == SQLITE_ROW)
    return 0;
  if (step != SQLITE_DONE ||
      sqlite3_prepare_v2(be->db, "INSERT INTO series_meta (name, value) SELECT 'chunk_width', "
                                "max(?, coalesce(max(end_ns - start_ns), 0)) FROM chunks",
                         -1, &st, NULL) != SQLITE_OK)
    return GROVE_ESTORE;
  sqlite3_bind_int64(st, 1, CHUNK_SPAN);
  step = sqlite3_step(st);
  sqlite3_finalize(st);
  if (step != SQLITE_DONE)
    return GROVE_ESTORE;
  return load_width(s);
}

static bool exists(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  bool yes = false;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    yes = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  return yes;
}

/* Chunks written before rollups existed get theirs, once. */
static int backfill_rollups(struct series *s) {
  struct sqlite_be *be = s->be;
  if (exists(be->wdb, "SELECT EXISTS (SELECT 1 FROM rollups)") ||
      !exists(be->wdb, "SELECT EXISTS (SELECT 1 FROM chunks)"))
    return 0;
  log_info(NULL, "computing rollups of existing chunks", "series=%u", s->nkeys);
  struct rollups *r;
  int rc = exec(be->wdb, "BEGIN");
  if (!rc && (rc = rollups_prepare(be->wdb, be->chunk_width, NULL, &r)) == 0) {
    for (uint32_t id = 0; !rc && id < s->nkeys; id++) {
      struct head acc = {0};
      rc = read_chunks(be->wdb, id, INT64_MIN, INT64_MAX, be->chunk_width, &acc);
      if (!rc && acc.n)
        rc = rollups_update(r, id, acc.pts, acc.n, INT64_MIN);
      free(acc.pts);
    }
    rollups_finish(r);
  }
  if (!rc)
    rc = exec(be->wdb, "COMMIT");
  else
    exec(be->wdb, "ROLLBACK");
  return rc;
}

/* series.db's user_version says the keys' format: 0 as first written,
 * SERIES_KEY_FORMAT as key.h writes them. Keys of format 0 (in series.db
 * and in the replayed logs) are converted and saved, with the version, in
 * one transaction; the logs' key records are then older news (every id
 * they name is in series.db). */
#define SERIES_KEY_FORMAT 1

static int migrate_keys(struct series *s, char *err, size_t errlen) {
  struct sqlite_be *be = s->be;
  sqlite3_stmt *st = NULL;
  int version = -1;
  if (sqlite3_prepare_v2(be->wdb, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (version < 0 || version > SERIES_KEY_FORMAT) {
    snprintf(err, errlen, "series keys are in format %d, newer than this grove (%d)", version,
             SERIES_KEY_FORMAT);
    return GROVE_ESTORE;
  }
  if (version == SERIES_KEY_FORMAT)
    return 0;
  char **fresh;
  size_t changed;
  int rc = keys_convert(s, &fresh, &changed);
  if (rc)
    return rc;
  sqlite3_stmt *upd = NULL, *ins = NULL;
  rc = exec(be->wdb, "BEGIN IMMEDIATE") ||
               sqlite3_prepare_v2(be->wdb, "UPDATE series SET key = ? WHERE id = ?", -1, &upd,
                                  NULL) != SQLITE_OK ||
               sqlite3_prepare_v2(be->wdb, "INSERT OR REPLACE INTO series (id, key) VALUES (?, ?)",
                                  -1, &ins, NULL) != SQLITE_OK
           ? GROVE_ESTORE
           : 0;
  /* two passes, so that no key is briefly held by two ids (UNIQUE) */
  for (int pass = 0; pass < 2 && !rc; pass++)
    for (uint32_t id = 0; id < be->keys_saved && !rc; id++) {
      if (!fresh[id] || strcmp(fresh[id], s->keys[id]) == 0)
        continue;
      char tmp[32];
      snprintf(tmp, sizeof tmp, "\x01moving %u", id); /* not a key of either format */
      sqlite3_bind_text(upd, 1, pass ? fresh[id] : tmp, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(upd, 2, id);
      if (sqlite3_step(upd) != SQLITE_DONE)
        rc = GROVE_ESTORE;
      sqlite3_reset(upd);
    }
  for (uint32_t id = be->keys_saved; id < s->nkeys && !rc; id++) {
    if (!fresh[id])
      continue;
    sqlite3_bind_int64(ins, 1, id);
    sqlite3_bind_text(ins, 2, fresh[id], -1, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE)
      rc = GROVE_ESTORE;
    sqlite3_reset(ins);
  }
  sqlite3_finalize(upd);
  sqlite3_finalize(ins);
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SERIES_KEY_FORMAT);
  if (!rc && (exec(be->wdb, sql) || exec(be->wdb, "COMMIT")))
    rc = GROVE_ESTORE;
  if (rc) {
    snprintf(err, errlen, "cannot convert series keys to format %d: %s", SERIES_KEY_FORMAT,
             sqlite3_errmsg(be->wdb));
    exec(be->wdb, "ROLLBACK");
    for (uint32_t id = 0; id < s->nkeys; id++)
      free(fresh[id]);
    free(fresh);
    return rc;
  }
  if ((rc = keys_adopt(s, fresh)))
    return rc;
  be->keys_saved = s->nkeys;
  if (s->nkeys)
    log_info(NULL, "series keys converted to the escaped format", "series=%u changed=%zu",
             s->nkeys, changed);
  return 0;
}


/* The types' own connection, their table made. */
static int open_types(struct sqlite_be *be, const char *path, char *err, size_t errlen) {
  if (sqlite3_open(path, &be->tdb) != SQLITE_OK ||
      exec(be->tdb, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;"
                    "CREATE TABLE IF NOT EXISTS series_types (key TEXT PRIMARY KEY,"
                    " type INTEGER NOT NULL) WITHOUT ROWID")) {
    snprintf(err, errlen, "cannot read series types from '%s': %s", path,
             be->tdb ? sqlite3_errmsg(be->tdb) : "out of memory");
    return GROVE_ESTORE;
  }
  return 0;
}

/* Opens (creating) the store in dir: the lock, series.db, the logs
 * replayed (a flush that did not finish is finished first), the keys
 * brought to the current format. */
static int sqlite_open(struct series *s, const char *dir, char *err, size_t errlen) {
  struct sqlite_be *be = calloc(1, sizeof *be);
  if (!be)
    return GROVE_ENOMEM;
  be->lock_fd = -1;
  pthread_mutex_init(&be->tdb_lock, NULL);
  s->be = be;
  char path[4096];
  mkdir_p(dir, 0750); /* an error shows when the files cannot be opened */
  int rc = lock_dir(be, dir, err, errlen);
  if (rc)
    return rc;
  snprintf(path, sizeof path, "%s/series.db", dir);
  if (sqlite3_open_v2(path, &be->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                        SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK ||
      sqlite3_busy_timeout(be->db, 10000) != SQLITE_OK || /* as be->wdb: wait for the lock */
      exec(be->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                  "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);"
                  "CREATE TABLE IF NOT EXISTS chunks (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                  " series INTEGER NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,"
                  " points INTEGER NOT NULL, data BLOB NOT NULL);"
                  "CREATE INDEX IF NOT EXISTS chunks_by_series ON chunks (series, end_ns);"
                  "CREATE INDEX IF NOT EXISTS chunks_by_end ON chunks (end_ns);"
                  "CREATE INDEX IF NOT EXISTS chunks_by_start ON chunks (series, start_ns);"
                  "CREATE TABLE IF NOT EXISTS series_meta (name TEXT PRIMARY KEY, value NOT NULL);"
                  "CREATE TABLE IF NOT EXISTS rollups (series INTEGER NOT NULL, res INTEGER NOT NULL,"
                  " bucket INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,"
                  " min REAL NOT NULL, max REAL NOT NULL, first REAL NOT NULL, last REAL NOT NULL,"
                  " PRIMARY KEY (series, res, bucket)) WITHOUT ROWID")) {
    snprintf(err, errlen, "cannot open series database '%s': %s", path,
             be->db ? sqlite3_errmsg(be->db) : "out of memory");
    rc = GROVE_ESTORE;
    return rc;
  }
  if (sqlite3_open(path, &be->wdb) != SQLITE_OK ||
      exec(be->wdb, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000")) {
    snprintf(err, errlen, "cannot open series database '%s' to write", path);
    rc = GROVE_ESTORE;
    return rc;
  }
  if ((rc = load_width(s))) {
    snprintf(err, errlen, "cannot read the chunks' width from '%s': %s", path, sqlite3_errmsg(be->db));
    return rc;
  }
  if ((rc = load_keys(s))) {
    snprintf(err, errlen, "cannot read series keys from '%s'", path);
    return rc;
  }
  if ((rc = backfill_rollups(s))) {
    snprintf(err, errlen, "cannot compute rollups of '%s'", path);
    return rc;
  }
  snprintf(s->log.path, sizeof s->log.path, "%s/series.wal", dir);
  snprintf(s->log.old_path, sizeof s->log.old_path, "%s/series.wal.old", dir);
  /* a log set aside by a flush that did not finish: its points first */
  int old = open(s->log.old_path, O_RDWR | O_CLOEXEC);
  if (old >= 0) {
    rc = log_replay(s, old, NULL);
    close(old);
    if (rc) {
      snprintf(err, errlen, "cannot replay series log '%s': %s", s->log.old_path, grove_strerror(rc));
      return rc;
    }
  }
  s->log.fd = open(s->log.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (s->log.fd < 0) {
    snprintf(err, errlen, "cannot open series log '%s': %s", s->log.path, strerror(errno));
    rc = GROVE_EIO;
    return rc;
  }
  if ((rc = log_replay(s, s->log.fd, &s->log.end))) {
    snprintf(err, errlen, "cannot replay series log '%s': %s", s->log.path, grove_strerror(rc));
    return rc;
  }
  if (old >= 0) { /* finish that flush: both logs' points into chunks, then one empty log */
    char why[640];
    if ((rc = put_chunks(s, s->heads, s->nkeys, s->keys, why, sizeof why))) {
      /* No room for chunks (a disk still full): start anyway, the points
       * of both logs waiting set aside as after a failed flush, both
       * logs kept until a flush succeeds. (The current log's records
       * then stay in it too; replayed again they rewrite the same
       * values, and later records of it still come after them.) */
      struct head *fresh = heads_new(s);
      if (!fresh) {
        snprintf(err, errlen, "cannot move the logs' points into chunks: out of memory");
        rc = GROVE_ENOMEM;
        return rc;
      }
      trouble_set(s, TROUBLE_CHUNKS, why);
      heads_freeze(s, fresh);
      rc = 0;
    } else if (ftruncate(s->log.fd, 0) < 0 || fsync(s->log.fd) < 0 || unlink(s->log.old_path) < 0) {
      snprintf(err, errlen, "cannot empty the series logs: %s", strerror(errno));
      rc = GROVE_EIO;
      return rc;
    } else {
      heads_clear(s);
      s->log.end = 0;
    }
  }
  if ((rc = migrate_keys(s, err, errlen)))
    return rc;
  return open_types(be, path, err, errlen);
}

static void sqlite_close(struct series *s) {
  struct sqlite_be *be = s->be;
  if (!be)
    return;
  sqlite3_close(be->db);
  sqlite3_close(be->wdb);
  sqlite3_close(be->tdb);
  pthread_mutex_destroy(&be->tdb_lock);
  if (be->lock_fd >= 0)
    close(be->lock_fd); /* releases the lock */
  rollup_cache_release(&be->rollups);
  free(be);
  s->be = NULL;
}

/* ---- keys and types ------------------------------------------------------------------ */

/* Ids are made here, dense, and logged with the next group commit; the
 * registry holds every key there is, so one it lacks has none. */
static int sqlite_key_ids(struct series *s, const char *const *keys, size_t n, bool create,
                          uint32_t *ids) {
  if (!create)
    return GROVE_ENOENT;
  int rc = 0;
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < n && !rc; i++) {
    uintptr_t v = (uintptr_t)map_get(&s->ids, keys[i]); /* made meanwhile, or twice in keys */
    if (v) {
      ids[i] = (uint32_t)(v - 1);
      continue;
    }
    ids[i] = s->nkeys;
    rc = keys_apply(s, s->nkeys, keys[i], strlen(keys[i]));
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

static int sqlite_types_load(struct series *s, types_fn fn, void *arg) {
  struct sqlite_be *be = s->be;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(be->tdb, "SELECT key, type FROM series_types", -1, &st, NULL) !=
      SQLITE_OK)
    return GROVE_ESTORE;
  int rc = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW)
    rc = fn((const char *)sqlite3_column_text(st, 0), (uint8_t)sqlite3_column_int(st, 1), arg);
  sqlite3_finalize(st);
  return rc;
}

/* One transaction: insert where missing, read back. */
static int sqlite_types_claim(struct series *s, const char *const *keys, const uint8_t *types,
                              size_t n, types_fn fn, void *arg) {
  struct sqlite_be *be = s->be;
  sqlite3_stmt *ins = NULL, *sel = NULL;
  pthread_mutex_lock(&be->tdb_lock);
  int rc = exec(be->tdb, "BEGIN IMMEDIATE") == 0 &&
                   sqlite3_prepare_v2(be->tdb,
                                      "INSERT OR IGNORE INTO series_types (key, type) VALUES (?, ?)",
                                      -1, &ins, NULL) == SQLITE_OK &&
                   sqlite3_prepare_v2(be->tdb, "SELECT type FROM series_types WHERE key = ?", -1,
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
      rc = fn(keys[i], (uint8_t)sqlite3_column_int(sel, 0), arg);
    else if (!rc)
      rc = GROVE_ESTORE;
    sqlite3_reset(sel);
  }
  sqlite3_finalize(ins);
  sqlite3_finalize(sel);
  if (!rc && exec(be->tdb, "COMMIT"))
    rc = GROVE_ESTORE;
  if (rc)
    exec(be->tdb, "ROLLBACK");
  pthread_mutex_unlock(&be->tdb_lock);
  return rc;
}

/* ---- reads ------------------------------------------------------------------------- */

static int sqlite_read(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
                       struct head *acc, bool *more, int64_t *next) {
  struct sqlite_be *be = s->be;
  return read_collect(s, be->db, be->chunk_width, id, from, to, limit, acc, more, next);
}

static int sqlite_buckets(struct series *s, uint32_t id, int64_t from, int64_t to,
                          struct bucketer *k) {
  struct sqlite_be *be = s->be;
  return read_points(s, be->db, be->chunk_width, id, from, to, SIZE_MAX, bucketer_point, k);
}

static int sqlite_rollups_read(struct series *s, uint32_t id, int64_t res, int64_t from,
                               int64_t to, int64_t step, struct series_bucket **out, size_t *n) {
  struct sqlite_be *be = s->be;
  return rollups_read(be->db, id, res, from, to, step, out, n);
}

const struct series_ops series_sqlite_ops = {
    .name = "sqlite",
    .paths = {"series log", "series chunks"},
    .open = sqlite_open,
    .close = sqlite_close,
    .key_ids = sqlite_key_ids,
    .types_load = sqlite_types_load,
    .types_claim = sqlite_types_claim,
    .commit = log_commit,
    .flush_due = heads_pending,
    .flush = flush_local,
    .put_chunks = put_chunks,
    .expire = expire,
    .read = sqlite_read,
    .buckets = sqlite_buckets,
    .rollups_read = sqlite_rollups_read,
    .unrolled = heads_unrolled,
};
