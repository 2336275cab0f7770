/* fuzz_conn.c — libFuzzer driver for the connection layer itself: a real
 * `http_server` with the live hub on one loop thread, driven over
 * loopback sockets by a script read from the input. Steps open HTTP,
 * WebSocket and SSE connections (SSE with Last-Event-ID resumes), send
 * raw bytes and masked WebSocket frames, publish messages of every size
 * class (within, near and past a subscriber's queue), reset peers
 * mid-frame, half-close them, stop reading, and make the server's writes
 * fail (conn_fault_write). ASan and UBSan see the server thread: any use
 * of a connection, WebSocket, stream or subscriber after it was closed
 * aborts the run.
 *
 * Each input ends with every client connection reset and a wait until the
 * server has let go of all of them, so inputs do not leak into each other. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "hub/hub.h"
#include "net/conn.h"

#define NCONN 6

static struct http_server *srv;
static struct hub *hub;
static struct metric *open_conns;
static int port;
static _Atomic int fail_in = -1; /* writes until one fails; -1: none */

static bool fault(void) {
  int n = atomic_load(&fail_in);
  if (n < 0)
    return false;
  if (n == 0) {
    atomic_store(&fail_in, -1);
    return true;
  }
  atomic_store(&fail_in, n - 1);
  return false;
}

static void loop_start(uv_loop_t *loop, int index, void *arg) {
  (void)arg;
  hub_loop_start(hub, loop, index);
}

static void loop_stop(uv_loop_t *loop, int index, void *arg) {
  (void)loop;
  (void)arg;
  hub_loop_stop(hub, index);
}

static void *serve(void *arg) {
  (void)arg;
  http_server_run(srv);
  return NULL;
}

static void start(void) {
  static struct http_cfg cfg = {
      .listen = "127.0.0.1:0", .threads = 1, .max_url = 1024, .max_header = 4096,
      .max_headers = 32, .max_body = 64 * 1024, .header_timeout_ms = 60000,
      .body_timeout_ms = 60000, .idle_timeout_ms = 60000, .gzip_min = 256, .web_root = "",
      .shutdown_timeout_ms = 1000, .access_log = false, .max_body_decoded = 256 * 1024,
      .pool_store_threads = 1, .pool_store_queue = 64, .pool_cpu_threads = 1,
      .pool_cpu_queue = 16, .pool_wait_threads = 1, .pool_wait_queue = 16, .pool_cpu_hold = ""};
  static struct hub_cfg hcfg = {.max_message = 4096, .max_queue = 32 * 1024, .history = 16,
                                .history_bytes = 512 * 1024, .max_topics = 8,
                                .ping_ms = 60000, .heartbeat_ms = 60000,
                                .client_publish = true};
  signal(SIGPIPE, SIG_IGN); /* as grove serve: a reset peer is an error code */
  log_setup(LOG_ERROR, false, 2);
  struct metrics *m;
  struct router *rt;
  char err[256];
  if (metrics_create(&m) || router_create(&rt, m) || hub_create(&hub, &hcfg, 1, m) ||
      hub_routes(hub, rt, err, sizeof err)) {
    fprintf(stderr, "fuzz_conn: cannot set up the hub: %s\n", err);
    abort();
  }
  struct http_server_hooks hooks = {loop_start, loop_stop, NULL};
  if (http_server_create(&srv, &cfg, rt, m, &hooks)) {
    fprintf(stderr, "fuzz_conn: cannot start the server\n");
    abort();
  }
  port = http_server_port(srv);
  open_conns = metric_get(metrics_family(m, "grove_http_connections", "", METRIC_GAUGE, ""));
  conn_fault_write = fault;
  pthread_t t;
  if (pthread_create(&t, NULL, serve, NULL))
    abort();
  pthread_detach(t);
}

/* ---- the client side ----------------------------------------------------- */

struct in {
  const uint8_t *p;
  size_t n;
};

static uint8_t take(struct in *in) {
  if (!in->n)
    return 0;
  in->n--;
  return *in->p++;
}

static size_t take_bytes(struct in *in, size_t want, const uint8_t **out) {
  size_t k = want < in->n ? want : in->n;
  *out = in->p;
  in->p += k;
  in->n -= k;
  return k;
}

