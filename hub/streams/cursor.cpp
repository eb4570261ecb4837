#include "hub/streams/cursor.hpp"

#include <algorithm>

namespace hub::streams {

namespace {

std::string quoted_epoch(std::string_view epoch) { return epoch.empty() ? std::string("none") : "\"" + std::string(epoch) + "\""; }

std::string epoch_changed(std::string_view was, std::string_view now) {
    return "epoch changed (was " + quoted_epoch(was) + ", now " + quoted_epoch(now) + "): history was lost";
}

std::string not_in_history(std::uint64_t after, std::uint64_t oldest) {
    return "offset " + std::to_string(after) + " is no longer in history (" +
           (oldest == 0 ? std::string("history is empty") : "oldest kept is " + std::to_string(oldest)) + ")";
}

}  // namespace

StreamCursor::StreamCursor(std::optional<Position> since, CursorLimits limits) : since_(std::move(since)), limits_(limits) {
    limits_.page_messages = std::max<std::size_t>(limits_.page_messages, 1);
    limits_.max_buffered = std::max<std::size_t>(limits_.max_buffered, 1);
    limits_.ack_window_messages = std::max<std::size_t>(limits_.ack_window_messages, 1);
}

void StreamCursor::start(CursorOutput& out) {
    if (phase_ != Phase::Idle) return;
    phase_ = Phase::Starting;
    // Without `since` only the position is wanted (no message).
    if (since_) out.read_history(since_->offset, window_room());
    else out.read_history(0, 0);
}

void StreamCursor::on_history(const HistoryPage& page, CursorOutput& out) {
    if (phase_ != Phase::Starting && phase_ != Phase::CatchingUp) return;
    // A read answered after the cursor stopped for room cannot come (one read at a time).
    if (!page.ok) {
        end(phase_ == Phase::Starting ? EndKind::SubscribeFailed : EndKind::HistoryLost, "history unavailable: " + page.error, out);
        return;
    }
    if (phase_ == Phase::Starting) {
        first_page(page, out);
        return;
    }
    if (page.epoch != epoch_) {
        if (epoch_.empty() && last_ == 0) {
            epoch_ = page.epoch;  // the stream had no history when we subscribed: this is its first
        } else {
            change_epoch(page.epoch, 0, epoch_changed(epoch_, page.epoch), out);
            target_ = page.last_offset;
            catch_up(out);  // reads the new epoch's history from its start
            return;
        }
    }
    target_ = std::max(target_, page.last_offset);
    const std::uint64_t before = last_;
    consume(page.messages, out);
    if (!window_blocked_ && !room_blocked_ && last_ < target_ && last_ == before) {
        // The next message we need was not in the page: history no longer has it.
        end(EndKind::HistoryLost,
            "messages after offset " + std::to_string(last_) + " are no longer in history (" +
                (page.oldest_offset == 0 ? std::string("history is empty") : "oldest kept is " + std::to_string(page.oldest_offset)) + ")",
            out);
        return;
    }
    catch_up(out);
}

void StreamCursor::first_page(const HistoryPage& page, CursorOutput& out) {
    target_ = page.last_offset;
    const Position now{page.epoch, page.last_offset};
    if (!since_) {
        // The position when the subscription was registered: before the first message it saw
        // live, if the read answered after that one was published (the read may be served
        // late, e.g. by Redis); what lies between comes from the buffer or from history.
        Position start = now;
        if (first_live_ && first_live_->epoch == page.epoch && first_live_->offset > 0 && first_live_->offset - 1 < start.offset)
            start.offset = first_live_->offset - 1;
        out.subscribed(start, std::nullopt, {});
        epoch_ = start.epoch;
        last_ = start.offset;
        phase_ = Phase::CatchingUp;
        catch_up(out);  // target_ is the read's newest offset: history fills what the buffer lacks
        return;
    }
    const Position& since = *since_;
    // {"", 0} means "I have seen nothing of this stream": whatever history it has now counts.
    const bool from_the_start = since.epoch.empty() && since.offset == 0;
    if (since.epoch != page.epoch && !from_the_start) {
        go_on_from(now, false, epoch_changed(since.epoch, page.epoch), out);
        return;
    }
    if (since.offset > page.last_offset) {
        go_on_from(now, false,
                   "offset " + std::to_string(since.offset) + " is ahead of the stream (newest is " +
                       std::to_string(page.last_offset) + ")",
                   out);
        return;
    }
    if (since.offset < page.last_offset && (page.oldest_offset == 0 || page.oldest_offset > since.offset + 1)) {
        go_on_from(now, false, not_in_history(since.offset, page.oldest_offset), out);
        return;
    }
    out.subscribed(now, true, {});
    epoch_ = page.epoch;
    last_ = since.offset;
    phase_ = Phase::CatchingUp;
    consume(page.messages, out);
    catch_up(out);
}

void StreamCursor::go_on_from(const Position& position, std::optional<bool> recovered, std::string_view reason,
                              CursorOutput& out) {
    out.subscribed(position, recovered, reason);
    epoch_ = position.epoch;
    last_ = position.offset;
    target_ = position.offset;
    phase_ = Phase::CatchingUp;
    catch_up(out);  // what arrived live meanwhile
}

bool StreamCursor::consume(const std::vector<MessagePtr>& messages, CursorOutput& out) {
    for (const auto& message : messages) {
        if (message->offset <= last_) continue;
        if (message->offset != last_ + 1) break;  // not consecutive: the caller reads again or gives up
        if (!fits_window(*message)) {
            window_blocked_ = true;
            return false;
        }
        if (!out.has_room()) {
            room_blocked_ = true;
            return false;
        }
        deliver(message, out);
    }
    return true;
}

void StreamCursor::catch_up(CursorOutput& out) {
    for (;;) {
        if (phase_ == Phase::Ended) return;
        if (window_blocked_) {
            phase_ = Phase::WaitingAck;
            return;
        }
        if (room_blocked_) {
            phase_ = Phase::WaitingRoom;
            out.wait_for_room();
            return;
        }
        if (!buffer_.empty()) {
            const MessagePtr message = buffer_.front();
            if (message->epoch != epoch_) {
                if (epoch_.empty() && last_ == 0) epoch_ = message->epoch;
                else change_epoch(message->epoch, 0, epoch_changed(epoch_, message->epoch), out);
                continue;
            }
            if (message->offset <= last_) {  // history gave it already
                pop_buffer();
                continue;
            }
            if (message->offset == last_ + 1) {
                if (!fits_window(*message)) {
                    window_blocked_ = true;
                    continue;
                }
                if (!out.has_room()) {
                    room_blocked_ = true;
                    continue;
                }
                deliver(message, out);
                pop_buffer();
                continue;
            }
            // Dropped from a full buffer, or a gap on the bus: history has what is missing.
            target_ = std::max(target_, message->offset - 1);
        }
        if (last_ < target_) {
            request_read(out);
            return;
        }
        phase_ = Phase::Live;
        return;
    }
}

void StreamCursor::request_read(CursorOutput& out) {
    const std::size_t room = window_room();
    if (room == 0) {
        phase_ = Phase::WaitingAck;
        return;
    }
    phase_ = Phase::CatchingUp;
    out.read_history(last_, room);
}

void StreamCursor::on_live(const MessagePtr& message, CursorOutput& out) {
    switch (phase_) {
        case Phase::Idle:
        case Phase::Ended:
            return;
        case Phase::Starting:
        case Phase::CatchingUp:
        case Phase::WaitingAck:
        case Phase::WaitingRoom:
            if (phase_ == Phase::Starting && !first_live_) first_live_ = Position{message->epoch, message->offset};
            buffer_.push_back(message);
            buffer_bytes_ += message->payload_bytes;
            // History still has the oldest ones: a later read fills the gap they leave.
            while (buffer_.size() > 1 && (buffer_.size() > limits_.max_buffered || buffer_bytes_ > limits_.max_buffered_bytes))
                pop_buffer();
            return;
        case Phase::Live:
            break;
    }
    if (message->epoch != epoch_) {
        if (epoch_.empty() && last_ == 0) epoch_ = message->epoch;
        else change_epoch(message->epoch, 0, epoch_changed(epoch_, message->epoch), out);
    }
    if (message->offset <= last_) return;  // had it already (from history)
    if (message->offset > last_ + 1) {
        buffer_.push_back(message);
        buffer_bytes_ += message->payload_bytes;
        target_ = message->offset - 1;
        request_read(out);
        return;
    }
    if (!fits_window(*message)) {
        end(EndKind::AckWindowFull,
            std::to_string(unacked_.size()) + " messages (" + std::to_string(unacked_bytes_) +
                " bytes) are not acknowledged; the window is " + std::to_string(limits_.ack_window_messages) +
                " messages or " + std::to_string(limits_.ack_window_bytes) + " bytes",
            out);
        return;
    }
    deliver(message, out);
}

std::string StreamCursor::on_ack(std::uint64_t offset, CursorOutput& out) {
    if (!limits_.ack) return "this subscription takes no acks (subscribe with \"ack\": true)";
    if (phase_ == Phase::Ended) return "the subscription has ended";
    if (offset > last_ || phase_ == Phase::Starting)
        return "offset " + std::to_string(offset) + " was not delivered yet (last delivered is " + std::to_string(last_) + ")";
    while (!unacked_.empty() && unacked_.front().offset <= offset) {
        unacked_bytes_ -= unacked_.front().bytes;
        unacked_.pop_front();
    }
    if (phase_ == Phase::WaitingAck && window_room() > 0) {
        window_blocked_ = false;
        catch_up(out);
    }
    return {};
}

void StreamCursor::on_room(CursorOutput& out) {
    if (phase_ != Phase::WaitingRoom) return;
    room_blocked_ = false;
    catch_up(out);
}

void StreamCursor::change_epoch(const std::string& epoch, std::uint64_t after, std::string_view reason, CursorOutput& out) {
    out.reset(Position{epoch, after}, reason);
    epoch_ = epoch;
    last_ = after;
    target_ = after;
    unacked_.clear();  // those messages are gone with their history: nothing to redeliver
    unacked_bytes_ = 0;
    window_blocked_ = false;
}

void StreamCursor::end(EndKind kind, std::string_view message, CursorOutput& out) {
    phase_ = Phase::Ended;
    buffer_.clear();
    buffer_bytes_ = 0;
    out.end(kind, message);
}

bool StreamCursor::fits_window(const StreamMessage& message) const noexcept {
    if (!limits_.ack) return true;
    if (unacked_.size() >= limits_.ack_window_messages) return false;
    return unacked_.empty() || unacked_bytes_ + message.payload_bytes <= limits_.ack_window_bytes;
}

std::size_t StreamCursor::window_room() const noexcept {
    if (!limits_.ack) return limits_.page_messages;
    if (unacked_.size() >= limits_.ack_window_messages) return 0;
    if (!unacked_.empty() && unacked_bytes_ >= limits_.ack_window_bytes) return 0;
    return std::min(limits_.page_messages, limits_.ack_window_messages - unacked_.size());
}

void StreamCursor::pop_buffer() noexcept {
    buffer_bytes_ -= buffer_.front()->payload_bytes;
    buffer_.pop_front();
}

void StreamCursor::deliver(const MessagePtr& message, CursorOutput& out) {
    out.deliver(message);
    last_ = message->offset;
    if (limits_.ack) {
        unacked_.push_back(Unacked{message->offset, message->payload_bytes});
        unacked_bytes_ += message->payload_bytes;
    }
}

}  // namespace hub::streams
