/* engine.c — flow's AQI on the platform's stream engine (src/stream):
 * stations and regions with their pollutants, AQI and hysteresis, kept
 * beside the engine's partitions and under their locks, and live updates.
 *
 * Event time and the wall clock. The engine bounds every partition's
 * watermark by the wall clock (cfg.ahead_ns; see stream.h). A reading
 * later than now + ahead is stored (the caller wrote it before) but is in
 * no window and moves nothing (counted as ahead). We chose this over a
 * watermark per key because region keys mix many stations, so a per-key
 * watermark would still let one station's clock make its region's other
 * stations late; bounded by the wall clock, an honest reading (within
 * `lateness` of the wall clock) is never late whatever another station's
 * clock says, and a fast clock delays only its own station's windows. */
#include "apps/flow/engine.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "apps/flow/aqi.h"
#include "core/array.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/map.h"
#include "core/util.h"
#include "hub/hub.h"
#include "stream/stream.h"

#define TICK_MS 50

static const char *const species_names[SP_COUNT] = {"pm25", "pm10", "o3", "no2", "co", "so2"};

int flow_species_of(const char *name, size_t len) {
  static const struct {
    const char *name;
    enum flow_species sp;
  } names[] = {{"pm25", SP_PM25}, {"pm2_5", SP_PM25}, {"pm2.5", SP_PM25}, {"pm10", SP_PM10},
               {"o3", SP_O3},     {"ozone", SP_O3},   {"no2", SP_NO2},    {"co", SP_CO},
               {"so2", SP_SO2}};
  for (size_t i = 0; i < ARRAY_LEN(names); i++)
    if (strlen(names[i].name) == len && strncasecmp(names[i].name, name, len) == 0)
      return (int)names[i].sp;
  return -1;
}

const char *flow_species_name(enum flow_species sp) { return species_names[sp]; }

/* ---- entities -------------------------------------------------------------- */

struct species_state {
  double mean;        /* of the newest window holding this pollutant */
  int64_t window_end; /* INT64_MIN: none yet */
  double latest;
  int64_t latest_ns;  /* INT64_MIN: none yet */
  uint32_t count;     /* readings in that window */
  uint32_t series1;   /* stations: the series it is stored in, + 1 (0: not known) */
};

struct entity {
  bool region;                 /* else a station */
  char name[65];
  struct species_state sp[SP_COUNT];
  int64_t window_end;          /* the newest window closed */
  int aqi;                     /* -1: none yet */
  bool beyond;
  int dominant;                /* species, -1 none */
  int category;                /* for alerts, with hysteresis; -1 none yet (what
                                * is shown is always aqi_category_of(aqi)) */
  uint64_t readings;
  uint64_t last_pub_ms;
  uint64_t seen_mono, seen_wall; /* when its last reading arrived (ms); 0: never */
  bool dirty, changed, pending;
  bool stale;                  /* silent for cfg.stale_ms */
  bool in_fresh;
  struct entity *next_dirty;
  struct entity *fresh_prev, *fresh_next; /* not stale: by seen_mono, oldest first */
};

/* Flow's state of one partition of the stream engine, under its lock. */
struct part {
  unsigned index;
  struct map ents;            /* "S<id>" / "R<name>" -> struct entity */
  struct entity *dirty;       /* windows closed: AQI to recompute */
  struct entity **pending;    /* changed, waiting for their publish slot */
  size_t npending, cappending;
  struct entity *fresh_head, *fresh_tail; /* entities heard from and not stale */
  uint64_t ahead;             /* station readings refused as ahead of the wall clock */
  struct flow_engine *e;
};

/* A station in the directory (its id is the map key). Kept small: there
 * may be hundreds of thousands. */
struct dir_entry {
  char *name;                 /* NULL: the id */
  const char *region;         /* interned (struct region_dir's name), never freed
                               * before the engine */
  double lat, lon;            /* NaN when unknown */
  uint32_t series1[SP_COUNT]; /* where each pollutant is stored, + 1 (0: none yet) */
  bool stale;                 /* mirrors the station entity's, for the counts */
};

/* A region in the directory: how many stations it has, how many stale. */
struct region_dir {
  size_t stations, stale;
  char name[];
};

struct flow_engine {
  struct flow_engine_cfg cfg;
  struct hub *hub;
  flow_alert_fn on_alert;
  flow_new_stations_fn on_stations;
  void *arg;
  unsigned nparts;
  struct stream_engine *se;
  struct part parts[STREAM_MAX_PARTITIONS];
  pthread_rwlock_t dir_lock;  /* stations, regions, series hints */
  struct map stations;        /* id -> struct dir_entry */
  struct map regions;         /* name -> struct region_dir */
  pthread_mutex_t stats_lock;
  uint64_t alerts, published;
};

/* What a partition leaves to do once its lock is dropped. */
struct outbox {
  struct buf topics;       /* NUL-separated topic, then JSON text, pairs */
  struct flow_alert *alerts;
  size_t nalerts, capalerts;
  struct buf touch;        /* entity keys ("R<name>", "S<id>"), NUL-separated, whose
                            * topics must be published again (counts changed) */
};

