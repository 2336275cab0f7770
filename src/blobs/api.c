/* api.c — the blob store's HTTP routes: uploads streamed to disk as they
 * arrive, downloads streamed from disk with ranges and validators, and
 * the metadata reads and deletes. Owners see their own blobs (another's
 * is 404, as if absent); admins see every blob. Every store and disk call
 * runs on the store pool (http_req_defer).
 *
 * An upload holds a ring of NBUF buffers of CHUNK bytes: the loop fills
 * one while, on the pool, one job hashes the oldest full one not hashed
 * and another writes the oldest not written to disk, beside each other
 * (the hash, the dearest part, on a core of its own); a buffer is free
 * again once both are done with it. When every buffer is full the stream
 * is paused (the socket is not read) until one is free. (Buffers are
 * malloc'd whole but their pages are touched only as bytes arrive.) A
 * download keeps at most two pieces of PIECE bytes: one being read from
 * disk while the other is on its way to the client. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blobs/internal.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "gate/gate.h"
#include "net/http.h"

#define CHUNK (1u << 20)          /* an upload's buffer: hashed and written whole */
#define PIECE_MAX (64u << 10)     /* the most one on_data hands over (one socket read) */
#define FILL_CAP (CHUNK + PIECE_MAX) /* a buffer short of CHUNK takes one more piece */
#define NBUF 4                    /* an upload's buffers: one filling, the rest queued */
#define PIECE (256u << 10)        /* a download's read from disk */

/* ---- errors -------------------------------------------------------------- */

static void reply_rc(struct http_req *r, int rc, struct blobs *b, const char *rid) {
  switch (rc) {
  case GROVE_ENOENT:
    http_reply_error(r, 404, "NOT_FOUND", "no such blob", NULL);
    break;
  case GROVE_ETOOBIG:
    http_reply_error(r, 413, "BODY_TOO_LARGE", "the file is larger than this server takes",
                     json_pack("{s:I}", "max_bytes", (json_int_t)blobs_max_size(b)));
    break;
  case GROVE_EQUOTA:
    http_reply_error(r, 507, "QUOTA_EXCEEDED", "the owner's blob quota is used up",
                     json_pack("{s:I,s:I}", "quota_bytes", (json_int_t)b->quota_bytes,
                               "quota_files", (json_int_t)b->quota_files));
    break;
  case GROVE_ENOSPC:
    http_reply_error(r, 507, "INSUFFICIENT_STORAGE", "the server's disk is full", NULL);
    break;
  case GROVE_EINVAL:
    http_reply_error(r, 400, "INVALID_INPUT", "the blob's name or media type is not valid",
                     NULL);
    break;
  default:
    log_error(rid, "blobs: request failed", "error=\"%s\"", grove_strerror(rc));
    http_res_header(r, "Retry-After", "1");
    http_reply_error(r, 503, "STORE_UNAVAILABLE", "cannot do that now; try again", NULL);
  }
}

struct caller {
  char who[64];
  bool admin;
};

static bool caller_of(struct http_req *r, struct caller *c) {
  const struct gate_principal *p = gate_caller(r);
  if (!p) {
    http_reply_error(r, 401, "UNAUTHORIZED", "a credential is required", NULL);
    return false;
  }
  snprintf(c->who, sizeof c->who, "%s", p->id);
  c->admin = (p->scopes & GATE_ADMIN) != 0;
  return true;
}

/* The {id} of the path: 32 lowercase hex characters. */
static bool take_id(struct http_req *r, char id[BLOBS_ID_LEN]) {
  const char *v = http_param(r, "id");
  if (!v || strlen(v) != BLOBS_ID_LEN - 1 || strspn(v, "0123456789abcdef") != BLOBS_ID_LEN - 1) {
    http_reply_error(r, 404, "NOT_FOUND", "no such blob", NULL);
    return false;
  }
  memcpy(id, v, BLOBS_ID_LEN);
  return true;
}

/* ---- uploads ------------------------------------------------------------- */

