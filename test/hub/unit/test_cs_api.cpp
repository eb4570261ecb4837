// The channelstream HTTP API, sans I/O: requests in, decisions (answers, operations, long
// polls) out, against a State the test drives by applying the operations itself.
#include <doctest/doctest.h>

#include <string>

#include "hub/channelstream/api.hpp"

using namespace hub::channelstream;
using websock::HttpRequest;
using websock::HttpResponse;

namespace {

constexpr Micros kNow = 1'600'000'000'000'000;
constexpr std::int64_t kNowSeconds = 1'600'000'000;

HttpRequest request(std::string method, std::string target, std::string body = {}, websock::HttpHeaders headers = {},
                    std::string peer = "127.0.0.1:50000") {
    HttpRequest r;
    r.method = std::move(method);
    r.target = target;
    const auto q = target.find('?');
    r.path = target.substr(0, q);
    r.query = q == std::string::npos ? "" : target.substr(q + 1);
    r.body = std::move(body);
    r.headers = std::move(headers);
    r.peer_address = std::move(peer);
    return r;
}

websock::HttpHeaders signed_headers(std::int64_t at = kNowSeconds, const std::string& secret = "secret") {
    return {{"X-Channelstream-Secret", timestamp_sign("channelstream", secret, at)}, {"Content-Type", "application/json"}};
}

HttpRequest signed_post(std::string target, const Json& body) { return request("POST", std::move(target), body.dump(), signed_headers()); }

std::optional<std::string> header(const HttpResponse& response, std::string_view name) {
    for (const auto& [key, value] : response.headers)
        if (websock::iequals(key, name)) return value;
    return std::nullopt;
}

Json body(const HttpResponse& response) { return Json::parse(response.body); }

/// A node: the API and its state; published operations are applied at once.
struct Node {
    ChannelstreamConfig config;
    std::unique_ptr<Api> api;
    State state;
    explicit Node(ChannelstreamConfig c = {}) : config(std::move(c)), api(std::make_unique<Api>(config, "node-1")) {}

    ApiOutcome decide(const HttpRequest& r, Micros now = kNow) { return api->handle(r, state, now); }
    /// The final answer, applying the operation if one was made.
    HttpResponse answer(const HttpRequest& r, Micros now = kNow) {
        ApiOutcome outcome = decide(r, now);
        REQUIRE(outcome.kind != ApiOutcome::Kind::NotOurs);
        REQUIRE(outcome.kind != ApiOutcome::Kind::Listen);
        if (outcome.kind == ApiOutcome::Kind::Respond) return outcome.response;
        CHECK(outcome.op["node"] == "node-1");
        CHECK(outcome.op["at"] == now);
        const Applied applied = state.apply(outcome.op);
        return api->finish(r, outcome, applied);
    }
    std::string connect(const std::string& user, Json channels = Json::array()) {
        const HttpResponse r = answer(signed_post("/connect", {{"username", user}, {"channels", channels}}));
        REQUIRE(r.status == 200);
        return body(r)["conn_id"].get<std::string>();
    }
};

}  // namespace

TEST_CASE("cs api: routing") {
    Node node;
    SUBCASE("other paths belong to other modules") {
        CHECK(node.decide(request("GET", "/channel/x/")).kind == ApiOutcome::Kind::NotOurs);
        CHECK(node.decide(request("POST", "/connectx")).kind == ApiOutcome::Kind::NotOurs);
    }
    SUBCASE("url_prefix") {
        ChannelstreamConfig config;
        config.url_prefix = "/cs";
        Node prefixed(config);
        CHECK(prefixed.decide(request("POST", "/connect")).kind == ApiOutcome::Kind::NotOurs);
        CHECK(prefixed.decide(request("POST", "/csconnect")).kind == ApiOutcome::Kind::NotOurs);
        CHECK(prefixed.answer(signed_post("/cs/connect", {{"username", "u"}})).status == 200);
        CHECK(prefixed.api->is_websocket_path("/cs/ws"));
        CHECK_FALSE(prefixed.api->is_websocket_path("/ws"));
    }
    SUBCASE("OPTIONS answers the CORS preflight on every path") {
        const HttpResponse r = node.answer(request("OPTIONS", "/message"));
        CHECK(r.status == 200);
        CHECK(header(r, "Access-Control-Allow-Origin") == "*");
        CHECK(header(r, "Access-Control-Allow-Methods") == "GET, POST, OPTIONS, PUT, DELETE, PATCH");
        CHECK(header(r, "Access-Control-Allow-Headers")->find("X-Channelstream-Secret") != std::string::npos);
    }
    SUBCASE("wrong methods get 405 with Allow") {
        const HttpResponse r = node.answer(request("GET", "/connect", "", signed_headers()));
        CHECK(r.status == 405);
        CHECK(header(r, "Allow") == "POST, OPTIONS");
        CHECK(node.answer(request("PUT", "/message", "[]", signed_headers())).status == 405);
    }
    SUBCASE("a plain GET /ws is told to upgrade") { CHECK(node.answer(request("GET", "/ws?conn_id=x")).status == 426); }
    SUBCASE("/openapi.json") {
        const HttpResponse r = node.answer(request("GET", "/openapi.json"));
        CHECK(r.status == 200);
        const Json spec = body(r);
        CHECK(spec["swagger"] == "2.0");
        for (const char* path : {"/connect", "/subscribe", "/unsubscribe", "/user_state", "/message", "/channel_config", "/info",
                                 "/listen", "/ws", "/disconnect", "/admin/admin.json"})
            CHECK_MESSAGE(spec["paths"].contains(path), path);
        CHECK(spec["paths"]["/message"].contains("patch"));
        CHECK(spec["definitions"]["ConnectBody"]["required"] == Json({"username"}));
    }
}

