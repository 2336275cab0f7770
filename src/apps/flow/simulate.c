/* simulate.c — `grove flow simulate`: a city of air-quality stations
 * writing to a running grove (or to standard output) at a chosen rate.
 *
 * Stations sit in regions. Each pollutant follows its region's baseline
 * with a diurnal cycle (ozone peaks in the afternoon sun, NO2, CO and
 * particles with the morning and evening traffic), pollution episodes that
 * ramp a region's particles up several times for hours, and station noise.
 * With faults on, sensors get stuck, spike, drop out and read negative,
 * and the stream carries late, duplicated, out-of-order and malformed
 * lines — what collectors really send.
 *
 * One thread generates line protocol into request bodies, in event-time
 * order; --connections threads post them (keep-alive, through the
 * outbound client, net/client.h: http or https) and count what the server
 * refused.
 *
 * Real time by default: a tick is written once the wall clock reaches its
 * event time (ticks already past, from a --start in the past, go at once),
 * so a simulated city never writes readings from the future, which a
 * server would leave out of the AQI (--flow-max-ahead) and which, without
 * that bound, would make real stations' readings late. --fast writes as
 * fast as --rate and the server allow, event time running ahead of the
 * clock: for load tests and replays into a server of its own. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/flow/flow.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"
#include "core/text.h"
#include "core/util.h"
#include "net/client.h"

struct sim_cfg {
  char *url;
  char *key;
  int stations, regions;
  uint64_t interval_ms;   /* event time between a station's readings */
  int rate;               /* points a second; 0: as fast as the server takes them */
  uint64_t duration_ms;   /* wall time; 0: until --ticks */
  int ticks;              /* readings per station; 0: until --duration */
  char *start;            /* "now" or RFC 3339: event time of the first tick */
  int connections;
  int batch;              /* lines a request */
  bool faults;
  int seed;
  bool print;             /* write the lines to standard output instead */
  bool fast;              /* event time may run ahead of the wall clock */
  char *ca_file;          /* PEM CAs for an https --url; "": the system's */
};

static const struct cfg_opt sim_opts[] = {
    CFG_OPT(struct sim_cfg, "url", CFG_STR, url, "http://127.0.0.1:8080", "the grove to write to (http:// or https://)"),
    CFG_OPT(struct sim_cfg, "ca-file", CFG_STR, ca_file, "", "PEM file of the CAs to trust for an https --url (empty: the system's)"),
    CFG_OPT(struct sim_cfg, "key", CFG_STR, key, "", "an API key with the write scope (or GROVE_KEY)"),
    CFG_OPT(struct sim_cfg, "stations", CFG_INT, stations, "50", "stations in the city"),
    CFG_OPT(struct sim_cfg, "regions", CFG_INT, regions, "4", "regions they are spread over"),
    CFG_OPT(struct sim_cfg, "interval", CFG_MS, interval_ms, "10s", "event time between two readings of a station"),
    CFG_OPT(struct sim_cfg, "rate", CFG_INT, rate, "0", "points a second (6 a reading); 0: as fast as the server takes them"),
    CFG_OPT(struct sim_cfg, "duration", CFG_MS, duration_ms, "10s", "how long to write (wall clock); 0: until --ticks"),
    CFG_OPT(struct sim_cfg, "ticks", CFG_INT, ticks, "0", "readings per station, then stop; 0: until --duration"),
    CFG_OPT(struct sim_cfg, "start", CFG_STR, start, "now", "event time of the first readings: now or RFC 3339"),
    CFG_OPT(struct sim_cfg, "connections", CFG_INT, connections, "2", "HTTP connections writing at once"),
    CFG_OPT(struct sim_cfg, "batch", CFG_INT, batch, "1000", "lines a request"),
    CFG_OPT(struct sim_cfg, "faults", CFG_BOOL, faults, "true", "sensor faults and late, duplicate, out-of-order and malformed lines"),
    CFG_OPT(struct sim_cfg, "seed", CFG_INT, seed, "1", "random seed: the same seed makes the same city and stream"),
    CFG_OPT(struct sim_cfg, "print", CFG_BOOL, print, "false", "write the line protocol to standard output instead of sending it"),
    CFG_OPT(struct sim_cfg, "fast", CFG_BOOL, fast, "false", "faster than real time: event time runs ahead of the clock as fast as --rate and the server allow (by default a reading is sent once the clock reaches its time)"),
};

