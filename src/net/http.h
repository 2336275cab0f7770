/* http.h — Grove's HTTP/1.1 server: requests, responses, routing, limits.
 *
 * One libuv loop per thread, each with its own SO_REUSEPORT listener, so
 * the kernel spreads connections across cores. A connection lives on one
 * loop for its whole life; handlers run on that loop and must not block
 * (blocking work goes to one of the server's pools, see http_req_defer).
 *
 * A handler answers with exactly one http_reply* call, now or later on the
 * same loop. Requests on one connection are answered in order: while one
 * is being handled, the next (pipelined) request waits.
 *
 * Every answer that is not 2xx/3xx uses the error envelope of seed 003
 * §6.1.3: {"status":"error","error_code":…,"message":…,"details":{…}}. */
#ifndef GROVE_HTTP_H
#define GROVE_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"

struct metrics;
struct http_server;
struct http_conn;
struct router;

/* ---- limits and options ------------------------------------------------ */

struct http_cfg {
  char *listen;          /* host:port */
  int threads;           /* event loops; 0 = one per core */
  uint64_t max_url;      /* bytes; longer request line -> 414 */
  uint64_t max_header;   /* bytes of all header lines -> 431 */
  int max_headers;       /* header count -> 431 */
  uint64_t max_body;     /* bytes -> 413 */
  uint64_t max_upload;   /* bytes of a streamed body (routes with stream_body) -> 413 */
  uint64_t header_timeout_ms; /* to receive request line + headers -> 408 */
  uint64_t body_timeout_ms;   /* to receive the body once headers are in -> 408 */
  uint64_t idle_timeout_ms;   /* keep-alive connection with no request: closed */
  uint64_t gzip_min;     /* compress responses at least this big; 0 = never */
  char *web_root;        /* static files; "" = none; "auto": found by grove serve */
  uint64_t shutdown_timeout_ms;
  bool access_log;
  uint64_t max_body_decoded; /* bytes a Content-Encoding may inflate a body to */
  /* the pools (http_req_defer): threads, and jobs that may wait for one */
  int pool_store_threads, pool_store_queue;
  int pool_cpu_threads, pool_cpu_queue;
  int pool_wait_threads, pool_wait_queue;
  char *pool_cpu_hold;   /* tests: while this file exists cpu jobs wait; "" off */
};

extern const struct cfg_opt http_cfg_opts[];
extern const size_t http_cfg_nopts;

/* ---- requests ---------------------------------------------------------- */

#define HTTP_MAX_PARAMS 8

struct http_header {
  const char *name;
  const char *value;
};

struct http_req {
  const char *method;        /* "GET", … */
  const char *path;          /* decoded path, no query */
  const char *query;         /* raw query string without '?', or "" */
  const char *route;         /* the matched route pattern, or "unmatched" */
  struct http_header *headers;
  int nheaders;
  const char *body;          /* NUL-terminated for convenience; as sent until
                                decoded by http_req_body / http_req_decode */
  size_t body_len;
  bool body_decoded;         /* Content-Encoding undone (or there was none) */
  const char *param_names[HTTP_MAX_PARAMS];
  const char *param_values[HTTP_MAX_PARAMS];
  int nparams;
  char id[24];               /* request id: X-Request-Id or generated */
  bool head;                 /* HEAD: body is computed, then dropped */
  struct http_conn *conn;
  void *app;                 /* the handler's argument from the router */
  /* Room for the gate to keep who sent this request once it has checked
   * (net never reads it): handlers then ask without checking twice. */
  _Alignas(8) unsigned char auth[192];
  int auth_state;            /* 0 not checked, 1 known, -1 no valid credential */
  char client[48];           /* the client's address when a trusted proxy named it, or "" */
};

