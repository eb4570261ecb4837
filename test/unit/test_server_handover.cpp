// What a zero-downtime restart needs from WebSocketServer, on both engines: serving a socket
// that something else made (ServerOptions::listen_fd: systemd socket activation, or a
// predecessor's socket), handing the socket out (duplicate_listen_socket), holding new
// connections in the backlog while the clients already in carry on (pause_accepting), and
// stopping with a close code and reason of the caller's (stop(1012, ...)).
// Clients are raw sockets here, so the bytes on the wire are what is checked.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "test/unit/socket_test_util.hpp"
#include "websock/server.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using test_util::patience;
using test_util::read_until;

struct Socket {
    int fd = -1;
    explicit Socket(int descriptor = -1) : fd(descriptor) {}
    ~Socket() {
        if (fd >= 0) ::close(fd);
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    int release() { return std::exchange(fd, -1); }
};

int listening_tcp_socket(std::uint16_t& port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);  // blocking, inheritable: as systemd hands it over
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(fd, 64) == 0);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
    return fd;
}

int connect_tcp(std::uint16_t port) {
    const int fd = test_util::connect_loopback(port);
    REQUIRE(fd >= 0);
    return fd;
}

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return address;
}

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t put = ::write(fd, data.data(), data.size());
        REQUIRE(put > 0);
        data.remove_prefix(static_cast<std::size_t>(put));
    }
}

void send_upgrade(int fd) {
    write_all(fd, "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
}

/// The response head to the upgrade ("" when none came within `limit`); the bytes after it
/// stay in `rest`.
std::string read_head(int fd, std::string& rest, milliseconds limit) {
    const std::string got = read_until(fd, {}, [](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; }, limit);
    const auto end = got.find("\r\n\r\n");
    if (end == std::string::npos) return {};
    rest = got.substr(end + 4);
    return got.substr(0, end + 4);
}

void send_text(int fd, std::string_view text) {
    REQUIRE(text.size() < 126);
    std::string frame{static_cast<char>(0x81), static_cast<char>(0x80 | text.size())};
    const char mask[4] = {1, 2, 3, 4};
    frame.append(mask, 4);
    for (std::size_t i = 0; i < text.size(); ++i) frame.push_back(static_cast<char>(text[i] ^ mask[i % 4]));
    write_all(fd, frame);
}

struct Frame {
    int opcode = 0;
    std::string payload;
    int close_code() const {
        return payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]) : 0;
    }
};

/// The next server frame (unmasked, payload < 126 bytes, as every frame here is).
std::optional<Frame> read_frame(int fd, std::string& rest, milliseconds limit) {
    auto complete = [](const std::string& b) {
        return b.size() >= 2 && b.size() >= 2u + (static_cast<unsigned char>(b[1]) & 0x7Fu);
    };
    rest = read_until(fd, std::move(rest), complete, limit);
    if (!complete(rest)) return std::nullopt;
    const std::size_t length = static_cast<unsigned char>(rest[1]) & 0x7F;
    Frame frame{static_cast<unsigned char>(rest[0]) & 0x0F, rest.substr(2, length)};
    rest.erase(0, 2 + length);
    return frame;
}

/// A server that answers every message with `name: message`, serving on its own thread.
struct RunningServer {
    websock::WebSocketServer server;
    std::thread thread;
    std::mutex errors_mutex;
    std::string errors;  // the first I/O error reported (guarded)

    RunningServer(websock::ServerOptions options, std::string name) : server(options) {
        server.on_data_receive([name](websock::Client& client, std::string_view data, websock::MessageType) {
            client.send(name + ": " + std::string(data));
        });
        server.on_error([this](websock::Client*, const websock::Error& error) {
            std::lock_guard lock(errors_mutex);
            if (error.kind == websock::ErrorKind::Io && errors.empty()) errors = error.message;
        });
    }
    bool start() {
        if (!server.listen()) return false;
        thread = std::thread([this] { server.serve_forever(); });
        return true;
    }
    ~RunningServer() {
        server.stop();
        if (thread.joinable()) thread.join();
    }
};

