/* gate.c — identity on the event loop: JWT checks, the credential view
 * and its reloads, security and CORS headers. */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/periodic.h"
#include "core/util.h"
#include "gate/internal.h"
#include "gate/jwt.h"
#include "broker/broker.h"

const struct cfg_opt gate_cfg_opts[] = {
    CFG_OPT(struct gate_cfg, "jwt-secret", CFG_STR, jwt_secret, "", "key that signs access tokens (empty: one is made and kept in the database)"),
    CFG_OPT(struct gate_cfg, "access-ttl", CFG_MS, access_ttl_ms, "15m", "lifetime of an access token"),
    CFG_OPT(struct gate_cfg, "refresh-ttl", CFG_MS, refresh_ttl_ms, "30d", "lifetime of a refresh token (and of a session left unused)"),
    CFG_OPT(struct gate_cfg, "registration", CFG_BOOL, registration, "true", "let anyone register with POST /auth/register"),
    CFG_OPT(struct gate_cfg, "trusted-proxies", CFG_STR, trusted_proxies, "", "reverse proxies whose X-Forwarded-For names the client, for limits, access logs and the audit: comma-separated addresses or CIDRs, IPv4 or IPv6 (empty: none; the socket's peer is the client)"),
    CFG_OPT(struct gate_cfg, "cors-origins", CFG_STR, cors_origins, "", "origins allowed to call the API from a browser: comma-separated, * for any, empty for none"),
    CFG_OPT(struct gate_cfg, "gate-refresh", CFG_MS, refresh_ms, "2s", "how often API keys, disabled users and revoked sessions are reloaded"),
    CFG_OPT(struct gate_cfg, "argon2-memory", CFG_INT, argon2_memory_kib, "19456", "argon2id memory per password hash, KiB"),
    CFG_OPT(struct gate_cfg, "argon2-passes", CFG_INT, argon2_passes, "2", "argon2id passes per password hash"),
    CFG_OPT(struct gate_cfg, "rate-global", CFG_STR, rate_global, "1000/s", "requests this instance takes, all callers together, counted after each caller's own limit; per instance, also with a broker (0: no limit)"),
    CFG_OPT(struct gate_cfg, "rate-key", CFG_STR, rate_key, "100/s", "requests per API key and per signed-in user (0: no limit)"),
    CFG_OPT(struct gate_cfg, "rate-anonymous", CFG_STR, rate_anonymous, "50/s", "requests per client address without a credential (0: no limit)"),
    CFG_OPT(struct gate_cfg, "key-lookups", CFG_STR, key_lookups, "20/s", "database lookups this instance makes for API keys it does not know yet, so a new key works at once (0: none; absent keys are remembered for --gate-refresh)"),
    CFG_OPT(struct gate_cfg, "cache-ttl", CFG_MS, cache_ttl_ms, "5m", "how long a cached read stays in this process (0: no in-process tier)"),
    CFG_OPT(struct gate_cfg, "cache-redis-ttl", CFG_MS, cache_redis_ttl_ms, "1h", "how long a cached read stays in Redis, with a broker (0: no Redis tier)"),
    CFG_OPT(struct gate_cfg, "cache-entries", CFG_INT, cache_entries, "10000", "entries per cache kept in this process (least recently used go first)"),
    CFG_OPT(struct gate_cfg, "rate-classes", CFG_STR, rate_classes, "truck=50/m,warehouse=200/m,office=500/m,sensor=60/m,agent=120/m", "device types and their request rates"),
};
const size_t gate_cfg_nopts = ARRAY_LEN(gate_cfg_opts);

const struct store_migration gate_migrations[] = {
    {1, "users",
     "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
     " name TEXT NOT NULL DEFAULT '', password_hash TEXT NOT NULL, role TEXT NOT NULL,"
     " disabled INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL)",
     NULL},
    {2, "refresh_tokens",
     "CREATE TABLE refresh_tokens (hash TEXT PRIMARY KEY, family TEXT NOT NULL,"
     " user_id TEXT NOT NULL REFERENCES users(id), created_at BIGINT NOT NULL,"
     " expires_at BIGINT NOT NULL, used_at BIGINT, revoked_at BIGINT);"
     "CREATE INDEX refresh_tokens_family ON refresh_tokens (family);"
     "CREATE INDEX refresh_tokens_revoked ON refresh_tokens (revoked_at)",
     NULL},
    {3, "api_keys",
     "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, prefix TEXT NOT NULL,"
     " hash TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL, created_by TEXT NOT NULL,"
     " created_at BIGINT NOT NULL, last_used_at BIGINT, revoked_at BIGINT)",
     NULL},
    {4, "audit_log",
     "CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at BIGINT NOT NULL,"
     " actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL,"
     " ip TEXT NOT NULL, request_id TEXT NOT NULL)",
     "CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL,"
     " actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL,"
     " ip TEXT NOT NULL, request_id TEXT NOT NULL)"},
    {5, "devices",
     "CREATE TABLE devices (id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,"
     " created_by TEXT NOT NULL, created_at BIGINT NOT NULL);"
     "ALTER TABLE api_keys ADD COLUMN device_id TEXT REFERENCES devices(id)",
     NULL},
    /* One row per session (token family): the row every rotation and every
     * revocation locks first, so a refresh racing a logout is ordered (see
     * auth.c). A family with a revoked token was revoked as a whole. */
    {6, "sessions",
     "CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),"
     " created_at BIGINT NOT NULL, revoked_at BIGINT);"
     "CREATE INDEX sessions_user ON sessions (user_id);"
     "INSERT INTO sessions (id, user_id, created_at, revoked_at)"
     " SELECT family, MIN(user_id), MIN(created_at), MAX(revoked_at) FROM refresh_tokens"
     " GROUP BY family",
     NULL},
    /* Emails as prepared identifiers (ident.c): the confusable skeleton, one
     * account per look. Stored emails are brought to the prepared form by
     * gate_identifiers_upgrade (ICU is needed, so not in SQL). */
    {7, "email_skeleton",
     "ALTER TABLE users ADD COLUMN email_skeleton TEXT;"
     "CREATE UNIQUE INDEX users_email_skeleton ON users (email_skeleton)",
     NULL},
};
const size_t gate_nmigrations = ARRAY_LEN(gate_migrations);

