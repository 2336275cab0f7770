/* internal.h — gate-internal state shared by gate.c, auth.c and admin.c. */
#ifndef GROVE_GATE_INTERNAL_H
#define GROVE_GATE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/map.h"
#include "gate/proxy.h"
#include "gate/ratelimit.h"
#include "gate/gate.h"
#include "net/http.h"

struct key_rec {
  char id[24];
  unsigned scopes;
  char device[40];
  char device_type[24];
};

struct rate_class {
  char type[24];
  struct rate rate;
};

/* What the database says about credentials, as of the last reload. */
struct gate_view {
  struct map keys;     /* sha256 hex of the key -> struct key_rec */
  struct map disabled; /* user id -> (void *)1 */
  struct map revoked;  /* session id -> (void *)1, recent revocations */
};

struct gate {
  struct gate_cfg cfg;
  struct store *store;
  unsigned char key[32]; /* JWT signing key */
  pthread_mutex_t lock;  /* view, used */
  struct gate_view *view;
  struct map used;       /* key id -> last use (ms), to write back */
  uint64_t view_gen;     /* moves on with every view swapped in */
  struct map key_misses; /* sha256 hex -> (void *)expiry ms: looked up, absent */
  struct rate lookup_rate;
  struct fast_bucket lookup_bucket; /* database lookups of unknown keys */
  struct metric *lookup_found, *lookup_missing, *lookup_skipped;
  struct periodic *refresher; /* --gate-refresh: reload, write back, sweep */
  struct cidr *trusted;  /* --trusted-proxies */
  int ntrusted;
  char **cors;           /* allowed origins; NULL-terminated */
  bool cors_any;
  struct metric *auth_ok, *auth_fail;
  struct limiter *limiter;
  struct rate global, per_key, anonymous;
  struct fast_bucket global_bucket; /* local: every request, no lock */
  struct rate_class classes[16];
  int nclasses;
  struct metric *limited_global, *limited_key, *limited_device, *limited_anon;
  /* shared.c: rate limits and the cache's Redis tier through the broker */
  struct broker *broker; /* NULL: none */
  struct metric *shared_gauge, *shared_fallbacks;
  /* cache.c */
  struct cache *caches;
  struct cache *devices;
  struct metrics *metrics;
};

void cache_on_control(const char *kind, const char *payload, size_t len, void *arg);
void cache_destroy_all(struct gate *g);

const struct rate_class *gate_class(const struct gate *g, const char *type);

/* The bucket of a request's caller (its own policy). */
struct bucket_ref {
  char name[96];          /* "k:key_…", "u:usr_…", "d:truck-17", "a:10.0.0.1" */
  const char *policy;     /* key | user | device | anonymous */
  const struct rate *rate;
  struct metric *refused;
};
/* Fills b with the caller's bucket; false when its policy is unlimited. */
bool gate_own_bucket(struct gate *g, struct http_req *r, struct bucket_ref *b);
/* Answers 429 for bucket b. */
enum http_next gate_refuse(struct http_req *r, const struct bucket_ref *b,
                           const struct limit_result *res);
/* After the caller's own bucket let r through (own NULL: unlimited): takes
 * from the instance's bucket (--rate-global, always local: it protects this
 * instance). Refused there, the caller's token is given back (in Redis when
 * `shared`) and r answered 429; else the caller's RateLimit headers are
 * added and HTTP_CONTINUE returned. */
enum http_next gate_take_global(struct gate *g, struct http_req *r, const struct bucket_ref *own,
                                const struct limit_result *own_res, bool shared);
/* The caller's bucket decided in this process, then the instance's. */
enum http_next gate_local_take(struct gate *g, struct http_req *r, const struct bucket_ref *own);
/* shared.c: asks Redis about the caller's bucket, when there is a broker
 * and this loop's connection is up, and returns true (the request is held
 * until the answer); false to decide locally. */
bool gate_shared_take(struct gate *g, struct http_req *r, const struct bucket_ref *own);
/* Gives one token back to the caller's bucket in Redis (fire and forget). */
void gate_shared_refund(struct gate *g, struct http_req *r, const struct bucket_ref *own);
/* Inserts a key on c (inside the caller's transaction); device may be NULL. */
int gate_key_insert(struct store_conn *c, const char *name, unsigned scopes, const char *by,
                    const char *device, char key[48], char id[24], char *err, size_t errlen);
int gate_device_routes(struct gate *g, struct router *r, char *err, size_t errlen);

/* After a change to keys, users or sessions: reloads the view now
 * (blocking; worker threads) and tells the other instances to reload
 * theirs (a GATE_VIEW_CHANGED control message). */
int gate_reload(struct gate *g);
#define GATE_VIEW_CHANGED "gate.view"
/* Asks the reload thread to reload soon (after a change made here). */
void gate_changed(struct gate *g);
/* Signs an access token for the user and session. */
int gate_sign_access(struct gate *g, const char *user, const char *role, const char *sid,
                     char *out, size_t n);
void sha256_hex(const void *data, size_t n, char out[65]);
/* The current time in ms as text, in a per-thread buffer. */
const char *now_text(void);
/* The JSON body of a request as an object, or an answer and NULL. */
json_t *gate_body(struct http_req *r);

/* auth.c / admin.c */
int gate_auth_routes(struct gate *g, struct router *r, char *err, size_t errlen);
int gate_admin_routes(struct gate *g, struct router *r, char *err, size_t errlen);

#endif
