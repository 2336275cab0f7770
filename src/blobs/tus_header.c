/* tus_header.c — the tus 1.0.0 request headers, parsed strictly: every
 * value is accepted whole or refused with the header's name, a status and
 * a message (tus.h). Pure functions, no I/O; fuzzed by tests/fuzz/fuzz_tus.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "blobs/tus.h"
#include "core/error.h"

static int fail(struct tus_error *e, int status, const char *code, const char *header,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(struct tus_error *e, int status, const char *code, const char *header,
                const char *fmt, ...) {
  e->status = status;
  e->code = code;
  e->header = header;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  return GROVE_EINVAL;
}

int tus_parse_version(const char *v, struct tus_error *e) {
  if (!v)
    return fail(e, 412, "UNSUPPORTED_VERSION", "Tus-Resumable",
                "missing Tus-Resumable header: this server speaks tus " TUS_VERSION);
  if (strcmp(v, TUS_VERSION) != 0)
    return fail(e, 412, "UNSUPPORTED_VERSION", "Tus-Resumable",
                "unsupported tus version: this server speaks tus " TUS_VERSION);
  return 0;
}

int tus_parse_u64(const char *header, const char *v, uint64_t max, uint64_t *out,
                  struct tus_error *e) {
  if (!v || !*v)
    return fail(e, 400, "INVALID_HEADER", header, "%s must be a non-negative integer", header);
  if (v[0] == '0' && v[1])
    return fail(e, 400, "INVALID_HEADER", header, "%s has leading zeros", header);
  uint64_t n = 0;
  for (const char *p = v; *p; p++) {
    if (*p < '0' || *p > '9')
      return fail(e, 400, "INVALID_HEADER", header, "%s must be a non-negative integer",
                  header);
    if (n > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
      return fail(e, 400, "INVALID_HEADER", header, "%s is too large", header);
    n = n * 10 + (uint64_t)(*p - '0');
  }
  if (max && n > max)
    return fail(e, 413, "UPLOAD_TOO_LARGE", header,
                "%s is over this server's Tus-Max-Size (%llu bytes)", header,
                (unsigned long long)max);
  *out = n;
  return 0;
}

int tus_parse_defer_length(const char *v, struct tus_error *e) {
  if (!v || strcmp(v, "1") != 0)
    return fail(e, 400, "INVALID_HEADER", "Upload-Defer-Length",
                "Upload-Defer-Length must be 1");
  return 0;
}

/* ---- base64 ----------------------------------------------------------------- */

static bool b64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

/* Strict standard base64 of n bytes at s (padded, the bits after the last
 * byte zero) into out (room for 3*n/4 bytes). Returns the decoded length,
 * or -1. */
static long b64_decode_strict(const char *s, size_t n, unsigned char *out) {
  if (n % 4)
    return -1;
  size_t pad = 0;
  if (n >= 1 && s[n - 1] == '=')
    pad++;
  if (n >= 2 && s[n - 2] == '=')
    pad++;
  for (size_t i = 0; i < n - pad; i++)
    if (!b64_char((unsigned char)s[i]))
      return -1;
  if (n == 0)
    return 0;
  /* the unused bits of the last character before the padding must be 0
   * (RFC 4648 §3.5: one text per byte string) */
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int last = (int)(strchr(alphabet, s[n - pad - 1]) - alphabet);
  if ((pad == 1 && (last & 0x3)) || (pad == 2 && (last & 0xf)))
    return -1;
  int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
  if (got < 0)
    return -1;
  return (long)got - (long)pad;
}

/* ---- Upload-Metadata ------------------------------------------------------- */

void tus_metadata_release(struct tus_metadata *m) {
  for (int i = 0; i < m->n; i++) {
    free(m->pairs[i].key);
    free(m->pairs[i].value);
  }
  free(m->pairs);
  m->pairs = NULL;
  m->n = 0;
}

const unsigned char *tus_metadata_get(const struct tus_metadata *m, const char *key,
                                      size_t *len) {
  for (int i = 0; i < m->n; i++)
    if (strcmp(m->pairs[i].key, key) == 0) {
      if (len)
        *len = m->pairs[i].len;
      return m->pairs[i].value;
    }
  return NULL;
}

#define META "Upload-Metadata"

