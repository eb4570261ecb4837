#include "test/faults/harness.hpp"

#include <dirent.h>

#include <new>

#include "websock/detail/server_core.hpp"

namespace faults {

std::size_t open_descriptors() {
    std::size_t count = 0;
    if (DIR* directory = ::opendir("/proc/self/fd")) {
        while (const dirent* entry = ::readdir(directory))
            if (entry->d_name[0] != '.') ++count;
        ::closedir(directory);
        --count;  // the directory's own descriptor
    }
    return count;
}

bool any_message_has(const std::vector<std::string>& messages, const std::string& part) {
    for (const auto& message : messages)
        if (message.find(part) != std::string::npos) return true;
    return false;
}

std::string joined(const std::vector<std::string>& messages) {
    std::string all;
    for (const auto& message : messages) all += message + " | ";
    return all;
}

ServerUnderTest::ServerUnderTest(const Setup& setup, std::shared_ptr<FaultPlan> plan) {
    const TlsFiles* tls = setup.tls;
    websock::ServerOptions options;
    options.engine = setup.engine;
    options.event_loops = setup.event_loops;
    options.port = 0;
    options.handshake_timeout = std::chrono::milliseconds(2000);
    options.close_timeout = std::chrono::milliseconds(300);
    options.shutdown_timeout = std::chrono::milliseconds(500);
    options.idle_ping_interval = std::chrono::milliseconds(0);
    options.http_response_timeout = std::chrono::milliseconds(2000);
    if (tls != nullptr) {
        options.tls.certificate_file = tls->certificate;
        options.tls.private_key_file = tls->key;
        tls_ = true;
    }
    server_ = std::make_unique<websock::WebSocketServer>(options);
    auto& server = *server_;
    server.on_connection_open([this](websock::Client& client) {
        std::lock_guard lock(mutex_);
        ++opens_[client.id()];
        for (const auto& candidate : server_->clients())
            if (candidate.get() == &client) latest_ = candidate;
        changed_.notify_all();
    });
    server.on_connection_close([this](websock::Client& client, websock::CloseCode, std::string_view) {
        std::lock_guard lock(mutex_);
        ++closes_[client.id()];
        changed_.notify_all();
    });
    server.on_error([this](websock::Client*, const websock::Error& error) {
        std::lock_guard lock(mutex_);
        ++error_reports_;
        error_messages_.push_back(error.message);
    });
    // Echo, and two commands: "close-me" asks the server to start the close handshake,
    // "throw-out-of-memory" makes the callback throw std::bad_alloc.
    server.on_data_receive([](websock::Client& client, std::string_view data, websock::MessageType type) {
        if (data == "throw-out-of-memory") throw std::bad_alloc();  // what a failed allocation looks like
        if (data == "close-me") {
            client.close(websock::CloseCode::Normal, "as asked");
            return;
        }
        client.send(data, type);
    });
    if (!setup.async_http) {
        server.on_http_request([](const websock::HttpRequest& request) {
            return websock::HttpResponse::text(200, "plain answer for " + request.path + "\n");
        });
    } else {
        server.on_http_request_async([this](const websock::HttpRequest& request, std::shared_ptr<websock::HttpResponder> responder) {
        if (request.path == "/async") {
            std::lock_guard lock(mutex_);
            pending_answers_.push_back(std::move(responder));
            changed_.notify_all();
            return;
        }
        responder->respond(websock::HttpResponse::text(200, "plain answer\n"));
        });
    }
    auto& core = websock::detail::ServerCore::of(server);
    core.wrap_transport = [plan, tls = tls_](std::unique_ptr<websock::detail::Transport> inner) {
        return make_faulty_transport(std::move(inner), plan, tls);
    };
    core.accept_hook = setup.accept_hook;
    core.startup_fault = setup.startup_fault;
    core.serving_fault = setup.serving_fault;
    server.listen();
    serving_ = std::thread([this] {
        const bool result = server_->serve_forever();
        std::lock_guard lock(mutex_);
        served_ = true;
        serve_result_ = result;
        changed_.notify_all();
    });
    answerer_ = std::thread([this] { answer_async_requests(); });
}

ServerUnderTest::~ServerUnderTest() {
    stop_and_join();
    {
        std::lock_guard lock(mutex_);
        answerer_stop_ = true;
        changed_.notify_all();
    }
    answerer_.join();
}

void ServerUnderTest::answer_async_requests() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [&] { return answerer_stop_ || !pending_answers_.empty(); });
        if (pending_answers_.empty()) return;
        auto responder = std::move(pending_answers_.front());
        pending_answers_.pop_front();
        lock.unlock();
        responder->respond(websock::HttpResponse::text(200, "answered later\n"));  // from another thread
        responder.reset();
        lock.lock();
    }
}

bool ServerUnderTest::stop_and_join(std::chrono::milliseconds limit) {
    if (!serving_.joinable()) return true;
    server_->stop();
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, limit, [&] { return served_; })) return false;
    lock.unlock();
    serving_.join();
    return true;
}

std::shared_ptr<websock::Client> ServerUnderTest::latest_client() {
    std::lock_guard lock(mutex_);
    return latest_.lock();
}

bool ServerUnderTest::wait_opened(std::size_t count, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return opens_.size() >= count; });
}

bool ServerUnderTest::wait_all_closed(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return closes_.size() >= opens_.size(); });
}

std::string ServerUnderTest::bookkeeping_errors() const {
    std::lock_guard lock(mutex_);
    std::string errors;
    for (const auto& [id, count] : opens_) {
        const auto closed = closes_.find(id);
        const int closes = closed == closes_.end() ? 0 : closed->second;
        if (count != 1 || closes != 1)
            errors += "client " + std::to_string(id) + ": opened " + std::to_string(count) + "x, closed " +
                      std::to_string(closes) + "x; ";
    }
    for (const auto& [id, count] : closes_)
        if (!opens_.count(id)) errors += "client " + std::to_string(id) + " closed without an open; ";
    return errors;
}

std::size_t ServerUnderTest::opened() const {
    std::lock_guard lock(mutex_);
    return opens_.size();
}

std::size_t ServerUnderTest::error_reports() const {
    std::lock_guard lock(mutex_);
    return error_reports_;
}

std::vector<std::string> ServerUnderTest::error_messages() const {
    std::lock_guard lock(mutex_);
    return error_messages_;
}

std::optional<bool> ServerUnderTest::serve_result() const {
    std::lock_guard lock(mutex_);
    return serve_result_;
}

bool ServerUnderTest::wait_served(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return served_; });
}

}  // namespace faults
