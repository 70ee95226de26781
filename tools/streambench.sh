#!/bin/bash
# Streaming throughput, same run: an nnrpc server stream (Bench.Flood) against a
# bare nanomsg PUSH/PULL stream, both over tcp on loopback, receivers counting
# messages per second; medians of REPS alternating runs.
#   tools/streambench.sh [BENCH_DIR [SECONDS [REPS [PAYLOAD]]]]   (BENCH_DIR: $BUILD/bench, BUILD default build)
set -eu
dir=${1:-${BUILD:-build}/bench}; secs=${2:-2}; reps=${3:-5}; payload=${4:-32}
port_n=$((20000 + RANDOM % 20000)); port_f=$((port_n + 1))
"$dir/nnrpc-bench-server" "tcp://127.0.0.1:$port_n" & sn=$!
"$dir/nn-push" "tcp://127.0.0.1:$port_f" "$payload" & sf=$!
trap 'kill $sn $sf 2>/dev/null; wait 2>/dev/null' EXIT
sleep 0.3
out=$(mktemp)
for r in $(seq "$reps"); do
  "$dir/stream-client" --impl nn --url "tcp://127.0.0.1:$port_f" --payload "$payload" --seconds "$secs" | tee -a "$out"
  "$dir/stream-client" --impl nnrpc --url "tcp://127.0.0.1:$port_n" --payload "$payload" --seconds "$secs" | tee -a "$out"
done
python3 - "$out" <<'PY' 2>/dev/null || true
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda impl: statistics.median(r["msgs_per_s"] for r in rows if r["impl"] == impl)
f, n = med("nn-pushpull"), med("nnrpc-stream")
print(f"{rows[0]['payload']} B messages: nanomsg push/pull {f:,.0f} msgs/s | nnrpc server stream {n:,.0f} msgs/s | ratio {n/f:.2f}")
PY
rm -f "$out"
