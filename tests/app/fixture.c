/* fixture.c — the smallest app, for tests: one table that declares an
 * option, a migration, two routes with their access, a private topic and
 * a verb, and nothing else. It is built into grove-fixture (grove's own
 * main with this app beside ops and flow in the app table) so that
 * tests/e2e/test_fixture_app.py can check that an app added this way is
 * served, documented in --help, protected and refused where it should be,
 * with no edit to serve, gate, hub or the other apps. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "core/error.h"
#include "core/jsonout.h"
#include "core/util.h"
#include "gate/gate.h"
#include "hub/hub.h"
#include "net/http.h"

struct fixture_cfg {
  char *greeting;
};
static struct fixture_cfg fixture_cfg;

static const struct cfg_opt fixture_opts[] = {
    CFG_OPT(struct fixture_cfg, "fixture-greeting", CFG_STR, greeting, "hello",
            "what GET /api/v1/fixture/hello answers"),
};

static const struct store_migration fixture_migrations[] = {
    {1, "notes", "CREATE TABLE fixture_notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)", NULL},
};

struct fixture {
  struct grove_ctx ctx;
};

/* GET /api/v1/fixture/hello (read): the greeting and who asked. */
static void handle_hello(struct http_req *r) {
  const struct gate_principal *who = gate_caller(r);
  http_reply_data(r, 200, json_pack("{s:s,s:s}", "greeting", fixture_cfg.greeting, "caller", who->id),
                  NULL);
}

/* POST /api/v1/fixture/notes (write): publishes the JSON body on the
 * caller's own topic, fixture/users/{id}. */
static void handle_note(struct http_req *r) {
  struct fixture *f = r->app;
  const struct gate_principal *who = gate_caller(r);
  json_t *body = http_req_json(r);
  if (!body)
    return;
  char topic[80], *txt = jsonout_dumps(body, JSON_COMPACT);
  json_decref(body);
  snprintf(topic, sizeof topic, "fixture/users/%s", who->id);
  int rc = txt ? hub_publish(f->ctx.hub, topic, txt, strlen(txt), NULL) : GROVE_ENOMEM;
  free(txt);
  if (rc) {
    http_reply_error(r, 503, "UNAVAILABLE", "cannot publish", NULL);
    return;
  }
  http_reply_data(r, 202, json_pack("{s:s}", "topic", topic), NULL);
}

static const struct route_def fixture_routes[] = {
    {"GET", "/api/v1/fixture/hello", handle_hello, .scopes = GATE_READ},
    {"POST", "/api/v1/fixture/notes", handle_note, .scopes = GATE_WRITE},
};

/* A user reads their own topic; only the app publishes. */
static const struct hub_topic_rule fixture_topics[] = {
    {.prefix = "fixture/users/", .read = HUB_OWNER, .read_scopes = GATE_READ,
     .publish = HUB_NOBODY},
};

static int fixture_start(struct grove_ctx *ctx, void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  if (!f)
    return GROVE_ENOMEM;
  f->ctx = *ctx;
  *state = f;
  return 0;
}

static void fixture_stop(void *state) { free(state); }

static void fixture_help(FILE *f) {
  fprintf(f, "usage: grove fixture hello\n\nPrints the greeting (--fixture-greeting's default).\n");
}

static int fixture_command(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "hello") == 0) {
    printf("hello\n");
    return 0;
  }
  fixture_help(argc >= 1 && strcmp(argv[0], "--help") == 0 ? stdout : stderr);
  return argc >= 1 && strcmp(argv[0], "--help") == 0 ? 0 : 2;
}

const struct grove_app fixture_app = {
    .name = "fixture",
    .summary = "a test app: one route, one private topic, one option",
    .opts = fixture_opts,
    .nopts = ARRAY_LEN(fixture_opts),
    .cfg = &fixture_cfg,
    .migrations = fixture_migrations,
    .nmigrations = ARRAY_LEN(fixture_migrations),
    .routes = fixture_routes,
    .nroutes = ARRAY_LEN(fixture_routes),
    .topics = fixture_topics,
    .ntopics = ARRAY_LEN(fixture_topics),
    .page = &(const struct app_page){"fixture", "Fixture", NULL},
    .start = fixture_start,
    .stop = fixture_stop,
    .command = fixture_command,
    .verbs = "the fixture's verb: grove fixture hello",
    .command_help = fixture_help,
};

/* grove's app table with the fixture as one more line: this replaces
 * src/app/apps.c's in grove-fixture. */
extern const struct grove_app ops_app;
extern const struct grove_app flow_app;
const struct grove_app *const grove_apps[] = {&ops_app, &flow_app, &fixture_app};
const size_t grove_napps = ARRAY_LEN(grove_apps);
