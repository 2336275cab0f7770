"""Rate limits and the device registry over real sockets: exact counts
under concurrency, the 429 answer and its headers, device classes."""

import json
import re
import shutil
import subprocess
import threading
import time

from grove import FAST_HASH, GROVE, Grove, admin_headers, eventually, run, main, stop_all

FAST = FAST_HASH


def admin(g):
    return admin_headers(g)["Authorization"][len("Bearer "):]


def hammer(g, n, path, headers=None):
    """n requests at once, one connection each; returns their statuses."""
    statuses = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        statuses[i] = g.request("GET", path, headers=headers).status
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return statuses


def test_per_key_limit_is_exact_under_concurrency():
    g = Grove("--rate-key", "10/m", "--threads", "2", *FAST)
    try:
        tok = admin(g)
        r = g.request("POST", "/api/v1/keys", body=json.dumps({"name": "k", "scopes": ["read"]}).encode(),
                      headers={"Content-Type": "application/json", "Authorization": "Bearer " + tok})
        key = r.json()["data"]["key"]
        eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200,
                   what="key usable")  # that took one of the ten
        statuses = hammer(g, 30, "/auth/me", {"X-API-Key": key})
        assert statuses.count(200) == 9 and statuses.count(429) == 21, statuses
        r = g.request("GET", "/auth/me", headers={"X-API-Key": key})
        assert r.status == 429
        body = r.json()
        assert body["error_code"] == "RATE_LIMITED" and body["details"]["policy"] == "key"
        assert 1 <= int(r.header("retry-after")) <= 6
        assert r.header("ratelimit-policy") == '"key";q=10;w=60'
        assert re.fullmatch(r'"key";r=0;t=\d+', r.header("ratelimit")), r.header("ratelimit")
        metrics = g.request("GET", "/metrics").body.decode()
        assert 'grove_rate_limited_total{policy="key"} 22' in metrics
        # another caller is not affected
        assert g.request("GET", "/auth/me", headers={"Authorization": "Bearer " + tok}).status == 200
    finally:
        g.stop()


def test_global_bucket_sheds_load():
    g = Grove("--rate-global", "20/m", "--rate-anonymous", "0", *FAST)
    try:
        statuses = hammer(g, 40, "/api/v1/devices")  # 401 without a credential, but counted
        assert statuses.count(429) == 20 and statuses.count(401) == 20, statuses
        r = g.request("GET", "/api/v1/devices")
        assert r.status == 429 and r.json()["details"]["policy"] == "global"
        # probes and scrapes are never limited
        assert g.request("GET", "/health").status == 200
        assert g.request("GET", "/ready").status == 200
        assert g.request("GET", "/metrics").status == 200
    finally:
        g.stop()


