// permessage-deflate (RFC 7692): the Sec-WebSocket-Extensions parser, negotiation in both
// roles, the section 7.2.3 examples, round trips, every split of small payloads, the inflate
// limit, and decoding our output with zlib's own uncompress() as an independent check.
#include <doctest/doctest.h>
#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "test/unit/test_util.hpp"
#include "websock/codec/deflate.hpp"
#include "websock/codec/extension.hpp"

using namespace websock::codec;
using test_util::bytes;
using test_util::hex;

namespace {

constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

// ---- helpers --------------------------------------------------------------------------------

ExtensionOffer offer(std::string name, std::vector<ExtensionParam> params = {}) {
    return ExtensionOffer{std::move(name), std::move(params)};
}
ExtensionParam param(std::string name) { return ExtensionParam{std::move(name), std::nullopt}; }
ExtensionParam param(std::string name, std::string value) { return ExtensionParam{std::move(name), std::move(value)}; }

std::vector<ExtensionOffer> parse_ok(std::string_view value) {
    const auto r = parse_extensions(value);
    INFO("value: ", value, " error: ", r.error, " at ", r.error_offset);
    REQUIRE(r.ok());
    return r.offers;
}

/// negotiate_server on a header value.
std::optional<DeflateAgreement> server_on(std::string_view header, const DeflateOptions& options) {
    return negotiate_server(parse_ok(header), options);
}

DeflateOptions enabled_options() {
    DeflateOptions o;
    o.enabled = true;
    return o;
}

/// Options that compress every message (the RFC examples are 5 bytes long).
DeflateOptions always_compress(int level = 6) {
    DeflateOptions o = enabled_options();
    o.min_compress_bytes = 0;
    o.compression_level = level;
    return o;
}

DeflateAgreement agreement(bool server_nct = false, bool client_nct = false, int server_bits = 15, int client_bits = 15) {
    DeflateAgreement a;
    a.server_no_context_takeover = server_nct;
    a.client_no_context_takeover = client_nct;
    a.server_max_window_bits = server_bits;
    a.client_max_window_bits = client_bits;
    return a;
}

std::string compressed(PerMessageDeflate& pmd, std::string_view message) {
    std::string out;
    REQUIRE(pmd.compress(message, out));
    return out;
}

/// Inflate a whole payload in one piece.
InflateStatus inflate(PerMessageDeflate& pmd, std::string_view payload, std::string& out,
                      std::size_t max_output = kUnlimited) {
    out.clear();
    return pmd.decompress(payload, true, out, max_output);
}

std::string inflated(PerMessageDeflate& pmd, std::string_view payload) {
    std::string out;
    const auto status = inflate(pmd, payload, out);
    INFO("payload: ", hex(payload));
    REQUIRE(status == InflateStatus::Ok);
    return out;
}

std::string random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
    return s;
}

