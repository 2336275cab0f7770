/* proc.c — the process collector (see proc.h). */
#include "agent/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/host.h"
#include "core/array.h"
#include "core/error.h"

void proc_table_init(struct proc_table *t) {
  memset(t, 0, sizeof(*t));
  long ps = sysconf(_SC_PAGESIZE);
  long hz = sysconf(_SC_CLK_TCK);
  t->page_size = ps > 0 ? (uint64_t)ps : 4096;
  t->hz = hz > 0 ? (uint64_t)hz : 100;
}

void proc_table_release(struct proc_table *t) {
  free(t->procs);
  free(t->users);
  memset(t, 0, sizeof(*t));
}

static void load_users(const char *root, struct proc_table *t) {
  t->users_loaded = true;
  size_t cap = 1 << 20;
  char *text = malloc(cap);
  if (!text) return;
  if (agent_read_file(root, "etc/passwd", text, cap) < 0) goto out;
  size_t n = 0;
  for (const char *p = text; *p; p++) n += *p == '\n';
  t->users = calloc(n + 1, sizeof(*t->users));
  if (!t->users) goto out;
  char *save = NULL;
  for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(l, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || t->nusers > n) continue;
    size_t len = (size_t)(c1 - l);
    if (len == 0 || len >= sizeof(t->users[0].name)) continue;
    struct proc_user *u = &t->users[t->nusers++];
    memcpy(u->name, l, len);
    u->name[len] = '\0';
    u->uid = (uint32_t)strtoul(c2 + 1, NULL, 10);
  }
out:
  free(text);
}

static void user_name(const struct proc_table *t, uint32_t uid, char out[32]) {
  for (size_t i = 0; i < t->nusers; i++)
    if (t->users[i].uid == uid) {
      snprintf(out, 32, "%s", t->users[i].name);
      return;
    }
  snprintf(out, 32, "%u", uid);
}

/* Parses /proc/PID/stat. Returns false when it is not a stat line. */
static bool parse_stat(char *text, struct proc_info *p, uint64_t page_size) {
  char *lp = strchr(text, '(');
  char *rp = strrchr(text, ')'); /* comm may hold ')' itself: the last one ends it */
  if (!lp || !rp || rp < lp) return false;
  size_t n = (size_t)(rp - lp - 1);
  if (n >= sizeof(p->name)) n = sizeof(p->name) - 1;
  memcpy(p->name, lp + 1, n);
  p->name[n] = '\0';
  /* fields from 3 (state) on */
  char *save = NULL;
  int field = 3;
  unsigned long long v;
  for (char *f = strtok_r(rp + 1, " \n", &save); f; f = strtok_r(NULL, " \n", &save), field++) {
    v = strtoull(f, NULL, 10);
    switch (field) {
    case 4: p->ppid = (int)v; break;
    case 14: p->cpu_ticks = v; break;
    case 15: p->cpu_ticks += v; break;
    case 20: p->threads = (uint32_t)v; break;
    case 22: p->start_ticks = v; break;
    case 24: p->rss_bytes = v * page_size; return true;
    default: break;
    }
  }
  return false;
}

static bool is_hex64(const char *s) {
  for (int i = 0; i < 64; i++)
    if (!isxdigit((unsigned char)s[i])) return false;
  return !isxdigit((unsigned char)s[64]);
}

/* Docker (".../docker-<id>.scope", "/docker/<id>"), containerd, CRI-O and
 * podman ("libpod-<id>.scope") all name the container by a 64-hex id. */
static void container_of(const char *cg, char out[65]) {
  out[0] = '\0';
  for (const char *p = cg; *p; p++) {
    if ((p == cg || !isxdigit((unsigned char)p[-1])) && strlen(p) >= 64 && is_hex64(p)) {
      memcpy(out, p, 64);
      out[64] = '\0';
      return;
    }
  }
}

static void parse_cgroup(const char *text, struct proc_info *p) {
  const char *first = NULL;
  for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    const char *path = strchr(l, ':');
    path = path ? strchr(path + 1, ':') : NULL;
    if (!path) continue;
    if (!first) first = path + 1;
    if (strncmp(l, "0::", 3) == 0) {
      first = path + 1;
      break;
    }
  }
  if (!first) return;
  size_t n = strcspn(first, "\n");
  if (n >= sizeof(p->cgroup)) n = sizeof(p->cgroup) - 1;
  memcpy(p->cgroup, first, n);
  p->cgroup[n] = '\0';
  container_of(p->cgroup, p->container_id);
}

/* Reads one process. Returns 1 when filled, 0 when it vanished or is not
 * a process, or GROVE_ENOMEM. */
