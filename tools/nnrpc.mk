# nnrpc code generation for your Makefile (installed as
# $(PREFIX)/share/nnrpc/nnrpc.mk by `make install`):
#
#   include /usr/local/share/nnrpc/nnrpc.mk
#   server: server.o $(GEN)/greeter.pb-c.o $(GEN)/greeter.nnrpc.o
#   server.o: $(GEN)/greeter.nnrpc.h
#
# x.proto in PROTO_DIR -> x.pb-c.{c,h} (protoc-c) and x.nnrpc.{c,h}
# (protoc-gen-nnrpc, found on PATH) in GEN, one protoc run each. Compiler
# and linker flags come from pkg-config (nnrpc.pc).
PROTO_DIR     ?= proto
GEN           ?= gen
PROTOC        ?= protoc
PROTO_INCLUDE ?= /usr/include
NNRPC_PLUGIN  ?= $(shell command -v protoc-gen-nnrpc)

# A pattern rule with several targets makes them all in one run.
$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h $(GEN)/%.nnrpc.c $(GEN)/%.nnrpc.h: $(PROTO_DIR)/%.proto
	@mkdir -p $(GEN)
	$(PROTOC) -I$(PROTO_DIR) -I$(PROTO_INCLUDE) --c_out=$(GEN) \
	  --plugin=protoc-gen-nnrpc=$(NNRPC_PLUGIN) --nnrpc_out=$(GEN) $<

# Well-known types your files import: protoc-c's code, where the #includes expect it.
$(GEN)/google/protobuf/%.pb-c.c $(GEN)/google/protobuf/%.pb-c.h: $(PROTO_INCLUDE)/google/protobuf/%.proto
	@mkdir -p $(GEN)
	$(PROTOC) -I$(PROTO_INCLUDE) --c_out=$(GEN) $<

CFLAGS += -I$(GEN) $(shell pkg-config --cflags nnrpc)
LDLIBS += $(shell pkg-config --libs nnrpc)