/* OpenSSL 3 looks a digest up (under a lock) on every one-shot SHA256()
 * call; fetch it once and keep a context per thread. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_ctx; /* freed when its thread ends */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void free_ctx(void *p) { EVP_MD_CTX_free(p); }
static void sha256_fetch(void) {
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
  pthread_key_create(&sha256_ctx, free_ctx);
}

void sha256_hex(const void *data, size_t n, char out[65]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char d[32];
  pthread_once(&sha256_once, sha256_fetch);
  EVP_MD_CTX *ctx = pthread_getspecific(sha256_ctx);
  if (!ctx && (ctx = EVP_MD_CTX_new()))
    pthread_setspecific(sha256_ctx, ctx);
  unsigned int len = 0;
  if (!ctx || !sha256_md || !EVP_DigestInit_ex(ctx, sha256_md, NULL) ||
      !EVP_DigestUpdate(ctx, data, n) || !EVP_DigestFinal_ex(ctx, d, &len))
    SHA256(data, n, d);
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[64] = '\0';
}

const char *now_text(void) {
  static _Thread_local char buf[24];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)clock_wall_ms());
  return buf;
}

/* ---- scopes -------------------------------------------------------------- */

unsigned gate_scopes_parse(const char *csv) {
  unsigned s = 0;
  const char *p = csv;
  while (p && *p) {
    const char *e = strchrnul(p, ',');
    size_t n = (size_t)(e - p);
    while (n && *p == ' ')
      p++, n--;
    if (n == 4 && strncmp(p, "read", 4) == 0)
      s |= GATE_READ;
    else if (n == 5 && strncmp(p, "write", 5) == 0)
      s |= GATE_WRITE;
    else if (n == 5 && strncmp(p, "admin", 5) == 0)
      s |= GATE_ADMIN;
    else
      return 0;
    p = *e ? e + 1 : e;
  }
  return s;
}

void gate_scopes_format(unsigned s, char *out, size_t n) {
  snprintf(out, n, "%s%s%s%s%s", s & GATE_READ ? "read" : "",
           (s & GATE_READ) && (s & (GATE_WRITE | GATE_ADMIN)) ? "," : "",
           s & GATE_WRITE ? "write" : "", (s & GATE_WRITE) && (s & GATE_ADMIN) ? "," : "",
           s & GATE_ADMIN ? "admin" : "");
}

static unsigned role_scopes(const char *role) {
  if (strcmp(role, "admin") == 0)
    return GATE_READ | GATE_WRITE | GATE_ADMIN;
  if (strcmp(role, "member") == 0)
    return GATE_READ | GATE_WRITE;
  return 0;
}

/* ---- the view ------------------------------------------------------------ */

static void view_free(struct gate_view *v) {
  if (!v)
    return;
  const char *k;
  void *val;
  for (size_t it = 0; map_next(&v->keys, &it, &k, &val);)
    free(val);
  map_release(&v->keys);
  map_release(&v->disabled);
  map_release(&v->revoked);
  free(v);
}

static void flush_used(struct gate *g) {
  pthread_mutex_lock(&g->lock);
  struct map used = g->used;
  map_init(&g->used);
  pthread_mutex_unlock(&g->lock);
  const char *id;
  void *when;
  for (size_t it = 0; map_next(&used, &it, &id, &when);) {
    char ms[24], err[128];
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)(uintptr_t)when);
    const char *p[] = {ms, id};
    store_query(g->store, "UPDATE api_keys SET last_used_at = $1 WHERE id = $2", p, 2, NULL,
                err, sizeof err);
  }
  map_release(&used);
}

