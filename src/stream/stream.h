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
 * thread its own stream and route a key with stream_partition. */
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

#endif
