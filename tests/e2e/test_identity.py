"""Identity under attack: text users wrote shown to admins (escaped in
tables and text logs, exact in JSON), refresh racing logout on SQLite and
PostgreSQL, password hashing that cannot starve other work, and account
names that look alike."""

import json
import os
import subprocess
import threading

from grove import GROVE, Grove, Postgres, eventually, main, stop_all

g = None
PASSWORD = "correct horse battery"
FAST = ["--argon2-memory", "8192", "--argon2-passes", "1"]
RLO = "\u202e"


def cli(grove, *args, stdin=None):
    return subprocess.run([GROVE] + list(args) + ["--data-dir", grove.data_dir] + FAST,
                          input=stdin, capture_output=True, text=True, timeout=30)


def setup():
    global g
    g = Grove("--gate-refresh", "300ms", "--rate-anonymous", "0", "--rate-key", "0", *FAST)


def post(path, body, token=None, grove=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    return (grove or g).request("POST", path, body=json.dumps(body).encode(), headers=h)


def get(path, token=None, grove=None):
    return (grove or g).request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})


def register(email, password=PASSWORD, grove=None, **extra):
    r = post("/auth/register", dict(email=email, password=password, **extra), grove=grove)
    assert r.status == 201, r.body
    return r.json()["data"]


# ---- 10.9: user text shown to people ------------------------------------------

def test_user_list_escapes_names_that_forge_rows_or_drive_the_terminal():
    forged = "Mallory\tusr_0000\troot@example.com\tEve\tadmin\tno\nusr_fake"
    register("mallory@example.com", name=forged)
    register("ansi@example.com", name="\x1b[2J\x1b]0;owned\x07Ann")
    out = cli(g, "user", "list")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    # one header and one row per user, each with exactly five columns
    assert all(len(r.split("\t")) == 5 for r in rows), rows
    row = [r for r in rows if "mallory@example.com" in r][0]
    assert "Mallory\\tusr_0000\\troot@example.com\\tEve\\tadmin\\tno\\nusr_fake" in row
    assert "\x1b" not in out.stdout and "\\x1b[2J\\x1b]0;owned\\x07Ann" in out.stdout
    # the JSON answer keeps the exact text
    admin = admin_token()
    users = get("/api/v1/users", admin).json()["data"]
    assert forged in [u["name"] for u in users]


def test_audit_log_shows_a_right_to_left_override_escaped():
    spoof = RLO + "moc.elpmaxe@nimda"
    r = post("/auth/login", {"email": spoof, "password": "wrong password"})
    assert r.status == 401
    out = cli(g, "audit", "list", "--limit", "50")
    assert out.returncode == 0, out.stderr
    assert RLO not in out.stdout
    assert "\\u202emoc.elpmaxe@nimda" in out.stdout
    assert all(len(r.split("\t")) == 8 for r in out.stdout.splitlines())
    # the API (a machine format) gives the stored text exactly
    entries = get("/api/v1/audit?limit=50", admin_token()).json()["data"]
    assert spoof in [e["target"] for e in entries]


def test_text_log_lines_escape_what_users_sent():
    # the access log writes the decoded path a client chose
    g.request("GET", "/files/%E2%80%AEgpj.exe%1B%5B2J")
    line = eventually(lambda: [l for l in g.output().splitlines() if "gpj.exe" in l], what="access log line")
    assert "\\u202egpj.exe" in line[0], line
    log = g.output()
    assert RLO not in log and "\x1b" not in log


# ---- 10.2: a refresh racing a logout ------------------------------------------

