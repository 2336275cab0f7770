/* error.h — Grove's error codes.
 *
 * Action functions return int: 0 on success, a negative GROVE_E* code on
 * failure. The codes come from one X-macro table that also yields each
 * code's name and message, so adding a code touches one line. */
#ifndef GROVE_ERROR_H
#define GROVE_ERROR_H

#define GROVE_ERRNO_MAP(X)                                              \
  X(NOMEM,    "out of memory")                                          \
  X(INVAL,    "invalid argument")                                       \
  X(IO,       "input/output error")                                     \
  X(NOENT,    "no such entry")                                          \
  X(EXIST,    "already exists")                                         \
  X(TOOBIG,   "too big")                                                \
  X(PROTO,    "protocol error")                                         \
  X(TIMEOUT,  "timed out")                                              \
  X(CLOSED,   "closed")                                                 \
  X(BUSY,     "resource busy")                                          \
  X(UNAVAIL,  "service unavailable")                                    \
  X(STORE,    "database error")                                         \
  X(CONFIG,   "bad configuration")                                      \
  X(PERM,     "permission denied")                                      \
  X(RANGE,    "out of range")                                          \
  X(NOSPC,    "no space left on device")                                \
  X(QUOTA,    "quota exceeded")

enum grove_err {
  GROVE_OK = 0,
#define X(name, msg) GROVE_E##name,
  GROVE_ERR_FIRST_ = -1000,
  GROVE_ERRNO_MAP(X)
#undef X
  GROVE_ERR_END_
};

/* The message of a GROVE_E* code, a static string ("unknown error" for
 * codes not in the table). */
const char *grove_strerror(int err);
/* The name of a code without its prefix, e.g. "NOMEM". */
const char *grove_errname(int err);

#endif
