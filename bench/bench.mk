# bench/bench.mk — the benchmark harness, included by the top-level Makefile.
#
#   make bench                      build the load generator and the peer echo servers, then
#                                   run bench/run.sh (websock's engines vs a plain TCP echo,
#                                   the ceiling, and WebSocket++, Beast, Node ws)
#   make bench BENCH_QUICK=1        the same, shorter (about 2 minutes instead of 5-8)
#   make bench-build                build only
#   make bench-selftest             check the loadgen (echo contents, counts, partial frames,
#                                   fragmentation, and that broken echoes are caught)
#
# Environment read by run.sh: BENCH_RUNS, BENCH_QUICK, BENCH_SERVERS, BENCH_DURATION, ...
# (see the top of bench/run.sh). `make bench` always uses the release build.

BENCH_LOADGEN := $(BIN_DIR)/loadgen
BENCH_WSPP := $(BIN_DIR)/bench_websocketpp_echo
BENCH_BEAST := $(BIN_DIR)/bench_beast_echo
BENCH_TCP_ECHO := $(BIN_DIR)/bench_tcp_echo
BENCH_TCP_ECHO_URING := $(BIN_DIR)/bench_tcp_echo_uring
BENCH_NODE_STAMP := bench/node_modules/.installed
BENCH_WEBSOCK_ECHO := $(BIN_DIR)/websock-echo

# The peers are other people's code: built with their own flags, not our warning set.
# WebSocket++ 0.8.2 does not compile as C++20 (template-ids as constructor names), so it is
# built as C++17; Beast is built with the project's standard.
BENCH_PEER_FLAGS := -I. -O2 -DNDEBUG -pthread
BENCH_PEER_LIBS := -lboost_system -pthread

# websock-echo is built by examples/echo/example.mk. Until that fragment exists, `make bench`
# still runs, and run.sh skips the websock row with a message.
BENCH_DEPS := $(BENCH_LOADGEN) $(BENCH_WSPP) $(BENCH_BEAST) $(BENCH_TCP_ECHO) $(BENCH_NODE_STAMP)
ifneq ($(filter $(BENCH_WEBSOCK_ECHO),$(EXAMPLE_BINS)),)
  BENCH_DEPS += $(BENCH_WEBSOCK_ECHO)
endif
# The io_uring TCP echo needs liburing-dev (scripts/install-deps.sh test installs it); without
# it the row is skipped, and nothing else (make test included) needs liburing.
ifneq ($(wildcard /usr/include/liburing.h),)
  BENCH_DEPS += $(BENCH_TCP_ECHO_URING)
endif

.PHONY: bench bench-build bench-selftest

bench-build: $(BENCH_DEPS)

# Always the release build: numbers from -O1 sanitizer builds would mean nothing.
bench: deps
	$(MAKE) BUILD=release bench-build
	BIN_DIR=$(BUILD_ROOT)/release/bin bench/run.sh

# Checks the loadgen itself against every echo server and a deliberately awkward one.
bench-selftest: deps
	$(MAKE) BUILD=release bench-build
	BIN_DIR=$(BUILD_ROOT)/release/bin bench/selftest.sh

# The load generator, one file per job (bench/loadgen/loadgen.hpp lists them).
BENCH_LOADGEN_OBJS := $(patsubst %.cpp,$(OBJ_DIR)/%.o,$(wildcard bench/loadgen/*.cpp))

$(BENCH_LOADGEN): $(BENCH_LOADGEN_OBJS)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^

$(BENCH_WSPP): bench/peers/websocketpp_echo.cpp
	@mkdir -p $(@D) $(OBJ_DIR)/bench
	$(CXX) -std=c++17 $(BENCH_PEER_FLAGS) -MMD -MP -MF $(OBJ_DIR)/bench/websocketpp_echo.d -MT $@ -o $@ $< $(BENCH_PEER_LIBS)

$(BENCH_BEAST): bench/peers/beast_echo.cpp
	@mkdir -p $(@D) $(OBJ_DIR)/bench
	$(CXX) $(CXXSTD) $(BENCH_PEER_FLAGS) -MMD -MP -MF $(OBJ_DIR)/bench/beast_echo.d -MT $@ -o $@ $< $(BENCH_PEER_LIBS)

# The plain TCP echo (the ceiling): our own code, so the project's flags and warnings.
$(BENCH_TCP_ECHO): $(OBJ_DIR)/bench/peers/tcp_echo.o
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^

# The same echo on io_uring (issue 12: is io_uring cheaper than epoll here?).
$(BENCH_TCP_ECHO_URING): $(OBJ_DIR)/bench/peers/tcp_echo_uring.o
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ -luring

# Node's ws for the Node peer: installed into bench/node_modules from bench/package.json.
$(BENCH_NODE_STAMP): bench/package.json
	cd bench && npm install --no-audit --no-fund --loglevel=error
	@touch $@

-include $(BENCH_LOADGEN_OBJS:.o=.d) $(OBJ_DIR)/bench/websocketpp_echo.d $(OBJ_DIR)/bench/beast_echo.d \
    $(OBJ_DIR)/bench/peers/tcp_echo.d $(OBJ_DIR)/bench/peers/tcp_echo_uring.d
include bench/fanout.mk
