// Peer for the benchmarks: a plain TCP echo server, no WebSocket at all — the physical
// ceiling that every WebSocket server's row is compared with (bench/run.sh runs the loadgen
// against it with --raw: the same payload bytes, no framing, no handshake).
//
// One thread, one epoll set, level-triggered. Whatever a read returns is written straight
// back from one shared buffer; only what the socket does not take at once is kept, per
// connection, and while something is kept the connection stops reading (EPOLLOUT only), so
// a slow reader cannot make the server buffer without bound. An idle connection costs one
// descriptor and one null pointer here: nothing is allocated until a write falls short.
// TCP_NODELAY on every socket, as the other servers do.
//
// usage: bench_tcp_echo [--host 127.0.0.1] [--port] PORT    (PORT 0 picks a free port)
// Prints "listening on 127.0.0.1:PORT" once accepting; exits cleanly on SIGTERM/SIGINT.
#include "bench/peers/peer_common.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Pending {  // bytes the socket did not take yet
    std::string bytes;
    std::size_t off = 0;
};

class TcpEcho {
public:
    explicit TcpEcho(const bench_peer::Args& args) {
        epfd_ = epoll_create1(EPOLL_CLOEXEC);
        listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (epfd_ < 0 || listen_fd_ < 0) die("socket");
        const int one = 1;
        setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<std::uint16_t>(args.port));
        if (inet_pton(AF_INET, args.host == "localhost" ? "127.0.0.1" : args.host.c_str(), &sa.sin_addr) != 1) {
            std::fprintf(stderr, "tcp_echo: --host must be an IPv4 address\n");
            std::exit(1);
        }
        if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || listen(listen_fd_, 4096) < 0) die("bind/listen");
        socklen_t len = sizeof sa;
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
        port_ = ntohs(sa.sin_port);
        watch(listen_fd_, EPOLLIN);

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, nullptr);
        signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (signal_fd_ < 0) die("signalfd");
        watch(signal_fd_, EPOLLIN);
        buf_.resize(256 * 1024);
    }

    unsigned port() const { return port_; }

    void run() {
        epoll_event evs[256];
        while (!stopping_) {
            const int n = epoll_wait(epfd_, evs, 256, -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                die("epoll_wait");
            }
            for (int i = 0; i < n; ++i) {
                const int fd = evs[i].data.fd;
                if (fd == listen_fd_) accept_all();
                else if (fd == signal_fd_) stopping_ = true;
                else if (evs[i].events & EPOLLOUT) on_writable(fd);
                else on_readable(fd);
            }
        }
        for (std::size_t fd = 0; fd < open_.size(); ++fd)
            if (open_[fd]) close(static_cast<int>(fd));
    }

private:
    [[noreturn]] static void die(const char* what) {
        std::fprintf(stderr, "tcp_echo: %s: %s\n", what, std::strerror(errno));
        std::exit(1);
    }
    void watch(int fd, std::uint32_t events, int op = EPOLL_CTL_ADD) {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        if (epoll_ctl(epfd_, op, fd, &ev) < 0) die("epoll_ctl");
    }

    void accept_all() {
        for (;;) {
            const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno == EMFILE || errno == ENFILE) {
                    // Out of descriptors: say so once; the backlog waits for a close.
                    if (!said_emfile_) std::fprintf(stderr, "tcp_echo: accept: %s\n", std::strerror(errno));
                    said_emfile_ = true;
                }
                return;
            }
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (static_cast<std::size_t>(fd) >= open_.size()) {
                open_.resize(static_cast<std::size_t>(fd) + 1024, 0);
                pending_.resize(open_.size());
            }
            open_[static_cast<std::size_t>(fd)] = 1;
            watch(fd, EPOLLIN);
        }
    }

    void drop(int fd) {
        epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        open_[static_cast<std::size_t>(fd)] = 0;
        pending_[static_cast<std::size_t>(fd)].reset();
    }

    void on_readable(int fd) {
        for (;;) {
            const ssize_t n = ::recv(fd, buf_.data(), buf_.size(), 0);
            if (n == 0) return drop(fd);  // the client closed: so do we
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) drop(fd);
                return;
            }
            std::size_t sent = 0;
            while (sent < static_cast<std::size_t>(n)) {
                const ssize_t w = ::send(fd, buf_.data() + sent, static_cast<std::size_t>(n) - sent, MSG_NOSIGNAL);
                if (w > 0) { sent += static_cast<std::size_t>(w); continue; }
                if (w < 0 && errno == EINTR) continue;
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                return drop(fd);
            }
            if (sent < static_cast<std::size_t>(n)) {  // keep the rest; stop reading until it is out
                auto p = std::make_unique<Pending>();
                p->bytes.assign(buf_.data() + sent, static_cast<std::size_t>(n) - sent);
                pending_[static_cast<std::size_t>(fd)] = std::move(p);
                watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
                return;
            }
            // A full buffer means there may be more; anything less and epoll says when.
            if (static_cast<std::size_t>(n) < buf_.size()) return;
        }
    }

    void on_writable(int fd) {
        Pending& p = *pending_[static_cast<std::size_t>(fd)];
        while (p.off < p.bytes.size()) {
            const ssize_t w = ::send(fd, p.bytes.data() + p.off, p.bytes.size() - p.off, MSG_NOSIGNAL);
            if (w > 0) { p.off += static_cast<std::size_t>(w); continue; }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            return drop(fd);
        }
        pending_[static_cast<std::size_t>(fd)].reset();
        watch(fd, EPOLLIN, EPOLL_CTL_MOD);
    }

    int epfd_ = -1, listen_fd_ = -1, signal_fd_ = -1;
    unsigned port_ = 0;
    bool stopping_ = false, said_emfile_ = false;
    std::vector<char> buf_;
    std::vector<unsigned char> open_;                 // by descriptor
    std::vector<std::unique_ptr<Pending>> pending_;  // by descriptor; null unless a write fell short
};

}  // namespace

int main(int argc, char** argv) {
    const bench_peer::Args args = bench_peer::parse_args(argc, argv);
    TcpEcho server(args);
    bench_peer::announce_listening(args.host, server.port());
    server.run();
    return 0;
}
