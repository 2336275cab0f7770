/* test_hub.c — topic rules and publishing without event loops (delivery
 * over sockets is covered by tests/e2e/test_live.py). */
#include "../test.h"
#include "core/error.h"
#include "core/metrics.h"
#include "gate/gate.h"
#include "hub/hub.h"

static struct hub_cfg cfg = {.max_message = 1024, .max_queue = 1 << 20, .history = 3,
                             .history_bytes = 1 << 20, .max_topics = 4, .ping_ms = 1000, .heartbeat_ms = 1000,
                             .broker = ""};

TEST(topic_rules) {
  CHECK(hub_topic_valid("flow/stations/42"));
  CHECK(hub_topic_valid("matrix/hosts/gpu-01.lab:9100"));
  CHECK(hub_topic_valid("jobs/a_b@c"));
  CHECK(!hub_topic_valid(""));
  CHECK(!hub_topic_valid("/leading"));
  CHECK(!hub_topic_valid("trailing/"));
  CHECK(!hub_topic_valid("a//b"));
  CHECK(!hub_topic_valid("a/../b"));
  CHECK(!hub_topic_valid("./a"));
  CHECK(!hub_topic_valid("a/.."));
  CHECK(hub_topic_valid("a/.hidden"));
  CHECK(!hub_topic_valid("sp ace"));
  CHECK(!hub_topic_valid("a/b?c"));
  char long_topic[300];
  memset(long_topic, 'a', 299);
  long_topic[299] = '\0';
  CHECK(!hub_topic_valid(long_topic));
}

TEST(publish_numbers_messages_in_order) {
  struct hub *h;
  struct metrics *m;
  CHECK(metrics_create(&m) == 0);
  CHECK(hub_create(&h, &cfg, 0, m) == 0);
  uint64_t a, b, c;
  CHECK(hub_publish(h, "t/1", "{\"x\":1}", 7, &a) == 0);
  CHECK(hub_publish(h, "t/2", "[1,2]", 5, &b) == 0);
  CHECK(hub_publish(h, "t/1", "{\n\"y\": 2\n}", 10, &c) == 0); /* compacted */
  CHECK(a < b && b < c);
  CHECK_EQ_INT(hub_publish(h, "bad topic", "1", 1, NULL), GROVE_EINVAL);
  CHECK_EQ_INT(hub_publish(h, "t/1", "{\n broken", 9, NULL), GROVE_EINVAL);
  for (int i = 0; i < 10; i++)
    CHECK(hub_publish(h, "t/1", "1", 1, NULL) == 0); /* history stays bounded */
  CHECK(hub_broker_ok(h, NULL, 0));
  CHECK(!hub_has_broker(h));
  hub_destroy(h);
  metrics_destroy(m);
}

TEST(bad_broker_url_is_refused) {
  struct hub *h;
  struct hub_cfg c = cfg;
  c.broker = "http://nope";
  CHECK_EQ_INT(hub_create(&h, &c, 1, NULL), GROVE_ECONFIG);
}

TEST(broker_down_is_reported_not_fatal) {
  struct hub *h;
  struct hub_cfg c = cfg;
  c.broker = "redis://127.0.0.1:1";
  CHECK(hub_create(&h, &c, 1, NULL) == 0);
  char err[200];
  CHECK(!hub_broker_ok(h, err, sizeof err));
  CHECK(err[0]);
  CHECK(hub_publish(h, "t", "1", 1, NULL) == 0); /* local delivery goes on */
  hub_destroy(h);
}

TEST(app_topics_are_reserved) {
  /* every app's prefix, as a whole first segment, whatever its case */
  const char *reserved[] = {"flow", "flow/alerts", "flow/stations/42", "FLOW/alerts", "Flow/x",
                            "relay/devices/7", "matrix/hosts/h", "notes/1", "jobs/9", "jobs"};
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
    CHECK_EQ_INT(hub_topic_read_scope(reserved[i]), GATE_READ);
    CHECK(!hub_topic_client_publishable(reserved[i]));
  }
  const char *open_topics[] = {"demo/hello", "flowers/rose", "demo/flow/alerts", "jobsite", "relays/x",
                               "notes2/a", "a"};
  for (size_t i = 0; i < sizeof open_topics / sizeof open_topics[0]; i++) {
    CHECK_EQ_INT(hub_topic_read_scope(open_topics[i]), 0);
    CHECK(hub_topic_client_publishable(open_topics[i]));
  }
}

