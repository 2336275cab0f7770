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

from grove import ROOT, EventStream, Grove, Postgres, add_key, eventually, main
from matrix_fixture import start

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
    g, WRITE, READ = start(("k-agent", "write"), ("k-read", "read"), web_root=False)


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


def points(series, grove=None, key=None):
    return get("/api/v1/series/points?" + urllib.parse.urlencode({"series": series}), grove, key)["points"]


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
    other = add_key(g, "k-agent-2", "write")
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
        vm = once["source_type"] == "vm"
        name = urllib.parse.quote(once.get("vm_name") or once["hostname"])
        base = "/api/vm-process-metrics/%s?vm_name=" if vm else "/api/host-process-metrics/%s?host="
        overall = base % "range" + name + "&metric=total_memory_usage"

        def pushed():
            return len(get(overall)["points"]) >= 2
        eventually(pushed, timeout=20, what="two samples pushed by the agent")
        # no batch stays in the spool (each was answered 2xx)
        eventually(lambda: not [f for f in os.listdir(spool) if f.endswith(".json.gz")],
                   what="spool emptied")
        assert 0 <= get(overall)["points"][-1][1] <= 100
        # the processes it pushed read back from their own series
        latest = get(base % "latest" + name)
        assert latest and all(p["pid"] is not None for p in latest), latest
        p0 = latest[0]
        r = get(base % "range" + name + "&" + urllib.parse.urlencode(
            {"process": p0["process_name"], "pid": p0["pid"], "metric": "memory_usage_mb"}))
        pm = "vm_process_metrics" if vm else "host_process_metrics"
        assert r["measurement"] == pm and r["series"].startswith(pm + ","), r
        assert r["points"] and all(v >= 0 for _, v in r["points"]), (p0, r)
    finally:
        p.terminate()
        p.wait(timeout=10)
        shutil.rmtree(spool, ignore_errors=True)
    # the --once sample as it is, pushed by hand: accepted, nothing ignored
    r = push(once)
    body = ok(r)
    assert body["metadata"]["ignored_fields"] == 0, body


