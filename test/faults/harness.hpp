// The server under test for the fault suite: a WebSocketServer on 127.0.0.1 port 0 with
// short timeouts, on either engine, optionally over TLS, whose transports are wrapped by a
// FaultPlan. It records every open and close by client id, so a run can check that each
// opened connection was closed exactly once, and it owns the threads a scenario needs
// (the async HTTP answerer), so none outlives the run.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test/faults/faulty_transport.hpp"
#include "websock/detail/server_core.hpp"
#include "websock/server.hpp"

namespace faults {

struct TlsFiles {
    std::string certificate;
    std::string key;
};

struct Setup {
    websock::Engine engine = websock::Engine::ThreadPerClient;
    std::size_t event_loops = 1;    ///< EventLoop: how many (ServerOptions::event_loops)
    const TlsFiles* tls = nullptr;  ///< wss when set
    bool async_http = false;        ///< plain HTTP through on_http_request_async (else on_http_request)
    std::function<int(int)> accept_hook;  ///< replaces accept4() (see ServerCore::accept_hook)
    /// Fails an engine's start-up calls (see ServerCore::startup_fault).
    std::function<int(websock::detail::ServerCore::StartupCall, std::size_t)> startup_fault;
    /// Fails an engine's calls while serving (see ServerCore::serving_fault).
    std::function<int(websock::detail::ServerCore::ServingCall, std::size_t)> serving_fault;
};

/// Open file descriptors of this process (/proc/self/fd).
std::size_t open_descriptors();

/// Some message (an on_error report) contains `part`.
bool any_message_has(const std::vector<std::string>& messages, const std::string& part);
/// The messages on one line, for a failed check to show.
std::string joined(const std::vector<std::string>& messages);

class ServerUnderTest {
public:
    ServerUnderTest(const Setup& setup, std::shared_ptr<FaultPlan> plan);
    ~ServerUnderTest();  ///< stops the server (if still running) and joins every thread

    std::uint16_t port() const { return server_->port(); }
    websock::WebSocketServer& server() { return *server_; }
    bool tls() const { return tls_; }

    /// stop(), then wait (bounded) for serve_forever() to return; false if it did not.
    bool stop_and_join(std::chrono::milliseconds limit = std::chrono::milliseconds(10000));

    /// The open client of the latest on_connection_open (for sends from this thread).
    std::shared_ptr<websock::Client> latest_client();
    /// Wait until `count` connections have opened.
    bool wait_opened(std::size_t count, std::chrono::milliseconds limit = std::chrono::milliseconds(3000));
    /// Wait until every opened connection has been closed.
    bool wait_all_closed(std::chrono::milliseconds limit = std::chrono::milliseconds(5000));

    /// What went wrong with the open/close bookkeeping; empty when every opened client was
    /// closed exactly once and no close came without an open.
    std::string bookkeeping_errors() const;
    std::size_t opened() const;
    std::size_t error_reports() const;
    std::vector<std::string> error_messages() const;  ///< every on_error message, in order
    /// What serve_forever() returned, once it has (wait with stop_and_join or wait_served).
    std::optional<bool> serve_result() const;
    bool wait_served(std::chrono::milliseconds limit);

private:
    void answer_async_requests();  // the thread that answers on_http_request_async

    std::unique_ptr<websock::WebSocketServer> server_;
    bool tls_ = false;
    std::thread serving_;
    std::thread answerer_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::map<std::uint64_t, int> opens_;   // client id -> on_connection_open calls (guarded)
    std::map<std::uint64_t, int> closes_;  // client id -> on_connection_close calls (guarded)
    std::weak_ptr<websock::Client> latest_;
    std::deque<std::shared_ptr<websock::HttpResponder>> pending_answers_;  // guarded
    bool answerer_stop_ = false;  // guarded
    bool served_ = false;         // serve_forever returned (guarded)
    std::size_t error_reports_ = 0;
    std::vector<std::string> error_messages_;  // guarded
    std::optional<bool> serve_result_;         // guarded
};

}  // namespace faults
