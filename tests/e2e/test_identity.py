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

def metric(grove, name, pool=None):
    import re
    body = grove.request("GET", "/metrics").body.decode()
    labels = r'\{pool="%s"\}' % pool if pool else r"(?:\{\})?"
    m = re.search(r"^%s%s ([0-9.e+-]+)$" % (re.escape(name), labels), body, re.M)
    return float(m.group(1)) if m else None


def test_a_full_cpu_pool_refuses_sign_ins_while_reads_are_answered():
    import tempfile
    from grove import read_response
    hold = tempfile.NamedTemporaryFile(prefix="grove-hold-", delete=False)
    hold.close()
    srv = Grove("--pool-cpu-threads", "1", "--pool-cpu-queue", "1", "--pool-cpu-hold", hold.name,
                "--rate-anonymous", "0", "--rate-key", "0", *FAST)
    cpu = lambda name: metric(srv, name, "cpu")
    try:
        out = cli(srv, "key", "add", "ops", "--scopes", "read,admin")
        assert out.returncode == 0, out.stderr
        key = out.stdout.split()[1]
        keys = lambda: srv.request("GET", "/api/v1/keys", headers={"Authorization": "Bearer " + key})
        eventually(lambda: keys().status == 200, what="the new key seen by the server")
        assert cpu("grove_pool_threads") == 1 and metric(srv, "grove_pool_threads", "store") == 4
        login = raw_post("/auth/login", {"email": "nobody@example.com", "password": "wrong password"})
        a = srv.connect(timeout=30)
        a.sendall(login)
        eventually(lambda: cpu("grove_pool_active") == 1, what="first hash running")
        b = srv.connect(timeout=30)
        b.sendall(login)
        eventually(lambda: cpu("grove_pool_queued") == 1, what="second hash queued")
        # the pool and its queue are full: the next sign-in is refused at once
        for body in ({"email": "x@example.com", "password": "wrong password"},
                     {"email": "new@example.com", "password": PASSWORD}):
            r = post("/auth/login" if "x@" in body["email"] else "/auth/register", body, grove=srv)
            assert r.status == 503 and r.json()["error_code"] == "BUSY", r.body
            assert r.header("Retry-After") == "1" and r.json()["details"] == {"pool": "cpu", "retry_after_s": 1}
        # meanwhile readiness, a database read and a refresh are answered
        assert srv.request("GET", "/ready").status == 200
        r = keys()
        assert r.status == 200 and r.json()["data"][0]["name"] == "ops", r.body
        assert post("/auth/refresh", {"refresh_token": "grt_" + "0" * 48}, grove=srv).status == 401
        assert srv.request("GET", "/health").status == 200
        # ...while both sign-ins are still waiting on the cpu pool
        assert cpu("grove_pool_active") == 1 and cpu("grove_pool_queued") == 1
        assert cpu("grove_pool_refused_total") == 2
        # a queued sign-in whose client left is dropped, never hashed
        b.close()
        eventually(lambda: cpu("grove_pool_cancelled_total") == 1, what="queued hash dropped")
        assert cpu("grove_pool_queued") == 0
        # let the held hash go: the first sign-in gets its real answer
        os.unlink(hold.name)
        r = read_response(a)
        a.close()
        assert r.status == 401 and r.json()["error_code"] == "INVALID_CREDENTIALS", r.body
        eventually(lambda: cpu("grove_pool_active") == 0, what="pool idle")
        assert post("/auth/register", {"email": "new@example.com", "password": PASSWORD}, grove=srv).status == 201
    finally:
        if os.path.exists(hold.name):
            os.unlink(hold.name)
        stop_all(srv)


