"""Runs a command with GROVE_TEST_REDIS set to a fresh Redis server
started on a loopback port for it, and stops the server after."""

import os
import subprocess
import sys

from grove import Redis

redis = Redis()
try:
    env = dict(os.environ, GROVE_TEST_REDIS=redis.url)
    sys.exit(subprocess.run(sys.argv[1:], env=env).returncode)
finally:
    redis.stop()
