# docs/docs.mk — the API reference, included by the top-level Makefile.
#
#   make docs        Doxygen (Debian's doxygen) over the public headers into build/docs/html
#                    ($(BUILD_ROOT)/docs/html)
#   make test-docs   the same, and fails on any warning (an undocumented public member, a
#                    broken reference); part of test-quick in the release build
#
# The headers are PUBLIC_HEADERS of websock/install.mk: the reference covers exactly what
# `make install` installs. docs/api.md is the main page; docs/namespaces.dox describes the
# two namespaces (a namespace without a description gets no page).

DOCS_DIR := $(BUILD_ROOT)/docs
DOCS_INPUT := docs/api.md docs/namespaces.dox $(PUBLIC_HEADERS)

.PHONY: docs test-docs
# The pages are made afresh each time (a second or so), so none is left from a removed name.
docs: $(DOCS_INPUT) docs/Doxyfile
	@command -v doxygen >/dev/null || { echo "make docs: doxygen is missing (apt-get install doxygen, or make deps)"; exit 1; }
	rm -rf $(DOCS_DIR)/html
	@mkdir -p $(DOCS_DIR)
	WEBSOCK_DOCS_INPUT="$(DOCS_INPUT)" WEBSOCK_DOCS_OUTPUT=$(abspath $(DOCS_DIR)) \
	WEBSOCK_VERSION=$(VERSION) doxygen docs/Doxyfile
	@echo "docs: $(DOCS_DIR)/html/index.html"

# Doxygen's FAIL_ON_WARNINGS already fails the run; the checks below catch a run that
# "succeeded" without producing the pages a reader opens first.
test-docs: docs
	@for page in index.html classwebsock_1_1WebSocketServer.html classwebsock_1_1WebSocketClient.html \
	             namespacewebsock_1_1codec.html; do \
		test -s $(DOCS_DIR)/html/$$page || { echo "test-docs: $(DOCS_DIR)/html/$$page is missing"; exit 1; }; \
	done
	@echo "test-docs: the reference has no warning"

# Once per `make test`: the headers are the same in every build flavour.
ifeq ($(BUILD),release)
test-quick: test-docs
endif
