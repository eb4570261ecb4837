// WebSocketClient: connect() opens the connection on the caller's thread (TCP, TLS for wss://,
// then the HTTP upgrade); the client's own I/O thread (detail/client_io.cpp) does the rest.
// The calls every other thread makes (send, close, receive, wait_closed, the queries) are here.
#include "websock/client.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "websock/codec/client_handshake.hpp"
#include "websock/codec/close.hpp"
#include "websock/codec/frame.hpp"
#include "websock/detail/client_io.hpp"

namespace websock::detail {

namespace {

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

std::string_view to_string(CloseInitiator initiator) noexcept {
    switch (initiator) {
        case CloseInitiator::Local: return "local";
        case CloseInitiator::Remote: return "remote";
        case CloseInitiator::Abnormal: return "abnormal";
    }
    return "unknown";
}

std::optional<CloseStatus> WebSocketClient::close_status() const {
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
    // A 101 has no body (RFC 9110 section 8.6: no Content-Length in a 1xx). Bytes announced as
    // one would be taken for frames and fail the connection later with a misleading 1002
    // ("reserved bits set"); say what is wrong now. "Content-Length: 0" announces nothing.
    const auto& head = parser.response();
    const auto length = head.header("Content-Length");
    if (head.header("Transfer-Encoding") || (length && *length != "0"))
        return fail(ErrorKind::Handshake,
                    fmt::format("{}: the 101 response announces a body ({}), which a 101 cannot have", where,
                                head.header("Transfer-Encoding") ? "Transfer-Encoding" : "Content-Length"));
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

/// A deadline a condition variable can wait for; nullopt (wait forever) for one too far off
/// to convert without overflowing.
std::optional<Clock::time_point> usable(Clock::time_point deadline) {
    const auto now = Clock::now();
    if (deadline > now && deadline - now > std::chrono::hours(24 * 365 * 100)) return std::nullopt;
    return deadline;
}

ReceiveResult take_message(ClientConnectionCore& core, std::optional<Clock::time_point> deadline) {
    // On the I/O thread (inside a callback) waiting would stall the very thread that reads.
    if (std::this_thread::get_id() == core.io_thread.load(std::memory_order_relaxed)) deadline = Clock::now();
    std::unique_lock lock(core.mutex);
    const auto ready = [&] { return !core.inbox.empty() || !core.running; };
    if (deadline) core.changed.wait_until(lock, *deadline, ready);
    else core.changed.wait(lock, ready);
    if (core.inbox.empty()) return ReceiveResult{core.running ? ReceiveStatus::Timeout : ReceiveStatus::Closed, {}};
    ReceiveResult result{ReceiveStatus::Message, std::move(core.inbox.front())};
    core.inbox.pop_front();
    const std::size_t limit = core.options.max_receive_queue_bytes;
    const bool was_full = core.inbox_bytes >= limit;
    core.inbox_bytes -= result.message.data.size();
    const bool resume = was_full && core.inbox_bytes < limit && core.running;
    lock.unlock();
    if (resume) core.wake();  // the I/O thread stopped reading; it may go on
    return result;
}

std::optional<Message> only_message(ReceiveResult result) {
    if (!result.has_message()) return std::nullopt;
    return std::move(result.message);
}

}  // namespace

ReceiveResult WebSocketClient::receive_for(Milliseconds timeout) { return take_message(*core_, deadline_after(timeout)); }
ReceiveResult WebSocketClient::receive_until(Clock::time_point deadline) { return take_message(*core_, usable(deadline)); }
std::optional<Message> WebSocketClient::receive(Milliseconds timeout) { return only_message(receive_for(timeout)); }
std::optional<Message> WebSocketClient::receive() { return only_message(take_message(*core_, std::nullopt)); }

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
