// The hub's message bus: how a publish reaches every node. Every state change and every
// message of both APIs travels as (topic, payload) through one Bus; each node applies what
// it hears, in the bus's order, to its own subscribers and state.
//
//   LocalBus  one process: publish() hands the message straight to the handler.
//   RedisBus  several nodes (hub/redis_bus.hpp): through a Redis stream, in one total order.
//
// Sequenced streams (below) add offsets and a bounded history per named stream, for clients
// that resume. Both buses promise: a stream's offsets reach every handler in increasing
// order, one by one, in the bus's order (a RedisBus node away for longer than the bus
// stream keeps entries misses some, as for plain publishes, and logs it; the history still
// has them); a history is always a run of consecutive offsets
// (cut from its oldest end only), so "everything after N" is either complete or visibly not
// (oldest_offset > N + 1); a lost history gets a new epoch, never reused offsets under the
// old one. LocalBus keeps histories in memory (export/import carries them across a restart);
// RedisBus keeps them in Redis (what a Redis restart or failover means: hub/redis_bus.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hub {

/// What /metrics and the log say about the bus.
struct BusStatus {
    std::string kind;              ///< "local" or "redis"
    bool connected = true;         ///< false while Redis is unreachable
    std::uint64_t reconnects = 0;  ///< successful reconnections since start
    std::uint64_t published = 0;   ///< messages this node put on the bus
    std::uint64_t received = 0;    ///< messages this node took off it (its own included)
    std::uint64_t failed = 0;      ///< publishes refused (Redis down, timeout)
    std::string last_error;        ///< empty when healthy; never contains secrets
};

// ---- sequenced streams (issue 13: resumable channels) ----
// A stream is a named history (the streams module uses one per channel). Each message
// published with publish_sequenced() gets the stream's next offset (1, 2, 3, ...) in the very
// order in which every node's handler sees it, and stays readable with read_history() while
// the history's limits keep it. `epoch` names one unbroken history: it changes whenever the
// history is lost (a hub without Redis starts afresh; Redis lost its data), so a position
// from another epoch can never be taken for one of this epoch.

/// Where a stream's history is cut (the oldest entries go first); set before the first
/// sequenced publish (the streams module sets it in its start(), after the bus started).
struct HistoryLimits {
    std::size_t max_entries = 10'000;            ///< per stream
    std::size_t max_bytes = 16u << 20;           ///< per stream, payload bytes (a larger message empties the history)
    std::chrono::milliseconds max_age{600'000};  ///< entries older than this are gone (RedisBus: by Redis' clock)
};

/// One message of a stream's history, as the handler and read_history() give it.
struct SequencedMessage {
    std::string stream;     ///< the stream's name (no NUL; at most 1024 bytes)
    std::string epoch;      ///< the history it belongs to (printable ASCII, at most 64 bytes)
    std::uint64_t offset = 0;
    std::int64_t unix_ms = 0;  ///< when the bus took it
    std::string payload;
};

/// The handler's payload for a sequenced publish is this encoding of the SequencedMessage
/// (the topic is the one given to publish_sequenced); decode_sequenced() gives it back,
/// nullopt when `bytes` is not one.
std::string encode_sequenced(const SequencedMessage& message);
std::optional<SequencedMessage> decode_sequenced(std::string_view bytes);

/// What read_history() found.
struct HistoryRead {
    bool ok = false;        ///< false: the bus could not be asked (Redis down); see error
    std::string error;
    std::string epoch;      ///< the stream's current epoch ("" when the stream has never had a message)
    std::uint64_t last_offset = 0;    ///< the stream's newest offset (0: none yet)
    std::uint64_t oldest_offset = 0;  ///< the oldest still in history (0: history empty)
    std::vector<SequencedMessage> messages;  ///< offsets after `after`, oldest first, at most max_messages
};

class Bus {
public:
    /// Called for every message on the bus, this node's own included, exactly once each, in
    /// the bus's order (which keeps each publisher's order). Runs on the bus's own thread
    /// (RedisBus) or inside publish() (LocalBus); must not block for long.
    using Handler = std::function<void(std::string_view topic, std::string_view payload)>;
    /// The outcome of one publish: ok once the message is on the bus AND this node's handler
    /// has already run for it (so a caller can answer with state that includes its own
    /// write); !ok with a short reason when it was not accepted (then no node sees it).
    /// May run on any thread, exactly once.
    using Done = std::function<void(bool ok, std::string_view error)>;

    virtual ~Bus() = default;
    /// Start delivering to `handler`. Called once, before any publish().
    virtual void start(Handler handler) = 0;
    /// Put a message on the bus. Never blocks on the network: the outcome comes to `done`.
    virtual void publish(std::string topic, std::string payload, Done done) = 0;
    /// Stop delivering; no handler runs after this returns. Pending publishes get !ok.
    virtual void stop() = 0;
    /// Called (on the bus's thread, before the message that revealed it is handed to the
    /// handler) when this node finds that messages another node published may never reach it:
    /// RedisBus, when Redis lost entries this node had not read yet. `why` says so in words.
    using GapHandler = std::function<void(std::string_view why)>;
    /// Before start(). A bus that cannot lose messages (LocalBus) never calls it.
    virtual void set_gap_handler(GapHandler /*handler*/) {}
    virtual BusStatus status() const = 0;

