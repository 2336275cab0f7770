/* test_agent.c — grove-agent: collectors against fixture procfs/sysfs
 * trees written by each test, NVML through a fake library loaded by the
 * same dlopen path, power attribution, the payload and the spool. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../test.h"
#include "agent/expo.h"
#include "agent/gpu.h"
#include "agent/host.h"
#include "agent/power.h"
#include "agent/proc.h"
#include "agent/sample.h"
#include "agent/ship.h"
#include "core/error.h"
#include "core/util.h"

static char root[256];

static void rmroot(void) {
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove '%s'\n", root);
}

/* A fresh fixture tree; each test that makes one removes it last
 * (rmroot), as the runner ends a test's process with _exit. */
static void mkroot(void) {
  snprintf(root, sizeof(root), "/tmp/grove-agent-test-XXXXXX");
  CHECK(mkdtemp(root) != NULL);
}

/* Writes root/rel (folders made). */
static void put(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(const char *rel, const char *fmt, ...) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", root, rel);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  CHECK(mkdir_p(path, 0755) == 0);
  *slash = '/';
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
}

static void rm(const char *rel) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", root, rel);
  CHECK(unlink(path) == 0);
}

/* /proc/stat with two cores; every argument is a total over both. */
static void put_stat(unsigned long long user, unsigned long long idle, unsigned long long steal) {
  put("proc/stat",
      "cpu  %llu 0 0 %llu 0 0 0 %llu 0 0\n"
      "cpu0 %llu 0 0 %llu 0 0 0 %llu 0 0\n"
      "cpu1 %llu 0 0 %llu 0 0 0 %llu 0 0\n"
      "intr 1 2 3\nctxt 5\n",
      user, idle, steal, user, idle / 2, steal / 2, 0ULL, idle - idle / 2, steal - steal / 2);
}

/* /proc/PID/stat as the kernel writes it. */
static void put_proc_stat(int pid, const char *comm, unsigned long long utime, unsigned long long stime,
                          unsigned long long start, unsigned long long rss_pages) {
  char rel[64];
  snprintf(rel, sizeof(rel), "proc/%d/stat", pid);
  put(rel,
      "%d (%s) S 1 %d %d 0 -1 4194560 100 0 0 0 %llu %llu 0 0 20 0 3 0 %llu 123456789 %llu "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
      pid, comm, pid, pid, utime, stime, start, rss_pages);
}

/* One process: stat, status, io, cmdline, cgroup. */
static void put_proc(int pid, const char *comm, unsigned long long utime, unsigned long long stime,
                     unsigned long long start, unsigned long long rss_pages, unsigned uid) {
  char rel[64];
  put_proc_stat(pid, comm, utime, stime, start, rss_pages);
  snprintf(rel, sizeof(rel), "proc/%d/status", pid);
  put(rel, "Name:\t%s\nState:\tS (sleeping)\nUid:\t%u\t%u\t%u\t%u\n", comm, uid, uid, uid, uid);
  snprintf(rel, sizeof(rel), "proc/%d/io", pid);
  put(rel, "rchar: 1\nwchar: 2\nsyscr: %d\nsyscw: 5\nread_bytes: 4096\nwrite_bytes: 8192\n"
           "cancelled_write_bytes: 0\n", pid);
  snprintf(rel, sizeof(rel), "proc/%d/cmdline", pid);
  char cmd[128];
  int n = snprintf(cmd, sizeof(cmd), "/usr/bin/%s%c--flag%c", comm, 0, 0);
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", root, rel);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fwrite(cmd, 1, (size_t)n, f);
  fclose(f);
  snprintf(rel, sizeof(rel), "proc/%d/cgroup", pid);
  put(rel, "0::/system.slice/docker-%064d.scope\n", pid);
}

static void put_base(void) {
  put_stat(1000, 9000, 0);
  put("proc/meminfo", "MemTotal:       16000000 kB\nMemFree:  1000 kB\nMemAvailable:    4000000 kB\n"
                      "SwapTotal: 0 kB\nSwapFree: 0 kB\n");
  put("proc/loadavg", "1.50 0.75 0.25 2/300 4242\n");
  put("proc/uptime", "100.00 180.00\n");
  put("proc/diskstats", "   8       0 sda 100 0 2000 0 50 0 4000 0 0 0 0\n"
                        "   8       1 sda1 100 0 2000 0 50 0 4000 0 0 0 0\n"
                        "   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0\n"
                        " 259       0 nvme0n1 10 0 80 0 5 0 40 0 0 0 0\n"
                        " 259       1 nvme0n1p1 10 0 80 0 5 0 40 0 0 0 0\n");
  put("proc/net/dev", "Inter-|   Receive                                                |  Transmit\n"
                      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
                      "    lo: 999 9 0 0 0 0 0 0 999 9 0 0 0 0 0 0\n"
                      "  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n");
  put("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n");
}

