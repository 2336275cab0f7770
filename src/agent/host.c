/* host.c — host collectors from procfs and sysfs (see host.h). */
#include "agent/host.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

long agent_read_file(const char *root, const char *rel, char *out, size_t cap) {
  char path[4096];
  int n = snprintf(path, sizeof(path), "%s/%s", strcmp(root, "/") == 0 ? "" : root, rel);
  if (n < 0 || (size_t)n >= sizeof(path) || cap == 0) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t r = read(fd, out + len, cap - 1 - len);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  out[len] = '\0';
  return (long)len;
}

void host_snap_init(struct host_snap *s) { memset(s, 0, sizeof(*s)); }

void host_snap_release(struct host_snap *s) {
  free(s->cores);
  host_snap_init(s);
}

static uint64_t cpu_all(const struct host_cpu *c) {
  return c->user + c->nice + c->system + c->idle + c->iowait + c->irq + c->softirq + c->steal;
}

static uint64_t cpu_busy(const struct host_cpu *c) { return cpu_all(c) - c->idle - c->iowait; }

static int read_stat(const char *root, struct host_snap *s) {
  size_t cap = 1 << 20;
  char *text = malloc(cap);
  if (!text) return GROVE_ENOMEM;
  int rc = GROVE_EIO;
  if (agent_read_file(root, "proc/stat", text, cap) < 0) goto out;
  size_t ncores = 0;
  for (char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
    if (strncmp(l, "cpu", 3) == 0 && isdigit((unsigned char)l[3])) ncores++;
  if (ncores > HOST_MAX_CPUS) ncores = HOST_MAX_CPUS;
  s->cores = calloc(ncores ? ncores : 1, sizeof(*s->cores));
  if (!s->cores) {
    rc = GROVE_ENOMEM;
    goto out;
  }
  bool total = false;
  for (char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    if (strncmp(l, "cpu", 3) != 0) continue;
    struct host_cpu c = {0};
    unsigned long long v[8] = {0};
    const char *p = l + 3;
    bool is_total = *p == ' ';
    while (*p && !isspace((unsigned char)*p)) p++;
    int got = sscanf(p, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                     &v[4], &v[5], &v[6], &v[7]);
    if (got < 4) continue;
    c.user = v[0], c.nice = v[1], c.system = v[2], c.idle = v[3];
    c.iowait = v[4], c.irq = v[5], c.softirq = v[6], c.steal = v[7];
    if (is_total) {
      s->total = c;
      total = true;
    } else if (s->ncores < ncores) {
      s->cores[s->ncores++] = c;
    }
  }
  rc = total ? 0 : GROVE_EIO;
out:
  free(text);
  return rc;
}

static void read_meminfo(const char *root, struct host_snap *s) {
  char text[8192];
  if (agent_read_file(root, "proc/meminfo", text, sizeof(text)) < 0) return;
  for (char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    unsigned long long v;
    if (sscanf(l, "MemTotal: %llu", &v) == 1) s->mem_total_kb = v;
    else if (sscanf(l, "MemAvailable: %llu", &v) == 1) s->mem_available_kb = v;
    else if (sscanf(l, "SwapTotal: %llu", &v) == 1) s->swap_total_kb = v;
    else if (sscanf(l, "SwapFree: %llu", &v) == 1) s->swap_free_kb = v;
  }
}

/* Whole disks only: partitions and virtual devices (loop, ram) would count
 * the same bytes twice or count nothing real. */
static bool disk_wanted(const char *name) {
  if (strncmp(name, "loop", 4) == 0 || strncmp(name, "ram", 3) == 0 || strncmp(name, "zram", 4) == 0)
    return false;
  size_t n = strlen(name);
  if (strncmp(name, "nvme", 4) == 0 || strncmp(name, "mmcblk", 6) == 0)
    return strchr(name + 4, 'p') == NULL; /* nvme0n1p1, mmcblk0p1: partitions */
  return n > 0 && !isdigit((unsigned char)name[n - 1]);
}

static void read_diskstats(const char *root, struct host_snap *s) {
  char text[65536];
  if (agent_read_file(root, "proc/diskstats", text, sizeof(text)) < 0) return;
  for (char *l = text; l && *l && s->ndisks < HOST_MAX_DEVS; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    unsigned maj, min;
    char name[32];
    unsigned long long rd, rdm, rsec, rms, wr, wrm, wsec;
    if (sscanf(l, " %u %u %31s %llu %llu %llu %llu %llu %llu %llu", &maj, &min, name, &rd, &rdm,
               &rsec, &rms, &wr, &wrm, &wsec) != 10)
      continue;
    if (!disk_wanted(name)) continue;
    struct host_dev *d = &s->disks[s->ndisks++];
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->a = rd, d->b = wr, d->c = rsec, d->d = wsec;
  }
}

static void read_netdev(const char *root, struct host_snap *s) {
  char text[65536];
  if (agent_read_file(root, "proc/net/dev", text, sizeof(text)) < 0) return;
  for (char *l = text; l && *l && s->nnets < HOST_MAX_DEVS; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    char *colon = strchr(l, ':');
    char *nl = strchr(l, '\n');
    if (!colon || (nl && colon > nl)) continue;
    char *b = l;
    while (*b == ' ') b++;
    size_t n = (size_t)(colon - b);
    if (n == 0 || n >= sizeof(s->nets[0].name) || (n == 2 && strncmp(b, "lo", 2) == 0)) continue;
    unsigned long long rxb, rxp, x, txb, txp;
    if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &rxb, &rxp, &x, &x,
               &x, &x, &x, &x, &txb, &txp) != 10)
      continue;
    struct host_dev *d = &s->nets[s->nnets++];
    memcpy(d->name, b, n);
    d->name[n] = '\0';
    d->a = rxb, d->b = txb, d->c = rxp, d->d = txp;
  }
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

