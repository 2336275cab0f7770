/* test_push.c — the push-metrics payload parser: seed 003 §6.1.2's
 * example verbatim, grove-agent's payload (every field lands somewhere),
 * arrays of samples, and malformed, oversized and hostile bodies refused
 * whole with a status, a code and the path of what is wrong; then the
 * series a sample becomes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "apps/matrix/push.h"
#include "core/error.h"

#define NOW 1795975200000000000LL /* 2026-11-29T18:00:00Z */

static const struct mx_push_limits LIM = {NOW, 300000000000LL, INT64_MIN, "key-7"};

/* GreenMatrix §6.1.2, as written (its "[...]" made an empty list) */
static const char *SEED =
    "{\n  \"timestamp\": \"2024-01-15T10:30:00Z\",\n  \"source_type\": \"host\",\n"
    "  \"metrics\": {\n    \"cpu_usage\": 65.5,\n    \"memory_usage\": 78.2,\n"
    "    \"gpu_utilization\": 45.8,\n    \"power_consumption\": 250.5,\n"
    "    \"processes\": []\n  }\n}";

/* what src/agent/report.c writes for a VM with one GPU, one disk, one
 * network interface, two cores and two processes */
static const char *AGENT =
    "{\"timestamp\":\"2026-11-29T13:00:00.250Z\",\"source_type\":\"vm\",\"agent_id\":\"ag-1\","
    "\"seq\":42,\"hostname\":\"web-1\",\"vm_name\":\"web-1\",\"hypervisor\":\"KVM\","
    "\"instance_type\":\"g5.xlarge\",\"cpu_model\":\"AMD EPYC 7R32\",\"metrics\":{"
    "\"cpu_usage\":12.500,\"memory_usage\":40.000,\"gpu_utilization\":30.000,"
    "\"power_consumption\":120.000,\"total_cpu_usage\":12.500,\"total_memory_usage\":40.000,"
    "\"total_gpu_usage\":30.000,\"total_power_consumption\":120.000,"
    "\"system_load_average\":0.500,\"load_average\":[0.50,0.40,0.30],"
    "\"cpu_steal_percent\":0.100,\"cpu_iowait_percent\":0.200,"
    "\"cpu_cores_percent\":[10.000,15.000],\"memory_total_bytes\":16000000000,"
    "\"memory_available_bytes\":9600000000,\"swap_total_bytes\":0,\"swap_free_bytes\":0,"
    "\"disks\":[{\"name\":\"nvme0n1\",\"reads_per_s\":1.000,\"writes_per_s\":2.000,"
    "\"read_bytes_per_s\":4096.0,\"write_bytes_per_s\":8192.0}],"
    "\"networks\":[{\"name\":\"eth0\",\"rx_bytes_per_s\":1000.0,\"tx_bytes_per_s\":2000.0,"
    "\"rx_packets_per_s\":3.000,\"tx_packets_per_s\":4.000}],\"network_usage_mbps\":0.024,"
    "\"gpus\":[{\"index\":0,\"name\":\"NVIDIA A10G\",\"utilization_percent\":30.0,"
    "\"memory_utilization_percent\":20.0,\"memory_total_bytes\":24000000000,"
    "\"memory_used_bytes\":4800000000,\"power_watts\":60.000,\"energy_millijoules\":123456}],"
    "\"power\":{\"cpu_estimated\":true,\"cpu_watts\":60.000,\"cpu_idle_watts\":20.000,"
    "\"cpu_active_watts\":40.000,\"gpu_watts\":60.000,\"gpu_idle_watts\":15.000,"
    "\"gpu_active_watts\":45.000,\"unattributed_watts\":1.000},\"process_count\":97,"
    "\"processes\":[{\"pid\":4242,\"ppid\":1,\"process_name\":\"python3\",\"command\":"
    "\"python3 serve.py\",\"user\":\"ml\",\"cgroup\":\"/system.slice/x.service\","
    "\"container_id\":\"abc\",\"cpu_usage_percent\":80.000,\"memory_usage_mb\":512.000,"
    "\"rss_bytes\":536870912,\"threads\":12,\"gpu_utilization_percent\":30.000,"
    "\"gpu_memory_bytes\":4800000000,\"power_consumption_watts\":75.000,\"io_operations\":10,"
    "\"io_read_bytes\":1000,\"io_write_bytes\":2000},{\"pid\":1,\"ppid\":0,"
    "\"process_name\":\"systemd\",\"command\":\"/sbin/init\",\"user\":\"root\",\"cgroup\":\"/\","
    "\"cpu_usage_percent\":0.100,\"memory_usage_mb\":12.000,\"rss_bytes\":12582912,"
    "\"threads\":1,\"gpu_utilization_percent\":0.000,\"gpu_memory_bytes\":0,"
    "\"power_consumption_watts\":0.050}]}}";