void flow_simulate_help(FILE *f) {
  struct sim_cfg c;
  memset(&c, 0, sizeof c);
  struct cfg_section s = {"simulate", sim_opts, ARRAY_LEN(sim_opts), &c};
  fprintf(f,
          "usage: grove flow simulate [options]\n\n"
          "Simulates a city of air-quality stations in regions — diurnal cycles, traffic\n"
          "peaks, pollution episodes, sensor faults, and late, duplicated, out-of-order\n"
          "and malformed lines — and writes it as line protocol to a running grove\n"
          "(POST /api/v1/write) or to standard output (--print). Prints what was sent,\n"
          "what the server refused and the rate on one line at the end.\n\n");
  cfg_print_help(f, &s, 1);
}

/* ---- the city ------------------------------------------------------------------- */

static const char *const pollutant_names[SP_COUNT] = {"pm25", "pm10", "o3", "no2", "co", "so2"};
/* typical urban baselines: µg/m³, µg/m³, ppm, ppb, ppm, ppb */
static const double baseline[SP_COUNT] = {10.0, 22.0, 0.030, 18.0, 0.45, 2.5};

struct station_sim {
  int region;
  double scale[SP_COUNT];  /* this station's place: near a road, a park… */
  double drift[SP_COUNT];  /* slow AR(1) wander */
  int stuck;               /* readings left repeating the last value */
  int dropout;             /* readings left missing */
  double last[SP_COUNT];
};

struct region_sim {
  double level;            /* episode multiplier on particles, 1 when clear */
  int episode_left;        /* ticks left in an episode */
  int episode_len;
  double episode_peak;
};

struct rng {
  uint64_t s;
};

static uint64_t rng_next(struct rng *r) { /* xorshift64* */
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ULL;
}

static double rng_unit(struct rng *r) { return (double)(rng_next(r) >> 11) / 9007199254740992.0; }

