# The installed library, as a user gets it: `make install` into a scratch prefix, then a
# small program (test/install/consumer.cpp) built with pkg-config, statically and with CMake,
# and run; README.md's server builds as the README says; the installed headers each compile
# alone; libwebsock.so exports no internal symbol; `make uninstall` leaves nothing (see
# test/install/run.sh). The API reference's check (test-docs) is in docs/docs.mk.
#
#   make test-install                needs cmake and pkg-config (make deps)
#
# Release build only: the sanitizer builds re-run test-quick, and an install adds nothing there.

INSTALL_TEST_DIR := $(BUILD_DIR)/install-test

ifeq ($(BUILD),release)
.PHONY: test-install
test-install: $(LIB_SHARED) $(LIB_STATIC) $(INSTALL_PROGRAMS)
	MAKE="$(MAKE)" CXX="$(CXX)" WEBSOCK_VERSION=$(VERSION) test/install/run.sh $(abspath $(INSTALL_TEST_DIR))

test-quick: test-install
endif
