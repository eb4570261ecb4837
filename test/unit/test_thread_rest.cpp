// The thread-per-client engine's client thread at rest and at work (issue 12):
// - once its client has been quiet for half a second it gives back its read buffer's pages
//   and its stack below the frame it waits in (detail/thread_rest.hpp), and still serves
//   the client after that;
// - after a batch it yields and reads again before it sleeps (session.cpp), which must not
//   delay what wakes it: another thread's send, a close asked for from outside, the stop.
// Raw clients over loopback: a blocking socket, the upgrade, masked frames out.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test/unit/socket_test_util.hpp"
#include "websock/codec/frame.hpp"
#include "websock/detail/client_driver.hpp"
#include "websock/detail/thread_rest.hpp"
#include "websock/server.hpp"

namespace {

using std::chrono::milliseconds;
using test_util::patience;
using websock::detail::resident_pages;

constexpr std::size_t kPage = 4096;
constexpr std::size_t kDeepBytes = 96 * 1024;  // stack a "deep" callback touches

/// Where a deep call's array lay, and how much of it was resident just after (on its thread).
struct DeepTrace {
    std::uintptr_t begin = 0;
    std::size_t size = 0;
    long resident_after_touch = -1;
    websock::detail::StackRange stack;
};

/// Touches kDeepBytes of stack, notes where, returns a sum so nothing is optimised away.
[[gnu::noinline]] unsigned touch_deep_stack(DeepTrace& trace) {
    volatile unsigned char deep[kDeepBytes];
    for (std::size_t i = 0; i < kDeepBytes; i += 64) deep[i] = static_cast<unsigned char>(i);
    trace.begin = reinterpret_cast<std::uintptr_t>(&deep[0]);
    trace.size = kDeepBytes;
    trace.resident_after_touch = resident_pages(const_cast<unsigned char*>(&deep[0]), kDeepBytes);
    unsigned sum = 0;
    for (std::size_t i = 0; i < kDeepBytes; i += 4096) sum += deep[i];
    return sum;
}

long resident(const DeepTrace& trace) { return resident_pages(reinterpret_cast<void*>(trace.begin), trace.size); }
bool on_stack(const DeepTrace& trace) {
    // Under ASan's fake stacks a local may live elsewhere: then there is nothing to check.
    return trace.stack.known() && trace.begin >= trace.stack.low && trace.begin + trace.size <= trace.stack.high;
}

/// A raw WebSocket client: the upgrade, masked text frames out, text messages in.
class RawClient {
public:
    explicit RawClient(std::uint16_t port) : fd_(test_util::connect_loopback(port)) {
        REQUIRE(fd_ >= 0);
        const std::string request =
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        REQUIRE(write_all(request));
        std::string answer = test_util::read_until(
            fd_, {}, [](const std::string& got) { return got.find("\r\n\r\n") != std::string::npos; }, patience());
        const auto end = answer.find("\r\n\r\n");
        REQUIRE(end != std::string::npos);
        REQUIRE(answer.rfind("HTTP/1.1 101", 0) == 0);
        pending_ = answer.substr(end + 4);
    }
    ~RawClient() { ::close(fd_); }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    bool send_text(std::string_view text) {
        const std::uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
        std::string frame;
        websock::codec::append_frame(frame, websock::codec::Opcode::Text, true, text, mask);
        return write_all(frame);
    }
    /// Read until a text message equal to `wanted` (true) or a close frame (its code in
    /// close_code()) arrives, or `limit` passes.
    bool wait_for(std::string_view wanted, milliseconds limit) {
        bool found = false;
        pending_ = test_util::read_until(
            fd_, std::move(pending_),
            [&](std::string& got) {
                found = take_frames(got, wanted);
                return found || close_code_.has_value();
            },
            limit);
        return found;
    }
    std::optional<int> close_code() const { return close_code_; }

private:
    struct Collector {
        std::string_view wanted;
        bool found = false;
        std::optional<int> close_code;
        std::string current;
        bool on_frame_header(const websock::codec::FrameHeader&) {
            current.clear();
            return true;
        }
        bool on_frame_payload(std::uint8_t* data, std::size_t size) {
            current.append(reinterpret_cast<const char*>(data), size);
            return true;
        }
        bool on_frame_end(const websock::codec::FrameHeader& header) {
            if (header.opcode == websock::codec::Opcode::Close)
                close_code = current.size() >= 2 ? (static_cast<unsigned char>(current[0]) << 8) | static_cast<unsigned char>(current[1]) : 1005;
            else if (current == wanted) found = true;
            return true;
        }
    };
    bool take_frames(std::string& bytes, std::string_view wanted) {
        Collector collector{wanted};
        auto* data = reinterpret_cast<std::uint8_t*>(bytes.data());
        const auto result = decoder_.feed(data, bytes.size(), collector);
        bytes.erase(0, result.consumed);
        if (collector.close_code) close_code_ = collector.close_code;
        return collector.found;
    }
    bool write_all(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (sent <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(sent));
        }
        return true;
    }

