/* tus.h — resumable uploads: the tus 1.0.0 protocol (https://tus.io/protocols/resumable-upload)
 * at /api/v1/uploads, with the extensions creation, creation-with-upload,
 * checksum (sha256), termination, expiration and concatenation
 * (docs/blobs.md, "Resumable uploads").
 *
 * Three layers, one header:
 * - the header parser (tus_parse_*): pure functions over the values of
 *   the tus request headers, strict and total. Every value is either
 *   accepted whole or refused with a struct tus_error that names the
 *   header and the HTTP status to answer (400, 412, 413), never read past
 *   its NUL. Any thread.
 * - the upload state (tus_create … tus_sweep): a partial upload is a data
 *   file in the blob store's spool directory plus a record in the platform store
 *   (table tus_uploads: offset, length, metadata, owner, expiry, the parts
 *   of a concatenation, and a write lock with a fencing token). Blocking:
 *   store and file calls, for the store pool.
 * - the routes (tus_routes), which put the two on the HTTP server.
 *
 * Invariant (durability): the offset a record holds, and so the offset a
 * HEAD reports, never exceeds what was fsync'd to the data file. Bytes are
 * appended to the file first, the file is fsync'd, then the record's
 * offset is committed (synchronous commit), so after kill -9 the record
 * names a prefix of the file that is on disk; bytes past it are cut off
 * when the upload is next written.
 *
 * Invariant (one writer): an upload is written by at most one PATCH at a
 * time, across every instance sharing the store: a writer takes the
 * record's lock (a lease until lock_until, Unix ms, and a fencing token
 * that grows with every take) and every offset it commits names its
 * token, so a writer whose lease lapsed and was taken over can no longer
 * move the offset (GROVE_EPERM). The lock is per instance and data
 * directory (several instances may share the blob folder, each with its
 * own data directory): a process that restarts on the same data
 * directory frees the locks its previous life held, and only those. */
#ifndef GROVE_TUS_H
#define GROVE_TUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "store/store.h"

#define TUS_VERSION "1.0.0"
#define TUS_EXTENSIONS \
  "creation,creation-with-upload,checksum,termination,expiration,concatenation"
#define TUS_CHECKSUM_ALGORITHMS "sha256"
#define TUS_CONTENT_TYPE "application/offset+octet-stream"
/* Where uploads live; an upload's URL is TUS_BASE_PATH "/" id. */
#define TUS_BASE_PATH "/api/v1/uploads"
#define TUS_ID_LEN 33 /* 32 lowercase hex characters and a NUL */

/* ---- the header parser ---------------------------------------------------- */

/* Limits of what the parser takes (each a 400 when passed). */
#define TUS_MAX_METADATA_PAIRS 32
#define TUS_MAX_METADATA_KEY 128   /* bytes of one key */
#define TUS_MAX_METADATA_VALUE 4096 /* decoded bytes of one value */
#define TUS_MAX_PARTS 256          /* uploads one final concatenation names */

/* Why a header value was refused: the status to answer, an error_code for
 * the envelope, the header's canonical name, a message for a person. */
struct tus_error {
  int status;          /* 400, 412 (Tus-Resumable) or 413 (Upload-Length) */
  const char *code;    /* "INVALID_HEADER", "UNSUPPORTED_VERSION", … (static) */
  const char *header;  /* "Upload-Offset", … (static) */
  char message[160];
};

/* Tus-Resumable: exactly "1.0.0". NULL (absent) or another version is 412
 * UNSUPPORTED_VERSION (the answer then carries Tus-Version). Returns 0 or
 * GROVE_EINVAL with *e filled. */
int tus_parse_version(const char *v, struct tus_error *e);

/* Upload-Offset and Upload-Length: a non-negative decimal integer, digits
 * only (no sign, no space, no leading zeros but "0" itself), at most
 * INT64_MAX. `header` is the header's name for errors. Upload-Length over
 * `max` (0: none) is 413 UPLOAD_TOO_LARGE. Returns 0 or GROVE_EINVAL. */
int tus_parse_u64(const char *header, const char *v, uint64_t max, uint64_t *out,
                  struct tus_error *e);

/* Upload-Defer-Length: "1" is the only value. Returns 0 or GROVE_EINVAL. */
int tus_parse_defer_length(const char *v, struct tus_error *e);

