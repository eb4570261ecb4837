# bench/fanout.mk — the hub's fan-out benchmark (bench/fanout.cpp, run by bench/fanout.sh).
#
#   make bench-fanout                 build websock-hub and the fanout client, run bench/fanout.sh
#   make bench-fanout-build           build only
#
# Environment read by fanout.sh: FANOUT_SUBSCRIBERS, FANOUT_SIZE, FANOUT_DURATION, FANOUT_RUNS,
# FANOUT_SERVERS (see the top of bench/fanout.sh). Always the release build.

BENCH_FANOUT := $(BIN_DIR)/fanout
BENCH_WSPP_FANOUT := $(BIN_DIR)/bench_websocketpp_fanout

.PHONY: bench-fanout bench-fanout-build

bench-fanout-build: $(BENCH_FANOUT) $(HUB_BIN) $(BENCH_WSPP_FANOUT) $(BENCH_NODE_STAMP)

bench-fanout: deps
	$(MAKE) BUILD=release bench-fanout-build
	BIN_DIR=$(BUILD_ROOT)/release/bin bench/fanout.sh

# A standalone client: libc, and OpenSSL's SHA-1/base64 for the handshake check.
$(BENCH_FANOUT): $(OBJ_DIR)/bench/fanout.o
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ -lcrypto

# The WebSocket++ peer: built like bench_websocketpp_echo (C++17, the peers' own flags).
$(BENCH_WSPP_FANOUT): bench/peers/websocketpp_fanout.cpp
	@mkdir -p $(@D) $(OBJ_DIR)/bench
	$(CXX) -std=c++17 $(BENCH_PEER_FLAGS) -MMD -MP -MF $(OBJ_DIR)/bench/websocketpp_fanout.d -MT $@ -o $@ $< $(BENCH_PEER_LIBS)

-include $(OBJ_DIR)/bench/fanout.d $(OBJ_DIR)/bench/websocketpp_fanout.d

# websock's own send_all peer: our code, so built like the examples (project flags, the library).
BENCH_WEBSOCK_FANOUT := $(BIN_DIR)/bench_websock_fanout
bench-fanout-build: $(BENCH_WEBSOCK_FANOUT)

$(BENCH_WEBSOCK_FANOUT): $(OBJ_DIR)/bench/peers/websock_fanout.o $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LIBS)

-include $(OBJ_DIR)/bench/peers/websock_fanout.d
