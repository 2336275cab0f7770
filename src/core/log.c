/* log.c — leveled logging as text or JSON lines. */
#include "core/log.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/text.h"

static enum log_level min_level = LOG_INFO;
static bool as_json;
static int out_fd = 2;

void log_setup(enum log_level min, bool json, int fd) {
  min_level = min;
  as_json = json;
  out_fd = fd;
}

int log_level_parse(const char *s) {
  static const char *const names[] = {"debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 5; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return -1;
}

bool log_enabled(enum log_level lvl) { return lvl >= min_level && min_level != LOG_OFF; }

static void put_ts(struct buf *b) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char s[40];
  strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
  buf_printf(b, "%s.%03ldZ", s, ts.tv_nsec / 1000000);
}

/* ---- the context: fields split along the format ------------------------------- */

/* One argument of the context, printed as its conversion says. *fmt is on
 * the '%'; it is left past the conversion. The conversion is rewritten with
 * the widest length of its kind ("%5zu" prints as "%5llu" of the size_t
 * read), so one call per kind serves all. A conversion this does not know
 * (or %n) prints nothing and ends the context: no argument is read past it. */
static bool put_arg(struct buf *b, const char **fmt, va_list *ap) {
  const char *p = *fmt + 1;
  char f[40] = "%";
  size_t n = 1;
  int star[2], nstar = 0;
  for (; *p && strchr("-+ #0", *p) && n < 8; p++)
    f[n++] = *p;
  for (int part = 0; part < 2; part++) { /* width, then .precision */
    if (part == 1) {
      if (*p != '.')
        break;
      f[n++] = *p++;
    }
    if (*p == '*') {
      star[nstar++] = va_arg(*ap, int);
      f[n++] = *p++;
    }
    for (; *p >= '0' && *p <= '9' && n < 24; p++)
      f[n++] = *p;
  }
  enum { NONE, HH, H, L, LL, J, Z, T, LD } len = NONE;
  if (p[0] == 'h' && p[1] == 'h')
    len = HH, p += 2;
  else if (p[0] == 'l' && p[1] == 'l')
    len = LL, p += 2;
  else
    switch (*p) {
    case 'h': len = H, p++; break;
    case 'l': len = L, p++; break;
    case 'j': len = J, p++; break;
    case 'z': len = Z, p++; break;
    case 't': len = T, p++; break;
    case 'L': len = LD, p++; break;
    }
  char conv = *p;
  if (!conv || !strchr("diuoxXcspfFeEgGaA", conv))
    return false;
  *fmt = p + 1;
#define PUT(v)                                                                             \
  (nstar == 2 ? buf_printf(b, f, star[0], star[1], v)                                      \
              : nstar == 1 ? buf_printf(b, f, star[0], v) : buf_printf(b, f, v))
  if (strchr("di", conv)) {
    long long v = len == LL ? va_arg(*ap, long long)
                  : len == L ? va_arg(*ap, long)
                  : len == J ? (long long)va_arg(*ap, intmax_t)
                  : len == Z ? (long long)va_arg(*ap, ssize_t)
                  : len == T ? (long long)va_arg(*ap, ptrdiff_t)
                  : len == HH ? (signed char)va_arg(*ap, int)
                  : len == H ? (short)va_arg(*ap, int) : va_arg(*ap, int);
    memcpy(f + n, "ll", 2), f[n + 2] = conv, f[n + 3] = 0;
    PUT(v);
  } else if (strchr("uoxX", conv)) {
    unsigned long long v = len == LL ? va_arg(*ap, unsigned long long)
                           : len == L ? va_arg(*ap, unsigned long)
                           : len == J ? (unsigned long long)va_arg(*ap, uintmax_t)
                           : len == Z ? (unsigned long long)va_arg(*ap, size_t)
                           : len == T ? (unsigned long long)va_arg(*ap, ptrdiff_t)
                           : len == HH ? (unsigned char)va_arg(*ap, unsigned)
                           : len == H ? (unsigned short)va_arg(*ap, unsigned)
                                      : va_arg(*ap, unsigned);
    memcpy(f + n, "ll", 2), f[n + 2] = conv, f[n + 3] = 0;
    PUT(v);
  } else if (conv == 'c') {
    f[n] = 'c', f[n + 1] = 0;
    PUT(va_arg(*ap, int));
  } else if (conv == 's') {
    const char *v = va_arg(*ap, const char *);
    f[n] = 's', f[n + 1] = 0;
    PUT(v ? v : "(null)");
  } else if (conv == 'p') {
    f[n] = 'p', f[n + 1] = 0;
    PUT(va_arg(*ap, void *));
  } else if (len == LD) {
    f[n] = 'L', f[n + 1] = conv, f[n + 2] = 0;
    PUT(va_arg(*ap, long double));
  } else {
    f[n] = conv, f[n + 1] = 0;
    PUT(va_arg(*ap, double));
  }
#undef PUT
  return true;
}

