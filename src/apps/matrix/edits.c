/* edits.c — admins' changes over the shipped catalogues (edits.h). */
#include "apps/matrix/edits.h"

#include "apps/matrix/tsv.h"
#include "core/array.h"
#include "core/error.h"
#include "core/real.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLS_MAX 32

static const char *const key_cols[MX_T_N][3] = {
  {"name"}, {"name"}, {"provider", "region", "instance"}, {"provider", "region"},
};

int mx_edits_key_parts(enum mx_table t) {
  return t == MX_T_INSTANCES ? 3 : t == MX_T_REGIONS ? 2 : 1;
}

int mx_edits_key(enum mx_table t, const char *const *parts, char key[MX_KEY_MAX]) {
  size_t n = 0;
  for (int p = 0; p < mx_edits_key_parts(t); p++) {
    size_t start = n;
    if (p) {
      if (n + 1 >= MX_KEY_MAX) return GROVE_EINVAL;
      key[n++] = '/';
      start = n;
    }
    for (const char *s = parts[p] ? parts[p] : ""; *s; s++) {
      unsigned char ch = (unsigned char)*s;
      if (!isalnum(ch) && ch != '.') continue;
      if (n + 1 >= MX_KEY_MAX) return GROVE_EINVAL;
      key[n++] = (char)tolower(ch);
    }
    if (n == start) return GROVE_EINVAL;
  }
  key[n] = 0;
  return 0;
}

/* Splits a copy of text's first line (the header) at tabs. Returns the
 * column count (cols point into *copy, which the caller frees), or −1. */
static int header(const char *text, char **copy, char **cols) {
  size_t len = strcspn(text, "\r\n");
  *copy = strndup(text, len);
  return *copy ? mx_tsv_split(*copy, cols, COLS_MAX) : -1;
}

/* The key of one data line (len bytes) of table t whose header is cols. */
static int line_key(enum mx_table t, char **cols, int nc, const char *line, size_t len,
                    char key[MX_KEY_MAX]) {
  char *copy = strndup(line, len), *cells[COLS_MAX];
  if (!copy) return GROVE_ENOMEM;
  int n = mx_tsv_split(copy, cells, COLS_MAX);
  const char *parts[3] = {NULL, NULL, NULL};
  for (int k = 0; k < mx_edits_key_parts(t); k++)
    for (int c = 0; c < nc && c < n; c++)
      if (!strcmp(cols[c], key_cols[t][k])) parts[k] = cells[c];
  int rc = mx_edits_key(t, parts, key);
  free(copy);
  return rc;
}

int mx_edits_init(struct mx_edits *e, const char *dir, char *err, size_t errlen) {
  memset(e, 0, sizeof(*e));
  return mx_catalog_read(e->shipped, dir, err, errlen);
}

void mx_edits_release(struct mx_edits *e) {
  for (int t = 0; t < MX_T_N; t++) free(e->shipped[t]);
  for (size_t i = 0; i < e->n; i++) free(e->e[i].line);
  free(e->e);
  memset(e, 0, sizeof(*e));
}

