// The channelstream model on values: operations in, state, responses and deliveries out.
// No sockets, no clock: every time is in the operations. This file: each kind of operation;
// garbage collection, replicas and random logs are in test_cs_state_replicas.cpp.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "hub/channelstream/state.hpp"
#include "test/hub/unit/cs_state_test_util.hpp"

using namespace hub::channelstream;
using namespace cs_state_test;

TEST_CASE("cs state: connect") {
    State state;
    Ops ops;
    SUBCASE("creates user, connection and channels; answers as channelstream does") {
        const Applied a = state.apply(connect_op(ops, "username", conn(1), {"aB", "a"},
                                                 {{"fresh_user_state", {{"key", "foo"}}},
                                                  {"user_state", {{"bar", "baz"}}},
                                                  {"state_public_keys", {"bar"}},
                                                  {"channel_configs", {{"a", {{"store_history", true}, {"history_size", 2}}}}}}));
        CHECK(a.status == 200);
        const Json& r = a.response;
        CHECK(r["conn_id"] == conn(1));
        CHECK(r["username"] == "username");
        CHECK(r["channels"] == Json({"a", "aB"}));
        CHECK(r["state"] == Json({{"bar", "baz"}, {"key", "foo"}}));
        CHECK(r["public_state"] == Json({{"bar", "baz"}}));
        const Json& a_info = r["channels_info"]["channels"]["a"];
        CHECK(a_info["total_users"] == 1);
        CHECK(a_info["total_connections"] == 1);
        CHECK(a_info["users"] == Json({"username"}));
        CHECK(a_info["history"] == Json::array());
        CHECK(a_info["name"] == "a");
        CHECK(a_info["long_name"].is_null());
        CHECK(a_info["last_active"] == "2020-09-13T12:26:40");
        CHECK(a_info["uuid"].get<std::string>().size() == 36);
        CHECK(a_info["settings"] == Json({{"notify_presence", false},
                                          {"store_history", true},
                                          {"history_size", 2},
                                          {"broadcast_presence_with_user_lists", false},
                                          {"notify_state", false},
                                          {"store_frames", true}}));
        CHECK(r["channels_info"]["channels"]["aB"]["settings"]["store_history"] == false);
        CHECK(r["channels_info"]["users"] == Json::array({{{"state", {{"bar", "baz"}, {"key", "foo"}}}, {"user", "username"}}}));
        CHECK(state.connection_count() == 1);
        CHECK(state.user_count() == 1);
        CHECK(state.channel_count() == 2);
    }
    SUBCASE("fresh_user_state only for a new user; user_state always; info return_public_state") {
        state.apply(connect_op(ops, "u", conn(1), {"a"}, {{"fresh_user_state", {{"k", 1}}}}));
        const Applied a = state.apply(connect_op(ops, "u", conn(2), {"a"},
                                                 {{"fresh_user_state", {{"k", 2}, {"f", 1}}},
                                                  {"user_state", {{"s", true}}},
                                                  {"state_public_keys", {"s"}},
                                                  {"info", {{"return_public_state", true}, {"include_users", true}}}}));
        CHECK(a.response["state"] == Json({{"k", 1}, {"s", true}}));
        CHECK(a.response["channels_info"]["users"][0]["state"] == Json({{"s", true}}));
        CHECK(a.response["channels_info"]["channels"]["a"]["total_connections"] == 2);
        CHECK(a.response["channels_info"]["channels"]["a"]["total_users"] == 1);
    }
    SUBCASE("info include_users off: no users, total_users 0 (channelstream's count)") {
        const Applied a = state.apply(connect_op(ops, "u", conn(1), {"a"}, {{"info", {{"include_users", false}}}}));
        CHECK(a.response["channels_info"]["channels"]["a"]["users"] == Json::array());
        CHECK(a.response["channels_info"]["channels"]["a"]["total_users"] == 0);
        CHECK(a.response["channels_info"]["users"] == Json::array());
    }
    SUBCASE("the same conn_id again keeps the connection and what it is owed") {
        state.apply(connect_op(ops, "u", conn(1), {"a"}));
        state.apply(ops.make("message", {{"messages", {message("m1", "sys", "a", {{"t", 1}})}}}));
        state.apply(connect_op(ops, "u", conn(1), {"b"}));
        CHECK(state.connection_count() == 1);
        CHECK(state.connection(conn(1))->channels == std::set<std::string>{"a", "b"});
        CHECK(state.connection(conn(1))->pending.size() == 1);
        CHECK(state.user("u")->connections.size() == 1);
    }
    SUBCASE("the same conn_id under another user name replaces the connection") {
        state.apply(connect_op(ops, "u", conn(1), {"a"}));
        state.apply(connect_op(ops, "v", conn(1), {"b"}));
        CHECK(state.connection(conn(1))->username == "v");
        CHECK(state.user("u")->connections.empty());
        CHECK(state.channel("a")->connections.empty());
    }
}

