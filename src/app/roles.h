/* roles.h — which parts of Grove a `grove serve` process runs.
 *
 * One binary, split as the seeds draw their services (like Loki's and
 * Mimir's -target): `--role all|api|worker|stream`, or a comma list.
 *   api     the HTTP side: every app's routes, the gate's, the live hub's
 *           (the ops routes, /health /ready /metrics, run in every role);
 *   worker  background work that is not on the write path nor stream
 *           processing: today the series store's retention (and, on the
 *           embedded store, its flushes and rollups) and the job
 *           workers (jobs/jobs.h);
 *   stream  stream processing: flow's windows, AQI, alerts and live
 *           updates.
 * Each app reads ctx->roles (app.h) at start and runs its part.
 *
 * Supported sets (role_check says why others are refused):
 *   - embedded store (SQLite): api and worker together (all, or
 *     api,worker[,stream]): the database and the series directory belong
 *     to one process, which must flush what it writes;
 *   - PostgreSQL: any set in which stream comes with api (flow's windows
 *     are fed by the writes the same process takes); a set other than all
 *     also needs --broker redis://… (split instances share live topics,
 *     cache invalidations and rate limits through it).
 * Pure functions: any thread. */
#ifndef GROVE_ROLES_H
#define GROVE_ROLES_H

#include <stdbool.h>
#include <stddef.h>

enum {
  ROLE_API = 1u << 0,
  ROLE_WORKER = 1u << 1,
  ROLE_STREAM = 1u << 2,
  ROLE_ALL = ROLE_API | ROLE_WORKER | ROLE_STREAM,
};
#define ROLE_COUNT 3

/* "api", "worker", "stream" for bit i (0..ROLE_COUNT-1). */
const char *role_name(unsigned i);
/* "all" or a comma list of role names (spaces around commas allowed; a
 * name twice is once). Returns 0 and *out, or GROVE_EINVAL with err
 * saying what is wrong. */
int role_parse(const char *s, unsigned *out, char *err, size_t errlen);
/* Whether `roles` can run on this store and broker: 0, or GROVE_ECONFIG
 * with err naming the combination and what to do. */
int role_check(unsigned roles, bool postgres, bool broker, char *err, size_t errlen);
/* "api,worker" (or "all") into out. */
void role_format(unsigned roles, char *out, size_t n);

#endif
