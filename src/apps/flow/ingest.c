/* ingest.c — points in. Sensors and collectors write InfluxDB line
 * protocol to POST /api/v1/write (Telegraf works unchanged), or JSON
 * readings to POST /api/v1/flow/readings. Each numeric field becomes a
 * point of the series "measurement,tags field"; the answer comes once the
 * points are durable, and then the station readings among them (a
 * `station` tag and a pollutant field) go into the AQI windows. */
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
#include "gate/gate.h"
#include "net/http.h"
#include "series/key.h"
#include "series/lineproto.h"

#define MAX_INFLATED (64u * 1024 * 1024)
#define MAX_REPORTED 20 /* failed lines listed in an answer */
/* InfluxDB refuses such points ("points beyond retention policy dropped=N")
 * rather than acknowledge what the next flush would drop. */
#define PAST_RETENTION "point is older than the raw retention (--series-retention): it would not be kept"
#define MAX_POINTS_READ 100000

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
  const char *field = flow_species_name(sp);
  struct series_key sk = {.measurement = {"air_quality", 11},
                          .field = {field, strlen(field)},
                          .ntags = 1,
                          .tag_keys = {{"station", 7}},
                          .tag_values = {{station, n}}};
  return series_key_encode(key, &sk);
}

/* ---- a batch of points on its way in ---------------------------------------- */

/* A point that is also a station reading; strings are offsets in `names`
 * (which may move while it grows). */
struct pending_reading {
  uint32_t point;
  uint32_t station, region; /* UINT32_MAX: no region tag */
  uint8_t species;
};

struct batch {
  struct flow *f;
  int64_t oldest;          /* points before this are past raw retention: refused */
  char *body;              /* owned: a copy of the (decoded) request body */
  size_t len;
  json_t *failed;          /* what was refused, as the answer lists it */
  struct series_point *pts;
  size_t npts, cap;
  /* points whose series this process has not seen: their keys, NUL-ended,
   * and which point each is for (batch_resolve finds their ids) */
  struct buf keys;
  size_t *key_at, *key_point;
  size_t nkeys, capkeys;
  struct pending_reading *rd;
  size_t nrd, caprd;
  struct buf names;
  uint32_t last_station, last_region;
  size_t late;             /* readings stored but older than their windows' watermark */
  size_t ahead;            /* readings ahead of the server's clock (flow_engine_add) */
};

static void batch_init(struct batch *b) {
  memset(b, 0, sizeof *b);
  buf_init(&b->names, 0);
  buf_init(&b->keys, 0);
  b->last_station = b->last_region = UINT32_MAX;
}

static void batch_release(struct batch *b) {
  json_decref(b->failed);
  free(b->body);
  free(b->pts);
  free(b->key_at);
  free(b->key_point);
  buf_release(&b->keys);
  free(b->rd);
  buf_release(&b->names);
}

/* A request's job, whose first member is its batch: the body copied, the
 * list of failures made. NULL after answering 503. */
static void *batch_job_new(struct http_req *r, struct flow *f, size_t size) {
  struct batch *b = calloc(1, size);
  if (b) {
    batch_init(b);
    b->f = f;
    b->body = malloc(r->body_len + 1);
    b->failed = json_array();
  }
  if (!b || !b->body || !b->failed) {
    if (b)
      batch_release(b);
    free(b);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return NULL;
  }
  memcpy(b->body, r->body, r->body_len);
  b->len = r->body_len;
  return b;
}

#define KEY_MAX SERIES_KEY_MAX

/* A point of the series `key`. A series this process knows gets its id
 * now; the others are found for the whole batch at once (batch_resolve).
 * Returns 0, 1 for a key too long (not kept), or GROVE_ENOMEM. */
static int batch_point(struct batch *b, const char *key, size_t len, int64_t ts, double v) {
  if (len == 0 || len > KEY_MAX)
    return 1;
  if (b->npts == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    struct series_point *np = realloc(b->pts, cap * sizeof *np);
    if (!np)
      return GROVE_ENOMEM;
    b->pts = np;
    b->cap = cap;
  }
  uint32_t id = 0;
  if (series_cached(b->f->series, key, &id)) {
    if (b->nkeys == b->capkeys) {
      size_t cap = b->capkeys ? b->capkeys * 2 : 256;
      size_t *ka = realloc(b->key_at, cap * sizeof *ka);
      if (ka)
        b->key_at = ka;
      size_t *kp = ka ? realloc(b->key_point, cap * sizeof *kp) : NULL;
      if (!kp)
        return GROVE_ENOMEM;
      b->key_point = kp;
      b->capkeys = cap;
    }
    b->key_at[b->nkeys] = b->keys.len;
    b->key_point[b->nkeys++] = b->npts;
    if (buf_append(&b->keys, key, len) || buf_putc(&b->keys, '\0'))
      return GROVE_ENOMEM;
  }
  b->pts[b->npts++] = (struct series_point){id, ts, v};
  return 0;
}

