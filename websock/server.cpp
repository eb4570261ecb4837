// WebSocketServer and Client: the public face of the thread-per-client server. The client
// thread's own loop lives in session.cpp.
#include "websock/server.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include <fmt/format.h>

#include "websock/codec/close.hpp"
#include "websock/codec/frame.hpp"
#include "websock/codec/handshake.hpp"
#include "websock/detail/server_core.hpp"

namespace websock {

using detail::ClientCore;
using detail::ServerCore;

// ---- ClientCore ------------------------------------------------------------------------------

struct HttpResponder::State {
    std::shared_ptr<Client> client;  // keeps the connection's core alive
    std::uint64_t request = 0;       // which request of the connection this answers
    bool keep_alive = false;
    bool head = false;
};

namespace detail {

ClientCore::OverLimit ClientCore::over_limit_locked(std::size_t adding) const noexcept {
    const std::size_t pending = queue.size() + writing_bytes.load(std::memory_order_relaxed);
    if (pending + adding > max_queue_bytes) return OverLimit::ClientQueue;
    // The server's budget is spent by clients that are behind; only they are refused (a
    // client that keeps up adds nothing to the total and is never cut for the others).
    if (server != nullptr && pending + adding > 2 * kUncountedBacklog &&
        server->outbound_backlog.load(std::memory_order_relaxed) + adding > server->options.max_total_outbound_bytes)
        return OverLimit::ServerBudget;
    return OverLimit::No;
}

std::string ClientCore::over_limit_text(OverLimit why) const {
    if (why == OverLimit::ServerBudget)
        return fmt::format("the server's outbound budget of {} bytes is spent by clients that are behind",
                           server != nullptr ? server->options.max_total_outbound_bytes : 0);
    return fmt::format("outbound queue over {} bytes", max_queue_bytes);
}

void ClientCore::publish_backlog(std::atomic<std::size_t>& counter, std::size_t bytes) noexcept {
    const std::size_t before = counter.load(std::memory_order_relaxed);
    counter.store(bytes, std::memory_order_relaxed);
    const auto counted = [](std::size_t n) { return n > kUncountedBacklog ? n - kUncountedBacklog : 0; };
    const std::size_t was = counted(before);
    const std::size_t now = counted(bytes);
    if (server == nullptr || was == now) return;
    if (now > was) server->outbound_backlog.fetch_add(now - was, std::memory_order_relaxed);
    else server->outbound_backlog.fetch_sub(was - now, std::memory_order_relaxed);
}

SendResult ClientCore::enqueue(std::string_view frame_bytes) {
    bool overflowed = false;
    OverLimit over_limit = OverLimit::No;
    Transport* direct = nullptr;
    {
        std::lock_guard lock(mutex);
        if (!accepting) return SendResult::Closed;
        if ((direct = claim_direct_locked(frame_bytes.size())) != nullptr) {
            // written below, without the lock
        } else if ((over_limit = over_limit_locked(frame_bytes.size())) != OverLimit::No) {
            overflowed = true;
            if (policy == QueueFullPolicy::Close) {
                // Tell the client why it is cut off (1008) rather than let it miss messages.
                accepting = false;
                drop_queued_locked();
                close_for_full_queue = true;
            }
        } else {
            queue.append(frame_bytes);
            set_queued_bytes(queue.size());
        }
    }
    if (direct != nullptr) {
        write_direct(*direct, frame_bytes, {});
        return SendResult::Queued;
    }
    if (overflowed) {
        const bool closing = policy == QueueFullPolicy::Close;
        if (server != nullptr)
            server->report(self, ErrorKind::QueueFull,
                           fmt::format("client {}: {}; {}", id, over_limit_text(over_limit),
                                       closing ? "closing it with 1008" : "message dropped"));
        if (closing) {
            wake();
            return SendResult::Closed;
        }
        return SendResult::Dropped;
    }
    notify_sent();
    return SendResult::Queued;
}

Transport* ClientCore::claim_direct_locked(std::size_t bytes) noexcept {
    // A send larger than the queue's limit takes the queue's path, so the limit's policy
    // applies to it as before; so does the client thread's own send (it writes in batches).
    if (direct_transport == nullptr || !accepting || !queue.empty() || bytes > max_queue_bytes ||
        std::this_thread::get_id() == owner)
        return nullptr;
    std::uint8_t nobody = 0;
    if (!writer.compare_exchange_strong(nobody, kDirectWriter, std::memory_order_acquire, std::memory_order_relaxed))
        return nullptr;
    return direct_transport;
}

void ClientCore::write_direct(Transport& transport, std::string_view header, std::string_view payload) noexcept {
    const auto result = transport.write_pair(header.data(), header.size(), payload.data(), payload.size());
    // Any failure counts as nothing written: the client thread meets a real error on its own
    // next write, and a short or refused write leaves it the rest, in order.
    std::size_t written = result.status == IoResult::Status::Ok ? result.bytes : 0;
    const bool all_written = written == header.size() + payload.size();
    if (!all_written) {
        const std::string_view header_rest = written < header.size() ? header.substr(written) : std::string_view{};
        const std::string_view payload_rest = payload.substr(written < header.size() ? 0 : written - header.size());
        std::lock_guard lock(mutex);
        try {
            // At the front: sends queued while this one wrote came after it. The frame is
            // partly on the wire, so its rest must follow whatever the limit says.
            queue.insert(0, payload_rest);
            queue.insert(0, header_rest);
            queue_committed = header_rest.size() + payload_rest.size();  // the queue was empty at the claim
            set_queued_bytes(queue.size());
        } catch (const std::exception&) {
            // Out of memory with half a frame on the wire: nothing valid can follow it.
            abort.store(true);
        }
    }
    // If the client thread asked for the socket meanwhile, it keeps its place: the waiting
    // mark stays, so no other sender takes the socket before it does (claim_direct_locked
    // needs the token free), and it is woken to write.
    const std::uint8_t before = writer.fetch_and(kOwnerWaits, std::memory_order_acq_rel);
    if (!all_written || (before & kOwnerWaits) != 0) wake();
}

void ClientCore::request_close(CloseCode code, std::string_view reason) {
    {
        std::lock_guard lock(mutex);
        if (!accepting || close_requested()) return;
        rare().close_request.emplace(code, std::string(reason));
    }
    wake();
}

std::shared_ptr<HttpResponder> ClientCore::make_responder(std::shared_ptr<Client> client, std::uint64_t request,
                                                          bool keep_alive, bool head) {
    auto state = std::make_unique<HttpResponder::State>();
    state->client = std::move(client);
    state->request = request;
    state->keep_alive = keep_alive;
    state->head = head;
    return std::shared_ptr<HttpResponder>(new HttpResponder(std::move(state)));
}

namespace {

std::string suppressed_message(const ReportLimiter::Suppressed& held_back) {
    return fmt::format("{} more {} error{} not reported in the last second (ServerOptions::max_error_reports_per_second)",
                       held_back.count, to_string(held_back.kind), held_back.count == 1 ? " was" : "s were");
}

}  // namespace

void ServerCore::report(Client* client, ErrorKind kind, std::string message) noexcept {
    if (!on_error) return;
    try {
        std::vector<ReportLimiter::Suppressed> ended;
        const bool admitted = report_limiter.admit(kind, ReportLimiter::Clock::now(), ended);
        for (const auto& held_back : ended) on_error(nullptr, Error{held_back.kind, suppressed_message(held_back)});
        if (admitted) on_error(client, Error{kind, std::move(message)});
    } catch (...) {
        // An error handler that throws (or no memory left for the message) has nowhere
        // left to report to.
    }
}

void ServerCore::report_suppressed(bool all) noexcept {
    if (!on_error || !report_limiter.pending()) return;
    try {
        std::vector<ReportLimiter::Suppressed> ended;
        if (all) report_limiter.take_all(ended);
        else report_limiter.take_ended(ReportLimiter::Clock::now(), ended);
        for (const auto& held_back : ended) on_error(nullptr, Error{held_back.kind, suppressed_message(held_back)});
    } catch (...) {
    }
}

}  // namespace detail

// ---- HttpResponder -----------------------------------------------------------------------------

HttpResponder::HttpResponder(std::unique_ptr<State> state) : state_(std::move(state)) {}
HttpResponder::~HttpResponder() = default;

const std::string& HttpResponder::peer_address() const noexcept { return state_->client->peer_address(); }

bool HttpResponder::respond(HttpResponse response) {
    auto& core = detail::ServerCore::core(*state_->client);
    auto& rare = core.rare();  // made already: the driver numbered this request in it
    {
        std::lock_guard lock(core.mutex);
        if (rare.http_awaited != state_->request || rare.http_answer) return false;
    }
    // Serialise outside the lock; a second respond() racing this one loses below.
    if (state_->head) {
        const std::size_t length = response.body.size();
        response.body.clear();
        response.header("Content-Length", std::to_string(length));
    }
    const bool closes = detail::response_closes(response);
    std::string bytes = serialize_response(response, state_->keep_alive && !closes);
    {
        std::lock_guard lock(core.mutex);
        if (rare.http_awaited != state_->request || rare.http_answer) return false;
        rare.http_answer = std::move(bytes);
        rare.http_answer_closes = closes;
    }
    core.notify_sent();
    return true;
}

bool HttpResponder::answered() const noexcept {
    auto& core = detail::ServerCore::core(*state_->client);
    const auto* rare = core.rare_if_made();  // made already: the driver numbered this request in it
    std::lock_guard lock(core.mutex);
    return rare == nullptr || rare->http_awaited != state_->request || rare->http_answer.has_value();
}

// ---- Client -----------------------------------------------------------------------------------

Client::Client(std::unique_ptr<detail::ClientCore> core) : core_(std::move(core)) { core_->self = this; }
Client::~Client() = default;

std::uint64_t Client::id() const noexcept { return core_->id; }
const std::string& Client::peer_address() const noexcept { return core_->peer; }
const HttpRequest& Client::request() const noexcept { return core_->upgrade_request(); }
const std::string& Client::subprotocol() const noexcept {
    static const std::string none;
    const auto* rare = core_->rare_if_made();
    return rare != nullptr ? rare->subprotocol : none;
}
std::any& Client::user_data() noexcept { return core_->user_data; }
bool Client::is_open() const noexcept { return core_->open.load(std::memory_order_acquire); }
std::size_t Client::queued_bytes() const noexcept {
    return core_->queued_bytes.load(std::memory_order_relaxed) + core_->writing_bytes.load(std::memory_order_relaxed);
}

SendResult Client::send(std::string_view data, MessageType type) {
    auto& core = *core_;
    const auto opcode = type == MessageType::Text ? codec::Opcode::Text : codec::Opcode::Binary;
    if (core.extension() != nullptr) return send_compressed(data, opcode);
    // Encode straight into the queue: no allocation per message once the queue has grown.
    std::uint8_t header[codec::kMaxFrameHeader];
    const std::size_t header_size = codec::encode_frame_header(header, opcode, true, data.size());
    bool overflowed = false;
    detail::Transport* direct = nullptr;
    {
        std::lock_guard lock(core.mutex);
        if (!core.accepting) return SendResult::Closed;
        if ((direct = core.claim_direct_locked(header_size + data.size())) != nullptr) {
            // written below, without the lock
        } else if (core.over_limit_locked(header_size + data.size()) != detail::ClientCore::OverLimit::No) {
            overflowed = true;
        } else {
            core.queue.append(reinterpret_cast<const char*>(header), header_size);
            core.queue.append(data);
            core.set_queued_bytes(core.queue.size());
        }
    }
    if (direct != nullptr) {
        core.write_direct(*direct, {reinterpret_cast<const char*>(header), header_size}, data);
        return SendResult::Queued;
    }
    if (overflowed) return core.enqueue(encode_message(data, type));  // the slow path applies the policy
    core.notify_sent();
    return SendResult::Queued;
}

SendResult Client::send_compressed(std::string_view data, codec::Opcode opcode) {
    auto& core = *core_;
    auto& rare = *core.rare_if_made();  // the extension is in it
    std::string frame;
    bool overflowed_compressed = false;
    auto over_limit = detail::ClientCore::OverLimit::No;
    {
        // Compress under the lock: with context takeover, messages must be compressed in
        // the order they go on the wire.
        std::lock_guard lock(core.mutex);
        if (!core.accepting) return SendResult::Closed;
        rare.encode_scratch.clear();
        const bool compressed = rare.extension->encode(data, rare.encode_scratch);
        const std::string_view payload = compressed ? std::string_view(rare.encode_scratch) : data;
        std::uint8_t header[codec::kMaxFrameHeader];
        const std::size_t header_size = codec::encode_frame_header(header, opcode, true, payload.size(), nullptr,
                                                                   compressed ? rare.extension->rsv_bits() : 0);
        over_limit = core.over_limit_locked(header_size + payload.size());
        if (over_limit == detail::ClientCore::OverLimit::No) {
            core.queue.append(reinterpret_cast<const char*>(header), header_size);
            core.queue.append(payload);
            core.set_queued_bytes(core.queue.size());
            if (rare.encode_scratch.capacity() > (1u << 20)) std::string().swap(rare.encode_scratch);
            frame.clear();
        } else if (!compressed) {
            frame.assign(reinterpret_cast<const char*>(header), header_size);
            frame.append(payload);
        } else {
            // The encoder has moved on (deflate's window): dropping this frame would corrupt
            // every later message, so a full queue closes, whatever the policy.
            core.accepting = false;
            core.drop_queued_locked();
            core.close_for_full_queue = true;
            overflowed_compressed = true;
        }
    }
    if (overflowed_compressed) {
        core.server->report(this, ErrorKind::QueueFull,
                            fmt::format("client {}: {}; closing it with 1008", core.id, core.over_limit_text(over_limit)));
        core.wake();
        return SendResult::Closed;
    }
    if (!frame.empty()) return core.enqueue(frame);  // over the limit: the policy decides
    core.notify_sent();
    return SendResult::Queued;
}

SendResult Client::send(std::string_view text) { return send(text, MessageType::Text); }
SendResult Client::send_binary(std::string_view bytes) { return send(bytes, MessageType::Binary); }
SendResult Client::send_encoded(std::string_view frame_bytes) { return core_->enqueue(frame_bytes); }

SendResult Client::ping(std::string_view payload) {
    if (payload.size() > codec::kMaxControlPayload) return SendResult::Dropped;
    std::string frame;
    codec::append_frame(frame, codec::Opcode::Ping, true, payload);
    return core_->enqueue(frame);
}

void Client::close(CloseCode code, std::string_view reason) { core_->request_close(code, reason); }

std::string encode_message(std::string_view data, MessageType type) {
    std::string frame;
    frame.reserve(data.size() + codec::kMaxFrameHeader);
    codec::append_frame(frame, type == MessageType::Text ? codec::Opcode::Text : codec::Opcode::Binary, true, data);
    return frame;
}

// ---- WebSocketServer ----------------------------------------------------------------------------

WebSocketServer::WebSocketServer(ServerOptions options) : core_(std::make_unique<ServerCore>(std::move(options))) {
    if (core_->options.listen_fd >= 0) core_->adopted_fd = detail::Fd(core_->options.listen_fd);
}

WebSocketServer::~WebSocketServer() {
    stop();
    {
        std::unique_lock lock(core_->mutex);
        core_->serve_done.wait(lock, [&] { return !core_->serving.load(); });
    }
    core_->signal_scope.reset();
}

WebSocketServer& WebSocketServer::on_connection_open(OpenHandler handler) { core_->on_open = std::move(handler); return *this; }
WebSocketServer& WebSocketServer::on_data_receive(DataHandler handler) { core_->on_data = std::move(handler); return *this; }
WebSocketServer& WebSocketServer::on_error(ErrorHandler handler) { core_->on_error = std::move(handler); return *this; }
WebSocketServer& WebSocketServer::on_connection_close(CloseHandler handler) { core_->on_close = std::move(handler); return *this; }
WebSocketServer& WebSocketServer::on_server_destruct(DestructHandler handler) { core_->on_destruct = std::move(handler); return *this; }
WebSocketServer& WebSocketServer::on_ping(ControlHandler handler) { core_->on_ping = std::move(handler); return *this; }
WebSocketServer& WebSocketServer::on_pong(ControlHandler handler) { core_->on_pong = std::move(handler); return *this; }
WebSocketServer& WebSocketServer::on_http_request(HttpHandler handler) { core_->on_http = std::move(handler); return *this; }
WebSocketServer& WebSocketServer::on_http_request_async(AsyncHttpHandler handler) {
    core_->on_http_async = std::move(handler);
    return *this;
}
WebSocketServer& WebSocketServer::on_handshake(HandshakeHandler handler) { core_->on_handshake = std::move(handler); return *this; }

const ServerOptions& WebSocketServer::options() const noexcept { return core_->options; }
std::uint16_t WebSocketServer::port() const noexcept { return core_->port.load(); }
std::size_t WebSocketServer::client_count() const noexcept { return core_->open_count.load(); }

std::size_t WebSocketServer::outbound_backlog_bytes() const noexcept {
    return core_->outbound_backlog.load(std::memory_order_relaxed);
}

std::size_t WebSocketServer::incoming_message_bytes() const noexcept {
    return core_->incoming_message_kib.load(std::memory_order_relaxed) * 1024;
}

std::vector<std::shared_ptr<Client>> WebSocketServer::clients() const {
    std::vector<std::shared_ptr<Client>> snapshot;
    std::lock_guard lock(core_->mutex);
    snapshot.reserve(core_->sessions.size());
    for (const auto& [id, session] : core_->sessions)
        if (ServerCore::core(*session.client).open.load(std::memory_order_acquire)) snapshot.push_back(session.client);
    return snapshot;
}

std::size_t WebSocketServer::send_all(std::string_view data, MessageType type, const Client* except) {
    const std::string frame = encode_message(data, type);  // encoded once for everyone
    std::size_t accepted = 0;
    for (const auto& client : clients()) {  // a snapshot: no lock held while sending
        if (client.get() == except) continue;
        if (client->send_encoded(frame) == SendResult::Queued) ++accepted;
    }
    return accepted;
}

namespace {

// SIGINT/SIGTERM, when ServerOptions::handle_signals is on: the handler only sets a flag and
// writes to the server's eventfd, both async-signal-safe; the accept loop does the rest.
std::atomic<ServerCore*> g_signal_server{nullptr};

extern "C" void on_stop_signal(int) {
    if (ServerCore* server = g_signal_server.load()) {
        server->stopping.store(true);
        server->waker.wake();
    }
}

class SignalScope {
public:
    SignalScope(ServerCore& server, bool enabled) : enabled_(enabled) {
        if (!enabled_) return;
        g_signal_server.store(&server);
        struct sigaction action{};
        action.sa_handler = on_stop_signal;
        sigemptyset(&action.sa_mask);
        ::sigaction(SIGINT, &action, &old_int_);
        ::sigaction(SIGTERM, &action, &old_term_);
    }
    ~SignalScope() {
        if (!enabled_) return;
        ::sigaction(SIGINT, &old_int_, nullptr);
        ::sigaction(SIGTERM, &old_term_, nullptr);
        g_signal_server.store(nullptr);
    }
    SignalScope(const SignalScope&) = delete;
    SignalScope& operator=(const SignalScope&) = delete;

private:
    bool enabled_;
    struct sigaction old_int_ {};
    struct sigaction old_term_ {};
};

// ServerOptions::listen_fd: check that it listens, make it ours (non-blocking, close-on-exec)
// and read its port.
detail::ListenResult adopt_listening_socket(detail::Fd fd) {
    detail::ListenResult result;
    int listening = 0;
    socklen_t size = sizeof listening;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0) {
        result.error = fmt::format("ServerOptions::listen_fd {}: {}", fd.get(), std::strerror(errno));
        return result;
    }
    if (listening == 0) {
        result.error = fmt::format("ServerOptions::listen_fd {} is a socket that does not listen", fd.get());
        return result;
    }
    const int status_flags = ::fcntl(fd.get(), F_GETFL);
    const int descriptor_flags = ::fcntl(fd.get(), F_GETFD);
    if (status_flags < 0 || descriptor_flags < 0 || ::fcntl(fd.get(), F_SETFL, status_flags | O_NONBLOCK) != 0 ||
        ::fcntl(fd.get(), F_SETFD, descriptor_flags | FD_CLOEXEC) != 0) {
        result.error = fmt::format("ServerOptions::listen_fd {}: fcntl: {}", fd.get(), std::strerror(errno));
        return result;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
        if (bound.ss_family == AF_INET) result.port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
        if (bound.ss_family == AF_INET6) result.port = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    }
    result.fd = std::move(fd);
    return result;
}

}  // namespace

