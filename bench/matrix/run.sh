#!/bin/sh
# bench/matrix/run.sh — the simulator's cross-validated error: fits the
# efficiency factors on src/apps/matrix/data/calibration.tsv, predicts every row from
# a fit on the others (leave one out) and prints the mean absolute
# percentage error of inference and of training beside the seed's own
# thresholds (003 §7.3.1: < 10 % inference, < 15 % training), as
# `name value unit peer_value ratio` lines; ratio < 1 meets the threshold.
# VERBOSE=1 also prints each row's measured, fitted and held-out figures.
# Pure computation: needs a C compiler and libm, no server.
set -eu
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM
${CC:-cc} -O2 -std=gnu11 -D_GNU_SOURCE -Isrc -o "$out/cv" bench/matrix/cv.c \
  src/apps/matrix/catalog.c src/apps/matrix/simulate.c src/apps/matrix/calibrate.c \
  src/apps/matrix/tsv.c -lm
if [ "${VERBOSE:-0}" = 1 ]; then "$out/cv" -v src/apps/matrix/data; else "$out/cv" src/apps/matrix/data; fi
