// The frame codec: FrameDecoder, encode_frame_header, append_frame, apply_mask.
#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "test/unit/test_util.hpp"
#include "websock/codec/frame.hpp"

using namespace websock;
using namespace websock::codec;
using test_util::bytes;
using test_util::hex;

namespace {

struct DecodedFrame {
    FrameHeader header;
    std::string payload;
    bool ended = false;
};

/// Records what the decoder reports and checks the callback order on the way.
struct Recorder {
    std::vector<DecodedFrame> frames;
    std::string violations;  // empty when the callbacks came in a legal order
    bool stop_every_time = false;

    bool on_frame_header(const FrameHeader& h) {
        if (!frames.empty() && !frames.back().ended) violations += "header before previous end;";
        frames.push_back({h, {}, false});
        return !stop_every_time;
    }
    bool on_frame_payload(std::uint8_t* data, std::size_t n) {
        if (frames.empty() || frames.back().ended) violations += "payload outside a frame;";
        else {
            if (n == 0) violations += "empty payload chunk;";
            frames.back().payload.append(reinterpret_cast<const char*>(data), n);
            if (frames.back().payload.size() > frames.back().header.payload_length) violations += "payload too long;";
        }
        return !stop_every_time;
    }
    bool on_frame_end(const FrameHeader& h) {
        if (frames.empty() || frames.back().ended) violations += "end outside a frame;";
        else {
            auto& f = frames.back();
            if (f.payload.size() != f.header.payload_length) violations += "end before whole payload;";
            if (h.opcode != f.header.opcode || h.payload_length != f.header.payload_length || h.fin != f.header.fin)
                violations += "end header differs;";
            f.ended = true;
        }
        return !stop_every_time;
    }
};

struct DecodeResult {
    std::vector<DecodedFrame> frames;
    bool failed = false;
    CloseCode code = CloseCode::Normal;
    std::string violations;
    bool at_boundary = false;
};

/// A one-line description of everything the decoder reported; equal strings mean equal events.
std::string summary(const DecodeResult& r) {
    std::string s;
    for (const auto& f : r.frames) {
        const auto& h = f.header;
        s += "fin=" + std::to_string(h.fin) + " rsv=" + std::to_string(h.rsv) +
             " op=" + std::to_string(static_cast<int>(h.opcode)) + " masked=" + std::to_string(h.masked);
        if (h.masked) s += " mask=" + hex({reinterpret_cast<const char*>(h.mask.data()), 4});
        s += " len=" + std::to_string(h.payload_length) + " payload[" + std::to_string(f.payload.size()) +
             "]=" + hex(f.payload, 24);
        // a cheap fingerprint of the whole payload, so big payloads compare fully
        std::uint64_t fnv = 1469598103934665603ull;
        for (unsigned char c : f.payload) fnv = (fnv ^ c) * 1099511628211ull;
        s += " fnv=" + std::to_string(fnv) + (f.ended ? " end" : " open") + "; ";
    }
    if (r.failed) s += "FAILED " + std::to_string(static_cast<int>(r.code));
    if (!r.violations.empty()) s += " VIOLATIONS " + r.violations;
    return s;
}

/// Feed `input` to a fresh decoder, cut at `cuts`. If `stop` the handler asks to stop at
/// every callback and the driver resumes with the rest.
DecodeResult decode(std::string_view input, const std::vector<std::size_t>& cuts, FrameDecoder::Options options,
                    bool stop = false) {
    std::string buffer(input);  // the decoder unmasks in place
    auto* data = reinterpret_cast<std::uint8_t*>(buffer.data());
    FrameDecoder decoder(options);
    Recorder rec;
    rec.stop_every_time = stop;
    DecodeResult out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= cuts.size() && !out.failed; ++i) {
        const std::size_t end = i < cuts.size() ? cuts[i] : buffer.size();
        std::size_t pos = start;
        for (int guard = 0; guard < 1'000'000; ++guard) {
            auto res = decoder.feed(data + pos, end - pos, rec);
            pos += res.consumed;
            if (res.failed) {
                out.failed = true;
                break;
            }
            if (!res.stopped) {
                if (pos != end) rec.violations += "not everything consumed;";
                break;
            }
            if (!stop) rec.violations += "stopped without being asked;";
        }
        start = end;
    }
    if (out.failed) {
        out.code = decoder.error().code;
        if (decoder.error().reason.empty()) rec.violations += "error without a reason;";
        // once failed, it stays failed
        std::uint8_t more[4] = {0x81, 0x80, 0, 0};
        auto again = decoder.feed(more, sizeof more, rec);
        if (!again.failed || again.consumed != 0) rec.violations += "decoder recovered after failure;";
    }
    out.at_boundary = decoder.at_frame_boundary();
    out.frames = std::move(rec.frames);
    out.violations = std::move(rec.violations);
    return out;
}

