/* writer.c — flow's database writes off the hot paths. Stations first
 * seen in a write (on the writer's worker thread, before it is
 * acknowledged) and alerts (on the engine's ticker thread) are queued
 * here and written by one background thread, a batch a transaction, so
 * neither the acknowledgement of a write nor the ticker waits for the
 * database.
 *
 * The queue is bounded (FLOW_WRITER_MAX rows in serve). When it is full — the
 * database is down or far slower than the readings — a new row is
 * dropped and counted (grove_flow_writes_dropped_total{kind}), with one
 * warning per overflow: a station dropped so is still in the live
 * directory and is registered again at the next start from its stored
 * readings (flow.c's learn_series); an alert dropped so was published
 * live and logged, but is missing from GET /api/v1/flow/alerts. A batch
 * the database refuses is logged and counted
 * (grove_flow_writes_failed_total{kind}). flow_writer_stop writes every
 * row still queued before it returns: a clean shutdown loses nothing.
 * flow_writer_sync waits for the rows queued before it (GET
 * /api/v1/flow/alerts lists every alert raised before it was asked). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/flow/flow.h"
#include "core/array.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

enum { ROW_STATION, ROW_ALERT };

struct row {
  int kind;
  union {
    struct flow_station st;
    struct flow_alert al;
  } u;
};

struct flow_writer {
  struct store *store;
  pthread_mutex_t lock;
  pthread_cond_t wake, written;
  pthread_t thread;
  uint64_t nqueued, nwritten; /* rows queued, and rows written (or failed), so far */
  struct row *rows;          /* queued, oldest first */
  size_t n, cap, max;
  bool stopping, overflowing;
  struct metric *queued, *dropped[2], *failed[2];
};

static const char *const kind_names[] = {"station", "alert"};

static const char *const alert_insert =
    "INSERT INTO flow_alerts (id, kind, subject, region, from_category, to_category,"
    " aqi, dominant, window_end, at) VALUES ($1, $2, $3, $4, CAST($5 AS INTEGER),"
    " CAST($6 AS INTEGER), CAST($7 AS INTEGER), $8, CAST($9 AS BIGINT),"
    " CAST($10 AS BIGINT)) ON CONFLICT (id) DO NOTHING";

static int write_alert(struct store_conn *c, const struct flow_alert *a, char *err, size_t n) {
  char from[8], to[8], aqi[16], end[24], at[24];
  snprintf(from, sizeof from, "%d", a->from);
  snprintf(to, sizeof to, "%d", a->to);
  snprintf(aqi, sizeof aqi, "%d", a->aqi);
  snprintf(end, sizeof end, "%lld", (long long)a->window_end_ns);
  snprintf(at, sizeof at, "%llu", (unsigned long long)a->at_ms);
  const char *params[] = {a->id, a->kind, a->subject, a->region, from, to, aqi, a->dominant,
                          end, at};
  return store_exec(c, alert_insert, params, 10, NULL, err, n);
}

/* Writes the rows of one kind in one transaction. */
static void write_rows(struct flow_writer *w, const struct row *rows, size_t n, int kind) {
  struct store_conn *c;
  char err[256] = "";
  size_t count = 0;
  for (size_t i = 0; i < n; i++)
    count += rows[i].kind == kind;
  int rc = store_acquire(w->store, &c);
  if (rc) {
    snprintf(err, sizeof err, "%s", grove_strerror(rc));
  } else {
    rc = store_begin(c);
    for (size_t i = 0; i < n && !rc; i++)
      if (rows[i].kind == kind)
        rc = kind == ROW_STATION ? flow_station_exec(c, &rows[i].u.st, false, err, sizeof err)
                                 : write_alert(c, &rows[i].u.al, err, sizeof err);
    rc = rc ? (store_rollback(c), rc) : store_commit(c);
    store_release(w->store, c);
  }
  if (rc) {
    metric_add(w->failed[kind], (double)count);
    log_error(NULL, kind == ROW_STATION ? "cannot save stations" : "cannot save alerts",
              "count=%zu error=\"%s\"", count, err);
  }
}

