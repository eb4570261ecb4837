// The channelstream model, sans I/O: users, connections, channels, presence, user state,
// history and what each connection is owed, changed ONLY by operations.
//
// An operation is a JSON object {"op": KIND, "id": UUID, "at": MICROS, "node": NODE, ...}
// made once, by the node that received the request, with every time and id it needs inside
// it (ids of things it creates are derived from "id"). Every node applies the same operations
// in the bus's order and so holds the same state: a replicated state machine. Applying never
// reads a clock, a random source or anything node-local.
//
// What applying yields besides the new state:
//   response    the API's answer (channelstream 0.7.1's shapes), for the node that asked
//   deliveries  (connection, message) pairs for connections attached to some node; each
//               node sends those whose node is itself. A message for a DETACHED connection is
//               kept in that connection's pending queue (every node keeps the same queue) and
//               handed out when it attaches again, marked catchup: true.
//   closed      connections that were removed (disconnect, garbage collection): the node
//               holding one closes its socket or answers its long poll.
//
// Operation kinds (fields besides op/id/at/node; see state.cpp for each rule):
//   connect        username conn_id channels channel_configs fresh_user_state user_state
//                  state_public_keys info
//   subscribe      conn_id channels channel_configs info
//   unsubscribe    conn_id channels info
//   user_state     user user_state state_public_keys (null: keep)
//   message        messages   (each: uuid timestamp user message channel pm_users
//                              exclude_users no_history)
//   edit           messages   (each: uuid [user message timestamp] edited channel pm_users exclude_users)
//   delete         messages   (each: uuid channel pm_users exclude_users)
//   channel_config configs    ({channel: full config})
//   disconnect     conn_id
//   attach         conn_id kind ("ws" | "poll") attachment
//                                                   the connection is now served by "node" (the
//                                                   attachment id names this socket or poll)
//   detach         conn_id attachment               it no longer is (if still that attachment)
//   touch          conn_ids                         still attached to "node": mark them active
//   requeue        conn_id frames                   messages a node could not hand over (its
//                                                   socket closed under them): back to the front
//                                                   of the connection's queue, as catch-up
//   gc             conn_ttl user_ttl (micros)       collect idle connections and users
//
// A long poll answers once: a "poll" attachment that got messages from an operation is
// detached by that same operation (between polls), so what comes next waits in the queue.
//
// Not thread-safe: the owner serialises apply() and the queries (one mutex in the module).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/channelstream/values.hpp"

namespace hub::channelstream {

using Json = nlohmann::json;

struct ChannelConfig {
    bool notify_presence = false;
    bool store_history = false;
    std::int64_t history_size = 10;
    bool broadcast_presence_with_user_lists = false;
    bool notify_state = false;
    bool store_frames = true;  ///< keep this channel's messages for detached connections

    /// From a validated config object (every key present).
    static ChannelConfig from_json(const Json& object);
    Json to_json() const;
};

/// One message for one connection, on the node it is attached to.
struct Delivery {
    std::string conn_id;
    std::string node;
    /// One message object as JSON text (a frame is "[" payload "]"); shared by every
    /// connection that gets the same message.
    std::shared_ptr<const std::string> payload;
};

struct Applied {
    int status = 200;                  ///< the API's status: 422 when the state refused it, 500 for a malformed operation
    Json response;                     ///< null when the operation answers nothing
    std::vector<Delivery> deliveries;  ///< in order, per connection
    std::vector<std::string> closed;   ///< connections removed by this operation
};

struct StateLimits {
    std::size_t max_history_size = 1000;  ///< history_size above this is cut to it
    std::size_t max_pending_frames = 100; ///< per detached connection; the oldest go first
};

/// What an info request asks for (channelstream's InfoResolutionSchema).
struct InfoOptions {
    bool include_history = true;
    bool include_users = true;
    bool return_public_state = false;
    std::vector<std::string> exclude_channels;
    static InfoOptions from_json(const Json& info);  ///< missing keys keep their defaults
};

struct Outgoing;  // a message being handed to connections (state.cpp)

class State {
public:
    struct Connection {
        std::string id;
        std::string username;
        Micros last_active = 0;
        std::string node;         ///< the node serving it; empty while detached
        std::string kind;         ///< "ws" or "poll" while attached
        std::string attachment;   ///< the socket or poll serving it, while attached
        bool between_polls = false;  ///< detached by a long poll that will come back at once
        std::set<std::string> channels;
        std::deque<std::shared_ptr<const std::string>> pending;
        std::uint64_t pending_dropped = 0;
    };
    struct User {
        std::string username;
        std::string uuid;
        Json state = Json::object();
        std::vector<std::string> public_keys;
        std::vector<std::string> connections;  ///< in connection order
        Micros last_active = 0;
        Json public_state() const;
    };
    struct Channel {
        std::string name;
        std::string uuid;
        ChannelConfig config;
        Micros last_active = 0;
        std::map<std::string, std::vector<std::string>> connections;  ///< username -> conn ids
        std::deque<Json> history;
    };

