#include "websock/codec/handshake.hpp"
#include "websock/codec/detail/header_collector.hpp"

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <fmt/format.h>

namespace websock::codec {

// ---- keys ------------------------------------------------------------------------------

std::string compute_accept_key(std::string_view key) {
    std::string input;
    input.reserve(key.size() + kWebSocketGuid.size());
    input.append(key).append(kWebSocketGuid);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded), digest, SHA_DIGEST_LENGTH);
    return std::string(encoded, static_cast<std::size_t>(length));
}

bool is_valid_websocket_key(std::string_view key) {
    // 16 bytes encode to exactly 24 characters: 21 free ones, a 22nd that carries only two
    // data bits (so its low four bits are zero: A, Q, g or w), and "==" (section 4.1, item 7).
    // Checked by hand because EVP_DecodeBlock reads '=' anywhere as zero bits.
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    auto is_base64 = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    };
    for (std::size_t i = 0; i < 22; ++i)
        if (!is_base64(key[i])) return false;
    const char last = key[21];
    return last == 'A' || last == 'Q' || last == 'g' || last == 'w';
}

// ---- the request parser ------------------------------------------------------------------

struct HttpRequestParser::Impl {
    http_parser parser{};
    http_parser_settings settings{};
    HttpRequestParser* owner = nullptr;
    detail::HeaderCollector collector;
    bool headers_complete = false;
    bool message_complete = false;
    std::size_t header_bytes = 0;
    int callback_error_status = 0;
    std::string callback_error_reason;

    static Impl& of(http_parser* p) { return *static_cast<Impl*>(p->data); }

    static int on_url(http_parser* p, const char* at, std::size_t length) {
        of(p).owner->request_.target.append(at, length);
        return 0;
    }
    static int on_header_field(http_parser* p, const char* at, std::size_t length) {
        of(p).collector.field(of(p).owner->request_.headers, at, length);
        return 0;
    }
    static int on_header_value(http_parser* p, const char* at, std::size_t length) {
        of(p).collector.value(of(p).owner->request_.headers, at, length);
        return 0;
    }
    static int on_headers_complete(http_parser* p) {
        auto& self = of(p);
        auto& request = self.owner->request_;
        self.headers_complete = true;
        request.method = http_method_str(static_cast<http_method>(p->method));
        request.version_major = p->http_major;
        request.version_minor = p->http_minor;
        const std::size_t question = request.target.find('?');
        request.path = request.target.substr(0, question);
        if (question != std::string::npos) request.query = request.target.substr(question + 1);
        detail::HeaderCollector::trim(request.headers);
        if ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > self.owner->options_.max_body_bytes) {
            self.callback_error_status = 413;
            self.callback_error_reason = "request body too large";
            return -1;
        }
        return 0;
    }
    static int on_body(http_parser* p, const char* at, std::size_t length) {
        auto& self = of(p);
        auto& body = self.owner->request_.body;
        if (body.size() + length > self.owner->options_.max_body_bytes) {
            self.callback_error_status = 413;
            self.callback_error_reason = "request body too large";
            return -1;
        }
        body.append(at, length);
        return 0;
    }
    static int on_message_complete(http_parser* p) {
        auto& self = of(p);
        self.message_complete = true;
        // One request per parser: stop here so pipelined bytes stay with the caller.
        http_parser_pause(p, 1);
        return 0;
    }
};

HttpRequestParser::HttpRequestParser(Options options) : impl_(std::make_unique<Impl>()), options_(options) {
    impl_->owner = this;
    http_parser_init(&impl_->parser, HTTP_REQUEST);
    impl_->parser.data = impl_.get();
    http_parser_settings_init(&impl_->settings);
    impl_->settings.on_url = &Impl::on_url;
    impl_->settings.on_header_field = &Impl::on_header_field;
    impl_->settings.on_header_value = &Impl::on_header_value;
    impl_->settings.on_headers_complete = &Impl::on_headers_complete;
    impl_->settings.on_body = &Impl::on_body;
    impl_->settings.on_message_complete = &Impl::on_message_complete;
}

HttpRequestParser::~HttpRequestParser() = default;

