// Per-channel payload rules (see payload_rules.hpp): parsing the settings and checking a
// publish. JSON is checked with nlohmann-json's SAX parser, which keeps its own stack (no
// recursion), so a hostile 1 MiB of '[' cannot overflow ours, and stops at the first
// breach instead of building a document it would throw away.
#include "hub/payload_rules.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <charconv>
#include <cstdint>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace hub {

namespace {

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' || text.back() == '\n'))
        text.remove_suffix(1);
    return text;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    while (true) {
        const auto at = text.find(separator);
        parts.push_back(trim(text.substr(0, at)));
        if (at == std::string_view::npos) return parts;
        text.remove_prefix(at + 1);
    }
}

std::optional<std::size_t> parse_size(std::string_view text) {
    std::size_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<JsonType> parse_json_type(std::string_view name) {
    static constexpr std::pair<std::string_view, JsonType> kTypes[] = {
        {"any", JsonType::Any},         {"string", JsonType::String}, {"number", JsonType::Number},
        {"integer", JsonType::Integer}, {"boolean", JsonType::Boolean}, {"object", JsonType::Object},
        {"array", JsonType::Array},     {"null", JsonType::Null},
    };
    for (const auto& [text, type] : kTypes)
        if (name == text) return type;
    return std::nullopt;
}

std::string_view json_type_name(JsonType type) {
    switch (type) {
        case JsonType::Any: return "any";
        case JsonType::String: return "string";
        case JsonType::Number: return "number";
        case JsonType::Integer: return "integer";
        case JsonType::Boolean: return "boolean";
        case JsonType::Object: return "object";
        case JsonType::Array: return "array";
        case JsonType::Null: return "null";
    }
    return "any";
}

std::string_view kind_name(PayloadKind kind) {
    switch (kind) {
        case PayloadKind::Text: return "text";
        case PayloadKind::Json: return "json";
        case PayloadKind::Binary: return "binary";
    }
    return "text";
}

bool type_matches(JsonType wanted, JsonType seen) {
    if (wanted == JsonType::Any || wanted == seen) return true;
    return wanted == JsonType::Number && seen == JsonType::Integer;  // every integer is a number
}

// Walks a JSON text once: its nesting depth, and the type of each top-level key (when the
// top level is an object). Stops as soon as the depth passes the limit.
class JsonShape final : public nlohmann::json_sax<nlohmann::json> {
public:
    explicit JsonShape(std::size_t max_depth) : max_depth_(max_depth) {}

    bool too_deep = false;
    bool malformed = false;
    JsonType top = JsonType::Null;
    std::vector<std::pair<std::string, JsonType>> top_keys;  // in document order (duplicates kept)

    bool null() override { return value(JsonType::Null); }
    bool boolean(bool) override { return value(JsonType::Boolean); }
    bool number_integer(number_integer_t) override { return value(JsonType::Integer); }
    bool number_unsigned(number_unsigned_t) override { return value(JsonType::Integer); }
    bool number_float(number_float_t, const string_t&) override { return value(JsonType::Number); }
    bool string(string_t&) override { return value(JsonType::String); }
    bool binary(binary_t&) override { return value(JsonType::String); }
    bool start_object(std::size_t) override { return open(JsonType::Object); }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(JsonType::Array); }
    bool end_array() override { return close(); }
    bool key(string_t& name) override {
        if (depth_ == 1) pending_key_ = name;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
        malformed = true;
        return false;
    }

private:
    bool value(JsonType type) {
        if (depth_ == 0) top = type;
        if (depth_ == 1 && top == JsonType::Object) top_keys.emplace_back(std::move(pending_key_), type);
        return true;
    }
    bool open(JsonType type) {
        value(type);
        if (++depth_ > max_depth_) {
            too_deep = true;
            return false;
        }
        return true;
    }
    bool close() {
        --depth_;
        return true;
    }

    std::size_t max_depth_;
    std::size_t depth_ = 0;
    std::string pending_key_;
};

}  // namespace

