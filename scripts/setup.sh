#!/bin/sh
# setup.sh — install the Debian packages Grove needs to build, run and test.
# Idempotent: packages already present are left alone, and apt is only asked
# when something is missing. Run as root on Debian 12.
set -eu

BUILD="build-essential cmake pkg-config
 libuv1-dev libhttp-parser-dev libwslay-dev libjansson-dev libsqlite3-dev
 libpq-dev libhiredis-dev libssl-dev zlib1g-dev libargon2-dev libicu-dev
 libcurl4-openssl-dev libmicrohttpd-dev libjs-chart.js libxxhash-dev libyajl-dev"
TEST="clang libclang-rt-14-dev postgresql redis-server nginx-light sqlite3 python3 python3-yaml python3-prometheus-client curl chromium nodejs npm"
BENCH="wrk nginx-light prometheus-node-exporter netdata rabbitmq-server librabbitmq-dev
 python3-fastapi python3-uvicorn python3-sklearn python3-xgboost"

want="$BUILD"
case "${1:-build}" in
  build) ;;
  test)  want="$want $TEST" ;;
  bench) want="$want $TEST $BENCH" ;;
  *) echo "usage: setup.sh [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  # node and npm may come from elsewhere (NodeSource bundles npm): a command is enough
  case "$p" in nodejs | npm) command -v "${p%js}" >/dev/null 2>&1 && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
browser_deps() {
  # the browser tests' driver and axe-core's audits, from npm (pinned in
  # tests/browser/package-lock.json)
  [ "${1:-build}" = build ] && return 0
  # installed again whenever the lock changed since the last install
  cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock 2>/dev/null ||
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error &&
      cp package-lock.json node_modules/.installed-lock)
}
cd "$(dirname "$0")/.."
if [ -z "$missing" ]; then
  browser_deps "${1:-build}"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
# the packaged servers start themselves on install; the tests start their own
for svc in postgresql redis-server nginx rabbitmq-server; do
  if command -v service >/dev/null 2>&1; then
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  fi
done
browser_deps "${1:-build}"
