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
                "--nvml", "--no-gpu", "--cpu-idle-watts", "--cpu-tdp-watts", "--once", "--agent-id"):
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


if __name__ == "__main__":
    main(globals())
