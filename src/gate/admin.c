/* admin.c — what admins manage: API keys (POST/GET /api/v1/keys,
 * DELETE /api/v1/keys/{id}), the user list, and the audit log
 * (GET /api/v1/audit). The key and audit operations are shared with the
 * CLI. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "gate/internal.h"

/* ---- shared blocking operations ----------------------------------------- */

int gate_key_insert(struct store_conn *c, const char *name, unsigned scopes, const char *by,
                    const char *device, char key[48], char id[24], char *err, size_t errlen) {
  if (!name || !*name || strlen(name) > 200) {
    snprintf(err, errlen, "a key needs a name of at most 200 characters");
    return GROVE_EINVAL;
  }
  if (!scopes) {
    snprintf(err, errlen, "a key needs scopes: read, write, admin");
    return GROVE_EINVAL;
  }
  char secret[41], idhex[13], hash[65], prefix[16], sc[32];
  rand_hex(secret, sizeof secret);
  rand_hex(idhex, sizeof idhex);
  snprintf(key, 48, "grv_%s", secret);
  snprintf(id, 24, "key_%s", idhex);
  snprintf(prefix, sizeof prefix, "%.12s", key);
  sha256_hex(key, strlen(key), hash);
  gate_scopes_format(scopes, sc, sizeof sc);
  const char *p[] = {id, name, prefix, hash, sc, by, now_text(), device};
  int rc = store_exec(c, "INSERT INTO api_keys (id, name, prefix, hash, scopes, created_by, "
                         "created_at, device_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                      p, 8, NULL, err, errlen);
  explicit_bzero(secret, sizeof secret);
  return rc;
}

int gate_key_create(struct store *st, const char *name, unsigned scopes, const char *by,
                    char key[48], char id[24], char *err, size_t errlen) {
  struct store_conn *c;
  int rc = store_acquire(st, &c);
  if (rc) {
    snprintf(err, errlen, "no database connection");
    return rc;
  }
  rc = gate_key_insert(c, name, scopes, by, NULL, key, id, err, errlen);
  store_release(st, c);
  return rc;
}

static json_t *int_or_null(const char *s) {
  return s ? json_integer(atoll(s)) : json_null();
}

int gate_key_list(struct store *st, json_t **out, char *err, size_t errlen) {
  struct store_rows *rows;
  int rc = store_query(st, "SELECT id, name, prefix, scopes, created_by, created_at, "
                           "last_used_at, revoked_at FROM api_keys ORDER BY created_at, id",
                       NULL, 0, &rows, err, errlen);
  if (rc)
    return rc;
  json_t *a = json_array();
  for (int i = 0; i < rows->nrows; i++) {
    json_t *k = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", store_rows_get(rows, i, "id"), "name",
                          store_rows_get(rows, i, "name"), "prefix",
                          store_rows_get(rows, i, "prefix"), "scopes",
                          store_rows_get(rows, i, "scopes"), "created_by",
                          store_rows_get(rows, i, "created_by"));
    json_object_set_new(k, "created_at", int_or_null(store_rows_get(rows, i, "created_at")));
    json_object_set_new(k, "last_used_at", int_or_null(store_rows_get(rows, i, "last_used_at")));
    json_object_set_new(k, "revoked_at", int_or_null(store_rows_get(rows, i, "revoked_at")));
    json_array_append_new(a, k);
  }
  store_rows_free(rows);
  *out = a;
  return 0;
}

int gate_key_revoke(struct store *st, const char *id, char *err, size_t errlen) {
  const char *p[] = {now_text(), id};
  struct store_rows *rows;
  int rc = store_query(st, "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND "
                           "revoked_at IS NULL", p, 2, &rows, err, errlen);
  if (!rc && rows->changes == 0) {
    snprintf(err, errlen, "no active key '%s'", id);
    rc = GROVE_ENOENT;
  }
  store_rows_free(rows);
  return rc;
}

void gate_audit(struct store *st, const char *actor, const char *action, const char *target,
                const char *outcome, const char *ip, const char *request_id) {
  char err[256];
  const char *p[] = {now_text(), actor, action, target, outcome ? outcome : "-", ip ? ip : "-",
                     request_id ? request_id : "-"};
  if (store_query(st, "INSERT INTO audit_log (at, actor, action, target, outcome, ip, "
                      "request_id) VALUES ($1, $2, $3, $4, $5, $6, $7)", p, 7, NULL, err,
                  sizeof err))
    log_error(request_id, "cannot write the audit log", "action=%s error=\"%s\"", action, err);
}

