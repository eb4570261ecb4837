#include "websock/detail/transport.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace websock::detail {
namespace {

std::string openssl_errors() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        char buffer[256];
        ERR_error_string_n(code, buffer, sizeof buffer);
        if (!text.empty()) text += "; ";
        text += buffer;
    }
    return text.empty() ? std::string("unknown TLS error") : text;
}

// OpenSSL's own socket BIO writes with write(2): a peer that resets the connection while
// we write then raises SIGPIPE, which ends any process that has not ignored it. A library
// must not depend on that, so TLS reads and writes go through this BIO instead: recv and
// send(MSG_NOSIGNAL) on the descriptor, which it does not own.
int socket_bio_write(BIO* bio, const char* data, int size) {
    const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
    BIO_clear_retry_flags(bio);
    for (;;) {
        const ssize_t sent = ::send(fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
        if (sent >= 0) return static_cast<int>(sent);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
        return -1;
    }
}

int socket_bio_read(BIO* bio, char* buffer, int size) {
    const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
    BIO_clear_retry_flags(bio);
    for (;;) {
        const ssize_t got = ::recv(fd, buffer, static_cast<std::size_t>(size), 0);
        if (got >= 0) return static_cast<int>(got);  // 0: the peer's FIN
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(bio);
        return -1;
    }
}

long socket_bio_ctrl(BIO*, int command, long, void*) {
    return command == BIO_CTRL_FLUSH || command == BIO_CTRL_DUP ? 1 : 0;  // nothing buffered here
}

int socket_bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

int socket_bio_destroy(BIO*) { return 1; }  // the descriptor belongs to the connection

const BIO_METHOD* socket_bio_method() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "websock socket");
        if (made == nullptr) return made;
        BIO_meth_set_write(made, socket_bio_write);
        BIO_meth_set_read(made, socket_bio_read);
        BIO_meth_set_ctrl(made, socket_bio_ctrl);
        BIO_meth_set_create(made, socket_bio_create);
        BIO_meth_set_destroy(made, socket_bio_destroy);
        return made;
    }();
    return method;
}

/// Read and write `ssl`'s records through `fd` without SIGPIPE; false when out of memory.
bool attach_socket(SSL* ssl, int fd) {
    const BIO_METHOD* method = socket_bio_method();
    BIO* bio = method != nullptr ? BIO_new(method) : nullptr;
    if (bio == nullptr) return false;
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
    SSL_set_bio(ssl, bio, bio);  // ssl owns it now
    return true;
}

class ClosedTransport final : public Transport {
public:
    bool handshake() override { return false; }
    IoResult read(void*, std::size_t) override { return {IoResult::Status::Eof, 0}; }
    IoResult write(const void*, std::size_t) override { return {IoResult::Status::Error, 0}; }
    void shutdown_write() noexcept override {}
};

class PlainTransport final : public Transport {
public:
    explicit PlainTransport(int fd) : fd_(fd) {}

    IoResult read(void* buffer, std::size_t size) override {
        for (;;) {
            const ssize_t got = ::recv(fd_, buffer, size, 0);
            if (got > 0) return {IoResult::Status::Ok, static_cast<std::size_t>(got)};
            if (got == 0) return {IoResult::Status::Eof, 0};
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::Status::WouldBlock, 0};
            error_ = std::strerror(errno);
            return {IoResult::Status::Error, 0};
        }
    }

    IoResult write(const void* data, std::size_t size) override {
        for (;;) {
            const ssize_t sent = ::send(fd_, data, size, MSG_NOSIGNAL);
            if (sent >= 0) return {IoResult::Status::Ok, static_cast<std::size_t>(sent)};
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::Status::WouldBlock, 0};
            error_ = std::strerror(errno);
            return {IoResult::Status::Error, 0};
        }
    }

    void shutdown_write() noexcept override { ::shutdown(fd_, SHUT_WR); }

    bool writes_from_any_thread() const noexcept override { return true; }

    IoResult write_pair(const void* first, std::size_t first_size, const void* second,
                        std::size_t second_size) noexcept override {
        iovec parts[2] = {{const_cast<void*>(first), first_size}, {const_cast<void*>(second), second_size}};
        msghdr message{};
        message.msg_iov = parts;
        message.msg_iovlen = second_size == 0 ? 1 : 2;
        for (;;) {
            const ssize_t sent = ::sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent >= 0) return {IoResult::Status::Ok, static_cast<std::size_t>(sent)};
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::Status::WouldBlock, 0};
            return {IoResult::Status::Error, 0};
        }
    }

private:
    int fd_;
};

