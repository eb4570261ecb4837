# Browser tests of the chat room: Node's test runner drives Debian's Chromium through
# playwright-core (test/package.json; installed by `make deps`) against websock-chat.
#
#   make test-e2e                  build the chat room, run test/e2e/*.test.mjs
#
# Release build only: the sanitizer builds re-run test-quick, and a browser adds nothing
# there that the integration tests do not already cover. The screenshot of the room goes to
# build/artifacts/chat-room.png.

ifeq ($(BUILD),release)
.PHONY: test-e2e
test-e2e: $(BIN_DIR)/websock-chat
	cd test && WEBSOCK_BIN_DIR=$(abspath $(BIN_DIR)) node --test --test-concurrency=1 e2e/

test-quick: test-e2e
endif
