/* edits.h — admins' changes to matrix's shipped catalogues (catalog.h).
 *
 * An edit names a table, a row's key and the row's new line in the
 * table's TSV form, or no line: the row is deleted. A catalogue is built
 * from the shipped files' texts with every edit applied (a shipped row
 * whose key an edit names is replaced or dropped, new rows are appended)
 * and checked as the shipped files are, so an edit that would make the
 * catalogue inconsistent is refused whole.
 *
 * Keys: hardware and models by name; instances by provider/region/instance;
 * regions by provider/region; each part in the catalogue's matching form
 * (letters lowered, digits and '.', nothing else), joined by '/'.
 *
 * Not thread-safe: the caller serialises edits and builds. */
#ifndef GROVE_MATRIX_EDITS_H
#define GROVE_MATRIX_EDITS_H

#include <jansson.h>
#include <stddef.h>

#include "apps/matrix/catalog.h"

#define MX_KEY_MAX 200
/* Longest cell an edit may set. */
#define MX_CELL_MAX 2000

struct mx_edit {
  enum mx_table table;
  char key[MX_KEY_MAX];
  char *line;          /* NULL: deleted */
};

struct mx_edits {
  char *shipped[MX_T_N];
  struct mx_edit *e;
  size_t n, cap;
};

/* Reads the shipped files from dir. Returns 0 or mx_catalog_read's error. */
int mx_edits_init(struct mx_edits *e, const char *dir, char *err, size_t errlen);
void mx_edits_release(struct mx_edits *e);

/* The key of a row from its key parts (parts: 1 for hardware and models,
 * 3 for instances, 2 for regions, in that order). Returns 0, or
 * GROVE_EINVAL when a part is empty or the key too long. */
int mx_edits_key(enum mx_table t, const char *const *parts, char key[MX_KEY_MAX]);
/* How many key parts table t has. */
int mx_edits_key_parts(enum mx_table t);

/* The TSV line of a row given as a JSON object whose members are the
 * table's columns (strings, numbers, or null/absent for empty); the key
 * columns come from parts, whatever the object says. Returns 0 with *line
 * (free() it), or GROVE_EINVAL with err naming the column (unknown
 * column, wrong type, tab or newline in a string, cell too long). */
int mx_edits_line(const struct mx_edits *e, enum mx_table t, const char *const *parts,
                  const json_t *row, char **line, char *err, size_t errlen);

/* Sets the edit for (t, key): line copied, NULL deletes. Returns 0 or
 * GROVE_ENOMEM. *old (may be NULL) receives the previous edit's line
 * (owned by the caller, NULL when none or deleted) and *had whether an
 * edit existed, so the caller can undo with mx_edits_undo. */
int mx_edits_set(struct mx_edits *e, enum mx_table t, const char *key, const char *line,
                 char **old, int *had);
/* Restores the edit state for (t, key) before mx_edits_set; takes old. */
void mx_edits_undo(struct mx_edits *e, enum mx_table t, const char *key, char *old, int had);

/* Does table t have a row with this key once the edits are applied? */
int mx_edits_has(const struct mx_edits *e, enum mx_table t, const char *key);

/* Builds the catalogue (mx_catalog_parse's errors). */
int mx_edits_build(const struct mx_edits *e, struct mx_catalog **out, char *err, size_t errlen);

#endif