const char *http_header_get(const struct http_req *r, const char *name);
const char *http_param(const struct http_req *r, const char *name);
/* ---- query parameters --------------------------------------------------
 * A parameter is looked up by its decoded name; its value is decoded
 * (%XX, '+' as space) into the caller's buffer. A parameter that is there
 * but cannot be used (bad percent-encoding, longer than the buffer) is an
 * error the client hears about (400), never taken for an absent one: a
 * filter dropped silently would widen the answer. */
enum {
  HTTP_QUERY_ABSENT = -1,    /* no such parameter */
  HTTP_QUERY_MALFORMED = -2, /* bad percent-encoding: `%zz`, a cut `%4`, `%00` */
  HTTP_QUERY_TOO_LONG = -3,  /* decoded value longer than outlen-1 bytes */
};
/* Copies the decoded value of query parameter `name` into out (outlen
 * bytes, NUL-ended). `nth` picks among repeats (0 = first). Returns its
 * length (0 for `name=` or a bare `name`); HTTP_QUERY_ABSENT with out
 * untouched; HTTP_QUERY_MALFORMED or HTTP_QUERY_TOO_LONG with out "".
 * Any thread; reads r only. */
long http_query_get(const struct http_req *r, const char *name, int nth,
                    char *out, size_t outlen);
/* The message for a value http_query_get refused (rc MALFORMED or
 * TOO_LONG, outlen as passed to it), into msg (msglen bytes):
 * "query parameter 'by' is longer than 15 bytes", "query parameter 'by'
 * is not valid percent-encoding". For routes that answer in their own
 * format. */
void http_query_why(long rc, const char *name, size_t outlen, char *msg, size_t msglen);
/* Answers 400 with the error envelope for a value http_query_get refused:
 * error_code `code` (NULL: "INVALID_INPUT"), http_query_why's message,
 * details {"parameter": name, "max_bytes": outlen-1 (TOO_LONG only)}. */
void http_query_refuse(struct http_req *r, long rc, const char *name, size_t outlen,
                       const char *code);
/* The first `name` as text, for a handler: 1 with out set (may be ""),
 * 0 when absent (out untouched: preset a default), -1 when it is there
 * but unusable, after answering 400 as http_query_refuse (the caller
 * frees what it holds and returns). */
int http_query_str(struct http_req *r, const char *name, char *out, size_t outlen,
                   const char *code);
/* Query parameter `name` (the first) as a whole decimal number in
 * [lo, hi]: true with *out set, or true with *out kept when it is absent;
 * false when it is there and anything else (empty, not a number, past
 * [lo, hi], over 31 bytes): the caller answers 400. */
bool http_query_long(const struct http_req *r, const char *name, long lo, long hi, long *out);
/* The paging parameter of a GET list, `limit`: *out is def when absent,
 * else a whole number in 1..max. Otherwise answers 400 INVALID_INPUT
 * "limit must be 1 to <max>" and returns false (the caller returns). */
bool http_query_limit(struct http_req *r, long def, long max, long *out);
/* ---- request bodies: Content-Encoding (RFC 9110 §8.4) ------------------
 * Every route that reads a body reads it through http_req_body (or
 * http_req_decode, or http_req_json which calls it): gzip (all members,
 * as `gzip -d` and Go's gzip reader), x-gzip, deflate (zlib or raw) and
 * identity are undone in the reverse of the order applied; others are
 * 415 UNSUPPORTED_ENCODING (with Accept-Encoding naming what is taken).
 * Corrupt or truncated input, or bytes after the last gzip member that do
 * not start another, are 400 BAD_GZIP (BAD_DEFLATE); a decoded body over
 * `max` bytes (and never more than --max-body-decoded) is 413
 * BODY_TOO_LARGE. The server decodes before the handler runs: a body that
 * inflates to at most 1 MiB on the loop, a larger one on the CPU pool
 * (then the handler runs once it is done; 503 BUSY when that pool is
 * full), so these calls only hand over the outcome. */