static uint64_t fake_ms = 1000000;
static uint64_t fake_clock(void *arg) {
  (void)arg;
  return fake_ms;
}

TEST(history_survives_topic_churn_within_its_bytes) {
  /* many distinct topics over time: each keeps its history while the
   * bytes allow, the oldest go first, and a new topic always resumes */
  struct hub *h;
  struct hub_cfg c = cfg;
  c.history_bytes = 256 * 1024;
  CHECK(hub_create(&h, &c, 0, NULL) == 0);
  char topic[64], json[64];
  uint64_t first = 0, id = 0;
  for (int i = 0; i < 30000; i++) {
    snprintf(topic, sizeof topic, "churn/%d", i);
    int n = snprintf(json, sizeof json, "{\"n\":%d}", i);
    CHECK(hub_publish(h, topic, json, (size_t)n, &id) == 0);
    if (!i)
      first = id;
    size_t topics, bytes;
    hub_history_stats(h, &topics, &bytes);
    CHECK(bytes <= c.history_bytes);
  }
  size_t topics, bytes;
  hub_history_stats(h, &topics, &bytes);
  CHECK(topics > 100 && topics < 30000); /* the bytes bound them, not a count */
  CHECK_EQ_INT(hub_history_after(h, "churn/0", 0), 0);       /* the oldest went */
  CHECK_EQ_INT(hub_history_after(h, "churn/29999", first), 1); /* the newest stayed */
  CHECK(hub_publish(h, "fresh/topic", "{}", 2, &id) == 0);
  CHECK_EQ_INT(hub_history_after(h, "fresh/topic", 0), 1);
  CHECK_EQ_INT(hub_history_after(h, "fresh/topic", id), 0);
  hub_destroy(h);
}

TEST(idle_topics_lose_their_history) {
  struct hub *h;
  struct hub_cfg c = cfg;
  c.history_idle_ms = 60000;
  CHECK(hub_create(&h, &c, 0, NULL) == 0);
  hub_set_clock(h, fake_clock, NULL);
  CHECK(hub_publish(h, "idle/a", "1", 1, NULL) == 0);
  fake_ms += 30000;
  CHECK(hub_publish(h, "idle/b", "1", 1, NULL) == 0);
  fake_ms += 30000; /* a: a minute idle; b: half that */
  CHECK(hub_publish(h, "idle/c", "1", 1, NULL) == 0);
  CHECK_EQ_INT(hub_history_after(h, "idle/a", 0), 0);
  CHECK_EQ_INT(hub_history_after(h, "idle/b", 0), 1);
  size_t topics, bytes;
  hub_history_stats(h, &topics, &bytes);
  CHECK_EQ_INT(topics, 2);
  fake_ms += 20000;
  CHECK(hub_publish(h, "idle/b", "2", 1, NULL) == 0); /* b kept busy: both stay */
  CHECK_EQ_INT(hub_history_after(h, "idle/b", 0), 2);
  fake_ms += 50000; /* c: 70 s idle; b: 50 s */
  CHECK(hub_publish(h, "idle/d", "1", 1, NULL) == 0);
  CHECK_EQ_INT(hub_history_after(h, "idle/b", 0), 2);
  CHECK_EQ_INT(hub_history_after(h, "idle/c", 0), 0);
  hub_history_stats(h, &topics, &bytes);
  CHECK_EQ_INT(topics, 2); /* b and d */
  hub_destroy(h);
}

static const struct test tests[] = {
    T(topic_rules),
    T(history_survives_topic_churn_within_its_bytes),
    T(idle_topics_lose_their_history),
    T(app_topics_are_reserved),
    T(publish_numbers_messages_in_order),
    T(bad_broker_url_is_refused),
    T(broker_down_is_reported_not_fatal),
};
TEST_MAIN(tests)
