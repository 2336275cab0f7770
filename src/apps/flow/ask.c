/* ask.c — POST /api/v1/flow/ask: a question about the air now, answered
 * from the latest snapshot only (seed 000's "hybrid context": the live
 * state, never old documents). Without a model the answer is built from
 * the data: the stations and regions the question names (or the city when
 * it names none), the pollutant it asks about, who is worst or best, and
 * the EPA's advice for the category — each figure with the window it
 * comes from, listed in `sources`. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/flow/flow.h"
#include "core/buf.h"
#include "core/util.h"
#include "gate/gate.h"
#include "net/http.h"

#define MAX_QUESTION 1000
#define MAX_NAMED 5

/* The EPA's cautionary statements, by category. */
static const char *const advice[] = {
    "Air quality is satisfactory; it is a good time to be active outside.",
    "Unusually sensitive people should consider reducing prolonged or heavy exertion outdoors.",
    "People with heart or lung disease, older adults, children and teenagers, and people who "
    "are active outdoors should reduce prolonged or heavy exertion.",
    "Everyone should reduce prolonged or heavy exertion outdoors; sensitive groups should avoid "
    "it.",
    "Everyone should avoid prolonged or heavy exertion outdoors; sensitive groups should avoid "
    "all physical activity outside.",
    "Everyone should avoid all physical activity outdoors and stay inside with windows closed.",
};

static const char *const pollutant_label[SP_COUNT] = {"PM2.5", "PM10", "ozone", "NO2", "CO",
                                                      "SO2"};
static const char *const pollutant_unit[SP_COUNT] = {"µg/m³", "µg/m³", "ppm", "ppb", "ppm",
                                                     "ppb"};

/* Lower-cased question with everything but letters, digits, '.', '_',
 * '-' and '~' turned into spaces, padded with spaces. */
static void normalise(const char *q, char *out, size_t n) {
  size_t at = 0;
  out[at++] = ' ';
  for (; *q && at + 2 < n; q++) {
    unsigned char c = (unsigned char)*q;
    out[at++] = isalnum(c) || c == '.' || c == '_' || c == '-' || c == '~' ? (char)tolower(c)
                                                                          : ' ';
  }
  out[at++] = ' ';
  out[at] = '\0';
}

