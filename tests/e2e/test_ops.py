"""Operations: /metrics (process_*, grove_build_info, route labels), the
shortest round-trip form of numbers in JSON answers, and the server's
first start."""

import os
import re
import select
import signal
import subprocess
import tempfile
import time
import urllib.request

from grove import FAST_HASH, GROVE, ROOT, Grove, eventually, run, main

g = None
KEY = None


def setup():
    global g, KEY
    g = Grove("--gate-refresh", "100ms", *FAST_HASH)
    out = subprocess.run([GROVE, "key", "add", "ops", "--scopes", "read,write", "--data-dir", g.data_dir],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    KEY = out.stdout.split()[1]
    eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": KEY}).status == 200,
               what="key loaded")


def metrics():
    r = g.request("GET", "/metrics")
    assert r.status == 200
    return r.body.decode()


def sample(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, "no sample %s" % name
    return float(m.group(1))


def test_process_metrics_as_client_libraries_define_them():
    text = metrics()
    for name, kind in (("process_cpu_seconds_total", "counter"), ("process_resident_memory_bytes", "gauge"),
                       ("process_virtual_memory_bytes", "gauge"), ("process_open_fds", "gauge"),
                       ("process_max_fds", "gauge"), ("process_start_time_seconds", "gauge")):
        assert "# TYPE %s %s\n" % (name, kind) in text, name
    import time
    pid = g.proc.pid
    assert sample(text, "process_open_fds") >= 3
    assert sample(text, "process_max_fds") >= sample(text, "process_open_fds")
    rss = int(open("/proc/%d/statm" % pid).read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert 0.5 * rss < sample(text, "process_resident_memory_bytes") < 2 * rss + (64 << 20)
    assert sample(text, "process_virtual_memory_bytes") >= sample(text, "process_resident_memory_bytes")
    start = sample(text, "process_start_time_seconds")
    assert time.time() - 3600 < start <= time.time() + 1
    cpu = sample(text, "process_cpu_seconds_total")
    assert cpu >= 0 and sample(metrics(), "process_cpu_seconds_total") >= cpu  # never goes back


def test_build_info_names_version_and_revision():
    version = subprocess.run([GROVE, "version"], capture_output=True, text=True).stdout
    m = re.match(r"grove (\S+) \(revision (\S+)\)", version)
    assert m, version
    assert '\ngrove_build_info{version="%s",revision="%s"} 1\n' % (m.group(1), m.group(2)) in metrics()


def test_unknown_gets_are_unmatched_and_files_static():
    """Issue 9.17: a GET no route wanted was counted as route="static"
    although no file was served."""
    def count(route, status):
        m = re.search(r'^grove_http_requests_total\{route="%s",method="[^"]*",status="%d"\} (\d+)$'
                      % (route, status), metrics(), re.M)
        return int(m.group(1)) if m else 0
    before_unmatched, before_static = count("unmatched", 404), count("static", 404)
    for path in ("/wp-login.php", "/no/such/thing", "/.env", "/index.htm"):
        assert g.request("GET", path).status == 404
    # an answer is counted as it finishes, maybe after the client read it
    eventually(lambda: count("unmatched", 404) == before_unmatched + 4, what="404s counted unmatched")
    assert count("static", 404) == before_static == 0
    served = count("static", 200)
    assert g.request("GET", "/").status == 200
    eventually(lambda: count("static", 200) == served + 1, what="the file counted static")
    assert count("static", 404) == 0 and count("unmatched", 404) == before_unmatched + 4


def test_json_numbers_are_shortest_round_trip():
    """Issue 9.17: 17.4 was answered as 17.399999999999999."""
    body = b"ops_float,k=a v=17.4 1000\nops_float,k=a v=0.30000000000000004 2000\n" \
           b"air_quality,station=ops-float,region=r pm25=17.4,o3=0.031\n"
    r = g.request("POST", "/api/v1/write", body=body, headers={"X-API-Key": KEY})
    assert r.status == 204, r.body
    r = g.request("GET", "/api/v1/series/points?series=ops_float,k%3Da%20v&start=0",
                  headers={"X-API-Key": KEY})
    assert r.status == 200, r.body
    assert b"[[1000,17.4],[2000,0.30000000000000004]]" in r.body, r.body
    r = g.request("GET", "/api/v1/flow/stations/ops-float", headers={"X-API-Key": KEY})
    assert r.status == 200, r.body
    assert b'"latest":17.4,' in r.body and b'"latest":0.031,' in r.body, r.body
    assert b"99999999" not in r.body and b"00000001" not in r.body, r.body


def test_every_json_writer_uses_the_one_helper():
    """Every JSON Grove writes goes through core/jsonout, and every real any
    text format writes through core/real (shortest round-trip): jansson's
    json_dump* and fixed %.17g formats are not used elsewhere."""
    found = []
    for base, _, files in os.walk(os.path.join(ROOT, "src")):
        for f in files:
            path = os.path.join(base, f)
            if not f.endswith((".c", ".h")) or os.path.relpath(path, ROOT) in [os.path.join("src", "core", f) for f in ("jsonout.c", "jsonout.h", "real.c", "real.h")]:
                continue
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                if re.search(r"\bjson_dump[sbf]?(_file|_callback)?\(|%\.1[5-7]g", line):
                    found.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, line.strip()))
    assert not found, "\n".join(found)


def test_run_sh_says_when_grove_is_ready():
    """Issue 9.17: README's `curl /ready` right after `./scripts/run.sh &`
    failed on a first run (the build comes first). run.sh says when grove
    listens, with the address to use; SIGTERM stops grove cleanly."""
    d = tempfile.mkdtemp(prefix="grove-run-")
    env = dict(os.environ, GROVE_BUILD_DIR=os.path.dirname(os.path.abspath(GROVE)))
    p = subprocess.Popen([os.path.join(ROOT, "scripts", "run.sh"), "--listen", "127.0.0.1:0",
                          "--data-dir", os.path.join(d, "data")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    seen, url, pid = b"", None, None
    try:
        deadline = time.time() + 240  # setup.sh and a build with nothing to do
        while not url and time.time() < deadline and p.poll() is None:
            if select.select([p.stderr], [], [], 1)[0]:
                seen += os.read(p.stderr.fileno(), 65536)
                m = re.search(rb"run.sh: grove is ready at (http://127\.0\.0\.1:(\d+)) \(pid (\d+)\)", seen)
                if m:
                    url, pid = m.group(1).decode(), int(m.group(3))
        assert url and not url.endswith(":0"), seen.decode(errors="replace")
        assert b"listening" in seen  # grove's own log comes through
        # ready when it says so: no waiting or retrying
        with urllib.request.urlopen(url + "/ready", timeout=10) as r:
            assert r.status == 200
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, seen.decode(errors="replace")
        seen += p.stderr.read()
        assert b"stopped" in seen, seen.decode(errors="replace")
        assert not os.path.exists("/proc/%d" % pid) or \
            open("/proc/%d/stat" % pid).read().split()[2] == "Z"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()


if __name__ == "__main__":
    main(globals())
