/* local.c — the "local" storage backend: each content is one file under
 * the root, named by its hash and fanned out by its first two bytes
 * (root/ab/cd/abcd…), so no folder grows past 65,536 entries.
 *
 *   root/tmp/<instance>/  uploads being written by one instance (emptied
 *                by that instance's sweep at start: others sharing the
 *                folder keep theirs)
 *   root/spool/  files that will become blobs (resumable uploads); kept
 *   root/xx/yy/  contents
 *
 * Durability: a temporary file is fsync'd before it is renamed to its
 * content address, and the folder that receives it is fsync'd after, so
 * a content that exists is complete. Writeback of an upload starts as it
 * is written (sync_file_range) so the final fsync has little left to do. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs/internal.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#define WRITEBACK_STEP (8u << 20) /* start writeback every 8 MiB */
#define ROOT_MAX 3072 /* a longer root is refused: every path below it fits PATH_MAX */
#define DIR_MAX (ROOT_MAX + 64)

struct local {
  char root[ROOT_MAX];
  char tmp[DIR_MAX];
  char spool[DIR_MAX];
};

struct local_tmp {
  struct local *l;
  int fd;
  uint64_t written, flushed;
  char path[PATH_MAX];
};

struct local_rd {
  int fd;
};

static int io_err(int e) { return e == ENOSPC || e == EDQUOT ? GROVE_ENOSPC : GROVE_EIO; }

static int fsync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return GROVE_EIO;
  int rc = fsync(fd) < 0 ? GROVE_EIO : 0;
  close(fd);
  return rc;
}

/* root/ab/cd/<sha> into out; the two folders into dir1, dir2 when given. */
static void content_path(const struct local *l, const char *sha, char out[PATH_MAX],
                         char dir1[DIR_MAX], char dir2[DIR_MAX]) {
  snprintf(out, PATH_MAX, "%s/%.2s/%.2s/%.64s", l->root, sha, sha + 2, sha);
  if (dir1)
    snprintf(dir1, DIR_MAX, "%s/%.2s", l->root, sha);
  if (dir2)
    snprintf(dir2, DIR_MAX, "%s/%.2s/%.2s", l->root, sha, sha + 2);
}

static int local_open(const char *root, const char *instance, void **be, char *err,
                      size_t errlen) {
  struct local *l = calloc(1, sizeof *l);
  if (!l)
    return GROVE_ENOMEM;
  errno = 0;
  if (strlen(root) >= sizeof l->root || mkdir_p(root, 0700) < 0) {
    snprintf(err, errlen, "cannot make blob folder '%s': %s", root,
             errno ? strerror(errno) : "path too long");
    free(l);
    return GROVE_EIO;
  }
  snprintf(l->root, sizeof l->root, "%s", root);
  snprintf(l->tmp, sizeof l->tmp, "%s/tmp/%.32s", root, instance);
  snprintf(l->spool, sizeof l->spool, "%s/spool", root);
  if (mkdir_p(l->tmp, 0700) < 0 || mkdir_p(l->spool, 0700) < 0 || access(l->tmp, W_OK) < 0) {
    snprintf(err, errlen, "cannot write blob folder '%s': %s", root, strerror(errno));
    free(l);
    return GROVE_EIO;
  }
  *be = l;
  return 0;
}

static void local_close(void *be) { free(be); }

static int local_tmp_create(void *be, void **out) {
  struct local *l = be;
  struct local_tmp *t = calloc(1, sizeof *t);
  if (!t)
    return GROVE_ENOMEM;
  char rnd[25];
  id_hex(rnd, sizeof rnd);
  snprintf(t->path, sizeof t->path, "%s/%.24s", l->tmp, rnd);
  t->l = l;
  t->fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (t->fd < 0) {
    int e = errno;
    free(t);
    return io_err(e);
  }
  *out = t;
  return 0;
}

