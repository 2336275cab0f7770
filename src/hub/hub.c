/* hub.c — topics, subscribers and delivery on every event loop. */
#include "hub/hub.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/array.h"
#include "broker/broker.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/gate.h"
#include "hub/internal.h"
#include "net/http.h"

const struct cfg_opt hub_cfg_opts[] = {
    CFG_OPT(struct hub_cfg, "live-max-message", CFG_SIZE, max_message, "64k", "largest WebSocket message a client may send; larger closes with 1009"),
    CFG_OPT(struct hub_cfg, "live-max-queue", CFG_SIZE, max_queue, "1m", "unsent bytes per subscriber; a slower client is disconnected"),
    CFG_OPT(struct hub_cfg, "live-history", CFG_INT, history, "100", "messages kept per topic for SSE Last-Event-ID resumption"),
    CFG_OPT(struct hub_cfg, "live-history-bytes", CFG_SIZE, history_bytes, "64m", "memory for those messages in all, topics' own included; the oldest go first"),
    CFG_OPT(struct hub_cfg, "live-history-idle", CFG_MS, history_idle_ms, "10m", "a topic with no publish for this long and no subscriber loses its history; 0: kept until the bytes are needed"),
    CFG_OPT(struct hub_cfg, "live-max-topics", CFG_INT, max_topics, "64", "topics one connection may subscribe to"),
    CFG_OPT(struct hub_cfg, "live-ping", CFG_MS, ping_ms, "30s", "WebSocket ping interval; a peer silent for two is closed"),
    CFG_OPT(struct hub_cfg, "live-heartbeat", CFG_MS, heartbeat_ms, "15s", "SSE heartbeat comment interval"),
    CFG_OPT(struct hub_cfg, "live-client-publish", CFG_BOOL, client_publish, "false", "let clients publish: POST /api/v1/live/{topic} and {\"op\":\"publish\"} over WebSocket (never on apps' topics: flow/, relay/, matrix/, notes/, jobs/)"),
};
const size_t hub_cfg_nopts = ARRAY_LEN(hub_cfg_opts);

/* ---- messages ----------------------------------------------------------- */

struct hub_msg {
  _Atomic int refs;
  uint64_t id;
  char *topic;
  uv_buf_t ws;   /* complete WebSocket text frame */
  uv_buf_t sse;  /* complete SSE event */
  /* history, under the hub's lock: every kept message by age, and its
   * topic's messages by age */
  struct hub_msg *older, *newer, *topic_next;
  size_t size;
};

static void msg_unref(void *p) {
  struct hub_msg *m = p;
  if (atomic_fetch_sub(&m->refs, 1) == 1)
    free(m);
}

static struct hub_msg *msg_ref(struct hub_msg *m) {
  atomic_fetch_add(&m->refs, 1);
  return m;
}

/* One allocation: struct, topic, frame, event. */
static struct hub_msg *msg_new(uint64_t id, const char *topic, const char *json, size_t len) {
  struct buf body;
  buf_init(&body, 0);
  buf_puts(&body, "{\"type\":\"message\",\"topic\":\"");
  buf_json_escape(&body, topic, strlen(topic));
  buf_printf(&body, "\",\"id\":%llu,\"data\":", (unsigned long long)id);
  buf_append(&body, json, len);
  if (buf_putc(&body, '}')) {
    buf_release(&body);
    return NULL;
  }
  char sse_head[64];
  int sh = snprintf(sse_head, sizeof sse_head, "id: %llu\nevent: message\ndata: ",
                    (unsigned long long)id);
  size_t tl = strlen(topic) + 1;
  size_t ws_len = 10 + body.len, sse_len = (size_t)sh + body.len + 2;
  struct hub_msg *m = malloc(sizeof *m + tl + ws_len + sse_len);
  if (!m) {
    buf_release(&body);
    return NULL;
  }
  char *p = (char *)(m + 1);
  atomic_init(&m->refs, 1);
  m->id = id;
  m->topic = p;
  memcpy(p, topic, tl);
  p += tl;
  size_t hl = ws_frame_header((uint8_t *)p, body.len);
  memcpy(p + hl, body.data, body.len);
  m->ws = uv_buf_init(p, (unsigned)(hl + body.len));
  p += hl + body.len;
  memcpy(p, sse_head, (size_t)sh);
  memcpy(p + sh, body.data, body.len);
  memcpy(p + sh + body.len, "\n\n", 2);
  m->sse = uv_buf_init(p, (unsigned)sse_len);
  m->older = m->newer = m->topic_next = NULL;
  m->size = sizeof *m + tl + ws_len + sse_len;
  buf_release(&body);
  return m;
}

/* ---- state -------------------------------------------------------------- */

struct sub;
struct link {
  struct link *prev, *next; /* in the topic's list */
  struct link *sub_next;    /* in the subscriber's list */
  struct sub *sub;
  struct topic *t;
};

struct topic {
  struct link *head;
  char name[];
};

enum sub_kind { SUB_WS, SUB_SSE };

/* Small: an idle subscriber costs its connection and this (bench/http). */
struct sub {
  struct shard *sh;
  enum sub_kind kind;
  int ntopics;
  union {
    struct ws *ws;
    struct sse *sse;
  } u;
  struct link *links;
  uint64_t replayed_upto; /* SSE: live messages up to this id were replayed */
  struct gate_principal *who; /* owned: who its credential names while it holds
                                 (the start of a struct sub_cred); NULL:
                                 anonymous, or it no longer holds */
  char *credential;       /* owned: the credential it showed, checked again at
                             each subscribe, when it expires and when the
                             gate's view changes */
};

/* What a subscriber with a credential holds besides: who it names, and
 * its place in its shard's list of subscribers to check again (anonymous
 * subscribers pay for none of it). */
struct sub_cred {
  struct gate_principal who; /* first: sub->who points here */
  struct sub *prev, *next;
};
#define SUB_CRED(s) ((struct sub_cred *)(void *)(s)->who)

struct shard {
  struct hub *hub;
  uv_loop_t *loop;
  uv_async_t async;
  pthread_mutex_t lock;
  struct hub_msg **inbox;
  size_t ninbox, capinbox;
  struct map topics; /* name -> struct topic */
  bool running;
  uv_timer_t recheck;  /* once a second: credentials that expired or changed */
  struct sub *creds;   /* subscribers whose credential holds (who != NULL) */
  uint64_t view_gen;   /* the gate's view generation last checked against */
};

/* A topic rule as registered (hub_topics_add). */
struct rule {
  struct hub_topic_rule r; /* read already resolved from read_anyone */
  const char *owner;
  void *state;
  size_t plen;
};

