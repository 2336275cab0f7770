/* chunk.c — delta-of-delta timestamps, scaled-integer or XOR values. */
#include "series/chunk.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/error.h"

/* ---- bit streams ----------------------------------------------------------- */

struct bw {
  struct buf *b;
  uint64_t acc;
  int nacc;
  int err;
};

static void put_bits(struct bw *w, uint64_t v, int n) {
  /* n <= 64; bits go out most significant first */
  while (n > 0) {
    int take = n > 8 - w->nacc ? 8 - w->nacc : n;
    uint64_t bits = (v >> (n - take)) & ((1ULL << take) - 1);
    w->acc = (w->acc << take) | bits;
    w->nacc += take;
    n -= take;
    if (w->nacc == 8) {
      char c = (char)w->acc;
      if (buf_putc(w->b, c))
        w->err = GROVE_ENOMEM;
      w->acc = 0;
      w->nacc = 0;
    }
  }
}

static void flush_bits(struct bw *w) {
  if (w->nacc)
    put_bits(w, 0, 8 - w->nacc);
}

struct br {
  const uint8_t *p;
  size_t len, pos; /* pos in bits */
  int err;
};

static uint64_t get_bits(struct br *r, int n) {
  uint64_t v = 0;
  if (r->pos + (size_t)n > r->len * 8) {
    r->err = GROVE_EINVAL;
    return 0;
  }
  for (int i = 0; i < n; i++, r->pos++)
    v = (v << 1) | ((r->p[r->pos >> 3] >> (7 - (r->pos & 7))) & 1);
  return v;
}

static int64_t sign_extend(uint64_t v, int bits) {
  uint64_t m = 1ULL << (bits - 1);
  return (int64_t)((v ^ m) - m);
}

/* Variable-length signed integers: 0 -> '0'; else a prefix picks the width. */
static const int widths[] = {7, 14, 20, 32, 64};

static void put_varbits(struct bw *w, int64_t v) {
  if (v == 0) {
    put_bits(w, 0, 1);
    return;
  }
  for (int i = 0; i < 5; i++) {
    int bits = widths[i];
    if (bits == 64 || (v >= -(1LL << (bits - 1)) && v < (1LL << (bits - 1)))) {
      /* prefix: i+1 ones then a zero (the last width has no zero) */
      put_bits(w, (1ULL << (i + 1)) - 1, i + 1);
      if (i < 4)
        put_bits(w, 0, 1);
      put_bits(w, (uint64_t)v & (bits == 64 ? ~0ULL : ((1ULL << bits) - 1)), bits);
      return;
    }
  }
}

static int64_t get_varbits(struct br *r) {
  if (!get_bits(r, 1))
    return 0;
  int i = 0;
  while (i < 4 && get_bits(r, 1))
    i++;
  int bits = widths[i];
  return sign_extend(get_bits(r, bits), bits);
}

/* ---- scaled values: Rice codes of their differences --------------------------
 * Version 2 stores scaled integers as differences (first order, or second
 * order for smooth ramps, whichever is smaller), zigzagged and Rice coded
 * with one parameter k for the chunk: q = z >> k in unary, then k bits.
 * Sensor noise of a few units costs a few bits, where version 1's
 * delta-of-delta with fixed widths cost 10 to 17. */

#define RICE_ESCAPE 32 /* q this large: the value follows in 64 bits */

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzigzag(uint64_t z) { return (int64_t)(z >> 1) ^ -(int64_t)(z & 1); }

static void put_rice(struct bw *w, uint64_t z, int k) {
  uint64_t q = z >> k;
  if (q >= RICE_ESCAPE) {
    put_bits(w, (1ULL << RICE_ESCAPE) - 1, RICE_ESCAPE);
    put_bits(w, z, 64);
    return;
  }
  put_bits(w, ((1ULL << q) - 1) << 1, (int)q + 1); /* q ones, a zero */
  if (k)
    put_bits(w, z & ((1ULL << k) - 1), k);
}

static uint64_t get_rice(struct br *r, int k) {
  uint64_t q = 0;
  while (q < RICE_ESCAPE && get_bits(r, 1))
    q++;
  if (q == RICE_ESCAPE)
    return get_bits(r, 64);
  return (q << k) | (k ? get_bits(r, k) : 0);
}

static uint64_t rice_cost(const uint64_t *z, size_t n, int k) {
  uint64_t bits = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t q = z[i] >> k;
    bits += q >= RICE_ESCAPE ? RICE_ESCAPE + 64 : q + 1 + (uint64_t)k;
  }
  return bits;
}

