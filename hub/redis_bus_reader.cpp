// RedisBus's reader thread: positions itself on the stream (noticing a restarted or trimmed
// stream), blocks in XREAD, hands each entry to the handler in order and marks this node's own
// publishes delivered. Locking as in redis_bus.cpp.
#include "hub/redis_bus_detail.hpp"
#include "hub/bus_sequenced_detail.hpp"

#include <exception>

namespace hub {

using namespace redis_bus_detail;

bool RedisBus::position_reader(Link& link) {
    ReplyPtr reply = command(link.context, {"XINFO", "STREAM", options_.stream_key});
    if (!reply) return false;
    std::optional<StreamId> last_generated;
    std::optional<StreamId> max_deleted;
    if (reply->type == REDIS_REPLY_ERROR) {
        // "ERR no such key": no stream yet (first node, or Redis restarted empty).
        if (reply_text(reply.get()).find("no such key") == std::string_view::npos) {
            link_lost(link, "reader", fmt::format("XINFO STREAM {}: {}", options_.stream_key, reply_text(reply.get())));
            return false;
        }
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i + 1 < reply->elements; i += 2) {
            const std::string_view field = reply_text(reply->element[i]);
            if (!is_text(reply->element[i + 1])) continue;
            if (field == "last-generated-id") last_generated = StreamId::parse(reply_text(reply->element[i + 1]));
            else if (field == "max-deleted-entry-id") max_deleted = StreamId::parse(reply_text(reply->element[i + 1]));
        }
    }

    const std::optional<StreamId> ours = link.last_id.empty() ? std::nullopt : StreamId::parse(link.last_id);
    std::string line;
    if (!ours) {
        // First start: from the stream's newest entry on ("$", but resolved now, so that an
        // entry added between this and the first XREAD is not missed).
        link.last_id = last_generated ? last_generated->str() : "0-0";
    } else if (!last_generated) {
        if (*ours != StreamId{}) line = fmt::format("stream '{}' is gone (Redis restarted empty?): reading the new one from its start", options_.stream_key);
        link.last_id = "0-0";
    } else if (*last_generated < *ours) {
        // Ids went back: this is another stream than the one we read (Redis restarted, lost
        // its data, and has a new one already). Everything in it is new to this node.
        line = fmt::format("stream '{}' restarted (its last id {} is below ours {}): reading it from its start",
                           options_.stream_key, last_generated->str(), ours->str());
        link.last_id = "0-0";
    } else if (max_deleted && *max_deleted > *ours) {
        line = fmt::format("stream '{}' was trimmed past this node's position ({} > {}) while it was away: some messages were lost here",
                           options_.stream_key, max_deleted->str(), ours->str());
    }
    if (!line.empty()) log(line);
    return true;
}

void RedisBus::reader_loop() {
    name_this_thread("hub-redis-rd");
    block_sigpipe_in_this_thread();
    Link& link = *reader_link_;
    const std::string block_ms = std::to_string(options_.read_block.count());
    const std::string count = std::to_string(options_.read_batch);
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) break;
        }
        if (!link.context) {
            if (!wait_backoff(link)) break;
            bool ready = connect_link(link, "reader");
            if (ready && !position_reader(link)) {
                if (link.context) link_lost(link, "reader", link.context->errstr[0] ? link.context->errstr : "XINFO failed");
                ready = false;
            }
            std::vector<std::string> lines;
            {
                std::lock_guard lock(mutex_);
                reader_tried_ = true;
                if (ready) {
                    reader_up_ = true;
                    update_connected_locked(lines);
                }
            }
            first_attempts_.notify_all();
            for (const auto& line : lines) log(line);
            if (!ready) continue;
            wake_writer_.notify_one();
        }
        ReplyPtr reply = command(link.context, {"XREAD", "BLOCK", block_ms, "COUNT", count, "STREAMS", options_.stream_key, link.last_id});
        if (!reply) {
            link_lost(link, "reader", link.context->errstr[0] ? link.context->errstr : "connection closed");
            continue;
        }
        if (reply->type == REDIS_REPLY_NIL) continue;  // nothing new within read_block
        if (reply->type == REDIS_REPLY_ERROR) {
            link_lost(link, "reader", fmt::format("XREAD: {}", reply_text(reply.get())));
            continue;
        }
        deliver_batch(reply.get());
    }
}

bool RedisBus::gap_seen_from(std::string_view node, std::uint64_t seq, std::optional<std::uint64_t> confirmed) {
    constexpr std::size_t kMaxNodesRemembered = 4096;
    auto it = last_seq_by_node_.find(std::string(node));
    if (it == last_seq_by_node_.end()) {
        // A node seen for the first time: no baseline (it may have published before we started).
        if (last_seq_by_node_.size() >= kMaxNodesRemembered) last_seq_by_node_.clear();
        last_seq_by_node_.emplace(std::string(node), seq);
        return false;
    }
    const std::uint64_t last = it->second;
    const bool gap = seq > last + 1 && (!confirmed || *confirmed > last);
    if (seq > last) it->second = seq;  // lower: an older copy replayed; not a gap
    return gap;
}

