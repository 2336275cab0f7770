/* response.c — building and sending answers: status line, headers, the
 * response envelope, gzip, request helpers and the access log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/util.h"
#include "net/conn.h"
#include "net/router.h"

const char *http_status_text(int s) {
  switch (s) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

/* ---- request helpers ---------------------------------------------------- */

const char *http_header_get(const struct http_req *r, const char *name) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0)
      return r->headers[i].value;
  return NULL;
}

const char *http_param(const struct http_req *r, const char *name) {
  for (int i = 0; i < r->nparams; i++)
    if (strcmp(r->param_names[i], name) == 0)
      return r->param_values[i];
  return NULL;
}

/* The raw (still escaped) value of the nth parameter `name`: true with *v
 * and *vl (`a` alone is an empty value), false when there is none. */
static bool query_find(const struct http_req *r, const char *name, int nth, const char **v,
                       size_t *vl) {
  size_t nl = strlen(name);
  const char *p = r->query;
  while (p && *p) {
    const char *end = strchrnul(p, '&');
    const char *eq = memchr(p, '=', (size_t)(end - p));
    const char *kend = eq ? eq : end;
    char key[128];
    size_t kl = (size_t)(kend - p);
    if (kl < sizeof key) {
      memcpy(key, p, kl);
      long dk = pct_decode(key, kl, true);
      if (dk >= 0 && (size_t)dk == nl && memcmp(key, name, nl) == 0 && nth-- == 0) {
        *v = eq ? eq + 1 : end;
        *vl = (size_t)(end - *v);
        return true;
      }
    }
    p = *end ? end + 1 : end;
  }
  return false;
}

long http_query_get(const struct http_req *r, const char *name, int nth,
                    char *out, size_t outlen) {
  const char *v;
  size_t vl;
  if (!query_find(r, name, nth, &v, &vl))
    return HTTP_QUERY_ABSENT;
  long n = pct_decode_to(v, vl, out, outlen, true);
  return n == -1 ? HTTP_QUERY_MALFORMED : n < 0 ? HTTP_QUERY_TOO_LONG : n;
}

void http_query_why(long rc, const char *name, size_t outlen, char *msg, size_t msglen) {
  if (rc == HTTP_QUERY_TOO_LONG)
    snprintf(msg, msglen, "query parameter '%.64s' is longer than %zu bytes", name,
             outlen ? outlen - 1 : 0);
  else
    snprintf(msg, msglen, "query parameter '%.64s' is not valid percent-encoding", name);
}

void http_query_refuse(struct http_req *r, long rc, const char *name, size_t outlen,
                       const char *code) {
  char msg[160];
  http_query_why(rc, name, outlen, msg, sizeof msg);
  json_t *d = json_pack("{s:s}", "parameter", name);
  if (d && rc == HTTP_QUERY_TOO_LONG)
    json_object_set_new(d, "max_bytes", json_integer((json_int_t)(outlen ? outlen - 1 : 0)));
  http_reply_error(r, 400, code ? code : "INVALID_INPUT", msg, d);
}

int http_query_str(struct http_req *r, const char *name, char *out, size_t outlen,
                   const char *code) {
  long n = http_query_get(r, name, 0, out, outlen);
  if (n >= 0)
    return 1;
  if (n == HTTP_QUERY_ABSENT)
    return 0;
  http_query_refuse(r, n, name, outlen, code);
  return -1;
}

bool http_query_long(const struct http_req *r, const char *name, long lo, long hi, long *out) {
  const char *raw;
  size_t rl;
  if (!query_find(r, name, 0, &raw, &rl))
    return true;
  char v[32];
  if (http_query_get(r, name, 0, v, sizeof v) <= 0)
    return false; /* empty, too long or badly escaped */
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (*end || errno == ERANGE || n < lo || n > hi)
    return false;
  *out = n;
  return true;
}

bool http_query_limit(struct http_req *r, long def, long max, long *out) {
  *out = def;
  if (http_query_long(r, "limit", 1, max, out))
    return true;
  char msg[64];
  snprintf(msg, sizeof msg, "limit must be 1 to %ld", max);
  http_reply_error(r, 400, "INVALID_INPUT", msg, NULL);
  return false;
}

json_t *http_req_json(struct http_req *r) {
  const char *ct = http_header_get(r, "content-type");
  if (ct && strncasecmp(ct, "application/json", 16) != 0) {
    http_reply_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", "body must be application/json", NULL);
    return NULL;
  }
  if (!http_req_body(r, 0))
    return NULL;
  json_error_t e;
  json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
  if (!j || !json_is_object(j)) {
    json_t *d = json_pack("{s:s,s:i}", "error", j ? "body must be a JSON object" : e.text,
                          "position", j ? 0 : e.position);
    json_decref(j);
    http_reply_error(r, 400, "INVALID_JSON", "request body is not valid JSON", d);
    return NULL;
  }
  return j;
}

