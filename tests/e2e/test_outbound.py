"""Outbound HTTP (net/client.h, libcurl): a model server and `grove flow
simulate`'s target over https with a CA given to grove, and clear errors
when the other side answers something that is not HTTP, or too much."""

import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from grove import FAST_HASH, GROVE, Grove, eventually, main, stop_all

MIN = 60 * 10**9
T0 = (time.time_ns() // 10**9 - 2 * 86400) // 60 * 60 * 10**9
TMP = tempfile.mkdtemp(prefix="grove-tls-")
CERT, KEY = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")
# a self-signed certificate for 127.0.0.1, made by openssl as an operator would
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", KEY, "-out", CERT,
                "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
               check=True, capture_output=True)


class Handler(BaseHTTPRequestHandler):
    """/api/chat: an Ollama answer; /api/v1/write: accepted (204), or a
    2 MiB error body when the test says so."""
    protocol_version = "HTTP/1.1"
    seen = []
    huge = False

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.seen.append(self.path)
        if self.path == "/api/chat":
            out = b"".join(json.dumps({"message": {"content": w}, "done": d}).encode() + b"\n"
                           for w, d in (("over ", False), ("TLS", False), ("", True)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        elif self.path == "/api/v1/write" and Handler.huge:
            out = b"x" * (2 << 20)
            self.send_response(400)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        elif self.path == "/api/v1/write":
            assert body.startswith(b"air_quality,")
            self.send_response(204)
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


def tls_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "https://127.0.0.1:%d" % srv.server_address[1]


def raw_server(answer):
    """Answers every connection with `answer` (bytes, or a function of the
    request's bytes) and closes."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    got = c.recv(65536)
                    if not got:
                        break
                    data += got
                c.sendall(answer)
            except OSError:
                pass
            finally:
                c.close()

    threading.Thread(target=serve, daemon=True).start()
    return ls, "http://127.0.0.1:%d" % ls.getsockname()[1]


def key(grove, scopes):
    out = subprocess.run([GROVE, "key", "add", "k", "--scopes", scopes, "--data-dir", grove.data_dir],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def city(*args):
    grove = Grove("--gate-refresh", "200ms", "--flow-window", "1m", "--flow-slide", "1m", *FAST_HASH, *args)
    k = key(grove, "read,write")
    eventually(lambda: grove.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200, what="key")
    rows = [{"station": "east-a", "region": "east", "time": (T0 + i * MIN) / 1e9, "pm25": 20} for i in range(2)]
    r = grove.request("POST", "/api/v1/flow/readings", body=json.dumps({"readings": rows}).encode(),
                      headers={"X-API-Key": k, "Content-Type": "application/json"})
    assert r.status == 200, r.body
    return grove, k


def ask(grove, k):
    r = grove.request("POST", "/api/v1/flow/ask", body=json.dumps({"question": "How is east?"}).encode(),
                      headers={"X-API-Key": k, "Content-Type": "application/json"}, timeout=30)
    assert r.status == 200, r.body
    return r.json()["data"]


def test_an_https_model_server_is_trusted_through_its_ca_file():
    srv, url = tls_server()
    grove, k = city("--llm-url", url, "--llm-model", "tiny", "--llm-ca-file", CERT)
    try:
        a = ask(grove, k)
        assert a["answer"] == "over TLS" and a["grounded"] is False, a
        assert Handler.seen[-1] == "/api/chat"
    finally:
        stop_all(grove)
    # without the CA the certificate is not trusted: a clear error, and the data answers
    grove, k = city("--llm-url", url, "--llm-timeout", "10s")
    try:
        a = ask(grove, k)
        assert a["grounded"] is True and "cannot set up TLS with '127.0.0.1:" in a["model_error"], a
    finally:
        stop_all(grove)
        srv.shutdown()


def test_a_model_server_that_answers_garbage_or_too_much_gets_a_clear_error():
    garbage, gurl = raw_server(b"this is not HTTP at all\r\n\r\n")
    long_line = b"{\"message\":{\"content\":\"" + b"a" * (1 << 21)
    flood, furl = raw_server(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(long_line), long_line))
    try:
        for url, words in ((gurl, "did not answer in HTTP"), (furl, "a line over 1 MiB")):
            grove, k = city("--llm-url", url, "--llm-timeout", "10s")
            try:
                a = ask(grove, k)
                assert a["grounded"] is True and words in a["model_error"], a
                assert grove.request("GET", "/ready").status == 200
            finally:
                stop_all(grove)
    finally:
        garbage.close()
        flood.close()


def simulate(url, *args):
    return subprocess.run([GROVE, "flow", "simulate", "--url", url, "--stations", "3", "--ticks", "2",
                           "--duration", "0", "--fast", "--faults", "false", *args],
                          capture_output=True, text=True, timeout=60)


def test_simulate_writes_over_https_and_says_what_went_wrong():
    srv, url = tls_server()
    try:
        Handler.seen.clear()
        out = simulate(url, "--ca-file", CERT)
        assert out.returncode == 0, out.stderr
        assert "points=36 " in out.stdout and "http_errors=0" in out.stdout, out.stdout
        assert Handler.seen and set(Handler.seen) == {"/api/v1/write"}
        out = simulate(url)  # the system's CAs do not know this certificate
        assert out.returncode == 1 and "cannot set up TLS with '127.0.0.1:" in out.stderr, out.stderr
        Handler.huge = True
        out = simulate(url, "--ca-file", CERT)
        assert out.returncode == 1 and "is over 1048576 bytes" in out.stderr, out.stderr
    finally:
        Handler.huge = False
        srv.shutdown()
    garbage, gurl = raw_server(b"garbage\r\n\r\n")
    try:
        out = simulate(gurl)
        assert out.returncode == 1 and "did not answer in HTTP" in out.stderr, out.stderr
    finally:
        garbage.close()
    bad = simulate("ftp://127.0.0.1:1")
    assert bad.returncode == 2 and "--url must be http(s)://" in bad.stderr, bad.stderr


if __name__ == "__main__":
    main(globals())
