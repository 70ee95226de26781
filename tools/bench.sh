#!/bin/bash
# The full benchmark behind `make bench`: nnrpc against the bare nanomsg floor
# over tcp on loopback, same run, and docs/performance.{md,png} from it.
#   tools/bench.sh [BENCH_DIR [OUT_DIR]]
# BENCH_DIR (default $BUILD/bench, BUILD default build) holds the programs of
# bench/bench.mk (make bench-bins); OUT_DIR (default docs) gets
# performance.md and performance.png; the raw results go to BENCH_DIR/results.
# Environment (defaults in brackets):
#   BENCH_SECONDS [2]   measured seconds per client run (after a 0.5 s warm-up)
#   BENCH_REPS [5]      repetitions of every pair of runs (medians of them)
#   BENCH_PAYLOADS ["32 4096 1048576"]  BENCH_CONCURRENCY ["1 16 64"]
#   BENCH_ALLOC_CALLS [20000]  calls counted for allocations per call (32 B and 4 KiB;
#                              a tenth of it at 1 MiB)
#   BENCH_SITE_CALLS [300]     calls of 32 B whose allocations are traced to their call
#                              stacks (a tenth of it at 1 MiB)
set -euo pipefail
dir=$(cd "${1:-${BUILD:-build}/bench}" && pwd); out=${2:-docs}
secs=${BENCH_SECONDS:-2}; reps=${BENCH_REPS:-5}
payloads=${BENCH_PAYLOADS:-32 4096 1048576}; concs=${BENCH_CONCURRENCY:-1 16 64}
alloc_calls=${BENCH_ALLOC_CALLS:-20000}; site_calls=${BENCH_SITE_CALLS:-300}
for p in nnrpc-bench-server nnrpc-bench-client nn-floor-server nn-floor-client stream-client nn-push alloc_count.so; do
  [ -e "$dir/$p" ] || { echo "bench: $dir/$p is missing (make bench builds it)" >&2; exit 1; }
done
for t in python3 gnuplot addr2line; do
  command -v $t >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
mkdir -p "$out"
res=$dir/results; rm -rf "$res"; mkdir -p "$res"
t_begin=$(date +%s)
load_begin=$(cut -d' ' -f1-3 /proc/loadavg)

pids=()
cleanup() {
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
next_url() { port=$((port + 1)); url="tcp://127.0.0.1:$port"; }
# start NAME ARGS...: runs a server in the background, sets $pid; fails if it dies at once
start() {
  "$@" & pid=$!
  pids+=("$pid")
  sleep 0.3
  kill -0 "$pid" 2>/dev/null || { echo "bench: $* did not start" >&2; exit 1; }
}
alive() { kill -0 "$1" 2>/dev/null || { echo "bench: server $1 died" >&2; exit 1; }; }
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]+"${pids[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
}
vmhwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------- unary: nnrpc vs the floor
next_url; url_n=$url; start "$dir/nnrpc-bench-server" "$url_n"; srv_n=$pid
next_url; url_f=$url; start "$dir/nn-floor-server" "$url_f"; srv_f=$pid
runs=0
for p in $payloads; do
  for c in $concs; do
    for r in $(seq "$reps"); do
      # alternate which goes first, so neither always follows the other
      if [ $((r % 2)) = 1 ]; then order="floor nnrpc"; else order="nnrpc floor"; fi
      for impl in $order; do
        if [ "$impl" = floor ]; then
          "$dir/nn-floor-client" --url "$url_f" --payload "$p" --concurrency "$c" --seconds "$secs" >>"$res/unary.jsonl"
        else
          "$dir/nnrpc-bench-client" --url "$url_n" --payload "$p" --concurrency "$c" --seconds "$secs" >>"$res/unary.jsonl"
        fi
        tail -n1 "$res/unary.jsonl"
        runs=$((runs + 1))
        sleep 0.2 # let the server drain what the client left in flight
      done
      alive "$srv_n"; alive "$srv_f"
    done
  done
done