int tus_parse_metadata(const char *v, struct tus_metadata *m, struct tus_error *e) {
  m->pairs = NULL;
  m->n = 0;
  if (!v)
    return 0;
  const char *p = v;
  while (*p == ' ' || *p == '\t')
    p++;
  if (!*p)
    return 0;
  m->pairs = calloc(TUS_MAX_METADATA_PAIRS, sizeof *m->pairs);
  if (!m->pairs)
    return GROVE_ENOMEM;
  for (;;) {
    const char *end = strchr(p, ',');
    if (!end)
      end = p + strlen(p);
    /* the pair is [p, end) without the blanks around it */
    const char *q = end;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
      q--;
    if (q == p)
      return fail(e, 400, "INVALID_HEADER", META, "Upload-Metadata has an empty pair");
    const char *sp = memchr(p, ' ', (size_t)(q - p));
    size_t klen = sp ? (size_t)(sp - p) : (size_t)(q - p);
    if (klen == 0 || klen > TUS_MAX_METADATA_KEY)
      return fail(e, 400, "INVALID_HEADER", META,
                  "Upload-Metadata keys have 1 to %d bytes", TUS_MAX_METADATA_KEY);
    for (size_t i = 0; i < klen; i++)
      if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
        return fail(e, 400, "INVALID_HEADER", META,
                    "Upload-Metadata keys are printable ASCII without spaces");
    if (m->n == TUS_MAX_METADATA_PAIRS)
      return fail(e, 400, "INVALID_HEADER", META, "Upload-Metadata has more than %d pairs",
                  TUS_MAX_METADATA_PAIRS);
    for (int i = 0; i < m->n; i++)
      if (strlen(m->pairs[i].key) == klen && memcmp(m->pairs[i].key, p, klen) == 0)
        return fail(e, 400, "INVALID_HEADER", META, "Upload-Metadata repeats key '%.*s'",
                    (int)klen, p);
    const char *val = sp ? sp + 1 : q;
    size_t vlen = (size_t)(q - val);
    if (sp && vlen == 0)
      return fail(e, 400, "INVALID_HEADER", META,
                  "Upload-Metadata key '%.*s' has a space but no value", (int)klen, p);
    if (vlen / 4 * 3 > TUS_MAX_METADATA_VALUE + 2)
      return fail(e, 400, "INVALID_HEADER", META,
                  "Upload-Metadata value of '%.*s' is over %d bytes", (int)klen, p,
                  TUS_MAX_METADATA_VALUE);
    struct tus_meta_pair *pair = &m->pairs[m->n];
    pair->key = strndup(p, klen);
    pair->value = malloc(vlen / 4 * 3 + 3);
    if (!pair->key || !pair->value) {
      free(pair->key);
      free(pair->value);
      pair->key = NULL;
      pair->value = NULL;
      return GROVE_ENOMEM;
    }
    m->n++;
    long got = b64_decode_strict(val, vlen, pair->value);
    if (got < 0)
      return fail(e, 400, "INVALID_HEADER", META,
                  "Upload-Metadata value of '%.*s' is not base64", (int)klen, p);
    if (got > TUS_MAX_METADATA_VALUE)
      return fail(e, 400, "INVALID_HEADER", META,
                  "Upload-Metadata value of '%.*s' is over %d bytes", (int)klen, p,
                  TUS_MAX_METADATA_VALUE);
    pair->len = (size_t)got;
    pair->value[got] = '\0';
    if (!*end)
      return 0;
    p = end + 1;
    while (*p == ' ' || *p == '\t')
      p++;
  }
}

/* ---- Upload-Checksum --------------------------------------------------------- */

int tus_parse_checksum(const char *v, unsigned char digest[32], struct tus_error *e) {
  const char *h = "Upload-Checksum";
  if (!v || !*v)
    return fail(e, 400, "INVALID_HEADER", h, "Upload-Checksum is empty");
  const char *sp = strchr(v, ' ');
  if (!sp)
    return fail(e, 400, "INVALID_HEADER", h,
                "Upload-Checksum must be an algorithm, a space and a base64 digest");
  size_t alen = (size_t)(sp - v);
  if (alen != 6 || strncmp(v, "sha256", 6) != 0)
    return fail(e, 400, "UNSUPPORTED_CHECKSUM", h,
                "unsupported checksum algorithm '%.*s': Tus-Checksum-Algorithm is " TUS_CHECKSUM_ALGORITHMS,
                (int)(alen > 32 ? 32 : alen), v);
  const char *b = sp + 1;
  size_t blen = strlen(b);
  unsigned char out[48];
  long got = blen == 44 ? b64_decode_strict(b, blen, out) : -1;
  if (got != 32)
    return fail(e, 400, "INVALID_HEADER", h,
                "Upload-Checksum's digest must be the base64 of 32 bytes (SHA-256)");
  memcpy(digest, out, 32);
  return 0;
}

/* ---- Upload-Concat ---------------------------------------------------------- */

