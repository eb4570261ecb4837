# examples/echo: the echo server used by conformance runs and the benchmarks.
EXAMPLE_BINS += $(BIN_DIR)/websock-echo

$(BIN_DIR)/websock-echo: $(OBJ_DIR)/examples/echo/main.o $(LIB_STATIC)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LIBS)
