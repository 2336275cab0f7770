/* broker.h — the one Redis client: pub/sub between instances, control
 * messages, scripts, values with a TTL, leases with fencing tokens, and
 * streams with consumer groups.
 *
 * One struct broker per process, made from --broker redis://… (the
 * "broker" config section); without that option there is no broker and
 * its clients (hub, gate, apps) keep everything in the process. It holds
 * every connection to Redis:
 *   - a publisher thread (PUBLISH, control messages, their deletions) and
 *     a subscriber thread (SUBSCRIBE), each on its own blocking connection;
 *   - one asynchronous connection per event loop (hiredis's libuv
 *     adapter), for calls a request waits on without blocking its loop
 *     (rate-limit scripts, the cache's Redis tier);
 *   - a small pool of blocking connections for worker threads (leases,
 *     streams, broker_eval_sync).
 * Every connection comes back by itself after any failure (refused,
 * dropped, a connect that never completes, a Redis that stops answering)
 * through one reconnect policy: capped exponential backoff with jitter,
 * BROKER_RETRY_MIN_MS to BROKER_RETRY_MAX_MS. A connection counts as up
 * only once Redis itself has answered on it (a stopped Redis still
 * completes TCP handshakes); idle ones are pinged, so a hung Redis is seen
 * as down within about two seconds. The state is reported in one place: a
 * "broker" check in /ready (core/health.h) and grove_broker_* metrics.
 *
 * Thread-safety: every function may be called from any thread unless it
 * says otherwise; the loop functions (broker_get, broker_set, broker_eval)
 * only on the event loop they name. Callbacks run on that loop; control
 * and channel listeners run on the subscriber thread.
 *
 * Errors: 0 or a negative GROVE_E* code. A call that returns an error
 * never calls its callback. GROVE_EUNAVAIL means Redis is not reachable
 * now (no connection up on this loop, or the pool is backing off). */
#ifndef GROVE_BROKER_H
#define GROVE_BROKER_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

struct broker;
struct metrics;
struct health;

#define BROKER_RETRY_MIN_MS 100  /* first reconnect delay */
#define BROKER_RETRY_MAX_MS 2000 /* the delay doubles up to this; each is jittered */

struct broker_cfg {
  char *url; /* "" (no broker) or redis://[:password@]host[:port] */
};

/* The "broker" config section: --broker / GROVE_BROKER. */
extern const struct cfg_opt broker_cfg_opts[];
extern const size_t broker_cfg_nopts;

/* True when cfg names a broker (a non-empty url). */
bool broker_configured(const struct broker_cfg *cfg);

/* Makes a broker for `nloops` event loops; connects nothing yet. `m` (may
 * be NULL) gets grove_broker_* metrics; `h` (may be NULL) the "broker"
 * readiness check. Returns 0, GROVE_ECONFIG for a url that is not
 * redis://host[:port], GROVE_ENOMEM, or health_add's error; err says
 * which. */
int broker_create(struct broker **out, const struct broker_cfg *cfg, int nloops,
                  struct metrics *m, struct health *h, char *err, size_t errlen);
/* Starts the publisher and subscriber threads. Channels are subscribed
 * with broker_subscribe before this; control listeners may come later. */
int broker_start(struct broker *b);
/* Stops the threads: once it returns no listener runs any more, and what
 * is published or sent after it is dropped. Clients that may still send
 * (a hub's coalescer) can then be freed before the broker. NULL is fine. */
void broker_stop(struct broker *b);
/* Stops (if not yet), closes the pool and frees everything; the loops
 * must have been stopped (broker_loop_stop). NULL is fine. */
void broker_destroy(struct broker *b);
/* Server hooks: attach and detach a loop's asynchronous connection (on
 * that loop's thread). index < nloops. */
void broker_loop_start(struct broker *b, uv_loop_t *loop, int index);
void broker_loop_stop(struct broker *b, int index);

/* True when every connection this instance holds open (publisher,
 * subscriber, every started loop) is up; otherwise false and, when err is
 * given, why (the last error, one line). This is the "broker" check of
 * /ready. Lock-free but for err. */
