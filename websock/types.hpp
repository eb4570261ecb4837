// Vocabulary types shared by every layer: message kinds, close codes, send results, errors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "websock/export.hpp"

namespace websock {

/// The two kinds of data message (RFC 6455 section 5.6).
enum class MessageType : std::uint8_t { Text, Binary };

/// Close status codes (RFC 6455 section 7.4.1, IANA registry). Values are sent in network
/// byte order; `NoStatus`, `Abnormal` and `TlsHandshake` are never put on the wire.
enum class CloseCode : std::uint16_t {
    Normal = 1000,
    GoingAway = 1001,
    ProtocolError = 1002,
    UnsupportedData = 1003,
    NoStatus = 1005,      ///< reported when the peer's close frame carried no code
    Abnormal = 1006,      ///< reported when TCP ended without a close frame
    InvalidPayload = 1007,
    PolicyViolation = 1008,
    MessageTooBig = 1009,
    MandatoryExtension = 1010,
    InternalError = 1011,
    ServiceRestart = 1012,
    TryAgainLater = 1013,
    BadGateway = 1014,
    TlsHandshake = 1015,
};

/// What happened to a message handed to `send`.
/// There is deliberately no "sent": only the client's own thread writes to its socket, so a
/// send can at best be accepted into the ordered outbound queue. See docs/design.md.
enum class SendResult : std::uint8_t {
    Queued,   ///< accepted; it will be written in order, after everything queued before it
    Dropped,  ///< the outbound queue was full and the policy is `QueueFullPolicy::Drop`
    Closed,   ///< the connection is closing or closed (or the queue overflowed and the policy closed it)
};

/// Where an error came from; the message says what happened.
enum class ErrorKind : std::uint8_t {
    Handshake,  ///< a bad or refused upgrade request (answered with an HTTP status)
    Protocol,   ///< the peer broke RFC 6455 (answered with a close code)
    Io,         ///< a socket call failed
    Timeout,    ///< a deadline passed (handshake, pong, close)
    Callback,   ///< a user callback threw
    QueueFull,  ///< an outbound queue passed its limit
    Limit,      ///< another named limit was hit (clients, sizes)
    Tls,        ///< the TLS layer failed
};

/// A whole message, as receive() and read_message() hand it over.
struct Message {
    MessageType type = MessageType::Text;  ///< text (valid UTF-8) or binary
    std::string data;                      ///< the whole payload
};

/// What went wrong, as on_error reports it.
struct Error {
    ErrorKind kind;       ///< the class of failure, for a program to act on
    std::string message;  ///< for a human (a log line)
};

WEBSOCK_API std::string_view to_string(ErrorKind kind) noexcept;  ///< the kind's name, for logs
WEBSOCK_API std::string_view to_string(CloseCode code) noexcept;  ///< RFC 6455's name for it ("normal closure")

}  // namespace websock
