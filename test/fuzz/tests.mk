# libFuzzer targets, built only with BUILD=fuzz (clang, -fsanitize=fuzzer-no-link,address,
# undefined for every object; the fuzzers link with -fsanitize=fuzzer,address,undefined):
#   fuzz_frame      FrameDecoder (both roles) and Connection (server role), whole vs. cut input
#   fuzz_handshake  HttpRequestParser + check_upgrade_request, whole vs. cut input
#   fuzz_utf8       Utf8Validator fed in pieces vs. a one-shot reference decoder
#   fuzz_hub_payload  the hub's payload rules (SAX verdict vs. a whole-document one) and
#                   its sequenced bus envelope (hostile bytes, round trip)
#
# `make fuzz-smoke` (any BUILD) builds them and runs the three side by side for FUZZ_TIME
# seconds each, starting from the seed corpus committed in test/fuzz/corpus/<target>/.
# New inputs go to build/fuzz/corpus/<target>/ (never into the committed seeds), crashes to
# build/fuzz/artifacts/, logs to build/fuzz/logs/. To reproduce a crash:
#   build/fuzz/bin/fuzz_frame build/fuzz/artifacts/fuzz_frame-crash-<sha1>
# To fuzz longer: make BUILD=fuzz fuzz-smoke FUZZ_TIME=600

FUZZ_LIB_TARGETS := fuzz_frame fuzz_handshake fuzz_utf8 fuzz_deflate
FUZZ_HUB_TARGETS := fuzz_hub_payload
FUZZ_TARGETS := $(FUZZ_LIB_TARGETS) $(FUZZ_HUB_TARGETS)
FUZZ_TIME ?= 60
FUZZ_RSS_MB ?= 2048
FUZZ_FLAGS ?=

.PHONY: fuzz-smoke fuzz-build

ifeq ($(BUILD),fuzz)

FUZZ_SRCS := $(FUZZ_TARGETS:%=test/fuzz/%.cpp)
FUZZ_OBJS := $(FUZZ_SRCS:%.cpp=$(OBJ_DIR)/%.o)
FUZZ_BINS := $(FUZZ_TARGETS:%=$(BIN_DIR)/%)
FUZZ_LINK := -fsanitize=fuzzer,address,undefined
FUZZ_ARTIFACTS := $(BUILD_DIR)/artifacts
FUZZ_WORK := $(BUILD_DIR)/corpus
FUZZ_LOGS := $(BUILD_DIR)/logs

$(FUZZ_LIB_TARGETS:%=$(BIN_DIR)/%): $(BIN_DIR)/%: $(OBJ_DIR)/test/fuzz/%.o $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(FUZZ_LINK) -o $@ $< $(LIB_STATIC) $(LIBS)

# The hub's targets take only the hub objects they test (not the whole hub and its libraries).
FUZZ_HUB_OBJS := $(OBJ_DIR)/hub/payload_rules.o $(OBJ_DIR)/hub/bus_sequenced.o $(OBJ_DIR)/hub/json_depth.o
$(FUZZ_HUB_TARGETS:%=$(BIN_DIR)/%): $(BIN_DIR)/%: $(OBJ_DIR)/test/fuzz/%.o $(FUZZ_HUB_OBJS) $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(FUZZ_LINK) -o $@ $< $(FUZZ_HUB_OBJS) $(LIB_STATIC) $(LIBS)

fuzz-build: $(FUZZ_BINS)

# The three run at once (each is single-threaded), so the whole smoke run takes about
# FUZZ_TIME seconds plus the build. Every fuzzer runs its full time even if another one
# crashes; the target fails afterwards if any did, printing the end of its log.
fuzz-smoke: $(FUZZ_BINS)
	@mkdir -p $(FUZZ_ARTIFACTS) $(FUZZ_LOGS) $(FUZZ_TARGETS:%=$(FUZZ_WORK)/%)
	@echo "fuzz-smoke: running $(FUZZ_TARGETS) for $(FUZZ_TIME)s each (logs in $(FUZZ_LOGS))"
	@pids=""; \
	for t in $(FUZZ_TARGETS); do \
	  dict=""; [ -f test/fuzz/$$t.dict ] && dict="-dict=test/fuzz/$$t.dict"; \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(BIN_DIR)/$$t -max_total_time=$(FUZZ_TIME) -rss_limit_mb=$(FUZZ_RSS_MB) -timeout=20 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_ARTIFACTS)/$$t- $$dict $(FUZZ_FLAGS) \
	    $(FUZZ_WORK)/$$t test/fuzz/corpus/$$t > $(FUZZ_LOGS)/$$t.log 2>&1 & \
	  pids="$$pids $$!:$$t"; \
	done; \
	status=0; \
	for p in $$pids; do \
	  pid=$${p%%:*}; t=$${p#*:}; \
	  if wait $$pid; then \
	    echo "fuzz-smoke: $$t ok: $$(grep -h 'stat::number_of_executed_units' $(FUZZ_LOGS)/$$t.log | tr -s ' ')"; \
	  else \
	    status=1; echo "fuzz-smoke: $$t FAILED; end of $(FUZZ_LOGS)/$$t.log:"; tail -n 60 $(FUZZ_LOGS)/$$t.log; \
	  fi; \
	done; \
	exit $$status

-include $(FUZZ_OBJS:.o=.d)

else

fuzz-smoke fuzz-build:
	$(MAKE) BUILD=fuzz $@

endif
