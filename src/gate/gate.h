/* gate.h — the door every request passes through: users and sessions,
 * API keys for machines, roles and scopes, security headers, CORS and the
 * audit log. One per process; thread-safe.
 *
 * Who is asking is answered on the event loop without touching the
 * database: access tokens are HS256 JWTs checked in memory, and API keys,
 * disabled users and revoked sessions are held in a view of the database
 * reloaded in the background every --gate-refresh (and at once after a
 * change made here, or, with a broker, on another instance). A key the
 * view does not hold yet is looked up once in the database before it is
 * refused (on the store pool; bounded by --key-lookups and a memory of
 * absent keys kept for --gate-refresh).
 *
 * Invariants: passwords are stored only as argon2id hashes, refresh tokens
 * and API keys only as SHA-256 hashes; no secret is ever logged; a refresh
 * token is good for one use, and presenting one already used revokes its
 * whole family (the session). */
#ifndef GROVE_GATE_H
#define GROVE_GATE_H

#include <jansson.h>
#include <uv.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "store/store.h"

struct gate;
struct broker;
struct router;
struct metrics;
struct http_req;

struct gate_cfg {
  char *jwt_secret;            /* "" = generated once and kept in the database */
  uint64_t access_ttl_ms;
  uint64_t refresh_ttl_ms;
  bool registration;           /* POST /auth/register open to anyone */
  char *cors_origins;          /* "" none, "*" any, or a comma-separated list */
  uint64_t refresh_ms;         /* view reload interval */
  int argon2_memory_kib;
  int argon2_passes;
  char *rate_global;           /* "1000/s": the whole instance */
  char *rate_key;              /* per API key and per signed-in user */
  char *rate_anonymous;        /* per client address without a credential */
  char *key_lookups;           /* database lookups of keys not in the view ("20/s") */
  char *trusted_proxies;       /* CIDRs whose X-Forwarded-For is believed; "" none */
  char *rate_classes;          /* device type=rate, comma-separated */
  uint64_t cache_ttl_ms;       /* in-process tier; 0 = off */
  uint64_t cache_redis_ttl_ms; /* Redis tier (with a broker); 0 = off */
  int cache_entries;           /* per cache, in-process */
};

extern const struct cfg_opt gate_cfg_opts[];
extern const size_t gate_cfg_nopts;
extern const struct store_migration gate_migrations[];
extern const size_t gate_nmigrations;

enum gate_scope {
  GATE_SIGNED_IN = 0, /* a route's scopes: any valid credential will do */
  GATE_READ = 1,   /* read data */
  GATE_WRITE = 2,  /* write telemetry and requests */
  GATE_ADMIN = 4,  /* manage users, keys, devices; read the audit log */
};

struct gate_principal {
  bool user;          /* a signed-in user (else an API key) */
  char id[40];        /* user id or key id */
  char role[16];      /* users: admin | member; keys: "key" */
  char sid[40];       /* users: session id */
  char device[40];    /* keys bound to a device: its id, else "" */
  char device_type[24];
  unsigned scopes;
  int64_t expires_ms; /* users: when the access token expires (Unix ms); keys: 0 (never) */
};

/* Loads (or makes) the signing key and the first view; blocking. */
int gate_create(struct gate **out, const struct gate_cfg *cfg, struct store *st,
                struct metrics *m, char *err, size_t errlen);
void gate_destroy(struct gate *g);
/* Adds the /auth routes, the admin routes, the hook that sets security and
 * CORS headers on every answer (and applies rate limits), and the router's
 * authorizer: every route not declared anonymous is checked here against
 * its declared scopes before its handler runs (401 without a valid
 * credential, 403 without a scope). Returns 0 or a GROVE_E* code with err
 * saying what (a second before-hook or authorizer, a duplicate route). */
int gate_routes(struct gate *g, struct router *r, char *err, size_t errlen);

/* Makes the broker (broker/broker.h) the gate's way to other instances:
 * callers' rate-limit buckets live in Redis (decided on each loop's
 * broker connection), caches get their Redis tier and tell other
 * instances about writes, and changes to credentials reach their views
 * at once (control messages). Call after gate_create, before serving.
 * Returns 0, or broker_control_listen's error with err saying why. */
int gate_attach_broker(struct gate *g, struct broker *b, char *err, size_t errlen);
/* How limits are kept now: "local" (no broker), "shared", or local
 * because Redis is unavailable (then false). */
bool gate_limits_shared(struct gate *g, const char **mode);

/* Who sent r: 0 and *out, or GROVE_EPERM when no valid credential was
 * given (a missing one included). */
int gate_identify(struct gate *g, struct http_req *r, struct gate_principal *out);
/* The same for a credential given some other way (an access token or an
 * API key sent in a WebSocket message): 0 and *out, or GROVE_EPERM.
 * Thread-safe; answers from memory. */