static int parse(const char *body, struct mx_batch *b, struct mx_push_error *e) {
  return mx_push_parse(body, strlen(body), &LIM, b, e);
}

TEST(seed_example_is_taken_verbatim) {
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(parse(SEED, &b, &e), 0);
  CHECK(b.n == 1);
  const struct mx_sample *s = &b.s[0];
  CHECK(!s->vm);
  CHECK_EQ_STR(s->host, "key-7"); /* no host named: the caller stands for it */
  CHECK(s->ts_ns == 1705314600000000000LL);
  CHECK(s->h[MX_H_CPU] == 65.5 && s->h[MX_H_MEM] == 78.2 && s->h[MX_H_GPU] == 45.8 &&
        s->h[MX_H_POWER] == 250.5);
  CHECK(s->hhave == 0xf);
  CHECK(s->nprocs == 0 && b.ignored == 0);
  mx_batch_release(&b);
}

TEST(agent_payload_lands_everywhere) {
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(parse(AGENT, &b, &e), 0);
  const struct mx_sample *s = &b.s[0];
  CHECK(s->vm);
  CHECK_EQ_STR(s->host, "web-1");
  CHECK_EQ_STR(s->vm_name, "web-1");
  CHECK_EQ_STR(s->agent_id, "ag-1");
  CHECK(s->has_seq && s->seq == 42);
  CHECK_EQ_STR(s->hypervisor, "KVM");
  CHECK_EQ_STR(s->instance_type, "g5.xlarge");
  CHECK_EQ_STR(s->cpu_model, "AMD EPYC 7R32");
  CHECK(s->ts_ns == 1795957200250000000LL);
  /* every host-level figure the agent sends */
  CHECK_EQ_INT((int)s->hhave, (int)((1u << MX_H_N) - 1));
  CHECK(s->h[MX_H_LOAD5] == 0.4 && s->h[MX_H_LOAD15] == 0.3 && s->h[MX_H_CPU_ESTIMATED] == 1);
  CHECK(s->h[MX_H_PROC_COUNT] == 97 && s->h[MX_H_UNATTR_W] == 1);
  CHECK(s->ncores == 2 && s->cores[1] == 15);
  CHECK(s->ndisks == 1 && s->disks[0].have == 0xf && !strcmp(s->disks[0].name, "nvme0n1"));
  CHECK(s->nnets == 1 && s->nets[0].have == 0xf && !strcmp(s->nets[0].name, "eth0"));
  CHECK(s->ngpus == 1 && !strcmp(s->gpus[0].name, "NVIDIA A10G"));
  CHECK(s->gpus[0].v[MX_G_ENERGY] == 123456 && s->gpus[0].v[MX_G_POWER] == 60);
  CHECK(s->nprocs == 2);
  const struct mx_proc *p = &s->procs[0];
  CHECK(p->pid == 4242 && p->ppid == 1);
  CHECK_EQ_STR(p->name, "python3");
  CHECK_EQ_STR(p->command, "python3 serve.py");
  CHECK_EQ_STR(p->user, "ml");
  CHECK_EQ_STR(p->cgroup, "/system.slice/x.service");
  CHECK_EQ_STR(p->container_id, "abc");
  /* every process figure but network and cost (the agent measures neither) */
  uint32_t want = ((1u << MX_P_N) - 1) & ~(1u << MX_P_NET) & ~(1u << MX_P_COST);
  CHECK_EQ_INT((int)p->have, (int)want);
  CHECK(p->v[MX_P_GPU_MEM] == 4800000000.0 && p->v[MX_P_IO_OPS] == 10);
  CHECK(!s->procs[1].container_id);
  CHECK_EQ_INT((int)b.ignored, 0);
  mx_batch_release(&b);
}

TEST(arrays_of_samples_and_aliases) {
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(parse("[{\"hostname\":\"a\",\"timestamp\":1700000000.5,\"metrics\":{\"cpu_usage\":1,"
                     "\"total_cpu_usage\":2}},{\"source_type\":\"vm\",\"vm_name\":\"v\","
                     "\"processes\":[{\"name\":\"x\",\"cpu_usage\":3,\"rss_bytes\":2097152,"
                     "\"colour\":\"red\"}],\"shoe_size\":9}]",
                     &b, &e),
               0);
  CHECK(b.n == 2 && b.processes == 1);
  CHECK(b.s[0].h[MX_H_CPU] == 2); /* the canonical name wins over its alias */
  CHECK(b.s[0].ts_ns == 1700000000500000000LL);
  CHECK(b.s[1].vm && !strcmp(b.s[1].vm_name, "v") && !strcmp(b.s[1].host, "v"));
  CHECK(b.s[1].ts_ns == NOW);
  const struct mx_proc *p = &b.s[1].procs[0];
  CHECK(p->pid == -1 && !strcmp(p->name, "x") && p->v[MX_P_CPU] == 3);
  CHECK(p->v[MX_P_MEM_MB] == 2); /* from rss_bytes */
  CHECK(b.ignored == 2 && b.nignored_names == 2);
  mx_batch_release(&b);
}

