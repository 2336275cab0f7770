/* flow.c — GreenFlow's ingestion (seed 000), the first part of the flow
 * app: sensors and collectors write InfluxDB line protocol to
 * POST /api/v1/write (Telegraf works unchanged), each numeric field of each
 * point becomes a point of the series "measurement,tags field" in the
 * series store, and the answer comes once the points are durable. Raw
 * points are read back with GET /api/v1/series/points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "cli/app.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gate/gate.h"
#include "net/http.h"
#include "series/lineproto.h"
#include "series/series.h"

#define MAX_INFLATED (64u * 1024 * 1024)
#define MAX_REPORTED 20 /* failed lines listed in an answer */
#define MAX_POINTS_READ 100000

struct flow_cfg {
  uint64_t flush_ms;
  int flush_points;
};

static struct flow_cfg flow_cfg;

#define O(name, type, field, def, help) {name, type, offsetof(struct flow_cfg, field), def, help}
static const struct cfg_opt flow_opts[] = {
    O("series-flush", CFG_MS, flush_ms, "10m", "how often points in memory are moved into compressed chunks"),
    O("series-flush-points", CFG_INT, flush_points, "1000000", "move points into chunks sooner once this many are in memory"),
};
#undef O

struct flow {
  struct grove_ctx ctx;
  struct series *series;
  struct metric *points_written, *lines_failed;
};

/* ---- POST /api/v1/write ------------------------------------------------- */

struct write_job {
  struct flow *f;
  char *body;          /* owned: the request's, or inflated */
  size_t len;
  enum lp_precision prec;
  int rc;
  int status;
  const char *code;
  char message[160];
  struct series_point *pts;
  size_t npts, cap;
  struct lp_stats stats;
  json_t *failed;
  int skipped;         /* string fields: not numeric series */
};

/* "measurement,k1=v1,k2=v2 field" with tags sorted, so the same series
 * always has the same key whatever order a writer lists its tags in. */
static int series_key(const struct lp_point *p, const struct lp_field *f, struct buf *out) {
  int order[LP_MAX_TAGS];
  for (int i = 0; i < p->ntags; i++)
    order[i] = i;
  for (int i = 1; i < p->ntags; i++) /* insertion sort: a few tags */
    for (int j = i; j > 0; j--) {
      const struct lp_str *a = &p->tag_keys[order[j - 1]], *b = &p->tag_keys[order[j]];
      size_t m = a->n < b->n ? a->n : b->n;
      int c = memcmp(a->p, b->p, m);
      if (c < 0 || (c == 0 && a->n <= b->n))
        break;
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  buf_reset(out);
  buf_append(out, p->measurement.p, p->measurement.n);
  for (int i = 0; i < p->ntags; i++) {
    buf_putc(out, ',');
    buf_append(out, p->tag_keys[order[i]].p, p->tag_keys[order[i]].n);
    buf_putc(out, '=');
    buf_append(out, p->tag_values[order[i]].p, p->tag_values[order[i]].n);
  }
  buf_putc(out, ' ');
  return buf_append(out, f->key.p, f->key.n);
}

static int on_point(const struct lp_point *p, void *arg) {
  struct write_job *j = arg;
  struct buf key;
  buf_init(&key, 4096);
  for (int i = 0; i < p->nfields; i++) {
    const struct lp_field *fl = &p->fields[i];
    double v;
    switch (fl->type) {
    case LP_FLOAT: v = fl->v.f; break;
    case LP_INT: v = (double)fl->v.i; break;
    case LP_UINT: v = (double)fl->v.u; break;
    case LP_BOOL: v = fl->v.b; break;
    default: j->skipped++; continue;
    }
    uint32_t id;
    if (series_key(p, fl, &key) || series_id(j->f->series, key.data, &id)) {
      j->skipped++;
      continue;
    }
    if (j->npts == j->cap) {
      size_t cap = j->cap ? j->cap * 2 : 1024;
      struct series_point *np = realloc(j->pts, cap * sizeof *np);
      if (!np) {
        buf_release(&key);
        return GROVE_ENOMEM;
      }
      j->pts = np;
      j->cap = cap;
    }
    j->pts[j->npts++] = (struct series_point){id, p->ts_ns, v};
  }
  buf_release(&key);
  return 0;
}

static void on_error(int line, const char *text, size_t len, const char *why, void *arg) {
  struct write_job *j = arg;
  if (json_array_size(j->failed) >= MAX_REPORTED)
    return;
  json_array_append_new(j->failed, json_pack("{s:i,s:s,s:s%}", "line", line, "error", why,
                                             "text", text, len > 120 ? (size_t)120 : len));
}

static int inflate_body(struct write_job *j) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 15 + 32) != Z_OK)
    return GROVE_ENOMEM;
  struct buf out;
  buf_init(&out, MAX_INFLATED);
  z.next_in = (Bytef *)j->body;
  z.avail_in = (uInt)j->len;
  int zr = Z_OK, rc = 0;
  while (zr != Z_STREAM_END) {
    if ((rc = buf_reserve(&out, 64 * 1024)))
      break;
    z.next_out = (Bytef *)out.data + out.len;
    z.avail_out = (uInt)(out.cap - out.len - 1);
    zr = inflate(&z, Z_NO_FLUSH);
    out.len = out.cap - 1 - z.avail_out;
    if (zr != Z_OK && zr != Z_STREAM_END) {
      rc = GROVE_EINVAL;
      break;
    }
    if (zr == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      rc = GROVE_EINVAL; /* truncated */
      break;
    }
  }
  inflateEnd(&z);
  if (rc) {
    buf_release(&out);
    return rc;
  }
  free(j->body);
  j->body = buf_detach(&out, &j->len);
  return 0;
}