bool tus_id_valid(const char *id) {
  size_t i = 0;
  for (; id[i]; i++)
    if (i >= TUS_ID_LEN - 1 || !((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return false;
  return i == TUS_ID_LEN - 1;
}

void tus_concat_release(struct tus_concat *c) {
  free(c->parts);
  c->parts = NULL;
  c->nparts = 0;
}

/* One URL of a final concatenation, [s, s+n): its upload id into id. */
static bool concat_url(const char *s, size_t n, char id[TUS_ID_LEN]) {
  const char *p = s, *end = s + n;
  if (n >= 8 && strncmp(p, "https://", 8) == 0)
    p += 8;
  else if (n >= 7 && strncmp(p, "http://", 7) == 0)
    p += 7;
  if (p != s) { /* the authority: up to the path */
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (!slash || slash == p)
      return false;
    for (const char *a = p; a < slash; a++)
      if ((unsigned char)*a <= 0x20 || (unsigned char)*a >= 0x7f || *a == '?' || *a == '#')
        return false;
    p = slash;
  }
  size_t base = sizeof TUS_BASE_PATH - 1;
  if ((size_t)(end - p) != base + 1 + TUS_ID_LEN - 1 || memcmp(p, TUS_BASE_PATH "/", base + 1))
    return false;
  memcpy(id, p + base + 1, TUS_ID_LEN - 1);
  id[TUS_ID_LEN - 1] = '\0';
  return tus_id_valid(id);
}

int tus_parse_concat(const char *v, struct tus_concat *c, struct tus_error *e) {
  const char *h = "Upload-Concat";
  memset(c, 0, sizeof *c);
  if (v && strcmp(v, "partial") == 0) {
    c->partial = true;
    return 0;
  }
  if (!v || strncmp(v, "final;", 6) != 0)
    return fail(e, 400, "INVALID_HEADER", h,
                "Upload-Concat must be 'partial' or 'final;' and the partial uploads' URLs");
  c->final = true;
  c->parts = calloc(TUS_MAX_PARTS, sizeof *c->parts);
  if (!c->parts)
    return GROVE_ENOMEM;
  const char *p = v + 6;
  for (;;) {
    while (*p == ' ')
      p++;
    if (!*p)
      break;
    const char *end = strchr(p, ' ');
    if (!end)
      end = p + strlen(p);
    if (c->nparts == TUS_MAX_PARTS)
      return fail(e, 400, "INVALID_HEADER", h, "Upload-Concat names more than %d uploads",
                  TUS_MAX_PARTS);
    if (!concat_url(p, (size_t)(end - p), c->parts[c->nparts]))
      return fail(e, 400, "INVALID_HEADER", h,
                  "Upload-Concat URL %d is not an upload of this server (" TUS_BASE_PATH
                  "/{id})",
                  c->nparts + 1);
    c->nparts++;
    p = end;
  }
  if (c->nparts == 0)
    return fail(e, 400, "INVALID_HEADER", h, "Upload-Concat final names no uploads");
  return 0;
}

/* ---- Upload-Expires ------------------------------------------------------------ */

static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

int tus_parse_expires(const char *v, int64_t *unix_ms, struct tus_error *e) {
  /* "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes, fixed positions */
  const char *h = "Upload-Expires";
  if (!v || strlen(v) != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' ||
      v[16] != ' ' || v[19] != ':' || v[22] != ':' || v[25] != ' ' || strcmp(v + 26, "GMT"))
    goto bad;
  int wday = -1, mon = -1;
  for (int i = 0; i < 7; i++)
    if (memcmp(v, days[i], 3) == 0)
      wday = i;
  for (int i = 0; i < 12; i++)
    if (memcmp(v + 8, months[i], 3) == 0)
      mon = i;
  int day = digits(v + 5, 2), year = digits(v + 12, 4), hh = digits(v + 17, 2),
      mm = digits(v + 20, 2), ss = digits(v + 23, 2);
  if (wday < 0 || mon < 0 || day < 1 || year < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
      ss < 0 || ss > 60)
    goto bad;
  static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day > mdays[mon] || (mon == 1 && day == 29 && !leap))
    goto bad;
  struct tm tm = {.tm_sec = ss, .tm_min = mm, .tm_hour = hh, .tm_mday = day, .tm_mon = mon,
                  .tm_year = year - 1900};
  time_t t = timegm(&tm);
  if (tm.tm_wday != wday)
    return fail(e, 400, "INVALID_HEADER", h, "Upload-Expires names the wrong weekday");
  *unix_ms = (int64_t)t * 1000;
  return 0;
bad:
  return fail(e, 400, "INVALID_HEADER", h,
              "Upload-Expires must be an HTTP date (\"Sun, 06 Nov 1994 08:49:37 GMT\")");
}

size_t tus_format_expires(int64_t unix_ms, char out[30]) {
  time_t t = (time_t)(unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
    out[0] = '\0';
    return 0;
  }
  return (size_t)snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                          tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                          tm.tm_min, tm.tm_sec);
}
