"""Line protocol ingestion into the series store over real sockets:
Telegraf's output, precision, gzip, partial writes, scopes, and
acknowledged points surviving kill -9."""

import gzip
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse

from grove import FAST_HASH, GROVE, ROOT, Grove, eventually, run, main

g = None
WRITE = READ = None


def key(g, scopes):
    out = subprocess.run([GROVE, "key", "add", "k-" + scopes, "--scopes", scopes, "--data-dir", g.data_dir],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def setup():
    global g, WRITE, READ
    g = Grove("--gate-refresh", "200ms", *FAST_HASH)
    WRITE, READ = key(g, "write"), key(g, "read")
    eventually(lambda: all(g.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200
                           for k in (WRITE, READ)), what="keys loaded")


def write(body, query="", headers=None, grove=None):
    h = {"X-API-Key": WRITE}
    h.update(headers or {})
    return (grove or g).request("POST", "/api/v1/write" + query, body=body, headers=h)


def points(series, grove=None, **q):
    q["series"] = series
    r = (grove or g).request("GET", "/api/v1/series/points?" + urllib.parse.urlencode(q),
                             headers={"X-API-Key": READ})
    assert r.status == 200, r.body
    return r.json()["data"]["points"]


def test_telegraf_output_is_written():
    body = open(os.path.join(ROOT, "tests", "e2e", "data", "telegraf.lp"), "rb").read()
    r = write(body)
    assert r.status == 204, r.body
    t = 1763856000000000000
    assert points("cpu,cpu=cpu-total,host=edge-01 usage_idle") == [[t, 97.1928]]
    assert points("mem,host=edge-01 total") == [[t, 8203726848]]
    assert points("net,host=edge-01,interface=eth0 bytes_recv") == [[t, 91827364]]
    # tags are sorted into the key whatever order the writer used
    assert points("net,host=edge-01,interface=eth0 bytes_sent") == [[t, 1827364]]
    # a station's readings are its one series, whatever other tags they carry
    assert points("air_quality,station=st-002 pm25") == [[t, 36.1]]
    assert points("air_quality,station=st-001 so2") == [[t, 2]]
    assert points("nothing,here=1 x") == []


def test_precision_order_and_last_write_wins():
    assert write(b"m,s=a v=3 30\nm,s=a v=1 10\nm,s=a v=2 20\n", "?precision=s").status == 204
    assert write(b"m,s=a v=22 20", "?precision=s").status == 204
    assert points("m,s=a v") == [[10 * 10**9, 1], [20 * 10**9, 22], [30 * 10**9, 3]]
    assert points("m,s=a v", **{"from": 15 * 10**9, "to": 30 * 10**9}) == [[20 * 10**9, 22]]
    r = write(b"m v=1", "?precision=fortnights")
    assert r.status == 400 and r.json()["error_code"] == "INVALID_PRECISION"
    before = time.time_ns()
    assert write(b"m,s=now v=5").status == 204  # no timestamp: the server's time
    ts = points("m,s=now v")[0][0]
    assert before - 10**9 < ts < time.time_ns() + 10**9


def test_gzip_bodies():
    body = "".join("g,s=z v=%d %d\n" % (i, i) for i in range(1000)).encode()
    r = write(gzip.compress(body), headers={"Content-Encoding": "gzip"})
    assert r.status == 204, r.body
    assert len(points("g,s=z v")) == 1000
    r = write(b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert r.status == 400 and r.json()["error_code"] == "BAD_GZIP"
    r = write(b"m v=1", headers={"Content-Encoding": "br"})
    assert r.status == 415


def test_every_gzip_member_is_read_and_garbage_refused():
    # issue 9.6: concatenated members, as gzip -d and Go's gzip reader read them
    body = gzip.compress(b"multi,k=a v=1 1000\n") + gzip.compress(b"multi,k=a v=2 2000\n")
    r = write(body, headers={"Content-Encoding": "gzip"})
    assert r.status == 204, r.body
    assert points("multi,k=a v") == [[1000, 1], [2000, 2]]
    r = write(gzip.compress(b"multi,k=a v=3 3000\n") + b"garbage", headers={"Content-Encoding": "gzip"})
    assert r.status == 400 and r.json()["error_code"] == "BAD_GZIP", (r.status, r.body)
    assert points("multi,k=a v") == [[1000, 1], [2000, 2]]  # nothing of it kept
    # the JSON readings route honours Content-Encoding too
    rows = json.dumps({"readings": [{"station": "gz-1", "region": "west", "pm25": 9.5}]}).encode()
    r = g.request("POST", "/api/v1/flow/readings", body=gzip.compress(rows),
                  headers={"X-API-Key": WRITE, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status == 200, r.body
    r = g.request("POST", "/api/v1/flow/readings", body=rows,
                  headers={"X-API-Key": WRITE, "Content-Type": "application/json", "Content-Encoding": "br"})
    assert r.status == 415 and r.json()["error_code"] == "UNSUPPORTED_ENCODING", (r.status, r.body)
    assert "gzip" in r.header("accept-encoding")


def test_partial_write_keeps_good_lines_and_says_which_failed():
    body = b"p,s=1 v=1 1\np,s=1 v= 2\np,s=1 v=3 3\nbad line\np,s=1 v=\"text\" 4\n"
    r = write(body)
    assert r.status == 400, r.body
    e = r.json()
    assert e["error_code"] == "PARTIAL_WRITE"
    d = e["details"]
    assert d["lines"] == 5 and d["failed_lines"] == 3 and d["points_written"] == 2
    assert [f["line"] for f in d["failed"]] == [2, 4, 5]
    assert d["failed"][0]["error"] == "missing field value"
    assert d["failed"][2]["error"] == ('field type conflict: input field "v" on measurement "p" is type '
                                       'string, already exists as type float')
    assert points("p,s=1 v") == [[1, 1], [3, 3]]
    assert e["message"].endswith("the others were written"), e
    # when every line fails, the message does not say others were written
    r = write(b"bad line\nalso bad\n")
    assert r.status == 400 and r.json()["details"]["points_written"] == 0, r.body
    assert r.json()["message"] == "partial write: 2 of 2 lines failed; none was written", r.body


def log_emptied(folder):
    """True once series.wal is empty and series.wal.old gone. Setting the
    log aside renames series.wal to series.wal.old, then makes a fresh
    series.wal: between the two there is none (a crash there loses nothing:
    the start replays series.wal.old), so a missing log is "not yet"."""
    try:
        size = os.path.getsize(os.path.join(folder, "series.wal"))
    except FileNotFoundError:
        return False
    return size == 0 and not os.path.exists(os.path.join(folder, "series.wal.old"))


def test_points_move_into_chunks_and_stay_readable():
    g2 = Grove("--series-flush", "200ms", *FAST_HASH)
    try:
        k = key(g2, "read,write")
        eventually(lambda: g2.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                   what="key loaded")
        body = "".join("c,s=1 v=%d %d\n" % (i, i) for i in range(5000)).encode()
        assert g2.request("POST", "/api/v1/write", body=body, headers={"X-API-Key": k}).status == 204
        db = os.path.join(g2.data_dir, "series", "series.db")
        # the log is set aside (and a fresh one empty) before the chunks
        # commit: wait for the set-aside log to go, which comes after
        eventually(lambda: log_emptied(os.path.join(g2.data_dir, "series")), what="log emptied into chunks")
        out = subprocess.run(["sqlite3", db, "SELECT count(*), sum(points) FROM chunks"],
                             capture_output=True, text=True).stdout.strip()
        assert out.split("|")[1] == "5000", out
        r = g2.request("GET", "/api/v1/series/points?series=c,s%3D1%20v", headers={"X-API-Key": k})
        pts = r.json()["data"]["points"]
        assert len(pts) == 5000 and pts[1234] == [1234, 1234]
    finally:
        g2.stop()


def test_credentials_and_scopes():
    assert g.request("POST", "/api/v1/write", body=b"m v=1").status == 401
    r = g.request("POST", "/api/v1/write", body=b"m v=1", headers={"X-API-Key": READ})
    assert r.status == 403
    r = g.request("GET", "/api/v1/series/points?series=m%20v", headers={"X-API-Key": WRITE})
    assert r.status == 403
    r = g.request("GET", "/api/v1/series/points", headers={"X-API-Key": READ})
    assert r.status == 400


def test_acknowledged_points_survive_kill_9():
    g2 = Grove(*FAST_HASH)
    k = key(g2, "read,write")
    try:
        eventually(lambda: g2.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                   what="key loaded")
        acked = []
        stop = threading.Event()

        def writer(n):
            i = 0
            while not stop.is_set():
                body = "".join("crash,w=%d v=%d %d\n" % (n, i * 10 + j, i * 10 + j) for j in range(10)).encode()
                try:
                    r = g2.request("POST", "/api/v1/write", body=body, headers={"X-API-Key": k}, timeout=5)
                except OSError:
                    return
                if r.status == 204:
                    acked.append((n, i))
                i += 1
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
        [t.start() for t in threads]
        eventually(lambda: len(acked) >= 60, what="writes acknowledged")
        g2.proc.send_signal(signal.SIGKILL)
        g2.proc.wait()
        stop.set()
        [t.join() for t in threads]
        data_dir = g2.data_dir
        g3 = Grove(*FAST_HASH, data_dir=data_dir)
        try:
            for n in range(3):
                r = g3.request("GET", "/api/v1/series/points?series=" + urllib.parse.quote("crash,w=%d v" % n),
                               headers={"X-API-Key": k})
                got = {p[0] for p in r.json()["data"]["points"]}
                for (wn, i) in acked:
                    if wn == n:
                        assert all(i * 10 + j in got for j in range(10)), (n, i)
                pts = r.json()["data"]["points"]
                assert len(pts) == len(got)  # each point once
        finally:
            g3.stop()
    finally:
        import shutil
        if g2.proc.poll() is None:
            g2.proc.kill()
            g2.proc.wait()
        g2.log.close()
        shutil.rmtree(g2.tmp, ignore_errors=True)


if __name__ == "__main__":
    main(globals())
