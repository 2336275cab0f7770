"""A full disk under a real grove: the data dir on a small tmpfs is filled
until writes are refused (503, and /ready says which component and why),
space is freed, more writes are acknowledged, grove is killed with
SIGKILL and started again, and every acknowledged point must be there
once. Mounting a tmpfs needs root (CI runs as root); otherwise the test
says why it is skipped."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse

from grove import FAST_HASH, GROVE, Grove, Postgres, eventually, run, stop_all

SERIES = "disk,host=full v"


def key(data_dir, scopes):
    out = subprocess.run([GROVE, "key", "add", "k-" + scopes, "--scopes", scopes, "--data-dir", data_dir],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def read_all(g, k):
    """Every point of SERIES, page by page (metadata.next is the next from)."""
    pts, frm = [], None
    while True:
        q = {"series": SERIES}
        if frm is not None:
            q["from"] = frm
        r = g.request("GET", "/api/v1/series/points?" + urllib.parse.urlencode(q), headers={"X-API-Key": k})
        assert r.status == 200, r.body
        body = r.json()
        pts += body["data"]["points"]
        frm = (body.get("metadata") or {}).get("next")
        if frm is None:
            return pts


def fill(mnt, leave, name="filler"):
    """A file that leaves about `leave` bytes free on the mount (0: none,
    written until the disk refuses)."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    path = os.path.join(mnt, name)
    with open(path, "wb", buffering=0) as f:
        f.write(b"\0" * max(0, free - leave))
        if not leave:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
    return path


