// Close frame payloads (RFC 6455 section 5.5.1) and which status codes may travel in them
// (section 7.4).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "websock/export.hpp"
#include "websock/types.hpp"

namespace websock::codec {

/// May this code appear in a close frame on the wire? (Section 7.4.1 and 7.4.2:
/// 1000-1003, 1007-1011 and the later-registered 1012-1014 are defined; 1004, 1005, 1006,
/// 1015 and anything under 1000 must not be sent; 3000-4999 are for libraries and
/// applications; 1016-2999 are reserved for future RFCs and refused.)
constexpr bool is_valid_close_code(std::uint16_t code) noexcept {
    if (code >= 3000 && code <= 4999) return true;
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1014) return true;
    return false;
}

/// A parsed close frame payload: the status code and the UTF-8 reason.
struct ClosePayload {
    CloseCode code = CloseCode::NoStatus;  ///< NoStatus when the payload was empty
    std::string_view reason;               ///< points into the parsed payload
};

/// Why a close payload is invalid, and the code to fail the connection with.
struct ClosePayloadError {
    std::string_view reason;  ///< static text; the close code is always 1002 or 1007
    CloseCode code;           ///< ProtocolError (1002) or InvalidPayload (1007, a reason that is not UTF-8)
};

/// Parse a received close payload. Empty is valid (no status); 1 byte is a protocol error;
/// the code must be valid per section 7.4; the reason must be UTF-8 (1007 if not).
/// Returns true on success, otherwise fills `error`.
WEBSOCK_API bool parse_close_payload(std::string_view payload, ClosePayload& out, ClosePayloadError& error) noexcept;

/// The payload of a close frame: the code in network byte order, then the reason cut to
/// fit the 125-byte control-frame limit (on a UTF-8 boundary).
WEBSOCK_API std::string make_close_payload(CloseCode code, std::string_view reason);

}  // namespace websock::codec
