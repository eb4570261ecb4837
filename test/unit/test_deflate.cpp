// permessage-deflate (RFC 7692), the codec: the section 7.2.3 examples, round trips with and
// without context takeover, every level and window size, every split of small payloads, and
// decoding our output with zlib's own uncompress() as an independent check. The agreement is
// tested in test_deflate_negotiation.cpp, the inflate limit and corrupt input in
// test_deflate_limits.cpp.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "test/unit/deflate_test_util.hpp"
#include "test/unit/test_util.hpp"
#include "websock/codec/deflate.hpp"

using namespace websock::codec;
using namespace deflate_test;
using test_util::bytes;
using test_util::hex;

namespace {

std::string random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
    return s;
}

/// The independent decoder: wrap the raw DEFLATE data of consecutive messages (each payload
/// with 00 00 ff ff put back, as section 7.2.2 says) in a zlib header, a final empty block
/// and the Adler-32 of the plain text, and run zlib's one-shot uncompress() on it.
std::optional<std::string> zlib_uncompress(const std::vector<std::string>& payloads, std::size_t plain_size,
                                           std::string_view plain_for_adler) {
    std::string stream = bytes({0x78, 0x01});  // CM 8, 32 KiB window, FCHECK
    for (const auto& p : payloads) stream += p + bytes({0x00, 0x00, 0xFF, 0xFF});
    stream += bytes({0x03, 0x00});  // BFINAL=1, fixed Huffman, end of block
    const uLong adler = adler32(adler32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(plain_for_adler.data()),
                                static_cast<uInt>(plain_for_adler.size()));
    stream += bytes({int(adler >> 24) & 0xFF, int(adler >> 16) & 0xFF, int(adler >> 8) & 0xFF, int(adler) & 0xFF});
    std::string out(plain_size + 1, '\0');
    uLongf out_len = static_cast<uLongf>(out.size());
    const int rc = uncompress(reinterpret_cast<Bytef*>(out.data()), &out_len,
                              reinterpret_cast<const Bytef*>(stream.data()), static_cast<uLong>(stream.size()));
    if (rc != Z_OK) return std::nullopt;
    out.resize(out_len);
    return out;
}

/// Inflate consecutive payloads with a raw inflater whose window is exactly 2^bits, one
/// output byte per call, so that every match must be served from the window: a compressor
/// that reaches further back than it agreed to fails here. nullopt on any zlib error.
std::optional<std::string> inflate_within_window(const std::vector<std::string>& payloads, int bits) {
    z_stream s{};
    if (inflateInit2(&s, -bits) != Z_OK) return std::nullopt;
    std::string out;
    bool ok = true;
    for (const auto& p : payloads) {
        const std::string data = p + bytes({0x00, 0x00, 0xFF, 0xFF});
        s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
        s.avail_in = static_cast<uInt>(data.size());
        for (;;) {
            unsigned char byte;
            s.next_out = &byte;
            s.avail_out = 1;
            const int rc = ::inflate(&s, Z_SYNC_FLUSH);
            if (s.avail_out == 0) out.push_back(static_cast<char>(byte));
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                ok = false;
                break;
            }
            if (s.avail_in == 0 && s.avail_out == 1) break;
        }
        if (!ok) break;
    }
    inflateEnd(&s);
    if (!ok) return std::nullopt;
    return out;
}

}  // namespace

// ==== RFC 7692 section 7.2.3 =================================================================

TEST_CASE("deflate: RFC 7692 7.2.3.1, \"Hello\" compressed") {
    const std::string hello_payload = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
    for (auto role : {Role::Server, Role::Client}) {
        PerMessageDeflate sender(role, agreement(), always_compress());
        CHECK(hex(compressed(sender, "Hello")) == hex(hello_payload));
    }
    PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
    CHECK(inflated(receiver, hello_payload) == "Hello");
    // the fragmented form: 0x41 0x03 f2 48 cd, then 0x80 0x04 c9 c9 07 00
    std::string out;
    CHECK(receiver.decompress(bytes({0xf2, 0x48, 0xcd}), false, out, kUnlimited) == InflateStatus::Ok);
    CHECK(receiver.decompress(bytes({0xc9, 0xc9, 0x07, 0x00}), true, out, kUnlimited) == InflateStatus::Ok);
    CHECK(out == "Hello");
}