static void *writer_main(void *arg) {
  struct flow_writer *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (!w->n && !w->stopping)
      pthread_cond_wait(&w->wake, &w->lock);
    if (!w->n && w->stopping)
      break;
    /* take everything queued (the queue starts again empty) */
    struct row *rows = w->rows;
    size_t n = w->n;
    w->rows = NULL;
    w->n = w->cap = 0;
    w->overflowing = false;
    metric_set(w->queued, 0);
    pthread_mutex_unlock(&w->lock);
    bool any[2] = {false, false};
    for (size_t i = 0; i < n; i++)
      any[rows[i].kind] = true;
    /* stations first: an alert may name a station first seen in the same batch */
    if (any[ROW_STATION])
      write_rows(w, rows, n, ROW_STATION);
    if (any[ROW_ALERT])
      write_rows(w, rows, n, ROW_ALERT);
    free(rows);
    pthread_mutex_lock(&w->lock);
    w->nwritten += n;
    pthread_cond_broadcast(&w->written);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int flow_writer_start(struct flow_writer **out, struct store *store, struct metrics *metrics,
                      size_t max) {
  struct flow_writer *w = calloc(1, sizeof *w);
  if (!w)
    return GROVE_ENOMEM;
  w->store = store;
  w->max = max ? max : 1;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->wake, NULL);
  pthread_cond_init(&w->written, NULL);
  if (metrics) {
    struct metric_family *d = metrics_family(
        metrics, "grove_flow_writes_dropped_total",
        "Station and alert rows dropped because the background writer's queue was full.",
        METRIC_COUNTER, "kind");
    struct metric_family *f = metrics_family(
        metrics, "grove_flow_writes_failed_total",
        "Station and alert rows the database refused (logged).", METRIC_COUNTER, "kind");
    for (int k = 0; k < 2; k++) {
      w->dropped[k] = metric_get(d, kind_names[k]);
      w->failed[k] = metric_get(f, kind_names[k]);
    }
    w->queued = metric_get(metrics_family(metrics, "grove_flow_writes_queued",
                                          "Station and alert rows waiting for the background writer.",
                                          METRIC_GAUGE, ""));
  }
  if (pthread_create(&w->thread, NULL, writer_main, w)) {
    pthread_cond_destroy(&w->written);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return GROVE_ENOMEM;
  }
  *out = w;
  return 0;
}

/* Queues one row (copied); drops it when the queue is full. */
static void enqueue(struct flow_writer *w, int kind, const void *item, size_t size) {
  pthread_mutex_lock(&w->lock);
  if (w->n == w->max || w->stopping) {
    bool first = !w->overflowing;
    w->overflowing = true;
    pthread_mutex_unlock(&w->lock);
    metric_add(w->dropped[kind], 1);
    if (first)
      log_warn(NULL, "flow's database writes are behind: rows dropped until the queue drains",
               "kind=%s queue=%zu hint=\"see grove_flow_writes_dropped_total\"", kind_names[kind],
               w->max);
    return;
  }
  if (ARRAY_GROW(w->rows, w->cap, w->n + 1, 64, w->max)) {
    pthread_mutex_unlock(&w->lock);
    metric_add(w->dropped[kind], 1);
    log_error(NULL, "cannot queue a row", "kind=%s error=\"out of memory\"", kind_names[kind]);
    return;
  }
  struct row *r = &w->rows[w->n++];
  r->kind = kind;
  memcpy(&r->u, item, size);
  w->nqueued++;
  metric_set(w->queued, (double)w->n);
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
}

void flow_writer_station(struct flow_writer *w, const struct flow_station *st) {
  enqueue(w, ROW_STATION, st, sizeof *st);
}

void flow_writer_alert(struct flow_writer *w, const struct flow_alert *a) {
  enqueue(w, ROW_ALERT, a, sizeof *a);
}

void flow_writer_sync(struct flow_writer *w) {
  pthread_mutex_lock(&w->lock);
  uint64_t target = w->nqueued;
  while (w->nwritten < target)
    pthread_cond_wait(&w->written, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

void flow_writer_stop(struct flow_writer *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->lock);
  w->stopping = true;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL); /* it writes what is queued first */
  free(w->rows);
  pthread_cond_destroy(&w->written);
  pthread_cond_destroy(&w->wake);
  pthread_mutex_destroy(&w->lock);
  free(w);
}
