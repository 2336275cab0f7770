"""matrix's monitoring over real sockets: POST /api/monitoring/push-metrics
with the seed's §6.1.2 payload verbatim and grove-agent's richer one
(gzip'ed, as the agent sends it), idempotency keys, refusals, the series it
writes (read back over the generic series routes), and a real grove-agent
pushing to `grove serve`."""

import gzip
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse

from grove import ROOT, Grove, eventually, main
from test_matrix import key

AGENT = os.environ.get("GROVE_AGENT_BIN", os.path.join(ROOT, "build", "grove-agent"))
PUSH = "/api/monitoring/push-metrics"

g = None
WRITE = READ = None

# GreenMatrix §6.1.2, as written (its "processes": [...] made an empty list)
SEED = {
    "timestamp": "2024-01-15T10:30:00Z",
    "source_type": "host",
    "metrics": {
        "cpu_usage": 65.5,
        "memory_usage": 78.2,
        "gpu_utilization": 45.8,
        "power_consumption": 250.5,
        "processes": [],
    },
}


def setup():
    global g, WRITE, READ
    g = Grove("--gate-refresh", "200ms", web_root=False)
    WRITE = key(g, "k-agent", "write")
    READ = key(g, "k-read", "read")


def now_iso(offset_s=0):
    t = time.time() + offset_s
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def push(body, key=None, headers=None, grove=None, gz=False, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    h = {"X-API-Key": key or WRITE, "Content-Type": "application/json"}
    if gz:
        data = gzip.compress(data)
        h["Content-Encoding"] = "gzip"
    h.update(headers or {})
    return (grove or g).request("POST", PUSH, body=data, headers=h)


def get(path, grove=None, key=None):
    r = (grove or g).request("GET", path, headers={"X-API-Key": key or READ})
    assert r.status == 200, (path, r.status, r.body)
    return r.json()["data"]


def points(series, grove=None):
    return get("/api/v1/series/points?" + urllib.parse.urlencode({"series": series}), grove)["points"]


def agent_sample(host, ts=None, procs=None, vm=False, gpus=None):
    """A sample as src/agent/report.c writes it."""
    s = {"timestamp": ts or now_iso(), "source_type": "vm" if vm else "host", "agent_id": "ag-" + host,
         "seq": 1, "hostname": host, "cpu_model": "Test CPU",
         "metrics": {"cpu_usage": 20.0, "memory_usage": 30.0, "gpu_utilization": 10.0,
                     "power_consumption": 150.0, "total_cpu_usage": 20.0, "total_memory_usage": 30.0,
                     "total_gpu_usage": 10.0, "total_power_consumption": 150.0,
                     "system_load_average": 1.5, "load_average": [1.5, 1.2, 1.0],
                     "cpu_steal_percent": 0.0, "cpu_iowait_percent": 0.5,
                     "cpu_cores_percent": [20.0, 20.0], "memory_total_bytes": 8 << 30,
                     "memory_available_bytes": 6 << 30, "swap_total_bytes": 0, "swap_free_bytes": 0,
                     "disks": [{"name": "sda", "reads_per_s": 1.0, "writes_per_s": 2.0,
                                "read_bytes_per_s": 512.0, "write_bytes_per_s": 1024.0}],
                     "networks": [{"name": "eth0", "rx_bytes_per_s": 10.0, "tx_bytes_per_s": 20.0,
                                   "rx_packets_per_s": 1.0, "tx_packets_per_s": 2.0}],
                     "network_usage_mbps": 0.00024,
                     "gpus": gpus if gpus is not None else [
                         {"index": 0, "name": "NVIDIA L4", "utilization_percent": 10.0,
                          "memory_utilization_percent": 5.0, "memory_total_bytes": 24 << 30,
                          "memory_used_bytes": 1 << 30, "power_watts": 30.0}],
                     "power": {"cpu_estimated": False, "cpu_watts": 120.0, "cpu_idle_watts": 40.0,
                               "cpu_active_watts": 80.0, "gpu_watts": 30.0, "gpu_idle_watts": 16.0,
                               "gpu_active_watts": 14.0, "unattributed_watts": 0.0},
                     "process_count": 2,
                     "processes": procs if procs is not None else [
                         proc(100, "python3", 15.0), proc(200, "postgres", 5.0)]}}
    if vm:
        s["vm_name"] = host
        s["hypervisor"] = "KVM"
    return s


def proc(pid, name, cpu, mem=100.0, power=10.0, gpu=0.0):
    return {"pid": pid, "ppid": 1, "process_name": name, "command": name + " --serve", "user": "svc",
            "cgroup": "/system.slice/" + name, "cpu_usage_percent": cpu, "memory_usage_mb": mem,
            "rss_bytes": int(mem * 1048576), "threads": 4, "gpu_utilization_percent": gpu,
            "gpu_memory_bytes": 0, "power_consumption_watts": power, "io_operations": 3,
            "io_read_bytes": 4096, "io_write_bytes": 8192}


def ok(r):
    assert r.status == 200, (r.status, r.body)
    body = r.json()
    assert body["status"] == "success", body
    return body


def test_seed_payload_verbatim_is_stored():
    body = ok(push(SEED))
    assert body["data"]["samples"] == 1 and body["data"]["points_written"] == 4, body
    # no host named: the key stands for it; the seed's fields are host_overall_metrics'
    r = g.request("GET", "/auth/me", headers={"X-API-Key": WRITE}).json()["data"]
    kid = r["id"]
    assert points("host_overall_metrics,host=%s total_cpu_usage" % kid) == [[1705314600 * 10**9, 65.5]]
    assert points("host_overall_metrics,host=%s total_power_consumption" % kid) == [
        [1705314600 * 10**9, 250.5]]


def test_agent_payload_gzip_lands_in_every_table():
    body = ok(push(agent_sample("node-a"), gz=True))
    d = body["data"]
    assert d["processes"] == 2 and d["accepted_processes"] == 2 and d["refused_processes"] == 0, d
    assert body["metadata"]["ignored_fields"] == 0, body
    assert points("host_overall_metrics,host=node-a total_cpu_usage")[-1][1] == 20.0
    assert points("host_overall_metrics,host=node-a cpu_idle_power_watts")[-1][1] == 40.0
    assert points("host_process_metrics,host=node-a,pid=100,process=python3 cpu_usage_percent")[-1][1] == 15.0
    assert points("host_process_metrics,host=node-a,pid=200,process=postgres power_consumption_watts")[-1][1] == 10.0
    assert points("host_gpu_metrics,gpu=0,host=node-a power_watts")[-1][1] == 30.0
    assert points("host_disk_metrics,disk=sda,host=node-a write_bytes_per_s")[-1][1] == 1024.0
    assert points("host_network_metrics,host=node-a,interface=eth0 tx_bytes_per_s")[-1][1] == 20.0
    assert points("host_cpu_core_metrics,core=1,host=node-a usage_percent")[-1][1] == 20.0
    # a VM's processes are vm_process_metrics
    ok(push(agent_sample("vm-a", vm=True, procs=[proc(7, "java", 50.0)])))
    assert points("vm_process_metrics,pid=7,process=java,vm=vm-a cpu_usage_percent")[-1][1] == 50.0
    assert points("host_overall_metrics,host=vm-a,vm=vm-a total_memory_usage")[-1][1] == 30.0


def test_batches_of_samples():
    base = time.time() - 60
    samples = [agent_sample("node-b", now_iso(i - 60), procs=[proc(1, "init", float(i))])
               for i in range(5)]
    d = ok(push(samples))["data"]
    assert d["samples"] == 5 and d["processes"] == 5, d
    pts = points("host_process_metrics,host=node-b,pid=1,process=init cpu_usage_percent")
    assert [p[1] for p in pts] == [0.0, 1.0, 2.0, 3.0, 4.0], pts
    assert pts[0][0] >= int(base * 1e9) - 10**9


def test_idempotency_key_answers_the_same_and_stores_once():
    s = agent_sample("node-c", procs=[proc(5, "worker", 1.0)])
    first = push(s, headers={"Idempotency-Key": "ag-c-1"}, gz=True)
    again = push(s, headers={"Idempotency-Key": "ag-c-1"}, gz=True)
    a, b = ok(first), ok(again)
    assert a["data"] == b["data"], (a, b)
    assert again.header("Idempotent-Replayed") == "true" and first.header("Idempotent-Replayed") is None
    assert b["metadata"]["replayed"] is True
    assert len(points("host_overall_metrics,host=node-c total_cpu_usage")) == 1
    # the same key with another body: refused, nothing stored
    s2 = dict(s, timestamp=now_iso(1))
    r = push(s2, headers={"Idempotency-Key": "ag-c-1"})
    assert r.status == 422 and r.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED", r.body
    assert len(points("host_overall_metrics,host=node-c total_cpu_usage")) == 1
    # a quoted key (the IETF draft's sf-string) is the same key
    r = push(s, headers={"Idempotency-Key": '"ag-c-1"'}, gz=True)
    assert ok(r)["data"] == a["data"] and r.header("Idempotent-Replayed") == "true"
    # keys are the caller's: another key's same Idempotency-Key is its own push
    other = key(g, "k-agent-2", "write")
    r = push(dict(s, hostname="node-c2"), key=other, headers={"Idempotency-Key": "ag-c-1"})
    assert ok(r) and r.header("Idempotent-Replayed") is None
    # a refused push's answer is kept too
    bad = {"hostname": "node-c", "metrics": {"cpu_usage": "x"}}
    r1 = push(bad, headers={"Idempotency-Key": "bad-1"})
    r2 = push(bad, headers={"Idempotency-Key": "bad-1"})
    assert r1.status == r2.status == 400 and r1.json() == r2.json(), (r1.body, r2.body)
    for k in ("", "x" * 256, "a b", "caf\u00e9"):
        r = push(s, headers={"Idempotency-Key": k.encode("utf-8").decode("latin-1")})
        assert r.status == 400 and r.json()["error_code"] == "INVALID_IDEMPOTENCY_KEY", (k, r.body)


def test_refusals_use_the_error_envelope():
    cases = [
        (b"{", 400, "INVALID_JSON"),
        (b"[]", 400, "INVALID_PAYLOAD"),
        (json.dumps({"hostname": "x", "source_type": "bare", "metrics": {}}).encode(), 400, "INVALID_PAYLOAD"),
        (json.dumps({"hostname": "x", "timestamp": now_iso(3600), "metrics": {}}).encode(), 400,
         "INVALID_PAYLOAD"),
        (json.dumps([{"hostname": "x", "metrics": {}}] * 1001).encode(), 413, "TOO_MANY_SAMPLES"),
    ]
    for raw, status, code in cases:
        r = push(None, raw=raw)
        assert r.status == status, (raw[:60], r.status, r.body)
        b = r.json()
        assert b["status"] == "error" and b["error_code"] == code and b["message"], b
    r = push(None, raw=json.dumps({"hostname": "x", "metrics": {"processes": [{"pid": "one"}]}}).encode())
    assert r.json()["details"]["path"] == "metrics.processes[0].pid", r.body
    # nothing of a refused body is stored
    assert get("/api/v1/series/points?" + urllib.parse.urlencode(
        {"series": "host_overall_metrics,host=x total_cpu_usage"}))["points"] == []
    # not gzip, though it says so
    r = g.request("POST", PUSH, body=b"not gzip", headers={
        "X-API-Key": WRITE, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status == 400 and r.json()["error_code"] == "BAD_GZIP", r.body
    r = g.request("POST", PUSH, body=b"a=1", headers={"X-API-Key": WRITE, "Content-Type": "text/plain"})
    assert r.status == 415
    # the write scope is needed; a reader is refused, an anonymous caller too
    assert push(SEED, key=READ).status == 403
    r = g.request("POST", PUSH, body=json.dumps(SEED).encode(), headers={"Content-Type": "application/json"})
    assert r.status == 401


def agent_hostname():
    with open("/proc/sys/kernel/hostname") as f:
        return f.read().strip()


def test_real_agent_pushes_and_is_read_back():
    """grove-agent sampling this machine and pushing to grove serve (issue
    15: the payload is accepted by matrix's route)."""
    spool = tempfile.mkdtemp(prefix="grove-agent-spool-")
    p = subprocess.Popen([AGENT, "--server", "http://127.0.0.1:%d" % g.port, "--key", WRITE,
                          "--spool", spool, "--interval", "300ms", "--no-gpu", "--top", "20",
                          "--log-level", "warn"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        once = json.loads(subprocess.run([AGENT, "--once", "--no-gpu", "--top", "5"],
                                         capture_output=True, text=True, check=True).stdout)
        host = once.get("vm_name") or once["hostname"]
        tags = "host=%s,vm=%s" % (host, host) if once["source_type"] == "vm" else "host=" + host
        series = "host_overall_metrics,%s total_memory_usage" % tags

        def pushed():
            return len(points(series)) >= 2
        eventually(pushed, timeout=20, what="two samples pushed by the agent")
        # no batch stays in the spool (each was answered 2xx)
        eventually(lambda: not [f for f in os.listdir(spool) if f.endswith(".json.gz")],
                   what="spool emptied")
        pm = "vm_process_metrics" if once["source_type"] == "vm" else "host_process_metrics"
        del pm
        assert 0 <= points(series)[-1][1] <= 100
    finally:
        p.terminate()
        p.wait(timeout=10)
        shutil.rmtree(spool, ignore_errors=True)
    # the --once sample as it is, pushed by hand: accepted, nothing ignored
    r = push(once)
    body = ok(r)
    assert body["metadata"]["ignored_fields"] == 0, body


if __name__ == "__main__":
    main(globals())
