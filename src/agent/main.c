/* main.c — grove-agent: samples this machine every interval and ships
 * the samples to a Grove server (docs/agent.md). */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/expo.h"
#include "agent/listen.h"
#include "agent/sample.h"
#include "agent/ship.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

struct agent_cfg {
  char *server, *key, *spool, *root, *nvml, *top_by, *agent_id, *ca_file, *log_level, *listen;
  uint64_t interval_ms, timeout_ms, spool_max;
  long long top, cpu_idle_w, gpu_idle_w, cpu_tdp_w;
  bool once, no_gpu, log_json;
};

static const struct cfg_opt agent_opts[] = {
    CFG_OPT(struct agent_cfg, "server", CFG_STR, server, "", "Grove server URL (http:// or https://); empty: spool only, or scrape only with --listen"),
    CFG_OPT(struct agent_cfg, "listen", CFG_STR, listen, "", "serve the latest sample for a Prometheus scrape at http://ADDR/metrics (\"127.0.0.1:9101\", \":9101\"); empty: off"),
    CFG_OPT(struct agent_cfg, "key", CFG_STR, key, "", "API key sent as X-API-Key (prefer the file or GROVE_KEY to a flag)"),
    CFG_OPT(struct agent_cfg, "interval", CFG_MS, interval_ms, "5s", "time between samples"),
    CFG_OPT(struct agent_cfg, "timeout", CFG_MS, timeout_ms, "10s", "limit for one request to the server"),
    CFG_OPT(struct agent_cfg, "spool", CFG_STR, spool, "/var/lib/grove-agent/spool", "folder for batches not yet sent"),
    CFG_OPT(struct agent_cfg, "spool-max", CFG_SIZE, spool_max, "64m", "spool bound in bytes: the oldest batches are dropped past it"),
    CFG_OPT(struct agent_cfg, "top", CFG_INT, top, "0", "processes per sample: 0 every process, else the top N"),
    CFG_OPT(struct agent_cfg, "top-by", CFG_STR, top_by, "cpu", "measure for --top: cpu, memory, power or io"),
    CFG_OPT(struct agent_cfg, "root", CFG_STR, root, "/", "root under which proc/ and sys/ are read (tests, containers)"),
    CFG_OPT(struct agent_cfg, "nvml", CFG_STR, nvml, "libnvidia-ml.so.1", "NVML library for GPU metrics (absent: no GPU metrics)"),
    CFG_OPT(struct agent_cfg, "no-gpu", CFG_BOOL, no_gpu, "false", "do not load NVML"),
    CFG_OPT(struct agent_cfg, "cpu-idle-watts", CFG_INT, cpu_idle_w, "-1", "CPU idle power in W; -1: the lowest measured"),
    CFG_OPT(struct agent_cfg, "gpu-idle-watts", CFG_INT, gpu_idle_w, "-1", "idle power of each GPU in W; -1: the lowest measured"),
    CFG_OPT(struct agent_cfg, "cpu-tdp-watts", CFG_INT, cpu_tdp_w, "0", "CPU package power at full load for the estimate without RAPL; 0: 3.5 W a vCPU"),
    CFG_OPT(struct agent_cfg, "agent-id", CFG_STR, agent_id, "", "this agent's id in Idempotency-Key; empty: made once, kept in the spool"),
    CFG_OPT(struct agent_cfg, "ca-file", CFG_STR, ca_file, "", "CA bundle for https (empty: the system's)"),
    CFG_OPT(struct agent_cfg, "once", CFG_BOOL, once, "false", "print one sample as JSON on stdout and exit"),
    CFG_OPT(struct agent_cfg, "log-level", CFG_STR, log_level, "info", "debug, info, warn or error"),
    CFG_OPT(struct agent_cfg, "log-json", CFG_BOOL, log_json, "false", "log one JSON object a line"),
};

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static void usage(FILE *f, struct cfg_section *sec) {
  fprintf(f, "usage: grove-agent --server URL --key KEY [options]\n"
             "       grove-agent --once [options]\n\n"
             "Samples this machine's CPU, memory, disks, network, GPUs, power and\n"
             "processes every interval and pushes them to POST {server}/api/monitoring/push-metrics.\n"
             "Options also come from a file (--config FILE or GROVE_CONFIG, lines \"name = value\")\n"
             "and GROVE_* variables (GROVE_SERVER, GROVE_KEY …); flags win.\n\n");
  cfg_print_help(f, sec, 1);
}

