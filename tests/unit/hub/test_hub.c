/* test_hub.c — topic rules and publishing without event loops (delivery
 * over sockets is covered by tests/e2e/test_live.py). */
#include "../test.h"
#include "core/error.h"
#include "core/metrics.h"
#include "gate/gate.h"
#include "hub/hub.h"

static struct hub_cfg cfg = {.max_message = 1024, .max_queue = 1 << 20, .history = 3,
                             .history_bytes = 1 << 20, .max_topics = 4, .ping_ms = 1000, .heartbeat_ms = 1000};

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
  hub_destroy(h);
  metrics_destroy(m);
}

/* The allowed answer (0) or the refusal's status of who on topic. */
static int check(struct hub *h, const struct gate_principal *who, const char *topic, bool publish,
                 const char **code) {
  const char *why;
  *code = "";
  return hub_topic_check(h, who, topic, publish, code, &why);
}

static bool owns_even(void *state, const struct gate_principal *who, const char *id) {
  (void)who;
  CHECK(state == (void *)&cfg);
  return strlen(id) % 2 == 0;
}

TEST(app_topics_are_reserved) {
  struct hub *h;
  CHECK(hub_create(&h, &cfg, 0, NULL) == 0);
  static const struct hub_topic_rule flow[] = {{"flow/", HUB_SIGNED_IN, HUB_NOBODY, GATE_READ, 0, NULL, NULL}};
  CHECK(hub_topics_add(h, "flow", flow, 1, NULL, NULL, 0) == 0);
  struct gate_principal reader = {.user = true, .id = "usr_1", .scopes = GATE_READ};
  const char *code;
  /* an app's prefix and the namespaces kept for modules to come, as a
   * whole first segment, whatever its case */
  const char *reserved[] = {"flow", "flow/alerts", "flow/stations/42", "FLOW/alerts", "Flow/x",
                            "relay/devices/7", "matrix/hosts/h", "notes/1", "jobs/9", "jobs"};
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
    CHECK_EQ_INT(check(h, NULL, reserved[i], false, &code), 401);
    CHECK_EQ_INT(check(h, &reader, reserved[i], false, &code), 0);
    CHECK_EQ_INT(check(h, &reader, reserved[i], true, &code), 403);
    CHECK_EQ_STR(code, "TOPIC_RESERVED");
  }
  const char *open_topics[] = {"demo/hello", "flowers/rose", "demo/flow/alerts", "jobsite", "relays/x",
                               "notes2/a", "a"};
  for (size_t i = 0; i < sizeof open_topics / sizeof open_topics[0]; i++) {
    CHECK_EQ_INT(check(h, NULL, open_topics[i], false, &code), 0);
    CHECK_EQ_INT(check(h, NULL, open_topics[i], true, &code), 403); /* --live-client-publish off */
    CHECK_EQ_STR(code, "PUBLISH_DISABLED");
  }
  hub_destroy(h);
  struct hub_cfg c = cfg;
  c.client_publish = true;
  CHECK(hub_create(&h, &c, 0, NULL) == 0);
  CHECK_EQ_INT(check(h, NULL, "demo/hello", true, &code), 0);
  CHECK_EQ_INT(check(h, NULL, "jobs/1", true, &code), 403);
  hub_destroy(h);
}

/* Each kind of rule: anyone, signed in with a scope, the owner of the
 * resource (by default a device its own, a user their own; or the app's
 * owns()), nobody; the longest prefix wins; a read switch (--flow-public). */
