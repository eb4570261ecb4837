// bench/loadgen/connection.cpp — sockets and epoll: connecting, sending, reading, checking
// every echo, and closing.
#include "bench/loadgen/loadgen.hpp"

namespace loadgen {

void LoadGen::start_connect(Conn& c) {
    ++c.attempts;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) die("socket");
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.st = St::Connecting;
    ++connecting_;
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) < 0 && errno != EINPROGRESS) {
        fail(c, "connect");
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = c.id;
    c.epollout = true;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) < 0) die("epoll_ctl");
}

void LoadGen::fail(Conn& c, const char* why) {
    const int err = errno;
    const bool was_connecting = c.st == St::Connecting || c.st == St::Handshake;
    if (c.fd >= 0) {
        epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
    }
    c.in.release();
    c.out.release();
    if (was_connecting) {
        --connecting_;
        // A refused or reset connect (full backlog under a burst) is retried a few times.
        if (c.attempts < 4 && (err == ECONNREFUSED || err == ECONNRESET || err == ETIMEDOUT || err == EAGAIN)) {
            c.st = St::Idle;
            retry_.push_back(c.id);
            return;
        }
        ++st_.connect_failures;
        std::fprintf(stderr, "loadgen: connection %u failed during %s: %s\n", c.id, why, err ? std::strerror(err) : "protocol");
    } else if (c.st == St::Open) {
        --open_;
        ++st_.io_errors;
        std::fprintf(stderr, "loadgen: connection %u: %s: %s\n", c.id, why, err ? std::strerror(err) : "error");
    } else if (c.st == St::Closing) {
        --open_;
    }
    c.st = St::Failed;
}

void LoadGen::finish(Conn& c) {  // after a clean close handshake
    if (c.fd >= 0) {
        epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
    }
    c.in.release();
    c.out.release();
    if (c.st == St::Open || c.st == St::Closing) --open_;
    c.st = St::Closed;
}

void LoadGen::set_epollout(Conn& c, bool on) {
    if (c.epollout == on || c.fd < 0) return;
    epoll_event ev{};
    ev.events = on ? std::uint32_t(EPOLLIN | EPOLLOUT) : std::uint32_t(EPOLLIN);
    ev.data.u32 = c.id;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    c.epollout = on;
}

void LoadGen::flush(Conn& c) {
    while (c.out.size() > 0 && c.fd >= 0) {
        const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
            c.out.consume(std::size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_epollout(c, true);
            return;
        }
        fail(c, "send");
        return;
    }
    if (c.st != St::Connecting) set_epollout(c, false);
}

void LoadGen::send_data(Conn& c, std::uint64_t ts_rel) {
    std::uint8_t* p = scratch_.data();
    const std::uint64_t seq = c.sent++;
    put_hex12(p, seq);
    put_hex12(p + 12, ts_rel);
    const std::size_t fill = o_.size - kHeader;
    if (o_.binary) std::memcpy(p + kHeader, bin_pattern_.data() + (c.id * 7 + seq) % 256, fill);
    else std::memcpy(p + kHeader, text_pattern_.data() + (c.id * 7 + seq) % 26, fill);
    if (o_.raw) {  // the same bytes, unframed: what a plain TCP echo moves
        std::memcpy(c.out.reserve(o_.size), p, o_.size);
        c.out.commit(o_.size);
    } else {
        send_frame(c, o_.binary ? 2 : 1, p, o_.size);
    }
    ++st_.sent;
}

void LoadGen::on_event(Conn& c, std::uint32_t ev, std::uint64_t now) {
    if (c.st == St::Connecting) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            errno = err;
            fail(c, "connect");
            return;
        }
        if (o_.raw) {  // no handshake: the connection is open once connected
            c.st = St::Open;
            --connecting_;
            note_open();
            flush(c);
            return;
        }
        // Connected: send the upgrade request.
        std::uint8_t nonce[16];
        for (int i = 0; i < 16; i += 8) {
            const std::uint64_t r = rng_.next();
            std::memcpy(nonce + i, &r, 8);
        }
        const std::string key = base64(std::string_view(reinterpret_cast<const char*>(nonce), 16));
        c.accept = base64(sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
        std::string req = "GET " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
                          "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                          "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: websock-loadgen\r\n\r\n";
        std::memcpy(c.out.reserve(req.size()), req.data(), req.size());
        c.out.commit(req.size());
        c.st = St::Handshake;
        flush(c);
        return;
    }
    if (ev & EPOLLOUT) flush(c);
    if (c.fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c, now);
}

