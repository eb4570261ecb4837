// WebSocketClient keeps the promise of SendResult::Queued: a reply the application sent to a
// valid message goes out before the close frame, even when the server's very next bytes, in
// the same read, break RFC 6455 and the client fails the connection (Autobahn's cases 3.2-3.4,
// 4.1.3-4.1.5, 4.2.3-4.2.5 and 5.15 in their strict reading). A send after that close frame
// was decided on returns Closed, and close_status() says who closed.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "test/unit/test_client_server.hpp"
#include "websock/client.hpp"

using namespace websock;
using namespace client_test;

namespace {

/// A client that answers every text message "X" with "echo:X" from inside on_message, and
/// keeps what its callbacks saw.
struct EchoingClient {
    WebSocketClient client;
    std::mutex mutex;
    std::vector<SendResult> reply_results;  // (guarded) what each reply's send() returned
    std::vector<Error> errors;              // (guarded)

    EchoingClient() {
        client.on_message([this](std::string_view data, MessageType type) {
            if (type != MessageType::Text) return;
            const SendResult result = client.send("echo:" + std::string(data));
            std::lock_guard lock(mutex);
            reply_results.push_back(result);
        });
        client.on_error([this](const Error& error) {
            std::lock_guard lock(mutex);
            errors.push_back(error);
        });
    }
};

struct Violation {
    const char* name;
    std::vector<std::string> valid_texts;  // what the client receives (and answers) first
    std::string bytes;                     // every frame, in one write
    int close_code;                        // the client's close frame
};

std::vector<Violation> violations() {
    const std::string hello = text_frame("hello");
    const std::string ping = server_frame(0x89, "after");  // must not be answered: input stops at the violation
    return {
        {"3.2: RSV2 on a text frame", {"hello"}, hello + server_frame(0xA1, "again") + ping, 1002},
        {"3.3: RSV2 and RSV3 on a text frame", {"hello"}, hello + server_frame(0xB1, "again") + ping, 1002},
        {"3.4: RSV1 without an extension", {"hello"}, hello + server_frame(0xC1, "again") + ping, 1002},
        {"4.1.3: reserved data opcode 5", {"hello"}, hello + server_frame(0x85) + ping, 1002},
        {"4.1.4: reserved data opcode 6 with a payload", {"hello"}, hello + server_frame(0x86, "reserved") + ping, 1002},
        {"4.1.5: reserved data opcode 7 with a payload", {"hello"}, hello + server_frame(0x87, "reserved") + ping, 1002},
        {"4.2.3: reserved control opcode 0xB", {"hello"}, hello + server_frame(0x8B) + ping, 1002},
        {"4.2.4: reserved control opcode 0xC with a payload", {"hello"}, hello + server_frame(0x8C, "reserved") + ping, 1002},
        {"4.2.5: reserved control opcode 0xF with a payload", {"hello"}, hello + server_frame(0x8F, "reserved") + ping, 1002},
        {"5.15: a continuation with nothing to continue, after a fragmented message",
         {"fragment1fragment2"},
         server_frame(0x01, "fragment1") + server_frame(0x80, "fragment2") + server_frame(0x00, "fragment3") +
             server_frame(0x80, "fragment4") + text_frame("never delivered"),
         1002},
        {"a fragmented ping", {"hello"}, hello + server_frame(0x09, "frag") + server_frame(0x80, "ment") + ping, 1002},
        {"invalid UTF-8 in a later fragment",
         {"hello"},
         hello + server_frame(0x01, "caf") + server_frame(0x80, "\xC3\x28") + ping,
         1007},
        {"three messages, then a reserved opcode",
         {"one", "two", "three"},
         text_frame("one") + text_frame("two") + text_frame("three") + server_frame(0x83) + ping,
         1002},
    };
}

}  // namespace

TEST_CASE("client: replies queued before a protocol violation in the same read go out before the close frame") {
    for (const auto& violation : violations()) {
        const std::string name = violation.name;
        CAPTURE(name);
        RawServer server;
        EchoingClient echoing;
        REQUIRE(echoing.client.connect(server.url()));
        REQUIRE(server.peer());
        REQUIRE(server.write(violation.bytes));

        // Exactly the replies, in order, then the close: nothing lost, nothing after it (not
        // even a pong for the ping that follows the violation).
        std::string expected = "[";
        for (const auto& text : violation.valid_texts) expected += "text 'echo:" + text + "', ";
        expected += "close " + std::to_string(violation.close_code) + "]";
        const auto frames = server.read_until_close(Clock::now() + patience());
        CHECK(describe(frames) == expected);
        for (const auto& frame : frames) CHECK(frame.masked);

        // The client failed the connection: it half-closes at once; the server then closes.
        CHECK(server.wait_eof(Clock::now() + patience()));
        server.close_peer();
        REQUIRE(echoing.client.wait_closed(patience()));
        const auto status = echoing.client.close_status();
        REQUIRE(status);
        CHECK(static_cast<int>(status->code) == violation.close_code);
        CHECK(status->initiator == CloseInitiator::Local);
        CHECK(echoing.client.send("too late") == SendResult::Closed);

        std::lock_guard lock(echoing.mutex);
        CHECK(echoing.reply_results == std::vector<SendResult>(violation.valid_texts.size(), SendResult::Queued));
        REQUIRE(!echoing.errors.empty());
        CHECK(echoing.errors.front().kind == ErrorKind::Protocol);
    }
}

TEST_CASE("client: a reply queued before the server's close in the same read goes out before the answering close") {
    RawServer server;
    EchoingClient echoing;
    REQUIRE(echoing.client.connect(server.url()));
    REQUIRE(server.peer());
    REQUIRE(server.write(text_frame("last words") + close_frame(1001, "going away")));

    // Section 5.5.1: the close answered with the server's code, after the reply.
    CHECK(describe(server.read_until_close(Clock::now() + patience())) == "[text 'echo:last words', close 1001]");
    server.close_peer();
    REQUIRE(echoing.client.wait_closed(patience()));
    const auto status = echoing.client.close_status();
    REQUIRE(status);
    CHECK(status->code == CloseCode::GoingAway);
    CHECK(status->reason == "going away");
    CHECK(status->initiator == CloseInitiator::Remote);
    std::lock_guard lock(echoing.mutex);
    CHECK(echoing.reply_results == std::vector<SendResult>{SendResult::Queued});
}

TEST_CASE("client: a send from on_error, when the violation is found, is Queued and goes out before the close frame; "
          "one from on_close is Closed") {
    RawServer server;
    WebSocketClient client;
    std::atomic<int> from_error{-1};
    std::atomic<int> from_close{-1};
    client.on_error([&](const Error& error) {
        if (error.kind == ErrorKind::Protocol && from_error.load() < 0)
            from_error = static_cast<int>(client.send("said on_error"));
    });
    client.on_close([&](CloseCode, std::string_view) { from_close = static_cast<int>(client.send("said on_close")); });
    REQUIRE(client.connect(server.url()));
    REQUIRE(server.peer());
    REQUIRE(server.write(server_frame(0x83)));

    CHECK(describe(server.read_until_close(Clock::now() + patience())) == "[text 'said on_error', close 1002]");
    server.close_peer();
    REQUIRE(client.wait_closed(patience()));
    CHECK(from_error.load() == static_cast<int>(SendResult::Queued));
    CHECK(from_close.load() == static_cast<int>(SendResult::Closed));
}
