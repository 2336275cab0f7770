"""Time over real sockets: a reading from the future moves no window (issue
9.1: the issue's run, eight stations, one line a day ahead), the simulator
writes in real time unless told --fast, and extreme times are per-line
errors, never an overflow (9.2): line protocol in every precision, JSON
readings, range queries at int64's ends."""

import json
import subprocess
import time
import urllib.parse

from grove import FAST_HASH, GROVE, Grove, eventually, main

g = None
WRITE = READ = None
S = 10**9
STATIONS = ["st-%d" % i for i in range(8)]


def key(grove, scopes):
    out = subprocess.run([GROVE, "key", "add", "k-" + scopes, "--scopes", scopes, "--data-dir", grove.data_dir],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def setup():
    global g, WRITE, READ
    # the windows; --flow-max-ahead keeps its default (5m)
    g = Grove("--gate-refresh", "200ms", "--flow-window", "10s", "--flow-slide", "2s", "--flow-lateness", "1s",
              "--flow-partitions", "2", *FAST_HASH)
    WRITE, READ = key(g, "write"), key(g, "read")
    eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": READ}).status == 200,
               what="keys loaded")


def write(body, query=""):
    return g.request("POST", "/api/v1/write" + query, body=body.encode(), headers={"X-API-Key": WRITE})


def get(path, status=200):
    r = g.request("GET", path, headers={"X-API-Key": READ})
    assert r.status == status, (r.status, r.body)
    return r.json()["data"] if status == 200 else r.json()


def metric(name):
    for line in g.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def honest_round(extra=()):
    """Every station (and any extra) reads now, by this machine's clock."""
    now = time.time_ns()
    body = "".join("air_quality,station=%s,region=%s pm25=%d %d\n" % (s, "north" if i % 2 else "south", 10 + i, now)
                   for i, s in enumerate(list(STATIONS) + list(extra)))
    r = write(body)
    assert r.status == 204, r.body
    assert r.header("x-grove-ahead-points") == "0"
    return now


def window_end(sid):
    w = get("/api/v1/flow/stations/" + sid).get("window")
    return w["end"] if w else None


def test_one_reading_from_the_future_freezes_nothing():
    honest_round()
    bug_at = time.time_ns()
    r = write("air_quality,station=clockbug,region=elsewhere pm25=20 %d\n" % (bug_at + 86400 * S))
    assert r.status == 204, r.body  # stored, as InfluxDB would
    assert r.header("x-grove-ahead-points") == "1", r.headers
    assert metric("grove_flow_ahead_readings_total") == 1
    # it is stored all the same
    pts = get("/api/v1/series/points?" + urllib.parse.urlencode(
        {"series": "air_quality,station=clockbug pm25"}))["points"]
    assert pts == [[bug_at + 86400 * S, 20]], pts

    # every station's windows, and a newcomer's, go on closing after it
    def all_moved_on():
        honest_round(extra=["newcomer"])
        ends = {s: window_end(s) for s in STATIONS + ["newcomer"]}
        return all(e is not None and e > bug_at + 2 * S for e in ends.values()) and ends
    ends = eventually(all_moved_on, timeout=30, interval=0.5, what="every station's windows past the clockbug")
    for s in STATIONS:
        assert get("/api/v1/flow/stations/" + s)["aqi"] is not None, s
    assert get("/api/v1/flow/stations/clockbug").get("window") is None  # in no window
    assert max(ends.values()) <= time.time_ns()  # windows close behind the wall clock, never ahead


def test_json_readings_report_what_is_ahead():
    now = time.time_ns()
    rows = [{"station": "js-1", "time": now / 1e9, "pm25": 5},
            {"station": "js-1", "time": (now + 3600 * S) / 1e9, "pm25": 6}]
    r = g.request("POST", "/api/v1/flow/readings", body=json.dumps({"readings": rows}).encode(),
                  headers={"X-API-Key": WRITE, "Content-Type": "application/json"})
    assert r.status == 200, r.body
    assert r.json()["data"] == {"readings": 2, "points_written": 2, "late": 0, "ahead": 1}


