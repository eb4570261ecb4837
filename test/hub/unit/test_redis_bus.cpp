// RedisBus against a real redis-server of its own (test/hub/unit/redis_server.hpp): URL
// parsing, a binary round trip, two nodes exactly once and in order, read-your-writes Done,
// Redis killed and restarted empty in the middle, a paused Redis, and stop() with publishes
// pending. Every wait has a deadline (scaled for the sanitizer builds).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hub/redis_bus.hpp"
#include "test/hub/unit/redis_server.hpp"

using namespace std::chrono_literals;

namespace {

using test::eventually;

/// What one node's handler saw, in order.
class Received {
public:
    hub::Bus::Handler handler() {
        return [this](std::string_view topic, std::string_view payload) {
            std::lock_guard lock(mutex_);
            messages_.emplace_back(std::string(topic), std::string(payload));
        };
    }
    std::size_t size() const {
        std::lock_guard lock(mutex_);
        return messages_.size();
    }
    std::vector<std::pair<std::string, std::string>> messages() const {
        std::lock_guard lock(mutex_);
        return messages_;
    }
    bool contains(std::string_view topic, std::string_view payload) const {
        std::lock_guard lock(mutex_);
        return std::any_of(messages_.begin(), messages_.end(),
                           [&](const auto& message) { return message.first == topic && message.second == payload; });
    }
    std::size_t count_of(std::string_view payload) const {
        std::lock_guard lock(mutex_);
        return static_cast<std::size_t>(std::count_if(messages_.begin(), messages_.end(),
                                                      [&](const auto& message) { return message.second == payload; }));
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::pair<std::string, std::string>> messages_;
};

/// The outcomes of many publishes.
class Outcomes {
public:
    /// A Done that records its outcome; `check` runs first, on the calling thread.
    hub::Bus::Done done(std::function<void(bool)> check = {}) {
        return [this, check = std::move(check)](bool ok, std::string_view error) {
            if (check) check(ok);
            std::lock_guard lock(mutex_);
            (ok ? ok_ : failed_) += 1;
            if (!ok) errors_.emplace_back(error);
        };
    }
    std::size_t ok() const {
        std::lock_guard lock(mutex_);
        return ok_;
    }
    std::size_t failed() const {
        std::lock_guard lock(mutex_);
        return failed_;
    }
    std::size_t total() const { return ok() + failed(); }
    std::vector<std::string> errors() const {
        std::lock_guard lock(mutex_);
        return errors_;
    }

private:
    mutable std::mutex mutex_;
    std::size_t ok_ = 0;
    std::size_t failed_ = 0;
    std::vector<std::string> errors_;
};

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

/// Each payload "<publisher>:<n>" seen exactly once, and each publisher's in order 0..count-1.
void check_exactly_once_in_order(const std::vector<std::pair<std::string, std::string>>& messages,
                                 const std::vector<std::string>& publishers, int count) {
    std::map<std::string, int> next;
    for (const auto& publisher : publishers) next[publisher] = 0;
    for (const auto& [topic, payload] : messages) {
        const auto colon = payload.find(':');
        REQUIRE(colon != std::string::npos);
        const std::string publisher = payload.substr(0, colon);
        REQUIRE(next.count(publisher) == 1);
        const int n = std::stoi(payload.substr(colon + 1));
        REQUIRE_MESSAGE(n == next[publisher], "publisher " << publisher << ": got " << n << ", expected " << next[publisher]);
        ++next[publisher];
    }
    for (const auto& publisher : publishers) CHECK(next[publisher] == count);
}

}  // namespace

TEST_CASE("redis bus: parse_redis_url") {
    SUBCASE("host and port") {
        auto options = hub::parse_redis_url("redis://127.0.0.1:6390");
        REQUIRE(options);
        CHECK(options->host == "127.0.0.1");
        CHECK(options->port == 6390);
        CHECK(options->database == 0);
        CHECK(options->password.empty());
        CHECK(options->stream_key == "websock-hub");
    }
    SUBCASE("database, default port, scheme in capitals") {
        auto options = hub::parse_redis_url("REDIS://redis.internal/3");
        REQUIRE(options);
        CHECK(options->host == "redis.internal");
        CHECK(options->port == 6379);
        CHECK(options->database == 3);
        CHECK(hub::parse_redis_url("redis://h:1/")->database == 0);
    }
    SUBCASE("password, user and password, percent-encoding") {
        auto options = hub::parse_redis_url("redis://:s3cret@localhost:7000/2");
        REQUIRE(options);
        CHECK(options->password == "s3cret");
        CHECK(options->username.empty());
        CHECK(options->host == "localhost");
        CHECK(options->port == 7000);
        CHECK(options->database == 2);
        options = hub::parse_redis_url("redis://hub:p%40ss%2Fw@h:1");
        REQUIRE(options);
        CHECK(options->username == "hub");
        CHECK(options->password == "p@ss/w");
    }
    SUBCASE("IPv6") {
        auto options = hub::parse_redis_url("redis://[::1]:6400");
        REQUIRE(options);
        CHECK(options->host == "::1");
        CHECK(options->port == 6400);
    }
    SUBCASE("rejected") {
        for (const char* bad : {"", "redis://", "redis://:6379", "http://h:1", "rediss://h:1", "h:6379", "redis://h:0",
                                "redis://h:65536", "redis://h:12ab", "redis://h:", "redis://h:1/x", "redis://h:1/-1",
                                "redis://h:1?db=2", "redis://h:1#x", "redis://user@h:1", "redis://:@h:1",
                                "redis://:p%4@h:1", "redis://[::1:1", "redis://[::1]x", "redis://h h:1", "redis://h:1/2/3"}) {
            CAPTURE(bad);
            CHECK_FALSE(hub::parse_redis_url(bad));
        }
    }
}

TEST_CASE("redis bus: binary round trip, Done after this node's own delivery") {
    test::RedisServer redis;
    hub::RedisBus bus(redis.options());
    Received received;
    bus.start(received.handler());
    CHECK(bus.status().kind == "redis");

    std::string binary;
    for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
    binary += std::string("\0\r\n$3\r\n*", 9);
    const std::string topic = std::string("aiows:chan\0nel", 14);

    Outcomes outcomes;
    std::atomic<bool> delivered_before_done{false};
    bus.publish(topic, binary, outcomes.done([&](bool ok) {
        if (ok) delivered_before_done = received.contains(topic, binary);
    }));
    REQUIRE(eventually([&] { return outcomes.total() == 1; }));
    CHECK(outcomes.ok() == 1);
    CHECK(delivered_before_done);
    REQUIRE(received.size() == 1);
    CHECK(received.messages()[0].first == topic);
    CHECK(received.messages()[0].second == binary);

    const hub::BusStatus status = bus.status();
    CHECK(status.connected);
    CHECK(status.published == 1);
    CHECK(status.received == 1);
    CHECK(status.failed == 0);
    CHECK(status.last_error.empty());
    // The entry is in the stream, trimmed by MAXLEN: one entry so far.
    CHECK(redis.command({"XLEN", "websock-hub"}) == "1");
}

TEST_CASE("redis bus: two nodes see every message of both exactly once, each publisher in order") {
    test::RedisServer redis;
    hub::RedisBus node_a(redis.options());
    hub::RedisBus node_b(redis.options());
    Received received_a, received_b;
    node_a.start(received_a.handler());
    node_b.start(received_b.handler());
    REQUIRE(eventually([&] { return node_a.status().connected && node_b.status().connected; }));
    CHECK(node_a.node_id() != node_b.node_id());

    constexpr int per_node = 2000;
    Outcomes outcomes_a, outcomes_b;
    std::atomic<int> done_before_delivery{0};
    auto publish_all = [&](hub::RedisBus& bus, const Received& own, Outcomes& outcomes, const std::string& name) {
        for (int i = 0; i < per_node; ++i) {
            std::string payload = name + ":" + std::to_string(i);
            bus.publish("aiows:room", payload, outcomes.done([&own, &done_before_delivery, payload](bool ok) {
                if (ok && own.count_of(payload) != 1) ++done_before_delivery;
            }));
        }
    };
    std::thread publisher_a([&] { publish_all(node_a, received_a, outcomes_a, "A"); });
    std::thread publisher_b([&] { publish_all(node_b, received_b, outcomes_b, "B"); });
    publisher_a.join();
    publisher_b.join();

    REQUIRE(eventually([&] { return outcomes_a.total() == per_node && outcomes_b.total() == per_node; }, 20000ms));
    CHECK(outcomes_a.ok() == per_node);
    CHECK(outcomes_b.ok() == per_node);
    CHECK(done_before_delivery == 0);
    REQUIRE(eventually([&] { return received_a.size() >= 2 * per_node && received_b.size() >= 2 * per_node; }, 20000ms));
    for (const Received* received : {&received_a, &received_b}) {
        const auto messages = received->messages();
        CHECK(messages.size() == 2 * per_node);
        check_exactly_once_in_order(messages, {"A", "B"}, per_node);
    }
    // One total order: both nodes saw the very same sequence.
    CHECK(received_a.messages() == received_b.messages());
    CHECK(node_a.status().published == per_node);
    CHECK(node_a.status().received == 2 * per_node);
}

namespace {
/// The bus's log lines, kept for a test to check which path it took.
class LogLines {
public:
    std::function<void(std::string_view)> sink() {
        return [this](std::string_view line) {
            std::lock_guard lock(mutex_);
            lines_.emplace_back(line);
        };
    }
    bool any_contains(std::string_view text) const {
        std::lock_guard lock(mutex_);
        return std::any_of(lines_.begin(), lines_.end(), [&](const std::string& line) { return line.find(text) != std::string::npos; });
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
};
}  // namespace

TEST_CASE("redis bus: Redis killed mid-run, restarted empty on the same port, the nodes recover") {
    // Two ways back: the readers reconnect to a Redis with no stream yet ("is gone"), or
    // another publisher has already made a new stream whose ids are below the readers'
    // position ("restarted"); a long back-off makes the second order certain.
    bool others_write_first = false;
    SUBCASE("the readers are back before anyone writes") { others_write_first = false; }
    SUBCASE("another publisher writes before the readers are back") { others_write_first = true; }
    CAPTURE(others_write_first);

    test::RedisServer redis;
    hub::RedisOptions options = redis.options();
    if (others_write_first) options.reconnect_min = options.reconnect_max = 1000ms;
    LogLines log_a, log_b;
    options.log = log_a.sink();
    hub::RedisBus node_a(options);
    options.log = log_b.sink();
    hub::RedisBus node_b(options);
    Received received_a, received_b;
    node_a.start(received_a.handler());
    node_b.start(received_b.handler());
    // start() returns once the reader is on the stream: B hears everything A says from now.
    REQUIRE(node_a.status().connected);
    REQUIRE(node_b.status().connected);

    Outcomes before;
    for (int i = 0; i < 10; ++i) node_a.publish("aiows:x", "before:" + std::to_string(i), before.done());
    REQUIRE(eventually([&] { return before.total() == 10; }));
    CHECK(before.ok() == 10);
    REQUIRE(eventually([&] { return received_b.size() == 10; }));

    // An entry with an id far in the future: the readers' position jumps past any id the
    // restarted (empty) Redis will hand out, so their ids are sure to go back after it.
    const std::string future = redis.command({"XADD", "websock-hub", "99999999999999-0", "t", "aiows:x", "p", "future"});
    REQUIRE(future == "99999999999999-0");
    REQUIRE(eventually([&] { return received_a.count_of("future") == 1 && received_b.count_of("future") == 1; }));

    redis.kill();
    REQUIRE(eventually([&] { return !node_a.status().connected && !node_b.status().connected; }));
    CHECK_FALSE(node_a.status().last_error.empty());

    // While Redis is away, publishes fail at once with a clear reason.
    Outcomes during;
    for (int i = 0; i < 5; ++i) node_a.publish("aiows:x", "during:" + std::to_string(i), during.done());
    REQUIRE(eventually([&] { return during.total() == 5; }));
    CHECK(during.failed() == 5);
    for (const auto& error : during.errors()) CHECK_MESSAGE(starts_with(error, "redis unavailable: "), error);
    CHECK(node_a.status().failed >= 5);

    redis.start();
    if (others_write_first) {
        redis.command({"XADD", "websock-hub", "*", "t", "aiows:x", "p", "first-after-restart"});
        REQUIRE(eventually([&] { return node_a.status().connected && node_b.status().connected; }, 10000ms));
        CHECK(log_a.any_contains("restarted (its last id"));
        CHECK(log_b.any_contains("restarted (its last id"));
    } else {
        REQUIRE(eventually([&] { return node_a.status().connected && node_b.status().connected; }, 10000ms));
        CHECK(log_a.any_contains("is gone"));
        CHECK(log_b.any_contains("is gone"));
        redis.command({"XADD", "websock-hub", "*", "t", "aiows:x", "p", "first-after-restart"});
    }
    CHECK(node_a.status().reconnects >= 1);
    CHECK(node_b.status().reconnects >= 1);
    CHECK(node_a.status().last_error.empty());

    Outcomes after_a, after_b;
    for (int i = 0; i < 50; ++i) {
        node_a.publish("aiows:x", "A:" + std::to_string(i), after_a.done());
        node_b.publish("aiows:x", "B:" + std::to_string(i), after_b.done());
    }
    REQUIRE(eventually([&] { return after_a.total() == 50 && after_b.total() == 50; }));
    CHECK(after_a.ok() == 50);
    CHECK(after_b.ok() == 50);
    for (const Received* received : {&received_a, &received_b}) {
        REQUIRE(eventually([&] { return received->size() >= 10 + 1 + 1 + 100; }));
        auto messages = received->messages();
        CHECK(messages.size() == 10 + 1 + 1 + 100);
        CHECK(received->count_of("first-after-restart") == 1);
        std::vector<std::pair<std::string, std::string>> after;
        for (const auto& message : messages) {
            if (starts_with(message.second, "A:") || starts_with(message.second, "B:")) after.push_back(message);
            CHECK_FALSE(starts_with(message.second, "during:"));
        }
        check_exactly_once_in_order(after, {"A", "B"}, 50);
    }
}

TEST_CASE("redis bus: a paused Redis, the pending limit, then recovery") {
    test::RedisServer redis;
    hub::RedisOptions options = redis.options();
    options.max_pending_publishes = 4;
    options.command_timeout = 300ms;
    options.connect_timeout = 300ms;
    hub::RedisBus bus(options);
    Received received;
    bus.start(received.handler());
    REQUIRE(bus.status().connected);

    redis.pause();  // keeps its connections, accepts new ones (the kernel does), answers nothing
    Outcomes outcomes;
    for (int i = 0; i < 10; ++i) bus.publish("aiows:p", "m" + std::to_string(i), outcomes.done());
    // Nothing can be answered by a paused Redis: the first 4 wait, 6 are refused at once.
    CHECK(outcomes.failed() == 6);
    for (const auto& error : outcomes.errors()) CHECK_MESSAGE(starts_with(error, "redis bus overloaded"), error);
    // The command timeout ends the wait: the 4 fail as unavailable, and the status says why.
    REQUIRE(eventually([&] { return outcomes.total() == 10; }));
    CHECK(outcomes.failed() == 10);
    const auto errors = outcomes.errors();
    CHECK(std::count_if(errors.begin(), errors.end(), [](const std::string& e) { return starts_with(e, "redis unavailable: "); }) == 4);
    REQUIRE(eventually([&] { return !bus.status().connected; }));
    CHECK_MESSAGE(bus.status().last_error.find("127.0.0.1:" + std::to_string(redis.port())) != std::string::npos,
                  bus.status().last_error);

    redis.resume();
    REQUIRE(eventually([&] { return bus.status().connected; }, 10000ms));
    CHECK(bus.status().reconnects >= 1);
    Outcomes later;
    bus.publish("aiows:p", "after", later.done());
    REQUIRE(eventually([&] { return later.total() == 1; }));
    CHECK(later.ok() == 1);
    CHECK(received.count_of("after") == 1);
}

TEST_CASE("redis bus: a publish not delivered back in time gets !ok, though it is on the bus") {
    test::RedisServer redis;
    hub::RedisOptions options = redis.options();
    options.delivery_timeout = 200ms;
    hub::RedisBus bus(options);
    std::atomic<bool> release{false};
    Received received;
    bus.start([&](std::string_view topic, std::string_view payload) {
        // A handler stuck longer than delivery_timeout (bounded, released by the test).
        if (payload == "slow") eventually([&] { return release.load(); }, 10000ms);
        received.handler()(topic, payload);
    });
    REQUIRE(bus.status().connected);

    Outcomes outcomes;
    bus.publish("aiows:t", "slow", outcomes.done());
    REQUIRE(eventually([&] { return outcomes.total() == 1; }));
    CHECK(outcomes.failed() == 1);
    CHECK_MESSAGE(outcomes.errors().at(0).find("not delivered back to this node within 200 ms") != std::string::npos,
                  outcomes.errors().at(0));
    release = true;
    // The entry was on the stream all along: the handler still gets it, once.
    REQUIRE(eventually([&] { return received.count_of("slow") == 1; }));
    Outcomes next;
    bus.publish("aiows:t", "next", next.done());
    REQUIRE(eventually([&] { return next.total() == 1; }));
    CHECK(next.ok() == 1);
    CHECK(received.count_of("slow") == 1);
}

TEST_CASE("redis bus: stop() with publishes pending answers each exactly once") {
    test::RedisServer redis;
    hub::RedisBus bus(redis.options());
    Received received;
    std::atomic<bool> stopped{false};
    std::atomic<int> handled_after_stop{0};
    bus.start([&](std::string_view topic, std::string_view payload) {
        if (stopped) ++handled_after_stop;
        received.handler()(topic, payload);
    });
    REQUIRE(eventually([&] { return bus.status().connected; }));

    constexpr int count = 5000;
    std::mutex answers_mutex;
    std::vector<int> answers(count, 0);
    std::vector<std::string> errors;
    for (int i = 0; i < count; ++i) {
        bus.publish("aiows:s", std::to_string(i), [&, i](bool ok, std::string_view error) {
            std::lock_guard lock(answers_mutex);
            ++answers[i];
            if (!ok) errors.emplace_back(error);
        });
    }
    bus.stop();
    stopped = true;
    {
        std::lock_guard lock(answers_mutex);
        CHECK(std::all_of(answers.begin(), answers.end(), [](int n) { return n == 1; }));
        for (const auto& error : errors) CHECK_MESSAGE((error == "bus stopped" || starts_with(error, "redis")), error);
    }
    CHECK_FALSE(bus.status().connected);

    Outcomes late;
    bus.publish("aiows:s", "late", late.done());
    CHECK(late.failed() == 1);  // answered at once, on this thread
    CHECK(late.errors().at(0) == "bus stopped");
    bus.stop();  // twice is harmless
    CHECK(handled_after_stop == 0);
}

TEST_CASE("redis bus: stop() while Redis is down and before start") {
    SUBCASE("never started") {
        hub::RedisOptions options;
        options.port = test::free_loopback_port();
        hub::RedisBus bus(options);
        bus.stop();
        Outcomes outcomes;
        bus.publish("t", "p", outcomes.done());
        CHECK(outcomes.failed() == 1);
    }
    SUBCASE("no server at the address: start() returns promptly, publishes fail, stop() is prompt") {
        hub::RedisOptions options;
        options.port = test::free_loopback_port();
        options.log = [](std::string_view) {};
        hub::RedisBus bus(options);
        const auto started = std::chrono::steady_clock::now();
        bus.start([](std::string_view, std::string_view) {});
        CHECK(std::chrono::steady_clock::now() - started < test::scaled(1000ms));  // refused at once
        CHECK_FALSE(bus.status().connected);
        CHECK_FALSE(bus.status().last_error.empty());
        Outcomes outcomes;
        bus.publish("t", "p", outcomes.done());
        REQUIRE(eventually([&] { return outcomes.total() == 1; }));
        CHECK(outcomes.failed() == 1);
        CHECK_MESSAGE(starts_with(outcomes.errors().at(0), "redis unavailable: "), outcomes.errors().at(0));
        const auto before = std::chrono::steady_clock::now();
        bus.stop();
        CHECK(std::chrono::steady_clock::now() - before < test::scaled(1000ms));
    }
}
