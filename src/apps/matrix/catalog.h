/* catalog.h — matrix's catalogues: hardware (GPUs and CPUs), models,
 * cloud instances and regions, read from the tab-separated files of
 * src/apps/matrix/data/ (hardware.tsv, models.tsv, instances.tsv, regions.tsv).
 *
 * Each file starts with a header line naming its columns; columns are
 * found by name, so their order is free and unknown columns are kept out.
 * Every row carries its source and year. A figure nobody publishes is an
 * empty cell and reads as NAN here: the simulator refuses what it would
 * need it for rather than guessing (docs/matrix.md lists the sources).
 *
 * Units: memory in GB (10^9 bytes), bandwidths in GB/s (10^9 bytes/s),
 * peaks in dense TFLOPS (TOPS for INT8), powers in W, prices in USD,
 * carbon intensity in gCO2e/kWh. Interconnect figures are the vendors'
 * bidirectional totals per GPU (the simulator uses half of them for one
 * direction).
 *
 * Names match case-insensitively on letters, digits and '.', so
 * "h100 sxm", "H100-SXM" and "h100_sxm" are one name; each row also lists
 * aliases (the names calibration.tsv and the seed use).
 *
 * A catalogue is immutable once loaded: any number of threads may read
 * it; mx_catalog_free() must not race with readers. */
#ifndef GROVE_MATRIX_CATALOG_H
#define GROVE_MATRIX_CATALOG_H

#include <stddef.h>

#define MX_NAME_MAX 64

struct mx_hw {
  char name[MX_NAME_MAX];
  char *aliases;                      /* comma-separated, may be "" */
  char kind[8];                       /* "gpu" or "cpu" */
  char vendor[MX_NAME_MAX];
  char family[MX_NAME_MAX];           /* ampere, hopper, ada, ... */
  double memory_gb, memory_bw_gbs;
  double fp32_tflops, fp16_tflops, bf16_tflops, fp8_tflops, int8_tops;
  char link[MX_NAME_MAX];             /* nvlink, pcie, infinity-fabric, "" */
  double link_gbs, pcie_gbs;          /* bidirectional GB/s per GPU */
  double tdp_w, idle_w;               /* idle_w: NAN where unpublished */
  double cpu_cores;
  int year;
  char *source;
};

/* Dense or mixture-of-experts decoder, or encoder; shapes from the
 * model's published config.json. */
struct mx_model {
  char name[MX_NAME_MAX];
  char *aliases;
  char family[MX_NAME_MAX];
  char architecture[16];              /* "decoder", "encoder" or "moe" */
  double params_b;                    /* total parameters, billions */
  double active_params_b;             /* per token (MoE); = params_b for dense */
  int layers, hidden, heads, kv_heads, head_dim, intermediate, vocab;
  int experts, experts_per_token;     /* 0 for dense */
  int max_context;
  int year;
  char *source;
};

struct mx_instance {
  char provider[16], region[32], instance[MX_NAME_MAX];
  char hardware[MX_NAME_MAX];         /* a hardware row's name */
  int gpu_count;
  double usd_per_hour;
  double vcpus, memory_gib;           /* the instance's shape; NAN where not catalogued */
  int year;
  char *source;
};

struct mx_region {
  char provider[16], region[32], location[MX_NAME_MAX];
  double electricity_usd_per_kwh;     /* NAN where unsourced */
  int electricity_year;
  char *electricity_source;
  double carbon_g_per_kwh;
  int carbon_year;
  char *carbon_source;
  double pue;                         /* NAN where unsourced */
  int pue_year;
  char *pue_source;
};

struct mx_catalog {
  struct mx_hw *hw;             size_t n_hw;
  struct mx_model *models;      size_t n_models;
  struct mx_instance *instances; size_t n_instances;
  struct mx_region *regions;    size_t n_regions;
};

/* The four files, in this order. */
enum mx_table { MX_T_HARDWARE, MX_T_MODELS, MX_T_INSTANCES, MX_T_REGIONS, MX_T_N };
/* "hardware.tsv", "models.tsv", "instances.tsv", "regions.tsv". */
const char *mx_table_file(enum mx_table t);

/* Reads the four files from dir into *out (owned by the caller, freed
 * with mx_catalog_free). Returns 0, GROVE_ENOMEM, GROVE_EIO (a file
 * cannot be read) or GROVE_EINVAL (a malformed file: a missing column, a
 * bad number, a duplicate name, an instance naming unknown hardware);
 * err then says which file, line and column, and *out is untouched. */
int mx_catalog_load(struct mx_catalog **out, const char *dir, char *err, size_t errlen);
void mx_catalog_free(struct mx_catalog *c);          /* NULL is fine */
/* The two halves of mx_catalog_load: the files' texts (texts[t] new, the
 * caller frees each), and a catalogue from such texts (not modified),
 * with the same errors. */
int mx_catalog_read(char *texts[MX_T_N], const char *dir, char *err, size_t errlen);
int mx_catalog_parse(struct mx_catalog **out, const char *const texts[MX_T_N], char *err,
                     size_t errlen);

/* Lookups by name or alias (see above); NULL when absent. */
const struct mx_hw *mx_catalog_hw(const struct mx_catalog *c, const char *name);
const struct mx_model *mx_catalog_model(const struct mx_catalog *c, const char *name);
const struct mx_region *mx_catalog_region(const struct mx_catalog *c, const char *provider,
                                          const char *region);
/* The instance of hw in provider/region with the lowest price per GPU
 * (provider or region NULL: any); NULL when there is none. */
const struct mx_instance *mx_catalog_instance(const struct mx_catalog *c, const char *hw,
                                              const char *provider, const char *region);

/* Do a and b name the same thing under the matching rule above? */
int mx_name_eq(const char *a, const char *b);

#endif
