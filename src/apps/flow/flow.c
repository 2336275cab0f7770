/* flow.c — GreenFlow AI (seed 000) as a Grove app: its options, its
 * tables, and start/stop. Points come in through ingest.c, are kept by the
 * series store, and station readings feed the engine (engine.c), whose
 * rolling AQI, alerts and live topics api.c and ask.c serve. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/flow/flow.h"
#include "core/error.h"
#include "core/health.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/gate.h"
#include "hub/hub.h"
#include "net/http.h"
#include "series/key.h"

static struct flow_cfg flow_cfg;

static const struct cfg_opt flow_opts[] = {
    CFG_OPT(struct flow_cfg, "series-flush", CFG_MS, flush_ms, "10m", "how often points in memory are moved into compressed chunks"),
    CFG_OPT(struct flow_cfg, "series-flush-points", CFG_INT, flush_points, "1000000", "move points into chunks sooner once this many are in memory"),
    CFG_OPT(struct flow_cfg, "series-retention", CFG_MS, keep_raw_ms, "0", "how long raw points are kept (whole 2-hour chunks go); 0: for ever"),
    CFG_OPT(struct flow_cfg, "series-retention-1m", CFG_MS, keep_1m_ms, "0", "how long 1-minute rollups are kept; 0: for ever"),
    CFG_OPT(struct flow_cfg, "series-retention-1h", CFG_MS, keep_1h_ms, "0", "how long 1-hour rollups are kept; 0: for ever"),
    CFG_OPT(struct flow_cfg, "series-read-points", CFG_INT, read_points, "10000", "raw points one answer holds when the request gives no limit (the rest follow from metadata.next)"),
    CFG_OPT(struct flow_cfg, "series-read-max", CFG_INT, read_max, "100000", "the most raw points one answer may hold (the largest limit a request may ask)"),
    CFG_OPT(struct flow_cfg, "flow-window", CFG_MS, window_ms, "10m", "length of the rolling AQI window"),
    CFG_OPT(struct flow_cfg, "flow-slide", CFG_MS, slide_ms, "1m", "how often the rolling window moves on (a new AQI each time)"),
    CFG_OPT(struct flow_cfg, "flow-lateness", CFG_MS, lateness_ms, "1m", "how far behind the newest reading a reading may arrive and still count"),
    CFG_OPT(struct flow_cfg, "flow-max-ahead", CFG_MS, ahead_ms, "5m", "a reading later than the server's clock by more than this is stored but left out of the AQI and moves no window; 0: no bound (event time alone, for replays)"),
    CFG_OPT(struct flow_cfg, "flow-publish-interval", CFG_MS, publish_ms, "1s", "at most one live update per station or region topic this often"),
    CFG_OPT(struct flow_cfg, "flow-alert-hysteresis", CFG_INT, hysteresis, "5", "AQI points below a category's floor before an alert says it is over"),
    CFG_OPT(struct flow_cfg, "flow-partitions", CFG_INT, partitions, "0", "window partitions (worker threads update them at once); 0: one per CPU"),
    CFG_OPT(struct flow_cfg, "flow-stale-after", CFG_MS, stale_ms, "15m", "wall-clock silence after which a station (or a region) is shown stale; 0: never"),
};

static const struct store_migration flow_migrations[] = {
    {1, "stations and alerts",
     "CREATE TABLE flow_stations (id TEXT PRIMARY KEY, name TEXT NOT NULL, region TEXT NOT NULL,"
     " lat DOUBLE PRECISION, lon DOUBLE PRECISION, source TEXT NOT NULL,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
     "CREATE TABLE flow_alerts (id TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL,"
     " region TEXT NOT NULL, from_category INTEGER NOT NULL, to_category INTEGER NOT NULL,"
     " aqi INTEGER NOT NULL, dominant TEXT NOT NULL, window_end BIGINT NOT NULL,"
     " at BIGINT NOT NULL);"
     "CREATE INDEX flow_alerts_by_time ON flow_alerts (at);"
     "CREATE INDEX flow_alerts_by_subject ON flow_alerts (subject, at)",
     NULL},
    {2, "series whose readings were merged into their station's series",
     "CREATE TABLE flow_series_merged (series BIGINT PRIMARY KEY, at BIGINT NOT NULL)", NULL},
};

static const char *const station_upsert =
    "INSERT INTO flow_stations (id, name, region, lat, lon, source, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS BIGINT), CAST($7 AS BIGINT))"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, region = excluded.region,"
    " lat = excluded.lat, lon = excluded.lon, updated_at = excluded.updated_at";
static const char *const station_insert =
    "INSERT INTO flow_stations (id, name, region, lat, lon, source, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS BIGINT), CAST($7 AS BIGINT))"
    " ON CONFLICT (id) DO NOTHING";

/* Saves stations in one transaction: `ahead` from the API (updates what
 * is there), else first seen (keeps what is there). */
