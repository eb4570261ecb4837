// ChannelRegistry against real connections: a websock server on a loopback port and
// websock clients, since a Client exists only inside a server.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <websock/websock.hpp>

#include "hub/registry.hpp"

using namespace std::chrono_literals;

namespace {

// A server whose open clients the test can take, in connection order, and count.
struct Fixture {
    websock::WebSocketServer server;
    std::thread serving;
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::shared_ptr<websock::Client>> opened;
    std::size_t closed = 0;

    static websock::ServerOptions options() {
        websock::ServerOptions o;
        o.port = 0;
        o.engine = websock::Engine::EventLoop;
        return o;
    }

    Fixture() : server(options()) {
        server.on_connection_open([this](websock::Client& client) {
            std::lock_guard lock(mutex);
            opened.push_back(client.shared_from_this());
            changed.notify_all();
        });
        server.on_connection_close([this](websock::Client&, websock::CloseCode, std::string_view) {
            std::lock_guard lock(mutex);
            ++closed;
            changed.notify_all();
        });
        REQUIRE(server.listen());
        serving = std::thread([this] { server.serve_forever(); });
    }
    ~Fixture() {
        server.stop();
        serving.join();
    }

    std::string url() const { return "ws://127.0.0.1:" + std::to_string(server.port()) + "/"; }

    /// Connect a client and return it with the server's Client for it.
    std::pair<std::unique_ptr<websock::WebSocketClient>, std::shared_ptr<websock::Client>> connect() {
        auto client = std::make_unique<websock::WebSocketClient>();
        REQUIRE(client->connect(url()));
        std::unique_lock lock(mutex);
        const std::size_t before = taken;
        REQUIRE(changed.wait_for(lock, 10s, [&] { return opened.size() > before; }));
        return {std::move(client), opened[taken++]};
    }

    bool wait_closed(std::size_t count) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, 10s, [&] { return closed >= count; });
    }

    std::size_t taken = 0;
};

std::string receive_text(websock::WebSocketClient& client) {
    auto message = client.receive(websock::Milliseconds(10000));
    REQUIRE(message.has_value());
    return message->data;
}

}  // namespace

TEST_CASE("ChannelRegistry") {
    Fixture fixture;

    SUBCASE("a publish reaches the channel's subscribers, once each, and nobody else") {
        auto [a, server_a] = fixture.connect();
        auto [b, server_b] = fixture.connect();
        auto [c, server_c] = fixture.connect();
        hub::ChannelRegistry registry;
        registry.subscribe("news", server_a);
        registry.subscribe("news", server_b);
        registry.subscribe("news", server_b);  // twice is once
        registry.subscribe("sport", server_c);
        CHECK(registry.subscriber_count("news") == 2);
        CHECK(registry.channel_names() == std::vector<std::string>{"news", "sport"});

        auto outcome = registry.publish("news", "headline", websock::MessageType::Text);
        CHECK(outcome.delivered == 2);
        CHECK(outcome.dropped == 0);
        CHECK(registry.publish("weather", "nobody listens", websock::MessageType::Text).delivered == 0);
        registry.publish("sport", "goal", websock::MessageType::Text);
        CHECK(receive_text(*a) == "headline");
        CHECK(receive_text(*b) == "headline");
        CHECK(receive_text(*c) == "goal");
        CHECK_FALSE(b->receive(websock::Milliseconds(50)).has_value());  // not twice

        SUBCASE("binary and pre-encoded frames") {
            registry.publish("sport", std::string("\x00\xff", 2), websock::MessageType::Binary);
            auto message = c->receive(websock::Milliseconds(10000));
            REQUIRE(message.has_value());
            CHECK(message->type == websock::MessageType::Binary);
            CHECK(message->data == std::string("\x00\xff", 2));
            const std::string frame = websock::encode_message("encoded once", websock::MessageType::Text);
            CHECK(registry.publish_encoded("news", frame).delivered == 2);
            CHECK(receive_text(*a) == "encoded once");
        }

        SUBCASE("unsubscribe and remove_client take a client off, and empty channels go") {
            CHECK(registry.unsubscribe("news", server_a->id()));
            CHECK_FALSE(registry.unsubscribe("news", server_a->id()));
            registry.subscribe("sport", server_b);
            CHECK(registry.channels_of(server_b->id()) == std::vector<std::string>{"news", "sport"});
            CHECK(registry.remove_client(server_b->id()) == 2);
            CHECK(registry.channels_of(server_b->id()).empty());
            CHECK(registry.subscriber_count("news") == 0);
            CHECK(registry.channel_names() == std::vector<std::string>{"sport"});
            const auto stats = registry.stats();
            CHECK(stats.channels == 1);
            CHECK(stats.subscriptions == 1);
            CHECK(stats.clients == 1);
            CHECK(stats.published == 3);
            CHECK(stats.delivered == 3);
        }

        SUBCASE("a closed subscriber counts as dropped; the others still get it") {
            a->close();
            REQUIRE(fixture.wait_closed(1));
            outcome = registry.publish("news", "after a left", websock::MessageType::Text);
            CHECK(outcome.delivered == 1);
            CHECK(outcome.dropped == 1);
            CHECK(receive_text(*b) == "after a left");
            CHECK(registry.stats().dropped == 1);
        }
    }

    SUBCASE("concurrent subscribe, publish and disconnect: no message lost for those who stay") {
        constexpr int kStayers = 4;
        constexpr int kLeavers = 8;
        constexpr int kMessages = 300;
        hub::ChannelRegistry registry;
        std::vector<std::unique_ptr<websock::WebSocketClient>> stayers;
        std::vector<std::shared_ptr<websock::Client>> stayer_handles;
        for (int i = 0; i < kStayers; ++i) {
            auto [client, handle] = fixture.connect();
            registry.subscribe("busy", handle);
            stayers.push_back(std::move(client));
            stayer_handles.push_back(handle);
        }
        std::vector<std::unique_ptr<websock::WebSocketClient>> leavers;
        std::vector<std::shared_ptr<websock::Client>> leaver_handles;
        for (int i = 0; i < kLeavers; ++i) {
            auto [client, handle] = fixture.connect();
            leavers.push_back(std::move(client));
            leaver_handles.push_back(handle);
        }
        std::atomic<bool> publishing{true};
        std::thread churn([&] {
            // Leavers join and leave the channel over and over, then disconnect.
            for (int round = 0; publishing.load() && round < 200; ++round) {
                for (auto& handle : leaver_handles) registry.subscribe("busy", handle);
                for (auto& handle : leaver_handles) registry.unsubscribe("busy", handle->id());
            }
            for (auto& handle : leaver_handles) registry.subscribe("busy", handle);
            for (auto& client : leavers) client->close();
            for (auto& handle : leaver_handles) registry.remove_client(handle->id());
        });
        std::thread other_publisher([&] {
            for (int i = 0; i < kMessages; ++i) registry.publish("elsewhere", "x", websock::MessageType::Text);
        });
        for (int i = 0; i < kMessages; ++i) registry.publish("busy", "m" + std::to_string(i), websock::MessageType::Text);
        publishing = false;
        churn.join();
        other_publisher.join();
        for (auto& client : stayers)
            for (int i = 0; i < kMessages; ++i) REQUIRE(receive_text(*client) == "m" + std::to_string(i));
        CHECK(registry.subscriber_count("busy") == kStayers);
        const auto stats = registry.stats();
        CHECK(stats.published == 2 * kMessages);
        CHECK(stats.delivered >= static_cast<std::uint64_t>(kStayers * kMessages));
        for (auto& client : leavers) client->wait_closed(websock::Milliseconds(10000));
    }
}
