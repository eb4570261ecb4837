// Plain HTTP helpers: iequals, split_tokens, percent_decode, HttpRequest accessors,
// responses.
#include <doctest/doctest.h>

#include <string>

#include "websock/http.hpp"

using namespace websock;

namespace {

std::vector<std::string> tokens(std::string_view value) {
    std::vector<std::string> out;
    for (auto t : split_tokens(value)) out.emplace_back(t);
    return out;
}

using Tokens = std::vector<std::string>;

}  // namespace

TEST_CASE("http: iequals") {
    CHECK(iequals("", ""));
    CHECK(iequals("Upgrade", "upgrade"));
    CHECK(iequals("WEBSOCKET", "websocket"));
    CHECK(iequals("Sec-WebSocket-Key", "sec-websocket-key"));
    CHECK_FALSE(iequals("Upgrade", "Upgrade "));
    CHECK_FALSE(iequals("a", ""));
    CHECK_FALSE(iequals("websocket", "websocketx"));
    CHECK_FALSE(iequals("[", "{"));  // 0x5B vs 0x7B: only letters fold
    CHECK_FALSE(iequals("@", "`"));
    CHECK_FALSE(iequals("\xC3\xA9", "\xC3\x89"));  // ASCII only
    // every byte pair: equal exactly when equal after folding A-Z
    std::size_t wrong = 0;
    for (int a = 0; a < 256; ++a) {
        for (int b = 0; b < 256; ++b) {
            const char ca = static_cast<char>(a), cb = static_cast<char>(b);
            const int la = (a >= 'A' && a <= 'Z') ? a + 32 : a;
            const int lb = (b >= 'A' && b <= 'Z') ? b + 32 : b;
            if (iequals(std::string_view(&ca, 1), std::string_view(&cb, 1)) != (la == lb)) ++wrong;
        }
    }
    CHECK(wrong == 0);
}

TEST_CASE("http: split_tokens") {
    CHECK(tokens("") == Tokens{});
    CHECK(tokens("Upgrade") == Tokens{"Upgrade"});
    CHECK(tokens("keep-alive, Upgrade") == Tokens{"keep-alive", "Upgrade"});
    CHECK(tokens("keep-alive,Upgrade") == Tokens{"keep-alive", "Upgrade"});
    CHECK(tokens(" \ta ,\tb\t, c ") == Tokens{"a", "b", "c"});
    CHECK(tokens(",,a,, ,b,") == Tokens{"a", "b"});  // empty elements dropped (RFC 9110 section 5.6.1)
    CHECK(tokens(" , ") == Tokens{});
    CHECK(tokens("permessage-deflate; client_max_window_bits, x-webkit") ==
          Tokens{"permessage-deflate; client_max_window_bits", "x-webkit"});
    // the views point into the argument
    const std::string value = "a, b";
    const auto views = split_tokens(value);
    REQUIRE(views.size() == 2);
    CHECK(views[1].data() == value.data() + 3);
}

TEST_CASE("http: percent_decode") {
    CHECK(percent_decode("") == "");
    CHECK(percent_decode("plain") == "plain");
    CHECK(percent_decode("a%20b") == "a b");
    CHECK(percent_decode("%41%42%43") == "ABC");
    CHECK(percent_decode("%e2%82%ac") == "\xE2\x82\xAC");
    CHECK(percent_decode("%E2%82%AC") == "\xE2\x82\xAC");
    CHECK(percent_decode("%00") == std::string(1, '\0'));
    CHECK(percent_decode("100%") == "100%");        // a lone % stays
    CHECK(percent_decode("%4") == "%4");            // truncated escape stays
    CHECK(percent_decode("a%4") == "a%4");
    CHECK(percent_decode("%zz") == "%zz");          // not hex
    CHECK(percent_decode("%4g") == "%4g");
    CHECK(percent_decode("%%41") == "%A");
    CHECK(percent_decode("%41") == "A");            // an escape at the very end
    CHECK(percent_decode("a+b") == "a+b");
    CHECK(percent_decode("a+b", true) == "a b");
    CHECK(percent_decode("%2B", true) == "+");      // an encoded plus stays a plus
}

