// One server-side connection from accept to close (see client_driver.hpp): construction,
// the events an engine reports, frames, flushing and the end. The HTTP handshake (requests,
// the upgrade decision, plain HTTP answers) is in client_driver_http.cpp.
#include "websock/detail/client_driver.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include <fmt/format.h>

namespace websock::detail {

ReadBuffer::ReadBuffer(std::size_t size) : size_(size) {
    void* mapped = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) throw std::bad_alloc();
    bytes_ = static_cast<std::uint8_t*>(mapped);
}

ReadBuffer::~ReadBuffer() {
    if (owned_) ::munmap(bytes_, size_);
}

ClientDriver::ClientDriver(ServerCore& server, std::shared_ptr<Client> client, Fd socket,
                           ReadBuffer& read_buffer)
    : server_(server),
      client_(std::move(client)),
      core_(ServerCore::core(*client_)),
      socket_(std::move(socket)),
      read_buffer_(read_buffer) {
    handshake_deadline_ = Clock::now() + server.options.handshake_timeout;
    if (server.tls_context) {
        transport_ = make_tls_server_transport(server.tls_context.get(), socket_.get());
        phase_ = Phase::TlsHandshake;
    } else {
        transport_ = make_plain_transport(socket_.get());
    }
    if (server.wrap_transport) transport_ = server.wrap_transport(std::move(transport_));  // tests: inject faults
    io_ = transport_.get();
}

ClientDriver::~ClientDriver() {
    if (phase_ != Phase::Done) {
        aborted_ = true;
        finish();
    }
}

// ---- ConnectionHandler ----------------------------------------------------------------------

void ClientDriver::on_message(std::string_view data, MessageType type) {
    server_.invoke(client_.get(), "on_data_receive", server_.on_data, *client_, data, type);
}

void ClientDriver::on_ping(std::string_view payload) {
    // The pong is already in the connection's output. Queue it now, so it goes out before
    // anything the callbacks send after this point (Autobahn 5.6-5.8 check the order).
    std::string& pong = connection().output();
    if (!pong.empty()) {
        auto over_limit = ClientCore::OverLimit::No;
        {
            std::lock_guard lock(core_.mutex);
            // A peer that pings without reading must not grow the queue without bound.
            over_limit = core_.over_limit_locked(pong.size());
            if (over_limit == ClientCore::OverLimit::No) {
                core_.queue.append(pong);
                core_.set_queued_bytes(core_.queue.size());
            }
        }
        pong.clear();
        if (over_limit != ClientCore::OverLimit::No) {
            server_.report(client_.get(), ErrorKind::QueueFull,
                           fmt::format("{} (pongs); closing with 1008", core_.over_limit_text(over_limit)));
            connection().fail(CloseCode::PolicyViolation, "outbound queue full");
            return;
        }
    }
    server_.invoke(client_.get(), "on_ping", server_.on_ping, *client_, payload);
}

void ClientDriver::on_pong(std::string_view payload) {
    ping_outstanding_ = false;
    server_.invoke(client_.get(), "on_pong", server_.on_pong, *client_, payload);
}

// ---- the Connection, made when needed ----

Connection& ClientDriver::connection() {
    if (!connection_) {
        void* slot = slab_allocate(sizeof(Connection));
        try {
            connection_.reset(::new (slot) Connection(ConnectionOptions{codec::Role::Server, server_.options.max_frame_bytes,
                                                                        server_.options.max_message_bytes, true}));
        } catch (...) {
            slab_deallocate(slot, sizeof(Connection));
            throw;
        }
    }
    return *connection_;
}

const Connection& ClientDriver::connection_state() const noexcept {
    // A Connection at rest is dropped (release_if_quiet()); a new one answers every question the same.
    static const Connection fresh{ConnectionOptions{}};
    return connection_ ? *connection_ : fresh;
}

// ---- events ------------------------------------------------------------------------------------

bool ClientDriver::wants_read() const noexcept {
    switch (phase_) {
        case Phase::TlsHandshake: return true;
        case Phase::Handshake:
            // Read on while an asynchronous answer is awaited (without parsing): that is how a
            // long poll learns that its client went away.
            return !close_after_write_ && write_buffer_.size() - write_offset_ < kMaxPendingHttpBytes;
        case Phase::Open: return connection_state().state() != Connection::State::Closed;
        case Phase::Lingering: return true;
        case Phase::Done: return false;
    }
    return false;
}

