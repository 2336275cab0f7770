/* rows.c — query results as text, shared by the drivers. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "store/driver.h"

struct store_rows *rows_new(int ncols) {
  struct store_rows *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->ncols = ncols;
  r->names = calloc((size_t)ncols + 1, sizeof *r->names);
  if (!r->names) {
    free(r);
    return NULL;
  }
  return r;
}

int rows_set_name(struct store_rows *r, int col, const char *name) {
  r->names[col] = strdup(name ? name : "");
  return r->names[col] ? 0 : GROVE_ENOMEM;
}

int rows_add(struct store_rows *r, const char *const *vals, const int *lens) {
  size_t at = (size_t)r->nrows * (size_t)r->ncols;
  /* the answer's size bounds it (one more: never an empty allocation) */
  if (ARRAY_GROW(r->values, r->cap, at + (size_t)r->ncols + 1, 64, ARRAY_NOMAX))
    return GROVE_ENOMEM;
  char **v = r->values;
  for (int i = 0; i < r->ncols; i++) {
    v[at + (size_t)i] = NULL;
    if (!vals[i])
      continue;
    size_t n = lens ? (size_t)lens[i] : strlen(vals[i]);
    char *s = malloc(n + 1);
    if (!s) {
      for (int k = 0; k < i; k++)
        free(v[at + (size_t)k]);
      return GROVE_ENOMEM;
    }
    memcpy(s, vals[i], n);
    s[n] = '\0';
    v[at + (size_t)i] = s;
  }
  r->nrows++;
  return 0;
}

void store_rows_free(struct store_rows *r) {
  if (!r)
    return;
  size_t n = (size_t)r->nrows * (size_t)r->ncols;
  for (size_t i = 0; i < n; i++)
    free(r->values[i]);
  for (int i = 0; i < r->ncols; i++)
    free(r->names[i]);
  free(r->values);
  free(r->names);
  free(r);
}

const char *store_rows_get(const struct store_rows *r, int row, const char *col) {
  if (!r || row < 0 || row >= r->nrows)
    return NULL;
  for (int i = 0; i < r->ncols; i++)
    if (strcmp(r->names[i], col) == 0)
      return r->values[(size_t)row * (size_t)r->ncols + (size_t)i];
  return NULL;
}
