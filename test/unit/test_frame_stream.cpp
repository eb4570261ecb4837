// FrameStream, the frame- and message-level API on a socket you hold, over a socketpair:
// both roles, frame by frame and message by message, a frame cut across writes, a protocol
// error answered with its close code, the close handshake, and accept_upgrade.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "websock/codec/close.hpp"
#include "websock/codec/handshake.hpp"
#include "websock/frame_stream.hpp"

using namespace websock;
using codec::Opcode;
using namespace std::chrono_literals;

namespace {

struct Pair {
    int fds[2] = {-1, -1};
    Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0); }
};

}  // namespace

TEST_CASE("frame stream: messages both ways over a socketpair") {
    Pair pair;
    FrameStream server(pair.fds[0], codec::Role::Server);
    FrameStream client(pair.fds[1], codec::Role::Client);
    SUBCASE("text and binary, then a fragmented message") {
        REQUIRE(client.send("hello"));
        auto got = server.read_message(1s);
        REQUIRE(got);
        CHECK(got->type == MessageType::Text);
        CHECK(got->data == "hello");
        REQUIRE(server.send(std::string("\0\1\2", 3), MessageType::Binary));
        got = client.read_message(1s);
        REQUIRE(got);
        CHECK(got->type == MessageType::Binary);
        CHECK(got->data == std::string("\0\1\2", 3));
        const std::string long_text(10000, 'x');
        REQUIRE(client.send_fragmented(long_text, MessageType::Text, 999));
        got = server.read_message(1s);
        REQUIRE(got);
        CHECK(got->data == long_text);
    }
    SUBCASE("nothing to read: read_message times out with nothing") {
        CHECK_FALSE(server.read_message(20ms));
        CHECK_FALSE(server.is_closed());
    }
}

TEST_CASE("frame stream: frame by frame") {
    Pair pair;
    FrameStream server(pair.fds[0], codec::Role::Server);
    FrameStream client(pair.fds[1], codec::Role::Client);
    SUBCASE("a fragmented message with a ping between its fragments arrives frame by frame") {
        REQUIRE(client.send_frame(Opcode::Text, "Hel", false));
        REQUIRE(client.send_frame(Opcode::Ping, "p"));
        REQUIRE(client.send_frame(Opcode::Continuation, "lo", true));
        const auto first = server.read_frame(1s);
        const auto second = server.read_frame(1s);
        const auto third = server.read_frame(1s);
        REQUIRE((first && second && third));
        CHECK(first->opcode == Opcode::Text);
        CHECK_FALSE(first->fin);
        CHECK(first->payload == "Hel");
        CHECK(second->opcode == Opcode::Ping);
        CHECK(second->payload == "p");
        CHECK(third->opcode == Opcode::Continuation);
        CHECK(third->fin);
        CHECK(third->payload == "lo");
    }
    SUBCASE("the same frames read as messages: reassembled, and the ping answered") {
        REQUIRE(client.send_frame(Opcode::Text, "Hel", false));
        REQUIRE(client.send_frame(Opcode::Ping, "p"));
        REQUIRE(client.send_frame(Opcode::Continuation, "lo", true));
        const auto message = server.read_message(1s);
        REQUIRE(message);
        CHECK(message->data == "Hello");
        const auto pong = client.read_frame(1s);
        REQUIRE(pong);
        CHECK(pong->opcode == Opcode::Pong);
        CHECK(pong->payload == "p");
    }
    SUBCASE("a frame cut across two writes is read whole") {
        std::string bytes;
        const std::uint8_t mask[4] = {1, 2, 3, 4};
        codec::append_frame(bytes, Opcode::Binary, true, std::string(300, 'z'), mask);
        REQUIRE(::send(pair.fds[1], bytes.data(), 100, 0) == 100);
        CHECK_FALSE(server.read_frame(20ms));  // not whole yet
        REQUIRE(::send(pair.fds[1], bytes.data() + 100, bytes.size() - 100, 0) == static_cast<ssize_t>(bytes.size() - 100));
        const auto frame = server.read_frame(1s);
        REQUIRE(frame);
        CHECK(frame->opcode == Opcode::Binary);
        CHECK(frame->payload == std::string(300, 'z'));
    }
    SUBCASE("the server role sends unmasked frames with any opcode and RSV bits") {
        REQUIRE(server.send_frame(Opcode::Binary, "raw", true, 0));
        const auto frame = client.read_frame(1s);
        REQUIRE(frame);
        CHECK(frame->payload == "raw");
        REQUIRE(server.send_frame(Opcode::Text, "x", true, codec::kRsv1));
        CHECK_FALSE(client.read_frame(1s));  // no extension negotiated: a client must refuse it
        CHECK(client.error() == "reserved bits set");
    }
}

