"""Installing Grove: `cmake --install` into a temporary DESTDIR and the
.deb CPack builds, each serving the web console from its own tree when
started from `/` (issue 9.15), and the build-tree binary finding the
checkout's console from anywhere."""

import os
import re
import shutil
import subprocess
import tempfile

from grove import GROVE, ROOT, Grove, run, main

BUILD = os.path.dirname(os.path.abspath(GROVE))


def cache(name):
    text = open(os.path.join(BUILD, "CMakeCache.txt")).read()
    return re.search(r"^%s:\w+=(.*)$" % name, text, re.M).group(1)


def serves_console_from(binary, web, cwd="/", extra=()):
    """Starts `binary serve` in cwd with no --web-root; / must be the
    console's index.html from `web`, and the log must name that folder."""
    data = tempfile.mkdtemp(prefix="grove-inst-data-")
    g = Grove("--data-dir", data, *extra, web_root=False, cwd=cwd, binary=binary)
    try:
        r = g.request("GET", "/")
        assert r.status == 200, (r.status, g.output()[-2000:])
        assert r.body == open(os.path.join(web, "index.html"), "rb").read()
        assert g.request("GET", "/app.js").status == 200
        assert g.request("GET", "/flow.js").status == 200
        # the console's charts: Debian's libjs-chart.js (a dependency of the .deb), served at /javascript/
        r = g.request("GET", "/javascript/chart.js/chart.min.js")
        assert r.status == 200 and b"Chart.js" in r.body[:200], r.status
        assert 'web console root="%s"' % os.path.realpath(web) in g.output(), g.output()[-2000:]
    finally:
        g.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_install_into_a_destdir_serves_its_console_from_slash():
    dest = tempfile.mkdtemp(prefix="grove-destdir-")
    try:
        out = subprocess.run(["cmake", "--install", BUILD], env=dict(os.environ, DESTDIR=dest),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        prefix = cache("CMAKE_INSTALL_PREFIX")
        root = dest + prefix
        for f in ("bin/grove", "share/grove/web/index.html", "share/grove/web/app.js",
                  "share/grove/grove.conf", "share/grove/grove.conf.example", "share/grove/nginx.conf",
                  "share/doc/grove/operations.md", "share/doc/grove/README.md",
                  "share/doc/grove/copyright", "share/doc/grove/api/openapi.yaml",
                  "lib/systemd/system/grove.service"):
            assert os.path.isfile(os.path.join(root, f)), f
        assert os.access(os.path.join(root, "bin/grove"), os.X_OK)
        unit = open(os.path.join(root, "lib/systemd/system/grove.service")).read()
        assert "\nExecStart=%s/bin/grove serve\n" % prefix in unit, unit  # the path without DESTDIR
        assert "@" not in unit.split("[Unit]", 1)[1]
        assert os.access(os.path.join(root, "bin/grove-agent"), os.X_OK)
        agent_unit = open(os.path.join(root, "lib/systemd/system/grove-agent.service")).read()
        assert "\nExecStart=%s/bin/grove-agent " % prefix in agent_unit, agent_unit
        assert "@" not in agent_unit.split("[Unit]", 1)[1]
        assert "AGPL-3.0-or-later" in open(os.path.join(root, "share/doc/grove/copyright")).read()
        # the example config is one grove reads
        conf = os.path.join(root, "share/grove/grove.conf")
        check = subprocess.run([os.path.join(root, "bin/grove"), "serve", "--config", conf, "--help"],
                               capture_output=True, text=True)
        assert check.returncode == 0
        serves_console_from(os.path.join(root, "bin/grove"), os.path.join(root, "share/grove/web"))
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_deb_has_its_dependencies_and_serves_its_console():
    if not shutil.which("cpack") or not shutil.which("dpkg-deb"):
        raise AssertionError("cpack and dpkg-deb are needed (scripts/setup.sh test)")
    out_dir = tempfile.mkdtemp(prefix="grove-deb-")
    try:
        out = subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"),
                              "-B", out_dir], capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, out.stdout + out.stderr
        debs = [f for f in os.listdir(out_dir) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        deb = os.path.join(out_dir, debs[0])
        assert re.match(r"grove_\d+\.\d+\.\d+_\w+\.deb$", debs[0]), debs[0]

        def field(name):
            return subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True).stdout.strip()
        depends = field("Depends")
        # the runtime packages of every library grove links, found by dpkg-shlibdeps
        for pkg in ("adduser", "libjs-chart.js", "libc6", "libuv1", "libjansson4", "libsqlite3-0", "libpq5", "libhiredis0.14",
                    "libwslay1", "libhttp-parser2.9", "libssl3", "zlib1g", "libargon2-1"):
            assert re.search(r"(^|, )%s( \(|,|$)" % re.escape(pkg), depends), (pkg, depends)
        assert "-dev" not in depends, depends
        assert field("Package") == "grove" and field("Version") == cache("CMAKE_PROJECT_VERSION")
        assert "<" in field("Maintainer") and field("Section") == "net"
        listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
        for f in ("./usr/bin/grove", "./usr/share/grove/web/index.html", "./usr/lib/systemd/system/grove.service",
                  "./usr/share/doc/grove/copyright", "./usr/share/grove/grove.conf"):
            assert f in listing, f
        control = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True, text=True).stdout
        assert "postinst" in control and "postrm" in control
        # unpacked anywhere, it serves its own console (started from /)
        tree = os.path.join(out_dir, "root")
        subprocess.run(["dpkg-deb", "-x", deb, tree], check=True)
        unit = open(os.path.join(tree, "usr/lib/systemd/system/grove.service")).read()
        assert "\nExecStart=/usr/bin/grove serve\n" in unit, unit
        assert "AGPL-3.0-or-later" in open(os.path.join(tree, "usr/share/doc/grove/copyright")).read()
        serves_console_from(os.path.join(tree, "usr/bin/grove"), os.path.join(tree, "usr/share/grove/web"))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def test_build_tree_binary_finds_the_checkouts_console_from_anywhere():
    serves_console_from(GROVE, os.path.join(ROOT, "web"), cwd=tempfile.mkdtemp(prefix="grove-cwd-"))


def test_an_empty_web_root_serves_no_console():
    data = tempfile.mkdtemp(prefix="grove-inst-data-")
    g = Grove("--data-dir", data, "--web-root", "", web_root=False, cwd="/")
    try:
        assert g.request("GET", "/").status == 404
        assert "web console" not in g.output()
    finally:
        g.stop()


if __name__ == "__main__":
    main(globals())