def test_monitoring_reads_every_route():
    ok(push(agent_sample("node-r", procs=[proc(11, "trainer", 90.0, mem=4000.0, power=200.0, gpu=95.0),
                                          proc(12, "sidecar", 2.0, mem=50.0, power=1.0)])))
    ok(push(agent_sample("vm-r", vm=True, procs=[proc(21, "java", 40.0, mem=2048.0)])))
    hosts = {h["host_name"]: h for h in get("/api/host-process-metrics/hosts")}
    h = hosts["node-r"]
    assert h["total_cpu_usage"] == 20.0 and h["total_power_consumption"] == 150.0, h
    assert h["cpu_model"] == "Test CPU" and h["live_processes"] == 2 and h["stale"] is False, h
    assert h["metrics"]["cpu_idle_power_watts"] == 40.0 and h["metrics"]["disks"][0]["name"] == "sda", h
    assert h["gpus"][0]["name"] == "NVIDIA L4" and h["gpus"][0]["power_watts"] == 30.0, h
    assert "vm-r" not in hosts
    one = get("/api/host-process-metrics/hosts?host=node-r")
    assert [x["host_name"] for x in one] == ["node-r"]
    latest = get("/api/host-process-metrics/latest?host=node-r")
    assert [p["process_name"] for p in latest] == ["trainer", "sidecar"], latest
    t = latest[0]
    assert t["pid"] == 11 and t["command"] == "trainer --serve" and t["user"] == "svc", t
    assert t["memory_usage_mb"] == 4000.0 and t["io_write_bytes"] == 8192.0, t
    for by, first in (("cpu", "trainer"), ("memory", "trainer"), ("gpu", "trainer"), ("power", "trainer")):
        top = get("/api/host-process-metrics/top?by=%s&limit=1&host=node-r" % by)
        assert len(top) == 1 and top[0]["process_name"] == first, (by, top)
    top = get("/api/host-process-metrics/top?by=cpu&limit=1000")
    cpus = [p["cpu_usage_percent"] for p in top]
    assert cpus == sorted(cpus, reverse=True) and 90.0 in cpus, cpus
    # VMs
    snap = get("/api/v1/metrics/vm-snapshot")
    vms = {v["vm_name"]: v for v in snap}
    assert vms["vm-r"]["source_type"] == "vm" and vms["vm-r"]["hypervisor"] == "KVM", snap
    assert get("/api/vm-process-metrics/vms?vm_name=vm-r")[0]["vm_name"] == "vm-r"
    vp = get("/api/vm-process-metrics/latest?vm_name=vm-r")
    assert [p["process_name"] for p in vp] == ["java"] and vp[0]["vm_name"] == "vm-r", vp
    assert get("/api/vm-process-metrics/top?by=memory&vm_name=vm-r")[0]["memory_usage_mb"] == 2048.0
    # ranges with a step, for a process and for the host
    r = get("/api/host-process-metrics/range?host=node-r&process=trainer&pid=11&metric=power_consumption_watts&step=1m")
    assert r["series"] == "host_process_metrics,host=node-r,pid=11,process=trainer power_consumption_watts", r
    assert r["points"] and r["points"][-1][1] == 200.0, r
    r = get("/api/host-process-metrics/range?host=node-r&metric=total_power_consumption")
    assert r["points"][-1][1] == 150.0, r
    r = get("/api/vm-process-metrics/range?vm_name=vm-r&process=java&pid=21")
    assert r["metric"] == "cpu_usage_percent" and r["points"][-1][1] == 40.0, r
    r = get("/api/vm-process-metrics/range?vm_name=vm-r&metric=total_memory_usage")
    assert r["points"][-1][1] == 30.0, r
    # the dashboard's aggregates
    d = get("/api/dashboard/overview")
    assert d["hosts"]["reporting"] >= 1 and d["vms"]["reporting"] >= 1, d
    assert d["gpus"]["count"] >= 2 and d["power"]["total_watts_now"] >= 300.0, d
    assert d["processes"]["live"] >= 3, d
    # refusals
    for path, code in (("/api/host-process-metrics/top?by=disk", "INVALID_QUERY"),
                       ("/api/host-process-metrics/top?limit=0", "INVALID_QUERY"),
                       ("/api/host-process-metrics/range?metric=total_cpu_usage", "INVALID_QUERY"),
                       ("/api/host-process-metrics/range?host=node-r&metric=nope", "INVALID_QUERY"),
                       ("/api/host-process-metrics/range?host=node-r&process=trainer", "INVALID_QUERY"),
                       ("/api/host-process-metrics/range?host=node-r&pid=x1&process=a", "INVALID_QUERY")):
        r = g.request("GET", path, headers={"X-API-Key": READ})
        assert r.status == 400 and r.json()["error_code"] == code, (path, r.body)
    assert g.request("GET", "/api/dashboard/overview").status == 401


def test_vm_range_finds_the_series_of_the_host_that_pushed_it():
    """A VM's overall series is tagged with the host its agent reported
    (host=hv-a,vm=vm-moved), not host=<vm_name>: the range still reads it,
    and after the VM moves to another host, that host's series."""
    s = agent_sample("vm-moved", vm=True, ts=now_iso(-2), procs=[proc(31, "nginx", 12.0)])
    s["hostname"] = "hv-a"
    ok(push(s))
    r = get("/api/vm-process-metrics/range?vm_name=vm-moved&metric=total_memory_usage")
    assert r["series"] == "host_overall_metrics,host=hv-a,vm=vm-moved total_memory_usage", r
    assert r["host_name"] == "hv-a" and [p[1] for p in r["points"]] == [30.0], r
    r = get("/api/vm-process-metrics/range?vm_name=vm-moved&metric=total_cpu_usage&step=1m")
    assert r["points"] and r["points"][-1][1] == 20.0, r
    # its processes are keyed by the VM alone
    r = get("/api/vm-process-metrics/range?vm_name=vm-moved&process=nginx&pid=31")
    assert [p[1] for p in r["points"]] == [12.0], r
    # migrated: the newer sample comes from hv-b
    s = agent_sample("vm-moved", vm=True, ts=now_iso(-1))
    s["hostname"] = "hv-b"
    s["metrics"]["total_memory_usage"] = s["metrics"]["memory_usage"] = 55.0
    ok(push(s))
    r = get("/api/vm-process-metrics/range?vm_name=vm-moved&metric=total_memory_usage")
    assert r["host_name"] == "hv-b" and [p[1] for p in r["points"]] == [55.0], r
    # a VM never seen: an empty series, not an error
    r = get("/api/vm-process-metrics/range?vm_name=vm-never&metric=total_memory_usage")
    assert r["points"] == [], r