# ---------------------------------------------------------------- streaming: 32 B server stream vs PUSH/PULL
next_url; url_p=$url; start "$dir/nn-push" "$url_p" 32; srv_p=$pid
for r in $(seq "$reps"); do
  "$dir/stream-client" --impl nn --url "$url_p" --payload 32 --seconds "$secs" | tee -a "$res/stream.jsonl"
  "$dir/stream-client" --impl nnrpc --url "$url_n" --payload 32 --seconds "$secs" | tee -a "$res/stream.jsonl"
  sleep 0.2
done
alive "$srv_n"
echo "{\"nnrpc_server_vmhwm_kb\":$(vmhwm "$srv_n"),\"floor_server_vmhwm_kb\":$(vmhwm "$srv_f")}" | tee "$res/rss.json"
stop "$srv_p"; stop "$srv_n"; stop "$srv_f"

# ---------------------------------------------------------------- allocations per call (LD_PRELOAD counter)
so=$dir/alloc_count.so
# alloc_run IMPL PAYLOAD CALLS TAG [ENV...]: one server and one --calls client, both counted
alloc_run() {
  local impl=$1 p=$2 n=$3 tag=$4; shift 4
  local server=nnrpc-bench-server client=nnrpc-bench-client
  [ "$impl" = floor ] && server=nn-floor-server client=nn-floor-client
  next_url
  start env "$@" ALLOC_COUNT_OUT="$res/$tag.server" LD_PRELOAD="$so" "$dir/$server" "$url"
  env "$@" ALLOC_COUNT_OUT="$res/$tag.client" LD_PRELOAD="$so" "$dir/$client" --url "$url" --payload "$p" \
    --concurrency 1 --seconds 1 --calls "$n" --mark-pid "$pid" | tee "$res/$tag.json"
  stop "$pid"
}
for p in $payloads; do
  n=$alloc_calls; [ "$p" -gt 65536 ] && n=$(( (alloc_calls + 9) / 10 ))
  alloc_run nnrpc "$p" "$n" "alloc-nnrpc-$p"
  alloc_run floor "$p" "$n" "alloc-floor-$p"
done
alloc_run nnrpc 32 "$site_calls" sites-nnrpc-32 ALLOC_COUNT_SITES=1
alloc_run nnrpc 1048576 $(( (site_calls + 9) / 10 )) sites-nnrpc-1048576 ALLOC_COUNT_SITES=1

# ---------------------------------------------------------------- the report
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
t_total=$(( $(date +%s) - t_begin ))
notes_md="$(cd "$(dirname "$0")/.." && pwd)/bench/notes.md"
export secs reps t_total load_begin load_end runs notes_md
python3 - "$res" "$out" "$dir" <<'PY'
import json, os, re, statistics, subprocess, sys, datetime
res, out, bdir = sys.argv[1:4]
E = os.environ
secs, reps, t_total, runs = E["secs"], int(E["reps"]), int(E["t_total"]), int(E["runs"])
load_begin, load_end = E["load_begin"], E["load_end"]

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "?"
def pkg(name):
    v = sh("dpkg-query", "-W", "-f=${Version}", name)
    return v if v and v != "?" else "not installed"

cpu = "?"
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip(); break
rev = sh("git", "describe", "--always", "--dirty")

rows = [json.loads(l) for l in open(f"{res}/unary.jsonl")]
payloads = sorted({r["payload"] for r in rows}); concs = sorted({r["concurrency"] for r in rows})
impl_of = {"nnrpc": "nnrpc", "nn-floor": "floor"}
def med(impl, p, c, k):
    v = [r[k] for r in rows if impl_of[r["impl"]] == impl and r["payload"] == p and r["concurrency"] == c]
    return statistics.median(v) if v else float("nan")
def errs(impl, p, c):
    return sum(r["errors"] for r in rows if impl_of[r["impl"]] == impl and r["payload"] == p and r["concurrency"] == c)
def size(p):
    return f"{p // 1048576} MiB" if p >= 1048576 else f"{p // 1024} KiB" if p >= 1024 else f"{p} B"