struct upload {
  struct blobs *b;
  struct blobs_writer *w;
  struct caller who;
  char name[BLOBS_NAME_MAX + 1];
  char media_type[BLOBS_MEDIA_TYPE_MAX + 1];
  int64_t expected;        /* Content-Length, or -1 */
  uint64_t received;       /* body bytes taken so far (loop thread) */
  /* the ring: buffer number k (counting from 0 over the upload) is in
   * buf[k % NBUF]; buffers below nfill are full, nfill is filling */
  char *buf[NBUF];         /* FILL_CAP each */
  size_t len[NBUF];
  uint64_t nfill;
  uint64_t nhashed, nwritten; /* full buffers hashed, and written to disk */
  uint64_t nfree;          /* buffers below are both: their slots are free */
  bool hash_job, write_job, commit_job; /* a job of each kind is on the pool */
  int hash_rc, write_rc, rc; /* the jobs' outcomes */
  bool attached;           /* the body stream is ours */
  bool stream_over;        /* on_end ran, or we answered: no callback will come */
  bool paused;
  bool body_done;          /* the body is complete: commit once the ring is empty */
  bool gone;               /* the client went away or was answered: clean up */
  struct blobs_info info;
  char rid[24];
};

static void upload_free(struct upload *u) {
  blobs_writer_abort(u->w); /* a temporary file left: closed and removed */
  for (int i = 0; i < NBUF; i++)
    free(u->buf[i]);
  free(u);
}

/* Frees u once nothing will call back into it: no job on the pool and
 * the stream will not call on_end. */
static bool upload_settle(struct upload *u) {
  if (u->hash_job || u->write_job || u->commit_job || (u->attached && !u->stream_over))
    return false;
  upload_free(u);
  return true;
}

/* Answers r (which ends its stream). */
static void upload_answer_rc(struct http_req *r, struct upload *u, int rc) {
  u->stream_over = true;
  u->gone = true;
  reply_rc(r, rc, u->b, u->rid);
}

static void open_work(void *arg) {
  struct upload *u = arg;
  u->rc = blobs_writer_open(u->b, u->who.who, u->expected, &u->w);
}

/* The hash of the oldest buffer not hashed, beside the write of the
 * oldest not written (two jobs, two threads). */
static void hash_work(void *arg) {
  struct upload *u = arg;
  int k = (int)(u->nhashed % NBUF);
  u->hash_rc = blobs_writer_take(u->w, u->buf[k], u->len[k]);
}

static void write_work(void *arg) {
  struct upload *u = arg;
  int k = (int)(u->nwritten % NBUF);
  u->write_rc = blobs_writer_put(u->w, u->buf[k], u->len[k]);
}

/* The last job: the buffer that was filling (the body's tail), then the
 * commit. */
static void commit_work(void *arg) {
  struct upload *u = arg;
  int k = (int)(u->nfill % NBUF);
  u->rc = 0;
  if (u->len[k] && !(u->rc = blobs_writer_take(u->w, u->buf[k], u->len[k])))
    u->rc = blobs_writer_put(u->w, u->buf[k], u->len[k]);
  struct blobs_writer *w = u->w;
  u->w = NULL;
  if (u->rc) {
    blobs_writer_abort(w);
    return;
  }
  struct blobs_new nb = {u->who.who, u->name, u->media_type};
  u->rc = blobs_writer_commit(w, &nb, &u->info);
}

static void hash_done(struct http_req *r, void *arg);
static void write_done(struct http_req *r, void *arg);
static void commit_done(struct http_req *r, void *arg);

/* Starts a job; false when it could not (u is gone then). */
static bool upload_job(struct http_req *r, struct upload *u, bool *flag, http_work_fn work,
                       http_done_fn done) {
  *flag = true;
  int rc = http_req_defer(r, HTTP_POOL_STORE, work, done, u);
  if (rc) {
    *flag = false;
    u->gone = true;
    if (rc != GROVE_ECLOSED) /* answered 503 (BUSY): that ended the stream */
      u->stream_over = true;
  }
  return rc == 0;
}

/* Whether the buffer filling has a slot (a full ring pauses the stream). */
static bool upload_has_room(const struct upload *u) { return u->nfill - u->nfree < NBUF; }

/* Starts what can start: the hash and the write of full buffers, and the
 * commit once the body is in and every full buffer is out. Returns false
 * when u is gone (the caller settles it). */