void LoadGen::on_readable(Conn& c, std::uint64_t now) {
    for (;;) {
        constexpr std::size_t chunk = 16384;
        std::uint8_t* w = c.in.reserve(chunk);
        const std::size_t room = c.in.cap - c.in.len;
        const ssize_t n = ::recv(c.fd, w, room, 0);
        if (n > 0) {
            c.in.commit(std::size_t(n));
            if (std::size_t(n) == room) continue;  // there may be more
            break;
        }
        if (n == 0) {
            // EOF. During the close handshake the server may close right after its Close.
            if (c.in.size() > 0) {
                if (c.st == St::Handshake) parse_handshake(c, now);
                if (c.fd >= 0 && (c.st == St::Open || c.st == St::Closing)) parse_stream(c, now);
                if (c.fd < 0) return;
            }
            if (o_.raw && c.st == St::Closing) {  // raw: our shutdown(SHUT_WR) answered by EOF
                ++st_.clean_closes;
                finish(c);
                return;
            }
            if (c.st == St::Closing && c.close_sent) {
                errno = 0;
                fail(c, "close");  // closed without echoing our Close: not clean, not an error
                return;
            }
            errno = 0;
            if (c.st == St::Open) ++st_.server_closes;
            fail(c, "server closed the connection");
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        fail(c, "recv");
        return;
    }
    if (c.st == St::Handshake) parse_handshake(c, now);
    if (c.fd >= 0 && (c.st == St::Open || c.st == St::Closing)) parse_stream(c, now);
    if (c.fd >= 0) flush(c);
}

void LoadGen::on_message(Conn& c, std::uint8_t op, const std::uint8_t* p, std::size_t n, std::uint64_t now) {
    ++st_.received;
    const std::uint8_t want_op = o_.binary ? 2 : 1;
    std::uint64_t seq = 0, ts = 0;
    bool good = op == want_op && n == o_.size && get_hex12(p, seq) && get_hex12(p + 12, ts) && seq == c.recvd;
    if (good) {
        const std::size_t fill = o_.size - kHeader;
        const std::uint8_t* expect = o_.binary ? bin_pattern_.data() + (c.id * 7 + seq) % 256 : text_pattern_.data() + (c.id * 7 + seq) % 26;
        good = std::memcmp(p + kHeader, expect, fill) == 0;
    }
    if (!good) {
        if (st_.mismatches < 5)
            std::fprintf(stderr, "loadgen: connection %u: echo mismatch (opcode %u, %zu bytes, expected seq %" PRIu64 ")\n", c.id, op, n,
                         c.recvd);
        ++st_.mismatches;
        ++c.recvd;  // keep counting so the run can finish
        return;
    }
    ++c.recvd;
    if (counting_) ++st_.window_echoes;
    if (o_.mode == Mode::Latency) {
        const std::uint64_t sched = epoch_ + ts;
        if (sched != due_of(c, seq)) {  // the echoed timestamp must be the one we scheduled
            if (st_.mismatches < 5) std::fprintf(stderr, "loadgen: connection %u: echoed timestamp differs from the schedule\n", c.id);
            ++st_.mismatches;
            return;
        }
        std::uint64_t actual = sched;
        if (!c.sent_at.empty()) {
            actual = c.sent_at.front();
            c.sent_at.pop_front();
        }
        if (sched >= win_start_ && sched < win_end_) {
            st_.lat_ns.push_back(now - sched);
            st_.svc_ns.push_back(now - actual);
        }
    } else if (o_.mode == Mode::Throughput && sending_ && now < win_end_) {
        send_data(c, rel(now));
    }
}

void LoadGen::poll(std::uint64_t deadline_ns, std::uint64_t max_wait_ns) {
    epoll_event evs[512];
    std::uint64_t now = now_ns();
    std::uint64_t wait = deadline_ns > now ? deadline_ns - now : 0;
    if (wait > max_wait_ns) wait = max_wait_ns;
    if (o_.spin) wait = 0;  // the callers loop until their deadline
    timespec ts{long(wait / 1'000'000'000ull), long(wait % 1'000'000'000ull)};
    const int n = epoll_pwait2(epfd_, evs, 512, &ts, nullptr);
    if (n < 0) {
        if (errno == EINTR) return;
        die("epoll_pwait2");
    }
    now = now_ns();
    for (int i = 0; i < n; ++i) {
        Conn& c = conns_[evs[i].data.u32];
        if (c.fd < 0) continue;
        on_event(c, evs[i].events, now);
    }
}

void LoadGen::parse_stream(Conn& c, std::uint64_t now) {
    if (!o_.raw) return parse_frames(c, now);
    // Raw: every message is exactly --size bytes, so the stream cuts itself into messages.
    const std::uint8_t op = o_.binary ? 2 : 1;
    while (c.fd >= 0 && c.in.size() >= o_.size) {
        on_message(c, op, c.in.data(), o_.size, now);
        c.in.consume(o_.size);
    }
}

bool LoadGen::pending_echoes() const {
    for (const auto& c : conns_)
        if (c.st == St::Open && c.recvd < c.sent) return true;
    return false;
}

void LoadGen::close_all() {
    for (auto& c : conns_) {
        if (c.st != St::Open) continue;
        c.st = St::Closing;
        if (o_.raw) {  // no Close frame: half-close, and the echo server's EOF answers it
            flush(c);
            if (c.fd >= 0) shutdown(c.fd, SHUT_WR);
            c.close_sent = true;
            continue;
        }
        send_close(c, 1000);
        flush(c);
    }
    const std::uint64_t deadline = now_ns() + 2'000'000'000ull;
    while (open_ > 0 && now_ns() < deadline) poll(deadline, 50'000'000ull);
    for (auto& c : conns_) {
        if (c.fd >= 0) {
            close(c.fd);
            c.fd = -1;
        }
    }
}

}  // namespace loadgen
