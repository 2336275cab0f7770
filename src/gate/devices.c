/* devices.c — the device registry (seed 001): trucks, warehouses,
 * offices, sensors, agents… Each device has a type, and its type a rate
 * class (--rate-classes); a device's requests, made with the API key
 * issued for it, are limited by that class.
 *   POST /api/v1/devices          {name, type, id?}  (admin) → the device and its key
 *   GET  /api/v1/devices          (read)
 *   GET  /api/v1/devices/{id}     (read)
 *   DELETE /api/v1/devices/{id}   (admin) → removes it and revokes its keys */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/util.h"
#include "gate/cache.h"
#include "gate/internal.h"

static bool id_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

int gate_device_create(struct gate *g, const char *id, const char *name, const char *type,
                       const char *by, char out_id[72], char key[48], char *err,
                       size_t errlen) {
  if (!gate_class(g, type)) {
    snprintf(err, errlen, "unknown device type '%s'", type);
    return GROVE_EINVAL;
  }
  if (id && *id) {
    if (!id_ok(id)) {
      snprintf(err, errlen, "device id must be 1 to 64 letters, digits, '-', '_' or '.'");
      return GROVE_EINVAL;
    }
    snprintf(out_id, 72, "%s", id);
  } else {
    char hex[13];
    rand_hex(hex, sizeof hex);
    snprintf(out_id, 72, "dev_%s", hex);
  }
  if (!name || !*name || strlen(name) > 200) {
    snprintf(err, errlen, "a device needs a name of at most 200 characters");
    return GROVE_EINVAL;
  }
  struct store_conn *c;
  int rc = store_acquire(g->store, &c);
  if (rc) {
    snprintf(err, errlen, "no database connection");
    return rc;
  }
  /* the device and its key together: a device never exists without one */
  char key_id[24], keyname[96];
  const char *p[] = {out_id, name, type, by, now_text()};
  snprintf(keyname, sizeof keyname, "device %s", out_id);
  rc = store_begin(c);
  if (!rc) {
    rc = store_exec(c, "INSERT INTO devices (id, name, type, created_by, created_at) VALUES "
                       "($1, $2, $3, $4, $5)", p, 5, NULL, err, errlen);
    if (rc == GROVE_EEXIST)
      snprintf(err, errlen, "a device '%s' exists", out_id);
    if (!rc)
      rc = gate_key_insert(c, keyname, GATE_READ | GATE_WRITE, by, out_id, key, key_id, err,
                           errlen);
    if (!rc)
      rc = store_commit(c);
    if (rc)
      store_rollback(c);
  }
  store_release(g->store, c);
  return rc;
}

/* ---- handlers ------------------------------------------------------------ */

enum dev_op { DEV_CREATE, DEV_LIST, DEV_GET, DEV_DELETE };

struct dev_job {
  struct gate *g;
  enum dev_op op;
  struct gate_principal who;
  char id[72], name[256], type[32], ip[64], rid[24];
  int rc;
  char err[256], key[48];
  json_t *out;
};

static json_t *device_json(const struct store_rows *rows, int i) {
  return json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", store_rows_get(rows, i, "id"), "name",
                   store_rows_get(rows, i, "name"), "type", store_rows_get(rows, i, "type"),
                   "created_by", store_rows_get(rows, i, "created_by"), "created_at",
                   (json_int_t)atoll(store_rows_get(rows, i, "created_at")));
}

