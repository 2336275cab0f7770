/* fuzz_ws.c — libFuzzer driver for WebSocket frame handling: Grove's
 * codec (wslay with Grove's limits, UTF-8 checks and close handling) fed
 * client bytes in pieces whose sizes come from the input. */
#include <stdint.h>
#include <string.h>

#include "net/conn.h"

static void on_message(struct ws *ws, bool text, const uint8_t *d, size_t n) {
  (void)ws;
  (void)text;
  /* touch every byte so ASan sees reads past the end */
  volatile uint8_t x = 0;
  for (size_t i = 0; i < n; i++)
    x ^= d[i];
  (void)x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t piece = (size_t)data[0] % 32 + 1;
  data++;
  size--;
  struct ws_cfg cfg = {.max_message = 4096, .max_queue = 1 << 20, .ping_interval_ms = 1000};
  struct ws_cbs cbs = {on_message, NULL};
  struct buf out;
  buf_init(&out, 1 << 20);
  struct ws *ws = ws_codec_create(&cfg, &cbs, NULL, &out);
  if (!ws)
    return 0;
  for (size_t off = 0; off < size; off += piece) {
    size_t n = size - off < piece ? size - off : piece;
    if (!ws_codec_feed(ws, data + off, n))
      break;
    buf_reset(&out);
  }
  ws_codec_destroy(ws);
  buf_release(&out);
  return 0;
}
