// WebSocketClient: connect() opens the connection on the caller's thread; the client's own
// I/O thread (ClientSession below) then pumps one websock::Connection in Role::Client,
// polling the socket and an eventfd like the server's client threads do.
#include "websock/client.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "websock/codec/client_handshake.hpp"
#include "websock/codec/close.hpp"
#include "websock/codec/frame.hpp"
#include "websock/connection.hpp"
#include "websock/detail/socket.hpp"
#include "websock/detail/transport.hpp"

namespace websock::detail {

using Clock = std::chrono::steady_clock;

// ---- the byte stream under the connection -------------------------------------------------------
//
// The socket and what moves bytes over it: the server's transports (plain TCP, or TLS in the
// client role for wss://). Everything above (the opening handshake, the I/O thread) reads and
// writes through `transport` and never touches the socket directly.
struct ClientStream {
    Fd fd;
    TlsContext tls_context;                // wss:// only
    std::unique_ptr<Transport> transport;  // declared last: gone before the context and socket

    /// What went wrong, for messages: the transport's error, or the peer's close.
    std::string error() const { return transport->error().empty() ? std::string("connection closed") : transport->error(); }
};

// ---- shared state ----------------------------------------------------------------------------------

/// A send, ping or close waiting for the I/O thread, which turns it into frames.
struct Outgoing {
    enum class Kind : std::uint8_t { Message, Ping, Close };
    Kind kind = Kind::Message;
    MessageType type = MessageType::Text;
    CloseCode code = CloseCode::Normal;
    std::string data;  ///< the message, the ping payload or the close reason
};

/// What the I/O thread and every other thread share. Everything mutable is atomic or guarded
/// by `mutex`; the stream and the Connection belong to the I/O thread alone.
struct ClientConnectionCore {
    explicit ClientConnectionCore(ClientOptions client_options) : options(std::move(client_options)) {}

    ClientOptions options;
    WebSocketClient::OpenHandler on_open;
    WebSocketClient::MessageHandler on_message;
    WebSocketClient::ErrorHandler on_error;
    WebSocketClient::CloseHandler on_close;
    WebSocketClient::ControlHandler on_ping;
    WebSocketClient::ControlHandler on_pong;

    Waker waker;  // wakes the I/O thread's poll()
    std::thread thread;
    std::atomic<std::thread::id> io_thread{};  // sends from it need no wake-up

    // Set by connect() before the I/O thread starts; the thread owns them until it ends.
    std::unique_ptr<ClientStream> stream;
    std::string leftover;     // bytes that followed the 101's header block
    std::optional<codec::DeflateAgreement> deflate;  // permessage-deflate, when the server agreed
    std::string subprotocol;  // read by subprotocol() from any thread

    mutable std::mutex mutex;
    std::condition_variable changed;  // a message arrived for receive(), or the connection ended
    std::vector<Outgoing> queue;      // (guarded)
    std::size_t queue_bytes = 0;      // (guarded) payloads plus a frame header each
    bool accepting = false;           // (guarded) sends accepted: open, and no close queued
    bool running = false;             // (guarded) from a successful connect() until on_close has run
    std::deque<Message> inbox;        // (guarded) messages for receive()
    std::size_t inbox_bytes = 0;      // (guarded)
    std::optional<std::pair<CloseCode, std::string>> close_status;  // (guarded)
    Error last_error{ErrorKind::Io, {}};                              // (guarded)

    std::atomic<std::size_t> writing_bytes{0};  // taken from the queue, not yet written
    std::atomic<bool> open{false};
    std::atomic<bool> wake_pending{false};

    void wake() noexcept {
        if (!wake_pending.exchange(true, std::memory_order_acq_rel)) waker.wake();
    }
    /// After queueing: the I/O thread takes the queue after its callbacks return, so only
    /// another thread needs to wake it.
    void notify_sent() noexcept {
        if (std::this_thread::get_id() != io_thread.load(std::memory_order_relaxed)) wake();
    }

    /// Report an error to the user (and keep it for last_error()); never throws.
    void report(ErrorKind kind, std::string message) noexcept {
        try {
            {
                std::lock_guard lock(mutex);
                last_error = Error{kind, message};
            }
            if (on_error) on_error(Error{kind, std::move(message)});
        } catch (...) {
            // An error handler that throws has nowhere left to report to.
        }
    }

