/* ingest.c — station readings in. Flow is a consumer of telemetry's
 * write path (telemetry/telemetry.h): of every write — line protocol to
 * POST /api/v1/write or InfluxDB's paths, JSON readings to POST
 * /api/v1/flow/readings (handed to telemetry_write) — it takes the lines
 * with a `station` tag. Each pollutant field of such a line is stored in
 * its station's one series (flow_station_key), and once the write is
 * durable, before it is acknowledged, its readings go into the AQI
 * windows; the late and ahead counts go back to the writer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "apps/flow/flow.h"
#include "core/error.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/util.h"
#include "net/http.h"

#define MAX_INFLATED (64u * 1024 * 1024)
#define MAX_REPORTED 20 /* failed readings listed in an answer */
/* as telemetry refuses them (InfluxDB: "points beyond retention policy") */
#define PAST_RETENTION "point is older than the raw retention (--series-retention): it would not be kept"

bool flow_name_valid(const char *s, size_t n) {
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_' || c == '.' || c == '~'))
      return false;
  }
  return true;
}

int flow_station_key(struct buf *key, const char *station, size_t n, enum flow_species sp) {
  if (!flow_name_valid(station, n))
    return GROVE_EINVAL;
  /* telemetry_key_encode's bytes, written directly (every write of a
   * station reading makes one): a valid id and a pollutant's name hold
   * nothing a key escapes */
  buf_reset(key);
  int rc;
  if ((rc = buf_append(key, "air_quality,station=", 20)) || (rc = buf_append(key, station, n)) ||
      (rc = buf_putc(key, ' ')) || (rc = buf_puts(key, flow_species_name(sp))))
    return rc;
  return 0;
}

/* ---- the consumer ------------------------------------------------------------------ */

static const struct telemetry_str *reading_of(const struct telemetry_point *p, int *species,
                                              const struct telemetry_str **region) {
  const struct telemetry_str *st = telemetry_tag_get(p->tags, p->ntags, "station");
  *region = telemetry_tag_get(p->tags, p->ntags, "region");
  if (!st || !flow_name_valid(st->p, st->n) ||
      (*region && !flow_name_valid((*region)->p, (*region)->n)) ||
      (*species = flow_species_of(p->field.p, p->field.n)) < 0)
    return NULL; /* stored, but not a station reading the AQI can use */
  return st;
}

/* A station's pollutant goes to its one series, whatever else the line
 * says: its history reads as one (flow_station_key). */
static int station_series_key(const struct telemetry_point *p, struct buf *key, void *arg) {
  (void)arg;
  int species;
  const struct telemetry_str *region, *st = reading_of(p, &species, &region);
  if (!st)
    return 0;
  int rc = flow_station_key(key, st->p, st->n, (enum flow_species)species);
  return rc ? rc : 1;
}

/* The readings of one write, durable already: into the windows. Points
 * of one line share its tags (the same pointer): its station is read
 * once a line. */
static void on_readings(const struct telemetry_point *pts, size_t n, struct telemetry_verdict *v,
                        void *arg) {
  struct flow *f = arg;
  if (!(f->ctx.roles & ROLE_STREAM)) /* windows run beside the writes */
    return;
  struct flow_reading *r = malloc(n * sizeof *r);
  if (!r) {
    log_error(NULL, "cannot take readings into the windows", "readings=%zu error=\"%s\"", n,
              grove_strerror(GROVE_ENOMEM));
    return; /* the points are stored; only the live view misses them */
  }
  size_t nr = 0;
  const struct telemetry_tag *line = NULL;
  const struct telemetry_str *st = NULL, *region = NULL;
  for (size_t i = 0; i < n; i++) {
    const struct telemetry_point *p = &pts[i];
    if (p->tags != line || !line) { /* a new line: its station and region */
      line = p->tags;
      st = telemetry_tag_get(p->tags, p->ntags, "station");
      region = telemetry_tag_get(p->tags, p->ntags, "region");
      if (!st || !flow_name_valid(st->p, st->n) || (region && !flow_name_valid(region->p, region->n)))
        st = NULL; /* stored, but not a station reading the AQI can use */
    }
    int species = st ? flow_species_of(p->field.p, p->field.n) : -1;
    if (species >= 0) /* the strings of a batch are NUL-ended */
      r[nr++] = (struct flow_reading){st->p, region ? region->p : NULL,
                                      (enum flow_species)species, p->ts_ns, p->value, p->series};
  }
  if (nr) {
    v->late = flow_engine_add(f->engine, r, nr, &v->ahead);
    if (v->late)
      metric_add(f->late, (double)v->late);
    if (v->ahead)
      metric_add(f->ahead, (double)v->ahead);
  }
  free(r);
}

