/* blobs.c — the blob store: metadata in the platform store, bytes in a
 * backend (internal.h), SHA-256 on the way in, reference counts, quotas.
 *
 * Order of operations (docs/blobs.md, "Failure behaviour"):
 *   upload  write temp → fsync → hash → [lock content] install at the
 *           content address (fsync'd) → [hold shared] one transaction:
 *           quota, content reference, blob row → [release, unlock]. A
 *           crash before the commit leaves a temp file (removed at start)
 *           or unreferenced bytes (removed at start); never a blob
 *           without bytes.
 *   delete  [lock content] one transaction: blob row, quota, reference
 *           (and the content row when it was the last) → if it was:
 *           [hold exclusive] no row names it again → remove the bytes
 *           [release] → [unlock]. A crash between leaves unreferenced
 *           bytes, removed at start.
 * The lock (one of BLOBS_LOCKS stripes by hash) and the backend's hold
 * (between processes sharing the backend) keep a delete from removing
 * bytes that an upload of the same content has just found. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blobs/internal.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

const struct cfg_opt blobs_cfg_opts[] = {
    CFG_OPT(struct blobs_cfg, "blobs-backend", CFG_STR, backend, "local", "where blob bytes are kept: local (files under --blobs-dir)"),
    CFG_OPT(struct blobs_cfg, "blobs-dir", CFG_STR, dir, "", "folder of the local backend (empty: <data dir>/blobs)"),
    CFG_OPT(struct blobs_cfg, "blobs-quota-bytes", CFG_SIZE, quota_bytes, "0", "bytes of blobs one owner may keep (0: no limit); more is answered 507"),
    CFG_OPT(struct blobs_cfg, "blobs-quota-files", CFG_INT, quota_files, "0", "blobs one owner may keep (0: no limit); more is answered 507"),
    CFG_OPT(struct blobs_cfg, "blobs-sweep-age", CFG_MS, sweep_age_ms, "1h", "bytes no blob names (a crash's leftovers) are removed at start once unchanged this long: another instance sharing --blobs-dir may be about to name them (0: at once)"),
};
const size_t blobs_cfg_nopts = ARRAY_LEN(blobs_cfg_opts);

static const char BLOBS_V1[] =
    "CREATE TABLE blobs_content ("
    " sha256 TEXT PRIMARY KEY,"
    " size BIGINT NOT NULL,"
    " refs BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE blobs_blobs ("
    " id TEXT PRIMARY KEY,"
    " owner TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " media_type TEXT NOT NULL,"
    " size BIGINT NOT NULL,"
    " sha256 TEXT NOT NULL REFERENCES blobs_content (sha256),"
    " created_at BIGINT NOT NULL);"
    "CREATE INDEX blobs_blobs_owner ON blobs_blobs (owner, created_at, id);"
    "CREATE INDEX blobs_blobs_created ON blobs_blobs (created_at, id);"
    "CREATE TABLE blobs_usage ("
    " owner TEXT PRIMARY KEY,"
    " bytes BIGINT NOT NULL,"
    " files BIGINT NOT NULL)";

const struct store_migration blobs_migrations[] = {
    {1, "blobs_blobs", BLOBS_V1, NULL},
};
const size_t blobs_nmigrations = ARRAY_LEN(blobs_migrations);

static const struct blobs_ops *const backends[] = {&blobs_local_ops};

/* ---- small pieces ------------------------------------------------------- */

bool blobs_sha_valid(const char *s) {
  return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

bool blobs_name_valid(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > BLOBS_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
      return false;
    /* C1 controls: U+0080..U+009F are 0xC2 0x80..0x9F in UTF-8 */
    if (c == 0xc2 && i + 1 < n && (unsigned char)name[i + 1] >= 0x80 &&
        (unsigned char)name[i + 1] <= 0x9f)
      return false;
  }
  json_t *j = json_stringn(name, n); /* jansson refuses invalid UTF-8 */
  json_decref(j);
  return j != NULL;
}

