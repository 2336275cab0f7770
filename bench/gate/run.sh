#!/bin/sh
# bench/gate — what the gate costs: req/s of an authenticated, rate-limited
# request (GET /auth/me with an API key: key lookup, the global and per-key
# buckets, security headers) beside an open one (GET /health: security
# headers only), same instance, same run, wrk with 2 threads and 64
# connections. Limits are set high enough never to refuse. Target: the
# authenticated request keeps >= 0.90 of the open one's req/s.
# A second line runs the authenticated request with the limits shared
# through Redis (one script round trip per request) for comparison; it
# has no target.
#   DURATION=10 CONNS=64
. "$(dirname "$0")/../lib.sh"
work=$(mktemp -d)
port=$(free_port)
key=$(./build/grove key add bench --scopes read --data-dir "$work/data" | cut -d' ' -f2)

./build/grove serve --listen "127.0.0.1:$port" --threads 2 --access-log false --log-level warn \
  --data-dir "$work/data" --web-root "" --rate-global 100000000/s --rate-key 100000000/s &
pid=$!
trap 'kill $pid 2>/dev/null; sleep 0.3; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP PIPE # the EXIT trap cleans up
wait_http "http://127.0.0.1:$port/health"
curl -sf -H "X-API-Key: $key" "http://127.0.0.1:$port/auth/me" >/dev/null

rps() { wrk -t2 -c"$CONNS" -d"${DURATION}s" "$@" | awk '/Requests\/sec/ { print $2 }'; }
wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$port/health" >/dev/null
wrk -t2 -c"$CONNS" -d2s -H "X-API-Key: $key" "http://127.0.0.1:$port/auth/me" >/dev/null
open_rps=$(rps "http://127.0.0.1:$port/health")
auth_rps=$(rps -H "X-API-Key: $key" "http://127.0.0.1:$port/auth/me")
open2=$(rps "http://127.0.0.1:$port/health")
auth2=$(rps -H "X-API-Key: $key" "http://127.0.0.1:$port/auth/me")

echo "name value unit peer_value ratio"
awk -v a="$auth_rps" -v b="$auth2" -v o="$open_rps" -v p="$open2" 'BEGIN {
  aa = (a + b) / 2; oo = (o + p) / 2
  printf "gate_authenticated_rps %.0f req/s %.0f %.2f (peer: open request; target >= 0.90)\n", aa, oo, aa / oo }'

# the same request with limits kept in Redis
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
rpid=$!
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
kill "$pid"; wait "$pid" 2>/dev/null || true
./build/grove serve --listen "127.0.0.1:$port" --threads 2 --access-log false --log-level warn \
  --data-dir "$work/data" --web-root "" --rate-global 100000000/s --rate-key 100000000/s \
  --broker "redis://127.0.0.1:$rport" &
pid=$!
trap 'kill $pid $rpid 2>/dev/null; sleep 0.3; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP PIPE # the EXIT trap cleans up
wait_http "http://127.0.0.1:$port/ready"
wrk -t2 -c"$CONNS" -d2s -H "X-API-Key: $key" "http://127.0.0.1:$port/auth/me" >/dev/null
shared_rps=$(rps -H "X-API-Key: $key" "http://127.0.0.1:$port/auth/me")
awk -v s="$shared_rps" -v o="$open_rps" -v p="$open2" 'BEGIN {
  oo = (o + p) / 2
  printf "gate_authenticated_shared_rps %.0f req/s %.0f %.2f (limits in Redis; peer: open request, local run)\n", s, oo, s / oo }'
