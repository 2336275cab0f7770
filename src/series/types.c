/* types.c — the field type each series was first written with, kept by
 * key (series.h, "field types"): a map in memory, loaded at open, over the
 * backend's table, which only grows (series_types), so a type once
 * recorded never changes. A claim for keys this process does not know
 * asks the backend, which settles races between writers (and instances):
 * the first insert wins, and every writer reads back what it was. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/map.h"
#include "series/internal.h"

struct stypes {
  struct series *s;     /* whose backend keeps the table */
  pthread_mutex_t lock; /* the map */
  struct map types;     /* key -> type (as uintptr_t) */
};

static const char *const names[] = {"none", "float", "integer", "unsigned", "boolean", "string"};

const char *series_type_name(enum series_type t) {
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static int remember(const char *key, uint8_t type, void *arg) {
  struct stypes *t = arg;
  if (type == SERIES_TYPE_NONE || type > SERIES_TYPE_STRING)
    return 0;
  return map_put(&t->types, key, (void *)(uintptr_t)type, NULL);
}

void stypes_close(struct stypes *t) {
  if (!t)
    return;
  map_release(&t->types);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

int stypes_open(struct stypes **out, struct series *s, char *err, size_t errlen) {
  struct stypes *t = calloc(1, sizeof *t);
  if (!t)
    return GROVE_ENOMEM;
  t->s = s;
  pthread_mutex_init(&t->lock, NULL);
  map_init(&t->types);
  int rc = s->ops->types_load(s, remember, t);
  if (rc) {
    snprintf(err, errlen, "cannot read series types (%s): %s", s->ops->name, grove_strerror(rc));
    stypes_close(t);
    return rc;
  }
  *out = t;
  return 0;
}

enum series_type series_type_cached(struct series *s, const char *key) {
  struct stypes *t = s->types;
  pthread_mutex_lock(&t->lock);
  uint8_t type = (uint8_t)(uintptr_t)map_get(&t->types, key);
  pthread_mutex_unlock(&t->lock);
  return (enum series_type)type;
}

static int read_back(const char *key, uint8_t type, void *arg) {
  return map_put(arg, key, (void *)(uintptr_t)type, NULL);
}

int series_types_claim(struct series *s, const char *const *keys, const uint8_t *types,
                       size_t n, uint8_t *got) {
  struct stypes *t = s->types;
  /* the keys this process knows need no database */
  const char **ask = malloc((n ? n : 1) * sizeof *ask);
  uint8_t *ask_types = malloc(n ? n : 1);
  size_t na = 0;
  int rc = ask && ask_types ? 0 : GROVE_ENOMEM;
  pthread_mutex_lock(&t->lock);
  for (size_t i = 0; !rc && i < n; i++) {
    got[i] = (uint8_t)(uintptr_t)map_get(&t->types, keys[i]);
    if (!got[i]) {
      ask[na] = keys[i];
      ask_types[na++] = types[i];
    }
  }
  pthread_mutex_unlock(&t->lock);
  struct map seen; /* key -> type, as read back */
  map_init(&seen);
  if (!rc && na)
    rc = s->ops->types_claim(s, ask, ask_types, na, read_back, &seen);
  if (!rc && na) {
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; !rc && i < n; i++) {
      if (got[i])
        continue;
      uint8_t type = (uint8_t)(uintptr_t)map_get(&seen, keys[i]);
      if (!type) {
        rc = GROVE_ESTORE; /* the table did not answer for it */
        break;
      }
      got[i] = type;
      rc = map_put(&t->types, keys[i], (void *)(uintptr_t)type, NULL);
    }
    pthread_mutex_unlock(&t->lock);
  }
  map_release(&seen);
  free(ask);
  free(ask_types);
  return rc;
}
