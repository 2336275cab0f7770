#!/bin/sh
# bench/ingest — flow's hot path: points/s end to end (line protocol over
# HTTP → durable in the series log → AQI windows updated), written by
# `grove flow simulate` (2,000 stations, 6 pollutants a reading, 5,000
# lines a request, 4 connections) on the same 2 cores, beside the raw
# insert speed of the same points into SQLite (sqlite3 .import, one
# transaction) and into PostgreSQL (COPY) measured in the same run. Then
# resident memory per active series, bytes per point on disk, and how long
# a window result takes to reach its live topic after its last point.
# Targets: >= 1,000,000 points/s embedded; <= 1 KiB per active series;
# window result on its topic <= 1 s after its last point.
#   DURATION=10 STATIONS=2000
. "$(dirname "$0")/../lib.sh"
STATIONS=${STATIONS:-2000}
work=$(mktemp -d)
chmod 755 "$work"
port=$(free_port)
data="$work/data"
wkey=$(./build/grove key add bench-w --scopes write --data-dir "$data" | cut -d' ' -f2)
rkey=$(./build/grove key add bench-r --scopes read --data-dir "$data" | cut -d' ' -f2)
pids=""
trap 'kill $pids 2>/dev/null; sleep 0.5; rm -rf "$work"' EXIT INT TERM

./build/grove serve --listen "127.0.0.1:$port" --threads 2 --access-log false --log-level warn \
  --data-dir "$data" --web-root "" --rate-global 0 --rate-key 0 --series-flush 3s &
gpid=$!
pids="$gpid"
wait_http "http://127.0.0.1:$port/health"
sleep 2.5 # the keys are seen within --gate-refresh
rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
base_rss=$(rss "$gpid")

./build/grove flow simulate --url "http://127.0.0.1:$port" --key "$wkey" --stations "$STATIONS" \
  --duration "${DURATION}s" --batch 5000 --connections 4 --faults false >"$work/sim.out"
grove_pps=$(sed -n 's/.*points_per_second=\([0-9]*\).*/\1/p' "$work/sim.out")
points=$(sed -n 's/^points=\([0-9]*\).*/\1/p' "$work/sim.out")

# a window result's way to its topic, after the load
latency=$(python3 bench/ingest/probe.py "$port" "$wkey" "$rkey")
sleep 4 # the points move into chunks (--series-flush 3s)
load_rss=$(rss "$gpid") # what every active series keeps: key, window state, station
disk=$(sqlite3 "$data/series/series.db" "SELECT printf('%.2f', 1.0 * sum(length(data)) / sum(points)) FROM chunks")

# the peers: the same kind of points, raw, into SQLite and PostgreSQL
./build/grove flow simulate --print --stations "$STATIONS" --ticks 100 --faults false 2>/dev/null |
  python3 -c '
import sys
ids = {}
out = sys.stdout
for line in sys.stdin:
    head, fields, ts = line.split(" ")
    for f in fields.split(","):
        k, v = f.split("=")
        key = head + " " + k
        i = ids.setdefault(key, len(ids))
        out.write("%d,%s,%s\n" % (i, ts.strip(), v))
' >"$work/points.csv"
raw=$(wc -l <"$work/points.csv")
t0=$(date +%s.%N)
sqlite3 "$work/raw.db" "PRAGMA journal_mode=WAL" "PRAGMA synchronous=FULL" \
  "CREATE TABLE points (series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL)" \
  ".mode csv" ".import $work/points.csv points" >/dev/null
t1=$(date +%s.%N)
sqlite_pps=$(awk -v n="$raw" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgport=$(free_port)
mkdir "$work/pg" "$work/sock"
chown postgres "$work/pg" "$work/sock"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust >/dev/null
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -o "-p $pgport -k $work/sock -c listen_addresses=''" \
  -l "$work/sock/pg.log" -w start >/dev/null
pids="$pids $(head -1 "$work/pg/postmaster.pid")"
psql -h "$work/sock" -p "$pgport" -U postgres -q -c "CREATE TABLE points (series integer NOT NULL, ts bigint NOT NULL, value double precision NOT NULL)"
chmod 644 "$work/points.csv"
t0=$(date +%s.%N)
psql -h "$work/sock" -p "$pgport" -U postgres -q -c "\\copy points FROM '$work/points.csv' CSV"
t1=$(date +%s.%N)
pg_pps=$(awk -v n="$raw" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null

echo "name value unit peer_value ratio"
awk -v g="$grove_pps" -v s="$sqlite_pps" 'BEGIN {
  printf "ingest_points_per_second %.0f points/s %.0f %.2f (peer: raw SQLite insert of the same points; target >= 1,000,000)\n", g, s, g / s }'
awk -v g="$grove_pps" -v p="$pg_pps" 'BEGIN {
  printf "ingest_vs_postgres_copy %.0f points/s %.0f %.2f (peer: PostgreSQL COPY of the same points)\n", g, p, g / p }'
series=$((STATIONS * 6))
awk -v a="$base_rss" -v b="$load_rss" -v n="$series" 'BEGIN {
  printf "memory_per_active_series %.0f bytes - - (%d series, RSS %d → %d KiB once points are in chunks; target <= 1024)\n", (b - a) * 1024 / n, n, a, b }'
echo "disk_bytes_per_point $disk bytes - - (compressed chunks; target <= 2)"
echo "window_to_live_ms $latency"
echo "(grove wrote $points points; the peers loaded $raw)"
