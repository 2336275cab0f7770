/* log.c — group commit and the local write-ahead log.
 *
 * Group commit: series_append queues a batch; one writer thread takes
 * every batch queued meanwhile as a group, has the backend make it durable
 * (series_ops.commit), and only then tells each batch's callback.
 *
 * The log (series.wal), for backends that keep points in the head until a
 * flush: records of a u32 length, a u32 CRC-32 of what follows, a type
 * byte and a payload: 'K' (u32 id, the key) for a key made since the last
 * group, 'P' (per point u32 id, i64 ts, f64 value bits, little-endian).
 * A group's records are one write and one fdatasync. A write or sync that
 * fails is cut back to the end of the last good record before anything
 * else is appended; while that cut fails, groups are refused. Replay
 * stops at the first record whose length or CRC is wrong and cuts there
 * (a torn tail: a crash mid-write, never acknowledged). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/log.h"
#include "series/internal.h"

#define REC_HEADER 9 /* u32 length, u32 crc, u8 type */

static ssize_t sys_write(int fd, const void *buf, size_t n) { return write(fd, buf, n); }

struct series_io series_io = {sys_write, fdatasync, ftruncate, fsync};

/* ---- records ------------------------------------------------------------------ */

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

int log_replay(struct series *s, int wal, off_t *end) {
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
      rc = keys_apply(s, get32(p), (const char *)p + 4, pl - 4);
    } else if (type == 'P' && pl % 20 == 0) {
      for (size_t i = 0; i < pl / 20 && !rc; i++) {
        struct series_point pt = {get32(p + 20 * i), (int64_t)get64(p + 20 * i + 4), 0};
        uint64_t bits = get64(p + 20 * i + 12);
        memcpy(&pt.value, &bits, 8);
        rc = heads_apply(s, &pt, 1);
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

/* Appends a group's records to the log and syncs them. On error, why
 * says what failed; the log may then hold part of them. */
static int wal_write(struct series *s, int wal, const struct buf *out, char *why, size_t n) {
  size_t done = 0;
  while (done < out->len) {
    ssize_t w = series_io.write(wal, out->data + done, out->len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      say(why, n, "cannot write '%s': %s", s->log.path,
          w < 0 ? strerror(errno) : "nothing written");
      return GROVE_EIO;
    }
    done += (size_t)w;
  }
  if (series_io.fdatasync(wal) < 0) {
    say(why, n, "cannot sync '%s': %s", s->log.path, strerror(errno));
    return GROVE_EIO;
  }
  return 0;
}

int log_cut(struct series *s, int wal, off_t end, char *why, size_t n) {
  if (series_io.ftruncate(wal, end) == 0 && series_io.fsync(wal) == 0)
    return 0;
  size_t l = strlen(why);
  say(why + l, n - l, "%scannot cut '%s' back to its last good record: %s", l ? "; " : "",
      s->log.path, strerror(errno));
  return GROVE_EIO;
}

int log_commit(struct series *s, struct batch *group) {
  struct buf *out = &s->log.out, *payload = &s->log.payload;
  /* new keys first, then every batch of the group, in one write */
  buf_reset(out);
  for (uint32_t id = s->logged; id < s->nkeys; id++) {
    buf_reset(payload);
    put32(payload, id);
    buf_puts(payload, s->keys[id]);
    record(out, 'K', payload);
  }
  uint32_t logged = s->nkeys;
  int wal = s->log.fd; /* a flush sets the log aside only while the writer is idle */
  off_t end = s->log.end;
  bool dirty = s->log.dirty;
  pthread_mutex_unlock(&s->lock);
  for (struct batch *b = group; b; b = b->next) {
    buf_reset(payload);
    for (size_t i = 0; i < b->n; i++) {
      uint64_t bits;
      memcpy(&bits, &b->pts[i].value, 8);
      put32(payload, b->pts[i].id);
      put64(payload, (uint64_t)b->pts[i].ts_ns);
      put64(payload, bits);
    }
    record(out, 'P', payload);
  }
  /* Nothing is appended after bytes a failed write left: they are cut
   * first, and while they cannot be, writes are refused. */
  char why[512] = "";
  int rc = 0;
  if (dirty && !log_cut(s, wal, end, why, sizeof why))
    dirty = false;
  if (dirty) {
    rc = GROVE_EIO;
  } else if ((rc = wal_write(s, wal, out, why, sizeof why))) {
    dirty = log_cut(s, wal, end, why, sizeof why) != 0;
  }
  pthread_mutex_lock(&s->lock);
  s->log.dirty = dirty;
  if (!rc) {
    s->log.end = end + (off_t)out->len;
    s->logged = logged;
    trouble_set(s, TROUBLE_LOG, NULL);
    for (struct batch *b = group; b; b = b->next)
      if (heads_apply(s, b->pts, b->n))
        rc = GROVE_ENOMEM;
  } else {
    trouble_set(s, TROUBLE_LOG, why);
  }
  return rc;
}

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

int log_set_aside(struct series *s, char *why, size_t n) {
  if (s->log.dirty) {
    *why = '\0';
    if (log_cut(s, s->log.fd, s->log.end, why, n))
      return GROVE_EIO;
    s->log.dirty = false;
  }
  if (rename(s->log.path, s->log.old_path) < 0) {
    say(why, n, "cannot rename '%s': %s", s->log.path, strerror(errno));
    return GROVE_EIO;
  }
  int fd = open(s->log.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0 || sync_dir(s->log.path) < 0) { /* both names must survive a crash */
    say(why, n, "cannot %s '%s': %s", fd < 0 ? "create" : "sync the folder of", s->log.path,
        strerror(errno));
    if (fd >= 0)
      close(fd);
    rename(s->log.old_path, s->log.path); /* the fresh log, empty, goes */
    return GROVE_EIO;
  }
  close(s->log.fd);
  s->log.fd = fd;
  s->log.end = 0;
  return 0;
}

/* ---- group commit --------------------------------------------------------------- */

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

static void *writer_main(void *arg) {
  struct series *s = arg;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (!s->queue && !s->stop)
      pthread_cond_wait(&s->work, &s->lock);
    if (!s->queue && s->stop)
      break;
    struct batch *group = s->queue;
    s->queue = s->tail = NULL;
    s->busy = true;
    int rc = s->ops->commit(s, group);
    flush_wake_if_full(s);
    pthread_mutex_unlock(&s->lock);
    tell_group(group, rc);
    pthread_mutex_lock(&s->lock);
    s->busy = false;
    pthread_cond_broadcast(&s->idle);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

int log_start(struct series *s) {
  return pthread_create(&s->writer, NULL, writer_main, s) ? GROVE_ENOMEM : 0;
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
