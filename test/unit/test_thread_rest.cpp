// The thread-per-client engine's client thread asleep and at work (issue 12):
// - it borrows a read buffer from its server's pool for each batch, so idle threads hold
//   none, and once open it drops the stack pages the handshake touched below the frame it
//   waits in (detail/thread_rest.hpp); it still serves its client after that;
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
#include "websock/detail/server_core.hpp"
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

/// A thread-per-client echo server on 127.0.0.1, port 0, serving on its own thread. With
/// `deep_open`, on_connection_open runs touch_deep_stack() on the client's thread.
class EchoServer {
public:
    explicit EchoServer(bool direct_sends = true, bool deep_open = false) {
        websock::ServerOptions options;
        options.engine = websock::Engine::ThreadPerClient;
        options.port = 0;
        options.direct_sends = direct_sends;
        server_.emplace(options);
        server_->on_data_receive([this](websock::Client& client, std::string_view data, websock::MessageType type) {
            if (data == "noise") return;  // a flood that only keeps the server busy
            client.send(data, type);
        });
        if (deep_open)
            server_->on_connection_open([this](websock::Client&) {
                DeepTrace trace;
                trace.stack = websock::detail::current_stack_range();
                sink_ += touch_deep_stack(trace);
                std::lock_guard lock(mutex_);
                deep_ = trace;
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

TEST_CASE("thread rest: the read buffer pool reuses what it keeps and unmaps the rest") {
    websock::detail::ReadBufferPool pool(64 * 1024, 2);
    std::uint8_t* first = pool.take();
    std::uint8_t* second = pool.take();
    std::uint8_t* third = pool.take();
    REQUIRE(first != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(first) % kPage == 0);
    CHECK(resident_pages(first, pool.buffer_bytes()) == 0);  // mapped, not touched
    first[0] = 1;
    first[pool.buffer_bytes() - 1] = 2;  // the whole buffer is usable
    CHECK(pool.mapped() == 3);
    CHECK(pool.free_count() == 0);
    pool.give(first);
    pool.give(second);
    pool.give(third);  // past `keep`: unmapped
    CHECK(pool.mapped() == 2);
    CHECK(pool.free_count() == 2);
    std::uint8_t* again = pool.take();
    CHECK((again == first || again == second));  // a kept one, not a new mapping
    CHECK(pool.mapped() == 2);
    pool.give(again);
    pool.give(nullptr);  // nothing borrowed: nothing happens
    CHECK(pool.free_count() == 2);
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

TEST_CASE("thread per client: idle client threads hold no read buffer, and once open no stack the handshake touched") {
    EchoServer server(/*direct_sends=*/true, /*deep_open=*/true);
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 24; ++i) {
        clients.push_back(std::make_unique<RawClient>(server.port()));
        REQUIRE(clients.back()->send_text("hello " + std::to_string(i)));
    }
    for (int i = 0; i < 24; ++i) REQUIRE(clients[i]->wait_for("hello " + std::to_string(i), patience()));
    // The pool is made by serve_forever() before the first client thread; clients() takes the
    // registry's lock after that, which orders this read after the making.
    REQUIRE(server.server().clients().size() == 24);
    REQUIRE(websock::detail::ServerCore::of(server.server()).read_buffers != nullptr);
    auto& pool = *websock::detail::ServerCore::of(server.server()).read_buffers;
    // Every thread is asleep (or about to be) in poll(): every buffer is back in the pool,
    // and no more are mapped than the pool keeps, although 24 threads each read.
    CHECK(test_util::eventually([&] { return pool.free_count() == pool.mapped(); }, patience()));
    CHECK(pool.mapped() <= 16);
    CHECK(pool.mapped() >= 1);

    const auto trace = server.deep();
    REQUIRE(trace.has_value());
    if (!on_stack(*trace)) {
        MESSAGE("the deep array was not on the client thread's stack (a sanitizer's fake stack): not checked");
        return;
    }
    CHECK(trace->resident_after_touch >= static_cast<long>(kDeepBytes / kPage) - 1);
    // The last client's thread dropped its deep pages before its first sleep once open.
    CHECK(test_util::eventually([&] { return resident(*trace) <= 3; }, patience()));
    // And it still serves: the pages come back as needed.
    REQUIRE(clients.back()->send_text("after the trim"));
    CHECK(clients.back()->wait_for("after the trim", patience()));
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
