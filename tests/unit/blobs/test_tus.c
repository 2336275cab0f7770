/* test_tus.c — resumable uploads (blobs/tus.h): the tus header parser on
 * good and malformed values, and the upload state on the store named by
 * GROVE_TEST_STORE (a postgres:// URL from the test run) or a fresh SQLite
 * file: durable offsets across a process that dies without a word, the
 * write lock and its fencing token under an injected clock, checksummed
 * chunks thrown away, concatenation in the order named, expiry and the
 * sweep. No test waits for time to pass: the clock is moved by hand. */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../store_fixture.h"
#include "../test.h"
#include "blobs/tus.h"
#include "core/error.h"
#include "core/util.h"

/* ---- the header parser ------------------------------------------------------ */

TEST(version_is_exactly_1_0_0) {
  struct tus_error e;
  CHECK_EQ_INT(tus_parse_version("1.0.0", &e), 0);
  CHECK_EQ_INT(tus_parse_version(NULL, &e), GROVE_EINVAL);
  CHECK_EQ_INT(e.status, 412);
  CHECK_EQ_STR(e.header, "Tus-Resumable");
  CHECK_EQ_INT(tus_parse_version("0.2.2", &e), GROVE_EINVAL);
  CHECK_EQ_INT(e.status, 412);
  CHECK_EQ_INT(tus_parse_version("1.0.0 ", &e), GROVE_EINVAL);
}

TEST(offsets_are_plain_decimals) {
  struct tus_error e;
  uint64_t v = 7;
  CHECK_EQ_INT(tus_parse_u64("Upload-Offset", "0", 0, &v, &e), 0);
  CHECK_EQ_INT(v, 0);
  CHECK_EQ_INT(tus_parse_u64("Upload-Offset", "9223372036854775807", 0, &v, &e), 0);
  CHECK(v == (uint64_t)INT64_MAX);
  static const char *const bad[] = {"",   "-1",  "+1", " 1", "1 ", "01", "1.5", "0x10",
                                    "1e3", "9223372036854775808", "18446744073709551616",
                                    "99999999999999999999999"};
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    e.status = 0;
    CHECK_EQ_INT(tus_parse_u64("Upload-Offset", bad[i], 0, &v, &e), GROVE_EINVAL);
    CHECK_EQ_INT(e.status, 400);
    CHECK_EQ_STR(e.header, "Upload-Offset");
  }
  CHECK_EQ_INT(tus_parse_u64("Upload-Offset", NULL, 0, &v, &e), GROVE_EINVAL);
  CHECK_EQ_INT(tus_parse_u64("Upload-Length", "1001", 1000, &v, &e), GROVE_EINVAL);
  CHECK_EQ_INT(e.status, 413);
  CHECK_EQ_INT(tus_parse_u64("Upload-Length", "1000", 1000, &v, &e), 0);
}

TEST(defer_length_is_1) {
  struct tus_error e;
  CHECK_EQ_INT(tus_parse_defer_length("1", &e), 0);
  CHECK_EQ_INT(tus_parse_defer_length("0", &e), GROVE_EINVAL);
  CHECK_EQ_INT(tus_parse_defer_length("true", &e), GROVE_EINVAL);
  CHECK_EQ_INT(e.status, 400);
}

TEST(metadata_pairs_decode) {
  struct tus_error e;
  struct tus_metadata m;
  /* the spec's example, and tus-js-client's shape */
  CHECK_EQ_INT(tus_parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential",
                                  &m, &e),
               0);
  CHECK_EQ_INT(m.n, 2);
  size_t len;
  CHECK_EQ_STR((const char *)tus_metadata_get(&m, "filename", &len), "world_domination_plan.pdf");
  CHECK_EQ_INT(len, 25);
  CHECK(tus_metadata_get(&m, "is_confidential", &len) != NULL);
  CHECK_EQ_INT(len, 0);
  CHECK(tus_metadata_get(&m, "other", NULL) == NULL);
  tus_metadata_release(&m);
  CHECK_EQ_INT(tus_parse_metadata("a YQ== , b Yg==", &m, &e), 0);
  CHECK_EQ_INT(m.n, 2);
  CHECK_EQ_STR((const char *)tus_metadata_get(&m, "b", NULL), "b");
  tus_metadata_release(&m);
  CHECK_EQ_INT(tus_parse_metadata("", &m, &e), 0);
  CHECK_EQ_INT(m.n, 0);
  tus_metadata_release(&m);
  /* a value holding a NUL keeps its length */
  CHECK_EQ_INT(tus_parse_metadata("k AAE=", &m, &e), 0);
  CHECK_EQ_INT(m.pairs[0].len, 2);
  tus_metadata_release(&m);
}