struct field {
  struct buf key, value;
  bool quoted; /* the format wrote key="…" */
};

/* Text: key=value, quoted (key="…") where the format quoted it or the
 * value holds a space or a quote, a quote inside written \" (text_escape
 * writes a backslash \\, so \" is always a quote). JSON: "key":"value". */
static void field_put(struct buf *line, const struct field *f, bool json, bool first) {
  const char *v = f->value.len ? f->value.data : "";
  if (json) {
    buf_puts(line, ",\"");
    buf_json_escape(line, f->key.data ? f->key.data : "", f->key.len);
    buf_puts(line, "\":\"");
    buf_json_escape(line, v, f->value.len);
    buf_putc(line, '"');
    return;
  }
  if (!first)
    buf_putc(line, ' ');
  text_escape(line, f->key.data ? f->key.data : "", f->key.len);
  buf_putc(line, '=');
  bool quote = f->quoted || memchr(v, ' ', f->value.len) || memchr(v, '"', f->value.len);
  if (!quote) {
    text_escape(line, v, f->value.len);
    return;
  }
  struct buf e;
  buf_init(&e, 0);
  text_escape(&e, v, f->value.len);
  buf_putc(line, '"');
  for (size_t i = 0; i < e.len; i++) {
    if (e.data[i] == '"')
      buf_putc(line, '\\');
    buf_putc(line, e.data[i]);
  }
  buf_putc(line, '"');
  buf_release(&e);
}

/* Writes the context "a=%d b=\"%s\" c=z" as fields. Keys, the spaces
 * between fields and the quotes around a value come from the format (the
 * caller's literal) only; what an argument prints is always inside one key
 * or value, whatever it holds (quotes, spaces, "x=y"), so a value cannot
 * end early or forge another field. */
static void put_fields(struct buf *line, bool json, const char *fmt, va_list *ap) {
  enum { SEP, KEY, VALUE, QUOTED } st = SEP;
  struct field f = {0};
  bool value_start = false, first = true;
  buf_init(&f.key, 4096);
  buf_init(&f.value, 16384);
  for (const char *p = fmt; *p;) {
    if (*p == '%' && p[1] != '%') {
      if (st == SEP)
        st = KEY;
      if (!put_arg(st == KEY ? &f.key : &f.value, &p, ap))
        break;
      value_start = false;
      continue;
    }
    char c = *p;
    p += c == '%' ? 2 : 1;
    if (st == SEP && c == ' ')
      continue;
    if (st == SEP)
      st = KEY;
    if (st == KEY && c == '=') {
      st = VALUE;
      value_start = true;
      continue;
    }
    if (st == VALUE && value_start && c == '"') {
      st = QUOTED;
      f.quoted = true;
      continue;
    }
    if ((st != QUOTED && c == ' ') || (st == QUOTED && c == '"')) {
      field_put(line, &f, json, first);
      first = false;
      buf_reset(&f.key);
      buf_reset(&f.value);
      f.quoted = false;
      st = SEP;
      continue;
    }
    buf_putc(st == KEY ? &f.key : &f.value, c);
    value_start = false;
  }
  if (st != SEP)
    field_put(line, &f, json, first);
  buf_release(&f.key);
  buf_release(&f.value);
}

void log_write(enum log_level lvl, const char *rid, const char *msg,
               const char *kvfmt, ...) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (!log_enabled(lvl))
    return;
  struct buf line;
  buf_init(&line, 32768);
  va_list ap;
  va_start(ap, kvfmt);
  if (as_json) {
    buf_puts(&line, "{\"ts\":\"");
    put_ts(&line);
    buf_printf(&line, "\",\"level\":\"%s\",\"msg\":\"", names[lvl]);
    buf_json_escape(&line, msg, strlen(msg));
    buf_putc(&line, '"');
    if (kvfmt)
      put_fields(&line, true, kvfmt, &ap);
    if (rid) {
      buf_puts(&line, ",\"req\":\"");
      buf_json_escape(&line, rid, strlen(rid));
      buf_putc(&line, '"');
    }
    buf_puts(&line, "}\n");
  } else {
    /* values may hold user text: one entry stays one visible line */
    put_ts(&line);
    buf_printf(&line, " %s ", names[lvl]);
    text_escape(&line, msg, strlen(msg));
    if (kvfmt && *kvfmt) {
      buf_putc(&line, ' ');
      put_fields(&line, false, kvfmt, &ap);
    }
    if (rid) {
      buf_puts(&line, " req=");
      text_escape(&line, rid, strlen(rid));
    }
    buf_putc(&line, '\n');
  }
  va_end(ap);
  if (line.len) {
    ssize_t w = write(out_fd, line.data, line.len);
    (void)w;
  }
  buf_release(&line);
}
