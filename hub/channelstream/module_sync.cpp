// ChannelstreamModule's syncing (see sync.hpp): applying operations in order, a starting
// node asking the running ones for a snapshot and holding operations until one arrives,
// retries, and answering other nodes' snapshot requests. The rest of the module is in
// module.cpp.
#include "hub/channelstream/module.hpp"
#include "hub/channelstream/module_detail.hpp"

#include <exception>

#include "hub/log.hpp"

namespace hub::channelstream {

using namespace module_detail;

// ---- syncing ------------------------------------------------------------------------------------

Applied ChannelstreamModule::apply_locked(const Json& op) {
    Applied applied;
    const std::string kind = text_of(op, "op");
    if (kind == "snapshot-request") {
        // A joiner asks; answered at our next tick (publishing from here would deadlock the LocalBus).
        const std::string from = text_of(op, "node");
        if (from != node() && snapshot_requests_.size() < sync_options_.max_pending_requests)
            snapshot_requests_.emplace_back(from, text_of(op, "id"));
    } else if (kind == "snapshot") {
        // Someone answered that request: no need for us to answer it too.
        const std::string request = text_of(op, "request");
        std::erase_if(snapshot_requests_, [&](const auto& pending) { return pending.second == request; });
    } else {
        applied = state_.apply(op);  // never throws: a bad operation is answered with status 500
    }
    last_applied_ = text_of(op, "id");
    return applied;
}

void ChannelstreamModule::request_again_locked(Micros not_before) {
    join_buffer_.clear();
    sync_request_.clear();
    request_seen_ = false;
    request_seen_at_ = 0;
    request_needed_ = true;
    request_not_before_ = not_before;
}

void ChannelstreamModule::receive_while_syncing_locked(Json op, std::size_t bytes, std::vector<Applied>& results) {
    const std::string kind = text_of(op, "op");
    if (kind == "snapshot") {
        const bool for_us = text_of(op, "for") == node() && !sync_request_.empty() && text_of(op, "request") == sync_request_;
        if (for_us) {
            const std::string from = text_of(op, "node");
            if (op.contains("error")) {
                log_error("channelstream: node {} could not send the state ({}); asking again in {} s", from,
                          op.value("error", Json()).dump(), sync_options_.retry_after_failure.count() / 1000);
                request_again_locked(now_micros() + micros(sync_options_.retry_after_failure));
                return;
            }
            const std::string last = text_of(op, "last_applied");
            auto rest = join_buffer_.after(last);
            if (!rest) {
                log_warning("channelstream: the snapshot from node {} was made before this node's buffer starts; asking again", from);
                request_again_locked(0);
                return;
            }
            try {
                state_ = State::from_snapshot(op.at("state"), StateLimits{api_.config().max_history_size, api_.config().max_pending_frames});
            } catch (const std::exception& e) {
                log_error("channelstream: the snapshot from node {} is unusable ({}); asking again in {} s", from, e.what(),
                          sync_options_.retry_after_failure.count() / 1000);
                request_again_locked(now_micros() + micros(sync_options_.retry_after_failure));
                return;
            }
            last_applied_ = last;
            for (const Json& later : *rest) results.push_back(apply_locked(later));
            last_applied_ = text_of(op, "id");  // every node counts the snapshot as an operation
            synced_ = true;
            join_buffer_.clear();
            sync_request_.clear();
            log_info("channelstream: synced from node {}'s snapshot ({} connections, {} channels; {} later operations applied)",
                     from, state_.connection_count(), state_.channel_count(), rest->size());
            return;
        }
        // Somebody else's (or an old one of ours): only its place in the order matters (a
        // snapshot's last_applied may name it), not its state.
        op = Json{{"op", "snapshot"}, {"id", op.value("id", Json())}, {"node", op.value("node", Json())},
                  {"for", op.value("for", Json())}, {"request", op.value("request", Json())}};
        bytes = op.dump().size();
    } else if (kind == "snapshot-request" && !sync_request_.empty() && text_of(op, "id") == sync_request_) {
        request_seen_ = true;
    }
    if (!join_buffer_.add(std::move(op), bytes)) {
        log_warning("channelstream: the join buffer's limit ({} operations or {} bytes) was passed while syncing; asking for the state again",
                    sync_options_.max_buffered_ops, sync_options_.max_buffered_bytes);
        request_again_locked(0);
    }
}

void ChannelstreamModule::sync_step(Micros now) {
    std::optional<Json> request;
    std::vector<Applied> results;
    std::vector<std::pair<std::string, std::string>> to_answer;
    std::string last_applied;
    Json state_json;
    {
        std::lock_guard lock(state_mutex_);
        if (!synced_) {
            if (request_seen_ && request_seen_at_ == 0) request_seen_at_ = now;
            if (request_needed_ && now >= request_not_before_) {
                request = api_.make_op("snapshot-request", Json::object(), now);
                sync_request_ = request->at("id").get<std::string>();
                request_needed_ = false;
                requested_at_ = now;
                request_seen_ = false;
                request_seen_at_ = 0;
            } else if (request_seen_at_ != 0 && now - request_seen_at_ >= micros(sync_options_.snapshot_wait)) {
                // Nobody holds a state: a fresh cluster (the first node, or all restarted).
                std::vector<Json> buffered = join_buffer_.take_all();
                state_ = State(StateLimits{api_.config().max_history_size, api_.config().max_pending_frames});
                synced_ = true;
                sync_request_.clear();
                for (const Json& op : buffered) results.push_back(apply_locked(op));
                log_info("channelstream: no synced node answered within {} ms: this node starts with an empty state "
                         "(a new cluster); {} operations applied",
                         sync_options_.snapshot_wait.count(), buffered.size());
            } else if (!sync_request_.empty() && !request_seen_ && now - requested_at_ >= micros(sync_options_.request_resend)) {
                log_warning("channelstream: the snapshot-request did not come back on the bus; sending it again");
                request_again_locked(0);
            }
        } else if (!snapshot_requests_.empty()) {
            to_answer.swap(snapshot_requests_);
            state_json = state_.to_snapshot();  // with last_applied_, under one lock: consistent
            last_applied = last_applied_;
        }
    }
    for (const Applied& applied : results) dispatch(applied);
    if (request) {
        const std::string id = request->at("id").get<std::string>();
        bus_->publish(std::string(kTopic), request->dump(), [this, id](bool ok, std::string_view error) {
            if (ok) return;
            log_warning("channelstream: the snapshot-request was not published ({}); trying again", error);
            std::lock_guard lock(state_mutex_);
            if (!synced_ && sync_request_ == id) request_again_locked(0);
        });
    }
    if (!to_answer.empty()) publish_snapshots(to_answer, last_applied, state_json.dump(), now);
}

void ChannelstreamModule::publish_snapshots(const std::vector<std::pair<std::string, std::string>>& requests,
                                            const std::string& last_applied, const std::string& state_text, Micros now) {
    const bool too_large = state_text.size() > sync_options_.max_snapshot_bytes;
    if (too_large)
        log_error("channelstream: the state is {} bytes, above the {}-byte snapshot limit: a joining node cannot sync",
                  state_text.size(), sync_options_.max_snapshot_bytes);
    for (const auto& [joiner, request_id] : requests) {
        Json op = api_.make_op("snapshot", {{"for", joiner}, {"request", request_id}, {"last_applied", last_applied}}, now);
        std::string payload;
        if (too_large) {
            op["error"] = fmt::format("the state is {} bytes, above the {}-byte limit", state_text.size(), sync_options_.max_snapshot_bytes);
            payload = op.dump();
        } else {
            // The state is dumped once, however many joiners: spliced in as the last member.
            payload = op.dump();
            payload.pop_back();
            payload += ",\"state\":";
            payload += state_text;
            payload += '}';
        }
        if (!too_large) log_info("channelstream: sending the state to joining node {} ({} bytes)", joiner, payload.size());
        bus_->publish(std::string(kTopic), std::move(payload), [joiner = joiner](bool ok, std::string_view error) {
            if (!ok) log_warning("channelstream: the snapshot for node {} was not published: {}", joiner, error);
        });
    }
}

bool ChannelstreamModule::synced() const {
    std::lock_guard lock(state_mutex_);
    return synced_;
}

std::string ChannelstreamModule::last_applied() const {
    std::lock_guard lock(state_mutex_);
    return last_applied_;
}

}  // namespace hub::channelstream
