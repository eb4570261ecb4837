# The chaos soak (test/soak/soak.mjs): each server — websock-echo on both engines (the event
# loop with one loop and with two), websock-hub (aiows + channelstream) on one loop and on
# two, and with Redis — carries 500 good clients that check every
# byte while abusive clients reset, half-close, read nothing, crawl through handshakes, send
# garbage and oversized frames, and burst past the server's lowered descriptor limit. It fails
# when a server dies, a good client loses anything, the log grows without bound, or
# descriptors, threads and RSS do not come back to their baseline. See docs/design.md.
#
#   make soak                        about 3 minutes, release build
#   make soak-short                  about 30 seconds (`make test` runs it once, release)
#   make BUILD=asan soak-short       under ASan+UBSan (deadlines x4)
#   make soak SOAK_ARGS='--only event'
#
# This recipe raises its own open-file limit: the driver holds the good clients, a wave of
# abusers and the whole burst at once.

SOAK_ARGS ?=
SOAK_BINS := $(BIN_DIR)/websock-echo $(HUB_BIN)

.PHONY: soak soak-short
soak soak-short: $(SOAK_BINS)
	cd test && \
	limit=$$(ulimit -n); \
	if [ "$$limit" != unlimited ] && [ "$$limit" -lt 4096 ]; then \
		ulimit -n 4096 2>/dev/null || echo "note: ulimit -n is $$limit (< 4096) and cannot be raised"; \
	fi; \
	WEBSOCK_BIN_DIR=$(abspath $(BIN_DIR)) WEBSOCK_TIMEOUT_SCALE=$(INTEGRATION_TIMEOUT_SCALE) \
		node soak/soak.mjs --profile $(if $(filter soak-short,$@),short,full) $(SOAK_ARGS)
