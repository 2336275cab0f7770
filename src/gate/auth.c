/* auth.c — users and sessions: POST /auth/register, /auth/login,
 * /auth/refresh, /auth/logout, GET /auth/me, and the user operations the
 * CLI shares. Password hashing runs on the CPU pool, the database on the store pool. */
#include <argon2.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "core/util.h"
#include "gate/internal.h"

#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024

/* ---- passwords ----------------------------------------------------------- */

static int hash_password(const struct gate_cfg *cfg, const char *pw, char *out, size_t n) {
  unsigned char salt[16];
  char hex[33];
  rand_hex(hex, sizeof hex);
  memcpy(salt, hex, 16);
  uint32_t m = cfg->argon2_memory_kib > 8 ? (uint32_t)cfg->argon2_memory_kib : 19456;
  uint32_t t = cfg->argon2_passes > 0 ? (uint32_t)cfg->argon2_passes : 2;
  int rc = argon2id_hash_encoded(t, m, 1, pw, strlen(pw), salt, sizeof salt, 32, out, n);
  return rc == ARGON2_OK ? 0 : GROVE_ENOMEM;
}

static bool password_ok(const char *encoded, const char *pw) {
  return argon2id_verify(encoded, pw, strlen(pw)) == ARGON2_OK;
}

/* ---- validation ---------------------------------------------------------- */

/* The form earlier versions stored: ASCII letters lower-cased, nothing
 * else changed. Accounts the upgrade could not bring to the prepared form
 * (gate_identifiers_upgrade) are still found by it. */
static void legacy_form(const char *in, char *out, size_t n) {
  size_t i = 0;
  for (; in[i] && i + 1 < n; i++)
    out[i] = (char)tolower((unsigned char)in[i]);
  out[i] = '\0';
}

/* Finds the user an email names: an account the upgrade left as stored
 * (no skeleton) whose email is exactly the legacy form of what was typed,
 * else the account of the prepared form. OUT: *rows (columns `cols`; no
 * row when none), prepared (may be NULL; "" when the email cannot be
 * prepared). */
static int user_find(struct store *st, const char *email, const char *cols,
                     struct store_rows **rows, char prepared[256], char *err, size_t errlen) {
  char mail[256], legacy[256], why[160], sql[256];
  bool valid = gate_email_prepare(email, mail, sizeof mail, why, sizeof why) == 0;
  legacy_form(email, legacy, sizeof legacy);
  if (prepared)
    snprintf(prepared, 256, "%s", valid ? mail : "");
  snprintf(sql, sizeof sql, "SELECT %s FROM users WHERE email = $1 AND email_skeleton IS NULL",
           cols);
  const char *q[] = {legacy};
  int rc = store_query(st, sql, q, 1, rows, err, errlen);
  if (rc || (*rows)->nrows > 0 || !valid)
    return rc;
  store_rows_free(*rows);
  *rows = NULL;
  snprintf(sql, sizeof sql, "SELECT %s FROM users WHERE email = $1", cols);
  const char *p[] = {mail};
  return store_query(st, sql, p, 1, rows, err, errlen);
}

/* A user's id by email; GROVE_ENOENT (err says so) when none. */
static int user_id_of(struct store *st, const char *email, char id[40], char *err,
                      size_t errlen) {
  struct store_rows *rows;
  int rc = user_find(st, email, "id", &rows, NULL, err, errlen);
  if (!rc && rows->nrows == 0) {
    char shown[300];
    snprintf(err, errlen, "no user with email '%s'", text_escape_to(shown, sizeof shown, email));
    rc = GROVE_ENOENT;
  }
  if (!rc)
    snprintf(id, 40, "%s", store_rows_get(rows, 0, "id"));
  store_rows_free(rows);
  return rc;
}

static const char *password_problem(const char *pw) {
  size_t n = pw ? strlen(pw) : 0;
  if (n < PASSWORD_MIN)
    return "password must have at least 8 characters";
  if (n > PASSWORD_MAX)
    return "password must have at most 1024 characters";
  return NULL;
}

