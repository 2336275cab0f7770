/* series.c — write-ahead log with group commit, the in-memory head, and
 * chunks in SQLite. */
#include "series/series.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/log.h"
#include "core/map.h"
#include "core/periodic.h"
#include "core/util.h"
#include "series/internal.h"
#include "series/key.h"

#define KEY_MAX SERIES_KEY_MAX
#define REC_HEADER 9 /* u32 length, u32 crc, u8 type */

/* ---- the head: per series, points sorted by time ------------------------- */

static int head_grow(struct head *h) {
  if (h->n < h->cap)
    return 0;
  size_t cap = h->cap ? h->cap * 2 : 16;
  struct chunk_point *p = realloc(h->pts, cap * sizeof *p);
  if (!p)
    return GROVE_ENOMEM;
  h->pts = p;
  h->cap = cap;
  return 0;
}

/* Points that come in order (the common case) are appended without a
 * search. */
int head_put(struct head *h, int64_t ts, double v, bool replace) {
  size_t at = h->n;
  if (h->n && h->pts[h->n - 1].ts_ns >= ts) {
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (h->pts[mid].ts_ns < ts)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo < h->n && h->pts[lo].ts_ns == ts) {
      if (replace)
        h->pts[lo].value = v;
      return 0;
    }
    at = lo;
  }
  if (head_grow(h))
    return GROVE_ENOMEM;
  memmove(h->pts + at + 1, h->pts + at, (h->n - at) * sizeof *h->pts);
  h->pts[at] = (struct chunk_point){ts, v};
  h->n++;
  return 0;
}

/* ---- the store ------------------------------------------------------------- */

struct batch {
  struct batch *next;
  series_done_fn done;
  void *arg;
  size_t n;
  struct series_point pts[];
};

/* Where the store's durable writes stand, for series_health: the last
 * error of each path, cleared by its next success (under lock). */
enum trouble_path { TROUBLE_LOG, TROUBLE_CHUNKS, TROUBLE_N };

struct series {
  int lock_fd;             /* the directory's LOCK file, flock'ed; -1: none */
  int wal;                 /* fd of series.wal */
  off_t wal_end;           /* the end of its last good record (the writer's;
                            * a flush sets it while the writer is idle) */
  bool wal_dirty;          /* bytes past wal_end not cut yet: no append
                            * until they are (under lock) */
  char trouble[TROUBLE_N][640]; /* "" or what went wrong (under lock) */
  int64_t chunk_width;     /* no chunk spans more (set at open) */
  uint64_t read_work;      /* points decoded, copied and compared by reads (atomic) */
  char wal_path[4096], old_path[4096]; /* series.wal, series.wal.old */
  sqlite3 *db;             /* reads, under lock */
  sqlite3 *wdb;            /* chunk writes, under flush_lock */
  pthread_mutex_t lock;    /* keys, heads, frozen, queue */
  pthread_mutex_t flush_lock; /* one flush at a time */
  pthread_cond_t work, idle;
  struct map ids;          /* key -> id (as uintptr_t) */
  char **keys;             /* id -> key */
  uint32_t nkeys, capkeys, logged; /* keys [logged, nkeys) are not in the log yet */
  uint32_t keys_saved;     /* keys [0, keys_saved) are in series.db (flush_lock) */
  bool keep_elsewhere;     /* series_retention_elsewhere: flushes drop nothing */
  int64_t keep_ns[3];      /* retention of raw points, 1m and 1h rollups; 0: forever
                            * (set under both locks, read under either) */
  /* PostgreSQL mode: points go there at once; minutes written since the
   * last rollup pass (under lock) */
  struct pgseries *pg;
  struct stypes *types;    /* field types by key (types.c) */
  int64_t *touched;
  size_t ntouched, captouched;
  struct head *heads;      /* by id */
  size_t head_points;
  /* Points on their way into chunks: the heads as they were when the log
   * was set aside (series.wal.old), by id; reads still see them. */
  struct head *frozen;
  uint32_t nfrozen;
  struct batch *queue, *tail;
  bool busy, stop;
  pthread_t writer;
  /* autoflush */
  struct periodic *flusher;
  bool flushing;
  uint64_t flush_ms;
  size_t flush_points;
};

/* snprintf for messages that name a path: cut short if they must be. */
__attribute__((format(printf, 3, 4))) static void say(char *out, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, n, fmt, ap);
  va_end(ap);
}

static ssize_t sys_write(int fd, const void *buf, size_t n) { return write(fd, buf, n); }

struct series_io series_io = {sys_write, fdatasync, ftruncate, fsync};

/* Notes (why non-NULL) or clears (why NULL) trouble on one write path
 * (under lock); logged once as it starts and once as it ends. */
static void trouble_set(struct series *s, enum trouble_path path, const char *why) {
  static const char *const names[] = {"series log", "series chunks"};
  static const char *const pg_names[] = {"series points in PostgreSQL",
                                         "series rollups in PostgreSQL"};
  const char *name = s->pg ? pg_names[path] : names[path];
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

static void put32(struct buf *b, uint32_t v) {
  unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 24)};
  buf_append(b, x, 4);
}

static void put64(struct buf *b, uint64_t v) {
  put32(b, (uint32_t)v);
  put32(b, (uint32_t)(v >> 32));
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* A record: length and CRC of what follows them (type and payload). */
static void record(struct buf *b, char type, const struct buf *payload) {
  uLong crc = crc32(0, (const Bytef *)&type, 1);
  crc = crc32(crc, (const Bytef *)payload->data, (uInt)payload->len);
  put32(b, (uint32_t)payload->len + 1);
  put32(b, (uint32_t)crc);
  buf_putc(b, type);
  buf_append(b, payload->data, payload->len);
}

static int apply_key(struct series *s, uint32_t id, const char *key, size_t len);
static int migrate_keys(struct series *s, char *err, size_t errlen);
static int apply_points(struct series *s, const struct series_point *p, size_t n);

/* Replays a log; cuts a torn or damaged tail. OUT: *end (may be NULL),
 * where its last good record ends. */
static int replay(struct series *s, int wal, off_t *end) {
  struct stat st;
  if (fstat(wal, &st) < 0)
    return GROVE_EIO;
  size_t size = (size_t)st.st_size, off = 0;
  unsigned char *data = malloc(size ? size : 1);
  if (!data)
    return GROVE_ENOMEM;
  if (pread(wal, data, size, 0) != (ssize_t)size) {
    free(data);
    return GROVE_EIO;
  }
  int rc = 0;
  while (off + REC_HEADER <= size) {
    uint32_t len = get32(data + off), crc = get32(data + off + 4);
    if (len < 1 || len > size - off - 8)
      break;
    const unsigned char *body = data + off + 8;
    if (crc32(0, body, len) != crc)
      break;
    char type = (char)body[0];
    const unsigned char *p = body + 1;
    size_t pl = len - 1;
    if (type == 'K' && pl >= 4) {
      rc = apply_key(s, get32(p), (const char *)p + 4, pl - 4);
    } else if (type == 'P' && pl % 20 == 0) {
      for (size_t i = 0; i < pl / 20 && !rc; i++) {
        struct series_point pt = {get32(p + 20 * i), (int64_t)get64(p + 20 * i + 4), 0};
        uint64_t bits = get64(p + 20 * i + 12);
        memcpy(&pt.value, &bits, 8);
        rc = apply_points(s, &pt, 1);
      }
    } else {
      break;
    }
    if (rc)
      break;
    off += 8 + len;
  }
  free(data);
  if (!rc && off < size) {
    log_warn(NULL, "series log has a torn tail, cut", "bytes=%zu", size - off);
    if (ftruncate(wal, (off_t)off) < 0 || fsync(wal) < 0)
      rc = GROVE_EIO;
  }
  s->logged = s->nkeys;
  if (end)
    *end = (off_t)off;
  return rc;
}

static int apply_key(struct series *s, uint32_t id, const char *key, size_t len) {
  if (len == 0 || len > KEY_MAX)
    return GROVE_EINVAL;
  if (id >= s->capkeys) { /* grows by doubling: ids are dense */
    uint32_t cap = s->capkeys ? s->capkeys : 64;
    while (cap <= id)
      cap *= 2;
    char **keys = realloc(s->keys, (size_t)cap * sizeof *keys);
    if (!keys)
      return GROVE_ENOMEM;
    s->keys = keys;
    struct head *heads = realloc(s->heads, (size_t)cap * sizeof *heads);
    if (!heads)
      return GROVE_ENOMEM;
    s->heads = heads;
    for (uint32_t i = s->capkeys; i < cap; i++) {
      s->keys[i] = NULL;
      s->heads[i] = (struct head){0};
    }
    s->capkeys = cap;
  }
  if (id >= s->nkeys)
    s->nkeys = id + 1;
  if (s->keys[id])
    return 0;
  s->keys[id] = strndup(key, len);
  if (!s->keys[id] || map_put(&s->ids, s->keys[id], (void *)(uintptr_t)(id + 1), NULL))
    return GROVE_ENOMEM;
  return 0;
}

static int apply_points(struct series *s, const struct series_point *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i].id >= s->nkeys || !s->keys[p[i].id])
      return GROVE_EINVAL;
    struct head *h = &s->heads[p[i].id];
    size_t before = h->n;
    int rc = head_put(h, p[i].ts_ns, p[i].value, true);
    if (rc)
      return rc;
    s->head_points += h->n - before;
  }
  return 0;
}

