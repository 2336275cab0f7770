/* llm.c — streaming chat with Ollama and OpenAI-compatible endpoints over
 * the outbound HTTP client (net/client.h, libcurl): one request, the body
 * read as it comes, split into lines, each line's piece of text handed on
 * at once. */
#include "llm/llm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/util.h"
#include "net/client.h"

#define MAX_LINE (1u << 20)
#define MAX_ANSWER (64u << 20) /* bytes of a whole streamed answer */

const struct cfg_opt llm_cfg_opts[] = {
    CFG_OPT(struct llm_cfg, "llm-url", CFG_STR, url, "", "a model server, http://host:port or https://host:port (empty: answers are built from the data alone)"),
    CFG_OPT(struct llm_cfg, "llm-api", CFG_STR, api, "ollama", "its dialect: ollama (/api/chat) or openai (/v1/chat/completions)"),
    CFG_OPT(struct llm_cfg, "llm-model", CFG_STR, model, "llama3.2", "the model to ask"),
    CFG_OPT(struct llm_cfg, "llm-key", CFG_STR, key, "", "bearer token for the model server, if it wants one"),
    CFG_OPT(struct llm_cfg, "llm-timeout", CFG_MS, timeout_ms, "60s", "longest a whole answer may take"),
    CFG_OPT(struct llm_cfg, "llm-ca-file", CFG_STR, ca_file, "", "PEM file of the CAs to trust for an https:// model server (empty: the system's)"),
};
const size_t llm_cfg_nopts = ARRAY_LEN(llm_cfg_opts);

bool llm_enabled(const struct llm_cfg *c) { return c && c->url && c->url[0]; }

/* ---- the answer, line by line --------------------------------------------------- */

struct reader {
  bool openai;
  llm_delta_fn fn;
  void *arg;
  bool done, stopped;
  char err[256];
  struct buf body;    /* decoded body bytes not yet split into lines */
};

/* One line of the body: a JSON object (Ollama) or an SSE field (OpenAI). */
static int on_line(struct reader *r, const char *line, size_t n) {
  while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
    n--;
  if (!n)
    return 0;
  const char *json = line;
  size_t jn = n;
  if (r->openai) {
    if (n < 5 || strncmp(line, "data:", 5) != 0)
      return 0; /* comments, event names, ids */
    json = line + 5;
    jn = n - 5;
    while (jn && *json == ' ')
      json++, jn--;
    if (jn == 6 && strncmp(json, "[DONE]", 6) == 0) {
      r->done = true;
      return 0;
    }
  }
  json_error_t e;
  json_t *o = json_loadb(json, jn, 0, &e);
  if (!o) {
    snprintf(r->err, sizeof r->err, "the model server sent a line that is not JSON: %.150s", e.text);
    return GROVE_EPROTO;
  }
  const char *text = NULL;
  json_t *error = json_object_get(o, "error");
  if (error) {
    const char *msg = json_is_string(error) ? json_string_value(error)
                                            : json_string_value(json_object_get(error, "message"));
    snprintf(r->err, sizeof r->err, "the model server says: %.200s", msg ? msg : "error");
    json_decref(o);
    return GROVE_EUNAVAIL;
  }
  if (r->openai) {
    json_t *choice = json_array_get(json_object_get(o, "choices"), 0);
    text = json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
    if (json_is_string(json_object_get(choice, "finish_reason")))
      r->done = true;
  } else {
    text = json_string_value(json_object_get(json_object_get(o, "message"), "content"));
    if (json_is_true(json_object_get(o, "done")))
      r->done = true;
  }
  int rc = 0;
  if (text && *text && !r->stopped && r->fn(text, strlen(text), r->arg))
    r->stopped = true;
  json_decref(o);
  return rc;
}

/* Splits decoded body bytes into lines. */
static int take_body(struct reader *r) {
  size_t start = 0;
  int rc = 0;
  for (size_t i = 0; i < r->body.len && !rc; i++)
    if (r->body.data[i] == '\n') {
      rc = on_line(r, r->body.data + start, i - start);
      start = i + 1;
    }
  buf_consume(&r->body, start);
  if (!rc && r->body.len > MAX_LINE) {
    snprintf(r->err, sizeof r->err, "the model server sent a line over 1 MiB");
    rc = GROVE_EPROTO;
  }
  return rc;
}

