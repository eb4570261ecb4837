// Hub: the websock-hub server. It owns the WebSocketServer, the Bus (LocalBus, or RedisBus
// when a Redis URL is given), the Metrics and the API modules, and routes between them:
//
//   plain HTTP   GET {prefix}/metrics is the hub's; anything else is offered to each module's
//                handle_http() in turn; 404 when none claims it
//   upgrades     the module whose owns_websocket() claims the path decides the handshake and
//                gets that client's open/message/close; 404 when none claims it
//   bus          each message goes to the module whose name() prefixes its topic
//   tick         about once a second each module's on_tick() runs on the hub's timer thread
//
// Adding an API is one line: hub.add_module(std::make_unique<MyModule>(...)) before listen().
//
// Threads: add_module/set_bus before listen(); listen() and serve_forever() from one thread;
// stop() and the restart calls (freeze_for_handover, export_handover, ...) from any thread
// but a callback's (a signal-handling thread, the restart thread of hub/restart.cpp). The server's callbacks run on
// its loop thread (EventLoop engine) or client threads (ThreadPerClient); bus messages on the
// bus's thread (RedisBus) or the publisher's (LocalBus).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <websock/websock.hpp>

#include "hub/bus.hpp"
#include "hub/metrics.hpp"
#include "hub/module.hpp"
#include "hub/payload_rules.hpp"

namespace prometheus {
class Gauge;
}

namespace hub {

/// The reason of the 1012 (Service Restart) close a restart gives every client.
inline constexpr std::string_view kRestartCloseReason = "service restart: reconnect and resume";

struct HubOptions {
    // --- where to listen (aiows' flags) ---
    std::string host = "127.0.0.1";  ///< loopback: exposing a publish API is a decision (aiows: every interface)
    std::uint16_t port = 8080;       ///< aiohttp's default; 0 picks a free port
    std::string unix_socket_path;    ///< when set, listen on this unix socket instead of TCP (--usock)
    bool reuse_address = true;       ///< SO_REUSEADDR: restart without waiting out TIME_WAIT
    bool reuse_port = false;         ///< SO_REUSEPORT: off, so that a second hub on the port fails loudly
                                     ///< (aiows turns it on)
    /// A listening socket to serve instead of binding (LISTEN_FDS: systemd socket activation,
    /// or the predecessor of a zero-downtime restart); -1: bind host:port or unix_socket_path.
    int listen_fd = -1;

    // --- the APIs ---
    std::string url_prefix;  ///< every endpoint (and /metrics) lives under it: "/api" -> /api/channel/x/
    std::string password;    ///< the publish password; empty: publishing is open (a warning is logged)
    std::string redis_url;   ///< redis://HOST:PORT: publish through Redis, so several nodes share channels
    /// Per-channel payload rules, checked once per publish by every API (--channel-rule, the
    /// INI file's [channel:PATTERN] sections); none: every payload passes.
    PayloadRules payload_rules;

    // --- the server ---
    /// EventLoop: one epoll thread runs every connection, no context switch per delivery
    /// (fan-out speed). ThreadPerClient: one thread per connection.
    websock::Engine engine = websock::Engine::EventLoop;
    /// EventLoop only: how many loops (threads); 0 = one per core. Deliveries to one
    /// subscriber keep their order on any count.
    std::size_t event_loops = 1;
    /// A subscriber this many bytes behind is closed with 1008 (slow subscriber). Above the
    /// largest message (max_http_body_bytes) so that one message never trips an idle reader.
    std::size_t max_subscriber_queue_bytes = 4u << 20;
    std::size_t max_http_body_bytes = 1u << 20;   ///< a publish body; 413 past it (aiohttp's default too)
    std::size_t max_client_message_bytes = 64u << 10;  ///< what a subscriber may send ("close"); 1009 past it
    std::size_t max_clients = 10000;  ///< open WebSockets; more get 503
    websock::Milliseconds tick_interval{1000};  ///< how often modules' on_tick() runs
    websock::Milliseconds shutdown_timeout{3000};  ///< stop(): time clients get to finish closing

    // --- zero-downtime restart (hub/restart.hpp; main() hands these to the Restarter) ---
    std::string pidfile;  ///< --pidfile: written atomically once serving; a successor rewrites it
    websock::Milliseconds drain_timeout{10000};  ///< after a restart's 1012: time clients get to go
    websock::Milliseconds restart_ready_timeout{30000};  ///< a successor that is not ready by then is killed
    /// A request a module holds (long poll) longer than this is answered 503 by the server.
    websock::Milliseconds http_response_timeout{120000};
};

class Hub {
public:
    explicit Hub(HubOptions options);
    ~Hub();  ///< stops everything and joins every thread it started
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;

