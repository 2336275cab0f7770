/* llm.c — a small streaming HTTP/1.1 client for Ollama and
 * OpenAI-compatible chat endpoints: one request, Connection: close, the
 * body read as it comes (chunked or not), split into lines, each line's
 * piece of text handed on at once. */
#include "llm/llm.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/util.h"

#define MAX_LINE (1u << 20)

const struct cfg_opt llm_cfg_opts[] = {
    CFG_OPT(struct llm_cfg, "llm-url", CFG_STR, url, "", "a model server, http://host:port (empty: answers are built from the data alone)"),
    CFG_OPT(struct llm_cfg, "llm-api", CFG_STR, api, "ollama", "its dialect: ollama (/api/chat) or openai (/v1/chat/completions)"),
    CFG_OPT(struct llm_cfg, "llm-model", CFG_STR, model, "llama3.2", "the model to ask"),
    CFG_OPT(struct llm_cfg, "llm-key", CFG_STR, key, "", "bearer token for the model server, if it wants one"),
    CFG_OPT(struct llm_cfg, "llm-timeout", CFG_MS, timeout_ms, "60s", "longest a whole answer may take"),
};
const size_t llm_cfg_nopts = ARRAY_LEN(llm_cfg_opts);

bool llm_enabled(const struct llm_cfg *c) { return c && c->url && c->url[0]; }

struct target {
  char host[256], port[8], prefix[128];
};

/* ---- the answer, line by line --------------------------------------------------- */

