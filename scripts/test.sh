#!/bin/sh
# test.sh — installs what the tests need, builds Grove three ways and runs
# every test: the suite on a normal build (warnings are errors), the same
# suite under AddressSanitizer + UndefinedBehaviorSanitizer, then each
# libFuzzer target briefly over its seed corpus. PostgreSQL and Redis are
# started by the tests themselves on loopback ports.
#   FUZZ_SECONDS=30 (per target; 0 skips fuzzing)   JOBS=2
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh test

JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

echo "== build (release, -Werror)"
cmake -S . -B build -DGROVE_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"
echo "== tests"
ctest --test-dir build --output-on-failure

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DGROVE_WERROR=ON -DGROVE_SANITIZE=ON -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build build-asan -j "$JOBS"
echo "== tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure

if [ "$FUZZ_SECONDS" -gt 0 ]; then
  echo "== fuzz (${FUZZ_SECONDS}s per target)"
  cmake -S . -B build-fuzz -DGROVE_FUZZ=ON -DCMAKE_C_COMPILER=clang >/dev/null
  cmake --build build-fuzz -j "$JOBS" --target fuzzers
  for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    t=${t#fuzz_}
    work=$(mktemp -d)
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    # shellcheck disable=SC2086
    if ! "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
      -artifact_prefix="$work/" $dict "$work" "tests/fuzz/corpus/$t" >"$work/log" 2>&1; then
      tail -40 "$work/log"
      echo "fuzz_$t found a crash; the input is in $work" >&2
      exit 1
    fi
    tail -3 "$work/log"
    rm -rf "$work"
  done
fi
echo "== all tests passed"