bool broker_ok(struct broker *b, char *err, size_t errlen);
/* True when every started loop's asynchronous connection is up. */
bool broker_loops_up(struct broker *b);
/* This instance's id (16 hex characters), as it tags what it publishes. */
const char *broker_instance(const struct broker *b);

/* ---- pub/sub between instances ------------------------------------------
 * Messages are bytes on a Redis channel, tagged with the sender's instance
 * id: a subscriber is handed those of the other instances only (its own
 * publishes it delivered locally already). Delivery is at most once: while
 * Redis is away, publishes are dropped (grove_broker_dropped_total) and
 * what others published meanwhile never arrives. */
typedef void (*broker_message_fn)(const char *channel, const char *msg, size_t len, void *arg);
/* Listens to a channel (at most 8 channels, each with one listener) before
 * broker_start. fn runs on the subscriber thread. Returns 0, GROVE_EBUSY
 * (started already, or the channel is taken), GROVE_ETOOBIG, GROVE_EINVAL
 * (a channel name over 63 bytes). */
int broker_subscribe(struct broker *b, const char *channel, broker_message_fn fn, void *arg);
/* Queues msg for the other instances; never blocks. Returns 0, or
 * GROVE_EUNAVAIL (publisher not connected), GROVE_EBUSY (10,000 queued),
 * GROVE_ENOMEM: then the message is dropped and counted. */
int broker_publish(struct broker *b, const char *channel, const void *msg, size_t len);

/* ---- control messages ------------------------------------------------------
 * Messages between instances that no client sees (cache invalidations,
 * "credentials changed", "station registered"): a kind and a text payload.
 * Unlike publishes they are never dropped while Redis is away: they wait
 * (up to 10,000) and go out first when it is back, ahead of any publish. */
typedef void (*broker_control_fn)(const char *kind, const char *payload, size_t len, void *arg);
/* The kind every listener gets, with an empty payload, each time this
 * instance subscribes again: what was sent while it was not subscribed
 * was lost to it, so copies of shared state must be dropped. */
#define BROKER_RESYNC "grove.resync"
/* Adds a listener for `owner` (a module or app name, static), at most 8.
 * Each sees every kind, from other instances only, on the subscriber
 * thread. Returns 0, or GROVE_ETOOBIG past 8 (none is dropped: err, which
 * may be NULL, names the owner refused and the last one taken). */
int broker_control_listen(struct broker *b, const char *owner, broker_control_fn fn, void *arg,
                          char *err, size_t errlen);
/* Sends a control message. `kind` at most 255 bytes. `del_key` (may be
 * NULL) names a value kept with broker_set: it is deleted and its version
 * moved on (see broker_get) before the message goes out, so another
 * instance that reads it after the message arrives cannot find the old
 * value. With timeout_ms > 0 this waits (blocking: worker threads only)
 * until both are done in Redis. Returns 0; GROVE_EUNAVAIL (publisher not
 * connected) or GROVE_ETIMEOUT (not done in time) when waiting, the
 * message then staying queued to go out when Redis answers; GROVE_EBUSY
 * (queue full, dropped), GROVE_EINVAL, GROVE_ENOMEM. */
int broker_control_send(struct broker *b, const char *kind, const char *payload, size_t len,
                        const char *del_key, unsigned timeout_ms);
/* True while control messages from other instances reach this one (the
 * subscription is up). While false, state that they keep fresh must not
 * be trusted. Lock-free. */
bool broker_control_live(struct broker *b);

/* ---- scripts -------------------------------------------------------------
 * A Lua script run with EVALSHA; when Redis answers NOSCRIPT (restarted,
 * SCRIPT FLUSH) it is sent once more with EVAL, which loads it again, so a
 * caller never sees NOSCRIPT. Define scripts as static constants with
 * BROKER_SCRIPT(source); the SHA-1 is computed on first use. */