    int fd_;
    std::string pending_;
    websock::codec::FrameDecoder decoder_{{websock::codec::Role::Client, 0, 64u << 20}};
    std::optional<int> close_code_;
};

/// A thread-per-client echo server on 127.0.0.1, port 0, serving on its own thread. The
/// message "deep" first runs touch_deep_stack() on the client's thread.
class EchoServer {
public:
    explicit EchoServer(bool direct_sends = true) {
        websock::ServerOptions options;
        options.engine = websock::Engine::ThreadPerClient;
        options.port = 0;
        options.direct_sends = direct_sends;
        server_.emplace(options);
        server_->on_data_receive([this](websock::Client& client, std::string_view data, websock::MessageType type) {
            if (data == "noise") return;  // a flood that only keeps the server busy
            if (data == "deep") {
                DeepTrace trace;
                trace.stack = websock::detail::current_stack_range();
                sink_ += touch_deep_stack(trace);
                std::lock_guard lock(mutex_);
                deep_ = trace;
            }
            client.send(data, type);
        });
        REQUIRE(server_->listen());
        served_ = std::async(std::launch::async, [this] { return server_->serve_forever(); });
    }
    ~EchoServer() { stop(); }
    EchoServer(const EchoServer&) = delete;
    EchoServer& operator=(const EchoServer&) = delete;

    std::uint16_t port() const { return server_->port(); }
    websock::WebSocketServer& server() { return *server_; }
    std::optional<DeepTrace> deep() {
        std::lock_guard lock(mutex_);
        return deep_;
    }
    /// stop(); true when serve_forever() returned within `limit`.
    bool stop(milliseconds limit = patience()) {
        if (!served_.valid()) return true;
        server_->stop();
        if (served_.wait_for(limit) != std::future_status::ready) return false;
        served_.get();
        return true;
    }

private:
    std::optional<websock::WebSocketServer> server_;
    std::future<bool> served_;
    std::mutex mutex_;
    std::optional<DeepTrace> deep_;
    std::atomic<unsigned> sink_{0};
};

/// The one open client of `server`, once there is exactly one (null after patience()).
std::shared_ptr<websock::Client> sole_client(websock::WebSocketServer& server) {
    std::shared_ptr<websock::Client> found;
    test_util::eventually(
        [&] {
            const auto clients = server.clients();
            if (clients.size() == 1) found = clients.front();
            return found != nullptr;
        },
        patience());
    return found;
}

}  // namespace

TEST_CASE("thread rest: a read buffer's touched pages are given back, and read as zero after") {
    websock::detail::ReadBuffer buffer(64 * 1024);
    REQUIRE(reinterpret_cast<std::uintptr_t>(buffer.data()) % kPage == 0);
    CHECK(resident_pages(buffer.data(), buffer.size()) == 0);  // mapped, not touched
    std::memset(buffer.data(), 0xab, buffer.size());
    CHECK(resident_pages(buffer.data(), buffer.size()) == 16);
    CHECK(websock::detail::drop_pages(buffer.data(), buffer.size()) == buffer.size());
    CHECK(resident_pages(buffer.data(), buffer.size()) == 0);
    CHECK(buffer.data()[0] == 0);
    CHECK(buffer.data()[buffer.size() - 1] == 0);
    // Only whole pages inside the range: a range that covers none drops nothing.
    CHECK(websock::detail::drop_pages(buffer.data() + 1, kPage) == 0);
}