static void sleep_ms(uint64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (!stopping && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int main(int argc, char **argv) {
  struct agent_cfg cfg;
  memset(&cfg, 0, sizeof(cfg));
  struct cfg_section sec = {"grove-agent", agent_opts, ARRAY_LEN(agent_opts), &cfg};
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, &sec);
      return 0;
    }
  char err[256];
  int status = 2;
  struct sampler *smp = NULL;
  struct ship *shp = NULL;
  struct listener *lis = NULL;
  struct buf out, page;
  buf_init(&out, 0);
  buf_init(&page, 0);
  if (cfg_load(&sec, 1, argc - 1, argv + 1, err, sizeof(err)) != 0) {
    fprintf(stderr, "grove-agent: %s (see --help)\n", err);
    goto done;
  }
  int lvl = log_level_parse(cfg.log_level);
  if (lvl < 0) {
    fprintf(stderr, "grove-agent: bad value '%s' for '--log-level'\n", cfg.log_level);
    goto done;
  }
  log_setup((enum log_level)lvl, cfg.log_json, 2);
  struct sampler_cfg sc = {.root = cfg.root, .nvml_path = cfg.nvml, .no_gpu = cfg.no_gpu,
                           .top = cfg.top > 0 ? (size_t)cfg.top : 0};
  if (proc_order_parse(cfg.top_by, &sc.order) != 0) {
    fprintf(stderr, "grove-agent: bad value '%s' for '--top-by' (cpu, memory, power, io)\n", cfg.top_by);
    goto done;
  }
  if (cfg.interval_ms < 100) {
    fprintf(stderr, "grove-agent: '--interval' below 100ms\n");
    goto done;
  }
  /* Ship (push, or spool while there is no server) unless the agent only
   * serves scrapes. */
  bool shipping = *cfg.server || !*cfg.listen;
  if (!cfg.once && !*cfg.server && shipping)
    log_warn(NULL, "no server given: samples only spool", "spool=%s", cfg.spool);
  sc.power.cpu_idle_w = (double)cfg.cpu_idle_w;
  sc.power.gpu_idle_w = (double)cfg.gpu_idle_w;
  sc.power.cpu_tdp_w = (double)cfg.cpu_tdp_w;
  status = 1;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
    fprintf(stderr, "grove-agent: cannot initialise libcurl\n");
    goto done;
  }
  if (!cfg.once && shipping) {
    struct ship_cfg shc = {.server = cfg.server, .key = cfg.key, .spool_dir = cfg.spool,
                           .spool_max = cfg.spool_max, .timeout_ms = cfg.timeout_ms,
                           .ca_file = cfg.ca_file, .agent_id = cfg.agent_id};
    if (ship_open(&shp, &shc, err, sizeof(err)) != 0) {
      log_error(NULL, "cannot open spool", "error=\"%s\"", err);
      goto done;
    }
    sc.agent_id = ship_agent_id(shp);
  } else {
    sc.agent_id = *cfg.agent_id ? cfg.agent_id : cfg.once ? "once" : "scrape";
  }
  int rc = sampler_create(&smp, &sc);
  if (rc < 0) {
    log_error(NULL, "cannot read the machine", "root=%s error=\"%s\"", cfg.root, grove_strerror(rc));
    goto done;
  }
  uint64_t first_ns = clock_mono_ns();
  if (cfg.once) {
    sleep_ms(cfg.interval_ms < 1000 ? cfg.interval_ms : 1000); /* rates need an interval */
    double el = (double)(clock_mono_ns() - first_ns) / 1e9;
    rc = sampler_take(smp, el, (int64_t)clock_wall_ms(), 0, &out, NULL);
    if (rc == 0) {
      fwrite(out.data, 1, out.len, stdout);
      fputc('\n', stdout);
      status = 0;
    } else {
      log_error(NULL, "cannot take a sample", "error=\"%s\"", grove_strerror(rc));
    }
    goto done;
  }
  if (*cfg.listen) {
    if (listener_start(&lis, cfg.listen, err, sizeof(err)) != 0) {
      log_error(NULL, "cannot serve scrapes", "error=\"%s\"", err);
      goto done;
    }
    log_info(NULL, "serving metrics for scrapes", "listen=%s port=%d path=/metrics", cfg.listen,
             listener_port(lis));
  }
  if (sampler_rapl_denied(smp))
    log_warn(NULL, "cannot read RAPL energy counters: CPU power is estimated",
             "hint=\"energy_uj is root-only on recent kernels; run as root or grant read access\"");
  log_info(NULL, "agent started", "agent_id=%s server=%s interval_ms=%llu gpu=%s", sc.agent_id,
           *cfg.server ? cfg.server : "(none)", (unsigned long long)cfg.interval_ms,
           sampler_has_gpu(smp) ? "nvml" : "none");
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  uint64_t last_ns = first_ns, next_ns = first_ns;
  struct expo_agent self = {.shipping = shipping};
  while (!stopping) {
    next_ns += cfg.interval_ms * 1000000ULL;
    uint64_t now = clock_mono_ns();
    if (next_ns > now) sleep_ms((next_ns - now) / 1000000ULL);
    else next_ns = now; /* fell behind (suspend, a slow server): no burst to catch up */
    if (stopping) break;
    now = clock_mono_ns();
    double el = (double)(now - last_ns) / 1e9;
    last_ns = now;
    buf_reset(&out);
    buf_reset(&page);
    rc = sampler_take(smp, el, (int64_t)clock_wall_ms(), shp ? ship_next_seq(shp) : 0, &out,
                      lis ? &page : NULL);
    if (rc < 0) {
      self.sample_errors++;
      log_error(NULL, "cannot take a sample", "error=\"%s\"", grove_strerror(rc));
      continue;
    }
    self.samples++;
    if (shp) {
      rc = ship_enqueue(shp, out.data, out.len);
      if (rc < 0) log_error(NULL, "cannot spool a batch: sample lost", "error=\"%s\"", grove_strerror(rc));
      ship_flush(shp, 1000);
    }
    if (lis) {
      struct ship_stats now_st = {0};
      if (shp) ship_get_stats(shp, &now_st);
      self.sent = now_st.sent, self.dropped = now_st.dropped, self.rejected = now_st.rejected;
      self.failures = now_st.failures, self.spooled_batches = now_st.spooled_batches;
      self.spooled_bytes = now_st.spooled_bytes;
      if (expo_agent(&page, &self) == 0) listener_publish(lis, &page);
    }
  }
  struct ship_stats st = {0};
  if (shp) ship_get_stats(shp, &st);
  log_info(NULL, "agent stopped", "sent=%llu spooled=%llu dropped=%llu rejected=%llu",
           (unsigned long long)st.sent, (unsigned long long)st.spooled_batches,
           (unsigned long long)st.dropped, (unsigned long long)st.rejected);
  status = 0;
done:
  listener_stop(lis);
  sampler_destroy(smp);
  ship_close(shp);
  buf_release(&out);
  buf_release(&page);
  cfg_release(&sec, 1);
  curl_global_cleanup();
  return status;
}
