/* app.c — checks an app's table against the contract before serve uses
 * it (app.h): what would otherwise go wrong quietly, or only on one
 * database, is refused at start with the app and the item named. */
#include "app/app.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"

/* Finds the next "CREATE TABLE [IF NOT EXISTS] name" in sql from *at: the
 * name (up to n bytes) in out; false when there is none. */
static bool next_table(const char **at, char *out, size_t n) {
  static const char create[] = "create table";
  for (const char *p = *at; *p; p++) {
    if (strncasecmp(p, create, sizeof create - 1) != 0 || (p > *at && isalnum((unsigned char)p[-1])))
      continue;
    p += sizeof create - 1;
    while (isspace((unsigned char)*p))
      p++;
    if (strncasecmp(p, "if not exists", 13) == 0)
      for (p += 13; isspace((unsigned char)*p); p++)
        ;
    size_t len = 0;
    while (p[len] && (isalnum((unsigned char)p[len]) || p[len] == '_') && len + 1 < n)
      len++;
    memcpy(out, p, len);
    out[len] = '\0';
    *at = p + len;
    return true;
  }
  return false;
}

int app_check(const struct grove_app *a, char *err, size_t errlen) {
  char none[1];
  if (!err || !errlen) {
    err = none;
    errlen = sizeof none;
  }
  size_t n = a->name ? strlen(a->name) : 0;
  if (!n || n > 32 || !a->start) {
    snprintf(err, errlen, "app '%s' has no name or no start", a->name ? a->name : "");
    return GROVE_EINVAL;
  }
  for (size_t i = 0; i < a->ntopics; i++) {
    const char *p = a->topics[i].prefix;
    if (!p || strncmp(p, a->name, n) != 0 || p[n] != '/') {
      snprintf(err, errlen, "topic prefix '%s' of app '%s' is outside its namespace '%s/'",
               p ? p : "", a->name, a->name);
      return GROVE_EINVAL;
    }
  }
  for (size_t i = 0; i < a->nmigrations; i++) {
    const char *sqls[] = {a->migrations[i].sql, a->migrations[i].pg};
    for (size_t k = 0; k < 2; k++) {
      char table[128];
      for (const char *at = sqls[k]; at && next_table(&at, table, sizeof table);)
        if (strncmp(table, a->name, n) != 0 || table[n] != '_') {
          snprintf(err, errlen, "table '%s' of app '%s' (migration %d) lacks its prefix '%s_'",
                   table, a->name, a->migrations[i].version, a->name);
          return GROVE_EINVAL;
        }
    }
  }
  return 0;
}
