/* host.h — grove-agent's host collectors: CPU (per core and total, with
 * steal), memory, load, disk IO, network, RAPL energy and VM detection,
 * read from procfs and sysfs under a root folder ("/" in production, a
 * fixture tree in tests).
 *
 * Sources (Linux Documentation/filesystems/proc.rst): /proc/stat "cpu"
 * lines in USER_HZ ticks (user nice system idle iowait irq softirq steal;
 * guest time is already inside user), /proc/meminfo in KiB, /proc/loadavg,
 * /proc/diskstats (Documentation/admin-guide/iostats.rst: sectors are 512
 * bytes whatever the device's own sector size), /proc/net/dev; RAPL from
 * /sys/class/powercap/intel-rapl:* (Documentation/power/powercap/
 * powercap.rst: energy_uj in microjoules, wrapping to 0 after
 * max_energy_range_uj); VM detection from /proc/cpuinfo's "hypervisor"
 * flag (CPUID leaf 1 ECX bit 31) and /sys/class/dmi/id.
 *
 * A struct host_snap is one reading; rates come from two readings
 * (host_rates). Not thread-safe: one collector thread owns its snaps. */
#ifndef GROVE_AGENT_HOST_H
#define GROVE_AGENT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOST_MAX_CPUS 1024
#define HOST_MAX_DEVS 64
#define HOST_MAX_RAPL 16

struct host_cpu {
  uint64_t user, nice, system, idle, iowait, irq, softirq, steal; /* ticks */
};

struct host_dev {
  char name[32];
  uint64_t a, b, c, d; /* disks: reads, writes, sectors read, written;
                          nets: rx bytes, tx bytes, rx packets, tx packets */
};

struct host_rapl_zone {
  char name[32];           /* "package-0", "dram" … */
  uint64_t energy_uj;      /* counter */
  uint64_t max_uj;         /* max_energy_range_uj: where it wraps */
};

struct host_snap {
  struct host_cpu total;
  struct host_cpu *cores; /* ncores entries, owned */
  size_t ncores;
  uint64_t mem_total_kb, mem_available_kb, swap_total_kb, swap_free_kb;
  double load[3];
  struct host_dev disks[HOST_MAX_DEVS];
  size_t ndisks;
  struct host_dev nets[HOST_MAX_DEVS];
  size_t nnets;
  struct host_rapl_zone rapl[HOST_MAX_RAPL];
  size_t nrapl;
  bool rapl_denied; /* a zone exists but its energy_uj is unreadable */
  double uptime_s;  /* /proc/uptime */
};

/* What a machine is: source_type "host" or "vm" for the push payload. */
struct host_identity {
  bool vm;
  char hypervisor[64];    /* DMI sys_vendor / product_name when a VM, e.g. "KVM", "Amazon EC2" */
  char instance_type[64]; /* cloud instance type from DMI product_name where present ("m5.large") */
  char hostname[256];
  char cpu_model[128];
};

void host_snap_init(struct host_snap *s);
void host_snap_release(struct host_snap *s);
/* Reads every source under root into s (its previous contents replaced).
 * Returns 0, or GROVE_EIO when /proc/stat cannot be read (without it
 * nothing is worth sending); other sources missing leave their fields 0. */
int host_read(const char *root, struct host_snap *s);

/* Rates between two readings. elapsed_s: seconds between them (> 0). */
struct host_rates {
  double cpu_pct;       /* busy / all ticks × 100, 0–100 */
  double steal_pct;
  double iowait_pct;
  double *core_pct;     /* ncores entries, owned by the caller of host_rates */
  size_t ncores;
  double mem_used_pct;  /* (total − available) / total × 100 */
  uint64_t busy_ticks;  /* all cores, for process shares */
  uint64_t all_ticks;   /* all cores */
  double cpu_energy_j;  /* RAPL energy used between the readings, wraps handled; < 0: none */
};
/* OUT: r (r->core_pct allocated; free it with free()). Returns 0 or
 * GROVE_ENOMEM. */
int host_rates(const struct host_snap *prev, const struct host_snap *cur, struct host_rates *r);
/* Energy delta of one RAPL counter in µJ: cur − prev, or, when the counter
 * wrapped (cur < prev), max − prev + cur (the counter counts 0..max). */
uint64_t host_rapl_delta(uint64_t prev, uint64_t cur, uint64_t max);

/* Reads DMI and cpuinfo under root. Never fails: unknown fields stay "". */
void host_identify(const char *root, struct host_identity *id);

/* Reads root/rel into out (cap bytes, NUL-terminated, truncated). Returns
 * the length or -1 (errno set) — shared by the agent's collectors. */
long agent_read_file(const char *root, const char *rel, char *out, size_t cap);

#endif
