/* state.c — matrix's current state, written behind (state.h): pending
 * rows per host in memory, merged as the tables' upserts would, and the
 * flush that writes them in one transaction.
 *
 * Every value of a flush's statements is a parameter and rows go in
 * chunks of ROWS_BIG, ROWS_MID and 1, so a flush uses a few statement
 * shapes whose texts repeat from flush to flush: the store prepares each
 * once per connection. */
#include "apps/matrix/state.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/matrix/metrics.h"
#include "core/array.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/log.h"
#include "core/map.h"
#include "core/periodic.h"
#include "core/util.h"

#define ROWS_BIG 100 /* rows of a statement; 23 parameters a process row */
#define ROWS_MID 10

/* ---- pending rows ---------------------------------------------------------------- */

/* Strings are owned (malloc'ed) in every pending row. */
struct pproc {
  struct mx_proc p;
  int64_t ts, seen;
};
struct pgpu {
  struct mx_gpu g;
  int64_t ts, seen;
};
struct phost {
  bool vm;
  char *name;              /* the row's: the VM's name, or the host's */
  char *host;              /* the host that reported it */
  int64_t ts, seen;
  char *agent_id, *hypervisor, *instance_type, *cpu_model; /* NULL: keep the table's */
  bool has_seq;
  uint64_t seq;
  double h[MX_H_N];
  uint32_t hhave;
  char *metrics;           /* the `metrics` column's JSON, NULL: keep the table's */
  struct map procs;        /* "pid\tname" -> struct pproc * */
  struct pgpu *gpus;
  size_t ngpus, capgpus;
};

struct mx_state {
  struct store *st;
  pthread_mutex_t lock;    /* hosts, bytes */
  struct map hosts;        /* "h\t<name>" / "v\t<name>" -> struct phost * */
  size_t bytes;            /* the pending rows' size, from above: what every put
                            * brought, rows it replaced counted still */
  size_t max_bytes;
  struct map *flushing;    /* the rows a flush is writing (read-only meanwhile):
                            * still waiting for mx_state_live */
  pthread_mutex_t flush_lock; /* one flush at a time */
  struct periodic *flusher;
};

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void replace(char **slot, char *v) {
  free(*slot);
  *slot = v;
}

/* A process row and its strings: one allocation (proc_new). */
static void proc_free(struct pproc *p) { free(p); }

static size_t len0(const char *t) { return t ? strlen(t) + 1 : 0; }

/* Copies t to *at (moved past it); NULL stays NULL. */
static const char *put_str(char **at, const char *t) {
  if (!t) return NULL;
  size_t n = strlen(t) + 1;
  char *c = memcpy(*at, t, n);
  *at += n;
  return c;
}

/* A process row of src, its strings copied after it in the same block. */
static struct pproc *proc_new(const struct mx_proc *src, int64_t ts, int64_t seen) {
  size_t n = len0(src->name) + len0(src->command) + len0(src->user) + len0(src->cgroup) +
             len0(src->container_id);
  struct pproc *p = malloc(sizeof *p + n);
  if (!p) return NULL;
  memset(p, 0, sizeof *p);
  p->p = *src;
  p->ts = ts;
  p->seen = seen;
  char *at = (char *)(p + 1);
  p->p.name = put_str(&at, src->name);
  p->p.command = put_str(&at, src->command);
  p->p.user = put_str(&at, src->user);
  p->p.cgroup = put_str(&at, src->cgroup);
  p->p.container_id = put_str(&at, src->container_id);
  return p;
}

static void host_free(struct phost *h) {
  if (!h) return;
  free(h->name);
  free(h->host);
  free(h->agent_id);
  free(h->hypervisor);
  free(h->instance_type);
  free(h->cpu_model);
  free(h->metrics);
  const char *k;
  void *v;
  for (size_t it = 0; map_next(&h->procs, &it, &k, &v);) proc_free(v);
  map_release(&h->procs);
  for (size_t i = 0; i < h->ngpus; i++) free((char *)h->gpus[i].g.name);
  free(h->gpus);
  free(h);
}


static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* The host-level figures but the five with their own columns, GPUs,
 * disks, networks and cores, as the `metrics` column's JSON (NULL when
 * the sample has none of them: the row keeps its last). */