TEST(metadata_refuses_malformed) {
  static const char *const bad[] = {
      ",",             "a YQ==,",       ",a YQ==",       "a YQ==,a Yg==", /* repeated key */
      "a YQ",          "a YQ=",         "a Y===",        "a Zh==",        /* bits after the byte */
      "a YQ==YQ==",    "a Y Q==",       "a  YQ==",       "a\x01 YQ==",    "\xc3\xa9 YQ==",
      "a *Q==",        "a YQ==\t,,b",
  };
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    struct tus_error e = {0};
    struct tus_metadata m;
    int rc = tus_parse_metadata(bad[i], &m, &e);
    if (rc != GROVE_EINVAL)
      fprintf(stderr, "accepted '%s'\n", bad[i]);
    CHECK_EQ_INT(rc, GROVE_EINVAL);
    CHECK_EQ_INT(e.status, 400);
    CHECK_EQ_STR(e.header, "Upload-Metadata");
    tus_metadata_release(&m);
  }
  /* limits: a long key, too many pairs, a long value */
  char key[TUS_MAX_METADATA_KEY + 8];
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  struct tus_error e;
  struct tus_metadata m;
  CHECK_EQ_INT(tus_parse_metadata(key, &m, &e), GROVE_EINVAL);
  tus_metadata_release(&m);
  char many[TUS_MAX_METADATA_PAIRS * 8 + 16] = "";
  for (int i = 0; i <= TUS_MAX_METADATA_PAIRS; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "%sk%d", i ? "," : "", i);
  CHECK_EQ_INT(tus_parse_metadata(many, &m, &e), GROVE_EINVAL);
  tus_metadata_release(&m);
  char *big = malloc(TUS_MAX_METADATA_VALUE * 2);
  strcpy(big, "v ");
  for (int i = 0; i < (TUS_MAX_METADATA_VALUE + 3) / 3 * 4 + 4; i += 4)
    strcat(big, "YWFh");
  CHECK_EQ_INT(tus_parse_metadata(big, &m, &e), GROVE_EINVAL);
  tus_metadata_release(&m);
  free(big);
}

TEST(checksum_is_sha256_base64) {
  struct tus_error e;
  unsigned char d[32];
  /* SHA-256("") */
  CHECK_EQ_INT(tus_parse_checksum("sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", d, &e), 0);
  CHECK_EQ_INT(d[0], 0xe3);
  CHECK_EQ_INT(d[31], 0x55);
  CHECK_EQ_INT(tus_parse_checksum("md5 1B2M2Y8AsgTpgAmY7PhCfg==", d, &e), GROVE_EINVAL);
  CHECK_EQ_INT(e.status, 400);
  CHECK_EQ_STR(e.code, "UNSUPPORTED_CHECKSUM");
  static const char *const bad[] = {"sha256", "sha256 ", "sha256 abc",
                                    "sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
                                    "sha256  47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                                    "sha256 1B2M2Y8AsgTpgAmY7PhCfg==", ""};
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    CHECK_EQ_INT(tus_parse_checksum(bad[i], d, &e), GROVE_EINVAL);
    CHECK_EQ_INT(e.status, 400);
  }
}

#define ID1 "0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210"

TEST(concat_partial_and_final) {
  struct tus_error e;
  struct tus_concat c;
  CHECK_EQ_INT(tus_parse_concat("partial", &c, &e), 0);
  CHECK(c.partial && !c.final);
  tus_concat_release(&c);
  CHECK_EQ_INT(tus_parse_concat("final;/api/v1/uploads/" ID2
                                " http://files.example:8080/api/v1/uploads/" ID1,
                                &c, &e),
               0);
  CHECK(c.final);
  CHECK_EQ_INT(c.nparts, 2);
  CHECK_EQ_STR(c.parts[0], ID2);
  CHECK_EQ_STR(c.parts[1], ID1);
  tus_concat_release(&c);
  static const char *const bad[] = {
      "Partial", "final", "final;", "final; ", "final;/api/v1/uploads/",
      "final;/api/v1/uploads/" ID1 "/x", "final;/api/v1/uploads/0123", "final;/api/v1/blobs/" ID1,
      "final;http:///api/v1/uploads/" ID1, "final;ftp://h/api/v1/uploads/" ID1,
      "final;/api/v1/uploads/0123456789ABCDEF0123456789abcdef", "partial;x", NULL};
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    CHECK_EQ_INT(tus_parse_concat(bad[i], &c, &e), GROVE_EINVAL);
    CHECK_EQ_INT(e.status, 400);
    tus_concat_release(&c);
  }
}