static int stations_save(struct flow *f, const struct flow_station *st, size_t n, bool ahead) {
  struct store_conn *c;
  int rc = store_acquire(f->ctx.store, &c);
  if (rc)
    return rc;
  char err[256] = "";
  char now[24];
  snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
  rc = n > 1 ? store_begin(c) : 0;
  for (size_t i = 0; i < n && !rc; i++) {
    char lat[32], lon[32];
    snprintf(lat, sizeof lat, "%.7f", st[i].lat);
    snprintf(lon, sizeof lon, "%.7f", st[i].lon);
    const char *params[] = {st[i].id, st[i].name, st[i].region,
                            isfinite(st[i].lat) ? lat : NULL, isfinite(st[i].lon) ? lon : NULL,
                            ahead ? "api" : "first-seen", now};
    rc = store_exec(c, ahead ? station_upsert : station_insert, params, 7, NULL, err, sizeof err);
  }
  if (n > 1)
    rc = rc ? (store_rollback(c), rc) : store_commit(c);
  store_release(f->ctx.store, c);
  if (rc)
    log_error(NULL, "cannot save stations", "count=%zu error=\"%s\"", n, err);
  return rc;
}

int flow_station_save(struct flow *f, const struct flow_station *st, bool ahead) {
  return stations_save(f, st, 1, ahead);
}

/* ---- stations between instances ------------------------------------------------------
 * With a broker, a station registered or updated on one instance reaches
 * the others' directories as a control message: updates from the API
 * always, first sightings only where the station is not known yet. */

static struct {
  pthread_mutex_t lock;
  struct flow *f;        /* NULL once stopped */
} station_sync = {PTHREAD_MUTEX_INITIALIZER, NULL};

void flow_station_announce(struct flow *f, const struct flow_station *st, bool ahead) {
  if (!f->ctx.hub || !hub_has_broker(f->ctx.hub))
    return;
  json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:b}", "id", st->id, "name", st->name, "region",
                        st->region, "lat", isfinite(st->lat) ? json_real(st->lat) : json_null(),
                        "lon", isfinite(st->lon) ? json_real(st->lon) : json_null(), "ahead",
                        ahead);
  char *text = o ? jsonout_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (text)
    hub_control_send(f->ctx.hub, "flow.station", text, strlen(text), NULL);
  free(text);
}

static void on_station_message(const char *kind, const char *payload, size_t len, void *arg) {
  (void)arg;
  if (strcmp(kind, "flow.station") != 0)
    return;
  json_t *o = json_loadb(payload, len, 0, NULL);
  const char *id = json_string_value(json_object_get(o, "id"));
  const char *name = json_string_value(json_object_get(o, "name"));
  const char *region = json_string_value(json_object_get(o, "region"));
  if (id && name && region && flow_name_valid(id, strlen(id)) &&
      flow_name_valid(region, strlen(region))) {
    struct flow_station st, known;
    memset(&st, 0, sizeof st);
    snprintf(st.id, sizeof st.id, "%s", id);
    snprintf(st.name, sizeof st.name, "%s", name);
    snprintf(st.region, sizeof st.region, "%s", region);
    json_t *lat = json_object_get(o, "lat"), *lon = json_object_get(o, "lon");
    st.lat = json_is_number(lat) ? json_number_value(lat) : NAN;
    st.lon = json_is_number(lon) ? json_number_value(lon) : NAN;
    pthread_mutex_lock(&station_sync.lock);
    struct flow *f = station_sync.f;
    if (f && (json_is_true(json_object_get(o, "ahead")) ||
              !flow_engine_station_get(f->engine, st.id, &known)))
      flow_engine_station_put(f->engine, &st);
    pthread_mutex_unlock(&station_sync.lock);
  }
  json_decref(o);
}

