/* conn.h — one client connection and its loop (net-internal).
 *
 * A connection starts as HTTP and may become a WebSocket or an SSE stream.
 * Its memory is freed only after both libuv handles are closed and no
 * deferred work refers to it. The HTTP state (parser, request, response
 * headers) is a separate allocation dropped on upgrade, so idle upgraded
 * connections stay small. */
#ifndef GROVE_CONN_H
#define GROVE_CONN_H

#include <pthread.h>

#include "net/http.h"
#include "net/http_parse.h"

struct route;
struct pool;
struct defer;
struct ws;
struct sse;

enum conn_kind { CONN_HTTP, CONN_WS, CONN_SSE };

struct http_state {
  struct http_in in;
  struct http_req req;
  struct buf res_headers; /* extra "Name: value\r\n" lines */
  char vary[128];         /* Vary tokens, comma-separated: sent as one header */
  struct buf route_path;  /* scratch copy of the path for parameters */
  struct buf body_dec;    /* the body with its Content-Encoding undone */
  int dec_rc;             /* the server's decode failed (body.c): its code */
  struct http_body_error dec_err; /* …and answer, for http_req_decode */
  bool predecoded;        /* the body was decoded before the handler ran */
  struct route *route;
  uint64_t start_ns;
  bool continue_sent;
  /* A streamed request body (routes with stream_body; server.c). Reset
   * when the request is done. */
  struct {
    bool on;              /* routed at its headers: the body waits for the handler */
    bool attached;        /* http_req_stream was called */
    bool paused;          /* on_data asked to pause */
    bool ended;           /* on_end ran, or the answer ended the stream */
    uint64_t max, received;
    struct http_body_cbs cbs;
    void *arg;
  } stream;
  /* A streamed answer (http_reply_start; response.c). */
  struct {
    bool on;
    int status;
    uint64_t len, sent;
  } out;
};

struct loop_ctx {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_tcp_t listener;
  uv_async_t stop_async;
  uv_timer_t stop_timer;
  struct http_server *srv;
  int index;
  struct http_conn *conns;  /* doubly linked list of open connections */
  size_t nconns;
  size_t nclosing;          /* closed, handles not yet released */
  bool stopping;
  bool finished;
  uint64_t date_sec;
  char date[40];            /* "Date: …\r\n" cached per second */
  size_t date_len;
  struct buf out;           /* responses are built here, then written */
  /* pool jobs of this loop's requests (server.c) */
  uv_async_t pool_async;    /* a pool thread finished one: hand it back */
  pthread_mutex_t pool_mu;
  struct defer *done_jobs;  /* handed back, newest first; under pool_mu */
  int jobs;                 /* queued or running, not yet handed back */
  char readbuf[64 * 1024];  /* shared by every read on this loop */
};

struct http_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct loop_ctx *lp;
  struct http_conn *prev, *next;
  enum conn_kind kind;
  struct http_state *hs;   /* CONN_HTTP only */
  struct buf pending;      /* bytes read while a request was in flight */
  union {
    struct ws *ws;
    struct sse *sse;
  } up;
  int handles_open;        /* tcp + timer */
  int works;               /* deferred work in flight */
  struct defer *jobs;      /* its pool jobs in flight (dropped if it goes) */
  bool busy;               /* a request is being handled */
  bool dispatching;        /* inside the handler call */
  bool closing;
  bool lingering;          /* write side shut, draining reads before close */
  bool peer_eof;
  bool close_after;        /* close once the response is written */
  bool reading;
  char peer[48];           /* the socket's peer as text, "" until first asked */
};

struct http_server {
  struct http_cfg cfg;
  struct router *router;
  struct metrics *metrics;
  struct http_server_hooks hooks;
  struct loop_ctx **loops;
  int nloops;
  int port;
  struct metric *open_conns;
  struct metric *accepted;
  struct pool *pools[HTTP_POOLS];
};

/* Fault injection for tests and fuzzing (as SQLite's test hooks): when
 * set, it is asked before each write on any loop and a true answer makes
 * the write fail as on a reset socket. NULL in production. */
extern bool (*conn_fault_write)(void);

/* Writes bytes (copied, or taken when `release` is set) in order after
 * everything queued before. Returns 0 or GROVE_ECLOSED (the connection is
 * then closing; see conn_close). */
int conn_write(struct http_conn *c, const uv_buf_t *bufs, unsigned n,
               void (*release)(void *), void *owner);
size_t conn_queued(const struct http_conn *c);
/* Starts closing now (abortive for HTTP with unread input is avoided by
 * lingering). Deferred: c, its ws or sse and their users stay valid until
 * libuv's close callback, after the current callback has returned; from
 * now on c->closing is set and every write answers GROVE_ECLOSED. Any
 * loop that sends must check c->closing (or the send's result) after each
 * send and stop. */
void conn_close(struct http_conn *c);
/* Shuts the write side after queued data, reads and drops the rest for a
 * moment, then closes: lets the client read an error answer. */
void conn_close_gracefully(struct http_conn *c);
/* Closes with a reset, dropping unsent data (clients that cannot keep up). */
void conn_abort(struct http_conn *c);
void conn_timer(struct http_conn *c, uint64_t ms, uv_timer_cb cb);
const char *loop_date(struct loop_ctx *lp);
/* Hands a finished HTTP exchange over to an upgraded protocol. */
void conn_upgrade(struct http_conn *c, enum conn_kind kind);

/* Handlers for upgraded connections (ws.c, sse.c). */
void ws_on_read(struct http_conn *c, const char *data, size_t n);
void ws_on_conn_close(struct http_conn *c);
void ws_on_shutdown(struct http_conn *c);
void sse_on_conn_close(struct http_conn *c);

/* ws.c: a WebSocket codec with no connection, for tests and fuzzing:
 * frames it sends are appended to `out`. feed returns false once the
 * session is over (a close was exchanged or the input was invalid). */
struct ws *ws_codec_create(const struct ws_cfg *cfg, const struct ws_cbs *cbs, void *user,
                           struct buf *out);
bool ws_codec_feed(struct ws *ws, const void *data, size_t n);
uint16_t ws_codec_close_code(const struct ws *ws);
/* true when the codec holds no wslay context (idle at a frame boundary) */
bool ws_codec_idle(const struct ws *ws);
void ws_codec_destroy(struct ws *ws);
bool utf8_valid(const uint8_t *s, size_t n);

/* body.c: decodes r's body before its handler runs (see http.h). Returns
 * true when that went to the CPU pool: `then` runs the handler once it is
 * done (or the request was answered 503); false to run the handler now. */
bool body_decode_first(struct http_conn *c, void (*then)(struct http_conn *c));

/* server.c: a streamed request's stream is over (on_end now, if it was
 * attached and not ended). */
void stream_end(struct http_conn *c, int err);

/* response.c */
void http_finish(struct http_req *r, int status);
void http_send_error_raw(struct http_conn *c, int status, const char *code,
                         const char *message, const char *rid);
int conn_dispatch_done(struct http_conn *c);

#endif
