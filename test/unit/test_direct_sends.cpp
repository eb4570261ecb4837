// Direct sends (ServerOptions::direct_sends, thread-per-client engine, plain TCP): a send from
// another thread writes straight to an idle client's socket instead of waking its thread.
// What must still hold, checked here with raw clients over loopback and the frame codec:
// every message arrives whole, each sender's messages in the order sent, mixed with the
// client thread's own (echoes); a socket that takes only part of a frame (a reader that
// does not read, a small receive buffer) gets the rest before anything else; and a client
// that goes away while others send to it never has bytes of theirs reach the connection
// that is given its descriptor number next. The same checks run with direct sends off and
// on the event loop, which never writes from other threads.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test/unit/socket_test_util.hpp"
#include "websock/codec/frame.hpp"
#include "websock/detail/server_core.hpp"
#include "websock/server.hpp"

namespace {

using std::chrono::milliseconds;
using test_util::patience;

struct EngineCase {
    websock::Engine engine;
    bool direct_sends;
    const char* name;
};

const EngineCase kCases[] = {
    {websock::Engine::ThreadPerClient, true, "thread per client, direct sends"},
    {websock::Engine::ThreadPerClient, false, "thread per client, direct sends off"},
    {websock::Engine::EventLoop, true, "event loop"},
};

/// An echo server on 127.0.0.1, port 0, on its own thread; keeps every error reported.
class EchoServer {
public:
    explicit EchoServer(const EngineCase& setup) {
        websock::ServerOptions options;
        options.engine = setup.engine;
        options.port = 0;
        options.direct_sends = setup.direct_sends;
        server_.emplace(options);
        server_->on_data_receive([](websock::Client& client, std::string_view data, websock::MessageType type) {
            client.send(data, type);
        });
        server_->on_error([this](websock::Client*, const websock::Error& error) {
            std::lock_guard lock(mutex_);
            errors_.push_back(error.message);
        });
        REQUIRE(server_->listen());
        served_ = std::async(std::launch::async, [this] { return server_->serve_forever(); });
    }
    ~EchoServer() {
        server_->stop();
        if (served_.wait_for(patience()) != std::future_status::ready) std::abort();  // a hung server: fail loudly
    }
    EchoServer(const EchoServer&) = delete;
    EchoServer& operator=(const EchoServer&) = delete;

    std::uint16_t port() const { return server_->port(); }
    websock::WebSocketServer& server() { return *server_; }
    /// The one open client, once there is exactly one (null after patience()).
    std::shared_ptr<websock::Client> sole_client() {
        std::shared_ptr<websock::Client> found;
        test_util::eventually(
            [&] {
                const auto clients = server_->clients();
                if (clients.size() == 1) found = clients.front();
                return found != nullptr;
            },
            patience());
        return found;
    }
    std::vector<std::string> errors() {
        std::lock_guard lock(mutex_);
        return errors_;
    }

private:
    std::optional<websock::WebSocketServer> server_;
    std::future<bool> served_;
    std::mutex mutex_;
    std::vector<std::string> errors_;
};

/// The frames a server sends, decoded as a client decodes them.
struct FrameCollector {
    std::vector<std::string> messages;  // text and binary payloads, in order
    std::optional<std::string> close_payload;
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
        // Server messages here are single frames (Client::send writes one per message).
        if (!header.fin) return false;
        if (header.opcode == websock::codec::Opcode::Close) close_payload = current;
        else if (!websock::codec::is_control(header.opcode)) messages.push_back(current);
        return true;
    }
};

