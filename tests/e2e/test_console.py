"""The web console in a real browser: starts grove (windows of a minute,
so a test can close them), an admin and a write key, and runs
tests/browser/console.test.js in Debian's Chromium with playwright-core
(scripts/setup.sh test installs both). Screenshots go to $ARTIFACTS
(build/browser-artifacts under CTest)."""

import os
import shutil
import subprocess
import sys
import time

from grove import ADMIN_PASSWORD, FAST_HASH, GROVE, ROOT, Grove, admin_headers, eventually, main

BROWSER = os.path.join(ROOT, "tests", "browser")
g = None


def test_console_in_chromium():
    global g
    assert os.path.isdir(os.path.join(BROWSER, "node_modules", "playwright-core")), \
        "run scripts/setup.sh test (npm install in tests/browser)"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "run scripts/setup.sh test (Debian's chromium)"
    g = Grove("--gate-refresh", "200ms", "--flow-window", "1m", "--flow-slide", "1m", "--flow-lateness", "0s",
              "--rate-anonymous", "0", *FAST_HASH)
    admin_headers(g, "admin@example.com")  # makes the admin
    out = subprocess.run([GROVE, "key", "add", "console-test", "--scopes", "write", "--data-dir", g.data_dir],
                         capture_output=True, text=True, check=True)
    key = out.stdout.split()[1]
    eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200, what="key")
    minute = 60 * 10**9
    t0 = time.time_ns() // minute * minute - 5 * minute
    r = g.request("POST", "/api/v1/flow/readings", headers={"X-API-Key": key, "Content-Type": "application/json"},
                  body=('{"readings":[{"station":"web-1","region":"plaza","time":%d,"pm25":5}]}' % (t0 // 10**9)).encode())
    assert r.status == 200, r.body
    env = dict(os.environ, GROVE_URL="http://127.0.0.1:%d" % g.port, GROVE_EMAIL="admin@example.com",
               GROVE_PASSWORD=ADMIN_PASSWORD, GROVE_WRITE_KEY=key, GROVE_T0=str(t0), CHROMIUM=chromium,
               ARTIFACTS=os.environ.get("ARTIFACTS", os.path.join(ROOT, "build", "browser-artifacts")))
    run = subprocess.run(["node", os.path.join(BROWSER, "console.test.js")], env=env, capture_output=True,
                         text=True, timeout=120)
    sys.stdout.write(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr + "\n--- grove ---\n" + g.output()[-3000:]


if __name__ == "__main__":
    main(globals())
