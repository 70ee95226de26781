# Reflection and the `nnrpc` command line tool (docs/tools.md).
#
# idl/nnrpc/reflection.proto: protoc-c's code comes with every
# idl/nnrpc/*.proto (top Makefile); protoc-gen-nnrpc adds the service's
# description, its stubs (the command uses them) and its embedded
# descriptor, all compiled into libnnrpc.
$(GEN)/nnrpc/reflection.nnrpc.c $(GEN)/nnrpc/reflection.nnrpc.h &: idl/nnrpc/reflection.proto $(PLUGIN) \
  $(GEN)/nnrpc/reflection.pb-c.h
	$(call say,PROTOC,$<)
	$(Q)$(PROTOC) -Iidl --plugin=protoc-gen-nnrpc=$(PLUGIN) --nnrpc_out=$(GEN) $<
$(BUILD)/obj/runtime/src/reflection.o: $(GEN)/nnrpc/reflection.nnrpc.h
$(LIB_A) $(LIB_SO): $(BUILD)/obj/gen/nnrpc/reflection.nnrpc.o

# build/bin/nnrpc: cli/*.c, protoc-c's code for descriptor.proto (the
# schema), json-c (JSON text), libnnrpc (calls, the reflection stubs)
CLI := $(BUILD)/bin/nnrpc
CLI_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cli/*.c))
CLI_LIBS := -ljson-c -lm
$(BUILD)/obj/cli/%.o: cli/%.c $(GEN)/nnrpc/reflection.nnrpc.h $(GEN)/google/protobuf/descriptor.pb-c.h | $(DEPS_STAMP)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -Icli -c $< -o $@
$(CLI): $(CLI_OBJS) $(BUILD)/obj/gen/google/protobuf/descriptor.pb-c.o $(LIB_A)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(LDFLAGS_ALL) -o $@ $^ $(CLI_LIBS) $(LIBS)
cli: $(CLI)
.PHONY: cli

# tests/test_cli_codec.c: the codec against protoc-c's own encoder and
# decoder, on tests/cli/codec_test.proto (every scalar type, maps, oneofs,
# well-known types), whose descriptors come from its generated .nnrpc.c
CLI_TEST_GEN := $(TEST_DIR)/cligen
CLI_TEST_WKT := timestamp duration wrappers struct field_mask any empty
$(eval $(call nnrpc_proto_rule,tests/cli/codec_test.proto,$(CLI_TEST_GEN)))
# Explicit rules, not a pattern over $(PB_INC)/google/protobuf/%.proto: on a
# fresh machine those files only appear when $(DEPS_STAMP) installs the
# packages, after make has already ruled such a pattern out.
define cli_wkt_rule
$(CLI_TEST_GEN)/google/protobuf/$(1).pb-c.c $(CLI_TEST_GEN)/google/protobuf/$(1).pb-c.h &: | $(DEPS_STAMP)
	$$(call say,PROTOC-C,google/protobuf/$(1).proto)
	$(Q)mkdir -p $(CLI_TEST_GEN) && $(PROTOC) -I$(PB_INC) --c_out=$(CLI_TEST_GEN) $(PB_INC)/google/protobuf/$(1).proto
endef
$(foreach w,$(CLI_TEST_WKT),$(eval $(call cli_wkt_rule,$(w))))
CLI_TEST_GEN_C := $(CLI_TEST_GEN)/codec_test.pb-c.c $(CLI_TEST_GEN)/codec_test.nnrpc.c \
  $(CLI_TEST_WKT:%=$(CLI_TEST_GEN)/google/protobuf/%.pb-c.c)
$(CLI_TEST_GEN)/%.o: $(CLI_TEST_GEN)/%.c $(CLI_TEST_GEN_C:.c=.h)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(INC) -I$(CLI_TEST_GEN) -c $< -o $@
$(TEST_DIR)/obj/test_cli_codec.o: INC += -Icli -I$(CLI_TEST_GEN)
$(TEST_DIR)/obj/test_cli_codec.o: $(CLI_TEST_GEN_C:.c=.h) $(GEN)/google/protobuf/descriptor.pb-c.h
$(TEST_DIR)/test_cli_codec: $(TEST_DIR)/obj/test_cli_codec.o $(filter-out %/main.o,$(CLI_OBJS)) \
  $(CLI_TEST_GEN_C:.c=.o) $(BUILD)/obj/gen/google/protobuf/descriptor.pb-c.o $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lcmocka $(CLI_LIBS) $(LIBS)

tests: $(CLI)
$(TEST_DIR)/obj/test_reflection.o: $(GEN)/nnrpc/reflection.nnrpc.h
