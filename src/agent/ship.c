/* ship.c — spool and delivery (see ship.h). */
#include "agent/ship.h"

#include <curl/curl.h>
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/array.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

struct batch {
  uint64_t seq;
  uint64_t size;
};

struct ship {
  char *server, *key, *dir, *ca_file;
  char url[1024];
  char agent_id[80];
  uint64_t spool_max, timeout_ms;
  uint64_t next_seq;
  struct batch *batches; /* sorted by seq */
  size_t n, cap;
  struct ship_stats st;
  CURL *curl;
  bool down; /* the last round failed: log once until it recovers */
};

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

static void batch_path(const struct ship *s, uint64_t seq, char *out, size_t n) {
  snprintf(out, n, "%s/%020llu.json.gz", s->dir, (unsigned long long)seq);
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* Writes data to dir/name through a temporary file, fsync'ed, renamed and
 * the folder fsync'ed: the file is there whole or not at all. */
static int write_durable(const char *dir, const char *path, const void *data, size_t n) {
  char tmp[4200];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  const char *p = data;
  size_t left = n;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      goto fail;
    }
    p += w, left -= (size_t)w;
  }
  if (fsync(fd) != 0) goto fail;
  if (close(fd) != 0) {
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0) goto fail;
  return fsync_dir(dir);
fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  return -1;
}

static int cmp_batch(const void *a, const void *b) {
  uint64_t x = ((const struct batch *)a)->seq, y = ((const struct batch *)b)->seq;
  return (x > y) - (x < y);
}

static int push_batch(struct ship *s, uint64_t seq, uint64_t size) {
  int rc = ARRAY_GROW(s->batches, s->cap, s->n + 1, 64, ARRAY_NOMAX);
  if (rc) return rc;
  s->batches[s->n++] = (struct batch){seq, size};
  s->st.spooled_bytes += size;
  s->st.spooled_batches = s->n;
  return 0;
}

static void pop_front(struct ship *s) {
  s->st.spooled_bytes -= s->batches[0].size;
  memmove(s->batches, s->batches + 1, (s->n - 1) * sizeof(*s->batches));
  s->n--;
  s->st.spooled_batches = s->n;
}

static int scan_spool(struct ship *s) {
  DIR *d = opendir(s->dir);
  if (!d) return GROVE_EIO;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) && rc == 0) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
    size_t len = strlen(e->d_name);
    if (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0) {
      unlink(path); /* a write a crash cut short: never acknowledged to anyone */
      continue;
    }
    char *end;
    unsigned long long seq = strtoull(e->d_name, &end, 10);
    if (end == e->d_name || strcmp(end, ".json.gz") != 0) continue;
    struct stat sb;
    if (stat(path, &sb) != 0) continue;
    rc = push_batch(s, seq, (uint64_t)sb.st_size);
    if (seq >= s->next_seq) s->next_seq = seq + 1;
  }
  closedir(d);
  if (s->n) qsort(s->batches, s->n, sizeof(*s->batches), cmp_batch);
  return rc;
}

static void read_small(const char *path, char *out, size_t n) {
  out[0] = '\0';
  FILE *f = fopen(path, "re");
  if (!f) return;
  if (!fgets(out, (int)n, f)) out[0] = '\0';
  fclose(f);
  out[strcspn(out, "\r\n")] = '\0';
}

int ship_open(struct ship **out, const struct ship_cfg *cfg, char *err, size_t errlen) {
  *out = NULL;
  struct ship *s = calloc(1, sizeof(*s));
  if (!s) return GROVE_ENOMEM;
  int rc = GROVE_ENOMEM;
  s->server = dup_or_null(cfg->server);
  s->key = dup_or_null(cfg->key);
  s->ca_file = dup_or_null(cfg->ca_file);
  s->dir = strdup(cfg->spool_dir);
  s->spool_max = cfg->spool_max;
  s->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
  if (!s->dir) goto fail;
  rc = GROVE_EIO;
  if (mkdir_p(s->dir, 0700) != 0) {
    snprintf(err, errlen, "cannot make spool folder '%s': %s", s->dir, strerror(errno));
    goto fail;
  }
  char path[4200], text[128];
  snprintf(path, sizeof(path), "%s/seq", s->dir);
  read_small(path, text, sizeof(text));
  s->next_seq = strtoull(text, NULL, 10);
  if (s->next_seq == 0) s->next_seq = 1;
  rc = scan_spool(s);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read spool folder '%s': %s", s->dir, strerror(errno));
    goto fail;
  }
  if (cfg->agent_id && *cfg->agent_id) {
    snprintf(s->agent_id, sizeof(s->agent_id), "%s", cfg->agent_id);
  } else {
    snprintf(path, sizeof(path), "%s/agent-id", s->dir);
    read_small(path, s->agent_id, sizeof(s->agent_id));
    if (!s->agent_id[0]) {
      rand_hex(s->agent_id, 17);
      char line[40];
      int n = snprintf(line, sizeof(line), "%s\n", s->agent_id);
      if (write_durable(s->dir, path, line, (size_t)n) != 0) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        rc = GROVE_EIO;
        goto fail;
      }
    }
  }
  if (s->server) {
    size_t n = strlen(s->server);
    while (n && s->server[n - 1] == '/') s->server[--n] = '\0';
    snprintf(s->url, sizeof(s->url), "%s/api/monitoring/push-metrics", s->server);
    rc = GROVE_ENOMEM;
    s->curl = curl_easy_init();
    if (!s->curl) goto fail;
  }
  *out = s;
  return 0;
fail:
  ship_close(s);
  return rc;
}

