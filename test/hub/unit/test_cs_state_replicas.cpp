// The channelstream model, as a replicated state machine: garbage collection, replicas that
// apply the same operations agree (snapshots included), malformed operations change nothing,
// and random operation logs keep replicas equal and the model consistent. Each kind of
// operation is tested in test_cs_state.cpp.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "hub/channelstream/state.hpp"
#include "test/hub/unit/cs_state_test_util.hpp"

using namespace hub::channelstream;
using namespace cs_state_test;

TEST_CASE("cs state: garbage collection") {
    State state;
    Ops ops;
    const Micros ttl = 15 * kSecond;
    const Micros user_ttl = 86400 * kSecond;
    state.apply(ops.make("channel_config", configs({{"room", {{"notify_presence", true}}}})));
    state.apply(connect_op(ops, "watcher", conn(1), {"room"}));
    state.apply(attach(ops, conn(1)));
    state.apply(connect_op(ops, "idle", conn(2), {"room"}));  // never attaches

    auto gc = [&] { return state.apply(ops.make("gc", {{"conn_ttl", ttl}, {"user_ttl", user_ttl}})); };
    ops.at += 10 * kSecond;
    state.apply(ops.make("touch", {{"conn_ids", {conn(1)}}}));
    CHECK_FALSE(state.has_garbage(ops.at, ttl, user_ttl));
    CHECK(gc().closed.empty());

    ops.at += 6 * kSecond;  // idle: 16 s since connect; watcher: 6 s since its touch
    CHECK(state.has_garbage(ops.at, ttl, user_ttl));
    const Applied collected = gc();
    CHECK(collected.closed == std::vector<std::string>{conn(2)});
    REQUIRE(to(collected, conn(1)).size() == 1);
    CHECK(to(collected, conn(1))[0]["message"]["action"] == "parted");
    CHECK(state.user("idle") != nullptr);  // remembered for a day

    SUBCASE("a touch from another node does not keep a connection alive") {
        ops.at += 10 * kSecond;
        state.apply(ops.make("touch", {{"conn_ids", {conn(1)}}}, "node-z"));
        CHECK(gc().closed == std::vector<std::string>{conn(1)});
    }
    SUBCASE("users without connections are forgotten after user_ttl") {
        ops.at += user_ttl;
        state.apply(ops.make("touch", {{"conn_ids", {conn(1)}}}));
        gc();
        CHECK(state.user("idle") == nullptr);
        CHECK(state.user("watcher") != nullptr);
    }
}

TEST_CASE("cs state: replicas applying the same operations agree") {
    State a, b;
    Ops ops;
    std::vector<Json> log;
    log.push_back(ops.make("channel_config", configs({{"r", {{"notify_presence", true}, {"store_history", true}, {"notify_state", true}}}})));
    log.push_back(connect_op(ops, "x", conn(1), {"r", "s"}, {{"user_state", {{"k", 1}}}, {"state_public_keys", {"k"}}}));
    log.push_back(ops.make("attach", {{"conn_id", conn(1)}, {"kind", "ws"}}, "node-b"));
    log.push_back(connect_op(ops, "y", conn(2), {"r"}));
    log.push_back(ops.make("message", {{"messages", {message("m1", "x", "r", {{"a", 1}})}}}));
    log.push_back(ops.make("user_state", {{"user", "x"}, {"user_state", {{"k", 2}}}}));
    log.push_back(ops.make("edit", {{"messages", {{{"uuid", "m1"}, {"message", {{"a", 2}}}, {"channel", "r"}, {"edited", "e"}}}}}));
    log.push_back(ops.make("disconnect", {{"conn_id", conn(2)}}));
    ops.at += 100 * kSecond;
    log.push_back(ops.make("gc", {{"conn_ttl", 15 * kSecond}, {"user_ttl", 10 * kSecond}}));
    std::string deliveries_a, deliveries_b;
    for (const Json& op : log) {
        // through text, as the bus carries them
        const Json copy = Json::parse(op.dump());
        for (const auto& d : a.apply(op).deliveries) deliveries_a += d.conn_id + d.node + *d.payload;
        for (const auto& d : b.apply(copy).deliveries) deliveries_b += d.conn_id + d.node + *d.payload;
    }
    CHECK_FALSE(deliveries_a.empty());
    CHECK(deliveries_a == deliveries_b);
    CHECK(a.admin_info() == b.admin_info());
    CHECK(a.user_count() == 0);
}

TEST_CASE("cs state: malformed operations change nothing") {
    State state;
    Ops ops;
    CHECK(state.apply(Json::object()).status == 500);
    CHECK(state.apply(ops.make("nonsense", Json::object())).status == 500);
    const Applied a = state.apply(ops.make("connect", {{"conn_id", conn(1)}}));  // no username
    CHECK(a.status == 500);
    CHECK(a.response.contains("error"));
    CHECK(state.user_count() == 0);
    CHECK(state.connection_count() == 0);
}

