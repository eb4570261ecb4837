#include "hub/aiows.hpp"

#include <algorithm>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "hub/json_depth.hpp"
#include "hub/log.hpp"
#include "hub/metrics.hpp"
#include "hub/payload_rules.hpp"

namespace hub {

namespace aiows {

namespace {

constexpr const char* kTooDeep = "the JSON nests deeper than 128 levels";

constexpr char kEnvelopeVersion = 1;

// Python's str.strip() without arguments, on the ASCII range: space, \t \n \v \f \r and the
// four separators \x1c-\x1f.
bool is_python_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

void append_u32(std::string& out, std::size_t value) {
    const auto v = static_cast<std::uint32_t>(value);
    out.push_back(static_cast<char>(v >> 24));
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v));
}

bool read_u32(std::string_view& in, std::size_t& value) {
    if (in.size() < 4) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    value = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | std::size_t{p[3]};
    in.remove_prefix(4);
    return true;
}

bool read_bytes(std::string_view& in, std::size_t size, std::string_view& out) {
    if (in.size() < size) return false;
    out = in.substr(0, size);
    in.remove_prefix(size);
    return true;
}

// A JSON string whose characters are bytes (U+0000..U+00FF), as Python's str.encode('latin-1').
std::optional<std::string> latin1_bytes(const std::string& utf8) {
    std::string out;
    out.reserve(utf8.size());
    for (std::size_t i = 0; i < utf8.size(); ++i) {
        const auto c = static_cast<unsigned char>(utf8[i]);
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
        } else if ((c == 0xC2 || c == 0xC3) && i + 1 < utf8.size()) {
            // U+0080..U+00FF are the two-byte sequences C2 80..C3 BF (the parser checked UTF-8)
            const auto next = static_cast<unsigned char>(utf8[++i]);
            out.push_back(static_cast<char>(((c & 0x03) << 6) | (next & 0x3F)));
        } else {
            return std::nullopt;
        }
    }
    return out;
}

std::optional<std::string> byte_array(const nlohmann::ordered_json& array) {
    std::string out;
    out.reserve(array.size());
    for (const auto& item : array) {
        if (!item.is_number_integer()) return std::nullopt;
        const auto value = item.get<std::int64_t>();
        if (value < 0 || value > 255) return std::nullopt;
        out.push_back(static_cast<char>(value));
    }
    return out;
}

}  // namespace

std::string normalize_channel_name(std::string_view name) {
    while (!name.empty() && is_python_space(static_cast<unsigned char>(name.front()))) name.remove_prefix(1);
    while (!name.empty() && is_python_space(static_cast<unsigned char>(name.back()))) name.remove_suffix(1);
    std::string out(name);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        else if (c == '_') c = ':';
    }
    return out;
}

std::string normalize_url_prefix(std::string_view prefix) {
    std::string out = "/";
    while (!prefix.empty() && prefix.front() == '/') prefix.remove_prefix(1);
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    if (!prefix.empty()) {
        out.append(prefix);
        out.push_back('/');
    }
    return out;
}

Route match_route(std::string_view path, std::string_view normalized_prefix) {
    if (path.substr(0, normalized_prefix.size()) != normalized_prefix) return {};
    std::string_view rest = path.substr(normalized_prefix.size());
    if (rest == "broadcast/" || rest == "broadcast") return Route{Route::Kind::Broadcast, {}};
    constexpr std::string_view kChannel = "channel/";
    if (rest.substr(0, kChannel.size()) != kChannel) return {};
    std::string_view segment = rest.substr(kChannel.size());
    if (!segment.empty() && segment.back() == '/') segment.remove_suffix(1);
    if (segment.empty() || segment.find('/') != std::string_view::npos) return {};
    return Route{Route::Kind::Channel, normalize_channel_name(websock::percent_decode(segment))};
}

std::optional<PackageType> parse_package_type(std::optional<std::string_view> header) {
    if (!header) return PackageType::Text;
    std::string_view value = *header;
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (websock::iequals(value, "text")) return PackageType::Text;
    if (websock::iequals(value, "json")) return PackageType::Json;
    if (websock::iequals(value, "bytes")) return PackageType::Bytes;
    return std::nullopt;
}

std::variant<Package, ParseError> parse_package(std::string channel, PackageType type, std::string_view body) {
    Package package{std::move(channel), type, {}};
    switch (type) {
        case PackageType::Text:
            if (!websock::codec::is_valid_utf8(body)) return ParseError{"a text package must be UTF-8"};
            package.data.assign(body);
            break;
        case PackageType::Json: {
            if (!json_depth_within(body)) return ParseError{kTooDeep};
            const auto parsed = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);  // keeps key order
            if (parsed.is_discarded()) return ParseError{"the body is not valid JSON"};
            package.data = parsed.dump();
            break;
        }
        case PackageType::Bytes:
            package.data.assign(body);
            break;
    }
    return package;
}

