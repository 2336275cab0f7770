/* test_coalesce.c — hub_publish_coalesced: at most one message per topic
 * per interval, the newest payload kept and sent when the interval has
 * passed. What went out is read from the topics' resumption histories. */
#include <time.h>

#include "../test.h"
#include "core/error.h"
#include "hub/hub.h"

static struct hub_cfg cfg = {.max_message = 1024, .max_queue = 1 << 20, .history = 100,
                             .history_bytes = 1 << 20, .max_topics = 4, .ping_ms = 1000,
                             .heartbeat_ms = 1000};

static uint64_t fake_ms = 1000000;
static uint64_t fake_clock(void *arg) {
  (void)arg;
  return fake_ms;
}

static size_t sent(struct hub *h, const char *topic) { return hub_history_after(h, topic, 0); }

TEST(coalesced_topics_send_at_most_once_an_interval_and_the_newest_last) {
  struct hub *h;
  CHECK(hub_create(&h, &cfg, 0, NULL) == 0);
  hub_set_clock(h, fake_clock, NULL);
  CHECK(hub_publish_coalesced(h, "st/1", "1", 1, 1000) == 0); /* a free slot: at once */
  CHECK_EQ_INT(sent(h, "st/1"), 1);
  fake_ms += 100;
  CHECK(hub_publish_coalesced(h, "st/1", "2", 1, 1000) == 0); /* waits */
  fake_ms += 100;
  CHECK(hub_publish_coalesced(h, "st/1", "3", 1, 1000) == 0); /* replaces 2 */
  CHECK(hub_publish_coalesced(h, "st/2", "1", 1, 1000) == 0); /* another topic: its own slot */
  CHECK_EQ_INT(sent(h, "st/1"), 1);
  CHECK_EQ_INT(sent(h, "st/2"), 1);
  CHECK_EQ_INT(hub_coalesced_flush(h), 800); /* st/1's slot comes in 800 ms */
  CHECK_EQ_INT(sent(h, "st/1"), 1);
  fake_ms += 800;
  CHECK_EQ_INT(hub_coalesced_flush(h), 0); /* 3 went; nothing waits */
  CHECK_EQ_INT(sent(h, "st/1"), 2);
  /* the slot was used by 3 just now: the next waits again */
  CHECK(hub_publish_coalesced(h, "st/1", "4", 1, 1000) == 0);
  CHECK_EQ_INT(sent(h, "st/1"), 2);
  fake_ms += 1000;
  hub_coalesced_flush(h);
  CHECK_EQ_INT(sent(h, "st/1"), 3);
  fake_ms += 5000; /* long quiet: free at once */
  CHECK(hub_publish_coalesced(h, "st/1", "5", 1, 1000) == 0);
  CHECK_EQ_INT(sent(h, "st/1"), 4);
  hub_destroy(h);
}

TEST(coalesced_publish_checks_topics_and_zero_means_plain) {
  struct hub *h;
  CHECK(hub_create(&h, &cfg, 0, NULL) == 0);
  hub_set_clock(h, fake_clock, NULL);
  CHECK_EQ_INT(hub_publish_coalesced(h, "bad topic", "1", 1, 1000), GROVE_EINVAL);
  for (int i = 0; i < 3; i++)
    CHECK(hub_publish_coalesced(h, "plain", "1", 1, 0) == 0);
  CHECK_EQ_INT(sent(h, "plain"), 3);
  /* a payload left waiting at destroy is freed, not leaked */
  CHECK(hub_publish_coalesced(h, "w", "1", 1, 1000) == 0);
  CHECK(hub_publish_coalesced(h, "w", "2", 1, 1000) == 0);
  hub_destroy(h);
}

/* With the real clock, the hub's flusher sends what waits by itself. */
TEST(coalesced_flusher_sends_the_last_payload_by_itself) {
  struct hub *h;
  CHECK(hub_create(&h, &cfg, 0, NULL) == 0);
  CHECK(hub_publish_coalesced(h, "live/x", "1", 1, 20) == 0);
  CHECK(hub_publish_coalesced(h, "live/x", "2", 1, 20) == 0);
  while (sent(h, "live/x") < 2) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  hub_destroy(h);
}

static const struct test tests[] = {
    T(coalesced_topics_send_at_most_once_an_interval_and_the_newest_last),
    T(coalesced_publish_checks_topics_and_zero_means_plain),
    T(coalesced_flusher_sends_the_last_payload_by_itself),
};
TEST_MAIN(tests)
