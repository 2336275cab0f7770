/* internal.h — what series.c and rollup.c share (series-internal). */
#ifndef GROVE_SERIES_INTERNAL_H
#define GROVE_SERIES_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <sys/types.h>

#include "series/series.h"

#define MINUTE_NS 60000000000LL
#define HOUR_NS 3600000000000LL

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

/* A series' points sorted by time. */
struct head {
  struct chunk_point *pts;
  size_t n, cap;
};

/* Inserts keeping time order. An equal timestamp is replaced, or with
 * `replace` false kept as it is (the point given is older news). */
int head_put(struct head *h, int64_t ts, double v, bool replace);

/* Chunks span at most this much time from their first point to their
 * last (they never cross a 2-hour boundary; a database made before that
 * rule records its widest in series_meta): a chunk holding time t starts
 * after t - width. */
#define CHUNK_SPAN (2 * HOUR_NS)

/* Reading (read.c): sorted runs merged by time, the newest write of each
 * timestamp winning. `mem` are runs in memory (sorted, each newer than
 * the chunks and than the runs before it); the chunks of series id come
 * from db (NULL: none). fn gets each point of [from, to) in time order
 * and returns 0 to go on, 1 to stop, or a negative error that the read
 * returns. Work (points decoded, copied and compared) is added to *work
 * (may be NULL): tests use it to prove reads are linear. */
struct merge_src {
  const struct chunk_point *pts;
  size_t n;
};
typedef int (*merge_fn)(int64_t ts, double value, void *arg);
int merge_read(sqlite3 *db, uint32_t id, int64_t from, int64_t to, int64_t width,
               const struct merge_src *mem, size_t nmem, merge_fn fn, void *arg,
               uint64_t *work);

/* Appends the chunked points of series id in [from, to) to acc (empty),
 * the newest write of each timestamp, in time order. */
int read_chunks(sqlite3 *db, uint32_t id, int64_t from, int64_t to, int64_t width,
                struct head *acc);

/* Rollups: per series, 1-minute and 1-hour buckets (count, sum, min, max,
 * first, last) in the `rollups` table, updated as points move into
 * chunks. `prev_end` is the newest timestamp the series had in chunks
 * before these points (INT64_MIN: none): points after it extend the
 * rollups; points at or before it make their buckets be computed again
 * from the chunks. */
struct rollups;
int rollups_prepare(sqlite3 *db, int64_t width, struct rollups **out);
void rollups_finish(struct rollups *r);
int rollups_update(struct rollups *r, uint32_t id, const struct chunk_point *pts, size_t n,
                   int64_t prev_end);
/* Buckets of `step` (a multiple of res) from the rollups of resolution res
 * in [from, to), both multiples of step. OUT: *out (free it), *n. */
int rollups_read(sqlite3 *db, uint32_t id, int64_t res, int64_t from, int64_t to, int64_t step,
                 struct series_bucket **out, size_t *n);
/* Deletes rollups older than `before` of resolution res. */
int rollups_expire(sqlite3 *db, int64_t res, int64_t before);

/* PostgreSQL (pgseries.c): points, keys and rollups there. */
struct pgseries;
int pgs_open(struct pgseries **out, const char *url, char *err, size_t errlen);
void pgs_close(struct pgseries *p);
int pgs_load_keys(struct pgseries *p, int (*fn)(uint32_t id, const char *key, size_t len, void *arg),
                  void *arg);
/* The id of a key, made when `create` (GROVE_ENOENT when absent otherwise). */
int pgs_key_id(struct pgseries *p, const char *key, bool create, uint32_t *id);
/* The ids of many keys, made where missing: two round trips in all. */
int pgs_key_ids(struct pgseries *p, const char *const *keys, size_t n, uint32_t *ids);
/* One group commit: a COPY, committed. Points before keep_after are not
 * kept. On error, why (whylen bytes) says what PostgreSQL answered. */
int pgs_write(struct pgseries *p, const struct series_point *pts, size_t n, int64_t keep_after,
              char *why, size_t whylen);
/* At most limit points (by time, the last write of each) appended to acc;
 * *more and *next as series_read's. */
int pgs_range(struct pgseries *p, uint32_t id, int64_t from, int64_t to, size_t limit,
              struct head *acc, bool *more, int64_t *next);
/* Its query ($1 series, $2 from, $3 to, $4 limit + 1): tests read its plan. */
extern const char pgs_range_sql[];
int pgs_buckets_raw(struct pgseries *p, uint32_t id, int64_t from, int64_t to, int64_t step,
                    struct series_bucket **out, size_t *n);
int pgs_rollups_read(struct pgseries *p, uint32_t id, int64_t res, int64_t from, int64_t to,
                     int64_t step, struct series_bucket **out, size_t *n);
/* Rolls up these minutes (sorted here) and their hours from the points.
 * On error, why (whylen bytes) says what PostgreSQL answered. */
int pgs_rollup(struct pgseries *p, int64_t *minutes, size_t n, char *why, size_t whylen);
/* Drops days of points ending before raw_before and rollups before the
 * others (INT64_MIN: keep). */
int pgs_expire(struct pgseries *p, int64_t raw_before, int64_t minute_before, int64_t hour_before);

/* Field types by key (types.c): a map in memory over series_types in
 * series.db (its own connection) or in PostgreSQL. Thread-safe. */
struct stypes;
int stypes_open_sqlite(struct stypes **out, const char *path, char *err, size_t errlen);
int stypes_open_pg(struct stypes **out, struct pgseries *pg, char *err, size_t errlen);
void stypes_close(struct stypes *t);
uint8_t stypes_cached(struct stypes *t, const char *key);
int stypes_claim(struct stypes *t, const char *const *keys, const uint8_t *types, size_t n,
                 uint8_t *got);
/* PostgreSQL's side (pgseries.c): every recorded type; and a claim (insert
 * where missing, then read what each key has). */
int pgs_types_load(struct pgseries *p, int (*fn)(const char *key, uint8_t type, void *arg),
                   void *arg);
int pgs_types_claim(struct pgseries *p, const char *const *keys, const uint8_t *types, size_t n,
                    int (*fn)(const char *key, uint8_t type, void *arg), void *arg);

#endif
