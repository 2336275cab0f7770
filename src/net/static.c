/* static.c — files of the web console from the web root, and Debian's
 * packaged JavaScript libraries under /javascript/, with ETag,
 * Last-Modified and Cache-Control. Files are read on the store pool. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "net/static.h"

#define STATIC_MAX (32u * 1024 * 1024)

/* Where Debian's libjs-* packages put their files (javascript-common serves
 * the same folder at /javascript/ for Apache); CMake's GROVE_JAVASCRIPT_DIR. */
#ifndef GROVE_JAVASCRIPT_DIR
#define GROVE_JAVASCRIPT_DIR "/usr/share/javascript"
#endif
#define JS_PREFIX "/javascript/"

struct static_root {
  char dir[PATH_MAX];
};

struct static_job {
  char path[PATH_MAX + 32];
  struct stat st;
  char *data;
  size_t len;
  int err; /* errno */
};

static const struct {
  const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
    {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
    {".jpg", "image/jpeg"}, {".ico", "image/x-icon"}, {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"}, {".map", "application/json"},
    {".webmanifest", "application/manifest+json"},
};

static const char *type_of(const char *path) {
  const char *dot = strrchr(path, '.');
  if (dot)
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (strcmp(dot, types[i].ext) == 0)
        return types[i].type;
  return "application/octet-stream";
}

static void read_file(void *arg) {
  struct static_job *j = arg;
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    j->err = errno;
    return;
  }
  if (fstat(fd, &j->st) < 0 || !S_ISREG(j->st.st_mode)) {
    j->err = S_ISDIR(j->st.st_mode) ? EISDIR : ENOENT;
    close(fd);
    return;
  }
  if ((uint64_t)j->st.st_size > STATIC_MAX) {
    j->err = EFBIG;
    close(fd);
    return;
  }
  j->len = (size_t)j->st.st_size;
  j->data = malloc(j->len + 1);
  size_t got = 0;
  while (j->data && got < j->len) {
    ssize_t n = read(fd, j->data + got, j->len - got);
    if (n <= 0) {
      j->err = n < 0 ? errno : EIO;
      break;
    }
    got += (size_t)n;
  }
  if (!j->data)
    j->err = ENOMEM;
  close(fd);
}

static void file_done(struct http_req *r, void *arg) {
  struct static_job *j = arg;
  if (!r->conn)
    goto out;
  if (j->err == ENOENT || j->err == EISDIR || j->err == ENOTDIR) {
    http_reply_error(r, 404, "NOT_FOUND", "no such file or route", NULL);
    goto out;
  }
  if (j->err) {
    http_reply_error(r, j->err == EFBIG ? 500 : 500, "CANNOT_READ", "cannot read the file", NULL);
    goto out;
  }
  char etag[64], lm[64];
  snprintf(etag, sizeof etag, "W/\"%llx-%llx\"", (unsigned long long)j->st.st_size,
           (unsigned long long)j->st.st_mtim.tv_sec * 1000000000ULL +
               (unsigned long long)j->st.st_mtim.tv_nsec);
  struct tm tm;
  gmtime_r(&j->st.st_mtim.tv_sec, &tm);
  strftime(lm, sizeof lm, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  const char *type = type_of(j->path);
  http_res_header(r, "ETag", etag);
  http_res_header(r, "Last-Modified", lm);
  http_res_header(r, "Cache-Control",
                  strncmp(type, "text/html", 9) == 0 ? "no-cache" : "public, max-age=3600");
  const char *inm = http_header_get(r, "if-none-match");
  if (inm && (strstr(inm, etag) || strcmp(inm, "*") == 0)) {
    http_reply(r, 304, NULL, NULL, 0);
    goto out;
  }
  http_reply(r, 200, type, j->data, j->len);
out:
  free(j->data);
  free(j);
}

static void handle(struct http_req *r) {
  struct static_root *root = r->app;
  const char *p = r->path;
  /* no "..", no hidden files, no backslashes */
  if (strstr(p, "/.") || strchr(p, '\\') || strlen(p) > 1024) {
    http_reply_error(r, 404, "NOT_FOUND", "no such file or route", NULL);
    return;
  }
  struct static_job *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  const char *dir = root->dir;
  if (strncmp(p, JS_PREFIX, sizeof JS_PREFIX - 1) == 0) {
    dir = GROVE_JAVASCRIPT_DIR;
    p += sizeof JS_PREFIX - 2; /* keeps the slash */
  }
  size_t pl = strlen(p);
  int n = snprintf(j->path, sizeof j->path, "%s", dir);
  if (n < 0 || (size_t)n + pl + 11 >= sizeof j->path) {
    free(j);
    http_reply_error(r, 414, "URI_TOO_LONG", "path is too long", NULL);
    return;
  }
  memcpy(j->path + n, p, pl + 1);
  if (pl && p[pl - 1] == '/')
    strcat(j->path, "index.html");
  if (http_req_defer(r, HTTP_POOL_STORE, read_file, file_done, j))
    free(j);
}

int static_create(struct static_root **out, struct router *rt, const char *dir) {
  *out = NULL;
  if (!dir || !*dir)
    return 0;
  struct static_root *root = calloc(1, sizeof *root);
  if (!root)
    return GROVE_ENOMEM;
  snprintf(root->dir, sizeof root->dir, "%s", dir);
  size_t n = strlen(root->dir);
  while (n > 1 && root->dir[n - 1] == '/')
    root->dir[--n] = '\0';
  router_fallback(rt, handle, root);
  *out = root;
  return 0;
}

void static_destroy(struct static_root *root) { free(root); }
