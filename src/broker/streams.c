/* streams.c — Redis Streams with consumer groups (see broker.h): XADD,
 * XGROUP CREATE, XREADGROUP, XACK and XAUTOCLAIM on pooled blocking
 * connections. Each entry holds one field, "d", the caller's payload. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/internal.h"
#include "core/error.h"

#define NAME_MAX_ 127
#define BLOCK_MAX_MS 30000

static bool name_ok(const char *s) { return s && *s && strlen(s) <= NAME_MAX_; }

static int stream_key(const char *stream, char *key, size_t n) {
  if (!name_ok(stream))
    return GROVE_EINVAL;
  snprintf(key, n, "grove:stream:%s", stream);
  return 0;
}

/* Runs argv (lengths from strlen but where lens gives them). */
static int call(struct broker *b, int argc, const char **argv, size_t *lens, unsigned wait_ms,
                redisReply **out) {
  for (int i = 0; i < argc; i++)
    if (lens[i] == (size_t)-1)
      lens[i] = strlen(argv[i]);
  return pool_call(b, argc, argv, lens, NULL, wait_ms, out);
}

int broker_stream_add(struct broker *b, const char *stream, const void *data, size_t len,
                      uint64_t maxlen, char id[BROKER_ID_MAX]) {
  char key[160], max[24];
  if (stream_key(stream, key, sizeof key) || (!data && len))
    return GROVE_EINVAL;
  const char *argv[8];
  size_t lens[8];
  int argc = 0;
  argv[argc] = "XADD", lens[argc++] = (size_t)-1;
  argv[argc] = key, lens[argc++] = (size_t)-1;
  if (maxlen) {
    snprintf(max, sizeof max, "%" PRIu64, maxlen);
    argv[argc] = "MAXLEN", lens[argc++] = (size_t)-1;
    argv[argc] = "~", lens[argc++] = (size_t)-1;
    argv[argc] = max, lens[argc++] = (size_t)-1;
  }
  argv[argc] = "*", lens[argc++] = (size_t)-1;
  argv[argc] = "d", lens[argc++] = (size_t)-1;
  argv[argc] = data ? data : "", lens[argc++] = len;
  redisReply *r;
  int rc = call(b, argc, argv, lens, 0, &r);
  if (!rc && r->type != REDIS_REPLY_STRING)
    rc = GROVE_EIO;
  if (!rc && id)
    snprintf(id, BROKER_ID_MAX, "%s", r->str);
  freeReplyObject(r);
  return rc;
}

int broker_stream_group(struct broker *b, const char *stream, const char *group) {
  char key[160];
  if (stream_key(stream, key, sizeof key) || !name_ok(group))
    return GROVE_EINVAL;
  const char *argv[] = {"XGROUP", "CREATE", key, group, "0", "MKSTREAM"};
  size_t lens[] = {-1, -1, -1, -1, -1, -1};
  redisReply *r;
  int rc = call(b, 6, argv, lens, 0, &r);
  if (rc == GROVE_EIO && strncmp(r->str, "BUSYGROUP", 9) == 0)
    rc = 0; /* made before: left as it is */
  freeReplyObject(r);
  return rc;
}

/* Hands each [id, [field, value, …]] of list to fn; nil entries (deleted
 * from the stream) are skipped. Returns how many were handed. */
static int each_entry(const redisReply *list, broker_entry_fn fn, void *arg) {
  int n = 0;
  if (!list || list->type != REDIS_REPLY_ARRAY)
    return 0;
  for (size_t i = 0; i < list->elements; i++) {
    const redisReply *e = list->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
      continue;
    const redisReply *fields = e->element[1];
    const char *data = "";
    size_t len = 0;
    if (fields->type == REDIS_REPLY_ARRAY)
      for (size_t f = 0; f + 1 < fields->elements; f += 2)
        if (fields->element[f]->type == REDIS_REPLY_STRING && strcmp(fields->element[f]->str, "d") == 0 &&
            fields->element[f + 1]->type == REDIS_REPLY_STRING) {
          data = fields->element[f + 1]->str;
          len = fields->element[f + 1]->len;
        }
    fn(e->element[0]->str, data, len, arg);
    n++;
  }
  return n;
}

