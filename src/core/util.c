/* util.c — clocks, random ids, base64, SHA-1, decoding helpers. */
#include "core/util.h"

#include "core/error.h"

#include <ctype.h>
#include <unistd.h>
#include <sys/time.h>
#include <stdio.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>
#include <time.h>

uint64_t clock_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t clock_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000;
}

void rand_hex(char *out, size_t n) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[64];
  if (!n)
    return;
  size_t want = (n - 1 + 1) / 2;
  if (want > sizeof raw)
    want = sizeof raw;
  if (RAND_bytes(raw, (int)want) != 1)
    memset(raw, 0, want); /* RAND_bytes does not fail once seeded */
  size_t i;
  for (i = 0; i + 1 < n && i / 2 < want; i++)
    out[i] = hex[(raw[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
  out[i] = '\0';
}

void id_hex(char *out, size_t n) {
  static _Thread_local uint64_t state[2];
  static const char hex[] = "0123456789abcdef";
  if (!state[0] && !state[1]) {
    if (RAND_bytes((unsigned char *)state, sizeof state) != 1 || (!state[0] && !state[1]))
      state[0] = clock_mono_ns() | 1;
  }
  size_t i = 0;
  while (i + 1 < n) {
    /* xorshift128+ */
    uint64_t s1 = state[0];
    const uint64_t s0 = state[1];
    state[0] = s0;
    s1 ^= s1 << 23;
    state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    uint64_t r = state[1] + s0;
    for (int k = 0; k < 16 && i + 1 < n; k++, r >>= 4)
      out[i++] = hex[r & 15];
  }
  if (n)
    out[i] = '\0';
}

size_t u64_to_dec(uint64_t v, char *out) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  return n;
}

void b64_encode(const unsigned char *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n)
      v |= in[i + 2];
    out[o++] = t[(v >> 18) & 63];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = '\0';
}

void sha1(const void *data, size_t n, unsigned char out[20]) { SHA1(data, n, out); }

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Decodes n bytes of in into out, writing at most cap bytes (no NUL); out
 * may be in (the output never passes the input). Every escape is checked
 * even past cap. Returns the decoded length, -1 on a bad escape or a
 * decoded NUL, -2 when the decoded text is longer than cap. */
static long pct_decode_n(const char *in, size_t n, char *out, size_t cap, bool plus_is_space) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= n)
        return -1;
      int h = hexval((unsigned char)in[i + 1]), l = hexval((unsigned char)in[i + 2]);
      if (h < 0 || l < 0)
        return -1;
      c = (char)(h * 16 + l);
      if (!c)
        return -1;
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (o < cap)
      out[o] = c;
    o++;
  }
  return o > cap ? -2 : (long)o;
}

long pct_decode(char *s, size_t n, bool plus_is_space) {
  long o = pct_decode_n(s, n, s, n, plus_is_space);
  if (o >= 0 && (size_t)o < n)
    s[o] = '\0';
  return o;
}

long pct_decode_to(const char *in, size_t n, char *out, size_t outlen, bool plus_is_space) {
  if (!outlen)
    return -2;
  long o = pct_decode_n(in, n, out, outlen - 1, plus_is_space);
  out[o >= 0 ? o : 0] = '\0';
  return o;
}

bool header_has_token(const char *value, const char *token) {
  size_t tl = strlen(token);
  const char *p = value;
  while (p && *p) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    const char *end = p;
    while (*end && *end != ',' && *end != ';' && *end != ' ')
      end++;
    bool match = (size_t)(end - p) == tl && strncasecmp(p, token, tl) == 0;
    const char *next = strchr(end, ',');
    if (match) {
      /* reject q=0 */
      const char *q = strstr(end, "q=");
      if (q && (!next || q < next)) {
        q += 2;
        while (*q == '0' || *q == '.')
          q++;
        if (!(*q >= '1' && *q <= '9'))
          return false;
      }
      return true;
    }
    p = next;
  }
  return false;
}

