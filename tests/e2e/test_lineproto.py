"""Line protocol as InfluxDB reads it, and series identity, over real
sockets: series that must not collide, the series parameter's escaping,
invalid UTF-8 refused per line, answers that are always valid JSON
(fuzzed writes read back), string-only lines said to be refused."""

import json
import os
import random
import re
import shutil
import signal
import time
import urllib.parse

from grove import FAST_HASH, GROVE, Grove, Postgres, eventually, main
import subprocess

g = None
WRITE = READ = None


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


def write(body, query=""):
    return g.request("POST", "/api/v1/write" + query, body=body, headers={"X-API-Key": WRITE})


def strict_json(r):
    """The body as JSON, refusing anything that is not valid UTF-8."""
    return json.loads(r.body.decode("utf-8", errors="strict"))


def series(name, path="points", **q):
    q["series"] = name
    r = g.request("GET", "/api/v1/series/%s?%s" % (path, urllib.parse.urlencode(q)),
                  headers={"X-API-Key": READ})
    return r.status, strict_json(r)


def points(name):
    status, doc = series(name)
    assert status == 200, doc
    return doc["data"]["points"]


def test_escaped_measurement_and_tags_do_not_collide():
    assert write(b"collide\\,a=x v=1 1000").status == 204
    assert write(b"collide,a=x v=2 1000").status == 204
    assert points("collide\\,a=x v") == [[1000, 1]]  # the measurement "collide,a=x"
    assert points("collide,a=x v") == [[1000, 2]]  # the measurement "collide", tag a=x
    assert write(b"coll,a=x\\,b\\=y v=1 7").status == 204
    assert write(b"coll,a=x,b=y v=3 7").status == 204
    assert points("coll,a=x\\,b\\=y v") == [[7, 1]]  # one tag a = "x,b=y"
    assert points("coll,a=x,b=y v") == [[7, 3]]  # two tags
    assert points("coll,b=y,a=x v") == [[7, 3]]  # any tag order names the same series


def test_series_parameter_reads_line_protocol_escaping():
    assert write(b"cpu,host=web\\ 1 usage=42 5").status == 204
    status, doc = series("cpu,host=web\\ 1 usage")
    assert status == 200 and doc["data"]["points"] == [[5, 42]]
    assert doc["data"]["series"] == "cpu,host=web\\ 1 usage"
    status, doc = series("cpu,host=web 1 usage")  # an unescaped space inside the field key
    assert status == 400 and "invalid field key" in doc["message"]
    status, doc = series("cpu,host=web\\ 1 usage", path="range", step="1s", **{"from": 0, "to": 10**9})
    assert status == 200 and doc["data"]["points"] == [[0, 42]]
    status, doc = series("cpu,host")
    assert status == 400 and doc["error_code"] == "INVALID_QUERY" and "missing tag value" in doc["message"]


def test_windows_path_tags():
    # InfluxDB refuses an unescaped '=' inside a tag value: the comma after
    # C:\ is escaped, so "C:\,host=srv" is one value, and it holds '='
    r = write(b"win,instance=C:\\,host=srv v=1 1\nwin,host=srv,instance=C: v=2 1\n")
    assert r.status == 400
    d = strict_json(r)["details"]
    assert [f["line"] for f in d["failed"]] == [1] and d["failed"][0]["error"] == "invalid tag format"
    assert points("win,host=srv,instance=C: v") == [[1, 2]]
    # a backslash before anything else is kept: the path tag is C:\Program Files
    assert write(b"disk,path=C:\\Program\\ Files used=3 1").status == 204
    assert points("disk,path=C:\\Program\\ Files used") == [[1, 3]]