struct http_body_error {
  int status;          /* 400, 413, 415 or 503; 0 when there was none */
  const char *code;    /* "BAD_GZIP", … (static) */
  const char *message; /* static */
};
/* Decodes r->body in place of the sent one: afterwards r->body and
 * r->body_len are the decoded bytes (NUL-ended), owned by the request
 * until it is answered. A second call does nothing. `max` 0 means
 * --max-body. Returns 0, or a negative GROVE_E* code with *err filled (and
 * nothing answered: for routes that answer in their own format). */
int http_req_decode(struct http_req *r, size_t max, struct http_body_error *err);
/* As http_req_decode, answering the error envelope on failure: returns
 * false then, and the handler just returns. */
bool http_req_body(struct http_req *r, size_t max);
/* The decoder itself, on memory (tests, fuzzing): `encoding` is a
 * Content-Encoding value (NULL: none). Writes the result to out (reset
 * first; scratch holds an intermediate coding). Returns 0 or a GROVE_E*
 * code with *err filled. */
int http_body_decode(const char *encoding, const void *in, size_t n, size_t max,
                     struct buf *out, struct buf *scratch, struct http_body_error *err);
/* The request body (decoded as above) parsed as a JSON object. On failure
 * answers 400 (415 for a wrong content type or content coding, 413 when
 * too large) and returns NULL: the handler just returns. */
json_t *http_req_json(struct http_req *r);
uv_loop_t *http_req_loop(const struct http_req *r);
/* The client's address as text ("127.0.0.1"); "-" when unknown: the one
 * a trusted proxy forwarded (http_req_set_client), else the socket's
 * peer. Limits, access logs and the audit use this. */
void http_req_peer(const struct http_req *r, char *out, size_t n);
/* The socket's peer, whatever a proxy said ("-" when unknown). */
void http_req_socket_peer(const struct http_req *r, char *out, size_t n);
/* Sets the client's address for the rest of r (the gate, after checking
 * that the peer is a trusted proxy). Copied; at most 47 bytes. */
void http_req_set_client(struct http_req *r, const char *addr);

/* ---- responses --------------------------------------------------------- */

/* Adds a response header; name and value are copied. */
void http_res_header(struct http_req *r, const char *name, const char *value);
/* Adds a token to the answer's one Vary header (RFC 9110 §12.5.5): every
 * Vary given here or through http_res_header is merged, each token once,
 * so "Vary: Origin, Accept-Encoding" is sent as one well-formed header. */
void http_res_vary(struct http_req *r, const char *token);
/* Adds trusted, pre-formatted "Name: value\r\n" lines (constant headers). */
void http_res_header_lines(struct http_req *r, const char *lines, size_t len);
/* Sends status, content type and body (copied). Finishes the request. */
void http_reply(struct http_req *r, int status, const char *ctype,
                const void *body, size_t len);
/* {"status":"success","data":data,"metadata":meta}; steals both refs
 * (meta may be NULL; processing_time_ms is always added). */
void http_reply_data(struct http_req *r, int status, json_t *data, json_t *meta);
/* The success envelope around JSON text already encoded (hot paths):
 * `data` is len bytes of JSON, `meta` a JSON object's text or NULL. */
void http_reply_raw(struct http_req *r, int status, const char *data, size_t len,
                    const char *meta);
/* The error envelope; steals `details` (may be NULL). */
void http_reply_error(struct http_req *r, int status, const char *code,
                      const char *message, json_t *details);
const char *http_status_text(int status);