/* The ids of the series new to this process, in one call (one round trip
 * to PostgreSQL). */
static int batch_resolve(struct batch *b) {
  if (!b->nkeys)
    return 0;
  const char **keys = malloc(b->nkeys * sizeof *keys);
  uint32_t *ids = malloc(b->nkeys * sizeof *ids);
  int rc = keys && ids ? 0 : GROVE_ENOMEM;
  for (size_t i = 0; !rc && i < b->nkeys; i++)
    keys[i] = b->keys.data + b->key_at[i];
  if (!rc)
    rc = series_ids(b->f->series, keys, b->nkeys, ids);
  for (size_t i = 0; !rc && i < b->nkeys; i++)
    b->pts[b->key_point[i]].id = ids[i];
  free(keys);
  free(ids);
  return rc;
}

/* A name in the arena, reusing the previous one when it is the same. */
static uint32_t batch_name(struct batch *b, uint32_t *last, const char *s, size_t n) {
  if (*last != UINT32_MAX && strlen(b->names.data + *last) == n &&
      memcmp(b->names.data + *last, s, n) == 0)
    return *last;
  uint32_t at = (uint32_t)b->names.len;
  if (buf_append(&b->names, s, n) || buf_putc(&b->names, '\0'))
    return UINT32_MAX;
  *last = at;
  return at;
}

/* Marks the batch's last point as a reading of station/region. */
static int batch_reading(struct batch *b, int species, const char *st, size_t stn,
                         const char *rg, size_t rgn) {
  if (species < 0 || !flow_name_valid(st, stn) || (rg && !flow_name_valid(rg, rgn)))
    return 0; /* stored, but not a station reading the AQI can use */
  if (b->nrd == b->caprd) {
    size_t cap = b->caprd ? b->caprd * 2 : 1024;
    struct pending_reading *n = realloc(b->rd, cap * sizeof *n);
    if (!n)
      return GROVE_ENOMEM;
    b->rd = n;
    b->caprd = cap;
  }
  uint32_t so = batch_name(b, &b->last_station, st, stn);
  uint32_t ro = rg ? batch_name(b, &b->last_region, rg, rgn) : UINT32_MAX;
  if (so == UINT32_MAX || (rg && ro == UINT32_MAX))
    return GROVE_ENOMEM;
  b->rd[b->nrd++] = (struct pending_reading){(uint32_t)(b->npts - 1), so, ro, (uint8_t)species};
  return 0;
}

/* Writes the batch durably, then feeds its readings to the windows. */
static int batch_commit(struct batch *b) {
  struct flow *f = b->f;
  if (!b->npts)
    return 0;
  int rc = batch_resolve(b);
  if (!rc)
    rc = series_append_sync(f->series, b->pts, b->npts);
  if (rc || !b->nrd || !(f->ctx.roles & ROLE_STREAM)) /* windows run beside the writes */
    return rc;
  struct flow_reading *r = malloc(b->nrd * sizeof *r);
  if (!r)
    return 0; /* the points are stored; only the live view misses them */
  for (size_t i = 0; i < b->nrd; i++) {
    const struct pending_reading *p = &b->rd[i];
    const struct series_point *pt = &b->pts[p->point];
    r[i] = (struct flow_reading){b->names.data + p->station,
                                 p->region == UINT32_MAX ? NULL : b->names.data + p->region,
                                 (enum flow_species)p->species, pt->ts_ns, pt->value, pt->id};
  }
  size_t late = flow_engine_add(f->engine, r, b->nrd, &b->ahead);
  b->late = late;
  if (late)
    metric_add(f->late, (double)late);
  if (b->ahead)
    metric_add(f->ahead, (double)b->ahead);
  free(r);
  return 0;
}

/* ---- POST /api/v1/write ------------------------------------------------- */