def test_invalid_utf8_is_refused_per_line():
    r = write(b"ok\xff v=1 1\nok v=2 1\ncpu,host=a\xc0\xaf v=1\ncpu \xe2\x82=1\ncpu s=\"\xed\xa0\x80\"\n")
    assert r.status == 400
    e = strict_json(r)
    d = e["details"]
    assert e["error_code"] == "PARTIAL_WRITE" and d["failed_lines"] == 4 and d["points_written"] == 1
    assert [f["line"] for f in d["failed"]] == [1, 3, 4, 5]
    assert [f["error"] for f in d["failed"]] == [
        "invalid UTF-8 in the measurement", "invalid UTF-8 in a tag", "invalid UTF-8 in a field key",
        "invalid UTF-8 in a string field"]
    assert d["failed"][0]["text"] == "ok\ufffd v=1 1"
    assert points("ok v") == [[1, 2]]
    # the text of a failed line is cut at 120 bytes, never inside a character
    r = write(b"cut,t=" + b"a" * 113 + "\u00e9\u00e9\u00e9".encode() + b" v=")
    d = strict_json(r)["details"]
    assert d["failed"][0]["error"] == "missing field value"
    assert d["failed"][0]["text"].startswith("cut,t=" + "a" * 113 + "\u00e9")


def test_string_only_lines_say_they_are_not_stored():
    r = write(b"log msg=\"hello\" 1\nlog msg=\"x\",n=1i 1\n")
    assert r.status == 400
    d = strict_json(r)["details"]
    assert d["failed_lines"] == 1 and d["points_written"] == 1
    assert d["failed"] == [{"line": 1, "error": "no numeric field: string fields are not stored",
                            "text": "log msg=\"hello\" 1"}]
    assert points("log n") == [[1, 1]]


def test_fuzzed_writes_answer_and_read_back_valid_json():
    rnd = random.Random(20261129)
    pieces = [b",", b"=", b"\\", b" ", b"\"", b"a", b"z", b"\xc3\xa9", b"\xff", b"\xe2\x82", b"\xed\xa0\x80",
              b"\x00", b"\x01", b"\t", b"#", b"\xf0\x9f\x8c\xb3", b"1", b"i", b"\r"]

    def name():
        return b"".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 6)))

    good = [b",", b"=", b" ", b"\"", b"a", b"z", b"\xc3\xa9", b"\xf0\x9f\x8c\xb3", b"'", b"1"]

    def escaped_name():
        raw = b"".join(rnd.choice(good) for _ in range(rnd.randint(1, 6)))
        for c in (b",", b"=", b" "):
            raw = raw.replace(c, b"\\" + c)
        return raw if raw[:1] not in (b"#",) else b"x" + raw

    written = []
    for round_ in range(120):
        lines = []
        for _ in range(12):
            if rnd.random() < 0.5:  # a line made of pieces
                lines.append(name() + b"," + name() + b"=" + name() + b" " + name() + b"=" + name())
            else:  # a good line with odd names
                m, t, v, f = escaped_name(), escaped_name(), escaped_name(), escaped_name()
                lines.append(b"%s,%s=%s %s=%d %d" % (m, t, v, f, rnd.randint(0, 99), round_))
        r = write(b"\n".join(lines))
        assert r.status in (204, 400), r.status
        if r.status == 400:
            e = strict_json(r)
            d = e["details"]
            assert e["error_code"] == "PARTIAL_WRITE"
            assert d["failed_lines"] > 0 and len(d["failed"]) == min(d["failed_lines"], 20), d
            failed = {f["line"] for f in d["failed"]}
        else:
            failed = set()
        # a line after an open quote may be inside that string (a string
        # field may span lines, as InfluxDB reads them), and a backslash
        # escapes the newline after it: such lines are not checked
        quote_before = False
        for i, l in enumerate(lines, 1):
            if i not in failed and not quote_before:
                written.append(l)
            quote_before = quote_before or b"\"" in l or l.endswith(b"\\")
    # the series good lines made read back, named as they were written
    checked = 0
    unescaped = re.compile(rb"(?<!\\)[ =]")
    for line in written:
        if any(c in line for c in (b"\r", b"\t", b"\x00")) or line[:1] in (b"#", b" "):
            continue
        space = unescaped.search(line, 0)
        while space and space.group() != b" ":
            space = unescaped.search(line, space.end())
        head, rest = line[:space.start()], line[space.end():]
        fkey = rest[:unescaped.search(rest).start()]
        status, doc = series((head + b" " + fkey).decode("utf-8"))
        assert status == 200 and doc["data"]["points"], (line, doc)
        checked += 1
    assert checked > 40, checked
    for path in ("/api/v1/flow/snapshot", "/api/v1/flow/stations", "/metrics"):
        r = g.request("GET", path, headers={"X-API-Key": READ})
        if path != "/metrics":
            strict_json(r)
        else:
            r.body.decode("utf-8", errors="strict")


