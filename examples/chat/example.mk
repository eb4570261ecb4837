# examples/chat: the chat room (server + page). The page is read from the source tree
# unless --web-root or WEBSOCK_CHAT_WEB_ROOT says otherwise (the container image does).
EXAMPLE_BINS += $(BIN_DIR)/websock-chat
CHAT_OBJS := $(OBJ_DIR)/examples/chat/main.o $(OBJ_DIR)/examples/chat/chat_room.o

$(OBJ_DIR)/examples/chat/main.o: CXXFLAGS += -DWEBSOCK_CHAT_WEB_ROOT='"$(abspath examples/chat/public)"'

$(BIN_DIR)/websock-chat: $(CHAT_OBJS) $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LIBS)
