/* flush.c — moving what waits into the backend's long-term form:
 * series_flush (one at a time), the autoflush thread that calls it every
 * interval or once the head holds enough points, and the local flush of a
 * backend that keeps a head: the head and its log set aside (new points
 * go to a fresh log and head meanwhile, reads see both), put into chunks,
 * then the old log removed. A flush that fails leaves the points set
 * aside, still read, and the next flush tries them first. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/periodic.h"
#include "series/internal.h"

int flush_local(struct series *s, char *why, size_t n) {
  pthread_mutex_lock(&s->lock);
  /* the writer may be between taking a group and logging it: wait */
  while (s->busy)
    pthread_cond_wait(&s->idle, &s->lock);
  int rc = 0;
  if (!s->frozen) { /* else a failed flush left some: retry those first */
    if (!s->head_points) {
      pthread_mutex_unlock(&s->lock);
      return 1;
    }
    struct head *fresh = heads_new(s);
    if (!fresh) {
      snprintf(why, n, "out of memory");
      rc = GROVE_ENOMEM;
    } else if ((rc = log_set_aside(s, why, n))) {
      free(fresh);
    } else {
      heads_freeze(s, fresh);
    }
  }
  uint32_t nf = s->nfrozen;
  char **keys = rc ? NULL : malloc((nf ? nf : 1) * sizeof *keys);
  if (keys)
    memcpy(keys, s->keys, nf * sizeof *keys); /* the strings stay; the array may move */
  else if (!rc)
    rc = GROVE_ENOMEM;
  pthread_mutex_unlock(&s->lock);
  if (!rc)
    rc = s->ops->put_chunks(s, s->frozen, nf, keys, why, n);
  free(keys);
  if (!rc) {
    /* the chunks are durable: the old log and the frozen heads can go */
    pthread_mutex_lock(&s->lock);
    struct head *frozen = s->frozen;
    s->frozen = NULL;
    s->nfrozen = 0;
    pthread_mutex_unlock(&s->lock);
    heads_free(frozen, nf);
    if (unlink(s->log.old_path) < 0 && errno != ENOENT) {
      say(why, n, "cannot remove '%s': %s", s->log.old_path, strerror(errno));
      rc = GROVE_EIO;
    }
  }
  if (!rc) {
    int64_t before[3];
    retention_cutoffs(s, before);
    rc = s->ops->expire(s, before, why, n);
  }
  return rc;
}

int series_flush(struct series *s) {
  char why[640] = "";
  pthread_mutex_lock(&s->flush_lock);
  int rc = s->ops->flush(s, why, sizeof why);
  if (rc <= 0) {
    pthread_mutex_lock(&s->lock);
    trouble_set(s, TROUBLE_CHUNKS, rc ? why : NULL);
    pthread_mutex_unlock(&s->lock);
  }
  pthread_mutex_unlock(&s->flush_lock);
  return rc > 0 ? 0 : rc;
}

/* ---- autoflush ------------------------------------------------------------------- */

/* How soon a failed flush is tried again (at most its interval). */
#define FLUSH_RETRY_MS 5000
/* A flush costs per series (a chunk row and its rollup rows) as much as
 * per point: a head of many sparse series (matrix's process series get a
 * point every few seconds each) waits until its series hold this many
 * points on average, so that a chunk is worth writing, up to
 * HEAD_MAX_FACTOR times --series-flush-points (the memory bound). */
#define HEAD_MIN_RUN 32
#define HEAD_MAX_FACTOR 4

/* Whether the head holds enough points to move them now (under lock). */
static bool head_full(const struct series *s) {
  if (s->head_points < s->flush_points)
    return false;
  return s->head_points / HEAD_MAX_FACTOR >= s->flush_points ||
         s->head_points >= HEAD_MIN_RUN * s->head_series;
}

/* Each --series-flush (sooner when the head is full, or after a failure):
 * what waits moved on by the backend (points in memory into chunks, or
 * with PostgreSQL the minutes written rolled up), then retention unless
 * another process applies it. Returns the next wait (0: the interval). */
static uint64_t autoflush(void *arg) {
  struct series *s = arg;
  pthread_mutex_lock(&s->lock);
  bool due = s->ops->flush_due(s);
  pthread_mutex_unlock(&s->lock);
  if (!due)
    return 0;
  int rc = series_flush(s); /* an error is logged once, with its path, as trouble */
  if (rc) /* the next try comes sooner (the disk may have room again) */
    return s->flush_ms > FLUSH_RETRY_MS ? FLUSH_RETRY_MS : 0;
  malloc_trim(0); /* the heads just freed: give the memory back */
  pthread_mutex_lock(&s->lock);
  bool full = head_full(s); /* filled while it flushed */
  pthread_mutex_unlock(&s->lock);
  return full ? 1 : 0;
}

void flush_wake_if_full(struct series *s) {
  if (s->flusher && head_full(s))
    periodic_wake(s->flusher);
}

void flush_stop(struct series *s) {
  pthread_mutex_lock(&s->lock);
  struct periodic *p = s->flusher; /* no wake reaches it once it is gone from s */
  s->flusher = NULL;
  pthread_mutex_unlock(&s->lock);
  periodic_stop(p);
}

int series_autoflush(struct series *s, uint64_t interval_ms, size_t max_points) {
  pthread_mutex_lock(&s->lock);
  if (s->flusher) {
    pthread_mutex_unlock(&s->lock);
    return GROVE_EEXIST;
  }
  s->flush_ms = interval_ms ? interval_ms : 600000;
  s->flush_points = max_points ? max_points : (size_t)-1;
  int rc = periodic_start(&s->flusher, s->flush_ms, autoflush, s);
  pthread_mutex_unlock(&s->lock);
  return rc;
}
