/* map.c — string-keyed open-addressing hash map. */
#include "core/map.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/error.h"

static char tomb;
#define MAP_TOMBSTONE (&tomb)

uint64_t hash_bytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

void map_init(struct map *m) { memset(m, 0, sizeof *m); }

void map_release(struct map *m) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key && m->slots[i].key != MAP_TOMBSTONE)
      free(m->slots[i].key);
  free(m->slots);
  map_init(m);
}

static struct map_slot *lookup(const struct map *m, const char *key, uint64_t h) {
  if (!m->cap)
    return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    struct map_slot *s = &m->slots[i];
    if (!s->key)
      return NULL;
    if (s->key != MAP_TOMBSTONE && s->hash == h && strcmp(s->key, key) == 0)
      return s;
  }
}

void *map_get(const struct map *m, const char *key) {
  struct map_slot *s = lookup(m, key, hash_bytes(key, strlen(key)));
  return s ? s->value : NULL;
}

void **map_ref(const struct map *m, const char *key) {
  struct map_slot *s = lookup(m, key, hash_bytes(key, strlen(key)));
  return s ? &s->value : NULL;
}

static int grow(struct map *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  if (m->len * 4 < m->cap) /* mostly tombstones: rehash in place size */
    cap = m->cap;
  struct map_slot *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return GROVE_ENOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    struct map_slot *s = &m->slots[i];
    if (!s->key || s->key == MAP_TOMBSTONE)
      continue;
    size_t j = s->hash & (cap - 1);
    while (slots[j].key)
      j = (j + 1) & (cap - 1);
    slots[j] = *s;
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  m->used = m->len;
  return 0;
}

int map_put(struct map *m, const char *key, void *value, void **old) {
  uint64_t h = hash_bytes(key, strlen(key));
  struct map_slot *s = lookup(m, key, h);
  if (old)
    *old = NULL;
  if (s) {
    if (old)
      *old = s->value;
    s->value = value;
    return 0;
  }
  if ((m->used + 1) * 4 > m->cap * 3 && grow(m))
    return GROVE_ENOMEM;
  char *k = strdup(key);
  if (!k)
    return GROVE_ENOMEM;
  size_t mask = m->cap - 1, i = h & mask;
  while (m->slots[i].key && m->slots[i].key != MAP_TOMBSTONE)
    i = (i + 1) & mask;
  if (!m->slots[i].key)
    m->used++;
  m->slots[i] = (struct map_slot){k, h, value};
  m->len++;
  return 0;
}

void *map_del(struct map *m, const char *key) {
  struct map_slot *s = lookup(m, key, hash_bytes(key, strlen(key)));
  if (!s)
    return NULL;
  void *v = s->value;
  free(s->key);
  s->key = MAP_TOMBSTONE;
  s->value = NULL;
  m->len--;
  return v;
}

int map_next(const struct map *m, size_t *iter, const char **key, void **value) {
  for (size_t i = *iter; i < m->cap; i++) {
    struct map_slot *s = &m->slots[i];
    if (s->key && s->key != MAP_TOMBSTONE) {
      *iter = i + 1;
      if (key)
        *key = s->key;
      if (value)
        *value = s->value;
      return 1;
    }
  }
  *iter = m->cap;
  return 0;
}
