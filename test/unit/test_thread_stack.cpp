// ServerOptions::thread_stack_bytes on the thread-per-client engine: a client's callbacks run
// on a stack of the size asked for (read back with pthread_getattr_np from inside one), the
// default is the documented one, 0 gives the system's default, and a client thread that
// cannot start (a stack no machine can map) is answered 503 and reported, the server going on
// and stopping cleanly. Clients are raw sockets sending plain HTTP requests, whose handler
// runs on the client's own thread.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test/unit/socket_test_util.hpp"
#include "websock/server.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using test_util::patience;

/// The stack size of the calling thread, as pthread_getattr_np tells it (0 if it cannot).
std::size_t own_stack_bytes() {
    pthread_attr_t attributes;
    if (::pthread_getattr_np(::pthread_self(), &attributes) != 0) return 0;
    std::size_t size = 0;
    ::pthread_attr_getstacksize(&attributes, &size);
    ::pthread_attr_destroy(&attributes);
    return size;
}

std::size_t page_rounded(std::size_t bytes) {
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return (bytes + page - 1) / page * page;
}

/// One plain HTTP request on a new connection; the whole answer (until the server closes,
/// or `patience()`), "" when the connection could not be made.
std::string http_get(std::uint16_t port) {
    const int fd = test_util::connect_loopback(port);
    if (fd < 0) return {};
    const std::string request = "GET /stack HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::string answer = test_util::read_until(fd, {}, [](const std::string&) { return false; }, patience());
    ::close(fd);
    return answer;
}

/// A thread-per-client server on 127.0.0.1, port 0, serving on its own thread; its HTTP
/// handler notes the stack size of the thread it runs on, on_error every message.
class StackServer {
public:
    explicit StackServer(std::size_t stack_bytes) {
        websock::ServerOptions options;
        options.engine = websock::Engine::ThreadPerClient;
        options.port = 0;
        options.thread_stack_bytes = stack_bytes;
        server_.emplace(options);
        server_->on_http_request([this](const websock::HttpRequest&) {
            const std::size_t size = own_stack_bytes();
            std::lock_guard lock(mutex_);
            stack_sizes_.push_back(size);
            return websock::HttpResponse::text(200, "ok\n");
        });
        server_->on_error([this](websock::Client*, const websock::Error& error) {
            std::lock_guard lock(mutex_);
            errors_.push_back(error.message);
        });
        REQUIRE(server_->listen());
        served_ = std::async(std::launch::async, [this] { return server_->serve_forever(); });
    }
    ~StackServer() { stop(); }
    StackServer(const StackServer&) = delete;
    StackServer& operator=(const StackServer&) = delete;

    std::uint16_t port() const { return server_->port(); }
    /// stop(), then wait (bounded) for serve_forever(); its result, nullopt if it did not return.
    std::optional<bool> stop() {
        if (!served_.valid()) return result_;
        server_->stop();
        if (served_.wait_for(patience()) != std::future_status::ready) return std::nullopt;  // the test fails; abort() at exit
        result_ = served_.get();
        return result_;
    }
    std::vector<std::size_t> stack_sizes() {
        std::lock_guard lock(mutex_);
        return stack_sizes_;
    }
    std::vector<std::string> errors() {
        std::lock_guard lock(mutex_);
        return errors_;
    }

private:
    std::optional<websock::WebSocketServer> server_;
    std::future<bool> served_;
    std::optional<bool> result_;
    std::mutex mutex_;
    std::vector<std::size_t> stack_sizes_;
    std::vector<std::string> errors_;
};

bool has_message(const std::vector<std::string>& messages, const std::string& part) {
    for (const auto& message : messages)
        if (message.find(part) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("thread per client: callbacks run on a stack of ServerOptions::thread_stack_bytes") {
    // The documented default, an odd size (rounded up to whole pages), and 0 (the system's default).
    std::size_t system_default = 0;
    {
        pthread_attr_t defaults;
        REQUIRE(::pthread_getattr_default_np(&defaults) == 0);
        ::pthread_attr_getstacksize(&defaults, &system_default);
        ::pthread_attr_destroy(&defaults);
    }
    REQUIRE(websock::ServerOptions{}.thread_stack_bytes == 256 * 1024);
    struct Case {
        std::size_t asked;
        std::size_t expected;
    };
    // Sanitizer runtimes raise stacks under about 128 KiB plus TLS, so every size here is above that.
    for (const Case c : {Case{websock::ServerOptions{}.thread_stack_bytes, 256 * 1024},
                         Case{320 * 1024 + 100, page_rounded(320 * 1024 + 100)}, Case{0, system_default}}) {
        CAPTURE(c.asked);
        StackServer server(c.asked);
        for (int client = 0; client < 2; ++client) {
            const std::string answer = http_get(server.port());
            CHECK(answer.rfind("HTTP/1.1 200", 0) == 0);
        }
        const auto sizes = server.stack_sizes();
        REQUIRE(sizes.size() == 2);
        for (const auto size : sizes) CHECK(size == c.expected);
        CHECK(server.stop() == std::optional<bool>(true));
    }
}

TEST_CASE("thread per client: a client thread that cannot start (no room for its stack) gets 503, and the server stops cleanly") {
    // 64 TiB: more than any machine here can map, so pthread_create fails (EAGAIN) for real.
    StackServer server(std::size_t{1} << 46);
    for (int client = 0; client < 2; ++client) {
        const std::string answer = http_get(server.port());
        CHECK_MESSAGE(answer.rfind("HTTP/1.1 503", 0) == 0, answer);
    }
    CHECK(server.stack_sizes().empty());  // no handler ran
    CHECK(server.stop() == std::optional<bool>(true));
    CHECK(has_message(server.errors(), "cannot start a client thread"));
}
