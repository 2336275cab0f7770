"""grove against real PostgreSQL and Redis servers started by this test:
the store on PostgreSQL, and two instances sharing live topics through
Redis, through a Redis outage and back."""

import json
import re
import subprocess
import threading
import time

from grove import GROVE, Grove, Postgres, Redis, WebSocket, eventually, run, main, shared_store, stop_all


def publish(grove, topic, data):
    r = grove.request("POST", "/api/v1/live/" + topic, body=json.dumps(data).encode(),
                      headers={"Content-Type": "application/json"})
    assert r.status == 202, r.body
    return r.json()["data"]["id"]


def next_message(ws, timeout=5):
    while True:
        m = ws.recv_json(timeout)
        if m["type"] == "message":
            return m


def test_postgres_store_end_to_end():
    pg = Postgres()
    applied = None
    try:
        g = Grove("--store", pg.url, "--store-pool", "4")
        try:
            st, body = g.get_json("/ready")
            assert st == 200, body
            assert body["data"]["checks"]["store"] == {"ok": True, "driver": "postgres"}
            assert pg.psql("SELECT version FROM grove_migrations WHERE module = 'store'") == "1"
            applied = pg.psql("SELECT count(*) FROM grove_migrations")
            assert pg.psql("SELECT value FROM grove_meta WHERE key = 'version'") == "0.1.0"
            for _ in range(20):
                assert g.request("GET", "/ready").status == 200
        finally:
            g.stop()
        # a second start applies nothing twice
        g = Grove("--store", pg.url)
        try:
            assert g.request("GET", "/ready").status == 200
            assert "migration applied" not in g.output()
            assert pg.psql("SELECT count(*) FROM grove_migrations") == applied
        finally:
            g.stop()
    finally:
        pg.stop()


