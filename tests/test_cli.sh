#!/bin/bash
# The nnrpc command (cli/, docs/tools.md) against the example servers: the
# helloworld and route_guide servers serve reflection; the async server does
# not, so it is called with --proto. Checks list, describe, call (all four
# kinds of method), -H metadata, --timeout, and each kind of error with its
# exit status and message. Servers listen on ipc:// sockets in a temporary
# directory, each run under `timeout`.
# Prints "ok N - what" / "not ok N - what"; exits non-zero on any failure.
#   BUILD=build bash tests/test_cli.sh
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
NNRPC=$BUILD/bin/nnrpc
HW=$BUILD/examples/helloworld
RG=$BUILD/examples/route_guide
ASY=$BUILD/examples/async

T=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

n=0; failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
  n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
  echo "#   exit $rc; stdout:"; sed 's/^/#     /' "$T/out"; echo "#   stderr:"; sed 's/^/#     /' "$T/err"
}
# run ARGS...: runs nnrpc, output in $T/out and $T/err, status in $rc
run() { timeout -k 2 20 "$NNRPC" "$@" >"$T/out" 2>"$T/err"; rc=$?; }
# expect DESCRIPTION STATUS STDOUT-PATTERN STDERR-PATTERN (grep -E; "" skips)
expect() {
  local what=$1 want=$2 out=$3 err=$4
  if [ "$rc" = "$want" ] && { [ -z "$out" ] || grep -qE -- "$out" "$T/out"; } &&
    { [ -z "$err" ] || grep -qE -- "$err" "$T/err"; }; then
    ok "$what"
  else
    not_ok "$what (want exit $want${out:+, stdout /$out/}${err:+, stderr /$err/})"
  fi
}
# expect_out DESCRIPTION EXPECTED-STDOUT (exit 0, stdout exactly)
expect_out() {
  if [ "$rc" = 0 ] && diff -u <(printf '%s\n' "$2") "$T/out" >"$T/diff"; then
    ok "$1"
  else
    not_ok "$1"; sed 's/^/#   /' "$T/diff"
  fi
}
# start NAME COMMAND...: a server in the background; waits for its socket
start() {
  local name=$1; shift
  timeout -k 2 120 "$@" >"$T/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$T/$name.sock" ] && return 0; sleep 0.05; done
  echo "# $name did not start:"; sed 's/^/#   /' "$T/$name.log"
}

for bin in "$NNRPC" "$HW/greeter_server" "$RG/route_guide_server" "$ASY/async_server"; do
  if [ ! -x "$bin" ]; then rc=-; not_ok "$bin is built (make BUILD=$BUILD)"; exit 1; fi
done

HELLO=ipc://$T/hello.sock
ROUTE=ipc://$T/route.sock
AUTH=ipc://$T/auth.sock
SLOW=ipc://$T/slow.sock
start hello "$HW/greeter_server" "$HELLO"
start route "$RG/route_guide_server" "$ROUTE"
start auth "$HW/greeter_server" "$AUTH" s3cret
start slow "$ASY/async_server" "$SLOW" 3000

# ---------------------------------------------------------------- list, describe
run list "$HELLO"
expect_out "list: the helloworld server's services (reflection lists itself too)" \
  "helloworld.Greeter
nnrpc.reflection.v1.ServerReflection"
run list "$ROUTE" routeguide.RouteGuide
expect_out "list SERVICE: its methods" "routeguide.RouteGuide/GetFeature
routeguide.RouteGuide/ListFeatures
routeguide.RouteGuide/RecordRoute
routeguide.RouteGuide/RouteChat"
run describe "$HELLO" helloworld.Greeter
expect_out "describe SERVICE: its methods with their kinds, then the messages they use" \
  "// helloworld.Greeter (helloworld.proto)
service Greeter {
  rpc SayHello(helloworld.HelloRequest) returns (helloworld.HelloReply);  // unary
}

// helloworld.HelloRequest (helloworld.proto)
message HelloRequest {
  string name = 1;
}

// helloworld.HelloReply (helloworld.proto)
message HelloReply {
  string message = 1;
}"
run describe "$ROUTE" routeguide.RouteGuide
expect "describe: each kind of method of route_guide" 0 \
  'rpc RouteChat\(stream routeguide.RouteNote\) returns \(stream routeguide.RouteNote\);  // bidi streaming' ""
