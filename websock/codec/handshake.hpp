// The opening handshake (RFC 6455 section 4): an incremental HTTP/1.1 request parser with
// size limits (on nodejs/http-parser, from Debian's libhttp-parser-dev), the server's
// validation of an upgrade request (section 4.2.1), and the responses (section 4.2.2).
// Sans-I/O: bytes in, values and bytes out.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "websock/export.hpp"
#include "websock/http.hpp"

namespace websock::codec {

/// The GUID that section 1.3 appends to the key before hashing.
inline constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), with OpenSSL.
WEBSOCK_API std::string compute_accept_key(std::string_view key);

/// Does the key decode (base64) to exactly 16 bytes? (Section 4.1, item 7.)
WEBSOCK_API bool is_valid_websocket_key(std::string_view key);

/// Incremental HTTP/1.x request parser. Feed bytes until it says Complete or Error.
/// For an upgrade request it stops right after the header block; bytes past it (frames a
/// client sent early) are left unconsumed for the caller.
class WEBSOCK_API HttpRequestParser {
public:
    /// The parser's limits.
    struct Options {
        std::size_t max_header_bytes = 8 * 1024;  ///< request line + headers; 431 past it
        std::size_t max_body_bytes = 1 << 20;      ///< Content-Length bodies; 413 past it
    };
    /// Where the parse is: NeedMore (feed more bytes), Complete (request() is whole), Error (see error_status()).
    enum class Status { NeedMore, Complete, Error };

    /// A parser with these limits.
    explicit HttpRequestParser(Options options);
    HttpRequestParser() : HttpRequestParser(Options{}) {}
    ~HttpRequestParser();
    HttpRequestParser(const HttpRequestParser&) = delete;
    HttpRequestParser& operator=(const HttpRequestParser&) = delete;

    /// Feed bytes; `consumed` says how many were used. Once Complete or Error, further
    /// feeds return the same status and consume nothing.
    Status feed(const char* data, std::size_t size, std::size_t& consumed);

    /// The status the last feed() returned (NeedMore before any).
    Status status() const noexcept { return status_; }
    /// True once any byte has been fed.
    bool started() const noexcept { return bytes_fed_ > 0; }
    /// The request so far (whole once Complete).
    HttpRequest& request() noexcept { return request_; }
    /// True when the request asked to upgrade the connection (an Upgrade header was present).
    bool is_upgrade() const noexcept { return upgrade_; }
    /// Did the client ask to keep the connection open? (HTTP/1.1 default unless "close")
    bool keep_alive() const noexcept { return keep_alive_; }
    /// After Error: the HTTP status to answer with (400, 413, 431) and a short reason.
    int error_status() const noexcept { return error_status_; }
    std::string_view error_reason() const noexcept { return error_reason_; }  ///< see error_status()

    struct Impl;  // http-parser callbacks live here

private:
    std::unique_ptr<Impl> impl_;
    Options options_;
    HttpRequest request_;
    Status status_ = Status::NeedMore;
    std::size_t bytes_fed_ = 0;
    bool upgrade_ = false;
    bool keep_alive_ = false;
    int error_status_ = 0;
    std::string error_reason_;
};

/// The outcome of checking an upgrade request.
struct HandshakeCheck {
    bool ok = false;          ///< a valid WebSocket upgrade request (RFC 6455 section 4.2.1)
    int status = 0;           ///< when !ok: 400, or 426 for an unsupported version
    std::string reason;       ///< when !ok: a short human-readable reason (sent as the body)
    std::string key;          ///< when ok: the client's Sec-WebSocket-Key
};

/// Validate a parsed upgrade request per section 4.2.1.
WEBSOCK_API HandshakeCheck check_upgrade_request(const HttpRequest& request);

/// The 101 response (section 4.2.2) with optional extra header lines (each "Name: value").
WEBSOCK_API std::string make_upgrade_response(std::string_view key, const HttpHeaders& extra_headers = {});

/// A plain error response for a refused handshake: status, reason as text body, and
/// `Sec-WebSocket-Version: 13` on 426 (section 4.4).
WEBSOCK_API std::string make_handshake_error(int status, std::string_view reason, const HttpHeaders& extra_headers = {});

}  // namespace websock::codec
