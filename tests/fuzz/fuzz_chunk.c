/* fuzz_chunk.c — libFuzzer driver for the chunk decoder (chunks are read
 * back from disk, where they may be damaged), and for encode/decode round
 * trips of the points it yields. */
#include <stdint.h>
#include <string.h>

#include "series/chunk.h"

static struct series_sample pts[CHUNK_MAX], back[CHUNK_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t n;
  if (chunk_decode(data, size, pts, &n) != 0)
    return 0;
  /* what decodes re-encodes to the same points when sorted */
  for (size_t i = 1; i < n; i++)
    if (pts[i].ts_ns < pts[i - 1].ts_ns)
      return 0;
  struct buf b;
  buf_init(&b, 0);
  if (chunk_encode(pts, n, &b) == 0) {
    size_t m;
    if (chunk_decode(b.data, b.len, back, &m) != 0 || m != n)
      __builtin_trap();
    for (size_t i = 0; i < n; i++)
      if (back[i].ts_ns != pts[i].ts_ns ||
          (memcmp(&back[i].value, &pts[i].value, 8) != 0 && back[i].value == back[i].value))
        __builtin_trap();
  }
  buf_release(&b);
  return 0;
}
