# examples/client: websock-client, a line-oriented client (stdin lines out, messages printed).
EXAMPLE_BINS += $(BIN_DIR)/websock-client

$(BIN_DIR)/websock-client: $(OBJ_DIR)/examples/client/main.o $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LIBS)