websock::ServerOptions options_for(websock::Engine engine) {
    websock::ServerOptions options;
    options.engine = engine;
    options.port = 0;
    options.shutdown_timeout = milliseconds(2000);
    return options;
}

using test_util::eventually;

constexpr websock::Engine kEngines[] = {websock::Engine::ThreadPerClient, websock::Engine::EventLoop};
const char* engine_name(websock::Engine engine) { return engine == websock::Engine::EventLoop ? "event loop" : "threads"; }

}  // namespace

TEST_CASE("a server adopts a listening TCP socket, reads its port, and stops with 1012, a reason and a drain timeout") {
    for (const auto engine : kEngines) {
        CAPTURE(engine_name(engine));
        std::uint16_t bound_port = 0;
        auto options = options_for(engine);
        options.shutdown_timeout = milliseconds(test_util::kSanitized ? 20000 : 5000);
        options.port = 1;  // unused: the adopted socket is served, not this
        options.listen_fd = listening_tcp_socket(bound_port);
        const int adopted = options.listen_fd;
        RunningServer running(options, "adopted");
        REQUIRE(running.start());
        CHECK(running.server.port() == bound_port);
        CHECK((::fcntl(adopted, F_GETFL) & O_NONBLOCK) != 0);  // made non-blocking
        CHECK((::fcntl(adopted, F_GETFD) & FD_CLOEXEC) != 0);  // and kept from children

        Socket client(connect_tcp(bound_port));
        send_upgrade(client.fd);
        std::string rest;
        REQUIRE(read_head(client.fd, rest, patience()).rfind("HTTP/1.1 101", 0) == 0);
        send_text(client.fd, "hi");
        const auto echo = read_frame(client.fd, rest, patience());
        REQUIRE(echo);
        CHECK(echo->payload == "adopted: hi");

        const auto stop_started = Clock::now();
        const auto drain = milliseconds(600);  // stop()'s own, instead of shutdown_timeout
        running.server.stop(websock::CloseCode::ServiceRestart, "service restart: reconnect and resume", drain);
        const auto close = read_frame(client.fd, rest, patience());
        REQUIRE(close);
        CHECK(close->opcode == 0x8);
        CHECK(close->close_code() == 1012);
        CHECK(close->payload.substr(2) == "service restart: reconnect and resume");
        // The client never answers: the drain ends at its timeout, not before, and not at
        // shutdown_timeout.
        running.thread.join();
        const auto took = Clock::now() - stop_started;
        CHECK(took >= drain - milliseconds(50));
        CHECK(took < options.shutdown_timeout);
    }
}

TEST_CASE("stop(code, reason) cuts a long reason at a character boundary within a close frame") {
    for (const auto engine : kEngines) {
        CAPTURE(engine_name(engine));
        RunningServer running(options_for(engine), "s");
        REQUIRE(running.start());
        Socket client(connect_tcp(running.server.port()));
        send_upgrade(client.fd);
        std::string rest;
        REQUIRE(read_head(client.fd, rest, patience()).rfind("HTTP/1.1 101", 0) == 0);
        REQUIRE(eventually([&] { return running.server.client_count() == 1; }, patience()));
        std::string reason;
        while (reason.size() < 200) reason += "é";  // two bytes each: 123 would split one
        running.server.stop(websock::CloseCode::ServiceRestart, reason);
        const auto close = read_frame(client.fd, rest, patience());
        REQUIRE(close);
        CHECK(close->close_code() == 1012);
        CHECK(close->payload.size() - 2 == 122);
        CHECK(close->payload.substr(2) == reason.substr(0, 122));
    }
}

