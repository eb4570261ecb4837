// The parts of RedisBus that its three files share: redis_bus.cpp (the Redis URL, the public
// API, connecting and losing a link), redis_bus_writer.cpp (the writer thread: XADD batches,
// their answers, delivery deadlines) and redis_bus_reader.cpp (the reader thread: positioning
// on the stream, XREAD, handing entries to the handler). Internal to the hub: not installed.
#pragma once

#include "hub/redis_bus.hpp"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace hub {

namespace redis_bus_detail {

using Clock = std::chrono::steady_clock;

struct ReplyDeleter {
    void operator()(redisReply* reply) const noexcept {
        if (reply) freeReplyObject(reply);
    }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

/// A stream entry id, "<ms>-<seq>", compared numerically (as text "9-0" > "10-0").
struct StreamId {
    std::uint64_t ms = 0;
    std::uint64_t seq = 0;
    auto operator<=>(const StreamId&) const = default;

    static std::optional<StreamId> parse(std::string_view text) {
        const auto dash = text.find('-');
        if (dash == std::string_view::npos) return std::nullopt;
        StreamId id;
        const auto first = std::from_chars(text.data(), text.data() + dash, id.ms);
        const auto second = std::from_chars(text.data() + dash + 1, text.data() + text.size(), id.seq);
        if (first.ec != std::errc{} || first.ptr != text.data() + dash) return std::nullopt;
        if (second.ec != std::errc{} || second.ptr != text.data() + text.size()) return std::nullopt;
        return id;
    }
    std::string str() const { return fmt::format("{}-{}", ms, seq); }
};

inline std::string_view reply_text(const redisReply* reply) {
    if (!reply || !reply->str) return {};
    return {reply->str, reply->len};
}

inline bool is_text(const redisReply* reply) {
    return reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS);
}

/// One command as argv, binary-safe (hiredis takes each argument with its length).
inline ReplyPtr command(redisContext* context, const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (auto arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    return ReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
}

/// Our threads block SIGPIPE: a write to a socket Redis has closed must give EPIPE (and a
/// reconnect), not end the process. The pending signal is then discarded.
inline void block_sigpipe_in_this_thread() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

inline void discard_pending_sigpipe() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    const timespec zero{};
    while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
    }
}

inline void name_this_thread(const char* name) {
    pthread_setname_np(pthread_self(), name);
}

template <typename Number>
inline bool parse_number(std::string_view text, Number& out) {
    if (text.empty()) return false;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), out);
    return result.ec == std::errc{} && result.ptr == text.data() + text.size();
}

/// A publish's answer, collected under the lock and given to its Done outside it. Plain
/// publishes' Done is wrapped as a SequencedDone that ignores `accepted`.
struct Outcome {
    Bus::SequencedDone done;
    bool ok = false;
    std::string error;
    SequencedMessage accepted;  ///< sequenced publishes: epoch, offset, time (payload empty)
};

inline void fire(std::vector<Outcome>& outcomes) {
    for (auto& outcome : outcomes) {
        if (!outcome.done) continue;
        try {
            outcome.done(outcome.ok, outcome.error, outcome.accepted);
        } catch (...) {
            // A caller's Done must not end the bus's thread; nothing useful to do with it.
        }
    }
    outcomes.clear();
}

/// A history read's answer, given outside the lock like a Done.
inline void fire_read(Bus::HistoryDone& done, HistoryRead read) {
    if (!done) return;
    try {
        done(std::move(read));
    } catch (...) {
    }
}

// ---- sequenced streams (redis_streams.cpp) ----
/// The Lua scripts, with EVALSHA's sha1 of each learnt by SCRIPT LOAD on connect.
const std::string& publish_script();
const std::string& read_script();
/// <bus key>:s:<stream> (epoch, offset, bytes) and <bus key>:h:<stream> (the history).
std::string stream_state_key(std::string_view bus_key, std::string_view stream);
std::string stream_history_key(std::string_view bus_key, std::string_view stream);
/// The publish script's {epoch, offset, unix_ms} into `accepted`; false when malformed.
bool parse_publish_reply(const redisReply* reply, SequencedMessage& accepted);
/// The read script's reply; !ok with a reason when malformed.
HistoryRead parse_read_reply(const redisReply* reply, std::string_view stream);

}  // namespace redis_bus_detail

struct RedisBus::Link {
    const char* role = "";
    std::mutex fd_mutex;  ///< held to swap `context` and by stop() to shut its socket
    redisContext* context = nullptr;
    std::chrono::milliseconds backoff{0};  ///< wait before the next attempt; 0 = at once
    redis_bus_detail::Clock::time_point next_attempt{};
    std::string last_id;  ///< reader: the last entry delivered ("" until positioned)
    std::string publish_sha;  ///< writer: SCRIPT LOAD's answers ("" : send the script with EVAL)
    std::string read_sha;
    std::string redis_run_id;  ///< writer: INFO server's run_id on connecting ("" unknown)

    ~Link() {
        if (context) redisFree(context);
    }
};

}  // namespace hub