    // ---- sequenced streams (see above) ----
    using SequencedDone = std::function<void(bool ok, std::string_view error, const SequencedMessage& accepted)>;
    using HistoryDone = std::function<void(HistoryRead read)>;
    /// Set where histories are cut; before the first publish_sequenced() (any thread).
    virtual void set_history_limits(HistoryLimits /*limits*/) {}
    /// Append `payload` to `stream`'s history with the next offset and deliver it to every
    /// node's handler as (topic, encode_sequenced(...)), in one step: offsets of a stream
    /// reach every handler in increasing order, without gaps except where history was lost
    /// (then the epoch changes). `done` as for publish() (after this node's handler ran), with
    /// the message as accepted (epoch, offset, time; payload empty to save a copy).
    virtual void publish_sequenced(std::string /*topic*/, std::string /*stream*/, std::string /*payload*/,
                                   SequencedDone done) {
        if (done) done(false, "this bus keeps no stream history", SequencedMessage{});
    }
    /// The messages of `stream` after offset `after` that are still in history, oldest first,
    /// at most `max_messages`, with the stream's epoch and bounds. Never blocks on the
    /// network; `done` may run on any thread (at once, or on the bus's thread).
    virtual void read_history(std::string /*stream*/, std::uint64_t /*after*/, std::size_t /*max_messages*/,
                              HistoryDone done) {
        if (done) done(HistoryRead{false, "this bus keeps no stream history", {}, 0, 0, {}});
    }
    /// Zero-downtime restart without Redis: every stream's history and epoch as bytes, for
    /// import_histories() in the new process. Buses whose history lives elsewhere (Redis)
    /// return "" and ignore the import.
    virtual std::string export_histories() const { return {}; }
    virtual void import_histories(std::string_view /*state*/) {}
};

/// One process, no Redis: publish() runs the handler at once, on the caller's thread.
/// Histories live in this process's memory (hub/local_bus.cpp):
///  - one publish at a time (a mutex held while the handler runs), so the bus has one order
///    and a stream's offsets reach the handler strictly increasing; `done` runs after the
///    handler, outside the lock. The handler must not publish (it would deadlock).
///  - a stream's epoch is made (random, 16 hex digits) when its first message comes; its
///    offsets are 1, 2, 3, ... Each history is cut on every publish to the stream by all
///    three limits (entries, payload bytes: exact; age: by the wall clock) and about once a
///    second for every stream by age, always from the oldest end, so a history is a run of
///    consecutive offsets (a message larger than max_bytes is delivered, and leaves the
///    history empty). A stream whose messages all aged out keeps its epoch and offset.
///  - read_history() answers at once, on the caller's thread, and may be called from the
///    handler. It may already show a message whose handler (on another thread) is running.
///  - export_histories() / import_histories(): every stream's epoch, last offset and
///    retained messages, so that a new process goes on with the same epochs and offsets.
class LocalBus final : public Bus {
public:
    void start(Handler handler) override;
    void publish(std::string topic, std::string payload, Done done) override;
    void stop() override;
    BusStatus status() const override;

    void set_history_limits(HistoryLimits limits) override;
    void publish_sequenced(std::string topic, std::string stream, std::string payload, SequencedDone done) override;
    void read_history(std::string stream, std::uint64_t after, std::size_t max_messages, HistoryDone done) override;
    /// Versioned binary with a checksum (format in hub/local_bus.cpp).
    std::string export_histories() const override;
    /// Takes the streams of an export that this bus does not have yet (call it before the
    /// first sequenced publish); an export that is damaged or of another version is refused
    /// whole and changes nothing.
    void import_histories(std::string_view state) override;
    /// import_histories() that says why it refused: "" when the state was taken.
    std::string try_import_histories(std::string_view state);

private:
    struct Retained {
        std::uint64_t offset = 0;
        std::int64_t unix_ms = 0;
        std::string payload;
    };
    struct StreamHistory {
        std::string epoch;
        std::uint64_t last_offset = 0;
        std::deque<Retained> messages;
        std::size_t bytes = 0;  ///< payload bytes of `messages`
    };
    void cut_locked(StreamHistory& history, std::int64_t now_ms) const;
    void sweep_by_age_locked(std::int64_t now_ms);

    mutable std::mutex mutex_;  ///< the bus's order: held while the handler runs
    Handler handler_;
    BusStatus status_;

    /// Taken briefly inside mutex_ (never while the handler runs), so read_history() works
    /// from inside the handler.
    mutable std::mutex history_mutex_;
    HistoryLimits limits_;
    std::map<std::string, StreamHistory, std::less<>> streams_;
    std::int64_t last_sweep_ms_ = 0;
};

}  // namespace hub
