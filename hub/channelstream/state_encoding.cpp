// The channelstream state read out: snapshots (the whole state to JSON and back, for a node
// that joins) and queries (lookups, channels_info, admin_info, garbage). Nothing here changes
// the state; the operations are in state.cpp.
#include "hub/channelstream/state.hpp"

#include <algorithm>
#include <stdexcept>

namespace hub::channelstream {

// ---- ChannelConfig, a user's public state ------------------------------------------------

ChannelConfig ChannelConfig::from_json(const Json& object) {
    ChannelConfig config;
    if (!object.is_object()) return config;
    config.notify_presence = object.value("notify_presence", config.notify_presence);
    config.store_history = object.value("store_history", config.store_history);
    config.history_size = object.value("history_size", config.history_size);
    config.broadcast_presence_with_user_lists =
        object.value("broadcast_presence_with_user_lists", config.broadcast_presence_with_user_lists);
    config.notify_state = object.value("notify_state", config.notify_state);
    config.store_frames = object.value("store_frames", config.store_frames);
    return config;
}

Json ChannelConfig::to_json() const {
    return {{"notify_presence", notify_presence},
            {"store_history", store_history},
            {"history_size", history_size},
            {"broadcast_presence_with_user_lists", broadcast_presence_with_user_lists},
            {"notify_state", notify_state},
            {"store_frames", store_frames}};
}

Json State::User::public_state() const {
    Json out = Json::object();
    for (const auto& [key, value] : state.items())
        if (std::find(public_keys.begin(), public_keys.end(), key) != public_keys.end()) out[key] = value;
    return out;
}

// ---- snapshots -------------------------------------------------------------------------------

namespace {

/// The snapshot format's version: a node refuses a snapshot it does not know.
constexpr int kSnapshotVersion = 1;

template <typename T>
T field(const Json& object, const char* key) {
    auto found = object.find(key);
    if (found == object.end()) throw std::invalid_argument(std::string("snapshot: missing '") + key + "'");
    return found->get<T>();
}

}  // namespace

Json State::to_snapshot() const {
    Json connections = Json::array();
    for (const auto& [id, c] : connections_) {
        Json pending = Json::array();
        for (const auto& payload : c.pending) pending.push_back(*payload);  // the exact text sent later
        connections.push_back({{"id", c.id},
                               {"username", c.username},
                               {"last_active", c.last_active},
                               {"node", c.node},
                               {"kind", c.kind},
                               {"attachment", c.attachment},
                               {"between_polls", c.between_polls},
                               {"channels", c.channels},
                               {"pending", std::move(pending)},
                               {"pending_dropped", c.pending_dropped}});
    }
    Json users = Json::array();
    for (const auto& [name, u] : users_) {
        users.push_back({{"username", u.username},
                         {"uuid", u.uuid},
                         {"state", u.state},
                         {"public_keys", u.public_keys},
                         {"connections", u.connections},
                         {"last_active", u.last_active}});
    }
    Json channels = Json::array();
    for (const auto& [name, ch] : channels_) {
        Json members = Json::object();
        for (const auto& [username, conns] : ch.connections) members[username] = conns;
        channels.push_back({{"name", ch.name},
                            {"uuid", ch.uuid},
                            {"config", ch.config.to_json()},
                            {"last_active", ch.last_active},
                            {"connections", std::move(members)},
                            {"history", Json(ch.history)}});
    }
    return {{"version", kSnapshotVersion},
            {"connections", std::move(connections)},
            {"users", std::move(users)},
            {"channels", std::move(channels)},
            {"total_messages", total_messages_},
            {"total_unique_messages", total_unique_messages_}};
}

State State::from_snapshot(const Json& snapshot, StateLimits limits) {
    State state(limits);
    try {
        if (!snapshot.is_object() || snapshot.value("version", 0) != kSnapshotVersion)
            throw std::invalid_argument("snapshot: not a version " + std::to_string(kSnapshotVersion) + " snapshot");
        for (const Json& c : field<Json>(snapshot, "connections")) {
            Connection connection;
            connection.id = field<std::string>(c, "id");
            connection.username = field<std::string>(c, "username");
            connection.last_active = field<Micros>(c, "last_active");
            connection.node = field<std::string>(c, "node");
            connection.kind = field<std::string>(c, "kind");
            connection.attachment = field<std::string>(c, "attachment");
            connection.between_polls = field<bool>(c, "between_polls");
            connection.channels = field<std::set<std::string>>(c, "channels");
            for (const Json& payload : field<Json>(c, "pending"))
                connection.pending.push_back(std::make_shared<const std::string>(payload.get<std::string>()));
            connection.pending_dropped = field<std::uint64_t>(c, "pending_dropped");
            const std::string id = connection.id;
            state.connections_.emplace(id, std::move(connection));
        }
        for (const Json& u : field<Json>(snapshot, "users")) {
            User user;
            user.username = field<std::string>(u, "username");
            user.uuid = field<std::string>(u, "uuid");
            user.state = field<Json>(u, "state");
            user.public_keys = field<std::vector<std::string>>(u, "public_keys");
            user.connections = field<std::vector<std::string>>(u, "connections");
            user.last_active = field<Micros>(u, "last_active");
            const std::string name = user.username;
            state.users_.emplace(name, std::move(user));
        }
        for (const Json& ch : field<Json>(snapshot, "channels")) {
            Channel channel;
            channel.name = field<std::string>(ch, "name");
            channel.uuid = field<std::string>(ch, "uuid");
            channel.config = ChannelConfig::from_json(field<Json>(ch, "config"));  // as stored: already clamped
            channel.last_active = field<Micros>(ch, "last_active");
            channel.connections = field<std::map<std::string, std::vector<std::string>>>(ch, "connections");
            for (const Json& stored : field<Json>(ch, "history")) channel.history.push_back(stored);
            const std::string name = channel.name;
            state.channels_.emplace(name, std::move(channel));
        }
        state.total_messages_ = field<std::uint64_t>(snapshot, "total_messages");
        state.total_unique_messages_ = field<std::uint64_t>(snapshot, "total_unique_messages");
    } catch (const std::invalid_argument&) {
        throw;
    } catch (const std::exception& e) {  // a wrong type (nlohmann's type_error), ...
        throw std::invalid_argument(std::string("snapshot: ") + e.what());
    }
    return state;
}

// ---- queries ---------------------------------------------------------------------------------

const State::Connection* State::connection(const std::string& conn_id) const {
    auto found = connections_.find(conn_id);
    return found == connections_.end() ? nullptr : &found->second;
}

const State::User* State::user(const std::string& username) const {
    auto found = users_.find(username);
    return found == users_.end() ? nullptr : &found->second;
}

const State::Channel* State::channel(const std::string& name) const {
    auto found = channels_.find(name);
    return found == channels_.end() ? nullptr : &found->second;
}

Json State::channels_info(const std::optional<std::vector<std::string>>& channels, const InfoOptions& options) const {
    Json result = {{"channels", Json::object()}, {"users", Json::array()}};
    std::set<std::string> users_to_list;
    auto describe = [&](const Channel& channel) {
        if (std::find(options.exclude_channels.begin(), options.exclude_channels.end(), channel.name) !=
            options.exclude_channels.end())
            return;
        std::size_t total_connections = 0;
        Json users = Json::array();
        for (const auto& [username, conns] : channel.connections) {
            total_connections += conns.size();
            if (options.include_users) {
                users.push_back(username);
                users_to_list.insert(username);
            }
        }
        Json history = Json::array();
        if (options.include_history)
            for (const Json& stored : channel.history) history.push_back(stored);
        // total_users counts the listed users: 0 without include_users, as in channelstream.
        result["channels"][channel.name] = {{"uuid", channel.uuid},
                                            {"name", channel.name},
                                            {"long_name", nullptr},
                                            {"settings", channel.config.to_json()},
                                            {"history", std::move(history)},
                                            {"last_active", iso_timestamp(channel.last_active)},
                                            {"total_connections", total_connections},
                                            {"total_users", users.size()},
                                            {"users", std::move(users)}};
    };
    if (!channels) {
        for (const auto& [name, channel] : channels_) describe(channel);
    } else {
        for (const std::string& name : *channels)
            if (auto found = channels_.find(name); found != channels_.end()) describe(found->second);
    }
    for (const std::string& username : users_to_list) {
        auto user = users_.find(username);
        if (user == users_.end()) continue;
        result["users"].push_back(
            {{"user", username}, {"state", options.return_public_state ? user->second.public_state() : user->second.state}});
    }
    return result;
}

Json State::admin_info() const {
    std::size_t active_users = 0;
    std::size_t total_connections = 0;
    Json users = Json::array();
    for (const auto& [name, user] : users_) {
        if (user.connections.empty()) continue;
        ++active_users;
        total_connections += user.connections.size();
        users.push_back({{"state", user.public_state()}, {"user", name}, {"uuid", user.uuid}, {"connections", user.connections}});
    }
    InfoOptions everything;
    return {{"remembered_user_count", users_.size()},
            {"unique_user_count", active_users},
            {"total_connections", total_connections},
            {"total_channels", channels_.size()},
            {"total_messages", total_messages_},
            {"total_unique_messages", total_unique_messages_},
            {"channels", channels_info(std::nullopt, everything)["channels"]},
            {"users", std::move(users)}};
}

std::vector<std::string> State::attached_to(const std::string& node) const {
    std::vector<std::string> ids;
    for (const auto& [id, connection] : connections_)
        if (connection.node == node) ids.push_back(id);
    return ids;
}

bool State::has_garbage(Micros now, Micros conn_ttl, Micros user_ttl) const {
    for (const auto& [id, connection] : connections_)
        if (connection.last_active < now - conn_ttl) return true;
    for (const auto& [name, user] : users_)
        if (user.connections.empty() && user.last_active < now - user_ttl) return true;
    return false;
}

}  // namespace hub::channelstream
