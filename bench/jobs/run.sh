#!/bin/sh
# bench/jobs — durable jobs per second and enqueue→start latency of the job
# queue (src/jobs/), embedded (SQLite, synchronous=FULL) and on the
# scale-out backend (PostgreSQL, fsync on), beside two peers measured in
# the same run on the same machine:
# - RabbitMQ (rabbitmq-server, started here on a loopback port with its
#   own node name and data directory, stopped at the end): a durable
#   queue, persistent messages, publisher confirms in batches, manual
#   acks with a prefetch, driven by bench_amqp.c (librabbitmq);
# - PostgreSQL used as a queue directly through pgbench: a script that
#   commits one enqueue and one FOR UPDATE SKIP LOCKED dequeue-and-complete
#   per job (two fsync'd commits per job, as ours), on the same server.
# Every enqueue (publish) is acknowledged only after its commit (confirm);
# jobs run a no-op (grove's built-in jobs.noop). Producers of both grove
# and RabbitMQ send BATCH jobs per acknowledgement. Latency is a second,
# unsaturated phase: 2,000 jobs sent one after another.
# Targets (issue 13): >= 20,000 jobs/s embedded, >= 5,000 jobs/s on the
# scale-out backend, enqueue→start p99 <= 10 ms.
#   JOBS=40000 PRODUCERS=8 BATCH=64 SLOTS=64 DURATION=10
. "$(dirname "$0")/../lib.sh"
cmake --build build --target bench_jobs -j "$(nproc)" >/dev/null
JOBS=${JOBS:-40000}
PRODUCERS=${PRODUCERS:-8}
BATCH=${BATCH:-64}
SLOTS=${SLOTS:-64}
work=$(mktemp -d)
chmod 755 "$work"
cc -O2 -o "$work/bench_amqp" bench/jobs/bench_amqp.c $(pkg-config --cflags --libs librabbitmq) -lpthread

# ---- PostgreSQL
pgport=$(free_port)
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"

# ---- RabbitMQ: its own node, ports, cookie and data under $work/rmq
rmq=$work/rmq
mkdir -p "$rmq"
amqp_port=$(free_port)
dist_port=$(free_port)
epmd_port=$(free_port)
echo "[]." > "$rmq/enabled_plugins"
printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$amqp_port" > "$rmq/rabbitmq.conf"
rmq_env() {
  env HOME="$rmq" RABBITMQ_NODENAME="grovebench$amqp_port@localhost" \
    RABBITMQ_NODE_PORT="$amqp_port" RABBITMQ_DIST_PORT="$dist_port" ERL_EPMD_PORT="$epmd_port" \
    RABBITMQ_MNESIA_BASE="$rmq/mnesia" RABBITMQ_LOG_BASE="$rmq/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$rmq/enabled_plugins" RABBITMQ_CONFIG_FILE="$rmq/rabbitmq" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$rmq/advanced.config" RABBITMQ_PID_FILE="$rmq/pid" "$@"
}
rmq_stop() {
  [ -f "$rmq/started" ] || return 0
  rmq_env timeout 30 /usr/lib/rabbitmq/bin/rabbitmqctl -n "grovebench$amqp_port@localhost" stop \
    >/dev/null 2>&1 || true
  # whatever is left of the node's process group, then its epmd
  kill -KILL -- "-$(cat "$rmq/started")" 2>/dev/null || true
  ERL_EPMD_PORT="$epmd_port" timeout 10 epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
}
cleanup() {
  run_pg "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1
  rmq_stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE # the EXIT trap cleans up

run_pg "$pgbin/initdb" -D "$work/pg/data" -U grove -A trust >/dev/null
printf "listen_addresses='127.0.0.1'\nport=%s\nunix_socket_directories='%s'\nmax_connections=200\n" \
  "$pgport" "$work/pg" >> "$work/pg/data/postgresql.conf"
run_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w start >/dev/null
url="postgres://grove@127.0.0.1:$pgport/postgres"

rmq_env setsid sh -c 'echo $$ > "$1"; exec /usr/lib/rabbitmq/bin/rabbitmq-server' sh "$rmq/started" \
  >"$rmq/out" 2>&1 &
up=no
for _ in $(seq 240); do # up to 60 s
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $amqp_port), 0.2)" \
    2>/dev/null && up=yes && break
  sleep 0.25
done
[ "$up" = yes ] || { echo "rabbitmq-server did not start:" >&2; tail -20 "$rmq/out" >&2; exit 1; }

out=$work/results
./build/bench_jobs embedded sqlite "$work/data" "$JOBS" "$PRODUCERS" "$SLOTS" "$BATCH" >> "$out"
./build/bench_jobs postgres "$url" "$work/data" "$JOBS" "$PRODUCERS" "$SLOTS" "$BATCH" >> "$out"
timeout 300 "$work/bench_amqp" rabbitmq "$amqp_port" "$JOBS" "$PRODUCERS" "$BATCH" "$SLOTS" >> "$out"

psql -q "$url" -c "CREATE TABLE bench_q (id bigserial PRIMARY KEY, payload text NOT NULL,
  state int NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  done_at timestamptz); CREATE INDEX ON bench_q (state, id)"
cat > "$work/q.sql" <<'SQL'
INSERT INTO bench_q (payload) VALUES ('{}');
UPDATE bench_q SET state = 1, done_at = clock_timestamp() WHERE id = (SELECT id FROM bench_q WHERE state = 0 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED);
SQL
tps=$(pgbench -n -h 127.0.0.1 -p "$pgport" -U grove -c "$SLOTS" -j 2 -T "$DURATION" -f "$work/q.sql" postgres 2>/dev/null |
  awk '/^tps/ { print int($3) }')
echo "pgbench_skip_locked_jobs_per_s $tps jobs/s" >> "$out"

# one line per figure, with the peer and the ratio where there is one
awk '
  { v[$1] = $2; u[$1] = $3; order[n++] = $1 }
  END {
    print "name value unit peer peer_value ratio"
    for (i = 0; i < n; i++) {
      k = order[i]; peer = ""
      if (k ~ /^embedded_jobs_per_s|^postgres_jobs_per_s/) peer = "rabbitmq_jobs_per_s"
      else if (k ~ /^(embedded|postgres)_start_p/) { peer = k; sub(/^[a-z]+_/, "rabbitmq_", peer) }
      if (peer != "" && (peer in v) && v[peer] > 0)
        printf "%s %s %s %s %s %.2f\n", k, v[k], u[k], peer, v[peer], v[k] / v[peer]
      else
        printf "%s %s %s - - -\n", k, v[k], u[k]
    }
    if (v["pgbench_skip_locked_jobs_per_s"] > 0)
      printf "postgres_jobs_per_s_vs_pgbench %s jobs/s pgbench_skip_locked_jobs_per_s %s %.2f\n",
        v["postgres_jobs_per_s"], v["pgbench_skip_locked_jobs_per_s"],
        v["postgres_jobs_per_s"] / v["pgbench_skip_locked_jobs_per_s"]
  }' "$out"