static uint64_t now_wall(const struct flow_engine *e) {
  return (uint64_t)(stream_engine_wall_ns(e->se) / 1000000);
}

/* ---- the station directory ----------------------------------------------------- */

/* The region's directory entry, made on first use (NULL: out of memory).
 * Under dir_lock (write). */
static struct region_dir *region_dir_get(struct flow_engine *e, const char *name) {
  struct region_dir *r = map_get(&e->regions, name);
  if (r)
    return r;
  size_t n = strlen(name) + 1;
  if (!(r = calloc(1, sizeof *r + n)))
    return NULL;
  memcpy(r->name, name, n);
  if (map_put(&e->regions, name, r, NULL)) {
    free(r);
    return NULL;
  }
  return r;
}

/* Moves a station into a region's counts (from `from`, NULL: new). Under
 * dir_lock (write). Returns the interned name. */
static const char *region_join(struct flow_engine *e, struct dir_entry *d, const char *name) {
  struct region_dir *to = region_dir_get(e, name);
  if (!to && !(to = region_dir_get(e, "unassigned")))
    return d->region ? d->region : "unassigned";
  if (d->region) {
    struct region_dir *from = map_get(&e->regions, d->region);
    if (from == to)
      return to->name;
    if (from) {
      from->stations--;
      from->stale -= d->stale;
    }
  }
  to->stations++;
  to->stale += d->stale;
  return to->name;
}

