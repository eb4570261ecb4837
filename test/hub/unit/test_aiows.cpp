// The aiows API's rules apart from any socket: channel names, routes, Package-Type, bodies,
// broadcasts, the bus envelope and the password check.
#include <doctest/doctest.h>

#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "hub/aiows.hpp"

using namespace hub::aiows;

namespace {

std::vector<std::tuple<std::string, char, std::string>> decode_all(std::string_view payload, bool* ok = nullptr) {
    std::vector<std::tuple<std::string, char, std::string>> out;
    const bool decoded = decode_envelope(payload, [&](std::string_view channel, PackageType type, std::string_view data) {
        out.emplace_back(std::string(channel), static_cast<char>(type), std::string(data));
    });
    if (ok != nullptr) *ok = decoded;
    return out;
}

websock::HttpRequest request_with(std::string query, websock::HttpHeaders headers = {}) {
    websock::HttpRequest request;
    request.method = "POST";
    request.path = "/channel/x/";
    request.query = std::move(query);
    request.target = request.path + (request.query.empty() ? "" : "?" + request.query);
    request.headers = std::move(headers);
    return request;
}

}  // namespace

TEST_CASE("aiows channel names") {
    SUBCASE("trimmed, lower-cased, _ becomes : (aiows' clean_channel_name)") {
        CHECK(normalize_channel_name("Room_1") == "room:1");
        CHECK(normalize_channel_name("  \tVIDEO:Stream\r\n") == "video:stream");
        CHECK(normalize_channel_name("a_b_c") == "a:b:c");
        CHECK(normalize_channel_name("user:22") == "user:22");
        CHECK(normalize_channel_name(" inner space ") == "inner space");
        CHECK(normalize_channel_name("   ").empty());
        CHECK(normalize_channel_name("\x1f" "x\x1c") == "x");
    }
    SUBCASE("bytes outside ASCII pass through unchanged") { CHECK(normalize_channel_name("Ünï_X") == "Ünï:x"); }
}

TEST_CASE("aiows routes") {
    SUBCASE("url prefixes are normalised to start and end with /") {
        CHECK(normalize_url_prefix("") == "/");
        CHECK(normalize_url_prefix("/") == "/");
        CHECK(normalize_url_prefix("api") == "/api/");
        CHECK(normalize_url_prefix("/api/v1/") == "/api/v1/");
    }
    SUBCASE("channel and broadcast paths, with or without the last slash") {
        auto route = match_route("/channel/Room_1/", "/");
        CHECK(route.kind == Route::Kind::Channel);
        CHECK(route.channel == "room:1");
        CHECK(match_route("/channel/x", "/").kind == Route::Kind::Channel);
        CHECK(match_route("/broadcast/", "/").kind == Route::Kind::Broadcast);
        CHECK(match_route("/broadcast", "/").kind == Route::Kind::Broadcast);
        CHECK(match_route("/api/channel/x/", "/api/").channel == "x");
    }
    SUBCASE("the name is percent-decoded before it is normalised") {
        CHECK(match_route("/channel/%20Room%3A1%5F2/", "/").channel == "room:1:2");
        CHECK(match_route("/channel/%20/", "/").channel.empty());  // a route, refused later (400)
    }
    SUBCASE("anything else is not aiows'") {
        CHECK(match_route("/channel/", "/").kind == Route::Kind::None);
        CHECK(match_route("/channel//", "/").kind == Route::Kind::None);
        CHECK(match_route("/channel/a/b/", "/").kind == Route::Kind::None);
        CHECK(match_route("/channels/a/", "/").kind == Route::Kind::None);
        CHECK(match_route("/channel/x/", "/api/").kind == Route::Kind::None);
        CHECK(match_route("/broadcast/x", "/").kind == Route::Kind::None);
        CHECK(match_route("/metrics", "/").kind == Route::Kind::None);
    }
}

