// libFuzzer target: the hub's checks of hostile publish payloads.
//
//  - PayloadRules::check (hub/payload_rules.hpp) walks JSON with nlohmann's SAX parser and
//    stops early; its verdict must equal an independent one computed from the whole document
//    (nlohmann's DOM parse, then depth and key types by hand).
//  - json_depth_within (hub/json_depth.hpp), the guard before every JSON parse, gives the
//    depth of every document nlohmann-json parses.
//  - decode_sequenced (hub/bus.hpp) never reads out of bounds, and gives back exactly what
//    encode_sequenced made of the same fields.
//
// Input: [selector] then the payload.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hub/bus.hpp"
#include "hub/json_depth.hpp"
#include "hub/payload_rules.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {

constexpr std::size_t kMaxDepth = 3;

const hub::PayloadRules& rules() {
    static const hub::PayloadRules instance = [] {
        hub::PayloadRules r;
        if (r.add_spec("j; max_depth=3; required=a:string, b:integer, c:number, d:any, e:object")) fuzz::fail("rule");
        if (r.add_spec("t; types=text,binary; max_bytes=64")) fuzz::fail("rule");
        return r;
    }();
    return instance;
}

std::size_t depth_of(const nlohmann::json& value) {
    if (!value.is_structured()) return 0;
    std::size_t deepest = 0;
    for (const auto& child : value) deepest = std::max(deepest, depth_of(child));
    return 1 + deepest;
}

bool has_type(const nlohmann::json& value, std::string_view type) {
    if (type == "any") return true;
    if (type == "string") return value.is_string();
    if (type == "integer") return value.is_number_integer();
    if (type == "number") return value.is_number();
    if (type == "object") return value.is_object();
    return false;
}

// The verdict from the whole document: "" (allowed) or the rule broken.
std::string reference_verdict(std::string_view payload) {
    // The SAX walk refuses a document once it is deeper than the limit, even if it is
    // malformed further on; so depth is judged on the longest well-formed prefix first.
    const auto parsed = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return "json-or-depth";
    if (depth_of(parsed) > kMaxDepth) return "max_depth";
    if (!parsed.is_object()) return "required";
    static constexpr std::pair<std::string_view, std::string_view> kRequired[] = {
        {"a", "string"}, {"b", "integer"}, {"c", "number"}, {"d", "any"}, {"e", "object"}};
    for (const auto& [key, type] : kRequired) {
        const auto found = parsed.find(std::string(key));
        if (found == parsed.end() || !has_type(*found, type)) return "required";
    }
    return "";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t selector = data[0];
    const std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);

    switch (selector % 3) {
        case 0: {  // JSON under the schema rule: both verdicts agree
            const auto refusal = rules().check("j", payload, hub::PayloadKind::Json);
            const std::string expected = reference_verdict(payload);
            // The bracket scan that guards every JSON parse agrees with the document's depth.
            // (nlohmann-json takes a NUL for the end of the input; the scan reads on, so it
            // may refuse more there, never less: compared up to the first NUL.)
            const auto text = payload.substr(0, payload.find('\0'));
            if (const auto parsed = nlohmann::json::parse(text, nullptr, false); !parsed.is_discarded()) {
                const std::size_t depth = depth_of(parsed);
                FUZZ_CHECK(hub::json_depth_within(text, depth));
                if (depth > 0) FUZZ_CHECK(!hub::json_depth_within(text, depth - 1));
            }
            if (expected.empty()) {
                FUZZ_CHECK(!refusal.has_value());
            } else {
                FUZZ_CHECK(refusal.has_value());
                FUZZ_CHECK(refusal->http_status == 422);
                if (expected == "json-or-depth") FUZZ_CHECK(refusal->rule == "json" || refusal->rule == "max_depth");
                else FUZZ_CHECK_EQ(refusal->rule, expected);
            }
            break;
        }
        case 1: {  // types and size: no parsing at all
            const auto kind = static_cast<hub::PayloadKind>((selector / 3) % 3);
            const auto refusal = rules().check("t", payload, kind);
            const bool wrong_type = kind == hub::PayloadKind::Json;
            FUZZ_CHECK(refusal.has_value() == (wrong_type || payload.size() > 64));
            if (refusal) FUZZ_CHECK(refusal->http_status == (wrong_type ? 415 : 413));
            break;
        }
        case 2: {  // the sequenced envelope: arbitrary bytes, then a round trip
            if (const auto decoded = hub::decode_sequenced(payload)) FUZZ_CHECK_EQ(hub::encode_sequenced(*decoded), std::string(payload));
            hub::SequencedMessage message;
            const auto cut = payload.size() / 3;
            message.stream = "s" + std::string(payload.substr(0, std::min<std::size_t>(cut, 1000)));
            message.epoch = "e" + std::to_string(selector);
            message.offset = 1 + payload.size();
            message.unix_ms = static_cast<std::int64_t>(selector) * 1000;
            message.payload = std::string(payload.substr(cut));
            if (message.stream.find('\0') != std::string::npos) break;  // not a valid stream name
            const auto round = hub::decode_sequenced(hub::encode_sequenced(message));
            FUZZ_CHECK(round.has_value());
            FUZZ_CHECK_EQ(round->stream, message.stream);
            FUZZ_CHECK_EQ(round->epoch, message.epoch);
            FUZZ_CHECK(round->offset == message.offset && round->unix_ms == message.unix_ms);
            FUZZ_CHECK_EQ(round->payload, message.payload);
            break;
        }
    }
    return 0;
}