static void put_str(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

static void touch(struct flow_engine *e, bool region, const char *name);

int flow_engine_station_put(struct flow_engine *e, const struct flow_station *st) {
  if (!st->id[0])
    return GROVE_EINVAL;
  char old_region[65] = "";
  pthread_rwlock_wrlock(&e->dir_lock);
  struct dir_entry *d = map_get(&e->stations, st->id);
  int rc = 0;
  if (!d) {
    d = calloc(1, sizeof *d);
    if (!d || map_put(&e->stations, st->id, d, NULL)) {
      free(d);
      rc = GROVE_ENOMEM;
      goto out;
    }
  }
  put_str(old_region, sizeof old_region, d->region);
  free(d->name);
  d->name = st->name[0] && strcmp(st->name, st->id) ? strdup(st->name) : NULL;
  d->lat = st->lat;
  d->lon = st->lon;
  d->region = region_join(e, d, st->region[0] ? st->region : "unassigned");
  char new_region[65];
  put_str(new_region, sizeof new_region, d->region);
out:
  pthread_rwlock_unlock(&e->dir_lock);
  if (rc)
    return rc;
  /* what the station's topic shows changed, and the regions' counts may have */
  touch(e, false, st->id);
  if (strcmp(old_region, new_region) != 0) {
    if (old_region[0])
      touch(e, true, old_region);
    touch(e, true, new_region);
  }
  return 0;
}

static void station_copy(const char *id, const struct dir_entry *d, struct flow_station *out) {
  put_str(out->id, sizeof out->id, id);
  put_str(out->name, sizeof out->name, d->name ? d->name : id);
  put_str(out->region, sizeof out->region, d->region);
  out->lat = d->lat;
  out->lon = d->lon;
}

bool flow_engine_station_get(struct flow_engine *e, const char *id, struct flow_station *out) {
  pthread_rwlock_rdlock(&e->dir_lock);
  struct dir_entry *d = map_get(&e->stations, id);
  if (d)
    station_copy(id, d, out);
  pthread_rwlock_unlock(&e->dir_lock);
  return d != NULL;
}

/* The region of a station, registering it on first sight (OUT: *created). */
static const char *station_region(struct flow_engine *e, const char *id, const char *tag,
                                  struct flow_station *created, bool *was_created) {
  pthread_rwlock_rdlock(&e->dir_lock);
  struct dir_entry *d = map_get(&e->stations, id);
  const char *region = d ? d->region : NULL;
  pthread_rwlock_unlock(&e->dir_lock);
  if (region)
    return region;
  pthread_rwlock_wrlock(&e->dir_lock);
  if ((d = map_get(&e->stations, id))) {
    region = d->region;
  } else if ((d = calloc(1, sizeof *d)) && !map_put(&e->stations, id, d, NULL)) {
    d->lat = d->lon = NAN;
    d->region = region_join(e, d, tag && *tag ? tag : "unassigned");
    region = d->region;
    station_copy(id, d, created);
    *was_created = true;
  } else {
    free(d);
    region = "unassigned";
  }
  pthread_rwlock_unlock(&e->dir_lock);
  return region;
}

void flow_engine_series_hint(struct flow_engine *e, const char *station, enum flow_species sp,
                             uint32_t series) {
  pthread_rwlock_wrlock(&e->dir_lock);
  struct dir_entry *d = map_get(&e->stations, station);
  if (d)
    d->series1[sp] = series + 1;
  pthread_rwlock_unlock(&e->dir_lock);
}

bool flow_engine_series_of(struct flow_engine *e, const char *station, enum flow_species sp,
                           uint32_t *series) {
  pthread_rwlock_rdlock(&e->dir_lock);
  struct dir_entry *d = map_get(&e->stations, station);
  uint32_t v = d ? d->series1[sp] : 0;
  pthread_rwlock_unlock(&e->dir_lock);
  if (v)
    *series = v - 1;
  return v != 0;
}

/* ---- AQI and hysteresis ------------------------------------------------------------- */

static const int category_floor[] = {0, 51, 101, 151, 201, 301};

static struct aqi_result species_aqi(enum flow_species sp, double c, enum aqi_pollutant *which) {
  static const enum aqi_pollutant map[SP_COUNT] = {AQI_PM25, AQI_PM10, AQI_O3_8H,
                                                   AQI_NO2,  AQI_CO,   AQI_SO2};
  if (which)
    *which = map[sp];
  /* a window's ozone mean is neither an 8-hour nor a 1-hour value: both tables */
  return sp == SP_O3 ? aqi_ozone(c) : aqi_of(map[sp], c);
}

json_t *flow_category_json(int category) {
  if (category < 0)
    return json_null();
  return json_string(aqi_category_name((enum aqi_category)category));
}

static void raise_alert(struct part *p, struct entity *en, int from, int to, struct outbox *ob) {
  if (ARRAY_GROW(ob->alerts, ob->capalerts, ob->nalerts + 1, 8, ARRAY_NOMAX))
    return;
  struct flow_alert *a = &ob->alerts[ob->nalerts++];
  memset(a, 0, sizeof *a);
  id_hex(a->id, sizeof a->id);
  put_str(a->kind, sizeof a->kind, en->region ? "region" : "station");
  put_str(a->subject, sizeof a->subject, en->name);
  if (en->region) {
    put_str(a->region, sizeof a->region, en->name);
  } else {
    pthread_rwlock_rdlock(&p->e->dir_lock);
    struct dir_entry *d = map_get(&p->e->stations, en->name);
    put_str(a->region, sizeof a->region, d ? d->region : "");
    pthread_rwlock_unlock(&p->e->dir_lock);
  }
  a->from = from;
  a->to = to;
  a->aqi = en->aqi;
  put_str(a->dominant, sizeof a->dominant, en->dominant >= 0 ? species_names[en->dominant] : "");
  a->window_end_ns = en->window_end;
  a->at_ms = now_wall(p->e);
}

static void mark_changed(struct part *p, struct entity *en);

/* Recomputes an entity's AQI from the pollutants of its newest window. */
static void assess(struct part *p, struct entity *en, struct outbox *ob) {
  int best = -1, dominant = -1;
  bool beyond = false;
  for (int i = 0; i < SP_COUNT; i++) {
    const struct species_state *s = &en->sp[i];
    if (s->window_end != en->window_end) /* not measured in that window */
      continue;
    struct aqi_result r = species_aqi((enum flow_species)i, s->mean, NULL);
    if (r.index > best) {
      best = r.index;
      dominant = i;
      beyond = r.beyond;
    }
  }
  en->aqi = best;
  en->dominant = dominant;
  en->beyond = beyond;
  /* a new window is news even when no reading follows it (a station gone
   * quiet): its topic must end with what the API answers */
  mark_changed(p, en);
  if (best < 0)
    return;
  int raw = (int)aqi_category_of(best), cat = en->category;
  if (cat < 0) {
    en->category = raw; /* the first reading is not a change */
  } else if (raw > cat) {
    en->category = raw; /* worse: at once */
    raise_alert(p, en, cat, raw, ob);
  } else if (raw < cat && best < category_floor[cat] - p->e->cfg.hysteresis) {
    en->category = raw; /* better: only once clearly out of the worse category */
    raise_alert(p, en, cat, raw, ob);
  }
}

/* ---- JSON ---------------------------------------------------------------------------- */

static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *entity_json(struct flow_engine *e, const struct entity *en) {
  json_t *o = json_object();
  json_object_set_new(o, "type", json_string(en->region ? "region" : "station"));
  if (en->region) {
    json_object_set_new(o, "name", json_string(en->name));
    pthread_rwlock_rdlock(&e->dir_lock);
    struct region_dir *r = map_get(&e->regions, en->name);
    json_object_set_new(o, "stations", json_integer(r ? (json_int_t)r->stations : 0));
    json_object_set_new(o, "stale_stations", json_integer(r ? (json_int_t)r->stale : 0));
    pthread_rwlock_unlock(&e->dir_lock);
  } else {
    json_object_set_new(o, "id", json_string(en->name));
    pthread_rwlock_rdlock(&e->dir_lock);
    struct dir_entry *d = map_get(&e->stations, en->name);
    if (d) {
      json_object_set_new(o, "name", json_string(d->name ? d->name : en->name));
      json_object_set_new(o, "region", json_string(d->region));
      json_object_set_new(o, "lat", real_or_null(d->lat));
      json_object_set_new(o, "lon", real_or_null(d->lon));
    }
    pthread_rwlock_unlock(&e->dir_lock);
  }
  /* the category shown is always the number's own; hysteresis (en->category)
   * is only for alerts */
  int shown = en->aqi >= 0 ? (int)aqi_category_of(en->aqi) : -1;
  json_object_set_new(o, "aqi", en->aqi >= 0 ? json_integer(en->aqi) : json_null());
  json_object_set_new(o, "category", flow_category_json(shown));
  json_object_set_new(o, "level", shown >= 0 ? json_integer(shown) : json_null());
  json_object_set_new(o, "color", shown >= 0
                                      ? json_string(aqi_category_color((enum aqi_category)shown))
                                      : json_null());
  json_object_set_new(o, "dominant", en->dominant >= 0 ? json_string(species_names[en->dominant])
                                                      : json_null());
  json_object_set_new(o, "beyond", json_boolean(en->beyond));
  if (en->window_end != INT64_MIN)
    json_object_set_new(o, "window", json_pack("{s:I,s:I}", "start",
                                               (json_int_t)(en->window_end - e->cfg.window_ns),
                                               "end", (json_int_t)en->window_end));
  else
    json_object_set_new(o, "window", json_null());
  json_t *pol = json_object();
  for (int i = 0; i < SP_COUNT; i++) {
    const struct species_state *s = &en->sp[i];
    if (s->latest_ns == INT64_MIN && s->window_end == INT64_MIN)
      continue;
    json_t *x = json_object();
    bool current = s->window_end != INT64_MIN && s->window_end == en->window_end;
    json_object_set_new(x, "mean", current ? real_or_null(s->mean) : json_null());
    int idx = current ? species_aqi((enum flow_species)i, s->mean, NULL).index : -1;
    json_object_set_new(x, "aqi", idx >= 0 ? json_integer(idx) : json_null());
    json_object_set_new(x, "count", json_integer(current ? (json_int_t)s->count : 0));
    json_object_set_new(x, "latest", s->latest_ns != INT64_MIN ? real_or_null(s->latest)
                                                               : json_null());
    json_object_set_new(x, "latest_time", s->latest_ns != INT64_MIN
                                              ? json_integer(s->latest_ns)
                                              : json_null());
    json_object_set_new(pol, species_names[i], x);
  }
  json_object_set_new(o, "pollutants", pol);
  json_object_set_new(o, "readings", json_integer((json_int_t)en->readings));
  json_object_set_new(o, "stale", json_boolean(en->stale));
  json_object_set_new(o, "last_seen", en->seen_wall ? json_integer((json_int_t)en->seen_wall * 1000000)
                                                    : json_null());
  return o;
}

static void topic_of(const struct entity *en, char *out, size_t n) {
  snprintf(out, n, "flow/%s/%s", en->region ? "regions" : "stations", en->name);
}

/* Renders an entity for its topic into the outbox. */
static void stage_publish(struct part *p, struct entity *en, uint64_t now, struct outbox *ob) {
  char topic[96];
  topic_of(en, topic, sizeof topic);
  json_t *o = entity_json(p->e, en);
  char *text = jsonout_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (text) {
    buf_append(&ob->topics, topic, strlen(topic) + 1);
    buf_append(&ob->topics, text, strlen(text) + 1);
    free(text);
  }
  en->last_pub_ms = now;
  en->changed = false;
}

/* Settles a partition after points or time: AQI of the entities whose
 * windows closed, and live updates of those whose slot has come. */
static void settle(struct part *p, uint64_t now, struct outbox *ob) {
  while (p->dirty) {
    struct entity *en = p->dirty;
    p->dirty = en->next_dirty;
    en->dirty = false;
    en->next_dirty = NULL;
    assess(p, en, ob);
  }
  uint64_t every = p->e->cfg.publish_ms;
  size_t keep = 0;
  for (size_t i = 0; i < p->npending; i++) {
    struct entity *en = p->pending[i];
    if (en->changed && now - en->last_pub_ms >= every) {
      stage_publish(p, en, now, ob);
      en->pending = false;
    } else if (en->changed) {
      p->pending[keep++] = en;
    } else {
      en->pending = false;
    }
  }
  p->npending = keep;
}

static void mark_changed(struct part *p, struct entity *en) {
  en->changed = true;
  if (en->pending)
    return;
  if (ARRAY_GROW(p->pending, p->cappending, p->npending + 1, 64, ARRAY_NOMAX))
    return;
  p->pending[p->npending++] = en;
  en->pending = true;
}

/* Alerts go out as they come; an entity's state (`published` not NULL)
 * through the hub's coalescing, at most once a publish interval a topic,
 * the newest always last. The engine renders an entity at most that often
 * too (settle), since rendering is what costs. */
static void publish(struct flow_engine *e, const char *topic, const char *json, size_t len,
                    uint64_t *published) {
  int rc = 0;
  if (e->cfg.env.publish)
    e->cfg.env.publish(topic, json, len, e->cfg.env.arg);
  else if (e->hub && published)
    rc = hub_publish_coalesced(e->hub, topic, json, len, e->cfg.publish_ms);
  else if (e->hub)
    rc = hub_publish(e->hub, topic, json, len, NULL);
  else
    return;
  if (!rc && published)
    (*published)++;
}

/* Hands what was staged to the hub and the alert callback: alerts first,
 * so that the last event on an entity's topic is always its state. */
static void deliver(struct flow_engine *e, struct outbox *ob) {
  uint64_t published = 0;
  for (size_t i = 0; i < ob->nalerts; i++) {
    const struct flow_alert *a = &ob->alerts[i];
    if (e->on_alert)
      e->on_alert(a, e->arg);
    json_t *o = flow_alert_json(a);
    char *text = o ? jsonout_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text) {
      char topic[96];
      snprintf(topic, sizeof topic, "flow/%s/%s", strcmp(a->kind, "region") ? "stations" : "regions",
               a->subject);
      publish(e, topic, text, strlen(text), NULL);
      publish(e, "flow/alerts", text, strlen(text), NULL);
      free(text);
    }
  }
  for (size_t at = 0; at < ob->topics.len;) {
    const char *topic = ob->topics.data + at;
    at += strlen(topic) + 1;
    const char *json = ob->topics.data + at;
    size_t len = strlen(json);
    at += len + 1;
    publish(e, topic, json, len, &published);
  }
  pthread_mutex_lock(&e->stats_lock);
  e->published += published;
  e->alerts += ob->nalerts;
  pthread_mutex_unlock(&e->stats_lock);
  buf_reset(&ob->topics);
  ob->nalerts = 0;
}

