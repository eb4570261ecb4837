#include "websock/codec/client_handshake.hpp"
#include "websock/codec/detail/header_collector.hpp"

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "websock/codec/handshake.hpp"

namespace websock::codec {

namespace {

std::string base64(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                       reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(length));
    return out;
}

/// RFC 9110 section 5.6.2: tchar.
bool is_tchar(char c) noexcept {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) noexcept {
    return !text.empty() && std::all_of(text.begin(), text.end(), is_tchar);
}

/// A header value may not break out of its line.
bool is_safe_value(std::string_view text) noexcept {
    return text.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool is_url_byte(char c) noexcept {
    const auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte < 0x7f;
}

bool is_host_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

bool is_ipv6_char(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

/// Headers the handshake writes itself; an extra header may not replace or repeat them.
constexpr std::string_view kOwnHeaders[] = {
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
};

std::string host_header(std::string_view host, std::uint16_t port, bool default_port) {
    const bool ipv6 = host.find(':') != std::string_view::npos;
    std::string out = ipv6 ? fmt::format("[{}]", host) : std::string(host);
    if (!default_port) out += fmt::format(":{}", port);
    return out;
}

}  // namespace

// ---- the URL ----------------------------------------------------------------------------------

std::optional<WebSocketUrl> parse_websocket_url(std::string_view url, std::string& error) {
    auto fail = [&](std::string why) -> std::optional<WebSocketUrl> {
        error = std::move(why);
        return std::nullopt;
    };
    if (url.empty()) return fail("empty URL");
    if (!std::all_of(url.begin(), url.end(), is_url_byte))
        return fail("the URL contains a space, a control character or a non-ASCII byte (percent-encode it)");
    WebSocketUrl out;
    const std::size_t scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) return fail("not a WebSocket URL: expected ws://host[:port]/path");
    const std::string_view scheme = url.substr(0, scheme_end);
    if (iequals(scheme, "ws")) {
        out.secure = false;
        out.port = 80;
    } else if (iequals(scheme, "wss")) {
        out.secure = true;
        out.port = 443;
    } else {
        return fail(fmt::format("unsupported scheme '{}': use ws:// or wss://", scheme));
    }
    std::string_view rest = url.substr(scheme_end + 3);
    if (rest.find('#') != std::string_view::npos) return fail("a WebSocket URL may not have a fragment (#)");

    const std::size_t authority_end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, authority_end);
    const std::string_view target = authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);

    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = authority.substr(0, at);
        authority.remove_prefix(at + 1);
        const std::size_t colon = userinfo.find(':');
        out.has_userinfo = true;
        out.user = percent_decode(userinfo.substr(0, colon));
        if (colon != std::string_view::npos) out.password = percent_decode(userinfo.substr(colon + 1));
    }

    std::string_view port_text;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return fail("unterminated IPv6 literal: missing ']'");
        const std::string_view literal = authority.substr(1, close - 1);
        if (literal.empty() || !std::all_of(literal.begin(), literal.end(), is_ipv6_char) ||
            literal.find(':') == std::string_view::npos)
            return fail(fmt::format("bad IPv6 literal '[{}]'", literal));
        out.host = std::string(literal);
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return fail("unexpected characters after the IPv6 literal");
            has_port = true;
            port_text = after.substr(1);
        }
    } else {
        const std::size_t colon = authority.find(':');
        const std::string_view host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            has_port = true;
            port_text = authority.substr(colon + 1);
        }
        if (!std::all_of(host.begin(), host.end(), is_host_char))
            return fail(fmt::format("bad host name '{}'", host));
        out.host = std::string(host);
    }
    if (out.host.empty()) return fail("the URL has no host");
    if (has_port && !port_text.empty()) {
        if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return fail(fmt::format("bad port '{}'", port_text));
        const unsigned long port = std::stoul(std::string(port_text));
        if (port == 0 || port > 65535) return fail(fmt::format("port {} out of range 1-65535", port));
        out.default_port = port == (out.secure ? 443u : 80u);
        out.port = static_cast<std::uint16_t>(port);
    }
    if (target.empty()) out.target = "/";
    else if (target.front() == '?') out.target = "/" + std::string(target);
    else out.target = std::string(target);
    return out;
}

