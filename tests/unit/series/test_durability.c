/* test_durability.c — the series store when the disk fails: writes and
 * syncs of the log made to fail or write short through the store's
 * system-call seam (series_io), and SQLite made to answer SQLITE_FULL
 * through a VFS that wraps the default one. Every acknowledged point must
 * survive a reopen; a refused one must not come back; series_health must
 * say which path fails and clear once it works again. */
#include "../test.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "series/internal.h"
#include "series/series.h"
#include "store.h"

/* ---- faults in the log's system calls ---------------------------------------- */

static struct {
  int write_calls, sync_calls, truncate_calls;
  int fail_write_at;    /* the nth write (1-based) fails; 0: none */
  size_t short_by;      /* ... after writing all but this many bytes of it */
  int fail_sync_at;     /* the nth fdatasync fails */
  int fail_truncates;   /* this many ftruncates fail */
  int fsync_calls, fail_fsyncs; /* this many fsyncs fail */
} fault;

static ssize_t faulty_write(int fd, const void *buf, size_t n) {
  fault.write_calls++;
  if (fault.fail_write_at && fault.write_calls == fault.fail_write_at) {
    if (fault.short_by && fault.short_by < n) { /* part of it lands, then the disk is full */
      ssize_t w = write(fd, buf, n - fault.short_by);
      fault.fail_write_at++;
      return w;
    }
    errno = ENOSPC;
    return -1;
  }
  return write(fd, buf, n);
}

static int faulty_sync(int fd) {
  fault.sync_calls++;
  if (fault.fail_sync_at && fault.sync_calls == fault.fail_sync_at) {
    errno = EIO;
    return -1;
  }
  return fdatasync(fd);
}

static int faulty_truncate(int fd, off_t len) {
  fault.truncate_calls++;
  if (fault.fail_truncates > 0) {
    fault.fail_truncates--;
    errno = EIO;
    return -1;
  }
  return ftruncate(fd, len);
}

static int faulty_fsync(int fd) {
  fault.fsync_calls++;
  if (fault.fail_fsyncs > 0) {
    fault.fail_fsyncs--;
    errno = EIO;
    return -1;
  }
  return fsync(fd);
}

static void inject(void) {
  memset(&fault, 0, sizeof fault);
  series_io.write = faulty_write;
  series_io.fdatasync = faulty_sync;
  series_io.ftruncate = faulty_truncate;
  series_io.fsync = faulty_fsync;
}

/* ---- SQLITE_FULL from a VFS over the default one ------------------------------- */

static bool db_full; /* every write to a database file answers SQLITE_FULL */
static sqlite3_vfs full_vfs, *real_vfs;

struct ffile {
  sqlite3_file base;
  sqlite3_file *real; /* the default VFS's file, right after this struct */
};

