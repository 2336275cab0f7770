"""The platform's write path (docs/platform.md#telemetry): a point no app
consumes is stored and readable like any other, flow's station views
fill from the same writes, the "series" readiness check and the ingest
metrics are telemetry's, and flow's station rows written in the
background are all there after a clean stop."""

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse

from grove import FAST_HASH, GROVE, Grove, eventually, main

g = None
WRITE = READ = None


def key(grove, scopes):
    out = subprocess.run([GROVE, "key", "add", "k-" + scopes, "--scopes", scopes, "--data-dir",
                          grove.data_dir], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def start(data_dir=None):
    grove = Grove("--gate-refresh", "200ms", *FAST_HASH, data_dir=data_dir)
    w, r = key(grove, "write"), key(grove, "read")
    eventually(lambda: all(grove.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200
                           for k in (w, r)), what="keys loaded")
    return grove, w, r


def setup():
    global g, WRITE, READ
    g, WRITE, READ = start()


def get(path, grove=None, read_key=None):
    r = (grove or g).request("GET", path, headers={"X-API-Key": read_key or READ})
    assert r.status == 200, (r.status, r.body)
    return r.json()["data"]


def points(series, **q):
    q["series"] = series
    return get("/api/v1/series/points?" + urllib.parse.urlencode(q))["points"]


def test_points_no_app_consumes_are_stored_and_flow_still_fills():
    now = time.time_ns() // 10**9 * 10**9
    body = ("weather,city=lyon temp=3.5,humidity=81i %d\n"
            "air_quality,station=tel-1,region=rhone pm25=12.5,no2=20 %d\n"
            "cpu,host=web-1 usage_idle=97.5 %d\n" % (now, now, now)).encode()
    r = g.request("POST", "/api/v1/write", body=body, headers={"X-API-Key": WRITE})
    assert r.status == 204, r.body
    assert r.header("X-Grove-Late-Points") == "0" and r.header("X-Grove-Ahead-Points") == "0"
    # no app wants weather or cpu: stored, readable over the generic routes
    assert points("weather,city=lyon temp") == [[now, 3.5]]
    assert points("weather,city=lyon humidity") == [[now, 81]]
    assert points("cpu,host=web-1 usage_idle") == [[now, 97.5]]
    bucket = get("/api/v1/series/range?" + urllib.parse.urlencode(
        {"series": "weather,city=lyon temp", "from": now, "to": now + 60 * 10**9, "step": "1m"}))
    assert bucket["points"] == [[now // (60 * 10**9) * (60 * 10**9), 3.5]], bucket
    # flow consumed the station line: its views are filled, its series is the station's own
    s = get("/api/v1/flow/stations/tel-1")
    assert s["region"] == "rhone" and s["pollutants"]["pm25"]["latest"] == 12.5, s
    assert s["pollutants"]["no2"]["latest_time"] == now
    assert points("air_quality,station=tel-1 pm25") == [[now, 12.5]]
    rng = get("/api/v1/flow/stations/tel-1/range?pollutant=no2&from=%d&to=%d" % (now, now + 1))
    assert rng["station"] == "tel-1" and rng["pollutant"] == "no2"
    assert rng["series"] == "air_quality,station=tel-1 no2" and rng["points"] == [[now, 20]]


def test_json_readings_go_through_the_same_path():
    now = time.time_ns() // 10**9 * 10**9
    before = metric("grove_series_points_written_total")
    r = g.request("POST", "/api/v1/flow/readings",
                  body=json.dumps({"readings": [{"station": "tel-2", "region": "alps",
                                                 "time": now / 1e9, "pm10": 30, "co": 0.4}]}).encode(),
                  headers={"X-API-Key": WRITE, "Content-Type": "application/json"})
    assert r.status == 200, r.body
    assert r.json()["data"] == {"readings": 1, "points_written": 2, "late": 0, "ahead": 0}
    assert points("air_quality,station=tel-2 pm10") == [[now, 30]]
    assert metric("grove_series_points_written_total") == before + 2
    assert get("/api/v1/flow/stations/tel-2")["region"] == "alps"


def metric(name):
    r = g.request("GET", "/metrics")
    assert r.status == 200
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


def test_ready_checks_the_series_store_and_metrics_count_lines():
    st, body = g.get_json("/ready")
    assert st == 200 and body["data"]["checks"]["series"]["ok"] is True, body
    failed = metric("grove_ingest_lines_failed_total")
    r = g.request("POST", "/api/v1/write", body=b"bad line\nok v=1 1\n", headers={"X-API-Key": WRITE})
    assert r.status == 400 and r.json()["error_code"] == "PARTIAL_WRITE", r.body
    assert metric("grove_ingest_lines_failed_total") == failed + 1
    assert metric("grove_flow_writes_queued") >= 0
    assert metric('grove_flow_writes_dropped_total{kind="station"}') == 0


def test_stations_first_seen_are_all_saved_by_a_clean_stop():
    data = tempfile.mkdtemp(prefix="grove-e2e-tel-")
    try:
        a, w, r = start(data_dir=data)
        now = time.time_ns() // 10**9 * 10**9
        rows = [{"station": "drain-%d" % i, "region": "r%d" % (i % 7), "time": now / 1e9, "pm25": i}
                for i in range(400)]
        res = a.request("POST", "/api/v1/flow/readings", body=json.dumps({"readings": rows}).encode(),
                        headers={"X-API-Key": w, "Content-Type": "application/json"})
        assert res.status == 200, res.body
        a.stop()  # at once: the background writer drains before the store closes
        b = Grove("--gate-refresh", "200ms", *FAST_HASH, data_dir=data)
        try:
            eventually(lambda: b.request("GET", "/auth/me", headers={"X-API-Key": r}).status == 200,
                       what="keys loaded")
            got = {s["id"]: s["region"] for s in get("/api/v1/flow/stations", grove=b, read_key=r)}
            # a region given only in JSON readings lives in flow_stations alone
            # (a station missing there would come back "unassigned")
            assert all(got.get("drain-%d" % i) == "r%d" % (i % 7) for i in range(400)), got
        finally:
            b.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main(globals())
