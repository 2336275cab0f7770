/* lease.c — leases with fencing tokens (see broker.h).
 *
 * Each operation is one script on a pooled blocking connection, so it is
 * atomic in Redis: acquire is SET NX PX guarded by the counter's INCR
 * (taken only when the SET can succeed, so tokens have no gaps a reader
 * could wonder about), renew is compare-and-set of the TTL, release is
 * compare-and-delete. The stored value carries the token and a random
 * holder id unique to the acquisition, so a holder whose lease expired
 * and was taken again cannot renew or release the new holder's. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

/* KEYS: lease, counter; ARGV: holder id, ttl ms. Returns the token, or 0
 * when the lease is held. */
static struct broker_script acquire_script = BROKER_SCRIPT(
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "local t = redis.call('INCR', KEYS[2])\n"
    "redis.call('SET', KEYS[1], t .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])\n"
    "return t\n");
/* KEYS: lease; ARGV: value, ttl ms. 1 when renewed, 0 when not the holder. */
static struct broker_script renew_script = BROKER_SCRIPT(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n");
/* KEYS: lease; ARGV: value. 1 when released, 0 when not the holder. */
static struct broker_script release_script = BROKER_SCRIPT(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n");

#define NAME_MAX_ 127

static int lease_key(const char *name, char *key, size_t n) {
  if (!name || !*name || strlen(name) > NAME_MAX_)
    return GROVE_EINVAL;
  snprintf(key, n, "grove:lease:%s", name);
  return 0;
}

/* The integer a script returned; rc stays unless the reply is not one. */
static int integer_of(int rc, redisReply *r, long long *out) {
  if (rc == GROVE_EIO && r)
    log_warn(NULL, "redis refused a lease script", "error=\"%s\"", r->str);
  if (!rc && r->type != REDIS_REPLY_INTEGER)
    rc = GROVE_EIO;
  if (!rc)
    *out = r->integer;
  freeReplyObject(r);
  return rc;
}

int broker_lease_acquire(struct broker *b, const char *name, uint64_t ttl_ms,
                         struct broker_lease *out) {
  char key[160], counter[176], holder[33], ttl[24];
  if (!ttl_ms || ttl_ms > INT64_MAX / 1000000 || lease_key(name, key, sizeof key))
    return GROVE_EINVAL;
  snprintf(counter, sizeof counter, "%s:token", key);
  rand_hex(holder, sizeof holder);
  snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms);
  const char *keys[] = {key, counter};
  const char *args[] = {holder, ttl};
  redisReply *r;
  long long token = 0;
  int rc = broker_eval_sync(b, &acquire_script, 2, keys, 2, args, &r);
  rc = integer_of(rc, r, &token);
  if (rc)
    return rc;
  if (token <= 0)
    return GROVE_EBUSY;
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", name);
  snprintf(out->value, sizeof out->value, "%lld:%s", token, holder);
  out->token = (uint64_t)token;
  return 0;
}

int broker_lease_renew(struct broker *b, const struct broker_lease *l, uint64_t ttl_ms) {
  char key[160], ttl[24];
  if (!ttl_ms || ttl_ms > INT64_MAX / 1000000 || lease_key(l->name, key, sizeof key))
    return GROVE_EINVAL;
  snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms);
  const char *keys[] = {key};
  const char *args[] = {l->value, ttl};
  redisReply *r;
  long long done = 0;
  int rc = broker_eval_sync(b, &renew_script, 1, keys, 2, args, &r);
  rc = integer_of(rc, r, &done);
  return rc ? rc : done == 1 ? 0 : GROVE_EPERM;
}

int broker_lease_release(struct broker *b, const struct broker_lease *l) {
  char key[160];
  if (lease_key(l->name, key, sizeof key))
    return GROVE_EINVAL;
  const char *keys[] = {key};
  const char *args[] = {l->value};
  redisReply *r;
  long long done = 0;
  int rc = broker_eval_sync(b, &release_script, 1, keys, 1, args, &r);
  rc = integer_of(rc, r, &done);
  return rc ? rc : done == 1 ? 0 : GROVE_EPERM;
}