int series_id(struct series *s, const char *key, uint32_t *id) {
  size_t len = strlen(key);
  if (len == 0 || len > KEY_MAX)
    return GROVE_EINVAL;
  pthread_mutex_lock(&s->lock);
  uintptr_t v = (uintptr_t)map_get(&s->ids, key);
  int rc = 0;
  if (v) {
    *id = (uint32_t)(v - 1);
  } else if (s->pg) { /* ids come from PostgreSQL, shared by every instance */
    pthread_mutex_unlock(&s->lock);
    rc = pgs_key_id(s->pg, key, true, id);
    pthread_mutex_lock(&s->lock);
    if (!rc)
      rc = apply_key(s, *id, key, len);
  } else {
    *id = s->nkeys;
    rc = apply_key(s, s->nkeys, key, len); /* logged with the next batch */
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

int series_cached(struct series *s, const char *key, uint32_t *id) {
  pthread_mutex_lock(&s->lock);
  uintptr_t v = (uintptr_t)map_get(&s->ids, key);
  pthread_mutex_unlock(&s->lock);
  if (!v)
    return GROVE_ENOENT;
  *id = (uint32_t)(v - 1);
  return 0;
}

int series_ids(struct series *s, const char *const *keys, size_t n, uint32_t *ids) {
  if (!s->pg) {
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
      rc = series_id(s, keys[i], &ids[i]);
    return rc;
  }
  const char **missing = malloc((n ? n : 1) * sizeof *missing);
  size_t *where = malloc((n ? n : 1) * sizeof *where);
  uint32_t *got = malloc((n ? n : 1) * sizeof *got);
  int rc = missing && where && got ? 0 : GROVE_ENOMEM;
  size_t nm = 0;
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; !rc && i < n; i++) {
    size_t len = strlen(keys[i]);
    if (len == 0 || len > KEY_MAX) {
      rc = GROVE_EINVAL;
      break;
    }
    uintptr_t v = (uintptr_t)map_get(&s->ids, keys[i]);
    if (v) {
      ids[i] = (uint32_t)(v - 1);
    } else {
      missing[nm] = keys[i];
      where[nm++] = i;
    }
  }
  pthread_mutex_unlock(&s->lock);
  if (!rc && nm && !(rc = pgs_key_ids(s->pg, missing, nm, got))) {
    pthread_mutex_lock(&s->lock);
    for (size_t k = 0; k < nm && !rc; k++) {
      ids[where[k]] = got[k];
      rc = apply_key(s, got[k], missing[k], strlen(missing[k]));
    }
    pthread_mutex_unlock(&s->lock);
  }
  free(missing);
  free(where);
  free(got);
  return rc;
}

enum series_type series_type_cached(struct series *s, const char *key) {
  return (enum series_type)stypes_cached(s->types, key);
}

int series_types_claim(struct series *s, const char *const *keys, const uint8_t *types,
                       size_t n, uint8_t *got) {
  return stypes_claim(s->types, keys, types, n, got);
}

int series_find(struct series *s, const char *key, uint32_t *id) {
  pthread_mutex_lock(&s->lock);
  uintptr_t v = (uintptr_t)map_get(&s->ids, key);
  pthread_mutex_unlock(&s->lock);
  if (!v && s->pg) { /* another instance may have made it */
    size_t len = strlen(key);
    if (len == 0 || len > KEY_MAX)
      return GROVE_ENOENT;
    int rc = pgs_key_id(s->pg, key, false, id);
    if (!rc) {
      pthread_mutex_lock(&s->lock);
      rc = apply_key(s, *id, key, len);
      pthread_mutex_unlock(&s->lock);
    }
    return rc;
  }
  if (!v)
    return GROVE_ENOENT;
  *id = (uint32_t)(v - 1);
  return 0;
}

/* ---- the writer: group commit ------------------------------------------------ */

/* Tells every batch of a group how its write went, and frees them. */
static void tell_group(struct batch *group, int rc) {
  while (group) {
    struct batch *next = group->next;
    if (group->done)
      group->done(rc, group->arg);
    free(group);
    group = next;
  }
}

/* The retention cut-off now - keep - extra; INT64_MIN (nothing to drop)
 * when that is before any time. */
static int64_t keep_cutoff(int64_t keep, int64_t extra) {
  int64_t t;
  if (time_sub((int64_t)clock_wall_ms() * 1000000, keep, &t) || time_sub(t, extra, &t))
    return INT64_MIN;
  return t;
}

/* Remembers a minute written since the last rollup pass (under lock).
 * Points outside the rollups' range have no minute to remember. */
static void touch(struct series *s, int64_t ts) {
  if (!rollup_covers(ts))
    return;
  int64_t m = time_floor_div(ts, MINUTE_NS) * MINUTE_NS; /* in range: fits */
  for (size_t i = s->ntouched, k = 0; i-- > 0 && k < 4; k++) /* the common case: the same few */
    if (s->touched[i] == m)
      return;
  if (s->ntouched == s->captouched) {
    size_t cap = s->captouched ? s->captouched * 2 : 64;
    int64_t *t = realloc(s->touched, cap * sizeof *t);
    if (!t)
      return; /* that minute's rollup is then computed at query time from the points */
    s->touched = t;
    s->captouched = cap;
  }
  s->touched[s->ntouched++] = m;
}

/* A group commit in PostgreSQL mode: one COPY, then every batch told. */
static void write_group_pg(struct series *s, struct batch *group) {
  size_t n = 0;
  for (struct batch *b = group; b; b = b->next)
    n += b->n;
  struct series_point *all = malloc((n ? n : 1) * sizeof *all);
  int rc = all ? 0 : GROVE_ENOMEM;
  size_t at = 0;
  for (struct batch *b = group; all && b; b = b->next) {
    memcpy(all + at, b->pts, b->n * sizeof *all);
    at += b->n;
  }
  int64_t keep_after = series_oldest_kept(s);
  char why[512] = "out of memory";
  if (!rc)
    rc = pgs_write(s->pg, all, n, keep_after, why, sizeof why);
  pthread_mutex_lock(&s->lock);
  if (!rc) {
    for (size_t i = 0; i < n; i++)
      touch(s, all[i].ts_ns);
    trouble_set(s, TROUBLE_LOG, NULL);
  } else {
    trouble_set(s, TROUBLE_LOG, why);
  }
  pthread_mutex_unlock(&s->lock);
  free(all);
  tell_group(group, rc);
}

/* Appends a group's records to the log and syncs them. On error, why
 * says what failed; the log may then hold part of them. */
static int wal_write(struct series *s, int wal, const struct buf *out, char *why, size_t n) {
  size_t done = 0;
  while (done < out->len) {
    ssize_t w = series_io.write(wal, out->data + done, out->len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      say(why, n, "cannot write '%s': %s", s->wal_path,
               w < 0 ? strerror(errno) : "nothing written");
      return GROVE_EIO;
    }
    done += (size_t)w;
  }
  if (series_io.fdatasync(wal) < 0) {
    say(why, n, "cannot sync '%s': %s", s->wal_path, strerror(errno));
    return GROVE_EIO;
  }
  return 0;
}

/* Cuts the log back to the end of its last good record, durably. Returns
 * 0, or GROVE_EIO with what failed added to why (after a "; " when it
 * says something already). */
static int cut_log(struct series *s, int wal, off_t end, char *why, size_t n) {
  if (series_io.ftruncate(wal, end) == 0 && series_io.fsync(wal) == 0)
    return 0;
  size_t l = strlen(why);
  say(why + l, n - l, "%scannot cut '%s' back to its last good record: %s", l ? "; " : "",
      s->wal_path, strerror(errno));
  return GROVE_EIO;
}

static void *writer_main(void *arg) {
  struct series *s = arg;
  struct buf out, payload;
  buf_init(&out, 0);
  buf_init(&payload, 0);
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (!s->queue && !s->stop)
      pthread_cond_wait(&s->work, &s->lock);
    if (!s->queue && s->stop)
      break;
    struct batch *group = s->queue;
    s->queue = s->tail = NULL;
    s->busy = true;
    if (s->pg) {
      pthread_mutex_unlock(&s->lock);
      write_group_pg(s, group);
      pthread_mutex_lock(&s->lock);
      s->busy = false;
      pthread_cond_broadcast(&s->idle);
      continue;
    }
    /* new keys first, then every batch of the group, in one write */
    buf_reset(&out);
    for (uint32_t id = s->logged; id < s->nkeys; id++) {
      buf_reset(&payload);
      put32(&payload, id);
      buf_puts(&payload, s->keys[id]);
      record(&out, 'K', &payload);
    }
    uint32_t logged = s->nkeys;
    int wal = s->wal; /* a flush sets the log aside only while the writer is idle */
    off_t end = s->wal_end;
    bool dirty = s->wal_dirty;
    pthread_mutex_unlock(&s->lock);
    for (struct batch *b = group; b; b = b->next) {
      buf_reset(&payload);
      for (size_t i = 0; i < b->n; i++) {
        uint64_t bits;
        memcpy(&bits, &b->pts[i].value, 8);
        put32(&payload, b->pts[i].id);
        put64(&payload, (uint64_t)b->pts[i].ts_ns);
        put64(&payload, bits);
      }
      record(&out, 'P', &payload);
    }
    /* Nothing is appended after bytes a failed write left: they are cut
     * first, and while they cannot be, writes are refused. */
    char why[512] = "";
    int rc = 0;
    if (dirty && !cut_log(s, wal, end, why, sizeof why))
      dirty = false;
    if (dirty) {
      rc = GROVE_EIO;
    } else if ((rc = wal_write(s, wal, &out, why, sizeof why))) {
      dirty = cut_log(s, wal, end, why, sizeof why) != 0;
    }
    pthread_mutex_lock(&s->lock);
    s->wal_dirty = dirty;
    if (!rc) {
      s->wal_end = end + (off_t)out.len;
      s->logged = logged;
      trouble_set(s, TROUBLE_LOG, NULL);
      for (struct batch *b = group; b; b = b->next)
        if (apply_points(s, b->pts, b->n))
          rc = GROVE_ENOMEM;
      if (s->flushing && s->head_points >= s->flush_points)
        periodic_wake(s->flusher);
    } else {
      trouble_set(s, TROUBLE_LOG, why);
    }
    pthread_mutex_unlock(&s->lock);
    tell_group(group, rc);
    pthread_mutex_lock(&s->lock);
    s->busy = false;
    pthread_cond_broadcast(&s->idle);
  }
  pthread_mutex_unlock(&s->lock);
  buf_release(&out);
  buf_release(&payload);
  return NULL;
}

