# Tests: every tests/test_*.c is one cmocka binary; every tests/protos/*.proto
# is compiled with protoc-c and protoc-gen-nnrpc and linked into all of them.
TEST_DIR := $(BUILD)/tests
TEST_PROTOS := $(wildcard tests/protos/*.proto)
$(foreach p,$(TEST_PROTOS),$(eval $(call nnrpc_proto_rule,$(p),$(TEST_DIR)/gen)))
TEST_GEN_C := $(foreach p,$(TEST_PROTOS),$(TEST_DIR)/gen/$(basename $(notdir $(p))).pb-c.c $(TEST_DIR)/gen/$(basename $(notdir $(p))).nnrpc.c)
TEST_GEN_H := $(TEST_GEN_C:.c=.h)
TEST_GEN_OBJS := $(TEST_GEN_C:.c=.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(TEST_DIR)/%) $(wildcard tests/test_*.sh)
TEST_HELPERS := $(patsubst tests/%.c,$(TEST_DIR)/obj/%.o,$(wildcard tests/helpers/*.c))

$(TEST_DIR)/gen/%.o: $(TEST_DIR)/gen/%.c $(TEST_GEN_H)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(INC) -I$(TEST_DIR)/gen -c $< -o $@
$(TEST_DIR)/obj/%.o: tests/%.c $(TEST_GEN_H) | $(DEPS_STAMP)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -Itests -I$(TEST_DIR)/gen -c $< -o $@
$(TEST_DIR)/test_%: $(TEST_DIR)/obj/test_%.o $(TEST_HELPERS) $(TEST_GEN_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lcmocka $(LIBS)

# the soak program (make soak): not test_*, so make test does not run it
$(TEST_DIR)/soak: $(TEST_DIR)/obj/soak.o $(TEST_HELPERS) $(TEST_GEN_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lcmocka $(LIBS)

tests: $(filter-out %.sh,$(TEST_BINS)) $(TEST_DIR)/soak $(PLUGIN)
.PHONY: tests