TEST(expires_round_trips) {
  struct tus_error e;
  int64_t ms;
  CHECK_EQ_INT(tus_parse_expires("Wed, 25 Jun 2014 16:00:00 GMT", &ms, &e), 0);
  CHECK_EQ_INT(ms, 1403712000000LL);
  char out[30];
  CHECK_EQ_INT(tus_format_expires(ms + 999, out), 29);
  CHECK_EQ_STR(out, "Wed, 25 Jun 2014 16:00:00 GMT");
  CHECK_EQ_INT(tus_parse_expires("Sun, 06 Nov 1994 08:49:37 GMT", &ms, &e), 0);
  static const char *const bad[] = {
      "Thu, 25 Jun 2014 16:00:00 GMT", /* wrong weekday */
      "Wed, 29 Feb 2023 16:00:00 GMT", "Wed, 31 Apr 2014 16:00:00 GMT",
      "Wed, 25 Jun 2014 24:00:00 GMT", "Wed, 25 Jun 2014 16:00:00 UTC",
      "Wednesday, 25-Jun-14 16:00:00 GMT", "Wed Jun 25 16:00:00 2014",
      "Wed, 25 jun 2014 16:00:00 GMT", "Wed, 5 Jun 2014 16:00:00 GMT",
      "Wed, 25 Jun 2014 16:00:00 GMT ", "", NULL};
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    CHECK_EQ_INT(tus_parse_expires(bad[i], &ms, &e), GROVE_EINVAL);
    CHECK_EQ_INT(e.status, 400);
  }
  CHECK_EQ_INT(tus_parse_expires("Tue, 29 Feb 2000 00:00:00 GMT", &ms, &e), 0);
}

TEST(ids_are_32_hex) {
  CHECK(tus_id_valid(ID1));
  CHECK(!tus_id_valid(""));
  CHECK(!tus_id_valid(ID1 "0"));
  CHECK(!tus_id_valid("0123456789abcdef0123456789abcdeF"));
  CHECK(!tus_id_valid("../3456789abcdef0123456789abcdef"));
}

/* ---- the upload state ------------------------------------------------------- */

static char dir[64];
static _Atomic int64_t now_ms = 1700000000000LL;

static int64_t fake_now(void *arg) {
  (void)arg;
  return atomic_load(&now_ms);
}

static const struct tus_cfg cfg = {.max_size = 1 << 20, .expiry_ms = 60000, .lock_ms = 10000,
                                   .checkpoint = 4096};

static struct store *open_store(bool fresh) {
  struct store *s;
  if (fresh) {
    s = fixture_store_open(dir, sizeof dir, "/tmp/grove-tus-XXXXXX", 4);
  } else { /* the same database again (after a "crash") */
    const char *url = getenv("GROVE_TEST_STORE");
    struct store_cfg sc = {.url = (char *)(url ? url : "sqlite"), .data_dir = dir, .pool = 4,
                           .busy_timeout_ms = 5000};
    char err[256];
    CHECK(store_open(&s, &sc, err, sizeof err) == 0);
  }
  char err[256];
  if (fresh) {
    store_query(s, "DROP TABLE IF EXISTS tus_uploads", NULL, 0, NULL, err, sizeof err);
    store_query(s, "DELETE FROM grove_migrations WHERE module = 'tus'", NULL, 0, NULL, err,
                sizeof err);
  }
  int rc = store_migrate(s, "tus", tus_migrations, tus_nmigrations, NULL, err, sizeof err);
  if (rc)
    fprintf(stderr, "migrate: %s\n", err);
  CHECK(rc == 0);
  return s;
}

static struct tus *open_tus(struct store *s) {
  struct tus *t;
  char err[256], up[128];
  snprintf(up, sizeof up, "%s/uploads", dir);
  int rc = tus_open(&t, &cfg, s, up, NULL, err, sizeof err);
  if (rc)
    fprintf(stderr, "tus_open: %s\n", err);
  CHECK(rc == 0);
  tus_set_clock(t, fake_now, NULL);
  return t;
}

