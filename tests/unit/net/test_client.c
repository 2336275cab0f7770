/* test_client.c — the outbound client's checks and errors that need no
 * server (answers from servers: tests/e2e/test_outbound.py). */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../test.h"
#include "core/error.h"
#include "net/client.h"

TEST(client_takes_http_and_https_urls_only) {
  CHECK(http_client_url_check("http://127.0.0.1:8080") == 0);
  CHECK(http_client_url_check("https://models.example.com/v1") == 0);
  CHECK(http_client_url_check("HTTP://h") == 0);
  CHECK(http_client_url_check("ftp://h") == GROVE_EINVAL);
  CHECK(http_client_url_check("http://") == GROVE_EINVAL);
  CHECK(http_client_url_check("127.0.0.1:8080") == GROVE_EINVAL);
  CHECK(http_client_url_check(NULL) == GROVE_EINVAL);
  struct http_client *c;
  CHECK(http_client_create(&c) == 0);
  struct http_client_req q = {.method = "GET", .url = "gopher://h/"};
  struct http_client_res res;
  char err[256];
  CHECK(http_client_request(c, &q, &res, err, sizeof err) == GROVE_EINVAL);
  CHECK(strstr(err, "http://") != NULL);
  http_client_res_release(&res);
  http_client_destroy(c);
  http_client_destroy(NULL);
}

TEST(client_names_the_host_it_cannot_reach) {
  /* a port bound but not listening: the connection is refused */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  char url[64], want[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
  snprintf(want, sizeof want, "cannot connect to '127.0.0.1:%d'", ntohs(a.sin_port));
  struct http_client *c;
  CHECK(http_client_create(&c) == 0);
  struct http_client_req q = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
  struct http_client_res res;
  char err[512];
  CHECK(http_client_request(c, &q, &res, err, sizeof err) == GROVE_EUNAVAIL);
  CHECK(strstr(err, want) == err);
  CHECK(res.status == 0);
  http_client_res_release(&res);
  http_client_destroy(c);
  close(fd);
}

static const struct test tests[] = {
    T(client_takes_http_and_https_urls_only),
    T(client_names_the_host_it_cannot_reach),
};
TEST_MAIN(tests)