TEST_CASE("deflate: RFC 7692 7.2.3.2, sharing the LZ77 window (or not)") {
    const std::string first = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
    const std::string second = bytes({0xf2, 0x00, 0x11, 0x00, 0x00});
    SUBCASE("with context takeover the second \"Hello\" is a back-reference") {
        PerMessageDeflate sender(Role::Server, agreement(), always_compress());
        CHECK(hex(compressed(sender, "Hello")) == hex(first));
        CHECK(hex(compressed(sender, "Hello")) == hex(second));
        PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
        CHECK(inflated(receiver, first) == "Hello");
        CHECK(inflated(receiver, second) == "Hello");
    }
    SUBCASE("server_no_context_takeover: both messages compress the same") {
        PerMessageDeflate sender(Role::Server, agreement(true, false), always_compress());
        CHECK(hex(compressed(sender, "Hello")) == hex(first));
        CHECK(hex(compressed(sender, "Hello")) == hex(first));
        PerMessageDeflate receiver(Role::Client, agreement(true, false), always_compress());
        CHECK(inflated(receiver, first) == "Hello");
        CHECK(inflated(receiver, first) == "Hello");
    }
    SUBCASE("client_no_context_takeover, the client's side") {
        PerMessageDeflate sender(Role::Client, agreement(false, true), always_compress());
        CHECK(hex(compressed(sender, "Hello")) == hex(first));
        CHECK(hex(compressed(sender, "Hello")) == hex(first));
        // ...while the server, keeping its context, still shares its window
        PerMessageDeflate server(Role::Server, agreement(false, true), always_compress());
        CHECK(hex(compressed(server, "Hello")) == hex(first));
        CHECK(hex(compressed(server, "Hello")) == hex(second));
    }
    SUBCASE("a receiver that resets (peer's no_context_takeover) cannot resolve the back-reference") {
        PerMessageDeflate receiver(Role::Client, agreement(true, false), always_compress());
        CHECK(inflated(receiver, first) == "Hello");
        std::string out;
        CHECK(inflate(receiver, second, out) == InflateStatus::Corrupt);
    }
}