/* ---- shared blocking operations ----------------------------------------- */

static int tx_end(struct store *st, struct store_conn *c, int rc);

int gate_user_create(struct store *st, const struct gate_cfg *cfg, const char *email,
                     const char *name, const char *password, const char *role, char id[40],
                     char *err, size_t errlen) {
  char mail[256], skel[1024], why[200];
  if (gate_email_prepare(email, mail, sizeof mail, why, sizeof why) ||
      gate_email_skeleton(mail, skel, sizeof skel, why, sizeof why)) {
    snprintf(err, errlen, "%s", why);
    return GROVE_EINVAL;
  }
  why[0] = '\0';
  const char *bad = password_problem(password);
  if (bad) {
    snprintf(err, errlen, "%s", bad);
    return GROVE_EINVAL;
  }
  if (strcmp(role, "admin") != 0 && strcmp(role, "member") != 0) {
    snprintf(err, errlen, "role must be admin or member");
    return GROVE_EINVAL;
  }
  char hash[256], now[24], hex[17];
  if (hash_password(cfg, password, hash, sizeof hash)) {
    snprintf(err, errlen, "cannot hash the password");
    return GROVE_ENOMEM;
  }
  rand_hex(hex, sizeof hex);
  snprintf(id, 40, "usr_%s", hex);
  snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
  const char *p[] = {id, mail, skel, name ? name : "", hash, role, now};
  int rc = store_query(st, "INSERT INTO users (id, email, email_skeleton, name, password_hash, "
                           "role, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                       p, 7, NULL, err, errlen);
  if (rc == GROVE_EEXIST)
    snprintf(err, errlen, "a user with email '%s', or one that looks the same, exists", mail);
  return rc;
}

int gate_user_list(struct store *st, json_t **out, char *err, size_t errlen) {
  struct store_rows *rows;
  int rc = store_query(st, "SELECT id, email, name, role, disabled, created_at FROM users "
                           "ORDER BY created_at, id", NULL, 0, &rows, err, errlen);
  if (rc)
    return rc;
  json_t *a = json_array();
  for (int i = 0; i < rows->nrows; i++)
    json_array_append_new(
        a, json_pack("{s:s,s:s,s:s,s:s,s:b,s:I}", "id", store_rows_get(rows, i, "id"), "email",
                     store_rows_get(rows, i, "email"), "name", store_rows_get(rows, i, "name"),
                     "role", store_rows_get(rows, i, "role"), "disabled",
                     atoi(store_rows_get(rows, i, "disabled")) != 0, "created_at",
                     (json_int_t)atoll(store_rows_get(rows, i, "created_at"))));
  store_rows_free(rows);
  *out = a;
  return 0;
}

int gate_user_set_password(struct store *st, const struct gate_cfg *cfg, const char *email,
                           const char *password, char *err, size_t errlen) {
  const char *why = password_problem(password);
  if (why) {
    snprintf(err, errlen, "%s", why);
    return GROVE_EINVAL;
  }
  char uid[40], hash[256];
  int rc = user_id_of(st, email, uid, err, errlen);
  if (rc)
    return rc;
  if (hash_password(cfg, password, hash, sizeof hash))
    return GROVE_ENOMEM;
  /* the new password and the end of every session in one transaction that
   * locks the sessions' rows, so no refresh in flight outlives it */
  struct store_conn *c;
  if (store_acquire(st, &c)) {
    snprintf(err, errlen, "no database connection");
    return GROVE_ESTORE;
  }
  const char *p[] = {hash, uid}, *q[] = {now_text(), uid};
  struct store_rows *rows = NULL;
  rc = store_begin(c);
  if (!rc)
    rc = store_exec(c, "UPDATE users SET password_hash = $1 WHERE id = $2", p, 2, &rows, err,
                    errlen);
  if (!rc && rows->changes == 0) {
    snprintf(err, errlen, "no user '%s'", uid);
    rc = GROVE_ENOENT;
  }
  store_rows_free(rows);
  if (!rc)
    rc = store_exec(c, "UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL AND "
                       "user_id = $2", q, 2, NULL, err, errlen);
  if (!rc)
    rc = store_exec(c, "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND "
                       "user_id = $2", q, 2, NULL, err, errlen);
  return tx_end(st, c, rc);
}

int gate_user_set_disabled(struct store *st, const char *email, bool disabled, char *err,
                           size_t errlen) {
  char uid[40];
  int rc = user_id_of(st, email, uid, err, errlen);
  if (rc)
    return rc;
  const char *p[] = {disabled ? "1" : "0", uid};
  struct store_rows *rows;
  rc = store_query(st, "UPDATE users SET disabled = $1 WHERE id = $2", p, 2, &rows, err, errlen);
  if (!rc && rows->changes == 0) {
    snprintf(err, errlen, "no user '%s'", uid);
    rc = GROVE_ENOENT;
  }
  store_rows_free(rows);
  return rc;
}

/* ---- sessions ------------------------------------------------------------ */

struct auth_job {
  struct gate *g;
  enum { REGISTER, LOGIN, REFRESH, LOGOUT } kind;
  char email[256], name[256], password[PASSWORD_MAX + 1], token[160];
  char ip[64], rid[24];
  /* results */
  int status;
  const char *code;
  char message[300];
  char user_id[40], role[16], sid[40], refresh[160], access[1024], mail_out[256], name_out[256];
};

static void fail(struct auth_job *j, int status, const char *code, const char *msg) {
  j->status = status;
  j->code = code;
  snprintf(j->message, sizeof j->message, "%s", msg);
}

/* ---- session rows --------------------------------------------------------
 *
 * A session (a refresh-token family) has one row in `sessions`. Whatever
 * changes a session's tokens -- a rotation, a logout, a reuse detection, a
 * new password -- runs in one write transaction that first locks the
 * session's row (an UPDATE on it: PostgreSQL waits for the row lock and then
 * sees the latest committed row; SQLite's BEGIN IMMEDIATE holds the whole
 * database's write lock) and only then reads and writes tokens. So a
 * refresh and a logout of one session are ordered: either the logout comes
 * first and the refresh finds the session revoked, or the refresh commits
 * its new token first and the logout, reading the family after the lock,
 * revokes that token too. */

/* Ends a transaction begun with store_begin: commits when rc is 0 (then
 * returns the commit's error, if any), else rolls back and returns rc. */
static int tx_end(struct store *st, struct store_conn *c, int rc) {
  if (!rc)
    rc = store_commit(c);
  if (rc)
    store_rollback(c);
  store_release(st, c);
  return rc;
}

/* Makes j->refresh and adds it to session j->sid on c (inside the caller's
 * transaction). */
static int add_token(struct store_conn *c, struct auth_job *j, char *err, size_t errlen) {
  char hex[49], hash[65], now[24], exp[24];
  rand_hex(hex, sizeof hex);
  snprintf(j->refresh, sizeof j->refresh, "grt_%s", hex);
  sha256_hex(j->refresh, strlen(j->refresh), hash);
  uint64_t t = clock_wall_ms(), e;
  if (__builtin_add_overflow(t, j->g->cfg.refresh_ttl_ms, &e))
    e = UINT64_MAX / 2;
  snprintf(now, sizeof now, "%llu", (unsigned long long)t);
  snprintf(exp, sizeof exp, "%llu", (unsigned long long)e);
  const char *p[] = {hash, j->sid, j->user_id, now, exp};
  return store_exec(c, "INSERT INTO refresh_tokens (hash, family, user_id, created_at, "
                       "expires_at) VALUES ($1, $2, $3, $4, $5)", p, 5, NULL, err, errlen);
}

/* Revokes session `sid` and every token of it, on c inside the caller's
 * transaction (the session row first: it is the lock). */
static int revoke_session(struct store_conn *c, const char *sid, char *err, size_t errlen) {
  const char *p[] = {now_text(), sid};
  int rc = store_exec(c, "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS "
                         "NULL", p, 2, NULL, err, errlen);
  if (!rc)
    rc = store_exec(c, "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND "
                       "revoked_at IS NULL", p, 2, NULL, err, errlen);
  return rc;
}

/* Starts a new session for j->user_id with its first refresh token, and
 * signs an access token; on error answers 503 in j. */
static int start_session(struct auth_job *j) {
  struct gate *g = j->g;
  char s[25], err[256] = "no database connection";
  rand_hex(s, sizeof s);
  snprintf(j->sid, sizeof j->sid, "ses_%s", s);
  struct store_conn *c;
  int rc = store_acquire(g->store, &c);
  if (!rc) {
    const char *p[] = {j->sid, j->user_id, now_text()};
    rc = store_begin(c);
    if (!rc)
      rc = store_exec(c, "INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)",
                      p, 3, NULL, err, sizeof err);
    if (!rc)
      rc = add_token(c, j, err, sizeof err);
    rc = tx_end(g->store, c, rc);
  }
  if (!rc)
    rc = gate_sign_access(g, j->user_id, j->role, j->sid, j->access, sizeof j->access);
  if (rc) {
    log_error(j->rid, "cannot start a session", "error=\"%s\"", err);
    fail(j, 503, "STORE_UNAVAILABLE", "cannot start a session now; try again");
  }
  return rc;
}

static void do_register(struct auth_job *j) {
  char err[256];
  int rc = gate_user_create(j->g->store, &j->g->cfg, j->email, j->name, j->password, "member",
                            j->user_id, err, sizeof err);
  if (rc == GROVE_EEXIST) {
    fail(j, 409, "EMAIL_TAKEN", "a user with this email exists");
  } else if (rc == GROVE_EINVAL) {
    fail(j, 400, "INVALID_INPUT", err);
  } else if (rc) {
    log_error(j->rid, "cannot register user", "error=\"%s\"", err);
    fail(j, 503, "STORE_UNAVAILABLE", "cannot register now; try again");
  } else {
    char why[160];
    gate_email_prepare(j->email, j->mail_out, sizeof j->mail_out, why, sizeof why);
    snprintf(j->name_out, sizeof j->name_out, "%s", j->name);
    snprintf(j->role, sizeof j->role, "member");
    if (!start_session(j))
      j->status = 201;
  }
  gate_audit(j->g->store, j->status == 201 ? j->user_id : "-", "user.register",
             j->mail_out[0] ? j->mail_out : j->email,
             j->status == 201 ? "ok" : j->code, j->ip, j->rid);
}

static void do_login(struct auth_job *j) {
  char mail[256], err[256];
  struct store_rows *rows = NULL;
  int rc = user_find(j->g->store, j->email, "id, email, name, role, disabled, password_hash",
                     &rows, mail, err, sizeof err);
  if (rc) {
    log_error(j->rid, "cannot look up user", "error=\"%s\"", err);
    fail(j, 503, "STORE_UNAVAILABLE", "cannot sign in now; try again");
    goto out;
  }
  const char *hash = rows ? store_rows_get(rows, 0, "password_hash") : NULL;
  if (!hash) {
    /* the same work as for a real user, so timing tells nothing */
    char dummy[256];
    hash_password(&j->g->cfg, j->password, dummy, sizeof dummy);
    fail(j, 401, "INVALID_CREDENTIALS", "email or password is wrong");
    goto out;
  }
  if (!password_ok(hash, j->password)) {
    fail(j, 401, "INVALID_CREDENTIALS", "email or password is wrong");
    goto out;
  }
  snprintf(j->user_id, sizeof j->user_id, "%s", store_rows_get(rows, 0, "id"));
  if (atoi(store_rows_get(rows, 0, "disabled"))) {
    fail(j, 403, "USER_DISABLED", "this account is disabled");
    goto out;
  }
  snprintf(j->role, sizeof j->role, "%s", store_rows_get(rows, 0, "role"));
  snprintf(j->name_out, sizeof j->name_out, "%s", store_rows_get(rows, 0, "name"));
  snprintf(j->mail_out, sizeof j->mail_out, "%s", store_rows_get(rows, 0, "email"));
  if (!start_session(j))
    j->status = 200;
out:
  store_rows_free(rows);
  /* the target as typed when it cannot be prepared: escaped when shown */
  gate_audit(j->g->store, j->user_id[0] ? j->user_id : "-", "user.login",
             mail[0] ? mail : j->email,
             j->status == 200 ? "ok" : j->code, j->ip, j->rid);
}

/* Exchanges a refresh token for new ones, in one transaction that holds
 * the session's lock (see "session rows" above). */
static void do_refresh(struct auth_job *j) {
  struct gate *g = j->g;
  char hash[65], err[256] = "no database connection";
  struct store_rows *rows = NULL;
  struct store_conn *c = NULL;
  bool reused = false;
  int rc = store_acquire(g->store, &c);
  if (rc)
    c = NULL;
  sha256_hex(j->token, strlen(j->token), hash);
  const char *p[] = {hash};
  if (!rc)
    rc = store_begin(c);
  /* the lock first: a no-op UPDATE of the session's row */
  if (!rc)
    rc = store_exec(c, "UPDATE sessions SET revoked_at = revoked_at WHERE id = (SELECT family "
                       "FROM refresh_tokens WHERE hash = $1) RETURNING id, revoked_at",
                    p, 1, &rows, err, sizeof err);
  if (rc)
    goto store_failed;
  if (rows->nrows == 0) {
    fail(j, 401, "INVALID_TOKEN", "refresh token is not valid");
    goto out;
  }
  snprintf(j->sid, sizeof j->sid, "%s", store_rows_get(rows, 0, "id"));
  bool revoked = store_rows_get(rows, 0, "revoked_at") != NULL;
  store_rows_free(rows);
  rows = NULL;
  if (revoked) {
    fail(j, 401, "TOKEN_REVOKED", "this session has ended; sign in again");
    goto out;
  }
  rc = store_exec(c, "SELECT t.user_id, t.expires_at, t.used_at, t.revoked_at, u.role, "
                     "u.disabled, u.email, u.name FROM refresh_tokens t JOIN users u ON "
                     "u.id = t.user_id WHERE t.hash = $1", p, 1, &rows, err, sizeof err);
  if (rc || rows->nrows != 1) {
    rc = rc ? rc : GROVE_ESTORE;
    goto store_failed;
  }
  snprintf(j->user_id, sizeof j->user_id, "%s", store_rows_get(rows, 0, "user_id"));
  if (store_rows_get(rows, 0, "revoked_at")) {
    fail(j, 401, "TOKEN_REVOKED", "this session has ended; sign in again");
    goto out;
  }
  if (store_rows_get(rows, 0, "used_at")) {
    /* A token already exchanged is back: it was stolen, or a client is
     * confused. Either way the session cannot be trusted. */
    if ((rc = revoke_session(c, j->sid, err, sizeof err)))
      goto store_failed;
    reused = true;
    log_warn(j->rid, "refresh token reused, session revoked", "session=%s user=%s", j->sid,
             j->user_id);
    fail(j, 401, "TOKEN_REUSED", "refresh token was already used; the session is revoked");
    goto out;
  }
  if ((uint64_t)atoll(store_rows_get(rows, 0, "expires_at")) <= clock_wall_ms()) {
    fail(j, 401, "TOKEN_EXPIRED", "refresh token has expired; sign in again");
    goto out;
  }
  if (atoi(store_rows_get(rows, 0, "disabled"))) {
    fail(j, 403, "USER_DISABLED", "this account is disabled");
    goto out;
  }
  snprintf(j->role, sizeof j->role, "%s", store_rows_get(rows, 0, "role"));
  snprintf(j->mail_out, sizeof j->mail_out, "%s", store_rows_get(rows, 0, "email"));
  snprintf(j->name_out, sizeof j->name_out, "%s", store_rows_get(rows, 0, "name"));
  store_rows_free(rows);
  rows = NULL;
  const char *q[] = {now_text(), hash};
  rc = store_exec(c, "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS "
                     "NULL AND revoked_at IS NULL", q, 2, &rows, err, sizeof err);
  if (!rc && rows->changes != 1)
    rc = GROVE_ESTORE; /* cannot happen under the lock */
  if (!rc)
    rc = add_token(c, j, err, sizeof err);
  if (rc)
    goto store_failed;
  rc = tx_end(g->store, c, 0);
  c = NULL;
  if (!rc)
    rc = gate_sign_access(g, j->user_id, j->role, j->sid, j->access, sizeof j->access);
  if (rc)
    goto store_failed;
  j->status = 200;
  goto out;
store_failed:
  log_error(j->rid, "cannot refresh a session", "error=\"%s\"", err);
  fail(j, 503, "STORE_UNAVAILABLE", "cannot refresh now; try again");
  reused = false;
  if (c) {
    tx_end(g->store, c, rc ? rc : GROVE_ESTORE);
    c = NULL;
  }
out:
  store_rows_free(rows);
  if (c && tx_end(g->store, c, 0) && reused) {
    log_error(j->rid, "cannot revoke a reused session", "session=%s", j->sid);
    fail(j, 503, "STORE_UNAVAILABLE", "cannot refresh now; try again");
    reused = false;
  }
  if (reused)
    gate_reload(g); /* this instance refuses the session's access tokens at once */
  gate_audit(g->store, j->user_id[0] ? j->user_id : "-", "session.refresh",
             j->sid[0] ? j->sid : "-", j->status == 200 ? "ok" : j->code, j->ip, j->rid);
}

/* Revokes the session of a refresh token (or j->sid, from an access
 * token) and all its tokens, holding the session's lock: a refresh of it
 * either ran before (and its new token is revoked here) or will find it
 * revoked. */
static void do_logout(struct auth_job *j) {
  struct gate *g = j->g;
  char hash[65] = "", err[256] = "no database connection";
  struct store_rows *rows = NULL;
  struct store_conn *c = NULL;
  int rc = store_acquire(g->store, &c);
  if (rc)
    c = NULL;
  if (j->token[0])
    sha256_hex(j->token, strlen(j->token), hash);
  const char *p[] = {j->token[0] ? hash : j->sid};
  if (!rc)
    rc = store_begin(c);
  if (!rc)
    rc = store_exec(c, j->token[0] ? "UPDATE sessions SET revoked_at = revoked_at WHERE id = "
                                     "(SELECT family FROM refresh_tokens WHERE hash = $1) "
                                     "RETURNING id, user_id"
                                   : "UPDATE sessions SET revoked_at = revoked_at WHERE id = "
                                     "$1 RETURNING id, user_id",
                    p, 1, &rows, err, sizeof err);
  if (!rc && rows->nrows == 1) {
    snprintf(j->sid, sizeof j->sid, "%s", store_rows_get(rows, 0, "id"));
    snprintf(j->user_id, sizeof j->user_id, "%s", store_rows_get(rows, 0, "user_id"));
    rc = revoke_session(c, j->sid, err, sizeof err);
  } else if (!rc) {
    j->sid[0] = '\0';
  }
  store_rows_free(rows);
  if (c)
    rc = tx_end(g->store, c, rc);
  if (rc) {
    log_error(j->rid, "cannot end a session", "error=\"%s\"", err);
    fail(j, 503, "STORE_UNAVAILABLE", "cannot sign out now; try again");
  } else if (!j->sid[0]) {
    fail(j, 401, "INVALID_TOKEN", "give the session's refresh token or access token");
  } else {
    gate_reload(g); /* this instance refuses the session's access tokens at once */
    j->status = 200;
  }
  gate_audit(g->store, j->user_id[0] ? j->user_id : "-", "session.logout",
             j->sid[0] ? j->sid : "-", j->status == 200 ? "ok" : j->code, j->ip, j->rid);
}

static void auth_work(void *arg) {
  struct auth_job *j = arg;
  switch (j->kind) {
  case REGISTER: do_register(j); break;
  case LOGIN: do_login(j); break;
  case REFRESH: do_refresh(j); break;
  case LOGOUT: do_logout(j); break;
  }
  explicit_bzero(j->password, sizeof j->password);
}

static void auth_done(struct http_req *r, void *arg) {
  struct auth_job *j = arg;
  if (r->conn) {
    if (j->status >= 400) {
      http_reply_error(r, j->status, j->code, j->message, NULL);
    } else if (j->kind == LOGOUT) {
      http_reply_data(r, 200, json_pack("{s:b,s:s}", "revoked", 1, "session", j->sid), NULL);
    } else {
      http_res_header(r, "Cache-Control", "no-store");
      json_t *d = json_pack("{s:{s:s,s:s,s:s,s:s},s:s,s:s,s:s,s:I}", "user", "id", j->user_id,
                            "email", j->mail_out, "name", j->name_out, "role", j->role,
                            "access_token", j->access, "refresh_token", j->refresh,
                            "token_type", "Bearer", "expires_in",
                            (json_int_t)(j->g->cfg.access_ttl_ms / 1000));
      http_reply_data(r, j->status, d, NULL);
    }
  }
  explicit_bzero(j, sizeof *j);
  free(j);
}

/* Copies a string field of the body; false (after answering 400) when it
 * is missing but required, not a string, or too long. */
static bool field(struct http_req *r, json_t *body, const char *name, bool required, char *out,
                  size_t n) {
  json_t *v = json_object_get(body, name);
  if (!v && !required) {
    out[0] = '\0';
    return true;
  }
  const char *s = json_string_value(v);
  if (!s || strlen(s) >= n) {
    char msg[96];
    snprintf(msg, sizeof msg, "'%s' must be a string of at most %zu characters", name, n - 1);
    http_reply_error(r, 400, "INVALID_INPUT", msg, json_pack("{s:s}", "field", name));
    return false;
  }
  snprintf(out, n, "%s", s);
  return true;
}

/* Registrations and sign-ins hash a password: they go to the CPU pool
 * (when it is full they are refused now, 503 BUSY, rather than queued
 * without bound; a queued one whose client left is dropped unhashed).
 * Refreshes and logouts go to the store pool. */
static void start(struct http_req *r, struct auth_job *j) {
  j->g = r->app;
  http_req_peer(r, j->ip, sizeof j->ip);
  memcpy(j->rid, r->id, sizeof j->rid);
  bool hashes = j->kind == REGISTER || j->kind == LOGIN;
  if (http_req_defer(r, hashes ? HTTP_POOL_CPU : HTTP_POOL_STORE, auth_work, auth_done, j)) {
    explicit_bzero(j, sizeof *j);
    free(j);
  }
}

static struct auth_job *job_from_body(struct http_req *r, json_t **body) {
  *body = gate_body(r);
  if (!*body)
    return NULL;
  struct auth_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_decref(*body);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
  }
  return j;
}

