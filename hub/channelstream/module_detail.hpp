// Small helpers that module.cpp and module_sync.cpp share. Internal to the hub.
#pragma once

#include <chrono>
#include <string>

#include "hub/channelstream/state.hpp"

namespace hub::channelstream::module_detail {

inline Micros micros(std::chrono::seconds seconds) { return static_cast<Micros>(seconds.count()) * 1'000'000; }
inline Micros micros(std::chrono::milliseconds ms) { return static_cast<Micros>(ms.count()) * 1'000; }

/// A string field of an operation, or "" (operations come from other processes: never trust a type).
inline std::string text_of(const Json& op, const char* key) {
    auto found = op.find(key);
    return found != op.end() && found->is_string() ? found->get<std::string>() : std::string();
}

}  // namespace hub::channelstream::module_detail
