// Handshake policy: who may open a WebSocket, on which path, from which Origin, with which
// subprotocol and credentials. One hook sees every valid upgrade request before the 101 and
// decides; ready-made options (ServerOptions::policy) cover the common rules and run first.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "websock/export.hpp"
#include "websock/http.hpp"

namespace websock {

/// An upgrade request that passed RFC 6455's checks, as the policy hook sees it.
struct HandshakeRequest {
    const HttpRequest& request;                   ///< path, query, every header
    std::string_view peer_address;                ///< "127.0.0.1:50412", "[::1]:50412" or "unix"
    std::optional<std::string_view> origin;       ///< the Origin header, when sent (browsers always send it)
    std::vector<std::string_view> subprotocols;   ///< Sec-WebSocket-Protocol, in the client's order
};

/// The hook's answer: accept (optionally choosing a subprotocol and adding headers to the
/// 101), or reject with an HTTP status and body.
struct HandshakeDecision {
    bool accept = true;             ///< false: answer `status` with `body` instead of 101
    int status = 403;               ///< when rejecting
    std::string body;               ///< when rejecting: a short text for the client
    std::string subprotocol;        ///< when accepting: one of the offered ones, or empty for none
    HttpHeaders headers;            ///< extra headers, on the 101 or on the rejection

    /// Accept, with this subprotocol (empty: none).
    static HandshakeDecision accepted(std::string subprotocol = {}) {
        HandshakeDecision decision;
        decision.subprotocol = std::move(subprotocol);
        return decision;
    }
    /// Reject with this HTTP status (401, 403, ...) and body.
    static HandshakeDecision rejected(int status, std::string body) {
        HandshakeDecision decision;
        decision.accept = false;
        decision.status = status;
        decision.body = std::move(body);
        return decision;
    }
};

/// Ready-made rules, checked in this order before the user's hook.
struct HandshakePolicy {
    /// Paths a WebSocket may open on ("/chat"); empty allows every path. Others get 404.
    std::vector<std::string> allowed_paths;
    /// Origins allowed to connect ("https://example.com", exact, case-insensitive); empty
    /// allows all. A request without Origin (not a browser) is allowed unless
    /// `require_origin`. Others get 403: the defence against cross-site WebSocket hijacking.
    std::vector<std::string> allowed_origins;
    bool require_origin = false;  ///< refuse (403) a request without Origin
    /// Subprotocols we speak, in our order of preference: the first that the client also
    /// offered is chosen. Empty: none is chosen. A client offering only unknown ones is still
    /// accepted without a subprotocol (RFC 6455 section 4.2.2) unless `require_subprotocol`.
    std::vector<std::string> subprotocols;
    bool require_subprotocol = false;  ///< refuse (400) a client that offers none of `subprotocols`
    /// HTTP Basic authentication (RFC 7617): when `basic_auth_user` is set, a request without
    /// the right credentials gets 401 with WWW-Authenticate. Compared in constant time.
    /// Basic sends the password in the clear: use it over wss:// only.
    std::string basic_auth_user;
    std::string basic_auth_password;          ///< the password that goes with basic_auth_user
    std::string basic_auth_realm = "websock";  ///< the realm of the 401's WWW-Authenticate
};

/// Apply the ready-made rules; returns a rejection, or an acceptance with the chosen
/// subprotocol (then the user's hook, if any, has the last word).
WEBSOCK_API HandshakeDecision apply_policy(const HandshakePolicy& policy, const HandshakeRequest& request);

/// Constant-time comparison of two strings (the time depends only on the lengths).
WEBSOCK_API bool constant_time_equals(std::string_view a, std::string_view b) noexcept;

}  // namespace websock
