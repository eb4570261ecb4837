// The channelstream 0.7.1 HTTP API (and the 2015 one), sans I/O: a request and a read-only
// view of the State in, a decision out. It checks the caller (allow-list, signature, admin
// credentials), validates the body as channelstream's marshmallow schemas do (422 with the
// same field errors), and turns each state change into an operation for the Bus. The module
// (module.hpp) does the rest: publishing, long polls, WebSockets.
//
//   server API (signed)   POST /connect /subscribe /unsubscribe /user_state /channel_config
//                         /info /user_status (2015); POST|PATCH|DELETE /message
//   client API (open)     GET|POST /disconnect, GET /listen (long poll, JSONP), GET /ws
//   admin                 GET|POST /admin/admin.json, GET /admin (a page), GET|POST
//                         /admin/sign_in, GET|POST /admin/sign_out, GET /openapi.json
//
// The admin side takes HTTP Basic (admin_user, admin_secret), the cookie that
// /admin/sign_in sets (admin_auth.hpp), or a signed server request.
//
// Every path may sit under ChannelstreamConfig::url_prefix. Every answer carries
// channelstream's CORS headers. Thread-safe: handle() may run on many threads at once (the
// replay cache locks itself); the caller holds the State's lock around it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <websock/websock.hpp>

#include "hub/channelstream/admin_auth.hpp"
#include "hub/channelstream/config.hpp"
#include "hub/channelstream/signer.hpp"
#include "hub/channelstream/state.hpp"

namespace hub {
class PayloadRules;
}  // namespace hub

namespace hub::channelstream {

/// What to do with a request.
struct ApiOutcome {
    enum class Kind {
        NotOurs,  ///< not a channelstream path: let another module have it
        Respond,  ///< answer `response` now
        Publish,  ///< put `op` on the bus; answer with finish() once it applied here
        Listen,   ///< a long poll for `conn_id` (JSONP when `callback` is set)
    };
    /// How a published operation is answered.
    enum class Answer {
        FromState,  ///< the state's response to the operation (connect, subscribe, ...)
        Fixed,      ///< `fixed` (what /message echoes), whatever the state said
        Ok,         ///< true (/disconnect)
    };
    Kind kind = Kind::NotOurs;
    websock::HttpResponse response;
    /// Respond: not before this time (a failed sign-in is answered 0.5 s late, as in
    /// channelstream); 0: at once.
    Micros answer_at = 0;
    Json op;
    Answer answer = Answer::FromState;
    Json fixed;
    std::string conn_id;
    std::string callback;
};

class Api {
public:
    /// `node` names this hub process in the operations it makes.
    Api(ChannelstreamConfig config, std::string node);

    const ChannelstreamConfig& config() const noexcept { return config_; }
    /// The hub's payload rules (hub/payload_rules.hpp): POST and PATCH /message check each
    /// message sent to a channel against them before anything is published. Before serving.
    void set_payload_rules(const PayloadRules* rules) noexcept { payload_rules_ = rules; }
    const std::string& node() const noexcept { return node_; }

    /// Decide `request`; `now` is the Unix time in microseconds.
    ApiOutcome handle(const websock::HttpRequest& request, const State& state, Micros now);
    /// The answer to a published operation, from what applying it gave.
    websock::HttpResponse finish(const websock::HttpRequest& request, const ApiOutcome& outcome, const Applied& applied) const;
    /// The answer when the bus refused the operation.
    websock::HttpResponse bus_failure(const websock::HttpRequest& request, std::string_view reason) const;
    /// A long poll's answer: the messages as a JSON list, or JSONP.
    websock::HttpResponse poll_response(const websock::HttpRequest& request, const std::string& callback,
                                        const std::string& json_list) const;

    /// The path without the url_prefix, or nullopt when it is not under it.
    std::optional<std::string_view> local_path(std::string_view path) const;
    /// Whether answering `request` reads the state (every route but OPTIONS, /openapi.json and
    /// the admin page): a node still syncing (sync.hpp) refuses those with 503.
    bool needs_state(const websock::HttpRequest& request) const;
    /// Whether an upgrade to this path is ours (GET /ws).
    bool is_websocket_path(std::string_view path) const;
    /// The connection a /ws or /listen request names, canonical, if the state knows it.
    /// Sets `error` to the reason otherwise ("Wrong UUID format" / "Unknown connection").
    std::optional<std::string> known_connection(const websock::HttpRequest& request, const State& state,
                                                std::string* error) const;

    /// Add channelstream's CORS headers for this request.
    void add_cors(const websock::HttpRequest& request, websock::HttpResponse& response) const;
    /// The operation a node publishes about its own connections (attach, detach, touch, gc).
    Json make_op(std::string kind, Json fields, Micros now) const;

private:
    std::optional<websock::HttpResponse> check_signature(const websock::HttpRequest& request, Micros now);
    bool admin_authorised(const websock::HttpRequest& request, Micros now);
    /// POST /admin/sign_in: a redirect to /admin with the cookie, or the form again (later).
    ApiOutcome sign_in(const websock::HttpRequest& request, Micros now) const;
    /// The admin cookie's attributes (Path = url_prefix + /admin, Secure behind https).
    CookieAttributes admin_cookie(const websock::HttpRequest& request, std::chrono::seconds max_age) const;

    ChannelstreamConfig config_;
    std::string node_;
    AdminSessionSigner session_signer_;
    ReplayCache replay_cache_;
    Micros started_ = now_micros();  ///< for the admin page's uptime
    const PayloadRules* payload_rules_ = nullptr;
};

/// A JSON answer with channelstream's Content-Type.
websock::HttpResponse json_response(int status, const Json& body);

/// The OpenAPI (Swagger 2.0) description of the API.
const Json& openapi_description();
/// The admin page (HTML + inline script, no external resources).
std::string_view admin_page_html();
/// The sign-in form; `failed` adds a line saying the last try was wrong.
std::string sign_in_page_html(bool failed);

}  // namespace hub::channelstream
