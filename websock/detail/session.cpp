// The life of one client thread: HTTP upgrade (or a plain HTTP answer) under a deadline,
// then the frame loop: poll the socket and the wake-up eventfd, read as much as the socket
// has, parse every frame in it, run the callbacks, write everything that became due.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "websock/codec/handshake.hpp"
#include "websock/connection.hpp"
#include "websock/detail/server_core.hpp"

namespace websock::detail {
namespace {

using Clock = std::chrono::steady_clock;

class ClientSession final : public ConnectionHandler {
public:
    ClientSession(ServerCore& server, std::shared_ptr<Client> client, Fd socket)
        : server_(server),
          client_(std::move(client)),
          core_(ServerCore::core(*client_)),
          socket_(std::move(socket)),
          connection_(ConnectionOptions{codec::Role::Server, server.options.max_frame_bytes,
                                        server.options.max_message_bytes, true}) {}

    void run() {
        core_.owner = std::this_thread::get_id();
        if (!handshake()) return;
        serve();
    }

    // ConnectionHandler: called from inside connection_.feed().
    void on_message(std::string_view data, MessageType type) override {
        server_.invoke(client_.get(), "on_data_receive", server_.on_data, *client_, data, type);
    }
    void on_ping(std::string_view payload) override {
        // The pong is already in the connection's output. Queue it now, so it goes out
        // before anything the callbacks send after this point (Autobahn 5.6-5.8 check it).
        std::string& pong = connection_.output();
        if (!pong.empty()) {
            std::lock_guard lock(core_.mutex);
            core_.queue.append(pong);
            core_.queued_bytes.store(core_.queue.size(), std::memory_order_relaxed);
            pong.clear();
        }
        server_.invoke(client_.get(), "on_ping", server_.on_ping, *client_, payload);
    }
    void on_pong(std::string_view payload) override {
        ping_outstanding_ = false;
        server_.invoke(client_.get(), "on_pong", server_.on_pong, *client_, payload);
    }

private:
    // ---- handshake ----------------------------------------------------------------------

    /// Consume a wake-up. Drain first, then clear the flag: a wake() that lands in between
    /// then writes the eventfd again instead of being swallowed. The caller re-checks the
    /// queue and the requests afterwards.
    void acknowledge_wake() {
        core_.waker.drain();
        core_.wake_pending.store(false, std::memory_order_release);
    }

    bool stop_requested() const { return server_.stopping.load() || core_.abort.load(); }

    /// Wait until the socket is readable, the deadline passes or we are woken.
    /// Returns false on timeout or stop.
    bool wait_readable(Clock::time_point deadline) {
        for (;;) {
            if (stop_requested()) return false;
            const int timeout = poll_timeout_ms(deadline);
            if (timeout == 0) return false;
            pollfd fds[2] = {{socket_.get(), POLLIN, 0}, {core_.waker.fd(), POLLIN, 0}};
            const int ready = ::poll(fds, 2, timeout);
            if (ready < 0 && errno != EINTR) return false;
            if (fds[1].revents & POLLIN) {
                acknowledge_wake();
            }
            if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) return true;
        }
    }

    void refuse(int status, std::string_view reason, const HttpHeaders& headers = {}) {
        server_.report(nullptr, ErrorKind::Handshake,
                       fmt::format("{}: refused upgrade with {}: {}", core_.peer, status, reason));
        send_all_before(socket_.get(), codec::make_handshake_error(status, reason, headers),
                        Clock::now() + server_.options.handshake_timeout);
    }