json_t *flow_alert_json(const struct flow_alert *a) {
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:i,s:s,s:I,s:I}", "type", "alert", "id", a->id,
                   "kind", a->kind, "subject", a->subject, "region", a->region, "from",
                   flow_category_json(a->from), "to", flow_category_json(a->to), "aqi", a->aqi,
                   "dominant", a->dominant, "window_end", (json_int_t)a->window_end_ns, "at",
                   (json_int_t)a->at_ms);
}

static size_t make_key(char *k, bool region, int species, const char *name);

/* Marks an entity's topic for publishing again, if it has one (its
 * partition publishes it when it next settles). No lock held. */
static void touch(struct flow_engine *e, bool region, const char *name) {
  char k[68];
  make_key(k, region, -1, name);
  struct part *p = &e->parts[stream_engine_partition(e->se, k)];
  stream_engine_lock(e->se, p->index);
  struct entity *en = map_get(&p->ents, k);
  if (en)
    mark_changed(p, en);
  stream_engine_unlock(e->se, p->index);
}

struct delivery {
  struct flow_engine *e;
  struct outbox *ob;
};

static void deliver_cb(void *ctx) {
  struct delivery *d = ctx;
  deliver(d->e, d->ob);
}

/* Called with p's partition locked, which it drops: hands the outbox on
 * in the order partitions staged it (the next thread to settle p delivers
 * after this one), then touches what it names. */
