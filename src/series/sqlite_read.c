/* sqlite_read.c — the SQLite backend reading a series: one pass that
 * merges its sorted runs of points (each chunk, the points set aside by a
 * flush, the head) by time, the newest write of each timestamp winning.
 *
 * Chunks come from SQLite in order of their first timestamp and are
 * decoded only once the merge reaches that timestamp, so a read that
 * stops after k points decodes the chunks those k points are in and no
 * more. Runs in progress sit in a binary heap keyed by (timestamp,
 * newest first); in the common case (chunks that do not overlap) it holds
 * two or three runs, so a read costs O(points read), with a log factor
 * only for overlapping chunks that late writes make. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "series/internal.h"

struct run {
  const struct series_sample *pts;
  size_t at, n;
  int64_t prio;              /* higher: newer; wins on equal timestamps */
  struct series_sample *own;   /* a decoded chunk (room for CHUNK_MAX), or NULL */
};

struct merge {
  struct run *heap;
  size_t n, cap;
  struct series_sample **spare; /* decode buffers free for reuse */
  size_t nspare, capspare;
  uint64_t work;
};

/* a before b: earlier timestamp, then newer write */
static bool before(const struct run *a, const struct run *b) {
  int64_t x = a->pts[a->at].ts_ns, y = b->pts[b->at].ts_ns;
  return x < y || (x == y && a->prio > b->prio);
}

static void sift_down(struct merge *m, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, best = i;
    m->work++;
    if (l < m->n && before(&m->heap[l], &m->heap[best]))
      best = l;
    if (r < m->n && before(&m->heap[r], &m->heap[best]))
      best = r;
    if (best == i)
      return;
    struct run t = m->heap[i];
    m->heap[i] = m->heap[best];
    m->heap[best] = t;
    i = best;
  }
}

static int push(struct merge *m, struct run r) {
  if (ARRAY_GROW(m->heap, m->cap, m->n + 1, 8, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  size_t i = m->n++;
  m->heap[i] = r;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    m->work++;
    if (!before(&m->heap[i], &m->heap[up]))
      break;
    struct run t = m->heap[i];
    m->heap[i] = m->heap[up];
    m->heap[up] = t;
    i = up;
  }
  return 0;
}

static void give_back(struct merge *m, struct series_sample *buf) {
  if (!buf)
    return;
  if (ARRAY_GROW(m->spare, m->capspare, m->nspare + 1, 4, ARRAY_NOMAX)) {
    free(buf);
    return;
  }
  m->spare[m->nspare++] = buf;
}

/* Moves the top run past its point; drops it when done. */
static void advance_top(struct merge *m) {
  struct run *top = &m->heap[0];
  if (++top->at == top->n) {
    give_back(m, top->own);
    m->heap[0] = m->heap[--m->n];
  }
  if (m->n)
    sift_down(m, 0);
}

/* Decodes the chunk on the statement's row into a run from `from` on. */
static int load_chunk(struct merge *m, sqlite3_stmt *st, int64_t from) {
  struct series_sample *buf = m->nspare ? m->spare[--m->nspare] : malloc(CHUNK_MAX * sizeof *buf);
  if (!buf)
    return GROVE_ENOMEM;
  size_t k;
  if (chunk_decode(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2), buf, &k)) {
    give_back(m, buf);
    return GROVE_ESTORE;
  }
  m->work += k;
  size_t at = points_lower_bound(buf, 0, k, from);
  if (at == k) {
    give_back(m, buf);
    return 0;
  }
  int rc = push(m, (struct run){buf, at, k, sqlite3_column_int64(st, 0), buf});
  if (rc)
    give_back(m, buf);
  return rc;
}

