// What WebSocketClient (websock/client.cpp, every thread's side) and its I/O thread
// (detail/client_io.cpp) share: the stream under the connection, the outbound queue, the
// inbox for receive(), and how the connection ended.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "websock/client.hpp"
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
///
/// The promise of SendResult::Queued: `accepting` is true exactly while a close frame has not
/// been decided on. The I/O thread, when it decides on one (ours, the answer to the server's,
/// or the one that fails the connection), clears `accepting` and takes the queue under one
/// lock, and writes what it took before the close frame. So a send either lands in the queue
/// before that moment (Queued: it goes out, ahead of the close frame) or after (Closed).
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
    bool accepting = false;           // (guarded) sends accepted: open, and no close frame decided on
    bool running = false;             // (guarded) from a successful connect() until on_close has run
    std::deque<Message> inbox;        // (guarded) messages for receive()
    std::size_t inbox_bytes = 0;      // (guarded)
    std::optional<CloseStatus> close_status;  // (guarded)
    Error last_error{ErrorKind::Io, {}};       // (guarded)

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

    /// Queue a send, ping or close for the I/O thread (any thread).
    SendResult enqueue(Outgoing item);
};

/// The body of the client's I/O thread: pumps the connection until it ends and on_close has
/// run. Never throws.
void run_io_thread(ClientConnectionCore& core) noexcept;

}  // namespace websock::detail
