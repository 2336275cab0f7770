/* proxy.h — who the client is behind a trusted reverse proxy
 * (gate-internal).
 *
 * --trusted-proxies lists the proxies (CIDRs, IPv4 and IPv6) whose
 * X-Forwarded-For Grove believes. When a request's socket peer is one of
 * them, the client is found as nginx's realip module does with
 * `real_ip_recursive on`: walk X-Forwarded-For from the right (the last
 * hop first; several header lines count as one list, in order), skipping
 * addresses that are themselves trusted proxies; the first untrusted one is
 * the client. If every address is trusted the leftmost is taken; an entry
 * that is not an address stops the walk at the trusted hop that sent it.
 * A peer that is not trusted gets no say: its headers are ignored, so a
 * client cannot pick its own address. Pure functions; thread-safe. */
#ifndef GROVE_PROXY_H
#define GROVE_PROXY_H

#include <stdbool.h>
#include <stddef.h>

struct cidr {
  int family;              /* AF_INET or AF_INET6 */
  unsigned char addr[16];  /* network order; IPv4 in the first 4 bytes */
  int bits;                /* prefix length: 0..32 or 0..128 */
};

/* Parses "10.0.0.0/8, 2001:db8::/32, 127.0.0.1" (a bare address is one
 * host) into *out (malloc'd, the caller frees; NULL when s is empty).
 * Returns 0 or GROVE_EINVAL with err naming the bad entry. */
int proxy_cidrs_parse(const char *s, struct cidr **out, int *n, char *err, size_t errlen);
/* True when the address text (IPv4, IPv6, or IPv4-mapped IPv6, which
 * compares as IPv4) is inside one of the n CIDRs. */
bool proxy_trusted(const struct cidr *c, int n, const char *addr);
/* The client behind peer: when peer is trusted, the X-Forwarded-For walk
 * above over the nlines header values (in the order received), written in
 * canonical text form to out; returns true. False (out untouched) when the
 * peer is not trusted or names nobody else. */
bool proxy_client(const struct cidr *c, int n, const char *peer, const char *const *lines,
                  int nlines, char *out, size_t outlen);

#endif