static bool upload_pump(struct http_req *r, struct upload *u) {
  if (u->gone || u->commit_job)
    return !u->gone;
  if (!u->hash_job && u->nhashed < u->nfill &&
      !upload_job(r, u, &u->hash_job, hash_work, hash_done))
    return false;
  if (!u->write_job && u->nwritten < u->nfill &&
      !upload_job(r, u, &u->write_job, write_work, write_done))
    return false;
  if (u->body_done && !u->hash_job && !u->write_job && u->nfree == u->nfill &&
      !upload_job(r, u, &u->commit_job, commit_work, commit_done))
    return false;
  return true;
}

static int on_data(struct http_req *r, const char *data, size_t len, void *arg) {
  struct upload *u = arg;
  if (u->gone)
    return HTTP_BODY_PAUSE;
  int f = (int)(u->nfill % NBUF);
  if (!upload_has_room(u) || len > FILL_CAP - u->len[f]) {
    /* cannot happen: with every buffer full the stream is paused, and the
     * server hands over at most one read (PIECE_MAX) at a time; refuse
     * rather than lose bytes */
    log_error(u->rid, "blobs: upload buffer overrun", "have=%zu piece=%zu", u->len[f], len);
    upload_answer_rc(r, u, GROVE_EIO);
    upload_settle(u);
    return HTTP_BODY_PAUSE;
  }
  /* the quota is checked here, as bytes arrive, not when the disk takes
   * them: so the first limit crossed (quota here, --max-upload in the
   * server) answers, however far behind the writes are */
  if (len > blobs_writer_room(u->w) - u->received) {
    upload_answer_rc(r, u, GROVE_EQUOTA);
    upload_settle(u);
    return HTTP_BODY_PAUSE;
  }
  u->received += len;
  memcpy(u->buf[f] + u->len[f], data, len);
  u->len[f] += len;
  if (u->len[f] < CHUNK)
    return HTTP_BODY_MORE;
  u->nfill++; /* to the pool; the next buffer fills */
  if (!upload_pump(r, u)) {
    upload_settle(u);
    return HTTP_BODY_PAUSE;
  }
  if (upload_has_room(u))
    return HTTP_BODY_MORE;
  u->paused = true; /* every buffer full: wait for the pool */
  return HTTP_BODY_PAUSE;
}

static void on_end(struct http_req *r, int err, void *arg) {
  struct upload *u = arg;
  u->stream_over = true;
  if (err) { /* cut short: the server answers (or the client is gone) */
    u->gone = true;
    upload_settle(u);
    return;
  }
  u->body_done = true;
  if (!upload_pump(r, u))
    upload_settle(u);
}

/* After a hash or a write: frees the buffers both are done with; errors
 * answer; else go on, and resume a stream that waited for a buffer. */
static void upload_next(struct http_req *r, struct upload *u, int rc) {
  uint64_t done = u->nhashed < u->nwritten ? u->nhashed : u->nwritten;
  for (; u->nfree < done; u->nfree++)
    u->len[u->nfree % NBUF] = 0;
  if (!r->conn || u->gone) {
    u->gone = true;
    upload_settle(u);
    return;
  }
  if (rc) {
    upload_answer_rc(r, u, rc);
    upload_settle(u);
    return;
  }
  if (!upload_pump(r, u)) {
    upload_settle(u);
    return;
  }
  if (u->paused && upload_has_room(u)) {
    u->paused = false;
    http_req_stream_resume(r); /* may call on_data and on_end before it returns */
  }
}

static void hash_done(struct http_req *r, void *arg) {
  struct upload *u = arg;
  u->hash_job = false;
  if (!u->hash_rc)
    u->nhashed++;
  upload_next(r, u, u->hash_rc);
}

static void write_done(struct http_req *r, void *arg) {
  struct upload *u = arg;
  u->write_job = false;
  if (!u->write_rc)
    u->nwritten++;
  upload_next(r, u, u->write_rc);
}