/// A raw WebSocket client: a blocking socket, the upgrade, masked frames out, a decoder in.
class RawClient {
public:
    /// `receive_buffer` > 0 shrinks SO_RCVBUF before connecting, so the server's writes
    /// meet a full socket sooner.
    explicit RawClient(std::uint16_t port, int receive_buffer = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(port);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        const std::string request =
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        REQUIRE(write_all(request));
        std::string answer = test_util::read_until(
            fd_, {}, [](const std::string& got) { return got.find("\r\n\r\n") != std::string::npos; }, patience());
        const auto end = answer.find("\r\n\r\n");
        REQUIRE(end != std::string::npos);
        REQUIRE(answer.rfind("HTTP/1.1 101", 0) == 0);
        feed(answer.substr(end + 4));
    }
    ~RawClient() { close_now(); }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    bool send_text(std::string_view text) { return send_frame(websock::codec::Opcode::Text, text); }
    bool send_frame(websock::codec::Opcode opcode, std::string_view payload) {
        const std::uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
        std::string frame;
        websock::codec::append_frame(frame, opcode, true, payload, mask);
        return write_all(frame);
    }
    /// Read until `count` messages (or a close frame) are in, or `limit` passes.
    bool read_messages(std::size_t count, milliseconds limit) {
        test_util::read_until(
            fd_, {},
            [&](std::string& got) {
                feed(got);
                got.clear();
                return failed_ || collector_.messages.size() >= count || collector_.close_payload.has_value();
            },
            limit);
        return !failed_ && collector_.messages.size() >= count;
    }
    const FrameCollector& received() const { return collector_; }
    void close_now() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    bool failed() const { return failed_; }
    /// Close without a handshake, with a reset (SO_LINGER 0): the server's writes then fail.
    void reset_now() {
        linger abrupt{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abrupt, sizeof abrupt);
        close_now();
    }

private:
    bool write_all(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (sent <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(sent));
        }
        return true;
    }
    void feed(std::string bytes) {
        if (failed_ || bytes.empty()) return;
        pending_ += bytes;
        auto* data = reinterpret_cast<std::uint8_t*>(pending_.data());
        const auto result = decoder_.feed(data, pending_.size(), collector_);
        if (result.failed || result.stopped) failed_ = true;
        pending_.erase(0, result.consumed);
    }

    int fd_ = -1;
    websock::codec::FrameDecoder decoder_{{websock::codec::Role::Client, 0, 64u << 20}};
    FrameCollector collector_;
    std::string pending_;
    bool failed_ = false;
};

/// Sender `sender`'s message number `index`: its name, then a body whose bytes and length
/// depend on both (1 to ~24 KiB), so a torn or misplaced frame cannot pass for another.
std::string message_of(int sender, int index) {
    std::string text = "s" + std::to_string(sender) + ":" + std::to_string(index) + ":";
    const std::size_t body = static_cast<std::size_t>((index * 7919 + sender * 104729) % 24000) + 1;
    text.append(body, static_cast<char>('a' + (index + sender) % 26));
    return text;
}

}  // namespace

TEST_CASE("direct sends: messages from four threads and the client's own echoes arrive whole, each sender's in order") {
    for (const auto& setup : kCases) {
        const std::string engine = setup.name;
        CAPTURE(engine);
        EchoServer server(setup);
        RawClient client(server.port(), 8192);  // a small window: writes meet a full socket
        const auto handle = server.sole_client();
        REQUIRE(handle != nullptr);

        constexpr int kSenders = 4;
        constexpr int kPerSender = 150;
        constexpr int kEchoes = 40;
        std::atomic<int> refused{0};
        std::vector<std::thread> senders;
        for (int sender = 0; sender < kSenders; ++sender) {
            senders.emplace_back([&, sender] {
                for (int i = 0; i < kPerSender; ++i)
                    if (handle->send(message_of(sender, i)) != websock::SendResult::Queued) ++refused;
            });
        }
        // Meanwhile the client's own messages come back from its thread (or loop).
        for (int j = 0; j < kEchoes; ++j) REQUIRE(client.send_text("echo:" + std::to_string(j)));
        // The client reads nothing until every send has returned: ~7 MB fill both socket
        // buffers, so direct writes are cut short and the rest waits behind them.
        for (auto& thread : senders) thread.join();
        REQUIRE(client.read_messages(kSenders * kPerSender + kEchoes, patience() * 2));
        CHECK(refused.load() == 0);

        std::vector<int> next(kSenders, 0);
        int next_echo = 0;
        bool whole = true;
        for (const auto& message : client.received().messages) {
            if (message.rfind("echo:", 0) == 0) {
                whole = whole && message == "echo:" + std::to_string(next_echo);
                ++next_echo;
                continue;
            }
            const int sender = message.size() > 1 ? message[1] - '0' : -1;
            if (sender < 0 || sender >= kSenders) {
                whole = false;
                break;
            }
            whole = whole && message == message_of(sender, next[sender]);
            ++next[sender];
        }
        CHECK(whole);
        CHECK(next_echo == kEchoes);
        for (int sender = 0; sender < kSenders; ++sender) CHECK(next[sender] == kPerSender);
        CHECK(server.errors().empty());
    }
}

