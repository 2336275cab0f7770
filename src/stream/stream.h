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
};

struct window_result {
  const char *key;
  int64_t start_ns, end_ns; /* [start, end) */
  uint64_t count;
  double sum, min, max, mean, last;
  int64_t last_ns;          /* event time of `last` */
};

typedef void (*stream_emit_fn)(const struct window_result *r, void *arg);

/* window and slide must be positive, slide <= window, and window a
 * multiple of gcd(window, slide) panes no more than 4096. */
int stream_create(struct stream **out, const struct stream_cfg *cfg, stream_emit_fn emit,
                  void *arg);
void stream_destroy(struct stream *s);
/* Adds a point. Returns 0, or 1 when it was late (counted, not added), or
 * GROVE_ENOMEM. May emit windows the new watermark closes. */
int stream_add(struct stream *s, const char *key, int64_t ts_ns, double value);
/* Moves the watermark on without a point (e.g. from the wall clock when
 * sensors go quiet) and emits what it closes. It never moves back. */
void stream_advance(struct stream *s, int64_t watermark_ns);
/* Emits every window holding data, as if time had ended. */
void stream_flush(struct stream *s);
int64_t stream_watermark(const struct stream *s);
uint64_t stream_late(const struct stream *s);
size_t stream_keys(const struct stream *s);
/* Bytes a key costs (its state and its panes), for capacity planning. */
size_t stream_key_bytes(const struct stream *s);
/* Which of n partitions a key belongs to. */
unsigned stream_partition(const char *key, unsigned n);

#endif