DecodeResult decode_whole(std::string_view input, Role role, std::uint64_t max_frame = 16u << 20,
                          std::uint8_t allowed_rsv = 0) {
    return decode(input, {}, {role, allowed_rsv, max_frame});
}

bool same_events(const DecodeResult& a, const DecodeResult& b) {
    if (a.failed != b.failed || a.code != b.code || a.violations != b.violations) return false;
    if (a.frames.size() != b.frames.size()) return false;
    for (std::size_t i = 0; i < a.frames.size(); ++i) {
        const auto& x = a.frames[i];
        const auto& y = b.frames[i];
        if (x.ended != y.ended || x.payload != y.payload || x.header.fin != y.header.fin ||
            x.header.rsv != y.header.rsv || x.header.opcode != y.header.opcode || x.header.masked != y.header.masked ||
            x.header.mask != y.header.mask || x.header.payload_length != y.header.payload_length)
            return false;
    }
    return true;
}

/// Decode every split of `input` (and with a handler that stops at every callback) and
/// check each gives the same events as the unsplit input. Returns the unsplit result.
DecodeResult check_all_splits(std::string_view input, FrameDecoder::Options options) {
    const DecodeResult whole = decode(input, {}, options);
    const std::string expected = summary(whole);
    CHECK(whole.violations == "");
    bool ok = true;
    for (const auto& cuts : test_util::all_splits(input.size())) {
        // Under a sanitizer, a big input is cut at every point of its header and its last
        // bytes but only at every 61st point in the middle of the payload, to save time.
        if (test_util::kSanitized && input.size() > 4096 && cuts.size() == 1 && cuts[0] > 64 &&
            cuts[0] < input.size() - 64 && cuts[0] % 61 != 0)
            continue;
        const DecodeResult split = decode(input, cuts, options);
        if (!same_events(split, whole)) {
            INFO("split: ", test_util::describe(cuts));
            CHECK(summary(split) == expected);
            ok = false;
            break;
        }
    }
    CHECK(ok);
    // a handler that asks to stop at every callback, resumed each time
    CHECK(summary(decode(input, {}, options, true)) == expected);
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < input.size() && input.size() < 4096; ++i) every.push_back(i);
    CHECK(summary(decode(input, every, options, true)) == expected);
    return whole;
}

std::string hello_unmasked() { return bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}); }
std::string hello_masked() { return bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}); }

std::string binary_payload(std::size_t n) {
    std::string p(n, '\0');
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>((i * 7 + (i >> 8)) & 0xFF);
    return p;
}

FrameDecoder::Options client_opts() { return {Role::Client, 0, 16u << 20}; }
FrameDecoder::Options server_opts() { return {Role::Server, 0, 16u << 20}; }

/// A 2-byte header plus `extra` (extended length, mask) with the given first and second bytes.
std::string header(int b0, int b1, std::initializer_list<int> extra = {}) {
    std::string h = bytes({b0, b1});
    h += bytes(extra);
    return h;
}

}  // namespace