/* Reads the view from the database and swaps it in. */
static int view_load(struct gate *g) {
  struct gate_view *v = calloc(1, sizeof *v);
  if (!v)
    return GROVE_ENOMEM;
  map_init(&v->keys);
  map_init(&v->disabled);
  map_init(&v->revoked);
  char err[256], since[24];
  struct store_rows *rows = NULL;
  int rc = store_query(g->store, "SELECT k.id, k.hash, k.scopes, k.device_id, d.type FROM "
                                 "api_keys k LEFT JOIN devices d ON d.id = k.device_id "
                                 "WHERE k.revoked_at IS NULL",
                       NULL, 0, &rows, err, sizeof err);
  for (int i = 0; !rc && i < rows->nrows; i++) {
    struct key_rec *k = calloc(1, sizeof *k);
    if (!k) {
      rc = GROVE_ENOMEM;
      break;
    }
    const char *dev = store_rows_get(rows, i, "device_id"), *type = store_rows_get(rows, i, "type");
    snprintf(k->id, sizeof k->id, "%s", store_rows_get(rows, i, "id"));
    snprintf(k->device, sizeof k->device, "%s", dev ? dev : "");
    snprintf(k->device_type, sizeof k->device_type, "%s", type ? type : "");
    k->scopes = gate_scopes_parse(store_rows_get(rows, i, "scopes"));
    if (map_put(&v->keys, store_rows_get(rows, i, "hash"), k, NULL)) {
      free(k);
      rc = GROVE_ENOMEM;
    }
  }
  store_rows_free(rows);
  rows = NULL;
  if (!rc)
    rc = store_query(g->store, "SELECT id FROM users WHERE disabled <> 0", NULL, 0, &rows, err,
                     sizeof err);
  for (int i = 0; !rc && i < rows->nrows; i++)
    map_put(&v->disabled, store_rows_get(rows, i, "id"), (void *)1, NULL);
  store_rows_free(rows);
  rows = NULL;
  /* sessions revoked while one of their access tokens may still be alive */
  snprintf(since, sizeof since, "%llu",
           (unsigned long long)(clock_wall_ms() - g->cfg.access_ttl_ms - 60000));
  const char *p[] = {since};
  if (!rc)
    rc = store_query(g->store, "SELECT DISTINCT family FROM refresh_tokens WHERE revoked_at > $1",
                     p, 1, &rows, err, sizeof err);
  for (int i = 0; !rc && i < rows->nrows; i++)
    map_put(&v->revoked, store_rows_get(rows, i, "family"), (void *)1, NULL);
  store_rows_free(rows);
  if (rc) {
    log_warn(NULL, "cannot reload credentials; keeping the last view", "error=\"%s\"", err);
    view_free(v);
    return rc;
  }
  pthread_mutex_lock(&g->lock);
  struct gate_view *old = g->view;
  g->view = v;
  g->view_gen++;
  pthread_mutex_unlock(&g->lock);
  view_free(old);
  return 0;
}

int gate_reload(struct gate *g) {
  int rc = view_load(g);
  /* other instances reload at once rather than within --gate-refresh */
  if (g->broker)
    broker_control_send(g->broker, GATE_VIEW_CHANGED, "", 0, NULL, 0);
  return rc;
}

/* Every --gate-refresh, or at once after gate_changed: write back key
 * uses, reload the credential view, sweep idle rate-limit buckets. */
static uint64_t refresh(void *arg) {
  struct gate *g = arg;
  flush_used(g);
  view_load(g);
  limiter_sweep(g->limiter, clock_mono_ns());
  return 0;
}

/* ---- identity ------------------------------------------------------------ */

int gate_sign_access(struct gate *g, const char *user, const char *role, const char *sid,
                     char *out, size_t n) {
  struct jwt_claims c = {0};
  snprintf(c.sub, sizeof c.sub, "%s", user);
  snprintf(c.role, sizeof c.role, "%s", role);
  snprintf(c.sid, sizeof c.sid, "%s", sid);
  c.iat = (int64_t)(clock_wall_ms() / 1000);
  c.exp = c.iat + (int64_t)(g->cfg.access_ttl_ms / 1000);
  return jwt_sign(g->key, sizeof g->key, &c, out, n) < 0 ? GROVE_ETOOBIG : 0;
}

/* Standard base64 (RFC 4648 §4, padding optional) into out; the length,
 * or -1 when it is not base64 or does not fit (out keeps a NUL). */
static long b64_decode(const char *in, size_t n, char *out, size_t outlen) {
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (c == '=')
      break;
    if (v < 0)
      return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o + 1 >= outlen)
        return -1;
      out[o++] = (char)(acc >> bits);
    }
  }
  out[o] = '\0';
  return (long)o;
}

/* The credential a request carries, in the forms clients send it:
 * - Authorization: Bearer <token> (Grove: a JWT or an API key);
 * - Authorization: Token <key> (InfluxDB 2.x clients; "user:key", as
 *   InfluxDB 1.8's 2.x-compatible API takes it, gives the key);
 * - Authorization: Basic base64(user:key) (InfluxDB 1.x clients: the
 *   password is the key);
 * - X-API-Key: <key>;
 * - the query parameter p (with u) on InfluxDB 1.x's /write and /query,
 *   the only routes where a credential may travel in the URL.
 * NULL when none; otherwise the credential, in `out` (n bytes) or in the
 * request. */
static const char *credential(struct http_req *r, char *out, size_t n) {
  const char *a = http_header_get(r, "authorization");
  if (a && (strncasecmp(a, "Bearer ", 7) == 0 || strncasecmp(a, "Token ", 6) == 0)) {
    bool token = (a[0] | 0x20) == 't';
    a += token ? 6 : 7;
    while (*a == ' ')
      a++;
    const char *colon = token ? strchr(a, ':') : NULL;
    return colon ? colon + 1 : a;
  }
  if (a && strncasecmp(a, "Basic ", 6) == 0) {
    for (a += 6; *a == ' ';)
      a++;
    char *colon;
    if (b64_decode(a, strcspn(a, " "), out, n) < 0 || !(colon = strchr(out, ':')))
      return NULL;
    return colon + 1;
  }
  const char *k = http_header_get(r, "x-api-key");
  if (k)
    return k;
  if ((strcmp(r->path, "/write") == 0 || strcmp(r->path, "/query") == 0) &&
      http_query_get(r, "p", 0, out, n) > 0)
    return out;
  return NULL;
}

_Static_assert(sizeof(struct gate_principal) <= sizeof(((struct http_req *)0)->auth),
               "the request's auth room holds a principal");

static int identify(struct gate *g, struct http_req *r, struct gate_principal *out);

int gate_identify(struct gate *g, struct http_req *r, struct gate_principal *out) {
  if (r->auth_state == 0) {
    r->auth_state = identify(g, r, (struct gate_principal *)r->auth) ? -1 : 1;
  }
  memcpy(out, r->auth, sizeof *out);
  return r->auth_state > 0 ? 0 : GROVE_EPERM;
}