int series_append(struct series *s, const struct series_point *pts, size_t n,
                  series_done_fn done, void *arg) {
  struct batch *b = malloc(sizeof *b + n * sizeof *pts);
  if (!b)
    return GROVE_ENOMEM;
  b->next = NULL;
  b->done = done;
  b->arg = arg;
  b->n = n;
  memcpy(b->pts, pts, n * sizeof *pts);
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < n; i++)
    if (pts[i].id >= s->nkeys || !s->keys[pts[i].id]) {
      pthread_mutex_unlock(&s->lock);
      free(b);
      return GROVE_EINVAL;
    }
  if (s->tail)
    s->tail->next = b;
  else
    s->queue = b;
  s->tail = b;
  pthread_cond_signal(&s->work);
  pthread_mutex_unlock(&s->lock);
  return 0;
}

struct waiter {
  pthread_mutex_t m;
  pthread_cond_t c;
  bool done;
  int rc;
};

static void wake(int rc, void *arg) {
  struct waiter *w = arg;
  pthread_mutex_lock(&w->m);
  w->rc = rc;
  w->done = true;
  pthread_cond_signal(&w->c);
  pthread_mutex_unlock(&w->m);
}

int series_append_sync(struct series *s, const struct series_point *pts, size_t n) {
  struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
  int rc = series_append(s, pts, n, wake, &w);
  if (rc)
    return rc;
  pthread_mutex_lock(&w.m);
  while (!w.done)
    pthread_cond_wait(&w.c, &w.m);
  pthread_mutex_unlock(&w.m);
  return w.rc;
}

/* ---- autoflush ------------------------------------------------------------------- */

/* How soon a failed flush is tried again (at most its interval). */
#define FLUSH_RETRY_MS 5000

/* Each --series-flush (sooner when the head is full, or after a failure):
 * points in memory into chunks, or in PostgreSQL mode the minutes written
 * rolled up; then retention, unless another process applies it. */
static uint64_t flusher_run(void *arg) {
  struct series *s = arg;
  pthread_mutex_lock(&s->lock);
  bool keeps = !s->keep_elsewhere && (s->keep_ns[0] || s->keep_ns[1] || s->keep_ns[2]);
  bool idle = s->pg ? !s->ntouched && !keeps : !s->head_points && !s->frozen;
  pthread_mutex_unlock(&s->lock);
  if (idle)
    return 0;
  int rc = series_flush(s); /* an error is logged once, with its path, as trouble */
  if (rc) /* the next try comes sooner (the disk may have room again) */
    return s->flush_ms > FLUSH_RETRY_MS ? FLUSH_RETRY_MS : 0;
  malloc_trim(0); /* the heads just freed: give the memory back */
  pthread_mutex_lock(&s->lock);
  bool full = s->head_points >= s->flush_points;
  pthread_mutex_unlock(&s->lock);
  return full ? 1 : 0;
}

int series_autoflush(struct series *s, uint64_t interval_ms, size_t max_points) {
  pthread_mutex_lock(&s->lock);
  if (s->flushing) {
    pthread_mutex_unlock(&s->lock);
    return GROVE_EEXIST;
  }
  s->flush_ms = interval_ms ? interval_ms : 600000;
  s->flush_points = max_points ? max_points : (size_t)-1;
  int rc = periodic_start(&s->flusher, s->flush_ms, flusher_run, s);
  s->flushing = rc == 0;
  pthread_mutex_unlock(&s->lock);
  return rc;
}

/* ---- chunks --------------------------------------------------------------------- */

/* fsyncs the directory holding path, so renames and new files in it
 * last. Returns 0 or -1 (errno set). */