/* ---- streamed request bodies -------------------------------------------
 * A route declared with .stream_body (struct route_def) is routed as soon
 * as its headers are in: the before-hook, the access check and the
 * handler run before any of its body is read, and the server holds none
 * of it. The handler takes the body with http_req_stream as it arrives,
 * in pieces (the transfer coding undone; any Content-Encoding is left as
 * sent), with backpressure: a consumer that is behind (a write on a pool)
 * pauses the stream and the server stops reading the socket until it
 * resumes, so a connection holds at most one read (64 KiB) and the
 * server's pending bound (256 KiB) of an upload, whatever its size.
 * Until the handler calls http_req_stream nothing of the body is read
 * (and a client that sent Expect: 100-continue gets its 100 only then),
 * so a handler may first ask the store (quotas) and refuse cheaply.
 *
 * Limits: the route's max_body (0: --max-upload). A Content-Length over
 * it is answered 413 BODY_TOO_LARGE before the handler runs; a chunked
 * body that passes it ends the stream with GROVE_ETOOBIG. A client that
 * sends nothing for --body-timeout while the stream reads ends it with
 * GROVE_ETIMEOUT (a paused stream has no timer: the wait is the
 * server's). A client that closes or resets its connection before the
 * body is complete (a Content-Length it does not keep to, say) ends it
 * with GROVE_ECLOSED. An answer given before the body is complete (a
 * refusal) closes the connection after it (Connection: close). */

/* on_data's answers */
#define HTTP_BODY_MORE 0   /* go on */
#define HTTP_BODY_PAUSE 1  /* stop reading until http_req_stream_resume */

struct http_body_cbs {
  /* A piece of the body (len ≥ 1), valid only during the call: the
   * consumer copies what it keeps. Returns HTTP_BODY_MORE, or
   * HTTP_BODY_PAUSE: no more on_data until http_req_stream_resume. */
  int (*on_data)(struct http_req *r, const char *data, size_t len, void *arg);
  /* The body ended: err 0 when it is complete (every byte was given to
   * on_data); GROVE_ETOOBIG (over the limit), GROVE_ETIMEOUT (the client
   * stalled), GROVE_EPROTO (malformed chunked framing) or GROVE_ECLOSED
   * (the client went away). Runs exactly once per attached stream, unless
   * the handler answers first (answering ends the stream: no callback
   * runs after it). On ETOOBIG, ETIMEOUT and EPROTO the server answers
   * 413 / 408 / 400 with the error envelope if on_end did not answer; on
   * ECLOSED r's connection is closing (answers go nowhere), and on_end may
   * run from the connection's close callback. */
  void (*on_end)(struct http_req *r, int err, void *arg);
};
/* Attaches the consumer to r's body (a route with .stream_body; once).
 * Callbacks run on r's loop, possibly before this returns (bytes already
 * read; on_end(0) at once for an empty body). Returns 0, GROVE_EINVAL (not
 * a streamed route, or attached already) or GROVE_ECLOSED (the client is
 * gone: no callback will run). */
int http_req_stream(struct http_req *r, const struct http_body_cbs *cbs, void *arg);
/* Resumes a stream paused by on_data. Callbacks may run before it
 * returns. Does nothing when the stream is not paused or r is gone. */
void http_req_stream_resume(struct http_req *r);
/* Bytes of the body given to on_data so far. */
uint64_t http_req_stream_received(const struct http_req *r);
/* The body's declared length (Content-Length), or -1 when it is chunked
 * or unknown. */
int64_t http_req_content_length(const struct http_req *r);

/* ---- streamed answers ----------------------------------------------------
 * An answer whose body is sent in pieces as it is produced (a file read
 * from disk): http_reply_start sends the status line and headers with
 * Content-Length `len`, then http_reply_write queues pieces that must add
 * up to exactly `len`, then http_reply_end finishes the request (the next
 * one on the connection may start while the last pieces are still on
 * their way). The consumer paces itself with release callbacks: each
 * piece's release runs once the socket took it (or the connection went),
 * so a producer keeps at most a few pieces queued. A client that takes
 * nothing for --idle-timeout while pieces wait is disconnected. HEAD
 * requests get the headers only: http_reply_start finishes them. */
/* Sends status and headers. Returns 0 (go on with writes), 1 when the
 * answer is complete already (HEAD, or len 0: nothing more to send), or
 * GROVE_ECLOSED (the client is gone). */
int http_reply_start(struct http_req *r, int status, const char *ctype, uint64_t len);
/* Queues n bytes, taken by reference: release(owner) runs once they are
 * written or dropped (possibly before this returns). Returns 0 or
 * GROVE_ECLOSED (release has run; stop). */
