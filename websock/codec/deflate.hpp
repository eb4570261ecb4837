// permessage-deflate (RFC 7692): negotiation in both roles and the per-connection
// compressor/decompressor, sans-I/O, on zlib (raw DEFLATE streams).
//
// How Connection uses it (the wiring):
//
//  * Handshake. Server: `negotiate_server(parse_extensions(value).offers, options)`; when it
//    returns an agreement, put `agreement.response_header()` in the 101 response's
//    Sec-WebSocket-Extensions and construct `PerMessageDeflate(Role::Server, agreement,
//    options)`. No agreement (or a header that does not parse): answer without the
//    extension. Client: send `make_client_offer(options)`; on the 101, run
//    `accept_client_response(response value, options)`: an error fails the connection (RFC
//    7692 section 5, RFC 6455 section 4.1); an agreement builds the PerMessageDeflate.
//  * Frames. With an agreement, the frame decoder must let RSV1 through
//    (`set_allowed_rsv(kRsv1)`). RSV1 is meaningful on the FIRST frame of a data message only
//    (section 6): it marks the whole message compressed. RSV1 on a continuation frame or on
//    a control frame fails the connection with 1002 (section 6.1; FrameDecoder already
//    refuses it on control frames). Control frames are never compressed, in either
//    direction.
//  * Receiving a compressed message: feed every payload piece of every frame of the message
//    to `decompress(piece, final, out, max_output)`, `final` on the last piece of the FIN
//    frame (an empty piece with final=true is fine). `max_output` is the message limit: the
//    INFLATED size counts against max_message_bytes, the compressed frame size against
//    max_frame_bytes. TooBig → close 1009; Corrupt → close 1007. UTF-8 validation of a text
//    message runs on the inflated bytes. A message without RSV1 is not touched.
//  * Sending: `compress(message, out)` appends the payload of the whole message and returns
//    true: send it with RSV1 on the first frame (fragment the compressed payload as usual,
//    RSV1 on the first fragment only). It returns false, leaving `out` alone, for messages
//    under `min_compress_bytes`: send those as they are, RSV1 clear.
//  * One PerMessageDeflate per connection, owned by the connection's thread (not
//    thread-safe). Messages must be compressed in the order they go on the wire, and
//    decompressed in the order they arrive, since the LZ77 window carries over between
//    messages unless no_context_takeover was agreed for that direction.
//
// Memory per connection (zlib): the compressor needs 2^(window_bits+2) + 2^(mem_level+9)
// bytes (256 KiB at 15 and 8), allocated at the first compressed send; the decompressor
// about 2^window_bits + 7 KiB (39 KiB at 15), allocated at the first compressed receive.
// Servers with many connections lower server_max_window_bits / mem_level; a limit on
// client_max_window_bits bounds what each client makes us hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "websock/codec/extension.hpp"
#include "websock/codec/frame.hpp"
#include "websock/export.hpp"

namespace websock::codec {

/// The extension token (RFC 7692 section 7).
inline constexpr std::string_view kPermessageDeflate = "permessage-deflate";
/// The range of the *_max_window_bits parameters (RFC 7692 section 7.1.2).
inline constexpr int kMinWindowBits = 8;
inline constexpr int kMaxWindowBits = 15;  ///< see kMinWindowBits

/// What this endpoint wants and accepts. Role matters: "server_*" always means the server's
/// compressor (and the client's decompressor), "client_*" the client's compressor.
struct DeflateOptions {
    /// Offer (client) or accept (server) permessage-deflate at all.
    bool enabled = false;

    /// The server resets its compressor after every message (no LZ77 window carried over).
    /// Server: we do so and say so in the response (allowed even when not offered, section
    /// 7.1.1.1); we also comply whenever a client asks. Client: we ask for it, and fail the
    /// connection if the server does not agree.
    bool server_no_context_takeover = false;
    /// The client resets its compressor after every message. Server: we ask the client for it
    /// in the response (allowed even when not offered, section 7.1.1.2); it lets us forget
    /// the window between messages. Client: we offer it, and then always honour it.
    bool client_no_context_takeover = false;

    /// The largest LZ77 window (log2, 8..15) the server compresses with. Server: our own
    /// compressor's window; a client asking for less gets less. Client: under 15, we ask the
    /// server for at most this (bounds our decompressor's memory) and fail the connection if
    /// the server answers with more or ignores it.
    /// zlib cannot compress with a 256-byte window (8): we use 9, whose matches never reach
    /// further back than 250 bytes, so the peer's 256-byte window still decodes them — what
    /// most servers do.
    int server_max_window_bits = kMaxWindowBits;
    /// The largest window (8..15) the client compresses with. Server: under 15 this bounds the
    /// memory a client makes us hold; an offer that does not carry client_max_window_bits
    /// (so the client could not honour a limit) is then declined. Client: we announce this
    /// limit in the offer (without a value when 15: "we support the parameter").
    int client_max_window_bits = kMaxWindowBits;

