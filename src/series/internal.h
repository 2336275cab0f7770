/* internal.h — what the series store's files share (series-internal;
 * nothing here reaches series.h's callers).
 *
 * A store is a generic core and one backend, reached through an ops table
 * (struct series_ops) chosen at open, as curl's vtls:
 *
 *   series.c         life (open with a backend, close), health, retention
 *   keys.c           the key registry: key <-> dense id, in memory
 *   types.c          the field type of each key, cached
 *   head.c           the head: recent points in memory, per series, by time
 *   log.c            group commit (a queue, one writer thread) and the local
 *                    write-ahead log (records, replay, cut back on errors)
 *   flush.c          flush scheduling (the autoflush thread) and the local
 *                    flush: head and log set aside, then into chunks
 *   query.c          reads and aggregates over what the backend answers
 *   sqlite.c         the SQLite backend: chunks, rollups and keys in
 *                    series.db, points logged and held in the head first
 *   sqlite_read.c    its reads: the head's runs merged with the chunks
 *   sqlite_rollup.c  its 1-minute and 1-hour rollups
 *   postgres.c       the PostgreSQL backend: every group commit a COPY,
 *                    nothing held in memory, rollups computed there
 *
 * The generic files call a backend only through s->ops; a backend may use
 * the generic pieces (the log, the head, the local flush) as its parts.
 *
 * Locks: s->lock guards the registry, the heads, the queue, the log's
 * state and trouble; s->flush_lock lets one flush run at a time. Where both
 * are taken, flush_lock first. */
#ifndef GROVE_SERIES_INTERNAL_H
#define GROVE_SERIES_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/map.h"
#include "core/util.h"
#include "series/chunk.h"
#include "series/series.h"

#define MINUTE_NS 60000000000LL
#define HOUR_NS 3600000000000LL

/* snprintf for messages that name a path: cut short if they must be. */
__attribute__((format(printf, 3, 4))) void say(char *out, size_t n, const char *fmt, ...);

/* The system calls the series log is written with. Tests replace them to
 * make a chosen write or sync fail or write short (fault injection);
 * production never changes them. Process-wide: set before series_open,
 * not while a store writes. */
struct series_io {
  ssize_t (*write)(int fd, const void *buf, size_t n);
  int (*fdatasync)(int fd);
  int (*ftruncate)(int fd, off_t len);
  int (*fsync)(int fd);
};
extern struct series_io series_io;

/* Rollups cover the whole hours inside int64, [ROLLUP_MIN_NS,
 * ROLLUP_END_NS): there every minute and hour, start and end, is an int64.
 * Points in the partial first and last hours of the time range (before
 * 1677-09-21T01:00Z, from 2262-04-11T23:00Z) are kept and read raw but
 * never rolled up; an aggregate reaching there computes those buckets from
 * the points (series_aggregate). ±(INT64_MAX / HOUR_NS) * HOUR_NS. */
#define ROLLUP_MIN_NS (-9223369200000000000LL)
#define ROLLUP_END_NS 9223369200000000000LL
static inline bool rollup_covers(int64_t ts) { return ts >= ROLLUP_MIN_NS && ts < ROLLUP_END_NS; }

/* t's bucket start: callers pass a t at or after a bucket start that fits */
static inline int64_t floor_to(int64_t t, int64_t step) { return time_floor_div(t, step) * step; }

/* ---- the store ------------------------------------------------------------- */

/* A batch queued for group commit (series_append): its points, copied. */
struct batch {
  struct batch *next;
  series_done_fn done;
  void *arg;
  size_t n;
  struct series_point pts[];
};

/* A series' points sorted by time. */
struct head {
  struct series_sample *pts;
  size_t n, cap;
};

/* The durable write paths, for series_health: where a group commit goes,
 * where a flush goes. */
enum trouble_path { TROUBLE_LOG, TROUBLE_CHUNKS, TROUBLE_N };

