/* expo.h — one sample in the Prometheus text exposition format (version
 * 0.0.4, https://prometheus.io/docs/instrumenting/exposition_formats/), for
 * `grove-agent --listen`: the same readings the push payload carries
 * (report.h), named after node_exporter's conventions — base units
 * (seconds, bytes, joules, watts, ratios 0–1), `_total` on counters, the
 * kernel's cumulative counters exported as counters rather than rates so
 * that rate() works across scrapes:
 *
 *   grove_agent_info{hostname,source_type,hypervisor,instance_type,cpu_model} 1
 *   grove_agent_cpu_seconds_total{mode}            (from /proc/stat ticks / USER_HZ)
 *   grove_agent_cpu_usage_ratio, grove_agent_cpu_core_usage_ratio{core}
 *   grove_agent_memory_{total,available}_bytes, grove_agent_swap_{total,free}_bytes
 *   grove_agent_load{1,5,15}
 *   grove_agent_disk_{reads,writes}_completed_total{device},
 *   grove_agent_disk_{read,written}_bytes_total{device}      (sectors × 512)
 *   grove_agent_network_{receive,transmit}_{bytes,packets}_total{device}
 *   grove_agent_rapl_energy_joules_total{zone}     (wraps at max_energy_range_uj:
 *                                                   a counter reset to Prometheus)
 *   grove_agent_power_watts{component=cpu|gpu,part=idle|active},
 *   grove_agent_power_estimated{component=cpu}, grove_agent_power_unattributed_watts
 *   grove_agent_gpu_{utilization_ratio,memory_used_bytes,memory_total_bytes,
 *                    power_watts}{gpu,name}, grove_agent_gpu_energy_joules_total{gpu,name}
 *   grove_agent_process_{cpu_seconds_total,resident_memory_bytes,threads,
 *                        io_read_bytes_total,io_write_bytes_total,power_watts,
 *                        gpu_utilization_ratio,gpu_memory_bytes}{pid,name,user}
 *   grove_agent_processes                          (all processes seen)
 *   grove_agent_sample_timestamp_seconds
 *
 * Processes are the ones the push payload lists (every one, or the top N
 * of --top), so --top bounds the series a scrape holds. Label values are
 * escaped as the format asks (\\, \", \n); bytes that are not valid UTF-8
 * and other control characters become U+FFFD, so any comm or hostname
 * yields a parseable page. Pure functions; thread-safe. */
#ifndef GROVE_AGENT_EXPO_H
#define GROVE_AGENT_EXPO_H

#include <stddef.h>
#include <stdint.h>

#include "agent/report.h"
#include "core/buf.h"

/* Appends the exposition of one sample to b. Returns 0 or
 * GROVE_ENOMEM/GROVE_ETOOBIG (b's maximum; b then holds a prefix). */
int expo_sample(struct buf *b, const struct report_in *in);

/* The agent's own state, appended after a sample: ship.h's stats
 * (counters since start; the spool's size now) and the sampler's. */
struct expo_agent {
  uint64_t sent, dropped, rejected, failures;  /* batches, counters */
  uint64_t spooled_batches, spooled_bytes;     /* gauges */
  uint64_t samples, sample_errors;             /* counters */
  int shipping;                                /* a --server is set: 1, else 0 */
};
int expo_agent(struct buf *b, const struct expo_agent *a);

/* Appends s[0..n) as a label value's content (no quotes). */
int expo_label_value(struct buf *b, const char *s, size_t n);

#endif