/* One bad thing anywhere refuses the body whole. */
static void refused(const char *body, int status, const char *code, const char *path) {
  struct mx_batch b;
  struct mx_push_error e;
  int rc = parse(body, &b, &e);
  if (rc != GROVE_EINVAL || e.status != status || strcmp(e.code, code) ||
      (path && strcmp(e.path, path))) {
    fprintf(stderr, "body %.120s: rc %d status %d code %s path '%s' message '%s'\n", body, rc,
            e.status, e.code ? e.code : "-", e.path, e.message);
    CHECK(0);
  }
  CHECK(b.n == 0 && b.s == NULL);
  CHECK(e.message[0]);
}

TEST(malformed_bodies_are_refused_whole) {
  refused("", 400, "INVALID_JSON", NULL);
  refused("{\"metrics\":", 400, "INVALID_JSON", NULL);
  refused("42", 400, "INVALID_JSON", NULL);
  refused("[]", 400, "INVALID_PAYLOAD", "");
  refused("[1]", 400, "INVALID_PAYLOAD", "[0]");
  refused("{\"hostname\":\"a\"}", 400, "INVALID_PAYLOAD", "metrics");
  refused("{\"hostname\":\"a\",\"metrics\":[]}", 400, "INVALID_PAYLOAD", "metrics");
  refused("{\"hostname\":\"a\",\"source_type\":\"VM\",\"metrics\":{}}", 400, "INVALID_PAYLOAD",
          "source_type");
  refused("{\"hostname\":\"a\",\"metrics\":{\"cpu_usage\":\"high\"}}", 400, "INVALID_PAYLOAD",
          "metrics.cpu_usage");
  refused("{\"hostname\":\"a\",\"timestamp\":\"yesterday\",\"metrics\":{}}", 400,
          "INVALID_PAYLOAD", "timestamp");
  refused("{\"hostname\":\"a\",\"timestamp\":1e300,\"metrics\":{}}", 400, "INVALID_PAYLOAD",
          "timestamp");
  refused("[{\"hostname\":\"a\",\"metrics\":{}},{\"hostname\":\"b\",\"metrics\":{\"processes\":"
          "[{\"pid\":1},{\"pid\":-4}]}}]",
          400, "INVALID_PAYLOAD", "[1].metrics.processes[1].pid");
  refused("{\"hostname\":\"a\",\"metrics\":{\"processes\":[{\"cpu_usage_percent\":1}]}}", 400,
          "INVALID_PAYLOAD", "metrics.processes[0]");
  refused("{\"hostname\":\"a\",\"metrics\":{\"gpus\":[{\"index\":99999}]}}", 400,
          "INVALID_PAYLOAD", "metrics.gpus[0].index");
  refused("{\"hostname\":\"a\",\"metrics\":{\"disks\":[{\"reads_per_s\":1}]}}", 400,
          "INVALID_PAYLOAD", "metrics.disks[0].name");
  refused("{\"hostname\":\"a\",\"metrics\":{\"processes\":[]},\"processes\":[]}", 400,
          "INVALID_PAYLOAD", "processes");
  refused("{\"hostname\":\"a\",\"hostname\":\"b\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
}

TEST(hostile_names_and_times_are_refused) {
  refused("{\"hostname\":\"a\\nb\",\"metrics\":{}}", 400, "INVALID_PAYLOAD", "hostname");
  refused("{\"hostname\":\"a\\u0000b\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"\",\"metrics\":{}}", 400, "INVALID_PAYLOAD", "hostname");
  char big[400];
  snprintf(big, sizeof big, "{\"hostname\":\"%0300d\",\"metrics\":{}}", 0);
  refused(big, 400, "INVALID_PAYLOAD", "hostname");
  /* later than the clock allows */
  refused("{\"hostname\":\"a\",\"timestamp\":\"2030-01-01T00:00:00Z\",\"metrics\":{}}", 400,
          "INVALID_PAYLOAD", "timestamp");
  refused("{\"hostname\":\"a\",\"metrics\":{},\"seq\":-1}", 400, "INVALID_PAYLOAD", "seq");
  refused("{\"hostname\":\"a\",\"metrics\":{},\"seq\":99999999999999999999999}", 400,
          "INVALID_JSON", NULL);
  /* no host and no caller to stand for it */
  struct mx_push_limits lim = LIM;
  lim.default_host = NULL;
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(mx_push_parse(SEED, strlen(SEED), &lim, &b, &e), GROVE_EINVAL);
  CHECK_EQ_STR(e.path, "hostname");
  /* past retention */
  lim = LIM;
  lim.oldest_ns = NOW - 1000;
  CHECK_EQ_INT(mx_push_parse(SEED, strlen(SEED), &lim, &b, &e), GROVE_EINVAL);
  CHECK_EQ_STR(e.path, "timestamp");
}

TEST(oversized_bodies_are_413) {
  size_t n = MX_MAX_SAMPLES + 1;
  char *body = malloc(n * 40 + 8);
  size_t at = 0;
  body[at++] = '[';
  for (size_t i = 0; i < n; i++)
    at += (size_t)sprintf(body + at, "%s{\"hostname\":\"h\",\"metrics\":{}}", i ? "," : "");
  body[at++] = ']';
  body[at] = '\0';
  refused(body, 413, "TOO_MANY_SAMPLES", "");
  free(body);
  n = MX_MAX_PROCESSES + 1;
  body = malloc(n * 12 + 64);
  at = (size_t)sprintf(body, "{\"hostname\":\"h\",\"processes\":[");
  for (size_t i = 0; i < n; i++) at += (size_t)sprintf(body + at, "%s{\"pid\":1}", i ? "," : "");
  strcpy(body + at, "]}");
  refused(body, 413, "TOO_MANY_PROCESSES", "processes");
  free(body);
}

TEST(process_texts_are_cut_and_cleaned) {
  size_t n = MX_MAX_TEXT + 100;
  char *body = malloc(n + 200);
  int at = sprintf(body, "{\"hostname\":\"h\",\"processes\":[{\"pid\":3,\"process_name\":"
                         "\"a\\tb\",\"command\":\"");
  for (size_t i = 0; i < n; i++) body[at++] = 'x';
  strcpy(body + at, "\"}]}");
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(parse(body, &b, &e), 0);
  CHECK_EQ_STR(b.s[0].procs[0].name, "a?b");
  CHECK(strlen(b.s[0].procs[0].command) == MX_MAX_TEXT);
  mx_batch_release(&b);
  free(body);
}

/* The reader takes JSON as a whole-document parser does: what is not JSON
 * is INVALID_JSON even after a value it refused, and nothing else. */
TEST(the_stream_reader_takes_json_as_a_document_parser_does) {
  refused("   ", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{}} x", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{}}{}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\xff\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  refused("{\"a\\u0000\":1,\"hostname\":\"a\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  /* duplicates anywhere the reader reads: a process, an unknown key */
  refused("{\"hostname\":\"a\",\"processes\":[{\"pid\":1,\"pid\":2}]}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"x\":1,\"metrics\":{},\"x\":2}", 400, "INVALID_JSON", NULL);
  /* a refused value, then a body that is not JSON: not JSON wins */
  refused("{\"hostname\":\"\",\"metrics\":{}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{\"cpu_usage\":\"x\"},\"seq\":1e999}", 400,
          "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{},\"y\":[99999999999999999999]}", 400,
          "INVALID_JSON", NULL);
  /* nesting: deep inside an unknown key is skipped, past 2048 not JSON */
  size_t d = 3000;
  char *deep = malloc(2 * d + 64);
  int at = sprintf(deep, "{\"hostname\":\"a\",\"metrics\":{},\"x\":");
  for (size_t i = 0; i < d; i++) deep[at++] = '[';
  for (size_t i = 0; i < d; i++) deep[at++] = ']';
  strcpy(deep + at, "}");
  refused(deep, 400, "INVALID_JSON", NULL);
  d = 1000;
  at = sprintf(deep, "{\"hostname\":\"a\",\"metrics\":{},\"x\":");
  for (size_t i = 0; i < d; i++) at += sprintf(deep + at, "{\"k\":");
  deep[at++] = '1';
  for (size_t i = 0; i < d; i++) deep[at++] = '}';
  strcpy(deep + at, "}");
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(parse(deep, &b, &e), 0);
  CHECK(b.n == 1 && b.ignored == 1 && !strcmp(b.ignored_names[0], "x"));
  mx_batch_release(&b);
  free(deep);
  /* a number longer than any buffer is still a number */
  char big[1200];
  at = sprintf(big, "{\"hostname\":\"a\",\"metrics\":{\"cpu_usage\":1.");
  for (int i = 0; i < 1000; i++) big[at++] = '5';
  strcpy(big + at, "}}");
  CHECK_EQ_INT(parse(big, &b, &e), 0);
  CHECK(fabs(b.s[0].h[MX_H_CPU] - 1.5555555) < 1e-6);
  mx_batch_release(&b);
  /* integers of every length read exactly; negative ones too */
  CHECK_EQ_INT(parse("{\"hostname\":\"a\",\"seq\":123456789012345678,\"metrics\":"
                     "{\"cpu_usage\":-7,\"memory_usage\":-0,\"gpu_utilization\":-123456789012345678}}",
                     &b, &e),
               0);
  CHECK(b.s[0].seq == 123456789012345678ULL && b.s[0].h[MX_H_CPU] == -7);
  CHECK(b.s[0].h[MX_H_MEM] == 0 && b.s[0].h[MX_H_GPU] == -123456789012345678.0);
  mx_batch_release(&b);
  CHECK_EQ_INT(parse("{\"hostname\":\"a\",\"seq\":9223372036854775807,\"metrics\":{}}", &b, &e), 0);
  CHECK(b.s[0].seq == 9223372036854775807ULL);
  mx_batch_release(&b);
  refused("{\"hostname\":\"a\",\"seq\":9223372036854775808,\"metrics\":{}}", 400, "INVALID_JSON",
          NULL);
  /* unknown containers of every kind are skipped, known values kept */
  CHECK_EQ_INT(parse("{\"hostname\":\"a\",\"u\":{\"metrics\":{\"cpu_usage\":9}},\"metrics\":"
                     "{\"v\":[{\"cpu_usage\":8}],\"cpu_usage\":7,\"processes\":[{\"pid\":1,"
                     "\"w\":{\"pid\":2},\"name\":\"n\"}]}}",
                     &b, &e),
               0);
  CHECK(b.s[0].h[MX_H_CPU] == 7 && b.s[0].nprocs == 1 && b.s[0].procs[0].pid == 1);
  CHECK(b.ignored == 3 && !strcmp(b.s[0].procs[0].name, "n"));
  mx_batch_release(&b);
}

/* What a document parser refuses is refused wherever it stands: inside a
 * value skipped (an unknown key's), after a value refused, and escapes
 * that name no character (lone surrogates). */
TEST(json_is_checked_inside_skipped_and_refused_values) {
  refused("{\"hostname\":\"a\",\"metrics\":{},\"x\":{\"k\":1,\"k\":2}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{\"x\":[{\"k\":1,\"j\":[],\"k\":2}]}}", 400,
          "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{},\"x\":{\"k\\u0000\":1}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"\",\"metrics\":{},\"x\":{\"k\":1,\"k\":2}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"\",\"metrics\":{\"cpu_usage\":1,\"cpu_usage\":2}}", 400, "INVALID_JSON",
          NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{\"cpu_cores_percent\":[{\"k\":1,\"k\":2}]}}", 400,
          "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\\ud800\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\\udc00\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\\ud800\\u0041\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{},\"x\\udfff\":1}", 400, "INVALID_JSON", NULL);
  /* a pair is one character; the same key spelt with escapes is the same key */
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(parse("{\"hostname\":\"a\\ud83d\\ude00\",\"metrics\":{\"x\\u0079\":1,\"z\":{\"k\":1,"
                     "\"K\":2}}}", &b, &e), 0);
  CHECK(!strcmp(b.s[0].host, "a\xf0\x9f\x98\x80"));
  mx_batch_release(&b);
  refused("{\"hostname\":\"a\",\"metrics\":{\"xy\":1,\"x\\u0079\":2}}", 400, "INVALID_JSON", NULL);
  /* bytes yajl's pattern check lets by: overlong, surrogate, past U+10FFFF */
  refused("{\"hostname\":\"a\xc0\x80\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\xed\xa0\x80\",\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{},\"\xf4\x90\x80\x80\":1}", 400, "INVALID_JSON",
          NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{},\"\xe0\x80\xaf\":1}", 400, "INVALID_JSON", NULL);
  /* white space is space, tab, CR and LF only */
  refused("{\"hostname\":\"a\",\f\"metrics\":{}}", 400, "INVALID_JSON", NULL);
  refused("{\"hostname\":\"a\",\"metrics\":{\"cpu_usage\":1\v}}", 400, "INVALID_JSON", NULL);
  /* a string left open after the top value is garbage too */
  refused("{\"hostname\":\"a\",\"metrics\":{}} \"x", 400, "INVALID_JSON", NULL);
  refused("[] \")6  }}", 400, "INVALID_JSON", NULL);
  refused("[{\"hostname\":\"a\",\"metrics\":{}}]\"", 400, "INVALID_JSON", NULL);
  /* after a refusal deep down, a duplicate further up is still seen ... */
  refused("{\"hostname\":\"a\",\"metrics\":{\"processes\":[{\"pid\":-1}]},\"hostname\":\"b\"}",
          400, "INVALID_JSON", NULL);
  refused("{\"metrics\":{\"processes\":[{\"pid\":-1,\"q\":1}],\"cpu_usage\":1,\"cpu_usage\":2}}",
          400, "INVALID_JSON", NULL);
  /* ... and the same keys in sibling objects are no duplicates */
  refused("{\"metrics\":{\"processes\":[{\"pid\":-1,\"q\":1},{\"pid\":2,\"q\":1}],"
          "\"x\":[{\"k\":1},{\"k\":1}]},\"hostname\":\"a\"}",
          400, "INVALID_PAYLOAD", "metrics.processes[0].pid");
  CHECK_EQ_INT(parse("{\"hostname\":\"a\",\"metrics\":{\"x\":[{\"k\":{\"k\":1}},{\"k\":1}],"
                     "\"y\":{\"k\":1},\"processes\":[{\"pid\":1,\"z\":1},{\"pid\":2,\"z\":1}]},"
                     "\"k\":2}", &b, &e), 0);
  CHECK(b.s[0].nprocs == 2);
  mx_batch_release(&b);
}

/* An object of many unknown keys costs a look-up a key, not a scan of
 * those before it (300 000 keys: seconds when quadratic). */
TEST(many_unknown_keys_are_checked_in_linear_time) {
  size_t n = 300000;
  char *body = malloc(n * 12 + 64);
  int at = sprintf(body, "{\"hostname\":\"a\",\"metrics\":{");
  for (size_t i = 0; i < n; i++) at += sprintf(body + at, "\"%zx\":0,", i);
  strcpy(body + at, "\"cpu_usage\":1}}");
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(parse(body, &b, &e), 0);
  CHECK(b.ignored == n && b.s[0].h[MX_H_CPU] == 1);
  mx_batch_release(&b);
  strcpy(body + at, "\"0\":1}}"); /* the first again, last */
  refused(body, 400, "INVALID_JSON", NULL);
  /* a long unknown key is named cut, at a character */
  at = sprintf(body, "{\"hostname\":\"a\",\"metrics\":{},\"");
  for (int i = 0; i < 100000; i++) at += sprintf(body + at, "\xc3\xa9");
  strcpy(body + at, "\":1}");
  CHECK_EQ_INT(parse(body, &b, &e), 0);
  CHECK(b.nignored_names == 1 && strlen(b.ignored_names[0]) == MX_MAX_NAME - 1);
  mx_batch_release(&b);
  free(body);
}

/* Strings outlive the events that gave them: many, long, in many blocks. */
TEST(strings_are_kept_across_blocks) {
  size_t n = 3000;
  char *body = malloc(n * 400 + 64);
  int at = sprintf(body, "[");
  for (size_t i = 0; i < n; i++)
    at += sprintf(body + at, "%s{\"hostname\":\"host-%zu\",\"processes\":[{\"pid\":%zu,"
                             "\"process_name\":\"p\\u00e9-%zu\",\"command\":\"%0200zu\"}]}",
                  i ? "," : "", i % 7, i, i, i);
  strcpy(body + at, "]");
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(mx_push_parse(body, strlen(body), &LIM, &b, &e), MX_MAX_SAMPLES < n ? GROVE_EINVAL : 0);
  CHECK_EQ_STR(e.code, "TOO_MANY_SAMPLES");
  at = sprintf(body, "[");
  for (size_t i = 0; i < MX_MAX_SAMPLES; i++)
    at += sprintf(body + at, "%s{\"hostname\":\"host-%zu\",\"processes\":[{\"pid\":%zu,"
                             "\"process_name\":\"p\\u00e9-%zu\",\"command\":\"%0200zu\"}]}",
                  i ? "," : "", i % 7, i, i, i);
  strcpy(body + at, "]");
  CHECK_EQ_INT(mx_push_parse(body, strlen(body), &LIM, &b, &e), 0);
  CHECK(b.n == MX_MAX_SAMPLES && b.processes == MX_MAX_SAMPLES);
  for (size_t i = 0; i < b.n; i++) {
    char want[256];
    snprintf(want, sizeof want, "host-%zu", i % 7);
    CHECK_EQ_STR(b.s[i].host, want);
    snprintf(want, sizeof want, "p\xc3\xa9-%zu", i);
    CHECK_EQ_STR(b.s[i].procs[0].name, want);
    snprintf(want, sizeof want, "%0200zu", i);
    CHECK_EQ_STR(b.s[i].procs[0].command, want);
  }
  mx_batch_release(&b);
  free(body);
}

TEST(process_keys_and_numbers_are_written_in_full) {
  char out[32];
  CHECK(mx_i64_dec(0, out) == 1 && !memcmp(out, "0", 1));
  CHECK(mx_i64_dec(-1, out) == 2 && !memcmp(out, "-1", 2));
  CHECK(mx_i64_dec(INT64_MIN, out) == 20 && !memcmp(out, "-9223372036854775808", 20));
  CHECK(mx_i64_dec(INT64_MAX, out) == 19 && !memcmp(out, "9223372036854775807", 19));
  char k[MX_PROC_KEY];
  mx_proc_key(k, sizeof k, 4242, "python3");
  CHECK_EQ_STR(k, "4242\tpython3");
  mx_proc_key(k, sizeof k, -1, "init");
  CHECK_EQ_STR(k, "-1\tinit");
  mx_proc_key(out, 8, 4242, "python3"); /* cut to fit */
  CHECK_EQ_STR(out, "4242\tpy");
  mx_proc_key(out, 3, 4242, "python3"); /* no room for the pid */
  CHECK_EQ_STR(out, "");
}

/* Decimals are read as strtod reads them, to the last bit (integers as
 * integers): random ones of every length around the 15-digit fast path. */
TEST(decimals_read_as_strtod_reads_them) {
  uint64_t x = 88172645463325252ULL;
  char *body = malloc(1000 * 64 + 64);
  char vals[1000][40];
  for (int round = 0; round < 40; round++) {
    int at = sprintf(body, "{\"hostname\":\"d\",\"processes\":[");
    for (int i = 0; i < 1000; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      int digits = 1 + (int)(x % 18), point = (int)((x >> 8) % (uint64_t)(digits + 1));
      char *v = vals[i];
      int k = 0;
      if ((x >> 20) & 1) v[k++] = '-';
      for (int d = 0; d < digits; d++) {
        if (d == point && d) v[k++] = '.';
        v[k++] = (char)('0' + (d == 0 && digits > 1 && point != 1 ? 1 + (x >> (24 + d)) % 9
                                                                  : (x >> (24 + d % 30)) % 10));
      }
      v[k] = '\0';
      at += sprintf(body + at, "%s{\"pid\":%d,\"cpu_usage_percent\":%s}", i ? "," : "", i, v);
    }
    strcpy(body + at, "]}");
    struct mx_batch b;
    struct mx_push_error e;
    int rc = mx_push_parse(body, strlen(body), &LIM, &b, &e);
    if (rc)
      fprintf(stderr, "%s\n", e.message);
    CHECK_EQ_INT(rc, 0);
    for (int i = 0; i < 1000; i++) {
      /* an integer is one (jansson's json_integer: "-0" is 0) */
      double want = strchr(vals[i], '.') ? strtod(vals[i], NULL) : (double)strtoll(vals[i], NULL, 10);
      double got = b.s[0].procs[i].v[MX_P_CPU];
      if (memcmp(&want, &got, sizeof want)) {
        fprintf(stderr, "%s: got %.17g want %.17g\n", vals[i], got, want);
        CHECK(0);
      }
    }
    mx_batch_release(&b);
  }
  free(body);
}

static const struct telemetry_line *find(const struct mx_lines *l, const char *m, int nth) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->lines[i].measurement.p, m) && nth-- == 0) return &l->lines[i];
  return NULL;
}