def test_pool_options_are_checked():
    for opt, value in (("--pool-cpu-threads", "0"), ("--pool-store-queue", "-1"), ("--pool-wait-threads", "5000")):
        out = subprocess.run([GROVE, "serve", opt, value, "--listen", "127.0.0.1:0",
                              "--data-dir", tempfile_dir()], capture_output=True, text=True, timeout=20)
        assert out.returncode != 0 and "cannot start a worker pool" in out.stderr, (opt, out.stderr)
    help = subprocess.run([GROVE, "serve", "--help"], capture_output=True, text=True).stdout
    for opt in ("--pool-store-threads", "--pool-store-queue", "--pool-cpu-threads", "--pool-cpu-queue",
                "--pool-wait-threads", "--pool-wait-queue", "--pool-cpu-hold", "--max-body-decoded"):
        assert opt in help, opt


def tempfile_dir():
    import tempfile
    return tempfile.mkdtemp(prefix="grove-pools-")


# ---- 10.8: account names that look the same --------------------------------------

def login(email, password=PASSWORD, grove=None):
    return post("/auth/login", {"email": email, "password": password}, grove=grove)


def test_case_folding_is_unicode_aware():
    d = register("ÉLODIE@example.com")
    assert d["user"]["email"] == "élodie@example.com"
    r = login("élodie@example.com")
    assert r.status == 200 and r.json()["data"]["user"]["id"] == d["user"]["id"], r.body
    assert login("Élodie@Example.COM").status == 200
    r = post("/auth/register", {"email": "élodie@example.com", "password": PASSWORD})
    assert r.status == 409 and r.json()["error_code"] == "EMAIL_TAKEN", r.body
    # full case folding: ß is ss
    d = register("Straße@example.com")
    assert login("STRASSE@example.com").json()["data"]["user"]["id"] == d["user"]["id"]


def test_nfd_and_nfc_are_one_account():
    nfd, nfc = "zoe\u0301@example.com", "zo\u00e9@example.com"
    d = register(nfd)
    assert d["user"]["email"] == nfc
    r = login(nfc)
    assert r.status == 200 and r.json()["data"]["user"]["id"] == d["user"]["id"], r.body
    assert post("/auth/register", {"email": nfc, "password": PASSWORD}).status == 409


def test_full_width_and_kelvin_sign_map_to_the_plain_account():
    admin = register("admin@example.com")
    kevin = register("kevin@example.com")
    for spoof, owner in (("\uff21\uff24\uff2d\uff29\uff2e@example.com", admin),  # ＡＤＭＩＮ
                         ("\uff41dmin\uff20example.com", admin),                  # ａdmin＠
                         ("\u212aevin@example.com", kevin)):                       # Kelvin sign
        r = post("/auth/register", {"email": spoof, "password": PASSWORD})
        assert r.status == 409, (spoof, r.body)
        r = login(spoof)
        assert r.status == 200 and r.json()["data"]["user"]["id"] == owner["user"]["id"], (spoof, r.body)


def test_invisible_control_and_bidi_characters_are_refused():
    for bad in ("ad\u200bmin@example.com",       # zero-width space
                "ad\u00admin@example.com",       # soft hyphen
                "admin\u2060@example.com",       # word joiner
                "\ufeffadmin@example.com",       # BOM
                "\u202emoc.elpmaxe@nimda",       # right-to-left override
                "admin\u200e@example.com",       # left-to-right mark
                "ad\u0085min@example.com",       # C1 control
                "ad min@example.com",            # space
                "ad\u3000min@example.com",       # ideographic space
                "snow\u2603@example.com"):       # a symbol
        r = post("/auth/register", {"email": bad, "password": PASSWORD})
        assert r.status == 400 and r.json()["error_code"] == "INVALID_INPUT", (bad, r.body)
        assert login(bad).status == 401, bad
    r = post("/auth/register", {"email": "ad\u200bmin@example.com", "password": PASSWORD})
    assert "U+200B" in r.json()["message"]