void ship_close(struct ship *s) {
  if (!s) return;
  if (s->curl) curl_easy_cleanup(s->curl);
  free(s->server);
  free(s->key);
  free(s->ca_file);
  free(s->dir);
  free(s->batches);
  free(s);
}

const char *ship_agent_id(const struct ship *s) { return s->agent_id; }
uint64_t ship_next_seq(const struct ship *s) { return s->next_seq; }
void ship_get_stats(const struct ship *s, struct ship_stats *st) { *st = s->st; }

static int gzip(const char *in, size_t n, struct buf *out) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  /* windowBits 15 + 16: a gzip wrapper (RFC 1952) rather than zlib's */
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return GROVE_ENOMEM;
  uLong bound = deflateBound(&z, (uLong)n);
  int rc = buf_reserve(out, bound);
  if (rc == 0) {
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)bound;
    rc = deflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : GROVE_EIO;
    if (rc == 0) out->len += z.total_out;
  }
  deflateEnd(&z);
  return rc;
}

int ship_enqueue(struct ship *s, const char *json, size_t len) {
  struct buf gz;
  buf_init(&gz, 0);
  int rc = gzip(json, len, &gz);
  if (rc < 0) goto out;
  uint64_t seq = s->next_seq;
  /* the counter first: a number handed out is never handed out again */
  char path[4200], line[32];
  snprintf(path, sizeof(path), "%s/seq", s->dir);
  int n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)(seq + 1));
  rc = GROVE_EIO;
  if (write_durable(s->dir, path, line, (size_t)n) != 0) goto out;
  s->next_seq = seq + 1;
  while (s->n && s->st.spooled_bytes + gz.len > s->spool_max) {
    batch_path(s, s->batches[0].seq, path, sizeof(path));
    unlink(path);
    s->st.dropped++;
    log_warn(NULL, "spool full: oldest batch dropped", "seq=%llu dropped=%llu spool_max=%llu",
             (unsigned long long)s->batches[0].seq, (unsigned long long)s->st.dropped,
             (unsigned long long)s->spool_max);
    pop_front(s);
  }
  batch_path(s, seq, path, sizeof(path));
  if (write_durable(s->dir, path, gz.data, gz.len) != 0) goto out;
  rc = push_batch(s, seq, gz.len);
out:
  buf_release(&gz);
  return rc;
}

static size_t discard(char *p, size_t size, size_t n, void *arg) {
  (void)p, (void)arg;
  return size * n;
}

static int read_whole(const char *path, struct buf *b) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return GROVE_EIO;
  char chunk[16384];
  ssize_t r;
  int rc = 0;
  while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
    if (r < 0) {
      if (errno == EINTR) continue;
      rc = GROVE_EIO;
      break;
    }
    if ((rc = buf_append(b, chunk, (size_t)r)) < 0) break;
  }
  close(fd);
  return rc;
}

/* One POST. Returns the HTTP status, or 0 when there was no answer. */
static long post(struct ship *s, uint64_t seq, const struct buf *body, char *why, size_t whylen) {
  char hk[600], hi[160];
  struct curl_slist *h = NULL;
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, "Content-Encoding: gzip");
  h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
  snprintf(hi, sizeof(hi), "Idempotency-Key: %s-%llu", s->agent_id, (unsigned long long)seq);
  h = curl_slist_append(h, hi);
  if (s->key) {
    snprintf(hk, sizeof(hk), "X-API-Key: %s", s->key);
    h = curl_slist_append(h, hk);
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  CURL *c = s->curl;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, s->url);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (s->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
  CURLcode cc = curl_easy_perform(c);
  long status = 0;
  if (cc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  else snprintf(why, whylen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
  curl_slist_free_all(h);
  memset(hk, 0, sizeof(hk));
  return status;
}

size_t ship_flush(struct ship *s, size_t max) {
  if (!s->curl) return 0;
  size_t sent = 0;
  struct buf body;
  buf_init(&body, 0);
  while (s->n && sent < max) {
    uint64_t seq = s->batches[0].seq;
    char path[4200], why[CURL_ERROR_SIZE + 32] = "";
    batch_path(s, seq, path, sizeof(path));
    buf_reset(&body);
    if (read_whole(path, &body) < 0) {
      log_error(NULL, "cannot read spooled batch: dropped", "path=%s", path);
      unlink(path);
      s->st.dropped++;
      pop_front(s);
      continue;
    }
    long status = post(s, seq, &body, why, sizeof(why));
    if (status >= 200 && status < 300) {
      if (s->down) log_info(NULL, "server reachable again", "spooled=%zu", s->n);
      s->down = false;
      unlink(path);
      pop_front(s);
      s->st.sent++;
      sent++;
      continue;
    }
    /* 4xx: the server will never take this batch, except 408 and 429 (later,
     * it says) and 404 (no push route there yet: a server without the matrix
     * app, or one being upgraded), which keep it in the bounded spool. */
    if (status >= 400 && status < 500 && status != 429 && status != 408 && status != 404) {
      log_error(NULL, "server refused batch: dropped", "seq=%llu status=%ld",
                (unsigned long long)seq, status);
      unlink(path);
      pop_front(s);
      s->st.rejected++;
      continue;
    }
    s->st.failures++;
    if (s->down) break;
    s->down = true;
    if (status)
      log_warn(NULL, "server unavailable: batches kept", "status=%ld spooled=%zu", status, s->n);
    else
      log_warn(NULL, "cannot reach server: batches kept", "error=\"%s\" spooled=%zu", why, s->n);
    break;
  }
  buf_release(&body);
  return sent;
}
