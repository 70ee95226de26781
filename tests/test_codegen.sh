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
CODEGEN_PROTOS=(nopkg.proto other/v1/types.proto renamed.proto empty_service.proto streaming.proto)
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
cat >"$T/use_deprecated_stream.c" <<'EOF'
#include "streaming.nnrpc.h"
nnrpc_status use(nnrpc_channel *ch, nnrpc_stream **st);
nnrpc_status use(nnrpc_channel *ch, nnrpc_stream **st) {
  return flow__v2__pipe__old_upload__open(ch, NULL, st);
}
EOF
expect_deprecated_warning() { # expect_deprecated_warning FILE.c DESCRIPTION
  if gcc "${STRICT[@]}" -Iruntime/include -I"$T/out" -c "$T/$1" -o "$T/obj.o" 2>"$T/log"; then
    not_ok "$2 (-Wdeprecated-declarations)"
  elif grep -q "deprecated" "$T/log" && ! grep -q "#error" "$T/log"; then
    ok "$2 (-Wdeprecated-declarations)"
  else
    not_ok "$2"; sed 's/^/#   /' "$T/log"
  fi
}
expect_deprecated_warning use_deprecated.c "calling a deprecated method's stub warns"
expect_deprecated_warning use_deprecated_stream.c "calling a deprecated streaming method's stub warns"

# the streaming API as users write it: typed handlers fit the table, every
# stub takes and gives its message types (compiled only: no runtime needed)
cat >"$T/use_streaming.c" <<'EOF'
#include "streaming.nnrpc.h"

static int upload(nnrpc_ctx *ctx, Flow__V2__Summary *reply) {
  Flow__V2__Chunk *c;
  while (flow__v2__pipe__upload__recv(ctx, &c) == 1) {
    reply->chunks++;
    reply->total += c->data.len;
    flow__v2__chunk__free_unpacked(c, NULL);
  }
  return NNRPC_OK;
}

static int download(nnrpc_ctx *ctx, const Flow__V2__Summary *req) {
  Flow__V2__Chunk c = FLOW__V2__CHUNK__INIT;
  for (uint64_t i = 0; i < req->chunks; i++) {
    c.seq = i;
    int rc = flow__v2__pipe__download__send(ctx, &c);
    if (rc != NNRPC_OK) return rc;
  }
  return NNRPC_OK;
}

static int exchange(nnrpc_ctx *ctx) {
  Flow__V2__Chunk *c;
  while (flow__v2__pipe__exchange__recv(ctx, &c) == 1) {
    Flow__V2__Chunk__Ack ack = FLOW__V2__CHUNK__ACK__INIT;
    ack.seq = c->seq;
    flow__v2__chunk__free_unpacked(c, NULL);
    int rc = flow__v2__pipe__exchange__send(ctx, &ack);
    if (rc != NNRPC_OK) return rc;
  }
  return NNRPC_OK;
}

int serve(nnrpc_server *srv);
int serve(nnrpc_server *srv) {
  Flow__V2__Pipe_Handlers h = {.upload = upload, .download = download, .exchange = exchange};
  return flow__v2__pipe__handlers__register(srv, &h, NULL);
}

nnrpc_status client(nnrpc_channel *ch);
nnrpc_status client(nnrpc_channel *ch) {
  nnrpc_call_opts opts = {.timeout_ms = 1000};
  nnrpc_stream *st;
  Flow__V2__Chunk c = FLOW__V2__CHUNK__INIT;
  Flow__V2__Summary *sum = NULL;
  nnrpc_status s = flow__v2__pipe__upload__open(ch, &opts, &st);
  if (s.code != NNRPC_OK) return s;
  if (flow__v2__pipe__upload__write(st, &c) != NNRPC_OK) nnrpc_stream_cancel(st);
  s = flow__v2__pipe__upload__close_and_finish(st, &sum, NULL);
  if (sum) flow__v2__summary__free_unpacked(sum, NULL);

  Flow__V2__Summary req = FLOW__V2__SUMMARY__INIT;
  s = flow__v2__pipe__download__open(ch, &req, &opts, &st);
  if (s.code != NNRPC_OK) return s;
  Flow__V2__Chunk *got;
  while (flow__v2__pipe__download__read(st, &got) == 1) flow__v2__chunk__free_unpacked(got, NULL);
  s = flow__v2__pipe__download__finish(st, NULL);

  s = flow__v2__pipe__exchange__open(ch, NULL, &st);
  if (s.code != NNRPC_OK) return s;
  (void)flow__v2__pipe__exchange__write(st, &c);
  (void)flow__v2__pipe__exchange__close_send(st);
  Flow__V2__Chunk__Ack *ack;
  while (flow__v2__pipe__exchange__read(st, &ack) == 1) protobuf_c_message_free_unpacked(&ack->base, NULL);
  return flow__v2__pipe__exchange__finish(st, NULL);
}
EOF
compile_use() { # compile_use CC
  "$1" "${STRICT[@]}" -Iruntime/include -I"$T/out" -c "$T/use_streaming.c" -o "$T/obj.o"
}
check "gcc: code using every streaming stub and handler type compiles with ${STRICT[*]}" compile_use gcc
if command -v clang >/dev/null; then
  check "clang: code using every streaming stub and handler type compiles" compile_use clang
