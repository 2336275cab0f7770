"""Live topics' access rules end to end: flow's topics opened with
--flow-public, and subscriptions that end when their credential stops
holding (an access token that expires, a key revoked, a session logged
out), over WebSocket and SSE. (The rules themselves are unit-tested in
tests/unit/hub; an app's private owner topic in test_fixture_app.py.)"""

import base64
import json
import subprocess
import time

from grove import (ADMIN_PASSWORD, FAST_HASH, GROVE, EventStream, Grove, WebSocket, admin_headers,
                   eventually, run)

JSON = {"Content-Type": "application/json"}


def register(g, email):
    r = g.request("POST", "/auth/register", headers=JSON,
                  body=json.dumps({"email": email, "password": ADMIN_PASSWORD}).encode())
    assert r.status == 201, r.body
    return r.json()["data"]


def expiry(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["exp"]


def until_message(ws, pred, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = ws.recv_json(timeout=max(0.1, deadline - time.time()))
        if pred(m):
            return m
    raise AssertionError("timed out waiting for " + what)


def test_flow_public_opens_flow_topics_to_anyone():
    g = Grove("--flow-public", *FAST_HASH)
    try:
        es = EventStream(g, "topic=flow/alerts&topic=flow/stations/x", last_event_id=0)
        assert es.response.status == 200, es.response.status
        es.close()
        ws = WebSocket(g)
        ws.send({"op": "subscribe", "topic": "flow/regions/north"})
        m = ws.recv_json()
        assert m["type"] == "subscribed", m
        ws.send({"op": "publish", "topic": "flow/regions/north", "data": {}})  # still flow's alone
        m = ws.recv_json()
        assert m["type"] == "error" and m["error_code"] == "TOPIC_RESERVED", m
        ws.close()
        # the REST reads keep their credential
        assert g.request("GET", "/api/v1/flow/alerts").status == 401
    finally:
        g.stop()
    g = Grove(*FAST_HASH)  # the default: signed-in readers
    try:
        es = EventStream(g, "topic=flow/alerts")
        assert es.response.status == 401, es.response.status
        es.close()
    finally:
        g.stop()


def test_an_expiring_token_ends_its_subscriptions():
    g = Grove("--access-ttl", "2s", *FAST_HASH)
    try:
        tok = register(g, "short@example.com")["access_token"]
        bearer = {"Authorization": "Bearer " + tok}
        ws = WebSocket(g, headers=bearer)
        for t in ("flow/alerts", "demo/open"):
            ws.send({"op": "subscribe", "topic": t})
            assert ws.recv_json()["type"] == "subscribed"
        es = EventStream(g, "topic=flow/alerts", headers=bearer)
        assert es.response.status == 200
        m = until_message(ws, lambda m: m["type"] == "unsubscribed", "the subscription to end")
        assert m["topic"] == "flow/alerts" and m["status"] == 401, m
        assert m["error_code"] == "CREDENTIAL_EXPIRED", m
        assert time.time() >= expiry(tok) - 1, "ended before the token expired"
        # the client topic needed no credential and stays; the socket too
        ws.send({"op": "ping"})
        assert until_message(ws, lambda m: m["type"] == "pong", "pong")
        ws.send({"op": "subscribe", "topic": "flow/alerts"})  # the expired token no longer counts
        m = until_message(ws, lambda m: m["type"] in ("error", "subscribed"), "an answer")
        assert m["type"] == "error" and m["status"] == 401, m
        ws.close()
        # the event stream says why, then closes
        ev = es.next_event(timeout=15)
        assert ev["event"] == "error" and ev["data"]["error_code"] == "CREDENTIAL_EXPIRED", ev
        try:
            es.next_event(timeout=10)
            assert False, "the stream went on"
        except (ConnectionError, OSError):
            pass
        es.close()
    finally:
        g.stop()


def test_a_revoked_key_ends_its_subscriptions():
    g = Grove("--gate-refresh", "300ms", *FAST_HASH)
    try:
        out = subprocess.run([GROVE, "key", "add", "reader", "--scopes", "read", "--data-dir", g.data_dir],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        key_id, key = out.stdout.split()[:2]
        eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200, what="key loaded")
        ws = WebSocket(g, path="/api/v1/live?topic=flow/alerts", headers={"X-API-Key": key})
        assert ws.recv_json()["type"] == "subscribed"
        r = g.request("DELETE", "/api/v1/keys/" + key_id, headers=admin_headers(g))
        assert r.status in (200, 204), r.body
        m = until_message(ws, lambda m: m["type"] == "unsubscribed", "the subscription to end")
        assert m["topic"] == "flow/alerts" and m["error_code"] == "CREDENTIAL_REVOKED", m
        ws.close()
    finally:
        g.stop()


def test_logging_out_ends_an_event_stream():
    g = Grove("--gate-refresh", "300ms", *FAST_HASH)
    try:
        d = register(g, "leaver@example.com")
        es = EventStream(g, "topic=flow/alerts", headers={"Authorization": "Bearer " + d["access_token"]})
        assert es.response.status == 200
        r = g.request("POST", "/auth/logout", headers=JSON,
                      body=json.dumps({"refresh_token": d["refresh_token"]}).encode())
        assert r.status in (200, 204), r.body
        ev = es.next_event(timeout=15)
        assert ev["event"] == "error" and ev["data"]["error_code"] == "CREDENTIAL_REVOKED", ev
        es.close()
        # and a new one with the same token is refused before the stream starts
        es = EventStream(g, "topic=flow/alerts", headers={"Authorization": "Bearer " + d["access_token"]})
        assert es.response.status == 401, es.response.status
        es.close()
    finally:
        g.stop()


if __name__ == "__main__":
    run([test_flow_public_opens_flow_topics_to_anyone, test_an_expiring_token_ends_its_subscriptions,
         test_a_revoked_key_ends_its_subscriptions, test_logging_out_ends_an_event_stream])