void RedisBus::deliver_batch(void* raw_reply) {
    const auto* reply = static_cast<const redisReply*>(raw_reply);
    Link& link = *reader_link_;
    // [[key, [[id, [field, value, ...]], ...]]]
    if (reply->type != REDIS_REPLY_ARRAY) return;
    std::vector<std::pair<std::uint64_t, SequencedMessage>> own_delivered;  // seq, what a sequenced one got
    std::uint64_t received = 0;
    for (std::size_t s = 0; s < reply->elements; ++s) {
        const redisReply* stream_reply = reply->element[s];
        if (stream_reply->type != REDIS_REPLY_ARRAY || stream_reply->elements < 2) continue;
        const redisReply* entries = stream_reply->element[1];
        if (entries->type != REDIS_REPLY_ARRAY) continue;
        for (std::size_t e = 0; e < entries->elements; ++e) {
            const redisReply* entry = entries->element[e];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 || !is_text(entry->element[0])) continue;
            link.last_id = std::string(reply_text(entry->element[0]));
            const redisReply* fields = entry->element[1];
            if (fields->type != REDIS_REPLY_ARRAY) continue;
            std::optional<std::string_view> topic, payload, stream_name;
            std::string_view node, seq_text, confirmed_text, epoch, offset_text, ms_text;
            for (std::size_t f = 0; f + 1 < fields->elements; f += 2) {
                const std::string_view name = reply_text(fields->element[f]);
                const std::string_view value = reply_text(fields->element[f + 1]);
                if (name == "t") topic = value;
                else if (name == "p") payload = value;
                else if (name == "n") node = value;
                else if (name == "s") seq_text = value;
                else if (name == "c") confirmed_text = value;
                else if (name == "q") stream_name = value;  // a sequenced publish: q e o m
                else if (name == "e") epoch = value;
                else if (name == "o") offset_text = value;
                else if (name == "m") ms_text = value;
            }
            std::uint64_t seq = 0;
            const bool numbered = !node.empty() && parse_number(seq_text, seq);
            std::uint64_t confirmed = 0;
            const bool has_confirmed = parse_number(confirmed_text, confirmed);
            if (numbered && node != node_id_ && gap_seen_from(node, seq, has_confirmed ? std::optional(confirmed) : std::nullopt) &&
                gap_handler_) {
                // Before this entry reaches anybody: whoever is told can tell where the gap is.
                const std::string why = fmt::format(
                    "messages from node {} were lost here (its entries before {} never reached this node: Redis lost or trimmed them)",
                    node, link.last_id);
                log(why);
                try {
                    gap_handler_(why);
                } catch (...) {
                    log("the gap handler threw");
                }
            }
            if (!topic || !payload) continue;  // not one of ours: skip, keep the order
            std::string envelope;
            SequencedMessage sequenced;
            if (stream_name) {
                sequenced.stream = std::string(*stream_name);
                sequenced.epoch = std::string(epoch);
                if (!parse_number(offset_text, sequenced.offset) || sequenced.offset == 0 || !parse_number(ms_text, sequenced.unix_ms) ||
                    !bus_sequenced_detail::valid_stream_name(sequenced.stream) || !bus_sequenced_detail::valid_epoch(sequenced.epoch)) {
                    log(fmt::format("skipped a malformed sequenced entry {} on topic '{}'", link.last_id, *topic));
                    continue;
                }
                sequenced.payload = std::string(*payload);
                envelope = encode_sequenced(sequenced);
                sequenced.payload.clear();
            }
            ++received;
            try {
                if (handler_) handler_(*topic, stream_name ? std::string_view(envelope) : *payload);
            } catch (const std::exception& error) {
                log(fmt::format("handler threw on topic '{}': {}", *topic, error.what()));
            } catch (...) {
                log(fmt::format("handler threw on topic '{}'", *topic));
            }
            if (numbered && node == node_id_) own_delivered.emplace_back(seq, std::move(sequenced));
        }
    }
    std::vector<Outcome> outcomes;
    {
        std::lock_guard lock(mutex_);
        status_.received += received;
        for (auto& [seq, sequenced] : own_delivered) {
            auto it = pending_.find(seq);
            if (it == pending_.end()) continue;  // answered already (timed out, stopped)
            if (sequenced.offset != 0) it->second.accepted_message = std::move(sequenced);
            if (it->second.accepted) {
                outcomes.push_back(Outcome{std::move(it->second.done), true, {}, std::move(it->second.accepted_message)});
                pending_bytes_ -= it->second.bytes;
                pending_.erase(it);
            } else {
                it->second.delivered = true;  // the writer answers when XADD's reply comes
            }
        }
    }
    fire(outcomes);
}

}  // namespace hub