/* A topic's history, oldest first, and how many loops have subscribers
 * to it. Kept while it holds messages or has subscribers; freed when it
 * has neither, or when the topic has been idle (no publish) for
 * --live-history-idle with no subscriber. Its own bytes count toward
 * --live-history-bytes beside its messages'. */
struct ring {
  struct hub_msg *head, *tail;
  int count;
  int subscribed;             /* loops with a subscriber to the topic */
  uint64_t idle_since;        /* ms (hub clock): last publish, or last check */
  struct ring *lru_prev, *lru_next; /* by idle_since, oldest first */
  size_t size;                /* this struct and its name */
  char topic[];
};

struct hub {
  struct hub_cfg cfg;
  struct shard *shards;
  int nshards;
  pthread_mutex_t lock; /* ids, history, inboxes in order */
  uint64_t next_id;
  struct map history;   /* topic -> struct ring */
  struct hub_msg *oldest, *newest; /* all kept messages by age */
  struct ring *lru_head, *lru_tail; /* rings by idle_since, oldest first */
  size_t history_bytes; /* messages and rings */
  uint64_t next_sweep;  /* ms (hub clock) */
  uint64_t (*clock_ms)(void *arg);
  void *clock_arg;
  struct broker *broker;
  struct coalescer *coalesce; /* hub_publish_coalesced's slots (coalesce.c) */
  struct gate *gate;    /* identifies clients; may be NULL */
  struct rule *rules;   /* topic rules, fixed once serving */
  size_t nrules, caprules;
  struct metric *subscribers, *published, *delivered, *slow, *history_topics, *history_size;
};

bool hub_topic_valid(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > 256 || t[0] == '/' || t[n - 1] == '/')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '@' || c == '/';
    if (!ok || (c == '/' && t[i + 1] == '/'))
      return false;
    /* no "." or ".." segments: topics may name files or keys later */
    if (c == '.' && (i == 0 || t[i - 1] == '/')) {
      size_t j = i + 1;
      if (j < n && t[j] == '.')
        j++;
      if (j == n || t[j] == '/')
        return false;
    }
  }
  return true;
}

/* ---- who may read and publish (hub.h) -----------------------------------
 * Namespaces kept for the modules still to come, so that no client takes
 * their topics before they declare rules; an app's own namespace is
 * reserved by its rules. */
static const char *const future[] = {"relay", "matrix", "notes", "jobs"};

/* Whether `topic` starts with `prefix` at a segment boundary, without
 * regard to case. */
static bool prefix_matches(const char *topic, const char *prefix, size_t plen) {
  return strncasecmp(topic, prefix, plen) == 0 &&
         (prefix[plen - 1] == '/' || topic[plen] == '\0' || topic[plen] == '/');
}

/* The rule of the longest prefix matching topic, or NULL. */
static const struct rule *rule_of(const struct hub *h, const char *topic) {
  const struct rule *best = NULL;
  for (size_t i = 0; i < h->nrules; i++)
    if ((!best || h->rules[i].plen > best->plen) &&
        prefix_matches(topic, h->rules[i].r.prefix, h->rules[i].plen))
      best = &h->rules[i];
  return best;
}

/* Whether topic's first segment is a namespace some rule (or a module to
 * come) holds. */
static bool reserved_namespace(const struct hub *h, const char *topic) {
  size_t n = strcspn(topic, "/");
  for (size_t i = 0; i < ARRAY_LEN(future); i++)
    if (strlen(future[i]) == n && strncasecmp(topic, future[i], n) == 0)
      return true;
  for (size_t i = 0; i < h->nrules; i++) {
    const char *p = h->rules[i].r.prefix;
    if (strcspn(p, "/") == n && strncasecmp(topic, p, n) == 0)
      return true;
  }
  return false;
}

int hub_topics_add(struct hub *h, const char *owner, const struct hub_topic_rule *rules,
                   size_t n, void *state, char *err, size_t errlen) {
  char none[1];
  if (!err || !errlen) {
    err = none;
    errlen = sizeof none;
  }
  for (size_t i = 0; i < n; i++) {
    const char *p = rules[i].prefix;
    size_t plen = p ? strlen(p) : 0;
    char base[258];
    bool ok = plen > 0 && plen <= 256;
    if (ok) { /* "relay/devices/" is valid when "relay/devices" is */
      memcpy(base, p, plen + 1);
      if (base[plen - 1] == '/')
        base[plen - 1] = '\0';
      ok = hub_topic_valid(base);
    }
    if (!ok) {
      snprintf(err, errlen, "topic prefix '%s' of '%s' is not a topic path", p ? p : "", owner);
      return GROVE_EINVAL;
    }
    for (size_t k = 0; k < h->nrules; k++)
      if (h->rules[k].plen == plen && strncasecmp(h->rules[k].r.prefix, p, plen) == 0) {
        snprintf(err, errlen, "topic prefix '%s' is declared twice: by '%s' and by '%s'", p,
                 h->rules[k].owner, owner);
        return GROVE_EEXIST;
      }
    if (ARRAY_GROW(h->rules, h->caprules, h->nrules + 1, 16, ARRAY_NOMAX)) {
      snprintf(err, errlen, "out of memory");
      return GROVE_ENOMEM;
    }
    struct rule *r = &h->rules[h->nrules++];
    r->r = rules[i];
    if (r->r.read_anyone && *r->r.read_anyone)
      r->r.read = HUB_ANYONE;
    r->owner = owner;
    r->state = state;
    r->plen = plen;
  }
  return 0;
}

/* The default owner rule: the id is the caller's device (a key bound to
 * one) or the caller's own user id. */
static bool owns_default(const struct gate_principal *who, const char *id, size_t n) {
  const char *mine = who->user ? who->id : who->device;
  return *mine && strlen(mine) == n && strncmp(mine, id, n) == 0;
}