    /// Run a user callback; an exception goes to on_error instead of ending the process.
    template <class Fn, class... Args>
    void invoke(const char* name, const Fn& fn, Args&&... args) noexcept {
        if (!fn) return;
        try {
            fn(std::forward<Args>(args)...);
        } catch (const std::exception& e) {
            report(ErrorKind::Callback, fmt::format("{} threw: {}", name, e.what()));
        } catch (...) {
            report(ErrorKind::Callback, fmt::format("{} threw a non-standard exception", name));
        }
    }

    SendResult enqueue(Outgoing item);
};

SendResult ClientConnectionCore::enqueue(Outgoing item) {
    const std::size_t cost = item.data.size() + codec::kMaxFrameHeader;
    bool overflowed = false;
    {
        std::lock_guard lock(mutex);
        if (!accepting) return SendResult::Closed;
        if (item.kind == Outgoing::Kind::Close) {
            accepting = false;  // later sends get Closed; this close goes out after what came before
            queue.push_back(std::move(item));
        } else if (queue_bytes + writing_bytes.load(std::memory_order_relaxed) + cost > options.max_outbound_queue_bytes) {
            overflowed = true;
            if (options.queue_full_policy == QueueFullPolicy::Close) {
                // The server cannot keep up: say why rather than silently lose messages.
                accepting = false;
                queue.clear();
                queue_bytes = 0;
                queue.push_back(Outgoing{Outgoing::Kind::Close, MessageType::Text, CloseCode::PolicyViolation,
                                         "outbound queue full"});
            }
        } else {
            queue_bytes += cost;
            queue.push_back(std::move(item));
        }
    }
    if (overflowed) {
        const bool closing = options.queue_full_policy == QueueFullPolicy::Close;
        report(ErrorKind::QueueFull, fmt::format("outbound queue over {} bytes; {}", options.max_outbound_queue_bytes,
                                                 closing ? "closing with 1008" : "message dropped"));
        if (!closing) return SendResult::Dropped;
        wake();
        return SendResult::Closed;
    }
    notify_sent();
    return SendResult::Queued;
}

// ---- the I/O thread ------------------------------------------------------------------------------

namespace {

constexpr int kReadsPerEvent = 16;  // then look at the queue and the deadlines again

/// One connection from open to close, pumped by the I/O thread with poll().
class ClientSession final : public ConnectionHandler {
public:
    explicit ClientSession(ClientConnectionCore& core)
        : core_(core),
          options_(core.options),
          stream_(std::move(core.stream)),
          connection_(ConnectionOptions{codec::Role::Client, core.options.max_frame_bytes,
                                        core.options.max_message_bytes, true}),
          read_buffer_(std::max<std::size_t>(core.options.read_buffer_bytes, 4096)) {
        if (core.deflate)
            connection_.set_extension(make_permessage_deflate(codec::Role::Client, *core.deflate, core.options.deflate),
                                      make_permessage_deflate(codec::Role::Client, *core.deflate, core.options.deflate));
    }

    void run();

    // ConnectionHandler, called from inside connection_.feed()
    void on_message(std::string_view data, MessageType type) override;
    void on_ping(std::string_view payload) override;
    void on_pong(std::string_view payload) override;

private:
    enum class Phase : std::uint8_t {
        Open,       ///< messages flow (including our side of a close handshake)
        Lingering,  ///< close frames crossed (or we failed the connection): waiting for the
                    ///< server to close TCP first (section 7.1.1)
        Done,       ///< socket closed, on_close called
    };

    bool wants_read() const;
    bool wants_write() noexcept {
        return write_offset_ < write_buffer_.size() || !connection_.output().empty() || (stream_ && stream_->transport->wants_write());
    }
    Clock::time_point deadline() const noexcept;
    void on_readable();
    void on_tick(Clock::time_point now);
    void feed(std::uint8_t* data, std::size_t size);
    void take_requests();
    bool flush();  // false when the stream failed
    void after_io();
    void finish();

    ClientConnectionCore& core_;
    const ClientOptions& options_;
    std::unique_ptr<ClientStream> stream_;  // reset by finish(): the socket is closed before on_close
    Connection connection_;
    std::vector<char> read_buffer_;
    std::vector<Outgoing> taken_;  // the queue, swapped out under the lock (keeps its capacity)
    std::string write_buffer_;
    std::size_t write_offset_ = 0;
    Phase phase_ = Phase::Open;