static off_t file_size(struct tus *t, const char *id) {
  char path[4200];
  tus_data_path(t, id, path, sizeof path);
  struct stat sb;
  return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void make(struct tus *t, const char *owner, enum tus_kind kind, uint64_t len,
                 struct tus_upload *u) {
  struct tus_new nu = {owner, kind, len, NULL};
  CHECK_EQ_INT(tus_create(t, &nu, u), 0);
}

static void put(struct tus *t, const char *id, const char *owner, const char *data) {
  struct tus_write *w;
  CHECK_EQ_INT(tus_lock(t, id, owner, &w, NULL), 0);
  CHECK_EQ_INT(tus_write(w, data, strlen(data)), 0);
  CHECK_EQ_INT(tus_checkpoint(w), 0);
  tus_unlock(w);
}

TEST(create_read_is_owner_only) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload u, g;
  struct tus_new nu = {"alice", TUS_PLAIN, 10, "filename YS50eHQ="};
  CHECK_EQ_INT(tus_create(t, &nu, &u), 0);
  CHECK(tus_id_valid(u.id));
  CHECK_EQ_INT(file_size(t, u.id), 0);
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), 0);
  CHECK_EQ_INT(g.length, 10);
  CHECK_EQ_INT(g.offset, 0);
  CHECK_EQ_STR(g.metadata, "filename YS50eHQ=");
  CHECK_EQ_INT(g.expires_ms, atomic_load(&now_ms) + 60000);
  tus_upload_release(&g);
  CHECK_EQ_INT(tus_get(t, u.id, "bob", &g), GROVE_ENOENT);
  CHECK_EQ_INT(tus_get(t, ID1, "alice", &g), GROVE_ENOENT);
  CHECK_EQ_INT(tus_get(t, "../x", "alice", &g), GROVE_ENOENT);
  struct tus_write *w;
  CHECK_EQ_INT(tus_lock(t, u.id, "bob", &w, NULL), GROVE_ENOENT);
  CHECK_EQ_INT(tus_delete(t, u.id, "bob"), GROVE_ENOENT);
  tus_upload_release(&u);
  tus_close(t);
  store_close(s);
}

TEST(checkpoint_makes_the_offset_durable) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload u, g;
  make(t, "alice", TUS_PLAIN, 10, &u);
  struct tus_write *w;
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w, NULL), 0);
  CHECK_EQ_INT(tus_write(w, "abcd", 4), 0);
  CHECK_EQ_INT(tus_write_offset(w), 4);
  CHECK_EQ_INT(tus_write_durable(w), 0);
  /* not checkpointed: a reader sees the durable offset */
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), 0);
  CHECK_EQ_INT(g.offset, 0);
  tus_upload_release(&g);
  CHECK_EQ_INT(tus_checkpoint(w), 0);
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), 0);
  CHECK_EQ_INT(g.offset, 4);
  tus_upload_release(&g);
  /* past Upload-Length: refused whole */
  CHECK_EQ_INT(tus_write(w, "0123456789", 7), GROVE_ETOOBIG);
  CHECK_EQ_INT(tus_write_offset(w), 4);
  CHECK_EQ_INT(tus_write(w, "ef", 2), 0);
  tus_unlock(w); /* not checkpointed: dropped */
  CHECK_EQ_INT(file_size(t, u.id), 4);
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), 0);
  CHECK_EQ_INT(g.offset, 4);
  tus_upload_release(&g);
  put(t, u.id, "alice", "efghij");
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), 0);
  CHECK_EQ_INT(g.offset, 10);
  tus_upload_release(&g);
  /* finished: no more writes */
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w, NULL), GROVE_EEXIST);
  char path[4200], buf[16] = "";
  tus_data_path(t, u.id, path, sizeof path);
  int fd = open(path, O_RDONLY);
  CHECK(fd >= 0);
  CHECK_EQ_INT(read(fd, buf, sizeof buf), 10);
  close(fd);
  CHECK_EQ_STR(buf, "abcdefghij");
  tus_upload_release(&u);
  tus_close(t);
  store_close(s);
}

TEST(discard_forgets_the_chunk) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload u;
  make(t, "alice", TUS_PLAIN, 10, &u);
  put(t, u.id, "alice", "abc");
  struct tus_write *w;
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w, NULL), 0);
  CHECK_EQ_INT(tus_write_offset(w), 3);
  CHECK_EQ_INT(tus_write(w, "XYZ", 3), 0);
  CHECK_EQ_INT(tus_discard(w), 0);
  CHECK_EQ_INT(tus_write_offset(w), 3);
  CHECK_EQ_INT(file_size(t, u.id), 3);
  CHECK_EQ_INT(tus_write(w, "def", 3), 0);
  CHECK_EQ_INT(tus_checkpoint(w), 0);
  tus_unlock(w);
  CHECK_EQ_INT(file_size(t, u.id), 6);
  tus_upload_release(&u);
  tus_close(t);
  store_close(s);
}