def test_live_topic_gets_each_push():
    es = EventStream(g, "topic=matrix/hosts/node-live", headers={"X-API-Key": READ})
    try:
        assert es.response.status == 200, es.response.status
        ok(push(agent_sample("node-live", procs=[proc(3, "busy", 77.0), proc(4, "idle", 1.0)])))
        ev = es.next_event(timeout=10)
        d = ev["data"].get("data", ev["data"])
        assert d["id"] == "node-live" and d["source_type"] == "host", d
        assert d["metrics"]["total_cpu_usage"] == 20.0 and d["processes"] == 2, d
        assert d["top_processes"][0]["process_name"] == "busy", d
    finally:
        es.close()
    anon = EventStream(g, "topic=matrix/vms/x")
    assert anon.response.status == 401
    anon.close()


def write_lines(lines, grove=None, key=None):
    r = (grove or g).request("POST", "/api/v1/write", body="\n".join(lines).encode(),
                             headers={"X-API-Key": key or WRITE})
    assert r.status == 204, r.body


def test_telegraf_lines_feed_the_same_views():
    """Lines as Telegraf's plugins write them (field sets from their READMEs)."""
    ns = time.time_ns() // 10**9 * 10**9
    write_lines([
        "cpu,cpu=cpu-total,host=tele-1 usage_guest=0,usage_idle=87.5,usage_iowait=0.5,usage_irq=0,"
        "usage_nice=0,usage_softirq=0.2,usage_steal=0.1,usage_system=4.1,usage_user=7.6 %d" % ns,
        "cpu,cpu=cpu0,host=tele-1 usage_idle=80,usage_user=20 %d" % ns,
        "cpu,cpu=cpu1,host=tele-1 usage_idle=95,usage_user=5 %d" % ns,
        "mem,host=tele-1 active=3000000000i,available=9000000000i,available_percent=56.25,"
        "buffered=100i,cached=200i,free=8000000000i,inactive=1i,slab=1i,total=16000000000i,"
        "used=7000000000i,used_percent=43.75,swap_total=2000000000i,swap_free=1500000000i %d" % ns,
        "system,host=tele-1 load1=1.25,load15=0.75,load5=1,n_cpus=2i,n_users=1i %d" % ns,
        "procstat,host=tele-1,pidfile=/var/run/nginx.pid,process_name=nginx,user=www-data "
        "cpu_time_user=0.14,cpu_usage=12.5,memory_rss=104857600i,memory_vms=4i,num_threads=4i,"
        "pid=1234i,read_bytes=4096i,read_count=3i,write_bytes=8192i,write_count=2i %d" % ns,
        "procstat,host=tele-1,pid=77,process_name=redis-server cpu_usage=3,memory_rss=1048576i %d" % ns,
        "nvidia_smi,compute_mode=Default,host=tele-1,index=0,name=GeForce\\ GTX\\ 1070,pstate=P2,"
        "uuid=GPU-823bc202-6279-6f2c-d729-868a30f14d96 fan_speed=100i,memory_free=7563i,"
        "memory_total=8112i,memory_used=549i,power_draw=120.5,temperature_gpu=53i,"
        "utilization_gpu=100i,utilization_memory=90i %d" % ns,
        "powerstat_package,host=tele-1,package_id=0 current_dram_power_consumption_watts=2.96,"
        "current_power_consumption_watts=10.92,thermal_design_power_watts=125 %d" % ns,
    ])

    def host():
        hs = get("/api/host-process-metrics/hosts?host=tele-1")
        return hs[0] if hs and hs[0]["live_processes"] == 2 and hs[0]["gpus"] else None
    h = eventually(host, what="Telegraf lines in matrix's state")
    assert h["total_cpu_usage"] == 12.5 and h["total_memory_usage"] == 43.75, h
    assert h["total_gpu_usage"] == 100.0 and h["system_load_average"] == 1.25, h
    assert abs(h["total_power_consumption"] - (10.92 + 2.96 + 120.5)) < 1e-9, h
    assert h["metrics"]["cpu_cores_percent"] == [20.0, 5.0], h
    assert h["gpus"][0]["name"] == "GeForce GTX 1070" and h["gpus"][0]["memory_used_bytes"] == 549 * 1048576, h
    procs = {p["process_name"]: p for p in get("/api/host-process-metrics/latest?host=tele-1")}
    assert procs["nginx"]["pid"] == 1234 and procs["nginx"]["memory_usage_mb"] == 100.0, procs
    assert procs["nginx"]["user"] == "www-data" and procs["nginx"]["io_read_bytes"] == 4096.0, procs
    assert procs["redis-server"]["pid"] == 77, procs
    # the same series a push writes, and Telegraf's own stay as written
    assert points("host_overall_metrics,host=tele-1 total_cpu_usage") == [[ns, 12.5]]
    assert points("host_process_metrics,host=tele-1,pid=1234,process=nginx cpu_usage_percent") == [[ns, 12.5]]
    assert points("host_gpu_metrics,gpu=0,host=tele-1 power_watts") == [[ns, 120.5]]
    assert points("cpu,cpu=cpu-total,host=tele-1 usage_idle") == [[ns, 87.5]]