static void on_new_stations(const struct flow_station *st, size_t n, void *arg) {
  struct flow *f = arg;
  metric_add(f->stations, (double)n);
  stations_save(f, st, n, false);
  for (size_t i = 0; i < n; i++)
    flow_station_announce(f, &st[i], false);
}

static void on_alert(const struct flow_alert *a, void *arg) {
  struct flow *f = arg;
  metric_add(f->alerts, 1);
  char from[8], to[8], aqi[16], end[24], at[24];
  snprintf(from, sizeof from, "%d", a->from);
  snprintf(to, sizeof to, "%d", a->to);
  snprintf(aqi, sizeof aqi, "%d", a->aqi);
  snprintf(end, sizeof end, "%lld", (long long)a->window_end_ns);
  snprintf(at, sizeof at, "%llu", (unsigned long long)a->at_ms);
  const char *params[] = {a->id, a->kind, a->subject, a->region, from, to, aqi, a->dominant,
                          end, at};
  char err[256];
  if (store_query(f->ctx.store,
                  "INSERT INTO flow_alerts (id, kind, subject, region, from_category, to_category,"
                  " aqi, dominant, window_end, at) VALUES ($1, $2, $3, $4, CAST($5 AS INTEGER),"
                  " CAST($6 AS INTEGER), CAST($7 AS INTEGER), $8, CAST($9 AS BIGINT),"
                  " CAST($10 AS BIGINT))",
                  params, 10, NULL, err, sizeof err))
    log_error(NULL, "cannot save alert", "subject=%s error=\"%s\"", a->subject, err);
  log_info(NULL, "air quality alert", "kind=%s subject=%s aqi=%d category=%d", a->kind,
           a->subject, a->aqi, a->to);
}

static int load_stations(struct flow *f) {
  struct store_rows *rows;
  char err[256];
  int rc = store_query(f->ctx.store, "SELECT id, name, region, lat, lon FROM flow_stations", NULL,
                       0, &rows, err, sizeof err);
  if (rc) {
    log_error(NULL, "cannot read stations", "error=\"%s\"", err);
    return rc;
  }
  for (int i = 0; i < rows->nrows && !rc; i++) {
    struct flow_station st;
    memset(&st, 0, sizeof st);
    const char *lat = store_rows_get(rows, i, "lat"), *lon = store_rows_get(rows, i, "lon");
    snprintf(st.id, sizeof st.id, "%s", store_rows_get(rows, i, "id"));
    snprintf(st.name, sizeof st.name, "%s", store_rows_get(rows, i, "name"));
    snprintf(st.region, sizeof st.region, "%s", store_rows_get(rows, i, "region"));
    st.lat = lat ? atof(lat) : NAN;
    st.lon = lon ? atof(lon) : NAN;
    rc = flow_engine_station_put(f->engine, &st);
  }
  metric_set(f->stations, rows->nrows);
  store_rows_free(rows);
  return rc;
}

static int cmp_reading_time(const void *a, const void *b) {
  const struct flow_reading *x = a, *y = b;
  return x->ts_ns < y->ts_ns ? -1 : x->ts_ns > y->ts_ns;
}

/* Which station and pollutant each stored series holds, read from the
 * series keys at start: range queries find them, and stations whose
 * readings are stored but who are not registered (a crash between the
 * two) are registered. */
struct known_series {
  struct flow_station st;
  int species;
  uint32_t id;
  bool canonical; /* the station's own series (flow_station_key) */
};

struct hint_walk {
  struct known_series *found;
  size_t n, cap;
};

/* A key with a `station` tag and a pollutant field: which station and
 * pollutant (and region, when tagged). */
static void hint_key(uint32_t id, const char *key, void *arg) {
  struct hint_walk *w = arg;
  size_t len = strlen(key);
  char scratch[SERIES_KEY_MAX];
  struct series_key k;
  if (len > sizeof scratch || series_key_decode(key, len, scratch, &k))
    return;
  int species = flow_species_of(k.field.p, k.field.n);
  const struct lp_str *st = series_key_tag(&k, "station"), *rg = series_key_tag(&k, "region");
  if (species < 0 || !st || !flow_name_valid(st->p, st->n) ||
      (rg && !flow_name_valid(rg->p, rg->n)))
    return; /* not a station reading (ingest.c stores those as any point) */
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 64;
    struct known_series *m = realloc(w->found, cap * sizeof *m);
    if (!m)
      return;
    w->found = m;
    w->cap = cap;
  }
  struct known_series *ks = &w->found[w->n++];
  memset(ks, 0, sizeof *ks);
  memcpy(ks->st.id, st->p, st->n);
  ks->species = species;
  ks->id = id;
  const char *name = flow_species_name((enum flow_species)species);
  ks->canonical = k.ntags == 1 && k.measurement.n == 11 &&
                  memcmp(k.measurement.p, "air_quality", 11) == 0 &&
                  k.field.n == strlen(name) && memcmp(k.field.p, name, k.field.n) == 0;
  if (rg && flow_name_valid(rg->p, rg->n))
    memcpy(ks->st.region, rg->p, rg->n);
}

