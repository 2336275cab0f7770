/* catalog.c — reads matrix's catalogue files (catalog.h): each file is
 * described by a table of columns for tsv.c's reader, then checked. */
#include "apps/matrix/catalog.h"

#include "apps/matrix/tsv.h"
#include "core/error.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_N(a) (sizeof(a) / sizeof((a)[0]))

static const struct mx_col hw_cols[] = {
  S(mx_hw, name, 1), D(mx_hw, aliases, 0), S(mx_hw, kind, 1), S(mx_hw, vendor, 1),
  S(mx_hw, family, 1), N(mx_hw, memory_gb, 0), N(mx_hw, memory_bw_gbs, 0),
  N(mx_hw, fp32_tflops, 0), N(mx_hw, fp16_tflops, 0), N(mx_hw, bf16_tflops, 0),
  N(mx_hw, fp8_tflops, 0), N(mx_hw, int8_tops, 0), S(mx_hw, link, 0), N(mx_hw, link_gbs, 0),
  N(mx_hw, pcie_gbs, 0), N(mx_hw, tdp_w, 0), N(mx_hw, idle_w, 0), N(mx_hw, cpu_cores, 0),
  I(mx_hw, year, 1), D(mx_hw, source, 1),
};
static const struct mx_col model_cols[] = {
  S(mx_model, name, 1), D(mx_model, aliases, 0), S(mx_model, family, 1),
  S(mx_model, architecture, 1), N(mx_model, params_b, 1), N(mx_model, active_params_b, 0),
  I(mx_model, layers, 1), I(mx_model, hidden, 1), I(mx_model, heads, 1),
  I(mx_model, kv_heads, 1), I(mx_model, head_dim, 1), I(mx_model, intermediate, 1),
  I(mx_model, vocab, 1), I(mx_model, experts, 0), I(mx_model, experts_per_token, 0),
  I(mx_model, max_context, 1), I(mx_model, year, 1), D(mx_model, source, 1),
};
static const struct mx_col inst_cols[] = {
  S(mx_instance, provider, 1), S(mx_instance, region, 1), S(mx_instance, instance, 1),
  S(mx_instance, hardware, 1), I(mx_instance, gpu_count, 1), N(mx_instance, usd_per_hour, 1),
  I(mx_instance, year, 1), D(mx_instance, source, 1), N(mx_instance, vcpus, 0),
  N(mx_instance, memory_gib, 0),
};
static const struct mx_col region_cols[] = {
  S(mx_region, provider, 1), S(mx_region, region, 1), S(mx_region, location, 1),
  N(mx_region, electricity_usd_per_kwh, 0), I(mx_region, electricity_year, 0),
  D(mx_region, electricity_source, 0), N(mx_region, carbon_g_per_kwh, 0),
  I(mx_region, carbon_year, 0), D(mx_region, carbon_source, 0), N(mx_region, pue, 0),
  I(mx_region, pue_year, 0), D(mx_region, pue_source, 0),
};

/* ---- names ---------------------------------------------------------------- */

/* Next significant character of s from *i (letters lowered, digits, '.'),
 * or 0 at the end. */
static int name_next(const char *s, size_t *i) {
  for (;;) {
    unsigned char ch = (unsigned char)s[*i];
    if (!ch) return 0;
    (*i)++;
    if (isalnum(ch) || ch == '.') return tolower(ch);
  }
}

int mx_name_eq(const char *a, const char *b) {
  if (!a || !b) return 0;
  size_t i = 0, j = 0;
  for (;;) {
    int x = name_next(a, &i), y = name_next(b, &j);
    if (x != y) return 0;
    if (!x) return 1;
  }
}

/* Is name the row's name or one of its comma-separated aliases? */
static int name_or_alias(const char *row_name, const char *aliases, const char *name) {
  if (mx_name_eq(row_name, name)) return 1;
  if (!aliases) return 0;
  const char *p = aliases;
  char one[MX_NAME_MAX * 2];
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n < sizeof(one)) {
      memcpy(one, p, n);
      one[n] = 0;
      if (mx_name_eq(one, name)) return 1;
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

/* ---- the catalogue -------------------------------------------------------- */

void mx_catalog_free(struct mx_catalog *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n_hw; i++) mx_tsv_free_row(&c->hw[i], hw_cols, ARRAY_N(hw_cols));
  for (size_t i = 0; i < c->n_models; i++)
    mx_tsv_free_row(&c->models[i], model_cols, ARRAY_N(model_cols));
  for (size_t i = 0; i < c->n_instances; i++)
    mx_tsv_free_row(&c->instances[i], inst_cols, ARRAY_N(inst_cols));
  for (size_t i = 0; i < c->n_regions; i++)
    mx_tsv_free_row(&c->regions[i], region_cols, ARRAY_N(region_cols));
  free(c->hw);
  free(c->models);
  free(c->instances);
  free(c->regions);
  free(c);
}