struct broker_script {
  const char *source;
  char sha[41]; /* hex SHA-1 of source, "" until first use */
};
#define BROKER_SCRIPT(src) {(src), ""}

/* Loads s on every loop's connection as it comes up (now, and again after
 * each reconnect, before the connection counts as up), so that its first
 * EVALSHA there finds it and a caller's decision stays one round trip.
 * For scripts on hot paths; call before serving. A script not loaded so
 * is loaded by its first use (one more round trip). Returns 0 or
 * GROVE_ETOOBIG (16 at most). */
int broker_script_load(struct broker *b, struct broker_script *s);

/* What a command's callback gets: rc 0 and Redis's reply (never an error
 * reply); GROVE_EIO and the error reply (counted in
 * grove_broker_command_errors_total); GROVE_EUNAVAIL and NULL when the
 * connection dropped, or was given up as hung, before the answer (also
 * when the loop stops). `reply` is hiredis's, valid during the call only.
 * Runs exactly once, on the loop the command was sent from. */
typedef void (*broker_reply_fn)(int rc, const redisReply *reply, void *arg);

/* Runs script s on loop's connection with keys[0..nkeys) and
 * args[0..nargs) (NUL-terminated strings, copied). cb may be NULL (fire
 * and forget). Call on loop's thread. A command pending for
 * BROKER_LOOP_DEADLINE_MS with no answer on its connection gives the
 * connection up (an answer already in the socket, unread because the loop
 * itself was held up, is an answer, not a hung Redis): its commands' callbacks get GROVE_EUNAVAIL, so a caller
 * waits at most that long. Returns 0 (cb will run), GROVE_EUNAVAIL (no
 * connection up on this loop), GROVE_EINVAL, GROVE_ENOMEM. */
#define BROKER_LOOP_DEADLINE_MS 300
int broker_eval(struct broker *b, uv_loop_t *loop, struct broker_script *s, int nkeys,
                const char *const *keys, int nargs, const char *const *args, broker_reply_fn cb,
                void *arg);
/* The same on a pooled blocking connection (worker threads only), waiting
 * up to a second. Returns 0 with *out the reply (free it with
 * freeReplyObject), GROVE_EIO with *out the error reply, GROVE_EUNAVAIL or
 * GROVE_ETIMEOUT (*out NULL), GROVE_ENOMEM. */
int broker_eval_sync(struct broker *b, struct broker_script *s, int nkeys,
                     const char *const *keys, int nargs, const char *const *args,
                     redisReply **out);

/* ---- values with a TTL (the cache's Redis tier) ---------------------------
 * A value under key K has a version under "K:v" that every deletion made
 * with broker_control_send's del_key moves on. A reader notes the version
 * with the value it did not find, loads the value elsewhere, then stores
 * it with broker_set and that version: it lands only if no deletion came
 * between, so a value read before a write is never stored after it. */
/* rc 0 (found: val, len), GROVE_ENOENT (absent: val NULL), or the codes of
 * broker_reply_fn; `version` ("" when none) is K's version as read. */
typedef void (*broker_value_fn)(int rc, const char *val, size_t len, const char *version,
                                void *arg);
/* Reads key and its version in one round trip on loop's connection. Same
 * returns and rules as broker_eval. */
int broker_get(struct broker *b, uv_loop_t *loop, const char *key, broker_value_fn cb, void *arg);
/* Stores val under key for ttl_ms if key's version is still `version` (as
 * broker_get gave it). Fire and forget; same returns as broker_eval. */
int broker_set(struct broker *b, uv_loop_t *loop, const char *key, const void *val, size_t len,
               uint64_t ttl_ms, const char *version);

/* ---- leases with fencing tokens -------------------------------------------
 * A lease is a named lock with a time to live: at most one holder at a
 * time, and a holder that stops renewing loses it when the TTL runs out.
 * Each acquisition gets a fencing token from the lease's own counter,
 * larger than every token given before for that name, so a store or a
 * downstream service can refuse a write from a holder whose lease expired
 * and was taken by someone else meanwhile (it shows a smaller token).
 * Renew and release succeed only for the current holder (compare-and-set,
 * compare-and-delete in one script). Blocking: worker threads only. In
 * Redis: "grove:lease:<name>" holds "<token>:<holder id>" with a PX TTL,
 * "grove:lease:<name>:token" the counter (never expires). */
