/* test_writer.c — flow's background writer: rows queued are written in
 * batches, a full queue drops and counts rather than waits, a sync sees
 * everything queued before it, and stopping writes what is left. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "apps/flow/flow.h"
#include "core/error.h"
#include "core/metrics.h"

extern const struct grove_app flow_app;

static struct store *open_flow_store(void) {
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/grove-writer-XXXXXX");
  CHECK(mkdtemp(dir));
  struct store_cfg cfg = {.url = "sqlite", .data_dir = dir, .pool = 4, .busy_timeout_ms = 20000};
  struct store *s;
  char err[256];
  int rc = store_open(&s, &cfg, err, sizeof err);
  if (!rc)
    rc = store_migrate(s, "flow", flow_app.migrations, flow_app.nmigrations, NULL, err, sizeof err);
  if (rc)
    fprintf(stderr, "store: %s\n", err);
  CHECK(rc == 0);
  return s;
}

static long count(struct store *s, const char *table) {
  char sql[64], err[256];
  struct store_rows *rows;
  snprintf(sql, sizeof sql, "SELECT count(*) AS n FROM %s", table);
  CHECK(store_query(s, sql, NULL, 0, &rows, err, sizeof err) == 0);
  long n = atol(store_rows_get(rows, 0, "n"));
  store_rows_free(rows);
  return n;
}

static struct flow_station station(int i) {
  struct flow_station st;
  memset(&st, 0, sizeof st);
  snprintf(st.id, sizeof st.id, "st-%d", i);
  snprintf(st.name, sizeof st.name, "st-%d", i);
  snprintf(st.region, sizeof st.region, "r%d", i % 3);
  st.lat = st.lon = NAN;
  return st;
}

static struct flow_alert alert(int i) {
  struct flow_alert a;
  memset(&a, 0, sizeof a);
  snprintf(a.id, sizeof a.id, "a%d", i);
  snprintf(a.kind, sizeof a.kind, "station");
  snprintf(a.subject, sizeof a.subject, "st-%d", i);
  snprintf(a.region, sizeof a.region, "r0");
  snprintf(a.dominant, sizeof a.dominant, "pm25");
  a.from = 0, a.to = 1, a.aqi = 60, a.at_ms = 1000 + (uint64_t)i;
  return a;
}

TEST(rows_are_written_and_sync_sees_them) {
  struct store *s = open_flow_store();
  struct flow_writer *w;
  CHECK_EQ_INT(flow_writer_start(&w, s, NULL, 1000), 0);
  for (int i = 0; i < 300; i++) {
    struct flow_station st = station(i);
    struct flow_alert a = alert(i);
    flow_writer_station(w, &st);
    flow_writer_alert(w, &a);
  }
  flow_writer_sync(w);
  CHECK_EQ_INT(count(s, "flow_stations"), 300);
  CHECK_EQ_INT(count(s, "flow_alerts"), 300);
  /* a station seen first again keeps what is there */
  struct flow_station again = station(1);
  snprintf(again.region, sizeof again.region, "elsewhere");
  flow_writer_station(w, &again);
  flow_writer_stop(w);
  char err[256];
  struct store_rows *rows;
  const char *p[] = {"st-1"};
  CHECK(store_query(s, "SELECT region FROM flow_stations WHERE id = $1", p, 1, &rows, err,
                    sizeof err) == 0);
  CHECK_EQ_STR(store_rows_get(rows, 0, "region"), "r1");
  store_rows_free(rows);
  store_close(s);
}

TEST(a_full_queue_drops_and_counts_and_stop_writes_the_rest) {
  struct store *s = open_flow_store();
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  struct flow_writer *w;
  CHECK_EQ_INT(flow_writer_start(&w, s, m, 8), 0);
  struct metric *queued = metric_get(metrics_family(m, "grove_flow_writes_queued", "", METRIC_GAUGE, ""));
  struct metric *dropped = metric_get(
      metrics_family(m, "grove_flow_writes_dropped_total", "", METRIC_COUNTER, "kind"), "station");
  /* hold SQLite's write lock: the writer takes its first row and waits */
  struct store_conn *c;
  char err[256];
  CHECK(store_acquire(s, &c) == 0 && store_begin(c) == 0);
  struct flow_station first = station(0);
  flow_writer_station(w, &first);
  while (metric_value(queued) != 0) /* taken out of the queue */
    ;
  for (int i = 1; i <= 11; i++) { /* 8 wait, 3 are dropped: nothing blocks */
    struct flow_station st = station(i);
    flow_writer_station(w, &st);
  }
  CHECK(metric_value(queued) == 8);
  CHECK(metric_value(dropped) == 3);
  CHECK(store_rollback(c) == 0);
  store_release(s, c);
  flow_writer_stop(w); /* writes the 8 waiting */
  CHECK_EQ_INT(count(s, "flow_stations"), 9);
  (void)err;
  metrics_destroy(m);
  store_close(s);
}

static const struct test tests[] = {
    T(rows_are_written_and_sync_sees_them),
    T(a_full_queue_drops_and_counts_and_stop_writes_the_rest),
};
TEST_MAIN(tests)
