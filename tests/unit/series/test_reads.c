/* test_reads.c — reading a series costs work in proportion to the points
 * read (counted by the store, not timed), and a read bounded by a limit
 * goes on from `next` until every point has come exactly once. */
#include "../test.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <stdlib.h>

#include "core/error.h"
#include "series/internal.h"
#include "series/series.h"
#include "store.h"

#define SEC 1000000000LL

/* n points a second apart from t0, value i, written in batches of 5,000
 * with a flush after each: chunks as ingestion makes them, the newest
 * (by seq) holding the latest times. The last batch stays in the head. */
static void fill(struct series *s, uint32_t id, int64_t t0, size_t n) {
  struct series_point *b = malloc(5000 * sizeof *b);
  for (size_t at = 0; at < n; at += 5000) {
    size_t k = n - at < 5000 ? n - at : 5000;
    for (size_t i = 0; i < k; i++)
      b[i] = (struct series_point){id, t0 + (int64_t)(at + i) * SEC, (double)(at + i)};
    CHECK(series_append_sync(s, b, k) == 0);
    if (at + k < n)
      CHECK(series_flush(s) == 0);
  }
  free(b);
}

/* The work one full read of series id does; checks it returns n points. */
static uint64_t read_work(struct series *s, uint32_t id, size_t n) {
  uint64_t before = series_read_work(s);
  struct series_sample *pts;
  size_t got;
  CHECK(series_range(s, id, INT64_MIN, INT64_MAX, &pts, &got) == 0);
  CHECK_EQ_INT(got, n);
  for (size_t i = 0; i < got; i++)
    CHECK(pts[i].value == (double)i);
  free(pts);
  return series_read_work(s) - before;
}

/* The case: reading 100,000 points took 1.15 s and each doubling
 * four times more (chunks read newest first, each point inserted at the
 * front). Work is counted: points decoded, copied and compared. */
TEST(reading_twice_the_points_costs_twice_the_work) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a, b;
  CHECK(series_id(s, "lin,n=1 v", &a) == 0);
  CHECK(series_id(s, "lin,n=2 v", &b) == 0);
  const size_t n = 60000;
  fill(s, a, 1000 * SEC, n);
  fill(s, b, 1000 * SEC, 2 * n);
  uint64_t w1 = read_work(s, a, n), w2 = read_work(s, b, 2 * n);
  fprintf(stderr, "  work: %llu for %zu points, %llu for %zu\n", (unsigned long long)w1, n,
          (unsigned long long)w2, 2 * n);
  CHECK(w1 <= 6 * n);
  CHECK(w2 <= 6 * 2 * n);
  CHECK(w2 <= w1 * 21 / 10 + 4096);
  series_close(s);
}

/* A page of k points of a long series costs O(k), wherever it starts:
 * only the chunks the page is in are decoded. */
TEST(a_page_costs_its_points_not_the_series_length) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "page,n=1 v", &a) == 0);
  const size_t n = 200000;
  fill(s, a, 0, n);
  const int64_t starts[] = {0, 50000 * SEC, 150000 * SEC, 199500 * SEC};
  for (size_t k = 0; k < 4; k++) {
    uint64_t before = series_read_work(s);
    struct series_sample *pts;
    size_t got;
    bool more;
    int64_t next;
    CHECK(series_read(s, a, starts[k], INT64_MAX, 1000, &pts, &got, &more, &next) == 0);
    uint64_t w = series_read_work(s) - before;
    size_t want = starts[k] / SEC + 1000 <= (int64_t)n ? 1000 : n - (size_t)(starts[k] / SEC);
    CHECK_EQ_INT(got, want);
    CHECK(pts[0].ts_ns == starts[k]);
    CHECK(more == (starts[k] / SEC + 1000 < (int64_t)n));
    if (more)
      CHECK(next == starts[k] + 1000 * SEC);
    free(pts);
    /* two chunks at most decoded (4,096 points each), the page itself */
    CHECK(w <= 3 * 4096 + 4 * 1000);
  }
  CHECK_EQ_INT(series_read(s, a, 0, INT64_MAX, 0, NULL, NULL, NULL, NULL), GROVE_EINVAL);
  series_close(s);
}

