"""Live hub over real sockets: WebSocket (RFC 6455) and Server-Sent Events."""

import json
import os
import socket
import struct
import subprocess
import time

from grove import (GROVE, EventStream, Grove, WebSocket, close_code, closed_by_peer, eventually, main,
                   read_response, run)

g = None


def setup():
    global g
    # publishing is anonymous here and fast: the per-address limit is not what this tests
    g = Grove("--live-client-publish", "--live-max-message", "4k", "--live-max-queue", "256k",
              "--live-ping", "1s", "--live-heartbeat", "500ms", "--threads", "2",
              "--rate-anonymous", "0", "--gate-refresh", "200ms")


def publish(topic, data, grove=None):
    r = (grove or g).request("POST", "/api/v1/live/" + topic, body=json.dumps(data).encode(),
                             headers={"Content-Type": "application/json"})
    assert r.status == 202, r.body
    return r.json()["data"]["id"]


def subscribed(ws, topic):
    m = ws.recv_json()
    assert m == {"type": "subscribed", "topic": topic}, m


def test_handshake_and_subscribe_by_query():
    ws = WebSocket(g, "/api/v1/live?topic=demo/stations/1")
    subscribed(ws, "demo/stations/1")
    mid = publish("demo/stations/1", {"aqi": 42})
    m = ws.recv_json()
    assert m == {"type": "message", "topic": "demo/stations/1", "id": mid, "data": {"aqi": 42}}, m
    ws.close()


def test_subscribe_unsubscribe_ops():
    ws = WebSocket(g)
    ws.send({"op": "subscribe", "topic": "a/b"})
    subscribed(ws, "a/b")
    publish("a/b", 1)
    assert ws.recv_json()["data"] == 1
    ws.send({"op": "unsubscribe", "topic": "a/b"})
    assert ws.recv_json() == {"type": "unsubscribed", "topic": "a/b"}
    publish("a/b", 2)
    ws.send({"op": "ping"})
    assert ws.recv_json() == {"type": "pong"}  # nothing from a/b came before it
    ws.close()


def test_messages_reach_every_subscriber_on_every_loop():
    socks = [WebSocket(g, "/api/v1/live?topic=fan/out") for _ in range(8)]
    for ws in socks:
        subscribed(ws, "fan/out")
    ids = [publish("fan/out", {"n": i}) for i in range(5)]
    for ws in socks:
        got = [ws.recv_json()["id"] for _ in range(5)]
        assert got == ids
        ws.close()


def test_bad_ops_answer_errors_and_keep_connection():
    ws = WebSocket(g)
    ws.send(b"not json")
    assert ws.recv_json()["type"] == "error"
    ws.send({"op": "subscribe", "topic": "../etc"})
    assert ws.recv_json()["type"] == "error"
    ws.send({"op": "dance", "topic": "x"})
    assert ws.recv_json()["type"] == "error"
    ws.send(b"\x00\x01", opcode=2)
    assert ws.recv_json()["type"] == "error"
    ws.send({"op": "ping"})
    assert ws.recv_json() == {"type": "pong"}
    ws.close()


def test_fragmented_masked_message():
    ws = WebSocket(g)
    msg = json.dumps({"op": "subscribe", "topic": "frag/x"}).encode()
    ws.send_raw(WebSocket.frame(1, msg[:7], fin=False))
    ws.send_raw(WebSocket.frame(9, b"hi"))  # a ping may come between fragments
    ws.send_raw(WebSocket.frame(0, msg[7:15], fin=False))
    ws.send_raw(WebSocket.frame(0, msg[15:], fin=True))
    op, p = ws.recv_frame()
    assert op == 10 and p == b"hi"  # pong echoes the ping's payload
    subscribed(ws, "frag/x")
    ws.close()


def test_ping_pong():
    ws = WebSocket(g)
    ws.send_raw(WebSocket.frame(9, b"payload"))
    assert ws.recv_frame() == (10, b"payload")
    ws.close()


def test_server_pings_idle_clients():
    ws = WebSocket(g)
    op, _ = ws.recv_frame(timeout=3, skip_pings=False)
    assert op == 9


def test_silent_client_is_dropped():
    ws = WebSocket(g)
    # answer nothing (not even pongs: read nothing): after two ping intervals it goes
    time.sleep(3.5)
    try:
        while True:
            op, p = ws.recv_frame(timeout=2)
            if op == 8:
                break
    except (ConnectionError, socket.timeout, OSError):
        pass
    assert closed_by_peer(ws.s, 3)


