// Per-channel payload rules: which publishes a channel accepts, checked once per publish,
// before it goes on the bus (so no subscriber ever sees a refused message), for every API.
//
// A rule set names channels by exact name or by a glob pattern ("chat.*"); the first rule
// that matches a channel decides. Configured in the INI file and by flags (docs/hub.md).
//
// Thread-safety: built once before the Hub listens; check() is const and safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hub {

/// What a publisher says it sends (aiows' Package-Type; channelstream messages are JSON).
enum class PayloadKind { Text, Json, Binary };

/// Why a publish was refused: the answer's status, the rule it broke, and words for a human.
struct PayloadRefusal {
    int http_status = 422;  ///< 413 for size, 415 for a type the channel does not take, 422 otherwise
    std::string rule;       ///< e.g. "max_bytes", "types", "schema.required", "schema.max_depth"
    std::string message;    ///< e.g. "channel \"chat.x\" takes at most 4096 bytes; this one has 5000"
};

class PayloadRules {
public:
    /// nullopt: the publish may go ahead. `kind` is what the publisher declared.
    std::optional<PayloadRefusal> check(std::string_view channel, std::string_view payload, PayloadKind kind) const;
    bool empty() const noexcept;  ///< no rule configured: check() always passes
    // (the rule storage and the parsing of the INI section and flags come with the implementation)
};

}  // namespace hub