def full_disk(*flush, restart_full=False):
    """The scenario with these flush options; see the module's doc."""
    if os.geteuid() != 0:
        print("  (skipped: mounting a small tmpfs needs root; CI runs as root)")
        return
    tmp = tempfile.mkdtemp(prefix="grove-full-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "grove-full", mnt], capture_output=True, text=True)
    if m.returncode != 0:
        shutil.rmtree(tmp)
        print("  (skipped: cannot mount a tmpfs here: %s)" % m.stderr.strip())
        return
    g = g2 = None
    try:
        data = os.path.join(mnt, "data")
        k = key(data, "read,write")
        g = Grove(*FAST_HASH, *flush, data_dir=data)
        h = {"X-API-Key": k}
        eventually(lambda: g.request("GET", "/auth/me", headers=h).status == 200, what="key loaded")
        acked, refused = [], 0
        n = [0]

        def batch():
            """A batch of 500 points at fresh timestamps; True when acknowledged."""
            i = n[0]
            n[0] += 1
            body = "".join("disk,host=full v=%d %d\n" % (i * 500 + j, (i * 500 + j) * 1000)
                           for j in range(500)).encode()
            r = g.request("POST", "/api/v1/write", body=body, headers=h)
            assert r.status in (204, 503), (r.status, r.body)
            if r.status == 204:
                acked.append(i)
            return r.status == 204

        assert batch()
        filler = fill(mnt, 64 * 1024)
        # until the disk is full: refused, and /ready says why
        for _ in range(400):
            if not batch():
                refused += 1
                break
        assert refused, "the disk never filled"
        status, ready = g.get_json("/ready")
        assert status == 503, ready
        series = ready["details"]["checks"]["series"]
        assert series["ok"] is False and "No space left on device" in series["error"], series
        assert "series" in ready["details"]["down"] and "series" in ready["message"], ready
        for _ in range(5):  # more writes on the full disk: each answered, none half-written
            batch()
        fillers = [filler]
        if restart_full:
            # Points acknowledged, then not a byte left: their flush (every
            # second) cannot move them into chunks, and they wait set aside.
            # (Should a flush slip in between the answer and the last byte,
            # there is nothing left to move: room is made and it goes again.)
            def chunks_refused():
                if os.path.exists(os.path.join(mnt, "filler2")):
                    os.unlink(os.path.join(mnt, "filler2"))
                assert eventually(batch, what="a write acknowledged")
                fill(mnt, 0, "filler2")
                try:
                    return eventually(lambda: "series chunks" in (
                        g.get_json("/ready")[1].get("details", {}).get("checks", {}).get("series", {})
                        .get("error") or ""), timeout=4, what="/ready naming the chunks")
                except AssertionError:
                    return False
            os.unlink(filler)
            fillers = [os.path.join(mnt, "filler2")]
            eventually(chunks_refused, timeout=60, interval=0, what="a flush refused for lack of room")
            g.proc.send_signal(signal.SIGKILL)
            g.proc.wait()
            assert os.path.exists(os.path.join(data, "series", "series.wal.old"))  # points set aside
            x, g = g, Grove(*FAST_HASH, *flush, data_dir=data)
            x.log.close()
            shutil.rmtree(x.tmp, ignore_errors=True)
            status, ready = g.get_json("/ready")
            assert status == 503 and "series chunks" in ready["details"]["checks"]["series"]["error"], ready
            got = {p[0] for p in read_all(g, k)}
            assert all((i * 500 + j) * 1000 in got for i in acked for j in range(500))
        # space again: writes are acknowledged, /ready recovers by itself
        for f in fillers:
            os.unlink(f)
        eventually(batch, what="a write acknowledged after space was freed")
        for _ in range(20):
            assert batch()
        eventually(lambda: g.request("GET", "/ready").status == 200, timeout=20, what="/ready back to 200")
        g.proc.send_signal(signal.SIGKILL)
        g.proc.wait()
        g2 = Grove(*FAST_HASH, data_dir=data)
        got = read_all(g2, k)
        have = {p[0] for p in got}
        assert len(have) == len(got), "a point came back twice"
        for i in acked:
            for j in range(500):
                assert (i * 500 + j) * 1000 in have, "acknowledged batch %d lost point %d" % (i, j)
        for p in got:
            assert p[1] == p[0] // 1000, p
        assert "torn tail" not in g2.output(), g2.output()[-2000:]
        x, g2 = g2, None
        x.stop()  # cleanly, and no sanitizer report
    finally:
        for x in (g, g2):
            if x is None:
                continue
            if x.proc.poll() is None:
                x.proc.kill()
                x.proc.wait()
            x.log.close()
            shutil.rmtree(x.tmp, ignore_errors=True)
        subprocess.run(["umount", mnt])
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_full_disk_loses_no_acknowledged_point():
    """Points move into chunks every second: the chunks' writes meet the
    full disk too."""
    full_disk("--series-flush", "1s")


def test_a_full_disk_loses_nothing_with_the_default_flush():
    """The default flush (10 minutes): everything waits in the log."""
    full_disk()


def test_a_restart_on_a_still_full_disk():
    """Killed while the disk is full and points wait set aside (their
    flush refused): grove starts again on the full disk, says why on
    /ready, and once there is room moves them and clears."""
    full_disk("--series-flush", "1s", restart_full=True)


def test_postgresql_trouble_shows_on_ready_and_clears():
    """With the series in PostgreSQL, a COPY that fails (the server gone)
    is refused and named on /ready; once PostgreSQL is back the next
    write works and /ready clears by itself."""
    pg = Postgres()
    g = None
    try:
        g = Grove("--store", pg.url, "--gate-refresh", "200ms", *FAST_HASH)
        k = subprocess.run([GROVE, "key", "add", "rw", "--scopes", "read,write", "--data-dir", g.data_dir,
                            "--store", pg.url], capture_output=True, text=True).stdout.split()[1]
        h = {"X-API-Key": k}
        eventually(lambda: g.request("GET", "/auth/me", headers=h).status == 200, what="key loaded")
        assert g.request("POST", "/api/v1/write", body=b"pgdisk v=1 1000\n", headers=h).status == 204
        pg.halt()
        r = g.request("POST", "/api/v1/write", body=b"pgdisk v=2 2000\n", headers=h)
        assert r.status == 503, r.body
        status, ready = g.get_json("/ready")
        assert status == 503 and ready["details"]["checks"]["series"]["ok"] is False, ready
        assert "series points in PostgreSQL" in ready["details"]["checks"]["series"]["error"], ready
        pg.resume()
        eventually(lambda: g.request("POST", "/api/v1/write", body=b"pgdisk v=3 3000\n", headers=h).status == 204,
                   what="a write after PostgreSQL came back")
        eventually(lambda: g.request("GET", "/ready").status == 200, what="/ready back to 200")
        r = g.request("GET", "/api/v1/series/points?series=pgdisk%20v", headers=h)
        assert r.status == 200, (r.status, r.body)
        assert [p[0] for p in r.json()["data"]["points"]] == [1000, 3000], r.body
    finally:
        stop_all(g, pg)


if __name__ == "__main__":
    run([test_a_full_disk_loses_no_acknowledged_point, test_a_full_disk_loses_nothing_with_the_default_flush,
         test_a_restart_on_a_still_full_disk, test_postgresql_trouble_shows_on_ready_and_clears])
    sys.exit(0)