int http_reply_write(struct http_req *r, const void *data, size_t n, void (*release)(void *),
                     void *owner);
/* Finishes a started answer: the request is done (r must not be used
 * after). If fewer bytes than announced were written the connection is
 * closed, so the client sees a short body rather than a wrong one. */
void http_reply_end(struct http_req *r);

/* ---- work off the loop --------------------------------------------------
 * Blocking work runs on one of the server's three pools, each with its own
 * threads and a bounded queue, so one kind of work that fills its pool
 * cannot hold up another (docs/platform.md, "Work off the loop"):
 *   HTTP_POOL_STORE  short store work: database reads and writes, the
 *                    group-commit wait of a write, file reads
 *                    (--pool-store-threads, --pool-store-queue)
 *   HTTP_POOL_CPU    CPU-heavy work: password hashing (argon2), large
 *                    Content-Encoding inflates (--pool-cpu-*)
 *   HTTP_POOL_WAIT   long waits on other servers: model answers, streamed
 *                    answers (--pool-wait-*)
 * A job of the cpu or wait pool whose client goes away (closes or resets
 * its connection) before it starts is dropped: done runs with a request
 * whose conn is NULL. */
enum http_pool { HTTP_POOL_STORE, HTTP_POOL_CPU, HTTP_POOL_WAIT };
#define HTTP_POOLS 3

/* Runs work(arg) on `pool`, then done(r, arg) back on the request's loop.
 * If the client went away meanwhile, done still runs with r->conn NULL and
 * must only free arg. Returns 0, or a GROVE_E* code when nothing was
 * queued: the request is then answered already (503 BUSY with
 * Retry-After: 1 and details {"pool","retry_after_s"} when the pool's
 * queue is full, 503 OUT_OF_MEMORY; nothing when the connection is
 * closing) and the caller frees arg and returns. */
typedef void (*http_work_fn)(void *arg);
typedef void (*http_done_fn)(struct http_req *r, void *arg);
int http_req_defer(struct http_req *r, enum http_pool pool, http_work_fn work,
                   http_done_fn done, void *arg);
/* Runs work(arg) on `pool`, tied to no request (a streamed answer that
 * goes on after r is answered): work owns arg and frees it. The server
 * waits for such jobs when it stops (http_server_run returns after
 * them). Returns 0 (the caller answers r), or a GROVE_E* code with r
 * answered as http_req_defer does (the caller frees arg). */
int http_req_spawn(struct http_req *r, enum http_pool pool, http_work_fn work, void *arg);

/* ---- routing ----------------------------------------------------------- */

typedef void (*http_handler)(struct http_req *r);

/* ---- who may call a route ----------------------------------------------
 * Every route declares its access with it (struct route_def): the scopes
 * its caller's credential must hold, or that anonymous callers may use it.
 * The router asks its authorizer (the gate installs it) before the
 * handler runs, so no handler can forget the check: a route that is not
 * anonymous is never run without a valid credential holding its scopes.
 * Without an authorizer such routes answer 500 (closed, not open). */
struct http_refusal {
  int status;            /* 401 (no or bad credential) or 403 (missing scope) */
  const char *code;      /* "UNAUTHORIZED" or "FORBIDDEN" (static) */
  const char *message;   /* for a person (static) */
  const char *challenge; /* 401: the WWW-Authenticate scheme ("Bearer"), else NULL */
  char needs[32];        /* 403: the scopes the route needs ("read,write"), else "" */
};
/* Decides whether r's caller may use a route needing `scopes` (bits the
 * authorizer defines; 0: any valid credential). Returns true to run the
 * handler (the caller's identity is then kept in r for it), or false with
 * *why filled and nothing answered. Runs on r's loop; must not block. */
typedef bool (*http_authorize)(struct http_req *r, unsigned scopes, struct http_refusal *why,
                               void *arg);