static void flush(struct flow_engine *e, struct part *p, struct outbox *ob) {
  struct delivery d = {e, ob};
  stream_engine_handoff(e->se, p->index, deliver_cb, &d);
  for (size_t at = 0; at < ob->touch.len;) {
    const char *k = ob->touch.data + at;
    at += strlen(k) + 1;
    touch(e, k[0] == 'R', k + 1);
  }
  buf_reset(&ob->touch);
}

static void outbox_init(struct outbox *ob) {
  memset(ob, 0, sizeof *ob);
  buf_init(&ob->topics, 0);
  buf_init(&ob->touch, 0);
}

static void outbox_release(struct outbox *ob) {
  buf_release(&ob->topics);
  buf_release(&ob->touch);
  free(ob->alerts);
}

/* ---- windows ------------------------------------------------------------------------ */

/* Keys: kind ('S' or 'R'), then for stream keys the species digit, then
 * the name (at most 64 bytes). Returns the key's length. */
static size_t make_key(char *k, bool region, int species, const char *name) {
  size_t at = 0, n = strlen(name);
  k[at++] = region ? 'R' : 'S';
  if (species >= 0)
    k[at++] = (char)('0' + species);
  if (n > 64)
    n = 64;
  memcpy(k + at, name, n);
  k[at + n] = '\0';
  return at + n;
}

static struct entity *entity_get(struct part *p, bool region, const char *name) {
  char k[68];
  make_key(k, region, -1, name);
  struct entity *en = map_get(&p->ents, k);
  if (en)
    return en;
  if (!(en = calloc(1, sizeof *en)))
    return NULL;
  en->region = region;
  put_str(en->name, sizeof en->name, name);
  en->window_end = INT64_MIN;
  en->aqi = en->dominant = en->category = -1;
  for (int i = 0; i < SP_COUNT; i++)
    en->sp[i] = (struct species_state){NAN, INT64_MIN, NAN, INT64_MIN, 0, 0};
  if (map_put(&p->ents, k, en, NULL)) {
    free(en);
    return NULL;
  }
  return en;
}

/* Stream keys: kind ('S' or 'R'), species digit, name. */
static void on_window(const struct window_result *r, unsigned part, void *arg) {
  struct flow_engine *e = arg;
  struct part *p = &e->parts[part];
  struct entity *en = entity_get(p, r->key[0] == 'R', r->key + 2);
  if (!en)
    return;
  int sp = r->key[1] - '0';
  en->sp[sp].mean = r->mean;
  en->sp[sp].count = r->count > UINT32_MAX ? UINT32_MAX : (uint32_t)r->count;
  en->sp[sp].window_end = r->end_ns;
  if (r->end_ns > en->window_end)
    en->window_end = r->end_ns;
  if (!en->dirty) {
    en->dirty = true;
    en->next_dirty = p->dirty;
    p->dirty = en;
  }
}

