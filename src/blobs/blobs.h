/* blobs.h — the file store: content-addressed (SHA-256), deduplicated
 * files with metadata, per-owner quotas, uploads streamed to disk and
 * downloads streamed from it (docs/blobs.md).
 *
 * A blob is one file as a user uploaded it: an id, its owner, a name, a
 * media type, a size, the SHA-256 of its bytes and when it was made. The
 * bytes live once per distinct content in a storage backend (struct
 * blobs_ops; "local": files under <data dir>/blobs/ named by their hash),
 * counted by the blobs that reference them; the metadata lives in the
 * platform store (tables blobs_*, SQLite or PostgreSQL). Deleting the
 * last blob of a content frees its bytes.
 *
 * Invariants:
 * - A blob that exists (blobs_get finds it) has its bytes in the backend,
 *   complete and fsync'd, with the SHA-256 it records. Bytes are written
 *   to a temporary file, synced, hashed on the way, then moved to their
 *   content address before the metadata naming them commits; a delete
 *   commits the metadata first and removes the bytes after. A crash in
 *   between leaves at most unreferenced bytes (removed at the next
 *   blobs_open), never a blob without its bytes.
 * - An owner's blobs never pass the quota (--blobs-quota-bytes, the sum of
 *   their sizes; --blobs-quota-files, their number): checked when an
 *   upload starts (a size known up front) and again, atomically, when it
 *   commits.
 *
 * Thread-safety: every call may be made from any thread; calls marked
 * "blocking" do disk and store I/O and must not run on an event loop
 * (run them on the store pool, http_req_defer). */
#ifndef GROVE_BLOBS_H
#define GROVE_BLOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "store/store.h"

struct blobs;
struct blobs_writer;
struct blobs_reader;
struct metrics;
struct router;

#define BLOBS_ID_LEN 33  /* 32 lowercase hex characters and a NUL */
#define BLOBS_SHA_LEN 65 /* 64 lowercase hex characters and a NUL */
#define BLOBS_NAME_MAX 255       /* bytes of a name (UTF-8) */
#define BLOBS_MEDIA_TYPE_MAX 127 /* bytes of a media type */

struct blobs_cfg {
  char *backend;        /* --blobs-backend: "local" */
  char *dir;            /* --blobs-dir: "" = <data dir>/blobs */
  uint64_t quota_bytes; /* --blobs-quota-bytes: per owner; 0 = none */
  int quota_files;      /* --blobs-quota-files: per owner; 0 = none */
  uint64_t sweep_age_ms; /* --blobs-sweep-age: unreferenced bytes older than this
                          * go at start (0: all of them) */
};

extern const struct cfg_opt blobs_cfg_opts[];
extern const size_t blobs_cfg_nopts;

/* The blobs_* tables: apply with store_migrate(st, "blobs", …) before
 * blobs_open. */
extern const struct store_migration blobs_migrations[];
extern const size_t blobs_nmigrations;

/* What the store needs from the process. */
struct blobs_env {
  struct store *store;    /* migrated */
  const char *data_dir;   /* the default dir is <data_dir>/blobs */
  uint64_t max_upload;    /* bytes of one blob at most (--max-upload) */
  struct metrics *metrics; /* may be NULL */
};

/* ---- life --------------------------------------------------------------- */

/* Opens the backend (making its directories), removes the temporary files
 * of uploads a crash interrupted and the bytes no blob references.
 * Blocking. On error, *out is NULL and err says why: GROVE_ECONFIG (an
 * unknown backend), GROVE_EIO (the directory cannot be made or written),
 * GROVE_ENOMEM, or the store's error. */
int blobs_open(struct blobs **out, const struct blobs_cfg *cfg, const struct blobs_env *env,
               char *err, size_t errlen);
/* Frees. Writers and readers must be closed first. NULL is fine. */
void blobs_close(struct blobs *b);

/* A directory on the same filesystem as the store's files, for files
 * that are to become blobs later (partial resumable uploads): the store
 * never cleans it; blobs_put_file moves a file from it without copying.
 * Owned by b. */