/* Answers a refusal in a route's own format (InfluxDB's, say); routes
 * without one get the error envelope, with WWW-Authenticate on a 401. */
typedef void (*http_refuse)(struct http_req *r, const struct http_refusal *why);

/* A route: method, pattern and handler, with its access. Patterns are
 * literal segments and {name} parameters: "/api/v1/things/{id}"; a final
 * "{name...}" matches the rest of the path. A zeroed access part is the
 * safe one: any valid credential. */
struct route_def {
  const char *method;
  const char *pattern;
  http_handler fn;
  unsigned scopes;    /* every scope the caller needs (the gate's GATE_* bits) */
  bool anonymous;     /* anyone may call it, with or without a credential (and
                       * unchecked: the handler asks who calls if it cares);
                       * scopes must then be 0 */
  http_refuse refuse; /* may be NULL: the error envelope */
  /* The body is streamed to the handler (http_req_stream) instead of
   * being held whole in memory; max_body is its limit (0: --max-upload). */
  bool stream_body;
  uint64_t max_body;
};

int router_create(struct router **out, struct metrics *metrics);
void router_destroy(struct router *r);
/* Adds one route for `owner` (a module or app name, static, named in
 * errors). Returns 0; GROVE_EINVAL for a pattern not starting with '/' or
 * an anonymous route with scopes; GROVE_EEXIST when the same method and
 * pattern (parameter names aside) is already routed; GROVE_ENOMEM. On
 * error, err (may be NULL) says which, naming both owners. */
int router_add(struct router *r, const char *owner, const struct route_def *def, void *app,
               char *err, size_t errlen);
/* A module's routes as one table, added in order; stops at the first
 * error (the routes before it stay). `app` is each handler's r->app. */
int router_add_all(struct router *r, const char *owner, const struct route_def *defs, size_t n,
                   void *app, char *err, size_t errlen);
/* Installs the authorizer (once: a second is GROVE_EEXIST, with err
 * naming both owners). */
int router_authorizer(struct router *r, const char *owner, http_authorize fn, void *arg,
                      char *err, size_t errlen);
/* A hook run on every request before routing (security headers, CORS,
 * rate limits): it may add headers and go on, answer, or hold the request
 * while it asks something (Redis) and later either answer or call
 * http_req_continue. */
enum http_next { HTTP_CONTINUE, HTTP_ANSWERED, HTTP_HELD };
typedef enum http_next (*http_before)(struct http_req *r, void *arg);
/* A held request keeps its connection's memory until released. release
 * returns false when the client went away meanwhile: then do nothing more
 * with r. */
void http_req_hold(struct http_req *r);
bool http_req_release(struct http_req *r);
/* True when r's client has gone: it closed its side or reset the
 * connection, or the connection is closing. Work queued for r may then be
 * dropped (its answer would not be read). Loop thread only. */
bool http_req_gone(const struct http_req *r);
/* Routes a held request the before-hook let through. */
void http_req_continue(struct http_req *r);
/* Installs the before-hook (once: a second is GROVE_EEXIST, with err
 * naming both owners). */
int router_before(struct router *r, const char *owner, http_before fn, void *arg, char *err,
                  size_t errlen);
/* Handler for GET/HEAD paths that no route matches (static files). */
void router_fallback(struct router *r, http_handler fn, void *app);
/* Visits every route in the order added (for the OpenAPI check and the
 * debug log): its method, pattern and declaration. */
void router_each(const struct router *r,
                 void (*fn)(const char *owner, const struct route_def *def, void *arg),
                 void *arg);

/* ---- upgrades: WebSocket and Server-Sent Events ------------------------ */

/* Closing is deferred (as libuv's handles): when a send fails, a client
 * is too slow or a close is asked for, the ws or sse and its user stay
 * valid until the current callback has returned and the connection's
 * handles are closed; only then does on_close run. Meanwhile every send
 * answers GROVE_ECLOSED, and *_is_open says false: a loop that sends
 * (fan-out, replay, replies inside on_message) checks it after each send
 * and stops. */
