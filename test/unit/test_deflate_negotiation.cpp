// permessage-deflate (RFC 7692), the agreement: the Sec-WebSocket-Extensions parser and
// serializer, negotiation in the server and the client role, and every combination of a
// client's offer and a server's options. The codec is tested in test_deflate.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "test/unit/deflate_test_util.hpp"
#include "test/unit/test_util.hpp"
#include "websock/codec/deflate.hpp"
#include "websock/codec/extension.hpp"

using namespace websock::codec;
using namespace deflate_test;
using test_util::bytes;
using test_util::hex;

namespace {

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
