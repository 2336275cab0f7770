/* series.h — time-series storage: durable writes, compressed chunks,
 * range reads. Thread-safe; one per data directory.
 *
 * A series is a key ("air,station=s1 pm25") with a dense id. Writes go to
 * a write-ahead log: every batch queued while the log was being synced is
 * written and fsync'ed together (group commit), and only then is each
 * batch's callback told — so a point acknowledged survives kill -9 and
 * power loss. Points then live in memory (the head) until series_flush
 * moves them into compressed chunks in SQLite (series.db) and empties the
 * log. Opening replays the log; a torn record at its end (a crash mid
 * write, never acknowledged) is dropped.
 *
 * Same series and timestamp: the last write wins, in the head, across
 * chunks and between the two. Points may arrive in any order. */
#ifndef GROVE_SERIES_H
#define GROVE_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct series;

/* A point to write: its series' id (series_id), time (ns) and value. */
struct series_point {
  uint32_t id;
  int64_t ts_ns;
  double value;
};

/* A point of one series as reads return it: time (ns) and value. */
struct series_sample {
  int64_t ts_ns;
  double value;
};

/* Opens (creating) the store in dir: series.wal and series.db. One
 * process at a time: the store holds an exclusive lock (flock) on
 * dir/LOCK until series_close, and the kernel drops it if the process
 * dies. Another open of dir, from any process (this one too), fails with
 * GROVE_EBUSY and err saying "series directory '<dir>' is in use by
 * another process (pid <holder>)" (the pid when the holder wrote it). On
 * error err (errlen bytes) says why. */
int series_open(struct series **out, const char *dir, char *err, size_t errlen);
/* Opens the store on PostgreSQL (postgres://…): points, keys and rollups
 * live there, shared by every instance; an acknowledged point is committed
 * in PostgreSQL (one COPY a group commit); nothing waits in memory. */
int series_open_pg(struct series **out, const char *url, char *err, size_t errlen);
/* Finishes queued writes and closes. NULL is fine. */
void series_close(struct series *s);
/* The id of a series key, made when new (kept durable with the next
 * append). Keys are at most 1024 bytes. */
int series_id(struct series *s, const char *key, uint32_t *id);

/* The id of a key this process knows already (no database asked);
 * GROVE_ENOENT otherwise. */
int series_cached(struct series *s, const char *key, uint32_t *id);

/* series_cached with the key's field type as this process noted it
 * (series_note_type; SERIES_TYPE_NONE: not noted): one look-up where a
 * writer needs both. */
int series_cached_typed(struct series *s, const char *key, uint32_t *id, uint8_t *type);
/* Notes the recorded field type of series id (series_types_claim's or
 * series_type_cached's answer: a recorded type never changes), for
 * series_cached_typed. An id not in the registry is ignored. */
void series_note_type(struct series *s, uint32_t id, uint8_t type);

/* The ids of many keys at once (made when new): with PostgreSQL, the keys
 * not known here cost two round trips in all, not two each. */
int series_ids(struct series *s, const char *const *keys, size_t n, uint32_t *ids);

/* ---- field types ---------------------------------------------------------------
 * A series remembers the type of the field that first wrote it, as
 * InfluxDB does ("field type conflict"): a float series refuses integers
 * and strings, and so on. Types are kept by key, durably (series.db's
 * series_types, PostgreSQL's series_types, shared by every instance), and
 * also for series of strings, which hold no points. */
enum series_type {
  SERIES_TYPE_NONE = 0, /* none recorded */
  SERIES_TYPE_FLOAT,
  SERIES_TYPE_INT,
  SERIES_TYPE_UINT,
  SERIES_TYPE_BOOL,
  SERIES_TYPE_STRING,
};
/* "float", "integer", "unsigned", "boolean", "string" (InfluxDB's words). */
const char *series_type_name(enum series_type t);
/* The type recorded for key as this process knows it (no database
 * asked); SERIES_TYPE_NONE when none is known here. */
enum series_type series_type_cached(struct series *s, const char *key);
/* Records types[i] for each keys[i] that has none, durably, and tells the
 * type each key has now (got[i]: types[i], or what another writer recorded
 * first, maybe in another instance). One transaction (two round trips
 * with PostgreSQL). Returns 0 or an error (then got is not filled). */
int series_types_claim(struct series *s, const char *const *keys, const uint8_t *types,
                       size_t n, uint8_t *got);

/* The id of an existing key; GROVE_ENOENT when there is none. */
int series_find(struct series *s, const char *key, uint32_t *id);

/* Called once the batch is durable (rc 0) or could not be (an error);
 * on the writer's thread. */
typedef void (*series_done_fn)(int rc, void *arg);
/* Queues a batch (copied). Returns 0, or an error and done is not called. */
int series_append(struct series *s, const struct series_point *pts, size_t n,
                  series_done_fn done, void *arg);
