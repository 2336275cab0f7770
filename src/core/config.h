/* config.h — options from defaults, a file, GROVE_* variables and flags.
 *
 * Each module describes its options in one table of struct cfg_opt that
 * points into the module's own config struct. An option named "max-body"
 * is set by the flag --max-body, the variable GROVE_MAX_BODY and the file
 * line "max-body = 1m". Later sources win: default < file < environment <
 * flag. The file is the one named by --config or GROVE_CONFIG.
 *
 * Values: CFG_STR (strings owned by the config; cfg_release frees them),
 * CFG_INT, CFG_BOOL (true/false/1/0/yes/no/on/off), CFG_SIZE (bytes with an
 * optional k, m or g suffix), CFG_MS (milliseconds; accepts ms, s, m, h, d;
 * at most 9223372036853 ms, about 292 years, so that the duration in
 * nanoseconds fits an int64). */
#ifndef GROVE_CONFIG_H
#define GROVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type { CFG_STR, CFG_INT, CFG_BOOL, CFG_SIZE, CFG_MS };

struct cfg_opt {
  const char *name;
  enum cfg_type type;
  size_t offset; /* offsetof the field in the section's struct */
  const char *def;
  const char *help;
};

/* One row of a module's option table: CFG_OPT(struct flow_cfg, "flow-window",
 * CFG_MS, window_ms, "10m", "help…") sets field window_ms of struct
 * flow_cfg. */
#define CFG_OPT(type, name, kind, field, def, help)                                  \
  { (name), (kind), offsetof(type, field), (def), (help) }

struct cfg_section {
  const char *module;          /* heading in --help and docs */
  const struct cfg_opt *opts;
  size_t n;
  void *base;                  /* the module's config struct */
};

/* Refuses a table that would silently shadow one option with another:
 * the same name in two places (one section or two). Returns 0, or
 * GROVE_EEXIST with err (may be NULL) naming the option and both
 * sections. cfg_load runs it first. */
int cfg_check(const struct cfg_section *secs, size_t nsec, char *err, size_t errlen);
/* Appends s to secs (*nsec of them, room for max): GROVE_ETOOBIG, with
 * err naming s and the last one that fits, when there is no room (a
 * section is never dropped). */
int cfg_section_add(struct cfg_section *secs, size_t *nsec, size_t max, struct cfg_section s,
                    char *err, size_t errlen);
/* Fills every section from the sources above (after cfg_check). Flags not known to any
 * section are an error unless `rest` is given: then the remaining
 * arguments (those not starting with "--") are stored there, in order.
 * OUT: err (may be NULL) a message for the user, e.g.
 * "unknown option '--foo'" or "bad value 'x' for '--threads'".
 * Returns 0 or GROVE_ECONFIG. */
int cfg_load(struct cfg_section *secs, size_t nsec, int argc, char **argv,
             char *err, size_t errlen);
/* Sets one option by name from text (used by cfg_load and tests). */
int cfg_set(struct cfg_section *secs, size_t nsec, const char *name,
            const char *value, char *err, size_t errlen);
void cfg_release(struct cfg_section *secs, size_t nsec);
/* Prints a table of every option: flag, variable, default, help. */
void cfg_print_help(FILE *f, const struct cfg_section *secs, size_t nsec);

/* Parsers shared with other modules. Each returns 0 or GROVE_EINVAL. */
int cfg_parse_size(const char *s, uint64_t *out);
int cfg_parse_ms(const char *s, uint64_t *out);
int cfg_parse_bool(const char *s, bool *out);

#endif
