/* test_blobs.c — the blob store on the store named by GROVE_TEST_STORE (a
 * postgres:// URL from the test run) or a fresh SQLite file, with the
 * local backend in a fresh folder: hashes, deduplication and reference
 * counts, deletes that free the bytes, quota arithmetic and quotas kept
 * at commit, finished files moved in, and the sweep at open that removes
 * what a crash left. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../test.h"
#include "../store_fixture.h"
#include "blobs/blobs.h"
#include "core/error.h"
#include "core/util.h"

static char dir[64];
static char root[128];

static struct store *open_store(void) {
  struct store *s = fixture_store_open(dir, sizeof dir, "/tmp/grove-blobs-XXXXXX", 4);
  char err[256];
  /* a clean slate on a shared server */
  store_query(s, "DROP TABLE IF EXISTS blobs_blobs", NULL, 0, NULL, err, sizeof err);
  store_query(s, "DROP TABLE IF EXISTS blobs_content", NULL, 0, NULL, err, sizeof err);
  store_query(s, "DROP TABLE IF EXISTS blobs_usage", NULL, 0, NULL, err, sizeof err);
  store_query(s, "DELETE FROM grove_migrations WHERE module = 'blobs'", NULL, 0, NULL, err,
              sizeof err);
  int rc = store_migrate(s, "blobs", blobs_migrations, blobs_nmigrations, NULL, err, sizeof err);
  if (rc)
    fprintf(stderr, "migrate: %s\n", err);
  CHECK(rc == 0);
  snprintf(root, sizeof root, "%s/blobs", dir);
  return s;
}

static struct blobs *open_blobs(struct store *s, uint64_t quota_bytes, int quota_files,
                                uint64_t max) {
  struct blobs_cfg cfg = {.backend = "local", .dir = root, .quota_bytes = quota_bytes,
                          .quota_files = quota_files};
  struct blobs_env env = {s, dir, max, NULL};
  struct blobs *b;
  char err[256];
  int rc = blobs_open(&b, &cfg, &env, err, sizeof err);
  if (rc)
    fprintf(stderr, "blobs_open: %s\n", err);
  CHECK(rc == 0);
  return b;
}

static int put(struct blobs *b, const char *owner, const char *data, struct blobs_info *out) {
  struct blobs_writer *w;
  int rc = blobs_writer_open(b, owner, -1, &w);
  if (rc)
    return rc;
  /* in two pieces: the hash runs across writes */
  size_t n = strlen(data), half = n / 2;
  if ((rc = blobs_writer_write(w, data, half)) || (rc = blobs_writer_write(w, data + half, n - half))) {
    blobs_writer_abort(w);
    return rc;
  }
  struct blobs_new nb = {owner, "file.txt", "text/plain"};
  return blobs_writer_commit(w, &nb, out);
}

static bool content_exists(const char *sha) {
  char p[512];
  snprintf(p, sizeof p, "%s/%.2s/%.2s/%s", root, sha, sha + 2, sha);
  return access(p, F_OK) == 0;
}

static int count_dir(const char *sub) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "ls -A %s/%s | wc -l", root, sub);
  FILE *f = popen(cmd, "r");
  int n = -1;
  if (f) {
    if (fscanf(f, "%d", &n) != 1)
      n = -1;
    pclose(f);
  }
  return n;
}

/* Files in this data directory's own temporary folder (tmp/<instance>). */
static int tmp_count(void) {
  char inst[64] = "", sub[128];
  char p[512];
  snprintf(p, sizeof p, "%s/blobs.instance", dir);
  FILE *f = fopen(p, "r");
  if (f) {
    if (!fgets(inst, sizeof inst, f))
      inst[0] = '\0';
    fclose(f);
  }
  snprintf(sub, sizeof sub, "tmp/%.32s", inst);
  return count_dir(sub);
}

static long long refs_of(struct store *s, const char *sha) {
  struct store_rows *r = NULL;
  const char *p[] = {sha};
  CHECK(store_query(s, "SELECT refs FROM blobs_content WHERE sha256 = $1", p, 1, &r, NULL, 0) == 0);
  long long v = r->nrows ? strtoll(store_rows_get(r, 0, "refs"), NULL, 10) : 0;
  store_rows_free(r);
  return v;
}

