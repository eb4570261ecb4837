// RedisBus: the hub's bus across several nodes, through one Redis STREAM.
//
// Why a stream and not pub/sub: a pub/sub message sent while a node's connection is down is
// gone for that node; a stream keeps it, so a node whose reader dropped catches up from the
// last entry it delivered when it reconnects, and every node reads one total order.
//
//   publish()  queues (bounded) for the writer thread, which pipelines
//              XADD <key> MAXLEN ~ <max> * t <topic> p <payload> n <node> s <seq>
//   reader     XREAD BLOCK <ms> COUNT <n> STREAMS <key> <last id>, starting from the stream's
//              last id at start(); delivers every entry to the handler in stream order.
//   Done(ok)   once XADD succeeded AND this node's reader delivered that very entry (found by
//              the entry's node id + sequence number, not by comparing stream ids, which may
//              go back when Redis restarts empty): read-your-writes.
//
// Redis down: publish() answers !ok at once ("redis unavailable: ..."), status() says
// disconnected, both connections reconnect with exponential back-off. Redis restarted
// empty (the stream is gone, or its last id is below ours): the reader starts again from
// the new stream's beginning, so nothing written to the new stream is missed.
//
// Limits of what a remote store can promise, said plainly:
//  - A publish whose XADD reply is lost (connection cut mid-command, command timeout) gets
//    !ok, yet Redis may have taken it; then the other nodes deliver it (this node too, if
//    its reader reads it, but its Done has already said !ok). Same for delivery_timeout.
//  - A node delivers what was added after its start() and, across its outages, what is
//    still in the stream: entries trimmed by MAXLEN while it was away are lost to it (it
//    logs that). Redis restarted from an older snapshot (persistence on) may replay entries
//    this node had delivered; with persistence off (the hub's intended use) it cannot.
//  - Ids going back are recognised on reconnect; a Redis clock that goes back while the
//    stream survives (failover to a replica whose clock is behind) is not.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "hub/bus.hpp"

namespace hub {

struct RedisOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    int database = 0;        ///< SELECTed when not 0
    std::string username;    ///< AUTH username password (Redis 6 ACL) when set
    std::string password;    ///< AUTH when set; never logged, never in status()
    /// The one stream every node of a hub shares. Nodes with different keys are separate hubs.
    std::string stream_key = "websock-hub";
    /// XADD trims to about this many entries (MAXLEN ~): enough to catch up after an outage
    /// of some seconds at a high rate, small enough to bound Redis' memory.
    std::size_t stream_max_length = 100'000;
    /// A dead address must not stall start-up or stop() for long.
    std::chrono::milliseconds connect_timeout{1000};
    /// An XADD (or any command but the blocking read) that takes longer means Redis is unwell.
    std::chrono::milliseconds command_timeout{2000};
    /// XREAD BLOCK time: the reader's longest wait for news (stop() also shuts its socket).
    std::chrono::milliseconds read_block{250};
    /// Entries per XREAD: large enough to catch up quickly, small enough to keep latency even.
    std::size_t read_batch = 512;
    /// XADDs sent in one pipelined round trip.
    std::size_t write_batch = 256;
    /// Reconnect back-off: doubles from min to max after each failed attempt.
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{2000};
    /// Publishes not yet answered (queued, in flight, or awaiting this node's own delivery);
    /// beyond either limit publish() fails at once instead of queueing without bound.
    std::size_t max_pending_publishes = 65'536;
    std::size_t max_pending_bytes = 64u * 1024 * 1024;
    /// An accepted XADD that this node's reader has not delivered within this time gets
    /// !ok ("not delivered here in time"; other nodes may still see it: the outcome of a
    /// write whose confirmation is lost is unknowable, as with any remote store).
    std::chrono::milliseconds delivery_timeout{5000};
    /// Where state changes (connected, lost, reconnected, stream reset) are reported. Empty:
    /// standard error. Called from the bus's threads, never with a lock held.
    std::function<void(std::string_view line)> log;
};

