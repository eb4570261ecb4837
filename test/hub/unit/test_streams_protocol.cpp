// The streams protocol apart from any socket: every client op and the ways each can be
// malformed, the server's messages, channel names, routes, Content-Types and bodies.
#include <doctest/doctest.h>

#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "hub/streams/protocol.hpp"

using namespace hub::streams;
using Json = nlohmann::json;

namespace {

constexpr std::size_t kMax = 200;

ClientOp ok(std::string_view text) {
    auto parsed = parse_client_op(text, kMax);
    if (const auto* error = std::get_if<ProtocolError>(&parsed)) FAIL_CHECK("refused: ", text, ": ", error->message);
    REQUIRE(std::holds_alternative<ClientOp>(parsed));
    return std::get<ClientOp>(parsed);
}

ProtocolError refused(std::string_view text, std::size_t max = kMax) {
    auto parsed = parse_client_op(text, max);
    if (std::holds_alternative<ClientOp>(parsed)) FAIL_CHECK("accepted: ", text);
    REQUIRE(std::holds_alternative<ProtocolError>(parsed));
    return std::get<ProtocolError>(parsed);
}

}  // namespace

TEST_CASE("streams protocol: a subscribe, plain, with since and with ack") {
    auto op = ok(R"({"op":"subscribe","channel":"news"})");
    auto& plain = std::get<SubscribeOp>(op);
    CHECK(plain.channel == "news");
    CHECK_FALSE(plain.since);
    CHECK_FALSE(plain.ack);

    op = ok(R"({"channel":"a.b:c","op":"subscribe","since":{"offset":41,"epoch":"e1f2"},"ack":true})");
    auto& resumed = std::get<SubscribeOp>(op);
    REQUIRE(resumed.since);
    CHECK(*resumed.since == Position{"e1f2", 41});
    CHECK(resumed.ack);

    op = ok(R"({"op":"subscribe","channel":"x","since":null,"ack":false})");
    CHECK_FALSE(std::get<SubscribeOp>(op).since);
    op = ok(R"({"op":"subscribe","channel":"x","since":{"epoch":"","offset":0}})");
    CHECK(*std::get<SubscribeOp>(op).since == Position{"", 0});
    op = ok(R"({"op":"subscribe","channel":"x","since":{"epoch":"e","offset":18446744073709551615}})");
    CHECK(std::get<SubscribeOp>(op).since->offset == 18446744073709551615ull);
}

TEST_CASE("streams protocol: unsubscribe and ack") {
    auto op = ok(R"({"op":"unsubscribe","channel":"news"})");
    CHECK(std::get<UnsubscribeOp>(op).channel == "news");
    op = ok(R"({"op":"ack","channel":"news","offset":7})");
    CHECK(std::get<AckOp>(op).offset == 7);
    op = ok(R"({"op":"ack","channel":"news","offset":0})");
    CHECK(std::get<AckOp>(op).offset == 0);
}

TEST_CASE("streams protocol: every malformed frame is refused with a code that says why") {
    struct Case {
        const char* text;
        const char* code;
    };
    const Case cases[] = {
        {"", "bad_json"},
        {"not json", "bad_json"},
        {R"({"op":"subscribe","channel":"x")", "bad_json"},
        {"[]", "bad_json"},
        {"\"subscribe\"", "bad_json"},
        {"42", "bad_json"},
        {"null", "bad_json"},
        {"{}", "bad_op"},
        {R"({"channel":"x"})", "bad_op"},
        {R"({"op":1,"channel":"x"})", "bad_op"},
        {R"({"op":null,"channel":"x"})", "bad_op"},
        {R"({"op":"SUBSCRIBE","channel":"x"})", "bad_op"},
        {R"({"op":"publish","channel":"x"})", "bad_op"},
        {R"({"op":"subscribe"})", "bad_channel"},
        {R"({"op":"subscribe","channel":7})", "bad_channel"},
        {R"({"op":"subscribe","channel":["x"]})", "bad_channel"},
        {R"({"op":"subscribe","channel":""})", "bad_channel"},
        {R"({"op":"subscribe","channel":"a b"})", "bad_channel"},
        {R"({"op":"subscribe","channel":"a/b"})", "bad_channel"},
        {R"({"op":"subscribe","channel":"a%2fb"})", "bad_channel"},
        {R"({"op":"subscribe","channel":"caf\u00e9"})", "bad_channel"},
        {R"({"op":"subscribe","channel":"a\u0000b"})", "bad_channel"},
        {R"({"op":"subscribe","channel":"x","snce":{"epoch":"e","offset":1}})", "bad_field"},
        {R"({"op":"subscribe","channel":"x","offset":1})", "bad_field"},
        {R"({"op":"unsubscribe","channel":"x","ack":true})", "bad_field"},
        {R"({"op":"ack","channel":"x","offset":1,"since":{}})", "bad_field"},
        {R"({"op":"subscribe","channel":"x","ack":"yes"})", "bad_field"},
        {R"({"op":"subscribe","channel":"x","ack":1})", "bad_field"},
        {R"({"op":"subscribe","channel":"x","since":5})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":"e:5"})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":[]})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"e"}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"offset":3}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":5,"offset":3}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"e","offset":-1}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"e","offset":1.5}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"e","offset":1.0}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"e","offset":"3"}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"e","offset":1e3}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"e","offset":18446744073709551616}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"e","offset":3,"x":1}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"has space","offset":3}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"tab\t","offset":3}})", "bad_since"},
        {R"({"op":"subscribe","channel":"x","since":{"epoch":"\u00e9","offset":3}})", "bad_since"},
        {R"({"op":"ack","channel":"x"})", "bad_offset"},
        {R"({"op":"ack","channel":"x","offset":null})", "bad_offset"},
        {R"({"op":"ack","channel":"x","offset":-3})", "bad_offset"},
        {R"({"op":"ack","channel":"x","offset":2.5})", "bad_offset"},
        {R"({"op":"ack","channel":"x","offset":"2"})", "bad_offset"},
        {R"({"op":"ack","channel":"x","offset":true})", "bad_offset"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const ProtocolError error = refused(c.text);
        CHECK(error.code == c.code);
        CHECK_FALSE(error.message.empty());
    }
    // An epoch of 65 characters is one too many.
    const std::string long_epoch = R"({"op":"subscribe","channel":"x","since":{"epoch":")" + std::string(65, 'e') + R"(","offset":1}})";
    CHECK(refused(long_epoch).code == "bad_since");
    CHECK(std::holds_alternative<ClientOp>(parse_client_op(
        R"({"op":"subscribe","channel":"x","since":{"epoch":")" + std::string(64, 'e') + R"(","offset":1}})", kMax)));
}

