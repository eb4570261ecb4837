// ChannelstreamModule (see module.hpp): starting, HTTP requests, publishing operations,
// dispatching what they yield to sockets and long polls, the WebSocket callbacks and the
// tick. Syncing a starting node's state is in module_sync.cpp.
#include "hub/channelstream/module.hpp"
#include "hub/channelstream/module_detail.hpp"

#include <algorithm>
#include <exception>

#include <fmt/format.h>

#include "hub/log.hpp"
#include "hub/metrics.hpp"

namespace hub::channelstream {

using namespace module_detail;

namespace {

using Payloads = std::vector<std::shared_ptr<const std::string>>;

std::string join_frames(const Payloads& frames) {
    std::string out = "[";
    for (std::size_t i = 0; i < frames.size(); ++i) {
        if (i > 0) out += ',';
        out += *frames[i];
    }
    out += ']';
    return out;
}

websock::HttpResponse syncing_response() {
    websock::HttpResponse response =
        json_response(503, {{"request", "node is syncing: it is loading the channelstream state from the other nodes"}});
    response.header("Retry-After", "1");
    return response;
}

}  // namespace

ChannelstreamModule::ChannelstreamModule(ChannelstreamConfig config, SyncOptions sync)
    : api_(config, random_uuid()),
      state_(StateLimits{config.max_history_size, config.max_pending_frames}),
      sync_options_(sync),
      join_buffer_(sync.max_buffered_ops, sync.max_buffered_bytes) {}

ChannelstreamModule::~ChannelstreamModule() = default;

void ChannelstreamModule::start(const ModuleContext& context) {
    api_.set_payload_rules(context.payload_rules);
    bus_ = context.bus;
    // Only a shared bus has other nodes to sync from; alone, the empty state is the state.
    const bool shared_bus = bus_ != nullptr && bus_->status().kind == "redis";
    {
        std::vector<Applied> results;
        {
            std::lock_guard lock(state_mutex_);
            if (shared_bus) {
                request_needed_ = true;
            } else {
                synced_ = true;
                for (const Json& op : join_buffer_.take_all()) results.push_back(apply_locked(op));
            }
        }
        for (const Applied& applied : results) dispatch(applied);
    }
    if (shared_bus) {
        log_info("channelstream: node {} is syncing: asking the other nodes for the state", node());
        sync_step(now_micros());
    }
    if (Metrics* metrics = context.metrics) {
        auto& connections = metrics->gauge("hub_channelstream_connections", "channelstream connections (all nodes)");
        auto& users = metrics->gauge("hub_channelstream_users", "channelstream users remembered (all nodes)");
        auto& channels = metrics->gauge("hub_channelstream_channels", "channelstream channels (all nodes)");
        auto& sockets = metrics->gauge("hub_channelstream_local_websockets", "channelstream WebSockets attached to this node");
        auto& polls = metrics->gauge("hub_channelstream_local_polls", "channelstream long polls waiting on this node");
        auto& sent = metrics->counter("hub_channelstream_messages_total", "channelstream messages handed to connections (all nodes)");
        auto& unique = metrics->counter("hub_channelstream_unique_messages_total", "channelstream messages sent through the API (all nodes)");
        auto& synced = metrics->gauge("hub_channelstream_synced", "1 once this node holds the channelstream state (0 while syncing)");
        auto& undelivered = metrics->counter("hub_channelstream_undelivered_total",
                                             "channelstream messages for this node that found no socket or poll, or were dropped");
        metrics->on_scrape([this, &connections, &users, &channels, &sockets, &polls, &sent, &unique, &undelivered, &synced] {
            {
                std::lock_guard lock(state_mutex_);
                synced.Set(synced_ ? 1.0 : 0.0);
                connections.Set(static_cast<double>(state_.connection_count()));
                users.Set(static_cast<double>(state_.user_count()));
                channels.Set(static_cast<double>(state_.channel_count()));
                Metrics::set_counter(sent, static_cast<double>(state_.total_messages()));
                Metrics::set_counter(unique, static_cast<double>(state_.total_unique_messages()));
            }
            {
                std::lock_guard lock(local_mutex_);
                sockets.Set(static_cast<double>(sockets_.size()));
                polls.Set(static_cast<double>(polls_.size()));
            }
            Metrics::set_counter(undelivered, static_cast<double>(undelivered_.load()));
        });
    }
    const auto& config = api_.config();
    if (config.secret == "secret") log_warning("channelstream: the default secret is in use; set one (secret = ...)");
    if (config.admin_secret == "admin_secret") log_warning("channelstream: the default admin_secret is in use; set one");
    // Kept out of every log line (the defaults are common words, and public anyway).
    if (config.secret != "secret") log_add_secret(config.secret);
    if (config.admin_secret != "admin_secret") log_add_secret(config.admin_secret);
}

bool ChannelstreamModule::owns_websocket(const websock::HttpRequest& request) const {
    return api_.is_websocket_path(request.path);
}

bool ChannelstreamModule::handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder) {
    ApiOutcome outcome;
    try {
        std::lock_guard lock(state_mutex_);
        if (!synced_ && api_.needs_state(request)) {
            outcome.kind = ApiOutcome::Kind::Respond;
            outcome.response = syncing_response();
            api_.add_cors(request, outcome.response);
        } else {
            outcome = api_.handle(request, state_, now_micros());
        }
    } catch (const std::exception& e) {
        // A bug, not the caller's fault; answer rather than leave the request hanging.
        if (!api_.local_path(request.path)) return false;
        log_error("channelstream: {} {} failed: {}", request.method, request.path, e.what());
        responder->respond(json_response(500, {{"request", "Internal error"}}));
        return true;
    }
    switch (outcome.kind) {
        case ApiOutcome::Kind::NotOurs:
            return false;
        case ApiOutcome::Kind::Respond:
            if (outcome.answer_at > 0) {
                auto held = std::make_shared<websock::HttpResponse>(outcome.response);
                switch (delayed_answers_.add(outcome.answer_at, [responder, held] { responder->respond(std::move(*held)); })) {
                    case DelayedAnswers::Added::Held: return true;
                    case DelayedAnswers::Added::Closed: break;  // stopping: answer now
                    case DelayedAnswers::Added::Full:  // many wrong tries at once: no early answers
                        outcome.response = json_response(429, {{"request", "Too many sign-in attempts; try again later"}});
                        api_.add_cors(request, outcome.response);
                        break;
                }
            }
            responder->respond(std::move(outcome.response));
            return true;
        case ApiOutcome::Kind::Listen:
            start_poll(request, outcome, responder);
            return true;
        case ApiOutcome::Kind::Publish: {
            auto decided = std::make_shared<ApiOutcome>(std::move(outcome));
            Json op = decided->op;
            publish(std::move(op), [this, request, decided, responder](bool ok, std::string_view error, const Applied* applied) {
                responder->respond(ok && applied != nullptr ? api_.finish(request, *decided, *applied)
                                                            : api_.bus_failure(request, error));
            });
            return true;
        }
    }
    return false;
}

