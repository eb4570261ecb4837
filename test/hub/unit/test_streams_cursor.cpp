// StreamCursor, sans I/O: the answers to subscribe (recovered or why not), the merge of
// history pages and live messages in every order (hand-written cases, then thousands of
// random schedules against a simulated stream), gaps, epochs, and the ack window.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "hub/streams/cursor.hpp"

using namespace hub::streams;

namespace {

MessagePtr msg(std::string epoch, std::uint64_t offset, std::size_t bytes = 1) {
    auto m = std::make_shared<StreamMessage>();
    m->epoch = std::move(epoch);
    m->offset = offset;
    m->payload_bytes = bytes;
    m->frame = "frame" + std::to_string(offset);
    return m;
}

HistoryPage page(std::string epoch, std::uint64_t last, std::uint64_t oldest, std::uint64_t from = 0, std::uint64_t to = 0,
                 std::size_t bytes = 1) {
    HistoryPage p;
    p.ok = true;
    p.epoch = epoch;
    p.last_offset = last;
    p.oldest_offset = oldest;
    for (std::uint64_t o = from; from != 0 && o <= to; ++o) p.messages.push_back(msg(epoch, o, bytes));
    return p;
}

struct Recorder final : CursorOutput {
    struct Subscribed {
        Position position;
        std::optional<bool> recovered;
        std::string reason;
    };
    std::optional<Subscribed> answer;
    std::vector<std::uint64_t> delivered;
    std::vector<Position> resets;
    std::optional<std::pair<std::uint64_t, std::size_t>> read;  // the outstanding request
    std::size_t reads = 0;
    std::optional<EndKind> ended;
    std::string end_message;
    bool room = true;  // what has_room() answers
    bool waiting_room = false;

    void subscribed(const Position& position, std::optional<bool> recovered, std::string_view reason) override {
        CHECK_FALSE(answer);  // exactly once
        CHECK(delivered.empty());  // before any message
        answer = Subscribed{position, recovered, std::string(reason)};
    }
    void deliver(const MessagePtr& message) override {
        REQUIRE(answer);
        delivered.push_back(message->offset);
    }
    void reset(const Position& position, std::string_view) override { resets.push_back(position); }
    void read_history(std::uint64_t after, std::size_t max_messages) override {
        CHECK_FALSE(read);  // one read at a time
        read = {after, max_messages};
        ++reads;
    }
    void end(EndKind kind, std::string_view message) override {
        CHECK_FALSE(ended);
        ended = kind;
        end_message = std::string(message);
    }
    bool has_room() override { return room; }
    void wait_for_room() override {
        CHECK_FALSE(room);
        waiting_room = true;
    }
    void give_room(StreamCursor& cursor) {
        room = true;
        if (std::exchange(waiting_room, false)) cursor.on_room(*this);
    }
    std::pair<std::uint64_t, std::size_t> take_read() {
        REQUIRE(read);
        const auto r = *read;
        read.reset();
        return r;
    }
};

std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
    std::vector<std::uint64_t> out;
    for (std::uint64_t o = from; o <= to; ++o) out.push_back(o);
    return out;
}

CursorLimits limits(std::size_t page_messages = 100, std::size_t max_buffered = 100) {
    CursorLimits l;
    l.page_messages = page_messages;
    l.max_buffered = max_buffered;
    return l;
}

CursorLimits acked(std::size_t window, std::size_t window_bytes = 1u << 20, std::size_t page_messages = 100) {
    CursorLimits l = limits(page_messages);
    l.ack = true;
    l.ack_window_messages = window;
    l.ack_window_bytes = window_bytes;
    return l;
}

}  // namespace

TEST_CASE("cursor: without since, the position first, then live messages only") {
    Recorder out;
    StreamCursor cursor(std::nullopt, limits());
    cursor.start(out);
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{0, 0});  // only the position
    cursor.on_live(msg("E", 11), out);  // before the answer: held
    cursor.on_history(page("E", 10, 1), out);
    REQUIRE(out.answer);
    CHECK(out.answer->position == Position{"E", 10});
    CHECK_FALSE(out.answer->recovered);
    CHECK(out.delivered == range(11, 11));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
    cursor.on_live(msg("E", 11), out);  // again: a duplicate
    cursor.on_live(msg("E", 12), out);
    CHECK(out.delivered == range(11, 12));
}

