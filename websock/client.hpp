// WebSocketClient: one WebSocket connection to a server, the client's side of RFC 6455.
//
// connect() opens it on the calling thread (TCP connect, then the HTTP upgrade, each under a
// deadline) and returns once the server's 101 has been validated. It then starts the
// client's own I/O thread, which does everything else: it polls the socket and an eventfd,
// parses frames, runs the callbacks (one at a time, in order), answers pings, writes what
// was sent and runs the close handshake. The thread ends when the connection does; the
// destructor closes the connection if it is still open and joins the thread, so no thread
// outlives the object.
//
// Two ways to read: register on_message (called on the I/O thread), or leave it unset and
// call receive_for() / receive_until(), which block until a message arrives, the deadline
// passes or the connection ends, and say which (receive() is the same without saying).
//
// What Queued promises: a send (or ping) that returned Queued is written before any close
// frame of this connection, whichever side or event caused it: our close(), our answer to the
// server's close, or the close that fails the connection when the server breaks RFC 6455 (a
// reply sent from on_message goes out even when the server's next frame, in the same read,
// is a violation). Once that close frame is decided on, sends return Closed. Two things still
// lose queued messages: the connection ending before they are written (TCP fails, or
// pong_timeout or close_timeout passes), and an outbound queue overflow under
// QueueFullPolicy::Close, which discards what waits and closes with 1008 (as the server does).
//
// Threads: on_open, on_message, on_ping, on_pong and on_close run on the I/O thread;
// on_error runs where the error happened (connect()'s failures on the thread that called
// connect(), the rest on the I/O thread, a queue overflow on the sending thread). send*,
// ping, close, receive, wait_closed and the queries are safe from any thread, including
// from inside a callback. Register callbacks before connect(). Do not destroy the client
// from inside its own callback.
//
//   websock::WebSocketClient client;
//   client.on_message([](std::string_view data, websock::MessageType) { std::puts(std::string(data).c_str()); });
//   if (!client.connect("ws://127.0.0.1:8080/chat")) return 1;   // the reason went to on_error
//   client.send("hello");
//   client.close();
//   client.wait_closed();
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "websock/codec/deflate.hpp"
#include "websock/export.hpp"
#include "websock/http.hpp"
#include "websock/options.hpp"
#include "websock/types.hpp"

namespace websock {

namespace detail {
struct ClientConnectionCore;
}  // namespace detail

/// Why receive_for() or receive_until() returned.
enum class ReceiveStatus : std::uint8_t {
    Message,  ///< a message was taken (it may be one left over from a connection that has ended)
    Timeout,  ///< the deadline passed with the connection still open: asking again may get one
    Closed,   ///< nothing is left and the connection has ended (or never opened): none will come
};

/// What receive_for() and receive_until() return: a message, or why there is none.
struct ReceiveResult {
    ReceiveStatus status = ReceiveStatus::Timeout;  ///< see ReceiveStatus
    Message message;  ///< the message when status is Message; empty otherwise
    /// status is Message.
    bool has_message() const noexcept { return status == ReceiveStatus::Message; }
};

/// Who sent the first close frame of a connection that has ended.
enum class CloseInitiator : std::uint8_t {
    Local,     ///< this client: close() (or the destructor), an outbound queue overflow under
               ///< QueueFullPolicy::Close (1008), or failing the connection because the server
               ///< broke RFC 6455 (1002, 1007, 1009: the code is ours). Code Abnormal (1006)
               ///< here means the server never completed the handshake (close_timeout, TCP lost).
    Remote,    ///< the server; code and reason are the server's
    Abnormal,  ///< nobody: TCP ended first (the server dropped it, a read or write failed, no pong
               ///< within pong_timeout); the code is Abnormal (1006)
};

WEBSOCK_API std::string_view to_string(CloseInitiator initiator) noexcept;  ///< "local", "remote", "abnormal"

/// How a connection ended, as close_status() reports it.
struct CloseStatus {
    CloseCode code = CloseCode::Abnormal;  ///< what on_close got
    std::string reason;                    ///< what on_close got
    CloseInitiator initiator = CloseInitiator::Abnormal;  ///< who sent the first close frame
};

/// Every setting of a WebSocketClient, each with its default and the reason for it.
struct ClientOptions {
    // --- opening ---
    Milliseconds connect_timeout{10000};    ///< TCP connect, over every address the host resolves to
                                            ///< (name resolution itself is not bounded: getaddrinfo blocks)
    Milliseconds handshake_timeout{10000};  ///< from TCP connected until the server's 101 is validated
    std::size_t max_handshake_bytes = 8 * 1024;  ///< the server's status line + headers (servers send < 1 KiB)
    bool tcp_nodelay = true;                ///< small messages go out at once (no Nagle delay)

