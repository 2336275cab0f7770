"""grove-agent against a small receiver (http.server) that records every
batch it is sent: the payload's shape, gzip and headers, order, a spool
that survives a receiver outage and kill -9 without losing or repeating a
batch, a bounded spool, 503 retried and 4xx dropped. (The matrix push
route is not built yet: this receiver stands in for it.)"""

import gzip
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from grove import ROOT, eventually, free_port, main

AGENT = os.environ.get("GROVE_AGENT_BIN", os.path.join(ROOT, "build", "grove-agent"))
KEY = "k-agent-secret"


class Receiver:
    """Records (idempotency key, payload, headers) of each 2xx'd batch.
    `answers` is a list of statuses to give before answering 200."""

    def __init__(self, port):
        self.port = port
        self.batches = []
        self.refused = []
        self.answers = []
        self.lock = threading.Lock()
        self.srv = None

    def start(self):
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with rec.lock:
                    status = rec.answers.pop(0) if rec.answers else 200
                    key = self.headers.get("Idempotency-Key")
                    if status == 200:
                        assert self.path == "/api/monitoring/push-metrics", self.path
                        assert self.headers.get("Content-Encoding") == "gzip"
                        rec.batches.append((key, json.loads(gzip.decompress(body)), dict(self.headers)))
                    else:
                        rec.refused.append((key, status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                # no keep-alive: stop() must mean connections refused
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"{}")

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        if self.srv is None:
            return
        self.srv.shutdown()
        self.srv.server_close()
        self.srv = None

    def count(self):
        with self.lock:
            return len(self.batches)


class Agent:
    def __init__(self, port, spool, *args):
        self.log = tempfile.TemporaryFile()
        self.p = subprocess.Popen([AGENT, "--server", "http://127.0.0.1:%d" % port, "--key", KEY,
                                   "--interval", "200ms", "--timeout", "2s", "--spool", spool,
                                   "--no-gpu", "--top", "3", *args],
                                  stdout=subprocess.DEVNULL, stderr=self.log)

    def logs(self):
        self.log.seek(0)
        return self.log.read().decode()

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        self.p.terminate()
        assert self.p.wait(timeout=10) == 0, self.logs()

    def ensure_stopped(self):
        """For finally blocks: no agent outlives its test, whatever failed."""
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def spooled(spool):
    return sorted(f for f in os.listdir(spool) if f.endswith(".json.gz"))


def check_order(batches):
    """Each key once; sequence numbers rising in arrival order."""
    keys = [k for k, _, _ in batches]
    assert len(keys) == len(set(keys)), "a batch arrived twice: %r" % keys
    seqs = [b["seq"] for _, b, _ in batches]
    assert seqs == sorted(seqs), seqs
    for k, b, _ in batches:
        assert k == "%s-%d" % (b["agent_id"], b["seq"]), (k, b["agent_id"], b["seq"])
    return seqs


def test_once_prints_one_sample_in_the_seed_shape():
    out = subprocess.run([AGENT, "--once", "--interval", "200ms", "--no-gpu"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["source_type"] in ("host", "vm")
    time.strptime(s["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
    m = s["metrics"]
    for k in ("cpu_usage", "memory_usage", "gpu_utilization", "power_consumption", "system_load_average"):
        assert isinstance(m[k], (int, float)), k
    assert m["processes"] and m["process_count"] >= len(m["processes"])
    p = m["processes"][0]
    for k in ("process_name", "cpu_usage_percent", "memory_usage_mb", "gpu_utilization_percent",
              "power_consumption_watts", "pid", "user", "threads"):
        assert k in p, k
    me = [p for p in m["processes"] if p["pid"] == os.getpid()]
    assert me and me[0]["process_name"].startswith("python"), me


def test_help_names_every_option():
    out = subprocess.run([AGENT, "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for opt in ("--server", "--key", "--interval", "--spool", "--spool-max", "--top", "--top-by", "--root",
                "--nvml", "--no-gpu", "--cpu-idle-watts", "--cpu-tdp-watts", "--once", "--agent-id",
                "--listen"):
        assert opt in out.stdout, opt
    bad = subprocess.run([AGENT, "--nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option '--nope'" in bad.stderr, bad.stderr


def test_batches_arrive_gzip_with_key_in_order():
    port, spool = free_port(), tempfile.mkdtemp()
    r = Receiver(port)
    r.start()
    a = Agent(port, spool)
    try:
        eventually(lambda: r.count() >= 3, timeout=20, what="three batches")
        a.stop()
        seqs = check_order(r.batches)
        assert seqs[:3] == [seqs[0], seqs[0] + 1, seqs[0] + 2], seqs
        assert all(h.get("X-API-Key") == KEY for _, _, h in r.batches)
        eventually(lambda: not spooled(spool), what="spool emptied")
        assert KEY not in a.logs()  # never logged
    finally:
        a.ensure_stopped()
        r.stop()
        shutil.rmtree(spool)


def test_spool_survives_outage_and_kill9_in_order_without_repeats():
    port, spool = free_port(), tempfile.mkdtemp()
    r = Receiver(port)
    r.start()
    a = Agent(port, spool)
    try:
        eventually(lambda: r.count() >= 2, timeout=20, what="batches before the outage")
        r.stop()  # the server goes away: connections refused
        eventually(lambda: len(spooled(spool)) >= 3, timeout=20, what="batches spooled")
        a.kill9()
        left = spooled(spool)
        a = Agent(port, spool)  # same spool: same id, numbers go on
        eventually(lambda: len(spooled(spool)) >= len(left) + 2, timeout=20, what="more spooled after restart")
        assert set(left) <= set(spooled(spool)), "a spooled batch went missing across kill -9"
        r = Receiver(port)
        r.start()
        eventually(lambda: not spooled(spool) and r.count() >= len(left) + 2, timeout=30, what="spool drained")
        a.stop()
        got = check_order(r.batches)
        kept = [int(f.split(".")[0]) for f in left]
        assert set(kept) <= set(got), (got, kept)  # every spooled batch arrived
        # nothing lost: the numbers run on, but for one the kill may have cut
        # between taking a number and spooling its batch (never sent)
        gaps = [(x, y) for x, y in zip(got, got[1:]) if y != x + 1]
        assert len(gaps) <= 1 and all(x >= kept[-1] and y == x + 2 for x, y in gaps), (got, kept)
        assert len({b["agent_id"] for _, b, _ in r.batches}) == 1
        assert "cannot reach server" in a.logs()
    finally:
        a.ensure_stopped()
        r.stop()
        shutil.rmtree(spool)


def test_spool_is_bounded_and_drops_the_oldest():
    port, spool = free_port(), tempfile.mkdtemp()
    r = Receiver(port)  # not started: the server is away
    a = Agent(port, spool, "--spool-max", "6k")
    try:
        eventually(lambda: "spool full: oldest batch dropped" in a.logs(), timeout=30, what="a drop")
        total = sum(os.path.getsize(os.path.join(spool, f)) for f in spooled(spool))
        assert total <= 6 * 1024, total
        first_kept = int(spooled(spool)[0].split(".")[0])
        assert first_kept > 1  # the oldest went
        r.start()
        eventually(lambda: r.count() >= 3, timeout=20, what="delivery after the outage")
        a.stop()
        seqs = check_order(r.batches)
        assert seqs[0] >= first_kept, (seqs, first_kept)
    finally:
        a.ensure_stopped()
        r.stop()
        shutil.rmtree(spool)


def test_503_is_retried_and_4xx_dropped():
    port, spool = free_port(), tempfile.mkdtemp()
    r = Receiver(port)
    r.answers = [503, 503, 429, 404, 400]
    r.start()
    a = Agent(port, spool)
    try:
        eventually(lambda: r.count() >= 3, timeout=20, what="delivery after refusals")
        a.stop()
        refused = r.refused
        assert [s for _, s in refused] == [503, 503, 429, 404, 400], refused
        # the batch answered 503, 429 and 404 is the one the 400 finally
        # refused: retried while the server asked or had no route, dropped
        # when it said never
        assert len({k for k, _ in refused}) == 1, refused
        keys = [k for k, _, _ in r.batches]
        assert refused[4][0] not in keys
        check_order(r.batches)
        assert "server refused batch: dropped" in a.logs()
    finally:
        a.ensure_stopped()
        r.stop()
        shutil.rmtree(spool)


# Prometheus' own parser (Debian python3-prometheus-client) reads the page
# in Debian's python, which has it whatever python runs this file.
PARSE = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    out[fam.name] = {"type": fam.type,
                     "samples": [[s.name, s.labels, s.value] for s in fam.samples]}
print(json.dumps(out))
"""


def scrape(port, method="GET"):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, "/metrics" if method != "X" else "/other")
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        c.close()


def listen_port(agent):
    import re
    m = re.search(r"serving metrics for scrapes .*port=(\d+)", agent.logs())
    return int(m.group(1)) if m else None


def test_listen_serves_the_samples_for_a_prometheus_scrape():
    port, spool = free_port(), tempfile.mkdtemp()
    r = Receiver(port)
    r.start()
    a = Agent(port, spool, "--listen", "127.0.0.1:0")
    try:
        eventually(lambda: listen_port(a), what="the scrape port in the log")
        lp = listen_port(a)
        eventually(lambda: scrape(lp)[0] == 200 and r.count() >= 1, timeout=20,
                   what="a page and a batch")
        status, headers, page = scrape(lp)
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
        parsed = subprocess.run(["/usr/bin/python3", "-c", PARSE], input=page, capture_output=True,
                                text=True, timeout=30)
        assert parsed.returncode == 0, parsed.stderr
        fams = json.loads(parsed.stdout)
        # the parser strips _total from counter families
        assert fams["grove_agent_cpu_seconds"]["type"] == "counter"
        modes = {s[1]["mode"] for s in fams["grove_agent_cpu_seconds"]["samples"]}
        assert {"user", "system", "idle", "steal"} <= modes, modes
        for f in ("grove_agent_memory_total_bytes", "grove_agent_power_watts",
                  "grove_agent_process_resident_memory_bytes", "grove_agent_info",
                  "grove_agent_batches_sent", "grove_agent_sample_timestamp_seconds"):
            assert fams[f]["samples"], f
        procs = fams["grove_agent_process_resident_memory_bytes"]["samples"]
        assert 1 <= len(procs) <= 3, procs  # --top 3 bounds the series
        # the page follows the samples
        first = fams["grove_agent_samples"]["samples"][0][2]

        def later():
            out = subprocess.run(["/usr/bin/python3", "-c", PARSE], input=scrape(lp)[2],
                                 capture_output=True, text=True, timeout=30)
            return json.loads(out.stdout)["grove_agent_samples"]["samples"][0][2] > first
        eventually(later, what="a newer sample on the page")
        st, _, body = scrape(lp, "HEAD")
        assert st == 200 and body == ""
        st, h, _ = scrape(lp, "POST")
        assert st == 405 and h["Allow"] == "GET, HEAD", (st, h)
        assert scrape(lp, "X")[0] == 404
        a.stop()
    finally:
        a.ensure_stopped()
        r.stop()
        shutil.rmtree(spool)


def test_listen_alone_spools_nothing_and_a_taken_port_is_an_error():
    spool = tempfile.mkdtemp()
    p = subprocess.Popen([AGENT, "--listen", "127.0.0.1:0", "--interval", "200ms", "--no-gpu",
                          "--spool", spool], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import re
        line = p.stderr.readline().decode()
        while "serving metrics" not in line:
            assert line, "agent exited before serving"
            line = p.stderr.readline().decode()
        lp = int(re.search(r"port=(\d+)", line).group(1))
        eventually(lambda: scrape(lp)[0] == 200, what="a page")
        assert not spooled(spool)  # scrape-only: no batches kept
        taken = subprocess.run([AGENT, "--listen", "127.0.0.1:%d" % lp, "--no-gpu", "--spool", spool],
                               capture_output=True, text=True, timeout=30)
        assert taken.returncode != 0 and "cannot listen on" in taken.stderr, taken.stderr
        bad = subprocess.run([AGENT, "--listen", "127.0.0.1", "--no-gpu", "--spool", spool],
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode != 0 and "has no port" in bad.stderr, bad.stderr
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(spool)


if __name__ == "__main__":
    main(globals())