TEST_CASE("frame: RFC 6455 section 5.7 examples") {
    SUBCASE("single-frame unmasked text") {
        auto r = check_all_splits(hello_unmasked(), client_opts());
        REQUIRE(r.frames.size() == 1);
        CHECK_FALSE(r.failed);
        CHECK(r.frames[0].header.fin);
        CHECK(r.frames[0].header.opcode == Opcode::Text);
        CHECK_FALSE(r.frames[0].header.masked);
        CHECK(r.frames[0].header.payload_length == 5);
        CHECK(r.frames[0].payload == "Hello");
        CHECK(r.frames[0].ended);
        CHECK(r.at_boundary);
    }
    SUBCASE("single-frame masked text") {
        auto r = check_all_splits(hello_masked(), server_opts());
        REQUIRE(r.frames.size() == 1);
        CHECK_FALSE(r.failed);
        CHECK(r.frames[0].header.fin);
        CHECK(r.frames[0].header.opcode == Opcode::Text);
        CHECK(r.frames[0].header.masked);
        CHECK(r.frames[0].header.mask == std::array<std::uint8_t, 4>{0x37, 0xfa, 0x21, 0x3d});
        CHECK(r.frames[0].payload == "Hello");
    }
    SUBCASE("fragmented unmasked text: Hel + lo") {
        const std::string input = bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f});
        auto r = check_all_splits(input, client_opts());
        REQUIRE(r.frames.size() == 2);
        CHECK_FALSE(r.failed);
        CHECK_FALSE(r.frames[0].header.fin);
        CHECK(r.frames[0].header.opcode == Opcode::Text);
        CHECK(r.frames[0].payload == "Hel");
        CHECK(r.frames[1].header.fin);
        CHECK(r.frames[1].header.opcode == Opcode::Continuation);
        CHECK(r.frames[1].payload == "lo");
    }
    SUBCASE("unmasked ping") {
        auto r = check_all_splits(bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), client_opts());
        REQUIRE(r.frames.size() == 1);
        CHECK(r.frames[0].header.opcode == Opcode::Ping);
        CHECK(r.frames[0].header.fin);
        CHECK(r.frames[0].payload == "Hello");
    }
    SUBCASE("masked pong") {
        auto r = check_all_splits(bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}),
                                  server_opts());
        REQUIRE(r.frames.size() == 1);
        CHECK(r.frames[0].header.opcode == Opcode::Pong);
        CHECK(r.frames[0].payload == "Hello");
    }
    SUBCASE("256 bytes binary, 16-bit length") {
        const std::string payload = binary_payload(256);
        const std::string input = bytes({0x82, 0x7E, 0x01, 0x00}) + payload;
        auto r = check_all_splits(input, client_opts());
        REQUIRE(r.frames.size() == 1);
        CHECK_FALSE(r.failed);
        CHECK(r.frames[0].header.opcode == Opcode::Binary);
        CHECK(r.frames[0].header.payload_length == 256);
        CHECK(r.frames[0].payload == payload);
    }
    SUBCASE("64 KiB binary, 64-bit length") {
        const std::string payload = binary_payload(65536);
        const std::string input = bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}) + payload;
        auto r = check_all_splits(input, client_opts());
        REQUIRE(r.frames.size() == 1);
        CHECK_FALSE(r.failed);
        CHECK(r.frames[0].header.payload_length == 65536);
        CHECK(r.frames[0].payload == payload);
        // the same frame masked, to a server
        std::string masked;
        const std::uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
        append_frame(masked, Opcode::Binary, true, payload, mask);
        CHECK(masked.size() == input.size() + 4);
        auto m = check_all_splits(masked, server_opts());
        REQUIRE(m.frames.size() == 1);
        CHECK(m.frames[0].payload == payload);
    }
    SUBCASE("the examples concatenated, in one buffer and every split") {
        const std::string input = hello_unmasked() + bytes({0x01, 0x03, 0x48, 0x65, 0x6c}) +
                                  bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}) + bytes({0x80, 0x02, 0x6c, 0x6f}) +
                                  bytes({0x82, 0x7E, 0x00, 0x7E}) + binary_payload(126) + bytes({0x8a, 0x00});
        auto r = check_all_splits(input, client_opts());
        REQUIRE(r.frames.size() == 6);
        CHECK(r.frames[0].payload == "Hello");
        CHECK(r.frames[1].payload == "Hel");
        CHECK(r.frames[2].header.opcode == Opcode::Ping);
        CHECK(r.frames[3].payload == "lo");
        CHECK(r.frames[4].payload == binary_payload(126));
        CHECK(r.frames[5].header.opcode == Opcode::Pong);
        CHECK(r.frames[5].payload.empty());
        CHECK(r.frames[5].ended);
    }
}

