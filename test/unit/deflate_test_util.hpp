// Helpers shared by the permessage-deflate unit tests (test_deflate_negotiation.cpp,
// test_deflate.cpp, test_deflate_limits.cpp): options, agreements, and compressing or
// inflating one message with REQUIRE on the way.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>

#include "test/unit/test_util.hpp"
#include "websock/codec/deflate.hpp"

namespace deflate_test {

using namespace websock::codec;

inline constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

inline DeflateOptions enabled_options() {
    DeflateOptions o;
    o.enabled = true;
    return o;
}

/// Options that compress every message (the RFC examples are 5 bytes long).
inline DeflateOptions always_compress(int level = 6) {
    DeflateOptions o = enabled_options();
    o.min_compress_bytes = 0;
    o.compression_level = level;
    return o;
}

inline DeflateAgreement agreement(bool server_nct = false, bool client_nct = false, int server_bits = 15, int client_bits = 15) {
    DeflateAgreement a;
    a.server_no_context_takeover = server_nct;
    a.client_no_context_takeover = client_nct;
    a.server_max_window_bits = server_bits;
    a.client_max_window_bits = client_bits;
    return a;
}

inline std::string compressed(PerMessageDeflate& pmd, std::string_view message) {
    std::string out;
    REQUIRE(pmd.compress(message, out));
    return out;
}

/// Inflate a whole payload in one piece.
inline InflateStatus inflate(PerMessageDeflate& pmd, std::string_view payload, std::string& out,
                             std::size_t max_output = kUnlimited) {
    out.clear();
    return pmd.decompress(payload, true, out, max_output);
}

inline std::string inflated(PerMessageDeflate& pmd, std::string_view payload) {
    std::string out;
    const auto status = inflate(pmd, payload, out);
    INFO("payload: ", test_util::hex(payload));
    REQUIRE(status == InflateStatus::Ok);
    return out;
}

/// Text-like data with repeats at every distance up to ~20 KiB, so a compressor that ignores
/// its window would reach too far.
inline std::string repetitive(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    static const char* words[] = {"websocket ", "deflate ", "window ", "message ", "frame ", "the ", "of ", "and "};
    std::string s;
    s.reserve(n);
    while (s.size() < n) {
        if (s.size() > 64 && rng() % 4 == 0) {
            const std::size_t distance = 1 + rng() % std::min<std::size_t>(s.size(), 20000);
            const std::size_t length = 3 + rng() % 60;
            const std::size_t from = s.size() - distance;
            for (std::size_t i = 0; i < length && s.size() < n; ++i) s.push_back(s[from + i]);
        } else {
            for (const char* w = words[rng() % 8]; *w && s.size() < n; ++w) s.push_back(*w);
        }
    }
    return s;
}

}  // namespace deflate_test
