// The client's side of the opening handshake (RFC 6455 sections 3, 4.1, 4.2.2): the URL,
// the key, the request, the response parser (every split) and the response checks.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "test/unit/test_util.hpp"
#include "websock/codec/client_handshake.hpp"
#include "websock/codec/handshake.hpp"

using namespace websock;
using namespace websock::codec;

namespace {

constexpr std::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A 101 response for the RFC's key, with header lines replaced or added; "-" removes one.
std::string response(std::initializer_list<std::pair<std::string, std::string>> overrides = {},
                     std::string status_line = "HTTP/1.1 101 Switching Protocols") {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Accept", std::string(kRfcAccept)},
    };
    for (const auto& [name, value] : overrides) {
        bool replaced = false;
        for (auto it = headers.begin(); it != headers.end(); ++it) {
            if (it->first == name) {
                if (value == "-") headers.erase(it);
                else it->second = value;
                replaced = true;
                break;
            }
        }
        if (!replaced && value != "-") headers.emplace_back(name, value);
    }
    std::string out = status_line + "\r\n";
    for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
    return out + "\r\n";
}

struct Parsed {
    HttpResponseParser::Status status = HttpResponseParser::Status::NeedMore;
    std::size_t consumed = 0;
    std::string leftover;  // input bytes not consumed (the frames behind the header block)
    HttpResponseHead head;
    std::string error;
};

/// Feed `input` in the chunks given by `cuts`; what the parser did not take is the leftover.
Parsed parse(std::string_view input, const std::vector<std::size_t>& cuts = {}, HttpResponseParser::Options options = {}) {
    HttpResponseParser parser(options);
    Parsed out;
    const auto chunks = test_util::cut(input, cuts);
    bool done = false;
    for (const auto& chunk : chunks) {
        if (done) {
            out.leftover += chunk;
            continue;
        }
        std::size_t consumed = 0;
        out.status = parser.feed(chunk.data(), chunk.size(), consumed);
        out.consumed += consumed;
        if (out.status == HttpResponseParser::Status::NeedMore) {
            CHECK(consumed == chunk.size());  // NeedMore takes everything it was given
            continue;
        }
        done = true;
        out.leftover += chunk.substr(consumed);
    }
    CHECK(parser.status() == out.status);
    out.head = parser.response();
    out.error = parser.error();
    if (out.status != HttpResponseParser::Status::NeedMore) {
        std::size_t consumed = 99;  // once done, further feeds consume nothing
        CHECK(parser.feed("HTTP/1.1 200 OK\r\n", 17, consumed) == out.status);
        CHECK(consumed == 0);
    }
    if (out.status == HttpResponseParser::Status::Error) CHECK_FALSE(out.error.empty());
    return out;
}

std::string describe(const Parsed& p) {
    std::string s = "status=" + std::to_string(static_cast<int>(p.status)) + " consumed=" + std::to_string(p.consumed) +
                    " leftover=" + test_util::hex(p.leftover) + " http=" + std::to_string(p.head.status) + " " +
                    p.head.reason + " " + std::to_string(p.head.version_major) + "." +
                    std::to_string(p.head.version_minor) + " err=" + p.error + " |";
    for (const auto& [k, v] : p.head.headers) s += " [" + k + "]=[" + v + "]";
    return s;
}

UpgradeOffer rfc_offer(std::vector<std::string> subprotocols = {}) {
    UpgradeOffer offer;
    offer.key = std::string(kRfcKey);
    offer.subprotocols = std::move(subprotocols);
    return offer;
}

UpgradeResponseCheck check_response(std::string_view input, const UpgradeOffer& offer) {
    const Parsed p = parse(input);
    REQUIRE(p.status == HttpResponseParser::Status::Complete);
    return check_upgrade_response(p.head, offer);
}

UpgradeRequest basic_request() {
    UpgradeRequest request;
    request.host = "example.com";
    request.port = 80;
    request.default_port = true;
    request.target = "/chat?room=a%20b";
    return request;
}

}  // namespace

// ---- the key and the request ------------------------------------------------------------------

TEST_CASE("client handshake: a fresh key is 16 random bytes in base64") {
    std::set<std::string> keys;
    for (int i = 0; i < 200; ++i) {
        const std::string key = make_websocket_key();
        CHECK(key.size() == 24);
        CHECK(is_valid_websocket_key(key));  // the server's own check accepts it
        keys.insert(key);
    }
    CHECK(keys.size() == 200);  // no repeats
}