struct reader {
  bool openai;
  llm_delta_fn fn;
  void *arg;
  bool done, stopped;
  char err[256];
  /* body decoding */
  bool chunked;
  long chunk_left;    /* -1: a size line is next; -2: the CRLF after a chunk */
  struct buf raw, body;
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

/* Decodes raw bytes (chunked or not) into the body. */
static int take_raw(struct reader *r) {
  if (!r->chunked) {
    buf_append(&r->body, r->raw.data, r->raw.len);
    buf_reset(&r->raw);
    return take_body(r);
  }
  for (;;) {
    if (r->chunk_left == -1) { /* a size line */
      char *eol = r->raw.len ? memchr(r->raw.data, '\n', r->raw.len) : NULL;
      if (!eol)
        return r->raw.len > 1024 ? GROVE_EPROTO : 0;
      char *end;
      long size = strtol(r->raw.data, &end, 16);
      if (end == r->raw.data || size < 0) {
        snprintf(r->err, sizeof r->err, "the model server's chunked body is broken");
        return GROVE_EPROTO;
      }
      buf_consume(&r->raw, (size_t)(eol - r->raw.data) + 1);
      if (size == 0) {
        r->done = true;
        return take_body(r);
      }
      r->chunk_left = size;
    } else if (r->chunk_left == -2) { /* the CRLF after a chunk */
      char *eol = r->raw.len ? memchr(r->raw.data, '\n', r->raw.len) : NULL;
      if (!eol)
        return 0;
      buf_consume(&r->raw, (size_t)(eol - r->raw.data) + 1);
      r->chunk_left = -1;
    } else {
      if (!r->raw.len)
        return take_body(r);
      size_t take = r->raw.len < (size_t)r->chunk_left ? r->raw.len : (size_t)r->chunk_left;
      buf_append(&r->body, r->raw.data, take);
      buf_consume(&r->raw, take);
      r->chunk_left -= (long)take;
      if (!r->chunk_left)
        r->chunk_left = -2;
      int rc = take_body(r);
      if (rc)
        return rc;
    }
  }
}

int llm_chat(const struct llm_cfg *c, const char *system, const char *user, llm_delta_fn fn,
             void *arg, char *err, size_t errlen) {
  struct target t;
  bool openai = c->api && strcasecmp(c->api, "openai") == 0;
  if (!llm_enabled(c) || http_url_parse(c->url, t.host, t.port, t.prefix)) {
    snprintf(err, errlen, "--llm-url must be http://host[:port][/prefix]");
    return GROVE_EINVAL;
  }
  if (!openai && (!c->api || strcasecmp(c->api, "ollama") != 0)) {
    snprintf(err, errlen, "--llm-api must be ollama or openai");
    return GROVE_EINVAL;
  }
  uint64_t deadline = clock_mono_ns() / 1000000 + (c->timeout_ms ? c->timeout_ms : 60000);
  json_t *req = json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:b}", "model", c->model, "messages",
                          "role", "system", "content", system, "role", "user", "content", user,
                          "stream", 1);
  char *body = req ? jsonout_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (!body) {
    snprintf(err, errlen, "out of memory");
    return GROVE_ENOMEM;
  }
  int fd = tcp_dial(t.host, t.port, c->timeout_ms ? c->timeout_ms : 60000, err, errlen);
  if (fd < 0) {
    free(body);
    return GROVE_EUNAVAIL;
  }
  struct buf head;
  buf_init(&head, 0);
  buf_printf(&head,
             "POST %s%s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
             "Accept: %s\r\nContent-Length: %zu\r\nConnection: close\r\n",
             t.prefix, openai ? "/v1/chat/completions" : "/api/chat", t.host, t.port,
             openai ? "text/event-stream" : "application/x-ndjson", strlen(body));
  if (c->key && c->key[0])
    buf_printf(&head, "Authorization: Bearer %s\r\n", c->key);
  buf_puts(&head, "\r\n");
  int rc = 0;
  if (send_all(fd, head.data, head.len) || send_all(fd, body, strlen(body))) {
    snprintf(err, errlen, "cannot send to the model server: %s", strerror(errno));
    rc = GROVE_EUNAVAIL;
  }
  buf_release(&head);
  free(body);
  struct reader r = {.openai = openai, .fn = fn, .arg = arg, .chunk_left = -1};
  buf_init(&r.raw, 0);
  buf_init(&r.body, 0);
  bool headers_done = false;
  int status = 0;
  char tmp[16384];
  while (!rc && !r.done && !r.stopped) {
    if (clock_mono_ns() / 1000000 > deadline) {
      snprintf(err, errlen, "the model took longer than --llm-timeout");
      rc = GROVE_ETIMEOUT;
      break;
    }
    ssize_t got = recv(fd, tmp, sizeof tmp, 0);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      snprintf(err, errlen, errno == EAGAIN || errno == EWOULDBLOCK
                                ? "the model took longer than --llm-timeout"
                                : "cannot read from the model server");
      rc = errno == EAGAIN || errno == EWOULDBLOCK ? GROVE_ETIMEOUT : GROVE_EUNAVAIL;
      break;
    }
    if (got == 0) { /* the server closed: whatever is left is the last line */
      if (headers_done && !r.chunked && r.body.len)
        rc = on_line(&r, r.body.data, r.body.len);
      if (!rc && !r.done && !(headers_done && status == 200 && !r.chunked)) {
        snprintf(err, errlen, "the model server closed the connection early");
        rc = headers_done && status != 200 ? GROVE_EUNAVAIL : GROVE_EPROTO;
      }
      break;
    }
    buf_append(&r.raw, tmp, (size_t)got);
    if (!headers_done) {
      char *end = memmem(r.raw.data, r.raw.len, "\r\n\r\n", 4);
      if (!end) {
        if (r.raw.len > 65536) {
          snprintf(err, errlen, "the model server's headers are too long");
          rc = GROVE_EPROTO;
        }
        continue;
      }
      headers_done = true;
      *end = '\0';
      status = strncmp(r.raw.data, "HTTP/1.", 7) == 0 ? atoi(r.raw.data + 9) : 0;
      for (char *h = strstr(r.raw.data, "\r\n"); h; h = strstr(h + 2, "\r\n"))
        if (strncasecmp(h + 2, "transfer-encoding:", 18) == 0 && strstr(h + 20, "chunked") &&
            (!strstr(h + 2, "\r\n") || strstr(h + 20, "chunked") < strstr(h + 2, "\r\n")))
          r.chunked = true;
      buf_consume(&r.raw, (size_t)(end - r.raw.data) + 4);
      if (status != 200) {
        /* its error body, briefly, for the log */
        size_t n = r.raw.len < 150 ? r.raw.len : 150;
        snprintf(err, errlen, "the model server answered %d: %.*s", status, (int)n,
                 r.raw.data ? r.raw.data : "");
        rc = GROVE_EUNAVAIL;
        break;
      }
    }
    rc = take_raw(&r);
  }
  if (rc && r.err[0] && rc != GROVE_ETIMEOUT)
    snprintf(err, errlen, "%s", r.err);
  close(fd);
  buf_release(&r.raw);
  buf_release(&r.body);
  return rc;
}