// ---- the request ------------------------------------------------------------------------------

std::string make_websocket_key() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed: no randomness for Sec-WebSocket-Key");
    return base64(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

std::string basic_authorization(std::string_view user, std::string_view password) {
    std::string credentials;
    credentials.reserve(user.size() + 1 + password.size());
    credentials.append(user).append(":").append(password);
    return "Basic " + base64(credentials);
}

std::string validate_upgrade_request(const UpgradeRequest& request) {
    if (request.host.empty()) return "no host";
    if (!std::all_of(request.host.begin(), request.host.end(), [](char c) { return is_host_char(c) || c == ':'; }))
        return fmt::format("bad host '{}'", request.host);
    if (request.target.empty() || request.target.front() != '/')
        return fmt::format("the request target must start with '/': '{}'", request.target);
    if (!std::all_of(request.target.begin(), request.target.end(), is_url_byte))
        return "the request target contains a space, a control character or a non-ASCII byte";
    if (!is_safe_value(request.origin)) return "the Origin contains CR, LF or NUL";
    for (std::size_t i = 0; i < request.subprotocols.size(); ++i) {
        const auto& protocol = request.subprotocols[i];
        if (!is_token(protocol)) return fmt::format("subprotocol '{}' is not an HTTP token", protocol);
        for (std::size_t j = 0; j < i; ++j)
            if (request.subprotocols[j] == protocol) return fmt::format("subprotocol '{}' offered twice", protocol);
    }
    for (const auto& extension : request.extensions)
        if (extension.empty() || !is_safe_value(extension) || extension.find(',') != std::string::npos)
            return fmt::format("bad extension offer '{}'", extension);
    if (request.basic_auth) {
        if (request.basic_auth->first.find(':') != std::string::npos) return "a Basic user name may not contain ':'";
        if (!is_safe_value(request.basic_auth->first) || !is_safe_value(request.basic_auth->second))
            return "the Basic credentials contain CR, LF or NUL";
    }
    for (const auto& [name, value] : request.extra_headers) {
        if (!is_token(name)) return fmt::format("header name '{}' is not an HTTP token", name);
        if (!is_safe_value(value)) return fmt::format("the value of header '{}' contains CR, LF or NUL", name);
        for (const auto own : kOwnHeaders)
            if (iequals(name, own)) return fmt::format("header '{}' is set by the handshake itself", name);
        if (request.basic_auth && iequals(name, "Authorization")) return "Authorization given twice (Basic auth and an extra header)";
        if (!request.origin.empty() && iequals(name, "Origin")) return "Origin given twice (the option and an extra header)";
    }
    return {};
}

std::string make_upgrade_request(const UpgradeRequest& request, std::string_view key) {
    std::string out;
    out.reserve(256 + request.target.size());
    out += "GET ";
    out += request.target;
    out += " HTTP/1.1\r\nHost: ";
    out += host_header(request.host, request.port, request.default_port);
    out += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
    out += key;
    out += "\r\nSec-WebSocket-Version: 13\r\n";
    if (!request.origin.empty()) out += fmt::format("Origin: {}\r\n", request.origin);
    if (!request.subprotocols.empty())
        out += fmt::format("Sec-WebSocket-Protocol: {}\r\n", fmt::join(request.subprotocols, ", "));
    if (!request.extensions.empty())
        out += fmt::format("Sec-WebSocket-Extensions: {}\r\n", fmt::join(request.extensions, ", "));
    if (request.basic_auth)
        out += fmt::format("Authorization: {}\r\n", basic_authorization(request.basic_auth->first, request.basic_auth->second));
    for (const auto& [name, value] : request.extra_headers) out += fmt::format("{}: {}\r\n", name, value);
    out += "\r\n";
    return out;
}

// ---- the response parser ------------------------------------------------------------------------

struct HttpResponseParser::Impl {
    http_parser parser{};
    http_parser_settings settings{};
    HttpResponseParser* owner = nullptr;
    detail::HeaderCollector collector;
    bool headers_complete = false;
    std::size_t header_bytes = 0;

    static Impl& of(http_parser* p) { return *static_cast<Impl*>(p->data); }

    static int on_status(http_parser* p, const char* at, std::size_t length) {
        of(p).owner->response_.reason.append(at, length);
        return 0;
    }
    static int on_header_field(http_parser* p, const char* at, std::size_t length) {
        of(p).collector.field(of(p).owner->response_.headers, at, length);
        return 0;
    }
    static int on_header_value(http_parser* p, const char* at, std::size_t length) {
        of(p).collector.value(of(p).owner->response_.headers, at, length);
        return 0;
    }
    static int on_headers_complete(http_parser* p) {
        auto& self = of(p);
        auto& response = self.owner->response_;
        self.headers_complete = true;
        response.status = static_cast<int>(p->status_code);
        response.version_major = p->http_major;
        response.version_minor = p->http_minor;
        detail::HeaderCollector::trim(response.headers);
        // 2: no body and no further message on this connection. http-parser then ends the
        // message right after the header block and returns, leaving the rest to us.
        return 2;
    }
};

HttpResponseParser::HttpResponseParser(Options options) : impl_(std::make_unique<Impl>()), options_(options) {
    impl_->owner = this;
    http_parser_init(&impl_->parser, HTTP_RESPONSE);
    impl_->parser.data = impl_.get();
    http_parser_settings_init(&impl_->settings);
    impl_->settings.on_status = &Impl::on_status;
    impl_->settings.on_header_field = &Impl::on_header_field;
    impl_->settings.on_header_value = &Impl::on_header_value;
    impl_->settings.on_headers_complete = &Impl::on_headers_complete;
}

HttpResponseParser::~HttpResponseParser() = default;

HttpResponseParser::Status HttpResponseParser::feed(const char* data, std::size_t size, std::size_t& consumed) {
    consumed = 0;
    if (status_ != Status::NeedMore) return status_;
    auto& impl = *impl_;
    auto fail = [&](std::string reason) {
        status_ = Status::Error;
        error_ = std::move(reason);
        return status_;
    };
    while (consumed < size && !impl.headers_complete) {
        // Never hand the parser more header bytes than the limit allows.
        const std::size_t allowance = options_.max_header_bytes - impl.header_bytes;
        if (allowance == 0) break;
        const std::size_t piece = std::min(size - consumed, allowance);
        const std::size_t parsed = http_parser_execute(&impl.parser, &impl.settings, data + consumed, piece);
        consumed += parsed;
        impl.header_bytes += parsed;
        const auto error = HTTP_PARSER_ERRNO(&impl.parser);
        if (error == HPE_HEADER_OVERFLOW) break;
        if (error != HPE_OK) return fail(fmt::format("malformed HTTP response: {}", http_errno_description(error)));
        if (!impl.headers_complete && parsed < piece) return fail("malformed HTTP response");
    }
    if (impl.headers_complete) {
        status_ = Status::Complete;
        return status_;
    }
    if (impl.header_bytes >= options_.max_header_bytes || HTTP_PARSER_ERRNO(&impl.parser) == HPE_HEADER_OVERFLOW)
        return fail(fmt::format("the HTTP response headers are larger than {} bytes", options_.max_header_bytes));
    return status_;
}

// ---- validation -------------------------------------------------------------------------------------

namespace {

bool has_token(const HttpResponseHead& response, std::string_view header, std::string_view token) {
    const std::string joined = response.header_joined(header);  // the tokens view into it
    for (const auto value : split_tokens(joined))
        if (iequals(value, token)) return true;
    return false;
}

UpgradeResponseCheck refuse(int status, std::string error) {
    UpgradeResponseCheck check;
    check.status = status;
    check.error = std::move(error);
    return check;
}

}  // namespace

UpgradeResponseCheck check_upgrade_response(const HttpResponseHead& response, const UpgradeOffer& offer) {
    const int status = response.status;
    if (response.version_major < 1 || (response.version_major == 1 && response.version_minor < 1))
        return refuse(status, fmt::format("the server answered with HTTP/{}.{}; a WebSocket needs HTTP/1.1",
                                          response.version_major, response.version_minor));
    // Section 4.1: "If the status code received from the server is not 101, the client
    // handles the response per HTTP procedures" -- for us: the connection fails, saying why.
    if (status != 101) {
        std::string error = fmt::format("the server answered {} {} instead of 101 Switching Protocols", status,
                                        response.reason.empty() ? std::string(http_reason_phrase(status)) : response.reason);
        if (status == 401 || status == 407) error += " (authentication required)";
        if (const auto version = response.header("Sec-WebSocket-Version"); status == 426 && version)
            error += fmt::format(" (it speaks WebSocket version {})", *version);
        return refuse(status, std::move(error));
    }
    if (!has_token(response, "Upgrade", "websocket"))
        return refuse(status, "the 101 response lacks 'Upgrade: websocket'");
    if (!has_token(response, "Connection", "Upgrade"))
        return refuse(status, "the 101 response's Connection header lacks the Upgrade token");
    const auto accept = response.header("Sec-WebSocket-Accept");
    if (!accept || response.header_count("Sec-WebSocket-Accept") != 1)
        return refuse(status, "the 101 response has no (or more than one) Sec-WebSocket-Accept");
    const std::string expected = compute_accept_key(offer.key);
    if (*accept != expected)
        return refuse(status, fmt::format("wrong Sec-WebSocket-Accept '{}' (expected '{}' for our key)", *accept, expected));

    UpgradeResponseCheck check;
    check.status = status;
    // Section 4.1, item 5: an extension we did not offer fails the connection.
    check.extensions = response.header_joined("Sec-WebSocket-Extensions");
    for (const auto extension : split_tokens(check.extensions)) {
        const std::string_view name = extension.substr(0, extension.find(';'));
        std::string_view trimmed = name;
        while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t')) trimmed.remove_suffix(1);
        const bool offered = std::any_of(offer.extensions.begin(), offer.extensions.end(),
                                         [&](const std::string& ours) { return iequals(ours, trimmed); });
        if (!offered) return refuse(status, fmt::format("the server accepted extension '{}' that we did not offer", trimmed));
    }
    // Section 4.1, item 6: a subprotocol we did not offer fails the connection; so does a list.
    const std::string protocol = response.header_joined("Sec-WebSocket-Protocol");
    if (!protocol.empty()) {
        if (response.header_count("Sec-WebSocket-Protocol") != 1 || protocol.find(',') != std::string::npos)
            return refuse(status, fmt::format("the server chose more than one subprotocol: '{}'", protocol));
        const bool offered = std::find(offer.subprotocols.begin(), offer.subprotocols.end(), protocol) != offer.subprotocols.end();
        if (!offered) {
            if (offer.subprotocols.empty())
                return refuse(status, fmt::format("the server chose subprotocol '{}' but we offered none", protocol));
            return refuse(status, fmt::format("the server chose subprotocol '{}', which we did not offer ({})", protocol,
                                              fmt::join(offer.subprotocols, ", ")));
        }
        check.subprotocol = protocol;
    } else if (!offer.subprotocols.empty() && offer.require_subprotocol) {
        return refuse(status, fmt::format("the server chose none of our subprotocols ({})", fmt::join(offer.subprotocols, ", ")));
    }
    check.ok = true;
    return check;
}

}  // namespace websock::codec
