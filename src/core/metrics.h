/* metrics.h — a registry of counters, gauges and histograms, rendered in
 * the Prometheus text exposition format.
 *
 * Any module adds its own families at start; children (one per set of
 * label values) are created on first use and live as long as the
 * registry. Updating a child is lock-free (atomics); looking one up by
 * label values takes the family's lock, so hot paths keep the child
 * pointer. Thread-safe. */
#ifndef GROVE_METRICS_H
#define GROVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;
struct metric_family;
struct metric;

int metrics_create(struct metrics **out);
void metrics_destroy(struct metrics *m);

/* Registers a family (or returns the one already registered under that
 * name). `labels` is a comma-separated list of label names ("" for none).
 * `buckets` (histograms only; NULL for the default latency buckets, in
 * seconds) ends with a value <= the previous one or after nbuckets.
 * Returns NULL on allocation failure or a type clash. */
struct metric_family *metrics_family(struct metrics *m, const char *name,
                                     const char *help, enum metric_type type,
                                     const char *labels);
struct metric_family *metrics_histogram(struct metrics *m, const char *name,
                                        const char *help, const char *labels,
                                        const double *buckets, size_t nbuckets);
/* The child for these label values (as many as the family has labels).
 * Returns NULL on allocation failure. */
struct metric *metric_get(struct metric_family *f, ...);
struct metric *metric_getv(struct metric_family *f, const char *const *values);

void metric_add(struct metric *c, double v);   /* counter or gauge */
void metric_set(struct metric *c, double v);   /* gauge */
void metric_observe(struct metric *c, double v); /* histogram */
double metric_value(const struct metric *c);   /* counter/gauge; tests */
uint64_t metric_count(const struct metric *c); /* histogram observations */

/* A function run at the start of every metrics_render, before any family
 * is written, to set gauges read from elsewhere (procfs). Register before
 * the first render (at start); at most 8. Returns 0 or GROVE_ETOOBIG. */
typedef void (*metrics_collect_fn)(void *arg);
int metrics_on_render(struct metrics *m, metrics_collect_fn fn, void *arg);

/* Adds the process metrics that Prometheus client libraries export, with
 * their names, types and units (client_golang's process collector):
 * process_cpu_seconds_total (user + system CPU, seconds),
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds (RLIMIT_NOFILE's soft limit) and
 * process_start_time_seconds (since the Unix epoch). Read from
 * /proc/self/stat, /proc/self/fd and /proc/stat (Linux) at each render;
 * a file that cannot be read leaves the last value. Once per registry;
 * returns 0 or GROVE_ENOMEM. */
int metrics_add_process(struct metrics *m);

/* Adds `<prefix>_build_info{version,revision} 1` (the convention of
 * Prometheus' own *_build_info). Returns 0 or GROVE_ENOMEM. */
int metrics_add_build_info(struct metrics *m, const char *prefix, const char *version,
                           const char *revision);

/* Appends the exposition text of every family. */
int metrics_render(struct metrics *m, struct buf *out);

#endif