struct write_job {
  struct batch batch;  /* first: batch_job_new makes both */
  enum lp_precision prec;
  enum flow_write_api api;
  char first_failed[200]; /* InfluxDB's "unable to parse '…': why" of the first,
                           * cut at a character; fits in write_done's msg */
  int rc;
  int status;
  const char *code;
  char message[160];
  struct lp_stats stats;
  struct buf key;      /* scratch for series keys */
  struct buf station_key; /* scratch for a station reading's key */
  struct buf line_keys; /* the keys of a line's fields, NUL-ended */
  struct map pending;   /* key -> type this request gives series that had none */
  int skipped;         /* string fields: not numeric series */
  int refused;         /* lines parsed but not kept (on_point) */
};

/* A line refused after parsing (its points taken back): listed and
 * counted like a line the parser refused. */
static void on_error(int line, const char *text, size_t len, const char *why, void *arg);

struct mark {
  size_t npts, nkeys, keys_len, nrd;
};

static struct mark batch_mark(const struct batch *b) {
  return (struct mark){b->npts, b->nkeys, b->keys.len, b->nrd};
}

static void batch_undo(struct batch *b, struct mark m) {
  b->npts = m.npts;
  b->nkeys = m.nkeys;
  b->keys.len = m.keys_len;
  b->nrd = m.nrd;
}

/* How many of s's n bytes fit in max without cutting a character (s is
 * valid UTF-8: the parser checked it). */
static size_t utf8_cut(const char *s, size_t n, size_t max) {
  if (n <= max)
    return n;
  while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
    max--;
  return max;
}

/* Ends s (valid UTF-8 but maybe cut by snprintf) before a character the
 * cut left incomplete. */
static void utf8_trim(char *s) {
  size_t n = strlen(s);
  for (size_t i = 0, l; i < n; i += l)
    if (!(l = utf8_seq_len(s + i, n - i))) {
      s[i] = '\0';
      return;
    }
}

/* The field type a value is written as (series.h). */
static uint8_t type_of(enum lp_type t) {
  switch (t) {
  case LP_FLOAT: return SERIES_TYPE_FLOAT;
  case LP_INT: return SERIES_TYPE_INT;
  case LP_UINT: return SERIES_TYPE_UINT;
  case LP_BOOL: return SERIES_TYPE_BOOL;
  default: return SERIES_TYPE_STRING;
  }
}

/* The type key has for this request: recorded (the store), or given by
 * an earlier line of this request (pending); SERIES_TYPE_NONE otherwise. */
static uint8_t known_type(struct write_job *j, const char *key) {
  uint8_t t = (uint8_t)series_type_cached(j->batch.f->series, key);
  return t ? t : (uint8_t)(uintptr_t)map_get(&j->pending, key);
}

/* Each field of a line is a point of the series "measurement,tags field"
 * (series/key.h), and a station reading is a point of its station's
 * series (flow_station_key). A series keeps the type of its first field
 * (InfluxDB's "field type conflict"): station series excepted, whose
 * readings are all concentrations. String fields are not stored, but
 * their type is kept. A line is kept whole or not at all. */