/* SHA-256("hello world") */
#define HELLO_SHA "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"

TEST(quota_arithmetic) {
  struct blobs_usage u = {.bytes = 90, .quota_bytes = 100, .files = 2, .quota_files = 3};
  CHECK_EQ_INT(blobs_quota_check(&u, 1000, 10), 0);
  CHECK_EQ_INT(blobs_quota_check(&u, 1000, 11), GROVE_EQUOTA);
  CHECK_EQ_INT(blobs_quota_check(&u, 1000, -1), 0); /* unknown size: files only */
  CHECK_EQ_INT(blobs_quota_check(&u, 5, 6), GROVE_ETOOBIG); /* the size limit first */
  u.files = 3;
  CHECK_EQ_INT(blobs_quota_check(&u, 1000, 0), GROVE_EQUOTA);
  CHECK_EQ_INT(blobs_quota_check(&u, 1000, -1), GROVE_EQUOTA);
  struct blobs_usage none = {.bytes = UINT64_MAX - 1, .files = 1000000};
  CHECK_EQ_INT(blobs_quota_check(&none, UINT64_MAX, INT64_MAX), 0); /* 0: no quota */
  struct blobs_usage over = {.bytes = 200, .quota_bytes = 100}; /* the quota was lowered */
  CHECK_EQ_INT(blobs_quota_check(&over, 1000, 0), GROVE_EQUOTA);
  /* no wrap-around: a size near 2^64 is over any quota */
  struct blobs_usage near = {.bytes = 10, .quota_bytes = 100};
  CHECK_EQ_INT(blobs_quota_check(&near, UINT64_MAX, INT64_MAX), GROVE_EQUOTA);
}

TEST(names_and_media_types) {
  CHECK(blobs_name_valid("lecture 1.pdf"));
  CHECK(blobs_name_valid("r\xc3\xa9sum\xc3\xa9.docx"));
  CHECK(!blobs_name_valid(""));
  CHECK(!blobs_name_valid("a/b"));
  CHECK(!blobs_name_valid("a\\b"));
  CHECK(!blobs_name_valid("tab\there"));
  CHECK(!blobs_name_valid("\xc2\x85next-line")); /* C1 control */
  CHECK(!blobs_name_valid("\xff\xfe"));          /* not UTF-8 */
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  CHECK(!blobs_name_valid(longname));
  longname[255] = '\0';
  CHECK(blobs_name_valid(longname));
  CHECK(blobs_media_type_valid("application/pdf"));
  CHECK(blobs_media_type_valid("text/plain; charset=utf-8"));
  CHECK(!blobs_media_type_valid("pdf"));
  CHECK(!blobs_media_type_valid("text/"));
  CHECK(!blobs_media_type_valid("te xt/plain"));
  CHECK(!blobs_media_type_valid("text/plain\r\nX: y"));
}

