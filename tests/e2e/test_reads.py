"""Reading long series over HTTP: raw points come a page at a time
(`limit`, default --series-read-points, at most --series-read-max) with
metadata.next to pass as `from` for the next page; paging through a
series gets every point exactly once, on the embedded store (points in
chunks, set aside and in memory, rewritten late) and on PostgreSQL; the
station range route pages the same way."""

import subprocess
import urllib.parse

from grove import FAST_HASH, GROVE, Grove, Postgres, eventually, run, stop_all

SEC = 10**9
T0 = 1_800_000_000 * SEC


def start(*args):
    g = Grove("--gate-refresh", "200ms", "--series-read-points", "3000", "--series-read-max", "7000",
              *FAST_HASH, *args)
    k = subprocess.run([GROVE, "key", "add", "rw", "--scopes", "read,write", "--data-dir", g.data_dir]
                       + (list(args[args.index("--store"):args.index("--store") + 2]) if "--store" in args else []),
                       capture_output=True, text=True)
    assert k.returncode == 0, k.stderr
    key = k.stdout.split()[1]
    eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200, what="key loaded")
    return g, key


def write(g, key, lines):
    for at in range(0, len(lines), 5000):
        r = g.request("POST", "/api/v1/write", body="".join(lines[at:at + 5000]).encode(),
                      headers={"X-API-Key": key})
        assert r.status == 204, r.body


def get(g, key, path, status=200):
    r = g.request("GET", path, headers={"X-API-Key": key})
    assert r.status == status, (r.status, r.body)
    return r.json()


def page_all(g, key, path, **q):
    """Every point, page after page; checks each page's metadata."""
    out, pages = [], 0
    while True:
        body = get(g, key, path + "?" + urllib.parse.urlencode(q))
        pts, meta = body["data"]["points"], body["metadata"]
        assert meta["count"] == len(pts), meta
        assert len(pts) <= meta["limit"], meta
        out += pts
        pages += 1
        if "next" not in meta:
            assert body["data"]["truncated"] is False
            return out, pages
        assert body["data"]["truncated"] is True and len(pts) == meta["limit"], meta
        assert meta["next"] > pts[-1][0], (meta, pts[-1])
        q["from"] = meta["next"]


def series_lines(name, n, value=lambda i: i):
    return ["%s v=%s %d\n" % (name, value(i), T0 + i * SEC) for i in range(n)]


def check_paging(g, key, n, expect):
    pts, pages = page_all(g, key, "/api/v1/series/points", series="long,s=1 v")
    assert len(pts) == n, len(pts)
    assert pages == (n + 2999) // 3000, pages  # the default page: --series-read-points
    assert [p[0] for p in pts] == [T0 + i * SEC for i in range(n)]
    assert [p[1] for p in pts] == [expect(i) for i in range(n)]
    pts7, pages7 = page_all(g, key, "/api/v1/series/points", series="long,s=1 v", limit=7000)
    assert pts7 == pts and pages7 == (n + 6999) // 7000
    # a page from the middle, bounded by `to`
    body = get(g, key, "/api/v1/series/points?" + urllib.parse.urlencode(
        {"series": "long,s=1 v", "from": T0 + 1234 * SEC, "to": T0 + 1240 * SEC, "limit": 4}))
    assert [p[0] for p in body["data"]["points"]] == [T0 + i * SEC for i in range(1234, 1238)]
    assert body["metadata"]["next"] == T0 + 1238 * SEC
    # limits outside 1..--series-read-max are refused with the envelope
    for bad in ("0", "7001", "-1", "x"):
        e = get(g, key, "/api/v1/series/points?series=long%2Cs%3D1%20v&limit=" + bad, status=400)
        assert e["status"] == "error" and e["error_code"] == "INVALID_QUERY" and "7000" in e["message"], e


def test_paging_through_a_long_series_gets_every_point_once():
    g, key = start("--series-flush", "1h", "--series-flush-points", "8000")
    try:
        n = 25000
        write(g, key, series_lines("long,s=1", n))  # several flushes: chunks, then the head
        # late rewrites of every 9th point: chunks that overlap the first ones, and the head
        write(g, key, ["long,s=1 v=-%d %d\n" % (i, T0 + i * SEC) for i in range(0, n, 9)])
        check_paging(g, key, n, lambda i: -i if i % 9 == 0 else i)
        # the station range route pages its raw points the same way
        write(g, key, ["air_quality,station=pager pm25=%d %d\n" % (i % 500, T0 + i * SEC) for i in range(8000)])
        pts, pages = page_all(g, key, "/api/v1/flow/stations/pager/range", pollutant="pm25", **{
            "from": T0, "to": T0 + 8000 * SEC})
        assert [p[0] for p in pts] == [T0 + i * SEC for i in range(8000)] and pages == 3
        # aggregated ranges answer whole, from the same data
        body = get(g, key, "/api/v1/series/range?" + urllib.parse.urlencode(
            {"series": "long,s=1 v", "from": T0, "to": T0 + n * SEC, "step": "10s", "agg": "count"}))
        assert sum(p[1] for p in body["data"]["points"]) == n
    finally:
        stop_all(g)


def test_paging_on_postgresql():
    pg = Postgres()
    g = None
    try:
        g, key = start("--store", pg.url)
        n = 10000
        write(g, key, series_lines("long,s=1", n))
        write(g, key, ["long,s=1 v=-%d %d\n" % (i, T0 + i * SEC) for i in range(0, n, 9)])
        check_paging(g, key, n, lambda i: -i if i % 9 == 0 else i)
    finally:
        stop_all(g, pg)


if __name__ == "__main__":
    run([test_paging_through_a_long_series_gets_every_point_once, test_paging_on_postgresql])