def test_simulator_writes_in_real_time_unless_fast():
    ahead = metric("grove_flow_ahead_readings_total")
    args = [GROVE, "flow", "simulate", "--url", "http://127.0.0.1:%d" % g.port, "--key", WRITE,
            "--stations", "3", "--regions", "1", "--faults", "false", "--duration", "0", "--seed", "5"]
    out = subprocess.run(args + ["--ticks", "3", "--interval", "1s"], capture_output=True, text=True, timeout=60)
    done = time.time_ns()
    assert out.returncode == 0, out.stderr
    assert "real time" in out.stderr, out.stderr
    assert metric("grove_flow_ahead_readings_total") == ahead
    pts = get("/api/v1/series/points?" + urllib.parse.urlencode({"series": "air_quality,station=st-0000 pm25"}))
    assert len(pts["points"]) == 3 and all(t <= done for t, _ in pts["points"]), pts
    # faster than real time: event time runs ten minutes ahead, and what is
    # past --flow-max-ahead is stored but counted, not windowed
    out = subprocess.run(args + ["--ticks", "60", "--interval", "10s", "--fast", "--seed", "6"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "faster than real time" in out.stderr, out.stderr
    assert metric("grove_flow_ahead_readings_total") > ahead


def test_extreme_timestamps_are_per_line_errors():
    body = ("air_quality,station=max-1,region=rmax pm25=10 9223372036854775807\n"
            "air_quality,station=ok-1,region=rok pm25=10 1700000000000000000\n"
            "air_quality,station=min-1,region=rmin pm25=10 -9223372036854775808\n")
    r = write(body)
    assert r.status == 400, r.body
    e = r.json()
    assert e["error_code"] == "PARTIAL_WRITE" and e["details"]["points_written"] == 1, e
    assert [(f["line"], f["error"]) for f in e["details"]["failed"]] == [
        (1, "timestamp out of range at precision ns: 1677-09-21..2262-04-11"),
        (3, "timestamp out of range at precision ns: 1677-09-21..2262-04-11")], e
    # the edges of the range are times like any other
    r = write("edge v=1 -9223372036854775806\nedge v=2 9223372036854775806\n")
    assert r.status == 204, r.body
    pts = get("/api/v1/series/points?" + urllib.parse.urlencode({"series": "edge v"}))["points"]
    assert pts == [[-9223372036854775806, 1], [9223372036854775806, 2]], pts
    # every precision, InfluxDB v1's m and h too: what overflows when scaled is refused
    for prec, ok, bad in [("s", 9223372036, 9223372037), ("ms", -9223372036854, -9223372036855),
                          ("us", 9223372036854775, 9223372036854776), ("m", 153722867, 153722868),
                          ("h", -2562047, -2562048)]:
        r = write("p_%s v=1 %d\np_%s v=2 %d\n" % (prec, ok, prec, bad), "?precision=" + prec)
        assert r.status == 400, (prec, r.body)
        f = r.json()["details"]["failed"]
        assert [x["line"] for x in f] == [2] and ("precision " + prec) in f[0]["error"], (prec, f)
    assert write("h v=1 1\n", "?precision=h").status == 204
    assert get("/api/v1/series/points?series=h+v")["points"] == [[3600 * S, 1]]
    # InfluxDB 1.x's /write takes them too (2.x's API has no m or h)
    for path, status in [("/write?db=air&precision=m", 204), ("/api/v2/write?org=o&bucket=b&precision=m", 400)]:
        r = g.request("POST", path, body=b"v1m v=2 2", headers={"Authorization": "Token " + WRITE})
        assert r.status == status, (path, r.status, r.body)
    assert get("/api/v1/series/points?series=v1m+v")["points"] == [[120 * S, 2]]
    r = g.request("POST", "/write?db=air&precision=s", body=b"v1m v=3 9223372037",
                  headers={"Authorization": "Token " + WRITE})
    assert r.status == 400 and "timestamp out of range at precision s" in r.body.decode(), r.body
    r = write("x v=1 1\n", "?precision=d")
    assert r.status == 400 and "m or h" in r.json()["message"], r.body
    assert g.request("GET", "/health").status == 200


def test_json_reading_times_out_of_range():
    rows = [{"station": "far", "time": "5026-11-23T10:00:00z", "pm25": 1},
            {"station": "far", "time": 1e10, "pm25": 1},
            {"station": "far", "time": -1e300, "pm25": 1},
            {"station": "far", "time": "2026-02-30T10:00:00Z", "pm25": 1},
            {"station": "far", "time": "1677-09-21T00:12:43.145224194Z", "pm25": 2}]
    r = g.request("POST", "/api/v1/flow/readings", body=json.dumps({"readings": rows}).encode(),
                  headers={"X-API-Key": WRITE, "Content-Type": "application/json"})
    assert r.status == 400, r.body
    failed = r.json()["details"]["failed"]
    assert [f["index"] for f in failed] == [0, 1, 2, 3], failed
    assert failed[0]["error"].startswith("time is outside 1677-09-21"), failed
    assert "RFC 3339" in failed[3]["error"], failed
    assert r.json()["details"]["points_written"] == 1


def test_range_queries_at_the_ends_of_int64():
    write("ends v=1 -9223372036854775806\nends v=2 0\nends v=3 9223372036854775806\n")
    # the biggest step (366 days) at each end of int64: buckets start and end
    # inside int64, so the partial first and last ones hold nothing (the
    # points are there, raw)
    for lo, hi, want in [(-9223372036854775808, -9000000000000000000, 0), (0, 1, 1),
                         (9000000000000000000, 9223372036854775807, 0),
                         (-9223372036854775808, 9223372036854775807, 1)]:
        for agg in ("count", "max"):
            d = get("/api/v1/series/range?series=ends+v&from=%d&to=%d&step=366d&agg=%s" % (lo, hi, agg))
            assert len(d["points"]) == want, (lo, hi, d)
            assert all(lo - 366 * 86400 * S <= b <= hi for b, _ in d["points"]), d
    r = g.request("GET", "/api/v1/series/range?series=ends+v&from=-9223372036854775808&to=9223372036854775807"
                  "&step=1h", headers={"X-API-Key": READ})  # 2.5 million hours: said so, not overflowed
    assert r.status == 400 and r.json()["error_code"] == "TOO_MANY_BUCKETS", r.body
    # around each end, fine steps
    for lo, hi in [(-9223372036854775808, -9223372036854775000), (9223372036854775000, 9223372036854775807)]:
        d = get("/api/v1/series/range?series=ends+v&from=%d&to=%d&step=1s&agg=count" % (lo, hi))
        assert len(d["points"]) <= 1, d
    for q in ["from=99999999999999999999", "to=-99999999999999999999", "from=5026-11-23T10:00:00Z"]:
        e = get("/api/v1/series/points?series=ends+v&" + q, status=400)
        assert e["error_code"] == "INVALID_QUERY" and "1677-09-21" in e["message"], e
    assert len(get("/api/v1/series/points?series=ends+v")["points"]) == 3


def test_help_documents_the_bound():
    out = subprocess.run([GROVE, "serve", "--help"], capture_output=True, text=True)
    assert "--flow-max-ahead" in out.stdout + out.stderr
    out = subprocess.run([GROVE, "flow", "simulate", "--help"], capture_output=True, text=True)
    assert "--fast" in out.stdout


if __name__ == "__main__":
    main(globals())
