# hub/: websock-hub, the channel hub (aiows API + channelstream API, Redis for several nodes).
# Everything but main.cpp goes into libwebsockhub.a, which the hub's unit tests link too.
# A new hub/*.cpp or hub/*/*.cpp is picked up without editing this file.

HUB_SRCS := $(filter-out hub/main.cpp,$(wildcard hub/*.cpp hub/*/*.cpp))
HUB_OBJS := $(HUB_SRCS:%.cpp=$(OBJ_DIR)/%.o)
HUB_LIB := $(LIB_DIR)/libwebsockhub.a
HUB_BIN := $(BIN_DIR)/websock-hub
HUB_LIBS := -lhiredis -lprometheus-cpp-core -linih

EXAMPLE_BINS += $(HUB_BIN)

$(HUB_LIB): $(HUB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(HUB_BIN): $(OBJ_DIR)/hub/main.o $(HUB_LIB) $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(HUB_LIBS) $(LIBS)

-include $(HUB_OBJS:.o=.d) $(OBJ_DIR)/hub/main.d