static void commit_done(struct http_req *r, void *arg) {
  struct upload *u = arg;
  u->commit_job = false;
  u->gone = true;
  if (r->conn) {
    if (u->rc) {
      upload_answer_rc(r, u, u->rc);
    } else {
      char loc[64];
      snprintf(loc, sizeof loc, "/api/v1/blobs/%s", u->info.id);
      char etag[BLOBS_SHA_LEN + 2];
      snprintf(etag, sizeof etag, "\"%s\"", u->info.sha256);
      http_res_header(r, "Location", loc);
      http_res_header(r, "ETag", etag);
      http_reply_data(r, 201, blobs_info_json(&u->info), NULL);
    }
  }
  upload_settle(u);
}

static void open_done(struct http_req *r, void *arg) {
  struct upload *u = arg;
  u->commit_job = false;
  if (!r->conn) {
    upload_free(u);
    return;
  }
  if (u->rc) {
    upload_answer_rc(r, u, u->rc);
    upload_free(u);
    return;
  }
  static const struct http_body_cbs cbs = {on_data, on_end};
  u->attached = true;
  if (http_req_stream(r, &cbs, u)) {
    upload_free(u); /* the client is gone: no callback will come */
    return;
  }
}

/* The blob's name: ?name= (percent-decoded), else X-Blob-Name (percent-
 * decoded, so any UTF-8 name fits in a header), else "blob". False when
 * the one given is empty, badly escaped, past n-1 bytes decoded or not a
 * name: never another name in its place. */
static bool upload_name(struct http_req *r, char *out, size_t n) {
  long got = http_query_get(r, "name", 0, out, n);
  if (got != HTTP_QUERY_ABSENT)
    return got > 0 && blobs_name_valid(out);
  const char *h = http_header_get(r, "x-blob-name");
  if (!h) {
    snprintf(out, n, "blob");
    return true;
  }
  return pct_decode_to(h, strlen(h), out, n, false) > 0 && blobs_name_valid(out);
}