TEST_CASE("cs api: CORS as channelstream decides it") {
    ChannelstreamConfig config;
    config.allow_cors = {"example.com"};
    Node node(config);
    const HttpResponse allowed = node.answer(request("OPTIONS", "/connect", "", {{"Origin", "https://app.example.com"}}));
    CHECK(header(allowed, "Access-Control-Allow-Origin") == "*");
    const HttpResponse other = node.answer(request("OPTIONS", "/connect", "", {{"Origin", "https://evil.test"}}));
    CHECK_FALSE(header(other, "Access-Control-Allow-Origin").has_value());
    CHECK(header(other, "XDomainRequestAllowed") == "1");
}

TEST_CASE("cs api: who may call the server API") {
    Node node;
    const Json payload = {{"username", "u"}};
    SUBCASE("no signature: 403") {
        CHECK(node.answer(request("POST", "/connect", payload.dump())).status == 403);
    }
    SUBCASE("a fresh signature, in the header or in ?secret=") {
        CHECK(node.answer(signed_post("/connect", payload)).status == 200);
        const std::string secret = timestamp_sign("channelstream", "secret", kNowSeconds);
        CHECK(node.answer(request("POST", "/connect?secret=" + secret, payload.dump())).status == 200);
    }
    SUBCASE("bad, expired and future-dated signatures: 401 Bad Signature") {
        for (const auto& headers : {signed_headers(kNowSeconds, "wrong"), signed_headers(kNowSeconds - 61), signed_headers(kNowSeconds + 31),
                                    websock::HttpHeaders{{"X-Channelstream-Secret", "garbage"}}}) {
            const HttpResponse r = node.answer(request("POST", "/connect", payload.dump(), headers));
            CHECK(r.status == 401);
            CHECK(body(r) == Json({{"request", "Bad Signature"}}));
        }
        CHECK(node.state.user_count() == 0);
    }
    SUBCASE("validate_requests off: any age, but the MAC still counts") {
        ChannelstreamConfig config;
        config.validate_requests = false;
        Node lax(config);
        CHECK(lax.answer(request("POST", "/connect", payload.dump(), signed_headers(kNowSeconds - 86400))).status == 200);
        CHECK(lax.answer(request("POST", "/connect", payload.dump(), signed_headers(kNowSeconds, "wrong"))).status == 401);
        CHECK(lax.answer(request("POST", "/connect", payload.dump())).status == 403);
    }
    SUBCASE("allow_posting_from") {
        CHECK(node.answer(request("POST", "/connect", payload.dump(), signed_headers(), "[::1]:4000")).status == 200);
        const HttpResponse refused = node.answer(request("POST", "/connect", payload.dump(), signed_headers(), "10.1.2.3:4000"));
        CHECK(refused.status == 403);
        ChannelstreamConfig config;
        config.allow_posting_from = {"0.0.0.0"};
        Node open(config);
        CHECK(open.answer(request("POST", "/connect", payload.dump(), signed_headers(), "10.1.2.3:4000")).status == 200);
    }
    SUBCASE("the client API needs no signature") {
        const std::string conn_id = node.connect("u");
        CHECK(node.answer(request("GET", "/disconnect?conn_id=" + conn_id)).status == 200);
    }
}