static int on_point(const struct lp_point *p, void *arg) {
  struct write_job *j = arg;
  struct buf *key = &j->key, *lk = &j->line_keys;
  const struct lp_str *station = NULL, *region = NULL;
  for (int i = 0; i < p->ntags; i++) {
    const struct lp_str *k = &p->tag_keys[i];
    if (k->n == 7 && memcmp(k->p, "station", 7) == 0)
      station = &p->tag_values[i];
    else if (k->n == 6 && memcmp(k->p, "region", 6) == 0)
      region = &p->tag_values[i];
  }
  bool station_ok = station && flow_name_valid(station->p, station->n) &&
                    (!region || flow_name_valid(region->p, region->n));
  struct series_key sk;
  sk.measurement = p->measurement;
  sk.ntags = p->ntags;
  memcpy(sk.tag_keys, p->tag_keys, (size_t)p->ntags * sizeof *sk.tag_keys);
  memcpy(sk.tag_values, p->tag_values, (size_t)p->ntags * sizeof *sk.tag_values);
  const char *why = NULL;
  char conflict[300];
  buf_reset(lk);
  int rc = 0;
  size_t prefix = 0, numeric = 0, station_prefix = 0; /* 0: not made yet */
  /* first every field's key and type, checked before anything is kept:
   * keys NUL-ended one after another in line_keys */
  size_t at[LP_MAX_FIELDS];
  int species[LP_MAX_FIELDS];
  uint8_t had[LP_MAX_FIELDS]; /* the type each series has already (NONE: new) */
  for (int i = 0; i < p->nfields && !rc && !why; i++) {
    const struct lp_field *fl = &p->fields[i];
    uint8_t t = type_of(fl->type);
    species[i] = t != SERIES_TYPE_STRING && station_ok ? flow_species_of(fl->key.p, fl->key.n) : -1;
    numeric += t != SERIES_TYPE_STRING;
    at[i] = lk->len;
    if (species[i] >= 0) { /* the station's one series, whatever else the line says */
      const char *name = flow_species_name((enum flow_species)species[i]);
      struct buf *sk2 = &j->station_key;
      if (!station_prefix) { /* once a line: "air_quality,station=ID " */
        if ((rc = flow_station_key(sk2, station->p, station->n, (enum flow_species)species[i])))
          break;
        station_prefix = sk2->len - strlen(name);
      }
      sk2->len = station_prefix;
      if (!(rc = buf_puts(sk2, name)))
        rc = buf_append(lk, sk2->data, sk2->len + 1);
      continue;
    }
    if (!prefix) { /* once a line: "measurement,tags " */
      buf_reset(key);
      if ((rc = series_key_put_series(key, &sk)))
        break;
      prefix = key->len;
    }
    key->len = prefix;
    if ((rc = series_key_put_field(key, fl->key.p, fl->key.n)) ||
        (rc = buf_append(lk, key->data, key->len + 1)))
      break;
    uint8_t have = had[i] = known_type(j, key->data);
    if (have && have != t) {
      snprintf(conflict, sizeof conflict,
               "field type conflict: input field \"%.*s\" on measurement \"%.*s\" is type %s, "
               "already exists as type %s",
               (int)utf8_cut(fl->key.p, fl->key.n, 64), fl->key.p,
               (int)utf8_cut(p->measurement.p, p->measurement.n, 64), p->measurement.p,
               series_type_name((enum series_type)t), series_type_name((enum series_type)have));
      why = conflict;
    }
  }
  if (rc == GROVE_ETOOBIG || rc == GROVE_EINVAL) {
    why = rc == GROVE_ETOOBIG ? "series key is too long: measurement, tags and field over 4096 bytes"
                              : "invalid series key";
    rc = 0;
  }
  if (!rc && !why && !numeric)
    why = "no numeric field: string fields are not stored";
  if (!rc && !why && p->ts_ns < j->batch.oldest)
    why = PAST_RETENTION;
  /* then the points, and the types this line gives series that had none */
  struct mark m = batch_mark(&j->batch);
  for (int i = 0; i < p->nfields && !rc && !why; i++) {
    const struct lp_field *fl = &p->fields[i];
    const char *k = lk->data + at[i];
    size_t kn = strlen(k);
    uint8_t t = type_of(fl->type);
    if (species[i] < 0 && !had[i] && (rc = map_put(&j->pending, k, (void *)(uintptr_t)t, NULL)))
      break;
    if (t == SERIES_TYPE_STRING) {
      j->skipped++;
      continue;
    }
    double v = fl->type == LP_FLOAT  ? fl->v.f
               : fl->type == LP_INT  ? (double)fl->v.i
               : fl->type == LP_UINT ? (double)fl->v.u
                                     : (double)fl->v.b;
    if ((rc = batch_point(&j->batch, k, kn, p->ts_ns, v)) == 1) {
      why = "series key is too long: measurement, tags and field over 4096 bytes";
      rc = 0;
      break;
    }
    if (!rc && species[i] >= 0)
      rc = batch_reading(&j->batch, species[i], station->p, station->n, region ? region->p : NULL,
                         region ? region->n : 0);
  }
  if (why) {
    batch_undo(&j->batch, m);
    j->refused++;
    on_error(p->line, p->text, p->text_len, why, j);
  }
  return rc;
}

/* The first bytes of a line as a JSON string: cut at a character, bytes
 * that are not UTF-8 shown as U+FFFD (the answer must be valid JSON
 * whatever the line held). */