TEST_CASE("cursor: without since, a message published after the subscription began is delivered, however late the read") {
    Recorder out;
    StreamCursor cursor(std::nullopt, limits());
    cursor.start(out);
    out.take_read();
    cursor.on_live(msg("E", 10), out);  // published after registration, before the read answered
    cursor.on_live(msg("E", 11), out);
    cursor.on_history(page("E", 10, 1), out);  // the read saw 10 already
    REQUIRE(out.answer);
    CHECK(out.answer->position == Position{"E", 9});  // where the subscription began
    CHECK(out.delivered == range(10, 11));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
}

TEST_CASE("cursor: without since, live messages dropped from a full buffer before the read answered come from history") {
    Recorder out;
    StreamCursor cursor(std::nullopt, limits(100, 2));  // holds at most two live messages
    cursor.start(out);
    out.take_read();
    for (std::uint64_t offset = 21; offset <= 25; ++offset) cursor.on_live(msg("E", offset), out);  // 21..23 dropped
    cursor.on_history(page("E", 25, 1), out);
    REQUIRE(out.answer);
    CHECK(out.answer->position == Position{"E", 20});
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{20, 100});  // 21..23 from history
    cursor.on_history(page("E", 25, 1, 21, 23), out);
    CHECK(out.delivered == range(21, 25));
}

TEST_CASE("cursor: an empty stream takes the epoch of its first message") {
    Recorder out;
    StreamCursor cursor(std::nullopt, limits());
    cursor.start(out);
    out.take_read();
    cursor.on_history(page("", 0, 0), out);
    CHECK(out.answer->position == Position{"", 0});
    cursor.on_live(msg("E", 1), out);
    cursor.on_live(msg("E", 2), out);
    CHECK(out.delivered == range(1, 2));
    CHECK(out.resets.empty());
    CHECK(cursor.epoch() == "E");
}

TEST_CASE("cursor: since in history: recovered, the missed messages, then the held live ones, no duplicate") {
    for (const std::uint64_t read_saw : {8u, 9u, 10u}) {  // the read may see some of the live ones too
        CAPTURE(read_saw);
        Recorder out;
        StreamCursor cursor(Position{"E", 5}, limits());
        cursor.start(out);
        CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{5, 100});
        cursor.on_live(msg("E", 9), out);
        cursor.on_live(msg("E", 10), out);
        cursor.on_history(page("E", read_saw, 1, 6, read_saw), out);
        REQUIRE(out.answer);
        CHECK(out.answer->recovered == true);
        CHECK(out.answer->position == Position{"E", read_saw});
        CHECK(out.delivered == range(6, 10));
        CHECK(cursor.phase() == StreamCursor::Phase::Live);
        CHECK(out.reads == 1);
    }
}

TEST_CASE("cursor: since at the head recovers with nothing to send") {
    Recorder out;
    StreamCursor cursor(Position{"E", 9}, limits());
    cursor.start(out);
    out.take_read();
    cursor.on_history(page("E", 9, 1), out);
    CHECK(out.answer->recovered == true);
    CHECK(out.delivered.empty());
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
}

TEST_CASE("cursor: history comes in pages while live messages arrive") {
    Recorder out;
    StreamCursor cursor(Position{"E", 0}, limits(/*page*/ 2));
    cursor.start(out);
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{0, 2});
    cursor.on_history(page("E", 5, 1, 1, 2), out);
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{2, 2});
    cursor.on_live(msg("E", 6), out);
    cursor.on_history(page("E", 6, 1, 3, 4), out);
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{4, 2});
    cursor.on_live(msg("E", 7), out);
    cursor.on_history(page("E", 7, 1, 5, 6), out);  // 6 came in the page and was held: sent once
    CHECK_FALSE(out.read);
    CHECK(out.delivered == range(1, 7));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
}

