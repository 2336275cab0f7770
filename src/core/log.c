/* log.c — leveled logging as text or JSON lines. */
#include "core/log.h"

#include <stdarg.h>
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

/* Turns "a=1 b=\"x y\" c=z" into ,"a":"1","b":"x y","c":"z". */
static void kv_to_json(struct buf *b, const char *kv) {
  const char *p = kv;
  while (*p) {
    while (*p == ' ')
      p++;
    const char *eq = strchr(p, '=');
    if (!*p || !eq)
      break;
    buf_puts(b, ",\"");
    buf_json_escape(b, p, (size_t)(eq - p));
    buf_puts(b, "\":\"");
    p = eq + 1;
    if (*p == '"') {
      const char *q = ++p;
      while (*q && *q != '"')
        q++;
      buf_json_escape(b, p, (size_t)(q - p));
      p = *q ? q + 1 : q;
    } else {
      const char *q = p;
      while (*q && *q != ' ')
        q++;
      buf_json_escape(b, p, (size_t)(q - p));
      p = q;
    }
    buf_putc(b, '"');
  }
}

void log_write(enum log_level lvl, const char *rid, const char *msg,
               const char *kvfmt, ...) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (!log_enabled(lvl))
    return;
  struct buf kv, line;
  buf_init(&kv, 16384);
  buf_init(&line, 32768);
  if (kvfmt && *kvfmt) {
    va_list ap;
    va_start(ap, kvfmt);
    buf_vprintf(&kv, kvfmt, ap);
    va_end(ap);
  }
  if (as_json) {
    buf_puts(&line, "{\"ts\":\"");
    put_ts(&line);
    buf_printf(&line, "\",\"level\":\"%s\",\"msg\":\"", names[lvl]);
    buf_json_escape(&line, msg, strlen(msg));
    buf_putc(&line, '"');
    if (kv.len)
      kv_to_json(&line, kv.data);
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
    if (kv.len) {
      buf_putc(&line, ' ');
      text_escape(&line, kv.data, kv.len);
    }
    if (rid) {
      buf_puts(&line, " req=");
      text_escape(&line, rid, strlen(rid));
    }
    buf_putc(&line, '\n');
  }
  if (line.len) {
    ssize_t w = write(out_fd, line.data, line.len);
    (void)w;
  }
  buf_release(&kv);
  buf_release(&line);
}
