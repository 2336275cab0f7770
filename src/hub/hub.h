/* hub.h — live topics: publish once, deliver to every subscriber.
 *
 * Topics are paths ("flow/stations/42"). Clients subscribe over WebSocket
 * (GET /api/v1/live) or Server-Sent Events (GET /api/v1/live/sse?topic=…).
 * Each event loop keeps its own subscribers; a publish (from any thread)
 * is numbered, kept in a short per-topic history for SSE resumption
 * (Last-Event-ID), and handed to every loop, which writes one shared,
 * pre-framed buffer to each subscriber. A subscriber whose send queue
 * passes its limit is disconnected; the hub's memory does not grow with
 * a slow client.
 *
 * With a broker (broker/broker.h), publishes also go to the other
 * instances (Redis channel "grove:live") and theirs are delivered here.
 * If Redis goes away, local delivery continues; the broker reports it. */
#ifndef GROVE_HUB_H
#define GROVE_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

struct hub;
struct router;
struct metrics;

struct hub_cfg {
  uint64_t max_message;   /* WebSocket message from a client */
  uint64_t max_queue;     /* unsent bytes per subscriber */
  int history;            /* messages kept per topic for resumption */
  uint64_t history_bytes; /* and in all, each topic's own bytes included */
  uint64_t history_idle_ms; /* a topic idle this long with no subscriber loses
                             * its history; 0: only the bytes bound it */
  int max_topics;         /* topics one connection may subscribe to */
  uint64_t ping_ms;       /* WebSocket ping interval */
  uint64_t heartbeat_ms;  /* SSE heartbeat interval */
  bool client_publish;    /* allow {"op":"publish"} from clients */
};

extern const struct cfg_opt hub_cfg_opts[];
extern const size_t hub_cfg_nopts;

int hub_create(struct hub **out, const struct hub_cfg *cfg, int nloops, struct metrics *m);
/* Frees everything; loops must be stopped. */
void hub_destroy(struct hub *h);
/* Adds GET /api/v1/live, GET /api/v1/live/sse and POST /api/v1/live/{topic}
 * (anonymous routes: access is per topic). Returns 0 or a GROVE_E* code
 * with err saying why (a route declared twice). */
int hub_routes(struct hub *h, struct router *r, char *err, size_t errlen);
/* Server hooks: attach and detach a loop (on that loop's thread). */
void hub_loop_start(struct hub *h, uv_loop_t *loop, int index);
void hub_loop_stop(struct hub *h, int index);

/* Publishes a JSON value (text) on a topic. Thread-safe. Returns 0,
 * GROVE_EINVAL for a bad topic or JSON, GROVE_ETOOBIG when the framed
 * message (WebSocket frame or SSE event) is larger than a subscriber's
 * send queue (--live-max-queue: no subscriber could take it, so it is
 * neither delivered nor kept), GROVE_ENOMEM. OUT: *id (may be NULL) the
 * event id given to it. */
int hub_publish(struct hub *h, const char *topic, const char *json, size_t len, uint64_t *id);
bool hub_topic_valid(const char *topic);

/* Coalesced (throttled) publishing, for state that changes faster than
 * anyone needs to see it (a station's AQI, a host's load): at most one
 * message per topic every min_interval_ms, and the newest payload always
 * goes out. A publish on a topic whose last coalesced message is older
 * than the interval goes out at once (as hub_publish); one inside the
 * interval waits, replacing whatever waited before it, and the hub's
 * flusher thread publishes it when the interval has passed. So a topic's
 * last message is always the last payload given, at most one interval
 * late. The interval is the hub clock's (hub_set_clock). json is copied.
 * Thread-safe. Returns 0 (published or waiting), GROVE_EINVAL for a bad
 * topic, GROVE_ENOMEM, or what hub_publish returns when it went out at
 * once; min_interval_ms 0 is hub_publish. Payloads that wait are checked
 * when they go out: a bad one is dropped then. */
int hub_publish_coalesced(struct hub *h, const char *topic, const char *json, size_t len,
                          uint64_t min_interval_ms);
/* Publishes the waiting payloads whose interval has passed, now (the
 * flusher does it by itself; for tests moving the hub clock by hand).
 * Returns ms until the next one is due, 0 when nothing waits. */
uint64_t hub_coalesced_flush(struct hub *h);

