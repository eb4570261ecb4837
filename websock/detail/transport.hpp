// Byte transports under a connection: plain TCP (or a unix socket) and TLS over it, both
// non-blocking, in the server role (ClientDriver) and the client role (WebSocketClient).
// Connections read and write through this interface, so TLS is one more layer rather than
// another server or client. Internal.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <openssl/ssl.h>

#include "websock/detail/slab.hpp"

namespace websock::detail {

struct IoResult {
    enum class Status : std::uint8_t { Ok, WouldBlock, Eof, Error };
    Status status = Status::Ok;
    std::size_t bytes = 0;  ///< when Ok
};

class Transport {
public:
    virtual ~Transport() = default;
    // A connection's transport lives as long as it: in the slab (slab.hpp), away from the
    // handshakes' heap.
    static void* operator new(std::size_t bytes) { return slab_allocate(bytes); }
    static void operator delete(void* transport, std::size_t bytes) noexcept { slab_deallocate(transport, bytes); }
    /// Step the transport's own handshake (TLS); true once done. False with error() set on
    /// failure, or false with nothing set while it waits for the socket.
    virtual bool handshake() { return true; }
    virtual IoResult read(void* buffer, std::size_t size) = 0;
    virtual IoResult write(const void* data, std::size_t size) = 0;
    /// The last operation waits for the socket to become writable (TLS may write to read).
    virtual bool wants_write() const noexcept { return false; }
    /// Decrypted bytes are buffered inside the transport: read again without waiting.
    virtual bool has_buffered_input() const noexcept { return false; }
    /// End our direction: TLS close_notify, then TCP FIN.
    virtual void shutdown_write() noexcept = 0;

    // ---- writes from another thread (ClientCore's direct sends) ----
    /// write_pair() may run on a thread other than the connection's own, while that thread
    /// does not write (ClientCore's one-writer token): plain TCP. TLS keeps record state
    /// that only the connection's thread may touch.
    virtual bool writes_from_any_thread() const noexcept { return false; }
    /// Write `first` then `second` with one call (a frame header and its payload, without
    /// joining them). Unlike write(), sets no error(): the connection's thread owns that, and
    /// meets the socket's error itself on its next call. Only where writes_from_any_thread().
    virtual IoResult write_pair(const void* /*first*/, std::size_t /*first_size*/, const void* /*second*/,
                                std::size_t /*second_size*/) noexcept {
        return {IoResult::Status::Error, 0};
    }
    const std::string& error() const noexcept { return error_; }

protected:
    std::string error_;
};

/// A transport with no socket: reads end (Eof), writes and handshakes fail. One shared,
/// stateless instance; a connection switches to it when it closes its socket, so code
/// that still runs afterwards cannot touch a descriptor that may already be reused.
Transport& closed_transport() noexcept;

/// recv/send on a non-blocking socket it does not own.
std::unique_ptr<Transport> make_plain_transport(int fd);

/// A server TLS context from PEM files (TLS 1.2 and 1.3 only); null with `error` set.
struct TlsContextDeleter {
    void operator()(SSL_CTX* context) const noexcept { SSL_CTX_free(context); }
};
using TlsContext = std::unique_ptr<SSL_CTX, TlsContextDeleter>;
TlsContext make_server_tls_context(const std::string& certificate_file, const std::string& private_key_file,
                                   std::string& error);

/// TLS over a non-blocking socket it does not own, in the server role.
std::unique_ptr<Transport> make_tls_server_transport(SSL_CTX* context, int fd);

/// A client TLS context (TLS 1.2 and 1.3): peers verified against the system's CAs, or
/// `ca_file`, when `verify` is on; null with `error` set.
TlsContext make_client_tls_context(bool verify, const std::string& ca_file, std::string& error);

/// TLS over a non-blocking socket it does not own, in the client role: SNI, and the
/// certificate checked against `host` when `verify` is on. handshake() drives SSL_connect.
std::unique_ptr<Transport> make_tls_client_transport(SSL_CTX* context, int fd, const std::string& host, bool verify);

}  // namespace websock::detail
