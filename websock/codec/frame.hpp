// The RFC 6455 frame codec: an incremental decoder and an encoder. Sans-I/O: it sees bytes,
// never sockets, so the server, the client, unit tests and fuzzers all drive the same code.
//
// RFC 6455 section 5.2, the base framing protocol:
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-------+-+-------------+-------------------------------+
//  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//  | |1|2|3|       |K|             |                               |
//  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//  |     Extended payload length continued, if payload len == 127  |
//  + - - - - - - - - - - - - - - - +-------------------------------+
//  |                               |Masking-key, if MASK set to 1  |
//  +-------------------------------+-------------------------------+
//  | Masking-key (continued)       |          Payload Data         |
//  +-------------------------------- - - - - - - - - - - - - - - - +
//  :                     Payload Data continued ...                :
//  +---------------------------------------------------------------+
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "websock/export.hpp"
#include "websock/types.hpp"

namespace websock::codec {

/// Frame opcodes (RFC 6455 section 5.2). 0x3-0x7 and 0xB-0xF are reserved.
enum class Opcode : std::uint8_t {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

/// Close, Ping and Pong (opcodes 0x8 and up): at most 125 bytes, never fragmented.
constexpr bool is_control(Opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

/// RSV bits as they sit in the first byte.
inline constexpr std::uint8_t kRsv1 = 0x40;
inline constexpr std::uint8_t kRsv2 = 0x20;  ///< see kRsv1
inline constexpr std::uint8_t kRsv3 = 0x10;  ///< see kRsv1

/// Control frames carry at most 125 bytes of payload (RFC 6455 section 5.5).
inline constexpr std::size_t kMaxControlPayload = 125;
/// The largest frame header: 2 + 8 (64-bit length) + 4 (mask).
inline constexpr std::size_t kMaxFrameHeader = 14;

/// A decoded frame header (RFC 6455 section 5.2).
struct FrameHeader {
    bool fin = false;  ///< the last frame of its message
    std::uint8_t rsv = 0;  ///< the RSV bits, masked as kRsv1|kRsv2|kRsv3
    Opcode opcode = Opcode::Continuation;  ///< what the frame carries
    bool masked = false;                   ///< the MASK bit (set on every client-to-server frame)
    std::array<std::uint8_t, 4> mask{};    ///< the masking key when masked
    std::uint64_t payload_length = 0;      ///< the payload's length in bytes
};

/// Which side of the connection we are: it decides which frames must be masked.
enum class Role : std::uint8_t { Server, Client };

/// XOR `data` with `mask`, starting at byte `offset` of the mask cycle (RFC 6455 section 5.3).
/// Word at a time; in place. Returns the mask offset for the next byte.
WEBSOCK_API std::size_t apply_mask(std::uint8_t* data, std::size_t length, const std::array<std::uint8_t, 4>& mask,
                                   std::size_t offset = 0) noexcept;

/// A frame-level violation, with the close code the RFC asks for.
struct FrameError {
    CloseCode code;           ///< the code to close with (1002, or 1009 for a frame too large)
    std::string_view reason;  ///< a static string
};

/// Incremental frame decoder. Feed it any split of the input; it reports each header once,
/// then the payload in as many pieces as the input arrived in, unmasked, then the frame end.
/// It checks what can be checked from one frame alone (section 5.2): reserved opcodes, RSV
/// bits not allowed by extensions, masking by role, control frame length and FIN, the 64-bit
/// length's top bit, and `max_frame_payload`. Sequencing rules (continuation, interleaving)
/// belong to the message layer (`websock::Connection`).
class WEBSOCK_API FrameDecoder {
public:
    /// What the decoder accepts.
    struct Options {
        Role role = Role::Server;       ///< a server requires masked frames, a client unmasked
        std::uint8_t allowed_rsv = 0;   ///< RSV bits an extension negotiated
        std::uint64_t max_frame_payload = 16u << 20;  ///< larger frames fail with 1009
    };

    /// Handler concept: an object with
    ///   bool on_frame_header(const FrameHeader&);               // false stops decoding
    ///   bool on_frame_payload(std::uint8_t* data, std::size_t n); // unmasked in place; false stops
    ///   bool on_frame_end(const FrameHeader&);                  // false stops
    explicit FrameDecoder(Options options) noexcept : options_(options) {}

    /// What one feed() did.
    struct Result {
        std::size_t consumed = 0;  ///< bytes of input used
        bool failed = false;       ///< a frame error occurred; see error()
        bool stopped = false;      ///< the handler asked to stop
    };

    /// Decode as much of [data, data+size) as possible. The input is unmasked in place.
    template <class Handler>
    Result feed(std::uint8_t* data, std::size_t size, Handler& handler);

    /// After a Result with `failed`: the violation and its close code.
    const FrameError& error() const noexcept { return error_; }
    /// True between frames (no partial header or payload pending).
    bool at_frame_boundary() const noexcept { return state_ == State::Header && header_fill_ == 0; }
    /// Change Options::allowed_rsv (once an extension is negotiated).
    void set_allowed_rsv(std::uint8_t rsv) noexcept { options_.allowed_rsv = rsv; }
    /// Change Options::max_frame_payload.
    void set_max_frame_payload(std::uint64_t max) noexcept { options_.max_frame_payload = max; }

private:
    enum class State : std::uint8_t { Header, Payload, Failed };

    /// Parses the header bytes in header_buf_; returns false with error_ set on a violation.
    /// Sets `need` to the total header length once known (0 while not yet known).
    bool parse_header(std::size_t& need) noexcept;
    bool fail(CloseCode code, std::string_view reason) noexcept {
        state_ = State::Failed;
        error_ = {code, reason};
        return false;
    }

    Options options_;
    State state_ = State::Header;
    std::array<std::uint8_t, kMaxFrameHeader> header_buf_{};
    std::size_t header_fill_ = 0;
    FrameHeader header_{};
    std::uint64_t payload_remaining_ = 0;
    std::size_t mask_offset_ = 0;
    FrameError error_{CloseCode::Normal, {}};
};

/// Write a frame header into `out` (at least kMaxFrameHeader bytes), using the shortest
/// length encoding (section 5.2). Returns the header size. If `mask` is given the header
/// carries it; the caller masks the payload.
WEBSOCK_API std::size_t encode_frame_header(std::uint8_t* out, Opcode opcode, bool fin, std::uint64_t payload_length,
                                            const std::uint8_t* mask = nullptr, std::uint8_t rsv = 0) noexcept;

/// Append a whole frame to `out`. With a mask the payload is masked as it is copied.
WEBSOCK_API void append_frame(std::string& out, Opcode opcode, bool fin, std::string_view payload,
                              const std::uint8_t* mask = nullptr, std::uint8_t rsv = 0);

}  // namespace websock::codec

#include "websock/codec/detail/frame_decoder_impl.hpp"