/* Upload-Metadata: comma-separated pairs "key base64value" or "key" alone
 * (an empty value); spaces around the commas are allowed. A key is 1 to
 * TUS_MAX_METADATA_KEY printable ASCII bytes without space or comma,
 * unique; a value is standard, padded base64 (RFC 4648 §4) decoding to at
 * most TUS_MAX_METADATA_VALUE bytes. An empty header is no pairs. */
struct tus_meta_pair {
  char *key;             /* NUL-ended */
  unsigned char *value;  /* decoded, NUL-ended (values may hold NULs: use len) */
  size_t len;
};
struct tus_metadata {
  struct tus_meta_pair *pairs; /* owned; n of them, in the header's order */
  int n;
};
/* OUT: *m (released with tus_metadata_release, also after an error).
 * Returns 0, GROVE_EINVAL with *e filled, or GROVE_ENOMEM. */
int tus_parse_metadata(const char *v, struct tus_metadata *m, struct tus_error *e);
void tus_metadata_release(struct tus_metadata *m);
/* The value of `key` (NULL when absent); OUT: *len (may be NULL). */
const unsigned char *tus_metadata_get(const struct tus_metadata *m, const char *key,
                                      size_t *len);

/* Upload-Checksum: "<algorithm> <base64 digest>". An algorithm other than
 * sha256 is 400 UNSUPPORTED_CHECKSUM (as the spec asks); a digest that is
 * not base64 of 32 bytes is 400 INVALID_HEADER. Returns 0 or GROVE_EINVAL. */
int tus_parse_checksum(const char *v, unsigned char digest[32], struct tus_error *e);

/* Upload-Concat: "partial", or "final;" and a space-separated list of the
 * URLs of partial uploads (1 to TUS_MAX_PARTS; absolute "http(s)://host/…"
 * or absolute paths), each TUS_BASE_PATH "/" and an upload id. */
struct tus_concat {
  bool partial;
  bool final;
  int nparts;
  char (*parts)[TUS_ID_LEN]; /* final: nparts ids in order (owned) */
};
/* OUT: *c (released with tus_concat_release, also after an error).
 * Returns 0, GROVE_EINVAL with *e filled, or GROVE_ENOMEM. */
int tus_parse_concat(const char *v, struct tus_concat *c, struct tus_error *e);
void tus_concat_release(struct tus_concat *c);

/* Upload-Expires: an HTTP date in the preferred format of RFC 7231
 * §7.1.1.1 (IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"), the weekday
 * matching the date. OUT: *unix_ms. Returns 0 or GROVE_EINVAL. */
int tus_parse_expires(const char *v, int64_t *unix_ms, struct tus_error *e);
/* Formats unix_ms (rounded down to the second) as IMF-fixdate; out needs
 * 30 bytes. Returns the length. */
size_t tus_format_expires(int64_t unix_ms, char out[30]);

/* Is id an upload id (TUS_ID_LEN-1 lowercase hex characters)? */
bool tus_id_valid(const char *id);

/* ---- the upload state (blocking) -------------------------------------------- */

struct tus;
struct tus_write;
struct router;
struct metrics;

struct tus_cfg {
  uint64_t max_size;     /* --upload-max-size: bytes one upload may have (Tus-Max-Size) */
  uint64_t expiry_ms;    /* --upload-expiry: an unfinished upload is removed this long
                          * after it was last written (Upload-Expires) */
  uint64_t sweep_ms;     /* --upload-sweep: how often expired uploads are looked for */
  uint64_t lock_ms;      /* --upload-lock: a writer's lease, renewed while it writes */
  uint64_t checkpoint;   /* --upload-checkpoint: bytes a PATCH receives between
                          * fsyncs of the offset (a kill loses at most this much) */
};

extern const struct cfg_opt tus_cfg_opts[];
extern const size_t tus_cfg_nopts;

/* The tus_uploads table: apply with store_migrate(st, "tus", …). */
extern const struct store_migration tus_migrations[];
extern const size_t tus_nmigrations;

enum tus_kind { TUS_PLAIN, TUS_PARTIAL, TUS_FINAL };

