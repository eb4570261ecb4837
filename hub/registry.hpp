// ChannelRegistry: which clients listen to which channel, and back; the fan-out of one
// message to a channel's subscribers.
//
// Each channel keeps an immutable snapshot of its subscriber list (copy on write): a publish
// takes the snapshot under the lock in O(1) and sends outside it, so a publish never waits on
// a subscribe, a disconnect or another publish's sends, and never on a subscriber: the frame
// is encoded once and handed to each subscriber's bounded outbound queue (send_encoded).
// A subscriber whose queue passes ServerOptions::max_outbound_queue_bytes is closed by the
// library with 1008 (QueueFullPolicy::Close); the others still get every message.
//
// Threads: every member is safe from any thread. Subscribing and unsubscribing cost O(size
// of the channel); publishing costs O(1) under the lock plus one queue append per subscriber.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <websock/websock.hpp>

namespace hub {

/// What one publish did.
struct PublishOutcome {
    std::size_t delivered = 0;  ///< subscribers whose queue took the frame
    std::size_t dropped = 0;    ///< subscribers that did not (closing, or queue full)
};

/// Running totals since start (relaxed counters: exact once the publishes have returned).
struct RegistryStats {
    std::uint64_t published = 0;  ///< publish() calls
    std::uint64_t delivered = 0;  ///< frames accepted into a subscriber's queue
    std::uint64_t dropped = 0;    ///< frames a subscriber did not take (closing, or queue full)
    std::size_t channels = 0;     ///< channels with at least one subscriber now
    std::size_t subscriptions = 0;  ///< (client, channel) pairs now
    std::size_t clients = 0;      ///< clients subscribed to at least one channel now
};

class ChannelRegistry {
public:
    using ClientPtr = std::shared_ptr<websock::Client>;

    /// Add `client` to `channel`. Subscribing twice to the same channel is harmless.
    void subscribe(const std::string& channel, const ClientPtr& client);
    /// Take a client off one channel. Returns whether it was subscribed.
    bool unsubscribe(const std::string& channel, std::uint64_t client_id);
    /// Take a client off every channel (it disconnected). Returns how many it left.
    std::size_t remove_client(std::uint64_t client_id);

    /// Send one message to every subscriber of `channel`, encoded once. Never blocks on a
    /// subscriber. Subscribers that join while it runs may or may not get it.
    PublishOutcome publish(std::string_view channel, std::string_view data, websock::MessageType type);
    /// The same with a frame already made by websock::encode_message (one encoding for many channels).
    PublishOutcome publish_encoded(std::string_view channel, std::string_view frame);

    std::size_t subscriber_count(std::string_view channel) const;
    std::vector<std::string> channels_of(std::uint64_t client_id) const;
    std::vector<std::string> channel_names() const;
    /// Every client subscribed to at least one channel now, once each.
    std::vector<ClientPtr> clients() const;
    RegistryStats stats() const;

private:
    using Subscribers = std::vector<ClientPtr>;
    using Snapshot = std::shared_ptr<const Subscribers>;

    Snapshot snapshot(std::string_view channel) const;
    PublishOutcome send_to(const Subscribers& subscribers, std::string_view frame);  // outside the lock
    // Removes one client from a channel's list; the caller holds mutex_.
    bool remove_from_channel_locked(const std::string& channel, std::uint64_t client_id);

    mutable std::mutex mutex_;
    // A transparent hash: publish looks channels up by string_view without a copy (C++20).
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
    };
    std::unordered_map<std::string, Snapshot, StringHash, std::equal_to<>> channels_;
    std::unordered_map<std::uint64_t, std::vector<std::string>> client_channels_;
    std::size_t subscriptions_ = 0;

    std::atomic<std::uint64_t> published_{0};
    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace hub