static json_t *line_text(const char *text, size_t len) {
  struct buf b;
  buf_init(&b, 0);
  for (size_t i = 0, n; i < len && b.len < 120; i += n) {
    n = utf8_seq_len(text + i, len - i);
    if (n ? buf_append(&b, text + i, n) : buf_append(&b, "\xef\xbf\xbd", 3))
      break;
    n = n ? n : 1;
  }
  json_t *s = json_stringn(b.data ? b.data : "", b.len);
  buf_release(&b);
  return s;
}

static void on_error(int line, const char *text, size_t len, const char *why, void *arg) {
  struct write_job *j = arg;
  if (!j->first_failed[0]) {
    json_t *t = line_text(text, len);
    snprintf(j->first_failed, sizeof j->first_failed, "unable to parse '%s': %s (line %d)",
             json_string_value(t) ? json_string_value(t) : "", why, line);
    json_decref(t);
    utf8_trim(j->first_failed);
  }
  if (json_array_size(j->batch.failed) >= MAX_REPORTED)
    return;
  json_t *e = json_pack("{s:i,s:s,s:o}", "line", line, "error", why, "text", line_text(text, len));
  if (!e) /* a reason that is not UTF-8 (cannot happen): the line is listed all the same */
    e = json_pack("{s:i,s:s,s:o}", "line", line, "error", "refused", "text", line_text(text, len));
  json_array_append_new(j->batch.failed, e);
}

/* Back to before the parse (to parse again). */
static void write_reset(struct write_job *j) {
  struct batch *b = &j->batch;
  b->npts = b->nkeys = b->nrd = 0;
  buf_reset(&b->keys);
  buf_reset(&b->names);
  b->last_station = b->last_region = UINT32_MAX;
  json_array_clear(b->failed);
  j->refused = j->skipped = 0;
  j->first_failed[0] = '\0';
  map_release(&j->pending);
  map_init(&j->pending);
}

/* Records the types this request gives new series. OUT: *raced when
 * another writer recorded a different type first. */
static int claim_types(struct write_job *j, bool *raced) {
  size_t n = j->pending.len, i = 0;
  *raced = false;
  if (!n)
    return 0;
  const char **keys = malloc(n * sizeof *keys);
  uint8_t *types = malloc(n), *got = malloc(n);
  int rc = keys && types && got ? 0 : GROVE_ENOMEM;
  const char *k;
  void *v;
  for (size_t it = 0; !rc && map_next(&j->pending, &it, &k, &v);) {
    keys[i] = k;
    types[i++] = (uint8_t)(uintptr_t)v;
  }
  if (!rc)
    rc = series_types_claim(j->batch.f->series, keys, types, n, got);
  for (size_t x = 0; !rc && x < n; x++)
    *raced |= got[x] != types[x];
  free(keys);
  free(types);
  free(got);
  return rc;
}

static void write_work(void *arg) {
  struct write_job *j = arg;
  buf_init(&j->key, 4096);
  buf_init(&j->station_key, 4096);
  buf_init(&j->line_keys, 0);
  map_init(&j->pending);
  /* a type another writer recorded first, between this parse and the
   * claim: parse again, knowing it, so its lines are refused whole */
  j->batch.oldest = series_oldest_kept(j->batch.f->series);
  for (int round = 0; round < 3; round++) {
    j->rc = lp_parse(j->batch.body, j->batch.len, j->prec, (int64_t)clock_wall_ms() * 1000000,
                     on_point, on_error, j, &j->stats);
    bool raced = false;
    if (!j->rc)
      j->rc = claim_types(j, &raced);
    if (j->rc || !raced)
      break;
    write_reset(j);
    j->rc = round == 2 ? GROVE_EBUSY : 0;
  }
  j->stats.points -= j->refused;
  j->stats.errors += j->refused;
  if (!j->rc)
    j->rc = batch_commit(&j->batch);
  buf_release(&j->key);
  buf_release(&j->station_key);
  buf_release(&j->line_keys);
  map_release(&j->pending);
}

