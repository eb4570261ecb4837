// json_depth_within (hub/json_depth.hpp): brackets count only outside strings, escapes
// included; the limit is inclusive; a hostile document is refused without being parsed.
#include <string>

#include <doctest/doctest.h>

#include "hub/json_depth.hpp"

using hub::json_depth_within;

TEST_CASE("json depth: counts arrays and objects, inclusive limit") {
    CHECK(json_depth_within("1", 0));
    CHECK(json_depth_within("\"text\"", 0));
    CHECK_FALSE(json_depth_within("[]", 0));
    CHECK(json_depth_within("[]", 1));
    CHECK(json_depth_within(R"({"a":[1,{"b":2}],"c":{}})", 3));
    CHECK_FALSE(json_depth_within(R"({"a":[1,{"b":[2]}]})", 3));
    CHECK(json_depth_within("[[],[],[]]", 2));  // siblings do not add up
}

TEST_CASE("json depth: brackets inside strings do not count, escapes kept in the string") {
    CHECK(json_depth_within(R"(["[[[[{{{{"])", 1));
    CHECK(json_depth_within(R"(["\"[[[[", "\\"])", 1));  // an escaped quote does not end it
    CHECK_FALSE(json_depth_within(R"(["\\", [[1]]])", 2));  // "\\" ends right there
    CHECK(json_depth_within(R"({"k\"{": "v\\"})", 1));
}

TEST_CASE("json depth: the default limit, and a hostile document") {
    std::string ok(hub::kMaxJsonDepth, '[');
    ok += std::string(hub::kMaxJsonDepth, ']');
    CHECK(json_depth_within(ok));
    CHECK_FALSE(json_depth_within("[" + ok + "]"));
    CHECK_FALSE(json_depth_within(std::string(1 << 20, '[')));  // 1 MiB of '[': refused, not parsed
    CHECK(json_depth_within(std::string(1 << 20, ']')));       // malformed but flat: the parser says so
}