    explicit State(StateLimits limits = {});

    /// Apply one operation. A malformed one changes nothing and answers {"error": ...}.
    Applied apply(const Json& op);

    /// The whole state as JSON (what a node that joins late loads; see module.hpp): every
    /// user, connection (with what it is owed), channel (with history) and counter. Loading it
    /// into a State with the same limits gives a state that applies every later operation
    /// exactly as this one would.
    Json to_snapshot() const;
    /// A State from to_snapshot()'s output. Throws std::invalid_argument when it is malformed.
    static State from_snapshot(const Json& snapshot, StateLimits limits);

    // ---- queries ----
    const Connection* connection(const std::string& conn_id) const;
    const User* user(const std::string& username) const;
    const Channel* channel(const std::string& name) const;
    /// channelstream's get_channel_info: `channels` nullopt for all of them.
    Json channels_info(const std::optional<std::vector<std::string>>& channels, const InfoOptions& options) const;
    /// The body of /admin/admin.json, but for uptime and version (node-local).
    Json admin_info() const;
    /// Connections attached to `node`.
    std::vector<std::string> attached_to(const std::string& node) const;
    /// Whether a gc operation at `now` would collect anything.
    bool has_garbage(Micros now, Micros conn_ttl, Micros user_ttl) const;

    std::size_t connection_count() const { return connections_.size(); }
    std::size_t user_count() const { return users_.size(); }
    std::size_t channel_count() const { return channels_.size(); }
    std::uint64_t total_messages() const { return total_messages_; }
    std::uint64_t total_unique_messages() const { return total_unique_messages_; }

private:
    class Context;  // one operation being applied: its time, ids and results
    void apply_connect(Context& ctx, const Json& op);
    void apply_subscribe(Context& ctx, const Json& op, bool subscribe);
    void apply_user_state(Context& ctx, const Json& op);
    void apply_messages(Context& ctx, const Json& op);
    void apply_edits(Context& ctx, const Json& op, bool remove);
    void apply_channel_config(Context& ctx, const Json& op);
    void apply_attach(Context& ctx, const Json& op);
    void apply_detach(Context& ctx, const Json& op);
    void apply_touch(Context& ctx, const Json& op);
    void apply_requeue(Context& ctx, const Json& op);
    void detach_answered_polls(Context& ctx);
    void apply_gc(Context& ctx, const Json& op);

    Channel& ensure_channel(Context& ctx, const std::string& name, const Json* config);
    void configure(Channel& channel, const ChannelConfig& config);
    bool add_to_channel(Context& ctx, Channel& channel, Connection& connection);
    bool remove_from_channel(Context& ctx, Channel& channel, Connection& connection);
    void remove_connection(Context& ctx, const std::string& conn_id);
    void send_presence(Context& ctx, Channel& channel, const std::string& username, const char* action);
    /// Hand `message` (a client-ready object) to every connection of the channel that the
    /// filters let through; returns how many got it.
    std::size_t deliver_to_channel(Context& ctx, Channel& channel, const Json& message, const Json& pm_users,
                                   const Json& exclude_users);
    std::size_t deliver_to_user(Context& ctx, User& user, const Json& message);
    void deliver(Context& ctx, Connection& connection, Outgoing& outgoing, bool keep_if_detached);
    Json connection_channels_info(const Connection& connection, const InfoOptions& options) const;

    StateLimits limits_;
    std::map<std::string, Connection> connections_;
    std::map<std::string, User> users_;
    std::map<std::string, Channel> channels_;
    std::uint64_t total_messages_ = 0;
    std::uint64_t total_unique_messages_ = 0;
};

}  // namespace hub::channelstream
