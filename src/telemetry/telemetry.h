/* telemetry.h — the platform's shared write path for time series: the
 * series store (its options, its directory, SQLite or PostgreSQL), the
 * write routes (POST /api/v1/write in line protocol, InfluxDB's /write,
 * /api/v2/write and /ping), the generic read routes (GET
 * /api/v1/series/points and /range), the ingest metrics, the "series"
 * readiness check and the series-key rule. `grove serve` opens one and
 * hands it to every app (struct grove_ctx's `telemetry`).
 *
 * Apps do not parse line protocol. They register a consumer
 * (telemetry_consume) naming the points they care about — measurements,
 * a tag every such line carries — and get, for every accepted write, the
 * points of it that match, already parsed and stored.
 *
 * The write path of one request, on a worker thread:
 *   parse → for each line: keys, the consumers it matches (and their
 *   series_key hook), type and retention checks; a line is kept whole or
 *   refused whole → one append, fsync'ed with whatever else is queued
 *   (group commit) → each consumer's batch callback with its matched
 *   points → the answer (204 / PARTIAL_WRITE / 503).
 * So a consumer runs after the points are durable and before the writer
 * is acknowledged: "acknowledged means durable" holds, and a client that
 * reads after its write was acknowledged sees what consumers made of it.
 * A consumer never refuses points (they are stored already); it may count
 * some as left out of its live view (telemetry_verdict).
 *
 * Thread-safety: every call is thread-safe once telemetry_open returned,
 * except telemetry_consume, which is called while the server starts
 * (before it serves) and telemetry_close. */
#ifndef GROVE_TELEMETRY_H
#define GROVE_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"

struct telemetry;
struct series;
struct store;
struct router;
struct metrics;
struct health;
struct http_req;
struct json_t;

/* ---- options (section "telemetry" of `grove serve --help`) ----------------------
 * --series-flush, --series-flush-points, --series-retention,
 * --series-retention-1m, --series-retention-1h, --series-read-points,
 * --series-read-max: the names they had when flow owned them. */
struct telemetry_cfg {
  uint64_t flush_ms;         /* head → chunks every flush_ms */
  int flush_points;          /* … or once this many points are in memory (<= 0: no bound) */
  uint64_t keep_raw_ms, keep_1m_ms, keep_1h_ms; /* retention; 0: for ever */
  int read_points, read_max; /* raw points an answer holds by default, at most */
};
extern const struct cfg_opt telemetry_cfg_opts[];
extern const size_t telemetry_cfg_nopts;

/* What the platform lends the module; every pointer must outlive it. */
struct telemetry_env {
  struct store *store;       /* PostgreSQL store: the series live there too */
  const char *store_url;     /* --store as given */
  const char *data_dir;      /* SQLite: the series live in <data_dir>/series */
  struct metrics *metrics;   /* may be NULL (tests) */
  struct health *health;     /* may be NULL: no readiness check */
  bool retention_elsewhere;  /* another process applies retention (a `--role worker`
                              * instance): flushes here drop nothing, old points are
                              * still refused */
};

/* Opens the series store (PostgreSQL when env->store is one, else
 * <data_dir>/series), applies retention, starts the background flush and
 * adds the "series" readiness check. Returns 0, GROVE_ECONFIG for bad
 * options (err says which), or the store's error. On error *out is NULL
 * and err (errlen bytes) says why. */
int telemetry_open(struct telemetry **out, const struct telemetry_cfg *cfg,
                   const struct telemetry_env *env, char *err, size_t errlen);
/* Adds the write and read routes to router, each declaring its access
 * (writes: the write scope; reads: the read scope; /ping: anyone).
 * Returns 0, or the router's error (a route taken already: err says
 * which). */
int telemetry_routes(struct telemetry *t, struct router *router, char *err, size_t errlen);
/* Finishes queued writes and closes the store. NULL is fine. No write may
 * be in progress (the HTTP server has stopped). */
void telemetry_close(struct telemetry *t);

/* The series store, for an app's reads (series.h): owned by t. */
struct series *telemetry_series(struct telemetry *t);
/* The oldest time (ns) a point may have and still be stored (now minus
 * the raw retention; INT64_MIN: kept for ever). Points older are refused
 * by every write. */