TEST(dedup_counts_references_and_the_last_delete_frees_the_bytes) {
  struct store *s = open_store();
  struct blobs *b = open_blobs(s, 0, 0, 1 << 20);
  struct blobs_info a, c;
  CHECK_EQ_INT(put(b, "alice", "hello world", &a), 0);
  CHECK_EQ_STR(a.sha256, HELLO_SHA);
  CHECK_EQ_INT(a.size, 11);
  CHECK_EQ_STR(a.owner, "alice");
  CHECK_EQ_STR(a.media_type, "text/plain");
  CHECK(content_exists(HELLO_SHA));
  CHECK_EQ_INT(put(b, "bob", "hello world", &c), 0);
  CHECK(strcmp(a.id, c.id) != 0);
  CHECK_EQ_INT(refs_of(s, HELLO_SHA), 2);
  CHECK_EQ_INT(tmp_count(), 0);
  struct blobs_info got;
  CHECK_EQ_INT(blobs_get(b, a.id, &got), 0);
  CHECK_EQ_STR(got.sha256, HELLO_SHA);
  CHECK_EQ_INT(got.created_ms, a.created_ms);
  /* read it back */
  struct blobs_reader *rd;
  CHECK_EQ_INT(blobs_reader_open(b, &got, &rd), 0);
  char buf[32];
  size_t n;
  CHECK_EQ_INT(blobs_reader_read(rd, 6, buf, sizeof buf, &n), 0);
  CHECK_EQ_INT(n, 5);
  CHECK(memcmp(buf, "world", 5) == 0);
  blobs_reader_close(rd);
  /* only the owner (or anyone when owner is NULL) deletes */
  CHECK_EQ_INT(blobs_delete(b, a.id, "bob"), GROVE_ENOENT);
  CHECK_EQ_INT(blobs_delete(b, a.id, "alice"), 0);
  CHECK_EQ_INT(blobs_get(b, a.id, &got), GROVE_ENOENT);
  CHECK_EQ_INT(blobs_delete(b, a.id, "alice"), GROVE_ENOENT);
  CHECK_EQ_INT(refs_of(s, HELLO_SHA), 1);
  CHECK(content_exists(HELLO_SHA));
  CHECK_EQ_INT(blobs_delete(b, c.id, NULL), 0);
  CHECK_EQ_INT(refs_of(s, HELLO_SHA), 0);
  CHECK(!content_exists(HELLO_SHA));
  struct blobs_usage u;
  CHECK_EQ_INT(blobs_usage(b, "alice", &u), 0);
  CHECK_EQ_INT(u.bytes, 0);
  CHECK_EQ_INT(u.files, 0);
  blobs_close(b);
  store_close(s);
}

TEST(hash_and_write_halves_on_two_threads_make_one_blob) {
  struct store *s = open_store();
  struct blobs *b = open_blobs(s, 0, 0, 1 << 20);
  struct blobs_writer *w;
  struct blobs_new nb = {"alice", "h.txt", "text/plain"};
  struct blobs_info i;
  /* the halves one after another here; the upload route runs them on two
   * pool threads at once, each in order */
  CHECK_EQ_INT(blobs_writer_open(b, "alice", -1, &w), 0);
  CHECK_EQ_INT(blobs_writer_take(w, "hello ", 6), 0);
  CHECK_EQ_INT(blobs_writer_put(w, "hello ", 6), 0);
  CHECK_EQ_INT(blobs_writer_put(w, "world", 5), 0); /* the write ahead of the hash */
  CHECK_EQ_INT(blobs_writer_take(w, "world", 5), 0);
  CHECK_EQ_INT(blobs_writer_commit(w, &nb, &i), 0);
  CHECK_EQ_STR(i.sha256, HELLO_SHA);
  CHECK_EQ_INT(i.size, 11);
  /* halves that did not see the same bytes: nothing is stored */
  CHECK_EQ_INT(blobs_writer_open(b, "alice", -1, &w), 0);
  CHECK_EQ_INT(blobs_writer_take(w, "hello world", 11), 0);
  CHECK_EQ_INT(blobs_writer_put(w, "hello", 5), 0);
  CHECK_EQ_INT(blobs_writer_commit(w, &nb, &i), GROVE_EIO);
  CHECK_EQ_INT(tmp_count(), 0);
  blobs_close(b);
  store_close(s);
}

