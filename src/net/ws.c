/* ws.c — WebSocket connections (RFC 6455) on wslay.
 *
 * wslay parses incoming frames (masking, fragmentation, control frames,
 * the maximum message size) and answers pings and closes; its send
 * callback copies into the connection's write queue, so it never holds a
 * half-sent frame and Grove's own shared frames (one buffer for every
 * subscriber of a message) can be queued between its calls. A client whose
 * queue passes max_queue bytes is closed with 1008.
 *
 * wslay's context takes about 9 KiB, more than the rest of a connection.
 * It is made when a client's bytes arrive and freed again when they end on
 * a frame boundary outside a fragmented message with nothing left to send
 * (Grove tracks frame boundaries itself, below): an idle subscriber costs
 * about a kilobyte. Grove writes its own pings. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "net/conn.h"

#define CLOSE_GRACE_MS 1000

/* Where the client's byte stream stands: inside a frame header, inside a
 * payload, or at a boundary (have == 0 && left == 0). */
struct ws_scan {
  uint8_t hdr[14];
  uint8_t have;
  bool fragmented; /* a data message is open across frames */
  uint64_t left;   /* payload bytes still to come */
};

struct ws {
  wslay_event_context_ptr ctx; /* NULL while idle at a frame boundary */
  struct ws_scan scan;
  struct http_conn *c;       /* NULL for a detached codec (tests, fuzzing) */
  struct buf *out;           /* detached codec: where frames go */
  struct ws_cbs cbs;
  void *user;
  struct ws_cfg cfg;
  const uint8_t *rd;
  size_t rd_len;
  uint64_t last_recv_ms;
  uint16_t close_code;
  bool closing;
  /* the close frame being received: its payload (at most 125 bytes, as
   * for every control frame) gathered to check its code */
  bool in_close;
  uint8_t close_len;
  uint8_t close_buf[125];
  char rid[24];
};

void *ws_user(const struct ws *ws) { return ws->user; }
const char *ws_request_id(const struct ws *ws) { return ws->rid; }

bool utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

/* ---- frame boundaries ---------------------------------------------------- */

static void scan(struct ws_scan *sc, const uint8_t *p, size_t n) {
  while (n) {
    if (sc->left) {
      size_t k = n < sc->left ? n : (size_t)sc->left;
      p += k;
      n -= k;
      sc->left -= k;
      continue;
    }
    sc->hdr[sc->have++] = *p++;
    n--;
    if (sc->have < 2)
      continue;
    uint8_t l7 = sc->hdr[1] & 0x7f;
    size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((sc->hdr[1] & 0x80) ? 4 : 0);
    if (sc->have < need)
      continue;
    uint64_t len = l7;
    if (l7 == 126) {
      len = (uint64_t)sc->hdr[2] << 8 | sc->hdr[3];
    } else if (l7 == 127) {
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | sc->hdr[2 + i];
    }
    if ((sc->hdr[0] & 0x0f) < 8) /* data or continuation, not control */
      sc->fragmented = !(sc->hdr[0] & 0x80);
    sc->left = len;
    sc->have = 0;
  }
}

static const struct wslay_event_callbacks callbacks;

/* Close codes a peer may send (RFC 6455 §7.4.1 and the IANA "WebSocket
 * Close Code Number Registry": 1012 service restart, 1013 try again later
 * and 1014 bad gateway were registered after the RFC; 1004-1006 and 1015
 * must never be sent; 1016-2999 are reserved; 3000-4999 are for libraries
 * and applications). */
static bool close_code_valid(uint16_t code) {
  return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
         (code >= 3000 && code <= 4999);
}

static int ctx_need(struct ws *ws) {
  if (ws->ctx)
    return 0;
  if (wslay_event_context_server_init(&ws->ctx, &callbacks, ws) != 0)
    return GROVE_ENOMEM;
  wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->cfg.max_message);
  return 0;
}