TEST(running_hash_spans_patches_and_discards) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload u, v;
  make(t, "alice", TUS_PLAIN, 11, &u);
  struct tus_write *w;
  char sha[65];
  /* three PATCHes, one chunk thrown away: the hash is of what counts */
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w, NULL), 0);
  CHECK_EQ_INT(tus_write(w, "hello", 5), 0);
  CHECK_EQ_INT(tus_checkpoint(w), 0);
  CHECK(!tus_write_sha256(w, sha)); /* not complete */
  tus_unlock(w);
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w, NULL), 0);
  CHECK_EQ_INT(tus_write(w, " XXXXX", 6), 0);
  CHECK_EQ_INT(tus_discard(w), 0);
  CHECK_EQ_INT(tus_write(w, " wor", 4), 0);
  CHECK_EQ_INT(tus_checkpoint(w), 0);
  CHECK_EQ_INT(tus_write(w, "zz", 2), 0); /* never checkpointed: cut at unlock */
  tus_unlock(w);
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w, NULL), 0);
  CHECK_EQ_INT(tus_write_offset(w), 9);
  CHECK_EQ_INT(tus_write(w, "ld", 2), 0);
  CHECK(!tus_write_sha256(w, sha)); /* not durable yet */
  CHECK_EQ_INT(tus_checkpoint(w), 0);
  CHECK(tus_write_sha256(w, sha));
  CHECK_EQ_STR(sha, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
  tus_unlock(w);
  /* a process that did not see the start cannot tell: the caller hashes */
  make(t, "alice", TUS_PLAIN, 4, &v);
  put(t, v.id, "alice", "ab");
  tus_close(t);
  t = open_tus(s);
  CHECK_EQ_INT(tus_lock(t, v.id, "alice", &w, NULL), 0);
  CHECK_EQ_INT(tus_write(w, "cd", 2), 0);
  CHECK_EQ_INT(tus_checkpoint(w), 0);
  CHECK(!tus_write_sha256(w, sha));
  tus_unlock(w);
  tus_upload_release(&u);
  tus_upload_release(&v);
  tus_close(t);
  store_close(s);
}

TEST(one_writer_at_a_time_with_fencing) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload u, g;
  make(t, "alice", TUS_PLAIN, 100, &u);
  struct tus_write *w1, *w2;
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w1, NULL), 0);
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w2, NULL), GROVE_EBUSY);
  CHECK_EQ_INT(tus_delete(t, u.id, "alice"), GROVE_EBUSY);
  CHECK_EQ_INT(tus_write(w1, "aaaa", 4), 0);
  CHECK_EQ_INT(tus_checkpoint(w1), 0); /* renews the lease */
  atomic_fetch_add(&now_ms, 9000);
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w2, NULL), GROVE_EBUSY);
  /* the lease lapses: a second writer takes over, the first is fenced off */
  atomic_fetch_add(&now_ms, 2000);
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w2, NULL), 0);
  CHECK_EQ_INT(tus_write_offset(w2), 4);
  CHECK_EQ_INT(tus_write(w1, "bbbb", 4), GROVE_EPERM); /* the stale writer touches nothing */
  CHECK_EQ_INT(tus_checkpoint(w1), GROVE_EPERM);
  CHECK_EQ_INT(tus_discard(w1), GROVE_EPERM);
  tus_unlock(w1); /* must not free w2's lock */
  struct tus_write *w3;
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w3, NULL), GROVE_EBUSY);
  CHECK_EQ_INT(tus_write(w2, "cccc", 4), 0);
  CHECK_EQ_INT(tus_checkpoint(w2), 0);
  /* writes renew the lease: a slow client keeps its lock */
  for (int i = 0; i < 5; i++) {
    atomic_fetch_add(&now_ms, 4000);
    CHECK_EQ_INT(tus_write(w2, "", 0), 0);
  }
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w3, NULL), GROVE_EBUSY);
  /* a writer stops a tenth of the lease before it lapses */
  atomic_fetch_add(&now_ms, 9500);
  CHECK_EQ_INT(tus_write(w2, "d", 1), GROVE_EPERM);
  tus_unlock(w2);
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), 0);
  CHECK_EQ_INT(g.offset, 8);
  tus_upload_release(&g);
  CHECK_EQ_INT(tus_delete(t, u.id, "alice"), 0);
  CHECK_EQ_INT(file_size(t, u.id), -1);
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), GROVE_ENOENT);
  tus_upload_release(&u);
  tus_close(t);
  store_close(s);
}

