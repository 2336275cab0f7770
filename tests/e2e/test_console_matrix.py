"""matrix's console page (web/matrix.js) in a real browser: starts grove
with an admin and a write key (the browser test pushes hosts', VMs' and
processes' samples with it, as grove-agent would) and runs
tests/browser/matrix.test.js in Debian's Chromium with playwright-core and
axe-core (scripts/setup.sh test installs them). The browser test reads
every figure it checks from the server's own answers. Screenshots go to
$ARTIFACTS (build/browser-artifacts under CTest)."""

import os
import shutil
import subprocess
import sys

from grove import ADMIN_PASSWORD, FAST_HASH, GROVE, ROOT, Grove, admin_headers, eventually, main

BROWSER = os.path.join(ROOT, "tests", "browser")


def test_matrix_console_in_chromium():
    assert os.path.isdir(os.path.join(BROWSER, "node_modules", "playwright-core")) and \
        os.path.isdir(os.path.join(BROWSER, "node_modules", "axe-core")), \
        "run scripts/setup.sh test (npm ci in tests/browser)"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "run scripts/setup.sh test (Debian's chromium)"
    g = Grove("--rate-anonymous", "0", *FAST_HASH)
    try:
        admin_headers(g, "admin@example.com")  # makes the admin
        out = subprocess.run([GROVE, "key", "add", "matrix-console-test", "--scopes", "write", "--data-dir", g.data_dir],
                             capture_output=True, text=True, check=True)
        key = out.stdout.split()[1]
        eventually(lambda: g.request("GET", "/auth/me", headers={"X-API-Key": key}).status == 200, what="key")
        env = dict(os.environ, GROVE_URL="http://127.0.0.1:%d" % g.port, GROVE_EMAIL="admin@example.com",
                   GROVE_PASSWORD=ADMIN_PASSWORD, GROVE_WRITE_KEY=key, CHROMIUM=chromium,
                   ARTIFACTS=os.environ.get("ARTIFACTS", os.path.join(ROOT, "build", "browser-artifacts")))
        node = subprocess.run(["node", os.path.join(BROWSER, "matrix.test.js")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=280)
        sys.stdout.write(node.stdout)
        assert node.returncode == 0, node.stdout + "\n--- grove ---\n" + g.output()[-3000:]
    finally:
        g.stop()


if __name__ == "__main__":
    main(globals())
