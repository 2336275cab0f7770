"""Read speed of one long series over HTTP: writes N points (a second
apart) to `bench,read=1 v` in batches of 10,000 lines, waits until they
have moved into chunks (the log empties, or WAIT seconds), then reads the
whole series back page by page (limit 100,000, metadata.next as the next
`from`), timing the reads only. Checks every point came once. Prints
`points/s pages`.
  usage: reads.py PORT WRITE_KEY READ_KEY N WAIT"""

import json
import socket
import sys
import time
import urllib.parse

SERIES = "bench,read=1 v"
T0 = 1_700_000_000 * 10**9


def request(sock, method, path, key, body=b""):
    sock.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: %d\r\n\r\n"
                  % (method, path, key, len(body))).encode() + body)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        rest += sock.recv(1 << 20)
    return status, rest


def main():
    port, wkey, rkey, n, wait = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    s = socket.create_connection(("127.0.0.1", port))
    for at in range(0, n, 10000):
        body = "".join("bench,read=1 v=%d.5 %d\n" % (i % 1000, T0 + i * 10**9)
                       for i in range(at, min(n, at + 10000))).encode()
        status, out = request(s, "POST", "/api/v1/write", wkey, body)
        assert status == 204, out
    time.sleep(wait)  # the points move into chunks (--series-flush)
    got, pages, frm = 0, 0, None
    last = None
    start = time.monotonic()
    while True:
        q = {"series": SERIES, "limit": 100000}
        if frm is not None:
            q["from"] = frm
        status, out = request(s, "GET", "/api/v1/series/points?" + urllib.parse.urlencode(q), rkey)
        assert status == 200, out[:200]
        doc = json.loads(out)
        pts = doc["data"]["points"]
        if pts:
            assert last is None or pts[0][0] > last
            last = pts[-1][0]
        got += len(pts)
        pages += 1
        frm = (doc.get("metadata") or {}).get("next")
        if frm is None:
            break
    took = time.monotonic() - start
    assert got == n, (got, n)
    print("%.0f %d" % (got / took, pages))


if __name__ == "__main__":
    main()
