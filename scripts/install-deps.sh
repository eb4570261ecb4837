#!/bin/sh
# Installs what building and testing websock needs, and only what is missing:
# Debian packages with apt-get, and the npm packages of the test clients.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="g++ clang make pkg-config libssl-dev openssl libfmt-dev doctest-dev zlib1g-dev
nlohmann-json3-dev libhttp-parser-dev libwebsocketpp-dev libboost-dev libboost-system-dev
nodejs npm libclang-rt-dev procps chromium buildah podman debootstrap runc
libhiredis-dev redis-server prometheus-cpp-dev python3-itsdangerous libinih-dev"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# A machine that already has Node.js from elsewhere does not need Debian's.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo $missing)
if [ -n "$missing" ]; then
    echo "install-deps: apt-get install $missing"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

if [ -f test/package.json ]; then
    if [ ! -d test/node_modules ] || [ test/package.json -nt test/node_modules ]; then
        echo "install-deps: npm install (test clients)"
        (cd test && npm install --no-audit --no-fund --loglevel=error)
        touch test/node_modules
    fi
fi
