/* tus_upload.c — the state of resumable uploads: one data file per upload
 * in the blob store's spool directory and its record in the store
 * (tus_uploads), a write lock with a lease and a fencing token per record,
 * the durable offset (fsync before commit), concatenation and the expiry
 * sweep. Every call blocks (files and store): run them off the loop.
 *
 * A plain upload is hashed (SHA-256) as its bytes are written, so the
 * PATCH that completes it hands the blob store a known hash instead of a
 * second read of the whole file. The state of that hash at the durable
 * offset outlives a PATCH in memory (struct tus's `saved`, bounded): the
 * next PATCH of the upload on this process continues it when the offset
 * is still the one it covers; else (a restart, another instance wrote
 * meanwhile, evicted) nothing is hashed and the blob store reads the file.
 * The bytes below a durable offset never change, so a state that covers
 * [0, offset) stays true for as long as the upload does. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blobs/internal.h"
#include "blobs/tus.h"
#include "core/error.h"
#include "core/log.h"
#include "core/periodic.h"
#include "core/util.h"

const struct cfg_opt tus_cfg_opts[] = {
    CFG_OPT(struct tus_cfg, "upload-expiry", CFG_MS, expiry_ms, "24h", "an unfinished resumable (tus) upload is removed this long after its last write (Upload-Expires)"),
    CFG_OPT(struct tus_cfg, "upload-sweep", CFG_MS, sweep_ms, "1m", "how often expired resumable uploads are looked for"),
    CFG_OPT(struct tus_cfg, "upload-lock", CFG_MS, lock_ms, "90s", "lease of the lock a PATCH holds on its upload (renewed while bytes arrive; longer than --body-timeout); a crashed writer's lock frees after it"),
    CFG_OPT(struct tus_cfg, "upload-checkpoint", CFG_SIZE, checkpoint, "8m", "bytes a PATCH receives between fsyncs of its upload's offset: what a crash may lose of it"),
};
const size_t tus_cfg_nopts = ARRAY_LEN(tus_cfg_opts);

/* kind: 'plain', 'partial', 'final'. expires_at: Unix ms, the record and
 * its data go after it. blob: the blob a finished upload became. The lock:
 * lock_holder (an instance id) with lock_until (Unix ms) and lock_token
 * (grows with every take: the fencing token). */
static const char TUS_V1[] =
    "CREATE TABLE tus_uploads ("
    " id TEXT PRIMARY KEY,"
    " owner TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " length BIGINT NOT NULL,"
    " upload_offset BIGINT NOT NULL DEFAULT 0,"
    " metadata TEXT,"
    " parts TEXT,"
    " created_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL,"
    " blob_id TEXT,"
    " lock_holder TEXT,"
    " lock_until BIGINT,"
    " lock_token BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX tus_uploads_expires ON tus_uploads (expires_at)";

const struct store_migration tus_migrations[] = {
    {1, "tus_uploads", TUS_V1, NULL},
};
const size_t tus_nmigrations = ARRAY_LEN(tus_migrations);

#define SAVED_MAX 256 /* hash states kept between PATCHes */

struct saved_hash {
  char id[TUS_ID_LEN];
  uint64_t offset;  /* md covers the bytes [0, offset) */
  int64_t at;       /* when saved: the oldest goes first */
  EVP_MD_CTX *md;
};

struct tus {
  struct tus_cfg cfg;
  struct store *st;
  char dir[PATH_MAX];      /* <data dir>/uploads */
  char instance[TUS_ID_LEN]; /* this data directory's instance id: the lock holder */
  int64_t (*now_ms)(void *arg);
  void *now_arg;
  struct periodic *sweeper; /* every sweep_ms, when set */
  pthread_mutex_t saved_mu;
  struct saved_hash saved[SAVED_MAX];
  int nsaved;
  struct tus_frontier *frontier; /* concatenations hashed as their parts arrive */
  /* bytes the finals of this process hashed themselves (tus_hashed_at_final) */
  pthread_mutex_t stat_mu;
  uint64_t final_hashed;
};

struct tus_write {
  struct tus *t;
  char id[TUS_ID_LEN];
  char token[24];          /* the fencing token, as text */
  int fd;
  uint64_t length;
  enum tus_kind kind;
  uint64_t durable;        /* committed offset */
  uint64_t offset;         /* written so far */
  bool locked;             /* false once the lease is known lost */
  int64_t lease_until;     /* Unix ms: as committed at the last take or renewal */
  int64_t renew_at;        /* a write past this renews the lease first */
  EVP_MD_CTX *md;          /* plain uploads: SHA-256 of [0, offset), or NULL */
  EVP_MD_CTX *md_durable;  /* the same at [0, durable) (NULL with md) */
};


static int64_t wall_ms(void *arg) {
  (void)arg;
  return (int64_t)clock_wall_ms();
}

static int64_t now(const struct tus *t) { return t->now_ms(t->now_arg); }

const struct tus_cfg *tus_config(const struct tus *t) { return &t->cfg; }

