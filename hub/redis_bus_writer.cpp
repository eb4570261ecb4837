// RedisBus's writer thread: takes batches from the queue once the reader is on the stream,
// sends them as pipelined XADDs and settles each publish from its answer (and, with the reader,
// from its delivery back to this node); publishes accepted but never delivered time out here.
// Locking as in redis_bus.cpp.
#include "hub/redis_bus_detail.hpp"
#include "hub/bus_sequenced_detail.hpp"

#include <poll.h>

#include <algorithm>
#include <deque>
#include <iterator>
#include <limits>
#include <utility>

namespace hub {

using namespace redis_bus_detail;

namespace {
/// A history read's reply is bounded by the history's max_bytes anyway; this keeps COUNT a
/// number Lua and Redis take (a caller asking for SIZE_MAX gets pages of this size).
constexpr std::size_t max_messages_per_read = 1'000'000;

/// Whether an idle connection is still open: Redis never speaks unasked, so a readable
/// socket means it closed the connection (restart, timeout). Found before sending, the batch
/// can go on a new connection with no doubt whether Redis took it.
bool idle_connection_is_dead(redisContext* context) {
    pollfd poll_fd{context->fd, POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, 0);
    return ready != 0;
}
}  // namespace

void RedisBus::writer_loop() {
    name_this_thread("hub-redis-wr");
    block_sigpipe_in_this_thread();
    Link& link = *writer_link_;
    std::vector<Queued> batch;
    std::vector<Outcome> outcomes;
    for (;;) {
        if (!link.context) {
            if (!wait_backoff(link)) break;
            const bool ready = connect_link(link, "writer");
            std::vector<std::string> lines;
            {
                std::lock_guard lock(mutex_);
                writer_tried_ = true;
                if (ready) {
                    writer_up_ = true;
                    update_connected_locked(lines);
                }
            }
            first_attempts_.notify_all();
            for (const auto& line : lines) log(line);
            if (!ready) continue;
            load_scripts(link);
        }
        {
            std::unique_lock lock(mutex_);
            // Send nothing before the reader is on the stream: our own entry must come after
            // the reader's position, or Done would never see it delivered.
            wake_writer_.wait_for(lock, std::chrono::milliseconds(100),
                                  [&] { return stopping_ || (!queue_.empty() && reader_up_); });
            if (stopping_) break;
            if (reader_up_) {
                const std::size_t count = std::min(queue_.size(), options_.write_batch);
                for (std::size_t i = 0; i < count; ++i) {
                    if (queue_.front().kind == Queued::Kind::read) --queued_reads_;
                    batch.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
        }
        if (batch.empty()) {
            sweep_timeouts();
            continue;
        }
        if (idle_connection_is_dead(link.context)) {
            // Put the batch back in front, in order, and reconnect at once.
            {
                std::lock_guard lock(mutex_);
                for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
                    if (it->kind == Queued::Kind::read) ++queued_reads_;
                    queue_.push_front(std::move(*it));
                }
                writer_up_ = false;
                std::vector<std::string> no_lines;  // a quiet reconnect, counted but not logged
                update_connected_locked(no_lines);
            }
            batch.clear();
            std::lock_guard fd_lock(link.fd_mutex);
            redisFree(link.context);
            link.context = nullptr;
            link.next_attempt = Clock::now();
            continue;
        }

        const std::string connection_error = send_batch(link, batch, outcomes);
        batch.clear();
        fire(outcomes);
        if (!connection_error.empty()) link_lost(link, "writer", connection_error);
        sweep_timeouts();
    }
}

void RedisBus::load_scripts(Link& link) {
    // The Redis process's run_id (new at every restart, other on a replica promoted): a
    // stream's state written under another one starts a new epoch (redis_streams.cpp).
    link.redis_run_id.clear();
    if (ReplyPtr info = command(link.context, {"INFO", "server"}); info && is_text(info.get())) {
        const std::string_view text = reply_text(info.get());
        if (const auto at = text.find("run_id:"); at != std::string_view::npos) {
            const auto start = at + 7;
            link.redis_run_id = std::string(text.substr(start, text.find_first_of("\r\n", start) - start));
        }
    }
    // Without the shas every sequenced publish and read sends its script with EVAL: slower,
    // still right. A Redis that refuses SCRIPT LOAD (ACL) refuses EVAL too: those fail alone.
    link.publish_sha.clear();
    link.read_sha.clear();
    for (auto [script, sha] : {std::pair{&publish_script(), &link.publish_sha}, std::pair{&read_script(), &link.read_sha}}) {
        ReplyPtr reply = command(link.context, {"SCRIPT", "LOAD", *script});
        if (reply && reply->type == REDIS_REPLY_STRING) *sha = std::string(reply_text(reply.get()));
        else if (reply) log(fmt::format("SCRIPT LOAD refused ({}): sequenced streams use EVAL", reply_text(reply.get())));
        else return;  // the connection broke: the next command finds out and reconnects
    }
}

namespace {
bool is_noscript(const redisReply* reply) {
    return reply && reply->type == REDIS_REPLY_ERROR && reply_text(reply).substr(0, 8) == "NOSCRIPT";
}
}  // namespace

std::string RedisBus::send_batch(Link& link, std::vector<Queued>& batch, std::vector<Outcome>& outcomes) {
    HistoryLimits limits;
    {
        std::lock_guard lock(mutex_);
        limits = history_limits_;
    }
    const std::string max_length = std::to_string(options_.stream_max_length);
    const std::string max_entries = std::to_string(limits.max_entries);
    const std::string max_bytes = std::to_string(limits.max_bytes);
    const std::string max_age = std::to_string(limits.max_age.count());
    // One fresh epoch candidate per batch (random_device is slow: tens of µs). Sharing it is
    // harmless: epochs tell apart histories of one stream, and a stream takes a candidate
    // only when its history starts, at most once per batch.
    const std::string epoch_candidate = bus_sequenced_detail::random_epoch();

    // Appends item i's command: XADD for a plain publish, the publish or read script for the
    // others (EVALSHA, or EVAL with the script's text when `use_eval` or no sha is known).
    auto append = [&](std::size_t i, bool use_eval) {
        const Queued& item = batch[i];
        std::deque<std::string> owned;  // numbers and keys, alive (and unmoved) until the command is formatted
        std::vector<std::string_view> args;
        auto own = [&](std::string text) -> std::string_view { return owned.emplace_back(std::move(text)); };
        auto script = [&](const std::string& sha, const std::string& text, std::string_view key_count) {
            if (use_eval || sha.empty()) args.insert(args.end(), {"EVAL", text, key_count});
            else args.insert(args.end(), {"EVALSHA", sha, key_count});
        };
        if (item.kind == Queued::Kind::publish) {
            args = {"XADD", options_.stream_key, "MAXLEN", "~", max_length, "*", "t", item.topic, "p", item.payload,
                    "n",    node_id_,            "s",      own(std::to_string(item.seq)), "c", own(std::to_string(confirmed_seq_))};
        } else if (item.kind == Queued::Kind::sequenced) {
            script(link.publish_sha, publish_script(), "3");
            args.insert(args.end(), {own(stream_state_key(options_.stream_key, item.stream)),
                                     own(stream_history_key(options_.stream_key, item.stream)), options_.stream_key,
                                     epoch_candidate, max_entries, max_bytes, max_age, max_length,
                                     item.topic, item.payload, node_id_, own(std::to_string(item.seq)), item.stream,
                                     link.redis_run_id, own(std::to_string(confirmed_seq_))});
        } else {
            // No offset comes after the largest: ask for nothing rather than wrap around to 0.
            const bool none_after = item.after == std::numeric_limits<std::uint64_t>::max();
            script(link.read_sha, read_script(), "2");
            args.insert(args.end(), {own(stream_state_key(options_.stream_key, item.stream)),
                                     own(stream_history_key(options_.stream_key, item.stream)),
                                     own(none_after ? std::string("0-0") : std::to_string(item.after + 1) + "-0"),
                                     own(std::to_string(none_after ? 0 : std::min(item.max_messages, max_messages_per_read))), max_entries, max_bytes, max_age});
        }
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (auto arg : args) {
            argv.push_back(arg.data());
            lengths.push_back(arg.size());
        }
        redisAppendCommandArgv(link.context, static_cast<int>(argv.size()), argv.data(), lengths.data());
    };
    std::vector<ReplyPtr> replies(batch.size());
    std::string connection_error;
    // Sends the items at `indices` pipelined and reads their replies in order.
    auto pipeline = [&](const std::vector<std::size_t>& indices, bool use_eval) {
        for (std::size_t i : indices) append(i, use_eval);
        for (std::size_t i : indices) {
            void* raw = nullptr;
            if (redisGetReply(link.context, &raw) != REDIS_OK || !raw) {
                connection_error = link.context->errstr[0] ? link.context->errstr : "connection closed";
                return;
            }
            replies[i].reset(static_cast<redisReply*>(raw));
        }
    };
    std::vector<std::size_t> all(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) all[i] = i;
    pipeline(all, false);

    // NOSCRIPT (Redis' script cache was flushed): such an item did not run. Sent again with
    // EVAL only when nothing published after it succeeded, so this node's order holds;
    // otherwise it is refused (no node sees it). Reads may always be sent again.
    if (connection_error.empty()) {
        std::size_t first = batch.size();
        for (std::size_t i = 0; i < batch.size() && first == batch.size(); ++i) {
            if (is_noscript(replies[i].get())) first = i;
        }
        if (first < batch.size()) {
            bool resend_safe = true;
            std::vector<std::size_t> again;
            for (std::size_t i = first; i < batch.size(); ++i) {
                if (is_noscript(replies[i].get())) again.push_back(i);
                else if (batch[i].kind != Queued::Kind::read) resend_safe = false;
            }
            if (!resend_safe) {
                again.erase(std::remove_if(again.begin(), again.end(), [&](std::size_t i) { return batch[i].kind != Queued::Kind::read; }),
                            again.end());
            }
            // A retry cut off by a broken connection counts as unanswered, not as refused.
            for (std::size_t i : again) replies[i].reset();
            pipeline(again, true);
            if (connection_error.empty()) load_scripts(link);
        }
    }
    discard_pending_sigpipe();

    std::vector<std::pair<HistoryDone, HistoryRead>> reads;
    {
        std::lock_guard lock(mutex_);
        const auto now = Clock::now();
        auto refuse = [&](std::uint64_t seq, std::string reason) {
            auto it = pending_.find(seq);
            if (it == pending_.end()) return;
            outcomes.push_back(Outcome{std::move(it->second.done), false, std::move(reason)});
            pending_bytes_ -= it->second.bytes;
            pending_.erase(it);
            ++status_.failed;
        };
        const std::string unanswered = stopping_ ? std::string("bus stopped") : "redis unavailable: " + connection_error;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            Queued& item = batch[i];
            const redisReply* reply = replies[i].get();
            if (item.kind == Queued::Kind::read) {
                HistoryRead read;
                if (!reply) read.error = unanswered;
                else if (reply->type == REDIS_REPLY_ERROR) read.error = "redis refused the history read: " + std::string(reply_text(reply));
                else read = parse_read_reply(reply, item.stream);
                reads.emplace_back(std::move(item.history_done), std::move(read));
                continue;
            }
            // Unanswered: Redis may or may not have taken it; the caller hears !ok.
            if (!reply) {
                refuse(item.seq, unanswered);
                continue;
            }
            if (reply->type == REDIS_REPLY_ERROR) {
                refuse(item.seq, "redis refused the publish: " + std::string(reply_text(reply)));
                continue;
            }
            ++status_.published;
            confirmed_seq_ = std::max(confirmed_seq_, item.seq);  // Redis has it: the entries after say so
            auto it = pending_.find(item.seq);
            if (it == pending_.end()) continue;
            if (item.kind == Queued::Kind::sequenced && it->second.accepted_message.offset == 0) {
                SequencedMessage& accepted = it->second.accepted_message;
                if (parse_publish_reply(reply, accepted)) accepted.stream = item.stream;
            }
            if (it->second.delivered) {
                outcomes.push_back(Outcome{std::move(it->second.done), true, {}, std::move(it->second.accepted_message)});
                pending_bytes_ -= it->second.bytes;
                pending_.erase(it);
            } else {
                it->second.accepted = true;
                it->second.deadline = now + options_.delivery_timeout;
            }
        }
    }
    for (auto& [done, read] : reads) fire_read(done, std::move(read));
    return connection_error;
}

void RedisBus::sweep_timeouts() {
    std::vector<Outcome> outcomes;
    {
        std::lock_guard lock(mutex_);
        const auto now = Clock::now();
        // A walk over every pending publish: at most every 10 ms, not after every small batch.
        if (now < next_sweep_) return;
        next_sweep_ = now + std::chrono::milliseconds(10);
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (it->second.accepted && !it->second.delivered && it->second.deadline <= now) {
                outcomes.push_back(Outcome{std::move(it->second.done), false,
                                           fmt::format("redis: published, but not delivered back to this node within {} ms",
                                                       options_.delivery_timeout.count())});
                pending_bytes_ -= it->second.bytes;
                it = pending_.erase(it);
                ++status_.failed;
            } else {
                ++it;
            }
        }
    }
    fire(outcomes);
}

}  // namespace hub