else
  skip "clang: code using every streaming stub and handler type compiles" "clang not installed"
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
# every name a streaming method gets, against protoc-c's function for a
# method named after it: KIND:METHOD:SIGNATURE:SUFFIX:WHAT
for x in \
  'client:Up:stream M) returns (M:open:the stream open stub' \
  'client:Up:stream M) returns (M:write:the stream write stub' \
  'client:Up:stream M) returns (M:close_and_finish:the stream close_and_finish stub' \
  'client:Up:stream M) returns (M:recv:the server-side receive function' \
  'client:Up:stream M) returns (M:invoke:the server invoker' \
  'server:Down:M) returns (stream M:open:the stream open stub' \
  'server:Down:M) returns (stream M:read:the stream read stub' \
  'server:Down:M) returns (stream M:finish:the stream finish stub' \
  'server:Down:M) returns (stream M:send:the server-side send function' \
  'bidi:Chat:stream M) returns (stream M:open:the stream open stub' \
  'bidi:Chat:stream M) returns (stream M:write:the stream write stub' \
  'bidi:Chat:stream M) returns (stream M:read:the stream read stub' \
  'bidi:Chat:stream M) returns (stream M:close_send:the stream close_send stub' \
  'bidi:Chat:stream M) returns (stream M:finish:the stream finish stub' \
  'bidi:Chat:stream M) returns (stream M:recv:the server-side receive function' \
  'bidi:Chat:stream M) returns (stream M:send:the server-side send function'; do
  IFS=: read -r kind method sig suffix what <<<"$x"
  lower=$(tr '[:upper:]' '[:lower:]' <<<"$method")
  name="clash_${kind}_$suffix"
  bad_proto "$name" "  rpc $method ($sig);\n  rpc ${method}__$suffix (M) returns (M);"
  expect_error "$name" \
    "$name.proto: the C name pkg__s__${lower}__$suffix would be declared twice: by protoc-c for method pkg.S.${method}__$suffix ($name.proto), and by protoc-gen-nnrpc for $what of method pkg.S.$method" \
    "$kind streaming: our ${lower}__$suffix clashes with protoc-c's function for method ${method}__$suffix"
done
# names a kind does not get are not reserved for it
accept() { # accept NAME: protoc succeeds on $T/bad/NAME.proto, and the C compiles
  rm -rf "$T/bad/out"
  gen "$T/bad/out" -I"$T/bad" "$T/bad/$1.proto" &&
    gcc "${STRICT[@]}" -Iruntime/include -I"$T/bad/out" -c "$T/bad/out/$1.nnrpc.c" -o "$T/obj.o"
}
bad_proto free_unary '  rpc Get (M) returns (M);\n  rpc Get__open (M) returns (M);\n  rpc Get__recv (M) returns (M);'
check "a unary method Get leaves Get__open and Get__recv free" accept free_unary
bad_proto free_client '  rpc Up (stream M) returns (M);\n  rpc Up__call (M) returns (M);\n  rpc Up__start (M) returns (M);\n  rpc Up__read (M) returns (M);\n  rpc Up__finish (M) returns (M);\n  rpc Up__send (M) returns (M);\n  rpc Up__close_send (M) returns (M);'
check "a client-streaming method Up leaves Up__call/start/read/finish/send/close_send free" accept free_client
bad_proto free_server '  rpc Down (M) returns (stream M);\n  rpc Down__write (M) returns (M);\n  rpc Down__recv (M) returns (M);\n  rpc Down__close_send (M) returns (M);\n  rpc Down__close_and_finish (M) returns (M);'
check "a server-streaming method Down leaves Down__write/recv/close_send/close_and_finish free" accept free_server
bad_proto clash_stream_case '  rpc Chat (stream M) returns (stream M);\n  rpc chat (M) returns (M);'
expect_error clash_stream_case "the C name pkg__s__chat__finish would be declared twice: by protoc-gen-nnrpc for the async finish stub of method pkg.S.chat, and by protoc-gen-nnrpc for the stream finish stub of method pkg.S.Chat" \
  "a streaming method Chat and a unary chat (same C name) are refused"
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