static int sync_dir(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = series_io.fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

static int exec(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : GROVE_ESTORE;
}

/* Writes frozen heads into chunks, with the keys they name, in one
 * transaction on the flush connection. Takes no store lock: appends and
 * reads go on meanwhile. */
/* Chunks never cross a CHUNK_SPAN boundary of time, so retention, which
 * drops whole chunks, is that fine. */
static int64_t chunk_span(int64_t ts) { return ts / CHUNK_SPAN - (ts % CHUNK_SPAN != 0 && ts < 0); }

/* How many of the points (at most max) go in one chunk. */
static size_t run_length(const struct chunk_point *pts, size_t n, size_t max) {
  size_t k = 0;
  int64_t span = chunk_span(pts[0].ts_ns);
  while (k < n && k < max && chunk_span(pts[k].ts_ns) == span)
    k++;
  return k;
}

/* Writes one series' points as chunks. Points that all come after the
 * series' newest chunk first fill that chunk up (read, decoded, written
 * back), so a series written a few points a flush still gets full chunks. */
static int put_series_chunks(sqlite3_stmt *last, sqlite3_stmt *ins, sqlite3_stmt *upd, uint32_t id,
                             const struct chunk_point *pts, size_t n, struct buf *enc,
                             int64_t *prev_end) {
  static _Thread_local struct chunk_point merged[CHUNK_MAX];
  int rc = 0;
  size_t at = 0;
  *prev_end = INT64_MIN;
  sqlite3_bind_int64(last, 1, id);
  if (sqlite3_step(last) == SQLITE_ROW) {
    sqlite3_int64 seq = sqlite3_column_int64(last, 0);
    int64_t end = sqlite3_column_int64(last, 1);
    *prev_end = end;
    size_t had = (size_t)sqlite3_column_int64(last, 2);
    int64_t start = sqlite3_column_int64(last, 4);
    size_t k;
    if (end < pts[0].ts_ns && had < CHUNK_MAX &&
        chunk_span(start) == chunk_span(pts[0].ts_ns) &&
        chunk_decode(sqlite3_column_blob(last, 3), (size_t)sqlite3_column_bytes(last, 3), merged,
                     &k) == 0 &&
        k == had) {
      size_t take = run_length(pts, n, CHUNK_MAX - k);
      memcpy(merged + k, pts, take * sizeof *pts);
      buf_reset(enc);
      if (!(rc = chunk_encode(merged, k + take, enc))) {
        sqlite3_bind_int64(upd, 1, merged[k + take - 1].ts_ns);
        sqlite3_bind_int64(upd, 2, (sqlite3_int64)(k + take));
        sqlite3_bind_blob(upd, 3, enc->data, (int)enc->len, SQLITE_STATIC);
        sqlite3_bind_int64(upd, 4, seq);
        if (sqlite3_step(upd) != SQLITE_DONE)
          rc = GROVE_ESTORE;
        sqlite3_reset(upd);
        at = take;
      }
    }
  }
  sqlite3_reset(last);
  for (size_t k; !rc && at < n; at += k) {
    k = run_length(pts + at, n - at, CHUNK_MAX);
    buf_reset(enc);
    if ((rc = chunk_encode(pts + at, k, enc)))
      break;
    sqlite3_bind_int64(ins, 1, id);
    sqlite3_bind_int64(ins, 2, pts[at].ts_ns);
    sqlite3_bind_int64(ins, 3, pts[at + k - 1].ts_ns);
    sqlite3_bind_int64(ins, 4, (sqlite3_int64)k);
    sqlite3_bind_blob(ins, 5, enc->data, (int)enc->len, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE)
      rc = GROVE_ESTORE;
    sqlite3_reset(ins);
  }
  return rc;
}

/* Why a write of chunks failed: SQLite's word for it (SQLITE_FULL: "database
 * or disk is full"), or ours. */
static void chunk_error(struct series *s, int rc, char *why, size_t n) {
  if (rc == GROVE_ESTORE)
    say(why, n, "cannot write chunks to '%s': %s", sqlite3_db_filename(s->wdb, "main"),
             sqlite3_errmsg(s->wdb));
  else
    say(why, n, "cannot write chunks: %s", grove_strerror(rc));
}

/* Writes frozen heads into chunks, with the keys they name, in one
 * transaction on the flush connection. Takes no store lock: appends and
 * reads go on meanwhile. On error, why says what failed and nothing was
 * written. */
static int write_chunks(struct series *s, const struct head *heads, uint32_t n,
                        char *const *keys, char *why, size_t whylen) {
  /* a transaction a failed COMMIT left open (SQLite may keep it after
   * SQLITE_FULL) is rolled back first */
  if (!sqlite3_get_autocommit(s->wdb))
    exec(s->wdb, "ROLLBACK");
  int rc = exec(s->wdb, "BEGIN");
  sqlite3_stmt *ins = NULL, *key = NULL, *last = NULL, *upd = NULL;
  if (!rc && (sqlite3_prepare_v2(s->wdb, "INSERT INTO chunks (series, start_ns, end_ns, "
                                         "points, data) VALUES (?, ?, ?, ?, ?)", -1, &ins,
                                 NULL) != SQLITE_OK ||
              sqlite3_prepare_v2(s->wdb, "INSERT OR IGNORE INTO series (id, key) VALUES (?, ?)",
                                 -1, &key, NULL) != SQLITE_OK ||
              sqlite3_prepare_v2(s->wdb, "SELECT seq, end_ns, points, data, start_ns FROM chunks "
                                         "WHERE series = ? ORDER BY end_ns DESC LIMIT 1", -1, &last,
                                 NULL) != SQLITE_OK ||
              sqlite3_prepare_v2(s->wdb, "UPDATE chunks SET end_ns = ?, points = ?, data = ? "
                                         "WHERE seq = ?", -1, &upd, NULL) != SQLITE_OK))
    rc = GROVE_ESTORE;
  struct rollups *roll = NULL;
  if (!rc)
    rc = rollups_prepare(s->wdb, s->chunk_width, &roll);
  struct buf enc;
  buf_init(&enc, 0);
  for (uint32_t id = 0; !rc && id < n; id++) {
    if (!keys[id])
      continue;
    if (id >= s->keys_saved) {
      sqlite3_bind_int64(key, 1, id);
      sqlite3_bind_text(key, 2, keys[id], -1, SQLITE_STATIC);
      if (sqlite3_step(key) != SQLITE_DONE)
        rc = GROVE_ESTORE;
      sqlite3_reset(key);
    }
    int64_t prev_end;
    if (!rc && heads[id].n &&
        !(rc = put_series_chunks(last, ins, upd, id, heads[id].pts, heads[id].n, &enc, &prev_end)))
      rc = rollups_update(roll, id, heads[id].pts, heads[id].n, prev_end);
  }
  if (rc)
    chunk_error(s, rc, why, whylen);
  buf_release(&enc);
  sqlite3_finalize(ins);
  sqlite3_finalize(key);
  sqlite3_finalize(last);
  sqlite3_finalize(upd);
  rollups_finish(roll);
  if (!rc && (rc = exec(s->wdb, "COMMIT")))
    chunk_error(s, rc, why, whylen);
  if (rc)
    exec(s->wdb, "ROLLBACK");
  else if (n > s->keys_saved)
    s->keys_saved = n;
  return rc;
}

/* Drops what is past its retention (under flush_lock). */
static int expire(struct series *s) {
  int rc = 0;
  if (s->keep_elsewhere)
    return 0;
  if (s->keep_ns[0]) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->wdb, "DELETE FROM chunks WHERE end_ns < ?", -1, &st, NULL) !=
        SQLITE_OK)
      return GROVE_ESTORE;
    sqlite3_bind_int64(st, 1, keep_cutoff(s->keep_ns[0], 0));
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : GROVE_ESTORE;
    sqlite3_finalize(st);
  }
  if (!rc && s->keep_ns[1])
    rc = rollups_expire(s->wdb, MINUTE_NS, keep_cutoff(s->keep_ns[1], MINUTE_NS));
  if (!rc && s->keep_ns[2])
    rc = rollups_expire(s->wdb, HOUR_NS, keep_cutoff(s->keep_ns[2], HOUR_NS));
  return rc;
}

static void heads_free(struct head *h, uint32_t n) {
  for (uint32_t i = 0; h && i < n; i++)
    free(h[i].pts);
  free(h);
}

/* Sets the log and the heads aside (under lock, the writer idle): new
 * points go to a fresh log and fresh heads while these become chunks. A
 * log a failed write left bytes in is cut first. On error, why says what
 * failed and nothing changed. */
static int set_aside(struct series *s, char *why, size_t n) {
  if (s->wal_dirty) {
    *why = '\0';
    if (cut_log(s, s->wal, s->wal_end, why, n))
      return GROVE_EIO;
    s->wal_dirty = false;
  }
  struct head *fresh = calloc(s->capkeys ? s->capkeys : 1, sizeof *fresh);
  if (!fresh) {
    snprintf(why, n, "out of memory");
    return GROVE_ENOMEM;
  }
  if (rename(s->wal_path, s->old_path) < 0) {
    say(why, n, "cannot rename '%s': %s", s->wal_path, strerror(errno));
    free(fresh);
    return GROVE_EIO;
  }
  int fd = open(s->wal_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0 || sync_dir(s->wal_path) < 0) { /* both names must survive a crash */
    say(why, n, "cannot %s '%s': %s", fd < 0 ? "create" : "sync the folder of",
             s->wal_path, strerror(errno));
    if (fd >= 0)
      close(fd);
    rename(s->old_path, s->wal_path); /* the fresh log, empty, goes */
    free(fresh);
    return GROVE_EIO;
  }
  close(s->wal);
  s->wal = fd;
  s->wal_end = 0;
  s->frozen = s->heads;
  s->nfrozen = s->nkeys;
  s->heads = fresh;
  s->head_points = 0;
  return 0;
}

/* PostgreSQL mode's flush: the minutes written since the last one rolled
 * up, then retention. */
static int flush_pg(struct series *s) {
  pthread_mutex_lock(&s->flush_lock);
  pthread_mutex_lock(&s->lock);
  int64_t *minutes = s->touched;
  size_t n = s->ntouched;
  s->touched = NULL;
  s->ntouched = s->captouched = 0;
  pthread_mutex_unlock(&s->lock);
  char why[512] = "";
  int rc = n ? pgs_rollup(s->pg, minutes, n, why, sizeof why) : 0;
  if (rc) { /* again next time */
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++)
      touch(s, minutes[i]);
    pthread_mutex_unlock(&s->lock);
  }
  free(minutes);
  if (!rc && !s->keep_elsewhere && (s->keep_ns[0] || s->keep_ns[1] || s->keep_ns[2]) &&
      (rc = pgs_expire(s->pg, s->keep_ns[0] ? keep_cutoff(s->keep_ns[0], 0) : INT64_MIN,
                       s->keep_ns[1] ? keep_cutoff(s->keep_ns[1], MINUTE_NS) : INT64_MIN,
                       s->keep_ns[2] ? keep_cutoff(s->keep_ns[2], HOUR_NS) : INT64_MIN)))
    say(why, sizeof why, "cannot drop points past retention: %s", grove_strerror(rc));
  pthread_mutex_lock(&s->lock);
  trouble_set(s, TROUBLE_CHUNKS, rc ? why : NULL);
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_unlock(&s->flush_lock);
  return rc;
}

