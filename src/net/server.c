/* server.c — event loops, listeners and connections of the HTTP server.
 *
 * Each loop thread owns a SO_REUSEPORT listener and the connections it
 * accepted. Reads land in the loop's shared buffer; only bytes that cannot
 * be handled yet are copied into the connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "net/conn.h"
#include "net/pool.h"
#include "net/router.h"

#define LINGER_MS 2000
#define PENDING_MAX (256 * 1024) /* read no more while a request is handled */

static void process(struct http_conn *c, const char *data, size_t n);
static void conn_cancel_jobs(struct http_conn *c);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b);

/* ------------------------------------------------------------------------ */
/* options */

const struct cfg_opt http_cfg_opts[] = {
    CFG_OPT(struct http_cfg, "listen", CFG_STR, listen, "127.0.0.1:8080", "address and port to serve HTTP on"),
    CFG_OPT(struct http_cfg, "threads", CFG_INT, threads, "0", "event loops (0: one per core)"),
    CFG_OPT(struct http_cfg, "max-url", CFG_SIZE, max_url, "8k", "longest request target; longer is answered 414"),
    CFG_OPT(struct http_cfg, "max-header", CFG_SIZE, max_header, "16k", "bytes of request headers; more is answered 431"),
    CFG_OPT(struct http_cfg, "max-headers", CFG_INT, max_headers, "100", "number of request headers; more is answered 431"),
    CFG_OPT(struct http_cfg, "max-body", CFG_SIZE, max_body, "8m", "request body size; more is answered 413"),
    CFG_OPT(struct http_cfg, "max-upload", CFG_SIZE, max_upload, "1g", "body size of an upload route (streamed to disk, never held in memory); more is answered 413"),
    CFG_OPT(struct http_cfg, "header-timeout", CFG_MS, header_timeout_ms, "10s", "time to send request line and headers; slower is answered 408"),
    CFG_OPT(struct http_cfg, "body-timeout", CFG_MS, body_timeout_ms, "60s", "time to send the body after the headers; slower is answered 408"),
    CFG_OPT(struct http_cfg, "idle-timeout", CFG_MS, idle_timeout_ms, "75s", "keep-alive connection with no request is closed after this"),
    CFG_OPT(struct http_cfg, "gzip-min", CFG_SIZE, gzip_min, "1k", "gzip responses at least this big when the client accepts it (0: never)"),
    CFG_OPT(struct http_cfg, "web-root", CFG_STR, web_root, "auto", "folder of the web console's static files; auto: the installed console, else ./web, else the source tree's; empty: none"),
    CFG_OPT(struct http_cfg, "shutdown-timeout", CFG_MS, shutdown_timeout_ms, "10s", "on SIGTERM, time allowed for in-flight requests"),
    CFG_OPT(struct http_cfg, "access-log", CFG_BOOL, access_log, "true", "log one line per request"),
    CFG_OPT(struct http_cfg, "max-body-decoded", CFG_SIZE, max_body_decoded, "64m", "largest a request body may inflate to through its Content-Encoding (a route may take less: --max-body for most); more is answered 413"),
    CFG_OPT(struct http_cfg, "pool-store-threads", CFG_INT, pool_store_threads, "4", "threads for short store work: database calls, the wait for a write's fsync, file reads"),
    CFG_OPT(struct http_cfg, "pool-store-queue", CFG_INT, pool_store_queue, "1024", "store jobs that may wait for a thread; more are answered 503 BUSY with Retry-After"),
    CFG_OPT(struct http_cfg, "pool-cpu-threads", CFG_INT, pool_cpu_threads, "2", "threads for CPU-heavy work: password hashing (argon2), inflating large request bodies"),
    CFG_OPT(struct http_cfg, "pool-cpu-queue", CFG_INT, pool_cpu_queue, "16", "CPU jobs that may wait for a thread; more are answered 503 BUSY with Retry-After"),
    CFG_OPT(struct http_cfg, "pool-wait-threads", CFG_INT, pool_wait_threads, "8", "threads for long waits on other servers: model answers, streamed answers"),
    CFG_OPT(struct http_cfg, "pool-wait-queue", CFG_INT, pool_wait_queue, "16", "long waits that may wait for a thread; more are answered 503 BUSY with Retry-After"),
    CFG_OPT(struct http_cfg, "pool-cpu-hold", CFG_STR, pool_cpu_hold, "", "tests only: while this file exists, jobs of the cpu pool wait before they start (empty: off)"),
};
const size_t http_cfg_nopts = ARRAY_LEN(http_cfg_opts);

/* ------------------------------------------------------------------------ */
/* writing */

struct wreq {
  uv_write_t w;
  struct http_conn *c;
  void (*release)(void *);
  void *owner;
  char data[]; /* copied bytes when release is NULL */
};

static void after_write(uv_write_t *w, int status) {
  struct wreq *wr = (struct wreq *)w;
  struct http_conn *c = wr->c;
  if (wr->release)
    wr->release(wr->owner);
  free(wr);
  if (status < 0 && !c->closing)
    conn_close(c);
}

bool (*conn_fault_write)(void);

