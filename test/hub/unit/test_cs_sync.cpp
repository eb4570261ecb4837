// A node that joins late gets the channelstream state: the snapshot round trip, the join
// buffer, and the whole exchange between modules over an in-memory "redis" bus (no I/O).
#include <doctest/doctest.h>

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "hub/bus.hpp"
#include "hub/channelstream/module.hpp"
#include "hub/channelstream/state.hpp"
#include "hub/channelstream/sync.hpp"

using namespace hub::channelstream;

namespace {

constexpr Micros kStart = 1'600'000'000'000'000;
constexpr Micros kSecond = 1'000'000;

struct Ops {
    Micros at = kStart;
    int next = 0;
    Json make(const std::string& kind, Json fields, const std::string& node = "node-a") {
        fields["op"] = kind;
        fields["id"] = "sync-op-" + std::to_string(next++);
        fields["at"] = at;
        fields["node"] = node;
        return fields;
    }
};

std::string conn(int n) { return "00000000-0000-4000-8000-00000000000" + std::to_string(n); }

Json connect_op(Ops& ops, const std::string& user, const std::string& conn_id, Json channels) {
    return ops.make("connect", {{"username", user},
                                {"conn_id", conn_id},
                                {"channels", channels},
                                {"channel_configs", Json::object()},
                                {"fresh_user_state", {{"mood", "calm"}}},
                                {"user_state", Json::object()},
                                {"state_public_keys", {"mood"}},
                                {"info", Json::object()}});
}

Json message_op(Ops& ops, const std::string& channel, const std::string& text) {
    const std::string uuid = "10000000-0000-4000-8000-" + std::string(12 - std::to_string(ops.next).size(), '0') + std::to_string(ops.next);
    return ops.make("message", {{"messages",
                                 {{{"uuid", uuid},
                                   {"timestamp", "2020-09-13T12:26:40"},
                                   {"user", "system"},
                                   {"message", {{"text", text}}},
                                   {"channel", channel},
                                   {"pm_users", Json::array()},
                                   {"exclude_users", Json::array()},
                                   {"no_history", false}}}}});
}

/// Users, channels with history and presence, user state, one attached and one detached
/// connection with messages waiting for it.
std::vector<Json> busy_history(Ops& ops) {
    std::vector<Json> list;
    list.push_back(ops.make("channel_config", {{"configs",
                                                {{"room", {{"notify_presence", true}, {"store_history", true}, {"history_size", 5},
                                                           {"broadcast_presence_with_user_lists", true}, {"notify_state", true},
                                                           {"store_frames", true}}}}}}));
    list.push_back(connect_op(ops, "alice", conn(1), {"room", "lobby"}));
    list.push_back(connect_op(ops, "bob", conn(2), {"room"}));
    list.push_back(ops.make("attach", {{"conn_id", conn(1)}, {"kind", "ws"}, {"attachment", "att-1"}}));
    for (int i = 0; i < 7; ++i) list.push_back(message_op(ops, "room", "hello " + std::to_string(i)));
    list.push_back(ops.make("user_state", {{"user", "bob"}, {"user_state", {{"mood", "busy"}}}, {"state_public_keys", nullptr}}));
    return list;
}

/// The Bus as several nodes share it, in memory: publish() queues, pump() hands every message
/// to every started node in one order, then answers the publisher.
class MemoryBus {
public:
    class Port final : public hub::Bus {
    public:
        explicit Port(MemoryBus& bus) : bus_(bus) {}
        void start(Handler handler) override { handler_ = std::move(handler); }
        void publish(std::string topic, std::string payload, Done done) override {
            bus_.queue_.push_back({std::move(topic), std::move(payload), std::move(done)});
        }
        void stop() override { handler_ = nullptr; }
        hub::BusStatus status() const override {
            hub::BusStatus status;
            status.kind = "redis";
            return status;
        }
        Handler handler_;

    private:
        MemoryBus& bus_;
    };

