/* proxy.c — trusted proxies and the X-Forwarded-For walk (see proxy.h). */
#include "gate/proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/error.h"

/* Parses one address (no prefix) into family and bytes; IPv4-mapped IPv6
 * becomes IPv4. False when it is not an address. */
static bool parse_addr(const char *s, size_t len, int *family, unsigned char out[16]) {
  char tmp[64];
  if (len == 0 || len >= sizeof tmp)
    return false;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  if (inet_pton(AF_INET, tmp, out) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, tmp, out) != 1)
    return false;
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(out, mapped, 12) == 0) {
    memmove(out, out + 12, 4);
    *family = AF_INET;
  } else {
    *family = AF_INET6;
  }
  return true;
}

int proxy_cidrs_parse(const char *s, struct cidr **out, int *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  if (!s || !*s)
    return 0;
  size_t cap = 1;
  for (const char *p = s; *p; p++)
    cap += *p == ',';
  struct cidr *c = calloc(cap, sizeof *c);
  if (!c)
    return GROVE_ENOMEM;
  int k = 0;
  for (const char *p = s; *p;) {
    const char *e = strchr(p, ',');
    if (!e)
      e = p + strlen(p);
    while (p < e && (*p == ' ' || *p == '\t'))
      p++;
    size_t len = (size_t)(e - p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
      len--;
    if (len) {
      const char *slash = memchr(p, '/', len);
      size_t al = slash ? (size_t)(slash - p) : len;
      struct cidr *x = &c[k];
      bool ok = parse_addr(p, al, &x->family, x->addr);
      int max = x->family == AF_INET ? 32 : 128;
      x->bits = max;
      if (ok && slash) {
        char *end;
        char num[8];
        size_t nl = len - al - 1;
        ok = nl > 0 && nl < sizeof num;
        if (ok) {
          memcpy(num, slash + 1, nl);
          num[nl] = '\0';
          long b = strtol(num, &end, 10);
          ok = *end == '\0' && b >= 0 && b <= max && num[0] >= '0' && num[0] <= '9';
          x->bits = (int)b;
        }
      }
      if (!ok) {
        snprintf(err, errlen, "bad --trusted-proxies entry '%.*s': use an address or address/prefix",
                 (int)(len > 64 ? 64 : len), p);
        free(c);
        return GROVE_EINVAL;
      }
      k++;
    }
    p = *e ? e + 1 : e;
  }
  if (!k) {
    free(c);
    return 0;
  }
  *out = c;
  *n = k;
  return 0;
}

static bool inside(const struct cidr *c, int family, const unsigned char *a) {
  if (c->family != family)
    return false;
  int full = c->bits / 8, rest = c->bits % 8;
  if (memcmp(c->addr, a, (size_t)full) != 0)
    return false;
  if (!rest)
    return true;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (c->addr[full] & mask) == (a[full] & mask);
}

static bool trusted_bytes(const struct cidr *c, int n, int family, const unsigned char *a) {
  for (int i = 0; i < n; i++)
    if (inside(&c[i], family, a))
      return true;
  return false;
}

bool proxy_trusted(const struct cidr *c, int n, const char *addr) {
  int family;
  unsigned char a[16];
  return addr && parse_addr(addr, strlen(addr), &family, a) && trusted_bytes(c, n, family, a);
}

/* One X-Forwarded-For entry: an address, maybe "[v6]", "[v6]:port" or
 * "v4:port" (some proxies add ports). */
static bool parse_entry(const char *s, size_t len, int *family, unsigned char out[16]) {
  if (len && s[0] == '[') {
    const char *close = memchr(s, ']', len);
    return close && parse_addr(s + 1, (size_t)(close - s - 1), family, out);
  }
  const char *colon = memchr(s, ':', len);
  if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) && memchr(s, '.', len))
    len = (size_t)(colon - s); /* v4:port */
  return parse_addr(s, len, family, out);
}

bool proxy_client(const struct cidr *c, int n, const char *peer, const char *const *lines,
                  int nlines, char *out, size_t outlen) {
  int family;
  unsigned char a[16];
  if (!n || !peer || !parse_addr(peer, strlen(peer), &family, a) || !trusted_bytes(c, n, family, a))
    return false;
  int cur_family = family;
  unsigned char cur[16];
  memcpy(cur, a, sizeof cur);
  bool moved = false;
  for (int l = nlines - 1; l >= 0; l--) {
    const char *s = lines[l];
    size_t end = strlen(s);
    while (end > 0) {
      size_t start = end;
      while (start > 0 && s[start - 1] != ',')
        start--;
      size_t b = start, e = end;
      while (b < e && (s[b] == ' ' || s[b] == '\t'))
        b++;
      while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
      end = start ? start - 1 : 0;
      if (b == e)
        continue; /* an empty element ("a,,b") names nobody */
      if (!parse_entry(s + b, e - b, &family, a))
        goto done; /* garbage from a trusted hop's client: that hop is the client */
      cur_family = family;
      memcpy(cur, a, sizeof cur);
      moved = true;
      if (!trusted_bytes(c, n, family, a))
        goto done;
    }
  }
done:
  if (!moved)
    return false;
  return inet_ntop(cur_family, cur, out, (socklen_t)outlen) != NULL;
}