/* A piece of the answer's body: lines are handed on as they complete. */
static int on_data(const char *data, size_t len, void *arg) {
  struct reader *r = arg;
  if (buf_append(&r->body, data, len)) {
    snprintf(r->err, sizeof r->err, "out of memory");
    return GROVE_ENOMEM;
  }
  int rc = take_body(r);
  if (rc)
    return rc;
  return r->done || r->stopped ? 1 : 0;
}

int llm_chat(const struct llm_cfg *c, const char *system, const char *user, llm_delta_fn fn,
             void *arg, char *err, size_t errlen) {
  bool openai = c->api && strcasecmp(c->api, "openai") == 0;
  if (!llm_enabled(c) || http_client_url_check(c->url)) {
    snprintf(err, errlen, "--llm-url must be http(s)://host[:port][/prefix]");
    return GROVE_EINVAL;
  }
  if (!openai && (!c->api || strcasecmp(c->api, "ollama") != 0)) {
    snprintf(err, errlen, "--llm-api must be ollama or openai");
    return GROVE_EINVAL;
  }
  json_t *req = json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:b}", "model", c->model, "messages",
                          "role", "system", "content", system, "role", "user", "content", user,
                          "stream", 1);
  char *body = req ? jsonout_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  struct buf url, auth;
  buf_init(&url, 0);
  buf_init(&auth, 0);
  size_t ulen = strlen(c->url);
  while (ulen && c->url[ulen - 1] == '/')
    ulen--;
  struct http_client *client = NULL;
  int rc = 0;
  if (!body || buf_append(&url, c->url, ulen) ||
      buf_puts(&url, openai ? "/v1/chat/completions" : "/api/chat") ||
      (c->key && c->key[0] && buf_printf(&auth, "Authorization: Bearer %s", c->key)) ||
      http_client_create(&client)) {
    snprintf(err, errlen, "out of memory");
    rc = GROVE_ENOMEM;
    goto out;
  }
  const char *headers[] = {"Content-Type: application/json",
                           openai ? "Accept: text/event-stream" : "Accept: application/x-ndjson",
                           auth.len ? auth.data : NULL, NULL};
  struct reader r = {.openai = openai, .fn = fn, .arg = arg};
  buf_init(&r.body, 0);
  struct http_client_req q = {
      .method = "POST",
      .url = url.data,
      .headers = headers,
      .body = body,
      .body_len = strlen(body),
      .connect_timeout_ms = c->timeout_ms ? c->timeout_ms : 60000,
      .timeout_ms = c->timeout_ms ? c->timeout_ms : 60000,
      .max_response = MAX_ANSWER,
      .ca_file = c->ca_file,
      .on_data = on_data,
      .arg = &r,
  };
  struct http_client_res res;
  rc = http_client_request(client, &q, &res, err, errlen);
  if (rc == GROVE_ETIMEOUT) {
    snprintf(err, errlen, "the model took longer than --llm-timeout");
  } else if (rc && r.err[0]) {
    snprintf(err, errlen, "%s", r.err);
  } else if (rc) {
    /* the client's sentence stands */
  } else if (res.status != 200) {
    size_t n = res.body.len < 150 ? res.body.len : 150;
    snprintf(err, errlen, "the model server answered %ld: %.*s", res.status, (int)n,
             res.body.data ? res.body.data : "");
    rc = GROVE_EUNAVAIL;
  } else if (!r.done && !r.stopped && r.body.len) {
    /* the server closed: whatever is left is the last line */
    if ((rc = on_line(&r, r.body.data, r.body.len)))
      snprintf(err, errlen, "%s", r.err);
  }
  http_client_res_release(&res);
  buf_release(&r.body);
out:
  http_client_destroy(client);
  buf_release(&url);
  buf_release(&auth);
  free(body);
  return rc;
}
