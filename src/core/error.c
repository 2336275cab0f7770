/* error.c — names and messages of the GROVE_E* codes. */
#include "core/error.h"

#define X(name, msg) [GROVE_E##name - GROVE_ERR_FIRST_ - 1] = msg,
static const char *const messages[] = {GROVE_ERRNO_MAP(X)};
#undef X
#define X(name, msg) [GROVE_E##name - GROVE_ERR_FIRST_ - 1] = #name,
static const char *const names[] = {GROVE_ERRNO_MAP(X)};
#undef X

static int index_of(int err) {
  int i = err - GROVE_ERR_FIRST_ - 1;
  if (i < 0 || i >= (int)(sizeof(names) / sizeof(names[0])))
    return -1;
  return i;
}

const char *grove_strerror(int err) {
  if (err == 0)
    return "success";
  int i = index_of(err);
  return i < 0 ? "unknown error" : messages[i];
}

const char *grove_errname(int err) {
  if (err == 0)
    return "OK";
  int i = index_of(err);
  return i < 0 ? "UNKNOWN" : names[i];
}
