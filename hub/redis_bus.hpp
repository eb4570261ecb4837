// RedisBus: the hub's bus across several nodes, through one Redis STREAM.
//
// Why a stream and not pub/sub: a pub/sub message sent while a node's connection is down is
// gone for that node; a stream keeps it, so a node whose reader dropped catches up from the
// last entry it delivered when it reconnects, and every node reads one total order.
//
//   publish()  queues (bounded) for the writer thread, which pipelines
//              XADD <key> MAXLEN ~ <max> * t <topic> p <payload> n <node> s <seq> c <confirmed>
//   reader     XREAD BLOCK <ms> COUNT <n> STREAMS <key> <last id>, starting from the stream's
//              last id at start(); delivers every entry to the handler in stream order.
//   Done(ok)   once XADD succeeded AND this node's reader delivered that very entry (found by
//              the entry's node id + sequence number, not by comparing stream ids, which may
//              go back when Redis restarts empty): read-your-writes.
//
// Sequenced streams (Bus::publish_sequenced, read_history; hub/redis_streams.cpp): offsets and
// history live in Redis, so any node serves a resume. A sequenced publish is one Lua script
// (EVALSHA of the script loaded on connect; EVAL when Redis has lost it), queued and pipelined
// with the plain XADDs in the same order, that atomically
//   - keeps the stream's state in the hash <stream_key>:s:<stream> (epoch, offset, and the
//     history's bytes and oldest entry): offset + 1, and when the hash has no epoch, a random
//     one this node made (a new epoch also deletes any history left under the name); so when
//     Redis loses its data, epoch and offset go together and the next message starts a new
//     epoch at offset 1;
//   - appends to the history stream <stream_key>:h:<stream> with the offset as its entry id
//     ("<offset>-0"), and trims it from the oldest end by all three HistoryLimits (entries
//     and payload bytes exact; age by Redis' clock, TIME); a history read trims by age too,
//     so an idle stream's old entries go when someone asks;
//   - XADDs the bus entry (fields q stream, e epoch, o offset, m unix ms besides t p n s) to
//     the bus stream, which every node's reader delivers in bus order as (topic,
//     encode_sequenced(...)). Done comes as for publish(), with the epoch and offset.
// read_history() is a second script (state and entries in one consistent reply), queued to
// the writer thread behind this node's earlier publishes. The stream's state hash is never
// expired: it is what lets a client whose position is current resume after an idle spell
// (one small hash per stream name ever used; its history is bounded by the limits).
// Redis restarts: with persistence off (the hub's intended use) every history is lost; the
// next message of each stream starts a new epoch, so clients are told they cannot recover,
// never given a wrong resume. With persistence or a replica failover, Redis may come back
// with an older copy whose offsets would be handed out again under the same epoch; so each
// state hash records the run_id of the Redis process that wrote it (INFO server, read by the
// writer on connecting), and a publish that finds another run_id starts a new epoch too.
// The price: after any Redis restart or failover, a stream's clients resume with a new epoch
// (recovered: false) from its next message on. Messages Redis took but then lost are lost.
// A sequenced publish whose reply is lost (!ok) may still have taken an offset and reached
// the other nodes.
//
// Redis down: publish() answers !ok at once ("redis unavailable: ..."), status() says
// disconnected, both connections reconnect with exponential back-off. Redis restarted
// empty (the stream is gone, or its last id is below ours): the reader starts again from
// the new stream's beginning, so nothing written to the new stream is missed.
//
// Lost entries are told: s numbers a node's entries in order and c is its highest number Redis
// had answered when the entry was sent, so a reader that gets an entry whose c lies between
// the last number it saw from that node and this one knows that an entry Redis had taken is
// gone (Redis restarted empty, or trimmed it while this node was away). It calls the gap
// handler first (the Hub: aiows closes its subscribers with 1012). It learns this with that
// node's next entry, not before.
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
#include <unordered_map>
#include <vector>

#include "hub/bus.hpp"