TEST_CASE("cs api: the HMAC-SHA256 request signature") {
    ChannelstreamConfig config;
    config.require_strong_signatures = true;
    Node node(config);
    const std::string text = Json({{"username", "u"}}).dump();
    auto strong = [&](const std::string& method, const std::string& target, const std::string& body_text, std::int64_t at = kNowSeconds) {
        return websock::HttpHeaders{{"X-Channelstream-Signature", request_sign({method, target, body_text}, "secret", at)}};
    };
    SUBCASE("accepted once; the same signature again is a replay") {
        const auto headers = strong("POST", "/connect", text);
        CHECK(node.answer(request("POST", "/connect", text, headers)).status == 200);
        const HttpResponse again = node.answer(request("POST", "/connect", text, headers));
        CHECK(again.status == 401);
        CHECK(body(again) == Json({{"request", "Replayed Signature"}}));
    }
    SUBCASE("bound to the endpoint and the body") {
        CHECK(node.answer(request("POST", "/subscribe", text, strong("POST", "/connect", text))).status == 401);
        CHECK(node.answer(request("POST", "/connect", R"({"username":"v"})", strong("POST", "/connect", text))).status == 401);
        CHECK(node.answer(request("POST", "/connect", text, strong("POST", "/connect", text, kNowSeconds - 61))).status == 401);
    }
    SUBCASE("with require_strong_signatures the itsdangerous scheme is refused") {
        CHECK(node.answer(request("POST", "/connect", text, signed_headers())).status == 401);
        CHECK(node.answer(request("POST", "/connect", text)).status == 403);
    }
}

TEST_CASE("cs api: 422 with marshmallow's field errors") {
    Node node;
    auto errors = [&](const std::string& target, const Json& payload) {
        const HttpResponse r = node.answer(signed_post(target, payload));
        CHECK(r.status == 422);
        return body(r);
    };
    CHECK(errors("/connect", Json::object()) == Json({{"username", {"Missing data for required field."}}}));
    CHECK(errors("/connect", {{"username", ""}}) == Json({{"username", {"Length must be between 1 and 512."}}}));
    CHECK(errors("/connect", {{"username", "u"}, {"conn_id", "nope"}}) == Json({{"conn_id", {"Not a valid UUID."}}}));
    CHECK(errors("/connect", {{"username", "u"}, {"channels", "a"}}) == Json({{"channels", {"Not a valid list."}}}));
    CHECK(errors("/connect", {{"username", "u"}, {"user_state", {{"k", {1, 2}}}}}) ==
          Json({{"user_state", {{"k", {{"value", {"Value is not type of string, integer, boolean or float."}}}}}}}));
    CHECK(errors("/connect", {{"username", "u"}, {"channel_configs", {{"a", {{"history_size", -1}}}}}}) ==
          Json({{"channel_configs", {{"a", {{"value", {{"history_size", {"Must be at least 0."}}}}}}}}}));
    CHECK(errors("/connect", {{"username", "u"}, {"info", {{"include_history", "maybe"}}}}) ==
          Json({{"info", {{"include_history", {"Not a valid boolean."}}}}}));
    const Json subscribe = errors("/subscribe", Json::object());
    CHECK(subscribe["conn_id"] == Json({"Missing data for required field."}));
    CHECK(subscribe["channels"] == Json({"Missing data for required field."}));
    CHECK(errors("/subscribe", {{"conn_id", "12345678-1234-5678-1234-567812345678"}, {"channels", Json::array()}}) ==
          Json({{"conn_id", {"Unknown connection"}}, {"channels", {"Shorter than minimum length 1."}}}));
    CHECK(errors("/user_state", Json::object()) == Json({{"user", {"Missing data for required field."}}}));
    CHECK(errors("/user_state", {{"user", "blabla"}}) == Json({{"user", {"Unknown user"}}}));
    CHECK(errors("/message", Json::object()) == Json({{"_schema", {"Invalid input type."}}}));
    CHECK(errors("/message", Json::array({Json::object()})) == Json({{"0", {{"user", {"Missing data for required field."}}}}}));
    CHECK(errors("/message", Json::array({{{"user", "u"}, {"channel", "a"}, {"timestamp", "yesterday"}}})) ==
          Json({{"0", {{"timestamp", {"Not a valid datetime."}}}}}));
    CHECK(errors("/channel_config", {{"c", {{"notify_presence", "x"}}}}) == Json({{"c", {{"notify_presence", {"Not a valid boolean."}}}}}));
    CHECK(errors("/info", {{"nothing", 1}}) == Json({{"info", {"Missing data for required field."}}}));
    SUBCASE("a body that is not JSON: 400") {
        const HttpResponse r = node.answer(request("POST", "/connect", "{not json", signed_headers()));
        CHECK(r.status == 400);
    }
    SUBCASE("PATCH and DELETE need uuids") {
        const HttpResponse r = node.answer(request("PATCH", "/message", Json::array({{{"channel", "a"}}}).dump(), signed_headers()));
        CHECK(r.status == 422);
        CHECK(body(r) == Json({{"0", {{"uuid", {"Missing data for required field."}}}}}));
        const HttpResponse d = node.answer(request("DELETE", "/message", Json::array({{{"uuid", "x"}}}).dump(), signed_headers()));
        CHECK(body(d) == Json({{"0", {{"uuid", {"Not a valid UUID."}}}}}));
    }
}

