// The resumable streams protocol apart from any socket: what a subscriber may send (parsed
// and checked here, every malformed input named), what the server sends back (each message
// built here, once), channel names, routes, publish formats and the bus payload.
//
// Wire format (docs/hub.md, "Resumable streams"): JSON text frames.
//   client -> server   {"op":"subscribe","channel":C[,"since":{"epoch":E,"offset":N}][,"ack":true]}
//                      {"op":"unsubscribe","channel":C}
//                      {"op":"ack","channel":C,"offset":N}          (cumulative)
//   server -> client   subscribed, message, unsubscribed, reset, error, notice (see the encoders)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <websock/websock.hpp>

namespace hub::streams {

/// The WebSocket subprotocol of this protocol (chosen when a client offers it; not required).
inline constexpr std::string_view kSubprotocol = "websock-hub.streams.v1";
/// Epochs are at most this long (the bus's rule: printable ASCII without spaces).
inline constexpr std::size_t kMaxEpochBytes = 64;

/// A place in a stream: the history it belongs to and the last offset seen there.
struct Position {
    std::string epoch;
    std::uint64_t offset = 0;
    bool operator==(const Position&) const = default;
};

// ---- what a subscriber sends ----

struct SubscribeOp {
    std::string channel;
    std::optional<Position> since;  ///< resume after this position
    bool ack = false;               ///< acknowledged delivery for this subscription
};
struct UnsubscribeOp {
    std::string channel;
};
struct AckOp {
    std::string channel;
    std::uint64_t offset = 0;  ///< every message up to and including this offset
};
using ClientOp = std::variant<SubscribeOp, UnsubscribeOp, AckOp>;

/// Why a client's frame was refused: a stable code, words for a human, and the op and
/// channel when they could be read (echoed in the error message).
struct ProtocolError {
    std::string code;  ///< "bad_json", "bad_op", "bad_channel", "bad_field", "bad_since", "bad_offset", ...
    std::string message;
    std::string op;
    std::string channel;
};

/// Parse one text frame from a subscriber. Unknown fields are refused (a typo such as
/// "snce" must not silently mean "no resume").
std::variant<ClientOp, ProtocolError> parse_client_op(std::string_view text, std::size_t max_channel_bytes);

/// 1..max bytes of A-Z a-z 0-9 and . _ - : @ = + ~ (one URL path segment, no escaping needed).
bool valid_channel_name(std::string_view name, std::size_t max_bytes);
/// Why a name is refused, for an error message; nullopt when it is fine.
std::optional<std::string> channel_name_problem(std::string_view name, std::size_t max_bytes);

// ---- what the server sends (each a JSON text) ----

/// The answer to subscribe: the stream's position now. `recovered` only when `since` was
/// given; `reason` only when it is false.
std::string encode_subscribed(std::string_view channel, const Position& position, std::optional<bool> recovered,
                              std::string_view reason, bool ack);

/// How a published body is carried.
enum class Format : char { Text = 't', Json = 'j', Binary = 'b' };
std::string_view format_name(Format format);  ///< "text", "json", "binary"

/// One message: data is a JSON string (text), the JSON value itself (json), or base64
/// (binary, with "encoding":"base64").
std::string encode_message(std::string_view channel, std::string_view epoch, std::uint64_t offset, Format format,
                           std::string_view data);
std::string encode_unsubscribed(std::string_view channel, std::string_view reason);
/// The stream's history was lost while subscribed (its epoch changed): what follows starts after `position`.
std::string encode_reset(std::string_view channel, const Position& position, std::string_view reason);
std::string encode_error(const ProtocolError& error);
/// Sent before the server closes the connection; `channel` may be empty.
std::string encode_notice(std::string_view notice, std::string_view channel, std::string_view message);

std::string base64(std::string_view bytes);

// ---- publishing ----

/// The format a Content-Type names: none -> text; text/* -> text; application/json or
/// */*+json -> json; application/octet-stream -> binary; anything else -> nullopt (415).
std::optional<Format> format_of_content_type(std::optional<std::string_view> content_type);

/// A checked body ready for the bus: text must be UTF-8, JSON must parse (it is stored
/// compactly, re-serialised once); nullopt with `problem` set otherwise.
std::optional<std::string> checked_body(Format format, std::string_view body, std::string& problem);

/// The bus payload (the history entry): one format byte, then the data.
std::string encode_payload(Format format, std::string_view data);
struct Payload {
    Format format = Format::Text;
    std::string_view data;
};
std::optional<Payload> decode_payload(std::string_view payload);

// ---- routes ----

struct Route {
    enum class Kind { None, Socket, Channel };
    Kind kind = Kind::None;
    std::string channel;  ///< Channel: percent-decoded, not yet checked
};
/// {prefix}streams (WebSocket) and {prefix}streams/{channel} (publish, position). The prefix
/// is normalised as aiows does ("/" or "/api/").
Route match_route(std::string_view path, std::string_view normalized_prefix);

}  // namespace hub::streams