TEST_CASE("direct sends: a client reset while threads send to it: the next connection gets none of their bytes") {
    for (const auto& setup : kCases) {
        const std::string engine = setup.name;
        CAPTURE(engine);
        EchoServer server(setup);
        for (int round = 0; round < 10; ++round) {
            CAPTURE(round);
            std::optional<RawClient> doomed;
            doomed.emplace(server.port());
            auto handle = server.sole_client();
            REQUIRE(handle != nullptr);
            std::atomic<bool> go_on{true};
            std::vector<std::thread> senders;
            for (int sender = 0; sender < 2; ++sender) {
                senders.emplace_back([&, sender, handle] {
                    // Until the connection refuses sends, bounded in count.
                    for (int i = 0; i < 20000 && go_on.load(); ++i)
                        if (handle->send(message_of(sender, i)) == websock::SendResult::Closed) break;
                });
            }
            handle.reset();
            doomed->reset_now();  // the server's writes now fail; its descriptor is freed
            doomed.reset();
            // The next connection: most likely given the same descriptor number.
            RawClient next(server.port());
            REQUIRE(next.send_text("mine"));
            REQUIRE(next.read_messages(1, patience()));
            go_on.store(false);
            for (auto& thread : senders) thread.join();
            // Every old send has returned, so any byte of theirs that reached this socket is
            // on it before the echo of what is sent now.
            REQUIRE(next.send_text("second"));
            REQUIRE(next.read_messages(2, patience()));
            CHECK_FALSE(next.failed());
            REQUIRE(next.received().messages.size() == 2);
            CHECK(next.received().messages[0] == "mine");
            CHECK(next.received().messages[1] == "second");
            REQUIRE(next.send_frame(websock::codec::Opcode::Close, std::string("\x03\xe8", 2)));
            next.read_messages(3, patience());  // returns at the close frame
            CHECK(next.received().close_payload.has_value());
            next.close_now();  // the FIN the server waits for after the close handshake
            CHECK(test_util::eventually([&] { return server.server().client_count() == 0; }, patience()));
        }
    }
}

// The ordering rules of ClientCore's direct sends, step by step with a scripted transport
// (the real socket decides when a write is cut short; here the test does).
namespace {

/// Takes at most `accept` bytes per call; runs `during` inside the call, as another thread
/// would while this one writes.
class ScriptedTransport final : public websock::detail::Transport {
public:
    std::size_t accept = 0;
    std::function<void()> during;
    std::string written;

    websock::detail::IoResult read(void*, std::size_t) override { return {websock::detail::IoResult::Status::WouldBlock, 0}; }
    websock::detail::IoResult write(const void*, std::size_t) override { return {websock::detail::IoResult::Status::Error, 0}; }
    void shutdown_write() noexcept override {}
    bool writes_from_any_thread() const noexcept override { return true; }
    websock::detail::IoResult write_pair(const void* first, std::size_t first_size, const void* second,
                                         std::size_t second_size) noexcept override {
        if (during) during();
        std::string both(static_cast<const char*>(first), first_size);
        both.append(static_cast<const char*>(second), second_size);
        const std::size_t taken = std::min(accept, both.size());
        written.append(both, 0, taken);
        if (taken == 0) return {websock::detail::IoResult::Status::WouldBlock, 0};
        return {websock::detail::IoResult::Status::Ok, taken};
    }
};

/// A client core as a connection's thread leaves it while idle: open, direct sends on, owned
/// by another thread (so that this one counts as a sender).
struct IdleCore {
    websock::detail::ClientCore core;
    ScriptedTransport transport;
    std::thread::id other_thread;

    IdleCore() {
        std::thread([this] { other_thread = std::this_thread::get_id(); }).join();
        core.owner = other_thread;
        core.max_queue_bytes = 1 << 20;
        core.direct_transport = &transport;
    }
    websock::detail::Transport* claim(std::size_t bytes) {
        std::lock_guard lock(core.mutex);
        return core.claim_direct_locked(bytes);
    }
};

}  // namespace

