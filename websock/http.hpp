// Plain HTTP request and response values: what an upgrade request looked like, and what a
// program's HTTP handler answers to a non-upgrade request on the same port.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace websock {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

/// The first header with this name (case-insensitive), if any.
std::optional<std::string_view> find_header(const HttpHeaders& headers, std::string_view name) noexcept;
/// All values of a header, joined with ", " (RFC 9110 section 5.3), empty when absent.
std::string join_header(const HttpHeaders& headers, std::string_view name);
/// How many times a header occurs.
std::size_t count_header(const HttpHeaders& headers, std::string_view name) noexcept;

struct HttpRequest {
    std::string method;  ///< "GET", "POST", ...
    std::string target;  ///< the request target as sent: path and query
    std::string path;    ///< target up to '?', still percent-encoded
    std::string query;   ///< after '?', without it; empty when absent
    int version_major = 1;
    int version_minor = 1;
    HttpHeaders headers;  ///< in arrival order, names as sent
    std::string body;
    std::string peer_address;  ///< who sent it: "127.0.0.1:50412", "[::1]:50412" or "unix"

    std::optional<std::string_view> header(std::string_view name) const noexcept { return find_header(headers, name); }
    std::string header_joined(std::string_view name) const { return join_header(headers, name); }
    std::size_t header_count(std::string_view name) const noexcept { return count_header(headers, name); }
    /// The value of a query parameter (percent-decoded), if present.
    std::optional<std::string> query_param(std::string_view name) const;
};

struct HttpResponse {
    int status = 200;
    HttpHeaders headers;  ///< Content-Length and Connection are added when missing
    std::string body;

    HttpResponse& header(std::string name, std::string value) {
        headers.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    static HttpResponse text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
};

/// The standard reason phrase for a status code ("Not Found" for 404).
std::string_view http_reason_phrase(int status) noexcept;

/// Serialise a response (status line, headers, Content-Length, body).
std::string serialize_response(const HttpResponse& response, bool keep_alive = false);

/// Split a header value into comma-separated tokens, trimmed of spaces and tabs.
std::vector<std::string_view> split_tokens(std::string_view value);

/// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// Percent-decode (and '+' to space in query strings when `plus_is_space`).
std::string percent_decode(std::string_view text, bool plus_is_space = false);

}  // namespace websock
