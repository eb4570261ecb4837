// permessage-deflate (RFC 7692), what a receiver refuses: the inflate limit (max_output, a
// decompression bomb refused early) and corrupt compressed data (close 1007); and moving a
// PerMessageDeflate. The codec's normal work is tested in test_deflate.cpp.
#include <doctest/doctest.h>
#include <zlib.h>

#include <chrono>
#include <cstring>
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

/// A payload that inflates to `mib` MiB of zeros: deflate's best ratio is about 1032:1, so
/// this is about mib KiB. One MiB is compressed, then one more MiB (which, against a window of
/// zeros, encodes the same way wherever it stands) is repeated.
std::string zero_bomb(std::size_t mib) {
    z_stream s{};
    REQUIRE(deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    const std::string zeros(1 << 20, '\0');
    auto chunk = [&] {
        std::string out(64 * 1024, '\0');
        s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
        s.avail_in = static_cast<uInt>(zeros.size());
        s.next_out = reinterpret_cast<Bytef*>(out.data());
        s.avail_out = static_cast<uInt>(out.size());
        REQUIRE(deflate(&s, Z_SYNC_FLUSH) == Z_OK);
        REQUIRE(s.avail_in == 0);
        REQUIRE(s.avail_out > 0);
        out.resize(out.size() - s.avail_out);
        return out;
    };
    std::string payload = chunk();
    const std::string repeat = chunk();
    deflateEnd(&s);
    for (std::size_t i = 1; i < mib; ++i) payload += repeat;
    REQUIRE(payload.size() > 4);
    REQUIRE(payload.substr(payload.size() - 4) == bytes({0x00, 0x00, 0xFF, 0xFF}));
    payload.resize(payload.size() - 4);
    return payload;
}

/// Count the zeros a payload inflates to, with plain zlib (checks the bomb itself).
std::size_t count_inflated_zeros(const std::string& payload, bool& all_zero) {
    z_stream s{};
    REQUIRE(inflateInit2(&s, -15) == Z_OK);
    const std::string data = payload + bytes({0x00, 0x00, 0xFF, 0xFF});
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    s.avail_in = static_cast<uInt>(data.size());
    std::string buf(256 * 1024, '\0');
    std::size_t total = 0;
    all_zero = true;
    for (;;) {
        s.next_out = reinterpret_cast<Bytef*>(buf.data());
        s.avail_out = static_cast<uInt>(buf.size());
        const int rc = ::inflate(&s, Z_SYNC_FLUSH);
        const std::size_t got = buf.size() - s.avail_out;
        if (got > 0 && (buf[0] != '\0' || std::memcmp(buf.data(), buf.data() + 1, got - 1) != 0)) all_zero = false;
        total += got;
        if (rc != Z_OK) break;
        if (s.avail_in == 0 && s.avail_out > 0) break;
    }
    inflateEnd(&s);
    return total;
}

}  // namespace

// ==== the inflate limit =======================================================================

TEST_CASE("deflate: max_output, exactly at and one under the size") {
    const std::string m = repetitive(100000, 11);
    for (std::size_t max : {m.size(), m.size() + 1, m.size() - 1, std::size_t{1}, std::size_t{0}}) {
        CAPTURE(max);
        PerMessageDeflate sender(Role::Server, agreement(), always_compress());
        PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
        const std::string payload = compressed(sender, m);
        std::string out;
        const auto status = inflate(receiver, payload, out, max);
        if (max >= m.size()) {
            CHECK(status == InflateStatus::Ok);
            CHECK(out == m);
        } else {
            CHECK(status == InflateStatus::TooBig);
            CHECK(out.size() <= max);
            CHECK(m.compare(0, out.size(), out) == 0);
            // sticky: the connection is to be failed
            CHECK(receiver.decompress(payload, true, out, kUnlimited) == InflateStatus::TooBig);
        }
    }
    // an empty message fits in 0 bytes
    PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
    std::string out;
    CHECK(inflate(receiver, bytes({0x00}), out, 0) == InflateStatus::Ok);
    CHECK(inflate(receiver, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), out, 5) == InflateStatus::Ok);
    CHECK(out == "Hello");
    CHECK(inflate(receiver, bytes({0xf2, 0x00, 0x11, 0x00, 0x00}), out, 4) == InflateStatus::TooBig);
    CHECK(out.size() <= 4);
}

