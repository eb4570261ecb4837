#include "hub/channelstream/api.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdio>

#include "hub/channelstream/validation.hpp"
#include "hub/json_depth.hpp"
#include "hub/payload_rules.hpp"

namespace hub::channelstream {

namespace {

using websock::HttpRequest;
using websock::HttpResponse;

constexpr std::string_view kSecretHeader = "X-Channelstream-Secret";
constexpr std::string_view kApiVersion = "0.7.1";  ///< the channelstream API this speaks
/// channelstream sleeps this long before answering a wrong sign-in ("make potential brute
/// forcing non-feasible"); we hold the answer back as long without holding a thread.
constexpr Micros kFailedSignInDelay = 500'000;

Json bad_signature() { return {{"request", "Bad Signature"}}; }

/// "127.0.0.1:50412" -> "127.0.0.1", "[::1]:50412" -> "::1", "unix" stays.
std::string peer_host(std::string_view peer) {
    if (peer.starts_with('[')) {
        const auto close = peer.find(']');
        return std::string(peer.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
    }
    const auto colon = peer.rfind(':');
    if (colon != std::string_view::npos && peer.find(':') == colon) return std::string(peer.substr(0, colon));
    return std::string(peer);
}

bool equal_constant_time(std::string_view a, std::string_view b) {
    // Compare equal-length digests so the time does not depend on where they differ, nor
    // (beyond the hashing) on the lengths.
    unsigned char da[32], db[32];
    unsigned int la = 0, lb = 0;
    EVP_Digest(a.data(), a.size(), da, &la, EVP_sha256(), nullptr);
    EVP_Digest(b.data(), b.size(), db, &lb, EVP_sha256(), nullptr);
    return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

/// A JSONP callback must be a JavaScript name path, nothing that could inject script.
bool valid_callback(std::string_view name) {
    if (name.empty() || name.size() > 128) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' || c == '.';
    });
}

/// Python's str(timedelta) without the fraction: "3:04:05", "2 days, 3:04:05".
std::string uptime_text(Micros elapsed) {
    const std::int64_t seconds = std::max<std::int64_t>(0, elapsed / 1'000'000);
    const std::int64_t days = seconds / 86400;
    char clock[32];
    std::snprintf(clock, sizeof clock, "%lld:%02lld:%02lld", static_cast<long long>(seconds % 86400 / 3600),
                  static_cast<long long>(seconds % 3600 / 60), static_cast<long long>(seconds % 60));
    if (days == 0) return clock;
    return std::to_string(days) + (days == 1 ? " day, " : " days, ") + clock;
}

enum class Route { Connect, Subscribe, Unsubscribe, UserState, UserStatus, Message, ChannelConfig, Info, Disconnect, Listen,
                   WebSocket, Admin, AdminJson, SignIn, SignOut, OpenApi };

std::optional<Route> route_of(std::string_view path) {
    static const std::array<std::pair<std::string_view, Route>, 16> kRoutes{{
        {"/connect", Route::Connect},
        {"/subscribe", Route::Subscribe},
        {"/unsubscribe", Route::Unsubscribe},
        {"/user_state", Route::UserState},
        {"/user_status", Route::UserStatus},
        {"/message", Route::Message},
        {"/channel_config", Route::ChannelConfig},
        {"/info", Route::Info},
        {"/disconnect", Route::Disconnect},
        {"/listen", Route::Listen},
        {"/ws", Route::WebSocket},
        {"/admin", Route::Admin},
        {"/admin/admin.json", Route::AdminJson},
        {"/admin/sign_in", Route::SignIn},
        {"/admin/sign_out", Route::SignOut},
        {"/openapi.json", Route::OpenApi},
    }};
    for (const auto& [name, route] : kRoutes)
        if (path == name) return route;
    return std::nullopt;
}

ApiOutcome respond(HttpResponse response) {
    ApiOutcome outcome;
    outcome.kind = ApiOutcome::Kind::Respond;
    outcome.response = std::move(response);
    return outcome;
}

ApiOutcome respond_json(int status, const Json& body) { return respond(json_response(status, body)); }

ApiOutcome method_not_allowed(std::string_view allowed) {
    HttpResponse response = json_response(405, {{"request", "Method not allowed"}});
    response.header("Allow", std::string(allowed));
    return respond(std::move(response));
}

ApiOutcome publish(Json op, ApiOutcome::Answer answer, Json fixed = nullptr) {
    ApiOutcome outcome;
    outcome.kind = ApiOutcome::Kind::Publish;
    outcome.op = std::move(op);
    outcome.answer = answer;
    outcome.fixed = std::move(fixed);
    return outcome;
}

/// The JSON body; an empty body reads as `empty`.
std::optional<Json> parse_body(const HttpRequest& request, const Json& empty) {
    const bool blank = std::all_of(request.body.begin(), request.body.end(), [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; });
    if (blank) return empty;
    if (!json_depth_within(request.body)) return std::nullopt;  // see hub/json_depth.hpp
    Json body = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return std::nullopt;
    return body;
}

ApiOutcome not_json() { return respond_json(400, {{"request", "The body is not valid JSON"}}); }

ApiOutcome redirect(std::string location) {
    HttpResponse response = HttpResponse::text(302, "");
    response.header("Location", std::move(location));
    return respond(std::move(response));
}

/// The values of every admin cookie the request carries.
std::vector<std::string> admin_cookie_values(const HttpRequest& request) {
    std::vector<std::string_view> cookie_headers;
    for (const auto& [name, value] : request.headers)
        if (websock::iequals(name, "Cookie")) cookie_headers.push_back(value);
    return cookie_values(cookie_headers, kAdminCookieName);
}

/// Python's str.strip() on ASCII whitespace (channelstream strips both form fields).
std::string strip(std::string text) {
    constexpr std::string_view kWhitespace = " \t\n\r\f\v";
    const auto first = text.find_first_not_of(kWhitespace);
    if (first == std::string::npos) return {};
    return text.substr(first, text.find_last_not_of(kWhitespace) - first + 1);
}

}  // namespace

HttpResponse json_response(int status, const Json& body) {
    return HttpResponse::text(status, body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
}

Api::Api(ChannelstreamConfig config, std::string node)
    : config_(std::move(config)),
      node_(std::move(node)),
      session_signer_(config_.cookie_secret.empty() ? config_.secret : config_.cookie_secret, config_.admin_user, config_.admin_secret) {}

std::optional<std::string_view> Api::local_path(std::string_view path) const {
    if (config_.url_prefix.empty()) return path;
    if (!path.starts_with(config_.url_prefix)) return std::nullopt;
    path.remove_prefix(config_.url_prefix.size());
    if (!path.empty() && path.front() != '/') return std::nullopt;
    return path;
}

bool Api::is_websocket_path(std::string_view path) const { return local_path(path) == std::string_view("/ws"); }

std::optional<std::string> Api::known_connection(const HttpRequest& request, const State& state, std::string* error) const {
    const auto conn_id = request.query_param("conn_id");
    if (!conn_id) {
        if (error) *error = "Wrong UUID format";
        return std::nullopt;
    }
    if (state.connection(*conn_id) != nullptr) return *conn_id;  // a 2015 client's own id
    const auto canonical = canonical_uuid(*conn_id);
    if (!canonical) {
        if (error) *error = "Wrong UUID format";
        return std::nullopt;
    }
    if (state.connection(*canonical) == nullptr) {
        if (error) *error = "Unknown connection";
        return std::nullopt;
    }
    return canonical;
}

void Api::add_cors(const HttpRequest& request, HttpResponse& response) const {
    bool allow = config_.allow_cors.empty();
    if (!allow) {
        const std::string origin(request.header("Origin").value_or("<>"));
        allow = std::any_of(config_.allow_cors.begin(), config_.allow_cors.end(),
                            [&](const std::string& domain) { return origin.find(domain) != std::string::npos; });
    }
    if (allow) response.header("Access-Control-Allow-Origin", "*");
    response.header("XDomainRequestAllowed", "1");
    response.header("Access-Control-Allow-Methods", "GET, POST, OPTIONS, PUT, DELETE, PATCH");
    response.header("Access-Control-Allow-Headers",
                    "Content-Type, Depth, User-Agent, X-File-Size, X-Requested-With, If-Modified-Since, X-File-Name, "
                    "Cache-Control, Pragma, Origin, Connection, Referer, Cookie, X-Channelstream-Secret, X-Channelstream-Signature");
    response.header("Access-Control-Max-Age", "86400");
}

Json Api::make_op(std::string kind, Json fields, Micros now) const {
    fields["op"] = std::move(kind);
    fields["id"] = random_uuid();
    fields["at"] = now;
    fields["node"] = node_;
    return fields;
}

std::optional<HttpResponse> Api::check_signature(const HttpRequest& request, Micros now) {
    const std::string host = peer_host(request.peer_address);
    const auto& allowed = config_.allow_posting_from;
    const bool ip_ok = host == "unix" || std::find(allowed.begin(), allowed.end(), "0.0.0.0") != allowed.end() ||
                       std::find(allowed.begin(), allowed.end(), host) != allowed.end();
    if (!ip_ok) return json_response(403, {{"request", "Address not allowed to use the server API"}});

    const std::int64_t now_seconds = now / 1'000'000;
    if (const auto strong = request.header(kStrongSignatureHeader)) {
        RequestVerifyOptions options;
        options.max_age = config_.signature_max_age;
        options.max_future_skew = config_.signature_max_future_skew;
        const RequestVerification verified =
            request_verify(*strong, {request.method, request.target, request.body}, config_.secret, now_seconds, options);
        if (verified.status != SignatureStatus::Valid) return json_response(401, bad_signature());
        const std::int64_t expires = verified.timestamp + options.max_age.count() + 1;
        switch (replay_cache_.check_and_remember(verified.mac_hex, expires, now_seconds)) {
            case ReplayCache::Result::Fresh: return std::nullopt;
            case ReplayCache::Result::Replayed: return json_response(401, {{"request", "Replayed Signature"}});
            case ReplayCache::Result::Full: return json_response(503, {{"request", "Too many signed requests; try again"}});
        }
    }
    std::optional<std::string> secret;
    if (const auto header = request.header(kSecretHeader)) secret = std::string(*header);
    else secret = request.query_param("secret");
    if (!secret || secret->empty()) {
        return json_response(403, {{"request", config_.require_strong_signatures ? "Signature required (X-Channelstream-Signature)"
                                                                                 : "Signature required"}});
    }
    if (config_.require_strong_signatures) return json_response(401, bad_signature());
    TimestampVerifyOptions options;
    if (config_.validate_requests) options.max_age = config_.signature_max_age;
    else options.max_age.reset();
    options.max_future_skew = config_.signature_max_future_skew;
    if (timestamp_verify(*secret, config_.secret, now_seconds, options).status != SignatureStatus::Valid)
        return json_response(401, bad_signature());
    return std::nullopt;
}

bool Api::admin_authorised(const HttpRequest& request, Micros now) {
    if (const auto authorization = request.header("Authorization"); authorization && authorization->size() > 6 &&
                                                                     websock::iequals(authorization->substr(0, 6), "Basic ")) {
        if (auto decoded = base64_decode_lenient(authorization->substr(6))) {
            const auto colon = decoded->find(':');
            if (colon != std::string::npos) {
                // Both compared, always, so the time says nothing about which one was wrong.
                const bool user_ok = equal_constant_time(decoded->substr(0, colon), config_.admin_user);
                const bool password_ok = equal_constant_time(decoded->substr(colon + 1), config_.admin_secret);
                if (user_ok && password_ok) return true;
            }
        }
    }
    // The cookie of /admin/sign_in.
    for (const std::string& value : admin_cookie_values(request))
        if (session_signer_.verify(value, now / 1'000'000)) return true;
    // channelstream lets a signed server request in as well.
    if (request.header(kSecretHeader) || request.header(kStrongSignatureHeader) || request.query_param("secret"))
        return !check_signature(request, now).has_value();
    return false;
}

bool Api::needs_state(const HttpRequest& request) const {
    const auto path = local_path(request.path);
    if (!path || request.method == "OPTIONS") return false;
    const auto route = route_of(*path);
    return route && *route != Route::OpenApi && *route != Route::Admin && *route != Route::SignIn && *route != Route::SignOut;
}

CookieAttributes Api::admin_cookie(const HttpRequest& request, std::chrono::seconds max_age) const {
    CookieAttributes attributes;
    attributes.path = config_.url_prefix + "/admin";
    attributes.max_age = max_age;
    // Secure where the browser reaches us over https: said by the config (channelstream's
    // http_scheme / enforce_https) or by a TLS-terminating proxy.
    const auto forwarded = request.header("X-Forwarded-Proto");
    attributes.secure = websock::iequals(config_.http_scheme, "https") || config_.enforce_https ||
                        (forwarded && websock::iequals(*forwarded, "https"));
    return attributes;
}

ApiOutcome Api::sign_in(const HttpRequest& request, Micros now) const {
    FormFields fields;
    if (is_urlencoded_form(request.header("Content-Type"))) fields = parse_form(request.body);
    const std::string username = strip(form_value(fields, "username").value_or(""));
    const std::string password = strip(form_value(fields, "password").value_or(""));
    // Both compared, always, so the time says nothing about which one was wrong.
    const bool user_ok = equal_constant_time(username, config_.admin_user);
    const bool password_ok = equal_constant_time(password, config_.admin_secret);
    if (user_ok && password_ok) {
        ApiOutcome outcome = redirect(config_.url_prefix + "/admin");
        outcome.response.header("Set-Cookie", set_cookie_header(kAdminCookieName, session_signer_.issue(now / 1'000'000),
                                                                admin_cookie(request, kAdminSessionLifetime)));
        return outcome;
    }
    ApiOutcome outcome = respond(HttpResponse::text(200, sign_in_page_html(true), "text/html; charset=utf-8"));
    outcome.answer_at = now + kFailedSignInDelay;
    return outcome;
}

ApiOutcome Api::handle(const HttpRequest& request, const State& state, Micros now) {
    const auto path = local_path(request.path);
    if (!path) return {};
    const auto route = route_of(*path);
    if (!route) return {};

    ApiOutcome outcome = [&]() -> ApiOutcome {
        if (request.method == "OPTIONS") return respond(HttpResponse::text(200, ""));
        const std::string& method = request.method;
        Defaults defaults{now, [] { return random_uuid(); }};

        switch (*route) {
            case Route::WebSocket:
                return respond(HttpResponse::text(426, "GET /ws?conn_id=... is a WebSocket endpoint\n"));
            case Route::OpenApi:
                if (method != "GET") return method_not_allowed("GET, OPTIONS");
                return respond_json(200, openapi_description());
            case Route::SignIn:
                if (method == "GET") return respond(HttpResponse::text(200, sign_in_page_html(false), "text/html; charset=utf-8"));
                if (method == "POST") return sign_in(request, now);
                return method_not_allowed("GET, POST, OPTIONS");
            case Route::SignOut: {
                if (method != "GET" && method != "POST") return method_not_allowed("GET, POST, OPTIONS");
                ApiOutcome signed_out = redirect(config_.url_prefix + "/admin/sign_in");
                signed_out.response.header("Set-Cookie", set_cookie_header(kAdminCookieName, "", admin_cookie(request, std::chrono::seconds{0})));
                return signed_out;
            }
            case Route::Admin:
            case Route::AdminJson: {
                if (*route == Route::Admin && method != "GET") return method_not_allowed("GET, OPTIONS");
                if (*route == Route::AdminJson && method != "GET" && method != "POST") return method_not_allowed("GET, POST, OPTIONS");
                if (!admin_authorised(request, now)) {
                    // As channelstream: the page sends a browser to the sign-in form.
                    if (*route == Route::Admin) return redirect(config_.url_prefix + "/admin/sign_in");
                    HttpResponse response = json_response(401, {{"request", "Admin credentials required"}});
                    // The Basic challenge, unless the caller is a signed-in page whose cookie
                    // expired: that one should go back to the form, not get a password prompt.
                    if (admin_cookie_values(request).empty())
                        response.header("WWW-Authenticate", "Basic realm=\"channelstream admin\", charset=\"UTF-8\"");
                    return respond(std::move(response));
                }
                if (*route == Route::Admin) return respond(HttpResponse::text(200, std::string(admin_page_html()), "text/html; charset=utf-8"));
                Json info = state.admin_info();
                info["uptime"] = uptime_text(now - started_);
                info["version"] = kApiVersion;
                return respond_json(200, info);
            }
            case Route::Listen: {
                if (method != "GET") return method_not_allowed("GET, OPTIONS");
                std::string error;
                const auto conn_id = known_connection(request, state, &error);
                if (!conn_id) {
                    if (error == "Unknown connection") return respond_json(401, {{"request", "Unknown connection"}});
                    return respond_json(422, Json::array({error}));
                }
                ApiOutcome listen;
                listen.kind = ApiOutcome::Kind::Listen;
                listen.conn_id = *conn_id;
                listen.callback = request.query_param("callback").value_or("");
                if (!listen.callback.empty() && !valid_callback(listen.callback))
                    return respond_json(400, {{"callback", {"Not a valid JavaScript function name."}}});
                return listen;
            }
            case Route::Disconnect: {
                if (method != "GET" && method != "POST") return method_not_allowed("GET, POST, OPTIONS");
                Json conn_id = request.query_param("conn_id") ? Json(*request.query_param("conn_id")) : Json();
                if (method == "POST") {
                    const auto body = parse_body(request, Json::object());
                    if (!body) return not_json();
                    if (body->is_object() && body->contains("conn_id")) conn_id = (*body)["conn_id"];
                }
                const Loaded loaded = load_disconnect(conn_id, state);
                if (!loaded.ok()) return respond_json(422, loaded.errors);
                return publish(make_op("disconnect", loaded.data, now), ApiOutcome::Answer::FromState);
            }
            default:
                break;
        }

        // The signed server API.
        const bool is_message = *route == Route::Message;
        if (is_message ? (method != "POST" && method != "PATCH" && method != "DELETE") : method != "POST") {
            if (*route != Route::Info) return method_not_allowed(is_message ? "POST, PATCH, DELETE, OPTIONS" : "POST, OPTIONS");
        }
        if (auto refused = check_signature(request, now)) return respond(std::move(*refused));

        if (*route == Route::Info) {
            const auto body = parse_body(request, nullptr);
            if (!body) return not_json();
            if (body->is_null()) {
                InfoOptions everything;
                return respond_json(200, state.channels_info(std::nullopt, everything));
            }
            const Loaded loaded = load_info(*body);
            if (!loaded.ok()) return respond_json(422, loaded.errors);
            std::optional<std::vector<std::string>> channels;
            if (loaded.data.contains("channels")) channels = loaded.data["channels"].get<std::vector<std::string>>();
            return respond_json(200, state.channels_info(channels, InfoOptions::from_json(loaded.data)));
        }

        const auto body = parse_body(request, nullptr);
        if (!body) return not_json();
        const Json& json = *body;
        switch (*route) {
            case Route::Connect: {
                const Loaded loaded = load_connect(json, defaults);
                if (!loaded.ok()) return respond_json(422, loaded.errors);
                return publish(make_op("connect", loaded.data, now), ApiOutcome::Answer::FromState);
            }
            case Route::Subscribe:
            case Route::Unsubscribe: {
                const Loaded loaded = load_subscribe(json, request.query_param("conn_id"), state);
                if (!loaded.ok()) return respond_json(422, loaded.errors);
                return publish(make_op(*route == Route::Subscribe ? "subscribe" : "unsubscribe", loaded.data, now),
                               ApiOutcome::Answer::FromState);
            }
            case Route::UserState:
            case Route::UserStatus: {
                const Loaded loaded = *route == Route::UserState ? load_user_state(json, state) : load_user_status(json, state);
                if (!loaded.ok()) return respond_json(422, loaded.errors);
                return publish(make_op("user_state", loaded.data, now), ApiOutcome::Answer::FromState);
            }
            case Route::ChannelConfig: {
                const Loaded loaded = load_channel_configs(json.is_null() ? Json::object() : json);
                if (!loaded.ok()) return respond_json(422, loaded.errors);
                return publish(make_op("channel_config", {{"configs", loaded.data}}, now), ApiOutcome::Answer::FromState);
            }
            case Route::Message: {
                Loaded loaded = method == "POST"    ? load_messages(json, defaults)
                                : method == "PATCH" ? load_edits(json, defaults)
                                                    : load_deletes(json);
                if (!loaded.ok()) return respond_json(422, loaded.errors);
                if (loaded.data.empty()) return respond_json(200, Json::array());
                // Payload rules: every message to a channel is checked before any is published,
                // so a request is refused whole. Private messages (pm_users, no channel) are
                // not channel publishes and pass.
                if (payload_rules_ != nullptr && method != "DELETE") {
                    for (const auto& message : loaded.data) {
                        const auto channel = message.find("channel");
                        const auto content = message.find("message");
                        if (channel == message.end() || !channel->is_string() || content == message.end()) continue;
                        if (auto refusal = payload_rules_->check(channel->get_ref<const std::string&>(), content->dump(),
                                                                 PayloadKind::Json))
                            return respond_json(refusal->http_status,
                                                {{"message", Json::array({refusal->message})}, {"rule", refusal->rule}});
                    }
                }
                const char* kind = method == "POST" ? "message" : method == "PATCH" ? "edit" : "delete";
                return publish(make_op(kind, {{"messages", loaded.data}}, now), ApiOutcome::Answer::Fixed, loaded.data);
            }
            default:
                return respond_json(404, {{"request", "Not found"}});
        }
    }();
    if (outcome.kind == ApiOutcome::Kind::Respond) add_cors(request, outcome.response);
    return outcome;
}

HttpResponse Api::finish(const HttpRequest& request, const ApiOutcome& outcome, const Applied& applied) const {
    HttpResponse response;
    if (applied.status != 200) response = json_response(applied.status, applied.response);
    else if (outcome.answer == ApiOutcome::Answer::Fixed) response = json_response(200, outcome.fixed);
    else response = json_response(200, applied.response);
    add_cors(request, response);
    return response;
}

HttpResponse Api::bus_failure(const HttpRequest& request, std::string_view reason) const {
    HttpResponse response = json_response(503, {{"request", "Not applied: " + std::string(reason)}});
    add_cors(request, response);
    return response;
}

HttpResponse Api::poll_response(const HttpRequest& request, const std::string& callback, const std::string& json_list) const {
    HttpResponse response = callback.empty() ? HttpResponse::text(200, json_list, "application/json")
                                             : HttpResponse::text(200, callback + "(" + json_list + ")", "application/javascript");
    response.header("Cache-Control", "no-store");
    add_cors(request, response);
    return response;
}

}  // namespace hub::channelstream