int series_flush(struct series *s) {
  if (s->pg)
    return flush_pg(s);
  pthread_mutex_lock(&s->flush_lock);
  pthread_mutex_lock(&s->lock);
  /* the writer may be between taking a group and logging it: wait */
  while (s->busy)
    pthread_cond_wait(&s->idle, &s->lock);
  int rc = 0;
  char why[640] = "";
  if (!s->frozen) { /* else a failed flush left some: retry those first */
    if (!s->head_points) {
      pthread_mutex_unlock(&s->lock);
      pthread_mutex_unlock(&s->flush_lock);
      return 0;
    }
    rc = set_aside(s, why, sizeof why);
  }
  uint32_t n = s->nfrozen;
  char **keys = rc ? NULL : malloc((n ? n : 1) * sizeof *keys);
  if (keys)
    memcpy(keys, s->keys, n * sizeof *keys); /* the strings stay; the array may move */
  else if (!rc)
    rc = GROVE_ENOMEM;
  pthread_mutex_unlock(&s->lock);
  if (!rc)
    rc = write_chunks(s, s->frozen, n, keys, why, sizeof why);
  free(keys);
  if (!rc) {
    /* the chunks are durable: the old log and the frozen heads can go */
    pthread_mutex_lock(&s->lock);
    struct head *frozen = s->frozen;
    s->frozen = NULL;
    s->nfrozen = 0;
    pthread_mutex_unlock(&s->lock);
    heads_free(frozen, n);
    if (unlink(s->old_path) < 0 && errno != ENOENT) {
      say(why, sizeof why, "cannot remove '%s': %s", s->old_path, strerror(errno));
      rc = GROVE_EIO;
    }
  }
  if (!rc && (rc = expire(s)))
    chunk_error(s, rc, why, sizeof why);
  pthread_mutex_lock(&s->lock);
  trouble_set(s, TROUBLE_CHUNKS, rc ? why : NULL);
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_unlock(&s->flush_lock);
  return rc;
}

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
  if (rc && s->wal_dirty) {
    size_t l = strlen(why);
    snprintf(why + l, n - l, "; writes are refused until the log is cut");
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
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

size_t series_head_points(struct series *s) {
  pthread_mutex_lock(&s->lock); /* 0 in PostgreSQL mode: no points wait in memory */
  size_t n = s->head_points;
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* A series' points in memory, older first: set aside by a flush, then
 * the head (under lock; NULL where there are none). */
static void memory_layers(const struct series *s, uint32_t id, const struct head *layers[2]) {
  layers[0] = id < s->nfrozen ? &s->frozen[id] : NULL;
  layers[1] = id < s->nkeys ? &s->heads[id] : NULL;
}

/* Copies of the points in memory in [from, to), at most `limit` of each
 * layer (no read needs more), taken under the lock. OUT: mem[0..2]. */
static int copy_layers(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
                       struct merge_src mem[2]) {
  const struct head *layers[2];
  int rc = 0;
  pthread_mutex_lock(&s->lock);
  memory_layers(s, id, layers);
  for (int l = 0; l < 2; l++) {
    mem[l] = (struct merge_src){NULL, 0};
    if (!layers[l] || !layers[l]->n || rc)
      continue;
    const struct chunk_point *p = layers[l]->pts;
    size_t lo = 0, hi = layers[l]->n, n = layers[l]->n;
    while (lo < hi) { /* the first at or after from */
      size_t mid = lo + (hi - lo) / 2;
      if (p[mid].ts_ns < from)
        lo = mid + 1;
      else
        hi = mid;
    }
    size_t end = lo;
    while (end < n && end - lo < limit && p[end].ts_ns < to)
      end++;
    if (end == lo)
      continue;
    struct chunk_point *c = malloc((end - lo) * sizeof *c);
    if (!c) {
      rc = GROVE_ENOMEM;
      continue;
    }
    memcpy(c, p + lo, (end - lo) * sizeof *c);
    mem[l] = (struct merge_src){c, end - lo};
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

/* Every point of [from, to) to fn, in time order: memory, then chunks,
 * merged (the points in memory are copied first, under the lock; a flush
 * committing meanwhile only adds to the chunks points already copied, so
 * every point is seen). `limit`: fn stops the read by then. */
static int read_points(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
                       merge_fn fn, void *arg) {
  struct merge_src mem[2];
  int rc = copy_layers(s, id, from, to, limit, mem);
  uint64_t work = 0;
  if (!rc)
    rc = merge_read(s->db, id, from, to, s->chunk_width, mem, 2, fn, arg, &work);
  __atomic_add_fetch(&s->read_work, work, __ATOMIC_RELAXED);
  free((void *)mem[0].pts);
  free((void *)mem[1].pts);
  return rc;
}

struct collect {
  struct head acc;
  size_t limit;
  bool more;
  int64_t next;
};

static int collect_point(int64_t ts, double v, void *arg) {
  struct collect *c = arg;
  if (c->acc.n == c->limit) { /* one past the limit: where to go on */
    c->more = true;
    c->next = ts;
    return 1;
  }
  if (c->acc.n == c->acc.cap) {
    size_t cap = c->acc.cap ? c->acc.cap * 2 : 64;
    struct chunk_point *g = realloc(c->acc.pts, cap * sizeof *g);
    if (!g)
      return GROVE_ENOMEM;
    c->acc.pts = g;
    c->acc.cap = cap;
  }
  c->acc.pts[c->acc.n++] = (struct chunk_point){ts, v};
  return 0;
}

int series_read(struct series *s, uint32_t id, int64_t from, int64_t to, size_t limit,
                struct chunk_point **out, size_t *n, bool *more, int64_t *next) {
  if (!limit)
    return GROVE_EINVAL;
  struct collect c = {{NULL, 0, 0}, limit, false, 0};
  int rc;
  if (s->pg) {
    rc = pgs_range(s->pg, id, from, to, limit, &c.acc, &c.more, &c.next);
  } else {
    size_t want = limit == SIZE_MAX ? limit : limit + 1;
    rc = read_points(s, id, from, to, want, collect_point, &c);
  }
  if (rc) {
    free(c.acc.pts);
    return rc;
  }
  *out = c.acc.pts;
  *n = c.acc.n;
  if (more)
    *more = c.more;
  if (next)
    *next = c.more ? c.next : 0;
  return 0;
}

int series_range(struct series *s, uint32_t id, int64_t from, int64_t to,
                 struct chunk_point **out, size_t *n) {
  return series_read(s, id, from, to, SIZE_MAX, out, n, NULL, NULL);
}

uint64_t series_read_work(struct series *s) {
  return __atomic_load_n(&s->read_work, __ATOMIC_RELAXED);
}

/* ---- life ------------------------------------------------------------------------ */

static int load_keys(struct series *s) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT id, key FROM series ORDER BY id", -1, &st, NULL) !=
      SQLITE_OK)
    return GROVE_ESTORE;
  int rc = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW)
    rc = apply_key(s, (uint32_t)sqlite3_column_int64(st, 0),
                   (const char *)sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
  sqlite3_finalize(st);
  s->keys_saved = s->nkeys; /* ids are dense: every one below is saved */
  return rc;
}

/* How much time the widest chunk spans: CHUNK_SPAN, or for a database
 * with chunks from before chunks kept within spans, their widest, found
 * once (a scan) and kept in series_meta. Reads start that far before. */
static int load_width(struct series *s) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT value FROM series_meta WHERE name = 'chunk_width'", -1,
                         &st, NULL) != SQLITE_OK)
    return GROVE_ESTORE;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW)
    s->chunk_width = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (step == SQLITE_ROW)
    return 0;
  if (step != SQLITE_DONE ||
      sqlite3_prepare_v2(s->db, "INSERT INTO series_meta (name, value) SELECT 'chunk_width', "
                                "max(?, coalesce(max(end_ns - start_ns), 0)) FROM chunks",
                         -1, &st, NULL) != SQLITE_OK)
    return GROVE_ESTORE;
  sqlite3_bind_int64(st, 1, CHUNK_SPAN);
  step = sqlite3_step(st);
  sqlite3_finalize(st);
  if (step != SQLITE_DONE)
    return GROVE_ESTORE;
  return load_width(s);
}

static bool exists(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  bool yes = false;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    yes = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  return yes;
}