def procstat(host, pid, name, ts, created, reads, writes, disk=True, **extra):
    """A procstat line as Telegraf writes it with pid_tag = true (the field
    set of its README: cumulative counters since the process started)."""
    f = {"child_major_faults": "0i", "child_minor_faults": "0i", "created_at": "%di" % created,
         "cpu_time": "0i", "cpu_time_iowait": "0", "cpu_time_system": "616.98",
         "cpu_time_user": "2564.81", "cpu_usage": "12.5", "involuntary_context_switches": "151496i",
         "major_faults": "8609i", "memory_rss": "148643840i", "memory_swap": "0i",
         "memory_usage": "1.78", "memory_vms": "1435688960i", "minor_faults": "1856550i",
         "nice_priority": "20i", "num_fds": "11i", "num_threads": "18i", "ppid": "1i",
         "read_bytes": "%di" % (reads * 1000), "read_count": "%di" % reads,
         "voluntary_context_switches": "1058996i", "write_bytes": "%di" % (writes * 2000),
         "write_count": "%di" % writes}
    if disk:
        f["disk_read_bytes"] = "%di" % (reads * 10)
        f["disk_write_bytes"] = "%di" % (writes * 20)
    f.update(extra)
    return "procstat,host=%s,pid=%d,process_name=%s,user=root %s %d" % (
        host, pid, name, ",".join("%s=%s" % kv for kv in sorted(f.items())), ts)


