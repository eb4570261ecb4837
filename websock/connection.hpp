// Connection: the rules of one live WebSocket endpoint, without any I/O.
//
// It turns received bytes into whole messages and control events (reassembling fragments,
// checking sequencing, UTF-8 and size limits, answering pings, running the close handshake)
// and turns outgoing messages into frames. The caller moves bytes between it and a socket:
// feed() what was read, write out output(). The thread-per-client server, the client and
// the tests all drive this same class; it is not thread-safe (one owner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "websock/export.hpp"
#include "websock/extension.hpp"
#include "websock/codec/frame.hpp"
#include "websock/codec/utf8.hpp"
#include "websock/types.hpp"

namespace websock {

/// The settings of a Connection.
struct ConnectionOptions {
    codec::Role role = codec::Role::Server;    ///< which side we are (who masks, section 5.1)
    std::size_t max_frame_bytes = 16u << 20;    ///< one frame's payload; 1009 past it
    std::size_t max_message_bytes = 16u << 20;  ///< a reassembled message; 1009 past it
    bool auto_pong = true;                      ///< answer pings (section 5.5.2)
};

/// Receives what the peer sent. Called from inside Connection::feed().
class WEBSOCK_API ConnectionHandler {
public:
    virtual ~ConnectionHandler() = default;
    /// A whole message. `data` is valid only during the call.
    virtual void on_message(std::string_view data, MessageType type) = 0;
    /// A ping arrived (answered already when ConnectionOptions::auto_pong).
    virtual void on_ping(std::string_view /*payload*/) {}
    /// A pong arrived.
    virtual void on_pong(std::string_view /*payload*/) {}
    /// The peer's close frame arrived (already validated, and answered if we had not closed).
    virtual void on_peer_close(CloseCode /*code*/, std::string_view /*reason*/) {}
};

/// The protocol of one WebSocket connection, sans I/O: bytes in (feed()), messages out to a
/// ConnectionHandler, frames to send in output(). It enforces RFC 6455 (fragmentation,
/// control frames, UTF-8, the close handshake) and fails the connection on a violation.
class WEBSOCK_API Connection {
public:
    /// Where the close handshake is.
    enum class State : std::uint8_t {
        Open,     ///< messages flow both ways
        Closing,  ///< we sent a close frame and wait for the peer's
        Closed,   ///< both close frames exchanged, or the connection failed: stop reading,
                  ///< write what output() holds, then close TCP (the server closes first, 7.1.1)
    };

    /// An open connection with these settings.
    explicit Connection(ConnectionOptions options);

    /// Process received bytes (unmasked in place, so they must be writable). Stops early
    /// once the connection is Closed; returns the number of bytes consumed.
    std::size_t feed(std::uint8_t* data, std::size_t size, ConnectionHandler& handler);
    /// The same, for bytes held in a string (modified in place).
    std::size_t feed(std::string& data, ConnectionHandler& handler) {
        return feed(reinterpret_cast<std::uint8_t*>(data.data()), data.size(), handler);
    }

    // --- sending: each appends whole frames to output(); refused (false) once closing ---
    /// Send one message in one frame.
    bool send_message(std::string_view data, MessageType type);
    /// Send one message as fragments of at most `fragment_size` bytes each.
    bool send_fragmented(std::string_view data, MessageType type, std::size_t fragment_size);
    bool send_ping(std::string_view payload = {});  ///< a ping (at most 125 bytes of payload)
    bool send_pong(std::string_view payload = {});  ///< a pong (at most 125 bytes of payload)
    /// Start the close handshake (section 7.1.2); a second call does nothing.
    void close(CloseCode code = CloseCode::Normal, std::string_view reason = {});
    /// Fail the connection (section 7.1.7): send a close with `code` unless one was sent,
    /// and stop processing input.
    void fail(CloseCode code, std::string_view reason);