size_t conn_queued(const struct http_conn *c) {
  return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

int conn_write(struct http_conn *c, const uv_buf_t *bufs, unsigned n,
               void (*release)(void *), void *owner) {
  if (c->closing || c->lingering) {
    if (release)
      release(owner);
    return GROVE_ECLOSED;
  }
  if (conn_fault_write && conn_fault_write()) {
    if (release)
      release(owner);
    conn_close(c);
    return GROVE_ECLOSED;
  }
  size_t total = 0;
  for (unsigned i = 0; i < n; i++)
    total += bufs[i].len;
  size_t done = 0;
  if (conn_queued(c) == 0) {
    int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    if (w > 0)
      done = (size_t)w;
    else if (w < 0 && w != UV_EAGAIN) {
      if (release)
        release(owner);
      conn_close(c);
      return GROVE_ECLOSED;
    }
  }
  if (done == total) {
    if (release)
      release(owner);
    return 0;
  }
  /* queue what is left */
  uv_buf_t rest[8];
  unsigned nr = 0;
  size_t skip = done, left = total - done;
  struct wreq *wr = malloc(sizeof *wr + (release ? 0 : left));
  if (!wr) {
    if (release)
      release(owner);
    conn_close(c);
    return GROVE_ECLOSED;
  }
  wr->c = c;
  wr->release = release;
  wr->owner = owner;
  char *dst = wr->data;
  for (unsigned i = 0; i < n; i++) {
    const char *base = bufs[i].base;
    size_t len = bufs[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    base += skip;
    len -= skip;
    skip = 0;
    if (release) {
      if (nr == ARRAY_LEN(rest))
        abort(); /* callers pass at most 8 buffers */
      rest[nr++] = uv_buf_init((char *)base, (unsigned)len);
    } else {
      memcpy(dst, base, len);
      dst += len;
    }
  }
  if (!release) {
    rest[0] = uv_buf_init(wr->data, (unsigned)left);
    nr = 1;
  }
  if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, rest, nr, after_write) < 0) {
    if (release)
      release(owner);
    free(wr);
    conn_close(c);
    return GROVE_ECLOSED;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* closing */

static void conn_free(struct http_conn *c) {
  if (c->hs) {
    http_in_release(&c->hs->in);
    buf_release(&c->hs->res_headers);
    buf_release(&c->hs->route_path);
    buf_release(&c->hs->body_dec);
    free(c->hs);
  }
  buf_release(&c->pending);
  free(c);
}

static void loop_maybe_finish(struct loop_ctx *lp);

/* The last handle is closed: libuv runs this from its close phase, never
 * inside another callback of this connection, so nothing up the stack
 * still uses the upgraded protocol's state (a WebSocket's wslay context
 * inside wslay_event_recv, a subscriber inside a replay loop). Only here
 * is it torn down. */
static void on_handle_closed(uv_handle_t *h) {
  struct http_conn *c = h->data;
  if (--c->handles_open > 0)
    return;
  struct loop_ctx *lp = c->lp;
  if (c->kind == CONN_HTTP && c->hs)
    stream_end(c, GROVE_ECLOSED); /* a body cut short: its consumer lets go */
  if (c->kind == CONN_WS)
    ws_on_conn_close(c);
  else if (c->kind == CONN_SSE)
    sse_on_conn_close(c);
  lp->nclosing--;
  if (c->works == 0)
    conn_free(c);
  /* else freed when the last deferred work comes back */
  loop_maybe_finish(lp);
}

void conn_close(struct http_conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  conn_cancel_jobs(c);
  struct loop_ctx *lp = c->lp;
  if (c->prev)
    c->prev->next = c->next;
  else
    lp->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  lp->nconns--;
  lp->nclosing++;
  metric_add(lp->srv->open_conns, -1);
  /* Closing is deferred: the connection, its WebSocket or event stream and
   * the hub's subscriber stay valid until on_handle_closed; meanwhile every
   * send on them answers GROVE_ECLOSED, so a loop that sends stops. */
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

void conn_abort(struct http_conn *c) {
  if (c->closing)
    return;
  /* close with RST: the kernel drops what is still unsent */
  struct linger lg = {1, 0};
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  conn_close(c);
}

static void on_linger_timeout(uv_timer_t *t) { conn_close(t->data); }

/* Everything written has left: give the client LINGER_MS to close its side. */
static void on_shutdown(uv_shutdown_t *req, int status) {
  struct http_conn *c = req->data;
  free(req);
  if (status != UV_ECANCELED && !c->closing)
    conn_timer(c, LINGER_MS, on_linger_timeout);
}

void conn_close_gracefully(struct http_conn *c) {
  if (c->closing || c->lingering)
    return;
  c->lingering = true;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (req)
    req->data = c;
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
    free(req);
    conn_close(c);
    return;
  }
  if (!c->reading) {
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  }
  /* a large answer may still be on its way: the linger starts once it has
   * left (on_shutdown); a client that stops reading is cut off after the
   * idle timeout */
  conn_timer(c, c->lp->srv->cfg.idle_timeout_ms, on_linger_timeout);
}

void conn_timer(struct http_conn *c, uint64_t ms, uv_timer_cb cb) {
  if (c->closing)
    return;
  if (!ms) {
    uv_timer_stop(&c->timer);
    return;
  }
  uv_timer_start(&c->timer, cb, ms, 0);
}

const char *loop_date(struct loop_ctx *lp) {
  time_t now = time(NULL);
  if ((uint64_t)now != lp->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    lp->date_len = strftime(lp->date, sizeof lp->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    lp->date_sec = (uint64_t)now;
  }
  return lp->date;
}

/* ------------------------------------------------------------------------ */
/* timeouts */

static void on_header_timeout(uv_timer_t *t) {
  struct http_conn *c = t->data;
  if (c->busy || c->kind != CONN_HTTP)
    return;
  http_send_error_raw(c, 408, "REQUEST_TIMEOUT", "request was not received in time", NULL);
}

static void on_idle_timeout(uv_timer_t *t) {
  struct http_conn *c = t->data;
  if (!c->busy)
    conn_close(c);
}

static bool stream_reading(const struct http_conn *c) {
  const struct http_state *hs = c->hs;
  return hs && hs->stream.on && hs->stream.attached && !hs->stream.paused && !hs->stream.ended;
}

static void on_stream_timeout(uv_timer_t *t) {
  struct http_conn *c = t->data;
  if (stream_reading(c))
    stream_end(c, GROVE_ETIMEOUT);
}

/* Sets the timer that fits the parser's state: waiting for headers, for a
 * body, or idle between requests. A streamed body's timer runs only while
 * the server reads it (a paused stream waits on the server, not on the
 * client). */
static void arm_read_timer(struct http_conn *c, bool fresh) {
  const struct http_cfg *cfg = &c->lp->srv->cfg;
  struct http_in *in = &c->hs->in;
  if (c->busy && c->hs->stream.on) {
    conn_timer(c, stream_reading(c) ? cfg->body_timeout_ms : 0, on_stream_timeout);
    return;
  }
  if (in->headers_done)
    conn_timer(c, cfg->body_timeout_ms, on_header_timeout);
  else if (in->started || fresh)
    conn_timer(c, cfg->header_timeout_ms, on_header_timeout);
  else
    conn_timer(c, cfg->idle_timeout_ms, on_idle_timeout);
}

/* ------------------------------------------------------------------------ */
/* reading and dispatch */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  struct http_conn *c = h->data;
  *b = uv_buf_init(c->lp->readbuf, sizeof c->lp->readbuf);
}

static void dispatch(struct http_conn *c);
static void route_request(struct http_conn *c);

static void drain_pending(struct http_conn *c) {
  while (!c->busy && !c->closing && c->kind == CONN_HTTP && c->pending.len) {
    struct buf b = c->pending;
    buf_init(&c->pending, 0);
    process(c, b.data, b.len);
    buf_release(&b);
  }
  if (c->closing || c->kind != CONN_HTTP || c->busy)
    return;
  if (c->peer_eof) {
    conn_close(c);
    return;
  }
  if (!c->reading && !c->lingering) {
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  }
  arm_read_timer(c, false);
}

int conn_dispatch_done(struct http_conn *c) {
  /* called by response.c when a request is finished */
  c->busy = false;
  if (c->hs) { /* the answer ended any streamed body: no callback runs after it */
    memset(&c->hs->stream, 0, sizeof c->hs->stream);
    memset(&c->hs->out, 0, sizeof c->hs->out);
  }
  if (c->closing)
    return 0;
  if (c->close_after) {
    conn_close_gracefully(c);
    return 0;
  }
  if (c->kind == CONN_HTTP) {
    http_in_next(&c->hs->in);
    if (c->hs->body_dec.cap > 64 * 1024)
      buf_release(&c->hs->body_dec);
    buf_reset(&c->hs->body_dec);
    c->hs->continue_sent = false;
    if (!c->dispatching)
      drain_pending(c);
  }
  return 0;
}

static int send_continue(struct http_conn *c) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
  c->hs->continue_sent = true;
  return conn_write(c, &b, 1, NULL, NULL);
}

/* A streamed body's piece, from the parser (http_in_sink). Returns 1 to
 * pause the parser: the consumer asked, answered, or the limit passed. */
static int stream_sink(void *arg, const char *at, size_t len) {
  struct http_conn *c = arg;
  struct http_state *hs = c->hs;
  if (!stream_reading(c) || !c->busy || c->closing)
    return 1;
  if (hs->stream.received + len > hs->stream.max) {
    stream_end(c, GROVE_ETOOBIG);
    return 1;
  }
  hs->stream.received += len;
  int rc = hs->stream.cbs.on_data(&hs->req, at, len, hs->stream.arg);
  if (rc == HTTP_BODY_PAUSE && c->hs && c->busy && !hs->stream.ended)
    hs->stream.paused = true;
  return stream_reading(c) && c->busy ? 0 : 1;
}

/* The headers of a request with a body are in: choose how its body is
 * read. A streamed route is dispatched now (its body waits for the
 * handler, http_req_stream); any other reads its body into memory as
 * before. Returns 0 to go on reading, -1 when the request was refused
 * (413) or the connection is gone. */
static int headers_in(struct http_conn *c) {
  struct http_state *hs = c->hs;
  struct http_in *in = &hs->in;
  const struct http_cfg *cfg = &c->lp->srv->cfg;
  uint64_t max = cfg->max_body, rmax = 0;
  bool streams = false;
  buf_reset(&hs->route_path);
  size_t need = (in->head.data ? strlen(in->head.data) : 0) + 2;
  if (!buf_reserve(&hs->route_path, need) &&
      http_in_peek_path(in, hs->route_path.data, hs->route_path.cap) == 0)
    streams = router_streams(c->lp->srv->router, http_in_method(in), hs->route_path.data, &rmax);
  if (streams)
    max = rmax ? rmax : cfg->max_upload;
  if ((in->parser.flags & F_CONTENTLENGTH) && in->parser.content_length > max) {
    in->want_continue = false;
    http_send_error_raw(c, 413, "BODY_TOO_LARGE", "request body is too large", NULL);
    return -1;
  }
  if (!streams) {
    http_in_body(in, max, NULL, NULL);
    http_in_resume(in);
    if (in->want_continue && !hs->continue_sent && send_continue(c))
      return -1; /* the client is gone: nothing of its request is handled */
    return 0;
  }
  http_in_body(in, max, stream_sink, c); /* the parser stays paused until attached */
  memset(&hs->stream, 0, sizeof hs->stream);
  hs->stream.on = true;
  hs->stream.max = max;
  c->busy = true;
  dispatch(c);
  return c->closing ? -1 : 0;
}

static void process(struct http_conn *c, const char *data, size_t n) {
  /* (a request that closes the connection after it, still has its
   * streamed body to read) */
  while (!c->closing && c->kind == CONN_HTTP &&
         (!c->close_after || (c->hs->stream.on && !c->hs->in.complete))) {
    if (c->busy && !stream_reading(c)) {
      if (n && buf_append(&c->pending, data, n)) {
        conn_close(c);
        return;
      }
      /* a streamed body waiting for its consumer: read no more now, so
       * that at most this piece is held (and an end of input is seen only
       * after the body before it) */
      bool waiting_body = c->hs->stream.on && !c->hs->in.complete;
      if ((c->pending.len > PENDING_MAX || (waiting_body && c->pending.len)) && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
      }
      if (waiting_body)
        arm_read_timer(c, false);
      return;
    }
    if (n == 0)
      break;
    struct http_state *hs = c->hs;
    enum http_in_state st;
    size_t used = http_in_feed(&hs->in, data, n, &st);
    if (hs->in.want_continue && !hs->continue_sent && st == HTTP_IN_MORE && !hs->stream.on) {
      if (send_continue(c))
        return; /* the client is gone: nothing of its request is handled */
    }
    if (st == HTTP_IN_ERROR) {
      if (hs->stream.on && c->busy) { /* a bad chunk in a streamed body */
        stream_end(c, GROVE_EPROTO);
        if (c->busy && !c->closing)
          http_reply_error(&hs->req, hs->in.err_status, hs->in.err_code, hs->in.err_msg, NULL);
        return;
      }
      http_send_error_raw(c, hs->in.err_status, hs->in.err_code, hs->in.err_msg, NULL);
      return;
    }
    data += used;
    n -= used;
    if (st == HTTP_IN_HEADERS) {
      if (headers_in(c))
        return;
      continue;
    }
    if (st == HTTP_IN_MORE) {
      if (n && used) /* a streamed body paused: the rest waits */
        continue;
      if (n) { /* paused with nothing taken: keep the bytes */
        if (buf_append(&c->pending, data, n))
          conn_close(c);
        return;
      }
      arm_read_timer(c, false);
      return;
    }
    /* a complete request */
    if (hs->stream.on) { /* its streamed body is complete */
      stream_end(c, 0);
      continue;
    }
    bool upgrade = http_in_upgrade(&hs->in);
    c->busy = true;
    if (upgrade && n) {
      /* bytes after an upgrade request belong to the new protocol */
      if (buf_append(&c->pending, data, n)) {
        conn_close(c);
        return;
      }
      n = 0;
    }
    dispatch(c);
    if (upgrade && c->kind == CONN_HTTP && !c->busy && !c->closing)
      c->close_after = true, conn_close_gracefully(c);
  }
  if (!c->closing && c->kind == CONN_HTTP && !c->busy && !c->close_after)
    arm_read_timer(c, false);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct http_conn *c = s->data;
  (void)b;
  if (c->closing)
    return;
  if (n < 0) {
    if (c->lingering) {
      conn_close(c);
      return;
    }
    uv_read_stop(s);
    c->reading = false;
    c->peer_eof = true;
    if (c->kind == CONN_HTTP && c->busy && c->hs->stream.on && !c->hs->in.complete) {
      conn_close(c); /* its body can never be complete: on_end(ECLOSED) follows */
      return;
    }
    if (c->kind == CONN_HTTP && c->busy) {
      conn_cancel_jobs(c); /* a job not started yet is dropped */
      return; /* answer, then close */
    }
    conn_close(c);
    return;
  }
  if (n == 0 || c->lingering)
    return;
  const char *data = c->lp->readbuf;
  switch (c->kind) {
  case CONN_HTTP:
    process(c, data, (size_t)n);
    break;
  case CONN_WS:
    ws_on_read(c, data, (size_t)n);
    break;
  case CONN_SSE:
    break; /* an event stream is one-way; input is dropped */
  }
}

/* Takes X-Request-Id when it is short and plain, else makes one. */
static void set_request_id(struct http_req *r) {
  const char *v = http_header_get(r, "x-request-id");
  if (v) {
    size_t n = strlen(v), i;
    for (i = 0; i < n; i++) {
      char ch = v[i];
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
        break;
    }
    if (n && i == n && n < sizeof r->id) {
      memcpy(r->id, v, n + 1);
      return;
    }
  }
  id_hex(r->id, 17);
}

static void dispatch(struct http_conn *c) {
  struct http_state *hs = c->hs;
  struct http_req *r = &hs->req;
  struct http_server *srv = c->lp->srv;
  memset(r, 0, sizeof *r);
  r->conn = c;
  hs->start_ns = clock_mono_ns();
  buf_reset(&hs->res_headers);
  hs->vary[0] = '\0';
  hs->dec_rc = 0;
  hs->predecoded = false;
  uv_timer_stop(&c->timer);
  int bad = http_in_request(&hs->in, r);
  set_request_id(r);
  if (!http_in_keep_alive(&hs->in) || c->lp->stopping)
    c->close_after = true;
  hs->route = router_unmatched(srv->router);
  r->route = hs->route->pattern;
  c->dispatching = true;
  if (bad) {
    http_reply_error(r, bad, "BAD_TARGET", "request target is not valid", NULL);
    goto out;
  }
  buf_reset(&hs->route_path);
  if (buf_append(&hs->route_path, r->path, strlen(r->path))) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    goto out;
  }
  if (router_run_before(srv->router, r) != HTTP_CONTINUE)
    goto out;
  route_request(c);
out:
  c->dispatching = false;
}