HttpRequestParser::Status HttpRequestParser::feed(const char* data, std::size_t size, std::size_t& consumed) {
    consumed = 0;
    if (status_ != Status::NeedMore) return status_;
    bytes_fed_ += size;
    auto& impl = *impl_;
    auto fail = [&](int status, std::string reason) {
        status_ = Status::Error;
        error_status_ = status;
        error_reason_ = std::move(reason);
        return status_;
    };
    while (consumed < size && !impl.message_complete) {
        std::size_t piece = size - consumed;
        if (!impl.headers_complete) {
            // Never hand the parser more header bytes than the limit allows (431 past it).
            const std::size_t allowance = options_.max_header_bytes - impl.header_bytes;
            if (allowance == 0) return fail(431, "request headers too large");
            piece = std::min(piece, allowance);
        }
        const bool counting_headers = !impl.headers_complete;
        const std::size_t parsed = http_parser_execute(&impl.parser, &impl.settings, data + consumed, piece);
        consumed += parsed;
        if (counting_headers) impl.header_bytes += parsed;
        const auto error = HTTP_PARSER_ERRNO(&impl.parser);
        if (error == HPE_PAUSED) break;
        if (error != HPE_OK) {
            if (impl.callback_error_status != 0) return fail(impl.callback_error_status, impl.callback_error_reason);
            if (error == HPE_HEADER_OVERFLOW) return fail(431, "request headers too large");
            return fail(400, fmt::format("malformed request: {}", http_errno_description(error)));
        }
        // An upgrade request ends (on_message_complete pauses the parser) after its header
        // block and any body it declared; whatever follows is the new protocol's.
        if (parsed < piece) return fail(400, "malformed request");
        if (!impl.headers_complete && impl.header_bytes >= options_.max_header_bytes)
            return fail(431, "request headers too large");
    }
    if (!impl.message_complete) return status_;
    // An Upgrade header naming websocket marks a WebSocket handshake, whatever http-parser's
    // own idea of an upgrade (it also wants "Connection: upgrade", which we check ourselves).
    const std::string upgrade = request_.header_joined("Upgrade");  // the tokens view into it
    for (const auto token : split_tokens(upgrade))
        if (iequals(token, "websocket")) upgrade_ = true;
    keep_alive_ = http_should_keep_alive(&impl.parser) != 0;
    status_ = Status::Complete;
    return status_;
}

// ---- validation and responses -------------------------------------------------------------

namespace {

bool has_token(const HttpRequest& request, std::string_view header, std::string_view token) {
    const std::string joined = request.header_joined(header);  // the tokens view into it
    for (const auto value : split_tokens(joined))
        if (iequals(value, token)) return true;
    return false;
}

bool is_resource_target(std::string_view target) noexcept {
    if (target.starts_with('/')) return true;
    const auto scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) return false;
    const std::string_view scheme = target.substr(0, scheme_end);
    for (const std::string_view allowed : {"http", "https", "ws", "wss"})
        if (iequals(scheme, allowed)) return true;
    return false;
}

HandshakeCheck refuse(int status, std::string reason) {
    HandshakeCheck check;
    check.status = status;
    check.reason = std::move(reason);
    return check;
}

}  // namespace

HandshakeCheck check_upgrade_request(const HttpRequest& request) {
    // Section 4.2.1, in order. Each failure answers 400 except the version (426, 4.2.2).
    if (request.method != "GET") return refuse(400, "the upgrade request must use GET");
    // Section 4.1: the target is the /resource name/ (a path) or an absolute URI; "*" and
    // other forms name no resource.
    if (!is_resource_target(request.target))
        return refuse(400, "the request target must be a path or an absolute http(s)/ws(s) URI");
    if (request.version_major < 1 || (request.version_major == 1 && request.version_minor < 1))
        return refuse(400, "the upgrade request must be HTTP/1.1 or later");
    if (request.header_count("Host") != 1) return refuse(400, "missing or repeated Host header");
    if (!has_token(request, "Upgrade", "websocket")) return refuse(400, "the Upgrade header must name websocket");
    if (!has_token(request, "Connection", "Upgrade")) return refuse(400, "the Connection header must include Upgrade");
    const auto version = request.header("Sec-WebSocket-Version");
    if (!version || request.header_count("Sec-WebSocket-Version") != 1 || *version != "13")
        return refuse(426, "unsupported WebSocket version; this server speaks version 13");
    const auto key = request.header("Sec-WebSocket-Key");
    if (!key || request.header_count("Sec-WebSocket-Key") != 1) return refuse(400, "missing or repeated Sec-WebSocket-Key");
    if (!is_valid_websocket_key(*key)) return refuse(400, "Sec-WebSocket-Key must be 16 bytes in base64");
    HandshakeCheck check;
    check.ok = true;
    check.key = std::string(*key);
    return check;
}

std::string make_upgrade_response(std::string_view key, const HttpHeaders& extra_headers) {
    std::string out;
    out.reserve(160);
    out += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
    out += compute_accept_key(key);
    out += "\r\n";
    for (const auto& [name, value] : extra_headers) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    out += "\r\n";
    return out;
}

std::string make_handshake_error(int status, std::string_view reason, const HttpHeaders& extra_headers) {
    HttpResponse response = HttpResponse::text(status, std::string(reason) + "\n");
    if (status == 426) {
        // Section 4.4: tell the client which versions we speak.
        response.header("Upgrade", "websocket");
        response.header("Sec-WebSocket-Version", "13");
    }
    for (const auto& header : extra_headers) response.headers.push_back(header);
    return serialize_response(response, false);
}

}  // namespace websock::codec