def raw_post(path, body):
    data = json.dumps(body).encode()
    return ("POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (path, len(data))).encode() + data


def race_refresh_and_logout(grove, email, trials):
    """Sends /auth/refresh and /auth/logout with the same refresh token at
    once, `trials` times; after both answered, either the refresh lost or
    everything it produced is refused."""
    from grove import read_response
    register(email, grove=grove)
    won = 0
    for i in range(trials):
        r = post("/auth/login", {"email": email, "password": PASSWORD}, grove=grove)
        assert r.status == 200, r.body
        tok = r.json()["data"]["refresh_token"]
        a, b = grove.connect(), grove.connect()
        reqs = [raw_post("/auth/refresh", {"refresh_token": tok}), raw_post("/auth/logout", {"refresh_token": tok})]
        if i % 2:
            a, b = b, a  # either may go first
        a.sendall(reqs[0])
        b.sendall(reqs[1])
        ref, out = read_response(a), read_response(b)
        a.close()
        b.close()
        assert out.status == 200, out.body
        assert ref.status in (200, 401), ref.body
        if ref.status == 200:
            won += 1
            new = ref.json()["data"]
            again = post("/auth/refresh", {"refresh_token": new["refresh_token"]}, grove=grove)
            assert again.status == 401 and again.json()["error_code"] == "TOKEN_REVOKED", again.body
            assert get("/auth/me", new["access_token"], grove=grove).status == 401
        else:
            assert ref.json()["error_code"] == "TOKEN_REVOKED", ref.body
    return won


def test_refresh_racing_logout_never_outlives_it_on_sqlite():
    race_refresh_and_logout(g, "racer@example.com", 40)


def test_refresh_racing_logout_never_outlives_it_on_postgres():
    pg = Postgres()
    srv = None
    try:
        srv = Grove("--store", pg.url, "--rate-anonymous", "0", "--rate-key", "0", *FAST)
        race_refresh_and_logout(srv, "racer@example.com", 40)
    finally:
        stop_all(srv, pg)


# ---- 10.7: password hashing cannot starve the rest ------------------------------

def metric(grove, name):
    import re
    body = grove.request("GET", "/metrics").body.decode()
    m = re.search(r"^%s(?:\{\})? ([0-9.e+-]+)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


def test_a_full_hash_queue_refuses_sign_ins_while_reads_are_answered():
    import tempfile
    from grove import read_response
    hold = tempfile.NamedTemporaryFile(prefix="grove-hold-", delete=False)
    hold.close()
    srv = Grove("--auth-hash-threads", "1", "--auth-hash-queue", "1", "--auth-hash-hold", hold.name,
                "--rate-anonymous", "0", "--rate-key", "0", *FAST)
    try:
        out = cli(srv, "key", "add", "ops", "--scopes", "read,admin")
        assert out.returncode == 0, out.stderr
        key = out.stdout.split()[1]
        keys = lambda: srv.request("GET", "/api/v1/keys", headers={"Authorization": "Bearer " + key})
        eventually(lambda: keys().status == 200, what="the new key seen by the server")
        login = raw_post("/auth/login", {"email": "nobody@example.com", "password": "wrong password"})
        a = srv.connect(timeout=30)
        a.sendall(login)
        eventually(lambda: metric(srv, "grove_auth_hash_running") == 1, what="first hash running")
        b = srv.connect(timeout=30)
        b.sendall(login)
        eventually(lambda: metric(srv, "grove_auth_hash_queued") == 1, what="second hash queued")
        # the pool and its queue are full: the next sign-in is refused at once
        for body in ({"email": "x@example.com", "password": "wrong password"},
                     {"email": "new@example.com", "password": PASSWORD}):
            r = post("/auth/login" if "x@" in body["email"] else "/auth/register", body, grove=srv)
            assert r.status == 503 and r.json()["error_code"] == "AUTH_BUSY", r.body
            assert r.header("Retry-After") == "1" and r.json()["details"]["retry_after_s"] == 1
        # meanwhile readiness, a database read and a refresh are answered
        assert srv.request("GET", "/ready").status == 200
        r = keys()
        assert r.status == 200 and r.json()["data"][0]["name"] == "ops", r.body
        assert post("/auth/refresh", {"refresh_token": "grt_" + "0" * 48}, grove=srv).status == 401
        assert srv.request("GET", "/health").status == 200
        # ...while both sign-ins are still waiting on the hash pool
        assert metric(srv, "grove_auth_hash_running") == 1 and metric(srv, "grove_auth_hash_queued") == 1
        assert metric(srv, "grove_auth_hash_refused_total") == 2
        # a queued sign-in whose client left is dropped, never hashed
        b.close()
        eventually(lambda: metric(srv, "grove_auth_hash_dropped_total") == 1, what="queued hash dropped")
        assert metric(srv, "grove_auth_hash_queued") == 0
        # let the held hash go: the first sign-in gets its real answer
        os.unlink(hold.name)
        r = read_response(a)
        a.close()
        assert r.status == 401 and r.json()["error_code"] == "INVALID_CREDENTIALS", r.body
        eventually(lambda: metric(srv, "grove_auth_hash_running") == 0, what="pool idle")
        assert post("/auth/register", {"email": "new@example.com", "password": PASSWORD}, grove=srv).status == 201
    finally:
        if os.path.exists(hold.name):
            os.unlink(hold.name)
        stop_all(srv)


def test_hash_pool_options_are_checked():
    out = subprocess.run([GROVE, "serve", "--auth-hash-threads", "0", "--listen", "127.0.0.1:0",
                          "--data-dir", "/nonexistent/x"], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    help = subprocess.run([GROVE, "serve", "--help"], capture_output=True, text=True).stdout
    for opt in ("--auth-hash-threads", "--auth-hash-queue", "--auth-hash-hold"):
        assert opt in help, opt


_admin = None


def admin_token():
    global _admin
    if not _admin:
        out = cli(g, "user", "add", "root@example.com", "--role", "admin", stdin=PASSWORD + "\n")
        assert out.returncode == 0, out.stderr
        r = post("/auth/login", {"email": "root@example.com", "password": PASSWORD})
        assert r.status == 200, r.body
        _admin = r.json()["data"]["access_token"]
    return _admin


if __name__ == "__main__":
    main(globals())
