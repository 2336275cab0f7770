"""Test harness for end-to-end tests: starts real grove, PostgreSQL and
Redis processes on loopback ports and speaks raw HTTP/1.1, WebSocket and
SSE to them over sockets. Standard library only."""

import base64
import gzip
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GROVE = os.environ.get("GROVE_BIN", os.path.join(ROOT, "build", "grove"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Grove:
    """A `grove serve` process on 127.0.0.1 and a port of its choosing."""

    def __init__(self, *args, env=None, data_dir=None, wait=True, web_root=None, cwd=None,
                 binary=None):
        """Starts grove and, unless wait is False, waits until it listens
        (then call wait_listening() yourself: several can start at once)."""
        self.tmp = tempfile.mkdtemp(prefix="grove-e2e-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        web = [] if web_root is False else ["--web-root", web_root or os.path.join(ROOT, "web")]
        cmd = [binary or GROVE, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir] \
            + web + list(args)
        e = dict(os.environ)
        e.update(env or {})
        self.log_path = os.path.join(self.tmp, "grove.log")
        self.log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=e, cwd=cwd)
        self.port = None
        if wait:
            self.wait_listening()

    def wait_listening(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(rb'listening.*port[=":]+(\d+)', open(self.log_path, "rb").read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if not self.port:
            out = self.output()
            self.stop()
            raise RuntimeError("grove did not start:\n" + out)

    def output(self):
        return open(self.log_path, "rb").read().decode(errors="replace")

    def connect(self, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def request(self, method, path, body=None, headers=None, timeout=10):
        s = self.connect(timeout)
        h = {"Host": "127.0.0.1", "Connection": "close"}
        h.update(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in h):
            h["Content-Length"] = str(len(body))
        raw = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        s.sendall(raw.encode() + (body or b""))
        r = read_response(s)
        s.close()
        return r

    def get_json(self, path, **kw):
        r = self.request("GET", path, **kw)
        return r.status, json.loads(r.body)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=15):
        return self.proc.wait(timeout)

    def stop(self):
        """Stops grove with SIGTERM; fails when it did not exit cleanly or a
        sanitizer (ASan, UBSan, LeakSanitizer) reported anything. A second
        call does nothing."""
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        hung = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                hung = True
                self.proc.kill()
                self.proc.wait()
        out = self.output()
        code = self.proc.returncode
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        reports = [m for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
                   if m in out]
        if hung or reports or code not in (0, 2, 1) or (code != 0 and self.port):
            raise AssertionError("grove did not stop cleanly (exit %s, hung %s, %s):\n%s"
                                 % (code, hung, reports, out[-6000:]))


class Response:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    def header_all(self, name):
        """Every line of header `name`, in order (read_response keeps them)."""
        n = name.lower()
        return [v.strip() for k, _, v in (line.partition(":") for line in getattr(self, "head_lines", []))
                if k.strip().lower() == n]

    def json(self):
        return json.loads(self.body)


def _recv_until(s, buf, marker):
    while marker not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before %r" % marker)
        buf += chunk
    return buf


def read_response(s, buf=b"", head_only=False):
    """Reads one response; returns it (and keeps extra bytes in .rest)."""
    buf = _recv_until(s, buf, b"\r\n\r\n")
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = {}
    head_lines = lines[1:]
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if head_only or status in (100, 101, 204, 304):
        r = Response(status, parts[2] if len(parts) > 2 else "", headers, b"")
        r.rest = rest
        r.head_lines = head_lines
        return r
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed mid-body")
            rest += chunk
        body, rest = rest[:n], rest[n:]
    else:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        body, rest = rest, b""
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    r = Response(status, parts[2] if len(parts) > 2 else "", headers, body)
    r.rest = rest
    r.head_lines = head_lines
    return r


def closed_by_peer(s, timeout=5):
    """True when the peer closes (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# ---- WebSocket client ------------------------------------------------------

class WebSocket:
    def __init__(self, grove, path="/api/v1/live", timeout=5, headers=None):
        self.s = grove.connect(timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (path, key, extra)).encode())
        r = read_response(self.s, head_only=True)
        self.response = r
        self.buf = r.rest
        if r.status != 101:
            raise ConnectionError("upgrade refused: %d" % r.status)
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert r.header("sec-websocket-accept") == want, "bad Sec-WebSocket-Accept"

    @staticmethod
    def frame(opcode, payload, fin=True, mask=True):
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            head += bytes([m | n])
        elif n < 65536:
            head += bytes([m | 126]) + struct.pack("!H", n)
        else:
            head += bytes([m | 127]) + struct.pack("!Q", n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send_raw(self, data):
        self.s.sendall(data)

    def send(self, obj, opcode=1):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.s.sendall(self.frame(opcode, data))

    def recv_frame(self, timeout=5, skip_pings=True):
        """Returns (opcode, payload); raises on EOF or timeout. Server pings
        (which arrive on their own clock) are skipped unless asked for."""
        while True:
            op, p = self._recv_frame(timeout)
            if not (skip_pings and op == 9):
                return op, p

    def _recv_frame(self, timeout):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                b1 = self.buf[1] & 0x7F
                off = 2
                if b1 == 126:
                    need = 4
                elif b1 == 127:
                    need = 10
                else:
                    need = 2
                if len(self.buf) >= need:
                    if b1 == 126:
                        b1 = struct.unpack("!H", self.buf[2:4])[0]
                    elif b1 == 127:
                        b1 = struct.unpack("!Q", self.buf[2:10])[0]
                    off = need
                    if len(self.buf) >= off + b1:
                        op = self.buf[0] & 0x0F
                        payload = self.buf[off:off + b1]
                        self.buf = self.buf[off + b1:]
                        return op, payload
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed by server")
            self.buf += chunk

    def recv_json(self, timeout=5, skip_control=True):
        while True:
            op, p = self.recv_frame(timeout)
            if op in (9, 10) and skip_control:
                continue
            if op == 8:
                raise ConnectionError("close frame: %r" % (p,))
            return json.loads(p)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def close_code(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


# ---- SSE client ------------------------------------------------------------

class EventStream:
    def __init__(self, grove, query, last_event_id=None, timeout=5, headers=None):
        self.s = grove.connect(timeout)
        extra = "Last-Event-ID: %s\r\n" % last_event_id if last_event_id is not None else ""
        extra += "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.s.sendall(("GET /api/v1/live/sse?%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n%s\r\n"
                        % (query, extra)).encode())
        r = read_response(self.s, head_only=True)
        self.response = r
        self.buf = r.rest

    def next_event(self, timeout=5):
        """Returns a dict with id, event, data (parsed JSON); skips comments."""
        self.s.settimeout(timeout)
        while True:
            if b"\n\n" in self.buf:
                block, _, self.buf = self.buf.partition(b"\n\n")
                ev = {}
                for line in block.decode().split("\n"):
                    if line.startswith(":") or not line:
                        continue
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
                if "data" in ev:
                    ev["data"] = json.loads(ev["data"])
                    return ev
                continue
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("event stream closed")
            self.buf += chunk

    def close(self):
        self.s.close()


# ---- PostgreSQL and Redis --------------------------------------------------

def _pg_bin(name):
    for v in ("17", "16", "15", "14", "13"):
        p = "/usr/lib/postgresql/%s/bin/%s" % (v, name)
        if os.path.exists(p):
            return p
    found = shutil.which(name)
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run scripts/setup.sh test")
    return found


class Postgres:
    """A throwaway PostgreSQL cluster on a loopback port (as user postgres
    when run as root, since the server refuses to run as root)."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="grove-pg-")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        data = os.path.join(self.dir, "data")
        self._run([_pg_bin("initdb"), "-D", data, "-U", "grove", "-A", "trust", "--no-sync"])
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses='127.0.0.1'\nport=%d\nunix_socket_directories='%s'\n"
                    "fsync=off\nmax_connections=100\n" % (self.port, self.dir))
        self._run([_pg_bin("pg_ctl"), "-D", data, "-l", os.path.join(self.dir, "log"), "-w", "start"])
        self.data = data
        self.url = "postgres://grove@127.0.0.1:%d/postgres" % self.port

    def _run(self, cmd):
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def psql(self, sql, db="postgres"):
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "grove", "-d", db,
                              "-At", "-c", sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def halt(self):
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "stop"])

    def resume(self):
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "start"])

    def stop(self):
        try:
            self.halt()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="grove-redis-")
        self.start()
        self.url = "redis://127.0.0.1:%d" % self.port

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    """nginx (Debian's nginx-light) on a loopback port in front of grove
    instances, run with deploy/nginx.conf as shipped: only its upstream
    servers and listen address are replaced."""

    def __init__(self, *grove_ports):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="grove-nginx-")
        shipped = open(os.path.join(ROOT, "deploy", "nginx.conf")).read()
        upstream = "".join("    server 127.0.0.1:%d;\n" % p for p in grove_ports)
        conf, n = re.subn(r"(?m)^\s*server \d+\.\d+\.\d+\.\d+:\d+[^;]*;\n", "", shipped)
        assert n >= 1, "deploy/nginx.conf: no upstream servers found"
        conf = conf.replace("least_conn;\n", "least_conn;\n" + upstream, 1)
        conf, n = re.subn(r"listen 80;", "listen 127.0.0.1:%d;" % self.port, conf)
        assert n == 1, "deploy/nginx.conf: no 'listen 80;'"
        d = self.dir
        temps = "".join("    %s_temp_path %s/%s;\n" % (t, d, t) for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("error_log %s/error.log;\npid %s/nginx.pid;\nevents {}\nhttp {\n    access_log %s/access.log;\n%s%s}\n"
                    % (d, d, d, temps, conf))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise RuntimeError("nginx not found: run scripts/setup.sh test")
        self.proc = subprocess.Popen([binary, "-p", d, "-c", self.conf, "-g", "daemon off; master_process off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        log = open(os.path.join(d, "error.log")).read() if os.path.exists(os.path.join(d, "error.log")) else ""
        self.stop()
        raise RuntimeError("nginx did not start:\n" + log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def request_from(source, port, method, path, body=None, headers=None, timeout=10):
    """One HTTP/1.1 request to 127.0.0.1:port from the loopback address
    `source` (127.0.0.2, 127.0.0.3…: distinct clients on one machine)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    h = {"Host": "127.0.0.1", "Connection": "close"}
    h.update(headers or {})
    if body is not None:
        h["Content-Length"] = str(len(body))
    raw = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    s.sendall(raw.encode() + (body or b""))
    r = read_response(s)
    s.close()
    return r


FAST_HASH = ["--argon2-memory", "8192", "--argon2-passes", "1"]  # test speed, not strength
ADMIN_PASSWORD = "correct horse battery"


def add_key(grove, name, scopes, store=None):
    """Adds an API key with `grove key add` on grove's data directory (or
    on `store`, a database URL) and waits until grove accepts it; returns
    the key."""
    where = ["--store", store] if store else ["--data-dir", grove.data_dir]
    out = subprocess.run([GROVE, "key", "add", name, "--scopes", scopes] + where,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    k = out.stdout.split()[1]
    eventually(lambda: grove.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
               what="key %s loaded" % name)
    return k


def admin_headers(grove, email="root@example.com"):
    """Makes an admin with `grove user add` on grove's database (once) and
    signs in; returns headers carrying the access token."""
    subprocess.run([GROVE, "user", "add", email, "--role", "admin", "--data-dir", grove.data_dir] + FAST_HASH,
                   input=ADMIN_PASSWORD + "\n", capture_output=True, text=True, timeout=30)
    r = grove.request("POST", "/auth/login", body=json.dumps({"email": email, "password": ADMIN_PASSWORD}).encode(),
                      headers={"Content-Type": "application/json"})
    assert r.status == 200, r.body
    return {"Authorization": "Bearer " + r.json()["data"]["access_token"], "Content-Type": "application/json"}


def shared_store(grove):
    """Options for another grove that shares grove's SQLite database (users,
    keys, devices: WAL mode serves both processes) with a data dir of its
    own: a data dir's series store serves one process at a time."""
    return ["--store", "sqlite:" + os.path.join(grove.data_dir, "grove.db")]


def stop_all(*servers):
    """Stops every grove, PostgreSQL and Redis given (None is skipped), all
    of them even when one fails; then raises the first failure."""
    first = None
    for srv in servers:
        if srv is None:
            continue
        try:
            srv.stop()
        except Exception as e:  # noqa: BLE001 - stop the rest first
            first = first or e
    if first:
        raise first


def eventually(fn, timeout=10, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def run(tests):
    """Runs test functions in order; prints one line each; exits 1 on failure."""
    only = sys.argv[1:]
    failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        start = time.time()
        try:
            t()
            print("ok   %-50s %.2fs" % (t.__name__, time.time() - start), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            import traceback
            print("FAIL %-50s %s" % (t.__name__, e), flush=True)
            traceback.print_exc()
    sys.exit(1 if failed else 0)


def main(module_globals):
    """A test file's entry point: its setup(), every test_* function in
    order, then stopping its shared grove `g` whatever happened."""
    if "setup" in module_globals:
        module_globals["setup"]()
    try:
        run([v for k, v in list(module_globals.items()) if k.startswith("test_")])
    finally:
        if module_globals.get("g") is not None:
            module_globals["g"].stop()