/// redis://HOST[:PORT][/DB] and redis://[USER]:PASSWORD@HOST[:PORT][/DB] (password
/// percent-decoded; IPv6 hosts in brackets). Anything else (other schemes, query strings,
/// bad port or database) gives nullopt. The port defaults to 6379, the database to 0.
std::optional<RedisOptions> parse_redis_url(std::string_view url);

/// The Bus through Redis. start() once, publish() from any thread, stop() from one thread at
/// a time but not the bus's own (not from inside the handler or a Done callback); the
/// destructor stops. stop() takes at most about connect_timeout (a connection attempt in
/// progress cannot be interrupted); a blocked XREAD or XADD is cut by shutting its socket.
class RedisBus final : public Bus {
public:
    explicit RedisBus(RedisOptions options);
    ~RedisBus() override;
    RedisBus(const RedisBus&) = delete;
    RedisBus& operator=(const RedisBus&) = delete;

    /// Starts the reader and writer threads and waits for their first connection attempts
    /// (at most connect_timeout + command_timeout + read_block): when it returns with Redis
    /// reachable, this node reads the stream from here on and status() says connected; with
    /// Redis unreachable it returns all the same (publishes fail until a reconnect).
    void start(Handler handler) override;
    /// Never blocks on the network. `done` runs on the caller's thread when the publish is
    /// refused at once, else on the bus's reader or writer thread.
    void publish(std::string topic, std::string payload, Done done) override;
    /// Wakes and joins both threads; every publish not yet answered gets !ok ("bus stopped").
    void stop() override;
    BusStatus status() const override;

    /// This node's identity on the stream (random per RedisBus): tells its own entries apart.
    const std::string& node_id() const noexcept { return node_id_; }

private:
    struct Pending {
        Done done;
        std::size_t bytes = 0;
        bool accepted = false;  ///< XADD answered with an id
        bool delivered = false; ///< this node's handler ran for it
        std::chrono::steady_clock::time_point deadline;  ///< set once accepted
    };
    struct Queued {
        std::uint64_t seq = 0;
        std::string topic;
        std::string payload;
    };
    struct Link;  // one hiredis connection with its reconnect state (redis_bus_detail.hpp)

    void writer_loop();
    void reader_loop();
    bool connect_link(Link& link, const char* role);
    void link_lost(Link& link, const char* role, const std::string& error);
    bool position_reader(Link& link);
    void deliver_batch(void* reply);  // a redisReply* of XREAD
    void fail_all_queued_locked(std::string_view reason, std::vector<Done>& to_fail);
    void sweep_timeouts();
    bool wait_backoff(Link& link);
    void update_connected_locked(std::vector<std::string>& log_lines);
    void log(std::string_view line) const;

    const RedisOptions options_;
    const std::string node_id_;

    mutable std::mutex mutex_;
    std::condition_variable wake_writer_;
    std::condition_variable wake_backoff_;
    std::condition_variable first_attempts_;  ///< start() waits on it for the first connections
    Handler handler_;
    bool started_ = false;
    bool stopping_ = false;
    std::deque<Queued> queue_;                  ///< waiting for the writer
    std::map<std::uint64_t, Pending> pending_;  ///< every unanswered publish, by sequence
    std::size_t pending_bytes_ = 0;
    std::uint64_t next_seq_ = 1;
    bool writer_up_ = false;
    bool reader_up_ = false;   ///< connected and positioned on the stream
    bool outage_ = false;      ///< a link failed and is not back: publish fails at once
    bool ever_connected_ = false;
    bool reader_tried_ = false;  ///< the first reader connection attempt is over (either way)
    bool writer_tried_ = false;
    BusStatus status_;

    std::unique_ptr<Link> writer_link_;
    std::unique_ptr<Link> reader_link_;
    std::thread writer_thread_;
    std::thread reader_thread_;
};

}  // namespace hub