TEST_CASE("cursor: a full catch-up buffer drops its oldest; history fills the gap") {
    Recorder out;
    StreamCursor cursor(Position{"E", 0}, limits(100, /*max_buffered*/ 2));
    cursor.start(out);
    out.take_read();
    for (std::uint64_t o = 6; o <= 9; ++o) cursor.on_live(msg("E", o), out);  // keeps 8 and 9
    CHECK(cursor.buffered() == 2);
    cursor.on_history(page("E", 5, 1, 1, 5), out);
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{5, 100});
    cursor.on_history(page("E", 9, 1, 6, 9), out);
    CHECK(out.delivered == range(1, 9));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
}

TEST_CASE("cursor: a gap while live is read from history") {
    Recorder out;
    StreamCursor cursor(std::nullopt, limits());
    cursor.start(out);
    out.take_read();
    cursor.on_history(page("E", 10, 1), out);
    cursor.on_live(msg("E", 13), out);
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{10, 100});
    cursor.on_live(msg("E", 14), out);
    cursor.on_history(page("E", 13, 1, 11, 13), out);
    CHECK(out.delivered == range(11, 14));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
}

TEST_CASE("cursor: a gap that history no longer holds ends the subscription, never skips") {
    Recorder out;
    StreamCursor cursor(std::nullopt, limits());
    cursor.start(out);
    out.take_read();
    cursor.on_history(page("E", 10, 1), out);
    cursor.on_live(msg("E", 15), out);
    out.take_read();
    cursor.on_history(page("E", 15, 13, 13, 15), out);
    REQUIRE(out.ended);
    CHECK(*out.ended == EndKind::HistoryLost);
    CHECK(out.end_message == "messages after offset 10 are no longer in history (oldest kept is 13)");
    CHECK(out.delivered.empty());
    cursor.on_live(msg("E", 16), out);
    CHECK(out.delivered.empty());
    CHECK(cursor.phase() == StreamCursor::Phase::Ended);
}

TEST_CASE("cursor: the reasons a resume is not recovered") {
    struct Case {
        Position since;
        HistoryPage read;
        std::string reason;
    };
    const Case cases[] = {
        {{"OLD", 5}, page("NEW", 9, 1, 6, 9), R"(epoch changed (was "OLD", now "NEW"): history was lost)"},
        {{"OLD", 5}, page("", 0, 0), R"(epoch changed (was "OLD", now none): history was lost)"},
        {{"E", 2}, page("E", 9, 5, 5, 9), "offset 2 is no longer in history (oldest kept is 5)"},
        {{"E", 2}, page("E", 9, 0), "offset 2 is no longer in history (history is empty)"},
        {{"E", 20}, page("E", 9, 1), "offset 20 is ahead of the stream (newest is 9)"},
        {{"", 0}, page("E", 9, 3, 3, 9), "offset 0 is no longer in history (oldest kept is 3)"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.reason);
        Recorder out;
        StreamCursor cursor(c.since, limits());
        cursor.start(out);
        out.take_read();
        cursor.on_live(msg(c.read.epoch.empty() ? "NEW" : c.read.epoch, c.read.last_offset + 1), out);
        cursor.on_history(c.read, out);
        REQUIRE(out.answer);
        CHECK(out.answer->recovered == false);
        CHECK(out.answer->reason == c.reason);
        CHECK(out.answer->position.offset == c.read.last_offset);
        // Live from the current position: only what came after it.
        CHECK(out.delivered == range(c.read.last_offset + 1, c.read.last_offset + 1));
    }
}

TEST_CASE("cursor: since {\"\", 0} means everything history holds") {
    Recorder out;
    StreamCursor cursor(Position{"", 0}, limits());
    cursor.start(out);
    out.take_read();
    cursor.on_history(page("E", 3, 1, 1, 3), out);
    CHECK(out.answer->recovered == true);
    CHECK(out.delivered == range(1, 3));
}