static void handle_register(struct http_req *r) {
  struct gate *g = r->app;
  if (!g->cfg.registration) {
    http_reply_error(r, 403, "REGISTRATION_CLOSED", "registration is closed; ask an admin", NULL);
    return;
  }
  json_t *b;
  struct auth_job *j = job_from_body(r, &b);
  if (!j)
    return;
  j->kind = REGISTER;
  bool ok = field(r, b, "email", true, j->email, sizeof j->email) &&
            field(r, b, "password", true, j->password, sizeof j->password) &&
            field(r, b, "name", false, j->name, 201);
  json_decref(b);
  char mail[256], skel[1024], problem[200];
  const char *why = ok ? password_problem(j->password) : NULL;
  if (ok && !why &&
      (gate_email_prepare(j->email, mail, sizeof mail, problem, sizeof problem) ||
       gate_email_skeleton(mail, skel, sizeof skel, problem, sizeof problem)))
    why = problem;
  if (ok && why)
    http_reply_error(r, 400, "INVALID_INPUT", why, NULL);
  if (!ok || why) {
    explicit_bzero(j, sizeof *j);
    free(j);
    return;
  }
  start(r, j);
}

static void handle_login(struct http_req *r) {
  json_t *b;
  struct auth_job *j = job_from_body(r, &b);
  if (!j)
    return;
  j->kind = LOGIN;
  bool ok = field(r, b, "email", true, j->email, sizeof j->email) &&
            field(r, b, "password", true, j->password, sizeof j->password);
  json_decref(b);
  if (!ok) {
    explicit_bzero(j, sizeof *j);
    free(j);
    return;
  }
  start(r, j);
}