static int identify_credential(struct gate *g, const char *cred, struct gate_principal *out);

static int identify(struct gate *g, struct http_req *r, struct gate_principal *out) {
  char room[256];
  return identify_credential(g, credential(r, room, sizeof room), out);
}

int gate_check_credential(struct gate *g, const char *credential, struct gate_principal *out) {
  return identify_credential(g, credential, out);
}

uint64_t gate_view_generation(struct gate *g) {
  pthread_mutex_lock(&g->lock);
  uint64_t gen = g->view_gen;
  pthread_mutex_unlock(&g->lock);
  return gen;
}

int gate_request_credential(struct http_req *r, char *out, size_t n) {
  char room[256];
  const char *c = credential(r, room, sizeof room);
  if (!c || !*c || strlen(c) >= n)
    return GROVE_EPERM;
  memcpy(out, c, strlen(c) + 1);
  return 0;
}

static int identify_credential(struct gate *g, const char *cred, struct gate_principal *out) {
  memset(out, 0, sizeof *out);
  if (!cred || !*cred)
    return GROVE_EPERM;
  int rc = GROVE_EPERM;
  if (strncmp(cred, "grv_", 4) == 0) {
    char h[65];
    sha256_hex(cred, strlen(cred), h);
    pthread_mutex_lock(&g->lock);
    struct key_rec *k = g->view ? map_get(&g->view->keys, h) : NULL;
    if (k) {
      out->user = false;
      snprintf(out->id, sizeof out->id, "%s", k->id);
      snprintf(out->role, sizeof out->role, "key");
      memcpy(out->device, k->device, sizeof out->device);
      memcpy(out->device_type, k->device_type, sizeof out->device_type);
      out->scopes = k->scopes;
      map_put(&g->used, k->id, (void *)(uintptr_t)clock_wall_ms(), NULL);
      rc = 0;
    }
    pthread_mutex_unlock(&g->lock);
  } else {
    struct jwt_claims c;
    if (jwt_verify(g->key, sizeof g->key, cred, (int64_t)(clock_wall_ms() / 1000), &c) == JWT_OK) {
      pthread_mutex_lock(&g->lock);
      bool bad = g->view && (map_get(&g->view->disabled, c.sub) || map_get(&g->view->revoked, c.sid));
      pthread_mutex_unlock(&g->lock);
      if (!bad) {
        out->user = true;
        snprintf(out->id, sizeof out->id, "%s", c.sub);
        snprintf(out->role, sizeof out->role, "%s", c.role);
        snprintf(out->sid, sizeof out->sid, "%s", c.sid);
        out->scopes = role_scopes(c.role);
        out->expires_ms = c.exp * 1000;
        rc = 0;
      }
    }
  }
  metric_add(rc ? g->auth_fail : g->auth_ok, 1);
  return rc;
}

/* Whether r's caller holds every scope in `scopes`: true, or false with
 * why filled (401 without a valid credential, 403 without a scope). */
static bool check_access(struct gate *g, struct http_req *r, unsigned scopes,
                         struct http_refusal *why) {
  if (r->auth_state == 0)
    r->auth_state = identify(g, r, (struct gate_principal *)r->auth) ? -1 : 1;
  if (r->auth_state < 0) {
    char room[256];
    why->status = 401;
    why->code = "UNAUTHORIZED";
    why->challenge = "Bearer";
    why->message = credential(r, room, sizeof room)
                       ? "credential is not valid, expired or revoked"
                       : "sign in or send an API key: Authorization: Bearer …";
    return false;
  }
  if ((((const struct gate_principal *)r->auth)->scopes & scopes) != scopes) {
    why->status = 403;
    why->code = "FORBIDDEN";
    why->message = "credential lacks a scope this route needs";
    gate_scopes_format(scopes, why->needs, sizeof why->needs);
    return false;
  }
  return true;
}

/* The router's authorizer (http.h): every route not declared anonymous
 * passes here before its handler runs. */
static bool authorize(struct http_req *r, unsigned scopes, struct http_refusal *why, void *arg) {
  return check_access(arg, r, scopes, why);
}

const struct gate_principal *gate_caller(const struct http_req *r) {
  return r->auth_state > 0 ? (const struct gate_principal *)r->auth : NULL;
}

bool gate_require(struct gate *g, struct http_req *r, unsigned scopes,
                  struct gate_principal *out) {
  struct http_refusal why = {0};
  if (!check_access(g, r, scopes, &why)) {
    if (why.challenge)
      http_res_header(r, "WWW-Authenticate", why.challenge);
    http_reply_error(r, why.status, why.code, why.message,
                     why.needs[0] ? json_pack("{s:s}", "needs", why.needs) : NULL);
    return false;
  }
  if (out)
    memcpy(out, r->auth, sizeof *out);
  return true;
}

json_t *gate_body(struct http_req *r) { return http_req_json(r); }

/* ---- headers on every answer --------------------------------------------- */

static bool origin_allowed(struct gate *g, const char *origin) {
  if (g->cors_any)
    return true;
  for (char **o = g->cors; o && *o; o++)
    if (strcmp(*o, origin) == 0)
      return true;
  return false;
}

/* ---- rate limits --------------------------------------------------------- */

const struct rate_class *gate_class(const struct gate *g, const char *type) {
  for (int i = 0; i < g->nclasses; i++)
    if (strcmp(g->classes[i].type, type) == 0)
      return &g->classes[i];
  return NULL;
}

