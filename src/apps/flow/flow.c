/* flow.c — GreenFlow AI (seed 000) as a Grove app: its options, its
 * tables, and start/stop. Points come in through telemetry, which keeps
 * them in the series store and hands flow the station readings
 * (ingest.c), which feed the engine (engine.c), whose rolling AQI, alerts
 * and live topics api.c and ask.c serve. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/flow/flow.h"
#include "broker/broker.h"
#include "core/array.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/gate.h"
#include "hub/hub.h"
#include "net/http.h"

static struct flow_cfg flow_cfg;

static const struct cfg_opt flow_opts[] = {
    CFG_OPT(struct flow_cfg, "flow-window", CFG_MS, window_ms, "10m", "length of the rolling AQI window"),
    CFG_OPT(struct flow_cfg, "flow-slide", CFG_MS, slide_ms, "1m", "how often the rolling window moves on (a new AQI each time)"),
    CFG_OPT(struct flow_cfg, "flow-lateness", CFG_MS, lateness_ms, "1m", "how far behind the newest reading a reading may arrive and still count"),
    CFG_OPT(struct flow_cfg, "flow-max-ahead", CFG_MS, ahead_ms, "5m", "a reading later than the server's clock by more than this is stored but left out of the AQI and moves no window; 0: no bound (event time alone, for replays)"),
    CFG_OPT(struct flow_cfg, "flow-publish-interval", CFG_MS, publish_ms, "1s", "at most one live update per station or region topic this often"),
    CFG_OPT(struct flow_cfg, "flow-alert-hysteresis", CFG_INT, hysteresis, "5", "AQI points below a category's floor before an alert says it is over"),
    CFG_OPT(struct flow_cfg, "flow-partitions", CFG_INT, partitions, "0", "window partitions (worker threads update them at once); 0: one per CPU"),
    CFG_OPT(struct flow_cfg, "flow-public", CFG_BOOL, public_topics, "false", "let anyone read flow's live topics (flow/…) without signing in; off: signed-in users and keys with the read scope"),
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

int flow_station_exec(struct store_conn *c, const struct flow_station *st, bool ahead, char *err,
                      size_t n) {
  char now[24], lat[32], lon[32];
  snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
  snprintf(lat, sizeof lat, "%.7f", st->lat);
  snprintf(lon, sizeof lon, "%.7f", st->lon);
  const char *params[] = {st->id, st->name, st->region,
                          isfinite(st->lat) ? lat : NULL, isfinite(st->lon) ? lon : NULL,
                          ahead ? "api" : "first-seen", now};
  return store_exec(c, ahead ? station_upsert : station_insert, params, 7, NULL, err, n);
}

int flow_station_save(struct flow *f, const struct flow_station *st, bool ahead) {
  struct store_conn *c;
  int rc = store_acquire(f->ctx.store, &c);
  if (rc)
    return rc;
  char err[256] = "";
  rc = flow_station_exec(c, st, ahead, err, sizeof err);
  store_release(f->ctx.store, c);
  if (rc)
    log_error(NULL, "cannot save a station", "station=%s error=\"%s\"", st->id, err);
  return rc;
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
  if (!f->ctx.broker)
    return;
  json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:b}", "id", st->id, "name", st->name, "region",
                        st->region, "lat", isfinite(st->lat) ? json_real(st->lat) : json_null(),
                        "lon", isfinite(st->lon) ? json_real(st->lon) : json_null(), "ahead",
                        ahead);
  char *text = o ? jsonout_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (text)
    broker_control_send(f->ctx.broker, "flow.station", text, strlen(text), NULL, 0);
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

/* Stations first seen in a write (on its worker thread, before it is
 * acknowledged): queued for the background writer, announced. */
static void on_new_stations(const struct flow_station *st, size_t n, void *arg) {
  struct flow *f = arg;
  metric_add(f->stations, (double)n);
  for (size_t i = 0; i < n; i++) {
    flow_writer_station(f->writer, &st[i]);
    flow_station_announce(f, &st[i], false);
  }
}

/* An alert (on the engine's ticker thread): queued for the background
 * writer. */
