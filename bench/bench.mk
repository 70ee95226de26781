# Benchmarks: $(BUILD)/bench/{nnrpc-bench-server,nnrpc-bench-client,nn-floor-server,nn-floor-client,...}
BENCH_DIR := $(BUILD)/bench
$(eval $(call nnrpc_proto_rule,bench/echo.proto,$(BENCH_DIR)/gen))
BENCH_COMMON := $(BENCH_DIR)/common.o
$(BENCH_DIR)/gen/%.o: $(BENCH_DIR)/gen/%.c $(BENCH_DIR)/gen/echo.pb-c.h $(BENCH_DIR)/gen/echo.nnrpc.h
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(INC) -I$(BENCH_DIR)/gen -c $< -o $@
$(BENCH_DIR)/%.o: bench/%.c $(BENCH_DIR)/gen/echo.pb-c.h $(BENCH_DIR)/gen/echo.nnrpc.h
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) $(INC) -I$(BENCH_DIR)/gen -c $< -o $@
$(BENCH_DIR)/nnrpc-bench-server: $(BENCH_DIR)/nnrpc_bench_server.o $(BENCH_COMMON) $(BENCH_DIR)/gen/echo.pb-c.o $(BENCH_DIR)/gen/echo.nnrpc.o $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
$(BENCH_DIR)/nnrpc-bench-client: $(BENCH_DIR)/nnrpc_bench_client.o $(BENCH_COMMON) $(BENCH_DIR)/gen/echo.pb-c.o $(BENCH_DIR)/gen/echo.nnrpc.o $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
$(BENCH_DIR)/nn-floor-server: $(BENCH_DIR)/nn_floor_server.o $(BENCH_COMMON)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lnanomsg -lpthread
$(BENCH_DIR)/nn-floor-client: $(BENCH_DIR)/nn_floor_client.o $(BENCH_COMMON)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lnanomsg -lpthread
$(BENCH_DIR)/stream-client: $(BENCH_DIR)/stream_client.o $(BENCH_COMMON) $(BENCH_DIR)/gen/echo.pb-c.o $(BENCH_DIR)/gen/echo.nnrpc.o $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
$(BENCH_DIR)/nn-push: $(BENCH_DIR)/nn_push.o $(BENCH_COMMON)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lnanomsg -lpthread
# The allocation counter for LD_PRELOAD (bench/alloc_count.c): a shared object
# of its own, linked to nothing of ours
$(BENCH_DIR)/alloc_count.so: bench/alloc_count.c | $(DEPS_STAMP)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CSTD) -O2 -g $(WARN) -fPIC -shared -o $@ $< -ldl
BENCH_BINS := $(addprefix $(BENCH_DIR)/,nnrpc-bench-server nnrpc-bench-client nn-floor-server nn-floor-client \
  stream-client nn-push alloc_count.so)
bench-bins: $(BENCH_BINS)
.PHONY: bench-bins bench quickbench streambench
# The full run (not part of make test, about 5 minutes): payloads x concurrency
# against the floor, streaming, peak RSS and allocations per call; writes
# docs/performance.md and docs/performance.png. BENCH_SECONDS, BENCH_REPS and
# more: tools/bench.sh.
bench: $(BENCH_BINS)
	$(Q)command -v gnuplot >/dev/null || tools/ensure-deps gnuplot-nox
	$(Q)command -v python3 >/dev/null || tools/ensure-deps python3
	$(Q)BUILD=$(BUILD) tools/bench.sh $(BENCH_DIR) docs
# A quick same-run comparison (not part of make test): 32 B at concurrency 1 and 64 over tcp.
quickbench: $(BENCH_BINS)
	$(Q)tools/quickbench.sh $(BENCH_DIR)
# Server-streaming throughput of 32 B messages against a bare nanomsg PUSH/PULL stream.
streambench: $(BENCH_BINS)
	$(Q)tools/streambench.sh $(BENCH_DIR)