int broker_stream_read(struct broker *b, const char *stream, const char *group,
                       const char *consumer, int count, unsigned block_ms, broker_entry_fn fn,
                       void *arg) {
  char key[160], cnt[16], blk[16];
  if (stream_key(stream, key, sizeof key) || !name_ok(group) || !name_ok(consumer) || count < 1 ||
      count > 1000 || block_ms > BLOCK_MAX_MS || !fn)
    return GROVE_EINVAL;
  snprintf(cnt, sizeof cnt, "%d", count);
  snprintf(blk, sizeof blk, "%u", block_ms);
  const char *argv[11];
  size_t lens[11];
  int argc = 0;
  argv[argc] = "XREADGROUP", lens[argc++] = (size_t)-1;
  argv[argc] = "GROUP", lens[argc++] = (size_t)-1;
  argv[argc] = group, lens[argc++] = (size_t)-1;
  argv[argc] = consumer, lens[argc++] = (size_t)-1;
  argv[argc] = "COUNT", lens[argc++] = (size_t)-1;
  argv[argc] = cnt, lens[argc++] = (size_t)-1;
  if (block_ms) {
    argv[argc] = "BLOCK", lens[argc++] = (size_t)-1;
    argv[argc] = blk, lens[argc++] = (size_t)-1;
  }
  argv[argc] = "STREAMS", lens[argc++] = (size_t)-1;
  argv[argc] = key, lens[argc++] = (size_t)-1;
  argv[argc] = ">", lens[argc++] = (size_t)-1;
  redisReply *r;
  int rc = call(b, argc, argv, lens, block_ms, &r);
  if (rc == GROVE_EIO && strncmp(r->str, "NOGROUP", 7) == 0)
    rc = GROVE_ENOENT;
  if (!rc && r->type == REDIS_REPLY_ARRAY) {
    /* [[key, [entries]]] */
    for (size_t i = 0; i < r->elements; i++) {
      const redisReply *s = r->element[i];
      if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
        rc += each_entry(s->element[1], fn, arg);
    }
  } else if (!rc && r->type != REDIS_REPLY_NIL) {
    rc = GROVE_EIO; /* nil: nothing came in time */
  }
  freeReplyObject(r);
  return rc;
}

int broker_stream_ack(struct broker *b, const char *stream, const char *group, const char *id) {
  char key[160];
  if (stream_key(stream, key, sizeof key) || !name_ok(group) || !id || !*id ||
      strlen(id) >= BROKER_ID_MAX)
    return GROVE_EINVAL;
  const char *argv[] = {"XACK", key, group, id};
  size_t lens[] = {-1, -1, -1, -1};
  redisReply *r;
  int rc = call(b, 4, argv, lens, 0, &r);
  if (!rc)
    rc = r->type != REDIS_REPLY_INTEGER ? GROVE_EIO : r->integer == 1 ? 0 : GROVE_ENOENT;
  freeReplyObject(r);
  return rc;
}

int broker_stream_claim(struct broker *b, const char *stream, const char *group,
                        const char *consumer, uint64_t min_idle_ms, int count,
                        broker_entry_fn fn, void *arg) {
  char key[160], idle[24], cnt[16];
  if (stream_key(stream, key, sizeof key) || !name_ok(group) || !name_ok(consumer) || count < 1 ||
      count > 1000 || !fn)
    return GROVE_EINVAL;
  snprintf(idle, sizeof idle, "%" PRIu64, min_idle_ms);
  snprintf(cnt, sizeof cnt, "%d", count);
  const char *argv[] = {"XAUTOCLAIM", key, group, consumer, idle, "0-0", "COUNT", cnt};
  size_t lens[] = {-1, -1, -1, -1, -1, -1, -1, -1};
  redisReply *r;
  int rc = call(b, 8, argv, lens, 0, &r);
  if (rc == GROVE_EIO && strncmp(r->str, "NOGROUP", 7) == 0)
    rc = GROVE_ENOENT;
  /* [next start, [entries], (Redis 7) [deleted ids]] */
  if (!rc && (r->type != REDIS_REPLY_ARRAY || r->elements < 2))
    rc = GROVE_EIO;
  if (!rc)
    rc = each_entry(r->element[1], fn, arg);
  freeReplyObject(r);
  return rc;
}