int gate_check_credential(struct gate *g, const char *credential, struct gate_principal *out);
/* A number that moves on each time the gate's view of credentials is
 * reloaded (a key revoked, a session logged out, a user disabled, or the
 * periodic --gate-refresh): a long-lived holder of a checked credential
 * (a live subscription) checks it again when this moved. Thread-safe. */
uint64_t gate_view_generation(struct gate *g);
/* Copies the credential r shows (access token or API key, whatever header
 * or query form carried it) into out (n bytes, NUL-terminated), so that a
 * long-lived connection can check it again later with
 * gate_check_credential(). Returns 0, or GROVE_EPERM when r shows none or
 * it does not fit. Touches no gate state; thread-safe. */
int gate_request_credential(struct http_req *r, char *out, size_t n);
/* Who called r, as the router's check found them before the handler ran:
 * on every route not declared anonymous this is the caller (never NULL
 * there). NULL when no valid credential was checked (anonymous routes
 * that did not ask: use gate_identify). Owned by r; valid until r is
 * answered. Loop thread only. */
const struct gate_principal *gate_caller(const struct http_req *r);
/* For checks a route's declaration cannot make (one handler, two scopes):
 * true when r carries a credential with every scope in `scopes`;
 * otherwise answers 401 (no or bad credential) or 403 (missing scope) and
 * returns false. out may be NULL. */
bool gate_require(struct gate *g, struct http_req *r, unsigned scopes,
                  struct gate_principal *out);

/* ---- blocking operations (CLI verbs and the handlers' worker jobs) ------ */

/* Parses "read,write,admin". Returns 0 on an unknown scope. */
unsigned gate_scopes_parse(const char *csv);
void gate_scopes_format(unsigned scopes, char *out, size_t n);

/* Prepares an email as an account identifier (RFC 8265 UsernameCaseMapped
 * with NFKC_Casefold; the rules are in ident.c): refuses invisible,
 * control and bidi characters, maps width, case and compatibility forms,
 * and allows only letters, marks and digits outside ASCII. OUT: out (the
 * form stored and compared; at most 254 bytes + NUL, so outlen >= 255).
 * Returns 0, or GROVE_EINVAL with `why` saying what is wrong. */
int gate_email_prepare(const char *in, char *out, size_t outlen, char *why, size_t whylen);
/* The UTS #39 confusable skeleton of a prepared email (accounts whose
 * skeletons match look the same), or GROVE_EINVAL when its local part or
 * domain mixes scripts that look alike. outlen: 1024 is always enough. */
int gate_email_skeleton(const char *prepared, char *out, size_t outlen, char *why,
                        size_t whylen);
/* Brings emails stored by earlier versions to the prepared form (and
 * gives them skeletons); one that would then collide with another
 * account, or that cannot be prepared, is left as stored and logged (it
 * still signs in as typed before). Blocking; run after the migrations. */
void gate_identifiers_upgrade(struct store *st);

int gate_user_create(struct store *st, const struct gate_cfg *cfg, const char *email,
                     const char *name, const char *password, const char *role,
                     char id[40], char *err, size_t errlen);
int gate_user_list(struct store *st, json_t **out, char *err, size_t errlen);
int gate_user_set_password(struct store *st, const struct gate_cfg *cfg, const char *email,
                           const char *password, char *err, size_t errlen);
int gate_user_set_disabled(struct store *st, const char *email, bool disabled, char *err,
                           size_t errlen);
/* OUT: key the secret, shown once ("grv_…", 45 bytes with NUL), id. */
int gate_key_create(struct store *st, const char *name, unsigned scopes, const char *by,
                    char key[48], char id[24], char *err, size_t errlen);
int gate_key_list(struct store *st, json_t **out, char *err, size_t errlen);
/* A device and its key (write scope, bound to it). `type` must be one of
 * the rate classes. OUT: id (the given one, or made), key shown once. */
int gate_device_create(struct gate *g, const char *id, const char *name, const char *type,
                       const char *by, char out_id[72], char key[48], char *err,
                       size_t errlen);
int gate_key_revoke(struct store *st, const char *id, char *err, size_t errlen);
/* The newest `limit` audit entries with id < before (0: from the newest),
 * newest first. OUT: *out a JSON array of {id, at, actor, action, target,
 * outcome, ip, request_id} with the stored text exactly (the caller owns
 * it); escape it before showing it to a person (core/text.h). */
int gate_audit_list(struct store *st, long limit, long long before, json_t **out, char *err,
                    size_t errlen);
/* Appends to the audit log; never fails its caller (errors are logged). */
void gate_audit(struct store *st, const char *actor, const char *action, const char *target,
                const char *outcome, const char *ip, const char *request_id);

#endif