struct broker_lease {
  char name[128];
  char value[64]; /* "<token>:<holder id>" as stored */
  uint64_t token; /* the fencing token */
};
/* Tries to take the lease `name` (at most 127 bytes) for ttl_ms (> 0).
 * Returns 0 with *out filled, GROVE_EBUSY when someone else holds it,
 * GROVE_EUNAVAIL / GROVE_ETIMEOUT when Redis did not answer (then it is
 * unknown whether the lease was taken: it expires after ttl_ms),
 * GROVE_EINVAL. */
int broker_lease_acquire(struct broker *b, const char *name, uint64_t ttl_ms,
                         struct broker_lease *out);
/* Extends l to ttl_ms from now. Returns 0, GROVE_EPERM when l is not
 * held any more (expired, maybe taken by another), or Redis's codes. */
int broker_lease_renew(struct broker *b, const struct broker_lease *l, uint64_t ttl_ms);
/* Gives l up. Returns 0, GROVE_EPERM when l was not held any more, or
 * Redis's codes. */
int broker_lease_release(struct broker *b, const struct broker_lease *l);

/* ---- streams -----------------------------------------------------------------
 * A durable, ordered log per name with consumer groups (Redis Streams),
 * for work several instances share: an entry added once is read by one
 * consumer of a group, stays pending until that consumer acknowledges
 * it, and is claimed by another consumer when it stays pending (its
 * consumer died) longer than the claimer's min_idle_ms. So delivery is at
 * least once: a consumer makes its work idempotent or fences it (leases).
 * An entry is one payload (bytes); ids are Redis's ("1700000000000-0",
 * time then sequence, increasing). In Redis: "grove:stream:<name>".
 * Blocking: worker threads only. Names (stream, group, consumer) are at
 * most 127 bytes. */
#define BROKER_ID_MAX 48
/* Called for each entry read or claimed, in id order; data is valid
 * during the call only. */
typedef void (*broker_entry_fn)(const char *id, const char *data, size_t len, void *arg);
/* Appends data; keeps about the newest `maxlen` entries (0: all). OUT:
 * id (may be NULL) the entry's id. Returns 0 or Redis's codes. */
int broker_stream_add(struct broker *b, const char *stream, const void *data, size_t len,
                      uint64_t maxlen, char id[BROKER_ID_MAX]);
/* Makes the group (reading from the stream's start) and the stream if
 * missing; a group that exists is left as it is. Returns 0 or Redis's
 * codes. */
int broker_stream_group(struct broker *b, const char *stream, const char *group);
/* Reads up to `count` (1..1000) entries no consumer of the group has been
 * given yet, as `consumer`, waiting up to block_ms (at most 30000; 0: do
 * not wait) for one to come. Returns how many were handed to fn (0 when
 * none came), GROVE_ENOENT when the group does not exist, or Redis's
 * codes. */
int broker_stream_read(struct broker *b, const char *stream, const char *group,
                       const char *consumer, int count, unsigned block_ms, broker_entry_fn fn,
                       void *arg);
/* Acknowledges an entry: it leaves the group's pending list. Returns 0,
 * GROVE_ENOENT when it was not pending, or Redis's codes. */
int broker_stream_ack(struct broker *b, const char *stream, const char *group, const char *id);
/* Takes over, as `consumer`, up to `count` entries pending in the group
 * for at least min_idle_ms (XAUTOCLAIM from the start), handing each to
 * fn; entries deleted from the stream meanwhile are dropped from the
 * pending list. Returns how many were handed to fn, or Redis's codes. */
int broker_stream_claim(struct broker *b, const char *stream, const char *group,
                        const char *consumer, uint64_t min_idle_ms, int count,
                        broker_entry_fn fn, void *arg);

#endif
