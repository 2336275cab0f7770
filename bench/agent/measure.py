"""Tops the machine up to PROCS processes (400) with idle ones, runs grove-agent (pushing to a sink), prometheus-node-exporter (scraped
every 5 s) and apps.plugin (every 5 s) for the same DURATION, then prints
each one's CPU (% of one core, from /proc/PID/stat utime+stime over the
run) and resident memory (VmRSS at the end, VmHWM the peak), and
grove-agent's ratio to each peer. Processes on the machine are counted so
the figures can be compared with the issue's 400-process target."""

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

AGENT, DURATION = sys.argv[1], int(sys.argv[2])
PROCS = int(os.environ.get("PROCS", "400"))  # the target: a host with 400 processes
HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def mem_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


# idle processes up to PROCS, so every collector has as many to read
fillers = [subprocess.Popen(["sleep", str(DURATION + 60)])
           for _ in range(max(0, PROCS - sum(1 for d in os.listdir("/proc") if d.isdigit())))]
sink = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Sink)
threading.Thread(target=sink.serve_forever, daemon=True).start()
spool = tempfile.mkdtemp(prefix="grove-agent-bench-")
ne_port = free_port()
procs = {
    "grove-agent": subprocess.Popen([AGENT, "--server", "http://127.0.0.1:%d" % sink.server_port,
                                     "--interval", "5s", "--spool", spool, "--log-level", "warn"]),
    "node-exporter": subprocess.Popen(["/usr/bin/prometheus-node-exporter",
                                       "--web.listen-address=127.0.0.1:%d" % ne_port],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    # apps.plugin stops when its stdin closes: keep a pipe open
    "apps.plugin": subprocess.Popen(["/usr/lib/netdata/plugins.d/apps.plugin", "5"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
}
try:
    time.sleep(2)  # past start-up (reading configs, first scan)
    start = {n: cpu_ticks(p.pid) for n, p in procs.items()}
    t0 = time.monotonic()
    while time.monotonic() - t0 < DURATION:
        try:  # a Prometheus scrape every 5 s, as a server would
            urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ne_port, timeout=5).read()
        except OSError:
            pass
        time.sleep(5)
    el = time.monotonic() - t0
    res = {}
    for n, p in procs.items():
        if p.poll() is not None:
            print("%s exited early (status %s): left out" % (n, p.returncode), file=sys.stderr)
            continue
        cpu = 100.0 * (cpu_ticks(p.pid) - start[n]) / HZ / el
        res[n] = (cpu, mem_kib(p.pid, "VmRSS") / 1024.0, mem_kib(p.pid, "VmHWM") / 1024.0)
    nproc = sum(1 for d in os.listdir("/proc") if d.isdigit())
    print("# %d s, interval 5 s, %d processes on the machine" % (round(el), nproc))
    a = res.get("grove-agent")
    for n, (cpu, rss, hwm) in res.items():
        if n == "grove-agent":
            print("agent_cpu %.3f %%core - -" % cpu)
            print("agent_rss %.1f MiB - -" % rss)
            print("agent_rss_peak %.1f MiB - -" % hwm)
            continue
        if a:
            print("agent_cpu_vs_%s %.3f %%core %.3f %.2f" % (n, a[0], cpu, a[0] / cpu if cpu else float("inf")))
            print("agent_rss_vs_%s %.1f MiB %.1f %.2f" % (n, a[1], rss, a[1] / rss if rss else float("inf")))
finally:
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    for p in procs.values():
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    for f in fillers:
        f.terminate()
        f.wait()
    sink.shutdown()
    shutil.rmtree(spool, ignore_errors=True)
