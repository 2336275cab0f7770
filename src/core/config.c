/* config.c — options from defaults, a file, the environment and flags. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const struct cfg_opt *find(struct cfg_section *secs, size_t nsec,
                                  const char *name, void **base) {
  for (size_t i = 0; i < nsec; i++)
    for (size_t j = 0; j < secs[i].n; j++)
      if (strcmp(secs[i].opts[j].name, name) == 0) {
        *base = secs[i].base;
        return &secs[i].opts[j];
      }
  return NULL;
}

/* A number with a unit, at most max once scaled. */
static int parse_scaled(const char *s, uint64_t *out,
                        const char *const *units, const uint64_t *scale,
                        size_t nunits, double max) {
  char *end;
  errno = 0;
  if (!s || !*s || *s == '-')
    return GROVE_EINVAL;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0)
    return GROVE_EINVAL;
  while (*end == ' ')
    end++;
  uint64_t mul = 0;
  for (size_t i = 0; i < nunits; i++)
    if (strcasecmp(end, units[i]) == 0) {
      mul = scale[i];
      break;
    }
  if (!mul)
    return GROVE_EINVAL;
  double r = v * (double)mul;
  if (!(r <= max)) /* NaN too */
    return GROVE_EINVAL;
  *out = (uint64_t)r;
  return 0;
}

int cfg_parse_size(const char *s, uint64_t *out) {
  static const char *const u[] = {"", "b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib"};
  static const uint64_t k = 1024;
  static const uint64_t m[] = {1, 1, k, k, k, k * k, k * k, k * k, k * k * k, k * k * k, k * k * k};
  return parse_scaled(s, out, u, m, sizeof m / sizeof m[0], 1.8e19);
}

int cfg_parse_ms(const char *s, uint64_t *out) {
  static const char *const u[] = {"", "ms", "s", "m", "h", "d"};
  static const uint64_t m[] = {1, 1, 1000, 60000, 3600000, 86400000};
  /* in nanoseconds it fits an int64 (a time difference): (int64_t)ms * 1000000
   * never overflows; 9223372036853 ms is about 292 years (the double is
   * rounded down from INT64_MAX / 1000000) */
  return parse_scaled(s, out, u, m, sizeof m / sizeof m[0], 9223372036853.0);
}

int cfg_parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) { *out = true; return 0; }
    if (strcasecmp(s, no[i]) == 0) { *out = false; return 0; }
  }
  return GROVE_EINVAL;
}

static int set_value(void *base, const struct cfg_opt *o, const char *v) {
  char *field = (char *)base + o->offset;
  switch (o->type) {
  case CFG_STR: {
    char **p = (char **)field;
    char *dup = strdup(v);
    if (!dup)
      return GROVE_ENOMEM;
    free(*p);
    *p = dup;
    return 0;
  }
  case CFG_INT: {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < -2147483647L || x > 2147483647L)
      return GROVE_EINVAL;
    *(int *)field = (int)x;
    return 0;
  }
  case CFG_BOOL:
    return cfg_parse_bool(v, (bool *)field);
  case CFG_SIZE:
    return cfg_parse_size(v, (uint64_t *)field);
  case CFG_MS:
    return cfg_parse_ms(v, (uint64_t *)field);
  }
  return GROVE_EINVAL;
}

int cfg_set(struct cfg_section *secs, size_t nsec, const char *name,
            const char *value, char *err, size_t errlen) {
  void *base;
  const struct cfg_opt *o = find(secs, nsec, name, &base);
  if (!o) {
    if (err)
      snprintf(err, errlen, "unknown option '--%s'", name);
    return GROVE_ECONFIG;
  }
  int rc = set_value(base, o, value);
  if (rc) {
    if (err)
      snprintf(err, errlen, "bad value '%s' for '--%s'", value, name);
    return GROVE_ECONFIG;
  }
  return 0;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

static int load_file(struct cfg_section *secs, size_t nsec, const char *path,
                     char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot open config file '%s': %s", path, strerror(errno));
    return GROVE_ECONFIG;
  }
  char line[4096];
  int lineno = 0, rc = 0;
  while (!rc && fgets(line, sizeof line, f)) {
    lineno++;
    char *s = trim(line);
    if (!*s || *s == '#')
      continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      snprintf(err, errlen, "bad line in config file '%s': line=%d", path, lineno);
      rc = GROVE_ECONFIG;
      break;
    }
    *eq = '\0';
    char *k = trim(s), *v = trim(eq + 1);
    size_t vl = strlen(v);
    if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
      v[vl - 1] = '\0';
      v++;
    }
    rc = cfg_set(secs, nsec, k, v, err, errlen);
  }
  fclose(f);
  return rc;
}

/* "max-body" -> "GROVE_MAX_BODY" */
static void env_name(const char *opt, char *out, size_t n) {
  size_t i = 0;
  i += (size_t)snprintf(out, n, "GROVE_");
  for (; *opt && i + 1 < n; opt++)
    out[i++] = *opt == '-' ? '_' : (char)toupper((unsigned char)*opt);
  out[i] = '\0';
}

