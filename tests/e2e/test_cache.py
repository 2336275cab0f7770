"""The three cache tiers over real servers: memory, Redis, the database;
writes invalidate on every instance."""

import json
import re
import subprocess

import threading
import time

from grove import (ADMIN_PASSWORD, FAST_HASH, GROVE, Grove, Postgres, Redis, admin_headers, eventually,
                   run, main, shared_store, stop_all)

FAST = FAST_HASH


def admin(g):
    return admin_headers(g)


def tiers(g):
    text = g.request("GET", "/metrics").body.decode()
    out = {}
    for m in re.finditer(r'^grove_cache_requests_total\{cache="devices",tier="(\w+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    ratio = re.search(r'^grove_cache_hit_ratio\{cache="devices"\} (\S+)$', text, re.M)
    out["ratio"] = float(ratio.group(1)) if ratio else None
    return out


def test_memory_tier_then_invalidation():
    g = Grove(*FAST)
    try:
        auth = admin(g)
        r = g.request("POST", "/api/v1/devices", body=json.dumps({"id": "wh-1", "name": "Depot", "type": "warehouse"}).encode(),
                      headers=auth)
        assert r.status == 201
        first = g.request("GET", "/api/v1/devices/wh-1", headers=auth)
        assert first.status == 200 and first.json()["data"]["name"] == "Depot"
        for _ in range(3):
            again = g.request("GET", "/api/v1/devices/wh-1", headers=auth)
            assert again.json()["data"] == first.json()["data"]
        t = tiers(g)
        assert t["database"] == 1 and t["local"] == 3 and t["ratio"] == 0.75, t
        assert g.request("DELETE", "/api/v1/devices/wh-1", headers=auth).status == 200
        assert g.request("GET", "/api/v1/devices/wh-1", headers=auth).status == 404  # not served stale
        assert g.request("GET", "/api/v1/devices/none", headers=auth).status == 404
        assert g.request("GET", "/api/v1/devices/wh-1").status == 401
    finally:
        g.stop()


def test_no_memory_tier_when_ttl_is_zero():
    g = Grove("--cache-ttl", "0", *FAST)
    try:
        auth = admin(g)
        g.request("POST", "/api/v1/devices", body=b'{"id":"o-1","name":"HQ","type":"office"}', headers=auth)
        for _ in range(3):
            assert g.request("GET", "/api/v1/devices/o-1", headers=auth).status == 200
        t = tiers(g)
        assert t["database"] == 3 and t.get("local", 0) == 0, t
    finally:
        g.stop()


def test_redis_tier_and_invalidation_on_every_instance():
    redis = Redis()
    a = b = None
    try:
        a = Grove("--broker", redis.url, "--gate-refresh", "200ms", *FAST)
        b = Grove("--broker", redis.url, "--gate-refresh", "200ms", *FAST, *shared_store(a))
        for g in (a, b):
            eventually(lambda: g.request("GET", "/ready").status == 200, what="redis up")
        auth = admin(a)
        assert a.request("POST", "/api/v1/devices", body=b'{"id":"t-9","name":"Nine","type":"truck"}',
                         headers=auth).status == 201
        eventually(lambda: b.request("GET", "/auth/me", headers=auth).status == 200, what="b knows the session")
        assert a.request("GET", "/api/v1/devices/t-9", headers=auth).status == 200   # database, fills Redis
        eventually(lambda: subprocess.run(["redis-cli", "-p", str(redis.port), "EXISTS", "grove:cache:devices:t-9"],
                                          capture_output=True, text=True).stdout.strip() == "1",
                   what="value in redis")
        r = b.request("GET", "/api/v1/devices/t-9", headers=auth)                  # Redis
        assert r.status == 200 and r.json()["data"]["name"] == "Nine"
        assert b.request("GET", "/api/v1/devices/t-9", headers=auth).status == 200  # memory
        tb = tiers(b)
        assert tb["redis"] == 1 and tb["local"] == 1 and tb.get("database", 0) == 0, tb
        # a write on a reaches b's memory and Redis
        assert a.request("DELETE", "/api/v1/devices/t-9", headers=auth).status == 200
        eventually(lambda: b.request("GET", "/api/v1/devices/t-9", headers=auth).status == 404,
                   what="b invalidated")
        assert subprocess.run(["redis-cli", "-p", str(redis.port), "EXISTS", "grove:cache:devices:t-9"],
                              capture_output=True, text=True).stdout.strip() == "0"
    finally:
        stop_all(a, b, redis)


def pg_admin(pg, g):
    """An admin made with the CLI on PostgreSQL, signed in on g."""
    subprocess.run([GROVE, "user", "add", "root@example.com", "--role", "admin", "--store", pg.url] + FAST,
                   input=ADMIN_PASSWORD + "\n", capture_output=True, text=True, timeout=30, check=True)
    r = g.request("POST", "/auth/login", body=json.dumps({"email": "root@example.com",
                                                          "password": ADMIN_PASSWORD}).encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 200, r.body
    return {"Authorization": "Bearer " + r.json()["data"]["access_token"], "Content-Type": "application/json"}


def backlog(g, stop, topic="load/backlog"):
    """Keeps the broker's publish queue on g busy with large live messages."""
    body = json.dumps({"pad": "x" * 16000}).encode()
    while not stop.is_set():
        g.request("POST", "/api/v1/live/" + topic, body=body, headers={"Content-Type": "application/json"})


def test_a_write_is_never_followed_by_an_older_value():
    # two instances on PostgreSQL + Redis; each round fills both caches,
    # loads the writer's broker queue with live messages and deletes the
    # device on one instance while readers hammer both: on the writer no
    # read started after the answer sees the device; on the other, once it
    # answered 404 it never answers 200 again
    pg, redis = Postgres(), Redis()
    a = b = None
    opts = ["--store", pg.url, "--broker", redis.url, "--live-client-publish", "--rate-global", "0",
            "--rate-anonymous", "0", "--rate-key", "0", "--gate-refresh", "1h", "--threads", "2"] + FAST
    try:
        a = Grove(*opts)
        b = Grove(*opts)
        for g in (a, b):
            eventually(lambda: g.request("GET", "/ready").status == 200, what="ready")
        auth = pg_admin(pg, a)
        eventually(lambda: b.request("GET", "/auth/me", headers=auth).status == 200, what="b knows the session")
        for rnd in range(6):
            dev = "d-%d" % rnd
            writer, other = (a, b) if rnd % 2 == 0 else (b, a)
            assert writer.request("POST", "/api/v1/devices", body=json.dumps({"id": dev, "name": "n", "type": "truck"}).encode(),
                                  headers=auth).status == 201
            for g in (a, b):  # both memories and Redis hold it
                eventually(lambda: g.request("GET", "/api/v1/devices/" + dev, headers=auth).status == 200,
                           what="device readable")
                assert g.request("GET", "/api/v1/devices/" + dev, headers=auth).status == 200
            seen = []
            lock = threading.Lock()
            stop = threading.Event()

            def reader(g):
                while not stop.is_set():
                    t0 = time.monotonic()
                    st = g.request("GET", "/api/v1/devices/" + dev, headers=auth).status
                    with lock:
                        seen.append((g, t0, time.monotonic(), st))
            threads = [threading.Thread(target=backlog, args=(writer, stop)) for _ in range(3)]
            threads += [threading.Thread(target=reader, args=(g,)) for g in (a, b, a, b)]
            [t.start() for t in threads]
            try:
                eventually(lambda: len(seen) >= 20, what="readers under way")
                assert writer.request("DELETE", "/api/v1/devices/" + dev, headers=auth).status == 200
                acked = time.monotonic()
                assert writer.request("GET", "/api/v1/devices/" + dev, headers=auth).status == 404
                # (a busy machine under this backlog may take a while: the
                # property is that it drops it, and never goes back below)
                eventually(lambda: other.request("GET", "/api/v1/devices/" + dev, headers=auth,
                                                 timeout=30).status == 404,
                           timeout=30, what="the other instance drops it")
                settled = time.monotonic()
                n = len(seen)
                eventually(lambda: len(seen) >= n + 20, what="more reads")
            finally:
                stop.set()
                [t.join() for t in threads]
            stale = [(g is a, t0 - acked, st) for g, t0, _, st in seen if g is writer and t0 > acked and st != 404]
            assert not stale, ("writer served a deleted device", rnd, stale)
            stale = [(t0 - settled, st) for g, t0, _, st in seen if g is other and t0 > settled and st != 404]
            assert not stale, ("other instance went back to the deleted device", rnd, stale)
            assert all(st in (200, 404) for _, _, _, st in seen), set(st for _, _, _, st in seen)
        # credentials too: a revoked key and a closed session stop at once on
        # the writer, and on the other instance long before --gate-refresh
        r = a.request("POST", "/api/v1/keys", body=json.dumps({"name": "k", "scopes": ["read"]}).encode(), headers=auth)
        key, kid = r.json()["data"]["key"], r.json()["data"]["id"]
        eventually(lambda: b.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200,
                   timeout=5, what="new key known to b")
        assert a.request("DELETE", "/api/v1/keys/" + kid, headers=auth).status == 200
        assert a.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 401
        eventually(lambda: b.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 401,
                   timeout=5, what="revoked key refused on b")
        assert b.request("POST", "/auth/logout", headers=auth).status in (200, 204)
        assert b.request("GET", "/auth/me", headers=auth).status == 401
        eventually(lambda: a.request("GET", "/auth/me", headers=auth).status == 401,
                   timeout=5, what="closed session refused on a")
    finally:
        stop_all(a, b, redis, pg)


def lookups(g):
    text = g.request("GET", "/metrics").body.decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^grove_key_lookups_total\{result="(\w+)"\} (\S+)$', text, re.M)}


def test_a_new_key_works_at_once():
    # the credential view reloads every --gate-refresh (an hour here): a key
    # made behind the server's back is looked up once before it is refused
    g = Grove("--gate-refresh", "1h", "--rate-anonymous", "0", *FAST)
    try:
        assert g.request("GET", "/auth/me", headers={"X-API-Key": "grv_" + "0" * 41}).status == 401
        out = subprocess.run([GROVE, "key", "add", "fresh", "--scopes", "read", "--data-dir", g.data_dir],
                             capture_output=True, text=True, timeout=30, check=True)
        key = out.stdout.split()[1]
        r = g.request("GET", "/auth/me", headers={"X-API-Key": key})
        assert r.status == 200, r.body
        assert g.request("GET", "/auth/me", headers={"Authorization": "Bearer " + key}).status == 200
        assert lookups(g) == {"found": 1, "missing": 1, "skipped": 0}, lookups(g)  # then from memory
        # an unknown key is looked up once, then remembered as absent
        for _ in range(20):
            assert g.request("GET", "/auth/me", headers={"X-API-Key": "grv_" + "1" * 41}).status == 401
        assert lookups(g) == {"found": 1, "missing": 2, "skipped": 0}, lookups(g)
    finally:
        g.stop()
    # random keys cannot turn into database load: lookups take from a budget
    g = Grove("--key-lookups", "5/m", "--rate-anonymous", "0", *FAST)
    try:
        start = time.monotonic()
        statuses = [g.request("GET", "/auth/me", headers={"X-API-Key": "grv_%041d" % i}).status for i in range(30)]
        elapsed = time.monotonic() - start
        assert statuses == [401] * 30
        n = lookups(g)
        budget = 5 + int(elapsed / 12) + 1  # a token every 12 s
        assert n["found"] + n["missing"] <= budget and n["skipped"] >= 30 - budget, (n, elapsed)
        assert n["found"] + n["missing"] + n["skipped"] == 30, n
    finally:
        g.stop()


def vary_tokens(r):
    """The answer's Vary tokens; fails unless they come as one header."""
    lines = r.header_all("vary")
    assert len(lines) <= 1, lines
    return [t.strip() for t in lines[0].split(",")] if lines else []


def test_vary_origin_on_every_answer_when_cors_is_on():
    # a shared cache must not hand an answer made without CORS headers (no
    # Origin, or a refused one) to an allowed origin, or the reverse
    g = Grove("--cors-origins", "https://console.example", *FAST)
    try:
        for path in ("/", "/app.js", "/api/v1/devices", "/health", "/nope"):
            for origin in (None, "https://console.example", "https://evil.example"):
                h = {"Origin": origin} if origin else {}
                r = g.request("GET", path, headers=h)
                assert vary_tokens(r) == ["Origin"], (path, origin, r.head_lines)
                allowed = r.header("access-control-allow-origin")
                assert allowed == ("https://console.example" if origin == "https://console.example" else None)
                if path == "/app.js":
                    assert "max-age" in r.header("cache-control")
            # merged with Accept-Encoding into one header when compressed
            r = g.request("GET", path, headers={"Accept-Encoding": "gzip", "Origin": "https://evil.example"})
            if r.header("content-encoding") == "gzip":
                assert sorted(vary_tokens(r)) == ["Accept-Encoding", "Origin"], r.head_lines
            else:
                assert vary_tokens(r) == ["Origin"], r.head_lines
        r = g.request("GET", "/app.js", headers={"Accept-Encoding": "gzip"})
        assert r.header("content-encoding") == "gzip" and r.header_all("vary") == ["Origin, Accept-Encoding"]
        # a preflight and a 304 say it too
        r = g.request("OPTIONS", "/api/v1/devices", headers={"Origin": "https://console.example",
                                                             "Access-Control-Request-Method": "GET"})
        assert r.status == 204 and vary_tokens(r) == ["Origin"]
        etag = g.request("GET", "/app.js").header("etag")
        r = g.request("GET", "/app.js", headers={"If-None-Match": etag})
        assert r.status == 304 and vary_tokens(r) == ["Origin"], r.head_lines
    finally:
        g.stop()
    # "*" still depends on Origin: no Origin, no CORS header
    g = Grove("--cors-origins", "*", *FAST)
    try:
        r = g.request("GET", "/app.js")
        assert r.header("access-control-allow-origin") is None and vary_tokens(r) == ["Origin"]
    finally:
        g.stop()
    # without CORS nothing depends on Origin
    g = Grove(*FAST)
    try:
        r = g.request("GET", "/app.js", headers={"Origin": "https://console.example"})
        assert vary_tokens(r) == [], r.head_lines
        r = g.request("GET", "/app.js", headers={"Accept-Encoding": "gzip"})
        assert r.header_all("vary") == ["Accept-Encoding"]
    finally:
        g.stop()


if __name__ == "__main__":
    main(globals())
