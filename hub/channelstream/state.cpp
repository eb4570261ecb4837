// The channelstream state's operations: apply() and every rule an operation follows (see
// state.hpp). The state read out (snapshots, channels_info, admin_info, lookups) is in
// state_encoding.cpp.
#include "hub/channelstream/state.hpp"

#include <algorithm>
#include <stdexcept>

namespace hub::channelstream {

namespace {

/// The keys of a stored message an edit may change (channelstream's MSG_EDITABLE_KEYS).
constexpr const char* kEditableKeys[] = {"uuid", "timestamp", "user", "message", "edited"};

bool contains(const Json& list, const std::string& value) {
    if (!list.is_array()) return false;
    for (const auto& item : list)
        if (item.is_string() && item.get_ref<const std::string&>() == value) return true;
    return false;
}

std::vector<std::string> string_list(const Json& list) {
    std::vector<std::string> out;
    if (!list.is_array()) return out;
    for (const auto& item : list)
        if (item.is_string()) out.push_back(item.get<std::string>());
    return out;
}

/// User.state_from_dict: set every key whose value differs; the changes, in key order.
Json merge_state(Json& state, const Json& update) {
    Json changed = Json::array();
    if (!update.is_object()) return changed;
    for (const auto& [key, value] : update.items()) {
        auto found = state.find(key);
        if (found == state.end() || *found != value) {
            state[key] = value;
            changed.push_back({{"key", key}, {"value", value}});
        }
    }
    return changed;
}

}  // namespace

// ---- InfoOptions ---------------------------------------------------------------------------

InfoOptions InfoOptions::from_json(const Json& info) {
    InfoOptions options;
    if (!info.is_object()) return options;
    options.include_history = info.value("include_history", options.include_history);
    options.include_users = info.value("include_users", options.include_users);
    options.return_public_state = info.value("return_public_state", options.return_public_state);
    if (auto found = info.find("exclude_channels"); found != info.end()) options.exclude_channels = string_list(*found);
    return options;
}

// ---- one operation in progress -----------------------------------------------------------------

class State::Context {
public:
    Context(const Json& op, Applied& applied)
        : id_(op.at("id").get<std::string>()), at_(op.at("at").get<Micros>()), node_(op.value("node", "")), applied_(applied) {}

    Micros at() const { return at_; }
    const std::string& node() const { return node_; }
    Applied& applied() { return applied_; }
    /// The n-th id this operation creates: the same on every node.
    std::string next_uuid() { return derive_uuid(id_, next_index_++); }
    const std::string& timestamp() {
        if (timestamp_.empty()) timestamp_ = iso_timestamp(at_);
        return timestamp_;
    }

private:
    std::string id_;
    Micros at_;
    std::string node_;
    Applied& applied_;
    std::uint64_t next_index_ = 0;
    std::string timestamp_;
};

/// A message on its way to connections: serialised at most once live and once as catch-up.
struct Outgoing {
    const Json& message;
    std::shared_ptr<const std::string> live;
    std::shared_ptr<const std::string> catchup;

