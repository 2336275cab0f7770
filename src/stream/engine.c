/* engine.c — partitions of keyed windows with a lock each, watermarks
 * bounded by the wall clock, and a ticker.
 *
 * Why the wall clock bounds event time here: a partition's watermark
 * serves every key hashed to it, so it must not follow one writer's clock.
 * Each point is added with the wall clock (stream_add_at) and
 * cfg.window.ahead_ns as its bound; an honest point (within `lateness` of
 * the wall clock) is never late whatever another key's clock says, and a
 * fast clock delays only its own key's windows. When points stop, the
 * ticker moves the watermark on with the wall clock (never past it either,
 * when bounded). */
#include "stream/stream.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/periodic.h"
#include "core/util.h"

struct spart {
  pthread_mutex_t lock;
  /* taken before `lock` is dropped and held while a handoff runs, so
   * handoffs leave in the order they were staged */
  pthread_mutex_t out_lock;
  struct stream *stream;
  struct stream_engine *e;
  unsigned index;
  int64_t max_ts;        /* newest event time added here (INT64_MIN: none) */
  uint64_t max_mono_ms;  /* and when it came */
  uint64_t ahead, windows;
};

struct stream_engine {
  struct stream_engine_cfg cfg;
  unsigned nparts;
  struct periodic *ticker;
  struct spart parts[STREAM_MAX_PARTITIONS];
};

uint64_t stream_engine_mono_ms(const struct stream_engine *e) {
  return e->cfg.mono_ms ? e->cfg.mono_ms(e->cfg.clock_arg) : clock_mono_ns() / 1000000;
}

int64_t stream_engine_wall_ns(const struct stream_engine *e) {
  if (e->cfg.wall_ms)
    return (int64_t)e->cfg.wall_ms(e->cfg.clock_arg) * 1000000;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

unsigned stream_engine_partition(const struct stream_engine *e, const char *key) {
  return stream_partition(key, e->nparts);
}

unsigned stream_engine_partitions(const struct stream_engine *e) { return e->nparts; }

void stream_engine_lock(struct stream_engine *e, unsigned part) {
  pthread_mutex_lock(&e->parts[part].lock);
}

void stream_engine_unlock(struct stream_engine *e, unsigned part) {
  pthread_mutex_unlock(&e->parts[part].lock);
}

void stream_engine_handoff(struct stream_engine *e, unsigned part, void (*fn)(void *ctx),
                           void *ctx) {
  struct spart *p = &e->parts[part];
  pthread_mutex_lock(&p->out_lock);
  pthread_mutex_unlock(&p->lock);
  fn(ctx);
  pthread_mutex_unlock(&p->out_lock);
}

static void on_window(const struct window_result *r, void *arg) {
  struct spart *p = arg;
  p->windows++;
  if (p->e->cfg.emit)
    p->e->cfg.emit(r, p->index, p->e->cfg.arg);
}

int stream_engine_add(struct stream_engine *e, unsigned part, const char *key, int64_t ts_ns,
                      double value, uint64_t now_ms, int64_t wall_ns) {
  struct spart *p = &e->parts[part];
  int rc = stream_add_at(p->stream, key, ts_ns, value, wall_ns);
  if (rc < 0) /* its windows are beyond int64: ahead or behind everything */
    rc = ts_ns > wall_ns ? STREAM_AHEAD : STREAM_LATE;
  p->ahead += rc == STREAM_AHEAD;
  if (rc == STREAM_ADDED && ts_ns > p->max_ts) {
    p->max_ts = ts_ns;
    p->max_mono_ms = now_ms;
  }
  return rc;
}

/* Partitions gone quiet: event time moves on with the clock (and, when
 * bounded, never past the wall clock). Under p->lock. */
static void idle_step(struct stream_engine *e, struct spart *p, uint64_t now, int64_t wall) {
  if (p->max_ts == INT64_MIN || now - p->max_mono_ms < e->cfg.idle_ms)
    return;
  int64_t wm;
  if (time_add(p->max_ts, (int64_t)(now - p->max_mono_ms) * 1000000, &wm))
    wm = INT64_MAX;
  if (e->cfg.window.ahead_ns > 0 && wm > wall)
    wm = wall;
  if (!time_sub(wm, e->cfg.window.lateness_ns, &wm))
    stream_advance(p->stream, wm);
}

void stream_engine_tick(struct stream_engine *e) {
  for (unsigned i = 0; i < e->nparts; i++) {
    struct spart *p = &e->parts[i];
    pthread_mutex_lock(&p->lock);
    uint64_t now = stream_engine_mono_ms(e);
    idle_step(e, p, now, stream_engine_wall_ns(e));
    if (e->cfg.tick)
      e->cfg.tick(e, i, now, e->cfg.arg); /* it unlocks */
    else
      pthread_mutex_unlock(&p->lock);
  }
}

static uint64_t ticker_run(void *arg) {
  stream_engine_tick(arg);
  return 0;
}

void stream_engine_stats(struct stream_engine *e, struct stream_engine_stats *out) {
  memset(out, 0, sizeof *out);
  for (unsigned i = 0; i < e->nparts; i++) {
    struct spart *p = &e->parts[i];
    pthread_mutex_lock(&p->lock);
    out->late += stream_late(p->stream);
    out->ahead += p->ahead;
    out->windows += p->windows;
    out->keys += stream_keys(p->stream);
    out->key_bytes = stream_key_bytes(p->stream);
    pthread_mutex_unlock(&p->lock);
  }
}

int stream_engine_create(struct stream_engine **out, const struct stream_engine_cfg *cfg) {
  if (cfg->partitions < 1 || cfg->partitions > STREAM_MAX_PARTITIONS || !cfg->idle_ms)
    return GROVE_EINVAL;
  struct stream_engine *e = calloc(1, sizeof *e);
  if (!e)
    return GROVE_ENOMEM;
  e->cfg = *cfg;
  int rc = 0;
  for (unsigned i = 0; i < cfg->partitions && !rc; i++, e->nparts++) {
    struct spart *p = &e->parts[i];
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->out_lock, NULL);
    p->e = e;
    p->index = i;
    p->max_ts = INT64_MIN;
    rc = stream_create(&p->stream, &cfg->window, on_window, p);
  }
  if (!rc && cfg->tick_ms)
    rc = periodic_start(&e->ticker, cfg->tick_ms, ticker_run, e);
  if (rc) {
    stream_engine_destroy(e);
    return rc;
  }
  *out = e;
  return 0;
}

void stream_engine_destroy(struct stream_engine *e) {
  if (!e)
    return;
  periodic_stop(e->ticker);
  for (unsigned i = 0; i < e->nparts; i++) {
    stream_destroy(e->parts[i].stream);
    pthread_mutex_destroy(&e->parts[i].lock);
    pthread_mutex_destroy(&e->parts[i].out_lock);
  }
  free(e);
}
