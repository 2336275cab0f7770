"""Runs a command with a fresh server of one kind started on a loopback
port for it, its URL in the variable the unit runners read, and stops the
server after:
  with_service.py postgres CMD…   GROVE_TEST_STORE=postgres://…
  with_service.py redis CMD…      GROVE_TEST_REDIS=redis://…
Exits with the command's status."""

import os
import subprocess
import sys

from grove import Postgres, Redis

SERVICES = {"postgres": (Postgres, "GROVE_TEST_STORE"), "redis": (Redis, "GROVE_TEST_REDIS")}

if len(sys.argv) < 3 or sys.argv[1] not in SERVICES:
    sys.exit("usage: with_service.py %s CMD..." % "|".join(SERVICES))
start, var = SERVICES[sys.argv[1]]
server = start()
try:
    env = dict(os.environ, **{var: server.url})
    sys.exit(subprocess.run(sys.argv[2:], env=env).returncode)
finally:
    server.stop()
