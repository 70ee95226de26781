#!/bin/bash
# Tests of protoc-gen-nnrpc: golden output; protoc-c's names for every method;
# the generated C compiles (gcc, clang, the headers as C++); what the header
# must state; determinism and .proto order; errors (file:line) for what it
# refuses; tricky constructs it accepts; its parameters; a plugin run under
# valgrind; and an end-to-end program built with the Makefile rule of
# docs/codegen.md that calls every kind of method through the generated code.
# Prints "ok N - what" / "not ok N - what"; exits non-zero on any failure.
#   BUILD=build bash tests/test_codegen.sh            run the checks
#   BUILD=build bash tests/test_codegen.sh --regen    rewrite tests/golden/ (make regen-golden)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLUGIN=${PLUGIN:-$BUILD/bin/protoc-gen-nnrpc}
PROTOC=${PROTOC:-protoc}
PROTO_INCLUDE=${PROTO_INCLUDE:-/usr/include} # where google/protobuf/*.proto live
GOLDEN=tests/golden
CORPUS=tests/protos_codegen
# the corpus (see each file's first comment); all but renamed.proto have services
CODEGEN_PROTOS=(nopkg.proto other/v1/types.proto renamed.proto empty_service.proto streaming.proto naming.proto
  wkt.proto acme/multi_file/service.proto acme/multi_file/client.proto acme/multi_file/sub/service.proto)
# the well-known types the corpus uses: protoc-c's code for them is compiled too
WKT=(any duration empty field_mask struct timestamp wrappers)
WKT_PROTOS=("${WKT[@]/%/.proto}")
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