class TlsTransport final : public Transport {
public:
    /// The server role: the context holds the certificate.
    TlsTransport(SSL_CTX* context, int fd) : fd_(fd), ssl_(SSL_new(context)) {
        if (ssl_ == nullptr || !attach_socket(ssl_, fd)) {
            error_ = openssl_errors();
            return;
        }
        SSL_set_accept_state(ssl_);
    }
    /// The client role: SNI for a host name, and the peer's certificate checked against
    /// `host` (a name or an IP address) when `verify` is on.
    TlsTransport(SSL_CTX* context, int fd, const std::string& host, bool verify) : fd_(fd), ssl_(SSL_new(context)) {
        if (ssl_ == nullptr || !attach_socket(ssl_, fd)) {
            error_ = openssl_errors();
            return;
        }
        const bool is_address =
            host.find(':') != std::string::npos || host.find_first_not_of("0123456789.") == std::string::npos;
        if (!is_address) SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI takes names only
        if (verify) {
            const int ok = is_address ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str())
                                      : SSL_set1_host(ssl_, host.c_str());
            if (ok != 1) {
                error_ = fmt::format("cannot set the expected host name: {}", openssl_errors());
                return;
            }
        }
        SSL_set_connect_state(ssl_);
    }
    ~TlsTransport() override {
        if (ssl_ != nullptr) SSL_free(ssl_);
    }

    bool handshake() override {
        if (ssl_ == nullptr || !error_.empty()) return false;
        if (handshake_done_) return true;
        ERR_clear_error();
        const int rc = SSL_do_handshake(ssl_);
        if (rc == 1) {
            handshake_done_ = true;
            wants_write_ = false;
            return true;
        }
        const auto result = classify(rc);
        if (result.status == IoResult::Status::Eof) {
            // Without this the socket stays readable (at EOF) and a poller would spin.
            error_ = "the peer closed the connection during the TLS handshake";
        } else if (result.status == IoResult::Status::Error && SSL_get_verify_result(ssl_) != X509_V_OK) {
            error_ = fmt::format("certificate verification failed: {}",
                                 X509_verify_cert_error_string(SSL_get_verify_result(ssl_)));
        }
        return false;
    }

    IoResult read(void* buffer, std::size_t size) override {
        ERR_clear_error();
        const int got = SSL_read(ssl_, buffer, static_cast<int>(std::min<std::size_t>(size, 1u << 30)));
        if (got > 0) {
            wants_write_ = false;
            return {IoResult::Status::Ok, static_cast<std::size_t>(got)};
        }
        return classify(got);
    }

    IoResult write(const void* data, std::size_t size) override {
        if (size == 0) return {IoResult::Status::Ok, 0};
        ERR_clear_error();
        const int sent = SSL_write(ssl_, data, static_cast<int>(std::min<std::size_t>(size, 1u << 30)));
        if (sent > 0) {
            wants_write_ = false;
            return {IoResult::Status::Ok, static_cast<std::size_t>(sent)};
        }
        return classify(sent);
    }

    bool wants_write() const noexcept override { return wants_write_; }
    bool has_buffered_input() const noexcept override { return ssl_ != nullptr && SSL_pending(ssl_) > 0; }

    void shutdown_write() noexcept override {
        if (ssl_ != nullptr && handshake_done_) {
            ERR_clear_error();
            SSL_shutdown(ssl_);  // close_notify; we do not wait for the peer's
        }
        ::shutdown(fd_, SHUT_WR);
    }

private:
    IoResult classify(int rc) {
        const int reason = SSL_get_error(ssl_, rc);
        switch (reason) {
            case SSL_ERROR_WANT_READ:
                wants_write_ = false;
                return {IoResult::Status::WouldBlock, 0};
            case SSL_ERROR_WANT_WRITE:
                wants_write_ = true;
                return {IoResult::Status::WouldBlock, 0};
            case SSL_ERROR_ZERO_RETURN:
                return {IoResult::Status::Eof, 0};  // the peer's close_notify
            case SSL_ERROR_SYSCALL:
                if (ERR_peek_error() == 0) {
                    if (errno == 0 || rc == 0) return {IoResult::Status::Eof, 0};  // EOF without close_notify
                    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {IoResult::Status::WouldBlock, 0};
                    error_ = std::strerror(errno);
                    return {IoResult::Status::Error, 0};
                }
                [[fallthrough]];
            default:
                error_ = openssl_errors();
                return {IoResult::Status::Error, 0};
        }
    }

    int fd_;
    SSL* ssl_;
    bool handshake_done_ = false;
    bool wants_write_ = false;
};

}  // namespace

Transport& closed_transport() noexcept {
    static ClosedTransport closed;
    return closed;
}

std::unique_ptr<Transport> make_plain_transport(int fd) { return std::make_unique<PlainTransport>(fd); }

std::unique_ptr<Transport> make_tls_server_transport(SSL_CTX* context, int fd) {
    return std::make_unique<TlsTransport>(context, fd);
}

std::unique_ptr<Transport> make_tls_client_transport(SSL_CTX* context, int fd, const std::string& host, bool verify) {
    return std::make_unique<TlsTransport>(context, fd, host, verify);
}

TlsContext make_client_tls_context(bool verify, const std::string& ca_file, std::string& error) {
    TlsContext context(SSL_CTX_new(TLS_client_method()));
    if (!context) {
        error = openssl_errors();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
    SSL_CTX_set_mode(context.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (verify) {
        SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
        const bool loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(context.get()) == 1
                                            : SSL_CTX_load_verify_locations(context.get(), ca_file.c_str(), nullptr) == 1;
        if (!loaded) {
            error = fmt::format("cannot load the CA certificates: {}", openssl_errors());
            return nullptr;
        }
    }
    return context;
}

TlsContext make_server_tls_context(const std::string& certificate_file, const std::string& private_key_file,
                                   std::string& error) {
    TlsContext context(SSL_CTX_new(TLS_server_method()));
    if (!context) {
        error = openssl_errors();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
    // Writes may be retried with a moved buffer (our write buffer can grow between tries),
    // and partial writes are fine: we track the offset ourselves.
    SSL_CTX_set_mode(context.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_options(context.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(context.get(), certificate_file.c_str()) != 1) {
        error = fmt::format("TLS certificate {}: {}", certificate_file, openssl_errors());
        return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(context.get(), private_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(context.get()) != 1) {
        error = fmt::format("TLS private key {}: {}", private_key_file, openssl_errors());
        return nullptr;
    }
    return context;
}

}  // namespace websock::detail
