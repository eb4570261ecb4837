// The client's side of the opening handshake (RFC 6455 sections 3, 4.1 and 4.2.2): the
// ws:// URL, a fresh Sec-WebSocket-Key, the GET upgrade request, an incremental HTTP/1.1
// response parser with a size limit (on nodejs/http-parser, HTTP_RESPONSE mode) and the
// client's validation of the server's answer (section 4.1, the list after "the client MUST
// validate the server's response"). Sans-I/O: bytes in, values and bytes out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "websock/export.hpp"
#include "websock/http.hpp"

namespace websock::codec {

// ---- the URL ----------------------------------------------------------------------------

/// A parsed ws:// or wss:// URL (section 3).
struct WebSocketUrl {
    bool secure = false;      ///< wss://
    std::string host;         ///< a name, an IPv4 literal, or an IPv6 literal without brackets
    std::uint16_t port = 80;  ///< the URL's port, or 80 (ws) / 443 (wss)
    bool default_port = true; ///< the port is the scheme's default (so Host carries no port)
    std::string target = "/"; ///< path and query as sent in the request line; "/" when empty
    std::string user;         ///< from user:password@ in the URL, percent-decoded; empty if absent
    std::string password;     ///< from user:password@ in the URL, percent-decoded; empty if absent
    bool has_userinfo = false; ///< the URL had a user:password@ part (even an empty one)
};

/// Parse `ws://host[:port][/path][?query]` (or wss://). The scheme is case-insensitive; a
/// fragment is refused (section 3: "fragment identifiers ... MUST NOT be used"), so are
/// spaces, control and non-ASCII bytes (percent-encode them). On failure returns nullopt and
/// sets `error`.
WEBSOCK_API std::optional<WebSocketUrl> parse_websocket_url(std::string_view url, std::string& error);

// ---- the request --------------------------------------------------------------------------

/// A fresh Sec-WebSocket-Key: 16 bytes from OpenSSL's RAND_bytes, base64 (section 4.1, item 7).
/// Throws std::runtime_error if the random generator fails.
WEBSOCK_API std::string make_websocket_key();

/// What goes into the upgrade request beyond the fixed headers.
struct UpgradeRequest {
    std::string host;          ///< as in WebSocketUrl (IPv6 without brackets)
    std::uint16_t port = 80;   ///< as in WebSocketUrl
    bool default_port = true;  ///< omit the port from Host
    std::string target = "/";  ///< path and query
    std::string origin;                      ///< Origin header; empty: not sent
    std::vector<std::string> subprotocols;   ///< Sec-WebSocket-Protocol, in our order of preference
    std::vector<std::string> extensions;     ///< Sec-WebSocket-Extensions offers, each "name; params"
    std::optional<std::pair<std::string, std::string>> basic_auth;  ///< user, password (RFC 7617)
    HttpHeaders extra_headers;               ///< sent as given, after the others
};

/// Why `request` cannot be sent, or an empty string when it can: a CR, LF or NUL in any value
/// (header injection), a header name that is not an HTTP token, a header the handshake
/// itself owns (Host, Upgrade, Connection, Sec-WebSocket-Key/-Version/-Protocol/-Extensions)
/// among the extra headers, a subprotocol that is not a token or is offered twice (section
/// 4.1, item 10), a ':' in a Basic user name (RFC 7617), or a target not starting with '/'.
WEBSOCK_API std::string validate_upgrade_request(const UpgradeRequest& request);

/// The GET upgrade request (section 4.1) for `key`. Host carries the port when it is not
/// the default, IPv6 literals in brackets. Call validate_upgrade_request first.
WEBSOCK_API std::string make_upgrade_request(const UpgradeRequest& request, std::string_view key);

/// "Basic " + base64(user ":" password), the Authorization value of RFC 7617.
WEBSOCK_API std::string basic_authorization(std::string_view user, std::string_view password);

// ---- the response -------------------------------------------------------------------------

/// The status line and headers of an HTTP response.
struct HttpResponseHead {
    int status = 0;      ///< the status code (101 for an accepted upgrade)
    std::string reason;  ///< the reason phrase as sent
    int version_major = 1;  ///< the first 1 of HTTP/1.1 in the status line
    int version_minor = 1;  ///< the second 1 of HTTP/1.1 in the status line
    HttpHeaders headers;  ///< in arrival order, names as sent

