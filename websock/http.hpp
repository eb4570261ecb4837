// Plain HTTP request and response values: what an upgrade request looked like, and what a
// program's HTTP handler answers to a non-upgrade request on the same port.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "websock/export.hpp"

namespace websock {

/// HTTP headers as name and value pairs, in order; a name may repeat.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

/// The first header with this name (case-insensitive), if any.
WEBSOCK_API std::optional<std::string_view> find_header(const HttpHeaders& headers, std::string_view name) noexcept;
/// All values of a header, joined with ", " (RFC 9110 section 5.3), empty when absent.
WEBSOCK_API std::string join_header(const HttpHeaders& headers, std::string_view name);
/// How many times a header occurs.
WEBSOCK_API std::size_t count_header(const HttpHeaders& headers, std::string_view name) noexcept;

/// An HTTP request: the upgrade request of a WebSocket, or a plain request for on_http_request.
struct WEBSOCK_API HttpRequest {
    std::string method;  ///< "GET", "POST", ...
    std::string target;  ///< the request target as sent: path and query
    std::string path;    ///< target up to '?', still percent-encoded
    std::string query;   ///< after '?', without it; empty when absent
    int version_major = 1;  ///< the first 1 of HTTP/1.1 in the request line
    int version_minor = 1;  ///< the second 1 of HTTP/1.1 in the request line
    HttpHeaders headers;  ///< in arrival order, names as sent
    std::string body;     ///< a Content-Length body; empty for an upgrade request
    std::string peer_address;  ///< who sent it: "127.0.0.1:50412", "[::1]:50412" or "unix"

    /// The first header with this name (case-insensitive); see find_header().
    std::optional<std::string_view> header(std::string_view name) const noexcept { return find_header(headers, name); }
    /// Every header with this name, joined with ", "; see join_header().
    std::string header_joined(std::string_view name) const { return join_header(headers, name); }
    /// How many headers have this name; see count_header().
    std::size_t header_count(std::string_view name) const noexcept { return count_header(headers, name); }
    /// The value of a query parameter (percent-decoded), if present.
    std::optional<std::string> query_param(std::string_view name) const;
};

/// An answer to a plain HTTP request (on_http_request, HttpResponder).
struct WEBSOCK_API HttpResponse {
    int status = 200;     ///< the status code; the reason phrase is http_reason_phrase(status)
    HttpHeaders headers;  ///< Content-Length and Connection are added when missing
    std::string body;     ///< sent as it is

    /// Add a header; returns *this so calls chain.
    HttpResponse& header(std::string name, std::string value) {
        headers.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    /// A response with this status and body, and Content-Type `content_type`.
    static HttpResponse text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
};

/// The standard reason phrase for a status code ("Not Found" for 404).
WEBSOCK_API std::string_view http_reason_phrase(int status) noexcept;

/// Serialise a response (status line, headers, Content-Length, body).
WEBSOCK_API std::string serialize_response(const HttpResponse& response, bool keep_alive = false);

/// Split a header value into comma-separated tokens, trimmed of spaces and tabs.
WEBSOCK_API std::vector<std::string_view> split_tokens(std::string_view value);

/// ASCII case-insensitive equality.
WEBSOCK_API bool iequals(std::string_view a, std::string_view b) noexcept;

/// Percent-decode (and '+' to space in query strings when `plus_is_space`).
WEBSOCK_API std::string percent_decode(std::string_view text, bool plus_is_space = false);

}  // namespace websock
