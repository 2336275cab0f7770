/* periodic.h — one background thread that runs a function every so often.
 *
 * The shape every periodic job in Grove had written again: a thread
 * waiting on a condition variable with a timeout, woken early on request,
 * told to stop under the same lock and joined. The series store's
 * autoflush, the gate's refresh and the stream engine's ticker use it.
 *
 * The function runs on the periodic's own thread with no lock of the
 * periodic held, so it may call periodic_wake (not periodic_stop) on its
 * own periodic. It returns how long to wait before the next run, in
 * milliseconds; 0 means the interval given at start (a function that runs
 * at a fixed pace returns 0). A wake (periodic_wake) during a run makes the
 * next run start at once: no wake is lost.
 *
 * Thread-safety: periodic_wake from any thread; periodic_stop once, from
 * a thread other than the periodic's own. */
#ifndef GROVE_PERIODIC_H
#define GROVE_PERIODIC_H

#include <stdint.h>

struct periodic;

/* Returns the next wait in ms (0: the interval). */
typedef uint64_t (*periodic_fn)(void *arg);

/* Starts a thread that first runs fn `interval_ms` after this call (or at
 * a wake) and then as fn says. interval_ms must be positive. Returns 0,
 * GROVE_EINVAL or GROVE_ENOMEM (no thread then: fn never runs). */
int periodic_start(struct periodic **out, uint64_t interval_ms, periodic_fn fn, void *arg);
/* Makes the next run start now (after the one in progress, if any). */
void periodic_wake(struct periodic *p);
/* Waits for a run in progress to end, stops the thread and frees p. After
 * it returns fn is not running and never runs again. NULL is fine. */
void periodic_stop(struct periodic *p);

#endif
