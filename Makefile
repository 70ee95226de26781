# nnrpc — top-level build. Everything goes out of tree into $(BUILD).
#   make            library, plugin, examples, tests
#   make demo       run the helloworld server and client
#   make demo-route run the route_guide server and client (streaming)
#   make test       run the whole test suite (each binary under a timeout)
#   make asan       the suite under AddressSanitizer + UBSan (build/asan)
#   make valgrind   the suite under valgrind memcheck, leaks are errors
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (tests/fuzz/fuzz.mk)
#   make soak       64 callers against a server process for SOAK_SECONDS [60]
#   V=1             show full commands
BUILD ?= build
SAN ?=
CC ?= cc
PROTOC ?= protoc
PROTOC_C ?= protoc-c

Q := $(if $(V),,@)
say = $(if $(V),,@printf '  %-7s %s\n' $(1) $(2);)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CSTD := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
OPT ?= -O2 -g
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all,)
CFLAGS_ALL := $(CSTD) $(OPT) $(WARN) $(SANFLAGS) -fPIC -MMD -MP $(CFLAGS)
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)
LIBS := -lnanomsg -lprotobuf-c -lpthread

GEN := $(BUILD)/gen
INC := -Iruntime/include -Iruntime/src -I$(GEN)

# ---------------------------------------------------------------- deps
DEB_PKGS := libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotoc-dev libnanomsg-dev libcmocka-dev \
  libjson-c-dev pkg-config
DEPS_STAMP := $(BUILD)/.deps-ok
$(DEPS_STAMP):
	$(Q)tools/ensure-deps $(DEB_PKGS)
	$(Q)mkdir -p $(@D) && touch $@

# ---------------------------------------------------------------- generated protobuf code
PB_INC := /usr/include
$(GEN)/google/protobuf/descriptor.pb-c.c $(GEN)/google/protobuf/descriptor.pb-c.h: | $(DEPS_STAMP)
	$(call say,PROTOC-C,descriptor.proto)
	$(Q)mkdir -p $(GEN) && $(PROTOC_C) -I$(PB_INC) --c_out=$(GEN) $(PB_INC)/google/protobuf/descriptor.proto
$(GEN)/google/protobuf/compiler/plugin.pb-c.c $(GEN)/google/protobuf/compiler/plugin.pb-c.h: $(GEN)/google/protobuf/descriptor.pb-c.h
	$(call say,PROTOC-C,plugin.proto)
	$(Q)$(PROTOC_C) -I$(PB_INC) --c_out=$(GEN) $(PB_INC)/google/protobuf/compiler/plugin.proto