/* ---- who may read and publish: per-prefix topic rules -------------------
 * Apps (and platform modules) declare rules for their topics; the hub asks
 * the gate who a client is (the subscribing request's credential:
 * Authorization: Bearer …, X-API-Key, or a WebSocket's
 * {"op":"auth","token":…}) and applies the rule of the longest prefix
 * that matches, compared without regard to case ("FLOW/alerts" is
 * flow's). It does so on every subscribe (WebSocket and SSE, the topics
 * of the upgrade request included: 401/403 before the upgrade), before a
 * resumed SSE replays history, and on every publish from a client.
 * A live subscription does not outlive its credential: when an access
 * token expires, or the gate's view changes (a key revoked, a session
 * logged out, a user disabled) and the credential no longer holds,
 * subscriptions that needed it end (WebSocket: an "unsubscribed" message
 * with the reason for each; SSE: the stream closes), within a second.
 *
 * A topic no rule matches is a client topic: anyone reads it, and anyone
 * publishes on it when --live-client-publish is on; except that under a
 * reserved namespace (the first segment of any rule's prefix, and those
 * the hub keeps for modules still to come: relay, matrix, notes, jobs) it
 * needs the read scope to read and no client publishes on it. */
struct gate;
struct gate_principal;
enum hub_who {
  HUB_NOBODY = 0, /* no client (the server alone publishes) */
  HUB_ANYONE,     /* anonymous clients too */
  HUB_SIGNED_IN,  /* a valid credential holding the rule's scopes */
  HUB_OWNER,      /* a valid credential holding the scopes that owns the
                   * topic's resource (see owns), or holds the admin scope */
};
struct hub_topic_rule {
  const char *prefix;         /* "relay/devices/": the topics starting with it */
  enum hub_who read, publish;
  unsigned read_scopes, publish_scopes; /* gate's GATE_* bits */
  /* HUB_OWNER: whether `who` owns resource `id` (the topic's segment after
   * the prefix, "7" in relay/devices/7). NULL: the id must be the device
   * of a key bound to a device, or a user's own id. Called on a loop
   * thread with the state given to hub_topics_add; answers from memory. */
  bool (*owns)(void *state, const struct gate_principal *who, const char *id);
  /* When set and true at hub_topics_add: read is HUB_ANYONE instead (an
   * app's switch, such as --flow-public). */
  const bool *read_anyone;
};
/* Adds rules for `owner` (an app or module name, static, named in
 * errors). Before serving. Returns 0, or GROVE_EEXIST when a prefix
 * already has a rule (err names both owners), GROVE_EINVAL for a prefix
 * that is not a valid topic start, GROVE_ENOMEM. */
int hub_topics_add(struct hub *h, const char *owner, const struct hub_topic_rule *rules,
                   size_t n, void *state, char *err, size_t errlen);
/* What `who` (NULL: anonymous) may do on a topic: 0 when allowed, else
 * the HTTP status of the refusal (401: sign in; 403: not allowed) with
 * *code and *why (static) saying why. */
int hub_topic_check(struct hub *h, const struct gate_principal *who, const char *topic,
                    bool publish, const char **code, const char **why);
/* The gate that identifies clients. Without one, topics that need a
 * credential are refused to every client. Call before serving. */
void hub_attach_gate(struct hub *h, struct gate *g);
/* Resumption history. A topic's history lives while it holds messages or
 * has subscribers; the oldest messages go first when --live-history-bytes
 * is reached (rings left empty go with them), and a topic idle for
 * --live-history-idle with no subscriber loses its history. How many
 * messages a client resuming after `last_id` would be sent: */
size_t hub_history_after(struct hub *h, const char *topic, uint64_t last_id);
/* Topics with a history (or subscribers) and the bytes they hold. */
void hub_history_stats(struct hub *h, size_t *topics, size_t *bytes);
/* For tests: the monotonic clock (ms) the idle rule reads. */
void hub_set_clock(struct hub *h, uint64_t (*mono_ms)(void *arg), void *arg);

/* Shares topics with other instances through the broker: every publish
 * here also goes to them, and theirs are delivered here (from the
 * broker's subscriber thread). Call once, before broker_start. Returns 0
 * or the broker's error (broker_subscribe). */
struct broker;
int hub_attach_broker(struct hub *h, struct broker *b);

#endif
