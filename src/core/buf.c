/* buf.c — growable byte buffer with a maximum. */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void buf_init(struct buf *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void buf_release(struct buf *b) {
  free(b->data);
  buf_init(b, b->max);
}

void buf_reset(struct buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

int buf_reserve(struct buf *b, size_t extra) {
  if (extra > (size_t)-1 / 2 - b->len)
    return GROVE_ETOOBIG;
  size_t need = b->len + extra + 1; /* + NUL */
  if (b->max && b->len + extra > b->max)
    return GROVE_ETOOBIG;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p)
    return GROVE_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int buf_append(struct buf *b, const void *p, size_t n) {
  int rc = buf_reserve(b, n);
  if (rc)
    return rc;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int buf_puts(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

int buf_putc(struct buf *b, char c) { return buf_append(b, &c, 1); }

int buf_vprintf(struct buf *b, const char *fmt, va_list ap) {
  va_list cp;
  va_copy(cp, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, cp);
  va_end(cp);
  if (n < 0)
    return GROVE_EINVAL;
  if ((size_t)n < sizeof small)
    return buf_append(b, small, (size_t)n);
  int rc = buf_reserve(b, (size_t)n);
  if (rc)
    return rc;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

void buf_consume(struct buf *b, size_t n) {
  if (n >= b->len) {
    buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

char *buf_detach(struct buf *b, size_t *len) {
  char *p = b->data;
  if (len)
    *len = b->len;
  if (!p)
    p = calloc(1, 1);
  buf_init(b, b->max);
  return p;
}

size_t utf8_seq_len(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  if (n == 0)
    return 0;
  unsigned c = p[0], cp, min;
  size_t len;
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, min = 0x80, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, min = 0x800, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, min = 0x10000, cp = c & 0x07;
  else
    return 0;
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

int buf_json_escape(struct buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      size_t len = utf8_seq_len(s + i, n - i);
      int rc = len ? buf_append(b, s + i, len) : buf_append(b, "\\ufffd", 6);
      if (rc)
        return rc;
      i += len ? len - 1 : 0;
      continue;
    }
    char esc[7];
    const char *out = NULL;
    size_t olen = 2;
    switch (c) {
    case '"': out = "\\\""; break;
    case '\\': out = "\\\\"; break;
    case '\n': out = "\\n"; break;
    case '\r': out = "\\r"; break;
    case '\t': out = "\\t"; break;
    default:
      if (c < 0x20) {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        out = esc;
        olen = 6;
      }
    }
    int rc = out ? buf_append(b, out, olen) : buf_putc(b, (char)c);
    if (rc)
      return rc;
  }
  return 0;
}
