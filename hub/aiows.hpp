// AiowsModule: the aiows API (github.com/duverse/aiows) on the hub, so that an application
// written against aiows' README works unchanged.
//
//   GET  {prefix}/channel/{name}/   WebSocket: subscribe to a channel. The text "close" from the
//                                   client closes it; anything else a subscriber sends is ignored.
//   POST {prefix}/channel/{name}/   publish the body to a channel. Header Package-Type: text
//                                   (default), json or bytes, case-insensitive. 201 published
//                                   (also with no subscriber), 403 wrong or missing password,
//                                   400 unreadable body, 413/415/422 refused by the channel's
//                                   payload rule (hub/payload_rules.hpp), 503 the bus refused
//                                   it (Redis down).
//   POST {prefix}/broadcast/        a JSON object: channel -> list of {"text": "..."},
//                                   {"json": <any JSON>} or {"bytes": "<one char per byte>"}.
//
// A publish goes through the Bus (topic "aiows", a binary envelope naming channel, type and
// data) and is answered when the bus says it is on; every node then delivers what it hears
// to its own subscribers (on_bus_message -> ChannelRegistry). The details of each rule (channel
// names, passwords, where we differ from aiows) are in docs/hub.md.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <websock/websock.hpp>

#include "hub/module.hpp"
#include "hub/registry.hpp"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace hub {

namespace aiows {

/// What a package is sent as. Text and json go out as text frames, bytes as binary.
enum class PackageType : char { Text = 't', Json = 'j', Bytes = 'b' };

/// One message for one channel, its data ready to send (json already serialised once).
struct Package {
    std::string channel;  ///< normalised
    PackageType type = PackageType::Text;
    std::string data;
};

/// A parse failure: the short reason a 400 answer carries.
struct ParseError {
    std::string reason;
};

/// aiows' rule (MessagePool.clean_channel_name): strip surrounding whitespace, lower-case,
/// '_' becomes ':'. Applied to the percent-decoded name. ASCII letters only are lowered
/// (aiows lowers every Unicode letter; other bytes pass through unchanged here).
std::string normalize_channel_name(std::string_view name);

/// Where a request path leads. The prefix is normalised by normalize_url_prefix().
struct Route {
    enum class Kind { None, Channel, Broadcast };
    Kind kind = Kind::None;
    std::string channel;  ///< Channel: normalised; may be empty or too long (the caller refuses it)
};
/// "" -> "/", "api" -> "/api/", "/api" -> "/api/": the prefix always starts and ends with '/'.
std::string normalize_url_prefix(std::string_view prefix);
/// Match a (still percent-encoded) path: {prefix}channel/{name}/ (the last '/' optional) or
/// {prefix}broadcast/ (likewise). The name is one path segment, percent-decoded, then normalised.
Route match_route(std::string_view path, std::string_view normalized_prefix);

/// The Package-Type header: absent -> text; text/json/bytes in any case; else nullopt.
std::optional<PackageType> parse_package_type(std::optional<std::string_view> header);

/// The body of POST /channel/{name}/ as a package of `type`: text must be UTF-8, json must
/// parse (it is re-serialised compactly, once), bytes are taken as they are.
std::variant<Package, ParseError> parse_package(std::string channel, PackageType type, std::string_view body);

/// The body of POST /broadcast/: every package, in document order (channels in the order
/// they appear, each channel's list in its order). At most `max_packages` packages.
/// "bytes" is a JSON string whose characters U+0000..U+00FF are the bytes (what aiows'
/// README example "\x031\x032" means once Python's requests has serialised it), or an array
/// of numbers 0..255.
std::variant<std::vector<Package>, ParseError> parse_broadcast(std::string_view body, std::size_t max_packages,
                                                               std::size_t max_channel_name_bytes);

/// The bus payload for a list of packages, and back. The envelope is binary: a version byte,
/// then per package its type byte, a 4-byte big-endian channel length, the channel, a 4-byte
/// big-endian data length and the data.
std::string encode_envelope(const std::vector<Package>& packages);
/// Calls `each(channel, type, data)` for every package; false (after calling it for the
/// packages before) when the payload is malformed.
bool decode_envelope(std::string_view payload,
                     const std::function<void(std::string_view channel, PackageType type, std::string_view data)>& each);

/// Whether the request carries the password: the X-Hub-Password header, Authorization:
/// Bearer, or ?pwd= (aiows' way), compared in constant time. An empty password admits all.
bool password_accepted(const websock::HttpRequest& request, std::string_view password);

}  // namespace aiows

struct AiowsOptions {
    std::string url_prefix;  ///< "" (paths start at /channel/) or e.g. "/api"
    std::string password;    ///< empty: anybody may publish (a warning is logged at start)
    std::size_t max_channel_name_bytes = 256;  ///< longer names get 400 (they are map keys on every node)
    std::size_t max_broadcast_packages = 10000;  ///< one POST /broadcast/; more get 400
};

class AiowsModule final : public HubModule {
public:
    static constexpr std::string_view kTopic = "aiows";  ///< the bus topic of every aiows publish

    explicit AiowsModule(AiowsOptions options);
    ~AiowsModule() override;

    std::string_view name() const noexcept override { return "aiows"; }
    void start(const ModuleContext& context) override;
    bool handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder) override;
    bool owns_websocket(const websock::HttpRequest& request) const override;
    websock::HandshakeDecision handshake(const websock::HandshakeRequest& request,
                                         websock::HandshakeDecision policy_decision) override;
    void on_open(websock::Client& client) override;
    void on_message(websock::Client& client, std::string_view data, websock::MessageType type) override;
    void on_close(websock::Client& client, websock::CloseCode code, std::string_view reason) override;
    void on_bus_message(std::string_view topic, std::string_view payload) override;
    /// Closes every subscriber with 1012: a subscriber cannot learn otherwise that messages
    /// of its channels were lost, and may catch up by other means once it resubscribes.
    void on_bus_gap(std::string_view why) override;

    const ChannelRegistry& registry() const noexcept { return registry_; }

private:
    void publish(std::vector<aiows::Package> packages, const std::shared_ptr<websock::HttpResponder>& responder);
    /// The answer for the first package a payload rule refuses (413, 415 or 422), if any.
    std::optional<websock::HttpResponse> payload_refusal(const std::vector<aiows::Package>& packages) const;
    std::optional<std::string> channel_problem(std::string_view channel) const;  // why a name is refused

    AiowsOptions options_;
    std::string prefix_;  // normalised
    ModuleContext context_;
    ChannelRegistry registry_;
    prometheus::Counter* published_ = nullptr;     // packages accepted by the bus
    prometheus::Counter* publish_failed_ = nullptr;  // publishes the bus refused (503)
    prometheus::Counter* rejected_ = nullptr;      // 400/403 answers
};

}  // namespace hub