/* Frees the context when it holds nothing worth keeping. */
static void ctx_maybe_free(struct ws *ws) {
  if (ws->ctx && !ws->closing && ws->scan.have == 0 && ws->scan.left == 0 &&
      !ws->scan.fragmented && !wslay_event_want_write(ws->ctx) &&
      wslay_event_get_read_enabled(ws->ctx) && !wslay_event_get_close_received(ws->ctx) &&
      !wslay_event_get_close_sent(ws->ctx)) {
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
  }
}

/* ---- wslay callbacks ---------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user) {
  struct ws *ws = user;
  (void)flags;
  if (ws->c && ws->c->closing) {
    /* a reply failed and closed the connection: read no further frames */
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  if (!ws->rd_len) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < ws->rd_len ? len : ws->rd_len;
  memcpy(buf, ws->rd, n);
  ws->rd += n;
  ws->rd_len -= n;
  return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                       int flags, void *user) {
  struct ws *ws = user;
  (void)flags;
  if (!ws->c) {
    if (buf_append(ws->out, data, len)) {
      wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
      return -1;
    }
    return (ssize_t)len;
  }
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  if (conn_write(ws->c, &b, 1, NULL, NULL)) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

/* wslay echoes a close frame's code after checking it with its own table,
 * which lacks 1012-1014, and echoes a one-byte payload (no room for a
 * code) as an empty close. Grove looks at the close frame first and
 * queues the answer RFC 6455 §5.5.1 and §7.4 ask for; wslay's own answer
 * then finds a close already queued and is dropped. */
static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *a, void *user) {
  struct ws *ws = user;
  ws->in_close = a->opcode == WSLAY_CONNECTION_CLOSE;
  ws->close_len = 0;
  if (ws->in_close && a->payload_length == 0) { /* no code: answer a normal close */
    wslay_event_queue_close(ctx, 1000, NULL, 0);
  } else if (ws->in_close && a->payload_length == 1) {
    static const char why[] = "close frame payload of one byte";
    wslay_event_queue_close(ctx, 1002, (const uint8_t *)why, sizeof why - 1);
    if (!ws->close_code)
      ws->close_code = 1002;
  }
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *a, void *user) {
  struct ws *ws = user;
  (void)ctx;
  if (!ws->in_close)
    return;
  size_t room = sizeof ws->close_buf - ws->close_len;
  size_t n = a->data_length < room ? a->data_length : room;
  memcpy(ws->close_buf + ws->close_len, a->data, n);
  ws->close_len = (uint8_t)(ws->close_len + n);
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user) {
  struct ws *ws = user;
  if (!ws->in_close || ws->close_len < 2)
    return;
  ws->in_close = false;
  uint16_t code = (uint16_t)(ws->close_buf[0] << 8 | ws->close_buf[1]);
  if (!close_code_valid(code)) {
    static const char why[] = "invalid close code";
    wslay_event_queue_close(ctx, 1002, (const uint8_t *)why, sizeof why - 1);
    if (!ws->close_code)
      ws->close_code = 1002;
    return;
  }
  if (code >= 1012 && code <= 1014) { /* valid, but not to wslay: echo it here */
    wslay_event_queue_close(ctx, code, ws->close_buf + 2, ws->close_len - 2u);
    if (!ws->close_code)
      ws->close_code = code;
  }
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                   void *user) {
  struct ws *ws = user;
  if (ws->c && ws->c->closing)
    return;
  if (a->opcode == WSLAY_CONNECTION_CLOSE) {
    if (!ws->close_code)
      ws->close_code = a->status_code ? a->status_code : 1005;
    return;
  }
  if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME)
    return;
  if (ws->closing)
    return;
  if (a->opcode == WSLAY_TEXT_FRAME && !utf8_valid(a->msg, a->msg_length)) {
    static const char why[] = "text message is not valid UTF-8";
    wslay_event_queue_close(ctx, 1007, (const uint8_t *)why, sizeof why - 1);
    ws->closing = true;
    return;
  }
  if (ws->cbs.on_message)
    ws->cbs.on_message(ws, a->opcode == WSLAY_TEXT_FRAME, a->msg, a->msg_length);
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_frame_recv_start_callback = on_frame_start,
    .on_frame_recv_chunk_callback = on_frame_chunk,
    .on_frame_recv_end_callback = on_frame_end,
    .on_msg_recv_callback = on_msg};