int64_t telemetry_oldest_kept(struct telemetry *t);

/* ---- points as consumers see them --------------------------------------------- */

struct telemetry_str {
  const char *p;
  size_t n;                  /* not NUL-ended */
};
struct telemetry_tag {
  struct telemetry_str key, value;
};
#define TELEMETRY_MAX_TAGS 64     /* tags a line or key has at most */
#define TELEMETRY_MAX_FIELDS 128  /* fields a line has at most */

/* One stored numeric field of an accepted line. Integers, unsigned and
 * booleans are given as doubles (as they are stored). The strings and the
 * tags (in the order the writer gave them) belong to the write: valid for
 * the duration of the callback they are handed to. In a batch callback
 * every string is also NUL-ended (p[n] == '\0'); in series_key it is not.
 * In a batch the points of one line share its `tags` pointer (a consumer
 * may read a line's tags once); lines with tags never share one. */
struct telemetry_point {
  struct telemetry_str measurement, field;
  const struct telemetry_tag *tags;
  int ntags;
  int64_t ts_ns;
  double value;
  uint32_t series;           /* the series it is stored in (series.h); 0 in series_key */
};

/* The value of tag `key` among tags, or NULL. */
const struct telemetry_str *telemetry_tag_get(const struct telemetry_tag *tags, int ntags,
                                              const char *key);

/* What a consumer tells the writer about the points it was handed, summed
 * over consumers into the answer: `late` (left out of its live view as
 * older than its watermark) in X-Grove-Late-Points and details.late;
 * `ahead` (left out as later than the server's clock allows) in
 * X-Grove-Ahead-Points and details.ahead. */
struct telemetry_verdict {
  size_t late, ahead;
};

struct telemetry_consumer {
  const char *name;          /* unique; for logs ("flow"); not copied */
  /* The lines it wants: a measurement in this NULL-ended list (NULL: any
   * measurement) and, when `tag` is not NULL, a tag with this key (any
   * value). Only numeric fields are handed on. */
  const char *const *measurements;
  const char *tag;
  /* May be NULL. Called while a write is parsed, for each numeric field
   * of each line that matches, on the writer's thread: writing a series
   * key (telemetry_key_encode) into `key` and returning 1 stores the field
   * in that series instead of its own "measurement,tags field" (flow: a
   * station's readings are one series, whatever other tags a line has);
   * such a series takes any numeric type and records none. 0 keeps the
   * field's own series. GROVE_EINVAL or GROVE_ETOOBIG (a key it cannot
   * make) refuses the line as an invalid key; another GROVE_E* code fails
   * the whole write (503). The first consumer (in order of telemetry_consume) to
   * return 1 decides. p->series is 0 here. */
  int (*series_key)(const struct telemetry_point *p, struct buf *key, void *arg);
  /* Called for each accepted write that holds matching points, with all
   * of them in the order written, in one or more calls of at most
   * TELEMETRY_BATCH_MAX points (1 <= n), after they are durable and before
   * the writer is answered, on the writer's worker thread (several writes
   * may call it at once). It must not block on I/O; it may add to
   * *verdict (zeroed for each call; the calls' verdicts are summed). */
  void (*batch)(const struct telemetry_point *pts, size_t n, struct telemetry_verdict *verdict,
                void *arg);
  void *arg;
};
#define TELEMETRY_MAX_CONSUMERS 16
#define TELEMETRY_BATCH_MAX 1024 /* points handed to one batch call at most */

/* Registers a consumer (copied; c->name, c->measurements and c->tag must
 * outlive t). Before the server serves. Returns 0, GROVE_EEXIST for a name
 * taken, GROVE_EINVAL for no name or no batch callback, GROVE_ETOOBIG past
 * TELEMETRY_MAX_CONSUMERS. */
int telemetry_consume(struct telemetry *t, const struct telemetry_consumer *c);

/* Whether a line with this measurement and these tags is one consumer c
 * wants (the rule telemetry_consume states). */
bool telemetry_consumer_wants(const struct telemetry_consumer *c, const char *measurement,
                              size_t n, const struct telemetry_tag *tags, int ntags);

/* ---- writing points from an app (a JSON batch route, say) ----------------------- */