static char *host_json(const struct mx_sample *s) {
  json_t *o = json_object();
  for (int i = MX_H_LOAD5; i < MX_H_N; i++)
    if (s->hhave & (1u << i))
      json_object_set_new(o, mx_hfield_names[i],
                          i == MX_H_CPU_ESTIMATED ? json_boolean(s->h[i] != 0) : jnum(s->h[i]));
  if (s->ndisks || s->nnets) {
    for (int d = 0; d < 2; d++) {
      json_t *a = json_array();
      size_t n = d ? s->nnets : s->ndisks;
      for (size_t i = 0; i < n; i++) {
        const struct mx_dev *x = d ? &s->nets[i] : &s->disks[i];
        json_t *e = json_pack("{s:s}", "name", x->name);
        for (int f = 0; f < MX_D_N; f++)
          if (x->have & (1u << f))
            json_object_set_new(e, (d ? mx_net_field_names : mx_disk_field_names)[f], jnum(x->v[f]));
        json_array_append_new(a, e);
      }
      json_object_set_new(o, d ? "networks" : "disks", a);
    }
  }
  if (s->ncores) {
    json_t *a = json_array();
    for (size_t i = 0; i < s->ncores; i++) json_array_append_new(a, jnum(s->cores[i]));
    json_object_set_new(o, "cpu_cores_percent", a);
  }
  char *text = json_object_size(o) ? jsonout_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return text;
}

/* A sample as pending rows (all its own copies), its processes where
 * keep[i]. NULL: out of memory. */
static struct phost *host_of(const struct mx_sample *s, const bool *keep, int64_t seen) {
  struct phost *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  map_init(&h->procs);
  h->vm = s->vm;
  h->ts = s->ts_ns;
  h->seen = seen;
  h->has_seq = s->has_seq;
  h->seq = s->seq;
  memcpy(h->h, s->h, sizeof h->h);
  h->hhave = s->hhave;
  bool ok = (h->name = strdup(s->vm ? s->vm_name : s->host)) && (h->host = strdup(s->host));
  if (ok && s->agent_id) ok = (h->agent_id = strdup(s->agent_id)) != NULL;
  if (ok && s->hypervisor) ok = (h->hypervisor = strdup(s->hypervisor)) != NULL;
  if (ok && s->instance_type) ok = (h->instance_type = strdup(s->instance_type)) != NULL;
  if (ok && s->cpu_model) ok = (h->cpu_model = strdup(s->cpu_model)) != NULL;
  h->metrics = ok ? host_json(s) : NULL;
  char k[MX_MAX_NAME + 32];
  for (size_t i = 0; ok && i < s->nprocs; i++) {
    if (keep && !keep[i]) continue;
    const struct mx_proc *src = &s->procs[i];
    struct pproc *p = proc_new(src, s->ts_ns, seen);
    ok = p != NULL;
    void *old = NULL;
    mx_proc_key(k, sizeof k, src->pid, src->name);
    if (ok) ok = map_put(&h->procs, k, p, &old) == 0; /* a duplicate: the last wins */
    if (!ok) proc_free(p);
    proc_free(old);
  }
  /* GPUs: one per index, the last of duplicates */
  for (size_t i = 0; ok && i < s->ngpus; i++) {
    const struct mx_gpu *g = &s->gpus[i];
    size_t at = 0;
    while (at < h->ngpus && h->gpus[at].g.index != g->index) at++;
    if (at == h->ngpus) {
      if (!(ok = ARRAY_GROW(h->gpus, h->capgpus, h->ngpus + 1, 4, ARRAY_NOMAX) == 0)) break;
      h->ngpus++;
    } else {
      free((char *)h->gpus[at].g.name);
    }
    h->gpus[at] = (struct pgpu){*g, s->ts_ns, seen};
    h->gpus[at].g.name = dup_or_null(g->name);
    ok = !g->name || h->gpus[at].g.name;
  }
  if (!ok) {
    host_free(h);
    return NULL;
  }
  return h;
}

