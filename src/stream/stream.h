/* stream.h — keyed windows over event time, updated incrementally.
 *
 * Points (key, event time, value) go into tumbling (slide == window) or
 * sliding windows. Time is cut into panes of gcd(window, slide); each key
 * keeps a fixed ring of pane aggregates (count, sum, min, max, last), so a
 * point costs O(1) and a key's memory is constant however long it runs.
 *
 * The watermark is the largest event time seen minus the allowed lateness;
 * a window is emitted, once, when the watermark passes its end. A point
 * older than the watermark when it arrives is late: it is counted
 * (stream_late) and left out of the windows, whose results are final.
 * Keys that have seen nothing for a window's span are dropped.
 *
 * Event time against the wall clock. Event time comes from the writers'
 * clocks, and one watermark serves every key of a stream, so one writer
 * whose clock runs ahead would make every other key's points late. With
 * stream_add_at and a bound (cfg.ahead_ns > 0) the stream is told the
 * wall clock ("now", Unix ns) with each point and:
 *   - a point later than now + ahead_ns is refused (STREAM_AHEAD, counted
 *     by stream_ahead): it moves nothing and is in no window;
 *   - a point in time moves the watermark only up to now - lateness: the
 *     watermark is min(newest event time, now) - lateness.
 * So a writer's clock can delay only its own windows (they close when the
 * wall clock reaches them); a point of an honest writer (event time within
 * `lateness` of the wall clock) is never late, whatever other writers'
 * clocks say. Without a bound (ahead_ns 0, or stream_add) event time alone
 * moves the watermark, as in a replay of recorded data.
 *
 * Times. Points may carry any int64 time; one whose windows would start or
 * end outside int64 is refused with GROVE_ERANGE (every sum and product of
 * times here is checked). Windows start at multiples of the slide (Unix
 * epoch aligned), as Flink's and Kafka Streams' hopping windows do.
 *
 * One stream is used by one thread; to spread keys over threads, give each
 * thread its own stream and route a key with stream_partition, or use the
 * partitioned engine below, which does that with a lock a partition and a
 * ticker. */
#ifndef GROVE_STREAM_H
#define GROVE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stream;

struct stream_cfg {
  int64_t window_ns;
  int64_t slide_ns;     /* == window_ns for tumbling windows */
  int64_t lateness_ns;  /* how far behind the newest point may arrive */
  bool sum_only;        /* keep count and sum only (mean): 16 bytes a pane, not 48;
                         * results then have min, max and last NaN */
  int64_t ahead_ns;     /* stream_add_at: how far past the wall clock a point may
                         * be and still count; 0: no bound (event time alone) */
};

struct window_result {
  const char *key;
  int64_t start_ns, end_ns; /* [start, end) */
  uint64_t count;
  double sum, min, max, mean, last;
  int64_t last_ns;          /* event time of `last` */
};

typedef void (*stream_emit_fn)(const struct window_result *r, void *arg);

/* What stream_add and stream_add_at return besides errors. */
enum { STREAM_ADDED = 0, STREAM_LATE = 1, STREAM_AHEAD = 2 };

/* window and slide must be positive, slide <= window, lateness and ahead
 * not negative, window a multiple of gcd(window, slide) panes no more than
 * 4096, and the ring of panes a key keeps, (window + slide + lateness +
 * ahead) / pane + 2 of them, no more than 8192. GROVE_EINVAL otherwise. */
int stream_create(struct stream **out, const struct stream_cfg *cfg, stream_emit_fn emit,
                  void *arg);
void stream_destroy(struct stream *s);
/* Adds a point, event time alone moving the watermark. Returns
 * STREAM_ADDED, STREAM_LATE (counted, not added), GROVE_ERANGE (its
 * windows are not representable: not added) or GROVE_ENOMEM. May emit
 * windows the new watermark closes (before the point is added). */
int stream_add(struct stream *s, const char *key, int64_t ts_ns, double value);
/* The same with the wall clock `now_ns` (Unix ns) bounding what the point
 * may do (see the top of this file); also STREAM_AHEAD when cfg.ahead_ns
 * is set and ts_ns > now_ns + ahead_ns. */
int stream_add_at(struct stream *s, const char *key, int64_t ts_ns, double value, int64_t now_ns);
/* Moves the watermark on without a point (e.g. from the wall clock when
 * sensors go quiet) and emits what it closes. It never moves back. */
void stream_advance(struct stream *s, int64_t watermark_ns);
/* Emits every window holding data, as if time had ended. */
void stream_flush(struct stream *s);
int64_t stream_watermark(const struct stream *s);
uint64_t stream_late(const struct stream *s);
/* Points refused as ahead of the wall clock (STREAM_AHEAD). */
uint64_t stream_ahead(const struct stream *s);
size_t stream_keys(const struct stream *s);
/* Bytes a key costs (its state and its panes), for capacity planning. */
size_t stream_key_bytes(const struct stream *s);
/* Which of n partitions a key belongs to. */
unsigned stream_partition(const char *key, unsigned n);