const char *blobs_spool_dir(const struct blobs *b);
/* An id (32 lowercase hex characters) of this process's data directory,
 * kept in <data dir>/blobs.instance: it names what this process alone
 * owns in a blob folder that several instances may share (its temporary
 * files; the locks of its resumable uploads), so that one instance's
 * start never cleans up another's work. Owned by b. */
const char *blobs_instance(const struct blobs *b);
/* The largest blob (--max-upload). */
uint64_t blobs_max_size(const struct blobs *b);

/* ---- metadata ----------------------------------------------------------- */

struct blobs_info {
  char id[BLOBS_ID_LEN];
  char owner[64];                          /* a user or API key id */
  char name[BLOBS_NAME_MAX + 1];           /* UTF-8, no control characters */
  char media_type[BLOBS_MEDIA_TYPE_MAX + 1];
  uint64_t size;                           /* bytes */
  char sha256[BLOBS_SHA_LEN];              /* lowercase hex */
  int64_t created_ms;                      /* Unix ms */
};

/* What a new blob is called. */
struct blobs_new {
  const char *owner;      /* required */
  const char *name;       /* NULL or "": "blob"; checked by blobs_name_valid */
  const char *media_type; /* NULL or "": application/octet-stream; checked */
};

/* {"id","name","media_type","size","sha256","owner","created_at"} (RFC
 * 3339 with ms). New reference. */
json_t *blobs_info_json(const struct blobs_info *i);
/* Whether a name may be stored: 1 to BLOBS_NAME_MAX bytes of valid UTF-8
 * with no control characters (C0, DEL, C1), no '/' or '\\'. Pure. */
bool blobs_name_valid(const char *name);
/* Whether a media type is "type/subtype" of RFC 9110 tokens (parameters
 * allowed) within BLOBS_MEDIA_TYPE_MAX. Pure. */
bool blobs_media_type_valid(const char *mt);

/* Blocking. Returns 0, GROVE_ENOENT, or the store's error. */
int blobs_get(struct blobs *b, const char *id, struct blobs_info *out);
/* The blobs of `owner` (NULL: everyone's), newest first, at most limit
 * (1–1000), those created before the blob `before` (NULL: from the
 * newest) — a cursor. OUT: *out an array of blobs_info_json objects.
 * Blocking. */
int blobs_list(struct blobs *b, const char *owner, int limit, const char *before, json_t **out);
/* Deletes blob id; `owner` (NULL: any) must own it. Frees the bytes when
 * it was the content's last reference. Blocking. Returns 0, GROVE_ENOENT,
 * or the store's error (nothing changed). */
int blobs_delete(struct blobs *b, const char *id, const char *owner);

/* An owner's use and the limits that apply to it (0: none). */
struct blobs_usage {
  uint64_t bytes, quota_bytes;
  int64_t files, quota_files;
};
int blobs_usage(struct blobs *b, const char *owner, struct blobs_usage *out);
/* Whether `owner` may add a blob of `size` bytes now (size < 0: unknown,
 * only the file count is checked): 0, GROVE_ETOOBIG (over --max-upload)
 * or GROVE_EQUOTA. Pure arithmetic on u. */
int blobs_quota_check(const struct blobs_usage *u, uint64_t max_size, int64_t size);

/* ---- writing a blob (blocking) ------------------------------------------
 * Bytes go to a temporary file of the backend as they come, hashed on the
 * way; commit syncs them, moves them to their content address (or drops
 * them when that content is stored already) and records the blob. */

/* Starts a blob for `owner`. expected_size ≥ 0 (a Content-Length) is
 * checked against --max-upload and the owner's quota at once. Returns 0,
 * GROVE_ETOOBIG, GROVE_EQUOTA, GROVE_EIO or the store's error. */
int blobs_writer_open(struct blobs *b, const char *owner, int64_t expected_size,
                      struct blobs_writer **out);
/* Bytes the owner's quota left when w was opened (UINT64_MAX: no quota).
 * Fixed for w's life; a caller that counts the body as it arrives (on
 * the event loop) checks against it so that the first limit the bytes
 * cross decides the answer, whatever the disk's pace. */
uint64_t blobs_writer_room(const struct blobs_writer *w);
/* Appends n bytes. Returns 0, GROVE_ETOOBIG (past --max-upload),
 * GROVE_EQUOTA (past blobs_writer_room), GROVE_ENOSPC (the disk is
 * full) or GROVE_EIO; after an error only
 * blobs_writer_abort is allowed. */
