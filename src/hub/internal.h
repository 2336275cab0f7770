/* internal.h — hub-internal pieces shared by hub.c and broker.c. */
#ifndef GROVE_HUB_INTERNAL_H
#define GROVE_HUB_INTERNAL_H

#include "hub/hub.h"

struct broker;
struct coalescer;

/* The hub's monotonic clock (ms): the system's, or hub_set_clock's. */
uint64_t hub_now(const struct hub *h);
/* Coalesced publishing's slots and flusher thread (coalesce.c). */
int coalescer_create(struct coalescer **out, struct hub *h);
void coalescer_destroy(struct coalescer *c); /* stops the flusher; NULL is fine */
struct coalescer *hub_coalescer(struct hub *h);

/* Delivers a message that came from another instance (no re-publish). */
int hub_deliver(struct hub *h, const char *topic, const char *json, size_t len, uint64_t *id);

int broker_start(struct broker **out, const char *url, struct hub *h, struct metrics *m,
                 char *err, size_t errlen);
void broker_stop(struct broker *b);
/* Queues a publish for the other instances; never blocks. */
void broker_publish(struct broker *b, const char *topic, const char *json, size_t len);
bool broker_ok(struct broker *b, char *err, size_t errlen);
/* Control messages (not for clients): queued even while Redis is away, so
 * none is lost; del_key, when given, is deleted in Redis first. */
void broker_control(struct broker *b, const char *kind, const char *payload, size_t len,
                    const char *del_key);
/* The same, waiting up to timeout_ms (0: not at all) until del_key is
 * deleted in Redis and the message published. Returns 0 when it was,
 * GROVE_EUNAVAIL when the publisher is not connected (queued for later),
 * GROVE_ETIMEOUT when it was not done in time (still queued or in flight:
 * it goes out later), GROVE_EBUSY (queue full) or GROVE_ENOMEM. Blocks:
 * worker threads only. */
int broker_control_sync(struct broker *b, const char *kind, const char *payload, size_t len,
                        const char *del_key, unsigned timeout_ms);
/* True while the subscription is up. */
bool broker_subscribed(struct broker *b);
/* Hands a control message from another instance to the listener. */
void hub_control_dispatch(struct hub *h, const char *kind, const char *payload, size_t len);

#endif