/* Chunks that overlap (late rewrites), points set aside by a flush and
 * the head: a read in pages of 777 gets every timestamp once, the last
 * write of each, exactly as one unbounded read does. */
TEST(pages_through_overlapping_writes_get_every_point_once) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "over,n=1 v", &a) == 0);
  const size_t n = 30000;
  fill(s, a, 0, n);
  CHECK(series_flush(s) == 0);
  /* every 7th point again, newer values, in chunks that span the series */
  struct series_point *p = malloc((n / 7 + 1) * sizeof *p);
  size_t np = 0;
  for (size_t i = 0; i < n; i += 7)
    p[np++] = (struct series_point){a, (int64_t)i * SEC, -(double)i};
  CHECK(series_append_sync(s, p, np) == 0);
  CHECK(series_flush(s) == 0);
  np = 0;
  for (size_t i = 3; i < n + 500; i += 11) /* and in the head, some past the end */
    p[np++] = (struct series_point){a, (int64_t)i * SEC, 0.5 + (double)i};
  CHECK(series_append_sync(s, p, np) == 0);
  free(p);
  struct series_sample *all;
  size_t nall;
  CHECK(series_range(s, a, INT64_MIN, INT64_MAX, &all, &nall) == 0);
  size_t extra = 0;
  for (size_t i = 3; i < n + 500; i += 11)
    extra += i >= n;
  CHECK_EQ_INT(nall, n + extra);
  for (size_t i = 0; i < nall; i++) {
    size_t t = (size_t)(all[i].ts_ns / SEC);
    double want = t % 11 == 3 ? 0.5 + (double)t : t % 7 == 0 ? -(double)t : (double)t;
    CHECK(all[i].value == want);
    if (i)
      CHECK(all[i].ts_ns > all[i - 1].ts_ns);
  }
  size_t seen = 0;
  int64_t from = INT64_MIN;
  for (;;) {
    struct series_sample *pts;
    size_t got;
    bool more;
    int64_t next;
    CHECK(series_read(s, a, from, INT64_MAX, 777, &pts, &got, &more, &next) == 0);
    CHECK(got <= 777);
    for (size_t i = 0; i < got; i++) {
      CHECK(seen + i < nall);
      CHECK(pts[i].ts_ns == all[seen + i].ts_ns && pts[i].value == all[seen + i].value);
    }
    seen += got;
    free(pts);
    if (!more)
      break;
    CHECK(got == 777 && next > all[seen - 1].ts_ns);
    from = next;
  }
  CHECK_EQ_INT(seen, nall);
  free(all);
  series_close(s);
}

/* Buckets over a long series are linear too: a raw aggregate reads each
 * point once. */
TEST(raw_buckets_read_each_point_once) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  uint32_t a;
  CHECK(series_id(s, "agg,n=1 v", &a) == 0);
  const size_t n = 100000;
  fill(s, a, 0, n);
  uint64_t before = series_read_work(s);
  struct series_bucket *b;
  size_t nb;
  const char *src;
  CHECK(series_aggregate(s, a, 0, (int64_t)n * SEC, 10 * SEC, 100000, &b, &nb, &src) == 0);
  CHECK_EQ_STR(src, "raw");
  CHECK_EQ_INT(nb, n / 10);
  CHECK(b[7].count == 10 && b[7].first == 70 && b[7].last == 79);
  free(b);
  CHECK(series_read_work(s) - before <= 6 * n);
  series_close(s);
}

/* ---- PostgreSQL (GROVE_TEST_STORE=postgres://…) ------------------------------ */

/* Rows PostgreSQL reads from series_points for one page: the scans'
 * actual rows in EXPLAIN ANALYZE of the store's own query. */
