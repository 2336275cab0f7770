/* telemetry.c — the module's life: options, opening the series store
 * (SQLite under the data directory, or PostgreSQL beside the store), its
 * readiness check and metrics, the consumers apps register, and the
 * series-key codec in telemetry's types. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/gate.h"
#include "net/http.h"
#include "series/key.h"
#include "series/series.h"
#include "store/store.h"
#include "telemetry/internal.h"

const struct cfg_opt telemetry_cfg_opts[] = {
    CFG_OPT(struct telemetry_cfg, "series-flush", CFG_MS, flush_ms, "10m", "how often points in memory are moved into compressed chunks"),
    CFG_OPT(struct telemetry_cfg, "series-flush-points", CFG_INT, flush_points, "1000000", "move points into chunks sooner once this many are in memory"),
    CFG_OPT(struct telemetry_cfg, "series-retention", CFG_MS, keep_raw_ms, "0", "how long raw points are kept (whole 2-hour chunks go); 0: for ever"),
    CFG_OPT(struct telemetry_cfg, "series-retention-1m", CFG_MS, keep_1m_ms, "0", "how long 1-minute rollups are kept; 0: for ever"),
    CFG_OPT(struct telemetry_cfg, "series-retention-1h", CFG_MS, keep_1h_ms, "0", "how long 1-hour rollups are kept; 0: for ever"),
    CFG_OPT(struct telemetry_cfg, "series-read-points", CFG_INT, read_points, "10000", "raw points one answer holds when the request gives no limit (the rest follow from metadata.next)"),
    CFG_OPT(struct telemetry_cfg, "series-read-max", CFG_INT, read_max, "100000", "the most raw points one answer may hold (the largest limit a request may ask)"),
};
const size_t telemetry_cfg_nopts = ARRAY_LEN(telemetry_cfg_opts);

/* /ready's check: the series store's disk trouble (core/health.h). */
static int series_check(void *arg, char *why, size_t n) {
  struct telemetry *t = arg;
  return series_health(t->series, why, n);
}

int telemetry_open(struct telemetry **out, const struct telemetry_cfg *cfg,
                   const struct telemetry_env *env, char *err, size_t errlen) {
  *out = NULL;
  if (cfg->read_max < 1 || cfg->read_points < 1 || cfg->read_points > cfg->read_max) {
    snprintf(err, errlen, "bad series read limits: --series-read-points must be 1 to "
                          "--series-read-max (points=%d max=%d)",
             cfg->read_points, cfg->read_max);
    return GROVE_ECONFIG;
  }
  struct telemetry *t = calloc(1, sizeof *t);
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return GROVE_ENOMEM;
  }
  t->cfg = *cfg;
  t->env = *env;
  pthread_mutex_init(&t->lines_lock, NULL);
  map_init(&t->lines);
  /* with PostgreSQL, the series live there too, shared by every instance */
  bool pg = env->store && strcmp(store_driver_name(env->store), "postgres") == 0;
  int rc;
  if (pg) {
    rc = series_open_pg(&t->series, env->store_url, err, errlen);
  } else {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/series", env->data_dir && *env->data_dir ? env->data_dir : ".");
    rc = series_open(&t->series, dir, err, errlen);
  }
  if (rc) {
    free(t);
    return rc;
  }
  series_retention(t->series, cfg->keep_raw_ms, cfg->keep_1m_ms, cfg->keep_1h_ms);
  if (env->retention_elsewhere)
    series_retention_elsewhere(t->series);
  if ((rc = series_autoflush(t->series, cfg->flush_ms,
                             cfg->flush_points > 0 ? (size_t)cfg->flush_points : 0))) {
    snprintf(err, errlen, "cannot start flushing the series store: %s", grove_strerror(rc));
    goto fail;
  }
  if (env->health && (rc = health_add(env->health, "series", series_check, t))) {
    snprintf(err, errlen, "cannot add the series readiness check: %s", grove_strerror(rc));
    goto fail;
  }
  if (env->metrics) {
    t->points_written =
        metric_get(metrics_family(env->metrics, "grove_series_points_written_total",
                                  "Points written durably to the series store.",
                                  METRIC_COUNTER, ""));
    t->lines_failed = metric_get(metrics_family(env->metrics, "grove_ingest_lines_failed_total",
                                                "Line protocol lines refused as malformed.",
                                                METRIC_COUNTER, ""));
  }
  *out = t;
  return 0;
fail:
  series_close(t->series);
  free(t);
  return rc;
}

/* Every route telemetry serves, with who may call it: writes need the
 * write scope (InfluxDB's paths refuse in InfluxDB's shape), reads the
 * read scope; InfluxDB's /ping is open (its clients call it first,
 * without a credential). */