# protoc with our plugin (and protoc-c) into $1: gen DIR PROTOC_ARGS... (the
# well-known types and protobuf-c.proto come from $PROTO_INCLUDE, searched last)
gen() {
  local out=$1; shift
  mkdir -p "$out" && "$PROTOC" --plugin=protoc-gen-nnrpc="$PLUGIN" --c_out="$out" --nnrpc_out="$out" "$@" \
    -I"$PROTO_INCLUDE"
}
gen_all() { # everything the golden files cover, into $1 [in reverse order with "reverse"]
  local protos=("${CODEGEN_PROTOS[@]}") i
  if [ "${2:-}" = reverse ]; then
    protos=()
    for ((i = ${#CODEGEN_PROTOS[@]} - 1; i >= 0; i--)); do protos+=("${CODEGEN_PROTOS[i]}"); done
  fi
  gen "$1" -Iexamples/helloworld examples/helloworld/helloworld.proto &&
    gen "$1" -I"$CORPUS" "${protos[@]/#/$CORPUS/}"
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
gen_all "$T/reversed" reverse >/dev/null 2>&1
check "the files given in reverse order give the same bytes" diff -r "$T/out" "$T/reversed"

# declarations follow the .proto: services, then methods, in the order written
in_proto_order() {
  local f bad=0 want got
  for f in "${CODEGEN_PROTOS[@]}"; do
    [ -f "$T/out/${f%.proto}.nnrpc.h" ] || continue
    want=$(sed -n 's/^service \([A-Za-z0-9_]*\).*/\1/p; s/^ *rpc \([A-Za-z0-9_]*\).*/  \1/p' "$CORPUS/$f")
    got=$(sed -n 's|^/\* ---- service \(.*\.\)\{0,1\}\([A-Za-z0-9_]*\) ---- \*/$|\2|p
                  s|^/\* ---- \([A-Za-z0-9_]*\), client side.*|  \1|p' "$T/out/${f%.proto}.nnrpc.h")
    if [ "$want" != "$got" ]; then
      echo "$f: services and methods of the header, in order:"; echo "$got"; echo "the .proto's:"; echo "$want"; bad=1
    fi
  done
  return $bad
}
check "each header declares services and methods in the .proto's order" in_proto_order

# ---------------------------------------------------------------- protoc-c's names
# protoc-c's code for the imported well-known types
wkt_gen() { "$PROTOC" -I"$PROTO_INCLUDE" --c_out="$T/out" "${WKT_PROTOS[@]/#/$PROTO_INCLUDE/google/protobuf/}"; }
check "protoc-c generates the well-known types the corpus uses" wkt_gen

# Our handler member for a method is protoc-c's member for it in T_Service,
# and our function prefix is protoc-c's (P__init): the names are protoc-c's,
# whatever the case style (naming.proto has them all).
members() { # members FILE STRUCT LINE_PREFIX: the members of struct STRUCT, one a line
  awk -v s="$2" -v p="$3" '
    $0 ~ "^(typedef )?struct " s "( \\{)?$" { on = 1; next }
    on && /^\}/ { exit }
    on && index($0, p) == 1 { m = substr($0, length(p) + 1); sub(/\).*/, "", m); print m }' "$1"
}
names_match_protoc_c() {
  local h types t p bad=0 ours theirs n=0
  for h in $(nnrpc_files "$T/out" | grep '\.h$'); do
    types=$(sed -n 's/^typedef struct \([A-Za-z0-9_]*\)_Handlers {$/\1/p' "$T/out/$h")
    for t in $types; do
      n=$((n + 1))
      ours=$(members "$T/out/$h" "${t}_Handlers" "  int (*")
      theirs=$(members "$T/out/${h%.nnrpc.h}.pb-c.h" "${t}_Service" "  void (*")
      if [ "$ours" != "$theirs" ]; then
        echo "$h: members of ${t}_Handlers:"; echo "$ours"; echo "protoc-c's ${t}_Service:"; echo "$theirs"; bad=1
      fi
      p=$(sed -n "s/^void \\([a-z0-9_]*\\)__init (${t}_Service \\*service,\$/\\1/p" "$T/out/${h%.nnrpc.h}.pb-c.h")
      if [ -z "$p" ] || ! grep -q "^int ${p}__handlers__register(" "$T/out/$h"; then
        echo "$h: no ${p:-?}__handlers__register for protoc-c's ${t}_Service"; bad=1
      fi
    done
  done
  [ $n -ge 12 ] || { echo "only $n services seen"; bad=1; }
  return $bad
}
check "every handler member and function prefix is protoc-c's name for its method and service" names_match_protoc_c

# ---------------------------------------------------------------- what a header states
header_facts() {
  local h base guard bad=0
  for h in $(nnrpc_files "$T/out" | grep '\.h$'); do
    base=${h%.nnrpc.h}
    guard=NNRPC_GENERATED_$(tr 'a-z/.-' 'A-Z___' <<<"$base")_NNRPC_H
    grep -qx "/\\* Generated from: $base.proto \\*/" "$T/out/$h" || { echo "$h: does not state $base.proto"; bad=1; }
    [ "$(sed -n '4,5p' "$T/out/$h")" = "$(printf '#ifndef %s\n#define %s' "$guard" "$guard")" ] &&
      [ "$(tail -n 1 "$T/out/$h")" = "#endif /* $guard */" ] || { echo "$h: not guarded by $guard"; bad=1; }
    grep -q '^PROTOBUF_C__BEGIN_DECLS$' "$T/out/$h" && grep -q '^PROTOBUF_C__END_DECLS$' "$T/out/$h" ||
      { echo "$h: no extern \"C\" block"; bad=1; }
    grep -q "^#include \"$base.pb-c.h\"$" "$T/out/$h" || { echo "$h: does not include $base.pb-c.h"; bad=1; }
  done
  return $bad
}
check "each header states its .proto, is include-guarded (by its path) and wrapped for C++" header_facts
twice() {
  for f in $(nnrpc_files "$T/out" | grep '\.h$'); do printf '#include "%s"\n#include "%s"\n' "$f" "$f"; done >"$T/twice.c"
  echo 'int main(void) { return 0; }' >>"$T/twice.c"
  gcc "${STRICT[@]}" -Iruntime/include -I"$T/out" -c "$T/twice.c" -o "$T/twice.o"
}
check "all the headers together, each included twice, compile" twice
long_lines() {
  local f
  for f in $(nnrpc_files "$T/out"); do
    awk -v f="$f" 'length($0) > 100 && !/NNRPC_DEPRECATED;$/ && !/^ *(\/\*|\*)/ { print f ": " $0; bad = 1 } END { exit bad }' \
      "$T/out/$f" || return 1
  done
}
check "generated code lines fit in 100 columns (wrapped after commas)" long_lines

# ---------------------------------------------------------------- the C compiles
compile_all() { # compile_all CC: every generated .c, protoc-c's included, one compiler run per flag set
  local cc=$1 files=() f top=$PWD
  for f in $(cd "$T/out" && find . -name '*.c' | sed 's|^\./||' | LC_ALL=C sort); do
    # protoc-c itself emits zero-length arrays for a service without methods
    [ "$f" = empty_service.pb-c.c ] || files+=("$T/out/$f")
  done
  mkdir -p "$T/obj-$cc" && cd "$T/obj-$cc" &&
    "$cc" "${STRICT[@]}" -I"$top/runtime/include" -I"$T/out" -c "${files[@]}" &&
    "$cc" "${WARN[@]}" -I"$top/runtime/include" -I"$T/out" -c "$T/out/empty_service.pb-c.c"
}
# gcc and clang at once (their logs are checked after)
compile_all gcc >"$T/gcc.log" 2>&1 &
gcc_pid=$!
has_clang=false
if command -v clang >/dev/null; then
  has_clang=true
  compile_all clang >"$T/clang.log" 2>&1 &
  clang_pid=$!
fi
# C++: the headers inside extern "C" (g++ if there, else clang++)
CXX=$(command -v g++ || command -v clang++ || true)
if [ -n "$CXX" ]; then
  for f in $(nnrpc_files "$T/out" | grep '\.h$'); do echo "#include \"$f\""; done >"$T/all.cc"
  USED=(tricky__get_value__call flow__v2__pipe__upload__open my_co__clock_v1__clock__nnrpc_service
    acme__multi_file__v1__stream__call__recv)
  printf 'void *used[] = {%s};\n' "$(printf '(void *)&%s, ' "${USED[@]}")" >>"$T/all.cc"
  cxx_link_names() { # the stubs are referred to by their C names, not C++-mangled ones
    "$CXX" -std=c++11 -Wall -Wextra -Werror -pedantic -Iruntime/include -I"$T/out" -c "$T/all.cc" -o "$T/all.o" || return 1
    for s in "${USED[@]}"; do
      nm -u "$T/all.o" | grep -qx " *U $s" || { echo "$s: not referred to by its C name"; nm -u "$T/all.o"; return 1; }
    done
  }
  check "$(basename "$CXX"): the headers compile as C++ and declare C names (extern \"C\")" cxx_link_names
else
  skip "C++: the headers compile as C++" "neither g++ nor clang++ installed"
fi
wait_log() { wait "$1"; local rc=$?; cat "$2"; return $rc; }
check "gcc: every generated .c compiles with ${STRICT[*]}" wait_log $gcc_pid "$T/gcc.log"
if $has_clang; then
  check "clang: every generated .c compiles with ${STRICT[*]}" wait_log $clang_pid "$T/clang.log"
else
  skip "clang: every generated .c compiles" "clang not installed"
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
# Each refusal is a protoc-style "file:line:col: message" naming the
# construct (protoc prefixes it with "--nnrpc_out: "), and nothing is written.
mkdir -p "$T/bad"
bad_proto() { # bad_proto NAME SERVICE_BODY: the service's first line is 5, the body's 6
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
    "--nnrpc_out: $name.proto:7:3: the C name pkg__s__${lower}__$suffix would be declared twice: by protoc-c for method pkg.S.${method}__$suffix ($name.proto), and by protoc-gen-nnrpc for $what of method pkg.S.$method" \
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
expect_error clash_stream_case "clash_stream_case.proto:7:3: the C name pkg__s__chat__finish would be declared twice: by protoc-gen-nnrpc for the async finish stub of method pkg.S.chat, and by protoc-gen-nnrpc for the stream finish stub of method pkg.S.Chat" \
  "a streaming method Chat and a unary chat (same C name) are refused"
bad_proto clash_protoc_c '  rpc Methods (M) returns (M);'
expect_error clash_protoc_c "clash_protoc_c.proto:6:3: the C name pkg__s__methods would be declared twice: by protoc-c for method pkg.S.Methods (clash_protoc_c.proto), and by protoc-gen-nnrpc for the method table of service pkg.S; rename one of them" \
  "a method named Methods clashes with our static method table pkg__s__methods"
bad_proto clash_stub '  rpc Get (M) returns (M);\n  rpc Get__call (M) returns (M);'
expect_error clash_stub "clash_stub.proto:7:3: the C name pkg__s__get__call would be declared twice: by protoc-c for method pkg.S.Get__call" \
  "our client stub pkg__s__get__call clashes with protoc-c's function for method Get__call"
bad_proto clash_case '  rpc fine (M) returns (M);'
expect_error clash_case "clash_case.proto:6:3: the C name pkg__s__fine__call would be declared twice: by protoc-gen-nnrpc" \
  "methods Fine and fine (same C name) are refused"
# names C reserves: keywords (C11, C23, GNU), lowercase macros of the headers
# the code includes, and everything protoc-c turns into a name beginning with "__"
for x in 'Int:int:is a C keyword' 'Register:register:is a C keyword' 'Typeof:typeof:is a C keyword' \
  'Constexpr:constexpr:is a C keyword' 'StaticAssert:static_assert:is a standard C macro' \
  'Linux:linux:is a standard C macro' '_Linux:__linux:begins with two underscores' \
  '_Int128:__int128:begins with two underscores'; do
  IFS=: read -r method lower why <<<"$x"
  bad_proto "reserved_$lower" "  rpc $method (M) returns (M);"
  expect_error "reserved_$lower" \
    "reserved_$lower.proto:6:3: method pkg.S.$method: its C name \"$lower\" (protoc-c's, and the member of Pkg__S_Handlers) $why" \
    "a method $method (C name $lower) is refused: it $why"
done

# a type protoc-c writes no code for: reported where the type is written
cat >"$T/bad/nogen_types.proto" <<'EOF'
syntax = "proto3";
package nogen;
import "protobuf-c/protobuf-c.proto";
option (pb_c_file).no_generate = true;
message T { int32 a = 1; }
EOF
printf 'syntax = "proto3";\npackage uses;\nimport "nogen_types.proto";\nmessage M { int32 a = 1; }\nservice S {\n  rpc Get (M) returns (M);\n  rpc Odd (M)\n      returns (nogen.T);\n}\n' >"$T/bad/nogen.proto"
expect_error nogen "nogen.proto:8:16: method uses.S.Odd: type nogen.T comes from nogen_types.proto, for which protoc-c generates no code" \
  "a reply type from a (pb_c_file).no_generate file is refused at the type"

# files generated in one run are linked together: no name twice across them
printf 'syntax = "proto3";\npackage x.y;\nmessage M { int32 a = 1; }\nservice Z {\n  rpc Get (M) returns (M);\n}\n' >"$T/bad/across_a.proto"
printf 'syntax = "proto3";\npackage x;\nimport "across_a.proto";\nservice Y__z {\n  rpc Put (x.y.M) returns (x.y.M);\n}\n' >"$T/bad/across.proto"
expect_error across "across.proto:4:1: the C name x__y__z__handlers__register would be declared twice: by protoc-gen-nnrpc for the register function of service x.Y__z, and by protoc-gen-nnrpc for the register function of service x.y.Z (across_a.proto)" \
  "a clash between the files of one run (x.y.Z and x.Y__z) is refused" "$T/bad/across_a.proto"

# comments protoc passes on as they are: bidirectional controls (gcc's
# -Wbidi-chars) and bytes that are not UTF-8 become U+FFFD (one per byte)
printf 'syntax = "proto3";\npackage pkg;\nmessage M { int32 a = 1; }\n// evil \xe2\x80\xae override \xe2\x81\xa6 isolate\nservice S {\n  // bad \xff\xfe bytes, cut \xe2\x82\n  rpc Get (M) returns (M);\n}\n' >"$T/bad/bidi.proto"
bidi_clean() {
  accept bidi 2>&1 | grep -v 'invalid UTF-8' # protoc's own complaint about the request
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  clang "${STRICT[@]}" -Iruntime/include -I"$T/bad/out" -fsyntax-only "$T/bad/out/bidi.nnrpc.c" 2>/dev/null ||
    ! command -v clang >/dev/null || return 1
  grep -q "evil $(printf '\xef\xbf\xbd') override $(printf '\xef\xbf\xbd') isolate" "$T/bad/out/bidi.nnrpc.h" &&
    grep -q "bad $(printf '\xef\xbf\xbd\xef\xbf\xbd') bytes, cut $(printf '\xef\xbf\xbd\xef\xbf\xbd') \*/" "$T/bad/out/bidi.nnrpc.h" &&
    iconv -f UTF-8 -t UTF-8 "$T/bad/out/bidi.nnrpc.h" >/dev/null
}
check "comments with bidirectional controls or bytes that are not UTF-8 give clean UTF-8 that compiles" bidi_clean

# ---------------------------------------------------------------- accepted
# constructs protoc and protoc-c accept that the corpus leaves out: each must
# give C that compiles (ours and protoc-c's)
accept_all() { # accept_all NAME: like accept, protoc-c's .c included
  accept "$1" && gcc "${STRICT[@]}" -I"$T/bad/out" -c "$T/bad/out/$1.pb-c.c" -o "$T/obj.o"
}
bad_proto ok_cxx_keywords '  rpc Delete (M) returns (M);\n  rpc New (stream M) returns (M);\n  rpc Class (M) returns (stream M);\n  rpc Template (stream M) returns (stream M);'
check "methods named after C++ keywords (Delete, New, Class, Template) are fine in C" accept_all ok_cxx_keywords
printf 'syntax = "proto3";\npackage map_entry;\nmessage M { map<string, int32> counts = 1; }\nservice S {\n  rpc Get (M.CountsEntry) returns (M.CountsEntry);\n}\n' >"$T/bad/ok_map_entry.proto"
check "a map entry type as request and reply" accept_all ok_map_entry
for opt in 'option optimize_for = CODE_SIZE;' 'option optimize_for = LITE_RUNTIME;' \
  'import "protobuf-c/protobuf-c.proto"; option (pb_c_file).c_package = "";' \
  'import "protobuf-c/protobuf-c.proto"; option (pb_c_file).gen_pack_helpers = false;' \
  'import "protobuf-c/protobuf-c.proto"; option (pb_c_file).gen_init_helpers = false;'; do
  printf 'syntax = "proto2";\npackage opts.v1;\n%s\nmessage M { message N { optional int32 a = 1; } }\nservice S {\n  rpc A (M) returns (M.N);\n  rpc B (stream M.N) returns (stream M);\n}\n' "$opt" >"$T/bad/ok_opts.proto"
  check "file option: $opt" accept_all ok_opts
done
mkdir -p "$T/bad/my-dir/v1.2"
printf 'syntax = "proto3";\npackage v1_2;\nmessage M {}\nservice S {\n  rpc A (M) returns (M);\n}\n' >"$T/bad/my-dir/v1.2/x-y.proto"
ok_path() {
  accept my-dir/v1.2/x-y &&
    grep -q '^#ifndef NNRPC_GENERATED_MY_DIR_V1_2_X_Y_NNRPC_H$' "$T/bad/out/my-dir/v1.2/x-y.nnrpc.h"
}
check "a path with '-' and '.' in its directories (my-dir/v1.2/x-y.proto)" ok_path

# ---------------------------------------------------------------- parameters
bad_proto param ''
ok_suffix() {
  rm -rf "$T/bad/out"
  gen "$T/bad/out" -I"$T/bad" --nnrpc_opt=suffix=_rpc "$T/bad/param.proto" &&
    [ "$(cd "$T/bad/out" && ls)" = "$(printf 'param.pb-c.c\nparam.pb-c.h\nparam_rpc.c\nparam_rpc.h')" ] &&
    grep -q '^#ifndef NNRPC_GENERATED_PARAM_RPC_H$' "$T/bad/out/param_rpc.h" &&
    grep -q '^#include "param_rpc.h"$' "$T/bad/out/param_rpc.c" &&
    gcc "${STRICT[@]}" -Iruntime/include -I"$T/bad/out" -c "$T/bad/out/param_rpc.c" -o "$T/obj.o"
}
check "--nnrpc_opt=suffix=_rpc names the output param_rpc.h / param_rpc.c (guard and #include follow)" ok_suffix
ok_suffix_out() { # protoc's other way to pass parameters, and an empty item
  rm -rf "$T/bad/out" && mkdir -p "$T/bad/out" &&
    "$PROTOC" --plugin=protoc-gen-nnrpc="$PLUGIN" -I"$T/bad" --nnrpc_out=suffix=.rpc,:"$T/bad/out" "$T/bad/param.proto" &&
    [ -f "$T/bad/out/param.rpc.h" ] && [ -f "$T/bad/out/param.rpc.c" ]
}
check "--nnrpc_out=suffix=.rpc,:DIR works too" ok_suffix_out
E="--nnrpc_out: protoc-gen-nnrpc:" # how protoc shows our parameter errors
expect_error param "$E unknown parameter \"verbose\"; the plugin takes suffix=SUFFIX" "an unknown parameter is refused, naming the known ones" --nnrpc_opt=verbose
expect_error param "$E unknown parameter \"Suffix=.x\"" "parameter names are case-sensitive" --nnrpc_opt=Suffix=.x
expect_error param "$E parameter suffix needs a value, as in suffix=.rpc" "suffix without a value is refused" --nnrpc_opt=suffix
expect_error param "$E parameter suffix needs a value" "suffix= (empty) is refused" --nnrpc_opt=suffix=
expect_error param "$E suffix=/x: a suffix is made of letters, digits, '.', '_' and '-'" "a suffix with a '/' is refused" --nnrpc_opt=suffix=/x
expect_error param "$E suffix=.pb-c would overwrite protoc-c's output" "suffix=.pb-c is refused" --nnrpc_opt=suffix=.pb-c
expect_error param "$E parameter suffix is given twice" "a parameter given twice is refused" --nnrpc_opt=suffix=.a --nnrpc_opt=suffix=.b

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
# tests/codegen_smoke.c calls every service of the corpus that takes types
# from another package, from the well-known types or from proto2 files, for
# all four kinds of method, over inproc://. It is built the way the docs tell
# users to: with the Makefile block of docs/codegen.md (generation, the
# well-known types, compiling), plus the program's own lines; it links the
# code of every corpus file together, so no C name may appear twice.
LIB=$BUILD/lib/libnnrpc.a
docs_makefile() { # the block docs/codegen.md marks as the one this test runs
  awk '/<!-- tests\/test_codegen.sh builds its end-to-end test with this block/ { on = 1; next }
       on && /^```make$/ { body = 1; next }
       body && /^```$/ { exit }
       body { print }' docs/codegen.md
}
if [ ! -f "$LIB" ]; then
  skip "the docs' Makefile rule builds the end-to-end program, which calls every kind of method" "$LIB not built"
else
  e2e() {
    local top=$PWD objs="" f flags=("${WARN[@]}" -O0) san=() build plugin
    build=$(cd "$BUILD" && pwd) && plugin=$(cd "$(dirname "$PLUGIN")" && pwd)/$(basename "$PLUGIN") || return 1
    asan_build "$LIB" && san=(-fsanitize=address,undefined)
    mkdir -p "$T/proj" && docs_makefile >"$T/proj/Makefile" || return 1
    [ -s "$T/proj/Makefile" ] || { echo "no Makefile block in docs/codegen.md"; return 1; }
    for f in "${CODEGEN_PROTOS[@]}"; do
      objs+=" \$(GEN)/${f%.proto}.pb-c.o"
      [ -f "$GOLDEN/${f%.proto}.nnrpc.c" ] && objs+=" \$(GEN)/${f%.proto}.nnrpc.o"
    done
    for f in "${WKT[@]}"; do objs+=" \$(GEN)/google/protobuf/$f.pb-c.o"; done
    cat >>"$T/proj/Makefile" <<EOF

# ---- the test's program (as in the docs' example, with every corpus file)
GEN_OBJS :=$objs
smoke: smoke.o \$(GEN_OBJS)
smoke.o: $top/tests/codegen_smoke.c \$(GEN_OBJS:.o=.h)
	\$(CC) \$(CFLAGS) -c -o \$@ \$<
\$(GEN_OBJS): \$(GEN_OBJS:.o=.h)
EOF
    # not -pedantic: protoc-c's empty_service.pb-c.c (the compile checks above are)
    (cd "$T/proj" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL CFLAGS="${flags[*]} ${san[*]}" LDFLAGS="${san[*]}" \
      make -s -j2 smoke PROTO_DIR="$top/$CORPUS" GEN=gen PROTOC="$PROTOC" PROTO_INCLUDE="$PROTO_INCLUDE" \
      NNRPC="$top" NNRPC_BUILD="$build" NNRPC_PLUGIN="$plugin" &&
      ./smoke) || return 1
    # what the docs' rule generated is what the golden files hold
    for f in $(nnrpc_files "$T/proj/gen"); do diff -q "$T/out/$f" "$T/proj/gen/$f" || return 1; done
  }
  check "the docs' Makefile rule builds the end-to-end program, which calls every kind of method" e2e
fi

echo
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