TEST_CASE("cursor: a failed read: an error for subscribe, the end of the subscription later") {
    Recorder out;
    StreamCursor cursor(Position{"E", 1}, limits());
    cursor.start(out);
    out.take_read();
    HistoryPage failed;
    failed.error = "redis down";
    cursor.on_history(failed, out);
    CHECK(out.ended == EndKind::SubscribeFailed);
    CHECK(out.end_message == "history unavailable: redis down");
    CHECK_FALSE(out.answer);

    Recorder later;
    StreamCursor live(std::nullopt, limits());
    live.start(later);
    later.take_read();
    live.on_history(page("E", 1, 1), later);
    live.on_live(msg("E", 3), later);
    later.take_read();
    live.on_history(failed, later);
    CHECK(later.ended == EndKind::HistoryLost);
}

TEST_CASE("cursor: an epoch change while live is a reset, then the new history from its start") {
    Recorder out;
    StreamCursor cursor(std::nullopt, limits());
    cursor.start(out);
    out.take_read();
    cursor.on_history(page("E", 10, 1), out);
    cursor.on_live(msg("F", 1), out);
    REQUIRE(out.resets.size() == 1);
    CHECK(out.resets[0] == Position{"F", 0});
    CHECK(out.delivered == range(1, 1));
    cursor.on_live(msg("F", 4), out);  // a gap in the new epoch: read
    out.take_read();
    cursor.on_history(page("F", 4, 1, 2, 4), out);
    CHECK(out.delivered == range(1, 4));
    CHECK(cursor.epoch() == "F");
}

TEST_CASE("cursor: acks: errors, and a live message past the window ends with AckWindowFull") {
    Recorder out;
    StreamCursor plain(std::nullopt, limits());
    plain.start(out);
    out.take_read();
    plain.on_history(page("E", 0, 0), out);
    CHECK(plain.on_ack(0, out).find("takes no acks") != std::string::npos);

    Recorder rec;
    StreamCursor cursor(std::nullopt, acked(/*window*/ 3));
    cursor.start(rec);
    rec.take_read();
    cursor.on_history(page("E", 0, 0), rec);
    for (std::uint64_t o = 1; o <= 3; ++o) cursor.on_live(msg("E", o), rec);
    CHECK(cursor.unacked() == 3);
    CHECK(cursor.on_ack(4, rec) == "offset 4 was not delivered yet (last delivered is 3)");
    CHECK(cursor.on_ack(2, rec).empty());
    CHECK(cursor.unacked() == 1);
    CHECK(cursor.on_ack(1, rec).empty());  // an old ack changes nothing
    cursor.on_live(msg("E", 4), rec);
    cursor.on_live(msg("E", 5), rec);
    CHECK(rec.delivered == range(1, 5));
    CHECK_FALSE(rec.ended);
    cursor.on_live(msg("E", 6), rec);
    CHECK(rec.ended == EndKind::AckWindowFull);
    CHECK(rec.end_message == "3 messages (3 bytes) are not acknowledged; the window is 3 messages or 1048576 bytes");
    CHECK(rec.delivered == range(1, 5));
}

TEST_CASE("cursor: the ack window in bytes; one big message alone always fits") {
    Recorder rec;
    StreamCursor cursor(std::nullopt, acked(100, /*bytes*/ 10));
    cursor.start(rec);
    rec.take_read();
    cursor.on_history(page("E", 0, 0), rec);
    cursor.on_live(msg("E", 1, 50), rec);  // alone: delivered
    CHECK(cursor.on_ack(1, rec).empty());
    cursor.on_live(msg("E", 2, 6), rec);
    cursor.on_live(msg("E", 3, 4), rec);  // 10: still fits
    CHECK(cursor.unacked_bytes() == 10);
    cursor.on_live(msg("E", 4, 1), rec);
    CHECK(rec.ended == EndKind::AckWindowFull);
    CHECK(rec.delivered == range(1, 3));
}

