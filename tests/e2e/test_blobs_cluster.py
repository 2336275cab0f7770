"""Blobs and resumable uploads on the scale-out path: two grove instances
sharing one PostgreSQL store (records, tus write locks, quotas) and one
blob folder (--blobs-dir: contents, the tus spool), each with a data
directory of its own. An upload started on one instance resumes on the
other; a PATCH on each at once gets 423 on one, also after the other
restarted; an upload in flight on one survives the other's start (which
cleans up only its own temporary files); deduplication and quotas hold
across both; every blob downloads (whole and ranged) from either.

Redis is not on this path: the tus locks and the quota counters live in
the store (docs/blobs.md)."""

import hashlib
import os
import shutil
import subprocess
import tempfile

from grove import GROVE, Grove, Postgres, eventually, read_response, run, stop_all
from test_tus import content_sha, create, h, head, patch

MIB = 1 << 20
pg = a = b = None
SHARED = None
TMP = None
B_DATA = None


def setup():
    global pg, a, b, SHARED, TMP, B_DATA
    pg = Postgres()
    TMP = tempfile.mkdtemp(prefix="grove-blobs-cluster-")
    SHARED = ["--store", pg.url, "--blobs-dir", os.path.join(TMP, "blobs"),
              "--blobs-quota-bytes", "4m", "--upload-checkpoint", "1m",
              "--rate-key", "0", "--rate-global", "0"]
    B_DATA = os.path.join(TMP, "b-data")
    a = Grove(*SHARED, wait=False)
    b = Grove(*SHARED, data_dir=B_DATA, wait=False)
    a.wait_listening()
    b.wait_listening()


def teardown():
    try:
        stop_all(a, b, pg)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


def restart_b():
    """Stops b and starts it again on the same data directory."""
    global b
    b.stop()
    b = Grove(*SHARED, data_dir=B_DATA)


