/* lineproto.h — InfluxDB line protocol, parsed without I/O.
 *
 *   weather,station=s1,region=north pm25=12.5,ok=true,count=3i,note="a b" 1700000000000000000
 *
 * measurement[,tag=value…] field=value[,field=value…] [timestamp]
 *
 * The rules are InfluxDB's, as its parser applies them (models/points.go
 * of InfluxDB 1.x/2.x; docs: "Line protocol" reference), error messages
 * included:
 * - a byte is escaped when a backslash comes before it; in measurements
 *   `\,` `\ ` `\=` `\"` stand for the byte, in tag keys, tag values and
 *   field keys `\,` `\ ` `\=` do; any other backslash is kept as it is
 *   (`C:\` stays `C:\`, and `C:\,host=srv` is one tag value holding a
 *   comma and an unescaped '=': "invalid tag format");
 * - names and string values are valid UTF-8, or the line is refused;
 * - tag keys are unique ("duplicate tags"); `time` is not a tag or field
 *   key, `_measurement` and `_field` are not tag keys;
 * - field values: floats ([-]digits[.digits][e[+-]digits], no NaN or
 *   Inf), integers (3i, int64), unsigned integers (3u, uint64), booleans
 *   (t, T, true, True, TRUE, f, F, false, False, FALSE), strings in double
 *   quotes with `\"` and `\\` escaped (a string may span lines);
 * - spaces (and tabs) may repeat between sections; after the timestamp
 *   only spaces; a CR before the LF ends the line too (the one leniency:
 *   Windows writers).
 * A missing timestamp means "now"; timestamps are read in the request's
 * precision (ns, us, ms, s, m, h: InfluxDB v1's set) and kept in
 * nanoseconds; one that is, scaled, outside [TIME_MIN_NS, TIME_MAX_NS]
 * (core/util.h) is a bad line ("timestamp out of range at precision …",
 * InfluxDB's SafeCalcTime rule). Blank lines and
 * lines starting with '#' are skipped. A body is parsed line by line:
 * good lines are handed on, bad ones are reported with their number and
 * the reason, as InfluxDB does, so a collector's batch is never lost for
 * one bad line.
 *
 * Names and strings point into a scratch buffer owned by the parser and
 * are valid until the next line. */
#ifndef GROVE_LINEPROTO_H
#define GROVE_LINEPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LP_MAX_TAGS 64
#define LP_MAX_FIELDS 128
#define LP_MAX_LINE (64 * 1024)

enum lp_precision { LP_NS, LP_US, LP_MS, LP_S, LP_M, LP_H };
enum lp_type { LP_FLOAT, LP_INT, LP_UINT, LP_BOOL, LP_STRING };

struct lp_str {
  const char *p;
  size_t n;
};

struct lp_field {
  struct lp_str key;
  enum lp_type type;
  union {
    double f;
    int64_t i;
    uint64_t u;
    bool b;
    struct lp_str s;
  } v;
};

struct lp_point {
  struct lp_str measurement;
  struct lp_str tag_keys[LP_MAX_TAGS], tag_values[LP_MAX_TAGS];
  int ntags;
  struct lp_field fields[LP_MAX_FIELDS];
  int nfields;
  int64_t ts_ns;
  /* set by lp_parse for on_point: the line's number (1-based) and text */
  int line;
  const char *text;
  size_t text_len;
};

/* Parses "ns", "us", "ms", "s", "m", "h" (also "n", "u", "µs", and ""
 * for ns); returns 0 or -1. */
int lp_precision_parse(const char *s, enum lp_precision *out);

/* Parses one line (no newline). Returns 0 with *p filled, or -1 with a
 * reason in err ("invalid field format", …). `scratch` needs len bytes. */
int lp_parse_line(const char *line, size_t len, enum lp_precision prec, int64_t now_ns,
                  char *scratch, struct lp_point *p, char *err, size_t errlen);

/* Parses "measurement[,tag=value…] fieldkey" (a series named in line
 * protocol's escaping, as the series routes take it): the tags in
 * p->tag_*, the field key in p->fields[0].key. Errors as lp_parse_line. */
int lp_parse_key(const char *text, size_t len, char *scratch, struct lp_point *p, char *err,
                 size_t errlen);

/* Whether s[0..n) is valid UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
bool lp_utf8_valid(const char *s, size_t n);

/* Called for each good point; returns 0 to go on, nonzero to stop. */
typedef int (*lp_point_fn)(const struct lp_point *p, void *arg);
/* Called for each bad line: its number (1-based), its text and why. */
typedef void (*lp_error_fn)(int line, const char *text, size_t len, const char *why, void *arg);

struct lp_stats {
  int lines;   /* data lines seen (not blank or comments) */
  int points;  /* handed to on_point */
  int errors;
};

/* Parses a whole body. Returns 0, or the first nonzero on_point result. */
int lp_parse(const char *body, size_t len, enum lp_precision prec, int64_t now_ns,
             lp_point_fn on_point, lp_error_fn on_error, void *arg, struct lp_stats *stats);

#endif