int gate_audit_list(struct store *st, long limit, long long before, json_t **out, char *err,
                    size_t errlen) {
  char lim[24], bef[24];
  snprintf(lim, sizeof lim, "%ld", limit);
  snprintf(bef, sizeof bef, "%lld", before > 0 ? before : (long long)1 << 62);
  const char *p[] = {bef, lim};
  struct store_rows *rows;
  int rc = store_query(st, "SELECT id, at, actor, action, target, outcome, ip, request_id "
                           "FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
                       p, 2, &rows, err, errlen);
  if (rc)
    return rc;
  json_t *a = json_array();
  for (int i = 0; i < rows->nrows; i++)
    json_array_append_new(
        a, json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "id",
                     (json_int_t)atoll(store_rows_get(rows, i, "id")), "at",
                     (json_int_t)atoll(store_rows_get(rows, i, "at")), "actor",
                     store_rows_get(rows, i, "actor"), "action",
                     store_rows_get(rows, i, "action"), "target",
                     store_rows_get(rows, i, "target"), "outcome",
                     store_rows_get(rows, i, "outcome"), "ip", store_rows_get(rows, i, "ip"),
                     "request_id", store_rows_get(rows, i, "request_id")));
  store_rows_free(rows);
  *out = a;
  return 0;
}

/* ---- handlers ------------------------------------------------------------ */

enum admin_op { KEY_CREATE, KEY_LIST, KEY_REVOKE, USER_LIST, AUDIT_LIST };

struct admin_job {
  struct gate *g;
  enum admin_op op;
  struct gate_principal who;
  char name[256], id[64], ip[64], rid[24];
  unsigned scopes;
  long limit;
  long long before;
  /* results */
  int rc;
  char err[256];
  char key[48], key_id[24];
  json_t *list;
};

static void audit_list(struct admin_job *j) {
  j->rc = gate_audit_list(j->g->store, j->limit, j->before, &j->list, j->err, sizeof j->err);
}

static void admin_work(void *arg) {
  struct admin_job *j = arg;
  struct store *st = j->g->store;
  switch (j->op) {
  case KEY_CREATE:
    j->rc = gate_key_create(st, j->name, j->scopes, j->who.id, j->key, j->key_id, j->err,
                            sizeof j->err);
    gate_audit(st, j->who.id, "key.create", j->rc ? j->name : j->key_id, j->rc ? "error" : "ok",
               j->ip, j->rid);
    if (!j->rc)
      gate_reload(j->g);
    break;
  case KEY_REVOKE:
    j->rc = gate_key_revoke(st, j->id, j->err, sizeof j->err);
    gate_audit(st, j->who.id, "key.revoke", j->id, j->rc ? "error" : "ok", j->ip, j->rid);
    if (!j->rc)
      gate_reload(j->g);
    break;
  case KEY_LIST:
    j->rc = gate_key_list(st, &j->list, j->err, sizeof j->err);
    break;
  case USER_LIST:
    j->rc = gate_user_list(st, &j->list, j->err, sizeof j->err);
    break;
  case AUDIT_LIST:
    audit_list(j);
    break;
  }
}

static void admin_done(struct http_req *r, void *arg) {
  struct admin_job *j = arg;
  if (r->conn) {
    if (j->rc == GROVE_ENOENT) {
      http_reply_error(r, 404, "NOT_FOUND", j->err, NULL);
    } else if (j->rc == GROVE_EINVAL) {
      http_reply_error(r, 400, "INVALID_INPUT", j->err, NULL);
    } else if (j->rc) {
      log_error(j->rid, "admin operation failed", "error=\"%s\"", j->err);
      http_reply_error(r, 503, "STORE_UNAVAILABLE", "cannot do that now; try again", NULL);
    } else if (j->op == KEY_CREATE) {
      char sc[32];
      gate_scopes_format(j->scopes, sc, sizeof sc);
      http_res_header(r, "Cache-Control", "no-store");
      http_reply_data(r, 201,
                      json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", j->key_id, "name", j->name,
                                "scopes", sc, "key", j->key, "note",
                                "the key is shown once; keep it now"),
                      NULL);
    } else if (j->op == KEY_REVOKE) {
      http_reply_data(r, 200, json_pack("{s:s,s:b}", "id", j->id, "revoked", 1), NULL);
    } else {
      json_t *meta = json_pack("{s:I}", "count", (json_int_t)json_array_size(j->list));
      http_reply_data(r, 200, j->list, meta);
      j->list = NULL;
    }
  }
  json_decref(j->list);
  explicit_bzero(j->key, sizeof j->key);
  free(j);
}