TEST_CASE("a server adopts a listening unix socket, and leaves its file in place when it stops") {
    char dir_template[] = "/tmp/websock-handover-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::string path = std::string(dir_template) + "/hub.sock";
    for (const auto engine : kEngines) {
        CAPTURE(engine_name(engine));
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        auto address = unix_address(path);
        ::unlink(path.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(fd, 16) == 0);
        auto options = options_for(engine);
        options.listen_fd = fd;
        options.unix_socket_path = path;  // only names it
        {
            RunningServer running(options, "unix");
            REQUIRE(running.start());
            CHECK(running.server.port() == 0);
            Socket client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
            REQUIRE(::connect(client.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
            send_upgrade(client.fd);
            std::string rest;
            REQUIRE(read_head(client.fd, rest, patience()).rfind("HTTP/1.1 101", 0) == 0);
            send_text(client.fd, "over unix");
            const auto echo = read_frame(client.fd, rest, patience());
            REQUIRE(echo);
            CHECK(echo->payload == "unix: over unix");
            running.server.stop();
            const auto close = read_frame(client.fd, rest, patience());
            REQUIRE(close);
            CHECK(close->close_code() == 1001);  // stop() without a code keeps its 1001
        }
        struct stat info {};
        CHECK(::stat(path.c_str(), &info) == 0);  // not unlinked: the socket's maker owns the file
    }
    ::unlink(path.c_str());
    ::rmdir(dir_template);
}

TEST_CASE("a descriptor that does not listen is refused by listen() with the reason") {
    for (const auto engine : kEngines) {
        CAPTURE(engine_name(engine));
        auto options = options_for(engine);
        options.listen_fd = ::socket(AF_INET, SOCK_STREAM, 0);  // never listened on
        websock::WebSocketServer server(options);
        std::string reported;
        server.on_error([&](websock::Client*, const websock::Error& error) { reported = error.message; });
        CHECK_FALSE(server.listen());
        CHECK(reported.find("does not listen") != std::string::npos);
        CHECK_FALSE(server.serve_forever());
    }
}

TEST_CASE("pause_accepting holds new connections in the backlog; a successor adopts the socket and serves them") {
    for (const auto engine : kEngines) {
        CAPTURE(engine_name(engine));
        RunningServer old_server(options_for(engine), "old");
        REQUIRE(old_server.start());
        const std::uint16_t port = old_server.server.port();
        Socket early(connect_tcp(port));
        send_upgrade(early.fd);
        std::string early_rest;
        REQUIRE(read_head(early.fd, early_rest, patience()).rfind("HTTP/1.1 101", 0) == 0);

        old_server.server.pause_accepting();
        REQUIRE(eventually([&] { return old_server.server.accepting_paused(); }, patience()));
        // A connection attempt now is not refused: the kernel completes it and it waits.
        Socket waiting(connect_tcp(port));
        send_upgrade(waiting.fd);
        std::string waiting_rest;
        CHECK(read_head(waiting.fd, waiting_rest, milliseconds(300)).empty());  // nobody accepted it
        // The client already in carries on.
        send_text(early.fd, "still here");
        const auto echo = read_frame(early.fd, early_rest, patience());
        REQUIRE(echo);
        CHECK(echo->payload == "old: still here");
        CHECK(old_server.server.connection_count() == 1);

        // The successor takes a copy of the socket and serves what waited in the backlog.
        auto successor_options = options_for(engine);
        successor_options.listen_fd = old_server.server.duplicate_listen_socket();
        REQUIRE(successor_options.listen_fd >= 0);
        RunningServer successor(successor_options, "new");
        REQUIRE(successor.start());
        CHECK(successor.server.port() == port);
        REQUIRE(read_head(waiting.fd, waiting_rest, patience()).rfind("HTTP/1.1 101", 0) == 0);
        send_text(waiting.fd, "hello");
        const auto answer = read_frame(waiting.fd, waiting_rest, patience());
        REQUIRE(answer);
        CHECK(answer->payload == "new: hello");

        // The predecessor says goodbye with 1012; closing its copy leaves the successor serving.
        old_server.server.stop(websock::CloseCode::ServiceRestart, "service restart: reconnect and resume");
        const auto close = read_frame(early.fd, early_rest, patience());
        REQUIRE(close);
        CHECK(close->close_code() == 1012);
        old_server.thread.join();
        Socket later(connect_tcp(port));
        send_upgrade(later.fd);
        std::string later_rest;
        REQUIRE(read_head(later.fd, later_rest, patience()).rfind("HTTP/1.1 101", 0) == 0);
        send_text(later.fd, "after");
        const auto after = read_frame(later.fd, later_rest, patience());
        REQUIRE(after);
        CHECK(after->payload == "new: after");
        std::lock_guard lock(successor.errors_mutex);
        CHECK(successor.errors.empty());
    }
}

TEST_CASE("resume_accepting serves what waited; a pause before serving holds from the start") {
    for (const auto engine : kEngines) {
        CAPTURE(engine_name(engine));
        RunningServer running(options_for(engine), "s");
        running.server.pause_accepting();  // before serve_forever(): holds at once
        CHECK(running.server.accepting_paused());
        REQUIRE(running.start());
        Socket waiting(connect_tcp(running.server.port()));
        send_upgrade(waiting.fd);
        std::string rest;
        CHECK(read_head(waiting.fd, rest, milliseconds(300)).empty());
        running.server.resume_accepting();
        CHECK_FALSE(running.server.accepting_paused());
        REQUIRE(read_head(waiting.fd, rest, patience()).rfind("HTTP/1.1 101", 0) == 0);
        // A second pause is acknowledged anew, and a second resume serves again.
        running.server.pause_accepting();
        REQUIRE(eventually([&] { return running.server.accepting_paused(); }, patience()));
        running.server.resume_accepting();
        Socket next(connect_tcp(running.server.port()));
        send_upgrade(next.fd);
        std::string next_rest;
        REQUIRE(read_head(next.fd, next_rest, patience()).rfind("HTTP/1.1 101", 0) == 0);
    }
}

TEST_CASE("a response with Connection: close closes its connection, also when the request asked to keep it") {
    for (const auto engine : kEngines) {
        for (const bool async : {false, true}) {
            CAPTURE(engine_name(engine));
            CAPTURE(async);
            websock::WebSocketServer server(options_for(engine));
            auto busy = [] {
                return websock::HttpResponse::text(503, "restarting\n").header("Retry-After", "1").header("Connection", "close");
            };
            if (async)
                server.on_http_request_async([&](const websock::HttpRequest&, std::shared_ptr<websock::HttpResponder> responder) {
                    responder->respond(busy());
                });
            else
                server.on_http_request([&](const websock::HttpRequest&) { return busy(); });
            REQUIRE(server.listen());
            std::thread serving([&] { server.serve_forever(); });
            Socket client(connect_tcp(server.port()));
            write_all(client.fd, "POST /publish HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi");
            // Everything up to the server's end of the connection: one response, then EOF.
            const std::string got = read_until(client.fd, {}, [](const std::string&) { return false; }, patience());
            // EOF came (the read above ended on it, not on the deadline): readable, and nothing.
            pollfd readable{client.fd, POLLIN, 0};
            REQUIRE(::poll(&readable, 1, 0) == 1);
            char byte = 0;
            CHECK(::read(client.fd, &byte, 1) == 0);
            CHECK(got.rfind("HTTP/1.1 503", 0) == 0);
            CHECK(got.find("Connection: close\r\n") != std::string::npos);
            CHECK(got.find("Connection: keep-alive") == std::string::npos);
            CHECK(got.find("Retry-After: 1\r\n") != std::string::npos);
            CHECK(got.size() == got.find("\r\n\r\n") + 4 + std::string("restarting\n").size());
            server.stop();
            serving.join();
        }
    }
}
