#include "websock/frame_stream.hpp"

#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "websock/codec/handshake.hpp"
#include "websock/detail/socket.hpp"

namespace websock {

using Clock = std::chrono::steady_clock;

namespace {

/// Collects whole messages (and notes the peer's close) during Connection::feed.
struct MessageCollector final : ConnectionHandler {
    std::deque<Message>* out = nullptr;
    void on_message(std::string_view data, MessageType type) override { out->push_back({type, std::string(data)}); }
};

/// Collects one frame into the stream's partial frame (which survives between reads).
struct FrameCollector {
    Frame& frame;
    bool complete = false;
    bool on_frame_header(const codec::FrameHeader& header) {
        frame = Frame{header.opcode, header.fin, header.rsv, {}};
        frame.payload.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(header.payload_length, 1u << 20)));
        return true;
    }
    bool on_frame_payload(std::uint8_t* data, std::size_t size) {
        frame.payload.append(reinterpret_cast<const char*>(data), size);
        return true;
    }
    bool on_frame_end(const codec::FrameHeader&) {
        complete = true;
        return false;  // one frame at a time
    }
};

}  // namespace

FrameStream::FrameStream(int fd, codec::Role role, ConnectionOptions options) : fd_(fd), role_(role) {
    options.role = role;
    connection_ = std::make_unique<Connection>(options);
    decoder_ = std::make_unique<codec::FrameDecoder>(codec::FrameDecoder::Options{role, 0, options.max_frame_bytes});
}

FrameStream::~FrameStream() {
    if (fd_ >= 0) ::close(fd_);
}

FrameStream::FrameStream(FrameStream&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      role_(other.role_),
      connection_(std::move(other.connection_)),
      decoder_(std::move(other.decoder_)),
      input_(std::move(other.input_)),
      partial_frame_(std::move(other.partial_frame_)),
      pending_(std::move(other.pending_)),
      error_(std::move(other.error_)),
      eof_(other.eof_) {}

FrameStream& FrameStream::operator=(FrameStream&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
        role_ = other.role_;
        connection_ = std::move(other.connection_);
        decoder_ = std::move(other.decoder_);
        input_ = std::move(other.input_);
        partial_frame_ = std::move(other.partial_frame_);
        pending_ = std::move(other.pending_);
        error_ = std::move(other.error_);
        eof_ = other.eof_;
    }
    return *this;
}

std::unique_ptr<FrameStream> FrameStream::accept_upgrade(int fd, std::chrono::milliseconds timeout, std::string& error,
                                                         HttpRequest* request_out, ConnectionOptions options) {
    detail::Fd owned(fd);
    const auto deadline = Clock::now() + timeout;
    codec::HttpRequestParser parser;
    std::string leftover;
    char buffer[4096];
    auto status = codec::HttpRequestParser::Status::NeedMore;
    while (status == codec::HttpRequestParser::Status::NeedMore) {
        pollfd p{fd, POLLIN, 0};
        const int wait = detail::poll_timeout_ms(deadline);
        if (wait == 0 || ::poll(&p, 1, wait) <= 0) {
            error = "the upgrade request did not arrive in time";
            return nullptr;
        }
        const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) {
            error = "the peer closed before upgrading";
            return nullptr;
        }
        std::size_t consumed = 0;
        status = parser.feed(buffer, static_cast<std::size_t>(got), consumed);
        leftover.assign(buffer + consumed, static_cast<std::size_t>(got) - consumed);
    }
    if (status == codec::HttpRequestParser::Status::Error) {
        error = parser.error_reason();
        detail::send_all_before(fd, codec::make_handshake_error(parser.error_status(), parser.error_reason()), deadline);
        return nullptr;
    }
    const auto check = codec::check_upgrade_request(parser.request());
    if (!check.ok) {
        error = check.reason;
        detail::send_all_before(fd, codec::make_handshake_error(check.status, check.reason), deadline);
        return nullptr;
    }
    if (!detail::send_all_before(fd, codec::make_upgrade_response(check.key), deadline)) {
        error = "could not send the 101 response";
        return nullptr;
    }
    if (request_out) *request_out = std::move(parser.request());
    auto stream = std::make_unique<FrameStream>(owned.release(), codec::Role::Server, options);
    stream->input_ = std::move(leftover);  // frames sent right behind the request
    return stream;
}