    Port& port() { return *ports_.emplace_back(std::make_unique<Port>(*this)); }
    void publish(const Json& op) { queue_.push_back({"channelstream", op.dump(), nullptr}); }
    /// Deliver everything queued (and what that queues), in order.
    void pump() {
        while (!queue_.empty()) {
            Message message = std::move(queue_.front());
            queue_.pop_front();
            for (auto& port : ports_)
                if (port->handler_) port->handler_(message.topic, message.payload);
            if (message.done) message.done(true, {});
        }
    }
    std::size_t queued() const { return queue_.size(); }

private:
    struct Message {
        std::string topic;
        std::string payload;
        hub::Bus::Done done;
    };
    std::deque<Message> queue_;
    std::vector<std::unique_ptr<Port>> ports_;
};

/// A module started on the memory bus.
struct Node {
    MemoryBus::Port& port;
    ChannelstreamModule module;
    Node(MemoryBus& bus, SyncOptions options = {}) : port(bus.port()), module(ChannelstreamConfig{}, options) {
        port.start([this](std::string_view topic, std::string_view payload) { module.on_bus_message(topic, payload); });
        module.start(hub::ModuleContext{&port, nullptr});
    }
};

}  // namespace

TEST_CASE("a state's snapshot loads into an identical state that goes on identically") {
    Ops ops;
    State original;
    for (const Json& op : busy_history(ops)) REQUIRE(original.apply(op).status == 200);
    REQUIRE(original.connection(conn(2))->pending.size() > 0);  // bob is detached: he is owed messages

    const Json snapshot = original.to_snapshot();
    State loaded = State::from_snapshot(Json::parse(snapshot.dump()), StateLimits{});
    CHECK(loaded.to_snapshot() == snapshot);
    CHECK(loaded.admin_info() == original.admin_info());
    CHECK(loaded.connection(conn(2))->pending.size() == original.connection(conn(2))->pending.size());

    // The same operations afterwards give the same answers and deliveries.
    for (Json op : {message_op(ops, "room", "after"), ops.make("attach", {{"conn_id", conn(2)}, {"kind", "ws"}, {"attachment", "att-2"}}),
                    ops.make("disconnect", {{"conn_id", conn(1)}}), ops.make("gc", {{"conn_ttl", 3600 * kSecond}, {"user_ttl", 0}})}) {
        const Applied a = original.apply(op);
        const Applied b = loaded.apply(op);
        CHECK(a.status == b.status);
        CHECK(a.response == b.response);
        REQUIRE(a.deliveries.size() == b.deliveries.size());
        for (std::size_t i = 0; i < a.deliveries.size(); ++i) {
            CHECK(a.deliveries[i].conn_id == b.deliveries[i].conn_id);
            CHECK(a.deliveries[i].node == b.deliveries[i].node);
            CHECK(*a.deliveries[i].payload == *b.deliveries[i].payload);
        }
        CHECK(a.closed == b.closed);
    }
    CHECK(loaded.to_snapshot() == original.to_snapshot());
}

TEST_CASE("a malformed snapshot is refused with a reason") {
    CHECK_THROWS_AS(State::from_snapshot(Json::object(), StateLimits{}), std::invalid_argument);
    CHECK_THROWS_AS(State::from_snapshot(Json{{"version", 99}}, StateLimits{}), std::invalid_argument);
    Json broken = State().to_snapshot();
    broken["users"] = Json::array({{{"username", 5}}});
    CHECK_THROWS_AS(State::from_snapshot(broken, StateLimits{}), std::invalid_argument);
    CHECK(State::from_snapshot(State().to_snapshot(), StateLimits{}).to_snapshot() == State().to_snapshot());
}

TEST_CASE("the join buffer keeps what comes after the snapshot's last operation, within its limits") {
    JoinBuffer buffer(3, 1000);
    CHECK(buffer.add(Json{{"id", "a"}}, 10));
    CHECK(buffer.add(Json{{"id", "b"}}, 10));
    CHECK(buffer.add(Json{{"id", "c"}}, 10));
    auto rest = buffer.after("a");
    REQUIRE(rest);
    REQUIRE(rest->size() == 2);
    CHECK((*rest)[0]["id"] == "b");
    CHECK(buffer.after("c")->empty());
    CHECK_FALSE(buffer.after("zzz"));  // made before the buffer began: ask again
    CHECK_FALSE(buffer.add(Json{{"id", "d"}}, 10));  // a fourth passes the count: emptied
    CHECK(buffer.size() == 0);
    JoinBuffer small(100, 25);
    CHECK(small.add(Json{{"id", "a"}}, 20));
    CHECK_FALSE(small.add(Json{{"id", "b"}}, 20));  // the bytes
    CHECK(small.bytes() == 0);
}