/* What h holds in memory, about (strings, rows, the maps' slots). */
static size_t host_bytes(const struct phost *h) {
  size_t n = sizeof *h + len0(h->name) + len0(h->host) + len0(h->agent_id) +
             len0(h->hypervisor) + len0(h->instance_type) + len0(h->cpu_model) +
             len0(h->metrics) + h->procs.cap * sizeof(struct map_slot);
  const char *k;
  void *v;
  for (size_t it = 0; map_next(&h->procs, &it, &k, &v);) {
    const struct pproc *p = v;
    n += sizeof *p + strlen(k) + 1 + len0(p->p.name) + len0(p->p.command) + len0(p->p.user) +
         len0(p->p.cgroup) + len0(p->p.container_id);
  }
  for (size_t i = 0; i < h->ngpus; i++) n += sizeof h->gpus[i] + len0(h->gpus[i].g.name);
  return n;
}

/* Applies src (which arrived after dst) onto dst, as the tables' upserts
 * would, one after the other: a row of an older timestamp changes
 * nothing; hosts and GPUs keep what the newer leaves out; processes are
 * replaced whole. Consumes src's rows. Returns the rows dst gained, or
 * SIZE_MAX on no memory (dst stays whole and consistent; src's rows not
 * taken are freed). */
static size_t host_apply(struct phost *dst, struct phost *src) {
  size_t gained = 0;
  if (src->ts >= dst->ts) {
    dst->ts = src->ts;
    dst->seen = src->seen > dst->seen ? src->seen : dst->seen;
    replace(&dst->host, src->host), src->host = NULL;
    char **d[] = {&dst->agent_id, &dst->hypervisor, &dst->instance_type, &dst->cpu_model,
                  &dst->metrics};
    char **s[] = {&src->agent_id, &src->hypervisor, &src->instance_type, &src->cpu_model,
                  &src->metrics};
    for (size_t i = 0; i < ARRAY_LEN(d); i++)
      if (*s[i]) replace(d[i], *s[i]), *s[i] = NULL;
    if (src->has_seq) dst->has_seq = true, dst->seq = src->seq;
    for (int i = 0; i < MX_H_N; i++)
      if (src->hhave & (1u << i)) dst->h[i] = src->h[i], dst->hhave |= 1u << i;
  }
  bool nomem = false;
  const char *k;
  void *v;
  for (size_t it = 0; map_next(&src->procs, &it, &k, &v);) {
    struct pproc *p = v, *have = map_get(&dst->procs, k);
    if (have && have->ts > p->ts) {
      proc_free(p);
      continue;
    }
    void *old = NULL;
    if (map_put(&dst->procs, k, p, &old)) {
      proc_free(p);
      nomem = true;
      continue;
    }
    if (old) proc_free(old);
    else gained++;
  }
  map_release(&src->procs); /* the rows moved or were freed */
  map_init(&src->procs);
  for (size_t i = 0; i < src->ngpus; i++) {
    struct pgpu *g = &src->gpus[i];
    size_t at = 0;
    while (at < dst->ngpus && dst->gpus[at].g.index != g->g.index) at++;
    if (at == dst->ngpus) {
      if (ARRAY_GROW(dst->gpus, dst->capgpus, dst->ngpus + 1, 4, ARRAY_NOMAX)) {
        nomem = true;
        continue;
      }
      dst->gpus[dst->ngpus++] = *g;
      g->g.name = NULL;
      gained++;
      continue;
    }
    struct pgpu *d = &dst->gpus[at];
    if (g->ts < d->ts) continue;
    d->ts = g->ts;
    d->seen = g->seen > d->seen ? g->seen : d->seen;
    if (g->g.name) replace((char **)&d->g.name, (char *)g->g.name), g->g.name = NULL;
    for (int f = 0; f < MX_G_N; f++)
      if (g->g.have & (1u << f)) d->g.v[f] = g->g.v[f], d->g.have |= 1u << f;
  }
  host_free(src);
  return nomem ? SIZE_MAX : gained;
}

static void host_key(char *out, size_t n, bool vm, const char *name) {
  snprintf(out, n, "%c\t%s", vm ? 'v' : 'h', name);
}

/* Puts h (arrived last) into map (under the caller's lock): merged into
 * the host's pending rows, or added. Returns 0 or GROVE_ENOMEM. */