int hub_topic_check(struct hub *h, const struct gate_principal *who, const char *topic,
                    bool publish, const char **code, const char **why) {
  const struct rule *r = rule_of(h, topic);
  enum hub_who need;
  unsigned scopes;
  if (r) {
    need = publish ? r->r.publish : r->r.read;
    scopes = publish ? r->r.publish_scopes : r->r.read_scopes;
  } else if (reserved_namespace(h, topic)) {
    need = publish ? HUB_NOBODY : HUB_SIGNED_IN;
    scopes = publish ? 0 : GATE_READ;
  } else if (publish && !h->cfg.client_publish) {
    *code = "PUBLISH_DISABLED";
    *why = "publishing from clients is disabled (--live-client-publish)";
    return 403;
  } else {
    return 0;
  }
  if (need == HUB_ANYONE)
    return 0;
  if (need == HUB_NOBODY) {
    *code = publish ? "TOPIC_RESERVED" : "FORBIDDEN";
    *why = publish ? "an app publishes on this topic; clients cannot"
                   : "no client may read this topic";
    return 403;
  }
  if (!who) {
    *code = "UNAUTHORIZED";
    *why = "this topic needs a credential: send {\"op\":\"auth\",\"token\":…} or connect with "
           "Authorization: Bearer … or X-API-Key";
    return 401;
  }
  if ((who->scopes & scopes) != scopes) {
    *code = "FORBIDDEN";
    *why = "credential lacks the scope this topic needs";
    return 403;
  }
  if (need == HUB_OWNER && !(who->scopes & GATE_ADMIN)) {
    const char *id = topic + r->plen + (r->r.prefix[r->plen - 1] != '/' && topic[r->plen] == '/');
    size_t n = strcspn(id, "/");
    char one[257];
    memcpy(one, id, n);
    one[n] = '\0';
    if (!n || !(r->r.owns ? r->r.owns(r->state, who, one) : owns_default(who, id, n))) {
      *code = "NOT_OWNER";
      *why = "this topic belongs to another user or device";
      return 403;
    }
  }
  return 0;
}

void hub_attach_gate(struct hub *h, struct gate *g) { h->gate = g; }

/* Whether a subscriber may read a topic now. */
static bool sub_may_read(struct sub *s, const char *topic, int *status, const char **code,
                         const char **why) {
  *status = hub_topic_check(s->sh->hub, s->who, topic, false, code, why);
  return *status == 0;
}

/* ---- delivery on a loop ------------------------------------------------- */

static void sub_send(struct sub *s, struct hub_msg *m) {
  struct hub *h = s->sh->hub;
  int rc;
  if (s->kind == SUB_WS) {
    rc = ws_send_shared(s->u.ws, &m->ws, msg_unref, msg_ref(m));
  } else {
    if (m->id <= s->replayed_upto)
      return;
    rc = sse_send_shared(s->u.sse, &m->sse, msg_unref, msg_ref(m));
  }
  if (rc == GROVE_EBUSY)
    metric_add(h->slow, 1);
  else if (rc == 0)
    metric_add(h->delivered, 1);
}

static void deliver(struct shard *sh, struct hub_msg *m) {
  struct topic *t = map_get(&sh->topics, m->topic);
  if (!t)
    return;
  /* A send may close a subscriber (slow consumer, failed write): closing
   * is deferred, so the subscriber stays linked and valid until the
   * connection's close callback, and its later sends are refused. */
  for (struct link *l = t->head; l; l = l->next)
    sub_send(l->sub, m);
}

static void on_inbox(uv_async_t *a) {
  struct shard *sh = a->data;
  pthread_mutex_lock(&sh->lock);
  struct hub_msg **msgs = sh->inbox;
  size_t n = sh->ninbox;
  sh->inbox = NULL;
  sh->ninbox = sh->capinbox = 0;
  pthread_mutex_unlock(&sh->lock);
  for (size_t i = 0; i < n; i++) {
    deliver(sh, msgs[i]);
    msg_unref(msgs[i]);
  }
  free(msgs);
}

static void history_subscribed(struct hub *h, const char *topic, int delta);
static void sub_set_who(struct sub *s, const struct gate_principal *p);

static int sub_add(struct sub *s, const char *name) {
  struct shard *sh = s->sh;
  for (struct link *l = s->links; l; l = l->sub_next)
    if (strcmp(l->t->name, name) == 0)
      return 0;
  if (s->ntopics >= sh->hub->cfg.max_topics)
    return GROVE_ETOOBIG;
  struct topic *t = map_get(&sh->topics, name);
  if (!t) {
    size_t n = strlen(name) + 1;
    t = malloc(sizeof *t + n);
    if (!t)
      return GROVE_ENOMEM;
    t->head = NULL;
    memcpy(t->name, name, n);
    if (map_put(&sh->topics, name, t, NULL)) {
      free(t);
      return GROVE_ENOMEM;
    }
  }
  struct link *l = calloc(1, sizeof *l);
  if (!l)
    return GROVE_ENOMEM;
  l->sub = s;
  l->t = t;
  l->next = t->head;
  if (t->head)
    t->head->prev = l;
  else /* the loop's first subscriber: the topic's history is kept for it */
    history_subscribed(sh->hub, name, 1);
  t->head = l;
  l->sub_next = s->links;
  s->links = l;
  s->ntopics++;
  return 0;
}

static void unlink_one(struct shard *sh, struct link *l) {
  struct topic *t = l->t;
  if (l->prev)
    l->prev->next = l->next;
  else
    t->head = l->next;
  if (l->next)
    l->next->prev = l->prev;
  if (!t->head) {
    history_subscribed(sh->hub, t->name, -1);
    map_del(&sh->topics, t->name);
    free(t);
  }
  free(l);
}

static bool sub_remove(struct sub *s, const char *name) {
  for (struct link **pl = &s->links; *pl; pl = &(*pl)->sub_next) {
    struct link *l = *pl;
    if (strcmp(l->t->name, name) == 0) {
      *pl = l->sub_next;
      unlink_one(s->sh, l);
      s->ntopics--;
      return true;
    }
  }
  return false;
}

static void sub_free(struct sub *s) {
  struct link *l = s->links;
  while (l) {
    struct link *n = l->sub_next;
    unlink_one(s->sh, l);
    l = n;
  }
  metric_add(s->sh->hub->subscribers, -1);
  sub_set_who(s, NULL);
  free(s->credential);
  free(s);
}

/* Frees a subscriber whose connection never started (not yet counted). */
static void sub_discard(struct sub *s) {
  sub_set_who(s, NULL);
  free(s->credential);
  free(s);
}

/* Keeps c as the credential s shows from now on (NULL: none). */
static void sub_set_credential(struct sub *s, const char *c) {
  free(s->credential);
  s->credential = c ? strdup(c) : NULL;
}

/* Sets who s's credential names (NULL: none holds), keeping the shard's
 * list of subscribers to check again. */
static void sub_set_who(struct sub *s, const struct gate_principal *p) {
  struct shard *sh = s->sh;
  if (!p) {
    struct sub_cred *c = SUB_CRED(s);
    if (!c)
      return;
    if (c->prev)
      SUB_CRED(c->prev)->next = c->next;
    else
      sh->creds = c->next;
    if (c->next)
      SUB_CRED(c->next)->prev = c->prev;
    free(c);
    s->who = NULL;
    return;
  }
  if (!s->who) {
    struct sub_cred *c = malloc(sizeof *c);
    if (!c)
      return; /* treated as anonymous */
    c->prev = NULL;
    c->next = sh->creds;
    if (sh->creds)
      SUB_CRED(sh->creds)->prev = s;
    sh->creds = s;
    s->who = &c->who;
  }
  *s->who = *p;
}