void ChannelstreamModule::publish(Json op, Done done) {
    if (bus_ == nullptr) {
        if (done) done(false, "the module has no bus", nullptr);
        return;
    }
    std::string id = op.at("id").get<std::string>();
    {
        std::lock_guard lock(waiting_mutex_);
        waiting_.emplace(id, std::nullopt);
    }
    bus_->publish(std::string(kTopic), op.dump(), [this, id, done = std::move(done)](bool ok, std::string_view error) {
        std::optional<Applied> applied;
        {
            std::lock_guard lock(waiting_mutex_);
            if (auto it = waiting_.find(id); it != waiting_.end()) {
                applied = std::move(it->second);
                waiting_.erase(it);
            }
        }
        if (!done) return;
        try {
            if (ok && !applied) done(false, "the operation was not applied on this node", nullptr);
            else done(ok, error, applied ? &*applied : nullptr);
        } catch (const std::exception& e) {
            log_error("channelstream: answering an operation failed: {}", e.what());
        }
    });
}

void ChannelstreamModule::on_bus_message(std::string_view topic, std::string_view payload) {
    if (topic != kTopic) return;
    const Json op = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (op.is_discarded() || !op.is_object()) {
        log_warning("channelstream: ignored a bus message that is not a JSON object ({} bytes)", payload.size());
        return;
    }
    const std::string id = text_of(op, "id");
    const bool ours = text_of(op, "node") == node();
    std::vector<Applied> results;
    bool was_synced = true;
    {
        std::lock_guard lock(state_mutex_);
        was_synced = synced_;
        if (synced_) results.push_back(apply_locked(op));
        else receive_while_syncing_locked(op, payload.size(), results);
    }
    for (const Applied& applied : results)
        if (applied.status == 500) log_warning("channelstream: operation refused: {}", applied.response.dump());
    if (was_synced && ours && !results.empty()) {
        const Applied& applied = results.front();
        std::lock_guard lock(waiting_mutex_);
        if (auto it = waiting_.find(id); it != waiting_.end()) it->second = Applied{applied.status, applied.response, {}, {}};
    }
    for (const Applied& applied : results) dispatch(applied);
}

