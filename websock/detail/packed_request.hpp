// The upgrade request of a connection, kept compactly for as long as the connection lives.
//
// An HttpRequest costs about 900 bytes for a browser-like upgrade request (the struct, a
// headers vector with room to spare, one allocation per name or value past 15 characters),
// most of an idle connection's memory. Packed into one string it costs its own length plus
// about 50 bytes; Client::request() unpacks it on its first call. Internal.
#pragma once

#include <string>
#include <string_view>

#include "websock/http.hpp"

namespace websock::detail {

/// Method, target, version, headers and body of `request` in one string of exactly the size
/// it needs: each field its length (LEB128) and then its bytes. path and query are stored
/// only when they are not what the target gives (target up to '?', and after it).
/// peer_address is not stored: the connection knows it.
std::string pack_request(const HttpRequest& request);

/// The request pack_request() packed, with `peer_address`. Throws std::invalid_argument for
/// bytes pack_request() did not make.
HttpRequest unpack_request(std::string_view packed, const std::string& peer_address);

}  // namespace websock::detail
