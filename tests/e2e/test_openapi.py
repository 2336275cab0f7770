"""Every route grove serves is described in docs/api/openapi.yaml, and
every path there is served."""

import os
import re

from grove import ROOT, Grove, eventually, run


def spec_routes():
    text = open(os.path.join(ROOT, "docs", "api", "openapi.yaml")).read()
    routes = set()
    path = None
    for line in text.split("\n"):
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            path = m.group(1)
            continue
        m = re.match(r"^    (get|post|put|patch|delete):\s*$", line)
        if m and path:
            routes.add((m.group(1).upper(), path))
    return routes


def served_routes():
    g = Grove("--log-level", "debug")
    try:
        eventually(lambda: "pattern=" in g.output(), what="route log")
        found = set()
        for m in re.finditer(r"route method=(\S+) pattern=(\S+)", g.output()):
            found.add((m.group(1), re.sub(r"\{(\w+)\.\.\.\}", r"{\1}", m.group(2))))
        return found
    finally:
        g.stop()


def test_every_route_is_documented():
    served, spec = served_routes(), spec_routes()
    assert served, "no routes logged"
    missing = served - spec
    assert not missing, "routes missing from docs/api/openapi.yaml: %s" % sorted(missing)
    stale = spec - served
    assert not stale, "documented routes grove does not serve: %s" % sorted(stale)


def test_document_is_valid_yaml():
    import subprocess
    path = os.path.join(ROOT, "docs", "api", "openapi.yaml")
    check = ("import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); "
             "assert d['openapi'].startswith('3.') and d['paths']")
    try:
        import yaml  # noqa: F401
        python = "python3"
    except ImportError:
        python = "/usr/bin/python3"  # Debian's, with python3-yaml from scripts/setup.sh
    out = subprocess.run([python, "-c", check, path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


if __name__ == "__main__":
    run([test_every_route_is_documented, test_document_is_valid_yaml])