TEST_CASE("frame: two frames in one buffer") {
    SUBCASE("masked text + masked pong") {
        auto r = check_all_splits(hello_masked() + bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51,
                                                           0x58}),
                                  server_opts());
        REQUIRE(r.frames.size() == 2);
        CHECK(r.frames[0].payload == "Hello");
        CHECK(r.frames[1].payload == "Hello");
        CHECK(r.frames[1].header.opcode == Opcode::Pong);
    }
    SUBCASE("empty frames back to back") {
        const std::uint8_t mask[4] = {1, 2, 3, 4};
        std::string input;
        append_frame(input, Opcode::Text, true, "", mask);
        append_frame(input, Opcode::Binary, true, "", mask);
        append_frame(input, Opcode::Ping, true, "", mask);
        auto r = check_all_splits(input, server_opts());
        REQUIRE(r.frames.size() == 3);
        for (const auto& f : r.frames) {
            CHECK(f.payload.empty());
            CHECK(f.ended);
        }
    }
    SUBCASE("a frame followed by a partial one") {
        std::string input = hello_unmasked() + bytes({0x81, 0x05, 0x48});
        auto r = decode_whole(input, Role::Client);
        REQUIRE(r.frames.size() == 2);
        CHECK(r.frames[0].ended);
        CHECK_FALSE(r.frames[1].ended);
        CHECK(r.frames[1].payload == "H");
        CHECK_FALSE(r.at_boundary);
        CHECK_FALSE(r.failed);
    }
    SUBCASE("a partial header is not at a boundary") {
        auto r = decode_whole(bytes({0x82, 0x7E, 0x01}), Role::Client);
        CHECK(r.frames.empty());
        CHECK_FALSE(r.at_boundary);
    }
}

TEST_CASE("frame: encoder uses the shortest length form") {
    struct Case {
        std::uint64_t length;
        std::size_t header_size;
    };
    const Case cases[] = {{0, 2},      {1, 2},      {125, 2},         {126, 4},          {127, 4},
                          {65535, 4},  {65536, 10}, {1ull << 32, 10}, {(1ull << 63) - 1, 10}};
    SUBCASE("encode_frame_header") for (const auto& c : cases) {
        CAPTURE(c.length);
        std::uint8_t out[kMaxFrameHeader + 2];
        std::memset(out, 0xEE, sizeof out);
        const std::size_t n = encode_frame_header(out, Opcode::Binary, true, c.length);
        CHECK(n == c.header_size);
        CHECK(out[0] == 0x82);
        CHECK((out[1] & 0x80) == 0);
        if (c.length < 126) CHECK(out[1] == c.length);
        else if (c.length <= 0xFFFF) {
            CHECK(out[1] == 126);
            CHECK(((out[2] << 8) | out[3]) == c.length);
        } else {
            CHECK(out[1] == 127);
            std::uint64_t v = 0;
            for (int k = 0; k < 8; ++k) v = (v << 8) | out[2 + k];
            CHECK(v == c.length);
        }
        CHECK(out[n] == 0xEE);  // nothing written past the header

        const std::uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
        const std::size_t m = encode_frame_header(out, Opcode::Text, false, c.length, mask, kRsv1);
        CHECK(m == c.header_size + 4);
        CHECK(out[0] == (0x01 | kRsv1));
        CHECK((out[1] & 0x80) == 0x80);
        CHECK(std::memcmp(out + m - 4, mask, 4) == 0);
    }
    SUBCASE("append_frame round-trips through the decoder at the boundaries") {
        for (std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 65537}) {
            CAPTURE(size);
            const std::string payload = binary_payload(size);
            std::string plain;
            append_frame(plain, Opcode::Binary, true, payload);
            const std::size_t expected_header = size < 126 ? 2 : size <= 0xFFFF ? 4 : 10;
            CHECK(plain.size() == expected_header + size);
            auto r = decode_whole(plain, Role::Client);
            REQUIRE(r.frames.size() == 1);
            CHECK_FALSE(r.failed);
            CHECK(r.frames[0].payload == payload);

            const std::uint8_t mask[4] = {0x9a, 0x00, 0xff, 0x31};
            std::string masked;
            append_frame(masked, Opcode::Text, false, payload, mask, kRsv2);
            CHECK(masked.size() == expected_header + 4 + size);
            auto m = decode(masked, {}, {Role::Server, kRsv2, 16u << 20});
            REQUIRE(m.frames.size() == 1);
            CHECK_FALSE(m.failed);
            CHECK(m.frames[0].payload == payload);
            CHECK(m.frames[0].header.rsv == kRsv2);
            CHECK_FALSE(m.frames[0].header.fin);
            CHECK(m.frames[0].header.opcode == Opcode::Text);
        }
    }
    SUBCASE("append_frame appends") {
        std::string out = "prefix";
        append_frame(out, Opcode::Text, true, "Hello");
        CHECK(out == "prefix" + hello_unmasked());
        std::string masked;
        const std::uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
        append_frame(masked, Opcode::Text, true, "Hello", mask);
        CHECK(hex(masked) == hex(hello_masked()));
    }
}

