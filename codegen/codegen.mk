# protoc-gen-nnrpc's golden files (tests/golden/) are what tests/test_codegen.sh
# compares the plugin's output with. After an intended change of the output:
#   make regen-golden && git diff tests/golden
.PHONY: regen-golden
regen-golden: $(PLUGIN)
	$(Q)BUILD=$(BUILD) PLUGIN=$(PLUGIN) PROTOC=$(PROTOC) bash tests/test_codegen.sh --regen
