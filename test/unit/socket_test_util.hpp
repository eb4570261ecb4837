// Helpers for the unit tests that drive a real server over loopback with raw sockets:
// how long to wait, waiting on a condition, connecting, and reading until a condition.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "test/unit/test_util.hpp"

namespace test_util {

/// How long a test waits for the server: longer under the sanitizers, which are slower.
inline std::chrono::milliseconds patience() { return std::chrono::milliseconds(kSanitized ? 20000 : 5000); }

/// `condition()` true before `limit` passes (polled every millisecond; never a fixed wait).
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

/// A blocking TCP connection to 127.0.0.1:`port`; -1 when it cannot be made.
inline int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// Bytes from `fd` appended to `buffer` until `done(buffer)` says so, the peer closes, or
/// `limit` passes; the buffer.
template <class Done>
std::string read_until(int fd, std::string buffer, Done done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done(buffer)) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
        char chunk[4096];
        const ssize_t got = ::read(fd, chunk, sizeof chunk);
        if (got <= 0) break;
        buffer.append(chunk, static_cast<std::size_t>(got));
    }
    return buffer;
}

}  // namespace test_util