/* Top-level zones (intel-rapl:N, the packages; AMD's kernels use the same
 * names) and their "dram" subzones. psys, where present, covers the
 * packages too, so it is left out to count nothing twice. */
static void read_rapl(const char *root, struct host_snap *s) {
  char dirpath[4096];
  snprintf(dirpath, sizeof(dirpath), "%s/sys/class/powercap", strcmp(root, "/") == 0 ? "" : root);
  DIR *d = opendir(dirpath);
  if (!d) return;
  struct dirent *e;
  char names[HOST_MAX_RAPL][64];
  size_t n = 0;
  while ((e = readdir(d)) && n < HOST_MAX_RAPL) {
    if (strncmp(e->d_name, "intel-rapl:", 11) != 0) continue;
    snprintf(names[n++], sizeof(names[0]), "%.63s", e->d_name);
  }
  closedir(d);
  if (n) qsort(names, n, sizeof(names[0]), cmp_name);
  for (size_t i = 0; i < n && s->nrapl < HOST_MAX_RAPL; i++) {
    char rel[512], text[128], zname[64];
    int colons = 0;
    for (const char *p = names[i]; *p; p++) colons += *p == ':';
    snprintf(rel, sizeof(rel), "sys/class/powercap/%.63s/name", names[i]);
    if (agent_read_file(root, rel, zname, sizeof(zname)) < 0) continue;
    zname[strcspn(zname, "\n")] = '\0';
    if (strcmp(zname, "psys") == 0) continue;
    if (colons == 2 && strcmp(zname, "dram") != 0) continue; /* core/uncore are inside the package */
    if (colons > 2) continue;
    snprintf(rel, sizeof(rel), "sys/class/powercap/%.63s/energy_uj", names[i]);
    if (agent_read_file(root, rel, text, sizeof(text)) < 0) {
      if (errno == EACCES || errno == EPERM) s->rapl_denied = true;
      continue;
    }
    struct host_rapl_zone *z = &s->rapl[s->nrapl];
    z->energy_uj = strtoull(text, NULL, 10);
    snprintf(rel, sizeof(rel), "sys/class/powercap/%.63s/max_energy_range_uj", names[i]);
    z->max_uj = agent_read_file(root, rel, text, sizeof(text)) < 0 ? 0 : strtoull(text, NULL, 10);
    snprintf(z->name, sizeof(z->name), "%.31s", zname);
    s->nrapl++;
  }
}

int host_read(const char *root, struct host_snap *s) {
  host_snap_release(s);
  int rc = read_stat(root, s);
  if (rc < 0) return rc;
  read_meminfo(root, s);
  char text[256];
  if (agent_read_file(root, "proc/loadavg", text, sizeof(text)) >= 0)
    sscanf(text, "%lf %lf %lf", &s->load[0], &s->load[1], &s->load[2]);
  if (agent_read_file(root, "proc/uptime", text, sizeof(text)) >= 0) sscanf(text, "%lf", &s->uptime_s);
  read_diskstats(root, s);
  read_netdev(root, s);
  read_rapl(root, s);
  return 0;
}

uint64_t host_rapl_delta(uint64_t prev, uint64_t cur, uint64_t max) {
  if (cur >= prev) return cur - prev;
  if (max < prev) return cur; /* no range known: count from the wrap */
  return max - prev + cur;
}

static double pct(uint64_t part, uint64_t all) { return all ? 100.0 * (double)part / (double)all : 0.0; }

/* Counters only grow; a smaller reading (a CPU hot-plugged off and on) is
 * treated as no time passed rather than a huge unsigned difference. */
static uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