/* POST /api/v1/blobs: the body is the file. */
static void h_upload(struct http_req *r) {
  struct blobs *b = r->app;
  const char *ce = http_header_get(r, "content-encoding");
  if (ce && strcasecmp(ce, "identity") != 0) {
    http_res_header(r, "Accept-Encoding", "identity");
    http_reply_error(r, 415, "UNSUPPORTED_ENCODING",
                     "an upload is stored as sent: send it without Content-Encoding", NULL);
    return;
  }
  struct upload *u = calloc(1, sizeof *u);
  if (u) {
    for (int i = 0; i < NBUF; i++)
      u->buf[i] = malloc(FILL_CAP);
  }
  bool have = u != NULL;
  for (int i = 0; have && i < NBUF; i++)
    have = u->buf[i] != NULL;
  if (!have) {
    if (u)
      upload_free(u);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  u->b = b;
  memcpy(u->rid, r->id, sizeof u->rid);
  if (!caller_of(r, &u->who)) {
    upload_free(u);
    return;
  }
  if (!upload_name(r, u->name, sizeof u->name)) {
    upload_free(u);
    http_reply_error(r, 400, "INVALID_INPUT",
                     "name: 1 to 255 bytes of UTF-8 without control characters, '/' or '\\'",
                     NULL);
    return;
  }
  const char *ct = http_header_get(r, "content-type");
  snprintf(u->media_type, sizeof u->media_type, "%s",
           ct && *ct ? ct : "application/octet-stream");
  if (!blobs_media_type_valid(u->media_type) || (ct && strlen(ct) >= sizeof u->media_type)) {
    upload_free(u);
    http_reply_error(r, 400, "INVALID_INPUT", "Content-Type is not a valid media type", NULL);
    return;
  }
  u->expected = http_req_content_length(r);
  u->commit_job = true; /* (the open job: nothing may free u meanwhile) */
  if (http_req_defer(r, HTTP_POOL_STORE, open_work, open_done, u))
    upload_free(u);
}

/* ---- downloads ----------------------------------------------------------- */

struct piece {
  struct download *d;
  char *data;
  size_t len;
  bool busy;               /* read into, or on its way to the client */
};

struct download {
  struct blobs *b;
  struct caller who;
  char id[BLOBS_ID_LEN];
  struct blobs_info info;
  struct blobs_reader *rd;
  struct http_req *r;      /* valid until finished */
  struct piece pieces[2];
  struct piece *reading_into;
  uint64_t next, end;      /* bytes [next, end) are still to read */
  int rc;
  int depth;               /* inside one of our callbacks */
  bool job, finished, gone;
  char rid[24];
};

static void dl_settle(struct download *d) {
  if (d->depth || d->job || d->pieces[0].busy || d->pieces[1].busy)
    return;
  if (!d->finished && !d->gone)
    return;
  blobs_reader_close(d->rd); /* close(2) of one file: cheap on the loop */
  free(d->pieces[0].data);
  free(d->pieces[1].data);
  free(d);
}

static void read_work(void *arg) {
  struct download *d = arg;
  struct piece *p = d->reading_into;
  uint64_t want = d->end - d->next < PIECE ? d->end - d->next : PIECE;
  p->len = 0;
  d->rc = 0;
  while (p->len < want && !d->rc) {
    size_t got = 0;
    d->rc = blobs_reader_read(d->rd, d->next + p->len, p->data + p->len, (size_t)want - p->len,
                              &got);
    if (!d->rc && got == 0)
      d->rc = GROVE_EIO; /* the file is shorter than recorded */
    p->len += got;
  }
}

static void read_done(struct http_req *r, void *arg);

static void on_sent(void *owner) {
  struct piece *p = owner;
  struct download *d = p->d;
  p->busy = false;
  if (!d->finished && !d->gone && !d->job) {
    d->depth++;
    struct http_req *r = d->r;
    /* read the next piece into the one just freed */
    if (d->next < d->end) {
      d->reading_into = p;
      p->busy = true;
      d->job = true;
      if (http_req_defer(r, HTTP_POOL_STORE, read_work, read_done, d)) {
        p->busy = false;
        d->job = false;
        d->gone = true;
      }
    }
    d->depth--;
  }
  dl_settle(d);
}

static void read_done(struct http_req *r, void *arg) {
  struct download *d = arg;
  struct piece *p = d->reading_into;
  d->job = false;
  d->depth++;
  if (!r->conn || d->gone) {
    d->gone = true;
    p->busy = false;
  } else if (d->rc) {
    /* the headers are out: all that is left is to cut the answer short */
    log_error(d->rid, "blobs: cannot read a blob", "id=%s error=\"%s\"", d->id,
              grove_strerror(d->rc));
    p->busy = false;
    d->finished = true;
    http_reply_end(r);
  } else {
    d->next += p->len;
    bool last = d->next >= d->end;
    /* on_sent may run before this returns, and start the next read */
    int wrc = http_reply_write(r, p->data, p->len, on_sent, p);
    if (wrc) {
      d->gone = true;
    } else if (last) {
      d->finished = true;
      http_reply_end(r); /* what is queued still goes out; the pieces come back */
    } else if (!d->job) {
      struct piece *q = &d->pieces[0] == p ? &d->pieces[1] : &d->pieces[0];
      if (!q->busy) { /* the other piece is free: read ahead into it */
        d->reading_into = q;
        q->busy = true;
        d->job = true;
        if (http_req_defer(r, HTTP_POOL_STORE, read_work, read_done, d)) {
          q->busy = false;
          d->job = false;
          d->gone = true;
        }
      }
    }
  }
  d->depth--;
  dl_settle(d);
}

/* "bytes=a-b", "bytes=a-", "bytes=-n" against size. Returns 1 with
 * [*first, *last] for one satisfiable range, 0 to send the whole file
 * (no Range, a malformed one, or several: RFC 9110 §14.2 lets a server
 * ignore them), -1 when it cannot be satisfied (416). */
static int parse_range(const char *v, uint64_t size, uint64_t *first, uint64_t *last) {
  if (!v || strncmp(v, "bytes=", 6) != 0)
    return 0;
  v += 6;
  while (*v == ' ')
    v++;
  if (strchr(v, ','))
    return 0; /* several ranges: the whole file, one part */
  char *end;
  if (*v == '-') {
    if (v[1] < '0' || v[1] > '9')
      return 0;
    unsigned long long n = strtoull(v + 1, &end, 10);
    while (*end == ' ')
      end++;
    if (*end)
      return 0;
    if (n == 0 || size == 0)
      return -1;
    *first = n >= size ? 0 : size - n;
    *last = size - 1;
    return 1;
  }
  if (*v < '0' || *v > '9')
    return 0;
  unsigned long long a = strtoull(v, &end, 10);
  if (*end != '-')
    return 0;
  const char *bpos = end + 1;
  unsigned long long bval = UINT64_MAX;
  if (*bpos >= '0' && *bpos <= '9') {
    bval = strtoull(bpos, &end, 10);
  } else {
    end = (char *)bpos;
  }
  while (*end == ' ')
    end++;
  if (*end || bval < a)
    return 0;
  if (a >= size)
    return -1;
  *first = a;
  *last = bval >= size ? size - 1 : bval;
  return 1;
}

/* Content-Disposition (RFC 6266): attachment, an ASCII fallback filename
 * and filename* with the UTF-8 name percent-encoded (RFC 8187). */
static void content_disposition(const char *name, char *out, size_t n) {
  char ascii[BLOBS_NAME_MAX + 1], ext[3 * BLOBS_NAME_MAX + 1];
  size_t a = 0, e = 0;
  static const char hexd[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    unsigned char c = *p;
    if (c < 0x80 || c >= 0xc0) /* one '_' per character that is not plain ASCII */
      ascii[a++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%' ? (char)c : '_';
    /* attr-char (RFC 8187): ALPHA DIGIT !#$&+-.^_`|~ */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        strchr("!#$&+-.^_`|~", c)) {
      ext[e++] = (char)c;
    } else {
      ext[e++] = '%';
      ext[e++] = hexd[c >> 4];
      ext[e++] = hexd[c & 15];
    }
  }
  ascii[a] = '\0';
  ext[e] = '\0';
  snprintf(out, n, "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, ext);
}

static bool etag_matches(const char *header, const char *sha) {
  if (!header)
    return false;
  if (strcmp(header, "*") == 0)
    return true;
  /* a list of entity tags; weak ones compare weakly (RFC 9110 §13.1.2) */
  const char *p = header;
  size_t sl = strlen(sha);
  while (*p) {
    while (*p == ' ' || *p == ',')
      p++;
    if (strncmp(p, "W/", 2) == 0)
      p += 2;
    if (*p == '"' && strncmp(p + 1, sha, sl) == 0 && p[1 + sl] == '"')
      return true;
    p += strcspn(p, ",");
  }
  return false;
}

static void dl_open_work(void *arg) {
  struct download *d = arg;
  d->rc = blobs_get(d->b, d->id, &d->info);
  if (!d->rc && !d->who.admin && strcmp(d->info.owner, d->who.who) != 0)
    d->rc = GROVE_ENOENT; /* another's blob: as if absent */
  if (!d->rc)
    d->rc = blobs_reader_open(d->b, &d->info, &d->rd);
}

static void dl_open_done(struct http_req *r, void *arg) {
  struct download *d = arg;
  d->job = false;
  if (!r->conn) {
    d->gone = true;
    dl_settle(d);
    return;
  }
  if (d->rc) {
    d->finished = true;
    reply_rc(r, d->rc == GROVE_EIO ? GROVE_ESTORE : d->rc, d->b, d->rid);
    dl_settle(d);
    return;
  }
  const struct blobs_info *i = &d->info;
  char etag[BLOBS_SHA_LEN + 2], cd[4 * BLOBS_NAME_MAX + 64];
  snprintf(etag, sizeof etag, "\"%s\"", i->sha256);
  content_disposition(i->name, cd, sizeof cd);
  http_res_header(r, "ETag", etag);
  http_res_header(r, "Accept-Ranges", "bytes");
  http_res_header(r, "Cache-Control", "private, no-cache");
  http_res_header(r, "Content-Disposition", cd);
  d->finished = true; /* until a streamed answer starts */
  if (etag_matches(http_header_get(r, "if-none-match"), i->sha256)) {
    http_reply(r, 304, NULL, NULL, 0);
    dl_settle(d);
    return;
  }
  uint64_t first = 0, last = i->size ? i->size - 1 : 0;
  int range = parse_range(http_header_get(r, "range"), i->size, &first, &last);
  const char *ifr = http_header_get(r, "if-range");
  if (range && ifr && !(ifr[0] == '"' && etag_matches(ifr, i->sha256)))
    range = 0; /* If-Range names another version: the whole file */
  if (range == 0) {
    first = 0;
    last = i->size ? i->size - 1 : 0;
  }
  char cr[96];
  if (range < 0) {
    snprintf(cr, sizeof cr, "bytes */%" PRIu64, i->size);
    http_res_header(r, "Content-Range", cr);
    http_reply_error(r, 416, "RANGE_NOT_SATISFIABLE", "the range is outside the file",
                     json_pack("{s:I}", "size", (json_int_t)i->size));
    dl_settle(d);
    return;
  }
  if (range > 0) {
    snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, i->size);
    http_res_header(r, "Content-Range", cr);
  }
  d->next = first;
  d->end = i->size ? last + 1 : 0;
  int st = http_reply_start(r, range > 0 ? 206 : 200, i->media_type, d->end - d->next);
  if (st) { /* HEAD, an empty file, or the client went */
    dl_settle(d);
    return;
  }
  d->finished = false;
  d->r = r;
  d->pieces[0].d = d->pieces[1].d = d;
  d->pieces[0].data = malloc(PIECE);
  d->pieces[1].data = malloc(PIECE);
  if (!d->pieces[0].data || !d->pieces[1].data) {
    d->finished = true;
    http_reply_end(r); /* short: the connection closes */
    dl_settle(d);
    return;
  }
  d->reading_into = &d->pieces[0];
  d->pieces[0].busy = true;
  d->job = true;
  if (http_req_defer(r, HTTP_POOL_STORE, read_work, read_done, d)) {
    d->pieces[0].busy = false;
    d->job = false;
    d->gone = true;
  }
  dl_settle(d);
}

/* GET /api/v1/blobs/{id}/content */
static void h_content(struct http_req *r) {
  struct download *d = calloc(1, sizeof *d);
  if (!d) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  d->b = r->app;
  memcpy(d->rid, r->id, sizeof d->rid);
  if (!caller_of(r, &d->who) || !take_id(r, d->id)) {
    free(d);
    return;
  }
  d->job = true;
  if (http_req_defer(r, HTTP_POOL_STORE, dl_open_work, dl_open_done, d))
    free(d);
}

/* ---- metadata ------------------------------------------------------------ */

enum op { OP_GET, OP_LIST, OP_DELETE, OP_USAGE };

struct call {
  struct blobs *b;
  enum op op;
  struct caller who;
  char id[BLOBS_ID_LEN];
  char before[BLOBS_ID_LEN];
  bool all;
  int limit;
  int rc;
  struct blobs_info info;
  struct blobs_usage usage;
  json_t *data;
  char rid[24];
};

static void call_work(void *arg) {
  struct call *c = arg;
  switch (c->op) {
  case OP_GET:
    c->rc = blobs_get(c->b, c->id, &c->info);
    if (!c->rc && !c->who.admin && strcmp(c->info.owner, c->who.who) != 0)
      c->rc = GROVE_ENOENT;
    break;
  case OP_LIST:
    c->rc = blobs_list(c->b, c->all ? NULL : c->who.who, c->limit,
                       c->before[0] ? c->before : NULL, &c->data);
    break;
  case OP_DELETE:
    c->rc = blobs_delete(c->b, c->id, c->who.admin ? NULL : c->who.who);
    break;
  case OP_USAGE:
    c->rc = blobs_usage(c->b, c->who.who, &c->usage);
    break;
  }
}

static void call_done(struct http_req *r, void *arg) {
  struct call *c = arg;
  if (!r->conn)
    goto out;
  if (c->rc) {
    reply_rc(r, c->rc, c->b, c->rid);
    goto out;
  }
  http_res_header(r, "Cache-Control", "no-store");
  switch (c->op) {
  case OP_GET:
    http_reply_data(r, 200, blobs_info_json(&c->info), NULL);
    break;
  case OP_LIST: {
    size_t n = json_array_size(c->data);
    json_t *meta = json_pack("{s:I}", "count", (json_int_t)n);
    if (n == (size_t)c->limit)
      json_object_set_new(meta, "next_before",
                          json_incref(json_object_get(json_array_get(c->data, n - 1), "id")));
    http_reply_data(r, 200, c->data, meta);
    c->data = NULL;
    break;
  }
  case OP_DELETE:
    http_reply(r, 204, NULL, NULL, 0);
    break;
  case OP_USAGE:
    http_reply_data(r, 200,
                    json_pack("{s:I,s:I,s:I,s:I}", "bytes", (json_int_t)c->usage.bytes, "files",
                              (json_int_t)c->usage.files, "quota_bytes",
                              (json_int_t)c->usage.quota_bytes, "quota_files",
                              (json_int_t)c->usage.quota_files),
                    NULL);
    break;
  }
out:
  json_decref(c->data);
  free(c);
}

static struct call *call_new(struct http_req *r, enum op op) {
  struct call *c = calloc(1, sizeof *c);
  if (!c) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return NULL;
  }
  c->b = r->app;
  c->op = op;
  memcpy(c->rid, r->id, sizeof c->rid);
  if (!caller_of(r, &c->who)) {
    free(c);
    return NULL;
  }
  return c;
}

