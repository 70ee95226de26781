#!/bin/bash
# Tests of protoc-gen-nnrpc: golden output, generated C compiles (gcc, clang,
# the headers as C++), errors for what it refuses, determinism, a plugin run
# under valgrind, and an end-to-end call through the generated stubs.
# Prints "ok N - what" / "not ok N - what"; exits non-zero on any failure.
#   BUILD=build bash tests/test_codegen.sh            run the checks
#   BUILD=build bash tests/test_codegen.sh --regen    rewrite tests/golden/ (make regen-golden)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLUGIN=${PLUGIN:-$BUILD/bin/protoc-gen-nnrpc}
PROTOC=${PROTOC:-protoc}
PROTO_INCLUDE=${PROTO_INCLUDE:-/usr/include} # where google/protobuf/empty.proto lives
GOLDEN=tests/golden
CODEGEN_PROTOS=(nopkg.proto other/v1/types.proto renamed.proto empty_service.proto)
WARN=(-std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes)
STRICT=("${WARN[@]}" -pedantic)

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

n=0; failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
check() { # check "description" command...
  local what=$1; shift
  if "$@" >"$T/log" 2>&1; then ok "$what"; else not_ok "$what"; sed 's/^/#   /' "$T/log"; fi
}

# protoc with our plugin (and protoc-c) into $1: gen DIR PROTOC_ARGS...
gen() {
  local out=$1; shift
  mkdir -p "$out" && "$PROTOC" --plugin=protoc-gen-nnrpc="$PLUGIN" --c_out="$out" --nnrpc_out="$out" "$@"
}
gen_all() { # everything the golden files cover, into $1
  gen "$1" -Iexamples/helloworld examples/helloworld/helloworld.proto &&
    gen "$1" -Itests/protos_codegen "${CODEGEN_PROTOS[@]/#/tests/protos_codegen/}"
}
nnrpc_files() { (cd "$1" && find . -name '*.nnrpc.[ch]' | sed 's|^\./||' | LC_ALL=C sort); }

if [ ! -x "$PLUGIN" ]; then
  not_ok "plugin $PLUGIN is built (make $PLUGIN)"
  exit 1
fi

if [ "${1:-}" = "--regen" ]; then
  gen_all "$T/out" || exit 1
  rm -rf "$GOLDEN"
  for f in $(nnrpc_files "$T/out"); do
    mkdir -p "$GOLDEN/$(dirname "$f")" && cp "$T/out/$f" "$GOLDEN/$f"
  done
  nnrpc_files "$GOLDEN" | sed "s|^|  wrote $GOLDEN/|"
  exit 0
fi

# ---------------------------------------------------------------- golden output
check "protoc runs the plugin on helloworld.proto and the tests/protos_codegen files" gen_all "$T/out"
if diff <(nnrpc_files "$GOLDEN") <(nnrpc_files "$T/out") >"$T/log"; then
  ok "the plugin writes exactly the golden set of files (none for renamed.proto: no services)"
else
  not_ok "the plugin writes exactly the golden set of files"; sed 's/^/#   /' "$T/log"
fi
for f in $(nnrpc_files "$GOLDEN"); do
  check "$f matches $GOLDEN/$f" diff -u "$GOLDEN/$f" "$T/out/$f"
done

gen_all "$T/again" >/dev/null 2>&1
check "a second run gives the same bytes" diff -r "$T/out" "$T/again"

# ---------------------------------------------------------------- the C compiles
# protoc-c's code for the one well-known type we use
"$PROTOC" -I"$PROTO_INCLUDE" --c_out="$T/out" "$PROTO_INCLUDE/google/protobuf/empty.proto" ||
  not_ok "protoc-c generates google/protobuf/empty.pb-c.c"
compile_all() { # compile_all CC
  local cc=$1 bad=0 f flags
  for f in $(cd "$T/out" && find . -name '*.c' | sed 's|^\./||' | LC_ALL=C sort); do
    flags=("${STRICT[@]}")
    # protoc-c itself emits zero-length arrays for a service without methods
    [ "$f" = empty_service.pb-c.c ] && flags=("${WARN[@]}")
    if ! "$cc" "${flags[@]}" -Iruntime/include -I"$T/out" -c "$T/out/$f" -o "$T/obj.o"; then
      echo "$cc failed on $f"; bad=1
    fi
  done
  return $bad
}
check "gcc: every generated .c compiles with ${STRICT[*]}" compile_all gcc
if command -v clang >/dev/null; then
  check "clang: every generated .c compiles with ${STRICT[*]}" compile_all clang
else
  skip "clang: every generated .c compiles" "clang not installed"
fi
if command -v g++ >/dev/null; then
  for f in $(nnrpc_files "$T/out" | grep '\.h$'); do echo "#include \"$f\""; done >"$T/all.cc"
  check "g++: the generated headers compile as C++" \
    g++ -std=c++11 -Wall -Wextra -Werror -pedantic -fsyntax-only -Iruntime/include -I"$T/out" "$T/all.cc"
else
  skip "g++: the generated headers compile as C++" "g++ not installed"
fi
# the attribute works: calling a deprecated method's stub warns
cat >"$T/use_deprecated.c" <<'EOF'
#include "nopkg.nnrpc.h"
nnrpc_status use(nnrpc_channel *ch, Local **reply);
nnrpc_status use(nnrpc_channel *ch, Local **reply) {
  Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
  return tricky__old_call__call(ch, &req, reply, NULL);
}
EOF
if gcc "${STRICT[@]}" -Iruntime/include -I"$T/out" -c "$T/use_deprecated.c" -o "$T/obj.o" 2>"$T/log"; then
  not_ok "calling a deprecated method's stub warns (-Wdeprecated-declarations)"
