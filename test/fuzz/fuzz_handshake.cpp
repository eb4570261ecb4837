// libFuzzer target: the HTTP request parser and the upgrade checks.
//
// Input: [flags][seed] then the bytes a client sent. The flags pick the parser's limits;
// the seed picks where the request is cut. Oracles: the parser gives the same result whole
// and cut; it never consumes more than it was given; errors carry 400/413/431; a Complete
// request goes through check_upgrade_request, and the response it leads to is well formed.
#include <string>
#include <string_view>
#include <vector>

#include "test/fuzz/fuzz_common.hpp"
#include "websock/codec/handshake.hpp"
#include "websock/http.hpp"

using namespace websock;
using namespace websock::codec;

namespace {

std::string describe(HttpRequestParser& parser, HttpRequestParser::Status status, std::size_t consumed) {
    std::string s = "status=" + std::to_string(static_cast<int>(status));
    if (status == HttpRequestParser::Status::Error) {
        s += " error=" + std::to_string(parser.error_status());
        return s;
    }
    if (status != HttpRequestParser::Status::Complete) return s;
    const HttpRequest& r = parser.request();
    s += " consumed=" + std::to_string(consumed) + " " + r.method + " " + r.target + " " + r.path + " ? " + r.query +
         " " + std::to_string(r.version_major) + "." + std::to_string(r.version_minor) +
         " upgrade=" + std::to_string(parser.is_upgrade()) + " keepalive=" + std::to_string(parser.keep_alive()) +
         " body=" + r.body;
    for (const auto& [k, v] : r.headers) s += "\n" + k + ": " + v;
    return s;
}

std::string run(const std::uint8_t* data, std::size_t size, const std::vector<std::size_t>* chunks,
                HttpRequestParser::Options options, HttpRequest* out = nullptr) {
    HttpRequestParser parser(options);
    const char* text = reinterpret_cast<const char*>(data);
    std::size_t pos = 0;
    std::size_t total = 0;
    auto status = HttpRequestParser::Status::NeedMore;
    auto feed = [&](std::size_t n) {
        std::size_t consumed = 12345;
        status = parser.feed(text + pos, n, consumed);
        FUZZ_CHECK(consumed <= n);
        if (status == HttpRequestParser::Status::NeedMore) FUZZ_CHECK(consumed == n);
        total += consumed;
        pos += n;
    };
    if (chunks) {
        for (std::size_t n : *chunks) {
            feed(n);
            if (status != HttpRequestParser::Status::NeedMore) break;
        }
    } else {
        feed(size);
    }
    FUZZ_CHECK(parser.status() == status);
    if (status != HttpRequestParser::Status::NeedMore) {
        std::size_t again = 1;
        FUZZ_CHECK(parser.feed("x", 1, again) == status);
        FUZZ_CHECK(again == 0);
    }
    if (status == HttpRequestParser::Status::Error) {
        const int e = parser.error_status();
        FUZZ_CHECK(e == 400 || e == 413 || e == 431);
        FUZZ_CHECK(!parser.error_reason().empty());
    }
    if (status == HttpRequestParser::Status::Complete) {
        FUZZ_CHECK(parser.request().body.size() <= options.max_body_bytes);
        if (out) *out = parser.request();
    }
    return describe(parser, status, total);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint8_t flags = data[0];
    const std::uint32_t seed = data[1];
    data += 2;
    size -= 2;

    HttpRequestParser::Options options;
    if (flags & 0x01) options.max_header_bytes = 16 + (flags >> 2) * 4;  // small limits reach 431
    if (flags & 0x02) options.max_body_bytes = (flags >> 4);
    const auto chunks = fuzz::chunk_sizes(size, seed);

    HttpRequest request;
    const std::string whole = run(data, size, nullptr, options, &request);
    const std::string cut = run(data, size, &chunks, options);
    FUZZ_CHECK_EQ(whole, cut);

    if (whole.rfind("status=1", 0) == 0) {  // Complete
        const HandshakeCheck check = check_upgrade_request(request);
        if (check.ok) {
            FUZZ_CHECK(is_valid_websocket_key(check.key));
            const std::string response = make_upgrade_response(check.key, {{"Sec-WebSocket-Protocol", "chat"}});
            FUZZ_CHECK(response.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
            FUZZ_CHECK(response.size() >= 4 && response.compare(response.size() - 4, 4, "\r\n\r\n") == 0);
            FUZZ_CHECK(response.find("\r\n\r\n") == response.size() - 4);
            FUZZ_CHECK(response.find("Sec-WebSocket-Accept: " + compute_accept_key(check.key) + "\r\n") !=
                       std::string::npos);
        } else {
            FUZZ_CHECK(check.status == 400 || check.status == 426);
            FUZZ_CHECK(!check.reason.empty());
            const std::string response = make_handshake_error(check.status, check.reason);
            FUZZ_CHECK(response.rfind("HTTP/1.1 " + std::to_string(check.status) + " ", 0) == 0);
            if (check.status == 426) FUZZ_CHECK(response.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
        }
        // the request's accessors on whatever came in
        for (const auto& [name, value] : request.headers) {
            FUZZ_CHECK(request.header(name).has_value());
            FUZZ_CHECK(request.header_count(name) >= 1);
            (void)split_tokens(value);
        }
        (void)request.query_param("room");
        (void)percent_decode(request.query, true);
    }

    // the key helpers on the raw bytes
    const std::string_view raw(reinterpret_cast<const char*>(data), size);
    if (is_valid_websocket_key(raw)) FUZZ_CHECK(raw.size() == 24);
    FUZZ_CHECK(compute_accept_key(raw.substr(0, 64)).size() == 28);
    return 0;
}