bool blobs_media_type_valid(const char *mt) {
  static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  size_t n = mt ? strlen(mt) : 0;
  if (n == 0 || n > BLOBS_MEDIA_TYPE_MAX)
    return false;
  size_t t = strspn(mt, tchar);
  if (t == 0 || mt[t] != '/')
    return false;
  size_t s = strspn(mt + t + 1, tchar);
  if (s == 0)
    return false;
  const char *rest = mt + t + 1 + s;
  for (; *rest; rest++) /* parameters: printable ASCII and spaces */
    if ((unsigned char)*rest < 0x20 || (unsigned char)*rest > 0x7e)
      return false;
  rest = mt + t + 1 + s;
  return *rest == '\0' || *rest == ';' || *rest == ' ';
}

static json_t *time_json(int64_t ms) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  char buf[40];
  if (!gmtime_r(&s, &tm))
    return json_null();
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
  return json_string(buf);
}

json_t *blobs_info_json(const struct blobs_info *i) {
  return json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:o}", "id", i->id, "name", i->name, "media_type",
                   i->media_type, "size", (json_int_t)i->size, "sha256", i->sha256, "owner",
                   i->owner, "created_at", time_json(i->created_ms));
}

static void hex(const unsigned char *d, size_t n, char *out) {
  static const char h[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = h[d[i] >> 4];
    out[2 * i + 1] = h[d[i] & 15];
  }
  out[2 * n] = '\0';
}

static pthread_mutex_t *lock_of(struct blobs *b, const char *sha) {
  unsigned v = (unsigned)strtoul((char[]){sha[0], sha[1], sha[2], sha[3], 0}, NULL, 16);
  return &b->locks[v % BLOBS_LOCKS];
}

static long long ll(const struct store_rows *r, int row, const char *col) {
  const char *v = store_rows_get(r, row, col);
  return v ? strtoll(v, NULL, 10) : 0;
}

static void info_from_row(const struct store_rows *r, int i, struct blobs_info *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->id, sizeof out->id, "%s", store_rows_get(r, i, "id"));
  snprintf(out->owner, sizeof out->owner, "%s", store_rows_get(r, i, "owner"));
  snprintf(out->name, sizeof out->name, "%s", store_rows_get(r, i, "name"));
  snprintf(out->media_type, sizeof out->media_type, "%s", store_rows_get(r, i, "media_type"));
  snprintf(out->sha256, sizeof out->sha256, "%s", store_rows_get(r, i, "sha256"));
  out->size = (uint64_t)ll(r, i, "size");
  out->created_ms = ll(r, i, "created_at");
}

/* ---- life --------------------------------------------------------------- */

static int keep_content(const char *sha, void *arg) {
  struct blobs *b = arg;
  struct store_rows *r = NULL;
  const char *p[] = {sha};
  if (store_query(b->store, "SELECT refs FROM blobs_content WHERE sha256 = $1", p, 1, &r, NULL,
                  0))
    return -1;
  int keep = r->nrows > 0;
  store_rows_free(r);
  return keep;
}