ClientDriver::Clock::time_point ClientDriver::deadline() const noexcept {
    const auto& options = server_.options;
    switch (phase_) {
        case Phase::TlsHandshake: return handshake_deadline_;
        case Phase::Handshake: return awaiting_http_ && http_ ? http_->deadline : handshake_deadline_;
        case Phase::Open:
            if (closing_since_ != Clock::time_point{}) return closing_since_ + options.close_timeout;
            if (ping_outstanding_) return ping_sent_ + options.pong_timeout;
            if (options.idle_ping_interval.count() > 0) return last_heard_ + options.idle_ping_interval;
            return Clock::time_point::max();
        case Phase::Lingering: return linger_deadline_;
        case Phase::Done: return Clock::time_point::max();
    }
    return Clock::time_point::max();
}

void ClientDriver::on_readable() {
    switch (phase_) {
        case Phase::TlsHandshake: step_tls_handshake(); return;
        case Phase::Handshake: read_handshake(); break;
        case Phase::Open:
            if (read_frames()) return;  // it ran after_io() last, and nothing happened since
            break;
        case Phase::Lingering: {
            for (int reads = 0; reads < kReadsPerEvent; ++reads) {
                const auto got = io_->read(read_buffer_.data(), read_buffer_.size());
                if (got.status == IoResult::Status::Ok) continue;  // what the peer still sends is dropped
                if (got.status == IoResult::Status::WouldBlock) return;
                finish();  // the peer's FIN (or an error): done
                return;
            }
            return;
        }
        case Phase::Done: return;
    }
    after_io();
}

void ClientDriver::step_tls_handshake() {
    if (io_->handshake()) {
        phase_ = Phase::Handshake;
        read_handshake();  // the request may already sit decrypted in the TLS buffer
        after_io();
        return;
    }
    if (!io_->error().empty()) {
        // A failed TLS handshake costs nothing else: report it and drop the socket.
        server_.report(nullptr, ErrorKind::Tls, fmt::format("{}: TLS handshake failed: {}", core_.peer, io_->error()));
        finish();
    }
}

void ClientDriver::on_writable() {
    if (phase_ == Phase::TlsHandshake) return step_tls_handshake();
    if (phase_ == Phase::Open && io_->wants_write() && write_offset_ == write_buffer_.size()) {
        read_frames();  // a TLS read was waiting for the socket to take its bytes
        if (phase_ != Phase::Open) return;
    }
    after_io();
}

void ClientDriver::on_wake() {
    // Drain first, then clear the flag: a wake() landing in between then writes the
    // eventfd again instead of being swallowed. after_io() re-checks queue and requests.
    core_.waker.drain();
    core_.wake_pending.store(false, std::memory_order_release);
    after_io();
}

void ClientDriver::on_server_stop() {
    if (phase_ == Phase::Handshake || phase_ == Phase::TlsHandshake) {
        finish();  // not a WebSocket client yet: nothing to say goodbye to
        return;
    }
    after_io();  // take_requests() sees the stop and sends 1001
}

void ClientDriver::abort() {
    aborted_ = true;
    finish();
}

void ClientDriver::on_exception(const std::exception& error) {
    // Out of memory, most likely: end this client, keep the promise of one close.
    server_.report(client_.get(), ErrorKind::Io, fmt::format("client {} failed: {}", core_.id, error.what()));
    failed_loop_ = true;
    finish();
}

void ClientDriver::on_tick(Clock::time_point now) {
    if (now < deadline()) return;
    const auto& options = server_.options;
    switch (phase_) {
        case Phase::TlsHandshake:
            server_.report(nullptr, ErrorKind::Timeout, fmt::format("{}: TLS handshake timed out", core_.peer));
            finish();
            return;
        case Phase::Handshake:
            if (awaiting_http_) {
                take_http_answer();
                if (awaiting_http_) {
                    {
                        std::lock_guard lock(core_.mutex);
                        core_.rare().http_awaited = 0;  // a late respond() now returns false (made: it awaits)
                    }
                    awaiting_http_ = false;
                    server_.report(nullptr, ErrorKind::Timeout,
                                   fmt::format("{}: on_http_request_async gave no answer within http_response_timeout",
                                               core_.peer));
                    write_buffer_.append(serialize_response(
                        HttpResponse::text(503, "The server did not answer in time.\n").header("Retry-After", "1")));
                    close_after_write_ = true;
                    handshake_deadline_ = now + std::chrono::seconds(1);  // time to write the 503
                }
                break;
            }
            if (close_after_write_ || !http_ || (http_->input.empty() && (!http_->parser || !http_->parser->started()))) {
                finish();  // an idle keep-alive connection, a silent peer, or a stuck answer
                return;
            }
            refuse(408, "handshake timed out");
            handshake_deadline_ = now + std::chrono::seconds(1);  // time to write the 408
            break;
        case Phase::Open:
            if (closing_since_ != Clock::time_point{}) {
                server_.report(client_.get(), ErrorKind::Timeout, "close handshake timed out");
                timed_out_ = true;
                end(false);
                return;
            }
            if (ping_outstanding_) {
                server_.report(client_.get(), ErrorKind::Timeout, "no pong within pong_timeout");
                timed_out_ = true;
                end(false);
                return;
            }
            connection().send_ping();  // idle: is the peer still there?
            ping_outstanding_ = true;
            ping_sent_ = now;
            (void)options;
            break;
        case Phase::Lingering: finish(); return;
        case Phase::Done: return;
    }
    after_io();
}