TEST_CASE("direct sends: the rest of a cut-short frame goes before what was queued meanwhile, and the owner is woken") {
    IdleCore idle;
    auto& core = idle.core;
    idle.transport.accept = 5;
    // While the direct write runs, another sender finds the socket taken: it queues.
    idle.transport.during = [&] {
        CHECK(idle.claim(6) == nullptr);
        CHECK(core.enqueue("QUEUED") == websock::SendResult::Queued);
    };
    auto* transport = idle.claim(4 + 8);
    REQUIRE(transport == &idle.transport);
    core.write_direct(*transport, "HEAD", "payload!");
    CHECK(idle.transport.written == "HEADp");
    CHECK(core.queue == "ayload!QUEUED");
    CHECK(core.queued_bytes.load() == core.queue.size());
    CHECK(core.writer.load() == 0);
    CHECK(core.wake_pending.load());  // the owner writes the rest
}

TEST_CASE("direct sends: when a write is refused outright, all of it waits in the queue, header first") {
    IdleCore idle;
    idle.transport.accept = 0;
    auto* transport = idle.claim(3 + 2);
    REQUIRE(transport != nullptr);
    idle.core.write_direct(*transport, "hdr", "pl");
    CHECK(idle.transport.written.empty());
    CHECK(idle.core.queue == "hdrpl");
    CHECK(idle.core.wake_pending.load());
}

TEST_CASE("direct sends: who may claim the socket") {
    IdleCore idle;
    auto& core = idle.core;
    idle.transport.accept = 1 << 20;
    SUBCASE("a whole write needs no wake-up") {
        auto* transport = idle.claim(2);
        REQUIRE(transport != nullptr);
        core.write_direct(*transport, "ab", {});
        CHECK(idle.transport.written == "ab");
        CHECK(core.queue.empty());
        CHECK_FALSE(core.wake_pending.load());
    }
    SUBCASE("not while something is queued: it would overtake it") {
        core.queue = "x";
        CHECK(idle.claim(2) == nullptr);
    }
    SUBCASE("not once the connection stopped accepting sends (a close frame is decided)") {
        core.accepting = false;
        CHECK(idle.claim(2) == nullptr);
    }
    SUBCASE("not without a transport (not open yet, closing, or closed)") {
        core.direct_transport = nullptr;
        CHECK(idle.claim(2) == nullptr);
    }
    SUBCASE("not for more than the queue's limit, whose policy applies as before") {
        CHECK(idle.claim(core.max_queue_bytes + 1) == nullptr);
        CHECK(idle.claim(core.max_queue_bytes) != nullptr);
    }
    SUBCASE("not on the connection's own thread, which writes in batches") {
        core.owner = std::this_thread::get_id();
        CHECK(idle.claim(2) == nullptr);
    }
    SUBCASE("not while the owner holds it; the owner waits for a direct writer, which then wakes it") {
        CHECK(core.claim_for_owner());
        CHECK(idle.claim(2) == nullptr);
        core.release_for_owner();
        auto* transport = idle.claim(2);
        REQUIRE(transport != nullptr);
        CHECK_FALSE(core.claim_for_owner());  // a direct write runs
        CHECK((core.writer.load() & websock::detail::ClientCore::kOwnerWaits) != 0);
        core.write_direct(*transport, "ab", {});
        CHECK(core.wake_pending.load());
        // The owner keeps its place: no sender takes the socket before it has written.
        CHECK(idle.claim(2) == nullptr);
        CHECK(core.claim_for_owner());
        core.release_for_owner();
        CHECK(idle.claim(2) != nullptr);
    }
}

TEST_CASE("direct sends: a full queue's close keeps the rest of a frame already partly written") {
    IdleCore idle;
    auto& core = idle.core;
    core.max_queue_bytes = 16;
    idle.transport.accept = 3;
    auto* transport = idle.claim(4 + 8);
    REQUIRE(transport != nullptr);
    core.write_direct(*transport, "HEAD", "payload!");
    REQUIRE(core.queue == "Dpayload!");
    CHECK(core.enqueue("fits") == websock::SendResult::Queued);
    // Over the limit: the policy (Close) drops what waits, but not the frame's rest, which
    // the peer needs before the close frame can make sense.
    CHECK(core.enqueue("this one is over the limit") == websock::SendResult::Closed);
    CHECK(core.queue == "Dpayload!");
    CHECK_FALSE(core.accepting);
    CHECK(core.close_requested());
}