def test_close_handshake_echoes_code():
    ws = WebSocket(g)
    ws.send_raw(WebSocket.frame(8, struct.pack("!H", 1000) + b"bye"))
    op, p = ws.recv_frame()
    assert op == 8 and close_code(p) == 1000
    assert closed_by_peer(ws.s)


def test_unmasked_client_frame_is_protocol_error():
    ws = WebSocket(g)
    ws.send_raw(WebSocket.frame(1, b'{"op":"ping"}', mask=False))
    op, p = ws.recv_frame()
    assert op == 8 and close_code(p) == 1002, (op, p)
    assert closed_by_peer(ws.s)


def test_oversize_message_closes_1009():
    ws = WebSocket(g)
    ws.send_raw(WebSocket.frame(1, b"x" * 5000))
    op, p = ws.recv_frame()
    assert op == 8 and close_code(p) == 1009, (op, p)


def test_invalid_utf8_closes_1007():
    ws = WebSocket(g)
    ws.send_raw(WebSocket.frame(1, b'{"op":"\xff\xfe"}'))
    op, p = ws.recv_frame()
    assert op == 8 and close_code(p) == 1007, (op, p)


def test_garbage_after_upgrade_is_contained():
    ws = WebSocket(g)
    ws.send_raw(os.urandom(200))
    assert closed_by_peer(ws.s)
    assert g.request("GET", "/health").status == 200