/* The local write-ahead log (log.c): series.wal, and series.wal.old while
 * a flush has it set aside. fd -1: the backend keeps no log. */
struct series_log {
  int fd;
  off_t end;       /* the end of its last good record (the writer's; a
                    * flush sets it while the writer is idle) */
  bool dirty;      /* bytes past end not cut yet: no append until they are */
  char path[4096], old_path[4096];
  struct buf out, payload; /* the writer's, kept between groups */
};

struct series_ops;
struct stypes;

struct series {
  const struct series_ops *ops;
  void *be;                /* the backend's own state */
  pthread_mutex_t lock;    /* registry, heads, queue, log state, trouble */
  pthread_mutex_t flush_lock; /* one flush at a time */
  char trouble[TROUBLE_N][640]; /* "" or what went wrong (under lock) */
  uint64_t read_work;      /* points decoded, copied and compared by reads (atomic) */
  int64_t keep_ns[3];      /* retention of raw points, 1m and 1h rollups; 0: forever
                            * (set under both locks, read under either) */
  bool keep_elsewhere;     /* series_retention_elsewhere: flushes drop nothing (as keep_ns) */
  /* the key registry (keys.c) */
  struct map ids;          /* key -> id + 1 (as uintptr_t) */
  char **keys;             /* id -> key */
  uint8_t *ktypes;         /* id -> its field type once this process saw it
                            * (SERIES_TYPE_NONE: not yet; a recorded type never
                            * changes), as many as capkeys */
  uint32_t nkeys, capkeys, logged; /* keys [logged, nkeys) are not in the log yet */
  struct stypes *types;    /* field types by key (types.c) */
  /* the head (head.c), by id, as many as capkeys */
  struct head *heads;
  size_t head_points;
  size_t head_series;      /* series with points in the head */
  /* Points on their way into chunks: the heads as they were when the log
   * was set aside (series.wal.old), by id; reads still see them. */
  struct head *frozen;
  uint32_t nfrozen;
  struct series_log log;
  /* group commit (log.c) */
  struct batch *queue, *tail;
  bool busy, stop;
  pthread_cond_t work, idle;
  pthread_t writer;
  /* autoflush (flush.c) */
  struct periodic *flusher; /* NULL: none (set and cleared under lock) */
  uint64_t flush_ms;
  size_t flush_points;
};

/* Notes (why non-NULL) or clears (why NULL) trouble on one write path
 * (under lock); logged once as it starts and once as it ends. */
void trouble_set(struct series *s, enum trouble_path path, const char *why);

/* The retention cut-offs now (under either lock): before[0] for raw
 * points, [1] for 1-minute and [2] for 1-hour rollups; INT64_MIN where
 * nothing is to be dropped here (kept for ever, or retention applied
 * elsewhere). */
void retention_cutoffs(struct series *s, int64_t before[3]);
/* Whether this process drops anything past retention (under either lock). */
bool retention_here(struct series *s);

/* ---- backends ---------------------------------------------------------------- */

/* A type recorded for key (types.c's map, or a claim's answer). */
typedef int (*types_fn)(const char *key, uint8_t type, void *arg);

/* Buckets of `step` made from points that come by time (query.c). */
struct bucketer {
  struct series_bucket *b;
  size_t n, cap;
  int64_t step;
};
/* Adds a point (a merge_fn) and a whole bucket to k. */
int bucketer_point(int64_t ts, double v, void *arg);
int bucketer_add(struct bucketer *k, const struct series_bucket *b);

/* A growing list of bucket starts (query.c). */
struct starts {
  int64_t *v;
  size_t n, cap;
};
int starts_add(struct starts *l, int64_t bs);

/* What a backend implements. Every function gets the store; the backend's
 * own state is s->be. Errors are GROVE_E* codes. */
struct series_ops {
  const char *name; /* "sqlite", "postgres" */
  /* how series_health names each durable path */
  const char *paths[TROUBLE_N];