/* Checks s's credential again (it may have expired, been revoked, or its
 * session logged out since it was shown): s->who is who it names now, or
 * NULL when it no longer holds. */
static void sub_recheck(struct sub *s) {
  struct hub *h = s->sh->hub;
  struct gate_principal p;
  bool ok = s->credential && h->gate && gate_check_credential(h->gate, s->credential, &p) == 0;
  sub_set_who(s, ok ? &p : NULL);
}

static struct shard *shard_of(struct hub *h, uv_loop_t *loop) {
  for (int i = 0; i < h->nshards; i++)
    if (h->shards[i].loop == loop)
      return &h->shards[i];
  return NULL;
}

/* ---- publishing --------------------------------------------------------- */

struct coalescer *hub_coalescer(struct hub *h) { return h->coalesce; }

uint64_t hub_now(const struct hub *h) {
  return h->clock_ms ? h->clock_ms(h->clock_arg) : clock_mono_ns() / 1000000;
}

static void lru_unlink(struct hub *h, struct ring *r) {
  if (r->lru_prev)
    r->lru_prev->lru_next = r->lru_next;
  else
    h->lru_head = r->lru_next;
  if (r->lru_next)
    r->lru_next->lru_prev = r->lru_prev;
  else
    h->lru_tail = r->lru_prev;
  r->lru_prev = r->lru_next = NULL;
}

static void lru_push(struct hub *h, struct ring *r, uint64_t now) {
  r->idle_since = now;
  r->lru_prev = h->lru_tail;
  r->lru_next = NULL;
  if (h->lru_tail)
    h->lru_tail->lru_next = r;
  else
    h->lru_head = r;
  h->lru_tail = r;
}

static void history_gauges(struct hub *h) {
  metric_set(h->history_topics, (double)h->history.len);
  metric_set(h->history_size, (double)h->history_bytes);
}

/* A topic's ring, made when `create` (NULL: none, or no memory). Under
 * the hub's lock. */
static struct ring *ring_get(struct hub *h, const char *topic, bool create) {
  struct ring *r = map_get(&h->history, topic);
  if (r || !create)
    return r;
  size_t n = strlen(topic) + 1;
  if (!(r = calloc(1, sizeof *r + n)))
    return NULL;
  memcpy(r->topic, topic, n);
  r->size = sizeof *r + 2 * n + 32; /* and the map's copy of the name and its slot */
  if (map_put(&h->history, topic, r, NULL)) {
    free(r);
    return NULL;
  }
  lru_push(h, r, hub_now(h));
  h->history_bytes += r->size;
  return r;
}

/* Drops the oldest message of a topic's history (it is the ring's head). */
static void history_drop(struct hub *h, struct ring *r) {
  struct hub_msg *m = r->head;
  r->head = m->topic_next;
  if (!r->head)
    r->tail = NULL;
  r->count--;
  if (m->older)
    m->older->newer = m->newer;
  else
    h->oldest = m->newer;
  if (m->newer)
    m->newer->older = m->older;
  else
    h->newest = m->older;
  h->history_bytes -= m->size;
  msg_unref(m);
}

static void ring_free(struct hub *h, struct ring *r) {
  while (r->head)
    history_drop(h, r);
  lru_unlink(h, r);
  map_del(&h->history, r->topic);
  h->history_bytes -= r->size;
  free(r);
}

/* Frees a ring that holds nothing and that nobody subscribes to. */
static void ring_release_if_unused(struct hub *h, struct ring *r) {
  if (r && !r->count && !r->subscribed)
    ring_free(h, r);
}

/* Frees the histories of topics idle for --live-history-idle that no one
 * subscribes to; an idle topic with subscribers is looked at again after
 * another idle period. At most once a second, under the hub's lock. */
static void history_sweep(struct hub *h, uint64_t now) {
  uint64_t idle = h->cfg.history_idle_ms;
  if (!idle || now < h->next_sweep)
    return;
  h->next_sweep = now + 1000;
  while (h->lru_head && now - h->lru_head->idle_since >= idle) {
    struct ring *r = h->lru_head;
    if (r->subscribed) {
      lru_unlink(h, r);
      lru_push(h, r, now);
    } else {
      ring_free(h, r);
    }
  }
}

/* Keeps m for resumption: at most --live-history a topic and
 * --live-history-bytes in all (rings included), the oldest going first
 * and rings left empty with them. */
static void history_add(struct hub *h, struct hub_msg *m) {
  uint64_t now = hub_now(h);
  history_sweep(h, now);
  if (h->cfg.history <= 0 || m->size > h->cfg.history_bytes)
    return;
  struct ring *r = ring_get(h, m->topic, true);
  if (!r)
    return;
  if (r->count == h->cfg.history)
    history_drop(h, r);
  while (h->oldest && h->history_bytes + m->size > h->cfg.history_bytes) {
    struct ring *victim = map_get(&h->history, h->oldest->topic);
    history_drop(h, victim);
    if (victim != r)
      ring_release_if_unused(h, victim);
  }
  msg_ref(m);
  if (r->tail)
    r->tail->topic_next = m;
  else
    r->head = m;
  r->tail = m;
  r->count++;
  m->older = h->newest;
  if (h->newest)
    h->newest->newer = m;
  else
    h->oldest = m;
  h->newest = m;
  h->history_bytes += m->size;
  lru_unlink(h, r);
  lru_push(h, r, now);
}

/* A loop's first subscriber to a topic came (+1) or its last went (-1). */
static void history_subscribed(struct hub *h, const char *topic, int delta) {
  pthread_mutex_lock(&h->lock);
  struct ring *r = ring_get(h, topic, delta > 0);
  if (r) {
    r->subscribed += delta;
    ring_release_if_unused(h, r);
  }
  history_gauges(h);
  pthread_mutex_unlock(&h->lock);
}

size_t hub_history_after(struct hub *h, const char *topic, uint64_t last_id) {
  size_t n = 0;
  pthread_mutex_lock(&h->lock);
  struct ring *r = map_get(&h->history, topic);
  for (struct hub_msg *m = r ? r->head : NULL; m; m = m->topic_next)
    n += m->id > last_id;
  pthread_mutex_unlock(&h->lock);
  return n;
}