TEST_CASE("cs state: random operation logs keep replicas equal and the model consistent") {
    // A seeded random mix of every operation kind, applied to two replicas through text (as
    // the bus carries them); after each one both must agree and every cross-reference hold.
    for (unsigned seed = 1; seed <= 5; ++seed) {
        CAPTURE(seed);
        std::mt19937 random(seed);
        auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
        const std::vector<std::string> users{"u0", "u1", "u2", "u3"};
        const std::vector<std::string> channels{"c0", "c1", "c2"};
        const std::vector<std::string> nodes{"n0", "n1"};
        State a({.max_history_size = 5, .max_pending_frames = 4}), b({.max_history_size = 5, .max_pending_frames = 4});
        Ops ops;
        int message_number = 0;
        for (int step = 0; step < 400; ++step) {
            ops.at += pick(3) * kSecond;
            const std::string c = conn(pick(6));
            const std::string channel = channels[pick(3)];
            const std::string user = users[pick(4)];
            const std::string node = nodes[pick(2)];
            Json op;
            switch (pick(12)) {
                case 0: op = connect_op(ops, user, c, {channel}, {{"user_state", {{"k", pick(3)}}}, {"state_public_keys", {"k"}}}); break;
                case 1: op = ops.make("subscribe", {{"conn_id", c}, {"channels", {channel}}}); break;
                case 2: op = ops.make("unsubscribe", {{"conn_id", c}, {"channels", {channel}}}); break;
                case 3: op = ops.make("user_state", {{"user", user}, {"user_state", {{"k", pick(3)}}}}); break;
                case 4: {
                    Json m = message("m" + std::to_string(message_number++), user, pick(4) == 0 ? Json() : Json(channel), {{"n", step}});
                    if (pick(3) == 0) m["pm_users"] = {users[pick(4)]};
                    if (pick(3) == 0) m["exclude_users"] = {users[pick(4)]};
                    op = ops.make("message", {{"messages", {m}}});
                    break;
                }
                case 5: op = ops.make("edit", {{"messages", {{{"uuid", "m" + std::to_string(pick(message_number + 1))}, {"channel", nullptr}, {"edited", "e"}, {"message", {{"x", 1}}}}}}}); break;
                case 6: op = ops.make("delete", {{"messages", {{{"uuid", "m" + std::to_string(pick(message_number + 1))}, {"channel", channel}}}}}); break;
                case 7: op = ops.make("channel_config", configs({{channel, {{"notify_presence", pick(2) == 0}, {"store_history", true}, {"history_size", pick(8)}, {"notify_state", true}, {"broadcast_presence_with_user_lists", true}, {"store_frames", pick(4) != 0}}}})); break;
                case 8: op = attach(ops, c, pick(2) == 0 ? "ws" : "poll", node, "att" + std::to_string(pick(3))); break;
                case 9: op = detach(ops, c, node, "att" + std::to_string(pick(3))); break;
                case 10: op = ops.make("touch", {{"conn_ids", {c}}}, node); break;
                default: op = pick(2) == 0 ? ops.make("gc", {{"conn_ttl", 15 * kSecond}, {"user_ttl", 60 * kSecond}}) : ops.make("disconnect", {{"conn_id", c}}); break;
            }
            const Applied ra = a.apply(op);
            const Applied rb = b.apply(Json::parse(op.dump()));
            REQUIRE(ra.status == rb.status);
            REQUIRE(ra.response == rb.response);
            REQUIRE(ra.closed == rb.closed);
            REQUIRE(ra.deliveries.size() == rb.deliveries.size());
            for (std::size_t i = 0; i < ra.deliveries.size(); ++i) {
                REQUIRE(ra.deliveries[i].conn_id == rb.deliveries[i].conn_id);
                REQUIRE(ra.deliveries[i].node == rb.deliveries[i].node);
                REQUIRE(*ra.deliveries[i].payload == *rb.deliveries[i].payload);
                const Json delivered = Json::parse(*ra.deliveries[i].payload);
                REQUIRE(delivered.contains("uuid"));
                REQUIRE_FALSE(delivered.contains("pm_users"));
            }
            REQUIRE(a.admin_info() == b.admin_info());
            // consistency: channel members are connections of that user, and back
            for (const std::string& name : channels) {
                const State::Channel* ch = a.channel(name);
                if (ch == nullptr) continue;
                REQUIRE(ch->history.size() <= static_cast<std::size_t>(ch->config.history_size));
                for (const auto& [username, conns] : ch->connections) {
                    REQUIRE_FALSE(conns.empty());
                    for (const std::string& id : conns) {
                        const State::Connection* connection = a.connection(id);
                        REQUIRE(connection != nullptr);
                        REQUIRE(connection->username == username);
                        REQUIRE(connection->channels.contains(name));
                    }
                }
            }
            for (const std::string& username : users) {
                const State::User* u = a.user(username);
                if (u == nullptr) continue;
                for (const std::string& id : u->connections) {
                    REQUIRE(a.connection(id) != nullptr);
                    REQUIRE(a.connection(id)->username == username);
                    REQUIRE(a.connection(id)->pending.size() <= 4);
                }
            }
        }
        CHECK(a.total_unique_messages() > 0);
    }
}