TEST_CASE("cs state: messages to channels and users") {
    State state;
    Ops ops;
    state.apply(ops.make("channel_config", configs({{"chat", {{"store_history", true}, {"history_size", 2}}}})));
    state.apply(connect_op(ops, "alice", conn(1), {"chat"}));
    state.apply(connect_op(ops, "bob", conn(2), {"chat"}));
    state.apply(connect_op(ops, "carol", conn(3), {"other"}));
    for (int i = 1; i <= 3; ++i) state.apply(attach(ops, conn(i)));

    SUBCASE("a channel message reaches every subscriber with channelstream's fields") {
        const Applied a = state.apply(ops.make("message", {{"messages", {message("m1", "sys", "chat", {{"text", "hi"}})}}}));
        REQUIRE(to(a, conn(1)).size() == 1);
        CHECK(to(a, conn(2)).size() == 1);
        CHECK(to(a, conn(3)).empty());
        const Json m = to(a, conn(1))[0];
        CHECK(m == Json({{"uuid", "m1"},
                         {"timestamp", "2020-09-13T12:26:40"},
                         {"user", "sys"},
                         {"message", {{"text", "hi"}}},
                         {"channel", "chat"},
                         {"type", "message"},
                         {"edited", nullptr},
                         {"catchup", false}}));
        CHECK(a.deliveries[0].node == kNode);
        // one serialisation shared by every receiver
        CHECK(a.deliveries[0].payload == a.deliveries[1].payload);
        CHECK(state.total_unique_messages() == 1);
        CHECK(state.total_messages() == 2);
    }
    SUBCASE("history keeps history_size messages, with their delivery fields; no_history skips it") {
        for (int i = 1; i <= 3; ++i)
            state.apply(ops.make("message", {{"messages", {message("m" + std::to_string(i), "sys", "chat", {{"n", i}})}}}));
        state.apply(ops.make("message", {{"messages", {message("m4", "sys", "chat", {{"n", 4}}, {{"no_history", true}})}}}));
        const auto& history = state.channel("chat")->history;
        REQUIRE(history.size() == 2);
        CHECK(history[0]["uuid"] == "m2");
        CHECK(history[1]["uuid"] == "m3");
        CHECK(history[1]["pm_users"] == Json::array());
        CHECK(history[1]["no_history"] == false);
    }
    SUBCASE("pm_users in a channel: only those users' connections") {
        const Applied a = state.apply(
            ops.make("message", {{"messages", {message("m1", "sys", "chat", {{"t", 1}}, {{"pm_users", {"bob"}}})}}}));
        CHECK(to(a, conn(1)).empty());
        CHECK(to(a, conn(2)).size() == 1);
        CHECK(to(a, conn(2))[0].count("pm_users") == 0);  // delivery fields never leak to clients
    }
    SUBCASE("exclude_users") {
        const Applied a = state.apply(
            ops.make("message", {{"messages", {message("m1", "sys", "chat", {{"t", 1}}, {{"exclude_users", {"alice"}}})}}}));
        CHECK(to(a, conn(1)).empty());
        CHECK(to(a, conn(2)).size() == 1);
    }
    SUBCASE("pm_users without a channel: every connection of those users, wherever they are") {
        const Applied a = state.apply(
            ops.make("message", {{"messages", {message("m1", "sys", nullptr, {{"t", 1}}, {{"pm_users", {"carol", "nobody"}}})}}}));
        REQUIRE(to(a, conn(3)).size() == 1);
        CHECK(to(a, conn(3))[0]["channel"].is_null());
        CHECK(to(a, conn(1)).empty());
        CHECK(state.total_messages() == 1);
    }
    SUBCASE("a message to a channel nobody created goes nowhere") {
        const Applied a = state.apply(ops.make("message", {{"messages", {message("m1", "sys", "nope", {{"t", 1}})}}}));
        CHECK(a.deliveries.empty());
        CHECK(state.channel("nope") == nullptr);
    }
}