/* ---- staleness ------------------------------------------------------------------
 * Entities heard from and not stale sit in their partition's fresh list,
 * oldest arrival first: a reading moves its entity to the tail (O(1)), and
 * the ticker turns stale those at the head silent for cfg.stale_ms. */

static void fresh_unlink(struct part *p, struct entity *en) {
  if (!en->in_fresh)
    return;
  if (en->fresh_prev)
    en->fresh_prev->fresh_next = en->fresh_next;
  else
    p->fresh_head = en->fresh_next;
  if (en->fresh_next)
    en->fresh_next->fresh_prev = en->fresh_prev;
  else
    p->fresh_tail = en->fresh_prev;
  en->fresh_prev = en->fresh_next = NULL;
  en->in_fresh = false;
}

static void fresh_push(struct part *p, struct entity *en) {
  en->fresh_prev = p->fresh_tail;
  en->fresh_next = NULL;
  if (p->fresh_tail)
    p->fresh_tail->fresh_next = en;
  else
    p->fresh_head = en;
  p->fresh_tail = en;
  en->in_fresh = true;
}

/* A station turned stale or fresh: its region's count follows, and the
 * region's topic is published again. Called under p->lock. */
static void station_staleness(struct part *p, struct entity *en, struct outbox *ob) {
  struct flow_engine *e = p->e;
  char region[65] = "";
  pthread_rwlock_wrlock(&e->dir_lock);
  struct dir_entry *d = map_get(&e->stations, en->name);
  if (d && d->stale != en->stale) {
    d->stale = en->stale;
    struct region_dir *r = map_get(&e->regions, d->region);
    if (r) {
      r->stale = en->stale ? r->stale + 1 : r->stale - 1;
      put_str(region, sizeof region, r->name);
    }
  }
  pthread_rwlock_unlock(&e->dir_lock);
  if (region[0]) {
    char k[68];
    size_t n = make_key(k, true, -1, region);
    buf_append(&ob->touch, k, n + 1);
  }
}

/* Entities silent for cfg.stale_ms turn stale (and their topics say so). */
static void find_stale(struct part *p, uint64_t now, struct outbox *ob) {
  uint64_t after = p->e->cfg.stale_ms;
  while (after && p->fresh_head && now - p->fresh_head->seen_mono >= after) {
    struct entity *en = p->fresh_head;
    fresh_unlink(p, en);
    en->stale = true;
    mark_changed(p, en);
    if (!en->region)
      station_staleness(p, en, ob);
  }
}

/* Adds a reading to an entity's window key: STREAM_ADDED, STREAM_LATE or
 * STREAM_AHEAD. A reading ahead of the wall clock (`clock`, Unix ns) says
 * the entity is alive but changes neither its latest value nor any
 * window. */
static int add_one(struct part *p, struct entity *en, const struct flow_reading *r,
                   uint64_t now, uint64_t wall, int64_t clock, struct outbox *ob) {
  char key[80];
  make_key(key, en->region, (int)r->species, en->name);
  int rc = stream_engine_add(p->e->se, p->index, key, r->ts_ns, r->value, now, clock);
  struct species_state *s = &en->sp[r->species];
  /* the latest reading, by event time; with a bound, a time past the clock
   * counts as the clock's, so a fast station (inside the bound) cannot hold
   * a region's latest value against its honest stations */
  int64_t at = r->ts_ns, held = s->latest_ns;
  if (p->e->cfg.ahead_ns > 0) {
    at = at < clock ? at : clock;
    held = held < clock ? held : clock;
  }
  if (rc != STREAM_AHEAD && at >= held) {
    s->latest = r->value;
    s->latest_ns = r->ts_ns;
  }
  if (!en->region && s->series1 != r->series + 1) { /* where range queries look */
    s->series1 = r->series + 1;
    flow_engine_series_hint(p->e, en->name, r->species, r->series);
  }
  en->readings++;
  en->seen_mono = now;
  en->seen_wall = wall;
  if (p->fresh_tail != en) { /* readings come a station at a time */
    fresh_unlink(p, en);
    fresh_push(p, en);
  }
  if (en->stale) {
    en->stale = false;
    if (!en->region)
      station_staleness(p, en, ob);
  }
  mark_changed(p, en);
  return rc;
}

