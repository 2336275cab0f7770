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