    Clock::time_point last_heard_{};
    Clock::time_point ping_sent_{};
    Clock::time_point close_deadline_{};  // set once a close frame has been sent or received
    bool ping_outstanding_ = false;
    bool close_timed_out_ = false;
    bool pong_timed_out_ = false;
    std::string lost_reason_;  // why TCP ended, when it ended without a close handshake
};

void ClientSession::on_message(std::string_view data, MessageType type) {
    if (core_.on_message) {
        core_.invoke("on_message", core_.on_message, data, type);
        return;
    }
    {
        std::lock_guard lock(core_.mutex);
        core_.inbox.push_back(Message{type, std::string(data)});
        core_.inbox_bytes += data.size();
    }
    core_.changed.notify_all();
}

void ClientSession::on_ping(std::string_view payload) {
    // The pong is already in the connection's output, ahead of anything the callback sends.
    core_.invoke("on_ping", core_.on_ping, payload);
}

void ClientSession::on_pong(std::string_view payload) {
    ping_outstanding_ = false;
    core_.invoke("on_pong", core_.on_pong, payload);
}

bool ClientSession::wants_read() const {
    switch (phase_) {
        case Phase::Open: {
            if (core_.on_message || connection_.state() != Connection::State::Open) return true;
            // receive() is behind: stop reading until it catches up (TCP pushes back on the server).
            std::lock_guard lock(core_.mutex);
            return core_.inbox_bytes < options_.max_receive_queue_bytes;
        }
        case Phase::Lingering: return true;
        case Phase::Done: return false;
    }
    return false;
}

Clock::time_point ClientSession::deadline() const noexcept {
    switch (phase_) {
        case Phase::Open:
            if (close_deadline_ != Clock::time_point{}) return close_deadline_;
            if (ping_outstanding_) return ping_sent_ + options_.pong_timeout;
            if (options_.ping_interval.count() > 0) return last_heard_ + options_.ping_interval;
            return Clock::time_point::max();
        case Phase::Lingering: return close_deadline_;
        case Phase::Done: return Clock::time_point::max();
    }
    return Clock::time_point::max();
}

void ClientSession::run() {
    last_heard_ = Clock::now();
    core_.invoke("on_open", core_.on_open);
    if (!core_.leftover.empty()) {
        // Frames the server sent right behind its 101.
        std::string early = std::move(core_.leftover);
        core_.leftover.clear();
        last_heard_ = Clock::now();
        feed(reinterpret_cast<std::uint8_t*>(early.data()), early.size());
    }
    after_io();
    while (phase_ != Phase::Done) {
        try {
            const bool reading = wants_read();
            short events = 0;
            if (reading) events |= POLLIN;
            if (wants_write()) events |= POLLOUT;
            // A descriptor we want nothing from is left out, or a hang-up would spin the loop.
            pollfd fds[2] = {{events != 0 ? stream_->fd.get() : -1, events, 0}, {core_.waker.fd(), POLLIN, 0}};
            const auto until = deadline();
            int timeout = until == Clock::time_point::max() ? -1 : poll_timeout_ms(until);
            if (reading && stream_->transport->has_buffered_input()) timeout = 0;
            const int ready = ::poll(fds, 2, timeout);
            if (ready < 0 && errno != EINTR) {
                core_.report(ErrorKind::Io, fmt::format("poll: {}", std::strerror(errno)));
                lost_reason_ = "poll failed";
                finish();
                break;
            }
            if (fds[1].revents & POLLIN) {
                // Drain first, then clear the flag: a wake() landing in between writes the
                // eventfd again instead of being swallowed.
                core_.waker.drain();
                core_.wake_pending.store(false, std::memory_order_release);
            }
            if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) || (reading && stream_->transport->has_buffered_input())) on_readable();
            if (phase_ != Phase::Done) after_io();
            if (phase_ != Phase::Done) on_tick(Clock::now());
        } catch (const std::exception& e) {
            // Out of memory, most likely: end the connection, keep the promise of one on_close.
            core_.report(ErrorKind::Io, fmt::format("client I/O thread failed: {}", e.what()));
            lost_reason_ = "client I/O thread failed";
            finish();
        }
    }
}

void ClientSession::on_readable() {
    for (int reads = 0; reads < kReadsPerEvent && phase_ != Phase::Done && wants_read(); ++reads) {
        const auto result = stream_->transport->read(read_buffer_.data(), read_buffer_.size());
        switch (result.status) {
            case IoResult::Status::Ok:
                last_heard_ = Clock::now();
                ping_outstanding_ = false;  // any data proves the server is alive
                if (phase_ == Phase::Open && connection_.state() != Connection::State::Closed) {
                    feed(reinterpret_cast<std::uint8_t*>(read_buffer_.data()), result.bytes);
                    after_io();  // write what became due (pongs, replies) before reading on
                }
                // After the close handshake whatever the server still sends is dropped.
                continue;
            case IoResult::Status::WouldBlock: return;
            case IoResult::Status::Eof:
                if (phase_ == Phase::Open && lost_reason_.empty()) lost_reason_ = "the server closed the TCP connection";
                finish();  // in Lingering: the server's close, as section 7.1.1 wants
                return;
            case IoResult::Status::Error:
                if (phase_ == Phase::Open) {
                    lost_reason_ = fmt::format("read: {}", stream_->error());
                    if (connection_.state() == Connection::State::Open)
                        core_.report(ErrorKind::Io, fmt::format("connection lost: {}", lost_reason_));
                }
                finish();
                return;
        }
    }
}

