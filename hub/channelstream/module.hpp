// ChannelstreamModule: channelstream 0.7.1's API (and the 2015 one) as a hub module.
//
// Every state change (connect, message, a socket attaching, garbage collection, ...) is an
// operation (state.hpp) published on the Bus under the topic "channelstream"; every node
// applies each operation to its own copy of the State in the bus's order, and sends the
// deliveries meant for connections attached to it. So with the RedisBus, presence, user
// state, history and catch-up are the same on every node, whichever one a client reconnects
// to. An HTTP request is answered once its operation has been applied on this node.
//
// Connections are served by
//   GET /ws?conn_id=          a WebSocket: each message is sent as a JSON list of one object;
//                             [] every heartbeat_interval
//   GET /listen?conn_id=      a long poll: the messages waiting or the next ones, else [] after
//                             wake_connections_after; JSONP with &callback=
//
// Threads: handle_http, handshake and the socket callbacks run on the server's threads,
// on_bus_message on the bus's, on_tick on the hub's timer thread; all may overlap. Three
// locks, never nested: the State, this node's sockets and polls, and the requests waiting for
// their operation. Nothing is sent and nothing is published while one is held, and
// on_bus_message never publishes (the LocalBus runs it inside publish()).
//
// With a shared bus (RedisBus) a node that starts beside running ones first SYNCS: it gets
// the state from them (sync.hpp) and answers requests that need the state with 503 until then.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <websock/websock.hpp>

#include "hub/channelstream/api.hpp"
#include "hub/channelstream/config.hpp"
#include "hub/channelstream/state.hpp"
#include "hub/channelstream/sync.hpp"
#include "hub/module.hpp"

namespace hub::channelstream {

class ChannelstreamModule final : public HubModule {
public:
    static constexpr std::string_view kTopic = "channelstream";

    explicit ChannelstreamModule(ChannelstreamConfig config, SyncOptions sync = {});
    ~ChannelstreamModule() override;

    std::string_view name() const noexcept override { return kTopic; }
    void start(const ModuleContext& context) override;
    bool handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder) override;
    bool owns_websocket(const websock::HttpRequest& request) const override;
    websock::HandshakeDecision handshake(const websock::HandshakeRequest& request, websock::HandshakeDecision policy_decision) override;
    void on_open(websock::Client& client) override;
    void on_message(websock::Client& client, std::string_view data, websock::MessageType type) override;
    void on_close(websock::Client& client, websock::CloseCode code, std::string_view reason) override;
    void on_bus_message(std::string_view topic, std::string_view payload) override;
    void on_tick() override;
    void on_stop() override;

    /// on_tick at a given time (tests).
    void tick(Micros now);
    /// This process's name in the operations it makes.
    const std::string& node() const noexcept { return api_.node(); }
    const ChannelstreamConfig& config() const noexcept { return api_.config(); }
    /// /admin/admin.json's body without uptime and version (tests, metrics).
    Json admin_snapshot() const;
    /// Whether this node holds the cluster's state (always with a local bus; with Redis once
    /// its snapshot is loaded, or no other node answered).
    bool synced() const;
    /// The id of the last operation applied here (tests).
    std::string last_applied() const;
    /// Messages meant for this node that found no socket or poll to take them.
    std::uint64_t undelivered() const noexcept { return undelivered_.load(); }

private:
    /// A WebSocket attached here.
    struct LocalSocket {
        std::shared_ptr<websock::Client> client;
        std::string attachment;
        bool closing = false;  ///< closed; its detach is on the way
        std::vector<std::shared_ptr<const std::string>> held;  ///< what came after it closed
    };
    /// A long poll waiting here.
    struct Poll {
        std::shared_ptr<websock::HttpResponder> responder;
        websock::HttpRequest request;  ///< for the answer's CORS headers
        std::string conn_id;
        std::string callback;
        std::string attachment;
        Micros deadline = 0;
        bool expiring = false;  ///< its deadline passed; its detach is on the way
    };
    using Done = std::function<void(bool ok, std::string_view error, const Applied* applied)>;

    void publish(Json op, Done done);
    void dispatch(const Applied& applied);
    void start_poll(const websock::HttpRequest& request, const ApiOutcome& outcome,
                    const std::shared_ptr<websock::HttpResponder>& responder);
    void answer_poll(Poll poll, const std::vector<std::shared_ptr<const std::string>>& frames);
    void socket_detached(const std::string& conn_id, const std::string& attachment);

    // ---- syncing (sync.hpp); the *_locked ones run under state_mutex_ ----
    /// Apply one operation of the bus (snapshot-request and snapshot included) to the state.
    Applied apply_locked(const Json& op);
    /// An operation read from the bus while syncing: buffered, or the snapshot for us.
    void receive_while_syncing_locked(Json op, std::size_t bytes, std::vector<Applied>& results);
    /// Ask again at the next tick, not before `not_before`.
    void request_again_locked(Micros not_before);
    /// From start() and every tick: send our request, give up waiting, answer joiners.
    void sync_step(Micros now);
    void publish_snapshots(const std::vector<std::pair<std::string, std::string>>& requests, const std::string& last_applied,
                           const std::string& state_text, Micros now);
    Api api_;
    Bus* bus_ = nullptr;

    mutable std::mutex state_mutex_;
    State state_;
    const SyncOptions sync_options_;
    // Under state_mutex_ too: the pair (state_, last_applied_) is what a snapshot carries.
    bool synced_ = false;
    std::string last_applied_;     ///< id of the last operation applied to state_
    JoinBuffer join_buffer_;       ///< what came from the bus while syncing
    std::string sync_request_;     ///< id of our snapshot-request in flight; empty: none
    bool request_needed_ = false;  ///< send a snapshot-request at the next step
    Micros request_not_before_ = 0;
    Micros requested_at_ = 0;
    bool request_seen_ = false;    ///< our request came back on the bus
    Micros request_seen_at_ = 0;   ///< the first step after that (times come from the ticks)
    /// snapshot-requests of joiners to answer at the next tick: (their node, request id).
    std::vector<std::pair<std::string, std::string>> snapshot_requests_;

    std::mutex local_mutex_;
    std::unordered_map<std::string, LocalSocket> sockets_;        ///< conn_id -> its WebSocket here
    std::unordered_map<std::uint64_t, std::string> socket_conn_;  ///< client id -> conn_id
    std::unordered_map<std::string, Poll> polls_;                 ///< conn_id -> its long poll here
    /// Messages a long poll could not take (its poller left): put back by the next tick.
    std::unordered_map<std::string, std::vector<std::shared_ptr<const std::string>>> requeue_later_;
    bool stopping_ = false;

    std::mutex waiting_mutex_;
    std::unordered_map<std::string, std::optional<Applied>> waiting_;  ///< op id -> its result here

    DelayedAnswers delayed_answers_;  ///< failed sign-ins, answered by a tick 0.5 s on

    std::mutex tick_mutex_;  ///< one tick at a time
    Micros last_heartbeat_ = 0;
    std::atomic<bool> gc_in_flight_{false};
    std::atomic<std::uint64_t> undelivered_{0};
};

}  // namespace hub::channelstream
