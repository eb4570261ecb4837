// An independent UTF-8 reference for the tests and the fuzzers (not a table: arithmetic).
#pragma once

#include <cstddef>
#include <cstdint>

namespace utf8_reference {

inline constexpr std::size_t npos = static_cast<std::size_t>(-1);

// ---- the reference --------------------------------------------------------------------
// Written from the rules, not from a table: decode the code point arithmetically; a
// sequence is valid when it is not overlong, not a surrogate (U+D800..U+DFFF) and at most
// U+10FFFF. A validator that fails fast must fail at the first byte after which no
// continuation could make the text valid, so for a partial sequence we ask whether any
// completion of it lands on a valid code point.

/// Can a sequence of total length `len` whose first bytes gave `prefix` (with `rem`
/// continuation bytes still to come) still become a valid code point?
inline bool extendable(std::uint32_t prefix, int rem, int len) {
    static constexpr std::uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    std::uint32_t lo = prefix << (6 * rem);
    std::uint32_t hi = lo + (1u << (6 * rem)) - 1;
    if (lo < kMin[len]) lo = kMin[len];
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi) return false;
    if (lo >= 0xD800 && hi <= 0xDFFF) return false;  // only surrogates left
    return true;
}

struct RefResult {
    bool valid;           ///< complete, valid UTF-8
    std::size_t fail_at;  ///< index of the first byte that makes it invalid; npos if none
};

inline RefResult check(const std::uint8_t* s, std::size_t n) {
    std::size_t i = 0;
    while (i < n) {
        const std::uint8_t b = s[i];
        if (b < 0x80) {
            ++i;
            continue;
        }
        int len;
        std::uint32_t cp;
        if ((b & 0xE0) == 0xC0) {
            len = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return {false, i};  // a continuation byte, or F8..FF
        }
        if (!extendable(cp, len - 1, len)) return {false, i};
        for (int k = 1; k < len; ++k) {
            if (i + k >= n) return {false, npos};  // truncated, but not (yet) wrong
            const std::uint8_t c = s[i + k];
            if ((c & 0xC0) != 0x80) return {false, i + k};
            cp = (cp << 6) | (c & 0x3F);
            if (!extendable(cp, len - 1 - k, len)) return {false, i + k};
        }
        i += len;
    }
    return {true, npos};
}

}  // namespace utf8_reference
