/* ship.h — grove-agent's shipping: a disk spool of gzip'ed batches and
 * their delivery to POST {server}/api/monitoring/push-metrics (seed 003
 * §6.1.2) through libcurl.
 *
 * Every batch (one payload, report.h) is first written to the spool
 * folder as "<seq>.json.gz" (20-digit sequence number; written to a
 * temporary name, fsync'ed, renamed, folder fsync'ed), then the spool is
 * sent oldest first. A batch file is deleted only after a 2xx answer, so
 * a batch never goes missing across a crash or kill -9. Each request
 * carries "Idempotency-Key: <agent id>-<seq>": after a crash between the
 * server's 2xx and the delete, the batch is sent again with the same key
 * and the server drops the repeat (the route's contract, docs/agent.md).
 * 429, 5xx and transport failures (refused, timed out, TLS) stop the
 * round; the batches stay and go next round, in order. Any other 4xx
 * means the server will never take that batch: it is dropped with an
 * error log and counted (ship_stats.rejected), never retried forever.
 * The spool is bounded in bytes: before a new batch would pass the bound,
 * the oldest batches are deleted and counted (ship_stats.dropped, logged).
 * The next sequence number is kept in "<spool>/seq" so numbers never
 * repeat across restarts; the agent id in "<spool>/agent-id" unless given.
 *
 * Headers: Content-Type: application/json, Content-Encoding: gzip
 * (RFC 9110 §8.4), X-API-Key: <key> (never logged), Idempotency-Key.
 * TLS is libcurl's (system CA store or --ca-file).
 *
 * Not thread-safe; one per agent. */
#ifndef GROVE_AGENT_SHIP_H
#define GROVE_AGENT_SHIP_H

#include <stddef.h>
#include <stdint.h>

struct ship_cfg {
  const char *server;    /* "https://host[:port][/prefix]"; NULL/"": spool only */
  const char *key;       /* API key, may be NULL */
  const char *spool_dir;
  uint64_t spool_max;    /* bytes */
  uint64_t timeout_ms;   /* per request */
  const char *ca_file;   /* NULL: system store */
  const char *agent_id;  /* NULL or "": the spool's (made once) */
};

struct ship_stats {
  uint64_t sent, dropped, rejected, failures;
  uint64_t spooled_bytes, spooled_batches;
};

struct ship;

/* Opens (makes) the spool folder and reads its state. OUT: *out. Returns
 * 0, GROVE_EIO (folder unusable; err says why) or GROVE_ENOMEM. */
int ship_open(struct ship **out, const struct ship_cfg *cfg, char *err, size_t errlen);
void ship_close(struct ship *s); /* NULL is fine */
/* The agent id (from the config or the spool). */
const char *ship_agent_id(const struct ship *s);
/* The sequence number the next batch will get. */
uint64_t ship_next_seq(const struct ship *s);
/* Gzips json and writes it to the spool durably as the next batch,
 * dropping the oldest to stay under spool_max. Returns 0, GROVE_EIO or
 * GROVE_ENOMEM (the batch is then lost: logged by the caller). */
int ship_enqueue(struct ship *s, const char *json, size_t len);
/* Sends spooled batches in order until the spool is empty, the server
 * fails, or max batches went. Returns how many were sent (2xx). */
size_t ship_flush(struct ship *s, size_t max);
void ship_get_stats(const struct ship *s, struct ship_stats *st);

#endif
