#!/bin/sh
# bench/upload — MiB/s of one large upload sent as a single stream to
# grove (POST /api/v1/blobs: streamed to disk, SHA-256 on the way, fsync
# before the answer) beside nginx receiving the same file with WebDAV PUT
# (nginx-light's dav module: body to a temporary file, then renamed), in
# the same run on the same machine, both writing under BENCH_DIR. Each
# side's stored copy is checked against the file's SHA-256, and each
# server's peak resident memory (VmHWM) is printed: it must not grow with
# the file (grove holds a ring of four 1 MiB buffers per upload).
# The same file also goes over tus 1.0 in 3 parallel parts (below).
# Target (issue 13): grove >= 0.8x nginx's MiB/s, memory flat.
# Each server's CPU seconds per upload are printed too (the least of the
# runs): on a machine other work keeps busy the uploads are CPU-bound and
# MiB/s moves with that work, CPU time much less (docs/blobs.md).
# Prints one line per figure: name value unit peer_value ratio.
#   SIZE_MIB=1024 RUNS=3 BENCH_DIR=/dev/shm (a tmpfs: the servers' own
#   cost, not the disk's; on a disk grove's fsync bounds its figure)
. "$(dirname "$0")/../lib.sh"
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
if [ -z "${BENCH_DIR:-}" ]; then
  if [ -d /dev/shm ]; then BENCH_DIR=/dev/shm; else BENCH_DIR=${TMPDIR:-/tmp}; fi
fi
work=$(mktemp -d "$BENCH_DIR/grove-bench-upload-XXXXXX")
chmod 755 "$work"
gport=$(free_port)
nport=$(free_port)

grove_start "$work" "$gport" --max-upload 64g \
  --rate-global 0 --rate-key 0
key=$(./build/grove key add bench --scopes read,write --data-dir "$work/data" 2>/dev/null | awk '{print $2}')

mkdir -p "$work/www" "$work/nginx-body"
nginx_start "$work" 0 1024 <<CONF
  access_log off;
  client_body_temp_path $work/nginx-body;
  client_max_body_size 64g;
  server {
    listen 127.0.0.1:$nport;
    location / {
      root $work/www;
      dav_methods PUT DELETE;
      create_full_put_path on;
    }
  }
CONF
# one process (no master): the one that receives the body
nworker=$(cat "$work/nginx.pid")

# the file: random bytes, made once
dd if=/dev/urandom of="$work/file" bs=1M count="$SIZE_MIB" status=none
sha=$(sha256sum "$work/file" | cut -d' ' -f1)

hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system, in clock ticks) a process has used so far
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One upload: prints MiB/s from curl's own timing (request sent to answer
# read, connection included) and the server's CPU seconds for it.
put_grove() {
  c0=$(ticks "$gpid")
  out=$(curl -s -X POST -H "X-API-Key: $key" -H "Expect:" -H "Content-Type: application/octet-stream" \
    -T "$work/file" -w '\n%{http_code} %{time_total}' \
    "http://127.0.0.1:$gport/api/v1/blobs?name=bench.bin")
  code=$(echo "$out" | tail -1 | cut -d' ' -f1)
  t=$(echo "$out" | tail -1 | cut -d' ' -f2)
  c1=$(ticks "$gpid")
  got=$(echo "$out" | head -1 | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["sha256"], d["id"])')
  [ "$code" = 201 ] || { echo "grove answered $code" >&2; exit 1; }
  [ "${got%% *}" = "$sha" ] || { echo "grove stored a different SHA-256" >&2; exit 1; }
  # the bytes on disk are the file's (checked once, outside the timing)
  ondisk=$(find "$work/data/blobs" -name "$sha" | head -1)
  [ "$(sha256sum "$ondisk" | cut -d' ' -f1)" = "$sha" ] || { echo "grove's file differs" >&2; exit 1; }
  # delete it, so the next run stores the bytes again (no deduplication)
  curl -s -o /dev/null -X DELETE -H "X-API-Key: $key" "http://127.0.0.1:$gport/api/v1/blobs/${got#* }"
  python3 -c "print('%.1f %.2f' % ($SIZE_MIB / $t, ($c1 - $c0) / $hz))"
}
put_nginx() {
  c0=$(ticks "$nworker")
  out=$(curl -s -o /dev/null -T "$work/file" -H "Expect:" -w '%{http_code} %{time_total}' \
    "http://127.0.0.1:$nport/bench.bin")
  c1=$(ticks "$nworker")
  code=${out% *}
  t=${out#* }
  case $code in 201|204) ;; *) echo "nginx answered $code" >&2; exit 1 ;; esac
  [ "$(sha256sum "$work/www/bench.bin" | cut -d' ' -f1)" = "$sha" ] || { echo "nginx's file differs" >&2; exit 1; }
  rm -f "$work/www/bench.bin"
  python3 -c "print('%.1f %.2f' % ($SIZE_MIB / $t, ($c1 - $c0) / $hz))"
}

