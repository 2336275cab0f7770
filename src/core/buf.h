/* buf.h — growable byte buffer with a maximum.
 *
 * Every buffer that grows from outside input carries its own limit
 * (`max`): an append that would pass it fails with GROVE_ETOOBIG and leaves
 * the buffer as it was. The contents are always NUL-terminated when len > 0
 * so they can be used as a C string.
 *
 * Lifetime: buf_init (no allocation), buf_release (frees the contents),
 * buf_clear (keeps the allocation, empties), buf_detach (hands the memory
 * to the caller). */
#ifndef GROVE_BUF_H
#define GROVE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
  char *data;
  size_t len;
  size_t cap;
  size_t max; /* 0: no limit */
};

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);             /* len = 0, keeps memory */
/* Makes room for `extra` more bytes. On error the buffer is unaltered. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Hands the memory to the caller (who frees it) and re-inits the buffer.
 * OUT: *len the length. Never returns NULL: an empty buffer yields "". */
char *buf_detach(struct buf *b, size_t *len);
/* Appends s with JSON string escaping (no surrounding quotes). Bytes that
 * are not valid UTF-8 are written as U+FFFD, so the JSON is always valid
 * (RFC 8259 §8.1). */
int buf_json_escape(struct buf *b, const char *s, size_t n);
/* The length of the valid UTF-8 sequence s starts with (1 to 4; RFC 3629:
 * no overlong forms, surrogates or code points past U+10FFFF), or 0 when
 * s[0..n) does not start with one (n == 0 included). */
size_t utf8_seq_len(const char *s, size_t n);

#endif