/* The peer broke framing in a way wslay reports only as a failed read (a
 * control frame longer than 125 bytes or fragmented, a bad length): wslay
 * then has an empty close queued. Fail the connection with 1002 instead
 * (RFC 6455 §7.1.7), written directly unless a close went out already. */
static void fail_protocol(struct ws *ws) {
  static const uint8_t frame[] = {0x88, 0x02, 0x03, 0xea}; /* close 1002 */
  if (ws->ctx && wslay_event_get_close_sent(ws->ctx))
    return;
  if (!ws->close_code)
    ws->close_code = 1002;
  if (!ws->c) {
    buf_append(ws->out, frame, sizeof frame);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)frame, sizeof frame);
  conn_write(ws->c, &b, 1, NULL, NULL);
}

/* ---- driving ------------------------------------------------------------ */

static void on_close_timeout(uv_timer_t *t) { conn_close(t->data); }
static void on_abort_timeout(uv_timer_t *t) { conn_abort(t->data); }

/* A close wslay sent by itself (1002, 1007, 1009 for a bad frame) is the
 * code the connection ends with. */
static void note_close_sent(struct ws *ws) {
  if (!ws->close_code && wslay_event_get_close_sent(ws->ctx))
    ws->close_code = wslay_event_get_status_code_sent(ws->ctx);
}

/* Sends what wslay queued; closes the connection when both sides are done. */
static void pump(struct ws *ws) {
  struct http_conn *c = ws->c;
  if (!ws->ctx)
    return;
  if (!c) {
    int rc = wslay_event_send(ws->ctx);
    note_close_sent(ws);
    if (rc < 0 ||
        (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx)))
      ws->closing = true;
    return;
  }
  if (c->closing)
    return;
  if (wslay_event_send(ws->ctx) < 0) {
    conn_close(c);
    return;
  }
  note_close_sent(ws);
  if (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx)) {
    ws->closing = true;
    conn_close_gracefully(c);
    return;
  }
  if (wslay_event_get_close_sent(ws->ctx) && !ws->closing) {
    ws->closing = true;
    conn_timer(c, CLOSE_GRACE_MS, on_close_timeout);
  }
}

static void on_ping_timer(uv_timer_t *t) {
  struct http_conn *c = t->data;
  struct ws *ws = c->up.ws;
  if (c->closing || ws->closing)
    return;
  uint64_t now = clock_wall_ms();
  if (now - ws->last_recv_ms > 2 * ws->cfg.ping_interval_ms) {
    log_info(ws->rid, "websocket peer is not answering, closing", "idle_ms=%llu",
             (unsigned long long)(now - ws->last_recv_ms));
    conn_close(c);
    return;
  }
  static const char ping[] = "\x89\x00"; /* FIN + ping, no payload */
  uv_buf_t b = uv_buf_init((char *)ping, 2);
  pump(ws); /* anything wslay queued goes first */
  conn_write(c, &b, 1, NULL, NULL);
  conn_timer(c, ws->cfg.ping_interval_ms, on_ping_timer);
}

void ws_on_read(struct http_conn *c, const char *data, size_t n) {
  struct ws *ws = c->up.ws;
  ws->last_recv_ms = clock_wall_ms();
  if (ctx_need(ws)) {
    conn_close(c);
    return;
  }
  ws->rd = (const uint8_t *)data;
  ws->rd_len = n;
  /* A reply sent from inside wslay_event_recv may fail and close c: ws
   * and its context stay valid (closing is deferred to the close
   * callback), recv_cb then ends the read, and nothing more is done. */
  if (c->closing) {
    conn_close(c);
    return;
  }
  if (wslay_event_recv(ws->ctx) < 0) {
    ws->rd_len = 0;
    if (!c->closing) {
      fail_protocol(ws);
      ws->closing = true;
      conn_close_gracefully(c);
    }
    return;
  }
  ws->rd_len = 0;
  scan(&ws->scan, (const uint8_t *)data, n);
  pump(ws);
  if (!c->closing)
    ctx_maybe_free(ws);
}

