// The version of websock: the only place it is written down. The Makefile reads the three
// numbers from here (the shared library's file name and SONAME, websock.pc, the CMake
// package). Semantic versioning: MAJOR changes when the API or the ABI breaks (and with it
// the SONAME, libwebsock.so.MAJOR), MINOR when something is added, PATCH for fixes.
// See CHANGELOG.md.
#pragma once

#include <string_view>

#include "websock/export.hpp"

/// Incremented when the API or the ABI breaks (the SONAME is libwebsock.so.MAJOR).
#define WEBSOCK_VERSION_MAJOR 0
/// Incremented when something is added in a compatible way.
#define WEBSOCK_VERSION_MINOR 1
/// Incremented for compatible fixes.
#define WEBSOCK_VERSION_PATCH 0

/// @cond WEBSOCK_INTERNAL
#define WEBSOCK_VERSION_STRINGIFY_(x) #x
#define WEBSOCK_VERSION_STRINGIFY(x) WEBSOCK_VERSION_STRINGIFY_(x)
/// @endcond

/// "MAJOR.MINOR.PATCH" of the headers a program was compiled with.
#define WEBSOCK_VERSION_STRING                                                             \
    WEBSOCK_VERSION_STRINGIFY(WEBSOCK_VERSION_MAJOR) "." WEBSOCK_VERSION_STRINGIFY(        \
        WEBSOCK_VERSION_MINOR) "." WEBSOCK_VERSION_STRINGIFY(WEBSOCK_VERSION_PATCH)

namespace websock {

/// "MAJOR.MINOR.PATCH" of the library the program runs with. It can differ from
/// WEBSOCK_VERSION_STRING (the headers it was compiled with) when libwebsock.so was upgraded
/// since: same MAJOR, same ABI.
WEBSOCK_API std::string_view version() noexcept;

}  // namespace websock