/* A writer process that dies without a word (as kill -9) after two
 * checkpoints and some bytes past them: the record names what was
 * fsync'd, the lock frees when the instance starts again on the same
 * data directory, and the bytes past the durable offset are cut off. */
TEST(offset_survives_a_killed_writer) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload u, g;
  make(t, "alice", TUS_PLAIN, 1000, &u);
  tus_close(t);
  store_close(s);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct store *cs = open_store(false);
    struct tus *ct = open_tus(cs);
    struct tus_write *w;
    if (tus_lock(ct, u.id, "alice", &w, NULL))
      _exit(1);
    char block[100];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < 2; i++)
      if (tus_write(w, block, sizeof block) || tus_checkpoint(w))
        _exit(2);
    if (tus_write(w, block, 50))
      _exit(3);
    _exit(0); /* no unlock, no close */
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  s = open_store(false);
  t = open_tus(s);
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), 0);
  CHECK_EQ_INT(g.offset, 200);
  tus_upload_release(&g);
  CHECK_EQ_INT(file_size(t, u.id), 250);
  struct tus_write *w;
  CHECK_EQ_INT(tus_lock(t, u.id, "alice", &w, NULL), 0); /* the dead writer's lock is freed */
  CHECK_EQ_INT(tus_write_offset(w), 200);
  CHECK_EQ_INT(file_size(t, u.id), 200);
  tus_unlock(w);
  tus_upload_release(&u);
  tus_close(t);
  store_close(s);
}

TEST(concatenation_follows_the_named_order) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload a, b, c, f, plain;
  make(t, "alice", TUS_PARTIAL, 3, &a);
  make(t, "alice", TUS_PARTIAL, 4, &b);
  make(t, "alice", TUS_PARTIAL, 2, &c);
  make(t, "alice", TUS_PLAIN, 1, &plain);
  /* written out of order */
  put(t, c.id, "alice", "89");
  put(t, a.id, "alice", "123");
  char ids[3][TUS_ID_LEN];
  memcpy(ids[0], a.id, TUS_ID_LEN);
  memcpy(ids[1], b.id, TUS_ID_LEN);
  memcpy(ids[2], c.id, TUS_ID_LEN);
  int bad;
  /* b unfinished */
  CHECK_EQ_INT(tus_concat_final(t, "alice", (const char(*)[TUS_ID_LEN])ids, 3, NULL, NULL, NULL, &f, &bad, NULL),
               GROVE_EINVAL);
  CHECK_EQ_INT(bad, 1);
  put(t, b.id, "alice", "4567");
  /* another's parts */
  CHECK_EQ_INT(tus_concat_final(t, "bob", (const char(*)[TUS_ID_LEN])ids, 3, NULL, NULL, NULL, &f, &bad, NULL),
               GROVE_ENOENT);
  CHECK_EQ_INT(bad, 0);
  /* not a partial upload */
  put(t, plain.id, "alice", "z");
  char one[1][TUS_ID_LEN];
  memcpy(one[0], plain.id, TUS_ID_LEN);
  CHECK_EQ_INT(tus_concat_final(t, "alice", (const char(*)[TUS_ID_LEN])one, 1, NULL, NULL, NULL, &f, &bad, NULL),
               GROVE_EINVAL);
  char fsha[65];
  CHECK_EQ_INT(tus_concat_final(t, "alice", (const char(*)[TUS_ID_LEN])ids, 3, "k dg==", NULL,
                                NULL, &f, &bad, fsha),
               0);
  CHECK_EQ_STR(fsha, "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225");
  CHECK(f.kind == TUS_FINAL);
  CHECK_EQ_INT(f.length, 9);
  CHECK_EQ_INT(f.offset, 9);
  struct tus_upload g;
  CHECK_EQ_INT(tus_get(t, f.id, "alice", &g), 0);
  CHECK_EQ_INT(g.offset, 9);
  CHECK(g.kind == TUS_FINAL);
  char want[3 * TUS_ID_LEN];
  snprintf(want, sizeof want, "%s %s %s", a.id, b.id, c.id);
  CHECK_EQ_STR(g.parts, want);
  CHECK_EQ_STR(g.metadata, "k dg==");
  tus_upload_release(&g);
  struct tus_write *w;
  CHECK_EQ_INT(tus_lock(t, f.id, "alice", &w, NULL), GROVE_EEXIST); /* no PATCH on a final */
  char path[4200], buf[16] = "";
  tus_data_path(t, f.id, path, sizeof path);
  int fd = open(path, O_RDONLY);
  CHECK(fd >= 0);
  CHECK_EQ_INT(read(fd, buf, sizeof buf), 9);
  close(fd);
  CHECK_EQ_STR(buf, "123456789");
  tus_upload_release(&a);
  tus_upload_release(&b);
  tus_upload_release(&c);
  tus_upload_release(&f);
  tus_upload_release(&plain);
  tus_close(t);
  store_close(s);
}

