/* ask.c — POST /api/v1/flow/ask: a question about the air now, answered
 * from the latest snapshot only (seed 000's "hybrid context": the live
 * state, never old documents). Without a model the answer is built from
 * the data: the stations and regions the question names (or the city when
 * it names none), the pollutant it asks about, who is worst or best, and
 * the EPA's advice for the category — each figure with the window it
 * comes from, listed in `sources`. With a model (--llm-url), the same
 * snapshot — the regions, the stations named and the worst twenty — is
 * the model's only context, and its answer is returned, or streamed on the
 * live topic flow/answers/{id} when the request says "stream": true; the
 * grounded answer stands in when the model cannot be reached. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/flow/flow.h"
#include "core/buf.h"
#include "core/jsonout.h"
#include "core/util.h"

#include "core/error.h"
#include "core/log.h"
#include "gate/gate.h"
#include "hub/hub.h"
#include "llm/llm.h"
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
  if (json_is_true(json_object_get(e, "stale")))
    buf_puts(b, ", stale: no reading has come lately");
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

/* ---- with a model ---------------------------------------------------------------------- */

#define CONTEXT_STATIONS 20    /* the worst stations the model is shown */

static const char system_prompt[] =
    "You answer questions about the air quality right now. Use only the JSON snapshot in the "
    "user's message: regions and stations with their US EPA AQI, category, dominant pollutant, "
    "the end of the 10-minute window it is from (Unix ns) and pollutant means (PM in ug/m3, O3 "
    "and CO in ppm, NO2 and SO2 in ppb). Name the stations or regions and the AQI you rely on. "
    "If the snapshot does not hold the answer, say so. Give health advice in the EPA's terms. "
    "Be brief.";

/* An entity as the model sees it: the figures, nothing else. */
static json_t *brief(json_t *e) {
  json_t *o = json_object();
  static const char *const keep[] = {"id", "name", "region", "aqi", "category", "dominant",
                                     "stations"};
  for (size_t i = 0; i < ARRAY_LEN(keep); i++) {
    json_t *v = json_object_get(e, keep[i]);
    if (v && !json_is_null(v))
      json_object_set(o, keep[i], v);
  }
  /* only when they say something: a stale figure is an old one */
  if (json_is_true(json_object_get(e, "stale")))
    json_object_set_new(o, "stale", json_true());
  json_t *ss = json_object_get(e, "stale_stations");
  if (json_integer_value(ss) > 0)
    json_object_set(o, "stale_stations", ss);
  json_t *w = json_object_get(json_object_get(e, "window"), "end");
  if (w)
    json_object_set(o, "window_end", w);
  json_t *means = json_object();
  const char *k;
  json_t *p;
  json_object_foreach(json_object_get(e, "pollutants"), k, p) {
    json_t *m = json_object_get(p, "mean");
    if (json_is_number(m))
      json_object_set(means, k, m);
  }
  json_object_set_new(o, "means", means);
  return o;
}

/* The model's context: every region, the stations the question names and
 * the worst CONTEXT_STATIONS. */
static char *context_of(json_t *stations, json_t *regions, json_t *sources) {
  json_t *ctx = json_object(), *rs = json_array(), *ss = json_array();
  size_t i, n = json_array_size(stations);
  json_t *e;
  json_array_foreach(regions, i, e) json_array_append_new(rs, brief(e));
  json_t **sorted = malloc((n ? n : 1) * sizeof *sorted);
  size_t ns = 0;
  json_array_foreach(stations, i, e) if (sorted) sorted[ns++] = e;
  if (sorted)
    qsort(sorted, ns, sizeof *sorted, cmp_aqi_desc);
  for (i = 0; sorted && i < ns; i++) {
    bool named = false;
    size_t j;
    json_t *src;
    json_array_foreach(sources, j, src) named |= json_equal(json_object_get(src, "id"), json_object_get(sorted[i], "id"));
    if (named || (i < CONTEXT_STATIONS && aqi_of(sorted[i]) >= 0))
      json_array_append_new(ss, brief(sorted[i]));
  }
  free(sorted);
  json_object_set_new(ctx, "time", json_integer((json_int_t)clock_wall_ms() * 1000000));
  json_object_set_new(ctx, "regions", rs);
  json_object_set_new(ctx, "stations", ss);
  json_object_set_new(ctx, "stations_in_all", json_integer((json_int_t)n));
  char *text = jsonout_dumps(ctx, JSON_COMPACT);
  json_decref(ctx);
  return text;
}

struct ask_job {
  struct flow *f;
  char *question, *context;
  json_t *grounded;      /* the answer from the data, and its sources */
  bool stream;
  char id[33], topic[64];
  struct buf answer, pending;
  uint64_t last_pub_ms;
  int rc;
  char err[256];
};

static void ask_job_free(struct ask_job *j) {
  free(j->question);
  free(j->context);
  json_decref(j->grounded);
  buf_release(&j->answer);
  buf_release(&j->pending);
  free(j);
}