TEST(quotas_hold_at_commit_and_the_size_limit_while_writing) {
  struct store *s = open_store();
  struct blobs *b = open_blobs(s, 10, 0, 8);
  struct blobs_writer *w1, *w2;
  /* both start while 0 bytes are used; only the first fits at commit */
  CHECK_EQ_INT(blobs_writer_open(b, "carol", 6, &w1), 0);
  CHECK_EQ_INT(blobs_writer_open(b, "carol", 6, &w2), 0);
  CHECK_EQ_INT(blobs_writer_write(w1, "123456", 6), 0);
  CHECK_EQ_INT(blobs_writer_write(w2, "abcdef", 6), 0);
  struct blobs_new nb = {"carol", "x", NULL};
  struct blobs_info i;
  CHECK_EQ_INT(blobs_writer_commit(w1, &nb, &i), 0);
  CHECK_EQ_STR(i.media_type, "application/octet-stream");
  CHECK_EQ_INT(blobs_writer_commit(w2, &nb, &i), GROVE_EQUOTA);
  CHECK_EQ_INT(tmp_count(), 0);
  /* nothing of the refused one is kept: only the first content's folder */
  CHECK_EQ_INT(refs_of(s, "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721"), 0);
  CHECK(!content_exists("bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721"));
  struct blobs_usage u;
  CHECK_EQ_INT(blobs_usage(b, "carol", &u), 0);
  CHECK_EQ_INT(u.bytes, 6);
  CHECK_EQ_INT(u.files, 1);
  /* known up front: refused before a byte is written */
  CHECK_EQ_INT(blobs_writer_open(b, "carol", 5, &w1), GROVE_EQUOTA);
  CHECK_EQ_INT(blobs_writer_open(b, "carol", 9, &w1), GROVE_ETOOBIG);
  /* unknown up front: refused as the bytes pass what is left */
  CHECK_EQ_INT(blobs_writer_open(b, "carol", -1, &w1), 0);
  CHECK_EQ_INT(blobs_writer_write(w1, "1234", 4), 0);
  CHECK_EQ_INT(blobs_writer_write(w1, "5", 1), GROVE_EQUOTA);
  blobs_writer_abort(w1);
  /* another owner has its own quota; the size limit holds while writing */
  CHECK_EQ_INT(blobs_writer_open(b, "dave", -1, &w1), 0);
  CHECK_EQ_INT(blobs_writer_write(w1, "12345678", 8), 0);
  CHECK_EQ_INT(blobs_writer_write(w1, "9", 1), GROVE_ETOOBIG);
  blobs_writer_abort(w1);
  CHECK_EQ_INT(tmp_count(), 0);
  blobs_close(b);
  /* a files quota */
  b = open_blobs(s, 0, 1, 100);
  CHECK_EQ_INT(put(b, "erin", "one", &i), 0);
  CHECK_EQ_INT(blobs_writer_open(b, "erin", -1, &w1), GROVE_EQUOTA);
  CHECK_EQ_INT(blobs_delete(b, i.id, "erin"), 0);
  CHECK_EQ_INT(put(b, "erin", "two", &i), 0);
  blobs_close(b);
  store_close(s);
}

TEST(an_adopted_file_is_linked_and_may_stay) {
  struct store *s = open_store();
  struct blobs *b = open_blobs(s, 0, 0, 1 << 20);
  char path[512];
  snprintf(path, sizeof path, "%s/part", blobs_spool_dir(b));
  FILE *f = fopen(path, "w");
  CHECK(f);
  fputs("hello world", f);
  fclose(f);
  struct blobs_new nb = {"gina", "kept.bin", NULL};
  struct blobs_info i, j;
  CHECK_EQ_INT(blobs_adopt_file(b, path, "not a hash", true, &nb, &i), GROVE_EINVAL);
  /* kept: the file stays, and the store's copy is the same bytes (a link) */
  CHECK_EQ_INT(blobs_adopt_file(b, path, NULL, true, &nb, &i), 0);
  CHECK_EQ_STR(i.sha256, HELLO_SHA);
  CHECK_EQ_INT(i.size, 11);
  CHECK(access(path, F_OK) == 0);
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK_EQ_INT(st.st_nlink, 2);
  /* a known hash is taken as is; not kept: the file goes */
  CHECK_EQ_INT(blobs_adopt_file(b, path, HELLO_SHA, false, &nb, &j), 0);
  CHECK(access(path, F_OK) != 0);
  CHECK_EQ_STR(j.sha256, HELLO_SHA);
  CHECK_EQ_INT(j.size, 11);
  CHECK_EQ_INT(blobs_delete(b, i.id, "gina"), 0);
  CHECK(content_exists(HELLO_SHA));
  CHECK_EQ_INT(blobs_delete(b, j.id, "gina"), 0);
  CHECK(!content_exists(HELLO_SHA));
  blobs_close(b);
  store_close(s);
}

