// The opening handshake (RFC 6455 section 4): keys, the request parser, the checks, the responses.
#include <doctest/doctest.h>

#include <string>

#include "test/unit/test_util.hpp"
#include "websock/codec/handshake.hpp"

using namespace websock;
using namespace websock::codec;

namespace {

constexpr std::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The client handshake of RFC 6455 section 1.2, with the given header lines replacing or
/// adding to the usual ones. A value of "-" removes the header.
std::string request(std::initializer_list<std::pair<std::string, std::string>> overrides = {},
                    std::string request_line = "GET /chat?room=a%20b HTTP/1.1") {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Host", "server.example.com"},
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Key", std::string(kRfcKey)},
        {"Origin", "http://example.com"},
        {"Sec-WebSocket-Protocol", "chat, superchat"},
        {"Sec-WebSocket-Version", "13"},
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
    std::string out = request_line + "\r\n";
    for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
    return out + "\r\n";
}

struct Parsed {
    HttpRequestParser::Status status = HttpRequestParser::Status::NeedMore;
    std::size_t consumed = 0;
    HttpRequest request;
    bool upgrade = false;
    bool keep_alive = false;
    int error_status = 0;
};

/// Parse `input` fed in the chunks given by `cuts`; stops feeding once Complete or Error.
Parsed parse(std::string_view input, const std::vector<std::size_t>& cuts = {},
             HttpRequestParser::Options options = {}) {
    HttpRequestParser parser(options);
    Parsed out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t end = i < cuts.size() ? cuts[i] : input.size();
        std::size_t consumed = 0;
        out.status = parser.feed(input.data() + start, end - start, consumed);
        out.consumed += consumed;
        if (out.status != HttpRequestParser::Status::NeedMore) break;
        if (consumed != end - start) {
            out.error_status = -1;  // NeedMore must consume everything
            return out;
        }
        start = end;
    }
    CHECK(parser.status() == out.status);
    out.request = parser.request();
    out.upgrade = parser.is_upgrade();
    out.keep_alive = parser.keep_alive();
    out.error_status = parser.error_status();
    if (out.status != HttpRequestParser::Status::NeedMore) {
        // once done, further feeds consume nothing and report the same status
        std::size_t consumed = 99;
        CHECK(parser.feed("GET / HTTP/1.1\r\n", 16, consumed) == out.status);
        CHECK(consumed == 0);
    }
    if (out.status == HttpRequestParser::Status::Error) CHECK_FALSE(parser.error_reason().empty());
    return out;
}

HandshakeCheck check(std::string_view input) {
    const Parsed p = parse(input);
    REQUIRE(p.status == HttpRequestParser::Status::Complete);
    return check_upgrade_request(p.request);
}

std::string describe(const Parsed& p) {
    std::string s = "status=" + std::to_string(static_cast<int>(p.status)) + " consumed=" + std::to_string(p.consumed) +
                    " err=" + std::to_string(p.error_status) + " " + p.request.method + " " + p.request.target + " " +
                    p.request.path + " ? " + p.request.query + " " + std::to_string(p.request.version_major) + "." +
                    std::to_string(p.request.version_minor) + " upgrade=" + std::to_string(p.upgrade) +
                    " keepalive=" + std::to_string(p.keep_alive) + " body=" + p.request.body + " |";
    for (const auto& [k, v] : p.request.headers) s += " [" + k + "]=[" + v + "]";
    return s;
}

/// Parse in every split and check each gives what the unsplit parse gave.
Parsed parse_all_splits(std::string_view input, HttpRequestParser::Options options = {}) {
    const Parsed whole = parse(input, {}, options);
    const std::string expected = describe(whole);
    for (const auto& cuts : test_util::all_splits(input.size(), 0)) {
        const std::string got = describe(parse(input, cuts, options));
        if (got != expected) {
            INFO("split: ", test_util::describe(cuts));
            CHECK(got == expected);
            break;
        }
    }
    return whole;
}

}  // namespace