int blobs_open(struct blobs **out, const struct blobs_cfg *cfg, const struct blobs_env *env,
               char *err, size_t errlen) {
  *out = NULL;
  const struct blobs_ops *ops = NULL;
  const char *want = cfg->backend && *cfg->backend ? cfg->backend : "local";
  for (size_t i = 0; i < ARRAY_LEN(backends); i++)
    if (strcmp(backends[i]->name, want) == 0)
      ops = backends[i];
  if (!ops) {
    snprintf(err, errlen, "unknown blob backend '%s' (known: local)", want);
    return GROVE_ECONFIG;
  }
  if (cfg->quota_files < 0) {
    snprintf(err, errlen, "--blobs-quota-files must be 0 or more");
    return GROVE_ECONFIG;
  }
  struct blobs *b = calloc(1, sizeof *b);
  if (!b)
    return GROVE_ENOMEM;
  b->store = env->store;
  b->ops = ops;
  b->max_size = env->max_upload ? env->max_upload : UINT64_MAX;
  b->quota_bytes = cfg->quota_bytes;
  b->quota_files = cfg->quota_files;
  for (int i = 0; i < BLOBS_LOCKS; i++)
    pthread_mutex_init(&b->locks[i], NULL);
  char root[4096], idp[4096];
  snprintf(idp, sizeof idp, "%s/blobs.instance",
           env->data_dir && *env->data_dir ? env->data_dir : ".");
  int rc = blobs_id_file(idp, b->instance, err, errlen);
  if (rc) {
    free(b);
    return rc;
  }
  if (cfg->dir && *cfg->dir)
    snprintf(root, sizeof root, "%s", cfg->dir);
  else
    snprintf(root, sizeof root, "%s/blobs", env->data_dir && *env->data_dir ? env->data_dir : ".");
  rc = ops->open(root, b->instance, &b->be, err, errlen);
  if (rc) {
    free(b);
    return rc;
  }
  int removed = 0;
  int64_t before = (int64_t)time(NULL) - (int64_t)(cfg->sweep_age_ms / 1000);
  if ((rc = ops->sweep(b->be, keep_content, b, before, &removed))) {
    snprintf(err, errlen, "cannot check blob contents against the store");
    blobs_close(b);
    return rc;
  }
  if (removed)
    log_info(NULL, "blobs: removed leftovers of interrupted uploads and deletes", "files=%d",
             removed);
  if (env->metrics) {
    struct metrics *m = env->metrics;
    b->uploads = metric_get(metrics_family(m, "grove_blobs_stored_total",
                                           "Blobs stored (uploads committed).", METRIC_COUNTER, ""));
    b->upload_bytes = metric_get(metrics_family(m, "grove_blobs_stored_bytes_total",
                                                "Bytes of blobs stored.", METRIC_COUNTER, ""));
    b->deduped = metric_get(metrics_family(m, "grove_blobs_deduplicated_total",
                                           "Blobs stored whose content was kept already.",
                                           METRIC_COUNTER, ""));
    b->deletes = metric_get(metrics_family(m, "grove_blobs_deleted_total", "Blobs deleted.",
                                           METRIC_COUNTER, ""));
    b->freed_bytes = metric_get(metrics_family(m, "grove_blobs_freed_bytes_total",
                                               "Bytes freed by deleting a content's last blob.",
                                               METRIC_COUNTER, ""));
  }
  *out = b;
  return 0;
}

void blobs_close(struct blobs *b) {
  if (!b)
    return;
  if (b->be)
    b->ops->close(b->be);
  for (int i = 0; i < BLOBS_LOCKS; i++)
    pthread_mutex_destroy(&b->locks[i]);
  free(b);
}

const char *blobs_spool_dir(const struct blobs *b) { return b->ops->spool_dir(b->be); }
const char *blobs_instance(const struct blobs *b) { return b->instance; }

int blobs_id_file(const char *path, char out[BLOBS_ID_LEN], char *err, size_t errlen) {
  FILE *f = fopen(path, "re");
  if (f) {
    char buf[64] = "";
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    if (ok && strlen(buf) == BLOBS_ID_LEN - 1 && strspn(buf, "0123456789abcdef") == BLOBS_ID_LEN - 1) {
      memcpy(out, buf, BLOBS_ID_LEN);
      return 0;
    }
  }
  rand_hex(out, BLOBS_ID_LEN);
  char tmp[4200], dir[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  if (slash && *dir)
    mkdir_p(dir, 0700); /* the data directory, on a store that made none */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write(fd, out, BLOBS_ID_LEN - 1) == BLOBS_ID_LEN - 1 && fsync(fd) == 0 &&
            rename(tmp, path) == 0;
  if (ok && slash) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = dfd >= 0 && fsync(dfd) == 0;
    if (dfd >= 0)
      close(dfd);
  }
  if (!ok)
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
  if (fd >= 0)
    close(fd);
  return ok ? 0 : GROVE_EIO;
}
uint64_t blobs_max_size(const struct blobs *b) { return b->max_size; }

/* ---- quotas ------------------------------------------------------------- */

int blobs_quota_check(const struct blobs_usage *u, uint64_t max_size, int64_t size) {
  if (size >= 0 && (uint64_t)size > max_size)
    return GROVE_ETOOBIG;
  if (u->quota_files && u->files >= u->quota_files)
    return GROVE_EQUOTA;
  if (size >= 0 && u->quota_bytes &&
      (u->bytes > u->quota_bytes || (uint64_t)size > u->quota_bytes - u->bytes))
    return GROVE_EQUOTA;
  return 0;
}

