# The hub's tests: doctest unit tests (test/hub/unit/*.cpp, linked with libwebsockhub.a) and
# integration tests (test/hub/*.test.mjs, Node's test runner with `ws`, against websock-hub,
# with their own redis-server on a free loopback port where Redis is needed).
#
#   make test-hub                      both, release build
#   make test-hub HUB_UNIT_ARGS='-tc="signer*"'  HUB_TEST_ARGS='--test-name-pattern=broadcast'

HUB_UNIT_SRCS := $(wildcard test/hub/unit/*.cpp)
HUB_UNIT_OBJS := $(HUB_UNIT_SRCS:%.cpp=$(OBJ_DIR)/%.o) $(OBJ_DIR)/test/unit/main.o
HUB_UNIT_BIN := $(BIN_DIR)/hub_unit_tests
HUB_UNIT_ARGS ?=
HUB_TEST_ARGS ?=

$(HUB_UNIT_BIN): $(HUB_UNIT_OBJS) $(HUB_LIB) $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $(HUB_UNIT_OBJS) $(HUB_LIB) $(LIB_STATIC) $(HUB_LIBS) $(LIBS)

test-bins: $(HUB_BIN) $(HUB_UNIT_BIN)

.PHONY: test-hub test-hub-unit test-hub-integration
test-hub-unit: $(HUB_UNIT_BIN)
	$(HUB_UNIT_BIN) $(HUB_UNIT_ARGS)

test-hub-integration: $(HUB_BIN)
	@if ls test/hub/*.test.mjs >/dev/null 2>&1; then \
		limit=$$(ulimit -n); \
		if [ "$$limit" != unlimited ] && [ "$$limit" -lt 4096 ]; then \
			ulimit -n 4096 2>/dev/null || echo "note: ulimit -n is $$limit (< 4096) and cannot be raised: the 1,000-subscriber tests may fail"; \
		fi; \
		cd test && WEBSOCK_BUILD=$(BUILD) WEBSOCK_BIN_DIR=$(abspath $(BIN_DIR)) \
		WEBSOCK_TIMEOUT_SCALE=$(INTEGRATION_TIMEOUT_SCALE) \
		node --test --test-concurrency=1 $(HUB_TEST_ARGS) hub/; \
	fi

test-hub: test-hub-unit test-hub-integration
test-quick: test-hub

-include $(HUB_UNIT_OBJS:.o=.d)