static const struct route_def telemetry_route_table[] = {
    {"POST", "/api/v1/write", telemetry_handle_write, .scopes = GATE_WRITE},
    {"POST", "/write", telemetry_handle_write_v1, .scopes = GATE_WRITE,
     .refuse = telemetry_influx_refuse},
    {"POST", "/api/v2/write", telemetry_handle_write_v2, .scopes = GATE_WRITE,
     .refuse = telemetry_influx_refuse},
    {"GET", "/ping", telemetry_handle_ping, .anonymous = true},
    {"GET", "/api/v1/series/points", telemetry_handle_points, .scopes = GATE_READ},
    {"GET", "/api/v1/series/range", telemetry_handle_range, .scopes = GATE_READ},
};

int telemetry_routes(struct telemetry *t, struct router *router, char *err, size_t errlen) {
  return router_add_all(router, "telemetry", telemetry_route_table,
                        ARRAY_LEN(telemetry_route_table), t, err, errlen);
}

void telemetry_close(struct telemetry *t) {
  if (!t)
    return;
  health_remove(t->env.health, series_check, t);
  series_close(t->series);
  telemetry_lines_release(t);
  pthread_mutex_destroy(&t->lines_lock);
  free(t);
}

struct series *telemetry_series(struct telemetry *t) { return t->series; }

int64_t telemetry_oldest_kept(struct telemetry *t) { return series_oldest_kept(t->series); }

/* ---- consumers ------------------------------------------------------------------ */

int telemetry_consume(struct telemetry *t, const struct telemetry_consumer *c) {
  size_t n = atomic_load(&t->nconsumers);
  if (!c->name || !*c->name || !c->batch)
    return GROVE_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (strcmp(t->consumers[i].name, c->name) == 0) {
      log_error(NULL, "a telemetry consumer is registered twice", "consumer=%s", c->name);
      return GROVE_EEXIST;
    }
  if (n == TELEMETRY_MAX_CONSUMERS) {
    log_error(NULL, "too many telemetry consumers", "consumer=%s max=%d", c->name,
              TELEMETRY_MAX_CONSUMERS);
    return GROVE_ETOOBIG;
  }
  t->consumers[n] = *c;
  atomic_store_explicit(&t->nconsumers, n + 1, memory_order_release);
  return 0;
}

static bool str_is(const char *s, const char *p, size_t n) {
  return strncmp(s, p, n) == 0 && s[n] == '\0';
}

const struct telemetry_str *telemetry_tag_get(const struct telemetry_tag *tags, int ntags,
                                              const char *key) {
  size_t n = strlen(key);
  for (int i = 0; i < ntags; i++)
    if (tags[i].key.n == n && memcmp(tags[i].key.p, key, n) == 0)
      return &tags[i].value;
  return NULL;
}

bool telemetry_consumer_wants(const struct telemetry_consumer *c, const char *measurement,
                              size_t n, const struct telemetry_tag *tags, int ntags) {
  if (c->measurements) {
    const char *const *m = c->measurements;
    while (*m && !str_is(*m, measurement, n))
      m++;
    if (!*m)
      return false;
  }
  return !c->tag || telemetry_tag_get(tags, ntags, c->tag);
}

/* ---- series keys -------------------------------------------------------------------- */

int telemetry_key_encode(struct buf *out, const struct telemetry_key *k) {
  if (k->ntags < 0 || k->ntags > TELEMETRY_MAX_TAGS)
    return GROVE_EINVAL;
  struct series_key sk = {.measurement = {k->measurement.p, k->measurement.n},
                          .field = {k->field.p, k->field.n},
                          .ntags = k->ntags};
  for (int i = 0; i < k->ntags; i++) {
    sk.tag_keys[i] = (struct lp_str){k->tags[i].key.p, k->tags[i].key.n};
    sk.tag_values[i] = (struct lp_str){k->tags[i].value.p, k->tags[i].value.n};
  }
  return series_key_encode(out, &sk);
}

int telemetry_key_decode(const char *key, size_t len, char *scratch, struct telemetry_key *out) {
  struct series_key sk;
  int rc = series_key_decode(key, len, scratch, &sk);
  if (rc)
    return rc;
  out->measurement = (struct telemetry_str){sk.measurement.p, sk.measurement.n};
  out->field = (struct telemetry_str){sk.field.p, sk.field.n};
  out->ntags = sk.ntags;
  for (int i = 0; i < sk.ntags; i++)
    out->tags[i] = (struct telemetry_tag){{sk.tag_keys[i].p, sk.tag_keys[i].n},
                                          {sk.tag_values[i].p, sk.tag_values[i].n}};
  return 0;
}
