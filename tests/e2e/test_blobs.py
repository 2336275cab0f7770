"""The blob store end to end on a real grove: uploads streamed to disk
(Content-Length and chunked), their SHA-256, downloads with ranges and
validators, owners and admins, quotas (413 and 507 with the error
envelope, before the body when its size is known), deduplication and
deletes that free the bytes; a 200 MiB upload whose resident memory stays
that of a 10 MiB one; a client that goes away, lies about its length or
stalls leaves no partial blob and no temporary file; kill -9 during an
upload leaves no partial blob, and the restart removes the temporary
file."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time

from grove import GROVE, Grove, closed_by_peer, eventually, main, read_response

g = None
OWNER = OTHER = ADMIN = None
NOLIMIT = ["--rate-key", "0", "--rate-global", "0"]


def key(srv, name, scopes):
    out = subprocess.run([GROVE, "key", "add", name, "--scopes", scopes, "--data-dir", srv.data_dir],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def setup():
    global g, OWNER, OTHER, ADMIN
    g = Grove(*NOLIMIT)
    OWNER = key(g, "owner", "read,write")
    OTHER = key(g, "other", "read,write")
    ADMIN = key(g, "admin", "read,write,admin")


def blob_dir(srv):
    return os.path.join(srv.data_dir, "blobs")


def content_files(srv):
    out = []
    for root, _, files in os.walk(blob_dir(srv)):
        rel = os.path.relpath(root, blob_dir(srv))
        if rel.split(os.sep)[0] in ("tmp", "spool"):
            continue
        out += files
    return sorted(out)


def tmp_dir(srv):
    """The folder of srv's own uploads in progress (tmp/<its data dir's id>)."""
    mine = open(os.path.join(srv.data_dir, "blobs.instance")).read().strip()
    return os.path.join(blob_dir(srv), "tmp", mine)


def tmp_files(srv):
    return os.listdir(tmp_dir(srv))


def upload(srv, k, data, name=None, ctype=None, headers=None):
    h = {"X-API-Key": k}
    if ctype:
        h["Content-Type"] = ctype
    h.update(headers or {})
    path = "/api/v1/blobs" + ("?name=" + name if name else "")
    return srv.request("POST", path, body=data, headers=h, timeout=60)


def pattern(i, n):
    """n bytes that differ per i (no accidental deduplication)."""
    seed = hashlib.sha256(b"%d" % i).digest()
    return (seed * (n // len(seed) + 1))[:n]


def stream_upload(srv, k, total, chunked=False, piece=1 << 20, extra=None):
    """Sends `total` bytes made on the fly (never all in memory); returns
    the answer and the SHA-256 sent."""
    s = srv.connect(120)
    h = "POST /api/v1/blobs?name=big.bin HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n" % k
    h += "Transfer-Encoding: chunked\r\n" if chunked else "Content-Length: %d\r\n" % total
    s.sendall((h + (extra or "") + "\r\n").encode())
    sha = hashlib.sha256()
    block = os.urandom(piece)
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        b = block[:n]
        sha.update(b)
        s.sendall(b"%x\r\n" % n + b + b"\r\n" if chunked else b)
        sent += n
    if chunked:
        s.sendall(b"0\r\n\r\n")
    r = read_response(s)
    s.close()
    return r, sha.hexdigest()


def get(srv, k, path, headers=None, method="GET"):
    h = {"X-API-Key": k}
    h.update(headers or {})
    return srv.request(method, path, headers=h, timeout=60)


def download_sha(srv, k, bid, extra=""):
    """Downloads a blob's content hashing it as it comes (the harness's
    read_response holds a body whole); returns (status, sha256, length)."""
    s = srv.connect(120)
    s.sendall(("GET /api/v1/blobs/%s/content HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n%s"
               "Connection: close\r\n\r\n" % (bid, k, extra)).encode())
    r = read_response(s, head_only=True)
    sha, n, rest = hashlib.sha256(), 0, r.rest
    want = int(r.header("Content-Length") or 0)
    while True:
        sha.update(rest)
        n += len(rest)
        if n >= want:
            break
        rest = s.recv(1 << 20)
        if not rest:
            break
    s.close()
    return r.status, sha.hexdigest(), n


def hwm_kib(srv):
    for line in open("/proc/%d/status" % srv.proc.pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# ---- uploads and downloads ---------------------------------------------------

def test_upload_then_metadata_list_and_download():
    data = pattern(1, 3 * 1024 * 1024 + 17)
    r = upload(g, OWNER, data, name="notes%20%C3%A9t%C3%A9.txt", ctype="text/plain; charset=utf-8")
    assert r.status == 201, r.body
    b = r.json()["data"]
    assert b["size"] == len(data) and b["sha256"] == hashlib.sha256(data).hexdigest()
    assert b["name"] == "notes été.txt" and b["media_type"] == "text/plain; charset=utf-8"
    assert r.header("Location") == "/api/v1/blobs/" + b["id"]
    assert r.header("ETag") == '"%s"' % b["sha256"]
    m = get(g, OWNER, "/api/v1/blobs/" + b["id"])
    assert m.status == 200 and m.json()["data"] == b
    ids = [x["id"] for x in get(g, OWNER, "/api/v1/blobs").json()["data"]]
    assert b["id"] in ids
    d = get(g, OWNER, "/api/v1/blobs/%s/content" % b["id"])
    assert d.status == 200 and d.body == data
    assert d.header("Content-Type") == "text/plain; charset=utf-8"
    assert d.header("ETag") == '"%s"' % b["sha256"]
    assert d.header("Accept-Ranges") == "bytes"
    assert d.header("Content-Disposition") == \
        "attachment; filename=\"notes _t_.txt\"; filename*=UTF-8''notes%20%C3%A9t%C3%A9.txt"
    s = g.connect(10)
    s.sendall(("HEAD /api/v1/blobs/%s/content HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n"
               % (b["id"], OWNER)).encode())
    h = read_response(s, head_only=True)
    assert h.status == 200 and h.header("Content-Length") == str(len(data)) and h.rest == b""
    s.close()


def test_chunked_upload_and_name_header():
    r, sha = stream_upload(g, OWNER, 5 * 1024 * 1024 + 3, chunked=True, piece=70000)
    assert r.status == 201, r.body
    assert r.json()["data"]["sha256"] == sha and r.json()["data"]["size"] == 5 * 1024 * 1024 + 3
    r = upload(g, OWNER, b"x", headers={"X-Blob-Name": "r%C3%A9sum%C3%A9.pdf"}, ctype="application/pdf")
    assert r.status == 201 and r.json()["data"]["name"] == "résumé.pdf"
    empty = upload(g, OWNER, b"", name="empty")
    assert empty.status == 201 and empty.json()["data"]["size"] == 0
    d = get(g, OWNER, "/api/v1/blobs/%s/content" % empty.json()["data"]["id"])
    assert d.status == 200 and d.body == b""


def test_sizes_on_the_edges_of_the_buffers():
    # the body goes through a ring of 1 MiB buffers, each hashed by one job
    # and written by another: every edge keeps every byte, once, in order
    w = 1 << 20
    for i, (n, chunked) in enumerate([(1, False), (w - 1, False), (w, False), (w + 1, True),
                                      (4 * w, False), (4 * w + 1, True), (9 * w + 12345, False),
                                      (6 * w, True)]):
        r, sha = stream_upload(g, OWNER, n, chunked=chunked, piece=65537 + i)
        assert r.status == 201, (n, r.body)
        b = r.json()["data"]
        assert b["size"] == n and b["sha256"] == sha, n
        assert download_sha(g, OWNER, b["id"]) == (200, sha, n)


def test_bad_uploads_get_the_error_envelope():
    for name in ("a%2Fb", "%01x", "%FF", "x" * 256):
        r = upload(g, OWNER, b"abc", name=name)
        assert r.status == 400 and r.json()["error_code"] == "INVALID_INPUT", (name, r.body)
    r = upload(g, OWNER, b"abc", ctype="not a type")
    assert r.status == 400, r.body
    r = upload(g, OWNER, b"abc", headers={"Content-Encoding": "gzip"})
    assert r.status == 415 and r.json()["error_code"] == "UNSUPPORTED_ENCODING"
    r = g.request("POST", "/api/v1/blobs", body=b"abc")
    assert r.status == 401
    reader = key(g, "reader", "read")
    assert upload(g, reader, b"abc").status == 403


def test_ranges_and_validators():
    data = pattern(2, 1000)
    b = upload(g, OWNER, data, name="r.bin").json()["data"]
    path = "/api/v1/blobs/%s/content" % b["id"]
    etag = '"%s"' % b["sha256"]
    cases = [("bytes=0-9", 206, data[0:10], "bytes 0-9/1000"),
             ("bytes=990-", 206, data[990:], "bytes 990-999/1000"),
             ("bytes=-5", 206, data[-5:], "bytes 995-999/1000"),
             ("bytes=-5000", 206, data, "bytes 0-999/1000"),
             ("bytes=500-99999", 206, data[500:], "bytes 500-999/1000"),
             ("bytes=0-0", 206, data[0:1], "bytes 0-0/1000"),
             ("bytes=0-1,5-6", 200, data, None),      # several: the whole file
             ("bytes=9-3", 200, data, None),          # malformed: ignored
             ("items=0-3", 200, data, None),
             ("bytes=1000-", 416, None, "bytes */1000"),
             ("bytes=-0", 416, None, "bytes */1000")]
    for rng, status, body, cr in cases:
        r = get(g, OWNER, path, {"Range": rng})
        assert r.status == status, (rng, r.status, r.body[:200])
        if body is not None:
            assert r.body == body, rng
        assert r.header("Content-Range") == cr, (rng, r.header("Content-Range"))
        if status == 416:
            assert r.json()["error_code"] == "RANGE_NOT_SATISFIABLE"
    assert get(g, OWNER, path, {"If-None-Match": etag}).status == 304
    assert get(g, OWNER, path, {"If-None-Match": 'W/' + etag}).status == 304
    assert get(g, OWNER, path, {"If-None-Match": '"other", ' + etag}).status == 304
    assert get(g, OWNER, path, {"If-None-Match": "*"}).status == 304
    assert get(g, OWNER, path, {"If-None-Match": '"other"'}).status == 200
    r = get(g, OWNER, path, {"Range": "bytes=0-3", "If-Range": etag})
    assert r.status == 206 and r.body == data[:4]
    r = get(g, OWNER, path, {"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert r.status == 200 and r.body == data


def test_a_large_download_streams_in_pieces_and_keeps_the_connection():
    size = 20 * 1024 * 1024 + 5
    r, sha = stream_upload(g, OWNER, size)
    bid = r.json()["data"]["id"]
    assert download_sha(g, OWNER, bid) == (200, sha, size)
    s = g.connect(60)
    req = "GET /api/v1/blobs/%s/content HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nRange: bytes=-3\r\n\r\n" \
        % (bid, OWNER)
    s.sendall((req + req.replace("GET", "HEAD", 1)).encode())  # pipelined
    a = read_response(s)
    assert a.status == 206 and len(a.body) == 3
    b = read_response(s, a.rest, head_only=True)
    assert b.status == 206 and b.header("Content-Length") == "3"
    s.close()


def test_owners_see_their_own_blobs_and_admins_all():
    b = upload(g, OWNER, b"mine", name="mine").json()["data"]
    for path in ("/api/v1/blobs/" + b["id"], "/api/v1/blobs/%s/content" % b["id"]):
        assert get(g, OTHER, path).status == 404
        assert get(g, ADMIN, path).status == 200
    assert b["id"] not in [x["id"] for x in get(g, OTHER, "/api/v1/blobs").json()["data"]]
    assert get(g, OTHER, "/api/v1/blobs?all=true").status == 403
    every = get(g, ADMIN, "/api/v1/blobs?all=true&limit=1000").json()["data"]
    assert b["id"] in [x["id"] for x in every]
    assert g.request("DELETE", "/api/v1/blobs/" + b["id"], headers={"X-API-Key": OTHER}).status == 404
    assert get(g, OWNER, "/api/v1/blobs/" + b["id"]).status == 200
    assert get(g, OWNER, "/api/v1/blobs/nothex").status == 404


def test_list_pages_with_before():
    k = key(g, "pager", "read,write")
    ids = [upload(g, k, pattern(100 + i, 10), name="p%d" % i).json()["data"]["id"] for i in range(5)]
    page = get(g, k, "/api/v1/blobs?limit=2").json()
    assert [x["id"] for x in page["data"]] == ids[::-1][:2]
    nxt = page["metadata"]["next_before"]
    page2 = get(g, k, "/api/v1/blobs?limit=2&before=" + nxt).json()
    assert [x["id"] for x in page2["data"]] == ids[::-1][2:4]
    assert get(g, k, "/api/v1/blobs?limit=0").status == 400


# ---- dedup and deletes ---------------------------------------------------------

def test_same_content_is_stored_once_and_the_last_delete_frees_it():
    data = pattern(3, 200000)
    sha = hashlib.sha256(data).hexdigest()
    a = upload(g, OWNER, data, name="a").json()["data"]
    b = upload(g, OTHER, data, name="b").json()["data"]
    assert a["id"] != b["id"] and a["sha256"] == b["sha256"] == sha
    assert content_files(g).count(sha) == 1
    assert g.request("DELETE", "/api/v1/blobs/" + a["id"], headers={"X-API-Key": OWNER}).status == 204
    assert get(g, OWNER, "/api/v1/blobs/" + a["id"]).status == 404
    assert sha in content_files(g)   # b still needs it
    assert get(g, OTHER, "/api/v1/blobs/%s/content" % b["id"]).body == data
    assert g.request("DELETE", "/api/v1/blobs/" + b["id"], headers={"X-API-Key": ADMIN}).status == 204
    assert sha not in content_files(g)
    assert g.request("DELETE", "/api/v1/blobs/" + b["id"], headers={"X-API-Key": ADMIN}).status == 404


# ---- limits and quotas ---------------------------------------------------------

def test_quotas_and_the_upload_limit():
    # --max-upload below the quota: whichever limit a body crosses first
    # answers, so each refusal below has one right answer
    q = Grove("--blobs-quota-bytes", "1m", "--blobs-quota-files", "3", "--max-upload", "700k", *NOLIMIT)
    try:
        k = key(q, "q", "read,write")
        # over --max-upload: 413 at the headers (Content-Length), and chunked
        r = upload(q, k, pattern(4, 700 * 1024 + 1))
        assert r.status == 413 and r.json()["error_code"] == "BODY_TOO_LARGE", r.body
        r, _ = stream_upload(q, k, 3 * 1024 * 1024, chunked=True, piece=100000)
        assert r.status == 413 and r.json()["error_code"] == "BODY_TOO_LARGE", r.body
        # the quota: 600k fits, 600k more does not (507, before the body)
        assert upload(q, k, pattern(5, 600 * 1024)).status == 201
        r = upload(q, k, pattern(6, 600 * 1024))
        assert r.status == 507 and r.json()["error_code"] == "QUOTA_EXCEEDED", r.body
        assert r.json()["details"]["quota_bytes"] == 1024 * 1024
        # chunked: refused once it passes what is left (424k, under --max-upload)
        r, _ = stream_upload(q, k, 600 * 1024, chunked=True, piece=50000)
        assert r.status == 507 and r.json()["error_code"] == "QUOTA_EXCEEDED", r.body
        # Expect: 100-continue is answered with the refusal, not 100
        s = q.connect(10)
        s.sendall(("POST /api/v1/blobs HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: 500000\r\n"
                   "Expect: 100-continue\r\n\r\n" % k).encode())
        r = read_response(s)
        assert r.status == 507, r.status
        s.close()
        u = get(q, k, "/api/v1/blobs/usage").json()["data"]
        assert u == {"bytes": 600 * 1024, "files": 1, "quota_bytes": 1024 * 1024, "quota_files": 3}, u
        # the file count
        assert upload(q, k, b"1").status == 201 and upload(q, k, b"2").status == 201
        r = upload(q, k, b"3")
        assert r.status == 507, r.body
        # deleting makes room again
        first = get(q, k, "/api/v1/blobs?limit=1").json()["data"][0]["id"]
        assert q.request("DELETE", "/api/v1/blobs/" + first, headers={"X-API-Key": k}).status == 204
        assert upload(q, k, b"3").status == 201
        assert tmp_files(q) == []
    finally:
        q.stop()


# ---- memory ---------------------------------------------------------------------

def test_resident_memory_does_not_grow_with_the_upload_size():
    # under AddressSanitizer freed memory is kept resident on purpose (its
    # quarantine): measure Grove's own holding, not the sanitizer's
    asan = os.environ.get("ASAN_OPTIONS", "")
    m = Grove("--max-upload", "300m", *NOLIMIT,
              env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=0"})
    try:
        k = key(m, "mem", "read,write")
        r, _ = stream_upload(m, k, 10 * 1024 * 1024)
        assert r.status == 201, r.body
        small = hwm_kib(m)
        r, sha = stream_upload(m, k, 200 * 1024 * 1024)
        assert r.status == 201 and r.json()["data"]["sha256"] == sha, r.body
        big = hwm_kib(m)
        # a generous bound: the 190 MiB more must not show up in memory
        assert big - small < 16 * 1024, "VmHWM %d KiB after 10 MiB, %d KiB after 200 MiB" % (small, big)
        assert download_sha(m, k, r.json()["data"]["id"]) == (200, sha, 200 * 1024 * 1024)
        assert hwm_kib(m) - small < 16 * 1024  # nor does the download's
    finally:
        m.stop()


# ---- hostile clients --------------------------------------------------------------

def test_a_client_that_goes_away_mid_body_leaves_nothing():
    before = get(g, OWNER, "/api/v1/blobs?limit=1000").json()["data"]
    s = g.connect(10)
    s.sendall(("POST /api/v1/blobs?name=cut HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
               "Content-Length: 10000000\r\n\r\n" % OWNER).encode())
    s.sendall(os.urandom(3 * 1024 * 1024))
    eventually(lambda: len(tmp_files(g)) == 1, what="the upload's temporary file")
    s.close()  # the length promised is never kept
    eventually(lambda: tmp_files(g) == [], what="the temporary file to go")
    after = get(g, OWNER, "/api/v1/blobs?limit=1000").json()["data"]
    assert [x["id"] for x in after] == [x["id"] for x in before]


def test_a_reset_mid_chunked_body_leaves_nothing():
    s = g.connect(10)
    s.sendall(("POST /api/v1/blobs?name=cut HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" % OWNER).encode())
    block = os.urandom(1 << 20)
    s.sendall((b"%x\r\n" % len(block) + block + b"\r\n") * 2)
    eventually(lambda: len(tmp_files(g)) == 1, what="the upload's temporary file")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST
    eventually(lambda: tmp_files(g) == [], what="the temporary file to go")


def test_a_bad_chunk_is_400_and_leaves_nothing():
    s = g.connect(10)
    s.sendall(("POST /api/v1/blobs?name=bad HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
               "Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n" % OWNER).encode())
    r = read_response(s)
    assert r.status == 400 and r.json()["error_code"] == "BAD_CHUNK", r.body
    assert closed_by_peer(s)
    eventually(lambda: tmp_files(g) == [], what="the temporary file to go")


def test_a_longer_body_than_announced_is_cut_at_the_length():
    s = g.connect(10)
    s.sendall(("POST /api/v1/blobs?name=ten HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
               "Content-Length: 10\r\n\r\n0123456789GARBAGE / HTTP/1.1\r\n\r\n" % OWNER).encode())
    r = read_response(s)
    assert r.status == 201 and r.json()["data"]["size"] == 10, r.body
    r2 = read_response(s, r.rest)  # the rest is read as a request of its own
    assert r2.status in (400, 501), r2.status
    s.close()


def test_a_stalled_body_times_out_with_408():
    t = Grove("--body-timeout", "500ms", *NOLIMIT)
    try:
        k = key(t, "slow", "read,write")
        s = t.connect(20)
        s.sendall(("POST /api/v1/blobs HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                   "Content-Length: 100000\r\n\r\n" % k).encode() + b"x" * 1000)
        r = read_response(s)  # waits for the server's answer: no sleep here
        assert r.status == 408 and r.json()["error_code"] == "REQUEST_TIMEOUT", r.body
        assert closed_by_peer(s)
        eventually(lambda: tmp_files(t) == [], what="the temporary file to go")
        assert get(t, k, "/api/v1/blobs").json()["data"] == []
    finally:
        t.stop()


def test_kill_9_during_an_upload_leaves_no_partial_blob():
    k9 = Grove(*NOLIMIT)
    data_dir = k9.data_dir
    k = key(k9, "k9", "read,write")
    s = k9.connect(10)
    s.sendall(("POST /api/v1/blobs?name=half HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
               "Content-Length: 50000000\r\n\r\n" % k).encode())
    s.sendall(os.urandom(8 * 1024 * 1024))
    eventually(lambda: len(tmp_files(k9)) == 1 and os.path.getsize(
        os.path.join(tmp_dir(k9), tmp_files(k9)[0])) > 0, what="bytes on disk")
    k9.proc.send_signal(signal.SIGKILL)
    k9.proc.wait()
    k9._stopped = True  # killed: its folder goes below, after the restart
    k9.log.close()
    s.close()
    assert len(tmp_files(k9)) == 1  # the crash left it
    again = Grove(*NOLIMIT, data_dir=data_dir)
    try:
        assert tmp_files(again) == []   # removed at start
        assert get(again, k, "/api/v1/blobs").json()["data"] == []
        assert content_files(again) == []
        r = upload(again, k, b"after")
        assert r.status == 201
    finally:
        again.stop()
        shutil.rmtree(k9.tmp, ignore_errors=True)


if __name__ == "__main__":
    main(globals())
