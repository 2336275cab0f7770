/* health.h — readiness checks that modules add and /ready runs.
 *
 * A module whose trouble should take an instance out of a load
 * balancer's rotation (a full disk under the series store, say) adds a
 * check; /ready runs every check on a worker thread and answers 503,
 * naming each failing component and why, while any fails. Checks are
 * pulled, not pushed: a component that recovers reads as healthy at the
 * next probe without telling anyone.
 *
 * Thread-safe: checks are added, removed and run under one lock, so a
 * check removed has finished running and is never called again. */
#ifndef GROVE_HEALTH_H
#define GROVE_HEALTH_H

#include <stddef.h>

struct health;

/* 0 when healthy; otherwise a GROVE_E* code and why (n bytes, one line
 * for a person) filled in. Runs on any thread; must not block for long
 * (it reads state the component keeps, it does not probe the disk). */
typedef int (*health_fn)(void *arg, char *why, size_t n);

int health_create(struct health **out);
void health_destroy(struct health *h); /* NULL is fine */

/* Adds a check under a component name (at most 63 bytes, copied).
 * Returns 0, GROVE_EINVAL (bad name) or GROVE_ENOMEM. */
int health_add(struct health *h, const char *name, health_fn fn, void *arg);
/* Removes the check added with this fn and arg; waits for a run of it in
 * progress. NULL h is fine. */
void health_remove(struct health *h, health_fn fn, void *arg);

/* Runs every check in the order added and calls out for each with its
 * result (why is "" when rc is 0). out must not call into h. Returns how
 * many failed. */
size_t health_run(struct health *h,
                  void (*out)(const char *name, int rc, const char *why, void *arg), void *arg);

#endif
