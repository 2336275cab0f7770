/* body.c — request bodies decoded by their Content-Encoding (RFC 9110
 * §8.4): gzip (every member, as `gzip -d` and Go's gzip reader that
 * InfluxDB and Telegraf use), x-gzip (§8.4.1.3), deflate (zlib, or a raw
 * deflate stream as some clients send) and identity, in the order they
 * were applied. Anything else is 415 UNSUPPORTED_ENCODING. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core/error.h"
#include "net/conn.h"

#define MAX_CODINGS 4
#define STEP (64 * 1024)

enum coding { COD_IDENTITY, COD_GZIP, COD_DEFLATE };

static void set_err(struct http_body_error *err, int status, const char *code, const char *msg) {
  err->status = status;
  err->code = code;
  err->message = msg;
}

/* Inflates one coding of in into out (reset first). gzip members follow
 * each other until the input ends; bytes after a member that do not start
 * another are an error, as Go's reader (multistream) has it. */
static int inflate_one(enum coding cod, const uint8_t *in, size_t n, size_t max, struct buf *out,
                       struct http_body_error *err) {
  z_stream z;
  memset(&z, 0, sizeof z);
  bool raw = false;
  int window = cod == COD_GZIP ? 15 + 16 : 15;
again:
  if (inflateInit2(&z, raw ? -15 : window) != Z_OK) {
    set_err(err, 503, "OUT_OF_MEMORY", "server is out of memory");
    return GROVE_ENOMEM;
  }
  buf_reset(out);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  int rc = 0;
  for (;;) {
    if (out->len >= max) {
      /* a full buffer: more output means too big */
      uint8_t probe;
      z.next_out = &probe;
      z.avail_out = 1;
      int zr = inflate(&z, Z_NO_FLUSH);
      if (z.avail_out == 0) {
        rc = GROVE_ETOOBIG;
        break;
      }
      if (zr != Z_STREAM_END && zr != Z_OK && zr != Z_BUF_ERROR) {
        rc = GROVE_EINVAL;
        break;
      }
      if (zr != Z_STREAM_END) {
        rc = GROVE_EINVAL; /* ended mid-stream */
        break;
      }
    } else {
      size_t want = max - out->len < STEP ? max - out->len : STEP;
      if (buf_reserve(out, want + 1)) {
        rc = GROVE_ENOMEM;
        break;
      }
      z.next_out = (Bytef *)out->data + out->len;
      z.avail_out = (uInt)want;
      int zr = inflate(&z, Z_NO_FLUSH);
      out->len += want - z.avail_out;
      if (zr == Z_DATA_ERROR && cod == COD_DEFLATE && !raw && out->len == 0) {
        /* not a zlib header: a raw deflate stream */
        inflateEnd(&z);
        raw = true;
        goto again;
      }
      if (zr == Z_OK || (zr == Z_BUF_ERROR && z.avail_out == 0))
        continue;
      if (zr != Z_STREAM_END) {
        rc = GROVE_EINVAL; /* corrupt, or the input ended mid-stream */
        break;
      }
    }
    /* a member or stream ended */
    if (z.avail_in == 0)
      break;
    if (cod != COD_GZIP || z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b) {
      rc = GROVE_EINVAL; /* trailing garbage */
      break;
    }
    if (inflateReset(&z) != Z_OK) {
      rc = GROVE_EINVAL;
      break;
    }
  }
  inflateEnd(&z);
  if (out->data)
    out->data[out->len] = '\0';
  if (rc == GROVE_ETOOBIG)
    set_err(err, 413, "BODY_TOO_LARGE", "the decoded request body is too large");
  else if (rc == GROVE_ENOMEM)
    set_err(err, 503, "OUT_OF_MEMORY", "server is out of memory");
  else if (rc)
    set_err(err, 400, cod == COD_GZIP ? "BAD_GZIP" : "BAD_DEFLATE",
            cod == COD_GZIP ? "the body is not valid gzip" : "the body is not valid deflate");
  return rc;
}

/* Reads "gzip, identity"-style lists into codings, in the order applied. */
static int parse_codings(const char *v, enum coding *cods, int *n, struct http_body_error *err) {
  *n = 0;
  while (*v) {
    while (*v == ' ' || *v == '\t' || *v == ',')
      v++;
    if (!*v)
      break;
    size_t len = strcspn(v, ", \t");
    enum coding c;
    if ((len == 4 && strncasecmp(v, "gzip", 4) == 0) || (len == 6 && strncasecmp(v, "x-gzip", 6) == 0))
      c = COD_GZIP;
    else if (len == 7 && strncasecmp(v, "deflate", 7) == 0)
      c = COD_DEFLATE;
    else if (len == 8 && strncasecmp(v, "identity", 8) == 0)
      c = COD_IDENTITY;
    else {
      set_err(err, 415, "UNSUPPORTED_ENCODING",
              "Content-Encoding must be gzip, deflate or identity");
      return GROVE_EINVAL;
    }
    if (c != COD_IDENTITY) {
      if (*n == MAX_CODINGS) {
        set_err(err, 415, "UNSUPPORTED_ENCODING", "too many content codings");
        return GROVE_EINVAL;
      }
      cods[(*n)++] = c;
    }
    v += len;
  }
  return 0;
}

