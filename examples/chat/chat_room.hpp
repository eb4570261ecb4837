// The chat room's rules, apart from any socket: who is in the room, nicknames, history,
// commands, and what each member is sent. The server wires it to websock; tests drive it
// directly.
//
// Wire format (JSON text frames), client to server:
//   {"type":"join","nick":"ada"}        pick a nickname (first message of a session)
//   {"type":"say","text":"hello"}       a message, or a command: /msg NICK text, /nick NEW,
//                                       /me action, /quit
// server to client (every event carries "time", milliseconds since the epoch):
//   welcome {nick, users, history, max_text_chars}   joined {nick}   left {nick}
//   renamed {from, to}
//   message {from, text}   action {from, text}   private {from, to, text}   users {users}
//   error {code, message}   (codes: bad-message, too-long, bad-nick, nick-taken, room-full, ...)
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace chat {

struct RoomLimits {
    std::size_t history_size = 50;        ///< a newcomer sees the last 50 messages
    std::size_t max_text_chars = 2000;    ///< one chat line, in characters (code points) as people count
    std::size_t max_nick_length = 24;     ///< nickname characters: letters, digits, _ - .
    std::size_t max_members = 1000;       ///< people in the room at once; a join past it gets "room-full"
};

class ChatRoom {
public:
    /// Deliver one JSON event to a member. Called with the room's lock held, so that every
    /// member sees events in the same order; it must only enqueue (websock's Client::send
    /// does exactly that and never blocks).
    using SendFn = std::function<void(std::uint64_t member, const std::string& json)>;
    /// Ask for a member's connection to be closed (after /quit).
    using CloseFn = std::function<void(std::uint64_t member)>;
    using NowFn = std::function<std::int64_t()>;  ///< milliseconds since the epoch

    ChatRoom(SendFn send, CloseFn close, RoomLimits limits = {}, NowFn now = {});

    void connect(std::uint64_t member);
    void receive(std::uint64_t member, std::string_view data, bool is_text);
    void disconnect(std::uint64_t member);

    std::size_t member_count() const;

    static bool valid_nick(std::string_view nick, std::size_t max_length);

private:
    struct Member {
        std::string nick;  // empty until joined, and again after /quit
        bool quit = false; // said /quit: its connection is closing, nothing more is heard from it
    };

    void handle_join(std::uint64_t member, Member& state, std::string_view nick);
    void handle_say(std::uint64_t member, Member& state, std::string_view text);
    void send_error(std::uint64_t member, std::string_view code, std::string_view message);
    void announce_departure(const std::string& nick);
    void broadcast(const std::string& json);
    std::string users_json_array() const;
    std::uint64_t find_nick(std::string_view nick) const;  // 0 when nobody has it
    std::size_t joined_count() const;                       // members with a nickname
    void remember(std::string json);

    SendFn send_;
    CloseFn close_;
    RoomLimits limits_;
    NowFn now_;
    mutable std::mutex mutex_;
    std::map<std::uint64_t, Member> members_;
    std::deque<std::string> history_;  // serialised message/action events
};

}  // namespace chat
