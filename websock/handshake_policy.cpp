#include "websock/handshake_policy.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fmt/format.h>

namespace websock {

bool constant_time_equals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

/// The credentials of an "Authorization: Basic base64(user:password)" header.
std::optional<std::pair<std::string, std::string>> basic_credentials(const HttpRequest& request) {
    const auto header = request.header("Authorization");
    if (!header) return std::nullopt;
    std::string_view value = *header;
    const std::size_t space = value.find(' ');
    if (space == std::string_view::npos || !iequals(value.substr(0, space), "Basic")) return std::nullopt;
    value.remove_prefix(space + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (value.empty() || value.size() % 4 != 0 || value.size() > 4096) return std::nullopt;
    std::string decoded(value.size() / 4 * 3, '\0');
    const int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                       reinterpret_cast<const unsigned char*>(value.data()), static_cast<int>(value.size()));
    if (length < 0) return std::nullopt;
    std::size_t size = static_cast<std::size_t>(length);
    // EVP_DecodeBlock keeps the bytes that padding stands for; drop them.
    if (value.ends_with("==")) size -= 2;
    else if (value.ends_with("=")) size -= 1;
    decoded.resize(size);
    const std::size_t colon = decoded.find(':');
    if (colon == std::string::npos) return std::nullopt;
    return std::make_pair(decoded.substr(0, colon), decoded.substr(colon + 1));
}

}  // namespace

HandshakeDecision apply_policy(const HandshakePolicy& policy, const HandshakeRequest& request) {
    if (!policy.allowed_paths.empty()) {
        bool allowed = false;
        for (const auto& path : policy.allowed_paths) allowed = allowed || path == request.request.path;
        if (!allowed) return HandshakeDecision::rejected(404, "no WebSocket endpoint at this path");
    }
    if (!policy.allowed_origins.empty() || policy.require_origin) {
        if (!request.origin) {
            if (policy.require_origin) return HandshakeDecision::rejected(403, "an Origin header is required");
        } else {
            bool allowed = policy.allowed_origins.empty();
            for (const auto& origin : policy.allowed_origins) allowed = allowed || iequals(origin, *request.origin);
            if (!allowed) return HandshakeDecision::rejected(403, fmt::format("origin {} is not allowed", *request.origin));
        }
    }
    if (!policy.basic_auth_user.empty()) {
        const auto credentials = basic_credentials(request.request);
        // Both comparisons always run, so the time says nothing about which one failed.
        const bool user_ok = credentials && constant_time_equals(credentials->first, policy.basic_auth_user);
        const bool password_ok = credentials && constant_time_equals(credentials->second, policy.basic_auth_password);
        if (!(user_ok && password_ok)) {
            auto decision = HandshakeDecision::rejected(401, "authentication required");
            decision.headers.emplace_back("WWW-Authenticate",
                                          fmt::format("Basic realm=\"{}\", charset=\"UTF-8\"", policy.basic_auth_realm));
            return decision;
        }
    }
    std::string chosen;
    for (const auto& ours : policy.subprotocols) {
        for (const auto offered : request.subprotocols)
            if (offered == ours) {
                chosen = ours;
                break;
            }
        if (!chosen.empty()) break;
    }
    if (chosen.empty() && policy.require_subprotocol)
        return HandshakeDecision::rejected(400, "none of the offered subprotocols is supported");
    return HandshakeDecision::accepted(std::move(chosen));
}

}  // namespace websock