/* Appends and waits until durable. */
int series_append_sync(struct series *s, const struct series_point *pts, size_t n);

/* At most `limit` (>= 1) points of series id in [from, to), by time, the
 * last write of each timestamp. Costs O(points returned): the chunks are
 * read in time order and decoded only as far as the answer goes. OUT:
 * *out (free it), *n; *more (may be NULL) whether points remain in the
 * range, and then *next (may be NULL) the timestamp of the first of them,
 * to pass as `from` to go on. GROVE_EINVAL for a limit of 0. */
int series_read(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
                struct series_sample **out, size_t *n, bool *more, int64_t *next);
/* Every point of series id in [from, to): series_read without a limit. */
int series_range(struct series *s, uint32_t id, int64_t from, int64_t to,
                 struct series_sample **out, size_t *n);
/* Points decoded, copied and compared by this store's reads so far (for
 * tests: a read's work is proportional to the points it returns). */
uint64_t series_read_work(struct series *s);
/* Aggregates of consecutive buckets of `step` ns: from and to are rounded
 * out to multiples of step, and bucket i covers [from + i*step,
 * from + (i+1)*step). Only buckets holding points are returned. A step
 * that is a whole number of minutes (hours) is answered from the 1-minute
 * (1-hour) rollups, which outlive the raw points when retention says so;
 * points not yet in chunks are counted from the points. */
struct series_bucket {
  int64_t start_ns;
  uint64_t count;
  double sum, min, max, first, last;
};
enum series_agg { SERIES_MEAN, SERIES_MIN, SERIES_MAX, SERIES_SUM, SERIES_COUNT, SERIES_FIRST,
                  SERIES_LAST };
/* "mean" ("avg"), "min", "max", "sum", "count", "first", "last"; -1 otherwise. */
int series_agg_parse(const char *name);
double series_bucket_value(const struct series_bucket *b, enum series_agg agg);
/* Buckets of series id in [from, to). At most max_buckets buckets may be
 * asked for: GROVE_ETOOBIG otherwise. OUT: *out (free it), *n, *source
 * (may be NULL): "raw", "1m" or "1h". */
int series_aggregate(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                     size_t max_buckets, struct series_bucket **out, size_t *n,
                     const char **source);

/* How long raw points, 1-minute and 1-hour rollups are kept (0: forever),
 * counted back from now; applied each time points move into chunks. */
void series_retention(struct series *s, uint64_t raw_ms, uint64_t minute_ms, uint64_t hour_ms);
/* Retention is another process's work (a `--role worker` instance on the
 * same PostgreSQL): flushes here drop nothing; the cut-off still refuses
 * writes (series_keep_after). Thread-safe. */
void series_retention_elsewhere(struct series *s);

/* The oldest time (ns) a raw point may have and still be kept: now minus
 * the raw retention, INT64_MIN when raw points are kept for ever. Writers
 * refuse older points rather than acknowledge what the next flush drops
 * (InfluxDB: "points beyond retention policy"). Thread-safe. */
int64_t series_oldest_kept(struct series *s);

/* Copies the key of series id into out. GROVE_ENOENT when there is none. */
int series_key_of(struct series *s, uint32_t id, char *out, size_t n);

/* Calls fn for every series key (under the store's lock: fn must not call
 * back into the store). On PostgreSQL the keys other instances made are
 * read first (one indexed query from where this process last looked), so
 * every key committed before the call is walked; blocks for that round
 * trip (a failure is logged and the walk shows the keys known here). */
void series_each_key(struct series *s, void (*fn)(uint32_t id, const char *key, void *arg),
                     void *arg);

/* Disk trouble, for readiness probes: 0 when the last write on every
 * durable path went well (the log's group commit, the flush into chunks
 * and rollups, or with PostgreSQL its COPY); otherwise GROVE_EIO, and why
 * (n bytes) names each failing path and the system's or database's word
 * for it ("series log: cannot write '…/series.wal': No space left on
 * device"). Clears by itself once that path's next write succeeds.
 *
 * A failed log write or sync is cut back to the end of the last good
 * record (ftruncate, then fsync) before anything else is appended; while
 * that cut itself fails, every append is refused (GROVE_EIO) and retried
 * first. So a failure never leaves bytes that a restart would take for a
 * torn tail and cut, with acknowledged points after them. Thread-safe. */
int series_health(struct series *s, char *why, size_t n);

/* Moves the head into chunks and empties the log. */
int series_flush(struct series *s);
/* Moves the head into chunks every interval_ms, and sooner once it holds
 * max_points and its series 32 points each on average (a flush costs a
 * chunk and rollup rows per series), or 4 × max_points whatever they
 * hold: on a thread of its own. Call once after open. */
int series_autoflush(struct series *s, uint64_t interval_ms, size_t max_points);
/* Points held in memory (not yet in chunks). */
size_t series_head_points(struct series *s);

#endif