size_t flow_engine_add(struct flow_engine *e, const struct flow_reading *r, size_t n,
                       size_t *ahead_out) {
  if (ahead_out)
    *ahead_out = 0;
  if (!n)
    return 0;
  unsigned char *where = malloc(2 * n); /* partition of the station key, of the region key */
  const char **regions = malloc(n * sizeof *regions);
  if (!where || !regions) {
    free(where);
    free(regions);
    return 0;
  }
  struct flow_station *created = NULL; /* first seen in this batch */
  size_t ncreated = 0, capcreated = 0;
  const char *last_station = NULL, *last_region = NULL;
  unsigned last_sp = 0, last_rp = 0;
  for (size_t i = 0; i < n; i++) {
    if (!last_station || strcmp(last_station, r[i].station) != 0) {
      bool was_created = false;
      struct flow_station st;
      last_region = station_region(e, r[i].station, r[i].region, &st, &was_created);
      if (was_created && !ARRAY_GROW(created, capcreated, ncreated + 1, 16, n))
        created[ncreated++] = st;
      char k[68];
      make_key(k, false, -1, r[i].station);
      last_sp = stream_engine_partition(e->se, k);
      make_key(k, true, -1, last_region);
      last_rp = stream_engine_partition(e->se, k);
      last_station = r[i].station;
    }
    regions[i] = last_region;
    where[2 * i] = (unsigned char)last_sp;
    where[2 * i + 1] = (unsigned char)last_rp;
  }
  if (ncreated && e->on_stations)
    e->on_stations(created, ncreated, e->arg);
  free(created);
  size_t late = 0, ahead = 0;
  struct outbox ob;
  outbox_init(&ob);
  for (unsigned pi = 0; pi < e->nparts; pi++) {
    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
      any = where[2 * i] == pi || where[2 * i + 1] == pi;
    if (!any)
      continue;
    struct part *p = &e->parts[pi];
    stream_engine_lock(e->se, pi);
    uint64_t now = stream_engine_mono_ms(e->se); /* under the lock: never behind a publish */
    int64_t clock = stream_engine_wall_ns(e->se);
    uint64_t wall = (uint64_t)(clock / 1000000);
    struct entity *st = NULL, *rg = NULL; /* readings come a station at a time */
    for (size_t i = 0; i < n; i++) {
      if (where[2 * i] == pi) {
        if (!st || strcmp(st->name, r[i].station) != 0)
          st = entity_get(p, false, r[i].station);
        int rc = st ? add_one(p, st, &r[i], now, wall, clock, &ob) : STREAM_ADDED;
        late += rc == STREAM_LATE;
        ahead += rc == STREAM_AHEAD;
        p->ahead += rc == STREAM_AHEAD;
      }
      if (where[2 * i + 1] == pi) {
        if (!rg || strcmp(rg->name, regions[i]) != 0)
          rg = entity_get(p, true, regions[i]);
        if (rg)
          add_one(p, rg, &r[i], now, wall, clock, &ob);
      }
    }
    settle(p, now, &ob);
    flush(e, p, &ob);
  }
  outbox_release(&ob);
  free(where);
  free(regions);
  if (ahead_out)
    *ahead_out = ahead;
  return late;
}

/* ---- time --------------------------------------------------------------------------- */

/* The engine's tick, for each partition after its watermark step (which
 * closed the windows of quiet keys): staleness and the live updates due. */
static void part_tick(struct stream_engine *se, unsigned part, uint64_t now, void *arg) {
  (void)se;
  struct flow_engine *e = arg;
  struct part *p = &e->parts[part];
  struct outbox ob;
  outbox_init(&ob);
  find_stale(p, now, &ob);
  settle(p, now, &ob);
  flush(e, p, &ob);
  outbox_release(&ob);
}

void flow_engine_tick(struct flow_engine *e) { stream_engine_tick(e->se); }

/* ---- reading the state -------------------------------------------------------------- */

static int cmp_json_name(const void *a, const void *b) {
  json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  const char *kx = json_string_value(json_object_get(x, "id"));
  const char *ky = json_string_value(json_object_get(y, "id"));
  if (!kx)
    kx = json_string_value(json_object_get(x, "name"));
  if (!ky)
    ky = json_string_value(json_object_get(y, "name"));
  return strcmp(kx ? kx : "", ky ? ky : "");
}

static json_t *sorted(json_t *arr) {
  size_t n = json_array_size(arr);
  json_t **v = malloc((n ? n : 1) * sizeof *v);
  if (!v)
    return arr;
  for (size_t i = 0; i < n; i++)
    v[i] = json_incref(json_array_get(arr, i));
  qsort(v, n, sizeof *v, cmp_json_name);
  json_array_clear(arr);
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, v[i]);
  free(v);
  return arr;
}

/* An entity with no readings yet, as the topics show it. */
static json_t *blank_json(struct flow_engine *e, bool region, const char *name) {
  struct entity en;
  memset(&en, 0, sizeof en);
  en.region = region;
  put_str(en.name, sizeof en.name, name);
  en.window_end = INT64_MIN;
  en.aqi = en.dominant = en.category = -1;
  for (int i = 0; i < SP_COUNT; i++)
    en.sp[i] = (struct species_state){NAN, INT64_MIN, NAN, INT64_MIN, 0, 0};
  return entity_json(e, &en);
}