static double rng_normal(struct rng *r) { /* Box–Muller, one of the pair */
  double u = rng_unit(r), v = rng_unit(r);
  return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

struct city {
  struct sim_cfg *cfg;
  struct station_sim *st;
  struct region_sim *rg;
  struct rng rng;
  int64_t t0, t;           /* event time: first and current tick */
  int64_t tick;
  int next;                /* next station in this tick */
  bool ended;              /* the next tick is past the end of the time range */
};

static void city_init(struct city *c, struct sim_cfg *cfg, int64_t t0) {
  c->cfg = cfg;
  c->rng.s = 0x9E3779B97F4A7C15ULL ^ (uint64_t)cfg->seed * 0x100000001B3ULL;
  if (!c->rng.s)
    c->rng.s = 1;
  c->st = calloc((size_t)cfg->stations, sizeof *c->st);
  c->rg = calloc((size_t)cfg->regions, sizeof *c->rg);
  for (int i = 0; i < cfg->regions; i++)
    c->rg[i].level = 1;
  for (int i = 0; i < cfg->stations; i++) {
    struct station_sim *s = &c->st[i];
    s->region = i % cfg->regions;
    for (int p = 0; p < SP_COUNT; p++) {
      s->scale[p] = 0.6 + 0.9 * rng_unit(&c->rng) + 0.3 * s->region / (double)cfg->regions;
      s->last[p] = baseline[p];
    }
  }
  c->t0 = c->t = t0;
}

/* Diurnal shape at event time t for pollutant p. */
static double diurnal(int p, int64_t t) {
  double h = fmod((double)(t / 1000000000) / 3600.0, 24.0);
  if (p == SP_O3) /* sunlight: low at night, peak mid-afternoon */
    return 0.55 + 0.75 * fmax(0, sin(M_PI * (h - 7) / 12.0));
  double traffic = exp(-(h - 8) * (h - 8) / 3.0) + 0.9 * exp(-(h - 18) * (h - 18) / 4.0);
  return 0.75 + (p == SP_SO2 ? 0.2 : 0.8) * traffic;
}

/* Moves regions' episodes on by one tick. */
static void city_weather(struct city *c) {
  double per_tick = c->cfg->interval_ms / 3600000.0; /* hours a tick */
  for (int i = 0; i < c->cfg->regions; i++) {
    struct region_sim *r = &c->rg[i];
    if (r->episode_left > 0) {
      r->episode_left--;
      double done = 1.0 - (double)r->episode_left / r->episode_len;
      r->level = 1 + (r->episode_peak - 1) * sin(M_PI * done); /* ramp up, then clear */
    } else if (rng_unit(&c->rng) < 0.08 * per_tick) { /* about two a day a region */
      r->episode_len = (int)((1 + 3 * rng_unit(&c->rng)) / per_tick) + 1;
      r->episode_left = r->episode_len;
      r->episode_peak = 2.5 + 5 * rng_unit(&c->rng);
    } else {
      r->level = 1;
    }
  }
}

/* Appends a value with two decimals (five for ppm-small ozone and CO). */
static void put_value(struct buf *b, double v, int decimals) {
  char tmp[48];
  int n = snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
  buf_append(b, tmp, (size_t)n);
}

/* One station's reading at the current tick as a line (maybe none, or a
 * faulty one). Returns the points it holds. */
static int city_line(struct city *c, int i, int64_t t, struct buf *b) {
  struct station_sim *s = &c->st[i];
  bool faults = c->cfg->faults;
  if (faults && s->dropout > 0) {
    s->dropout--;
    return 0;
  }
  if (faults && rng_unit(&c->rng) < 0.002)
    s->dropout = 1 + (int)(rng_next(&c->rng) % 30);
  if (faults && !s->stuck && rng_unit(&c->rng) < 0.002)
    s->stuck = 5 + (int)(rng_next(&c->rng) % 50);
  double v[SP_COUNT];
  const struct region_sim *r = &c->rg[s->region];
  for (int p = 0; p < SP_COUNT; p++) {
    s->drift[p] = 0.97 * s->drift[p] + 0.03 * rng_normal(&c->rng);
    double x = baseline[p] * s->scale[p] * diurnal(p, t) * exp(0.25 * s->drift[p]) *
               (1 + 0.08 * rng_normal(&c->rng));
    if (p == SP_PM25 || p == SP_PM10)
      x *= r->level;
    if (faults && s->stuck)
      x = s->last[p];
    s->last[p] = x;
    v[p] = x;
  }
  if (s->stuck)
    s->stuck--;
  if (faults) {
    double u = rng_unit(&c->rng);
    if (u < 0.001)
      v[SP_PM25] *= 12; /* a spike: an insect in the inlet */
    else if (u < 0.0015)
      v[SP_NO2] = -1 - 5 * rng_unit(&c->rng); /* a miscalibrated cell */
  }
  buf_printf(b, "air_quality,region=r%02d,station=st-%04d ", s->region, i);
  for (int p = 0; p < SP_COUNT; p++) {
    if (p)
      buf_putc(b, ',');
    buf_puts(b, pollutant_names[p]);
    buf_putc(b, '=');
    put_value(b, v[p], p == SP_O3 || p == SP_CO ? 4 : 2);
  }
  buf_printf(b, " %lld\n", (long long)t);
  return SP_COUNT;
}

/* Fills a body with up to `lines` lines, stopping before a tick whose
 * event time is after `until`; returns the points in it. */
static long city_body(struct city *c, int lines, struct buf *b, int64_t until) {
  long points = 0;
  bool faults = c->cfg->faults;
  size_t prev_start = 0, prev_end = 0;
  for (int n = 0; n < lines; n++) {
    if (c->next == 0 && (c->ended || c->t > until))
      break;
    if (c->next == 0)
      city_weather(c);
    size_t start = b->len;
    int64_t t = c->t;
    if (faults && rng_unit(&c->rng) < 0.005 && /* late: a buffer flushed after a gap */
        time_sub(t, (int64_t)(5 + rng_next(&c->rng) % 15) * 60 * 1000000000LL, &t))
      t = c->t;
    points += city_line(c, c->next, t, b);
    double u = faults ? rng_unit(&c->rng) : 1;
    if (u < 0.003 && b->len > start) { /* duplicated: a retry after a lost answer */
      buf_append(b, b->data + start, b->len - start);
      points += SP_COUNT;
    } else if (u < 0.005) { /* malformed */
      buf_printf(b, "air_quality,station=st-%04d pm25=%s\n", c->next,
                 rng_unit(&c->rng) < 0.5 ? "high" : "12.5.1");
    } else if (u < 0.015 && prev_end > prev_start && b->len > start) {
      /* out of order: swap with the previous line */
      size_t a = prev_end - prev_start, l = b->len - start;
      char *tmp = malloc(a + l);
      if (tmp) {
        memcpy(tmp, b->data + start, l);
        memcpy(tmp + l, b->data + prev_start, a);
        memcpy(b->data + prev_start, tmp, a + l);
        free(tmp);
      }
    }
    prev_start = start;
    prev_end = b->len;
    if (++c->next == c->cfg->stations) {
      c->next = 0;
      c->tick++;
      int64_t step; /* interval_ms fits int64 ns (cfg_parse_ms); tick × it may not */
      c->ended = time_mul(c->tick, (int64_t)c->cfg->interval_ms * 1000000, &step) ||
                 time_add(c->t0, step, &c->t) || !time_valid(c->t);
      if (c->cfg->ticks && c->tick >= c->cfg->ticks)
        break;
    }
  }
  return points;
}

/* ---- sending ---------------------------------------------------------------------- */

struct body {
  char *data;
  size_t len;
  long points;
};

struct sender {
  struct sim_cfg *cfg;
  char url[1200];           /* {--url}/api/v1/write */
  pthread_mutex_t lock;
  pthread_cond_t more, room;
  struct body *queue;
  size_t qcap, head, count;
  bool done;
  /* results */
  long points_sent, requests, lines_failed, http_errors;
  char first_error[256];
};

static void *sender_main(void *arg) {
  struct sender *s = arg;
  struct http_client *client = NULL;
  char key_header[300], err[512];
  snprintf(key_header, sizeof key_header, "X-API-Key: %s", s->cfg->key);
  const char *headers[] = {"Content-Type: text/plain", s->cfg->key[0] ? key_header : NULL, NULL};
  if (http_client_create(&client)) {
    pthread_mutex_lock(&s->lock);
    snprintf(s->first_error, sizeof s->first_error, "out of memory");
    pthread_mutex_unlock(&s->lock);
  }
  for (;;) {
    pthread_mutex_lock(&s->lock);
    while (!s->count && !s->done)
      pthread_cond_wait(&s->more, &s->lock);
    if (!s->count) {
      pthread_mutex_unlock(&s->lock);
      break;
    }
    struct body b = s->queue[s->head];
    s->head = (s->head + 1) % s->qcap;
    s->count--;
    pthread_cond_signal(&s->room);
    pthread_mutex_unlock(&s->lock);
    struct http_client_res res = {0};
    int rc = client ? 0 : GROVE_ENOMEM;
    err[0] = '\0';
    for (int attempt = 0; client && attempt < 20; attempt++) {
      if (res.status == 429 || res.status == 503) { /* limited or busy: wait as told, then again */
        long secs = res.retry_after_s;
        struct timespec ts = {secs > 0 ? (secs > 5 ? 5 : secs) : 0, secs > 0 ? 0 : 100000000L};
        nanosleep(&ts, NULL);
      }
      http_client_res_release(&res);
      struct http_client_req q = {.method = "POST", .url = s->url, .headers = headers,
                                  .body = b.data, .body_len = b.len, .timeout_ms = 30000,
                                  .max_response = 1u << 20, .ca_file = s->cfg->ca_file};
      rc = http_client_request(client, &q, &res, err, sizeof err);
      if (rc || (res.status != 429 && res.status != 503))
        break;
    }
    long failed = 0;
    if (!rc && res.status == 400 && res.body.len && strstr(res.body.data, "PARTIAL_WRITE")) {
      const char *f = strstr(res.body.data, "\"failed_lines\":");
      failed = f ? atol(f + 15) : 0;
    }
    pthread_mutex_lock(&s->lock);
    s->requests++;
    if (!rc && (res.status == 204 || (res.status == 400 && failed))) {
      s->points_sent += b.points;
      s->lines_failed += failed;
    } else {
      s->http_errors++;
      if (!s->first_error[0] && rc)
        snprintf(s->first_error, sizeof s->first_error, "%s", err);
      else if (!s->first_error[0])
        snprintf(s->first_error, sizeof s->first_error, "HTTP %ld %.200s", res.status,
                 res.body.len ? res.body.data : "(no answer)");
    }
    pthread_mutex_unlock(&s->lock);
    http_client_res_release(&res);
    free(b.data);
  }
  http_client_destroy(client);
  return NULL;
}

int flow_simulate(int argc, char **argv) {
  struct sim_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  struct cfg_section sec = {"simulate", sim_opts, ARRAY_LEN(sim_opts), &cfg};
  char err[256];
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      flow_simulate_help(stdout);
      return 0;
    }
  if (cfg_load(&sec, 1, argc, argv, err, sizeof err)) {
    fprintf(stderr, "grove flow simulate: %s\n", err);
    return 2;
  }
  int rc = 2;
  const char *bad = NULL;
  if (cfg.stations < 1 || cfg.stations > 1000000)
    bad = "--stations must be 1 to 1000000";
  else if (cfg.regions < 1 || cfg.regions > 99)
    bad = "--regions must be 1 to 99";
  else if (!cfg.interval_ms)
    bad = "--interval must be positive";
  else if (cfg.connections < 1 || cfg.connections > 256)
    bad = "--connections must be 1 to 256";
  else if (cfg.batch < 1 || cfg.batch > 100000)
    bad = "--batch must be 1 to 100000";
  else if (cfg.rate < 0 || cfg.ticks < 0)
    bad = "--rate and --ticks cannot be negative";
  else if (!cfg.duration_ms && !cfg.ticks)
    bad = "give --duration or --ticks (or both)";
  int64_t t0 = (int64_t)clock_wall_ms() * 1000000;
  if (!bad && strcmp(cfg.start, "now") != 0 && !rfc3339_parse(cfg.start, &t0))
    bad = "--start must be now or RFC 3339";
  if (!cfg.key[0] && getenv("GROVE_KEY")) {
    free(cfg.key);
    cfg.key = strdup(getenv("GROVE_KEY"));
  }
  struct sender s;
  memset(&s, 0, sizeof s);
  s.cfg = &cfg;
  size_t ulen = strlen(cfg.url);
  while (ulen && cfg.url[ulen - 1] == '/')
    ulen--;
  if (!bad && !cfg.print &&
      (http_client_url_check(cfg.url) || ulen + sizeof "/api/v1/write" > sizeof s.url))
    bad = "--url must be http(s)://host[:port][/prefix]";
  snprintf(s.url, sizeof s.url, "%.*s/api/v1/write", (int)ulen, cfg.url);
  if (bad) {
    fprintf(stderr, "grove flow simulate: %s\n", bad);
    cfg_release(&sec, 1);
    return 2;
  }
  struct city c;
  memset(&c, 0, sizeof c);
  city_init(&c, &cfg, t0);
  pthread_t *threads = calloc((size_t)cfg.connections, sizeof *threads);
  s.qcap = (size_t)cfg.connections * 2;
  s.queue = calloc(s.qcap, sizeof *s.queue);
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.more, NULL);
  pthread_cond_init(&s.room, NULL);
  if (!c.st || !c.rg || !threads || !s.queue)
    goto out;
  if (!cfg.print)
    for (int i = 0; i < cfg.connections; i++)
      pthread_create(&threads[i], NULL, sender_main, &s);
  fprintf(stderr, cfg.fast ? "grove flow simulate: faster than real time: event time runs ahead "
                            "of the clock (a server leaves readings more than --flow-max-ahead "
                            "ahead out of the AQI)\n"
                          : "grove flow simulate: real time: each reading is sent once the clock "
                            "reaches its event time (--fast to run ahead)\n");
  uint64_t began = clock_mono_ns();
  long generated = 0;
  for (;;) {
    uint64_t elapsed = clock_mono_ns() - began;
    if (cfg.duration_ms && elapsed >= cfg.duration_ms * 1000000)
      break;
    if (cfg.ticks && c.tick >= cfg.ticks)
      break;
    if (cfg.rate) { /* pace: no more points than rate × elapsed */
      double due = (double)elapsed / 1e9 * cfg.rate;
      if ((double)generated > due) {
        uint64_t wait_ns = (uint64_t)(((double)generated - due) / cfg.rate * 1e9);
        struct timespec ts = {(time_t)(wait_ns / 1000000000), (long)(wait_ns % 1000000000)};
        nanosleep(&ts, NULL);
        continue;
      }
    }
    int lines = cfg.batch;
    if (cfg.rate) { /* small enough bodies that pacing stays smooth */
      int per_100ms = cfg.rate / 10 / SP_COUNT;
      if (per_100ms < lines)
        lines = per_100ms > 0 ? per_100ms : 1;
    }
    struct buf b;
    buf_init(&b, 0);
    int64_t wall = (int64_t)clock_wall_ms() * 1000000;
    long points = city_body(&c, lines, &b, cfg.fast ? INT64_MAX : wall);
    if (!b.len) {
      buf_release(&b);
      if (c.ended)
        break;
      /* real time: the next tick is due later; wait (100 ms at most, so
       * --duration is seen) */
      int64_t wait_ns = c.t - wall < 100000000 ? c.t - wall : 100000000;
      struct timespec ts = {0, (long)(wait_ns > 0 ? wait_ns : 1000000)};
      nanosleep(&ts, NULL);
      continue;
    }
    generated += points;
    if (cfg.print) {
      fwrite(b.data, 1, b.len, stdout);
      buf_release(&b);
      continue;
    }
    size_t len;
    char *data = buf_detach(&b, &len);
    pthread_mutex_lock(&s.lock);
    while (s.count == s.qcap)
      pthread_cond_wait(&s.room, &s.lock);
    s.queue[(s.head + s.count) % s.qcap] = (struct body){data, len, points};
    s.count++;
    pthread_cond_signal(&s.more);
    pthread_mutex_unlock(&s.lock);
  }
  pthread_mutex_lock(&s.lock);
  s.done = true;
  pthread_cond_broadcast(&s.more);
  pthread_mutex_unlock(&s.lock);
  if (!cfg.print)
    for (int i = 0; i < cfg.connections; i++)
      pthread_join(threads[i], NULL);
  double secs = (double)(clock_mono_ns() - began) / 1e9;
  if (cfg.print) {
    fflush(stdout);
    fprintf(stderr, "generated points=%ld ticks=%lld stations=%d\n", generated,
            (long long)c.tick, cfg.stations);
    rc = 0;
  } else {
    printf("points=%ld requests=%ld lines_failed=%ld http_errors=%ld seconds=%.3f "
           "points_per_second=%.0f\n",
           s.points_sent, s.requests, s.lines_failed, s.http_errors, secs,
           secs > 0 ? (double)s.points_sent / secs : 0);
    if (s.first_error[0]) { /* the server's answer may echo what it was sent */
      fprintf(stderr, "grove flow simulate: first error: ");
      text_fputs(s.first_error, stderr);
      fputc('\n', stderr);
    }
    rc = s.http_errors ? 1 : 0;
  }
out:
  free(c.st);
  free(c.rg);
  free(threads);
  free(s.queue);
  cfg_release(&sec, 1);
  return rc;
}
