"""HTTP/1.1 edge cases over real sockets against a real grove."""

import gzip
import json
import os
import signal
import socket
import time

from grove import ROOT, Grove, closed_by_peer, read_response, run, eventually, main

g = None


def setup():
    global g
    g = Grove("--header-timeout", "700ms", "--body-timeout", "700ms", "--idle-timeout", "1500ms",
              "--max-body", "64k", "--max-header", "4k", "--max-url", "1k", "--max-headers", "20",
              "--live-client-publish", "--threads", "2")


def envelope_error(r, status, code=None):
    assert r.status == status, (r.status, r.body)
    body = r.json()
    assert body["status"] == "error", body
    assert isinstance(body["message"], str) and body["message"]
    assert "details" in body
    if code:
        assert body["error_code"] == code, body
    assert r.header("content-type") == "application/json"


def test_health_envelope():
    r = g.request("GET", "/health")
    assert r.status == 200
    body = r.json()
    assert body["status"] == "success" and body["data"]["state"] == "alive"
    assert "processing_time_ms" in body["metadata"]
    assert r.header("x-request-id")


def test_request_id_is_echoed():
    r = g.request("GET", "/health", headers={"X-Request-Id": "abc-123"})
    assert r.header("x-request-id") == "abc-123"
    eventually(lambda: "req=abc-123" in g.output(), what="access log line")
    # an unsafe id is replaced
    r = g.request("GET", "/health", headers={"X-Request-Id": "bad id<script>"})
    assert r.header("x-request-id") != "bad id<script>"
    assert "req=abc-123" in g.output()


def test_ready_reports_store():
    st, body = g.get_json("/ready")
    assert st == 200 and body["data"]["checks"]["store"] == {"ok": True, "driver": "sqlite"}


def test_unknown_route_404():
    envelope_error(g.request("POST", "/nope", body=b"{}"), 404, "NOT_FOUND")


def test_wrong_method_405_with_allow():
    r = g.request("DELETE", "/health")
    envelope_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.header("allow") == "GET, HEAD"


def test_head_has_no_body():
    s = g.connect()
    s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    r1 = read_response(s, head_only=True)
    assert r1.status == 200 and int(r1.header("content-length")) > 0
    r2 = read_response(s, r1.rest)
    assert r2.status == 200 and r2.json()["status"] == "success"
    s.close()


def test_keep_alive_serves_many_requests_on_one_connection():
    s = g.connect()
    rest = b""
    for i in range(20):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        r = read_response(s, rest)
        rest = r.rest
        assert r.status == 200
    s.close()


