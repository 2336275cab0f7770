/* http_parse.c — HTTP/1.1 request reader on http-parser, with limits and
 * the message-syntax rules of RFC 9112 (and RFC 9110's for fields) that
 * http-parser leaves to its user or is lenient about. */
#include "net/http_parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/array.h"
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

/* ---- RFC 9112 grammar -------------------------------------------------- */

/* tchar (RFC 9110 §5.6.2): ALPHA, DIGIT and !#$%&'*+-.^_`|~ */
static const bool TCHAR[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};
static inline bool tchar(unsigned char c) { return TCHAR[c]; }

/* request-line = method SP request-target SP HTTP-version (RFC 9112 §3),
 * with exactly one SP between them. */
static int check_request_line(struct http_in *in) {
  const char *s = in->line.data;
  size_t n = in->line.len, i = 0;
  while (i < n && tchar((unsigned char)s[i]))
    i++;
  size_t mlen = i;
  if (mlen == 0)
    return fail(in, 400, "BAD_METHOD", "request method is not valid");
  if (i == n || s[i] != ' ')
    return fail(in, 400, "BAD_REQUEST", "request line is not 'method target version'");
  size_t t0 = ++i;
  while (i < n && (unsigned char)s[i] > ' ' && s[i] != 0x7f)
    i++;
  if (i == t0)
    return fail(in, 400, "BAD_TARGET", "request target is missing (one space between parts)");
  if (memchr(s + t0, '#', i - t0))
    return fail(in, 400, "BAD_TARGET", "request target must not hold a fragment ('#')");
  if (i == n || s[i] != ' ')
    return fail(in, 400, "BAD_REQUEST", "request line is not 'method target version'");
  i++;
  /* HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive (§2.3) */
  if (n - i != 8 || memcmp(s + i, "HTTP/", 5) != 0 || s[i + 5] < '0' || s[i + 5] > '9' ||
      s[i + 6] != '.' || s[i + 7] < '0' || s[i + 7] > '9')
    return fail(in, 400, "BAD_VERSION", "HTTP version is not valid");
  if (s[i + 5] != '1')
    return fail(in, 505, "HTTP_VERSION_NOT_SUPPORTED", "only HTTP/1.x is served");
  if (mlen == 7 && memcmp(s, "CONNECT", 7) == 0)
    return fail(in, 501, "NOT_IMPLEMENTED", "CONNECT is refused: Grove is not a proxy");
  return 0;
}

/* Watches the head's raw bytes up to the empty line that ends it: keeps
 * and checks the request line (empty lines before it are skipped, §2.2),
 * refuses a bare CR (§2.2), NUL (RFC 9110 §5.5) and a header line that
 * starts with whitespace: obs-fold (§5.2) or whitespace before the first
 * field (§2.2). Works a line at a time (memchr), since every request
 * passes here. Returns 0 or -1 (in->err_* set). */
static int scan_head(struct http_in *in, const char *data, size_t len) {
  size_t i = 0;
  while (i < len && !in->head_done) {
    if (in->after_cr) { /* a CR ended the previous piece */
      in->after_cr = false;
      if (data[i] != '\n')
        return fail(in, 400, "BAD_REQUEST", "CR not followed by LF in the request head");
    }
    const char *lf = memchr(data + i, '\n', len - i);
    size_t end = lf ? (size_t)(lf - data) : len; /* the line's bytes: [i, end) */
    size_t n = end - i;
    const char *p = data + i;
    const char *cr = memchr(p, '\r', n);
    if (cr) {
      if (cr + 1 != p + n) /* a CR must end the line */
        return fail(in, 400, "BAD_REQUEST", "CR not followed by LF in the request head");
      n--;
      if (!lf)
        in->after_cr = true;
    }
    if (memchr(p, '\0', n))
      return fail(in, 400, "BAD_REQUEST", "NUL in the request head");
    if (!in->line_done) {
      if (n && buf_append(&in->line, p, n))
        return fail(in, 414, "URI_TOO_LONG", "request target is too long");
      if (lf && in->line.len) { /* (an empty line before the request line is skipped) */
        in->line_done = true;
        if (check_request_line(in))
          return -1;
      }
    } else {
      if (in->field_len == 0 && n && (p[0] == ' ' || p[0] == '\t'))
        return fail(in, 400, "BAD_HEADER",
                    "header line starts with whitespace (obs-fold is not accepted)");
      in->field_len += n;
      if (lf) {
        in->head_done = in->field_len == 0;
        in->field_len = 0;
      }
    }
    i = lf ? end + 1 : len;
  }
  return 0;
}