bool WebSocketServer::listen() {
    auto& core = *core_;
    if (core.listen_fd.valid()) return true;
    if (!core.waker.valid()) {
        core.report(nullptr, ErrorKind::Io, fmt::format("eventfd: {}", std::strerror(errno)));
        return false;
    }
    // Made here, before any client thread exists, and only read afterwards.
    if (core.options.deflate.enabled && !core.deflate_factory) core.deflate_factory = permessage_deflate(core.options.deflate);
    if (core.options.tls.enabled() && !core.tls_context) {
        std::string error;
        core.tls_context =
            detail::make_server_tls_context(core.options.tls.certificate_file, core.options.tls.private_key_file, error);
        if (!core.tls_context) {
            core.report(nullptr, ErrorKind::Tls, error);
            return false;
        }
    }
    const bool adopting = core.options.listen_fd >= 0;
    if (adopting && !core.adopted_fd.valid()) {  // taken by an earlier listen() that failed after it
        core.report(nullptr, ErrorKind::Io, "ServerOptions::listen_fd was already used up by an earlier listen()");
        return false;
    }
    auto result = adopting ? adopt_listening_socket(std::move(core.adopted_fd))
                  : core.options.unix_socket_path.empty()
                      ? detail::listen_tcp(core.options.host, core.options.port, core.options.backlog,
                                           core.options.reuse_address, core.options.reuse_port)
                      : detail::listen_unix(core.options.unix_socket_path, core.options.backlog);
    if (adopting) core.unlink_socket_path.store(false);  // the socket file is not ours
    if (!result.fd.valid()) {
        core.report(nullptr, ErrorKind::Io, result.error);
        return false;
    }
    core.listen_fd = std::move(result.fd);
    // Kept in reserve for the moment the process runs out of descriptors: see accept_one().
    if (!core.reserve_fd.valid()) core.reserve_fd = detail::Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    core.port.store(result.port);
    // Take the signals as soon as we listen: a program may print its address and be sent
    // SIGTERM before it reaches serve_forever().
    if (core.options.handle_signals && !core.signal_scope) core.signal_scope = std::make_shared<SignalScope>(core, true);
    return true;
}

