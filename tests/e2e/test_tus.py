"""Resumable uploads (tus 1.0.0) end to end on a real grove: discovery,
creation (with and without a first chunk), HEAD and PATCH, the edge cases
(wrong offset, wrong content type, malformed headers, wrong checksum: 460
and the chunk discarded, two PATCHes at once: 423), termination, expiry
with a short --upload-expiry and the sweep, concatenation of parts sent
out of order and in parallel, another owner's upload, restart and kill -9
mid-PATCH then resume from the last durable offset with the blob's
SHA-256 matching; and the real client: tus-js-client in Node uploading a
200 MiB file with parallelUploads: 3, grove killed -9 halfway and
restarted, the upload resumed to completion."""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from grove import GROVE, ROOT, Grove, eventually, main, read_response, stop_all

g = None
KEY = None
OTHER = None
TUS = {"Tus-Resumable": "1.0.0"}
NOLIMIT = ["--rate-key", "0", "--rate-global", "0"]
OPTS = ["--upload-checkpoint", "1m"] + NOLIMIT


def key(data_dir, name, scopes="read,write"):
    out = subprocess.run([GROVE, "key", "add", name, "--scopes", scopes, "--data-dir", data_dir],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def setup():
    global g, KEY, OTHER
    g = Grove(*OPTS)
    KEY = key(g.data_dir, "uploader")
    OTHER = key(g.data_dir, "someone-else")


def h(k=None, **extra):
    out = dict(TUS)
    out["X-API-Key"] = k or KEY
    for name, v in extra.items():
        out[name.replace("_", "-")] = v
    return out


def create(srv, length, k=None, **extra):
    r = srv.request("POST", "/api/v1/uploads", headers=h(k, Upload_Length=str(length), **extra))
    assert r.status == 201, (r.status, r.body)
    loc = r.header("Location")
    assert loc.startswith("/api/v1/uploads/"), loc
    return loc


def patch(srv, loc, offset, data, k=None, **extra):
    return srv.request("PATCH", loc, body=data,
                       headers=h(k, Upload_Offset=str(offset),
                                 Content_Type="application/offset+octet-stream", **extra))


def head(srv, loc, k=None, headers=None):
    """HEAD: the answer has headers only, whatever its Content-Length says."""
    s = srv.connect(timeout=10)
    hdrs = {"Host": "127.0.0.1", "Connection": "close"}
    hdrs.update(h(k) if headers is None else headers)
    s.sendall(("HEAD %s HTTP/1.1\r\n" % loc + "".join("%s: %s\r\n" % kv for kv in hdrs.items())
               + "\r\n").encode())
    r = read_response(s, head_only=True)
    s.close()
    return r


def offset_of(srv, loc):
    r = head(srv, loc)
    assert r.status == 200, r.status
    return int(r.header("Upload-Offset"))


def sha256_b64(data):
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def content_sha(srv, blob, k):
    """The SHA-256 (hex) of blob's bytes as the blob store's download route
    sends them, hashed as they come (a 200 MiB body is not gathered)."""
    s = srv.connect(timeout=120)
    s.sendall(("GET /api/v1/blobs/%s/content HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\n"
               "Connection: close\r\n\r\n" % (blob, k)).encode())
    r = read_response(s, head_only=True)
    assert r.status == 200, r.status
    n = int(r.header("Content-Length"))
    sha = hashlib.sha256(r.rest)
    got = len(r.rest)
    while got < n:
        chunk = s.recv(1 << 20)
        assert chunk, "the download ended early"
        sha.update(chunk)
        got += len(chunk)
    s.close()
    return sha.hexdigest()


def blob_sha(srv, loc, k=None):
    """The SHA-256 (hex) of the blob a finished upload became."""
    r = head(srv, loc, k=k)
    assert r.status == 200, r.status
    blob = r.header("Upload-Blob")
    assert blob, "the finished upload names no blob"
    return content_sha(srv, blob, k or KEY)


def data_file(srv, loc):
    """Where a partial upload's bytes are: the blob store's spool folder."""
    return os.path.join(srv.data_dir, "blobs", "spool", loc.rsplit("/", 1)[1])


# ---- the protocol --------------------------------------------------------------------------

def test_options_names_version_extensions_and_limits():
    r = g.request("OPTIONS", "/api/v1/uploads")
    assert r.status == 204, r.status
    assert r.header("Tus-Version") == "1.0.0"
    assert r.header("Tus-Extension") == \
        "creation,creation-with-upload,checksum,termination,expiration,concatenation"
    assert int(r.header("Tus-Max-Size")) > 0
    assert r.header("Tus-Checksum-Algorithm") == "sha256"


def test_an_upload_in_three_chunks_becomes_a_blob():
    data = os.urandom(300_000)
    meta = "filename " + base64.b64encode(b"notes.bin").decode() + ",private"
    loc = create(g, len(data), Upload_Metadata=meta)
    r = head(g, loc)
    assert r.status == 200
    assert r.header("Upload-Offset") == "0"
    assert r.header("Upload-Length") == str(len(data))
    assert r.header("Upload-Metadata") == meta
    assert r.header("Cache-Control") == "no-store"
    assert r.header("Tus-Resumable") == "1.0.0"
    assert r.header("Upload-Expires", ).endswith(" GMT")
    for start in (0, 100_000, 200_000):
        r = patch(g, loc, start, data[start:start + 100_000])
        assert r.status == 204, (r.status, r.body)
        assert r.header("Upload-Offset") == str(start + 100_000)
    assert offset_of(g, loc) == len(data)
    assert blob_sha(g, loc) == hashlib.sha256(data).hexdigest()
    assert not os.path.exists(data_file(g, loc)), "the data file moved into the blob store"


def test_creation_with_upload_takes_the_first_chunk():
    data = b"first chunk|" + os.urandom(5000)
    r = g.request("POST", "/api/v1/uploads", body=data[:12],
                  headers=h(Upload_Length=str(len(data)),
                            Content_Type="application/offset+octet-stream"))
    assert r.status == 201, (r.status, r.body)
    assert r.header("Upload-Offset") == "12"
    loc = r.header("Location")
    assert patch(g, loc, 12, data[12:]).status == 204
    assert blob_sha(g, loc) == hashlib.sha256(data).hexdigest()


def test_a_wrong_offset_is_409_and_nothing_is_written():
    loc = create(g, 100)
    assert patch(g, loc, 0, b"a" * 10).status == 204
    r = patch(g, loc, 5, b"b" * 10)
    assert r.status == 409, r.status
    assert r.json()["error_code"] == "OFFSET_MISMATCH"
    assert r.json()["details"]["offset"] == 10
    assert r.header("Tus-Resumable") == "1.0.0"
    assert offset_of(g, loc) == 10
    assert patch(g, loc, 10, b"b" * 91).status == 413  # past Upload-Length
    assert offset_of(g, loc) == 10


def test_malformed_headers_are_400_with_the_envelope():
    loc = create(g, 100)
    cases = [
        ("POST", "/api/v1/uploads", h(Upload_Length="-1"), 400, "Upload-Length"),
        ("POST", "/api/v1/uploads", h(Upload_Length="10", Upload_Metadata="a YQ,b"), 400, "Upload-Metadata"),
        ("POST", "/api/v1/uploads", h(Upload_Length="10", Upload_Concat="whole"), 400, "Upload-Concat"),
        ("POST", "/api/v1/uploads", h(Upload_Defer_Length="2"), 400, "Upload-Defer-Length"),
        ("POST", "/api/v1/uploads", h(), 400, "Upload-Length"),
        ("POST", "/api/v1/uploads", h(Upload_Length="99999999999999"), 413, "Upload-Length"),
        ("PATCH", loc, h(Upload_Offset="1x", Content_Type="application/offset+octet-stream"), 400,
         "Upload-Offset"),
        ("PATCH", loc, h(Upload_Offset="0", Content_Type="application/offset+octet-stream",
                         Upload_Checksum="md5 1B2M2Y8AsgTpgAmY7PhCfg=="), 400, "Upload-Checksum"),
        ("PATCH", loc, h(Upload_Offset="0", Content_Type="application/offset+octet-stream",
                         Upload_Checksum="sha256 nope"), 400, "Upload-Checksum"),
    ]
    for method, path, headers, status, header in cases:
        r = g.request(method, path, body=b"", headers=headers)
        assert r.status == status, (method, headers, r.status, r.body)
        body = r.json()
        assert body["status"] == "error" and body["error_code"], body
        assert body["details"]["header"] == header, body
        assert r.header("Tus-Resumable") == "1.0.0"
    # no Tus-Resumable, or another version: 412 with Tus-Version
    r = head(g, loc, headers={"X-API-Key": KEY})
    assert r.status == 412 and r.header("Tus-Version") == "1.0.0"
    r = g.request("PATCH", loc, body=b"x", headers={"X-API-Key": KEY, "Tus-Resumable": "0.2.2",
                                                   "Upload-Offset": "0",
                                                   "Content-Type": "application/offset+octet-stream"})
    assert r.status == 412, r.status
    # a PATCH body of another type: 415
    r = g.request("PATCH", loc, body=b"x", headers=h(Upload_Offset="0", Content_Type="text/plain"))
    assert r.status == 415, r.status
    assert offset_of(g, loc) == 0


def test_a_wrong_checksum_is_460_and_the_chunk_discarded():
    data = os.urandom(4096)
    loc = create(g, 2 * len(data))
    r = patch(g, loc, 0, data, Upload_Checksum=sha256_b64(b"something else"))
    assert r.status == 460, (r.status, r.body)
    assert r.json()["error_code"] == "CHECKSUM_MISMATCH"
    assert offset_of(g, loc) == 0
    assert os.path.getsize(data_file(g, loc)) == 0
    r = patch(g, loc, 0, data, Upload_Checksum=sha256_b64(data))
    assert r.status == 204, r.status
    assert offset_of(g, loc) == len(data)


def test_another_owner_sees_nothing():
    loc = create(g, 10)
    assert head(g, loc, k=OTHER).status == 404
    assert patch(g, loc, 0, b"x", k=OTHER).status == 404
    assert g.request("DELETE", loc, headers=h(OTHER)).status == 404
    assert head(g, loc).status == 200
    assert head(g, loc, headers=TUS).status == 401


def test_termination_removes_the_upload():
    loc = create(g, 10)
    assert patch(g, loc, 0, b"12345").status == 204
    r = g.request("DELETE", loc, headers=h())
    assert r.status == 204, r.status
    assert head(g, loc).status == 404
    assert not os.path.exists(data_file(g, loc))
    assert patch(g, loc, 5, b"67890").status == 404


def open_patch(srv, loc, offset, total, first):
    """A PATCH announcing `total` bytes of which only `first` are sent:
    the socket stays open, the request unfinished."""
    s = srv.connect(timeout=30)
    head_lines = ("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\nTus-Resumable: 1.0.0\r\n"
                  "Upload-Offset: %d\r\nContent-Type: application/offset+octet-stream\r\n"
                  "Content-Length: %d\r\n\r\n" % (loc, KEY, offset, total))
    s.sendall(head_lines.encode() + first)
    return s


def test_two_patches_at_once_one_is_423():
    data = os.urandom(2 << 20)
    loc = create(g, len(data))
    s = open_patch(g, loc, 0, len(data), data[:1 << 20])
    try:
        # the first PATCH holds the lock once its first MiB is durable (the
        # checkpoint is 1m): wait for that, never for a moment to pass
        eventually(lambda: offset_of(g, loc) == 1 << 20, what="the first PATCH's first MiB durable")
        r = patch(g, loc, 1 << 20, data[1 << 20:])
        assert r.status == 423, (r.status, r.body)
        assert r.json()["error_code"] == "UPLOAD_LOCKED"
        s.sendall(data[1 << 20:])
        r = read_response(s)
        assert r.status == 204, (r.status, r.body)
    finally:
        s.close()
    assert offset_of(g, loc) == len(data)


def test_concatenation_of_parts_sent_out_of_order_and_in_parallel():
    parts = [os.urandom(n) for n in (700_001, 300_000, 1 << 20)]
    locs = [create(g, len(p), Upload_Concat="partial") for p in parts]
    r = head(g, locs[0])
    assert r.header("Upload-Concat") == "partial"
    # the last part first, then the other two together
    assert patch(g, locs[2], 0, parts[2]).status == 204
    results = {}

    def send(i):
        results[i] = patch(g, locs[i], 0, parts[i]).status
    threads = [threading.Thread(target=send, args=(i,)) for i in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: 204, 1: 204}, results
    # an unfinished part is refused
    half = create(g, 10, Upload_Concat="partial")
    r = g.request("POST", "/api/v1/uploads", headers=h(Upload_Concat="final;" + half))
    assert r.status == 400 and r.json()["error_code"] == "INVALID_CONCATENATION", r.body
    # parts named by absolute and relative URLs
    urls = ["http://127.0.0.1:%d%s" % (g.port, locs[0])] + locs[1:]
    r = g.request("POST", "/api/v1/uploads", headers=h(Upload_Concat="final;" + " ".join(urls)))
    assert r.status == 201, (r.status, r.body)
    final = r.header("Location")
    r = head(g, final)
    assert r.status == 200
    assert r.header("Upload-Length") == r.header("Upload-Offset") == str(sum(map(len, parts)))
    assert r.header("Upload-Concat") == "final;" + " ".join(locs)
    assert blob_sha(g, final) == hashlib.sha256(b"".join(parts)).hexdigest()
    # a final upload takes no PATCH
    assert patch(g, final, 0, b"x").status == 403
    # a final of one part is that part (linked, not copied); the parts stay
    # and may be named again
    r = g.request("POST", "/api/v1/uploads", headers=h(Upload_Concat="final;" + locs[2]))
    assert r.status == 201, (r.status, r.body)
    assert blob_sha(g, r.header("Location")) == hashlib.sha256(parts[2]).hexdigest()
    assert head(g, locs[2]).status == 200
    r = g.request("POST", "/api/v1/uploads", headers=h(Upload_Concat="final;" + " ".join(locs)))
    assert r.status == 201, (r.status, r.body)
    assert blob_sha(g, r.header("Location")) == hashlib.sha256(b"".join(parts)).hexdigest()


def test_expired_uploads_are_refused_then_swept():
    srv = Grove("--upload-expiry", "1s", "--upload-sweep", "100ms", *OPTS)
    try:
        k = key(srv.data_dir, "expiring")
        loc = create(srv, 100, k=k)
        assert patch(srv, loc, 0, b"x" * 10, k=k).status == 204
        path = data_file(srv, loc)
        assert os.path.exists(path)
        eventually(lambda: head(srv, loc, k=k).status == 404, what="the upload to expire")
        eventually(lambda: not os.path.exists(path), what="the sweep to remove its data")
        assert patch(srv, loc, 10, b"y", k=k).status == 404
    finally:
        srv.stop()


# ---- restart and kill -9 mid-upload -------------------------------------------------------------

def test_a_final_after_kill_9_mid_parts_is_the_file():
    """Parts created in order (so hashed ahead as they arrive, in that
    order), the first sent whole, the second cut by a SIGKILL once some of
    it is durable: after the restart the hashing ahead is gone with the
    process, the rest of the parts are sent (the third before the second's
    rest), and the final's blob is still the file's SHA-256."""
    srv = Grove(*OPTS)
    srv2 = None
    try:
        k = key(srv.data_dir, "parts-killed")
        parts = [os.urandom(n) for n in (3 << 20, 6 << 20, (2 << 20) + 5)]
        locs = [create(srv, len(p), k=k, Upload_Concat="partial") for p in parts]
        assert patch(srv, locs[0], 0, parts[0], k=k).status == 204
        s = srv.connect(timeout=30)
        s.sendall(("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\nTus-Resumable: 1.0.0\r\n"
                   "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                   "Content-Length: %d\r\n\r\n" % (locs[1], k, len(parts[1]))).encode())
        s.sendall(parts[1][:4 << 20])
        eventually(lambda: offset_of_k(srv, locs[1], k) >= (1 << 20), timeout=30,
                   what="1 MiB of the second part durable")
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        srv._stopped = True
        srv.log.close()
        s.close()
        srv2 = Grove(*OPTS, data_dir=srv.data_dir)
        assert patch(srv2, locs[2], 0, parts[2], k=k).status == 204
        resume = offset_of_k(srv2, locs[1], k)
        assert (1 << 20) <= resume <= (4 << 20), resume
        assert patch(srv2, locs[1], resume, parts[1][resume:], k=k).status == 204
        r = srv2.request("POST", "/api/v1/uploads", headers=h(k, Upload_Concat="final;" + " ".join(locs)))
        assert r.status == 201, (r.status, r.body)
        assert blob_sha(srv2, r.header("Location"), k=k) == hashlib.sha256(b"".join(parts)).hexdigest()
        # parts created after the restart are hashed ahead again: a final of
        # them, and one naming them in another order, are their files too
        more = [os.urandom(n) for n in ((1 << 20) + 7, 2 << 20)]
        mlocs = [create(srv2, len(p), k=k, Upload_Concat="partial") for p in more]
        for loc, p in zip(mlocs, more):
            assert patch(srv2, loc, 0, p, k=k).status == 204
        for order in ((0, 1), (1, 0)):
            r = srv2.request("POST", "/api/v1/uploads",
                             headers=h(k, Upload_Concat="final;" + " ".join(mlocs[i] for i in order)))
            assert r.status == 201, (r.status, r.body)
            want = hashlib.sha256(b"".join(more[i] for i in order)).hexdigest()
            assert blob_sha(srv2, r.header("Location"), k=k) == want
    finally:
        stop_all(srv2)
        if not srv._stopped:
            srv.stop()
        shutil.rmtree(srv.tmp, ignore_errors=True)


def interrupted_upload(how):
    """A 24 MiB upload whose first PATCH is cut by a SIGTERM (restart) or
    a SIGKILL once grove has made at least 8 MiB durable; after the
    restart HEAD says where to resume (never less than what a HEAD said
    before, never more than was sent), the rest is sent, and the blob is
    the file."""
    srv = Grove(*OPTS)
    srv2 = None
    try:
        k = key(srv.data_dir, "restarts")
        data = os.urandom(24 << 20)
        loc = create(srv, len(data), k=k)
        s = srv.connect(timeout=30)
        s.sendall(("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\nTus-Resumable: 1.0.0\r\n"
                   "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                   "Content-Length: %d\r\n\r\n" % (loc, k, len(data))).encode())
        sent = 16 << 20
        s.sendall(data[:sent])
        seen = eventually(lambda: (lambda o: o if o >= (8 << 20) else None)(offset_of_k(srv, loc, k)),
                          timeout=30, what="8 MiB durable")
        if how == "kill":
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            srv._stopped = True
            srv.log.close()
        else:
            srv.proc.send_signal(signal.SIGTERM)
            srv.proc.wait(30)
            srv._stopped = True
            srv.log.close()
        s.close()
        srv2 = Grove(*OPTS, data_dir=srv.data_dir)
        resume = offset_of_k(srv2, loc, k)
        assert seen <= resume <= sent, (seen, resume, sent)
        if how == "term":
            assert resume == sent or resume >= seen, resume  # what arrived before the stop is kept
        r = patch(srv2, loc, resume, data[resume:], k=k)
        assert r.status == 204, (r.status, r.body)
        assert blob_sha(srv2, loc, k=k) == hashlib.sha256(data).hexdigest()
    finally:
        stop_all(srv2)
        if not srv._stopped:
            srv.stop()
        shutil.rmtree(srv.tmp, ignore_errors=True)


def offset_of_k(srv, loc, k):
    r = head(srv, loc, k=k)
    assert r.status == 200, r.status
    return int(r.header("Upload-Offset"))


def test_restart_mid_upload_then_resume():
    interrupted_upload("term")


def test_kill_9_mid_upload_then_resume_from_the_durable_offset():
    interrupted_upload("kill")


# ---- the real client ---------------------------------------------------------------------------

NODE_DIR = os.path.join(ROOT, "tests", "browser")


def test_tus_js_client_200_mib_parallel_killed_and_resumed():
    """tus-js-client (npm, in Node) uploads a 200 MiB file in 3 parallel
    parts; grove is killed -9 once the parts hold half of it, restarted on
    the same port and data, and the client's retries resume the parts from
    their durable offsets to the end; the blob's SHA-256 is the file's."""
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "tus-js-client")):
        raise AssertionError("tus-js-client is not installed: run scripts/setup.sh test")
    port = None
    srv = Grove(*OPTS)
    srv2 = None
    client = None
    work = srv.tmp
    try:
        k = key(srv.data_dir, "tus-js")
        port = srv.port
        path = os.path.join(work, "big.bin")
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for i in range(200):
                f.write(hashlib.sha256(block + bytes([i])).digest() * 32768)
        want = hashlib.sha256(open(path, "rb").read()).hexdigest()
        progress = os.path.join(work, "progress")
        client = subprocess.Popen(
            ["node", os.path.join(ROOT, "tests", "e2e", "tus_client.js"),
             "http://127.0.0.1:%d/api/v1/uploads" % port, k, path, progress],
            cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        # the client holds each part at its half and names the parts: kill
        # -9 then, restart, and check on the restarted server that every
        # part is durable up to about its half and unfinished, then let the
        # client go on
        half = progress + ".half"
        eventually(lambda: os.path.exists(half), timeout=120, interval=0.05,
                   what="the client to send half")
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        srv._stopped = True
        srv.log.close()
        srv2 = Grove(*OPTS, "--listen", "127.0.0.1:%d" % port, data_dir=srv.data_dir)
        parts = json.loads(open(half).read())
        assert len(parts) == 3 and all(parts), parts
        durable = 0
        for url in parts:
            r = head(srv2, url.split(str(port), 1)[1], k=k)
            assert r.status == 200, r.status
            off, length = int(r.header("Upload-Offset")), int(r.header("Upload-Length"))
            assert length // 2 - (4 << 20) <= off < length, (url, off, length)
            durable += off
        assert durable < 200 << 20, durable
        open(progress + ".go", "w").close()
        out, _ = client.communicate(timeout=240)
        assert client.returncode == 0, out
        result = json.loads(out.strip().splitlines()[-1])
        assert blob_sha(srv2, result["url"].split(str(port), 1)[1], k=k) == want
    finally:
        if client and client.poll() is None:
            client.kill()
        stop_all(srv2)
        if not srv._stopped:
            srv.stop()
        shutil.rmtree(srv.tmp, ignore_errors=True)


if __name__ == "__main__":
    main(globals())