/* ---- host */

TEST(host_cpu_steal_memory_and_devices_from_fixture) {
  mkroot();
  put_base();
  struct host_snap a, b;
  host_snap_init(&a);
  host_snap_init(&b);
  CHECK_EQ_INT(host_read(root, &a), 0);
  CHECK_EQ_INT(a.ncores, 2);
  CHECK_EQ_INT(a.ndisks, 2); /* sda and nvme0n1; no partitions, no loop */
  CHECK_EQ_STR(a.disks[0].name, "sda");
  CHECK_EQ_STR(a.disks[1].name, "nvme0n1");
  CHECK_EQ_INT(a.nnets, 1); /* lo left out */
  CHECK_EQ_STR(a.nets[0].name, "eth0");
  CHECK_EQ_INT(a.nets[0].a, 1000);
  CHECK_EQ_INT(a.nets[0].b, 2000);
  CHECK(fabs(a.load[0] - 1.5) < 1e-9);
  /* 1000 ticks later: 600 user, 300 idle, 100 steal */
  put_stat(1600, 9300, 100);
  CHECK_EQ_INT(host_read(root, &b), 0);
  struct host_rates r;
  CHECK_EQ_INT(host_rates(&a, &b, &r), 0);
  CHECK_EQ_INT(r.all_ticks, 1000);
  CHECK_EQ_INT(r.busy_ticks, 700); /* steal counts as busy for the guest's view */
  CHECK(fabs(r.cpu_pct - 70.0) < 1e-9);
  CHECK(fabs(r.steal_pct - 10.0) < 1e-9);
  CHECK(fabs(r.mem_used_pct - 75.0) < 1e-9);
  CHECK(fabs(r.core_pct[0] - (650.0 / 800.0) * 100) < 1e-9); /* cpu0: all user + half steal */
  CHECK(r.cpu_energy_j < 0); /* no RAPL in this tree */
  free(r.core_pct);
  host_snap_release(&a);
  host_snap_release(&b);
  rmroot();
}

TEST(host_without_proc_stat_is_an_error) {
  mkroot();
  struct host_snap a;
  host_snap_init(&a);
  CHECK_EQ_INT(host_read(root, &a), GROVE_EIO);
  host_snap_release(&a);
  rmroot();
}

static void put_rapl(const char *zone, const char *name, unsigned long long uj, unsigned long long max) {
  char rel[256];
  snprintf(rel, sizeof(rel), "sys/class/powercap/%s/name", zone);
  put(rel, "%s\n", name);
  snprintf(rel, sizeof(rel), "sys/class/powercap/%s/energy_uj", zone);
  put(rel, "%llu\n", uj);
  snprintf(rel, sizeof(rel), "sys/class/powercap/%s/max_energy_range_uj", zone);
  put(rel, "%llu\n", max);
}

TEST(rapl_delta_wraps_at_max_energy_range) {
  CHECK_EQ_INT(host_rapl_delta(100, 250, 1000), 150);
  CHECK_EQ_INT(host_rapl_delta(900, 50, 1000), 150); /* 900 → 1000, wrap, 0 → 50 */
  CHECK_EQ_INT(host_rapl_delta(5, 5, 1000), 0);
}

TEST(rapl_zones_sum_packages_and_dram_across_a_wrap) {
  mkroot();
  put_base();
  const unsigned long long max = 262143328850ULL; /* a real package's range */
  put_rapl("intel-rapl:0", "package-0", max - 1000000, max);
  put_rapl("intel-rapl:0:0", "core", 5, max);   /* inside the package: not added */
  put_rapl("intel-rapl:0:1", "dram", 1000000, 65712999613ULL);
  put_rapl("intel-rapl:1", "psys", 7, max);     /* covers the packages: not added */
  struct host_snap a, b;
  host_snap_init(&a);
  host_snap_init(&b);
  CHECK_EQ_INT(host_read(root, &a), 0);
  CHECK_EQ_INT(a.nrapl, 2);
  /* package wraps: 1 J to the top and 2 J after; dram 0.5 J */
  put_rapl("intel-rapl:0", "package-0", 2000000, max);
  put_rapl("intel-rapl:0:1", "dram", 1500000, 65712999613ULL);
  put_stat(1600, 9300, 0);
  CHECK_EQ_INT(host_read(root, &b), 0);
  struct host_rates r;
  CHECK_EQ_INT(host_rates(&a, &b, &r), 0);
  CHECK(fabs(r.cpu_energy_j - 3.5) < 1e-9);
  free(r.core_pct);
  host_snap_release(&a);
  host_snap_release(&b);
  rmroot();
}