static bool exempt(const char *path) {
  /* probes and scrapes must see an overloaded instance as it is */
  return strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0 ||
         strcmp(path, "/metrics") == 0;
}

/* RateLimit-Policy: "key";q=100;w=1 and RateLimit: "key";r=99;t=1, built
 * without printf: this runs on every limited request. */
static void limit_headers(struct http_req *r, const char *policy, const struct rate *rate,
                          const struct limit_result *res) {
  char v[256], num[24];
  size_t n = 0, pl = strlen(policy);
#define ADD(s, len) (memcpy(v + n, (s), (len)), n += (len))
#define LIT(s) ADD(s, sizeof(s) - 1)
  LIT("RateLimit-Policy: \"");
  ADD(policy, pl);
  LIT("\";q=");
  ADD(num, u64_to_dec((uint64_t)rate->quota, num));
  LIT(";w=");
  ADD(num, u64_to_dec(rate->window_s, num));
  LIT("\r\nRateLimit: \"");
  ADD(policy, pl);
  LIT("\";r=");
  ADD(num, u64_to_dec(res->remaining > 0 ? (uint64_t)res->remaining : 0, num));
  LIT(";t=");
  ADD(num, u64_to_dec((uint64_t)(res->allowed ? res->reset_s : res->retry_after_s), num));
  LIT("\r\n");
#undef LIT
#undef ADD
  http_res_header_lines(r, v, n);
}

static enum http_next refuse(struct http_req *r, const char *policy, const struct rate *rate,
                             const struct limit_result *res, struct metric *counter) {
  char retry[24];
  snprintf(retry, sizeof retry, "%ld", res->retry_after_s > 0 ? res->retry_after_s : 1);
  limit_headers(r, policy, rate, res);
  http_res_header(r, "Retry-After", retry);
  metric_add(counter, 1);
  http_reply_error(r, 429, "RATE_LIMITED", "too many requests; retry after the time given",
                   json_pack("{s:s,s:I}", "policy", policy, "retry_after_s",
                             (json_int_t)(res->retry_after_s > 0 ? res->retry_after_s : 1)));
  return HTTP_ANSWERED;
}

/* The caller's own bucket: its device's class when its key is bound to
 * one, else its key or user, else its address. False when that policy is
 * unlimited. */
bool gate_own_bucket(struct gate *g, struct http_req *r, struct bucket_ref *b) {
  struct gate_principal who;
  if (gate_identify(g, r, &who) == 0) {
    const struct rate_class *cls = who.device[0] ? gate_class(g, who.device_type) : NULL;
    if (cls) {
      *b = (struct bucket_ref){.policy = "device", .rate = &cls->rate, .refused = g->limited_device};
      snprintf(b->name, sizeof b->name, "d:%s", who.device);
    } else {
      *b = (struct bucket_ref){.policy = who.user ? "user" : "key", .rate = &g->per_key,
                               .refused = g->limited_key};
      snprintf(b->name, sizeof b->name, "%c:%s", who.user ? 'u' : 'k', who.id);
    }
  } else {
    char ip[64];
    http_req_peer(r, ip, sizeof ip);
    *b = (struct bucket_ref){.policy = "anonymous", .rate = &g->anonymous,
                             .refused = g->limited_anon};
    snprintf(b->name, sizeof b->name, "a:%s", ip);
  }
  return b->rate->per_s > 0;
}

enum http_next gate_refuse(struct http_req *r, const struct bucket_ref *b,
                           const struct limit_result *res) {
  return refuse(r, b->policy, b->rate, res, b->refused);
}

enum http_next gate_take_global(struct gate *g, struct http_req *r, const struct bucket_ref *own,
                                const struct limit_result *own_res, bool shared) {
  if (g->global.per_s > 0) {
    struct limit_result res;
    fast_bucket_take(&g->global_bucket, &g->global, clock_mono_ns(), &res);
    if (!res.allowed) {
      /* refused by the instance: the caller's own token goes back */
      if (own && shared)
        gate_shared_refund(g, r, own);
      else if (own)
        limiter_refund(g->limiter, own->name, own->rate);
      return refuse(r, "global", &g->global, &res, g->limited_global);
    }
  }
  if (own) /* the caller's own policy is the one worth stating */
    limit_headers(r, own->policy, own->rate, own_res);
  return HTTP_CONTINUE;
}

/* The caller's bucket first, the instance's only when the caller's let the
 * request through: a flood refused by its own bucket costs nobody else a
 * token (issue: one anonymous client got keyed clients refused). */
static enum http_next limit(struct gate *g, struct http_req *r) {
  struct bucket_ref own;
  if (!gate_own_bucket(g, r, &own))
    return gate_take_global(g, r, NULL, NULL, false);
  if (gate_shared_take(g, r, &own))
    return HTTP_HELD; /* Redis decides; the answer continues or refuses r */
  return gate_local_take(g, r, &own);
}

enum http_next gate_local_take(struct gate *g, struct http_req *r, const struct bucket_ref *own) {
  struct limit_result res;
  limiter_take(g->limiter, own->name, own->rate, clock_mono_ns(), &res);
  if (!res.allowed)
    return gate_refuse(r, own, &res);
  return gate_take_global(g, r, own, &res, false);
}

/* ---- keys the view does not hold yet ----------------------------------- */

/* A key made a moment ago (`grove key add`, another instance) is not in
 * the view until the next reload: it is looked up once in the database
 * before it is refused. Lookups are bounded twice, so random keys cannot
 * turn into database load: a key found absent is remembered for
 * --gate-refresh (KEY_MISSES_MAX at most; the whole memory is dropped when
 * full), and lookups take a token from an instance-wide bucket
 * (--key-lookups); without one the key is refused as before. */
