#!/bin/sh
# bench/ingest — flow's hot path: points/s end to end (line protocol over
# HTTP → durable in the series log → AQI windows updated), written by
# `grove flow simulate` (2,000 stations, 6 pollutants a reading, 5,000
# lines a request, 4 connections) on the same 2 cores, beside the raw
# insert speed of the same points into SQLite (sqlite3 .import, one
# transaction) and into PostgreSQL (COPY) measured in the same run. Then
# resident memory per active series, bytes per point on disk, and how long
# a window result takes to reach its live topic after its last point.
# The same end to end with the series in PostgreSQL (--store postgres://…).
# Targets: >= 1,000,000 points/s embedded, >= 300,000 with PostgreSQL;
# <= 1 KiB per active series;
# window result on its topic <= 1 s after its last point.
# Then reads: one series of READ_POINTS points read back over HTTP a page
# (100,000) at a time, embedded and with PostgreSQL, beside SQLite and
# PostgreSQL handing out the peers' points (a full scan to /dev/null).
# The simulator runs --fast (event time ahead of the clock, as fast as the
# server takes it); the throughput servers run --flow-max-ahead 0 so every
# point still goes through the windows, as it would arriving in real time.
# The memory runs keep the default bound (their 20 ticks stay inside it).
#   DURATION=10 STATIONS=2000 READ_POINTS=1000000
. "$(dirname "$0")/../lib.sh"
STATIONS=${STATIONS:-2000}
READ_POINTS=${READ_POINTS:-1000000}
work=$(mktemp -d)
chmod 755 "$work"
port=$(free_port)
data="$work/data"
wkey=$(./build/grove key add bench-w --scopes write --data-dir "$data" | cut -d' ' -f2)
rkey=$(./build/grove key add bench-r --scopes read --data-dir "$data" | cut -d' ' -f2)
pids=""
trap 'kill $pids 2>/dev/null; sleep 0.5; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP PIPE # the EXIT trap cleans up

./build/grove serve --listen "127.0.0.1:$port" --threads 2 --access-log false --log-level warn \
  --data-dir "$data" --web-root "" --rate-global 0 --rate-key 0 --series-flush 3s --flow-max-ahead 0 &
gpid=$!
pids="$gpid"
wait_http "http://127.0.0.1:$port/health"
sleep 2.5 # the keys are seen within --gate-refresh
rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

./build/grove flow simulate --url "http://127.0.0.1:$port" --key "$wkey" --stations "$STATIONS" \
  --duration "${DURATION}s" --batch 5000 --connections 4 --faults false --fast >"$work/sim.out"
grove_pps=$(sed -n 's/.*points_per_second=\([0-9]*\).*/\1/p' "$work/sim.out")
points=$(sed -n 's/^points=\([0-9]*\).*/\1/p' "$work/sim.out")

# a window result's way to its topic, after the load
latency=$(python3 bench/ingest/probe.py "$port" "$wkey" "$rkey")
sleep 4 # the points move into chunks (--series-flush 3s)
disk=$(sqlite3 "$data/series/series.db" "SELECT printf('%.2f', 1.0 * sum(length(data)) / sum(points)) FROM chunks")
# reading one long series back (written, then in chunks after 4 s)
read_pps=$(python3 bench/ingest/reads.py "$port" "$wkey" "$rkey" "$READ_POINTS" 4 | cut -d' ' -f1)
kill "$gpid"

# memory per active series: resident memory of a grove holding 30,000 and
# one holding 60,000 stations (20 readings each, points then in chunks);
# the difference over the 180,000 series between them, so fixed costs
# (buffers, caches, the live history budget, full in both) cancel out
city_rss() {
  d="$work/mem$1"
  k=$(./build/grove key add m --scopes write --data-dir "$d" | cut -d' ' -f2)
  p=$(free_port)
  ./build/grove serve --listen "127.0.0.1:$p" --threads 2 --access-log false --log-level warn \
    --data-dir "$d" --web-root "" --rate-global 0 --rate-key 0 --series-flush 2s &
  mpid=$!
  wait_http "http://127.0.0.1:$p/health"
  sleep 2.5
  ./build/grove flow simulate --url "http://127.0.0.1:$p" --key "$k" --stations "$1" --ticks 20 \
    --duration 0 --batch 5000 --connections 2 --faults false --fast >/dev/null
  # the least of a sample a second for 15 s: once the last points are in
  # chunks (a flush of 7 million points takes a few seconds), nothing waits
  # in memory
  for _ in $(seq 15); do rss "$mpid"; sleep 1; done | sort -n | head -1
  kill "$mpid"
  wait "$mpid" 2>/dev/null || true
}
small_rss=$(city_rss 30000)
large_rss=$(city_rss 60000)