/* Runs the matched route's handler once the CPU pool decoded the body. */
static void run_handler(struct http_conn *c) {
  bool outer = c->dispatching;
  c->dispatching = true;
  c->hs->route->fn(&c->hs->req);
  c->dispatching = outer;
  if (!outer && !c->busy && !c->closing)
    drain_pending(c);
}

/* The routing half of dispatch: after the before-hook let r through. */
static void route_request(struct http_conn *c) {
  struct http_state *hs = c->hs;
  struct http_req *r = &hs->req;
  struct http_server *srv = c->lp->srv;
  char allow[128];
  struct route *route = NULL;
  if (strcmp(r->path, "*") == 0) { /* OPTIONS *: the server as a whole (RFC 9110 §9.3.7) */
    http_res_header(r, "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    http_reply(r, 204, NULL, NULL, 0);
    return;
  }
  enum route_match m = router_match(srv->router, r->method, hs->route_path.data, r, &route,
                                    allow, sizeof allow);
  if (m == ROUTE_FOUND) {
    hs->route = route;
    r->route = route->pattern;
    r->app = route->app;
    if (router_authorize(srv->router, route, r) && !body_decode_first(c, run_handler))
      route->fn(r);
  } else if (m == ROUTE_BAD_METHOD) {
    if (strcmp(r->method, "OPTIONS") == 0) {
      http_res_header(r, "Allow", allow);
      http_reply(r, 204, NULL, NULL, 0);
    } else {
      http_res_header(r, "Allow", allow);
      json_t *d = json_pack("{s:s}", "allow", allow);
      http_reply_error(r, 405, "METHOD_NOT_ALLOWED", "method is not allowed on this path", d);
    }
  } else if (router_fallback_route(srv->router) &&
             (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)) {
    hs->route = router_fallback_route(srv->router);
    r->route = hs->route->pattern;
    r->app = hs->route->app;
    hs->route->fn(r);
  } else {
    http_reply_error(r, 404, "NOT_FOUND", "no such route", NULL);
  }
}

void http_req_hold(struct http_req *r) { r->conn->works++; }

bool http_req_release(struct http_req *r) {
  struct http_conn *c = r->conn;
  c->works--;
  if (!c->closing)
    return true;
  if (c->works == 0 && c->handles_open == 0)
    conn_free(c);
  return false;
}

bool http_req_gone(const struct http_req *r) {
  return !r->conn || r->conn->closing || r->conn->peer_eof;
}

void http_req_continue(struct http_req *r) {
  struct http_conn *c = r->conn;
  if (c->closing || !c->hs || !c->busy)
    return;
  bool outer = c->dispatching;
  c->dispatching = true;
  route_request(c);
  c->dispatching = outer;
  if (!outer && !c->busy && !c->closing)
    drain_pending(c);
}

/* ------------------------------------------------------------------------ */
/* streamed request bodies */

void stream_end(struct http_conn *c, int err) {
  struct http_state *hs = c->hs;
  if (!hs || !hs->stream.attached || hs->stream.ended)
    return;
  hs->stream.ended = true;
  if (!c->closing)
    uv_timer_stop(&c->timer);
  bool outer = c->dispatching;
  c->dispatching = true;
  hs->stream.cbs.on_end(&hs->req, err, hs->stream.arg);
  c->dispatching = outer;
  if (c->closing || !c->busy)
    return;
  if (err == GROVE_ETOOBIG)
    http_reply_error(&hs->req, 413, "BODY_TOO_LARGE", "request body is too large",
                     json_pack("{s:I}", "max_bytes", (json_int_t)hs->stream.max));
  else if (err == GROVE_ETIMEOUT)
    http_reply_error(&hs->req, 408, "REQUEST_TIMEOUT", "request body was not received in time",
                     NULL);
}

/* Feeds what waits of a stream that may read again, then reads the
 * socket. */
static void stream_pump(struct http_conn *c) {
  http_in_resume(&c->hs->in);
  bool outer = c->dispatching;
  c->dispatching = true;
  if (c->pending.len) {
    struct buf b = c->pending;
    buf_init(&c->pending, 0);
    process(c, b.data, b.len);
    buf_release(&b);
  }
  c->dispatching = outer;
  if (c->closing || c->kind != CONN_HTTP)
    return;
  if (!c->busy) { /* answered meanwhile */
    if (!outer)
      drain_pending(c);
    return;
  }
  if (stream_reading(c) && !c->pending.len && !c->reading && !c->lingering && !c->peer_eof) {
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  }
  arm_read_timer(c, false);
}

int http_req_stream(struct http_req *r, const struct http_body_cbs *cbs, void *arg) {
  struct http_conn *c = r->conn;
  if (!c || c->closing || !c->hs)
    return GROVE_ECLOSED;
  struct http_state *hs = c->hs;
  if (!c->busy || r != &hs->req || !hs->route || !hs->route->stream_body ||
      hs->stream.attached || !cbs || !cbs->on_data || !cbs->on_end)
    return GROVE_EINVAL;
  if (!hs->stream.on) { /* no body at all: it is complete now */
    hs->stream.attached = hs->stream.ended = true;
    cbs->on_end(r, 0, arg);
    return 0;
  }
  if (hs->in.want_continue && !hs->continue_sent && send_continue(c))
    return GROVE_ECLOSED;
  hs->stream.attached = true;
  hs->stream.cbs = *cbs;
  hs->stream.arg = arg;
  stream_pump(c);
  return 0;
}

void http_req_stream_resume(struct http_req *r) {
  struct http_conn *c = r->conn;
  if (!c || c->closing || !c->hs || r != &c->hs->req || !c->hs->stream.paused)
    return;
  c->hs->stream.paused = false;
  if (!c->hs->stream.ended)
    stream_pump(c);
}

uint64_t http_req_stream_received(const struct http_req *r) {
  return r->conn && r->conn->hs ? r->conn->hs->stream.received : 0;
}

int64_t http_req_content_length(const struct http_req *r) {
  const char *v = http_header_get(r, "content-length");
  if (!v || http_header_get(r, "transfer-encoding"))
    return -1;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (end == v || *end || errno || n > INT64_MAX)
    return -1;
  return (int64_t)n;
}

/* ------------------------------------------------------------------------ */
/* deferred work */

/* A job of a pool for a request (c set) or for no request (spawned). It
 * stays on its connection's list until handed back, so a client that goes
 * can drop it while it is still queued. */
struct defer {
  struct pool_job job;          /* first: the pool's view */
  struct defer *fnext;          /* the loop's finished list, under pool_mu */
  struct defer *cprev, *cnext;  /* the connection's jobs (loop thread) */
  struct loop_ctx *lp;          /* NULL: spawned */
  struct http_conn *c;
  struct pool *pool;
  bool droppable;               /* cpu and wait jobs: dropped when the client goes */
  bool ran;
  http_work_fn work;
  http_done_fn done;
  void *arg;
};

/* Hands d back to its loop (any thread). Once on the list the loop may
 * free d: nothing here touches it after. */
static void defer_hand_back(struct defer *d) {
  struct loop_ctx *lp = d->lp;
  pthread_mutex_lock(&lp->pool_mu);
  d->fnext = lp->done_jobs;
  lp->done_jobs = d;
  uv_async_send(&lp->pool_async);
  pthread_mutex_unlock(&lp->pool_mu);
}

static void defer_run(struct pool_job *j, bool cancelled) {
  struct defer *d = (struct defer *)j;
  if (!cancelled) {
    d->work(d->arg);
    d->ran = true;
  }
  if (!d->lp) { /* spawned: the work owned its argument */
    free(d);
    return;
  }
  defer_hand_back(d);
}

/* On the loop: the job is back (done, or dropped before it ran). */
static void defer_complete(struct defer *d) {
  struct http_conn *c = d->c;
  struct loop_ctx *lp = d->lp;
  if (d->cprev)
    d->cprev->cnext = d->cnext;
  else
    c->jobs = d->cnext;
  if (d->cnext)
    d->cnext->cprev = d->cprev;
  c->works--;
  lp->jobs--;
  if (!d->ran && !c->closing)
    conn_close(c); /* dropped because the client went: nothing to answer */
  if (c->closing) {
    /* the client went away: let done clean up; its reply is dropped */
    struct http_req gone = {0};
    d->done(&gone, d->arg);
    if (c->works == 0 && c->handles_open == 0)
      conn_free(c);
  } else {
    d->done(&c->hs->req, d->arg);
  }
  free(d);
  if (lp->stopping)
    loop_maybe_finish(lp);
}

static void on_pool_done(uv_async_t *a) {
  struct loop_ctx *lp = a->data;
  pthread_mutex_lock(&lp->pool_mu);
  struct defer *list = lp->done_jobs, *fifo = NULL;
  lp->done_jobs = NULL;
  pthread_mutex_unlock(&lp->pool_mu);
  while (list) { /* the list is newest first: hand back in the order finished */
    struct defer *next = list->fnext;
    list->fnext = fifo;
    fifo = list;
    list = next;
  }
  while (fifo) {
    struct defer *next = fifo->fnext;
    defer_complete(fifo);
    fifo = next;
  }
}

/* The client went away (closed, reset, or half-closed while its request
 * waits): its queued cpu and wait jobs leave their pools unrun and come
 * back through the loop's list, never inside this call. */
static void conn_cancel_jobs(struct http_conn *c) {
  for (struct defer *d = c->jobs; d; d = d->cnext)
    if (d->droppable && pool_cancel(d->pool, &d->job))
      defer_hand_back(d);
}

static void answer_busy(struct http_req *r, struct pool *p) {
  char msg[128];
  snprintf(msg, sizeof msg, "the server's %s pool is full; retry after the time given",
           pool_name(p));
  http_res_header(r, "Retry-After", "1");
  http_reply_error(r, 503, "BUSY", msg,
                   json_pack("{s:s,s:i}", "pool", pool_name(p), "retry_after_s", 1));
}

static int defer_start(struct http_req *r, enum http_pool pool, http_work_fn work,
                       http_done_fn done, void *arg, bool spawn) {
  struct http_conn *c = r->conn;
  if (!c || c->closing)
    return GROVE_ECLOSED;
  struct pool *p = c->lp->srv->pools[pool];
  struct defer *d = calloc(1, sizeof *d);
  if (!d) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return GROVE_ENOMEM;
  }
  d->job.run = defer_run;
  d->pool = p;
  d->work = work;
  d->done = done;
  d->arg = arg;
  d->droppable = pool != HTTP_POOL_STORE;
  if (!spawn) {
    d->lp = c->lp;
    d->c = c;
  }
  if (pool_submit(p, &d->job)) {
    free(d);
    answer_busy(r, p);
    return GROVE_EBUSY;
  }
  if (spawn)
    return 0; /* d is the pool's now */
  /* on the loop thread: a pool thread can hand d back only to this loop,
   * which reads these after this callback returns */
  d->cnext = c->jobs;
  if (c->jobs)
    c->jobs->cprev = d;
  c->jobs = d;
  c->works++;
  c->lp->jobs++;
  return 0;
}