    /// Bytes to write to the peer. The caller erases what it wrote (or clears it).
    std::string& output() noexcept { return output_; }
    /// Give back the capacity the buffers kept for the next message (reassembly, output,
    /// scratch), as far as no message or frame is in progress: for a connection gone quiet.
    /// The next message allocates again.
    void release_buffers() noexcept;
    /// Open, between frames and messages, nothing to write, no extension: a new Connection
    /// with the same options (and no set_allowed_rsv()) would behave the same from here on.
    bool at_rest() const noexcept;
    /// The capacity the buffers hold now (reassembly, control, output, scratch): what
    /// release_buffers() could give back.
    std::size_t buffered_capacity() const noexcept {
        return message_.capacity() + control_.capacity() + output_.capacity() + encoded_.capacity();
    }

    State state() const noexcept { return state_; }                 ///< see State
    bool close_sent() const noexcept { return close_sent_; }          ///< our close frame is in output() (or written)
    bool close_received() const noexcept { return close_received_; }  ///< the peer's close frame arrived
    /// The code of the close handshake: the peer's when it closed first, ours when we did
    /// (even if its reply carried another code) or when we failed the connection.
    CloseCode close_code() const noexcept { return close_code_; }
    const std::string& close_reason() const noexcept { return close_reason_; }  ///< the reason that goes with close_code()
    /// True when we failed the connection because the peer broke a rule.
    bool failed() const noexcept { return failed_; }
    /// Bytes of the message being received that are held here (reassembled or decoded so
    /// far), 0 between messages: for a server's budget across connections.
    std::size_t message_bytes_held() const noexcept { return in_message_ ? message_.size() : 0; }
    const ConnectionOptions& options() const noexcept { return options_; }  ///< as constructed
    /// RSV bits an extension negotiated (so the decoder lets them through).
    void set_allowed_rsv(std::uint8_t rsv) noexcept { decoder_.set_allowed_rsv(rsv); }
    /// An extension was negotiated (one per connection): its RSV bits mark a transformed
    /// message; such messages are decoded by `incoming` (the decoded size counts against
    /// max_message_bytes) and send_message()/send_fragmented() encode through `outgoing`.
    /// Either may be null (a direction the program handles itself).
    void set_extension(std::unique_ptr<Extension> incoming, std::unique_ptr<Extension> outgoing);
    /// set_extension() gave it an extension.
    bool has_extension() const noexcept { return incoming_ != nullptr || outgoing_ != nullptr; }

    // FrameDecoder handler interface (public for the decoder template; not for users).
    /// @cond WEBSOCK_INTERNAL
    bool on_frame_header(const codec::FrameHeader& header);
    bool on_frame_payload(std::uint8_t* data, std::size_t size);
    bool on_frame_end(const codec::FrameHeader& header);
    /// @endcond

private:
    void append_frame(codec::Opcode opcode, bool fin, std::string_view payload, std::uint8_t rsv = 0);
    bool decode(std::string_view piece, bool final);  // false after failing the connection
    void handle_close_frame(std::string_view payload);

    ConnectionOptions options_;
    codec::FrameDecoder decoder_;
    ConnectionHandler* handler_ = nullptr;  // valid during feed()
    std::string output_;

    // the message being received
    bool in_message_ = false;
    MessageType message_type_ = MessageType::Text;
    static constexpr std::size_t kKeptMessageCapacity = 4u << 20;  // message_'s capacity kept between messages
    std::string message_;  // reassembly buffer; capacity reused between messages
    codec::Utf8Validator utf8_;
    // the frame being received
    bool frame_is_control_ = false;
    bool frame_in_place_ = false;  // whole unfragmented message arriving in one piece: no copy
    bool message_encoded_ = false;  // the extension's RSV bits on the message's first frame
    std::unique_ptr<Extension> incoming_;
    std::unique_ptr<Extension> outgoing_;
    std::uint8_t extension_rsv_ = 0;
    std::string encoded_;  // scratch for outgoing encoded payloads
    std::string_view in_place_view_;
    std::string control_;  // ≤125 bytes of a control frame's payload

    State state_ = State::Open;
    bool close_sent_ = false;
    bool close_received_ = false;
    bool failed_ = false;
    CloseCode close_code_ = CloseCode::Abnormal;
    std::string close_reason_;
};

}  // namespace websock
