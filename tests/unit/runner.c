/* runner.c — forks each test with a timeout and reports ok/FAIL lines. */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static int run_one(const struct test *t, int timeout_s) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    alarm((unsigned)timeout_s);
    t->fn();
    fflush(NULL);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    fprintf(stderr, "  timed out after %d s\n", timeout_s);
  else if (WIFSIGNALED(status))
    fprintf(stderr, "  killed by signal %d\n", WTERMSIG(status));
  else
    fprintf(stderr, "  exited with %d\n", WEXITSTATUS(status));
  return 1;
}

/* "name" is that test; "prefix*" every test whose name starts so. */
static int names_match(const char *want, const char *name) {
  size_t n = strlen(want);
  if (n && want[n - 1] == '*')
    return strncmp(want, name, n - 1) == 0;
  return strcmp(want, name) == 0;
}

int test_main(int argc, char **argv, const struct test *tests, size_t n) {
  int failed = 0, ran = 0;
  const char *to = getenv("GROVE_TEST_TIMEOUT");
  int timeout_s = to ? atoi(to) : 60;
  for (size_t i = 0; i < n; i++) {
    if (argc > 1) {
      int want = 0;
      for (int k = 1; k < argc; k++)
        want |= names_match(argv[k], tests[i].name);
      if (!want)
        continue;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = run_one(&tests[i], timeout_s);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("%s %-50s %.1f ms\n", rc ? "FAIL" : "ok  ", tests[i].name, ms);
    failed += rc;
    ran++;
  }
  printf("%d of %d passed\n", ran - failed, ran);
  return failed ? 1 : ran ? 0 : 1;
}