namespace hub {

namespace redis_bus_detail {
struct Outcome;
}

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
    /// Before start(). Applied by the scripts in Redis (see the top of this file).
    void set_history_limits(HistoryLimits limits) override;
    /// As publish(): queued (bounded by the same limits, in the same order as plain
    /// publishes), refused at once in an outage, `done` after this node's handler ran. A
    /// stream name that is empty, longer than 1024 bytes or holds a NUL is refused at once.
    void publish_sequenced(std::string topic, std::string stream, std::string payload, SequencedDone done) override;
    /// Queued to the writer thread, behind this node's publishes queued before it (so it
    /// sees them); at most 1,000,000 messages per read; `done` runs there, or at once on the caller's thread when refused (Redis
    /// down, bus stopped, too many reads queued).
    void read_history(std::string stream, std::uint64_t after, std::size_t max_messages, HistoryDone done) override;
    /// Wakes and joins both threads; every publish not yet answered gets !ok ("bus stopped").
    void stop() override;
    /// Before start(). Called when another node's sequence numbers jump (see gap_seen_from).
    void set_gap_handler(GapHandler handler) override;
    BusStatus status() const override;

    /// This node's identity on the stream (random per RedisBus): tells its own entries apart.
    const std::string& node_id() const noexcept { return node_id_; }

private:
    struct Pending {
        SequencedDone done;  ///< a plain publish's Done, wrapped
        SequencedMessage accepted_message;  ///< sequenced: filled from the script's reply or the delivery
        std::size_t bytes = 0;
        bool accepted = false;  ///< XADD answered with an id
        bool delivered = false; ///< this node's handler ran for it
        std::chrono::steady_clock::time_point deadline;  ///< set once accepted
    };
    struct Queued {
        enum class Kind { publish, sequenced, read };
        Kind kind = Kind::publish;
        std::uint64_t seq = 0;  ///< publishes: the key of pending_
        std::string topic;
        std::string payload;
        std::string stream;          ///< sequenced and read
        std::uint64_t after = 0;     ///< read
        std::size_t max_messages = 0;  ///< read
        HistoryDone history_done;    ///< read
    };
    struct Link;  // one hiredis connection with its reconnect state (redis_bus_detail.hpp)

    void writer_loop();
    void reader_loop();
    bool connect_link(Link& link, const char* role);
    void link_lost(Link& link, const char* role, const std::string& error);
    bool position_reader(Link& link);
    void deliver_batch(void* reply);  // a redisReply* of XREAD
    /// Reader thread: whether `node`'s entry numbered `seq` shows that an entry of that node
    /// which Redis had confirmed never reached this node (Redis lost it, or trimmed it while we
    /// were away); remembers `seq`. Each node numbers what it sends 1, 2, 3, ... in order, and
    /// every entry also carries `confirmed`: the node's highest number Redis had answered when
    /// it was sent. A hole in the numbers alone may be a publish that failed (its publisher got
    /// !ok, nobody lost anything); a confirmed number inside the hole is a loss. Entries
    /// without `confirmed` (nullopt) count every hole.
    bool gap_seen_from(std::string_view node, std::uint64_t seq, std::optional<std::uint64_t> confirmed);
    std::string enqueue_publish_locked(Queued item, SequencedDone& done);
    /// Queue a publish for the writer and wake it, or answer !ok at once with the reason.
    void submit_publish(Queued item, SequencedDone done);
    void refuse_publish(SequencedDone done, std::string reason);
    /// Takes every queued read out of the queue (to answer !ok outside the lock).
    std::vector<HistoryDone> take_queued_reads_locked();
    void load_scripts(Link& link);
    /// Pipelines a batch and settles each item from its reply; returns the connection error ("" : none).
    std::string send_batch(Link& link, std::vector<Queued>& batch, std::vector<redis_bus_detail::Outcome>& outcomes);
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
    GapHandler gap_handler_;  ///< set before start(); called on the reader thread
    /// Reader thread only: the last sequence number seen from each other node (bounded: cleared
    /// past 4,096 nodes, which only forgets where they were).
    std::unordered_map<std::string, std::uint64_t> last_seq_by_node_;
    bool started_ = false;
    bool stopping_ = false;
    std::deque<Queued> queue_;                  ///< waiting for the writer
    std::map<std::uint64_t, Pending> pending_;  ///< every unanswered publish, by sequence
    std::size_t pending_bytes_ = 0;
    std::chrono::steady_clock::time_point next_sweep_{};  ///< sweep_timeouts() runs at most this often
    std::size_t queued_reads_ = 0;  ///< reads in queue_ (bounded by max_pending_publishes)
    HistoryLimits history_limits_;
    std::uint64_t next_seq_ = 1;
    std::uint64_t confirmed_seq_ = 0;  ///< writer thread: the highest own number Redis answered
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