void ClientSession::feed(std::uint8_t* data, std::size_t size) {
    const bool was_failed = connection_.failed();
    connection_.feed(data, size, *this);
    if (connection_.failed() && !was_failed)
        core_.report(ErrorKind::Protocol, fmt::format("the server broke RFC 6455; closing with {}: {}",
                                                      static_cast<int>(connection_.close_code()), connection_.close_reason()));
}

void ClientSession::take_requests() {
    {
        std::lock_guard lock(core_.mutex);
        if (core_.queue.empty()) return;
        taken_.swap(core_.queue);
        core_.queue_bytes = 0;
    }
    for (auto& item : taken_) {
        switch (item.kind) {
            case Outgoing::Kind::Message: connection_.send_message(item.data, item.type); break;
            case Outgoing::Kind::Ping: connection_.send_ping(item.data); break;
            case Outgoing::Kind::Close: connection_.close(item.code, item.data); break;
        }
    }
    taken_.clear();
    if (taken_.capacity() > 1024) std::vector<Outgoing>().swap(taken_);
}

bool ClientSession::flush() {
    std::string& own = connection_.output();
    if (!own.empty()) {
        if (write_offset_ == write_buffer_.size()) {
            write_buffer_.clear();
            write_offset_ = 0;
            write_buffer_.swap(own);  // both keep their capacity
        } else {
            write_buffer_.append(own);
            own.clear();
        }
    }
    while (write_offset_ < write_buffer_.size()) {
        const auto result =
            stream_->transport->write(write_buffer_.data() + write_offset_, write_buffer_.size() - write_offset_);
        if (result.status == IoResult::Status::Ok && result.bytes > 0) {
            write_offset_ += result.bytes;
            continue;
        }
        if (result.status == IoResult::Status::WouldBlock || result.status == IoResult::Status::Ok) break;
        lost_reason_ = fmt::format("write: {}", stream_->error());
        core_.writing_bytes.store(0, std::memory_order_relaxed);
        return false;
    }
    if (write_offset_ == write_buffer_.size()) {
        write_offset_ = 0;
        if (write_buffer_.capacity() > (4u << 20)) std::string().swap(write_buffer_);  // give back a burst's memory
        else write_buffer_.clear();
    }
    core_.writing_bytes.store(write_buffer_.size() - write_offset_, std::memory_order_relaxed);
    return true;
}

void ClientSession::after_io() {
    if (phase_ != Phase::Open) return;
    take_requests();
    if (!flush()) {
        if (connection_.state() == Connection::State::Open)
            core_.report(ErrorKind::Io, fmt::format("connection lost: {}", lost_reason_));
        finish();
        return;
    }
    const auto state = connection_.state();
    if (state != Connection::State::Open && close_deadline_ == Clock::time_point{})
        close_deadline_ = Clock::now() + options_.close_timeout;
    if (state == Connection::State::Closed && !wants_write()) {
        // Section 7.1.1: the server closes TCP first; we wait for its FIN (until the close
        // deadline). When we failed the connection, we half-close at once: there is nothing
        // more to say, and the server learns it sooner.
        if (connection_.failed()) stream_->transport->shutdown_write();
        phase_ = Phase::Lingering;
    }
}

void ClientSession::on_tick(Clock::time_point now) {
    if (now < deadline()) return;
    switch (phase_) {
        case Phase::Open:
            if (close_deadline_ != Clock::time_point{}) {
                core_.report(ErrorKind::Timeout, "close handshake timed out");
                close_timed_out_ = true;
                finish();
                return;
            }
            if (ping_outstanding_) {
                core_.report(ErrorKind::Timeout, "no pong within pong_timeout");
                pong_timed_out_ = true;
                finish();
                return;
            }
            connection_.send_ping();  // silent for ping_interval: is the server still there?
            ping_outstanding_ = true;
            ping_sent_ = now;
            after_io();
            return;
        case Phase::Lingering: finish(); return;  // the server kept TCP open: we close it
        case Phase::Done: return;
    }
}