TEST_CASE("cs api: the server API end to end on one node") {
    Node node;
    SUBCASE("connect: minimal body, defaults, response shape") {
        const HttpResponse r = node.answer(signed_post("/connect", {{"username", "user_123"}, {"channels", {"a"}}}));
        REQUIRE(r.status == 200);
        const Json j = body(r);
        CHECK(canonical_uuid(j["conn_id"].get<std::string>()) == j["conn_id"]);
        CHECK(j["username"] == "user_123");
        CHECK(j["state"] == Json::object());
        CHECK(j["public_state"] == Json::object());
        CHECK(j["channels"] == Json({"a"}));
        const Json& a = j["channels_info"]["channels"]["a"];
        CHECK(a["settings"]["history_size"] == 10);
        CHECK(a["settings"]["store_frames"] == true);
        CHECK(a["users"] == Json({"user_123"}));
        CHECK(j["channels_info"]["users"] == Json::array({{{"user", "user_123"}, {"state", Json::object()}}}));
        CHECK(header(r, "Content-Type") == "application/json");
        CHECK(header(r, "Access-Control-Allow-Origin") == "*");
    }
    SUBCASE("the 2015 API: user for username, any conn_id, /user_status, /info with channels") {
        const HttpResponse r = node.answer(signed_post("/connect", {{"user", "old"}, {"conn_id", "my-conn-1"}, {"channels", {"x"}}}));
        REQUIRE(r.status == 200);
        CHECK(body(r)["conn_id"] == "my-conn-1");
        CHECK(body(r)["username"] == "old");
        CHECK(node.answer(signed_post("/subscribe", {{"conn_id", "my-conn-1"}, {"channels", {"y"}}})).status == 200);
        const HttpResponse status = node.answer(signed_post("/user_status", {{"user", "old"}, {"status", 2}}));
        REQUIRE(status.status == 200);
        CHECK(body(status)["user_state"] == Json({{"status", 2}}));
        const HttpResponse info = node.answer(signed_post("/info", {{"channels", {"x"}}}));
        CHECK(body(info)["channels"].size() == 1);
        CHECK(body(info)["channels"].contains("x"));
        const HttpResponse listen = node.decide(request("GET", "/listen?conn_id=my-conn-1")).kind == ApiOutcome::Kind::Listen
                                        ? HttpResponse::text(200, "")
                                        : HttpResponse::text(500, "");
        CHECK(listen.status == 200);
    }
    SUBCASE("message: defaults filled, the sent list echoed, messages with nowhere to go dropped") {
        node.connect("u", {"some_chan"});
        const HttpResponse r = node.answer(signed_post("/message", Json::array({{{"type", "message"}, {"user", "system"}, {"channel", "some_chan"}, {"message", {{"text", "my_text"}}}},
                                                                                 {{"user", "system"}, {"message", {{"text", "nowhere"}}}}})));
        REQUIRE(r.status == 200);
        const Json sent = body(r);
        REQUIRE(sent.size() == 1);
        const Json& m = sent[0];
        CHECK(m["pm_users"] == Json::array());
        CHECK(m["exclude_users"] == Json::array());
        CHECK(m["channel"] == "some_chan");
        CHECK(m["no_history"] == false);
        CHECK(m["edited"].is_null());
        CHECK(m["user"] == "system");
        CHECK(m["message"] == Json({{"text", "my_text"}}));
        CHECK(m["timestamp"] == "2020-09-13T12:26:40");
        CHECK(canonical_uuid(m["uuid"].get<std::string>()) == m["uuid"]);
        CHECK_FALSE(m.contains("type"));
        CHECK(node.state.total_unique_messages() == 1);
        CHECK(node.answer(signed_post("/message", Json::array())).status == 200);
    }
    SUBCASE("edit and delete: echo, edited filled in, history changed") {
        node.answer(signed_post("/channel_config", {{"test", {{"store_history", true}}}}));
        node.connect("u", {"test"});
        const Json sent = body(node.answer(signed_post("/message", Json::array({{{"user", "system"}, {"channel", "test"}, {"message", {{"text", "t"}}}}}))));
        const std::string uuid = sent[0]["uuid"];
        const HttpResponse edit = node.answer(request("PATCH", "/message",
                                                      Json::array({{{"uuid", uuid}, {"channel", "test"}, {"message", {{"text", "edited"}}}, {"timestamp", "2010-01-01T01:01"}}}).dump(),
                                                      signed_headers()));
        REQUIRE(edit.status == 200);
        CHECK(body(edit)[0]["edited"] == "2020-09-13T12:26:40");
        CHECK(body(edit)[0]["timestamp"] == "2010-01-01T01:01:00");
        CHECK(node.state.channel("test")->history[0]["message"] == Json({{"text", "edited"}}));
        const HttpResponse del = node.answer(request("DELETE", "/message", Json::array({{{"uuid", uuid}, {"channel", "test"}}}).dump(), signed_headers()));
        REQUIRE(del.status == 200);
        CHECK(body(del)[0]["uuid"] == uuid);
        CHECK(node.state.channel("test")->history.empty());
    }
    SUBCASE("subscribe and unsubscribe take conn_id from the query too") {
        const std::string conn_id = node.connect("u", {"a"});
        const HttpResponse sub = node.answer(signed_post("/subscribe?conn_id=" + conn_id, {{"channels", {"b"}}}));
        REQUIRE(sub.status == 200);
        CHECK(body(sub)["channels"] == Json({"a", "b"}));
        CHECK(body(sub)["subscribed_to"] == Json({"b"}));
        const HttpResponse unsub = node.answer(signed_post("/unsubscribe", {{"conn_id", conn_id}, {"channels", {"a", "zzz"}}}));
        CHECK(body(unsub)["channels"] == Json({"b"}));
        CHECK(body(unsub)["unsubscribed_from"] == Json({"a"}));
    }
    SUBCASE("user_state") {
        node.connect("u");
        const HttpResponse r = node.answer(signed_post("/user_state", {{"user", "u"}, {"user_state", {{"bar", 2}}}, {"state_public_keys", {"bar"}}}));
        REQUIRE(r.status == 200);
        CHECK(body(r) == Json({{"user_state", {{"bar", 2}}}, {"changed_state", {{{"key", "bar"}, {"value", 2}}}}, {"public_keys", {"bar"}}}));
    }
    SUBCASE("channel_config answers the settings, without history or users") {
        const HttpResponse r = node.answer(signed_post("/channel_config", {{"chanx1", {{"notify_presence", true}, {"history_size", 3}}}}));
        REQUIRE(r.status == 200);
        CHECK(body(r)["channels"]["chanx1"]["settings"]["history_size"] == 3);
        CHECK(body(r)["users"] == Json::array());
        CHECK(body(node.answer(signed_post("/channel_config", Json::object())))["channels"] == Json::object());
    }
    SUBCASE("info: an empty body lists everything; info.channels and exclude_channels select") {
        node.connect("u", {"a", "b", "c"});
        CHECK(body(node.answer(request("POST", "/info", "", signed_headers())))["channels"].size() == 3);
        const Json some = body(node.answer(signed_post("/info", {{"info", {{"channels", {"a", "b", "nope"}}, {"exclude_channels", {"b"}}}}})));
        CHECK(some["channels"].size() == 1);
        CHECK(some["channels"].contains("a"));
        CHECK(some["users"][0]["user"] == "u");
    }
    SUBCASE("disconnect: GET or POST; true for a known id, false for an unknown UUID, 422 for no UUID") {
        const std::string conn_id = node.connect("u");
        // channelstream 0.7.1 validates only the UUID's form; the operation says false.
        const HttpResponse unknown = node.answer(request("GET", "/disconnect?conn_id=12345678-1234-5678-1234-567812345678"));
        CHECK(unknown.status == 200);
        CHECK(body(unknown) == false);
        CHECK(body(node.answer(request("POST", "/disconnect", R"({"conn_id": "{12345678-1234-5678-1234-567812345678}"})"))) == false);
        const HttpResponse not_uuid = node.answer(request("GET", "/disconnect?conn_id=nope"));
        CHECK(not_uuid.status == 422);
        CHECK(body(not_uuid) == Json({{"conn_id", {"Not a valid UUID."}}}));
        // 0.7.1's view passes {"conn_id": None} to the schema when there is none
        const HttpResponse missing = node.answer(request("POST", "/disconnect", "{}"));
        CHECK(missing.status == 422);
        CHECK(body(missing) == Json({{"conn_id", {"Field may not be null."}}}));
        CHECK(body(node.answer(request("GET", "/disconnect"))) == Json({{"conn_id", {"Field may not be null."}}}));
        CHECK(node.state.connection_count() == 1);
        const HttpResponse ok = node.answer(request("POST", "/disconnect", Json({{"conn_id", conn_id}}).dump()));
        CHECK(ok.status == 200);
        CHECK(body(ok) == true);
        CHECK(node.state.connection_count() == 0);
        CHECK(body(node.answer(request("POST", "/disconnect", Json({{"conn_id", conn_id}}).dump()))) == false);
    }
}

