// The extension API (RFC 6455 section 9): an extension is negotiated at the opening
// handshake, claims RSV bits, and transforms whole messages on their way out and in.
// permessage-deflate (RFC 7692) is built on it; a program can register its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "websock/codec/deflate.hpp"
#include "websock/codec/extension.hpp"
#include "websock/export.hpp"

namespace websock {

/// What Extension::decode() made of a piece.
enum class ExtensionStatus : std::uint8_t {
    Ok,       ///< the piece was decoded (more may follow)
    TooBig,   ///< the message would decode past the limit: the connection closes with 1009
    Invalid,  ///< not valid for this extension: the connection closes with 1007
};

/// One direction of one negotiated extension on one connection. Used by a single thread at a
/// time (the connection's), in message order.
class WEBSOCK_API Extension {
public:
    virtual ~Extension() = default;
    /// The extension's token, e.g. "permessage-deflate" (for logs and errors).
    virtual std::string_view name() const noexcept = 0;
    /// The RSV bits a transformed message carries on its first frame.
    virtual std::uint8_t rsv_bits() const noexcept = 0;
    /// Outgoing: transform a whole message into `out` (appended) and return true, or return
    /// false to send this message as it is (RSV bits clear).
    virtual bool encode(std::string_view message, std::string& out) = 0;
    /// Incoming: the next payload piece of a message whose first frame carried rsv_bits();
    /// `final` on the message's last piece. Append what it decodes to `out`, never making the
    /// message longer than `max_output`.
    virtual ExtensionStatus decode(std::string_view piece, bool final, std::string& out, std::size_t max_output) = 0;
};

/// What a successful negotiation gives a connection.
struct NegotiatedExtension {
    std::string response_element;        ///< this extension's element of the 101's Sec-WebSocket-Extensions
    std::unique_ptr<Extension> incoming;  ///< decodes what the peer sends
    std::unique_ptr<Extension> outgoing;  ///< encodes what we send
};

/// Negotiates an extension on the server side of the opening handshake.
class WEBSOCK_API ExtensionFactory {
public:
    virtual ~ExtensionFactory() = default;
    /// The extension's token, as it appears in Sec-WebSocket-Extensions.
    virtual std::string_view name() const noexcept = 0;
    /// The client's offers, every extension's, in header order (RFC 6455 section 9.1).
    /// Return nothing to leave this extension out of the connection.
    virtual std::optional<NegotiatedExtension> negotiate(const std::vector<codec::ExtensionOffer>& offers) = 0;
};

/// permessage-deflate (RFC 7692) as an extension factory (ServerOptions::deflate uses it).
WEBSOCK_API std::shared_ptr<ExtensionFactory> permessage_deflate(codec::DeflateOptions options);

/// One direction of permessage-deflate for an agreement reached by hand (the client side).
WEBSOCK_API std::unique_ptr<Extension> make_permessage_deflate(codec::Role role, const codec::DeflateAgreement& agreement,
                                                               const codec::DeflateOptions& options);

}  // namespace websock