TEST_CASE("cs state: presence") {
    State state;
    Ops ops;
    state.apply(ops.make("channel_config",
                         configs({{"room", {{"notify_presence", true}, {"broadcast_presence_with_user_lists", true}}}})));
    state.apply(connect_op(ops, "alice", conn(1), {"room"}, {{"user_state", {{"color", "red"}, {"secret", 1}}}, {"state_public_keys", {"color"}}}));
    state.apply(attach(ops, conn(1)));
    ops.at += kSecond;

    const Applied joined = state.apply(connect_op(ops, "bob", conn(2), {"room"}, {{"user_state", {{"color", "blue"}}}, {"state_public_keys", {"color"}}}));
    SUBCASE("joined goes to the others, with the joiner's public state and the user list") {
        REQUIRE(to(joined, conn(1)).size() == 1);
        const Json p = to(joined, conn(1))[0];
        CHECK(p["type"] == "presence");
        CHECK(p["user"] == "bob");
        CHECK(p["channel"] == "room");
        CHECK(p["message"] == Json({{"action", "joined"}}));
        CHECK(p["state"] == Json({{"color", "blue"}}));
        CHECK(p["timestamp"] == "2020-09-13T12:26:41");
        CHECK(p["catchup"] == false);
        CHECK(p["users"] == Json::array({{{"user", "alice"}, {"state", {{"color", "red"}}}}, {{"user", "bob"}, {"state", {{"color", "blue"}}}}}));
        CHECK(p["uuid"].get<std::string>().size() == 36);
        // the joiner itself is excluded (and bob is detached: it is kept for him otherwise)
        CHECK(state.connection(conn(2))->pending.empty());
    }
    SUBCASE("a second connection of the same user is not a new join") {
        state.apply(attach(ops, conn(2)));
        const Applied again = state.apply(connect_op(ops, "bob", conn(3), {"room"}));
        CHECK(to(again, conn(1)).empty());
    }
    SUBCASE("parted when the user's last connection leaves; user list without the leaver") {
        state.apply(connect_op(ops, "bob", conn(3), {"room"}));
        const Applied one = state.apply(ops.make("disconnect", {{"conn_id", conn(2)}}));
        CHECK(to(one, conn(1)).empty());
        CHECK(one.closed == std::vector<std::string>{conn(2)});
        const Applied last = state.apply(ops.make("unsubscribe", {{"conn_id", conn(3)}, {"channels", {"room"}}, {"info", Json::object()}}));
        REQUIRE(to(last, conn(1)).size() == 1);
        const Json p = to(last, conn(1))[0];
        CHECK(p["message"]["action"] == "parted");
        CHECK(p["state"].is_null());
        CHECK(p["users"] == Json::array({{{"user", "alice"}, {"state", {{"color", "red"}}}}}));
        CHECK(last.response["unsubscribed_from"] == Json({"room"}));
        CHECK(last.response["channels"] == Json::array());
        CHECK(last.response["channels_info"] == Json({{"channels", Json::object()}, {"users", Json::array()}}));
    }
    SUBCASE("unsubscribing from a channel one is not in says nothing") {
        state.apply(ops.make("channel_config", configs({{"quiet", {{"notify_presence", true}}}})));
        const Applied a = state.apply(ops.make("unsubscribe", {{"conn_id", conn(1)}, {"channels", {"quiet", "none"}}}));
        CHECK(a.deliveries.empty());
        CHECK(a.response["unsubscribed_from"] == Json::array());
    }
}