def conflict(field, meas, is_, was):
    return 'field type conflict: input field "%s" on measurement "%s" is type %s, already exists as type %s' % (
        field, meas, is_, was)


def test_a_field_keeps_its_type_as_influxdb_says():
    assert write(b"ft,h=a v=1.5,w=1i 1").status == 204
    # float -> string, float -> integer, integer -> float: refused, the whole line
    r = write(b'ft,h=a v="x" 2\nft,h=a v=2i,x=9 3\nft,h=a w=2.5 4\nft,h=a v=3 5\nft,h=a u=1u 6\nft,h=a u=2i 7\n')
    assert r.status == 400
    d = strict_json(r)["details"]
    assert [f["line"] for f in d["failed"]] == [1, 2, 3, 6], d
    assert [f["error"] for f in d["failed"]] == [
        conflict("v", "ft", "string", "float"), conflict("v", "ft", "integer", "float"),
        conflict("w", "ft", "float", "integer"), conflict("u", "ft", "integer", "unsigned")]
    assert points("ft,h=a v") == [[1, 1.5], [5, 3]]
    assert points("ft,h=a x") == []  # the refused line kept nothing
    # booleans and strings keep theirs too; a string series is remembered though not stored
    assert write(b"ft,h=b ok=true 1").status == 204
    assert write(b'ft,h=b s="hello",n=1 1').status == 204
    r = write(b"ft,h=b ok=1 2\nft,h=b s=2 2\n")
    d = strict_json(r)["details"]
    assert [f["error"] for f in d["failed"]] == [conflict("ok", "ft", "float", "boolean"),
                                                 conflict("s", "ft", "float", "string")]
    # a long name in the message is cut at a character, and the line still listed
    name = "a" + "\u00e9" * 40  # byte 64 falls inside a character
    assert write(("ft3 %s=1 1" % name).encode()).status == 204
    r = write(("ft3 %s=1i 2" % name).encode())
    d = strict_json(r)["details"]
    assert d["failed_lines"] == 1 and d["failed"][0]["error"] == conflict("a" + "\u00e9" * 31, "ft3", "integer", "float")
    # within one request, the first line decides
    r = write(b"ft2 v=1 1\nft2 v=2i 2\n")
    assert [f["line"] for f in strict_json(r)["details"]["failed"]] == [2]
    # a station's readings are concentrations: any number type, any route
    assert write(b"air_quality,station=typed no2=18i %d" % (time.time_ns() - 10**9)).status == 204
    r = g.request("POST", "/api/v1/flow/readings", headers={"X-API-Key": WRITE, "Content-Type": "application/json"},
                  body=json.dumps({"readings": [{"station": "typed", "no2": 18.5}]}).encode())
    assert r.status == 200, r.body


def test_field_types_survive_a_restart():
    g2 = Grove(*FAST_HASH)
    try:
        k = key(g2, "read,write")
        eventually(lambda: g2.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                   what="key loaded")
        r = g2.request("POST", "/api/v1/write", body=b'keep v=1 1\nkeep s="a",n=1 1\n', headers={"X-API-Key": k})
        assert r.status == 204, r.body
        data_dir = g2.data_dir
    finally:
        g2.proc.send_signal(signal.SIGTERM)
        g2.proc.wait(15)
        g2.log.close()
    g3 = Grove(*FAST_HASH, data_dir=data_dir)
    try:
        eventually(lambda: g3.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                   what="key loaded")
        r = g3.request("POST", "/api/v1/write", body=b"keep v=2i 2\nkeep s=1 2\nkeep v=3 3\n",
                       headers={"X-API-Key": k})
        d = strict_json(r)["details"]
        assert [f["error"] for f in d["failed"]] == [conflict("v", "keep", "integer", "float"),
                                                     conflict("s", "keep", "float", "string")], d
    finally:
        g3.stop()
    shutil.rmtree(g2.tmp, ignore_errors=True)