    /// permessage-deflate (RFC 7692): offered when `deflate.enabled`; the server's answer is
    /// checked, and a response we did not ask for fails the connect.
    codec::DeflateOptions deflate;

    // --- wss:// ---
    bool tls_verify = true;      ///< check the server's certificate chain and host name (turn off only for tests)
    std::string tls_ca_file;     ///< PEM file of trusted CAs; empty: the system's (/etc/ssl/certs)

    // --- the upgrade request ---
    std::vector<std::string> subprotocols;  ///< Sec-WebSocket-Protocol, in our order of preference;
                                            ///< the server's choice is subprotocol()
    bool require_subprotocol = true;        ///< having offered some, fail when the server picks none
                                            ///< (as browsers and Node's ws do); false accepts that
    std::string origin;                     ///< Origin header; empty: none (a browser always sends one)
    std::string basic_auth_user;            ///< non-empty: send Authorization: Basic (RFC 7617). Over ws://
    std::string basic_auth_password;        ///< the password crosses the network in the clear.
                                            ///< user:password@ in the URL does the same when these are empty
    HttpHeaders extra_headers;              ///< more request headers, e.g. {"Authorization", "Bearer ..."};
                                            ///< the handshake's own headers cannot be replaced

    // --- messages ---
    std::size_t max_frame_bytes = 16u << 20;    ///< one received frame's payload; 1009 past it
    std::size_t max_message_bytes = 16u << 20;  ///< a reassembled received message; 1009 past it
    std::size_t read_buffer_bytes = 64 * 1024;  ///< one read(2) takes at most this much
    std::size_t max_receive_queue_bytes = 64u << 20;  ///< messages waiting for receive() (no
                                                      ///< on_message set); past it the client stops
                                                      ///< reading, so TCP slows the server down

    // --- outbound ---
    std::size_t max_outbound_queue_bytes = 64u << 20;  ///< bytes sent but not yet written to a
                                                        ///< slow server; above a 16 MiB message plus slack
    QueueFullPolicy queue_full_policy = QueueFullPolicy::Close;  ///< past it: close with 1008, or drop

    // --- liveness ---
    Milliseconds ping_interval{0};     ///< ping a server silent this long; 0 (the default) turns it off
    Milliseconds pong_timeout{10000};  ///< after such a ping, no pong or data this long: drop it (1006)
    Milliseconds close_timeout{5000};  ///< after a close frame (ours or the server's): wait this long
                                       ///< for the close handshake and the server's TCP close
};

/// One WebSocket connection to a server (see the top of client.hpp for threads and what
/// Queued promises, and ClientOptions for every setting).
class WEBSOCK_API WebSocketClient {
public:
    using OpenHandler = std::function<void()>;  ///< see on_open()
    using MessageHandler = std::function<void(std::string_view data, MessageType type)>;  ///< see on_message()
    using ErrorHandler = std::function<void(const Error& error)>;  ///< see on_error()
    using CloseHandler = std::function<void(CloseCode code, std::string_view reason)>;  ///< see on_close()
    using ControlHandler = std::function<void(std::string_view payload)>;  ///< see on_ping(), on_pong()

