/* roles.c — parsing and checking --role. */
#include "app/roles.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

static const char *const names[ROLE_COUNT] = {"api", "worker", "stream"};

const char *role_name(unsigned i) { return i < ROLE_COUNT ? names[i] : "?"; }

int role_parse(const char *s, unsigned *out, char *err, size_t errlen) {
  unsigned roles = 0;
  const char *p = s ? s : "";
  for (;;) {
    while (*p == ' ')
      p++;
    size_t n = strcspn(p, ",");
    size_t len = n;
    while (len && p[len - 1] == ' ')
      len--;
    unsigned bit = 0;
    if (len == 3 && strncmp(p, "all", 3) == 0)
      bit = ROLE_ALL;
    for (unsigned i = 0; i < ROLE_COUNT && !bit; i++)
      if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0)
        bit = 1u << i;
    if (!bit) {
      snprintf(err, errlen, "unknown role '%.*s' in --role '%s': use all, api, worker, stream "
               "or a comma list", (int)(len > 40 ? 40 : len), p, s ? s : "");
      return GROVE_EINVAL;
    }
    roles |= bit;
    if (!p[n])
      break;
    p += n + 1;
  }
  *out = roles;
  return 0;
}

void role_format(unsigned roles, char *out, size_t n) {
  if (roles == ROLE_ALL) {
    snprintf(out, n, "all");
    return;
  }
  size_t at = 0;
  out[0] = '\0';
  for (unsigned i = 0; i < ROLE_COUNT; i++)
    if (roles & (1u << i)) {
      int w = snprintf(out + at, n > at ? n - at : 0, "%s%s", at ? "," : "", names[i]);
      if (w > 0)
        at += (size_t)w;
    }
}

int role_check(unsigned roles, bool postgres, bool broker, char *err, size_t errlen) {
  char set[32];
  role_format(roles, set, sizeof set);
  if ((roles & ROLE_STREAM) && !(roles & ROLE_API)) {
    snprintf(err, errlen, "--role '%s' runs stream without api: flow's windows are fed by the "
             "writes this process takes; run stream beside api (--role api,stream)", set);
    return GROVE_ECONFIG;
  }
  if (!postgres && (roles & (ROLE_API | ROLE_WORKER)) != (ROLE_API | ROLE_WORKER)) {
    snprintf(err, errlen, "--role '%s' on the embedded store: the SQLite database and the series "
             "directory belong to one process, which runs api and worker together; split roles "
             "over processes with --store postgres://… and --broker redis://…", set);
    return GROVE_ECONFIG;
  }
  if (roles != ROLE_ALL && postgres && !broker) {
    snprintf(err, errlen, "--role '%s' without --broker: instances that split the roles share live "
             "topics, cache invalidations and rate limits through Redis (--broker redis://…)",
             set);
    return GROVE_ECONFIG;
  }
  return 0;
}