def test_handshake_errors():
    r = g.request("GET", "/api/v1/live")
    assert r.status == 426 and r.json()["error_code"] == "UPGRADE_REQUIRED"
    r = g.request("GET", "/api/v1/live", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                  "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "x"})
    assert r.status == 426 and r.header("sec-websocket-version") == "13"
    r = g.request("GET", "/api/v1/live", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                  "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "short"})
    assert r.status == 400 and r.json()["error_code"] == "BAD_WEBSOCKET_KEY"
    r = g.request("GET", "/api/v1/live?topic=a//b")
    assert r.status == 400 and r.json()["error_code"] == "INVALID_TOPIC"


def test_slow_consumer_is_disconnected():
    slow = WebSocket(g, "/api/v1/live?topic=flood")
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    subscribed(slow, "flood")
    fast = WebSocket(g, "/api/v1/live?topic=flood")
    subscribed(fast, "flood")
    blob = "z" * 30000
    before = metric("grove_live_slow_consumers_total")
    subs_before = metric("grove_live_subscribers")  # the two above included
    got = 0
    for i in range(200):
        publish("flood", {"i": i, "blob": blob})
        # the fast client keeps up
        while True:
            m = fast.recv_json()
            if m["type"] == "message":
                got += 1
                break
    assert got == 200
    eventually(lambda: metric("grove_live_slow_consumers_total") > before, what="slow consumer counted")
    # the server let go of it: one subscriber (the fast one) is left on this topic
    # (earlier tests' subscribers may still be leaving: at least this one went)
    eventually(lambda: metric("grove_live_subscribers") <= subs_before - 1, what="slow subscriber freed")
    assert closed_by_peer(slow.s, 10)
    assert "too slow" in g.output()
    fast.close()


def metric(name):
    for line in g.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def settled_subscribers():
    """The subscriber gauge once earlier tests' connections have gone."""
    def stable():
        a = metric("grove_live_subscribers")
        time.sleep(0.3)
        return a == metric("grove_live_subscribers") and a + 1  # +1: zero is a value
    return eventually(stable, what="subscriber gauge settled") - 1


def test_subscribers_gauge():
    base = settled_subscribers()
    a = WebSocket(g, "/api/v1/live?topic=gauge")
    subscribed(a, "gauge")
    eventually(lambda: metric("grove_live_subscribers") == base + 1, what="gauge up")
    a.close()
    eventually(lambda: metric("grove_live_subscribers") == base, what="gauge down")


def test_sse_stream_and_resume():
    es = EventStream(g, "topic=sse/a&topic=sse/b")
    assert es.response.status == 200
    assert es.response.header("content-type") == "text/event-stream"
    id1 = publish("sse/a", {"n": 1})
    id2 = publish("sse/b", {"n": 2})
    e1, e2 = es.next_event(), es.next_event()
    assert (int(e1["id"]), e1["data"]["data"]) == (id1, {"n": 1})
    assert (int(e2["id"]), e2["data"]["topic"]) == (id2, "sse/b")
    es.close()
    # missed while away
    id3 = publish("sse/a", {"n": 3})
    id4 = publish("sse/a", {"n": 4})
    es = EventStream(g, "topic=sse/a", last_event_id=id2)
    got = [int(es.next_event()["id"]) for _ in range(2)]
    assert got == [id3, id4], got
    id5 = publish("sse/a", {"n": 5})
    assert int(es.next_event()["id"]) == id5  # live again, nothing twice
    es.close()


def test_history_is_bounded_in_bytes_oldest_first():
    g2 = Grove("--live-client-publish", "--live-history-bytes", "4k", "--rate-anonymous", "0")
    try:
        ids = [publish("quiet/a", {"pad": "x" * 300, "n": 0}, grove=g2)]
        ids += [publish("busy/b", {"pad": "y" * 300, "n": i}, grove=g2) for i in range(1, 20)]
        # about 1 KiB a message kept: the newest few stay, the quiet topic's old one went first
        es = EventStream(g2, "topic=busy/b", last_event_id=ids[0])
        got = []
        es.s.settimeout(1)
        try:
            while True:
                got.append(int(es.next_event(timeout=1)["id"]))
        except (OSError, ConnectionError):
            pass
        es.close()
        assert 1 <= len(got) <= 4 and got == ids[-len(got):], got
        es = EventStream(g2, "topic=quiet/a", last_event_id=0)
        try:
            es.next_event(timeout=1)
            raise AssertionError("the oldest message should have gone first")
        except OSError:
            pass
        es.close()
    finally:
        g2.stop()


def test_a_topic_named_twice_is_replayed_once():
    ida = publish("dup/a", {"n": 1})
    idb = publish("dup/a", {"n": 2})
    es = EventStream(g, "topic=dup/a&topic=dup/a", last_event_id=ida - 1)
    got = [int(es.next_event()["id"]) for _ in range(2)]
    assert got == [ida, idb], got
    idc = publish("dup/a", {"n": 3})
    assert int(es.next_event()["id"]) == idc  # not a second copy of idb
    es.close()


def test_head_on_the_event_stream_sends_no_stream():
    publish("head/a", {"n": 1})
    s = g.connect(5)
    s.sendall(b"HEAD /api/v1/live/sse?topic=head/a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0\r\n\r\n"
              b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    deadline = time.time() + 5
    while data.count(b"HTTP/1.1 ") < 2 and time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head, data
    # nothing of a stream follows: the next bytes are the next answer
    assert rest.startswith(b"HTTP/1.1 200"), data


def test_sse_heartbeat_and_errors():
    es = EventStream(g, "topic=hb")
    es.s.settimeout(3)
    data = b""
    while b"heartbeat" not in data:
        data += es.s.recv(1024)
    es.close()
    r = g.request("GET", "/api/v1/live/sse")
    assert r.status == 400 and r.json()["error_code"] == "MISSING_TOPIC"


def test_shutdown_closes_websockets_with_1001():
    g2 = Grove()
    try:
        ws = WebSocket(g2, "/api/v1/live?topic=x")
        subscribed(ws, "x")
        g2.signal(15)
        op, p = ws.recv_frame()
        assert op == 8 and close_code(p) == 1001
        ws.send_raw(WebSocket.frame(8, struct.pack("!H", 1001)))
        assert g2.wait(10) == 0
    finally:
        g2.stop()


def test_publish_disabled_by_default():
    g2 = Grove()
    try:
        r = g2.request("POST", "/api/v1/live/x", body=b"{}")
        assert r.status == 403 and r.json()["error_code"] == "PUBLISH_DISABLED"
        ws = WebSocket(g2)
        ws.send({"op": "publish", "topic": "x", "data": 1})
        assert ws.recv_json()["type"] == "error"
    finally:
        g2.stop()


def resumed(grove, topic, last_event_id=0):
    """The ids a client resuming on `topic` is sent: the replay comes at
    once, before the first heartbeat."""
    es = EventStream(grove, "topic=" + topic, last_event_id=last_event_id)
    data = es.buf
    es.s.settimeout(5)
    while b"heartbeat" not in data:
        data += es.s.recv(65536)
    es.close()
    head = data[:data.index(b"heartbeat")]
    return [int(line[4:]) for line in head.split(b"\n") if line.startswith(b"id: ")]


def test_history_outlives_topic_churn_and_idle_topics_go():
    g2 = Grove("--live-client-publish", "--live-history-bytes", "1m", "--live-history-idle", "1s",
               "--live-heartbeat", "300ms", "--rate-anonymous", "0")
    try:
        # many distinct topics over time (more than the 10,000 that once filled the table)
        ws = WebSocket(g2)
        for start in range(0, 12000, 500):
            for i in range(start, start + 500):
                ws.send({"op": "publish", "topic": "churn/%d" % i, "data": {"n": i}})
            for i in range(500):
                assert ws.recv_json()["type"] == "published"
        # a new topic still resumes, and the bytes stay within --live-history-bytes
        fresh = publish("fresh/one", {"n": 1}, grove=g2)
        assert resumed(g2, "fresh/one") == [fresh]
        body = g2.request("GET", "/metrics").body.decode()
        held = [float(l.split()[-1]) for l in body.splitlines() if l.startswith("grove_live_history_bytes ")]
        assert held and 0 < held[0] <= 1024 * 1024, held
        # idle topics with no subscriber lose their history; one with a subscriber keeps it
        keeper = WebSocket(g2, "/api/v1/live?topic=keep/me")
        subscribed(keeper, "keep/me")
        kept = publish("keep/me", {"n": 1}, grove=g2)
        dropped = publish("drop/me", {"n": 1}, grove=g2)
        assert resumed(g2, "drop/me") == [dropped]

        def drop_gone():
            publish("tick/%d" % time.time_ns(), {}, grove=g2)  # histories are swept as publishes come
            return resumed(g2, "drop/me") == []
        eventually(drop_gone, timeout=15, interval=0.2, what="an idle topic's history freed")
        assert resumed(g2, "keep/me") == [kept]
        keeper.close()

        def keep_gone():
            publish("tick/%d" % time.time_ns(), {}, grove=g2)
            return resumed(g2, "keep/me") == []
        eventually(keep_gone, timeout=15, interval=0.2, what="freed once its subscriber left")
        ws.close()
    finally:
        g2.stop()


# ---- topics apps publish ----------------------------------------------------

APP_TOPICS = ["flow/alerts", "flow/stations/st-1", "FLOW/alerts", "Flow/regions/x", "flow", "relay/devices/7",
              "matrix/hosts/h1", "notes/n", "jobs/42"]


def key(scopes):
    out = subprocess.run([GROVE, "key", "add", "live-" + scopes, "--scopes", scopes, "--data-dir", g.data_dir],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    k = out.stdout.split()[1]
    eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200, what="key loaded")
    return k


def reading(write_key, station, value):
    r = g.request("POST", "/api/v1/flow/readings", headers={"X-API-Key": write_key, "Content-Type": "application/json"},
                  body=json.dumps({"readings": [{"station": station, "region": "live-test", "pm25": value}]}).encode())
    assert r.status == 200, r.body


def test_clients_cannot_publish_on_app_topics():
    # even with --live-client-publish, and with a credential
    w = key("read,write,admin")
    for t in APP_TOPICS:
        for h in ({}, {"X-API-Key": w}):
            r = g.request("POST", "/api/v1/live/" + t, body=b'{"type":"alert","aqi":500}',
                          headers=dict(h, **{"Content-Type": "application/json"}))
            assert r.status == 403, (t, r.status, r.body)
            e = r.json()
            assert e["status"] == "error" and e["error_code"] == "TOPIC_RESERVED", e
    ws = WebSocket(g, headers={"X-API-Key": w})
    for t in APP_TOPICS:
        ws.send({"op": "publish", "topic": t, "data": {"type": "alert", "aqi": 500}})
        m = ws.recv_json()
        assert m["type"] == "error" and m["status"] == 403 and m["error_code"] == "TOPIC_RESERVED", (t, m)
    ws.close()
    # topics that only look alike stay open to clients
    for t in ("flowers/rose", "demo/flow/alerts", "jobsite/1", "demo/hello"):
        publish(t, {"ok": True})


def test_app_topics_need_the_apps_read_credential_over_sse():
    w, rd, wo = key("write"), key("read"), None
    reading(w, "sse-live", 12)
    upgrade = {"Accept": "text/event-stream"}
    for q in ("topic=flow/alerts", "topic=flow/stations/sse-live", "topic=demo/a&topic=flow/stations/sse-live",
              "topic=FLOW/stations/sse-live", "topic=jobs/1"):
        # refused before anything is replayed: as GET /api/v1/flow/alerts answers 401
        for lei in (None, 0):
            es = EventStream(g, q, last_event_id=lei)
            assert es.response.status == 401, (q, es.response.status)
            es.close()
        r = g.request("GET", "/api/v1/live/sse?" + q, headers=dict(upgrade, **{"Last-Event-ID": "0"}))
        assert r.status == 401 and r.json()["error_code"] == "UNAUTHORIZED", (q, r.body)
        r = g.request("GET", "/api/v1/live/sse?" + q, headers=dict(upgrade, **{"X-API-Key": w}))
        assert r.status == 403 and r.json()["error_code"] == "FORBIDDEN", (q, r.body)  # no read scope
    assert g.request("GET", "/api/v1/flow/alerts").status == 401
    # with the read credential: the station's update is replayed, then live ones come
    es = EventStream(g, "topic=flow/stations/sse-live", last_event_id=0, headers={"X-API-Key": rd})
    assert es.response.status == 200
    ev = es.next_event()
    assert ev["data"]["topic"] == "flow/stations/sse-live" and ev["data"]["data"]["id"] == "sse-live", ev
    reading(w, "sse-live", 13)
    while True:  # the live update carries the new reading
        d = es.next_event()["data"]["data"]
        if d["readings"] == 2:
            break
    es.close()
    es = EventStream(g, "topic=flow/stations/sse-live", headers={"Authorization": "Bearer " + rd})
    assert es.response.status == 200
    es.close()


def test_app_topics_need_the_apps_read_credential_over_websocket():
    w, rd = key("write"), key("read")
    ws_headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    # subscribing at connect: refused before the upgrade, as the REST read is
    r = g.request("GET", "/api/v1/live?topic=flow/alerts", headers=ws_headers)
    assert r.status == 401 and r.json()["error_code"] == "UNAUTHORIZED", (r.status, r.body)
    r = g.request("GET", "/api/v1/live?topic=flow/alerts", headers=dict(ws_headers, **{"X-API-Key": w}))
    assert r.status == 403, (r.status, r.body)
    # subscribing by message, without a credential, with a bad one, with one lacking the scope
    ws = WebSocket(g)
    for t in APP_TOPICS:
        ws.send({"op": "subscribe", "topic": t})
        m = ws.recv_json()
        assert m["type"] == "error" and m["status"] == 401 and m["error_code"] == "UNAUTHORIZED", (t, m)
    ws.send({"op": "auth", "token": "grv_not_a_key"})
    m = ws.recv_json()
    assert m["type"] == "error" and m["status"] == 401, m
    ws.send({"op": "auth", "token": w})
    assert ws.recv_json() == {"type": "authenticated"}
    ws.send({"op": "subscribe", "topic": "flow/stations/ws-live"})
    m = ws.recv_json()
    assert m["type"] == "error" and m["status"] == 403 and m["error_code"] == "FORBIDDEN", m
    # a read key (as the console's signed-in session does with its access token)
    ws.send({"op": "auth", "token": rd})
    assert ws.recv_json() == {"type": "authenticated"}
    ws.send({"op": "subscribe", "topic": "flow/stations/ws-live"})
    subscribed(ws, "flow/stations/ws-live")
    reading(w, "ws-live", 5)
    m = ws.recv_json()
    assert m["type"] == "message" and m["data"]["id"] == "ws-live", m
    ws.close()
    # a credential on the upgrade request does as well
    ws = WebSocket(g, "/api/v1/live?topic=flow/stations/ws-live", headers={"X-API-Key": rd})
    subscribed(ws, "flow/stations/ws-live")
    ws.close()
    # client topics need nothing
    ws = WebSocket(g, "/api/v1/live?topic=demo/open")
    subscribed(ws, "demo/open")
    ws.close()


def answer(ws):
    """The next message that is not the end of an earlier subscription."""
    while True:
        m = ws.recv_json()
        if m["type"] != "unsubscribed":
            return m


def test_a_revoked_credential_subscribes_no_more():
    """A WebSocket's credential is checked again at each subscribe: a key
    revoked, or a session logged out, after it was shown reads no more app
    topics on that connection (and the subscriptions it allowed end, with
    an "unsubscribed" message that may come first: test_topics.py)."""
    out = subprocess.run([GROVE, "key", "add", "live-revoked", "--scopes", "read", "--data-dir", g.data_dir],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    kid, k = out.stdout.split()[:2]
    eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200, what="key loaded")
    ws = WebSocket(g, "/api/v1/live", headers={"X-API-Key": k})
    ws.send({"op": "subscribe", "topic": "flow/stations/rv-1"})
    subscribed(ws, "flow/stations/rv-1")
    out = subprocess.run([GROVE, "key", "revoke", kid, "--data-dir", g.data_dir], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 401, what="key revoked")
    ws.send({"op": "subscribe", "topic": "flow/stations/rv-2"})
    m = answer(ws)
    assert m["type"] == "error" and m["status"] == 401 and m["topic"] == "flow/stations/rv-2", m
    ws.close()
    # an access token whose session logged out
    r = g.request("POST", "/auth/register", headers={"Content-Type": "application/json"},
                  body=json.dumps({"email": "live-logout@example.com", "password": "correct horse battery"}).encode())
    assert r.status in (200, 201), r.body
    d = r.json()["data"]
    ws = WebSocket(g)
    ws.send({"op": "auth", "token": d["access_token"]})
    assert ws.recv_json() == {"type": "authenticated"}
    ws.send({"op": "subscribe", "topic": "flow/stations/rv-3"})
    subscribed(ws, "flow/stations/rv-3")
    bearer = {"Authorization": "Bearer " + d["access_token"], "Content-Type": "application/json"}
    r = g.request("POST", "/auth/logout", headers=bearer, body=json.dumps({"refresh_token": d["refresh_token"]}).encode())
    assert r.status == 200, r.body
    eventually(lambda: g.request("GET", "/auth/me", headers=bearer).status == 401, what="session logged out")
    ws.send({"op": "subscribe", "topic": "flow/stations/rv-4"})
    m = answer(ws)
    assert m["type"] == "error" and m["status"] == 401, m
    ws.close()


def reset(sock):
    """Closes with RST (SO_LINGER 0): unread data and the connection dropped at once."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_pings_in_one_write_then_reset_do_not_crash():
    # issue 10.1a: the replies fail on the reset socket while wslay is still
    # reading the frames; the connection must not be freed under it
    frames = b"".join(WebSocket.frame(1, b'{"op":"ping"}') for _ in range(400))
    for _ in range(5):
        ws = WebSocket(g)
        ws.s.sendall(frames)
        reset(ws.s)
    for _ in range(5):  # also mid-frame: a reset after half a frame
        ws = WebSocket(g, "/api/v1/live?topic=reset/mid")
        ws.s.sendall(frames + WebSocket.frame(1, b'{"op":"ping"}' * 50)[:300])
        reset(ws.s)
    assert g.request("GET", "/health").status == 200
    ws = WebSocket(g)
    ws.send({"op": "ping"})
    assert ws.recv_json() == {"type": "pong"}
    ws.close()


def test_publish_larger_than_a_subscriber_queue_is_413():
    # issue 10.1b: g's --live-max-queue is 256k; a message no subscriber can
    # take is refused, so a resume can never meet it
    big = {"blob": "b" * (300 * 1024)}
    r = g.request("POST", "/api/v1/live/big/one", body=json.dumps(big).encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 413 and r.json()["error_code"] == "MESSAGE_TOO_LARGE", (r.status, r.body)
    ws = WebSocket(g)
    ws.send({"op": "publish", "topic": "big/one", "data": 1})  # the WebSocket op says so too
    assert ws.recv_json()["type"] == "published"
    es = EventStream(g, "topic=big/one", last_event_id=0)
    assert es.response.status == 200
    ev = es.next_event()  # only the small one was kept
    assert ev["data"]["data"] == 1, ev
    es.close()
    ws.close()
    assert g.request("GET", "/health").status == 200


def test_sse_resume_over_the_queue_cuts_the_client_and_stops():
    # issue 10.1b, second form: 16 topics x 100 x 12 KB, each message within
    # limits, replayed to one client whose queue (default 1m) cannot hold them
    g2 = Grove("--live-client-publish", "--rate-anonymous", "0", "--rate-global", "0", "--threads", "1")
    try:
        s = g2.connect(30)
        pad = "p" * (12 * 1024)
        topics = ["many/t%d" % i for i in range(16)]
        for t in topics:
            for i in range(100):
                body = json.dumps({"i": i, "pad": pad}).encode()
                s.sendall(("POST /api/v1/live/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: %d\r\n\r\n" % (t, len(body))).encode() + body)
                r = read_response(s)
                assert r.status == 202, r.body
        s.close()
        for _ in range(3):
            es = EventStream(g2, "&".join("topic=" + t for t in topics), last_event_id=0)
            es.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            assert closed_by_peer(es.s, 20), "the client should have been cut"
            es.close()
        # and one that reads keeps up with a single topic's 1.2 MB history in
        # pieces: it is cut, resumes from the last id it got, and gets further
        last, seen = 0, 0
        for _ in range(200):
            es = EventStream(g2, "topic=many/t0", last_event_id=last)
            try:
                while True:
                    ev = es.next_event(timeout=2)
                    last = int(ev["id"])
                    seen = ev["data"]["data"]["i"]
                    if seen == 99:
                        break
            except (OSError, ConnectionError):
                pass
            es.close()
            if seen == 99:
                break
        assert seen == 99, seen
        assert g2.request("GET", "/health").status == 200
    finally:
        g2.stop()


# Autobahn testsuite section 7 (close handling), each case over a real socket:
# (case, frames sent in one write, replies expected before the close (JSON
# "type"s), close codes accepted in answer). Autobahn's 7.1.6 sends 256 KiB;
# here a message near g's --live-max-message (4k) does the same job.
F = WebSocket.frame
CODE = lambda c, reason=b"": F(8, struct.pack("!H", c) + reason)  # noqa: E731
PING_TEXT = b'{"op":"ping"}'
CLOSE_CASES = [
    ("7.1.1 message then close", [F(1, PING_TEXT), CODE(1000)], ["pong"], {1000}),
    ("7.1.2 two closes", [CODE(1000), CODE(1000)], [], {1000}),
    ("7.1.3 ping after close", [CODE(1000), F(9, b"out of band ping")], [], {1000}),
    ("7.1.4 text after close", [CODE(1000), F(1, PING_TEXT)], [], {1000}),
    ("7.1.5 close between fragments",
     [F(1, b'{"op":', fin=False), CODE(1000), F(0, b'"ping"}')], [], {1000}),
    ("7.1.6 big message, close, ping", [F(1, b"x" * 4000), CODE(1000), F(9, b"p")], ["error"], {1000}),
    ("7.3.1 close without payload", [F(8, b"")], [], {1000}),
    ("7.3.2 close payload of one byte", [F(8, b"\x03")], [], {1002}),
    ("7.3.3 close 1000", [CODE(1000)], [], {1000}),
    ("7.3.4 close 1000 with reason", [CODE(1000, b"Hello World!")], [], {1000}),
    ("7.3.5 close with 123-byte reason", [CODE(1000, b"*" * 123)], [], {1000}),
    ("7.3.6 close with 124-byte reason", [CODE(1000, b"*" * 124)], [], {1002}),
    ("7.5.1 close reason not UTF-8", [CODE(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")],
     [], {1007}),
] + [("7.7 valid code %d" % c, [CODE(c)], [], {c})
     for c in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999)] + [
    ("7.9 invalid code %d" % c, [CODE(c)], [], {1002})
    for c in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999)] + [
    ("7.13.1 code 5000", [CODE(5000)], [], {1002}),
    ("7.13.2 code 65535", [CODE(65535)], [], {1002}),
]


def test_close_handling_autobahn_section_7():
    failures = []
    for name, frames, replies, codes in CLOSE_CASES:
        ws = WebSocket(g)
        ws.send_raw(b"".join(frames))
        got, code = [], None
        try:
            while True:
                op, p = ws.recv_frame(timeout=5)
                if op == 8:
                    code = close_code(p)
                    break
                if op == 1:
                    got.append(json.loads(p)["type"])
                elif op != 10:
                    got.append("opcode %d" % op)
        except (OSError, ConnectionError) as e:
            got.append("no close: %s" % e)
        after = b""
        ws.s.settimeout(5)
        try:
            while True:  # nothing after the close, then the server's EOF
                chunk = ws.s.recv(65536)
                if not chunk:
                    break
                after += chunk
        except OSError:
            pass
        ws.close()
        if code not in codes or got != replies or after:
            failures.append("%s: close %r replies %r after %r" % (name, code, got, after[:20]))
    assert not failures, "\n".join(failures)


if __name__ == "__main__":
    main(globals())
