// A hub API (aiows, channelstream) as the Hub sees it: the Hub owns the WebSocketServer and
// the Bus, and offers each request, upgrade and bus message to its modules in turn.
// A module keeps its own state; it touches clients only through websock's public API.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <websock/websock.hpp>

#include "hub/bus.hpp"

namespace hub {

class Metrics;
class PayloadRules;

/// What every module is handed when the Hub starts.
struct ModuleContext {
    Bus* bus = nullptr;          ///< publish through this; never deliver around it
    Metrics* metrics = nullptr;  ///< shared counters (hub/metrics.hpp)
    /// Per-channel payload rules (hub/payload_rules.hpp): every module checks each publish
    /// against them once, before it goes on the bus, and refuses it with the rule it broke.
    /// Never null once start() runs (no rules configured: everything passes).
    const PayloadRules* payload_rules = nullptr;
};

class HubModule {
public:
    virtual ~HubModule() = default;
    virtual std::string_view name() const noexcept = 0;  ///< "aiows", "channelstream"
    /// Called once, before the server listens.
    virtual void start(const ModuleContext& context) = 0;
    /// A plain HTTP request. Return false when the path is not this module's (the next
    /// module is asked; 404 when none claims it). When true, the module answers through
    /// `responder`, now or later, from any thread.
    virtual bool handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder) = 0;
    /// Whether an upgrade request to this path is this module's. A client accepted for it is
    /// this module's from then on: its open/message/close callbacks come here, and its
    /// client.user_data() is the module's to use (the Hub keeps its own client -> module map).
    virtual bool owns_websocket(const websock::HttpRequest& request) const = 0;
    /// Decide an upgrade request this module owns: accept, or refuse with a status.
    virtual websock::HandshakeDecision handshake(const websock::HandshakeRequest& request,
                                                 websock::HandshakeDecision policy_decision) = 0;
    virtual void on_open(websock::Client& client) = 0;
    virtual void on_message(websock::Client& client, std::string_view data, websock::MessageType type) = 0;
    virtual void on_close(websock::Client& client, websock::CloseCode code, std::string_view reason) = 0;
    /// A message from the bus with a topic this module owns (its topics start with name()).
    virtual void on_bus_message(std::string_view topic, std::string_view payload) = 0;
    /// The bus lost messages meant for this node (Bus::GapHandler): a module whose clients
    /// cannot find out by themselves tells them (aiows closes its subscribers with 1012).
    virtual void on_bus_gap(std::string_view /*why*/) {}
    /// Periodic housekeeping (about once a second, from the Hub's timer thread).
    virtual void on_tick() {}
    /// The server is stopping: answer waiting requests (long polls) now.
    virtual void on_stop() {}

    // --- zero-downtime restart (websock-hub --restart, SIGHUP) ---
    /// The old process, after it stopped accepting connections and publishes: what the new
    /// process needs to carry on (recent channel history, stream epochs), as bytes in this
    /// module's own format. Empty: nothing to hand over.
    virtual std::string export_handover() { return {}; }
    /// The new process, after start() and before it accepts: what export_handover() of the
    /// same module returned in the old process. Never called when there was nothing.
    virtual void import_handover(std::string_view /*state*/) {}
};

}  // namespace hub