# The same file over tus 1.0 as tus-js-client's parallelUploads: 3 sends
# it: three partial uploads (Upload-Concat: partial) PATCHed at once, then
# the final upload made from them (copied in order, fsync'd, a blob). Timed
# from the first POST to the final one's 201; the blob's SHA-256 checked.
# The parts are cut once, outside the timing.
split -n 3 -d "$work/file" "$work/part."
tus_h="-H Tus-Resumable:1.0.0 -H X-API-Key:$key"
put_tus() {
  c0=$(ticks "$gpid")
  t0=$(date +%s.%N)
  locs=""
  for part in "$work"/part.??; do
    # shellcheck disable=SC2086
    loc=$(curl -s -D - -o /dev/null -X POST $tus_h -H "Upload-Concat: partial" \
      -H "Upload-Length: $(stat -c %s "$part")" "http://127.0.0.1:$gport/api/v1/uploads" |
      tr -d '\r' | awk -F': ' 'tolower($1) == "location" {print $2}')
    [ -n "$loc" ] || { echo "grove did not create a tus upload" >&2; exit 1; }
    locs="$locs $loc"
    # shellcheck disable=SC2086
    curl -s -o /dev/null -w '%{http_code}\n' -X PATCH -T "$part" $tus_h -H "Expect:" \
      -H "Upload-Offset: 0" -H "Content-Type: application/offset+octet-stream" \
      "http://127.0.0.1:$gport$loc" >"$part.code" &
  done
  wait
  for part in "$work"/part.??; do
    [ "$(cat "$part.code")" = 204 ] || { echo "grove answered a PATCH $(cat "$part.code")" >&2; exit 1; }
  done
  # shellcheck disable=SC2086
  blob=$(curl -s -D - -o /dev/null -X POST $tus_h -H "Upload-Concat: final;${locs# }" \
    "http://127.0.0.1:$gport/api/v1/uploads" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "upload-blob" {print $2}')
  t1=$(date +%s.%N)
  c1=$(ticks "$gpid")
  [ -n "$blob" ] || { echo "grove made no blob of the tus upload" >&2; exit 1; }
  got=$(curl -s -H "X-API-Key: $key" "http://127.0.0.1:$gport/api/v1/blobs/$blob" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["sha256"])')
  [ "$got" = "$sha" ] || { echo "grove's tus blob has a different SHA-256" >&2; exit 1; }
  curl -s -o /dev/null -X DELETE -H "X-API-Key: $key" "http://127.0.0.1:$gport/api/v1/blobs/$blob"
  for loc in $locs; do
    # shellcheck disable=SC2086
    curl -s -o /dev/null -X DELETE $tus_h "http://127.0.0.1:$gport$loc"
  done
  python3 -c "print('%.1f %.2f' % ($SIZE_MIB / ($t1 - $t0), ($c1 - $c0) / $hz))"
}

gbase=$(hwm "$gpid")
nbase=$(hwm "$nworker")
gbest=0
nbest=0
tbest=0
gcpu=1e9
ncpu=1e9
tcpu=1e9
i=0
while [ "$i" -lt "$RUNS" ]; do
  g=$(put_grove)
  n=$(put_nginx)
  tu=$(put_tus)
  # shellcheck disable=SC2086
  set -- $g $n $tu
  gbest=$(python3 -c "print(max($gbest, $1))")
  nbest=$(python3 -c "print(max($nbest, $3))")
  tbest=$(python3 -c "print(max($tbest, $5))")
  gcpu=$(python3 -c "print(min($gcpu, $2))")
  ncpu=$(python3 -c "print(min($ncpu, $4))")
  tcpu=$(python3 -c "print(min($tcpu, $6))")
  i=$((i + 1))
done
ghwm=$(hwm "$gpid")
nhwm=$(hwm "$nworker")

ratio=$(python3 -c "print('%.2f' % ($gbest / $nbest))")
echo "upload_single_stream_${SIZE_MIB}MiB $gbest MiB/s $nbest $ratio"
echo "upload_tus_3_parallel_parts_${SIZE_MIB}MiB $tbest MiB/s $nbest $(python3 -c "print('%.2f' % ($tbest / $nbest))")"
# the servers' CPU seconds for one upload (the least of the runs): less
# sensitive to other load on the machine than MiB/s; the last column is
# nginx's over grove's
echo "upload_cpu_single_stream_${SIZE_MIB}MiB $gcpu s $ncpu $(python3 -c "print('%.2f' % ($ncpu / $gcpu))")"
echo "upload_cpu_tus_3_parallel_parts_${SIZE_MIB}MiB $tcpu s $ncpu $(python3 -c "print('%.2f' % ($ncpu / $tcpu))")"
echo "upload_peak_rss_grove_before_after $gbase/$ghwm KiB - -"
echo "upload_peak_rss_nginx_before_after $nbase/$nhwm KiB - -"
echo "upload_peak_rss_growth $((ghwm - gbase)) KiB $((nhwm - nbase)) -"
echo "# best of $RUNS runs each, SHA-256 of every stored copy checked; files under $BENCH_DIR" >&2
