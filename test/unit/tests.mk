# Unit tests: doctest (Debian's doctest-dev), one binary for every test/unit/*.cpp.
# `make test-unit` builds and runs it; `make BUILD=asan test-unit` does the same under
# ASan+UBSan. Extra doctest options can be passed with UNIT_ARGS, e.g.
#   make test-unit UNIT_ARGS='-tc="utf8*" -s'

UNIT_SRCS := $(wildcard test/unit/*.cpp)
UNIT_OBJS := $(UNIT_SRCS:%.cpp=$(OBJ_DIR)/%.o) $(OBJ_DIR)/examples/chat/chat_room.o  # the chat room's rules too
UNIT_BIN := $(BIN_DIR)/unit_tests
UNIT_ARGS ?=

$(UNIT_BIN): $(UNIT_OBJS) $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(LIB_STATIC) $(LIBS)

.PHONY: test-unit
test-unit: $(UNIT_BIN)
	$(UNIT_BIN) $(UNIT_ARGS)

test-quick: test-unit

-include $(UNIT_OBJS:.o=.d)
