# debian/deb.mk — `make deb`, included by the top-level Makefile: the Debian packages
# libwebsock0, libwebsock-dev and websock-hub, built the Debian way (dpkg-buildpackage with
# debian/rules, debhelper compat 13) and checked with lintian (no error allowed).
#
#   make deb          the .deb files and the .changes in $(BUILD_ROOT)/deb/
#
# dpkg-buildpackage writes its results next to the source tree, so the build runs on a copy
# of the tree's sources in $(BUILD_ROOT)/deb/websock/ (never in the work tree). The build
# uses Debian's hardening flags and its own build directory (a full release build, about
# 5 minutes on 2 cores). test/container/deb.sh installs the packages into a fresh Debian 12
# root and runs websock-hub from there (make test-deb).

DEB_DIR := $(BUILD_ROOT)/deb
DEB_SOURCES := Makefile README.md websock hub examples debian $(wildcard docs/*.md)

.PHONY: deb
deb:
	./scripts/install-deps.sh deb
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/websock
	tar -c --exclude=build --exclude=node_modules --exclude='*.o' --exclude='*.d' $(DEB_SOURCES) | \
		tar -x -C $(DEB_DIR)/websock
	# The outer make's flags and variables must not reach debian/rules' own make.
	cd $(DEB_DIR)/websock && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
		DEB_BUILD_OPTIONS="parallel=2 $(DEB_BUILD_OPTIONS)" \
		dpkg-buildpackage -us -uc -b > ../dpkg-buildpackage.log 2>&1 || \
		{ tail -60 ../dpkg-buildpackage.log; echo "make deb: dpkg-buildpackage failed (log: $(DEB_DIR)/dpkg-buildpackage.log)"; exit 1; }
	rm -rf $(DEB_DIR)/websock
	lintian --fail-on error --display-info $(DEB_DIR)/*.changes
	@ls -l $(DEB_DIR)/*.deb