int blobs_usage(struct blobs *b, const char *owner, struct blobs_usage *out) {
  memset(out, 0, sizeof *out);
  out->quota_bytes = b->quota_bytes;
  out->quota_files = b->quota_files;
  struct store_rows *r = NULL;
  const char *p[] = {owner};
  int rc = store_query(b->store, "SELECT bytes, files FROM blobs_usage WHERE owner = $1", p, 1,
                       &r, NULL, 0);
  if (rc)
    return rc;
  if (r->nrows) {
    out->bytes = (uint64_t)ll(r, 0, "bytes");
    out->files = ll(r, 0, "files");
  }
  store_rows_free(r);
  return 0;
}

/* ---- metadata ------------------------------------------------------------ */

#define BLOB_COLS "id, owner, name, media_type, size, sha256, created_at"

int blobs_get(struct blobs *b, const char *id, struct blobs_info *out) {
  struct store_rows *r = NULL;
  const char *p[] = {id};
  int rc = store_query(b->store, "SELECT " BLOB_COLS " FROM blobs_blobs WHERE id = $1", p, 1, &r,
                       NULL, 0);
  if (rc)
    return rc;
  if (r->nrows == 0)
    rc = GROVE_ENOENT;
  else
    info_from_row(r, 0, out);
  store_rows_free(r);
  return rc;
}

int blobs_list(struct blobs *b, const char *owner, int limit, const char *before, json_t **out) {
  if (limit < 1 || limit > 1000)
    return GROVE_EINVAL;
  char sql[512];
  const char *p[2];
  int np = 0;
  char cond[256] = "";
  if (owner) {
    p[np++] = owner;
    snprintf(cond, sizeof cond, " WHERE owner = $%d", np);
  }
  if (before) {
    p[np++] = before;
    size_t l = strlen(cond);
    snprintf(cond + l, sizeof cond - l,
             "%s (created_at, id) < (SELECT created_at, id FROM blobs_blobs WHERE id = $%d)",
             owner ? " AND" : " WHERE", np);
  }
  snprintf(sql, sizeof sql,
           "SELECT " BLOB_COLS " FROM blobs_blobs%s ORDER BY created_at DESC, id DESC LIMIT %d",
           cond, limit);
  struct store_rows *r = NULL;
  int rc = store_query(b->store, sql, p, np, &r, NULL, 0);
  if (rc)
    return rc;
  json_t *a = json_array();
  for (int i = 0; a && i < r->nrows; i++) {
    struct blobs_info info;
    info_from_row(r, i, &info);
    json_array_append_new(a, blobs_info_json(&info));
  }
  store_rows_free(r);
  if (!a)
    return GROVE_ENOMEM;
  *out = a;
  return 0;
}

/* One transaction: the owner's quota (a conditional update: concurrent
 * commits of one owner never pass it together, on SQLite or PostgreSQL),
 * a reference to the content, the blob's row. GROVE_EQUOTA when the quota
 * would be passed; nothing is written then. */
