// Helpers shared by the libFuzzer targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace fuzz {

/// Stop with a message: libFuzzer saves the input as a crash artifact.
[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "FUZZ CHECK FAILED: %s\n", what);
    std::abort();
}

#define FUZZ_CHECK(cond)                                                          \
    do {                                                                          \
        if (!(cond)) ::fuzz::fail(#cond " (" __FILE__ ":" FUZZ_STR(__LINE__) ")"); \
    } while (0)
/// Like FUZZ_CHECK(a == b) for strings, printing both sides (escaped) on failure.
#define FUZZ_CHECK_EQ(a, b)                                                                  \
    do {                                                                                     \
        if (!((a) == (b))) {                                                                 \
            ::fuzz::print_escaped("left", (a));                                              \
            ::fuzz::print_escaped("right", (b));                                             \
            ::fuzz::fail(#a " == " #b " (" __FILE__ ":" FUZZ_STR(__LINE__) ")");              \
        }                                                                                    \
    } while (0)
#define FUZZ_STR(x) FUZZ_STR2(x)
#define FUZZ_STR2(x) #x

inline void print_escaped(const char* label, const std::string& s) {
    std::fprintf(stderr, "%s (%zu bytes): ", label, s.size());
    for (std::size_t i = 0; i < s.size() && i < 4000; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '\\') std::fputc(c, stderr);
        else std::fprintf(stderr, "\\x%02x", c);
    }
    std::fputc('\n', stderr);
}

/// Chunk sizes that cut `n` bytes into pieces, derived from `seed` (which comes from the
/// input, so the fuzzer explores the splits too). Seed 0 means byte by byte.
inline std::vector<std::size_t> chunk_sizes(std::size_t n, std::uint32_t seed) {
    std::vector<std::size_t> sizes;
    if (seed == 0) {
        sizes.assign(n, 1);
        return sizes;
    }
    std::uint32_t x = seed * 2654435761u + 1;
    const std::size_t max_chunk = 1 + (seed & 0x3F);  // small pieces cross every boundary
    std::size_t left = n;
    while (left > 0) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        std::size_t take = 1 + x % max_chunk;
        if ((x >> 24) == 0) take = left;  // now and then, everything left at once
        if (take > left) take = left;
        sizes.push_back(take);
        left -= take;
    }
    return sizes;
}

}  // namespace fuzz