void WebSocketServer::stop() noexcept {
    core_->stopping.store(true);
    core_->waker.wake();
}

bool WebSocketServer::serve_forever() {
    auto& core = *core_;
    if (core.serving.exchange(true)) return false;  // already serving on another thread
    struct ServingFlag {
        ServerCore& core;
        ~ServingFlag() {
            {
                std::lock_guard lock(core.mutex);
                core.serving.store(false);
            }
            core.serve_done.notify_all();
        }
    } serving_flag{core};
    if (!listen()) return false;

    bool served = true;
    if (core.options.engine == Engine::EventLoop) served = core.run_event_loop();
    else core.run_threaded();
    core.report_suppressed(true);
    core.invoke(nullptr, "on_server_destruct", core.on_destruct);
    core.signal_scope.reset();  // the previous handlers are back
    core.stopping.store(false);
    return served;
}

namespace detail {

std::shared_ptr<Client> ServerCore::new_client(int socket) {
    auto client = make_client();  // with its core, in one slab slot
    ClientCore* client_core = &core(*client);
    client_core->server = this;
    client_core->id = next_id.fetch_add(1);
    client_core->peer = peer_address(socket);
    client_core->max_queue_bytes = options.max_outbound_queue_bytes;
    client_core->policy = options.queue_full_policy;
    if (options.engine != Engine::EventLoop) {
        client_core->waker = Waker();  // see ClientCore::waker
        if (const int error = startup_fault_for(StartupCall::ClientWaker, client_wakers_made.fetch_add(1))) {
            client_core->waker = Waker(Waker::NoDescriptor{});
            errno = error;
        }
    }
    if (options.engine != Engine::EventLoop && !client_core->waker.valid()) {
        const int error = errno;
        send_all_before(socket, codec::make_handshake_error(503, "server out of resources"), std::chrono::steady_clock::now());
        report(nullptr, ErrorKind::Limit, fmt::format("eventfd: {}; connection refused with 503", std::strerror(error)));
        return nullptr;
    }
    return client;
}

ServerCore::AcceptStatus ServerCore::accept_one(Fd& socket) {
    auto accept_now = [this] {
        return accept_hook ? accept_hook(listen_fd.get())
                           : ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    };
    for (;;) {
        socket = Fd(accept_now());
        if (socket.valid()) {
            set_tcp_nodelay(socket.get());
            return AcceptStatus::Accepted;
        }
        const int error = errno;
        switch (error) {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
                return AcceptStatus::Empty;
            // The connection died in the queue, or a signal came: take the next one.
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue;
            case EMFILE:
            case ENFILE: {
                if (!reserve_fd.valid()) {
                    report(nullptr, ErrorKind::Limit, fmt::format("accept: {}; pausing accepts", std::strerror(error)));
                    return AcceptStatus::Pause;
                }
                // Give the reserve up, take the connection, answer it, close it, take the
                // reserve back. The client hears why instead of waiting in the backlog.
                reserve_fd.reset();
                Fd refused(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
                if (refused.valid())
                    send_all_before(refused.get(), codec::make_handshake_error(503, "server out of file descriptors"),
                                    std::chrono::steady_clock::now());
                const bool took_one = refused.valid();
                refused.reset();
                reserve_fd = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
                report(nullptr, ErrorKind::Limit,
                       fmt::format("accept: {}; {}", std::strerror(error),
                                   took_one ? "connection refused with 503" : "pausing accepts"));
                return took_one && reserve_fd.valid() ? AcceptStatus::Answered : AcceptStatus::Pause;
            }
            default:
                // ENOBUFS, ENOMEM, or something stranger: back off rather than spin.
                report(nullptr, ErrorKind::Limit, fmt::format("accept: {}; pausing accepts", std::strerror(error)));
                return AcceptStatus::Pause;
        }
    }
}

bool ServerCore::refuse_if_full(int socket) {
    // A flood of connections that never finish their handshake must not cost unbounded
    // threads or memory: past this count they are refused with 503 at once.
    const std::size_t max_sessions = options.max_clients + 1024;
    std::size_t live_sessions;
    {
        std::lock_guard lock(mutex);
        live_sessions = sessions.size() - finished.size();
    }
    if (live_sessions < max_sessions) return false;
    const auto deadline = std::chrono::steady_clock::now();  // best effort, never block
    send_all_before(socket, codec::make_handshake_error(503, "server full"), deadline);
    return true;
}

}  // namespace detail
}  // namespace websock
