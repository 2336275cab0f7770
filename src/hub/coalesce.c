/* coalesce.c — coalesced publishing: at most one message per topic every
 * so often, the newest payload winning and always delivered.
 *
 * Each topic published this way has a slot: when its last message went
 * out (hub clock) and the payload waiting for the next one, if any. A
 * publish on a free slot goes out at once; inside the interval it
 * replaces the waiting payload, and the flusher (one periodic thread a
 * hub) sends it when the slot comes. Slots are kept in the order they
 * were last used, and a slot whose interval has passed with nothing
 * waiting is freed (a free slot is the same as no slot), so memory
 * follows the topics active in the last interval. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "core/map.h"
#include "core/periodic.h"
#include "hub/internal.h"

/* How long the flusher sleeps with nothing waiting (a publish that must
 * wait wakes it). */
#define IDLE_MS (3600 * 1000)

struct slot {
  uint64_t last_ms, interval_ms;
  char *pending;                    /* owned; NULL: nothing waiting */
  size_t len;
  bool queued;                      /* in c->waiting */
  struct slot *prev, *next;         /* by last_ms, oldest first */
  char topic[];
};

struct coalescer {
  struct hub *hub;
  pthread_mutex_t lock;
  struct map slots;                 /* topic -> struct slot */
  struct slot *head, *tail;
  struct slot **waiting;            /* slots with a payload waiting */
  size_t nwaiting, capwaiting;
  uint64_t next_run;                /* hub clock; UINT64_MAX: none planned */
  struct periodic *flusher;
};

static void unlink_slot(struct coalescer *c, struct slot *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    c->head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    c->tail = s->prev;
  s->prev = s->next = NULL;
}

static void push_slot(struct coalescer *c, struct slot *s) {
  s->prev = c->tail;
  s->next = NULL;
  if (c->tail)
    c->tail->next = s;
  else
    c->head = s;
  c->tail = s;
}

static void used(struct coalescer *c, struct slot *s, uint64_t now) {
  s->last_ms = now;
  unlink_slot(c, s);
  push_slot(c, s);
}

/* Frees the slots at the head whose interval has passed with nothing
 * waiting. Under c->lock. */
static void sweep(struct coalescer *c, uint64_t now) {
  while (c->head && !c->head->pending && now - c->head->last_ms >= c->head->interval_ms) {
    struct slot *s = c->head;
    unlink_slot(c, s);
    map_del(&c->slots, s->topic);
    free(s);
  }
}

struct sendout {
  char *topic, *json;
  size_t len;
};

/* Sends the waiting payloads whose slot has come. Returns the ms until
 * the next one is due (0: nothing waits). */
static uint64_t flush_due(struct coalescer *c) {
  struct sendout *out = NULL;
  size_t nout = 0, capout = 0;
  pthread_mutex_lock(&c->lock);
  uint64_t now = hub_now(c->hub), next = UINT64_MAX;
  size_t keep = 0;
  for (size_t i = 0; i < c->nwaiting; i++) {
    struct slot *s = c->waiting[i];
    uint64_t due = s->last_ms + s->interval_ms;
    if (due <= now && !ARRAY_GROW(out, capout, nout + 1, 16, ARRAY_NOMAX) &&
        (out[nout].topic = strdup(s->topic))) {
      out[nout].json = s->pending;
      out[nout++].len = s->len;
      s->pending = NULL;
      s->queued = false;
      used(c, s, now);
    } else {
      c->waiting[keep++] = s;
      if (due < next)
        next = due;
    }
  }
  c->nwaiting = keep;
  sweep(c, now);
  c->next_run = next;
  pthread_mutex_unlock(&c->lock);
  /* in slot order: a topic's payloads leave in the order they were given */
  for (size_t i = 0; i < nout; i++) {
    hub_publish(c->hub, out[i].topic, out[i].json, out[i].len, NULL);
    free(out[i].topic);
    free(out[i].json);
  }
  free(out);
  return next == UINT64_MAX ? 0 : next > now ? next - now : 1;
}

static uint64_t flusher_run(void *arg) {
  uint64_t wait = flush_due(arg);
  return wait ? wait : IDLE_MS;
}

uint64_t hub_coalesced_flush(struct hub *h) {
  struct coalescer *c = hub_coalescer(h);
  return c ? flush_due(c) : 0;
}

int hub_publish_coalesced(struct hub *h, const char *topic, const char *json, size_t len,
                          uint64_t min_interval_ms) {
  struct coalescer *c = hub_coalescer(h);
  if (!hub_topic_valid(topic))
    return GROVE_EINVAL;
  if (!min_interval_ms || !c)
    return hub_publish(h, topic, json, len, NULL);
  pthread_mutex_lock(&c->lock);
  uint64_t now = hub_now(h);
  struct slot *s = map_get(&c->slots, topic);
  if (!s || (!s->pending && now - s->last_ms >= min_interval_ms)) {
    if (!s) {
      size_t n = strlen(topic) + 1;
      if (!(s = calloc(1, sizeof *s + n)))
        goto nomem;
      memcpy(s->topic, topic, n);
      if (map_put(&c->slots, s->topic, s, NULL)) {
        free(s);
        goto nomem;
      }
      push_slot(c, s);
    }
    s->interval_ms = min_interval_ms;
    used(c, s, now);
    sweep(c, now);
    pthread_mutex_unlock(&c->lock);
    return hub_publish(h, topic, json, len, NULL);
  }
  /* inside the interval: this payload waits, replacing any before it */
  char *copy = malloc(len + 1);
  if (!copy || (!s->queued && ARRAY_GROW(c->waiting, c->capwaiting, c->nwaiting + 1, 64,
                                         ARRAY_NOMAX))) {
    free(copy);
    goto nomem;
  }
  memcpy(copy, json, len);
  copy[len] = '\0';
  free(s->pending);
  s->pending = copy;
  s->len = len;
  s->interval_ms = min_interval_ms;
  if (!s->queued) {
    c->waiting[c->nwaiting++] = s;
    s->queued = true;
  }
  uint64_t due = s->last_ms + min_interval_ms;
  bool wake = due < c->next_run;
  if (wake)
    c->next_run = due;
  pthread_mutex_unlock(&c->lock);
  if (wake)
    periodic_wake(c->flusher);
  return 0;
nomem:
  pthread_mutex_unlock(&c->lock);
  return GROVE_ENOMEM;
}

int coalescer_create(struct coalescer **out, struct hub *h) {
  struct coalescer *c = calloc(1, sizeof *c);
  if (!c)
    return GROVE_ENOMEM;
  c->hub = h;
  c->next_run = UINT64_MAX;
  pthread_mutex_init(&c->lock, NULL);
  map_init(&c->slots);
  int rc = periodic_start(&c->flusher, IDLE_MS, flusher_run, c);
  if (rc) {
    pthread_mutex_destroy(&c->lock);
    map_release(&c->slots);
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void coalescer_destroy(struct coalescer *c) {
  if (!c)
    return;
  periodic_stop(c->flusher);
  while (c->head) {
    struct slot *s = c->head;
    unlink_slot(c, s);
    free(s->pending);
    free(s);
  }
  map_release(&c->slots);
  free(c->waiting);
  pthread_mutex_destroy(&c->lock);
  free(c);
}
