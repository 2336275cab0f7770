"""Work off the loop (docs/platform.md): store work, CPU-heavy work and long
waits run on pools of their own, so slow model answers or a flood of
sign-ins never hold up ingestion or /ready. Every check waits for a
condition (the model server holding its answers, a pool's gauges), never
for time to pass."""

import gzip
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from grove import GROVE, Grove, eventually, main, read_response, stop_all


class SlowModel(BaseHTTPRequestHandler):
    """An Ollama that holds every answer until the test releases it."""
    protocol_version = "HTTP/1.1"
    lock = threading.Condition()
    arrived = 0
    release = threading.Event()

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        with SlowModel.lock:
            SlowModel.arrived += 1
            SlowModel.lock.notify_all()
        SlowModel.release.wait(60)
        out = b"".join(json.dumps({"message": {"content": w}, "done": d}).encode() + b"\n"
                       for w, d in (("slow but ", False), ("sure", False), ("", True)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


model = ThreadingHTTPServer(("127.0.0.1", 0), SlowModel)
model.daemon_threads = True
threading.Thread(target=model.serve_forever, daemon=True).start()
MODEL_URL = "http://127.0.0.1:%d" % model.server_address[1]


def metric(grove, name, pool):
    body = grove.request("GET", "/metrics").body.decode()
    m = re.search(r'^%s\{pool="%s"\} ([0-9.e+-]+)$' % (re.escape(name), pool), body, re.M)
    return float(m.group(1)) if m else None


def key(grove, scopes):
    out = subprocess.run([GROVE, "key", "add", "k", "--scopes", scopes, "--data-dir", grove.data_dir],
                         capture_output=True, text=True, check=True)
    k = out.stdout.split()[1]
    eventually(lambda: grove.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200, what="key")
    return k


def write(grove, k, lines, gz=False):
    body = "\n".join(lines).encode()
    h = {"X-API-Key": k, "Content-Type": "text/plain"}
    if gz:
        body = gzip.compress(body)
        h["Content-Encoding"] = "gzip"
    return grove.request("POST", "/api/v1/write?precision=s", body=body, headers=h, timeout=30)


def ask(grove, k, stream):
    return grove.request("POST", "/api/v1/flow/ask", headers={"X-API-Key": k, "Content-Type": "application/json"},
                         body=json.dumps({"question": "How is the air?", "stream": stream}).encode(), timeout=30)


def raw(path, body, headers=""):
    return ("POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n%s"
            "Content-Length: %d\r\n\r\n" % (path, headers, len(body))).encode() + body


def test_slow_model_answers_do_not_hold_up_ingestion_or_ready():
    SlowModel.release.clear()
    SlowModel.arrived = 0
    grove = Grove("--llm-url", MODEL_URL, "--llm-model", "tiny", "--gate-refresh", "200ms",
                  "--pool-wait-threads", "6", "--pool-wait-queue", "1")
    socks = []
    try:
        k = key(grove, "read,write")
        now = int(time.time())
        # four streamed answers (202 at once) and two answers the client waits for
        for _ in range(4):
            r = ask(grove, k, True)
            assert r.status == 202, r.body
        for _ in range(2):
            s = grove.connect(timeout=60)
            s.sendall(raw("/api/v1/flow/ask", json.dumps({"question": "How is the air?"}).encode(),
                          "X-API-Key: %s\r\n" % k))
            socks.append(s)
        with SlowModel.lock:
            assert SlowModel.lock.wait_for(lambda: SlowModel.arrived == 6, 30), SlowModel.arrived
        eventually(lambda: metric(grove, "grove_pool_active", "wait") == 6, what="six model calls running")
        # every thread of the wait pool waits on the model: ingestion and /ready go on
        r = write(grove, k, ["air_quality,station=p-1,region=east pm25=%d %d" % (10 + i, now - 60 + i)
                             for i in range(50)])
        assert r.status == 204, r.body
        assert grove.request("GET", "/ready").status == 200
        assert grove.request("GET", "/api/v1/flow/stations", headers={"X-API-Key": k}).status == 200
        # one more model answer waits in the queue; the next is refused at once
        s = grove.connect(timeout=60)
        s.sendall(raw("/api/v1/flow/ask", json.dumps({"question": "And now?"}).encode(), "X-API-Key: %s\r\n" % k))
        socks.append(s)
        eventually(lambda: metric(grove, "grove_pool_queued", "wait") == 1, what="a queued model call")
        r = ask(grove, k, True)
        assert r.status == 503 and r.json()["error_code"] == "BUSY", r.body
        assert r.header("Retry-After") == "1" and r.json()["details"]["pool"] == "wait"
        # ...all while the model still holds every answer
        assert not SlowModel.release.is_set() and SlowModel.arrived == 6
        assert metric(grove, "grove_pool_active", "wait") == 6
        SlowModel.release.set()
        for s in socks:
            r = read_response(s)
            assert r.status == 200 and r.json()["data"]["answer"] == "slow but sure", r.body
        eventually(lambda: metric(grove, "grove_pool_active", "wait") == 0, what="wait pool idle")
    finally:
        SlowModel.release.set()
        for s in socks:
            s.close()
        stop_all(grove)


def test_a_flood_of_sign_ins_does_not_hold_up_ingestion_and_large_bodies_wait_their_turn():
    hold = tempfile.NamedTemporaryFile(prefix="grove-hold-", delete=False)
    hold.close()
    # argon2 at its default cost; the hold file keeps the cpu pool full without timing
    grove = Grove("--gate-refresh", "200ms", "--rate-anonymous", "0", "--pool-cpu-hold", hold.name)
    socks = []
    try:
        k = key(grove, "read,write")
        threads, queue = metric(grove, "grove_pool_threads", "cpu"), 16
        login = raw("/auth/login", json.dumps({"email": "nobody@example.com", "password": "not it at all"}).encode())
        for _ in range(int(threads) + queue):
            s = grove.connect(timeout=60)
            s.sendall(login)
            socks.append(s)
        eventually(lambda: metric(grove, "grove_pool_active", "cpu") == threads and
                   metric(grove, "grove_pool_queued", "cpu") == queue, what="the cpu pool full")
        refused = [grove.request("POST", "/auth/login", body=login.split(b"\r\n\r\n", 1)[1],
                                 headers={"Content-Type": "application/json"}) for _ in range(5)]
        assert all(r.status == 503 and r.json()["details"]["pool"] == "cpu" for r in refused)
        # ingestion (plain and gzip'ed), /ready and reads go on
        now = int(time.time())
        lines = ["air_quality,station=f-1,region=west pm25=%d %d" % (i % 50, now - 600 + i) for i in range(300)]
        assert write(grove, k, lines).status == 204
        assert write(grove, k, lines, gz=True).status == 204  # small: inflated on the loop
        assert grove.request("GET", "/ready").status == 200
        # a body that inflates past 1 MiB is inflated on the cpu pool: full now, so 503 at once
        big = ["air_quality,station=f-2,region=west pm25=%d.345678,pm10=23.456789,o3=0.034567,no2=18.123456,"
               "co=0.456789,so2=2.345678 %d" % (i % 50, now - 20000 + i) for i in range(10000)]
        assert len("\n".join(big)) > 1 << 20
        r = write(grove, k, big, gz=True)
        assert r.status == 503 and r.json()["details"]["pool"] == "cpu", r.body
        # ...while every sign-in is still held
        assert metric(grove, "grove_pool_active", "cpu") == threads
        assert metric(grove, "grove_pool_queued", "cpu") == queue
        os.unlink(hold.name)
        for s in socks:
            r = read_response(s)
            assert r.status == 401 and r.json()["error_code"] == "INVALID_CREDENTIALS", r.body
        r = write(grove, k, big, gz=True)
        assert r.status == 204, r.body
        eventually(lambda: metric(grove, "grove_pool_active", "cpu") == 0, what="cpu pool idle")
    finally:
        for s in socks:
            s.close()
        if os.path.exists(hold.name):
            os.unlink(hold.name)
        stop_all(grove)


def test_a_streamed_answer_still_running_at_stop_finishes_first():
    SlowModel.release.clear()
    SlowModel.arrived = 0
    grove = Grove("--llm-url", MODEL_URL, "--llm-model", "tiny", "--gate-refresh", "200ms")
    try:
        k = key(grove, "read,write")
        assert ask(grove, k, True).status == 202
        with SlowModel.lock:
            assert SlowModel.lock.wait_for(lambda: SlowModel.arrived == 1, 30)
        grove.signal(15)
        # the server stops taking requests but waits for the answer on the wait pool
        eventually(lambda: grove.proc.poll() is None and not can_connect(grove), what="listener closed")
        assert grove.proc.poll() is None
        SlowModel.release.set()
        assert grove.wait(30) == 0
    finally:
        SlowModel.release.set()
        stop_all(grove)


def can_connect(grove):
    try:
        grove.connect(timeout=2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main(globals())