    /// A client with these settings, not connected yet (see connect()).
    explicit WebSocketClient(ClientOptions options = {});
    /// Closes the connection if it is open (1000), waits for the I/O thread to finish the
    /// close handshake (at most about close_timeout, plus any callback still running) and
    /// joins it.
    ~WebSocketClient();
    WebSocketClient(const WebSocketClient&) = delete;
    WebSocketClient& operator=(const WebSocketClient&) = delete;

    // Callbacks; every one is optional. Each returns *this so they chain.
    WebSocketClient& on_open(OpenHandler handler);        ///< first thing the I/O thread does
    WebSocketClient& on_message(MessageHandler handler);  ///< whole messages; none set: receive() gets them
    WebSocketClient& on_error(ErrorHandler handler);      ///< connect() failures, protocol errors, queue overflows
    WebSocketClient& on_close(CloseHandler handler);      ///< exactly once per successful connect()
    WebSocketClient& on_ping(ControlHandler handler);     ///< after the pong has been queued
    WebSocketClient& on_pong(ControlHandler handler);     ///< a pong from the server

    /// Open `ws://host[:port][/path][?query]` (host: a name, an IPv4 literal or [IPv6]).
    /// Blocks until the server's 101 response has been validated, or until it fails:
    /// then returns false, and on_error and last_error() say why. wss:// runs TLS 1.2 or 1.3
    /// and checks the server's certificate (see ClientOptions::tls_verify). A client whose
    /// connection has ended may connect again.
    bool connect(std::string_view url);

    /// Queued: it will be written, in order, before any close frame (see the top of this
    /// file); Closed: a close frame has been decided on or the connection has ended, and it
    /// will never be written; Dropped: the queue is full under QueueFullPolicy::Drop.
    SendResult send(std::string_view text);  ///< a text message (must be valid UTF-8)
    SendResult send_binary(std::string_view bytes);  ///< a binary message
    SendResult send(std::string_view data, MessageType type);  ///< either kind
    SendResult ping(std::string_view payload = {});  ///< at most 125 bytes (else Dropped)
    /// Start the close handshake, after everything sent before. Queued, or Closed when the
    /// connection is already closing or closed; a code that may not be sent (1005, 1006,
    /// 1015, < 1000, 1016-2999) is refused with Dropped. Returns at once; see wait_closed().
    SendResult close(CloseCode code = CloseCode::Normal, std::string_view reason = {});

    /// The next message (only when no on_message is set): blocks until one arrives
    /// (Message), the timeout or deadline passes with the connection still open (Timeout), or
    /// the connection has ended with no message left (Closed, at once if it already has).
    /// Messages left when the connection ends can still be taken (until the next connect()).
    /// Inside a callback they do not wait: Timeout when nothing is there yet.
    ReceiveResult receive_for(Milliseconds timeout);
    ReceiveResult receive_until(std::chrono::steady_clock::time_point deadline);  ///< as receive_for(), until a deadline
    /// The same, without saying why there is no message: nullopt for Timeout and Closed.
    std::optional<Message> receive(Milliseconds timeout);
    /// No timeout: nullopt only once the connection has ended with no message left.
    std::optional<Message> receive();
    /// Wait until the connection has ended and on_close has run; true if it has (also when
    /// never connected). Inside a callback it does not wait (and says false).
    bool wait_closed(Milliseconds timeout);
    void wait_closed();  ///< as wait_closed(Milliseconds), without a timeout

    /// True from a successful connect() until the connection ends (just before on_close).
    bool is_open() const noexcept;
    /// The subprotocol the server chose, empty for none (set by connect()).
    const std::string& subprotocol() const noexcept;
    /// Bytes sent but not yet written to the socket.
    std::size_t queued_bytes() const noexcept;
    /// The last error reported to on_error (connect()'s failure reason, say); empty message if none.
    Error last_error() const;
    /// How the last connection ended, once on_close has run: the close code and reason (as
    /// on_close got them) and who started the closing; nullopt before that.
    std::optional<CloseStatus> close_status() const;

    const ClientOptions& options() const noexcept;  ///< as constructed

private:
    std::unique_ptr<detail::ClientConnectionCore> core_;
};

}  // namespace websock