/* reg-name bytes (RFC 3986 §3.2.2): unreserved and sub-delims; '%' is
 * checked apart */
static const bool REGNAME[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1,
    ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an
 * IP-literal in brackets, or a reg-name / IPv4 address; empty is allowed. */
static bool host_valid(const char *v) {
  const char *p = v;
  if (*p == '[') {
    p++;
    while (*p && (isxdigit((unsigned char)*p) || *p == ':' || *p == '.'))
      p++;
    if (*p != ']' || p == v + 1)
      return false;
    p++;
  } else {
    while (*p && *p != ':') {
      if (*p == '%') {
        if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
          return false;
        p += 3;
        continue;
      }
      if (!REGNAME[(unsigned char)*p])
        return false;
      p++;
    }
  }
  if (*p == ':')
    for (p++; *p; p++)
      if (*p < '0' || *p > '9')
        return false;
  return *p == '\0';
}

static const char *hname(const struct http_in *in, int i) { return in->head.data + in->offs[2 * i]; }
static const char *hvalue(const struct http_in *in, int i) {
  return in->head.data + in->offs[2 * i + 1];
}

/* The fields the framing rules look at, told apart by length first: every
 * request passes here. */
enum field_kind { F_OTHER, F_HOST, F_EXPECT, F_CLEN, F_TENC };

static enum field_kind field_kind(const char *name, size_t len) {
  switch (len) {
  case 4:
    return strncasecmp(name, "host", 4) == 0 ? F_HOST : F_OTHER;
  case 6:
    return strncasecmp(name, "expect", 6) == 0 ? F_EXPECT : F_OTHER;
  case 14:
    return strncasecmp(name, "content-length", 14) == 0 ? F_CLEN : F_OTHER;
  case 17:
    return strncasecmp(name, "transfer-encoding", 17) == 0 ? F_TENC : F_OTHER;
  default:
    return F_OTHER;
  }
}

/* Transfer-Encoding and Content-Length (RFC 9112 §6.1, §6.3). Codings
 * are read from every Transfer-Encoding line in order. */
static int check_framing(struct http_in *in, const http_parser *p) {
  bool te = false, cl = false, chunked_last = false, other = false;
  int chunked = 0;
  for (int i = 0; i < in->nheaders; i++) {
    const char *name = hname(in, i);
    enum field_kind k = field_kind(name, strlen(name));
    cl |= k == F_CLEN;
    if (k != F_TENC)
      continue;
    te = true;
    const char *v = hvalue(in, i);
    while (*v) {
      while (*v == ' ' || *v == '\t' || *v == ',')
        v++;
      if (!*v)
        break;
      const char *end = v;
      while (*end && *end != ',')
        end++;
      size_t n = strcspn(v, ",; \t");
      if (n > (size_t)(end - v))
        n = (size_t)(end - v);
      bool is_chunked = n == 7 && strncasecmp(v, "chunked", 7) == 0;
      chunked += is_chunked;
      other |= !is_chunked;
      chunked_last = is_chunked;
      v = end;
    }
  }
  if (!te)
    return 0;
  if (p->http_major == 1 && p->http_minor == 0)
    return fail(in, 400, "BAD_TRANSFER_ENCODING", "Transfer-Encoding is not allowed in HTTP/1.0");
  if (cl)
    return fail(in, 400, "BAD_TRANSFER_ENCODING",
                "Content-Length and Transfer-Encoding must not be sent together");
  if (!chunked_last || chunked > 1)
    return fail(in, 400, "BAD_TRANSFER_ENCODING",
                "chunked must be the last transfer coding, and only once");
  if (other)
    return fail(in, 501, "UNSUPPORTED_TRANSFER_ENCODING",
                "only the chunked transfer coding is implemented");
  return 0;
}

/* Field names are tokens (http-parser lets a space through: "Host : x"),
 * HTTP/1.1 has exactly one valid Host (RFC 9112
 * §3.2), then the framing rules; Expect is read last (RFC 9110 §10.1.1:
 * an HTTP/1.0 request's is ignored, and no 1xx goes to an HTTP/1.0
 * client, §15.2). */
static int check_fields(struct http_in *in, const http_parser *p) {
  int hosts = 0;
  const char *host = NULL;
  bool framing = false, expect = false;
  for (int i = 0; i < in->nheaders; i++) {
    const char *name = hname(in, i);
    size_t n = 0;
    while (tchar((unsigned char)name[n]))
      n++;
    if (n == 0 || name[n])
      return fail(in, 400, "BAD_HEADER", "header name is not a token (no space before ':')");
    switch (field_kind(name, n)) {
    case F_HOST:
      hosts++;
      host = hvalue(in, i);
      break;
    case F_CLEN:
    case F_TENC:
      framing = true;
      break;
    case F_EXPECT:
      expect = true;
      break;
    case F_OTHER:
      break;
    }
  }
  if (hosts > 1)
    return fail(in, 400, "BAD_HOST", "more than one Host header");
  if (hosts == 0 && (p->http_major > 1 || p->http_minor >= 1))
    return fail(in, 400, "BAD_HOST", "an HTTP/1.1 request needs a Host header");
  if (host && !host_valid(host))
    return fail(in, 400, "BAD_HOST", "Host is not a valid host[:port]");
  if (framing && check_framing(in, p))
    return -1;
  for (int i = 0; expect && p->http_minor >= 1 && i < in->nheaders; i++) {
    const char *name = hname(in, i);
    if (field_kind(name, strlen(name)) != F_EXPECT)
      continue;
    if (strcasecmp(hvalue(in, i), "100-continue") != 0)
      return fail(in, 417, "EXPECTATION_FAILED", "only 'Expect: 100-continue' is supported");
    in->want_continue = true;
  }
  return 0;
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

/* Drops the whitespace that ends the current header value: RFC 9112 §5
 * makes trailing OWS no part of a field value (http-parser keeps it). */
static void trim_value(struct http_in *in) {
  size_t start = in->offs[2 * (in->nheaders - 1) + 1];
  while (in->head.len > start && (in->head.data[in->head.len - 1] == ' ' ||
                                  in->head.data[in->head.len - 1] == '\t'))
    in->head.len--;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  struct http_in *in = IN(p);
  if (in->nheaders == 0 || in->in_value) {
    /* a new header starts: close the previous value (or the url) */
    if (in->nheaders && in->in_value)
      trim_value(in);
    if (buf_putc(&in->head, '\0'))
      return fail(in, 431, "HEADERS_TOO_LARGE", "request headers are too large");
    if (in->nheaders >= in->cfg->max_headers)
      return fail(in, 431, "TOO_MANY_HEADERS", "request has too many headers");
    if (ARRAY_GROW_SIZED(in->offs, in->offs_cap, (size_t)in->nheaders + 1, 2 * sizeof *in->offs,
                         16, (size_t)in->cfg->max_headers))
      return fail(in, 503, "OUT_OF_MEMORY", "server is out of memory");
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
  if (in->nheaders && in->in_value)
    trim_value(in);
  if (buf_putc(&in->head, '\0'))
    return fail(in, 431, "HEADERS_TOO_LARGE", "request headers are too large");
  if (in->nheaders && !in->in_value) /* a name with no value callback */
    in->offs[2 * (in->nheaders - 1) + 1] = (uint32_t)in->head.len - 1;
  in->headers_done = true;
  if (p->http_major != 1)
    return fail(in, 505, "HTTP_VERSION_NOT_SUPPORTED", "only HTTP/1.x is served");
  bool has_len = (p->flags & F_CONTENTLENGTH) != 0;
  if (check_fields(in, p))
    return -1;
  in->body_max = in->cfg->max_body;
  in->has_body = (has_len && p->content_length > 0) || (p->flags & F_CHUNKED);
  if (in->stop_at_headers && in->has_body && !p->upgrade) {
    http_parser_pause(p, 1); /* the server chooses how the body is read */
    return 0;
  }
  if (has_len && p->content_length > in->cfg->max_body) {
    in->want_continue = false;
    return fail(in, 413, "BODY_TOO_LARGE", "request body is too large");
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct http_in *in = IN(p);
  if (in->sink) {
    if (in->sink(in->sink_arg, at, len))
      http_parser_pause(p, 1);
    return 0;
  }
  if (in->body.len + len > in->body_max || buf_append(&in->body, at, len))
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
  buf_init(&in->line, cfg->max_url + 32); /* method, spaces, version */
}

void http_in_release(struct http_in *in) {
  buf_release(&in->head);
  buf_release(&in->body);
  buf_release(&in->line);
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
  if (in->line.cap > 1024)
    buf_release(&in->line);
  buf_reset(&in->line);
  in->field_len = 0;
  in->line_done = in->head_done = in->after_cr = false;
  in->nheaders = 0;
  in->url_len = in->header_bytes = 0;
  in->in_value = in->started = in->headers_done = in->complete = false;
  in->want_continue = false;
  in->has_body = in->body_chosen = false;
  in->sink = NULL;
  in->sink_arg = NULL;
}

void http_in_body(struct http_in *in, uint64_t max, http_in_sink sink, void *arg) {
  in->body_chosen = true;
  in->body_max = max;
  in->sink = sink;
  in->sink_arg = arg;
}

void http_in_resume(struct http_in *in) {
  if (HTTP_PARSER_ERRNO(&in->parser) == HPE_PAUSED)
    http_parser_pause(&in->parser, 0);
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
  case HPE_INVALID_METHOD: {
    /* a well-formed method http-parser does not know (RFC 9110 §9.1) */
    size_t i = 0;
    while (i < in->line.len && tchar((unsigned char)in->line.data[i]))
      i++;
    if (i > 0 && (i == in->line.len || in->line.data[i] == ' '))
      return fail(in, 501, "NOT_IMPLEMENTED", "request method is unknown to this server");
    return fail(in, 400, "BAD_METHOD", "request method is not valid");
  }
  case HPE_INVALID_VERSION:
    return fail(in, 400, "BAD_VERSION", "HTTP version is not valid");
  case HPE_INVALID_URL:
    return fail(in, 400, "BAD_TARGET", "request target is not valid");
  case HPE_UNEXPECTED_CONTENT_LENGTH:
    if (check_framing(in, &in->parser))
      return -1;
    return fail(in, 400, "BAD_CONTENT_LENGTH", "Content-Length is not valid");
  case HPE_INVALID_CONTENT_LENGTH:
    return fail(in, 400, "BAD_CONTENT_LENGTH", "Content-Length is not valid");
  case HPE_INVALID_CHUNK_SIZE:
    return fail(in, 400, "BAD_CHUNK", "chunked body is not valid");
  case HPE_INVALID_TRANSFER_ENCODING:
    /* http-parser stops here before Grove's own checks: give their answer */
    if (check_framing(in, &in->parser))
      return -1;
    return fail(in, 400, "BAD_TRANSFER_ENCODING", "Transfer-Encoding is not valid");
  default:
    return fail(in, 400, "BAD_REQUEST", http_errno_description(e));
  }
}

size_t http_in_feed(struct http_in *in, const char *data, size_t len,
                    enum http_in_state *state) {
  *state = HTTP_IN_MORE;
  if (in->err_status || (!in->head_done && scan_head(in, data, len))) {
    *state = HTTP_IN_ERROR;
    return 0;
  }
  size_t n = http_parser_execute(&in->parser, &settings, data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&in->parser);
  if (in->err_status) {
    *state = HTTP_IN_ERROR;
  } else if (e == HPE_PAUSED && in->headers_done && in->has_body && in->stop_at_headers &&
             !in->body_chosen) {
    *state = HTTP_IN_HEADERS;
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

/* The request target, in place: origin-form only ("/path?query");
 * absolute-form is accepted for proxies' sake by skipping scheme and
 * authority. OUT: *path (decoded) and *query (raw, without '?') point
 * into url. Returns 0 or 400. */
static int split_target(char *url, bool options, const char **path, const char **query) {
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
    if (strcmp(url, "*") == 0 && options) {
      *path = "*";
      *query = "";
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
    *query = q + 1;
  } else {
    *query = "";
  }
  long n = pct_decode(url, strlen(url), false);
  if (n < 0)
    return 400;
  *path = url;
  return 0;
}

int http_in_request(struct http_in *in, struct http_req *r) {
  const http_parser *p = &in->parser;
  r->method = http_method_str((enum http_method)p->method);
  r->head = p->method == HTTP_HEAD;
  if (in->nheaders + 1 > in->hdrs_cap) {
    int cap = (int)in->offs_cap + 1;
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
  static char empty[1];
  return split_target(in->head.data ? in->head.data : empty, p->method == HTTP_OPTIONS,
                      &r->path, &r->query);
}

int http_in_peek_path(const struct http_in *in, char *out, size_t n) {
  const char *url = in->head.data ? in->head.data : "";
  size_t len = strlen(url);
  if (len + 2 > n) /* room for "http://host" becoming "/" */
    return -1;
  memcpy(out, url, len + 1);
  const char *path, *query;
  if (split_target(out, in->parser.method == HTTP_OPTIONS, &path, &query))
    return -1;
  memmove(out, path, strlen(path) + 1);
  return 0;
}

const char *http_in_method(const struct http_in *in) {
  return http_method_str((enum http_method)in->parser.method);
}

bool http_in_keep_alive(const struct http_in *in) {
  return http_should_keep_alive(&in->parser) != 0;
}

bool http_in_upgrade(const struct http_in *in) { return in->parser.upgrade != 0; }
