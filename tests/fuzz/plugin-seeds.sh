#!/bin/sh
# Writes fuzz_plugin's seeds (tests/fuzz/corpus/fuzz_plugin/): the
# CodeGeneratorRequest protoc sends a plugin, captured for .proto files of the
# project (services of every kind, no package, imports, comments with odd
# text, protoc-c options, a plugin parameter, errors).
#   plugin-seeds.sh OUT_DIR
set -eu
out=$(cd "$1" 2>/dev/null || mkdir -p "$1"; cd "$1" && pwd)
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A "plugin" that keeps the request and answers with an empty response.
printf '#!/bin/sh\ncat > "$NNRPC_SEED"\n' >"$tmp/capture"
chmod +x "$tmp/capture"
capture() { # capture NAME [--capture_out=PARAM:] PROTOC_ARGS...
  name=$1
  shift
  NNRPC_SEED="$out/$name" protoc --plugin=protoc-gen-capture="$tmp/capture" --capture_out="$tmp" "$@"
}
capture helloworld -Iexamples/helloworld examples/helloworld/helloworld.proto
capture route_guide -Iexamples/route_guide examples/route_guide/route_guide.proto
capture test -Itests/protos tests/protos/test.proto
capture stream_test -Itests/protos tests/protos/stream_test.proto
capture streaming -Itests/protos_codegen tests/protos_codegen/streaming.proto
capture empty_service -Itests/protos_codegen tests/protos_codegen/empty_service.proto
NNRPC_SEED="$out/with-parameter" protoc --plugin=protoc-gen-capture="$tmp/capture" \
  --capture_out=some_option:"$tmp" -Itests/protos tests/protos/test.proto
# Requests naming protobuf-c.proto carry all of descriptor.proto (50 KiB):
# drop those two files from the request, keep the options they define.
slim() { # slim NAME: re-encodes $out/NAME without them
  req=google.protobuf.compiler.CodeGeneratorRequest
  protoc -I/usr/include --decode=$req google/protobuf/compiler/plugin.proto protobuf-c/protobuf-c.proto <"$out/$1" |
    awk '/^proto_file \{$/ { blk = $0 "\n"; inblk = 1; next }
         inblk { blk = blk $0 "\n"; if ($0 == "}") { inblk = 0;
                 if (blk !~ /name: "(google\/protobuf\/descriptor|protobuf-c\/protobuf-c)\.proto"/) printf "%s", blk }
                 next }
         { print }' |
    grep -v 'dependency: "protobuf-c/protobuf-c.proto"' |
    protoc -I/usr/include --encode=$req google/protobuf/compiler/plugin.proto protobuf-c/protobuf-c.proto >"$tmp/slim"
  mv "$tmp/slim" "$out/$1"
}
capture renamed -Itests/protos_codegen -I/usr/include tests/protos_codegen/renamed.proto
slim renamed
capture nopkg -Itests/protos_codegen -I/usr/include tests/protos_codegen/nopkg.proto
slim nopkg
# a file the plugin refuses (a C name declared twice)
cat >"$tmp/clash.proto" <<'PROTO'
syntax = "proto3";
package pkg;
message M { string s = 1; }
// a client stub that clashes with protoc-c's function for Get__call
service S {
  rpc Get (M) returns (M);
  rpc Get__call (M) returns (stream M);
}
PROTO
capture clash -I"$tmp" "$tmp/clash.proto"