def add_key(data_dir, name="k"):
    out = subprocess.run([GROVE, "key", "add", name, "--scopes", "read", "--data-dir", data_dir],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def refused_flood_costs_others_nothing(extra):
    # one anonymous address floods: its own bucket refuses it, and a refused
    # request must not take the instance's token, so a key sending its whole
    # budget in the middle of the flood is never refused
    import tempfile
    data = tempfile.mkdtemp(prefix="grove-e2e-data-")
    key = add_key(data)  # known from the first view: no polling
    g = Grove("--rate-global", "30/m", "--rate-anonymous", "5/m", "--rate-key", "10/m", "--threads", "2",
              *FAST, *extra, data_dir=data)
    try:
        if extra:
            eventually(lambda: g.request("GET", "/ready").status == 200, what="limits in redis")
        flood = []
        lock = threading.Lock()
        stop = threading.Event()

        def flooder():
            while not stop.is_set():
                s = g.request("GET", "/api/v1/devices").status
                with lock:
                    flood.append(s)
        threads = [threading.Thread(target=flooder) for _ in range(4)]
        [t.start() for t in threads]
        eventually(lambda: len(flood) >= 100, what="flood under way")
        mine = []
        for _ in range(10):  # the key's exact budget, interleaved with the flood
            n = len(flood)
            eventually(lambda: len(flood) >= n + 20, what="more flood")
            mine.append(g.request("GET", "/auth/me", headers={"X-API-Key": key}).status)
        stop.set()
        [t.join() for t in threads]
        assert mine == [200] * 10, mine
        assert flood.count(429) >= len(flood) - 10, flood  # the flood itself was refused
        assert g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 429  # budget spent
        m = g.request("GET", "/metrics").body.decode()
        assert 'grove_rate_limited_total{policy="global"} 0' in m, m
    finally:
        g.stop()
        shutil.rmtree(data, ignore_errors=True)


def global_refusal_gives_the_callers_token_back(extra):
    import tempfile
    data = tempfile.mkdtemp(prefix="grove-e2e-data-")
    key = add_key(data)
    g = Grove("--rate-global", "3/m", "--rate-key", "5/m", *FAST, *extra, data_dir=data)
    try:
        if extra:
            eventually(lambda: g.request("GET", "/ready").status == 200, what="limits in redis")
        statuses = [g.request("GET", "/auth/me", headers={"X-API-Key": key}).status for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429], statuses
        r = g.request("GET", "/auth/me", headers={"X-API-Key": key})
        assert r.json()["details"]["policy"] == "global"
        m = g.request("GET", "/metrics").body.decode()
        assert 'grove_rate_limited_total{policy="key"} 0' in m
    finally:
        g.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_refused_flood_costs_others_nothing():
    refused_flood_costs_others_nothing([])


def test_global_refusal_gives_the_callers_token_back():
    global_refusal_gives_the_callers_token_back([])


def test_the_same_with_the_callers_buckets_in_redis():
    from grove import Redis
    redis = Redis()
    try:
        refused_flood_costs_others_nothing(["--broker", redis.url])
        global_refusal_gives_the_callers_token_back(["--broker", redis.url])
    finally:
        redis.stop()


def test_clients_behind_the_shipped_nginx():
    # deploy/nginx.conf names the client in X-Forwarded-For and grove
    # believes it only from --trusted-proxies: two clients behind nginx get
    # their own buckets, the audit and the access log their own addresses,
    # and a header a client wrote itself (through nginx or not) is ignored
    from grove import Nginx, request_from
    g = Grove("--trusted-proxies", "127.0.0.1/32, ::1", "--rate-anonymous", "3/h", *FAST)
    ng = None
    try:
        ng = Nginx(g.port)

        def via(src, method="GET", path="/api/v1/devices", **kw):
            return request_from(src, ng.port, method, path, **kw)
        assert [via("127.0.0.2").status for _ in range(4)] == [401, 401, 401, 429]
        r = via("127.0.0.2")
        assert r.status == 429 and r.json()["details"]["policy"] == "anonymous"
        assert via("127.0.0.3").status == 401  # a bucket of its own, not nginx's
        # a client's own X-Forwarded-For, through nginx or straight to grove
        assert via("127.0.0.2", headers={"X-Forwarded-For": "203.0.113.7"}).status == 429
        assert request_from("127.0.0.2", g.port, "GET", "/api/v1/devices",
                            headers={"X-Forwarded-For": "203.0.113.8"}).status == 429
        # the audit records the client, not nginx
        r = via("127.0.0.3", "POST", "/auth/login", body=b'{"email":"nobody@example.com","password":"wrong password"}',
                headers={"Content-Type": "application/json"})
        assert r.status == 401, r.body
        auth = admin_headers(g)  # straight from 127.0.0.1: a proxy naming nobody is itself
        audit = g.request("GET", "/api/v1/audit", headers=auth).json()["data"]
        logins = [(e["outcome"], e["ip"]) for e in audit if e["action"] == "user.login"]
        assert ("ok", "127.0.0.1") in logins and any(ip == "127.0.0.3" for o, ip in logins if o != "ok"), logins
        out = g.output()
        assert "client=127.0.0.2" in out and "client=127.0.0.3" in out
        assert "client=203.0.113" not in out
    finally:
        stop_all(g, ng)


def test_bad_trusted_proxies_fail_at_start():
    for bad in ("10.0.0.0/33", "nginx.internal", "::/200"):
        out = subprocess.run([GROVE, "serve", "--listen", "127.0.0.1:0", "--data-dir", "/tmp/grove-bad-proxy",
                              "--trusted-proxies", bad], capture_output=True, text=True, timeout=20)
        assert out.returncode != 0 and "--trusted-proxies" in out.stderr, (bad, out.stderr)


def test_anonymous_per_address():
    g = Grove("--rate-anonymous", "5/s", *FAST)
    try:
        began = time.time()
        statuses = hammer(g, 12, "/api/v1/devices")
        refilled = int((time.time() - began) * 5)  # a busy machine may stretch the burst
        assert 7 - refilled <= statuses.count(429) <= 7, (statuses, refilled)
        r = g.request("GET", "/api/v1/devices")
        assert r.header("ratelimit-policy") == '"anonymous";q=5;w=1'
        time.sleep(1.1)  # refilled
        assert g.request("GET", "/api/v1/devices").status == 401
    finally:
        g.stop()


def test_devices_and_their_rate_classes():
    g = Grove("--rate-classes", "truck=5/m,office=500/m", *FAST)
    try:
        tok = admin(g)
        auth = {"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
        r = g.request("POST", "/api/v1/devices", body=json.dumps({"id": "truck-17", "name": "Truck 17", "type": "truck"}).encode(),
                      headers=auth)
        assert r.status == 201, r.body
        d = r.json()["data"]
        assert d["id"] == "truck-17" and d["type"] == "truck" and d["rate_per_minute"] == 5
        key = d["key"]
        r = g.request("POST", "/api/v1/devices", body=json.dumps({"id": "truck-17", "name": "again", "type": "truck"}).encode(),
                      headers=auth)
        assert r.status == 409
        r = g.request("POST", "/api/v1/devices", body=json.dumps({"name": "x", "type": "boat"}).encode(), headers=auth)
        assert r.status == 400 and r.json()["details"]["types"] == ["truck", "office"]
        r = g.request("POST", "/api/v1/devices", body=json.dumps({"id": "bad id!", "name": "x", "type": "office"}).encode(),
                      headers=auth)
        assert r.status == 400
        office = g.request("POST", "/api/v1/devices", body=json.dumps({"name": "HQ", "type": "office"}).encode(),
                           headers=auth).json()["data"]
        assert office["id"].startswith("dev_")
        eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200,
                   what="device key usable")
        statuses = [g.request("GET", "/api/v1/devices/truck-17", headers={"X-API-Key": key}).status
                    for _ in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429], statuses
        r = g.request("GET", "/api/v1/devices/truck-17", headers={"X-API-Key": key})
        assert r.json()["details"]["policy"] == "device"
        assert r.header("ratelimit-policy") == '"device";q=5;w=60'
        # the office device has its own, larger bucket
        for _ in range(10):
            assert g.request("GET", "/api/v1/devices", headers={"X-API-Key": office["key"]}).status == 200
        listed = g.request("GET", "/api/v1/devices", headers=auth).json()["data"]
        assert [x["id"] for x in listed] == sorted([office["id"], "truck-17"])
        # device keys write and read, never administer
        r = g.request("POST", "/api/v1/devices", body=b'{"name":"x","type":"office"}',
                      headers={"X-API-Key": office["key"], "Content-Type": "application/json"})
        assert r.status == 403
        r = g.request("DELETE", "/api/v1/devices/" + office["id"], headers=auth)
        assert r.status == 200
        assert g.request("GET", "/api/v1/devices", headers={"X-API-Key": office["key"]}).status == 401
        assert g.request("DELETE", "/api/v1/devices/" + office["id"], headers=auth).status == 404
        assert g.request("GET", "/api/v1/devices/nope", headers=auth).status == 404
        audit = g.request("GET", "/api/v1/audit", headers=auth).json()["data"]
        assert {"device.create", "device.delete"} <= {a["action"] for a in audit}
    finally:
        g.stop()


def test_bad_rate_options_fail_at_start():
    for args in (["--rate-key", "ten"], ["--rate-global", "5/week"], ["--rate-classes", "truck"],
                 ["--rate-classes", "truck=fast"]):
        out = subprocess.run([GROVE, "serve", "--listen", "127.0.0.1:0", "--data-dir", "/tmp/grove-bad-rate"] + args,
                             capture_output=True, text=True, timeout=20)
        assert out.returncode != 0 and "rate" in out.stderr, (args, out.stderr)


if __name__ == "__main__":
    main(globals())
