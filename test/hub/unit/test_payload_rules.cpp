// Per-channel payload rules (hub/payload_rules.hpp): parsing and checking, on byte strings.
#include <string>

#include <doctest/doctest.h>

#include "hub/payload_rules.hpp"

using hub::PayloadKind;
using hub::PayloadRules;

namespace {

PayloadRules rules_of(std::initializer_list<const char*> specs) {
    PayloadRules rules;
    for (const char* spec : specs) {
        const auto error = rules.add_spec(spec);
        INFO(spec);
        REQUIRE_FALSE(error.has_value());
    }
    return rules;
}

}  // namespace

TEST_CASE("payload rules: no rule, or no matching rule, lets everything through") {
    PayloadRules none;
    CHECK(none.empty());
    CHECK_FALSE(none.check("any", "\xff\xfe", PayloadKind::Binary));
    const auto rules = rules_of({"chat.*; types=json; max_bytes=10"});
    CHECK_FALSE(rules.check("news", std::string(1000, 'x'), PayloadKind::Text));
    CHECK_FALSE(rules.check("chat", "plain", PayloadKind::Text));  // "chat.*" needs the dot
}

TEST_CASE("payload rules: types are what the publisher declared") {
    const auto rules = rules_of({"j*; types=json", "tb; types = text, binary"});
    const auto refused = rules.check("jx", "\"a\"", PayloadKind::Text);
    REQUIRE(refused);
    CHECK(refused->http_status == 415);
    CHECK(refused->rule == "types");
    CHECK(refused->message.find("takes only json; this publish is text") != std::string::npos);
    CHECK_FALSE(rules.check("jx", "\"a\"", PayloadKind::Json));
    CHECK(rules.check("jx", "ab", PayloadKind::Binary));
    CHECK_FALSE(rules.check("tb", "ab", PayloadKind::Binary));
    CHECK_FALSE(rules.check("tb", "ab", PayloadKind::Text));
    CHECK(rules.check("tb", "1", PayloadKind::Json)->http_status == 415);
}

TEST_CASE("payload rules: max_bytes counts bytes, at the limit is allowed") {
    const auto rules = rules_of({"c; max_bytes=4"});
    CHECK_FALSE(rules.check("c", "abcd", PayloadKind::Text));
    const auto refused = rules.check("c", "abcde", PayloadKind::Binary);
    REQUIRE(refused);
    CHECK(refused->http_status == 413);
    CHECK(refused->rule == "max_bytes");
    CHECK(refused->message.find("at most 4 bytes; this one has 5") != std::string::npos);
}

TEST_CASE("payload rules: the first matching rule decides") {
    const auto rules = rules_of({"chat.admin; max_bytes=100", "chat.*; max_bytes=2"});
    CHECK_FALSE(rules.check("chat.admin", "0123456789", PayloadKind::Text));
    CHECK(rules.check("chat.room", "0123456789", PayloadKind::Text));
    CHECK(rules.rules().size() == 2);
}

TEST_CASE("payload rules: max_depth, checked without recursion") {
    const auto rules = rules_of({"d; max_depth=2"});
    CHECK_FALSE(rules.check("d", "1", PayloadKind::Json));
    CHECK_FALSE(rules.check("d", "{\"a\":[1,2]}", PayloadKind::Json));
    const auto refused = rules.check("d", "{\"a\":[[1]]}", PayloadKind::Json);
    REQUIRE(refused);
    CHECK(refused->rule == "max_depth");
    CHECK(refused->http_status == 422);
    // A hostile document a million levels deep is refused at level 3, not parsed.
    CHECK(rules.check("d", std::string(1'000'000, '['), PayloadKind::Json)->rule == "max_depth");
    // Depth is only a JSON rule: text is not parsed.
    CHECK_FALSE(rules.check("d", "[[[[", PayloadKind::Text));
}

TEST_CASE("payload rules: malformed JSON under a schema is refused as json") {
    const auto rules = rules_of({"s; required=user"});
    for (const char* bad : {"", "{", "{\"user\":1", "{\"user\":1}x", "nul", "{\"user\":\"\xff\"}"}) {
        INFO(bad);
        const auto refused = rules.check("s", bad, PayloadKind::Json);
        REQUIRE(refused);
        CHECK(refused->rule == "json");
    }
}

TEST_CASE("payload rules: required keys and their types, at the top level only") {
    const auto rules = rules_of({"r; required = user:string, n:integer, x:number, any"});
    CHECK_FALSE(rules.check("r", R"({"user":"a","n":1,"x":2,"any":null,"extra":[]})", PayloadKind::Json));
    CHECK_FALSE(rules.check("r", R"({"user":"a","n":1,"x":2.5,"any":{}})", PayloadKind::Json));
    const auto missing = rules.check("r", R"({"user":"a","x":1,"any":1,"inner":{"n":1}})", PayloadKind::Json);
    REQUIRE(missing);
    CHECK(missing->rule == "required");
    CHECK(missing->message.find("key \"n\" is missing") != std::string::npos);
    const auto wrong = rules.check("r", R"({"user":5,"n":1,"x":1,"any":1})", PayloadKind::Json);
    REQUIRE(wrong);
    CHECK(wrong->message.find("key \"user\" must be string; it is integer") != std::string::npos);
    CHECK(rules.check("r", R"({"user":"a","n":1.5,"x":1,"any":1})", PayloadKind::Json)->rule == "required");
    const auto not_object = rules.check("r", "[1]", PayloadKind::Json);
    REQUIRE(not_object);
    CHECK(not_object->message.find("must be a JSON object; this is array") != std::string::npos);
    // A key given twice: the last value is the one every parser keeps.
    CHECK(rules.check("r", R"({"user":"a","n":1,"x":1,"any":1,"user":2})", PayloadKind::Json));
}

TEST_CASE("payload rules: bad settings are refused with the reason, and add nothing") {
    PayloadRules rules;
    CHECK(rules.add_spec("c; types=xml")->find("types") != std::string::npos);
    CHECK(rules.add_spec("c; max_bytes=lots")->find("max_bytes") != std::string::npos);
    CHECK(rules.add_spec("c; max_depth=0")->find("max_depth") != std::string::npos);
    CHECK(rules.add_spec("c; required=a:date")->find("required") != std::string::npos);
    CHECK(rules.add_spec("c; required=:string")->find("required") != std::string::npos);
    CHECK(rules.add_spec("c; colour=red")->find("unknown setting") != std::string::npos);
    CHECK(rules.add_spec("c; max_bytes")->find("key=value") != std::string::npos);
    CHECK(rules.add_spec(" ; max_bytes=1").has_value());
    CHECK(rules.empty());
    CHECK_FALSE(rules.add("c", {{"max-bytes", " 12 "}, {"types", "bytes"}}));
    REQUIRE(rules.rules().size() == 1);
    CHECK(*rules.rules()[0].max_bytes == 12);
    CHECK(rules.rules()[0].allow_binary);
    CHECK_FALSE(rules.rules()[0].allow_text);
}