/* Rules a file's rows must keep beyond their cells' types. */
static int check(const struct mx_catalog *c, char *err, size_t errlen) {
  for (size_t i = 0; i < c->n_hw; i++) {
    const struct mx_hw *h = &c->hw[i];
    if (strcmp(h->kind, "gpu") && strcmp(h->kind, "cpu")) {
      mx_seterr(err, errlen, "hardware '%s' has kind '%s' (gpu or cpu)", h->name, h->kind);
      return GROVE_EINVAL;
    }
    if (isnan(h->idle_w) == 0 && !isnan(h->tdp_w) && h->idle_w > h->tdp_w) {
      mx_seterr(err, errlen, "hardware '%s' idles above its TDP", h->name);
      return GROVE_EINVAL;
    }
    for (size_t k = 0; k < i; k++)
      if (mx_name_eq(c->hw[k].name, h->name)) {
        mx_seterr(err, errlen, "hardware '%s' is listed twice", h->name);
        return GROVE_EINVAL;
      }
  }
  for (size_t i = 0; i < c->n_models; i++) {
    struct mx_model *m = &c->models[i];
    int moe = !strcmp(m->architecture, "moe");
    if (strcmp(m->architecture, "decoder") && strcmp(m->architecture, "encoder") && !moe) {
      mx_seterr(err, errlen, "model '%s' has architecture '%s' (decoder, encoder or moe)", m->name,
             m->architecture);
      return GROVE_EINVAL;
    }
    if (isnan(m->active_params_b)) m->active_params_b = m->params_b;
    if (m->layers < 1 || m->hidden < 1 || m->heads < 1 || m->kv_heads < 1 || m->head_dim < 1 ||
        m->kv_heads > m->heads || m->heads % m->kv_heads || m->params_b <= 0 ||
        m->active_params_b > m->params_b ||
        (moe && (m->experts < 2 || m->experts_per_token < 1 ||
                 m->experts_per_token >= m->experts))) {
      mx_seterr(err, errlen, "model '%s' has inconsistent shapes", m->name);
      return GROVE_EINVAL;
    }
    if (m->max_context < 2) { /* one token in, one out */
      mx_seterr(err, errlen, "model '%s' has max_context %d (at least 2 tokens)", m->name,
                m->max_context);
      return GROVE_EINVAL;
    }
    for (size_t k = 0; k < i; k++)
      if (mx_name_eq(c->models[k].name, m->name)) {
        mx_seterr(err, errlen, "model '%s' is listed twice", m->name);
        return GROVE_EINVAL;
      }
  }
  for (size_t i = 0; i < c->n_regions; i++) {
    const struct mx_region *r = &c->regions[i];
    if (!isnan(r->pue) && r->pue < 1) {
      mx_seterr(err, errlen, "region '%s/%s' has a PUE below 1", r->provider, r->region);
      return GROVE_EINVAL;
    }
  }
  for (size_t i = 0; i < c->n_instances; i++) {
    const struct mx_instance *in = &c->instances[i];
    if (!mx_catalog_hw(c, in->hardware) || in->gpu_count < 1) {
      mx_seterr(err, errlen, "instance '%s' names unknown hardware '%s' or no GPU", in->instance,
             in->hardware);
      return GROVE_EINVAL;
    }
  }
  return 0;
}

const char *mx_table_file(enum mx_table t) {
  static const char *const files[MX_T_N] = {"hardware.tsv", "models.tsv", "instances.tsv",
                                            "regions.tsv"};
  return (unsigned)t < MX_T_N ? files[t] : "?";
}

