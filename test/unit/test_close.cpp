// Close frame payloads and close codes (RFC 6455 sections 5.5.1 and 7.4).
#include <doctest/doctest.h>

#include <string>

#include "test/unit/test_util.hpp"
#include "websock/codec/close.hpp"
#include "websock/codec/frame.hpp"
#include "websock/codec/utf8.hpp"

using namespace websock;
using namespace websock::codec;
using test_util::bytes;

namespace {

std::string code_bytes(int code) { return bytes({(code >> 8) & 0xFF, code & 0xFF}); }

int as_int(CloseCode c) { return static_cast<int>(c); }

}  // namespace

TEST_CASE("close: is_valid_close_code over every 16-bit value") {
    std::size_t wrong = 0;
    int first_wrong = -1;
    std::size_t valid = 0;
    for (int code = 0; code <= 0xFFFF; ++code) {
        const bool expected = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                              (code >= 3000 && code <= 4999);
        const bool got = is_valid_close_code(static_cast<std::uint16_t>(code));
        if (got != expected && wrong++ == 0) first_wrong = code;
        valid += got;
    }
    INFO("first wrong code: ", first_wrong);
    CHECK(wrong == 0);
    CHECK(valid == 4 + 8 + 2000);
    // the named never-on-the-wire codes
    CHECK_FALSE(is_valid_close_code(1004));
    CHECK_FALSE(is_valid_close_code(1005));
    CHECK_FALSE(is_valid_close_code(1006));
    CHECK_FALSE(is_valid_close_code(1015));
    CHECK_FALSE(is_valid_close_code(1016));
    CHECK_FALSE(is_valid_close_code(2999));
    CHECK(is_valid_close_code(3000));
    CHECK(is_valid_close_code(4999));
    CHECK_FALSE(is_valid_close_code(5000));
    static_assert(is_valid_close_code(1000), "usable in constant expressions");
}

TEST_CASE("close: parse_close_payload") {
    ClosePayload out;
    ClosePayloadError err{};

    SUBCASE("empty payload: no status") {
        out.code = CloseCode::Normal;
        REQUIRE(parse_close_payload("", out, err));
        CHECK(out.code == CloseCode::NoStatus);
        CHECK(out.reason.empty());
    }
    SUBCASE("one byte -> 1002") {
        for (int b : {0x00, 0x03, 0xE8, 0xFF}) {
            CAPTURE(b);
            CHECK_FALSE(parse_close_payload(bytes({b}), out, err));
            CHECK(as_int(err.code) == 1002);
            CHECK_FALSE(err.reason.empty());
        }
    }
    SUBCASE("code only") {
        const std::string p = code_bytes(1000);
        REQUIRE(parse_close_payload(p, out, err));
        CHECK(out.code == CloseCode::Normal);
        CHECK(out.reason.empty());
        const std::string q = code_bytes(4321);
        REQUIRE(parse_close_payload(q, out, err));
        CHECK(as_int(out.code) == 4321);
    }
    SUBCASE("code and reason: the reason is a view into the payload") {
        const std::string p = code_bytes(1001) + "going away \xE2\x9C\x93";
        REQUIRE(parse_close_payload(p, out, err));
        CHECK(out.code == CloseCode::GoingAway);
        CHECK(out.reason == "going away \xE2\x9C\x93");
        CHECK(out.reason.data() == p.data() + 2);
    }
    SUBCASE("every invalid code -> 1002, every valid one accepted") {
        std::size_t wrong = 0;
        for (int code = 0; code <= 0xFFFF; ++code) {
            const std::string p = code_bytes(code) + "r";
            ClosePayload o;
            ClosePayloadError e{};
            const bool ok = parse_close_payload(p, o, e);
            if (ok != is_valid_close_code(static_cast<std::uint16_t>(code))) ++wrong;
            else if (ok && (as_int(o.code) != code || o.reason != "r")) ++wrong;
            else if (!ok && as_int(e.code) != 1002) ++wrong;
        }
        CHECK(wrong == 0);
        for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535}) {
            CAPTURE(code);
            CHECK_FALSE(parse_close_payload(code_bytes(code), out, err));
            CHECK(as_int(err.code) == 1002);
        }
    }
    SUBCASE("a reason that is not UTF-8 -> 1007") {
        for (std::string reason : {std::string("\xFF"), std::string("ok\xC0\xAF"), std::string("\xED\xA0\x80"),
                                   std::string("cut \xE2\x82")}) {
            CAPTURE(test_util::hex(reason));
            CHECK_FALSE(parse_close_payload(code_bytes(1000) + reason, out, err));
            CHECK(as_int(err.code) == 1007);
        }
        // an invalid code is reported before a bad reason
        CHECK_FALSE(parse_close_payload(code_bytes(1005) + "\xFF", out, err));
        CHECK(as_int(err.code) == 1002);
    }
    SUBCASE("a 125-byte payload (the control frame maximum) is fine") {
        const std::string p = code_bytes(3000) + std::string(123, 'x');
        REQUIRE(parse_close_payload(p, out, err));
        CHECK(out.reason.size() == 123);
    }
}

