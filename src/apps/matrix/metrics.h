/* metrics.h — matrix's monitoring data (internal to src/apps/matrix/):
 * samples in (POST /api/monitoring/push-metrics, and Telegraf's lines
 * through telemetry's write path), the series they become (push.h), the
 * current state (latest sample per host or VM, per process, per GPU) in
 * the store, the idempotency keys of pushes, and the live topics
 * matrix/hosts/{id} and matrix/vms/{id}.
 *
 * Tables (matrix's migrations, docs/matrix.md):
 *   matrix_hosts      (kind, name): the latest sample of a host or VM
 *   matrix_processes  (kind, host, pid, process): the latest of each process
 *   matrix_gpus       (kind, host, gpu): the latest of each GPU
 *   matrix_push_keys  (key): the answers of pushes that carried an
 *                     Idempotency-Key, kept --matrix-idempotency-keep
 * The three state tables are written behind (state.h): at most
 * --matrix-state-flush after a push, and before every read through
 * matrix_state_sync.
 * kind is "host" or "vm"; host is the host's or VM's name. A process (or
 * GPU) whose last sample is older than --matrix-process-expiry is gone:
 * reads leave it out and a sweep deletes it.
 *
 * Thread-safety: every call may run on any worker thread at once; the
 * store serialises what must be. */
#ifndef GROVE_MATRIX_METRICS_H
#define GROVE_MATRIX_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "apps/matrix/push.h"
#include "store/store.h"

struct matrix;
struct periodic;

struct matrix_metrics_cfg {
  int max_processes;         /* --matrix-max-processes-per-host; <= 0: no cap */
  uint64_t expiry_ms;        /* --matrix-process-expiry */
  uint64_t idem_keep_ms;     /* --matrix-idempotency-keep */
  int idem_max;              /* --matrix-idempotency-max */
  uint64_t max_ahead_ms;     /* --matrix-max-ahead */
  uint64_t publish_ms;       /* --matrix-publish-interval */
  uint64_t state_flush_ms;   /* --matrix-state-flush */
};

/* The tables above: one step of matrix's migrations (matrix.c's table). */
extern const char matrix_metrics_sql[];
#define MATRIX_METRICS_MIGRATIONS {2, "monitoring state", matrix_metrics_sql, NULL}

/* What writing a batch did. */
#define MX_REFUSED_LISTED 20
struct mx_applied {
  size_t points;             /* stored */
  size_t refused_lines;      /* series lines telemetry refused */
  char refused_why[160];     /* the first one's reason */
  size_t accepted_procs, refused_procs; /* by the cap */
  const char *cap_host;      /* the first host over its cap (points into the batch) */
  size_t cap_live;           /* its live processes */
  int64_t refused_pid[MX_REFUSED_LISTED];
  const char *refused_name[MX_REFUSED_LISTED];
  size_t nrefused_listed;
};

/* Writes batch b: its processes checked against each host's cap (when
 * `cap`), its series through telemetry_write, then the current state, then
 * the live topics. Blocks (store, group commit): a worker thread. Returns
 * 0 with *out filled, or an error with err filled (nothing of the current
 * state changed; series already written stay). */
int matrix_metrics_write(struct matrix *m, struct mx_batch *b, bool cap, struct mx_applied *out,
                         char *err, size_t errlen);

/* Starts the sweep of expired processes and old idempotency keys and the
 * Telegraf consumer (telegraf.c). Returns 0 or a GROVE_E* code. */
int matrix_metrics_start(struct matrix *m);
void matrix_metrics_stop(struct matrix *m);

/* Writes the current state still waiting (state.h) into the store: call
 * before reading matrix_hosts, matrix_processes or matrix_gpus, so that
 * every push answered before is seen. Blocks (store): a worker thread.
 * Returns 0 or the store's error with err filled. */
int matrix_state_sync(struct matrix *m, char *err, size_t errlen);

/* The wall clock matrix's state uses (Unix ms). */
uint64_t matrix_now_ms(void);

/* The Telegraf consumer (telegraf.c): registered by matrix_metrics_start. */
int matrix_telegraf_start(struct matrix *m);
void matrix_telegraf_stop(struct matrix *m);

/* Routes (metrics.c: push; monitor.c: reads). */
void matrix_handle_push(struct http_req *r);
void matrix_handle_vm_snapshot(struct http_req *r);
void matrix_handle_host_list(struct http_req *r);
void matrix_handle_host_latest(struct http_req *r);
void matrix_handle_host_top(struct http_req *r);
void matrix_handle_host_range(struct http_req *r);
void matrix_handle_vm_list(struct http_req *r);
void matrix_handle_vm_latest(struct http_req *r);
void matrix_handle_vm_top(struct http_req *r);
void matrix_handle_vm_range(struct http_req *r);
void matrix_handle_dashboard(struct http_req *r);

#endif