#define KEY_MISSES_MAX 4096

struct key_lookup {
  struct gate *g;
  char hash[65];
  uint64_t gen;
  int rc;
  bool found;
  struct key_rec rec;
};

static void key_lookup_work(void *arg) {
  struct key_lookup *lk = arg;
  char err[256];
  struct store_rows *rows = NULL;
  const char *p[] = {lk->hash};
  lk->rc = store_query(lk->g->store, "SELECT k.id, k.scopes, k.device_id, d.type FROM api_keys k "
                                     "LEFT JOIN devices d ON d.id = k.device_id "
                                     "WHERE k.hash = $1 AND k.revoked_at IS NULL",
                       p, 1, &rows, err, sizeof err);
  if (!lk->rc && rows->nrows > 0) {
    const char *dev = store_rows_get(rows, 0, "device_id"), *type = store_rows_get(rows, 0, "type");
    lk->found = true;
    snprintf(lk->rec.id, sizeof lk->rec.id, "%s", store_rows_get(rows, 0, "id"));
    snprintf(lk->rec.device, sizeof lk->rec.device, "%s", dev ? dev : "");
    snprintf(lk->rec.device_type, sizeof lk->rec.device_type, "%s", type ? type : "");
    lk->rec.scopes = gate_scopes_parse(store_rows_get(rows, 0, "scopes"));
  } else if (lk->rc) {
    log_warn(NULL, "cannot look up an api key", "error=\"%s\"", err);
  }
  store_rows_free(rows);
}

static enum http_next limit(struct gate *g, struct http_req *r);

static void key_lookup_done(struct http_req *r, void *arg) {
  struct key_lookup *lk = arg;
  struct gate *g = lk->g;
  pthread_mutex_lock(&g->lock);
  if (lk->rc == 0 && lk->found) {
    /* a view swapped in meanwhile was read after the lookup began, or
     * holds a revocation made since: it decides */
    struct key_rec *k = g->view && g->view_gen == lk->gen ? malloc(sizeof *k) : NULL;
    if (k) {
      *k = lk->rec;
      void *old = NULL; /* two lookups of one new key both land here */
      if (map_put(&g->view->keys, lk->hash, k, &old))
        free(k);
      free(old);
    }
  } else if (lk->rc == 0) {
    if (g->key_misses.len >= KEY_MISSES_MAX) {
      map_release(&g->key_misses);
      map_init(&g->key_misses);
    }
    uint64_t ttl = g->cfg.refresh_ms ? g->cfg.refresh_ms : 1000;
    map_put(&g->key_misses, lk->hash, (void *)(uintptr_t)(clock_wall_ms() + ttl), NULL);
  }
  pthread_mutex_unlock(&g->lock);
  if (lk->rc == 0)
    metric_add(lk->found ? g->lookup_found : g->lookup_missing, 1);
  free(lk);
  if (!r->conn)
    return; /* the client left */
  if (limit(g, r) == HTTP_CONTINUE)
    http_req_continue(r);
}

/* HTTP_HELD while r's key is looked up (then the lookup's end goes on
 * with r); HTTP_ANSWERED when the store pool was full (503 answered);
 * HTTP_CONTINUE to go on now. */
static enum http_next key_lookup(struct gate *g, struct http_req *r) {
  char room[256];
  const char *cred = credential(r, room, sizeof room);
  if (r->auth_state || !cred || strncmp(cred, "grv_", 4) != 0 || strlen(cred) > 128 ||
      g->lookup_rate.per_s <= 0)
    return HTTP_CONTINUE;
  struct key_lookup *lk = calloc(1, sizeof *lk);
  if (!lk)
    return HTTP_CONTINUE;
  lk->g = g;
  sha256_hex(cred, strlen(cred), lk->hash);
  uint64_t now = clock_wall_ms();
  pthread_mutex_lock(&g->lock);
  bool known = g->view && map_get(&g->view->keys, lk->hash);
  void *miss = map_get(&g->key_misses, lk->hash);
  if (miss && (uint64_t)(uintptr_t)miss <= now) {
    map_del(&g->key_misses, lk->hash);
    miss = NULL;
  }
  lk->gen = g->view_gen;
  pthread_mutex_unlock(&g->lock);
  struct limit_result res;
  if (!known && !miss)
    fast_bucket_take(&g->lookup_bucket, &g->lookup_rate, clock_mono_ns(), &res);
  if (known || miss || !res.allowed) {
    if (!known && !miss)
      metric_add(g->lookup_skipped, 1);
    free(lk);
    return HTTP_CONTINUE;
  }
  if (http_req_defer(r, HTTP_POOL_STORE, key_lookup_work, key_lookup_done, lk)) {
    free(lk);
    return HTTP_ANSWERED;
  }
  return HTTP_HELD;
}

/* The key lookup, or the rate limit at once. */
static enum http_next lookup_or_limit(struct gate *g, struct http_req *r) {
  enum http_next n = key_lookup(g, r);
  return n != HTTP_CONTINUE ? n : limit(g, r);
}

/* Behind a trusted proxy, the client is the one it names (proxy.h). */
static void forwarded_client(struct gate *g, struct http_req *r) {
  const char *lines[16];
  int n = 0;
  for (int i = 0; i < r->nheaders && n < (int)ARRAY_LEN(lines); i++)
    if (strcasecmp(r->headers[i].name, "x-forwarded-for") == 0)
      lines[n++] = r->headers[i].value;
  if (!n)
    return;
  char peer[64], client[64];
  http_req_socket_peer(r, peer, sizeof peer);
  if (proxy_client(g->trusted, g->ntrusted, peer, lines, n, client, sizeof client))
    http_req_set_client(r, client);
}