void hub_history_stats(struct hub *h, size_t *topics, size_t *bytes) {
  pthread_mutex_lock(&h->lock);
  *topics = h->history.len;
  *bytes = h->history_bytes;
  pthread_mutex_unlock(&h->lock);
}

void hub_set_clock(struct hub *h, uint64_t (*mono_ms)(void *arg), void *arg) {
  h->clock_ms = mono_ms;
  h->clock_arg = arg;
}

int hub_deliver(struct hub *h, const char *topic, const char *json, size_t len, uint64_t *id) {
  pthread_mutex_lock(&h->lock);
  uint64_t mid = h->next_id++;
  struct hub_msg *m = msg_new(mid, topic, json, len);
  if (!m) {
    pthread_mutex_unlock(&h->lock);
    return GROVE_ENOMEM;
  }
  if (m->ws.len > h->cfg.max_queue || m->sse.len > h->cfg.max_queue) {
    /* no subscriber could ever take it: each would be cut on delivery
     * and again on every resumption */
    h->next_id--;
    pthread_mutex_unlock(&h->lock);
    msg_unref(m);
    return GROVE_ETOOBIG;
  }
  history_add(h, m);
  history_gauges(h);
  for (int i = 0; i < h->nshards; i++) {
    struct shard *sh = &h->shards[i];
    pthread_mutex_lock(&sh->lock);
    if (sh->running) {
      if (!ARRAY_GROW(sh->inbox, sh->capinbox, sh->ninbox + 1, 16, ARRAY_NOMAX)) {
        sh->inbox[sh->ninbox++] = msg_ref(m);
        uv_async_send(&sh->async);
      }
    }
    pthread_mutex_unlock(&sh->lock);
  }
  pthread_mutex_unlock(&h->lock);
  msg_unref(m);
  metric_add(h->published, 1);
  if (id)
    *id = mid;
  return 0;
}

/* ---- between instances --------------------------------------------------
 * On the broker's channel a message is "topic\tjson"; the broker drops it
 * while Redis is away (the local delivery has happened already). */

#define LIVE_CHANNEL "grove:live"

static void share(struct hub *h, const char *topic, const char *json, size_t len) {
  char small[4096];
  size_t tl = strlen(topic), n = tl + 1 + len;
  char *msg = n <= sizeof small ? small : malloc(n);
  if (!msg)
    return;
  memcpy(msg, topic, tl);
  msg[tl] = '\t';
  memcpy(msg + tl + 1, json, len);
  broker_publish(h->broker, LIVE_CHANNEL, msg, n);
  if (msg != small)
    free(msg);
}

/* From another instance, on the broker's subscriber thread. */
static void on_shared(const char *channel, const char *msg, size_t len, void *arg) {
  struct hub *h = arg;
  (void)channel;
  const char *tab = memchr(msg, '\t', len);
  char topic[300];
  size_t tl = tab ? (size_t)(tab - msg) : 0;
  if (!tab || tl >= sizeof topic)
    return;
  memcpy(topic, msg, tl);
  topic[tl] = '\0';
  if (hub_topic_valid(topic))
    hub_deliver(h, topic, tab + 1, len - tl - 1, NULL);
}

int hub_attach_broker(struct hub *h, struct broker *b) {
  int rc = broker_subscribe(b, LIVE_CHANNEL, on_shared, h);
  if (!rc)
    h->broker = b;
  return rc;
}

int hub_publish(struct hub *h, const char *topic, const char *json, size_t len, uint64_t *id) {
  if (!hub_topic_valid(topic))
    return GROVE_EINVAL;
  /* Compact the JSON when it holds a raw newline: SSE data lines cannot. */
  char *compact = NULL;
  if (memchr(json, '\n', len) || memchr(json, '\r', len)) {
    json_t *j = json_loadb(json, len, JSON_DECODE_ANY, NULL);
    if (!j)
      return GROVE_EINVAL;
    compact = jsonout_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (!compact)
      return GROVE_ENOMEM;
    json = compact;
    len = strlen(compact);
  }
  int rc = hub_deliver(h, topic, json, len, id);
  if (!rc && h->broker)
    share(h, topic, json, len);
  free(compact);
  return rc;
}

/* Sends an SSE subscriber what it missed after last_id. Returns false
 * once the subscriber is cut (its queue overflowed or a write failed):
 * then nothing more is sent to it. */
static bool replay(struct hub *h, struct sub *s, const char *topic, uint64_t last_id) {
  struct hub_msg *found[512];
  int n = 0;
  pthread_mutex_lock(&h->lock);
  struct ring *r = map_get(&h->history, topic);
  for (struct hub_msg *m = r ? r->head : NULL; m && n < (int)ARRAY_LEN(found); m = m->topic_next)
    if (m->id > last_id)
      found[n++] = msg_ref(m);
  /* anything published from now on reaches the inbox after these */
  uint64_t upto = h->next_id - 1;
  pthread_mutex_unlock(&h->lock);
  int i = 0;
  while (i < n) {
    struct hub_msg *m = found[i++];
    if (sse_send_shared(s->u.sse, &m->sse, msg_unref, m) || !sse_is_open(s->u.sse))
      break;
  }
  bool open = i == n && sse_is_open(s->u.sse);
  while (i < n)
    msg_unref(found[i++]);
  if (upto > s->replayed_upto)
    s->replayed_upto = upto;
  return open;
}

/* ---- WebSocket protocol -------------------------------------------------- */

static void ws_reply(struct ws *ws, const char *type, const char *topic, const char *message) {
  json_t *j = json_pack("{s:s}", "type", type);
  if (topic)
    json_object_set_new(j, "topic", json_string(topic));
  if (message)
    json_object_set_new(j, "message", json_string(message));
  char *s = jsonout_dumps(j, JSON_COMPACT);
  if (s)
    ws_send_text(ws, s, strlen(s));
  free(s);
  json_decref(j);
}

/* An error as the envelope's fields: {"type":"error","topic",
 * "status","error_code","message"}. */
static void ws_error(struct ws *ws, const char *topic, int status, const char *code,
                     const char *message) {
  json_t *j = json_pack("{s:s,s:i,s:s,s:s}", "type", "error", "status", status, "error_code", code,
                        "message", message);
  if (topic)
    json_object_set_new(j, "topic", json_string(topic));
  char *s = j ? jsonout_dumps(j, JSON_COMPACT) : NULL;
  if (s)
    ws_send_text(ws, s, strlen(s));
  free(s);
  json_decref(j);
}

/* Refuses a topic: 401 when the subscriber has no credential that holds
 * (saying so when it showed one), 403 when the rule refuses it. */