void ChannelstreamModule::dispatch(const Applied& applied) {
    struct Send {
        std::shared_ptr<websock::Client> client;
        std::string conn_id;
        std::shared_ptr<const std::string> payload;
    };
    std::vector<Send> sends;
    std::vector<std::pair<Poll, Payloads>> answers;
    std::vector<std::shared_ptr<websock::Client>> to_close;
    const std::size_t hold_limit = api_.config().max_pending_frames;
    {
        std::lock_guard lock(local_mutex_);
        std::vector<std::pair<std::string, Payloads>> poll_frames;  // in order of first delivery
        for (const Delivery& delivery : applied.deliveries) {
            if (delivery.node != node()) continue;
            if (auto socket = sockets_.find(delivery.conn_id); socket != sockets_.end()) {
                if (!socket->second.closing) {
                    sends.push_back({socket->second.client, delivery.conn_id, delivery.payload});
                } else if (socket->second.held.size() < hold_limit) {
                    socket->second.held.push_back(delivery.payload);
                }
            } else if (polls_.contains(delivery.conn_id)) {
                auto slot = std::find_if(poll_frames.begin(), poll_frames.end(), [&](const auto& p) { return p.first == delivery.conn_id; });
                if (slot == poll_frames.end()) slot = poll_frames.insert(poll_frames.end(), {delivery.conn_id, {}});
                slot->second.push_back(delivery.payload);
            } else {
                ++undelivered_;
            }
        }
        for (auto& [conn_id, frames] : poll_frames) {
            auto poll = polls_.find(conn_id);
            answers.emplace_back(std::move(poll->second), std::move(frames));
            polls_.erase(poll);
        }
        for (const std::string& conn_id : applied.closed) {
            if (auto socket = sockets_.find(conn_id); socket != sockets_.end()) {
                to_close.push_back(socket->second.client);
                socket_conn_.erase(socket->second.client->id());
                sockets_.erase(socket);
            }
            if (auto poll = polls_.find(conn_id); poll != polls_.end()) {
                answers.emplace_back(std::move(poll->second), Payloads{});
                polls_.erase(poll);
            }
        }
    }
    for (const Send& send : sends) {
        const websock::SendResult result = send.client->send("[" + *send.payload + "]");
        if (result == websock::SendResult::Closed) {
            // Closed under us, before on_close: keep it for the catch-up.
            std::lock_guard lock(local_mutex_);
            auto socket = sockets_.find(send.conn_id);
            if (socket != sockets_.end() && socket->second.client == send.client && socket->second.held.size() < hold_limit)
                socket->second.held.push_back(send.payload);
        } else if (result == websock::SendResult::Dropped) {
            ++undelivered_;
        }
    }
    for (const auto& client : to_close) client->close(websock::CloseCode::Normal, "connection removed");
    for (auto& [poll, frames] : answers) answer_poll(std::move(poll), frames);
}

void ChannelstreamModule::answer_poll(Poll poll, const Payloads& frames) {
    if (poll.responder->respond(api_.poll_response(poll.request, poll.callback, join_frames(frames))) || frames.empty()) return;
    // The poller went away with messages on their way to it: they go back to its connection's
    // queue. Not published from here (this may run inside the bus's handler): the next tick does.
    std::lock_guard lock(local_mutex_);
    auto& later = requeue_later_[poll.conn_id];
    later.insert(later.end(), frames.begin(), frames.end());
    const std::size_t limit = api_.config().max_pending_frames;
    if (later.size() > limit) later.erase(later.begin(), later.end() - static_cast<std::ptrdiff_t>(limit));
}

void ChannelstreamModule::start_poll(const websock::HttpRequest& request, const ApiOutcome& outcome,
                                     const std::shared_ptr<websock::HttpResponder>& responder) {
    const std::string conn_id = outcome.conn_id;
    const std::string attachment = random_uuid();
    const Micros now = now_micros();
    std::optional<Poll> replaced;
    {
        std::lock_guard lock(local_mutex_);
        if (stopping_) {
            Poll refused{responder, request, conn_id, outcome.callback, attachment, now, true};
            answer_poll(std::move(refused), {});  // respond() only enqueues: fine under the lock
            return;
        }
        if (auto old = polls_.find(conn_id); old != polls_.end()) {
            replaced = std::move(old->second);
            polls_.erase(old);
        }
        polls_[conn_id] = Poll{responder, request, conn_id, outcome.callback, attachment, now + micros(api_.config().wake_connections_after), false};
    }
    if (replaced) answer_poll(std::move(*replaced), {});
    publish(api_.make_op("attach", {{"conn_id", conn_id}, {"kind", "poll"}, {"attachment", attachment}}, now),
            [this, conn_id, attachment, request](bool ok, std::string_view error, const Applied* applied) {
                if (ok && applied != nullptr && applied->response.value("attached", false)) return;
                std::optional<Poll> poll;
                {
                    std::lock_guard lock(local_mutex_);
                    auto found = polls_.find(conn_id);
                    if (found == polls_.end() || found->second.attachment != attachment) return;
                    poll = std::move(found->second);
                    polls_.erase(found);
                }
                websock::HttpResponse response = ok ? json_response(401, {{"request", "Unknown connection"}}) : api_.bus_failure(request, error);
                if (ok) api_.add_cors(request, response);
                poll->responder->respond(std::move(response));
            });
}