bool ClientDriver::holds_large_buffers() const noexcept {
    constexpr std::size_t kLarge = 64 * 1024;
    std::size_t held = write_buffer_.capacity();
    if (connection_) held += connection_->buffered_capacity();
    if (held > kLarge) return true;
    std::lock_guard lock(core_.mutex);
    return held + core_.queue.capacity() > kLarge;
}

bool ClientDriver::release_if_quiet(bool known_quiet) {
    if (phase_ == Phase::Done) {
        release_listed_ = false;
        return true;
    }
    // Only an open connection releases (a handshake or a linger is short, or has its deadline).
    const bool was_busy = std::exchange(busy_, false);
    if ((was_busy && !known_quiet) || phase_ != Phase::Open || write_offset_ != write_buffer_.size()) return false;
    std::string().swap(write_buffer_);
    write_offset_ = 0;
    bool queue_empty = false;
    {
        std::lock_guard lock(core_.mutex);
        queue_empty = core_.queue.empty();
        if (queue_empty) std::string().swap(core_.queue);
    }
    if (connection_) {
        connection_->release_buffers();
        if (connection_->at_rest()) connection_.reset();  // a new one is made when needed: see connection()
    }
    if (!queue_empty) return false;  // another thread queued meanwhile; flush() follows
    holds_buffers_ = false;
    release_listed_ = false;
    return true;
}

// ---- frames ----------------------------------------------------------------------------------------

bool ClientDriver::read_frames() {
    for (int reads = 0; reads < kReadsPerEvent && phase_ == Phase::Open; ++reads) {
        if (connection_state().state() == Connection::State::Closed) return false;
        const auto got = io_->read(read_buffer_.data(), read_buffer_.size());
        if (got.status == IoResult::Status::Ok) {
            last_heard_ = Clock::now();
            ping_outstanding_ = false;  // any data proves the peer is alive
            note_buffers_used();
            feed(read_buffer_.data(), got.bytes);
            // Write what became due before reading again: echoes go out in batches.
            after_io();
            // The write may have failed (the peer reset while we echoed): then the driver
            // is finished and the transport gone, or lingering and done with frames.
            if (phase_ != Phase::Open) return true;
            // A short read drained the socket: the event loop hears of more data from epoll
            // with everyone else's; a client thread gives its core away once and then reads
            // again before it sleeps (session.cpp, "yield, then read"), which finds the
            // peer's next bytes far more often than reading again at once did.
            if (got.bytes < read_buffer_.size() && !io_->has_buffered_input()) return true;
            continue;
        }
        if (got.status == IoResult::Status::WouldBlock) return false;
        peer_gone_ = true;
        end(true);
        return false;
    }
    return false;
}

void ClientDriver::feed(std::uint8_t* data, std::size_t size) {
    Connection& connection = this->connection();
    const bool was_failed = connection.failed();
    connection.feed(data, size, *this);
    if (connection.failed() && !was_failed)
        server_.report(client_.get(), ErrorKind::Protocol,
                       fmt::format("closing with {}: {}", static_cast<int>(connection.close_code()),
                                   connection.close_reason()));
    if (connection.failed()) {
        publish_message_held(0);  // the message is abandoned
        return;
    }
    publish_message_held(connection.message_bytes_held());
    // Messages in progress across all clients past the server's budget: the client whose
    // message counts and grew is asked to try again later (a read adds at most a read
    // buffer, so the budget is passed by at most that much per client).
    if (counted_message_kib_ != 0 &&
        server_.incoming_message_kib.load(std::memory_order_relaxed) * 1024 > server_.options.max_total_incoming_message_bytes) {
        server_.report(client_.get(), ErrorKind::Limit,
                       fmt::format("the server's budget of {} bytes for messages in progress is spent; closing with 1013",
                                   server_.options.max_total_incoming_message_bytes));
        connection.fail(CloseCode::TryAgainLater, "server busy: too many large messages in progress");
        publish_message_held(0);
    }
}

