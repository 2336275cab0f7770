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

/* Appends the exposition text of every family. */
int metrics_render(struct metrics *m, struct buf *out);

#endif