TEST(vm_detection_from_dmi_and_cpuinfo) {
  mkroot();
  struct host_identity id;
  put("proc/cpuinfo", "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2\n");
  put("sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
  put("sys/class/dmi/id/product_name", "PowerEdge R650\n");
  host_identify(root, &id);
  CHECK(!id.vm);
  CHECK_EQ_STR(id.cpu_model, "Test CPU");
  put("sys/class/dmi/id/sys_vendor", "Amazon EC2\n");
  put("sys/class/dmi/id/product_name", "m5.large\n");
  host_identify(root, &id);
  CHECK(id.vm);
  CHECK_EQ_STR(id.hypervisor, "Amazon EC2");
  CHECK_EQ_STR(id.instance_type, "m5.large");
  /* no DMI at all, but the hypervisor CPUID flag */
  rm("sys/class/dmi/id/sys_vendor");
  rm("sys/class/dmi/id/product_name");
  put("proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu hypervisor sse2\n");
  host_identify(root, &id);
  CHECK(id.vm);
  CHECK_EQ_STR(id.instance_type, "");
  rmroot();
}

/* ---- processes */

TEST(proc_fields_comm_with_parens_user_and_container) {
  mkroot();
  put_base();
  put_proc(4242, "we(i)rd ) name", 10, 5, 50, 256, 1000);
  struct proc_table t;
  proc_table_init(&t);
  CHECK_EQ_INT(proc_scan(root, &t, 0), 0);
  CHECK_EQ_INT(t.n, 1);
  struct proc_info *p = &t.procs[0];
  CHECK_EQ_STR(p->name, "we(i)rd ) name");
  CHECK_EQ_INT(p->cpu_ticks, 15);
  CHECK_EQ_INT(p->start_ticks, 50);
  CHECK_EQ_INT(p->threads, 3);
  CHECK_EQ_INT(p->rss_bytes, 256 * t.page_size);
  CHECK_EQ_STR(p->user, "alice");
  CHECK_EQ_STR(p->command, "/usr/bin/we(i)rd ) name --flag");
  CHECK(p->io_known);
  CHECK_EQ_INT(p->io_read_bytes, 4096);
  CHECK_EQ_INT(p->io_ops, 4242 + 5);
  CHECK_EQ_INT(strlen(p->container_id), 64);
  CHECK(strstr(p->cgroup, "docker-") != NULL);
  proc_table_release(&t);
  rmroot();
}

TEST(proc_cpu_percent_from_tick_deltas) {
  mkroot();
  put_base();
  put_proc(10, "busy", 100, 0, 5, 1, 0);
  put_proc(11, "idle", 7, 0, 5, 1, 0);
  struct proc_table t;
  proc_table_init(&t);
  CHECK_EQ_INT(proc_scan(root, &t, 0), 0);
  put_proc(10, "busy", 150, 25, 5, 1, 0); /* +75 ticks */
  CHECK_EQ_INT(proc_scan(root, &t, 100), 0); /* one core ran 100 ticks */
  CHECK_EQ_INT(t.procs[0].delta_ticks, 75);
  CHECK(fabs(t.procs[0].cpu_pct - 75.0) < 1e-9);
  CHECK_EQ_INT(t.procs[1].delta_ticks, 0);
  proc_table_release(&t);
  rmroot();
}

TEST(proc_pid_reuse_is_a_new_process) {
  mkroot();
  put_base(); /* uptime 100 s: 10000 ticks at USER_HZ 100 */
  put_proc(77, "old", 5000, 0, 10, 1, 0);
  struct proc_table t;
  proc_table_init(&t);
  CHECK_EQ_INT(proc_scan(root, &t, 0), 0);
  /* pid 77 exits, the pid is reused by a process started after the scan
   * with fewer ticks: no underflow, and its ticks are all new */
  put("proc/uptime", "101.00 180.00\n");
  put_proc(77, "new", 30, 0, 100 * t.hz + 10, 1, 0);
  CHECK_EQ_INT(proc_scan(root, &t, 100), 0);
  CHECK_EQ_STR(t.procs[0].name, "new");
  CHECK_EQ_INT(t.procs[0].delta_ticks, 30);
  /* same pid, the same start: an ordinary delta */
  put_proc(77, "new", 40, 0, 100 * t.hz + 10, 1, 0);
  CHECK_EQ_INT(proc_scan(root, &t, 100), 0);
  CHECK_EQ_INT(t.procs[0].delta_ticks, 10);
  proc_table_release(&t);
  rmroot();
}

TEST(proc_vanishing_mid_read_is_left_out) {
  mkroot();
  put_base();
  put_proc(1, "init", 1, 1, 1, 1, 0);
  put_proc(2, "gone", 1, 1, 1, 1, 0);
  put_proc(3, "gone2", 1, 1, 1, 1, 0);
  put_proc(4, "kept", 1, 1, 1, 1, 0);
  rm("proc/2/status");  /* exited between stat and status */
  rm("proc/3/stat");    /* exited between readdir and stat */
  rm("proc/3/status");
  put("proc/5/placeholder", "x"); /* a folder with nothing in it left */
  struct proc_table t;
  proc_table_init(&t);
  CHECK_EQ_INT(proc_scan(root, &t, 0), 0);
  CHECK_EQ_INT(t.n, 2);
  CHECK_EQ_INT(t.procs[0].pid, 1);
  CHECK_EQ_INT(t.procs[1].pid, 4);
  proc_table_release(&t);
  rmroot();
}

TEST(proc_two_thousand_processes_and_top_n) {
  mkroot();
  put_base();
  for (int pid = 1; pid <= 2000; pid++) put_proc(pid, "w", 0, 0, 1, (unsigned long long)pid, 0);
  struct proc_table t;
  proc_table_init(&t);
  CHECK_EQ_INT(proc_scan(root, &t, 0), 0);
  for (int pid = 1; pid <= 2000; pid++)
    put_proc_stat(pid, "w", (unsigned long long)(pid % 97), 0, 1, (unsigned long long)pid);
  CHECK_EQ_INT(proc_scan(root, &t, 100), 0);
  CHECK_EQ_INT(t.n, 2000);
  size_t *idx = malloc(t.n * sizeof(*idx));
  CHECK_EQ_INT(proc_top(&t, PROC_BY_CPU, 3, idx), 3);
  /* 96 ticks: pids 96, 193, 290 …; ties by pid */
  CHECK_EQ_INT(t.procs[idx[0]].pid, 96);
  CHECK_EQ_INT(t.procs[idx[1]].pid, 193);
  CHECK_EQ_INT(proc_top(&t, PROC_BY_MEMORY, 2, idx), 2);
  CHECK_EQ_INT(t.procs[idx[0]].pid, 2000);
  CHECK_EQ_INT(proc_top(&t, PROC_BY_CPU, 0, idx), 2000);
  free(idx);
  proc_table_release(&t);
  rmroot();
}

/* ---- NVML */

TEST(nvml_fake_library_through_dlopen) {
  struct gpu *g;
  CHECK_EQ_INT(gpu_open(&g, FAKE_NVML_PATH), 0);
  struct gpu_dev d[GPU_MAX_DEVS];
  size_t n;
  CHECK_EQ_INT(gpu_read(g, d, GPU_MAX_DEVS, &n), 0);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_STR(d[0].name, "Fake H100");
  CHECK(fabs(d[0].util_pct - 70) < 1e-9);
  CHECK(d[0].power_known && fabs(d[0].power_w - 300) < 1e-9);
  CHECK(d[0].energy_known);
  CHECK_EQ_INT(d[0].energy_mj, 123456);
  CHECK_EQ_INT(d[0].nprocs, 2);
  CHECK_EQ_INT(d[0].procs[0].pid, 100);
  CHECK(fabs(d[0].procs[0].util_pct - 60) < 1e-9); /* mean of its samples */
  CHECK_EQ_INT(d[0].procs[0].mem_bytes, 1073741824);
  CHECK(!d[1].energy_known);
  CHECK_EQ_INT(d[1].nprocs, 1);
  CHECK_EQ_INT(d[1].procs[0].mem_bytes, 2147483648LL);
  gpu_close(g);
}

TEST(nvml_absent_is_no_gpu_not_an_error) {
  struct gpu *g = (struct gpu *)1;
  CHECK_EQ_INT(gpu_open(&g, "/nonexistent/libnvidia-ml.so.1"), GROVE_ENOENT);
  CHECK(g == NULL);
  /* a library without NVML's symbols */
  CHECK_EQ_INT(gpu_open(&g, "libz.so.1"), GROVE_ENOENT);
}

/* ---- power attribution */

static void fill_table(struct proc_table *t, size_t n, const int *pids, const uint64_t *ticks) {
  proc_table_init(t);
  t->procs = calloc(n, sizeof(*t->procs));
  t->n = n;
  for (size_t i = 0; i < n; i++) t->procs[i].pid = pids[i], t->procs[i].delta_ticks = ticks[i];
}

TEST(attribution_sums_to_measured_active_power) {
  int pids[] = {100, 200, 300, 400};
  uint64_t ticks[] = {50, 30, 20, 0};
  struct proc_table t;
  fill_table(&t, 4, pids, ticks);
  struct gpu *g;
  CHECK_EQ_INT(gpu_open(&g, FAKE_NVML_PATH), 0);
  struct gpu_dev d[GPU_MAX_DEVS];
  size_t n;
  gpu_read(g, d, GPU_MAX_DEVS, &n);
  gpu_close(g);
  struct power_cfg cfg = {.cpu_idle_w = 20, .gpu_idle_w = 50, .cpu_tdp_w = 0};
  struct power_state st = {0};
  struct power_result r;
  /* 500 J over 5 s: 100 W, 20 idle, 80 active */
  power_attribute(&cfg, &st, 5.0, 500.0, 0.5, 8, &t, d, n, &r);
  CHECK(!r.cpu_estimated);
  CHECK(fabs(r.cpu_w - 100) < 1e-9);
  CHECK(fabs(r.cpu_active_w - 80) < 1e-9);
  CHECK(fabs(r.gpu_w - 370) < 1e-9);
  CHECK(fabs(r.gpu_active_w - (250 + 20)) < 1e-9);
  double sum = 0;
  for (size_t i = 0; i < t.n; i++) sum += t.procs[i].power_w;
  CHECK(fabs(sum - (r.cpu_active_w + r.gpu_active_w)) < 1e-6);
  CHECK(fabs(r.unattributed_w) < 1e-6);
  /* pid 100: half the CPU ticks, 60 of 80 SM points on GPU 0 */
  CHECK(fabs(t.procs[0].power_w - (40 + 250 * 0.75)) < 1e-6);
  /* pid 300: GPU 1 has no utilisation samples: split by memory, all its */
  CHECK(fabs(t.procs[2].power_w - (16 + 20)) < 1e-6);
  CHECK_EQ_INT(t.procs[3].power_w, 0);
  proc_table_release(&t);
}

TEST(attribution_learns_idle_and_keeps_unattributed_apart) {
  int pids[] = {1};
  uint64_t ticks[] = {0};
  struct proc_table t;
  fill_table(&t, 1, pids, ticks);
  struct power_cfg cfg = {.cpu_idle_w = -1, .gpu_idle_w = -1};
  struct power_state st = {0};
  struct power_result r;
  power_attribute(&cfg, &st, 1.0, 30.0, 0.1, 4, &t, NULL, 0, &r); /* lowest so far: 30 */
  CHECK(fabs(r.cpu_idle_w - 30) < 1e-9);
  t.procs[0].delta_ticks = 10;
  power_attribute(&cfg, &st, 1.0, 45.0, 0.5, 4, &t, NULL, 0, &r);
  CHECK(fabs(r.cpu_idle_w - 30) < 1e-9);
  CHECK(fabs(t.procs[0].power_w - 15) < 1e-9);
  t.procs[0].delta_ticks = 0; /* nobody ran: active power is unattributed */
  power_attribute(&cfg, &st, 1.0, 40.0, 0.5, 4, &t, NULL, 0, &r);
  CHECK(fabs(r.unattributed_w - 10) < 1e-9);
  proc_table_release(&t);
}

TEST(attribution_without_counters_is_estimated) {
  int pids[] = {1, 2};
  uint64_t ticks[] = {3, 1};
  struct proc_table t;
  fill_table(&t, 2, pids, ticks);
  struct power_cfg cfg = {.cpu_idle_w = -1, .gpu_idle_w = -1, .cpu_tdp_w = 0};
  struct power_state st = {0};
  struct power_result r;
  power_attribute(&cfg, &st, 5.0, -1, 0.5, 4, &t, NULL, 0, &r);
  CHECK(r.cpu_estimated);
  double pmax = 4 * POWER_CCF_MAX_W, pmin = 4 * POWER_CCF_MIN_W;
  CHECK(fabs(r.cpu_w - (pmin + 0.5 * (pmax - pmin))) < 1e-9);
  CHECK(fabs(r.cpu_idle_w - pmin) < 1e-9);
  CHECK(fabs(t.procs[0].power_w + t.procs[1].power_w - r.cpu_active_w) < 1e-9);
  CHECK(fabs(t.procs[0].power_w - 3 * t.procs[1].power_w) < 1e-9);
  cfg.cpu_tdp_w = 100;
  power_attribute(&cfg, &st, 5.0, -1, 1.0, 4, &t, NULL, 0, &r);
  CHECK(fabs(r.cpu_w - 100) < 1e-9);
  proc_table_release(&t);
}

/* ---- the payload */

TEST(sample_payload_has_the_seed_shape) {
  mkroot();
  put_base();
  put("proc/cpuinfo", "flags\t\t: fpu hypervisor\n");
  put_rapl("intel-rapl:0", "package-0", 1000000, 262143328850ULL);
  put_proc(100, "python3", 10, 0, 1, 1000, 1000);
  put_proc(200, "nginx", 10, 0, 1, 10, 0);
  struct sampler_cfg cfg = {.root = root, .nvml_path = FAKE_NVML_PATH, .top = 1,
                            .order = PROC_BY_CPU, .agent_id = "a1",
                            .power = {.cpu_idle_w = 10, .gpu_idle_w = 0}};
  struct sampler *s;
  CHECK_EQ_INT(sampler_create(&s, &cfg), 0);
  CHECK(sampler_has_gpu(s));
  put_stat(1600, 9300, 0);
  put_proc(100, "python3", 60, 0, 1, 1000, 1000);
  put_rapl("intel-rapl:0", "package-0", 1000000 + 250000000ULL, 262143328850ULL); /* 250 J */
  struct buf b;
  buf_init(&b, 0);
  CHECK_EQ_INT(sampler_take(s, 5.0, 1700000000123LL, 7, &b, NULL), 0);
  json_error_t je;
  json_t *j = json_loads(b.data, 0, &je);
  CHECK(j != NULL);
  CHECK_EQ_STR(json_string_value(json_object_get(j, "timestamp")), "2023-11-14T22:13:20.123Z");
  CHECK_EQ_STR(json_string_value(json_object_get(j, "source_type")), "vm");
  CHECK_EQ_INT(json_integer_value(json_object_get(j, "seq")), 7);
  json_t *m = json_object_get(j, "metrics");
  const char *keys[] = {"cpu_usage", "memory_usage", "gpu_utilization", "power_consumption",
                        "total_cpu_usage", "total_memory_usage", "total_gpu_usage",
                        "total_power_consumption", "system_load_average"};
  for (size_t i = 0; i < ARRAY_LEN(keys); i++) CHECK(json_is_number(json_object_get(m, keys[i])));
  CHECK(fabs(json_number_value(json_object_get(m, "cpu_usage")) - 600.0 / 900.0 * 100) < 1e-3);
  CHECK(fabs(json_number_value(json_object_get(m, "gpu_utilization")) - 35) < 1e-6);
  /* 50 W CPU + 300 W + 70 W GPUs */
  CHECK(fabs(json_number_value(json_object_get(m, "power_consumption")) - 420) < 1e-6);
  json_t *procs = json_object_get(m, "processes");
  CHECK_EQ_INT(json_array_size(procs), 1); /* --top 1 */
  json_t *p = json_array_get(procs, 0);
  CHECK_EQ_STR(json_string_value(json_object_get(p, "process_name")), "python3");
  CHECK_EQ_STR(json_string_value(json_object_get(p, "user")), "alice");
  const char *pkeys[] = {"cpu_usage_percent", "memory_usage_mb", "gpu_utilization_percent",
                         "power_consumption_watts", "io_operations"};
  for (size_t i = 0; i < ARRAY_LEN(pkeys); i++) CHECK(json_is_number(json_object_get(p, pkeys[i])));
  CHECK(fabs(json_number_value(json_object_get(p, "gpu_utilization_percent")) - 60) < 1e-6);
  CHECK_EQ_INT(json_array_size(json_object_get(m, "gpus")), 2);
  CHECK(json_is_false(json_object_get(json_object_get(m, "power"), "cpu_estimated")));
  json_decref(j);
  buf_release(&b);
  sampler_destroy(s);
  rmroot();
}

/* ---- the Prometheus exposition (--listen) */

/* Every line of an exposition is a "# HELP"/"# TYPE" comment or
 * name{label="value",…} value, with only \\ \" \n escapes in values and a
 * number strtod reads whole (text format 0.0.4). Returns the samples. */
static size_t check_exposition(const char *page) {
  size_t samples = 0;
  for (const char *l = page; *l;) {
    const char *nl = strchr(l, '\n');
    CHECK(nl != NULL); /* every line ends with \n */
    if (*l == '#') {
      CHECK(strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0);
      l = nl + 1;
      continue;
    }
    const char *p = l;
    CHECK(*p == '_' || *p == ':' || ((*p | 32) >= 'a' && (*p | 32) <= 'z'));
    while (*p == '_' || *p == ':' || ((*p | 32) >= 'a' && (*p | 32) <= 'z') || (*p >= '0' && *p <= '9'))
      p++;
    if (*p == '{') {
      p++;
      while (*p != '}') {
        while (*p == '_' || ((*p | 32) >= 'a' && (*p | 32) <= 'z') || (*p >= '0' && *p <= '9')) p++;
        CHECK(p[0] == '=' && p[1] == '"');
        for (p += 2; *p != '"'; p++) {
          CHECK(*p != '\n' && *p != '\0');
          if (*p == '\\') {
            p++;
            CHECK(*p == '\\' || *p == '"' || *p == 'n');
          }
        }
        p++;
        if (*p == ',') p++;
      }
      p++;
    }
    CHECK(*p == ' ');
    char *end;
    strtod(p + 1, &end);
    CHECK(end == nl);
    samples++;
    l = nl + 1;
  }
  return samples;
}

TEST(exposition_label_values_are_escaped_and_utf8) {
  struct buf b;
  buf_init(&b, 0);
  const char in[] = "a\\b\"c\nd\x01\xff\xc3\xa9";
  CHECK_EQ_INT(expo_label_value(&b, in, sizeof in - 1), 0);
  CHECK_EQ_STR(b.data, "a\\\\b\\\"c\\nd\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9");
  buf_release(&b);
}

TEST(exposition_of_a_sample_parses_and_matches_the_payload) {
  mkroot();
  put_base();
  put_rapl("intel-rapl:0", "package-0", 1000000, 262143328850ULL);
  put_proc(100, "we\"ir\\d\xff", 10, 0, 1, 1000, 1000);
  put_proc(200, "nginx", 10, 0, 1, 10, 0);
  struct sampler_cfg cfg = {.root = root, .nvml_path = FAKE_NVML_PATH, .order = PROC_BY_CPU,
                            .agent_id = "a1", .power = {.cpu_idle_w = 10, .gpu_idle_w = 0}};
  struct sampler *s;
  CHECK_EQ_INT(sampler_create(&s, &cfg), 0);
  put_stat(1600, 9300, 0);
  put_proc(100, "we\"ir\\d\xff", 60, 0, 1, 1000, 1000);
  put_rapl("intel-rapl:0", "package-0", 1000000 + 250000000ULL, 262143328850ULL); /* 250 J */
  struct buf json, page;
  buf_init(&json, 0);
  buf_init(&page, 0);
  CHECK_EQ_INT(sampler_take(s, 5.0, 1700000000123LL, 7, &json, &page), 0);
  struct expo_agent self = {.sent = 3, .samples = 4, .shipping = 1};
  CHECK_EQ_INT(expo_agent(&page, &self), 0);
  CHECK(check_exposition(page.data) > 40);
  /* the payload's figures, in base units */
  CHECK(strstr(page.data, "\ngrove_agent_rapl_energy_joules_total{zone=\"package-0\"} 251\n"));
  CHECK(strstr(page.data, "\ngrove_agent_power_watts{component=\"cpu\",part=\"active\"} 40\n"));
  CHECK(strstr(page.data, "\ngrove_agent_gpu_utilization_ratio{gpu=\"0\","));
  CHECK(strstr(page.data, "\ngrove_agent_process_cpu_seconds_total{pid=\"100\",name=\"we\\\"ir\\\\d"
                          "\xef\xbf\xbd\",user=\"alice\"} 0.6\n"));
  CHECK(strstr(page.data, "\ngrove_agent_process_resident_memory_bytes{pid=\"200\""));
  CHECK(strstr(page.data, "\ngrove_agent_sample_timestamp_seconds 1700000000.123\n"));
  CHECK(strstr(page.data, "\ngrove_agent_batches_sent_total 3\n"));
  /* counters are named _total and typed counter */
  CHECK(strstr(page.data, "# TYPE grove_agent_cpu_seconds_total counter\n"));
  CHECK(strstr(page.data, "# TYPE grove_agent_process_resident_memory_bytes gauge\n"));
  buf_release(&json);
  buf_release(&page);
  sampler_destroy(s);
  rmroot();
}

/* ---- the spool */

static size_t count_batches(const char *dir) {
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  size_t n = 0, len;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if ((len = strlen(e->d_name)) > 8 && strcmp(e->d_name + len - 8, ".json.gz") == 0)
      n++;
  closedir(d);
  return n;
}

TEST(spool_is_bounded_drops_oldest_and_numbers_survive_restart) {
  mkroot();
  char dir[512], err[256];
  snprintf(dir, sizeof(dir), "%s/spool", root);
  struct ship_cfg cfg = {.spool_dir = dir, .spool_max = 1000};
  struct ship *s;
  CHECK_EQ_INT(ship_open(&s, &cfg, err, sizeof(err)), 0);
  char id[80];
  snprintf(id, sizeof(id), "%s", ship_agent_id(s));
  CHECK_EQ_INT(strlen(id), 16);
  CHECK_EQ_INT(ship_next_seq(s), 1);
  char json[400];
  /* incompressible-ish payloads of ~300 bytes gzip'ed */
  for (int i = 0; i < 10; i++) {
    char hex[301];
    rand_hex(hex, sizeof(hex));
    snprintf(json, sizeof(json), "{\"n\":%d,\"x\":\"%s\"}", i, hex);
    CHECK_EQ_INT(ship_enqueue(s, json, strlen(json)), 0);
  }
  struct ship_stats st;
  ship_get_stats(s, &st);
  CHECK(st.spooled_bytes <= 1000);
  CHECK(st.dropped >= 1);
  CHECK_EQ_INT(st.spooled_batches + st.dropped, 10);
  CHECK_EQ_INT(count_batches(dir), st.spooled_batches);
  ship_close(s);
  /* a crash left a half-written temporary: removed, never sent */
  char rel[64];
  snprintf(rel, sizeof(rel), "spool/%020d.json.gz.tmp", 11);
  put(rel, "partial");
  CHECK_EQ_INT(ship_open(&s, &cfg, err, sizeof(err)), 0);
  CHECK_EQ_STR(ship_agent_id(s), id);
  CHECK_EQ_INT(ship_next_seq(s), 11);
  ship_get_stats(s, &st);
  CHECK_EQ_INT(count_batches(dir), st.spooled_batches);
  ship_close(s);
  /* even with the spool emptied, numbers do not start again */
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -f %s/*.json.gz", dir);
  CHECK(system(cmd) == 0);
  CHECK_EQ_INT(ship_open(&s, &cfg, err, sizeof(err)), 0);
  CHECK_EQ_INT(ship_next_seq(s), 11);
  ship_close(s);
  rmroot();
}

static const struct test tests[] = {
    T(host_cpu_steal_memory_and_devices_from_fixture),
    T(host_without_proc_stat_is_an_error),
    T(rapl_delta_wraps_at_max_energy_range),
    T(rapl_zones_sum_packages_and_dram_across_a_wrap),
    T(vm_detection_from_dmi_and_cpuinfo),
    T(proc_fields_comm_with_parens_user_and_container),
    T(exposition_label_values_are_escaped_and_utf8),
    T(exposition_of_a_sample_parses_and_matches_the_payload),
    T(proc_cpu_percent_from_tick_deltas),
    T(proc_pid_reuse_is_a_new_process),
    T(proc_vanishing_mid_read_is_left_out),
    T(proc_two_thousand_processes_and_top_n),
    T(nvml_fake_library_through_dlopen),
    T(nvml_absent_is_no_gpu_not_an_error),
    T(attribution_sums_to_measured_active_power),
    T(attribution_learns_idle_and_keeps_unattributed_apart),
    T(attribution_without_counters_is_estimated),
    T(sample_payload_has_the_seed_shape),
    T(spool_is_bounded_drops_oldest_and_numbers_survive_restart),
};

TEST_MAIN(tests)
