"""bench/matrix/push.py PORT KEY DURATION [HOSTS PROCS CONNS] — push-metrics
end to end: pre-built, gzip'ed agent-shaped samples (one a request, PROCS
processes each, HOSTS hosts taking turns, every sample a new timestamp and
Idempotency-Key) sent over CONNS keep-alive connections for DURATION
seconds; each request answered 200 means its points are durable, the
current state taken (written behind within --matrix-state-flush) and the
live topic published. A first sample of
every host goes before the clock starts (its series are new: the steady
state is hosts reporting again). Prints
`process_samples_per_second=N points_per_second=M requests=R refused=F`."""
import gzip
import http.client
import json
import sys
import threading
import time

port, key, duration = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
hosts = int(sys.argv[4]) if len(sys.argv) > 4 else 64
procs = int(sys.argv[5]) if len(sys.argv) > 5 else 500
conns = int(sys.argv[6]) if len(sys.argv) > 6 else 4


def sample(host, ts):
    return {"timestamp": ts, "source_type": "host", "agent_id": "bench-%d" % host, "hostname": "bench-%d" % host,
            "metrics": {"total_cpu_usage": 50.0, "total_memory_usage": 40.0, "total_gpu_usage": 0.0,
                        "total_power_consumption": 200.0, "system_load_average": 1.0,
                        "processes": [{"pid": 1000 + p, "ppid": 1, "process_name": "worker-%d" % (p % 50),
                                       "command": "/usr/bin/worker --id %d" % p, "user": "svc",
                                       "cgroup": "/system.slice/worker.service",
                                       "cpu_usage_percent": (p * 7) % 100 / 3.0, "memory_usage_mb": 100.0 + p,
                                       "rss_bytes": (100 + p) << 20, "threads": 4,
                                       "gpu_utilization_percent": 0.0, "gpu_memory_bytes": 0,
                                       "power_consumption_watts": 0.5, "io_operations": p,
                                       "io_read_bytes": p << 12, "io_write_bytes": p << 13}
                                      for p in range(procs)]}}


# enough distinct bodies for the run (up to 400 requests a second): one
# per (host, second), built first from one text per host (only the
# timestamp differs)
start = int(time.time()) - 3600
need = int(sys.argv[7]) if len(sys.argv) > 7 else int(duration * 400) + hosts
texts = [json.dumps(sample(h, "@TS@")) for h in range(hosts)]
bodies = []
for i in range(need):
    h, k = i % hosts, i // hosts
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + k))
    bodies.append(gzip.compress(texts[h].replace("@TS@", ts).encode(), 1))
lock = threading.Lock()
state = {"next": 0, "ok": 0, "points": 0, "bad": 0}
deadline = [0.0]
limit = [0]


def worker():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.time() < deadline[0]:
        with lock:
            i = state["next"]
            state["next"] += 1
        if i >= limit[0]:
            break
        c.request("POST", "/api/monitoring/push-metrics", body=bodies[i],
                  headers={"X-API-Key": key, "Content-Type": "application/json",
                           "Content-Encoding": "gzip", "Idempotency-Key": "bench-%d" % i})
        r = c.getresponse()
        body = r.read()
        with lock:
            if r.status == 200:
                state["ok"] += 1
                state["points"] += json.loads(body)["data"]["points_written"]
            else:
                state["bad"] += 1
                if state["bad"] == 1:
                    print("unexpected answer %d: %s" % (r.status, body[:200]), file=sys.stderr)


# the first sample of each host, untimed: every series is made once
deadline[0] = time.time() + 3600
limit = [hosts]
warm = [threading.Thread(target=worker) for _ in range(conns)]
for t in warm:
    t.start()
for t in warm:
    t.join()
state.update({"next": hosts, "ok": 0, "points": 0})
limit[0] = len(bodies)
t0 = time.time()
deadline[0] = t0 + duration
ts = [threading.Thread(target=worker) for _ in range(conns)]
for t in ts:
    t.start()
for t in ts:
    t.join()
el = time.time() - t0
print("process_samples_per_second=%.0f points_per_second=%.0f requests=%d refused=%d"
      % (state["ok"] * procs / el, state["points"] / el, state["ok"], state["bad"]))