static int host_put(struct map *hosts, struct phost *h) {
  char k[MX_MAX_NAME + 4];
  host_key(k, sizeof k, h->vm, h->name);
  struct phost *have = map_get(hosts, k);
  if (!have) {
    if (map_put(hosts, k, h, NULL)) {
      host_free(h);
      return GROVE_ENOMEM;
    }
    return 0;
  }
  return host_apply(have, h) == SIZE_MAX ? GROVE_ENOMEM : 0;
}

/* ---- statements ------------------------------------------------------------------ */

/* SQL text and its parameters (texts in one buffer, NULL for SQL NULL). */
struct sqlb {
  struct buf sql, vals;
  size_t *off;               /* offset in vals, or SIZE_MAX: NULL */
  size_t n, cap;
  const char **params;
  int rc;
};

static void sqlb_init(struct sqlb *q) {
  memset(q, 0, sizeof *q);
  buf_init(&q->sql, 0);
  buf_init(&q->vals, 0);
}
static void sqlb_reset(struct sqlb *q) {
  buf_reset(&q->sql);
  buf_reset(&q->vals);
  q->n = 0;
  q->rc = 0;
}
static void sqlb_release(struct sqlb *q) {
  buf_release(&q->sql);
  buf_release(&q->vals);
  free(q->off);
  free(q->params);
}
static void sqlb_sql(struct sqlb *q, const char *s) {
  if (!q->rc) q->rc = buf_puts(&q->sql, s);
}
/* Adds a parameter and writes "$n" into the SQL (after `sep`). */
static void sqlb_param(struct sqlb *q, const char *sep, const char *v) {
  if (q->rc) return;
  if ((q->rc = ARRAY_GROW(q->off, q->cap, q->n + 1, 64, ARRAY_NOMAX))) return;
  size_t at = SIZE_MAX;
  if (v) {
    at = q->vals.len;
    if ((q->rc = buf_append(&q->vals, v, strlen(v) + 1))) return;
  }
  q->off[q->n++] = at;
  q->rc = buf_printf(&q->sql, "%s$%zu", sep, q->n);
}
static void sqlb_num(struct sqlb *q, const char *sep, double v, bool have) {
  char t[JSONOUT_DOUBLE_MAX];
  if (have && isfinite(v)) jsonout_double(t, v);
  sqlb_param(q, sep, have && isfinite(v) ? t : NULL);
}
static void sqlb_int(struct sqlb *q, const char *sep, int64_t v, bool have) {
  char t[24];
  snprintf(t, sizeof t, "%" PRId64, v);
  sqlb_param(q, sep, have ? t : NULL);
}
static int sqlb_exec(struct sqlb *q, struct store_conn *c, char *err, size_t errlen) {
  if (q->rc) return q->rc;
  free(q->params);
  if (!(q->params = malloc((q->n ? q->n : 1) * sizeof *q->params))) return GROVE_ENOMEM;
  for (size_t i = 0; i < q->n; i++)
    q->params[i] = q->off[i] == SIZE_MAX ? NULL : q->vals.data + q->off[i];
  return store_exec(c, q->sql.data, q->params, (int)q->n, NULL, err, errlen);
}

/* "SET a = excluded.a, …" for every name, COALESCE'd with the table's
 * value when `keep`. */
static void set_list(struct sqlb *q, const char *table, const char *const *names, size_t n,
                     bool keep) {
  char t[200];
  for (size_t i = 0; i < n; i++) {
    if (keep)
      snprintf(t, sizeof t, ", %s = COALESCE(excluded.%s, %s.%s)", names[i], names[i], table,
               names[i]);
    else
      snprintf(t, sizeof t, ", %s = excluded.%s", names[i], names[i]);
    sqlb_sql(q, t);
  }
}

static const char *const host_keep[] = {"agent_id", "seq", "hypervisor", "instance_type",
                                        "cpu_model", "metrics", "total_cpu_usage",
                                        "total_memory_usage", "total_gpu_usage",
                                        "total_power_consumption", "system_load_average"};

