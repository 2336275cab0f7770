"""The job queue end to end on a real grove: jobs enqueued over HTTP run on
the workers (the built-in jobs.noop type), /tasks reports and cancels them
for their owner only, admins see queues and dead letters, /metrics counts
them, `grove jobs` manages them; an enqueue burst is cut by kill -9 and
every acknowledged job is there once after the restart and runs; two
instances on one PostgreSQL database run every job to completion exactly
once in the record."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time

from grove import GROVE, EventStream, Grove, Postgres, Redis, eventually, main, stop_all

g = None
ADMIN = None
READER = None
NOLIMIT = ["--rate-key", "0", "--rate-global", "0"]  # bursts measure the queue, not the limits


def key(scopes, *where):
    out = subprocess.run([GROVE, "key", "add", "k-" + scopes.replace(",", "-"), "--scopes", scopes] + list(where),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def setup():
    global g, ADMIN, READER
    g = Grove("--jobs-lease", "2s", *NOLIMIT)
    ADMIN = key("read,write,admin", "--data-dir", g.data_dir)
    READER = key("read,write", "--data-dir", g.data_dir)


def enqueue(srv, k, body, headers=None):
    h = {"X-API-Key": k, "Content-Type": "application/json"}
    h.update(headers or {})
    return srv.request("POST", "/api/v1/jobs", body=json.dumps(body).encode(), headers=h)


def task(srv, k, tid):
    return srv.request("GET", "/tasks/" + tid, headers={"X-API-Key": k})


def state(srv, k, tid):
    r = task(srv, k, tid)
    return r.json()["data"]["state"] if r.status == 200 else None


def test_a_noop_job_runs_and_its_task_says_so():
    r = enqueue(g, ADMIN, {"type": "jobs.noop", "payload": {"n": 1}})
    assert r.status == 201, r.body
    tid = r.json()["data"]["task_id"]
    assert r.header("Location") == "/tasks/" + tid
    eventually(lambda: state(g, ADMIN, tid) == "succeeded", what="the job to succeed")
    d = task(g, ADMIN, tid).json()["data"]
    assert d["progress"]["percent"] == 100 and d["attempts"] == 1 and d["error"] is None, d
    assert d["queue"] == "default" and d["type"] == "jobs.noop" and d["finished_at"], d


def test_progress_topic_is_its_owners_alone():
    """jobs/{id} is read by the task's owner (or an admin), no one else."""
    r = enqueue(g, ADMIN, {"type": "jobs.noop", "run_at": "2100-01-01T00:00:00Z"})
    tid = r.json()["data"]["task_id"]
    es = EventStream(g, "topic=jobs/" + tid, headers={"X-API-Key": READER})
    assert es.response.status == 403, es.response.status
    es.close()
    es = EventStream(g, "topic=jobs/" + tid, headers={"X-API-Key": ADMIN})
    assert es.response.status == 200, es.response.status
    r = g.request("DELETE", "/tasks/" + tid, headers={"X-API-Key": ADMIN})
    assert r.status == 200, r.body
    ev = es.next_event()
    assert ev["data"]["topic"] == "jobs/" + tid and ev["data"]["data"]["state"] == "cancelled", ev
    es.close()


def test_the_same_idempotency_key_gives_the_same_job():
    a = enqueue(g, ADMIN, {"type": "jobs.noop", "idempotency_key": "upload-42"})
    b = enqueue(g, ADMIN, {"type": "jobs.noop"}, headers={"Idempotency-Key": "upload-42"})
    assert a.status == 201 and b.status == 200, (a.body, b.body)
    assert a.json()["data"]["task_id"] == b.json()["data"]["task_id"]
    assert b.json()["data"]["existed"] is True


def test_bad_input_and_other_owners_get_the_error_envelope():
    r = enqueue(g, ADMIN, {"type": "no.such.type"})
    assert r.status == 400 and r.json()["error_code"] == "INVALID_INPUT", r.body
    r = enqueue(g, ADMIN, {"type": "jobs.noop", "run_at": "yesterday"})
    assert r.status == 400, r.body
    # each refusal names what is wrong
    for body, why in (({"type": "x" * 64}, "at most 63"),
                      ({"type": "jobs.noop", "run_at": "9999-12-31T23:59:59Z"}, "outside the times"),
                      ({"type": "jobs.noop", "run_at": "0001-01-01T00:00:00Z"}, "outside the times")):
        r = enqueue(g, ADMIN, body)
        assert r.status == 400 and why in r.json()["message"], r.body
    r = enqueue(g, ADMIN, {"type": "jobs.noop", "idempotency_key": "k2"}, headers={"Idempotency-Key": "k3"})
    assert r.status == 400 and "differ" in r.json()["message"], r.body
    # settings the route does not take are refused, not silently ignored
    for extra in ({"priority": 9}, {"max_attempts": 1}, {"queue": "ocr"}):
        r = enqueue(g, ADMIN, dict({"type": "jobs.noop"}, **extra))
        assert r.status == 400 and "unknown field '%s'" % list(extra)[0] in r.json()["message"], r.body
    r = enqueue(g, READER, {"type": "jobs.noop"})
    assert r.status == 403, r.body
    r = enqueue(g, ADMIN, {"type": "jobs.noop"})
    tid = r.json()["data"]["task_id"]
    assert task(g, READER, tid).status == 404           # not the reader's
    r = g.request("DELETE", "/tasks/" + tid, headers={"X-API-Key": READER})
    assert r.status == 404, r.body
    assert task(g, ADMIN, "nope").status == 404
    assert g.request("GET", "/tasks/" + tid).status == 401
    assert g.request("GET", "/api/v1/jobs/queues", headers={"X-API-Key": READER}).status == 403


