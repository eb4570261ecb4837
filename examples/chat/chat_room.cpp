#include "chat_room.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace chat {

using json = nlohmann::json;

namespace {

std::int64_t system_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return text;
}

/// Characters as people count them: UTF-8 code points (the JSON parser has checked the
/// encoding, so every byte that is not a continuation byte starts one).
std::size_t count_chars(std::string_view text) {
    return static_cast<std::size_t>(
        std::count_if(text.begin(), text.end(), [](unsigned char c) { return (c & 0xC0) != 0x80; }));
}

std::string nick_rule(std::size_t max_length) {
    return "a nickname is 1 to " + std::to_string(max_length) +
           " characters: letters A-Z or a-z, digits 0-9, '_', '-' or '.'";
}
constexpr const char* kCommands = "commands: /msg NICK TEXT, /nick NEW, /me ACTION, /quit; start a line with // to send it as text";

/// Split "word rest" at the first run of spaces.
std::pair<std::string_view, std::string_view> split_word(std::string_view text) {
    text = trim(text);
    const std::size_t space = text.find_first_of(" \t");
    if (space == std::string_view::npos) return {text, {}};
    return {text.substr(0, space), trim(text.substr(space + 1))};
}

}  // namespace

ChatRoom::ChatRoom(SendFn send, CloseFn close, RoomLimits limits, NowFn now)
    : send_(std::move(send)), close_(std::move(close)), limits_(limits), now_(now ? std::move(now) : NowFn(system_now_ms)) {}

bool ChatRoom::valid_nick(std::string_view nick, std::size_t max_length) {
    if (nick.empty() || nick.size() > max_length) return false;
    return std::all_of(nick.begin(), nick.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-' || c == '.';
    });
}

std::size_t ChatRoom::member_count() const {
    std::lock_guard lock(mutex_);
    return members_.size();
}

void ChatRoom::connect(std::uint64_t member) {
    std::lock_guard lock(mutex_);
    members_.emplace(member, Member{});
}

void ChatRoom::disconnect(std::uint64_t member) {
    std::lock_guard lock(mutex_);
    const auto it = members_.find(member);
    if (it == members_.end()) return;
    const std::string nick = it->second.nick;
    members_.erase(it);
    if (!nick.empty()) announce_departure(nick);  // not again after /quit: that announced it
}

void ChatRoom::announce_departure(const std::string& nick) {
    broadcast(json{{"type", "left"}, {"nick", nick}, {"time", now_()}}.dump());
    broadcast(json{{"type", "users"}, {"users", json::parse(users_json_array())}, {"time", now_()}}.dump());
}

void ChatRoom::receive(std::uint64_t member, std::string_view data, bool is_text) {
    std::lock_guard lock(mutex_);
    const auto it = members_.find(member);
    if (it == members_.end() || it->second.quit) return;
    if (!is_text) return send_error(member, "bad-message", "messages are JSON text");
    // Room for the longest line JSON can carry: six bytes per character (\uXXXX) and the envelope.
    if (data.size() > limits_.max_text_chars * 6 + 512) return send_error(member, "too-long", "message too long");
    const json message = json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (!message.is_object()) return send_error(member, "bad-message", "messages are JSON objects");
    const auto type = message.find("type");
    if (type == message.end() || !type->is_string()) return send_error(member, "bad-message", "missing \"type\"");
    const std::string& kind = type->get_ref<const std::string&>();
    if (kind == "join") {
        const auto nick = message.find("nick");
        if (nick == message.end() || !nick->is_string()) return send_error(member, "bad-message", "missing \"nick\"");
        return handle_join(member, it->second, nick->get_ref<const std::string&>());
    }
    if (kind == "say") {
        const auto text = message.find("text");
        if (text == message.end() || !text->is_string()) return send_error(member, "bad-message", "missing \"text\"");
        return handle_say(member, it->second, text->get_ref<const std::string&>());
    }
    send_error(member, "bad-message", "unknown message type");
}

void ChatRoom::handle_join(std::uint64_t member, Member& state, std::string_view nick) {
    if (!state.nick.empty()) return send_error(member, "already-joined", "you have joined already; use /nick to rename");
    if (!valid_nick(nick, limits_.max_nick_length))
        return send_error(member, "bad-nick", nick_rule(limits_.max_nick_length));
    if (find_nick(nick) != 0) return send_error(member, "nick-taken", "that nickname is taken");
    // Every join sends the whole user list to everyone in the room: N joins queue O(N^2) bytes
    // (1,000 at once peaked at 775 MB), so the room's size must be bounded, not just declared.
    if (joined_count() >= limits_.max_members)
        return send_error(member, "room-full", "the room is full (" + std::to_string(limits_.max_members) + " people); try again later");
    state.nick = std::string(nick);
    json history = json::array();
    for (const auto& event : history_) history.push_back(json::parse(event));
    send_(member, json{{"type", "welcome"},
                       {"nick", state.nick},
                       {"users", json::parse(users_json_array())},
                       {"history", std::move(history)},
                       {"max_text_chars", limits_.max_text_chars},
                       {"time", now_()}}
                      .dump());
    broadcast(json{{"type", "joined"}, {"nick", state.nick}, {"time", now_()}}.dump());
    broadcast(json{{"type", "users"}, {"users", json::parse(users_json_array())}, {"time", now_()}}.dump());
}

