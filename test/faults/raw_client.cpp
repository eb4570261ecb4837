#include "test/faults/raw_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <random>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

namespace faults {
namespace {

// OpenSSL's socket BIO writes with write(2), so a reset from the server would raise
// SIGPIPE in this client. Block it around the client's TLS calls only, on this thread
// (SIGPIPE goes to the thread that wrote), and discard one that came: the server under test
// runs in this process with the default disposition, so a SIGPIPE of its own still shows.
class NoSigpipe {
public:
    NoSigpipe() {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, &old_);
    }
    ~NoSigpipe() {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        timespec zero{};
        while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    NoSigpipe(const NoSigpipe&) = delete;
    NoSigpipe& operator=(const NoSigpipe&) = delete;

private:
    sigset_t old_;
};

}  // namespace

RawClient::RawClient(std::uint16_t port, SSL_CTX* tls_context, std::chrono::milliseconds io_timeout) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        failed_ = true;
        return;
    }
    timeval timeout{};
    timeout.tv_sec = io_timeout.count() / 1000;
    timeout.tv_usec = (io_timeout.count() % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        failed_ = true;
        return;
    }
    if (tls_context != nullptr) {
        ssl_ = SSL_new(tls_context);
        NoSigpipe guard;
        if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1 || SSL_connect(ssl_) != 1) failed_ = true;
    }
}

RawClient::~RawClient() {
    NoSigpipe guard;
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send_raw(std::string_view bytes) {
    if (!connected()) return false;
    NoSigpipe guard;
    while (!bytes.empty()) {
        const long sent = ssl_ != nullptr ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                                          : ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent <= 0) {
            if (ssl_ == nullptr && sent < 0 && errno == EINTR) continue;
            failed_ = true;
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
}

long RawClient::read_some(char* data, std::size_t size) {
    if (!buffered_.empty()) {
        const std::size_t taken = std::min(size, buffered_.size());
        std::memcpy(data, buffered_.data(), taken);
        buffered_.erase(0, taken);
        return static_cast<long>(taken);
    }
    if (!connected()) return -1;
    NoSigpipe guard;
    for (;;) {
        const long got = ssl_ != nullptr ? SSL_read(ssl_, data, static_cast<int>(size)) : ::recv(fd_, data, size, 0);
        if (got < 0 && ssl_ == nullptr && errno == EINTR) continue;
        if (got <= 0) failed_ = true;
        return got;
    }
}

bool RawClient::read_exact(char* data, std::size_t size) {
    while (size > 0) {
        const long got = read_some(data, size);
        if (got <= 0) return false;
        data += got;
        size -= static_cast<std::size_t>(got);
    }
    return true;
}

std::optional<HttpAnswer> RawClient::read_http() {
    std::string head;
    char byte;
    while (head.size() < 16384 && (head.size() < 4 || head.compare(head.size() - 4, 4, "\r\n\r\n") != 0)) {
        if (!read_exact(&byte, 1)) return std::nullopt;
        head.push_back(byte);
    }
    HttpAnswer answer;
    if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) return std::nullopt;
    answer.status = std::atoi(head.c_str() + 9);
    answer.headers = head;
    std::string lower = head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto length_at = lower.find("content-length:");
    if (length_at != std::string::npos) {
        const std::size_t length = std::strtoul(head.c_str() + length_at + 15, nullptr, 10);
        answer.body.resize(length);
        if (length > 0 && !read_exact(answer.body.data(), length)) return std::nullopt;
    }
    return answer;
}

bool RawClient::upgrade(std::string_view path) {
    const std::string request = "GET " + std::string(path) +
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (!send_raw(request)) return false;
    const auto answer = read_http();
    // The accept value for this key is RFC 6455 section 1.3's own example.
    return answer && answer->status == 101 && answer->headers.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos;
}

bool RawClient::send_frame(std::uint8_t opcode, std::string_view payload, bool fin) {
    static thread_local std::mt19937 random(12345);
    std::string frame;
    frame.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
    const std::size_t n = payload.size();
    if (n < 126) {
        frame.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
        frame.push_back(static_cast<char>(0x80 | 126));
        frame.push_back(static_cast<char>(n >> 8));
        frame.push_back(static_cast<char>(n & 0xff));
    } else {
        frame.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>((n >> shift) & 0xff));
    }
    char mask[4];
    for (auto& m : mask) m = static_cast<char>(random());
    frame.append(mask, 4);
    const std::size_t start = frame.size();
    frame.append(payload);
    for (std::size_t i = 0; i < n; ++i) frame[start + i] = static_cast<char>(frame[start + i] ^ mask[i % 4]);
    return send_raw(frame);
}