void ClientDriver::publish_message_held(std::size_t held) noexcept {
    const auto kib = static_cast<std::uint32_t>(held > kUncountedMessage ? (held - kUncountedMessage) / 1024 : 0);
    if (kib == counted_message_kib_) return;
    if (kib > counted_message_kib_) server_.incoming_message_kib.fetch_add(kib - counted_message_kib_, std::memory_order_relaxed);
    else server_.incoming_message_kib.fetch_sub(counted_message_kib_ - kib, std::memory_order_relaxed);
    counted_message_kib_ = kib;
}

void ClientDriver::take_requests() {
    std::optional<std::pair<CloseCode, std::string>> request;
    // Read before taking the client's lock: stop_close() takes the server's.
    std::optional<std::pair<CloseCode, std::string>> stop_request;
    if (server_.stopping.load() && !connection_state().close_sent()) stop_request = server_.stop_close();
    {
        std::lock_guard lock(core_.mutex);
        if (auto* rare = core_.rare_if_made()) request.swap(rare->close_request);
        if (!request && std::exchange(core_.close_for_full_queue, false))
            request.emplace(CloseCode::PolicyViolation, "outbound queue full");
        if (!request && stop_request) request = std::move(stop_request);
        if (request && connection_state().state() == Connection::State::Open) core_.accepting = false;
    }
    if (request && connection_state().state() == Connection::State::Open) connection().close(request->first, request->second);
}

bool ClientDriver::flush() {
    // Direct sends: one writer per socket. While a sender on another thread writes, leave
    // the queue and the Connection's frames where they are: its wake() brings us back.
    awaiting_writer_ = direct_sends_ && !core_.claim_for_owner();
    if (awaiting_writer_) return true;
    for (;;) {
        if (write_offset_ == write_buffer_.size()) {
            write_buffer_.clear();
            write_offset_ = 0;
        }
        const bool closing = connection_state().close_sent();
        bool more_queued;
        {
            std::lock_guard lock(core_.mutex);
            if (closing) core_.accepting = false;
            if (direct_sends_) {
                // Open and not closing: senders may write to the socket once we have written
                // everything (we hold it until then). Never across the close frame.
                const bool takes_direct = phase_ == Phase::Open && !closing && io_->writes_from_any_thread();
                core_.direct_transport = takes_direct ? io_ : nullptr;
            }
            if (!core_.queue.empty()) {
                if (write_buffer_.empty()) {
                    write_buffer_.swap(core_.queue);  // both keep their capacity: no allocation
                } else if (closing) {
                    // Everything accepted before the close frame goes out before it.
                    write_buffer_.append(core_.queue);
                    core_.queue.clear();
                }
                if (core_.queue.empty()) core_.queue_committed = 0;  // ours to write now
                core_.set_queued_bytes(core_.queue.size());
            }
            more_queued = !core_.queue.empty();
        }
        if (connection_ && !connection_->output().empty()) {
            write_buffer_.append(connection_->output());
            connection_->output().clear();
        }
        if (write_offset_ < write_buffer_.size()) note_buffers_used();
        bool blocked = false;
        while (write_offset_ < write_buffer_.size()) {
            const auto sent = io_->write(write_buffer_.data() + write_offset_, write_buffer_.size() - write_offset_);
            if (sent.status == IoResult::Status::Ok && sent.bytes > 0) {
                write_offset_ += sent.bytes;
                continue;
            }
            if (sent.status == IoResult::Status::WouldBlock || sent.status == IoResult::Status::Ok) {
                blocked = true;
                break;
            }
            core_.set_writing_bytes(0);
            return false;
        }
        core_.set_writing_bytes(write_buffer_.size() - write_offset_);
        if (write_offset_ == write_buffer_.size() && (release_written_ || write_buffer_.capacity() > (4u << 20))) {
            std::string().swap(write_buffer_);  // give back the memory of a burst, or of the handshake
            write_offset_ = 0;
            release_written_ = false;
        }
        // The queue may have filled while the write buffer drained: go round again, or the
        // engine would wait without asking for POLLOUT while frames sit in the queue.
        if (blocked) return true;
        if (!more_queued) {
            if (direct_sends_ && write_offset_ == write_buffer_.size()) core_.release_for_owner();
            return true;
        }
    }
}

