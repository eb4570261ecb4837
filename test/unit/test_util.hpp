// Small helpers shared by the unit tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace test_util {

// True in an ASan/TSan build, where the exhaustive loops are cut down to stay fast.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

/// A byte string from a list of byte values.
inline std::string bytes(std::initializer_list<int> values) {
    std::string out;
    out.reserve(values.size());
    for (int v : values) out.push_back(static_cast<char>(v));
    return out;
}

/// Hex dump, for failure messages.
inline std::string hex(std::string_view data, std::size_t max = 64) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < data.size() && i < max; ++i) {
        const auto b = static_cast<unsigned char>(data[i]);
        if (i) out.push_back(' ');
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    if (data.size() > max) out += " ...";
    return out;
}

/// Ways to cut an input of `n` bytes into consecutive chunks, each given as the list of
/// cut positions (strictly increasing, inside (0, n)): no cut, one cut at every position,
/// every byte on its own, and (for n <= pair_limit) every pair of cuts.
inline std::vector<std::vector<std::size_t>> all_splits(std::size_t n, std::size_t pair_limit = 24) {
    std::vector<std::vector<std::size_t>> splits;
    splits.push_back({});
    for (std::size_t i = 1; i < n; ++i) splits.push_back({i});
    if (n > 2) {
        std::vector<std::size_t> every;
        for (std::size_t i = 1; i < n; ++i) every.push_back(i);
        splits.push_back(every);
    }
    if (n <= pair_limit)
        for (std::size_t i = 1; i < n; ++i)
            for (std::size_t j = i + 1; j < n; ++j) splits.push_back({i, j});
    return splits;
}

/// The chunks of `data` for a list of cut positions.
inline std::vector<std::string> cut(std::string_view data, const std::vector<std::size_t>& cuts) {
    std::vector<std::string> chunks;
    std::size_t start = 0;
    for (std::size_t c : cuts) {
        chunks.emplace_back(data.substr(start, c - start));
        start = c;
    }
    chunks.emplace_back(data.substr(start));
    return chunks;
}

inline std::string describe(const std::vector<std::size_t>& cuts) {
    std::string out = "cuts at {";
    for (std::size_t i = 0; i < cuts.size(); ++i) {
        if (i) out += ',';
        if (i == 16) {
            out += "...";
            break;
        }
        out += std::to_string(cuts[i]);
    }
    return out + "}";
}

}  // namespace test_util