int http_req_defer(struct http_req *r, enum http_pool pool, http_work_fn work, http_done_fn done,
                   void *arg) {
  return defer_start(r, pool, work, done, arg, false);
}

int http_req_spawn(struct http_req *r, enum http_pool pool, http_work_fn work, void *arg) {
  return defer_start(r, pool, work, NULL, arg, true);
}

void http_req_peer(const struct http_req *r, char *out, size_t n) {
  if (r->client[0])
    snprintf(out, n, "%s", r->client);
  else
    http_req_socket_peer(r, out, n);
}

void http_req_set_client(struct http_req *r, const char *addr) {
  snprintf(r->client, sizeof r->client, "%s", addr);
}

void http_req_socket_peer(const struct http_req *r, char *out, size_t n) {
  struct http_conn *c = r->conn;
  snprintf(out, n, "-");
  if (!c)
    return;
  if (!c->peer[0]) { /* asked once per connection: the access log asks on every request */
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
      return;
    if (ss.ss_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
    else if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    else
      return;
  }
  snprintf(out, n, "%s", c->peer);
}

uv_loop_t *http_req_loop(const struct http_req *r) {
  return r->conn ? &r->conn->lp->loop : NULL;
}

/* ------------------------------------------------------------------------ */
/* accepting */

static void on_connection(uv_stream_t *server, int status) {
  struct loop_ctx *lp = server->data;
  if (status < 0 || lp->stopping)
    return;
  struct http_conn *c = calloc(1, sizeof *c);
  struct http_state *hs = calloc(1, sizeof *hs);
  if (!c || !hs) {
    free(c);
    free(hs);
    log_error(NULL, "cannot accept connection: out of memory", NULL);
    return;
  }
  c->lp = lp;
  c->hs = hs;
  http_in_init(&hs->in, &lp->srv->cfg);
  hs->in.stop_at_headers = true;
  buf_init(&hs->res_headers, 64 * 1024);
  buf_init(&hs->route_path, 0);
  buf_init(&hs->body_dec, 0);
  buf_init(&c->pending, 0);
  uv_tcp_init(&lp->loop, &c->tcp);
  uv_timer_init(&lp->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    c->closing = true;
    lp->nclosing++;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->next = lp->conns;
  if (lp->conns)
    lp->conns->prev = c;
  lp->conns = c;
  lp->nconns++;
  metric_add(lp->srv->open_conns, 1);
  metric_add(lp->srv->accepted, 1);
  c->reading = true;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  arm_read_timer(c, true);
}

void conn_upgrade(struct http_conn *c, enum conn_kind kind) {
  c->kind = kind;
  http_in_release(&c->hs->in);
  buf_release(&c->hs->res_headers);
  buf_release(&c->hs->route_path);
  buf_release(&c->hs->body_dec);
  free(c->hs);
  c->hs = NULL;
  c->busy = false;
  c->close_after = false;
  uv_timer_stop(&c->timer);
}

/* ------------------------------------------------------------------------ */
/* loops */

static int parse_listen(const char *s, struct sockaddr_storage *ss) {
  char host[256];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host)
    return GROVE_ECONFIG;
  size_t hl = (size_t)(colon - s);
  memcpy(host, s, hl);
  host[hl] = '\0';
  char *h = host;
  if (h[0] == '[' && hl > 1 && h[hl - 1] == ']') {
    h[hl - 1] = '\0';
    h++;
  }
  if (!*h)
    h = (char *)"0.0.0.0";
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535)
    return GROVE_ECONFIG;
  if (uv_ip4_addr(h, (int)port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(h, (int)port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return GROVE_ECONFIG;
}

/* SO_REUSEPORT would let a second process share a port already served:
 * check with a plain bind first, so "address in use" is reported. */
static int port_free(const struct sockaddr_storage *ss) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return GROVE_EIO;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t alen = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  int rc = bind(fd, (const struct sockaddr *)ss, alen) < 0 ? (errno == EADDRINUSE ? GROVE_EBUSY : GROVE_EIO) : 0;
  close(fd);
  return rc;
}

static int open_listener(struct loop_ctx *lp, const struct sockaddr_storage *ss, int *port) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return GROVE_EIO;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_storage a = *ss;
  if (*port) { /* later loops bind the port the first one got */
    if (a.ss_family == AF_INET)
      ((struct sockaddr_in *)&a)->sin_port = htons((uint16_t)*port);
    else
      ((struct sockaddr_in6 *)&a)->sin6_port = htons((uint16_t)*port);
  }
  socklen_t alen = a.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  if (bind(fd, (struct sockaddr *)&a, alen) < 0 || listen(fd, 1024) < 0) {
    int e = errno;
    close(fd);
    return e == EADDRINUSE ? GROVE_EBUSY : GROVE_EIO;
  }
  if (!*port) {
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(fd, (struct sockaddr *)&got, &gl);
    *port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                           : ((struct sockaddr_in6 *)&got)->sin6_port);
  }
  uv_tcp_init(&lp->loop, &lp->listener);
  lp->listener.data = lp;
  if (uv_tcp_open(&lp->listener, fd) < 0) {
    close(fd);
    return GROVE_EIO;
  }
  return 0;
}

