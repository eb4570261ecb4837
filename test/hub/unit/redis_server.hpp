// A private redis-server for a test: Debian's /usr/bin/redis-server on a free loopback port,
// no persistence, never the system service, never 6379. RAII: the destructor kills and reaps
// it, so a failing test leaves no server behind (and PR_SET_PDEATHSIG kills it if the test
// process dies first). Restartable on the same port, to test a node riding out an outage.
//
//   test::RedisServer redis;                 // started, answers PING
//   hub::RedisOptions options = redis.options();
//   redis.kill();  ... redis.start();        // same port, empty again
//
// Use it from the thread that created it (the parent-death signal follows that thread).
#pragma once

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hub/redis_bus.hpp"

namespace test {

/// Deadlines stretch with WEBSOCK_TIMEOUT_SCALE (4 under the sanitizers), as in the Node tests.
inline std::chrono::milliseconds scaled(std::chrono::milliseconds base) {
    const char* text = std::getenv("WEBSOCK_TIMEOUT_SCALE");
    const long scale = text ? std::max(1L, std::strtol(text, nullptr, 10)) : 1L;
    return base * scale;
}

/// Poll `condition` until it holds or the (scaled) deadline passes; its last value.
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the polling interval, not a wait
    }
    return true;
}

/// A loopback TCP port that was free a moment ago (the kernel picked it for port 0).
inline std::uint16_t free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof address;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        ::close(fd);
        throw std::runtime_error("bind/getsockname on 127.0.0.1:0 failed");
    }
    ::close(fd);
    return ntohs(address.sin_port);
}

class RedisServer {
public:
    static constexpr const char* binary = "/usr/bin/redis-server";
    /// How long a fresh redis-server may take to answer PING (scaled).
    static constexpr std::chrono::milliseconds startup_deadline{5000};
    /// Ports tried before giving up when a free port is taken between choice and bind.
    static constexpr int port_attempts = 5;

    /// Starts at once on a free port.
    RedisServer() {
        for (int attempt = 0;; ++attempt) {
            port_ = free_loopback_port();
            if (try_start()) return;
            if (attempt + 1 == port_attempts) throw std::runtime_error("redis-server did not start: " + failure_);
        }
    }
    ~RedisServer() { kill(); }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    bool running() const { return pid_ > 0; }

    /// Options for a RedisBus on this server, with short back-off so that tests run quickly.
    hub::RedisOptions options() const {
        hub::RedisOptions options;
        options.host = "127.0.0.1";
        options.port = port_;
        options.reconnect_min = std::chrono::milliseconds(20);
        options.reconnect_max = std::chrono::milliseconds(200);
        // Quiet, to keep doctest's output readable; WEBSOCK_TEST_REDIS_LOG=1 shows the bus's lines.
        if (std::getenv("WEBSOCK_TEST_REDIS_LOG")) {
            options.log = [](std::string_view line) { std::fprintf(stderr, "redis bus: %.*s\n", static_cast<int>(line.size()), line.data()); };
        } else {
            options.log = [](std::string_view) {};
        }
        return options;
    }

    /// (Re)start on the same port, empty; throws when it does not answer PING in time.
    void start() {
        if (running()) return;
        if (!try_start()) throw std::runtime_error("redis-server did not restart on port " + std::to_string(port_) + ": " + failure_);
    }

    /// SIGKILL and reap: a crash, as far as the clients can tell. Idempotent.
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGCONT);  // a paused server must still die
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
    }

    /// SIGSTOP / SIGCONT: the server holds its connections but answers nothing.
    void pause() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void resume() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }

    /// One command on a fresh connection (for a test to look at or poke the stream).
    /// Returns the reply as text for strings, statuses, errors and integers; "" otherwise.
    std::string command(const std::vector<std::string>& args) const {
        timeval timeout{2, 0};
        redisContext* context = redisConnectWithTimeout("127.0.0.1", port_, timeout);
        if (!context || context->err) {
            if (context) redisFree(context);
            throw std::runtime_error("cannot connect to the test redis-server");
        }
        redisSetTimeout(context, timeout);
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (const auto& arg : args) {
            argv.push_back(arg.data());
            lengths.push_back(arg.size());
        }
        auto* reply = static_cast<redisReply*>(redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
        std::string text;
        if (reply) {
            if (reply->type == REDIS_REPLY_INTEGER) text = std::to_string(reply->integer);
            else if (reply->str) text.assign(reply->str, reply->len);
            freeReplyObject(reply);
        }
        redisFree(context);
        if (!reply) throw std::runtime_error("the test redis-server did not answer");
        return text;
    }

private:
    bool try_start() {
        const std::string port_text = std::to_string(port_);
        std::vector<std::string> args = {binary,      "--port", port_text, "--bind",      "127.0.0.1", "--save", "",
                                         "--appendonly", "no",  "--daemonize", "no", "--dir", "/tmp", "--protected-mode", "yes"};
        std::vector<char*> argv;
        for (auto& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) {
            failure_ = "fork failed";
            return false;
        }
        if (pid == 0) {
            // Only async-signal-safe calls between fork and exec.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            const int null_fd = ::open("/dev/null", O_RDWR);
            if (null_fd >= 0) {
                ::dup2(null_fd, 0);
                ::dup2(null_fd, 1);
                ::dup2(null_fd, 2);
            }
            ::execv(binary, argv.data());
            ::_exit(127);
        }
        pid_ = pid;
        const auto deadline = std::chrono::steady_clock::now() + scaled(startup_deadline);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: port taken, or no binary
                pid_ = -1;
                failure_ = "redis-server exited at start (port " + port_text + " taken?)";
                return false;
            }
            if (answers_ping()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition
        }
        failure_ = "no PONG within the start-up deadline";
        kill();
        return false;
    }

    bool answers_ping() const {
        timeval timeout{0, 200'000};
        redisContext* context = redisConnectWithTimeout("127.0.0.1", port_, timeout);
        bool pong = false;
        if (context && !context->err) {
            redisSetTimeout(context, timeout);
            auto* reply = static_cast<redisReply*>(redisCommand(context, "PING"));
            pong = reply && reply->type == REDIS_REPLY_STATUS && std::string(reply->str, reply->len) == "PONG";
            if (reply) freeReplyObject(reply);
        }
        if (context) redisFree(context);
        return pong;
    }

    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    std::string failure_;
};

}  // namespace test