def test_a_scheduled_job_is_cancelled_then_retried_by_an_admin():
    r = enqueue(g, ADMIN, {"type": "jobs.noop", "run_at": "2100-01-01T00:00:00Z"})
    tid = r.json()["data"]["task_id"]
    assert state(g, ADMIN, tid) == "queued"
    r = g.request("DELETE", "/tasks/" + tid, headers={"X-API-Key": ADMIN})
    assert r.status == 200 and r.json()["data"]["state"] == "cancelled", r.body
    r = g.request("DELETE", "/tasks/" + tid, headers={"X-API-Key": ADMIN})
    assert r.status == 409 and r.json()["details"]["state"] == "cancelled", r.body
    r = g.request("POST", "/api/v1/jobs/%s/retry" % tid, headers={"X-API-Key": ADMIN})
    assert r.status == 200, r.body
    # queued again to run now: a worker may take it at once, so it is
    # queued, running or done by the time we look; it ends succeeded
    assert state(g, ADMIN, tid) in ("queued", "running", "succeeded")
    eventually(lambda: state(g, ADMIN, tid) == "succeeded", what="the retried job to run")
    r = g.request("POST", "/api/v1/jobs/%s/retry" % tid, headers={"X-API-Key": ADMIN})
    assert r.status == 409, r.body  # neither dead nor cancelled


def test_admins_see_queues_dead_letters_and_metrics():
    r = enqueue(g, ADMIN, {"type": "jobs.noop", "run_at": "2100-01-01T00:00:00Z"})
    assert r.status == 201, r.body
    st, body = g.get_json("/api/v1/jobs/queues", headers={"X-API-Key": ADMIN})
    assert st == 200, body
    names = {q["queue"]: q for q in body["data"]}
    for q in ("ocr", "ai", "generation", "default"):
        assert q in names, names
    assert names["ocr"]["priority"] < names["ai"]["priority"] < names["generation"]["priority"]
    assert names["default"]["depth"] >= 1  # the scheduled one
    st, body = g.get_json("/api/v1/jobs/dead?limit=5", headers={"X-API-Key": ADMIN})
    assert st == 200 and body["data"] == [], body
    for bad in ("0", "1001", "x", "", "1" * 40):
        r = g.request("GET", "/api/v1/jobs/dead?limit=" + bad, headers={"X-API-Key": ADMIN})
        assert r.status == 400 and r.json()["error_code"] == "INVALID_INPUT", (bad, r.body)
        assert r.json()["message"] == "limit must be 1 to 1000", r.body
    m = g.request("GET", "/metrics").body.decode()
    assert re.search(r'grove_jobs_enqueued_total\{queue="default"\} [1-9]', m), m[-3000:]
    assert re.search(r'grove_jobs_succeeded_total\{queue="default"\} [1-9]', m)
    assert 'grove_jobs_queue_depth{queue="ocr"}' in m
    assert 'grove_jobs_wait_seconds_bucket{queue="default"' in m
    assert 'grove_jobs_run_seconds_count{queue="default"}' in m


def test_grove_jobs_verbs():
    r = enqueue(g, ADMIN, {"type": "jobs.noop", "run_at": "2100-01-01T00:00:00Z"})
    tid = r.json()["data"]["task_id"]
    run = lambda *a: subprocess.run([GROVE, "jobs"] + list(a) + ["--data-dir", g.data_dir],
                                    capture_output=True, text=True, timeout=30)
    out = run("queues")
    assert out.returncode == 0 and out.stdout.startswith("queue\tpriority\tdepth"), out
    out = run("show", tid)
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == "queued", out
    out = run("cancel", tid)
    assert out.returncode == 0 and "cancelled" in out.stdout, out
    assert state(g, ADMIN, tid) == "cancelled"
    out = run("cancel", tid)
    assert out.returncode == 1 and "finished already" in out.stderr, out
    out = run("retry", tid)
    assert out.returncode == 0, out
    out = run("dead")
    assert out.returncode == 0 and out.stdout.startswith("task_id\t"), out
    out = run("show", "0" * 32)
    assert out.returncode == 1 and "no such job" in out.stderr, out
    assert subprocess.run([GROVE, "jobs", "frob"], capture_output=True).returncode == 2


