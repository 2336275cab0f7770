/* text.h — user-supplied text made safe to show a person.
 *
 * Text that came from a user (names, emails, key and device names, audit
 * targets, request paths in logs) may hold characters that change what a
 * terminal or a log viewer shows: a TAB or LF forges a table row or a log
 * line, ESC starts a terminal control sequence, and the bidirectional
 * controls (U+202E RIGHT-TO-LEFT OVERRIDE and its kin) reorder what is
 * displayed, so "moc.elpmaxe@nimda" reads as "admin@example.com".
 *
 * text_escape writes such text with every one of those characters spelled
 * out, so that one printed value is always one visible run on one line:
 *   - C0 controls and DEL: \t \n \r by name, the rest as \xHH (ESC: \x1b);
 *   - C1 controls U+0080..U+009F, the line and paragraph separators
 *     U+2028/U+2029, bidi controls (U+061C, U+200E, U+200F, U+202A..U+202E,
 *     U+2066..U+2069) and invisible format characters (U+00AD, U+180E,
 *     U+200B..U+200D, U+2060..U+2064, U+206A..U+206F, U+FEFF): \uHHHH;
 *   - bytes that are not valid UTF-8 (RFC 3629 §4: overlongs, surrogates
 *     and values past U+10FFFF included): \xHH, one byte at a time;
 *   - the backslash itself: \\ (so an escaped value reads back one way).
 * Everything else (printable ASCII, valid non-ASCII letters) is copied.
 * The bidi list is Unicode's Bidi_Control property (UAX #9 §2); the format
 * characters are Default_Ignorable_Code_Point ones that render as nothing.
 *
 * Machine formats (JSON answers, JSON log lines) must NOT use this: they
 * carry the exact text. Pure functions; thread-safe. */
#ifndef GROVE_TEXT_H
#define GROVE_TEXT_H

#include <stdio.h>
#include <stddef.h>

#include "core/buf.h"

/* Appends the escaped form of s[0..n) to b. Returns 0, or GROVE_ETOOBIG
 * / GROVE_ENOMEM from the buffer (then b holds a prefix of the output). */
int text_escape(struct buf *b, const char *s, size_t n);
/* The escaped form of a NUL-terminated string in out (always terminated,
 * cut at a character boundary when out is too small). Returns out. */
const char *text_escape_to(char *out, size_t outlen, const char *s);
/* Writes the escaped form of s (NULL: nothing) to f. */
void text_fputs(const char *s, FILE *f);

#endif