websock::HandshakeDecision ChannelstreamModule::handshake(const websock::HandshakeRequest& request,
                                                          websock::HandshakeDecision policy_decision) {
    if (!policy_decision.accept) return policy_decision;
    std::string error;
    std::optional<std::string> conn_id;
    {
        std::lock_guard lock(state_mutex_);
        if (!synced_) return websock::HandshakeDecision::rejected(503, "node is syncing\n");
        conn_id = api_.known_connection(request.request, state_, &error);
    }
    if (!conn_id) return websock::HandshakeDecision::rejected(error == "Unknown connection" ? 401 : 400, error + "\n");
    return policy_decision;
}

void ChannelstreamModule::on_open(websock::Client& client) {
    std::string error;
    std::optional<std::string> conn_id;
    {
        std::lock_guard lock(state_mutex_);
        conn_id = api_.known_connection(client.request(), state_, &error);
    }
    if (!conn_id) {  // removed between the handshake and now
        client.close(websock::CloseCode::PolicyViolation, "Unknown connection");
        return;
    }
    const std::string attachment = random_uuid();
    std::shared_ptr<websock::Client> replaced;
    {
        std::lock_guard lock(local_mutex_);
        LocalSocket& slot = sockets_[*conn_id];
        if (slot.client) {
            replaced = slot.client;
            socket_conn_.erase(replaced->id());
        }
        slot = LocalSocket{client.shared_from_this(), attachment, false, {}};
        socket_conn_[client.id()] = *conn_id;
    }
    if (replaced) replaced->close(websock::CloseCode::Normal, "replaced by a newer socket for the same connection");
    std::weak_ptr<websock::Client> weak = client.shared_from_this();
    publish(api_.make_op("attach", {{"conn_id", *conn_id}, {"kind", "ws"}, {"attachment", attachment}}, now_micros()),
            [this, conn = *conn_id, attachment, weak](bool ok, std::string_view, const Applied* applied) {
                if (ok && applied != nullptr && applied->response.value("attached", false)) return;
                {
                    std::lock_guard lock(local_mutex_);
                    auto found = sockets_.find(conn);
                    if (found == sockets_.end() || found->second.attachment != attachment) return;
                    socket_conn_.erase(found->second.client->id());
                    sockets_.erase(found);
                }
                if (auto socket_client = weak.lock())
                    socket_client->close(ok ? websock::CloseCode::PolicyViolation : websock::CloseCode::InternalError,
                                  ok ? "Unknown connection" : "the hub's bus is unavailable");
            });
}

void ChannelstreamModule::on_message(websock::Client&, std::string_view, websock::MessageType) {
    // Clients send {"type": "heartbeat"} now and then; an attached socket is kept alive by
    // this node's touch operations, so there is nothing to do.
}

void ChannelstreamModule::on_close(websock::Client& client, websock::CloseCode, std::string_view) {
    std::string conn_id, attachment;
    {
        std::lock_guard lock(local_mutex_);
        auto owner = socket_conn_.find(client.id());
        if (owner == socket_conn_.end()) return;  // removed, or replaced by a newer socket
        conn_id = owner->second;
        socket_conn_.erase(owner);
        auto socket = sockets_.find(conn_id);
        if (socket == sockets_.end() || socket->second.client.get() != &client) return;
        socket->second.closing = true;
        attachment = socket->second.attachment;
    }
    publish(api_.make_op("detach", {{"conn_id", conn_id}, {"attachment", attachment}}, now_micros()),
            [this, conn_id, attachment](bool, std::string_view, const Applied*) { socket_detached(conn_id, attachment); });
}