    const std::shared_ptr<const std::string>& payload(bool as_catchup) {
        auto& slot = as_catchup ? catchup : live;
        if (!slot) {
            Json copy = message;
            copy["catchup"] = as_catchup;
            slot = std::make_shared<const std::string>(copy.dump());
        }
        return slot;
    }
};

// ---- State -------------------------------------------------------------------------------

State::State(StateLimits limits) : limits_(limits) {}

Applied State::apply(const Json& op) {
    Applied applied;
    try {
        Context ctx(op, applied);
        const std::string& kind = op.at("op").get_ref<const std::string&>();
        if (kind == "connect") apply_connect(ctx, op);
        else if (kind == "subscribe") apply_subscribe(ctx, op, true);
        else if (kind == "unsubscribe") apply_subscribe(ctx, op, false);
        else if (kind == "user_state") apply_user_state(ctx, op);
        else if (kind == "message") apply_messages(ctx, op);
        else if (kind == "edit") apply_edits(ctx, op, false);
        else if (kind == "delete") apply_edits(ctx, op, true);
        else if (kind == "channel_config") apply_channel_config(ctx, op);
        else if (kind == "disconnect") {
            const std::string conn_id = op.at("conn_id").get<std::string>();
            const bool found = connections_.contains(conn_id);
            if (found) remove_connection(ctx, conn_id);
            applied.response = found;
        } else if (kind == "attach") apply_attach(ctx, op);
        else if (kind == "detach") apply_detach(ctx, op);
        else if (kind == "touch") apply_touch(ctx, op);
        else if (kind == "requeue") apply_requeue(ctx, op);
        else if (kind == "gc") apply_gc(ctx, op);
        else throw std::invalid_argument("unknown operation '" + kind + "'");
        detach_answered_polls(ctx);
    } catch (const std::exception& e) {
        // The same bad operation fails the same way on every node, so states stay equal.
        applied = Applied{};
        applied.status = 500;
        applied.response = {{"error", e.what()}};
    }
    return applied;
}

State::Channel& State::ensure_channel(Context& ctx, const std::string& name, const Json* config) {
    auto found = channels_.find(name);
    if (found != channels_.end()) return found->second;
    Channel& channel = channels_[name];
    channel.name = name;
    channel.uuid = ctx.next_uuid();
    channel.last_active = ctx.at();
    if (config != nullptr) configure(channel, ChannelConfig::from_json(*config));
    return channel;
}

void State::configure(Channel& channel, const ChannelConfig& config) {
    channel.config = config;
    const auto limit = static_cast<std::int64_t>(limits_.max_history_size);
    channel.config.history_size = std::clamp<std::int64_t>(config.history_size, 0, limit);
    while (channel.history.size() > static_cast<std::size_t>(channel.config.history_size)) channel.history.pop_front();
}

void State::apply_connect(Context& ctx, const Json& op) {
    const std::string username = op.at("username").get<std::string>();
    const std::string conn_id = op.at("conn_id").get<std::string>();

    auto [user_it, created] = users_.try_emplace(username);
    User& user = user_it->second;
    if (created) {
        user.username = username;
        user.uuid = ctx.next_uuid();
        merge_state(user.state, op.value("fresh_user_state", Json::object()));
    }
    if (auto keys = op.find("state_public_keys"); keys != op.end() && !keys->is_null()) user.public_keys = string_list(*keys);
    merge_state(user.state, op.value("user_state", Json::object()));  // not announced, as in channelstream
    user.last_active = ctx.at();

    // The same conn_id again (a client connecting anew) keeps its connection and what it is
    // owed; under another user name it is a new connection.
    if (auto existing = connections_.find(conn_id); existing != connections_.end() && existing->second.username != username) {
        remove_connection(ctx, conn_id);
    }
    auto [conn_it, new_connection] = connections_.try_emplace(conn_id);
    Connection& connection = conn_it->second;
    if (new_connection) {
        connection.id = conn_id;
        connection.username = username;
        user.connections.push_back(conn_id);
    }
    connection.last_active = ctx.at();

    std::vector<std::string> channels = string_list(op.value("channels", Json::array()));
    std::sort(channels.begin(), channels.end());
    channels.erase(std::unique(channels.begin(), channels.end()), channels.end());
    const Json configs = op.value("channel_configs", Json::object());
    for (const std::string& name : channels) {
        auto config = configs.find(name);
        Channel& channel = ensure_channel(ctx, name, config == configs.end() ? nullptr : &*config);
        add_to_channel(ctx, channel, connection);
    }

    const InfoOptions info = InfoOptions::from_json(op.value("info", Json::object()));
    ctx.applied().response = {{"conn_id", conn_id},
                              {"state", user.state},
                              {"username", username},
                              {"public_state", user.public_state()},
                              {"channels", channels},
                              {"channels_info", channels_info(channels, info)}};
}

void State::apply_subscribe(Context& ctx, const Json& op, bool subscribe) {
    const std::string conn_id = op.at("conn_id").get<std::string>();
    auto found = connections_.find(conn_id);
    if (found == connections_.end()) {
        ctx.applied().status = 422;
        ctx.applied().response = {{"conn_id", Json::array({"Unknown connection"})}};
        return;
    }
    Connection& connection = found->second;
    std::vector<std::string> changed;
    const Json configs = op.value("channel_configs", Json::object());
    for (const std::string& name : string_list(op.value("channels", Json::array()))) {
        if (subscribe) {
            auto config = configs.find(name);
            Channel& channel = ensure_channel(ctx, name, config == configs.end() ? nullptr : &*config);
            if (add_to_channel(ctx, channel, connection)) changed.push_back(name);
        } else if (auto channel = channels_.find(name); channel != channels_.end()) {
            if (remove_from_channel(ctx, channel->second, connection)) changed.push_back(name);
        }
    }
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    const InfoOptions info = InfoOptions::from_json(op.value("info", Json::object()));
    ctx.applied().response = {{"channels", std::vector<std::string>(connection.channels.begin(), connection.channels.end())},
                              {"channels_info", connection_channels_info(connection, info)},
                              {subscribe ? "subscribed_to" : "unsubscribed_from", changed}};
}

Json State::connection_channels_info(const Connection& connection, const InfoOptions& options) const {
    return channels_info(std::vector<std::string>(connection.channels.begin(), connection.channels.end()), options);
}

void State::apply_user_state(Context& ctx, const Json& op) {
    const std::string username = op.at("user").get<std::string>();
    auto found = users_.find(username);
    if (found == users_.end()) {
        ctx.applied().status = 422;
        ctx.applied().response = {{"user", Json::array({"Unknown user"})}};
        return;
    }
    User& user = found->second;
    if (auto keys = op.find("state_public_keys"); keys != op.end() && !keys->is_null()) user.public_keys = string_list(*keys);
    const Json changed = merge_state(user.state, op.value("user_state", Json::object()));
    user.last_active = ctx.at();
    if (!changed.empty()) {
        const Json public_state = user.public_state();
        Json public_changed = Json::array();
        for (const auto& change : changed)
            if (public_state.contains(change.at("key").get<std::string>())) public_changed.push_back(change);
        std::set<std::string> channel_names;
        for (const std::string& conn_id : user.connections)
            if (auto conn = connections_.find(conn_id); conn != connections_.end())
                channel_names.insert(conn->second.channels.begin(), conn->second.channels.end());
        for (const std::string& name : channel_names) {
            Channel& channel = channels_.at(name);
            if (!channel.config.notify_state) continue;
            const Json message = {{"uuid", ctx.next_uuid()},
                                  {"type", "user_state_change"},
                                  {"user", username},
                                  {"timestamp", ctx.timestamp()},
                                  {"channel", name},
                                  {"message", {{"state", public_state}, {"changed", public_changed}}},
                                  {"catchup", false}};
            deliver_to_channel(ctx, channel, message, Json::array(), Json::array());
        }
    }
    ctx.applied().response = {{"user_state", user.state}, {"changed_state", changed}, {"public_keys", user.public_keys}};
}

void State::apply_messages(Context& ctx, const Json& op) {
    for (const Json& m : op.at("messages")) {
        ++total_unique_messages_;
        const Json& channel_name = m.at("channel");
        const Json pm_users = m.value("pm_users", Json::array());
        const Json exclude_users = m.value("exclude_users", Json::array());
        Json message = {{"uuid", m.at("uuid")},
                        {"timestamp", m.at("timestamp")},
                        {"user", m.at("user")},
                        {"channel", channel_name},
                        {"type", "message"},
                        {"edited", nullptr},
                        {"catchup", false}};
        if (m.contains("message")) message["message"] = m.at("message");
        std::size_t sent = 0;
        if (channel_name.is_string()) {
            auto found = channels_.find(channel_name.get<std::string>());
            if (found == channels_.end()) continue;  // channelstream drops it too
            Channel& channel = found->second;
            if (channel.config.store_history && !m.value("no_history", false) && channel.config.history_size > 0) {
                Json stored = message;  // channelstream keeps the delivery fields in history
                stored["pm_users"] = pm_users;
                stored["exclude_users"] = exclude_users;
                stored["no_history"] = false;
                channel.history.push_back(std::move(stored));
                while (channel.history.size() > static_cast<std::size_t>(channel.config.history_size)) channel.history.pop_front();
            }
            sent = deliver_to_channel(ctx, channel, message, pm_users, exclude_users);
        } else {
            for (const std::string& username : string_list(pm_users))
                if (auto user = users_.find(username); user != users_.end()) sent += deliver_to_user(ctx, user->second, message);
        }
        total_messages_ += sent;
    }
}

void State::apply_edits(Context& ctx, const Json& op, bool remove) {
    for (const Json& m : op.at("messages")) {
        const Json& uuid = m.at("uuid");
        const Json pm_users = m.value("pm_users", Json::array());
        const Json exclude_users = m.value("exclude_users", Json::array());
        Json frame = {{"uuid", uuid}, {"type", remove ? "message:delete" : "message:edit"}, {"catchup", false}};
        if (!remove)
            for (const char* key : kEditableKeys)
                if (m.contains(key)) frame[key] = m.at(key);

        // The channel named, else the one whose history holds the message.
        Channel* target = nullptr;
        if (const Json& named = m.value("channel", Json()); named.is_string()) {
            if (auto found = channels_.find(named.get<std::string>()); found != channels_.end()) target = &found->second;
        } else {
            for (auto& [name, channel] : channels_) {
                const bool holds = std::any_of(channel.history.begin(), channel.history.end(),
                                               [&](const Json& stored) { return stored.at("uuid") == uuid; });
                if (holds) {
                    target = &channel;
                    break;
                }
            }
        }
        if (target != nullptr) {
            for (auto it = target->history.begin(); it != target->history.end(); ++it) {
                if (it->at("uuid") != uuid) continue;
                if (remove) {
                    target->history.erase(it);
                } else {
                    for (const char* key : kEditableKeys)
                        if (m.contains(key)) (*it)[key] = m.at(key);
                }
                break;
            }
            frame["channel"] = target->name;
            deliver_to_channel(ctx, *target, frame, pm_users, exclude_users);
        } else {
            frame["channel"] = nullptr;
            for (const std::string& username : string_list(pm_users))
                if (auto user = users_.find(username); user != users_.end()) deliver_to_user(ctx, user->second, frame);
        }
    }
}

void State::apply_channel_config(Context& ctx, const Json& op) {
    std::vector<std::string> names;
    for (const auto& [name, config] : op.at("configs").items()) {
        const bool existed = channels_.contains(name);
        Channel& channel = ensure_channel(ctx, name, &config);
        if (existed) configure(channel, ChannelConfig::from_json(config));
        names.push_back(name);
    }
    InfoOptions options;
    options.include_history = false;
    options.include_users = false;
    ctx.applied().response = channels_info(names, options);
}

void State::apply_attach(Context& ctx, const Json& op) {
    auto found = connections_.find(op.at("conn_id").get<std::string>());
    if (found == connections_.end()) {
        ctx.applied().response = {{"attached", false}};
        return;
    }
    Connection& connection = found->second;
    connection.node = ctx.node();
    connection.kind = op.value("kind", "ws");
    connection.attachment = op.value("attachment", "");
    connection.between_polls = false;
    connection.last_active = ctx.at();
    if (auto user = users_.find(connection.username); user != users_.end()) user->second.last_active = ctx.at();
    for (auto& payload : connection.pending) ctx.applied().deliveries.push_back({connection.id, connection.node, std::move(payload)});
    connection.pending.clear();
    ctx.applied().response = {{"attached", true}};
}

void State::apply_detach(Context& ctx, const Json& op) {
    auto found = connections_.find(op.at("conn_id").get<std::string>());
    // Attached again since (another socket, another poll, another node): not ours to detach.
    if (found == connections_.end() || found->second.node != ctx.node() ||
        found->second.attachment != op.value("attachment", ""))
        return;
    Connection& connection = found->second;
    connection.between_polls = connection.kind == "poll";
    connection.node.clear();
    connection.kind.clear();
    connection.attachment.clear();
    connection.last_active = ctx.at();
}

void State::apply_requeue(Context& ctx, const Json& op) {
    auto found = connections_.find(op.at("conn_id").get<std::string>());
    if (found == connections_.end()) return;
    Connection& connection = found->second;
    std::vector<std::shared_ptr<const std::string>> payloads;
    for (Json frame : op.at("frames")) {
        frame["catchup"] = true;
        payloads.push_back(std::make_shared<const std::string>(frame.dump()));
    }
    if (!connection.node.empty()) {  // already attached again: hand them over now
        for (auto& payload : payloads) ctx.applied().deliveries.push_back({connection.id, connection.node, std::move(payload)});
        return;
    }
    // Older than what waits already: in front of it.
    connection.pending.insert(connection.pending.begin(), payloads.begin(), payloads.end());
    while (connection.pending.size() > limits_.max_pending_frames) {
        connection.pending.pop_front();
        ++connection.pending_dropped;
    }
}

void State::detach_answered_polls(Context& ctx) {
    for (const Delivery& delivery : ctx.applied().deliveries) {
        auto found = connections_.find(delivery.conn_id);
        if (found == connections_.end() || found->second.kind != "poll") continue;
        Connection& connection = found->second;
        connection.node.clear();
        connection.kind.clear();
        connection.attachment.clear();
        connection.between_polls = true;
        connection.last_active = ctx.at();
    }
}

void State::apply_touch(Context& ctx, const Json& op) {
    for (const std::string& conn_id : string_list(op.at("conn_ids"))) {
        auto found = connections_.find(conn_id);
        if (found == connections_.end() || found->second.node != ctx.node()) continue;
        found->second.last_active = ctx.at();
        if (auto user = users_.find(found->second.username); user != users_.end()) user->second.last_active = ctx.at();
    }
}

void State::apply_gc(Context& ctx, const Json& op) {
    const Micros conn_threshold = ctx.at() - op.at("conn_ttl").get<Micros>();
    const Micros user_threshold = ctx.at() - op.at("user_ttl").get<Micros>();
    std::vector<std::string> idle;
    for (const auto& [id, connection] : connections_)
        if (connection.last_active < conn_threshold) idle.push_back(id);
    for (const std::string& id : idle) remove_connection(ctx, id);
    for (auto it = users_.begin(); it != users_.end();) {
        if (it->second.connections.empty() && it->second.last_active < user_threshold) it = users_.erase(it);
        else ++it;
    }
    ctx.applied().response = {{"collected", idle.size()}};
}

bool State::add_to_channel(Context& ctx, Channel& channel, Connection& connection) {
    auto& conns = channel.connections[connection.username];
    if (conns.empty() && channel.config.notify_presence) send_presence(ctx, channel, connection.username, "joined");
    if (std::find(conns.begin(), conns.end(), connection.id) != conns.end()) return false;
    conns.push_back(connection.id);
    connection.channels.insert(channel.name);
    return true;
}

bool State::remove_from_channel(Context& ctx, Channel& channel, Connection& connection) {
    auto user_entry = channel.connections.find(connection.username);
    if (user_entry == channel.connections.end()) return false;
    auto& conns = user_entry->second;
    auto found = std::find(conns.begin(), conns.end(), connection.id);
    const bool was_found = found != conns.end();
    if (was_found) conns.erase(found);
    connection.channels.erase(channel.name);
    if (conns.empty()) {
        channel.connections.erase(user_entry);
        if (channel.config.notify_presence) send_presence(ctx, channel, connection.username, "parted");
    }
    return was_found;
}

void State::remove_connection(Context& ctx, const std::string& conn_id) {
    auto found = connections_.find(conn_id);
    if (found == connections_.end()) return;
    Connection& connection = found->second;
    const std::set<std::string> names = connection.channels;
    for (const std::string& name : names)
        if (auto channel = channels_.find(name); channel != channels_.end()) remove_from_channel(ctx, channel->second, connection);
    if (auto user = users_.find(connection.username); user != users_.end()) {
        auto& conns = user->second.connections;
        conns.erase(std::remove(conns.begin(), conns.end(), conn_id), conns.end());
    }
    connections_.erase(found);
    ctx.applied().closed.push_back(conn_id);
}

void State::send_presence(Context& ctx, Channel& channel, const std::string& username, const char* action) {
    Json users = Json::array();
    if (channel.config.broadcast_presence_with_user_lists) {
        for (const auto& [name, conns] : channel.connections) {
            auto user = users_.find(name);
            users.push_back({{"user", name}, {"state", user == users_.end() ? Json::object() : user->second.public_state()}});
        }
    }
    Json state = nullptr;
    if (std::string_view(action) == "joined")
        if (auto user = users_.find(username); user != users_.end()) state = user->second.public_state();
    const Json message = {{"uuid", ctx.next_uuid()},
                          {"type", "presence"},
                          {"user", username},
                          {"users", users},
                          {"timestamp", ctx.timestamp()},
                          {"channel", channel.name},
                          {"message", {{"action", action}}},
                          {"state", state},
                          {"catchup", false}};
    deliver_to_channel(ctx, channel, message, Json::array(), Json::array({username}));
}

std::size_t State::deliver_to_channel(Context& ctx, Channel& channel, const Json& message, const Json& pm_users,
                                      const Json& exclude_users) {
    channel.last_active = ctx.at();
    Outgoing outgoing{message, nullptr, nullptr};
    const bool private_message = pm_users.is_array() && !pm_users.empty();
    std::size_t sent = 0;
    for (const auto& [username, conns] : channel.connections) {
        if (contains(exclude_users, username)) continue;
        if (private_message && !contains(pm_users, username)) continue;
        for (const std::string& conn_id : conns) {
            auto connection = connections_.find(conn_id);
            if (connection == connections_.end()) continue;
            deliver(ctx, connection->second, outgoing, channel.config.store_frames);
            ++sent;
        }
    }
    return sent;
}

std::size_t State::deliver_to_user(Context& ctx, User& user, const Json& message) {
    user.last_active = ctx.at();
    Outgoing outgoing{message, nullptr, nullptr};
    std::size_t sent = 0;
    for (const std::string& conn_id : user.connections) {
        auto connection = connections_.find(conn_id);
        if (connection == connections_.end()) continue;
        deliver(ctx, connection->second, outgoing, true);
        ++sent;
    }
    return sent;
}

void State::deliver(Context& ctx, Connection& connection, Outgoing& outgoing, bool keep_if_detached) {
    if (!connection.node.empty()) {
        ctx.applied().deliveries.push_back({connection.id, connection.node, outgoing.payload(false)});
        return;
    }
    if (!keep_if_detached) return;
    // Between two long polls nothing is missed yet; after a lost WebSocket it is catch-up.
    connection.pending.push_back(outgoing.payload(!connection.between_polls));
    while (connection.pending.size() > limits_.max_pending_frames) {
        connection.pending.pop_front();
        ++connection.pending_dropped;
    }
}

}  // namespace hub::channelstream
