/* fuzz_matrix_push.c — matrix's push-metrics payload parser (push.h): any
 * bytes give a batch or a refusal with a status, a code and a message,
 * never a read past the body, a leak or undefined behaviour (UBSan is
 * fatal in the fuzz build). A batch holds what the limits allow, every
 * sample has a host, and its series lines are well formed. The body is
 * JSON to it exactly when it is to jansson (duplicate keys refused): the
 * refusal is INVALID_JSON then and only then; but for a NUL byte, which
 * jansson skips after a number ({"a":1<NUL>}) and JSON never holds. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apps/matrix/push.h"
#include "core/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const struct mx_push_limits lim = {1795975200000000000LL, 300000000000LL, INT64_MIN,
                                     size & 1 ? "caller" : NULL};
  struct mx_batch b;
  struct mx_push_error e;
  int rc = mx_push_parse((const char *)data, size, &lim, &b, &e);
  json_error_t je;
  json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
  bool not_json = rc == GROVE_EINVAL && e.code && !strcmp(e.code, "INVALID_JSON");
  if (rc != GROVE_ENOMEM && !memchr(data, 0, size) && !doc != not_json) abort();
  json_decref(doc);
  if (rc) {
    if (rc != GROVE_EINVAL && rc != GROVE_ENOMEM) abort();
    if (!e.code || !e.message[0] || (e.status != 400 && e.status != 413 && e.status != 503))
      abort();
    if (b.n || b.s) abort();
    return 0;
  }
  if (b.n == 0 || b.n > MX_MAX_SAMPLES || b.processes > MX_MAX_PROCESSES) abort();
  struct mx_lines l = {0};
  for (size_t i = 0; i < b.n; i++) {
    const struct mx_sample *s = &b.s[i];
    if (!s->host || !s->host[0] || (s->vm && !s->vm_name) || s->ts_ns > lim.now_ns + lim.max_ahead_ns)
      abort();
    for (size_t k = 0; k < s->nprocs; k++)
      if (!s->procs[k].name || !s->procs[k].name[0]) abort();
    if (mx_lines_add(&l, s, NULL)) abort();
  }
  mx_lines_finish(&l);
  for (size_t i = 0; i < l.n; i++) {
    const struct telemetry_line *ln = &l.lines[i];
    if (ln->nfields < 1 || ln->ntags < 1) abort();
    for (int t = 0; t < ln->ntags; t++)
      if (!ln->tags[t].value.n || strlen(ln->tags[t].value.p) != ln->tags[t].value.n) abort();
  }
  mx_lines_release(&l);
  mx_batch_release(&b);
  return 0;
}
