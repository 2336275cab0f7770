/* api.c — the jobs' HTTP routes (seed 004's names): a task's state and
 * its cancel for its owner (or an admin), and the admins' views: queues,
 * dead letters, retry, and enqueueing a job by hand. Every route's store
 * work runs on the store pool (http_req_defer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/util.h"
#include "gate/gate.h"
#include "jobs/internal.h"
#include "net/http.h"
#include "net/router.h"

enum op { OP_GET, OP_CANCEL, OP_QUEUES, OP_DEAD, OP_RETRY, OP_ENQUEUE };

struct call {
  struct jobs *j;
  enum op op;
  char id[JOBS_ID_LEN];
  char who[64];       /* the caller's id */
  bool admin;
  int limit;
  int rc;
  enum jobs_state state;
  bool existed;
  json_t *data;
  /* OP_ENQUEUE */
  char type[64];
  char *payload;
  char idem[256];
  bool has_idem;
  int64_t run_at_ms;
  char err[256];
  char rid[24];
};

static void work(void *arg) {
  struct call *c = arg;
  struct jobs *j = c->j;
  switch (c->op) {
  case OP_GET:
    c->rc = jobs_get(j, c->id, &c->data);
    if (!c->rc && !c->admin) {
      const char *owner = json_string_value(json_object_get(c->data, "owner"));
      if (!owner || strcmp(owner, c->who) != 0)
        c->rc = GROVE_ENOENT; /* another's job: as if absent */
    }
    break;
  case OP_CANCEL:
    c->rc = jobs_cancel(j, c->id, c->admin ? NULL : c->who, &c->state);
    break;
  case OP_QUEUES:
    c->rc = jobs_queues(j, &c->data);
    break;
  case OP_DEAD:
    c->rc = jobs_dead(j, c->limit, &c->data);
    break;
  case OP_RETRY:
    c->rc = jobs_retry(j, c->id);
    break;
  case OP_ENQUEUE: {
    struct jobs_new nj = {c->type, c->payload, c->who, c->has_idem ? c->idem : NULL,
                          c->run_at_ms};
    c->rc = jobs_enqueue(j, &nj, c->id, &c->existed, c->err, sizeof c->err);
    break;
  }
  }
}

static void done(struct http_req *r, void *arg) {
  struct call *c = arg;
  if (!r->conn)
    goto out;
  if (c->rc == GROVE_ENOENT) {
    http_reply_error(r, 404, "NOT_FOUND", "no such task", json_pack("{s:s}", "task_id", c->id));
  } else if (c->rc == GROVE_EEXIST) {
    const char *msg = c->op == OP_RETRY ? "only dead or cancelled tasks are retried"
                                        : "the task has finished already";
    http_reply_error(r, 409, "CONFLICT", msg,
                     c->op == OP_CANCEL
                         ? json_pack("{s:s,s:s}", "task_id", c->id, "state",
                                     jobs_state_name(c->state))
                         : json_pack("{s:s}", "task_id", c->id));
  } else if (c->rc == GROVE_EINVAL) {
    http_reply_error(r, 400, "INVALID_INPUT", c->err, NULL);
  } else if (c->rc == GROVE_ECLOSED) {
    http_res_header(r, "Retry-After", "1");
    http_reply_error(r, 503, "SHUTTING_DOWN", "the job queue is stopping; try again", NULL);
  } else if (c->rc) {
    log_error(c->rid, "jobs: request failed", "op=%d error=\"%s\"", (int)c->op,
              grove_strerror(c->rc));
    http_res_header(r, "Retry-After", "1");
    http_reply_error(r, 503, "STORE_UNAVAILABLE", "cannot do that now; try again", NULL);
  } else {
    switch (c->op) {
    case OP_GET:
      http_res_header(r, "Cache-Control", "no-store");
      http_reply_data(r, 200, c->data, NULL);
      c->data = NULL;
      break;
    case OP_QUEUES:
    case OP_DEAD:
      http_res_header(r, "Cache-Control", "no-store");
      http_reply_data(r, 200, c->data,
                      json_pack("{s:I}", "count", (json_int_t)json_array_size(c->data)));
      c->data = NULL;
      break;
    case OP_CANCEL:
      /* 202: a running handler stops at its next check */
      http_reply_data(r, c->state == JOBS_RUNNING ? 202 : 200,
                      json_pack("{s:s,s:s,s:b}", "task_id", c->id, "state",
                                jobs_state_name(c->state), "cancel_requested", 1),
                      NULL);
      break;
    case OP_RETRY:
      http_reply_data(r, 200, json_pack("{s:s,s:s}", "task_id", c->id, "state", "queued"), NULL);
      break;
    case OP_ENQUEUE: {
      char loc[64];
      snprintf(loc, sizeof loc, "/tasks/%s", c->id);
      http_res_header(r, "Location", loc);
      http_reply_data(r, c->existed ? 200 : 201,
                      json_pack("{s:s,s:s,s:b}", "task_id", c->id, "type", c->type, "existed",
                                c->existed),
                      NULL);
      break;
    }
    }
  }
out:
  json_decref(c->data);
  free(c->payload);
  free(c);
}

static struct call *call_new(struct http_req *r, enum op op) {
  struct call *c = calloc(1, sizeof *c);
  if (!c) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return NULL;
  }
  const struct gate_principal *p = gate_caller(r);
  c->j = r->app;
  c->op = op;
  if (p) {
    snprintf(c->who, sizeof c->who, "%s", p->id);
    c->admin = (p->scopes & GATE_ADMIN) != 0;
  }
  memcpy(c->rid, r->id, sizeof c->rid);
  return c;
}

