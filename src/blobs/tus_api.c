/* tus_api.c — the tus 1.0.0 routes at /api/v1/uploads (tus.h): OPTIONS
 * (discovery), POST (creation, creation-with-upload, concatenation),
 * HEAD (the offset), PATCH (append), DELETE (termination), and POST with
 * X-HTTP-Method-Override. Every answer carries Tus-Resumable; every
 * refusal is the error envelope.
 *
 * A PATCH (or a POST with a body) streams: the server hands the body in
 * pieces (http_req_stream); they are gathered into a batch of BATCH bytes
 * and written by a job on libuv's work queue while the next batch fills,
 * the stream paused when both are full, so an upload holds two batches
 * of memory whatever its size. Without Upload-Checksum the offset is made
 * durable (tus_checkpoint) every --upload-checkpoint bytes and when the
 * body ends, also when the client goes away mid-body: what arrived is
 * kept, as the spec asks. With Upload-Checksum nothing of the chunk
 * counts until all of it matched (460 and the chunk is thrown away).
 * The work queue, not a request's pool job, carries these writes because
 * the last of them (keeping what arrived, freeing the lock) must run
 * after the client has gone and its request with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <uv.h>

#include "blobs/blobs.h"
#include "blobs/tus.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/periodic.h"
#include "core/util.h"
#include "gate/gate.h"
#include "net/http.h"

#define BATCH (1u << 20) /* bytes written by one job */

struct tus_api {
  struct tus *t;
  struct blobs *b;
};

/* ---- answers --------------------------------------------------------------------- */

static void tus_headers(struct http_req *r) { http_res_header(r, "Tus-Resumable", TUS_VERSION); }

static void refuse(struct http_req *r, int status, const char *code, const char *message,
                   json_t *details) {
  tus_headers(r);
  http_reply_error(r, status, code, message, details);
}

static void refuse_header(struct http_req *r, const struct tus_error *e) {
  tus_headers(r);
  if (e->status == 412)
    http_res_header(r, "Tus-Version", TUS_VERSION);
  http_reply_error(r, e->status, e->code, e->message, json_pack("{s:s}", "header", e->header));
}