int http_body_decode(const char *encoding, const void *in, size_t n, size_t max,
                     struct buf *out, struct buf *scratch, struct http_body_error *err) {
  enum coding cods[MAX_CODINGS];
  int ncods;
  set_err(err, 0, NULL, NULL);
  if (parse_codings(encoding ? encoding : "", cods, &ncods, err))
    return GROVE_EINVAL;
  buf_reset(out);
  if (ncods == 0 || n == 0) {
    if (n > max) {
      set_err(err, 413, "BODY_TOO_LARGE", "request body is too large");
      return GROVE_ETOOBIG;
    }
    if (buf_append(out, in, n)) {
      set_err(err, 503, "OUT_OF_MEMORY", "server is out of memory");
      return GROVE_ENOMEM;
    }
    return 0;
  }
  /* the last coding applied is undone first; out and scratch take turns */
  const uint8_t *src = in;
  size_t len = n;
  struct buf *dst = ncods % 2 ? out : scratch;
  for (int i = ncods - 1; i >= 0; i--) {
    int rc = inflate_one(cods[i], src, len, max, dst, err);
    if (rc)
      return rc;
    src = (const uint8_t *)dst->data;
    len = dst->len;
    dst = dst == out ? scratch : out;
  }
  return 0;
}

/* ---- on a request -------------------------------------------------------
 * The server decodes before the handler runs (body_decode_first): on the
 * loop while the result stays under INLINE_MAX, else again on the CPU
 * pool up to --max-body-decoded, so inflating a large body never holds a
 * loop. The outcome waits in the request's state; http_req_decode hands
 * it over with the route's own maximum. */

#define INLINE_MAX (1u << 20)

/* The outcome of a decode into the request's state. */
static void decoded(struct http_conn *c, int rc, const struct http_body_error *err) {
  struct http_state *hs = c->hs;
  struct http_req *r = &hs->req;
  if (rc) {
    hs->dec_rc = rc;
    hs->dec_err = *err;
    return;
  }
  r->body = hs->body_dec.data ? hs->body_dec.data : "";
  r->body_len = hs->body_dec.len;
  r->body_decoded = true;
  hs->predecoded = true;
}

struct decode_job {
  struct http_conn *c;
  void (*then)(struct http_conn *c);
  const char *enc;          /* the request's header: stable while it is handled */
  const char *in;
  size_t n, max;
  struct buf *out;          /* the request's body_dec: only this job touches it meanwhile */
  int rc;
  struct http_body_error err;
};

static void decode_work(void *arg) {
  struct decode_job *j = arg;
  struct buf scratch;
  buf_init(&scratch, 0);
  j->rc = http_body_decode(j->enc, j->in, j->n, j->max, j->out, &scratch, &j->err);
  buf_release(&scratch);
}

static void decode_done(struct http_req *r, void *arg) {
  struct decode_job *j = arg;
  if (r->conn) {
    decoded(j->c, j->rc, &j->err);
    j->then(j->c);
  }
  free(j);
}

bool body_decode_first(struct http_conn *c, void (*then)(struct http_conn *c)) {
  struct http_state *hs = c->hs;
  struct http_req *r = &hs->req;
  const char *enc = http_header_get(r, "content-encoding");
  if (!enc || !r->body_len || r->body_decoded)
    return false;
  size_t max = c->lp->srv->cfg.max_body_decoded;
  struct http_body_error err;
  struct buf scratch;
  buf_init(&scratch, 0);
  int rc = http_body_decode(enc, r->body, r->body_len, max < INLINE_MAX ? max : INLINE_MAX,
                            &hs->body_dec, &scratch, &err);
  buf_release(&scratch);
  if (rc != GROVE_ETOOBIG || max <= INLINE_MAX) {
    decoded(c, rc, &err);
    return false;
  }
  /* larger than the loop may inflate: again on the CPU pool */
  struct decode_job *j = calloc(1, sizeof *j);
  if (!j) {
    decoded(c, GROVE_ENOMEM,
            &(struct http_body_error){503, "OUT_OF_MEMORY", "server is out of memory"});
    return false;
  }
  *j = (struct decode_job){c, then, enc, r->body, r->body_len, max, &hs->body_dec, 0, {0}};
  if (http_req_defer(r, HTTP_POOL_CPU, decode_work, decode_done, j))
    free(j); /* answered 503 */
  return true;
}

int http_req_decode(struct http_req *r, size_t max, struct http_body_error *err) {
  set_err(err, 0, NULL, NULL);
  struct http_conn *c = r->conn;
  if (!c || !c->hs) {
    if (r->body_decoded)
      return 0;
    set_err(err, 503, "UNAVAILABLE", "the request is gone");
    return GROVE_ECLOSED;
  }
  if (!max)
    max = c->lp->srv->cfg.max_body;
  if (c->hs->dec_rc) {
    *err = c->hs->dec_err;
    return c->hs->dec_rc;
  }
  if (r->body_decoded) {
    if (c->hs->predecoded && r->body_len > max) {
      set_err(err, 413, "BODY_TOO_LARGE", "the decoded request body is too large");
      return GROVE_ETOOBIG;
    }
    return 0;
  }
  const char *enc = http_header_get(r, "content-encoding");
  if (!enc) {
    r->body_decoded = true;
    return 0;
  }
  struct buf scratch;
  buf_init(&scratch, 0);
  int rc = http_body_decode(enc, r->body, r->body_len, max, &c->hs->body_dec, &scratch, err);
  buf_release(&scratch);
  if (rc)
    return rc;
  r->body = c->hs->body_dec.data ? c->hs->body_dec.data : "";
  r->body_len = c->hs->body_dec.len;
  r->body_decoded = true;
  return 0;
}
bool http_req_body(struct http_req *r, size_t max) {
  struct http_body_error err;
  if (http_req_decode(r, max, &err) == 0)
    return true;
  if (err.status == 415)
    http_res_header(r, "Accept-Encoding", "gzip, deflate, identity");
  http_reply_error(r, err.status, err.code, err.message, NULL);
  return false;
}
