/* test_ingest.c — flow's side of the write path: a station's series key
 * is exactly the key telemetry's rule makes (flow writes it directly), and
 * ids that are not station ids make none. */
#include <string.h>

#include "../test.h"
#include "apps/flow/flow.h"
#include "core/error.h"

TEST(station_keys_are_the_keys_telemetry_encodes) {
  static const char *const ids[] = {"s1", "st-0001", "a.b_c~d", "Z", "x123456789012345678901234567890123456789012345678901234567890123"};
  struct buf mine, rule;
  buf_init(&mine, 4096);
  buf_init(&rule, 4096);
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    for (int sp = 0; sp < SP_COUNT; sp++) {
      const char *field = flow_species_name((enum flow_species)sp);
      struct telemetry_key k = {.measurement = {"air_quality", 11},
                                .field = {field, strlen(field)},
                                .ntags = 1};
      k.tags[0] = (struct telemetry_tag){{"station", 7}, {ids[i], strlen(ids[i])}};
      CHECK_EQ_INT(telemetry_key_encode(&rule, &k), 0);
      CHECK_EQ_INT(flow_station_key(&mine, ids[i], strlen(ids[i]), (enum flow_species)sp), 0);
      CHECK_EQ_STR(mine.data, rule.data);
    }
  CHECK_EQ_INT(flow_station_key(&mine, "a b", 3, SP_PM25), GROVE_EINVAL);
  CHECK_EQ_INT(flow_station_key(&mine, "a,b", 3, SP_PM25), GROVE_EINVAL);
  CHECK_EQ_INT(flow_station_key(&mine, "", 0, SP_PM25), GROVE_EINVAL);
  buf_release(&mine);
  buf_release(&rule);
}

static const struct test tests[] = {
    T(station_keys_are_the_keys_telemetry_encodes),
};
TEST_MAIN(tests)
