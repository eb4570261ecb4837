// Thin, error-returning wrappers over the BSD socket calls the servers need. Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace websock::detail {

/// Owns a file descriptor; closes it once.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    int release() noexcept {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1) noexcept;

private:
    int fd_ = -1;
};

/// A counter that wakes a poll(2): eventfd, written from any thread, read by its owner.
class Waker {
public:
    Waker();
    struct NoDescriptor {};
    /// No eventfd: wake() and drain() do nothing (see ClientCore::wake()).
    explicit Waker(NoDescriptor) noexcept {}
    bool valid() const noexcept { return fd_.valid(); }
    int fd() const noexcept { return fd_.get(); }
    void wake() const noexcept;  ///< async-signal-safe
    void drain() const noexcept;

private:
    Fd fd_;
};

struct ListenResult {
    Fd fd;
    std::uint16_t port = 0;
    std::string error;  ///< empty on success
};

/// A non-blocking listening TCP socket on host:port (IPv4 or IPv6 literal or name).
ListenResult listen_tcp(const std::string& host, std::uint16_t port, int backlog, bool reuse_address, bool reuse_port);
/// A non-blocking listening unix-domain socket; a stale socket file is replaced.
ListenResult listen_unix(const std::string& path, int backlog);

/// "127.0.0.1:5000", "[::1]:5000", or "unix" for a peer of this socket.
std::string peer_address(int fd);

void set_tcp_nodelay(int fd) noexcept;

/// Milliseconds from now until `deadline`, clamped to [0, INT_MAX] for poll(2).
int poll_timeout_ms(std::chrono::steady_clock::time_point deadline) noexcept;

/// Send all of `data` on a non-blocking socket before `deadline`; false on error or timeout.
bool send_all_before(int fd, std::string_view data, std::chrono::steady_clock::time_point deadline) noexcept;

}  // namespace websock::detail
