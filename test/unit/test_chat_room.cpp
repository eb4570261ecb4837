// The chat room's rules (examples/chat/chat_room.cpp), driven without sockets: every event
// a member would be sent is recorded and checked.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "examples/chat/chat_room.hpp"

using nlohmann::json;

namespace {

struct Room {
    std::map<std::uint64_t, std::vector<json>> inbox;
    std::set<std::uint64_t> closed;
    chat::ChatRoom room{[this](std::uint64_t member, const std::string& event) { inbox[member].push_back(json::parse(event)); },
                        [this](std::uint64_t member) { closed.insert(member); }, chat::RoomLimits{}, [] { return 1000; }};

    void join(std::uint64_t id, const std::string& nick) {
        room.connect(id);
        say_raw(id, json{{"type", "join"}, {"nick", nick}}.dump());
    }
    void say(std::uint64_t id, const std::string& text) { say_raw(id, json{{"type", "say"}, {"text", text}}.dump()); }
    void say_raw(std::uint64_t id, const std::string& data, bool is_text = true) { room.receive(id, data, is_text); }
    json last(std::uint64_t id) { return inbox[id].empty() ? json() : inbox[id].back(); }
    std::vector<json> of_type(std::uint64_t id, const std::string& type) {
        std::vector<json> found;
        for (const auto& event : inbox[id])
            if (event["type"] == type) found.push_back(event);
        return found;
    }
    void clear() { inbox.clear(); }
};

}  // namespace

TEST_CASE("chat room: joining") {
    Room r;
    r.join(1, "ada");
    SUBCASE("the newcomer is welcomed with the user list and everyone is told") {
        const auto welcome = r.of_type(1, "welcome");
        REQUIRE(welcome.size() == 1);
        CHECK(welcome[0]["nick"] == "ada");
        CHECK(welcome[0]["users"] == json::array({"ada"}));
        r.join(2, "grace");
        CHECK(r.of_type(1, "joined").back()["nick"] == "grace");
        CHECK(r.of_type(1, "users").back()["users"] == json::array({"ada", "grace"}));
    }
    SUBCASE("a nickname is unique without regard to case") {
        r.join(2, "ADA");
        CHECK(r.last(2)["type"] == "error");
        CHECK(r.last(2)["code"] == "nick-taken");
        CHECK(r.of_type(2, "welcome").empty());
    }
    SUBCASE("bad nicknames are refused") {
        for (const char* nick : {"", "has space", "<b>", "abcdefghijklmnopqrstuvwxyz"}) {
            r.join(10, nick);
            CHECK(r.last(10)["code"] == "bad-nick");
        }
    }
    SUBCASE("saying anything before joining is refused") {
        r.room.connect(3);
        r.say(3, "hello");
        CHECK(r.last(3)["code"] == "not-joined");
        CHECK(r.of_type(1, "message").empty());
    }
}

