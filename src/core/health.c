/* health.c — a list of readiness checks under one lock. */
#include "core/array.h"
#include "core/health.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct check {
  char name[64];
  health_fn fn;
  void *arg;
};

struct health {
  pthread_mutex_t lock;
  struct check *checks;
  size_t n, cap;
};

int health_create(struct health **out) {
  struct health *h = calloc(1, sizeof *h);
  if (!h)
    return GROVE_ENOMEM;
  pthread_mutex_init(&h->lock, NULL);
  *out = h;
  return 0;
}

void health_destroy(struct health *h) {
  if (!h)
    return;
  pthread_mutex_destroy(&h->lock);
  free(h->checks);
  free(h);
}

int health_add(struct health *h, const char *name, health_fn fn, void *arg) {
  size_t len = strlen(name);
  if (!len || len >= sizeof h->checks[0].name || !fn)
    return GROVE_EINVAL;
  pthread_mutex_lock(&h->lock);
  int rc = ARRAY_GROW(h->checks, h->cap, h->n + 1, 8, ARRAY_NOMAX);
  if (!rc) {
    struct check *c = &h->checks[h->n++];
    memcpy(c->name, name, len + 1);
    c->fn = fn;
    c->arg = arg;
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

void health_remove(struct health *h, health_fn fn, void *arg) {
  if (!h)
    return;
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->n; i++)
    if (h->checks[i].fn == fn && h->checks[i].arg == arg) {
      memmove(&h->checks[i], &h->checks[i + 1], (h->n - i - 1) * sizeof *h->checks);
      h->n--;
      break;
    }
  pthread_mutex_unlock(&h->lock);
}

size_t health_run(struct health *h,
                  void (*out)(const char *name, int rc, const char *why, void *arg), void *arg) {
  size_t failed = 0;
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->n; i++) {
    char why[1024] = "";
    int rc = h->checks[i].fn(h->checks[i].arg, why, sizeof why);
    if (rc) {
      failed++;
      if (!why[0])
        strcpy(why, grove_strerror(rc));
    } else {
      why[0] = '\0';
    }
    out(h->checks[i].name, rc, why, arg);
  }
  pthread_mutex_unlock(&h->lock);
  return failed;
}