TEST_CASE("client handshake: Basic credentials (RFC 7617's example)") {
    CHECK(basic_authorization("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    CHECK(basic_authorization("", "") == "Basic Og==");
    CHECK(basic_authorization("user", "pa:ss") == "Basic dXNlcjpwYTpzcw==");
}

TEST_CASE("client handshake: the request, byte for byte") {
    UpgradeRequest request = basic_request();
    SUBCASE("the minimal request") {
        CHECK(make_upgrade_request(request, kRfcKey) ==
              "GET /chat?room=a%20b HTTP/1.1\r\n"
              "Host: example.com\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n"
              "\r\n");
    }
    SUBCASE("every optional header") {
        request.port = 8080;
        request.default_port = false;
        request.origin = "http://example.com";
        request.subprotocols = {"chat", "superchat"};
        request.basic_auth.emplace("Aladdin", "open sesame");
        request.extra_headers = {{"User-Agent", "websock-test"}, {"X-Trace", "1 2 3"}};
        CHECK(make_upgrade_request(request, kRfcKey) ==
              "GET /chat?room=a%20b HTTP/1.1\r\n"
              "Host: example.com:8080\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n"
              "Origin: http://example.com\r\n"
              "Sec-WebSocket-Protocol: chat, superchat\r\n"
              "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"
              "User-Agent: websock-test\r\n"
              "X-Trace: 1 2 3\r\n"
              "\r\n");
        CHECK(validate_upgrade_request(request).empty());
    }
    SUBCASE("Host: IPv6 literals in brackets, the port only when not the default") {
        request.host = "::1";
        CHECK(make_upgrade_request(request, kRfcKey).find("\r\nHost: [::1]\r\n") != std::string::npos);
        request.port = 9001;
        request.default_port = false;
        CHECK(make_upgrade_request(request, kRfcKey).find("\r\nHost: [::1]:9001\r\n") != std::string::npos);
        request.host = "127.0.0.1";
        CHECK(make_upgrade_request(request, kRfcKey).find("\r\nHost: 127.0.0.1:9001\r\n") != std::string::npos);
    }
}

TEST_CASE("client handshake: the server's parser and checks accept our request") {
    UpgradeRequest request = basic_request();
    request.host = "127.0.0.1";
    request.port = 9001;
    request.default_port = false;
    request.subprotocols = {"chat", "superchat"};
    request.origin = "http://example.com";
    request.basic_auth.emplace("user", "secret");
    const std::string key = make_websocket_key();
    const std::string bytes = make_upgrade_request(request, key);

    HttpRequestParser parser;
    std::size_t consumed = 0;
    REQUIRE(parser.feed(bytes.data(), bytes.size(), consumed) == HttpRequestParser::Status::Complete);
    CHECK(consumed == bytes.size());
    CHECK(parser.is_upgrade());
    const HttpRequest& parsed = parser.request();
    const HandshakeCheck check = check_upgrade_request(parsed);
    CHECK(check.ok);
    CHECK(check.key == key);
    CHECK(parsed.path == "/chat");
    CHECK(parsed.query == "room=a%20b");
    CHECK(parsed.header("Host") == "127.0.0.1:9001");
    CHECK(parsed.header("Sec-WebSocket-Protocol") == "chat, superchat");
    CHECK(parsed.header("Authorization") == "Basic dXNlcjpzZWNyZXQ=");

    // ... and what the server answers passes our checks.
    HttpHeaders extra = {{"Sec-WebSocket-Protocol", "superchat"}};
    const Parsed answer = parse(make_upgrade_response(key, extra));
    REQUIRE(answer.status == HttpResponseParser::Status::Complete);
    UpgradeOffer offer;
    offer.key = key;
    offer.subprotocols = request.subprotocols;
    const auto result = check_upgrade_response(answer.head, offer);
    CHECK(result.ok);
    CHECK(result.subprotocol == "superchat");
}

TEST_CASE("client handshake: requests that must not be sent") {
    UpgradeRequest request = basic_request();
    CHECK(validate_upgrade_request(request).empty());
    SUBCASE("header injection") {
        request.extra_headers = {{"X-Evil", "a\r\nInjected: yes"}};
        CHECK(validate_upgrade_request(request).find("CR, LF") != std::string::npos);
    }
    SUBCASE("a bare LF or NUL in a value") {
        request.extra_headers = {{"X-Evil", "a\nb"}};
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.extra_headers = {{"X-Evil", std::string("a\0b", 3)}};
        CHECK_FALSE(validate_upgrade_request(request).empty());
    }
    SUBCASE("a header name that is not a token") {
        request.extra_headers = {{"Bad Name", "x"}};
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.extra_headers = {{"", "x"}};
        CHECK_FALSE(validate_upgrade_request(request).empty());
    }
    SUBCASE("the handshake's own headers cannot be replaced") {
        for (const char* name : {"Host", "upgrade", "Connection", "Sec-WebSocket-Key", "sec-websocket-version",
                                 "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"}) {
            request.extra_headers = {{name, "x"}};
            INFO(name);
            CHECK(validate_upgrade_request(request).find("set by the handshake") != std::string::npos);
        }
    }
    SUBCASE("Origin or Authorization twice") {
        request.origin = "http://a.example";
        request.extra_headers = {{"Origin", "http://b.example"}};
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.origin.clear();
        request.basic_auth.emplace("u", "p");
        request.extra_headers = {{"Authorization", "Bearer x"}};
        CHECK_FALSE(validate_upgrade_request(request).empty());
    }
    SUBCASE("subprotocols must be distinct tokens (section 4.1, item 10)") {
        request.subprotocols = {"chat", "chat"};
        CHECK(validate_upgrade_request(request).find("twice") != std::string::npos);
        request.subprotocols = {"a b"};
        CHECK(validate_upgrade_request(request).find("token") != std::string::npos);
        request.subprotocols = {"a,b"};
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.subprotocols = {""};
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.subprotocols = {"v1.chat.example.com", "mqtt"};
        CHECK(validate_upgrade_request(request).empty());
    }
    SUBCASE("a Basic user name with ':' (RFC 7617)") {
        request.basic_auth.emplace("a:b", "p");
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.basic_auth.emplace("ab", "p:q");  // a ':' in the password is fine
        CHECK(validate_upgrade_request(request).empty());
    }
    SUBCASE("a target that is not origin-form") {
        request.target = "chat";
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.target = "/a b";
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.target = "";
        CHECK_FALSE(validate_upgrade_request(request).empty());
    }
    SUBCASE("a host with odd characters") {
        request.host = "exa mple.com";
        CHECK_FALSE(validate_upgrade_request(request).empty());
        request.host = "";
        CHECK_FALSE(validate_upgrade_request(request).empty());
    }
}

// ---- the URL -------------------------------------------------------------------------------------

TEST_CASE("client handshake: ws:// URLs") {
    std::string error;
    auto parse_url = [&](std::string_view url) {
        error.clear();
        return parse_websocket_url(url, error);
    };
    SUBCASE("host, port, path and query") {
        const auto url = parse_url("ws://127.0.0.1:9001/chat/room?x=1&y=%20");
        REQUIRE(url);
        CHECK_FALSE(url->secure);
        CHECK(url->host == "127.0.0.1");
        CHECK(url->port == 9001);
        CHECK_FALSE(url->default_port);
        CHECK(url->target == "/chat/room?x=1&y=%20");
        CHECK_FALSE(url->has_userinfo);
    }
    SUBCASE("defaults: port 80 and path /") {
        const auto url = parse_url("ws://example.com");
        REQUIRE(url);
        CHECK(url->host == "example.com");
        CHECK(url->port == 80);
        CHECK(url->default_port);
        CHECK(url->target == "/");
        const auto with_colon = parse_url("ws://example.com:/x");
        REQUIRE(with_colon);
        CHECK(with_colon->port == 80);
        CHECK(with_colon->target == "/x");
    }
    SUBCASE("an explicit default port is still the default") {
        const auto url = parse_url("ws://example.com:80/");
        REQUIRE(url);
        CHECK(url->default_port);
    }
    SUBCASE("a query without a path") {
        const auto url = parse_url("ws://example.com?a=b");
        REQUIRE(url);
        CHECK(url->target == "/?a=b");
    }
    SUBCASE("IPv6 literals") {
        const auto url = parse_url("ws://[::1]:9001/x");
        REQUIRE(url);
        CHECK(url->host == "::1");
        CHECK(url->port == 9001);
        const auto bare = parse_url("ws://[2001:db8::1]");
        REQUIRE(bare);
        CHECK(bare->host == "2001:db8::1");
        CHECK(bare->port == 80);
        CHECK_FALSE(parse_url("ws://[::1/x"));
        CHECK_FALSE(parse_url("ws://[]/x"));
        CHECK_FALSE(parse_url("ws://[::1]x/"));
        CHECK_FALSE(parse_url("ws://[zz::1]/"));
    }
    SUBCASE("the scheme, case-insensitive; wss:// defaults to 443") {
        const auto upper = parse_url("WS://Example.com/");
        REQUIRE(upper);
        CHECK_FALSE(upper->secure);
        const auto secure = parse_url("wss://example.com/");
        REQUIRE(secure);
        CHECK(secure->secure);
        CHECK(secure->port == 443);
        CHECK(secure->default_port);
        const auto secure_443 = parse_url("wss://example.com:443/");
        REQUIRE(secure_443);
        CHECK(secure_443->default_port);
        const auto secure_80 = parse_url("wss://example.com:80/");
        REQUIRE(secure_80);
        CHECK_FALSE(secure_80->default_port);
    }
    SUBCASE("user:password@ is taken apart and percent-decoded") {
        const auto url = parse_url("ws://al%40ice:p%3Ass@localhost:8080/");
        REQUIRE(url);
        CHECK(url->has_userinfo);
        CHECK(url->user == "al@ice");
        CHECK(url->password == "p:ss");
        CHECK(url->host == "localhost");
    }
    SUBCASE("refused") {
        for (const char* bad : {"", "http://example.com/", "example.com", "ws:/example.com", "ws://", "ws:///path",
                                "ws://example.com:0/", "ws://example.com:65536/", "ws://example.com:99999999/",
                                "ws://example.com:8o/", "ws://example.com/#frag", "ws://example.com/a b",
                                "ws://exa_mple.com\x01/", "ws://example.com/\xc3\xa9", "ws://ex%61mple.com/",
                                "ftp://example.com/"}) {
            INFO(bad);
            CHECK_FALSE(parse_url(bad));
            CHECK_FALSE(error.empty());
        }
        CHECK_FALSE(parse_url("ws://example.com/x#y"));
        CHECK(error.find("fragment") != std::string::npos);
    }
}

// ---- the response parser --------------------------------------------------------------------------

TEST_CASE("client handshake: the response in every split, frames behind it kept") {
    // A 101 (with the headers a real server adds), then a text frame "Hi" and a ping.
    const std::string head = response({{"Sec-WebSocket-Protocol", "chat"}, {"Date", "Mon, 01 Jan 2024 00:00:00 GMT"}});
    const std::string frames = test_util::bytes({0x81, 0x02, 'H', 'i', 0x89, 0x00});
    const std::string input = head + frames;
    const Parsed whole = parse(input);
    REQUIRE(whole.status == HttpResponseParser::Status::Complete);
    CHECK(whole.consumed == head.size());
    CHECK(whole.leftover == frames);
    CHECK(whole.head.status == 101);
    CHECK(whole.head.reason == "Switching Protocols");
    CHECK(whole.head.header("sec-websocket-accept") == kRfcAccept);
    CHECK(check_upgrade_response(whole.head, rfc_offer({"superchat", "chat"})).ok);

    const std::string expected = describe(whole);
    const auto splits = test_util::all_splits(input.size(), test_util::kSanitized ? 0 : input.size());  // every pair of cuts too
    for (const auto& cuts : splits) {
        const std::string got = describe(parse(input, cuts));
        if (got != expected) {
            INFO("split: ", test_util::describe(cuts));
            CHECK(got == expected);
            break;
        }
    }
}

TEST_CASE("client handshake: a response alone needs no more bytes once its header block ends") {
    const std::string input = response();
    const Parsed p = parse(input);
    CHECK(p.status == HttpResponseParser::Status::Complete);
    CHECK(p.consumed == input.size());
    CHECK(p.leftover.empty());
    // one byte short: still waiting
    const Parsed short_by_one = parse(std::string_view(input).substr(0, input.size() - 1));
    CHECK(short_by_one.status == HttpResponseParser::Status::NeedMore);
}

TEST_CASE("client handshake: an error response's body is left unread") {
    const std::string head = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
    const Parsed p = parse(head + "nope!");
    REQUIRE(p.status == HttpResponseParser::Status::Complete);
    CHECK(p.consumed == head.size());
    CHECK(p.leftover == "nope!");
    CHECK(p.head.status == 403);
}

TEST_CASE("client handshake: the response header limit") {
    const std::string big = response({{"X-Padding", std::string(200, 'p')}});
    SUBCASE("past the limit, whole or byte by byte") {
        HttpResponseParser::Options options{128};
        CHECK(parse(big, {}, options).status == HttpResponseParser::Status::Error);
        std::vector<std::size_t> every;
        for (std::size_t i = 1; i < big.size(); ++i) every.push_back(i);
        const Parsed bytewise = parse(big, every, options);
        CHECK(bytewise.status == HttpResponseParser::Status::Error);
        CHECK(bytewise.error.find("larger than 128") != std::string::npos);
        CHECK(bytewise.consumed <= 128);
    }
    SUBCASE("exactly at the limit is fine") {
        HttpResponseParser::Options options{big.size()};
        CHECK(parse(big + "xyz", {}, options).status == HttpResponseParser::Status::Complete);
    }
    SUBCASE("a server that never ends its headers") {
        std::string endless = "HTTP/1.1 101 Switching Protocols\r\n";
        for (int i = 0; i < 2000; ++i) endless += "X-A: b\r\n";
        const Parsed p = parse(endless);
        CHECK(p.status == HttpResponseParser::Status::Error);
        CHECK(p.consumed <= 8 * 1024);
    }
}

TEST_CASE("client handshake: not HTTP at all") {
    for (const std::string_view garbage : {std::string_view("SSH-2.0-OpenSSH_9.2\r\n"), std::string_view("HTTP/1.1 abc OK\r\n\r\n"),
                                           std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
                                           std::string_view("GET / HTTP/1.1\r\n\r\n")}) {
        INFO(test_util::hex(garbage));
        CHECK(parse(garbage).status == HttpResponseParser::Status::Error);
    }
}

// ---- the checks ---------------------------------------------------------------------------------

TEST_CASE("client handshake: validating the 101 (section 4.1)") {
    SUBCASE("the RFC's example response") {
        const auto check = check_response(response({{"Sec-WebSocket-Protocol", "chat"}}), rfc_offer({"chat", "superchat"}));
        CHECK(check.ok);
        CHECK(check.status == 101);
        CHECK(check.subprotocol == "chat");
        CHECK(check.extensions.empty());
    }
    SUBCASE("the server's own response for our key") {
        const auto check = check_response(make_upgrade_response(kRfcKey), rfc_offer());
        CHECK(check.ok);
        CHECK(check.subprotocol.empty());
    }
    SUBCASE("header names and the tokens are case-insensitive; Connection may list more") {
        const std::string input = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, upgrade\r\n"
                                  "sec-websocket-accept: " + std::string(kRfcAccept) + "\r\n\r\n";
        CHECK(check_response(input, rfc_offer()).ok);
    }
    SUBCASE("a wrong Sec-WebSocket-Accept fails") {
        const auto check = check_response(response({{"Sec-WebSocket-Accept", compute_accept_key("x3JJHMbDL1EzLkh9GBhXDw==")}}), rfc_offer());
        CHECK_FALSE(check.ok);
        CHECK(check.status == 101);
        CHECK(check.error.find("Sec-WebSocket-Accept") != std::string::npos);
        CHECK(check.error.find(std::string(kRfcAccept)) != std::string::npos);  // says what was expected
    }
    SUBCASE("the accept key of another GUID, or the key echoed back, fails") {
        CHECK_FALSE(check_response(response({{"Sec-WebSocket-Accept", std::string(kRfcKey)}}), rfc_offer()).ok);
        // (trailing whitespace is not part of a header value, so this one is fine)
        CHECK(check_response(response({{"Sec-WebSocket-Accept", std::string(kRfcAccept) + " "}}), rfc_offer()).ok);
        CHECK_FALSE(check_response(response({{"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo"}}), rfc_offer()).ok);
    }
    SUBCASE("a missing or repeated Sec-WebSocket-Accept fails") {
        CHECK_FALSE(check_response(response({{"Sec-WebSocket-Accept", "-"}}), rfc_offer()).ok);
        const std::string twice = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Accept: " + std::string(kRfcAccept) + "\r\n"
                                  "Sec-WebSocket-Accept: " + std::string(kRfcAccept) + "\r\n\r\n";
        CHECK_FALSE(check_response(twice, rfc_offer()).ok);
    }
    SUBCASE("a missing or wrong Upgrade fails") {
        auto check = check_response(response({{"Upgrade", "-"}}), rfc_offer());
        CHECK_FALSE(check.ok);
        CHECK(check.error.find("Upgrade: websocket") != std::string::npos);
        CHECK_FALSE(check_response(response({{"Upgrade", "h2c"}}), rfc_offer()).ok);
    }
    SUBCASE("a missing or wrong Connection fails") {
        const auto check = check_response(response({{"Connection", "-"}}), rfc_offer());
        CHECK_FALSE(check.ok);
        CHECK(check.error.find("Connection") != std::string::npos);
        CHECK_FALSE(check_response(response({{"Connection", "keep-alive"}}), rfc_offer()).ok);
    }
    SUBCASE("a status other than 101 fails and names the status") {
        auto check = check_response("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", rfc_offer());
        CHECK_FALSE(check.ok);
        CHECK(check.status == 403);
        CHECK(check.error.find("403 Forbidden") != std::string::npos);
        check = check_response("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n", rfc_offer());
        CHECK(check.status == 401);
        CHECK(check.error.find("authentication") != std::string::npos);
        check = check_response(make_handshake_error(426, "unsupported version"), rfc_offer());
        CHECK(check.status == 426);
        CHECK(check.error.find("version 13") != std::string::npos);
        check = check_response("HTTP/1.1 200 OK\r\n" + response().substr(response().find("\r\n") + 2), rfc_offer());
        CHECK_FALSE(check.ok);
        CHECK(check.status == 200);
    }
    SUBCASE("HTTP/1.0 fails") {
        const auto check = check_response(response({}, "HTTP/1.0 101 Switching Protocols"), rfc_offer());
        CHECK_FALSE(check.ok);
        CHECK(check.error.find("HTTP/1.0") != std::string::npos);
    }
    SUBCASE("a subprotocol we did not offer fails (item 6)") {
        auto check = check_response(response({{"Sec-WebSocket-Protocol", "mqtt"}}), rfc_offer({"chat", "superchat"}));
        CHECK_FALSE(check.ok);
        CHECK(check.error.find("mqtt") != std::string::npos);
        check = check_response(response({{"Sec-WebSocket-Protocol", "chat"}}), rfc_offer());
        CHECK_FALSE(check.ok);
        CHECK(check.error.find("offered none") != std::string::npos);
        // subprotocols are compared exactly (they are case-sensitive tokens)
        CHECK_FALSE(check_response(response({{"Sec-WebSocket-Protocol", "Chat"}}), rfc_offer({"chat"})).ok);
    }
    SUBCASE("more than one subprotocol fails") {
        CHECK_FALSE(check_response(response({{"Sec-WebSocket-Protocol", "chat, superchat"}}), rfc_offer({"chat", "superchat"})).ok);
    }
    SUBCASE("none chosen from our offer: fails by default, accepted when not required") {
        UpgradeOffer offer = rfc_offer({"chat"});
        auto check = check_response(response(), offer);
        CHECK_FALSE(check.ok);
        CHECK(check.error.find("none of our subprotocols") != std::string::npos);
        offer.require_subprotocol = false;
        check = check_response(response(), offer);
        CHECK(check.ok);
        CHECK(check.subprotocol.empty());
    }
    SUBCASE("an extension we did not offer fails (item 5)") {
        auto check = check_response(response({{"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"}}), rfc_offer());
        CHECK_FALSE(check.ok);
        CHECK(check.error.find("permessage-deflate") != std::string::npos);
        UpgradeOffer offer = rfc_offer();
        offer.extensions = {"permessage-deflate"};
        check = check_response(response({{"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"}}), offer);
        CHECK(check.ok);
        CHECK(check.extensions == "permessage-deflate; client_max_window_bits");
        CHECK_FALSE(check_response(response({{"Sec-WebSocket-Extensions", "permessage-deflate, x-other"}}), offer).ok);
    }
}
