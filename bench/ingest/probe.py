"""How long a window result takes to reach its live topic after the point
that closes its window: writes a reading for a probe station past every
point so far, then, 1.1 s later (as a sensor reporting every second or
slower would), the reading that moves the watermark past that window's
end, and times from sending the second until the station's topic shows
the closed window. (A topic publishes at most once a second, so a result
that follows another update within the second waits for its slot.) Five
probes. Prints the median and the worst."""

import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))
from grove import WebSocket  # noqa: E402

MIN = 60 * 10**9
SLIDE, LATENESS = MIN, MIN  # grove's defaults: --flow-slide 1m, --flow-lateness 1m


class Server:
    def __init__(self, port):
        self.port = port

    def connect(self, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


def request(port, method, path, key, body=None):
    s = socket.create_connection(("127.0.0.1", port))
    data = body or b""
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n" % (method, path, key, len(data))).encode() + data)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def main():
    port, wkey, rkey = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    status, body = request(port, "GET", "/api/v1/flow/snapshot", rkey)
    assert status == 200, body
    frontier = max([s["pollutants"][p]["latest_time"] or 0 for s in json.loads(body)["data"]["stations"]
                    for p in s["pollutants"]] + [time.time_ns()])
    ws = WebSocket(Server(port), "/api/v1/live?topic=flow/stations/probe-1", headers={"X-API-Key": rkey})
    assert ws.recv_json()["type"] == "subscribed"
    took = []
    for k in range(5):
        t = (frontier // MIN + 60 * (k + 1)) * MIN + 10**9  # an hour on each time
        end = -(-t // SLIDE) * SLIDE                          # the first window holding t ends here
        for ts, last in ((t, False), (end + LATENESS, True)):
            time.sleep(1.1)  # a reading a second or slower, as sensors send
            row = {"station": "probe-1", "region": "probe", "time": ts / 1e9, "pm25": 20}
            sent = time.monotonic()
            status, body = request(port, "POST", "/api/v1/flow/readings", wkey,
                                   json.dumps({"readings": [row]}).encode())
            assert status == 200, body
        while True:
            m = ws.recv_json(timeout=5)["data"]
            if m.get("window") and m["window"]["end"] >= end:
                took.append((time.monotonic() - sent) * 1000)
                break
    ws.close()
    print("%.1f ms median, %.1f ms max (target <= 1000)" % (statistics.median(took), max(took)))


if __name__ == "__main__":
    main()