TEST_CASE("cs state: subscribe") {
    State state;
    Ops ops;
    state.apply(connect_op(ops, "test", conn(1), {"a", "aB"}, {{"user_state", {{"bar", "baz"}}}, {"fresh_user_state", {{"key", "foo"}}}}));
    const Applied a = state.apply(ops.make(
        "subscribe", {{"conn_id", conn(1)}, {"channels", {"b", "a"}}, {"channel_configs", {{"b", {{"notify_presence", true}}}}}}));
    CHECK(a.response["channels"] == Json({"a", "aB", "b"}));
    CHECK(a.response["subscribed_to"] == Json({"b"}));
    CHECK(a.response["channels_info"]["users"] == Json::array({{{"state", {{"bar", "baz"}, {"key", "foo"}}}, {"user", "test"}}}));
    CHECK(a.response["channels_info"]["channels"]["b"]["settings"]["notify_presence"] == true);
    CHECK(a.response["channels_info"]["channels"]["a"]["total_connections"] == 1);
    const Applied unknown = state.apply(ops.make("subscribe", {{"conn_id", conn(9)}, {"channels", {"x"}}}));
    CHECK(unknown.status == 422);
    CHECK(unknown.response == Json({{"conn_id", {"Unknown connection"}}}));
}

TEST_CASE("cs state: user state") {
    State state;
    Ops ops;
    state.apply(ops.make("channel_config", configs({{"loud", {{"notify_state", true}}}, {"quiet", Json::object()}})));
    state.apply(connect_op(ops, "test", conn(1), {"loud", "quiet"}, {{"fresh_user_state", {{"key", "foo"}}}, {"user_state", {{"bar", "baz"}}}, {"state_public_keys", {"bar"}}}));
    state.apply(connect_op(ops, "watcher", conn(2), {"loud", "quiet"}));
    state.apply(attach(ops, conn(2)));

    const Applied a = state.apply(ops.make(
        "user_state", {{"user", "test"}, {"user_state", {{"bar", 2}, {"private", "im_private"}, {"key", "foo"}}}, {"state_public_keys", {"avatar", "bar"}}}));
    SUBCASE("answer: whole state, what changed, the public keys") {
        CHECK(a.response["user_state"] == Json({{"bar", 2}, {"key", "foo"}, {"private", "im_private"}}));
        CHECK(a.response["changed_state"] == Json::array({{{"key", "bar"}, {"value", 2}}, {{"key", "private"}, {"value", "im_private"}}}));
        CHECK(a.response["public_keys"] == Json({"avatar", "bar"}));
    }
    SUBCASE("user_state_change only in notify_state channels, only public keys") {
        const auto got = to(a, conn(2));
        REQUIRE(got.size() == 1);
        CHECK(got[0]["type"] == "user_state_change");
        CHECK(got[0]["channel"] == "loud");
        CHECK(got[0]["user"] == "test");
        CHECK(got[0]["message"]["state"] == Json({{"bar", 2}}));
        CHECK(got[0]["message"]["changed"] == Json::array({{{"key", "bar"}, {"value", 2}}}));
    }
    SUBCASE("no change, no message; state_public_keys null keeps the keys") {
        const Applied same = state.apply(ops.make("user_state", {{"user", "test"}, {"user_state", {{"bar", 2}}}, {"state_public_keys", nullptr}}));
        CHECK(same.deliveries.empty());
        CHECK(same.response["changed_state"] == Json::array());
        CHECK(same.response["public_keys"] == Json({"avatar", "bar"}));
    }
    SUBCASE("unknown user") {
        const Applied unknown = state.apply(ops.make("user_state", {{"user", "blabla"}, {"user_state", Json::object()}}));
        CHECK(unknown.status == 422);
        CHECK(unknown.response == Json({{"user", {"Unknown user"}}}));
    }
}