def test_pipelined_requests_answered_in_order():
    s = g.connect()
    reqs = b"".join(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: p%d\r\n\r\n" % i for i in range(10))
    reqs += b"GET /ready HTTP/1.1\r\nHost: x\r\nX-Request-Id: last\r\n\r\n"
    s.sendall(reqs)
    rest = b""
    for i in range(10):
        r = read_response(s, rest)
        rest = r.rest
        assert r.header("x-request-id") == "p%d" % i
    r = read_response(s, rest)
    assert r.header("x-request-id") == "last" and r.json()["data"]["state"] == "ready"
    s.close()


def test_pipelined_across_byte_boundaries():
    s = g.connect()
    data = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 3
    for b in data:
        s.send(bytes([b]))
    rest = b""
    for _ in range(3):
        r = read_response(s, rest)
        rest = r.rest
        assert r.status == 200
    s.close()


def test_http10_closes_without_keep_alive():
    s = g.connect()
    s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    r = read_response(s)
    assert r.status == 200
    assert closed_by_peer(s)


def test_http10_keep_alive_is_kept_and_said():
    # RFC 9112 §9.3: HTTP/1.0 persists only with "keep-alive", which the answer confirms
    s = g.connect()
    s.sendall(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    r = read_response(s)
    assert r.status == 200 and r.header("connection") == "keep-alive", r.headers
    s.sendall(b"GET /health HTTP/1.0\r\n\r\n")  # the next one without it closes
    r = read_response(s, r.rest)
    assert r.status == 200 and r.header("connection") == "close", r.headers
    assert closed_by_peer(s)


def test_chunked_request_body():
    s = g.connect()
    body = b'{"n": 1, "text": "' + b"x" * 3000 + b'"}'
    chunks = b""
    for i in range(0, len(body), 700):
        part = body[i:i + 700]
        chunks += b"%x\r\n%s\r\n" % (len(part), part)
    chunks += b"0\r\n\r\n"
    s.sendall(b"POST /api/v1/live/test/chunked HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    r = read_response(s)
    assert r.status == 202, r.body
    assert r.json()["data"]["topic"] == "test/chunked"
    s.close()


def test_chunked_body_over_limit_413():
    s = g.connect()
    s.sendall(b"POST /api/v1/live/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    part = b"a" * 8192
    try:
        for _ in range(10):
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = read_response(s)
    envelope_error(r, 413, "BODY_TOO_LARGE")
    assert r.header("connection") == "close"


def test_content_length_over_limit_413_before_body():
    s = g.connect()
    s.sendall(b"POST /api/v1/live/t HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    r = read_response(s)
    envelope_error(r, 413, "BODY_TOO_LARGE")


def test_expect_100_continue():
    s = g.connect()
    body = b'{"a":1}'
    s.sendall(b"POST /api/v1/live/t/cont HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
    r = read_response(s, head_only=True)
    assert r.status == 100, r.status
    s.sendall(body)
    r = read_response(s, r.rest)
    assert r.status == 202, r.body


def test_expect_100_continue_refused_when_too_big():
    s = g.connect()
    s.sendall(b"POST /api/v1/live/t HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n")
    r = read_response(s)
    envelope_error(r, 413)


def test_unknown_expectation_417():
    s = g.connect()
    s.sendall(b"POST /api/v1/live/t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: magic\r\n\r\n{}")
    envelope_error(read_response(s), 417, "EXPECTATION_FAILED")


def test_long_url_414():
    envelope_error(g.request("GET", "/health?" + "a" * 2000), 414, "URI_TOO_LONG")


def test_large_headers_431():
    envelope_error(g.request("GET", "/health", headers={"X-Big": "b" * 5000}), 431, "HEADERS_TOO_LARGE")


def test_too_many_headers_431():
    h = {"X-H%d" % i: "v" for i in range(30)}
    envelope_error(g.request("GET", "/health", headers=h), 431, "TOO_MANY_HEADERS")


def test_malformed_request_line_400():
    for raw in (b"GARBAGE\r\n\r\n", b"GET /health HTTP/9.9\r\n\r\n", b"GET  HTTP/1.1\r\n\r\n",
                b"G\x00T / HTTP/1.1\r\n\r\n"):
        s = g.connect()
        s.sendall(raw)
        r = read_response(s)
        assert r.status in (400, 505), (raw, r.status)
        assert r.json()["status"] == "error"
        assert closed_by_peer(s)


def test_malformed_header_400():
    s = g.connect()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n")
    envelope_error(read_response(s), 400)


def test_bad_content_length_400():
    s = g.connect()
    s.sendall(b"POST /api/v1/live/t HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    envelope_error(read_response(s), 400, "BAD_CONTENT_LENGTH")


def test_bad_percent_escape_400():
    envelope_error(g.request("GET", "/he%zzlth"), 400)


def test_slow_headers_408():
    s = g.connect()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    start = time.time()
    r = read_response(s)
    envelope_error(r, 408, "REQUEST_TIMEOUT")
    assert time.time() - start < 5
    assert closed_by_peer(s)


def test_slowloris_drip_408():
    s = g.connect()
    start = time.time()
    got = b""
    try:
        for b in b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            s.send(bytes([b]))
            time.sleep(0.05)
            if time.time() - start > 3:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(3)
    try:
        got = s.recv(65536)
    except OSError:
        pass
    assert b" 408 " in got.split(b"\r\n")[0], got[:100]


def test_slow_body_408():
    s = g.connect()
    s.sendall(b"POST /api/v1/live/t HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    envelope_error(read_response(s), 408)


def test_idle_keep_alive_is_closed():
    s = g.connect()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    r = read_response(s)
    assert r.status == 200
    assert closed_by_peer(s, timeout=5)


def test_abrupt_disconnects_harm_nothing():
    for raw in (b"GET /hea", b"POST /api/v1/live/t HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"a\"",
                b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"):
        s = g.connect()
        s.sendall(raw)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
    for _ in range(5):
        assert g.request("GET", "/health").status == 200


def test_log_lines_cannot_be_forged_through_the_path():
    r = g.request("GET", "/health%0afake%20error%20line%22x")
    assert r.status == 404
    eventually(lambda: "fake error line" in g.output(), what="access log line")
    line = [l for l in g.output().splitlines() if "fake error line" in l][0]
    assert line.startswith("20") and "/health?fake error line?x" in line, line


def test_json_errors_on_publish():
    envelope_error(g.request("POST", "/api/v1/live/t", body=b"{not json",
                             headers={"Content-Type": "application/json"}), 400, "INVALID_JSON")
    envelope_error(g.request("POST", "/api/v1/live/t", body=b"x", headers={"Content-Type": "text/plain"}),
                   415)
    envelope_error(g.request("POST", "/api/v1/live/bad//topic", body=b"{}"), 400, "INVALID_TOPIC")


def test_gzip_when_accepted():
    r = g.request("GET", "/metrics", headers={"Accept-Encoding": "gzip, deflate"})
    assert r.status == 200
    assert r.header("content-encoding") == "gzip"
    assert b"grove_http_requests_total" in r.body  # read_response decompresses
    r = g.request("GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0"})
    assert r.header("content-encoding") is None
    small = g.request("GET", "/health", headers={"Accept-Encoding": "gzip"})
    assert small.header("content-encoding") is None


def test_metrics_prometheus_text():
    g.request("GET", "/health")
    r = g.request("GET", "/metrics")
    text = r.body.decode()
    assert r.header("content-type").startswith("text/plain; version=0.0.4")
    assert '# TYPE grove_http_requests_total counter' in text
    assert 'grove_http_requests_total{route="/health",method="GET",status="200"}' in text
    assert 'grove_http_request_duration_seconds_bucket{route="/health",le="+Inf"}' in text
    assert 'grove_http_requests_total{route="unmatched",method="*",status="404"}' in text
    assert "grove_http_connections " in text
    assert "grove_live_subscribers " in text


def test_static_files_with_etag():
    r = g.request("GET", "/")
    assert r.status == 200 and b"<html" in r.body
    assert r.header("content-type").startswith("text/html")
    etag = r.header("etag")
    assert etag and r.header("cache-control") == "no-cache" and r.header("last-modified")
    r2 = g.request("GET", "/index.html", headers={"If-None-Match": etag})
    assert r2.status == 304 and r2.body == b""


def test_static_traversal_refused():
    for p in ("/../etc/passwd", "/%2e%2e/etc/passwd", "/.git/config", "/x/../../etc/passwd"):
        r = g.request("GET", p)
        assert r.status == 404, (p, r.status)


def test_packaged_javascript_served():
    # Debian's libjs-chart.js (scripts/setup.sh), served at /javascript/ for the console's charts
    r = g.request("GET", "/javascript/chart.js/chart.min.js")
    assert r.status == 200, r.status
    assert r.header("content-type").startswith("text/javascript")
    assert b"Chart.js v3" in r.body[:200] and r.header("etag")
    for p in ("/javascript/../../etc/passwd", "/javascript/%2e%2e/%2e%2e/etc/passwd", "/javascript/chart.js/../../../etc/passwd",
              "/javascript/nothing-here.js"):
        assert g.request("GET", p).status == 404, p


def test_apps_lists_the_app_table():
    # no credential: the console's navigation asks before sign-in
    st, body = g.get_json("/api/v1/apps")
    assert st == 200, body
    # the table is src/app/apps.c: `&<name>_app` entries, in order
    import re
    table = open(os.path.join(ROOT, "src", "app", "apps.c")).read()
    names = re.findall(r"&(\w+)_app\b", table.split("grove_apps[] = {", 1)[1].split("}", 1)[0])
    assert names[:2] == ["ops", "flow"], names
    assert [a["name"] for a in body["data"]] == names, body
    assert all(a["summary"] for a in body["data"]) and body["metadata"]["count"] == len(names)


def test_options_lists_methods():
    r = g.request("OPTIONS", "/health")
    assert r.status == 204 and "GET" in r.header("allow")


def test_graceful_shutdown_finishes_in_flight_request():
    g2 = Grove("--live-client-publish")
    try:
        idle = g2.connect()
        busy = g2.connect()
        busy.sendall(b"POST /api/v1/live/t/shutdown HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 11\r\n\r\n{\"a\":")
        time.sleep(0.2)
        g2.signal(signal.SIGTERM)
        time.sleep(0.3)
        assert closed_by_peer(idle, 3), "idle connection should close at shutdown"
        busy.sendall(b"12345}")
        r = read_response(busy)
        assert r.status == 202, r.body
        assert r.header("connection") == "close"
        assert g2.wait(10) == 0
        assert "shutting down" in g2.output()
    finally:
        g2.stop()


def test_json_logs():
    g2 = Grove("--log-format", "json")
    try:
        g2.request("GET", "/health", headers={"X-Request-Id": "json-1"})
        eventually(lambda: "json-1" in g2.output(), what="access log line")
        lines = [json.loads(l) for l in g2.output().splitlines() if l.strip()]
        req = [l for l in lines if l.get("req") == "json-1"]
        assert req and req[0]["msg"] == "request" and req[0]["status"] == "200"
        assert all("ts" in l and "level" in l for l in lines)
    finally:
        g2.stop()


def test_port_in_use_fails_clearly():
    import subprocess
    from grove import GROVE
    out = subprocess.run([GROVE, "serve", "--listen", "127.0.0.1:%d" % g.port, "--data-dir",
                          "/tmp/grove-e2e-port"], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert "cannot listen" in out.stderr


# RFC 9112 and RFC 9110 MUSTs (and SHOULDs) for a server, as data: (what,
# raw request, status expected, whether the server must close after it).
# None for the close flag: either is fine.
H = b"Host: x\r\n"
CHUNKED_BODY = b"7\r\n{\"a\":1}\r\n0\r\n\r\n"
FRAMING_CASES = [
    # request line and request-target forms (RFC 9112 §3)
    ("origin-form", b"GET /health HTTP/1.1\r\n" + H + b"\r\n", 200, False),
    ("absolute-form (§3.2.2: MUST accept)", b"GET http://x/health HTTP/1.1\r\n" + H + b"\r\n", 200, False),
    ("absolute-form wins over Host", b"GET http://example.com/health HTTP/1.1\r\nHost: other\r\n\r\n", 200, False),
    ("asterisk-form is for OPTIONS only", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400, None),
    ("asterisk-form with OPTIONS", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", 204, False),
    ("authority-form is for CONNECT only", b"GET x:80 HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("CONNECT is refused", b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 501, True),
    ("target without a slash", b"GET health HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("fragment in the target", b"GET /health#top HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("space inside the target", b"GET /hea lth HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("two spaces after the method", b"GET  /health HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("tab instead of a space", b"GET\t/health HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("a fourth request-line word", b"GET /health HTTP/1.1 x\r\n" + H + b"\r\n", 400, True),
    ("no version", b"GET /health\r\n" + H + b"\r\n", 400, True),
    ("version is case-sensitive", b"GET /health http/1.1\r\n" + H + b"\r\n", 400, True),
    ("HTTP/2.0 over HTTP/1 framing", b"GET /health HTTP/2.0\r\n" + H + b"\r\n", 505, True),
    ("a later HTTP/1 minor is served as 1.1", b"GET /health HTTP/1.2\r\n" + H + b"\r\n", 200, None),
    ("unknown method (RFC 9110 §9.1)", b"FOO /health HTTP/1.1\r\n" + H + b"\r\n", 501, True),
    ("methods are case-sensitive", b"get /health HTTP/1.1\r\n" + H + b"\r\n", 501, True),
    ("empty lines before the request line (§2.2)", b"\r\n\r\nGET /health HTTP/1.1\r\n" + H + b"\r\n", 200, False),
    # Host (§3.2)
    ("no Host in HTTP/1.1", b"GET /health HTTP/1.1\r\n\r\n", 400, True),
    ("two Host lines", b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, True),
    ("two equal Host lines", b"GET /health HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400, True),
    ("a list in Host", b"GET /health HTTP/1.1\r\nHost: x, y\r\n\r\n", 400, True),
    ("Host: a b@c", b"GET /health HTTP/1.1\r\nHost: a b@c\r\n\r\n", 400, True),
    ("userinfo in Host", b"GET /health HTTP/1.1\r\nHost: u@x\r\n\r\n", 400, True),
    ("port that is not a number", b"GET /health HTTP/1.1\r\nHost: x:8o\r\n\r\n", 400, True),
    ("unbracketed IPv6 in Host", b"GET /health HTTP/1.1\r\nHost: ::1\r\n\r\n", 400, True),
    ("Host with a port", b"GET /health HTTP/1.1\r\nHost: x.example:8080\r\n\r\n", 200, False),
    ("Host as an IPv6 literal", b"GET /health HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200, False),
    ("empty Host (allowed)", b"GET /health HTTP/1.1\r\nHost:\r\n\r\n", 200, False),
    ("HTTP/1.0 needs no Host", b"GET /health HTTP/1.0\r\n\r\n", 200, True),
    ("HTTP/1.0 with two Host lines", b"GET /health HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", 400, True),
    # field syntax (§5)
    ("whitespace before the colon (§5.1)", b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n", 400, True),
    ("obs-fold (§5.2)", b"GET /health HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400, True),
    ("whitespace before the first field (§2.2)", b"GET /health HTTP/1.1\r\n X-A: a\r\n" + H + b"\r\n", 400, True),
    ("NUL in a field value (RFC 9110 §5.5)", b"GET /health HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400, True),
    ("bare CR in a field value", b"GET /health HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400, True),
    ("a control character in a field value", b"GET /health HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400, True),
    ("field name that is not a token", b"GET /health HTTP/1.1\r\n" + H + b"X(A): 1\r\n\r\n", 400, True),
    # message body length (§6)
    ("Content-Length and Transfer-Encoding (§6.1)",
     b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     + CHUNKED_BODY, 400, True),
    ("chunked not the final coding (§6.3)",
     b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n" + CHUNKED_BODY,
     400, True),
    ("a coding Grove does not do (§6.1: 501)",
     b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + CHUNKED_BODY,
     501, True),
    ("the same in two lines",
     b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
     + CHUNKED_BODY, 501, True),
    ("chunked twice", b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n"
     + CHUNKED_BODY, 400, True),
    ("a coding without chunked", b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
     400, True),
    ("Transfer-Encoding in HTTP/1.0 (§6.1)",
     b"POST /api/v1/live/t HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_BODY, 400, True),
    ("chunk extensions and trailer fields are read",
     b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"7;ext=1\r\n{\"a\":1}\r\n0\r\nX-Trailer: t\r\n\r\n", 202, False),
    ("chunk size that is not hex", b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
     400, True),
    ("two different Content-Length lines", b"POST /api/v1/live/t HTTP/1.1\r\n" + H
     + b"Content-Length: 7\r\nContent-Length: 8\r\n\r\n{\"a\":1} ", 400, True),
    ("a Content-Length list", b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Content-Length: 7, 8\r\n\r\n{\"a\":1}",
     400, True),
    ("signed Content-Length", b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Content-Length: +7\r\n\r\n{\"a\":1}",
     400, True),
    ("negative Content-Length", b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400, True),
    ("Content-Length past 64 bits", b"POST /api/v1/live/t HTTP/1.1\r\n" + H
     + b"Content-Length: 99999999999999999999999\r\n\r\n", 400, True),
    # expectations (RFC 9110 §10.1.1)
    ("unknown expectation", b"POST /api/v1/live/t HTTP/1.1\r\n" + H + b"Expect: magic\r\nContent-Length: 0\r\n\r\n",
     417, True),
]


def exchange(raw):
    """Sends raw bytes on a new connection; returns (status, closed after)."""
    s = g.connect()
    s.sendall(raw)
    try:
        r = read_response(s)
    except (OSError, ConnectionError) as e:
        s.close()
        return "no answer (%s)" % e, True
    closed = closed_by_peer(s, 0.3)
    s.close()
    return r.status, closed


def test_rfc9112_framing_table():
    failures = []
    for what, raw, status, close in FRAMING_CASES:
        got, closed = exchange(raw)
        if got != status or (close is not None and closed != close):
            failures.append("%s: %r (closed %s), want %d (closed %s)" % (what, got, closed, status, close))
    assert not failures, "\n".join(failures)


def test_expect_100_continue_is_ignored_in_http10():
    # RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored,
    # and no 1xx goes to an HTTP/1.0 client (§15.2). A server of its own,
    # whose body timeout is far past the wait: on a busy machine the shared
    # one's 700 ms could pass first and answer 408 within the wait
    g2 = Grove("--live-client-publish", "--body-timeout", "60s")
    try:
        s = g2.connect()
        s.sendall(b"POST /api/v1/live/t HTTP/1.0\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 7\r\n\r\n")
        s.settimeout(0.5)
        try:
            early = s.recv(100)
        except socket.timeout:
            early = b""
        assert early == b"", early
        s.sendall(b'{"a":1}')
        r = read_response(s)
        assert r.status == 202, r.status
        assert closed_by_peer(s)
    finally:
        g2.stop()


def test_connection_close_ends_the_connection_after_its_answer():
    # RFC 9112 §9.6: nothing after a request with "close" is read or answered
    s = g.connect()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
              b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    r = read_response(s)
    assert r.status == 200 and r.header("connection") == "close", r.headers
    assert r.rest == b"" and closed_by_peer(s), r.rest


def test_head_answers_the_get_length_without_a_body():
    # RFC 9110 §9.3.2: HEAD's header fields as GET's, no content
    get = g.request("GET", "/health")
    s = g.connect()
    s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = read_response(s, head_only=True)
    assert head.status == 200 and head.header("content-length") == get.header("content-length")
    nxt = read_response(s, head.rest)  # no body bytes in between, or this would not parse
    assert nxt.status == 200 and nxt.header("connection") == "close"
    s.close()


def test_no_content_answers_carry_no_length():
    # RFC 9110 §8.6: no Content-Length in a 204
    s = g.connect()
    s.sendall(b"OPTIONS /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    r = read_response(s)
    assert r.status == 204 and r.header("content-length") is None, r.headers


def test_content_encoding_on_every_body_route():
    # issue 9.6: bodies are decoded in net, for every route that reads one
    import zlib
    doc = json.dumps({"n": 1}).encode()
    h = {"Content-Type": "application/json"}
    for enc, body in (("gzip", gzip.compress(doc)), ("x-gzip", gzip.compress(doc)),
                      ("deflate", zlib.compress(doc)), ("identity", doc), ("gzip, identity", gzip.compress(doc))):
        r = g.request("POST", "/api/v1/live/enc/t", body=body, headers=dict(h, **{"Content-Encoding": enc}))
        assert r.status == 202, (enc, r.status, r.body)
    r = g.request("POST", "/api/v1/live/enc/t", body=doc, headers=dict(h, **{"Content-Encoding": "br"}))
    envelope_error(r, 415, "UNSUPPORTED_ENCODING")
    assert "gzip" in r.header("accept-encoding")
    r = g.request("POST", "/api/v1/live/enc/t", body=gzip.compress(doc) + b"junk",
                  headers=dict(h, **{"Content-Encoding": "gzip"}))
    envelope_error(r, 400, "BAD_GZIP")
    r = g.request("POST", "/api/v1/live/enc/t", body=gzip.compress(doc)[:-4],
                  headers=dict(h, **{"Content-Encoding": "gzip"}))
    envelope_error(r, 400, "BAD_GZIP")
    # g's --max-body is 64k: a small body that inflates past it
    bomb = gzip.compress(b'{"pad":"' + b"z" * (200 * 1024) + b'"}')
    assert len(bomb) < 64 * 1024
    r = g.request("POST", "/api/v1/live/enc/t", body=bomb, headers=dict(h, **{"Content-Encoding": "gzip"}))
    envelope_error(r, 413, "BODY_TOO_LARGE")
    # JSON routes (here sign-in) read through the same helper
    login = json.dumps({"email": "nobody@example.com", "password": "x" * 12}).encode()
    r = g.request("POST", "/auth/login", body=login, headers=dict(h, **{"Content-Encoding": "br"}))
    envelope_error(r, 415, "UNSUPPORTED_ENCODING")
    r = g.request("POST", "/auth/login", body=b"\x1f\x8bnot really", headers=dict(h, **{"Content-Encoding": "gzip"}))
    envelope_error(r, 400, "BAD_GZIP")
    r = g.request("POST", "/auth/login", body=gzip.compress(login), headers=dict(h, **{"Content-Encoding": "gzip"}))
    assert r.status == 401, (r.status, r.body)  # decoded and read: an unknown account


if __name__ == "__main__":
    main(globals())