TEST_CASE("chat room: messages and commands") {
    Room r;
    r.join(1, "ada");
    r.join(2, "grace");
    r.join(3, "linus");
    r.clear();
    SUBCASE("a message reaches everyone, with its author and time") {
        r.say(1, "hello <b>world</b>");
        for (std::uint64_t id : {1, 2, 3}) {
            const auto messages = r.of_type(id, "message");
            REQUIRE(messages.size() == 1);
            CHECK(messages[0]["from"] == "ada");
            CHECK(messages[0]["text"] == "hello <b>world</b>");  // the page renders it as text
            CHECK(messages[0]["time"] == 1000);
        }
    }
    SUBCASE("/msg reaches only its target and the sender") {
        r.say(1, "/msg grace psst");
        CHECK(r.of_type(2, "private").size() == 1);
        CHECK(r.of_type(2, "private")[0]["text"] == "psst");
        CHECK(r.of_type(1, "private").size() == 1);
        CHECK(r.of_type(3, "private").empty());
        r.say(1, "/msg nobody hi");
        CHECK(r.last(1)["code"] == "no-such-nick");
    }
    SUBCASE("/nick renames, tells everyone, and refuses a taken name") {
        r.say(1, "/nick ada2");
        CHECK(r.of_type(3, "renamed").back()["from"] == "ada");
        CHECK(r.of_type(3, "renamed").back()["to"] == "ada2");
        CHECK(r.of_type(3, "users").back()["users"] == json::array({"ada2", "grace", "linus"}));
        r.say(2, "/nick LINUS");
        CHECK(r.last(2)["code"] == "nick-taken");
    }
    SUBCASE("/me is an action") {
        r.say(2, "/me waves");
        CHECK(r.of_type(1, "action").back()["text"] == "waves");
    }
    SUBCASE("/quit leaves at once: announced before the connection has closed, and only once") {
        r.say(3, "/quit");
        CHECK(r.closed.count(3) == 1);
        // the others' lists are right while the quitter's connection is still closing
        REQUIRE(r.of_type(1, "left").size() == 1);
        CHECK(r.of_type(1, "left").back()["nick"] == "linus");
        CHECK(r.of_type(1, "users").back()["users"] == json::array({"ada", "grace"}));
        // what the quitter sends meanwhile goes nowhere
        r.say(3, "still here?");
        CHECK(r.of_type(1, "message").empty());
        r.room.disconnect(3);
        CHECK(r.of_type(1, "left").size() == 1);
    }
    SUBCASE("the length limit counts characters, not bytes, and welcome tells it") {
        std::string accents;
        for (int i = 0; i < 2000; ++i) accents += "\u00e9";  // 2,000 characters, 4,000 bytes
        r.say(1, accents);
        CHECK(r.of_type(2, "message").back()["text"] == accents);
        r.say(1, accents + "!");
        CHECK(r.last(1)["code"] == "too-long");
        r.join(4, "barbara");
        CHECK(r.of_type(4, "welcome").back()["max_text_chars"] == 2000);
    }
    SUBCASE("bad input gets an error event, never a crash") {
        for (const char* raw : {"not json", "[]", "{}", R"({"type":5})", R"({"type":"say"})", R"({"type":"say","text":7})",
                                R"({"type":"dance"})", "\"just a string\""}) {
            r.say_raw(1, raw);
            CHECK(r.last(1)["type"] == "error");
        }
        r.say_raw(1, "\x01\x02", false);
        CHECK(r.last(1)["code"] == "bad-message");
        r.say(1, std::string(2001, 'x'));
        CHECK(r.last(1)["code"] == "too-long");
        r.say(1, "/unknown");
        CHECK(r.last(1)["code"] == "unknown-command");
        // it names the command it did not know, then lists the ones it does
        const std::string text = r.last(1)["message"];
        CHECK(text.find("unknown command /unknown") == 0);
        CHECK(text.find("/msg") != std::string::npos);
        CHECK(r.of_type(2, "message").empty());
    }
}

TEST_CASE("chat room: a newcomer sees the last 50 messages") {
    Room r;
    r.join(1, "ada");
    for (int i = 0; i < 60; ++i) r.say(1, "line " + std::to_string(i));
    r.join(2, "grace");
    const auto welcome = r.of_type(2, "welcome");
    REQUIRE(welcome.size() == 1);
    const auto& history = welcome[0]["history"];
    REQUIRE(history.size() == 50);
    CHECK(history.front()["text"] == "line 10");
    CHECK(history.back()["text"] == "line 59");
}

TEST_CASE("chat room: max_members bounds the room, and a place that frees up can be taken") {
    // A declared limit the room did not enforce: 1,001 joins all got in (red-team round 2).
    std::map<std::uint64_t, std::vector<json>> inbox;
    chat::RoomLimits limits;
    limits.max_members = 2;
    chat::ChatRoom room{[&](std::uint64_t member, const std::string& event) { inbox[member].push_back(json::parse(event)); },
                        [](std::uint64_t) {}, limits, [] { return 1000; }};
    // The answer to a join: the member's first event after it (welcome or error; the room's
    // joined and users broadcasts follow a welcome).
    auto answer_to_join = [&](std::uint64_t id, const std::string& nick) {
        const std::size_t before = inbox[id].size();
        room.receive(id, json{{"type", "join"}, {"nick", nick}}.dump(), true);
        return inbox[id].size() > before ? inbox[id][before] : json();
    };
    auto join = [&](std::uint64_t id, const std::string& nick) {
        room.connect(id);
        return answer_to_join(id, nick);
    };
    CHECK(join(1, "ada")["type"] == "welcome");
    CHECK(join(2, "grace")["type"] == "welcome");
    // Connected but not joined does not count: the third connection is refused only at its join.
    const json refused = join(3, "linus");
    CHECK(refused["type"] == "error");
    CHECK(refused["code"] == "room-full");
    for (const auto& event : inbox[1]) CHECK(event.value("nick", "") != "linus");  // nobody was told linus joined
    room.disconnect(1);
    const json welcome = answer_to_join(3, "linus");
    CHECK(welcome["type"] == "welcome");
    CHECK(welcome["users"] == json::array({"grace", "linus"}));
}
