// An incremental UTF-8 validator (RFC 3629), as RFC 6455 section 8.1 asks of text messages:
// fed chunk by chunk, it fails on the first byte that cannot start or continue a valid
// sequence, so a bad message is refused without waiting for its end (Autobahn 6.x "fail fast").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "websock/export.hpp"

namespace websock::codec {

/// Incremental UTF-8 validation (RFC 3629, as RFC 6455 requires of text): a message may be
/// checked piece by piece as its frames arrive, a sequence split across pieces included.
class WEBSOCK_API Utf8Validator {
public:
    /// Feed the next chunk. Returns false as soon as a byte makes the text invalid;
    /// after that the validator stays failed until reset().
    bool feed(const std::uint8_t* data, std::size_t size) noexcept;
    /// The same, for a string_view.
    bool feed(std::string_view text) noexcept {
        return feed(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    }
    /// True when everything fed so far is complete, valid UTF-8 (no sequence cut off).
    bool complete() const noexcept { return state_ == kAccept; }
    /// True once a byte made the text invalid.
    bool failed() const noexcept { return state_ == kReject; }
    /// Start again, for the next message.
    void reset() noexcept { state_ = kAccept; }

private:
    static constexpr std::uint8_t kAccept = 0;
    static constexpr std::uint8_t kReject = 12;
    std::uint8_t state_ = kAccept;
};

/// One-shot check of a whole string.
WEBSOCK_API bool is_valid_utf8(std::string_view text) noexcept;

}  // namespace websock::codec
