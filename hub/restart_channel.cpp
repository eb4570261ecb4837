#include "hub/restart_channel.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace hub::restart {

namespace {

using Clock = std::chrono::steady_clock;

int millis_until(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

bool write_all(int fd, const char* data, std::size_t size, Clock::time_point deadline, std::string& error) {
    while (size > 0) {
        const ssize_t put = ::send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (put > 0) {
            data += put;
            size -= static_cast<std::size_t>(put);
            continue;
        }
        if (put < 0 && errno == EINTR) continue;
        if (put < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            error = std::strerror(errno);
            return false;
        }
        pollfd p{fd, POLLOUT, 0};
        const int wait = millis_until(deadline);
        if (wait == 0 || (::poll(&p, 1, wait) == 0 && Clock::now() >= deadline)) {
            error = "timed out";
            return false;
        }
    }
    return true;
}

// Exactly `size` bytes; "closed" when the peer ends first.
bool read_exactly(int fd, char* data, std::size_t size, Clock::time_point deadline, std::string& error) {
    while (size > 0) {
        const ssize_t got = ::recv(fd, data, size, MSG_DONTWAIT);
        if (got > 0) {
            data += got;
            size -= static_cast<std::size_t>(got);
            continue;
        }
        if (got == 0) {
            error = "closed";
            return false;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            error = std::strerror(errno);
            return false;
        }
        pollfd p{fd, POLLIN, 0};
        const int wait = millis_until(deadline);
        if (wait == 0 || (::poll(&p, 1, wait) == 0 && Clock::now() >= deadline)) {
            error = "timed out";
            return false;
        }
    }
    return true;
}

std::optional<long> parse_long(std::string_view text) {
    long value = 0;
    const auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (failure != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
    return value;
}

void set_cloexec(int fd) {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

}  // namespace

bool send_message(int fd, MessageKind kind, std::string_view body, Clock::time_point deadline, std::string& error) {
    if (body.size() + 1 > kMaxMessageBytes) {
        error = fmt::format("a message of {} bytes is over the limit", body.size());
        return false;
    }
    const auto length = static_cast<std::uint32_t>(body.size() + 1);
    char head[5] = {static_cast<char>(length >> 24), static_cast<char>(length >> 16), static_cast<char>(length >> 8),
                    static_cast<char>(length), static_cast<char>(kind)};
    return write_all(fd, head, sizeof head, deadline, error) && write_all(fd, body.data(), body.size(), deadline, error);
}

std::optional<Message> receive_message(int fd, Clock::time_point deadline, std::string& error) {
    unsigned char head[5];
    if (!read_exactly(fd, reinterpret_cast<char*>(head), sizeof head, deadline, error)) return std::nullopt;
    const std::uint32_t length = (std::uint32_t{head[0]} << 24) | (std::uint32_t{head[1]} << 16) |
                                 (std::uint32_t{head[2]} << 8) | std::uint32_t{head[3]};
    if (length == 0 || length > kMaxMessageBytes) {
        error = fmt::format("a message with a length of {} bytes", length);
        return std::nullopt;
    }
    if (head[4] < static_cast<unsigned char>(MessageKind::Ready) || head[4] > static_cast<unsigned char>(MessageKind::Failed)) {
        error = fmt::format("a message of unknown kind {}", head[4]);
        return std::nullopt;
    }
    Message message;
    message.kind = static_cast<MessageKind>(head[4]);
    message.body.resize(length - 1);
    if (!read_exactly(fd, message.body.data(), message.body.size(), deadline, error)) return std::nullopt;
    return message;
}

std::string encode_module_state(std::string_view module, std::string_view state) {
    std::string body;
    const std::size_t name_size = std::min<std::size_t>(module.size(), 0xFFFF);
    body.reserve(2 + name_size + state.size());
    body.push_back(static_cast<char>(name_size >> 8));
    body.push_back(static_cast<char>(name_size & 0xFF));
    body.append(module.substr(0, name_size));
    body.append(state);
    return body;
}

std::optional<std::pair<std::string, std::string>> decode_module_state(std::string_view body) {
    if (body.size() < 2) return std::nullopt;
    const std::size_t name_size = (static_cast<unsigned char>(body[0]) << 8) | static_cast<unsigned char>(body[1]);
    if (body.size() < 2 + name_size) return std::nullopt;
    return std::make_pair(std::string(body.substr(2, name_size)), std::string(body.substr(2 + name_size)));
}

Inherited take_inherited() {
    Inherited inherited;
    const char* listen_pid = std::getenv("LISTEN_PID");
    const char* listen_fds = std::getenv("LISTEN_FDS");
    const char* handover = std::getenv(kHandoverFdVariable);
    const auto for_us = listen_pid ? parse_long(listen_pid) : std::nullopt;
    const auto count = listen_fds ? parse_long(listen_fds) : std::nullopt;
    if (listen_fds != nullptr && for_us && *for_us == static_cast<long>(::getpid())) {
        if (!count || *count < 1) {
            inherited.error = fmt::format("LISTEN_FDS={} names no socket", listen_fds);
        } else if (*count > 1) {
            inherited.error = fmt::format("LISTEN_FDS={}: websock-hub serves one listening socket", *count);
        } else {
            int listening = 0;
            socklen_t size = sizeof listening;
            if (::getsockopt(kListenFd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || listening == 0) {
                inherited.error = fmt::format("LISTEN_FDS=1, but descriptor {} is not a listening socket", kListenFd);
            } else {
                inherited.listen_fd = kListenFd;
                set_cloexec(kListenFd);
                sockaddr_storage bound{};
                socklen_t length = sizeof bound;
                ::getsockname(kListenFd, reinterpret_cast<sockaddr*>(&bound), &length);
                char text[INET6_ADDRSTRLEN] = {};
                if (bound.ss_family == AF_UNIX) {
                    inherited.unix_socket = true;
                    const auto* address = reinterpret_cast<const sockaddr_un*>(&bound);
                    if (length > offsetof(sockaddr_un, sun_path) && address->sun_path[0] != '\0')
                        inherited.unix_path = std::string(address->sun_path, strnlen(address->sun_path, sizeof address->sun_path));
                } else if (bound.ss_family == AF_INET) {
                    const auto* address = reinterpret_cast<const sockaddr_in*>(&bound);
                    ::inet_ntop(AF_INET, &address->sin_addr, text, sizeof text);
                    inherited.host = text;
                    inherited.port = ntohs(address->sin_port);
                } else if (bound.ss_family == AF_INET6) {
                    const auto* address = reinterpret_cast<const sockaddr_in6*>(&bound);
                    ::inet_ntop(AF_INET6, &address->sin6_addr, text, sizeof text);
                    inherited.host = text;
                    inherited.port = ntohs(address->sin6_port);
                }
            }
        }
    }
    if (handover != nullptr && inherited.listen_fd >= 0) {
        // Only beside an inherited socket: a stray variable must not make us talk to fd 4.
        const auto fd = parse_long(handover);
        if (fd && *fd == kHandoverFd && ::fcntl(kHandoverFd, F_GETFD) >= 0) {
            inherited.handover_fd = kHandoverFd;
            set_cloexec(kHandoverFd);  // never past this process: a later successor gets its own
        }
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    ::unsetenv(kHandoverFdVariable);
    return inherited;
}

bool write_pidfile(const std::string& path, long pid, std::string& error) {
    const std::string temporary = fmt::format("{}.{}.tmp", path, pid);
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = fmt::format("{}: {}", temporary, std::strerror(errno));
        return false;
    }
    const std::string text = fmt::format("{}\n", pid);
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const int write_errno = errno;
    ::close(fd);
    if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
        error = fmt::format("{}: {}", written ? path : temporary, std::strerror(written ? errno : write_errno));
        ::unlink(temporary.c_str());
        return false;
    }
    return true;
}

std::optional<long> read_pidfile(const std::string& path) {
    std::ifstream in(path);
    std::string text;
    if (!in || !std::getline(in, text)) return std::nullopt;
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
    const auto pid = parse_long(text);
    if (!pid || *pid <= 0) return std::nullopt;
    return pid;
}

void remove_pidfile_if_ours(const std::string& path, long pid) {
    if (path.empty()) return;
    if (read_pidfile(path) == pid) ::unlink(path.c_str());
}

bool notify_systemd(std::string_view state) {
    const char* socket_path = std::getenv("NOTIFY_SOCKET");
    if (socket_path == nullptr || socket_path[0] == '\0') return true;  // not under systemd: nothing to tell
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::size_t path_size = std::strlen(socket_path);
    if (path_size >= sizeof address.sun_path) return false;
    std::memcpy(address.sun_path, socket_path, path_size);
    if (address.sun_path[0] == '@') address.sun_path[0] = '\0';  // an abstract socket
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_size);
    const bool sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address), length) ==
                      static_cast<ssize_t>(state.size());
    ::close(fd);
    return sent;
}

}  // namespace hub::restart