static void on_alert(const struct flow_alert *a, void *arg) {
  struct flow *f = arg;
  metric_add(f->alerts, 1);
  flow_writer_alert(f->writer, a);
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
  char scratch[4096];
  struct telemetry_key k;
  if (len > sizeof scratch || telemetry_key_decode(key, len, scratch, &k))
    return;
  int species = flow_species_of(k.field.p, k.field.n);
  const struct telemetry_str *st = telemetry_tag_get(k.tags, k.ntags, "station"),
                             *rg = telemetry_tag_get(k.tags, k.ntags, "region");
  if (species < 0 || !st || !flow_name_valid(st->p, st->n) ||
      (rg && !flow_name_valid(rg->p, rg->n)))
    return; /* not a station reading (telemetry stores those as any point) */
  if (ARRAY_GROW(w->found, w->cap, w->n + 1, 64, ARRAY_NOMAX))
    return;
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
  struct series_sample *old = NULL, *have = NULL;
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
    struct series_sample *pts;
    size_t np;
    if (series_range(f->series, found[i].id, from, to, &pts, &np))
      continue;
    for (size_t k = 0; k < np; k++) {
      if (ARRAY_GROW(r, cap, nr + 1, 4096, ARRAY_NOMAX))
        break; /* the windows warm with what fits */
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

static void flow_free(struct flow *f) {
  pthread_mutex_lock(&station_sync.lock);
  if (station_sync.f == f)
    station_sync.f = NULL;
  pthread_mutex_unlock(&station_sync.lock);
  flow_engine_destroy(f->engine); /* no more alerts or stations after this */
  flow_writer_stop(f->writer);    /* writes what is queued */
  free(f);
}

static int flow_start(struct grove_ctx *ctx, void **state) {
  struct flow *f = calloc(1, sizeof *f);
  if (!f)
    return GROVE_ENOMEM;
  f->ctx = *ctx;
  f->cfg = flow_cfg;
  f->telemetry = ctx->telemetry;
  f->series = telemetry_series(ctx->telemetry);
  int rc = flow_writer_start(&f->writer, ctx->store, ctx->metrics, FLOW_WRITER_MAX);
  if (rc) {
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
  if ((ctx->roles & ROLE_API) &&
      (rc = flow_engine_create(&f->engine, &ec, ctx->hub, on_alert, on_new_stations, f))) {
    if (rc == GROVE_EINVAL)
      log_error(NULL, "bad flow window options",
                "hint=\"--flow-window at most 4096 panes of gcd(--flow-window, --flow-slide), and "
                "(window + slide + --flow-lateness + --flow-max-ahead) at most 8190 panes\"");
    flow_free(f);
    return rc;
  }
  if (!(ctx->roles & ROLE_API)) { /* a worker: telemetry's background work only */
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
  char err[256];
  if (ctx->broker && !listening &&
      (rc = broker_control_listen(ctx->broker, "flow", on_station_message, NULL, err, sizeof err))) {
    log_error(NULL, "cannot start flow", "error=\"%s\"", err);
    flow_free(f);
    return rc;
  }
  if ((rc = flow_consume(f))) {
    flow_free(f);
    return rc;
  }
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
 * scope, reads the read scope. (Line protocol, InfluxDB's paths and the
 * generic series reads are telemetry's routes.) */
static const struct route_def flow_routes[] = {
    {"POST", "/api/v1/flow/readings", flow_handle_readings, .scopes = GATE_WRITE},
    {"GET", "/api/v1/flow/snapshot", flow_handle_snapshot, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/stations", flow_handle_stations, .scopes = GATE_READ},
    {"POST", "/api/v1/flow/stations", flow_handle_station_put, .scopes = GATE_WRITE},
    {"GET", "/api/v1/flow/stations/{id}", flow_handle_station, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/stations/{id}/range", flow_handle_station_range, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/regions", flow_handle_regions, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/regions/{name}", flow_handle_region, .scopes = GATE_READ},
    {"GET", "/api/v1/flow/alerts", flow_handle_alerts, .scopes = GATE_READ},
    {"POST", "/api/v1/flow/ask", flow_handle_ask, .scopes = GATE_READ},
};

/* flow's live topics: stations, regions, alerts and streamed answers.
 * Readers need the read scope, as the REST reads do, unless --flow-public
 * opens them to anyone; only flow publishes on them. */
static const struct hub_topic_rule flow_topics[] = {
    {.prefix = "flow/", .read = HUB_SIGNED_IN, .read_scopes = GATE_READ, .publish = HUB_NOBODY,
     .read_anyone = &flow_cfg.public_topics},
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
    .topics = flow_topics,
    .ntopics = ARRAY_LEN(flow_topics),
    .page = &(const struct app_page){"flow", "Air quality", "/flow.js"},
    .start = flow_start,
    .stop = flow_stop,
    .command = flow_command,
    .verbs = "flow's tools: grove flow simulate",
    .command_help = flow_command_help,
};
