/* fuzz_tus.c — the tus request headers (blobs/tus_header.c): the first
 * byte picks the header, the rest is its value. Any bytes are accepted
 * whole or refused with a status and a header name, never read past the
 * value (ASan) or overflowed (UBSan is fatal in the fuzz build); what is
 * accepted is what was sent: a number formats back to the same digits, a
 * date to the same text, metadata re-encodes to pairs that parse to the
 * same keys and values, and concatenation parts are upload ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobs/tus.h"
#include "core/error.h"
#include "core/util.h"

static void refused(int rc, const struct tus_error *e) {
  if (rc != GROVE_EINVAL && rc != GROVE_ENOMEM)
    abort();
  if (rc == GROVE_EINVAL && (!e->header || !e->code || !e->message[0] ||
                             (e->status != 400 && e->status != 412 && e->status != 413)))
    abort();
}

static void metadata(const char *v) {
  struct tus_error e = {0};
  struct tus_metadata m;
  int rc = tus_parse_metadata(v, &m, &e);
  if (rc) {
    refused(rc, &e);
    tus_metadata_release(&m);
    return;
  }
  /* the pairs encoded again parse to the same pairs */
  size_t cap = 16;
  for (int i = 0; i < m.n; i++)
    cap += strlen(m.pairs[i].key) + 2 + 4 * ((m.pairs[i].len + 2) / 3) + 1;
  char *again = malloc(cap), *p = again;
  if (!again)
    abort();
  *p = '\0';
  for (int i = 0; i < m.n; i++) {
    p += sprintf(p, "%s%s", i ? "," : "", m.pairs[i].key);
    if (m.pairs[i].len) {
      *p++ = ' ';
      b64_encode(m.pairs[i].value, m.pairs[i].len, p);
      p += strlen(p);
    }
  }
  struct tus_metadata m2;
  if (tus_parse_metadata(again, &m2, &e) || m2.n != m.n)
    abort();
  for (int i = 0; i < m.n; i++)
    if (strcmp(m.pairs[i].key, m2.pairs[i].key) || m.pairs[i].len != m2.pairs[i].len ||
        memcmp(m.pairs[i].value, m2.pairs[i].value, m.pairs[i].len))
      abort();
  tus_metadata_release(&m2);
  tus_metadata_release(&m);
  free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  char *v = malloc(size);
  if (!v)
    return 0;
  memcpy(v, data + 1, size - 1);
  v[size - 1] = '\0';
  struct tus_error e = {0};
  int rc;
  switch (data[0] % 7) {
  case 0:
    rc = tus_parse_version(v, &e);
    if (rc)
      refused(rc, &e);
    else if (strcmp(v, TUS_VERSION))
      abort();
    break;
  case 1: {
    uint64_t n, max = data[0] & 0x80 ? 1000 : 0;
    rc = tus_parse_u64("Upload-Offset", v, max, &n, &e);
    if (rc) {
      refused(rc, &e);
    } else {
      char back[24];
      back[u64_to_dec(n, back)] = '\0';
      if (strcmp(back, v) || n > (uint64_t)INT64_MAX || (max && n > max))
        abort();
    }
    break;
  }
  case 2:
    rc = tus_parse_defer_length(v, &e);
    if (rc)
      refused(rc, &e);
    break;
  case 3:
    metadata(v);
    break;
  case 4: {
    unsigned char d[32];
    rc = tus_parse_checksum(v, d, &e);
    if (rc)
      refused(rc, &e);
    else if (strlen(v) != 51)
      abort();
    break;
  }
  case 5: {
    struct tus_concat c;
    rc = tus_parse_concat(v, &c, &e);
    if (rc)
      refused(rc, &e);
    else if (c.final == c.partial || (c.final && (c.nparts < 1 || c.nparts > TUS_MAX_PARTS)))
      abort();
    for (int i = 0; !rc && i < c.nparts; i++)
      if (!tus_id_valid(c.parts[i]))
        abort();
    tus_concat_release(&c);
    break;
  }
  case 6: {
    int64_t ms;
    rc = tus_parse_expires(v, &ms, &e);
    if (rc) {
      refused(rc, &e);
    } else {
      char back[30];
      tus_format_expires(ms, back);
      /* second 60 is the next minute's first: the only text that changes */
      if (strcmp(back, v) && strncmp(v + 23, "60", 2))
        abort();
    }
    break;
  }
  }
  free(v);
  return 0;
}
