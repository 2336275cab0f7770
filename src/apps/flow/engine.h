/* engine.h — flow's live state: stations and regions, their rolling AQI,
 * alerts with hysteresis, and live updates at most once a second a topic
 * (the hub's coalesced publishing).
 *
 * Readings (station, pollutant, time, value) go into keyed sliding windows
 * on the platform's stream engine (src/stream): one key per station and
 * pollutant and one per region and pollutant. Keys are spread over the
 * engine's partitions, each with its own lock, so worker threads update
 * different partitions at once; flow keeps its entities beside each
 * partition, under the same lock, and the engine's ticker closes the
 * windows of stations gone quiet. When a
 * window closes, its mean becomes the entity's concentration for that
 * pollutant, the AQI is recomputed from the pollutants of that window, and
 * a category change past the hysteresis margin makes an alert.
 *
 * Stations are known ahead (flow_engine_station_put) or on first sight.
 *
 * Invariant: every change of what an entity's object shows (a reading, a
 * window closing, staleness, the directory) is published on its topic, in
 * the order it happened, so a topic's last event is what
 * flow_engine_stations_json / _regions_json give once the publish interval
 * has passed. The category shown is always aqi_category_of(aqi); hysteresis
 * only decides alerts. An entity silent for cfg.stale_ms (wall clock, as
 * env.mono_ms reads it) is stale until its next reading. */
#ifndef GROVE_FLOW_ENGINE_H
#define GROVE_FLOW_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hub;

enum flow_species { SP_PM25, SP_PM10, SP_O3, SP_NO2, SP_CO, SP_SO2, SP_COUNT };

/* "pm25" (also "pm2_5", "pm2.5"), "pm10", "o3" ("ozone"), "no2", "co",
 * "so2"; -1 for anything else. */
int flow_species_of(const char *name, size_t len);
const char *flow_species_name(enum flow_species sp);

struct flow_station {
  char id[65];
  char name[129];
  char region[65];
  double lat, lon;   /* NaN when unknown */
};

/* A station reading of one pollutant. */
struct flow_reading {
  const char *station;
  const char *region;     /* the writer's region tag, or NULL */
  enum flow_species species;
  int64_t ts_ns;
  double value;
  uint32_t series;        /* the series it was stored in */
};

/* An alert raised when an entity changes category. */
struct flow_alert {
  char id[33];
  char kind[8];           /* "station" or "region" */
  char subject[65];
  char region[65];
  int from, to;           /* categories; from is -1 never */
  int aqi;
  char dominant[8];
  int64_t window_end_ns;
  uint64_t at_ms;         /* wall clock when raised */
};

/* Where the engine reads the time and sends its live updates. serve
 * leaves all of it zero (the system clocks, the hub, a ticker thread);
 * tests inject a clock they move by hand, catch what is published, and
 * call flow_engine_tick() themselves. */
struct flow_engine_env {
  uint64_t (*mono_ms)(void *arg);  /* monotonic ms: throttles, idle, staleness */
  uint64_t (*wall_ms)(void *arg);  /* Unix ms: last_seen, alerts' `at`, and the clock
                                    * event time is bounded by (ahead_ns) */
  /* called for each live update instead of the hub, no engine lock held */
  void (*publish)(const char *topic, const char *json, size_t len, void *arg);
  void *arg;
  bool no_ticker;
};

struct flow_engine_cfg {
  int64_t window_ns, slide_ns, lateness_ns;
  int64_t ahead_ns;       /* a reading later than the wall clock (env.wall_ms) + this
                           * is in no window and moves no watermark; 0: no bound
                           * (see engine.c) */
  int hysteresis;         /* AQI points below a category's floor before falling out */
  unsigned partitions;
  uint64_t publish_ms;    /* at most one live update per topic this often */
  uint64_t stale_ms;      /* wall-clock silence before a station or region is
                           * stale (no reading arrived); 0: never */
  struct flow_engine_env env;
};

/* Called for each alert, on the thread that raised it, no lock held. */
typedef void (*flow_alert_fn)(const struct flow_alert *a, void *arg);
/* Called with the stations first seen in a batch of readings, no lock held. */
typedef void (*flow_new_stations_fn)(const struct flow_station *st, size_t n, void *arg);

struct flow_engine;

int flow_engine_create(struct flow_engine **out, const struct flow_engine_cfg *cfg,
                       struct hub *hub, flow_alert_fn on_alert, flow_new_stations_fn on_stations,
                       void *arg);
/* Stops the ticker and frees everything. NULL is fine. */
void flow_engine_destroy(struct flow_engine *e);

/* Registers or updates a station (from the API or the store at start). */
int flow_engine_station_put(struct flow_engine *e, const struct flow_station *st);
/* Copies a station. Returns false when unknown. */
bool flow_engine_station_get(struct flow_engine *e, const char *id, struct flow_station *out);

/* Adds readings that are durable already. Returns how many were late (left
 * out of the windows: older than the watermark); *ahead (may be NULL) gets
 * how many were ahead of the wall clock by more than cfg.ahead_ns (left
 * out too, and moving nothing). */
size_t flow_engine_add(struct flow_engine *e, const struct flow_reading *r, size_t n,
                       size_t *ahead);

/* Remembers which series holds a known station's pollutant (at start,
 * from the series store's keys). */
void flow_engine_series_hint(struct flow_engine *e, const char *station, enum flow_species sp,
                             uint32_t series);
/* The series holding a station's pollutant; false when none is known. */
bool flow_engine_series_of(struct flow_engine *e, const char *station, enum flow_species sp,
                           uint32_t *series);

/* The live state. `stations`, `regions`: JSON arrays of the objects the
 * live topics carry. A station id or region name selects one (NULL: all). */
json_t *flow_engine_stations_json(struct flow_engine *e, const char *only);
json_t *flow_engine_regions_json(struct flow_engine *e, const char *only);

/* Moves every partition's watermark on as if `idle_ms` of silence had
 * passed (the ticker does this from the wall clock), and publishes what is
 * due. For tests. */
void flow_engine_tick(struct flow_engine *e);

struct flow_engine_stats {
  uint64_t late, windows, alerts, published;
  uint64_t ahead;         /* station readings ahead of the wall clock */
  size_t keys, stations, regions;
  size_t key_bytes;       /* one window key's state */
};
void flow_engine_stats(struct flow_engine *e, struct flow_engine_stats *out);

/* "Good", "Moderate", … for categories 0..5 with their colours. */
json_t *flow_category_json(int category);
/* An alert as flow/alerts carries it and GET /api/v1/flow/alerts lists it
 * ({"type":"alert","id",…}); new reference, NULL on no memory. */
json_t *flow_alert_json(const struct flow_alert *a);

#endif
