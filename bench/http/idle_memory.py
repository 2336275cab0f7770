"""Resident memory per idle connection: WebSocket connections to grove
(upgraded, subscribed to nothing) and keep-alive HTTP connections to nginx
(one request answered), N of each; prints the bench line."""

import base64
import os
import socket
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def children(pid):
    out = [pid]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p))
            except OSError:
                pass
    return out


def open_many(port, n, request):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        socks.append(s)
        if len(socks) % 500 == 0:  # read answers in batches
            for t in socks[-500:]:
                t.recv(4096)
    for t in socks[len(socks) - len(socks) % 500:]:
        t.recv(4096)
    return socks


def measure(pids, port, n, request):
    time.sleep(0.5)
    before = rss_kib(pids)
    socks = open_many(port, n, request)
    time.sleep(1.0)
    after = rss_kib(pids)
    for s in socks:
        s.close()
    return (after - before) * 1024.0 / n


def main():
    gpid, gport, npid, nport, n = (int(a) for a in sys.argv[1:6])
    key = base64.b64encode(os.urandom(16)).decode()
    ws = ("GET /api/v1/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode()
    ours = measure([gpid], gport, n, ws)
    peer = measure(children(npid), nport, n, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    print("idle_websocket_memory %.0f bytes/conn %.0f %.2f (target <= 8192 bytes; peer: nginx "
          "idle keep-alive, %d connections)" % (ours, peer, ours / peer if peer else 0, n))


if __name__ == "__main__":
    main()
