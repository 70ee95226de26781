#!/bin/bash
# Runs each test binary (or tests/test_*.sh script) under a timeout, optionally
# through $TEST_WRAPPER (valgrind), and sums cmocka's counts into one closing
# line "N passed, N failed". Exit status: 0 only if every binary passed.
set -u
scale=${TEST_TIMEOUT_SCALE:-1}
per_test=${TEST_TIMEOUT:-120}
passed=0; failed=0; bad_bins=()
for t in "$@"; do
  name=$(basename "$t")
  limit=$((per_test * scale))
  log=$(mktemp)
  start=$(date +%s%N)
  if [[ "$t" == *.sh ]]; then
    BUILD=${BUILD:-build} timeout -k 5 "$limit" bash "$t" >"$log" 2>&1; rc=$?
  else
    # shellcheck disable=SC2086
    timeout -k 5 "$limit" ${TEST_WRAPPER:-} "$t" >"$log" 2>&1; rc=$?
  fi
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  p=$(grep -Eo '\[  PASSED  \] [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
  f=$(grep -Eo '\[  FAILED  \] [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
  [[ "$t" == *.sh ]] && [ "$rc" = 0 ] && [ "$p" = 0 ] && p=$(grep -c '^ok ' "$log")
  [[ "$t" == *.sh ]] && f=$((f + $(grep -c '^not ok ' "$log")))
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" != 0 ]; then
    [ "$rc" = 124 ] && echo "TIMEOUT after ${limit}s: $name"
    [ "$f" = 0 ] && failed=$((failed + 1))
    bad_bins+=("$name")
    echo "---- $name (exit $rc) ----"; cat "$log"; echo "----"
  else
    echo "ok   $name: $p passed (${ms} ms)"
  fi
  rm -f "$log"
done
echo
[ ${#bad_bins[@]} -gt 0 ] && echo "failing: ${bad_bins[*]}"
echo "$passed passed, $failed failed"
[ ${#bad_bins[@]} -eq 0 ]
