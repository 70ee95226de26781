#!/bin/bash
# The fuzz targets (tests/fuzz/, docs/reliability.md) as regression tests:
# each target's harness, built with the suite's compiler and flags (under
# `make asan`, with ASan + UBSan) but without libFuzzer (replay_fuzz_*), runs
# the committed seeds and every input a fuzzer ever crashed on
# (tests/fuzz/regressions/<target>/). A target checks what it gets back and
# aborts on anything wrong, so each input must simply run through.
# Prints "ok N - what" / "not ok N - what"; exits non-zero on any failure.
#   BUILD=build bash tests/test_fuzz_replay.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
n=0 failed=0
for t in fuzz_frames fuzz_server fuzz_client fuzz_plugin; do
  for kind in corpus regressions; do
    dir=tests/fuzz/$kind/$t
    [ -d "$dir" ] || continue
    n=$((n + 1))
    what="$t runs its $kind ($(find "$dir" -type f | wc -l) inputs)"
    if log=$("$BUILD/replay_$t" "$dir" 2>&1); then
      echo "ok $n - $what"
    else
      failed=$((failed + 1))
      echo "not ok $n - $what"
      echo "$log" | tail -30 | sed 's/^/#   /'
    fi
  done
done
echo "1..$n"
[ "$failed" = 0 ]
