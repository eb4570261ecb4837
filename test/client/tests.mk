# The WebSocket client's tests. test/integration/client*.test.mjs drive client_probe (a
# WebSocketClient on stdin/stdout, test/integration/client_probe.cpp) against websock-echo, a
# Node `ws` server and raw sockets, and runs the websock-client example once.
#
#   make test-client                       release build, those files
#   make BUILD=asan test-client            the same under ASan+UBSan (deadlines x4)
#   make test-client CLIENT_TEST_ARGS='--test-name-pattern=masks'
#
# test-integration runs every test/integration/*.test.mjs (these included, once per
# engine of the echo server), so it needs the probe and the example client built as well.

CLIENT_PROBE := $(BIN_DIR)/client_probe
CLIENT_TEST_ARGS ?=

ifneq ($(filter asan tsan,$(BUILD)),)
  CLIENT_TIMEOUT_SCALE := 4
else
  CLIENT_TIMEOUT_SCALE := 1
endif

$(CLIENT_PROBE): test/integration/client_probe.cpp $(LIB_STATIC)
	@mkdir -p $(@D) $(OBJ_DIR)/test/integration
	$(CXX) $(CPPFLAGS_COMMON) -MF $(OBJ_DIR)/test/integration/client_probe.d -MT $@ $(CXXFLAGS) \
		-o $@ $< $(LIB_STATIC) $(LIBS) $(LDFLAGS)

.PHONY: test-client
test-client: $(CLIENT_PROBE) $(BIN_DIR)/websock-echo $(BIN_DIR)/websock-client
	cd test && WEBSOCK_BIN_DIR=$(abspath $(BIN_DIR)) WEBSOCK_TIMEOUT_SCALE=$(CLIENT_TIMEOUT_SCALE) \
		node --test --test-concurrency=1 $(CLIENT_TEST_ARGS) integration/client*.test.mjs

test-integration: $(CLIENT_PROBE) $(BIN_DIR)/websock-client
test-bins: $(CLIENT_PROBE)

-include $(OBJ_DIR)/test/integration/client_probe.d