static void write_done(struct http_req *r, void *arg) {
  struct write_job *j = arg;
  struct flow *f = j->batch.f;
  if (!j->rc) {
    metric_add(f->points_written, (double)j->batch.npts);
    metric_add(f->lines_failed, j->stats.errors);
  }
  if (!r->conn) {
    /* the client left; what was written stays written */
  } else if (j->rc) {
    log_error(r->id, "cannot write points", "error=\"%s\"", grove_strerror(j->rc));
    flow_reply_error(r, j->api, 503, "STORE_UNAVAILABLE", "points were not written; retry", NULL);
  } else if (j->stats.errors) {
    char msg[400];
    if (j->api == FLOW_WRITE_INFLUX) /* as InfluxDB says it: Telegraf looks for "partial write" */
      snprintf(msg, sizeof msg, "partial write: %s dropped=%d", j->first_failed, j->stats.errors);
    else
      snprintf(msg, sizeof msg, "partial write: %d of %d lines failed; the others were written",
               j->stats.errors, j->stats.lines);
    flow_reply_error(r, j->api, 400, "PARTIAL_WRITE", msg,
                     json_pack("{s:i,s:i,s:I,s:I,s:I,s:O}", "lines", j->stats.lines, "failed_lines",
                               j->stats.errors, "points_written", (json_int_t)j->batch.npts,
                               "late", (json_int_t)j->batch.late, "ahead", (json_int_t)j->batch.ahead,
                               "failed", j->batch.failed));
  } else {
    /* 204 has no body (InfluxDB clients expect it): the late count goes in
     * a header, and so does the count of readings too far ahead of the
     * server's clock (stored, not in the AQI) */
    char late[24], ahead[24];
    snprintf(late, sizeof late, "%zu", j->batch.late);
    http_res_header(r, "X-Grove-Late-Points", late);
    snprintf(ahead, sizeof ahead, "%zu", j->batch.ahead);
    http_res_header(r, "X-Grove-Ahead-Points", ahead);
    http_reply(r, 204, NULL, NULL, 0);
  }
  batch_release(&j->batch);
  free(j);
}

void flow_handle_write(struct http_req *r) {
  struct flow *f = r->app;
  char prec_s[32] = "";
  enum lp_precision prec;
  http_query_get(r, "precision", 0, prec_s, sizeof prec_s); /* absent: nanoseconds */
  if (lp_precision_parse(prec_s, &prec)) {
    http_reply_error(r, 400, "INVALID_PRECISION", "precision must be ns, us, ms, s, m or h", NULL);
    return;
  }
  flow_write_start(r, f, prec, FLOW_WRITE_GROVE);
}

void flow_write_start(struct http_req *r, struct flow *f, enum lp_precision prec,
                      enum flow_write_api api) {
  struct http_body_error err; /* Content-Encoding, answered in this API's format */
  if (http_req_decode(r, MAX_INFLATED, &err)) {
    flow_reply_error(r, api, err.status, err.code, err.message, NULL);
    return;
  }
  struct write_job *j = batch_job_new(r, f, sizeof *j);
  if (!j)
    return;
  j->prec = prec;
  j->api = api;
  if (http_req_defer(r, HTTP_POOL_STORE, write_work, write_done, j)) {
    batch_release(&j->batch);
    free(j);
  }
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
  struct batch batch;  /* first: batch_job_new makes both */
  int rc;
  int status;
  char code[32], message[200];
  size_t nreadings, nfailed;
};

static void reading_failed(struct readings_job *j, size_t index, const char *why) {
  j->nfailed++;
  if (json_array_size(j->batch.failed) < MAX_REPORTED)
    json_array_append_new(j->batch.failed, json_pack("{s:I,s:s}", "index", (json_int_t)index, "error",
                                               why));
}