static enum http_next before(struct http_req *r, void *arg) {
  struct gate *g = arg;
  if (g->ntrusted)
    forwarded_client(g, r);
  static const char security[] =
      "X-Content-Type-Options: nosniff\r\n"
      "X-Frame-Options: DENY\r\n"
      "Referrer-Policy: no-referrer\r\n"
      "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; "
      "img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'\r\n";
  http_res_header_lines(r, security, sizeof security - 1);
  /* with CORS on, every answer's headers depend on Origin (present,
   * allowed, refused or absent): a shared cache must key on it */
  if (g->cors_any || (g->cors && g->cors[0]))
    http_res_vary(r, "Origin");
  const char *origin = http_header_get(r, "origin");
  if (!origin || !origin_allowed(g, origin)) /* no CORS headers: the browser hides the answer */
    return exempt(r->path) ? HTTP_CONTINUE : lookup_or_limit(g, r);
  http_res_header(r, "Access-Control-Allow-Origin", g->cors_any ? "*" : origin);
  /* with the headers of resumable uploads (tus 1.0.0) that tus-js-client
   * reads and sends from a browser */
  http_res_header(r, "Access-Control-Expose-Headers",
                  "X-Request-Id, Retry-After, RateLimit, RateLimit-Policy, Location, "
                  "Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, "
                  "Upload-Concat, Upload-Blob, Tus-Resumable, Tus-Version, Tus-Extension, "
                  "Tus-Max-Size, Tus-Checksum-Algorithm");
  if (strcmp(r->method, "OPTIONS") == 0 && http_header_get(r, "access-control-request-method")) {
    http_res_header(r, "Access-Control-Allow-Methods",
                    "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    http_res_header(r, "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, X-API-Key, X-Request-Id, Last-Event-ID, "
                    "Tus-Resumable, Upload-Offset, Upload-Length, Upload-Defer-Length, "
                    "Upload-Metadata, Upload-Checksum, Upload-Concat, X-HTTP-Method-Override");
    http_res_header(r, "Access-Control-Max-Age", "600");
    http_reply(r, 204, NULL, NULL, 0);
    return HTTP_ANSWERED;
  }
  return exempt(r->path) ? HTTP_CONTINUE : lookup_or_limit(g, r);
}

/* ---- life ---------------------------------------------------------------- */

static int load_signing_key(struct gate *g, char *err, size_t errlen) {
  if (g->cfg.jwt_secret && *g->cfg.jwt_secret) {
    if (strlen(g->cfg.jwt_secret) < 32) {
      snprintf(err, errlen, "--jwt-secret must be at least 32 characters");
      return GROVE_ECONFIG;
    }
    SHA256((const unsigned char *)g->cfg.jwt_secret, strlen(g->cfg.jwt_secret), g->key);
    return 0;
  }
  /* one key for every instance sharing the database: the first makes it */
  char fresh[65];
  rand_hex(fresh, sizeof fresh);
  const char *p[] = {"jwt_key", fresh};
  int rc = store_query(g->store, "INSERT INTO grove_meta (key, value) VALUES ($1, $2) "
                                 "ON CONFLICT (key) DO NOTHING", p, 2, NULL, err, errlen);
  struct store_rows *rows = NULL;
  if (!rc)
    rc = store_query(g->store, "SELECT value FROM grove_meta WHERE key = 'jwt_key'", NULL, 0,
                     &rows, err, errlen);
  const char *v = rows ? store_rows_get(rows, 0, "value") : NULL;
  if (!rc && (!v || strlen(v) != 64)) {
    snprintf(err, errlen, "signing key in grove_meta is malformed");
    rc = GROVE_ESTORE;
  }
  if (!rc)
    SHA256((const unsigned char *)v, 64, g->key);
  store_rows_free(rows);
  return rc;
}

static int parse_origins(struct gate *g) {
  const char *s = g->cfg.cors_origins ? g->cfg.cors_origins : "";
  if (strcmp(s, "*") == 0) {
    g->cors_any = true;
    return 0;
  }
  size_t n = 1;
  for (const char *p = s; *p; p++)
    n += *p == ',';
  g->cors = calloc(n + 1, sizeof *g->cors);
  if (!g->cors)
    return GROVE_ENOMEM;
  size_t i = 0;
  for (const char *p = s; *p;) {
    const char *e = strchrnul(p, ',');
    while (*p == ' ')
      p++;
    size_t len = (size_t)(e - p);
    while (len && p[len - 1] == ' ')
      len--;
    if (len && !(g->cors[i++] = strndup(p, len)))
      return GROVE_ENOMEM;
    p = *e ? e + 1 : e;
  }
  return 0;
}