TEST_CASE("frame stream: a protocol error is answered with its close code") {
    Pair pair;
    FrameStream server(pair.fds[0], codec::Role::Server);
    FrameStream client(pair.fds[1], codec::Role::Client);
    std::string unmasked;
    codec::append_frame(unmasked, Opcode::Text, true, "no mask");  // clients must mask (5.1)
    REQUIRE(::send(pair.fds[1], unmasked.data(), unmasked.size(), 0) == static_cast<ssize_t>(unmasked.size()));
    CHECK_FALSE(server.read_message(1s));
    CHECK(server.is_closed());
    CHECK(server.close_code() == CloseCode::ProtocolError);
    const auto close = client.read_frame(1s);
    REQUIRE(close);
    CHECK(close->opcode == Opcode::Close);
    codec::ClosePayload payload;
    codec::ClosePayloadError error{};
    REQUIRE(codec::parse_close_payload(close->payload, payload, error));
    CHECK(payload.code == CloseCode::ProtocolError);
}

TEST_CASE("frame stream: the close handshake") {
    Pair pair;
    FrameStream server(pair.fds[0], codec::Role::Server);
    FrameStream client(pair.fds[1], codec::Role::Client);
    std::optional<Message> server_got;
    std::thread reader([&] { server_got = server.read_message(2s); });  // answers the close
    client.close(CloseCode::Normal, "bye", 2s);
    reader.join();
    CHECK_FALSE(server_got);
    CHECK(server.close_code() == CloseCode::Normal);
    CHECK(server.close_reason() == "bye");
    CHECK(client.is_closed());
    CHECK(client.close_code() == CloseCode::Normal);
}

TEST_CASE("frame stream: accept_upgrade answers the opening handshake") {
    Pair pair;
    const std::string request =
        "GET /feed HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    std::string early;  // a frame sent right behind the request
    const std::uint8_t mask[4] = {9, 8, 7, 6};
    codec::append_frame(early, Opcode::Text, true, "early", mask);
    const std::string bytes = request + early;
    REQUIRE(::send(pair.fds[1], bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    std::string error;
    HttpRequest seen;
    auto server = FrameStream::accept_upgrade(pair.fds[0], 1s, error, &seen);
    REQUIRE_MESSAGE(server, error);
    CHECK(seen.path == "/feed");
    char reply[512] = {};
    const ssize_t got = ::recv(pair.fds[1], reply, sizeof reply - 1, 0);
    REQUIRE(got > 0);
    CHECK(std::string(reply).starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    CHECK(std::string(reply).find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
    const auto message = server->read_message(1s);
    REQUIRE(message);
    CHECK(message->data == "early");
    ::close(pair.fds[1]);

}

TEST_CASE("frame stream: accept_upgrade refuses a bad request with its HTTP status") {
    Pair pair;
    const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    REQUIRE(::send(pair.fds[1], request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
    std::string error;
    auto server = FrameStream::accept_upgrade(pair.fds[0], 1s, error);
    CHECK_FALSE(server);
    char reply[512] = {};
    REQUIRE(::recv(pair.fds[1], reply, sizeof reply - 1, 0) > 0);
    CHECK(std::string(reply).starts_with("HTTP/1.1 426 "));
    CHECK(std::string(reply).find("Sec-WebSocket-Version: 13") != std::string::npos);
    ::close(pair.fds[1]);
}
