// WebSocketServer: the thread-per-client server of the user's design.
//
// serve_forever() runs a blocking accept loop on the calling thread. Every accepted socket
// gets its own thread, which does the HTTP upgrade (with a deadline), then reads and parses
// frames and calls that client's callbacks, one at a time and in order. All threads are
// owned by the server and joined before serve_forever() returns.
//
// Threads: callbacks run on the client's own thread (on_server_destruct on the thread of
// serve_forever()). Every public member below may be called from any thread, including from
// inside any callback, unless its comment says otherwise (duplicate_listen_socket()).
// Register callbacks before serve_forever().
#pragma once

#include <any>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "websock/codec/frame.hpp"
#include "websock/export.hpp"
#include "websock/handshake_policy.hpp"
#include "websock/http.hpp"
#include "websock/options.hpp"
#include "websock/types.hpp"

namespace websock {

namespace detail {
struct ClientCore;
struct ServerCore;
}  // namespace detail

/// One connected WebSocket peer, as the server sees it. Handed to callbacks by reference;
/// keep a `std::shared_ptr<Client>` (from `shared_from_this()` or `clients()`) to use it
/// later from another thread. Every method is thread-safe; after the connection closes,
/// sends return `SendResult::Closed` and the object stays valid while referenced.
class WEBSOCK_API Client : public std::enable_shared_from_this<Client> {
public:
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    std::uint64_t id() const noexcept;                  ///< unique within the server, from 1
    const std::string& peer_address() const noexcept;   ///< "127.0.0.1:50412", "[::1]:50412" or "unix"
    const HttpRequest& request() const noexcept;        ///< the upgrade request (path, headers)
    std::string_view path() const noexcept { return request().path; }  ///< the upgrade request's path
    /// A header of the upgrade request (case-insensitive name).
    std::optional<std::string_view> header(std::string_view name) const noexcept { return request().header(name); }
    /// The subprotocol chosen at the handshake, empty for none.
    const std::string& subprotocol() const noexcept;

    /// A slot for the program's own per-client data. Not synchronised: set it in
    /// on_connection_open and read it from the client's callbacks, or guard it yourself.
    std::any& user_data() noexcept;

    /// Queued (it will be written, in order), Closed (the client is closing or gone), or
    /// Dropped (the outbound queue is full under QueueFullPolicy::Drop).
    SendResult send(std::string_view text);  ///< a text message (must be valid UTF-8)
    SendResult send_binary(std::string_view bytes);  ///< a binary message; results as send()
    SendResult send(std::string_view data, MessageType type);  ///< either kind; results as send()
    /// Queue a frame that is already encoded (see `encode_message`), so a broadcast encodes once.
    SendResult send_encoded(std::string_view frame_bytes);
    SendResult ping(std::string_view payload = {});  ///< at most 125 bytes
    /// Start the close handshake. Takes effect on the client's thread (after the running
    /// callback returns, if called from one). Calling it twice is harmless.
    void close(CloseCode code = CloseCode::Normal, std::string_view reason = {});
    /// True from the upgrade until the connection closes (before on_connection_close).
    bool is_open() const noexcept;
    /// Bytes waiting in the outbound queue.
    std::size_t queued_bytes() const noexcept;

private:
    friend struct detail::ClientCore;
    friend struct detail::ServerCore;
    WEBSOCK_LOCAL explicit Client(std::unique_ptr<detail::ClientCore> core);
    SendResult send_compressed(std::string_view data, codec::Opcode opcode);
    std::unique_ptr<detail::ClientCore> core_;
};

/// Answers one plain HTTP request later, from any thread: a long poll, or a request that
/// waits on another service. Handed to `on_http_request_async`. While a request waits, its
/// connection reads nothing more (pipelined requests keep their order).
class WEBSOCK_API HttpResponder {
public:
    ~HttpResponder();
    HttpResponder(const HttpResponder&) = delete;
    HttpResponder& operator=(const HttpResponder&) = delete;