int cfg_check(const struct cfg_section *secs, size_t nsec, char *err, size_t errlen) {
  /* a handful of sections of a few dozen options: pairs are cheap */
  for (size_t i = 0; i < nsec; i++)
    for (size_t j = 0; j < secs[i].n; j++)
      for (size_t k = i; k < nsec; k++)
        for (size_t l = k == i ? j + 1 : 0; l < secs[k].n; l++)
          if (strcmp(secs[i].opts[j].name, secs[k].opts[l].name) == 0) {
            if (err && errlen)
              snprintf(err, errlen, "option '--%s' is declared twice: by '%s' and by '%s'",
                       secs[i].opts[j].name, secs[i].module, secs[k].module);
            return GROVE_EEXIST;
          }
  return 0;
}

int cfg_section_add(struct cfg_section *secs, size_t *nsec, size_t max, struct cfg_section s,
                    char *err, size_t errlen) {
  if (*nsec >= max) {
    if (err && errlen)
      snprintf(err, errlen, "too many option sections (at most %zu): '%s' comes after '%s'", max,
               s.module, *nsec ? secs[*nsec - 1].module : "");
    return GROVE_ETOOBIG;
  }
  secs[(*nsec)++] = s;
  return 0;
}

int cfg_load(struct cfg_section *secs, size_t nsec, int argc, char **argv,
             char *err, size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = '\0';
  if (cfg_check(secs, nsec, err, errlen))
    return GROVE_ECONFIG;
  for (size_t i = 0; i < nsec; i++)
    for (size_t j = 0; j < secs[i].n; j++) {
      const struct cfg_opt *o = &secs[i].opts[j];
      if (o->def && set_value(secs[i].base, o, o->def)) {
        snprintf(err, errlen, "bad default for '--%s'", o->name);
        return GROVE_ECONFIG;
      }
    }
  /* config file: --config wins over GROVE_CONFIG */
  const char *file = getenv("GROVE_CONFIG");
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      file = argv[i + 1];
    else if (strncmp(argv[i], "--config=", 9) == 0)
      file = argv[i] + 9;
  }
  if (file && *file && load_file(secs, nsec, file, err, errlen))
    return GROVE_ECONFIG;
  for (size_t i = 0; i < nsec; i++)
    for (size_t j = 0; j < secs[i].n; j++) {
      char name[128];
      env_name(secs[i].opts[j].name, name, sizeof name);
      const char *v = getenv(name);
      if (v && cfg_set(secs, nsec, secs[i].opts[j].name, v, err, errlen)) {
        snprintf(err, errlen, "bad value '%s' for '%s'", v, name);
        return GROVE_ECONFIG;
      }
    }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) {
      snprintf(err, errlen, "unexpected argument '%s'", a);
      return GROVE_ECONFIG;
    }
    char name[128];
    const char *value = NULL;
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (nl >= sizeof name) {
      snprintf(err, errlen, "unknown option '%.40s'", a);
      return GROVE_ECONFIG;
    }
    memcpy(name, a + 2, nl);
    name[nl] = '\0';
    if (strcmp(name, "config") == 0) {
      if (!eq)
        i++;
      continue;
    }
    void *base;
    const struct cfg_opt *o = find(secs, nsec, name, &base);
    if (!o) {
      snprintf(err, errlen, "unknown option '--%s'", name);
      return GROVE_ECONFIG;
    }
    if (eq)
      value = eq + 1;
    else if (o->type == CFG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
      value = "true";
    else if (i + 1 < argc)
      value = argv[++i];
    else {
      snprintf(err, errlen, "missing value for '--%s'", name);
      return GROVE_ECONFIG;
    }
    if (cfg_set(secs, nsec, name, value, err, errlen))
      return GROVE_ECONFIG;
  }
  return 0;
}

void cfg_release(struct cfg_section *secs, size_t nsec) {
  for (size_t i = 0; i < nsec; i++)
    for (size_t j = 0; j < secs[i].n; j++)
      if (secs[i].opts[j].type == CFG_STR) {
        char **p = (char **)((char *)secs[i].base + secs[i].opts[j].offset);
        free(*p);
        *p = NULL;
      }
}

void cfg_print_help(FILE *f, const struct cfg_section *secs, size_t nsec) {
  for (size_t i = 0; i < nsec; i++) {
    fprintf(f, "\n%s options:\n", secs[i].module);
    for (size_t j = 0; j < secs[i].n; j++) {
      const struct cfg_opt *o = &secs[i].opts[j];
      char env[128], flag[160];
      env_name(o->name, env, sizeof env);
      snprintf(flag, sizeof flag, "--%s", o->name);
      fprintf(f, "  %-22s %-24s %s", flag, env, o->help);
      if (o->def && *o->def)
        fprintf(f, " (default: %s)", o->def);
      fputc('\n', f);
    }
  }
}
