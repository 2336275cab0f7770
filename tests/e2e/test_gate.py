"""The gateway over real sockets: registration, login, token rotation and
reuse detection, logout, forged and expired tokens, API keys and scopes,
disabled users, the audit log, CORS and security headers."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

from grove import GROVE, Grove, eventually, run, main

g = None
PASSWORD = "correct horse battery"
FAST = ["--argon2-memory", "8192", "--argon2-passes", "1"]


def cli(*args, stdin=None):
    out = subprocess.run([GROVE] + list(args) + ["--data-dir", g.data_dir] + FAST,
                         input=stdin, capture_output=True, text=True, timeout=30)
    return out


def setup():
    global g
    g = Grove("--gate-refresh", "300ms", "--cors-origins", "https://console.example", *FAST)


def post(path, body, token=None, headers=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    return g.request("POST", path, body=json.dumps(body).encode(), headers=h)


def get(path, token=None, headers=None):
    h = {"Authorization": "Bearer " + token} if token else {}
    h.update(headers or {})
    return g.request("GET", path, headers=h)


def register(email, password=PASSWORD, **extra):
    r = post("/auth/register", dict(email=email, password=password, **extra))
    assert r.status == 201, r.body
    return r.json()["data"]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def forge(header, payload, key):
    h, p = b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode())
    sig = b64url(hmac.new(key, (h + "." + p).encode(), hashlib.sha256).digest()) if key else ""
    return h + "." + p + "." + sig


def test_register_login_me():
    d = register("Ada@Example.com", name="Ada")
    assert d["token_type"] == "Bearer" and d["expires_in"] == 900
    assert d["user"]["email"] == "ada@example.com" and d["user"]["role"] == "member"
    assert d["refresh_token"].startswith("grt_")
    r = get("/auth/me", d["access_token"])
    assert r.status == 200, r.body
    me = r.json()["data"]
    assert me["kind"] == "user" and me["id"] == d["user"]["id"] and me["scopes"] == "read,write"
    r = post("/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    assert r.status == 200 and r.header("cache-control") == "no-store"
    assert r.json()["data"]["user"]["name"] == "Ada"


def test_registration_input_errors():
    register("dup@example.com")
    r = post("/auth/register", {"email": "dup@example.com", "password": PASSWORD})
    assert r.status == 409 and r.json()["error_code"] == "EMAIL_TAKEN"
    for body in ({"email": "x@example.com", "password": "short"}, {"email": "nope", "password": PASSWORD},
                 {"email": 5, "password": PASSWORD}, {"password": PASSWORD},
                 {"email": "a@b.c", "password": "x" * 2000}):
        r = post("/auth/register", body)
        assert r.status == 400 and r.json()["error_code"] == "INVALID_INPUT", (body, r.body)
    r = g.request("POST", "/auth/register", body=b"{", headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error_code"] == "INVALID_JSON"


def test_wrong_password_and_unknown_user_look_the_same():
    register("bob@example.com")
    a = post("/auth/login", {"email": "bob@example.com", "password": "wrong password"})
    b = post("/auth/login", {"email": "nobody@example.com", "password": "wrong password"})
    assert a.status == b.status == 401
    assert a.json()["error_code"] == b.json()["error_code"] == "INVALID_CREDENTIALS"
    assert a.json()["message"] == b.json()["message"]


def test_refresh_rotates_and_reuse_revokes_the_family():
    d = register("carol@example.com")
    r = post("/auth/refresh", {"refresh_token": d["refresh_token"]})
    assert r.status == 200, r.body
    d2 = r.json()["data"]
    assert d2["refresh_token"] != d["refresh_token"]
    assert get("/auth/me", d2["access_token"]).status == 200
    # the first token again: theft assumed, the whole session ends
    r = post("/auth/refresh", {"refresh_token": d["refresh_token"]})
    assert r.status == 401 and r.json()["error_code"] == "TOKEN_REUSED"
    r = post("/auth/refresh", {"refresh_token": d2["refresh_token"]})
    assert r.status == 401 and r.json()["error_code"] == "TOKEN_REVOKED"
    assert get("/auth/me", d2["access_token"]).status == 401
    assert get("/auth/me", d["access_token"]).status == 401
    r = post("/auth/refresh", {"refresh_token": "grt_" + "0" * 48})
    assert r.status == 401 and r.json()["error_code"] == "INVALID_TOKEN"


def test_concurrent_refresh_lets_only_one_through():
    import threading
    d = register("race@example.com")
    results = []

    def go():
        results.append(post("/auth/refresh", {"refresh_token": d["refresh_token"]}).status)
    threads = [threading.Thread(target=go) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count(200) <= 1 and all(s in (200, 401) for s in results), results


def test_logout_revokes_session_at_once():
    d = register("dave@example.com")
    other = post("/auth/login", {"email": "dave@example.com", "password": PASSWORD}).json()["data"]
    r = post("/auth/logout", {"refresh_token": d["refresh_token"]})
    assert r.status == 200 and r.json()["data"]["revoked"] is True
    assert get("/auth/me", d["access_token"]).status == 401
    assert post("/auth/refresh", {"refresh_token": d["refresh_token"]}).status == 401
    # another session of the same user is untouched; it can log out with its access token
    assert get("/auth/me", other["access_token"]).status == 200
    r = g.request("POST", "/auth/logout", headers={"Authorization": "Bearer " + other["access_token"]})
    assert r.status == 200
    assert get("/auth/me", other["access_token"]).status == 401
    assert post("/auth/logout", {}).status == 401


def test_forged_tampered_and_none_tokens_are_refused():
    d = register("eve@example.com")
    tok = d["access_token"]
    h, p, s = tok.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    admin_claims = dict(claims, role="admin")
    cases = {
        "wrong key": forge({"alg": "HS256", "typ": "JWT"}, admin_claims, os.urandom(32)),
        "alg none": forge({"alg": "none", "typ": "JWT"}, admin_claims, None),
        "alg HS512": forge({"alg": "HS512", "typ": "JWT"}, claims, os.urandom(32)),
        "tampered payload": h + "." + b64url(json.dumps(admin_claims).encode()) + "." + s,
        "truncated": h + "." + p,
        "garbage": "not.a.token",
        "empty sig": h + "." + p + ".",
    }
    for name, t in cases.items():
        r = get("/api/v1/keys", t)
        assert r.status == 401, (name, r.status)
        assert r.header("www-authenticate") == "Bearer"
    assert get("/auth/me", tok).status == 200


def test_expired_token_is_refused():
    # The token says when it expires; the test waits for the refusal and
    # checks it did not come before that time (no assumption about how fast
    # the registration or the requests are).
    g2 = Grove("--access-ttl", "1s", *FAST)
    try:
        r = g2.request("POST", "/auth/register", body=json.dumps({"email": "t@example.com", "password": PASSWORD}).encode(),
                       headers={"Content-Type": "application/json"})
        tok = r.json()["data"]["access_token"]
        p = tok.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        assert claims["exp"] - claims["iat"] == 1, claims
        me = lambda: g2.request("GET", "/auth/me", headers={"Authorization": "Bearer " + tok}).status
        eventually(lambda: me() == 401, timeout=15, what="the expired token to be refused")
        assert time.time() >= claims["exp"] - 1, "refused before it expired"
        assert me() == 401
    finally:
        g2.stop()


def admin_token():
    out = cli("user", "add", "root@example.com", "--role", "admin", stdin=PASSWORD + "\n")
    assert out.returncode == 0 or "exists" in out.stderr, out.stderr
    r = post("/auth/login", {"email": "root@example.com", "password": PASSWORD})
    assert r.status == 200, r.body
    return r.json()["data"]["access_token"]


def test_api_keys_scopes_and_revocation():
    member = register("mallory@example.com")["access_token"]
    assert get("/api/v1/keys", member).status == 403
    assert post("/api/v1/keys", {"name": "x", "scopes": ["admin"]}, member).status == 403
    assert get("/api/v1/keys").status == 401
    admin = admin_token()
    r = post("/api/v1/keys", {"name": "station-7", "scopes": ["write"]}, admin)
    assert r.status == 201, r.body
    key = r.json()["data"]
    assert key["key"].startswith("grv_") and key["scopes"] == "write"
    for bad in ({"name": "x", "scopes": ["root"]}, {"name": "", "scopes": ["read"]}, {"name": "x"},
                {"name": "x", "scopes": []}):
        assert post("/api/v1/keys", bad, admin).status == 400, bad
    r = get("/auth/me", key["key"])
    assert r.status == 200 and r.json()["data"] == {"kind": "api_key", "id": key["id"], "role": "key",
                                                      "scopes": "write"}
    assert get("/auth/me", headers={"X-API-Key": key["key"]}).status == 200
    assert get("/api/v1/keys", key["key"]).status == 403  # write scope is not admin
    listed = get("/api/v1/keys", admin).json()["data"]
    entry = [k for k in listed if k["id"] == key["id"]][0]
    assert "key" not in entry and "hash" not in entry and entry["prefix"] == key["key"][:12]
    eventually(lambda: [k for k in get("/api/v1/keys", admin).json()["data"] if k["id"] == key["id"]][0]
               ["last_used_at"] is not None, what="last_used_at recorded")
    r = g.request("DELETE", "/api/v1/keys/" + key["id"], headers={"Authorization": "Bearer " + admin})
    assert r.status == 200
    assert get("/auth/me", key["key"]).status == 401
    r = g.request("DELETE", "/api/v1/keys/" + key["id"], headers={"Authorization": "Bearer " + admin})
    assert r.status == 404
    assert get("/auth/me", "grv_" + "0" * 40).status == 401


def test_cli_keys_work_against_the_server():
    out = cli("key", "add", "agent-1", "--scopes", "read,write")
    assert out.returncode == 0, out.stderr
    kid, key = out.stdout.split()
    eventually(lambda: get("/auth/me", key).status == 200, what="key seen by the server")
    assert cli("key", "revoke", kid).returncode == 0
    eventually(lambda: get("/auth/me", key).status == 401, what="revocation seen")
    out = cli("key", "revoke", "key_nope")
    assert out.returncode == 1 and "no active key" in out.stderr
    assert cli("key", "add", "x", "--scopes", "superuser").returncode == 1


def test_disabled_user_is_locked_out():
    d = register("frank@example.com")
    assert cli("user", "disable", "frank@example.com").returncode == 0
    eventually(lambda: get("/auth/me", d["access_token"]).status == 401, what="disabled user refused")
    r = post("/auth/login", {"email": "frank@example.com", "password": PASSWORD})
    assert r.status == 403 and r.json()["error_code"] == "USER_DISABLED"
    assert post("/auth/refresh", {"refresh_token": d["refresh_token"]}).status == 403
    assert cli("user", "enable", "frank@example.com").returncode == 0
    assert post("/auth/login", {"email": "frank@example.com", "password": PASSWORD}).status == 200


def test_cli_password_change_ends_sessions():
    d = register("gina@example.com")
    assert cli("user", "passwd", "gina@example.com", stdin="another password\n").returncode == 0
    assert post("/auth/refresh", {"refresh_token": d["refresh_token"]}).status == 401
    assert post("/auth/login", {"email": "gina@example.com", "password": "another password"}).status == 200
    out = cli("user", "passwd", "nobody@example.com", stdin="another password\n")
    assert out.returncode == 1 and "no user" in out.stderr
    out = cli("user", "add", "weak@example.com", stdin="short\n")
    assert out.returncode == 1 and "at least 8" in out.stderr
    out = cli("user", "list")
    assert "gina@example.com" in out.stdout and "member" in out.stdout


def test_audit_log_for_admins():
    admin = admin_token()
    post("/auth/login", {"email": "ada@example.com", "password": "bad guess"})
    r = get("/api/v1/audit?limit=50", admin)
    assert r.status == 200, r.body
    entries = r.json()["data"]
    failed = [e for e in entries if e["action"] == "user.login" and e["outcome"] == "INVALID_CREDENTIALS"]
    assert failed and failed[0]["ip"] == "127.0.0.1" and failed[0]["target"] == "ada@example.com"
    assert all(set(e) >= {"id", "at", "actor", "action", "target", "outcome", "ip", "request_id"} for e in entries)
    older = get("/api/v1/audit?limit=2&before=%d" % entries[0]["id"], admin).json()["data"]
    assert len(older) == 2 and older[0]["id"] < entries[0]["id"]
    assert get("/api/v1/audit", register("nosy@example.com")["access_token"]).status == 403
    assert get("/api/v1/audit?limit=0", admin).status == 400
    assert get("/api/v1/users", admin).status == 200


def test_security_headers_and_cors():
    r = get("/health")
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("x-frame-options") == "DENY"
    assert "default-src 'self'" in r.header("content-security-policy")
    assert r.header("access-control-allow-origin") is None
    r = get("/health", headers={"Origin": "https://console.example"})
    assert r.header("access-control-allow-origin") == "https://console.example"
    assert r.header("vary") == "Origin"
    r = get("/health", headers={"Origin": "https://evil.example"})
    assert r.header("access-control-allow-origin") is None
    r = g.request("OPTIONS", "/api/v1/keys", headers={"Origin": "https://console.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert r.status == 204 and "POST" in r.header("access-control-allow-methods")
    assert "Authorization" in r.header("access-control-allow-headers")


def test_registration_can_be_closed():
    g2 = Grove("--registration", "false", *FAST)
    try:
        r = g2.request("POST", "/auth/register", body=json.dumps({"email": "z@example.com", "password": PASSWORD}).encode(),
                       headers={"Content-Type": "application/json"})
        assert r.status == 403 and r.json()["error_code"] == "REGISTRATION_CLOSED"
    finally:
        g2.stop()


def test_secrets_never_logged():
    log = g.output()
    for secret in (PASSWORD, "grt_", "grv_", "eyJ", "another password"):
        assert secret not in log, secret


if __name__ == "__main__":
    main(globals())