/* One reading: checks it whole before any of its points is kept. */
static int add_reading(struct readings_job *j, size_t index, json_t *o, int64_t now_ns,
                       struct buf *key) {
  if (!json_is_object(o)) {
    reading_failed(j, index, "a reading must be an object");
    return 0;
  }
  const char *station = json_string_value(json_object_get(o, "station"));
  json_t *rg = json_object_get(o, "region");
  const char *region = json_string_value(rg);
  if (!station || !flow_name_valid(station, strlen(station))) {
    reading_failed(j, index, "station must be 1-64 of A-Z a-z 0-9 . _ ~ -");
    return 0;
  }
  if (rg && (!region || !flow_name_valid(region, strlen(region)))) {
    reading_failed(j, index, "region must be 1-64 of A-Z a-z 0-9 . _ ~ -");
    return 0;
  }
  int64_t ts = now_ns;
  json_t *t = json_object_get(o, "time");
  if (json_is_string(t)) {
    int rc = time_parse_rfc3339(json_string_value(t), &ts);
    if (rc) {
      reading_failed(j, index, rc == GROVE_ERANGE ? TIME_OUT_OF_RANGE
                                                  : "time must be RFC 3339 (2026-11-23T10:00:00Z) or Unix seconds");
      return 0;
    }
  } else if (json_is_number(t)) {
    /* below 2^63 (as a double) the rounding cannot overflow; then InfluxDB's range */
    double ns = json_number_value(t) * 1e9;
    if (!(fabs(ns) < 9223372036854775807.0) || !time_valid(ts = (int64_t)llround(ns))) {
      reading_failed(j, index, TIME_OUT_OF_RANGE);
      return 0;
    }
  } else if (t && !json_is_null(t)) {
    reading_failed(j, index, "time must be RFC 3339 (2026-11-23T10:00:00Z) or Unix seconds");
    return 0;
  }
  if (ts < j->batch.oldest) {
    reading_failed(j, index, PAST_RETENTION);
    return 0;
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
      return 0;
    }
    v[sp] = json_number_value(x);
    have[sp] = true;
    nvalues++;
  }
  if (!nvalues) {
    reading_failed(j, index, "no pollutant: give one of pm25, pm10, o3, no2, co, so2");
    return 0;
  }
  for (int sp = 0; sp < SP_COUNT; sp++) {
    if (!have[sp])
      continue;
    int rc = flow_station_key(key, station, strlen(station), (enum flow_species)sp);
    if (!rc)
      rc = batch_point(&j->batch, key->data, key->len, ts, v[sp]);
    if (!rc)
      rc = batch_reading(&j->batch, sp, station, strlen(station), region,
                         region ? strlen(region) : 0);
    if (rc)
      return rc;
  }
  return 0;
}

static void readings_work(void *arg) {
  struct readings_job *j = arg;
  json_error_t jerr;
  json_t *doc = json_loadb(j->batch.body, j->batch.len, JSON_REJECT_DUPLICATES, &jerr);
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
  int64_t now = (int64_t)clock_wall_ms() * 1000000;
  j->batch.oldest = series_oldest_kept(j->batch.f->series);
  struct buf key;
  buf_init(&key, 4096);
  size_t i;
  json_t *o;
  json_array_foreach(list, i, o) {
    if ((j->rc = add_reading(j, i, o, now, &key)))
      break;
  }
  buf_release(&key);
  json_decref(doc);
  if (!j->rc)
    j->rc = batch_commit(&j->batch);
}

static void readings_done(struct http_req *r, void *arg) {
  struct readings_job *j = arg;
  if (!j->status && !j->rc)
    metric_add(j->batch.f->points_written, (double)j->batch.npts);
  if (!r->conn) {
    /* the client left; what was written stays written */
  } else if (j->status) {
    http_reply_error(r, j->status, j->code, j->message, NULL);
  } else if (j->rc) {
    log_error(r->id, "cannot write readings", "error=\"%s\"", grove_strerror(j->rc));
    http_reply_error(r, 503, "STORE_UNAVAILABLE", "readings were not written; retry", NULL);
  } else if (j->nfailed) {
    char msg[160];
    snprintf(msg, sizeof msg, "partial write: %zu of %zu readings failed; the others were written",
             j->nfailed, j->nreadings);
    http_reply_error(r, 400, "PARTIAL_WRITE", msg,
                     json_pack("{s:I,s:I,s:I,s:I,s:I,s:O}", "readings", (json_int_t)j->nreadings,
                               "failed_readings", (json_int_t)j->nfailed, "points_written",
                               (json_int_t)j->batch.npts, "late", (json_int_t)j->batch.late,
                               "ahead", (json_int_t)j->batch.ahead,
                               "failed", j->batch.failed));
  } else {
    http_reply_data(r, 200,
                    json_pack("{s:I,s:I,s:I,s:I}", "readings", (json_int_t)j->nreadings,
                              "points_written", (json_int_t)j->batch.npts, "late",
                              (json_int_t)j->batch.late, "ahead", (json_int_t)j->batch.ahead),
                    NULL);
  }
  batch_release(&j->batch);
  free(j);
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
  struct readings_job *j = batch_job_new(r, f, sizeof *j);
  if (!j)
    return;
  if (http_req_defer(r, HTTP_POOL_STORE, readings_work, readings_done, j)) {
    batch_release(&j->batch);
    free(j);
  }
}
