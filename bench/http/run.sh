#!/bin/sh
# bench/http — Grove's HTTP server beside nginx, same machine, same run.
#
# 1. req/s and p99 latency of a small JSON GET (grove's /health, and nginx
#    returning the same bytes from memory), wrk with 2 threads and 64
#    connections, both servers on 2 threads/workers. Target: grove >= 0.9x
#    nginx's req/s with p99 <= 1.5x nginx's.
# 2. resident memory per idle WebSocket connection with 10,000 open
#    (target <= 8 KiB), beside nginx's per idle keep-alive connection.
#    The 10,000 come from one address without a credential, so the rate
#    limits are off for this run (/health is never limited anyway).
# Prints one line per figure: name value unit peer_value ratio.
#   DURATION=10 CONNS=64 WS_CONNS=10000
. "$(dirname "$0")/../lib.sh"
WS_CONNS=${WS_CONNS:-10000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
gport=$(free_port)
nport=$(free_port)

grove_start "$work" "$gport" --live-ping 10m \
  --rate-global 0 --rate-anonymous 0

# nginx answers with the very bytes grove answers
body=$(curl -s "http://127.0.0.1:$gport/health" | sed "s/'/\\\\'/g")
nginx_start "$work" 2 20000 <<CONF
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  server {
    listen 127.0.0.1:$nport reuseport;
    location = /health { default_type application/json; return 200 '$body'; }
  }
CONF
wait_http "http://127.0.0.1:$nport/health"

run_wrk() { # url -> "rps p99_ms"
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$1" | awk '
    /Requests\/sec/ { rps = $2 }
    /^ +99%/ { v = $2; if (v ~ /us$/) { sub("us","",v); v = v / 1000 }
               else if (v ~ /ms$/) { sub("ms","",v) } else if (v ~ /s$/) { sub("s","",v); v = v * 1000 }
               p99 = v }
    END { printf "%s %s\n", rps, p99 }'
}
# warm both, then measure alternately
wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$gport/health" >/dev/null
wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$nport/health" >/dev/null
set -- $(run_wrk "http://127.0.0.1:$gport/health"); g_rps=$1; g_p99=$2
set -- $(run_wrk "http://127.0.0.1:$nport/health"); n_rps=$1; n_p99=$2

echo "name value unit peer_value ratio"
awk -v g="$g_rps" -v n="$n_rps" 'BEGIN { printf "http_json_get_rps %.0f req/s %.0f %.2f (target >= 0.90)\n", g, n, g / n }'
awk -v g="$g_p99" -v n="$n_p99" 'BEGIN { printf "http_json_get_p99 %.3f ms %.3f %.2f (target <= 1.50)\n", g, n, g / n }'
python3 bench/http/idle_memory.py "$gpid" "$gport" "$(cat "$work/nginx.pid")" "$nport" "$WS_CONNS"