static void upsert_host(struct sqlb *q, const struct phost *h) {
  sqlb_sql(q, "INSERT INTO matrix_hosts (kind, name, host, ts, seen, agent_id, seq, hypervisor,"
              " instance_type, cpu_model, total_cpu_usage, total_memory_usage, total_gpu_usage,"
              " total_power_consumption, system_load_average, metrics) VALUES (");
  sqlb_param(q, "", h->vm ? "vm" : "host");
  sqlb_param(q, ",", h->name);
  sqlb_param(q, ",", h->host);
  sqlb_int(q, ",", h->ts, true);
  sqlb_int(q, ",", h->seen, true);
  sqlb_param(q, ",", h->agent_id);
  sqlb_int(q, ",", (int64_t)h->seq, h->has_seq);
  sqlb_param(q, ",", h->hypervisor);
  sqlb_param(q, ",", h->instance_type);
  sqlb_param(q, ",", h->cpu_model);
  for (int i = 0; i < 5; i++) /* MX_H_CPU … MX_H_LOAD1 */
    sqlb_num(q, ",", h->h[i], h->hhave & (1u << i));
  sqlb_param(q, ",", h->metrics);
  sqlb_sql(q, ") ON CONFLICT (kind, name) DO UPDATE SET host = excluded.host, ts = excluded.ts,"
              " seen = excluded.seen");
  set_list(q, "matrix_hosts", host_keep, ARRAY_LEN(host_keep), true);
  sqlb_sql(q, " WHERE matrix_hosts.ts <= excluded.ts");
}

static const char *const proc_set[] = {"seen", "ppid", "command", "user_name", "cgroup",
                                       "container_id"};

static void upsert_procs_head(struct sqlb *q) {
  sqlb_sql(q, "INSERT INTO matrix_processes (kind, host, pid, process, ts, seen, ppid, command,"
              " user_name, cgroup, container_id");
  for (int f = 0; f < MX_P_N; f++) {
    sqlb_sql(q, ", ");
    sqlb_sql(q, mx_pfield_names[f]);
  }
  sqlb_sql(q, ") VALUES ");
}

static void upsert_procs_tail(struct sqlb *q) {
  sqlb_sql(q, " ON CONFLICT (kind, host, pid, process) DO UPDATE SET ts = excluded.ts");
  set_list(q, NULL, proc_set, ARRAY_LEN(proc_set), false);
  set_list(q, NULL, mx_pfield_names, MX_P_N, false);
  sqlb_sql(q, " WHERE matrix_processes.ts <= excluded.ts");
}

static void proc_row(struct sqlb *q, const struct phost *h, const struct pproc *pp, bool first) {
  const struct mx_proc *p = &pp->p;
  sqlb_param(q, first ? "(" : ",(", h->vm ? "vm" : "host");
  sqlb_param(q, ",", h->name);
  sqlb_int(q, ",", p->pid, true);
  sqlb_param(q, ",", p->name);
  sqlb_int(q, ",", pp->ts, true);
  sqlb_int(q, ",", pp->seen, true);
  sqlb_int(q, ",", p->ppid, p->ppid >= 0);
  sqlb_param(q, ",", p->command);
  sqlb_param(q, ",", p->user);
  sqlb_param(q, ",", p->cgroup);
  sqlb_param(q, ",", p->container_id);
  for (int f = 0; f < MX_P_N; f++) sqlb_num(q, ",", p->v[f], p->have & (1u << f));
  sqlb_sql(q, ")");
}

static void upsert_gpus_head(struct sqlb *q) {
  sqlb_sql(q, "INSERT INTO matrix_gpus (kind, host, gpu, name, ts, seen");
  for (int f = 0; f < MX_G_N; f++) {
    sqlb_sql(q, ", ");
    sqlb_sql(q, mx_gfield_names[f]);
  }
  sqlb_sql(q, ") VALUES ");
}

static void upsert_gpus_tail(struct sqlb *q) {
  sqlb_sql(q, " ON CONFLICT (kind, host, gpu) DO UPDATE SET ts = excluded.ts,"
              " seen = excluded.seen, name = COALESCE(excluded.name, matrix_gpus.name)");
  set_list(q, "matrix_gpus", mx_gfield_names, MX_G_N, true);
  sqlb_sql(q, " WHERE matrix_gpus.ts <= excluded.ts");
}

static void gpu_row(struct sqlb *q, const struct phost *h, const struct pgpu *g, bool first) {
  sqlb_param(q, first ? "(" : ",(", h->vm ? "vm" : "host");
  sqlb_param(q, ",", h->name);
  sqlb_int(q, ",", g->g.index, true);
  sqlb_param(q, ",", g->g.name);
  sqlb_int(q, ",", g->ts, true);
  sqlb_int(q, ",", g->seen, true);
  for (int f = 0; f < MX_G_N; f++) sqlb_num(q, ",", g->g.v[f], g->g.have & (1u << f));
  sqlb_sql(q, ")");
}