static void write_work(void *arg) {
  struct write_job *j = arg;
  j->rc = lp_parse(j->body, j->len, j->prec, (int64_t)clock_wall_ms() * 1000000, on_point,
                   on_error, j, &j->stats);
  if (!j->rc && j->npts)
    j->rc = series_append_sync(j->f->series, j->pts, j->npts);
}

static void write_done(struct http_req *r, void *arg) {
  struct write_job *j = arg;
  struct flow *f = j->f;
  if (!j->rc) {
    metric_add(f->points_written, (double)j->npts);
    metric_add(f->lines_failed, j->stats.errors);
  }
  if (!r->conn) {
    /* the client left; what was written stays written */
  } else if (j->rc) {
    log_error(r->id, "cannot write points", "error=\"%s\"", grove_strerror(j->rc));
    http_reply_error(r, 503, "STORE_UNAVAILABLE", "points were not written; retry", NULL);
  } else if (j->stats.errors) {
    char msg[160];
    snprintf(msg, sizeof msg, "partial write: %d of %d lines failed; the others were written",
             j->stats.errors, j->stats.lines);
    http_reply_error(r, 400, "PARTIAL_WRITE", msg,
                     json_pack("{s:i,s:i,s:I,s:O}", "lines", j->stats.lines, "failed_lines",
                               j->stats.errors, "points_written", (json_int_t)j->npts,
                               "failed", j->failed));
  } else {
    http_reply(r, 204, NULL, NULL, 0);
  }
  json_decref(j->failed);
  free(j->body);
  free(j->pts);
  free(j);
}

static void handle_write(struct http_req *r) {
  struct flow *f = r->app;
  if (!gate_require(f->ctx.gate, r, GATE_WRITE, NULL))
    return;
  char prec_s[32] = "";
  enum lp_precision prec;
  http_query_get(r, "precision", 0, prec_s, sizeof prec_s); /* absent: nanoseconds */
  if (lp_precision_parse(prec_s, &prec)) {
    http_reply_error(r, 400, "INVALID_PRECISION", "precision must be ns, us, ms or s", NULL);
    return;
  }
  const char *enc = http_header_get(r, "content-encoding");
  if (enc && strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "identity") != 0) {
    http_reply_error(r, 415, "UNSUPPORTED_ENCODING", "Content-Encoding must be gzip or identity",
                     NULL);
    return;
  }
  struct write_job *j = calloc(1, sizeof *j);
  if (!j || !(j->body = malloc(r->body_len + 1)) || !(j->failed = json_array())) {
    if (j)
      free(j->body);
    free(j);
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->f = f;
  j->prec = prec;
  memcpy(j->body, r->body, r->body_len);
  j->len = r->body_len;
  if (enc && strcasecmp(enc, "gzip") == 0) {
    int rc = inflate_body(j);
    if (rc) {
      json_decref(j->failed);
      free(j->body);
      free(j);
      if (rc == GROVE_ETOOBIG)
        http_reply_error(r, 413, "BODY_TOO_LARGE", "the inflated body is over 64 MiB", NULL);
      else
        http_reply_error(r, 400, "BAD_GZIP", "the body is not valid gzip", NULL);
      return;
    }
  }
  if (http_req_defer(r, write_work, write_done, j)) {
    json_decref(j->failed);
    free(j->body);
    free(j);
    http_reply_error(r, 503, "BUSY", "server is busy", NULL);
  }
}

/* ---- GET /api/v1/series/points?series=KEY&from=NS&to=NS ------------------ */

struct read_job {
  struct flow *f;
  char key[1100];
  int64_t from, to;
  int rc;
  struct chunk_point *pts;
  size_t n;
};