TEST_CASE("cursor: a resume with acks pulls history only as fast as the window opens") {
    Recorder rec;
    StreamCursor cursor(Position{"E", 0}, acked(/*window*/ 2));
    cursor.start(rec);
    CHECK(rec.take_read() == std::pair<std::uint64_t, std::size_t>{0, 2});
    cursor.on_live(msg("E", 6), rec);
    cursor.on_history(page("E", 5, 1, 1, 2), rec);
    CHECK(rec.delivered == range(1, 2));
    CHECK_FALSE(rec.read);  // window full: no read
    CHECK(cursor.phase() == StreamCursor::Phase::WaitingAck);
    CHECK(cursor.on_ack(1, rec).empty());
    CHECK(rec.take_read() == std::pair<std::uint64_t, std::size_t>{2, 1});
    cursor.on_history(page("E", 6, 1, 3, 3), rec);
    CHECK_FALSE(rec.read);
    CHECK(cursor.on_ack(3, rec).empty());
    CHECK(rec.take_read() == std::pair<std::uint64_t, std::size_t>{3, 2});
    cursor.on_history(page("E", 6, 1, 4, 5), rec);
    CHECK(cursor.phase() == StreamCursor::Phase::WaitingAck);  // 6 is held until there is room
    CHECK(cursor.on_ack(5, rec).empty());
    CHECK(rec.delivered == range(1, 6));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
    CHECK_FALSE(rec.ended);
}

TEST_CASE("cursor: a resume with acks and a byte window waits instead of looping") {
    Recorder rec;
    StreamCursor cursor(Position{"E", 0}, acked(100, /*bytes*/ 10));
    cursor.start(rec);
    rec.take_read();
    cursor.on_history(page("E", 3, 1, 1, 3, /*bytes*/ 6), rec);  // 1 fits, 2 does not
    CHECK(rec.delivered == range(1, 1));
    CHECK_FALSE(rec.read);
    CHECK(cursor.on_ack(1, rec).empty());
    CHECK(rec.take_read() == std::pair<std::uint64_t, std::size_t>{1, 100});
    cursor.on_history(page("E", 3, 1, 2, 3, 6), rec);
    CHECK(rec.delivered == range(1, 2));
    CHECK(cursor.on_ack(2, rec).empty());
    rec.take_read();
    cursor.on_history(page("E", 3, 1, 3, 3, 6), rec);
    CHECK(rec.delivered == range(1, 3));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
}

// ---- random schedules against a simulated stream ----

namespace {

struct SimStream {
    std::string epoch = "E";
    std::uint64_t last = 0;
    std::uint64_t keep = std::numeric_limits<std::uint64_t>::max();  // history keeps the newest `keep`
    std::uint64_t oldest() const { return last == 0 ? 0 : (last > keep ? last - keep + 1 : 1); }
    HistoryPage read(std::uint64_t after, std::size_t max) const {
        HistoryPage p = page(epoch, last, oldest());
        for (std::uint64_t o = std::max(after + 1, oldest()); o <= last && p.messages.size() < max; ++o)
            p.messages.push_back(msg(epoch, o));
        return p;
    }
};

void check_consecutive(const std::vector<std::uint64_t>& delivered, std::uint64_t after) {
    for (std::size_t i = 0; i < delivered.size(); ++i) REQUIRE(delivered[i] == after + 1 + i);
}

}  // namespace