std::variant<std::vector<Package>, ParseError> parse_broadcast(std::string_view body, std::size_t max_packages,
                                                               std::size_t max_channel_name_bytes) {
    // ordered_json keeps the document's order, so packages go out in the order they were written.
    if (!json_depth_within(body)) return ParseError{kTooDeep};
    const auto document = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) return ParseError{"the body is not valid JSON"};
    if (!document.is_object()) return ParseError{"the body must be a JSON object: channel -> list of packages"};
    std::vector<Package> packages;
    for (const auto& [raw_channel, list] : document.items()) {
        std::string channel = normalize_channel_name(raw_channel);
        if (channel.empty()) return ParseError{"empty channel name"};
        if (channel.size() > max_channel_name_bytes) return ParseError{"channel name too long"};
        if (!list.is_array()) return ParseError{"channel \"" + channel + "\": the packages must be a JSON list"};
        for (const auto& item : list) {
            if (packages.size() >= max_packages)
                return ParseError{"more than " + std::to_string(max_packages) + " packages in one broadcast"};
            if (!item.is_object() || item.size() != 1)
                return ParseError{"channel \"" + channel + "\": a package is an object with one key: text, json or bytes"};
            const auto entry = item.cbegin();  // the one key (not items(): its proxy is a temporary)
            const std::string& kind = entry.key();
            const auto& value = entry.value();
            Package package{channel, PackageType::Text, {}};
            if (kind == "text") {
                if (!value.is_string()) return ParseError{"channel \"" + channel + "\": a text package must be a string"};
                package.data = value.get<std::string>();
            } else if (kind == "json") {
                package.type = PackageType::Json;
                package.data = value.dump();
            } else if (kind == "bytes") {
                package.type = PackageType::Bytes;
                std::optional<std::string> bytes;
                if (value.is_string()) bytes = latin1_bytes(value.get_ref<const std::string&>());
                else if (value.is_array()) bytes = byte_array(value);
                if (!bytes)
                    return ParseError{"channel \"" + channel +
                                      "\": a bytes package is a string of characters U+0000..U+00FF, or a list of numbers 0..255"};
                package.data = std::move(*bytes);
            } else {
                return ParseError{"channel \"" + channel + "\": unknown package type \"" + kind + "\" (text, json or bytes)"};
            }
            packages.push_back(std::move(package));
        }
    }
    return packages;
}

std::string encode_envelope(const std::vector<Package>& packages) {
    std::size_t size = 1;
    for (const auto& p : packages) size += 9 + p.channel.size() + p.data.size();
    std::string out;
    out.reserve(size);
    out.push_back(kEnvelopeVersion);
    for (const auto& p : packages) {
        out.push_back(static_cast<char>(p.type));
        append_u32(out, p.channel.size());
        out.append(p.channel);
        append_u32(out, p.data.size());
        out.append(p.data);
    }
    return out;
}

bool decode_envelope(std::string_view payload,
                     const std::function<void(std::string_view channel, PackageType type, std::string_view data)>& each) {
    if (payload.empty() || payload.front() != kEnvelopeVersion) return false;
    payload.remove_prefix(1);
    while (!payload.empty()) {
        const char type = payload.front();
        if (type != 't' && type != 'j' && type != 'b') return false;
        payload.remove_prefix(1);
        std::size_t channel_size = 0;
        std::size_t data_size = 0;
        std::string_view channel;
        std::string_view data;
        if (!read_u32(payload, channel_size) || !read_bytes(payload, channel_size, channel)) return false;
        if (!read_u32(payload, data_size) || !read_bytes(payload, data_size, data)) return false;
        each(channel, static_cast<PackageType>(type), data);
    }
    return true;
}

bool password_accepted(const websock::HttpRequest& request, std::string_view password) {
    if (password.empty()) return true;
    bool accepted = false;
    // Every candidate is compared, so the time does not tell which one was tried.
    if (const auto header = request.header("X-Hub-Password"))
        accepted |= websock::constant_time_equals(*header, password);
    if (const auto authorization = request.header("Authorization")) {
        constexpr std::string_view kBearer = "Bearer ";
        if (authorization->size() > kBearer.size() && websock::iequals(authorization->substr(0, kBearer.size()), kBearer))
            accepted |= websock::constant_time_equals(authorization->substr(kBearer.size()), password);
    }
    if (const auto query = request.query_param("pwd")) accepted |= websock::constant_time_equals(*query, password);
    return accepted;
}

}  // namespace aiows

