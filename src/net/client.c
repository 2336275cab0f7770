/* client.c — outbound HTTP through libcurl (see client.h): an easy handle
 * per client, reset before each request so no option leaks from one to
 * the next while its connection cache (keep-alive) stays. */
#include "net/client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"

#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_MAX (8u * 1024 * 1024)

struct http_client {
  CURL *curl;
  char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int http_client_create(struct http_client **out) {
  *out = NULL;
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return GROVE_ENOMEM;
  struct http_client *c = calloc(1, sizeof *c);
  if (!c)
    return GROVE_ENOMEM;
  if (!(c->curl = curl_easy_init())) {
    free(c);
    return GROVE_ENOMEM;
  }
  *out = c;
  return 0;
}

void http_client_destroy(struct http_client *c) {
  if (!c)
    return;
  curl_easy_cleanup(c->curl);
  free(c);
}

void http_client_res_release(struct http_client_res *res) { buf_release(&res->body); }

int http_client_url_check(const char *url) {
  if (!url || !(strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0))
    return GROVE_EINVAL;
  CURLU *u = curl_url();
  if (!u)
    return GROVE_ENOMEM;
  char *host = NULL;
  int rc = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                   curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host
               ? 0
               : GROVE_EINVAL;
  curl_free(host);
  curl_url_cleanup(u);
  return rc;
}

/* "host:port" of url for messages (never its credentials or path). */
static void where(const char *url, char *out, size_t n) {
  snprintf(out, n, "?");
  CURLU *u = curl_url();
  char *host = NULL, *port = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    snprintf(out, n, "%s:%s", host, port);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
}

/* ---- the body as it comes ------------------------------------------------------ */

struct sink {
  CURL *curl;
  const struct http_client_req *req;
  struct http_client_res *res;
  size_t max, taken;
  bool too_big, stopped;
  int cb_rc;          /* a negative code from on_data */
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg) {
  struct sink *s = arg;
  size_t n = size * nmemb;
  if (n > s->max - s->taken) {
    s->too_big = true;
    return 0; /* aborts: CURLE_WRITE_ERROR */
  }
  s->taken += n;
  long status = 0;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  if (s->req->on_data && status >= 200 && status < 300) {
    int rc = s->req->on_data(p, n, s->req->arg);
    if (rc > 0)
      s->stopped = true;
    else if (rc < 0)
      s->cb_rc = rc;
    return rc ? 0 : n;
  }
  if (buf_append(&s->res->body, p, n)) {
    s->cb_rc = GROVE_ENOMEM;
    return 0;
  }
  return n;
}

/* A libcurl failure as a GROVE_E* code and a sentence. */
static int failure(CURLcode cc, const struct sink *s, const char *url, const char *detail,
                   char *err, size_t errlen) {
  char at[300];
  where(url, at, sizeof at);
  const char *why = detail && *detail ? detail : curl_easy_strerror(cc);
  switch (cc) {
  case CURLE_WRITE_ERROR:
    if (s->too_big) {
      snprintf(err, errlen, "the answer from '%s' is over %zu bytes", at, s->max);
      return GROVE_ETOOBIG;
    }
    if (s->cb_rc == GROVE_ENOMEM)
      snprintf(err, errlen, "out of memory reading the answer from '%s'", at);
    return s->cb_rc ? s->cb_rc : GROVE_EIO;
  case CURLE_OPERATION_TIMEDOUT:
    snprintf(err, errlen, "'%s' did not answer in time: %s", at, why);
    return GROVE_ETIMEOUT;
  case CURLE_COULDNT_RESOLVE_HOST:
    snprintf(err, errlen, "cannot resolve '%s': %s", at, why);
    return GROVE_EUNAVAIL;
  case CURLE_COULDNT_CONNECT:
    snprintf(err, errlen, "cannot connect to '%s': %s", at, why);
    return GROVE_EUNAVAIL;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
    snprintf(err, errlen, "cannot set up TLS with '%s': %s", at, why);
    return GROVE_EUNAVAIL;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_UNSUPPORTED_PROTOCOL: /* HTTP/0.9: no status line */
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    snprintf(err, errlen, "'%s' did not answer in HTTP: %s", at, why);
    return GROVE_EPROTO;
  case CURLE_OUT_OF_MEMORY:
    snprintf(err, errlen, "out of memory talking to '%s'", at);
    return GROVE_ENOMEM;
  case CURLE_URL_MALFORMAT:
    snprintf(err, errlen, "cannot use the URL: %s", why);
    return GROVE_EINVAL;
  default:
    snprintf(err, errlen, "cannot talk to '%s': %s", at, why);
    return GROVE_EUNAVAIL;
  }
}

int http_client_request(struct http_client *c, const struct http_client_req *req,
                        struct http_client_res *res, char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  buf_init(&res->body, 0);
  if (err && errlen)
    err[0] = '\0';
  if (http_client_url_check(req->url)) {
    snprintf(err, errlen, "cannot use the URL: it must be http://host[:port][/path] or https://…");
    return GROVE_EINVAL;
  }
  CURL *h = c->curl;
  curl_easy_reset(h);
  struct curl_slist *hdrs = NULL, *t;
  /* no "Expect: 100-continue" wait on large bodies */
  if (!(t = curl_slist_append(hdrs, "Expect:")))
    goto nomem;
  hdrs = t;
  for (const char *const *l = req->headers; l && *l; l++) {
    if (!(t = curl_slist_append(hdrs, *l)))
      goto nomem;
    hdrs = t;
  }
  struct sink s = {.curl = h, .req = req, .res = res,
                   .max = req->max_response ? req->max_response : DEFAULT_MAX};
  c->errbuf[0] = '\0';
  curl_easy_setopt(h, CURLOPT_URL, req->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "grove");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)(req->connect_timeout_ms ? req->connect_timeout_ms : DEFAULT_CONNECT_MS));
  if (req->timeout_ms)
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
  if (req->ca_file && *req->ca_file)
    curl_easy_setopt(h, CURLOPT_CAINFO, req->ca_file);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
  if (req->body) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  }
  if (strcmp(method, req->body ? "POST" : "GET") != 0)
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  CURLcode cc = curl_easy_perform(h);
  curl_slist_free_all(hdrs);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
  curl_off_t retry = 0;
  if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK && retry > 0)
    res->retry_after_s = (long)retry;
  if (cc == CURLE_WRITE_ERROR && s.stopped && !s.cb_rc)
    cc = CURLE_OK; /* the caller had what it wanted */
  if (cc != CURLE_OK)
    return failure(cc, &s, req->url, c->errbuf, err, errlen);
  if (buf_reserve(&res->body, 1) == 0)
    res->body.data[res->body.len] = '\0';
  return 0;
nomem:
  curl_slist_free_all(hdrs);
  snprintf(err, errlen, "out of memory");
  return GROVE_ENOMEM;
}