static const char *tagv(const struct telemetry_line *ln, const char *k) {
  const struct telemetry_str *v = telemetry_tag_get(ln->tags, ln->ntags, k);
  static char out[64];
  if (!v) return NULL;
  snprintf(out, sizeof out, "%.*s", (int)v->n, v->p);
  return out;
}

static double fieldv(const struct telemetry_line *ln, const char *k) {
  for (int i = 0; i < ln->nfields; i++)
    if (!strcmp(ln->fields[i].key.p, k)) return ln->fields[i].value;
  return NAN;
}

TEST(samples_become_the_seed_tables) {
  struct mx_batch b;
  struct mx_push_error e;
  CHECK_EQ_INT(parse(AGENT, &b, &e), 0);
  struct mx_lines l = {0};
  bool keep[2] = {true, false};
  CHECK_EQ_INT(mx_lines_add(&l, &b.s[0], keep), 0);
  mx_lines_finish(&l);
  /* host + GPU + disk + network + 2 cores + 1 kept process */
  CHECK_EQ_INT((int)l.n, 7);
  const struct telemetry_line *h = find(&l, "host_overall_metrics", 0);
  CHECK(h && !strcmp(tagv(h, "host"), "web-1") && !strcmp(tagv(h, "vm"), "web-1"));
  CHECK(fieldv(h, "total_cpu_usage") == 12.5 && fieldv(h, "total_power_consumption") == 120);
  CHECK(fieldv(h, "system_load_average") == 0.5 && fieldv(h, "cpu_power_estimated") == 1);
  CHECK_EQ_INT(h->nfields, MX_H_N);
  const struct telemetry_line *p = find(&l, "vm_process_metrics", 0);
  CHECK(p && !strcmp(tagv(p, "vm"), "web-1") && !strcmp(tagv(p, "pid"), "4242"));
  CHECK(!strcmp(tagv(p, "process"), "python3") && !tagv(p, "host"));
  CHECK(fieldv(p, "cpu_usage_percent") == 80 && fieldv(p, "memory_usage_mb") == 512);
  CHECK(fieldv(p, "power_consumption_watts") == 75 && fieldv(p, "io_operations") == 10);
  CHECK(!find(&l, "vm_process_metrics", 1)); /* systemd was not kept */
  const struct telemetry_line *g = find(&l, "host_gpu_metrics", 0);
  CHECK(g && !strcmp(tagv(g, "gpu"), "0") && fieldv(g, "utilization_percent") == 30);
  const struct telemetry_line *c = find(&l, "host_cpu_core_metrics", 1);
  CHECK(c && !strcmp(tagv(c, "core"), "1") && fieldv(c, "usage_percent") == 15);
  CHECK(find(&l, "host_disk_metrics", 0) && find(&l, "host_network_metrics", 0));
  CHECK(!strcmp(tagv(find(&l, "host_network_metrics", 0), "interface"), "eth0"));
  for (size_t i = 0; i < l.n; i++) CHECK(l.lines[i].ts_ns == b.s[0].ts_ns);
  mx_lines_release(&l);
  mx_batch_release(&b);
}