TEST_CASE("streams protocol: errors name the op and channel when they could be read") {
    auto error = refused(R"({"op":"ack","channel":"news","offset":-1})");
    CHECK(error.op == "ack");
    CHECK(error.channel == "news");
    error = refused(R"({"op":"subscribe","channel":"a b"})");
    CHECK(error.op == "subscribe");
    CHECK(error.channel.empty());  // an invalid name is never echoed
    error = refused(R"({"op":")" + std::string(100, 'z') + R"(","channel":"x"})");
    CHECK(error.op.empty());  // nor a long unknown op
    const Json encoded = Json::parse(encode_error(refused(R"({"op":"ack","channel":"news"})")));
    CHECK(encoded["type"] == "error");
    CHECK(encoded["error"] == "bad_offset");
    CHECK(encoded["op"] == "ack");
    CHECK(encoded["channel"] == "news");
}

TEST_CASE("streams protocol: channel names are bounded in length and characters") {
    CHECK(valid_channel_name("a", 200));
    CHECK(valid_channel_name("Az09._-:@=+~", 200));
    CHECK(valid_channel_name(std::string(200, 'a'), 200));
    CHECK_FALSE(valid_channel_name(std::string(201, 'a'), 200));
    CHECK(refused(R"({"op":"subscribe","channel":"abcd"})", 3).code == "bad_channel");
    for (const char* bad : {"", " ", "a/b", "a?b", "a#b", "a%b", "a\"b", "a\\b", "a*b", "\xc3\xa9"}) {
        CAPTURE(bad);
        CHECK_FALSE(valid_channel_name(bad, 200));
    }
}

TEST_CASE("streams protocol: the server's messages are JSON with every field") {
    Json subscribed = Json::parse(encode_subscribed("news", {"ep", 12}, std::nullopt, {}, false));
    CHECK(subscribed == Json{{"type", "subscribed"}, {"channel", "news"}, {"epoch", "ep"}, {"offset", 12}, {"ack", false}});
    subscribed = Json::parse(encode_subscribed("news", {"ep", 12}, true, {}, true));
    CHECK(subscribed["recovered"] == true);
    CHECK_FALSE(subscribed.contains("reason"));
    subscribed = Json::parse(encode_subscribed("news", {"ep", 12}, false, "epoch changed", false));
    CHECK(subscribed["recovered"] == false);
    CHECK(subscribed["reason"] == "epoch changed");

    Json message = Json::parse(encode_message("c", "ep", 3, Format::Text, "hé \"quoted\"\n"));
    CHECK(message == Json{{"type", "message"}, {"channel", "c"}, {"epoch", "ep"}, {"offset", 3}, {"format", "text"}, {"data", "hé \"quoted\"\n"}});
    message = Json::parse(encode_message("c", "ep", 4, Format::Json, R"({"a":[1,2]})"));
    CHECK(message["data"] == Json{{"a", {1, 2}}});
    CHECK(message["format"] == "json");
    message = Json::parse(encode_message("c", "ep", 5, Format::Binary, std::string("\x00\xff\x10", 3)));
    CHECK(message["data"] == "AP8Q");
    CHECK(message["encoding"] == "base64");
    CHECK(message["format"] == "binary");

    CHECK(Json::parse(encode_unsubscribed("c", {})) == Json{{"type", "unsubscribed"}, {"channel", "c"}});
    CHECK(Json::parse(encode_unsubscribed("c", "gone"))["reason"] == "gone");
    CHECK(Json::parse(encode_reset("c", {"new", 0}, "lost")) ==
          Json{{"type", "reset"}, {"channel", "c"}, {"epoch", "new"}, {"offset", 0}, {"reason", "lost"}});
    CHECK(Json::parse(encode_notice("ack_window_full", "c", "why")) ==
          Json{{"type", "notice"}, {"notice", "ack_window_full"}, {"channel", "c"}, {"message", "why"}});
    CHECK_FALSE(Json::parse(encode_notice("going_away", {}, "bye")).contains("channel"));
}

