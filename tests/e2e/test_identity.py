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
    g = Grove("--gate-refresh", "300ms", *FAST)


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
