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
#include "websock/export.hpp"
#include "websock/http.hpp"
#include "websock/types.hpp"

namespace websock {

/// One frame as it travelled, payload unmasked.
struct Frame {
    codec::Opcode opcode = codec::Opcode::Text;  ///< as on the wire (Continuation for a later fragment)
    bool fin = true;                             ///< the last frame of its message
    std::uint8_t rsv = 0;                        ///< the RSV bits (codec::kRsv1 ...)
    std::string payload;                         ///< unmasked
};

/// WebSocket on a socket you already hold, frame by frame or message by message; blocking,
/// one thread at a time (see the top of frame_stream.hpp).
class WEBSOCK_API FrameStream {
public:
    /// Take ownership of a connected socket that already speaks WebSocket (after your own
    /// upgrade, or one end of a socketpair). The role decides who masks (section 5.1).
    FrameStream(int fd, codec::Role role, ConnectionOptions options = {});
    ~FrameStream();  ///< closes the socket
    FrameStream(FrameStream&&) noexcept;             ///< takes over the socket
    FrameStream& operator=(FrameStream&&) noexcept;  ///< closes its own socket, takes over the other's

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
    /// Send one message in one frame. False once closing, or when the write failed (error()).
    bool send(std::string_view data, MessageType type = MessageType::Text);
    /// Send one message as fragments of at most `fragment_size` bytes; false as send().
    bool send_fragmented(std::string_view data, MessageType type, std::size_t fragment_size);
    /// Send a ping (at most 125 bytes); false as send().
    bool ping(std::string_view payload = {});
    /// The next whole message; pings are answered on the way. Nothing on timeout, on close
    /// (see close_code()), or on a protocol error (the close frame has been sent).
    std::optional<Message> read_message(std::chrono::milliseconds timeout);
    /// Send a close frame and wait (up to `timeout`) for the peer's.
    void close(CloseCode code = CloseCode::Normal, std::string_view reason = {},
               std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

    /// The close handshake is over, the connection failed, or the peer closed TCP.
    bool is_closed() const noexcept;
    CloseCode close_code() const noexcept;             ///< see Connection::close_code()
    const std::string& close_reason() const noexcept;  ///< see Connection::close_reason()
    const std::string& error() const noexcept { return error_; }  ///< why the last call failed
    int fd() const noexcept { return fd_; }  ///< the socket (still owned by the stream)

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