static long pg_rows_read(PGconn *c, uint32_t id, int64_t from, size_t limit) {
  char a[16], b[24], d[24], sql[1024];
  snprintf(a, sizeof a, "%u", id);
  snprintf(b, sizeof b, "%lld", (long long)from);
  snprintf(d, sizeof d, "%zu", limit + 1);
  const char *params[] = {a, b, "9223372036854775807", d};
  snprintf(sql, sizeof sql, "EXPLAIN (ANALYZE, FORMAT TEXT) %s", pgs_range_sql);
  PGresult *r = PQexecParams(c, sql, 4, NULL, params, NULL, NULL, 0);
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
  long rows = 0;
  bool sorted = false;
  for (int i = 0; i < PQntuples(r); i++) {
    const char *line = PQgetvalue(r, i, 0), *sort = strstr(line, "Sort  ");
    bool scan = strstr(line, "Scan") && strstr(line, " on series_points");
    const char *actual = strstr(line, "actual time=");
    sorted |= sort != NULL;
    if (scan && actual) {
      const char *rw = strstr(actual, "rows=");
      rows += rw ? atol(rw + 5) : 0;
    }
  }
  if (sorted || !rows) /* a sort reads every row first */
    for (int i = 0; i < PQntuples(r); i++)
      fprintf(stderr, "  %s\n", PQgetvalue(r, i, 0));
  PQclear(r);
  CHECK(!sorted);
  return rows;
}

TEST(pg_a_page_reads_its_rows_not_the_series) {
  const char *url = getenv("GROVE_TEST_STORE");
  if (!url) {
    fprintf(stderr, "  (skipped: GROVE_TEST_STORE is not set)\n");
    return;
  }
  PGconn *c = PQconnectdb(url);
  CHECK(PQstatus(c) == CONNECTION_OK);
  PQclear(PQexec(c, "DROP TABLE IF EXISTS series_points, series_keys, series_rollups, series_meta "
                    "CASCADE; DROP SEQUENCE IF EXISTS series_groups"));
  struct series *s;
  char err[256];
  CHECK(series_open_pg(&s, url, err, sizeof err) == 0);
  uint32_t a;
  CHECK(series_id(s, "pgpage v", &a) == 0);
  const size_t n = 200000;
  struct series_point *p = malloc(20000 * sizeof *p);
  for (size_t at = 0; at < n; at += 20000) {
    for (size_t i = 0; i < 20000; i++)
      p[i] = (struct series_point){a, (int64_t)(at + i) * SEC, (double)(at + i)};
    CHECK(series_append_sync(s, p, 20000) == 0);
  }
  free(p);
  PQclear(PQexec(c, "ANALYZE series_points"));
  /* a page of 1,000 at the start, the middle and near the end */
  const int64_t starts[] = {0, 100000 * SEC, 198000 * SEC};
  for (size_t k = 0; k < 3; k++) {
    long rows = pg_rows_read(c, a, starts[k], 1000);
    fprintf(stderr, "  page at %lld s: %ld rows read\n", (long long)(starts[k] / SEC), rows);
    CHECK(rows >= 1001 && rows <= 2 * 1001);
    struct series_sample *pts;
    size_t got;
    bool more;
    int64_t next;
    CHECK(series_read(s, a, starts[k], INT64_MAX, 1000, &pts, &got, &more, &next) == 0);
    CHECK_EQ_INT(got, 1000);
    CHECK(pts[0].ts_ns == starts[k] && pts[999].value == (double)(starts[k] / SEC + 999));
    CHECK(more && next == starts[k] + 1000 * SEC);
    free(pts);
  }
  series_close(s);
  PQfinish(c);
}

static const struct test tests[] = {
    T(pg_a_page_reads_its_rows_not_the_series),
    T(reading_twice_the_points_costs_twice_the_work),
    T(a_page_costs_its_points_not_the_series_length),
    T(pages_through_overlapping_writes_get_every_point_once),
    T(raw_buckets_read_each_point_once),
};
TEST_MAIN(tests)
