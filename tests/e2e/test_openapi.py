"""Every route grove serves is described in the OpenAPI document, and
every path there is served. The document is merged at build
(build/openapi.yaml): docs/api/openapi.yaml holds the platform's routes,
docs/api/<app>.yaml each app's; a route is documented in its owner's
fragment when the owner has one, else in openapi.yaml."""

import glob
import os
import re
import subprocess

from grove import GROVE, ROOT, Grove, eventually, run

API = os.path.join(ROOT, "docs", "api")
MERGED = os.environ.get("GROVE_OPENAPI", os.path.join(os.path.dirname(GROVE), "openapi.yaml"))


def spec_routes(path):
    text = open(path).read()
    routes = set()
    where = None
    for line in text.split("\n"):
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            where = m.group(1)
            continue
        m = re.match(r"^    (get|head|options|post|put|patch|delete):\s*$", line)
        if m and where:
            routes.add((m.group(1).upper(), where))
    return routes


def served_routes():
    """{(method, pattern): owner} from grove's debug log of its routes."""
    g = Grove("--log-level", "debug")
    try:
        eventually(lambda: "pattern=" in g.output(), what="route log")
        found = {}
        for m in re.finditer(r"route method=(\S+) pattern=(\S+) owner=(\S+)", g.output()):
            found[(m.group(1), re.sub(r"\{(\w+)\.\.\.\}", r"{\1}", m.group(2)))] = m.group(3)
        return found
    finally:
        g.stop()


def test_every_route_is_documented():
    served, spec = served_routes(), spec_routes(MERGED)
    assert served, "no routes logged"
    missing = set(served) - spec
    assert not missing, "routes missing from the OpenAPI document: %s" % sorted(missing)
    stale = spec - set(served)
    assert not stale, "documented routes grove does not serve: %s" % sorted(stale)


def test_each_route_is_in_its_owners_fragment():
    fragments = {os.path.basename(p)[:-5]: spec_routes(p) for p in glob.glob(os.path.join(API, "*.yaml"))}
    for route, owner in served_routes().items():
        where = owner if owner in fragments and owner != "openapi" else "openapi"
        assert route in fragments[where], "%s %s (of %s) belongs in docs/api/%s.yaml" % (route + (owner, where))


def test_merged_document_is_the_parts():
    merged = spec_routes(MERGED)
    parts = set()
    for p in glob.glob(os.path.join(API, "*.yaml")):
        parts |= spec_routes(p)
    assert merged == parts, sorted(merged ^ parts)


def test_document_is_valid_yaml():
    check = ("import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); "
             "assert d['openapi'].startswith('3.') and d['paths']")
    try:
        import yaml  # noqa: F401
        python = "python3"
    except ImportError:
        python = "/usr/bin/python3"  # Debian's, with python3-yaml from scripts/setup.sh
    out = subprocess.run([python, "-c", check, MERGED], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


if __name__ == "__main__":
    run([test_every_route_is_documented, test_each_route_is_in_its_owners_fragment,
         test_merged_document_is_the_parts, test_document_is_valid_yaml])
