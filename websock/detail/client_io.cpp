// The WebSocketClient's I/O thread: ClientSession pumps one websock::Connection in
// Role::Client, polling the socket and an eventfd like the server's client threads do.
//
// Two Connections, one per direction of data: `connection_` reads the server's frames and
// writes the frames the protocol itself owes (pongs, our keep-alive pings, close frames);
// `encoder_` turns what the application sends into frames and never reads or closes. The
// split is what lets a send accepted before a close frame was decided on still go out ahead
// of it: a Connection refuses data once its close frame is written, and it writes that frame
// by itself, in the middle of feed(), when the server breaks the protocol or closes.
#include "websock/detail/client_io.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "websock/codec/frame.hpp"
#include "websock/connection.hpp"
#include "websock/extension.hpp"

namespace websock::detail {

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
          encoder_(ConnectionOptions{codec::Role::Client, core.options.max_frame_bytes, core.options.max_message_bytes,
                                     false}),
          read_buffer_(std::max<std::size_t>(core.options.read_buffer_bytes, 4096)) {
        if (core.deflate) {
            connection_.set_extension(make_permessage_deflate(codec::Role::Client, *core.deflate, core.options.deflate), nullptr);
            encoder_.set_extension(nullptr, make_permessage_deflate(codec::Role::Client, *core.deflate, core.options.deflate));
        }
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
        return write_offset_ < write_buffer_.size() || !encoder_.output().empty() || !connection_.output().empty() ||
               (stream_ && stream_->transport->wants_write());
    }
    Clock::time_point deadline() const noexcept;
    void on_readable();
    void on_tick(Clock::time_point now);
    void feed(std::uint8_t* data, std::size_t size);
    void take_requests();
    void stage(std::string& frames);  // append to what is to be written, in this order
    bool flush();  // false when the stream failed
    void after_io();
    void finish();

    ClientConnectionCore& core_;
    const ClientOptions& options_;
    std::unique_ptr<ClientStream> stream_;  // reset by finish(): the socket is closed before on_close
    Connection connection_;  // the server's frames in; pongs, keep-alive pings and close frames out
    Connection encoder_;     // the application's messages and pings out; never reads, never closes
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
    bool closed_first_ = false;  // our close() went out before any close frame of the server's
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
    // The connection has just written the pong; staging it now puts it ahead of anything the
    // callback sends (flush() writes the application's frames before the connection's).
    stage(connection_.output());
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
        // A close frame is due (ours, our answer to the server's, or the one failing the
        // connection): what was accepted until now is taken here and written ahead of it
        // (flush() writes the application's frames first); later sends get Closed.
        if (connection_.close_sent()) core_.accepting = false;
        if (core_.queue.empty()) return;
        taken_.swap(core_.queue);
        core_.queue_bytes = 0;
    }
    std::size_t refused = 0;
    for (auto& item : taken_) {
        switch (item.kind) {
            case Outgoing::Kind::Message:
                if (!encoder_.send_message(item.data, item.type)) ++refused;
                break;
            case Outgoing::Kind::Ping:
                if (!encoder_.send_ping(item.data)) ++refused;
                break;
            case Outgoing::Kind::Close:
                // Always the last item: enqueue() accepts nothing after a close.
                if (connection_.state() == Connection::State::Open) closed_first_ = true;
                connection_.close(item.code, item.data);
                break;
        }
    }
    taken_.clear();
    if (taken_.capacity() > 1024) std::vector<Outgoing>().swap(taken_);
    if (refused > 0)
        // The encoder never closes, so this would be a bug here; say so rather than lose
        // messages that were reported Queued without a trace.
        core_.report(ErrorKind::Io, fmt::format("{} queued message(s) could not be encoded and were not sent", refused));
}

void ClientSession::stage(std::string& frames) {
    if (frames.empty()) return;
    if (write_offset_ == write_buffer_.size()) {
        write_buffer_.clear();
        write_offset_ = 0;
        write_buffer_.swap(frames);  // both keep their capacity
    } else {
        write_buffer_.append(frames);
        frames.clear();
    }
}

bool ClientSession::flush() {
    // The application's frames first: each was taken from the queue before any close frame
    // the connection's output may end with was decided on (see take_requests()).
    stage(encoder_.output());
    stage(connection_.output());
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
    // Who sent the first close frame: we did (close(), a full queue, or failing the
    // connection), the server did, or nobody did before TCP ended.
    CloseInitiator initiator = CloseInitiator::Abnormal;
    if (closed_first_ || connection_.failed()) initiator = CloseInitiator::Local;
    else if (connection_.close_received()) initiator = CloseInitiator::Remote;
    {
        std::lock_guard lock(core_.mutex);
        core_.close_status.emplace(CloseStatus{code, reason, initiator});
    }
    core_.open.store(false, std::memory_order_release);
    core_.invoke("on_close", core_.on_close, code, std::string_view{reason});
    {
        std::lock_guard lock(core_.mutex);
        core_.running = false;
    }
    core_.changed.notify_all();
}

}  // namespace

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
                core.close_status.emplace(CloseStatus{CloseCode::Abnormal, std::string(reason), CloseInitiator::Abnormal});
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

}  // namespace websock::detail
