// RedisBus's sequenced streams against a real redis-server of its own: two nodes publishing
// to one stream at once, offsets without gaps in one order on both, history read from the
// node that did not publish, Redis restarted empty (a new epoch from 1), the history limits,
// a flushed script cache, and the refusals that must come at once. Every wait has a deadline.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hub/redis_bus.hpp"
#include "test/hub/unit/redis_server.hpp"

using namespace std::chrono_literals;

namespace {

using test::eventually;

/// What a node's handler saw: sequenced messages decoded, plain ones as they came.
class Seen {
public:
    hub::Bus::Handler handler() {
        return [this](std::string_view topic, std::string_view payload) {
            std::lock_guard lock(mutex_);
            if (auto message = hub::decode_sequenced(payload)) {
                sequenced_.push_back(std::move(*message));
                order_.push_back("seq:" + sequenced_.back().payload);
            } else {
                order_.push_back("plain:" + std::string(payload));
            }
            (void)topic;
        };
    }
    std::vector<hub::SequencedMessage> sequenced() const {
        std::lock_guard lock(mutex_);
        return sequenced_;
    }
    std::size_t sequenced_count() const {
        std::lock_guard lock(mutex_);
        return sequenced_.size();
    }
    bool has_payload(std::string_view payload) const {
        std::lock_guard lock(mutex_);
        return std::any_of(sequenced_.begin(), sequenced_.end(), [&](const auto& m) { return m.payload == payload; });
    }
    std::vector<std::string> order() const {
        std::lock_guard lock(mutex_);
        return order_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<hub::SequencedMessage> sequenced_;
    std::vector<std::string> order_;
};

/// The outcomes of sequenced publishes.
class Accepted {
public:
    hub::Bus::SequencedDone done(const Seen* own = nullptr, std::string payload = {}) {
        return [this, own, payload = std::move(payload)](bool ok, std::string_view error, const hub::SequencedMessage& message) {
            const bool seen_first = own == nullptr || own->has_payload(payload);
            std::lock_guard lock(mutex_);
            if (ok) {
                accepted_.push_back(message);
                if (!seen_first) ++done_before_delivery_;
            } else {
                errors_.emplace_back(error);
            }
        };
    }
    std::size_t total() const {
        std::lock_guard lock(mutex_);
        return accepted_.size() + errors_.size();
    }
    std::vector<hub::SequencedMessage> accepted() const {
        std::lock_guard lock(mutex_);
        return accepted_;
    }
    std::vector<std::string> errors() const {
        std::lock_guard lock(mutex_);
        return errors_;
    }
    int done_before_delivery() const {
        std::lock_guard lock(mutex_);
        return done_before_delivery_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<hub::SequencedMessage> accepted_;
    std::vector<std::string> errors_;
    int done_before_delivery_ = 0;
};

hub::HistoryRead read_history(hub::Bus& bus, const std::string& stream, std::uint64_t after, std::size_t max = 100'000) {
    std::mutex mutex;
    std::optional<hub::HistoryRead> result;
    bus.read_history(stream, after, max, [&](hub::HistoryRead read) {
        std::lock_guard lock(mutex);
        result = std::move(read);
    });
    REQUIRE(eventually([&] {
        std::lock_guard lock(mutex);
        return result.has_value();
    }));
    std::lock_guard lock(mutex);
    return *result;
}

hub::SequencedMessage publish_and_wait(hub::Bus& bus, const std::string& stream, const std::string& payload) {
    Accepted accepted;
    bus.publish_sequenced("streams:" + stream, stream, payload, accepted.done());
    REQUIRE(eventually([&] { return accepted.total() == 1; }));
    REQUIRE_MESSAGE(accepted.errors().empty(), (accepted.errors().empty() ? "" : accepted.errors()[0]));
    return accepted.accepted().at(0);
}

}  // namespace

TEST_CASE("redis sequenced: two nodes publish to one stream at once; offsets 1..N without gaps, one order, history on both") {
    test::RedisServer redis;
    hub::RedisBus node_a(redis.options());
    hub::RedisBus node_b(redis.options());
    Seen seen_a, seen_b;
    node_a.start(seen_a.handler());
    node_b.start(seen_b.handler());
    REQUIRE(node_a.status().connected);
    REQUIRE(node_b.status().connected);

    constexpr int per_node = 500;
    Accepted accepted_a, accepted_b;
    auto publish_all = [&](hub::RedisBus& bus, const Seen& own, Accepted& accepted, const std::string& name) {
        for (int i = 0; i < per_node; ++i) {
            const std::string payload = name + ":" + std::to_string(i);
            bus.publish_sequenced("streams:room", "room", payload, accepted.done(&own, payload));
            // Plain publishes interleaved: they share the bus's order with the sequenced ones.
            if (i % 100 == 0) bus.publish("aiows:room", name + "-plain:" + std::to_string(i), [](bool, std::string_view) {});
        }
    };
    std::thread publisher_a([&] { publish_all(node_a, seen_a, accepted_a, "A"); });
    std::thread publisher_b([&] { publish_all(node_b, seen_b, accepted_b, "B"); });
    publisher_a.join();
    publisher_b.join();

    REQUIRE(eventually([&] { return accepted_a.total() == per_node && accepted_b.total() == per_node; }, 20000ms));
    CHECK(accepted_a.errors().empty());
    CHECK(accepted_b.errors().empty());
    CHECK(accepted_a.done_before_delivery() == 0);
    CHECK(accepted_b.done_before_delivery() == 0);
    REQUIRE(eventually([&] { return seen_a.sequenced_count() == 2 * per_node && seen_b.sequenced_count() == 2 * per_node; }, 20000ms));

    const auto messages_a = seen_a.sequenced();
    const auto messages_b = seen_b.sequenced();
    const std::string epoch = messages_a.at(0).epoch;
    CHECK(epoch.size() == 16);
    std::map<std::string, int> next{{"A", 0}, {"B", 0}};
    for (std::size_t i = 0; i < messages_a.size(); ++i) {
        CAPTURE(i);
        CHECK(messages_a[i].stream == "room");
        CHECK(messages_a[i].epoch == epoch);
        REQUIRE(messages_a[i].offset == i + 1);  // strictly increasing, no gap
        CHECK(messages_b[i].offset == messages_a[i].offset);
        CHECK(messages_b[i].payload == messages_a[i].payload);
        // Each publisher's own order is kept.
        const std::string& payload = messages_a[i].payload;
        const std::string name = payload.substr(0, 1);
        CHECK(std::stoi(payload.substr(2)) == next[name]++);
    }
    CHECK(seen_a.order() == seen_b.order());  // plain and sequenced in one total order

    // Done carried the offset and epoch its message was delivered with.
    std::map<std::uint64_t, std::string> delivered;
    for (const auto& message : messages_a) delivered[message.offset] = message.payload;
    for (const Accepted* accepted : {&accepted_a, &accepted_b}) {
        for (const auto& message : accepted->accepted()) {
            CHECK(message.epoch == epoch);
            CHECK(message.stream == "room");
            CHECK(message.payload.empty());
            CHECK(delivered.count(message.offset) == 1);
        }
    }

    // Node B reads the history A wrote half of; A reads in pages.
    hub::HistoryRead read = read_history(node_b, "room", 0);
    REQUIRE(read.ok);
    CHECK(read.epoch == epoch);
    CHECK(read.last_offset == 2 * per_node);
    CHECK(read.oldest_offset == 1);
    REQUIRE(read.messages.size() == 2 * per_node);
    for (std::size_t i = 0; i < read.messages.size(); ++i) {
        CHECK(read.messages[i].offset == messages_a[i].offset);
        CHECK(read.messages[i].payload == messages_a[i].payload);
        CHECK(read.messages[i].unix_ms == messages_a[i].unix_ms);
        CHECK(read.messages[i].epoch == epoch);
    }
    read = read_history(node_a, "room", 990, 5);
    REQUIRE(read.messages.size() == 5);
    CHECK(read.messages.front().offset == 991);
    CHECK(read.messages.back().offset == 995);
    CHECK(read_history(node_a, "room", 2 * per_node).messages.empty());
    CHECK(read_history(node_a, "room", std::numeric_limits<std::uint64_t>::max()).messages.empty());
    const hub::HistoryRead unbounded = read_history(node_a, "room", 0, std::numeric_limits<std::size_t>::max());
    CHECK(unbounded.ok);
    CHECK(unbounded.messages.size() == 2 * per_node);
    const hub::HistoryRead unknown = read_history(node_a, "never", 0);
    CHECK(unknown.ok);
    CHECK(unknown.epoch.empty());
    CHECK(unknown.last_offset == 0);
    CHECK(unknown.messages.empty());
}

TEST_CASE("redis sequenced: Redis restarted empty: a new epoch from offset 1") {
    test::RedisServer redis;
    hub::RedisBus node(redis.options());
    Seen seen;
    node.start(seen.handler());
    REQUIRE(node.status().connected);
    for (int i = 1; i <= 3; ++i) CHECK(publish_and_wait(node, "s", "before" + std::to_string(i)).offset == static_cast<std::uint64_t>(i));
    const std::string old_epoch = read_history(node, "s", 0).epoch;
    REQUIRE_FALSE(old_epoch.empty());

    redis.kill();
    REQUIRE(eventually([&] { return !node.status().connected; }));
    // In an outage both calls answer at once, on this thread.
    bool read_answered = false;
    node.read_history("s", 0, 10, [&](hub::HistoryRead read) {
        read_answered = true;
        CHECK_FALSE(read.ok);
        CHECK(read.error.rfind("redis unavailable: ", 0) == 0);
    });
    CHECK(read_answered);
    bool publish_answered = false;
    node.publish_sequenced("t", "s", "lost", [&](bool ok, std::string_view error, const hub::SequencedMessage&) {
        publish_answered = true;
        CHECK_FALSE(ok);
        CHECK(std::string(error).rfind("redis unavailable: ", 0) == 0);
    });
    CHECK(publish_answered);

    redis.start();
    REQUIRE(eventually([&] { return node.status().connected; }, 10000ms));
    const hub::SequencedMessage first = publish_and_wait(node, "s", "after1");
    CHECK(first.offset == 1);
    CHECK(first.epoch != old_epoch);
    CHECK_FALSE(first.epoch.empty());
    const hub::HistoryRead read = read_history(node, "s", 0);
    CHECK(read.epoch == first.epoch);
    CHECK(read.last_offset == 1);
    REQUIRE(read.messages.size() == 1);
    CHECK(read.messages[0].payload == "after1");
}

TEST_CASE("redis sequenced: a state from another Redis process (a snapshot, a promoted replica) starts a new epoch") {
    test::RedisServer redis;
    hub::RedisBus node(redis.options());
    node.start([](std::string_view, std::string_view) {});
    const hub::SequencedMessage first = publish_and_wait(node, "s", "one");
    CHECK(publish_and_wait(node, "s", "two").epoch == first.epoch);
    const std::string info = redis.command({"INFO", "server"});
    const auto at = info.find("run_id:");
    REQUIRE(at != std::string::npos);
    CHECK(redis.command({"HGET", "websock-hub:s:s", "run"}) == info.substr(at + 7, 40));
    // As if this state had come back from a snapshot of a Redis process that is gone: its
    // offsets may have been handed out again after the snapshot, so it must not be trusted.
    redis.command({"HSET", "websock-hub:s:s", "run", "0000000000000000000000000000000000000000"});
    const hub::SequencedMessage after = publish_and_wait(node, "s", "three");
    CHECK(after.epoch != first.epoch);
    CHECK(after.offset == 1);
    const hub::HistoryRead read = read_history(node, "s", 0);
    CHECK(read.epoch == after.epoch);
    REQUIRE(read.messages.size() == 1);  // the old epoch's history went with it
    CHECK(read.messages[0].payload == "three");
}

TEST_CASE("redis sequenced: history limits: entries, bytes and age move oldest_offset; the offsets go on") {
    test::RedisServer redis;
    hub::RedisBus node(redis.options());
    hub::HistoryLimits limits;
    limits.max_entries = 10;
    limits.max_bytes = 1000;
    limits.max_age = 60'000ms;
    SUBCASE("entries") {
        node.set_history_limits(limits);
        node.start([](std::string_view, std::string_view) {});
        for (int i = 1; i <= 25; ++i) publish_and_wait(node, "s", "m" + std::to_string(i));
        const hub::HistoryRead read = read_history(node, "s", 0);
        CHECK(read.last_offset == 25);
        CHECK(read.oldest_offset == 16);
        REQUIRE(read.messages.size() == 10);
        CHECK(read.messages.front().payload == "m16");
        CHECK(redis.command({"XLEN", "websock-hub:h:s"}) == "10");  // trimmed in Redis, not only on read
        CHECK(read_history(node, "s", 3, 2).messages.front().offset == 16);  // a gap: the caller sees oldest > after + 1
    }
    SUBCASE("bytes") {
        node.set_history_limits(limits);
        node.start([](std::string_view, std::string_view) {});
        for (int i = 0; i < 3; ++i) publish_and_wait(node, "s", std::string(400, static_cast<char>('a' + i)));
        hub::HistoryRead read = read_history(node, "s", 0);
        CHECK(read.oldest_offset == 2);
        REQUIRE(read.messages.size() == 2);
        CHECK(redis.command({"HGET", "websock-hub:s:s", "bytes"}) == "800");
        publish_and_wait(node, "s", std::string(1001, 'z'));  // larger than the limit: history empty
        read = read_history(node, "s", 0);
        CHECK(read.messages.empty());
        CHECK(read.oldest_offset == 0);
        CHECK(read.last_offset == 4);
        CHECK(redis.command({"HGET", "websock-hub:s:s", "bytes"}) == "0");
    }
    SUBCASE("age") {
        limits.max_age = 100ms;
        node.set_history_limits(limits);
        node.start([](std::string_view, std::string_view) {});
        const std::string epoch = publish_and_wait(node, "s", "old").epoch;
        REQUIRE(eventually([&] { return read_history(node, "s", 0).messages.empty(); }));
        hub::HistoryRead read = read_history(node, "s", 0);
        CHECK(read.oldest_offset == 0);
        CHECK(read.last_offset == 1);
        CHECK(read.epoch == epoch);  // aged out is not lost: the epoch stays
        CHECK(publish_and_wait(node, "s", "new").offset == 2);
        read = read_history(node, "s", 0);
        CHECK(read.oldest_offset == 2);
    }
}

TEST_CASE("redis sequenced: names that look alike get their own keys; bad names are refused at once") {
    test::RedisServer redis;
    hub::RedisBus node(redis.options());
    node.start([](std::string_view, std::string_view) {});
    const std::vector<std::string> names = {"a", "a:b", "a:s:b", "s:a", std::string("a\xff\x01", 3), "a ", std::string(1024, 'n')};
    for (const auto& name : names) publish_and_wait(node, name, "payload of " + name);
    for (const auto& name : names) {
        CAPTURE(name.size());
        const hub::HistoryRead read = read_history(node, name, 0);
        CHECK(read.last_offset == 1);
        REQUIRE(read.messages.size() == 1);
        CHECK(read.messages[0].payload == "payload of " + name);
        CHECK(read.messages[0].stream == name);
    }
    for (const std::string& bad : {std::string(), std::string(1025, 'n'), std::string("a\0b", 3)}) {
        bool refused = false;
        node.publish_sequenced("t", bad, "x", [&](bool ok, std::string_view, const hub::SequencedMessage&) { refused = !ok; });
        CHECK(refused);
        bool read_refused = false;
        node.read_history(bad, 0, 1, [&](hub::HistoryRead read) { read_refused = !read.ok; });
        CHECK(read_refused);
    }
}

TEST_CASE("redis sequenced: a flushed script cache is recovered (EVAL, then SCRIPT LOAD again)") {
    test::RedisServer redis;
    hub::RedisBus node(redis.options());
    Seen seen;
    node.start(seen.handler());
    CHECK(publish_and_wait(node, "s", "one").offset == 1);
    // EVALSHA of the script loaded on connect; EVAL not used yet.
    CHECK(redis.command({"INFO", "commandstats"}).find("cmdstat_evalsha:") != std::string::npos);
    CHECK(redis.command({"INFO", "commandstats"}).find("cmdstat_eval:") == std::string::npos);
    CHECK(redis.command({"SCRIPT", "FLUSH"}) == "OK");
    CHECK(publish_and_wait(node, "s", "two").offset == 2);
    CHECK(redis.command({"INFO", "commandstats"}).find("cmdstat_eval:") != std::string::npos);  // the fallback ran
    CHECK(read_history(node, "s", 0).messages.size() == 2);
    CHECK(redis.command({"SCRIPT", "FLUSH"}) == "OK");
    CHECK(read_history(node, "s", 1).messages.at(0).payload == "two");
    CHECK(publish_and_wait(node, "s", "three").offset == 3);
    REQUIRE(eventually([&] { return seen.sequenced_count() == 3; }));
}

TEST_CASE("redis sequenced: stop() answers queued publishes and reads exactly once") {
    test::RedisServer redis;
    hub::RedisBus node(redis.options());
    node.start([](std::string_view, std::string_view) {});
    REQUIRE(node.status().connected);
    constexpr int count = 2000;
    std::mutex mutex;
    std::vector<int> publish_answers(count, 0), read_answers(count, 0);
    for (int i = 0; i < count; ++i) {
        node.publish_sequenced("t", "s", std::to_string(i), [&, i](bool, std::string_view, const hub::SequencedMessage&) {
            std::lock_guard lock(mutex);
            ++publish_answers[i];
        });
        node.read_history("s", 0, 10, [&, i](hub::HistoryRead) {
            std::lock_guard lock(mutex);
            ++read_answers[i];
        });
    }
    node.stop();
    std::lock_guard lock(mutex);
    CHECK(std::all_of(publish_answers.begin(), publish_answers.end(), [](int n) { return n == 1; }));
    CHECK(std::all_of(read_answers.begin(), read_answers.end(), [](int n) { return n == 1; }));
}

TEST_CASE("redis sequenced: a paused Redis: the pending limit holds for sequenced publishes and reads, then recovery") {
    test::RedisServer redis;
    hub::RedisOptions options = redis.options();
    options.max_pending_publishes = 4;
    options.command_timeout = 300ms;
    options.connect_timeout = 300ms;
    options.write_batch = 16;
    hub::RedisBus node(options);
    Seen seen;
    node.start(seen.handler());
    REQUIRE(node.status().connected);
    CHECK(publish_and_wait(node, "s", "before").offset == 1);

    redis.pause();  // holds its connections, answers nothing
    Accepted accepted;
    for (int i = 0; i < 10; ++i) node.publish_sequenced("t", "s", "m" + std::to_string(i), accepted.done());
    // 4 wait (the limit counts every unanswered publish, in flight or queued); 6 are refused at once.
    CHECK(accepted.errors().size() == 6);
    for (const auto& error : accepted.errors()) CHECK_MESSAGE(error.rfind("redis bus overloaded", 0) == 0, error);
    std::atomic<int> reads_refused{0};
    std::atomic<int> reads_answered{0};
    constexpr int reads = 100;
    for (int i = 0; i < reads; ++i) {
        node.read_history("s", 0, 10, [&](hub::HistoryRead read) {
            ++reads_answered;
            if (!read.ok && read.error.rfind("redis bus overloaded", 0) == 0) ++reads_refused;
        });
    }
    // At most 4 reads queued, besides those the writer may have taken into its one batch in
    // flight (write_batch) if it woke late: the rest are refused at once.
    CHECK(reads_refused >= reads - 4 - static_cast<int>(options.write_batch));
    // The command timeout ends the wait: everything is answered, as unavailable.
    REQUIRE(eventually([&] { return accepted.total() == 10 && reads_answered == reads; }));
    CHECK(accepted.accepted().empty());
    REQUIRE(eventually([&] { return !node.status().connected; }));

    redis.resume();
    REQUIRE(eventually([&] { return node.status().connected; }, 10000ms));
    const hub::SequencedMessage after = publish_and_wait(node, "s", "after");
    // The 4 timed-out publishes may still have run when Redis woke (their outcome was
    // unknowable); whichever did, the handler saw offsets 1, 2, ... without a gap.
    CHECK(after.offset >= 2);
    CHECK(after.offset <= 6);
    REQUIRE(eventually([&] { return seen.sequenced_count() == after.offset; }));
    const auto messages = seen.sequenced();
    for (std::size_t i = 0; i < messages.size(); ++i) CHECK(messages[i].offset == i + 1);
}

TEST_CASE("redis sequenced: read_history from inside the handler is answered (queued to the writer), with the message") {
    test::RedisServer redis;
    hub::RedisBus node(redis.options());
    std::mutex mutex;
    std::vector<std::uint64_t> read_offsets;
    node.start([&](std::string_view, std::string_view payload) {
        const auto message = hub::decode_sequenced(payload);
        if (!message) return;
        node.read_history(message->stream, message->offset - 1, 10, [&](hub::HistoryRead read) {
            std::lock_guard lock(mutex);
            if (read.ok && !read.messages.empty()) read_offsets.push_back(read.messages[0].offset);
        });
    });
    publish_and_wait(node, "s", "one");
    publish_and_wait(node, "s", "two");
    REQUIRE(eventually([&] {
        std::lock_guard lock(mutex);
        return read_offsets.size() == 2;
    }));
    std::lock_guard lock(mutex);
    CHECK(read_offsets == std::vector<std::uint64_t>{1, 2});
}