/* One upload's record as read (a copy: owned by the caller). */
struct tus_upload {
  char id[TUS_ID_LEN];
  char owner[64];
  enum tus_kind kind;
  uint64_t length;       /* Upload-Length */
  uint64_t offset;       /* durable offset: fsync'd and committed */
  char *metadata;        /* the Upload-Metadata header as sent (validated), or NULL */
  char *parts;           /* TUS_FINAL: the part ids, space-separated; else NULL */
  int64_t created_ms;
  int64_t expires_ms;    /* 0 once finished (it no longer expires) */
  char blob[72];         /* the blob it became once finished, or "" */
};
void tus_upload_release(struct tus_upload *u);

/* Opens the upload state: st migrated with tus_migrations, data files in
 * `dir` (made when missing; the blob store's spool directory, so that a
 * finished upload moves into the store without a copy). `instance` (32
 * hex characters: blobs_instance) names this process as a lock holder;
 * NULL keeps an id in dir/.instance, for a dir no other process uses. Frees the write
 * locks that an earlier life of this instance (the same dir) held, and
 * with cfg->sweep_ms starts the sweep of expired uploads (a thread).
 * On error, *out is NULL and err says why (GROVE_EINVAL, GROVE_EIO: the
 * folder; the store's error). */
int tus_open(struct tus **out, const struct tus_cfg *cfg, struct store *st, const char *dir,
             const char *instance, char *err, size_t errlen);
/* Stops the sweep and frees. NULL is fine. */
void tus_close(struct tus *t);
const struct tus_cfg *tus_config(const struct tus *t);
/* The clock (Unix ms): tests set it; NULL restores the wall clock. */
void tus_set_clock(struct tus *t, int64_t (*now_ms)(void *arg), void *arg);

struct tus_new {
  const char *owner;     /* who creates it: only they may use it */
  enum tus_kind kind;    /* TUS_FINAL: use tus_concat_final */
  uint64_t length;       /* <= max_size (checked by the caller) */
  const char *metadata;  /* validated Upload-Metadata, or NULL */
};
/* Creates an upload at offset 0 with an empty data file, committed. OUT:
 * *u. Returns 0 or GROVE_EIO / the store's error. */
int tus_create(struct tus *t, const struct tus_new *n, struct tus_upload *u);

/* Reads an upload of `owner` (NULL: anyone's). Returns 0, or GROVE_ENOENT
 * when there is none, it is another's, or it has expired (even if not
 * swept yet). */
int tus_get(struct tus *t, const char *id, const char *owner, struct tus_upload *u);

/* Takes the write lock of an upload of `owner` for one PATCH. OUT: *w,
 * and (may be NULL) *u the record at the time. Returns 0; GROVE_ENOENT
 * (none, another's, expired); GROVE_EBUSY (another writer holds it: 423);
 * GROVE_EEXIST (finished or a final concatenation: no more bytes);
 * the store's error. The data file is cut back to the durable offset. */
int tus_lock(struct tus *t, const char *id, const char *owner, struct tus_write **w,
             struct tus_upload *u);
/* Appends n bytes at the writer's offset (not yet durable), renewing the
 * lease when a third of it has passed. Returns 0, GROVE_ETOOBIG when they
 * would pass Upload-Length (nothing written), GROVE_EPERM when the lease
 * is lost or about to lapse (nothing written: a writer stops a tenth of
 * the lease before another may take it), or GROVE_EIO. */
int tus_write(struct tus_write *w, const void *data, size_t n);
/* Bytes written so far (durable or not) and durable. */
uint64_t tus_write_offset(const struct tus_write *w);
uint64_t tus_write_durable(const struct tus_write *w);
/* The SHA-256 (lowercase hex, 64 characters and a NUL) of a plain upload
 * that w has made complete (durable offset = Upload-Length), when this
 * process hashed all of its bytes as they were written (by w or by
 * earlier PATCHes of this process, which keep the state between them):
 * true and out filled; else false (hash the file). */
bool tus_write_sha256(const struct tus_write *w, char out[65]);
/* Makes the bytes written so far durable: fsync, then commits the offset
 * and renews the lease. Returns 0, GROVE_EPERM (the lock was lost: the
 * offset is not moved), GROVE_EIO, or the store's error. */