TEST_CASE("aiows Package-Type") {
    CHECK(parse_package_type(std::nullopt) == PackageType::Text);
    CHECK(parse_package_type("text") == PackageType::Text);
    CHECK(parse_package_type("Text") == PackageType::Text);
    CHECK(parse_package_type("JSON") == PackageType::Json);
    CHECK(parse_package_type(" bytes ") == PackageType::Bytes);
    CHECK_FALSE(parse_package_type("binary").has_value());
    CHECK_FALSE(parse_package_type("").has_value());
}

TEST_CASE("aiows package bodies") {
    SUBCASE("text must be UTF-8") {
        auto ok = parse_package("c", PackageType::Text, "héllo");
        REQUIRE(std::holds_alternative<Package>(ok));
        CHECK(std::get<Package>(ok).data == "héllo");
        CHECK(std::holds_alternative<ParseError>(parse_package("c", PackageType::Text, "\xff")));
    }
    SUBCASE("json must parse and is serialised once, compactly") {
        auto ok = parse_package("c", PackageType::Json, R"({ "z" : 0, "a" : [1, 2.5, "x"] })");
        REQUIRE(std::holds_alternative<Package>(ok));
        CHECK(std::get<Package>(ok).data == R"({"z":0,"a":[1,2.5,"x"]})");  // key order kept
        CHECK(std::get<Package>(parse_package("c", PackageType::Json, R"("just a string")")).data == R"("just a string")");
        CHECK(std::holds_alternative<ParseError>(parse_package("c", PackageType::Json, "{")));
        CHECK(std::holds_alternative<ParseError>(parse_package("c", PackageType::Json, "")));
        CHECK(std::holds_alternative<ParseError>(parse_package("c", PackageType::Json, "NaN")));
    }
    SUBCASE("bytes are taken as they are") {
        const std::string raw("\x00\xff\x80", 3);
        CHECK(std::get<Package>(parse_package("c", PackageType::Bytes, raw)).data == raw);
    }
}

TEST_CASE("aiows broadcast bodies") {
    SUBCASE("every package, in document order, names normalised") {
        auto parsed = parse_broadcast(
            R"({"Zed_1": [{"text": "first"}, {"json": {"b": 1, "a": [true]}}],
                "alpha": [{"bytes": "\u00031\u00ff"}, {"bytes": [0, 255]}],
                "zed:1": [{"text": "last"}]})",
            100, 256);
        REQUIRE(std::holds_alternative<std::vector<Package>>(parsed));
        const auto& packages = std::get<std::vector<Package>>(parsed);
        REQUIRE(packages.size() == 5);
        CHECK(packages[0].channel == "zed:1");
        CHECK(packages[0].data == "first");
        CHECK(packages[1].type == PackageType::Json);
        CHECK(packages[1].data == R"({"b":1,"a":[true]})");  // the publisher's key order
        CHECK(packages[2].channel == "alpha");
        CHECK(packages[2].type == PackageType::Bytes);
        CHECK(packages[2].data == std::string("\x03" "1\xff", 3));
        CHECK(packages[3].data == std::string("\x00\xff", 2));
        CHECK(packages[4].channel == "zed:1");
        CHECK(packages[4].data == "last");
    }
    SUBCASE("what cannot be read is refused whole") {
        for (const char* body : {
                 "", "[]", "42", R"({"c": "text"})", R"({"c": [{"text": 1}]})", R"({"c": [{"text": "a", "json": 1}]})",
                 R"({"c": [{}]})", R"({"c": [{"html": "x"}]})", R"({"c": ["x"]})", R"({"c": [{"bytes": "\u0100"}]})",
                 R"({"c": [{"bytes": [-1]}]})", R"({"c": [{"bytes": [1.5]}]})", R"({"c": [{"bytes": {}}]})", R"({"  ": []})"}) {
            CAPTURE(body);
            CHECK(std::holds_alternative<ParseError>(parse_broadcast(body, 100, 256)));
        }
    }
    SUBCASE("limits: packages per broadcast and name length") {
        CHECK(std::holds_alternative<ParseError>(parse_broadcast(R"({"c": [{"text": "1"}, {"text": "2"}, {"text": "3"}]})", 2, 256)));
        CHECK(std::holds_alternative<std::vector<Package>>(parse_broadcast(R"({"c": [{"text": "1"}, {"text": "2"}]})", 2, 256)));
        CHECK(std::holds_alternative<ParseError>(parse_broadcast(R"({"abcdef": []})", 2, 5)));
        CHECK(std::get<std::vector<Package>>(parse_broadcast("{}", 2, 5)).empty());
    }
}

