/* fuzz_http.c — libFuzzer driver for HTTP request handling: the request
 * reader with its limits, target decoding, header and query lookup,
 * Content-Encoding decoding and routing, fed in pieces whose sizes come
 * from the input itself. */
#include <stdint.h>
#include <string.h>

#include "net/http_parse.h"
#include "net/router.h"

static void handler(struct http_req *r) { (void)r; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct http_cfg cfg = {.max_url = 512, .max_header = 2048, .max_headers = 16,
                                .max_body = 8192};
  static struct router *rt;
  if (!rt) {
    static const struct route_def routes[] = {
        {"GET", "/health", handler, .anonymous = true},
        {"GET", "/things/{id}", handler, .anonymous = true},
        {"POST", "/api/v1/live/{topic...}", handler, .anonymous = true},
    };
    router_create(&rt, NULL);
    router_add_all(rt, "fuzz", routes, sizeof routes / sizeof routes[0], NULL, NULL, 0);
  }
  if (size < 1)
    return 0;
  size_t piece = (size_t)data[0] % 64 + 1; /* how the bytes arrive */
  data++;
  size--;
  struct http_in in;
  http_in_init(&in, &cfg);
  size_t off = 0;
  while (off < size) {
    size_t n = size - off < piece ? size - off : piece;
    enum http_in_state st;
    size_t used = http_in_feed(&in, (const char *)data + off, n, &st);
    off += used;
    if (st == HTTP_IN_ERROR)
      break;
    if (st == HTTP_IN_REQUEST) {
      struct http_req r;
      memset(&r, 0, sizeof r);
      if (http_in_request(&in, &r) == 0) {
        char path[1024], allow[128], v[64];
        size_t pl = strlen(r.path);
        if (pl < sizeof path) {
          memcpy(path, r.path, pl + 1);
          struct route *route;
          router_match(rt, r.method, path, &r, &route, allow, sizeof allow);
        }
        http_header_get(&r, "content-type");
        /* every outcome leaves v NUL-ended within its bounds */
        long ql = http_query_get(&r, "topic", 0, v, sizeof v);
        if ((ql >= 0 && strlen(v) != (size_t)ql) || (ql < HTTP_QUERY_ABSENT && v[0]))
          __builtin_trap();
        http_query_get(&r, "topic", 1, v, 4);
        long limit;
        http_query_long(&r, "limit", 1, 1000, &limit);
        /* the body as routes read it: Content-Encoding undone */
        struct buf out, scratch;
        struct http_body_error err;
        buf_init(&out, 0);
        buf_init(&scratch, 0);
        http_body_decode(http_header_get(&r, "content-encoding"), r.body, r.body_len, 1 << 16,
                         &out, &scratch, &err);
        buf_release(&out);
        buf_release(&scratch);
      }
      if (http_in_upgrade(&in))
        break;
      http_in_next(&in);
    } else if (used == 0) {
      break;
    }
  }
  http_in_release(&in);
  return 0;
}
