#include "websock/codec/close.hpp"

#include "websock/codec/frame.hpp"
#include "websock/codec/utf8.hpp"

namespace websock::codec {

bool parse_close_payload(std::string_view payload, ClosePayload& out, ClosePayloadError& error) noexcept {
    if (payload.empty()) {
        out = {CloseCode::NoStatus, {}};
        return true;
    }
    if (payload.size() == 1) {
        error = {"close payload of one byte", CloseCode::ProtocolError};
        return false;
    }
    const auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                 static_cast<std::uint8_t>(payload[1]));
    if (!is_valid_close_code(code)) {
        error = {"invalid close code", CloseCode::ProtocolError};
        return false;
    }
    const std::string_view reason = payload.substr(2);
    if (!is_valid_utf8(reason)) {
        error = {"close reason is not UTF-8", CloseCode::InvalidPayload};
        return false;
    }
    out = {static_cast<CloseCode>(code), reason};
    return true;
}

std::string make_close_payload(CloseCode code, std::string_view reason) {
    const auto value = static_cast<std::uint16_t>(code);
    if (value == static_cast<std::uint16_t>(CloseCode::NoStatus)) return {};
    std::size_t keep = std::min(reason.size(), kMaxControlPayload - 2);
    // Do not cut a UTF-8 sequence in half: back up over continuation bytes.
    if (keep < reason.size())
        while (keep > 0 && (static_cast<std::uint8_t>(reason[keep]) & 0xC0) == 0x80) --keep;
    std::string payload;
    payload.reserve(2 + keep);
    payload.push_back(static_cast<char>(value >> 8));
    payload.push_back(static_cast<char>(value & 0xFF));
    payload.append(reason.substr(0, keep));
    return payload;
}

}  // namespace websock::codec
