"""The web console in a real browser: starts grove (windows of a minute,
so a test can close them; stations stale after 5 s of silence), an admin,
a write key and a small city (stations with coordinates in three regions,
each with a closed window), and runs tests/browser/console.test.js in
Debian's Chromium with playwright-core and axe-core (scripts/setup.sh test
installs them). The browser test asks for the server to go away and come
back by printing "@@ stop|cont|kill|start" and waiting for "ok" on its
standard input: SIGSTOP (hung), SIGCONT, SIGKILL, and a new grove on the
same port and data. Screenshots go to $ARTIFACTS (build/browser-artifacts
under CTest)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from grove import (ADMIN_PASSWORD, FAST_HASH, GROVE, ROOT, Grove, admin_headers, eventually, free_port,
                   main)

BROWSER = os.path.join(ROOT, "tests", "browser")
CITY = [  # id, name, region, lat, lon, pm25 in the closed window
    ("harbour", "Harbour Road", "south", 51.500, -0.120, 40.0),
    ("docks", "Old Docks", "south", 51.495, -0.100, 12.0),
    ("park", "Victoria Park", "east", 51.536, -0.040, 3.0),
    ("mill", "Mill Lane", "east", 51.530, -0.060, 60.0),
    ("school", "St Anne's School", "north", 51.560, -0.110, 20.0),
]


def start(data_dir, port):
    return Grove("--listen", "127.0.0.1:%d" % port, "--gate-refresh", "200ms", "--flow-window", "1m",
                 "--flow-slide", "1m", "--flow-lateness", "0s", "--flow-stale-after", "5s",
                 "--rate-anonymous", "0", *FAST_HASH, data_dir=data_dir)


def test_console_in_chromium():
    assert os.path.isdir(os.path.join(BROWSER, "node_modules", "playwright-core")) and \
        os.path.isdir(os.path.join(BROWSER, "node_modules", "axe-core")), \
        "run scripts/setup.sh test (npm ci in tests/browser)"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "run scripts/setup.sh test (Debian's chromium)"
    tmp = tempfile.mkdtemp(prefix="grove-console-")
    data_dir, port = os.path.join(tmp, "data"), free_port()
    g = start(data_dir, port)
    dead = []
    try:
        admin_headers(g, "admin@example.com")  # makes the admin
        out = subprocess.run([GROVE, "key", "add", "console-test", "--scopes", "write", "--data-dir", data_dir],
                             capture_output=True, text=True, check=True)
        key = out.stdout.split()[1]
        eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200, what="key")
        h = {"X-API-Key": key, "Content-Type": "application/json"}
        for sid, name, region, lat, lon, _ in CITY + [("web-1", "Plaza Web", "plaza", 51.515, -0.080, 0)]:
            r = g.request("POST", "/api/v1/flow/stations", headers=h, body=json.dumps(
                {"id": sid, "name": name, "region": region, "lat": lat, "lon": lon}).encode())
            assert r.status in (200, 201), r.body
        minute = 60 * 10**9
        t0 = time.time_ns() // minute * minute - 5 * minute
        s0 = t0 // 10**9
        readings = [{"station": c[0], "time": s0 - 120, "pm25": c[5]} for c in CITY] + \
                   [{"station": c[0], "time": s0 - 60, "pm25": c[5]} for c in CITY] + \
                   [{"station": "web-1", "time": s0, "pm25": 5}]
        r = g.request("POST", "/api/v1/flow/readings", headers=h, body=json.dumps({"readings": readings}).encode())
        assert r.status == 200, r.body
        env = dict(os.environ, GROVE_URL="http://127.0.0.1:%d" % port, GROVE_EMAIL="admin@example.com",
                   GROVE_PASSWORD=ADMIN_PASSWORD, GROVE_WRITE_KEY=key, GROVE_T0=str(t0), CHROMIUM=chromium,
                   GROVE_CITY=json.dumps(CITY),
                   ARTIFACTS=os.environ.get("ARTIFACTS", os.path.join(ROOT, "build", "browser-artifacts")))
        node = subprocess.Popen(["node", os.path.join(BROWSER, "console.test.js")], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        log = []
        deadline = time.time() + 300
        for line in node.stdout:
            log.append(line)
            sys.stdout.write(line)
            if time.time() > deadline:
                node.kill()
                break
            if not line.startswith("@@ "):
                continue
            what = line.split()[1]
            if what == "stop":
                g.signal(signal.SIGSTOP)
            elif what == "cont":
                g.signal(signal.SIGCONT)
            elif what == "kill":
                g.signal(signal.SIGKILL)
                g.wait()
                dead.append(g)
            elif what == "start":
                g = start(data_dir, port)
            node.stdin.write("ok\n")
            node.stdin.flush()
        rc = node.wait(30)
        assert rc == 0, "".join(log) + "\n--- grove ---\n" + g.output()[-3000:]
    finally:
        if g.proc.poll() is None:
            g.signal(signal.SIGCONT)
        g.stop()
        for d in dead:
            d.log.close()
            shutil.rmtree(d.tmp, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(globals())