TEST_CASE("deflate: a decompression bomb is refused early, within max_output") {
    // built and checked once (doctest runs the test case again for each subcase)
    static const std::string bomb = [] {
        std::string payload = zero_bomb(100);
        MESSAGE("100 MiB of zeros in a payload of ", payload.size(), " bytes");
        bool all_zero = false;
        CHECK(count_inflated_zeros(payload, all_zero) == std::size_t{100} << 20);  // the bomb is real
        CHECK(all_zero);
        return payload;
    }();

    const std::size_t max = 1 << 20;
    SUBCASE("in one piece") {
        PerMessageDeflate receiver(Role::Server, agreement(), always_compress());
        std::string out;
        const auto t0 = std::chrono::steady_clock::now();
        const auto status = receiver.decompress(bomb, true, out, max);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
        CHECK(status == InflateStatus::TooBig);
        CHECK(out.size() <= max);
        CHECK(out.capacity() <= max + 64 * 1024);
        CHECK(ms.count() < 2000);
        CHECK(receiver.decompress("", true, out, max) == InflateStatus::TooBig);
    }
    SUBCASE("in 1 KiB pieces: refused at the piece that passes the limit, not at the end") {
        PerMessageDeflate receiver(Role::Server, agreement(), always_compress());
        std::string out = "prefix";
        std::size_t refused_at = 0;
        for (std::size_t at = 0; at < bomb.size(); at += 1024) {
            const auto status = receiver.decompress(std::string_view(bomb).substr(at, 1024), false, out, max);
            if (status != InflateStatus::Ok) {
                CHECK(status == InflateStatus::TooBig);
                refused_at = at;
                break;
            }
        }
        MESSAGE("refused at payload byte ", refused_at, " of ", bomb.size());
        CHECK(refused_at > 0);
        CHECK(refused_at < 8 * 1024);  // about 1 MiB of output comes from about 1 KiB of input
        CHECK(out.size() <= 6 + max);
        CHECK(out.capacity() <= 6 + max + 64 * 1024);
        CHECK(out.compare(0, 6, "prefix") == 0);
    }
    SUBCASE("a 1 KiB payload inflating to about 1 MiB, limit 64 KiB") {
        const std::string small = bomb.substr(0, 1024);
        PerMessageDeflate receiver(Role::Server, agreement(), always_compress());
        std::string out;
        CHECK(receiver.decompress(small, false, out, 64 * 1024) == InflateStatus::TooBig);
        CHECK(out.size() <= 64 * 1024);
        CHECK(out.capacity() <= 64 * 1024 + 64 * 1024);
    }
}

// ==== corrupt input ===========================================================================

TEST_CASE("deflate: invalid compressed data is Corrupt (close 1007), and stays so") {
    const std::vector<std::string> bad = {
        bytes({0x06}),                                // BTYPE 11 (reserved)
        bytes({0xff, 0xff, 0xff, 0xff}),              // garbage
        bytes({0x00, 0x05, 0x00, 0x00, 0x00}),        // stored block, NLEN is not ~LEN
        bytes({0xf2, 0x00, 0x11, 0x00, 0x00}),        // a distance before the start of the stream
        bytes({0xf2, 0x48, 0xcd}),                    // cut mid-block: not on a boundary at the end
        bytes({0x00, 0x0a, 0x00, 0xf5, 0xff, 0x48}),  // stored block of 10 cut short
        bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00}),  // after BFINAL, a cut block
    };
    for (const auto& payload : bad) {
        CAPTURE(hex(payload));
        PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
        std::string out;
        CHECK(inflate(receiver, payload, out) == InflateStatus::Corrupt);
        CHECK(receiver.decompress(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), true, out, kUnlimited) ==
              InflateStatus::Corrupt);
    }
    // A stored block may swallow the trailer as data: "00 05 00 fa ff 48" is "H" and the
    // four trailer bytes, a valid (if odd) message.
    {
        PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
        CHECK(inflated(receiver, bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48})) == bytes({0x48, 0x00, 0x00, 0xff, 0xff}));
    }
    // A truncated real message: mostly Corrupt (the trailer then leaves the stream mid-block),
    // but the trailer's bits can happen to decode as literals and an end-of-block code, which
    // no receiver can tell from a valid shorter message; never the whole message, though.
    PerMessageDeflate sender(Role::Server, agreement(), always_compress());
    const std::string m = repetitive(5000, 13);
    const std::string payload = compressed(sender, m);
    std::size_t corrupt = 0;
    for (std::size_t cut = 0; cut < payload.size(); ++cut) {
        PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
        std::string out;
        const auto status = inflate(receiver, payload.substr(0, cut), out);
        if (status == InflateStatus::Corrupt) ++corrupt;
        else CHECK(out != m);
    }
    MESSAGE(corrupt, " of ", payload.size(), " truncations detected");
    CHECK(corrupt * 4 >= payload.size() * 3);
}

TEST_CASE("deflate: moving a PerMessageDeflate keeps its streams") {
    PerMessageDeflate sender(Role::Server, agreement(), always_compress());
    PerMessageDeflate receiver(Role::Client, agreement(), always_compress());
    CHECK(inflated(receiver, compressed(sender, "Hello")) == "Hello");
    PerMessageDeflate moved_sender(std::move(sender));
    PerMessageDeflate moved_receiver = std::move(receiver);
    const std::string second = compressed(moved_sender, "Hello");
    CHECK(hex(second) == hex(bytes({0xf2, 0x00, 0x11, 0x00, 0x00})));
    CHECK(inflated(moved_receiver, second) == "Hello");
    CHECK(moved_receiver.role() == Role::Client);
}