/* Readings of one station used to land in several series (a region or
 * other tags on line protocol, none on JSON readings). Each such series is
 * merged once into the station's own series — its points copied where
 * that series has none at the same time — and remembered in
 * flow_series_merged, so the station's history reads as one. It stays
 * readable under its own key. Points only in rollups (past raw
 * retention) are not copied. Returns the number of points copied. */
static size_t merge_one(struct flow *f, const struct known_series *ks, uint32_t into) {
  struct chunk_point *old = NULL, *have = NULL;
  size_t nold = 0, nhave = 0, copied = 0;
  if (series_range(f->series, ks->id, INT64_MIN, INT64_MAX, &old, &nold) ||
      series_range(f->series, into, INT64_MIN, INT64_MAX, &have, &nhave)) {
    free(old);
    return 0;
  }
  struct series_point *batch = malloc(50000 * sizeof *batch);
  size_t nb = 0, h = 0;
  int rc = batch ? 0 : GROVE_ENOMEM;
  for (size_t i = 0; i < nold && !rc; i++) {
    while (h < nhave && have[h].ts_ns < old[i].ts_ns)
      h++;
    if (h < nhave && have[h].ts_ns == old[i].ts_ns)
      continue; /* the station's own series has this moment already */
    batch[nb++] = (struct series_point){into, old[i].ts_ns, old[i].value};
    if (nb == 50000 || i + 1 == nold) {
      rc = series_append_sync(f->series, batch, nb);
      copied += rc ? 0 : nb;
      nb = 0;
    }
  }
  if (!rc && nb)
    rc = series_append_sync(f->series, batch, nb), copied += rc ? 0 : nb;
  free(batch);
  free(old);
  free(have);
  if (!rc) {
    char id[24], at[24];
    snprintf(id, sizeof id, "%u", ks->id);
    snprintf(at, sizeof at, "%llu", (unsigned long long)clock_wall_ms());
    const char *params[] = {id, at};
    char err[256];
    struct store_rows *rows = NULL;
    if (store_query(f->ctx.store,
                    "INSERT INTO flow_series_merged (series, at) VALUES (CAST($1 AS BIGINT),"
                    " CAST($2 AS BIGINT)) ON CONFLICT (series) DO NOTHING",
                    params, 2, &rows, err, sizeof err))
      log_error(NULL, "cannot remember a merged series", "series=%u error=\"%s\"", ks->id, err);
    store_rows_free(rows);
  } else {
    log_error(NULL, "cannot merge a series into its station's", "series=%u error=\"%s\"", ks->id,
              grove_strerror(rc));
  }
  return copied;
}

/* Points every station's found series at its own series, merging the
 * others into it (merge_one); found is left holding the stations' own
 * series only. */
