// RedisBus's writer thread: takes batches from the queue once the reader is on the stream,
// sends them as pipelined XADDs and settles each publish from its answer (and, with the reader,
// from its delivery back to this node); publishes accepted but never delivered time out here.
// Locking as in redis_bus.cpp.
#include "hub/redis_bus_detail.hpp"

#include <poll.h>

#include <algorithm>
#include <iterator>
#include <utility>

namespace hub {

using namespace redis_bus_detail;

namespace {
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
    const std::string max_length = std::to_string(options_.stream_max_length);
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
                for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
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

        std::vector<std::string> seq_texts;
        seq_texts.reserve(batch.size());
        for (const Queued& item : batch) seq_texts.push_back(std::to_string(item.seq));
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const std::string_view args[] = {"XADD", options_.stream_key, "MAXLEN", "~", max_length, "*",
                                             "t",    batch[i].topic,      "p",      batch[i].payload,
                                             "n",    node_id_,            "s",      seq_texts[i]};
            const char* argv[std::size(args)];
            std::size_t lengths[std::size(args)];
            for (std::size_t a = 0; a < std::size(args); ++a) {
                argv[a] = args[a].data();
                lengths[a] = args[a].size();
            }
            redisAppendCommandArgv(link.context, static_cast<int>(std::size(args)), argv, lengths);
        }
        std::string connection_error;
        std::size_t answered = 0;
        std::vector<std::pair<std::uint64_t, std::string>> refused;  // seq, Redis' error
        std::vector<std::uint64_t> accepted;
        for (; answered < batch.size(); ++answered) {
            void* raw = nullptr;
            if (redisGetReply(link.context, &raw) != REDIS_OK || !raw) {
                connection_error = link.context->errstr[0] ? link.context->errstr : "connection closed";
                break;
            }
            ReplyPtr reply(static_cast<redisReply*>(raw));
            if (reply->type == REDIS_REPLY_ERROR) refused.emplace_back(batch[answered].seq, std::string(reply_text(reply.get())));
            else accepted.push_back(batch[answered].seq);
        }
        discard_pending_sigpipe();
        {
            std::lock_guard lock(mutex_);
            const auto now = Clock::now();
            for (std::uint64_t seq : accepted) {
                ++status_.published;
                auto it = pending_.find(seq);
                if (it == pending_.end()) continue;
                if (it->second.delivered) {
                    outcomes.push_back(Outcome{std::move(it->second.done), true, {}});
                    pending_bytes_ -= it->second.bytes;
                    pending_.erase(it);
                } else {
                    it->second.accepted = true;
                    it->second.deadline = now + options_.delivery_timeout;
                }
            }
            auto refuse = [&](std::uint64_t seq, std::string reason) {
                auto it = pending_.find(seq);
                if (it == pending_.end()) return;
                outcomes.push_back(Outcome{std::move(it->second.done), false, std::move(reason)});
                pending_bytes_ -= it->second.bytes;
                pending_.erase(it);
                ++status_.failed;
            };
            for (auto& [seq, error] : refused) refuse(seq, "redis refused the publish: " + error);
            if (!connection_error.empty()) {
                // Unanswered: Redis may or may not have taken them; the caller hears !ok.
                const std::string reason = stopping_ ? std::string("bus stopped") : "redis unavailable: " + connection_error;
                for (std::size_t i = answered; i < batch.size(); ++i) refuse(batch[i].seq, reason);
            }
        }
        batch.clear();
        fire(outcomes);
        if (!connection_error.empty()) link_lost(link, "writer", connection_error);
        sweep_timeouts();
    }
}

void RedisBus::sweep_timeouts() {
    std::vector<Outcome> outcomes;
    {
        std::lock_guard lock(mutex_);
        const auto now = Clock::now();
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