static void go(struct http_req *r, struct call *c) {
  if (http_req_defer(r, HTTP_POOL_STORE, call_work, call_done, c))
    free(c);
}

static void h_get(struct http_req *r) {
  struct call *c = call_new(r, OP_GET);
  if (c && take_id(r, c->id))
    go(r, c);
  else
    free(c);
}

static void h_delete(struct http_req *r) {
  struct call *c = call_new(r, OP_DELETE);
  if (c && take_id(r, c->id))
    go(r, c);
  else
    free(c);
}

static void h_usage(struct http_req *r) {
  struct call *c = call_new(r, OP_USAGE);
  if (c)
    go(r, c);
}

/* GET /api/v1/blobs[?limit=N][&before=ID][&all=true (admins)] */
static void h_list(struct http_req *r) {
  struct call *c = call_new(r, OP_LIST);
  if (!c)
    return;
  char v[48];
  long limit;
  if (!http_query_limit(r, 100, 1000, &limit)) {
    free(c);
    return;
  }
  c->limit = (int)limit;
  const char *bad = NULL;
  long got = http_query_get(r, "before", 0, v, sizeof v);
  if (got != HTTP_QUERY_ABSENT) { /* badly escaped or too long is no blob id either */
    if (got != BLOBS_ID_LEN - 1 || strspn(v, "0123456789abcdef") != BLOBS_ID_LEN - 1)
      bad = "before must be a blob id";
    else
      memcpy(c->before, v, BLOBS_ID_LEN);
  }
  if (!bad && (got = http_query_get(r, "all", 0, v, sizeof v)) != HTTP_QUERY_ABSENT) {
    if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
      bad = "all must be true or false";
    else if (strcmp(v, "true") == 0 && !c->who.admin) {
      free(c);
      http_reply_error(r, 403, "FORBIDDEN", "only admins list every owner's blobs",
                       json_pack("{s:s}", "needs", "admin"));
      return;
    }
    c->all = strcmp(v, "true") == 0;
  }
  if (bad) {
    free(c);
    http_reply_error(r, 400, "INVALID_INPUT", bad, NULL);
    return;
  }
  go(r, c);
}

static const struct route_def routes[] = {
    {.method = "POST", .pattern = "/api/v1/blobs", .fn = h_upload, .scopes = GATE_WRITE,
     .stream_body = true},
    {.method = "GET", .pattern = "/api/v1/blobs", .fn = h_list, .scopes = GATE_READ},
    {.method = "GET", .pattern = "/api/v1/blobs/usage", .fn = h_usage, .scopes = GATE_READ},
    {.method = "GET", .pattern = "/api/v1/blobs/{id}", .fn = h_get, .scopes = GATE_READ},
    {.method = "GET", .pattern = "/api/v1/blobs/{id}/content", .fn = h_content,
     .scopes = GATE_READ},
    {.method = "DELETE", .pattern = "/api/v1/blobs/{id}", .fn = h_delete, .scopes = GATE_WRITE},
};

int blobs_routes(struct blobs *b, struct router *r, char *err, size_t errlen) {
  return router_add_all(r, "blobs", routes, ARRAY_LEN(routes), b, err, errlen);
}