static void merge_histories(struct flow *f, struct hint_walk *w) {
  struct store_rows *rows = NULL;
  char err[256];
  struct map merged, regions, seen; /* merged series; a region by station; entries kept */
  map_init(&merged);
  map_init(&regions);
  map_init(&seen);
  if (store_query(f->ctx.store, "SELECT series FROM flow_series_merged", NULL, 0, &rows, err,
                  sizeof err) == 0)
    for (int i = 0; i < rows->nrows; i++)
      map_put(&merged, store_rows_get(rows, i, "series"), (void *)1, NULL);
  store_rows_free(rows);
  for (size_t i = 0; i < w->n; i++) /* a region learnt from any series of the station */
    if (w->found[i].st.region[0] && !map_get(&regions, w->found[i].st.id)) {
      char *rg = strdup(w->found[i].st.region); /* found[] is rewritten below */
      if (rg && map_put(&regions, w->found[i].st.id, rg, NULL))
        free(rg);
    }
  struct buf key;
  buf_init(&key, 0);
  size_t kept = 0, copied = 0, series = 0;
  for (size_t i = 0; i < w->n; i++) {
    struct known_series ks = w->found[i];
    char id[24];
    if (!ks.canonical) {
      snprintf(id, sizeof id, "%u", ks.id);
      uint32_t into;
      if (!map_get(&merged, id) &&
          !flow_station_key(&key, ks.st.id, strlen(ks.st.id), (enum flow_species)ks.species) &&
          !series_id(f->series, key.data, &into)) {
        copied += merge_one(f, &ks, into);
        series++;
      }
      /* the station's own series stands for it (made by the merge, or there) */
      if (flow_station_key(&key, ks.st.id, strlen(ks.st.id), (enum flow_species)ks.species) ||
          series_find(f->series, key.data, &ks.id))
        continue;
      ks.canonical = true;
    }
    snprintf(id, sizeof id, "%u", ks.id);
    if (map_get(&seen, id)) /* one entry per station and pollutant */
      continue;
    map_put(&seen, id, (void *)1, NULL);
    const char *rg = ks.st.region[0] ? NULL : map_get(&regions, ks.st.id);
    if (rg)
      snprintf(ks.st.region, sizeof ks.st.region, "%s", rg);
    w->found[kept++] = ks; /* kept <= i: entries not yet read stay */
  }
  if (series)
    log_info(NULL, "station readings merged into their stations' series",
             "series=%zu points=%zu", series, copied);
  w->n = kept;
  buf_release(&key);
  const char *k;
  void *v;
  for (size_t it = 0; map_next(&regions, &it, &k, &v);)
    free(v);
  map_release(&merged);
  map_release(&regions);
  map_release(&seen);
}

/* After a restart, the readings of the last window and its lateness go
 * through the windows again, so stations and regions have their AQI back
 * at once rather than after a window of new readings. (Categories are set
 * again without alerts.) */
static void warm_start(struct flow *f, const struct known_series *found, size_t n) {
  int64_t now = (int64_t)clock_wall_ms() * 1000000, back, from, to;
  /* each duration fits in int64 ns (cfg_parse_ms); their sum may not */
  if (time_mul((int64_t)(f->cfg.window_ms + f->cfg.lateness_ms + f->cfg.slide_ms), 1000000, &back) ||
      time_sub(now, back, &from))
    from = TIME_MIN_NS;
  if (time_add(now, 60000000000LL, &to))
    to = INT64_MAX;
  struct flow_reading *r = NULL;
  size_t nr = 0, cap = 0;
  for (size_t i = 0; i < n; i++) {
    struct chunk_point *pts;
    size_t np;
    if (series_range(f->series, found[i].id, from, to, &pts, &np))
      continue;
    for (size_t k = 0; k < np; k++) {
      if (nr == cap) {
        cap = cap ? cap * 2 : 4096;
        struct flow_reading *g = realloc(r, cap * sizeof *g);
        if (!g)
          break;
        r = g;
      }
      r[nr++] = (struct flow_reading){found[i].st.id, NULL, (enum flow_species)found[i].species,
                                      pts[k].ts_ns, pts[k].value, found[i].id};
    }
    free(pts);
  }
  if (nr) {
    /* by time, so the watermark moves as it did when they arrived */
    qsort(r, nr, sizeof *r, cmp_reading_time);
    for (size_t at = 0; at < nr; at += 50000)
      flow_engine_add(f->engine, r + at, nr - at < 50000 ? nr - at : 50000, NULL);
    log_info(NULL, "windows warmed from stored readings", "readings=%zu", nr);
  }
  free(r);
}

static void learn_series(struct flow *f) {
  struct hint_walk w = {NULL, 0, 0};
  series_each_key(f->series, hint_key, &w);
  merge_histories(f, &w);
  for (size_t i = 0; i < w.n; i++) {
    struct flow_station st = w.found[i].st, known;
    if (!flow_engine_station_get(f->engine, st.id, &known)) {
      snprintf(st.name, sizeof st.name, "%s", st.id);
      if (!st.region[0])
        snprintf(st.region, sizeof st.region, "unassigned");
      st.lat = st.lon = NAN;
      if (!flow_engine_station_put(f->engine, &st) && !flow_station_save(f, &st, false))
        metric_add(f->stations, 1);
    }
    flow_engine_series_hint(f->engine, st.id, (enum flow_species)w.found[i].species,
                            w.found[i].id);
  }
  if (f->ctx.roles & ROLE_STREAM)
    warm_start(f, w.found, w.n);
  free(w.found);
}