elif grep -q "deprecated" "$T/log"; then
  ok "calling a deprecated method's stub warns (-Wdeprecated-declarations)"
else
  not_ok "calling a deprecated method's stub warns"; sed 's/^/#   /' "$T/log"
fi

# ---------------------------------------------------------------- refusals
mkdir -p "$T/bad"
bad_proto() { # bad_proto NAME SERVICE_BODY
  printf 'syntax = "proto3";\npackage pkg;\nmessage M { int32 a = 1; }\nservice S {\n  rpc Fine (M) returns (M);\n%b\n}\n' "$2" >"$T/bad/$1.proto"
}
expect_error() { # expect_error NAME "expected text" DESCRIPTION [PROTOC_ARGS...]
  local name=$1 text=$2 what=$3; shift 3
  rm -rf "$T/bad/out"
  if gen "$T/bad/out" -I"$T/bad" "$@" "$T/bad/$name.proto" >"$T/log" 2>&1; then
    not_ok "$what: protoc should fail"
  elif ! grep -qF -- "$text" "$T/log"; then
    not_ok "$what: the error should say: $text"; sed 's/^/#   /' "$T/log"
  elif [ -n "$(find "$T/bad/out" -name '*.nnrpc.*')" ]; then
    not_ok "$what: nothing should be written"
  else
    ok "$what"
  fi
}
bad_proto stream_client '  rpc Up (stream M) returns (M);'
bad_proto stream_server '  rpc Down (M) returns (stream M);'
bad_proto stream_bidi '  rpc Chat (stream M) returns (stream M);'
for x in client:Up server:Down bidi:Chat; do
  expect_error "stream_${x%%:*}" \
    "stream_${x%%:*}.proto: method pkg.S.${x#*:}: streaming methods are not supported yet by protoc-gen-nnrpc" \
    "${x%%:*} streaming method is refused, naming file and method"
done
bad_proto clash_protoc_c '  rpc Methods (M) returns (M);'
expect_error clash_protoc_c "clash_protoc_c.proto: the C name pkg__s__methods would be declared twice" \
  "a method named Methods clashes with our static method table pkg__s__methods"
bad_proto clash_stub '  rpc Get (M) returns (M);\n  rpc Get__call (M) returns (M);'
expect_error clash_stub "the C name pkg__s__get__call would be declared twice: by protoc-c for method pkg.S.Get__call" \
  "our client stub pkg__s__get__call clashes with protoc-c's function for method Get__call"
bad_proto clash_case '  rpc fine (M) returns (M);'
expect_error clash_case "the C name pkg__s__fine__call would be declared twice: by protoc-gen-nnrpc" \
  "methods Fine and fine (same C name) are refused"
bad_proto keyword '  rpc Int (M) returns (M);'
expect_error keyword 'method pkg.S.Int: its C name "int" is reserved in C' "a method whose C name is a C keyword is refused"
bad_proto param ''
expect_error param 'unknown parameter "verbose"' "an unknown plugin parameter is refused" --nnrpc_opt=verbose

# ---------------------------------------------------------------- the plugin under valgrind
asan_build() { nm -A "$1" 2>/dev/null | grep -q __asan_init; }
if ! command -v valgrind >/dev/null; then
  skip "the plugin runs valgrind-clean (output and error paths)" "valgrind not installed"
elif asan_build "$PLUGIN"; then
  skip "the plugin runs valgrind-clean (output and error paths)" "ASan build: its own checks ran instead"
else
  printf '#!/bin/sh\nexec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=all "%s"\n' \
    "$(realpath "$PLUGIN")" >"$T/vg-plugin"
  chmod +x "$T/vg-plugin"
  vg_run() {
    PLUGIN="$T/vg-plugin" gen "$T/vg" -Itests/protos_codegen "${CODEGEN_PROTOS[@]/#/tests/protos_codegen/}" || return 1
    PLUGIN="$T/vg-plugin" gen "$T/vg" -I"$T/bad" "$T/bad/clash_stub.proto" >"$T/vg.log" 2>&1
    cat "$T/vg.log"
    grep -q "declared twice" "$T/vg.log" && ! grep -q "status code" "$T/vg.log"
  }
  check "the plugin runs valgrind-clean (output and error paths)" vg_run
fi

# ---------------------------------------------------------------- end to end
LIB=$BUILD/lib/libnnrpc.a
if [ ! -f "$LIB" ]; then
  skip "generated stubs and invokers carry calls end to end" "$LIB not built"
else
  san=()
  asan_build "$LIB" && san=(-fsanitize=address,undefined)
  smoke() {
    local srcs=(tests/codegen_smoke.c) f flags
    for f in nopkg other/v1/types empty_service renamed google/protobuf/empty; do
      srcs+=("$T/out/$f.pb-c.c")
      [ -f "$T/out/$f.nnrpc.c" ] && srcs+=("$T/out/$f.nnrpc.c")
    done
    flags=("${WARN[@]}" "${san[@]}") # not -pedantic: empty_service.pb-c.c
    gcc "${flags[@]}" -Iruntime/include -I"$T/out" "${srcs[@]}" "$LIB" -lnanomsg -lprotobuf-c -lpthread \
      -o "$T/smoke" && "$T/smoke"
  }
  check "generated stubs and invokers carry calls end to end (inproc)" smoke
fi

echo
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