def us(v):
    return f"{v / 1000:.1f} ms" if v >= 10000 else f"{v:.0f} us" if v >= 100 else f"{v:.1f} us"
def ratio(a, b):
    return a / b if b else float("nan")

# ---- plot data and gnuplot
with open(f"{res}/unary.dat", "w") as f:
    for p in payloads:
        f.write(f"# payload {p}\n# conc floor_qps nnrpc_qps floor_p50 nnrpc_p50\n")
        for c in concs:
            f.write(f"{c} {med('floor', p, c, 'qps')} {med('nnrpc', p, c, 'qps')} "
                    f"{med('floor', p, c, 'p50_us')} {med('nnrpc', p, c, 'p50_us')}\n")
        f.write("\n\n")
gp = [f'set terminal pngcairo size 1500,920 font "sans,10"', f'set output "{out}/performance.png"',
      f'set multiplot layout 2,{len(payloads)} title "nnrpc vs the nanomsg floor, tcp loopback, medians of {reps} runs of {secs} s"',
      'set logscale x 2', f'set xtics ({", ".join(str(c) for c in concs)})', f'set xrange [{concs[0] * 0.8}:{concs[-1] * 1.25}]',
      'set grid', 'set key bmargin center horizontal', 'set xlabel "calls in flight (concurrency)"']
for i, p in enumerate(payloads):
    gp += ['unset logscale y', 'set yrange [0:*]', f'set title "{size(p)}: calls/s"', 'set ylabel "calls/s"',
           f'plot "{res}/unary.dat" index {i} using 1:3 with linespoints lw 2 pt 7 title "nnrpc", '
           f'"" index {i} using 1:2 with linespoints lw 2 pt 5 dt 2 title "nanomsg floor"']
for i, p in enumerate(payloads):
    gp += ['set logscale y', 'set yrange [*:*]', f'set title "{size(p)}: p50 latency"', 'set ylabel "p50 latency (us)"',
           f'plot "{res}/unary.dat" index {i} using 1:5 with linespoints lw 2 pt 7 title "nnrpc", '
           f'"" index {i} using 1:4 with linespoints lw 2 pt 5 dt 2 title "nanomsg floor"']
gp.append("unset multiplot")
open(f"{res}/plot.gp", "w").write("\n".join(gp) + "\n")
subprocess.run(["gnuplot", f"{res}/plot.gp"], check=True)

# ---- streaming, memory
st = [json.loads(l) for l in open(f"{res}/stream.jsonl")]
smed = lambda impl: statistics.median(r["msgs_per_s"] for r in st if r["impl"] == impl)
s_floor, s_nnrpc = smed("nn-pushpull"), smed("nnrpc-stream")
rss = json.load(open(f"{res}/rss.json"))

# ---- allocations
def marks(path):
    m = {}
    for l in open(path):
        if l.startswith("alloc_count "):
            kv = dict(x.split("=", 1) for x in l.split()[1:])
            m[kv["mark"]] = {k: int(v) for k, v in kv.items() if k not in ("mark", "pid")}
    return m
def per_call(path, n):
    m = marks(path)
    a, b = m["1"], m["2"]
    d = {k: (b[k] - a[k]) / n for k in ("malloc", "calloc", "realloc", "free", "bytes")}
    d["allocs"] = d["malloc"] + d["calloc"] + d["realloc"]
    return d
def calls_of(impl, p):
    r = json.load(open(f"{res}/alloc-{impl}-{p}.json"))
    return r["calls"] + r["errors"]
alloc = {}
for p in payloads:
    for impl in ("nnrpc", "floor"):
        n = calls_of(impl, p)
        alloc[impl, p] = (n, per_call(f"{res}/alloc-{impl}-{p}.client", n), per_call(f"{res}/alloc-{impl}-{p}.server", n))