static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int small = 4096, one = 1;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small); /* a slow reader */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Sends without blocking: a server that stops reading must not stall us. */
static void put(int fd, const void *p, size_t n) {
  if (fd >= 0)
    (void)send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void drain(int fd) {
  char b[16384];
  while (fd >= 0 && recv(fd, b, sizeof b, MSG_DONTWAIT) > 0)
    ;
}

static void reset(int *fd) {
  if (*fd < 0)
    return;
  struct linger lg = {1, 0};
  setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(*fd);
  *fd = -1;
}

static const char *const topics[] = {"f/a", "f/b", "f/c/d"};

/* A round trip on a fresh connection: the loop has turned since earlier
 * bytes were sent, so the steps before it have mostly been handled. */
static void sync_server(void) {
  int fd = dial();
  if (fd < 0)
    return;
  static const char req[] = "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  put(fd, req, sizeof req - 1);
  struct pollfd p = {fd, POLLIN, 0};
  char b[4096];
  while (poll(&p, 1, 2000) > 0 && recv(fd, b, sizeof b, 0) > 0)
    ;
  close(fd);
}

static void ws_frame(int fd, struct in *in) {
  uint8_t b0 = take(in), flags = take(in);
  const uint8_t *pl;
  size_t n = take_bytes(in, take(in) % 200, &pl);
  uint8_t f[2 + 8 + 4 + 200];
  size_t h = 0;
  f[h++] = b0;
  bool masked = !(flags & 1);
  if (flags & 2) { /* a 16-bit length form for a short payload */
    f[h++] = (uint8_t)((masked ? 0x80 : 0) | 126);
    f[h++] = (uint8_t)(n >> 8);
    f[h++] = (uint8_t)n;
  } else {
    f[h++] = (uint8_t)((masked ? 0x80 : 0) | n);
  }
  uint8_t key[4] = {take(in), take(in), take(in), take(in)};
  if (masked) {
    memcpy(f + h, key, 4);
    h += 4;
  }
  for (size_t i = 0; i < n; i++)
    f[h + i] = masked ? pl[i] ^ key[i % 4] : pl[i];
  size_t total = h + n;
  if (flags & 4) /* cut mid-frame: the rest never comes */
    total = take(in) % (total + 1);
  put(fd, f, total);
}

static void ws_text(int fd, const char *text) {
  size_t n = strlen(text);
  uint8_t f[256];
  if (n > 125)
    return;
  f[0] = 0x81;
  f[1] = (uint8_t)(0x80 | n);
  memset(f + 2, 0, 4); /* a zero mask leaves the payload as it is */
  memcpy(f + 6, text, n);
  put(fd, f, 6 + n);
}

static void publish(struct in *in) {
  static const size_t sizes[] = {8, 1000, 8 * 1024, 31 * 1024, 40 * 1024};
  size_t n = sizes[take(in) % 5];
  char *json = malloc(n + 3);
  if (!json)
    return;
  json[0] = '"';
  memset(json + 1, 'x', n);
  json[n + 1] = '"';
  json[n + 2] = '\0';
  hub_publish(hub, topics[take(in) % 3], json, n + 2, NULL);
  free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool started;
  if (!started) {
    start();
    started = true;
  }
  struct in in = {data, size};
  int fds[NCONN];
  for (int i = 0; i < NCONN; i++)
    fds[i] = -1;
  char req[512];
  for (int steps = 0; in.n && steps < 64; steps++) {
    uint8_t op = take(&in);
    int k = (op >> 4) % NCONN;
    switch (op & 0x0f) {
    case 0: { /* WebSocket upgrade, subscribed to a topic or two */
      reset(&fds[k]);
      fds[k] = dial();
      uint8_t t = take(&in);
      int len = snprintf(req, sizeof req,
                         "GET /api/v1/live?topic=%s%s%s HTTP/1.1\r\nHost: x\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         topics[t % 3], t & 4 ? "&topic=" : "", t & 4 ? topics[(t >> 3) % 3] : "");
      put(fds[k], req, (size_t)len);
      break;
    }
    case 1: { /* SSE, maybe resuming from an id near the hub's or from 0 */
      reset(&fds[k]);
      fds[k] = dial();
      uint8_t t = take(&in), r = take(&in);
      char lei[64] = "";
      if (r & 1)
        snprintf(lei, sizeof lei, "Last-Event-ID: %s\r\n", r & 2 ? "0" : "18446744073709551615");
      int len = snprintf(req, sizeof req,
                         "GET /api/v1/live/sse?topic=%s&topic=%s HTTP/1.1\r\nHost: x\r\n%s\r\n",
                         topics[t % 3], topics[(t >> 2) % 3], lei);
      put(fds[k], req, (size_t)len);
      break;
    }
    case 2: /* a plain HTTP connection */
      reset(&fds[k]);
      fds[k] = dial();
      break;
    case 3: { /* raw bytes */
      const uint8_t *p;
      size_t n = take_bytes(&in, take(&in), &p);
      put(fds[k], p, n);
      break;
    }
    case 4:
      ws_frame(fds[k], &in);
      break;
    case 5: { /* many small requests in one write: replies inside one read */
      static const char *const ops[] = {"{\"op\":\"ping\"}", "{\"op\":\"subscribe\",\"topic\":\"f/a\"}",
                                        "{\"op\":\"publish\",\"topic\":\"f/b\",\"data\":1}", "nope"};
      uint8_t what = take(&in), count = take(&in);
      for (int i = 0; i < count; i++)
        ws_text(fds[k], ops[what % 4]);
      break;
    }
    case 6:
      reset(&fds[k]);
      break;
    case 7:
      if (fds[k] >= 0)
        shutdown(fds[k], SHUT_WR);
      break;
    case 8:
      publish(&in);
      break;
    case 9: /* the n-th write from now fails */
      atomic_store(&fail_in, take(&in) % 16);
      break;
    case 10:
      drain(fds[k]);
      break;
    case 11:
      sync_server();
      break;
    case 12: { /* an HTTP request with a body (publish) */
      const uint8_t *p;
      size_t n = take_bytes(&in, take(&in), &p);
      int len = snprintf(req, sizeof req,
                         "POST /api/v1/live/f/a HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n"
                         "Content-Type: application/json\r\n\r\n",
                         n);
      put(fds[k], req, (size_t)len);
      put(fds[k], p, n);
      break;
    }
    default:
      break;
    }
  }
  for (int i = 0; i < NCONN; i++)
    reset(&fds[i]);
  atomic_store(&fail_in, -1);
  /* wait for the server to let go of every connection (they were reset) */
  struct timespec ts = {0, 1000000};
  for (int i = 0; i < 5000 && metric_value(open_conns) > 0; i++)
    nanosleep(&ts, NULL);
  return 0;
}