/* Whether the normalised question holds `word` as a whole word. */
static bool has_word(const char *q, const char *word) {
  char w[160];
  snprintf(w, sizeof w, " %s ", word);
  for (char *p = w; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  if (strstr(q, w))
    return true;
  /* a trailing full stop or question mark became a space or stayed a '.' */
  size_t n = strlen(w);
  w[n - 1] = '.';
  return strstr(q, w) != NULL;
}

static bool has_any(const char *q, const char *const *words) {
  for (; *words; words++)
    if (has_word(q, *words))
      return true;
  return false;
}

static int asked_pollutant(const char *q) {
  static const struct {
    const char *word;
    int sp;
  } words[] = {{"pm2.5", SP_PM25}, {"pm25", SP_PM25},     {"pm2_5", SP_PM25}, {"pm10", SP_PM10},
               {"ozone", SP_O3},   {"o3", SP_O3},         {"no2", SP_NO2},    {"nitrogen", SP_NO2},
               {"co", SP_CO},      {"monoxide", SP_CO},   {"so2", SP_SO2},    {"sulfur", SP_SO2},
               {"sulphur", SP_SO2}, {"particles", SP_PM25}, {"smoke", SP_PM25}};
  for (size_t i = 0; i < ARRAY_LEN(words); i++)
    if (has_word(q, words[i].word))
      return words[i].sp;
  return -1;
}

static const char *label_of(json_t *e) {
  const char *name = json_string_value(json_object_get(e, "name"));
  const char *id = json_string_value(json_object_get(e, "id"));
  return name ? name : id ? id : "?";
}

static int aqi_of(json_t *e) {
  json_t *a = json_object_get(e, "aqi");
  return json_is_integer(a) ? (int)json_integer_value(a) : -1;
}

/* "PM2.5" for the entity's dominant pollutant. */
static const char *dominant_label(json_t *e) {
  const char *d = json_string_value(json_object_get(e, "dominant"));
  int sp = d ? flow_species_of(d, strlen(d)) : -1;
  return sp >= 0 ? pollutant_label[sp] : "no single pollutant";
}

static void window_text(json_t *e, char *out, size_t n) {
  json_int_t end = json_integer_value(json_object_get(json_object_get(e, "window"), "end"));
  json_int_t start = json_integer_value(json_object_get(json_object_get(e, "window"), "start"));
  time_t t = (time_t)(end / 1000000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char when[32];
  strftime(when, sizeof when, "%H:%M UTC", &tm);
  snprintf(out, n, "%lld-minute average to %s", (long long)((end - start) / 60000000000LL), when);
}

/* One entity in a sentence, with its pollutant when one was asked. */
static void describe(struct buf *b, json_t *e, const char *kind, int sp) {
  const char *label = label_of(e);
  int aqi = aqi_of(e);
  if (aqi < 0) {
    buf_printf(b, "%s %s has no complete 10-minute average yet", kind, label);
    json_t *p = json_object_get(json_object_get(e, "pollutants"), "pm25");
    json_t *latest = json_object_get(p, "latest");
    if (json_is_number(latest))
      buf_printf(b, " (latest PM2.5 reading %.1f µg/m³)", json_number_value(latest));
    buf_puts(b, ". ");
    return;
  }
  char when[64];
  window_text(e, when, sizeof when);
  buf_printf(b, "%s %s: AQI %d, %s, mostly %s (%s)", kind, label, aqi,
             json_string_value(json_object_get(e, "category")), dominant_label(e), when);
  if (sp >= 0) {
    json_t *p = json_object_get(json_object_get(e, "pollutants"), flow_species_name(sp));
    json_t *mean = json_object_get(p, "mean"), *idx = json_object_get(p, "aqi");
    if (json_is_number(mean))
      buf_printf(b, "; %s %.*f %s (index %lld)", pollutant_label[sp], sp == SP_O3 || sp == SP_CO ? 3 : 1,
                 json_number_value(mean), pollutant_unit[sp],
                 json_is_integer(idx) ? (long long)json_integer_value(idx) : -1LL);
    else
      buf_printf(b, "; %s is not measured there", pollutant_label[sp]);
  }
  buf_puts(b, ". ");
}

static void add_source(json_t *sources, json_t *e, const char *kind) {
  json_t *s = json_pack("{s:s,s:s,s:O,s:O,s:O}", "kind", kind, kind[0] == 's' ? "id" : "name",
                        label_of(e), "aqi", json_object_get(e, "aqi"), "category",
                        json_object_get(e, "category"), "window",
                        json_object_get(e, "window"));
  if (kind[0] == 's')
    json_object_set(s, "id", json_object_get(e, "id"));
  json_array_append_new(sources, s);
}

static int cmp_aqi_desc(const void *a, const void *b) {
  return aqi_of(*(json_t *const *)b) - aqi_of(*(json_t *const *)a);
}

/* The answer to question q from the stations and regions (JSON arrays). */
static json_t *answer(const char *question, json_t *stations, json_t *regions) {
  char q[MAX_QUESTION + 8];
  normalise(question, q, sizeof q);
  int sp = asked_pollutant(q);
  static const char *const worst_words[] = {"worst", "highest", "most", "dirtiest", "polluted",
                                            "unhealthiest", NULL};
  static const char *const best_words[] = {"best", "lowest", "cleanest", "least", "freshest", NULL};
  static const char *const health_words[] = {"safe", "run", "running", "jog", "jogging",
                                             "exercise", "outdoor", "outdoors", "outside", "walk",
                                             "bike", "cycle", "cycling", "play", "health",
                                             "healthy", "mask", "window", "windows", NULL};
  bool worst = has_any(q, worst_words), best = has_any(q, best_words);
  bool health = has_any(q, health_words);
  struct buf b;
  buf_init(&b, 0);
  json_t *sources = json_array();
  int named = 0, worst_cat = -1;
  size_t i;
  json_t *e;
  json_array_foreach(regions, i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));
    if (name && named < MAX_NAMED && has_word(q, name)) {
      describe(&b, e, "Region", sp);
      add_source(sources, e, "region");
      named++;
      json_t *lv = json_object_get(e, "level");
      if (json_is_integer(lv) && json_integer_value(lv) > worst_cat)
        worst_cat = (int)json_integer_value(lv);
    }
  }
  json_array_foreach(stations, i, e) {
    const char *id = json_string_value(json_object_get(e, "id"));
    const char *name = json_string_value(json_object_get(e, "name"));
    if (named < MAX_NAMED && ((id && has_word(q, id)) || (name && strcmp(name, id) && has_word(q, name)))) {
      describe(&b, e, "Station", sp);
      add_source(sources, e, "station");
      named++;
      json_t *lv = json_object_get(e, "level");
      if (json_is_integer(lv) && json_integer_value(lv) > worst_cat)
        worst_cat = (int)json_integer_value(lv);
    }
  }
  /* rank what has an AQI: regions when there are several, else stations */
  size_t nr = 0, ns = 0;
  json_t **ranked = malloc((json_array_size(stations) + json_array_size(regions) + 1) * sizeof *ranked);
  json_array_foreach(regions, i, e) if (aqi_of(e) >= 0 && ranked) ranked[nr++] = e;
  json_t **st = ranked ? ranked + nr : NULL;
  json_array_foreach(stations, i, e) if (aqi_of(e) >= 0 && st) st[ns++] = e;
  if (ranked) {
    qsort(ranked, nr, sizeof *ranked, cmp_aqi_desc);
    qsort(st, ns, sizeof *st, cmp_aqi_desc);
  }
  if (!named || worst || best) {
    if (!nr && !ns) {
      buf_printf(&b, "No station has a complete 10-minute average yet (%zu stations known); "
                     "ask again in a few minutes. ",
                 json_array_size(stations));
    } else {
      bool by_region = nr > 1;
      json_t **list = by_region ? ranked : st;
      size_t n = by_region ? nr : ns;
      json_t *top = best && !worst ? list[n - 1] : list[0];
      const char *kind = by_region ? "region" : "station";
      if (!named) {
        buf_printf(&b, "Across %zu station%s in %zu region%s with a 10-minute average, ", ns,
                   ns == 1 ? "" : "s", nr, nr == 1 ? "" : "s");
        buf_printf(&b, "the %s air is in %s %s. ", best && !worst ? "cleanest" : "worst", kind,
                   label_of(top));
      }
      describe(&b, top, by_region ? "Region" : "Station", sp);
      add_source(sources, top, kind);
      json_t *lv = json_object_get(top, "level");
      if (json_is_integer(lv) && (int)json_integer_value(lv) > worst_cat && !(best && !worst))
        worst_cat = (int)json_integer_value(lv);
      if (!named && !best && ns > 1 && json_is_integer(json_object_get(st[0], "level"))) {
        buf_printf(&b, "The highest single station is %s at AQI %d (%s). ", label_of(st[0]),
                   aqi_of(st[0]), json_string_value(json_object_get(st[0], "category")));
        add_source(sources, st[0], "station");
        if ((int)json_integer_value(json_object_get(st[0], "level")) > worst_cat)
          worst_cat = (int)json_integer_value(json_object_get(st[0], "level"));
      }
      if (best && !worst && worst_cat < 0 && json_is_integer(lv))
        worst_cat = (int)json_integer_value(lv);
    }
  }
  if (worst_cat >= 0 && (health || worst_cat >= 2 || !named))
    buf_printf(&b, "%s", advice[worst_cat]);
  free(ranked);
  size_t len = b.len;
  while (len && b.data[len - 1] == ' ')
    len--;
  json_t *out = json_pack("{s:s%,s:b,s:n,s:o}", "answer", b.data ? b.data : "", len, "grounded", 1,
                          "model", "sources", sources);
  buf_release(&b);
  return out;
}

static void handle_ask(struct http_req *r) {
  struct flow *f = r->app;
  if (!gate_require(f->ctx.gate, r, GATE_READ, NULL))
    return;
  json_t *body = http_req_json(r);
  if (!body)
    return;
  const char *q = json_string_value(json_object_get(body, "question"));
  if (!q || !*q || strlen(q) > MAX_QUESTION) {
    json_decref(body);
    http_reply_error(r, 400, "INVALID_QUESTION", "give {\"question\": \"…\"} of 1 to 1000 bytes",
                     NULL);
    return;
  }
  json_t *stations = flow_engine_stations_json(f->engine, NULL);
  json_t *regions = flow_engine_regions_json(f->engine, NULL);
  json_t *a = answer(q, stations, regions);
  json_object_set_new(a, "question", json_string(q));
  json_object_set_new(a, "snapshot_time", json_integer((json_int_t)clock_wall_ms() * 1000000));
  json_decref(stations);
  json_decref(regions);
  json_decref(body);
  http_reply_data(r, 200, a, NULL);
}

int flow_ask_routes(struct flow *f) {
  return router_add(f->ctx.router, "POST", "/api/v1/flow/ask", handle_ask, f);
}
