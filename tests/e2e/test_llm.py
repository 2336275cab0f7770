"""POST /api/v1/flow/ask with a model: fake Ollama and OpenAI-compatible
servers on loopback stream their answers; grove must hand the model the
snapshot as its only context, return or stream the model's words, and fall
back to the answer from the data when the model cannot be reached."""

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from grove import FAST_HASH, GROVE, EventStream, Grove, eventually, free_port, main, stop_all

MIN = 60 * 10**9
T0 = (time.time_ns() // 10**9 - 2 * 86400) // 60 * 60 * 10**9  # a whole minute, two days back (not ahead of the clock)
WORDS = ["The air ", "in east ", "is Moderate ", "(AQI 90)."]


class FakeModel(BaseHTTPRequestHandler):
    """Streams WORDS: NDJSON in chunks (Ollama) or SSE (OpenAI)."""
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeModel.seen.append((self.path, dict(self.headers), body))
        if self.path == "/api/chat":
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for w in WORDS + [None]:
                line = json.dumps({"message": {"role": "assistant", "content": w or ""}, "done": w is None}) + "\n"
                data = line.encode()
                for piece in (data[:7], data[7:]):  # lines split across chunks
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/v1/chat/completions":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for w in WORDS:
                ev = {"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), FakeModel)
threading.Thread(target=server.serve_forever, daemon=True).start()
MODEL_URL = "http://127.0.0.1:%d" % server.server_address[1]


def key(grove, scopes):
    out = subprocess.run([GROVE, "key", "add", "k", "--scopes", scopes, "--data-dir", grove.data_dir],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def city(*args):
    grove = Grove("--gate-refresh", "200ms", "--flow-window", "1m", "--flow-slide", "1m", "--flow-lateness", "0s",
                  *FAST_HASH, *args)
    k = key(grove, "read,write")
    eventually(lambda: grove.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200, what="key")
    rows = [{"station": s, "region": "east", "time": (T0 + i * MIN) / 1e9, "pm25": v}
            for i in range(2) for s, v in (("east-a", 20), ("east-b", 40))]
    r = grove.request("POST", "/api/v1/flow/readings", body=json.dumps({"readings": rows}).encode(),
                      headers={"X-API-Key": k, "Content-Type": "application/json"})
    assert r.status == 200, r.body
    return grove, k


def ask(grove, k, body):
    return grove.request("POST", "/api/v1/flow/ask", body=json.dumps(body).encode(),
                         headers={"X-API-Key": k, "Content-Type": "application/json"}, timeout=20)


def check_prompt(body, question):
    assert body["stream"] is True and body["model"] == "tiny"
    system, user = body["messages"]
    assert system["role"] == "system" and "Use only the JSON snapshot" in system["content"]
    assert user["content"].endswith("Question: " + question)
    snapshot = json.loads(user["content"][len("Snapshot: "):user["content"].index("\n\nQuestion:")])
    assert [r["name"] for r in snapshot["regions"]] == ["east"] and snapshot["regions"][0]["aqi"] == 90
    assert {s["id"] for s in snapshot["stations"]} == {"east-a", "east-b"}
    assert snapshot["stations"][0] == {"id": "east-b", "name": "east-b", "region": "east", "aqi": 112,
                                       "category": "Unhealthy for Sensitive Groups", "dominant": "pm25",
                                       "window_end": T0 + MIN, "means": {"pm25": 40.0}}


def test_ollama_answer_from_the_snapshot():
    grove, k = city("--llm-url", MODEL_URL, "--llm-model", "tiny")
    try:
        FakeModel.seen.clear()
        r = ask(grove, k, {"question": "How is the air in east?"})
        assert r.status == 200, r.body
        a = r.json()["data"]
        assert a["answer"] == "".join(WORDS) and a["model"] == "tiny" and a["grounded"] is False, a
        assert a["sources"][0]["name"] == "east"  # what the data says stays alongside
        path, headers, body = FakeModel.seen[-1]
        assert path == "/api/chat"
        check_prompt(body, "How is the air in east?")
    finally:
        stop_all(grove)


def test_openai_compatible_answer_streams_on_a_topic():
    grove, k = city("--llm-url", MODEL_URL + "/", "--llm-api", "openai", "--llm-model", "tiny",
                    "--llm-key", "sk-test")
    try:
        FakeModel.seen.clear()
        r = ask(grove, k, {"question": "Where is it worst?", "stream": True})
        assert r.status == 202, r.body
        topic = r.json()["data"]["topic"]
        assert topic.startswith("flow/answers/")
        # an app's topic: read with the app's credential; what went out before is replayed
        assert EventStream(grove, "topic=" + topic, last_event_id=0).response.status == 401
        es = EventStream(grove, "topic=" + topic, last_event_id=0, headers={"X-API-Key": k})
        text = ""
        while True:
            m = es.next_event(timeout=10)["data"]["data"]
            if m["type"] == "done":
                break
            assert m["type"] == "delta"
            text += m["text"]
        es.close()
        assert text == "".join(WORDS) and m["answer"] == text and m["model"] == "tiny", m
        path, headers, body = FakeModel.seen[-1]
        assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
        check_prompt(body, "Where is it worst?")
        assert ask(grove, k, {"question": "x", "stream": "yes"}).status == 400
    finally:
        stop_all(grove)


def test_the_data_answers_when_the_model_is_away():
    grove, k = city("--llm-url", "http://127.0.0.1:%d" % free_port(), "--llm-timeout", "2s")
    try:
        r = ask(grove, k, {"question": "How is the air in east?"})
        assert r.status == 200, r.body
        a = r.json()["data"]
        assert a["grounded"] is True and a["model"] is None and "Region east: AQI 90" in a["answer"], a
        assert "cannot connect" in a["model_error"], a
    finally:
        stop_all(grove)


if __name__ == "__main__":
    main(globals())
