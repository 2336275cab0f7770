# bench/lib.sh — what every benchmark starts with (sourced, not run):
# installs the bench packages, builds a release grove, and gives
# free_port, wait_http, nginx_start and nginx_stop.
set -eu
cd "$(dirname "$0")/../.."
./scripts/setup.sh bench >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}

free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# wait_http URL: up to 15 s for it to answer 2xx
wait_http() {
  for _ in $(seq 150); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  echo "no answer from $1" >&2
  return 1
}

# nginx_start DIR WORKERS CONNS: writes DIR/nginx.conf and starts nginx on
# it, with its pid file, error log and temporary files in DIR, the body of
# its `http { }` block read from stdin; returns once the pid file is there.
# WORKERS worker processes under a master, or 0: one process and no master
# (the one that serves, so its memory is the server's). CONNS is
# worker_connections.
nginx_start() {
  if [ "$2" = 0 ]; then
    _nginx_procs="worker_processes 1;
master_process off;"
  else
    _nginx_procs="worker_processes $2;"
  fi
  {
    printf '%s\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n' "$_nginx_procs" "$1" "$1"
    printf 'events { worker_connections %s; }\nhttp {\n' "$3"
    cat
    printf '}\n'
  } >"$1/nginx.conf"
  nginx -p "$1" -c "$1/nginx.conf"
  for _ in $(seq 100); do [ -s "$1/nginx.pid" ] && return 0; sleep 0.05; done
  echo "nginx did not start (see $1/error.log)" >&2
  return 1
}

# nginx_stop DIR: stops the nginx that nginx_start started in DIR, if any.
nginx_stop() {
  [ -f "$1/nginx.pid" ] && kill "$(cat "$1/nginx.pid")" 2>/dev/null || true
}

# grove_start WORK PORT [FLAG...]: the release grove on 127.0.0.1:PORT (2
# event loops, no access log, no web root) with its data in WORK/data and
# FLAG... added; its pid in $gpid. When the script ends, grove and an nginx
# started in WORK (nginx_start) are stopped and WORK is removed.
grove_start() {
  bench_work=$1
  _port=$2
  shift 2
  ./build/grove serve --listen "127.0.0.1:$_port" --threads 2 --access-log false \
    --log-level warn --data-dir "$bench_work/data" --web-root "" "$@" &
  gpid=$!
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM HUP PIPE # the EXIT trap cleans up
  wait_http "http://127.0.0.1:$_port/health"
}

bench_cleanup() {
  kill "$gpid" 2>/dev/null || true
  nginx_stop "$bench_work"
  sleep 0.5
  rm -rf "$bench_work"
}