/* ---- headers ------------------------------------------------------------ */

/* Adds each comma-separated token of v to the request's Vary list once
 * (tokens compare case-insensitively, RFC 9110 §12.5.5). A token that
 * does not fit makes the answer "Vary: *": uncacheable, never wrong. */
static void vary_add(struct http_state *hs, const char *v) {
  while (*v) {
    while (*v == ' ' || *v == '\t' || *v == ',')
      v++;
    size_t n = strcspn(v, ", \t");
    if (!n)
      break;
    bool have = false;
    for (const char *p = hs->vary; *p && !have;) {
      size_t m = strcspn(p, ",");
      have = (m == n && strncasecmp(p, v, n) == 0) || (m == 1 && *p == '*');
      p += m + (p[m] == ',');
    }
    size_t len = strlen(hs->vary);
    if (!have && len + n + 2 < sizeof hs->vary) {
      if (len)
        hs->vary[len++] = ',';
      memcpy(hs->vary + len, v, n);
      hs->vary[len + n] = '\0';
    } else if (!have) {
      snprintf(hs->vary, sizeof hs->vary, "*");
    }
    v += n;
  }
}

void http_res_vary(struct http_req *r, const char *token) {
  if (r->conn && r->conn->hs && !strpbrk(token, "\r\n"))
    vary_add(r->conn->hs, token);
}

void http_res_header(struct http_req *r, const char *name, const char *value) {
  struct http_conn *c = r->conn;
  if (!c || !c->hs)
    return;
  /* header injection: values with CR or LF are dropped */
  if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
    return;
  if (strcasecmp(name, "vary") == 0) { /* merged into one header */
    vary_add(c->hs, value);
    return;
  }
  struct buf *b = &c->hs->res_headers;
  buf_puts(b, name);
  buf_append(b, ": ", 2);
  buf_puts(b, value);
  buf_append(b, "\r\n", 2);
}

void http_res_header_lines(struct http_req *r, const char *lines, size_t len) {
  struct http_conn *c = r->conn;
  if (c && c->hs)
    buf_append(&c->hs->res_headers, lines, len);
}

static bool compressible(const char *ctype) {
  return ctype && (strncmp(ctype, "text/", 5) == 0 || strstr(ctype, "json") ||
                   strstr(ctype, "javascript") || strstr(ctype, "xml") ||
                   strstr(ctype, "svg"));
}

/* gzip of in; returns 0 and fills out, or an error (then send plain). */
static int gzip_buf(const void *in, size_t n, struct buf *out) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 5, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return GROVE_ENOMEM;
  size_t bound = deflateBound(&z, n);
  int rc = buf_reserve(out, bound);
  if (!rc) {
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
      rc = GROVE_EIO;
    else
      out->len += z.total_out;
  }
  deflateEnd(&z);
  return rc;
}

/* ---- finishing ---------------------------------------------------------- */

void http_finish(struct http_req *r, int status) {
  struct http_conn *c = r->conn;
  struct http_state *hs = c->hs;
  struct loop_ctx *lp = c->lp;
  double secs = (double)(clock_mono_ns() - hs->start_ns) / 1e9;
  /* the static fallback takes every GET no route wanted: only a file
   * actually served (or revalidated) counts as "static", the rest (404s
   * of probes and typos) as unmatched, as requests of no route do */
  if (hs->route == router_fallback_route(lp->srv->router) && status != 200 && status != 304) {
    hs->route = router_unmatched(lp->srv->router);
    r->route = hs->route->pattern;
  }
  route_count(lp->srv->router, hs->route, status, secs);
  if (lp->srv->cfg.access_log && log_enabled(LOG_INFO)) {
    /* the path is the client's: no quotes or control bytes reach the log */
    char path[256];
    const char *p = r->path ? r->path : "-";
    size_t i = 0;
    for (; p[i] && i < sizeof path - 1; i++)
      path[i] = (unsigned char)p[i] < 0x20 || p[i] == '"' || p[i] == 0x7f ? '?' : p[i];
    path[i] = '\0';
    char client[64];
    http_req_peer(r, client, sizeof client);
    log_info(r->id, "request", "method=%s path=\"%s\" route=\"%s\" status=%d ms=%.2f client=%s",
             r->method, path, r->route ? r->route : "-", status, secs * 1000, client);
  }
  conn_dispatch_done(c);
}

#define PUT_LIT(b, s) buf_append((b), (s), sizeof(s) - 1)

/* Builds the status line and headers into the loop's scratch buffer
 * (reset first), with room for `extra` more bytes of body. */
