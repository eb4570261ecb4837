#include "hub/streams/module.hpp"

#include <nlohmann/json.hpp>

#include "hub/aiows.hpp"
#include "hub/log.hpp"
#include "hub/metrics.hpp"
#include "hub/payload_rules.hpp"
#include "hub/streams/core.hpp"
#include "hub/streams/protocol.hpp"

namespace hub {

namespace {

using Json = nlohmann::json;

// Every answer of the streams API is a JSON object; refusals are {"error": code, "message": text}.
websock::HttpResponse json_answer(int status, const Json& body) {
    return websock::HttpResponse::text(status, body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
}

websock::HttpResponse refusal(int status, std::string_view code, std::string_view message) {
    return json_answer(status, Json{{"error", code}, {"message", message}});
}

void respond(const std::shared_ptr<websock::HttpResponder>& responder, websock::HttpResponse response) noexcept {
    try {
        responder->respond(std::move(response));
    } catch (...) {
        // Out of memory while answering: the server's response timeout answers 503 instead.
    }
}

PayloadKind kind_of(streams::Format format) {
    switch (format) {
        case streams::Format::Json: return PayloadKind::Json;
        case streams::Format::Binary: return PayloadKind::Binary;
        case streams::Format::Text: break;
    }
    return PayloadKind::Text;
}

// What export_handover() writes: a tag and version, then the bus's histories as they are.
constexpr std::string_view kHandoverTag = "streams-handover-1\n";

}  // namespace

StreamsModule::StreamsModule(StreamsOptions options)
    : options_(std::move(options)), prefix_(aiows::normalize_url_prefix(options_.url_prefix)) {}

StreamsModule::~StreamsModule() {
    if (core_) core_->stop_worker();
}

void StreamsModule::start(const ModuleContext& context) {
    context_ = context;
    if (context_.bus != nullptr) context_.bus->set_history_limits(options_.history);
    core_ = std::make_shared<streams::Core>(options_, context_.bus);
    core_->start_worker();
    if (context_.metrics == nullptr) return;
    Metrics& metrics = *context_.metrics;
    const prometheus::Labels api{{"api", "streams"}};
    auto& published = metrics.counter("hub_published_total", "Packages accepted for publishing on this node", api);
    auto& failed = metrics.counter("hub_publish_failures_total", "Publishes the bus refused (answered 503)", api);
    auto& rejected = metrics.counter("hub_rejected_requests_total", "Publish requests refused with 400, 403, 405 or 426", api);
    auto& delivered = metrics.counter("hub_delivered_total", "Messages queued to a subscriber on this node", api);
    auto& dropped = metrics.counter("hub_dropped_total", "Messages a subscriber on this node did not take (closing, or its queue full)", api);
    auto& channels = metrics.gauge("hub_channels", "Channels with at least one subscriber on this node", api);
    auto& subscriptions = metrics.gauge("hub_subscriptions", "Channel subscriptions on this node", api);
    auto& resumed = metrics.counter("hub_stream_resumes_total", "Subscribes with since, by whether the gap was recovered",
                                    {{"api", "streams"}, {"recovered", "true"}});
    auto& not_recovered = metrics.counter("hub_stream_resumes_total", "Subscribes with since, by whether the gap was recovered",
                                          {{"api", "streams"}, {"recovered", "false"}});
    auto& window_cuts = metrics.counter("hub_stream_ack_window_cuts_total",
                                        "Connections closed with 1008 because a subscription's ack window was full", api);
    auto& history_lost = metrics.counter("hub_stream_history_lost_total",
                                         "Subscriptions ended because a gap was no longer in history", api);
    published_ = &published;
    publish_failed_ = &failed;
    rejected_ = &rejected;
    std::weak_ptr<streams::Core> weak_core = core_;
    metrics.on_scrape([weak_core, &delivered, &dropped, &channels, &subscriptions, &resumed, &not_recovered, &window_cuts,
                       &history_lost] {
        const auto core = weak_core.lock();
        if (!core) return;
        const streams::CoreStats stats = core->stats();
        Metrics::set_counter(delivered, static_cast<double>(stats.delivered));
        Metrics::set_counter(dropped, static_cast<double>(stats.dropped));
        Metrics::set_counter(resumed, static_cast<double>(stats.resumed));
        Metrics::set_counter(not_recovered, static_cast<double>(stats.not_recovered));
        Metrics::set_counter(window_cuts, static_cast<double>(stats.ack_window_cuts));
        Metrics::set_counter(history_lost, static_cast<double>(stats.history_lost));
        channels.Set(static_cast<double>(stats.channels));
        subscriptions.Set(static_cast<double>(stats.subscriptions));
    });
}

bool StreamsModule::handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder) {
    const streams::Route route = streams::match_route(request.path, prefix_);
    if (route.kind == streams::Route::Kind::None) return false;
    auto refuse = [&](websock::HttpResponse response) {
        if (rejected_ != nullptr) rejected_->Increment();
        respond(responder, std::move(response));
        return true;
    };
    if (route.kind == streams::Route::Kind::Socket) {
        if (request.method != "GET") return refuse(refusal(405, "method_not_allowed", "GET (a WebSocket upgrade) only").header("Allow", "GET"));
        return refuse(refusal(426, "upgrade_required", "this is a WebSocket endpoint").header("Upgrade", "websocket"));
    }
    if (const auto problem = streams::channel_name_problem(route.channel, options_.max_channel_name_bytes))
        return refuse(refusal(400, "bad_channel", *problem));
    if (request.method == "GET") {
        position(route.channel, responder);
        return true;
    }
    if (request.method != "POST") return refuse(refusal(405, "method_not_allowed", "GET or POST").header("Allow", "GET, POST"));
    publish(request, route.channel, responder);
    return true;
}

void StreamsModule::publish(const websock::HttpRequest& request, const std::string& channel,
                            const std::shared_ptr<websock::HttpResponder>& responder) {
    auto refuse = [&](websock::HttpResponse response) {
        if (rejected_ != nullptr) rejected_->Increment();
        respond(responder, std::move(response));
    };
    if (!aiows::password_accepted(request, options_.password))
        return refuse(refusal(403, "not_authorized", "a wrong or missing publish password"));
    const auto format = streams::format_of_content_type(request.header("Content-Type"));
    if (!format)
        return refuse(refusal(415, "bad_content_type",
                              "Content-Type must be text/plain (the default), application/json or application/octet-stream"));
    std::string problem;
    auto body = streams::checked_body(*format, request.body, problem);
    if (!body) return refuse(refusal(400, "bad_body", problem));
    if (context_.payload_rules != nullptr) {
        if (const auto refused = context_.payload_rules->check(channel, *body, kind_of(*format)))
            return refuse(json_answer(refused->http_status,
                                      Json{{"error", "payload_rule"}, {"rule", refused->rule}, {"message", refused->message}}));
    }
    if (context_.bus == nullptr) return refuse(refusal(503, "unavailable", "no bus"));
    context_.bus->publish_sequenced(
        std::string(kTopic), channel, streams::encode_payload(*format, *body),
        [this, responder, channel](bool ok, std::string_view error, const SequencedMessage& accepted) {
            if (ok) {
                if (published_ != nullptr) published_->Increment();
                respond(responder, json_answer(201, Json{{"channel", channel}, {"epoch", accepted.epoch}, {"offset", accepted.offset}}));
                return;
            }
            if (publish_failed_ != nullptr) publish_failed_->Increment();
            log_warning("streams: a publish to {} was refused by the bus: {}", channel, error);
            respond(responder, refusal(503, "unavailable", error).header("Retry-After", "1"));
        });
}

void StreamsModule::position(const std::string& channel, const std::shared_ptr<websock::HttpResponder>& responder) {
    if (context_.bus == nullptr) return respond(responder, refusal(503, "unavailable", "no bus"));
    context_.bus->read_history(channel, 0, 0, [responder, channel](HistoryRead read) {
        if (!read.ok) return respond(responder, refusal(503, "unavailable", read.error).header("Retry-After", "1"));
        respond(responder, json_answer(200, Json{{"channel", channel},
                                                 {"epoch", read.epoch},
                                                 {"offset", read.last_offset},
                                                 {"oldest", read.oldest_offset}}));
    });
}

bool StreamsModule::owns_websocket(const websock::HttpRequest& request) const {
    return streams::match_route(request.path, prefix_).kind == streams::Route::Kind::Socket;
}

websock::HandshakeDecision StreamsModule::handshake(const websock::HandshakeRequest& request,
                                                    websock::HandshakeDecision policy_decision) {
    // The subprotocol is chosen when offered, never required: a client that offers none is served.
    for (const auto offered : request.subprotocols)
        if (offered == streams::kSubprotocol) policy_decision.subprotocol = std::string(streams::kSubprotocol);
    return policy_decision;
}

void StreamsModule::on_open(websock::Client& client) {
    if (core_) core_->open(client);
}

void StreamsModule::on_message(websock::Client& client, std::string_view data, websock::MessageType type) {
    if (!core_) return;
    if (type != websock::MessageType::Text) {
        client.send(streams::encode_error(streams::ProtocolError{"bad_json", "requests are JSON text frames, not binary", {}, {}}));
        return;
    }
    core_->handle_frame(client, data);
}

void StreamsModule::on_close(websock::Client& client, websock::CloseCode, std::string_view) {
    if (core_) core_->close(client.id());
}

void StreamsModule::on_bus_message(std::string_view, std::string_view payload) {
    if (core_) core_->on_bus_message(payload);
}

void StreamsModule::on_stop() {
    if (core_) core_->notify_stopping();
}

std::string StreamsModule::export_handover() {
    if (context_.bus == nullptr) return {};
    std::string histories = context_.bus->export_histories();
    if (histories.empty()) return {};  // Redis: the histories stay where they are
    return std::string(kHandoverTag) + histories;
}

void StreamsModule::import_handover(std::string_view state) {
    if (context_.bus == nullptr || state.empty()) return;
    if (!state.starts_with(kHandoverTag)) {
        log_error("streams: the handed-over state is not this version's ({} bytes); streams start afresh", state.size());
        return;
    }
    state.remove_prefix(kHandoverTag.size());
    if (auto* local = dynamic_cast<LocalBus*>(context_.bus)) {
        // LocalBus says why it refuses a state (damaged, another version): worth a line in the log.
        if (const std::string refused = local->try_import_histories(state); !refused.empty()) {
            log_error("streams: the previous process's stream histories were refused ({}); streams start afresh", refused);
            return;
        }
    } else {
        context_.bus->import_histories(state);
    }
    log_info("streams: took over the previous process's stream histories ({} bytes)", state.size());
}

}  // namespace hub