void ClientSession::finish() {
    if (phase_ == Phase::Done) return;
    phase_ = Phase::Done;
    {
        std::lock_guard lock(core_.mutex);
        core_.accepting = false;
        core_.queue.clear();
        core_.queue_bytes = 0;
    }
    stream_.reset();  // closes the socket
    core_.writing_bytes.store(0, std::memory_order_relaxed);

    CloseCode code = CloseCode::Abnormal;
    std::string reason;
    if (connection_.close_received() || connection_.failed()) {
        code = connection_.close_code();
        reason = connection_.close_reason();
    }
    if (connection_.close_sent() && !connection_.close_received() && !connection_.failed()) {
        // We asked to close and the server never answered.
        code = CloseCode::Abnormal;
        reason = close_timed_out_ ? "close handshake timed out" : "connection lost during the close handshake";
    } else if (pong_timed_out_) {
        reason = "no pong within pong_timeout";
    } else if (code == CloseCode::Abnormal && reason.empty()) {
        reason = lost_reason_.empty() ? "connection lost" : lost_reason_;
    }
    {
        std::lock_guard lock(core_.mutex);
        core_.close_status.emplace(code, reason);
    }
    core_.open.store(false, std::memory_order_release);
    core_.invoke("on_close", core_.on_close, code, std::string_view{reason});
    {
        std::lock_guard lock(core_.mutex);
        core_.running = false;
    }
    core_.changed.notify_all();
}

/// The body of the I/O thread.
void run_io_thread(ClientConnectionCore& core) noexcept {
    core.io_thread.store(std::this_thread::get_id());
    try {
        ClientSession session(core);
        session.run();
    } catch (const std::exception& e) {
        bool running;
        {
            std::lock_guard lock(core.mutex);
            running = core.running;
        }
        if (running) {
            // The session could not even start (out of memory): still exactly one on_close.
            core.report(ErrorKind::Io, fmt::format("client I/O thread failed: {}", e.what()));
            const std::string_view reason = "client I/O thread failed";
            {
                std::lock_guard lock(core.mutex);
                core.accepting = false;
                core.queue.clear();
                core.queue_bytes = 0;
                core.close_status.emplace(CloseCode::Abnormal, std::string(reason));
            }
            core.stream.reset();
            core.open.store(false, std::memory_order_release);
            core.invoke("on_close", core.on_close, CloseCode::Abnormal, reason);
            {
                std::lock_guard lock(core.mutex);
                core.running = false;
            }
            core.changed.notify_all();
        }
    }
    core.io_thread.store(std::thread::id{});
}

// ---- opening: TCP, then the upgrade, on the caller's thread ------------------------------------------

/// Wait for `events` on `fd` until `deadline`; false when the deadline passed first.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int timeout = poll_timeout_ms(deadline);
        const int ready = ::poll(&p, 1, timeout);
        if (ready > 0) return true;
        if (ready == 0) return false;
        if (errno != EINTR) return true;  // let the caller's next call report the error
    }
}

std::string endpoint(const std::string& host, std::uint16_t port) {
    return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

struct Failure {
    ErrorKind kind = ErrorKind::Io;
    std::string message;
};

/// A non-blocking TCP connection to host:port, trying every address until one answers.
std::unique_ptr<ClientStream> connect_tcp(const codec::WebSocketUrl& url, const ClientOptions& options, Failure& failure) {
    const auto deadline = Clock::now() + options.connect_timeout;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* list = nullptr;
    const std::string service = std::to_string(url.port);
    const int rc = ::getaddrinfo(url.host.c_str(), service.c_str(), &hints, &list);
    if (rc != 0) {
        failure = {ErrorKind::Io, fmt::format("cannot resolve {}: {}", url.host, gai_strerror(rc))};
        return nullptr;
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(list, &::freeaddrinfo);
    std::string last_error = "no address";
    for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
        Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
        if (!fd.valid()) {
            last_error = std::strerror(errno);
            continue;
        }
        int error = 0;
        if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            error = errno;
            if (error == EINPROGRESS || error == EINTR) {
                if (!wait_for(fd.get(), POLLOUT, deadline)) {
                    failure = {ErrorKind::Timeout, fmt::format("cannot connect to {}: no answer within {} ms", endpoint(url.host, url.port),
                                                               options.connect_timeout.count())};
                    return nullptr;
                }
                socklen_t length = sizeof error;
                if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
            }
        }
        if (error != 0) {
            last_error = std::strerror(error);
            continue;
        }
        if (options.tcp_nodelay) set_tcp_nodelay(fd.get());
        auto stream = std::make_unique<ClientStream>();
        stream->fd = std::move(fd);
        if (!url.secure) {
            stream->transport = make_plain_transport(stream->fd.get());
            return stream;
        }
        std::string tls_error;
        stream->tls_context = make_client_tls_context(options.tls_verify, options.tls_ca_file, tls_error);
        if (!stream->tls_context) {
            failure = {ErrorKind::Tls, fmt::format("TLS setup failed: {}", tls_error)};
            return nullptr;
        }
        stream->transport = make_tls_client_transport(stream->tls_context.get(), stream->fd.get(), url.host, options.tls_verify);
        if (!stream->transport->error().empty()) {
            failure = {ErrorKind::Tls, fmt::format("TLS setup failed: {}", stream->transport->error())};
            return nullptr;
        }
        return stream;
    }
    failure = {ErrorKind::Io, fmt::format("cannot connect to {}: {}", endpoint(url.host, url.port), last_error)};
    return nullptr;
}

