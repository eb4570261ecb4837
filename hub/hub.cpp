#include "hub/hub.hpp"

#include <exception>
#include <thread>

#include "hub/aiows.hpp"
#include "hub/log.hpp"
#include "hub/redis_bus.hpp"

namespace hub {

namespace {

websock::ServerOptions server_options(const HubOptions& options) {
    websock::ServerOptions server;
    server.engine = options.engine;
    server.event_loops = options.event_loops;
    server.host = options.host;
    server.port = options.port;
    server.unix_socket_path = options.unix_socket_path;
    server.reuse_address = options.reuse_address;
    server.reuse_port = options.reuse_port;
    server.listen_fd = options.listen_fd;
    server.max_http_body_bytes = options.max_http_body_bytes;
    server.max_message_bytes = options.max_client_message_bytes;
    server.max_frame_bytes = options.max_client_message_bytes;
    server.max_outbound_queue_bytes = options.max_subscriber_queue_bytes;
    server.queue_full_policy = websock::QueueFullPolicy::Close;  // a slow subscriber is told why (1008)
    server.max_clients = options.max_clients;
    server.shutdown_timeout = options.shutdown_timeout;
    server.http_response_timeout = options.http_response_timeout;
    server.handle_signals = false;  // the program decides; stop() must reach the modules first
    return server;
}

// A bus topic belongs to a module when it is the module's name or starts with it followed by
// a separator ("channelstream" owns "channelstream" and "channelstream:presence").
bool topic_belongs_to(std::string_view topic, std::string_view module) {
    if (topic.substr(0, module.size()) != module) return false;
    if (topic.size() == module.size()) return true;
    const char next = topic[module.size()];
    return next == ':' || next == '/' || next == '.';
}

void answer(const std::shared_ptr<websock::HttpResponder>& responder, websock::HttpResponse response) noexcept {
    try {
        responder->respond(std::move(response));
    } catch (...) {
        // The server's response timeout answers instead.
    }
}

}  // namespace

Hub::Hub(HubOptions options)
    : options_(std::move(options)),
      prefix_(aiows::normalize_url_prefix(options_.url_prefix)),
      server_(std::make_unique<websock::WebSocketServer>(server_options(options_))) {
    log_add_secret(options_.password);
    install_callbacks();
}

Hub::~Hub() {
    stop();
    shut_down_threads();
}

Hub& Hub::add_module(std::unique_ptr<HubModule> module) {
    if (listening_ || !module) return *this;
    Mounted mounted;
    mounted.connections = &metrics_.gauge("hub_connections", "Open WebSocket connections on this node",
                                          {{"api", std::string(module->name())}});
    mounted.module = std::move(module);
    modules_.push_back(std::move(mounted));
    return *this;
}

void Hub::set_bus(std::unique_ptr<Bus> bus) {
    if (!listening_) bus_ = std::move(bus);
}

bool Hub::listen() {
    if (listening_) return true;
    if (!bus_) {
        if (options_.redis_url.empty()) {
            bus_ = std::make_unique<LocalBus>();
        } else {
            auto redis = parse_redis_url(options_.redis_url);
            if (!redis) {
                log_error("--redis: cannot read this URL; expected redis://HOST:PORT");
                return false;
            }
            log_add_secret(redis->password);
            redis->log = [](std::string_view line) { log_line(LogLevel::Info, line); };
            bus_ = std::make_unique<RedisBus>(std::move(*redis));
        }
    }
    register_bus_metrics();
    register_server_metrics();
    // Messages another node published that Redis lost before this node read them: each
    // module tells its clients (the rule: delivered, or the subscriber is told).
    bus_->set_gap_handler([this](std::string_view why) {
        for (auto& mounted : modules_) mounted.module->on_bus_gap(why);
    });
    bus_->start([this](std::string_view topic, std::string_view payload) { handle_bus_message(topic, payload); });
    bus_started_ = true;

    const ModuleContext context{bus_.get(), &metrics_, &options_.payload_rules};
    for (auto& mounted : modules_) mounted.module->start(context);

    if (!server_->listen()) {
        log_error("cannot listen on {}", options_.unix_socket_path.empty()
                                             ? options_.host + ":" + std::to_string(options_.port)
                                             : "unix:" + options_.unix_socket_path);
        shut_down_threads();
        return false;
    }
    listening_ = true;
    tick_thread_ = std::thread([this] { tick_loop(); });
    return true;
}

std::string Hub::address() const {
    if (!options_.unix_socket_path.empty()) return "unix:" + options_.unix_socket_path;
    const bool ipv6 = options_.host.find(':') != std::string::npos;
    return (ipv6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(server_->port());
}

std::uint16_t Hub::port() const noexcept { return server_->port(); }

bool Hub::serve_forever() {
    if (!listen()) return false;
    const bool served = server_->serve_forever();
    shut_down_threads();
    return served;
}

void Hub::stop() noexcept { stop(websock::CloseCode::GoingAway, "server shutting down", options_.shutdown_timeout); }

void Hub::stop(websock::CloseCode code, std::string_view reason, websock::Milliseconds drain) noexcept {
    if (stop_requested_.exchange(true)) return;
    // Modules answer what they hold (long polls) while the connections are still up.
    for (auto& mounted : modules_) {
        try {
            mounted.module->on_stop();
        } catch (const std::exception& e) {
            log_error("{}: on_stop failed: {}", mounted.module->name(), e.what());
        } catch (...) {
        }
    }
    server_->stop(code, reason, drain);
    {
        std::lock_guard lock(tick_mutex_);
        tick_stopping_ = true;
    }
    tick_wake_.notify_all();
}

// ---- zero-downtime restart ------------------------------------------------------------------

struct Hub::BusyScope {
    Hub& hub;
    ~BusyScope() { hub.busy_.fetch_sub(1); }
};

// Raise busy_ first, then look at frozen_ (both sequentially consistent): a freeze that set
// frozen_ and then saw busy_ at 0 can be sure that nobody is inside a module, nor will be.
bool Hub::enter_module() noexcept {
    busy_.fetch_add(1);
    if (!frozen_.load()) return true;
    busy_.fetch_sub(1);
    return false;
}

bool Hub::freeze_for_handover(std::chrono::milliseconds limit) {
    frozen_.store(true);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    // A publish inside a module takes microseconds (a Redis one is handed to the bus's
    // thread): poll briefly rather than make every request signal a condition.
    while (busy_.load() != 0) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

void Hub::thaw() noexcept { frozen_.store(false); }

std::vector<std::pair<std::string, std::string>> Hub::export_handover() {
    std::vector<std::pair<std::string, std::string>> states;
    for (auto& mounted : modules_) {
        std::string state = mounted.module->export_handover();
        if (!state.empty()) states.emplace_back(std::string(mounted.module->name()), std::move(state));
    }
    return states;
}

bool Hub::import_handover(std::string_view module, std::string_view state) {
    for (auto& mounted : modules_) {
        if (mounted.module->name() != module) continue;
        mounted.module->import_handover(state);
        return true;
    }
    log_warning("restart: the predecessor handed over {} bytes for module {}, which this binary does not have; dropped",
                state.size(), module);
    return false;
}

void Hub::shut_down_threads() noexcept {
    std::call_once(shut_down_once_, [this] {
        {
            std::lock_guard lock(tick_mutex_);
            tick_stopping_ = true;
        }
        tick_wake_.notify_all();
        if (tick_thread_.joinable()) tick_thread_.join();
        // After the server: no request can publish any more. Pending publishes get !ok.
        if (bus_ && bus_started_) bus_->stop();
    });
}

void Hub::tick_loop() {
    std::unique_lock lock(tick_mutex_);
    for (;;) {
        tick_wake_.wait_for(lock, options_.tick_interval, [this] { return tick_stopping_; });
        if (tick_stopping_) return;
        // Frozen for a restart: housekeeping would change state after it was handed over.
        if (frozen_.load()) continue;
        lock.unlock();
        for (auto& mounted : modules_) {
            try {
                mounted.module->on_tick();
            } catch (const std::exception& e) {
                log_error("{}: on_tick failed: {}", mounted.module->name(), e.what());
            } catch (...) {
                log_error("{}: on_tick failed", mounted.module->name());
            }
        }
        lock.lock();
    }
}

void Hub::register_bus_metrics() {
    const BusStatus first = bus_->status();
    auto& info = metrics_.gauge("hub_bus_info", "The bus this node publishes through (the label says which)",
                                {{"kind", first.kind}});
    info.Set(1);
    auto& connected = metrics_.gauge("hub_bus_connected", "1 while the bus (Redis) is reachable, 0 while it is not");
    auto& reconnects = metrics_.counter("hub_bus_reconnects_total", "Successful reconnections to the bus since start");
    auto& published = metrics_.counter("hub_bus_published_total", "Messages this node put on the bus");
    auto& received = metrics_.counter("hub_bus_received_total", "Messages this node took off the bus, its own included");
    auto& failed = metrics_.counter("hub_bus_failed_total", "Publishes the bus refused (Redis down, timeout)");
    metrics_.on_scrape([this, &connected, &reconnects, &published, &received, &failed] {
        const BusStatus status = bus_->status();
        connected.Set(status.connected ? 1 : 0);
        Metrics::set_counter(reconnects, static_cast<double>(status.reconnects));
        Metrics::set_counter(published, static_cast<double>(status.published));
        Metrics::set_counter(received, static_cast<double>(status.received));
        Metrics::set_counter(failed, static_cast<double>(status.failed));
    });
}

void Hub::register_server_metrics() {
    // What the server's memory budgets bound (ServerOptions::max_total_outbound_bytes and
    // max_total_incoming_message_bytes): a rising backlog is subscribers falling behind.
    auto& backlog = metrics_.gauge("hub_outbound_backlog_bytes",
                                   "Bytes waiting for subscribers that are behind (past each one's first 64 KiB)");
    auto& incoming = metrics_.gauge("hub_incoming_message_bytes",
                                    "Bytes of large WebSocket messages being received (past each one's first 64 KiB)");
    metrics_.on_scrape([this, &backlog, &incoming] {
        backlog.Set(static_cast<double>(server_->outbound_backlog_bytes()));
        incoming.Set(static_cast<double>(server_->incoming_message_bytes()));
    });
}

Hub::Mounted* Hub::websocket_owner(const websock::HttpRequest& request) const {
    for (const auto& mounted : modules_)
        if (mounted.module->owns_websocket(request)) return const_cast<Mounted*>(&mounted);
    return nullptr;
}

Hub::Mounted* Hub::owner_of(std::uint64_t client_id) const {
    std::lock_guard lock(owners_mutex_);
    const auto it = owners_.find(client_id);
    return it == owners_.end() ? nullptr : it->second;
}

void Hub::install_callbacks() {
    websock::WebSocketServer& server = *server_;
    server.on_http_request_async([this](const websock::HttpRequest& request, std::shared_ptr<websock::HttpResponder> responder) {
        handle_http(request, responder);
    });
    server.on_handshake([this](const websock::HandshakeRequest& request, websock::HandshakeDecision policy_decision) {
        if (!policy_decision.accept) return policy_decision;
        Mounted* owner = websocket_owner(request.request);
        if (owner == nullptr) return websock::HandshakeDecision::rejected(404, "no WebSocket endpoint at this path\n");
        return owner->module->handshake(request, std::move(policy_decision));
    });
    server.on_connection_open([this](websock::Client& client) {
        Mounted* owner = websocket_owner(client.request());
        if (owner == nullptr) {  // the handshake let it through, so a module changed its mind
            client.close(websock::CloseCode::PolicyViolation, "no endpoint at this path");
            return;
        }
        {
            std::lock_guard lock(owners_mutex_);
            owners_[client.id()] = owner;
        }
        owner->connections->Increment();
        owner->module->on_open(client);
    });
    server.on_data_receive([this](websock::Client& client, std::string_view data, websock::MessageType type) {
        if (!enter_module()) {
            // Restarting: the state went to the successor already; this client is told to
            // reconnect there (its message unread: a module's protocol resends it, or an
            // unacknowledged delivery comes again).
            client.close(websock::CloseCode::ServiceRestart, kRestartCloseReason);
            return;
        }
        BusyScope busy{*this};
        if (Mounted* owner = owner_of(client.id())) owner->module->on_message(client, data, type);
    });
    server.on_connection_close([this](websock::Client& client, websock::CloseCode code, std::string_view reason) {
        Mounted* owner = nullptr;
        {
            std::lock_guard lock(owners_mutex_);
            const auto it = owners_.find(client.id());
            if (it == owners_.end()) return;
            owner = it->second;
            owners_.erase(it);
        }
        owner->connections->Decrement();
        owner->module->on_close(client, code, reason);
    });
    server.on_error([this](websock::Client* client, const websock::Error& error) {
        switch (error.kind) {
            case websock::ErrorKind::QueueFull:
                metrics_.slow_subscriber_disconnects.Increment();
                if (client != nullptr)
                    log_warning("slow subscriber closed with 1008: client {} ({}) on {}: {}", client->id(),
                                client->peer_address(), client->path(), error.message);
                else
                    log_warning("slow subscriber closed with 1008: {}", error.message);
                return;
            case websock::ErrorKind::Io:
            case websock::ErrorKind::Timeout:
                return;  // peers that vanish are routine; the close callback accounts for them
            default:
                if (client != nullptr)
                    log_info("client {} ({}): {}: {}", client->id(), client->peer_address(), websock::to_string(error.kind),
                             error.message);
                else
                    log_info("{}: {}", websock::to_string(error.kind), error.message);
        }
    });
}

void Hub::handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder) {
    metrics_.http_requests.Increment();
    if (!enter_module()) {
        // Restarting: nothing is accepted here any more. Connection: close makes the client
        // retry on a new connection, which the successor accepts.
        answer(responder, websock::HttpResponse::text(503, "service restarting: retry on a new connection\n")
                              .header("Retry-After", "1")
                              .header("Connection", "close"));
        return;
    }
    BusyScope busy{*this};
    try {
        if (request.path == prefix_ + "metrics") {
            if (request.method != "GET" && request.method != "HEAD") {
                answer(responder, websock::HttpResponse::text(405, "method not allowed\n").header("Allow", "GET, HEAD"));
                return;
            }
            answer(responder, websock::HttpResponse::text(200, metrics_.render(), kPrometheusContentType));
            return;
        }
        for (auto& mounted : modules_)
            if (mounted.module->handle_http(request, responder)) return;
        answer(responder, websock::HttpResponse::text(404, "not found\n"));
    } catch (const std::exception& e) {
        log_error("{} {}: {}", request.method, request.path, e.what());
        answer(responder, websock::HttpResponse::text(500, "internal error\n"));
    }
}

void Hub::handle_bus_message(std::string_view topic, std::string_view payload) {
    for (auto& mounted : modules_) {
        if (!topic_belongs_to(topic, mounted.module->name())) continue;
        try {
            mounted.module->on_bus_message(topic, payload);
        } catch (const std::exception& e) {
            log_error("{}: a bus message was not applied: {}", mounted.module->name(), e.what());
        } catch (...) {
            log_error("{}: a bus message was not applied", mounted.module->name());
        }
        return;
    }
    log_warning("a bus message with topic \"{}\" belongs to no module here; ignored", topic);
}

}  // namespace hub
