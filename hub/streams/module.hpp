// StreamsModule: resumable channels with offsets, recovery and acknowledged delivery
// (issue 13), an opt-in protocol beside aiows and channelstream (their wire formats are
// untouched). docs/hub.md, "Resumable streams", has the protocol for clients.
//
//   GET  {prefix}/streams             WebSocket (subprotocol websock-hub.streams.v1 when
//                                     offered): subscribe / unsubscribe / ack, JSON frames
//   POST {prefix}/streams/{channel}   publish the body (Content-Type: text/plain, the default;
//                                     application/json; application/octet-stream); the
//                                     publish password as aiows'. 201 {"channel","epoch","offset"}
//   GET  {prefix}/streams/{channel}   the stream's position: 200 {"channel","epoch","offset","oldest"}
//
// Every channel is one sequenced stream of the Bus (hub/bus.hpp): a publish gets the next
// offset there and reaches every node's subscribers through on_bus_message; a resuming
// subscriber's missed messages come from Bus::read_history (hub/streams/cursor.hpp merges the
// two without gaps or duplicates).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "hub/module.hpp"

namespace prometheus {
class Counter;
}  // namespace prometheus

namespace hub {

namespace streams {
class Core;
}

struct StreamsOptions {
    static constexpr std::size_t kDefaultMaxChannelNameBytes = 200;
    static constexpr std::size_t kDefaultMaxSubscriptions = 100;
    static constexpr std::size_t kDefaultHistoryPage = 500;
    static constexpr std::size_t kDefaultCatchUpBuffer = 10'000;
    static constexpr std::size_t kDefaultCatchUpBufferBytes = 8u << 20;
    static constexpr std::size_t kDefaultAckWindowMessages = 1000;
    static constexpr std::size_t kDefaultAckWindowBytes = 4u << 20;
    static constexpr std::size_t kDefaultCatchUpQueueBytes = 1u << 20;

    std::string url_prefix;  ///< as the hub's (--url-prefix)
    std::string password;    ///< the publish password (--pwd); empty: anybody may publish
    std::size_t max_channel_name_bytes = kDefaultMaxChannelNameBytes;
    std::size_t max_subscriptions_per_connection = kDefaultMaxSubscriptions;
    std::size_t history_page_messages = kDefaultHistoryPage;   ///< one history read while catching up
    std::size_t max_catch_up_buffer = kDefaultCatchUpBuffer;   ///< live messages held per catching-up subscription
    std::size_t max_catch_up_buffer_bytes = kDefaultCatchUpBufferBytes;  ///< ... and their payload bytes
    std::size_t ack_window_messages = kDefaultAckWindowMessages;  ///< unacked messages per acked subscription
    std::size_t ack_window_bytes = kDefaultAckWindowBytes;        ///< unacked payload bytes per acked subscription
    /// History goes to a catching-up subscriber only while less than this waits in its
    /// outbound queue (keep it well under the hub's --max-queue-bytes, which cuts a subscriber).
    std::size_t catch_up_queue_bytes = kDefaultCatchUpQueueBytes;
    /// Where the bus cuts the streams' histories (only this module keeps streams): given to
    /// Bus::set_history_limits() at start, before anything is published or read.
    HistoryLimits history;
};

class StreamsModule final : public HubModule {
public:
    static constexpr std::string_view kTopic = "streams";  ///< the bus topic of every publish

    explicit StreamsModule(StreamsOptions options);
    ~StreamsModule() override;

    std::string_view name() const noexcept override { return kTopic; }
    void start(const ModuleContext& context) override;
    bool handle_http(const websock::HttpRequest& request, const std::shared_ptr<websock::HttpResponder>& responder) override;
    bool owns_websocket(const websock::HttpRequest& request) const override;
    websock::HandshakeDecision handshake(const websock::HandshakeRequest& request,
                                         websock::HandshakeDecision policy_decision) override;
    void on_open(websock::Client& client) override;
    void on_message(websock::Client& client, std::string_view data, websock::MessageType type) override;
    void on_close(websock::Client& client, websock::CloseCode code, std::string_view reason) override;
    void on_bus_message(std::string_view topic, std::string_view payload) override;
    void on_stop() override;
    /// The bus's stream histories (LocalBus; "" with Redis, where they live already).
    std::string export_handover() override;
    void import_handover(std::string_view state) override;

private:
    void publish(const websock::HttpRequest& request, const std::string& channel,
                 const std::shared_ptr<websock::HttpResponder>& responder);
    void position(const std::string& channel, const std::shared_ptr<websock::HttpResponder>& responder);

    StreamsOptions options_;
    std::string prefix_;  // normalised: "/" or "/api/"
    ModuleContext context_;
    std::shared_ptr<streams::Core> core_;  // shared with the bus's callbacks, which may outlive a call
    prometheus::Counter* published_ = nullptr;       // publishes the bus accepted
    prometheus::Counter* publish_failed_ = nullptr;  // publishes the bus refused (503)
    prometheus::Counter* rejected_ = nullptr;        // 4xx answers
};

}  // namespace hub