/// Wait for what the transport's last operation asked for; false at the deadline.
bool wait_stream(const ClientStream& stream, Clock::time_point deadline) {
    return wait_for(stream.fd.get(), stream.transport->wants_write() ? POLLOUT : POLLIN, deadline);
}

}  // namespace

}  // namespace websock::detail

namespace websock {

using detail::IoResult;
using detail::ClientConnectionCore;
using detail::Clock;
using detail::Outgoing;

WebSocketClient::WebSocketClient(ClientOptions options) : core_(std::make_unique<ClientConnectionCore>(std::move(options))) {}

WebSocketClient::~WebSocketClient() {
    auto& core = *core_;
    if (!core.thread.joinable()) return;
    if (std::this_thread::get_id() == core.thread.get_id()) {
        // Joining itself would deadlock, and a detached thread would outlive the object.
        std::fputs("websock: a WebSocketClient was destroyed from inside its own callback\n", stderr);
        std::terminate();
    }
    close(CloseCode::Normal, {});  // does nothing when already closing or closed
    core.thread.join();
}

WebSocketClient& WebSocketClient::on_open(OpenHandler handler) { core_->on_open = std::move(handler); return *this; }
WebSocketClient& WebSocketClient::on_message(MessageHandler handler) { core_->on_message = std::move(handler); return *this; }
WebSocketClient& WebSocketClient::on_error(ErrorHandler handler) { core_->on_error = std::move(handler); return *this; }
WebSocketClient& WebSocketClient::on_close(CloseHandler handler) { core_->on_close = std::move(handler); return *this; }
WebSocketClient& WebSocketClient::on_ping(ControlHandler handler) { core_->on_ping = std::move(handler); return *this; }
WebSocketClient& WebSocketClient::on_pong(ControlHandler handler) { core_->on_pong = std::move(handler); return *this; }

const ClientOptions& WebSocketClient::options() const noexcept { return core_->options; }
bool WebSocketClient::is_open() const noexcept { return core_->open.load(std::memory_order_acquire); }
const std::string& WebSocketClient::subprotocol() const noexcept { return core_->subprotocol; }

std::size_t WebSocketClient::queued_bytes() const noexcept {
    std::lock_guard lock(core_->mutex);
    return core_->queue_bytes + core_->writing_bytes.load(std::memory_order_relaxed);
}

Error WebSocketClient::last_error() const {
    std::lock_guard lock(core_->mutex);
    return core_->last_error;
}

std::optional<std::pair<CloseCode, std::string>> WebSocketClient::close_status() const {
    std::lock_guard lock(core_->mutex);
    return core_->close_status;
}

bool WebSocketClient::connect(std::string_view url) {
    auto& core = *core_;
    auto fail = [&](ErrorKind kind, std::string message) {
        core.report(kind, std::move(message));
        return false;
    };
    bool busy;
    {
        std::lock_guard lock(core.mutex);
        busy = core.running;
    }
    if (busy) return fail(ErrorKind::Io, "already connected: close() and wait_closed() first");
    if (core.thread.joinable()) {
        if (std::this_thread::get_id() == core.thread.get_id())
            return fail(ErrorKind::Io, "connect() cannot be called from the client's own callbacks");
        core.thread.join();  // the previous connection's thread, already past on_close
    }
    if (!core.waker.valid()) return fail(ErrorKind::Io, "eventfd failed: cannot wake the I/O thread");

    std::string error;
    const auto parsed = codec::parse_websocket_url(url, error);
    if (!parsed) return fail(ErrorKind::Handshake, fmt::format("bad URL '{}': {}", url, error));

    const auto& options = core.options;
    codec::UpgradeRequest request;
    request.host = parsed->host;
    request.port = parsed->port;
    request.default_port = parsed->default_port;
    request.target = parsed->target;
    request.origin = options.origin;
    request.subprotocols = options.subprotocols;
    request.extra_headers = options.extra_headers;
    const std::string deflate_offer = codec::make_client_offer(options.deflate);  // empty unless enabled
    if (!deflate_offer.empty()) request.extensions.push_back(deflate_offer);
    if (!options.basic_auth_user.empty()) request.basic_auth.emplace(options.basic_auth_user, options.basic_auth_password);
    else if (parsed->has_userinfo) request.basic_auth.emplace(parsed->user, parsed->password);
    if (const auto problem = codec::validate_upgrade_request(request); !problem.empty())
        return fail(ErrorKind::Handshake, fmt::format("cannot send the upgrade request: {}", problem));

    std::string key;
    try {
        key = codec::make_websocket_key();
    } catch (const std::exception& e) {
        return fail(ErrorKind::Io, e.what());
    }

    detail::Failure failure;
    auto stream = detail::connect_tcp(*parsed, options, failure);
    if (!stream) return fail(failure.kind, std::move(failure.message));

    // Everything from here to the validated 101 shares one deadline.
    const auto deadline = Clock::now() + options.handshake_timeout;
    const std::string where = detail::endpoint(parsed->host, parsed->port);
    auto timed_out = [&](std::string_view what) {
        return fail(ErrorKind::Timeout,
                    fmt::format("{}: {} within handshake_timeout ({} ms)", where, what, options.handshake_timeout.count()));
    };

    // The stream's own handshake (TLS); plain TCP has none.
    while (!stream->transport->handshake()) {
        if (!stream->transport->error().empty())
            return fail(ErrorKind::Tls, fmt::format("{}: {}", where, stream->transport->error()));
        if (!detail::wait_stream(*stream, deadline)) return timed_out("no secure channel");
    }

    const std::string request_bytes = codec::make_upgrade_request(request, key);
    for (std::size_t offset = 0; offset < request_bytes.size();) {
        const auto result = stream->transport->write(request_bytes.data() + offset, request_bytes.size() - offset);
        if (result.status == IoResult::Status::Ok) {
            offset += result.bytes;
            continue;
        }
        if (result.status != IoResult::Status::WouldBlock)
            return fail(ErrorKind::Io, fmt::format("{}: cannot send the upgrade request: {}", where, stream->error()));
        if (!detail::wait_stream(*stream, deadline)) return timed_out("the upgrade request was not taken");
    }

    // The response, up to the end of its header block; what follows is the first frames.
    codec::HttpResponseParser parser(codec::HttpResponseParser::Options{options.max_handshake_bytes});
    std::vector<char> buffer(4096);
    std::string leftover;
    bool got_any = false;
    for (;;) {
        const auto result = stream->transport->read(buffer.data(), buffer.size());
        if (result.status == IoResult::Status::Ok) {
            got_any = true;
            std::size_t consumed = 0;
            const auto status = parser.feed(buffer.data(), result.bytes, consumed);
            if (status == codec::HttpResponseParser::Status::Error)
                return fail(ErrorKind::Handshake, fmt::format("{}: {}", where, parser.error()));
            if (status == codec::HttpResponseParser::Status::Complete) {
                leftover.assign(buffer.data() + consumed, result.bytes - consumed);
                break;
            }
            continue;
        }
        if (result.status == IoResult::Status::Eof)
            return fail(ErrorKind::Handshake, fmt::format("{}: the server closed the connection {}", where,
                                                          got_any ? "in the middle of its answer to the upgrade request"
                                                                  : "without answering the upgrade request"));
        if (result.status == IoResult::Status::Error)
            return fail(ErrorKind::Io, fmt::format("{}: reading the upgrade response: {}", where, stream->error()));
        if (!detail::wait_stream(*stream, deadline))
            return timed_out(got_any ? "the answer to the upgrade request did not complete" : "no answer to the upgrade request");
    }

    std::vector<std::string> offered_extensions;
    if (!deflate_offer.empty()) offered_extensions.emplace_back(codec::kPermessageDeflate);
    const codec::UpgradeOffer offer{key, options.subprotocols, offered_extensions, options.require_subprotocol};
    const auto check = codec::check_upgrade_response(parser.response(), offer);
    if (!check.ok) return fail(ErrorKind::Handshake, fmt::format("{}: {}", where, check.error));
    // RFC 7692 section 5.1 / 7.1: a response we did not ask for fails the connection.
    const auto deflate = codec::accept_client_response(check.extensions, options.deflate);
    if (!deflate.ok())
        return fail(ErrorKind::Handshake, fmt::format("{}: bad permessage-deflate response: {}", where, deflate.error));
    core.deflate = deflate.agreement;

    // Open: the stream now belongs to a new I/O thread.
    core.stream = std::move(stream);
    core.leftover = std::move(leftover);
    core.subprotocol = check.subprotocol;
    {
        std::lock_guard lock(core.mutex);
        core.queue.clear();
        core.queue_bytes = 0;
        core.inbox.clear();
        core.inbox_bytes = 0;
        core.close_status.reset();
        core.accepting = true;
        core.running = true;
    }
    core.writing_bytes.store(0, std::memory_order_relaxed);
    core.io_thread.store(std::thread::id{});  // a dead thread's id may have been reused
    core.open.store(true, std::memory_order_release);
    try {
        core.thread = std::thread([&core] { detail::run_io_thread(core); });
    } catch (const std::system_error& e) {
        {
            std::lock_guard lock(core.mutex);
            core.accepting = false;
            core.running = false;
        }
        core.open.store(false, std::memory_order_release);
        core.stream.reset();
        return fail(ErrorKind::Limit, fmt::format("cannot start the client's I/O thread: {}", e.what()));
    }
    return true;
}

SendResult WebSocketClient::send(std::string_view data, MessageType type) {
    return core_->enqueue(Outgoing{Outgoing::Kind::Message, type, CloseCode::Normal, std::string(data)});
}

SendResult WebSocketClient::send(std::string_view text) { return send(text, MessageType::Text); }
SendResult WebSocketClient::send_binary(std::string_view bytes) { return send(bytes, MessageType::Binary); }

SendResult WebSocketClient::ping(std::string_view payload) {
    if (payload.size() > codec::kMaxControlPayload) return SendResult::Dropped;
    return core_->enqueue(Outgoing{Outgoing::Kind::Ping, MessageType::Binary, CloseCode::Normal, std::string(payload)});
}

SendResult WebSocketClient::close(CloseCode code, std::string_view reason) {
    if (!codec::is_valid_close_code(static_cast<std::uint16_t>(code))) return SendResult::Dropped;
    return core_->enqueue(Outgoing{Outgoing::Kind::Close, MessageType::Text, code, std::string(reason)});
}

namespace {

/// now + timeout, or nullopt for a timeout too long to add to a clock (wait forever).
std::optional<Clock::time_point> deadline_after(Milliseconds timeout) {
    if (timeout > std::chrono::hours(24 * 365 * 100)) return std::nullopt;
    return Clock::now() + std::max(timeout, Milliseconds{0});
}

std::optional<Message> receive_until(ClientConnectionCore& core, std::optional<Clock::time_point> deadline) {
    // On the I/O thread (inside a callback) waiting would stall the very thread that reads.
    if (std::this_thread::get_id() == core.io_thread.load(std::memory_order_relaxed)) deadline = Clock::now();
    std::unique_lock lock(core.mutex);
    const auto ready = [&] { return !core.inbox.empty() || !core.running; };
    if (deadline) core.changed.wait_until(lock, *deadline, ready);
    else core.changed.wait(lock, ready);
    if (core.inbox.empty()) return std::nullopt;
    Message message = std::move(core.inbox.front());
    core.inbox.pop_front();
    const std::size_t limit = core.options.max_receive_queue_bytes;
    const bool was_full = core.inbox_bytes >= limit;
    core.inbox_bytes -= message.data.size();
    const bool resume = was_full && core.inbox_bytes < limit && core.running;
    lock.unlock();
    if (resume) core.wake();  // the I/O thread stopped reading; it may go on
    return message;
}

}  // namespace

std::optional<Message> WebSocketClient::receive(Milliseconds timeout) { return receive_until(*core_, deadline_after(timeout)); }
std::optional<Message> WebSocketClient::receive() { return receive_until(*core_, std::nullopt); }

bool WebSocketClient::wait_closed(Milliseconds timeout) {
    auto& core = *core_;
    // Inside a callback the connection cannot end while we wait for it.
    if (std::this_thread::get_id() == core.io_thread.load(std::memory_order_relaxed)) timeout = Milliseconds{0};
    std::unique_lock lock(core.mutex);
    const auto ended = [&] { return !core.running; };
    if (const auto deadline = deadline_after(timeout)) return core.changed.wait_until(lock, *deadline, ended);
    core.changed.wait(lock, ended);
    return true;
}

void WebSocketClient::wait_closed() { wait_closed(Milliseconds::max()); }

}  // namespace websock
