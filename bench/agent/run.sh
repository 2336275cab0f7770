#!/bin/sh
# bench/agent/run.sh — grove-agent's own cost at a 5 s interval beside
# prometheus-node-exporter (scraped every 5 s) and netdata's apps.plugin
# (update every 5 s), all collecting this machine in the same run.
# DURATION seconds (default 60), PROCS processes on the machine (idle
# ones added up to 400 by default). Not part of the test suite.
# Prints `name value unit peer_value ratio` lines (STYLE.md).
. "$(dirname "$0")/../lib.sh"
DURATION=${DURATION:-60}
for p in prometheus-node-exporter netdata; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "bench/agent needs $p (scripts/setup.sh bench)" >&2; exit 1; }
done
exec python3 bench/agent/measure.py build/grove-agent "$DURATION"
