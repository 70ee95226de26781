# libFuzzer targets (tests/fuzz/, docs/reliability.md "Fuzzing"), built with
# clang (-fsanitize=fuzzer,address,undefined) into build/fuzz by a make of
# their own: the runtime, the plugin and the test protos are compiled again
# there with coverage instrumentation.
#   make fuzz            build, then run each target for FUZZ_SECONDS [300]
#   make fuzz-ci         each target for FUZZ_CI_SECONDS: 60, less when the
#                        targets would take more than FUZZ_CI_TOTAL [220] s
#   make fuzz-build      build only
#   make fuzz-corpus     regenerate the committed seeds (tests/fuzz/corpus/)
# FUZZ_TARGETS="fuzz_server" picks targets. Findings go to build/fuzz/artifacts/.
FUZZ_BUILD ?= build/fuzz
FUZZ_SECONDS ?= 300
FUZZ_CI_TOTAL ?= 220
FUZZ_TARGETS ?= fuzz_frames fuzz_server fuzz_client fuzz_plugin
# (FUZZ_SECONDS given to make fuzz-ci wins: make fuzz-ci FUZZ_SECONDS=10)
FUZZ_CI_SECONDS ?= $(if $(filter command line environment,$(origin FUZZ_SECONDS)),$(FUZZ_SECONDS),$(shell \
  t=$$(( $(FUZZ_CI_TOTAL) / $(words $(FUZZ_TARGETS)) )); [ $$t -gt 60 ] && t=60; echo $$t))
FUZZ_PKGS := clang libclang-rt-dev
FUZZ_MAKE = $(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang \
  SAN=fuzzer-no-link,address,undefined OPT="-O1 -g"

# ---- inside the fuzz build (BUILD=build/fuzz, CC=clang)
FUZZ_OBJ := $(BUILD)/obj/fuzz
FUZZ_INC := -Itests/fuzz -I$(TEST_DIR)/gen -Iidl -Icodegen
$(FUZZ_OBJ)/%.o: tests/fuzz/%.c $(TEST_GEN_H) $(GEN)/nnrpc/wire.pb-c.h $(GEN)/google/protobuf/compiler/plugin.pb-c.h | $(DEPS_STAMP)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) $(FUZZ_INC) -c $< -o $@
# the plugin without its main(): codegen/plugin.c's request handling
$(BUILD)/fuzz_plugin: $(FUZZ_OBJ)/fuzz_plugin.o $(filter-out %/codegen/main.o,$(PLUGIN_OBJS))
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ -lprotobuf-c
$(BUILD)/fuzz_%: $(FUZZ_OBJ)/fuzz_%.o $(TEST_GEN_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ $(LIBS)
$(BUILD)/gen_corpus: $(FUZZ_OBJ)/gen_corpus.o $(TEST_GEN_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
# the same targets without libFuzzer: replay_fuzz_x [-n ROUNDS] FILE|DIR...
$(BUILD)/replay_fuzz_plugin: $(FUZZ_OBJ)/replay.o $(FUZZ_OBJ)/fuzz_plugin.o \
  $(filter-out %/codegen/main.o,$(PLUGIN_OBJS))
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lprotobuf-c
$(BUILD)/replay_fuzz_%: $(FUZZ_OBJ)/replay.o $(FUZZ_OBJ)/fuzz_%.o $(TEST_GEN_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
fuzz-bins: $(addprefix $(BUILD)/,$(FUZZ_TARGETS)) $(addprefix $(BUILD)/replay_,$(FUZZ_TARGETS))
# the replay programs in every build: tests/test_fuzz_replay.sh runs them on
# the seeds and the regression inputs (make test, make asan)
tests: $(addprefix $(BUILD)/replay_,$(FUZZ_TARGETS))

# ---- from the top
fuzz-build:
	$(Q)tools/ensure-deps $(FUZZ_PKGS)
	$(Q)$(FUZZ_MAKE) fuzz-bins

fuzz: fuzz-build
	$(Q)tools/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-ci: fuzz-build
	$(Q)tools/fuzz.sh $(FUZZ_BUILD) $(FUZZ_CI_SECONDS) $(FUZZ_TARGETS)

fuzz-corpus:
	$(Q)tools/ensure-deps $(FUZZ_PKGS)
	$(Q)$(FUZZ_MAKE) $(FUZZ_BUILD)/gen_corpus
	$(Q)rm -rf tests/fuzz/corpus && mkdir -p tests/fuzz/corpus
	$(Q)ASAN_OPTIONS=detect_leaks=1 $(FUZZ_BUILD)/gen_corpus tests/fuzz/corpus
	$(Q)tests/fuzz/plugin-seeds.sh tests/fuzz/corpus/fuzz_plugin
	$(Q)for d in tests/fuzz/corpus/*; do echo "  $$d: $$(ls $$d | wc -l) files, $$(du -sk $$d | cut -f1) KiB"; done

.PHONY: fuzz fuzz-ci fuzz-build fuzz-bins fuzz-corpus