# ---- allocation sites: resolve the frames in our programs with addr2line
def sites(path, exe):
    out = []
    for l in open(path):
        if not l.startswith("alloc_site "):
            continue
        head, frames = l.rstrip("\n").split(" frames=", 1)
        kv = dict(x.split("=", 1) for x in head.split()[1:])
        fr = []
        for f in frames.split(";"):
            mm = re.match(r"(.*)\+0x([0-9a-f]+)\((.*)\)$", f)
            if mm: fr.append((mm.group(1), int(mm.group(2), 16), mm.group(3)))
        out.append((kv["kind"], int(kv["count"]), int(kv["bytes"]), fr))
    offs = sorted({o for *_, fr in out for obj, o, _ in fr if os.path.realpath(obj) == os.path.realpath(exe)})
    names = {}
    if offs:
        txt = sh("addr2line", "-a", "-f", "-i", "-e", exe, *[hex(o) for o in offs]).splitlines()
        cur = None; i = 0
        while i < len(txt):
            if re.match(r"^0x[0-9a-f]+$", txt[i]):
                cur = int(txt[i], 16); names[cur] = []; i += 1; continue
            fn, loc = txt[i], txt[i + 1] if i + 1 < len(txt) else "?"
            loc = re.sub(r" \(discriminator \d+\)", "", loc)
            names[cur].append((fn, os.path.basename(loc.split(":")[0]) + ":" + loc.split(":")[-1]))
            i += 2
    res_ = []
    for kind, count, nbytes, fr in out:
        lib = []
        ours = []
        for obj, o, sym in fr:
            if os.path.realpath(obj) == os.path.realpath(exe):
                ours += names.get(o, [("?", "?")])
            elif not ours and "libc.so" not in obj and sym != "?":
                short = os.path.basename(obj).split(".so")[0]
                if not lib or lib[-1] != f"{short}: {sym}":
                    lib.append(f"{short}: {sym}")
        where = f"{ours[0][0]} ({ours[0][1]})" if ours else "nanomsg's own I/O thread"
        chain = " < ".join(dict.fromkeys(n for n, _ in ours[1:4])) if ours else ""
        lib_s = " < ".join(x if i == 0 else x.split(": ", 1)[1] for i, x in enumerate(lib[:3])) if lib else "direct"
        res_.append((count, nbytes, kind, lib_s, where, chain))
    agg = {}
    for count, nbytes, kind, lib_s, where, chain in res_:
        k = (kind, lib_s, where, chain); a = agg.get(k, (0, 0)); agg[k] = (a[0] + count, a[1] + nbytes)
    return sorted(((*v, *k) for k, v in agg.items()), reverse=True)
site_runs = []
for p in (32, 1048576):
    if not os.path.exists(f"{res}/sites-nnrpc-{p}.json"): continue
    sr = json.load(open(f"{res}/sites-nnrpc-{p}.json"))
    site_runs.append((p, sr["calls"] + sr["errors"],
                      {side: sites(f"{res}/sites-nnrpc-{p}.{side}", f"{bdir}/nnrpc-bench-{side}") for side in ("client", "server")}))
def kib(b):
    return f"{b / 1048576:.2f} MiB" if b >= 1048576 else f"{b / 1024:.1f} KiB" if b >= 1024 else f"{b:.0f} B"

# ---- markdown
L = []
w = L.append
w("# Performance")
w("")
w(f"Generated by `make bench` (tools/bench.sh) on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M %Z').strip()}, "
  f"working tree at `{rev}`. The whole run took {t_total // 60} min {t_total % 60} s.")
w("")
w("**Read these figures as same-run ratios.** The machine is shared and was busy with other jobs "
  f"(load average {load_begin} at the start, {load_end} at the end), so absolute calls/s and latencies move "
  "from run to run; nnrpc and the floor ran alternately against servers started once, so both saw the same noise.")
