"""The grove command: verbs, help, configuration precedence."""

import os
import subprocess
import tempfile

from grove import GROVE, Grove, run, main


def grove(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([GROVE] + list(args), capture_output=True, text=True, timeout=20, env=e)


def test_help_lists_verbs():
    for args in (["--help"], ["help"], ["-h"]):
        out = grove(*args)
        assert out.returncode == 0
        for verb in ("serve", "version", "help"):
            assert "  %s " % verb in out.stdout


def unfinished_paragraphs(text):
    """Prose paragraphs of a help text (not usage lines, not tables) whose
    last line does not end a sentence."""
    bad = []
    for para in text.split("\n\n"):
        lines = [l for l in para.split("\n") if l.strip()]
        if not lines or lines[0].startswith((" ", "usage:")) or lines[0].endswith(":"):
            continue
        if not lines[-1].rstrip().endswith((".", ")", ":")):
            bad.append(lines[-1])
    return bad


def test_every_verb_has_finished_help():
    """Issue 9.17: `grove --help` ended mid-sentence. Every verb listed
    answers --help and `grove help VERB` with a help that ends its
    sentences and ends with a newline."""
    import re
    top = grove("--help").stdout
    assert not unfinished_paragraphs(top), unfinished_paragraphs(top)
    assert top.endswith(".\n"), top[-200:]
    verbs = re.findall(r"^  (\w+) ", top.split("verbs:", 1)[1], re.M)
    assert {"serve", "user", "key", "flow", "version", "help"} <= set(verbs), verbs
    for verb in verbs:
        if verb == "help":
            continue
        a = grove("help", verb)
        b = grove(verb, "--help")
        assert a.returncode == 0 and b.returncode == 0, (verb, a.stderr, b.stderr)
        assert a.stdout.startswith("usage: ") and a.stdout.endswith("\n"), (verb, a.stdout[:200])
        assert b.stdout == a.stdout, verb
        assert not unfinished_paragraphs(a.stdout), (verb, unfinished_paragraphs(a.stdout))
    out = grove("help", "frobnicate")
    assert out.returncode == 2 and "unknown verb 'frobnicate'" in out.stderr


def test_serve_help_documents_every_option():
    out = grove("serve", "--help")
    assert out.returncode == 0
    for opt in ("--listen", "--threads", "--max-body", "--max-header", "--max-headers", "--max-url",
                "--header-timeout", "--body-timeout", "--idle-timeout", "--gzip-min", "--web-root",
                "--shutdown-timeout", "--store", "--data-dir", "--store-pool", "--broker",
                "--live-max-queue", "--live-history", "--log-format", "--log-level", "--config"):
        assert opt in out.stdout, opt
        if opt != "--config":
            assert "GROVE_" + opt[2:].upper().replace("-", "_") in out.stdout, opt
    assert grove("help", "serve").stdout == out.stdout


def test_operations_doc_lists_every_option():
    import re
    from grove import ROOT
    doc = open(os.path.join(ROOT, "docs", "operations.md")).read()
    opts = re.findall(r"^  (--[\w-]+) ", grove("serve", "--help").stdout, re.M)
    missing = [o for o in opts if o not in ("--config", "--help") and "`%s`" % o not in doc]
    assert not missing, "options missing from docs/operations.md: %s" % missing


def test_version():
    out = grove("version")
    assert out.returncode == 0 and out.stdout.startswith("grove 0.1.0")
    assert "libuv" in out.stdout and "sqlite" in out.stdout


def test_unknown_verb_and_option():
    out = grove("frobnicate")
    assert out.returncode == 2 and "unknown verb 'frobnicate'" in out.stderr
    out = grove("serve", "--no-such-thing")
    assert out.returncode == 2 and "unknown option '--no-such-thing'" in out.stderr
    out = grove("serve", "--threads", "many")
    assert out.returncode == 2 and "bad value 'many'" in out.stderr
    out = grove("serve", "--log-format", "xml")
    assert out.returncode == 2
    out = grove()
    assert out.returncode == 2 and "usage" in out.stderr


def test_config_file_env_and_flags():
    d = tempfile.mkdtemp()
    conf = os.path.join(d, "grove.conf")
    with open(conf, "w") as f:
        f.write("# grove\nmax-url = 100\nlog-format = json\naccess-log = false\n")
    url = "/health?" + "a" * 150  # a request line of about 170 bytes
    g = Grove("--config", conf)  # file: max-url 100, json logs
    try:
        assert g.request("GET", url).status == 414
        assert g.output().lstrip().startswith("{")
    finally:
        g.stop()
    g = Grove("--config", conf, env={"GROVE_MAX_URL": "200", "GROVE_LOG_FORMAT": "text"})
    try:  # the environment wins over the file
        assert g.request("GET", url).status == 200
        assert not g.output().lstrip().startswith("{")
    finally:
        g.stop()
    g = Grove("--config", conf, "--max-url", "120", env={"GROVE_MAX_URL": "200"})
    try:  # a flag wins over both
        assert g.request("GET", url).status == 414
    finally:
        g.stop()
    out = grove("serve", "--config", "/nonexistent/grove.conf")
    assert out.returncode == 2 and "cannot open config file" in out.stderr


def test_serve_and_key_add_at_once_on_an_empty_data_dir():
    """Issue 9.14: `grove serve &` and `grove key add` started together on
    an empty data dir both succeed (migrations and first writes wait for
    SQLite's lock); every round must pass, whatever order they run in."""
    for rnd in range(15):
        d = tempfile.mkdtemp(prefix="grove-first-")
        data = os.path.join(d, "data")
        g = Grove("--data-dir", data, wait=False)
        keys = [subprocess.Popen([GROVE, "key", "add", "k%d" % i, "--data-dir", data],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(2)]
        try:
            for k in keys:
                out, err = k.communicate(timeout=30)
                assert k.returncode == 0, (rnd, err)
                assert out.startswith("key_"), out  # stdout holds the id and key only
                assert "using sqlite database '%s/grove.db'" % data in err, err
            g.wait_listening()
            assert g.request("GET", "/ready").status == 200
            assert "error" not in g.output(), g.output()
        finally:
            g.stop()
        listed = grove("key", "list", "--data-dir", data).stdout
        assert "\tk0\t" in listed and "\tk1\t" in listed, listed


def test_key_add_names_the_database_it_used():
    """Without --data-dir, `grove key add` uses ./data/grove.db and says so
    on stderr (stdout stays the id and the key)."""
    d = tempfile.mkdtemp(prefix="grove-cwd-")
    e = dict(os.environ)
    for k in ("GROVE_DATA_DIR", "GROVE_STORE", "GROVE_CONFIG"):
        e.pop(k, None)
    out = subprocess.run([GROVE, "key", "add", "here"], cwd=d, capture_output=True, text=True,
                         timeout=20, env=e)
    assert out.returncode == 0, out.stderr
    path = os.path.join(os.path.realpath(d), "data", "grove.db")
    assert "using sqlite database '%s' (a new file" % path in out.stderr, out.stderr
    assert len(out.stdout.split()) == 2 and out.stdout.startswith("key_"), out.stdout
    again = subprocess.run([GROVE, "key", "list"], cwd=d, capture_output=True, text=True,
                           timeout=20, env=e)
    assert "using sqlite database '%s'\n" % path in again.stderr, again.stderr
    assert "\there\t" in again.stdout


if __name__ == "__main__":
    main(globals())
