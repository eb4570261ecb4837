#!/bin/sh
# Installs what websock needs, and only what is missing: Debian packages with apt-get, and
# the npm packages of the test clients.
#
#   scripts/install-deps.sh build   what building and running need: the compiler and the
#                                   libraries of the library, the examples and the hub
#                                   (make run, make install)
#   scripts/install-deps.sh test    build's packages plus the test tools: clang and its
#                                   sanitizer runtimes, Node.js and the npm test clients,
#                                   Chromium, Redis, python3-websockets (the docs' Python
#                                   streams client), buildah/podman/debootstrap and
#                                   python3-yaml for the container tests, deb's packages and
#                                   systemd-analyze for the Debian package test (make test)
#   scripts/install-deps.sh deb     build's packages plus dpkg-buildpackage, debhelper and
#                                   lintian (make deb)
#
# Without an argument: test (everything). The Makefile keeps one stamp per set
# (build/.deps-build-stamp, build/.deps-test-stamp), so `make run` on a fresh machine installs
# the first set only.
set -eu
cd "$(dirname "$0")/.."

SET=${1:-test}

# Building the library, the examples (chat room, echo, client) and websock-hub.
# pkg-config reads the websock.pc that `make install` writes.
BUILD_PACKAGES="g++ make pkg-config libssl-dev libfmt-dev libhttp-parser-dev zlib1g-dev
nlohmann-json3-dev libhiredis-dev prometheus-cpp-dev libinih-dev"

# Building the Debian packages (make deb): dpkg-buildpackage, dh, lintian.
DEB_PACKAGES="dpkg-dev debhelper lintian"

# Everything `make test` runs on top of those (and `make bench`: WebSocket++ and Beast, and
# liburing-dev for the io_uring TCP echo, which only the benchmark builds).
TEST_PACKAGES="clang libclang-rt-dev doctest-dev openssl procps nodejs npm chromium
redis-server python3-itsdangerous python3-websockets python3-yaml buildah podman debootstrap runc systemd
libwebsocketpp-dev libboost-dev libboost-system-dev liburing-dev cmake doxygen"

case "$SET" in
    build) PACKAGES=$BUILD_PACKAGES ;;
    deb) PACKAGES="$BUILD_PACKAGES $DEB_PACKAGES" ;;
    test) PACKAGES="$BUILD_PACKAGES $DEB_PACKAGES $TEST_PACKAGES" ;;
    *) echo "usage: $0 [build|deb|test]" >&2; exit 2 ;;
esac

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# A machine that already has Node.js from elsewhere does not need Debian's (the engines
# check below still holds it to what the test clients need).
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo $missing)
if [ -n "$missing" ]; then
    echo "install-deps ($SET): apt-get install $missing"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

[ "$SET" = test ] || exit 0

# The npm packages, exactly as test/package-lock.json pins them. --engine-strict turns npm's
# EBADENGINE warning (easy to miss) into an error; the check after it says which package
# needs which Node.js.
if [ -f test/package.json ]; then
    if [ ! -f test/node_modules/.package-lock.json ] ||
        [ test/package-lock.json -nt test/node_modules/.package-lock.json ] ||
        [ test/package.json -nt test/node_modules/.package-lock.json ]; then
        echo "install-deps: npm ci (test clients, node $(node --version))"
        (cd test && npm ci --engine-strict --no-audit --no-fund --loglevel=warn)
        touch test/node_modules/.package-lock.json
    fi
    node scripts/check-node-engines.mjs test
fi