static void refuse_rc(struct http_req *r, int rc, const char *id) {
  switch (rc) {
  case GROVE_ENOENT:
    refuse(r, 404, "NOT_FOUND", "no such upload (or it expired)",
           id ? json_pack("{s:s}", "upload_id", id) : NULL);
    break;
  case GROVE_EBUSY:
    refuse(r, 423, "UPLOAD_LOCKED", "another request is writing this upload; try again",
           id ? json_pack("{s:s}", "upload_id", id) : NULL);
    break;
  case GROVE_ENOMEM:
    refuse(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    break;
  default:
    http_res_header(r, "Retry-After", "1");
    refuse(r, 503, "STORE_UNAVAILABLE", "cannot do that now; try again", NULL);
  }
}

/* Tus-Resumable must name 1.0.0: else 412 with Tus-Version. */
static bool version_ok(struct http_req *r) {
  struct tus_error e;
  if (tus_parse_version(http_header_get(r, "tus-resumable"), &e) == 0)
    return true;
  refuse_header(r, &e);
  return false;
}

/* The headers a HEAD, a PATCH's and a POST's answers share. */
static void upload_headers(struct http_req *r, const struct tus_upload *u, bool offset) {
  char num[24];
  if (offset) {
    num[u64_to_dec(u->offset, num)] = '\0';
    http_res_header(r, "Upload-Offset", num);
  }
  if (!u->blob[0] && u->offset < u->length) {
    char date[30];
    if (tus_format_expires(u->expires_ms, date))
      http_res_header(r, "Upload-Expires", date);
  }
}

/* ---- OPTIONS: what this server speaks -------------------------------------------------- */

static void h_options(struct http_req *r) {
  struct tus *t = ((struct tus_api *)r->app)->t;
  char num[24];
  num[u64_to_dec(tus_config(t)->max_size, num)] = '\0';
  tus_headers(r);
  http_res_header(r, "Tus-Version", TUS_VERSION);
  http_res_header(r, "Tus-Extension", TUS_EXTENSIONS);
  http_res_header(r, "Tus-Max-Size", num);
  http_res_header(r, "Tus-Checksum-Algorithm", TUS_CHECKSUM_ALGORITHMS);
  http_reply(r, 204, NULL, NULL, 0);
}

/* ---- one request's state --------------------------------------------------------------
 * A call lives from the handler until the answer (and, for a body, until
 * the last write job is done, whichever is later). Loop fields are read
 * and written on the request's loop only; a job touches the job fields,
 * and the loop reads them after the job is done. */

enum op { OP_HEAD, OP_DELETE, OP_CREATE, OP_PATCH };

struct call {
  struct tus_api *a;
  enum op op;
  struct http_req *r;        /* NULL once answered or gone */
  char rid[24];
  char id[TUS_ID_LEN];
  char owner[64];
  /* the request's headers, checked */
  uint64_t offset;           /* PATCH: Upload-Offset */
  uint64_t length;           /* POST: Upload-Length */
  char *metadata;            /* POST: Upload-Metadata as sent, or NULL */
  struct tus_concat concat;  /* POST */
  bool has_sum;
  unsigned char want[32];    /* Upload-Checksum's digest */
  bool body;                 /* a body to stream (offset+octet-stream) */
  int64_t content_length;    /* -1: chunked or unknown */
  /* the store job's outcome */
  int rc;
  int bad;                   /* concatenation: the part refused */
  struct tus_upload u;
  struct tus_write *w;
  /* the body: two batches, one filling on the loop, one being written */
  struct buf fill, work;
  EVP_MD_CTX *md;
  uint64_t since_checkpoint;
  bool job;                  /* a write job is running */
  bool paused;
  bool ended;                /* the stream ended (end_err says how) */
  int end_err;
  bool finishing;            /* the last job is queued */
  uv_work_t uw;
  uv_loop_t *loop;
  int job_rc;
  bool sum_mismatch;
};


static void call_free(struct call *c) {
  if (!c)
    return;
  free(c->metadata);
  tus_concat_release(&c->concat);
  tus_upload_release(&c->u);
  buf_release(&c->fill);
  buf_release(&c->work);
  if (c->md)
    EVP_MD_CTX_free(c->md);
  free(c);
}

static struct call *call_new(struct http_req *r, enum op op) {
  struct call *c = calloc(1, sizeof *c);
  if (!c) {
    refuse(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return NULL;
  }
  c->a = r->app;
  c->op = op;
  c->r = r;
  c->loop = http_req_loop(r);
  c->bad = -1;
  c->content_length = -1;
  memcpy(c->rid, r->id, sizeof c->rid);
  const struct gate_principal *p = gate_caller(r);
  snprintf(c->owner, sizeof c->owner, "%s", p ? p->id : "");
  buf_init(&c->fill, 2 * BATCH);
  buf_init(&c->work, 2 * BATCH);
  return c;
}

/* The {upload_id} of the path; answers 404 when it is not an id. */
static bool take_id(struct http_req *r, struct call *c) {
  const char *id = http_param(r, "upload_id");
  if (!id || !tus_id_valid(id)) {
    refuse(r, 404, "NOT_FOUND", "no such upload", NULL);
    return false;
  }
  memcpy(c->id, id, TUS_ID_LEN);
  return true;
}

/* ---- finishing: a complete upload becomes a blob --------------------------------------- */

/* The blob's name and media type from the upload's metadata (filename,
 * filetype) when they are ones the blob store takes; else "" (its
 * defaults). Checked at creation, so these hold. */
static void blob_names(const char *metadata, char *name, size_t nn, char *type, size_t tn) {
  name[0] = type[0] = '\0';
  struct tus_metadata m = {0};
  struct tus_error e;
  if (metadata && tus_parse_metadata(metadata, &m, &e) == 0) {
    size_t len;
    const unsigned char *v = tus_metadata_get(&m, "filename", &len);
    if (v && len < nn && strlen((const char *)v) == len && blobs_name_valid((const char *)v))
      memcpy(name, v, len + 1);
    v = tus_metadata_get(&m, "filetype", &len);
    if (v && len < tn && strlen((const char *)v) == len &&
        blobs_media_type_valid((const char *)v))
      memcpy(type, v, len + 1);
  }
  tus_metadata_release(&m);
}

/* Blocking: records on upload c->id that it became blob `info`. */
static int finish_blob(struct call *c, const struct blobs_info *info) {
  snprintf(c->u.blob, sizeof c->u.blob, "%s", info->id);
  c->u.offset = c->u.length;
  int rc = tus_finish(c->a->t, c->id, info->id);
  if (rc)
    log_error(c->rid, "tus: blob made but not recorded on its upload", "id=%s blob=%s", c->id,
              info->id);
  return rc;
}

/* Blocking (a job): hands the data file of c->u (complete, plain) to the
 * blob store, owned by the upload's owner, named and typed from its
 * metadata, and records the blob on the upload. The file moves (the
 * uploads live in the store's spool directory); sha256, when the writer
 * hashed every byte as it came (tus_write_sha256), spares a second read.
 * Returns 0 (c->u.blob set), or the blob store's error (GROVE_EQUOTA,
 * GROVE_ETOOBIG, GROVE_ENOSPC, GROVE_EIO, the store's). */
static int make_blob(struct call *c, const char *sha256) {
  char name[BLOBS_NAME_MAX + 1], type[BLOBS_MEDIA_TYPE_MAX + 1], path[4200];
  blob_names(c->u.metadata, name, sizeof name, type, sizeof type);
  tus_data_path(c->a->t, c->id, path, sizeof path);
  struct blobs_new nb = {c->u.owner, name, type};
  struct blobs_info info;
  int rc = blobs_adopt_file(c->a->b, path, sha256, false, &nb, &info);
  if (rc) {
    log_warn(c->rid, "tus: complete upload not stored as a blob", "id=%s error=\"%s\"", c->id,
             grove_strerror(rc));
    return rc;
  }
  return finish_blob(c, &info);
}

/* ---- concatenation ------------------------------------------------------------------
 * Several parts are copied into the final upload's file (copy_file_range:
 * a reflink where the filesystem has them) by one thread while this one
 * hashes the same bytes from the page cache (tus_concat_final with a
 * sha256), so the file is never read again: it moves into the store with
 * that hash. A final of one part links that part's file into the store
 * (hashed once, never copied: a finished part never changes again). */

struct one_part {
  struct call *c;
  struct blobs_new nb;
  bool made; /* the blob is made (info) */
  struct blobs_info info;
};

static int adopt_part(void *arg, int i, const char *path, uint64_t length) {
  struct one_part *op = arg;
  (void)i;
  (void)length;
  int rc = blobs_adopt_file(op->c->a->b, path, NULL, true, &op->nb, &op->info);
  op->made = rc == 0;
  return rc;
}

/* Blocking (a job): the final upload of c->concat's parts, made a blob. */
static void concat_blob(struct call *c) {
  struct tus *t = c->a->t;
  struct blobs *b = c->a->b;
  char name[BLOBS_NAME_MAX + 1], type[BLOBS_MEDIA_TYPE_MAX + 1], sha[65];
  blob_names(c->metadata, name, sizeof name, type, sizeof type);
  struct one_part op = {.c = c, .nb = {c->owner, name, type}};
  bool one = c->concat.nparts == 1;
  c->rc = tus_concat_final(t, c->owner, (const char(*)[TUS_ID_LEN])c->concat.parts,
                           c->concat.nparts, c->metadata, one ? adopt_part : NULL, &op, &c->u,
                           &c->bad, one ? NULL : sha);
  if (c->rc) {
    if (op.made)
      blobs_delete(b, op.info.id, c->owner);
    return;
  }
  memcpy(c->id, c->u.id, TUS_ID_LEN);
  if (!one) {
    char path[4200];
    tus_data_path(t, c->id, path, sizeof path);
    c->rc = blobs_adopt_file(b, path, sha, false, &op.nb, &op.info);
    op.made = c->rc == 0;
  }
  if (!c->rc)
    c->rc = finish_blob(c, &op.info);
  if (c->rc) { /* the parts stay: the client may try again */
    log_warn(c->rid, "tus: final upload not stored as a blob", "id=%s error=\"%s\"", c->id,
             grove_strerror(c->rc));
    if (op.made)
      blobs_delete(b, op.info.id, c->owner);
    tus_delete(t, c->id, c->owner);
  }
}

/* ---- the body: batches written by jobs --------------------------------------------------- */

static void stream_job(uv_work_t *uw);
static void stream_job_done(uv_work_t *uw, int status);

static void queue_job(struct call *c) {
  c->job = true;
  c->uw.data = c;
  if (uv_queue_work(c->loop, &c->uw, stream_job, stream_job_done)) {
    /* only with bad arguments: run it here rather than leave the lock held */
    stream_job(&c->uw);
    stream_job_done(&c->uw, 0);
  }
}

/* Moves the filled batch to the job's side (the job's is empty). */
static void swap_batches(struct call *c) {
  struct buf t = c->work;
  c->work = c->fill;
  c->fill = t;
  buf_reset(&c->fill);
}

/* Ends the body here (the client went, or the request was answered):
 * the last job keeps what counts and frees the lock; nothing more is
 * said to the client. */
static void end_body(struct call *c, int err) {
  c->r = NULL;
  c->ended = true;
  c->end_err = err;
  buf_reset(&c->fill);
  if (!c->job) {
    c->finishing = true;
    queue_job(c);
  }
}

/* The last job: writes the rest, checks the checksum, keeps what counts,
 * makes the blob when the upload is complete, frees the lock. */
static void finish_body(struct call *c) {
  struct tus *t = c->a->t;
  if (c->end_err == 0 && !c->job_rc && c->has_sum) {
    unsigned char got[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(c->md, got, &n);
    if (n != 32 || memcmp(got, c->want, 32) != 0)
      c->sum_mismatch = true;
  }
  if (c->has_sum && (c->end_err || c->job_rc || c->sum_mismatch)) {
    if (tus_discard(c->w) && !c->job_rc) /* a chunk that did not match counts for nothing */
      c->job_rc = GROVE_EIO;
  } else {
    int rc = tus_checkpoint(c->w); /* what arrived is kept, complete or not */
    if (rc && !c->job_rc)
      c->job_rc = rc;
  }
  c->u.offset = tus_write_durable(c->w);
  char sha[65];
  bool known = tus_write_sha256(c->w, sha);
  tus_unlock(c->w);
  c->w = NULL;
  if (!c->job_rc && !c->end_err && !c->sum_mismatch && c->u.offset == c->u.length &&
      c->u.kind == TUS_PLAIN)
    c->job_rc = make_blob(c, known ? sha : NULL);
  /* the upload's expiry moved with the checkpoint */
  struct tus_upload u;
  if (tus_get(t, c->id, NULL, &u) == 0) {
    c->u.expires_ms = u.expires_ms;
    tus_upload_release(&u);
  }
}

static void stream_job(uv_work_t *uw) {
  struct call *c = uw->data;
  if (c->work.len && !c->job_rc) {
    int rc = tus_write(c->w, c->work.data, c->work.len);
    if (!rc && c->md)
      EVP_DigestUpdate(c->md, c->work.data, c->work.len);
    c->since_checkpoint += c->work.len;
    if (!rc && !c->has_sum && c->since_checkpoint >= tus_config(c->a->t)->checkpoint) {
      rc = tus_checkpoint(c->w);
      c->since_checkpoint = 0;
    }
    c->job_rc = rc;
  }
  buf_reset(&c->work);
  if (c->finishing)
    finish_body(c);
}

static void answer_body(struct call *c);
static void blob_header(struct http_req *r, const struct tus_upload *u);

static void stream_job_done(uv_work_t *uw, int status) {
  struct call *c = uw->data;
  (void)status;
  c->job = false;
  if (c->finishing) {
    answer_body(c);
    call_free(c);
    return;
  }
  if (c->job_rc) { /* a write failed, or the lock was lost: stop here */
    answer_body(c); /* answering ends the stream: no more callbacks */
    end_body(c, c->job_rc);
    return;
  }
  if (c->ended) {
    swap_batches(c);
    c->finishing = true;
    queue_job(c);
    return;
  }
  if (c->fill.len >= BATCH) {
    swap_batches(c);
    queue_job(c);
  }
  if (c->paused) {
    c->paused = false;
    http_req_stream_resume(c->r);
  }
}

static int on_data(struct http_req *r, const char *data, size_t len, void *arg) {
  struct call *c = arg;
  (void)r;
  if (buf_append(&c->fill, data, len)) {
    /* out of memory, or a piece past the batch's bound (pieces are one
     * read: never): the request ends here */
    refuse(c->r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    end_body(c, GROVE_ENOMEM); /* answered: the stream has ended, no callback follows */
    return HTTP_BODY_PAUSE;
  }
  if (c->fill.len < BATCH)
    return HTTP_BODY_MORE;
  if (!c->job) {
    swap_batches(c);
    queue_job(c);
    return HTTP_BODY_MORE;
  }
  c->paused = true;
  return HTTP_BODY_PAUSE;
}

static void on_end(struct http_req *r, int err, void *arg) {
  struct call *c = arg;
  (void)r;
  c->ended = true;
  c->end_err = err;
  if (err)
    c->r = NULL; /* gone, or the server answers 413 / 408 */
  if (!c->job) {
    swap_batches(c);
    c->finishing = true;
    queue_job(c);
  }
}

static const struct http_body_cbs body_cbs = {on_data, on_end};

/* Takes the body of c->r into the locked upload c->w. */
static void start_body(struct call *c) {
  if (c->has_sum && (!(c->md = EVP_MD_CTX_new()) ||
                     !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL))) {
    refuse(c->r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    end_body(c, GROVE_ENOMEM);
    return;
  }
  if (http_req_stream(c->r, &body_cbs, c))
    end_body(c, GROVE_ECLOSED); /* the client is gone: free the lock */
}

static void refuse_job(struct http_req *r, struct call *c, int rc) {
  switch (rc) {
  case GROVE_EIO:
    refuse(r, 500, "STORAGE_ERROR", "cannot store the upload", NULL);
    break;
  case GROVE_EPERM:
    refuse(r, 409, "UPLOAD_TAKEN_OVER",
           "this request's write lock expired and another request took the upload", NULL);
    break;
  case GROVE_ETOOBIG:
    if (c->u.length)
      refuse(r, 413, "UPLOAD_EXCEEDS_LENGTH", "the body passes the upload's Upload-Length",
             json_pack("{s:I}", "length", (json_int_t)c->u.length));
    else
      refuse(r, 413, "UPLOAD_TOO_LARGE", "the upload is larger than Tus-Max-Size", NULL);
    break;
  case GROVE_EQUOTA:
    refuse(r, 507, "QUOTA_EXCEEDED", "the upload does not fit the owner's blob quota", NULL);
    break;
  case GROVE_ENOSPC:
    refuse(r, 507, "INSUFFICIENT_STORAGE", "the server's disk is full", NULL);
    break;
  default:
    refuse_rc(r, rc, c->id);
  }
}

/* The answer once the body is in (or failed). */
static void answer_body(struct call *c) {
  struct http_req *r = c->r;
  if (!r)
    return;
  c->r = NULL;
  if (c->job_rc) {
    refuse_job(r, c, c->job_rc);
    return;
  }
  if (c->sum_mismatch) {
    refuse(r, 460, "CHECKSUM_MISMATCH",
           "the chunk's SHA-256 is not Upload-Checksum's: it was discarded",
           json_pack("{s:I}", "offset", (json_int_t)c->u.offset));
    return;
  }
  tus_headers(r);
  upload_headers(r, &c->u, true);
  blob_header(r, &c->u);
  if (c->op == OP_CREATE) {
    char loc[64];
    snprintf(loc, sizeof loc, TUS_BASE_PATH "/%s", c->id);
    http_res_header(r, "Location", loc);
    http_reply(r, 201, NULL, NULL, 0);
  } else {
    http_reply(r, 204, NULL, NULL, 0);
  }
}

/* ---- HEAD: where an upload stands --------------------------------------------------------- */

static void work_head(void *arg) {
  struct call *c = arg;
  c->rc = tus_get(c->a->t, c->id, c->owner, &c->u);
}

/* Upload-Concat of a final upload: "final;" and its parts' URLs. */
static void concat_header(struct http_req *r, const struct tus_upload *u) {
  if (u->kind == TUS_PARTIAL) {
    http_res_header(r, "Upload-Concat", "partial");
    return;
  }
  if (u->kind != TUS_FINAL || !u->parts)
    return;
  struct buf b;
  buf_init(&b, 0);
  buf_puts(&b, "final;");
  const char *p = u->parts;
  while (*p) {
    size_t n = strcspn(p, " ");
    buf_printf(&b, "%s" TUS_BASE_PATH "/%.*s", p == u->parts ? "" : " ", (int)n, p);
    p += n;
    while (*p == ' ')
      p++;
  }
  if (b.len)
    http_res_header(r, "Upload-Concat", b.data);
  buf_release(&b);
}

static void blob_header(struct http_req *r, const struct tus_upload *u) {
  if (u->blob[0])
    http_res_header(r, "Upload-Blob", u->blob);
}

static void done_head(struct http_req *r, void *arg) {
  struct call *c = arg;
  if (!r->conn)
    goto out;
  if (c->rc) {
    http_res_header(r, "Cache-Control", "no-store");
    refuse_rc(r, c->rc, c->id);
    goto out;
  }
  char num[24];
  tus_headers(r);
  http_res_header(r, "Cache-Control", "no-store");
  upload_headers(r, &c->u, true);
  num[u64_to_dec(c->u.length, num)] = '\0';
  http_res_header(r, "Upload-Length", num);
  if (c->u.metadata && *c->u.metadata)
    http_res_header(r, "Upload-Metadata", c->u.metadata);
  concat_header(r, &c->u);
  blob_header(r, &c->u);
  http_reply(r, 200, NULL, NULL, 0);
out:
  call_free(c);
}

static void go(struct http_req *r, struct call *c, http_work_fn work, http_done_fn done) {
  if (http_req_defer(r, HTTP_POOL_STORE, work, done, c))
    call_free(c);
}

/* A request on one upload with no body (HEAD, DELETE): the version, the
 * id, then work and done on the store pool. */
static void on_upload(struct http_req *r, enum op op, http_work_fn work, http_done_fn done) {
  if (!version_ok(r))
    return;
  struct call *c = call_new(r, op);
  if (!c)
    return;
  if (!take_id(r, c)) {
    call_free(c);
    return;
  }
  go(r, c, work, done);
}

static void h_head(struct http_req *r) { on_upload(r, OP_HEAD, work_head, done_head); }

/* ---- DELETE: termination ------------------------------------------------------------------ */

static void work_delete(void *arg) {
  struct call *c = arg;
  c->rc = tus_delete(c->a->t, c->id, c->owner);
}

static void done_delete(struct http_req *r, void *arg) {
  struct call *c = arg;
  if (r->conn) {
    if (c->rc) {
      refuse_rc(r, c->rc, c->id);
    } else {
      tus_headers(r);
      http_reply(r, 204, NULL, NULL, 0);
    }
  }
  call_free(c);
}

static void h_delete(struct http_req *r) { on_upload(r, OP_DELETE, work_delete, done_delete); }

/* ---- PATCH: bytes at an offset ------------------------------------------------------------ */

/* Content-Type is application/offset+octet-stream (parameters aside)? */
static bool offset_stream(const char *ct) {
  size_t n = sizeof TUS_CONTENT_TYPE - 1;
  if (!ct || strncasecmp(ct, TUS_CONTENT_TYPE, n) != 0)
    return false;
  return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/* The checksum of a body (Upload-Checksum), when sent. */
static bool take_checksum(struct http_req *r, struct call *c) {
  const char *v = http_header_get(r, "upload-checksum");
  if (!v)
    return true;
  struct tus_error e;
  if (tus_parse_checksum(v, c->want, &e)) {
    refuse_header(r, &e);
    return false;
  }
  c->has_sum = true;
  return true;
}

#define MISMATCH 1 /* the store job's outcome: Upload-Offset is not the upload's */

/* Locks c->id for the body, and checks what the client says against it. */
static void lock_for_body(struct call *c) {
  c->rc = tus_lock(c->a->t, c->id, c->owner, &c->w, &c->u);
  if (c->rc)
    return;
  if (c->u.offset != c->offset) {
    c->u.offset = tus_write_durable(c->w);
    tus_unlock(c->w);
    c->w = NULL;
    c->rc = MISMATCH;
  } else if (c->content_length > 0 &&
             (uint64_t)c->content_length > c->u.length - c->u.offset) {
    tus_unlock(c->w);
    c->w = NULL;
    c->rc = GROVE_ETOOBIG;
  }
}

static void work_patch(void *arg) { lock_for_body(arg); }

static void refuse_mismatch(struct http_req *r, struct call *c) {
  char num[24];
  num[u64_to_dec(c->u.offset, num)] = '\0';
  http_res_header(r, "Upload-Offset", num);
  refuse(r, 409, "OFFSET_MISMATCH", "Upload-Offset is not the upload's offset",
         json_pack("{s:I,s:I}", "offset", (json_int_t)c->u.offset, "sent",
                   (json_int_t)c->offset));
}

static void done_patch(struct http_req *r, void *arg) {
  struct call *c = arg;
  if (!r->conn) {
    if (!c->w) {
      call_free(c);
      return;
    }
    end_body(c, GROVE_ECLOSED); /* the client went while the lock was taken */
    return;
  }
  if (c->rc == MISMATCH) {
    refuse_mismatch(r, c);
  } else if (c->rc == GROVE_EEXIST && c->u.kind == TUS_FINAL) {
    refuse(r, 403, "FORBIDDEN", "a final upload is made of its parts: it takes no PATCH",
           json_pack("{s:s}", "upload_id", c->id));
  } else if (c->rc == GROVE_EEXIST) { /* complete: only an empty PATCH at its end is fine */
    if (c->offset != c->u.offset) {
      refuse_mismatch(r, c);
    } else if (c->content_length != 0) {
      refuse_job(r, c, GROVE_ETOOBIG);
    } else {
      tus_headers(r);
      upload_headers(r, &c->u, true);
      blob_header(r, &c->u);
      http_reply(r, 204, NULL, NULL, 0);
    }
  } else if (c->rc) {
    refuse_job(r, c, c->rc);
  } else {
    start_body(c);
    return;
  }
  call_free(c);
}

static void h_patch(struct http_req *r) {
  if (!version_ok(r))
    return;
  if (!offset_stream(http_header_get(r, "content-type"))) {
    refuse(r, 415, "UNSUPPORTED_MEDIA_TYPE", "a PATCH body is " TUS_CONTENT_TYPE,
           json_pack("{s:s}", "expected", TUS_CONTENT_TYPE));
    return;
  }
  struct tus_error e;
  uint64_t off;
  if (tus_parse_u64("Upload-Offset", http_header_get(r, "upload-offset"), 0, &off, &e)) {
    refuse_header(r, &e);
    return;
  }
  struct call *c = call_new(r, OP_PATCH);
  if (!c)
    return;
  c->offset = off;
  c->content_length = http_req_content_length(r);
  if (!take_id(r, c) || !take_checksum(r, c)) {
    call_free(c);
    return;
  }
  go(r, c, work_patch, done_patch);
}

/* ---- POST: creation, creation-with-upload, concatenation ---------------------------------- */

static void work_create(void *arg) {
  struct call *c = arg;
  struct tus *t = c->a->t;
  if (c->concat.final) {
    concat_blob(c);
    return;
  }
  struct tus_new nu = {c->owner, c->concat.partial ? TUS_PARTIAL : TUS_PLAIN, c->length,
                       c->metadata};
  /* the owner's quota, now rather than after the bytes came (the blob
   * store checks again when the upload becomes a blob) */
  struct blobs_usage use;
  if ((c->rc = blobs_usage(c->a->b, c->owner, &use)) ||
      (c->rc = blobs_quota_check(&use, blobs_max_size(c->a->b), (int64_t)c->length)))
    return;
  if ((c->rc = tus_create(t, &nu, &c->u)))
    return;
  memcpy(c->id, c->u.id, TUS_ID_LEN);
  if (c->body) {
    c->offset = 0;
    lock_for_body(c);
  } else if (c->length == 0 && nu.kind == TUS_PLAIN) {
    c->rc = make_blob(c, NULL); /* complete at birth */
  }
}

static void done_create(struct http_req *r, void *arg) {
  struct call *c = arg;
  if (!r->conn) {
    if (c->w) { /* free the lock off the loop */
      end_body(c, GROVE_ECLOSED);
      return;
    }
  } else if (c->rc && c->bad >= 0) {
    char url[64];
    snprintf(url, sizeof url, TUS_BASE_PATH "/%s", c->concat.parts[c->bad]);
    refuse(r, 400, "INVALID_CONCATENATION",
           c->rc == GROVE_ENOENT ? "Upload-Concat names an upload that does not exist"
                                 : "Upload-Concat names an upload that is not a finished "
                                   "partial upload",
           json_pack("{s:s,s:i}", "upload", url, "index", c->bad));
  } else if (c->rc == GROVE_ETOOBIG && c->concat.final) {
    refuse(r, 413, "UPLOAD_TOO_LARGE", "the parts together pass Tus-Max-Size", NULL);
  } else if (c->rc) {
    refuse_job(r, c, c->rc);
  } else if (c->body) {
    start_body(c);
    return;
  } else {
    char loc[64];
    snprintf(loc, sizeof loc, TUS_BASE_PATH "/%s", c->id);
    tus_headers(r);
    http_res_header(r, "Location", loc);
    upload_headers(r, &c->u, true);
    blob_header(r, &c->u);
    http_reply(r, 201, NULL, NULL, 0);
  }
  call_free(c);
}

static void h_create(struct http_req *r) {
  if (!version_ok(r))
    return;
  struct tus *t = ((struct tus_api *)r->app)->t;
  struct call *c = call_new(r, OP_CREATE);
  if (!c)
    return;
  struct tus_error e;
  struct tus_metadata m = {0};
  const char *concat = http_header_get(r, "upload-concat");
  const char *len = http_header_get(r, "upload-length");
  const char *defer = http_header_get(r, "upload-defer-length");
  const char *meta = http_header_get(r, "upload-metadata");
  c->content_length = http_req_content_length(r);
  c->body = offset_stream(http_header_get(r, "content-type"));
  int rc = 0;
  if (concat && (rc = tus_parse_concat(concat, &c->concat, &e)))
    goto bad;
  if ((rc = tus_parse_metadata(meta, &m, &e)))
    goto bad;
  /* what will name and type the blob, checked now */
  size_t vlen;
  const unsigned char *fname = tus_metadata_get(&m, "filename", &vlen);
  bool name_ok = !fname || (strlen((const char *)fname) == vlen &&
                            blobs_name_valid((const char *)fname));
  const unsigned char *ftype = tus_metadata_get(&m, "filetype", &vlen);
  bool type_ok = !ftype || vlen == 0 ||
                 (strlen((const char *)ftype) == vlen && blobs_media_type_valid((const char *)ftype));
  tus_metadata_release(&m);
  if (!name_ok || !type_ok) {
    refuse(r, 400, "INVALID_HEADER",
           !name_ok ? "Upload-Metadata's filename is not a blob name (UTF-8, no control "
                      "characters or slashes, 1 to 255 bytes)"
                    : "Upload-Metadata's filetype is not a media type (type/subtype)",
           json_pack("{s:s}", "header", "Upload-Metadata"));
    goto out;
  }
  if (meta && *meta && !(c->metadata = strdup(meta))) {
    rc = GROVE_ENOMEM;
    goto bad;
  }
  if (c->concat.final) {
    if (len || defer) {
      refuse(r, 400, "INVALID_HEADER",
             "a final upload takes no Upload-Length: its length is its parts'",
             json_pack("{s:s}", "header", len ? "Upload-Length" : "Upload-Defer-Length"));
      goto out;
    }
    if (c->body || c->content_length > 0) {
      refuse(r, 400, "INVALID_INPUT", "a final upload takes no body: its bytes are its parts'",
             NULL);
      goto out;
    }
  } else if (defer) {
    if ((rc = tus_parse_defer_length(defer, &e)))
      goto bad;
    refuse(r, 400, "INVALID_HEADER",
           len ? "send Upload-Length or Upload-Defer-Length, not both"
               : "this server needs Upload-Length at creation (no creation-defer-length)",
           json_pack("{s:s}", "header", "Upload-Defer-Length"));
    goto out;
  } else if (!len) {
    refuse(r, 400, "INVALID_HEADER", "Upload-Length is required",
           json_pack("{s:s}", "header", "Upload-Length"));
    goto out;
  } else if ((rc = tus_parse_u64("Upload-Length", len, tus_config(t)->max_size, &c->length,
                                 &e))) {
    goto bad;
  }
  if (!c->body && c->content_length > 0) {
    refuse(r, 415, "UNSUPPORTED_MEDIA_TYPE",
           "a body at creation is the upload's first bytes: " TUS_CONTENT_TYPE,
           json_pack("{s:s}", "expected", TUS_CONTENT_TYPE));
    goto out;
  }
  if (c->body && c->content_length > 0 && (uint64_t)c->content_length > c->length) {
    refuse_job(r, c, GROVE_ETOOBIG);
    goto out;
  }
  if (c->body && !take_checksum(r, c))
    goto out;
  go(r, c, work_create, done_create);
  return;
bad:
  tus_metadata_release(&m);
  if (rc == GROVE_EINVAL)
    refuse_header(r, &e);
  else
    refuse(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
out:
  call_free(c);
}

/* ---- POST with X-HTTP-Method-Override ------------------------------------------------------- */

static void h_override(struct http_req *r) {
  const char *m = http_header_get(r, "x-http-method-override");
  if (m && strcmp(m, "PATCH") == 0) {
    h_patch(r);
  } else if (m && strcmp(m, "DELETE") == 0) {
    h_delete(r);
  } else if (m && strcmp(m, "HEAD") == 0) {
    r->head = true;
    h_head(r);
  } else {
    http_res_header(r, "Allow", "HEAD, PATCH, DELETE");
    refuse(r, 405, "METHOD_NOT_ALLOWED",
           "POST on an upload needs X-HTTP-Method-Override: PATCH, DELETE or HEAD",
           json_pack("{s:s}", "allow", "HEAD, PATCH, DELETE"));
  }
}

/* ---- the table ------------------------------------------------------------------------------ */

static const struct route_def routes[] = {
    {.method = "OPTIONS", .pattern = TUS_BASE_PATH, .fn = h_options, .anonymous = true},
    {.method = "POST", .pattern = TUS_BASE_PATH, .fn = h_create, .scopes = GATE_WRITE,
     .stream_body = true},
    {.method = "HEAD", .pattern = TUS_BASE_PATH "/{upload_id}", .fn = h_head,
     .scopes = GATE_WRITE},
    {.method = "PATCH", .pattern = TUS_BASE_PATH "/{upload_id}", .fn = h_patch,
     .scopes = GATE_WRITE, .stream_body = true},
    {.method = "DELETE", .pattern = TUS_BASE_PATH "/{upload_id}", .fn = h_delete,
     .scopes = GATE_WRITE},
    {.method = "POST", .pattern = TUS_BASE_PATH "/{upload_id}", .fn = h_override,
     .scopes = GATE_WRITE, .stream_body = true},
};

int tus_routes(struct tus_api **out, struct tus *t, struct blobs *b, struct router *r, char *err,
               size_t errlen) {
  struct tus_api *a = calloc(1, sizeof *a);
  if (!a)
    return GROVE_ENOMEM;
  a->t = t;
  a->b = b;
  int rc = router_add_all(r, "tus", routes, ARRAY_LEN(routes), a, err, errlen);
  if (rc) {
    free(a);
    return rc;
  }
  *out = a;
  return 0;
}

void tus_api_free(struct tus_api *a) { free(a); }