/* The cheapest k near log2 of the mean. OUT: *cost. */
static int rice_param(const uint64_t *z, size_t n, uint64_t *cost) {
  long double sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += z[i];
  int k0 = 0;
  for (long double m = n ? sum / n : 0; m >= 2 && k0 < 62; m /= 2)
    k0++;
  int best = k0;
  *cost = UINT64_MAX;
  for (int k = k0 > 0 ? k0 - 1 : 0; k <= k0 + 1 && k <= 62; k++) {
    uint64_t c = rice_cost(z, n, k);
    if (c < *cost) {
      *cost = c;
      best = k;
    }
  }
  return best;
}

static void put_scaled(struct bw *w, const struct series_sample *pts, size_t n, double scale) {
  static _Thread_local uint64_t d1[CHUNK_MAX], d2[CHUNK_MAX];
  int64_t pv = (int64_t)nearbyint(pts[0].value * scale), pd = 0;
  for (size_t i = 1; i < n; i++) { /* wrapping: the decoder wraps the same way */
    int64_t v = (int64_t)nearbyint(pts[i].value * scale);
    int64_t d = (int64_t)((uint64_t)v - (uint64_t)pv);
    d1[i - 1] = zigzag(d);
    d2[i - 1] = zigzag((int64_t)((uint64_t)d - (uint64_t)pd));
    pd = d;
    pv = v;
  }
  uint64_t c1, c2;
  int k1 = rice_param(d1, n - 1, &c1), k2 = rice_param(d2, n - 1, &c2);
  bool second = c2 < c1;
  int k = second ? k2 : k1;
  const uint64_t *z = second ? d2 : d1;
  put_bits(w, second, 1);
  put_bits(w, (uint64_t)k, 6);
  put_bits(w, (uint64_t)(int64_t)nearbyint(pts[0].value * scale), 64);
  for (size_t i = 0; i + 1 < n; i++)
    put_rice(w, z[i], k);
}

/* ---- encoding ---------------------------------------------------------------- */

static const int64_t units[] = {1000000000, 1000000, 1000, 1};

/* The power of ten (0..6) that makes every value an integer, or -1. */
static int decimal_places(const struct series_sample *pts, size_t n) {
  for (int k = 0; k <= 6; k++) {
    double scale = pow(10, k);
    size_t i = 0;
    for (; i < n; i++) {
      double v = pts[i].value * scale;
      if (!(fabs(v) < 9e15))
        return -1;
      double r = nearbyint(v);
      if (r / scale != pts[i].value || (pts[i].value == 0 && signbit(pts[i].value)))
        break;
    }
    if (i == n)
      return k;
  }
  return -1;
}

int chunk_encode(const struct series_sample *pts, size_t n, struct buf *out) {
  if (n == 0 || n > CHUNK_MAX)
    return GROVE_EINVAL;
  for (size_t i = 1; i < n; i++)
    if (pts[i].ts_ns < pts[i - 1].ts_ns)
      return GROVE_EINVAL;
  int unit = 3;
  for (int u = 0; u < 4; u++) {
    size_t i = 0;
    while (i < n && pts[i].ts_ns % units[u] == 0)
      i++;
    if (i == n) {
      unit = u;
      break;
    }
  }
  int places = decimal_places(pts, n);
  struct bw w = {out, 0, 0, 0};
  /* header: version 2, unit (2 bits), mode (1 bit), places (3 bits), count */
  put_bits(&w, 2, 4);
  put_bits(&w, (uint64_t)unit, 2);
  put_bits(&w, places >= 0, 1);
  put_bits(&w, places >= 0 ? (uint64_t)places : 0, 3);
  put_bits(&w, n, 13);
  /* timestamps */
  int64_t u = units[unit];
  int64_t prev = pts[0].ts_ns / u, delta = 0;
  put_bits(&w, (uint64_t)prev, 64);
  for (size_t i = 1; i < n; i++) {
    /* wrapping arithmetic: the decoder wraps the same way */
    int64_t t = pts[i].ts_ns / u, d = (int64_t)((uint64_t)t - (uint64_t)prev);
    put_varbits(&w, (int64_t)((uint64_t)d - (uint64_t)delta));
    delta = d;
    prev = t;
  }
  /* values */
  if (places >= 0) {
    put_scaled(&w, pts, n, pow(10, places));
  } else {
    uint64_t prevbits;
    memcpy(&prevbits, &pts[0].value, 8);
    put_bits(&w, prevbits, 64);
    int lead = -1, trail = 0;
    for (size_t i = 1; i < n; i++) {
      uint64_t bits;
      memcpy(&bits, &pts[i].value, 8);
      uint64_t x = bits ^ prevbits;
      prevbits = bits;
      if (!x) {
        put_bits(&w, 0, 1);
        continue;
      }
      put_bits(&w, 1, 1);
      int l = __builtin_clzll(x), t = __builtin_ctzll(x);
      if (l > 31)
        l = 31;
      if (lead >= 0 && l >= lead && t >= trail) {
        put_bits(&w, 0, 1); /* fits the previous window */
        put_bits(&w, x >> trail, 64 - lead - trail);
      } else {
        lead = l;
        trail = t;
        int sig = 64 - l - t;
        put_bits(&w, 1, 1);
        put_bits(&w, (uint64_t)l, 5);
        put_bits(&w, (uint64_t)(sig - 1), 6);
        put_bits(&w, x >> t, sig);
      }
    }
  }
  flush_bits(&w);
  return w.err;
}