TEST(a_finished_file_is_moved_in_and_checked) {
  struct store *s = open_store();
  struct blobs *b = open_blobs(s, 0, 0, 1 << 20);
  char path[512];
  snprintf(path, sizeof path, "%s/part", blobs_spool_dir(b));
  FILE *f = fopen(path, "w");
  CHECK(f);
  fputs("hello world", f);
  fclose(f);
  struct blobs_new nb = {"frank", "upload.bin", "application/octet-stream"};
  struct blobs_info i;
  /* a wrong expected hash: nothing stored, the file stays */
  CHECK_EQ_INT(blobs_put_file(b, path, &nb,
                              "0000000000000000000000000000000000000000000000000000000000000000", &i),
               GROVE_EINVAL);
  CHECK(access(path, F_OK) == 0);
  CHECK(!content_exists(HELLO_SHA));
  CHECK_EQ_INT(blobs_put_file(b, path, &nb, HELLO_SHA, &i), 0);
  CHECK(access(path, F_OK) != 0);
  CHECK(content_exists(HELLO_SHA));
  CHECK_EQ_INT(i.size, 11);
  CHECK_EQ_INT(blobs_put_file(b, path, &nb, NULL, &i), GROVE_ENOENT);
  json_t *list;
  CHECK_EQ_INT(blobs_list(b, "frank", 10, NULL, &list), 0);
  CHECK_EQ_INT(json_array_size(list), 1);
  CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(list, 0), "name")), "upload.bin");
  json_decref(list);
  blobs_close(b);
  store_close(s);
}

TEST(open_removes_what_a_crash_left) {
  struct store *s = open_store();
  struct blobs *b = open_blobs(s, 0, 0, 1 << 20);
  struct blobs_info kept;
  CHECK_EQ_INT(put(b, "gina", "hello world", &kept), 0);
  blobs_close(b);
  /* an interrupted upload's temporary file, and bytes no blob references
   * (a crash between a delete's commit and its unlink) */
  char p[512], inst[64] = "";
  snprintf(p, sizeof p, "%s/blobs.instance", dir);
  FILE *f = fopen(p, "r");
  CHECK(f && fgets(inst, sizeof inst, f));
  fclose(f);
  snprintf(p, sizeof p, "%s/tmp/%.32s/0123abcd", root, inst);
  int fd = open(p, O_CREAT | O_WRONLY, 0600);
  CHECK(fd >= 0);
  CHECK(write(fd, "partial", 7) == 7);
  close(fd);
  /* another instance's upload in progress (a shared folder): not ours */
  snprintf(p, sizeof p, "%s/tmp/ffffffffffffffffffffffffffffffff", root);
  mkdir(p, 0700);
  char theirs[512];
  snprintf(theirs, sizeof theirs, "%s/tmp/ffffffffffffffffffffffffffffffff/4567", root);
  fd = open(theirs, O_CREAT | O_WRONLY, 0600);
  CHECK(fd >= 0);
  close(fd);
  const char *orphan = "aaaa000000000000000000000000000000000000000000000000000000000000";
  snprintf(p, sizeof p, "%s/aa", root);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/aa/aa", root);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/aa/aa/%s", root, orphan);
  fd = open(p, O_CREAT | O_WRONLY, 0600);
  CHECK(fd >= 0);
  close(fd);
  b = open_blobs(s, 0, 0, 1 << 20);
  CHECK_EQ_INT(tmp_count(), 0);
  CHECK(access(theirs, F_OK) == 0);
  CHECK(!content_exists(orphan));
  CHECK(content_exists(HELLO_SHA)); /* referenced: kept */
  struct blobs_info got;
  CHECK_EQ_INT(blobs_get(b, kept.id, &got), 0);
  blobs_close(b);
  store_close(s);
}

static const struct test tests[] = {
    T(quota_arithmetic),
    T(names_and_media_types),
    T(dedup_counts_references_and_the_last_delete_frees_the_bytes),
    T(quotas_hold_at_commit_and_the_size_limit_while_writing),
    T(a_finished_file_is_moved_in_and_checked),
    T(an_adopted_file_is_linked_and_may_stay),
    T(open_removes_what_a_crash_left),
    T(hash_and_write_halves_on_two_threads_make_one_blob),
};
TEST_MAIN(tests)