int host_rates(const struct host_snap *prev, const struct host_snap *cur, struct host_rates *r) {
  memset(r, 0, sizeof(*r));
  r->core_pct = calloc(cur->ncores ? cur->ncores : 1, sizeof(double));
  if (!r->core_pct) return GROVE_ENOMEM;
  r->ncores = cur->ncores;
  uint64_t all = sub0(cpu_all(&cur->total), cpu_all(&prev->total));
  uint64_t busy = sub0(cpu_busy(&cur->total), cpu_busy(&prev->total));
  r->all_ticks = all;
  r->busy_ticks = busy > all ? all : busy;
  r->cpu_pct = pct(r->busy_ticks, all);
  r->steal_pct = pct(sub0(cur->total.steal, prev->total.steal), all);
  r->iowait_pct = pct(sub0(cur->total.iowait, prev->total.iowait), all);
  for (size_t i = 0; i < cur->ncores && i < prev->ncores; i++) {
    uint64_t a = sub0(cpu_all(&cur->cores[i]), cpu_all(&prev->cores[i]));
    uint64_t b = sub0(cpu_busy(&cur->cores[i]), cpu_busy(&prev->cores[i]));
    r->core_pct[i] = pct(b > a ? a : b, a);
  }
  if (cur->mem_total_kb)
    r->mem_used_pct = pct(sub0(cur->mem_total_kb, cur->mem_available_kb), cur->mem_total_kb);
  r->cpu_energy_j = -1;
  if (cur->nrapl && cur->nrapl == prev->nrapl) {
    uint64_t uj = 0;
    for (size_t i = 0; i < cur->nrapl; i++)
      uj += host_rapl_delta(prev->rapl[i].energy_uj, cur->rapl[i].energy_uj, cur->rapl[i].max_uj);
    r->cpu_energy_j = (double)uj / 1e6;
  }
  return 0;
}

static void read_line(const char *root, const char *rel, char *out, size_t cap) {
  if (agent_read_file(root, rel, out, cap) < 0) {
    out[0] = '\0';
    return;
  }
  out[strcspn(out, "\n")] = '\0';
}

static bool has_word(const char *hay, const char *w) {
  size_t n = strlen(w);
  for (const char *p = hay; (p = strstr(p, w)); p += n)
    if ((p == hay || isspace((unsigned char)p[-1])) && (p[n] == '\0' || isspace((unsigned char)p[n])))
      return true;
  return false;
}

void host_identify(const char *root, struct host_identity *id) {
  memset(id, 0, sizeof(*id));
  char vendor[128], product[128], *info = malloc(1 << 20);
  read_line(root, "sys/class/dmi/id/sys_vendor", vendor, sizeof(vendor));
  read_line(root, "sys/class/dmi/id/product_name", product, sizeof(product));
  bool flag = false;
  if (info && agent_read_file(root, "proc/cpuinfo", info, 1 << 20) >= 0) {
    for (char *l = info; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
      char *nl = strchr(l, '\n');
      if (nl) *nl = '\0';
      if (strncmp(l, "flags", 5) == 0 && has_word(l, "hypervisor")) flag = true;
      if (!id->cpu_model[0] && strncmp(l, "model name", 10) == 0 && strchr(l, ':')) {
        const char *v = strchr(l, ':') + 1;
        while (*v == ' ') v++;
        snprintf(id->cpu_model, sizeof(id->cpu_model), "%s", v);
      }
      if (nl) *nl = '\n';
    }
  }
  free(info);
  /* DMI vendors and products that name a hypervisor (systemd-detect-virt's
   * dmi_vendor_table in src/basic/virt.c lists the same ones). */
  static const char *const hv[] = {"KVM", "QEMU", "VMware", "VirtualBox", "innotek", "Xen",
                                   "Microsoft Corporation", "Amazon EC2", "Google", "Parallels",
                                   "Bochs", "OpenStack", "DigitalOcean", "Hetzner", "Alibaba Cloud"};
  const char *found = NULL;
  for (size_t i = 0; i < sizeof(hv) / sizeof(hv[0]) && !found; i++)
    if (strstr(vendor, hv[i]) || strstr(product, hv[i])) found = hv[i];
  id->vm = flag || found;
  if (id->vm) snprintf(id->hypervisor, sizeof(id->hypervisor), "%s", found ? found : "unknown");
  /* EC2 writes the instance type into product_name ("m5.large"); other
   * clouds' product names are kept when they look like a type (a '.' or
   * '-' joined word without spaces). */
  if (id->vm && product[0] && !strchr(product, ' ') && (strchr(product, '.') || strchr(product, '-')))
    snprintf(id->instance_type, sizeof(id->instance_type), "%s", product);
  char hn[256];
  read_line(root, "proc/sys/kernel/hostname", hn, sizeof(hn));
  if (!hn[0] && gethostname(hn, sizeof(hn)) != 0) hn[0] = '\0';
  hn[sizeof(hn) - 1] = '\0';
  snprintf(id->hostname, sizeof(id->hostname), "%s", hn);
}