static void go(struct http_req *r, struct call *c) {
  if (http_req_defer(r, HTTP_POOL_STORE, work, done, c)) {
    free(c->payload);
    free(c);
  }
}

/* The {task_id} of the path: 32 lowercase hex characters. */
static bool take_id(struct http_req *r, struct call *c) {
  const char *id = http_param(r, "task_id");
  size_t n = id ? strlen(id) : 0;
  bool ok = n == JOBS_ID_LEN - 1;
  for (size_t i = 0; ok && i < n; i++)
    ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
  if (!ok) {
    http_reply_error(r, 404, "NOT_FOUND", "no such task", NULL);
    free(c);
    return false;
  }
  memcpy(c->id, id, JOBS_ID_LEN);
  return true;
}

static void h_get(struct http_req *r) {
  struct call *c = call_new(r, OP_GET);
  if (c && take_id(r, c))
    go(r, c);
}

static void h_cancel(struct http_req *r) {
  struct call *c = call_new(r, OP_CANCEL);
  if (c && take_id(r, c))
    go(r, c);
}

static void h_retry(struct http_req *r) {
  struct call *c = call_new(r, OP_RETRY);
  if (c && take_id(r, c))
    go(r, c);
}

static void h_queues(struct http_req *r) {
  struct call *c = call_new(r, OP_QUEUES);
  if (c)
    go(r, c);
}

static void h_dead(struct http_req *r) {
  struct call *c = call_new(r, OP_DEAD);
  if (!c)
    return;
  long limit;
  if (!http_query_limit(r, 100, 1000, &limit)) {
    free(c);
    return;
  }
  c->limit = (int)limit;
  go(r, c);
}

/* {"type": "...", "payload": <any JSON>, "idempotency_key": "...",
 *  "run_at": "RFC 3339"}; the Idempotency-Key header works as the field. */
static void h_enqueue(struct http_req *r) {
  json_t *b = http_req_json(r);
  if (!b)
    return;
  struct call *c = call_new(r, OP_ENQUEUE);
  if (!c) {
    json_decref(b);
    return;
  }
  const char *bad = NULL;
  json_t *type = json_object_get(b, "type"), *payload = json_object_get(b, "payload");
  json_t *idem = json_object_get(b, "idempotency_key"), *at = json_object_get(b, "run_at");
  const char *hidem = http_header_get(r, "Idempotency-Key");
  /* a field the route does not know (priority, max_attempts, queue …) is
   * refused, not ignored: those belong to the job type, set by its app */
  char unknown[128];
  const char *key;
  json_t *v;
  json_object_foreach(b, key, v) {
    if (strcmp(key, "type") && strcmp(key, "payload") && strcmp(key, "idempotency_key") &&
        strcmp(key, "run_at")) {
      snprintf(unknown, sizeof unknown,
               "unknown field '%.40s' (type, payload, idempotency_key, run_at)", key);
      bad = unknown;
      break;
    }
  }
  if (bad)
    ; /* said above */
  else if (!json_is_string(type) || json_string_length(type) == 0)
    bad = "type: a job type's name is required";
  else if (json_string_length(type) >= 64)
    bad = "type: at most 63 characters";
  else if (idem && !json_is_null(idem) &&
           (!json_is_string(idem) || json_string_length(idem) == 0 ||
            json_string_length(idem) > 255))
    bad = "idempotency_key: 1 to 255 characters";
  else if (hidem && (!*hidem || strlen(hidem) > 255))
    bad = "Idempotency-Key: 1 to 255 characters";
  else if (hidem && json_is_string(idem) && strcmp(hidem, json_string_value(idem)) != 0)
    bad = "idempotency_key and the Idempotency-Key header differ: send one, or both the same";
  else if (at && !json_is_null(at)) {
    int64_t ns;
    int e = json_is_string(at) ? time_parse_rfc3339(json_string_value(at), &ns) : GROVE_EINVAL;
    if (e == GROVE_ERANGE)
      bad = "run_at: outside the times a job can be scheduled at (1678 to 2262, nanoseconds "
            "since 1970 in 64 bits)";
    else if (e)
      bad = "run_at: an RFC 3339 time";
    else
      c->run_at_ms = ns / 1000000;
  }
  if (!bad) {
    snprintf(c->type, sizeof c->type, "%s", json_string_value(type));
    if (json_is_string(idem) || hidem) {
      snprintf(c->idem, sizeof c->idem, "%s", json_is_string(idem) ? json_string_value(idem)
                                                                    : hidem);
      c->has_idem = true;
    }
    c->payload = payload ? jsonout_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    if (!c->payload)
      bad = "payload: cannot be encoded";
  }
  json_decref(b);
  if (bad) {
    free(c->payload);
    free(c);
    http_reply_error(r, 400, "INVALID_INPUT", bad, NULL);
    return;
  }
  go(r, c);
}

static const struct route_def routes[] = {
    {"GET", "/tasks/{task_id}", h_get, GATE_SIGNED_IN, false, NULL, false, 0},
    {"DELETE", "/tasks/{task_id}", h_cancel, GATE_SIGNED_IN, false, NULL, false, 0},
    {"GET", "/api/v1/jobs/queues", h_queues, GATE_ADMIN, false, NULL, false, 0},
    {"GET", "/api/v1/jobs/dead", h_dead, GATE_ADMIN, false, NULL, false, 0},
    {"POST", "/api/v1/jobs/{task_id}/retry", h_retry, GATE_ADMIN, false, NULL, false, 0},
    {"POST", "/api/v1/jobs", h_enqueue, GATE_ADMIN, false, NULL, false, 0},
};

int jobs_routes(struct jobs *j, struct router *r, char *err, size_t errlen) {
  return router_add_all(r, "jobs", routes, ARRAY_LEN(routes), j, err, errlen);
}
