/* log.h — leveled logging, as text (default) or one JSON object a line.
 *
 * A line is a message and optional key=value context:
 *   log_info(rid, "request done", "method=%s status=%d", m, s);
 * Text:  2026-11-23T10:00:00.123Z info request done method=GET status=200 req=ab12
 * JSON:  {"ts":"…","level":"info","msg":"request done","method":"GET",
 *         "status":"200","req":"ab12"}
 * Values holding spaces are written as key="a b". The fields follow the
 * format: keys, the spaces between fields and the quotes around a value
 * are the format's own text, and what an argument prints stays inside its
 * key or value whatever it holds (key="%s" with `say "hi" x=1` is one
 * field). Text lines quote a value that holds a space or a quote, writing
 * a quote inside as \" (a backslash is \\); JSON carries the value
 * exactly. The conversions are printf's (%d, %zu, %lld, %.*s, %g, …;
 * not %n). `rid` (the request id) may be NULL. Text lines escape control,
 * bidi and invisible characters in the message, the values and the request
 * id (core/text.h), so user text cannot forge a line or hide what it says;
 * JSON lines carry the exact text, JSON escaped. Each line is written with one write(2), so lines from several
 * threads never interleave. Never logs secrets: callers pass none. */
#ifndef GROVE_LOG_H
#define GROVE_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

void log_setup(enum log_level min, bool json, int fd);
/* Parses "debug", "info", "warn", "error", "off". Returns -1 if unknown. */
int log_level_parse(const char *s);
bool log_enabled(enum log_level lvl);
void log_write(enum log_level lvl, const char *rid, const char *msg,
               const char *kvfmt, ...) __attribute__((format(printf, 4, 5)));

#define log_debug(rid, msg, ...) \
  do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, rid, msg, __VA_ARGS__); } while (0)
#define log_info(rid, msg, ...) log_write(LOG_INFO, rid, msg, __VA_ARGS__)
#define log_warn(rid, msg, ...) log_write(LOG_WARN, rid, msg, __VA_ARGS__)
#define log_error(rid, msg, ...) log_write(LOG_ERROR, rid, msg, __VA_ARGS__)

#endif