int merge_read(sqlite3 *db, uint32_t id, int64_t from, int64_t to, int64_t width,
               const struct merge_src *mem, size_t nmem, merge_fn fn, void *arg,
               uint64_t *work) {
  struct merge m = {0};
  sqlite3_stmt *st = NULL;
  int rc = 0, step = SQLITE_DONE;
  for (size_t i = 0; !rc && i < nmem; i++) {
    size_t at = points_lower_bound(mem[i].pts, 0, mem[i].n, from);
    m.work += mem[i].n - at;
    if (at < mem[i].n) /* above every chunk; later sources above earlier */
      rc = push(&m, (struct run){mem[i].pts, at, mem[i].n, INT64_MAX - (int64_t)(nmem - i), NULL});
  }
  if (!rc && db && from < to) {
    /* a chunk holding from starts at most `width` before it */
    int64_t lo;
    if (__builtin_sub_overflow(from, width, &lo))
      lo = INT64_MIN;
    if (sqlite3_prepare_v2(db, "SELECT seq, start_ns, data FROM chunks INDEXED BY chunks_by_start "
                               "WHERE series = ? AND start_ns >= ? AND start_ns < ? AND end_ns >= ? "
                               "ORDER BY start_ns",
                           -1, &st, NULL) != SQLITE_OK) {
      rc = GROVE_ESTORE;
    } else {
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_int64(st, 2, lo);
      sqlite3_bind_int64(st, 3, to);
      sqlite3_bind_int64(st, 4, from);
      step = sqlite3_step(st);
    }
  }
  while (!rc) {
    /* every chunk that may hold the next timestamp joins first */
    while (!rc && step == SQLITE_ROW &&
           (!m.n || sqlite3_column_int64(st, 1) <= m.heap[0].pts[m.heap[0].at].ts_ns)) {
      if (!(rc = load_chunk(&m, st, from)))
        step = sqlite3_step(st);
    }
    if (rc)
      break;
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
      rc = GROVE_ESTORE;
      break;
    }
    if (!m.n)
      break;
    struct series_sample p = m.heap[0].pts[m.heap[0].at];
    if (p.ts_ns >= to)
      break;
    /* the newest write of p.ts_ns is on top; the older ones go */
    do
      advance_top(&m);
    while (m.n && m.heap[0].pts[m.heap[0].at].ts_ns == p.ts_ns);
    m.work++;
    int r = fn(p.ts_ns, p.value, arg);
    if (r < 0)
      rc = r;
    if (r)
      break;
  }
  sqlite3_finalize(st);
  for (size_t i = 0; i < m.n; i++)
    free(m.heap[i].own);
  for (size_t i = 0; i < m.nspare; i++)
    free(m.spare[i]);
  free(m.heap);
  free(m.spare);
  if (work)
    *work += m.work;
  return rc;
}

static int append_point(int64_t ts, double v, void *arg) {
  struct head *acc = arg;
  if (ARRAY_GROW(acc->pts, acc->cap, acc->n + 1, 64, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  acc->pts[acc->n++] = (struct series_sample){ts, v};
  return 0;
}

int read_chunks(sqlite3 *db, uint32_t id, int64_t from, int64_t to, int64_t width,
                struct head *acc) {
  return merge_read(db, id, from, to, width, NULL, 0, append_point, acc, NULL);
}

/* ---- a store's reads: the head's layers merged with the chunks -------------------- */

/* The points in memory are copied first, under the lock; a flush
 * committing meanwhile only adds to the chunks points already copied, so
 * every point is seen. */
int read_points(struct series *s, sqlite3 *db, int64_t width, uint32_t id, int64_t from,
                int64_t to, size_t limit, merge_fn fn, void *arg) {
  struct merge_src mem[2];
  int rc = heads_copy(s, id, from, to, limit, mem);
  uint64_t work = 0;
  if (!rc)
    rc = merge_read(db, id, from, to, width, mem, 2, fn, arg, &work);
  __atomic_add_fetch(&s->read_work, work, __ATOMIC_RELAXED);
  free((void *)mem[0].pts);
  free((void *)mem[1].pts);
  return rc;
}

struct collect {
  struct head *acc;
  size_t limit;
  bool more;
  int64_t next;
};

static int collect_point(int64_t ts, double v, void *arg) {
  struct collect *c = arg;
  if (c->acc->n == c->limit) { /* one past the limit: where to go on */
    c->more = true;
    c->next = ts;
    return 1;
  }
  return append_point(ts, v, c->acc);
}

int read_collect(struct series *s, sqlite3 *db, int64_t width, uint32_t id, int64_t from,
                 int64_t to, size_t limit, struct head *acc, bool *more, int64_t *next) {
  struct collect c = {acc, limit, false, 0};
  size_t want = limit == SIZE_MAX ? limit : limit + 1;
  int rc = read_points(s, db, width, id, from, to, want, collect_point, &c);
  *more = c.more;
  *next = c.next;
  return rc;
}