static void ws_refuse(struct ws *ws, const struct sub *s, const char *topic, int status,
                      const char *code, const char *why) {
  if (status == 401 && s->credential)
    why = "credential is not valid, expired or revoked";
  ws_error(ws, topic, status, code, why);
}

/* {"op":"auth","token":…}: a browser cannot set headers on a WebSocket.
 * Also how a client renews a credential about to expire without losing
 * its subscriptions. */
static void ws_auth(struct ws *ws, struct sub *s, json_t *j) {
  struct hub *h = s->sh->hub;
  const char *token = json_string_value(json_object_get(j, "token"));
  struct gate_principal p;
  if (!token || !h->gate || gate_check_credential(h->gate, token, &p)) {
    ws_error(ws, NULL, 401, "UNAUTHORIZED", "credential is not valid, expired or revoked");
    return;
  }
  sub_set_credential(s, token);
  sub_set_who(s, &p);
  ws_reply(ws, "authenticated", NULL, NULL);
}

static void on_ws_message(struct ws *ws, bool text, const uint8_t *data, size_t len) {
  struct sub *s = ws_user(ws);
  struct hub *h = s->sh->hub;
  if (!text) {
    ws_reply(ws, "error", NULL, "binary messages are not understood; send JSON text");
    return;
  }
  json_error_t e;
  json_t *j = json_loadb((const char *)data, len, 0, &e);
  const char *op = j ? json_string_value(json_object_get(j, "op")) : NULL;
  const char *topic = j ? json_string_value(json_object_get(j, "topic")) : NULL;
  int status;
  const char *code, *why;
  if (op && strcmp(op, "subscribe") == 0)
    sub_recheck(s); /* the credential may have been revoked since it was shown */
  if (!op) {
    ws_reply(ws, "error", NULL, j ? "missing \"op\"" : "message is not valid JSON");
  } else if (strcmp(op, "ping") == 0) {
    ws_reply(ws, "pong", NULL, NULL);
  } else if (strcmp(op, "auth") == 0) {
    ws_auth(ws, s, j);
  } else if (!topic || !hub_topic_valid(topic)) {
    ws_reply(ws, "error", topic, "missing or invalid \"topic\"");
  } else if (strcmp(op, "subscribe") == 0 && !sub_may_read(s, topic, &status, &code, &why)) {
    ws_refuse(ws, s, topic, status, code, why);
  } else if (strcmp(op, "subscribe") == 0) {
    int rc = sub_add(s, topic);
    ws_reply(ws, rc ? "error" : "subscribed", topic,
             rc == GROVE_ETOOBIG ? "too many topics on this connection" : rc ? "cannot subscribe" : NULL);
  } else if (strcmp(op, "unsubscribe") == 0) {
    sub_remove(s, topic);
    ws_reply(ws, "unsubscribed", topic, NULL);
  } else if (strcmp(op, "publish") == 0) {
    json_t *d = json_object_get(j, "data");
    sub_recheck(s);
    if ((status = hub_topic_check(h, s->who, topic, true, &code, &why))) {
      ws_refuse(ws, s, topic, status, code, why);
    } else if (!d) {
      ws_reply(ws, "error", topic, "missing \"data\"");
    } else {
      char *txt = jsonout_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
      int rc = txt ? hub_publish(h, topic, txt, strlen(txt), NULL) : GROVE_ENOMEM;
      free(txt);
      ws_reply(ws, rc ? "error" : "published", topic,
               rc == GROVE_ETOOBIG ? "message is larger than a subscriber's send queue (--live-max-queue)"
               : rc                ? "cannot publish"
                                   : NULL);
    }
  } else {
    ws_reply(ws, "error", NULL, "unknown \"op\"; use auth, subscribe, unsubscribe, publish or ping");
  }
  json_decref(j);
}

static void on_ws_close(struct ws *ws, uint16_t code) {
  (void)code;
  sub_free(ws_user(ws));
}

static void on_sse_close(struct sse *s) { sub_free(sse_user(s)); }

static struct sub *sub_new(struct hub *h, struct http_req *r) {
  struct shard *sh = shard_of(h, http_req_loop(r));
  if (!sh) {
    http_reply_error(r, 503, "UNAVAILABLE", "live hub is not running on this loop", NULL);
    return NULL;
  }
  struct sub *s = calloc(1, sizeof *s);
  if (!s) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return NULL;
  }
  s->sh = sh;
  struct gate_principal p;
  char cred[256];
  if (h->gate && gate_identify(h->gate, r, &p) == 0 &&
      gate_request_credential(r, cred, sizeof cred) == 0) {
    sub_set_credential(s, cred);
    sub_set_who(s, &p);
  }
  return s;
}

/* r's caller, or NULL when it shows no valid credential. */
static const struct gate_principal *caller_of(struct hub *h, struct http_req *r,
                                              struct gate_principal *room) {
  return h->gate && gate_identify(h->gate, r, room) == 0 ? room : NULL;
}

/* Answers a topic refusal as the error envelope, with WWW-Authenticate
 * on a 401, and the topic in details. */
static void http_refuse_topic(struct http_req *r, const char *topic, int status, const char *code,
                              const char *why) {
  if (status == 401) {
    char room[256];
    http_res_header(r, "WWW-Authenticate", "Bearer");
    if (gate_request_credential(r, room, sizeof room) == 0) /* one was shown */
      why = "credential is not valid, expired or revoked";
  }
  http_reply_error(r, status, code, why, json_pack("{s:s}", "topic", topic));
}

/* Answers 401/403 before the upgrade (as the apps' REST reads do) and
 * returns false when r's caller may not read one of the topics. */
static bool may_read_all(struct hub *h, struct http_req *r, char topics[][257], int n) {
  struct gate_principal room;
  const struct gate_principal *who = caller_of(h, r, &room);
  for (int i = 0; i < n; i++) {
    const char *code, *why;
    int status = hub_topic_check(h, who, topics[i], false, &code, &why);
    if (status) {
      http_refuse_topic(r, topics[i], status, code, why);
      return false;
    }
  }
  return true;
}

