#include "websock/version.hpp"

namespace websock {

std::string_view version() noexcept { return WEBSOCK_VERSION_STRING; }

}  // namespace websock
