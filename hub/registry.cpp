#include "hub/registry.hpp"

#include <algorithm>

namespace hub {

void ChannelRegistry::subscribe(const std::string& channel, const ClientPtr& client) {
    if (!client) return;
    std::lock_guard lock(mutex_);
    auto& joined = client_channels_[client->id()];
    if (std::find(joined.begin(), joined.end(), channel) != joined.end()) return;
    joined.push_back(channel);
    auto& slot = channels_[channel];
    // Copy on write: publishes holding the old snapshot keep sending to it undisturbed.
    auto next = std::make_shared<Subscribers>();
    next->reserve((slot ? slot->size() : 0) + 1);
    if (slot) *next = *slot;
    next->push_back(client);
    slot = std::move(next);
    ++subscriptions_;
}

bool ChannelRegistry::remove_from_channel_locked(const std::string& channel, std::uint64_t client_id) {
    const auto it = channels_.find(channel);
    if (it == channels_.end()) return false;
    const Subscribers& current = *it->second;
    const auto found = std::find_if(current.begin(), current.end(), [&](const ClientPtr& c) { return c->id() == client_id; });
    if (found == current.end()) return false;
    if (current.size() == 1) {
        channels_.erase(it);  // an empty channel is forgotten, as aiows does
    } else {
        auto next = std::make_shared<Subscribers>();
        next->reserve(current.size() - 1);
        for (const auto& c : current)
            if (c->id() != client_id) next->push_back(c);
        it->second = std::move(next);
    }
    --subscriptions_;
    return true;
}

bool ChannelRegistry::unsubscribe(const std::string& channel, std::uint64_t client_id) {
    std::lock_guard lock(mutex_);
    const auto client = client_channels_.find(client_id);
    if (client == client_channels_.end()) return false;
    auto& joined = client->second;
    const auto at = std::find(joined.begin(), joined.end(), channel);
    if (at == joined.end()) return false;
    joined.erase(at);
    if (joined.empty()) client_channels_.erase(client);
    return remove_from_channel_locked(channel, client_id);
}

std::size_t ChannelRegistry::remove_client(std::uint64_t client_id) {
    std::vector<Snapshot> released;  // the last references die outside the lock
    std::lock_guard lock(mutex_);
    const auto client = client_channels_.find(client_id);
    if (client == client_channels_.end()) return 0;
    std::size_t left = 0;
    for (const auto& channel : client->second) {
        const auto it = channels_.find(channel);
        if (it != channels_.end()) released.push_back(it->second);
        if (remove_from_channel_locked(channel, client_id)) ++left;
    }
    client_channels_.erase(client);
    return left;
}

ChannelRegistry::Snapshot ChannelRegistry::snapshot(std::string_view channel) const {
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(channel);
    return it == channels_.end() ? nullptr : it->second;
}

PublishOutcome ChannelRegistry::publish(std::string_view channel, std::string_view data, websock::MessageType type) {
    const Snapshot subscribers = snapshot(channel);
    published_.fetch_add(1, std::memory_order_relaxed);
    if (!subscribers) return {};
    return send_to(*subscribers, websock::encode_message(data, type));  // encoded once, for everybody
}

PublishOutcome ChannelRegistry::publish_encoded(std::string_view channel, std::string_view frame) {
    const Snapshot subscribers = snapshot(channel);
    published_.fetch_add(1, std::memory_order_relaxed);
    if (!subscribers) return {};
    return send_to(*subscribers, frame);
}

PublishOutcome ChannelRegistry::send_to(const Subscribers& subscribers, std::string_view frame) {
    PublishOutcome outcome;
    for (const auto& client : subscribers) {
        if (client->send_encoded(frame) == websock::SendResult::Queued) ++outcome.delivered;
        else ++outcome.dropped;
    }
    delivered_.fetch_add(outcome.delivered, std::memory_order_relaxed);
    dropped_.fetch_add(outcome.dropped, std::memory_order_relaxed);
    return outcome;
}

std::size_t ChannelRegistry::subscriber_count(std::string_view channel) const {
    const Snapshot subscribers = snapshot(channel);
    return subscribers ? subscribers->size() : 0;
}

std::vector<std::string> ChannelRegistry::channels_of(std::uint64_t client_id) const {
    std::lock_guard lock(mutex_);
    const auto it = client_channels_.find(client_id);
    return it == client_channels_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> ChannelRegistry::channel_names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> names;
    names.reserve(channels_.size());
    for (const auto& [name, subscribers] : channels_) names.push_back(name);
    std::sort(names.begin(), names.end());
    return names;
}

std::vector<ChannelRegistry::ClientPtr> ChannelRegistry::clients() const {
    std::lock_guard lock(mutex_);
    std::vector<ClientPtr> all;
    all.reserve(client_channels_.size());
    std::unordered_map<std::uint64_t, bool> seen;
    for (const auto& [name, subscribers] : channels_)
        for (const auto& client : *subscribers)
            if (seen.emplace(client->id(), true).second) all.push_back(client);
    return all;
}

RegistryStats ChannelRegistry::stats() const {
    RegistryStats stats;
    stats.published = published_.load(std::memory_order_relaxed);
    stats.delivered = delivered_.load(std::memory_order_relaxed);
    stats.dropped = dropped_.load(std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    stats.channels = channels_.size();
    stats.subscriptions = subscriptions_;
    stats.clients = client_channels_.size();
    return stats;
}

}  // namespace hub