# nnrpc's own schemas (idl/nnrpc/*.proto: the frame header, health, ...),
# protoc-c code compiled into libnnrpc.
IDL_PROTOS := $(wildcard idl/nnrpc/*.proto)
IDL_GEN_H := $(IDL_PROTOS:idl/%.proto=$(GEN)/%.pb-c.h)
$(GEN)/nnrpc/%.pb-c.c $(GEN)/nnrpc/%.pb-c.h: idl/nnrpc/%.proto | $(DEPS_STAMP)
	$(call say,PROTOC-C,$<)
	$(Q)mkdir -p $(GEN) && $(PROTOC_C) -Iidl --c_out=$(GEN) $<

# ---------------------------------------------------------------- runtime
RT_SRCS := $(wildcard runtime/src/*.c)
RT_OBJS := $(RT_SRCS:%.c=$(BUILD)/obj/%.o) $(IDL_PROTOS:idl/%.proto=$(BUILD)/obj/gen/%.pb-c.o)
LIB_A := $(BUILD)/lib/libnnrpc.a
VERSION := 0.2.0
SONAME := libnnrpc.so.0
LIB_SO := $(BUILD)/lib/libnnrpc.so.$(VERSION)

$(BUILD)/obj/runtime/%.o: CFLAGS_ALL += -fvisibility=hidden -DNNRPC_BUILDING
$(BUILD)/obj/runtime/%.o: runtime/%.c $(IDL_GEN_H) | $(DEPS_STAMP)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -c $< -o $@
$(BUILD)/obj/gen/%.o: $(GEN)/%.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) -fvisibility=hidden $(INC) -c $< -o $@

$(LIB_A): $(RT_OBJS)
	$(call say,AR,$@)
	$(Q)mkdir -p $(@D) && rm -f $@ && ar rcs $@ $^
$(LIB_SO): $(RT_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D) && $(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
	$(Q)ln -sf libnnrpc.so.$(VERSION) $(BUILD)/lib/$(SONAME) && ln -sf $(SONAME) $(BUILD)/lib/libnnrpc.so

# ---------------------------------------------------------------- plugin
PLUGIN := $(BUILD)/bin/protoc-gen-nnrpc
PLUGIN_SRCS := $(wildcard idl/*.c) $(wildcard codegen/*.c)
PLUGIN_OBJS := $(PLUGIN_SRCS:%.c=$(BUILD)/obj/%.o) \
  $(BUILD)/obj/gen/google/protobuf/descriptor.pb-c.o \
  $(BUILD)/obj/gen/google/protobuf/compiler/plugin.pb-c.o
$(BUILD)/obj/idl/%.o $(BUILD)/obj/codegen/%.o: INC += -Iidl -Icodegen
$(BUILD)/obj/idl/%.o: idl/%.c $(GEN)/google/protobuf/compiler/plugin.pb-c.h
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -c $< -o $@
$(BUILD)/obj/codegen/%.o: codegen/%.c $(GEN)/google/protobuf/compiler/plugin.pb-c.h
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -c $< -o $@
$(PLUGIN): $(PLUGIN_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(LDFLAGS_ALL) -o $@ $^ -lprotobuf-c

# ---------------------------------------------------------------- code generation rule (users copy this)
# X.proto -> X.pb-c.{c,h} (protoc-c) and X.nnrpc.{c,h} (our plugin)
define nnrpc_proto_rule
# One protoc run writes all four files: a grouped target (&:), so make -j
# never runs it twice at once over the same files.
$(2)/$(basename $(notdir $(1))).pb-c.c $(2)/$(basename $(notdir $(1))).nnrpc.c &: $(1) $(PLUGIN)
	$$(call say,PROTOC,$(1))
	$(Q)mkdir -p $(2) && $(PROTOC) -I$(dir $(1)) --c_out=$(2) \
	  --plugin=protoc-gen-nnrpc=$(PLUGIN) --nnrpc_out=$(2) $(1)
$(2)/$(basename $(notdir $(1))).pb-c.h: $(2)/$(basename $(notdir $(1))).pb-c.c
$(2)/$(basename $(notdir $(1))).nnrpc.h: $(2)/$(basename $(notdir $(1))).nnrpc.c
endef

# ---------------------------------------------------------------- examples
HW := $(BUILD)/examples/helloworld
$(eval $(call nnrpc_proto_rule,examples/helloworld/helloworld.proto,$(HW)/gen))
HW_GEN_OBJS := $(HW)/gen/helloworld.pb-c.o $(HW)/gen/helloworld.nnrpc.o
$(HW)/gen/%.o: $(HW)/gen/%.c
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(INC) -I$(HW)/gen -c $< -o $@
$(HW)/%.o: examples/helloworld/%.c $(HW)/gen/helloworld.nnrpc.h $(HW)/gen/helloworld.pb-c.h
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -I$(HW)/gen -c $< -o $@
$(HW)/greeter_server $(HW)/greeter_client: $(HW)/%: $(HW)/%.o $(HW_GEN_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
# examples/async reuses the helloworld service
ASY := $(BUILD)/examples/async
$(ASY)/%.o: examples/async/%.c $(HW)/gen/helloworld.nnrpc.h $(HW)/gen/helloworld.pb-c.h
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -I$(HW)/gen -c $< -o $@
$(ASY)/async_server $(ASY)/async_client: $(ASY)/%: $(ASY)/%.o $(HW_GEN_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
# examples/route_guide: one method of each kind (unary, server, client and
# bidirectional streaming) over a database the example generates itself
RG := $(BUILD)/examples/route_guide
$(eval $(call nnrpc_proto_rule,examples/route_guide/route_guide.proto,$(RG)/gen))
RG_GEN_OBJS := $(RG)/gen/route_guide.pb-c.o $(RG)/gen/route_guide.nnrpc.o
$(RG)/gen/%.o: $(RG)/gen/%.c
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(INC) -I$(RG)/gen -c $< -o $@
$(RG)/%.o: examples/route_guide/%.c $(RG)/gen/route_guide.nnrpc.h $(RG)/gen/route_guide.pb-c.h
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -I$(RG)/gen -c $< -o $@
# -lm: the server's haversine distance
$(RG)/route_guide_server $(RG)/route_guide_client: $(RG)/%: $(RG)/%.o $(RG)/route_guide_db.o $(RG_GEN_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) -lm
EXAMPLES := $(HW)/greeter_server $(HW)/greeter_client $(ASY)/async_server $(ASY)/async_client \
  $(RG)/route_guide_server $(RG)/route_guide_client

# ---------------------------------------------------------------- tests
include tests/tests.mk
include cli/cli.mk
include bench/bench.mk
include codegen/codegen.mk
include tests/fuzz/fuzz.mk

# ---------------------------------------------------------------- top-level targets
.PHONY: all lib plugin examples demo demo-async demo-route test asan valgrind soak clean regen-golden
.DEFAULT_GOAL := all
all: lib plugin cli examples tests
lib: $(LIB_A) $(LIB_SO)
plugin: $(PLUGIN)
examples: $(EXAMPLES)

demo: all
	$(Q)tools/demo.sh $(HW)

demo-async: all
	$(Q)tools/demo-async.sh $(ASY)

# only the two programs: the demo needs neither the suite nor the other examples
demo-route: $(RG)/route_guide_server $(RG)/route_guide_client
	$(Q)tools/demo-route.sh $(RG)

test: all
	$(Q)BUILD=$(BUILD) TEST_WRAPPER="$(TEST_WRAPPER)" tests/run.sh $(TEST_BINS)

asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined OPT="-O1 -g" test

VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --suppressions=$(CURDIR)/tests/valgrind.supp
valgrind: all
	$(Q)command -v valgrind >/dev/null || tools/ensure-deps valgrind
	$(Q)BUILD=$(BUILD) TEST_WRAPPER="$(VALGRIND)" TEST_TIMEOUT_SCALE=20 NNRPC_TEST_SLOW=1 tests/run.sh $(TEST_BINS)

# tests/soak.c: zero unexpected errors and server RSS growth under 5% (exit status)
SOAK_SECONDS ?= 60
soak: $(TEST_DIR)/soak
	$(Q)$(TEST_DIR)/soak $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD)

# ---------------------------------------------------------------- install
# make install [PREFIX=/usr/local] [DESTDIR=staging] [LIBDIR=$(PREFIX)/lib]
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INSTALL_DIRS := $(PREFIX)/include/nnrpc $(LIBDIR)/pkgconfig $(PREFIX)/bin $(PREFIX)/share/nnrpc
install: lib plugin cli
	$(Q)install -d $(addprefix $(DESTDIR),$(INSTALL_DIRS))
	$(Q)install -m 644 runtime/include/nnrpc/nnrpc.h $(DESTDIR)$(PREFIX)/include/nnrpc/
	$(Q)install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	$(Q)install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	$(Q)ln -sf libnnrpc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libnnrpc.so
	$(Q)install -m 755 $(PLUGIN) $(CLI) $(DESTDIR)$(PREFIX)/bin/
	$(Q)install -m 644 tools/nnrpc.mk $(DESTDIR)$(PREFIX)/share/nnrpc/
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	  tools/nnrpc.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/nnrpc.pc
	@echo "installed nnrpc $(VERSION) under $(DESTDIR)$(PREFIX)"
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/nnrpc/nnrpc.h $(DESTDIR)$(LIBDIR)/libnnrpc.a \
	  $(DESTDIR)$(LIBDIR)/libnnrpc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libnnrpc.so \
	  $(DESTDIR)$(PREFIX)/bin/protoc-gen-nnrpc $(DESTDIR)$(PREFIX)/bin/nnrpc $(DESTDIR)$(PREFIX)/share/nnrpc/nnrpc.mk \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/nnrpc.pc
	-rmdir $(DESTDIR)$(PREFIX)/include/nnrpc $(DESTDIR)$(PREFIX)/share/nnrpc 2>/dev/null
.PHONY: install uninstall

-include $(shell find $(BUILD)/obj $(BUILD)/examples $(BUILD)/tests -name '*.d' 2>/dev/null)
.SECONDARY:
