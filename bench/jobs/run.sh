#!/bin/sh
# bench/jobs — durable jobs per second and enqueue→start latency of the job
# queue (src/jobs/), embedded (SQLite, synchronous=FULL) and on the
# scale-out backend (PostgreSQL, fsync on), beside PostgreSQL used as a
# queue directly with FOR UPDATE SKIP LOCKED through pgbench (a script that
# commits one enqueue and one dequeue-and-complete: two fsync'd commits per
# job, as ours) on the same server in the same run. Every enqueue is
# acknowledged only after its commit; jobs run the built-in no-op type.
# Targets (issue 13): >= 20,000 jobs/s embedded, >= 5,000 jobs/s on the
# scale-out backend, enqueue→start p99 <= 10 ms. RabbitMQ is not measured
# yet.
#   JOBS=20000 PRODUCERS=32 SLOTS=16 DURATION=10
. "$(dirname "$0")/../lib.sh"
cmake --build build --target bench_jobs -j "$(nproc)" >/dev/null
JOBS=${JOBS:-20000}
PRODUCERS=${PRODUCERS:-32}
SLOTS=${SLOTS:-16}
work=$(mktemp -d)
pgport=$(free_port)
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
mkdir -p "$work/pg"
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
trap 'run_pg "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1; rm -rf "$work"' EXIT INT TERM
run_pg "$pgbin/initdb" -D "$work/pg/data" -U grove -A trust >/dev/null
printf "listen_addresses='127.0.0.1'\nport=%s\nunix_socket_directories='%s'\nmax_connections=200\n" \
  "$pgport" "$work/pg" >> "$work/pg/data/postgresql.conf"
run_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w start >/dev/null
url="postgres://grove@127.0.0.1:$pgport/postgres"

echo "name value unit"
./build/bench_jobs embedded sqlite "$work/data" "$JOBS" "$PRODUCERS" "$SLOTS"
./build/bench_jobs postgres "$url" "$work/data" "$JOBS" "$PRODUCERS" "$SLOTS"

psql -q "$url" -c "CREATE TABLE bench_q (id bigserial PRIMARY KEY, payload text NOT NULL,
  state int NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  done_at timestamptz); CREATE INDEX ON bench_q (state, id)"
cat > "$work/q.sql" <<'SQL'
INSERT INTO bench_q (payload) VALUES ('{}');
UPDATE bench_q SET state = 1, done_at = clock_timestamp() WHERE id = (SELECT id FROM bench_q WHERE state = 0 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED);
SQL
tps=$(pgbench -n -h 127.0.0.1 -p "$pgport" -U grove -c "$SLOTS" -j 2 -T "$DURATION" -f "$work/q.sql" postgres 2>/dev/null |
  awk '/^tps/ { print int($3) }')
echo "pgbench_skip_locked_jobs_per_s $tps jobs/s (peer: PostgreSQL as a queue, same server)"
