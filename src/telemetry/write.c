/* write.c — points in. Collectors write InfluxDB line protocol to POST
 * /api/v1/write (Telegraf works unchanged; influx.c adds InfluxDB's own
 * paths), apps hand lines to telemetry_write. Each numeric field becomes a
 * point of the series "measurement,tags field" (or the series a
 * consumer's series_key hook names); the points of one request are
 * appended at once and, once durable, the points each consumer wants are
 * handed to it; then the writer is answered.
 *
 * Per request, not per point: the points, their keys, and what consumers
 * get (matched lines' strings copied into one arena) live in arrays that
 * grow by doubling (core/array.h; the body, at most 64 MiB, bounds them);
 * dispatch makes one array of telemetry_point per request. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/util.h"
#include "net/http.h"
#include "series/key.h"
#include "series/series.h"
#include "telemetry/internal.h"

#define MAX_INFLATED (64u * 1024 * 1024)
#define MAX_REPORTED 20 /* failed lines listed in an answer */
/* InfluxDB refuses such points ("points beyond retention policy dropped=N")
 * rather than acknowledge what the next flush would drop. */
#define PAST_RETENTION "point is older than the raw retention (--series-retention): it would not be kept"
#define KEY_TOO_LONG "series key is too long: measurement, tags and field over 4096 bytes"

/* ---- a write on its way in --------------------------------------------------------- */

/* What consumers get, recorded while parsing (offsets into the arena,
 * which may move while it grows): a matched line, its tags, and its
 * stored points with the consumers (a bit each) that want them. */
struct mline {
  uint32_t meas, meas_n, tag_at, ntags;
};
struct mtag {
  uint32_t k, kn, v, vn;
};
struct mpoint {
  uint32_t point, line, field, field_n, mask;
};

struct app_lines;

struct job {
  struct telemetry *t;
  int64_t oldest;          /* points before this are past raw retention: refused */
  /* line protocol: the body (owned: a copy of the decoded request body),
   * its precision and API, the answer's list of refused lines */
  char *body;
  size_t len;
  enum lp_precision prec;
  enum telemetry_api api;
  json_t *failed;
  char first_failed[200];  /* InfluxDB's "unable to parse '…': why" of the first,
                            * cut at a character; fits in write_done's msg */
  struct lp_stats stats;
  /* telemetry_write: its lines, and the one being written (refusals name it) */
  const struct app_lines *app;
  size_t line_index;
  /* the points */
  struct series_point *pts;
  size_t npts, cap;
  /* points whose series this process has not seen: their keys, NUL-ended,
   * and which point each is for (job_resolve finds their ids) */
  struct buf keys;
  size_t *key_at, *key_point;
  size_t nkeys, capkeys;
  /* for consumers */
  struct buf arena;
  struct mline *ml;
  size_t nml, capml;
  struct mtag *mt;
  size_t nmt, capmt;
  struct mpoint *mp;
  size_t nmp, capmp;
  /* parse scratch */
  struct buf key;          /* a series key */
  struct buf consumer_key; /* a consumer's series_key */
  struct buf line_keys;    /* the keys of a line's fields, NUL-ended */
  struct map pending;      /* key -> type this request gives series that had none */
  struct telemetry_tag view_tags[LP_MAX_TAGS];
  int refused;             /* lines parsed but not kept (on_point) */
  int rc;
  struct telemetry_verdict verdict;
};

static void job_init(struct job *j, struct telemetry *t) {
  memset(j, 0, sizeof *j);
  j->t = t;
  buf_init(&j->keys, 0);
  buf_init(&j->arena, 0);
  buf_init(&j->key, 4096);
  buf_init(&j->consumer_key, SERIES_KEY_MAX);
  buf_init(&j->line_keys, 0);
  map_init(&j->pending);
}

static void job_release(struct job *j) {
  json_decref(j->failed);
  free(j->body);
  free(j->pts);
  free(j->key_at);
  free(j->key_point);
  buf_release(&j->keys);
  buf_release(&j->arena);
  free(j->ml);
  free(j->mt);
  free(j->mp);
  buf_release(&j->key);
  buf_release(&j->consumer_key);
  buf_release(&j->line_keys);
  map_release(&j->pending);
}

/* Back to before the parse (to parse again). */
static void job_reset(struct job *j) {
  j->npts = j->nkeys = j->nml = j->nmt = j->nmp = 0;
  buf_reset(&j->keys);
  buf_reset(&j->arena);
  json_array_clear(j->failed);
  j->refused = 0;
  j->first_failed[0] = '\0';
  map_release(&j->pending);
  map_init(&j->pending);
}