TEST_CASE("close: make_close_payload") {
    SUBCASE("code in network byte order, then the reason") {
        CHECK(make_close_payload(CloseCode::Normal, "") == code_bytes(1000));
        CHECK(make_close_payload(CloseCode::ProtocolError, "bad") == code_bytes(1002) + "bad");
        CHECK(make_close_payload(static_cast<CloseCode>(4999), "x") == code_bytes(4999) + "x");
    }
    SUBCASE("NoStatus makes an empty payload") {
        CHECK(make_close_payload(CloseCode::NoStatus, "ignored").empty());
    }
    SUBCASE("truncated to 125 bytes") {
        const std::string reason(500, 'a');
        const std::string p = make_close_payload(CloseCode::Normal, reason);
        CHECK(p.size() == kMaxControlPayload);
        CHECK(p == code_bytes(1000) + std::string(123, 'a'));
        CHECK(make_close_payload(CloseCode::Normal, std::string(123, 'b')).size() == 125);
        CHECK(make_close_payload(CloseCode::Normal, std::string(124, 'b')).size() == 125);
    }
    SUBCASE("truncated on a UTF-8 boundary") {
        // 122 ASCII bytes then a 2-byte character straddling the limit: the character goes
        CHECK(make_close_payload(CloseCode::Normal, std::string(122, 'a') + "\xC3\xA9" "tail") ==
              code_bytes(1000) + std::string(122, 'a'));
        // 121 + a 2-byte character fits exactly
        CHECK(make_close_payload(CloseCode::Normal, std::string(121, 'a') + "\xC3\xA9" "tail") ==
              code_bytes(1000) + std::string(121, 'a') + "\xC3\xA9");
        // every way a 1-4 byte character can straddle the limit
        const std::string chars[] = {"x", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
        for (const auto& ch : chars) {
            for (std::size_t prefix = 110; prefix <= 125; ++prefix) {
                std::string reason(prefix, 'p');
                for (int k = 0; k < 20; ++k) reason += ch;  // always longer than 123 bytes
                CAPTURE(prefix);
                CAPTURE(ch.size());
                const std::string p = make_close_payload(CloseCode::GoingAway, reason);
                CHECK(p.size() <= kMaxControlPayload);
                CHECK(p.size() > kMaxControlPayload - ch.size());  // no more cut than needed
                CHECK(p.substr(0, 2) == code_bytes(1001));
                CHECK(reason.compare(0, p.size() - 2, p, 2) == 0);  // a prefix of the reason
                CHECK(is_valid_utf8(std::string_view(p).substr(2)));
                // and it parses back
                ClosePayload out;
                ClosePayloadError err{};
                CHECK(parse_close_payload(p, out, err));
            }
        }
    }
}
