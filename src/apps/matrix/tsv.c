/* tsv.c — the matrix app's reader of tab-separated data files (tsv.h). */
#include "apps/matrix/tsv.h"

#include "core/array.h"
#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MX_FILE_MAX (4u << 20)
#define MX_COLS_MAX 32

void mx_seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- one file ------------------------------------------------------------- */

static int read_file(const char *path, char **out, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    mx_seterr(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    return GROVE_EIO;
  }
  char *buf = malloc(MX_FILE_MAX + 1);
  if (!buf) {
    fclose(f);
    return GROVE_ENOMEM;
  }
  size_t n = fread(buf, 1, MX_FILE_MAX + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    mx_seterr(err, errlen, "cannot read '%s'", path);
    return GROVE_EIO;
  }
  if (n > MX_FILE_MAX) {
    free(buf);
    mx_seterr(err, errlen, "data file '%s' is larger than %u bytes", path, MX_FILE_MAX);
    return GROVE_EINVAL;
  }
  buf[n] = 0;
  *out = buf;
  return 0;
}

int mx_tsv_split(char *line, char **cells, int max) {
  int n = 0;
  for (char *p = line;;) {
    if (n == max) return -1;
    cells[n++] = p;
    char *t = strchr(p, '\t');
    if (!t) break;
    *t = 0;
    p = t + 1;
  }
  return n;
}

void mx_tsv_free_row(void *row, const struct mx_col *cols, size_t ncols) {
  for (size_t i = 0; i < ncols; i++)
    if (cols[i].type == C_DUP) free(*(char **)((char *)row + cols[i].off));
}

static int parse_cell(void *row, const struct mx_col *c, const char *cell, char *err, size_t errlen,
                      const char *file, int line) {
  char *dst = (char *)row + c->off;
  if (!*cell && c->required) {
    mx_seterr(err, errlen, "empty required cell in '%s': line=%d column='%s'", file, line, c->name);
    return GROVE_EINVAL;
  }
  switch (c->type) {
  case C_STR:
    if (strlen(cell) >= c->size) {
      mx_seterr(err, errlen, "cell too long in '%s': line=%d column='%s'", file, line, c->name);
      return GROVE_EINVAL;
    }
    strcpy(dst, cell);
    return 0;
  case C_DUP: {
    char *s = strdup(cell);
    if (!s) return GROVE_ENOMEM;
    *(char **)dst = s;
    return 0;
  }
  case C_NUM: {
    double v = NAN;
    if (*cell) {
      char *end;
      errno = 0;
      /* plain decimal only: strtod would also take " 80", "0x50" and "inf" */
      bool plain = (*cell >= '0' && *cell <= '9') || *cell == '.';
      for (const char *q = cell; plain && *q; q++)
        plain = (*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' ||
                *q == '-';
      v = plain ? strtod(cell, &end) : NAN;
      if (!plain || errno || *end || !isfinite(v) || v < 0 || v > MX_TSV_MAX) {
        mx_seterr(err, errlen, "bad number '%s' in '%s': line=%d column='%s'", cell, file, line,
               c->name);
        return GROVE_EINVAL;
      }
    }
    *(double *)dst = v;
    return 0;
  }
  case C_INT: {
    long v = 0;
    if (*cell) {
      char *end;
      errno = 0;
      v = strtol(cell, &end, 10);
      if (errno || *end || *cell < '0' || *cell > '9' || v < 0 || v > MX_TSV_MAX) {
        mx_seterr(err, errlen, "bad integer '%s' in '%s': line=%d column='%s'", cell, file, line,
               c->name);
        return GROVE_EINVAL;
      }
    }
    *(int *)dst = (int)v;
    return 0;
  }
  }
  return GROVE_EINVAL;
}

int mx_tsv_read(const char *dir, const char *file, char **text, char *err, size_t errlen) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof(path), "%s%s%s", dir ? dir : "", dir ? "/" : "", file) >=
      sizeof(path)) {
    mx_seterr(err, errlen, "file name too long: '%s'", file);
    return GROVE_EINVAL;
  }
  return read_file(path, text, err, errlen);
}

int mx_tsv_load(const char *dir, const char *file, const struct mx_col *cols, size_t ncols,
                size_t rowsize, void **rows, size_t *nrows, char *err, size_t errlen) {
  char *text = NULL;
  int rc = mx_tsv_read(dir, file, &text, err, errlen);
  if (rc) return rc;
  rc = mx_tsv_parse(file, text, cols, ncols, rowsize, rows, nrows, err, errlen);
  free(text);
  return rc;
}

int mx_tsv_parse(const char *path, const char *orig, const struct mx_col *cols, size_t ncols,
                 size_t rowsize, void **rows, size_t *nrows, char *err, size_t errlen) {
  int rc = 0;
  char *text = strdup(orig);
  if (!text) return GROVE_ENOMEM;
  char *arr = NULL;
  size_t n = 0, cap = 0;
  int where[MX_COLS_MAX];
  char *cells[MX_COLS_MAX];
  int ncells_hdr = 0, lineno = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r') line[len - 1] = 0;
    if (!*line) continue;
    int nc = mx_tsv_split(line, cells, MX_COLS_MAX);
    if (nc < 0) {
      mx_seterr(err, errlen, "too many columns in '%s': line=%d", path, lineno);
      rc = GROVE_EINVAL;
      goto out;
    }
    if (!ncells_hdr) { /* the header */
      ncells_hdr = nc;
      for (size_t i = 0; i < ncols; i++) {
        where[i] = -1;
        for (int k = 0; k < nc; k++)
          if (!strcmp(cells[k], cols[i].name)) where[i] = k;
        if (where[i] < 0 && cols[i].required) {
          mx_seterr(err, errlen, "missing column '%s' in '%s'", cols[i].name, path);
          rc = GROVE_EINVAL;
          goto out;
        }
      }
      continue;
    }
    /* a row short of the header's last cells reads them as empty: a line
     * an admin's edit kept from before columns were added still parses
     * (a required column left empty is refused below) */
    if (nc > ncells_hdr) {
      mx_seterr(err, errlen, "line has %d cells, header has %d, in '%s': line=%d", nc, ncells_hdr,
             path, lineno);
      rc = GROVE_EINVAL;
      goto out;
    }
    if ((rc = ARRAY_GROW_SIZED(arr, cap, n + 1, rowsize, 16, ARRAY_NOMAX)))
      goto out;
    void *row = arr + n * rowsize;
    memset(row, 0, rowsize);
    for (size_t i = 0; i < ncols; i++) {
      rc = parse_cell(row, &cols[i], where[i] >= 0 && where[i] < nc ? cells[where[i]] : "", err,
                      errlen, path,
                      lineno);
      if (rc) {
        mx_tsv_free_row(row, cols, ncols);
        goto out;
      }
    }
    n++;
  }
  if (!ncells_hdr) {
    mx_seterr(err, errlen, "data file '%s' has no header line", path);
    rc = GROVE_EINVAL;
  }
out:
  free(text);
  if (rc) {
    for (size_t i = 0; i < n; i++) mx_tsv_free_row(arr + i * rowsize, cols, ncols);
    free(arr);
    return rc;
  }
  *rows = arr;
  *nrows = n;
  return 0;
}

