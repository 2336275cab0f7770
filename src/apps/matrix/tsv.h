/* tsv.h — internal to the matrix app: reads a tab-separated file whose
 * header names its columns into an array of row structs, each column
 * described by where its value goes (catalog.c's files, calibrate.c's).
 * A row with fewer cells than the header reads the missing last ones as
 * empty (rows kept from before a column was added); more is an error.
 * Empty cells: "" for strings, NAN for numbers, 0 for integers; numbers
 * and integers are plain decimals (no sign, spaces, hex or "inf") in
 * 0..MX_TSV_MAX, so that nothing computed from a row overflows. Pure, any
 * thread. */
#ifndef GROVE_MATRIX_TSV_H
#define GROVE_MATRIX_TSV_H

#include <stddef.h>

#define MX_TSV_MAX 1e8 /* the largest number or integer a cell may hold */

enum mx_col_type { C_STR, C_DUP, C_NUM, C_INT };

struct mx_col {
  const char *name;
  enum mx_col_type type;
  size_t off, size;   /* size: the char array's size for C_STR; C_DUP: a malloc'ed char * */
  int required;       /* the column must exist and its cells must not be empty */
};

#define S(st, f, req) {#f, C_STR, offsetof(struct st, f), sizeof(((struct st *)0)->f), req}
#define D(st, f, req) {#f, C_DUP, offsetof(struct st, f), 0, req}
#define N(st, f, req) {#f, C_NUM, offsetof(struct st, f), 0, req}
#define I(st, f, req) {#f, C_INT, offsetof(struct st, f), 0, req}

/* Reads dir/file (dir NULL: file is the path) into a new array of rows of
 * rowsize bytes: *rows (malloc'ed, NULL when the file has only its header)
 * and *nrows. Returns 0, GROVE_ENOMEM, GROVE_EIO or GROVE_EINVAL with err
 * naming the file, line and column. Files over 4 MiB are refused. */
int mx_tsv_load(const char *dir, const char *file, const struct mx_col *cols, size_t ncols,
                size_t rowsize, void **rows, size_t *nrows, char *err, size_t errlen);
/* The two halves of mx_tsv_load: reading dir/file (at most 4 MiB) into a
 * new NUL-ended *text (free() it), and parsing such a text (not modified;
 * `name` names it in messages). */
int mx_tsv_read(const char *dir, const char *file, char **text, char *err, size_t errlen);
int mx_tsv_parse(const char *name, const char *text, const struct mx_col *cols, size_t ncols,
                 size_t rowsize, void **rows, size_t *nrows, char *err, size_t errlen);
/* Splits line (modified in place) at tabs into cells; returns the count,
 * or −1 when there are more than max. */
int mx_tsv_split(char *line, char **cells, int max);
/* Frees a row's C_DUP strings (not the row). */
void mx_tsv_free_row(void *row, const struct mx_col *cols, size_t ncols);
void mx_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
