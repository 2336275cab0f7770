/* client.h — outbound HTTP: one request at a time through libcurl, for the
 * model backends (llm/), `grove flow simulate` and, later, webhooks and
 * storage providers.
 *
 * http:// and https:// only (no redirects followed, no other protocol
 * even through a redirect); TLS with the system's CA store or a CA file;
 * a connect timeout and a timeout for the whole exchange; a cap on the
 * response body, which is either kept (res.body) or handed on piece by
 * piece as it arrives (on_data, for streamed answers). Errors come back
 * as a GROVE_E* code and a sentence for a person, naming the URL's host:
 *   GROVE_EINVAL   the URL is not http(s)://… or a field is wrong
 *   GROVE_EUNAVAIL cannot resolve, connect, or set up TLS (a certificate
 *                  not trusted), or the connection broke
 *   GROVE_ETIMEOUT the connect or the whole exchange took too long
 *   GROVE_EPROTO   the answer is not HTTP (garbage, HTTP/0.9, bad chunking)
 *   GROVE_ETOOBIG  the response body passed max_response
 *   GROVE_ENOMEM
 * A status that is not 2xx is not an error here: the caller reads
 * res.status (and res.body holds the answer's body, capped as above).
 *
 * A client holds one libcurl handle, so requests made one after another
 * reuse its connection (keep-alive). Not thread-safe: one client per
 * thread. http_client_create may be called from any thread (libcurl's
 * global setup runs once). Calls block: never on an event loop. */
#ifndef GROVE_NET_CLIENT_H
#define GROVE_NET_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct http_client;

/* Called with each piece of a 2xx answer's body as it arrives (not
 * NUL-ended). Returns 0 to go on, a positive value to stop early (the
 * request then ends with 0), or a negative GROVE_E* code to stop with that
 * error (the request returns it; err is left for the callback's caller to
 * fill). */
typedef int (*http_client_data_fn)(const char *data, size_t len, void *arg);

struct http_client_req {
  const char *method;              /* "GET", "POST", … */
  const char *url;                 /* http://… or https://… */
  const char *const *headers;      /* "Name: value" lines, NULL-ended; may be NULL */
  const void *body;                /* may be NULL (no body) */
  size_t body_len;
  uint64_t connect_timeout_ms;     /* 0: 10 s */
  uint64_t timeout_ms;             /* the whole exchange; 0: no limit */
  size_t max_response;             /* body bytes taken (kept or streamed); 0: 8 MiB */
  const char *ca_file;             /* PEM CA bundle to trust; NULL or "": the system's */
  http_client_data_fn on_data;     /* NULL: the body is kept in res.body */
  void *arg;
};

struct http_client_res {
  long status;                     /* 200, …; 0 when no answer came */
  long retry_after_s;              /* Retry-After in seconds; 0 when absent */
  struct buf body;                 /* NUL-ended; for a streamed 2xx answer, empty */
};

/* OUT: *out, freed with http_client_destroy. Returns 0 or GROVE_ENOMEM. */
int http_client_create(struct http_client **out);
void http_client_destroy(struct http_client *c); /* NULL is fine */

/* Runs one exchange. res is initialised here (release it with
 * http_client_res_release whatever the outcome). Returns 0 when an answer
 * came (any status), or a GROVE_E* code above with err saying why. */
int http_client_request(struct http_client *c, const struct http_client_req *req,
                        struct http_client_res *res, char *err, size_t errlen);
void http_client_res_release(struct http_client_res *res);

/* Checks that url is http(s)://host… (0), else GROVE_EINVAL. */
int http_client_url_check(const char *url);

#endif