  /* Opens the backend on target (a directory, a URL) into s->be: loads
   * its keys into the registry (keys_apply) and replays its log if it
   * keeps one. No thread runs yet. On error err (errlen bytes) says why;
   * close is still called. */
  int (*open)(struct series *s, const char *target, char *err, size_t errlen);
  /* Frees s->be (which may be NULL or half made); the threads are gone. */
  void (*close)(struct series *s);

  /* The key registry: ids of keys that are not in s's registry, made
   * when `create` (else GROVE_ENOENT for a key that has none), each put in
   * the registry (keys_apply) before it returns. Called without lock. */
  int (*key_ids)(struct series *s, const char *const *keys, size_t n, bool create,
                 uint32_t *ids);
  /* Puts the keys other instances made since the last call into the
   * registry (keys_apply, under s->lock), before series_each_key walks
   * it. Called without lock. NULL: a backend only this process writes. */
  int (*keys_refresh)(struct series *s);
  /* Field types: every recorded one to fn (once, at open); and a claim:
   * types[i] recorded for each keys[i] that has none, in one transaction,
   * then the type each key has to fn. */
  int (*types_load)(struct series *s, types_fn fn, void *arg);
  int (*types_claim)(struct series *s, const char *const *keys, const uint8_t *types,
                     size_t n, types_fn fn, void *arg);

  /* Makes one group of batches durable, then records how that went
   * (trouble_set on TROUBLE_LOG). Called by the writer thread under lock;
   * may let go of it while it writes and holds it again on return. */
  int (*commit)(struct series *s, struct batch *group);
  /* Whether a flush has anything to do (under lock): points or minutes
   * waiting, or for a backend that keeps nothing waiting, retention to
   * apply here (retention_here). */
  bool (*flush_due)(struct series *s);
  /* One flush (under flush_lock, not lock): 0 done, 1 nothing to do, or
   * an error with why (n bytes) saying what failed. */
  int (*flush)(struct series *s, char *why, size_t n);
  /* Stores heads (as many as n, by id, with their keys; keys[id] NULL:
   * none) as chunks, in one transaction: all or nothing. For backends that
   * keep a head (their flush is flush_local); NULL otherwise. */
  int (*put_chunks)(struct series *s, const struct head *heads, uint32_t n, char *const *keys,
                    char *why, size_t whylen);
  /* Drops raw points and rollups older than before[] (retention_cutoffs;
   * INT64_MIN: keep). On error why says what failed. */
  int (*expire)(struct series *s, const int64_t before[3], char *why, size_t whylen);

  /* At most limit points of id in [from, to) appended to acc (empty) by
   * time, the newest write of each timestamp; *more and *next as
   * series_read's. */
  int (*read)(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
              struct head *acc, bool *more, int64_t *next);
  /* The buckets (of k->step) of the points of id in [from, to), added to
   * k in time order. */
  int (*buckets)(struct series *s, uint32_t id, int64_t from, int64_t to, struct bucketer *k);
  /* Buckets of `step` (a multiple of res) from the rollups of resolution
   * res in [from, to), both multiples of step. OUT: *out (free it), *n. */
  int (*rollups_read)(struct series *s, uint32_t id, int64_t res, int64_t from, int64_t to,
                      int64_t step, struct series_bucket **out, size_t *n);
  /* The starts of the buckets of `step` in [from, to) whose rollups may
   * miss points (written, not rolled up yet), added to l (under lock). */
  int (*unrolled)(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                  struct starts *l);
};

extern const struct series_ops series_sqlite_ops;
extern const struct series_ops series_postgres_ops;

/* ---- the key registry (keys.c) ------------------------------------------------ */

/* Puts key (len bytes) in the registry as id, growing the id-indexed
 * arrays (keys, heads) by doubling (under lock, or before the threads
 * run). An id already named keeps its key. GROVE_EINVAL for an empty key
 * or one longer than SERIES_KEY_MAX. */