def test_instances_agree_on_field_types():
    """Two instances on one PostgreSQL: the second has not seen the type the
    first recorded; its claim finds it and its line is refused whole."""
    pg = Postgres()
    try:
        a = Grove("--store", pg.url, "--gate-refresh", "200ms", *FAST_HASH)
        b = Grove("--store", pg.url, "--gate-refresh", "200ms", *FAST_HASH)
        try:
            out = subprocess.run([GROVE, "key", "add", "pg", "--scopes", "read,write", "--store", pg.url,
                                  "--data-dir", a.data_dir], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            k = out.stdout.split()[1]
            for x in (a, b):
                eventually(lambda: x.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                           what="key loaded")
            r = a.request("POST", "/api/v1/write", body=b"shared,h=1 v=1.5 1", headers={"X-API-Key": k})
            assert r.status == 204, r.body
            r = b.request("POST", "/api/v1/write", body=b"shared,h=1 v=2i,w=1 2\nshared,h=1 v=3 3\n",
                          headers={"X-API-Key": k})
            assert r.status == 400, r.body
            d = strict_json(r)["details"]
            assert [(f["line"], f["error"]) for f in d["failed"]] == [
                (1, conflict("v", "shared", "integer", "float"))], d
            r = b.request("GET", "/api/v1/series/points?" + urllib.parse.urlencode({"series": "shared,h=1 v"}),
                          headers={"X-API-Key": k})
            assert strict_json(r)["data"]["points"] == [[1, 1.5], [3, 3]]
            r = b.request("GET", "/api/v1/series/points?" + urllib.parse.urlencode({"series": "shared,h=1 w"}),
                          headers={"X-API-Key": k})
            assert strict_json(r)["data"]["points"] == []
        finally:
            a.stop()
            b.stop()
    finally:
        pg.stop()


def station_range(grove, station, key, pollutant="pm25"):
    now = time.time_ns()
    r = grove.request("GET", "/api/v1/flow/stations/%s/range?pollutant=%s&from=%d&to=%d"
                      % (station, pollutant, now - 3600 * 10**9, now + 60 * 10**9),
                      headers={"X-API-Key": key})
    assert r.status == 200, r.body
    return strict_json(r)["data"]


def test_a_station_is_one_history_whatever_route_or_tags():
    now = time.time_ns() // 10**9 * 10**9
    t = [now - (40 - i) * 10**9 for i in range(5)]
    # the docs' st-001 examples: line protocol with a region tag, JSON without one
    assert write(b"air_quality,station=st-001,region=north pm25=12.4,pm10=20,no2=18i %d" % t[0]).status == 204
    r = g.request("POST", "/api/v1/flow/readings", headers={"X-API-Key": WRITE, "Content-Type": "application/json"},
                  body=json.dumps({"readings": [{"station": "st-001", "region": "north",
                                                 "time": t[1] / 1e9, "pm25": 13.1}]}).encode())
    assert r.status == 200, r.body
    # Telegraf's global host tag, another measurement, an alias of pm25
    assert write(b"air_quality,host=gw-7,region=north,station=st-001 pm25=14 %d" % t[2]).status == 204
    assert write(b"aq,station=st-001 pm2_5=15 %d" % t[3]).status == 204
    r = g.request("POST", "/api/v1/flow/readings", headers={"X-API-Key": WRITE, "Content-Type": "application/json"},
                  body=json.dumps({"readings": [{"station": "st-001", "time": t[4] / 1e9, "pm25": 16}]}).encode())
    assert r.status == 200, r.body
    d = station_range(g, "st-001", READ)
    assert d["series"] == "air_quality,station=st-001 pm25"
    assert d["points"] == [[t[0], 12.4], [t[1], 13.1], [t[2], 14], [t[3], 15], [t[4], 16]], d
    assert points("air_quality,station=st-001 pm25") == d["points"]
    assert [p[1] for p in station_range(g, "st-001", READ, "no2")["points"]] == [18]
    # a field that is no pollutant keeps the line's own series
    assert write(b"air_quality,station=st-001,region=north temp=21.5 %d" % t[0]).status == 204
    assert points("air_quality,region=north,station=st-001 temp") == [[t[0], 21.5]]


def test_split_histories_of_earlier_versions_are_merged_once():
    g2 = Grove("--series-flush", "200ms", *FAST_HASH)
    try:
        k = key(g2, "read,write")
        eventually(lambda: g2.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                   what="key loaded")
        now = time.time_ns() // 10**9 * 10**9
        t1, t2 = now - 30 * 10**9, now - 20 * 10**9
        body = b"air_quality,station=st-9 pm25=1 %d\nholder,station=st-9 v=2 %d\n" % (t1, t2)
        assert g2.request("POST", "/api/v1/write", body=body, headers={"X-API-Key": k}).status == 204
        eventually(lambda: os.path.getsize(os.path.join(g2.data_dir, "series", "series.wal")) == 0,
                   what="log emptied into chunks")
        data_dir = g2.data_dir
    finally:  # stopped, its data dir kept (g2.stop() would remove it)
        g2.proc.send_signal(signal.SIGTERM)
        g2.proc.wait(15)
        g2.log.close()
    # as an earlier version left it: the region-tagged line protocol series and
    # the JSON series of one station
    db = os.path.join(data_dir, "series", "series.db")
    out = subprocess.run(["sqlite3", db,
                          "UPDATE series SET key = 'air_quality,region=north,station=st-9 pm25' "
                          "WHERE key = 'air_quality,station=st-9 pm25';"
                          "UPDATE series SET key = 'air_quality,station=st-9 pm25' WHERE key = 'holder,station=st-9 v'"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for round_ in range(2):
        g3 = Grove(*FAST_HASH, data_dir=data_dir)
        try:
            eventually(lambda: g3.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                       what="key loaded")
            d = station_range(g3, "st-9", k)
            assert d["points"] == [[t1, 1], [t2, 2]], d
            # the old series stays readable under its own name
            r = g3.request("GET", "/api/v1/series/points?" + urllib.parse.urlencode(
                {"series": "air_quality,region=north,station=st-9 pm25"}), headers={"X-API-Key": k})
            assert strict_json(r)["data"]["points"] == [[t1, 1]]
            merged = "station readings merged" in g3.output()
            assert merged == (round_ == 0), g3.output()[-2000:]
        finally:
            g3.stop()
    shutil.rmtree(g2.tmp, ignore_errors=True)


def test_points_past_retention_are_refused_not_acknowledged():
    """A point older than the raw retention was answered 204, readable, and
    gone at the next flush: it is refused per line (JSON readings per
    reading), as InfluxDB refuses points beyond its retention policy."""
    g2 = Grove("--series-retention", "1h", "--series-flush", "200ms", *FAST_HASH)
    try:
        k = key(g2, "read,write")
        eventually(lambda: g2.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                   what="key loaded")
        now = time.time_ns()
        body = b"ret,k=a v=1 1000\nret,k=a v=2 %d\n" % now
        r = g2.request("POST", "/api/v1/write", body=body, headers={"X-API-Key": k})
        assert r.status == 400, r.body
        d = r.json()["details"]
        assert d["points_written"] == 1 and [f["line"] for f in d["failed"]] == [1], d
        assert "retention" in d["failed"][0]["error"], d
        r = g2.request("POST", "/write?db=x&p=" + k, body=b"ret,k=b v=1 %d" % (now - 2 * 3600 * 10**9))
        assert r.status == 400 and b"retention" in r.body, r.body
        r = g2.request("POST", "/api/v1/flow/readings", headers={"X-API-Key": k, "Content-Type": "application/json"},
                       body=json.dumps({"readings": [{"station": "ret-1", "pm25": 5, "time": "2000-01-01T00:00:00Z"},
                                                     {"station": "ret-1", "pm25": 6}]}).encode())
        assert r.status == 400 and r.json()["error_code"] == "PARTIAL_WRITE", r.body
        d = r.json()["details"]
        assert [f["index"] for f in d["failed"]] == [0] and "retention" in d["failed"][0]["error"], d
        # what was acknowledged stays, through flushes
        eventually(lambda: os.path.getsize(os.path.join(g2.data_dir, "series", "series.wal")) == 0,
                   what="log emptied into chunks")
        r = g2.request("GET", "/api/v1/series/points?series=ret,k%3Da%20v&start=0", headers={"X-API-Key": k})
        assert r.status == 200 and r.json()["data"]["points"] == [[now, 2]], r.body
    finally:
        g2.stop()


if __name__ == "__main__":
    main(globals())
