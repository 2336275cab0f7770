/* text.c — escaping user-supplied text for people (see text.h). */
#include "core/text.h"

#include <stdint.h>
#include <string.h>

/* Decodes one UTF-8 character at s (n bytes left). Returns its length and
 * *cp, or 0 when the bytes are not valid UTF-8 (RFC 3629 §4). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  size_t len;
  uint32_t c, min;
  if ((s[0] & 0xe0) == 0xc0)
    len = 2, c = s[0] & 0x1f, min = 0x80;
  else if ((s[0] & 0xf0) == 0xe0)
    len = 3, c = s[0] & 0x0f, min = 0x800;
  else if ((s[0] & 0xf8) == 0xf0)
    len = 4, c = s[0] & 0x07, min = 0x10000;
  else
    return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    c = (c << 6) | (s[i] & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
    return 0;
  *cp = c;
  return len;
}

/* Characters (past ASCII) that must be spelled out. */
static int hidden(uint32_t c) {
  return (c >= 0x80 && c <= 0x9f) || c == 0xad || c == 0x61c || c == 0x180e ||
         (c >= 0x200b && c <= 0x200f) || c == 0x2028 || c == 0x2029 ||
         (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064) ||
         (c >= 0x2066 && c <= 0x206f) || c == 0xfeff;
}

int text_escape(struct buf *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, plain = 0; /* s[plain..i) is copied as is */
  int rc = 0;
  while (i < n && !rc) {
    unsigned char ch = s[i];
    uint32_t cp = 0;
    size_t len = 1;
    char esc[12];
    esc[0] = '\0';
    if (ch < 0x80) {
      if (ch == '\\')
        strcpy(esc, "\\\\");
      else if (ch == '\t')
        strcpy(esc, "\\t");
      else if (ch == '\n')
        strcpy(esc, "\\n");
      else if (ch == '\r')
        strcpy(esc, "\\r");
      else if (ch < 0x20 || ch == 0x7f)
        snprintf(esc, sizeof esc, "\\x%02x", ch);
    } else if ((len = utf8_decode(s + i, n - i, &cp)) == 0) {
      len = 1;
      snprintf(esc, sizeof esc, "\\x%02x", ch);
    } else if (hidden(cp)) {
      snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
    }
    if (esc[0]) {
      rc = buf_append(b, s + plain, i - plain);
      if (!rc)
        rc = buf_puts(b, esc);
      plain = i + len;
    }
    i += len;
  }
  if (!rc && plain < n)
    rc = buf_append(b, s + plain, n - plain);
  return rc;
}

const char *text_escape_to(char *out, size_t outlen, const char *s) {
  struct buf b;
  buf_init(&b, 0);
  if (outlen == 0)
    return out;
  out[0] = '\0';
  if (!s || text_escape(&b, s, strlen(s)) || !b.len) {
    buf_release(&b);
    return out;
  }
  size_t n = b.len < outlen ? b.len : outlen - 1;
  /* never cut inside a UTF-8 sequence */
  while (n > 0 && n < b.len && ((unsigned char)b.data[n] & 0xc0) == 0x80)
    n--;
  memcpy(out, b.data, n);
  out[n] = '\0';
  buf_release(&b);
  return out;
}

void text_fputs(const char *s, FILE *f) {
  if (!s)
    return;
  struct buf b;
  buf_init(&b, 0);
  if (!text_escape(&b, s, strlen(s)) && b.len)
    fwrite(b.data, 1, b.len, f);
  buf_release(&b);
}