def test_look_alikes_of_an_account_are_refused():
    register("billing@example.com")
    for spoof in ("b\u0131lling@example.com",    # dotless ı
                  "bi1ling@example.com"):        # digit one for l
        r = post("/auth/register", {"email": spoof, "password": PASSWORD})
        assert r.status == 409 and r.json()["error_code"] == "EMAIL_TAKEN", (spoof, r.body)
    assert login("b\u0131lling@example.com").status == 401
    # Latin mixed with Cyrillic in one part is refused; one script is fine
    r = post("/auth/register", {"email": "p\u0430ypal@example.com", "password": PASSWORD})
    assert r.status == 400, r.body
    assert register("\u0438\u0432\u0430\u043d@example.com")["user"]["email"] == "\u0438\u0432\u0430\u043d@example.com"


def test_cli_uses_the_same_identifiers():
    out = cli(g, "user", "add", "\uff2f\uff30\uff33@example.com", "--role", "admin", stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    assert login("ops@example.com").status == 200
    out = cli(g, "user", "add", "o\u200bps@example.com", stdin=PASSWORD + "\n")
    assert out.returncode == 1 and "U+200B" in out.stderr
    out = cli(g, "user", "disable", "OPS@example.com")
    assert out.returncode == 0, out.stderr
    r = eventually(lambda: login("ops@example.com").status == 403 or None, what="disabled")
    assert cli(g, "user", "enable", "\uff4fps@example.com").returncode == 0


def test_stored_emails_are_upgraded_without_merging_accounts():
    import sqlite3
    import tempfile
    data = tempfile.mkdtemp(prefix="grove-ident-")
    srv = Grove("--rate-anonymous", "0", *FAST, data_dir=data)
    try:
        ids = {}
        for email, pw in (("old1@example.com", "password one"), ("old2@example.com", "password two"),
                          ("zoe@example.com", "password three"), ("inv@example.com", "password four")):
            ids[email] = register(email, password=pw, grove=srv)["user"]["id"]
        srv.stop()
        # as earlier versions stored them: ASCII letters lower-cased only
        db = sqlite3.connect(os.path.join(data, "grove.db"))
        for email, stored in (("old1@example.com", "\u00c9lodie@example.com"),
                              ("old2@example.com", "\u00e9lodie@example.com"),
                              ("zoe@example.com", "zo\u00cb@example.com"),
                              ("inv@example.com", "in\u200bv@example.com")):
            db.execute("UPDATE users SET email = ?, email_skeleton = NULL WHERE id = ?", (stored, ids[email]))
        db.commit()
        db.close()
        srv = Grove("--rate-anonymous", "0", *FAST, data_dir=data)
        # upgraded: any spelling reaches it
        r = login("ZO\u00cb@example.com", "password three", grove=srv)
        assert r.status == 200 and r.json()["data"]["user"]["email"] == "zo\u00eb@example.com", r.body
        assert login("zoe\u0308@example.com", "password three", grove=srv).status == 200
        # two accounts that now look the same are not merged: the newer keeps
        # the prepared form, the older stays as stored, and both sign in
        assert login("\u00e9lodie@example.com", "password two", grove=srv).status == 200
        r = login("\u00c9lodie@example.com", "password one", grove=srv)
        assert r.status == 200 and r.json()["data"]["user"]["id"] == ids["old1@example.com"], r.body
        # one that cannot be prepared signs in as stored
        assert login("in\u200bv@example.com", "password four", grove=srv).status == 200
        log = srv.output()
        assert "stored email left as it is" in log and "other_user=%s" % ids["old2@example.com"] in log, log
        assert "in\\u200bv@example.com" in log  # escaped in the text log
        db = sqlite3.connect(os.path.join(data, "grove.db"))
        rows = dict(db.execute("SELECT id, email FROM users").fetchall())
        db.close()
        assert rows[ids["zoe@example.com"]] == "zo\u00eb@example.com"
        assert rows[ids["old1@example.com"]] == "\u00c9lodie@example.com"
    finally:
        stop_all(srv)
        import shutil
        shutil.rmtree(data, ignore_errors=True)


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
