/* http_parse.c — HTTP/1.1 request reader on http-parser, with limits. */
#include "net/http_parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/util.h"

#define IN(p) ((struct http_in *)(p)->data)
#define RETAIN_MAX (64 * 1024) /* buffers bigger than this are freed between requests */

static int fail(struct http_in *in, int status, const char *code, const char *msg) {
  if (!in->err_status) {
    in->err_status = status;
    in->err_code = code;
    in->err_msg = msg;
  }
  return -1;
}

static int on_message_begin(http_parser *p) {
  IN(p)->started = true;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  struct http_in *in = IN(p);
  in->url_len += len;
  if (in->url_len > in->cfg->max_url)
    return fail(in, 414, "URI_TOO_LONG", "request target is too long");
  if (buf_append(&in->head, at, len))
    return fail(in, 414, "URI_TOO_LONG", "request target is too long");
  return 0;
}

static int add_bytes(struct http_in *in, const char *at, size_t len) {
  in->header_bytes += len;
  if (in->header_bytes > in->cfg->max_header || buf_append(&in->head, at, len))
    return fail(in, 431, "HEADERS_TOO_LARGE", "request headers are too large");
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  struct http_in *in = IN(p);
  if (in->nheaders == 0 || in->in_value) {
    /* a new header starts: close the previous value (or the url) */
    if (buf_putc(&in->head, '\0'))
      return fail(in, 431, "HEADERS_TOO_LARGE", "request headers are too large");
    if (in->nheaders >= in->cfg->max_headers)
      return fail(in, 431, "TOO_MANY_HEADERS", "request has too many headers");
    if (in->nheaders == in->offs_cap) {
      int cap = in->offs_cap ? in->offs_cap * 2 : 16;
      uint32_t *o = realloc(in->offs, sizeof(*o) * 2 * (size_t)cap);
      if (!o)
        return fail(in, 503, "OUT_OF_MEMORY", "server is out of memory");
      in->offs = o;
      in->offs_cap = cap;
    }
    in->offs[2 * in->nheaders] = (uint32_t)in->head.len;
    in->offs[2 * in->nheaders + 1] = 0;
    in->nheaders++;
    in->in_value = false;
  }
  return add_bytes(in, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  struct http_in *in = IN(p);
  if (!in->in_value) {
    if (buf_putc(&in->head, '\0'))
      return fail(in, 431, "HEADERS_TOO_LARGE", "request headers are too large");
    in->offs[2 * (in->nheaders - 1) + 1] = (uint32_t)in->head.len;
    in->in_value = true;
  }
  return add_bytes(in, at, len);
}

static int on_headers_complete(http_parser *p) {
  struct http_in *in = IN(p);
  if (buf_putc(&in->head, '\0'))
    return fail(in, 431, "HEADERS_TOO_LARGE", "request headers are too large");
  if (in->nheaders && !in->in_value) /* a name with no value callback */
    in->offs[2 * (in->nheaders - 1) + 1] = (uint32_t)in->head.len - 1;
  in->headers_done = true;
  if (p->http_major != 1)
    return fail(in, 505, "HTTP_VERSION_NOT_SUPPORTED", "only HTTP/1.x is served");
  bool has_len = (p->flags & F_CONTENTLENGTH) != 0;
  if (has_len && p->content_length > in->cfg->max_body)
    return fail(in, 413, "BODY_TOO_LARGE", "request body is too large");
  for (int i = 0; i < in->nheaders; i++) {
    const char *name = in->head.data + in->offs[2 * i];
    if (strcasecmp(name, "expect") != 0)
      continue;
    const char *v = in->head.data + in->offs[2 * i + 1];
    if (strcasecmp(v, "100-continue") != 0)
      return fail(in, 417, "EXPECTATION_FAILED", "only 'Expect: 100-continue' is supported");
    in->want_continue = true;
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct http_in *in = IN(p);
  if (in->body.len + len > in->cfg->max_body || buf_append(&in->body, at, len))
    return fail(in, 413, "BODY_TOO_LARGE", "request body is too large");
  return 0;
}

static int on_message_complete(http_parser *p) {
  IN(p)->complete = true;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_in_init(struct http_in *in, const struct http_cfg *cfg) {
  memset(in, 0, sizeof *in);
  in->cfg = cfg;
  http_parser_init(&in->parser, HTTP_REQUEST);
  in->parser.data = in;
  buf_init(&in->head, cfg->max_url + cfg->max_header + 2 * (size_t)cfg->max_headers + 2);
  buf_init(&in->body, cfg->max_body);
}

void http_in_release(struct http_in *in) {
  buf_release(&in->head);
  buf_release(&in->body);
  free(in->offs);
  free(in->hdrs);
  in->offs = NULL;
  in->hdrs = NULL;
  in->offs_cap = 0;
  in->hdrs_cap = 0;
}

static void reset_fields(struct http_in *in) {
  if (in->head.cap > RETAIN_MAX)
    buf_release(&in->head);
  if (in->body.cap > RETAIN_MAX)
    buf_release(&in->body);
  buf_reset(&in->head);
  buf_reset(&in->body);
  in->nheaders = 0;
  in->url_len = in->header_bytes = 0;
  in->in_value = in->started = in->headers_done = in->complete = false;
  in->want_continue = false;
}

void http_in_next(struct http_in *in) {
  reset_fields(in);
  if (HTTP_PARSER_ERRNO(&in->parser) == HPE_PAUSED)
    http_parser_pause(&in->parser, 0);
}

static int map_parser_error(struct http_in *in) {
  enum http_errno e = HTTP_PARSER_ERRNO(&in->parser);
  switch (e) {
  case HPE_HEADER_OVERFLOW:
    return fail(in, 431, "HEADERS_TOO_LARGE", "request headers are too large");
  case HPE_INVALID_METHOD:
    return fail(in, 400, "BAD_METHOD", "request method is not valid");
  case HPE_INVALID_VERSION:
    return fail(in, 400, "BAD_VERSION", "HTTP version is not valid");
  case HPE_INVALID_URL:
    return fail(in, 400, "BAD_TARGET", "request target is not valid");
  case HPE_INVALID_CONTENT_LENGTH:
  case HPE_UNEXPECTED_CONTENT_LENGTH:
    return fail(in, 400, "BAD_CONTENT_LENGTH", "Content-Length is not valid");
  case HPE_INVALID_CHUNK_SIZE:
    return fail(in, 400, "BAD_CHUNK", "chunked body is not valid");
  case HPE_INVALID_TRANSFER_ENCODING:
    return fail(in, 501, "BAD_TRANSFER_ENCODING", "transfer encoding is not supported");
  default:
    return fail(in, 400, "BAD_REQUEST", http_errno_description(e));
  }
}

size_t http_in_feed(struct http_in *in, const char *data, size_t len,
                    enum http_in_state *state) {
  *state = HTTP_IN_MORE;
  if (in->err_status) {
    *state = HTTP_IN_ERROR;
    return 0;
  }
  size_t n = http_parser_execute(&in->parser, &settings, data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&in->parser);
  if (in->err_status) {
    *state = HTTP_IN_ERROR;
  } else if (in->complete) {
    *state = HTTP_IN_REQUEST;
  } else if (e != HPE_OK && e != HPE_PAUSED) {
    map_parser_error(in);
    *state = HTTP_IN_ERROR;
  } else if (in->parser.upgrade && !in->complete) {
    /* http-parser stops at an upgrade without completing a body-less
     * message in some paths; treat the headers as the request. */
    in->complete = true;
    *state = HTTP_IN_REQUEST;
  }
  return n;
}

int http_in_request(struct http_in *in, struct http_req *r) {
  const http_parser *p = &in->parser;
  r->method = http_method_str((enum http_method)p->method);
  r->head = p->method == HTTP_HEAD;
  if (in->nheaders + 1 > in->hdrs_cap) {
    int cap = in->offs_cap + 1;
    struct http_header *h = realloc(in->hdrs, (size_t)cap * sizeof *h);
    if (!h)
      return 503;
    in->hdrs = h;
    in->hdrs_cap = cap;
  }
  for (int i = 0; i < in->nheaders; i++) {
    in->hdrs[i].name = in->head.data + in->offs[2 * i];
    in->hdrs[i].value = in->head.data + in->offs[2 * i + 1];
  }
  r->headers = in->hdrs;
  r->nheaders = in->nheaders;
  r->body = in->body.data ? in->body.data : "";
  r->body_len = in->body.len;
  /* target: origin-form only ("/path?query"); absolute-form is accepted
   * for proxies' sake by skipping scheme and authority. */
  static char empty[1];
  char *url = in->head.data ? in->head.data : empty;
  size_t scheme = strncasecmp(url, "http://", 7) == 0 ? 7 : strncasecmp(url, "https://", 8) == 0 ? 8 : 0;
  if (scheme) {
    char *s = strchr(url + scheme, '/');
    if (!s) { /* "http://host" means "/": write it over the scheme */
      url[0] = '/';
      url[1] = '\0';
    } else {
      url = s;
    }
  }
  if (url[0] != '/') {
    if (strcmp(url, "*") == 0 && p->method == HTTP_OPTIONS) {
      r->path = "*";
      r->query = "";
      return 0;
    }
    return 400;
  }
  char *q = strchr(url, '?');
  char *hash = strchr(url, '#');
  if (hash)
    *hash = '\0';
  if (q) {
    *q = '\0';
    r->query = q + 1;
  } else {
    r->query = "";
  }
  long n = pct_decode(url, strlen(url), false);
  if (n < 0)
    return 400;
  r->path = url;
  return 0;
}

bool http_in_keep_alive(const struct http_in *in) {
  return http_should_keep_alive(&in->parser) != 0;
}

bool http_in_upgrade(const struct http_in *in) { return in->parser.upgrade != 0; }