w("")
w("| machine | |")
w("|---|---|")
w(f"| CPUs (nproc) | {sh('nproc')} |")
w(f"| CPU | {cpu} |")
w(f"| kernel | {sh('uname', '-sr')} |")
w(f"| nanomsg | libnanomsg5 {pkg('libnanomsg5')} (libnanomsg-dev {pkg('libnanomsg-dev')}) |")
w(f"| protobuf-c | libprotobuf-c1 {pkg('libprotobuf-c1')} (libprotobuf-c-dev {pkg('libprotobuf-c-dev')}) |")
w(f"| compiler | {sh('cc', '--version').splitlines()[0]} |")
w("")
w("## Unary calls: nnrpc against the nanomsg floor")
w("")
w("An echo of a `bytes` payload over tcp on 127.0.0.1. The floor is a bare nanomsg REQ/REP echo of the same "
  "bytes (one cooked REQ socket per concurrent caller, a raw REP server echoing zero-copy); nnrpc runs its "
  "concurrent callers as threads on one channel (one connection). Each cell is the median of "
  f"{reps} runs of {secs} s after a 0.5 s warm-up; ratios are nnrpc / floor (calls/s: higher is better, "
  "latency: lower is better).")
w("")
w("| payload | in flight | floor calls/s | nnrpc calls/s | **ratio** | floor p50 | nnrpc p50 | **ratio** | floor p99 | nnrpc p99 | **ratio** |")
w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for p in payloads:
    for c in concs:
        fq, nq = med("floor", p, c, "qps"), med("nnrpc", p, c, "qps")
        f5, n5 = med("floor", p, c, "p50_us"), med("nnrpc", p, c, "p50_us")
        f9, n9 = med("floor", p, c, "p99_us"), med("nnrpc", p, c, "p99_us")
        w(f"| {size(p)} | {c} | {fq:,.0f} | {nq:,.0f} | **{ratio(nq, fq):.2f}** | {us(f5)} | {us(n5)} | "
          f"**{ratio(n5, f5):.2f}** | {us(f9)} | {us(n9)} | **{ratio(n9, f9):.2f}** |")
ef = sum(r["errors"] for r in rows if r["impl"] == "nn-floor"); en = sum(r["errors"] for r in rows if r["impl"] == "nnrpc")
w("")
w(f"Run-to-run spread of calls/s (lowest – highest of the {reps} runs), to judge the noise:")
w("")
w("| payload | in flight | floor | nnrpc |")
w("|---:|---:|---:|---:|")
def spread(impl, p, c):
    v = [r["qps"] for r in rows if impl_of[r["impl"]] == impl and r["payload"] == p and r["concurrency"] == c]
    return f"{min(v):,.0f} – {max(v):,.0f}" if v else "?"
for p in payloads:
    for c in concs:
        w(f"| {size(p)} | {c} | {spread('floor', p, c)} | {spread('nnrpc', p, c)} |")
w("")
w(f"Failed calls over all runs: floor {ef}, nnrpc {en}. Raw results (one JSON line per client run): "
  f"`{os.path.relpath(res)}/unary.jsonl`.")
w("")
w("![calls/s and p50 latency against concurrency, nnrpc and the nanomsg floor](performance.png)")
w("")
w("### Against the targets of issue 6")
w("")
w("| target | measured | |")
w("|---|---:|---|")
def tgt(text, val, ok):
    w(f"| {text} | {val:.2f} | {'met' if ok else 'not met'} |")
if 32 in payloads and 1 in concs:
    v = ratio(med("nnrpc", 32, 1, "p50_us"), med("floor", 32, 1, "p50_us")); tgt("32 B, 1 in flight: p50 ≤ 1.15 × floor", v, v <= 1.15)
for p in (32, 4096):
    if p in payloads and 64 in concs:
        v = ratio(med("nnrpc", p, 64, "qps"), med("floor", p, 64, "qps"))
        tgt(f"{size(p)}, 64 in flight: calls/s ≥ 1.0 × floor (goal 1.8 ×)", v, v >= 1.0)
if 1048576 in payloads and 16 in concs:
    v = ratio(med("nnrpc", 1048576, 16, "qps"), med("floor", 1048576, 16, "qps")); tgt("1 MiB, 16 in flight: calls/s ≥ 0.85 × floor", v, v >= 0.85)
w("")
w("## Streaming")
w("")
w(f"32 B messages, counted at the receiver for {secs} s after a 0.5 s warm-up, median of {reps} runs: "
  "an nnrpc server stream (`Bench.Flood`, per-stream flow control) against a bare nanomsg PUSH/PULL stream.")