/* The final of ids[0..n) of alice, hashed: its SHA-256 into sha. */
static void final_of(struct tus *t, struct tus_upload *const *parts, int n, char sha[65]) {
  char ids[4][TUS_ID_LEN];
  for (int i = 0; i < n; i++)
    memcpy(ids[i], parts[i]->id, TUS_ID_LEN);
  struct tus_upload f;
  int bad;
  CHECK_EQ_INT(tus_concat_final(t, "alice", (const char(*)[TUS_ID_LEN])ids, n, NULL, NULL, NULL,
                                &f, &bad, sha),
               0);
  tus_upload_release(&f);
}

#define SHA_123456789 "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"

TEST(the_final_hash_runs_ahead_along_the_parts) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload a, b, c;
  make(t, "alice", TUS_PARTIAL, 3, &a);
  make(t, "alice", TUS_PARTIAL, 4, &b);
  make(t, "alice", TUS_PARTIAL, 2, &c);
  /* the first part as it comes, the third before the second */
  put(t, a.id, "alice", "12");
  tus_settle(t);
  CHECK_EQ_INT(tus_hashed_ahead(t), 2);
  put(t, c.id, "alice", "89");
  put(t, a.id, "alice", "3");
  tus_settle(t);
  CHECK_EQ_INT(tus_hashed_ahead(t), 3); /* the third waits for the second */
  put(t, b.id, "alice", "4567");
  tus_settle(t);
  CHECK_EQ_INT(tus_hashed_ahead(t), 9);
  char sha[65];
  struct tus_upload *abc[] = {&a, &b, &c};
  final_of(t, abc, 3, sha);
  CHECK_EQ_STR(sha, SHA_123456789);
  CHECK_EQ_INT(tus_hashed_at_final(t), 0); /* nothing left to hash */
  /* the same parts again (a retried final): the kept state still holds */
  final_of(t, abc, 3, sha);
  CHECK_EQ_STR(sha, SHA_123456789);
  CHECK_EQ_INT(tus_hashed_at_final(t), 0);
  /* another order: hashed at the final */
  struct tus_upload *cab[] = {&c, &a, &b};
  final_of(t, cab, 3, sha);
  CHECK_EQ_STR(sha, "40a06672a9537a2c88e0e1273916be4311a90d3c7f857ee746e41cfbc195f6ff");
  CHECK_EQ_INT(tus_hashed_at_final(t), 9);
  /* a new file: a chain of its own; a final of its first two parts
   * takes the state kept at that boundary */
  struct tus_upload d, e, g;
  make(t, "alice", TUS_PARTIAL, 3, &d);
  make(t, "alice", TUS_PARTIAL, 4, &e);
  make(t, "alice", TUS_PARTIAL, 2, &g);
  put(t, d.id, "alice", "123");
  put(t, e.id, "alice", "4567");
  put(t, g.id, "alice", "89");
  tus_settle(t);
  CHECK_EQ_INT(tus_hashed_ahead(t), 18);
  struct tus_upload *de[] = {&d, &e};
  final_of(t, de, 2, sha);
  CHECK_EQ_STR(sha, "8bb0cf6eb9b17d0f7d22b456f121257dc1254e1f01665370476383ea776df414"); /* 1234567 */
  CHECK_EQ_INT(tus_hashed_at_final(t), 9);
  tus_upload_release(&a);
  tus_upload_release(&b);
  tus_upload_release(&c);
  tus_upload_release(&d);
  tus_upload_release(&e);
  tus_upload_release(&g);
  tus_close(t);
  store_close(s);
}