TEST_CASE("aiows bus envelope") {
    const std::vector<Package> packages{
        {"room:1", PackageType::Text, "hello"},
        {"video", PackageType::Bytes, std::string("\x00\x01\xff", 3)},
        {"", PackageType::Json, "{}"},
        {"big", PackageType::Text, std::string(70000, 'x')},
    };
    const std::string payload = encode_envelope(packages);
    bool ok = false;
    const auto decoded = decode_all(payload, &ok);
    CHECK(ok);
    REQUIRE(decoded.size() == packages.size());
    for (std::size_t i = 0; i < packages.size(); ++i) {
        CHECK(std::get<0>(decoded[i]) == packages[i].channel);
        CHECK(std::get<1>(decoded[i]) == static_cast<char>(packages[i].type));
        CHECK(std::get<2>(decoded[i]) == packages[i].data);
    }

    SUBCASE("a payload cut short or of another version is refused") {
        for (std::size_t cut = 1; cut < 40; ++cut) {
            CAPTURE(cut);
            bool cut_ok = true;
            decode_all(std::string_view(payload).substr(0, payload.size() - cut), &cut_ok);
            CHECK_FALSE(cut_ok);
        }
        std::string other = payload;
        other[0] = 2;
        CHECK_FALSE(decode_envelope(other, [](auto, auto, auto) {}));
        CHECK_FALSE(decode_envelope("", [](auto, auto, auto) {}));
        std::string bad_type = encode_envelope({{"c", PackageType::Text, "x"}});
        bad_type[1] = 'q';
        CHECK_FALSE(decode_envelope(bad_type, [](auto, auto, auto) {}));
    }
}

TEST_CASE("aiows password") {
    SUBCASE("no password set: every request may publish") { CHECK(password_accepted(request_with(""), "")); }
    SUBCASE("?pwd=, X-Hub-Password or Authorization: Bearer") {
        CHECK(password_accepted(request_with("pwd=s%20cret"), "s cret"));
        CHECK(password_accepted(request_with("", {{"x-hub-password", "s cret"}}), "s cret"));
        CHECK(password_accepted(request_with("", {{"Authorization", "Bearer s cret"}}), "s cret"));
        CHECK(password_accepted(request_with("", {{"Authorization", "bearer s cret"}}), "s cret"));
        CHECK(password_accepted(request_with("pwd=wrong", {{"X-Hub-Password", "s cret"}}), "s cret"));
    }
    SUBCASE("missing or wrong") {
        CHECK_FALSE(password_accepted(request_with(""), "secret"));
        CHECK_FALSE(password_accepted(request_with("pwd="), "secret"));
        CHECK_FALSE(password_accepted(request_with("pwd=secret2"), "secret"));
        CHECK_FALSE(password_accepted(request_with("pwd=Secret"), "secret"));
        CHECK_FALSE(password_accepted(request_with("", {{"Authorization", "Basic secret"}}), "secret"));
        CHECK_FALSE(password_accepted(request_with("", {{"Authorization", "Bearer "}}), "secret"));
        CHECK_FALSE(password_accepted(request_with("", {{"X-Hub-Password", "secre"}}), "secret"));
    }
}
