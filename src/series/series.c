/* series.c — the store's life: opening with a backend (series_sqlite_ops
 * for a directory, series_postgres_ops for a PostgreSQL URL), closing,
 * health and retention. What the rest of the store is made of is listed in
 * internal.h. */
#include "series/series.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "series/internal.h"

void say(char *out, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, n, fmt, ap);
  va_end(ap);
}

void trouble_set(struct series *s, enum trouble_path path, const char *why) {
  const char *name = s->ops->paths[path];
  char *t = s->trouble[path];
  if (!why) {
    if (*t)
      log_info(NULL, "series writes work again", "path=\"%s\"", name);
    *t = '\0';
    return;
  }
  if (!*t)
    log_error(NULL, "series writes fail", "path=\"%s\" error=\"%s\"", name, why);
  say(t, sizeof s->trouble[path], "%s: %s", name, why);
}

/* ---- life ------------------------------------------------------------------------ */

/* Frees what open made; the threads must be gone. */
static void series_free(struct series *s) {
  if (s->ops)
    s->ops->close(s);
  if (s->log.fd >= 0)
    close(s->log.fd);
  buf_release(&s->log.out);
  buf_release(&s->log.payload);
  stypes_close(s->types);
  for (uint32_t i = 0; i < s->nkeys; i++)
    free(s->keys[i]);
  free(s->keys);
  free(s->ktypes);
  heads_free(s->heads, s->nkeys);
  heads_free(s->frozen, s->nfrozen);
  map_release(&s->ids);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->flush_lock);
  pthread_cond_destroy(&s->work);
  pthread_cond_destroy(&s->idle);
  free(s);
}

/* Opens a store on target with the backend ops: the backend, then the
 * field types, then the writer. */
static int store_open(struct series **out, const struct series_ops *ops, const char *target,
                      char *err, size_t errlen) {
  struct series *s = calloc(1, sizeof *s);
  if (!s)
    return GROVE_ENOMEM;
  s->log.fd = -1;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->flush_lock, NULL);
  pthread_cond_init(&s->work, NULL);
  pthread_cond_init(&s->idle, NULL);
  map_init(&s->ids);
  s->ops = ops;
  int rc = ops->open(s, target, err, errlen);
  if (!rc)
    rc = stypes_open(&s->types, s, err, errlen);
  if (!rc) {
    s->logged = s->nkeys; /* every key so far is in the backend or its log */
    if ((rc = log_start(s)))
      snprintf(err, errlen, "cannot start the series writer: %s", grove_strerror(rc));
  }
  if (rc) {
    series_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int series_open(struct series **out, const char *dir, char *err, size_t errlen) {
  return store_open(out, &series_sqlite_ops, dir, err, errlen);
}

int series_open_pg(struct series **out, const char *url, char *err, size_t errlen) {
  return store_open(out, &series_postgres_ops, url, err, errlen);
}

void series_close(struct series *s) {
  if (!s)
    return;
  flush_stop(s); /* a flush in progress ends first */
  pthread_mutex_lock(&s->lock);
  s->stop = true;
  pthread_cond_signal(&s->work);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->writer, NULL);
  series_free(s);
}

/* ---- health and retention -------------------------------------------------------- */

int series_health(struct series *s, char *why, size_t n) {
  pthread_mutex_lock(&s->lock);
  int rc = 0;
  *why = '\0';
  for (int p = 0; p < TROUBLE_N; p++) {
    if (!s->trouble[p][0])
      continue;
    size_t l = strlen(why);
    snprintf(why + l, n - l, "%s%s", l ? "; " : "", s->trouble[p]);
    rc = GROVE_EIO;
  }
  if (rc && s->log.dirty) {
    size_t l = strlen(why);
    snprintf(why + l, n - l, "; writes are refused until the log is cut");
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

/* The retention cut-off now - keep - extra; INT64_MIN (nothing to drop)
 * when that is before any time. */
static int64_t keep_cutoff(int64_t keep, int64_t extra) {
  int64_t t;
  if (time_sub((int64_t)clock_wall_ms() * 1000000, keep, &t) || time_sub(t, extra, &t))
    return INT64_MIN;
  return t;
}

void retention_cutoffs(struct series *s, int64_t before[3]) {
  static const int64_t extra[3] = {0, MINUTE_NS, HOUR_NS}; /* whole buckets go */
  for (int i = 0; i < 3; i++)
    before[i] = s->keep_ns[i] && !s->keep_elsewhere ? keep_cutoff(s->keep_ns[i], extra[i])
                                                     : INT64_MIN;
}

bool retention_here(struct series *s) {
  return !s->keep_elsewhere && (s->keep_ns[0] || s->keep_ns[1] || s->keep_ns[2]);
}

int64_t series_oldest_kept(struct series *s) {
  pthread_mutex_lock(&s->lock); /* not flush_lock: a rollup pass holds that for seconds */
  int64_t t = s->keep_ns[0] ? keep_cutoff(s->keep_ns[0], 0) : INT64_MIN;
  pthread_mutex_unlock(&s->lock);
  return t;
}

void series_retention(struct series *s, uint64_t raw_ms, uint64_t minute_ms, uint64_t hour_ms) {
  pthread_mutex_lock(&s->flush_lock);
  pthread_mutex_lock(&s->lock);
  const uint64_t ms[3] = {raw_ms, minute_ms, hour_ms};
  for (int i = 0; i < 3; i++) /* past 292 years: as good as for ever, and no overflow */
    s->keep_ns[i] = ms[i] > (uint64_t)INT64_MAX / 1000000 ? INT64_MAX : (int64_t)ms[i] * 1000000;
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_unlock(&s->flush_lock);
}

void series_retention_elsewhere(struct series *s) {
  pthread_mutex_lock(&s->flush_lock);
  pthread_mutex_lock(&s->lock);
  s->keep_elsewhere = true;
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_unlock(&s->flush_lock);
}