/* Collects ?topic= values; answers 400 and returns -1 on a bad one. */
static int query_topics(struct hub *h, struct http_req *r, char topics[][257], int max) {
  int n = 0;
  for (int i = 0;; i++) {
    char t[1024];
    long l = http_query_get(r, "topic", i, t, sizeof t);
    if (l == HTTP_QUERY_ABSENT)
      break;
    if (l < 0) { /* one left out would be a subscription silently missing */
      http_query_refuse(r, l, "topic", sizeof t, "INVALID_TOPIC");
      return -1;
    }
    if (!hub_topic_valid(t)) {
      json_t *d = json_pack("{s:s}", "topic", t);
      http_reply_error(r, 400, "INVALID_TOPIC",
                       "topics are paths of letters, digits and -_.:@ between slashes", d);
      return -1;
    }
    if (n == max || n == h->cfg.max_topics) {
      http_reply_error(r, 400, "TOO_MANY_TOPICS", "too many topics for one connection", NULL);
      return -1;
    }
    bool seen = false; /* a topic named twice is one subscription (and one replay) */
    for (int k = 0; k < n && !seen; k++)
      seen = strcmp(topics[k], t) == 0;
    if (!seen)
      memcpy(topics[n++], t, (size_t)l + 1);
  }
  return n;
}

static void handle_ws(struct http_req *r) {
  struct hub *h = r->app;
  char topics[16][257];
  int n = query_topics(h, r, topics, 16);
  if (n < 0 || !may_read_all(h, r, topics, n))
    return;
  struct sub *s = sub_new(h, r);
  if (!s)
    return;
  s->kind = SUB_WS;
  struct ws_cfg wc = {h->cfg.max_message, h->cfg.max_queue, h->cfg.ping_ms};
  static const struct ws_cbs cbs = {on_ws_message, on_ws_close};
  struct ws *ws = ws_accept(r, &wc, &cbs, s);
  if (!ws) {
    sub_discard(s);
    return;
  }
  s->u.ws = ws;
  metric_add(h->subscribers, 1);
  for (int i = 0; i < n && ws_is_open(ws); i++)
    if (sub_add(s, topics[i]) == 0)
      ws_reply(ws, "subscribed", topics[i], NULL);
}

static void handle_sse(struct http_req *r) {
  struct hub *h = r->app;
  char topics[16][257];
  int n = query_topics(h, r, topics, 16);
  if (n < 0)
    return;
  if (n == 0) {
    http_reply_error(r, 400, "MISSING_TOPIC", "give at least one ?topic=", NULL);
    return;
  }
  /* before anything is replayed: history is read as the topic is */
  if (!may_read_all(h, r, topics, n))
    return;
  if (r->head) { /* what a GET would start, without the stream (RFC 9110 §9.3.2) */
    http_res_header(r, "Cache-Control", "no-cache");
    http_reply(r, 200, "text/event-stream", NULL, 0);
    return;
  }
  uint64_t last_id = 0;
  bool resume = false;
  const char *lei = http_header_get(r, "last-event-id");
  char qbuf[32] = "";
  if (!lei) {
    if (http_query_str(r, "last_event_id", qbuf, sizeof qbuf, NULL) < 0)
      return;
    if (strspn(qbuf, "0123456789") != strlen(qbuf)) { /* not resuming would lose events */
      http_reply_error(r, 400, "INVALID_INPUT", "last_event_id must be an event id (digits)",
                       json_pack("{s:s}", "parameter", "last_event_id"));
      return;
    }
    lei = qbuf;
  }
  if (lei && *lei) {
    char *end;
    last_id = strtoull(lei, &end, 10);
    resume = *end == '\0';
  }
  struct sub *s = sub_new(h, r);
  if (!s)
    return;
  s->kind = SUB_SSE;
  static const struct sse_cbs cbs = {on_sse_close};
  struct sse *sse = sse_start(r, &cbs, s, h->cfg.max_queue, h->cfg.heartbeat_ms);
  if (!sse) {
    sub_discard(s);
    return;
  }
  s->u.sse = sse;
  metric_add(h->subscribers, 1);
  for (int i = 0; i < n; i++)
    sub_add(s, topics[i]);
  if (resume)
    for (int i = 0; i < n && replay(h, s, topics[i], last_id); i++)
      ;
}

/* POST /api/v1/live/{topic...}: publishes the JSON body on the topic. */
static void handle_publish(struct http_req *r) {
  struct hub *h = r->app;
  const char *topic = http_param(r, "topic");
  if (!topic || !hub_topic_valid(topic)) {
    http_reply_error(r, 400, "INVALID_TOPIC",
                     "topics are paths of letters, digits and -_.:@ between slashes", NULL);
    return;
  }
  struct gate_principal room;
  const char *code, *why;
  int status = hub_topic_check(h, caller_of(h, r, &room), topic, true, &code, &why);
  if (status) {
    http_refuse_topic(r, topic, status, code, why);
    return;
  }
  const char *ct = http_header_get(r, "content-type");
  if (ct && strncasecmp(ct, "application/json", 16) != 0) {
    http_reply_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", "body must be application/json", NULL);
    return;
  }
  if (!http_req_body(r, 0))
    return;
  json_error_t e;
  json_t *j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &e);
  if (!j) {
    http_reply_error(r, 400, "INVALID_JSON", "request body is not valid JSON",
                     json_pack("{s:s,s:i}", "error", e.text, "position", e.position));
    return;
  }
  char *txt = jsonout_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(j);
  uint64_t id = 0;
  int rc = txt ? hub_publish(h, topic, txt, strlen(txt), &id) : GROVE_ENOMEM;
  free(txt);
  if (rc == GROVE_ETOOBIG) {
    http_reply_error(r, 413, "MESSAGE_TOO_LARGE",
                     "message is larger than a subscriber's send queue (--live-max-queue)",
                     json_pack("{s:I}", "max_queue", (json_int_t)h->cfg.max_queue));
    return;
  }
  if (rc) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "cannot publish", NULL);
    return;
  }
  http_reply_data(r, 202, json_pack("{s:s,s:I}", "topic", topic, "id", (json_int_t)id), NULL);
}

int hub_routes(struct hub *h, struct router *r, char *err, size_t errlen) {
  /* anyone may connect: access is decided per topic, before the upgrade
   * for the topics the request names and at each subscribe after */
  static const struct route_def routes[] = {
      {"GET", "/api/v1/live", handle_ws, .anonymous = true},
      {"GET", "/api/v1/live/sse", handle_sse, .anonymous = true},
      {"POST", "/api/v1/live/{topic...}", handle_publish, .anonymous = true},
  };
  return router_add_all(r, "hub", routes, ARRAY_LEN(routes), h, err, errlen);
}

/* ---- credentials that stop holding ---------------------------------------
 * Once a second each loop looks at its subscribers with a credential:
 * those whose access token has expired, and all of them when the gate's
 * view changed (revocations, logouts, disabled users), are checked again.
 * One that no longer holds loses the subscriptions that needed it. */

/* Ends s's subscriptions that its lost credential allowed: a WebSocket is
 * told for each ("unsubscribed", with the reason) and keeps the rest; an
 * SSE stream (which cannot sign in again) is closed with a last "error"
 * event. */