int flow_consume(struct flow *f) {
  struct telemetry_consumer c = {
      .name = "flow",
      .tag = "station",
      .series_key = station_series_key,
      .batch = on_readings,
      .arg = f,
  };
  return telemetry_consume(f->telemetry, &c);
}


/* ---- POST /api/v1/flow/readings ------------------------------------------------------
 * {"readings":[{"station":"st-1","region":"north","time":"2026-11-23T10:00:00Z",
 *               "pm25":12.4,"no2":18}, …]}
 * `time` is RFC 3339 or Unix seconds (absent: now); pollutants are numbers;
 * `region` is used when the station is first seen. Points go to the series
 * "air_quality,station=ID pollutant". */

#define MAX_READINGS 100000
#define TIME_OUT_OF_RANGE "time is outside 1677-09-21T00:12:43.145224194Z..2262-04-11T23:47:16.854775806Z"

struct readings_job {
  struct flow *f;
  char *body;              /* owned: a copy of the request body */
  size_t len;
  int64_t oldest;          /* points before this are past raw retention: refused */
  json_t *failed;          /* what was refused, as the answer lists it */
  /* the readings as lines for telemetry_write: one per reading, its tags
   * (station, region) and fields (pollutants); strings point into the
   * parsed document */
  struct telemetry_line *lines;
  struct telemetry_tag *tags;
  struct telemetry_field *fields;
  size_t nlines;
  size_t *index;           /* the reading each line is */
  struct telemetry_result res;
  int rc;
  int status;
  char code[32], message[200];
  size_t nreadings, nfailed;
};

static void readings_job_free(struct readings_job *j) {
  json_decref(j->failed);
  free(j->body);
  free(j->lines);
  free(j->tags);
  free(j->fields);
  free(j->index);
  free(j);
}

static void reading_failed(struct readings_job *j, size_t index, const char *why) {
  j->nfailed++;
  if (json_array_size(j->failed) < MAX_REPORTED)
    json_array_append_new(j->failed, json_pack("{s:I,s:s}", "index", (json_int_t)index, "error",
                                               why));
}

static void line_refused(size_t line, const char *why, void *arg) {
  struct readings_job *j = arg;
  reading_failed(j, j->index[line], why);
}

/* One reading: checked whole, then one line of "air_quality" with its
 * station (and region) tags and a field per pollutant. */
static void add_reading(struct readings_job *j, size_t index, json_t *o, int64_t now_ns) {
  if (!json_is_object(o)) {
    reading_failed(j, index, "a reading must be an object");
    return;
  }
  const char *station = json_string_value(json_object_get(o, "station"));
  json_t *rg = json_object_get(o, "region");
  const char *region = json_string_value(rg);
  if (!station || !flow_name_valid(station, strlen(station))) {
    reading_failed(j, index, "station must be 1-64 of A-Z a-z 0-9 . _ ~ -");
    return;
  }
  if (rg && (!region || !flow_name_valid(region, strlen(region)))) {
    reading_failed(j, index, "region must be 1-64 of A-Z a-z 0-9 . _ ~ -");
    return;
  }
  int64_t ts = now_ns;
  json_t *t = json_object_get(o, "time");
  if (json_is_string(t)) {
    int rc = time_parse_rfc3339(json_string_value(t), &ts);
    if (rc) {
      reading_failed(j, index, rc == GROVE_ERANGE ? TIME_OUT_OF_RANGE
                                                  : "time must be RFC 3339 (2026-11-23T10:00:00Z) or Unix seconds");
      return;
    }
  } else if (json_is_number(t)) {
    /* below 2^63 (as a double) the rounding cannot overflow; then InfluxDB's range */
    double ns = json_number_value(t) * 1e9;
    if (!(fabs(ns) < 9223372036854775807.0) || !time_valid(ts = (int64_t)llround(ns))) {
      reading_failed(j, index, TIME_OUT_OF_RANGE);
      return;
    }
  } else if (t && !json_is_null(t)) {
    reading_failed(j, index, "time must be RFC 3339 (2026-11-23T10:00:00Z) or Unix seconds");
    return;
  }
  if (ts < j->oldest) {
    reading_failed(j, index, PAST_RETENTION);
    return;
  }
  double v[SP_COUNT];
  bool have[SP_COUNT] = {false};
  int nvalues = 0;
  const char *k;
  json_t *x;
  json_object_foreach(o, k, x) {
    int sp = flow_species_of(k, strlen(k));
    if (sp < 0)
      continue;
    if (json_is_null(x))
      continue;
    if (!json_is_number(x) || !isfinite(json_number_value(x))) {
      char why[80];
      snprintf(why, sizeof why, "%s must be a number", k);
      reading_failed(j, index, why);
      return;
    }
    v[sp] = json_number_value(x);
    have[sp] = true;
    nvalues++;
  }
  if (!nvalues) {
    reading_failed(j, index, "no pollutant: give one of pm25, pm10, o3, no2, co, so2");
    return;
  }
  size_t at = j->nlines++;
  struct telemetry_tag *tags = &j->tags[2 * at];
  struct telemetry_field *fields = &j->fields[SP_COUNT * at];
  int ntags = 0, nfields = 0;
  tags[ntags++] = (struct telemetry_tag){{"station", 7}, {station, strlen(station)}};
  if (region)
    tags[ntags++] = (struct telemetry_tag){{"region", 6}, {region, strlen(region)}};
  for (int sp = 0; sp < SP_COUNT; sp++)
    if (have[sp]) {
      const char *name = flow_species_name((enum flow_species)sp);
      fields[nfields++] = (struct telemetry_field){{name, strlen(name)}, v[sp]};
    }
  j->lines[at] = (struct telemetry_line){{"air_quality", 11}, tags, ntags, fields, nfields, ts};
  j->index[at] = index;
}