void tus_set_clock(struct tus *t, int64_t (*now_ms)(void *arg), void *arg) {
  t->now_ms = now_ms ? now_ms : wall_ms;
  t->now_arg = arg;
}

void tus_data_path(const struct tus *t, const char *id, char *out, size_t n) {
  int w = snprintf(out, n, "%s/%.*s", t->dir, TUS_ID_LEN - 1, id);
  (void)w; /* tus_open keeps dir short enough for any n >= PATH_MAX */
}

void tus_upload_release(struct tus_upload *u) {
  if (!u)
    return;
  free(u->metadata);
  free(u->parts);
  u->metadata = NULL;
  u->parts = NULL;
}

static void dec(int64_t v, char out[24]) { snprintf(out, 24, "%" PRId64, v); }

static int64_t col_i64(const struct store_rows *r, int row, const char *col) {
  const char *v = store_rows_get(r, row, col);
  return v ? strtoll(v, NULL, 10) : 0;
}

static int query(struct tus *t, const char *sql, const char *const *p, int n,
                 struct store_rows **rows) {
  char err[256];
  int rc = store_query(t->st, sql, p, n, rows, err, sizeof err);
  if (rc)
    log_error(NULL, "tus: store call failed", "error=\"%s\"", err);
  return rc;
}

/* fsync of a folder, so that a file made or renamed in it stays. */
static int sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return GROVE_EIO;
  int rc = fsync(fd) ? GROVE_EIO : 0;
  close(fd);
  return rc;
}

static const char COLS[] = "id, owner, kind, length, upload_offset, metadata, parts, created_at, "
                           "expires_at, blob_id, lock_holder, lock_until, lock_token";

static void row_to_upload(const struct store_rows *r, int i, struct tus_upload *u) {
  memset(u, 0, sizeof *u);
  snprintf(u->id, sizeof u->id, "%s", store_rows_get(r, i, "id"));
  snprintf(u->owner, sizeof u->owner, "%s", store_rows_get(r, i, "owner"));
  const char *kind = store_rows_get(r, i, "kind");
  u->kind = strcmp(kind, "partial") == 0 ? TUS_PARTIAL
            : strcmp(kind, "final") == 0 ? TUS_FINAL
                                         : TUS_PLAIN;
  u->length = (uint64_t)col_i64(r, i, "length");
  u->offset = (uint64_t)col_i64(r, i, "upload_offset");
  const char *m = store_rows_get(r, i, "metadata");
  u->metadata = m ? strdup(m) : NULL;
  const char *p = store_rows_get(r, i, "parts");
  u->parts = p ? strdup(p) : NULL;
  u->created_ms = col_i64(r, i, "created_at");
  u->expires_ms = col_i64(r, i, "expires_at");
  const char *b = store_rows_get(r, i, "blob_id");
  snprintf(u->blob, sizeof u->blob, "%s", b ? b : "");
}

static const char *kind_name(enum tus_kind k) {
  return k == TUS_PARTIAL ? "partial" : k == TUS_FINAL ? "final" : "plain";
}

/* Whether w may still touch the file: its lease holds, with a tenth of it
 * to spare against clocks that differ between instances. A writer stops
 * before another can take its lease, so two never write one file. */
static bool lease_held(struct tus_write *w) {
  if (w->locked && now(w->t) >= w->lease_until - (int64_t)w->t->cfg.lock_ms / 10)
    w->locked = false;
  return w->locked;
}

static void leased(struct tus_write *w, int64_t at) {
  w->lease_until = at + (int64_t)w->t->cfg.lock_ms;
  w->renew_at = at + (int64_t)w->t->cfg.lock_ms / 3;
}

/* Runs an UPDATE of w's record fenced by its token: `set` assigns from
 * $4 on ($1 the id, $2 the token, $3 the holder; vals are $4…). Returns
 * 0, GROVE_EPERM when the token no longer holds the record (taken over or
 * deleted: w may do nothing more), or the store's error. */
static int fenced(struct tus_write *w, const char *set, const char *const *vals, int nvals) {
  struct tus *t = w->t;
  char sql[256];
  snprintf(sql, sizeof sql,
           "UPDATE tus_uploads SET %s WHERE id = $1 AND lock_token = $2 AND lock_holder = $3",
           set);
  const char *p[8] = {w->id, w->token, t->instance};
  for (int i = 0; i < nvals && i < 5; i++)
    p[3 + i] = vals[i];
  struct store_rows *r = NULL;
  int rc = query(t, sql, p, 3 + nvals, &r);
  if (rc)
    return rc;
  long long changed = r->changes;
  store_rows_free(r);
  if (!changed) {
    w->locked = false;
    return GROVE_EPERM;
  }
  return 0;
}

/* Extends w's lease. */
static int renew(struct tus_write *w) {
  char until[24];
  int64_t n = now(w->t);
  dec(n + (int64_t)w->t->cfg.lock_ms, until);
  const char *v[] = {until};
  int rc = fenced(w, "lock_until = $4", v, 1);
  if (!rc)
    leased(w, n);
  return rc;
}

/* ---- the running hash of a plain upload ------------------------------------------ */

