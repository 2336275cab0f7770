/* state.h — matrix's current state, written behind (internal to
 * src/apps/matrix/): the latest sample of each host or VM, of each of its
 * processes and GPUs, kept in memory as pushes arrive and written to the
 * store's tables (metrics.h: matrix_hosts, matrix_processes, matrix_gpus)
 * in one transaction per flush.
 *
 * Why behind: a push's answer waits for its series (durable, the record)
 * but not for the state, which is a cache of the newest figures; many
 * hosts' pushes then cost one transaction a flush instead of one each,
 * and a host pushing twice between flushes is written once. A flush runs
 * every --matrix-state-flush, before every read of the tables
 * (mx_state_flush: a reader sees every push answered before it), when
 * the rows waiting pass MX_STATE_MAX_BYTES (on the pushing thread), and
 * at stop. Memory stays bounded: while the store refuses flushes and the
 * bound is reached, a put is refused (the push answers 503 and its
 * agent retries).
 *
 * Merging is what the tables' upserts do one after another: a row keeps
 * the newest sample by timestamp (a later push of an older timestamp
 * changes nothing), hosts and GPUs keep a field the newest left out from
 * the one before (COALESCE), processes are replaced whole.
 *
 * Failure: a flush the store refuses keeps its rows for the next (newer
 * ones that arrived meanwhile win). A crash (kill -9) loses at most what
 * waited, --matrix-state-flush's worth; the host's next push writes it
 * again, and the series have every point already.
 *
 * Thread-safety: every call from any thread at once; flushes run one at a
 * time. */
#ifndef GROVE_MATRIX_STATE_H
#define GROVE_MATRIX_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "apps/matrix/push.h"
#include "store/store.h"

struct map;
struct mx_state;

/* Bytes of rows waiting (estimated from above) past which a put flushes
 * first, and refuses when that fails: the default bound. */
#define MX_STATE_MAX_BYTES (64u << 20)

/* Opens the state over st (which must outlive it); flush_ms > 0 starts the
 * periodic flush; max_bytes: the bound (0: MX_STATE_MAX_BYTES). Returns 0
 * or GROVE_ENOMEM. */
int mx_state_open(struct mx_state **out, struct store *st, uint64_t flush_ms, size_t max_bytes);
/* Stops the periodic flush, flushes what waits (errors logged), frees s.
 * NULL is fine. */
void mx_state_close(struct mx_state *s);

/* Takes sample smp's state (its processes where keep[i], NULL: all),
 * received at `seen` (Unix ms): copied, smp may go. Past the bound it
 * flushes first (a failure is logged: the rows wait). Returns 0,
 * GROVE_ENOMEM, or GROVE_EBUSY (the bound is reached and the store
 * refused the flush; err says so): nothing taken on an error. */
int mx_state_put(struct mx_state *s, const struct mx_sample *smp, const bool *keep, int64_t seen,
                 char *err, size_t errlen);

/* Writes every waiting row now (returns when they are in the store, or
 * kept for the next flush on an error). Returns 0 or the store's error
 * with err filled. */
int mx_state_flush(struct mx_state *s, char *err, size_t errlen);

/* Adds to `into` ("pid\tname" -> (void *)1) the processes of host (kind
 * host or vm) waiting with seen >= since: what the store's rows do not
 * show yet. Returns 0 or GROVE_ENOMEM. */
int mx_state_live(struct mx_state *s, bool vm, const char *host, int64_t since, struct map *into);

#endif
