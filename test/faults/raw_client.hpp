// RawClient: an independent WebSocket client for the fault suite, written against the RFC
// with blocking sockets (and OpenSSL for wss), not with the library under test. Every call
// has a deadline and says whether it worked: under injected faults the server may cut the
// connection at any step, and a scenario then simply stops.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/ssl.h>

namespace faults {

struct Frame {
    std::uint8_t opcode = 0;
    bool fin = true;
    std::string payload;
};

struct HttpAnswer {
    int status = 0;
    std::string headers;
    std::string body;
};

class RawClient {
public:
    /// `tls_context`: a client context for wss (no verification), or null for ws.
    RawClient(std::uint16_t port, SSL_CTX* tls_context = nullptr,
              std::chrono::milliseconds io_timeout = std::chrono::milliseconds(3000));
    ~RawClient();
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    bool connected() const noexcept { return fd_ >= 0 && !failed_; }

    bool send_raw(std::string_view bytes);
    /// One HTTP response (status line, headers, a Content-Length body).
    std::optional<HttpAnswer> read_http();
    /// GET with the upgrade headers; true on a valid 101.
    bool upgrade(std::string_view path = "/");
    /// A masked frame (clients must mask, section 5.3).
    bool send_frame(std::uint8_t opcode, std::string_view payload, bool fin = true);
    bool send_close(std::uint16_t code, std::string_view reason = {});
    std::optional<Frame> read_frame();
    /// The next whole data message, answering pings and skipping pongs; nullopt on a close
    /// frame (kept in last_close()) or a failure.
    std::optional<std::string> read_message();
    /// True when the server ends TCP (EOF or reset) before the deadline.
    bool wait_eof();
    void shutdown_write();
    /// Close now with a TCP reset (SO_LINGER 0).
    void reset();

    std::optional<Frame> last_close() const { return last_close_; }

private:
    bool read_exact(char* data, std::size_t size);
    long read_some(char* data, std::size_t size);

    int fd_ = -1;
    SSL* ssl_ = nullptr;
    // Written by whichever thread saw a failure: echo_large sends from one thread while
    // another reads (plain sockets only; an SSL object is never shared that way).
    std::atomic<bool> failed_{false};
    std::string buffered_;  // bytes read past an HTTP head
    std::optional<Frame> last_close_;
};

/// A client TLS context that accepts any certificate (the test server's is self-signed).
SSL_CTX* client_tls_context();

/// Write a fresh self-signed certificate and key (PEM) for 127.0.0.1 to these paths.
bool make_self_signed(const std::string& certificate_path, const std::string& key_path);

}  // namespace faults
