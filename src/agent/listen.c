/* listen.c — the scrape endpoint (see listen.h). */
#include "agent/listen.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "core/error.h"

struct listener {
  struct MHD_Daemon *daemon;
  pthread_mutex_t lock;
  char *page; /* NULL before the first sample */
  size_t len;
  int port;
};

static const char content_type[] = "text/plain; version=0.0.4; charset=utf-8";

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
                              char *body, size_t len, const char *h1, const char *v1) {
  /* MHD frees body (MUST_FREE) once sent, also on failure */
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (h1) MHD_add_response_header(r, h1, v1);
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg,
                            const char *h1, const char *v1) {
  char *body = strdup(msg);
  if (!body) return MHD_NO;
  return answer(c, status, "text/plain; charset=utf-8", body, strlen(body), h1, v1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **state) {
  (void)version;
  (void)upload_data;
  struct listener *l = cls;
  /* A request body (which a scrape never has) is read and ignored: the
   * first call only sees the headers. */
  if (*state == NULL) {
    *state = l;
    return MHD_YES;
  }
  if (*upload_size) {
    *upload_size = 0;
    return MHD_YES;
  }
  bool metrics = strcmp(url, "/metrics") == 0, root = strcmp(url, "/") == 0;
  if (!metrics && !root) return text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n", NULL, NULL);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", MHD_HTTP_HEADER_ALLOW,
                "GET, HEAD");
  if (root) return text(c, MHD_HTTP_OK, "grove-agent: metrics at /metrics\n", NULL, NULL);
  pthread_mutex_lock(&l->lock);
  char *copy = l->page ? malloc(l->len ? l->len : 1) : NULL;
  size_t len = l->len;
  if (copy) memcpy(copy, l->page, len);
  bool ready = l->page != NULL;
  pthread_mutex_unlock(&l->lock);
  if (!ready)
    return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no sample taken yet\n",
                MHD_HTTP_HEADER_RETRY_AFTER, "5");
  if (!copy) return MHD_NO;
  return answer(c, MHD_HTTP_OK, content_type, copy, len, NULL, NULL);
}

/* addr → a socket address. Returns 0 or GROVE_EINVAL. */
static int parse_addr(const char *addr, struct sockaddr_storage *sa, char *err, size_t errlen) {
  char host[256];
  const char *colon = strrchr(addr, ':');
  if (!colon || !colon[1]) {
    snprintf(err, errlen, "listen address '%s' has no port (HOST:PORT or :PORT)", addr);
    return GROVE_EINVAL;
  }
  size_t hlen = (size_t)(colon - addr);
  if (hlen >= sizeof host) {
    snprintf(err, errlen, "listen address '%s' is too long", addr);
    return GROVE_EINVAL;
  }
  memcpy(host, addr, hlen);
  host[hlen] = '\0';
  if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
    memmove(host, host + 1, hlen - 2);
    host[hlen - 2] = '\0';
  }
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535) {
    snprintf(err, errlen, "listen address '%s' has a bad port", addr);
    return GROVE_EINVAL;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
  int gai = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &ai);
  if (gai != 0 || !ai) {
    snprintf(err, errlen, "cannot resolve listen address '%s': %s", addr, gai_strerror(gai));
    return GROVE_EINVAL;
  }
  memset(sa, 0, sizeof *sa);
  memcpy(sa, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  return 0;
}

int listener_start(struct listener **out, const char *addr, char *err, size_t errlen) {
  *out = NULL;
  struct sockaddr_storage sa;
  int rc = parse_addr(addr, &sa, err, errlen);
  if (rc) return rc;
  struct listener *l = calloc(1, sizeof *l);
  if (!l) return GROVE_ENOMEM;
  pthread_mutex_init(&l->lock, NULL);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
  if (sa.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  l->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l, MHD_OPTION_SOCK_ADDR,
                               (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 16u,
                               MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
  if (!l->daemon) {
    snprintf(err, errlen, "cannot listen on '%s' (address in use or not allowed)", addr);
    pthread_mutex_destroy(&l->lock);
    free(l);
    return GROVE_EIO;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_BIND_PORT);
  l->port = info ? (int)info->port : 0;
  *out = l;
  return 0;
}

int listener_port(const struct listener *l) { return l->port; }

void listener_publish(struct listener *l, struct buf *page) {
  size_t len;
  char *data = buf_detach(page, &len); /* page re-initialised, same maximum */
  pthread_mutex_lock(&l->lock);
  char *old = l->page;
  l->page = data;
  l->len = len;
  pthread_mutex_unlock(&l->lock);
  free(old);
}

void listener_stop(struct listener *l) {
  if (!l) return;
  MHD_stop_daemon(l->daemon);
  pthread_mutex_destroy(&l->lock);
  free(l->page);
  free(l);
}
