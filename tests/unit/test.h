/* test.h — Grove's tiny unit test runner (after libuv's test/task.h).
 *
 * Each test is a function registered in its file's list; the runner forks
 * one process per test with a timeout, so a crash or a hang fails that
 * test alone. `test_x [name…]` runs only the tests named ("pg_*": those
 * whose name starts with pg_). */
#ifndef GROVE_TEST_H
#define GROVE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test {
  const char *name;
  void (*fn)(void);
};

#define TEST(name) static void name(void)
#define T(name) {#name, name}

/* Runs the list; returns the exit status for main. */
int test_main(int argc, char **argv, const struct test *tests, size_t n);

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                            \
  do {                                                                                \
    long long _a = (long long)(a), _b = (long long)(b);                               \
    if (_a != _b) {                                                                   \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__,   \
              #a, #b, _a, _b);                                                        \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

#define CHECK_EQ_STR(a, b)                                                            \
  do {                                                                                \
    const char *_a = (a), *_b = (b);                                                  \
    if (!_a || !_b || strcmp(_a, _b) != 0) {                                          \
      fprintf(stderr, "%s:%d: %s == %s failed: '%s' != '%s'\n", __FILE__, __LINE__,   \
              #a, #b, _a ? _a : "(null)", _b ? _b : "(null)");                        \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

#define TEST_MAIN(list)                                                               \
  int main(int argc, char **argv) {                                                   \
    return test_main(argc, argv, list, sizeof(list) / sizeof((list)[0]));             \
  }

#endif