static void saved_drop_at(struct tus *t, int i) {
  EVP_MD_CTX_free(t->saved[i].md);
  t->saved[i] = t->saved[--t->nsaved];
}

/* Forgets the saved hash of id, if any. */
static void saved_forget(struct tus *t, const char *id) {
  pthread_mutex_lock(&t->saved_mu);
  for (int i = 0; i < t->nsaved; i++)
    if (strcmp(t->saved[i].id, id) == 0) {
      saved_drop_at(t, i);
      break;
    }
  pthread_mutex_unlock(&t->saved_mu);
}

/* Keeps md (the hash of id's bytes [0, offset)) for the next writer;
 * takes it whatever happens. */
static void saved_put(struct tus *t, const char *id, uint64_t offset, EVP_MD_CTX *md) {
  pthread_mutex_lock(&t->saved_mu);
  for (int i = 0; i < t->nsaved; i++)
    if (strcmp(t->saved[i].id, id) == 0) {
      saved_drop_at(t, i);
      break;
    }
  if (t->nsaved == SAVED_MAX) { /* the oldest goes */
    int old = 0;
    for (int i = 1; i < t->nsaved; i++)
      if (t->saved[i].at < t->saved[old].at)
        old = i;
    saved_drop_at(t, old);
  }
  struct saved_hash *h = &t->saved[t->nsaved++];
  memcpy(h->id, id, TUS_ID_LEN);
  h->offset = offset;
  h->at = now(t);
  h->md = md;
  pthread_mutex_unlock(&t->saved_mu);
}

static void hash_stop(struct tus_write *w) {
  EVP_MD_CTX_free(w->md);
  EVP_MD_CTX_free(w->md_durable);
  w->md = w->md_durable = NULL;
}

/* Starts w's running hash at its durable offset: fresh at 0, else the
 * saved state when it covers exactly that prefix; else none. */