def burst(srv, k, acked, stop, prefix):
    """Enqueues with unique idempotency keys until stop is set; records the
    acknowledged (key, task_id) pairs."""
    i = 0
    while not stop.is_set():
        i += 1
        ik = "%s-%d" % (prefix, i)
        try:
            r = enqueue(srv, k, {"type": "jobs.noop", "idempotency_key": ik, "payload": {"i": i}})
        except OSError:
            return
        if r.status in (200, 201):
            acked.append((ik, r.json()["data"]["task_id"]))


def test_kill_9_during_an_enqueue_burst_loses_no_acknowledged_job():
    srv = Grove("--jobs-lease", "1s", *NOLIMIT)
    srv2 = None
    try:
        k = key("read,write,admin", "--data-dir", srv.data_dir)
        acked, stop = [], threading.Event()
        threads = [threading.Thread(target=burst, args=(srv, k, acked, stop, "t%d" % t)) for t in range(6)]
        for t in threads:
            t.start()
        eventually(lambda: len(acked) >= 300, timeout=60, interval=0.02, what="300 acknowledged enqueues")
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        stop.set()
        for t in threads:
            t.join()
        srv._stopped = True
        srv.log.close()
        srv2 = Grove("--jobs-lease", "1s", *NOLIMIT, data_dir=srv.data_dir)
        db = sqlite3.connect(os.path.join(srv.data_dir, "grove.db"))
        rows = db.execute("SELECT idem_key, id FROM jobs_jobs WHERE idem_key IS NOT NULL").fetchall()
        db.close()
        by_key = {}
        for ik, tid in rows:
            by_key.setdefault(ik, []).append(tid)
        for ik, tid in acked:
            assert by_key.get(ik) == [tid], (ik, tid, by_key.get(ik))
        # every job there runs to completion after the restart (leases of
        # the killed process expire and are retried)
        def all_done():
            db = sqlite3.connect(os.path.join(srv.data_dir, "grove.db"))
            n = db.execute("SELECT COUNT(*) FROM jobs_jobs WHERE state <> 'succeeded'").fetchone()[0]
            db.close()
            return n == 0
        eventually(all_done, timeout=60, what="every job to succeed after the restart")
    finally:
        stop_all(srv2)
        import shutil
        shutil.rmtree(srv.tmp, ignore_errors=True)


def counter(srv, name):
    m = srv.request("GET", "/metrics").body.decode()
    return sum(float(v) for v in re.findall(r'^%s\{[^}]*\} (\S+)$' % name, m, re.M))


def test_two_instances_on_postgres_complete_each_job_exactly_once():
    # with a broker: each instance's enqueues wake the other's workers
    pg, redis = Postgres(), Redis()
    a = b = None
    try:
        shared = ["--store", pg.url, "--broker", redis.url, "--jobs-lease", "2s"]
        a = Grove(*shared, "--jobs-concurrency", "default=8", *NOLIMIT)
        b = Grove(*shared, "--jobs-concurrency", "default=8", *NOLIMIT)
        k = key("read,write,admin", "--store", pg.url)
        ids = []
        lock = threading.Lock()

        def push(srv, n, prefix):
            for i in range(n):
                r = enqueue(srv, k, {"type": "jobs.noop", "idempotency_key": "%s-%d" % (prefix, i)})
                assert r.status == 201, r.body
                with lock:
                    ids.append(r.json()["data"]["task_id"])
        ts = [threading.Thread(target=push, args=(srv, 100, "%s%d" % (name, t)))
              for t in range(2) for srv, name in ((a, "a"), (b, "b"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(set(ids)) == 400
        eventually(lambda: pg.psql("SELECT COUNT(*) FROM jobs_jobs WHERE state = 'succeeded'") == "400",
                   timeout=60, what="400 jobs succeeded")
        assert pg.psql("SELECT COUNT(*) FROM jobs_jobs") == "400"
        # exactly once in the record: the fenced completions the two
        # instances made add up to the number of jobs
        done = counter(a, "grove_jobs_succeeded_total") + counter(b, "grove_jobs_succeeded_total")
        assert done == 400, done
        # either instance answers for any job
        assert state(a, k, ids[-1]) == "succeeded" and state(b, k, ids[0]) == "succeeded"
    finally:
        stop_all(a, b, pg, redis)


def test_an_api_instance_wakes_a_worker_instance_through_the_broker():
    # b runs the workers, a only takes requests; a's enqueues reach b's
    # dispatcher as broker messages
    pg, redis = Postgres(), Redis()
    a = b = None
    try:
        shared = ["--store", pg.url, "--broker", redis.url, *NOLIMIT]
        a = Grove(*shared, "--role", "api")
        b = Grove(*shared, "--role", "worker")
        k = key("read,write,admin", "--store", pg.url)
        for i in range(20):
            r = enqueue(a, k, {"type": "jobs.noop"})
            assert r.status == 201, r.body
            tid = r.json()["data"]["task_id"]
            eventually(lambda: state(a, k, tid) == "succeeded", timeout=30, what="job %d to succeed" % i)
        assert counter(b, "grove_jobs_succeeded_total") == 20
        assert counter(a, "grove_jobs_succeeded_total") == 0
    finally:
        stop_all(a, b, pg, redis)


if __name__ == "__main__":
    main(globals())