static void readings_work(void *arg) {
  struct readings_job *j = arg;
  json_error_t jerr;
  json_t *doc = json_loadb(j->body, j->len, JSON_REJECT_DUPLICATES, &jerr);
  json_t *list = json_object_get(doc, "readings");
  if (!doc || !json_is_array(list)) {
    j->status = 400;
    snprintf(j->code, sizeof j->code, "INVALID_JSON");
    if (!doc)
      snprintf(j->message, sizeof j->message, "the body is not JSON: %s (line %d)", jerr.text,
               jerr.line);
    else
      snprintf(j->message, sizeof j->message, "give {\"readings\": [ … ]}");
    json_decref(doc);
    return;
  }
  j->nreadings = json_array_size(list);
  if (j->nreadings > MAX_READINGS) {
    j->status = 413;
    snprintf(j->code, sizeof j->code, "TOO_MANY_READINGS");
    snprintf(j->message, sizeof j->message, "at most %d readings a request", MAX_READINGS);
    json_decref(doc);
    return;
  }
  size_t n = j->nreadings ? j->nreadings : 1;
  j->lines = malloc(n * sizeof *j->lines);
  j->tags = malloc(2 * n * sizeof *j->tags);
  j->fields = malloc(SP_COUNT * n * sizeof *j->fields);
  j->index = malloc(n * sizeof *j->index);
  if (!j->lines || !j->tags || !j->fields || !j->index) {
    j->rc = GROVE_ENOMEM;
    json_decref(doc);
    return;
  }
  int64_t now = (int64_t)clock_wall_ms() * 1000000;
  j->oldest = telemetry_oldest_kept(j->f->telemetry);
  size_t i;
  json_t *o;
  json_array_foreach(list, i, o) add_reading(j, i, o, now);
  if (j->nlines)
    j->rc = telemetry_write(j->f->telemetry, j->lines, j->nlines, line_refused, j, &j->res);
  json_decref(doc); /* the lines' strings were in it */
}

static void readings_done(struct http_req *r, void *arg) {
  struct readings_job *j = arg;
  if (!r->conn) {
    /* the client left; what was written stays written */
  } else if (j->status) {
    http_reply_error(r, j->status, j->code, j->message, NULL);
  } else if (j->rc) {
    log_error(r->id, "cannot write readings", "error=\"%s\"", grove_strerror(j->rc));
    http_reply_error(r, 503, "STORE_UNAVAILABLE", "readings were not written; retry", NULL);
  } else if (j->nfailed) {
    telemetry_reply_partial(r, "readings", j->nreadings, j->nfailed, &j->res, j->failed);
  } else {
    http_reply_data(r, 200,
                    json_pack("{s:I,s:I,s:I,s:I}", "readings", (json_int_t)j->nreadings,
                              "points_written", (json_int_t)j->res.points, "late",
                              (json_int_t)j->res.verdict.late, "ahead",
                              (json_int_t)j->res.verdict.ahead),
                    NULL);
  }
  readings_job_free(j);
}

void flow_handle_readings(struct http_req *r) {
  struct flow *f = r->app;
  const char *ct = http_header_get(r, "content-type");
  if (ct && strncasecmp(ct, "application/json", 16) != 0) {
    http_reply_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", "send application/json", NULL);
    return;
  }
  if (!http_req_body(r, MAX_INFLATED))
    return;
  struct readings_job *j = calloc(1, sizeof *j);
  if (j) {
    j->f = f;
    j->body = malloc(r->body_len + 1);
    j->failed = json_array();
  }
  if (!j || !j->body || !j->failed) {
    if (j)
      readings_job_free(j);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  memcpy(j->body, r->body, r->body_len);
  j->len = r->body_len;
  if (http_req_defer(r, HTTP_POOL_STORE, readings_work, readings_done, j))
    readings_job_free(j);
}