/* Called from the connection's close callback only (see conn_close). */
void ws_on_conn_close(struct http_conn *c) {
  struct ws *ws = c->up.ws;
  if (!ws)
    return;
  c->up.ws = NULL;
  if (ws->cbs.on_close)
    ws->cbs.on_close(ws, ws->close_code ? ws->close_code : 1006);
  if (ws->ctx)
    wslay_event_context_free(ws->ctx);
  free(ws);
}

void ws_on_shutdown(struct http_conn *c) {
  if (c->up.ws)
    ws_close(c->up.ws, 1001, "server is shutting down");
}

bool ws_is_open(const struct ws *ws) {
  return !ws->closing && (!ws->c || !ws->c->closing);
}

void ws_close(struct ws *ws, uint16_t code, const char *reason) {
  if (ws->closing || (ws->c && ws->c->closing))
    return;
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > 123)
    rl = 123; /* control frame payload limit */
  if (ctx_need(ws)) {
    if (ws->c)
      conn_close(ws->c);
    ws->closing = true;
    return;
  }
  wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, rl);
  ws->closing = true;
  if (!ws->close_code)
    ws->close_code = code;
  pump(ws);
  ws->closing = true;
  if (ws->c && !ws->c->closing && !ws->c->lingering)
    conn_timer(ws->c, CLOSE_GRACE_MS, on_close_timeout);
}

size_t ws_frame_header(uint8_t *h, size_t len) {
  h[0] = 0x81; /* FIN + text */
  if (len < 126) {
    h[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xffff) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++)
    h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

static int check_room(struct ws *ws, size_t len) {
  if (ws->closing || !ws->c || ws->c->closing)
    return GROVE_ECLOSED;
  /* control frames wslay queued (a pong) go first, in the order they arose */
  if (ws->ctx && wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) < 0) {
    conn_close(ws->c);
    return GROVE_ECLOSED;
  }
  if (conn_queued(ws->c) + len > ws->cfg.max_queue) {
    log_warn(ws->rid, "websocket client is too slow, closing", "queued=%zu max=%llu",
             conn_queued(ws->c), (unsigned long long)ws->cfg.max_queue);
    ws_close(ws, 1008, "slow consumer: send queue over limit");
    /* the close frame waits behind a full queue: reset soon after */
    conn_timer(ws->c, CLOSE_GRACE_MS, on_abort_timeout);
    return GROVE_EBUSY;
  }
  return 0;
}

int ws_send_text(struct ws *ws, const char *data, size_t len) {
  int rc = check_room(ws, len);
  if (rc)
    return rc;
  uint8_t hdr[10];
  uv_buf_t b[2] = {uv_buf_init((char *)hdr, (unsigned)ws_frame_header(hdr, len)),
                   uv_buf_init((char *)data, (unsigned)len)};
  return conn_write(ws->c, b, 2, NULL, NULL);
}

int ws_send_shared(struct ws *ws, const uv_buf_t *frame, void (*release)(void *),
                   void *owner) {
  int rc = check_room(ws, frame->len);
  if (rc) {
    release(owner);
    return rc;
  }
  return conn_write(ws->c, frame, 1, release, owner);
}

/* ---- detached codec ------------------------------------------------------ */

struct ws *ws_codec_create(const struct ws_cfg *cfg, const struct ws_cbs *cbs, void *user,
                           struct buf *out) {
  struct ws *ws = calloc(1, sizeof *ws);
  if (!ws)
    return NULL;
  ws->cfg = *cfg;
  ws->cbs = *cbs;
  ws->user = user;
  ws->out = out;
  return ws;
}