bool ct_equal(const void *a, size_t an, const void *b, size_t bn) {
  const unsigned char *x = a, *y = b;
  unsigned char d = an != bn;
  size_t n = an < bn ? an : bn;
  for (size_t i = 0; i < n; i++)
    d |= x[i] ^ y[i];
  return d == 0;
}

int redis_url_parse(const char *url, char *host, size_t hostlen, int *port, char *password,
                    size_t pwlen) {
  if (strncmp(url, "redis://", 8) != 0)
    return -1;
  const char *p = url + 8;
  password[0] = '\0';
  const char *at = strchr(p, '@');
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pw = colon ? colon + 1 : p;
    size_t n = (size_t)(at - pw);
    if (n >= pwlen)
      return -1;
    memcpy(password, pw, n);
    password[n] = '\0';
    p = at + 1;
  }
  size_t hl = strcspn(p, ":/");
  if (hl == 0 || hl >= hostlen)
    return -1;
  memcpy(host, p, hl);
  host[hl] = '\0';
  *port = p[hl] == ':' ? atoi(p + hl + 1) : 6379;
  return *port > 0 && *port < 65536 ? 0 : -1;
}

int mkdir_p(const char *path, unsigned mode) {
  char tmp[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(tmp, path, n + 1);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  return mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST ? -1 : 0;
}

/* RFC 3339: 2026-11-23T10:00:00Z, with optional fraction and offset. */
/* ---- times ---------------------------------------------------------------- */

int time_add(int64_t a, int64_t b, int64_t *out) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return GROVE_ERANGE;
  *out = r;
  return 0;
}

int time_sub(int64_t a, int64_t b, int64_t *out) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r))
    return GROVE_ERANGE;
  *out = r;
  return 0;
}

int time_mul(int64_t a, int64_t b, int64_t *out) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    return GROVE_ERANGE;
  *out = r;
  return 0;
}

int64_t time_floor_div(int64_t a, int64_t b) {
  /* b > 0, so a / b never overflows (only INT64_MIN / -1 can) */
  return a / b - (a % b != 0 && a < 0);
}

int time_floor(int64_t t, int64_t step, int64_t *out) {
  return time_mul(time_floor_div(t, step), step, out);
}

int time_ceil(int64_t t, int64_t step, int64_t *out) {
  if (t % step == 0) {
    *out = t;
    return 0;
  }
  return time_mul(time_floor_div(t, step) + 1, step, out); /* the quotient + 1 fits */
}

/* Reads exactly n digits. */
static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil, "chrono-Compatible Low-Level Date
 * Algorithms"). y is 0..9999 here: no overflow. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int time_parse_rfc3339(const char *s, int64_t *ns) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h, mi, sec;
  /* YYYY-MM-DDThh:mm:ss: NUL stops each check before any read past it */
  if (!s || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
      !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
      !digits(s + 17, 2, &sec))
    return GROVE_EINVAL;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
      mi > 59 || sec > 60)
    return GROVE_EINVAL;
  const char *p = s + 19;
  int64_t frac = 0;
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9')
      return GROVE_EINVAL;
    int64_t scale = 100000000;
    for (; *p >= '0' && *p <= '9'; p++) {
      frac += (*p - '0') * scale;
      scale /= 10;
    }
  }
  int64_t off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return GROVE_EINVAL;
    off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return GROVE_EINVAL;
  }
  if (*p)
    return GROVE_EINVAL;
  /* seconds fit easily (|secs| < 2^39 for years 0..9999); nanoseconds may not */
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
  int64_t t;
  if (secs < 0 && frac) { /* -9223372037 s + 0.854775806 s fits, -9223372037 s alone not */
    secs++;
    frac -= 1000000000;
  }
  if (time_mul(secs, 1000000000, &t) || time_add(t, frac, &t) || !time_valid(t))
    return GROVE_ERANGE;
  *ns = t;
  return 0;
}

bool rfc3339_parse(const char *s, int64_t *ns) { return time_parse_rfc3339(s, ns) == 0; }