def _key(name):
    out = subprocess.run([GROVE, "key", "add", name, "--scopes", "read,write", "--store", pg.url],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def offset_of(srv, loc, k):
    r = head(srv, loc, k)
    assert r.status == 200, r.status
    return int(r.header("Upload-Offset"))


def upload(srv, data, k, name="f.bin"):
    return srv.request("POST", "/api/v1/blobs?name=" + name, body=data,
                       headers={"X-API-Key": k, "Content-Type": "application/octet-stream"}, timeout=60)


def ranged(srv, blob, k, first, last):
    r = srv.request("GET", "/api/v1/blobs/%s/content" % blob,
                    headers={"X-API-Key": k, "Range": "bytes=%d-%d" % (first, last)}, timeout=60)
    assert r.status == 206, r.status
    return r.body


def open_patch(srv, loc, k, offset, total, first):
    """A PATCH announcing `total` bytes of which only `first` are sent."""
    s = srv.connect(timeout=30)
    s.sendall(("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\nTus-Resumable: 1.0.0\r\n"
               "Upload-Offset: %d\r\nContent-Type: application/offset+octet-stream\r\n"
               "Content-Length: %d\r\n\r\n" % (loc, k, offset, total)).encode() + first)
    return s


def test_an_upload_started_on_one_instance_resumes_on_the_other():
    k = _key("resumer")
    data = os.urandom(3 * MIB + 12345)
    loc = create(a, len(data), k, Upload_Metadata="filename YS5iaW4=")
    assert patch(a, loc, 0, data[:MIB], k).status == 204
    assert offset_of(b, loc, k) == MIB
    # the wrong offset on b is 409, as on a
    r = patch(b, loc, 5, data[5:MIB], k)
    assert r.status == 409, r.status
    r = patch(b, loc, MIB, data[MIB:], k)
    assert r.status == 204, (r.status, r.body)
    blob = r.header("Upload-Blob")
    assert blob, "no blob named"
    ra = head(a, loc, k)
    assert ra.header("Upload-Blob") == blob and int(ra.header("Upload-Offset")) == len(data)
    want = hashlib.sha256(data).hexdigest()
    assert content_sha(a, blob, k) == want
    assert content_sha(b, blob, k) == want
    assert ranged(a, blob, k, MIB - 3, MIB + 4) == data[MIB - 3:MIB + 5]
    assert ranged(b, blob, k, len(data) - 10, len(data) - 1) == data[-10:]


def test_a_patch_on_each_instance_at_once_one_is_423_also_after_a_restart():
    k = _key("racer")
    data = os.urandom(2 * MIB)
    loc = create(b, len(data), k)
    s = open_patch(a, loc, k, 0, len(data), data[:MIB])
    try:
        # a holds the lock once its first MiB is durable (checkpoint 1m):
        # wait for that, seen from b
        eventually(lambda: offset_of(b, loc, k) == MIB, what="a's first MiB durable")
        r = patch(b, loc, MIB, data[MIB:], k)
        assert r.status == 423, (r.status, r.body)
        # b's next life frees only the locks of its own data directory
        restart_b()
        r = patch(b, loc, MIB, data[MIB:], k)
        assert r.status == 423, (r.status, r.body)
        assert b.request("DELETE", loc, headers=h(k)).status == 423
        s.sendall(data[MIB:])
        r = read_response(s)
        assert r.status == 204, (r.status, r.body)
        blob = r.header("Upload-Blob")
    finally:
        s.close()
    assert offset_of(b, loc, k) == len(data)
    assert content_sha(b, blob, k) == hashlib.sha256(data).hexdigest()


def test_an_upload_in_flight_on_one_survives_the_other_starting():
    k = _key("steady")
    data = os.urandom(3 * MIB)
    mine = open(os.path.join(a.data_dir, "blobs.instance")).read().strip()
    tmp = os.path.join(TMP, "blobs", "tmp", mine)
    s = a.connect(timeout=60)
    s.sendall(("POST /api/v1/blobs?name=steady.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (k, len(data))).encode() + data[:2 * MIB])
    try:
        # a's temporary file holds the first MiB (the ring writes whole MiBs)
        eventually(lambda: any(os.path.getsize(os.path.join(tmp, f)) >= MIB for f in os.listdir(tmp)),
                   what="a's temporary file on disk")
        restart_b()
        s.sendall(data[2 * MIB:])
        r = read_response(s)
        assert r.status == 201, (r.status, r.body)
        blob = r.json()["data"]["id"]
    finally:
        s.close()
    assert content_sha(b, blob, k) == hashlib.sha256(data).hexdigest()


def test_deduplication_and_quotas_hold_across_instances():
    k = _key("saver")
    other = _key("saver-too")
    data = os.urandom(3 * MIB)
    sha = hashlib.sha256(data).hexdigest()
    r1 = upload(a, data, k)
    assert r1.status == 201, (r1.status, r1.body)
    r2 = upload(b, data, other)  # another owner, the other instance: one content
    assert r2.status == 201, (r2.status, r2.body)
    assert r1.json()["data"]["sha256"] == r2.json()["data"]["sha256"] == sha
    assert pg.psql("SELECT refs FROM blobs_content WHERE sha256 = '%s'" % sha) == "2"
    files = [f for _, _, fs in os.walk(os.path.join(TMP, "blobs")) for f in fs if f == sha]
    assert len(files) == 1, files
    # the first blob's delete on b leaves the bytes to the second
    assert b.request("DELETE", "/api/v1/blobs/" + r1.json()["data"]["id"],
                     headers={"X-API-Key": k}).status == 204
    assert pg.psql("SELECT refs FROM blobs_content WHERE sha256 = '%s'" % sha) == "1"
    assert content_sha(a, r2.json()["data"]["id"], other) == sha
    # the quota (4 MiB) counts what k keeps on both instances
    assert upload(b, os.urandom(3 * MIB), k).status == 201
    r = upload(a, os.urandom(2 * MIB), k)
    assert r.status == 507 and r.json()["error_code"] == "QUOTA_EXCEEDED", (r.status, r.body)
    r = b.request("POST", "/api/v1/uploads", headers=h(k, Upload_Length=str(2 * MIB)))
    assert r.status == 507, (r.status, r.body)
    assert upload(a, os.urandom(MIB), k).status == 201
    r = upload(b, b"x", k)
    assert r.status == 507, (r.status, r.body)
    _, usage = a.get_json("/api/v1/blobs/usage", headers={"X-API-Key": k})
    assert usage["data"]["bytes"] == 4 * MIB, usage
    # a tus upload whose blob would pass the quota: refused when it
    # completes on the other instance, as a plain upload is
    loc = create(a, MIB, other)
    assert upload(b, os.urandom(MIB // 2), other).status == 201
    r = patch(b, loc, 0, os.urandom(MIB), other)
    assert r.status == 507, (r.status, r.body)


if __name__ == "__main__":
    setup()
    try:
        run([v for n, v in list(globals().items()) if n.startswith("test_")])
    finally:
        teardown()