static void sub_lost(struct sub *s, bool expired) {
  struct hub *h = s->sh->hub;
  const char *code = expired ? "CREDENTIAL_EXPIRED" : "CREDENTIAL_REVOKED";
  const char *why = expired ? "the credential expired: sign in again (or send {\"op\":\"auth\"} "
                              "with a fresh token) and subscribe again"
                            : "the credential was revoked, logged out or disabled";
  bool ended = false;
  for (struct link *l = s->links, *next; l; l = next) {
    next = l->sub_next;
    const char *c, *w;
    if (hub_topic_check(h, NULL, l->t->name, false, &c, &w) == 0)
      continue;
    if (s->kind == SUB_WS) {
      json_t *j = json_pack("{s:s,s:s,s:i,s:s,s:s}", "type", "unsubscribed", "topic", l->t->name,
                            "status", 401, "error_code", code, "message", why);
      char *txt = j ? jsonout_dumps(j, JSON_COMPACT) : NULL;
      if (txt && ws_is_open(s->u.ws))
        ws_send_text(s->u.ws, txt, strlen(txt));
      free(txt);
      json_decref(j);
    }
    sub_remove(s, l->t->name);
    ended = true;
  }
  if (ended && s->kind == SUB_SSE && sse_is_open(s->u.sse)) {
    char ev[512];
    int n = snprintf(ev, sizeof ev,
                     "event: error\ndata: {\"status\":401,\"error_code\":\"%s\",\"message\":\"%s\"}\n\n",
                     code, expired ? "the credential expired" : "the credential was revoked");
    sse_send(s->u.sse, ev, (size_t)n);
    sse_close(s->u.sse);
  }
}

static void on_recheck(uv_timer_t *t) {
  struct shard *sh = t->data;
  struct hub *h = sh->hub;
  if (!h->gate || !sh->creds)
    return;
  uint64_t gen = gate_view_generation(h->gate);
  bool changed = gen != sh->view_gen;
  sh->view_gen = gen;
  int64_t now = (int64_t)clock_wall_ms();
  for (struct sub *s = sh->creds, *next; s; s = next) {
    next = SUB_CRED(s)->next;
    bool expired = s->who->expires_ms && now >= s->who->expires_ms;
    if (!expired && !changed)
      continue;
    sub_recheck(s); /* unlinks s from the list when it no longer holds */
    if (!s->who)
      sub_lost(s, expired);
  }
}

/* ---- life --------------------------------------------------------------- */

void hub_loop_start(struct hub *h, uv_loop_t *loop, int index) {
  struct shard *sh = &h->shards[index];
  sh->loop = loop;
  uv_async_init(loop, &sh->async, on_inbox);
  sh->async.data = sh;
  uv_timer_init(loop, &sh->recheck);
  sh->recheck.data = sh;
  uv_timer_start(&sh->recheck, on_recheck, 1000, 1000);
  uv_unref((uv_handle_t *)&sh->recheck); /* keeps no loop alive */
  pthread_mutex_lock(&sh->lock);
  sh->running = true;
  pthread_mutex_unlock(&sh->lock);
}

void hub_loop_stop(struct hub *h, int index) {
  struct shard *sh = &h->shards[index];
  pthread_mutex_lock(&sh->lock);
  sh->running = false;
  for (size_t i = 0; i < sh->ninbox; i++)
    msg_unref(sh->inbox[i]);
  free(sh->inbox);
  sh->inbox = NULL;
  sh->ninbox = sh->capinbox = 0;
  pthread_mutex_unlock(&sh->lock);
  uv_close((uv_handle_t *)&sh->async, NULL);
  uv_close((uv_handle_t *)&sh->recheck, NULL);
}

int hub_create(struct hub **out, const struct hub_cfg *cfg, int nloops, struct metrics *m) {
  struct hub *h = calloc(1, sizeof *h);
  if (!h)
    return GROVE_ENOMEM;
  h->cfg = *cfg;
  h->nshards = nloops;
  h->shards = calloc((size_t)nloops, sizeof *h->shards);
  if (!h->shards) {
    free(h);
    return GROVE_ENOMEM;
  }
  for (int i = 0; i < nloops; i++) {
    h->shards[i].hub = h;
    pthread_mutex_init(&h->shards[i].lock, NULL);
    map_init(&h->shards[i].topics);
  }
  pthread_mutex_init(&h->lock, NULL);
  map_init(&h->history);
  /* ids grow across restarts, so a client's Last-Event-ID from before a
   * restart never skips new messages */
  h->next_id = clock_wall_ms() * 1000;
  if (m) {
    h->subscribers = metric_get(metrics_family(m, "grove_live_subscribers",
                                               "Open WebSocket and SSE subscriber connections.",
                                               METRIC_GAUGE, ""));
    h->published = metric_get(metrics_family(m, "grove_live_messages_published_total",
                                             "Messages published on live topics.", METRIC_COUNTER, ""));
    h->delivered = metric_get(metrics_family(m, "grove_live_messages_delivered_total",
                                             "Messages queued to subscribers.", METRIC_COUNTER, ""));
    h->slow = metric_get(metrics_family(m, "grove_live_slow_consumers_total",
                                        "Subscribers disconnected because they could not keep up.",
                                        METRIC_COUNTER, ""));
    h->history_topics = metric_get(metrics_family(
        m, "grove_live_history_topics", "Topics with a resumption history (or subscribers).",
        METRIC_GAUGE, ""));
    h->history_size = metric_get(metrics_family(
        m, "grove_live_history_bytes", "Memory held by resumption histories (--live-history-bytes).",
        METRIC_GAUGE, ""));
  }
  if (coalescer_create(&h->coalesce, h)) {
    hub_destroy(h);
    return GROVE_ENOMEM;
  }
  *out = h;
  return 0;
}

void hub_destroy(struct hub *h) {
  if (!h)
    return;
  coalescer_destroy(h->coalesce); /* its flusher publishes: before the rest */
  for (int i = 0; i < h->nshards; i++) {
    struct shard *sh = &h->shards[i];
    const char *k;
    void *v;
    for (size_t it = 0; map_next(&sh->topics, &it, &k, &v);)
      free(v);
    map_release(&sh->topics);
    for (size_t j = 0; j < sh->ninbox; j++)
      msg_unref(sh->inbox[j]);
    free(sh->inbox);
    pthread_mutex_destroy(&sh->lock);
  }
  while (h->lru_head)
    ring_free(h, h->lru_head);
  map_release(&h->history);
  pthread_mutex_destroy(&h->lock);
  free(h->rules);
  free(h->shards);
  free(h);
}