int keys_apply(struct series *s, uint32_t id, const char *key, size_t len);
/* The keys in the format of key.h: each key of format 0 converted
 * (series_key_from_legacy). OUT: *out (nkeys strings, NULL where an id has
 * no key), *changed (may be NULL) how many changed. Only at open. */
int keys_convert(struct series *s, char ***out, size_t *changed);
/* Puts converted keys in place of the old ones (frees those, takes
 * fresh). Only at open. */
int keys_adopt(struct series *s, char **fresh);
/* Frees what keys_convert made. */
void keys_free(char **fresh, uint32_t n);

/* ---- field types (types.c) ---------------------------------------------------- */

/* A map in memory over the backend's types, loaded at open. Thread-safe. */
int stypes_open(struct stypes **out, struct series *s, char *err, size_t errlen);
void stypes_close(struct stypes *t);

/* ---- the head (head.c) -------------------------------------------------------- */

/* The first index of pts (sorted by time) at or after ts, searching
 * [lo, n): a binary search. */
size_t points_lower_bound(const struct series_sample *pts, size_t lo, size_t n, int64_t ts);
/* Inserts keeping time order. An equal timestamp is replaced, or with
 * `replace` false kept as it is (the point given is older news). */
int head_put(struct head *h, int64_t ts, double v, bool replace);
/* Puts points of registered series in their heads (under lock). */
int heads_apply(struct series *s, const struct series_point *p, size_t n);
/* Fresh (empty) heads for every id there may be (NULL: out of memory),
 * and setting the heads aside as frozen for them (under lock, none
 * frozen). */
struct head *heads_new(struct series *s);
void heads_freeze(struct series *s, struct head *fresh);
/* Empties the heads (under lock, or before the threads run). */
void heads_clear(struct series *s);
void heads_free(struct head *h, uint32_t n);
/* Whether points wait in memory, in the head or set aside (under lock). */
bool heads_pending(struct series *s);
/* Copies of a series' points in memory in [from, to), older layer first,
 * at most `limit` of each (taken under the lock). OUT: mem[0..2]. */
struct merge_src {
  const struct series_sample *pts;
  size_t n;
};
int heads_copy(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
               struct merge_src mem[2]);
/* series_ops.unrolled for a backend that keeps a head: the buckets of
 * the points in memory (under lock). */
int heads_unrolled(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                   struct starts *l);

/* ---- the log (log.c) ---------------------------------------------------------- */

/* series_ops.commit for a backend that keeps a local log: the group's new
 * keys and points appended to the log and synced, then into the head. A
 * failed write is cut back (log.dirty while it cannot be). */
int log_commit(struct series *s, struct batch *group);
/* Replays a log into the registry and the head; cuts a torn or damaged
 * tail. OUT: *end (may be NULL), where its last good record ends. */
int log_replay(struct series *s, int fd, off_t *end);
/* Cuts the log back to the end of its last good record, durably. Returns
 * 0, or GROVE_EIO with what failed added to why (after a "; " when it
 * says something already). */
int log_cut(struct series *s, int fd, off_t end, char *why, size_t n);
/* Sets the log aside as series.wal.old and starts an empty series.wal
 * (under lock, the writer idle). On error why says what failed and
 * nothing changed. */
int log_set_aside(struct series *s, char *why, size_t n);
/* Starts the writer thread (group commit). */
int log_start(struct series *s);

/* ---- flush (flush.c) ---------------------------------------------------------- */

/* Wakes the autoflush once the head holds its points (under lock). */
void flush_wake_if_full(struct series *s);
/* Stops the autoflush, waiting for a flush in progress. */
void flush_stop(struct series *s);

/* series_ops.flush for a backend that keeps a head: the head set aside
 * with its log, put into chunks (ops->put_chunks), the old log removed,
 * then retention (ops->expire). A failed flush leaves the points set
 * aside; the next one tries them first. */
int flush_local(struct series *s, char *why, size_t n);

