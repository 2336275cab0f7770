/* jsonout.c — JSON text with reals in shortest round-trip form (see
 * jsonout.h). jansson writes the text (its escaping and key order stay
 * exactly as they are), then each real it wrote with 17 digits is
 * rewritten: a copy that only shortens numbers outside strings. */
#include "core/jsonout.h"
#include "core/real.h"
#include "core/buf.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t jsonout_double(char out[JSONOUT_DOUBLE_MAX], double v) {
  if (!isfinite(v)) {
    memcpy(out, "null", 5);
    return 4;
  }
  return real_shortest(out, v);
}

/* A number token of jansson's output that is a real: it has a fraction
 * or an exponent (jansson adds ".0" to integral reals). */
static int is_real(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
      return 1;
  return 0;
}

/* ---- the direct writer: compact text, as json_dumps writes it ---------------- */

/* A string as jansson's dump_string writes it (no JSON_ESCAPE_SLASH or
 * JSON_ENSURE_ASCII): '"', '\\' and control characters escaped, \b \f \n
 * \r \t short, others \u00XX in capitals; UTF-8 copied. Returns -1 for
 * text that is not UTF-8 (json_dumps refuses it too). */
static int put_string(struct buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  if (buf_putc(b, '"'))
    return -1;
  size_t run = 0; /* bytes copied as they are, from s + run */
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      size_t len = utf8_seq_len(s + i, n - i);
      if (!len)
        return -1;
      i += len;
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    char esc[6] = {'\\', 0};
    size_t elen = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    default:
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      elen = 6;
    }
    if (buf_append(b, s + run, i - run) || buf_append(b, esc, elen))
      return -1;
    run = ++i;
  }
  return buf_append(b, s + run, n - run) || buf_putc(b, '"') ? -1 : 0;
}

static int put_value(struct buf *b, const json_t *j, int depth) {
  char num[JSONOUT_DOUBLE_MAX + 2];
  size_t len;
  if (depth > 2048) /* jansson's own parser never makes deeper */
    return -1;
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    if (buf_putc(b, '{'))
      return -1;
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)j, k, v) {
      if ((!first && buf_putc(b, ',')) || put_string(b, k, strlen(k)) || buf_putc(b, ':') ||
          put_value(b, v, depth + 1))
        return -1;
      first = false;
    }
    return buf_putc(b, '}') ? -1 : 0;
  }
  case JSON_ARRAY: {
    if (buf_putc(b, '['))
      return -1;
    for (size_t i = 0, n = json_array_size(j); i < n; i++)
      if ((i && buf_putc(b, ',')) || put_value(b, json_array_get(j, i), depth + 1))
        return -1;
    return buf_putc(b, ']') ? -1 : 0;
  }
  case JSON_STRING:
    return put_string(b, json_string_value(j), json_string_length(j));
  case JSON_INTEGER:
    return buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(j)) ? -1 : 0;
  case JSON_REAL:
    len = jsonout_double(num, json_real_value(j));
    if (!strpbrk(num, ".eEn")) /* keep it a real: 17 -> 17.0 */
      memcpy(num + len, ".0", 3), len += 2;
    return buf_append(b, num, len) ? -1 : 0;
  case JSON_TRUE:
    return buf_puts(b, "true") ? -1 : 0;
  case JSON_FALSE:
    return buf_puts(b, "false") ? -1 : 0;
  case JSON_NULL:
    return buf_puts(b, "null") ? -1 : 0;
  }
  return -1;
}

/* The flags the direct writer serves: compact text, any root. */
#define DIRECT_FLAGS ((size_t)(JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(31)))

static char *dumps_direct(const json_t *j, size_t flags) {
  if (!j || (!(flags & JSON_ENCODE_ANY) && !json_is_object(j) && !json_is_array(j)))
    return NULL;
  struct buf b;
  buf_init(&b, 0);
  if (put_value(&b, j, 0) || buf_putc(&b, '\0')) {
    buf_release(&b);
    return NULL;
  }
  return b.data; /* the buffer's, handed over */
}

/* ---- the general path: jansson's text, reals rewritten ----------------------- */

static char *dumps_rewritten(const json_t *j, size_t flags) {
  char *text = json_dumps(j, flags & ~(size_t)JSON_REAL_PRECISION(31));
  if (!text)
    return NULL;
  /* shortening never makes the text longer: rewrite it in place */
  char *r = text, *w = text;
  while (*r) {
    char c = *r;
    if (c == '"') { /* copy a string whole, escapes included */
      *w++ = *r++;
      while (*r && *r != '"') {
        if (*r == '\\' && r[1])
          *w++ = *r++;
        *w++ = *r++;
      }
      if (*r)
        *w++ = *r++;
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t n = strspn(r, "-+.0123456789eE");
      if (is_real(r, n)) {
        char num[JSONOUT_DOUBLE_MAX];
        size_t len = jsonout_double(num, strtod(r, NULL));
        if (!strpbrk(num, ".eEn")) /* keep it a real: 17 -> 17.0 */
          memcpy(num + len, ".0", 3), len += 2;
        if (len <= n) {
          memcpy(w, num, len);
          w += len;
          r += n;
          continue;
        }
      }
      memmove(w, r, n);
      w += n;
      r += n;
      continue;
    }
    *w++ = *r++;
  }
  *w = '\0';
  return text;
}

char *jsonout_dumps(const json_t *j, size_t flags) {
  if ((flags & JSON_COMPACT) && !(flags & ~DIRECT_FLAGS))
    return dumps_direct(j, flags);
  return dumps_rewritten(j, flags);
}
