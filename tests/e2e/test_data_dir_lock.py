"""One grove per data dir: a second `grove serve` on the same --data-dir
(SQLite store) exits non-zero with an error naming the series directory and
the pid holding it, and the first goes on serving; once the first is gone,
even by SIGKILL, a new one starts on that dir with every point there."""

import os
import shutil
import signal
import subprocess
import urllib.parse

from grove import FAST_HASH, GROVE, Grove, eventually, run, stop_all


def key(data_dir, scopes):
    out = subprocess.run([GROVE, "key", "add", "k-" + scopes, "--scopes", scopes, "--data-dir", data_dir],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def points(g, k):
    q = urllib.parse.urlencode({"series": "lock,host=a v"})
    r = g.request("GET", "/api/v1/series/points?" + q, headers={"X-API-Key": k})
    assert r.status == 200, r.body
    return [p[1] for p in r.json()["data"]["points"]]


def test_second_serve_on_the_same_data_dir_is_refused():
    a = b = None
    try:
        a = Grove("--gate-refresh", "200ms", *FAST_HASH)
        k = key(a.data_dir, "read,write")
        eventually(lambda: a.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                   what="key loaded")
        r = a.request("POST", "/api/v1/write", body=b"lock,host=a v=1 1000000000\n",
                      headers={"X-API-Key": k})
        assert r.status == 204, (r.status, r.body)
        out = subprocess.run([GROVE, "serve", "--listen", "127.0.0.1:0", "--data-dir", a.data_dir,
                              "--web-root", "", *FAST_HASH], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0, out
        series_dir = os.path.join(a.data_dir, "series")
        want = "series directory '%s' is in use by another process (pid %d)" % (series_dir, a.proc.pid)
        assert want in out.stdout + out.stderr, out.stdout + out.stderr
        # the first goes on serving: reads and writes
        assert a.request("GET", "/health").status == 200
        r = a.request("POST", "/api/v1/write", body=b"lock,host=a v=2 2000000000\n",
                      headers={"X-API-Key": k})
        assert r.status == 204, (r.status, r.body)
        assert points(a, k) == [1, 2]
        # killed with SIGKILL, it leaves no lock behind
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        a.log.close()
        a._stopped = True
        b = Grove(*FAST_HASH, data_dir=a.data_dir)
        assert points(b, k) == [1, 2]
    finally:
        stop_all(b)
        if a is not None:
            if not getattr(a, "_stopped", False):
                a.stop()
            shutil.rmtree(a.tmp, ignore_errors=True)


if __name__ == "__main__":
    run([test_second_serve_on_the_same_data_dir_is_refused])