TEST_CASE("http: HttpRequest accessors") {
    HttpRequest r;
    r.query = "room=lobby&name=J%C3%BCrgen+K&empty=&flag&a%20b=c%26d&room=second";
    r.headers = {{"Host", "example.com"},
                 {"sec-websocket-protocol", "chat"},
                 {"Sec-WebSocket-Protocol", "superchat"},
                 {"X-Empty", ""}};
    SUBCASE("header() is case-insensitive and returns the first") {
        CHECK(r.header("host") == "example.com");
        CHECK(r.header("HOST") == "example.com");
        CHECK(r.header("Host") == "example.com");
        CHECK(r.header("SEC-WEBSOCKET-PROTOCOL") == "chat");
        CHECK(r.header("x-empty") == "");
        CHECK(r.header("x-empty").has_value());
        CHECK_FALSE(r.header("Origin").has_value());
        CHECK_FALSE(r.header("Hos").has_value());
        CHECK_FALSE(r.header("").has_value());
    }
    SUBCASE("header_count and header_joined") {
        CHECK(r.header_count("sec-websocket-protocol") == 2);
        CHECK(r.header_count("host") == 1);
        CHECK(r.header_count("origin") == 0);
        CHECK(r.header_joined("Sec-WebSocket-Protocol") == "chat, superchat");
        CHECK(r.header_joined("host") == "example.com");
        CHECK(r.header_joined("origin") == "");
    }
    SUBCASE("query_param") {
        CHECK(r.query_param("room") == "lobby");  // the first
        CHECK(r.query_param("name") == "J\xC3\xBCrgen K");
        CHECK(r.query_param("empty") == "");
        CHECK(r.query_param("flag") == "");
        CHECK(r.query_param("a b") == "c&d");  // names are decoded too
        CHECK_FALSE(r.query_param("missing").has_value());
        CHECK_FALSE(r.query_param("Room").has_value());  // case-sensitive
        CHECK_FALSE(r.query_param("roo").has_value());
        HttpRequest none;
        CHECK_FALSE(none.query_param("x").has_value());
        none.query = "&&x=1&";
        CHECK(none.query_param("x") == "1");
    }
}

TEST_CASE("http: responses") {
    SUBCASE("serialize_response adds Content-Length and Connection") {
        const std::string out = serialize_response(HttpResponse::text(404, "nope"));
        CHECK(out.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
        CHECK(out.find("\r\nContent-Length: 4\r\n") != std::string::npos);
        CHECK(out.find("\r\nContent-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
        CHECK(out.find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK(out.size() >= 8);
        CHECK(out.substr(out.size() - 8) == "\r\n\r\nnope");
    }
    SUBCASE("keep-alive") {
        const std::string out = serialize_response(HttpResponse::text(200, ""), true);
        CHECK(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
        CHECK(out.find("\r\nContent-Length: 0\r\n") != std::string::npos);
        CHECK(out.find("\r\nConnection: keep-alive\r\n") != std::string::npos);
        CHECK(out.substr(out.size() - 4) == "\r\n\r\n");
    }
    SUBCASE("headers given are kept, not duplicated") {
        HttpResponse r;
        r.status = 200;
        r.body = "{}";
        r.header("content-length", "2").header("connection", "keep-alive").header("X-A", "b");
        const std::string out = serialize_response(r);
        CHECK(out.find("Content-Length") == std::string::npos);
        CHECK(out.find("content-length: 2\r\n") != std::string::npos);
        CHECK(out.find("Connection: close") == std::string::npos);
        CHECK(out.find("\r\nX-A: b\r\n") != std::string::npos);
        CHECK(out.substr(out.size() - 6) == "\r\n\r\n{}");
    }
    SUBCASE("a body with a CRLF CRLF inside counts every byte") {
        HttpResponse r = HttpResponse::text(201, "a\r\n\r\nb", "text/x");
        const std::string out = serialize_response(r);
        CHECK(out.find("\r\nContent-Length: 6\r\n") != std::string::npos);
        CHECK(out.find("\r\nContent-Type: text/x\r\n") != std::string::npos);
        CHECK(out.rfind("HTTP/1.1 201 Created\r\n", 0) == 0);
    }
    SUBCASE("reason phrases") {
        CHECK(http_reason_phrase(101) == "Switching Protocols");
        CHECK(http_reason_phrase(400) == "Bad Request");
        CHECK(http_reason_phrase(426) == "Upgrade Required");
        CHECK(http_reason_phrase(431) == "Request Header Fields Too Large");
        CHECK(http_reason_phrase(503) == "Service Unavailable");
        CHECK_FALSE(http_reason_phrase(299).empty());
    }
}