static struct buf *build_head(struct http_req *r, int status, const char *ctype, uint64_t len,
                              bool no_body, size_t extra) {
  struct http_conn *c = r->conn;
  struct http_state *hs = c->hs;
  struct loop_ctx *lp = c->lp;
  if (lp->stopping)
    c->close_after = true;
  if (hs->stream.on && !hs->in.complete)
    c->close_after = true; /* the rest of the body is not read: no next request */
  struct buf *out = &lp->out;
  char num[24];
  const char *text = http_status_text(status);
  buf_reset(out);
  buf_reserve(out, 256 + hs->res_headers.len + extra);
  PUT_LIT(out, "HTTP/1.1 ");
  buf_append(out, num, u64_to_dec((uint64_t)status, num));
  buf_putc(out, ' ');
  buf_puts(out, text);
  PUT_LIT(out, "\r\nServer: grove\r\n");
  loop_date(lp);
  buf_append(out, lp->date, lp->date_len);
  if (ctype && !no_body) {
    PUT_LIT(out, "Content-Type: ");
    buf_puts(out, ctype);
    PUT_LIT(out, "\r\n");
  }
  if (!no_body) {
    PUT_LIT(out, "Content-Length: ");
    buf_append(out, num, u64_to_dec(len, num));
    PUT_LIT(out, "\r\n");
  }
  PUT_LIT(out, "X-Request-Id: ");
  buf_puts(out, r->id);
  PUT_LIT(out, "\r\n");
  if (hs->res_headers.len)
    buf_append(out, hs->res_headers.data, hs->res_headers.len);
  if (hs->vary[0]) {
    PUT_LIT(out, "Vary: ");
    for (const char *p = hs->vary; *p; p++) { /* "a,b" -> "a, b" */
      if (*p == ',')
        PUT_LIT(out, ", ");
      else
        buf_putc(out, *p);
    }
    PUT_LIT(out, "\r\n");
  }
  if (c->close_after)
    PUT_LIT(out, "Connection: close\r\n\r\n");
  else if (hs->in.parser.http_minor == 0)
    /* an HTTP/1.0 client that asked to keep the connection is told it is
     * kept (RFC 9112 §9.3, Appendix C.2.2) */
    PUT_LIT(out, "Connection: keep-alive\r\n\r\n");
  else
    PUT_LIT(out, "\r\n");
  return out;
}

/* Writes the scratch buffer and lets it shrink after a big answer. */
static int send_scratch(struct http_conn *c, struct buf *out) {
  uv_buf_t b = uv_buf_init(out->data, (unsigned)out->len);
  int rc = conn_write(c, &b, 1, NULL, NULL);
  if (out->cap > 1024 * 1024)
    buf_release(out); /* keep the scratch buffer small between big answers */
  return rc;
}

void http_reply(struct http_req *r, int status, const char *ctype, const void *body,
                size_t len) {
  struct http_conn *c = r->conn;
  if (!c || c->closing || !c->hs || !c->busy || c->hs->out.on)
    return; /* the client is gone, or an answer was already sent */
  struct http_state *hs = c->hs;
  struct loop_ctx *lp = c->lp;
  struct buf gz;
  buf_init(&gz, 0);
  bool no_body = status == 204 || status == 304 || status < 200;
  const char *ae = http_header_get(r, "accept-encoding");
  uint64_t gmin = lp->srv->cfg.gzip_min;
  if (!no_body && gmin && len >= gmin && ae && header_has_token(ae, "gzip") &&
      compressible(ctype) && gzip_buf(body, len, &gz) == 0 && gz.len < len) {
    body = gz.data;
    len = gz.len;
    PUT_LIT(&hs->res_headers, "Content-Encoding: gzip\r\n");
    vary_add(hs, "Accept-Encoding");
  }
  /* The answer is built in the loop's scratch buffer and written at once;
   * only what the socket does not take is copied. */
  struct buf *out = build_head(r, status, ctype, len, no_body, r->head ? 0 : len);
  if (!no_body && !r->head && len)
    buf_append(out, body, len);
  buf_release(&gz);
  send_scratch(c, out);
  http_finish(r, status);
}

/* ---- streamed answers ---------------------------------------------------- */

static void on_send_stall(uv_timer_t *t) { conn_abort(t->data); }

int http_reply_start(struct http_req *r, int status, const char *ctype, uint64_t len) {
  struct http_conn *c = r->conn;
  if (!c || c->closing || !c->hs || !c->busy || c->hs->out.on)
    return GROVE_ECLOSED;
  struct http_state *hs = c->hs;
  struct buf *out = build_head(r, status, ctype, len, false, 0);
  if (send_scratch(c, out))
    return GROVE_ECLOSED;
  if (r->head || len == 0) {
    http_finish(r, status);
    return 1;
  }
  hs->out.on = true;
  hs->out.status = status;
  hs->out.len = len;
  hs->out.sent = 0;
  return 0;
}