static void read_work(void *arg) {
  struct read_job *j = arg;
  uint32_t id;
  /* an unknown key reads as empty, without making it */
  j->rc = series_find(j->f->series, j->key, &id);
  if (!j->rc)
    j->rc = series_range(j->f->series, id, j->from, j->to, &j->pts, &j->n);
}

static void read_done(struct http_req *r, void *arg) {
  struct read_job *j = arg;
  if (r->conn) {
    if (j->rc && j->rc != GROVE_ENOENT) {
      http_reply_error(r, 503, "STORE_UNAVAILABLE", "cannot read points now; try again", NULL);
    } else {
      size_t n = j->n > MAX_POINTS_READ ? MAX_POINTS_READ : j->n;
      struct buf b;
      buf_init(&b, 0);
      buf_puts(&b, "{\"series\":\"");
      buf_json_escape(&b, j->key, strlen(j->key));
      buf_puts(&b, "\",\"points\":[");
      for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s[%lld,%.17g]", i ? "," : "", (long long)j->pts[i].ts_ns,
                   j->pts[i].value);
      buf_printf(&b, "],\"truncated\":%s}", j->n > n ? "true" : "false");
      http_reply_raw(r, 200, b.data, b.len, NULL);
      buf_release(&b);
    }
  }
  free(j->pts);
  free(j);
}

static bool int64_param(struct http_req *r, const char *name, int64_t *out) {
  char v[32];
  long n = http_query_get(r, name, 0, v, sizeof v);
  if (n < 0)
    return true; /* absent: keep the default */
  char *end;
  long long x = strtoll(v, &end, 10);
  if (*end || end == v)
    return false;
  *out = x;
  return true;
}

static void handle_points(struct http_req *r) {
  struct flow *f = r->app;
  if (!gate_require(f->ctx.gate, r, GATE_READ, NULL))
    return;
  struct read_job *j = calloc(1, sizeof *j);
  if (!j) {
    http_reply_error(r, 503, "OUT_OF_MEMORY", "server is out of memory", NULL);
    return;
  }
  j->f = f;
  j->from = INT64_MIN;
  j->to = INT64_MAX;
  if (http_query_get(r, "series", 0, j->key, sizeof j->key) <= 0 ||
      !int64_param(r, "from", &j->from) || !int64_param(r, "to", &j->to)) {
    free(j);
    http_reply_error(r, 400, "INVALID_QUERY",
                     "give series=KEY (\"measurement,tag=value field\") and optional from, to (ns)",
                     NULL);
    return;
  }
  if (http_req_defer(r, read_work, read_done, j)) {
    free(j);
    http_reply_error(r, 503, "BUSY", "server is busy", NULL);
  }
}

/* ---- the app --------------------------------------------------------------- */

static int flow_start(struct grove_ctx *ctx, void **state) {
  struct flow *f = calloc(1, sizeof *f);
  if (!f)
    return GROVE_ENOMEM;
  f->ctx = *ctx;
  char dir[4096], err[256];
  snprintf(dir, sizeof dir, "%s/series", ctx->data_dir);
  int rc = series_open(&f->series, dir, err, sizeof err);
  if (rc) {
    log_error(NULL, "cannot open the series store", "error=\"%s\"", err);
    free(f);
    return rc;
  }
  if ((rc = series_autoflush(f->series, flow_cfg.flush_ms,
                             flow_cfg.flush_points > 0 ? (size_t)flow_cfg.flush_points : 0))) {
    series_close(f->series);
    free(f);
    return rc;
  }
  f->points_written = metric_get(metrics_family(ctx->metrics, "grove_series_points_written_total",
                                                "Points written durably to the series store.",
                                                METRIC_COUNTER, ""));
  f->lines_failed = metric_get(metrics_family(ctx->metrics, "grove_ingest_lines_failed_total",
                                              "Line protocol lines refused as malformed.",
                                              METRIC_COUNTER, ""));
  static const struct route_def routes[] = {
      {"POST", "/api/v1/write", handle_write},
      {"GET", "/api/v1/series/points", handle_points},
  };
  if ((rc = router_add_all(ctx->router, routes, ARRAY_LEN(routes), f))) {
    series_close(f->series);
    free(f);
    return rc;
  }
  *state = f;
  return 0;
}

static void flow_stop(void *state) {
  struct flow *f = state;
  series_close(f->series);
  free(f);
}

const struct grove_app flow_app = {
    .name = "flow",
    .summary = "air quality (GreenFlow): line protocol ingestion into the series store",
    .opts = flow_opts,
    .nopts = ARRAY_LEN(flow_opts),
    .cfg = &flow_cfg,
    .start = flow_start,
    .stop = flow_stop,
};