TEST_CASE("cs state: detached connections and catch-up") {
    State state({.max_history_size = 1000, .max_pending_frames = 3});
    Ops ops;
    state.apply(ops.make("channel_config", configs({{"kept", Json::object()}, {"unkept", {{"store_frames", false}}}})));
    state.apply(connect_op(ops, "u", conn(1), {"kept", "unkept"}));

    SUBCASE("what arrives before the first attach is handed over on attach, marked catchup") {
        state.apply(ops.make("message", {{"messages", {message("m1", "s", "kept", {{"n", 1}}), message("m2", "s", "unkept", {{"n", 2}})}}}));
        CHECK(state.connection(conn(1))->pending.size() == 1);  // store_frames off: not kept
        const Applied a = state.apply(attach(ops, conn(1)));
        const auto got = to(a, conn(1));
        REQUIRE(got.size() == 1);
        CHECK(got[0]["uuid"] == "m1");
        CHECK(got[0]["catchup"] == true);
        CHECK(state.connection(conn(1))->pending.empty());
        CHECK(state.connection(conn(1))->node == kNode);
    }
    SUBCASE("after a lost WebSocket: catch-up, in order, edits and deletes included") {
        state.apply(ops.make("channel_config", configs({{"kept", {{"store_history", true}}}})));
        state.apply(attach(ops, conn(1)));
        state.apply(ops.make("message", {{"messages", {message("m1", "s", "kept", {{"n", 1}})}}}));
        state.apply(detach(ops, conn(1)));
        state.apply(ops.make("message", {{"messages", {message("m2", "s", "kept", {{"n", 2}})}}}));
        state.apply(ops.make("edit", {{"messages", {{{"uuid", "m1"}, {"message", {{"n", 10}}}, {"edited", "2020-09-13T12:27:00"}, {"channel", "kept"}}}}}));
        state.apply(ops.make("delete", {{"messages", {{{"uuid", "m2"}, {"channel", nullptr}}}}}));
        const Applied a = state.apply(attach(ops, conn(1), "ws", "node-b"));
        const auto got = to(a, conn(1));
        REQUIRE(got.size() == 3);
        CHECK(got[0]["uuid"] == "m2");
        CHECK(got[0]["type"] == "message");
        CHECK(got[1]["type"] == "message:edit");
        CHECK(got[1]["uuid"] == "m1");
        CHECK(got[1]["message"] == Json({{"n", 10}}));
        CHECK(got[1]["edited"] == "2020-09-13T12:27:00");
        CHECK(got[2]["type"] == "message:delete");
        CHECK(got[2]["uuid"] == "m2");
        CHECK(got[2]["channel"] == "kept");  // found through the history
        for (const auto& m : got) CHECK(m["catchup"] == true);
        CHECK(a.deliveries[0].node == "node-b");  // whichever node it re-attached to
        // the history saw the edit and the delete
        const auto& history = state.channel("kept")->history;
        REQUIRE(history.size() == 1);
        CHECK(history[0]["message"] == Json({{"n", 10}}));
        CHECK(history[0]["edited"] == "2020-09-13T12:27:00");
    }
    SUBCASE("between two long polls messages are kept but are not catch-up") {
        state.apply(attach(ops, conn(1), "poll"));
        state.apply(detach(ops, conn(1)));
        state.apply(ops.make("message", {{"messages", {message("m1", "s", "kept", {{"n", 1}})}}}));
        const auto got = to(state.apply(attach(ops, conn(1), "poll")), conn(1));
        REQUIRE(got.size() == 1);
        CHECK(got[0]["catchup"] == false);
    }
    SUBCASE("a long poll answers once: after the messages it got, the next ones wait for the next poll") {
        state.apply(attach(ops, conn(1), "poll"));
        const Applied first = state.apply(ops.make("message", {{"messages", {message("m1", "s", "kept", {{"n", 1}})}}}));
        CHECK(to(first, conn(1)).size() == 1);
        CHECK(state.connection(conn(1))->node.empty());
        state.apply(ops.make("message", {{"messages", {message("m2", "s", "kept", {{"n", 2}})}}}));
        const auto next = to(state.apply(attach(ops, conn(1), "poll", kNode, "a2")), conn(1));
        REQUIRE(next.size() == 1);
        CHECK(next[0]["uuid"] == "m2");
        CHECK(next[0]["catchup"] == false);
        CHECK(state.connection(conn(1))->node.empty());  // answered by its catch-up: detached again
    }
    SUBCASE("requeue: what a node could not hand over goes back in front, as catch-up") {
        state.apply(ops.make("message", {{"messages", {message("m2", "s", "kept", {{"n", 2}})}}}));
        state.apply(ops.make("requeue", {{"conn_id", conn(1)}, {"frames", Json::array({{{"uuid", "m1"}, {"catchup", false}}})}}));
        const auto got = to(state.apply(attach(ops, conn(1))), conn(1));
        REQUIRE(got.size() == 2);
        CHECK(got[0]["uuid"] == "m1");
        CHECK(got[0]["catchup"] == true);
        CHECK(got[1]["uuid"] == "m2");
        // attached again by then: handed over at once
        const Applied now = state.apply(ops.make("requeue", {{"conn_id", conn(1)}, {"frames", Json::array({{{"uuid", "m0"}}})}}));
        REQUIRE(to(now, conn(1)).size() == 1);
        CHECK(to(now, conn(1))[0]["catchup"] == true);
    }
    SUBCASE("a detached connection keeps at most max_pending_frames, the newest") {
        for (int i = 1; i <= 5; ++i)
            state.apply(ops.make("message", {{"messages", {message("m" + std::to_string(i), "s", "kept", {{"n", i}})}}}));
        CHECK(state.connection(conn(1))->pending_dropped == 2);
        const auto got = to(state.apply(attach(ops, conn(1))), conn(1));
        REQUIRE(got.size() == 3);
        CHECK(got[0]["uuid"] == "m3");
        CHECK(got[2]["uuid"] == "m5");
    }
    SUBCASE("a detach from a node the connection already left changes nothing") {
        state.apply(attach(ops, conn(1), "ws", "node-b"));
        state.apply(detach(ops, conn(1), "node-a"));
        CHECK(state.connection(conn(1))->node == "node-b");
        state.apply(detach(ops, conn(1), "node-b", "an-older-socket"));
        CHECK(state.connection(conn(1))->node == "node-b");
        state.apply(detach(ops, conn(1), "node-b"));
        CHECK(state.connection(conn(1))->node.empty());
    }
    SUBCASE("attaching an unknown connection") {
        const Applied a = state.apply(attach(ops, conn(7)));
        CHECK(a.response["attached"] == false);
    }
}