    /// The first header with this name (case-insensitive); see find_header().
    std::optional<std::string_view> header(std::string_view name) const noexcept { return find_header(headers, name); }
    /// Every header with this name, joined with ", "; see join_header().
    std::string header_joined(std::string_view name) const { return join_header(headers, name); }
    /// How many headers have this name; see count_header().
    std::size_t header_count(std::string_view name) const noexcept { return count_header(headers, name); }
};

/// Incremental HTTP/1.x response parser that stops right after the header block: whatever
/// follows (the server's first frames, or an error page's body) is left unconsumed for the
/// caller. Feed bytes until it says Complete or Error.
class WEBSOCK_API HttpResponseParser {
public:
    /// The parser's limit.
    struct Options {
        std::size_t max_header_bytes = 8 * 1024;  ///< status line + headers; an error past it
    };
    /// Where the parse is: NeedMore (feed more bytes), Complete (response() is whole), Error (see error()).
    enum class Status { NeedMore, Complete, Error };

    /// A parser with these limits.
    explicit HttpResponseParser(Options options);
    HttpResponseParser() : HttpResponseParser(Options{}) {}
    ~HttpResponseParser();
    HttpResponseParser(const HttpResponseParser&) = delete;
    HttpResponseParser& operator=(const HttpResponseParser&) = delete;

    /// Feed bytes; `consumed` says how many were used (never a byte past the header block).
    /// Once Complete or Error, further feeds return the same status and consume nothing.
    Status feed(const char* data, std::size_t size, std::size_t& consumed);

    /// The status the last feed() returned (NeedMore before any).
    Status status() const noexcept { return status_; }
    /// The response so far (whole once Complete).
    const HttpResponseHead& response() const noexcept { return response_; }
    /// After Error: what was wrong.
    const std::string& error() const noexcept { return error_; }

    struct Impl;  // http-parser callbacks live here

private:
    std::unique_ptr<Impl> impl_;
    Options options_;
    HttpResponseHead response_;
    Status status_ = Status::NeedMore;
    std::string error_;
};

/// The outcome of checking the server's answer to our upgrade request.
struct UpgradeResponseCheck {
    bool ok = false;           ///< the server accepted the upgrade as offered
    int status = 0;            ///< the response's status code (101 when ok)
    std::string error;         ///< when !ok: why, for a human ("the server answered 403 Forbidden ...")
    std::string subprotocol;   ///< when ok: the subprotocol the server chose, empty for none
    std::string extensions;    ///< when ok: the Sec-WebSocket-Extensions the server accepted
};

/// What the client offered, for checking the answer.
struct UpgradeOffer {
    std::string key;                         ///< our Sec-WebSocket-Key
    std::vector<std::string> subprotocols;   ///< what we offered, if anything
    std::vector<std::string> extensions;     ///< extension names we offered (not their parameters)
    bool require_subprotocol = true;         ///< having offered some, fail when the server picks
                                             ///< none (as browsers and Node's ws do)
};

/// Validate a complete response per section 4.1, in order: HTTP/1.1 or later, status 101,
/// Upgrade names websocket, Connection has the token Upgrade, Sec-WebSocket-Accept is
/// base64(SHA-1(key + GUID)), every extension was offered, the subprotocol (at most one)
/// was offered.
WEBSOCK_API UpgradeResponseCheck check_upgrade_response(const HttpResponseHead& response, const UpgradeOffer& offer);

}  // namespace websock::codec