struct mark {
  size_t npts, nkeys, keys_len, nml, nmt, nmp, arena_len;
};

static struct mark job_mark(const struct job *j) {
  return (struct mark){j->npts, j->nkeys, j->keys.len, j->nml, j->nmt, j->nmp, j->arena.len};
}

static void job_undo(struct job *j, struct mark m) {
  j->npts = m.npts;
  j->nkeys = m.nkeys;
  j->keys.len = m.keys_len;
  j->nml = m.nml;
  j->nmt = m.nmt;
  j->nmp = m.nmp;
  j->arena.len = m.arena_len;
}

/* A point of the series `key`, whose id is `known` (UINT32_MAX: not
 * looked up yet). A series this process knows gets its id now; the others
 * are found for the whole write at once (job_resolve). Returns 0, 1 for a
 * key too long (not kept), or GROVE_ENOMEM. */
static int job_point(struct job *j, const char *key, size_t len, int64_t ts, double v,
                     uint32_t known) {
  if (len == 0 || len > SERIES_KEY_MAX)
    return 1;
  /* (every array of a write is bounded by its body, at most 64 MiB) */
  if (ARRAY_GROW(j->pts, j->cap, j->npts + 1, 1024, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  uint32_t id = known;
  if (known == UINT32_MAX && series_cached(j->t->series, key, &id)) {
    size_t cap = j->capkeys;
    if (ARRAY_GROW(j->key_at, cap, j->nkeys + 1, 256, ARRAY_NOMAX) ||
        ARRAY_GROW(j->key_point, j->capkeys, j->nkeys + 1, 256, ARRAY_NOMAX))
      return GROVE_ENOMEM;
    j->key_at[j->nkeys] = j->keys.len;
    j->key_point[j->nkeys++] = j->npts;
    if (buf_append(&j->keys, key, len) || buf_putc(&j->keys, '\0'))
      return GROVE_ENOMEM;
  }
  j->pts[j->npts++] = (struct series_point){id, ts, v};
  return 0;
}

/* The ids of the series new to this process, in one call (one round trip
 * to PostgreSQL). */
static int job_resolve(struct job *j) {
  if (!j->nkeys)
    return 0;
  const char **keys = malloc(j->nkeys * sizeof *keys);
  uint32_t *ids = malloc(j->nkeys * sizeof *ids);
  int rc = keys && ids ? 0 : GROVE_ENOMEM;
  for (size_t i = 0; !rc && i < j->nkeys; i++)
    keys[i] = j->keys.data + j->key_at[i];
  if (!rc)
    rc = series_ids(j->t->series, keys, j->nkeys, ids);
  for (size_t i = 0; !rc && i < j->nkeys; i++)
    j->pts[j->key_point[i]].id = ids[i];
  free(keys);
  free(ids);
  return rc;
}

/* Copies s into the arena, NUL-ended; its offset, or UINT32_MAX on no
 * memory. */
static uint32_t arena_put(struct job *j, const char *s, size_t n) {
  uint32_t at = (uint32_t)j->arena.len;
  return buf_append(&j->arena, s, n) || buf_putc(&j->arena, '\0') ? UINT32_MAX : at;
}

/* Records the write's last point for the consumers in mask; the line
 * (measurement and tags) is recorded with its first point (*line). */
static int match_point(struct job *j, const struct lp_point *p, const struct lp_str *field,
                       uint32_t mask, uint32_t *line) {
  if (*line == UINT32_MAX) {
    if (ARRAY_GROW(j->ml, j->capml, j->nml + 1, 256, ARRAY_NOMAX))
      return GROVE_ENOMEM;
    struct mline *l = &j->ml[j->nml];
    l->meas = arena_put(j, p->measurement.p, p->measurement.n);
    l->meas_n = (uint32_t)p->measurement.n;
    l->tag_at = (uint32_t)j->nmt;
    l->ntags = (uint32_t)p->ntags;
    if (l->meas == UINT32_MAX)
      return GROVE_ENOMEM;
    for (int i = 0; i < p->ntags; i++) {
      if (ARRAY_GROW(j->mt, j->capmt, j->nmt + 1, 256, ARRAY_NOMAX))
        return GROVE_ENOMEM;
      struct mtag *t = &j->mt[j->nmt++];
      t->k = arena_put(j, p->tag_keys[i].p, p->tag_keys[i].n);
      t->kn = (uint32_t)p->tag_keys[i].n;
      t->v = arena_put(j, p->tag_values[i].p, p->tag_values[i].n);
      t->vn = (uint32_t)p->tag_values[i].n;
      if (t->k == UINT32_MAX || t->v == UINT32_MAX)
        return GROVE_ENOMEM;
    }
    *line = (uint32_t)j->nml++;
  }
  if (ARRAY_GROW(j->mp, j->capmp, j->nmp + 1, 1024, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  uint32_t f = arena_put(j, field->p, field->n);
  if (f == UINT32_MAX)
    return GROVE_ENOMEM;
  j->mp[j->nmp++] = (struct mpoint){(uint32_t)(j->npts - 1), *line, f, (uint32_t)field->n, mask};
  return 0;
}

/* Hands each consumer the points it wants (the points are durable), at
 * most TELEMETRY_BATCH_MAX a call: one small array, reused. */
static void dispatch(struct job *j) {
  struct telemetry *t = j->t;
  if (!j->nmp)
    return;
  size_t nc = atomic_load_explicit(&t->nconsumers, memory_order_acquire);
  size_t cap = j->nmp < TELEMETRY_BATCH_MAX ? j->nmp : TELEMETRY_BATCH_MAX;
  struct telemetry_tag *tags = malloc((j->nmt ? j->nmt : 1) * sizeof *tags);
  struct telemetry_point *pts = malloc(cap * sizeof *pts);
  if (!tags || !pts) {
    /* the points are stored; only the consumers' views miss them */
    log_error(NULL, "cannot hand points to consumers", "points=%zu error=\"%s\"", j->nmp,
              grove_strerror(GROVE_ENOMEM));
    goto out;
  }
  const char *a = j->arena.data;
  for (size_t i = 0; i < j->nmt; i++)
    tags[i] = (struct telemetry_tag){{a + j->mt[i].k, j->mt[i].kn}, {a + j->mt[i].v, j->mt[i].vn}};
  uint32_t any = 0;
  for (size_t i = 0; i < j->nmp; i++)
    any |= j->mp[i].mask;
  for (size_t c = 0; c < nc; c++) {
    uint32_t bit = 1u << c;
    const struct telemetry_consumer *co = &t->consumers[c];
    if (!(any & bit))
      continue;
    size_t n = 0;
    for (size_t i = 0; i < j->nmp; i++) {
      const struct mpoint *m = &j->mp[i];
      if (!(m->mask & bit))
        continue;
      const struct mline *l = &j->ml[m->line];
      const struct series_point *pt = &j->pts[m->point];
      pts[n++] = (struct telemetry_point){{a + l->meas, l->meas_n}, {a + m->field, m->field_n},
                                         tags + l->tag_at, (int)l->ntags, pt->ts_ns, pt->value,
                                         pt->id};
      if (n == cap || i + 1 == j->nmp) {
        struct telemetry_verdict v = {0, 0};
        co->batch(pts, n, &v, co->arg);
        j->verdict.late += v.late;
        j->verdict.ahead += v.ahead;
        n = 0;
      }
    }
    if (n) { /* the last matching point was not the write's last */
      struct telemetry_verdict v = {0, 0};
      co->batch(pts, n, &v, co->arg);
      j->verdict.late += v.late;
      j->verdict.ahead += v.ahead;
    }
  }
out:
  free(pts);
  free(tags);
}

/* Writes the points durably, then hands them to the consumers. */
static int job_commit(struct job *j) {
  if (!j->npts)
    return 0;
  int rc = job_resolve(j);
  if (!rc)
    rc = series_append_sync(j->t->series, j->pts, j->npts);
  if (rc)
    return rc;
  metric_add(j->t->points_written, (double)j->npts);
  dispatch(j);
  return 0;
}

/* ---- one line -------------------------------------------------------------------- */

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

static double value_of(const struct lp_field *fl) {
  return fl->type == LP_FLOAT  ? fl->v.f
         : fl->type == LP_INT  ? (double)fl->v.i
         : fl->type == LP_UINT ? (double)fl->v.u
                               : (double)fl->v.b;
}

/* The type key has for this write: recorded (the store), or given by an
 * earlier line of this write (pending); SERIES_TYPE_NONE otherwise. */
static uint8_t known_type(struct job *j, const char *key) {
  uint8_t t = (uint8_t)series_type_cached(j->t->series, key);
  return t ? t : (uint8_t)(uintptr_t)map_get(&j->pending, key);
}

static void refuse(struct job *j, const struct lp_point *p, const char *why);

/* ---- the series of a line's fields ------------------------------------------------
 *
 * A line written before (the same measurement and tags, the same numeric
 * fields) finds its fields' series ids and recorded types in one locked
 * look-up of its "measurement,tags " part, instead of one per field with
 * its key built: matrix writes a process as one line of eleven fields. Only
 * lines no consumer takes, whose every field is numeric, with ids known and
 * types recorded, are kept. */

#define TELEMETRY_LINES_BYTES (64u << 20)

struct line_ids {
  int n;
  uint32_t *ids;
  uint8_t *types;
  uint16_t *name_at, *name_len; /* in names */
  char *names;
};

void telemetry_lines_release(struct telemetry *t) {
  const char *k;
  void *v;
  for (size_t it = 0; map_next(&t->lines, &it, &k, &v);)
    free(v);
  map_release(&t->lines);
  t->lines_bytes = 0;
}

static const struct line_ids *lines_get(struct telemetry *t, const char *prefix) {
  pthread_mutex_lock(&t->lines_lock);
  const struct line_ids *e = map_get(&t->lines, prefix);
  pthread_mutex_unlock(&t->lines_lock);
  return e;
}

/* Keeps line p's fields' ids and types (one allocation) under prefix. */
static void lines_put(struct telemetry *t, const char *prefix, const struct lp_point *p,
                      const uint32_t *ids, const uint8_t *types) {
  pthread_mutex_lock(&t->lines_lock);
  bool full = t->lines_bytes >= TELEMETRY_LINES_BYTES;
  pthread_mutex_unlock(&t->lines_lock);
  if (full)
    return;
  int n = p->nfields;
  size_t names = 0;
  for (int i = 0; i < n; i++) {
    if (p->fields[i].key.n > UINT16_MAX)
      return;
    names += p->fields[i].key.n;
  }
  if (names > UINT16_MAX)
    return;
  size_t bytes = sizeof(struct line_ids) + (size_t)n * (sizeof(uint32_t) + 1 + 2 * sizeof(uint16_t)) +
                 names + 8;
  struct line_ids *e = malloc(bytes);
  if (!e)
    return;
  e->n = n;
  e->ids = (uint32_t *)(e + 1);
  e->name_at = (uint16_t *)(e->ids + n);
  e->name_len = e->name_at + n;
  e->types = (uint8_t *)(e->name_len + n);
  e->names = (char *)(e->types + n);
  size_t at = 0;
  for (int i = 0; i < n; i++) {
    e->ids[i] = ids[i];
    e->types[i] = types[i];
    e->name_at[i] = (uint16_t)at;
    e->name_len[i] = (uint16_t)p->fields[i].key.n;
    memcpy(e->names + at, p->fields[i].key.p, p->fields[i].key.n);
    at += p->fields[i].key.n;
  }
  bytes += strlen(prefix) + 1 + sizeof(struct map_slot);
  pthread_mutex_lock(&t->lines_lock);
  void *old = NULL;
  if (t->lines_bytes + bytes > TELEMETRY_LINES_BYTES || map_get(&t->lines, prefix) ||
      map_put(&t->lines, prefix, e, &old)) {
    pthread_mutex_unlock(&t->lines_lock);
    free(e);
    return;
  }
  t->lines_bytes += bytes;
  pthread_mutex_unlock(&t->lines_lock);
}

/* Writes line p's points through the ids kept for its prefix: 1 when
 * done, 0 when the line is not as kept (the long way then), or
 * GROVE_ENOMEM. */
static int line_known(struct job *j, const struct lp_point *p, const char *prefix) {
  const struct line_ids *e = lines_get(j->t, prefix);
  if (!e || e->n != p->nfields || p->ts_ns < j->oldest)
    return 0;
  uint32_t ids[LP_MAX_FIELDS];
  for (int i = 0; i < p->nfields; i++) {
    const struct lp_field *fl = &p->fields[i];
    int k = i;
    for (int tries = 0; tries < e->n; tries++, k = (k + 1) % e->n)
      if (e->name_len[k] == fl->key.n && !memcmp(e->names + e->name_at[k], fl->key.p, fl->key.n))
        break;
    if (e->name_len[k] != fl->key.n || memcmp(e->names + e->name_at[k], fl->key.p, fl->key.n) ||
        e->types[k] != type_of(fl->type))
      return 0; /* another field, or a type conflict: said the long way */
    ids[i] = e->ids[k];
  }
  if (ARRAY_GROW(j->pts, j->cap, j->npts + (size_t)p->nfields, 1024, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  for (int i = 0; i < p->nfields; i++)
    j->pts[j->npts++] = (struct series_point){ids[i], p->ts_ns, value_of(&p->fields[i])};
  return 1;
}

/* Each field of a line is a point of the series "measurement,tags field"
 * (series/key.h), or of the series a consumer's series_key hook names. A
 * series keeps the type of its first field (InfluxDB's "field type
 * conflict"); a consumer's series take any number. String fields are not
 * stored, but their type is kept. A line is kept whole or not at all. */
static int on_point(const struct lp_point *p, void *arg) {
  struct job *j = arg;
  struct telemetry *t = j->t;
  struct buf *key = &j->key, *lk = &j->line_keys;
  /* the consumers that want this line */
  size_t nc = atomic_load_explicit(&t->nconsumers, memory_order_acquire);
  uint32_t mask = 0;
  if (nc) {
    for (int i = 0; i < p->ntags; i++)
      j->view_tags[i] = (struct telemetry_tag){{p->tag_keys[i].p, p->tag_keys[i].n},
                                               {p->tag_values[i].p, p->tag_values[i].n}};
    for (size_t c = 0; c < nc; c++)
      if (telemetry_consumer_wants(&t->consumers[c], p->measurement.p, p->measurement.n,
                                   j->view_tags, p->ntags))
        mask |= 1u << c;
  }
  struct telemetry_point view = {{p->measurement.p, p->measurement.n}, {NULL, 0}, j->view_tags,
                                 p->ntags, p->ts_ns, 0, 0};
  struct series_key sk;
  sk.measurement = p->measurement;
  sk.ntags = p->ntags;
  memcpy(sk.tag_keys, p->tag_keys, (size_t)p->ntags * sizeof *sk.tag_keys);
  memcpy(sk.tag_values, p->tag_values, (size_t)p->ntags * sizeof *sk.tag_values);
  const char *why = NULL;
  char conflict[300];
  buf_reset(lk);
  int rc = 0;
  size_t prefix = 0, numeric = 0; /* 0: not made yet */
  /* a line seen before: one look-up */
  bool cacheable = !mask;
  if (cacheable) {
    buf_reset(key);
    if (series_key_put_series(key, &sk)) {
      cacheable = false;
    } else {
      prefix = key->len;
      int known = line_known(j, p, key->data);
      if (known)
        return known < 0 ? known : 0;
    }
  }
  /* first every field's key and type, checked before anything is kept:
   * keys NUL-ended one after another in line_keys */
  size_t at[LP_MAX_FIELDS];
  bool own[LP_MAX_FIELDS];    /* in a series a consumer named */
  uint8_t had[LP_MAX_FIELDS]; /* the type each series has already (NONE: new) */
  uint32_t ids[LP_MAX_FIELDS]; /* the series' ids where known here, else UINT32_MAX */
  for (int i = 0; i < p->nfields && !rc && !why; i++) {
    const struct lp_field *fl = &p->fields[i];
    uint8_t ty = type_of(fl->type);
    numeric += ty != SERIES_TYPE_STRING;
    at[i] = lk->len;
    own[i] = false;
    had[i] = SERIES_TYPE_NONE;
    ids[i] = UINT32_MAX;
    for (size_t c = 0; mask && ty != SERIES_TYPE_STRING && c < nc && !own[i] && !rc; c++) {
      const struct telemetry_consumer *co = &t->consumers[c];
      if (!(mask & (1u << c)) || !co->series_key)
        continue;
      view.field = (struct telemetry_str){fl->key.p, fl->key.n};
      view.value = value_of(fl);
      buf_reset(&j->consumer_key);
      rc = co->series_key(&view, &j->consumer_key, co->arg);
      if (rc == 1) {
        own[i] = true;
        rc = buf_append(lk, j->consumer_key.data, j->consumer_key.len) || buf_putc(lk, '\0')
                 ? GROVE_ENOMEM : 0;
      }
    }
    if (rc || own[i])
      continue;
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
    /* a series known here with its type noted: one look-up */
    uint8_t have = SERIES_TYPE_NONE;
    if (series_cached_typed(t->series, key->data, &ids[i], &have))
      ids[i] = UINT32_MAX;
    cacheable &= ids[i] != UINT32_MAX && have == ty; /* recorded, and this type */
    if (!have && (have = known_type(j, key->data)) && ids[i] != UINT32_MAX &&
        series_type_cached(t->series, key->data) == have)
      series_note_type(t->series, ids[i], have); /* recorded, not this write's pending */
    had[i] = have;
    if (have && have != ty) {
      snprintf(conflict, sizeof conflict,
               "field type conflict: input field \"%.*s\" on measurement \"%.*s\" is type %s, "
               "already exists as type %s",
               (int)utf8_cut(fl->key.p, fl->key.n, 64), fl->key.p,
               (int)utf8_cut(p->measurement.p, p->measurement.n, 64), p->measurement.p,
               series_type_name((enum series_type)ty), series_type_name((enum series_type)have));
      why = conflict;
    }
  }
  if (rc == GROVE_ETOOBIG || rc == GROVE_EINVAL) {
    why = rc == GROVE_ETOOBIG ? KEY_TOO_LONG : "invalid series key";
    rc = 0;
  }
  if (!rc && !why && !numeric)
    why = "no numeric field: string fields are not stored";
  if (!rc && !why && p->ts_ns < j->oldest)
    why = PAST_RETENTION;
  /* then the points, and the types this line gives series that had none */
  struct mark m = job_mark(j);
  uint32_t line = UINT32_MAX;
  for (int i = 0; i < p->nfields && !rc && !why; i++) {
    const struct lp_field *fl = &p->fields[i];
    const char *k = lk->data + at[i];
    size_t kn = strlen(k);
    uint8_t ty = type_of(fl->type);
    if (!own[i] && !had[i] && (rc = map_put(&j->pending, k, (void *)(uintptr_t)ty, NULL)))
      break;
    if (ty == SERIES_TYPE_STRING)
      continue;
    if ((rc = job_point(j, k, kn, p->ts_ns, value_of(fl), own[i] ? UINT32_MAX : ids[i])) == 1) {
      why = KEY_TOO_LONG;
      rc = 0;
      break;
    }
    if (!rc && mask)
      rc = match_point(j, p, &fl->key, mask, &line);
  }
  if (why || rc)
    job_undo(j, m);
  if (why) {
    j->refused++;
    refuse(j, p, why);
  } else if (!rc && cacheable && numeric == (size_t)p->nfields) {
    key->len = prefix;
    key->data[prefix] = '\0';
    lines_put(t, key->data, p, ids, had);
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

/* A line the parser refused (line protocol). */
static void on_error(int line, const char *text, size_t len, const char *why, void *arg) {
  struct job *j = arg;
  if (!j->first_failed[0]) {
    json_t *t = line_text(text, len);
    snprintf(j->first_failed, sizeof j->first_failed, "unable to parse '%s': %s (line %d)",
             json_string_value(t) ? json_string_value(t) : "", why, line);
    json_decref(t);
    utf8_trim(j->first_failed);
  }
  if (json_array_size(j->failed) >= MAX_REPORTED)
    return;
  json_t *e = json_pack("{s:i,s:s,s:o}", "line", line, "error", why, "text", line_text(text, len));
  if (!e) /* a reason that is not UTF-8 (cannot happen): the line is listed all the same */
    e = json_pack("{s:i,s:s,s:o}", "line", line, "error", "refused", "text", line_text(text, len));
  json_array_append_new(j->failed, e);
}

/* A line refused after parsing: listed and counted like a line the
 * parser refused (line protocol), or kept for telemetry_write's caller. */
static void refuse(struct job *j, const struct lp_point *p, const char *why) {
  if (!j->app) {
    on_error(p->line, p->text, p->text_len, why, j);
    return;
  }
  json_array_append_new(j->failed, json_pack("{s:I,s:s}", "index", (json_int_t)j->line_index,
                                             "error", why));
}

/* Records the types this write gives new series. OUT: *raced when
 * another writer recorded a different type first. */
static int claim_types(struct job *j, bool *raced) {
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
    rc = series_types_claim(j->t->series, keys, types, n, got);
  for (size_t x = 0; !rc && x < n; x++)
    *raced |= got[x] != types[x];
  free(keys);
  free(types);
  free(got);
  return rc;
}

/* Parses (lines of one source) and claims the types they give: a type
 * another writer recorded first, between this parse and the claim, means
 * parsing again, knowing it, so its lines are refused whole. */
static int parse_and_claim(struct job *j, int (*parse)(struct job *j)) {
  int rc = 0;
  j->oldest = series_oldest_kept(j->t->series);
  for (int round = 0; round < 3; round++) {
    rc = parse(j);
    bool raced = false;
    if (!rc)
      rc = claim_types(j, &raced);
    if (rc || !raced)
      break;
    job_reset(j);
    rc = round == 2 ? GROVE_EBUSY : 0;
  }
  return rc;
}

/* ---- line protocol ---------------------------------------------------------------- */

static int parse_lp(struct job *j) {
  memset(&j->stats, 0, sizeof j->stats);
  return lp_parse(j->body, j->len, j->prec, (int64_t)clock_wall_ms() * 1000000, on_point,
                  on_error, j, &j->stats);
}

static void lp_work(struct job *j) {
  j->rc = parse_and_claim(j, parse_lp);
  j->stats.points -= j->refused;
  j->stats.errors += j->refused;
  if (!j->rc)
    j->rc = job_commit(j);
  if (!j->rc)
    metric_add(j->t->lines_failed, j->stats.errors);
}

int telemetry_write_lp(struct telemetry *t, const char *body, size_t len, enum lp_precision prec,
                       struct telemetry_result *res, int *failed) {
  struct job j;
  job_init(&j, t);
  j.failed = json_array();
  j.body = malloc(len + 1);
  j.len = len;
  j.prec = prec;
  int rc = j.failed && j.body ? 0 : GROVE_ENOMEM;
  if (!rc) {
    memcpy(j.body, body, len);
    lp_work(&j);
    rc = j.rc;
  }
  memset(res, 0, sizeof *res);
  res->points = rc ? 0 : j.npts;
  res->refused = (size_t)j.stats.errors;
  res->verdict = j.verdict;
  if (failed)
    *failed = j.stats.errors;
  job_release(&j);
  return rc;
}

/* The PARTIAL_WRITE answer in the API's shape; InfluxDB's message names
 * the first failed line (`first`) as InfluxDB says it: Telegraf looks for
 * "partial write". */
static void partial_reply(struct http_req *r, enum telemetry_api api, const char *items,
                          size_t total, size_t nfailed, const struct telemetry_result *res,
                          json_t *failed, const char *first) {
  char msg[400], failed_items[48];
  if (api == TELEMETRY_API_INFLUX)
    snprintf(msg, sizeof msg, "partial write: %s dropped=%zu", first, nfailed);
  else
    snprintf(msg, sizeof msg, "partial write: %zu of %zu %s failed; %s", nfailed, total, items,
             nfailed < total ? "the others were written" : "none was written");
  snprintf(failed_items, sizeof failed_items, "failed_%s", items);
  telemetry_reply_error(r, api, 400, "PARTIAL_WRITE", msg,
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:O}", items, (json_int_t)total,
                                  failed_items, (json_int_t)nfailed, "points_written",
                                  (json_int_t)res->points, "late", (json_int_t)res->verdict.late,
                                  "ahead", (json_int_t)res->verdict.ahead, "failed", failed));
}

void telemetry_reply_partial(struct http_req *r, const char *items, size_t total,
                             size_t nfailed, const struct telemetry_result *res,
                             json_t *failed) {
  partial_reply(r, TELEMETRY_API_GROVE, items, total, nfailed, res, failed, NULL);
}

static void write_work(void *arg) { lp_work(arg); }

static void write_done(struct http_req *r, void *arg) {
  struct job *j = arg;
  if (!r->conn) {
    /* the client left; what was written stays written */
  } else if (j->rc) {
    log_error(r->id, "cannot write points", "error=\"%s\"", grove_strerror(j->rc));
    telemetry_reply_error(r, j->api, 503, "STORE_UNAVAILABLE", "points were not written; retry",
                          NULL);
  } else if (j->stats.errors) {
    struct telemetry_result res = {.points = j->npts, .refused = (size_t)j->stats.errors,
                                   .verdict = j->verdict};
    partial_reply(r, j->api, "lines", (size_t)j->stats.lines, res.refused, &res, j->failed,
                  j->first_failed);
  } else {
    /* 204 has no body (InfluxDB clients expect it): how many points the
     * consumers left out of their live views goes in headers — late
     * (older than a watermark) and ahead (later than the server's clock
     * allows); both are stored */
    char late[24], ahead[24];
    snprintf(late, sizeof late, "%zu", j->verdict.late);
    http_res_header(r, "X-Grove-Late-Points", late);
    snprintf(ahead, sizeof ahead, "%zu", j->verdict.ahead);
    http_res_header(r, "X-Grove-Ahead-Points", ahead);
    http_reply(r, 204, NULL, NULL, 0);
  }
  job_release(j);
  free(j);
}

void telemetry_write_start(struct http_req *r, struct telemetry *t, enum lp_precision prec,
                           enum telemetry_api api) {
  struct http_body_error err; /* Content-Encoding, answered in this API's format */
  if (http_req_decode(r, MAX_INFLATED, &err)) {
    telemetry_reply_error(r, api, err.status, err.code, err.message, NULL);
    return;
  }
  struct job *j = malloc(sizeof *j);
  if (j) {
    job_init(j, t);
    j->body = malloc(r->body_len + 1);
    j->failed = json_array();
  }
  if (!j || !j->body || !j->failed) {
    if (j)
      job_release(j);
    free(j);
    telemetry_reply_error(r, api, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  memcpy(j->body, r->body, r->body_len);
  j->len = r->body_len;
  j->prec = prec;
  j->api = api;
  if (http_req_defer(r, HTTP_POOL_STORE, write_work, write_done, j)) {
    job_release(j); /* 503 answered */
    free(j);
  }
}

void telemetry_handle_write(struct http_req *r) {
  struct telemetry *t = r->app;
  char prec_s[32] = "";
  enum lp_precision prec;
  if (http_query_str(r, "precision", prec_s, sizeof prec_s, "INVALID_PRECISION") < 0)
    return; /* absent: nanoseconds */
  if (lp_precision_parse(prec_s, &prec)) {
    http_reply_error(r, 400, "INVALID_PRECISION", "precision must be ns, us, ms, s, m or h", NULL);
    return;
  }
  telemetry_write_start(r, t, prec, TELEMETRY_API_GROVE);
}

/* ---- lines from an app ------------------------------------------------------------- */

struct app_lines {
  const struct telemetry_line *lines;
  size_t n;
  struct lp_point *p; /* scratch: one line at a time */
};

/* Why an app's line cannot be a line at all (before keys), or NULL. */
static const char *line_invalid(const struct telemetry_line *l) {
  if (l->ntags < 0 || l->ntags > TELEMETRY_MAX_TAGS)
    return "too many tags";
  if (l->nfields < 1 || l->nfields > TELEMETRY_MAX_FIELDS)
    return "a line has 1 to 128 fields";
  if (!time_valid(l->ts_ns))
    return "time is outside 1677-09-21T00:12:43.145224194Z..2262-04-11T23:47:16.854775806Z";
  if (!lp_utf8_valid(l->measurement.p, l->measurement.n))
    return "measurement is not UTF-8";
  for (int i = 0; i < l->ntags; i++)
    if (!lp_utf8_valid(l->tags[i].key.p, l->tags[i].key.n) ||
        !lp_utf8_valid(l->tags[i].value.p, l->tags[i].value.n))
      return "a tag is not UTF-8";
  for (int i = 0; i < l->nfields; i++) {
    if (!lp_utf8_valid(l->fields[i].key.p, l->fields[i].key.n))
      return "a field key is not UTF-8";
    if (!isfinite(l->fields[i].value))
      return "a field value is not a finite number";
  }
  return NULL;
}

static int parse_app(struct job *j) {
  const struct app_lines *al = j->app;
  struct lp_point *p = al->p;
  int rc = 0;
  for (size_t i = 0; i < al->n && !rc; i++) {
    const struct telemetry_line *l = &al->lines[i];
    j->line_index = i;
    const char *why = line_invalid(l);
    if (why) {
      refuse(j, NULL, why);
      j->refused++;
      continue;
    }
    p->measurement = (struct lp_str){l->measurement.p, l->measurement.n};
    p->ntags = l->ntags;
    for (int k = 0; k < l->ntags; k++) {
      p->tag_keys[k] = (struct lp_str){l->tags[k].key.p, l->tags[k].key.n};
      p->tag_values[k] = (struct lp_str){l->tags[k].value.p, l->tags[k].value.n};
    }
    p->nfields = l->nfields;
    for (int k = 0; k < l->nfields; k++) {
      p->fields[k].key = (struct lp_str){l->fields[k].key.p, l->fields[k].key.n};
      p->fields[k].type = LP_FLOAT;
      p->fields[k].v.f = l->fields[k].value;
    }
    p->ts_ns = l->ts_ns;
    rc = on_point(p, j);
  }
  return rc;
}

int telemetry_write(struct telemetry *t, const struct telemetry_line *lines, size_t n,
                    telemetry_refused_fn refused, void *arg, struct telemetry_result *res) {
  struct job *j = malloc(sizeof *j);
  struct app_lines al = {lines, n, malloc(sizeof *al.p)};
  memset(res, 0, sizeof *res);
  if (!j || !al.p) {
    free(j);
    free(al.p);
    return GROVE_ENOMEM;
  }
  job_init(j, t);
  j->app = &al;
  int rc = (j->failed = json_array()) ? parse_and_claim(j, parse_app) : GROVE_ENOMEM;
  if (!rc)
    rc = job_commit(j);
  if (!rc) {
    size_t i;
    json_t *e;
    json_array_foreach(j->failed, i, e) {
      if (refused)
        refused((size_t)json_integer_value(json_object_get(e, "index")),
                json_string_value(json_object_get(e, "error")), arg);
    }
    res->points = j->npts;
    res->refused = json_array_size(j->failed);
    res->verdict = j->verdict;
  }
  job_release(j);
  free(j);
  free(al.p);
  return rc;
}
