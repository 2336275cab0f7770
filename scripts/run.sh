#!/bin/sh
# run.sh — installs the build dependencies, builds Grove and runs
# `grove serve` on its embedded defaults (SQLite under ./data, in-process
# live hub) at http://127.0.0.1:8080. Extra arguments go to grove serve.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh build
cmake -S . -B build >/dev/null
cmake --build build -j "$(nproc)"
exec ./build/grove serve "$@"