/* A cursor over the rows of one kind across every pending host. */
struct cursor {
  struct map *hosts;
  size_t hit;                /* the hosts map's iterator */
  struct phost *h;
  size_t rit;                /* the row's: the procs map's iterator, or a GPU index */
  bool gpus;
};

/* The next row (its host in *h; a struct pproc * or struct pgpu *), or
 * NULL at the end. */
static void *cursor_next(struct cursor *c, struct phost **h) {
  for (;;) {
    if (c->h) {
      void *row = NULL;
      if (c->gpus) row = c->rit < c->h->ngpus ? &c->h->gpus[c->rit++] : NULL;
      else if (!map_next(&c->h->procs, &c->rit, NULL, &row)) row = NULL;
      if (row) {
        *h = c->h;
        return row;
      }
    }
    void *v;
    if (!map_next(c->hosts, &c->hit, NULL, &v)) return NULL;
    c->h = v;
    c->rit = 0;
  }
}

/* Writes every row of one kind (processes or GPUs) of `hosts` in chunks
 * of ROWS_BIG, ROWS_MID and 1 rows, inside the caller's transaction. */
static int write_rows(struct store_conn *c, struct map *hosts, bool gpus, size_t total,
                      struct sqlb *q, char *err, size_t errlen) {
  struct cursor cur = {hosts, 0, NULL, 0, gpus};
  int rc = 0;
  while (!rc && total > 0) {
    size_t n = total >= ROWS_BIG ? ROWS_BIG : total >= ROWS_MID ? ROWS_MID : 1;
    sqlb_reset(q);
    gpus ? upsert_gpus_head(q) : upsert_procs_head(q);
    size_t got = 0;
    struct phost *h;
    void *row;
    while (got < n && (row = cursor_next(&cur, &h))) {
      if (gpus) gpu_row(q, h, row, got == 0);
      else proc_row(q, h, row, got == 0);
      got++;
    }
    if (!got) break;
    gpus ? upsert_gpus_tail(q) : upsert_procs_tail(q);
    rc = sqlb_exec(q, c, err, errlen);
    total -= got;
  }
  return rc;
}

static int write_all(struct store *st, struct map *hosts, char *err, size_t errlen) {
  struct store_conn *c = NULL;
  int rc = store_acquire(st, &c);
  if (rc) {
    snprintf(err, errlen, "%s", grove_strerror(rc));
    return rc;
  }
  if ((rc = store_begin(c))) {
    snprintf(err, errlen, "%s", grove_strerror(rc));
    store_release(st, c);
    return rc;
  }
  struct sqlb q;
  sqlb_init(&q);
  size_t nprocs = 0, ngpus = 0;
  const char *k;
  void *v;
  for (size_t it = 0; !rc && map_next(hosts, &it, &k, &v);) {
    struct phost *h = v;
    nprocs += h->procs.len;
    ngpus += h->ngpus;
    sqlb_reset(&q);
    upsert_host(&q, h);
    rc = sqlb_exec(&q, c, err, errlen);
  }
  if (!rc) rc = write_rows(c, hosts, false, nprocs, &q, err, errlen);
  if (!rc) rc = write_rows(c, hosts, true, ngpus, &q, err, errlen);
  sqlb_release(&q);
  if (!rc) rc = store_commit(c);
  else store_rollback(c);
  if (rc && !err[0]) snprintf(err, errlen, "%s", grove_strerror(rc));
  store_release(st, c);
  return rc;
}

static void hosts_free(struct map *hosts) {
  const char *k;
  void *v;
  for (size_t it = 0; map_next(hosts, &it, &k, &v);) host_free(v);
  map_release(hosts);
}

/* ---- the interface --------------------------------------------------------------- */

