#!/bin/bash
# make install into a temporary prefix, then build the helloworld example out of
# tree with nothing but the installed files: pkg-config nnrpc, the installed
# Makefile fragment, protoc-gen-nnrpc found on PATH; run it against the shared
# library. Then uninstall. Prints "ok N - what" / "not ok N - what".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
T=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$T"' EXIT
srv=
n=0; failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; sed 's/^/#   /' "$T/log"; }
check() { local what=$1; shift; if "$@" >"$T/log" 2>&1; then ok "$what"; else not_ok "$what"; fi; }

P=$T/prefix
check "make install PREFIX=<tmp>" make -s --no-print-directory BUILD="$BUILD" install PREFIX="$P"
missing=
for f in include/nnrpc/nnrpc.h lib/libnnrpc.a lib/libnnrpc.so lib/libnnrpc.so.0 lib/pkgconfig/nnrpc.pc \
  bin/protoc-gen-nnrpc bin/nnrpc share/nnrpc/nnrpc.mk; do
  [ -e "$P/$f" ] || missing="$missing $f"
done
echo "missing:$missing" >"$T/log"
if [ -z "$missing" ]; then ok "every file is installed"; else not_ok "every file is installed"; fi
check "the shared library carries its soname" sh -c "objdump -p '$P/lib/libnnrpc.so' | grep -q 'SONAME *libnnrpc.so.0'"
check "only nnrpc_ symbols are exported" sh -c \
  "! nm -D --defined-only '$P/lib/libnnrpc.so' | awk '{print \$3}' | grep -v '^nnrpc_' | grep -v '^_' | grep ."

export PKG_CONFIG_PATH="$P/lib/pkgconfig" PATH="$P/bin:$PATH"
check "pkg-config knows nnrpc and its requirements" sh -c \
  "pkg-config --exists nnrpc && pkg-config --libs nnrpc | grep -q -- -lnnrpc && pkg-config --libs nnrpc | grep -q -- -lnanomsg && pkg-config --libs nnrpc | grep -q -- -lprotobuf-c"

A=$T/app
mkdir -p "$A/proto"
cp examples/helloworld/helloworld.proto "$A/proto/"
cp examples/helloworld/greeter_server.c examples/helloworld/greeter_client.c "$A/"
cat >"$A/Makefile" <<MK
include $P/share/nnrpc/nnrpc.mk
CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror
all: greeter_server greeter_client
greeter_server: greeter_server.o gen/helloworld.pb-c.o gen/helloworld.nnrpc.o
greeter_client: greeter_client.o gen/helloworld.pb-c.o gen/helloworld.nnrpc.o
greeter_server.o greeter_client.o: gen/helloworld.nnrpc.h gen/helloworld.pb-c.h
MK
check "an out-of-tree project builds with pkg-config and the installed rules" make -s -C "$A"

# Under make asan the installed library is instrumented and the example is
# not: its sanitizer runtime must be loaded first.
asan=$(ldd "$P/lib/libnnrpc.so" | awk '/libasan/ {print $3}')
[ -n "$asan" ] && export LD_PRELOAD="$asan" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"

port=$((20000 + RANDOM % 20000))
LD_LIBRARY_PATH="$P/lib" "$A/greeter_server" "tcp://127.0.0.1:$port" >"$T/srv.log" 2>&1 &
srv=$!
sleep 0.3
check "it runs against the installed shared library" sh -c \
  "LD_LIBRARY_PATH='$P/lib' timeout 10 '$A/greeter_client' 'tcp://127.0.0.1:$port' installed | grep -q 'Hello, installed!'"
check "the installed nnrpc command lists its services (reflection)" sh -c \
  "timeout 10 '$P/bin/nnrpc' list 'tcp://127.0.0.1:$port' | grep -qx helloworld.Greeter"
check "the binary resolved libnnrpc from the prefix" sh -c "LD_LIBRARY_PATH='$P/lib' ldd '$A/greeter_client' | grep -q '$P/lib/libnnrpc.so.0'"
kill -TERM "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; srv=

check "make uninstall removes it all" sh -c \
  "make -s --no-print-directory BUILD='$BUILD' uninstall PREFIX='$P' && ! find '$P' -type f -o -type l | grep ."

echo
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