static void publish_piece(struct ask_job *j, json_t *msg) {
  char *text = jsonout_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  if (text && j->f->ctx.hub)
    hub_publish(j->f->ctx.hub, j->topic, text, strlen(text), NULL);
  free(text);
}

/* Model text as it comes: kept, and on the topic every 100 ms at most. */
static int on_delta(const char *text, size_t len, void *arg) {
  struct ask_job *j = arg;
  buf_append(&j->answer, text, len);
  if (!j->stream)
    return 0;
  buf_append(&j->pending, text, len);
  uint64_t now = clock_mono_ns() / 1000000;
  if (now - j->last_pub_ms >= 100) {
    publish_piece(j, json_pack("{s:s,s:s%}", "type", "delta", "text", j->pending.data,
                               j->pending.len));
    buf_reset(&j->pending);
    j->last_pub_ms = now;
  }
  return 0;
}

static void ask_model(void *arg) {
  struct ask_job *j = arg;
  struct buf u;
  buf_init(&u, 0);
  buf_printf(&u, "Snapshot: %s\n\nQuestion: %s", j->context, j->question);
  j->rc = llm_chat(j->f->ctx.llm, system_prompt, u.data, on_delta, j, j->err, sizeof j->err);
  buf_release(&u);
  if (j->rc)
    log_warn(NULL, "model did not answer; the answer from the data stands in", "error=\"%s\"",
             j->err);
}

/* The reply: the model's answer, or the grounded one when it failed. */
static json_t *ask_result(struct ask_job *j) {
  json_t *out = json_deep_copy(j->grounded);
  if (!j->rc) {
    json_object_set_new(out, "answer", json_stringn(j->answer.data ? j->answer.data : "", j->answer.len));
    json_object_set_new(out, "grounded", json_false());
    json_object_set_new(out, "model", json_string(j->f->ctx.llm->model));
  } else {
    json_object_set_new(out, "model_error", json_string(j->err));
  }
  return out;
}

static void ask_done(struct http_req *r, void *arg) {
  struct ask_job *j = arg;
  if (r->conn)
    http_reply_data(r, 200, ask_result(j), NULL);
  ask_job_free(j);
}

/* A streamed answer, on the wait pool after its request was answered 202;
 * the server waits for it before the apps stop. */
static void ask_stream(void *arg) {
  struct ask_job *j = arg;
  ask_model(j);
  if (j->pending.len)
    publish_piece(j, json_pack("{s:s,s:s%}", "type", "delta", "text", j->pending.data,
                               j->pending.len));
  json_t *done = ask_result(j);
  json_object_set_new(done, "type", json_string("done"));
  publish_piece(j, done);
  ask_job_free(j);
}

void flow_handle_ask(struct http_req *r) {
  struct flow *f = r->app;
  json_t *body = http_req_json(r);
  if (!body)
    return;
  const char *q = json_string_value(json_object_get(body, "question"));
  json_t *stream = json_object_get(body, "stream");
  if (!q || !*q || strlen(q) > MAX_QUESTION || (stream && !json_is_boolean(stream))) {
    json_decref(body);
    http_reply_error(r, 400, "INVALID_QUESTION",
                     "give {\"question\": \"…\"} of 1 to 1000 bytes (and \"stream\": true or false)",
                     NULL);
    return;
  }
  json_t *stations = flow_engine_stations_json(f->engine, NULL);
  json_t *regions = flow_engine_regions_json(f->engine, NULL);
  json_t *a = answer(q, stations, regions);
  json_object_set_new(a, "question", json_string(q));
  json_object_set_new(a, "snapshot_time", json_integer((json_int_t)clock_wall_ms() * 1000000));
  struct ask_job *j = NULL;
  if (llm_enabled(f->ctx.llm) && (j = calloc(1, sizeof *j))) {
    j->f = f;
    j->question = strdup(q);
    j->context = context_of(stations, regions, json_object_get(a, "sources"));
    j->grounded = json_incref(a);
    j->stream = json_is_true(stream);
    buf_init(&j->answer, 0);
    buf_init(&j->pending, 0);
  }
  json_decref(stations);
  json_decref(regions);
  json_decref(body);
  if (!j) { /* no model: the answer from the data */
    http_reply_data(r, 200, a, NULL);
    return;
  }
  json_decref(a);
  if (!j->question || !j->context) {
    ask_job_free(j);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  if (!j->stream) {
    if (http_req_defer(r, HTTP_POOL_WAIT, ask_model, ask_done, j))
      ask_job_free(j);
    return;
  }
  id_hex(j->id, sizeof j->id);
  snprintf(j->topic, sizeof j->topic, "flow/answers/%s", j->id);
  json_t *accepted = json_pack("{s:s,s:s}", "id", j->id, "topic", j->topic); /* j is the pool's */
  if (http_req_spawn(r, HTTP_POOL_WAIT, ask_stream, j)) {
    ask_job_free(j);
    json_decref(accepted);
    return;
  }
  http_reply_data(r, 202, accepted, NULL);
}