/// Text-like data with repeats at every distance up to ~20 KiB, so a compressor that ignores
/// its window would reach too far.
std::string repetitive(std::size_t n, std::uint32_t seed) {
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

// ==== the Sec-WebSocket-Extensions header ====================================================

TEST_CASE("extensions: parse offers, parameters, quoted values, several offers") {
    SUBCASE("one name") {
        const auto offers = parse_ok("permessage-deflate");
        REQUIRE(offers.size() == 1);
        CHECK(offers[0] == offer("permessage-deflate"));
    }
    SUBCASE("parameters with and without values, any whitespace") {
        const auto offers = parse_ok(" permessage-deflate ;client_max_window_bits;\tserver_max_window_bits = 10 ; x=y ");
        REQUIRE(offers.size() == 1);
        CHECK(offers[0] == offer("permessage-deflate", {param("client_max_window_bits"),
                                                         param("server_max_window_bits", "10"), param("x", "y")}));
    }
    SUBCASE("quoted-string values are unquoted and unescaped") {
        const auto offers = parse_ok(R"(permessage-deflate; server_max_window_bits="10"; a="\1\2"; b="x")");
        REQUIRE(offers.size() == 1);
        CHECK(offers[0].params == std::vector<ExtensionParam>{param("server_max_window_bits", "10"), param("a", "12"),
                                                              param("b", "x")});
    }
    SUBCASE("several offers, the same extension several times, in order") {
        const auto offers = parse_ok(
            "permessage-deflate; client_max_window_bits=10, x-webkit-deflate-frame, permessage-deflate, "
            "permessage-deflate; server_no_context_takeover");
        REQUIRE(offers.size() == 4);
        CHECK(offers[0] == offer("permessage-deflate", {param("client_max_window_bits", "10")}));
        CHECK(offers[1] == offer("x-webkit-deflate-frame"));
        CHECK(offers[2] == offer("permessage-deflate"));
        CHECK(offers[3] == offer("permessage-deflate", {param("server_no_context_takeover")}));
    }
    SUBCASE("empty list elements are skipped (RFC 7230 section 7)") {
        const auto offers = parse_ok(", a ,, b;c ,");
        REQUIRE(offers.size() == 2);
        CHECK(offers[0] == offer("a"));
        CHECK(offers[1] == offer("b", {param("c")}));
    }
    SUBCASE("empty or blank value: no offers") {
        CHECK(parse_ok("").empty());
        CHECK(parse_ok(" \t ").empty());
        CHECK(parse_ok(",").empty());
    }
    SUBCASE("duplicates are kept for the extension to judge") {
        const auto offers = parse_ok("e; p; p=1");
        REQUIRE(offers.size() == 1);
        CHECK(offers[0].params.size() == 2);
        REQUIRE(offers[0].find("P") != nullptr);
        CHECK_FALSE(offers[0].find("P")->value.has_value());
        CHECK(offers[0].find("q") == nullptr);
    }
}

TEST_CASE("extensions: syntax errors are reported with an offset, never thrown") {
    struct Bad {
        std::string value;
        std::size_t offset;
    };
    const std::vector<Bad> cases = {
        {";", 0},
        {"a;", 2},
        {"a; ", 3},
        {"a;=1", 2},
        {"a; b=", 5},
        {"a; b= ,", 6},
        {"a b", 2},
        {"a; b=1 2", 7},
        {"a; b=1;", 7},
        {"a,;b", 2},
        {"\"a\"", 0},
        {"a; b=\"1", 5},
        {"a; b=\"", 5},
        {"a; b=\"1 0\"", 5},   // the unescaped value must be a token
        {"a; b=\"\"", 5},      // empty is not a token
        {"a; b=\"x\\\"\"", 5},  // x" is not a token
        {"a; b=\"\\", 5},
        {"a; b=\"\x01\"", 5},
        {"a; b\x7f", 4},
        {"a\r\nb", 1},
        {"d\xc3\xa9" "flate", 1},
        {"a; b=c=d", 6},
        {"a; b=\"c\"d", 8},
    };
    for (const auto& c : cases) {
        CAPTURE(c.value);
        const auto r = parse_extensions(c.value);
        CHECK_FALSE(r.ok());
        CHECK_FALSE(r.error.empty());
        CHECK(r.offers.empty());
        CHECK(r.error_offset == c.offset);
    }
}

TEST_CASE("extensions: serialize, and parse(serialize(x)) == x") {
    const std::vector<ExtensionOffer> list = {
        offer("permessage-deflate", {param("server_no_context_takeover"), param("server_max_window_bits", "10")}),
        offer("x-foo"),
        offer("permessage-deflate", {param("client_max_window_bits")}),
    };
    const std::string text = serialize_extensions(list);
    CHECK(text ==
          "permessage-deflate; server_no_context_takeover; server_max_window_bits=10, x-foo, "
          "permessage-deflate; client_max_window_bits");
    CHECK(parse_ok(text) == list);
    CHECK(serialize_extensions({}).empty());
    // Names and values must be tokens: no quoting, and never a CR/LF in a header.
    CHECK_THROWS_AS(serialize_extension(offer("")), std::invalid_argument);
    CHECK_THROWS_AS(serialize_extension(offer("a b")), std::invalid_argument);
    CHECK_THROWS_AS(serialize_extension(offer("a", {param("p\r\nX-Evil: 1")})), std::invalid_argument);
    CHECK_THROWS_AS(serialize_extension(offer("a", {param("p", "1 2")})), std::invalid_argument);
    CHECK_THROWS_AS(serialize_extension(offer("a", {param("p", "")})), std::invalid_argument);
}

// ==== negotiation: server ====================================================================

TEST_CASE("deflate negotiation (server): disabled, plain offer, and each parameter") {
    SUBCASE("disabled: never an agreement") {
        CHECK_FALSE(server_on("permessage-deflate", DeflateOptions{}).has_value());
    }
    SUBCASE("no deflate offer") {
        CHECK_FALSE(server_on("", enabled_options()).has_value());
        CHECK_FALSE(server_on("x-webkit-deflate-frame, deflate-frame", enabled_options()).has_value());
    }
    SUBCASE("plain offer: defaults, response is the bare name") {
        const auto a = server_on("permessage-deflate", enabled_options());
        REQUIRE(a);
        CHECK(a->same_parameters(agreement()));
        CHECK(a->response_header() == "permessage-deflate");
    }
    SUBCASE("names match without regard to case") {
        const auto a = server_on("PerMessage-Deflate; Server_No_Context_Takeover", enabled_options());
        REQUIRE(a);
        CHECK(a->server_no_context_takeover);
    }
    SUBCASE("server_no_context_takeover offered: granted and echoed") {
        const auto a = server_on("permessage-deflate; server_no_context_takeover", enabled_options());
        REQUIRE(a);
        CHECK(a->same_parameters(agreement(true, false)));
        CHECK(a->response_header() == "permessage-deflate; server_no_context_takeover");
    }
    SUBCASE("server_no_context_takeover not offered but configured: included unasked") {
        DeflateOptions o = enabled_options();
        o.server_no_context_takeover = true;
        const auto a = server_on("permessage-deflate", o);
        REQUIRE(a);
        CHECK(a->same_parameters(agreement(true, false)));
        CHECK(a->response_header() == "permessage-deflate; server_no_context_takeover");
    }
    SUBCASE("client_no_context_takeover offered: echoed, so it binds") {
        const auto a = server_on("permessage-deflate; client_no_context_takeover", enabled_options());
        REQUIRE(a);
        CHECK(a->same_parameters(agreement(false, true)));
        CHECK(a->response_header() == "permessage-deflate; client_no_context_takeover");
    }
    SUBCASE("client_no_context_takeover configured: asked for unasked") {
        DeflateOptions o = enabled_options();
        o.client_no_context_takeover = true;
        const auto a = server_on("permessage-deflate", o);
        REQUIRE(a);
        CHECK(a->same_parameters(agreement(false, true)));
        CHECK(a->response_header() == "permessage-deflate; client_no_context_takeover");
    }
    SUBCASE("server_max_window_bits: the offered value, or ours if smaller, always in the response") {
        for (int offered = 8; offered <= 15; ++offered)
            for (int ours = 8; ours <= 15; ++ours) {
                CAPTURE(offered);
                CAPTURE(ours);
                DeflateOptions o = enabled_options();
                o.server_max_window_bits = ours;
                const auto a = server_on("permessage-deflate; server_max_window_bits=" + std::to_string(offered), o);
                REQUIRE(a);
                const int expected = std::min(offered, ours);
                CHECK(a->same_parameters(agreement(false, false, expected, 15)));
                CHECK(a->response_header() ==
                      "permessage-deflate; server_max_window_bits=" + std::to_string(expected));
            }
    }
    SUBCASE("server_max_window_bits not offered: ours included when under 15") {
        DeflateOptions o = enabled_options();
        o.server_max_window_bits = 10;
        const auto a = server_on("permessage-deflate", o);
        REQUIRE(a);
        CHECK(a->server_max_window_bits == 10);
        CHECK(a->response_header() == "permessage-deflate; server_max_window_bits=10");
    }
    SUBCASE("server_max_window_bits as a quoted-string") {
        const auto a = server_on("permessage-deflate; server_max_window_bits=\"11\"", enabled_options());
        REQUIRE(a);
        CHECK(a->server_max_window_bits == 11);
    }
    SUBCASE("client_max_window_bits without value: support only; included when we limit") {
        auto a = server_on("permessage-deflate; client_max_window_bits", enabled_options());
        REQUIRE(a);
        CHECK(a->same_parameters(agreement()));
        CHECK(a->response_header() == "permessage-deflate");
        DeflateOptions o = enabled_options();
        o.client_max_window_bits = 10;
        a = server_on("permessage-deflate; client_max_window_bits", o);
        REQUIRE(a);
        CHECK(a->same_parameters(agreement(false, false, 15, 10)));
        CHECK(a->response_header() == "permessage-deflate; client_max_window_bits=10");
    }
    SUBCASE("client_max_window_bits with a value: never above it") {
        for (int offered = 8; offered <= 15; ++offered)
            for (int ours = 8; ours <= 15; ++ours) {
                CAPTURE(offered);
                CAPTURE(ours);
                DeflateOptions o = enabled_options();
                o.client_max_window_bits = ours;
                const auto a = server_on("permessage-deflate; client_max_window_bits=" + std::to_string(offered), o);
                REQUIRE(a);
                const int expected = std::min(offered, ours);
                CHECK(a->client_max_window_bits == expected);
                if (expected < 15)
                    CHECK(a->response_header() ==
                          "permessage-deflate; client_max_window_bits=" + std::to_string(expected));
                else
                    CHECK(a->response_header() == "permessage-deflate");
            }
    }
    SUBCASE("client_max_window_bits not offered while ours is limited: declined") {
        DeflateOptions o = enabled_options();
        o.client_max_window_bits = 12;
        CHECK_FALSE(server_on("permessage-deflate", o).has_value());
        CHECK_FALSE(check_offer(offer("permessage-deflate"), o).empty());
        // ...but a later offer that carries it is taken
        const auto a = server_on("permessage-deflate, permessage-deflate; client_max_window_bits", o);
        REQUIRE(a);
        CHECK(a->client_max_window_bits == 12);
    }
    SUBCASE("everything at once; the response re-parses to the same element") {
        DeflateOptions o = enabled_options();
        o.server_max_window_bits = 12;
        o.client_max_window_bits = 11;
        const auto a = server_on(
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
            "server_max_window_bits=13; client_max_window_bits=14",
            o);
        REQUIRE(a);
        CHECK(a->same_parameters(agreement(true, true, 12, 11)));
        CHECK(a->response_header() ==
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
              "server_max_window_bits=12; client_max_window_bits=11");
        const auto reparsed = parse_ok(a->response_header());
        REQUIRE(reparsed.size() == 1);
        CHECK(reparsed[0] == a->response);
    }
}

TEST_CASE("deflate negotiation (server): bad offers are declined, the next one is tried") {
    const std::vector<std::string> bad = {
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; Client_No_Context_Takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=0",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=0x9",
        "permessage-deflate; server_max_window_bits=9.0",
        "permessage-deflate; server_max_window_bits=ten",
        "permessage-deflate; server_max_window_bits=4294967306",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=09",
        "permessage-deflate; client_max_window_bits=\"7\"",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover=\"\\t\"",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; client_no_context_takeover=\"x\"",
    };
    for (const auto& header : bad) {
        CAPTURE(header);
        const auto offers = parse_ok(header);
        REQUIRE(offers.size() == 1);
        CHECK_FALSE(check_offer(offers[0], enabled_options()).empty());
        CHECK_FALSE(negotiate_server(offers, enabled_options()).has_value());
        // the bad offer is skipped; a good one after it wins
        const auto a = server_on(header + ", permessage-deflate; server_no_context_takeover", enabled_options());
        REQUIRE(a);
        CHECK(a->response_header() == "permessage-deflate; server_no_context_takeover");
    }
}

TEST_CASE("deflate negotiation (server): several offers, the first acceptable wins") {
    DeflateOptions o = enabled_options();
    auto a = server_on(
        "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=10, permessage-deflate", o);
    REQUIRE(a);
    CHECK(a->server_max_window_bits == 10);
    a = server_on("permessage-deflate; bogus, permessage-deflate; client_max_window_bits=9, permessage-deflate", o);
    REQUIRE(a);
    CHECK(a->client_max_window_bits == 9);
    CHECK(a->response_header() == "permessage-deflate; client_max_window_bits=9");
    CHECK_FALSE(server_on("permessage-deflate; a, permessage-deflate; b, foo", o).has_value());
}

// ==== negotiation: client ====================================================================

TEST_CASE("deflate negotiation (client): the offer") {
    CHECK(make_client_offer(DeflateOptions{}).empty());
    CHECK(make_client_offer(enabled_options()) == "permessage-deflate; client_max_window_bits");
    DeflateOptions o = enabled_options();
    o.server_no_context_takeover = true;
    o.client_no_context_takeover = true;
    o.server_max_window_bits = 10;
    o.client_max_window_bits = 12;
    CHECK(make_client_offer(o) ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
          "server_max_window_bits=10; client_max_window_bits=12");
    o.server_max_window_bits = 99;  // clamped
    o.client_max_window_bits = 1;
    CHECK(make_client_offer(o) ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=8");
}

TEST_CASE("deflate negotiation (client): accepting the response") {
    const DeflateOptions plain = enabled_options();
    SUBCASE("no header: no extension") {
        const auto r = accept_client_response("", plain);
        CHECK(r.ok());
        CHECK_FALSE(r.agreement.has_value());
        CHECK(accept_client_response("", DeflateOptions{}).ok());
    }
    SUBCASE("bare acceptance") {
        const auto r = accept_client_response("permessage-deflate", plain);
        REQUIRE(r.ok());
        REQUIRE(r.agreement);
        CHECK(r.agreement->same_parameters(agreement()));
        CHECK(r.agreement->response == offer("permessage-deflate"));
    }
    SUBCASE("what the server may add unasked") {
        auto r = accept_client_response("permessage-deflate; server_no_context_takeover", plain);
        REQUIRE(r.agreement);
        CHECK(r.agreement->same_parameters(agreement(true, false)));
        r = accept_client_response("permessage-deflate; client_no_context_takeover", plain);
        REQUIRE(r.agreement);
        CHECK(r.agreement->same_parameters(agreement(false, true)));
        for (int bits = 8; bits <= 15; ++bits) {
            CAPTURE(bits);
            r = accept_client_response("permessage-deflate; server_max_window_bits=" + std::to_string(bits), plain);
            REQUIRE(r.agreement);
            CHECK(r.agreement->server_max_window_bits == bits);
            r = accept_client_response("permessage-deflate; client_max_window_bits=" + std::to_string(bits), plain);
            REQUIRE(r.agreement);
            CHECK(r.agreement->client_max_window_bits == bits);
        }
        r = accept_client_response("permessage-deflate; client_max_window_bits=\"9\"", plain);
        REQUIRE(r.agreement);
        CHECK(r.agreement->client_max_window_bits == 9);
    }
    SUBCASE("what we asked for is granted") {
        DeflateOptions o = enabled_options();
        o.server_no_context_takeover = true;
        o.client_no_context_takeover = true;
        o.server_max_window_bits = 10;
        o.client_max_window_bits = 12;
        auto r = accept_client_response("permessage-deflate; server_no_context_takeover; server_max_window_bits=10", o);
        REQUIRE(r.ok());
        REQUIRE(r.agreement);
        // our client_no_context_takeover is a promise even when not echoed; our window limit
        // stands when the server names none
        CHECK(r.agreement->same_parameters(agreement(true, true, 10, 12)));
        r = accept_client_response(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8", o);
        REQUIRE(r.agreement);
        CHECK(r.agreement->same_parameters(agreement(true, true, 9, 8)));
    }
    SUBCASE("responses that fail the connection") {
        DeflateOptions asked = enabled_options();
        asked.server_no_context_takeover = true;
        asked.server_max_window_bits = 10;
        asked.client_max_window_bits = 11;
        struct Bad {
            std::string value;
            const DeflateOptions* options;
        };
        const std::vector<Bad> cases = {
            {"permessage-deflate; foo", &plain},
            {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", &plain},
            {"permessage-deflate; server_no_context_takeover=1", &plain},
            {"permessage-deflate; client_no_context_takeover=\"1\"", &plain},
            {"permessage-deflate; server_max_window_bits", &plain},
            {"permessage-deflate; server_max_window_bits=16", &plain},
            {"permessage-deflate; server_max_window_bits=7", &plain},
            {"permessage-deflate; server_max_window_bits=09", &plain},
            {"permessage-deflate; client_max_window_bits", &plain},  // a response needs the value
            {"permessage-deflate; client_max_window_bits=0", &plain},
            {"permessage-deflate; client_max_window_bits=12; server_no_context_takeover; "
             "server_max_window_bits=10",
             &asked},  // above what we offered (11)
            {"permessage-deflate; server_max_window_bits=11; server_no_context_takeover", &asked},  // above 10
            {"permessage-deflate; server_max_window_bits=10", &asked},      // server_no_context_takeover dropped
            {"permessage-deflate; server_no_context_takeover", &asked},     // server_max_window_bits dropped
            {"permessage-deflate", &asked},
            {"x-webkit-deflate-frame", &plain},                             // not offered
            {"permessage-deflate, x-foo", &plain},
            {"permessage-deflate, permessage-deflate", &plain},             // accepted twice
            {"permessage-deflate; a=\"", &plain},                           // does not parse
            {"permessage-deflate;", &plain},
            {"permessage-deflate", nullptr},                                // we did not offer it
        };
        const DeflateOptions disabled;
        for (const auto& c : cases) {
            CAPTURE(c.value);
            const auto r = accept_client_response(c.value, c.options ? *c.options : disabled);
            CHECK_FALSE(r.ok());
            CHECK_FALSE(r.agreement.has_value());
        }
    }
}

TEST_CASE("deflate negotiation: client offer -> server -> client agree on every combination") {
    const int bits[] = {8, 9, 12, 15};
    std::size_t combos = 0;
    for (int mask = 0; mask < 16; ++mask)
        for (int cs : bits)
            for (int cc : bits)
                for (int ss : bits)
                    for (int sc : bits) {
                        DeflateOptions client = enabled_options();
                        client.server_no_context_takeover = mask & 1;
                        client.client_no_context_takeover = mask & 2;
                        client.server_max_window_bits = cs;
                        client.client_max_window_bits = cc;
                        DeflateOptions server = enabled_options();
                        server.server_no_context_takeover = mask & 4;
                        server.client_no_context_takeover = mask & 8;
                        server.server_max_window_bits = ss;
                        server.client_max_window_bits = sc;
                        const auto on_server = server_on(make_client_offer(client), server);
                        REQUIRE(on_server);
                        const auto on_client = accept_client_response(on_server->response_header(), client);
                        CAPTURE(make_client_offer(client));
                        CAPTURE(on_server->response_header());
                        REQUIRE(on_client.ok());
                        REQUIRE(on_client.agreement);
                        CHECK(on_client.agreement->same_parameters(*on_server));
                        CHECK(on_server->same_parameters(agreement((mask & 1) || (mask & 4), (mask & 2) || (mask & 8),
                                                                   std::min(cs, ss), std::min(cc, sc))));
                        ++combos;
                    }
    CHECK(combos == 16 * 256);
}

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
