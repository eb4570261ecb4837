# The fault-injection suite (issue 10): test/faults/*.cpp, one doctest binary that runs a
# real server on 127.0.0.1 with a transport that fails the Nth I/O call, for every N and
# every failure kind, on both engines. Part of test-quick, so it runs again under ASan/UBSan
# and TSan.
#   make test-faults FAULT_ARGS='-tc="*accept*" -s'

FAULT_SRCS := $(wildcard test/faults/*.cpp)
FAULT_OBJS := $(FAULT_SRCS:%.cpp=$(OBJ_DIR)/%.o) $(OBJ_DIR)/test/unit/main.o
FAULT_BIN := $(BIN_DIR)/fault_tests
FAULT_ARGS ?=

$(FAULT_BIN): $(FAULT_OBJS) $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $(FAULT_OBJS) $(LIB_STATIC) $(LIBS)

test-bins: $(FAULT_BIN)

.PHONY: test-faults
test-faults: $(FAULT_BIN)
	$(FAULT_BIN) $(FAULT_ARGS)

test-quick: test-faults

-include $(FAULT_OBJS:.o=.d)