TEST_CASE("cs state: edit and delete") {
    State state;
    Ops ops;
    state.apply(ops.make("channel_config", configs({{"test", {{"store_history", true}}}})));
    state.apply(connect_op(ops, "u", conn(1), {"test"}));
    state.apply(connect_op(ops, "v", conn(2), {"test"}));
    state.apply(attach(ops, conn(1)));
    state.apply(attach(ops, conn(2)));
    state.apply(ops.make("message", {{"messages", {message("m1", "system", "test", {{"text", "test"}})}}}));

    SUBCASE("edit changes only the editable keys given, and reaches the channel") {
        const Applied a = state.apply(ops.make(
            "edit", {{"messages",
                      {{{"uuid", "m1"}, {"user", "edited_system"}, {"channel", "test"}, {"timestamp", "2010-01-01T01:01:00"},
                        {"edited", "2010-01-01T01:02:00"}, {"message", {{"text", "edited_message"}}}, {"pm_users", Json::array()},
                        {"exclude_users", {"v"}}}}}}));
        const Json& stored = state.channel("test")->history[0];
        CHECK(stored["user"] == "edited_system");
        CHECK(stored["message"] == Json({{"text", "edited_message"}}));
        CHECK(stored["timestamp"] == "2010-01-01T01:01:00");
        CHECK(stored["edited"] == "2010-01-01T01:02:00");
        CHECK(stored["type"] == "message");
        REQUIRE(to(a, conn(1)).size() == 1);
        CHECK(to(a, conn(1))[0]["type"] == "message:edit");
        CHECK(to(a, conn(1))[0]["user"] == "edited_system");
        CHECK(to(a, conn(2)).empty());  // exclude_users applies to the edit
    }
    SUBCASE("delete removes it from history and tells the channel") {
        const Applied a = state.apply(ops.make("delete", {{"messages", {{{"uuid", "m1"}, {"channel", "test"}}}}}));
        CHECK(state.channel("test")->history.empty());
        REQUIRE(to(a, conn(2)).size() == 1);
        CHECK(to(a, conn(2))[0] == Json({{"uuid", "m1"}, {"type", "message:delete"}, {"channel", "test"}, {"catchup", false}}));
    }
    SUBCASE("an unknown uuid still announces the change to the channel named") {
        const Applied a = state.apply(ops.make("delete", {{"messages", {{{"uuid", "zz"}, {"channel", "test"}}}}}));
        CHECK(to(a, conn(1)).size() == 1);
        CHECK(state.channel("test")->history.size() == 1);
    }
    SUBCASE("a private message edited without a channel reaches its users") {
        state.apply(ops.make("message", {{"messages", {message("p1", "system", nullptr, {{"t", 1}}, {{"pm_users", {"v"}}})}}}));
        const Applied a = state.apply(ops.make("edit", {{"messages", {{{"uuid", "p1"}, {"channel", nullptr}, {"pm_users", {"v"}}, {"edited", "x"}}}}}));
        CHECK(to(a, conn(1)).empty());
        REQUIRE(to(a, conn(2)).size() == 1);
        CHECK(to(a, conn(2))[0]["channel"].is_null());
    }
}