struct telemetry_field {
  struct telemetry_str key;
  double value;              /* finite; stored as a float */
};
struct telemetry_line {
  struct telemetry_str measurement;
  const struct telemetry_tag *tags;
  int ntags;                 /* 0 to TELEMETRY_MAX_TAGS */
  const struct telemetry_field *fields;
  int nfields;               /* 1 to TELEMETRY_MAX_FIELDS */
  int64_t ts_ns;
};
struct telemetry_result {
  size_t points;             /* stored */
  size_t refused;            /* lines refused (each told to `refused`) */
  struct telemetry_verdict verdict; /* summed over consumers */
};
/* Called for each line refused, with its index and why (a sentence). */
typedef void (*telemetry_refused_fn)(size_t index, const char *why, void *arg);

/* Writes lines through the same path as POST /api/v1/write: the same
 * keys, checks, consumers and metrics; each line kept whole or refused
 * whole (strings not valid UTF-8, a bad or too long key, a type conflict,
 * a time past the raw retention). Blocks until the kept points are
 * durable and the consumers have run: call it on a worker thread. OUT:
 * *res. Returns 0, or an error when nothing could be stored (GROVE_ENOMEM,
 * the store's error; then no consumer ran). */
int telemetry_write(struct telemetry *t, const struct telemetry_line *lines, size_t n,
                    telemetry_refused_fn refused, void *arg, struct telemetry_result *res);

/* The 400 PARTIAL_WRITE answer (the error envelope) of a write of `total`
 * items (`items`: "lines", "readings") of which `nfailed` were refused,
 * as POST /api/v1/write gives it, for an app's own write routes: message
 * "partial write: F of N <items> failed; the others were written" (or
 * "none was written"), details {"<items>": N, "failed_<items>": F,
 * "points_written", "late", "ahead" (from res), "failed": failed}.
 * `failed` is the JSON array saying which items failed and why (borrowed:
 * the answer takes its own reference). Call on r's loop. */
void telemetry_reply_partial(struct http_req *r, const char *items, size_t total,
                             size_t nfailed, const struct telemetry_result *res,
                             struct json_t *failed);

/* ---- series keys ----------------------------------------------------------------
 * A series is a measurement, tags and one field; its key is
 * "measurement[,tag=value…] field" in line protocol's escaping, tags
 * sorted (series/key.h states the rule). */
struct telemetry_key {
  struct telemetry_str measurement, field;
  struct telemetry_tag tags[TELEMETRY_MAX_TAGS];
  int ntags;
};
/* Resets out and writes the key of k (tags in any order). Returns 0,
 * GROVE_EINVAL (an empty part, a NUL byte, a tag twice), GROVE_ETOOBIG
 * (over 4096 bytes or out's maximum) or GROVE_ENOMEM. */
int telemetry_key_encode(struct buf *out, const struct telemetry_key *k);
/* Reads a key (strictly: GROVE_EINVAL for any other form). scratch needs
 * len bytes; out's strings point into it. */
int telemetry_key_decode(const char *key, size_t len, char *scratch, struct telemetry_key *out);

/* ---- answering a read as the series routes do -------------------------------------
 * For an app's own read routes (flow's station range): the query
 * parameters from, to (Unix ns or RFC 3339), limit, and with `buckets`
 * step and agg, read as GET /api/v1/series/range reads them; the answer
 * is that route's JSON with `head` (JSON members, each followed by a
 * comma; copied) put first. */
struct telemetry_read {
  bool buckets;              /* step and agg may be given */
  bool need_step;            /* step must be given */
  bool last_hour;            /* from and to default to the last hour */
  bool missing_null;         /* a series not stored answers "series": null */
  const char *head;          /* may be NULL */
};
/* Checks r's query and reads series `key` (encoded) on a worker thread,
 * then answers r: 200, 400 INVALID_QUERY, 400 TOO_MANY_BUCKETS, 503. */
void telemetry_read_reply(struct telemetry *t, struct http_req *r, const char *key,
                          const struct telemetry_read *how);
/* A query parameter as an int64 (or, with rfc3339, an RFC 3339 time in
 * ns). True when absent (*out kept) or valid; false when present and not. */
bool telemetry_param_int64(struct http_req *r, const char *name, bool rfc3339, int64_t *out);

#endif