if [ "$(grep -cE '// (unary|server streaming|client streaming|bidi streaming)$' "$T/out")" = 4 ] &&
  [ "$(grep -c '^message ' "$T/out")" = 5 ]; then
  ok "describe: four methods, five messages, each once"
else
  not_ok "describe: four methods, five messages, each once"
fi
run describe "$ROUTE" routeguide.RouteGuide/ListFeatures
expect_out "describe SERVICE/METHOD: the method, then its request and reply types and theirs" \
  "// routeguide.RouteGuide.ListFeatures (route_guide.proto): server streaming
rpc ListFeatures(routeguide.Rectangle) returns (stream routeguide.Feature);

// routeguide.Rectangle (route_guide.proto)
message Rectangle {
  routeguide.Point lo = 1;
  routeguide.Point hi = 2;
}

// routeguide.Feature (route_guide.proto)
message Feature {
  string name = 1;
  routeguide.Point location = 2;
}

// routeguide.Point (route_guide.proto)
message Point {
  int32 latitude = 1;
  int32 longitude = 2;
}"
run describe "$ROUTE" routeguide.Point
expect "describe MESSAGE" 0 '^message Point \{$' ""
run describe "$ROUTE" nnrpc.reflection.v1.ServerReflection
expect "describe: the reflection service describes itself" 0 \
  'rpc FileContainingSymbol\(nnrpc.reflection.v1.FileContainingSymbolRequest\)' ""
run describe "$ROUTE" routeguide.Nope
expect "describe an unknown symbol: NOT_FOUND (5), naming the services" 5 "" \
  '^NOT_FOUND: routeguide.Nope is not a service, method, message or enum of the server \(services: nnrpc.reflection.v1.ServerReflection, routeguide.RouteGuide\)$'

# ---------------------------------------------------------------- call
run call "$HELLO" helloworld.Greeter/SayHello '{"name":"world"}'
expect_out "call: a unary reply, as JSON" '{
  "message": "Hello, world!"
}'
echo '{"name": "stdin"}' >"$T/req.json"
run -c call "$HELLO" helloworld.Greeter/SayHello @"$T/req.json"
expect_out "call: the request from @FILE; -c prints one line" '{"message":"Hello, stdin!"}'
run call "$ROUTE" routeguide.RouteGuide/GetFeature '{"latitude": 451409329, "longitude": 72715526}'
expect "call GetFeature: the feature at a known point" 0 '"name": "Elder Spring Crossing"' ""
run call "$ROUTE" routeguide.RouteGuide/ListFeatures \
  '{"lo": {"latitude": 451150000, "longitude": 72250000}, "hi": {"latitude": 451550000, "longitude": 72650000}}'
if [ "$rc" = 0 ] && [ "$(wc -l <"$T/out")" = 16 ] &&
  [ "$(grep -cE '^\{"name":"[A-Z][a-z]+ [A-Z][a-z]+ [A-Z][a-z]+","location":\{"latitude":[0-9]+,"longitude":[0-9]+\}\}$' "$T/out")" = 16 ]; then
  ok "call ListFeatures (server streaming): one JSON object per line, 16 features"
else
  not_ok "call ListFeatures (server streaming): one JSON object per line, 16 features"
fi
run -c call "$ROUTE" routeguide.RouteGuide/RecordRoute \
  '{"latitude": 451409329, "longitude": 72715526} {"latitude": 451409329, "longitude": 72715526} {"latitude": 1}'
expect "call RecordRoute (client streaming): several requests, one summary" 0 \
  '^\{"pointCount":3,"featureCount":2,"distance":[0-9]+(,"elapsedTime":[0-9]+)?\}$' ""
run call "$ROUTE" routeguide.RouteGuide/RouteChat \
  '{"location": {"latitude": 7}, "message": "first"} {"location": {"latitude": 7}, "message": "second"}'
expect "call RouteChat (bidi streaming): the earlier note comes back" 0 \
  '^\{"location":\{"latitude":7\},"message":"first"\}$' ""