/* Chunks written before rollups existed get theirs, once. */
static int backfill_rollups(struct series *s) {
  if (exists(s->wdb, "SELECT EXISTS (SELECT 1 FROM rollups)") ||
      !exists(s->wdb, "SELECT EXISTS (SELECT 1 FROM chunks)"))
    return 0;
  log_info(NULL, "computing rollups of existing chunks", "series=%u", s->nkeys);
  struct rollups *r;
  int rc = exec(s->wdb, "BEGIN");
  if (!rc && (rc = rollups_prepare(s->wdb, s->chunk_width, &r)) == 0) {
    for (uint32_t id = 0; !rc && id < s->nkeys; id++) {
      struct head acc = {0};
      rc = read_chunks(s->wdb, id, INT64_MIN, INT64_MAX, s->chunk_width, &acc);
      if (!rc && acc.n)
        rc = rollups_update(r, id, acc.pts, acc.n, INT64_MIN);
      free(acc.pts);
    }
    rollups_finish(r);
  }
  if (!rc)
    rc = exec(s->wdb, "COMMIT");
  else
    exec(s->wdb, "ROLLBACK");
  return rc;
}

/* Frees what open made; the threads must be gone. */
static void series_free(struct series *s) {
  if (s->wal >= 0)
    close(s->wal);
  if (s->lock_fd >= 0)
    close(s->lock_fd); /* releases the lock */
  sqlite3_close(s->db);
  sqlite3_close(s->wdb);
  stypes_close(s->types);
  pgs_close(s->pg);
  free(s->touched);
  for (uint32_t i = 0; i < s->nkeys; i++)
    free(s->keys[i]);
  free(s->keys);
  heads_free(s->heads, s->nkeys);
  heads_free(s->frozen, s->nfrozen);
  map_release(&s->ids);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->flush_lock);
  pthread_cond_destroy(&s->work);
  pthread_cond_destroy(&s->idle);
  free(s);
}

/* An empty store, its locks made; series_free undoes it. */
static struct series *series_new(void) {
  struct series *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->wal = -1;
  s->lock_fd = -1;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->flush_lock, NULL);
  pthread_cond_init(&s->work, NULL);
  pthread_cond_init(&s->idle, NULL);
  map_init(&s->ids);
  return s;
}

/* Takes the directory's LOCK file (flock, exclusive, not waiting) and
 * writes this process' id in it. The kernel drops the lock when the file
 * is closed or the process dies (kill -9 too): there is never a stale
 * lock to clean up. The fd is close-on-exec, so children that exec do not
 * hold it. */
static int lock_dir(struct series *s, const char *dir, char *err, size_t errlen) {
  char path[4096];
  say(path, sizeof path, "%s/LOCK", dir);
  s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (s->lock_fd < 0) {
    say(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    return GROVE_EIO;
  }
  if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    if (e != EWOULDBLOCK) {
      say(err, errlen, "cannot lock '%s': %s", path, strerror(e));
      return GROVE_EIO;
    }
    char pid[24] = "";
    ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
    long holder = n > 0 ? strtol(pid, NULL, 10) : 0;
    if (holder > 0)
      say(err, errlen, "series directory '%s' is in use by another process (pid %ld)", dir,
          holder);
    else
      say(err, errlen, "series directory '%s' is in use by another process", dir);
    return GROVE_EBUSY;
  }
  char pid[24];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  /* the pid is for the message above only: failing to write it is no error */
  if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, pid, (size_t)len, 0) < 0)
    log_warn(NULL, "cannot write the series lock's pid", "path=\"%s\"", path);
  return 0;
}

