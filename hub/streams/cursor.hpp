// StreamCursor: one subscription's delivery order, without I/O. It merges the stream's
// history (read in pages) with the live messages the bus hands over, so that a subscriber
// gets every message after its position exactly once and in order, and it keeps the window
// of acknowledged delivery.
//
// The classic approach: the subscription is registered for live messages BEFORE its first
// history read, so nothing can fall between the two; live messages that arrive while a read
// is outstanding are buffered; history is delivered, then the buffered messages with an
// offset past the last delivered one, then it goes live. A live message with a gap (its
// offset > last + 1) sends it back to reading history from the last delivered offset. The
// buffer is bounded: past the bound its oldest entries are dropped, since history still has
// them (a later read fills the gap).
//
// With acknowledged delivery, history is pulled only as far as the window has room (a
// resuming subscriber with many unacked messages gets them as it acks); a LIVE message that
// does not fit ends the subscription (the module tells the client and closes with 1008).
// History is also sent only while the client's outbound queue has room (has_room()): a
// subscriber far behind is fed as fast as it reads, never cut as a slow subscriber.
//
// The owner feeds events (start, on_history, on_live, on_ack) under its own lock and acts on
// what the CursorOutput is told, in that order. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hub/streams/protocol.hpp"

namespace hub::streams {

/// One message ready to send: the cursor orders it, the module sends `frame` as it is.
struct StreamMessage {
    std::string epoch;
    std::uint64_t offset = 0;
    std::size_t payload_bytes = 0;  ///< counts against the ack window's bytes
    std::string frame;              ///< what goes to the client (an encoded WebSocket frame)
};
using MessagePtr = std::shared_ptr<const StreamMessage>;

/// A history read as the cursor takes it (Bus::HistoryRead with messages made ready).
struct HistoryPage {
    bool ok = false;
    std::string error;
    std::string epoch;
    std::uint64_t last_offset = 0;
    std::uint64_t oldest_offset = 0;
    std::vector<MessagePtr> messages;
};

struct CursorLimits {
    std::size_t page_messages = 500;  ///< one history read
    std::size_t max_buffered = 10'000;  ///< live messages held while catching up
    std::size_t max_buffered_bytes = 8u << 20;  ///< ... and their payload bytes
    bool ack = false;                 ///< acknowledged delivery
    std::size_t ack_window_messages = 1000;  ///< unacked messages at most
    std::size_t ack_window_bytes = 4u << 20;  ///< unacked payload bytes at most (one message may pass it alone)
};

/// Why a subscription ends by the server's decision.
enum class EndKind {
    SubscribeFailed,  ///< the first history read failed: the subscribe op gets an error
    HistoryLost,      ///< a gap can no longer be filled from history: the subscription ends
    AckWindowFull,    ///< a live message past the ack window: notice, then close with 1008
};

/// What the cursor asks its owner to do, in order.
class CursorOutput {
public:
    virtual ~CursorOutput() = default;
    /// The answer to subscribe. `recovered` only when the client gave `since`.
    virtual void subscribed(const Position& position, std::optional<bool> recovered, std::string_view reason) = 0;
    virtual void deliver(const MessagePtr& message) = 0;
    /// The epoch changed while subscribed: history was lost; delivery goes on after `position`.
    virtual void reset(const Position& position, std::string_view reason) = 0;
    /// Read history after `after`, at most `max_messages`; the answer comes to on_history().
    virtual void read_history(std::uint64_t after, std::size_t max_messages) = 0;
    /// The subscription is over: the cursor takes no more events.
    virtual void end(EndKind kind, std::string_view message) = 0;
    /// Whether the client can take more history now (its outbound queue is short enough).
    virtual bool has_room() { return true; }
    /// has_room() said no: call on_room() once it would say yes.
    virtual void wait_for_room() {}
};

class StreamCursor {
public:
    enum class Phase {
        Idle,        ///< before start()
        Starting,    ///< the first read is outstanding (position not known yet)
        CatchingUp,  ///< a history read is outstanding
        WaitingAck,  ///< history to read, but the ack window is full
        WaitingRoom,  ///< history to send, but the client's outbound queue is full
        Live,
        Ended,
    };

    StreamCursor(std::optional<Position> since, CursorLimits limits);

    void start(CursorOutput& out);
    void on_history(const HistoryPage& page, CursorOutput& out);
    void on_live(const MessagePtr& message, CursorOutput& out);
    /// A cumulative ack. Returns an error for the client (nothing changed), or "".
    std::string on_ack(std::uint64_t offset, CursorOutput& out);
    /// The client's queue has room again (after wait_for_room()).
    void on_room(CursorOutput& out);

    Phase phase() const noexcept { return phase_; }
    const std::string& epoch() const noexcept { return epoch_; }
    std::uint64_t last_delivered() const noexcept { return last_; }
    std::size_t buffered() const noexcept { return buffer_.size(); }
    std::size_t unacked() const noexcept { return unacked_.size(); }
    std::size_t unacked_bytes() const noexcept { return unacked_bytes_; }

private:
    void first_page(const HistoryPage& page, CursorOutput& out);
    void go_on_from(const Position& position, std::optional<bool> recovered, std::string_view reason, CursorOutput& out);
    bool consume(const std::vector<MessagePtr>& messages, CursorOutput& out);  // false: the window stopped it
    void catch_up(CursorOutput& out);
    void request_read(CursorOutput& out);
    void change_epoch(const std::string& epoch, std::uint64_t after, std::string_view reason, CursorOutput& out);
    void end(EndKind kind, std::string_view message, CursorOutput& out);
    bool fits_window(const StreamMessage& message) const noexcept;
    std::size_t window_room() const noexcept;
    void deliver(const MessagePtr& message, CursorOutput& out);
    void pop_buffer() noexcept;

    std::optional<Position> since_;
    CursorLimits limits_;
    Phase phase_ = Phase::Idle;
    std::string epoch_;
    std::uint64_t last_ = 0;    // the last offset delivered (or the starting position)
    std::uint64_t target_ = 0;  // the stream's newest offset as the last read saw it
    bool window_blocked_ = false;  // a history message did not fit the ack window
    bool room_blocked_ = false;    // the client's queue had no room for history
    std::deque<MessagePtr> buffer_;  // live messages while not Live, in bus order
    // Without `since`: the first live message seen before the first read answered. The
    // subscription starts before it, so that whatever was published after the subscription
    // was registered reaches it, however late the read answers.
    std::optional<Position> first_live_;
    std::size_t buffer_bytes_ = 0;   // their payload bytes
    struct Unacked {
        std::uint64_t offset;
        std::size_t bytes;
    };
    std::deque<Unacked> unacked_;
    std::size_t unacked_bytes_ = 0;
};

}  // namespace hub::streams
