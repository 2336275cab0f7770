#!/bin/sh
# run.sh — installs the build dependencies, builds Grove and runs
# `grove serve` on its embedded defaults (SQLite under ./data, in-process
# live hub) at http://127.0.0.1:8080. Extra arguments go to grove serve.
#
# The first run builds Grove first (a minute or two), so the server is not
# there at once: run.sh says "grove is ready at http://ADDR:PORT" on
# standard error once it listens (migrations done, every app started).
# SIGINT or SIGTERM stops grove gracefully; run.sh exits with its status.
# GROVE_BUILD_DIR (default: build) is the CMake build folder to use.
set -eu
cd "$(dirname "$0")/.."
echo "run.sh: building grove (the first build takes a minute or two)" >&2
./scripts/setup.sh build
build=${GROVE_BUILD_DIR:-build}
cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

# grove's log goes through a fifo to a watcher that prints it and says
# when grove listens; both run in the background (so SIGINT reaches only
# this shell, which hands grove a SIGTERM) and this shell waits for grove.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkfifo "$dir/log"
"$build/grove" serve "$@" 2>"$dir/log" &
pid=$!
while IFS= read -r line; do
  printf '%s\n' "$line" >&2
  case "$line" in
    *listening*)
      # text: "… listening addr=127.0.0.1:8080 port=8080 …"; json: "addr":"…","port":"8080"
      host=$(printf '%s\n' "$line" | sed -n 's/.*"*addr"*[=:]"*\([^ ",]*\):[0-9]*[ ",].*/\1/p')
      port=$(printf '%s\n' "$line" | sed -n 's/.*"*port"*[=:]"*\([0-9][0-9]*\).*/\1/p')
      case "$host" in "" | 0.0.0.0) host=127.0.0.1 ;; "[::]") host="[::1]" ;; esac
      at="$host:${port:-8080}"
      echo "run.sh: grove is ready at http://$at (pid $pid)" >&2
      ;;
  esac
done <"$dir/log" &
watcher=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
while :; do
  # a trapped signal ends `wait` early (status > 128): wait again until grove is gone
  wait "$pid" && status=0 || status=$?
  kill -0 "$pid" 2>/dev/null || break
done
wait "$watcher" || true
exit "$status"