/* /ready's check: the series store's disk trouble (core/health.h). */
static int series_check(void *arg, char *why, size_t n) {
  struct flow *f = arg;
  return series_health(f->series, why, n);
}

static void flow_free(struct flow *f) {
  health_remove(f->ctx.health, series_check, f);
  pthread_mutex_lock(&station_sync.lock);
  if (station_sync.f == f)
    station_sync.f = NULL;
  pthread_mutex_unlock(&station_sync.lock);
  flow_engine_destroy(f->engine);
  series_close(f->series);
  free(f);
}

static int flow_start(struct grove_ctx *ctx, void **state) {
  struct flow *f = calloc(1, sizeof *f);
  if (!f)
    return GROVE_ENOMEM;
  f->ctx = *ctx;
  f->cfg = flow_cfg;
  if (f->cfg.read_max < 1 || f->cfg.read_points < 1 || f->cfg.read_points > f->cfg.read_max) {
    log_error(NULL, "bad series read limits",
              "hint=\"--series-read-points must be 1 to --series-read-max\" points=%d max=%d",
              f->cfg.read_points, f->cfg.read_max);
    free(f);
    return GROVE_ECONFIG;
  }
  char dir[4096], err[256];
  snprintf(dir, sizeof dir, "%s/series", ctx->data_dir);
  /* with PostgreSQL, the series live there too, shared by every instance */
  bool pg = strcmp(store_driver_name(ctx->store), "postgres") == 0;
  int rc = pg ? series_open_pg(&f->series, ctx->store_url, err, sizeof err)
              : series_open(&f->series, dir, err, sizeof err);
  if (rc) {
    log_error(NULL, "cannot open the series store", "error=\"%s\"", err);
    free(f);
    return rc;
  }
  series_retention(f->series, f->cfg.keep_raw_ms, f->cfg.keep_1m_ms, f->cfg.keep_1h_ms);
  if (!(ctx->roles & ROLE_WORKER)) /* a worker instance drops what is past retention */
    series_retention_elsewhere(f->series);
  if (ctx->health && (rc = health_add(ctx->health, "series", series_check, f))) {
    series_close(f->series);
    free(f);
    return rc;
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  struct flow_engine_cfg ec = {
      .window_ns = (int64_t)f->cfg.window_ms * 1000000,
      .slide_ns = (int64_t)f->cfg.slide_ms * 1000000,
      .lateness_ns = (int64_t)f->cfg.lateness_ms * 1000000,
      .ahead_ns = (int64_t)f->cfg.ahead_ms * 1000000,
      .hysteresis = f->cfg.hysteresis,
      .partitions = f->cfg.partitions > 0 ? (unsigned)f->cfg.partitions
                                          : (unsigned)(cpus > 0 ? (cpus > 64 ? 64 : cpus) : 1),
      .publish_ms = f->cfg.publish_ms,
      .stale_ms = f->cfg.stale_ms,
      .env = {.no_ticker = !(ctx->roles & ROLE_STREAM)}, /* no stream processing: no windows */
  };
  if (f->cfg.stale_ms && f->cfg.stale_ms < f->cfg.window_ms)
    log_warn(NULL, "stale stations may still weigh in their regions' AQI",
             "hint=\"--flow-stale-after is shorter than --flow-window: a stale station's last "
             "readings stay in its region's window until they leave it\"");
  f->points_written = metric_get(metrics_family(ctx->metrics, "grove_series_points_written_total",
                                                "Points written durably to the series store.",
                                                METRIC_COUNTER, ""));
  f->lines_failed = metric_get(metrics_family(ctx->metrics, "grove_ingest_lines_failed_total",
                                              "Line protocol lines refused as malformed.",
                                              METRIC_COUNTER, ""));
  f->late = metric_get(metrics_family(ctx->metrics, "grove_flow_late_readings_total",
                                      "Readings older than the watermark: stored, left out of the AQI windows.",
                                      METRIC_COUNTER, ""));
  f->ahead = metric_get(metrics_family(ctx->metrics, "grove_flow_ahead_readings_total",
                                       "Readings later than the server's clock by more than --flow-max-ahead: stored, left out of the AQI windows, moving no watermark.",
                                       METRIC_COUNTER, ""));
  f->alerts = metric_get(metrics_family(ctx->metrics, "grove_flow_alerts_total",
                                        "AQI category changes alerted.", METRIC_COUNTER, ""));
  f->stations = metric_get(metrics_family(ctx->metrics, "grove_flow_stations",
                                          "Stations registered.", METRIC_GAUGE, ""));
  if ((rc = series_autoflush(f->series, f->cfg.flush_ms,
                             f->cfg.flush_points > 0 ? (size_t)f->cfg.flush_points : 0)) ||
      ((ctx->roles & ROLE_API) &&
       (rc = flow_engine_create(&f->engine, &ec, ctx->hub, on_alert, on_new_stations, f)))) {
    if (rc == GROVE_EINVAL)
      log_error(NULL, "bad flow window options",
                "hint=\"--flow-window at most 4096 panes of gcd(--flow-window, --flow-slide), and "
                "(window + slide + --flow-lateness + --flow-max-ahead) at most 8190 panes\"");
    flow_free(f);
    return rc;
  }
  if (!(ctx->roles & ROLE_API)) { /* a worker: the series store's background work only */
    *state = f;
    return 0;
  }
  if ((rc = load_stations(f))) {
    flow_free(f);
    return rc;
  }
  learn_series(f);
  pthread_mutex_lock(&station_sync.lock);
  bool listening = station_sync.f != NULL;
  station_sync.f = f;
  pthread_mutex_unlock(&station_sync.lock);
  if (ctx->hub && !listening)
    hub_control_listen(ctx->hub, on_station_message, NULL);
  *state = f;
  return 0;
}

static void flow_stop(void *state) { flow_free(state); }

static void flow_command_help(FILE *f) {
  fprintf(f, "usage: grove flow VERB [options]\n\n"
             "flow's tools:\n"
             "  simulate   write a simulated city of air-quality stations to a grove\n\n");
  flow_simulate_help(f);
}

static int flow_command(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "simulate") == 0)
    return flow_simulate(argc - 1, argv + 1);
  if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "help") == 0)) {
    flow_command_help(stdout);
    return 0;
  }
  flow_command_help(stderr);
  return 2;
}

