/* map.h — string-keyed hash map (open addressing, linear probing).
 *
 * Keys are copied and owned by the map; values are opaque pointers owned by
 * the caller. Not thread-safe: the owner serialises access. */
#ifndef GROVE_MAP_H
#define GROVE_MAP_H

#include <stddef.h>
#include <stdint.h>

struct map_slot {
  char *key; /* NULL: empty; MAP_TOMBSTONE: deleted */
  uint64_t hash;
  void *value;
};

struct map {
  struct map_slot *slots;
  size_t cap;  /* power of two */
  size_t len;  /* live entries */
  size_t used; /* live + tombstones */
};

void map_init(struct map *m);
/* Frees the slots and keys (not the values). */
void map_release(struct map *m);
void *map_get(const struct map *m, const char *key);
/* Where key's value is kept (to read or replace it in place), or NULL if
 * absent; valid until the next map_put or map_del. */
void **map_ref(const struct map *m, const char *key);
/* Inserts or replaces. OUT: *old (may be NULL) the value replaced, or NULL.
 * Returns 0 or GROVE_ENOMEM (map unaltered). */
int map_put(struct map *m, const char *key, void *value, void **old);
/* Removes and returns the value, or NULL if absent. */
void *map_del(struct map *m, const char *key);
/* Iteration: for (size_t i = 0; map_next(m, &i, &k, &v);) */
int map_next(const struct map *m, size_t *iter, const char **key, void **value);

/* A 64-bit hash of n bytes at p: XXH3_64bits (libxxhash, xxhash.h), whose
 * low bits are as good as its high ones (an index mask needs no mixing).
 * Not for anything stored or compared across versions. Thread-safe. */
uint64_t hash_bytes(const void *p, size_t n);

#endif
