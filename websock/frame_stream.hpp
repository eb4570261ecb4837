// FrameStream: WebSocket on a socket you already hold, for programs that want control over
// every frame. Put it on a socket that is already upgraded (or on one end of a socketpair),
// in either role, or let it do the server side of the upgrade on a socket you accepted
// yourself. Then read and write frame by frame, or message by message.
//
// Blocking, and owned by one thread at a time (unlike WebSocketServer's Client). Pick one
// reading style per stream: read_frame() hands over raw frames (continuations, pings and
// close frames included, nothing answered for you); read_message() reassembles messages,
// answers pings and runs the close handshake.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "websock/codec/frame.hpp"
#include "websock/connection.hpp"
#include "websock/http.hpp"
#include "websock/types.hpp"

namespace websock {

/// One frame as it travelled, payload unmasked.
struct Frame {
    codec::Opcode opcode = codec::Opcode::Text;
    bool fin = true;
    std::uint8_t rsv = 0;
    std::string payload;
};

class FrameStream {
public:
    /// Take ownership of a connected socket that already speaks WebSocket (after your own
    /// upgrade, or one end of a socketpair). The role decides who masks (section 5.1).
    FrameStream(int fd, codec::Role role, ConnectionOptions options = {});
    ~FrameStream();  ///< closes the socket
    FrameStream(FrameStream&&) noexcept;
    FrameStream& operator=(FrameStream&&) noexcept;

    /// Server side of the opening handshake on a socket you accepted: read the request
    /// (within `timeout`), check it (RFC 6455 section 4.2.1), answer 101 or the right error.
    /// Returns the stream, or nothing (the socket is then closed) with `error` set.
    static std::unique_ptr<FrameStream> accept_upgrade(int fd, std::chrono::milliseconds timeout, std::string& error,
                                                       HttpRequest* request_out = nullptr, ConnectionOptions options = {});

    // ---- frames ----
    /// Send one frame exactly as described (masked with a fresh key in the client role).
    /// Nothing checks that the sequence makes sense: that is the point of this API.
    bool send_frame(codec::Opcode opcode, std::string_view payload, bool fin = true, std::uint8_t rsv = 0);
    /// The next frame, checked as a single frame (section 5.2: masking, RSV, opcodes,
    /// control-frame rules, size); nothing when the time runs out, the peer closed TCP, or
    /// the frame broke a rule (see error()).
    std::optional<Frame> read_frame(std::chrono::milliseconds timeout);

    // ---- messages ----
    bool send(std::string_view data, MessageType type = MessageType::Text);
    bool send_fragmented(std::string_view data, MessageType type, std::size_t fragment_size);
    bool ping(std::string_view payload = {});
    /// The next whole message; pings are answered on the way. Nothing on timeout, on close
    /// (see close_code()), or on a protocol error (the close frame has been sent).
    std::optional<Message> read_message(std::chrono::milliseconds timeout);
    /// Send a close frame and wait (up to `timeout`) for the peer's.
    void close(CloseCode code = CloseCode::Normal, std::string_view reason = {},
               std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

    bool is_closed() const noexcept;
    CloseCode close_code() const noexcept;
    const std::string& close_reason() const noexcept;
    const std::string& error() const noexcept { return error_; }
    int fd() const noexcept { return fd_; }

private:
    bool write_all(std::string_view bytes);
    /// Read once into input_ (waiting up to the deadline); false on timeout/EOF/error.
    bool fill(std::chrono::steady_clock::time_point deadline);

    int fd_ = -1;
    codec::Role role_;
    std::unique_ptr<Connection> connection_;  // message level
    std::unique_ptr<codec::FrameDecoder> decoder_;  // frame level
    std::string input_;  // bytes read, not yet decoded
    Frame partial_frame_;  // read_frame: the frame being received
    std::deque<Message> pending_;  // read_message: messages decoded, not yet returned
    std::string error_;
    bool eof_ = false;
};

}  // namespace websock
