/* fuzz_ident.c — text users choose: account identifiers and the escaping
 * of text shown to people. Any bytes give a prepared email or a refusal;
 * preparing is idempotent (a stored email prepares to itself, so lookups
 * agree) and a prepared email has a skeleton or a refusal, never a crash.
 * The escaped form of any bytes holds no control byte, no bidi or
 * invisible character and only valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/text.h"
#include "gate/gate.h"

static void check_escaped(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f)
      abort();
    if (c < 0x80) {
      i++;
      continue;
    }
    /* valid UTF-8 only, and none of the characters that must be escaped */
    size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || i + len > n)
      abort();
    uint32_t cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
    for (size_t k = 1; k < len; k++) {
      if (((unsigned char)s[i + k] & 0xc0) != 0x80)
        abort();
      cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3f);
    }
    if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x202e || cp == 0x2066 || cp == 0x200b ||
        cp == 0x2028 || cp == 0xfeff || cp == 0x61c || (cp >= 0xd800 && cp <= 0xdfff))
      abort();
    i += len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  struct buf b;
  buf_init(&b, 0);
  if (text_escape(&b, (const char *)data, size) == 0 && b.len)
    check_escaped(b.data, b.len);
  buf_release(&b);
  char out[256], again[256], why[200], skel[1024];
  if (gate_email_prepare(s, out, sizeof out, why, sizeof why) == 0) {
    if (gate_email_prepare(out, again, sizeof again, why, sizeof why) != 0 ||
        strcmp(out, again) != 0)
      abort();
    int rc = gate_email_skeleton(out, skel, sizeof skel, why, sizeof why);
    if (rc != 0 && rc != GROVE_EINVAL)
      abort();
  }
  free(s);
  return 0;
}
