#!/bin/bash
# Runs libFuzzer targets one after another, each for a bounded time (one job
# each), from the committed seeds (tests/fuzz/corpus/<target>), the inputs of
# past crashes (tests/fuzz/regressions/<target>) and the working corpus the
# runs grow in BUILD/corpus/<target> (new inputs go there only). Prints one line per target
# (executions, rate, peak RSS, corpus) and, for a finding, the log's end and
# how to reproduce it. Exit status: 0 only if no target found anything.
#   tools/fuzz.sh BUILD SECONDS TARGET...
set -u
build=$1 secs=$2
shift 2
status=0
mkdir -p "$build/logs"
for t in "$@"; do
  corpus=$build/corpus/$t art=$build/artifacts/$t log=$build/logs/$t.log
  mkdir -p "$corpus" "$art"
  start=$(date +%s)
  # -timeout: the targets detect their own hangs within 10 s; this is the backstop.
  dirs=("$corpus" "tests/fuzz/corpus/$t")
  [ -d "tests/fuzz/regressions/$t" ] && dirs+=("tests/fuzz/regressions/$t") # past crashes, first
  timeout -k 10 $((secs + 120)) "$build/$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  stat() { grep -o "stat::$1: *[0-9]*" "$log" | tail -1 | grep -o '[0-9]*$'; }
  printf '%-12s %4ss  %10s execs  %7s/s  peak RSS %5s MiB  corpus %s files\n' "$t" "$(($(date +%s) - start))" \
    "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "$(stat peak_rss_mb)" \
    "$(find "$corpus" -type f | wc -l)"
  if [ "$rc" != 0 ]; then
    status=1
    echo "---- $t: exit $rc; end of $log ----"
    tail -60 "$log"
    echo "----"
    for a in "$art"/*; do [ -e "$a" ] && echo "reproduce: $build/$t $a"; done
  fi
done
exit $status