    /// Mount an API. Before listen(); modules are asked in the order they were added.
    Hub& add_module(std::unique_ptr<HubModule> module);
    /// Use this bus instead of the one HubOptions names (tests). Before listen().
    void set_bus(std::unique_ptr<Bus> bus);

    /// Make the bus, start it and the modules and the timer thread, bind the socket. False
    /// (with the reason logged) on failure: a bad Redis URL, a port in use.
    bool listen();
    /// "127.0.0.1:8080" or "unix:/path/to.sock" (after listen()).
    std::string address() const;
    std::uint16_t port() const noexcept;
    /// Serve until stop(); then stops the timer thread and the bus. False if it could not listen.
    bool serve_forever();
    /// Tell modules to answer what they hold, close every client with 1001, and make
    /// serve_forever() return. Safe from any thread; calling it twice is harmless.
    void stop() noexcept;

    // --- zero-downtime restart (hub/restart.cpp drives these; docs/hub.md) ---
    /// Refuse publishes from now on (every plain HTTP request: 503, Retry-After and
    /// Connection: close, so the client retries on a new connection, which the successor
    /// takes; a WebSocket message: its client is closed with 1012 unread), pause the modules'
    /// ticks, and wait until the requests and messages already inside a module are done, so
    /// that export_handover() sees every publish accepted. False when they are not done
    /// within `limit` (the hub stays frozen; thaw() to carry on).
    bool freeze_for_handover(std::chrono::milliseconds limit);
    /// Take publishes again (a restart that failed).
    void thaw() noexcept;
    bool frozen() const noexcept { return frozen_.load(); }
    /// Each module's export_handover(), as (module name, bytes), in module order; modules
    /// with nothing to hand over are left out. Throws what a module threw.
    std::vector<std::pair<std::string, std::string>> export_handover();
    /// Give `state` to the module of that name (import_handover). False when no module has
    /// the name (logged). Throws what the module threw. After listen(), before serving.
    bool import_handover(std::string_view module, std::string_view state);
    /// As stop(), but clients are closed with `code` and `reason` and get `drain` to go.
    void stop(websock::CloseCode code, std::string_view reason, websock::Milliseconds drain) noexcept;

    Metrics& metrics() noexcept { return metrics_; }
    Bus* bus() noexcept { return bus_.get(); }
    const HubOptions& options() const noexcept { return options_; }
    websock::WebSocketServer& server() noexcept { return *server_; }

private:
    struct Mounted {
        std::unique_ptr<HubModule> module;
        prometheus::Gauge* connections = nullptr;
    };

    void install_callbacks();
    Mounted* websocket_owner(const websock::HttpRequest& request) const;
    Mounted* owner_of(std::uint64_t client_id) const;
    void handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder);
    void handle_bus_message(std::string_view topic, std::string_view payload);
    void tick_loop();
    void shut_down_threads() noexcept;  // the timer thread and the bus, after the server stopped
    void register_bus_metrics();
    void register_server_metrics();  // the server's memory budgets (see websock/options.hpp)

    HubOptions options_;
    std::string prefix_;  // "/" or "/api/"
    Metrics metrics_;
    std::unique_ptr<websock::WebSocketServer> server_;
    std::unique_ptr<Bus> bus_;
    std::vector<Mounted> modules_;  // fixed once listen() ran

    mutable std::mutex owners_mutex_;
    std::unordered_map<std::uint64_t, Mounted*> owners_;  // client id -> its module

    bool listening_ = false;
    bool bus_started_ = false;
    std::atomic<bool> stop_requested_{false};
    // A restart's freeze: `frozen_` refuses new work; `busy_` counts requests and messages
    // inside a module (each raises it first, then checks frozen_: see enter_module()).
    std::atomic<bool> frozen_{false};
    std::atomic<int> busy_{0};
    struct BusyScope;
    bool enter_module() noexcept;
    std::mutex tick_mutex_;
    std::condition_variable tick_wake_;
    bool tick_stopping_ = false;  // guarded by tick_mutex_
    std::thread tick_thread_;
    std::once_flag shut_down_once_;
};

}  // namespace hub
