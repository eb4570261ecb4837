# Integration tests: Node's built-in test runner (node:test) with the `ws` client, against
# the echo example and test/integration/fixture_server (a test server on the public API).
# `make test-integration` builds both and runs every test/integration/*.test.mjs, one file at
# a time; the npm packages come from `make deps` (test/package.json).
#
#   make test-integration                       release build
#   make BUILD=asan test-integration            same binaries under ASan+UBSan (deadlines x4)
#   make test-integration INTEGRATION_ARGS='--test-name-pattern=7\.9'
#
# The whole suite runs twice, once per engine (WEBSOCK_ENGINE=threads, then event: the echo
# example and the fixture read it). Tests find the binaries through WEBSOCK_BIN_DIR and stretch every deadline by
# WEBSOCK_TIMEOUT_SCALE. One test holds 1,000 connections at once: the recipe raises the
# open-file limit to 4096 when it is lower (and notes it when it cannot).

FIXTURE_SERVER := $(BIN_DIR)/fixture_server
INTEGRATION_ARGS ?=

ifneq ($(filter asan tsan,$(BUILD)),)
  INTEGRATION_TIMEOUT_SCALE := 4
else
  INTEGRATION_TIMEOUT_SCALE := 1
endif

$(FIXTURE_SERVER): test/integration/fixture_server.cpp $(LIB_STATIC)
	@mkdir -p $(@D) $(OBJ_DIR)/test/integration
	$(CXX) $(CPPFLAGS_COMMON) -MF $(OBJ_DIR)/test/integration/fixture_server.d -MT $@ $(CXXFLAGS) \
		-o $@ $< $(LIB_STATIC) $(LIBS) $(LDFLAGS)

.PHONY: test-integration
test-integration: $(BIN_DIR)/websock-echo $(FIXTURE_SERVER)
	cd test && \
	limit=$$(ulimit -n); \
	if [ "$$limit" != unlimited ] && [ "$$limit" -lt 4096 ]; then \
		ulimit -n 4096 2>/dev/null || echo "note: ulimit -n is $$limit (< 4096) and cannot be raised: the 1,000-client test may be skipped"; \
	fi; \
	for engine in threads event; do \
		echo "== integration tests, engine: $$engine"; \
		WEBSOCK_BUILD=$(BUILD) WEBSOCK_ENGINE=$$engine WEBSOCK_BIN_DIR=$(abspath $(BIN_DIR)) WEBSOCK_TIMEOUT_SCALE=$(INTEGRATION_TIMEOUT_SCALE) \
			node --test --test-concurrency=1 $(INTEGRATION_ARGS) integration/ || exit 1; \
	done

test-quick: test-integration

-include $(OBJ_DIR)/test/integration/fixture_server.d
