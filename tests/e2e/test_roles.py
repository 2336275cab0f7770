"""grove serve --role: one binary running only part of Grove. An `api`
and a `worker` instance on one PostgreSQL and one Redis each do their
part (the api answers writes, the worker drops what is past retention),
/ready and /metrics say which roles run, and combinations that cannot
work are refused at start with a clear error."""

import re
import subprocess
import time

from grove import GROVE, Grove, Postgres, Redis, eventually, main, stop_all

DAY = 86400 * 10**9


def serve_fails(*args):
    """Starts grove serve with args; returns its exit status and stderr."""
    p = subprocess.run([GROVE, "serve", "--listen", "127.0.0.1:0", "--web-root", ""] + list(args),
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


def ready(g):
    st, body = g.get_json("/ready")
    return body if st == 200 else None


def role_gauges(g):
    text = g.request("GET", "/metrics").body.decode()
    return {m.group(1): m.group(2) for m in re.finditer(r'^grove_role\{role="(\w+)"\} (\d)', text, re.M)}


def test_all_roles_by_default():
    g = Grove()
    try:
        st, body = g.get_json("/ready")
        assert st == 200, body
        assert body["data"]["roles"] == ["api", "worker", "stream"]
        assert role_gauges(g) == {"api": "1", "worker": "1", "stream": "1"}
        assert "role=all" in g.output()
    finally:
        g.stop()


def test_combinations_that_cannot_work_are_refused():
    rc, err = serve_fails("--role", "stream")
    assert rc == 2 and "runs stream without api" in err, err
    rc, err = serve_fails("--role", "api")  # the embedded store
    assert rc == 2 and "embedded store" in err and "postgres://" in err, err
    rc, err = serve_fails("--role", "worker")
    assert rc == 2 and "embedded store" in err, err
    rc, err = serve_fails("--role", "api,cook")
    assert rc == 2 and "unknown role 'cook'" in err, err
    rc, err = serve_fails("--role", "api", "--store", "postgres://127.0.0.1:1/none")
    assert rc == 2 and "without --broker" in err, err


def test_api_and_worker_instances_share_postgres_and_redis():
    pg = Postgres()
    redis = Redis()
    api = worker = None
    try:
        common = ["--store", pg.url, "--broker", redis.url]
        # the api keeps raw points for ever; the worker's retention is a day,
        # so only the worker can drop the points below
        api = Grove("--role", "api", *common)
        # ready once its Redis connections are up
        body = eventually(lambda: ready(api), what="the api ready")
        assert body["data"]["roles"] == ["api"], body
        assert role_gauges(api) == {"api": "1", "worker": "0", "stream": "0"}

        key = subprocess.run([GROVE, "key", "add", "w", "--scopes", "read,write", "--store", pg.url],
                             capture_output=True, text=True, timeout=30)
        assert key.returncode == 0, key.stderr
        key = key.stdout.split()[1]
        hdr = {"X-API-Key": key}
        eventually(lambda: api.request("GET", "/auth/me", headers=hdr).status == 200,
                   what="key seen by the api")
        # the api answers writes; the worker serves no app routes
        old = (time.time_ns() // DAY - 3) * DAY  # three days ago
        lines = b"".join(b"roles,s=%d v=%d %d\n" % (i % 4, i, old + i * 10**9) for i in range(40))
        r = api.request("POST", "/api/v1/write", headers=hdr, body=lines)
        assert r.status == 204, r.body
        assert pg.psql("SELECT count(*) FROM series_points") == "40"
        # the worker comes once they are stored (its first flush drops them)
        worker = Grove("--role", "worker", "--series-retention", "1d", "--series-flush", "1s",
                       *common)
        body = eventually(lambda: ready(worker), what="the worker ready")
        assert body["data"]["roles"] == ["worker"], body
        assert role_gauges(worker) == {"api": "0", "worker": "1", "stream": "0"}
        assert worker.request("POST", "/api/v1/write", headers=hdr, body=lines).status == 404
        assert worker.request("GET", "/api/v1/live/sse?topic=demo").status == 404
        assert worker.get_json("/health")[0] == 200
        # the worker's periodic work: retention drops the day past it
        eventually(lambda: pg.psql("SELECT count(*) FROM series_points") == "0", timeout=30,
                   what="the worker dropping points past retention")
        assert api.request("POST", "/api/v1/write", headers=hdr,
                           body=b"roles,s=9 v=1 %d\n" % time.time_ns()).status == 204
        assert pg.psql("SELECT count(*) FROM series_points") == "1"
    finally:
        stop_all(api, worker, redis, pg)


if __name__ == "__main__":
    main(globals())