bool ws_codec_feed(struct ws *ws, const void *data, size_t n) {
  if (ctx_need(ws))
    return false;
  ws->rd = data;
  ws->rd_len = n;
  if (wslay_event_recv(ws->ctx) < 0) {
    ws->rd_len = 0;
    fail_protocol(ws);
    ws->closing = true;
    return false;
  }
  ws->rd_len = 0;
  scan(&ws->scan, data, n);
  if (!ws->closing) {
    pump(ws);
  } else {
    wslay_event_send(ws->ctx);
    note_close_sent(ws);
  }
  bool open = !ws->closing || wslay_event_want_read(ws->ctx);
  ctx_maybe_free(ws);
  return open;
}

bool ws_codec_idle(const struct ws *ws) { return ws->ctx == NULL; }

uint16_t ws_codec_close_code(const struct ws *ws) { return ws->close_code; }

void ws_codec_destroy(struct ws *ws) {
  if (!ws)
    return;
  if (ws->ctx)
    wslay_event_context_free(ws->ctx);
  free(ws);
}

/* ---- handshake ---------------------------------------------------------- */

static void on_first_turn(uv_timer_t *t) {
  struct http_conn *c = t->data;
  struct ws *ws = c->up.ws;
  conn_timer(c, ws->cfg.ping_interval_ms, on_ping_timer);
  if (c->pending.len) {
    struct buf p = c->pending;
    buf_init(&c->pending, 0);
    ws_on_read(c, p.data, p.len);
    buf_release(&p);
  } else {
    buf_release(&c->pending);
  }
}

struct ws *ws_accept(struct http_req *r, const struct ws_cfg *cfg, const struct ws_cbs *cbs,
                     void *user) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  struct http_conn *c = r->conn;
  const char *upgrade = http_header_get(r, "upgrade");
  const char *connection = http_header_get(r, "connection");
  const char *version = http_header_get(r, "sec-websocket-version");
  const char *key = http_header_get(r, "sec-websocket-key");
  if (strcmp(r->method, "GET") != 0 || !upgrade || !header_has_token(upgrade, "websocket") ||
      !connection || !header_has_token(connection, "upgrade")) {
    http_res_header(r, "Upgrade", "websocket");
    http_reply_error(r, 426, "UPGRADE_REQUIRED", "this route speaks WebSocket only", NULL);
    return NULL;
  }
  if (!version || strcmp(version, "13") != 0) {
    http_res_header(r, "Sec-WebSocket-Version", "13");
    http_reply_error(r, 426, "UNSUPPORTED_WEBSOCKET_VERSION", "WebSocket version must be 13",
                     NULL);
    return NULL;
  }
  if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=') {
    http_reply_error(r, 400, "BAD_WEBSOCKET_KEY", "Sec-WebSocket-Key is missing or malformed",
                     NULL);
    return NULL;
  }
  struct ws *ws = calloc(1, sizeof *ws);
  if (!ws) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return NULL;
  }
  ws->c = c;
  ws->cbs = *cbs;
  ws->user = user;
  ws->cfg = *cfg;
  ws->last_recv_ms = clock_wall_ms();
  memcpy(ws->rid, r->id, sizeof ws->rid);

  char src[64], accept[32];
  unsigned char digest[20];
  snprintf(src, sizeof src, "%s%s", key, guid);
  sha1(src, strlen(src), digest);
  b64_encode(digest, sizeof digest, accept);
  char head[256];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Request-Id: %s\r\n\r\n",
                    accept, r->id);
  uv_buf_t b = uv_buf_init(head, (unsigned)hl);
  conn_write(c, &b, 1, NULL, NULL);
  c->kind = CONN_WS;
  c->up.ws = ws;
  c->close_after = false;
  http_finish(r, 101);
  conn_upgrade(c, CONN_WS);
  /* Bytes that came with the upgrade request are read on the next loop
   * turn, once the caller has its ws in hand. */
  if (!c->closing)
    uv_timer_start(&c->timer, on_first_turn, 0, 0);
  return ws;
}
