/* error.c — a matrix request job's error (struct mx_error, matrix.h): set
 * where a job finds it (parsing, on a pool thread), answered once on the
 * loop with the seed's error envelope (003 §6.1.3). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apps/matrix/matrix.h"
#include "net/http.h"

int mx_error_set(struct mx_error *e, int status, const char *code, json_t *details,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  e->status = status;
  e->code = code;
  json_decref(e->details);
  e->details = details;
  return -1;
}

void mx_error_move(struct mx_error *dst, struct mx_error *src) {
  if (dst == src) return;
  json_decref(dst->details);
  *dst = *src;
  memset(src, 0, sizeof *src);
}

void mx_error_release(struct mx_error *e) {
  json_decref(e->details);
  memset(e, 0, sizeof *e);
}

void mx_reply(struct http_req *r, json_t **data, json_t **meta, struct mx_error *e) {
  if (!r->conn) return;
  if (*data) {
    http_reply_data(r, 200, *data, meta ? *meta : NULL);
    *data = NULL;
    if (meta) *meta = NULL;
  } else {
    http_reply_error(r, e->status ? e->status : 500, e->code ? e->code : "INTERNAL", e->message,
                     e->details);
    e->details = NULL;
  }
}