TEST_CASE("cursor: random schedules of publishes, read snapshots and answers: every message once, in order") {
    int not_recovered = 0;
    int lost = 0;
    int window_cuts = 0;
    for (unsigned seed = 0; seed < 3000; ++seed) {
        CAPTURE(seed);
        std::mt19937 rng(seed);
        const auto roll = [&](unsigned n) { return static_cast<unsigned>(rng() % n); };
        const bool trimming = seed % 3 == 2;  // a third of the runs lose old history
        const bool with_acks = seed % 4 == 1;
        SimStream stream;
        if (trimming) stream.keep = 1 + roll(8);
        stream.last = roll(20);  // published before the subscription
        std::optional<Position> since;
        if (roll(4) != 0) since = Position{"E", roll(static_cast<unsigned>(stream.last) + 1)};
        CursorLimits l = limits(1 + roll(4), 1 + roll(5));
        if (with_acks) {
            l.ack = true;
            l.ack_window_messages = 2 + roll(6);
        }
        const std::uint64_t total = stream.last + roll(30);
        Recorder out;
        StreamCursor cursor(since, l);
        cursor.start(out);
        std::optional<HistoryPage> snapshot;  // taken, not yet answered
        for (int step = 0; step < 2000 && !out.ended; ++step) {
            const bool can_publish = stream.last < total;
            const unsigned action = roll(6);
            if (action == 0 && can_publish) {
                ++stream.last;
                cursor.on_live(msg("E", stream.last), out);
            } else if (action == 1 && out.read && !snapshot) {
                const auto [after, max] = out.take_read();
                snapshot = stream.read(after, max);
            } else if (action == 2 && snapshot) {
                const HistoryPage answer = std::move(*snapshot);
                snapshot.reset();
                cursor.on_history(answer, out);
            } else if (action == 3 && with_acks && !out.delivered.empty()) {
                CHECK(cursor.on_ack(out.delivered.back(), out).empty());
            } else if (action == 4 && seed % 2 == 0) {
                out.room = false;  // the client's queue fills up
            } else if (action == 5 || (!can_publish && !out.room)) {
                out.give_room(cursor);
            } else if (!can_publish && !out.read && !snapshot && (!with_acks || cursor.unacked() == 0) &&
                       cursor.phase() == StreamCursor::Phase::Live) {
                break;  // everything published and delivered
            } else if (!can_publish && with_acks && cursor.phase() == StreamCursor::Phase::WaitingAck && !out.delivered.empty()) {
                CHECK(cursor.on_ack(out.delivered.back(), out).empty());
            }
        }
        if (out.ended) {
            if (*out.ended == EndKind::AckWindowFull) {
                ++window_cuts;
                CHECK(with_acks);
                CHECK(cursor.unacked() == l.ack_window_messages);
            } else {
                ++lost;
                CHECK(*out.ended == EndKind::HistoryLost);
                CHECK(trimming);
            }
        } else {
            REQUIRE(out.answer);
            CHECK(cursor.phase() == StreamCursor::Phase::Live);
            // Everything after the starting point arrived.
            CHECK(cursor.last_delivered() == total);
        }
        if (!out.answer) continue;
        if (since && out.answer->recovered == true) {
            check_consecutive(out.delivered, since->offset);
        } else {
            if (since) {
                ++not_recovered;
                CHECK(trimming);  // without lost history a resume always recovers
            }
            check_consecutive(out.delivered, out.answer->position.offset);
        }
    }
    // The schedules did reach the interesting endings.
    CHECK(not_recovered > 10);
    CHECK(lost > 10);
    CHECK(window_cuts > 10);
}

TEST_CASE("cursor: history waits while the client's queue is full; live messages are held meanwhile") {
    Recorder out;
    StreamCursor cursor(Position{"E", 0}, limits());
    cursor.start(out);
    out.take_read();
    out.room = false;
    cursor.on_history(page("E", 4, 1, 1, 4), out);
    CHECK(out.delivered.empty());
    CHECK(cursor.phase() == StreamCursor::Phase::WaitingRoom);
    CHECK(out.waiting_room);
    CHECK_FALSE(out.read);
    cursor.on_live(msg("E", 5), out);
    CHECK(out.delivered.empty());
    out.give_room(cursor);
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{0, 100});
    cursor.on_history(page("E", 5, 1, 1, 5), out);
    CHECK(out.delivered == range(1, 5));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
    out.room = false;
    cursor.on_live(msg("E", 6), out);  // live messages go out whatever the queue
    CHECK(out.delivered == range(1, 6));
}

TEST_CASE("cursor: the catch-up buffer is bounded in bytes too") {
    Recorder out;
    CursorLimits l = limits();
    l.max_buffered_bytes = 10;
    StreamCursor cursor(Position{"E", 0}, l);
    cursor.start(out);
    out.take_read();
    for (std::uint64_t o = 3; o <= 5; ++o) cursor.on_live(msg("E", o, 6), out);
    CHECK(cursor.buffered() == 1);  // 12 bytes for two would pass 10: only 5 is kept
    cursor.on_history(page("E", 2, 1, 1, 2), out);
    CHECK(out.take_read() == std::pair<std::uint64_t, std::size_t>{2, 100});
    cursor.on_history(page("E", 5, 1, 3, 5), out);
    CHECK(out.delivered == range(1, 5));
    CHECK(cursor.phase() == StreamCursor::Phase::Live);
}