def test_instances_started_together_on_a_fresh_database():
    """Issue 10.4: several instances started at once on a fresh database
    all come up (migrations and the series tables are made once, under an
    advisory lock; the others wait and go on). Every round must pass."""
    pg = Postgres()
    try:
        for rnd in range(3):
            db = "fresh%d" % rnd
            pg.psql("CREATE DATABASE %s" % db)
            url = pg.url.rsplit("/", 1)[0] + "/" + db
            gs = [Grove("--store", url, "--store-pool", "2", wait=False) for _ in range(4)]
            try:
                for g in gs:
                    g.wait_listening(timeout=60)  # some wait for the others' migrations
                for g in gs:
                    st, body = g.get_json("/ready")
                    assert st == 200, body
                out = "".join(g.output() for g in gs)
                assert "duplicate key" not in out and "cannot migrate" not in out, out[-4000:]
                # each step applied by exactly one instance
                applied = pg.psql("SELECT count(*) FROM grove_migrations", db)
                assert out.count("migration applied") == int(applied), out[-4000:]
                # the first points of a new day, on every instance at once: one
                # makes the day's partition, the others wait for it (same lock)
                key = subprocess.run([GROVE, "key", "add", "w", "--scopes", "read,write", "--store", url],
                                     capture_output=True, text=True, timeout=30)
                assert key.returncode == 0, key.stderr
                key = key.stdout.split()[1]
                for g in gs:
                    eventually(lambda g=g: g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200,
                               what="key seen by every instance")
                day = 1700000000 * 10**9 + rnd * 86400 * 10**9
                go = threading.Barrier(len(gs))
                answers = [None] * len(gs)

                def write(i):
                    go.wait()
                    answers[i] = gs[i].request("POST", "/api/v1/write", headers={"X-API-Key": key},
                                               body=b"race,i=%d v=%d %d\n" % (i, i, day + i))
                threads = [threading.Thread(target=write, args=(i,)) for i in range(len(gs))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert [a.status for a in answers] == [204] * len(gs), [a.body for a in answers]
                assert pg.psql("SELECT count(*) FROM series_points", db) == str(len(gs))
                assert "cannot make a series partition" not in "".join(g.output() for g in gs)
            finally:
                for g in gs:
                    g.stop()
    finally:
        pg.stop()


def test_postgres_down_makes_ready_fail_then_recover():
    pg = Postgres()
    try:
        g = Grove("--store", pg.url)
        try:
            assert g.request("GET", "/ready").status == 200
            pg.halt()
            r = g.request("GET", "/ready")
            assert r.status == 503, r.body
            body = r.json()
            assert body["error_code"] == "NOT_READY" and body["details"]["down"] == ["store"]
            assert r.header("retry-after")
            pg.resume()
            eventually(lambda: g.request("GET", "/ready").status == 200, what="store back")
        finally:
            g.stop()
    finally:
        pg.stop()


def test_bad_store_url_fails_at_start():
    import subprocess
    from grove import GROVE
    out = subprocess.run([GROVE, "serve", "--listen", "127.0.0.1:0", "--store",
                          "postgres://nobody@127.0.0.1:1/none"], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and "cannot open store" in out.stderr, out.stderr
    out = subprocess.run([GROVE, "serve", "--listen", "127.0.0.1:0", "--store", "mysql://x"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and "unknown store" in out.stderr, out.stderr


def test_two_instances_share_topics_through_redis():
    redis = Redis()
    a = b = None
    try:
        a = Grove("--broker", redis.url, "--live-client-publish")
        b = Grove("--broker", redis.url, "--live-client-publish")
        for g in (a, b):
            eventually(lambda: g.request("GET", "/ready").status == 200, what="broker up")
            st, body = g.get_json("/ready")
            assert body["data"]["checks"]["broker"] == {"ok": True}
            assert body["data"]["checks"]["rate_limits"] == {"ok": True, "mode": "shared"}
        wa = WebSocket(a, "/api/v1/live?topic=demo/devices/7")
        wb = WebSocket(b, "/api/v1/live?topic=demo/devices/7")
        wa.recv_json(), wb.recv_json()  # subscribed
        time.sleep(0.2)
        publish(b, "demo/devices/7", {"event": "ResponseReady", "n": 1})
        for ws in (wa, wb):
            m = next_message(ws)
            assert m["data"] == {"event": "ResponseReady", "n": 1}
        publish(a, "demo/devices/7", {"n": 2})
        assert next_message(wb)["data"] == {"n": 2}
        assert next_message(wa)["data"] == {"n": 2}  # once, not twice
        wa.send({"op": "ping"})
        assert wa.recv_json() == {"type": "pong"}

        # Redis goes away: local delivery goes on, /ready says the broker is down
        redis.kill()
        # the broker's threads and the loops' connections notice on their own clocks
        eventually(lambda: a.request("GET", "/ready").json().get("details", {}).get("down")
                   == ["broker", "rate_limits"], what="broker and shared limits down")
        body = a.request("GET", "/ready").json()
        assert body["details"]["checks"]["rate_limits"]["mode"] == "local (redis unavailable)"
        assert body["details"]["checks"]["broker"]["ok"] is False
        publish(a, "demo/devices/7", {"n": 3})
        assert next_message(wa)["data"] == {"n": 3}
        metrics = a.request("GET", "/metrics").body.decode()
        assert "grove_broker_up 0" in metrics

        # and comes back
        redis.start()
        for g in (a, b):
            eventually(lambda: g.request("GET", "/ready").status == 200, timeout=15, what="broker back")
        time.sleep(0.3)
        publish(a, "demo/devices/7", {"n": 4})
        assert next_message(wb, 10)["data"] == {"n": 4}
        wa.close()
        wb.close()
    finally:
        stop_all(a, b, redis)


def test_two_instances_enforce_one_limit_through_redis():
    import subprocess
    import threading
    from grove import GROVE
    redis = Redis()
    a = b = None
    try:
        # 20 an hour: no token comes back while the test runs (20/m gives
        # one every 3 s, which a slow machine's 40 requests can outlast)
        a = Grove("--broker", redis.url, "--rate-key", "20/h", "--gate-refresh", "200ms")
        # b shares a's database (SQLite in WAL mode serves both processes) and Redis
        b = Grove("--broker", redis.url, "--rate-key", "20/h", "--gate-refresh", "200ms",
                  *shared_store(a))
        out = subprocess.run([GROVE, "key", "add", "shared", "--scopes", "read", "--data-dir", a.data_dir],
                             capture_output=True, text=True)
        key = out.stdout.split()[1]
        for g in (a, b):
            eventually(lambda: g.request("GET", "/ready").status == 200, what="shared limits up")
            eventually(lambda: g.request("GET", "/api/v1/devices", headers={"X-API-Key": "x"}).status == 401,
                       what="serving")
        eventually(lambda: b.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200,
                   what="key known to b")
        eventually(lambda: a.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200,
                   what="key known to a")
        # 2 of 20 taken; 40 more at once, half on each instance: exactly 18
        # pass, and one more per decision Redis did not answer in time
        # (made locally by design, docs/gate.md)
        local = fallbacks(a) + fallbacks(b)
        statuses = []
        lock = threading.Lock()

        def one(g):
            s = g.request("GET", "/auth/me", headers={"X-API-Key": key}).status
            with lock:
                statuses.append(s)
        threads = [threading.Thread(target=one, args=(a if i % 2 else b,)) for i in range(40)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        local = fallbacks(a) + fallbacks(b) - local
        assert 18 <= statuses.count(200) <= 18 + local and len(statuses) == 40, (statuses, local)
        r = a.request("GET", "/auth/me", headers={"X-API-Key": key})
        assert r.status == 429 and r.header("ratelimit-policy") == '"key";q=20;w=3600'

        # Redis stops: each instance limits on its own, and says so
        redis.kill()
        eventually(lambda: "rate_limits" in a.request("GET", "/ready").json().get("details", {}).get("down", []),
                   what="fallback reported")
        assert a.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200  # local bucket
        m = a.request("GET", "/metrics").body.decode()
        assert "grove_rate_limit_shared 0" in m
        assert fallbacks(a) >= 1

        # and shares again when it is back (its buckets were lost with it)
        redis.start()
        for g in (a, b):
            eventually(lambda: g.request("GET", "/ready").status == 200, timeout=15, what="shared again")
        assert "grove_rate_limit_shared 1" in a.request("GET", "/metrics").body.decode()
        local = fallbacks(a) + fallbacks(b)
        ok = sum(g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200
                 for g in (a, b, a, b, a, b) * 5)
        local = fallbacks(a) + fallbacks(b) - local
        assert 20 <= ok <= 20 + local, (ok, local)

        # a Redis that hangs (stopped, not gone) does not hang requests
        import signal as sig
        redis.proc.send_signal(sig.SIGSTOP)
        try:
            start = time.time()
            r = a.request("GET", "/auth/me", headers={"X-API-Key": key}, timeout=5)
            assert r.status in (200, 429) and time.time() - start < 2, (r.status, time.time() - start)
        finally:
            redis.proc.send_signal(sig.SIGCONT)
    finally:
        stop_all(a, b, redis)


def fallbacks(g):
    """grove_rate_limit_fallbacks_total of g: decisions made locally."""
    m = g.request("GET", "/metrics").body.decode()
    return float(re.search(r"^grove_rate_limit_fallbacks_total (\S+)$", m, re.M).group(1))


def ready_state(g):
    """(status, sorted down list) of /ready; a hung answer is a failure."""
    r = g.request("GET", "/ready", timeout=5)
    return r.status, sorted(r.json().get("details", {}).get("down", []))


def test_redis_outages_recover_by_themselves():
    # grove starts before Redis, then Redis is killed, stopped, hung and
    # restarted under load: every connection comes back by itself, /ready
    # follows within deadlines, and no request waits on a dead Redis
    import signal as sig
    import subprocess
    import threading
    from grove import FAST_HASH, GROVE, free_port
    port = free_port()
    url = "redis://127.0.0.1:%d" % port
    a = b = redis = None
    stop = threading.Event()
    slow = []
    threads = []
    try:
        a = Grove("--broker", url, "--gate-refresh", "200ms", "--rate-anonymous", "0", *FAST_HASH)
        b = Grove("--broker", url, "--gate-refresh", "200ms", "--rate-anonymous", "0", *FAST_HASH,
                  *shared_store(a))
        for g in (a, b):
            assert ready_state(g) == (503, ["broker", "rate_limits"]), ready_state(g)
        redis = Redis(port)  # comes up after grove did
        for g in (a, b):
            eventually(lambda: ready_state(g) == (200, []), timeout=15, what="first connect")
        out = subprocess.run([GROVE, "key", "add", "load", "--scopes", "read", "--data-dir", a.data_dir],
                             capture_output=True, text=True, check=True)
        key = out.stdout.split()[1]
        eventually(lambda: all(g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200 for g in (a, b)),
                   what="key known")

        def load(g):
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    st = g.request("GET", "/auth/me", headers={"X-API-Key": key}, timeout=10).status
                except OSError as e:
                    st = repr(e)
                if time.monotonic() - t0 > 3 or st not in (200, 429):
                    slow.append((st, time.monotonic() - t0))
        threads = [threading.Thread(target=load, args=(g,)) for g in (a, b, a, b)]
        [t.start() for t in threads]

        def outage(how, back):
            how()
            for g in (a, b):
                eventually(lambda: ready_state(g) == (503, ["broker", "rate_limits"]), timeout=10,
                           what="down noticed after " + how.__name__)
            back()
            for g in (a, b):
                eventually(lambda: ready_state(g) == (200, []), timeout=15, what="back after " + how.__name__)
                st, body = g.get_json("/ready")
                assert body["data"]["checks"]["rate_limits"] == {"ok": True, "mode": "shared"}

        def kill():
            redis.kill()

        def term():
            redis.proc.terminate()
            redis.proc.wait()

        def hang():
            redis.proc.send_signal(sig.SIGSTOP)

        def resume():
            redis.proc.send_signal(sig.SIGCONT)

        outage(kill, redis.start)
        outage(term, redis.start)
        outage(hang, resume)
        outage(hang, resume)
        m = a.request("GET", "/metrics").body.decode()
        assert "grove_broker_up 1" in m and "grove_rate_limit_shared 1" in m
        stop.set()
        [t.join() for t in threads]
        assert not slow, slow

        # the limits are shared again: one key, one bucket across both. A
        # bucket of 10 an hour gains no token while the test runs (10/m
        # would give an 11th after 6 s on a slow machine); a decision Redis
        # did not answer in time is local by design (docs/gate.md), so
        # each counted fallback may admit one more
        subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], check=True, capture_output=True)
        a2 = Grove("--broker", url, "--rate-key", "10/h", *FAST_HASH, *shared_store(a))
        b2 = Grove("--broker", url, "--rate-key", "10/h", *FAST_HASH, *shared_store(a))
        try:
            for g in (a2, b2):
                eventually(lambda: ready_state(g) == (200, []), timeout=15, what="shared")
            ok = sum(g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200
                     for g in (a2, b2) * 10)
            local = sum(fallbacks(g) for g in (a2, b2))
            assert 10 <= ok <= 10 + local, (ok, local)
        finally:
            stop_all(a2, b2)
    finally:
        stop.set()
        [t.join() for t in threads]
        stop_all(a, b, redis)


def test_no_invalidation_is_missed_across_an_outage():
    # b holds a device in memory; Redis hangs; a deletes the device: b must
    # not go on serving it from memory, during the outage or after
    import signal as sig
    from grove import FAST_HASH, admin_headers
    redis = Redis()
    a = b = None
    try:
        a = Grove("--broker", redis.url, "--gate-refresh", "200ms", *FAST_HASH)
        b = Grove("--broker", redis.url, "--gate-refresh", "200ms", *FAST_HASH, *shared_store(a))
        for g in (a, b):
            eventually(lambda: ready_state(g) == (200, []), timeout=15, what="up")
        auth = admin_headers(a)
        eventually(lambda: b.request("GET", "/auth/me", headers=auth).status == 200, what="b knows the session")
        for rnd, (how, back) in enumerate([(sig.SIGSTOP, sig.SIGCONT), (sig.SIGKILL, None)]):
            dev = "t-%d" % rnd
            assert a.request("POST", "/api/v1/devices", body=json.dumps({"id": dev, "name": "T", "type": "truck"}).encode(),
                             headers=auth).status == 201
            for _ in range(3):  # in b's memory
                assert b.request("GET", "/api/v1/devices/" + dev, headers=auth).status == 200
            redis.proc.send_signal(how)
            if how == sig.SIGKILL:
                redis.proc.wait()
            for g in (a, b):
                eventually(lambda: ready_state(g)[0] == 503, timeout=10, what="outage noticed")
            assert a.request("DELETE", "/api/v1/devices/" + dev, headers=auth).status == 200
            assert b.request("GET", "/api/v1/devices/" + dev, headers=auth).status == 404
            if back:
                redis.proc.send_signal(back)
            else:
                redis.start()
            for g in (a, b):
                eventually(lambda: ready_state(g) == (200, []), timeout=15, what="back")
            eventually(lambda: b.request("GET", "/api/v1/devices/" + dev, headers=auth).status == 404,
                       timeout=5, what="gone on b")
            assert [b.request("GET", "/api/v1/devices/" + dev, headers=auth).status for _ in range(5)] == [404] * 5
    finally:
        stop_all(a, b, redis)


def test_rate_global_is_per_instance_with_a_broker():
    # --rate-global protects one instance: with a broker each instance
    # still takes its own quota (as --help says), not one for the cluster
    from grove import FAST_HASH
    redis = Redis()
    a = b = None
    try:
        opts = ["--broker", redis.url, "--rate-global", "10/m", "--rate-anonymous", "0"] + FAST_HASH
        a = Grove(*opts)
        b = Grove(*opts, *shared_store(a))
        for g in (a, b):
            eventually(lambda: ready_state(g) == (200, []), timeout=15, what="up")
        counts = {}
        for name, g in (("a", a), ("b", b)):
            statuses = [g.request("GET", "/api/v1/devices").status for _ in range(25)]
            counts[name] = (statuses.count(401), statuses.count(429))
        assert counts == {"a": (10, 15), "b": (10, 15)}, counts
    finally:
        stop_all(a, b, redis)


if __name__ == "__main__":
    main(globals())