static void on_stop_timer(uv_timer_t *t) {
  /* shutdown grace is over: close whatever is left */
  struct loop_ctx *lp = t->data;
  while (lp->conns)
    conn_close(lp->conns);
}

static void loop_maybe_finish(struct loop_ctx *lp) {
  if (!lp->stopping || lp->nconns || lp->nclosing || lp->jobs || lp->finished)
    return;
  lp->finished = true;
  uv_close((uv_handle_t *)&lp->pool_async, NULL);
  if (lp->srv->hooks.loop_stop)
    lp->srv->hooks.loop_stop(&lp->loop, lp->index, lp->srv->hooks.arg);
  uv_close((uv_handle_t *)&lp->stop_async, NULL);
  uv_close((uv_handle_t *)&lp->stop_timer, NULL);
}

static void on_stop(uv_async_t *a) {
  struct loop_ctx *lp = a->data;
  if (lp->stopping)
    return;
  lp->stopping = true;
  uv_close((uv_handle_t *)&lp->listener, NULL);
  struct http_conn *c = lp->conns;
  while (c) {
    struct http_conn *next = c->next;
    if (c->kind == CONN_WS)
      ws_on_shutdown(c);
    else if (c->kind == CONN_SSE)
      conn_close(c);
    else if (c->busy)
      c->close_after = true; /* finish the request, then close */
    else if (!c->hs->in.started)
      conn_close(c); /* idle keep-alive */
    /* else a request is arriving: it is answered with Connection: close */
    c = next;
  }
  uv_timer_start(&lp->stop_timer, on_stop_timer, lp->srv->cfg.shutdown_timeout_ms, 0);
  uv_unref((uv_handle_t *)&lp->stop_timer);
  loop_maybe_finish(lp);
}