int mx_edits_line(const struct mx_edits *e, enum mx_table t, const char *const *parts,
                  const json_t *row, char **line, char *err, size_t errlen) {
  char *copy = NULL, *cols[COLS_MAX], *out = NULL;
  size_t outlen = 0;
  int rc = GROVE_ENOMEM;
  int nc = header(e->shipped[t], &copy, cols);
  if (nc < 0) goto done;
  const char *k;
  json_t *v;
  rc = GROVE_EINVAL;
  json_object_foreach((json_t *)row, k, v) {
    int known = 0;
    for (int c = 0; c < nc; c++) known |= !strcmp(cols[c], k);
    if (!known) {
      mx_seterr(err, errlen, "unknown column '%s' for %s", k, mx_table_file(t));
      goto done;
    }
  }
  FILE *f = open_memstream(&out, &outlen);
  if (!f) {
    rc = GROVE_ENOMEM;
    goto done;
  }
  for (int c = 0; c < nc; c++) {
    if (c) fputc('\t', f);
    const char *given = NULL;
    for (int p = 0; p < mx_edits_key_parts(t); p++)
      if (!strcmp(cols[c], key_cols[t][p])) given = parts[p];
    v = json_object_get(row, cols[c]);
    if (given) {
      if (strpbrk(given, "\t\r\n") || strlen(given) > MX_CELL_MAX) {
        mx_seterr(err, errlen, "bad key '%s'", given);
        fclose(f);
        goto done;
      }
      fputs(given, f);
    } else if (json_is_string(v)) {
      const char *s = json_string_value(v);
      if (strpbrk(s, "\t\r\n") || json_string_length(v) > MX_CELL_MAX) {
        mx_seterr(err, errlen, "column '%s' holds a tab or newline, or more than %d bytes",
                  cols[c], MX_CELL_MAX);
        fclose(f);
        goto done;
      }
      fputs(s, f);
    } else if (json_is_integer(v)) {
      fprintf(f, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
      char num[REAL_SHORTEST_MAX];
      real_shortest(num, json_real_value(v));
      fputs(num, f);
    } else if (v && !json_is_null(v)) {
      mx_seterr(err, errlen, "column '%s' must be a string, a number or null", cols[c]);
      fclose(f);
      goto done;
    }
  }
  if (fclose(f)) {
    rc = GROVE_ENOMEM;
    goto done;
  }
  *line = out;
  out = NULL;
  rc = 0;
done:
  free(out);
  free(copy);
  return rc;
}

static struct mx_edit *find(const struct mx_edits *e, enum mx_table t, const char *key) {
  for (size_t i = 0; i < e->n; i++)
    if (e->e[i].table == t && !strcmp(e->e[i].key, key)) return &e->e[i];
  return NULL;
}

int mx_edits_set(struct mx_edits *e, enum mx_table t, const char *key, const char *line,
                 char **old, int *had) {
  char *dup = NULL;
  if (line && !(dup = strdup(line))) return GROVE_ENOMEM;
  if (strlen(key) >= MX_KEY_MAX) {
    free(dup);
    return GROVE_EINVAL;
  }
  struct mx_edit *x = find(e, t, key);
  if (had) *had = x != NULL;
  if (x) {
    if (old) *old = x->line;
    else free(x->line);
    x->line = dup;
    return 0;
  }
  if (old) *old = NULL;
  if (ARRAY_GROW(e->e, e->cap, e->n + 1, 8, ARRAY_NOMAX)) {
    free(dup);
    return GROVE_ENOMEM;
  }
  x = &e->e[e->n++];
  x->table = t;
  strcpy(x->key, key);
  x->line = dup;
  return 0;
}

void mx_edits_undo(struct mx_edits *e, enum mx_table t, const char *key, char *old, int had) {
  struct mx_edit *x = find(e, t, key);
  if (!x) {
    free(old);
    return;
  }
  free(x->line);
  if (had) {
    x->line = old;
    return;
  }
  free(old);
  *x = e->e[--e->n];
}

/* Calls fn for each data line of the shipped text of t whose key no edit
 * names; stops at fn's first non-zero answer and returns it. */
static int shipped_lines(const struct mx_edits *e, enum mx_table t,
                         int (*fn)(const char *line, size_t len, const char *key, void *arg),
                         void *arg) {
  char *copy, *cols[COLS_MAX];
  int nc = header(e->shipped[t], &copy, cols);
  if (nc < 0) {
    free(copy);
    return GROVE_ENOMEM;
  }
  int rc = 0;
  const char *p = e->shipped[t] + strcspn(e->shipped[t], "\n");
  while (*p && !rc) {
    p++;
    size_t len = strcspn(p, "\n");
    size_t l2 = len && p[len - 1] == '\r' ? len - 1 : len;
    char key[MX_KEY_MAX];
    if (l2 && !line_key(t, cols, nc, p, l2, key) && !find(e, t, key))
      rc = fn(p, l2, key, arg);
    p += len;
  }
  free(copy);
  return rc;
}

struct has_arg {
  const char *key;
};

static int has_fn(const char *line, size_t len, const char *key, void *arg) {
  (void)line;
  (void)len;
  return !strcmp(key, ((struct has_arg *)arg)->key);
}

int mx_edits_has(const struct mx_edits *e, enum mx_table t, const char *key) {
  const struct mx_edit *x = find(e, t, key);
  if (x) return x->line != NULL;
  struct has_arg a = {key};
  return shipped_lines(e, t, has_fn, &a) == 1;
}

static int write_fn(const char *line, size_t len, const char *key, void *arg) {
  (void)key;
  fwrite(line, 1, len, (FILE *)arg);
  fputc('\n', (FILE *)arg);
  return 0;
}

int mx_edits_build(const struct mx_edits *e, struct mx_catalog **out, char *err, size_t errlen) {
  char *texts[MX_T_N] = {0};
  int rc = 0;
  for (int t = 0; t < MX_T_N && !rc; t++) {
    size_t len;
    FILE *f = open_memstream(&texts[t], &len);
    if (!f) {
      rc = GROVE_ENOMEM;
      break;
    }
    const char *s = e->shipped[t];
    fwrite(s, 1, strcspn(s, "\n"), f);
    fputc('\n', f);
    rc = shipped_lines(e, (enum mx_table)t, write_fn, f);
    for (size_t i = 0; i < e->n; i++)
      if (e->e[i].table == (enum mx_table)t && e->e[i].line) {
        fputs(e->e[i].line, f);
        fputc('\n', f);
      }
    if (fclose(f) && !rc) rc = GROVE_ENOMEM;
  }
  if (!rc) rc = mx_catalog_parse(out, (const char *const *)texts, err, errlen);
  for (int t = 0; t < MX_T_N; t++) free(texts[t]);
  return rc;
}