bool RawClient::send_close(std::uint16_t code, std::string_view reason) {
    std::string payload;
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xff));
    payload.append(reason);
    return send_frame(0x8, payload);
}

std::optional<Frame> RawClient::read_frame() {
    unsigned char head[2];
    if (!read_exact(reinterpret_cast<char*>(head), 2)) return std::nullopt;
    Frame frame;
    frame.fin = (head[0] & 0x80) != 0;
    frame.opcode = head[0] & 0x0f;
    if (head[1] & 0x80) return std::nullopt;  // a server must not mask (section 5.1)
    std::uint64_t length = head[1] & 0x7f;
    if (length >= 126) {
        unsigned char extended[8];
        const std::size_t bytes = length == 126 ? 2 : 8;
        if (!read_exact(reinterpret_cast<char*>(extended), bytes)) return std::nullopt;
        length = 0;
        for (std::size_t i = 0; i < bytes; ++i) length = (length << 8) | extended[i];
    }
    if (length > (64u << 20)) return std::nullopt;
    frame.payload.resize(length);
    if (length > 0 && !read_exact(frame.payload.data(), length)) return std::nullopt;
    return frame;
}

std::optional<std::string> RawClient::read_message() {
    std::string message;
    for (;;) {
        auto frame = read_frame();
        if (!frame) return std::nullopt;
        if (frame->opcode == 0x8) {
            last_close_ = std::move(frame);
            return std::nullopt;
        }
        if (frame->opcode == 0x9) {
            if (!send_frame(0xA, frame->payload)) return std::nullopt;
            continue;
        }
        if (frame->opcode == 0xA) continue;
        message += frame->payload;
        if (frame->fin) return message;
    }
}

bool RawClient::wait_eof() {
    char scratch[4096];
    NoSigpipe guard;
    for (int reads = 0; reads < 100000; ++reads) {
        if (fd_ < 0) return false;
        const long got = ssl_ != nullptr ? SSL_read(ssl_, scratch, sizeof scratch) : ::recv(fd_, scratch, sizeof scratch, 0);
        if (got > 0) continue;
        if (got < 0 && ssl_ == nullptr && errno == EINTR) continue;
        if (got < 0 && ssl_ == nullptr && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;  // the timeout
        if (ssl_ != nullptr && got < 0) {
            const int reason = SSL_get_error(ssl_, static_cast<int>(got));
            if (reason == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
        }
        failed_ = true;
        return true;
    }
    return false;
}

void RawClient::shutdown_write() {
    if (fd_ < 0) return;
    NoSigpipe guard;
    if (ssl_ != nullptr && !failed_) SSL_shutdown(ssl_);
    ::shutdown(fd_, SHUT_WR);
}

void RawClient::reset() {
    if (fd_ < 0) return;
    linger option{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &option, sizeof option);
    if (ssl_ != nullptr) {
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    ::close(fd_);
    fd_ = -1;
    failed_ = true;
}

SSL_CTX* client_tls_context() {
    static SSL_CTX* context = [] {
        SSL_CTX* made = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(made, SSL_VERIFY_NONE, nullptr);
        return made;
    }();
    return context;
}

bool make_self_signed(const std::string& certificate_path, const std::string& key_path) {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    if (key == nullptr) return false;
    X509* certificate = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1);
    X509_gmtime_adj(X509_getm_notBefore(certificate), 0);
    X509_gmtime_adj(X509_getm_notAfter(certificate), 24 * 3600);
    X509_set_pubkey(certificate, key);
    X509_NAME* name = X509_get_subject_name(certificate);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(certificate, name);
    bool ok = X509_sign(certificate, key, EVP_sha256()) > 0;
    if (FILE* out = std::fopen(certificate_path.c_str(), "w")) {
        ok = ok && PEM_write_X509(out, certificate) == 1;
        std::fclose(out);
    } else {
        ok = false;
    }
    if (FILE* out = std::fopen(key_path.c_str(), "w")) {
        ok = ok && PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
        std::fclose(out);
    } else {
        ok = false;
    }
    X509_free(certificate);
    EVP_PKEY_free(key);
    return ok;
}

}  // namespace faults
