#!/bin/sh
# bench/console — the console's figures (issue #11): the first load
# (index.html, style.css, app.js and the running apps' scripts, flow.js and
# matrix.js, as grove sends them gzip'ed) and
# what the first chart adds (Chart.js), beside the 200 KB budget; a chart of
# 10,000 points drawn in Chromium by the console's chart (Chart.js) beside
# uPlot (npm) drawing the same points in the same browser; and the page's
# JavaScript heap over a long live run (the simulator writing 42 stations in
# 4 regions at ten times real time), which must stay flat.
# Targets: first load <= 200 KB compressed; 10,000 points drawn in under
# 100 ms; heap at the end within 20% (+1 MB) of the heap at the start.
# LIVE_SECONDS (default 120) sets the live run's length.
. "$(dirname "$0")/../lib.sh"
(cd bench/console && [ -d node_modules/uplot ] || npm ci --no-audit --no-fund --loglevel=error)
export NODE_PATH="$PWD/bench/console/node_modules"
work=$(mktemp -d)
port=$(free_port)
url="http://127.0.0.1:$port"
./build/grove user add bench@example.com --role admin --data-dir "$work/data" --argon2-memory 8192 --argon2-passes 1 \
  >/dev/null <<PW
bench console password
PW
key=$(./build/grove key add bench-console --scopes write --data-dir "$work/data" | cut -d' ' -f2)
./build/grove serve --listen "127.0.0.1:$port" --log-level warn --data-dir "$work/data" --web-root web \
  --argon2-memory 8192 --argon2-passes 1 &
pid=$!
trap 'kill $pid 2>/dev/null; sleep 0.3; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP PIPE # the EXIT trap cleans up
wait_http "$url/health"
gz() { curl -s -H 'Accept-Encoding: gzip' "$url$1" | wc -c; }
bytes=0
for f in / /style.css /app.js /flow.js /matrix.js; do bytes=$((bytes + $(gz $f))); done
lib=$(gz /javascript/chart.js/chart.min.js)
set -- $(GROVE_URL=$url node bench/console/chart.js)
draw=$1 uplot=$2
secs=${LIVE_SECONDS:-120}
./build/grove flow simulate --url "$url" --key "$key" --stations 42 --regions 4 --rate 252 \
  --duration "$((secs + 30))s" >/dev/null 2>&1 &
sim=$!
set -- $(GROVE_URL=$url GROVE_EMAIL=bench@example.com GROVE_PASSWORD='bench console password' \
  SECONDS=$secs SAMPLE=5 node bench/console/live.js)
kill $sim 2>/dev/null || true
echo "name value unit peer_value ratio"
awk -v b="$bytes" 'BEGIN { printf "console_first_load %d bytes 204800 %.3f (gzip; peer: the 200 KB budget)\n", b, b / 204800 }'
awk -v b="$bytes" -v l="$lib" 'BEGIN { printf "console_with_chart %d bytes 204800 %.3f (first load + Chart.js %d, loaded when a chart first opens)\n", b + l, (b + l) / 204800, l }'
awk -v g="$draw" -v u="$uplot" 'BEGIN { printf "chart_10k_points_ms %.2f ms %.2f %.2f (peer: uPlot drawing the same points, same Chromium; target < 100 ms)\n", g, u, g / u }'
awk -v a="$1" -v z="$2" -v m="$3" -v n="$4" -v t="$5" -v s="$secs" 'BEGIN {
  printf "heap_after_live_run %d bytes %d %.3f (peer: the heap %d s before, %d samples, max %d, %d tiles live)\n", z, a, z / a, s, n, m, t
  if (z > a * 1.2 + 1048576) { print "heap grew over the live run" > "/dev/stderr"; exit 1 } }'