/* ---- the partitioned engine ------------------------------------------------
 * Streams spread over partitions, each with its own lock, so threads
 * update different keys at once, and a ticker that closes windows when
 * points stop coming. An app routes a key to a partition
 * (stream_engine_partition), locks it, adds points and keeps its own state
 * for that partition under the same lock; the engine calls back when a
 * window closes and on every tick.
 *
 * Watermarks. Each partition's watermark serves every key hashed to it,
 * so with cfg.window.ahead_ns > 0 points are added against the wall clock
 * (stream_add_at): a point past now + ahead_ns is refused (STREAM_AHEAD)
 * and moves nothing, and no point moves the watermark past now - lateness.
 * When a partition has taken no point for cfg.idle_ms (monotonic clock),
 * the ticker moves its watermark on as if event time had kept pace with
 * the clock since its newest point, and (bounded) never past the wall
 * clock: the windows of quiet keys close.
 *
 * Order. stream_engine_handoff lets an app hand what it staged under a
 * partition's lock to the outside (a hub, callbacks) after dropping it, in
 * the order partitions were staged: the next thread to stage the same
 * partition hands its own on after this one.
 *
 * Clocks. Both clocks may be injected (tests move them by hand); the
 * ticker may be left out (tick_ms 0) and stream_engine_tick called
 * instead. Thread-safety: everything but create/destroy from any thread;
 * stream_engine_tick not from two threads at once (the ticker is one). */
#define STREAM_MAX_PARTITIONS 64

struct stream_engine;

struct stream_engine_cfg {
  struct stream_cfg window;  /* every partition's stream */
  unsigned partitions;       /* 1 to STREAM_MAX_PARTITIONS */
  uint64_t tick_ms;          /* the ticker's period; 0: no ticker thread */
  uint64_t idle_ms;          /* silence after which a partition's watermark
                              * follows the clock (positive) */
  uint64_t (*mono_ms)(void *arg); /* monotonic ms; NULL: the system's */
  uint64_t (*wall_ms)(void *arg); /* Unix ms; NULL: the system's (in ns) */
  void *clock_arg;
  /* A window closed, with its partition locked. */
  void (*emit)(const struct window_result *r, unsigned part, void *arg);
  /* Each tick, for each partition, after its watermark step, with the
   * partition locked; it must release it (stream_engine_unlock or
   * stream_engine_handoff). NULL: the engine unlocks. */
  void (*tick)(struct stream_engine *e, unsigned part, uint64_t now_ms, void *arg);
  void *arg;
};

/* GROVE_EINVAL for a bad cfg (see stream_create for the windows'),
 * GROVE_ENOMEM. The ticker, if any, runs from here on. */
int stream_engine_create(struct stream_engine **out, const struct stream_engine_cfg *cfg);
/* Stops the ticker (waiting for a tick in progress), frees everything. NULL is fine. */
void stream_engine_destroy(struct stream_engine *e);
unsigned stream_engine_partition(const struct stream_engine *e, const char *key);
unsigned stream_engine_partitions(const struct stream_engine *e);
/* The engine's clocks: monotonic ms, and Unix ns (what bounds event time). */
uint64_t stream_engine_mono_ms(const struct stream_engine *e);
int64_t stream_engine_wall_ns(const struct stream_engine *e);
void stream_engine_lock(struct stream_engine *e, unsigned part);
void stream_engine_unlock(struct stream_engine *e, unsigned part);
/* Called with `part` locked: unlocks it, then runs fn(ctx) after any
 * handoff of the same partition staged before, and before any staged
 * after. fn must not lock a partition. */
void stream_engine_handoff(struct stream_engine *e, unsigned part, void (*fn)(void *ctx),
                           void *ctx);
/* Adds a point to a locked partition. now_ms and wall_ns: the clocks as
 * read (stream_engine_mono_ms, _wall_ns) since the lock was taken.
 * Returns STREAM_ADDED, STREAM_LATE or STREAM_AHEAD: a point whose
 * windows are not representable, or that finds no memory, is AHEAD when
 * it is past the wall clock and LATE otherwise (it is in no window). May
 * emit the windows the new watermark closes. */
int stream_engine_add(struct stream_engine *e, unsigned part, const char *key, int64_t ts_ns,
                      double value, uint64_t now_ms, int64_t wall_ns);
/* What the ticker does: every partition's idle watermark step and its
 * cfg.tick. */
void stream_engine_tick(struct stream_engine *e);

struct stream_engine_stats {
  uint64_t late, ahead, windows; /* points late and ahead, windows emitted */
  size_t keys, key_bytes;        /* keys held, and what one costs */
};
void stream_engine_stats(struct stream_engine *e, struct stream_engine_stats *out);

#endif
