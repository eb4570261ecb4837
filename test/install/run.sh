#!/bin/sh
# The consumer test of `make install` (test/install/tests.mk runs it from the repository
# root, after building the release library and programs):
#
#  1. make install PREFIX=<tmp>/prefix: the files, the SONAME and its links, the exported
#     symbols (no websock::detail, nothing foreign), the headers (check-headers.sh);
#  2. consumer.cpp built and run against that prefix four ways: g++ with pkg-config (shared,
#     rpath), g++ with `pkg-config --static` and libwebsock.a, CMake find_package (shared),
#     and CMake with websock_USE_STATIC_LIBS; a find_package asking for the next MAJOR fails;
#     README.md's "server in a screenful" builds with the README's pkg-config line;
#  3. make install PREFIX=/usr LIBDIR=/usr/lib/<multiarch> DESTDIR=<tmp>/stage, as debian/rules
#     runs it: the files under the multiarch LIBDIR, a websock.pc relative to ${prefix};
#  4. make uninstall leaves no file behind in either tree.
#
# Environment: MAKE, CXX, WEBSOCK_VERSION (MAJOR.MINOR.PATCH, from websock/install.mk).
# Argument: the scratch directory (emptied first).
set -eu
work=$1
MAKE=${MAKE:-make}
CXX=${CXX:-g++}
version=$WEBSOCK_VERSION
major=${version%%.*}
minor_patch=${version#*.}
minor=${minor_patch%%.*}
source_dir=$(pwd)

fail() { echo "test-install: FAIL: $*" >&2; exit 1; }
step() { echo "test-install: $*"; }
# cmake's own make must not see this make's flags and variables.
without_make_env() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES "$@"; }
# A program must run to success within a bound (the consumer has 10 s deadlines inside).
run_consumer() {
    timeout 60 "$1" || fail "$1 exited with $?"
}
needs_shared_websock() {
    readelf -d "$1" | grep -q "NEEDED.*\[libwebsock.so.$major\]" || fail "$1 does not load libwebsock.so.$major"
}
needs_no_shared_websock() {
    if readelf -d "$1" | grep -q "NEEDED.*libwebsock"; then fail "$1 loads libwebsock.so, expected it linked in"; fi
}

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
stage=$work/stage

# ---- 1. install into a prefix ------------------------------------------------------------
step "make install PREFIX=$prefix"
$MAKE --no-print-directory install PREFIX="$prefix" LDCONFIG=true > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "make install"; }
lib=$prefix/lib
for file in "$lib/libwebsock.so.$version" "$lib/libwebsock.a" "$lib/pkgconfig/websock.pc" \
            "$lib/cmake/websock/websockConfig.cmake" "$lib/cmake/websock/websockConfigVersion.cmake" \
            "$prefix/include/websock/websock.hpp" "$prefix/include/websock/version.hpp" \
            "$prefix/bin/websock-echo" "$prefix/bin/websock-client" "$prefix/bin/websock-hub"; do
    [ -f "$file" ] || fail "$file was not installed"
done
[ "$(readlink "$lib/libwebsock.so.$major")" = "libwebsock.so.$version" ] || fail "libwebsock.so.$major -> $(readlink "$lib/libwebsock.so.$major")"
[ "$(readlink "$lib/libwebsock.so")" = "libwebsock.so.$major" ] || fail "libwebsock.so -> $(readlink "$lib/libwebsock.so")"
soname=$(readelf -d "$lib/libwebsock.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libwebsock.so.$major" ] || fail "SONAME is '$soname', expected libwebsock.so.$major"
for program in websock-echo websock-client websock-hub; do
    [ -x "$prefix/bin/$program" ] || fail "$program is not executable"
done

step "exported symbols"
nm -D --defined-only -C "$lib/libwebsock.so.$version" | cut -d' ' -f3- > "$work/exports.txt"
if grep -E 'websock::(codec::)?detail::' "$work/exports.txt"; then fail "internal (detail::) symbols are exported (above)"; fi
if grep -v -e 'websock::' -e 'std::' -e '__gnu_cxx::' "$work/exports.txt"; then fail "symbols from outside websock are exported (above)"; fi
for symbol in 'websock::version()' 'websock::WebSocketServer::serve_forever()' \
              'websock::WebSocketClient::connect(std::basic_string_view' 'websock::codec::is_valid_utf8(' \
              'typeinfo for websock::ExtensionFactory'; do
    grep -q -F "$symbol" "$work/exports.txt" || fail "$symbol is not exported"
done
echo "test-install: $(grep -c 'websock::' "$work/exports.txt") websock symbols exported, none internal"

step "installed headers"
CXX=$CXX "$source_dir/test/install/check-headers.sh" "$prefix/include"

# ---- 2. build and run a consumer four ways -------------------------------------------------
export PKG_CONFIG_PATH="$lib/pkgconfig"
[ "$(pkg-config --modversion websock)" = "$version" ] || fail "pkg-config --modversion websock: $(pkg-config --modversion websock)"

step "g++ \$(pkg-config --cflags --libs websock)"
# shellcheck disable=SC2046  # word splitting of pkg-config's output is the point
$CXX -o "$work/consumer-pkgconfig" test/install/consumer.cpp $(pkg-config --cflags --libs websock) \
    -Wl,-rpath,"$(pkg-config --variable=libdir websock)"