int series_open(struct series **out, const char *dir, char *err, size_t errlen) {
  struct series *s = series_new();
  if (!s)
    return GROVE_ENOMEM;
  char path[4096];
  mkdir_p(dir, 0750); /* an error shows when the files cannot be opened */
  int rc = lock_dir(s, dir, err, errlen);
  if (rc)
    goto fail;
  snprintf(path, sizeof path, "%s/series.db", dir);
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                        SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK ||
      sqlite3_busy_timeout(s->db, 10000) != SQLITE_OK || /* as s->wdb: wait for the lock */
      exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                  "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);"
                  "CREATE TABLE IF NOT EXISTS chunks (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                  " series INTEGER NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,"
                  " points INTEGER NOT NULL, data BLOB NOT NULL);"
                  "CREATE INDEX IF NOT EXISTS chunks_by_series ON chunks (series, end_ns);"
                  "CREATE INDEX IF NOT EXISTS chunks_by_end ON chunks (end_ns);"
                  "CREATE INDEX IF NOT EXISTS chunks_by_start ON chunks (series, start_ns);"
                  "CREATE TABLE IF NOT EXISTS series_meta (name TEXT PRIMARY KEY, value NOT NULL);"
                  "CREATE TABLE IF NOT EXISTS rollups (series INTEGER NOT NULL, res INTEGER NOT NULL,"
                  " bucket INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,"
                  " min REAL NOT NULL, max REAL NOT NULL, first REAL NOT NULL, last REAL NOT NULL,"
                  " PRIMARY KEY (series, res, bucket)) WITHOUT ROWID")) {
    snprintf(err, errlen, "cannot open series database '%s': %s", path,
             s->db ? sqlite3_errmsg(s->db) : "out of memory");
    rc = GROVE_ESTORE;
    goto fail;
  }
  if (sqlite3_open(path, &s->wdb) != SQLITE_OK ||
      exec(s->wdb, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000")) {
    snprintf(err, errlen, "cannot open series database '%s' to write", path);
    rc = GROVE_ESTORE;
    goto fail;
  }
  if ((rc = load_width(s))) {
    snprintf(err, errlen, "cannot read the chunks' width from '%s': %s", path, sqlite3_errmsg(s->db));
    goto fail;
  }
  if ((rc = load_keys(s))) {
    snprintf(err, errlen, "cannot read series keys from '%s'", path);
    goto fail;
  }
  if ((rc = backfill_rollups(s))) {
    snprintf(err, errlen, "cannot compute rollups of '%s'", path);
    goto fail;
  }
  snprintf(s->wal_path, sizeof s->wal_path, "%s/series.wal", dir);
  snprintf(s->old_path, sizeof s->old_path, "%s/series.wal.old", dir);
  /* a log set aside by a flush that did not finish: its points first */
  int old = open(s->old_path, O_RDWR | O_CLOEXEC);
  if (old >= 0) {
    rc = replay(s, old, NULL);
    close(old);
    if (rc) {
      snprintf(err, errlen, "cannot replay series log '%s': %s", s->old_path, grove_strerror(rc));
      goto fail;
    }
  }
  s->wal = open(s->wal_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (s->wal < 0) {
    snprintf(err, errlen, "cannot open series log '%s': %s", s->wal_path, strerror(errno));
    rc = GROVE_EIO;
    goto fail;
  }
  if ((rc = replay(s, s->wal, &s->wal_end))) {
    snprintf(err, errlen, "cannot replay series log '%s': %s", s->wal_path, grove_strerror(rc));
    goto fail;
  }
  if (old >= 0) { /* finish that flush: both logs' points into chunks, then one empty log */
    char why[640];
    if ((rc = write_chunks(s, s->heads, s->nkeys, s->keys, why, sizeof why))) {
      /* No room for chunks (a disk still full): start anyway, the points
       * of both logs waiting set aside as after a failed flush, both
       * logs kept until a flush succeeds. (The current log's records
       * then stay in it too; replayed again they rewrite the same
       * values, and later records of it still come after them.) */
      struct head *fresh = calloc(s->capkeys ? s->capkeys : 1, sizeof *fresh);
      if (!fresh) {
        snprintf(err, errlen, "cannot move the logs' points into chunks: out of memory");
        rc = GROVE_ENOMEM;
        goto fail;
      }
      trouble_set(s, TROUBLE_CHUNKS, why);
      s->frozen = s->heads;
      s->nfrozen = s->nkeys;
      s->heads = fresh;
      s->head_points = 0;
      rc = 0;
    } else if (ftruncate(s->wal, 0) < 0 || fsync(s->wal) < 0 || unlink(s->old_path) < 0) {
      snprintf(err, errlen, "cannot empty the series logs: %s", strerror(errno));
      rc = GROVE_EIO;
      goto fail;
    } else {
      for (uint32_t i = 0; i < s->nkeys; i++) {
        free(s->heads[i].pts);
        s->heads[i] = (struct head){0};
      }
      s->head_points = 0;
      s->wal_end = 0;
    }
  }
  if ((rc = migrate_keys(s, err, errlen)) ||
      (rc = stypes_open_sqlite(&s->types, path, err, errlen)))
    goto fail;
  pthread_create(&s->writer, NULL, writer_main, s);
  *out = s;
  return 0;
fail:
  series_free(s);
  return rc;
}

/* ---- key format ------------------------------------------------------------------ */

/* The keys of this process in the format of key.h: each key of format 0
 * converted (series_key_from_legacy), the map rebuilt. OUT: *changed (may
 * be NULL) how many keys changed. Under no lock: only at open. */
static int convert_keys(struct series *s, char ***out, size_t *changed) {
  char **fresh = calloc(s->nkeys ? s->nkeys : 1, sizeof *fresh);
  struct buf b;
  buf_init(&b, 0);
  int rc = fresh ? 0 : GROVE_ENOMEM;
  size_t n = 0;
  for (uint32_t id = 0; !rc && id < s->nkeys; id++) {
    if (!s->keys[id])
      continue;
    if (!(rc = series_key_from_legacy(&b, s->keys[id], strlen(s->keys[id]))) &&
        !(fresh[id] = strdup(b.data)))
      rc = GROVE_ENOMEM;
    if (!rc && strcmp(fresh[id], s->keys[id]) != 0)
      n++;
  }
  buf_release(&b);
  if (rc && fresh) {
    for (uint32_t id = 0; id < s->nkeys; id++)
      free(fresh[id]);
    free(fresh);
    fresh = NULL;
  }
  *out = fresh;
  if (changed)
    *changed = n;
  return rc;
}

/* Puts the converted keys in place of the old ones (frees those). */
static int adopt_keys(struct series *s, char **fresh) {
  struct map ids;
  map_init(&ids);
  int rc = 0;
  for (uint32_t id = 0; !rc && id < s->nkeys; id++)
    if (fresh[id])
      rc = map_put(&ids, fresh[id], (void *)(uintptr_t)(id + 1), NULL);
  if (!rc && ids.len != s->ids.len)
    rc = GROVE_EINVAL; /* two keys became one: cannot happen (key.h) */
  if (rc) {
    map_release(&ids);
    return rc;
  }
  map_release(&s->ids);
  s->ids = ids;
  for (uint32_t id = 0; id < s->nkeys; id++) {
    free(s->keys[id]);
    s->keys[id] = fresh[id];
  }
  free(fresh);
  return 0;
}

/* series.db's user_version says the keys' format: 0 as first written,
 * SERIES_KEY_FORMAT as key.h writes them. Keys of format 0 (in series.db
 * and in the replayed logs) are converted and saved, with the version, in
 * one transaction; the logs' key records are then older news (every id
 * they name is in series.db). */
#define SERIES_KEY_FORMAT 1

static int migrate_keys(struct series *s, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int version = -1;
  if (sqlite3_prepare_v2(s->wdb, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (version < 0 || version > SERIES_KEY_FORMAT) {
    snprintf(err, errlen, "series keys are in format %d, newer than this grove (%d)", version,
             SERIES_KEY_FORMAT);
    return GROVE_ESTORE;
  }
  if (version == SERIES_KEY_FORMAT)
    return 0;
  char **fresh;
  size_t changed;
  int rc = convert_keys(s, &fresh, &changed);
  if (rc)
    return rc;
  sqlite3_stmt *upd = NULL, *ins = NULL;
  rc = exec(s->wdb, "BEGIN IMMEDIATE") ||
               sqlite3_prepare_v2(s->wdb, "UPDATE series SET key = ? WHERE id = ?", -1, &upd,
                                  NULL) != SQLITE_OK ||
               sqlite3_prepare_v2(s->wdb, "INSERT OR REPLACE INTO series (id, key) VALUES (?, ?)",
                                  -1, &ins, NULL) != SQLITE_OK
           ? GROVE_ESTORE
           : 0;
  /* two passes, so that no key is briefly held by two ids (UNIQUE) */
  for (int pass = 0; pass < 2 && !rc; pass++)
    for (uint32_t id = 0; id < s->keys_saved && !rc; id++) {
      if (!fresh[id] || strcmp(fresh[id], s->keys[id]) == 0)
        continue;
      char tmp[32];
      snprintf(tmp, sizeof tmp, "\x01moving %u", id); /* not a key of either format */
      sqlite3_bind_text(upd, 1, pass ? fresh[id] : tmp, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(upd, 2, id);
      if (sqlite3_step(upd) != SQLITE_DONE)
        rc = GROVE_ESTORE;
      sqlite3_reset(upd);
    }
  for (uint32_t id = s->keys_saved; id < s->nkeys && !rc; id++) {
    if (!fresh[id])
      continue;
    sqlite3_bind_int64(ins, 1, id);
    sqlite3_bind_text(ins, 2, fresh[id], -1, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE)
      rc = GROVE_ESTORE;
    sqlite3_reset(ins);
  }
  sqlite3_finalize(upd);
  sqlite3_finalize(ins);
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SERIES_KEY_FORMAT);
  if (!rc && (exec(s->wdb, sql) || exec(s->wdb, "COMMIT")))
    rc = GROVE_ESTORE;
  if (rc) {
    snprintf(err, errlen, "cannot convert series keys to format %d: %s", SERIES_KEY_FORMAT,
             sqlite3_errmsg(s->wdb));
    exec(s->wdb, "ROLLBACK");
    for (uint32_t id = 0; id < s->nkeys; id++)
      free(fresh[id]);
    free(fresh);
    return rc;
  }
  if ((rc = adopt_keys(s, fresh)))
    return rc;
  s->keys_saved = s->nkeys;
  if (s->nkeys)
    log_info(NULL, "series keys converted to the escaped format", "series=%u changed=%zu",
             s->nkeys, changed);
  return 0;
}

static int apply_loaded_key(uint32_t id, const char *key, size_t len, void *arg) {
  return apply_key(arg, id, key, len);
}

int series_open_pg(struct series **out, const char *url, char *err, size_t errlen) {
  struct series *s = series_new();
  if (!s)
    return GROVE_ENOMEM;
  int rc = pgs_open(&s->pg, url, err, errlen);
  if (!rc && (rc = pgs_load_keys(s->pg, apply_loaded_key, s)))
    snprintf(err, errlen, "cannot read series keys from PostgreSQL");
  if (!rc)
    rc = stypes_open_pg(&s->types, s->pg, err, errlen);
  if (rc) {
    series_free(s);
    return rc;
  }
  s->logged = s->nkeys;
  pthread_create(&s->writer, NULL, writer_main, s);
  *out = s;
  return 0;
}

void series_close(struct series *s) {
  if (!s)
    return;
  periodic_stop(s->flusher); /* a flush in progress ends first */
  pthread_mutex_lock(&s->lock);
  s->stop = true;
  pthread_cond_signal(&s->work);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->writer, NULL);
  series_free(s);
}

/* ---- queries ------------------------------------------------------------------------ */

int series_agg_parse(const char *name) {
  static const char *const names[] = {"mean", "min", "max", "sum", "count", "first", "last"};
  if (strcmp(name, "avg") == 0)
    return SERIES_MEAN;
  for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
    if (strcmp(name, names[i]) == 0)
      return i;
  return -1;
}

double series_bucket_value(const struct series_bucket *b, enum series_agg agg) {
  switch (agg) {
  case SERIES_MEAN: return b->sum / (double)b->count;
  case SERIES_MIN: return b->min;
  case SERIES_MAX: return b->max;
  case SERIES_SUM: return b->sum;
  case SERIES_COUNT: return (double)b->count;
  case SERIES_FIRST: return b->first;
  case SERIES_LAST: return b->last;
  }
  return 0;
}

/* t's bucket start: callers pass a t at or after a bucket start that fits */
static int64_t floor_to(int64_t t, int64_t step) { return time_floor_div(t, step) * step; }

/* Buckets of `step` made from points that come by time. */
struct bucketer {
  struct series_bucket *b;
  size_t n, cap;
  int64_t step;
};

static int bucket_point(int64_t ts, double v, void *arg) {
  struct bucketer *k = arg;
  int64_t bs = floor_to(ts, k->step);
  if (!k->n || k->b[k->n - 1].start_ns != bs) {
    if (k->n == k->cap) {
      size_t cap = k->cap ? k->cap * 2 : 64;
      struct series_bucket *g = realloc(k->b, cap * sizeof *g);
      if (!g)
        return GROVE_ENOMEM;
      k->b = g;
      k->cap = cap;
    }
    k->b[k->n++] = (struct series_bucket){bs, 0, 0, v, v, v, v};
  }
  struct series_bucket *x = &k->b[k->n - 1];
  x->count++;
  x->sum += v;
  if (v < x->min)
    x->min = v;
  if (v > x->max)
    x->max = v;
  x->last = v;
  return 0;
}

/* Buckets of the points themselves in [from, to) added to k, in one pass. */
static int raw_buckets(struct series *s, uint32_t id, int64_t from, int64_t to,
                       struct bucketer *k) {
  if (!s->pg)
    return read_points(s, id, from, to, SIZE_MAX, bucket_point, k);
  struct series_bucket *b = NULL;
  size_t n = 0;
  int rc = pgs_buckets_raw(s->pg, id, from, to, k->step, &b, &n);
  for (size_t i = 0; !rc && i < n; i++) {
    if (k->n == k->cap) {
      size_t cap = k->cap ? k->cap * 2 : 64;
      struct series_bucket *g = realloc(k->b, cap * sizeof *g);
      if (!g) {
        rc = GROVE_ENOMEM;
        break;
      }
      k->b = g;
      k->cap = cap;
    }
    k->b[k->n++] = b[i];
  }
  free(b);
  return rc;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Adds a bucket start to a list. */
static int fix_add(int64_t **fix, size_t *nfix, size_t *cap, int64_t bs) {
  if (*nfix == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    int64_t *g = realloc(*fix, c * sizeof *g);
    if (!g)
      return GROVE_ENOMEM;
    *fix = g;
    *cap = c;
  }
  (*fix)[(*nfix)++] = bs;
  return 0;
}

/* The buckets that points not in the rollups yet fall in (under lock),
 * sorted, each once: points in memory, or in PostgreSQL mode minutes not
 * rolled up. A layer costs a search per bucket, not a look at each point. */
static int unrolled_buckets(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                            int64_t **fix, size_t *nfix) {
  int rc = 0;
  size_t cap = 0;
  if (s->pg) {
    for (size_t i = 0; i < s->ntouched && !rc; i++) {
      int64_t m = s->touched[i];
      if (m + MINUTE_NS > from && m < to)
        rc = fix_add(fix, nfix, &cap, floor_to(m < from ? from : m, step));
    }
  } else {
    const struct head *layers[2];
    memory_layers(s, id, layers);
    for (int l = 0; l < 2 && !rc; l++) {
      const struct head *h = layers[l];
      size_t i = 0;
      int64_t at = from;
      while (h && !rc) {
        size_t lo = i, hi = h->n; /* the first point at or after `at` */
        while (lo < hi) {
          size_t mid = lo + (hi - lo) / 2;
          if (h->pts[mid].ts_ns < at)
            lo = mid + 1;
          else
            hi = mid;
        }
        if ((i = lo) == h->n || h->pts[i].ts_ns >= to)
          break;
        int64_t bs = floor_to(h->pts[i].ts_ns, step);
        rc = fix_add(fix, nfix, &cap, bs);
        if (__builtin_add_overflow(bs, step, &at))
          break;
      }
    }
  }
  if (rc || !*nfix)
    return rc;
  qsort(*fix, *nfix, sizeof **fix, cmp_i64);
  size_t u = 1;
  for (size_t i = 1; i < *nfix; i++)
    if ((*fix)[i] != (*fix)[u - 1])
      (*fix)[u++] = (*fix)[i];
  *nfix = u;
  return 0;
}

/* The rollups' buckets with those in `fix` (sorted) computed again from
 * the points: one raw read per run of consecutive buckets, then one merge
 * of the two sorted lists. */
static int fix_buckets(struct series *s, uint32_t id, int64_t step, const int64_t *fix,
                       size_t nfix, struct series_bucket **b, size_t *nb) {
  struct bucketer raw = {NULL, 0, 0, step};
  int rc = 0;
  for (size_t i = 0; !rc && i < nfix;) {
    size_t j = i + 1;
    int64_t next; /* (buckets far apart: their difference may not be an int64) */
    while (j < nfix && !__builtin_add_overflow(fix[j - 1], step, &next) && next == fix[j])
      j++;
    int64_t end;
    if (__builtin_add_overflow(fix[j - 1], step, &end))
      end = INT64_MAX;
    rc = raw_buckets(s, id, fix[i], end, &raw);
    i = j;
  }
  struct series_bucket *out = rc ? NULL : malloc((*nb + raw.n + 1) * sizeof *out);
  if (!rc && !out)
    rc = GROVE_ENOMEM;
  if (rc) {
    free(raw.b);
    return rc;
  }
  size_t i = 0, j = 0, n = 0;
  while (i < *nb || j < raw.n) {
    if (j == raw.n || (i < *nb && (*b)[i].start_ns < raw.b[j].start_ns)) {
      out[n++] = (*b)[i++];
    } else {
      if (i < *nb && (*b)[i].start_ns == raw.b[j].start_ns)
        i++; /* the points' bucket replaces the rollups' */
      out[n++] = raw.b[j++];
    }
  }
  free(raw.b);
  free(*b);
  *b = out;
  *nb = n;
  return 0;
}

/* Adds to `fix` (sorted, each once) the buckets that points outside the
 * rollups' range fall in: read raw (almost always none: the first and last
 * hours of the time range). */
static int edge_buckets(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                        int64_t **fix, size_t *nfix) {
  const int64_t edges[2][2] = {{from, to < ROLLUP_MIN_NS ? to : ROLLUP_MIN_NS},
                               {from > ROLLUP_END_NS ? from : ROLLUP_END_NS, to}};
  size_t cap = *nfix, had = *nfix;
  int rc = 0;
  for (int e = 0; e < 2 && !rc; e++) {
    if (edges[e][0] >= edges[e][1])
      continue;
    struct chunk_point *pts;
    size_t np;
    if ((rc = series_range(s, id, edges[e][0], edges[e][1], &pts, &np)))
      break;
    for (size_t i = 0; i < np && !rc; i++)
      rc = fix_add(fix, nfix, &cap, floor_to(pts[i].ts_ns, step));
    free(pts);
  }
  if (rc || *nfix == had)
    return rc;
  qsort(*fix, *nfix, sizeof **fix, cmp_i64);
  size_t u = 1;
  for (size_t i = 1; i < *nfix; i++)
    if ((*fix)[i] != (*fix)[u - 1])
      (*fix)[u++] = (*fix)[i];
  *nfix = u;
  return 0;
}

int series_aggregate(struct series *s, uint32_t id, int64_t from, int64_t to, int64_t step,
                     size_t max_buckets, struct series_bucket **out, size_t *n,
                     const char **source) {
  if (step <= 0 || to <= from)
    return GROVE_EINVAL;
  /* buckets are the multiples of step whose whole span lies in
   * [TIME_MIN_NS, INT64_MAX]: from rounds down (up when down is not an
   * int64), to up (down likewise); points outside are in no bucket */
  if (from < TIME_MIN_NS)
    from = TIME_MIN_NS;
  if (time_floor(from, step, &from) && time_ceil(from, step, &from))
    from = INT64_MAX;
  if (time_ceil(to, step, &to) && time_floor(to, step, &to))
    to = INT64_MIN;
  if (to <= from) {
    if (source)
      *source = "raw";
    *out = NULL;
    *n = 0;
    return 0;
  }
  if (((uint64_t)to - (uint64_t)from) / (uint64_t)step > max_buckets)
    return GROVE_ETOOBIG;
  if (step % MINUTE_NS) { /* finer than the rollups: the points themselves */
    if (source)
      *source = "raw";
    struct bucketer k = {NULL, 0, 0, step};
    int rc = raw_buckets(s, id, from, to, &k);
    if (rc) {
      free(k.b);
      return rc;
    }
    *out = k.b;
    *n = k.n;
    return 0;
  }
  int64_t res = step % HOUR_NS ? MINUTE_NS : HOUR_NS;
  if (source)
    *source = res == HOUR_NS ? "1h" : "1m";
  struct series_bucket *b = NULL;
  size_t nb = 0;
  int rc = s->pg ? pgs_rollups_read(s->pg, id, res, from, to, step, &b, &nb)
                 : rollups_read(s->db, id, res, from, to, step, &b, &nb);
  if (rc)
    return rc;
  int64_t *fix = NULL;
  size_t nfix = 0;
  pthread_mutex_lock(&s->lock);
  rc = unrolled_buckets(s, id, from, to, step, &fix, &nfix);
  pthread_mutex_unlock(&s->lock);
  if (!rc)
    rc = edge_buckets(s, id, from, to, step, &fix, &nfix);
  if (!rc && nfix)
    rc = fix_buckets(s, id, step, fix, nfix, &b, &nb);
  free(fix);
  if (rc) {
    free(b);
    return rc;
  }
  *out = b;
  *n = nb;
  return 0;
}

void series_each_key(struct series *s, void (*fn)(uint32_t id, const char *key, void *arg),
                     void *arg) {
  pthread_mutex_lock(&s->lock);
  for (uint32_t id = 0; id < s->nkeys; id++)
    if (s->keys[id])
      fn(id, s->keys[id], arg);
  pthread_mutex_unlock(&s->lock);
}

int series_key_of(struct series *s, uint32_t id, char *out, size_t n) {
  pthread_mutex_lock(&s->lock);
  int rc = id < s->nkeys && s->keys[id] ? 0 : GROVE_ENOENT;
  if (!rc)
    snprintf(out, n, "%s", s->keys[id]);
  pthread_mutex_unlock(&s->lock);
  return rc;
}