int chunk_decode(const void *data, size_t len, struct series_sample *pts, size_t *n) {
  struct br r = {data, len, 0, 0};
  int version = (int)get_bits(&r, 4);
  if (version != 1 && version != 2)
    return GROVE_EINVAL;
  int unit = (int)get_bits(&r, 2);
  int scaled = (int)get_bits(&r, 1);
  int places = (int)get_bits(&r, 3);
  size_t count = get_bits(&r, 13);
  if (r.err || count == 0 || count > CHUNK_MAX || places > 6)
    return GROVE_EINVAL;
  int64_t u = units[unit];
  int64_t t = (int64_t)get_bits(&r, 64), delta = 0;
  if (t > INT64_MAX / u || t < INT64_MIN / u)
    return GROVE_EINVAL;
  pts[0].ts_ns = t * u;
  for (size_t i = 1; i < count && !r.err; i++) {
    delta = (int64_t)((uint64_t)delta + (uint64_t)get_varbits(&r));
    t = (int64_t)((uint64_t)t + (uint64_t)delta);
    if (t > INT64_MAX / u || t < INT64_MIN / u)
      return GROVE_EINVAL;
    pts[i].ts_ns = t * u;
  }
  if (scaled && version == 2) {
    double scale = pow(10, places);
    bool second = get_bits(&r, 1);
    int k = (int)get_bits(&r, 6);
    if (k > 62)
      return GROVE_EINVAL;
    int64_t v = (int64_t)get_bits(&r, 64), d = 0;
    pts[0].value = (double)v / scale;
    for (size_t i = 1; i < count && !r.err; i++) {
      int64_t x = unzigzag(get_rice(&r, k));
      d = second ? (int64_t)((uint64_t)d + (uint64_t)x) : x;
      v = (int64_t)((uint64_t)v + (uint64_t)d);
      pts[i].value = (double)v / scale;
    }
  } else if (scaled) { /* version 1: delta-of-delta in fixed widths */
    double scale = pow(10, places);
    int64_t v = (int64_t)get_bits(&r, 64), d = 0;
    pts[0].value = (double)v / scale;
    for (size_t i = 1; i < count && !r.err; i++) {
      d = (int64_t)((uint64_t)d + (uint64_t)get_varbits(&r));
      v = (int64_t)((uint64_t)v + (uint64_t)d);
      pts[i].value = (double)v / scale;
    }
  } else {
    uint64_t bits = get_bits(&r, 64);
    memcpy(&pts[0].value, &bits, 8);
    int lead = -1, trail = 0;
    for (size_t i = 1; i < count && !r.err; i++) {
      if (get_bits(&r, 1)) {
        if (get_bits(&r, 1)) {
          lead = (int)get_bits(&r, 5);
          int sig = (int)get_bits(&r, 6) + 1;
          if (lead + sig > 64)
            return GROVE_EINVAL;
          trail = 64 - lead - sig;
        } else if (lead < 0) {
          return GROVE_EINVAL;
        }
        int sig = 64 - lead - trail;
        bits ^= get_bits(&r, sig) << trail;
      }
      memcpy(&pts[i].value, &bits, 8);
    }
  }
  if (r.err)
    return GROVE_EINVAL;
  *n = count;
  return 0;
}