int mx_state_flush(struct mx_state *s, char *err, size_t errlen) {
  if (errlen) err[0] = '\0';
  pthread_mutex_lock(&s->flush_lock);
  pthread_mutex_lock(&s->lock);
  struct map taken = s->hosts;
  size_t bytes = s->bytes;
  map_init(&s->hosts);
  s->bytes = 0;
  s->flushing = &taken;
  pthread_mutex_unlock(&s->lock);
  int rc = taken.len ? write_all(s->st, &taken, err, errlen) : 0;
  pthread_mutex_lock(&s->lock);
  s->flushing = NULL; /* written (the store shows them), or merged back below */
  pthread_mutex_unlock(&s->lock);
  if (rc) {
    /* kept for the next flush: what arrived meanwhile goes on top */
    pthread_mutex_lock(&s->lock);
    struct map later = s->hosts;
    s->hosts = taken;
    s->bytes += bytes;
    const char *k;
    void *v;
    for (size_t it = 0; map_next(&later, &it, &k, &v);)
      if (host_put(&s->hosts, v))
        log_error(NULL, "matrix state: out of memory merging a failed flush; a host's newest "
                        "state waits for its next push", "host=\"%s\"", k + 2);
    map_release(&later);
    pthread_mutex_unlock(&s->lock);
  } else {
    hosts_free(&taken);
  }
  pthread_mutex_unlock(&s->flush_lock);
  return rc;
}

int mx_state_put(struct mx_state *s, const struct mx_sample *smp, const bool *keep, int64_t seen,
                 char *err, size_t errlen) {
  struct phost *h = host_of(smp, keep, seen);
  if (!h) return GROVE_ENOMEM;
  size_t size = host_bytes(h);
  pthread_mutex_lock(&s->lock);
  bool full = s->bytes + size > s->max_bytes;
  pthread_mutex_unlock(&s->lock);
  if (full && mx_state_flush(s, err, errlen))
    log_warn(NULL, "matrix state flush failed; its rows wait for the next", "error=\"%s\"", err);
  pthread_mutex_lock(&s->lock);
  int rc = s->bytes && s->bytes + size > s->max_bytes ? GROVE_EBUSY : host_put(&s->hosts, h);
  if (!rc) s->bytes += size;
  pthread_mutex_unlock(&s->lock);
  if (rc == GROVE_EBUSY) {
    host_free(h);
    snprintf(err, errlen, "the current state waiting for the store is at its bound (%zu bytes)",
             s->max_bytes);
  }
  return rc;
}

int mx_state_live(struct mx_state *s, bool vm, const char *host, int64_t since, struct map *into) {
  char k[MX_MAX_NAME + 32];
  host_key(k, sizeof k, vm, host);
  int rc = 0;
  pthread_mutex_lock(&s->lock);
  /* waiting, and being written by a flush (in neither the map nor the
   * store's committed rows until it commits) */
  struct map *maps[] = {&s->hosts, s->flushing};
  for (size_t m = 0; m < 2 && !rc; m++) {
    struct phost *h = maps[m] ? map_get(maps[m], k) : NULL;
    const char *pk;
    void *v;
    for (size_t it = 0; h && !rc && map_next(&h->procs, &it, &pk, &v);)
      if (((struct pproc *)v)->seen >= since) rc = map_put(into, pk, (void *)1, NULL);
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

static uint64_t periodic_flush(void *arg) {
  struct mx_state *s = arg;
  char err[256];
  if (mx_state_flush(s, err, sizeof err))
    log_warn(NULL, "matrix state flush failed; its rows wait for the next", "error=\"%s\"", err);
  return 0;
}

int mx_state_open(struct mx_state **out, struct store *st, uint64_t flush_ms, size_t max_bytes) {
  struct mx_state *s = calloc(1, sizeof *s);
  if (!s) return GROVE_ENOMEM;
  s->st = st;
  s->max_bytes = max_bytes ? max_bytes : MX_STATE_MAX_BYTES;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->flush_lock, NULL);
  map_init(&s->hosts);
  int rc = flush_ms ? periodic_start(&s->flusher, flush_ms, periodic_flush, s) : 0;
  if (rc) {
    mx_state_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

void mx_state_close(struct mx_state *s) {
  if (!s) return;
  periodic_stop(s->flusher);
  char err[256];
  if (mx_state_flush(s, err, sizeof err))
    log_error(NULL, "matrix state: the last flush failed; the hosts' next pushes write it again",
              "error=\"%s\"", err);
  hosts_free(&s->hosts);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->flush_lock);
  free(s);
}