static int parse_rates(struct gate *g, const struct gate_cfg *cfg, char *err, size_t errlen) {
  const char *names[] = {"--rate-global", "--rate-key", "--rate-anonymous", "--key-lookups"};
  const char *vals[] = {cfg->rate_global, cfg->rate_key, cfg->rate_anonymous, cfg->key_lookups};
  struct rate *dst[] = {&g->global, &g->per_key, &g->anonymous, &g->lookup_rate};
  for (int i = 0; i < 4; i++)
    if (rate_parse(vals[i], dst[i])) {
      snprintf(err, errlen, "bad rate '%s' for '%s': use N/s, N/m, N/h or 0", vals[i] ? vals[i] : "",
               names[i]);
      return GROVE_ECONFIG;
    }
  const char *p = cfg->rate_classes ? cfg->rate_classes : "";
  while (*p) {
    const char *e = strchrnul(p, ',');
    const char *eq = memchr(p, '=', (size_t)(e - p));
    char rate[32];
    struct rate_class *c = &g->classes[g->nclasses];
    size_t tl = eq ? (size_t)(eq - p) : 0;
    size_t rl = eq ? (size_t)(e - eq - 1) : 0;
    if (!eq || !tl || tl >= sizeof c->type || rl >= sizeof rate ||
        g->nclasses == (int)ARRAY_LEN(g->classes)) {
      snprintf(err, errlen, "bad --rate-classes near '%.20s': use type=N/m,…", p);
      return GROVE_ECONFIG;
    }
    memcpy(c->type, p, tl);
    c->type[tl] = '\0';
    memcpy(rate, eq + 1, rl);
    rate[rl] = '\0';
    if (rate_parse(rate, &c->rate)) {
      snprintf(err, errlen, "bad rate '%s' for device type '%s'", rate, c->type);
      return GROVE_ECONFIG;
    }
    g->nclasses++;
    p = *e ? e + 1 : e;
  }
  return 0;
}

int gate_create(struct gate **out, const struct gate_cfg *cfg, struct store *st,
                struct metrics *m, char *err, size_t errlen) {
  struct gate *g = calloc(1, sizeof *g);
  if (!g)
    return GROVE_ENOMEM;
  g->cfg = *cfg;
  g->cfg.jwt_secret = NULL;
  g->cfg.cors_origins = NULL;
  g->store = st;
  pthread_mutex_init(&g->lock, NULL);
  map_init(&g->used);
  map_init(&g->key_misses);
  g->cfg.cors_origins = cfg->cors_origins;
  g->cfg.jwt_secret = cfg->jwt_secret;
  int rc = load_signing_key(g, err, errlen);
  if (!rc)
    rc = proxy_cidrs_parse(cfg->trusted_proxies, &g->trusted, &g->ntrusted, err, errlen);
  if (rc == GROVE_EINVAL)
    rc = GROVE_ECONFIG;
  if (!rc)
    rc = parse_origins(g);
  if (!rc)
    rc = parse_rates(g, cfg, err, errlen);
  if (!rc)
    rc = limiter_create(&g->limiter);
  if (!rc)
    gate_identifiers_upgrade(st);
  if (!rc && (rc = view_load(g)))
    snprintf(err, errlen, "cannot load credentials");
  g->cfg.jwt_secret = NULL;   /* not kept: the config owns it */
  g->cfg.cors_origins = NULL;
  if (rc) {
    gate_destroy(g);
    return rc;
  }
  g->metrics = m;
  if (m) {
    struct metric_family *f = metrics_family(m, "grove_auth_checks_total",
                                             "Credentials checked, by result.", METRIC_COUNTER,
                                             "result");
    g->auth_ok = metric_get(f, "ok");
    g->auth_fail = metric_get(f, "rejected");
    f = metrics_family(m, "grove_rate_limited_total", "Requests refused with 429, by policy.",
                       METRIC_COUNTER, "policy");
    g->limited_global = metric_get(f, "global");
    g->limited_key = metric_get(f, "key");
    g->limited_device = metric_get(f, "device");
    g->limited_anon = metric_get(f, "anonymous");
    f = metrics_family(m, "grove_key_lookups_total",
                       "API keys not in the credential view, by what happened: looked up and "
                       "found, looked up and missing, or refused unlooked (lookup budget spent).",
                       METRIC_COUNTER, "result");
    g->lookup_found = metric_get(f, "found");
    g->lookup_missing = metric_get(f, "missing");
    g->lookup_skipped = metric_get(f, "skipped");
    g->shared_gauge = metric_get(metrics_family(
        m, "grove_rate_limit_shared", "1 when rate limits are shared through Redis, 0 when local.",
        METRIC_GAUGE, ""));
    g->shared_fallbacks = metric_get(metrics_family(
        m, "grove_rate_limit_fallbacks_total",
        "Rate limit decisions made locally because Redis was unavailable.", METRIC_COUNTER, ""));
  }
  if ((rc = periodic_start(&g->refresher, g->cfg.refresh_ms ? g->cfg.refresh_ms : 1, refresh,
                          g))) {
    gate_destroy(g);
    return rc;
  }
  *out = g;
  return 0;
}

void gate_destroy(struct gate *g) {
  if (!g)
    return;
  if (g->refresher) {
    periodic_stop(g->refresher);
    flush_used(g);
  }
  view_free(g->view);
  cache_destroy_all(g);
  limiter_destroy(g->limiter);
  map_release(&g->used);
  map_release(&g->key_misses);
  free(g->trusted);
  for (char **o = g->cors; o && *o; o++)
    free(*o);
  free(g->cors);
  pthread_mutex_destroy(&g->lock);
  free(g);
}

int gate_routes(struct gate *g, struct router *r, char *err, size_t errlen) {
  int rc = router_before(r, "gate", before, g, err, errlen);
  if (!rc)
    rc = router_authorizer(r, "gate", authorize, g, err, errlen);
  if (!rc)
    rc = gate_auth_routes(g, r, err, errlen);
  if (!rc)
    rc = gate_admin_routes(g, r, err, errlen);
  if (!rc)
    rc = gate_device_routes(g, r, err, errlen);
  return rc;
}

void gate_changed(struct gate *g) { periodic_wake(g->refresher); }