static void handle_refresh(struct http_req *r) {
  json_t *b;
  struct auth_job *j = job_from_body(r, &b);
  if (!j)
    return;
  j->kind = REFRESH;
  bool ok = field(r, b, "refresh_token", true, j->token, sizeof j->token);
  json_decref(b);
  if (!ok) {
    free(j);
    return;
  }
  start(r, j);
}

static void handle_logout(struct http_req *r) {
  struct gate *g = r->app;
  struct auth_job *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->kind = LOGOUT;
  if (r->body_len) {
    json_t *b = gate_body(r);
    if (!b) {
      free(j);
      return;
    }
    bool ok = field(r, b, "refresh_token", false, j->token, sizeof j->token);
    json_decref(b);
    if (!ok) {
      free(j);
      return;
    }
  }
  struct gate_principal who;
  if (!j->token[0] && gate_identify(g, r, &who) == 0 && who.user) {
    snprintf(j->sid, sizeof j->sid, "%s", who.sid);
    snprintf(j->user_id, sizeof j->user_id, "%s", who.id);
  }
  start(r, j);
}

/* Clients ask this often (the console on every load): written without
 * building a JSON tree. Ids, roles and scopes hold no characters JSON
 * must escape. */
static void handle_me(struct http_req *r) {
  const struct gate_principal *who = gate_caller(r);
  char scopes[32], body[320];
  gate_scopes_format(who->scopes, scopes, sizeof scopes);
  int n = snprintf(body, sizeof body, "{\"kind\":\"%s\",\"id\":\"%s\",\"role\":\"%s\","
                   "\"scopes\":\"%s\"%s%s%s}", who->user ? "user" : "api_key", who->id, who->role,
                   scopes, who->user ? ",\"session\":\"" : "", who->user ? who->sid : "",
                   who->user ? "\"" : "");
  http_reply_raw(r, 200, body, (size_t)n, NULL);
}

int gate_auth_routes(struct gate *g, struct router *r, char *err, size_t errlen) {
  static const struct route_def routes[] = {
      {"POST", "/auth/register", handle_register, .anonymous = true},
      {"POST", "/auth/login", handle_login, .anonymous = true},
      {"POST", "/auth/refresh", handle_refresh, .anonymous = true},
      {"POST", "/auth/logout", handle_logout, .anonymous = true}, /* a refresh token is enough */
      {"GET", "/auth/me", handle_me, .scopes = GATE_SIGNED_IN},
  };
  return router_add_all(r, "gate", routes, ARRAY_LEN(routes), g, err, errlen);
}