void ChatRoom::handle_say(std::uint64_t member, Member& state, std::string_view text) {
    if (state.nick.empty()) return send_error(member, "not-joined", "choose a nickname first");
    text = trim(text);
    if (text.empty()) return send_error(member, "empty", "nothing to say");
    if (const std::size_t length = count_chars(text); length > limits_.max_text_chars)
        return send_error(member, "too-long",
                          "not sent: the line is " + std::to_string(length) + " characters; the limit is " +
                              std::to_string(limits_.max_text_chars));
    if (text.front() != '/' || text.starts_with("//")) {
        if (text.starts_with("//")) text.remove_prefix(1);  // "//" sends a line starting with "/"
        std::string event = json{{"type", "message"}, {"from", state.nick}, {"text", text}, {"time", now_()}}.dump();
        broadcast(event);
        remember(std::move(event));
        return;
    }
    const auto [command, rest] = split_word(text);
    if (command == "/me") {
        if (rest.empty()) return send_error(member, "usage", "usage: /me ACTION");
        std::string event = json{{"type", "action"}, {"from", state.nick}, {"text", rest}, {"time", now_()}}.dump();
        broadcast(event);
        remember(std::move(event));
    } else if (command == "/msg") {
        const auto [target_nick, body] = split_word(rest);
        if (target_nick.empty() || body.empty()) return send_error(member, "usage", "usage: /msg NICK TEXT");
        const std::uint64_t target = find_nick(target_nick);
        if (target == 0) return send_error(member, "no-such-nick", "nobody here is called " + std::string(target_nick));
        const std::string event = json{{"type", "private"},
                                       {"from", state.nick},
                                       {"to", members_.at(target).nick},
                                       {"text", body},
                                       {"time", now_()}}
                                      .dump();
        send_(target, event);
        if (target != member) send_(member, event);  // the sender sees what they sent
    } else if (command == "/nick") {
        const auto [new_nick, extra] = split_word(rest);
        if (new_nick.empty() || !extra.empty()) return send_error(member, "usage", "usage: /nick NEWNAME");
        if (!valid_nick(new_nick, limits_.max_nick_length))
            return send_error(member, "bad-nick", nick_rule(limits_.max_nick_length));
        const std::uint64_t holder = find_nick(new_nick);
        if (holder != 0 && holder != member) return send_error(member, "nick-taken", "that nickname is taken");
        const std::string old_nick = state.nick;
        state.nick = std::string(new_nick);
        broadcast(json{{"type", "renamed"}, {"from", old_nick}, {"to", state.nick}, {"time", now_()}}.dump());
        broadcast(json{{"type", "users"}, {"users", json::parse(users_json_array())}, {"time", now_()}}.dump());
    } else if (command == "/quit") {
        // Out of the room at once, not when the close handshake ends: everyone's list is
        // right while the quitter's connection is still closing.
        const std::string nick = std::exchange(state.nick, {});
        state.quit = true;
        announce_departure(nick);
        close_(member);
    } else {
        send_error(member, "unknown-command", "unknown command " + std::string(command) + "; " + kCommands);
    }
}

void ChatRoom::send_error(std::uint64_t member, std::string_view code, std::string_view message) {
    send_(member, json{{"type", "error"}, {"code", code}, {"message", message}, {"time", now_()}}.dump());
}

void ChatRoom::broadcast(const std::string& event) {
    for (const auto& [id, member] : members_)
        if (!member.nick.empty()) send_(id, event);
}

std::string ChatRoom::users_json_array() const {
    json users = json::array();
    for (const auto& [id, member] : members_)
        if (!member.nick.empty()) users.push_back(member.nick);
    return users.dump();
}

std::size_t ChatRoom::joined_count() const {
    return static_cast<std::size_t>(
        std::count_if(members_.begin(), members_.end(), [](const auto& entry) { return !entry.second.nick.empty(); }));
}

std::uint64_t ChatRoom::find_nick(std::string_view nick) const {
    const std::string wanted = lower(nick);
    for (const auto& [id, member] : members_)
        if (!member.nick.empty() && lower(member.nick) == wanted) return id;
    return 0;
}

void ChatRoom::remember(std::string event) {
    history_.push_back(std::move(event));
    while (history_.size() > limits_.history_size) history_.pop_front();
}

}  // namespace chat
