#!/bin/sh
# bench/console — the console's two figures (issue #5): the first load
# (index.html, style.css, app.js, flow.js as grove sends them gzip'ed)
# beside the 200 KB budget, and a chart of 10,000 points drawn in
# Chromium by the console's chart beside uPlot (npm) drawing the same
# points in the same browser. Targets: first load <= 200 KB compressed;
# 10,000 points drawn in under 100 ms.
. "$(dirname "$0")/../lib.sh"
(cd bench/console && [ -d node_modules/uplot ] || npm ci --no-audit --no-fund --loglevel=error)
work=$(mktemp -d)
port=$(free_port)
./build/grove serve --listen "127.0.0.1:$port" --log-level warn --data-dir "$work/data" --web-root web &
pid=$!
trap 'kill $pid 2>/dev/null; sleep 0.3; rm -rf "$work"' EXIT INT TERM
wait_http "http://127.0.0.1:$port/health"
bytes=0
for f in / /style.css /app.js /flow.js; do
  n=$(curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port$f" | wc -c)
  bytes=$((bytes + n))
done
set -- $(node bench/console/chart.js)
echo "name value unit peer_value ratio"
awk -v b="$bytes" 'BEGIN { printf "console_first_load %d bytes 204800 %.3f (gzip; peer: the 200 KB budget)\n", b, b / 204800 }'
awk -v g="$1" -v u="$2" 'BEGIN { printf "chart_10k_points_ms %.2f ms %.2f %.2f (peer: uPlot drawing the same points, same Chromium; target < 100 ms)\n", g, u, g / u }'
