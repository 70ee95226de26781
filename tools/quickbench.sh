#!/bin/bash
# A quick same-run comparison of nnrpc against the bare nanomsg floor over tcp
# on loopback: servers started once, clients alternating, medians of REPS runs.
#   tools/quickbench.sh [BENCH_DIR [SECONDS [REPS]]]   (BENCH_DIR: $BUILD/bench, BUILD default build)
set -eu
dir=${1:-${BUILD:-build}/bench}; secs=${2:-2}; reps=${3:-3}
port_n=$((20000 + RANDOM % 20000)); port_f=$((port_n + 1))
"$dir/nnrpc-bench-server" "tcp://127.0.0.1:$port_n" & sn=$!
"$dir/nn-floor-server" "tcp://127.0.0.1:$port_f" & sf=$!
trap 'kill $sn $sf 2>/dev/null; wait 2>/dev/null' EXIT
sleep 0.3
out=$(mktemp)
for c in 1 16 64; do
  for r in $(seq "$reps"); do
    "$dir/nn-floor-client" --url "tcp://127.0.0.1:$port_f" --payload 32 --concurrency $c --seconds "$secs" | tee -a "$out"
    "$dir/nnrpc-bench-client" --url "tcp://127.0.0.1:$port_n" --payload 32 --concurrency $c --seconds "$secs" | tee -a "$out"
  done
done
python3 - "$out" <<'PY' 2>/dev/null || true
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for c in sorted({r["concurrency"] for r in rows}):
    med = lambda impl, k: statistics.median(r[k] for r in rows if r["impl"] == impl and r["concurrency"] == c)
    print(f"c={c:3d}  floor {med('nn-floor','qps'):8.0f} calls/s p50 {med('nn-floor','p50_us'):6.1f} us | "
          f"nnrpc {med('nnrpc','qps'):8.0f} calls/s p50 {med('nnrpc','p50_us'):6.1f} us | "
          f"ratio qps {med('nnrpc','qps')/med('nn-floor','qps'):.2f} p50 {med('nnrpc','p50_us')/med('nn-floor','p50_us'):.2f}")
PY
rm -f "$out"