TEST_CASE("frame: protocol violations fail with the RFC's close code") {
    const auto expect_fail = [](const std::string& input, FrameDecoder::Options options, CloseCode code) {
        CAPTURE(hex(input));
        auto r = check_all_splits(input, options);
        CHECK(r.failed);
        CHECK(static_cast<int>(r.code) == static_cast<int>(code));
        CHECK(r.frames.empty());
    };
    SUBCASE("64-bit length with the top bit set -> 1002") {
        expect_fail(header(0x82, 0x7F, {0x80, 0, 0, 0, 0, 0, 0, 0}), client_opts(), CloseCode::ProtocolError);
        expect_fail(header(0x82, 0x7F, {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), client_opts(),
                    CloseCode::ProtocolError);
        expect_fail(header(0x82, 0xFF, {0x80, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4}), server_opts(),
                    CloseCode::ProtocolError);
        // even when max_frame_payload would allow everything
        expect_fail(header(0x82, 0x7F, {0x80, 0, 0, 0, 0, 0, 0, 0}), {Role::Client, 0, ~0ull},
                    CloseCode::ProtocolError);
    }
    SUBCASE("non-minimal length encodings -> 1002") {
        for (int len : {0, 1, 5, 125}) {
            CAPTURE(len);
            expect_fail(header(0x82, 0x7E, {0, len}), client_opts(), CloseCode::ProtocolError);
            expect_fail(header(0x82, 0x7F, {0, 0, 0, 0, 0, 0, 0, len}), client_opts(), CloseCode::ProtocolError);
        }
        expect_fail(header(0x82, 0x7F, {0, 0, 0, 0, 0, 0, 0, 126}), client_opts(), CloseCode::ProtocolError);
        expect_fail(header(0x82, 0x7F, {0, 0, 0, 0, 0, 0, 0xFF, 0xFF}), client_opts(), CloseCode::ProtocolError);
        expect_fail(header(0x82, 0xFE, {0, 0x10, 1, 2, 3, 4}), server_opts(), CloseCode::ProtocolError);
        // the smallest values of each form are accepted
        auto a = decode_whole(header(0x82, 0x7E, {0, 126}) + binary_payload(126), Role::Client);
        CHECK_FALSE(a.failed);
        CHECK(a.frames.size() == 1);
        auto b = decode_whole(header(0x82, 0x7F, {0, 0, 0, 0, 0, 1, 0, 0}) + binary_payload(65536), Role::Client);
        CHECK_FALSE(b.failed);
        CHECK(b.frames.size() == 1);
    }
    SUBCASE("reserved opcodes -> 1002") {
        for (int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
            CAPTURE(op);
            expect_fail(header(0x80 | op, 0x00), client_opts(), CloseCode::ProtocolError);
            expect_fail(header(0x80 | op, 0x80, {1, 2, 3, 4}), server_opts(), CloseCode::ProtocolError);
            expect_fail(header(op, 0x80, {1, 2, 3, 4}), server_opts(), CloseCode::ProtocolError);
        }
        for (int op : {0, 1, 2, 8, 9, 0xA}) {
            CAPTURE(op);
            auto r = decode_whole(header(0x80 | op, 0x00), Role::Client);
            CHECK_FALSE(r.failed);
        }
    }
    SUBCASE("RSV bits -> 1002 unless allowed") {
        for (int rsv : {int{kRsv1}, int{kRsv2}, int{kRsv3}, kRsv1 | kRsv2, kRsv1 | kRsv2 | kRsv3}) {
            CAPTURE(rsv);
            expect_fail(header(0x81 | rsv, 0x00), client_opts(), CloseCode::ProtocolError);
            expect_fail(header(0x82 | rsv, 0x80, {0, 0, 0, 0}), server_opts(), CloseCode::ProtocolError);
            // allowed by an extension: accepted on data frames and reported
            auto ok = decode(header(0x81 | rsv, 0x00), {}, {Role::Client, static_cast<std::uint8_t>(rsv), 1 << 20});
            CHECK_FALSE(ok.failed);
            REQUIRE(ok.frames.size() == 1);
            CHECK(ok.frames[0].header.rsv == rsv);
        }
        // allowing RSV1 does not allow RSV2
        expect_fail(header(0x81 | kRsv2, 0x00), {Role::Client, kRsv1, 1 << 20}, CloseCode::ProtocolError);
        // RSV1 on a control frame stays an error with permessage-deflate (RFC 7692 section 6.1)
        expect_fail(header(0x89 | kRsv1, 0x00), {Role::Client, kRsv1, 1 << 20}, CloseCode::ProtocolError);
    }
    SUBCASE("masking by role -> 1002") {
        // an unmasked client frame to a server
        expect_fail(hello_unmasked(), server_opts(), CloseCode::ProtocolError);
        expect_fail(header(0x88, 0x00), server_opts(), CloseCode::ProtocolError);
        // a masked server frame to a client
        expect_fail(hello_masked(), client_opts(), CloseCode::ProtocolError);
    }
    SUBCASE("control frame with more than 125 bytes -> 1002") {
        for (int op : {0x8, 0x9, 0xA}) {
            CAPTURE(op);
            expect_fail(header(0x80 | op, 0x7E, {0, 126}) + binary_payload(126), client_opts(),
                        CloseCode::ProtocolError);
            expect_fail(header(0x80 | op, 0xFE, {0, 200, 1, 2, 3, 4}), server_opts(), CloseCode::ProtocolError);
            expect_fail(header(0x80 | op, 0x7F, {0, 0, 0, 0, 0, 1, 0, 0}), client_opts(), CloseCode::ProtocolError);
            auto ok = decode_whole(header(0x80 | op, 125) + binary_payload(125), Role::Client);
            CHECK_FALSE(ok.failed);
            REQUIRE(ok.frames.size() == 1);
            CHECK(ok.frames[0].payload.size() == 125);
        }
    }
    SUBCASE("fragmented control frame -> 1002") {
        for (int op : {0x8, 0x9, 0xA}) {
            CAPTURE(op);
            expect_fail(header(op, 0x00), client_opts(), CloseCode::ProtocolError);
            expect_fail(header(op, 0x85, {1, 2, 3, 4}) + "abcde", server_opts(), CloseCode::ProtocolError);
        }
    }
    SUBCASE("frame larger than max_frame_payload -> 1009") {
        const FrameDecoder::Options small{Role::Client, 0, 100};
        expect_fail(header(0x82, 101) + binary_payload(101), small, CloseCode::MessageTooBig);
        expect_fail(header(0x82, 0x7E, {0x01, 0x00}), small, CloseCode::MessageTooBig);
        auto ok = decode(header(0x82, 100) + binary_payload(100), {}, small);
        CHECK_FALSE(ok.failed);
        CHECK(ok.frames.size() == 1);
        // the default limit (16 MiB) refuses a 4 GiB frame from its header alone
        expect_fail(header(0x82, 0x7F, {0, 0, 0, 1, 0, 0, 0, 0}), client_opts(), CloseCode::MessageTooBig);
        expect_fail(header(0x82, 0x7F, {0, 0, 0, 0, 0x01, 0, 0, 1}), client_opts(), CloseCode::MessageTooBig);
        // set_max_frame_payload takes effect for the next frame
        FrameDecoder decoder({Role::Client, 0, 1000});
        decoder.set_max_frame_payload(3);
        std::string input = header(0x82, 4) + "abcd";
        Recorder rec;
        auto res = decoder.feed(reinterpret_cast<std::uint8_t*>(input.data()), input.size(), rec);
        CHECK(res.failed);
        CHECK(decoder.error().code == CloseCode::MessageTooBig);
    }
    SUBCASE("the error comes from the header, before any payload") {
        // byte by byte: the reserved opcode is seen at the second byte
        FrameDecoder decoder(server_opts());
        Recorder rec;
        std::uint8_t b0 = 0x83;
        auto r0 = decoder.feed(&b0, 1, rec);
        CHECK_FALSE(r0.failed);
        std::uint8_t b1 = 0x80;
        auto r1 = decoder.feed(&b1, 1, rec);
        CHECK(r1.failed);
        CHECK(decoder.error().code == CloseCode::ProtocolError);
        CHECK(rec.frames.empty());
    }
    SUBCASE("a good frame then a bad one: the good one is reported") {
        auto r = check_all_splits(hello_unmasked() + header(0x83, 0x00), client_opts());
        CHECK(r.failed);
        REQUIRE(r.frames.size() == 1);
        CHECK(r.frames[0].payload == "Hello");
        CHECK(r.frames[0].ended);
    }
}

TEST_CASE("frame: apply_mask matches a byte-by-byte reference") {
    const std::array<std::uint8_t, 4> masks[] = {{0x37, 0xfa, 0x21, 0x3d}, {0, 0, 0, 0}, {0xff, 0x00, 0x80, 0x01}};
    SUBCASE("every offset, length and alignment") for (const auto& mask : masks) {
        for (std::size_t align = 0; align < 8; ++align) {
            for (std::size_t offset = 0; offset < 8; ++offset) {  // 4..7 behave as offset & 3
                // From 64 bytes on the wide (AVX2) path runs when the CPU has it: cover its
                // blocks, the words after them and the byte tail.
                for (std::size_t length = 0; length <= 200; ++length) {
                    CAPTURE(offset);
                    CAPTURE(length);
                    CAPTURE(align);
                    std::uint8_t storage[224];
                    std::uint8_t expected[224];
                    for (std::size_t i = 0; i < sizeof storage; ++i)
                        storage[i] = expected[i] = static_cast<std::uint8_t>(i * 31 + 7);
                    for (std::size_t i = 0; i < length; ++i) expected[align + i] ^= mask[(offset + i) % 4];
                    const std::size_t next = apply_mask(storage + align, length, mask, offset);
                    if (std::memcmp(storage, expected, sizeof storage) != 0 || next != (offset + length) % 4) {
                        CHECK(std::memcmp(storage, expected, sizeof storage) == 0);
                        CHECK(next == (offset + length) % 4);
                    }
                }
            }
        }
    }
    SUBCASE("masking in pieces equals masking at once") {
        const std::array<std::uint8_t, 4> mask{0x01, 0x23, 0x45, 0x67};
        std::string original = binary_payload(100);
        std::string once = original;
        apply_mask(reinterpret_cast<std::uint8_t*>(once.data()), once.size(), mask);
        for (std::size_t a = 0; a <= 100; a += 3) {
            for (std::size_t b = a; b <= 100; b += 7) {
                std::string pieces = original;
                auto* p = reinterpret_cast<std::uint8_t*>(pieces.data());
                std::size_t off = apply_mask(p, a, mask, 0);
                off = apply_mask(p + a, b - a, mask, off);
                apply_mask(p + b, 100 - b, mask, off);
                if (pieces != once) {
                    CAPTURE(a);
                    CAPTURE(b);
                    CHECK(pieces == once);
                }
            }
        }
    }
}