TEST_CASE("thread rest: the stack below the caller is given back, and the caller goes on") {
    std::optional<DeepTrace> checked;
    long after_drop = -1;
    std::size_t dropped = 0;
    unsigned second_sum = 0, first_sum = 0;
    std::thread worker([&] {
        DeepTrace trace;
        trace.stack = websock::detail::current_stack_range();
        first_sum = touch_deep_stack(trace);
        dropped = websock::detail::drop_stack_below_caller(trace.stack);
        after_drop = resident(trace);
        DeepTrace again;
        second_sum = touch_deep_stack(again);  // the stack still works, pages come back as needed
        checked = trace;
    });
    worker.join();
    REQUIRE(checked.has_value());
    if (!on_stack(*checked)) {
        MESSAGE("the deep array was not on the thread's stack (a sanitizer's fake stack): not checked");
        return;
    }
    CHECK(checked->resident_after_touch >= static_cast<long>(kDeepBytes / kPage) - 1);
    CHECK(dropped >= kDeepBytes - 3 * kPage);
    CHECK(after_drop <= 3);  // the margin kept under the caller's frame
    CHECK(second_sum == first_sum);
}

TEST_CASE("thread per client: a quiet client's thread gives back its stack below the wait, and still echoes") {
    EchoServer server;
    RawClient client(server.port());
    REQUIRE(client.send_text("deep"));
    REQUIRE(client.wait_for("deep", patience()));
    const auto trace = server.deep();
    REQUIRE(trace.has_value());
    if (!on_stack(*trace)) {
        MESSAGE("the deep array was not on the client thread's stack (a sanitizer's fake stack): not checked");
        return;
    }
    CHECK(trace->resident_after_touch >= static_cast<long>(kDeepBytes / kPage) - 1);
    // Half a second after the last event the thread rests (session.cpp, kQuietRelease).
    CHECK(test_util::eventually([&] { return resident(*trace) <= 3; }, patience()));
    // At rest it still serves: the dropped pages of its read buffer come back zeroed.
    REQUIRE(client.send_text("after the rest"));
    CHECK(client.wait_for("after the rest", patience()));
}

TEST_CASE("thread per client: a client that sends without pause still gets another thread's send, a close, and the stop") {
    // Direct sends off: the send from outside must wake the client thread, which is busy
    // yielding and reading again after each batch while the client keeps sending.
    EchoServer server(/*direct_sends=*/false);
    RawClient client(server.port());
    auto handle = sole_client(server.server());
    REQUIRE(handle != nullptr);

    RawClient loud(server.port());
    std::atomic<bool> sending{true};
    const auto give_up = std::chrono::steady_clock::now() + patience() * 3;  // bounds both loops
    // Another connection's flood (not echoed) keeps the server's core busy, so that a
    // yield really hands it over.
    std::thread flooder([&] {
        while (sending.load() && std::chrono::steady_clock::now() < give_up)
            if (!loud.send_text("noise")) break;  // the server went away
    });
    // The client itself sends without pause (its echoes pile up until it reads them).
    std::thread pumper([&] {
        while (sending.load() && std::chrono::steady_clock::now() < give_up)
            if (!client.send_text("tick")) break;
    });

    REQUIRE(handle->send("from outside") == websock::SendResult::Queued);
    CHECK(client.wait_for("from outside", patience()));

    handle->close(websock::CloseCode::PolicyViolation, "asked from outside");
    (void)client.wait_for("never sent", patience());
    CHECK(client.close_code() == 1008);

    // The stop reaches the flooded client thread within the shutdown deadline too.
    CHECK(server.stop(patience()));
    sending.store(false);
    pumper.join();
    flooder.join();
}
