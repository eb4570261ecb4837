# websock — top-level build. `make run` starts the chat room; `make test` builds and runs
# every test (unit, integration, sanitizers, fuzz smoke). Both install what is missing.
#
# Build flavours live side by side: build/release, build/asan, build/tsan, build/fuzz.
# BUILD_ROOT moves all of them (two work trees' builds, or two builds at once, apart).

BUILD ?= release
BUILD_ROOT ?= build
BUILD_DIR := $(BUILD_ROOT)/$(BUILD)
OBJ_DIR := $(BUILD_DIR)/obj
BIN_DIR := $(BUILD_DIR)/bin
LIB_DIR := $(BUILD_DIR)/lib

CXXSTD := -std=c++20
WARNINGS := -Wall -Wextra -Wpedantic -Wshadow -Wno-missing-field-initializers
CPPFLAGS_COMMON := -I. -MMD -MP
LIBS := -lssl -lcrypto -lfmt -lhttp_parser -lz -pthread

ifeq ($(BUILD),release)
  CXX := g++
  OPTFLAGS := -O2 -g -DNDEBUG
else ifeq ($(BUILD),debug)
  CXX := g++
  OPTFLAGS := -O0 -g
else ifeq ($(BUILD),asan)
  CXX := clang++
  OPTFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else ifeq ($(BUILD),tsan)
  CXX := clang++
  OPTFLAGS := -O1 -g -fsanitize=thread
else ifeq ($(BUILD),fuzz)
  CXX := clang++
  OPTFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
else
  $(error unknown BUILD=$(BUILD): release, debug, asan, tsan or fuzz)
endif

# EXTRA_CXXFLAGS / EXTRA_LDFLAGS add flags (debian/rules passes Debian's hardening flags);
# overriding CXXFLAGS or LDFLAGS on the command line would drop the ones every fragment adds.
CXXFLAGS := $(CXXSTD) $(WARNINGS) $(OPTFLAGS) -fPIC $(EXTRA_CXXFLAGS)
LDFLAGS := $(filter -fsanitize=%,$(OPTFLAGS)) $(EXTRA_LDFLAGS)

# ---- the library ---------------------------------------------------------------------
LIB_SRCS := $(wildcard websock/*.cpp websock/codec/*.cpp websock/detail/*.cpp)
LIB_OBJS := $(LIB_SRCS:%.cpp=$(OBJ_DIR)/%.o)
LIB_STATIC := $(LIB_DIR)/libwebsock.a
LIB_SHARED := $(LIB_DIR)/libwebsock.so

.PHONY: all lib examples run test test-quick deps clean format asan tsan fuzz bench
.DEFAULT_GOAL := all

all: lib examples

lib: $(LIB_STATIC) $(LIB_SHARED)

$(LIB_STATIC): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(LIB_SHARED): $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CXX) -shared $(LDFLAGS) -o $@ $^ $(LIBS)

$(OBJ_DIR)/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS_COMMON) $(CXXFLAGS) -c $< -o $@

# ---- programs: each folder adds itself through its own .mk fragment -------------------
# A fragment appends to EXAMPLE_BINS / TEST_TARGETS and defines its rules; see each one.
EXAMPLE_BINS :=
include $(wildcard examples/*/example.mk)
include $(wildcard hub/hub.mk)  # absent in the chat container's build context
include websock/install.mk $(wildcard docs/docs.mk)  # make install/uninstall, make docs
include $(wildcard test/*/tests.mk)
include $(wildcard bench/bench.mk)
include $(wildcard debian/deb.mk)  # make deb

examples: $(EXAMPLE_BINS)

# Everything the tests run, so that it can be built in parallel before the tests start.
.PHONY: test-bins
test-bins: lib examples $(UNIT_BIN) $(FIXTURE_SERVER)

# ---- dependencies: Debian packages and npm packages, installed when missing ------------
# Two sets (scripts/install-deps.sh): `build` is what building and running need (make run,
# make install); `test` adds the test, container, packaging and browser tools (make test).
# `deps` is everything.
DEPS_BUILD_STAMP := build/.deps-build-stamp
DEPS_TEST_STAMP := build/.deps-test-stamp
$(DEPS_BUILD_STAMP): scripts/install-deps.sh
	./scripts/install-deps.sh build
	@mkdir -p $(@D) && touch $@
$(DEPS_TEST_STAMP): scripts/install-deps.sh $(wildcard test/package.json test/package-lock.json)
	./scripts/install-deps.sh test
	@mkdir -p $(@D) && touch $@ $(DEPS_BUILD_STAMP)

.PHONY: deps-build deps-test check-node-engines
deps-build: $(DEPS_BUILD_STAMP)
deps-test: $(DEPS_TEST_STAMP)
deps: deps-test

# The versions the tests rely on: the running Node.js (and the oldest one test/package.json
# promises, Debian 12's 18.20) against the `engines` of every pinned npm package. Fails
# loudly; npm only warns.
check-node-engines: deps-test
	node --test scripts/check-node-engines.test.mjs
	node scripts/check-node-engines.mjs test

# ---- the two commands of the README ----------------------------------------------------
# The main job: the chat room, at the URL it prints.
run: deps-build
	$(MAKE) -j2 BUILD=release examples
	$(BIN_DIR)/websock-chat --host 127.0.0.1 --port 8467

# Everything CI checks: release unit + integration tests, the same under ASan+UBSan and
# TSan, then each fuzzer for a bounded time.
# Builds run two jobs at a time; tests run one suite at a time (they time themselves).
test: deps-test check-node-engines
	$(MAKE) -j2 BUILD=release test-bins
	$(MAKE) BUILD=release test-quick
	$(MAKE) BUILD=release soak-short
	$(MAKE) -j2 BUILD=asan test-bins
	$(MAKE) BUILD=asan test-quick
	$(MAKE) -j2 BUILD=tsan test-bins
	$(MAKE) BUILD=tsan test-quick
	$(MAKE) -j2 BUILD=fuzz fuzz-build
	$(MAKE) BUILD=fuzz fuzz-smoke
	@echo "make test: every suite passed"

asan: deps
	$(MAKE) -j2 BUILD=asan test-bins
	$(MAKE) BUILD=asan test-quick
tsan: deps
	$(MAKE) -j2 BUILD=tsan test-bins
	$(MAKE) BUILD=tsan test-quick
fuzz: deps
	$(MAKE) -j2 BUILD=fuzz fuzz-build
	$(MAKE) BUILD=fuzz fuzz-smoke

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf build

# Header dependencies of every object of this flavour: the library's, and the examples',
# tests' and benchmarks' (a stale object after a header change is a crash waiting).
-include $(LIB_OBJS:.o=.d)
-include $(wildcard $(OBJ_DIR)/examples/*/*.d $(OBJ_DIR)/test/*/*.d $(OBJ_DIR)/bench/*.d)
