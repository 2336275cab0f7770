/* test_lock.c — one process at a time on a series directory: a second
 * open from another process is refused with an error naming the directory
 * and the holder's pid; the lock goes when the holder closes the store or
 * dies, even by kill -9. */
#include "../test.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "series/series.h"
#include "store.h"

/* Opens dir in a forked child. Returns what series_open returned there;
 * the error text, when it failed, goes to err. */
static int open_in_child(const char *dir, char *err, size_t errlen) {
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    struct series *s = NULL;
    char why[512] = "";
    int rc = series_open(&s, dir, why, sizeof why);
    series_close(s);
    char line[600];
    int n = snprintf(line, sizeof line, "%d %s", rc, rc ? why : "");
    _exit(write(p[1], line, (size_t)n) == n ? 0 : 1);
  }
  close(p[1]);
  char line[600] = "";
  ssize_t got = 0, r;
  while ((r = read(p[0], line + got, sizeof line - 1 - (size_t)got)) > 0)
    got += r;
  close(p[0]);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  line[got] = '\0';
  char *space = strchr(line, ' ');
  CHECK(space);
  snprintf(err, errlen, "%s", space + 1);
  return atoi(line);
}

TEST(second_process_is_refused_until_the_first_closes) {
  char *dir = store_dir();
  struct series *s = open_store(dir);
  char err[512], want[256];
  CHECK_EQ_INT(open_in_child(dir, err, sizeof err), GROVE_EBUSY);
  snprintf(want, sizeof want, "series directory '%s' is in use by another process (pid %ld)",
           dir, (long)getpid());
  CHECK_EQ_STR(err, want);
  series_close(s);
  CHECK_EQ_INT(open_in_child(dir, err, sizeof err), 0);
  s = open_store(dir); /* and again here, after the child let go */
  series_close(s);
}

TEST(lock_goes_with_a_holder_killed_by_sigkill) {
  char *dir = store_dir();
  int ready[2];
  CHECK(pipe(ready) == 0);
  pid_t holder = fork();
  CHECK(holder >= 0);
  if (holder == 0) {
    close(ready[0]);
    struct series *s = open_store(dir);
    (void)s;
    if (write(ready[1], "x", 1) != 1)
      _exit(1);
    for (;;)
      pause();
  }
  close(ready[1]);
  char c;
  CHECK(read(ready[0], &c, 1) == 1); /* the holder has the store open */
  close(ready[0]);
  char err[512], want[256];
  CHECK_EQ_INT(open_in_child(dir, err, sizeof err), GROVE_EBUSY);
  snprintf(want, sizeof want, "(pid %ld)", (long)holder);
  CHECK(strstr(err, want));
  CHECK(strstr(err, dir));
  CHECK(kill(holder, SIGKILL) == 0);
  int status;
  CHECK(waitpid(holder, &status, 0) == holder && WIFSIGNALED(status));
  struct series *s = open_store(dir); /* no stale lock to clean up */
  series_close(s);
}

TEST(same_directory_twice_in_one_process_is_refused) {
  char *dir = store_dir();
  struct series *s = open_store(dir), *t = NULL;
  char err[512];
  CHECK_EQ_INT(series_open(&t, dir, err, sizeof err), GROVE_EBUSY);
  CHECK(strstr(err, "is in use"));
  series_close(s);
}

static const struct test tests[] = {
    T(second_process_is_refused_until_the_first_closes),
    T(lock_goes_with_a_holder_killed_by_sigkill),
    T(same_directory_twice_in_one_process_is_refused),
};

TEST_MAIN(tests)