needs_shared_websock "$work/consumer-pkgconfig"
ldd "$work/consumer-pkgconfig" | grep -q -F "$lib/libwebsock.so.$major" || fail "consumer-pkgconfig does not load the installed library"
run_consumer "$work/consumer-pkgconfig"

step "the README's server in a screenful, built as the README says"
sed -n '/^## A server in a screenful/,/^## /p' README.md | sed -n '/^```cpp$/,/^```$/p' | sed '1d;$d' > "$work/readme_server.cpp"
grep -q serve_forever "$work/readme_server.cpp" || fail "no server program found in README.md's \"A server in a screenful\""
# shellcheck disable=SC2046
$CXX -o "$work/readme-server" "$work/readme_server.cpp" $(pkg-config --cflags --libs websock) || fail "README.md's server does not build"

step "g++ with libwebsock.a and \$(pkg-config --static --libs websock)"
static_libs=$(pkg-config --static --libs websock | sed 's/-lwebsock\( \|$\)/-l:libwebsock.a\1/')
# shellcheck disable=SC2046,SC2086
$CXX -o "$work/consumer-static" test/install/consumer.cpp $(pkg-config --cflags websock) $static_libs
needs_no_shared_websock "$work/consumer-static"
run_consumer "$work/consumer-static"

step "CMake find_package(websock $major.$minor CONFIG REQUIRED), shared"
without_make_env cmake -S test/install -B "$work/cmake-shared" -DCMAKE_PREFIX_PATH="$prefix" \
    -DWEBSOCK_WANTED_VERSION="$major.$minor" > "$work/cmake-shared.log" 2>&1 || { cat "$work/cmake-shared.log"; fail "cmake configure (shared)"; }
without_make_env cmake --build "$work/cmake-shared" >> "$work/cmake-shared.log" 2>&1 || { cat "$work/cmake-shared.log"; fail "cmake build (shared)"; }
needs_shared_websock "$work/cmake-shared/consumer"
run_consumer "$work/cmake-shared/consumer"

step "CMake with websock_USE_STATIC_LIBS=ON"
without_make_env cmake -S test/install -B "$work/cmake-static" -DCMAKE_PREFIX_PATH="$prefix" \
    -Dwebsock_USE_STATIC_LIBS=ON > "$work/cmake-static.log" 2>&1 || { cat "$work/cmake-static.log"; fail "cmake configure (static)"; }
without_make_env cmake --build "$work/cmake-static" >> "$work/cmake-static.log" 2>&1 || { cat "$work/cmake-static.log"; fail "cmake build (static)"; }
needs_no_shared_websock "$work/cmake-static/consumer"
run_consumer "$work/cmake-static/consumer"

step "CMake find_package(websock $((major + 1)).0) must refuse $version"
if without_make_env cmake -S test/install -B "$work/cmake-next-major" -DCMAKE_PREFIX_PATH="$prefix" \
    -DWEBSOCK_WANTED_VERSION="$((major + 1)).0" > "$work/cmake-next-major.log" 2>&1; then
    fail "find_package(websock $((major + 1)).0) accepted $version"
fi
grep -q -F "websockConfig.cmake, version: $version" "$work/cmake-next-major.log" || { cat "$work/cmake-next-major.log"; fail "the refusal did not name $version"; }

step "make uninstall PREFIX=$prefix"
$MAKE --no-print-directory uninstall PREFIX="$prefix" LDCONFIG=true > "$work/uninstall.log" 2>&1 || { cat "$work/uninstall.log"; fail "make uninstall"; }
left=$(find "$prefix" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"

# ---- 3. a staged Debian-style install ------------------------------------------------------
multiarch=$(gcc -print-multiarch)
step "make install PREFIX=/usr LIBDIR=/usr/lib/$multiarch DESTDIR=$stage"
$MAKE --no-print-directory install PREFIX=/usr LIBDIR="/usr/lib/$multiarch" DESTDIR="$stage" > "$work/install-stage.log" 2>&1 || { cat "$work/install-stage.log"; fail "make install DESTDIR"; }
for file in "usr/lib/$multiarch/libwebsock.so.$version" "usr/lib/$multiarch/libwebsock.a" \
            "usr/lib/$multiarch/pkgconfig/websock.pc" "usr/lib/$multiarch/cmake/websock/websockConfig.cmake" \
            "usr/include/websock/websock.hpp" "usr/bin/websock-hub"; do
    [ -f "$stage/$file" ] || fail "$file is not in the staged tree"
done
grep -q -x "libdir=\${prefix}/lib/$multiarch" "$stage/usr/lib/$multiarch/pkgconfig/websock.pc" || fail "websock.pc libdir: $(grep libdir= "$stage/usr/lib/$multiarch/pkgconfig/websock.pc")"
grep -q -x "prefix=/usr" "$stage/usr/lib/$multiarch/pkgconfig/websock.pc" || fail "websock.pc prefix is not /usr"
$MAKE --no-print-directory uninstall PREFIX=/usr LIBDIR="/usr/lib/$multiarch" DESTDIR="$stage" > "$work/uninstall-stage.log" 2>&1 || { cat "$work/uninstall-stage.log"; fail "make uninstall DESTDIR"; }
left=$(find "$stage" ! -type d)
[ -z "$left" ] || fail "make uninstall DESTDIR left: $left"

echo "test-install: ok (install, symbols, headers, pkg-config, static, CMake shared and static, version check, uninstall, staged /usr)"
