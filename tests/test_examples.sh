#!/bin/bash
# The examples still work: runs the route_guide demo (tools/demo-route.sh) and
# the helloworld demo (tools/demo.sh) against the built programs and checks
# what the clients print. Each run is under `timeout`, so nothing can hang.
# Prints "ok N - what" / "not ok N - what"; exits non-zero on any failure.
#   BUILD=build bash tests/test_examples.sh
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
RG=$BUILD/examples/route_guide
HW=$BUILD/examples/helloworld

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

n=0; failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
expect_line() { # expect_line LOG "exact line" DESCRIPTION
  if grep -qxF -- "$2" "$1"; then ok "$3"; else not_ok "$3: no line \"$2\""; sed 's/^/#   /' "$1"; fi
}
# A demo run: its exit status, then the output to check. -k: a process that
# ignores SIGTERM is killed too.
run_demo() { # run_demo LOG COMMAND...
  local log=$1; shift
  timeout -k 2 20 "$@" >"$log" 2>&1
}

# ---------------------------------------------------------------- route_guide
if [ ! -x "$RG/route_guide_server" ] || [ ! -x "$RG/route_guide_client" ]; then
  not_ok "route_guide is built ($RG; make BUILD=$BUILD examples)"
else
  if run_demo "$T/route" tools/demo-route.sh "$RG"; then
    ok "tools/demo-route.sh: client and server exit 0"
  else
    not_ok "tools/demo-route.sh: client and server exit 0 (exit $?)"; sed 's/^/#   /' "$T/route"
  fi
  # The database is generated deterministically, so these are exact.
  expect_line "$T/route" 'GetFeature (45.1409329, 7.2715526) -> "Elder Spring Crossing"' \
    "GetFeature finds the feature at a known point"
  expect_line "$T/route" "GetFeature (0.0000000, 0.0000000) -> no feature" \
    "GetFeature on a point off the map: an empty feature, not an error"
  expect_line "$T/route" "ListFeatures: 16 features" \
    "ListFeatures streams the 16 features of a 4 x 4 block of the grid"
  if [ "$(grep -c '^  [A-Z][a-z]* [A-Z][a-z]* [A-Z][a-z]*  *(45\.[0-9]*, 7\.[0-9]*)$' "$T/route")" = 26 ]; then
    ok "ListFeatures and RecordRoute print one line per feature / point (16 + 10)"
  else
    not_ok "ListFeatures and RecordRoute print one line per feature / point (16 + 10)"; sed 's/^/#   /' "$T/route"
  fi
  # (the elapsed seconds depend on the machine's load)
  if grep -qxE "RecordRoute: 10 points, 10 features, 37601 m, [0-9]+ s" "$T/route"; then
    ok "RecordRoute sums up the seeded route (points, features, haversine distance)"
  else
    not_ok "RecordRoute sums up the seeded route: no line \"RecordRoute: 10 points, 10 features, 37601 m, N s\""
    sed 's/^/#   /' "$T/route"
  fi
  # A fresh server: the second round of notes gets the first round back, in order.
  if grep '^  got "' "$T/route" | sed 's/" at .*/"/' >"$T/chat" &&
    printf '  got "%s"\n' "First message" "Second message" "Third message" | diff -u - "$T/chat" >"$T/diff"; then
    ok "RouteChat sends back the earlier notes at each location, in order"
  else
    not_ok "RouteChat sends back the earlier notes at each location, in order"; sed 's/^/#   /' "$T/diff"
  fi
  expect_line "$T/route" "RouteChat: 3 notes received" "RouteChat: 3 notes received for 6 sent"
  expect_line "$T/route" "route_guide_server: stopped (6 notes kept)" \
    "the server stops on SIGTERM after keeping all 6 notes"
fi

# ---------------------------------------------------------------- helloworld
# tools/demo.sh takes a fixed port: pick one nobody listens on (bash's
# /dev/tcp connect fails on a free port) below the ephemeral range.
free_port() {
  local p
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
if [ ! -x "$HW/greeter_server" ] || [ ! -x "$HW/greeter_client" ]; then
  not_ok "helloworld is built ($HW; make BUILD=$BUILD examples)"
elif ! port=$(free_port); then
  not_ok "a free port for tools/demo.sh"
else
  if DEMO_PORT=$port run_demo "$T/hello" tools/demo.sh "$HW"; then
    ok "tools/demo.sh: client and server exit 0"
  else
    not_ok "tools/demo.sh: client and server exit 0 (exit $?)"; sed 's/^/#   /' "$T/hello"
  fi
  expect_line "$T/hello" 'Greeter.SayHello -> "Hello, world!"' "helloworld: the greeting comes back"
fi

echo
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