static int read_proc(const char *root, struct proc_table *t, int pid, struct proc_info *p) {
  char rel[64], text[4096];
  memset(p, 0, sizeof(*p));
  p->pid = pid;
  snprintf(rel, sizeof(rel), "proc/%d/stat", pid);
  if (agent_read_file(root, rel, text, sizeof(text)) <= 0) return 0;
  if (!parse_stat(text, p, t->page_size)) return 0;
  snprintf(rel, sizeof(rel), "proc/%d/status", pid);
  if (agent_read_file(root, rel, text, sizeof(text)) <= 0) return 0; /* gone since stat */
  const char *u = strstr(text, "\nUid:");
  if (!u) return 0;
  p->uid = (uint32_t)strtoul(u + 5, NULL, 10);
  user_name(t, p->uid, p->user);
  snprintf(rel, sizeof(rel), "proc/%d/io", pid);
  if (agent_read_file(root, rel, text, sizeof(text)) > 0) {
    unsigned long long v, cr = 0, cw = 0;
    for (char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
      if (sscanf(l, "read_bytes: %llu", &v) == 1) p->io_read_bytes = v;
      else if (sscanf(l, "write_bytes: %llu", &v) == 1) p->io_write_bytes = v;
      else if (sscanf(l, "syscr: %llu", &v) == 1) cr = v;
      else if (sscanf(l, "syscw: %llu", &v) == 1) cw = v;
    }
    p->io_ops = cr + cw;
    p->io_known = true;
  } else if (errno == ENOENT || errno == ESRCH) {
    return 0;
  }
  snprintf(rel, sizeof(rel), "proc/%d/cmdline", pid);
  long n = agent_read_file(root, rel, p->command, sizeof(p->command));
  if (n < 0 && (errno == ENOENT || errno == ESRCH)) return 0;
  for (long i = 0; i < n; i++)
    if (p->command[i] == '\0') p->command[i] = ' ';
  while (n > 0 && p->command[n - 1] == ' ') p->command[--n] = '\0';
  if (n <= 0) snprintf(p->command, sizeof(p->command), "[%s]", p->name); /* kernel threads */
  snprintf(rel, sizeof(rel), "proc/%d/cgroup", pid);
  if (agent_read_file(root, rel, text, sizeof(text)) > 0) parse_cgroup(text, p);
  return 1;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static const struct proc_info *find_prev(const struct proc_table *t, int pid) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t->procs[mid].pid == pid) return &t->procs[mid];
    if (t->procs[mid].pid < pid) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

int proc_scan(const char *root, struct proc_table *t, uint64_t elapsed_core_ticks) {
  if (!t->users_loaded) load_users(root, t);
  char dirpath[4096];
  snprintf(dirpath, sizeof(dirpath), "%s/proc", strcmp(root, "/") == 0 ? "" : root);
  DIR *d = opendir(dirpath);
  if (!d) return GROVE_EIO;
  int rc = GROVE_ENOMEM;
  int *pids = NULL;
  size_t npids = 0, cap = 0;
  struct proc_info *out = NULL;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    if (ARRAY_GROW(pids, cap, npids + 1, 512, ARRAY_NOMAX)) goto out;
    pids[npids++] = atoi(e->d_name);
  }
  if (npids) qsort(pids, npids, sizeof(*pids), cmp_int);
  out = malloc((npids ? npids : 1) * sizeof(*out));
  if (!out) goto out;
  char text[128];
  uint64_t uptime = 0;
  if (agent_read_file(root, "proc/uptime", text, sizeof(text)) > 0)
    uptime = (uint64_t)(strtod(text, NULL) * (double)t->hz);
  size_t n = 0;
  for (size_t i = 0; i < npids; i++) {
    struct proc_info *p = &out[n];
    if (read_proc(root, t, pids[i], p) <= 0) continue; /* vanished mid-read */
    const struct proc_info *old = find_prev(t, p->pid);
    if (old && old->start_ticks == p->start_ticks) {
      p->delta_ticks = p->cpu_ticks > old->cpu_ticks ? p->cpu_ticks - old->cpu_ticks : 0;
      p->io_ops_delta = p->io_ops > old->io_ops ? p->io_ops - old->io_ops : 0;
    } else if (t->scanned && p->start_ticks >= t->uptime_ticks) {
      /* new since the last scan (or a reused pid): all its time is new */
      p->delta_ticks = p->cpu_ticks;
      p->io_ops_delta = p->io_ops;
    }
    if (elapsed_core_ticks)
      p->cpu_pct = 100.0 * (double)p->delta_ticks / (double)elapsed_core_ticks;
    n++;
  }
  free(t->procs);
  t->procs = out;
  out = NULL;
  t->n = n;
  t->scanned = true;
  t->uptime_ticks = uptime;
  rc = 0;
out:
  closedir(d);
  free(pids);
  free(out);
  return rc;
}

int proc_order_parse(const char *s, enum proc_order *out) {
  static const char *const names[] = {"cpu", "memory", "power", "io"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (enum proc_order)i;
      return 0;
    }
  return GROVE_EINVAL;
}

struct sort_ctx {
  const struct proc_table *t;
  enum proc_order o;
};

static double measure(const struct proc_info *p, enum proc_order o) {
  switch (o) {
  case PROC_BY_MEMORY: return (double)p->rss_bytes;
  case PROC_BY_POWER: return p->power_w;
  case PROC_BY_IO: return (double)p->io_ops_delta;
  default: return (double)p->delta_ticks + p->gpu_util_pct;
  }
}

static int cmp_measure(const void *a, const void *b, void *arg) {
  const struct sort_ctx *c = arg;
  const struct proc_info *x = &c->t->procs[*(const size_t *)a];
  const struct proc_info *y = &c->t->procs[*(const size_t *)b];
  double mx = measure(x, c->o), my = measure(y, c->o);
  if (mx != my) return mx > my ? -1 : 1;
  return (x->pid > y->pid) - (x->pid < y->pid);
}

size_t proc_top(const struct proc_table *t, enum proc_order order, size_t top, size_t *idx) {
  for (size_t i = 0; i < t->n; i++) idx[i] = i;
  struct sort_ctx c = {t, order};
  if (t->n) qsort_r(idx, t->n, sizeof(*idx), cmp_measure, &c);
  return top && top < t->n ? top : t->n;
}