    /// Messages shorter than this are sent uncompressed (compress() returns false): deflate
    /// cannot win much on them and costs CPU on both ends.
    std::size_t min_compress_bytes = 64;
    /// zlib level 0..9 (0: stored blocks only). 6 is zlib's default; 1 is two to three times
    /// faster at a somewhat worse ratio.
    int compression_level = 6;
    /// zlib memLevel 1..9: the compressor's hash table size, 2^(mem_level+9) bytes.
    int mem_level = 8;
    /// Server only: compress with one zlib stream per sending thread, shared by every
    /// connection, instead of one per connection, and agree to server_no_context_takeover
    /// (a shared stream starts each message afresh). With the client's no context takeover
    /// (the peer's offer, or client_no_context_takeover above) the decompressor is also
    /// freed after each message. An idle connection then holds no zlib state at all, where
    /// one stream costs about 256 KiB (compressor) and 39 KiB (decompressor) of address
    /// space; the price is the ratio on streams of similar small messages, which no longer
    /// refer back to earlier ones. docs/benchmarks.md has the measurements.
    bool shared_compressor = false;
};

/// The negotiated parameters, the same on both ends once the handshake is over.
struct DeflateAgreement {
    bool server_no_context_takeover = false;  ///< the server resets its compressor after each message
    bool client_no_context_takeover = false;  ///< the client resets its compressor after each message
    int server_max_window_bits = kMaxWindowBits;  ///< the server compresses within this window
    int client_max_window_bits = kMaxWindowBits;  ///< the client compresses within this window
    /// The element of the server's response: built by negotiate_server (to send), or as
    /// received by accept_client_response.
    ExtensionOffer response;

    /// `response` serialized, for the Sec-WebSocket-Extensions header of the 101. (Only for
    /// an agreement that came from negotiation: an empty `response` throws.)
    std::string response_header() const { return serialize_extension(response); }

    /// Equal parameters (the response element is not compared).
    bool same_parameters(const DeflateAgreement& other) const noexcept {
        return server_no_context_takeover == other.server_no_context_takeover &&
               client_no_context_takeover == other.client_no_context_takeover &&
               server_max_window_bits == other.server_max_window_bits &&
               client_max_window_bits == other.client_max_window_bits;
    }
};

// ---- server side --------------------------------------------------------------------------

/// Pick the first acceptable permessage-deflate offer (RFC 7692 section 5): other extensions
/// are skipped; an offer with an unknown parameter, a duplicate parameter, a value that is
/// missing, present where none is allowed, not a decimal 8..15 without leading zeros, or a
/// configuration we will not support (client_max_window_bits not offered while ours is under
/// 15) is declined, and the next offer is tried. None acceptable (or !options.enabled):
/// nullopt — answer without the extension.
WEBSOCK_API std::optional<DeflateAgreement> negotiate_server(const std::vector<ExtensionOffer>& offers,
                                                             const DeflateOptions& options);

/// Why one offer would be declined (empty: acceptable), for logs and tests.
WEBSOCK_API std::string_view check_offer(const ExtensionOffer& offer, const DeflateOptions& options);

// ---- client side --------------------------------------------------------------------------

/// The offer for the request's Sec-WebSocket-Extensions (empty when !options.enabled), e.g.
/// "permessage-deflate; client_max_window_bits". client_max_window_bits is always offered
/// (without a value at 15), so a server that wants to bound our window can.
WEBSOCK_API std::string make_client_offer(const DeflateOptions& options);

/// The outcome of checking the server's response.
struct DeflateClientResult {
    std::optional<DeflateAgreement> agreement;  ///< set when the server accepted the offer
    std::string_view error;                     ///< static text; non-empty: fail the connection

