#include "websock/codec/utf8.hpp"

#include <cstring>

namespace websock::codec {
namespace {

// Björn Höhrmann's UTF-8 DFA (http://bjoern.hoehrmann.de/utf-8/decoder/dfa/), validation
// only. It rejects overlong forms, surrogates (U+D800..U+DFFF) and code points past U+10FFFF
// at the first byte that rules them out. The first 256 entries map a byte to a class, the
// rest map (state + class) to the next state; 0 accepts, 12 rejects.
constexpr std::uint8_t kUtf8Dfa[] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,
    7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,
    8,8,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
    10,3,3,3,3,3,3,3,3,3,3,3,3,4,3,3, 11,6,6,6,5,8,8,8,8,8,8,8,8,8,8,8,
    0,12,24,36,60,96,84,12,12,12,48,72, 12,12,12,12,12,12,12,12,12,12,12,12,
    12, 0,12,12,12,12,12, 0,12, 0,12,12, 12,24,12,12,12,12,12,24,12,24,12,12,
    12,12,12,12,12,12,12,24,12,12,12,12, 12,24,12,12,12,12,12,12,12,24,12,12,
    12,12,12,12,12,12,12,36,12,36,12,12, 12,36,12,12,12,12,12,36,12,36,12,12,
    12,36,12,12,12,12,12,12,12,12,12,12,
};

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

}  // namespace

bool Utf8Validator::feed(const std::uint8_t* data, std::size_t size) noexcept {
    std::uint32_t state = state_;
    if (state == kReject) return false;
    std::size_t i = 0;
    while (i < size) {
        // ASCII fast path: between sequences, skip 8 ASCII bytes at a time.
        if (state == kAccept) {
            while (i + 8 <= size) {
                std::uint64_t word;
                std::memcpy(&word, data + i, 8);
                if ((word & kHighBits) != 0) break;
                i += 8;
            }
            if (i == size) break;
        }
        state = kUtf8Dfa[256 + state + kUtf8Dfa[data[i]]];
        ++i;
        if (state == kReject) {
            state_ = kReject;
            return false;
        }
    }
    state_ = static_cast<std::uint8_t>(state);
    return true;
}

bool is_valid_utf8(std::string_view text) noexcept {
    Utf8Validator validator;
    return validator.feed(text) && validator.complete();
}

}  // namespace websock::codec