static void loop_thread(void *arg) {
  struct loop_ctx *lp = arg;
  if (lp->srv->hooks.loop_start)
    lp->srv->hooks.loop_start(&lp->loop, lp->index, lp->srv->hooks.arg);
  uv_run(&lp->loop, UV_RUN_DEFAULT);
}

int http_server_create(struct http_server **out, const struct http_cfg *cfg,
                       struct router *router, struct metrics *metrics,
                       const struct http_server_hooks *hooks) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (parse_listen(cfg->listen, &ss)) {
    log_error(NULL, "bad listen address", "listen=%s", cfg->listen);
    return GROVE_ECONFIG;
  }
  struct http_server *s = calloc(1, sizeof *s);
  if (!s)
    return GROVE_ENOMEM;
  s->cfg = *cfg;
  s->router = router;
  s->metrics = metrics;
  if (hooks)
    s->hooks = *hooks;
  if (metrics) {
    s->open_conns = metric_get(metrics_family(metrics, "grove_http_connections",
                                              "Open client connections (HTTP, WebSocket and SSE).",
                                              METRIC_GAUGE, ""));
    s->accepted = metric_get(metrics_family(metrics, "grove_http_connections_accepted_total",
                                            "Client connections accepted.", METRIC_COUNTER, ""));
  }
  uint64_t hmax = cfg->max_url + cfg->max_header + 1024;
  http_parser_set_max_header_size(hmax > UINT32_MAX ? UINT32_MAX : (uint32_t)hmax);
  int n = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1)
    n = 1;
  s->loops = calloc((size_t)n, sizeof *s->loops);
  if (!s->loops) {
    free(s);
    return GROVE_ENOMEM;
  }
  int rc = 0;
  bool any_port = ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port == 0
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port == 0;
  if (!any_port && (rc = port_free(&ss))) {
    log_error(NULL, "cannot listen", "listen=%s error=\"%s\"", cfg->listen,
              rc == GROVE_EBUSY ? "address in use" : strerror(errno));
    free(s->loops);
    free(s);
    return rc;
  }
  for (int i = 0; i < n; i++) {
    struct loop_ctx *lp = calloc(1, sizeof *lp);
    if (!lp) {
      rc = GROVE_ENOMEM;
      break;
    }
    s->loops[i] = lp;
    s->nloops = i + 1;
    lp->srv = s;
    lp->index = i;
    uv_loop_init(&lp->loop);
    uv_async_init(&lp->loop, &lp->stop_async, on_stop);
    lp->stop_async.data = lp;
    uv_timer_init(&lp->loop, &lp->stop_timer);
    lp->stop_timer.data = lp;
    uv_async_init(&lp->loop, &lp->pool_async, on_pool_done);
    lp->pool_async.data = lp;
    pthread_mutex_init(&lp->pool_mu, NULL);
    if ((rc = open_listener(lp, &ss, &s->port))) {
      log_error(NULL, "cannot listen", "listen=%s error=\"%s\"", cfg->listen,
                rc == GROVE_EBUSY ? "address in use" : strerror(errno));
      uv_close((uv_handle_t *)&lp->stop_async, NULL);
      uv_close((uv_handle_t *)&lp->stop_timer, NULL);
      uv_close((uv_handle_t *)&lp->pool_async, NULL);
      pthread_mutex_destroy(&lp->pool_mu);
      uv_run(&lp->loop, UV_RUN_DEFAULT);
      uv_loop_close(&lp->loop);
      free(lp);
      s->loops[i] = NULL;
      s->nloops = i;
      break;
    }
  }
  const struct pool_cfg pools[HTTP_POOLS] = {
      [HTTP_POOL_STORE] = {"store", cfg->pool_store_threads, cfg->pool_store_queue, NULL},
      [HTTP_POOL_CPU] = {"cpu", cfg->pool_cpu_threads, cfg->pool_cpu_queue, cfg->pool_cpu_hold},
      [HTTP_POOL_WAIT] = {"wait", cfg->pool_wait_threads, cfg->pool_wait_queue, NULL},
  };
  for (int i = 0; i < HTTP_POOLS && !rc; i++)
    if ((rc = pool_create(&s->pools[i], &pools[i], metrics)))
      log_error(NULL, "cannot start a worker pool",
                "pool=%s threads=%d queue=%d error=\"%s\"", pools[i].name, pools[i].threads,
                pools[i].queue,
                rc == GROVE_EINVAL ? "--pool-*-threads must be 1 to 1024 and --pool-*-queue 0 to 1000000"
                                   : "out of memory");
  if (rc) {
    http_server_destroy(s);
    return rc;
  }
  *out = s;
  return 0;
}