TEST_CASE("a node that joins late gets the state, and the operations that crossed its snapshot once each") {
    MemoryBus bus;
    Node a(bus);
    bus.pump();  // a's own request
    a.module.tick(kStart);
    a.module.tick(kStart + 10 * kSecond);  // nobody answered: a starts the cluster
    REQUIRE(a.module.synced());

    Ops ops;
    for (const Json& op : busy_history(ops)) bus.publish(op);
    bus.pump();
    REQUIRE(a.module.admin_snapshot()["total_connections"] == 2);

    Node c(bus);
    CHECK_FALSE(c.module.synced());
    bus.pump();  // c's request reaches a (and c)
    // An operation that a has not applied when it takes its snapshot but that the bus orders
    // before the snapshot: c must apply it after loading, exactly once.
    bus.publish(message_op(ops, "room", "crossing"));
    a.module.tick(kStart + 11 * kSecond);  // a answers
    c.module.tick(kStart + 11 * kSecond);
    bus.pump();
    REQUIRE(c.module.synced());
    CHECK(c.module.admin_snapshot() == a.module.admin_snapshot());
    CHECK(c.module.last_applied() == a.module.last_applied());
    CHECK(c.module.admin_snapshot()["total_unique_messages"] == 8);

    // And they go on together.
    bus.publish(message_op(ops, "room", "later"));
    bus.publish(ops.make("disconnect", {{"conn_id", conn(1)}}));
    bus.pump();
    CHECK(c.module.admin_snapshot() == a.module.admin_snapshot());

    // A third node: a and c may both answer; the first snapshot wins, the others are ignored.
    Node d(bus);
    bus.pump();
    a.module.tick(kStart + 12 * kSecond);
    c.module.tick(kStart + 12 * kSecond);
    bus.pump();
    REQUIRE(d.module.synced());
    CHECK(d.module.admin_snapshot() == a.module.admin_snapshot());
    bus.publish(message_op(ops, "room", "to all three"));
    bus.pump();
    CHECK(d.module.admin_snapshot() == a.module.admin_snapshot());
    CHECK(c.module.admin_snapshot() == a.module.admin_snapshot());
}

TEST_CASE("a joining node that overflows its buffer asks again; alone, it starts empty after the wait") {
    MemoryBus bus;
    SyncOptions options;
    options.max_buffered_ops = 4;
    Node a(bus, options);
    bus.pump();
    a.module.tick(kStart);
    CHECK_FALSE(a.module.synced());
    a.module.tick(kStart + kSecond);  // not yet: the wait is 3 s
    CHECK_FALSE(a.module.synced());

    Ops ops;
    for (int i = 0; i < 6; ++i) bus.publish(connect_op(ops, "u" + std::to_string(i), conn(i), {"room"}));
    bus.pump();  // the fifth passes the limit: the buffer is emptied, a new request is due
    CHECK_FALSE(a.module.synced());
    a.module.tick(kStart + 2 * kSecond);  // sends the new request
    REQUIRE(bus.queued() == 1);
    bus.pump();
    a.module.tick(kStart + 3 * kSecond);  // sees it came back: the wait starts
    a.module.tick(kStart + 5 * kSecond);
    CHECK_FALSE(a.module.synced());
    a.module.tick(kStart + 7 * kSecond);
    REQUIRE(a.module.synced());
    // The empty state plus what it buffered since the overflow (the fifth and sixth connects:
    // its first request and four connects filled the buffer).
    CHECK(a.module.admin_snapshot()["total_connections"] == 2);
}

TEST_CASE("a state too large for one snapshot is refused: the joiner stays syncing and asks again later") {
    MemoryBus bus;
    SyncOptions small;
    small.max_snapshot_bytes = 100;  // any real state is larger
    Node a(bus, small);
    bus.pump();
    a.module.tick(kStart);
    a.module.tick(kStart + 10 * kSecond);
    REQUIRE(a.module.synced());
    Ops ops;
    for (const Json& op : busy_history(ops)) bus.publish(op);
    bus.pump();

    Node c(bus);
    bus.pump();
    a.module.tick(kStart + 11 * kSecond);  // answers with an "error" snapshot
    bus.pump();
    c.module.tick(kStart + 11 * kSecond);
    CHECK_FALSE(c.module.synced());
    c.module.tick(kStart + 16 * kSecond);  // neither gives up nor asks again before retry_after_failure
    CHECK_FALSE(c.module.synced());
    CHECK(bus.queued() == 0);
    bus.pump();
    CHECK(c.module.admin_snapshot()["total_connections"] == 0);
}