TEST_CASE("handshake: keys") {
    SUBCASE("the RFC's example key") {
        CHECK(compute_accept_key(kRfcKey) == kRfcAccept);
        CHECK(is_valid_websocket_key(kRfcKey));
    }
    SUBCASE("other known accept values") {
        // computed independently (Python hashlib + base64)
        CHECK(compute_accept_key("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
        CHECK(compute_accept_key("AQIDBAUGBwgJCgsMDQ4PEC==") == "OfS0wDaT5NoxF2gqm7Zj2YtetzM=");
        CHECK(compute_accept_key("") == "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=");
    }
    SUBCASE("a key must decode to exactly 16 bytes") {
        CHECK(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAA=="));
        CHECK(is_valid_websocket_key("/////////////////////w=="));
        CHECK(is_valid_websocket_key("x3JJHMbDL1EzLkh9GBhXDw=="));
        CHECK_FALSE(is_valid_websocket_key(""));
        CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ"));      // no padding
        CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ="));     // 23 chars
        CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==="));   // 25 chars
        CHECK_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAAAA"));    // 18 bytes
        CHECK_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAA"));        // 15 bytes
        CHECK_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAA"));  // 21 bytes
        CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZ!=="));    // not base64
        CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub2 5jZQ=="));   // a space inside
        CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        CHECK_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="));
    }
}

// Regression: EVP_DecodeBlock decodes '=' anywhere as zero bits, so is_valid_websocket_key
// once passed any 24 characters ending in "==", e.g. 24 '=' signs.
TEST_CASE("handshake: padding characters inside a key are not base64 of 16 bytes") {
    CHECK_FALSE(is_valid_websocket_key("========================"));
    CHECK_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAA==="));
    CHECK_FALSE(is_valid_websocket_key("AAAA====AAAAAAAAAAAAAA=="));
}

TEST_CASE("handshake: responses") {
    SUBCASE("the 101 response") {
        const std::string response = make_upgrade_response(kRfcKey);
        CHECK(response.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
        CHECK(response.find("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
        CHECK(response.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
        CHECK(response.find("\r\nConnection: Upgrade\r\n") != std::string::npos);
        REQUIRE(response.size() >= 4);
        CHECK(response.substr(response.size() - 4) == "\r\n\r\n");
        CHECK(response.find("\r\n\r\n") == response.size() - 4);  // one header block, no body
        const std::string extra = make_upgrade_response(kRfcKey, {{"Sec-WebSocket-Protocol", "chat"}});
        CHECK(extra.find("\r\nSec-WebSocket-Protocol: chat\r\n") != std::string::npos);
        CHECK(extra.substr(extra.size() - 4) == "\r\n\r\n");
        CHECK(extra.find("\r\n\r\n") == extra.size() - 4);
    }
    SUBCASE("error responses") {
        const std::string r = make_handshake_error(400, "bad key");
        CHECK(r.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
        CHECK(r.find("Sec-WebSocket-Version") == std::string::npos);
        CHECK(r.find("\r\nContent-Length: ") != std::string::npos);
        CHECK(r.find("bad key") != std::string::npos);
        const std::string x = make_handshake_error(503, "busy", {{"Retry-After", "1"}});
        CHECK(x.rfind("HTTP/1.1 503 ", 0) == 0);
        CHECK(x.find("\r\nRetry-After: 1\r\n") != std::string::npos);
    }
}

TEST_CASE("handshake: a valid request") {
    const std::string input = request();
    SUBCASE("parsed the same in every split") {
        const Parsed p = parse_all_splits(input);
        REQUIRE(p.status == HttpRequestParser::Status::Complete);
        CHECK(p.consumed == input.size());
        CHECK(p.upgrade);
        CHECK(p.keep_alive);
        CHECK(p.request.method == "GET");
        CHECK(p.request.target == "/chat?room=a%20b");
        CHECK(p.request.path == "/chat");
        CHECK(p.request.query == "room=a%20b");
        CHECK(p.request.query_param("room") == "a b");
        CHECK(p.request.version_major == 1);
        CHECK(p.request.version_minor == 1);
        CHECK(p.request.headers.size() == 7);
        CHECK(p.request.header("host") == "server.example.com");
        CHECK(p.request.header("SEC-WEBSOCKET-KEY") == kRfcKey);
        CHECK(p.request.header("Sec-WebSocket-Protocol") == "chat, superchat");
        CHECK(p.request.body.empty());
        const HandshakeCheck c = check_upgrade_request(p.request);
        CHECK(c.ok);
        CHECK(c.key == kRfcKey);
    }
    SUBCASE("bytes after the header block are left unconsumed") {
        const std::string frame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
        const std::string both = input + frame;
        for (const auto& cuts : test_util::all_splits(both.size(), 0)) {
            const Parsed p = parse(both, cuts);
            if (p.status != HttpRequestParser::Status::Complete || p.consumed != input.size()) {
                INFO("split: ", test_util::describe(cuts));
                CHECK(p.status == HttpRequestParser::Status::Complete);
                CHECK(p.consumed == input.size());
                break;
            }
        }
        // pipelined bytes that look like HTTP stay unconsumed too
        const std::string other = request({{"Connection", "upgrade"}}) + "GET / HTTP/1.1\r\n\r\n";
        const Parsed q = parse(other);
        CHECK(q.status == HttpRequestParser::Status::Complete);
        CHECK(q.consumed == other.size() - 18);
    }
    SUBCASE("header names and token lists are case-insensitive") {
        const std::string lower =
            "GET / HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\nconnection: upgrade\r\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
        CHECK(check(lower).ok);
        CHECK(check(request({{"Upgrade", "WEBSOCKET"}, {"Connection", "UPGRADE"}})).ok);
        CHECK(check(request({{"Connection", "upgrade,x"}})).ok);
        CHECK(check(request({{"Upgrade", "h2c, websocket"}})).ok);
    }
}

// Token lists longer than std::string's small buffer: these once read freed memory (the
// tokens viewed a temporary that died before the loop body ran).
TEST_CASE("handshake: long Connection/Upgrade token lists") {
    SUBCASE("keep-alive, Upgrade (as Firefox sends it)") {
        const std::string lower =
            "GET / HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
        CHECK(check(lower).ok);
        CHECK(check(request({{"Connection", "keep-alive, Upgrade"}})).ok);
        CHECK(check(request({{"Connection", "Upgrade, keep-alive"}})).ok);
        CHECK(check(request({{"Connection", "keep-alive,upgrade"}})).ok);
        CHECK(check(request({{"Connection", "keep-alive ,\tupgrade "}})).ok);
        CHECK(check(request({{"Upgrade", "websocket, something-longer"}})).ok);
        const Parsed p = parse(request({{"Upgrade", "something-longer, websocket"}}));
        CHECK(p.upgrade);
    }
    SUBCASE("the Connection header split over two lines") {
        const std::string input2 = request({{"Connection", "keep-alive"}, {"X", "y"}});
        // add a second Connection line just before the blank line; the joined value is long
        std::string two = input2.substr(0, input2.size() - 2) + "Connection: Upgrade\r\n\r\n";
        CHECK(check(two).ok);
    }
}

// Regression (found by fuzz_handshake): feed() once marked an upgrade request complete as
// soon as http-parser saw its header block, before a declared body was read, so the result
// depended on where the input was cut.
TEST_CASE("handshake: an upgrade request with a body parses the same in every split") {
    const std::string head =
        "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\n";
    const std::string input = head + "hello";
    const Parsed whole = parse(input);
    REQUIRE(whole.status == HttpRequestParser::Status::Complete);
    CHECK(whole.request.body == "hello");
    CHECK(whole.consumed == input.size());
    const Parsed cut = parse(input, {head.size()});
    CHECK(cut.status == HttpRequestParser::Status::Complete);
    CHECK(cut.request.body == "hello");
    CHECK(cut.consumed == input.size());
    parse_all_splits(input);
    // the same with a chunked body that is malformed: whole it is a 400, cut after the
    // header block it is accepted as Complete
    const std::string chunked_head =
        "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string chunked = chunked_head + "zz\r\n";
    const Parsed bad_whole = parse(chunked);
    CHECK(bad_whole.status == HttpRequestParser::Status::Error);
    const Parsed bad_cut = parse(chunked, {chunked_head.size()});
    CHECK(bad_cut.status == bad_whole.status);
}

TEST_CASE("handshake: refused requests") {
    SUBCASE("missing Host -> 400") {
        const HandshakeCheck c = check(request({{"Host", "-"}}));
        CHECK_FALSE(c.ok);
        CHECK(c.status == 400);
        CHECK_FALSE(c.reason.empty());
    }
    SUBCASE("two Host headers -> 400") {
        const HandshakeCheck c = check(request({{"Host", "a"}, {"host", "b"}}));
        CHECK_FALSE(c.ok);
        CHECK(c.status == 400);
    }
    SUBCASE("not GET -> 400") {
        for (const char* method : {"POST", "PUT", "HEAD", "DELETE", "OPTIONS"}) {
            CAPTURE(method);
            const std::string line = std::string(method) + " /chat HTTP/1.1";
            const std::string input = request({{"Content-Length", "0"}}, line);
            const Parsed p = parse(input);
            REQUIRE(p.status == HttpRequestParser::Status::Complete);
            const HandshakeCheck c = check_upgrade_request(p.request);
            CHECK_FALSE(c.ok);
            CHECK(c.status == 400);
        }
    }
    SUBCASE("a request target that is not a resource name nor an http(s)/ws(s) URI -> 400") {
        for (const std::string target : {"*", "chat", "example.com:80", "ftp://h/chat", "?x=1"}) {
            CAPTURE(target);
            // The parser refuses some of them itself (400 too); the others must fail the check.
            const Parsed p = parse(request({}, "GET " + target + " HTTP/1.1"));
            if (p.status == HttpRequestParser::Status::Error) {
                CHECK(p.error_status == 400);
                continue;
            }
            REQUIRE(p.status == HttpRequestParser::Status::Complete);
            const HandshakeCheck c = check_upgrade_request(p.request);
            CHECK_FALSE(c.ok);
            CHECK(c.status == 400);
        }
        for (const std::string target : {"/", "/chat?x=1", "http://h/chat", "HTTPS://h/", "ws://h/chat", "wss://h/"}) {
            CAPTURE(target);
            CHECK(check(request({}, "GET " + target + " HTTP/1.1")).ok);
        }
    }
    SUBCASE("HTTP/1.0 -> 400") {
        const HandshakeCheck c = check(request({}, "GET /chat HTTP/1.0"));
        CHECK_FALSE(c.ok);
        CHECK(c.status == 400);
    }
    SUBCASE("no websocket in Upgrade -> 400") {
        for (const char* value : {"-", "h2c", "websockets", "web socket"}) {
            CAPTURE(value);
            const HandshakeCheck c = check(request({{"Upgrade", value}}));
            CHECK_FALSE(c.ok);
            CHECK(c.status == 400);
        }
    }
    SUBCASE("no Upgrade token in Connection -> 400") {
        for (const char* value : {"-", "keep-alive", "close", "upgraded"}) {
            CAPTURE(value);
            const HandshakeCheck c = check(request({{"Connection", value}}));
            CHECK_FALSE(c.ok);
            CHECK(c.status == 400);
        }
    }
    SUBCASE("missing or bad key -> 400") {
        for (const char* value : {"-", "", "dGhlIHNhbXBsZSBub25jZQ", "AAAAAAAAAAAAAAAAAAAAAAAA", "short==",
                                  "dGhlIHNhbXBsZSBub25jZ!=="}) {
            CAPTURE(value);
            const HandshakeCheck c = check(request({{"Sec-WebSocket-Key", value}}));
            CHECK_FALSE(c.ok);
            CHECK(c.status == 400);
        }
        // two keys
        std::string input = request();
        input.insert(input.size() - 2, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n");
        const HandshakeCheck c = check(input);
        CHECK_FALSE(c.ok);
        CHECK(c.status == 400);
    }
    SUBCASE("version other than 13, or missing -> 426 with Sec-WebSocket-Version: 13") {
        for (const char* value : {"-", "8", "12", "14", "", "13, 8"}) {
            CAPTURE(value);
            const HandshakeCheck c = check(request({{"Sec-WebSocket-Version", value}}));
            CHECK_FALSE(c.ok);
            CHECK(c.status == 426);
            const std::string response = make_handshake_error(c.status, c.reason);
            CHECK(response.rfind("HTTP/1.1 426 ", 0) == 0);
            CHECK(response.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
        }
    }
}

TEST_CASE("handshake: the request parser") {
    SUBCASE("headers over 8 KiB -> 431") {
        std::string input = request({{"X-Big", std::string(9000, 'a')}});
        for (std::vector<std::size_t> cuts : {std::vector<std::size_t>{}, std::vector<std::size_t>{100},
                                              std::vector<std::size_t>{8191}, std::vector<std::size_t>{8192},
                                              std::vector<std::size_t>{8193, 8194}}) {
            CAPTURE(test_util::describe(cuts));
            const Parsed p = parse(input, cuts);
            CHECK(p.status == HttpRequestParser::Status::Error);
            CHECK(p.error_status == 431);
        }
        // many small headers too
        std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
        for (int i = 0; i < 1000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
        many += "\r\n";
        const Parsed m = parse(many);
        CHECK(m.status == HttpRequestParser::Status::Error);
        CHECK(m.error_status == 431);
    }
    SUBCASE("a header block of exactly the limit is accepted, one more byte is not") {
        const auto padded = [](std::size_t pad) {
            return "GET /x HTTP/1.1\r\nHost: h\r\nX-Pad: " + std::string(pad, 'p') + "\r\n\r\n";
        };
        const std::size_t pad = 8192 - padded(0).size();
        const std::string exact = padded(pad);
        REQUIRE(exact.size() == 8192);
        const Parsed ok = parse(exact);
        CHECK(ok.status == HttpRequestParser::Status::Complete);
        CHECK(ok.consumed == 8192);
        const Parsed split = parse(exact, {4096, 8191});
        CHECK(split.status == HttpRequestParser::Status::Complete);
        const Parsed bad = parse(padded(pad + 1));
        CHECK(bad.status == HttpRequestParser::Status::Error);
        CHECK(bad.error_status == 431);
        const Parsed bad_split = parse(padded(pad + 1), {8000, 8192});
        CHECK(bad_split.status == HttpRequestParser::Status::Error);
        CHECK(bad_split.error_status == 431);
        // a smaller limit from the options
        const Parsed small = parse(request(), {}, {200, 1 << 20});
        CHECK(small.status == HttpRequestParser::Status::Error);
        CHECK(small.error_status == 431);
    }
    SUBCASE("a POST with a Content-Length body is parsed completely") {
        const std::string input = "POST /submit?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
        const Parsed p = parse_all_splits(input);
        REQUIRE(p.status == HttpRequestParser::Status::Complete);
        CHECK(p.consumed == input.size());
        CHECK(p.request.method == "POST");
        CHECK(p.request.path == "/submit");
        CHECK(p.request.body == "hello world");
        CHECK_FALSE(p.upgrade);
        // pipelined bytes after the body stay with the caller
        const Parsed q = parse(input + "GET / HTTP/1.1\r\n\r\n");
        CHECK(q.status == HttpRequestParser::Status::Complete);
        CHECK(q.consumed == input.size());
        CHECK(q.request.body == "hello world");
    }
    SUBCASE("a chunked body") {
        const std::string input =
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        const Parsed p = parse_all_splits(input);
        REQUIRE(p.status == HttpRequestParser::Status::Complete);
        CHECK(p.request.body == "hello world");
        CHECK(p.consumed == input.size());
    }
    SUBCASE("a body over the limit -> 413") {
        const Parsed p = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", {}, {8192, 50});
        CHECK(p.status == HttpRequestParser::Status::Error);
        CHECK(p.error_status == 413);
        const Parsed c = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" +
                                   std::string(64, 'x') + "\r\n0\r\n\r\n",
                               {}, {8192, 50});
        CHECK(c.status == HttpRequestParser::Status::Error);
        CHECK(c.error_status == 413);
    }
    SUBCASE("a plain GET: not an upgrade, keep-alive by default, close when asked") {
        const Parsed p = parse_all_splits("GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n");
        REQUIRE(p.status == HttpRequestParser::Status::Complete);
        CHECK_FALSE(p.upgrade);
        CHECK(p.keep_alive);
        const Parsed c = parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        CHECK_FALSE(c.keep_alive);
        const Parsed old = parse("GET / HTTP/1.0\r\n\r\n");
        CHECK(old.status == HttpRequestParser::Status::Complete);
        CHECK_FALSE(old.keep_alive);
    }
    SUBCASE("incomplete input needs more") {
        const std::string input = request();
        const Parsed p = parse(std::string_view(input).substr(0, input.size() - 1));
        CHECK(p.status == HttpRequestParser::Status::NeedMore);
    }
    SUBCASE("garbage -> 400") {
        for (const char* junk : {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "GET\r\n\r\n",
                                 "GET / HTTP/1.1\r\nHost h\r\n\r\n", "GET / XTTP/1.1\r\n\r\n"}) {
            CAPTURE(test_util::hex(junk));
            const Parsed p = parse(junk);
            CHECK(p.status == HttpRequestParser::Status::Error);
            CHECK(p.error_status == 400);
        }
    }
    SUBCASE("trailing spaces of header values are trimmed") {
        const Parsed p = parse("GET / HTTP/1.1\r\nHost: h \t\r\nX:  v  \r\n\r\n");
        REQUIRE(p.status == HttpRequestParser::Status::Complete);
        CHECK(p.request.header("Host") == "h");
        CHECK(p.request.header("x") == "v");
    }
}
