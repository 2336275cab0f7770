"""Runs a command with GROVE_TEST_STORE set to a fresh PostgreSQL server
started on a loopback port for it, and stops the server after."""

import os
import subprocess
import sys

from grove import Postgres

pg = Postgres()
try:
    env = dict(os.environ, GROVE_TEST_STORE=pg.url)
    sys.exit(subprocess.run(sys.argv[1:], env=env).returncode)
finally:
    pg.stop()