    /// Send the response. Only the first call counts; returns false when the request was
    /// already answered, its connection is gone, or http_response_timeout passed (the
    /// server then answered 503 itself).
    bool respond(HttpResponse response);
    /// True once the request needs no answer any more: answered, timed out, or disconnected.
    bool answered() const noexcept;
    const std::string& peer_address() const noexcept;  ///< who sent the request, as HttpRequest::peer_address

private:
    friend struct detail::ClientCore;
    struct State;
    explicit HttpResponder(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

/// Encode a whole message as one unmasked server frame, for `send_encoded`.
WEBSOCK_API std::string encode_message(std::string_view data, MessageType type);

/// The WebSocket server: listens, upgrades, and calls the registered callbacks for each
/// client (see the top of server.hpp for threads, and ServerOptions for every setting).
class WEBSOCK_API WebSocketServer {
public:
    using OpenHandler = std::function<void(Client&)>;  ///< see on_connection_open()
    using DataHandler = std::function<void(Client&, std::string_view data, MessageType type)>;  ///< see on_data_receive()
    using ErrorHandler = std::function<void(Client* client, const Error& error)>;  ///< client is null for server-level errors
    using CloseHandler = std::function<void(Client&, CloseCode code, std::string_view reason)>;  ///< see on_connection_close()
    using ControlHandler = std::function<void(Client&, std::string_view payload)>;  ///< see on_ping(), on_pong()
    using DestructHandler = std::function<void()>;  ///< see on_server_destruct()
    /// Answers a plain (non-upgrade) HTTP request on the same port.
    using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
    /// Answers a plain HTTP request through the responder, now or later, from any thread.
    using AsyncHttpHandler = std::function<void(const HttpRequest&, std::shared_ptr<HttpResponder>)>;
    /// Decides a valid upgrade request after ServerOptions::policy accepted it. The decision
    /// it is handed back starts from the policy's (its chosen subprotocol included).
    using HandshakeHandler = std::function<HandshakeDecision(const HandshakeRequest&, HandshakeDecision policy_decision)>;

    /// A server with these settings; it does nothing until listen() or serve_forever().
    explicit WebSocketServer(ServerOptions options = {});
    ~WebSocketServer();  ///< stops the server and waits for it, if it is still running
    WebSocketServer(const WebSocketServer&) = delete;
    WebSocketServer& operator=(const WebSocketServer&) = delete;

    // Callbacks; every one is optional. Each returns *this so they chain.
    WebSocketServer& on_connection_open(OpenHandler handler);  ///< once the 101 is queued, before any message
    WebSocketServer& on_data_receive(DataHandler handler);  ///< whole messages, text or binary
    WebSocketServer& on_error(ErrorHandler handler);  ///< failures of a client or of the server (rate-limited)
    WebSocketServer& on_connection_close(CloseHandler handler);  ///< exactly once per open
    WebSocketServer& on_server_destruct(DestructHandler handler);  ///< once, as serve_forever() ends
    WebSocketServer& on_ping(ControlHandler handler);  ///< after the pong has been queued
    WebSocketServer& on_pong(ControlHandler handler);  ///< a pong from the client
    WebSocketServer& on_http_request(HttpHandler handler);  ///< none set: 426 Upgrade Required
    /// Like on_http_request, but the answer may come later (see HttpResponder). When both are
    /// set, this one is used.
    WebSocketServer& on_http_request_async(AsyncHttpHandler handler);
    WebSocketServer& on_handshake(HandshakeHandler handler);  ///< none set: the policy decides

    /// Bind and listen now, so that port() is known before serve_forever(). Called by
    /// serve_forever() if not yet done. Returns false (and reports to on_error) on failure.
    bool listen();
    /// Accept and serve until stop(). Returns after every client thread has ended and
    /// on_server_destruct has run. Returns false if the server could not listen, or could not
    /// start (the event loop engine without the epoll set or eventfd of its first loop;
    /// on_error says which).
    bool serve_forever();
    /// Ask the server to stop: stop accepting, close every client with 1001, wait up to
    /// shutdown_timeout, cut the rest. Safe from any thread and from signal-free contexts;
    /// returns at once (serve_forever() does the waiting).
    void stop() noexcept;
    /// The same, closing every client with this code and reason instead of 1001 "server
    /// shutting down": 1012 (ServiceRestart) with a hint to reconnect, for a restart. The
    /// reason is cut to the 123 bytes a close frame holds. The first stop() decides the code.
    /// Connections still in their HTTP phase are closed at once, as by stop().
    void stop(CloseCode code, std::string_view reason) noexcept;
    /// The same, giving clients `drain_timeout` instead of shutdown_timeout to finish closing
    /// (a restart may wait longer for its clients to leave than a plain stop does).
    void stop(CloseCode code, std::string_view reason, Milliseconds drain_timeout) noexcept;

    /// Stop accepting new connections while the clients already in carry on: connection
    /// attempts wait in the listen backlog (they are not refused) until resume_accepting(),
    /// or until another process that shares the socket accepts them. Takes effect on the
    /// accepting thread's next turn (at once if the server is not serving yet): see
    /// accepting_paused(). Any thread.
    void pause_accepting() noexcept;
    /// Accept again after pause_accepting(). Any thread.
    void resume_accepting() noexcept;
    /// True once the latest pause_accepting() holds: the accepting thread has let go of the
    /// listener, and no connection is accepted from then until resume_accepting(). Poll it
    /// (with a deadline) after pause_accepting(). Any thread.
    bool accepting_paused() const noexcept;

    /// A new descriptor for the listening socket (close-on-exec, owned by the caller), to
    /// hand to another process (a successor in a zero-downtime restart takes it as its
    /// ServerOptions::listen_fd). -1 with errno set when there is none (before listen(),
    /// once stopping has closed it). Any thread, but not concurrently with listen(). Once
    /// called, a unix socket's file is left in place when this server stops (the other
    /// process serves it).
    int duplicate_listen_socket() noexcept;

    /// The bound port (useful with port 0; an adopted socket's port), 0 before listen() and
    /// on a unix socket.
    std::uint16_t port() const noexcept;
    /// A snapshot of the open clients.
    std::vector<std::shared_ptr<Client>> clients() const;
    std::size_t client_count() const noexcept;  ///< the open clients, now
    /// Every connection the server holds now: the open clients, and the connections still in
    /// their HTTP phase (an upgrade or plain requests under way, idle keep-alive ones).
    std::size_t connection_count() const noexcept;
    /// Bytes waiting for clients that are behind, past each one's first 32 KiB queued and
    /// 32 KiB being written: what ServerOptions::max_total_outbound_bytes bounds (any thread).
    std::size_t outbound_backlog_bytes() const noexcept;
    /// Bytes of messages being received, past each one's first 64 KiB (counted in whole KiB):
    /// what ServerOptions::max_total_incoming_message_bytes bounds (any thread).
    std::size_t incoming_message_bytes() const noexcept;
    /// Send to every open client, optionally leaving one out. The frame is encoded once.
    /// Returns how many clients accepted it into their queue.
    std::size_t send_all(std::string_view data, MessageType type = MessageType::Text, const Client* except = nullptr);

    const ServerOptions& options() const noexcept;  ///< as constructed

private:
    friend struct detail::ServerCore;  // ServerCore::of(): the internal test seams
    std::unique_ptr<detail::ServerCore> core_;
};

}  // namespace websock
