/* http_parse.h — I/O-free HTTP/1.1 request reader (net-internal).
 *
 * Wraps http-parser with Grove's limits: feeds bytes in, stops after each
 * complete request (so pipelined requests are answered in order) or at the
 * first error, which carries the HTTP status to answer with. Owns the
 * request's header and body storage until http_in_next(). */
#ifndef GROVE_HTTP_PARSE_H
#define GROVE_HTTP_PARSE_H

#include <http_parser.h>

#include "net/http.h"

/* HTTP_IN_HEADERS: only with stop_at_headers, for a request with a body:
 * its headers are in and the parser waits (http_in_body) before reading
 * the body. */
enum http_in_state { HTTP_IN_MORE, HTTP_IN_REQUEST, HTTP_IN_ERROR, HTTP_IN_HEADERS };

/* Where a streamed body goes: each piece, in order. Returns 0 to go on,
 * 1 to pause the parser after this piece (http_in_resume goes on). */
typedef int (*http_in_sink)(void *arg, const char *at, size_t len);

struct http_in {
  http_parser parser;
  const struct http_cfg *cfg;
  struct buf head;       /* url NUL (name NUL value NUL)* */
  struct buf body;
  uint32_t *offs;        /* per header: offset of name, offset of value */
  int nheaders;
  size_t offs_cap;       /* headers offs has room for */
  size_t url_len, header_bytes;
  bool in_value, started, headers_done, complete;
  bool want_continue;    /* Expect: 100-continue and body acceptable */
  /* The raw head as it arrives, checked before http-parser reads it
   * (which is lenient where RFC 9112 is strict): the request line is
   * kept until its end to check its grammar; header lines are watched
   * for obs-fold and stray whitespace, bare CR and NUL. */
  struct buf line;
  size_t field_len;      /* bytes of the current header line */
  bool line_done, head_done, after_cr;
  int err_status;        /* when HTTP_IN_ERROR */
  const char *err_code;
  const char *err_msg;
  struct http_header *hdrs; /* built at completion */
  int hdrs_cap;
  /* The server's choices for the body: stop at the headers of a request
   * with one (HTTP_IN_HEADERS), then buffer it up to body_max, or hand it
   * to sink as it comes. */
  bool stop_at_headers;
  bool has_body;         /* Content-Length > 0 or chunked */
  bool body_chosen;      /* http_in_body was called for this request */
  uint64_t body_max;
  http_in_sink sink;
  void *sink_arg;
};

void http_in_init(struct http_in *in, const struct http_cfg *cfg);
void http_in_release(struct http_in *in);
/* Parses up to len bytes. OUT: *state. Returns the bytes consumed; on
 * HTTP_IN_REQUEST the rest belongs to the next request (or, after an
 * upgrade, to the new protocol). HTTP_IN_ERROR carries the status RFC
 * 9112/9110 ask for: 400 for a bad request line, target, header line,
 * Host (missing, repeated or invalid in HTTP/1.1, §3.2) or framing
 * (Content-Length with Transfer-Encoding, chunked not last or twice,
 * Transfer-Encoding in HTTP/1.0: §6.1, §6.3), 501 for a method or a
 * transfer coding Grove does not implement, 505 for a major version
 * other than 1, 417 for an expectation other than 100-continue, 413,
 * 414 and 431 for the limits. The connection is closed after any of
 * these answers. */
size_t http_in_feed(struct http_in *in, const char *data, size_t len,
                    enum http_in_state *state);
/* Fills the parsed fields of r (method, path, query, headers, body).
 * Returns 0, or an error status (400) for a malformed target. */
int http_in_request(struct http_in *in, struct http_req *r);
bool http_in_keep_alive(const struct http_in *in);
bool http_in_upgrade(const struct http_in *in);
/* After HTTP_IN_HEADERS: how to read this request's body: buffered up to
 * max bytes (413 past it), or given to sink (NULL: buffered). The caller
 * then resumes the parser with http_in_resume. */
void http_in_body(struct http_in *in, uint64_t max, http_in_sink sink, void *arg);
/* Lets a paused parser (at the headers, or paused by the sink) go on. */
void http_in_resume(struct http_in *in);
/* The request target's path, decoded (as http_in_request makes it), into
 * out without touching the parsed request. Returns 0, or -1 when it is
 * malformed or longer than n-1. Valid from HTTP_IN_HEADERS on. */
int http_in_peek_path(const struct http_in *in, char *out, size_t n);
/* The method's name ("PUT"). */
const char *http_in_method(const struct http_in *in);
/* Readies for the next request on the same connection. */
void http_in_next(struct http_in *in);

#endif