TEST_CASE("cs state: channel_config") {
    State state({.max_history_size = 5, .max_pending_frames = 100});
    Ops ops;
    const Applied created = state.apply(ops.make(
        "channel_config", configs({{"chanx1", {{"notify_presence", true}, {"store_history", true}, {"history_size", 3},
                                               {"broadcast_presence_with_user_lists", true}, {"notify_state", true}, {"store_frames", false}}}})));
    const Json& settings = created.response["channels"]["chanx1"]["settings"];
    CHECK(settings == Json({{"notify_presence", true}, {"store_history", true}, {"history_size", 3},
                            {"broadcast_presence_with_user_lists", true}, {"notify_state", true}, {"store_frames", false}}));
    CHECK(created.response["users"] == Json::array());
    CHECK(created.response["channels"]["chanx1"]["history"] == Json::array());

    state.apply(connect_op(ops, "u", conn(1), {"chanx1"}));
    for (int i = 0; i < 3; ++i) state.apply(ops.make("message", {{"messages", {message("m" + std::to_string(i), "s", "chanx1", Json::object())}}}));
    CHECK(state.channel("chanx1")->history.size() == 3);
    SUBCASE("reconfiguring: history cut to the new size, the rest to defaults") {
        const Applied a = state.apply(ops.make("channel_config", configs({{"chanx1", {{"store_history", true}, {"history_size", 1}}}})));
        CHECK(state.channel("chanx1")->history.size() == 1);
        CHECK(state.channel("chanx1")->history[0]["uuid"] == "m2");
        CHECK(a.response["channels"]["chanx1"]["settings"]["notify_presence"] == false);
    }
    SUBCASE("history_size above the limit is cut to it") {
        state.apply(ops.make("channel_config", configs({{"chanx1", {{"history_size", 1000}}}})));
        CHECK(state.channel("chanx1")->config.history_size == 5);
    }
}