struct ws;
struct ws_cbs {
  /* A complete text or binary message. */
  void (*on_message)(struct ws *ws, bool text, const uint8_t *data, size_t len);
  /* The connection is gone, from libuv's close callback (never inside a
   * send or on_message); ws is freed after this returns. */
  void (*on_close)(struct ws *ws, uint16_t code);
};

struct ws_cfg {
  uint64_t max_message;    /* received message; larger -> close 1009 */
  uint64_t max_queue;      /* bytes waiting to be sent; more -> close 1008 */
  uint64_t ping_interval_ms;
};

/* Answers the upgrade (101) and turns the connection into a WebSocket.
 * Validates the handshake; on a bad one answers 400/426 and returns NULL. */
struct ws *ws_accept(struct http_req *r, const struct ws_cfg *cfg,
                     const struct ws_cbs *cbs, void *user);
void *ws_user(const struct ws *ws);
const char *ws_request_id(const struct ws *ws);
/* Queues a text message (copied). Returns 0, or GROVE_EBUSY when the send
 * queue is over its limit (the connection is then closed with 1008),
 * or GROVE_ECLOSED. */
int ws_send_text(struct ws *ws, const char *data, size_t len);
/* Queues a frame built by ws_frame_text into a shared buffer: zero copy.
 * `release` is called with `owner` when the socket no longer needs it. */
int ws_send_shared(struct ws *ws, const uv_buf_t *frame,
                   void (*release)(void *owner), void *owner);
/* Writes the header of an unmasked final text frame of `len` bytes into
 * hdr (up to 10 bytes). Returns the header length. */
size_t ws_frame_header(uint8_t *hdr, size_t len);
void ws_close(struct ws *ws, uint16_t code, const char *reason);
/* false once the WebSocket is closing (its sends are then refused). */
bool ws_is_open(const struct ws *ws);

struct sse;
struct sse_cbs {
  /* From libuv's close callback, as ws_cbs.on_close; s is freed after. */
  void (*on_close)(struct sse *s);
};
/* Answers 200 text/event-stream and keeps the connection open. */
struct sse *sse_start(struct http_req *r, const struct sse_cbs *cbs, void *user,
                      uint64_t max_queue, uint64_t heartbeat_ms);
void *sse_user(const struct sse *s);
/* Shared, pre-formatted event text ("id: …\ndata: …\n\n"); as ws_send_shared. */
int sse_send_shared(struct sse *s, const uv_buf_t *ev, void (*release)(void *),
                    void *owner);
int sse_send(struct sse *s, const char *text, size_t len);
void sse_close(struct sse *s);
/* false once the stream is closing (its sends are then refused). */
bool sse_is_open(const struct sse *s);

/* ---- the server -------------------------------------------------------- */

struct http_server_hooks {
  /* Runs on each loop's thread before it accepts (e.g. per-loop state). */
  void (*loop_start)(uv_loop_t *loop, int index, void *arg);
  void (*loop_stop)(uv_loop_t *loop, int index, void *arg);
  void *arg;
};

/* Binds the listeners (so a port in use fails here, not later).
 * OUT: *port the port bound (useful with port 0). */
int http_server_create(struct http_server **out, const struct http_cfg *cfg,
                       struct router *router, struct metrics *metrics,
                       const struct http_server_hooks *hooks);
/* Runs the loops until http_server_stop; blocks the calling thread. Then
 * waits for the pools' jobs still running (http_req_spawn's). */
int http_server_run(struct http_server *s);
/* Thread- and signal-safe: stops accepting, finishes in-flight requests,
 * closes idle and upgraded connections, then http_server_run returns. */
void http_server_stop(struct http_server *s);
int http_server_port(const struct http_server *s);
int http_server_threads(const struct http_server *s);
void http_server_destroy(struct http_server *s);

#endif