    /// Read and answer HTTP requests until one upgrades. False when the connection is done.
    bool handshake() {
        const auto& options = server_.options;
        std::string input;  // bytes read but not yet parsed
        for (;;) {
            const auto deadline = Clock::now() + options.handshake_timeout;
            codec::HttpRequestParser parser(codec::HttpRequestParser::Options{options.max_handshake_bytes,
                                                                              options.max_http_body_bytes});
            auto status = codec::HttpRequestParser::Status::NeedMore;
            std::size_t consumed = 0;
            if (!input.empty()) {
                status = parser.feed(input.data(), input.size(), consumed);
                input.erase(0, consumed);
            }
            char buffer[4096];
            while (status == codec::HttpRequestParser::Status::NeedMore) {
                if (!wait_readable(deadline)) {
                    if (!stop_requested() && Clock::now() >= deadline && parser.request().method.empty() &&
                        parser.request().target.empty() && parser.request().headers.empty())
                        return false;  // an idle keep-alive connection or a silent peer: just close
                    if (!stop_requested()) refuse(408, "handshake timed out");
                    return false;
                }
                const ssize_t got = ::recv(socket_.get(), buffer, sizeof buffer, 0);
                if (got == 0) return false;
                if (got < 0) {
                    if (errno == EAGAIN || errno == EINTR) continue;
                    return false;
                }
                status = parser.feed(buffer, static_cast<std::size_t>(got), consumed);
                if (consumed < static_cast<std::size_t>(got)) input.append(buffer + consumed, got - consumed);
            }
            if (status == codec::HttpRequestParser::Status::Error) {
                refuse(parser.error_status(), parser.error_reason());
                return false;
            }
            HttpRequest& request = parser.request();
            if (!parser.is_upgrade()) {
                if (!answer_http(request, parser.keep_alive())) return false;
                continue;  // keep-alive: the next request gets a fresh deadline
            }
            const auto check = codec::check_upgrade_request(request);
            if (!check.ok) {
                refuse(check.status, check.reason);
                return false;
            }
            if (server_.stopping.load()) {
                refuse(503, "server shutting down");
                return false;
            }
            // Count this client against max_clients before answering, so the limit holds
            // under a burst of simultaneous upgrades.
            if (server_.open_count.fetch_add(1) >= options.max_clients) {
                server_.open_count.fetch_sub(1);
                refuse(503, "too many clients", {{"Retry-After", "5"}});
                return false;
            }
            counted_ = true;
            core_.request = std::move(request);
            if (!send_all_before(socket_.get(), codec::make_upgrade_response(check.key), deadline)) return false;
            early_input_ = std::move(input);  // frames the client sent before reading our 101
            return true;
        }
    }

    bool answer_http(const HttpRequest& request, bool keep_alive) {
        HttpResponse response;
        if (!server_.on_http) {
            // No HTTP handler: say that this port speaks WebSocket (RFC 9110 section 15.5.22).
            response = HttpResponse::text(426, "This is a WebSocket server; send a WebSocket upgrade request.\n");
            response.header("Upgrade", "websocket").header("Sec-WebSocket-Version", "13");
            keep_alive = false;
        } else {
            try {
                response = server_.on_http(request);
            } catch (const std::exception& e) {
                server_.report(nullptr, ErrorKind::Callback, fmt::format("on_http_request threw: {}", e.what()));
                response = HttpResponse::text(500, "internal server error\n");
                keep_alive = false;
            } catch (...) {
                server_.report(nullptr, ErrorKind::Callback, "on_http_request threw a non-standard exception");
                response = HttpResponse::text(500, "internal server error\n");
                keep_alive = false;
            }
        }
        if (request.method == "HEAD") response.body.clear();
        if (server_.stopping.load()) keep_alive = false;
        const bool sent = send_all_before(socket_.get(), serialize_response(response, keep_alive),
                                          Clock::now() + server_.options.handshake_timeout);
        return sent && keep_alive;
    }

    // ---- the frame loop -------------------------------------------------------------------

    void serve() {
        const auto& options = server_.options;
        core_.open.store(true, std::memory_order_release);
        server_.invoke(client_.get(), "on_connection_open", server_.on_open, *client_);

        std::vector<std::uint8_t> buffer(std::max<std::size_t>(options.read_buffer_bytes, 4096));
        last_heard_ = Clock::now();
        if (!early_input_.empty()) {
            feed(reinterpret_cast<std::uint8_t*>(early_input_.data()), early_input_.size());
            early_input_.clear();
        }
        bool peer_gone = false;
        try {
            peer_gone = frame_loop(buffer);
        } catch (const std::exception& e) {
            // Out of memory, most likely: end this client, keep the promise of one close.
            server_.report(client_.get(), ErrorKind::Io, fmt::format("client loop failed: {}", e.what()));
            failed_loop_ = true;
        }
        finish(peer_gone);
    }