TEST(a_restart_or_a_deleted_part_leaves_the_rest_to_the_final) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload a, b, c;
  make(t, "alice", TUS_PARTIAL, 3, &a);
  make(t, "alice", TUS_PARTIAL, 4, &b);
  make(t, "alice", TUS_PARTIAL, 2, &c);
  put(t, a.id, "alice", "123");
  put(t, b.id, "alice", "45");
  tus_settle(t);
  CHECK_EQ_INT(tus_hashed_ahead(t), 5);
  /* a restart in the middle: the hasher's state is gone with the process */
  tus_close(t);
  t = open_tus(s);
  put(t, b.id, "alice", "67");
  put(t, c.id, "alice", "89");
  tus_settle(t);
  CHECK_EQ_INT(tus_hashed_ahead(t), 0); /* parts it never saw created */
  char sha[65];
  struct tus_upload *abc[] = {&a, &b, &c};
  final_of(t, abc, 3, sha);
  CHECK_EQ_STR(sha, SHA_123456789);
  CHECK_EQ_INT(tus_hashed_at_final(t), 9);
  /* a part deleted under the frontier: the final of it is 404 */
  struct tus_upload d, e, f;
  make(t, "alice", TUS_PARTIAL, 3, &d);
  make(t, "alice", TUS_PARTIAL, 4, &e);
  put(t, d.id, "alice", "123");
  CHECK_EQ_INT(tus_delete(t, d.id, "alice"), 0);
  put(t, e.id, "alice", "4567");
  tus_settle(t);
  char ids[2][TUS_ID_LEN];
  memcpy(ids[0], d.id, TUS_ID_LEN);
  memcpy(ids[1], e.id, TUS_ID_LEN);
  int bad;
  CHECK_EQ_INT(tus_concat_final(t, "alice", (const char(*)[TUS_ID_LEN])ids, 2, NULL, NULL, NULL,
                                &f, &bad, sha),
               GROVE_ENOENT);
  CHECK_EQ_INT(bad, 0);
  tus_upload_release(&a);
  tus_upload_release(&b);
  tus_upload_release(&c);
  tus_upload_release(&d);
  tus_upload_release(&e);
  tus_close(t);
  store_close(s);
}

TEST(expired_uploads_are_swept) {
  struct store *s = open_store(true);
  struct tus *t = open_tus(s);
  struct tus_upload u, v, g;
  make(t, "alice", TUS_PLAIN, 10, &u);
  make(t, "alice", TUS_PLAIN, 10, &v);
  atomic_fetch_add(&now_ms, 30000);
  put(t, v.id, "alice", "ab"); /* a write moves its expiry on */
  /* a leftover data file with no record */
  char path[4200];
  tus_data_path(t, ID1, path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT, 0600);
  CHECK(fd >= 0);
  close(fd);
  int n = -1;
  CHECK_EQ_INT(tus_sweep(t, &n), 0);
  CHECK_EQ_INT(n, 1); /* the leftover */
  atomic_fetch_add(&now_ms, 30000);
  /* expired: gone to readers at once, swept later */
  CHECK_EQ_INT(tus_get(t, u.id, "alice", &g), GROVE_ENOENT);
  CHECK_EQ_INT(file_size(t, u.id), 0);
  CHECK_EQ_INT(tus_get(t, v.id, "alice", &g), 0);
  tus_upload_release(&g);
  CHECK_EQ_INT(tus_sweep(t, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(file_size(t, u.id), -1);
  CHECK_EQ_INT(file_size(t, v.id), 2);
  /* written again: its expiry moves on */
  struct tus_write *w;
  CHECK_EQ_INT(tus_lock(t, v.id, "alice", &w, NULL), 0);
  CHECK_EQ_INT(tus_write(w, "c", 1), 0);
  atomic_fetch_add(&now_ms, 5000);
  CHECK_EQ_INT(tus_checkpoint(w), 0);
  tus_unlock(w);
  atomic_fetch_add(&now_ms, 59000);
  CHECK_EQ_INT(tus_sweep(t, &n), 0);
  CHECK_EQ_INT(n, 0);
  atomic_fetch_add(&now_ms, 1000);
  CHECK_EQ_INT(tus_sweep(t, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(file_size(t, v.id), -1);
  tus_upload_release(&u);
  tus_upload_release(&v);
  tus_close(t);
  store_close(s);
}

static const struct test tests[] = {
    T(version_is_exactly_1_0_0),
    T(offsets_are_plain_decimals),
    T(defer_length_is_1),
    T(metadata_pairs_decode),
    T(metadata_refuses_malformed),
    T(checksum_is_sha256_base64),
    T(concat_partial_and_final),
    T(expires_round_trips),
    T(ids_are_32_hex),
    T(create_read_is_owner_only),
    T(checkpoint_makes_the_offset_durable),
    T(discard_forgets_the_chunk),
    T(running_hash_spans_patches_and_discards),
    T(one_writer_at_a_time_with_fencing),
    T(offset_survives_a_killed_writer),
    T(concatenation_follows_the_named_order),
    T(the_final_hash_runs_ahead_along_the_parts),
    T(a_restart_or_a_deleted_part_leaves_the_rest_to_the_final),
    T(expired_uploads_are_swept),
};

TEST_MAIN(tests)