std::optional<std::string> PayloadRules::add(std::string_view pattern,
                                             const std::vector<std::pair<std::string, std::string>>& settings) {
    PayloadRule rule;
    rule.pattern = std::string(trim(pattern));
    if (rule.pattern.empty()) return "a rule needs a channel name or pattern";
    if (rule.pattern.find('\0') != std::string::npos) return "a pattern cannot contain NUL";
    for (const auto& [raw_key, raw_value] : settings) {
        std::string key(trim(raw_key));
        std::replace(key.begin(), key.end(), '-', '_');
        const std::string_view value = trim(raw_value);
        if (key == "types") {
            rule.allow_text = rule.allow_json = rule.allow_binary = false;
            for (const auto type : split(value, ',')) {
                if (type == "text") rule.allow_text = true;
                else if (type == "json") rule.allow_json = true;
                else if (type == "binary" || type == "bytes") rule.allow_binary = true;
                else return fmt::format("types: \"{}\" is not text, json or binary", type);
            }
        } else if (key == "max_bytes") {
            rule.max_bytes = parse_size(value);
            if (!rule.max_bytes) return "max_bytes: not a number of bytes";
        } else if (key == "max_depth") {
            rule.max_depth = parse_size(value);
            if (!rule.max_depth || *rule.max_depth == 0 || *rule.max_depth > 10'000)
                return "max_depth: a number from 1 to 10000";
        } else if (key == "required") {
            for (const auto entry : split(value, ',')) {
                if (entry.empty()) continue;
                const auto colon = entry.rfind(':');
                const std::string_view name = trim(entry.substr(0, colon));
                const auto type = colon == std::string_view::npos ? std::optional(JsonType::Any)
                                                                  : parse_json_type(trim(entry.substr(colon + 1)));
                if (name.empty()) return "required: an entry has no key name";
                if (!type) return fmt::format("required: \"{}\" names no JSON type", entry);
                rule.required.emplace_back(std::string(name), *type);
            }
        } else {
            return fmt::format("unknown setting \"{}\" (types, max_bytes, max_depth, required)", key);
        }
    }
    rules_.push_back(std::move(rule));
    return std::nullopt;
}

std::optional<std::string> PayloadRules::add_spec(std::string_view spec) {
    const auto parts = split(spec, ';');
    std::vector<std::pair<std::string, std::string>> settings;
    for (std::size_t i = 1; i < parts.size(); ++i) {
        if (parts[i].empty()) continue;
        const auto eq = parts[i].find('=');
        if (eq == std::string_view::npos) return fmt::format("\"{}\" is not key=value", parts[i]);
        settings.emplace_back(std::string(parts[i].substr(0, eq)), std::string(parts[i].substr(eq + 1)));
    }
    return add(parts[0], settings);
}

std::optional<PayloadRefusal> PayloadRules::check(std::string_view channel, std::string_view payload,
                                                  PayloadKind kind) const {
    if (rules_.empty()) return std::nullopt;
    const std::string name(channel);  // fnmatch wants NUL-terminated text
    const auto found = std::find_if(rules_.begin(), rules_.end(), [&](const PayloadRule& rule) {
        return name.find('\0') == std::string::npos && ::fnmatch(rule.pattern.c_str(), name.c_str(), 0) == 0;
    });
    if (found == rules_.end()) return std::nullopt;
    const PayloadRule& rule = *found;
    auto refuse = [&](int status, std::string rule_name, std::string message) {
        return PayloadRefusal{status, std::move(rule_name),
                              fmt::format("channel \"{}\" (rule \"{}\"): {}", channel, rule.pattern, message)};
    };

    const bool allowed = kind == PayloadKind::Text ? rule.allow_text
                         : kind == PayloadKind::Json ? rule.allow_json
                                                     : rule.allow_binary;
    if (!allowed) {
        std::vector<std::string_view> types;
        if (rule.allow_text) types.push_back("text");
        if (rule.allow_json) types.push_back("json");
        if (rule.allow_binary) types.push_back("binary");
        return refuse(415, "types", fmt::format("takes only {}; this publish is {}",
                                                types.empty() ? "nothing" : fmt::format("{}", fmt::join(types, ", ")),
                                                kind_name(kind)));
    }
    if (rule.max_bytes && payload.size() > *rule.max_bytes)
        return refuse(413, "max_bytes",
                      fmt::format("takes at most {} bytes; this one has {}", *rule.max_bytes, payload.size()));
    if (kind != PayloadKind::Json || (!rule.max_depth && rule.required.empty())) return std::nullopt;

    JsonShape shape(rule.max_depth.value_or(SIZE_MAX));
    nlohmann::json::sax_parse(payload, &shape);
    if (shape.too_deep)
        return refuse(422, "max_depth", fmt::format("JSON nested deeper than {} levels", *rule.max_depth));
    if (shape.malformed) return refuse(422, "json", "not valid JSON");
    if (rule.required.empty()) return std::nullopt;
    if (shape.top != JsonType::Object)
        return refuse(422, "required", fmt::format("must be a JSON object; this is {}", json_type_name(shape.top)));
    for (const auto& requirement : rule.required) {
        const auto& [key, type] = requirement;
        // The last occurrence wins, as in every JSON parser that keeps one value per key.
        const auto seen = std::find_if(shape.top_keys.rbegin(), shape.top_keys.rend(),
                                       [&](const auto& entry) { return entry.first == requirement.first; });
        if (seen == shape.top_keys.rend()) return refuse(422, "required", fmt::format("key \"{}\" is missing", key));
        if (!type_matches(type, seen->second))
            return refuse(422, "required", fmt::format("key \"{}\" must be {}; it is {}", key, json_type_name(type),
                                                       json_type_name(seen->second)));
    }
    return std::nullopt;
}

}  // namespace hub