// ---- the module ---------------------------------------------------------------------------------

namespace {

// aiows answers with a JSON string body: "OK", "Not authorized", "Bad request". A message may
// quote a channel name, which is percent-decoded from the path and need not be UTF-8: bytes that
// are not become U+FFFD (the strict dump() would throw, and the client get 500).
websock::HttpResponse json_message(int status, std::string_view message) {
    return websock::HttpResponse::text(
        status, nlohmann::json(std::string(message)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
        "application/json");
}

void respond(const std::shared_ptr<websock::HttpResponder>& responder, websock::HttpResponse response) noexcept {
    try {
        responder->respond(std::move(response));
    } catch (...) {
        // Out of memory while answering: the server's response timeout answers 503 instead.
    }
}

}  // namespace

AiowsModule::AiowsModule(AiowsOptions options)
    : options_(std::move(options)), prefix_(aiows::normalize_url_prefix(options_.url_prefix)) {}

AiowsModule::~AiowsModule() = default;

void AiowsModule::start(const ModuleContext& context) {
    context_ = context;
    if (options_.password.empty())
        log_warning("aiows: NO PUBLISH PASSWORD IS SET: anyone who can reach {}channel/NAME/ and {}broadcast/ can publish "
                    "(set --pwd or HUB_PWD)",
                    prefix_, prefix_);
    if (context_.metrics == nullptr) return;
    Metrics& metrics = *context_.metrics;
    const prometheus::Labels api{{"api", "aiows"}};
    published_ = &metrics.counter("hub_published_total", "Packages accepted for publishing on this node", api);
    publish_failed_ = &metrics.counter("hub_publish_failures_total", "Publishes the bus refused (answered 503)", api);
    rejected_ = &metrics.counter("hub_rejected_requests_total", "Publish requests refused with 400, 403, 405, 413, 415, 422 or 426", api);
    auto& delivered = metrics.counter("hub_delivered_total", "Messages queued to a subscriber on this node", api);
    auto& dropped = metrics.counter("hub_dropped_total",
                                    "Messages a subscriber on this node did not take (closing, or its queue full)", api);
    auto& channels = metrics.gauge("hub_channels", "Channels with at least one subscriber on this node", api);
    auto& subscriptions = metrics.gauge("hub_subscriptions", "Channel subscriptions on this node", api);
    metrics.on_scrape([this, &delivered, &dropped, &channels, &subscriptions] {
        const RegistryStats stats = registry_.stats();
        Metrics::set_counter(delivered, static_cast<double>(stats.delivered));
        Metrics::set_counter(dropped, static_cast<double>(stats.dropped));
        channels.Set(static_cast<double>(stats.channels));
        subscriptions.Set(static_cast<double>(stats.subscriptions));
    });
}

std::optional<std::string> AiowsModule::channel_problem(std::string_view channel) const {
    if (channel.empty()) return "empty channel name";
    if (channel.size() > options_.max_channel_name_bytes)
        return "channel name longer than " + std::to_string(options_.max_channel_name_bytes) + " bytes";
    return std::nullopt;
}

bool AiowsModule::handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder) {
    const aiows::Route route = aiows::match_route(request.path, prefix_);
    if (route.kind == aiows::Route::Kind::None) return false;
    auto refuse = [&](websock::HttpResponse response) {
        if (rejected_ != nullptr) rejected_->Increment();
        respond(responder, std::move(response));
        return true;
    };

    if (route.kind == aiows::Route::Kind::Channel && request.method == "GET") {
        auto response = json_message(426, "Upgrade required: this is a WebSocket endpoint");
        response.header("Upgrade", "websocket");
        return refuse(std::move(response));
    }
    if (request.method != "POST") {
        auto response = json_message(405, "Method not allowed");
        response.header("Allow", route.kind == aiows::Route::Kind::Channel ? "GET, POST" : "POST");
        return refuse(std::move(response));
    }
    if (!aiows::password_accepted(request, options_.password)) return refuse(json_message(403, "Not authorized"));

    if (route.kind == aiows::Route::Kind::Channel) {
        if (const auto problem = channel_problem(route.channel)) return refuse(json_message(400, "Bad request: " + *problem));
        const auto type = aiows::parse_package_type(request.header("Package-Type"));
        if (!type) return refuse(json_message(400, "Bad request: Package-Type must be text, json or bytes"));
        auto parsed = aiows::parse_package(route.channel, *type, request.body);
        if (const auto* error = std::get_if<aiows::ParseError>(&parsed))
            return refuse(json_message(400, "Bad request: " + error->reason));
        std::vector<aiows::Package> packages;
        packages.push_back(std::move(std::get<aiows::Package>(parsed)));
        if (auto refusal = payload_refusal(packages)) return refuse(std::move(*refusal));
        publish(std::move(packages), responder);
        return true;
    }

    auto parsed = aiows::parse_broadcast(request.body, options_.max_broadcast_packages, options_.max_channel_name_bytes);
    if (const auto* error = std::get_if<aiows::ParseError>(&parsed))
        return refuse(json_message(400, "Bad request: " + error->reason));
    // Every package is checked before any is published: a broadcast is refused whole.
    if (auto refusal = payload_refusal(std::get<std::vector<aiows::Package>>(parsed))) return refuse(std::move(*refusal));
    publish(std::move(std::get<std::vector<aiows::Package>>(parsed)), responder);
    return true;
}