TEST_CASE("cs api: long poll requests") {
    Node node;
    const std::string conn_id = node.connect("u");
    SUBCASE("a known connection is a long poll; with a callback it is JSONP") {
        ApiOutcome o = node.decide(request("GET", "/listen?conn_id=" + conn_id + "&callback=cb.x_1"));
        REQUIRE(o.kind == ApiOutcome::Kind::Listen);
        CHECK(o.conn_id == conn_id);
        CHECK(o.callback == "cb.x_1");
        const HttpResponse jsonp = node.api->poll_response(request("GET", "/listen"), o.callback, "[]");
        CHECK(jsonp.body == "cb.x_1([])");
        CHECK(header(jsonp, "Content-Type") == "application/javascript");
        CHECK(node.api->poll_response(request("GET", "/listen"), "", "[1]").body == "[1]");
        // a UUID in another spelling finds the same connection
        std::string upper = conn_id;
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        CHECK(node.decide(request("GET", "/listen?conn_id=" + upper)).conn_id == conn_id);
    }
    SUBCASE("unknown: 401; not a UUID: 422; a callback that is not a name: 400") {
        CHECK(node.answer(request("GET", "/listen?conn_id=12345678-1234-5678-1234-567812345678")).status == 401);
        const HttpResponse bad = node.answer(request("GET", "/listen?conn_id=zzz"));
        CHECK(bad.status == 422);
        CHECK(body(bad) == Json({"Wrong UUID format"}));
        CHECK(node.answer(request("GET", "/listen?conn_id=" + conn_id + "&callback=alert(1)")).status == 400);
    }
}