    /// No error: the response was acceptable (agreement says whether deflate is on).
    bool ok() const noexcept { return error.empty(); }
};

/// Check the response's Sec-WebSocket-Extensions value against what make_client_offer sent
/// for `options` (RFC 7692 section 5 and 7.1). Empty value: no extension (ok, no agreement).
/// Fails on: a value that does not parse, an extension we did not offer (any name other
/// than permessage-deflate, or permessage-deflate when !options.enabled), permessage-deflate
/// twice, an unknown or duplicate parameter, a bad value, client_max_window_bits without a
/// value or above what we offered, server_max_window_bits above what we asked for, and a
/// request of ours (server_no_context_takeover, server_max_window_bits) that the response
/// does not grant.
WEBSOCK_API DeflateClientResult accept_client_response(std::string_view response_value, const DeflateOptions& options);
/// The same for one already-parsed element, which must be permessage-deflate (for a wiring
/// that negotiates several extensions and splits the response itself).
WEBSOCK_API DeflateClientResult accept_client_response(const ExtensionOffer& element, const DeflateOptions& options);

// ---- per connection ------------------------------------------------------------------------

/// The result of decompress().
enum class InflateStatus : std::uint8_t {
    Ok,       ///< everything so far decoded; more pieces may follow (or the message is whole)
    TooBig,   ///< the message would inflate past max_output: close 1009
    Corrupt,  ///< not a valid DEFLATE stream, or one that ends mid-block: close 1007
};

/// The compressor and decompressor of one connection, for one role and agreement.
/// Not thread-safe; movable, not copyable. zlib state is allocated on first use and reused
/// for every message after (no allocation per message once warm, other than growing `out`).
class WEBSOCK_API PerMessageDeflate {
public:
    /// `options` supplies compression_level, mem_level and min_compress_bytes; the windows
    /// and context takeover come from `agreement`. Out-of-range levels are clamped.
    PerMessageDeflate(Role role, const DeflateAgreement& agreement, const DeflateOptions& options);
    ~PerMessageDeflate();
    PerMessageDeflate(PerMessageDeflate&&) noexcept;             ///< takes over the zlib streams
    PerMessageDeflate& operator=(PerMessageDeflate&&) noexcept;  ///< takes over the zlib streams
    PerMessageDeflate(const PerMessageDeflate&) = delete;
    PerMessageDeflate& operator=(const PerMessageDeflate&) = delete;

    /// Compress one whole message, appending the frame payload to `out` (RFC 7692 section
    /// 7.2.1: DEFLATE with a sync flush, the trailing 00 00 ff ff removed). Returns false
    /// without touching `out` when the message is shorter than min_compress_bytes (send it
    /// uncompressed, RSV1 clear). Resets the compressor after the message when our side has
    /// no_context_takeover. Throws std::bad_alloc if zlib runs out of memory.
    bool compress(std::string_view message, std::string& out);

    /// Decompress the next piece of a compressed message's payload, appending to `out`
    /// (section 7.2.2). Call with final=true for the last piece (it may be empty): the
    /// 00 00 ff ff trailer is then inflated and the stream must end on a block boundary.
    /// `max_output` bounds the inflated size of the whole message (all pieces): TooBig is
    /// returned before more than max_output bytes are appended, and `out` does not grow past
    /// its size at the message start plus max_output (plus a few KiB of slack when it had to
    /// be reallocated). After TooBig or Corrupt the connection must be failed; further calls
    /// return the same status. With the peer's no_context_takeover the decompressor is reset
    /// after each message. Also accepts what section 7.2.3 shows senders may do: several
    /// blocks per message, blocks with BFINAL set (later blocks follow, the window kept),
    /// stored blocks, and the empty-fragment 0x00.
    InflateStatus decompress(std::string_view piece, bool final, std::string& out, std::size_t max_output);

    /// Bytes inflated so far for the message being received (0 between messages).
    std::size_t message_inflated_bytes() const noexcept { return message_out_; }
    Role role() const noexcept { return role_; }  ///< our side, as constructed
    const DeflateAgreement& agreement() const noexcept { return agreement_; }  ///< as constructed

private:
    struct Zlib;  // the z_streams (heap, so that moving this object moves no z_stream)

    InflateStatus inflate_some(const std::uint8_t* data, std::size_t size, std::string& out, std::size_t max_output);
    InflateStatus fail(InflateStatus status) noexcept {
        inflate_failed_ = status;
        return status;
    }

    Role role_;
    DeflateAgreement agreement_;
    std::size_t min_compress_bytes_;
    int level_;
    int mem_level_;
    bool reset_deflate_each_message_;  // our side's no_context_takeover
    bool reset_inflate_each_message_;  // the peer's
    bool shared_deflater_;             // compress with this thread's stream (shared_compressor)
    bool free_inflater_each_message_;  // shared_compressor and the peer's no_context_takeover
    int deflate_window_bits_;          // ours (8 becomes 9, see DeflateOptions)
    int inflate_window_bits_;          // the peer's

    std::unique_ptr<Zlib> z_;
    std::size_t message_out_ = 0;  // inflated bytes of the current message
    bool clean_ = true;            // no input consumed since a message start or a stream end
    InflateStatus inflate_failed_ = InflateStatus::Ok;
};

}  // namespace websock::codec