static void dev_work(void *arg) {
  struct dev_job *j = arg;
  struct store *st = j->g->store;
  struct store_rows *rows = NULL;
  switch (j->op) {
  case DEV_CREATE: {
    char id[72];
    j->rc = gate_device_create(j->g, j->id, j->name, j->type, j->who.id, id, j->key, j->err,
                               sizeof j->err);
    snprintf(j->id, sizeof j->id, "%s", id);
    gate_audit(st, j->who.id, "device.create", j->id, j->rc ? "error" : "ok", j->ip, j->rid);
    if (!j->rc)
      gate_reload(j->g);
    break;
  }
  case DEV_LIST:
  case DEV_GET: {
    const char *p[] = {j->id};
    j->rc = j->op == DEV_LIST
                ? store_query(st, "SELECT id, name, type, created_by, created_at FROM devices "
                                  "ORDER BY id", NULL, 0, &rows, j->err, sizeof j->err)
                : store_query(st, "SELECT id, name, type, created_by, created_at FROM devices "
                                  "WHERE id = $1", p, 1, &rows, j->err, sizeof j->err);
    if (j->rc)
      break;
    if (j->op == DEV_GET) {
      if (rows->nrows == 0) {
        j->rc = GROVE_ENOENT;
        snprintf(j->err, sizeof j->err, "no device '%s'", j->id);
      } else {
        j->out = device_json(rows, 0);
      }
    } else {
      j->out = json_array();
      for (int i = 0; i < rows->nrows; i++)
        json_array_append_new(j->out, device_json(rows, i));
    }
    break;
  }
  case DEV_DELETE: {
    struct store_conn *c;
    if ((j->rc = store_acquire(st, &c))) {
      snprintf(j->err, sizeof j->err, "no database connection");
      break;
    }
    const char *p[] = {now_text(), j->id};
    const char *q[] = {j->id};
    j->rc = store_begin(c);
    if (!j->rc)
      j->rc = store_exec(c, "UPDATE api_keys SET revoked_at = $1 WHERE device_id = $2 AND "
                            "revoked_at IS NULL", p, 2, NULL, j->err, sizeof j->err);
    if (!j->rc)
      j->rc = store_exec(c, "UPDATE api_keys SET device_id = NULL WHERE device_id = $1", q, 1,
                         NULL, j->err, sizeof j->err);
    if (!j->rc)
      j->rc = store_exec(c, "DELETE FROM devices WHERE id = $1", q, 1, &rows, j->err,
                         sizeof j->err);
    if (!j->rc && rows->changes == 0) {
      j->rc = GROVE_ENOENT;
      snprintf(j->err, sizeof j->err, "no device '%s'", j->id);
    }
    if (!j->rc)
      j->rc = store_commit(c);
    if (j->rc)
      store_rollback(c);
    store_release(st, c);
    gate_audit(st, j->who.id, "device.delete", j->id, j->rc ? "error" : "ok", j->ip, j->rid);
    if (!j->rc) {
      cache_invalidate(j->g->devices, j->id);
      gate_reload(j->g);
    }
    break;
  }
  }
  store_rows_free(rows);
}

static void dev_done(struct http_req *r, void *arg) {
  struct dev_job *j = arg;
  if (r->conn) {
    if (j->rc == GROVE_ENOENT)
      http_reply_error(r, 404, "NOT_FOUND", j->err, NULL);
    else if (j->rc == GROVE_EINVAL)
      http_reply_error(r, 400, "INVALID_INPUT", j->err, NULL);
    else if (j->rc == GROVE_EEXIST)
      http_reply_error(r, 409, "DEVICE_EXISTS", j->err, NULL);
    else if (j->rc) {
      log_error(j->rid, "device operation failed", "error=\"%s\"", j->err);
      http_reply_error(r, 503, "STORE_UNAVAILABLE", "cannot do that now; try again", NULL);
    } else if (j->op == DEV_CREATE) {
      const struct rate_class *cls = gate_class(j->g, j->type);
      http_res_header(r, "Cache-Control", "no-store");
      http_reply_data(r, 201,
                      json_pack("{s:s,s:s,s:s,s:s,s:f,s:s}", "id", j->id, "name", j->name, "type",
                                j->type, "key", j->key, "rate_per_minute",
                                cls ? cls->rate.per_s * 60 : 0.0, "note",
                                "the key is shown once; keep it now"),
                      NULL);
    } else if (j->op == DEV_DELETE) {
      http_reply_data(r, 200, json_pack("{s:s,s:b}", "id", j->id, "deleted", 1), NULL);
    } else {
      json_t *meta = json_is_array(j->out)
                         ? json_pack("{s:I}", "count", (json_int_t)json_array_size(j->out))
                         : NULL;
      http_reply_data(r, 200, j->out, meta);
      j->out = NULL;
    }
  }
  json_decref(j->out);
  explicit_bzero(j->key, sizeof j->key);
  free(j);
}