static json_t *entities_json(struct flow_engine *e, bool region, const char *only) {
  json_t *arr = json_array();
  struct map seen;
  map_init(&seen);
  for (unsigned pi = 0; pi < e->nparts; pi++) {
    struct part *p = &e->parts[pi];
    stream_engine_lock(e->se, pi);
    const char *k;
    void *v;
    for (size_t it = 0; map_next(&p->ents, &it, &k, &v);) {
      struct entity *en = v;
      if (en->region != region || (only && strcmp(only, en->name) != 0))
        continue;
      json_array_append_new(arr, entity_json(e, en));
      map_put(&seen, en->name, en, NULL);
    }
    stream_engine_unlock(e->se, pi);
  }
  /* registered, not heard from yet */
  pthread_rwlock_rdlock(&e->dir_lock);
  const char *k;
  void *v;
  struct map *m = region ? &e->regions : &e->stations;
  char **names = malloc((m->len ? m->len : 1) * sizeof *names);
  size_t nnames = 0;
  for (size_t it = 0; names && map_next(m, &it, &k, &v);)
    if (!map_get(&seen, k) && (!only || strcmp(only, k) == 0) && (names[nnames] = strdup(k)))
      nnames++;
  pthread_rwlock_unlock(&e->dir_lock);
  for (size_t i = 0; i < nnames; i++) {
    json_array_append_new(arr, blank_json(e, region, names[i]));
    free(names[i]);
  }
  free(names);
  map_release(&seen);
  return sorted(arr);
}

json_t *flow_engine_stations_json(struct flow_engine *e, const char *only) {
  return entities_json(e, false, only);
}

json_t *flow_engine_regions_json(struct flow_engine *e, const char *only) {
  return entities_json(e, true, only);
}

void flow_engine_stats(struct flow_engine *e, struct flow_engine_stats *out) {
  memset(out, 0, sizeof *out);
  struct stream_engine_stats ss;
  stream_engine_stats(e->se, &ss);
  out->late = ss.late;
  out->windows = ss.windows;
  out->keys = ss.keys;
  out->key_bytes = ss.key_bytes;
  for (unsigned pi = 0; pi < e->nparts; pi++) {
    stream_engine_lock(e->se, pi);
    out->ahead += e->parts[pi].ahead;
    stream_engine_unlock(e->se, pi);
  }
  pthread_rwlock_rdlock(&e->dir_lock);
  out->stations = e->stations.len;
  out->regions = e->regions.len;
  pthread_rwlock_unlock(&e->dir_lock);
  pthread_mutex_lock(&e->stats_lock);
  out->alerts = e->alerts;
  out->published = e->published;
  pthread_mutex_unlock(&e->stats_lock);
}

/* ---- life ----------------------------------------------------------------------------- */

int flow_engine_create(struct flow_engine **out, const struct flow_engine_cfg *cfg,
                       struct hub *hub, flow_alert_fn on_alert, flow_new_stations_fn on_stations,
                       void *arg) {
  if (cfg->partitions < 1 || cfg->partitions > STREAM_MAX_PARTITIONS || cfg->hysteresis < 0)
    return GROVE_EINVAL;
  struct flow_engine *e = calloc(1, sizeof *e);
  if (!e)
    return GROVE_ENOMEM;
  e->cfg = *cfg;
  e->hub = hub;
  e->on_alert = on_alert;
  e->on_stations = on_stations;
  e->arg = arg;
  e->nparts = cfg->partitions;
  pthread_rwlock_init(&e->dir_lock, NULL);
  pthread_mutex_init(&e->stats_lock, NULL);
  map_init(&e->stations);
  map_init(&e->regions);
  for (unsigned i = 0; i < e->nparts; i++) {
    struct part *p = &e->parts[i];
    p->index = i;
    map_init(&p->ents);
    p->e = e;
  }
  /* sensors gone quiet for a second (or the lateness, if longer): event
   * time moves on with the wall clock */
  uint64_t idle_ms = (uint64_t)(cfg->lateness_ns / 1000000);
  struct stream_engine_cfg sc = {
      .window = {cfg->window_ns, cfg->slide_ns, cfg->lateness_ns, true, /* the AQI needs means */
                 cfg->ahead_ns},
      .partitions = cfg->partitions,
      .tick_ms = cfg->env.no_ticker ? 0 : TICK_MS,
      .idle_ms = idle_ms < 1000 ? 1000 : idle_ms,
      .mono_ms = cfg->env.mono_ms,
      .wall_ms = cfg->env.wall_ms,
      .clock_arg = cfg->env.arg,
      .emit = on_window,
      .tick = part_tick,
      .arg = e,
  };
  int rc = stream_engine_create(&e->se, &sc);
  if (rc) {
    flow_engine_destroy(e);
    return rc;
  }
  *out = e;
  return 0;
}

void flow_engine_destroy(struct flow_engine *e) {
  if (!e)
    return;
  stream_engine_destroy(e->se); /* the ticker first */
  const char *k;
  void *v;
  for (unsigned i = 0; i < e->nparts; i++) {
    struct part *p = &e->parts[i];
    for (size_t it = 0; map_next(&p->ents, &it, &k, &v);)
      free(v);
    map_release(&p->ents);
    free(p->pending);
  }
  for (size_t it = 0; map_next(&e->stations, &it, &k, &v);) {
    free(((struct dir_entry *)v)->name);
    free(v);
  }
  for (size_t it = 0; map_next(&e->regions, &it, &k, &v);)
    free(v);
  map_release(&e->stations);
  map_release(&e->regions);
  pthread_rwlock_destroy(&e->dir_lock);
  pthread_mutex_destroy(&e->stats_lock);
  free(e);
}
