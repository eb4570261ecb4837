// WebSocketClient's receive_for() / receive_until() tell a timeout (the connection is still
// open) from the end of the connection, and close_status() says who started the closing:
// the client, the server, or nobody (TCP ended first). Against the scripted raw server.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <utility>

#include "test/unit/test_client_server.hpp"
#include "websock/client.hpp"

using namespace websock;
using namespace client_test;

namespace {

constexpr milliseconds kShortWait{60};

/// A client connected to `server`, reading through receive().
void connect(WebSocketClient& client, RawServer& server) {
    REQUIRE(client.connect(server.url()));
    REQUIRE(server.peer());
}

/// The server's side of a close handshake the server starts: its close frame, the client's
/// answer, then TCP closed by the server first (section 7.1.1).
void server_closes(RawServer& server, int code, std::string_view reason) {
    REQUIRE(server.write(close_frame(code, reason)));
    const auto frames = server.read_until_close(Clock::now() + patience());
    CAPTURE(describe(frames));
    REQUIRE(!frames.empty());
    CHECK(frames.back().is_close());
    CHECK(frames.back().close_code() == code);
    server.close_peer();
}

}  // namespace

TEST_CASE("client receive_for: Timeout while open, Message when one comes, Closed at the end") {
    RawServer server;
    WebSocketClient client;
    connect(client, server);

    auto started = Clock::now();
    auto result = client.receive_for(kShortWait);
    CHECK(result.status == ReceiveStatus::Timeout);
    CHECK(!result.has_message());
    CHECK(Clock::now() - started >= kShortWait);
    CHECK(client.is_open());

    REQUIRE(server.write(text_frame("first") + server_frame(0x82, std::string("\x00\x01", 2))));
    result = client.receive_for(patience());
    REQUIRE(result.status == ReceiveStatus::Message);
    CHECK(result.message.type == MessageType::Text);
    CHECK(result.message.data == "first");
    result = client.receive_for(patience());
    REQUIRE(result.status == ReceiveStatus::Message);
    CHECK(result.message.type == MessageType::Binary);
    CHECK(result.message.data == std::string("\x00\x01", 2));

    // A message and the server's close in one write: the message can still be taken after
    // the end; then Closed, at once, however long the timeout.
    REQUIRE(server.write(text_frame("left over")));
    server_closes(server, 1000, "done");
    REQUIRE(client.wait_closed(patience()));
    result = client.receive_for(patience());
    REQUIRE(result.status == ReceiveStatus::Message);
    CHECK(result.message.data == "left over");
    started = Clock::now();
    CHECK(client.receive_for(patience()).status == ReceiveStatus::Closed);
    CHECK(!client.receive(patience()).has_value());  // the older form: nullopt, at once too
    CHECK(!client.receive().has_value());            // no timeout: returns because it has ended
    CHECK(Clock::now() - started < patience());
}

TEST_CASE("client receive_until: a deadline, not a duration") {
    RawServer server;
    WebSocketClient client;
    connect(client, server);

    const auto deadline = Clock::now() + kShortWait;
    CHECK(client.receive_until(deadline).status == ReceiveStatus::Timeout);
    CHECK(Clock::now() >= deadline);
    CHECK(client.receive_until(Clock::now() - std::chrono::seconds(1)).status == ReceiveStatus::Timeout);  // past: no wait

    // The farthest deadline there is waits like no deadline, without overflowing.
    REQUIRE(server.write(text_frame("eventually")));
    const auto result = client.receive_until(Clock::time_point::max());
    REQUIRE(result.status == ReceiveStatus::Message);
    CHECK(result.message.data == "eventually");

    server.close_peer();  // TCP ends, no close frame
    CHECK(client.receive_until(Clock::time_point::max()).status == ReceiveStatus::Closed);
}

TEST_CASE("client receive_for: Closed before any connect, and Timeout (no wait) inside a callback") {
    WebSocketClient never_connected;
    CHECK(never_connected.receive_for(patience()).status == ReceiveStatus::Closed);
    CHECK(!never_connected.close_status().has_value());

    RawServer server;
    WebSocketClient client;
    std::optional<ReceiveStatus> inside;
    client.on_ping([&](std::string_view) { inside = client.receive_for(patience()).status; });
    connect(client, server);
    REQUIRE(server.write(server_frame(0x89, "p")));
    const auto pong = server.read_frame(Clock::now() + patience());
    REQUIRE(pong);
    CHECK(pong->opcode == 0xA);
    server_closes(server, 1000, "");
    REQUIRE(client.wait_closed(patience()));
    CHECK(inside == ReceiveStatus::Timeout);
}

TEST_CASE("client close_status: the client closes first") {
    RawServer server;
    WebSocketClient client;
    std::optional<std::pair<CloseCode, std::string>> on_close;
    client.on_close([&](CloseCode code, std::string_view reason) { on_close.emplace(code, std::string(reason)); });
    connect(client, server);
    CHECK(!client.close_status().has_value());  // still open

    REQUIRE(client.close(CloseCode::Normal, "bye") == SendResult::Queued);
    const auto frames = server.read_until_close(Clock::now() + patience());
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].close_code() == 1000);
    REQUIRE(server.write(close_frame(1000)));
    server.close_peer();
    REQUIRE(client.wait_closed(patience()));

    const auto status = client.close_status();
    REQUIRE(status);
    CHECK(status->code == CloseCode::Normal);
    CHECK(status->reason == "bye");
    CHECK(status->initiator == CloseInitiator::Local);
    REQUIRE(on_close);
    CHECK(on_close->first == status->code);
    CHECK(on_close->second == status->reason);
    CHECK(to_string(status->initiator) == "local");
}

TEST_CASE("client close_status: the server closes first") {
    RawServer server;
    WebSocketClient client;
    connect(client, server);
    server_closes(server, 4001, "maintenance");
    REQUIRE(client.wait_closed(patience()));
    const auto status = client.close_status();
    REQUIRE(status);
    CHECK(static_cast<int>(status->code) == 4001);
    CHECK(status->reason == "maintenance");
    CHECK(status->initiator == CloseInitiator::Remote);
}

TEST_CASE("client close_status: TCP ends without a close frame") {
    RawServer server;
    WebSocketClient client;
    connect(client, server);
    server.close_peer();
    REQUIRE(client.wait_closed(patience()));
    const auto status = client.close_status();
    REQUIRE(status);
    CHECK(status->code == CloseCode::Abnormal);
    CHECK(status->initiator == CloseInitiator::Abnormal);
    CHECK(client.send("anyone?") == SendResult::Closed);
}

TEST_CASE("client close_status: the client closes and the server never answers") {
    RawServer server;
    ClientOptions options;
    options.close_timeout = milliseconds(100);
    WebSocketClient client{options};
    connect(client, server);
    REQUIRE(client.close(CloseCode::GoingAway) == SendResult::Queued);
    REQUIRE(client.wait_closed(patience()));
    const auto status = client.close_status();
    REQUIRE(status);
    CHECK(status->code == CloseCode::Abnormal);
    CHECK(status->reason == "close handshake timed out");
    CHECK(status->initiator == CloseInitiator::Local);
}