# ---------------------------------------------------------------- metadata, deadlines
run call "$AUTH" helloworld.Greeter/SayHello '{"name":"x"}'
expect "a server that wants a token: UNAUTHENTICATED (16) without -H" 16 "" '^UNAUTHENTICATED: '
run -H 'Authorization: Bearer s3cret' call "$AUTH" helloworld.Greeter/SayHello '{"name":"token"}'
expect "-H sends metadata (the bearer token, key lowercased) with every call" 0 '"message": "Hello, token!"' ""
start=$(date +%s%N)
run --timeout 300 --proto examples/helloworld/helloworld.proto call "$SLOW" helloworld.Greeter/SayHello '{"name":"late"}'
ms=$(( ($(date +%s%N) - start) / 1000000 ))
expect "--timeout 300 against a server answering after 3 s: DEADLINE_EXCEEDED (4)" 4 "" '^DEADLINE_EXCEEDED: '
if [ "$ms" -lt 2500 ]; then ok "... after the deadline, not the server's answer (${ms} ms)"; else rc=4; not_ok "... took ${ms} ms"; fi
run --timeout 300 list "ipc://$T/nobody.sock"
expect "no server: DEADLINE_EXCEEDED (4) after --timeout, saying so" 4 "" '^DEADLINE_EXCEEDED: .*no server'

# ---------------------------------------------------------------- errors
run call "$HELLO" helloworld.Greeter/SayGoodbye '{}'
expect "unknown method: UNIMPLEMENTED (12), naming the methods there are" 12 "" \
  '^UNIMPLEMENTED: helloworld.Greeter has no method SayGoodbye \(methods: SayHello\)$'
run call "$HELLO" helloworld.Farewell/Say '{}'
expect "unknown service: UNIMPLEMENTED (12), naming the server's services" 12 "" \
  '^UNIMPLEMENTED: unknown service helloworld.Farewell \(the server has: helloworld.Greeter, nnrpc.reflection.v1.ServerReflection\)$'
run call "$HELLO" helloworld.Greeter/SayHello '{"name": "world",}'
expect "bad JSON: INVALID_ARGUMENT (3), where" 3 "" '^INVALID_ARGUMENT: the request is not valid JSON: .* at offset 17'
run call "$HELLO" helloworld.Greeter/SayHello '{"name": 5}'
expect "wrong field type: INVALID_ARGUMENT (3), naming the field, its type and the value" 3 "" \
  '^INVALID_ARGUMENT: request \(helloworld.HelloRequest\): field "name" \(string\): expected a string, got 5$'
run call "$HELLO" helloworld.Greeter/SayHello '{"nmae": "x"}'
expect "unknown field: INVALID_ARGUMENT (3), listing the fields" 3 "" \
  '^INVALID_ARGUMENT: request \(helloworld.HelloRequest\): unknown field "nmae" in helloworld.HelloRequest \(fields: name\)$'
run call "$ROUTE" routeguide.RouteGuide/GetFeature '{"latitude": 4000000000}'
expect "an int32 out of range: INVALID_ARGUMENT (3)" 3 "" 'field "latitude" \(int32\): 4000000000 is out of range'
run call "$HELLO" helloworld.Greeter/SayHello '{"name": ""}'
expect "the server's own error: its code (3) and message" 3 "" '^INVALID_ARGUMENT: name is empty$'
run call "$HELLO" helloworld.Greeter/SayHello '{"name": "a"} {"name": "b"}'
expect "two requests for a unary method: INVALID_ARGUMENT (3)" 3 "" 'takes one request, got 2'
run frobnicate "$HELLO"
expect "an unknown command: exit 64 and the usage" 64 "" '^usage: nnrpc'

# ---------------------------------------------------------------- without reflection
run list "$SLOW"
expect "a server without reflection: UNIMPLEMENTED (12), pointing to --proto" 12 "" \
  'does not serve reflection .*--proto FILE'
run --timeout 10000 --proto examples/helloworld/helloworld.proto call "$SLOW" helloworld.Greeter/SayHello '{"name":"proto"}'
expect "--proto FILE: the schema from protoc, the call to a server without reflection" 0 '"message": "proto"' ""
run --proto route_guide.proto -I examples/route_guide describe "$SLOW" routeguide.RouteGuide/GetFeature
expect "--proto FILE -I DIR: describe from the files alone" 0 '^rpc GetFeature\(routeguide.Point\) returns \(routeguide.Feature\);$' ""
protoc -Iexamples/route_guide --include_imports --descriptor_set_out="$T/rg.protoset" route_guide.proto
run --protoset "$T/rg.protoset" list "$SLOW"
expect_out "--protoset FILE: list the services of a descriptor set" "routeguide.RouteGuide"
run --proto examples/helloworld/nope.proto list "$SLOW"
expect "--proto with a file protoc cannot read: INVALID_ARGUMENT (3)" 3 "" 'protoc could not compile'

echo
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