int http_reply_write(struct http_req *r, const void *data, size_t n, void (*release)(void *),
                     void *owner) {
  struct http_conn *c = r->conn;
  if (!c || c->closing || !c->hs || !c->hs->out.on || c->hs->out.sent + n > c->hs->out.len) {
    if (release)
      release(owner);
    return GROVE_ECLOSED;
  }
  c->hs->out.sent += n;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
  if (conn_write(c, &b, 1, release, owner))
    return GROVE_ECLOSED;
  /* a piece is written only once the one before was taken: progress.
   * A client that takes nothing for this long is let go. */
  conn_timer(c, c->lp->srv->cfg.idle_timeout_ms, on_send_stall);
  return 0;
}

void http_reply_end(struct http_req *r) {
  struct http_conn *c = r->conn;
  if (!c || c->closing || !c->hs || !c->hs->out.on)
    return;
  struct http_state *hs = c->hs;
  if (hs->out.sent != hs->out.len)
    c->close_after = true; /* a short body: the client must see it end early */
  int status = hs->out.status;
  http_finish(r, status);
}

void http_reply_data(struct http_req *r, int status, json_t *data, json_t *meta) {
  char *d = jsonout_dumps(data ? data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
  char *m = meta ? jsonout_dumps(meta, JSON_COMPACT) : NULL;
  json_decref(data);
  json_decref(meta);
  if (!d || (meta && !m))
    http_reply_error(r, 500, "INTERNAL", "cannot encode the response", NULL);
  else
    http_reply_raw(r, status, d, strlen(d), m);
  free(d);
  free(m);
}

void http_reply_raw(struct http_req *r, int status, const char *data, size_t len,
                    const char *meta) {
  struct http_conn *c = r->conn;
  struct buf b;
  buf_init(&b, 0);
  /* {"status":"success","data":…,"metadata":{"processing_time_ms":…,…}} */
  uint64_t us = c && c->hs ? (clock_mono_ns() - c->hs->start_ns) / 1000 : 0;
  char num[24];
  buf_reserve(&b, len + 96 + (meta ? strlen(meta) : 0));
  PUT_LIT(&b, "{\"status\":\"success\",\"data\":");
  buf_append(&b, data, len);
  PUT_LIT(&b, ",\"metadata\":{\"processing_time_ms\":");
  buf_append(&b, num, u64_to_dec(us / 1000, num));
  num[0] = '.';
  num[1] = (char)('0' + us % 1000 / 100);
  num[2] = (char)('0' + us % 100 / 10);
  num[3] = (char)('0' + us % 10);
  buf_append(&b, num, 4);
  if (meta && strlen(meta) > 2) { /* more than "{}" */
    buf_putc(&b, ',');
    buf_puts(&b, meta + 1);
  } else {
    buf_putc(&b, '}');
  }
  if (buf_putc(&b, '}')) {
    buf_release(&b);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  http_reply(r, status, "application/json", b.data, b.len);
  buf_release(&b);
}

void http_reply_error(struct http_req *r, int status, const char *code,
                      const char *message, json_t *details) {
  json_t *env = json_pack("{s:s,s:s,s:s,s:o}", "status", "error", "error_code", code,
                          "message", message, "details", details ? details : json_object());
  char *s = env ? jsonout_dumps(env, JSON_COMPACT) : NULL;
  json_decref(env);
  if (!s) {
    http_reply(r, status, "application/json", "{\"status\":\"error\"}", 18);
    return;
  }
  http_reply(r, status, "application/json", s, strlen(s));
  free(s);
}

/* An error found before a request could be formed (bad syntax, limits,
 * timeouts): answer with the envelope and close the connection, letting
 * the client read the answer first. */
void http_send_error_raw(struct http_conn *c, int status, const char *code,
                         const char *message, const char *rid) {
  if (c->closing || c->lingering || !c->hs)
    return;
  struct http_state *hs = c->hs;
  struct http_req *r = &hs->req;
  memset(r, 0, sizeof *r);
  r->conn = c;
  r->method = "-";
  r->route = "unmatched";
  if (rid)
    snprintf(r->id, sizeof r->id, "%s", rid);
  else
    id_hex(r->id, 17);
  hs->route = router_unmatched(c->lp->srv->router);
  hs->start_ns = clock_mono_ns();
  buf_reset(&hs->res_headers);
  hs->vary[0] = '\0';
  c->busy = true;
  c->close_after = true;
  log_info(r->id, "bad request", "status=%d code=%s", status, code);
  http_reply_error(r, status, code, message, NULL);
}