/* Every route flow serves, with who may call it: writes need the write
 * scope, reads the read scope; InfluxDB's /ping is open (its clients call
 * it first, without a credential). */
static const struct route_def flow_routes[] = {
    {"POST", "/api/v1/write", flow_handle_write, .scopes = GATE_WRITE},
    {"POST", "/api/v1/flow/readings", flow_handle_readings, .scopes = GATE_WRITE},
    {"POST", "/write", flow_handle_write_v1, .scopes = GATE_WRITE, .refuse = flow_influx_refuse},
    {"POST", "/api/v2/write", flow_handle_write_v2, .scopes = GATE_WRITE,
     .refuse = flow_influx_refuse},
    {"GET", "/ping", flow_handle_ping, .anonymous = true},
    {"GET", "/api/v1/flow/snapshot", flow_handle_snapshot, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/stations", flow_handle_stations, .scopes = GATE_READ},
    {"POST", "/api/v1/flow/stations", flow_handle_station_put, .scopes = GATE_WRITE},
    {"GET", "/api/v1/flow/stations/{id}", flow_handle_station, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/stations/{id}/range", flow_handle_station_range, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/regions", flow_handle_regions, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/regions/{name}", flow_handle_region, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/alerts", flow_handle_alerts, .scopes = GATE_READ},
    {"GET", "/api/v1/series/points", flow_handle_points, .scopes = GATE_READ},
    {"GET", "/api/v1/series/range", flow_handle_range, .scopes = GATE_READ},
    {"POST", "/api/v1/flow/ask", flow_handle_ask, .scopes = GATE_READ},
};

const struct grove_app flow_app = {
    .name = "flow",
    .summary = "air quality (GreenFlow): readings, rolling AQI per station and region, alerts",
    .opts = flow_opts,
    .nopts = ARRAY_LEN(flow_opts),
    .cfg = &flow_cfg,
    .migrations = flow_migrations,
    .nmigrations = ARRAY_LEN(flow_migrations),
    .routes = flow_routes,
    .nroutes = ARRAY_LEN(flow_routes),
    .page = &(const struct app_page){"flow", "Air quality", "/flow.js"},
    .start = flow_start,
    .stop = flow_stop,
    .command = flow_command,
    .verbs = "flow's tools: grove flow simulate",
    .command_help = flow_command_help,
};