static int meta_insert(struct blobs *b, const struct blobs_info *i, bool *first_ref) {
  if (b->quota_bytes && i->size > b->quota_bytes)
    return GROVE_EQUOTA;
  struct store_conn *c;
  int rc = store_acquire(b->store, &c);
  if (rc)
    return rc;
  char size[24], room[24], files[24], created[24];
  snprintf(size, sizeof size, "%" PRIu64, i->size);
  snprintf(room, sizeof room, "%" PRIu64, b->quota_bytes ? b->quota_bytes - i->size : 0);
  snprintf(files, sizeof files, "%" PRId64, b->quota_files ? b->quota_files - 1 : 0);
  snprintf(created, sizeof created, "%" PRId64, i->created_ms);
  char sql[400];
  struct store_rows *r = NULL;
  if ((rc = store_begin(c)))
    goto out;
  const char *p1[] = {i->owner};
  if ((rc = store_exec(c,
                       "INSERT INTO blobs_usage (owner, bytes, files) VALUES ($1, 0, 0) "
                       "ON CONFLICT (owner) DO NOTHING",
                       p1, 1, NULL, NULL, 0)))
    goto fail;
  /* PostgreSQL wants every parameter used: number the limits that apply */
  const char *p2[4] = {i->owner, size};
  int np = 2;
  int len = snprintf(sql, sizeof sql,
                     "UPDATE blobs_usage SET bytes = bytes + CAST($2 AS BIGINT), "
                     "files = files + 1 WHERE owner = $1");
  if (b->quota_bytes) {
    p2[np++] = room;
    len += snprintf(sql + len, sizeof sql - (size_t)len, " AND bytes <= CAST($%d AS BIGINT)", np);
  }
  if (b->quota_files) {
    p2[np++] = files;
    snprintf(sql + len, sizeof sql - (size_t)len, " AND files <= CAST($%d AS BIGINT)", np);
  }
  if ((rc = store_exec(c, sql, p2, np, &r, NULL, 0)))
    goto fail;
  bool fits = r->changes > 0;
  store_rows_free(r);
  r = NULL;
  if (!fits) {
    rc = GROVE_EQUOTA;
    goto fail;
  }
  const char *p3[] = {i->sha256, size, created};
  if ((rc = store_exec(c,
                       "INSERT INTO blobs_content (sha256, size, refs, created_at) "
                       "VALUES ($1, $2, 1, $3) ON CONFLICT (sha256) DO UPDATE SET "
                       "refs = blobs_content.refs + 1 RETURNING refs",
                       p3, 3, &r, NULL, 0)))
    goto fail;
  *first_ref = r->nrows > 0 && ll(r, 0, "refs") == 1;
  store_rows_free(r);
  r = NULL;
  const char *p4[] = {i->id, i->owner, i->name, i->media_type, size, i->sha256, created};
  if ((rc = store_exec(c,
                       "INSERT INTO blobs_blobs (id, owner, name, media_type, size, sha256, "
                       "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                       p4, 7, NULL, NULL, 0)))
    goto fail;
  rc = store_commit(c);
  goto out;
fail:
  store_rollback(c);
out:
  store_rows_free(r);
  store_release(b->store, c);
  return rc;
}

/* Removes the bytes of sha if no blob names them (checked while they are
 * held exclusively: an upload on another instance that found them holds
 * them shared until its blob is committed). Returns 0 (removed, named
 * again, or gone already) or an error. */
static int remove_unnamed(struct blobs *b, const char *sha) {
  void *h = NULL;
  int rc = b->ops->hold(b->be, sha, true, &h);
  if (rc)
    return rc == GROVE_ENOENT ? 0 : rc;
  int keep = keep_content(sha, b);
  rc = keep < 0 ? GROVE_ESTORE : keep ? 0 : b->ops->remove(b->be, sha);
  b->ops->unhold(h);
  return rc;
}

/* Installs the bytes (tmp, or the file at path) at the content address
 * and records blob i, under the content's lock (this process's stripe,
 * and the backend's hold against other processes). Frees tmp. */
static int record(struct blobs *b, void *tmp, const char *path, struct blobs_info *i) {
  pthread_mutex_t *mu = lock_of(b, i->sha256);
  bool created = false, first = false;
  void *h = NULL;
  pthread_mutex_lock(mu);
  int rc;
  for (int tries = 0;; tries++) {
    rc = tmp ? b->ops->tmp_install(b->be, tmp, i->sha256, &created)
             : b->ops->file_install(b->be, path, i->sha256, &created);
    if (!rc)
      rc = b->ops->hold(b->be, i->sha256, false, &h);
    /* GROVE_ENOENT: another instance removed the bytes it found between
     * the two: install them again */
    if (rc != GROVE_ENOENT || tries == 3)
      break;
  }
  if (!rc) {
    rc = meta_insert(b, i, &first);
    b->ops->unhold(h);
    if (rc && created)
      remove_unnamed(b, i->sha256); /* nothing names these bytes */
  }
  pthread_mutex_unlock(mu);
  if (tmp)
    b->ops->tmp_discard(tmp); /* the content holds its own link */
  if (!rc) {
    metric_add(b->uploads, 1);
    metric_add(b->upload_bytes, (double)i->size);
    if (!first)
      metric_add(b->deduped, 1);
  }
  return rc;
}

static int fill_new(struct blobs_info *i, const struct blobs_new *nb) {
  const char *name = nb->name && *nb->name ? nb->name : "blob";
  const char *mt = nb->media_type && *nb->media_type ? nb->media_type : "application/octet-stream";
  if (!nb->owner || !*nb->owner || strlen(nb->owner) >= sizeof i->owner ||
      !blobs_name_valid(name) || !blobs_media_type_valid(mt))
    return GROVE_EINVAL;
  rand_hex(i->id, sizeof i->id);
  snprintf(i->owner, sizeof i->owner, "%s", nb->owner);
  snprintf(i->name, sizeof i->name, "%s", name);
  snprintf(i->media_type, sizeof i->media_type, "%s", mt);
  i->created_ms = (int64_t)clock_wall_ms();
  return 0;
}

int blobs_delete(struct blobs *b, const char *id, const char *owner) {
  struct blobs_info i;
  int rc = blobs_get(b, id, &i);
  if (rc)
    return rc;
  if (owner && strcmp(owner, i.owner) != 0)
    return GROVE_ENOENT;
  pthread_mutex_t *mu = lock_of(b, i.sha256);
  pthread_mutex_lock(mu);
  struct store_conn *c;
  struct store_rows *r = NULL;
  bool last = false;
  if ((rc = store_acquire(b->store, &c)))
    goto unlock;
  char size[24];
  snprintf(size, sizeof size, "%" PRIu64, i.size);
  if ((rc = store_begin(c)))
    goto release;
  const char *p1[] = {id};
  if ((rc = store_exec(c, "DELETE FROM blobs_blobs WHERE id = $1", p1, 1, &r, NULL, 0)))
    goto fail;
  if (r->changes == 0) { /* deleted meanwhile */
    rc = GROVE_ENOENT;
    goto fail;
  }
  store_rows_free(r);
  r = NULL;
  const char *p2[] = {i.owner, size};
  const char *p3[] = {i.sha256};
  if ((rc = store_exec(c,
                       "UPDATE blobs_usage SET bytes = bytes - CAST($2 AS BIGINT), "
                       "files = files - 1 WHERE owner = $1",
                       p2, 2, NULL, NULL, 0)) ||
      (rc = store_exec(c, "UPDATE blobs_content SET refs = refs - 1 WHERE sha256 = $1", p3, 1,
                       NULL, NULL, 0)) ||
      (rc = store_exec(c, "DELETE FROM blobs_content WHERE sha256 = $1 AND refs <= 0", p3, 1,
                       &r, NULL, 0)))
    goto fail;
  last = r->changes > 0;
  if ((rc = store_commit(c)))
    goto release;
  /* committed: the blob is gone; its bytes go if no blob names them. A
   * crash here leaves them unreferenced, and the sweep at start removes
   * them. */
  if (last && remove_unnamed(b, i.sha256))
    log_warn(NULL, "blobs: cannot remove freed bytes (the next start removes them)",
             "sha256=%s", i.sha256);
  goto release;
fail:
  store_rollback(c);
release:
  store_rows_free(r);
  store_release(b->store, c);
unlock:
  pthread_mutex_unlock(mu);
  if (!rc) {
    metric_add(b->deletes, 1);
    if (last)
      metric_add(b->freed_bytes, (double)i.size);
  }
  return rc;
}

/* ---- writing ------------------------------------------------------------- */

struct blobs_writer {
  struct blobs *b;
  char owner[64];
  void *tmp;
  EVP_MD_CTX *md;
  uint64_t size;
  uint64_t room; /* bytes the owner's quota leaves (UINT64_MAX: no quota) */
  int err;
  uint64_t stored; /* bytes appended to tmp (size: bytes hashed) */
};

int blobs_writer_open(struct blobs *b, const char *owner, int64_t expected_size,
                      struct blobs_writer **out) {
  *out = NULL;
  struct blobs_usage u;
  int rc = blobs_usage(b, owner, &u);
  if (rc)
    return rc;
  if ((rc = blobs_quota_check(&u, b->max_size, expected_size)))
    return rc;
  if (u.quota_bytes && u.bytes >= u.quota_bytes)
    return GROVE_EQUOTA;
  struct blobs_writer *w = calloc(1, sizeof *w);
  if (!w)
    return GROVE_ENOMEM;
  w->b = b;
  snprintf(w->owner, sizeof w->owner, "%s", owner);
  w->room = u.quota_bytes ? u.quota_bytes - u.bytes : UINT64_MAX;
  if (!(w->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(w->md);
    free(w);
    return GROVE_ENOMEM;
  }
  if ((rc = b->ops->tmp_create(b->be, &w->tmp))) {
    EVP_MD_CTX_free(w->md);
    free(w);
    return rc;
  }
  *out = w;
  return 0;
}

/* Counts n more bytes against the limits and hashes them. */
static int writer_add(struct blobs_writer *w, const void *data, size_t n) {
  if (w->err)
    return w->err;
  if (n > w->b->max_size - w->size)
    return w->err = GROVE_ETOOBIG;
  if (n > w->room - w->size)
    return w->err = GROVE_EQUOTA;
  if (EVP_DigestUpdate(w->md, data, n) != 1)
    return w->err = GROVE_EIO;
  return 0;
}

int blobs_writer_take(struct blobs_writer *w, const void *data, size_t n) {
  int rc = writer_add(w, data, n);
  if (!rc)
    w->size += n;
  return rc;
}

int blobs_writer_put(struct blobs_writer *w, const void *data, size_t n) {
  int rc = w->b->ops->tmp_write(w->tmp, data, n);
  if (!rc)
    w->stored += n;
  return rc;
}

int blobs_writer_write(struct blobs_writer *w, const void *data, size_t n) {
  int rc = blobs_writer_take(w, data, n);
  if (!rc && (rc = blobs_writer_put(w, data, n)))
    w->err = rc;
  return rc;
}

uint64_t blobs_writer_size(const struct blobs_writer *w) { return w->size; }

uint64_t blobs_writer_room(const struct blobs_writer *w) { return w->room; }

void blobs_writer_abort(struct blobs_writer *w) {
  if (!w)
    return;
  if (w->tmp)
    w->b->ops->tmp_discard(w->tmp);
  EVP_MD_CTX_free(w->md);
  free(w);
}

int blobs_writer_commit(struct blobs_writer *w, const struct blobs_new *nb,
                        struct blobs_info *out) {
  struct blobs *b = w->b;
  struct blobs_info i;
  memset(&i, 0, sizeof i);
  int rc = w->err;
  struct blobs_new own = *nb;
  own.owner = w->owner;
  if (!rc)
    rc = fill_new(&i, &own);
  if (!rc && w->stored != w->size) /* the halves saw different bytes: a caller's bug */
    rc = GROVE_EIO;
  if (!rc)
    rc = b->ops->tmp_sync(w->tmp);
  unsigned char d[32];
  unsigned dl = 0;
  if (!rc && EVP_DigestFinal_ex(w->md, d, &dl) != 1)
    rc = GROVE_EIO;
  if (rc) {
    blobs_writer_abort(w);
    return rc;
  }
  hex(d, dl, i.sha256);
  i.size = w->size;
  void *tmp = w->tmp;
  w->tmp = NULL;
  blobs_writer_abort(w); /* frees the rest */
  if ((rc = record(b, tmp, NULL, &i)))
    return rc;
  *out = i;
  return 0;
}

#define HASH_WINDOW (8u << 20) /* bytes of a file mapped at a time to hash it */

/* SHA-256 and size of the file at path, hashed straight from the page
 * cache (mapped a window at a time: no copy, and the mapped pages do not
 * add up in the resident set). */
static int hash_file(struct blobs *b, const char *path, char sha[BLOBS_SHA_LEN], uint64_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? GROVE_ENOENT : GROVE_EIO;
  struct stat st;
  EVP_MD_CTX *md = NULL;
  int rc = fstat(fd, &st) < 0 ? GROVE_EIO : 0;
  if (!rc && (uint64_t)st.st_size > b->max_size)
    rc = GROVE_ETOOBIG;
  if (!rc && (!(md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1))
    rc = GROVE_ENOMEM;
  uint64_t n = rc ? 0 : (uint64_t)st.st_size;
  for (uint64_t at = 0; !rc && at < n; at += HASH_WINDOW) {
    size_t len = n - at < HASH_WINDOW ? (size_t)(n - at) : HASH_WINDOW;
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)at);
    if (map == MAP_FAILED) {
      rc = GROVE_EIO;
      break;
    }
    madvise(map, len, MADV_WILLNEED);
    if (EVP_DigestUpdate(md, map, len) != 1)
      rc = GROVE_EIO;
    munmap(map, len);
  }
  close(fd);
  unsigned char d[32];
  unsigned dl = 0;
  if (!rc && EVP_DigestFinal_ex(md, d, &dl) != 1)
    rc = GROVE_EIO;
  EVP_MD_CTX_free(md);
  if (!rc) {
    hex(d, dl, sha);
    *size = n;
  }
  return rc;
}

int blobs_adopt_file(struct blobs *b, const char *path, const char *sha256, bool keep,
                     const struct blobs_new *nb, struct blobs_info *out) {
  struct blobs_info i;
  memset(&i, 0, sizeof i);
  int rc = fill_new(&i, nb);
  if (rc)
    return rc;
  if (sha256) { /* the caller's hash of the bytes it wrote: only the size is read */
    struct stat st;
    if (!blobs_sha_valid(sha256))
      return GROVE_EINVAL;
    if (stat(path, &st) < 0)
      return errno == ENOENT ? GROVE_ENOENT : GROVE_EIO;
    if ((uint64_t)st.st_size > b->max_size)
      return GROVE_ETOOBIG;
    memcpy(i.sha256, sha256, BLOBS_SHA_LEN);
    i.size = (uint64_t)st.st_size;
  } else if ((rc = hash_file(b, path, i.sha256, &i.size))) {
    return rc;
  }
  struct blobs_usage u;
  if ((rc = blobs_usage(b, i.owner, &u)) ||
      (rc = blobs_quota_check(&u, b->max_size, (int64_t)i.size)))
    return rc;
  if ((rc = record(b, NULL, path, &i)))
    return rc;
  if (!keep)
    unlink(path); /* recorded: the store holds its own copy or link */
  *out = i;
  return 0;
}

int blobs_put_file(struct blobs *b, const char *path, const struct blobs_new *nb,
                   const char *sha256, struct blobs_info *out) {
  struct blobs_info i;
  memset(&i, 0, sizeof i);
  int rc = fill_new(&i, nb);
  if (rc)
    return rc;
  char got[BLOBS_SHA_LEN];
  uint64_t size;
  if ((rc = hash_file(b, path, got, &size)))
    return rc;
  if (sha256 && strcmp(sha256, got) != 0)
    return GROVE_EINVAL;
  return blobs_adopt_file(b, path, got, false, nb, out);
}

/* ---- reading ------------------------------------------------------------- */

struct blobs_reader {
  struct blobs *b;
  void *rd;
};

int blobs_reader_open(struct blobs *b, const struct blobs_info *i, struct blobs_reader **out) {
  struct blobs_reader *r = calloc(1, sizeof *r);
  if (!r)
    return GROVE_ENOMEM;
  uint64_t size = 0;
  int rc = b->ops->open_read(b->be, i->sha256, &r->rd, &size);
  if (!rc && size != i->size) {
    b->ops->close_read(r->rd);
    rc = GROVE_EIO;
  }
  if (rc) {
    if (rc == GROVE_ENOENT || rc == GROVE_EIO)
      log_error(NULL, "blobs: bytes of a stored blob are missing or the wrong size",
                "id=%s sha256=%s", i->id, i->sha256);
    free(r);
    return rc;
  }
  r->b = b;
  *out = r;
  return 0;
}

int blobs_reader_read(struct blobs_reader *rd, uint64_t off, void *buf, size_t n, size_t *got) {
  return rd->b->ops->read_at(rd->rd, off, buf, n, got);
}

void blobs_reader_close(struct blobs_reader *rd) {
  if (!rd)
    return;
  rd->b->ops->close_read(rd->rd);
  free(rd);
}
