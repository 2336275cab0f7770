"""An app is one table and one line in the app table: grove-fixture is
grove with tests/app/fixture.c added that way (a route, a private topic,
an option, a verb). It is served, documented in --help, protected (401
anonymous, 403 without the scope) and refused where it should be (another
user's topic), with flow beside it untouched."""

import json
import os
import re
import subprocess

from grove import (ADMIN_PASSWORD, FAST_HASH, ROOT, EventStream, Grove, WebSocket, eventually, run)

FIXTURE = os.environ.get("GROVE_FIXTURE_BIN", os.path.join(ROOT, "build", "tests", "grove-fixture"))
JSON = {"Content-Type": "application/json"}
g = None


def setup():
    global g
    g = Grove("--fixture-greeting", "hi there", "--log-level", "debug", binary=FIXTURE, *FAST_HASH)


def key(scopes):
    out = subprocess.run([FIXTURE, "key", "add", "fx-" + scopes.replace(",", "-"), "--scopes", scopes,
                          "--data-dir", g.data_dir], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    k = out.stdout.split()[1]
    eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200, what="key loaded")
    return k


def user(email):
    r = g.request("POST", "/auth/register", headers=JSON,
                  body=json.dumps({"email": email, "password": ADMIN_PASSWORD}).encode())
    assert r.status == 201, r.body
    tok = r.json()["data"]["access_token"]
    me = g.request("GET", "/auth/me", headers={"Authorization": "Bearer " + tok}).json()
    return tok, me["data"]["id"]


def test_documented_in_help():
    out = subprocess.run([FIXTURE, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and re.search(r"^  fixture +the fixture's verb", out.stdout, re.M), out.stdout
    out = subprocess.run([FIXTURE, "serve", "--help"], capture_output=True, text=True)
    assert "--fixture-greeting" in out.stdout and "GROVE_FIXTURE_GREETING" in out.stdout, out.stdout
    assert re.search(r"^  fixture +a test app", out.stdout, re.M), out.stdout
    assert "--flow-window" in out.stdout  # the other apps are all there
    out = subprocess.run([FIXTURE, "fixture", "hello"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "hello\n", out


def test_served_with_its_option_and_listed():
    reader = key("read")
    r = g.request("GET", "/api/v1/fixture/hello", headers={"X-API-Key": reader})
    assert r.status == 200, r.body
    assert r.json()["data"]["greeting"] == "hi there", r.body
    apps = {a["name"]: a for a in g.get_json("/api/v1/apps")[1]["data"]}
    assert list(apps) == ["ops", "flow", "fixture"], apps
    assert apps["fixture"]["page"] == {"page": "fixture", "title": "Fixture", "script": None}, apps["fixture"]
    assert re.search(r"route method=GET pattern=/api/v1/fixture/hello owner=fixture access=read", g.output())
    # flow beside it is as before
    assert g.request("GET", "/api/v1/flow/snapshot", headers={"X-API-Key": reader}).status == 200


def test_protected_before_its_handler_runs():
    r = g.request("GET", "/api/v1/fixture/hello")
    assert r.status == 401 and r.json()["error_code"] == "UNAUTHORIZED", r.body
    assert r.header("www-authenticate") == "Bearer"
    r = g.request("GET", "/api/v1/fixture/hello", headers={"X-API-Key": "grv_" + "0" * 40})
    assert r.status == 401, r.body
    writer = key("write")
    r = g.request("GET", "/api/v1/fixture/hello", headers={"X-API-Key": writer})
    assert r.status == 403 and r.json()["details"]["needs"] == "read", r.body
    r = g.request("POST", "/api/v1/fixture/notes", body=b"{}", headers=dict(JSON, **{"X-API-Key": key("read")}))
    assert r.status == 403, r.body


def test_private_topic_is_its_owners_alone():
    alice, alice_id = user("alice@example.com")
    bob, bob_id = user("bob@example.com")
    mine, theirs = "fixture/users/" + alice_id, "fixture/users/" + bob_id
    # before the upgrade: 401 without a credential, 403 for another's
    es = EventStream(g, "topic=" + mine)
    assert es.response.status == 401, es.response.status
    es.close()
    es = EventStream(g, "topic=" + mine, headers={"Authorization": "Bearer " + bob})
    assert es.response.status == 403, es.response.status
    es.close()
    r = g.request("GET", "/api/v1/live?topic=" + mine, headers={"Authorization": "Bearer " + bob,
                                                              "Connection": "Upgrade", "Upgrade": "websocket"})
    assert r.status == 403 and r.json()["error_code"] == "NOT_OWNER", r.body
    # over a WebSocket: the subscribe answer says why
    ws = WebSocket(g, headers={"Authorization": "Bearer " + alice})
    ws.send({"op": "subscribe", "topic": theirs})
    m = ws.recv_json()
    assert m["type"] == "error" and m["status"] == 403 and m["error_code"] == "NOT_OWNER", m
    ws.send({"op": "subscribe", "topic": mine})
    assert ws.recv_json()["type"] == "subscribed"
    ws.send({"op": "publish", "topic": mine, "data": {"x": 1}})  # only the app publishes
    m = ws.recv_json()
    assert m["type"] == "error" and m["error_code"] == "TOPIC_RESERVED", m
    # what the app publishes on it reaches its owner
    r = g.request("POST", "/api/v1/fixture/notes", body=b'{"note":"hi"}',
                  headers=dict(JSON, **{"Authorization": "Bearer " + alice}))
    assert r.status == 202, r.body
    m = ws.recv_json()
    assert m["type"] == "message" and m["topic"] == mine and m["data"] == {"note": "hi"}, m
    ws.close()
    es = EventStream(g, "topic=" + mine, last_event_id=0, headers={"Authorization": "Bearer " + alice})
    assert es.response.status == 200 and es.next_event()["data"]["data"] == {"note": "hi"}
    es.close()


if __name__ == "__main__":
    setup()
    try:
        run([test_documented_in_help, test_served_with_its_option_and_listed,
             test_protected_before_its_handler_runs, test_private_topic_is_its_owners_alone])
    finally:
        g.stop()