#define REAL(f) (((struct ffile *)(f))->real)
static int f_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int f_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
  return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int f_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
  return db_full ? SQLITE_FULL : REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 n) {
  return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int f_sync(sqlite3_file *f, int flags) { return REAL(f)->pMethods->xSync(REAL(f), flags); }
static int f_size(sqlite3_file *f, sqlite3_int64 *n) {
  return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_reserved(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_device(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int f_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **p) {
  return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags) {
  return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shm_unmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods f_methods = {
    2,        f_close,  f_read,   f_write,    f_truncate,  f_sync,       f_size,
    f_lock,   f_unlock, f_reserved, f_control, f_sector,   f_device,     f_shm_map,
    f_shm_lock, f_shm_barrier, f_shm_unmap, NULL, NULL};

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
  (void)vfs;
  struct ffile *x = (struct ffile *)f;
  x->real = (sqlite3_file *)(x + 1);
  int rc = real_vfs->xOpen(real_vfs, name, x->real, flags, out);
  f->pMethods = rc == SQLITE_OK ? &f_methods : NULL;
  return rc;
}

static void full_vfs_install(void) {
  real_vfs = sqlite3_vfs_find(NULL);
  full_vfs = *real_vfs;
  full_vfs.zName = "grove-full";
  full_vfs.szOsFile = (int)sizeof(struct ffile) + real_vfs->szOsFile;
  full_vfs.xOpen = f_open;
  CHECK(sqlite3_vfs_register(&full_vfs, 1) == SQLITE_OK);
}

/* ---- helpers ------------------------------------------------------------------- */

static int put(struct series *s, uint32_t id, int64_t ts, double v) {
  struct series_point p = {id, ts, v};
  return series_append_sync(s, &p, 1);
}

/* The series holds exactly these timestamps, each with value ts / 10. */
static void holds(struct series *s, uint32_t id, const int64_t *ts, size_t n) {
  struct series_sample *pts;
  size_t got;
  CHECK(series_range(s, id, INT64_MIN, INT64_MAX, &pts, &got) == 0);
  if (got != n)
    fprintf(stderr, "series %u: %zu points, want %zu\n", id, got, n);
  CHECK_EQ_INT(got, n);
  for (size_t i = 0; i < n; i++) {
    CHECK_EQ_INT(pts[i].ts_ns, ts[i]);
    CHECK(pts[i].value == (double)ts[i] / 10);
  }
  free(pts);
}

static bool healthy(struct series *s, char *why, size_t n) { return series_health(s, why, n) == 0; }

static off_t log_size(const char *dir) {
  char path[128];
  struct stat st;
  snprintf(path, sizeof path, "%s/series.wal", dir);
  CHECK(stat(path, &st) == 0);
  return st.st_size;
}

/* ---- the log ------------------------------------------------------------------- */

/* The case: the write that met the full disk left half a record;
 * later writes were acknowledged after it and lost at the next start. */
TEST(a_write_cut_short_is_cut_back_before_the_next_append) {
  char *dir = store_dir();
  inject();
  struct series *s = open_store(dir);
  uint32_t a;
  char why[1024];
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  off_t good = log_size(dir);
  fault.fail_write_at = fault.write_calls + 1;
  fault.short_by = 7; /* all but the last 7 bytes, then ENOSPC */
  CHECK_EQ_INT(put(s, a, 20, 2.0), GROVE_EIO);
  CHECK_EQ_INT(log_size(dir), good); /* the half record is gone already */
  CHECK(!healthy(s, why, sizeof why));
  CHECK(strstr(why, "series log") && strstr(why, "No space left on device"));
  CHECK(put(s, a, 30, 3.0) == 0); /* space again: acknowledged */
  CHECK(put(s, a, 40, 4.0) == 0);
  CHECK(healthy(s, why, sizeof why));
  int64_t want[] = {10, 30, 40};
  holds(s, a, want, 3);
  series_close(s);
  s = open_store(dir); /* every acknowledged point is there, the refused one is not */
  holds(s, a, want, 3);
  series_close(s);
}

/* A write that fails at once (nothing written) and a write that fails on
 * a later call of the same group: both leave no bytes behind. */
TEST(a_write_refused_whole_leaves_nothing_either) {
  char *dir = store_dir();
  inject();
  struct series *s = open_store(dir);
  uint32_t a, b;
  char why[1024];
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  CHECK(series_id(s, "disk,host=b v", &b) == 0); /* its key rides with the failing group */
  fault.fail_write_at = fault.write_calls + 1;
  CHECK_EQ_INT(put(s, b, 20, 2.0), GROVE_EIO);
  CHECK(!healthy(s, why, sizeof why));
  CHECK(put(s, b, 50, 5.0) == 0); /* the key is logged with this one */
  CHECK(healthy(s, why, sizeof why));
  series_close(s);
  s = open_store(dir);
  uint32_t again;
  CHECK(series_find(s, "disk,host=b v", &again) == 0 && again == b);
  int64_t wa[] = {10}, wb[] = {50};
  holds(s, a, wa, 1);
  holds(s, b, wb, 1);
  series_close(s);
}

/* A sync that fails after a whole write: the records are complete in the
 * file, but were refused, so they are cut and never come back. */
TEST(a_failed_sync_is_cut_back_and_not_replayed) {
  char *dir = store_dir();
  inject();
  struct series *s = open_store(dir);
  uint32_t a;
  char why[1024];
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  off_t good = log_size(dir);
  fault.fail_sync_at = fault.sync_calls + 1;
  CHECK_EQ_INT(put(s, a, 20, 2.0), GROVE_EIO);
  CHECK_EQ_INT(log_size(dir), good);
  CHECK(!healthy(s, why, sizeof why) && strstr(why, "cannot sync"));
  int64_t once[] = {10};
  holds(s, a, once, 1); /* not in the head either */
  CHECK(put(s, a, 30, 3.0) == 0);
  CHECK(healthy(s, why, sizeof why));
  series_close(s);
  s = open_store(dir);
  int64_t want[] = {10, 30};
  holds(s, a, want, 2);
  series_close(s);
}

/* While the cut itself fails, nothing is appended after the garbage:
 * every write is refused (and retries the cut first) until it works. */
TEST(writes_are_refused_while_the_cut_back_fails) {
  char *dir = store_dir();
  inject();
  struct series *s = open_store(dir);
  uint32_t a;
  char why[1024];
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  fault.fail_write_at = fault.write_calls + 1;
  fault.short_by = 5;
  fault.fail_truncates = 3; /* the cut after the failure, then two retries */
  CHECK_EQ_INT(put(s, a, 20, 2.0), GROVE_EIO);
  int writes = fault.write_calls;
  CHECK_EQ_INT(put(s, a, 30, 3.0), GROVE_EIO);
  CHECK_EQ_INT(put(s, a, 40, 4.0), GROVE_EIO);
  CHECK_EQ_INT(fault.write_calls, writes); /* nothing written after the garbage */
  CHECK_EQ_INT(fault.truncate_calls, 3);
  CHECK(!healthy(s, why, sizeof why));
  CHECK(strstr(why, "cannot cut") && strstr(why, "refused"));
  /* a flush cannot set a dirty log aside either: it cuts first, or fails */
  fault.fail_truncates = 1;
  CHECK(series_flush(s) != 0);
  CHECK(put(s, a, 50, 5.0) == 0); /* the cut works now: then the write */
  CHECK(!healthy(s, why, sizeof why) && !strstr(why, "series log") &&
        strstr(why, "series chunks")); /* until a flush works */
  CHECK(series_flush(s) == 0);
  CHECK(healthy(s, why, sizeof why));
  series_close(s);
  s = open_store(dir);
  int64_t want[] = {10, 50};
  holds(s, a, want, 2);
  series_close(s);
}

/* The fsync that makes the cut durable counts too: until it succeeds
 * the log counts as holding garbage. */
TEST(a_cut_is_synced_before_writes_go_on) {
  char *dir = store_dir();
  inject();
  struct series *s = open_store(dir);
  uint32_t a;
  char why[1024];
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  fault.fail_write_at = fault.write_calls + 1;
  fault.short_by = 3;
  fault.fail_fsyncs = 2; /* the cut's sync, then its first retry's */
  CHECK_EQ_INT(put(s, a, 20, 2.0), GROVE_EIO);
  int writes = fault.write_calls;
  CHECK_EQ_INT(put(s, a, 30, 3.0), GROVE_EIO);
  CHECK_EQ_INT(fault.write_calls, writes);
  CHECK(!healthy(s, why, sizeof why) && strstr(why, "cannot cut"));
  CHECK(put(s, a, 40, 4.0) == 0);
  CHECK_EQ_INT(fault.fsync_calls, 3);
  CHECK(healthy(s, why, sizeof why));
  series_close(s);
  s = open_store(dir);
  int64_t want[] = {10, 40};
  holds(s, a, want, 2);
  series_close(s);
}

/* Setting the log aside for a flush syncs the folder; when that fails the
 * flush fails and the log stays where it was, its points kept. */
TEST(a_set_aside_that_cannot_be_synced_is_undone) {
  char *dir = store_dir();
  inject();
  struct series *s = open_store(dir);
  uint32_t a;
  char why[1024];
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  fault.fail_fsyncs = 1;
  CHECK(series_flush(s) != 0);
  CHECK(!healthy(s, why, sizeof why) && strstr(why, "series chunks"));
  char old[128];
  snprintf(old, sizeof old, "%s/series.wal.old", dir);
  CHECK(access(old, F_OK) != 0);
  CHECK(put(s, a, 20, 2.0) == 0);
  CHECK(series_flush(s) == 0);
  CHECK(healthy(s, why, sizeof why));
  series_close(s);
  s = open_store(dir);
  int64_t want[] = {10, 20};
  holds(s, a, want, 2);
  series_close(s);
}

/* ---- chunks ------------------------------------------------------------------------ */

/* SQLITE_FULL while points move into chunks: the flush fails whole, the
 * points stay readable and in the logs, writes go on, and the next flush
 * once there is room moves everything. */
TEST(a_full_database_keeps_points_until_a_flush_succeeds) {
  full_vfs_install();
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  char why[1024];
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  CHECK(put(s, a, 20, 2.0) == 0);
  db_full = true;
  CHECK(series_flush(s) != 0);
  CHECK(!healthy(s, why, sizeof why));
  CHECK(strstr(why, "series chunks") && strstr(why, "full"));
  CHECK(put(s, a, 30, 3.0) == 0); /* the log still takes writes */
  int64_t three[] = {10, 20, 30};
  holds(s, a, three, 3);
  CHECK(series_flush(s) != 0); /* still full: the set-aside points wait */
  holds(s, a, three, 3);
  db_full = false;
  CHECK(series_flush(s) == 0);
  CHECK(healthy(s, why, sizeof why));
  CHECK(series_flush(s) == 0); /* the point written meanwhile */
  CHECK_EQ_INT(series_head_points(s), 0);
  holds(s, a, three, 3);
  series_close(s);
  s = open_store(dir);
  holds(s, a, three, 3);
  series_close(s);
}

/* A flush rolled back (the database full at its commit) had extended the
 * minute and hour buckets it wrote: the next flush extends them from what
 * was committed, not from what the failed one saw. */
TEST(rollups_after_a_failed_flush_count_each_point_once) {
  full_vfs_install();
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "disk,host=r v", &a) == 0);
  const int64_t t0 = 1800000000LL * 1000000000LL; /* a minute's start */
  CHECK(put(s, a, t0 + 1000000000LL, 1.0) == 0);
  CHECK(put(s, a, t0 + 2000000000LL, 2.0) == 0);
  CHECK(series_flush(s) == 0);
  CHECK(put(s, a, t0 + 3000000000LL, 3.0) == 0);
  db_full = true;
  CHECK(series_flush(s) != 0);
  db_full = false;
  CHECK(series_flush(s) == 0);
  for (int k = 0; k < 2; k++) { /* the minute, and the hour */
    struct series_bucket *b;
    size_t n;
    const char *source;
    int64_t step = k ? 3600000000000LL : 60000000000LL;
    int64_t from = t0 / step * step;
    CHECK(series_aggregate(s, a, from, from + step, step, 10, &b, &n, &source) == 0);
    CHECK(strcmp(source, k ? "1h" : "1m") == 0);
    CHECK_EQ_INT(n, 1);
    CHECK(b[0].count == 3 && b[0].sum == 6 && b[0].min == 1 && b[0].max == 3);
    CHECK(b[0].first == 1 && b[0].last == 3);
    free(b);
  }
  series_close(s);
}

/* A crash while the database is full and points wait set aside: both
 * logs replay. */
TEST(a_crash_while_the_database_is_full_loses_nothing) {
  full_vfs_install();
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  db_full = true;
  CHECK(series_flush(s) != 0);
  CHECK(put(s, a, 20, 2.0) == 0);
  series_close(s); /* nothing more is written at close: as a crash */
  db_full = false;
  s = open_store(dir);
  int64_t want[] = {10, 20};
  holds(s, a, want, 2);
  series_close(s);
}

/* A restart while the disk is still full, with points set aside by a
 * flush that failed: the store opens (it used to refuse), the points wait
 * set aside and readable, writes go on, and the first flush with room
 * moves them. The same rewrites through several restarts keep the last
 * value. */
TEST(a_restart_on_a_full_disk_opens_with_the_points_waiting) {
  full_vfs_install();
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  char why[1024];
  CHECK(series_id(s, "disk,host=a v", &a) == 0);
  CHECK(put(s, a, 10, 1.0) == 0);
  CHECK(put(s, a, 20, 2.0) == 0);
  db_full = true;
  CHECK(series_flush(s) != 0);
  CHECK(put(s, a, 30, 3.0) == 0);
  series_close(s);
  s = open_store(dir); /* still full */
  CHECK(!healthy(s, why, sizeof why) && strstr(why, "series chunks"));
  int64_t three[] = {10, 20, 30};
  holds(s, a, three, 3);
  CHECK(put(s, a, 40, 4.0) == 0);
  uint32_t b; /* a rewrite after the points set aside wins over them */
  CHECK(series_id(s, "disk,host=b v", &b) == 0);
  CHECK(put(s, b, 10, 1.0) == 0);
  CHECK(put(s, b, 20, 9.0) == 0); /* set aside at the next open; 2.0 comes after */
  series_close(s);
  s = open_store(dir); /* again, still full: nothing lost, doubled or reordered */
  int64_t four[] = {10, 20, 30, 40};
  holds(s, a, four, 4);
  struct series_sample *pts;
  size_t n;
  CHECK(series_range(s, b, INT64_MIN, INT64_MAX, &pts, &n) == 0);
  CHECK(n == 2 && pts[0].value == 1.0 && pts[1].value == 9.0);
  free(pts);
  CHECK(put(s, b, 20, 2.0) == 0);
  db_full = false;
  CHECK(series_flush(s) == 0);
  CHECK(healthy(s, why, sizeof why));
  CHECK(put(s, a, 50, 5.0) == 0);
  CHECK(series_flush(s) == 0);
  series_close(s);
  s = open_store(dir);
  int64_t five[] = {10, 20, 30, 40, 50};
  holds(s, a, five, 5);
  int64_t two[] = {10, 20};
  holds(s, b, two, 2);
  CHECK(series_flush(s) == 0);
  series_close(s);
  char old[128];
  snprintf(old, sizeof old, "%s/series.wal.old", dir);
  CHECK(access(old, F_OK) != 0);
}

static const struct test tests[] = {
    T(a_restart_on_a_full_disk_opens_with_the_points_waiting),
    T(a_write_cut_short_is_cut_back_before_the_next_append),
    T(a_write_refused_whole_leaves_nothing_either),
    T(a_failed_sync_is_cut_back_and_not_replayed),
    T(writes_are_refused_while_the_cut_back_fails),
    T(a_cut_is_synced_before_writes_go_on),
    T(a_set_aside_that_cannot_be_synced_is_undone),
    T(a_full_database_keeps_points_until_a_flush_succeeds),
    T(rollups_after_a_failed_flush_count_each_point_once),
    T(a_crash_while_the_database_is_full_loses_nothing),
};
TEST_MAIN(tests)