TEST(host_processes_are_host_process_metrics) {
  struct mx_batch b;
  struct mx_push_error e;
  /* many samples: the arrays grow and the lines still point right */
  char body[16384];
  int at = sprintf(body, "[");
  for (int i = 0; i < 50; i++)
    at += sprintf(body + at, "%s{\"hostname\":\"h%d\",\"metrics\":{\"cpu_usage\":%d,\"processes\":"
                             "[{\"pid\":%d,\"process_name\":\"p\",\"cpu_usage_percent\":%d}]}}",
                  i ? "," : "", i, i, 1000 + i, i);
  strcpy(body + at, "]");
  CHECK_EQ_INT(parse(body, &b, &e), 0);
  struct mx_lines l = {0};
  for (size_t i = 0; i < b.n; i++) CHECK_EQ_INT(mx_lines_add(&l, &b.s[i], NULL), 0);
  mx_lines_finish(&l);
  CHECK_EQ_INT((int)l.n, 100);
  for (int i = 0; i < 50; i++) {
    const struct telemetry_line *p = find(&l, "host_process_metrics", i);
    char want[16];
    snprintf(want, sizeof want, "h%d", i);
    CHECK(p && !strcmp(tagv(p, "host"), want));
    snprintf(want, sizeof want, "%d", 1000 + i);
    CHECK(!strcmp(tagv(p, "pid"), want) && fieldv(p, "cpu_usage_percent") == i);
  }
  mx_lines_release(&l);
  mx_batch_release(&b);
}

static const struct test tests[] = {
    T(seed_example_is_taken_verbatim),
    T(agent_payload_lands_everywhere),
    T(arrays_of_samples_and_aliases),
    T(malformed_bodies_are_refused_whole),
    T(hostile_names_and_times_are_refused),
    T(oversized_bodies_are_413),
    T(process_texts_are_cut_and_cleaned),
    T(the_stream_reader_takes_json_as_a_document_parser_does),
    T(json_is_checked_inside_skipped_and_refused_values),
    T(many_unknown_keys_are_checked_in_linear_time),
    T(strings_are_kept_across_blocks),
    T(process_keys_and_numbers_are_written_in_full),
    T(decimals_read_as_strtod_reads_them),
    T(samples_become_the_seed_tables),
    T(host_processes_are_host_process_metrics),
};
TEST_MAIN(tests)