def test_telegraf_procstat_counters_become_interval_figures():
    """read_count + write_count are cumulative in procstat: io_operations is
    the interval's difference per pid, a restart under the same pid counts
    the new process from zero; the bytes stay cumulative, the storage ones."""
    t0 = time.time_ns() // 10**10 * 10**10 - 60 * 10**9
    s = 10**9
    start = t0 - 3600 * s
    write_lines([procstat("tele-c", 4242, "trainer", t0, start, 100, 50),
                 procstat("tele-c", 4243, "loader", t0, start, 7, 1, disk=False)])
    write_lines([procstat("tele-c", 4242, "trainer", t0 + 10 * s, start, 160, 70),
                 procstat("tele-c", 4243, "loader", t0 + 10 * s, start, 9, 1, disk=False),
                 # started between the collections: all its calls are the interval's
                 procstat("tele-c", 5000, "worker", t0 + 10 * s, t0 + 4 * s, 30, 3)])
    # trainer restarted under the same pid (created_at moved, counters from zero)
    write_lines([procstat("tele-c", 4242, "trainer", t0 + 20 * s, t0 + 15 * s, 5, 2),
                 procstat("tele-c", 4243, "loader", t0 + 20 * s, start, 9, 4, disk=False)])
    # an older Telegraf without created_at: a count that went down is a restart
    write_lines(["procstat,host=tele-c,pid=4243,process_name=loader cpu_usage=1,read_count=2i,"
                 "write_count=1i,read_bytes=0i,write_bytes=0i %d" % (t0 + 30 * s)])

    def ops(pid, name):
        return points("host_process_metrics,host=tele-c,pid=%d,process=%s io_operations" % (pid, name))
    trainer = eventually(lambda: len(ops(4242, "trainer")) == 2 and ops(4242, "trainer"),
                         what="trainer's interval figures")
    assert trainer == [[t0 + 10 * s, 80.0], [t0 + 20 * s, 7.0]], trainer
    loader = eventually(lambda: len(ops(4243, "loader")) == 3 and ops(4243, "loader"),
                        what="loader's interval figures")
    assert loader == [[t0 + 10 * s, 2.0], [t0 + 20 * s, 3.0], [t0 + 30 * s, 3.0]], loader
    assert ops(5000, "worker") == [[t0 + 10 * s, 33.0]]
    # bytes: cumulative, disk_* (what reached storage) when sent, else read_bytes
    rd = points("host_process_metrics,host=tele-c,pid=4242,process=trainer io_read_bytes")
    assert rd == [[t0, 1000.0], [t0 + 10 * s, 1600.0], [t0 + 20 * s, 50.0]], rd
    wr = points("host_process_metrics,host=tele-c,pid=4243,process=loader io_write_bytes")
    assert wr == [[t0, 2000.0], [t0 + 10 * s, 2000.0], [t0 + 20 * s, 8000.0], [t0 + 30 * s, 0.0]], wr
    procs = {p["pid"]: p for p in get("/api/host-process-metrics/latest?host=tele-c")}
    assert procs[4242]["io_operations"] == 7.0 and procs[4242]["ppid"] == 1, procs[4242]
    assert procs[4242]["io_write_bytes"] == 40.0, procs[4242]