TEST_CASE("deflate: RFC 7692 7.2.3.3-7.2.3.6, other blocks a sender may use") {
    PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
    SUBCASE("7.2.3.3 a block with no compression") {
        CHECK(inflated(receiver, bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00})) == "Hello");
    }
    SUBCASE("7.2.3.4 a block with BFINAL set; the window survives it") {
        CHECK(inflated(receiver, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00})) == "Hello");
        // the next message refers back into the first one (7.2.3.2's second payload)
        CHECK(inflated(receiver, bytes({0xf2, 0x00, 0x11, 0x00, 0x00})) == "Hello");
        CHECK(inflated(receiver, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
        // a BFINAL block without the empty block after it, ending the payload: accepted too
        CHECK(inflated(receiver, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
        // blocks after a BFINAL block in the same message, referring back across it
        CHECK(inflated(receiver, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x00, 0x11, 0x00, 0x00})) ==
              "HelloHello");
    }
    SUBCASE("7.2.3.5 two DEFLATE blocks in one message") {
        CHECK(inflated(receiver, bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
                                        0x00})) == "Hello");
    }
    SUBCASE("7.2.3.6 an empty fragment ends the message") {
        std::string out;
        CHECK(receiver.decompress(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff}), false,
                                  out, kUnlimited) == InflateStatus::Ok);
        CHECK(receiver.decompress(bytes({0x00}), true, out, kUnlimited) == InflateStatus::Ok);
        CHECK(out == "Hello");
        CHECK(inflated(receiver, bytes({0x00})) == "");
        // and the stream goes on
        CHECK(inflated(receiver, bytes({0xf2, 0x00, 0x11, 0x00, 0x00})) == "Hello");
    }
    SUBCASE("an empty message compresses to the empty block, and back") {
        PerMessageDeflate sender(Role::Server, agreement(), always_compress());
        CHECK(hex(compressed(sender, "")) == "00");
        CHECK(hex(compressed(sender, "Hello")) == hex(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})));
        CHECK(hex(compressed(sender, "")) == "00");  // after a flush zlib would give nothing
        const std::string third = compressed(sender, "Hello");
        CHECK(inflated(receiver, bytes({0x00})) == "");
        CHECK(inflated(receiver, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
        CHECK(inflated(receiver, bytes({0x00})) == "");
        CHECK(inflated(receiver, third) == "Hello");
    }
    SUBCASE("a compressed message with an empty payload is the empty message") {
        CHECK(inflated(receiver, "") == "");
        std::string out = "keep";
        CHECK(receiver.decompress("", false, out, kUnlimited) == InflateStatus::Ok);
        CHECK(receiver.decompress("", true, out, kUnlimited) == InflateStatus::Ok);
        CHECK(out == "keep");
        CHECK(inflated(receiver, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
    }
}

// ==== compress / decompress ==================================================================

TEST_CASE("deflate: min_compress_bytes") {
    DeflateOptions o = enabled_options();
    o.min_compress_bytes = 10;
    PerMessageDeflate pmd(Role::Server, agreement(), o);
    std::string out = "untouched";
    CHECK_FALSE(pmd.compress("123456789", out));
    CHECK(out == "untouched");
    CHECK(pmd.compress("1234567890", out));
    CHECK(out.size() > std::string("untouched").size());
    CHECK(out.compare(0, 9, "untouched") == 0);  // appended
    PerMessageDeflate receiver(Role::Client, agreement(), o);
    CHECK(inflated(receiver, out.substr(9)) == "1234567890");
    CHECK(DeflateOptions{}.min_compress_bytes == 64);
}

TEST_CASE("deflate: round trips, with and without context takeover, both directions") {
    const std::size_t sizes[] = {0, 1, 100, 64 * 1024, 1024 * 1024};
    std::vector<std::string> messages;
    std::uint32_t seed = 1;
    for (std::size_t n : sizes) {
        messages.push_back(random_bytes(n, seed++));
        messages.push_back(repetitive(n, seed++));
    }
    // the same messages again: with context takeover the second round refers to the first
    const std::size_t first_round = messages.size();
    for (std::size_t i = 0; i < first_round; ++i) messages.push_back(messages[i]);

    for (int mask = 0; mask < 4; ++mask) {
        const auto a = agreement(mask & 1, mask & 2);
        for (auto sender_role : {Role::Server, Role::Client}) {
            const auto receiver_role = sender_role == Role::Server ? Role::Client : Role::Server;
            const bool sender_resets = sender_role == Role::Server ? a.server_no_context_takeover
                                                                   : a.client_no_context_takeover;
            CAPTURE(mask);
            CAPTURE(sender_role == Role::Server);
            PerMessageDeflate sender(sender_role, a, always_compress());
            PerMessageDeflate receiver(receiver_role, a, always_compress());
            std::vector<std::string> payloads;
            std::string all_plain;
            std::string out;
            for (std::size_t i = 0; i < messages.size(); ++i) {
                const auto& m = messages[i];
                CAPTURE(i);
                CAPTURE(m.size());
                const std::string payload = compressed(sender, m);
                if (i % 2 == 1 && m.size() >= 1024) CHECK(payload.size() < m.size() / 2);  // repetitive data shrinks
                if (i % 2 == 0 && m.size() >= 1024) CHECK(payload.size() < m.size() + m.size() / 100 + 64);
                REQUIRE(inflate(receiver, payload, out) == InflateStatus::Ok);
                REQUIRE(out.size() == m.size());
                CHECK(out == m);
                // independent decoder: zlib's uncompress(), message by message when the
                // sender resets, else the whole conversation as one stream
                if (sender_resets) {
                    const auto plain = zlib_uncompress({payload}, m.size(), m);
                    REQUIRE(plain);
                    CHECK(*plain == m);
                } else {
                    payloads.push_back(payload);
                    all_plain += m;
                }
            }
            if (!sender_resets) {
                const auto plain = zlib_uncompress(payloads, all_plain.size(), all_plain);
                REQUIRE(plain);
                CHECK(*plain == all_plain);
            }
        }
    }
}

TEST_CASE("deflate: compression levels 0..9 round trip and stay decodable") {
    const std::string m = repetitive(50000, 77);
    for (int level = 0; level <= 9; ++level) {
        CAPTURE(level);
        PerMessageDeflate sender(Role::Server, agreement(), always_compress(level));
        PerMessageDeflate receiver(Role::Client, agreement(), always_compress(level));
        std::vector<std::string> payloads;
        for (int i = 0; i < 3; ++i) {
            payloads.push_back(compressed(sender, m));
            CHECK(inflated(receiver, payloads.back()) == m);
        }
        const auto plain = zlib_uncompress(payloads, 3 * m.size(), m + m + m);
        REQUIRE(plain);
        CHECK(*plain == m + m + m);
    }
}

TEST_CASE("deflate: window bits 8..15 on both sides; matches stay inside the agreed window") {
    // repeats at many distances, some far beyond a small window
    std::string m = repetitive(24 * 1024, 5);
    const std::string block = random_bytes(3000, 6);
    m += block + random_bytes(100, 7) + block;
    const int bits_max = 15;
    for (int server_bits = 8; server_bits <= bits_max; ++server_bits)
        for (int client_bits = 8; client_bits <= bits_max; ++client_bits) {
            CAPTURE(server_bits);
            CAPTURE(client_bits);
            const auto a = agreement(false, false, server_bits, client_bits);
            PerMessageDeflate server(Role::Server, a, always_compress());
            PerMessageDeflate client(Role::Client, a, always_compress());
            // two messages each way: the second may refer into the first
            std::vector<std::string> to_client, to_server;
            for (int i = 0; i < 2; ++i) {
                to_client.push_back(compressed(server, m));
                to_server.push_back(compressed(client, m));
                CHECK(inflated(client, to_client.back()) == m);
                CHECK(inflated(server, to_server.back()) == m);
            }
            // a strict decoder with exactly the agreed window (8 included: zlib compresses
            // with 9, whose matches never reach past 250 bytes)
            const auto strict_client = inflate_within_window(to_client, server_bits);
            REQUIRE(strict_client);
            CHECK(*strict_client == m + m);
            const auto strict_server = inflate_within_window(to_server, client_bits);
            REQUIRE(strict_server);
            CHECK(*strict_server == m + m);
        }
    // the strict decoder does catch a stream that needs a larger window
    PerMessageDeflate wide(Role::Server, agreement(), always_compress());
    std::vector<std::string> wide_payloads{compressed(wide, m)};
    CHECK_FALSE(inflate_within_window(wide_payloads, 9).has_value());
    REQUIRE(inflate_within_window(wide_payloads, 15).has_value());
}

TEST_CASE("deflate: decompression fed in every split gives the same message") {
    // small payloads: RFC examples and our own output for a few messages
    PerMessageDeflate sender(Role::Server, agreement(), always_compress());
    std::vector<std::pair<std::string, std::string>> cases = {
        {bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), "Hello"},
        {bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}), "Hello"},
        {bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), "Hello"},
        {bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}), "Hello"},
        {bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x00, 0x11, 0x00, 0x00}), "HelloHello"},
        {bytes({0x00}), ""},
    };
    for (std::string m : {"a", "abcabcabcabcabcabcabcabcabc", "The quick brown fox jumps over the lazy dog, the dog"}) {
        PerMessageDeflate fresh(Role::Server, agreement(), always_compress());
        cases.emplace_back(compressed(fresh, m), m);
    }
    PerMessageDeflate dyn(Role::Server, agreement(), always_compress(9));
    const std::string longer = repetitive(300, 3);
    cases.emplace_back(compressed(dyn, longer), longer);  // a dynamic-Huffman block

    std::size_t runs = 0;
    for (const auto& c : cases) {
        const std::string& payload = c.first;
        const std::string& expected = c.second;
        const std::size_t pair_limit = test_util::kSanitized ? 16 : 40;
        for (const auto& cuts : test_util::all_splits(payload.size(), pair_limit)) {
            CAPTURE(hex(payload));
            CAPTURE(test_util::describe(cuts));
            // a fresh receiver, and one that first took a message (window and state carried)
            for (int warm = 0; warm < 2; ++warm) {
                PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
                if (warm) REQUIRE(inflated(receiver, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
                std::string out;
                const auto chunks = test_util::cut(payload, cuts);
                InflateStatus status = InflateStatus::Ok;
                for (std::size_t i = 0; i < chunks.size() && status == InflateStatus::Ok; ++i)
                    status = receiver.decompress(chunks[i], i + 1 == chunks.size(), out, kUnlimited);
                REQUIRE(status == InflateStatus::Ok);
                CHECK(out == expected);
                // the final piece may also be an empty one after all the data
                PerMessageDeflate again(Role::Client, agreement(), always_compress());
                out.clear();
                for (const auto& chunk : chunks) REQUIRE(again.decompress(chunk, false, out, kUnlimited) == InflateStatus::Ok);
                REQUIRE(again.decompress("", true, out, kUnlimited) == InflateStatus::Ok);
                CHECK(out == expected);
                ++runs;
            }
        }
    }
    MESSAGE("split runs: ", runs);
}

TEST_CASE("deflate: a compressed message sent as fragments, inflated piece by piece") {
    const std::string m = repetitive(200 * 1024, 9);
    PerMessageDeflate sender(Role::Client, agreement(), always_compress());
    PerMessageDeflate receiver(Role::Server, agreement(), always_compress());
    for (std::size_t fragment : {1u, 7u, 1000u, 65536u}) {
        CAPTURE(fragment);
        const std::string payload = compressed(sender, m);
        std::string out;
        for (std::size_t at = 0; at < payload.size(); at += fragment) {
            const bool last = at + fragment >= payload.size();
            REQUIRE(receiver.decompress(std::string_view(payload).substr(at, fragment), last, out, kUnlimited) ==
                    InflateStatus::Ok);
            if (!last) CHECK(receiver.message_inflated_bytes() == out.size());
        }
        CHECK(receiver.message_inflated_bytes() == 0);
        CHECK(out == m);
    }
}
