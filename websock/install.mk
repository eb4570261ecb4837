# websock/install.mk — `make install` and `make uninstall`, included by the top-level Makefile.
#
#   make install                                  into /usr/local (lib, include, bin)
#   make install PREFIX=$HOME/.local              no root needed
#   make install PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu DESTDIR=debian/tmp
#                                                 staged, multiarch (what debian/rules runs)
#   make uninstall PREFIX=... [LIBDIR=...] [DESTDIR=...]   removes what install put there
#
# What goes where (each directory can be overridden on the command line):
#   $(INCLUDEDIR)/websock/...        the public headers (PUBLIC_HEADERS; not websock/detail/)
#   $(LIBDIR)/libwebsock.so.X.Y.Z    the shared library, SONAME libwebsock.so.X, with the
#                                    links libwebsock.so.X and libwebsock.so
#   $(LIBDIR)/libwebsock.a           the static library
#   $(PKGCONFIGDIR)/websock.pc       pkg-config (dependencies private: `--static` adds them)
#   $(CMAKEDIR)/websock*.cmake       find_package(websock CONFIG), target websock::websock
#   $(BINDIR)/websock-hub, websock-echo, websock-client
# The version comes from websock/version.hpp. Files are installed from this build's
# $(BUILD_DIR) (release unless BUILD says otherwise), built first if needed.

WEBSOCK_VERSION_PART = $(shell sed -n 's/^\#define WEBSOCK_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' websock/version.hpp)
VERSION_MAJOR := $(call WEBSOCK_VERSION_PART,MAJOR)
VERSION_MINOR := $(call WEBSOCK_VERSION_PART,MINOR)
VERSION_PATCH := $(call WEBSOCK_VERSION_PART,PATCH)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SHLIB_SONAME := libwebsock.so.$(VERSION_MAJOR)
SHLIB_REAL := libwebsock.so.$(VERSION)

# Only WEBSOCK_API symbols leave libwebsock.so (websock/export.hpp); the static library is
# built from the same objects. The build tree's libwebsock.so carries the SONAME; install
# gives it its versioned name and the two links.
$(LIB_OBJS): CXXFLAGS += -fvisibility=hidden -fvisibility-inlines-hidden
$(LIB_SHARED): LDFLAGS += -Wl,-soname,$(SHLIB_SONAME)
ifneq ($(filter release debug,$(BUILD)),)
  $(LIB_SHARED): LDFLAGS += -Wl,--no-undefined  # (sanitizer runtimes resolve at load time)
endif

# The public headers: everything a program may include, and what those include.
# test/install/check-headers.sh checks that this set is closed and that each one compiles alone.
PUBLIC_HEADERS := $(sort $(wildcard websock/*.hpp websock/codec/*.hpp)) websock/codec/detail/frame_decoder_impl.hpp
INSTALL_PROGRAMS := $(BIN_DIR)/websock-echo $(BIN_DIR)/websock-client $(HUB_BIN)

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
# GNU's default; a distribution passes its own (debian/rules: LIBDIR=/usr/lib/<multiarch>).
LIBDIR ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/websock
INSTALL ?= install
# A root install into the live system (no DESTDIR) refreshes the loader's cache, so programs
# find libwebsock.so.MAJOR in /usr/local/lib at once; LDCONFIG=true skips it (the tests).
LDCONFIG ?= ldconfig
refresh_ld_cache = if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then $(LDCONFIG); fi

# A directory as pkg-config writes it: under ${prefix} when it is.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
# The CMake files find the library and headers relative to themselves (a relocatable tree).
cmake_relative = $(shell realpath -m -s --relative-to=$(CMAKEDIR) $(1))
POINTER_BYTES = $(shell $(CXX) -dM -E -x c++ /dev/null | sed -n 's/^\#define __SIZEOF_POINTER__ //p')

.PHONY: install install-lib install-dev install-bin uninstall

install: install-lib install-dev install-bin

# The runtime library (what a Debian libwebsock0 package holds).
install-lib: $(LIB_SHARED)
	$(INSTALL) -d $(DESTDIR)$(LIBDIR)
	$(INSTALL) -m 0644 $(LIB_SHARED) $(DESTDIR)$(LIBDIR)/$(SHLIB_REAL)
	ln -sf $(SHLIB_REAL) $(DESTDIR)$(LIBDIR)/$(SHLIB_SONAME)
	$(refresh_ld_cache)

# What building against it needs (libwebsock-dev).
install-dev: $(LIB_STATIC) $(PUBLIC_HEADERS) websock/pkgconfig/websock.pc.in \
             websock/pkgconfig/websockConfig.cmake.in websock/pkgconfig/websockConfigVersion.cmake.in
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR)
	for header in $(PUBLIC_HEADERS); do \
		$(INSTALL) -D -m 0644 $$header $(DESTDIR)$(INCLUDEDIR)/$$header || exit 1; \
	done
	$(INSTALL) -m 0644 $(LIB_STATIC) $(DESTDIR)$(LIBDIR)/libwebsock.a
	ln -sf $(SHLIB_SONAME) $(DESTDIR)$(LIBDIR)/libwebsock.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|' \
	    websock/pkgconfig/websock.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/websock.pc
	sed -e 's|@LIBDIR_FROM_HERE@|$(call cmake_relative,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR_FROM_HERE@|$(call cmake_relative,$(INCLUDEDIR))|' \
	    -e 's|@SHLIB_REAL@|$(SHLIB_REAL)|' -e 's|@SHLIB_SONAME@|$(SHLIB_SONAME)|' \
	    websock/pkgconfig/websockConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/websockConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|' \
	    -e 's|@POINTER_BYTES@|$(POINTER_BYTES)|' \
	    websock/pkgconfig/websockConfigVersion.cmake.in > $(DESTDIR)$(CMAKEDIR)/websockConfigVersion.cmake
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/websock.pc $(DESTDIR)$(CMAKEDIR)/websock*.cmake

# The programs (websock-hub's Debian package; the echo server and the client as tools).
install-bin: $(INSTALL_PROGRAMS)
	$(INSTALL) -d $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0755 $(INSTALL_PROGRAMS) $(DESTDIR)$(BINDIR)/

# The same paths as install (give the same PREFIX/DESTDIR/LIBDIR). Directories shared with
# other software (bin, lib, pkgconfig) stay; websock's own (include/websock, cmake/websock) go.
uninstall:
	rm -f $(foreach program,$(notdir $(INSTALL_PROGRAMS)),$(DESTDIR)$(BINDIR)/$(program))
	rm -f $(DESTDIR)$(LIBDIR)/$(SHLIB_REAL) $(DESTDIR)$(LIBDIR)/$(SHLIB_SONAME) \
	      $(DESTDIR)$(LIBDIR)/libwebsock.so $(DESTDIR)$(LIBDIR)/libwebsock.a
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/websock.pc
	rm -f $(DESTDIR)$(CMAKEDIR)/websockConfig.cmake $(DESTDIR)$(CMAKEDIR)/websockConfigVersion.cmake
	rm -rf $(DESTDIR)$(INCLUDEDIR)/websock
	rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null || true
	$(refresh_ld_cache)