void ChannelstreamModule::socket_detached(const std::string& conn_id, const std::string& attachment) {
    Payloads held;
    {
        std::lock_guard lock(local_mutex_);
        auto socket = sockets_.find(conn_id);
        if (socket == sockets_.end() || socket->second.attachment != attachment) return;
        held = std::move(socket->second.held);
        sockets_.erase(socket);
    }
    if (held.empty()) return;
    // Messages that reached this node between the socket closing and its detach: back into
    // the connection's queue (on every node), so its next attach catches up on them.
    Json frames = Json::array();
    for (const auto& payload : held) frames.push_back(Json::parse(*payload));
    publish(api_.make_op("requeue", {{"conn_id", conn_id}, {"frames", std::move(frames)}}, now_micros()), nullptr);
}

void ChannelstreamModule::on_tick() { tick(now_micros()); }

void ChannelstreamModule::tick(Micros now) {
    std::lock_guard tick_lock(tick_mutex_);
    for (auto& answer : delayed_answers_.take_due(now)) answer();
    if (bus_ != nullptr) sync_step(now);
    {
        std::lock_guard lock(state_mutex_);
        if (!synced_) return;  // nothing is attached here yet, and the state is not ours to collect
    }
    const ChannelstreamConfig& config = api_.config();
    std::vector<std::pair<std::string, std::string>> expired;  // conn_id, attachment
    std::vector<std::shared_ptr<websock::Client>> heartbeat;
    std::vector<std::string> attached;
    std::unordered_map<std::string, Payloads> requeue;
    // Attached connections are marked active at least three times per gc_conns_after.
    const Micros touch_every = std::max<Micros>(1'000'000, std::min(micros(config.heartbeat_interval), micros(config.gc_conns_after) / 3));
    const bool beat = now - last_heartbeat_ >= touch_every;
    {
        std::lock_guard lock(local_mutex_);
        requeue.swap(requeue_later_);
        for (auto& [conn_id, poll] : polls_) {
            // Its time is up, or nobody waits for it any more (the poller went away).
            if (!poll.expiring && (now >= poll.deadline || poll.responder->answered())) {
                poll.expiring = true;
                expired.emplace_back(conn_id, poll.attachment);
            }
        }
        if (beat) {
            last_heartbeat_ = now;
            for (const auto& [conn_id, socket] : sockets_) {
                if (socket.closing) continue;
                heartbeat.push_back(socket.client);
                attached.push_back(conn_id);
            }
            for (const auto& [conn_id, poll] : polls_) attached.push_back(conn_id);
        }
    }
    // A poll that waited its time out: detach it first, then answer [] (anything that comes
    // before the detach applies is answered instead).
    for (const auto& [conn_id, attachment] : expired) {
        publish(api_.make_op("detach", {{"conn_id", conn_id}, {"attachment", attachment}}, now),
                [this, conn = conn_id, attach = attachment](bool, std::string_view, const Applied*) {
                    std::optional<Poll> poll;
                    {
                        std::lock_guard lock(local_mutex_);
                        auto found = polls_.find(conn);
                        if (found == polls_.end() || found->second.attachment != attach) return;
                        poll = std::move(found->second);
                        polls_.erase(found);
                    }
                    answer_poll(std::move(*poll), {});
                });
    }
    for (auto& [conn_id, frames] : requeue) {
        Json list = Json::array();
        for (const auto& payload : frames) list.push_back(Json::parse(*payload));
        publish(api_.make_op("requeue", {{"conn_id", conn_id}, {"frames", std::move(list)}}, now), nullptr);
    }
    // channelstream's heartbeat: an empty list every few seconds.
    for (const auto& client : heartbeat) client->send("[]");
    if (!attached.empty()) publish(api_.make_op("touch", {{"conn_ids", attached}}, now), nullptr);

    bool garbage = false;
    {
        std::lock_guard lock(state_mutex_);
        garbage = state_.has_garbage(now, micros(config.gc_conns_after), micros(config.gc_users_after));
    }
    if (garbage && !gc_in_flight_.exchange(true)) {
        publish(api_.make_op("gc", {{"conn_ttl", micros(config.gc_conns_after)}, {"user_ttl", micros(config.gc_users_after)}}, now),
                [this](bool, std::string_view, const Applied*) { gc_in_flight_ = false; });
    }
}

void ChannelstreamModule::on_stop() {
    std::vector<Poll> polls;
    {
        std::lock_guard lock(local_mutex_);
        stopping_ = true;
        for (auto& [conn_id, poll] : polls_) polls.push_back(std::move(poll));
        polls_.clear();
    }
    for (auto& poll : polls) answer_poll(std::move(poll), {});
    for (auto& answer : delayed_answers_.close()) answer();
}

Json ChannelstreamModule::admin_snapshot() const {
    std::lock_guard lock(state_mutex_);
    return state_.admin_info();
}

}  // namespace hub::channelstream
