/* sse.c — Server-Sent Events streams.
 *
 * After sse_start the connection carries only events: comment heartbeats
 * keep proxies from timing it out, and a client whose unsent bytes pass
 * max_queue is disconnected (it reconnects with Last-Event-ID and resumes
 * from the hub's history). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "net/conn.h"

struct sse {
  struct http_conn *c;
  struct sse_cbs cbs;
  void *user;
  uint64_t max_queue;
  uint64_t heartbeat_ms;
  char rid[24];
};

void *sse_user(const struct sse *s) { return s->user; }

static void on_heartbeat(uv_timer_t *t) {
  struct http_conn *c = t->data;
  if (c->closing)
    return;
  static const char hb[] = ": heartbeat\n\n";
  sse_send(c->up.sse, hb, sizeof hb - 1);
  if (!c->closing)
    conn_timer(c, c->up.sse->heartbeat_ms, on_heartbeat);
}

struct sse *sse_start(struct http_req *r, const struct sse_cbs *cbs, void *user,
                      uint64_t max_queue, uint64_t heartbeat_ms) {
  struct http_conn *c = r->conn;
  struct sse *s = calloc(1, sizeof *s);
  if (!s) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return NULL;
  }
  s->c = c;
  s->cbs = *cbs;
  s->user = user;
  s->max_queue = max_queue;
  s->heartbeat_ms = heartbeat_ms;
  memcpy(s->rid, r->id, sizeof s->rid);
  char head[512];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 200 OK\r\nServer: grove\r\n%sContent-Type: text/event-stream\r\n"
                    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nX-Request-Id: %s\r\n"
                    "Connection: keep-alive\r\n\r\n: connected\n\n",
                    loop_date(c->lp), r->id);
  uv_buf_t b = uv_buf_init(head, (unsigned)hl);
  conn_write(c, &b, 1, NULL, NULL);
  c->kind = CONN_SSE;
  c->up.sse = s;
  c->close_after = false;
  http_finish(r, 200);
  conn_upgrade(c, CONN_SSE);
  buf_release(&c->pending);
  conn_timer(c, heartbeat_ms, on_heartbeat);
  return s;
}

static int check_room(struct sse *s, size_t len) {
  if (s->c->closing)
    return GROVE_ECLOSED;
  if (conn_queued(s->c) + len > s->max_queue) {
    log_warn(s->rid, "event stream client is too slow, closing", "queued=%zu max=%llu",
             conn_queued(s->c), (unsigned long long)s->max_queue);
    conn_abort(s->c);
    return GROVE_EBUSY;
  }
  return 0;
}

int sse_send(struct sse *s, const char *text, size_t len) {
  int rc = check_room(s, len);
  if (rc)
    return rc;
  uv_buf_t b = uv_buf_init((char *)text, (unsigned)len);
  return conn_write(s->c, &b, 1, NULL, NULL);
}

int sse_send_shared(struct sse *s, const uv_buf_t *ev, void (*release)(void *), void *owner) {
  int rc = check_room(s, ev->len);
  if (rc) {
    release(owner);
    return rc;
  }
  return conn_write(s->c, ev, 1, release, owner);
}

void sse_close(struct sse *s) { conn_close(s->c); }

bool sse_is_open(const struct sse *s) { return !s->c->closing && !s->c->lingering; }

/* Called from the connection's close callback only (see conn_close). */
void sse_on_conn_close(struct http_conn *c) {
  struct sse *s = c->up.sse;
  if (!s)
    return;
  c->up.sse = NULL;
  if (s->cbs.on_close)
    s->cbs.on_close(s);
  free(s);
}
