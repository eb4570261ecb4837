// The streams module's subscriptions: which connection follows which channel, the live
// fan-out of bus messages, and the history reads of catching-up subscriptions (on one
// worker thread of its own, so that a read never runs inside the bus's handler).
//
// Threads and locks. A connection's ops come on its own callback thread; live messages on the
// bus's thread (or a publisher's, with LocalBus); history answers on the worker or the bus's
// thread. Each Subscription has a mutex that orders everything sent for it (its cursor is
// fed only under it, and it sends under it, so the client sees one order). Locks are never
// nested except mutex_ (the index) -> nothing: the index is copied on write and read as a
// snapshot, as ChannelRegistry does. Internal to the module.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <websock/websock.hpp>

#include "hub/bus.hpp"
#include "hub/streams/cursor.hpp"
#include "hub/streams/module.hpp"
#include "hub/streams/protocol.hpp"

namespace hub::streams {

/// Totals since start, for /metrics.
struct CoreStats {
    std::uint64_t delivered = 0;  ///< messages queued to a subscriber
    std::uint64_t dropped = 0;    ///< messages a subscriber did not take (closing, queue full)
    std::uint64_t resumed = 0;    ///< subscribes with since answered recovered: true
    std::uint64_t not_recovered = 0;  ///< ... answered recovered: false
    std::uint64_t ack_window_cuts = 0;  ///< connections closed for a full ack window
    std::uint64_t history_lost = 0;     ///< subscriptions ended because history lost their gap
    std::size_t subscriptions = 0;
    std::size_t channels = 0;
};

class Core : public std::enable_shared_from_this<Core> {
public:
    Core(StreamsOptions options, Bus* bus);
    ~Core();  ///< stops the worker
    Core(const Core&) = delete;
    Core& operator=(const Core&) = delete;

    void start_worker();
    void stop_worker() noexcept;

    void open(websock::Client& client);
    void close(std::uint64_t client_id);
    /// One text frame from a client.
    void handle_frame(websock::Client& client, std::string_view text);
    /// One message of the streams topic from the bus.
    void on_bus_message(std::string_view payload);
    /// The hub is stopping: tell every client (a notice) before the server closes them.
    void notify_stopping();
    CoreStats stats() const;

    struct Subscription;
    struct Session;

private:
    class Actions;
    struct ReadTask {
        std::weak_ptr<Subscription> subscription;
        std::uint64_t after = 0;
        std::size_t max_messages = 0;
    };
    using Subscribers = std::vector<std::shared_ptr<Subscription>>;

    void subscribe(const std::shared_ptr<Session>& session, SubscribeOp op);
    void unsubscribe(const std::shared_ptr<Session>& session, const UnsubscribeOp& op);
    void ack(const std::shared_ptr<Session>& session, const AckOp& op);
    void on_history(const std::shared_ptr<Subscription>& subscription, HistoryRead read);
    void finish(const std::shared_ptr<Subscription>& subscription, Actions& actions);  // after its lock
    void remove(const std::shared_ptr<Subscription>& subscription);  // from its session and the index
    void add_to_index(const std::shared_ptr<Subscription>& subscription);
    void remove_from_index(const std::shared_ptr<Subscription>& subscription);
    std::shared_ptr<const Subscribers> snapshot(std::string_view channel) const;
    std::shared_ptr<Session> session_of(std::uint64_t client_id) const;
    void enqueue(ReadTask task);
    void worker_loop();
    void wait_for_room(const std::shared_ptr<Subscription>& subscription);
    void poll_waiting_room();  // on the worker
    static MessagePtr make_message(const SequencedMessage& message);

    StreamsOptions options_;
    Bus* bus_;

    mutable std::mutex mutex_;  // guards sessions_ and channels_
    std::unordered_map<std::uint64_t, std::shared_ptr<Session>> sessions_;
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
    };
    std::unordered_map<std::string, std::shared_ptr<const Subscribers>, StringHash, std::equal_to<>> channels_;
    std::size_t subscriptions_ = 0;

    std::mutex tasks_mutex_;
    std::condition_variable tasks_wake_;
    std::deque<ReadTask> tasks_;
    std::vector<std::weak_ptr<Subscription>> waiting_room_;  // catching up, their queue full; guarded by tasks_mutex_
    bool stopping_ = false;  // guarded by tasks_mutex_
    std::thread worker_;

    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> resumed_{0};
    std::atomic<std::uint64_t> not_recovered_{0};
    std::atomic<std::uint64_t> ack_window_cuts_{0};
    std::atomic<std::uint64_t> history_lost_{0};
};

}  // namespace hub::streams