static struct admin_job *admin_job(struct http_req *r, enum admin_op op) {
  struct gate *g = r->app;
  const struct gate_principal *caller = gate_caller(r);
  struct admin_job *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return NULL;
  }
  j->g = g;
  j->op = op;
  j->who = *caller;
  http_req_peer(r, j->ip, sizeof j->ip);
  memcpy(j->rid, r->id, sizeof j->rid);
  return j;
}

static void run(struct http_req *r, struct admin_job *j) {
  if (http_req_defer(r, HTTP_POOL_STORE, admin_work, admin_done, j))
    free(j);
}

static void handle_key_create(struct http_req *r) {
  struct admin_job *j = admin_job(r, KEY_CREATE);
  if (!j)
    return;
  json_t *b = gate_body(r);
  if (!b) {
    free(j);
    return;
  }
  const char *name = json_string_value(json_object_get(b, "name"));
  json_t *scopes = json_object_get(b, "scopes");
  char csv[64] = "";
  size_t i;
  json_t *v;
  bool ok = name && *name && strlen(name) <= 200 && json_is_array(scopes) &&
            json_array_size(scopes) > 0 && json_array_size(scopes) <= 3;
  json_array_foreach(scopes, i, v) {
    const char *s = json_string_value(v);
    if (!ok || !s || strlen(s) > 10) {
      ok = false;
      break;
    }
    snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%s%s", i ? "," : "", s);
  }
  if (ok) {
    snprintf(j->name, sizeof j->name, "%s", name);
    j->scopes = gate_scopes_parse(csv);
  }
  json_decref(b);
  if (!ok || !j->scopes) {
    free(j);
    http_reply_error(r, 400, "INVALID_INPUT",
                     "give a \"name\" and \"scopes\": a list of read, write, admin", NULL);
    return;
  }
  run(r, j);
}

static void handle_key_list(struct http_req *r) {
  struct admin_job *j = admin_job(r, KEY_LIST);
  if (j)
    run(r, j);
}

static void handle_key_revoke(struct http_req *r) {
  struct admin_job *j = admin_job(r, KEY_REVOKE);
  if (!j)
    return;
  snprintf(j->id, sizeof j->id, "%s", http_param(r, "id"));
  run(r, j);
}

static void handle_user_list(struct http_req *r) {
  struct admin_job *j = admin_job(r, USER_LIST);
  if (j)
    run(r, j);
}

static void handle_audit(struct http_req *r) {
  long limit, before = 0;
  if (!http_query_limit(r, 100, 1000, &limit))
    return;
  if (!http_query_long(r, "before", 1, LONG_MAX, &before)) {
    http_reply_error(r, 400, "INVALID_INPUT", "before must be an audit entry id", NULL);
    return;
  }
  struct admin_job *j = admin_job(r, AUDIT_LIST);
  if (!j)
    return;
  j->limit = limit;
  j->before = before;
  run(r, j);
}

int gate_admin_routes(struct gate *g, struct router *r, char *err, size_t errlen) {
  static const struct route_def routes[] = {
      {"POST", "/api/v1/keys", handle_key_create, .scopes = GATE_ADMIN},
      {"GET", "/api/v1/keys", handle_key_list, .scopes = GATE_ADMIN},
      {"DELETE", "/api/v1/keys/{id}", handle_key_revoke, .scopes = GATE_ADMIN},
      {"GET", "/api/v1/users", handle_user_list, .scopes = GATE_ADMIN},
      {"GET", "/api/v1/audit", handle_audit, .scopes = GATE_ADMIN},
  };
  return router_add_all(r, "gate", routes, ARRAY_LEN(routes), g, err, errlen);
}