# the peers: the same kind of points, raw, into SQLite and PostgreSQL
./build/grove flow simulate --print --stations "$STATIONS" --ticks 100 --faults false --fast 2>/dev/null |
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
t0=$(date +%s.%N)
sqlite3 "$work/raw.db" "SELECT ts, value FROM points ORDER BY rowid" >/dev/null
t1=$(date +%s.%N)
sqlite_read_pps=$(awk -v n="$raw" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')

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
t0=$(date +%s.%N)
psql -h "$work/sock" -p "$pgport" -U postgres -q -c "\\copy (SELECT ts, value FROM points) TO '/dev/null'"
t1=$(date +%s.%N)
pg_read_pps=$(awk -v n="$raw" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')

# grove with the series in that PostgreSQL: every group commit a COPY
pgurl="postgres:///postgres?host=$work/sock&port=$pgport&user=postgres"
gdata="$work/pgdata"
pwkey=$(./build/grove key add bench-w --scopes write --data-dir "$gdata" --store "$pgurl" | cut -d' ' -f2)
prkey=$(./build/grove key add bench-r --scopes read --data-dir "$gdata" --store "$pgurl" | cut -d' ' -f2)
gport=$(free_port)
./build/grove serve --listen "127.0.0.1:$gport" --threads 2 --access-log false --log-level warn \
  --data-dir "$gdata" --store "$pgurl" --web-root "" --rate-global 0 --rate-key 0 --flow-max-ahead 0 &
ppid=$!
pids="$pids $ppid"
wait_http "http://127.0.0.1:$gport/health"
sleep 2.5
./build/grove flow simulate --url "http://127.0.0.1:$gport" --key "$pwkey" --stations "$STATIONS" \
  --duration "${DURATION}s" --batch 5000 --connections 4 --faults false --fast >"$work/simpg.out"
grove_pg_pps=$(sed -n 's/.*points_per_second=\([0-9]*\).*/\1/p' "$work/simpg.out")
read_pg_pps=$(python3 bench/ingest/reads.py "$gport" "$pwkey" "$prkey" "$READ_POINTS" 0 | cut -d' ' -f1)
kill "$ppid"
wait "$ppid" 2>/dev/null || true
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null

echo "name value unit peer_value ratio"
awk -v g="$grove_pps" -v s="$sqlite_pps" 'BEGIN {
  printf "ingest_points_per_second %.0f points/s %.0f %.2f (peer: raw SQLite insert of the same points; target >= 1,000,000)\n", g, s, g / s }'
awk -v g="$grove_pps" -v p="$pg_pps" 'BEGIN {
  printf "ingest_vs_postgres_copy %.0f points/s %.0f %.2f (peer: PostgreSQL COPY of the same points)\n", g, p, g / p }'
awk -v g="$grove_pg_pps" -v p="$pg_pps" 'BEGIN {
  printf "ingest_postgres_points_per_second %.0f points/s %.0f %.2f (series in PostgreSQL, a COPY each group commit; peer: psql COPY of the same points; target >= 300,000)\n", g, p, g / p }'
awk -v a="$small_rss" -v b="$large_rss" 'BEGIN {
  printf "memory_per_active_series %.0f bytes - - (RSS %d KiB with 180,000 series, %d KiB with 360,000; target <= 1024)\n", (b - a) * 1024 / 180000, a, b }'
awk -v g="$read_pps" -v s="$sqlite_read_pps" -v n="$READ_POINTS" 'BEGIN {
  printf "read_points_per_second %.0f points/s %.0f %.2f (one series of %d points over HTTP, pages of 100,000; peer: sqlite3 scanning the raw points to /dev/null)\n", g, s, g / s, n }'
awk -v g="$read_pg_pps" -v p="$pg_read_pps" -v n="$READ_POINTS" 'BEGIN {
  printf "read_postgres_points_per_second %.0f points/s %.0f %.2f (series in PostgreSQL, one series of %d points over HTTP; peer: psql COPY of the raw points to /dev/null)\n", g, p, g / p, n }'
echo "disk_bytes_per_point $disk bytes - - (compressed chunks; target <= 2)"
echo "window_to_live_ms $latency"
echo "(grove wrote $points points; the peers loaded $raw)"