w("")
w("| nanomsg PUSH/PULL msgs/s | nnrpc server stream msgs/s | **ratio** |")
w("|---:|---:|---:|")
w(f"| {s_floor:,.0f} | {s_nnrpc:,.0f} | **{ratio(s_nnrpc, s_floor):.2f}** |")
w("")
w("## Server memory")
w("")
w(f"Peak resident set (VmHWM from /proc/PID/status) at the end of the run, after all the unary runs "
  f"above (up to 64 calls of 1 MiB in flight) and the streaming runs: nnrpc server "
  f"**{rss['nnrpc_server_vmhwm_kb'] / 1024:.1f} MiB**, floor server {rss['floor_server_vmhwm_kb'] / 1024:.1f} MiB.")
w("")
w("## Heap allocations per unary call")
w("")
w("Counted by an LD_PRELOAD shim (bench/alloc_count.c: calls of malloc, calloc and realloc) in "
  "both processes, over a window of calls after a 0.5 s warm-up, one call in flight "
  "(`--calls N --mark-pid PID`): everything the process allocated in the window, nanomsg's I/O threads "
  "included, divided by the calls.")
w("")
w("Allocations per call (bytes requested per call in brackets):")
w("")
w("| payload | calls | nnrpc client | nnrpc server | floor client | floor server |")
w("|---:|---:|---:|---:|---:|---:|")
for p in payloads:
    n, nc, ns = alloc[("nnrpc", p)]; _, fc, fs = alloc[("floor", p)]
    cell = lambda d: f"{d['allocs']:.2f} ({kib(d['bytes'])})"
    w(f"| {size(p)} | {n:,} | **{cell(nc)}** | **{cell(ns)}** | {cell(fc)} | {cell(fs)} |")
w("")
w("Where they come from: every allocation in a window of calls traced to its call stack (the shim with "
  "`ALLOC_COUNT_SITES=1`, frames resolved with addr2line; nanomsg and protobuf-c are stripped, so only their "
  "exported names show; \"nanomsg's own I/O thread\" is nanomsg receiving a message on its worker thread). "
  "Sites under 0.02 per call left out.")
for p, sn, tab in site_runs:
    for side in ("client", "server"):
        w("")
        w(f"**{side}, {size(p)}** ({sn} calls)")
        w("")
        w("| per call | bytes/call | kind | allocated in | from our code | called from |")
        w("|---:|---:|---|---|---|---|")
        for count, nbytes, kind, lib_s, where, chain in tab[side]:
            if count / sn < 0.02: continue
            w(f"| {count / sn:.2f} | {kib(nbytes / sn)} | {kind} | {lib_s} | {where} | {chain} |")
w("")
# The profile notes (bench/notes.md: where the time goes), written by hand
notes = os.environ.get("notes_md", "")
if notes and os.path.exists(notes):
    w(open(notes).read().rstrip())
    w("")
w("## How to reproduce")
w("")
w("```sh")
w(f"make bench                                   # builds what it needs; this run took {t_total // 60} min {t_total % 60} s")
w("make bench BENCH_SECONDS=5 BENCH_REPS=9      # longer and more runs")
w("make BUILD=build/mine bench                  # another build directory")
w("```")
w("")
w("It installs gnuplot-nox through tools/ensure-deps when gnuplot is missing (as root; otherwise it prints "
  "the apt-get line). The single programs: `nnrpc-bench-server URL`, `nn-floor-server URL`, "
  "`nnrpc-bench-client`/`nn-floor-client --url URL --payload BYTES --concurrency C --seconds S` (one JSON "
  "line each), `stream-client`, `nn-push`, and `alloc_count.so` for `LD_PRELOAD`; "
  "`make quickbench` and `make streambench` are the short versions.")
open(f"{out}/performance.md", "w").write("\n".join(L) + "\n")
print(f"bench: wrote {out}/performance.md and {out}/performance.png ({runs} unary runs, {t_total} s)")
PY
