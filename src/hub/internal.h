/* internal.h — hub-internal pieces shared by hub.c and coalesce.c. */
#ifndef GROVE_HUB_INTERNAL_H
#define GROVE_HUB_INTERNAL_H

#include "hub/hub.h"

struct coalescer;

/* The hub's monotonic clock (ms): the system's, or hub_set_clock's. */
uint64_t hub_now(const struct hub *h);
/* Coalesced publishing's slots and flusher thread (coalesce.c). */
int coalescer_create(struct coalescer **out, struct hub *h);
void coalescer_destroy(struct coalescer *c); /* stops the flusher; NULL is fine */
struct coalescer *hub_coalescer(struct hub *h);

/* Delivers a message that came from another instance (no re-publish). */
int hub_deliver(struct hub *h, const char *topic, const char *json, size_t len, uint64_t *id);

#endif
