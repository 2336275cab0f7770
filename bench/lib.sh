# bench/lib.sh — what every benchmark starts with (sourced, not run):
# installs the bench packages, builds a release grove, and gives
# free_port and wait_http.
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