int mx_catalog_parse(struct mx_catalog **out, const char *const texts[MX_T_N], char *err,
                     size_t errlen) {
  struct mx_catalog *c = calloc(1, sizeof(*c));
  if (!c) return GROVE_ENOMEM;
  void *p;
  int rc = mx_tsv_parse(mx_table_file(MX_T_HARDWARE), texts[MX_T_HARDWARE], hw_cols,
                        ARRAY_N(hw_cols), sizeof(struct mx_hw), &p, &c->n_hw, err, errlen);
  if (rc) goto fail;
  c->hw = p;
  rc = mx_tsv_parse(mx_table_file(MX_T_MODELS), texts[MX_T_MODELS], model_cols,
                    ARRAY_N(model_cols), sizeof(struct mx_model), &p, &c->n_models, err, errlen);
  if (rc) goto fail;
  c->models = p;
  rc = mx_tsv_parse(mx_table_file(MX_T_INSTANCES), texts[MX_T_INSTANCES], inst_cols,
                    ARRAY_N(inst_cols), sizeof(struct mx_instance), &p, &c->n_instances, err,
                    errlen);
  if (rc) goto fail;
  c->instances = p;
  rc = mx_tsv_parse(mx_table_file(MX_T_REGIONS), texts[MX_T_REGIONS], region_cols,
                    ARRAY_N(region_cols), sizeof(struct mx_region), &p, &c->n_regions, err,
                    errlen);
  if (rc) goto fail;
  c->regions = p;
  rc = check(c, err, errlen);
  if (rc) goto fail;
  *out = c;
  return 0;
fail:
  mx_catalog_free(c);
  return rc;
}

int mx_catalog_read(char *texts[MX_T_N], const char *dir, char *err, size_t errlen) {
  memset(texts, 0, sizeof(char *) * MX_T_N);
  for (int t = 0; t < MX_T_N; t++) {
    int rc = mx_tsv_read(dir, mx_table_file((enum mx_table)t), &texts[t], err, errlen);
    if (rc) {
      for (int k = 0; k < t; k++) free(texts[k]);
      return rc;
    }
  }
  return 0;
}

int mx_catalog_load(struct mx_catalog **out, const char *dir, char *err, size_t errlen) {
  char *texts[MX_T_N];
  int rc = mx_catalog_read(texts, dir, err, errlen);
  if (rc) return rc;
  rc = mx_catalog_parse(out, (const char *const *)texts, err, errlen);
  for (int t = 0; t < MX_T_N; t++) free(texts[t]);
  return rc;
}

const struct mx_hw *mx_catalog_hw(const struct mx_catalog *c, const char *name) {
  for (size_t i = 0; name && i < c->n_hw; i++)
    if (mx_name_eq(c->hw[i].name, name)) return &c->hw[i];
  for (size_t i = 0; name && i < c->n_hw; i++)
    if (name_or_alias(c->hw[i].name, c->hw[i].aliases, name)) return &c->hw[i];
  return NULL;
}

const struct mx_model *mx_catalog_model(const struct mx_catalog *c, const char *name) {
  for (size_t i = 0; name && i < c->n_models; i++)
    if (mx_name_eq(c->models[i].name, name)) return &c->models[i];
  for (size_t i = 0; name && i < c->n_models; i++)
    if (name_or_alias(c->models[i].name, c->models[i].aliases, name)) return &c->models[i];
  return NULL;
}

const struct mx_region *mx_catalog_region(const struct mx_catalog *c, const char *provider,
                                          const char *region) {
  for (size_t i = 0; i < c->n_regions; i++)
    if ((!provider || mx_name_eq(c->regions[i].provider, provider)) &&
        mx_name_eq(c->regions[i].region, region))
      return &c->regions[i];
  return NULL;
}

const struct mx_instance *mx_catalog_instance(const struct mx_catalog *c, const char *hw,
                                              const char *provider, const char *region) {
  const struct mx_hw *h = mx_catalog_hw(c, hw);
  const struct mx_instance *best = NULL;
  if (!h) return NULL;
  for (size_t i = 0; i < c->n_instances; i++) {
    const struct mx_instance *in = &c->instances[i];
    if (mx_catalog_hw(c, in->hardware) != h) continue;
    if (provider && !mx_name_eq(in->provider, provider)) continue;
    if (region && !mx_name_eq(in->region, region)) continue;
    if (!best || in->usd_per_hour / in->gpu_count < best->usd_per_hour / best->gpu_count)
      best = in;
  }
  return best;
}