static void hash_resume(struct tus_write *w) {
  struct tus *t = w->t;
  EVP_MD_CTX *md = NULL;
  pthread_mutex_lock(&t->saved_mu);
  for (int i = 0; i < t->nsaved; i++)
    if (strcmp(t->saved[i].id, w->id) == 0) {
      if (t->saved[i].offset == w->durable) {
        md = t->saved[i].md;
        t->saved[i].md = NULL;
      }
      saved_drop_at(t, i);
      break;
    }
  pthread_mutex_unlock(&t->saved_mu);
  if (!md && w->durable == 0 &&
      (!(md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)) {
    EVP_MD_CTX_free(md);
    md = NULL;
  }
  if (!md)
    return;
  w->md_durable = md;
  if (!(w->md = EVP_MD_CTX_new()) || EVP_MD_CTX_copy_ex(w->md, md) != 1)
    hash_stop(w);
}

/* ---- life --------------------------------------------------------------------- */

static int instance_id(struct tus *t, const char *instance, char *err, size_t errlen) {
  if (instance) {
    if (!tus_id_valid(instance)) {
      snprintf(err, errlen, "bad upload instance id");
      return GROVE_EINVAL;
    }
    memcpy(t->instance, instance, TUS_ID_LEN);
    return 0;
  }
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/.instance", t->dir);
  return blobs_id_file(path, t->instance, err, errlen);
}

static uint64_t sweep_tick(void *arg) {
  struct tus *t = arg;
  int n = 0;
  if (tus_sweep(t, &n) == 0 && n)
    log_info(NULL, "expired uploads removed", "count=%d", n);
  return 0;
}

int tus_open(struct tus **out, const struct tus_cfg *cfg, struct store *st, const char *dir,
             const char *instance, char *err, size_t errlen) {
  *out = NULL;
  struct tus *t = calloc(1, sizeof *t);
  if (!t)
    return GROVE_ENOMEM;
  t->cfg = *cfg;
  if (!t->cfg.lock_ms)
    t->cfg.lock_ms = 30000;
  if (!t->cfg.checkpoint)
    t->cfg.checkpoint = 8u << 20;
  t->st = st;
  t->now_ms = wall_ms;
  pthread_mutex_init(&t->saved_mu, NULL);
  int n = snprintf(t->dir, sizeof t->dir, "%s", dir);
  if (!*dir || n < 0 || (size_t)n >= sizeof t->dir - TUS_ID_LEN - 8) {
    snprintf(err, errlen, "bad or too long upload directory '%s'", dir);
    free(t);
    return GROVE_EINVAL;
  }
  if (mkdir_p(t->dir, 0700)) {
    snprintf(err, errlen, "cannot make '%s': %s", t->dir, strerror(errno));
    free(t);
    return GROVE_EIO;
  }
  int rc = instance_id(t, instance, err, errlen);
  if (rc) {
    free(t);
    return rc;
  }
  /* this data directory is one process's (the data-dir lock): locks it
   * holds are an earlier life's, dead */
  const char *p[] = {t->instance};
  char qerr[256];
  rc = store_query(st, "UPDATE tus_uploads SET lock_holder = NULL, lock_until = NULL "
                       "WHERE lock_holder = $1",
                   p, 1, NULL, qerr, sizeof qerr);
  if (rc) {
    snprintf(err, errlen, "cannot free old upload locks: %s", qerr);
    free(t);
    return rc;
  }
  if ((rc = tus_frontier_open(&t->frontier, t->dir))) {
    snprintf(err, errlen, "cannot start the concatenation hasher: %s", grove_strerror(rc));
    free(t);
    return rc;
  }
  pthread_mutex_init(&t->stat_mu, NULL);
  if (t->cfg.sweep_ms && (rc = periodic_start(&t->sweeper, t->cfg.sweep_ms, sweep_tick, t))) {
    snprintf(err, errlen, "cannot start the upload sweep: %s", grove_strerror(rc));
    tus_frontier_close(t->frontier);
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

void tus_close(struct tus *t) {
  if (!t)
    return;
  periodic_stop(t->sweeper);
  tus_frontier_close(t->frontier);
  pthread_mutex_destroy(&t->stat_mu);
  while (t->nsaved)
    saved_drop_at(t, 0);
  pthread_mutex_destroy(&t->saved_mu);
  free(t);
}

/* ---- records --------------------------------------------------------------------- */

int tus_create(struct tus *t, const struct tus_new *nu, struct tus_upload *u) {
  char id[TUS_ID_LEN], len[24], created[24], expires[24];
  rand_hex(id, sizeof id);
  int64_t at = now(t);
  dec((int64_t)nu->length, len);
  dec(at, created);
  dec(at + (int64_t)t->cfg.expiry_ms, expires);
  /* the record first: a data file never exists without one (the sweep
   * takes such files for leftovers) */
  const char *p[] = {id, nu->owner, kind_name(nu->kind), len, nu->metadata, created, expires};
  int rc = query(t, "INSERT INTO tus_uploads (id, owner, kind, length, metadata, created_at, "
                    "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                 p, 7, NULL);
  if (rc)
    return rc;
  char path[PATH_MAX + 64];
  tus_data_path(t, id, path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || fsync(fd) || sync_dir(t->dir)) {
    log_error(NULL, "tus: cannot make data file", "path=\"%s\" error=\"%s\"", path,
              strerror(errno));
    if (fd >= 0)
      close(fd);
    unlink(path);
    const char *d[] = {id};
    query(t, "DELETE FROM tus_uploads WHERE id = $1", d, 1, NULL);
    return GROVE_EIO;
  }
  close(fd);
  if (nu->kind == TUS_PARTIAL)
    tus_frontier_created(t->frontier, nu->owner, id, nu->length);
  memset(u, 0, sizeof *u);
  memcpy(u->id, id, sizeof id);
  snprintf(u->owner, sizeof u->owner, "%s", nu->owner);
  u->kind = nu->kind;
  u->length = nu->length;
  u->metadata = nu->metadata ? strdup(nu->metadata) : NULL;
  u->created_ms = at;
  u->expires_ms = at + (int64_t)t->cfg.expiry_ms;
  return 0;
}

/* The record of id as it is (no owner or expiry check). */
static int read_record(struct tus *t, const char *id, struct tus_upload *u, char *holder,
                       int64_t *lock_until) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT %s FROM tus_uploads WHERE id = $1", COLS);
  const char *p[] = {id};
  struct store_rows *r = NULL;
  int rc = query(t, sql, p, 1, &r);
  if (rc)
    return rc;
  if (r->nrows == 0) {
    store_rows_free(r);
    return GROVE_ENOENT;
  }
  row_to_upload(r, 0, u);
  if (holder) {
    const char *h = store_rows_get(r, 0, "lock_holder");
    snprintf(holder, TUS_ID_LEN, "%s", h ? h : "");
  }
  if (lock_until)
    *lock_until = col_i64(r, 0, "lock_until");
  store_rows_free(r);
  return 0;
}

int tus_get(struct tus *t, const char *id, const char *owner, struct tus_upload *u) {
  memset(u, 0, sizeof *u);
  if (!tus_id_valid(id))
    return GROVE_ENOENT;
  int rc = read_record(t, id, u, NULL, NULL);
  if (rc)
    return rc;
  if ((owner && strcmp(u->owner, owner) != 0) || u->expires_ms <= now(t)) {
    tus_upload_release(u);
    return GROVE_ENOENT;
  }
  return 0;
}

/* ---- writing ------------------------------------------------------------------------ */

int tus_lock(struct tus *t, const char *id, const char *owner, struct tus_write **out,
             struct tus_upload *uout) {
  *out = NULL;
  struct tus_upload u;
  int rc = tus_get(t, id, owner, &u);
  if (rc)
    return rc;
  if (u.kind == TUS_FINAL || u.offset >= u.length) {
    if (uout)
      *uout = u;
    else
      tus_upload_release(&u);
    return GROVE_EEXIST;
  }
  char at[24], until[24];
  int64_t n = now(t);
  dec(n, at);
  dec(n + (int64_t)t->cfg.lock_ms, until);
  const char *p[] = {id, t->instance, until, at};
  struct store_rows *r = NULL;
  rc = query(t, "UPDATE tus_uploads SET lock_holder = $2, lock_until = $3, "
                "lock_token = lock_token + 1 "
                "WHERE id = $1 AND (lock_holder IS NULL OR lock_until < $4)",
             p, 4, &r);
  if (rc)
    goto fail;
  long long changed = r->changes;
  store_rows_free(r);
  if (changed == 0) {
    rc = GROVE_EBUSY;
    goto fail;
  }
  /* ours now: the token and offset as the take left them */
  tus_upload_release(&u);
  const char *q[] = {id};
  rc = query(t, "SELECT upload_offset, lock_token FROM tus_uploads WHERE id = $1", q, 1, &r);
  if (rc)
    goto fail_unlocked;
  if (r->nrows == 0) {
    store_rows_free(r);
    rc = GROVE_ENOENT;
    goto fail_unlocked;
  }
  struct tus_write *w = calloc(1, sizeof *w);
  if (!w) {
    store_rows_free(r);
    rc = GROVE_ENOMEM;
    goto fail_unlocked;
  }
  w->t = t;
  w->fd = -1;
  memcpy(w->id, id, TUS_ID_LEN);
  snprintf(w->token, sizeof w->token, "%s", store_rows_get(r, 0, "lock_token"));
  w->durable = w->offset = (uint64_t)col_i64(r, 0, "upload_offset");
  store_rows_free(r);
  w->locked = true;
  leased(w, n);
  rc = tus_get(t, id, owner, &u); /* the record for the caller, under the lock */
  if (rc) {
    tus_unlock(w);
    return rc;
  }
  w->length = u.length;
  w->kind = u.kind;
  char path[PATH_MAX + 64];
  tus_data_path(t, id, path, sizeof path);
  /* bytes past the durable offset were never acknowledged: cut them */
  w->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  struct stat sb;
  bool ok = w->fd >= 0 && fstat(w->fd, &sb) == 0;
  if (ok && (uint64_t)sb.st_size < w->durable) {
    ok = false; /* shorter than what was acknowledged: lost, never padded */
    errno = EIO;
  }
  if (ok && (uint64_t)sb.st_size > w->durable)
    ok = ftruncate(w->fd, (off_t)w->durable) == 0;
  if (!ok) {
    log_error(NULL, "tus: cannot open data file", "path=\"%s\" error=\"%s\"", path,
              strerror(errno));
    tus_upload_release(&u);
    tus_unlock(w);
    return GROVE_EIO;
  }
  if (u.kind == TUS_PLAIN)
    hash_resume(w);
  if (uout)
    *uout = u;
  else
    tus_upload_release(&u);
  *out = w;
  return 0;
fail:
  tus_upload_release(&u);
  return rc;
fail_unlocked: {
  /* took the lock, then failed: give it back */
  const char *d[] = {id, t->instance};
  query(t, "UPDATE tus_uploads SET lock_holder = NULL, lock_until = NULL "
           "WHERE id = $1 AND lock_holder = $2",
        d, 2, NULL);
  return rc;
}
}

uint64_t tus_write_offset(const struct tus_write *w) { return w->offset; }
uint64_t tus_write_durable(const struct tus_write *w) { return w->durable; }

int tus_write(struct tus_write *w, const void *data, size_t n) {
  if (n > w->length - w->offset)
    return GROVE_ETOOBIG;
  if (!lease_held(w))
    return GROVE_EPERM;
  if (now(w->t) >= w->renew_at) {
    int rc = renew(w);
    if (rc)
      return rc;
  }
  const char *p = data;
  while (n > 0) {
    ssize_t k = pwrite(w->fd, p, n, (off_t)w->offset);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      log_error(NULL, "tus: cannot write data file", "id=%s error=\"%s\"", w->id,
                strerror(errno));
      return GROVE_EIO;
    }
    if (w->md && EVP_DigestUpdate(w->md, p, (size_t)k) != 1)
      hash_stop(w);
    p += k;
    n -= (size_t)k;
    w->offset += (uint64_t)k;
  }
  return 0;
}

int tus_checkpoint(struct tus_write *w) {
  if (!lease_held(w))
    return GROVE_EPERM;
  if (w->offset != w->durable && fdatasync(w->fd)) {
    log_error(NULL, "tus: cannot sync data file", "id=%s error=\"%s\"", w->id, strerror(errno));
    return GROVE_EIO;
  }
  struct tus *t = w->t;
  char off[24], until[24], expires[24];
  int64_t n = now(t);
  dec((int64_t)w->offset, off);
  dec(n + (int64_t)t->cfg.lock_ms, until);
  dec(n + (int64_t)t->cfg.expiry_ms, expires);
  const char *v[] = {off, until, expires};
  int rc = fenced(w, "upload_offset = $4, lock_until = $5, expires_at = $6", v, 3);
  if (rc)
    return rc;
  w->durable = w->offset;
  if (w->kind == TUS_PARTIAL)
    tus_frontier_durable(t->frontier, w->id, w->durable);
  if (w->md && EVP_MD_CTX_copy_ex(w->md_durable, w->md) != 1)
    hash_stop(w);
  leased(w, n);
  return 0;
}

bool tus_write_sha256(const struct tus_write *w, char out[65]) {
  if (!w->md_durable || w->durable != w->length)
    return false;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dl = 0;
  bool ok = md && EVP_MD_CTX_copy_ex(md, w->md_durable) == 1 &&
            EVP_DigestFinal_ex(md, d, &dl) == 1 && dl == 32;
  EVP_MD_CTX_free(md);
  if (ok)
    for (unsigned i = 0; i < dl; i++)
      snprintf(out + 2 * i, 3, "%02x", d[i]);
  return ok;
}

int tus_discard(struct tus_write *w) {
  if (!lease_held(w)) /* the file may be another writer's now */
    return GROVE_EPERM;
  if (ftruncate(w->fd, (off_t)w->durable))
    return GROVE_EIO;
  w->offset = w->durable;
  if (w->md && EVP_MD_CTX_copy_ex(w->md, w->md_durable) != 1)
    hash_stop(w);
  return 0;
}

void tus_unlock(struct tus_write *w) {
  if (!w)
    return;
  if (w->fd >= 0) {
    if (w->offset != w->durable && lease_held(w) && ftruncate(w->fd, (off_t)w->durable))
      log_warn(NULL, "tus: cannot cut data file", "id=%s error=\"%s\"", w->id, strerror(errno));
    close(w->fd);
  }
  /* fenced: frees the lock only if this writer's token still holds it */
  fenced(w, "lock_holder = NULL, lock_until = NULL", NULL, 0);
  if (w->md_durable && w->durable < w->length) { /* for the next PATCH */
    saved_put(w->t, w->id, w->durable, w->md_durable);
    w->md_durable = NULL;
  }
  hash_stop(w);
  free(w);
}

int tus_finish(struct tus *t, const char *id, const char *blob) {
  /* the record stays (HEAD still answers for it) for one more expiry */
  char expires[24];
  dec(now(t) + (int64_t)t->cfg.expiry_ms, expires);
  const char *p[] = {id, blob, expires};
  struct store_rows *r = NULL;
  int rc = query(t, "UPDATE tus_uploads SET blob_id = $2, expires_at = $3, "
                    "upload_offset = length WHERE id = $1", p, 3, &r);
  if (rc)
    return rc;
  rc = r->changes ? 0 : GROVE_ENOENT;
  store_rows_free(r);
  return rc;
}

/* ---- concatenation ------------------------------------------------------------------ */

#define HASH_WINDOW (2u << 20) /* bytes of a part mapped at a time to copy or hash it */

/* Copies len bytes of `in` to `out` at offset at: shared blocks (a
 * reflink: XFS, btrfs) where the filesystem has them and the offsets are
 * block-aligned, else written from the source's pages mapped a window at
 * a time (one copy, from the page cache into the file's: copy_file_range
 * between two files without reflinks, tmpfs or ext4, goes through a pipe
 * page by page, several times slower). */
static int copy_range(int in, int out, uint64_t len, uint64_t at) {
  struct file_clone_range fcr = {.src_fd = in, .src_offset = 0, .src_length = len,
                                 .dest_offset = at};
  if (len && ioctl(out, FICLONERANGE, &fcr) == 0)
    return 0;
  for (uint64_t off = 0; off < len;) {
    size_t n = len - off < HASH_WINDOW ? (size_t)(len - off) : HASH_WINDOW;
    /* populated: a fault inside the write's copy makes the kernel redo
     * it (a large folio at a time) once the page is in */
    const char *map = mmap(NULL, n, PROT_READ, MAP_SHARED | MAP_POPULATE, in, (off_t)off);
    if (map == MAP_FAILED)
      return GROVE_EIO;
    size_t done = 0;
    while (done < n) {
      ssize_t k = pwrite(out, map + done, n - done, (off_t)(at + off + done));
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0) {
        munmap((void *)map, n);
        return GROVE_EIO;
      }
      done += (size_t)k;
    }
    munmap((void *)map, n);
    off += n;
  }
  return 0;
}

/* threads copying parts into a final's file: one, as writes to one file
 * take its lock in turn */
#define COPIERS 1

/* A final's parts: their files, lengths and places in the final. */
struct concat {
  int out;
  int n;
  int *fd;
  uint64_t *len, *at;
};

struct copier {
  struct concat *cc;
  int first; /* copies parts first, first + COPIERS, … */
  int rc;
};

static void *copier_main(void *arg) {
  struct copier *c = arg;
  for (int i = c->first; i < c->cc->n && !c->rc; i += COPIERS)
    c->rc = copy_range(c->cc->fd[i], c->cc->out, c->cc->len[i], c->cc->at[i]);
  return NULL;
}

/* Hashes parts [part, n) into md, the first from offset off, straight
 * from the page cache (mapped a window at a time, so the pages do not add
 * up in the resident set). */
static int hash_parts(struct concat *cc, int part, uint64_t off, EVP_MD_CTX *md,
                      uint64_t *hashed) {
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  for (int i = part; i < cc->n; i++, off = 0) {
    for (uint64_t at = off; at < cc->len[i];) {
      uint64_t base = at - at % page;
      size_t n = cc->len[i] - base < HASH_WINDOW ? (size_t)(cc->len[i] - base) : HASH_WINDOW;
      void *map = mmap(NULL, n, PROT_READ, MAP_SHARED, cc->fd[i], (off_t)base);
      if (map == MAP_FAILED)
        return GROVE_EIO;
      madvise(map, n, MADV_WILLNEED);
      int ok = EVP_DigestUpdate(md, (const char *)map + (at - base), n - (at - base));
      munmap(map, n);
      if (ok != 1)
        return GROVE_EIO;
      *hashed += n - (at - base);
      at = base + n;
    }
  }
  return 0;
}

/* Writes the parts of cc to cc->out, in place, COPIERS threads at once,
 * and with md hashes them on this thread meanwhile, from part `part`
 * offset `off` on (what the frontier had not). */
static int concat_copy(struct concat *cc, EVP_MD_CTX *md, int part, uint64_t off,
                       uint64_t *hashed) {
  struct copier cp[COPIERS];
  pthread_t th[COPIERS];
  bool started[COPIERS] = {false};
  for (int k = 0; k < COPIERS; k++) {
    cp[k] = (struct copier){cc, k, 0};
    started[k] = k < cc->n && pthread_create(&th[k], NULL, copier_main, &cp[k]) == 0;
  }
  int rc = md ? hash_parts(cc, part, off, md, hashed) : 0;
  for (int k = 0; k < COPIERS; k++) {
    if (started[k])
      pthread_join(th[k], NULL);
    else if (k < cc->n)
      copier_main(&cp[k]); /* no thread: here */
    if (!rc)
      rc = cp[k].rc;
  }
  return rc;
}

int tus_concat_final(struct tus *t, const char *owner, const char (*ids)[TUS_ID_LEN], int n,
                     const char *metadata, tus_part_fn sink, void *arg, struct tus_upload *u,
                     int *bad, char *sha256) {
  *bad = -1;
  EVP_MD_CTX *md = NULL;
  uint64_t total = 0;
  size_t plen = 0;
  for (int i = 0; i < n; i++) {
    struct tus_upload part;
    int rc = tus_get(t, ids[i], owner, &part);
    if (rc) {
      *bad = i;
      return rc;
    }
    bool ok = part.kind == TUS_PARTIAL && part.offset == part.length;
    tus_upload_release(&part);
    if (!ok) {
      *bad = i;
      return GROVE_EINVAL;
    }
    if (__builtin_add_overflow(total, part.length, &total) ||
        (t->cfg.max_size && total > t->cfg.max_size) || total > INT64_MAX)
      return GROVE_ETOOBIG;
    plen += TUS_ID_LEN;
  }
  if (n <= 0 || n > TUS_MAX_PARTS)
    return GROVE_EINVAL;
  size_t np = (size_t)n;
  char *parts = malloc(plen + 1);
  struct concat cc = {.out = -1, .n = n};
  cc.fd = malloc(np * sizeof *cc.fd);
  cc.len = calloc(np, sizeof *cc.len);
  cc.at = calloc(np, sizeof *cc.at);
  if (!parts || !cc.fd || !cc.len || !cc.at) {
    free(parts);
    free(cc.fd);
    free(cc.len);
    free(cc.at);
    return GROVE_ENOMEM;
  }
  for (int i = 0; i < n; i++)
    cc.fd[i] = -1;
  parts[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (i)
      strcat(parts, " ");
    strcat(parts, ids[i]);
  }
  /* the record first (offset 0: unfinished until the bytes are in), then
   * the bytes, fsync'd, then the offset */
  struct tus_new nu = {owner, TUS_FINAL, total, metadata};
  int rc = tus_create(t, &nu, u);
  if (rc) {
    free(parts);
    goto out;
  }
  u->parts = parts;
  char path[PATH_MAX + 64];
  tus_data_path(t, u->id, path, sizeof path);
  if (!sink && (cc.out = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
    rc = GROVE_EIO;
    goto fail;
  }
  uint64_t at = 0;
  for (int i = 0; i < n && !rc; i++) {
    struct tus_upload part;
    char ppath[PATH_MAX + 64];
    if ((rc = tus_get(t, ids[i], owner, &part))) {
      *bad = i;
      break;
    }
    tus_data_path(t, ids[i], ppath, sizeof ppath);
    if (sink) {
      rc = sink(arg, i, ppath, part.length);
    } else {
      struct stat sb;
      cc.fd[i] = open(ppath, O_RDONLY | O_CLOEXEC);
      if (cc.fd[i] < 0 || fstat(cc.fd[i], &sb) < 0 || (uint64_t)sb.st_size < part.length)
        rc = GROVE_EIO;
      cc.len[i] = part.length;
      cc.at[i] = at;
      at += part.length;
    }
    tus_upload_release(&part);
  }
  if (!rc && !sink) {
    int hpart = 0;
    uint64_t hoff = 0, hashed = 0;
    if (sha256) {
      if (!(md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        rc = GROVE_ENOMEM;
      else if (!tus_frontier_take(t->frontier, ids, n, md, &hpart, &hoff) &&
               EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        rc = GROVE_ENOMEM;
    }
    if (!rc)
      rc = concat_copy(&cc, md, hpart, hoff, &hashed);
    if (!rc && fsync(cc.out))
      rc = GROVE_EIO;
    pthread_mutex_lock(&t->stat_mu);
    t->final_hashed += hashed;
    pthread_mutex_unlock(&t->stat_mu);
  }
  if (!rc && md) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 32)
      rc = GROVE_EIO;
    for (unsigned i = 0; !rc && i < dl; i++)
      snprintf(sha256 + 2 * i, 3, "%02x", d[i]);
  }
  EVP_MD_CTX_free(md);
  md = NULL;
  if (rc)
    goto fail;
  char off[24];
  dec(sink ? 0 : (int64_t)total, off); /* with a sink, tus_finish moves it */
  const char *p[] = {u->id, off, parts};
  if ((rc = query(t, "UPDATE tus_uploads SET upload_offset = $2, parts = $3 WHERE id = $1", p, 3,
                  NULL)))
    goto fail;
  u->offset = sink ? 0 : total;
  goto out;
fail:
  EVP_MD_CTX_free(md);
  if (rc == GROVE_EIO && !sink)
    log_error(NULL, "tus: cannot concatenate", "id=%s error=\"%s\"", u->id, strerror(errno));
  tus_delete(t, u->id, owner);
  tus_upload_release(u);
out:
  if (cc.out >= 0)
    close(cc.out);
  for (int i = 0; i < n; i++)
    if (cc.fd[i] >= 0)
      close(cc.fd[i]);
  free(cc.fd);
  free(cc.len);
  free(cc.at);
  return rc;
}

void tus_settle(struct tus *t) { tus_frontier_wait(t->frontier); }

uint64_t tus_hashed_ahead(struct tus *t) { return tus_frontier_ahead(t->frontier); }

uint64_t tus_hashed_at_final(struct tus *t) {
  pthread_mutex_lock(&t->stat_mu);
  uint64_t n = t->final_hashed;
  pthread_mutex_unlock(&t->stat_mu);
  return n;
}

/* ---- removal ----------------------------------------------------------------------- */

static int remove_upload(struct tus *t, const char *id, const char *owner, bool expired_only,
                         bool *removed) {
  char at[24];
  dec(now(t), at);
  const char *p[] = {id, at, owner};
  struct store_rows *r = NULL;
  int rc = query(t,
                 expired_only
                     ? "DELETE FROM tus_uploads WHERE id = $1 AND expires_at <= $2 "
                       "AND (lock_holder IS NULL OR lock_until < $2)"
                     : "DELETE FROM tus_uploads WHERE id = $1 AND owner = $3 "
                       "AND (lock_holder IS NULL OR lock_until < $2)",
                 p, expired_only ? 2 : 3, &r);
  if (rc)
    return rc;
  *removed = r->changes > 0;
  store_rows_free(r);
  if (*removed) {
    saved_forget(t, id);
    tus_frontier_forget(t->frontier, id);
    char path[PATH_MAX + 64];
    tus_data_path(t, id, path, sizeof path);
    if (unlink(path) && errno != ENOENT)
      log_warn(NULL, "tus: cannot remove data file", "path=\"%s\" error=\"%s\"", path,
               strerror(errno));
  }
  return 0;
}

int tus_delete(struct tus *t, const char *id, const char *owner) {
  struct tus_upload u;
  int rc = tus_get(t, id, owner, &u);
  if (rc)
    return rc;
  tus_upload_release(&u);
  bool removed;
  if ((rc = remove_upload(t, id, owner, false, &removed)))
    return rc;
  return removed ? 0 : GROVE_EBUSY;
}

int tus_sweep(struct tus *t, int *count) {
  int removed_n = 0;
  char at[24];
  dec(now(t), at);
  const char *p[] = {at};
  struct store_rows *r = NULL;
  int rc = query(t, "SELECT id FROM tus_uploads WHERE expires_at <= $1 LIMIT 1000", p, 1, &r);
  if (rc)
    return rc;
  for (int i = 0; i < r->nrows; i++) {
    bool removed = false;
    if (remove_upload(t, store_rows_get(r, i, "id"), NULL, true, &removed) == 0 && removed)
      removed_n++;
  }
  store_rows_free(r);
  /* data files whose record is gone (a crash between the two removals) */
  DIR *d = opendir(t->dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!tus_id_valid(e->d_name))
        continue;
      const char *q[] = {e->d_name};
      if (query(t, "SELECT 1 FROM tus_uploads WHERE id = $1", q, 1, &r))
        break;
      int rows = r->nrows;
      store_rows_free(r);
      if (rows == 0) {
        char path[PATH_MAX + 64];
        tus_data_path(t, e->d_name, path, sizeof path);
        if (unlink(path) == 0)
          removed_n++;
      }
    }
    closedir(d);
  }
  if (count)
    *count = removed_n;
  return 0;
}