/* ---- SQLite (sqlite_read.c, sqlite_rollup.c) ------------------------------------ */

/* Chunks span at most this much time from their first point to their
 * last (they never cross a 2-hour boundary; a database made before that
 * rule records its widest in series_meta): a chunk holding time t starts
 * after t - width. */
#define CHUNK_SPAN (2 * HOUR_NS)

/* Reading: sorted runs merged by time, the newest write of each timestamp
 * winning. `mem` are runs in memory (sorted, each newer than the chunks
 * and than the runs before it); the chunks of series id come from db
 * (NULL: none). fn gets each point of [from, to) in time order and returns
 * 0 to go on, 1 to stop, or a negative error that the read returns. Work
 * (points decoded, copied and compared) is added to *work (may be NULL):
 * tests use it to prove reads are linear. */
typedef int (*merge_fn)(int64_t ts, double value, void *arg);
int merge_read(sqlite3 *db, uint32_t id, int64_t from, int64_t to, int64_t width,
               const struct merge_src *mem, size_t nmem, merge_fn fn, void *arg,
               uint64_t *work);

/* Appends the chunked points of series id in [from, to) to acc (empty),
 * the newest write of each timestamp, in time order. */
int read_chunks(sqlite3 *db, uint32_t id, int64_t from, int64_t to, int64_t width,
                struct head *acc);

/* Every point of id in [from, to) to fn, in time order: the head's layers
 * (copied under lock), then the chunks in db, merged. `limit`: fn stops
 * the read by then. Adds its work to s->read_work. */
int read_points(struct series *s, sqlite3 *db, int64_t width, uint32_t id, int64_t from,
                int64_t to, size_t limit, merge_fn fn, void *arg);
/* series_ops.read over read_points. */
int read_collect(struct series *s, sqlite3 *db, int64_t width, uint32_t id, int64_t from,
                 int64_t to, size_t limit, struct head *acc, bool *more, int64_t *next);

/* Rollups: per series, 1-minute and 1-hour buckets (count, sum, min, max,
 * first, last) in the `rollups` table, updated as points move into
 * chunks. `prev_end` is the newest timestamp the series had in chunks
 * before these points (INT64_MIN: none): points after it extend the
 * rollups; points at or before it make their buckets be computed again
 * from the chunks. */
struct rollups;
/* The minute and the hour bucket each series' rollups last wrote, so that
 * a flush extending them needs not read them back. Owned by the backend,
 * used under flush_lock; it holds only what is committed: cleared when a
 * flush rolls back, and buckets past retention dropped with their rows. */
struct rollup_cache {
  struct rollup_open {
    struct series_bucket minute, hour;
    bool has_minute, has_hour;
  } *by_id;
  size_t cap;
};
void rollup_cache_clear(struct rollup_cache *c);
void rollup_cache_expire(struct rollup_cache *c, int64_t res, int64_t before);
void rollup_cache_release(struct rollup_cache *c);
/* cache may be NULL (every bucket read back). */
int rollups_prepare(sqlite3 *db, int64_t width, struct rollup_cache *cache, struct rollups **out);
void rollups_finish(struct rollups *r);
int rollups_update(struct rollups *r, uint32_t id, const struct series_sample *pts, size_t n,
                   int64_t prev_end);
/* Buckets of `step` (a multiple of res) from the rollups of resolution res
 * in [from, to), both multiples of step. OUT: *out (free it), *n. */
int rollups_read(sqlite3 *db, uint32_t id, int64_t res, int64_t from, int64_t to, int64_t step,
                 struct series_bucket **out, size_t *n);
/* Deletes rollups older than `before` of resolution res. */
int rollups_expire(sqlite3 *db, int64_t res, int64_t before);

/* ---- PostgreSQL (postgres.c) -------------------------------------------------- */

/* The range query ($1 series, $2 from, $3 to, $4 limit + 1): tests read
 * its plan. */
extern const char pgs_range_sql[];

#endif