bool FrameStream::write_all(std::string_view bytes) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    if (!detail::send_all_before(fd_, bytes, deadline)) {
        error_ = "write failed";
        return false;
    }
    return true;
}

bool FrameStream::fill(Clock::time_point deadline) {
    if (eof_) return false;
    pollfd p{fd_, POLLIN, 0};
    const int wait = detail::poll_timeout_ms(deadline);
    if (::poll(&p, 1, wait) <= 0) return false;
    char buffer[65536];
    const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
    if (got > 0) {
        input_.append(buffer, static_cast<std::size_t>(got));
        return true;
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    eof_ = true;
    return false;
}

bool FrameStream::send_frame(codec::Opcode opcode, std::string_view payload, bool fin, std::uint8_t rsv) {
    std::string out;
    if (role_ == codec::Role::Client) {
        std::uint8_t mask[4];
        RAND_bytes(mask, sizeof mask);
        codec::append_frame(out, opcode, fin, payload, mask, rsv);
    } else {
        codec::append_frame(out, opcode, fin, payload, nullptr, rsv);
    }
    return write_all(out);
}

std::optional<Frame> FrameStream::read_frame(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (!input_.empty()) {
            FrameCollector collector{partial_frame_};
            const auto result =
                decoder_->feed(reinterpret_cast<std::uint8_t*>(input_.data()), input_.size(), collector);
            input_.erase(0, result.consumed);
            if (result.failed) {
                error_ = std::string(decoder_->error().reason);
                return std::nullopt;
            }
            if (collector.complete) return std::exchange(partial_frame_, Frame{});
            // A partial frame: the decoder keeps its place, partial_frame_ what arrived.
        }
        if (!fill(deadline)) return std::nullopt;
    }
}

bool FrameStream::send(std::string_view data, MessageType type) {
    if (!connection_->send_message(data, type)) return false;
    const bool ok = write_all(connection_->output());
    connection_->output().clear();
    return ok;
}

bool FrameStream::send_fragmented(std::string_view data, MessageType type, std::size_t fragment_size) {
    if (!connection_->send_fragmented(data, type, fragment_size)) return false;
    const bool ok = write_all(connection_->output());
    connection_->output().clear();
    return ok;
}

bool FrameStream::ping(std::string_view payload) {
    if (!connection_->send_ping(payload)) return false;
    const bool ok = write_all(connection_->output());
    connection_->output().clear();
    return ok;
}

std::optional<Message> FrameStream::read_message(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    MessageCollector collector;
    collector.out = &pending_;
    for (;;) {
        if (!pending_.empty()) {
            Message first = std::move(pending_.front());
            pending_.pop_front();
            return first;
        }
        if (!input_.empty() && connection_->state() != Connection::State::Closed) {
            const std::size_t consumed =
                connection_->feed(reinterpret_cast<std::uint8_t*>(input_.data()), input_.size(), collector);
            input_.erase(0, consumed);
            if (!connection_->output().empty()) {
                write_all(connection_->output());  // pongs, our close
                connection_->output().clear();
            }
        }
        if (!pending_.empty()) continue;
        if (connection_->state() == Connection::State::Closed) {
            if (connection_->failed()) error_ = connection_->close_reason();
            return std::nullopt;
        }
        if (!fill(deadline)) return std::nullopt;
    }
}

void FrameStream::close(CloseCode code, std::string_view reason, std::chrono::milliseconds timeout) {
    connection_->close(code, reason);
    if (!connection_->output().empty()) {
        write_all(connection_->output());
        connection_->output().clear();
    }
    const auto deadline = Clock::now() + timeout;
    while (connection_->state() != Connection::State::Closed && Clock::now() < deadline) {
        if (!read_message(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())) &&
            (eof_ || Clock::now() >= deadline))
            break;
    }
    ::shutdown(fd_, SHUT_WR);
}

bool FrameStream::is_closed() const noexcept { return connection_->state() == Connection::State::Closed || eof_; }
CloseCode FrameStream::close_code() const noexcept { return connection_->close_code(); }
const std::string& FrameStream::close_reason() const noexcept { return connection_->close_reason(); }

}  // namespace websock
