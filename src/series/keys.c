/* keys.c — the key registry: every series key this process knows and its
 * dense id, both ways (a map key -> id, an array id -> key), in memory.
 * Ids the registry lacks come from the backend (series_ops.key_ids): made
 * here and logged with the next group commit (SQLite), or from a table
 * shared by every instance (PostgreSQL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "core/log.h"
#include "series/internal.h"
#include "series/key.h"

int keys_apply(struct series *s, uint32_t id, const char *key, size_t len) {
  if (len == 0 || len > SERIES_KEY_MAX)
    return GROVE_EINVAL;
  if (id >= s->capkeys) { /* grows by doubling: ids are dense */
    /* both from the same capacity to the same need: the same new one */
    size_t kcap = s->capkeys, hcap = s->capkeys, tcap = s->capkeys;
    int rc = ARRAY_GROW(s->keys, kcap, (size_t)id + 1, 64, UINT32_MAX);
    if (rc || (rc = ARRAY_GROW(s->heads, hcap, kcap, 64, UINT32_MAX)) ||
        (rc = ARRAY_GROW(s->ktypes, tcap, kcap, 64, UINT32_MAX)))
      return rc;
    for (size_t i = s->capkeys; i < kcap; i++) {
      s->keys[i] = NULL;
      s->heads[i] = (struct head){0};
      s->ktypes[i] = SERIES_TYPE_NONE;
    }
    s->capkeys = (uint32_t)kcap;
  }
  if (id >= s->nkeys)
    s->nkeys = id + 1;
  if (s->keys[id])
    return 0;
  s->keys[id] = strndup(key, len);
  if (!s->keys[id] || map_put(&s->ids, s->keys[id], (void *)(uintptr_t)(id + 1), NULL))
    return GROVE_ENOMEM;
  return 0;
}

/* The id of a registered key (under lock): 0 and *id, or GROVE_ENOENT. */
static int lookup(struct series *s, const char *key, uint32_t *id) {
  uintptr_t v = (uintptr_t)map_get(&s->ids, key);
  if (!v)
    return GROVE_ENOENT;
  *id = (uint32_t)(v - 1);
  return 0;
}

static bool key_ok(const char *key) {
  size_t len = strlen(key);
  return len > 0 && len <= SERIES_KEY_MAX;
}

int series_cached(struct series *s, const char *key, uint32_t *id) {
  pthread_mutex_lock(&s->lock);
  int rc = lookup(s, key, id);
  pthread_mutex_unlock(&s->lock);
  return rc;
}

int series_cached_typed(struct series *s, const char *key, uint32_t *id, uint8_t *type) {
  pthread_mutex_lock(&s->lock);
  int rc = lookup(s, key, id);
  *type = rc ? SERIES_TYPE_NONE : s->ktypes[*id];
  pthread_mutex_unlock(&s->lock);
  return rc;
}

void series_note_type(struct series *s, uint32_t id, uint8_t type) {
  pthread_mutex_lock(&s->lock);
  if (id < s->nkeys && s->keys[id])
    s->ktypes[id] = type;
  pthread_mutex_unlock(&s->lock);
}

int series_id(struct series *s, const char *key, uint32_t *id) {
  if (!key_ok(key))
    return GROVE_EINVAL;
  if (series_cached(s, key, id) == 0)
    return 0;
  return s->ops->key_ids(s, &key, 1, true, id);
}

int series_ids(struct series *s, const char *const *keys, size_t n, uint32_t *ids) {
  const char **missing = malloc((n ? n : 1) * sizeof *missing);
  size_t *where = malloc((n ? n : 1) * sizeof *where);
  uint32_t *got = malloc((n ? n : 1) * sizeof *got);
  int rc = missing && where && got ? 0 : GROVE_ENOMEM;
  size_t nm = 0;
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; !rc && i < n; i++) {
    if (!key_ok(keys[i])) {
      rc = GROVE_EINVAL;
      break;
    }
    if (lookup(s, keys[i], &ids[i])) {
      missing[nm] = keys[i];
      where[nm++] = i;
    }
  }
  pthread_mutex_unlock(&s->lock);
  /* the keys not known here in one call: with PostgreSQL, two round trips
   * in all */
  if (!rc && nm && !(rc = s->ops->key_ids(s, missing, nm, true, got)))
    for (size_t k = 0; k < nm; k++)
      ids[where[k]] = got[k];
  free(missing);
  free(where);
  free(got);
  return rc;
}

int series_find(struct series *s, const char *key, uint32_t *id) {
  if (series_cached(s, key, id) == 0)
    return 0;
  if (!key_ok(key))
    return GROVE_ENOENT;
  return s->ops->key_ids(s, &key, 1, false, id); /* another instance may have made it */
}

int series_key_of(struct series *s, uint32_t id, char *out, size_t n) {
  pthread_mutex_lock(&s->lock);
  int rc = id < s->nkeys && s->keys[id] ? 0 : GROVE_ENOENT;
  if (!rc)
    snprintf(out, n, "%s", s->keys[id]);
  pthread_mutex_unlock(&s->lock);
  return rc;
}

void series_each_key(struct series *s, void (*fn)(uint32_t id, const char *key, void *arg),
                     void *arg) {
  if (s->ops->keys_refresh && s->ops->keys_refresh(s))
    log_warn(NULL, "cannot read other instances' series keys; the walk shows this one's",
             "backend=%s", s->ops->name);
  pthread_mutex_lock(&s->lock);
  for (uint32_t id = 0; id < s->nkeys; id++)
    if (s->keys[id])
      fn(id, s->keys[id], arg);
  pthread_mutex_unlock(&s->lock);
}

/* ---- key format ------------------------------------------------------------------ */

void keys_free(char **fresh, uint32_t n) {
  for (uint32_t id = 0; fresh && id < n; id++)
    free(fresh[id]);
  free(fresh);
}

int keys_convert(struct series *s, char ***out, size_t *changed) {
  char **fresh = calloc(s->nkeys ? s->nkeys : 1, sizeof *fresh);
  struct buf b;
  buf_init(&b, 0);
  int rc = fresh ? 0 : GROVE_ENOMEM;
  size_t n = 0;
  for (uint32_t id = 0; !rc && id < s->nkeys; id++) {
    if (!s->keys[id])
      continue;
    if (!(rc = series_key_from_legacy(&b, s->keys[id], strlen(s->keys[id]))) &&
        !(fresh[id] = strdup(b.data)))
      rc = GROVE_ENOMEM;
    if (!rc && strcmp(fresh[id], s->keys[id]) != 0)
      n++;
  }
  buf_release(&b);
  if (rc) {
    keys_free(fresh, s->nkeys);
    fresh = NULL;
  }
  *out = fresh;
  if (changed)
    *changed = n;
  return rc;
}

int keys_adopt(struct series *s, char **fresh) {
  struct map ids;
  map_init(&ids);
  int rc = 0;
  for (uint32_t id = 0; !rc && id < s->nkeys; id++)
    if (fresh[id])
      rc = map_put(&ids, fresh[id], (void *)(uintptr_t)(id + 1), NULL);
  if (!rc && ids.len != s->ids.len)
    rc = GROVE_EINVAL; /* two keys became one: cannot happen (key.h) */
  if (rc) {
    map_release(&ids);
    return rc;
  }
  map_release(&s->ids);
  s->ids = ids;
  for (uint32_t id = 0; id < s->nkeys; id++) {
    free(s->keys[id]);
    s->keys[id] = fresh[id];
  }
  free(fresh);
  return 0;
}