TEST_CASE("cs api: admin") {
    ChannelstreamConfig config;
    config.admin_user = "boss";
    config.admin_secret = "pw";
    Node node(config);
    auto basic = [](const std::string& credentials) { return websock::HttpHeaders{{"Authorization", "Basic " + base64url_encode(credentials)}}; };
    SUBCASE("without credentials: 401 with a Basic challenge") {
        const HttpResponse r = node.answer(request("GET", "/admin/admin.json"));
        CHECK(r.status == 401);
        CHECK(header(r, "WWW-Authenticate")->starts_with("Basic "));
        CHECK(node.answer(request("GET", "/admin/admin.json", "", basic("boss:wrong"))).status == 401);
        CHECK(node.answer(request("GET", "/admin/admin.json", "", basic("other:pw"))).status == 401);
        // the page sends a browser to the sign-in form instead, as channelstream does
        const HttpResponse page = node.answer(request("GET", "/admin"));
        CHECK(page.status == 302);
        CHECK(header(page, "Location") == "/admin/sign_in");
    }
    SUBCASE("with them: the numbers, channels and users") {
        node.connect("u", {"a"});
        const HttpResponse r = node.answer(request("POST", "/admin/admin.json", "", basic("boss:pw"), "127.0.0.1:1"), kNow + 3'723'000'000);
        REQUIRE(r.status == 200);
        const Json j = body(r);
        CHECK(j["unique_user_count"] == 1);
        CHECK(j["remembered_user_count"] == 1);
        CHECK(j["total_connections"] == 1);
        CHECK(j["total_channels"] == 1);
        CHECK(j["channels"].contains("a"));
        CHECK(j["users"][0]["user"] == "u");
        CHECK(j["users"][0]["connections"].size() == 1);
        CHECK(j["version"] == "0.7.1");
        CHECK(j.contains("uptime"));
        const HttpResponse page = node.answer(request("GET", "/admin", "", basic("boss:pw")));
        CHECK(page.status == 200);
        CHECK(page.body.find("admin/admin.json") != std::string::npos);
        CHECK(page.body.find("http") == std::string::npos);  // no external resources
    }
    SUBCASE("a signed server request is let in too, as in channelstream") {
        CHECK(node.answer(request("GET", "/admin/admin.json", "", signed_headers())).status == 200);
    }
}

namespace {

std::vector<std::string> headers_named(const HttpResponse& response, std::string_view name) {
    std::vector<std::string> values;
    for (const auto& [key, value] : response.headers)
        if (websock::iequals(key, name)) values.push_back(value);
    return values;
}

HttpRequest form_post(std::string target, std::string form, std::string content_type = "application/x-www-form-urlencoded") {
    return request("POST", std::move(target), std::move(form), {{"Content-Type", std::move(content_type)}});
}

/// "auth_tkt=VALUE" out of a Set-Cookie value.
std::string cookie_pair(const std::string& set_cookie) { return set_cookie.substr(0, set_cookie.find(';')); }

}  // namespace

TEST_CASE("cs api: admin sign-in with a form and a cookie, as channelstream 0.7.1") {
    ChannelstreamConfig config;
    config.admin_user = "boss";
    config.admin_secret = "p@ss word";
    Node node(config);
    const auto admin_json = [&](const std::string& cookie, Micros now = kNow) {
        return node.answer(request("GET", "/admin/admin.json", "", {{"Cookie", cookie}}), now);
    };

    SUBCASE("GET /admin/sign_in: the form, posting username and password back to itself") {
        const HttpResponse r = node.answer(request("GET", "/admin/sign_in"));
        CHECK(r.status == 200);
        CHECK(header(r, "Content-Type")->starts_with("text/html"));
        for (const char* part : {"action=\"sign_in\"", "method=\"post\"", "name=\"username\"", "name=\"password\""})
            CHECK_MESSAGE(r.body.find(part) != std::string::npos, part);
        CHECK(r.body.find("Wrong") == std::string::npos);
        CHECK(r.body.find("http") == std::string::npos);  // no external resources
        CHECK_FALSE(node.api->needs_state(request("POST", "/admin/sign_in")));
        CHECK(node.answer(request("PUT", "/admin/sign_in")).status == 405);
    }
    SUBCASE("the right credentials: 302 to /admin with an HttpOnly, SameSite=Lax cookie that admin.json takes") {
        // channelstream strips both fields; '+' and %-escapes are the form's encoding
        const ApiOutcome o = node.decide(form_post("/admin/sign_in", "username=+boss%20&password=p%40ss+word&x=1"));
        REQUIRE(o.kind == ApiOutcome::Kind::Respond);
        CHECK(o.answer_at == 0);
        CHECK(o.response.status == 302);
        CHECK(header(o.response, "Location") == "/admin");
        const auto cookies = headers_named(o.response, "Set-Cookie");
        REQUIRE(cookies.size() == 1);
        CHECK(cookies[0].starts_with("auth_tkt="));
        CHECK(cookies[0].ends_with("; Path=/admin; Max-Age=43200; HttpOnly; SameSite=Lax"));
        const std::string cookie = cookie_pair(cookies[0]);

        const HttpResponse r = admin_json("theme=dark; " + cookie);
        CHECK(r.status == 200);
        CHECK(body(r)["version"] == "0.7.1");
        CHECK(node.answer(request("POST", "/admin/admin.json", "", {{"Cookie", cookie}})).status == 200);
        CHECK(node.answer(request("GET", "/admin", "", {{"Cookie", cookie}})).status == 200);
        // until it expires, twelve hours on; then no Basic challenge (back to the form instead)
        CHECK(admin_json(cookie, kNow + 43'199'000'000).status == 200);
        const HttpResponse expired = admin_json(cookie, kNow + 43'200'000'000);
        CHECK(expired.status == 401);
        CHECK_FALSE(header(expired, "WWW-Authenticate").has_value());
        // an unsigned or tampered cookie is nothing
        std::string forged = cookie;
        forged.back() = forged.back() == 'a' ? 'b' : 'a';
        CHECK(admin_json(forged).status == 401);
        CHECK(admin_json("auth_tkt=99999999999." + std::string(64, '0')).status == 401);
        // a node with another secret does not take it; one with the same does
        ChannelstreamConfig other_config = config;
        other_config.secret = "another";
        Node other(other_config);
        CHECK(other.answer(request("GET", "/admin/admin.json", "", {{"Cookie", cookie}})).status == 401);
        Node same(config);
        CHECK(same.answer(request("GET", "/admin/admin.json", "", {{"Cookie", cookie}})).status == 200);
    }
    SUBCASE("wrong credentials: the form again, no cookie, answered 0.5 s late") {
        for (const std::string form : {"username=boss&password=p%40ss", "username=bos&password=p%40ss+word", "password=p%40ss+word",
                                       "username=boss", ""}) {
            const ApiOutcome o = node.decide(form_post("/admin/sign_in", form));
            REQUIRE(o.kind == ApiOutcome::Kind::Respond);
            CHECK_MESSAGE(o.response.status == 200, form);
            CHECK(o.response.body.find("Wrong user name or password") != std::string::npos);
            CHECK(headers_named(o.response, "Set-Cookie").empty());
            CHECK(o.answer_at == kNow + 500'000);
        }
        // the right fields, but not as a form (webob reads no POST fields from JSON)
        const ApiOutcome json = node.decide(form_post("/admin/sign_in", "username=boss&password=p%40ss+word", "application/json"));
        CHECK(headers_named(json.response, "Set-Cookie").empty());
        CHECK(json.answer_at > 0);
        // with no Content-Type at all the body is read as a form
        const HttpResponse bare = node.answer(request("POST", "/admin/sign_in", "username=boss&password=p%40ss+word"));
        CHECK(bare.status == 302);
    }
    SUBCASE("cookie_secret, when set, signs the cookie instead of secret") {
        ChannelstreamConfig with_cookie_secret = config;
        with_cookie_secret.cookie_secret = "cookies only";
        Node a(with_cookie_secret);
        const HttpResponse r = a.answer(form_post("/admin/sign_in", "username=boss&password=p%40ss+word"));
        const std::string cookie = cookie_pair(headers_named(r, "Set-Cookie").at(0));
        CHECK(a.answer(request("GET", "/admin/admin.json", "", {{"Cookie", cookie}})).status == 200);
        CHECK(admin_json(cookie).status == 401);
    }
    SUBCASE("sign_out: 302 to the form, the cookie cleared") {
        const HttpResponse r = node.answer(request("GET", "/admin/sign_out"));
        CHECK(r.status == 302);
        CHECK(header(r, "Location") == "/admin/sign_in");
        CHECK(headers_named(r, "Set-Cookie") == std::vector<std::string>{"auth_tkt=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Lax"});
    }
    SUBCASE("under url_prefix; Secure behind https") {
        ChannelstreamConfig prefixed_config = config;
        prefixed_config.url_prefix = "/cs";
        Node prefixed(prefixed_config);
        HttpResponse r = prefixed.answer(form_post("/cs/admin/sign_in", "username=boss&password=p%40ss+word"));
        CHECK(header(r, "Location") == "/cs/admin");
        CHECK(headers_named(r, "Set-Cookie").at(0).find("; Path=/cs/admin;") != std::string::npos);
        CHECK(headers_named(r, "Set-Cookie").at(0).find("Secure") == std::string::npos);
        CHECK(header(prefixed.answer(request("GET", "/cs/admin")), "Location") == "/cs/admin/sign_in");
        HttpRequest proxied = form_post("/cs/admin/sign_in", "username=boss&password=p%40ss+word");
        proxied.headers.emplace_back("X-Forwarded-Proto", "https");
        CHECK(headers_named(prefixed.answer(proxied), "Set-Cookie").at(0).ends_with("; Secure"));
        prefixed_config.http_scheme = "https";
        Node https(prefixed_config);
        r = https.answer(form_post("/cs/admin/sign_in", "username=boss&password=p%40ss+word"));
        CHECK(headers_named(r, "Set-Cookie").at(0).ends_with("; Secure"));
    }
}