int blobs_writer_write(struct blobs_writer *w, const void *data, size_t n);
uint64_t blobs_writer_size(const struct blobs_writer *w);

/* The two halves of blobs_writer_write, for a caller that runs them on
 * two threads at once (the hash of one buffer beside the write of
 * another): blobs_writer_take counts n bytes against the limits and adds
 * them to the hash and the size (the errors of blobs_writer_write but the
 * disk's); blobs_writer_put appends them to the temporary file (0,
 * GROVE_ENOSPC, GROVE_EIO). Each half sees every byte once, in order,
 * one call at a time; take and put may run at the same time on two
 * threads. A commit whose two halves did not see as many bytes is
 * GROVE_EIO. */
int blobs_writer_take(struct blobs_writer *w, const void *data, size_t n);
int blobs_writer_put(struct blobs_writer *w, const void *data, size_t n);
/* Finishes: sync, content address, metadata. Frees w whatever it returns.
 * OUT: *out the blob. Returns 0, GROVE_EQUOTA (the quota filled up
 * meanwhile: nothing is kept), GROVE_EINVAL (a bad name or media type),
 * GROVE_ENOSPC, GROVE_EIO or the store's error. */
int blobs_writer_commit(struct blobs_writer *w, const struct blobs_new *nb,
                        struct blobs_info *out);
/* Drops the upload and its temporary file. Frees w. NULL is fine. */
void blobs_writer_abort(struct blobs_writer *w);

/* Makes the finished file at `path` a blob: hashes it, checks size and
 * quota, moves it into the store (a rename from blobs_spool_dir; a copy
 * from elsewhere) and records it. On success `path` is gone; on error it
 * is left as it was. If sha256 is not NULL it is the hash the caller
 * expects: a mismatch is GROVE_EINVAL and nothing is stored. Blocking.
 * Returns 0 or the errors of blobs_writer_commit, GROVE_ENOENT (no such
 * file), GROVE_ETOOBIG. */
int blobs_put_file(struct blobs *b, const char *path, const struct blobs_new *nb,
                   const char *sha256, struct blobs_info *out);

/* Makes the finished file at `path` a blob without reading it again when
 * the caller knows its SHA-256: sha256 (lowercase hex) is the hash the
 * caller computed from exactly the bytes it wrote to that file, and is
 * trusted (the content address: a wrong one corrupts the store); NULL
 * hashes the file here (one read, no copy). The file is linked into the
 * store (a copy only across filesystems); with keep it stays at `path`
 * too, and the caller must never write to it again (a link shares the
 * bytes); without keep it is removed on success. On error `path` is left
 * as it was. Blocking. Returns what blobs_put_file returns (GROVE_EINVAL
 * also for a sha256 that is not 64 lowercase hex characters). */
int blobs_adopt_file(struct blobs *b, const char *path, const char *sha256, bool keep,
                     const struct blobs_new *nb, struct blobs_info *out);

/* ---- reading a blob (blocking) ------------------------------------------ */

/* Opens blob i's bytes. Returns 0, GROVE_ENOENT (the bytes are missing:
 * logged, as it breaks the first invariant) or GROVE_EIO. */
int blobs_reader_open(struct blobs *b, const struct blobs_info *i, struct blobs_reader **out);
/* Reads up to n bytes at off. OUT: *got (0 at the end). Returns 0 or
 * GROVE_EIO. */
int blobs_reader_read(struct blobs_reader *rd, uint64_t off, void *buf, size_t n, size_t *got);
void blobs_reader_close(struct blobs_reader *rd);

/* ---- HTTP ---------------------------------------------------------------- */

/* POST /api/v1/blobs (the body streamed: one blob; its name in
 * X-Blob-Name or ?name=, its type in Content-Type), GET /api/v1/blobs,
 * GET and DELETE /api/v1/blobs/{id}, GET /api/v1/blobs/{id}/content
 * (Range, ETag), GET /api/v1/blobs/usage. Owners see their own blobs,
 * admins every blob. Returns 0 or a GROVE_E* code with err. */
int blobs_routes(struct blobs *b, struct router *r, char *err, size_t errlen);

#endif