std::optional<websock::HttpResponse> AiowsModule::payload_refusal(const std::vector<aiows::Package>& packages) const {
    if (context_.payload_rules == nullptr) return std::nullopt;
    for (const auto& package : packages) {
        const PayloadKind kind = package.type == aiows::PackageType::Json    ? PayloadKind::Json
                                 : package.type == aiows::PackageType::Bytes ? PayloadKind::Binary
                                                                             : PayloadKind::Text;
        if (auto refusal = context_.payload_rules->check(package.channel, package.data, kind))
            return json_message(refusal->http_status, "Refused by the payload rule '" + refusal->rule + "' of " + refusal->message);
    }
    return std::nullopt;
}

void AiowsModule::publish(std::vector<aiows::Package> packages, const std::shared_ptr<websock::HttpResponder>& responder) {
    if (packages.empty() || context_.bus == nullptr) {
        respond(responder, json_message(201, "OK"));
        return;
    }
    const std::size_t count = packages.size();
    // One bus message for the whole request: it is published whole or not at all, and its
    // packages keep their order on every node.
    context_.bus->publish(std::string(kTopic), aiows::encode_envelope(packages),
                          [this, responder, count](bool ok, std::string_view error) {
                              if (ok) {
                                  if (published_ != nullptr) published_->Increment(static_cast<double>(count));
                                  respond(responder, json_message(201, "OK"));
                                  return;
                              }
                              if (publish_failed_ != nullptr) publish_failed_->Increment();
                              log_warning("aiows: a publish was refused by the bus: {}", error);
                              auto response = json_message(503, "Service unavailable: " + std::string(error));
                              response.header("Retry-After", "1");
                              respond(responder, std::move(response));
                          });
}

bool AiowsModule::owns_websocket(const websock::HttpRequest& request) const {
    return aiows::match_route(request.path, prefix_).kind == aiows::Route::Kind::Channel;
}

websock::HandshakeDecision AiowsModule::handshake(const websock::HandshakeRequest& request,
                                                  websock::HandshakeDecision policy_decision) {
    const aiows::Route route = aiows::match_route(request.request.path, prefix_);
    if (const auto problem = channel_problem(route.channel)) return websock::HandshakeDecision::rejected(400, *problem + "\n");
    return policy_decision;
}

void AiowsModule::on_open(websock::Client& client) {
    const aiows::Route route = aiows::match_route(client.path(), prefix_);
    registry_.subscribe(route.channel, client.shared_from_this());
}

void AiowsModule::on_message(websock::Client& client, std::string_view data, websock::MessageType type) {
    // aiows relays nothing a subscriber sends; the text "close" ends the subscription.
    if (type == websock::MessageType::Text && data == "close") client.close(websock::CloseCode::Normal);
}

void AiowsModule::on_close(websock::Client& client, websock::CloseCode, std::string_view) {
    registry_.remove_client(client.id());
}

void AiowsModule::on_bus_gap(std::string_view why) {
    const auto subscribers = registry_.clients();
    log_warning("aiows: closing {} subscriber(s) with 1012: {}", subscribers.size(), why);
    for (const auto& client : subscribers) client->close(websock::CloseCode::ServiceRestart, "messages were lost (the bus lost data); subscribe again");
}

void AiowsModule::on_bus_message(std::string_view, std::string_view payload) {
    const bool ok = aiows::decode_envelope(payload, [this](std::string_view channel, aiows::PackageType type, std::string_view data) {
        registry_.publish(channel, data,
                          type == aiows::PackageType::Bytes ? websock::MessageType::Binary : websock::MessageType::Text);
    });
    if (!ok) log_error("aiows: a malformed message on the bus ({} bytes) was not delivered in full", payload.size());
}

}  // namespace hub
