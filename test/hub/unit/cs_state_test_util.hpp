// Helpers shared by the channelstream state tests (test_cs_state.cpp,
// test_cs_state_replicas.cpp): operations made as a node would make them (increasing times
// and ids), messages, and the deliveries one connection got.
#pragma once

#include <string>
#include <vector>

#include "hub/channelstream/state.hpp"

namespace cs_state_test {

using namespace hub::channelstream;

inline constexpr Micros kStart = 1'600'000'000'000'000;  // 2020-09-13T12:26:40
inline constexpr Micros kSecond = 1'000'000;
inline const std::string kNode = "node-a";

/// Makes operations with increasing times and ids, as a node would.
struct Ops {
    Micros at = kStart;
    int next = 0;
    Json make(const std::string& kind, Json fields, const std::string& node = kNode) {
        fields["op"] = kind;
        fields["id"] = "op-" + std::to_string(next++);
        fields["at"] = at;
        fields["node"] = node;
        return fields;
    }
};

inline std::string conn(int n) { return "00000000-0000-4000-8000-00000000000" + std::to_string(n); }

inline Json connect_op(Ops& ops, const std::string& user, const std::string& conn_id, Json channels, Json extra = Json::object()) {
    Json op = {{"username", user},
               {"conn_id", conn_id},
               {"channels", channels},
               {"channel_configs", Json::object()},
               {"fresh_user_state", Json::object()},
               {"user_state", Json::object()},
               {"state_public_keys", Json::array()},
               {"info", Json::object()}};
    for (auto& [k, v] : extra.items()) op[k] = v;
    return ops.make("connect", op);
}

inline Json message(const std::string& uuid, const std::string& user, Json channel, Json body, Json extra = Json::object()) {
    Json m = {{"uuid", uuid},
              {"timestamp", "2020-09-13T12:26:40"},
              {"user", user},
              {"message", body},
              {"channel", channel},
              {"pm_users", Json::array()},
              {"exclude_users", Json::array()},
              {"no_history", false}};
    for (auto& [k, v] : extra.items()) m[k] = v;
    return m;
}

/// The messages a connection got, parsed.
inline std::vector<Json> to(const Applied& applied, const std::string& conn_id) {
    std::vector<Json> out;
    for (const auto& d : applied.deliveries)
        if (d.conn_id == conn_id) out.push_back(Json::parse(*d.payload));
    return out;
}

inline Json attach(Ops& ops, const std::string& conn_id, const std::string& kind = "ws", const std::string& node = kNode,
                   const std::string& attachment = "a1") {
    return ops.make("attach", {{"conn_id", conn_id}, {"kind", kind}, {"attachment", attachment}}, node);
}

inline Json detach(Ops& ops, const std::string& conn_id, const std::string& node = kNode, const std::string& attachment = "a1") {
    return ops.make("detach", {{"conn_id", conn_id}, {"attachment", attachment}}, node);
}

inline Json configs(Json map) { return {{"configs", map}}; }

}  // namespace cs_state_test
