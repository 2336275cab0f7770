"""flow's live side over real sockets: JSON readings, stations on first
sight and ahead of time, rolling AQI per station and region, alerts with
hysteresis (stored, listed, pushed live), the 1-per-second live topics,
range queries with step and aggregate, late readings, and a restart."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

from grove import (FAST_HASH, GROVE, EventStream, Grove, Postgres, Redis, WebSocket, eventually, main,
                   stop_all)

g = None
WRITE = READ = None
MIN = 60 * 10**9
# event time moves forward from test to test: the windows' watermark is shared;
# it starts three days back, as the server leaves readings ahead of its clock
# (--flow-max-ahead) out of the windows
CLOCK = [(time.time_ns() - 3 * 86400 * 10**9) // (5 * MIN) * (5 * MIN)]


def minutes(n):
    """A fresh, 5-minute-aligned base time, n minutes from the last one."""
    CLOCK[0] = (CLOCK[0] + (n + 10) * MIN) // (5 * MIN) * (5 * MIN)
    return CLOCK[0]


def key(grove, scopes, *store):
    out = subprocess.run([GROVE, "key", "add", "k-" + scopes, "--scopes", scopes, "--data-dir", grove.data_dir,
                          *store], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def start(*args, data_dir=None):
    grove = Grove("--gate-refresh", "200ms", "--flow-window", "1m", "--flow-slide", "1m",
                  "--flow-lateness", "0s", "--flow-partitions", "2", *FAST_HASH, *args, data_dir=data_dir)
    store = args[args.index("--store"):args.index("--store") + 2] if "--store" in args else []
    w, r = key(grove, "write", *store), key(grove, "read", *store)
    eventually(lambda: grove.request("GET", "/auth/me", headers={"X-API-Key": r}).status == 200,
               what="keys loaded")
    return grove, w, r


def setup():
    global g, WRITE, READ
    g, WRITE, READ = start()


def readings(rows, grove=None, write_key=None):
    return (grove or g).request("POST", "/api/v1/flow/readings", body=json.dumps({"readings": rows}).encode(),
                                headers={"X-API-Key": write_key or WRITE, "Content-Type": "application/json"})


def get(path, grove=None, read_key=None, status=200):
    r = (grove or g).request("GET", path, headers={"X-API-Key": read_key or READ})
    assert r.status == status, (r.status, r.body)
    return r.json()["data"] if status == 200 else r.json()


def pm25_aqi(c):
    """EPA 2024 PM2.5 index (truncate to 0.1, interpolate, round half up)."""
    c = int(c * 10 + 1e-9) / 10
    table = [(0.0, 9.0, 0, 50), (9.1, 35.4, 51, 100), (35.5, 55.4, 101, 150),
             (55.5, 125.4, 151, 200), (125.5, 225.4, 201, 300), (225.5, 325.4, 301, 500)]
    for lo, hi, ilo, ihi in table:
        if lo <= c <= hi:
            return int((ihi - ilo) / (hi - lo) * (c - lo) + ilo + 0.5)
    return 500


def station(sid):
    return get("/api/v1/flow/stations/" + sid)


def test_readings_register_stations_on_first_sight():
    t = minutes(2)
    r = readings([{"station": "first-1", "region": "west", "time": t / 1e9, "pm25": 12.5, "no2": 20}])
    assert r.status == 200, r.body
    assert r.json()["data"] == {"readings": 1, "points_written": 2, "late": 0, "ahead": 0}
    s = station("first-1")
    assert s["region"] == "west" and s["name"] == "first-1"
    assert s["pollutants"]["pm25"]["latest"] == 12.5
    assert s["pollutants"]["no2"]["latest_time"] == t
    assert s["aqi"] is None  # no window has closed yet
    assert any(x["name"] == "west" for x in get("/api/v1/flow/regions"))
    # the points are in the series store under a canonical key
    pts = get("/api/v1/series/points?" + urllib.parse.urlencode({"series": "air_quality,station=first-1 pm25"}))
    assert pts["points"] == [[t, 12.5]]


def test_rolling_aqi_per_station_and_region():
    t = minutes(3)
    rows = []
    for i in range(6):  # two stations, six readings each in one minute
        rows.append({"station": "east-a", "region": "east", "time": (t + i * 10**10) / 1e9, "pm25": 20})
        rows.append({"station": "east-b", "region": "east", "time": (t + i * 10**10) / 1e9, "pm25": 40})
    assert readings(rows).status == 200
    # a reading in the next minute closes the window
    close = (t + MIN) / 1e9
    assert readings([{"station": "east-a", "time": close, "pm25": 1},
                     {"station": "east-b", "time": close, "pm25": 1}]).status == 200
    a, b = station("east-a"), station("east-b")
    assert a["aqi"] == pm25_aqi(20) == 71 and a["category"] == "Moderate", a
    assert b["aqi"] == pm25_aqi(40) == 112 and b["category"] == "Unhealthy for Sensitive Groups", b
    assert b["color"] == "#FF7E00" and b["dominant"] == "pm25"
    assert a["window"] == {"start": t, "end": t + MIN}
    assert a["pollutants"]["pm25"]["mean"] == 20 and a["pollutants"]["pm25"]["count"] == 6
    region = get("/api/v1/flow/regions/east")
    assert region["aqi"] == pm25_aqi(30) and region["stations"] == 2, region
    snap = get("/api/v1/flow/snapshot")
    assert {"east-a", "east-b"} <= {s["id"] for s in snap["stations"]}
    assert "east" in {r["name"] for r in snap["regions"]}


def ask(question, status=200):
    r = g.request("POST", "/api/v1/flow/ask", body=json.dumps({"question": question}).encode(),
                  headers={"X-API-Key": READ, "Content-Type": "application/json"})
    assert r.status == status, r.body
    return r.json()["data"] if status == 200 else r.json()


def test_ask_answers_from_the_snapshot():
    a = ask("Is it safe to go running in East today?")
    assert a["grounded"] is True and a["model"] is None
    assert "Region east: AQI %d, Moderate" % pm25_aqi(30) in a["answer"], a
    assert "Unusually sensitive people" in a["answer"]  # the EPA's advice for Moderate
    assert a["sources"][0] == {"kind": "region", "name": "east", "aqi": pm25_aqi(30), "category": "Moderate",
                               "window": get("/api/v1/flow/regions/east")["window"]}
    a = ask("what's the pm2.5 at east-a?")
    assert "Station east-a: AQI 71" in a["answer"] and "PM2.5 20.0 µg/m³" in a["answer"], a
    a = ask("how is ozone at east-b")
    assert "ozone is not measured there" in a["answer"], a
    # no place named: the city, worst first, from the same numbers the snapshot has
    a = ask("Where is the air worst right now?")
    snap = get("/api/v1/flow/snapshot")
    worst_region = max((r for r in snap["regions"] if r["aqi"] is not None), key=lambda r: r["aqi"])
    assert a["sources"][0]["name"] == worst_region["name"], (a, worst_region)
    worst_station = max((s for s in snap["stations"] if s["aqi"] is not None), key=lambda s: s["aqi"])
    assert "The highest single station is %s at AQI %d" % (worst_station["name"], worst_station["aqi"]) in a["answer"], a
    assert ask("", status=400)["error_code"] == "INVALID_QUESTION"
    assert ask("x" * 1001, status=400)["error_code"] == "INVALID_QUESTION"


def test_alerts_have_hysteresis_and_go_live():
    ws = WebSocket(g, "/api/v1/live?topic=flow/alerts", headers={"X-API-Key": READ})
    assert ws.recv_json()["type"] == "subscribed"
    t = minutes(7)
    # means by minute: 9.0 Good, 9.1 Moderate (alert), 8.9 and 9.2 hover at
    # the boundary (no alert), 5.0 clearly Good (alert); the sixth closes it
    for i, v in enumerate([9.0, 9.1, 8.9, 9.2, 5.0, 5.0]):
        r = readings([{"station": "hover", "region": "hills", "time": (t + i * MIN + 10**9) / 1e9, "pm25": v}])
        assert r.status == 200, r.body
    alerts = get("/api/v1/flow/alerts?subject=hover")
    assert [(a["from"], a["to"]) for a in alerts] == [("Moderate", "Good"), ("Good", "Moderate")], alerts
    assert alerts[1]["aqi"] == 51 and alerts[0]["aqi"] == 28 and alerts[0]["kind"] == "station"
    assert alerts[0]["region"] == "hills" and alerts[0]["dominant"] == "pm25"
    assert alerts[1]["window_end"] == t + 2 * MIN
    assert len(get("/api/v1/flow/alerts?kind=region&subject=hills")) == 2
    assert get("/api/v1/flow/alerts?kind=station&region=hills&limit=1")[0]["to"] == "Good"
    pushed = []
    while len(pushed) < 4:  # earlier tests' windows close too as event time moves on
        m = ws.recv_json(timeout=5)["data"]
        if m["subject"] in ("hover", "hills"):
            pushed.append(m)
    assert sorted((p["kind"], p["to"]) for p in pushed) == [
        ("region", "Good"), ("region", "Moderate"), ("station", "Good"), ("station", "Moderate")], pushed
    ws.close()
    assert get("/api/v1/flow/alerts?kind=nope", status=400)["error_code"] == "INVALID_QUERY"
    assert get("/api/v1/flow/alerts?limit=0", status=400)["error_code"] == "INVALID_QUERY"


def test_live_topic_at_most_once_a_second_and_ends_current():
    ws = WebSocket(g, "/api/v1/live?topic=flow/stations/busy", headers={"X-API-Key": READ})
    assert ws.recv_json()["type"] == "subscribed"
    got = []

    def listen():  # stamps each update as it arrives, until the last reading is in one
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                m = ws.recv_json(timeout=max(0.05, deadline - time.time()))
            except Exception:  # noqa: BLE001 - no more messages
                return
            got.append((time.time(), m["data"]))
            if m["data"]["readings"] == 12:
                return

    listener = threading.Thread(target=listen)
    listener.start()
    t = minutes(1)
    began = time.time()
    for i in range(12):
        assert readings([{"station": "busy", "time": (t + i * 10**9) / 1e9, "pm25": i}]).status == 200
        time.sleep(0.1)
    listener.join()
    ws.close()
    seen = [(round(at, 2), d["readings"]) for at, d in got]
    # at most one update a second over however long the writes and the
    # deliveries took (a busy machine stretches both; arrival gaps shrink
    # when a late reader takes two at once, so they are not what is counted)
    assert 2 <= len(got) <= 2 + int(got[-1][0] - began), seen
    # the last update carries the last reading, though it came inside a second
    assert got[-1][1]["readings"] == 12 and got[-1][1]["pollutants"]["pm25"]["latest"] == 11, seen


def test_range_with_step_and_aggregate():
    t = minutes(10)
    assert readings([{"station": "ranged", "time": (t + i * MIN) / 1e9, "pm25": i + 1} for i in range(10)]).status == 200
    q = "/api/v1/flow/stations/ranged/range?pollutant=pm25&from=%d&to=%d" % (t, t + 10 * MIN)
    r = get(q + "&step=5m")
    assert r["points"] == [[t, 3], [t + 5 * MIN, 8]] and r["agg"] == "mean", r
    assert r["series"] == "air_quality,station=ranged pm25" and r["step_ns"] == 5 * MIN
    assert r["source"] == "1m"  # whole minutes: from the rollups (and the points not in them yet)
    assert get(q + "&step=30s")["source"] == "raw"
    assert [v for _, v in get(q + "&step=5m&agg=max")["points"]] == [5, 10]
    assert [v for _, v in get(q + "&step=5m&agg=count")["points"]] == [5, 5]
    assert len(get(q + "&step=1m&agg=last")["points"]) == 10
    assert get(q)["points"][0] == [t, 1]  # no step: raw points
    # the same through the general series route, times as RFC 3339
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t // 10**9))
    r = get("/api/v1/series/range?" + urllib.parse.urlencode(
        {"series": "air_quality,station=ranged pm25", "from": frm, "to": t + 10 * MIN, "step": "5m", "agg": "sum"}))
    assert r["points"] == [[t, 15], [t + 5 * MIN, 40]], r
    for bad in [q + "&step=0s", q + "&step=soon", q + "&agg=median",
                "/api/v1/flow/stations/ranged/range?from=yesterday", "/api/v1/flow/stations/ranged/range?to=1&from=2"]:
        assert get(bad, status=400)["error_code"] == "INVALID_QUERY", bad
    assert get(q + "&step=1ms", status=400)["error_code"] == "TOO_MANY_BUCKETS"
    assert get(q.replace("pm25", "ozone-ish") + "&step=1m", status=400)["error_code"] == "INVALID_QUERY"
    assert get("/api/v1/flow/stations/nobody/range", status=404)["error_code"] == "NOT_FOUND"
    # a pollutant the station never measured: empty, not an error
    assert get(q.replace("pm25", "co"))["points"] == []


def test_partial_readings_keep_the_good_ones():
    t = minutes(1)
    r = readings([{"station": "ok-1", "time": t / 1e9, "pm10": 30},
                  {"station": "bad station", "pm25": 1},
                  {"station": "ok-2", "time": "yesterday", "pm25": 1},
                  {"station": "ok-3", "pm25": "high"},
                  {"station": "ok-4", "temperature": 20},
                  "not an object",
                  {"station": "ok-5", "time": "2026-11-23T10:00:00.5+01:00", "so2": 3}])
    assert r.status == 400, r.body
    e = r.json()
    assert e["error_code"] == "PARTIAL_WRITE"
    assert e["details"]["readings"] == 7 and e["details"]["failed_readings"] == 5
    assert [f["index"] for f in e["details"]["failed"]] == [1, 2, 3, 4, 5]
    assert e["details"]["points_written"] == 2
    assert station("ok-1")["pollutants"]["pm10"]["latest"] == 30
    assert station("ok-5")["pollutants"]["so2"]["latest_time"] == 1795424400500000000
    r = readings([{"station": "bad station", "pm25": 1}, "not an object"])
    assert r.status == 400 and r.json()["details"]["points_written"] == 0, r.body
    assert r.json()["message"] == "partial write: 2 of 2 readings failed; none was written", r.body
    for body, code in [(b"{", "INVALID_JSON"), (b"[]", "INVALID_JSON"), (b'{"readings": 3}', "INVALID_JSON")]:
        r = g.request("POST", "/api/v1/flow/readings", body=body,
                      headers={"X-API-Key": WRITE, "Content-Type": "application/json"})
        assert r.status == 400 and r.json()["error_code"] == code, r.body
    r = g.request("POST", "/api/v1/flow/readings", body=b"{}", headers={"X-API-Key": READ})
    assert r.status == 403, r.body
    r = g.request("POST", "/api/v1/flow/readings", body=b"x", headers={"X-API-Key": WRITE, "Content-Type": "text/csv"})
    assert r.status == 415, r.body


def test_line_protocol_feeds_the_windows_too():
    t = minutes(2)
    body = "air,station=lp-1,region=docks pm25=50 %d\nair,station=lp-1,region=docks pm25=50 %d\n" % (t, t + MIN)
    r = g.request("POST", "/api/v1/write", body=body.encode(), headers={"X-API-Key": WRITE})
    assert r.status == 204, r.body
    s = station("lp-1")
    assert s["region"] == "docks" and s["aqi"] == pm25_aqi(50), s
    r = get("/api/v1/flow/stations/lp-1/range?pollutant=pm25&from=%d&to=%d" % (t, t + 2 * MIN))
    # the station's one series, whatever the measurement and other tags (docs/flow.md)
    assert r["series"] == "air_quality,station=lp-1 pm25" and len(r["points"]) == 2


def test_simulated_city_with_faults():
    t = minutes(0)
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t // 10**9 + 60))
    out = subprocess.run([GROVE, "flow", "simulate", "--url", "http://127.0.0.1:%d" % g.port, "--key", WRITE,
                          "--stations", "24", "--regions", "3", "--ticks", "60", "--duration", "0",
                          "--start", start, "--batch", "100", "--seed", "7"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = dict(kv.split("=") for kv in out.stdout.split())
    assert int(got["http_errors"]) == 0 and int(got["lines_failed"]) > 0, got  # malformed lines refused
    assert int(got["points"]) > 24 * 60 * 6 * 0.9, got
    snap = get("/api/v1/flow/snapshot")
    sim = [s for s in snap["stations"] if s["id"].startswith("st-00")]
    assert len(sim) == 24 and {s["region"] for s in sim} == {"r00", "r01", "r02"}
    assert all(s["aqi"] is not None for s in sim)  # ten minutes of readings: windows closed
    CLOCK[0] += 20 * MIN  # past the city's event time
    # the same seed writes the same city, another seed another
    a, b, c = (subprocess.run([GROVE, "flow", "simulate", "--print", "--stations", "5", "--ticks", "20",
                               "--start", start, "--seed", seed], capture_output=True, timeout=30).stdout
               for seed in ("3", "3", "4"))
    assert a == b and a != c and a.count(b"\n") >= 95
    bad = subprocess.run([GROVE, "flow", "simulate", "--stations", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--stations" in bad.stderr


class Topics:
    """Last event per topic, read from a WebSocket and an SSE stream at once."""

    def __init__(self, grove, read_key, topics):
        self.last = {"ws": {}, "sse": {}}
        self.alerts = {}
        self.ws = WebSocket(grove, headers={"X-API-Key": read_key})
        for t in topics:
            self.ws.send({"op": "subscribe", "topic": t})
            assert self.ws.recv_json() == {"type": "subscribed", "topic": t}
        self.sse = EventStream(grove, "&".join("topic=" + t for t in topics), headers={"X-API-Key": read_key})
        assert self.sse.response.status == 200

    def drain(self, quiet=0.3):
        """Reads what has arrived (until each stream is quiet a moment)."""
        for name, read in (("ws", lambda: self.ws.recv_json(timeout=quiet)),
                           ("sse", lambda: self.sse.next_event(timeout=quiet)["data"])):
            while True:
                try:
                    m = read()
                except (socket.timeout, TimeoutError):
                    break
                if m.get("type") != "message":
                    continue
                self.last[name][m["topic"]] = m["data"]
                if m["topic"] == "flow/alerts" and name == "ws":
                    self.alerts[m["data"]["id"]] = m["data"]

    def close(self):
        self.ws.close()
        self.sse.close()


def test_live_topics_end_where_the_api_does_across_a_simulated_run():
    """A simulated city (with its faults) against a server of short windows,
    then half of it goes quiet while the other half goes on: the quiet
    stations' last windows are closed by the others' readings, not by
    their own. Each time, every station's and region's topic ends with what
    the API answers, over WebSocket and SSE alike, and flow/alerts carried
    exactly the alerts the API lists."""
    # lateness far longer than a run and the wait after it: windows close by
    # readings, not by the idle clock. A watermark is a partition's: with one
    # partition every quiet station shares it with the stations still
    # reporting (with more, which keys share one is the hash's choice)
    grove, w, r = start("--flow-window", "10s", "--flow-slide", "5s", "--flow-lateness", "120s",
                        "--flow-partitions", "1")
    topics = ["flow/stations/st-%04d" % i for i in range(8)] + ["flow/regions/r%02d" % i for i in range(2)]
    live = Topics(grove, r, topics + ["flow/alerts"])
    # the city's air follows the hour of the day (ozone peaks in the
    # afternoon sun): yesterday at 14:00 UTC every run, so the same city, the
    # same category changes and alerts whenever the test runs (with event
    # times 20 minutes back it raised none in some hours of the day)
    t0 = (int(time.time()) // 86400 - 1) * 86400 + 14 * 3600

    def simulate(stations, start_s):
        out = subprocess.run([GROVE, "flow", "simulate", "--url", "http://127.0.0.1:%d" % grove.port, "--key", w,
                              "--stations", str(stations), "--regions", "2", "--interval", "2s", "--ticks", "150",
                              "--duration", "0", "--connections", "1", "--start",
                              time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_s)),
                              "--batch", "40", "--seed", "11"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr

    def api(topic):
        kind, name = topic.split("/")[1:]
        return get("/api/v1/flow/%s/%s" % (kind, name), grove=grove, read_key=r)

    def agree():
        live.drain()
        want = {t: api(t) for t in topics}
        if any(want[t]["window"] is None for t in topics):
            return False
        bad = [(k, t) for k in ("ws", "sse") for t in topics if live.last[k].get(t) != want[t]]
        return want if not bad else False

    try:
        simulate(8, t0)
        before = eventually(agree, timeout=30, interval=0.2, what="live topics agree with the API")
        simulate(4, t0 + 300)  # st-0004..st-0007 say nothing more
        after = eventually(agree, timeout=30, interval=0.2, what="live topics agree with the API again")
        for i in range(4, 8):  # their last windows closed after their last reading
            t = "flow/stations/st-%04d" % i
            assert after[t]["window"] != before[t]["window"] and after[t]["readings"] == before[t]["readings"], t
        for t in topics:
            assert live.last["ws"][t]["aqi"] is not None, t
        listed = get("/api/v1/flow/alerts?limit=1000", grove=grove, read_key=r)
        assert listed, "the simulated city raised no alerts"
        eventually(lambda: live.drain() or live.alerts == {a["id"]: a for a in listed},
                   what="flow/alerts carried what the API lists")
    finally:
        live.close()
        grove.stop()


def test_a_silent_station_turns_stale_everywhere():
    """--flow-stale-after of wall-clock silence: the API, the station's
    topic, its region's count and the grounded answer all say so; a reading
    brings it back."""
    grove, w, r = start("--flow-stale-after", "1s", "--flow-window", "2s", "--flow-slide", "1s")
    try:
        ws = WebSocket(grove, "/api/v1/live?topic=flow/stations/hushed&topic=flow/regions/quietly",
                       headers={"X-API-Key": r})
        for _ in range(2):
            assert ws.recv_json()["type"] == "subscribed"
        t = time.time() - 30
        assert readings([{"station": "hushed", "region": "quietly", "time": t, "pm25": 40},
                         {"station": "hushed", "region": "quietly", "time": t + 5, "pm25": 40}],
                        grove=grove, write_key=w).status == 200
        s = get("/api/v1/flow/stations/hushed", grove=grove, read_key=r)
        assert isinstance(s["last_seen"], int), s  # (fresh until then: the unit tests, by their clock)
        last = {}

        def stale_everywhere():
            while True:
                try:
                    m = ws.recv_json(timeout=0.2)
                except (socket.timeout, TimeoutError):
                    break
                if m.get("type") == "message":
                    last[m["topic"]] = m["data"]
            st = get("/api/v1/flow/stations/hushed", grove=grove, read_key=r)
            rg = get("/api/v1/flow/regions/quietly", grove=grove, read_key=r)
            return (st["stale"] and rg["stale"] and rg["stale_stations"] == 1 and st["aqi"] is not None
                    and last.get("flow/stations/hushed") == st and last.get("flow/regions/quietly") == rg)
        eventually(stale_everywhere, timeout=15, interval=0.1, what="stale in the API and on the topics")
        st = get("/api/v1/flow/stations/hushed", grove=grove, read_key=r)
        assert st["last_seen"] == s["last_seen"] and st["aqi"] == pm25_aqi(40), (s, st)  # its last AQI kept
        a = grove.request("POST", "/api/v1/flow/ask", body=b'{"question":"how is the air at hushed?"}',
                          headers={"X-API-Key": r, "Content-Type": "application/json"}).json()["data"]
        assert "stale" in a["answer"], a
        assert readings([{"station": "hushed", "time": t + 6, "pm25": 40}], grove=grove, write_key=w).status == 200
        st = get("/api/v1/flow/stations/hushed", grove=grove, read_key=r)
        assert st["last_seen"] > s["last_seen"] and st["readings"] == 3, st
        ws.close()
    finally:
        grove.stop()


def late_total():
    body = g.request("GET", "/metrics").body.decode()
    for line in body.splitlines():
        if line.startswith("grove_flow_late_readings_total"):
            return float(line.split()[-1])
    return 0.0


def test_late_readings_are_counted_and_stored():
    before = late_total()
    t = minutes(0)
    assert readings([{"station": "tardy", "time": t / 1e9, "pm25": 3}]).status == 200
    old = t - 30 * MIN
    r = readings([{"station": "tardy", "time": old / 1e9, "pm25": 99, "pm10": 5},
                  {"station": "tardy", "time": t / 1e9, "pm25": 4}])
    assert r.status == 200 and r.json()["data"] == {"readings": 2, "points_written": 3, "late": 2, "ahead": 0}, r.body
    assert late_total() == before + 2
    pts = get("/api/v1/series/points?" + urllib.parse.urlencode({"series": "air_quality,station=tardy pm25"}))
    assert pts["points"] == [[old, 99], [t, 4]]
    # a partial write says how many of the written ones were late
    r = readings([{"station": "tardy", "time": old / 1e9, "co": 1}, {"station": "bad station", "co": 1}])
    assert r.status == 400 and r.json()["details"]["late"] == 1 and r.json()["details"]["points_written"] == 1
    # line protocol answers 204 (as InfluxDB): the count is a header
    body = "air,station=tardy pm25=7 %d\nair,station=tardy pm25=8 %d\n" % (old, t)
    r = g.request("POST", "/api/v1/write", body=body.encode(), headers={"X-API-Key": WRITE})
    assert r.status == 204 and r.header("x-grove-late-points") == "1", (r.status, r.headers)
    r = g.request("POST", "/api/v1/write", body=b"air,station=tardy pm25=9 %d\n" % (t + 1),
                  headers={"X-API-Key": WRITE})
    assert r.status == 204 and r.header("x-grove-late-points") == "0", (r.status, r.headers)
    r = g.request("POST", "/api/v1/write", body=b"air,station=tardy pm25=9 %d\nbad line\n" % old,
                  headers={"X-API-Key": WRITE})
    assert r.status == 400 and r.json()["details"]["late"] == 1, r.body
    # and so do InfluxDB's own routes
    r = g.request("POST", "/api/v2/write?org=city&bucket=air", body=b"air,station=tardy pm25=9 %d\n" % old,
                  headers={"Authorization": "Token " + WRITE})
    assert r.status == 204 and r.header("x-grove-late-points") == "1", (r.status, r.headers)


def test_stations_ahead_of_time_survive_a_restart():
    data_dir = os.path.join(tempfile.mkdtemp(prefix="grove-aqi-"), "data")
    grove, w, r = start(data_dir=data_dir)
    try:
        h = {"X-API-Key": w, "Content-Type": "application/json"}
        body = {"id": "harbour", "name": "Harbour Road", "region": "south", "lat": 51.5, "lon": -0.12}
        resp = grove.request("POST", "/api/v1/flow/stations", body=json.dumps(body).encode(), headers=h)
        assert resp.status == 200, resp.body
        assert resp.json()["data"]["name"] == "Harbour Road"
        for bad in [{"id": "a/b"}, {"id": "x", "lat": 91}, {"id": "x", "region": ""}, {"name": "no id"}]:
            resp = grove.request("POST", "/api/v1/flow/stations", body=json.dumps(bad).encode(), headers=h)
            assert resp.status == 400 and resp.json()["error_code"] == "INVALID_STATION", (bad, resp.body)
        t = minutes(1)
        # the registry's region wins over a reading's tag
        assert readings([{"station": "harbour", "region": "north", "time": t / 1e9, "o3": 0.05}],
                        grove=grove, write_key=w).status == 200
        assert get("/api/v1/flow/stations/harbour", grove=grove, read_key=r)["region"] == "south"
        grove.stop()
        grove = Grove("--gate-refresh", "200ms", *FAST_HASH, data_dir=data_dir)
        eventually(lambda: grove.request("GET", "/auth/me", headers={"X-API-Key": r}).status == 200,
                   what="keys loaded after restart: " + grove.output())
        s = get("/api/v1/flow/stations/harbour", grove=grove, read_key=r)
        assert (s["name"], s["region"], s["lat"], s["lon"]) == ("Harbour Road", "south", 51.5, -0.12), s
        rng = get("/api/v1/flow/stations/harbour/range?pollutant=o3&from=%d&to=%d" % (t, t + 1), grove=grove, read_key=r)
        assert rng["points"] == [[t, 0.05]], rng
        assert get("/api/v1/flow/stations/nowhere", grove=grove, read_key=r, status=404)["error_code"] == "NOT_FOUND"
    finally:
        stop_all(grove)
        shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)


def test_a_large_answer_reaches_a_slow_reader_before_close():
    t = minutes(0)
    rows = [{"station": "many-%05d" % i, "region": "crowd", "time": t / 1e9, "pm25": 5} for i in range(15000)]
    # 15,000 stations first seen: slow under the sanitizers on a busy core, so
    # the write may take longer than a request's usual 10 s
    r = g.request("POST", "/api/v1/flow/readings", body=json.dumps({"readings": rows}).encode(),
                  headers={"X-API-Key": WRITE, "Content-Type": "application/json"}, timeout=120)
    assert r.status == 200, r.body
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)  # the answer cannot all wait in buffers
    s.settimeout(20)
    s.connect(("127.0.0.1", g.port))
    s.sendall(("GET /api/v1/flow/stations HTTP/1.1\r\nHost: x\r\n"
               "X-API-Key: %s\r\nConnection: close\r\n\r\n" % READ).encode())
    time.sleep(3)  # longer than the server lingers after its last byte
    chunks = []
    while True:
        c = s.recv(1 << 16)
        if not c:
            break
        chunks.append(c)
    s.close()
    head, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    assert len(payload) > 4_000_000, len(payload)  # more than socket buffers hold
    assert len(json.loads(payload)["data"]) >= 15000



def test_a_restart_warms_the_windows_from_stored_readings():
    data_dir = os.path.join(tempfile.mkdtemp(prefix="grove-warm-"), "data")
    grove, w, r = start(data_dir=data_dir)
    try:
        now = time.time_ns() // MIN * MIN
        rows = [{"station": "warm-1", "region": "hearth", "time": (now - k * MIN + 10**9) / 1e9, "pm25": 40}
                for k in range(5, -1, -1)]
        assert readings(rows, grove=grove, write_key=w).status == 200
        before = get("/api/v1/flow/stations/warm-1", grove=grove, read_key=r)
        assert before["aqi"] == pm25_aqi(40), before
        grove.stop()
        grove = Grove("--gate-refresh", "200ms", "--flow-window", "1m", "--flow-slide", "1m",
                      "--flow-lateness", "0s", *FAST_HASH, data_dir=data_dir)
        eventually(lambda: grove.request("GET", "/auth/me", headers={"X-API-Key": r}).status == 200, what="keys")
        after = get("/api/v1/flow/stations/warm-1", grove=grove, read_key=r)
        assert after["aqi"] == pm25_aqi(40) and after["region"] == "hearth", after
        assert get("/api/v1/flow/regions/hearth", grove=grove, read_key=r)["aqi"] == pm25_aqi(40)
        assert "windows warmed from stored readings" in grove.output()
    finally:
        stop_all(grove)
        shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)


def test_flow_on_postgresql():
    pg = Postgres()
    grove = None
    try:
        grove, w, r = start("--store", pg.url)
        h = {"X-API-Key": w, "Content-Type": "application/json"}
        body = {"id": "pg-1", "name": "Depot", "region": "pgland", "lat": 48.1, "lon": 11.5}
        assert grove.request("POST", "/api/v1/flow/stations", body=json.dumps(body).encode(), headers=h).status == 200
        t = minutes(3)
        for i, v in enumerate([5.0, 40.0, 40.0]):  # Good, then Unhealthy for Sensitive Groups
            resp = readings([{"station": "pg-1", "time": (t + i * MIN) / 1e9, "pm25": v}], grove=grove, write_key=w)
            assert resp.status == 200, resp.body
        s = get("/api/v1/flow/stations/pg-1", grove=grove, read_key=r)
        assert s["category"] == "Unhealthy for Sensitive Groups" and s["region"] == "pgland", s
        alerts = get("/api/v1/flow/alerts?subject=pg-1&since=0", grove=grove, read_key=r)
        assert [(a["from"], a["to"]) for a in alerts] == [("Good", "Unhealthy for Sensitive Groups")], alerts
        readings([{"station": "pg-2", "region": "pgland", "time": t / 1e9, "pm10": 10}], grove=grove, write_key=w)
        assert pg.psql("SELECT count(*) FROM flow_stations") == "2"
        assert pg.psql("SELECT source FROM flow_stations WHERE id = 'pg-2'") == "first-seen"
        assert pg.psql("SELECT to_category FROM flow_alerts WHERE subject = 'pg-1' AND kind = 'station'") == "2"
        # the points themselves are in PostgreSQL, in day partitions, committed before the answer
        assert pg.psql("SELECT count(*) FROM series_points") == "4"
        assert int(pg.psql("SELECT count(*) FROM pg_inherits i JOIN pg_class t ON t.oid = i.inhparent "
                           "WHERE t.relname = 'series_points'")) >= 1
        rng = get("/api/v1/flow/stations/pg-1/range?pollutant=pm25&from=%d&to=%d&step=1m&agg=max" % (t, t + 3 * MIN),
                  grove=grove, read_key=r)
        assert [v for _, v in rng["points"]] == [5, 40, 40] and rng["source"] == "1m", rng
        grove.stop()
        grove = Grove("--store", pg.url, "--gate-refresh", "200ms", *FAST_HASH)
        eventually(lambda: grove.request("GET", "/auth/me", headers={"X-API-Key": r}).status == 200, what="keys")
        s = get("/api/v1/flow/stations/pg-1", grove=grove, read_key=r)
        assert (s["name"], s["lat"], s["lon"]) == ("Depot", 48.1, 11.5), s
        rng = get("/api/v1/flow/stations/pg-1/range?pollutant=pm25&from=%d&to=%d" % (t, t + 3 * MIN),
                  grove=grove, read_key=r)
        assert [v for _, v in rng["points"]] == [5, 40, 40], rng
    finally:
        stop_all(grove, pg)


def test_stations_reach_other_instances():
    pg, redis = Postgres(), Redis()
    a = b = None
    try:
        a, w, r = start("--store", pg.url, "--broker", redis.url)
        b = Grove("--store", pg.url, "--broker", redis.url, "--gate-refresh", "200ms", *FAST_HASH)
        eventually(lambda: b.request("GET", "/auth/me", headers={"X-API-Key": r}).status == 200, what="keys")
        eventually(lambda: b.get_json("/ready")[0] == 200, what="b's broker")
        h = {"X-API-Key": w, "Content-Type": "application/json"}
        body = {"id": "twin", "name": "Twin Towers", "region": "docklands", "lat": 1.5, "lon": 2.5}
        assert a.request("POST", "/api/v1/flow/stations", body=json.dumps(body).encode(), headers=h).status == 200
        eventually(lambda: b.request("GET", "/api/v1/flow/stations/twin", headers={"X-API-Key": r}).status == 200,
                   what="the station on the other instance")
        s = get("/api/v1/flow/stations/twin", grove=b, read_key=r)
        assert (s["name"], s["region"], s["lat"]) == ("Twin Towers", "docklands", 1.5), s
        # first seen on b: a learns it too, with b's region
        t = minutes(1)
        assert readings([{"station": "seen-on-b", "region": "west", "time": t / 1e9, "pm25": 3}],
                        grove=b, write_key=w).status == 200
        eventually(lambda: a.request("GET", "/api/v1/flow/stations/seen-on-b",
                                     headers={"X-API-Key": r}).status == 200, what="first sight elsewhere")
        assert get("/api/v1/flow/stations/seen-on-b", grove=a, read_key=r)["region"] == "west"
        # and the points are in the one PostgreSQL both use
        pts = get("/api/v1/series/points?" + urllib.parse.urlencode({"series": "air_quality,station=seen-on-b pm25"}),
                  grove=a, read_key=r)
        assert pts["points"] == [[t, 3]]
    finally:
        stop_all(a, b, redis, pg)


if __name__ == "__main__":
    main(globals())