void ClientDriver::after_io() {
    switch (phase_) {
        case Phase::Handshake:
            take_http_answer();
            if (phase_ != Phase::Handshake) return after_io();  // a pipelined upgrade behind it opened
            if (!flush()) {
                finish();
                return;
            }
            // Requests held back while answers piled up, now that those are written. Each
            // round wrote bytes (or it would still be held back), so this ends.
            while (parse_held_back_ && write_buffer_.size() - write_offset_ < kMaxPendingHttpBytes) {
                parse_requests();
                if (phase_ == Phase::Open) {
                    take_early_frames();
                    return after_io();
                }
                if (phase_ != Phase::Handshake) return;
                if (!flush()) {
                    finish();
                    return;
                }
            }
            if (close_after_write_ && !wants_write()) {
                // Half-close and linger, so the answer is not lost to a reset.
                io_->shutdown_write();
                phase_ = Phase::Lingering;
                linger_deadline_ = Clock::now() + server_.options.close_timeout;
            }
            return;
        case Phase::Open: {
            // The event loop's mark for sends made on its thread (ClientCore::notify_sent): this
            // takes the queue and the requests now, so the loop's flush_dirty() can skip us.
            core_.dirty_marked = false;
            take_requests();
            if (!flush()) {
                peer_gone_ = true;
                end(true);
                return;
            }
            const auto state = connection_state().state();
            if (state != Connection::State::Open && closing_since_ == Clock::time_point{}) closing_since_ = Clock::now();
            // (Not while a direct send holds the socket: our close frame has yet to go out.)
            if (state == Connection::State::Closed && !wants_write() && !awaiting_writer_) end(false);
            return;
        }
        case Phase::TlsHandshake:
        case Phase::Lingering:
        case Phase::Done: return;
    }
}

void ClientDriver::end(bool peer_gone) {
    if (phase_ != Phase::Open) return;
    if (!peer_gone && !timed_out_ && !failed_loop_ && !aborted_ && connection_state().state() == Connection::State::Closed) {
        // Section 7.1.1: the server closes TCP first. Half-close and wait briefly for the
        // peer's FIN, so our close frame is not lost to a reset caused by unread input.
        io_->shutdown_write();
        phase_ = Phase::Lingering;
        linger_deadline_ = Clock::now() + server_.options.close_timeout;
        return;
    }
    finish();
}

void ClientDriver::finish() {
    if (phase_ == Phase::Done) return;
    {
        std::lock_guard lock(core_.mutex);
        core_.accepting = false;
        core_.direct_transport = nullptr;  // no direct send starts from now on
        core_.queue.clear();
        core_.queue_committed = 0;
        core_.set_queued_bytes(0);
        if (auto* rare = core_.rare_if_made()) {
            rare->http_awaited = 0;  // a responder still held somewhere now answers false
            rare->http_answer.reset();
        }
    }
    // One may still be writing: the socket and its transport stay until it is done (one
    // non-blocking sendmsg), or its bytes could reach a connection that reuses the number.
    while ((core_.writer.load(std::memory_order_acquire) & ClientCore::kDirectWriter) != 0) std::this_thread::yield();
    // Whatever still runs on this stack after finish() (a caller up the chain that was
    // reading when a write failed) finds a transport that is closed, never a dangling one
    // nor a descriptor number the kernel may already have given to another connection.
    io_ = &closed_transport();
    transport_.reset();  // before the socket it uses
    socket_.reset();
    core_.set_writing_bytes(0);
    publish_message_held(0);
    phase_ = Phase::Done;
    if (counted_) {
        server_.open_count.fetch_sub(1);
        counted_ = false;
    }
    if (!opened_) return;

    const Connection& connection = connection_state();
    CloseCode code = CloseCode::Abnormal;
    std::string reason;
    if (connection.close_received() || connection.failed() || connection.state() == Connection::State::Closed) {
        code = connection.close_code();
        reason = connection.close_reason();
    }
    if (connection.close_sent() && !connection.close_received() && !connection.failed()) {
        // We asked to close and the peer never answered.
        code = CloseCode::Abnormal;
        reason = timed_out_ ? "close handshake timed out" : "connection lost during the close handshake";
    } else if (timed_out_) {
        reason = "no pong within pong_timeout";
    } else if (aborted_ && !connection.close_received()) {
        reason = "cut at server shutdown";
    } else if (code == CloseCode::Abnormal && reason.empty()) {
        reason = "connection lost";
    }
    core_.open.store(false, std::memory_order_release);
    server_.invoke(client_.get(), "on_connection_close", server_.on_close, *client_, code, std::string_view{reason});
}

}  // namespace websock::detail
