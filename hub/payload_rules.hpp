// Per-channel payload rules: which publishes a channel accepts, checked once per publish,
// before it goes on the bus (so no subscriber ever sees a refused message), for every API
// (aiows, channelstream, streams).
//
// A rule names channels by exact name or by a glob pattern ("chat.*", fnmatch(3) without
// flags); the first rule that matches a channel decides, and a channel no rule matches takes
// anything. A rule may say:
//
//   types      = text, json, binary   what a publisher may declare (aiows' Package-Type;
//                                     channelstream messages are json)
//   max_bytes  = 4096                 the payload's size (JSON: as serialised)
//   max_depth  = 4                    JSON nesting (1 = a flat object or array)
//   required   = user:string, n:integer
//                                     JSON: the payload is an object with these keys, each of
//                                     this JSON type (string, number, integer, boolean,
//                                     object, array, null, any)
//
// Written in the INI file as [channel:PATTERN] sections, or as --channel-rule
// 'PATTERN; types=json; max_bytes=4096; required=user:string'. Flags come first, then the
// INI file's sections in file order (docs/hub.md, "Payload rules").
//
// Thread-safety: built before the Hub listens; check() is const and safe from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hub {

/// What a publisher says it sends (aiows' Package-Type; channelstream messages are JSON).
enum class PayloadKind { Text, Json, Binary };

/// Why a publish was refused: the answer's status, the rule it broke, and words for a human.
struct PayloadRefusal {
    int http_status = 422;  ///< 413 for size, 415 for a type the channel does not take, 422 otherwise
    std::string rule;       ///< "max_bytes", "types", "json", "max_depth", "required"
    std::string message;    ///< e.g. "channel \"chat.x\" takes at most 4096 bytes; this one has 5000"
};

/// The JSON types a required key may be asked to have.
enum class JsonType { Any, String, Number, Integer, Boolean, Object, Array, Null };

struct PayloadRule {
    std::string pattern;          ///< fnmatch(3) glob; a name without * ? [ matches only itself
    bool allow_text = true;       ///< types: when none is given, every type is allowed
    bool allow_json = true;
    bool allow_binary = true;
    std::optional<std::size_t> max_bytes;
    std::optional<std::size_t> max_depth;                    ///< JSON payloads only
    std::vector<std::pair<std::string, JsonType>> required;  ///< JSON payloads only
};

class PayloadRules {
public:
    /// Add a rule from its settings (key = value, as in the INI section). Returns the first
    /// error ("max_bytes: not a number"), and adds nothing then.
    std::optional<std::string> add(std::string_view pattern, const std::vector<std::pair<std::string, std::string>>& settings);
    /// Add a rule written on one line: "PATTERN; key=value; key=value".
    std::optional<std::string> add_spec(std::string_view spec);

    /// nullopt: the publish may go ahead. `kind` is what the publisher declared.
    std::optional<PayloadRefusal> check(std::string_view channel, std::string_view payload, PayloadKind kind) const;
    bool empty() const noexcept { return rules_.empty(); }  ///< no rule: check() always passes
    const std::vector<PayloadRule>& rules() const noexcept { return rules_; }

private:
    std::vector<PayloadRule> rules_;
};

}  // namespace hub