TEST_CASE("streams protocol: base64") {
    CHECK(base64("") == "");
    CHECK(base64("f") == "Zg==");
    CHECK(base64("fo") == "Zm8=");
    CHECK(base64("foo") == "Zm9v");
    CHECK(base64("foob") == "Zm9vYg==");
    CHECK(base64("fooba") == "Zm9vYmE=");
    CHECK(base64("foobar") == "Zm9vYmFy");
}

TEST_CASE("streams protocol: Content-Type decides the format") {
    CHECK(format_of_content_type(std::nullopt) == Format::Text);
    CHECK(format_of_content_type("") == Format::Text);
    CHECK(format_of_content_type("text/plain") == Format::Text);
    CHECK(format_of_content_type("Text/Plain; charset=utf-8") == Format::Text);
    CHECK(format_of_content_type("text/markdown") == Format::Text);
    CHECK(format_of_content_type("application/json") == Format::Json);
    CHECK(format_of_content_type(" APPLICATION/JSON ; charset=UTF-8") == Format::Json);
    CHECK(format_of_content_type("application/ld+json") == Format::Json);
    CHECK(format_of_content_type("application/octet-stream") == Format::Binary);
    CHECK_FALSE(format_of_content_type("image/png"));
    CHECK_FALSE(format_of_content_type("application/x-www-form-urlencoded"));
    CHECK_FALSE(format_of_content_type("+json"));
}

TEST_CASE("streams protocol: bodies are checked, JSON made compact, payloads round-trip") {
    std::string problem;
    CHECK(checked_body(Format::Text, "plain wörds", problem) == "plain wörds");
    CHECK_FALSE(checked_body(Format::Text, "\xff\xfe", problem));
    CHECK(problem.find("UTF-8") != std::string::npos);
    CHECK(checked_body(Format::Json, "{ \"b\" : 1, \"a\" : [ true ] }", problem) == R"({"b":1,"a":[true]})");
    CHECK_FALSE(checked_body(Format::Json, "{\"a\":", problem));
    CHECK_FALSE(checked_body(Format::Json, "", problem));
    CHECK(checked_body(Format::Binary, std::string("\0\xff", 2), problem) == std::string("\0\xff", 2));

    for (const Format format : {Format::Text, Format::Json, Format::Binary}) {
        const std::string payload = encode_payload(format, std::string("da\0ta", 5));
        const auto decoded = decode_payload(payload);
        REQUIRE(decoded);
        CHECK(decoded->format == format);
        CHECK(decoded->data == std::string_view("da\0ta", 5));
    }
    CHECK(decode_payload(encode_payload(Format::Text, ""))->data.empty());
    CHECK_FALSE(decode_payload(""));
    CHECK_FALSE(decode_payload("xdata"));
}

TEST_CASE("streams protocol: routes") {
    CHECK(match_route("/streams", "/").kind == Route::Kind::Socket);
    CHECK(match_route("/streams/", "/").kind == Route::Kind::Socket);
    auto route = match_route("/streams/news", "/");
    CHECK(route.kind == Route::Kind::Channel);
    CHECK(route.channel == "news");
    route = match_route("/streams/a%3Ab/", "/");
    CHECK(route.kind == Route::Kind::Channel);
    CHECK(route.channel == "a:b");
    CHECK(match_route("/api/streams/news", "/api/").channel == "news");
    CHECK(match_route("/api/streams", "/api/").kind == Route::Kind::Socket);
    for (const char* path : {"/", "/stream", "/streamsx", "/streams/a/b", "/streams//", "/api/streams", "/channel/x/"}) {
        CAPTURE(path);
        CHECK(match_route(path, "/").kind == Route::Kind::None);
    }
    CHECK(match_route("/streams", "/api/").kind == Route::Kind::None);
}