static void dev_start(struct http_req *r, enum dev_op op, json_t *body) {
  struct gate *g = r->app;
  struct dev_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_decref(body);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->g = g;
  j->op = op;
  j->who = *gate_caller(r);
  http_req_peer(r, j->ip, sizeof j->ip);
  memcpy(j->rid, r->id, sizeof j->rid);
  const char *id = http_param(r, "id");
  if (id)
    snprintf(j->id, sizeof j->id, "%s", id);
  if (body) {
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *type = json_string_value(json_object_get(body, "type"));
    const char *bid = json_string_value(json_object_get(body, "id"));
    bool ok = name && type && strlen(name) < sizeof j->name && strlen(type) < sizeof j->type &&
              (!json_object_get(body, "id") || (bid && strlen(bid) < sizeof j->id));
    if (ok) {
      snprintf(j->name, sizeof j->name, "%s", name);
      snprintf(j->type, sizeof j->type, "%s", type);
      if (bid)
        snprintf(j->id, sizeof j->id, "%s", bid);
    }
    json_decref(body);
    if (!ok || !gate_class(g, j->type)) {
      json_t *types = json_array();
      for (int i = 0; i < g->nclasses; i++)
        json_array_append_new(types, json_string(g->classes[i].type));
      free(j);
      http_reply_error(r, 400, "INVALID_INPUT",
                       "give a \"name\" and a \"type\" among the device types",
                       json_pack("{s:o}", "types", types));
      return;
    }
  }
  if (http_req_defer(r, HTTP_POOL_STORE, dev_work, dev_done, j))
    free(j);
}

static void handle_create(struct http_req *r) {
  json_t *b = gate_body(r);
  if (b)
    dev_start(r, DEV_CREATE, b);
}
static void handle_list(struct http_req *r) { dev_start(r, DEV_LIST, NULL); }
/* GET /api/v1/devices/{id} reads through the "devices" cache: devices are
 * read far more often (every request of theirs) than written. */
static int load_device(struct store *st, const char *id, void *arg, struct buf *out) {
  struct store_rows *rows;
  char err[256];
  const char *p[] = {id};
  (void)arg;
  int rc = store_query(st, "SELECT id, name, type, created_by, created_at FROM devices "
                           "WHERE id = $1", p, 1, &rows, err, sizeof err);
  if (rc)
    return rc;
  if (rows->nrows == 0) {
    store_rows_free(rows);
    return GROVE_ENOENT;
  }
  json_t *d = device_json(rows, 0);
  char *txt = jsonout_dumps(d, JSON_COMPACT);
  json_decref(d);
  store_rows_free(rows);
  rc = txt ? buf_puts(out, txt) : GROVE_ENOMEM;
  free(txt);
  return rc;
}

static void device_reply(struct http_req *r, int rc, const char *val, size_t len, void *arg) {
  (void)arg;
  if (rc == 0)
    http_reply_raw(r, 200, val, len, NULL);
  else if (rc == GROVE_ENOENT)
    http_reply_error(r, 404, "NOT_FOUND", "no such device", NULL);
  else if (rc != GROVE_ECLOSED)
    http_reply_error(r, 503, "STORE_UNAVAILABLE", "cannot read devices now; try again", NULL);
}

static void handle_get(struct http_req *r) {
  struct gate *g = r->app;
  cache_get(g->devices, r, http_param(r, "id"), load_device, device_reply, NULL);
}
static void handle_delete(struct http_req *r) { dev_start(r, DEV_DELETE, NULL); }

int gate_device_routes(struct gate *g, struct router *r, char *err, size_t errlen) {
  if (!g->devices && !(g->devices = cache_create(g, "devices")))
    return GROVE_ENOMEM;
  static const struct route_def routes[] = {
      {"POST", "/api/v1/devices", handle_create, .scopes = GATE_ADMIN},
      {"GET", "/api/v1/devices", handle_list, .scopes = GATE_READ},
      {"GET", "/api/v1/devices/{id}", handle_get, .scopes = GATE_READ},
      {"DELETE", "/api/v1/devices/{id}", handle_delete, .scopes = GATE_ADMIN},
  };
  return router_add_all(r, "gate", routes, ARRAY_LEN(routes), g, err, errlen);
}
