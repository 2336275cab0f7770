/* internal.h — hub-internal pieces shared by hub.c and broker.c. */
#ifndef GROVE_HUB_INTERNAL_H
#define GROVE_HUB_INTERNAL_H

#include "hub/hub.h"

struct broker;

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
/* Hands a control message from another instance to the listener. */
void hub_control_dispatch(struct hub *h, const char *kind, const char *payload, size_t len);

#endif