int http_server_run(struct http_server *s) {
  for (int i = 0; i < s->nloops; i++) {
    struct loop_ctx *lp = s->loops[i];
    if (uv_listen((uv_stream_t *)&lp->listener, 1024, on_connection) < 0)
      return GROVE_EIO;
  }
  for (int i = 1; i < s->nloops; i++)
    uv_thread_create(&s->loops[i]->thread, loop_thread, s->loops[i]);
  loop_thread(s->loops[0]);
  for (int i = 1; i < s->nloops; i++)
    uv_thread_join(&s->loops[i]->thread);
  /* every request's job came back before its loop ended; spawned ones
   * (streamed answers) may still run: the apps stop after them */
  for (int i = 0; i < HTTP_POOLS; i++)
    if (s->pools[i])
      pool_drain(s->pools[i]);
  return 0;
}

void http_server_stop(struct http_server *s) {
  for (int i = 0; i < s->nloops; i++)
    uv_async_send(&s->loops[i]->stop_async);
}

int http_server_port(const struct http_server *s) { return s->port; }
int http_server_threads(const struct http_server *s) { return s->nloops; }

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

void http_server_destroy(struct http_server *s) {
  if (!s)
    return;
  for (int i = 0; i < s->nloops; i++) {
    struct loop_ctx *lp = s->loops[i];
    if (!lp)
      continue;
    uv_walk(&lp->loop, close_any, NULL);
    uv_run(&lp->loop, UV_RUN_DEFAULT);
    uv_loop_close(&lp->loop);
    buf_release(&lp->out);
    pthread_mutex_destroy(&lp->pool_mu);
    free(lp);
  }
  free(s->loops);
  for (int i = 0; i < HTTP_POOLS; i++)
    pool_destroy(s->pools[i]);
  free(s);
}
