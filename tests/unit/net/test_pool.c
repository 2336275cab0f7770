/* test_pool.c — the worker pools: bounded queues, cancelling a queued job,
 * draining, and their gauges. */
#include <pthread.h>
#include <stdlib.h>

#include "../test.h"
#include "core/error.h"
#include "core/metrics.h"
#include "net/pool.h"

/* A job that blocks until the test opens the gate. */
struct gate_job {
  struct pool_job job;
  pthread_mutex_t *mu;
  pthread_cond_t *cv;
  bool *open;
  int *started, *ran, *cancelled_runs;
};

static void gate_run(struct pool_job *j, bool cancelled) {
  struct gate_job *g = (struct gate_job *)j;
  pthread_mutex_lock(g->mu);
  if (cancelled) {
    (*g->cancelled_runs)++;
  } else {
    (*g->started)++;
    pthread_cond_broadcast(g->cv);
    while (!*g->open)
      pthread_cond_wait(g->cv, g->mu);
    (*g->ran)++;
  }
  pthread_mutex_unlock(g->mu);
}

TEST(pool_refuses_past_its_queue_cancels_and_drains) {
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  struct pool *p;
  struct pool_cfg bad = {"x", 0, 1, NULL};
  CHECK(pool_create(&p, &bad, NULL) == GROVE_EINVAL);
  struct pool_cfg cfg = {"test", 2, 1, NULL};
  CHECK(pool_create(&p, &cfg, m) == 0);
  CHECK_EQ_STR(pool_name(p), "test");
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  bool open = false;
  int started = 0, ran = 0, cancelled_runs = 0;
  struct gate_job jobs[5];
  for (int i = 0; i < 5; i++)
    jobs[i] = (struct gate_job){{.run = gate_run}, &mu, &cv, &open, &started, &ran, &cancelled_runs};
  /* two run, one waits, the fourth is refused */
  CHECK(pool_submit(p, &jobs[0].job) == 0);
  CHECK(pool_submit(p, &jobs[1].job) == 0);
  pthread_mutex_lock(&mu);
  while (started < 2)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  CHECK(pool_submit(p, &jobs[2].job) == 0);
  CHECK(pool_submit(p, &jobs[3].job) == GROVE_EBUSY);
  struct buf out;
  buf_init(&out, 0);
  metrics_render(m, &out);
  CHECK(strstr(out.data, "grove_pool_active{pool=\"test\"} 2") != NULL);
  CHECK(strstr(out.data, "grove_pool_queued{pool=\"test\"} 1") != NULL);
  CHECK(strstr(out.data, "grove_pool_threads{pool=\"test\"} 2") != NULL);
  CHECK(strstr(out.data, "grove_pool_refused_total{pool=\"test\"} 1") != NULL);
  /* the queued one leaves unrun; its place is free again */
  CHECK(pool_cancel(p, &jobs[2].job));
  CHECK(!pool_cancel(p, &jobs[0].job)); /* running: goes on */
  CHECK(pool_submit(p, &jobs[4].job) == 0);
  pthread_mutex_lock(&mu);
  open = true;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pool_drain(p);
  CHECK_EQ_INT(ran, 3);
  CHECK_EQ_INT(cancelled_runs, 0);
  buf_reset(&out);
  metrics_render(m, &out);
  CHECK(strstr(out.data, "grove_pool_cancelled_total{pool=\"test\"} 1") != NULL);
  CHECK(strstr(out.data, "grove_pool_active{pool=\"test\"} 0") != NULL);
  buf_release(&out);
  pool_destroy(p);
  pool_destroy(NULL);
  metrics_destroy(m);
}

static const struct test tests[] = {
    T(pool_refuses_past_its_queue_cancels_and_drains),
};
TEST_MAIN(tests)
