/* periodic.c — a thread, a lock and a condition variable on the monotonic
 * clock (a change of the wall clock neither hurries nor holds a run). */
#include "core/periodic.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"

struct periodic {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  periodic_fn fn;
  void *arg;
  uint64_t interval_ms;
  bool woken, stop;
};

static void deadline(struct timespec *ts, uint64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  uint64_t ns = (uint64_t)ts->tv_nsec + (ms % 1000) * 1000000ULL;
  ts->tv_sec += (time_t)(ms / 1000 + ns / 1000000000ULL);
  ts->tv_nsec = (long)(ns % 1000000000ULL);
}

static void *periodic_main(void *arg) {
  struct periodic *p = arg;
  uint64_t wait = p->interval_ms;
  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    struct timespec ts;
    deadline(&ts, wait);
    while (!p->stop && !p->woken)
      if (pthread_cond_timedwait(&p->wake, &p->lock, &ts))
        break; /* the time has come */
    if (p->stop)
      break;
    p->woken = false;
    pthread_mutex_unlock(&p->lock);
    uint64_t next = p->fn(p->arg);
    wait = next ? next : p->interval_ms;
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int periodic_start(struct periodic **out, uint64_t interval_ms, periodic_fn fn, void *arg) {
  if (!interval_ms || !fn)
    return GROVE_EINVAL;
  struct periodic *p = calloc(1, sizeof *p);
  if (!p)
    return GROVE_ENOMEM;
  p->fn = fn;
  p->arg = arg;
  p->interval_ms = interval_ms;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->wake, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->lock, NULL);
  if (pthread_create(&p->thread, NULL, periodic_main, p)) {
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return GROVE_ENOMEM;
  }
  *out = p;
  return 0;
}

void periodic_wake(struct periodic *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->lock);
  p->woken = true;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->lock);
}

void periodic_stop(struct periodic *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->lock);
  pthread_join(p->thread, NULL);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->lock);
  free(p);
}