def test_concurrent_pushes_to_one_host_keep_its_cap():
    """Pushes of one host at the same time, each bringing new processes,
    while flushes of other hosts' state run: the host ends with exactly its
    cap of live processes, and the answers accepted exactly that many."""
    import threading
    b = Grove("--gate-refresh", "200ms", "--matrix-max-processes-per-host", "50", web_root=False)
    try:
        w = add_key(b, "k-w", "write")
        rk = add_key(b, "k-r", "read")
        accepted = []
        lock = threading.Lock()

        def pusher(t):
            for round_ in range(3):
                procs = [proc(100000 * t + 100 * round_ + i, "p", 1.0) for i in range(20)]
                r = push(agent_sample("cap-race", procs=procs), key=w, grove=b)
                assert r.status in (200, 422), (r.status, r.body)
                d = r.json()["data"] if r.status == 200 else r.json()["details"]
                # and another host's state, so flushes are under way meanwhile
                ok(push(agent_sample("other-%d-%d" % (t, round_), procs=procs), key=w, grove=b))
                with lock:
                    accepted.append(d["accepted_processes"])

        threads = [threading.Thread(target=pusher, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hosts = get("/api/host-process-metrics/hosts?host=cap-race", grove=b, key=rk)
        assert hosts[0]["live_processes"] == 50, hosts
        assert sum(accepted) == 50, accepted
    finally:
        b.stop()


def test_a_host_repeating_its_processes_stays_within_its_cap():
    """A push naming exactly the processes of its host's last push is taken
    without looking the host's live processes up (they are all live); any
    other push is checked whole, so the cap holds whatever the order."""
    b = Grove("--gate-refresh", "200ms", "--matrix-max-processes-per-host", "3", web_root=False)
    try:
        w = add_key(b, "k-w", "write")
        rk = add_key(b, "k-r", "read")

        def send(names, status=200, cpu=1.0):
            procs = [proc(ord(n), n, cpu) for n in names]
            r = push(agent_sample("rep", procs=procs), key=w, grove=b)
            assert r.status == status, (names, r.status, r.body)
            return r.json()["data"] if status == 200 else r.json()["details"]

        assert send("abc")["accepted_processes"] == 3
        for _ in range(3):
            d = send("abc")
            assert d["accepted_processes"] == 3 and d.get("refused_processes", 0) == 0, d
        d = send("abcd", 422)
        assert d["accepted_processes"] == 3 and d["refused"] == [{"pid": ord("d"), "process_name": "d"}], d
        send("abc")
        send("ab")  # a subset: c stays live until it expires
        send("ab")
        d = send("abe", 422)
        assert d["refused"] == [{"pid": ord("e"), "process_name": "e"}], d
        # duplicates in a repeated push: the last one is kept
        procs = [proc(ord("a"), "a", 1.0), proc(ord("b"), "b", 1.0), proc(ord("a"), "a", 7.0)]
        d = ok(push(agent_sample("rep", procs=procs), key=w, grove=b))["data"]
        assert d["accepted_processes"] == 2, d
        live = get("/api/host-process-metrics/latest?host=rep", grove=b, key=rk)
        assert sorted(p["process_name"] for p in live) == ["a", "b", "c"], live
        assert [p["cpu_usage_percent"] for p in live if p["process_name"] == "a"] == [7.0], live
        # samples of one host in one body: each sees what those before it kept
        batch = [agent_sample("rep2", procs=[proc(ord(n), n, 1.0) for n in names])
                 for names in ("ab", "ab", "cd", "ab")]
        r = push(batch, key=w, grove=b)
        assert r.status == 422, r.body
        assert r.json()["details"]["refused"] == [{"pid": ord("c"), "process_name": "c"}], r.body
        live = get("/api/host-process-metrics/latest?host=rep2", grove=b, key=rk)
        assert sorted(p["process_name"] for p in live) == ["a", "b", "d"], live
    finally:
        b.stop()


def test_state_keeps_every_digit_of_a_figure():
    """The current state gives back the figures pushed, every digit (the
    series do too), and the largest double is a figure, not a dropped key."""
    b = Grove("--gate-refresh", "200ms", web_root=False)
    try:
        w = add_key(b, "k-w", "write")
        rk = add_key(b, "k-r", "read")
        s = agent_sample("digits")
        s["metrics"]["total_cpu_usage"] = 0.30000000000000004
        s["metrics"]["total_memory_usage"] = 1.2345678901234567
        s["metrics"]["total_power_consumption"] = 1.7976931348623157e308
        s["metrics"]["system_load_average"] = 2.2250738585072014e-308
        ok(push(s, key=w, grove=b))
        h = get("/api/host-process-metrics/hosts?host=digits", grove=b, key=rk)[0]
        assert h["total_cpu_usage"] == 0.30000000000000004, h
        assert h["total_memory_usage"] == 1.2345678901234567, h
        assert h["total_power_consumption"] == 1.7976931348623157e308, h
        assert h["system_load_average"] == 2.2250738585072014e-308, h
    finally:
        b.stop()


def test_cap_of_processes_per_host_and_expiry():
    b = Grove("--gate-refresh", "200ms", "--matrix-max-processes-per-host", "2",
              "--matrix-process-expiry", "1s", web_root=False)
    try:
        w = add_key(b, "k-w", "write")
        rk = add_key(b, "k-r", "read")
        r = push(agent_sample("capped", procs=[proc(1, "a", 1.0), proc(2, "b", 2.0), proc(3, "c", 3.0)]),
                 key=w, grove=b)
        assert r.status == 422, r.body
        e = r.json()
        assert e["status"] == "error" and e["error_code"] == "TOO_MANY_PROCESSES", e
        d = e["details"]
        assert d["accepted_processes"] == 2 and d["refused_processes"] == 1, d
        assert d["max_processes_per_host"] == 2 and d["host"] == "capped", d
        assert d["refused"] == [{"pid": 1, "process_name": "a"}], d
        # what was accepted stays: the host, and two processes
        live = get("/api/host-process-metrics/latest?host=capped", grove=b, key=rk)
        assert sorted(p["process_name"] for p in live) == ["b", "c"], live
        assert points("host_process_metrics,host=capped,pid=3,process=c cpu_usage_percent", b, rk)
        assert not points("host_process_metrics,host=capped,pid=1,process=a cpu_usage_percent", b, rk)
        # known processes go on being taken; b alone now: c expires, then a new one fits
        def c_gone():
            ok(push(agent_sample("capped", procs=[proc(2, "b", 2.5)]), key=w, grove=b))
            names = [p["process_name"] for p in get("/api/host-process-metrics/latest?host=capped",
                                                    grove=b, key=rk)]
            return names == ["b"]
        eventually(c_gone, timeout=15, what="process c expired")
        ok(push(agent_sample("capped", procs=[proc(2, "b", 2.5), proc(9, "new", 1.0)]), key=w, grove=b))
        live = get("/api/host-process-metrics/latest?host=capped", grove=b, key=rk)
        assert sorted(p["process_name"] for p in live) == ["b", "new"], live
    finally:
        b.stop()


def test_two_instances_on_postgres_share_state_and_keys():
    """Scale-out: the current state and the idempotency keys live in
    PostgreSQL, so a push to one instance is read, and its repeat refused,
    on another. The state is written behind (--matrix-state-flush, 1 s):
    the instance pushed to sees it at once, another one after its flush."""
    pg = Postgres()
    a = b = None
    try:
        a = Grove("--store", pg.url, "--gate-refresh", "200ms", web_root=False)
        b = Grove("--store", pg.url, "--gate-refresh", "200ms", web_root=False)
        w = add_key(a, "pg-w", "write", store=pg.url)
        rk = add_key(a, "pg-r", "read", store=pg.url)
        for x in (a, b):
            eventually(lambda: x.request("GET", "/auth/me", headers={"X-API-Key": rk}).status == 200,
                       what="key loaded")
            eventually(lambda: x.request("GET", "/auth/me", headers={"X-API-Key": w}).status == 200,
                       what="key loaded")
        s = agent_sample("pg-host", procs=[proc(1, "a", 5.0), proc(2, "b", 9.0), proc(2, "b", 10.0)])
        first = push(s, key=w, grove=a, headers={"Idempotency-Key": "pg-1"}, gz=True)
        d = ok(first)["data"]
        assert d["accepted_processes"] == 2, d  # a duplicate keeps the last
        again = push(s, key=w, grove=b, headers={"Idempotency-Key": "pg-1"}, gz=True)
        assert ok(again)["data"] == d and again.header("Idempotent-Replayed") == "true"
        hosts = eventually(lambda: get("/api/host-process-metrics/hosts?host=pg-host", grove=b, key=rk),
                           what="a's flush of pg-host")
        assert hosts[0]["live_processes"] == 2 and hosts[0]["gpus"][0]["name"] == "NVIDIA L4", hosts
        top = get("/api/host-process-metrics/top?by=cpu&host=pg-host", grove=b, key=rk)
        assert [p["process_name"] for p in top] == ["b", "a"] and top[0]["cpu_usage_percent"] == 10.0, top
        ok(push(agent_sample("pg-vm", vm=True), key=w, grove=b))
        assert get("/api/v1/metrics/vm-snapshot", grove=b, key=rk)[0]["vm_name"] == "pg-vm"
        snap = eventually(lambda: get("/api/v1/metrics/vm-snapshot", grove=a, key=rk),
                          what="b's flush of pg-vm")
        assert snap[0]["vm_name"] == "pg-vm", snap
        dash = get("/api/dashboard/overview", grove=a, key=rk)
        assert dash["hosts"]["total"] == 1 and dash["vms"]["total"] == 1, dash
        r = get("/api/host-process-metrics/range?host=pg-host&process=b&pid=2", grove=a, key=rk)
        assert r["points"][-1][1] == 10.0, r
    finally:
        for x in (a, b):
            if x is not None:
                x.stop()
        pg.stop()


if __name__ == "__main__":
    main(globals())
