// A limit on how deeply untrusted JSON may nest, checked before it is parsed into a document.
//
// Why: nlohmann-json parses without recursion, but serialising (dump), comparing and copying a
// document recurse once per level. A publisher's 1 MiB of '[' parses fine and then overflows
// the stack of whichever thread re-serialises it: one request would end the hub. Every JSON
// body and frame the hub takes from a client is checked with this first.
#pragma once

#include <cstddef>
#include <string_view>

namespace hub {

/// Deeper than this is refused. Real messages nest a handful of levels; 128 keeps any
/// recursive walk of a document to a few tens of KiB of stack.
inline constexpr std::size_t kMaxJsonDepth = 128;

/// Whether the JSON in `text` nests at most `max_depth` arrays/objects deep. Malformed JSON
/// whose well-formed part stays within the limit gives true: the caller's parse says why it
/// is malformed. One pass, no allocation per level, stops at the first level too deep.
bool json_depth_within(std::string_view text, std::size_t max_depth = kMaxJsonDepth) noexcept;

}  // namespace hub