    /// Returns true when the peer went away (EOF or a socket error).
    bool frame_loop(std::vector<std::uint8_t>& buffer) {
        const auto& options = server_.options;
        bool peer_gone = false;
        for (;;) {
            if (core_.abort.load()) break;
            take_requests();
            if (!flush()) {
                peer_gone = true;
                break;
            }
            const auto state = connection_.state();
            if (state == Connection::State::Closed && write_buffer_.size() == write_offset_) break;
            if (state != Connection::State::Open && closing_since_ == Clock::time_point{}) closing_since_ = Clock::now();

            // What to wait for, and until when.
            const auto now = Clock::now();
            auto deadline = Clock::time_point::max();
            if (closing_since_ != Clock::time_point{}) deadline = closing_since_ + options.close_timeout;
            else if (ping_outstanding_) deadline = ping_sent_ + options.pong_timeout;
            else if (options.idle_ping_interval.count() > 0) deadline = last_heard_ + options.idle_ping_interval;
            if (now >= deadline) {
                if (closing_since_ != Clock::time_point{}) {
                    server_.report(client_.get(), ErrorKind::Timeout, "close handshake timed out");
                    timed_out_ = true;
                    break;
                }
                if (ping_outstanding_) {
                    server_.report(client_.get(), ErrorKind::Timeout, "no pong within pong_timeout");
                    timed_out_ = true;
                    break;
                }
                connection_.send_ping();  // idle: is the peer still there?
                ping_outstanding_ = true;
                ping_sent_ = now;
                continue;
            }
            if (maybe_readable_ && state != Connection::State::Closed) {
                // Under load the peer has often sent more while we worked: read before
                // sleeping in poll(), which saves a poll and a context switch per batch.
                maybe_readable_ = false;
                const ssize_t got = ::recv(socket_.get(), buffer.data(), buffer.size(), 0);
                if (got > 0) {
                    on_bytes(buffer.data(), static_cast<std::size_t>(got));
                    continue;
                }
                if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    peer_gone = true;
                    break;
                }
            }
            short events = 0;
            if (state != Connection::State::Closed) events |= POLLIN;
            if (write_buffer_.size() > write_offset_) events |= POLLOUT;
            pollfd fds[2] = {{socket_.get(), events, 0}, {core_.waker.fd(), POLLIN, 0}};
            const int timeout = deadline == Clock::time_point::max() ? -1 : poll_timeout_ms(deadline);
            const int ready = ::poll(fds, 2, timeout);
            if (ready < 0) {
                if (errno == EINTR) continue;
                server_.report(client_.get(), ErrorKind::Io, fmt::format("poll: {}", std::strerror(errno)));
                break;
            }
            if (fds[1].revents & POLLIN) {
                acknowledge_wake();
            }
            if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                const ssize_t got = ::recv(socket_.get(), buffer.data(), buffer.size(), 0);
                if (got > 0) {
                    on_bytes(buffer.data(), static_cast<std::size_t>(got));
                } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                    peer_gone = true;
                    break;
                }
            }
        }
        return peer_gone;
    }

    void on_bytes(std::uint8_t* data, std::size_t size) {
        last_heard_ = Clock::now();
        ping_outstanding_ = false;  // any data proves the peer is alive
        maybe_readable_ = true;
        feed(data, size);
    }

    void feed(std::uint8_t* data, std::size_t size) {
        const bool was_failed = connection_.failed();
        connection_.feed(data, size, *this);
        if (connection_.failed() && !was_failed)
            server_.report(client_.get(), ErrorKind::Protocol,
                           fmt::format("closing with {}: {}", static_cast<int>(connection_.close_code()),
                                       connection_.close_reason()));
    }

    /// Apply close requests from any thread and the server's shutdown.
    void take_requests() {
        std::optional<std::pair<CloseCode, std::string>> request;
        {
            std::lock_guard lock(core_.mutex);
            request.swap(core_.close_request);
            if (!request && server_.stopping.load() && !connection_.close_sent())
                request.emplace(CloseCode::GoingAway, "server shutting down");
        }
        if (request && connection_.state() == Connection::State::Open) {
            {
                std::lock_guard lock(core_.mutex);
                core_.accepting = false;
            }
            connection_.close(request->first, request->second);
        }
    }

    /// Move queued frames and the connection's own output (pongs, close) into the write
    /// buffer and write as much as the socket takes. False when the socket failed.
    bool flush() {
        for (;;) {
            if (write_offset_ == write_buffer_.size()) {
                write_buffer_.clear();
                write_offset_ = 0;
            }
            const bool closing = connection_.close_sent();
            bool more_queued;
            {
                std::lock_guard lock(core_.mutex);
                if (closing) core_.accepting = false;
                if (!core_.queue.empty()) {
                    if (write_buffer_.empty()) {
                        write_buffer_.swap(core_.queue);  // both keep their capacity: no allocation
                    } else if (closing) {
                        // Everything accepted before the close frame goes out before it.
                        write_buffer_.append(core_.queue);
                        core_.queue.clear();
                    }
                    core_.queued_bytes.store(core_.queue.size(), std::memory_order_relaxed);
                }
                more_queued = !core_.queue.empty();
            }
            std::string& own = connection_.output();
            if (!own.empty()) {
                write_buffer_.append(own);
                own.clear();
            }
            bool blocked = false;
            while (write_offset_ < write_buffer_.size()) {
                const ssize_t sent = ::send(socket_.get(), write_buffer_.data() + write_offset_,
                                            write_buffer_.size() - write_offset_, MSG_NOSIGNAL);
                if (sent > 0) {
                    write_offset_ += static_cast<std::size_t>(sent);
                    continue;
                }
                if (sent < 0 && errno == EINTR) continue;
                if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    blocked = true;
                    break;
                }
                core_.writing_bytes.store(0, std::memory_order_relaxed);
                return false;
            }
            core_.writing_bytes.store(write_buffer_.size() - write_offset_, std::memory_order_relaxed);
            if (write_buffer_.capacity() > (4u << 20) && write_offset_ == write_buffer_.size()) {
                std::string().swap(write_buffer_);  // give back the memory of a burst
                write_offset_ = 0;
            }
            // The queue may have filled while the write buffer drained: go round again,
            // or the loop would sleep without POLLOUT while frames wait.
            if (blocked || !more_queued) return true;
        }
    }

    /// End the connection: close TCP (server first, section 7.1.1), then tell the user.
    void finish(bool peer_gone) {
        {
            std::lock_guard lock(core_.mutex);
            core_.accepting = false;
            core_.queue.clear();
            core_.queued_bytes.store(0, std::memory_order_relaxed);
        }
        if (!peer_gone && !timed_out_ && !failed_loop_ && !core_.abort.load() && connection_.state() == Connection::State::Closed) {
            // Half-close and wait briefly for the peer's FIN, so our close frame is not lost
            // to a reset caused by unread input.
            ::shutdown(socket_.get(), SHUT_WR);
            const auto deadline = Clock::now() + server_.options.close_timeout;
            char sink[4096];
            while (wait_readable_plain(deadline)) {
                const ssize_t got = ::recv(socket_.get(), sink, sizeof sink, 0);
                if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) break;
            }
        }
        socket_.reset();
        core_.writing_bytes.store(0, std::memory_order_relaxed);

        CloseCode code = CloseCode::Abnormal;
        std::string reason;
        if (connection_.close_sent() || connection_.close_received()) {
            if (connection_.close_received() || connection_.failed() || connection_.state() == Connection::State::Closed) {
                code = connection_.close_code();
                reason = connection_.close_reason();
            }
        }
        if (connection_.close_sent() && !connection_.close_received() && !connection_.failed()) {
            // We asked to close and the peer never answered.
            code = CloseCode::Abnormal;
            reason = timed_out_ ? "close handshake timed out" : "connection lost during the close handshake";
        } else if (timed_out_) {
            reason = "no pong within pong_timeout";
        } else if (core_.abort.load() && !connection_.close_received()) {
            reason = "cut at server shutdown";
        }
        core_.open.store(false, std::memory_order_release);
        server_.open_count.fetch_sub(1);
        counted_ = false;
        server_.invoke(client_.get(), "on_connection_close", server_.on_close, *client_, code, std::string_view{reason});
    }

    bool wait_readable_plain(Clock::time_point deadline) {
        if (core_.abort.load()) return false;
        const int timeout = poll_timeout_ms(deadline);
        if (timeout == 0) return false;
        pollfd fds[2] = {{socket_.get(), POLLIN, 0}, {core_.waker.fd(), POLLIN, 0}};
        if (::poll(fds, 2, timeout) <= 0) return false;
        if (fds[1].revents & POLLIN) {
            acknowledge_wake();
            return !core_.abort.load() && (fds[0].revents & (POLLIN | POLLHUP | POLLERR));
        }
        return (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    }

public:
    ~ClientSession() override {
        if (counted_) server_.open_count.fetch_sub(1);
        std::lock_guard lock(core_.mutex);
        core_.accepting = false;
    }

private:
    ServerCore& server_;
    std::shared_ptr<Client> client_;
    ClientCore& core_;
    Fd socket_;
    Connection connection_;
    std::string early_input_;
    std::string write_buffer_;
    std::size_t write_offset_ = 0;
    Clock::time_point last_heard_{};
    Clock::time_point ping_sent_{};
    Clock::time_point closing_since_{};
    bool ping_outstanding_ = false;
    bool timed_out_ = false;
    bool maybe_readable_ = false;  // the last read returned data: try again before poll()
    bool failed_loop_ = false;
    bool counted_ = false;
};

}  // namespace

void ServerCore::run_session(std::shared_ptr<Client> client, Fd socket) {
    const auto id = client->id();
    try {
        ClientSession session(*this, std::move(client), std::move(socket));
        session.run();
    } catch (const std::exception& e) {
        report(nullptr, ErrorKind::Io, fmt::format("client {}: {}", id, e.what()));
    } catch (...) {
        report(nullptr, ErrorKind::Io, fmt::format("client {}: unknown failure", id));
    }
    session_finished(id);
}

}  // namespace websock::detail
