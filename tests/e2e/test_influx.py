"""InfluxDB's write API as Telegraf and the InfluxDB client libraries use
it, with the exact requests they send: Telegraf's [[outputs.influxdb]]
(1.x: POST /write?db=…, Basic auth, gzip) and [[outputs.influxdb_v2]]
(POST /api/v2/write?org=…&bucket=…, Authorization: Token, gzip), the
Python influxdb-client (2.x: precision, Token, ping) and the 1.x client
(u/p in the query, Basic); errors in the shape those clients read."""

import base64
import gzip
import json
import os
import subprocess
import urllib.parse

from grove import FAST_HASH, GROVE, ROOT, Grove, eventually, main

g = None
WRITE = READ = None
T = 1763856000000000000


def key(g, scopes):
    out = subprocess.run([GROVE, "key", "add", "k-" + scopes, "--scopes", scopes, "--data-dir", g.data_dir],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def setup():
    global g, WRITE, READ
    g = Grove("--gate-refresh", "200ms", "--rate-key", "0", "--rate-global", "0", *FAST_HASH)
    WRITE, READ = key(g, "write"), key(g, "read")
    eventually(lambda: all(g.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200
                           for k in (WRITE, READ)), what="keys loaded")


def points(series):
    r = g.request("GET", "/api/v1/series/points?" + urllib.parse.urlencode({"series": series}),
                  headers={"X-API-Key": READ})
    assert r.status == 200, r.body
    return r.json()["data"]["points"]


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def influx_version(r):
    assert r.header("X-Influxdb-Version") == "1.8.10", r.headers
    assert r.header("X-Influxdb-Build") == "OSS"


def test_ping_as_clients_call_it_first():
    r = g.request("GET", "/ping", headers={"User-Agent": "influxdb-client-python/1.40.0"})
    assert r.status == 204 and r.body == b""
    influx_version(r)
    r = g.request("HEAD", "/ping")
    assert r.status == 204
    influx_version(r)
    r = g.request("GET", "/ping?verbose=true")
    assert r.status == 200 and r.json() == {"version": "1.8.10"}


def test_telegraf_influxdb_output():
    """[[outputs.influxdb]] urls = ["http://grove:8080"], database = "telegraf",
    username/password, content_encoding = "gzip" (its default)."""
    body = open(os.path.join(ROOT, "tests", "e2e", "data", "telegraf.lp"), "rb").read()
    r = g.request("POST", "/write?db=telegraf", body=gzip.compress(body), headers={
        "User-Agent": "Telegraf/1.28.5 Go/1.21.4",
        "Authorization": basic("telegraf", WRITE),
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Encoding": "gzip",
        "Accept-Encoding": "gzip"})
    assert r.status == 204, r.body
    influx_version(r)
    assert points("cpu,cpu=cpu-total,host=edge-01 usage_idle") == [[T, 97.1928]]
    assert points("net,host=edge-01,interface=eth0 bytes_recv") == [[T, 91827364]]
    # with a retention policy and without gzip
    r = g.request("POST", "/write?db=telegraf&rp=autogen", body=b"t1,host=a v=1 %d" % T,
                  headers={"Authorization": basic("telegraf", WRITE),
                           "Content-Type": "text/plain; charset=utf-8"})
    assert r.status == 204, r.body
    assert points("t1,host=a v") == [[T, 1]]


def test_telegraf_influxdb_v2_output():
    """[[outputs.influxdb_v2]] urls = ["http://grove:8080"], token, organization,
    bucket, content_encoding = "gzip"."""
    body = b"t2,host=edge-01 load1=0.42,procs=312i %d\n" % T
    r = g.request("POST", "/api/v2/write?bucket=telegraf&org=air", body=gzip.compress(body), headers={
        "User-Agent": "Telegraf/1.28.5 Go/1.21.4",
        "Authorization": "Token " + WRITE,
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Encoding": "gzip"})
    assert r.status == 204, r.body
    influx_version(r)
    assert points("t2,host=edge-01 load1") == [[T, 0.42]]
    assert points("t2,host=edge-01 procs") == [[T, 312]]


def test_python_influxdb_client():
    """influxdb_client.InfluxDBClient(url, token, org).write_api(SYNCHRONOUS)
    .write(bucket, record=…, write_precision=WritePrecision.S)."""
    for precision, ts in (("s", T // 10**9), ("ms", T // 10**6), ("us", T // 10**3), ("ns", T)):
        r = g.request("POST", "/api/v2/write?org=air&bucket=city&precision=" + precision,
                      body=b"py,src=%s v=1.5 %d" % (precision.encode(), ts),
                      headers={"Authorization": "Token " + WRITE,
                               "Content-Type": "text/plain",
                               "Accept": "application/json",
                               "User-Agent": "influxdb-client-python/1.40.0"})
        assert r.status == 204, (precision, r.body)
        assert points("py,src=%s v" % precision) == [[T, 1.5]]
    # enable_gzip=True; orgID instead of org; InfluxDB 1.8's "user:password" token
    r = g.request("POST", "/api/v2/write?orgID=0123456789abcdef&bucket=city",
                  body=gzip.compress(b"py,src=gz v=2 %d" % T),
                  headers={"Authorization": "Token telegraf:" + WRITE,
                           "Content-Encoding": "gzip", "Content-Type": "text/plain"})
    assert r.status == 204, r.body
    assert points("py,src=gz v") == [[T, 2]]


def test_python_influxdb_1x_client():
    """influxdb.InfluxDBClient(username=…, password=KEY).write_points(…, time_precision="s"):
    Basic auth; and the u/p query form of curl examples."""
    r = g.request("POST", "/write?db=air&precision=s", body=b"v1,src=basic v=3 %d" % (T // 10**9),
                  headers={"Authorization": basic("grove", WRITE),
                           "Content-Type": "application/octet-stream", "Accept": "text/plain"})
    assert r.status == 204, r.body
    assert points("v1,src=basic v") == [[T, 3]]
    q = urllib.parse.urlencode({"db": "air", "u": "grove", "p": WRITE, "precision": "ms"})
    r = g.request("POST", "/write?" + q, body=b"v1,src=query v=4 %d" % (T // 10**6))
    assert r.status == 204, r.body
    assert points("v1,src=query v") == [[T, 4]]
    r = g.request("POST", "/write?db=air&precision=u", body=b"v1,src=token v=5 %d" % (T // 10**3),
                  headers={"Authorization": "Token " + WRITE})
    assert r.status == 204, r.body
    assert points("v1,src=token v") == [[T, 5]]
    # write_points(…, time_precision="m" or "h"): minutes and hours since the epoch
    for precision, unit in (("m", 60 * 10**9), ("h", 3600 * 10**9)):
        ts = T // unit
        r = g.request("POST", "/write?db=air&precision=" + precision,
                      body=b"v1,src=%s v=6 %d" % (precision.encode(), ts),
                      headers={"Authorization": basic("grove", WRITE)})
        assert r.status == 204, (precision, r.body)
        assert points("v1,src=%s v" % precision) == [[ts * unit, 6]]
    r = g.request("POST", "/write?db=air&precision=h", body=b"v1,src=far v=7 2562048",  # past 2262 in hours
                  headers={"Authorization": basic("grove", WRITE)})
    assert r.status == 400 and "timestamp out of range at precision h" in r.json()["error"], r.body


def test_credentials_refused_as_influxdb_refuses_them():
    cases = [
        ("/write?db=x", {}, 401, "unauthorized"),
        ("/write?db=x", {"Authorization": basic("telegraf", "wrong")}, 401, "unauthorized"),
        ("/write?db=x&u=a&p=grv_nope", {}, 401, "unauthorized"),
        ("/api/v2/write?org=o&bucket=b", {"Authorization": "Token grv_nope"}, 401, "unauthorized"),
        ("/api/v2/write?org=o&bucket=b", {"Authorization": "Token " + READ}, 403, "forbidden"),
        ("/write?db=x", {"Authorization": basic("u", READ)}, 403, "forbidden"),
    ]
    for path, headers, status, code in cases:
        r = g.request("POST", path, body=b"m v=1", headers=headers)
        assert r.status == status, (path, headers, r.status, r.body)
        influx_version(r)
        e = r.json()
        assert e["code"] == code and e["error"] and e["message"] and e["status"] == "error", e
    # the password travels in the URL only on InfluxDB 1.x's routes
    r = g.request("POST", "/api/v1/write?" + urllib.parse.urlencode({"u": "a", "p": WRITE}), body=b"m v=1")
    assert r.status == 401


def test_errors_in_the_shape_clients_read():
    h = {"Authorization": "Token " + WRITE}
    # Telegraf 1.x drops a batch on a 4xx and logs "error"; "partial write" is what it looks for
    r = g.request("POST", "/write?db=x", body=b"pw v=1 1\npw v= 2\npw v=3 3\n", headers=h)
    assert r.status == 400
    e = r.json()
    assert e["error"].startswith("partial write: unable to parse 'pw v= 2': missing field value")
    assert e["error"].endswith("dropped=1")
    assert e["code"] == "invalid" and e["error_code"] == "PARTIAL_WRITE"
    assert e["details"]["failed"][0]["line"] == 2 and e["details"]["points_written"] == 2
    assert r.header("X-Influxdb-Error") == e["error"]
    assert points("pw v") == [[1, 1], [3, 3]]
    # the InfluxDB message, cut to fit, is still valid UTF-8 (and the answer JSON)
    for pad in range(2):  # every byte offset a cut can fall at
        for n in range(20, 61):
            name = ("a" * pad + "\u00e9" * n).encode()
            meas = b"ft9%d%d" % (pad, n)
            assert g.request("POST", "/write?db=x", body=b"%s %s=1 1" % (meas, name), headers=h).status == 204
            r = g.request("POST", "/write?db=x", body=b"%s %s=1i 2" % (meas, name), headers=h)
            assert r.status == 400
            e = json.loads(r.body.decode("utf-8"))
            assert e["error"].startswith("partial write: unable to parse '%s " % meas.decode()), e
            assert e["error"].endswith("dropped=1") and r.header("X-Influxdb-Error")
            assert e["code"] == "invalid" and e["details"]["failed"][0]["line"] == 1
    # influxdb-client reads code and message
    r = g.request("POST", "/api/v2/write?org=o&bucket=b", body=b"ok\xff v=1", headers=h)
    assert r.status == 400
    e = json.loads(r.body.decode("utf-8"))
    assert e["code"] == "invalid" and "invalid UTF-8 in the measurement" in e["error"]
    for path, code, msg in (("/write", "invalid", "database is required"),
                            ("/api/v2/write?org=o", "invalid", "bucket is required"),
                            ("/api/v2/write?bucket=b", "invalid", "organization is required"),
                            ("/write?db=x&precision=fortnight", "invalid", "invalid precision: n, u, ms, s, m or h"),
                            ("/api/v2/write?org=o&bucket=b&precision=h", "invalid", "invalid precision")):
        r = g.request("POST", path, body=b"m v=1", headers=h)
        assert r.status == 400, (path, r.body)
        e = r.json()
        assert e["code"] == code and e["error"].startswith(msg), (path, e)
    r = g.request("POST", "/api/v2/write?org=o&bucket=b", body=b"not gzip",
                  headers=dict(h, **{"Content-Encoding": "gzip"}))
    assert r.status == 400 and r.json()["code"] == "invalid" and r.json()["error_code"] == "BAD_GZIP"
    r = g.request("POST", "/api/v2/write?org=o&bucket=b", body=b"m v=1",
                  headers=dict(h, **{"Content-Encoding": "br"}))
    assert r.status == 415 and r.json()["code"] == "unsupported media type"


if __name__ == "__main__":
    main(globals())