static int local_tmp_write(void *tmp, const void *data, size_t n) {
  struct local_tmp *t = tmp;
  const char *p = data;
  while (n) {
    ssize_t w = write(t->fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return io_err(w < 0 ? errno : ENOSPC);
    p += w;
    n -= (size_t)w;
    t->written += (uint64_t)w;
  }
  if (t->written - t->flushed >= WRITEBACK_STEP) {
    /* start writing back what is there; the fsync at the end then waits
     * for little */
    sync_file_range(t->fd, (off_t)t->flushed, (off_t)(t->written - t->flushed),
                    SYNC_FILE_RANGE_WRITE);
    t->flushed = t->written;
  }
  return 0;
}

static int local_tmp_sync(void *tmp) {
  struct local_tmp *t = tmp;
  return fsync(t->fd) < 0 ? io_err(errno) : 0;
}

static void local_tmp_discard(void *tmp) {
  struct local_tmp *t = tmp;
  if (!t)
    return;
  close(t->fd);
  unlink(t->path);
  free(t);
}

/* Moves the synced file `from` to sha's address unless it is there.
 * OUT: *created. On error `from` is left. */
static int place(struct local *l, const char *from, const char *sha, bool *created) {
  char to[PATH_MAX], d1[DIR_MAX], d2[DIR_MAX];
  content_path(l, sha, to, d1, d2);
  *created = false;
  struct stat st;
  if (stat(to, &st) == 0)
    return 0; /* stored already: the caller drops its copy */
  if (mkdir_p(d2, 0700) < 0)
    return io_err(errno);
  /* link() never replaces: of two uploads of one content the second finds
   * the first's file (the caller holds the content's lock anyway) */
  if (link(from, to) < 0) {
    if (errno == EEXIST)
      return 0;
    return io_err(errno);
  }
  if (fsync_dir(d2) || fsync_dir(d1) || fsync_dir(l->root)) {
    unlink(to);
    return GROVE_EIO;
  }
  *created = true;
  return 0;
}

static int local_tmp_install(void *be, void *tmp, const char *sha, bool *created) {
  struct local_tmp *t = tmp;
  return place(be, t->path, sha, created);
}

static int local_file_install(void *be, const char *path, const char *sha, bool *created) {
  struct local *l = be;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? GROVE_ENOENT : GROVE_EIO;
  int rc = fsync(fd) < 0 ? GROVE_EIO : 0;
  if (rc) {
    close(fd);
    return rc;
  }
  rc = place(l, path, sha, created);
  if (rc == GROVE_EIO && errno == EXDEV) {
    /* another filesystem: copy through a temporary file */
    void *t;
    if (!(rc = local_tmp_create(l, &t))) {
      char buf[1 << 16];
      ssize_t n;
      off_t off = 0;
      while ((n = pread(fd, buf, sizeof buf, off)) > 0 && !(rc = local_tmp_write(t, buf, (size_t)n)))
        off += n;
      if (!rc && n < 0)
        rc = GROVE_EIO;
      if (!rc && !(rc = local_tmp_sync(t)))
        rc = local_tmp_install(l, t, sha, created);
      local_tmp_discard(t); /* the content holds its own link */
    }
    close(fd);
    return rc;
  }
  close(fd);
  return rc; /* the source stays: the caller removes it once recorded */
}

static int local_remove(void *be, const char *sha) {
  char p[PATH_MAX], d2[DIR_MAX];
  content_path(be, sha, p, NULL, d2);
  if (unlink(p) < 0 && errno != ENOENT)
    return GROVE_EIO;
  fsync_dir(d2);
  return 0;
}

/* A flock(2) on the content file: it is per open file, so it works
 * between threads and between processes sharing the folder alike. */
static int lock_file(const char *p, int how, int *out) {
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? GROVE_ENOENT : GROVE_EIO;
  int r;
  do
    r = flock(fd, how);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    close(fd);
    return e == EWOULDBLOCK ? GROVE_EBUSY : GROVE_EIO;
  }
  /* the path may have been removed (and made again) while this waited */
  struct stat a, b;
  if (fstat(fd, &a) < 0 || stat(p, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
    close(fd);
    return GROVE_ENOENT;
  }
  *out = fd;
  return 0;
}

static int local_hold(void *be, const char *sha, bool exclusive, void **h) {
  char p[PATH_MAX];
  content_path(be, sha, p, NULL, NULL);
  int fd;
  int rc = lock_file(p, exclusive ? LOCK_EX : LOCK_SH, &fd);
  if (rc)
    return rc;
  *h = (void *)(intptr_t)(fd + 1);
  return 0;
}

static void local_unhold(void *h) {
  if (h)
    close((int)(intptr_t)h - 1); /* the lock goes with the last descriptor */
}

static int local_open_read(void *be, const char *sha, void **rd, uint64_t *size) {
  char p[PATH_MAX];
  content_path(be, sha, p, NULL, NULL);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? GROVE_ENOENT : GROVE_EIO;
  struct stat st;
  struct local_rd *r = malloc(sizeof *r);
  if (fstat(fd, &st) < 0 || !r) {
    close(fd);
    free(r);
    return r ? GROVE_EIO : GROVE_ENOMEM;
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  r->fd = fd;
  *rd = r;
  *size = (uint64_t)st.st_size;
  return 0;
}

static int local_read_at(void *rd, uint64_t off, void *buf, size_t n, size_t *got) {
  struct local_rd *r = rd;
  ssize_t k;
  do
    k = pread(r->fd, buf, n, (off_t)off);
  while (k < 0 && errno == EINTR);
  if (k < 0)
    return GROVE_EIO;
  *got = (size_t)k;
  return 0;
}

static void local_close_read(void *rd) {
  struct local_rd *r = rd;
  if (!r)
    return;
  close(r->fd);
  free(r);
}

static bool hex2(const char *s) {
  return strlen(s) == 2 && strspn(s, "0123456789abcdef") == 2;
}

static int local_sweep(void *be, int (*keep)(const char *sha, void *arg), void *arg,
                       int64_t before, int *removed) {
  struct local *l = be;
  int n = 0, rc = 0;
  DIR *d = opendir(l->tmp);
  struct dirent *e;
  char p[PATH_MAX];
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(p, sizeof p, "%s/%.255s", l->tmp, e->d_name);
    if (unlink(p) == 0)
      n++;
  }
  if (d)
    closedir(d);
  DIR *top = opendir(l->root);
  struct dirent *a;
  while (!rc && top && (a = readdir(top))) {
    if (!hex2(a->d_name))
      continue;
    char d1[DIR_MAX];
    snprintf(d1, sizeof d1, "%s/%.2s", l->root, a->d_name);
    DIR *mid = opendir(d1);
    struct dirent *b;
    while (!rc && mid && (b = readdir(mid))) {
      if (!hex2(b->d_name))
        continue;
      char d2[DIR_MAX];
      snprintf(d2, sizeof d2, "%s/%.2s", l->root, a->d_name);
      snprintf(d2 + strlen(d2), sizeof d2 - strlen(d2), "/%.2s", b->d_name);
      DIR *leaf = opendir(d2);
      struct dirent *f;
      while (!rc && leaf && (f = readdir(leaf))) {
        if (f->d_name[0] == '.')
          continue;
        snprintf(p, sizeof p, "%s/%.255s", d2, f->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && (int64_t)st.st_ctime > before)
          continue; /* maybe another instance's, installed and not yet committed */
        int fd = -1;
        if (lock_file(p, LOCK_EX | LOCK_NB, &fd))
          continue; /* held: an upload is recording it */
        int k = blobs_sha_valid(f->d_name) ? keep(f->d_name, arg) : 0;
        if (k < 0)
          rc = GROVE_ESTORE;
        else if (!k && unlink(p) == 0)
          n++;
        close(fd);
      }
      if (leaf)
        closedir(leaf);
    }
    if (mid)
      closedir(mid);
  }
  if (top)
    closedir(top);
  if (removed)
    *removed = n;
  return rc;
}

static const char *local_spool_dir(void *be) { return ((struct local *)be)->spool; }

const struct blobs_ops blobs_local_ops = {
    .name = "local",
    .open = local_open,
    .close = local_close,
    .tmp_create = local_tmp_create,
    .tmp_write = local_tmp_write,
    .tmp_sync = local_tmp_sync,
    .tmp_discard = local_tmp_discard,
    .tmp_install = local_tmp_install,
    .file_install = local_file_install,
    .remove = local_remove,
    .hold = local_hold,
    .unhold = local_unhold,
    .open_read = local_open_read,
    .read_at = local_read_at,
    .close_read = local_close_read,
    .sweep = local_sweep,
    .spool_dir = local_spool_dir,
};