TEST(topic_rules_decide_who_reads_and_publishes) {
  struct hub *h;
  CHECK(hub_create(&h, &cfg, 0, NULL) == 0);
  static bool open_reads = true;
  static const struct hub_topic_rule rules[] = {
      {"app/", HUB_SIGNED_IN, HUB_NOBODY, GATE_READ, 0, NULL, NULL},
      {"app/devices/", HUB_OWNER, HUB_OWNER, GATE_SIGNED_IN, GATE_WRITE, NULL, NULL},
      {"app/users/", HUB_OWNER, HUB_NOBODY, GATE_READ, 0, NULL, NULL},
      {"app/public/", HUB_ANYONE, HUB_SIGNED_IN, 0, GATE_WRITE, NULL, NULL},
      {"app/even/", HUB_OWNER, HUB_NOBODY, 0, 0, owns_even, NULL},
      {"app/switch/", HUB_SIGNED_IN, HUB_NOBODY, GATE_READ, 0, NULL, &open_reads},
  };
  CHECK(hub_topics_add(h, "app", rules, sizeof rules / sizeof rules[0], &cfg, NULL, 0) == 0);
  struct gate_principal alice = {.user = true, .id = "usr_a", .scopes = GATE_READ | GATE_WRITE};
  struct gate_principal bob = {.user = true, .id = "usr_b", .scopes = GATE_READ | GATE_WRITE};
  struct gate_principal truck = {.id = "key_1", .device = "truck-7", .scopes = GATE_WRITE};
  struct gate_principal writer = {.id = "key_2", .scopes = GATE_WRITE};
  struct gate_principal admin = {.user = true, .id = "usr_z", .scopes = GATE_READ | GATE_ADMIN};
  const char *code;
  CHECK_EQ_INT(check(h, NULL, "app/x", false, &code), 401);
  CHECK_EQ_INT(check(h, &writer, "app/x", false, &code), 403);
  CHECK_EQ_STR(code, "FORBIDDEN");
  CHECK_EQ_INT(check(h, &alice, "app/x", false, &code), 0);
  /* a device its own */
  CHECK_EQ_INT(check(h, &truck, "app/devices/truck-7", false, &code), 0);
  CHECK_EQ_INT(check(h, &truck, "app/devices/truck-7/responses", true, &code), 0);
  CHECK_EQ_INT(check(h, &truck, "app/devices/truck-8", false, &code), 403);
  CHECK_EQ_STR(code, "NOT_OWNER");
  CHECK_EQ_INT(check(h, &alice, "app/devices/truck-7", false, &code), 403);
  CHECK_EQ_INT(check(h, NULL, "app/devices/truck-7", false, &code), 401);
  CHECK_EQ_INT(check(h, &admin, "app/devices/truck-7", false, &code), 0);
  /* a user their own */
  CHECK_EQ_INT(check(h, &alice, "app/users/usr_a", false, &code), 0);
  CHECK_EQ_INT(check(h, &bob, "app/users/usr_a", false, &code), 403);
  CHECK_EQ_INT(check(h, &alice, "app/users/usr_a", true, &code), 403);
  CHECK_EQ_INT(check(h, &alice, "APP/Users/usr_a", false, &code), 0); /* case: same rule */
  /* anyone reads; writers publish */
  CHECK_EQ_INT(check(h, NULL, "app/public/news", false, &code), 0);
  CHECK_EQ_INT(check(h, NULL, "app/public/news", true, &code), 401);
  CHECK_EQ_INT(check(h, &writer, "app/public/news", true, &code), 0);
  /* the app decides who owns */
  CHECK_EQ_INT(check(h, &bob, "app/even/ab", false, &code), 0);
  CHECK_EQ_INT(check(h, &bob, "app/even/abc", false, &code), 403);
  /* a read switch on at start */
  CHECK_EQ_INT(check(h, NULL, "app/switch/x", false, &code), 0);
  hub_destroy(h);
}

/* Two rules for one prefix would leave one silently unused: refused,
 * naming both owners; a prefix that is no topic path is refused too. */
TEST(topic_rules_refuse_a_prefix_declared_twice) {
  struct hub *h;
  char err[256] = "";
  CHECK(hub_create(&h, &cfg, 0, NULL) == 0);
  static const struct hub_topic_rule a[] = {{"app/things/", HUB_ANYONE, HUB_NOBODY, 0, 0, NULL, NULL}};
  static const struct hub_topic_rule b[] = {{"APP/things/", HUB_SIGNED_IN, HUB_NOBODY, 0, 0, NULL, NULL}};
  static const struct hub_topic_rule bad[] = {{"app//x/", HUB_ANYONE, HUB_NOBODY, 0, 0, NULL, NULL}};
  CHECK_EQ_INT(hub_topics_add(h, "alpha", a, 1, NULL, err, sizeof err), 0);
  CHECK_EQ_INT(hub_topics_add(h, "beta", b, 1, NULL, err, sizeof err), GROVE_EEXIST);
  CHECK(strstr(err, "'alpha'") && strstr(err, "'beta'"));
  CHECK_EQ_INT(hub_topics_add(h, "beta", bad, 1, NULL, err, sizeof err), GROVE_EINVAL);
  hub_destroy(h);
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
    T(topic_rules_decide_who_reads_and_publishes),
    T(topic_rules_refuse_a_prefix_declared_twice),
    T(publish_numbers_messages_in_order),
};
TEST_MAIN(tests)