int tus_checkpoint(struct tus_write *w);
/* Forgets the bytes written since the last checkpoint (a checksum that
 * did not match): cuts the file back. Returns 0, GROVE_EPERM (the lease
 * is lost: the file is left to its new writer) or GROVE_EIO. */
int tus_discard(struct tus_write *w);
/* Ends the writer: frees the lock (when still held) and w. Bytes not
 * checkpointed are dropped. NULL is fine. */
void tus_unlock(struct tus_write *w);

/* The path of an upload's data file (out needs 4096 bytes). */
void tus_data_path(const struct tus *t, const char *id, char *out, size_t n);

/* Records that a finished upload became blob `blob` (its offset is its
 * length from then on; it is kept one more --upload-expiry for HEAD).
 * Returns 0, GROVE_ENOENT, or the store's error. */
int tus_finish(struct tus *t, const char *id, const char *blob);

/* Where the bytes of a final concatenation go, when not into its own
 * data file: called once a part, in the order named, with index i, the
 * part's data file (finished: it never changes again) and its length.
 * Returns 0, or an error that stops the concatenation (and is returned). */
typedef int (*tus_part_fn)(void *arg, int i, const char *path, uint64_t length);

/* Creates a final upload of `owner` from partial uploads ids[0..n) (each
 * the owner's, finished, not expired). sink NULL: its data file is their
 * bytes in order, fsync'd, then the record commits with offset = length;
 * with sha256 (65 bytes) not NULL, the same pass fills it with the
 * SHA-256 of those bytes in lowercase hex: what the concatenation hasher
 * had not hashed ahead (tus_settle, below) is hashed from the page cache
 * on this thread while another copies.
 * sink given: the parts go to sink(arg, …) in order instead, its data
 * file stays empty and its offset 0 until tus_finish records the blob the
 * caller made of them. Returns 0; GROVE_ENOENT (*bad names the part:
 * none, another's or expired); GROVE_EINVAL (*bad: not a partial upload,
 * or not finished); GROVE_ETOOBIG (their sum passes max_size);
 * GROVE_EIO; sink's error; the store's. On error nothing is left. */
int tus_concat_final(struct tus *t, const char *owner, const char (*ids)[TUS_ID_LEN], int n,
                     const char *metadata, tus_part_fn sink, void *arg, struct tus_upload *u,
                     int *bad, char *sha256);

/* The final's SHA-256 is hashed ahead: the partial uploads an owner
 * creates one after another are taken for one file's parts in that order,
 * and a thread hashes them from the first byte on as their bytes become
 * durable, so that the final, when it names them in that order, has
 * little or nothing left to hash (the rest, whatever the guess missed, is
 * hashed then from disk: docs/blobs.md). tus_settle blocks until that
 * thread has caught up with every durable byte (tests); tus_hashed_ahead
 * and tus_hashed_at_final count the bytes hashed ahead and at finals
 * since tus_open. Any thread. */
void tus_settle(struct tus *t);
uint64_t tus_hashed_ahead(struct tus *t);
uint64_t tus_hashed_at_final(struct tus *t);

/* Termination: removes an upload of `owner` (its record, then its data
 * file). Returns 0, GROVE_ENOENT, GROVE_EBUSY (a writer holds it), or the
 * store's error. */
int tus_delete(struct tus *t, const char *id, const char *owner);

/* Removes every unfinished upload whose expiry has passed (and data files
 * with no record). OUT: *removed (may be NULL). Returns 0 or the store's
 * error. */
int tus_sweep(struct tus *t, int *removed);

/* ---- the routes ---------------------------------------------------------------- */

struct tus_api;
struct blobs;
/* Adds the tus routes (owner "tus") to r: OPTIONS and POST /api/v1/uploads,
 * HEAD, PATCH, DELETE and POST (X-HTTP-Method-Override)
 * /api/v1/uploads/{upload_id}. Complete uploads become blobs of b.
 * OUT: *out the routes' state, freed with tus_api_free after the server
 * stopped. Returns 0, GROVE_ENOMEM, or the router's error with err. */
int tus_routes(struct tus_api **out, struct tus *t, struct blobs *b, struct router *r,
               char *err, size_t errlen);
void tus_api_free(struct tus_api *a); /* NULL is fine */

#endif
